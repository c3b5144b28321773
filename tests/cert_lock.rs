//! The certification lock through the real API (design §4, §6; issue 5), on both
//! backends: refusals during an import (fast, exact, with details), writer preference
//! (an import waits for live leases, refuses new ones, and replaces only once they are
//! released or expired), who may release a lease, validation, and the lock freed on
//! shutdown.

mod common;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alis_import::api::proto::{self, RunPhase};
use alis_import::lock::LockState;
use alis_import::store::{RunStatus, Store};
use common::app::{
    AppOptions, TestApp, connect, spawn_app, spawn_app_on, spawn_app_with, test_epoch,
};
use common::lock::{
    acquire, assert_refused_for, at_phase, create_task, ended, release, run_now, scalar,
    small_sample, try_sql, wait_for_run,
};
use support::{Backend, Guard};
use tonic::Code;
use tonic_types::StatusExt;

on_both_backends!(
    a_hundred_concurrent_acquires_during_an_import_are_refused_at_once,
    an_import_waits_for_live_leases_and_refuses_new_ones,
    leases_never_released_hold_the_import_until_they_expire,
    only_the_identity_that_took_a_lease_may_release_it,
    with_tokens_leases_belong_to_the_token_subject_and_need_the_cert_editor_role,
    lease_requests_are_validated_and_long_ttls_capped,
    shutting_down_while_waiting_for_edits_frees_the_lock,
    shutting_down_while_holding_the_lock_frees_it,
    the_service_stops_promptly_after_a_burst_of_leases,
);

/// Concurrent AcquireCertLock calls while an import holds the lock.
const CALLS: usize = 120;

/// A refusal must come well before this, however loaded the machine.
const REFUSAL_BOUND: Duration = Duration::from_secs(2);

fn gated() -> (Arc<tokio::sync::Semaphore>, AppOptions) {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let options = AppOptions {
        replace_gate: Some(Arc::clone(&gate)),
        ..AppOptions::default()
    };
    (gate, options)
}

async fn lock_state(store: &Store) -> LockState {
    store.cert_lock().await.expect("read the lock").state
}

/// Reads WatchRun messages until `done(phase, detail)`; records every (phase, detail).
async fn watch_until(
    stream: &mut tonic::Streaming<proto::WatchRunResponse>,
    seen: &mut Vec<(RunPhase, String)>,
    done: impl Fn(RunPhase, &str) -> bool,
) {
    loop {
        let message = tokio::time::timeout(common::lock::DEADLINE, stream.message())
            .await
            .expect("the awaited phase comes in time")
            .expect("stream ok")
            .unwrap_or_else(|| panic!("the run ended first; seen {seen:?}"));
        let run = message.run.expect("run");
        let phase = RunPhase::try_from(run.phase).unwrap_or(RunPhase::Unspecified);
        seen.push((phase, message.detail.clone()));
        if done(phase, &message.detail) {
            return;
        }
    }
}

/// Asserts that run `run_id` keeps satisfying `still` for `period` (the import must
/// not move on by itself: its lock polls several times meanwhile).
async fn assert_stays(
    store: &Store,
    run_id: i64,
    period: Duration,
    still: impl Fn(&alis_import::store::RunRecord) -> bool,
) {
    let until = tokio::time::Instant::now() + period;
    while tokio::time::Instant::now() < until {
        let run = store.get_run(run_id).await.unwrap().unwrap();
        assert!(still(&run), "the run moved on: {run:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[((sorted.len() - 1) * p) / 100]
}

async fn a_hundred_concurrent_acquires_during_an_import_are_refused_at_once(backend: Backend) {
    let (gate, options) = gated();
    let app = spawn_app_with(backend, options).await;
    app.seed_sample(&small_sample()).await;
    let task = create_task(&app).await;
    let run = run_now(&app.client, task.id).await;
    wait_for_run(&app.store, run.id, "reached the replace", |r| {
        at_phase(r, "REPLACING")
    })
    .await;
    assert_eq!(lock_state(&app.store).await, LockState::Held);

    // Several connections, as several edit-service pods would have.
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(connect(app.addr).await);
    }
    let calls = (0..CALLS).map(|i| {
        let client = clients[i % clients.len()].clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = acquire(
                &client,
                &format!("editor {i}"),
                Some(Duration::from_secs(10)),
            )
            .await;
            (started.elapsed(), result)
        })
    });
    let mut latencies = Vec::new();
    for joined in futures_util::future::join_all(calls).await {
        let (elapsed, result) = joined.expect("call task");
        let status = result.expect_err("refused while the import holds the lock");
        assert_refused_for(&status, run.id);
        assert_eq!(
            status
                .get_error_details()
                .error_info()
                .and_then(|i| i.metadata.get("lock_state").cloned())
                .as_deref(),
            Some("HELD")
        );
        latencies.push(elapsed);
    }
    latencies.sort();
    let (p50, p99, max) = (
        percentile(&latencies, 50),
        percentile(&latencies, 99),
        latencies[latencies.len() - 1],
    );
    eprintln!("{backend}: {CALLS} concurrent refusals: p50 {p50:?}, p99 {p99:?}, max {max:?}");
    assert!(max < REFUSAL_BOUND, "a refusal took {max:?}");

    // None of them waited for the import: it is still held before its replace.
    let held = app.store.get_run(run.id).await.unwrap().unwrap();
    assert_eq!(held.status, RunStatus::InProgress);
    assert!(at_phase(&held, "REPLACING"), "{held:?}");
    assert_eq!(
        scalar(&app.store, "select count(*) from cert_leases").await,
        0,
        "refusals write nothing"
    );

    gate.add_permits(1);
    let done = wait_for_run(&app.store, run.id, "ended", ended).await;
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    assert_eq!(lock_state(&app.store).await, LockState::Free);
    let lease = acquire(&app.client, "editor after the import", None)
        .await
        .expect("a lease is granted again after the import");
    assert_eq!(lease.fencing_token, 1, "the import's epoch");
}

async fn an_import_waits_for_live_leases_and_refuses_new_ones(backend: Backend) {
    let (gate, options) = gated();
    let app = spawn_app_with(backend, options).await;
    app.seed_sample(&small_sample()).await;
    let task = create_task(&app).await;
    let first = acquire(&app.client, "editor A", None)
        .await
        .expect("lease A");
    let second = acquire(&app.client, "editor B", None)
        .await
        .expect("lease B");
    assert_eq!(first.fencing_token, 0, "no import has run yet");

    let run = run_now(&app.client, task.id).await;
    let mut stream = app
        .client
        .clone()
        .watch_run(proto::WatchRunRequest { run_id: run.id })
        .await
        .expect("watch run")
        .into_inner();
    let mut seen = Vec::new();
    watch_until(&mut stream, &mut seen, |phase, detail| {
        phase == RunPhase::WaitingForEdits && detail == "2 edit leases outstanding"
    })
    .await;

    // Writer preference: the lock is pending, so a third lease is refused, naming the
    // run, although the import has not started replacing.
    assert_eq!(lock_state(&app.store).await, LockState::Pending);
    let third = acquire(&app.client, "editor C", None)
        .await
        .expect_err("refused while the import waits");
    assert_refused_for(&third, run.id);

    // The holders of live leases still finish their edits: the database lets a MANUAL
    // write through while the lock is only pending.
    let employee = scalar(
        &app.store,
        "select min(id) from employees where status = 'ACTIVE'",
    )
    .await;
    try_sql(
        &app.store,
        &format!(
            "insert into certifications (employee_id, license_type, status, source) \
             values ({employee}, 'Provisional', 'ACT', 'MANUAL')"
        ),
    )
    .await
    .expect("a lease holder's write passes while the import waits");
    assert_eq!(common::records_written_by(&app.store, run.id).await, 0);

    release(&app.client, &first.id).await.expect("release A");
    watch_until(&mut stream, &mut seen, |phase, detail| {
        phase == RunPhase::WaitingForEdits && detail == "1 edit lease outstanding"
    })
    .await;
    let waiting = app.store.get_run(run.id).await.unwrap().unwrap();
    assert!(at_phase(&waiting, "WAITING_FOR_EDITS"), "{waiting:?}");
    assert_eq!(common::records_written_by(&app.store, run.id).await, 0);

    release(&app.client, &second.id).await.expect("release B");
    watch_until(&mut stream, &mut seen, |phase, _| {
        phase == RunPhase::Replacing
    })
    .await;
    let first_replacing = seen
        .iter()
        .position(|(phase, _)| *phase == RunPhase::Replacing);
    let last_waiting = seen.iter().rposition(|(phase, detail)| {
        *phase == RunPhase::WaitingForEdits && detail == "1 edit lease outstanding"
    });
    assert!(
        last_waiting < first_replacing,
        "the replace started only after the last lease was released: {seen:?}"
    );

    gate.add_permits(1);
    let done = wait_for_run(&app.store, run.id, "ended", ended).await;
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    assert!(common::records_written_by(&app.store, run.id).await > 0);
    assert_eq!(
        scalar(
            &app.store,
            &format!("select count(*) from certifications where employee_id = {employee} and source = 'MANUAL'"),
        )
        .await,
        0,
        "the import replaced the active employee's manual record too"
    );
    assert_eq!(lock_state(&app.store).await, LockState::Free);
}

async fn leases_never_released_hold_the_import_until_they_expire(backend: Backend) {
    let app = spawn_app_with(backend, AppOptions::default()).await;
    app.seed_sample(&small_sample()).await;
    let task = create_task(&app).await;
    let short = acquire(&app.client, "editor short", Some(Duration::from_secs(2)))
        .await
        .expect("short lease");
    let long = acquire(&app.client, "editor long", Some(Duration::from_secs(5)))
        .await
        .expect("long lease");
    let expire = long.expire_time.expect("expire time");
    assert_eq!(
        jiff::Timestamp::new(expire.seconds, expire.nanos).unwrap(),
        test_epoch() + jiff::SignedDuration::from_secs(5),
        "expiry follows the service's clock"
    );

    let run = run_now(&app.client, task.id).await;
    let two = |r: &alis_import::store::RunRecord| {
        at_phase(r, "WAITING_FOR_EDITS")
            && r.phase_detail.as_deref() == Some("2 edit leases outstanding")
    };
    wait_for_run(&app.store, run.id, "waited for 2 leases", two).await;

    // The clock lease expiry follows stands still unless the test moves it: the import
    // keeps waiting however long it polls.
    app.clock.advance(jiff::SignedDuration::from_secs(1));
    assert_stays(&app.store, run.id, Duration::from_millis(500), two).await;

    app.clock.advance(jiff::SignedDuration::from_millis(1500));
    let one = |r: &alis_import::store::RunRecord| {
        at_phase(r, "WAITING_FOR_EDITS")
            && r.phase_detail.as_deref() == Some("1 edit lease outstanding")
    };
    wait_for_run(&app.store, run.id, "saw the short lease expire", one).await;
    assert_stays(&app.store, run.id, Duration::from_millis(300), one).await;
    assert_eq!(common::records_written_by(&app.store, run.id).await, 0);

    app.clock.advance(jiff::SignedDuration::from_secs(3));
    let done = wait_for_run(&app.store, run.id, "ended", ended).await;
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    assert!(common::records_written_by(&app.store, run.id).await > 0);

    // Releasing a lease that expired is still fine (idempotent).
    release(&app.client, &short.id)
        .await
        .expect("release expired");
    release(&app.client, &long.id)
        .await
        .expect("release expired");
}

async fn only_the_identity_that_took_a_lease_may_release_it(backend: Backend) {
    let (url, guard) = backend.fresh_database_url().await;
    let operator = |name: &str| AppOptions {
        flags: vec!["--local-operator".into(), name.into()],
        ..AppOptions::default()
    };
    let a = spawn_app_on(backend, url.clone(), guard, operator("editor-a")).await;
    let b = spawn_app_on(backend, url, Guard::none(), operator("editor-b")).await;

    let lease = acquire(&a.client, "editing E00001", None)
        .await
        .expect("lease");
    assert_eq!(lease.subject, "editor-a");
    let denied = release(&b.client, &lease.id)
        .await
        .expect_err("another identity may not release it");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(
        a.store.outstanding_leases(test_epoch()).await.unwrap(),
        1,
        "the lease still stands"
    );

    release(&a.client, &lease.id)
        .await
        .expect("its holder releases it");
    release(&a.client, &lease.id)
        .await
        .expect("a second release is OK");
    release(&b.client, &lease.id)
        .await
        .expect("a released lease is unknown, for anyone");
    release(&a.client, "0123456789abcdef")
        .await
        .expect("an unknown lease is OK");
    assert_eq!(a.store.outstanding_leases(test_epoch()).await.unwrap(), 0);
    b.stop().await;
    a.stop().await;
}

/// An ES256 key pair: the service reads the public half from a file.
struct SigningKey {
    _dir: tempfile::TempDir,
    public_pem: std::path::PathBuf,
    private_pem: String,
}

fn signing_key() -> SigningKey {
    let dir = support::temp_dir();
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key pair");
    let public_pem = dir.path().join("jwt-public.pem");
    std::fs::write(&public_pem, pair.public_key_pem()).expect("write public key");
    SigningKey {
        _dir: dir,
        public_pem,
        private_pem: pair.serialize_pem(),
    }
}

/// A request carrying a bearer token for `subject` with `roles`.
fn as_user<T>(key: &SigningKey, subject: &str, roles: &[&str], message: T) -> tonic::Request<T> {
    let now = jiff::Timestamp::now().as_second();
    let claims = serde_json::json!({
        "sub": subject, "iss": "https://erp.example.org", "aud": "alis-import",
        "iat": now, "exp": now + 600, "roles": roles,
    });
    let encoding = jsonwebtoken::EncodingKey::from_ec_pem(key.private_pem.as_bytes()).unwrap();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &encoding,
    )
    .expect("sign");
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

async fn with_tokens_leases_belong_to_the_token_subject_and_need_the_cert_editor_role(
    backend: Backend,
) {
    let key = signing_key();
    let flags = [
        "--auth-public-key-file",
        &key.public_pem.display().to_string(),
        "--auth-issuer",
        "https://erp.example.org",
        "--auth-audience",
        "alis-import",
    ]
    .map(String::from)
    .to_vec();
    let app = spawn_app_with(
        backend,
        AppOptions {
            flags,
            ..AppOptions::default()
        },
    )
    .await;
    let mut client = app.client.clone();
    let acquire_as = |subject: &str, roles: &[&str]| {
        as_user(
            &key,
            subject,
            roles,
            proto::AcquireCertLockRequest {
                holder: "editing E00001".into(),
                ttl: None,
            },
        )
    };
    let release_as = |subject: &str, lease_id: &str| {
        as_user(
            &key,
            subject,
            &["cert-editor"],
            proto::ReleaseCertLockRequest {
                lease_id: lease_id.into(),
            },
        )
    };

    let lease = client
        .acquire_cert_lock(acquire_as("ann", &["cert-editor"]))
        .await
        .expect("a cert-editor takes a lease")
        .into_inner()
        .lease
        .expect("lease");
    assert_eq!(lease.subject, "ann");
    let denied = client
        .release_cert_lock(release_as("bob", &lease.id))
        .await
        .expect_err("bob may not release ann's lease");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let viewer = client
        .acquire_cert_lock(acquire_as("carol", &["viewer", "operator"]))
        .await
        .expect_err("leases need the cert-editor role");
    assert_eq!(viewer.code(), Code::PermissionDenied);
    let anonymous = client
        .acquire_cert_lock(proto::AcquireCertLockRequest {
            holder: "x".into(),
            ttl: None,
        })
        .await
        .expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated);

    for _ in 0..2 {
        client
            .release_cert_lock(release_as("ann", &lease.id))
            .await
            .expect("ann releases her lease, twice");
    }
    assert_eq!(app.store.outstanding_leases(test_epoch()).await.unwrap(), 0);
}

async fn lease_requests_are_validated_and_long_ttls_capped(backend: Backend) {
    let app = spawn_app_with(
        backend,
        AppOptions {
            flags: vec!["--lease-max-ttl".into(), "10s".into()],
            ..AppOptions::default()
        },
    )
    .await;
    for asked in [Some(Duration::from_secs(3600)), None] {
        let lease = acquire(&app.client, "editor", asked).await.expect("lease");
        assert_eq!(lease.ttl.map(|d| d.seconds), Some(10), "{asked:?}");
        let (acquired, expires) = (lease.acquire_time.unwrap(), lease.expire_time.unwrap());
        assert_eq!(acquired.seconds, test_epoch().as_second());
        assert_eq!(expires.seconds - acquired.seconds, 10);
    }
    let short = acquire(&app.client, "editor", Some(Duration::from_millis(1500)))
        .await
        .expect("lease");
    assert_eq!(
        short.ttl,
        Some(prost_types::Duration {
            seconds: 1,
            nanos: 500_000_000
        })
    );

    let bad = acquire(&app.client, "   ", Some(Duration::ZERO))
        .await
        .expect_err("invalid");
    assert_eq!(bad.code(), Code::InvalidArgument);
    let fields: Vec<String> = bad
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default();
    assert_eq!(fields, vec!["holder", "ttl"]);
    let blank = release(&app.client, " ").await.expect_err("invalid");
    assert_eq!(blank.code(), Code::InvalidArgument);
}

/// Stops the service while its import is at `phase` (with one lease outstanding
/// while waiting for edits); the run fails as cancelled and the lock is free.
async fn shutting_down_at(backend: Backend, lease_first: bool, phase: &str, state: LockState) {
    let (url, guard) = backend.fresh_database_url().await;
    let (gate, options) = gated();
    let app: TestApp = spawn_app_on(backend, url.clone(), Guard::none(), options).await;
    app.seed_sample(&small_sample()).await;
    let task = create_task(&app).await;
    if lease_first {
        acquire(&app.client, "editor", None).await.expect("lease");
    }
    let run = run_now(&app.client, task.id).await;
    wait_for_run(&app.store, run.id, &format!("reached {phase}"), |r| {
        at_phase(r, phase)
    })
    .await;
    // The phase is recorded as the import enters it, a moment before the lock row
    // changes: wait for the lock state with a deadline.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while lock_state(&app.store).await != state && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(lock_state(&app.store).await, state);

    app.stop().await;
    drop(gate);
    let store = Store::connect(&url).await.expect("reconnect");
    let stopped = store.get_run(run.id).await.unwrap().unwrap();
    assert_eq!(stopped.status, RunStatus::Failed);
    assert!(
        stopped
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("cancelled")),
        "{stopped:?}"
    );
    assert_eq!(lock_state(&store).await, LockState::Free);
    assert_eq!(common::records_written_by(&store, run.id).await, 0);
    store.close().await;
    drop(guard);
}

async fn shutting_down_while_waiting_for_edits_frees_the_lock(backend: Backend) {
    shutting_down_at(backend, true, "WAITING_FOR_EDITS", LockState::Pending).await;
}

async fn shutting_down_while_holding_the_lock_frees_it(backend: Backend) {
    shutting_down_at(backend, false, "REPLACING", LockState::Held).await;
}

/// The lease desk keeps a database connection while batches follow one another; the
/// pool waits for every connection before it closes, so the desk must hand it back
/// once idle, or the service would never finish stopping.
async fn the_service_stops_promptly_after_a_burst_of_leases(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut editors = tokio::task::JoinSet::new();
    for editor in 0..32 {
        let client = app.client.clone();
        editors.spawn(async move {
            for _ in 0..20 {
                let lease = acquire(&client, &format!("editor {editor}"), None)
                    .await
                    .expect("lease");
                release(&client, &lease.id).await.expect("released");
            }
        });
    }
    while let Some(done) = editors.join_next().await {
        done.expect("editor task");
    }
    tokio::time::timeout(Duration::from_secs(20), app.stop())
        .await
        .expect("the service stops within 20 s of the last lease");
}
