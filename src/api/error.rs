//! The one place errors become gRPC statuses. Clients see a code and a message written
//! for them, with machine-readable details; internal error text never leaves the
//! server, which logs the whole cause chain instead.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::lock::{IN_PROGRESS_MESSAGE, IN_PROGRESS_REASON, Refusal};
use crate::store::StoreError;

/// The `ErrorInfo` domain of this service's errors.
pub const ERROR_DOMAIN: &str = "alis-import";

/// Why an RPC failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; one violation per bad field.
    #[error("invalid request")]
    InvalidArgument(Vec<(String, String)>),
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Another import is running; `run_id` names it.
    #[error("another import is running (run {run_id})")]
    ImportRunning {
        /// The running import.
        run_id: i64,
    },
    /// An import wants or holds the certification lock: no edit lease now.
    #[error("certification data update is in progress")]
    ImportInProgress(Refusal),
    /// The caller may not do this to the named thing (e.g. release another identity's
    /// lease).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The database failed.
    #[error("database error")]
    Store(#[from] StoreError),
}

impl ApiError {
    /// A single-field validation error.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![(field.to_owned(), description.into())])
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::InvalidArgument(violations) => {
                let message = violations
                    .iter()
                    .map(|(field, description)| format!("{field}: {description}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                let violations: Vec<FieldViolation> = violations
                    .into_iter()
                    .map(|(f, d)| FieldViolation::new(f, d))
                    .collect();
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("invalid request: {message}"),
                    ErrorDetails::with_bad_request(violations),
                )
            }
            ApiError::NotFound(what) => Status::not_found(format!("{what} not found")),
            ApiError::ImportRunning { run_id } => Status::aborted(format!(
                "another import is running (run {run_id}); try again when it has ended"
            )),
            ApiError::ImportInProgress(refusal) => {
                let mut metadata = std::collections::HashMap::from([(
                    "lock_state".to_owned(),
                    refusal.state.as_str().to_owned(),
                )]);
                if let Some(run_id) = refusal.run_id {
                    metadata.insert("run_id".to_owned(), run_id.to_string());
                }
                let mut details =
                    ErrorDetails::with_error_info(IN_PROGRESS_REASON, ERROR_DOMAIN, metadata);
                details.set_retry_info(Some(refusal.retry_after));
                Status::with_error_details(Code::FailedPrecondition, IN_PROGRESS_MESSAGE, details)
            }
            ApiError::PermissionDenied(what) => Status::permission_denied(what),
            ApiError::Store(StoreError::TaskNotFound(id)) => {
                Status::not_found(format!("task {id} not found"))
            }
            ApiError::Store(error) => {
                tracing::error!(error = ?anyhow::Error::new(error), "database error");
                Status::unavailable("the database is unavailable; try again later")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_are_invalid_argument_with_field_violations() {
        let status = Status::from(ApiError::InvalidArgument(vec![
            ("start_date".into(), "not a date: 2026-02-30".into()),
            ("time_zone".into(), "unknown time zone Mars/Base".into()),
        ]));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default();
        assert_eq!(fields, vec!["start_date", "time_zone"]);
    }

    #[test]
    fn database_errors_do_not_leak_their_text() {
        let inner = sqlx::Error::Protocol("password authentication failed for user x".into());
        let status = Status::from(ApiError::Store(StoreError::Query(inner)));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(!status.message().contains("password"));
    }

    #[test]
    fn a_running_import_is_aborted_and_named() {
        let status = Status::from(ApiError::ImportRunning { run_id: 42 });
        assert_eq!(status.code(), Code::Aborted);
        assert!(status.message().contains("run 42"));
    }

    #[test]
    fn a_refused_lease_says_exactly_that_an_update_is_in_progress_with_details() {
        let status = Status::from(ApiError::ImportInProgress(Refusal {
            run_id: Some(17),
            state: crate::lock::LockState::Pending,
            retry_after: std::time::Duration::from_secs(5),
        }));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(
            status.message(),
            "Certification data update is in Progress."
        );
        let details = status.get_error_details();
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "IMPORT_IN_PROGRESS");
        assert_eq!(info.domain, "alis-import");
        assert_eq!(info.metadata.get("run_id").map(String::as_str), Some("17"));
        assert_eq!(
            info.metadata.get("lock_state").map(String::as_str),
            Some("PENDING")
        );
        let retry = details.retry_info().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(std::time::Duration::from_secs(5)));
    }

    #[test]
    fn releasing_another_identitys_lease_is_permission_denied() {
        let status = Status::from(ApiError::PermissionDenied("lease x".into()));
        assert_eq!(status.code(), Code::PermissionDenied);
    }

    #[test]
    fn missing_things_are_not_found() {
        assert_eq!(
            Status::from(ApiError::NotFound("task 7".into())).code(),
            Code::NotFound
        );
    }
}
