//! Runs started now, outside the scheduler: `RunNow` and `import-file`.
//!
//! Starting is one insert of an `IN_PROGRESS` row. The schema decides the races: the
//! one-in-progress index refuses a second import (→ [`StartedRun::Busy`]), the unique
//! idempotency key refuses a second run for the same key (→ [`StartedRun::Existing`]).
//! So twenty concurrent callers on as many replicas start exactly one import.

use jiff::Timestamp;

use super::{RunRecord, Violation, run_columns, run_from_pg, run_from_sqlite, violation};
use crate::store::instant::{to_pg, to_text, truncated};
use crate::store::{NewRun, Store, StoreError};

/// What [`Store::start_run_now`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartedRun {
    /// A new run, `IN_PROGRESS` from now: the caller runs it.
    Started(RunRecord),
    /// The idempotency key was used before: that run, in whatever state it is now.
    /// Nothing was started.
    Existing(RunRecord),
    /// Another import is in progress in this database; nothing was started.
    Busy {
        /// The run in progress.
        running: RunRecord,
    },
}

/// How often a start is retried when the import that made it busy has ended before
/// it could be named. Each retry needs another import to start and end in between, so
/// running out means something is starting imports in a tight loop.
const ATTEMPTS: usize = 5;

/// Inserts the `IN_PROGRESS` run, with its task's description; no row when the task
/// named does not exist.
const INSERT_IN_PROGRESS: &str = concat!(
    "insert into import_runs (task_id, task_description, status, started_at, heartbeat_at, \
     run_by, dry_run, force, idempotency_key, owner) \
     select t.id, t.description, 'IN_PROGRESS', $2, $2, $3, $4, $5, $6, $7 \
     from (select 1) as one left join import_tasks t on t.id = $1 \
     where $1 is null or t.id is not null \
     returning ",
    run_columns!()
);
const RUN_BY_KEY: &str = concat!(
    "select ",
    run_columns!(),
    " from import_runs where idempotency_key = $1"
);

/// The error after [`ATTEMPTS`] starts each found an import in progress that had
/// ended by the time it was looked up: the last unique violation.
fn exhausted(last_error: Option<sqlx::Error>) -> StoreError {
    last_error.map_or_else(
        || StoreError::Corrupt("no attempt was made to start the run".into()),
        StoreError::Query,
    )
}

impl Store {
    /// Records a run that starts now, `IN_PROGRESS`; returns its id. For
    /// `import-file`: the run has no owner and no idempotency key, and starts at the
    /// wall clock's now (not a scheduling decision: only a record of when).
    ///
    /// # Errors
    ///
    /// [`StoreError::ImportInProgress`] while another import runs;
    /// [`StoreError::TaskNotFound`] when `run.task_id` names no task.
    pub async fn start_run(&self, run: &NewRun) -> Result<i64, StoreError> {
        let mut last_error = None;
        for _ in 0..ATTEMPTS {
            match self
                .insert_in_progress(run, None, None, Timestamp::now())
                .await
            {
                Ok(Some(started)) => return Ok(started.id),
                Ok(None) => return Err(StoreError::TaskNotFound(run.task_id.unwrap_or(0))),
                Err(StoreError::Query(e)) if violation(&e) == Some(Violation::OneInProgress) => {
                    if let Some(running) = self.in_progress_run().await? {
                        return Err(StoreError::ImportInProgress { run_id: running.id });
                    }
                    // The import that was in the way has ended since: try again.
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(exhausted(last_error))
    }

    /// Starts an import now (`RunNow`), for `run.task_id` (active or not) or for no
    /// task, as `run.run_by`, executed by worker `owner`: the run is `IN_PROGRESS`
    /// with `started_at` and `heartbeat_at` = `now`.
    ///
    /// With an `idempotency_key` that was used before, returns that run
    /// ([`StartedRun::Existing`]) whatever its state, even while another import runs.
    /// While another import runs, returns it ([`StartedRun::Busy`]). Atomic across
    /// processes: of any number of concurrent calls, at most one starts a run, and
    /// calls with the same key all name the same run.
    ///
    /// # Errors
    ///
    /// [`StoreError::TaskNotFound`] when `run.task_id` names no task.
    pub async fn start_run_now(
        &self,
        run: &NewRun,
        idempotency_key: Option<&str>,
        owner: &str,
        now: Timestamp,
    ) -> Result<StartedRun, StoreError> {
        let mut last_error = None;
        for _ in 0..ATTEMPTS {
            if let Some(existing) = self.run_by_key(idempotency_key).await? {
                return Ok(StartedRun::Existing(existing));
            }
            match self
                .insert_in_progress(run, idempotency_key, Some(owner), now)
                .await
            {
                Ok(Some(started)) => return Ok(StartedRun::Started(started)),
                Ok(None) => return Err(StoreError::TaskNotFound(run.task_id.unwrap_or(0))),
                Err(StoreError::Query(e)) if violation(&e).is_some() => {
                    // Whichever index the database checked first, the key decides
                    // before "busy": a retried CronJob slot gets its own run back.
                    if let Some(existing) = self.run_by_key(idempotency_key).await? {
                        return Ok(StartedRun::Existing(existing));
                    }
                    if let Some(running) = self.in_progress_run().await? {
                        return Ok(StartedRun::Busy { running });
                    }
                    // The import that was in the way has ended since: try again.
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(exhausted(last_error))
    }

    /// The run that used `key`, if any.
    async fn run_by_key(&self, key: Option<&str>) -> Result<Option<RunRecord>, StoreError> {
        let Some(key) = key else {
            return Ok(None);
        };
        match self {
            Self::Postgres(pool) => sqlx::query(RUN_BY_KEY)
                .bind(key)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(run_from_pg)
                .transpose(),
            Self::Sqlite(pool) => sqlx::query(RUN_BY_KEY)
                .bind(key)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(run_from_sqlite)
                .transpose(),
        }
    }

    /// One attempt at inserting the run; `None` when its task does not exist.
    async fn insert_in_progress(
        &self,
        run: &NewRun,
        idempotency_key: Option<&str>,
        owner: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<RunRecord>, StoreError> {
        let now = truncated(now);
        match self {
            Self::Postgres(pool) => sqlx::query(INSERT_IN_PROGRESS)
                .bind(run.task_id)
                .bind(to_pg(now))
                .bind(&run.run_by)
                .bind(run.dry_run)
                .bind(run.force)
                .bind(idempotency_key)
                .bind(owner)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(run_from_pg)
                .transpose(),
            Self::Sqlite(pool) => sqlx::query(INSERT_IN_PROGRESS)
                .bind(run.task_id)
                .bind(to_text(now))
                .bind(&run.run_by)
                .bind(run.dry_run)
                .bind(run.force)
                .bind(idempotency_key)
                .bind(owner)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(run_from_sqlite)
                .transpose(),
        }
    }
}
