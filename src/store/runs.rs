//! Import runs: one row per run, from `WAITING` (planned by the scheduler) or
//! `IN_PROGRESS` (started now) to `SUCCEEDED` or `FAILED`, with its report and log.
//!
//! # Layout
//!
//! - this file: the run's types, reading runs, reports;
//! - [`start`]: runs started now (`RunNow`, `import-file`), with idempotency keys;
//! - [`progress`]: heartbeats, phases and the end of a run;
//! - [`schedule`]: claiming due runs, reaping lost ones, catch-up after downtime;
//! - [`list`]: the runs page, filtered and keyset-paginated;
//! - [`log`]: a run's error log.
//!
//! # Invariants the schema keeps (migration 0102)
//!
//! - **One import at a time per database**: a partial unique index admits one
//!   `IN_PROGRESS` row, whichever process (replica, CLI) inserts or claims it. Every
//!   path that makes a run `IN_PROGRESS` maps a violation of it to "busy".
//! - **One waiting run per task**: a partial unique index on `task_id`.
//! - **Unique idempotency keys**.
//!
//! Each operation that changes a run's state is one conditional statement (or one
//! transaction), so replicas racing on the same row see exactly one winner. Instants
//! that decide anything (due, stale) come from the caller's clock, never the store's.

mod list;
mod log;
mod progress;
mod schedule;
mod start;

use jiff::Timestamp;
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::instant::{from_pg, from_text};
use super::{Store, StoreError};
use crate::import::summary::Summary;

pub use list::{RunFilter, RunPage, TimeRange};
pub use log::{LogEntry, LogLevel};
pub use schedule::Claim;
pub use start::StartedRun;

/// A run's lifecycle state, as the task list shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Planned for its scheduled time.
    Waiting,
    /// Claimed by a worker and running.
    InProgress,
    /// Ended with the data replaced (or, dry, computed).
    Succeeded,
    /// Ended without changing anything.
    Failed,
}

impl RunStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [RunStatus; 4] = [
        Self::Waiting,
        Self::InProgress,
        Self::Succeeded,
        Self::Failed,
    ];

    /// The stored (and displayed) form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "WAITING",
            Self::InProgress => "IN_PROGRESS",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }

    /// The status whose stored form is `text`.
    pub fn from_stored(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// A run started now, outside the scheduler (CLI `import-file`, `RunNow`).
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The task it belongs to, if any.
    pub task_id: Option<i64>,
    /// Who started it.
    pub run_by: String,
    /// Compute everything, write nothing.
    pub dry_run: bool,
    /// Pass the mass-deletion guard.
    pub force: bool,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// `Succeeded` or `Failed`.
    pub status: RunStatus,
    /// Why it failed, in words for an operator.
    pub error: Option<String>,
}

/// A run as stored: one row of the runs page, and everything a worker needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// Database id.
    pub id: i64,
    /// Its task; `None` for a run without one (`import-file`) or whose task was deleted.
    pub task_id: Option<i64>,
    /// The task's description when the run was created (kept when the task goes).
    pub task_description: Option<String>,
    /// Where it is in its lifecycle.
    pub status: RunStatus,
    /// What a running import is doing (`fetching`, `parsing`, …), set by the worker.
    pub phase: Option<String>,
    /// What the phase is waiting for, e.g. the number of outstanding edit leases.
    pub phase_detail: Option<String>,
    /// When the scheduler planned it for; `None` for a run started now.
    pub scheduled_for: Option<Timestamp>,
    /// When it actually started; `None` while `WAITING` (and for a missed run).
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub ended_at: Option<Timestamp>,
    /// Who it runs as: the caller of `RunNow`, or the user who last saved the task.
    pub run_by: String,
    /// Compute everything, write nothing.
    pub dry_run: bool,
    /// Pass the mass-deletion guard.
    pub force: bool,
    /// The caller's key for "this one run" (a CronJob's slot).
    pub idempotency_key: Option<String>,
    /// The ALiS file it read.
    pub file_name: Option<String>,
    /// That file's SHA-256, hex.
    pub file_sha256: Option<String>,
    /// Whether that file came from the file cache rather than a fresh download.
    pub file_from_cache: Option<bool>,
    /// Why it failed, for an operator.
    pub error: Option<String>,
    /// The running worker's last sign of life.
    pub heartbeat_at: Option<Timestamp>,
    /// The worker (replica) that runs it; heartbeats must come from it.
    pub owner: Option<String>,
    /// Whether its report exists.
    pub has_report: bool,
}

/// The columns [`run_from_row`] reads, unqualified but for the report check, so that
/// `select`, `update … returning` and `insert … returning` can all use them.
macro_rules! run_columns {
    () => {
        "id, task_id, task_description, status, phase, phase_detail, scheduled_for, started_at, \
         ended_at, run_by, dry_run, force, idempotency_key, file_name, file_sha256, file_from_cache, \
         error, heartbeat_at, owner, \
         exists (select 1 from import_reports where import_reports.run_id = import_runs.id) \
         as has_report"
    };
}
use run_columns;

const GET_RUN: &str = concat!("select ", run_columns!(), " from import_runs where id = $1");
const IN_PROGRESS_RUN: &str = concat!(
    "select ",
    run_columns!(),
    " from import_runs where status = 'IN_PROGRESS'"
);
const WAITING_RUN: &str = concat!(
    "select ",
    run_columns!(),
    " from import_runs where task_id = $1 and status = 'WAITING'"
);

/// A run row, whatever the backend; `instant` reads a timestamp column.
fn run_from_row<R>(
    row: &R,
    instant: fn(&R, &str) -> Result<Option<Timestamp>, StoreError>,
) -> Result<RunRecord, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let status: String = row.try_get("status")?;
    Ok(RunRecord {
        id: row.try_get("id")?,
        task_id: row.try_get("task_id")?,
        task_description: row.try_get("task_description")?,
        status: RunStatus::from_stored(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("run status {status:?}")))?,
        phase: row.try_get("phase")?,
        phase_detail: row.try_get("phase_detail")?,
        scheduled_for: instant(row, "scheduled_for")?,
        started_at: instant(row, "started_at")?,
        ended_at: instant(row, "ended_at")?,
        run_by: row.try_get("run_by")?,
        dry_run: row.try_get("dry_run")?,
        force: row.try_get("force")?,
        idempotency_key: row.try_get("idempotency_key")?,
        file_name: row.try_get("file_name")?,
        file_sha256: row.try_get("file_sha256")?,
        file_from_cache: row.try_get("file_from_cache")?,
        error: row.try_get("error")?,
        heartbeat_at: instant(row, "heartbeat_at")?,
        owner: row.try_get("owner")?,
        has_report: row.try_get("has_report")?,
    })
}

/// A run row of PostgreSQL.
fn run_from_pg(row: &sqlx::postgres::PgRow) -> Result<RunRecord, StoreError> {
    run_from_row(row, |row, column| {
        row.try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(column)?
            .map(from_pg)
            .transpose()
    })
}

/// A run row of SQLite.
fn run_from_sqlite(row: &sqlx::sqlite::SqliteRow) -> Result<RunRecord, StoreError> {
    run_from_row(row, |row, column| {
        row.try_get::<Option<String>, _>(column)?
            .as_deref()
            .map(from_text)
            .transpose()
    })
}

/// Which of the runs table's unique indexes a statement violated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Violation {
    /// `import_runs_one_in_progress`: another import is running.
    OneInProgress,
    /// The idempotency key is taken.
    IdempotencyKey,
}

/// The unique index `error` violated, if it is one of ours. PostgreSQL names the
/// constraint; SQLite names an expression index, or the columns of a column index, in
/// its message.
fn violation(error: &sqlx::Error) -> Option<Violation> {
    let sqlx::Error::Database(db) = error else {
        return None;
    };
    if !db.is_unique_violation() {
        return None;
    }
    let names = [db.constraint().unwrap_or_default(), db.message()];
    if names
        .iter()
        .any(|name| name.contains("import_runs_one_in_progress"))
    {
        Some(Violation::OneInProgress)
    } else if names.iter().any(|name| name.contains("idempotency_key")) {
        Some(Violation::IdempotencyKey)
    } else {
        None
    }
}

impl Store {
    /// Run `id`, if it exists.
    pub async fn get_run(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        match self {
            Self::Postgres(pool) => sqlx::query(GET_RUN)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(run_from_pg)
                .transpose(),
            Self::Sqlite(pool) => sqlx::query(GET_RUN)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(run_from_sqlite)
                .transpose(),
        }
    }

    /// The run in progress in this database, if any (there is at most one).
    pub async fn in_progress_run(&self) -> Result<Option<RunRecord>, StoreError> {
        match self {
            Self::Postgres(pool) => sqlx::query(IN_PROGRESS_RUN)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(run_from_pg)
                .transpose(),
            Self::Sqlite(pool) => sqlx::query(IN_PROGRESS_RUN)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(run_from_sqlite)
                .transpose(),
        }
    }

    /// Task `task_id`'s waiting run: its next occurrence, if planned.
    pub async fn waiting_run(&self, task_id: i64) -> Result<Option<RunRecord>, StoreError> {
        match self {
            Self::Postgres(pool) => sqlx::query(WAITING_RUN)
                .bind(task_id)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(run_from_pg)
                .transpose(),
            Self::Sqlite(pool) => sqlx::query(WAITING_RUN)
                .bind(task_id)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(run_from_sqlite)
                .transpose(),
        }
    }

    /// The stored summary of a run, if it has one.
    pub async fn report_summary(&self, run_id: i64) -> Result<Option<Summary>, StoreError> {
        let json: Option<String> = match self {
            Self::Postgres(pool) => {
                sqlx::query_scalar("select summary::text from import_reports where run_id = $1")
                    .bind(run_id)
                    .fetch_optional(pool)
                    .await?
            }
            Self::Sqlite(pool) => {
                sqlx::query_scalar("select summary from import_reports where run_id = $1")
                    .bind(run_id)
                    .fetch_optional(pool)
                    .await?
            }
        };
        json.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }
}

impl Store {
    /// The PDF of a run's report, when one was rendered.
    pub async fn report_pdf(&self, run_id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        const SQL: &str = "select pdf from import_reports where run_id = $1";
        let pdf: Option<Option<Vec<u8>>> = match self {
            Self::Postgres(pool) => {
                sqlx::query_scalar(SQL)
                    .bind(run_id)
                    .fetch_optional(pool)
                    .await?
            }
            Self::Sqlite(pool) => {
                sqlx::query_scalar(SQL)
                    .bind(run_id)
                    .fetch_optional(pool)
                    .await?
            }
        };
        Ok(pdf.flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_from_their_stored_form() {
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::from_stored(status.as_str()), Some(status));
        }
        assert_eq!(RunStatus::from_stored("waiting"), None);
    }
}
