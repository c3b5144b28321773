//! What this process's own import holds of the lock, known without asking the
//! database.
//!
//! While an import runs, every `AcquireCertLock` is refused, and each refusal used to
//! be a database read on a machine whose cores the import was using: under 64
//! clients its p99 was 8.5–12.7 ms (BENCHMARKS.md). When the import is this process's
//! own, the process knows the answer already: [`OwnImport`] is set by the importing
//! run around its side of the lock, and the lease desk refuses from it without a
//! statement.
//!
//! It only ever refuses, never grants, so it can never let an edit through that the
//! database would refuse. Its errors are all on the side of refusing:
//!
//! - It is set just before the run marks the lock pending, and cleared just after the
//!   run's replace commits (which frees the lock) or after its failure: for those
//!   instants a lease is refused that the database would have granted, exactly as if
//!   the call had come a moment later or earlier.
//! - A run fenced by another replica (declared lost while it was paused) keeps it set
//!   until the run notices, at its next statement; it is cleared when the run's future
//!   ends, however it ends (the [`Claim`] clears it on drop).
//!
//! Other replicas' imports, and the `import-file` CLI's, are still seen only in the
//! database, where every grant decides.

use std::sync::{Arc, Mutex, PoisonError};

use super::{LockState, RETRY_AFTER, Refusal};

/// This process's importing run and its hold on the lock, if any (see the module
/// documentation). Clones share it.
#[derive(Debug, Clone, Default)]
pub struct OwnImport(Arc<Mutex<Option<Held>>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    run_id: i64,
    state: LockState,
}

impl OwnImport {
    /// The refusal a lease gets now, when this process's import wants or holds the
    /// lock; `None` when only the database can tell.
    pub fn refusal(&self) -> Option<Refusal> {
        let held = *self.0.lock().unwrap_or_else(PoisonError::into_inner);
        held.map(|held| Refusal {
            run_id: Some(held.run_id),
            state: held.state,
            retry_after: RETRY_AFTER,
        })
    }

    /// Run `run_id` is about to mark the lock pending: leases are refused from now
    /// until the returned claim is dropped.
    pub fn claim(&self, run_id: i64) -> Claim {
        self.set(Some(Held {
            run_id,
            state: LockState::Pending,
        }));
        Claim {
            own: self.clone(),
            run_id,
        }
    }

    fn set(&self, held: Option<Held>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = held;
    }
}

/// A run's claim on [`OwnImport`]; dropping it clears the claim (unless another run
/// of this process has claimed since).
#[derive(Debug)]
pub struct Claim {
    own: OwnImport,
    run_id: i64,
}

impl Claim {
    /// The run now holds the lock exclusively.
    pub fn held(&self) {
        self.own.set(Some(Held {
            run_id: self.run_id,
            state: LockState::Held,
        }));
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut held = self.own.0.lock().unwrap_or_else(PoisonError::into_inner);
        if held.is_some_and(|held| held.run_id == self.run_id) {
            *held = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_refuses_until_dropped() {
        let own = OwnImport::default();
        assert_eq!(own.refusal(), None);
        let claim = own.claim(7);
        let refusal = own.refusal().expect("refused while claimed");
        assert_eq!(
            (refusal.run_id, refusal.state, refusal.retry_after),
            (Some(7), LockState::Pending, RETRY_AFTER)
        );
        claim.held();
        assert_eq!(own.refusal().map(|r| r.state), Some(LockState::Held));
        drop(claim);
        assert_eq!(own.refusal(), None);
    }

    #[test]
    fn an_older_claim_does_not_clear_a_newer_one() {
        let own = OwnImport::default();
        let stale = own.claim(1);
        let current = own.claim(2);
        drop(stale);
        assert_eq!(own.refusal().and_then(|r| r.run_id), Some(2));
        drop(current);
        assert_eq!(own.refusal(), None);
    }
}
