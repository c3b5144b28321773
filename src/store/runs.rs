//! Import runs and their reports.

use super::{Store, StoreError};
use crate::import::summary::Summary;

/// A run's lifecycle state, as the task list shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// The stored (and displayed) form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "WAITING",
            Self::InProgress => "IN_PROGRESS",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
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

impl Store {
    /// Records a run that starts now, `IN_PROGRESS`; returns its id.
    pub async fn start_run(&self, run: &NewRun) -> Result<i64, StoreError> {
        let id = match self {
            Self::Postgres(pool) => {
                sqlx::query_scalar(
                    "insert into import_runs (task_id, status, started_at, run_by, dry_run, \
                     force, heartbeat_at) values ($1, 'IN_PROGRESS', now(), $2, $3, $4, now()) \
                     returning id",
                )
                .bind(run.task_id)
                .bind(&run.run_by)
                .bind(run.dry_run)
                .bind(run.force)
                .fetch_one(pool)
                .await?
            }
            Self::Sqlite(pool) => {
                sqlx::query_scalar(
                    "insert into import_runs (task_id, status, started_at, run_by, dry_run, \
                     force, heartbeat_at) values ($1, 'IN_PROGRESS', $5, $2, $3, $4, $5) \
                     returning id",
                )
                .bind(run.task_id)
                .bind(&run.run_by)
                .bind(run.dry_run)
                .bind(run.force)
                .bind(now_text())
                .fetch_one(pool)
                .await?
            }
        };
        Ok(id)
    }

    /// Ends a run and stores its summary (when there is one) in the same transaction,
    /// so a finished run never lacks the report it had.
    pub async fn finish_run(
        &self,
        run_id: i64,
        outcome: &RunOutcome,
        summary: Option<&Summary>,
    ) -> Result<(), StoreError> {
        let json = summary
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let file = summary.and_then(|s| s.file.as_ref());
        let file_name = file.map(|f| f.name.as_str());
        let file_sha256 = file.map(|f| f.sha256.as_str());
        let from_cache = file.map(|f| f.from_cache);
        match self {
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "update import_runs set status = $2, error = $3, ended_at = now(), \
                     file_name = coalesce($4, file_name), \
                     file_sha256 = coalesce($5, file_sha256), \
                     file_from_cache = coalesce($6, file_from_cache) where id = $1",
                )
                .bind(run_id)
                .bind(outcome.status.as_str())
                .bind(outcome.error.as_deref())
                .bind(file_name)
                .bind(file_sha256)
                .bind(from_cache)
                .execute(&mut *tx)
                .await?;
                if let Some(json) = json {
                    sqlx::query(
                        "insert into import_reports (run_id, summary) values ($1, $2::jsonb) \
                         on conflict (run_id) do update set summary = excluded.summary",
                    )
                    .bind(run_id)
                    .bind(json)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            }
            Self::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "update import_runs set status = $2, error = $3, ended_at = $7, \
                     file_name = coalesce($4, file_name), \
                     file_sha256 = coalesce($5, file_sha256), \
                     file_from_cache = coalesce($6, file_from_cache) where id = $1",
                )
                .bind(run_id)
                .bind(outcome.status.as_str())
                .bind(outcome.error.as_deref())
                .bind(file_name)
                .bind(file_sha256)
                .bind(from_cache)
                .bind(now_text())
                .execute(&mut *tx)
                .await?;
                if let Some(json) = json {
                    sqlx::query(
                        "insert into import_reports (run_id, summary) values ($1, $2) \
                         on conflict (run_id) do update set summary = excluded.summary",
                    )
                    .bind(run_id)
                    .bind(json)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
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

/// Now as stored on SQLite: RFC 3339 UTC with milliseconds, which sorts as text.
pub(super) fn now_text() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
