//! The certification lock in the database (design §6; issue 5), on both backends: the
//! triggers that refuse manual writes while an import holds the lock (and exempt the
//! import itself), the epoch that fences a stale importer, and the reaper and every
//! failure path freeing the lock.

mod common;
mod support;

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use alis_import::import::summary::FileInfo;
use alis_import::import::{
    ImportError, ImportRequest, ImportSettings, Phase, Progress, run_import,
};
use alis_import::lock::{
    Grant, LeaseHolder, LeaseId, LockSettings, LockState, NewLease, Release, hold_for_replace,
};
use alis_import::store::{NewRun, RunOutcome, RunStatus, Store};
use common::app::{AppOptions, spawn_app_with};
use common::lock::{
    IN_PROGRESS, at_phase, create_task, ended, run_now, scalar, small_sample, try_sql, wait_for_run,
};
use common::{ImportOptions, JOB_CLASSES, TestStore, employee_sql, file};
use jiff::{SignedDuration, Timestamp};
use support::Backend;

on_both_backends!(
    the_database_refuses_manual_writes_during_an_import_and_allows_them_after,
    the_triggers_guard_an_erp_schema_the_service_does_not_manage,
    a_stale_importer_is_fenced_by_the_epoch_and_writes_nothing,
    an_importer_declared_lost_while_waiting_for_edits_never_holds_the_lock,
    reaping_a_lost_import_frees_the_lock,
    a_failed_replace_frees_the_lock,
    leases_are_granted_and_released_in_batches,
    grants_and_releases_share_a_batch,
);

/// Ann Smith (1001) and Bo Jones (1002) teach; Cy Lee (1003) was terminated.
async fn district(backend: Backend) -> TestStore {
    let db = TestStore::new(backend).await;
    db.execute(JOB_CLASSES).await;
    db.execute(&employee_sql(1, Some("1001"), "Smith", "Ann", "ACTIVE", 1))
        .await;
    db.execute(&employee_sql(2, Some("1002"), "Jones", "Bo", "ACTIVE", 1))
        .await;
    db.execute(&employee_sql(3, Some("1003"), "Lee", "Cy", "TERMINATED", 1))
        .await;
    db
}

const ANN: &str = "1001,Smith,Ann,L-1,Level II Professional Educator,ACT,07/01/2020,06/30/2027,2-05,English,7-12,07/01/2020,06/30/2027,";
const BO: &str = "1002,Jones,Bo,L-2,Provisional,UDR,09/01/2025,08/31/2027,2-01,Elementary Education,K-6,09/01/2025,08/31/2027,";

async fn lock_state(store: &Store) -> LockState {
    store.cert_lock().await.expect("read the lock").state
}

fn manual_certification(id: i64, employee: i64) -> String {
    format!(
        "insert into certifications (id, employee_id, license_number, license_type, status, \
         source) values ({id}, {employee}, 'M-{id}', 'Provisional', 'ACT', 'MANUAL')"
    )
}

fn alis_certification(id: i64, employee: i64) -> String {
    format!(
        "insert into certifications (id, employee_id, license_number, license_type, status, \
         source) values ({id}, {employee}, 'A-{id}', 'Provisional', 'ACT', 'ALIS')"
    )
}

fn manual_endorsement(id: i64, certification: i64, employee: i64) -> String {
    format!(
        "insert into endorsements (id, certification_id, employee_id, code, source) \
         values ({id}, {certification}, {employee}, '9-99', 'MANUAL')"
    )
}

/// Every way the ERP may write a MANUAL row, refused with exactly the API's message.
/// `cert` and `endorsement` are MANUAL rows, `alis_cert` an ALIS row.
async fn assert_manual_writes_refused(
    store: &Store,
    cert: i64,
    endorsement: i64,
    alis_cert: i64,
    employee: i64,
) {
    for sql in [
        manual_certification(990_001, employee),
        format!("update certifications set status = 'EXP' where id = {cert}"),
        format!("delete from certifications where id = {cert}"),
        format!("update certifications set source = 'MANUAL' where id = {alis_cert}"),
        manual_endorsement(990_002, cert, employee),
        format!("update endorsements set grade_level = 'K-12' where id = {endorsement}"),
        format!("delete from endorsements where id = {endorsement}"),
    ] {
        assert_eq!(
            try_sql(store, &sql).await.map_err(|e| e.to_string()),
            Err(IN_PROGRESS.to_owned()),
            "{sql}"
        );
    }
}

async fn the_database_refuses_manual_writes_during_an_import_and_allows_them_after(
    backend: Backend,
) {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let app = spawn_app_with(
        backend,
        AppOptions {
            replace_gate: Some(Arc::clone(&gate)),
            ..AppOptions::default()
        },
    )
    .await;
    app.seed_sample(&small_sample()).await;
    let active = scalar(
        &app.store,
        "select min(id) from employees where status = 'ACTIVE'",
    )
    .await;
    let terminated = scalar(
        &app.store,
        "select min(id) from employees where status = 'TERMINATED'",
    )
    .await;
    // A manual record of a terminated employee (the import keeps it) and one of an
    // active employee (the import replaces it, as every record of active employees).
    for sql in [
        manual_certification(900_001, terminated),
        manual_endorsement(900_011, 900_001, terminated),
        manual_certification(900_002, active),
        manual_endorsement(900_012, 900_002, active),
        alis_certification(900_003, terminated),
    ] {
        try_sql(&app.store, &sql)
            .await
            .expect("manual writes pass while no import runs");
    }
    let task = create_task(&app).await;
    let run = run_now(&app.client, task.id).await;
    wait_for_run(&app.store, run.id, "held the lock", |r| {
        at_phase(r, "REPLACING")
    })
    .await;
    assert_eq!(lock_state(&app.store).await, LockState::Held);

    assert_manual_writes_refused(&app.store, 900_001, 900_011, 900_003, terminated).await;

    gate.add_permits(1);
    let done = wait_for_run(&app.store, run.id, "ended", ended).await;
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    // The import's own transaction was exempt: it deleted the active employee's manual
    // records, and the terminated employee's are untouched.
    assert_eq!(
        scalar(
            &app.store,
            "select count(*) from certifications where id = 900002"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &app.store,
            "select count(*) from certifications where id = 900001 and status = 'ACT'"
        )
        .await,
        1
    );

    // After the import the same writes pass.
    for sql in [
        manual_certification(990_001, active),
        manual_endorsement(990_002, 990_001, active),
        "update certifications set status = 'EXP' where id = 900001".to_owned(),
        "update endorsements set grade_level = 'K-12' where id = 900011".to_owned(),
        "delete from endorsements where id = 900011".to_owned(),
        "delete from certifications where id = 900001".to_owned(),
    ] {
        try_sql(&app.store, &sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

async fn the_triggers_guard_an_erp_schema_the_service_does_not_manage(backend: Backend) {
    let (url, _guard) = backend.fresh_database_url().await;
    let store = Store::connect(&url).await.expect("connect");
    // The ERP created its tables itself; the service only runs its own migrations.
    let erp_ddl = match backend {
        Backend::Postgres => include_str!("../migrations/postgres/erp/0001_erp_tables.sql"),
        Backend::Sqlite => include_str!("../migrations/sqlite/erp/0001_erp_tables.sql"),
    };
    let raw = || sqlx::AssertSqlSafe(erp_ddl.to_owned());
    match &store {
        Store::Postgres(pool) => sqlx::raw_sql(raw()).execute(pool).await.map(|_| ()),
        Store::Sqlite(pool) => sqlx::raw_sql(raw()).execute(pool).await.map(|_| ()),
    }
    .expect("the ERP's tables");
    store
        .migrate(false)
        .await
        .expect("the service's migrations");
    for sql in [
        JOB_CLASSES.trim_end_matches(';').to_owned(),
        employee_sql(1, Some("1001"), "Smith", "Ann", "ACTIVE", 1)
            .trim_end_matches(';')
            .to_owned(),
        manual_certification(1, 1),
        manual_endorsement(1, 1, 1),
        alis_certification(2, 1),
    ] {
        try_sql(&store, &sql)
            .await
            .expect("writes pass while the lock is free");
    }

    // An import holds the lock (as another replica's would).
    try_sql(
        &store,
        "update cert_lock set state = 'HELD', epoch = 1 where id = 1",
    )
    .await
    .expect("hold");
    assert_manual_writes_refused(&store, 1, 1, 2, 1).await;
    try_sql(&store, &alis_certification(3, 1))
        .await
        .expect("only MANUAL rows are guarded");

    try_sql(&store, "update cert_lock set state = 'FREE' where id = 1")
        .await
        .expect("free");
    try_sql(&store, "delete from certifications where id = 1")
        .await
        .expect("manual writes pass again");
    store.close().await;
}

/// Holds an import when it enters the replace, until the test lets it go.
struct HoldAtReplace {
    reached: tokio::sync::Notify,
    go: tokio::sync::Semaphore,
}

impl Default for HoldAtReplace {
    fn default() -> Self {
        Self {
            reached: tokio::sync::Notify::new(),
            go: tokio::sync::Semaphore::new(0),
        }
    }
}

impl Progress for HoldAtReplace {
    async fn enter(&self, phase: Phase) {
        if phase == Phase::Replacing {
            self.reached.notify_one();
            if let Ok(permit) = self.go.acquire().await {
                permit.forget();
            }
        }
    }
}

fn request(run_id: i64) -> ImportRequest {
    ImportRequest {
        run_id,
        run_date: jiff::civil::date(2026, 11, 30),
        dry_run: false,
        force: false,
        file: FileInfo {
            name: "Curr_Lic_Eds_End_Limits_20261130.csv".into(),
            sha256: "test".into(),
            from_cache: false,
        },
    }
}

async fn start_run(store: &Store) -> i64 {
    store
        .start_run(&NewRun {
            task_id: None,
            run_by: "test".into(),
            dry_run: false,
            force: false,
        })
        .await
        .expect("start run")
}

/// Another replica's reaper, far enough in the future for every heartbeat to be late.
async fn reap_everything(store: &Store) -> Vec<i64> {
    store
        .reap_lost_runs(
            Timestamp::now() + SignedDuration::from_secs(600),
            Duration::from_secs(60),
        )
        .await
        .expect("reap")
        .into_iter()
        .map(|run| run.id)
        .collect()
}

async fn a_stale_importer_is_fenced_by_the_epoch_and_writes_nothing(backend: Backend) {
    let db = district(backend).await;
    let stale_run = start_run(&db.store).await;
    let hold = Arc::new(HoldAtReplace::default());
    let stale = tokio::spawn({
        let store = db.store.clone();
        let hold = Arc::clone(&hold);
        let input = Cursor::new(file(&[ANN]).into_bytes());
        async move {
            run_import(
                &store,
                input,
                &request(stale_run),
                &ImportSettings::default(),
                &*hold,
            )
            .await
        }
    });
    tokio::time::timeout(common::lock::DEADLINE, hold.reached.notified())
        .await
        .expect("the stale importer reaches its replace");
    let held = db.store.cert_lock().await.unwrap();
    assert_eq!(
        (held.state, held.epoch, held.run_id),
        (LockState::Held, 1, Some(stale_run))
    );

    // Its process hangs; another replica declares it lost, which frees the lock, and
    // imports in its place.
    assert_eq!(reap_everything(&db.store).await, vec![stale_run]);
    assert_eq!(lock_state(&db.store).await, LockState::Free);
    let summary = db.import(&file(&[ANN, BO]), ImportOptions::default()).await;
    assert_eq!(summary.rejected, None);
    let second_run = scalar(&db.store, "select max(id) from import_runs").await;
    let after_second = db.snapshot().await;
    assert_eq!(db.store.cert_lock().await.unwrap().epoch, 2);

    // The stale importer wakes up and tries its replace: the epoch fences it.
    hold.go.add_permits(1);
    let result = stale.await.expect("stale import task");
    let error = result.expect_err("fenced");
    assert!(matches!(error, ImportError::Fenced { run_id, epoch: 1 } if run_id == stale_run));
    assert!(error.to_string().starts_with("fenced"), "{error}");
    assert_eq!(
        db.snapshot().await,
        after_second,
        "the stale importer wrote nothing"
    );
    assert_eq!(common::records_written_by(&db.store, stale_run).await, 0);
    assert_eq!(
        scalar(
            &db.store,
            &format!("select count(*) from certifications where import_run_id <> {second_run}")
        )
        .await,
        0,
        "the data is the second import's"
    );
    let lock = db.store.cert_lock().await.unwrap();
    assert_eq!((lock.state, lock.epoch), (LockState::Free, 2));
}

async fn an_importer_declared_lost_while_waiting_for_edits_never_holds_the_lock(backend: Backend) {
    let db = district(backend).await;
    let now = Timestamp::now();
    let lease = NewLease {
        id: LeaseId::random(),
        holder: LeaseHolder::parse("editor").unwrap(),
        subject: "editor".into(),
        acquired_at: now,
        expires_at: now + SignedDuration::from_secs(3600),
    };
    assert!(matches!(
        db.store.grant_lease(&lease).await.unwrap(),
        Grant::Granted(_)
    ));
    let stale_run = start_run(&db.store).await;
    let settings = LockSettings {
        poll_interval: Duration::from_millis(10),
        ..LockSettings::default()
    };
    let (counts_tx, mut counts) = tokio::sync::mpsc::unbounded_channel();
    let waiting = tokio::spawn({
        let store = db.store.clone();
        async move {
            hold_for_replace(&store, stale_run, &settings, |n| {
                let _ = counts_tx.send(n);
            })
            .await
        }
    });
    assert_eq!(counts.recv().await, Some(1), "waits for the lease");
    assert_eq!(lock_state(&db.store).await, LockState::Pending);

    assert_eq!(reap_everything(&db.store).await, vec![stale_run]);
    assert_eq!(
        lock_state(&db.store).await,
        LockState::Free,
        "the reaper freed it"
    );
    db.store.release_lease(&lease.id, "editor").await.unwrap();
    let result = waiting.await.expect("task");
    assert!(
        matches!(
            result,
            Err(alis_import::lock::LockError::Fenced { epoch: 1, .. })
        ),
        "{result:?}"
    );
    assert_eq!(lock_state(&db.store).await, LockState::Free);
}

async fn reaping_a_lost_import_frees_the_lock(backend: Backend) {
    let db = TestStore::new(backend).await;
    let run = start_run(&db.store).await;
    let fence = hold_for_replace(&db.store, run, &LockSettings::default(), |_| {})
        .await
        .expect("hold");
    assert_eq!(fence.epoch, 1);
    let now = Timestamp::now();
    let lease = |id: LeaseId| NewLease {
        id,
        holder: LeaseHolder::parse("editor").unwrap(),
        subject: "editor".into(),
        acquired_at: now,
        expires_at: now + SignedDuration::from_secs(10),
    };
    match db
        .store
        .grant_lease(&lease(LeaseId::random()))
        .await
        .unwrap()
    {
        Grant::Refused(refusal) => assert_eq!(refusal.run_id, Some(run)),
        granted => panic!("granted while held: {granted:?}"),
    }

    // A heartbeat within the timeout keeps the run, and the lock.
    let reaped = db
        .store
        .reap_lost_runs(now, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(reaped.is_empty());
    assert_eq!(lock_state(&db.store).await, LockState::Held);

    // Past it, the same tick fails the run and frees the lock.
    assert_eq!(reap_everything(&db.store).await, vec![run]);
    let failed = db.store.get_run(run).await.unwrap().unwrap();
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("worker lost"))
    );
    let lock = db.store.cert_lock().await.unwrap();
    assert_eq!(
        (lock.state, lock.run_id, lock.epoch),
        (LockState::Free, None, 1)
    );
    match db
        .store
        .grant_lease(&lease(LeaseId::random()))
        .await
        .unwrap()
    {
        Grant::Granted(granted) => assert_eq!(granted.fencing_token, 1),
        refused => panic!("refused after the reap: {refused:?}"),
    }

    // A lock whose run ended without freeing it is freed by the next tick.
    let ended_run = start_run(&db.store).await;
    assert_eq!(
        db.store
            .mark_cert_lock_pending(ended_run, now)
            .await
            .unwrap(),
        Some(2)
    );
    let failed = RunOutcome {
        status: RunStatus::Failed,
        error: Some("crashed before freeing".into()),
    };
    assert!(db.store.finish_run(ended_run, &failed, None).await.unwrap());
    assert_eq!(lock_state(&db.store).await, LockState::Pending);
    assert!(
        db.store
            .reap_lost_runs(now, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(lock_state(&db.store).await, LockState::Free);
}

async fn a_failed_replace_frees_the_lock(backend: Backend) {
    let db = district(backend).await;
    // A trigger fails the insert of one endorsement, inside the replace transaction.
    match backend {
        Backend::Postgres => {
            db.execute(
                "create function boom() returns trigger language plpgsql as $$ \
                 begin if new.code = 'BOOM' then raise exception 'injected failure'; end if; \
                 return new; end $$; \
                 create trigger boom before insert on endorsements for each row execute function boom();",
            )
            .await
        }
        Backend::Sqlite => {
            db.execute(
                "create trigger boom before insert on endorsements when new.code = 'BOOM' \
                 begin select raise(abort, 'injected failure'); end;",
            )
            .await
        }
    }
    let boom = "1002,Jones,Bo,L-2,Provisional,UDR,09/01/2025,08/31/2027,BOOM,Boom,K-6,,,";
    let result = db
        .try_import(&file(&[ANN, BO, boom]), ImportOptions::default())
        .await;
    assert!(matches!(result, Err(ImportError::Store(_))), "{result:?}");
    let lock = db.store.cert_lock().await.unwrap();
    assert_eq!(
        (lock.state, lock.run_id, lock.epoch),
        (LockState::Free, None, 1)
    );
    // A dry run does not take the lock: the epoch stays.
    db.import(&file(&[ANN]), ImportOptions::dry_run()).await;
    assert_eq!(db.store.cert_lock().await.unwrap().epoch, 1);
}

/// The batches the lease desk hands the store: all granted at the lock's epoch, or
/// all refused with nothing written; releases answered each as if alone.
async fn leases_are_granted_and_released_in_batches(backend: Backend) {
    let db = district(backend).await;
    let now = Timestamp::now();
    let lease = |subject: &str| new_lease(subject, now);
    let outstanding = || async { db.store.outstanding_leases(now).await.unwrap() };

    let batch = [lease("a"), lease("b"), lease("c")];
    let epoch = db.store.cert_lock().await.unwrap().epoch;
    let grants = db.store.grant_leases(&batch).await.unwrap();
    let granted = granted_at(grants);
    let expected: Vec<(LeaseId, i64)> = batch.iter().map(|l| (l.id.clone(), epoch)).collect();
    assert_eq!(granted, expected, "in order, each at the lock's epoch");
    assert_eq!(outstanding().await, 3);

    // Mine, someone else's, an unknown one, and mine again, in one batch.
    let answers = db
        .store
        .release_leases(&[
            (batch[0].id.clone(), "a".into()),
            (batch[1].id.clone(), "not b".into()),
            (LeaseId::random(), "a".into()),
            (batch[0].id.clone(), "a".into()),
        ])
        .await
        .unwrap();
    assert_eq!(
        answers,
        [
            Release::Released,
            Release::NotYours,
            Release::Unknown,
            Release::Unknown
        ]
    );
    assert_eq!(outstanding().await, 2, "b's and c's leases stand");

    // Once an import wants the lock, a whole batch is refused and nothing written.
    let run = start_run(&db.store).await;
    db.store
        .mark_cert_lock_pending(run, now)
        .await
        .unwrap()
        .expect("the lock is pending");
    let grants = db
        .store
        .grant_leases(&[lease("d"), lease("e")])
        .await
        .unwrap();
    assert_eq!(grants.len(), 2);
    for grant in grants {
        match grant {
            Grant::Refused(refusal) => {
                assert_eq!(
                    (refusal.state, refusal.run_id),
                    (LockState::Pending, Some(run))
                );
            }
            Grant::Granted(lease) => panic!("granted while an import waits: {lease:?}"),
        }
    }
    assert_eq!(outstanding().await, 2);
}

/// The lease desk's mixed batch (one statement on PostgreSQL): the grants decided as
/// one, the releases each as if alone, and an import's pending lock refusing the
/// grants while the releases still go through.
async fn grants_and_releases_share_a_batch(backend: Backend) {
    let db = district(backend).await;
    let now = Timestamp::now();
    let lease = |subject: &str| new_lease(subject, now);
    let outstanding = || async { db.store.outstanding_leases(now).await.unwrap() };
    let first = [lease("a"), lease("b"), lease("c")];
    db.store.grant_leases(&first).await.unwrap();
    let epoch = db.store.cert_lock().await.unwrap().epoch;

    let second = [lease("d"), lease("e")];
    let (grants, released) = db
        .store
        .grant_and_release_leases(
            &second,
            &[
                (first[0].id.clone(), "a".into()),
                (first[1].id.clone(), "not b".into()),
                (LeaseId::random(), "a".into()),
                (first[0].id.clone(), "a".into()),
            ],
        )
        .await
        .unwrap();
    let granted = granted_at(grants);
    let expected: Vec<(LeaseId, i64)> = second.iter().map(|l| (l.id.clone(), epoch)).collect();
    assert_eq!(granted, expected, "in order, each at the lock's epoch");
    assert_eq!(
        released,
        [
            Release::Released,
            Release::NotYours,
            Release::Unknown,
            Release::Unknown
        ]
    );
    assert_eq!(outstanding().await, 4, "b, c, d and e stand");

    let run = start_run(&db.store).await;
    db.store
        .mark_cert_lock_pending(run, now)
        .await
        .unwrap()
        .expect("the lock is pending");
    let (grants, released) = db
        .store
        .grant_and_release_leases(
            &[lease("f")],
            &[
                (first[1].id.clone(), "b".into()),
                (second[0].id.clone(), "d".into()),
            ],
        )
        .await
        .unwrap();
    match grants.as_slice() {
        [Grant::Refused(refusal)] => assert_eq!(
            (refusal.state, refusal.run_id),
            (LockState::Pending, Some(run))
        ),
        other => panic!("expected one refusal, got {other:?}"),
    }
    assert_eq!(released, [Release::Released, Release::Released]);
    assert_eq!(outstanding().await, 2, "c and e stand; f was never written");
}

/// A lease of `subject` for a minute from `now`.
fn new_lease(subject: &str, now: Timestamp) -> NewLease {
    NewLease {
        id: LeaseId::random(),
        holder: LeaseHolder::parse("editor").unwrap(),
        subject: subject.into(),
        acquired_at: now,
        expires_at: now + SignedDuration::from_secs(60),
    }
}

/// Each granted lease's id and fencing token; a refusal fails the test.
fn granted_at(grants: Vec<Grant>) -> Vec<(LeaseId, i64)> {
    grants
        .into_iter()
        .map(|grant| match grant {
            Grant::Granted(lease) => (lease.lease.id, lease.fencing_token),
            Grant::Refused(refusal) => panic!("refused while the lock is free: {refusal:?}"),
        })
        .collect()
}
