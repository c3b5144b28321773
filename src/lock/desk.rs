//! The lease desk: concurrent `AcquireCertLock` and `ReleaseCertLock` calls share
//! database statements.
//!
//! The edit service asks for a lease around every write, from many workers at once.
//! One statement per call made the database's per-statement cost (a round trip, a
//! commit) the whole price of a lease: under 64 concurrent clients the lock RPCs ran
//! at a sixth of a health check's rate (BENCHMARKS.md). The desk queues the calls and
//! hands whatever has queued to [`Store::grant_and_release_leases`] as one batch: a
//! lone call goes at once, alone (after the clerk has yielded once, so that handlers
//! about to queue a call can join it); under load each statement carries the calls
//! that arrived while the previous one ran, acquires and releases together. On PostgreSQL
//! that is one statement for both (separate statements for acquires and releases
//! left the database's CPU per statement the limit of an edit service's
//! acquire-then-release traffic).
//!
//! A batch is all or nothing for the lock's decision: the lock is `FREE` for the
//! whole statement or for none of it, exactly as if its calls had come one after the
//! other. Should a batch's statement fail, its calls are retried one by one, so that
//! each caller gets the answer (or the error) of its own call.
//!
//! A call whose caller gives up (a cancelled RPC) still runs with its batch: a lease
//! granted so is simply never used, and stops counting when its TTL ends, as a lease
//! granted to an edit service that then crashed does.

use tokio::sync::{mpsc, oneshot};

use super::{Grant, LeaseId, NewLease, OwnImport, Release};
use crate::store::{Store, StoreError};

/// Calls per statement at most.
const MAX_BATCH: usize = 256;
/// Calls waiting for their batch at most; beyond, callers wait to be queued.
const QUEUE: usize = 4096;
/// How long the clerk keeps its connection with no call waiting. Handing it back to
/// the pool at every empty queue cost a fresh checkout (and the pool's ping) whenever
/// the next call came a moment later; kept for good, it would hold up the pool's
/// close when the service stops.
const KEEP_IDLE: std::time::Duration = std::time::Duration::from_millis(50);

/// Grants and releases edit leases in batches (see the module documentation).
#[derive(Debug, Clone)]
pub struct LeaseDesk {
    calls: mpsc::Sender<Call>,
    own: OwnImport,
}

impl LeaseDesk {
    /// Opens the desk over `store`: its clerk is a task on the current runtime, and
    /// stops when the last handle to the desk is dropped. While `own` (this process's
    /// import) wants or holds the lock, grants are refused without a statement.
    pub fn open(store: Store, own: OwnImport) -> Self {
        let (calls, queue) = mpsc::channel(QUEUE);
        tokio::spawn(serve(queue, store));
        Self { calls, own }
    }

    /// Grants `lease` unless an import wants or holds the lock, as
    /// [`Store::grant_lease`] does.
    pub async fn grant(&self, lease: NewLease) -> Result<Grant, StoreError> {
        if let Some(refusal) = self.own.refusal() {
            return Ok(Grant::Refused(refusal));
        }
        let (answer, answered) = oneshot::channel();
        self.ask(Call::Grant(lease, answer), answered).await
    }

    /// Ends lease `id` if `subject` took it, as [`Store::release_lease`] does.
    pub async fn release(&self, id: LeaseId, subject: String) -> Result<Release, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.ask(Call::Release(id, subject, answer), answered).await
    }

    async fn ask<A>(&self, call: Call, answered: Answered<A>) -> Result<A, StoreError> {
        // The clerk stops only when every handle to the desk is gone, or when the
        // runtime shuts down: either way the service is going away.
        let closed = || StoreError::Query(sqlx::Error::PoolClosed);
        self.calls.send(call).await.map_err(|_| closed())?;
        answered.await.map_err(|_| closed())?
    }
}

type Answer<A> = oneshot::Sender<Result<A, StoreError>>;
type Answered<A> = oneshot::Receiver<Result<A, StoreError>>;

/// One call waiting for its batch, and where its answer goes.
#[derive(Debug)]
enum Call {
    Grant(NewLease, Answer<Grant>),
    Release(LeaseId, String, Answer<Release>),
}

/// Takes what has queued (at least one call: it waits for that), answers it as one
/// batch, and again, until the desk closes.
async fn serve(mut queue: mpsc::Receiver<Call>, store: Store) {
    let mut calls = Vec::with_capacity(MAX_BATCH);
    let mut connection = store.lease_connection();
    loop {
        let received = if connection.is_kept() {
            match tokio::time::timeout(KEEP_IDLE, queue.recv_many(&mut calls, MAX_BATCH)).await {
                Ok(received) => received,
                Err(_idle) => {
                    connection.let_go();
                    queue.recv_many(&mut calls, MAX_BATCH).await
                }
            }
        } else {
            queue.recv_many(&mut calls, MAX_BATCH).await
        };
        if received == 0 {
            return;
        }
        if calls.len() < MAX_BATCH {
            // Lets the handlers that are ready run first, so that the calls they are
            // about to queue join this batch instead of waiting out its round trip.
            tokio::task::yield_now().await;
            while calls.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(call) => calls.push(call),
                    Err(_) => break,
                }
            }
        }
        let (mut leases, mut grant_answers) = (Vec::new(), Vec::new());
        let (mut releases, mut release_answers) = (Vec::new(), Vec::new());
        for call in calls.drain(..) {
            match call {
                Call::Grant(lease, answer) => {
                    leases.push(lease);
                    grant_answers.push(answer);
                }
                Call::Release(id, subject, answer) => {
                    releases.push((id, subject));
                    release_answers.push(answer);
                }
            }
        }
        let answered = connection.grant_and_release(&leases, &releases).await;
        match answered {
            Ok((grants, released))
                if grants.len() == leases.len() && released.len() == releases.len() =>
            {
                answer_all(grant_answers, grants);
                answer_all(release_answers, released);
            }
            _ => {
                for (lease, answer) in leases.iter().zip(grant_answers) {
                    let _ = answer.send(store.grant_lease(lease).await);
                }
                for ((id, subject), answer) in releases.iter().zip(release_answers) {
                    let _ = answer.send(store.release_lease(id, subject).await);
                }
            }
        }
    }
}

fn answer_all<A>(answers: Vec<Answer<A>>, results: Vec<A>) {
    for (answer, result) in answers.into_iter().zip(results) {
        let _ = answer.send(Ok(result));
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
