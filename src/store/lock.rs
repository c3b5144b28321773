//! The certification lock's row and the edit leases (migration 0104; the design is in
//! [`crate::lock`]).
//!
//! Races are decided by the lock row:
//!
//! - A grant inserts its lease only while the row says `FREE`, reading it `for share`
//!   on PostgreSQL: an import marking the lock pending (an update of that row) either
//!   commits first, and the grant sees `PENDING`, or waits for the grant to commit, and
//!   then counts its lease. SQLite runs one writer at a time, so each statement is
//!   atomic on its own.
//! - A refusal never waits for an import, even while the replace transaction holds the
//!   row's lock: on PostgreSQL the grant is one statement whose share lock applies only
//!   to a `FREE` row; on SQLite a plain read of the row comes first.
//! - Every import step is one conditional update naming the run and its epoch, and
//!   requiring the run to be still `IN_PROGRESS`: an import declared lost can no longer
//!   move the lock.

use std::collections::HashSet;

use jiff::Timestamp;
use sqlx::{Postgres, Sqlite, Transaction};

use super::instant::{from_pg, from_text, to_pg, to_text, truncated};
use super::{Store, StoreError};
use crate::lock::{Fence, Grant, Lease, LeaseId, LockRow, LockState, NewLease, Refusal, Release};

const LOCK_ROW: &str = "select state, epoch, run_id, changed_at from cert_lock where id = 1";

const GRANT_SQLITE: &str = "insert into cert_leases \
    (id, holder, subject, epoch, acquired_at, expires_at) \
    select $1, $2, $3, epoch, $4, $5 from cert_lock where id = 1 and state = 'FREE' \
    returning epoch";

const RELEASE: &str = "delete from cert_leases where id = $1 and subject = $2";
const LEASE_EXISTS: &str = "select exists (select 1 from cert_leases where id = $1)";
const LEASES_STANDING_PG: &str = "select id from cert_leases where id = any($1)";
/// PostgreSQL's grants and releases of one batch, one round trip (migration 0105
/// describes the function): the lock row as the statement found it, the epoch granted,
/// the number of leases inserted (all or none) and the ids released. The share lock is
/// taken only on a `FREE` row, so it never waits for an import that holds the lock,
/// only for one marking it pending right then; after that wait the row is re-checked,
/// nothing is inserted, and the row returned still reads `FREE` (the statement's
/// snapshot): a lost race, tried again.
const LEASE_BATCH_PG: &str = "select state, epoch, run_id, changed_at, granted_epoch, granted, \
    released from cert_lease_batch($1, $2, $3, $4, $5, $6, $7)";

/// The import's run must still be in progress for any of its lock steps.
macro_rules! run_in_progress {
    () => {
        "exists (select 1 from import_runs r where r.id = $1 and r.status = 'IN_PROGRESS')"
    };
}

/// FREE → PENDING with a new epoch. A lock left behind by a run that is no longer in
/// progress (its process died and nobody freed it yet) is taken over.
const MARK_PENDING: &str = concat!(
    "update cert_lock set state = 'PENDING', epoch = epoch + 1, run_id = $1, changed_at = $2 \
     where id = 1 and (state = 'FREE' or not exists (select 1 from import_runs o \
         where o.id = cert_lock.run_id and o.status = 'IN_PROGRESS')) \
     and ",
    run_in_progress!(),
    " returning epoch"
);
const OUTSTANDING: &str = "select count(*) from cert_leases where expires_at > $1";
const FORGET_EXPIRED: &str = "delete from cert_leases where expires_at <= $1";
const HOLD: &str = concat!(
    "update cert_lock set state = 'HELD', changed_at = $3 \
     where id = 1 and state = 'PENDING' and run_id = $1 and epoch = $2 and ",
    run_in_progress!()
);
const FREE: &str = "update cert_lock set state = 'FREE', run_id = null, changed_at = $2 \
    where id = 1 and run_id = $1 and state in ('PENDING', 'HELD')";

/// The replace transaction's first write: HELD → WRITING, for this run at this epoch.
/// Only this transaction ever sees WRITING (it frees the lock before committing), which
/// is what exempts its own writes from the MANUAL-row triggers.
const FENCE: &str = concat!(
    "update cert_lock set state = 'WRITING' \
     where id = 1 and state = 'HELD' and run_id = $1 and epoch = $2 and ",
    run_in_progress!()
);
/// The replace transaction's last write: the lock is free when the data commits.
const FREE_WRITING: &str = "update cert_lock set state = 'FREE', run_id = null, changed_at = $3 \
    where id = 1 and state = 'WRITING' and run_id = $1 and epoch = $2";

/// Frees a lock whose run is no longer in progress (its process died, or ended without
/// managing to free it). Run by the reaper on every tick, after reaping.
pub(super) const FREE_ORPHANED: &str = "update cert_lock set state = 'FREE', run_id = null, \
    changed_at = $1 where id = 1 and state <> 'FREE' and not exists \
    (select 1 from import_runs r where r.id = cert_lock.run_id and r.status = 'IN_PROGRESS')";
/// PostgreSQL: takes the lock row for the reaper's transaction unless a replace
/// transaction holds it (then its run is alive: the reaper leaves it for a later tick).
pub(super) const TRY_LOCK_ROW_PG: &str =
    "select id from cert_lock where id = 1 for update skip locked";

/// One release on either backend's pool: the rows deleted and, when none, whether
/// the lease exists (then it is another identity's).
macro_rules! release_one {
    ($pool:expr, $id:expr, $subject:expr) => {{
        let deleted = sqlx::query(RELEASE)
            .bind($id)
            .bind($subject)
            .execute($pool)
            .await?
            .rows_affected();
        let exists: bool = if deleted == 0 {
            sqlx::query_scalar(LEASE_EXISTS)
                .bind($id)
                .fetch_one($pool)
                .await?
        } else {
            false
        };
        (deleted, exists)
    }};
}

type LockTuple<T> = (String, i64, Option<i64>, T);
/// What [`LEASE_BATCH_PG`] returns: the lock row as the statement found it, the epoch
/// granted and the number of leases granted, and the ids released.
type BatchTuple = (
    String,
    i64,
    Option<i64>,
    chrono::DateTime<chrono::Utc>,
    Option<i64>,
    i64,
    Vec<String>,
);

fn lock_row<T>(
    (state, epoch, run_id, changed_at): LockTuple<T>,
    instant: impl Fn(T) -> Result<Timestamp, StoreError>,
) -> Result<LockRow, StoreError> {
    Ok(LockRow {
        state: LockState::from_stored(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("lock state {state:?}")))?,
        epoch,
        run_id,
        changed_at: instant(changed_at)?,
    })
}

/// `lease` with its instants truncated to what the database keeps, as a grant
/// answers it.
fn as_stored(lease: &NewLease) -> NewLease {
    NewLease {
        acquired_at: truncated(lease.acquired_at),
        expires_at: truncated(lease.expires_at),
        ..lease.clone()
    }
}

/// A batch of leases to grant on PostgreSQL, as the grant statements bind them.
struct Grants {
    /// The leases, their instants truncated to what the database keeps.
    leases: Vec<NewLease>,
    ids: Vec<String>,
    holders: Vec<String>,
    subjects: Vec<String>,
    acquired: Vec<chrono::DateTime<chrono::Utc>>,
    expires: Vec<chrono::DateTime<chrono::Utc>>,
}

impl Grants {
    fn new(leases: &[NewLease]) -> Self {
        let leases: Vec<NewLease> = leases.iter().map(as_stored).collect();
        let text = |f: fn(&NewLease) -> &str| leases.iter().map(|l| f(l).to_owned()).collect();
        let instants = |f: fn(&NewLease) -> Timestamp| leases.iter().map(|l| to_pg(f(l))).collect();
        Self {
            ids: text(|l| l.id.as_str()),
            holders: text(|l| l.holder.as_str()),
            subjects: text(|l| l.subject.as_str()),
            acquired: instants(|l| l.acquired_at),
            expires: instants(|l| l.expires_at),
            leases,
        }
    }

    /// Binds `$1`–`$5` of [`LEASE_BATCH_PG`].
    fn bind<'q, O>(
        &'q self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        query
            .bind(&self.ids)
            .bind(&self.holders)
            .bind(&self.subjects)
            .bind(&self.acquired)
            .bind(&self.expires)
    }

    /// The answers to the batch from what the statement returned: all granted, all
    /// refused, or `None` when the statement lost a race with an import that has
    /// ended since (the lock reads `FREE`), to be tried again.
    fn answer(
        &self,
        row: LockTuple<chrono::DateTime<chrono::Utc>>,
        granted_epoch: Option<i64>,
        count: i64,
    ) -> Result<Option<Vec<Grant>>, StoreError> {
        if let Some(fencing_token) = granted_epoch {
            if usize::try_from(count).ok() != Some(self.leases.len()) {
                return Err(StoreError::Corrupt(format!(
                    "{count} of {} leases granted",
                    self.leases.len()
                )));
            }
            let granted = self
                .leases
                .iter()
                .map(|lease| {
                    Grant::Granted(Lease {
                        lease: lease.clone(),
                        fencing_token,
                    })
                })
                .collect();
            return Ok(Some(granted));
        }
        let row = lock_row(row, from_pg)?;
        Ok((row.state != LockState::Free).then(|| self.refused(&row)))
    }

    fn refused(&self, row: &LockRow) -> Vec<Grant> {
        vec![Grant::Refused(Refusal::of(row)); self.leases.len()]
    }
}

/// The answers to a batch of releases on PostgreSQL, in the order of `ids`, once
/// `deleted` holds those deleted: one more statement tells, of the others, which
/// stand (another identity's) and which are unknown. A lease named twice is released
/// by the first.
async fn released_or_why(
    conn: &mut sqlx::PgConnection,
    ids: &[&str],
    mut deleted: HashSet<String>,
) -> Result<Vec<Release>, StoreError> {
    let others: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|id| !deleted.contains(*id))
        .collect();
    let standing: HashSet<String> = if others.is_empty() {
        HashSet::new()
    } else {
        sqlx::query_scalar(LEASES_STANDING_PG)
            .bind(&others)
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect()
    };
    Ok(ids
        .iter()
        .map(|id| {
            if deleted.remove(*id) {
                Release::Released
            } else if standing.contains(*id) {
                Release::NotYours
            } else {
                Release::Unknown
            }
        })
        .collect())
}

/// [`Store::grant_and_release_leases`] on PostgreSQL, over one connection.
async fn lease_batch_pg(
    conn: &mut sqlx::PgConnection,
    leases: &[NewLease],
    releases: &[(LeaseId, String)],
) -> Result<(Vec<Grant>, Vec<Release>), StoreError> {
    let grants = Grants::new(leases);
    let ids: Vec<&str> = releases.iter().map(|(id, _)| id.as_str()).collect();
    let subjects: Vec<&str> = releases.iter().map(|(_, s)| s.as_str()).collect();
    let mut deleted = None;
    let mut answers = None;
    // Grants that lose their race with an import look again (alone: the releases are
    // done); should the import have ended in between too, they try again.
    for _ in 0..3 {
        let releasing = if deleted.is_none() { ids.len() } else { 0 };
        let (state, epoch, run_id, changed_at, granted_epoch, count, released): BatchTuple = grants
            .bind(sqlx::query_as(LEASE_BATCH_PG))
            .bind(ids.get(..releasing).unwrap_or_default())
            .bind(subjects.get(..releasing).unwrap_or_default())
            .fetch_one(&mut *conn)
            .await?;
        deleted.get_or_insert(released);
        answers = if leases.is_empty() {
            Some(Vec::new())
        } else {
            grants.answer((state, epoch, run_id, changed_at), granted_epoch, count)?
        };
        if answers.is_some() {
            break;
        }
    }
    let answers = match answers {
        Some(answers) => answers,
        None => {
            let row = lock_row(
                sqlx::query_as::<_, LockTuple<chrono::DateTime<chrono::Utc>>>(LOCK_ROW)
                    .fetch_one(&mut *conn)
                    .await?,
                from_pg,
            )?;
            grants.refused(&row)
        }
    };
    let deleted = deleted.unwrap_or_default().into_iter().collect();
    let released = released_or_why(conn, &ids, deleted).await?;
    Ok((answers, released))
}

/// The lease desk's connection ([`Store::lease_connection`]). The pool checks a
/// connection with a round trip each time it hands one out; under load that doubled
/// the round trips of every batch, so the desk keeps one connection while batches
/// follow one another. It lets it go when a batch fails (to take another) and when the
/// desk falls idle ([`LeaseConnection::let_go`]): the pool waits for every connection
/// to come back before it closes.
#[derive(Debug)]
pub struct LeaseConnection {
    store: Store,
    kept: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
}

impl LeaseConnection {
    /// [`Store::grant_and_release_leases`] on the kept connection.
    pub async fn grant_and_release(
        &mut self,
        leases: &[NewLease],
        releases: &[(LeaseId, String)],
    ) -> Result<(Vec<Grant>, Vec<Release>), StoreError> {
        let pool = match &self.store {
            Store::Postgres(pool) => pool,
            Store::Sqlite(_) => return self.store.grant_and_release_leases(leases, releases).await,
        };
        let conn = match &mut self.kept {
            Some(conn) => conn,
            None => self.kept.insert(pool.acquire().await?),
        };
        let answered = lease_batch_pg(conn, leases, releases).await;
        if answered.is_err() {
            self.let_go();
        }
        answered
    }

    /// Whether a connection is kept.
    pub fn is_kept(&self) -> bool {
        self.kept.is_some()
    }

    /// Returns the kept connection to the pool.
    pub fn let_go(&mut self) {
        self.kept = None;
    }
}

impl Store {
    /// The lock's row: one read, which never waits for an import.
    pub async fn cert_lock(&self) -> Result<LockRow, StoreError> {
        match self {
            Self::Postgres(pool) => lock_row(
                sqlx::query_as::<_, LockTuple<chrono::DateTime<chrono::Utc>>>(LOCK_ROW)
                    .fetch_one(pool)
                    .await?,
                from_pg,
            ),
            Self::Sqlite(pool) => lock_row(
                sqlx::query_as::<_, LockTuple<String>>(LOCK_ROW)
                    .fetch_one(pool)
                    .await?,
                |text| from_text(&text),
            ),
        }
    }

    /// Grants `lease` unless an import wants or holds the lock: one round trip on
    /// PostgreSQL, a read and an insert on SQLite. A refusal answers at once,
    /// whatever the import is doing.
    pub async fn grant_lease(&self, lease: &NewLease) -> Result<Grant, StoreError> {
        let mut grants = self.grant_leases(std::slice::from_ref(lease)).await?;
        grants
            .pop()
            .ok_or_else(|| StoreError::Corrupt("a grant without an answer".into()))
    }

    /// Grants every lease of `leases`, or refuses them all, as [`Store::grant_lease`]
    /// does one: one statement for the whole batch on PostgreSQL (the edit service's
    /// concurrent requests share it, see [`crate::lock::LeaseDesk`]), one lease at a
    /// time on SQLite. The answers are in the order of `leases`.
    pub async fn grant_leases(&self, leases: &[NewLease]) -> Result<Vec<Grant>, StoreError> {
        Ok(self.grant_and_release_leases(leases, &[]).await?.0)
    }

    /// The grants and releases of one batch of the lease desk, answered as
    /// [`Store::grant_leases`] and [`Store::release_leases`] answer them: on
    /// PostgreSQL one call of `cert_lease_batch` (migration 0105) for both, so that the
    /// edit service's acquire-then-release traffic costs one statement per batch (and
    /// one more when some releases name leases not the caller's, to tell whose they
    /// are); on SQLite one lease at a time.
    pub async fn grant_and_release_leases(
        &self,
        leases: &[NewLease],
        releases: &[(LeaseId, String)],
    ) -> Result<(Vec<Grant>, Vec<Release>), StoreError> {
        let pool = match self {
            Self::Postgres(pool) => pool,
            Self::Sqlite(pool) => {
                let mut grants = Vec::with_capacity(leases.len());
                for lease in leases {
                    grants.push(self.grant_sqlite(pool, &as_stored(lease)).await?);
                }
                let mut released = Vec::with_capacity(releases.len());
                for (id, subject) in releases {
                    released.push(self.release_lease(id, subject).await?);
                }
                return Ok((grants, released));
            }
        };
        let mut conn = pool.acquire().await?;
        lease_batch_pg(&mut conn, leases, releases).await
    }

    /// A connection for the lease desk's batches, kept from one batch to the next.
    pub fn lease_connection(&self) -> LeaseConnection {
        LeaseConnection {
            store: self.clone(),
            kept: None,
        }
    }

    /// SQLite's grant: a read first (an insert would wait for the replace's write
    /// lock), then the insert while the row says `FREE`.
    async fn grant_sqlite(
        &self,
        pool: &sqlx::SqlitePool,
        lease: &NewLease,
    ) -> Result<Grant, StoreError> {
        for _ in 0..3 {
            let row = self.cert_lock().await?;
            if row.state != LockState::Free {
                return Ok(Grant::Refused(Refusal::of(&row)));
            }
            let epoch: Option<i64> = sqlx::query_scalar(GRANT_SQLITE)
                .bind(lease.id.as_str())
                .bind(lease.holder.as_str())
                .bind(&lease.subject)
                .bind(to_text(lease.acquired_at))
                .bind(to_text(lease.expires_at))
                .fetch_optional(pool)
                .await?;
            if let Some(fencing_token) = epoch {
                return Ok(Grant::Granted(Lease {
                    lease: lease.clone(),
                    fencing_token,
                }));
            }
        }
        Ok(Grant::Refused(Refusal::of(&self.cert_lock().await?)))
    }

    /// Ends each lease of `releases` (id, subject) as [`Store::release_lease`] ends
    /// one: one statement for the batch on PostgreSQL (and one more when some were not
    /// released, to tell whose they are), one lease at a time on SQLite. The answers
    /// are in the order of `releases`; a lease named twice is released by the first.
    pub async fn release_leases(
        &self,
        releases: &[(LeaseId, String)],
    ) -> Result<Vec<Release>, StoreError> {
        Ok(self.grant_and_release_leases(&[], releases).await?.1)
    }

    /// Ends lease `id` if `subject` took it. Idempotent: an unknown (or already
    /// released) lease is [`Release::Unknown`]; another identity's lease is left alone.
    pub async fn release_lease(&self, id: &LeaseId, subject: &str) -> Result<Release, StoreError> {
        let (id, subject) = (id.as_str(), subject);
        let (deleted, exists) = match self {
            Self::Postgres(pool) => release_one!(pool, id, subject),
            Self::Sqlite(pool) => release_one!(pool, id, subject),
        };
        Ok(match (deleted, exists) {
            (0, true) => Release::NotYours,
            (0, false) => Release::Unknown,
            _ => Release::Released,
        })
    }

    /// Marks the lock pending for run `run_id` with a new epoch, which it returns: from
    /// now on leases are refused. `None` when the run is no longer in progress, or
    /// another run in progress has the lock: the run is fenced.
    pub async fn mark_cert_lock_pending(
        &self,
        run_id: i64,
        now: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        let now = truncated(now);
        Ok(match self {
            Self::Postgres(pool) => {
                sqlx::query_scalar(MARK_PENDING)
                    .bind(run_id)
                    .bind(to_pg(now))
                    .fetch_optional(pool)
                    .await?
            }
            Self::Sqlite(pool) => {
                sqlx::query_scalar(MARK_PENDING)
                    .bind(run_id)
                    .bind(to_text(now))
                    .fetch_optional(pool)
                    .await?
            }
        })
    }

    /// The number of leases neither released nor expired at `now`.
    pub async fn outstanding_leases(&self, now: Timestamp) -> Result<u64, StoreError> {
        let count: i64 = match self {
            Self::Postgres(pool) => {
                sqlx::query_scalar(OUTSTANDING)
                    .bind(to_pg(now))
                    .fetch_one(pool)
                    .await?
            }
            Self::Sqlite(pool) => {
                sqlx::query_scalar(OUTSTANDING)
                    .bind(to_text(now))
                    .fetch_one(pool)
                    .await?
            }
        };
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// PENDING → HELD for run `run_id` at `epoch`; `false` (nothing changed) when the
    /// lock is no longer this run's at this epoch or the run is no longer in progress.
    /// Expired leases are forgotten on the way: none can count again.
    pub async fn hold_cert_lock(
        &self,
        run_id: i64,
        epoch: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let now = truncated(now);
        let held = match self {
            Self::Postgres(pool) => {
                sqlx::query(FORGET_EXPIRED)
                    .bind(to_pg(now))
                    .execute(pool)
                    .await?;
                sqlx::query(HOLD)
                    .bind(run_id)
                    .bind(epoch)
                    .bind(to_pg(now))
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
            Self::Sqlite(pool) => {
                sqlx::query(FORGET_EXPIRED)
                    .bind(to_text(now))
                    .execute(pool)
                    .await?;
                sqlx::query(HOLD)
                    .bind(run_id)
                    .bind(epoch)
                    .bind(to_text(now))
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        };
        Ok(held == 1)
    }

    /// Frees the lock if run `run_id` wants or holds it (after a failure, a
    /// cancellation, a shutdown); `false` when it did not. Every exit of an import
    /// calls it: it is a no-op when the replace already freed the lock as it committed,
    /// or when another run took it over.
    pub async fn free_cert_lock(&self, run_id: i64, now: Timestamp) -> Result<bool, StoreError> {
        let now = truncated(now);
        let freed = match self {
            Self::Postgres(pool) => sqlx::query(FREE)
                .bind(run_id)
                .bind(to_pg(now))
                .execute(pool)
                .await?
                .rows_affected(),
            Self::Sqlite(pool) => sqlx::query(FREE)
                .bind(run_id)
                .bind(to_text(now))
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(freed == 1)
    }
}

/// The fence check, first in the PostgreSQL replace transaction: waits for the lock
/// row's lock (a reaper's transaction ends first), then moves HELD → WRITING if the
/// lock is still this run's at this epoch. `false`: fenced, write nothing. Also bounds
/// how long the transaction may sit idle (a hung importer must not keep the row).
pub(super) async fn fence_pg(
    tx: &mut Transaction<'static, Postgres>,
    fence: &Fence,
) -> Result<bool, StoreError> {
    let idle_ms = fence.idle_timeout.as_millis().clamp(1, i32::MAX as u128);
    sqlx::query("select set_config('idle_in_transaction_session_timeout', $1, true)")
        .bind(idle_ms.to_string())
        .execute(&mut **tx)
        .await?;
    sqlx::query("select id from cert_lock where id = 1 for update")
        .execute(&mut **tx)
        .await?;
    // A new statement, so a new snapshot: it sees whatever the reaper committed
    // while this transaction waited for the row.
    let updated = sqlx::query(FENCE)
        .bind(fence.run_id)
        .bind(fence.epoch)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(updated == 1)
}

/// The fence check, first in the SQLite replace transaction (`begin immediate` already
/// holds the one write lock).
pub(super) async fn fence_sqlite(
    tx: &mut Transaction<'static, Sqlite>,
    fence: &Fence,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(FENCE)
        .bind(fence.run_id)
        .bind(fence.epoch)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(updated == 1)
}

/// Frees the lock as the last write of the PostgreSQL replace transaction.
pub(super) async fn free_writing_pg(
    tx: &mut Transaction<'static, Postgres>,
    fence: &Fence,
) -> Result<(), StoreError> {
    sqlx::query(FREE_WRITING)
        .bind(fence.run_id)
        .bind(fence.epoch)
        .bind(to_pg(truncated(fence.at)))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Frees the lock as the last write of the SQLite replace transaction.
pub(super) async fn free_writing_sqlite(
    tx: &mut Transaction<'static, Sqlite>,
    fence: &Fence,
) -> Result<(), StoreError> {
    sqlx::query(FREE_WRITING)
        .bind(fence.run_id)
        .bind(fence.epoch)
        .bind(to_text(truncated(fence.at)))
        .execute(&mut **tx)
        .await?;
    Ok(())
}
