//! The lease desk: concurrent `AcquireCertLock` and `ReleaseCertLock` calls share
//! database statements.
//!
//! The edit service asks for a lease around every write, from many workers at once.
//! One statement per call made the database's per-statement cost (a round trip, a
//! commit) the whole price of a lease: under 64 concurrent clients the lock RPCs ran
//! at a sixth of a health check's rate (BENCHMARKS.md). The desk queues the calls and
//! hands whatever has queued to [`Store::grant_leases`] or [`Store::release_leases`]
//! as one batch: a lone call goes at once, alone; under load each statement carries
//! the calls that arrived while the previous one ran.
//!
//! A batch is all or nothing for the lock's decision: the lock is `FREE` for the
//! whole statement or for none of it, exactly as if its calls had come one after the
//! other. Should a batch's statement fail, its calls are retried one by one, so that
//! each caller gets the answer (or the error) of its own call.
//!
//! A call whose caller gives up (a cancelled RPC) still runs with its batch: a lease
//! granted so is simply never used, and stops counting when its TTL ends, as a lease
//! granted to an edit service that then crashed does.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use super::{Grant, LeaseId, NewLease, OwnImport, Release};
use crate::store::{Store, StoreError};

/// Calls per statement at most.
const MAX_BATCH: usize = 256;
/// Calls waiting for their batch at most; beyond, callers wait to be queued.
const QUEUE: usize = 4096;

/// Grants and releases edit leases in batches (see the module documentation).
#[derive(Debug, Clone)]
pub struct LeaseDesk {
    grants: mpsc::Sender<Call<NewLease, Grant>>,
    releases: mpsc::Sender<Call<(LeaseId, String), Release>>,
    own: OwnImport,
}

impl LeaseDesk {
    /// Opens the desk over `store`: its two clerks (grants, releases) are tasks on the
    /// current runtime, and stop when the last handle to the desk is dropped. While
    /// `own` (this process's import) wants or holds the lock, grants are refused
    /// without a statement.
    pub fn open(store: Store, own: OwnImport) -> Self {
        let (grants, granting) = mpsc::channel(QUEUE);
        let (releases, releasing) = mpsc::channel(QUEUE);
        tokio::spawn(serve(granting, Granting(store.clone())));
        tokio::spawn(serve(releasing, Releasing(store)));
        Self {
            grants,
            releases,
            own,
        }
    }

    /// Grants `lease` unless an import wants or holds the lock, as
    /// [`Store::grant_lease`] does.
    pub async fn grant(&self, lease: NewLease) -> Result<Grant, StoreError> {
        if let Some(refusal) = self.own.refusal() {
            return Ok(Grant::Refused(refusal));
        }
        ask(&self.grants, lease).await
    }

    /// Ends lease `id` if `subject` took it, as [`Store::release_lease`] does.
    pub async fn release(&self, id: LeaseId, subject: String) -> Result<Release, StoreError> {
        ask(&self.releases, (id, subject)).await
    }
}

/// One call waiting for its batch, and where its answer goes.
#[derive(Debug)]
struct Call<T, A> {
    item: T,
    answer: oneshot::Sender<Result<A, StoreError>>,
}

async fn ask<T, A>(queue: &mpsc::Sender<Call<T, A>>, item: T) -> Result<A, StoreError> {
    // The clerks stop only when every handle to the desk is gone, or when the
    // runtime shuts down: either way the service is going away.
    let closed = || StoreError::Query(sqlx::Error::PoolClosed);
    let (answer, answered) = oneshot::channel();
    queue
        .send(Call { item, answer })
        .await
        .map_err(|_| closed())?;
    answered.await.map_err(|_| closed())?
}

/// What a clerk does with a batch, and with one call.
trait Clerk: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Answer: Send + 'static;
    fn batch(
        &self,
        items: &[Self::Item],
    ) -> impl Future<Output = Result<Vec<Self::Answer>, StoreError>> + Send;
    fn one(
        &self,
        item: &Self::Item,
    ) -> impl Future<Output = Result<Self::Answer, StoreError>> + Send;
}

struct Granting(Store);

impl Clerk for Granting {
    type Item = NewLease;
    type Answer = Grant;
    async fn batch(&self, items: &[NewLease]) -> Result<Vec<Grant>, StoreError> {
        self.0.grant_leases(items).await
    }
    async fn one(&self, item: &NewLease) -> Result<Grant, StoreError> {
        self.0.grant_lease(item).await
    }
}

struct Releasing(Store);

impl Clerk for Releasing {
    type Item = (LeaseId, String);
    type Answer = Release;
    async fn batch(&self, items: &[(LeaseId, String)]) -> Result<Vec<Release>, StoreError> {
        self.0.release_leases(items).await
    }
    async fn one(&self, (id, subject): &(LeaseId, String)) -> Result<Release, StoreError> {
        self.0.release_lease(id, subject).await
    }
}

/// Takes what has queued (at least one call: it waits for that), answers it as one
/// batch, and again, until the desk closes.
async fn serve<C: Clerk>(mut queue: mpsc::Receiver<Call<C::Item, C::Answer>>, clerk: C) {
    let mut calls = Vec::with_capacity(MAX_BATCH);
    loop {
        if queue.recv_many(&mut calls, MAX_BATCH).await == 0 {
            return;
        }
        let (items, answers): (Vec<C::Item>, Vec<_>) =
            calls.drain(..).map(|call| (call.item, call.answer)).unzip();
        match clerk.batch(&items).await {
            Ok(results) if results.len() == items.len() => {
                for (answer, result) in answers.into_iter().zip(results) {
                    let _ = answer.send(Ok(result));
                }
            }
            _ => {
                for (item, answer) in items.iter().zip(answers) {
                    let _ = answer.send(clerk.one(item).await);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{LeaseHolder, LockState};

    fn lease() -> NewLease {
        let now = jiff::Timestamp::now();
        NewLease {
            id: LeaseId::random(),
            holder: LeaseHolder::parse("edit-service").expect("a valid holder"),
            subject: "editor".into(),
            acquired_at: now,
            expires_at: now,
        }
    }

    /// The store is closed: a grant that reached it would fail.
    #[tokio::test]
    async fn this_process_s_import_is_refused_without_a_statement() {
        let store = Store::connect("sqlite::memory:")
            .await
            .expect("an in-memory database");
        store.close().await;
        let own = OwnImport::default();
        let desk = LeaseDesk::open(store, own.clone());

        let claim = own.claim(42);
        claim.held();
        match desk.grant(lease()).await {
            Ok(Grant::Refused(refusal)) => {
                assert_eq!((refusal.run_id, refusal.state), (Some(42), LockState::Held));
            }
            other => panic!("expected a refusal from memory, got {other:?}"),
        }

        drop(claim);
        assert!(
            desk.grant(lease()).await.is_err(),
            "without the claim the grant goes to the (closed) database"
        );
    }
}
