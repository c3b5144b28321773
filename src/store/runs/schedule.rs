//! What the scheduler asks of the runs table (design §5): claiming a due run so that
//! exactly one replica executes it, failing runs whose worker died, and the catch-up
//! after downtime.
//!
//! Every instant comes from the caller (the scheduler's injectable clock).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::{RunRecord, Violation, run_columns, run_from_pg, run_from_sqlite, violation};
use crate::store::instant::{to_pg, to_text, truncated};
use crate::store::lock::{FREE_ORPHANED, TRY_LOCK_ROW_PG};
use crate::store::{Store, StoreError};

/// What [`Store::claim_due_run`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller claimed the run: it is `IN_PROGRESS`, owned by the caller, who
    /// executes it.
    Claimed(RunRecord),
    /// A run is due but another import is in progress: wait for it (design §5), and
    /// claim again later.
    Busy {
        /// The run in progress.
        running: RunRecord,
    },
    /// No run is due (or another replica is claiming the due one right now).
    Nothing,
}

/// The earliest due `WAITING` run becomes `IN_PROGRESS`, unless an import runs.
/// PostgreSQL: `skip locked` lets concurrent claimers pass over a row another replica
/// is claiming instead of queueing behind it; the outer `status = 'WAITING'` is
/// re-checked on the locked row. The one-in-progress index is the backstop for two
/// replicas claiming two different runs at once.
const CLAIM_PG: &str = concat!(
    "update import_runs set status = 'IN_PROGRESS', started_at = $1, heartbeat_at = $1, \
     owner = $2 \
     where status = 'WAITING' and id = (select id from import_runs \
         where status = 'WAITING' and scheduled_for <= $1 \
         order by scheduled_for, id limit 1 for update skip locked) \
     and not exists (select 1 from import_runs where status = 'IN_PROGRESS') \
     returning ",
    run_columns!()
);
/// SQLite has one writer at a time: the statement itself is the critical section.
const CLAIM_SQLITE: &str = concat!(
    "update import_runs set status = 'IN_PROGRESS', started_at = $1, heartbeat_at = $1, \
     owner = $2 \
     where status = 'WAITING' and id = (select id from import_runs \
         where status = 'WAITING' and scheduled_for <= $1 \
         order by scheduled_for, id limit 1) \
     and not exists (select 1 from import_runs where status = 'IN_PROGRESS') \
     returning ",
    run_columns!()
);
const ANY_DUE: &str =
    "select exists (select 1 from import_runs where status = 'WAITING' and scheduled_for <= $1)";

/// The reaper's reason, up to the last heartbeat's time. A worker can die between its
/// replace's commit and recording the run's end (while it renders the report): then
/// the run's records are in place, and saying only "worker lost" would let HR believe
/// nothing changed. (An import that wrote no record at all cannot be told apart; it
/// changed nothing but deletions, and reads as plainly lost.)
macro_rules! lost_worker_reason {
    () => {
        "case when exists (select 1 from certifications c where c.import_run_id = import_runs.id) \
         or exists (select 1 from endorsements n where n.import_run_id = import_runs.id) \
         then 'worker lost after its import was committed: the new records are in place, \
         but no report was produced; no heartbeat since ' \
         else 'worker lost: no heartbeat since ' end"
    };
}

const REAP_PG: &str = concat!(
    "update import_runs set status = 'FAILED', ended_at = $1, \
     error = ",
    lost_worker_reason!(),
    " || \
         to_char(coalesce(heartbeat_at, started_at, created_at) at time zone 'UTC', \
         'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') \
     where status = 'IN_PROGRESS' and coalesce(heartbeat_at, started_at, created_at) < $2 \
     returning ",
    run_columns!()
);
const REAP_SQLITE: &str = concat!(
    "update import_runs set status = 'FAILED', ended_at = $1, \
     error = ",
    lost_worker_reason!(),
    " || \
         coalesce(heartbeat_at, started_at, created_at) \
     where status = 'IN_PROGRESS' and coalesce(heartbeat_at, started_at, created_at) < $2 \
     returning ",
    run_columns!()
);

const OVERDUE: &str = concat!(
    "select ",
    run_columns!(),
    " from import_runs where status = 'WAITING' and scheduled_for < $1 \
     order by scheduled_for, id"
);
const FAIL_WAITING: &str = "update import_runs set status = 'FAILED', error = $2, ended_at = $3 \
    where id = $1 and status = 'WAITING'";

/// PostgreSQL: `for share` holds the task row, so a concurrent save (which updates it
/// first) either finishes before (and this sees its `active` and its waiting run) or
/// waits for this insert (and then deletes the run it planned).
const PLAN_WAITING_PG: &str = concat!(
    "insert into import_runs (task_id, task_description, status, scheduled_for, run_by) \
     select id, description, 'WAITING', $2, saved_by from import_tasks \
     where id = $1 and active for share \
     on conflict (task_id) where status = 'WAITING' do nothing \
     returning ",
    run_columns!()
);
const PLAN_WAITING_SQLITE: &str = concat!(
    "insert into import_runs (task_id, task_description, status, scheduled_for, run_by) \
     select id, description, 'WAITING', $2, saved_by from import_tasks \
     where id = $1 and active \
     on conflict (task_id) where status = 'WAITING' do nothing \
     returning ",
    run_columns!()
);

impl Store {
    /// Claims the earliest `WAITING` run due at `now` (`scheduled_for <= now`) for
    /// worker `owner`: it becomes `IN_PROGRESS` with `started_at` and `heartbeat_at` =
    /// `now`. Of any number of concurrent claimers, on any number of replicas, exactly
    /// one gets each run. Claims nothing while another import is in progress.
    pub async fn claim_due_run(&self, now: Timestamp, owner: &str) -> Result<Claim, StoreError> {
        let now = truncated(now);
        let claimed = match self {
            Self::Postgres(pool) => sqlx::query(CLAIM_PG)
                .bind(to_pg(now))
                .bind(owner)
                .fetch_optional(pool)
                .await
                .map_err(StoreError::from)
                .and_then(|row| row.as_ref().map(run_from_pg).transpose()),
            Self::Sqlite(pool) => sqlx::query(CLAIM_SQLITE)
                .bind(to_text(now))
                .bind(owner)
                .fetch_optional(pool)
                .await
                .map_err(StoreError::from)
                .and_then(|row| row.as_ref().map(run_from_sqlite).transpose()),
        };
        match claimed {
            Ok(Some(run)) => return Ok(Claim::Claimed(run)),
            Ok(None) => {}
            // Another replica made a different run IN_PROGRESS at the same moment.
            Err(StoreError::Query(e)) if violation(&e) == Some(Violation::OneInProgress) => {}
            Err(e) => return Err(e),
        }
        let Some(running) = self.in_progress_run().await? else {
            return Ok(Claim::Nothing);
        };
        let any_due: bool = match self {
            Self::Postgres(pool) => {
                sqlx::query_scalar(ANY_DUE)
                    .bind(to_pg(now))
                    .fetch_one(pool)
                    .await?
            }
            Self::Sqlite(pool) => {
                sqlx::query_scalar(ANY_DUE)
                    .bind(to_text(now))
                    .fetch_one(pool)
                    .await?
            }
        };
        Ok(if any_due {
            Claim::Busy { running }
        } else {
            Claim::Nothing
        })
    }

    /// Fails every `IN_PROGRESS` run whose last heartbeat is older than
    /// `heartbeat_timeout` at `now` (error "worker lost: no heartbeat since …", or
    /// "worker lost after its import was committed: …" when the run's records are in
    /// place; `ended_at` = `now`), and returns them. One statement: replicas reaping at once
    /// each get a disjoint share, and a heartbeat that lands first saves its run.
    ///
    /// In the same transaction, frees the certification lock if its run is no longer in
    /// progress (just reaped, or ended without freeing it), so a dead importer never
    /// keeps edits out. On PostgreSQL the transaction first takes the lock row, unless
    /// a replace transaction holds it: then its importer is alive (or will be ended by
    /// the database's idle timeout) and this tick reaps nothing. A replace that begins
    /// after this transaction re-checks its run and fails its fence check.
    pub async fn reap_lost_runs(
        &self,
        now: Timestamp,
        heartbeat_timeout: Duration,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let now = truncated(now);
        let timeout = SignedDuration::try_from(heartbeat_timeout).unwrap_or(SignedDuration::MAX);
        let stale_before = now.checked_sub(timeout).unwrap_or(Timestamp::MIN);
        match self {
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let lock_row: Option<i32> = sqlx::query_scalar(TRY_LOCK_ROW_PG)
                    .fetch_optional(&mut *tx)
                    .await?;
                if lock_row.is_none() {
                    return Ok(Vec::new());
                }
                let reaped = sqlx::query(REAP_PG)
                    .bind(to_pg(now))
                    .bind(to_pg(stale_before))
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(run_from_pg)
                    .collect::<Result<Vec<_>, _>>()?;
                sqlx::query(FREE_ORPHANED)
                    .bind(to_pg(now))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(reaped)
            }
            Self::Sqlite(pool) => {
                let mut tx = pool.begin_with("begin immediate").await?;
                let reaped = sqlx::query(REAP_SQLITE)
                    .bind(to_text(now))
                    .bind(to_text(stale_before))
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(run_from_sqlite)
                    .collect::<Result<Vec<_>, _>>()?;
                sqlx::query(FREE_ORPHANED)
                    .bind(to_text(now))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(reaped)
            }
        }
    }

    /// The `WAITING` runs scheduled strictly before `before`, earliest first. With
    /// `before` = now these are the overdue runs; with now minus the catch-up window,
    /// the ones to mark missed.
    pub async fn overdue_waiting_runs(
        &self,
        before: Timestamp,
    ) -> Result<Vec<RunRecord>, StoreError> {
        match self {
            Self::Postgres(pool) => sqlx::query(OVERDUE)
                .bind(to_pg(before))
                .fetch_all(pool)
                .await?
                .iter()
                .map(run_from_pg)
                .collect(),
            Self::Sqlite(pool) => sqlx::query(OVERDUE)
                .bind(to_text(before))
                .fetch_all(pool)
                .await?
                .iter()
                .map(run_from_sqlite)
                .collect(),
        }
    }

    /// Fails run `run_id` with `reason` at `now` if it is still `WAITING` (a missed
    /// run); `false` when it is not (claimed or failed by another replica meanwhile).
    pub async fn fail_waiting_run(
        &self,
        run_id: i64,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let updated = match self {
            Self::Postgres(pool) => sqlx::query(FAIL_WAITING)
                .bind(run_id)
                .bind(reason)
                .bind(to_pg(now))
                .execute(pool)
                .await?
                .rows_affected(),
            Self::Sqlite(pool) => sqlx::query(FAIL_WAITING)
                .bind(run_id)
                .bind(reason)
                .bind(to_text(now))
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(updated > 0)
    }

    /// Plans task `task_id`'s next occurrence at `at` as a `WAITING` run, run by the
    /// user who last saved the task (design §4.1), unless the task already has a
    /// waiting run or is not active (or does not exist). Returns the run it planned.
    /// Safe against a concurrent save of the task and against other replicas planning
    /// the same task: a task never gets two waiting runs.
    pub async fn plan_waiting_run(
        &self,
        task_id: i64,
        at: Timestamp,
    ) -> Result<Option<RunRecord>, StoreError> {
        match self {
            Self::Postgres(pool) => sqlx::query(PLAN_WAITING_PG)
                .bind(task_id)
                .bind(to_pg(at))
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(run_from_pg)
                .transpose(),
            Self::Sqlite(pool) => sqlx::query(PLAN_WAITING_SQLITE)
                .bind(task_id)
                .bind(to_text(at))
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(run_from_sqlite)
                .transpose(),
        }
    }
}
