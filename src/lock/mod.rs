//! The certification lock (design §6): while an import replaces certification
//! records, the ERP's certification-edit service must not write.
//!
//! A readers-writer lock with writer preference, held in the database (migration
//! 0104) so that every replica, the `import-file` CLI and the ERP's own triggers agree:
//!
//! - **Edit leases are the readers.** The edit service asks for one before each write
//!   ([`Store::grant_lease`](crate::store::Store::grant_lease)); any number may be
//!   held at once, each with a TTL capped by [`LockSettings::max_ttl`]. A lease carries
//!   the lock's current epoch as its fencing token.
//! - **An import is the writer.** [`hold_for_replace`] marks the lock `PENDING` (from
//!   that instant new leases are refused), waits until every outstanding lease has been
//!   released or has expired, and marks it `HELD`. The replace transaction then checks,
//!   under the lock row's lock, that it still holds the lock at its epoch (its
//!   [`Fence`]), and frees it as it commits. On any other exit the lock is freed by
//!   [`Store::free_cert_lock`](crate::store::Store::free_cert_lock), and if the
//!   importing process died, by the reaper of whichever replica notices.
//! - **The epoch fences stale importers.** Each import increments it; an importer that
//!   was paused while another replica declared its run lost and imported in its place
//!   finds another epoch (or a free lock) and writes nothing.
//! - **Triggers are the defence in depth**: the database itself refuses writes of
//!   `MANUAL` rows while an import holds the lock (see the migration for how the
//!   importing transaction exempts itself).
//!
//! Time: lease expiry is decided by the service's [`Clock`] (as heartbeats and
//! schedules are), not by the database's clock, so tests drive it with a manual clock.
//! Replicas' clocks must agree to well within a lease's TTL, as they must already for
//! heartbeats.
//!
//! Dry runs do not take the lock: they write nothing.
//!
//! # Layout
//!
//! - this file: states, leases, refusals, settings, and the import's side;
//! - [`lease`]: the request fields of `AcquireCertLock`/`ReleaseCertLock` as domain
//!   types;
//! - [`LeaseDesk`]: concurrent lease calls share database statements;
//! - [`OwnImport`]: this process's own import refuses leases without a statement.

mod desk;
pub mod lease;
mod own;

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::clock::{Clock, SystemClock};
use crate::store::{Store, StoreError};

pub use desk::LeaseDesk;
pub use lease::{LeaseHolder, LeaseId, LeaseTtl};
pub use own::{Claim, OwnImport};

/// The message of every refusal because an import runs: the API's `FAILED_PRECONDITION`
/// and the database triggers' error say exactly this (design §4).
pub const IN_PROGRESS_MESSAGE: &str = "Certification data update is in Progress.";

/// The `ErrorInfo` reason of that refusal.
pub const IN_PROGRESS_REASON: &str = "IMPORT_IN_PROGRESS";

/// How long a refused edit service is told to wait before asking again.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Where the lock is (migration 0104 describes each state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// No import needs it: leases are granted.
    Free,
    /// An import waits for outstanding leases: new ones are refused.
    Pending,
    /// An import holds it exclusively: leases and manual writes are refused.
    Held,
    /// Seen only inside the importing transaction (never committed).
    Writing,
}

impl LockState {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "FREE",
            Self::Pending => "PENDING",
            Self::Held => "HELD",
            Self::Writing => "WRITING",
        }
    }

    /// The state whose stored form is `text`.
    pub fn from_stored(text: &str) -> Option<Self> {
        [Self::Free, Self::Pending, Self::Held, Self::Writing]
            .into_iter()
            .find(|state| state.as_str() == text)
    }
}

/// The lock's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRow {
    /// Where it is.
    pub state: LockState,
    /// The fencing token: incremented by each import.
    pub epoch: i64,
    /// The import that wants or holds it; `None` when free.
    pub run_id: Option<i64>,
    /// When the state last changed (a record, decides nothing).
    pub changed_at: Timestamp,
}

/// A lease to grant: everything but the fencing token, which the database assigns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLease {
    /// Its id.
    pub id: LeaseId,
    /// What the edit service is doing.
    pub holder: LeaseHolder,
    /// The caller's identity: only it may release the lease.
    pub subject: String,
    /// When it was granted.
    pub acquired_at: Timestamp,
    /// When it stops counting unless released before.
    pub expires_at: Timestamp,
}

/// A granted edit lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// As asked for, with its id and times.
    pub lease: NewLease,
    /// The lock's epoch when it was granted.
    pub fencing_token: i64,
}

/// What [`Store::grant_lease`](crate::store::Store::grant_lease) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// The lease is held from now.
    Granted(Lease),
    /// An import wants or holds the lock; nothing was written.
    Refused(Refusal),
}

/// Why a lease was refused: an import wants or holds the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The import, when the lock names one.
    pub run_id: Option<i64>,
    /// `Pending` or `Held`.
    pub state: LockState,
    /// When to ask again.
    pub retry_after: Duration,
}

impl Refusal {
    /// The refusal a lock row in state `row.state` gives.
    pub fn of(row: &LockRow) -> Self {
        Self {
            run_id: row.run_id,
            state: row.state,
            retry_after: RETRY_AFTER,
        }
    }
}

/// What [`Store::release_lease`](crate::store::Store::release_lease) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The caller's lease ended now.
    Released,
    /// No such lease (never granted, released before, or expired and forgotten).
    Unknown,
    /// The lease belongs to another identity; it still stands.
    NotYours,
}

/// The lock's settings.
#[derive(Debug, Clone)]
pub struct LockSettings {
    /// The longest lease granted (`--lease-max-ttl`); longer requests are capped.
    /// Since leases are refused from the moment an import marks the lock pending, this
    /// also bounds how long an import waits for edits.
    pub max_ttl: Duration,
    /// How often a waiting import looks at the outstanding leases.
    pub poll_interval: Duration,
    /// Where "now" comes from for lease expiry.
    pub clock: Arc<dyn Clock>,
    /// PostgreSQL ends a replace transaction that stays idle this long (its importer
    /// hangs), so that it cannot hold the lock row, and with it the reaper, forever.
    pub replace_idle_timeout: Duration,
    /// This process's importing run, for the lease desk to refuse from memory. The
    /// worker's settings and the API's desk share it.
    pub own: OwnImport,
}

impl Default for LockSettings {
    fn default() -> Self {
        Self {
            max_ttl: Duration::from_secs(30),
            poll_interval: Duration::from_millis(100),
            clock: Arc::new(SystemClock),
            replace_idle_timeout: Duration::from_secs(60),
            own: OwnImport::default(),
        }
    }
}

/// What the replace transaction checks before it writes anything: that the lock is
/// still `HELD` for this run at this epoch, and the run still in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The importing run.
    pub run_id: i64,
    /// The epoch it marked the lock pending at.
    pub epoch: i64,
    /// See [`LockSettings::replace_idle_timeout`].
    pub idle_timeout: Duration,
    /// When the replace began (recorded as the lock's change when it frees it).
    pub at: Timestamp,
}

/// Why the import could not take or keep the lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock is not (or no longer) this run's: another replica declared the run
    /// lost and freed or took the lock. The import must write nothing.
    #[error(
        "fenced: run {run_id} no longer holds the certification lock (epoch {epoch}); \
         another process declared it lost or took the lock over. Nothing was written."
    )]
    Fenced {
        /// The run that was fenced.
        run_id: i64,
        /// The epoch it had (0 when it never got one).
        epoch: i64,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The import's side of the lock, up to the replace: marks the lock pending for
/// `run_id`, waits until no lease is outstanding (calling `waiting` with their number
/// whenever it changes), then holds it. Returns the fence for the replace.
///
/// Leases are refused from the first statement on. A lease counts until it is released
/// or it expires by `settings.clock`; none is granted after the lock is pending, so the
/// wait ends at most [`LockSettings::max_ttl`] later (by that clock), however the edit
/// service behaves.
///
/// On `Err` the lock may still be pending for this run: the caller frees it
/// ([`Store::free_cert_lock`]), as it must on every exit.
#[tracing::instrument(
    name = "lock_wait",
    skip_all,
    fields(run_id, epoch, leases_waited_for),
    err
)]
pub async fn hold_for_replace(
    store: &Store,
    run_id: i64,
    settings: &LockSettings,
    mut waiting: impl FnMut(u64),
) -> Result<Fence, LockError> {
    let fenced = |epoch| LockError::Fenced { run_id, epoch };
    let pending_at = settings.clock.now();
    let epoch = store
        .mark_cert_lock_pending(run_id, pending_at)
        .await?
        .ok_or_else(|| fenced(0))?;
    let span = tracing::Span::current();
    span.record("run_id", run_id).record("epoch", epoch);

    let deadline = pending_at
        .checked_add(SignedDuration::try_from(settings.max_ttl).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX);
    let mut last = None;
    let mut most = 0;
    let waiting_since = std::time::Instant::now();
    loop {
        let now = settings.clock.now();
        let outstanding = store.outstanding_leases(now).await?;
        most = most.max(outstanding);
        if last != Some(outstanding) {
            waiting(outstanding);
            last = Some(outstanding);
        }
        if outstanding == 0 {
            break;
        }
        if now >= deadline {
            // Only a lease granted with a longer cap (another replica's setting) can
            // outlive the deadline: the cap of the importing replica decides.
            tracing::warn!(
                run_id,
                outstanding,
                "edit leases still outstanding after the longest TTL; replacing anyway"
            );
            break;
        }
        tokio::time::sleep(settings.poll_interval).await;
    }
    span.record("leases_waited_for", most as i64);
    crate::telemetry::metrics().record_lock_wait(waiting_since.elapsed(), most);

    if !store
        .hold_cert_lock(run_id, epoch, settings.clock.now())
        .await?
    {
        return Err(fenced(epoch));
    }
    Ok(Fence {
        run_id,
        epoch,
        idle_timeout: settings.replace_idle_timeout,
        at: settings.clock.now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_from_their_stored_form() {
        for state in [
            LockState::Free,
            LockState::Pending,
            LockState::Held,
            LockState::Writing,
        ] {
            assert_eq!(LockState::from_stored(state.as_str()), Some(state));
        }
        assert_eq!(LockState::from_stored("free"), None);
    }

    #[test]
    fn fenced_errors_start_with_fenced() {
        let error = LockError::Fenced {
            run_id: 4,
            epoch: 7,
        };
        assert!(error.to_string().starts_with("fenced"));
    }
}
