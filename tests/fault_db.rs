//! Database faults during an import (issue 8, design §5–§6, rules §3):
//!
//! - PostgreSQL: every connection of the service is cut (`pg_terminate_backend`, as
//!   a failover or an administrator would) while the replace transaction is in the
//!   middle of its writes. The run fails with a clear reason, nothing changes, and the
//!   service carries on: it stays SERVING and the next import succeeds.
//! - SQLite: the database's file system fills up (a small tmpfs, as a full volume
//!   would) while the replace writes. The run fails saying so in operator words, the
//!   database passes `pragma integrity_check` and holds exactly the rows it held
//!   before, and once space is freed the next import succeeds.
//!
//! The disk-full test mounts a tmpfs, so it needs root (CI and the development
//! machine run as root); it unmounts it even when the test panics, and removes mounts
//! left by an earlier run that was killed.

mod common;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use alis_import::api::proto;
use alis_import::lock::LockState;
use alis_import::sample::SampleSpec;
use alis_import::store::{RunRecord, RunStatus, Store};
use common::app::{AppOptions, TestApp, spawn_app_on, spawn_app_with};
use sqlx::{Connection, PgConnection};
use support::Backend;

/// How long any observable state may take to come about.
const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// PostgreSQL: connections cut mid-replace.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_mid_replace_fail_the_run_change_nothing_and_the_service_carries_on() {
    let app = spawn_app_with(Backend::Postgres, AppOptions::default()).await;
    let spec = SampleSpec {
        statewide_educators: 1_500,
        employees: 400,
        ..SampleSpec::default()
    };
    app.seed_sample(&spec).await;
    let task = create_task(&app).await;
    let first = import(&app, task).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
    let before = snapshot(&app.store).await;

    // Hold the replace at its last statement, every delete and insert done: a share
    // lock on endorsement_codes makes its insert wait.
    let mut holder = PgConnection::connect(&app.url).await.expect("connect");
    sqlx::raw_sql("begin; lock table endorsement_codes in share mode")
        .execute(&mut holder)
        .await
        .expect("lock endorsement_codes");
    let holder_pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&mut holder)
        .await
        .expect("pid");
    let run = run_now(&app, task).await;
    let mut observer = PgConnection::connect(&app.url).await.expect("connect");
    let importer = wait_until_blocked(&mut observer, "insert into endorsement_codes").await;
    let held = app.store.get_run(run.id).await.unwrap().unwrap();
    assert_eq!(held.status, RunStatus::InProgress);
    assert_eq!(held.phase.as_deref(), Some("REPLACING"));
    assert_eq!(app.store.cert_lock().await.unwrap().run_id, Some(run.id));
    let in_transaction: i64 = sqlx::query_scalar(
        "select count(*) from pg_locks where pid = $1 and relation = 'certifications'::regclass \
         and mode = 'RowExclusiveLock' and granted",
    )
    .bind(importer)
    .fetch_one(&mut observer)
    .await
    .expect("pg_locks");
    assert_eq!(in_transaction, 1, "the importer has written certifications");

    // Cut every connection of the service: the importer's, and the idle ones its
    // heartbeat and phase writer use.
    let cut: Vec<i32> = sqlx::query_scalar(
        "with victims as materialized (select pid from pg_stat_activity \
         where datname = current_database() and pid <> pg_backend_pid() and pid <> $1) \
         select pid from victims where pg_terminate_backend(pid)",
    )
    .bind(holder_pid)
    .fetch_all(&mut observer)
    .await
    .expect("terminate");
    assert!(cut.contains(&importer), "cut {cut:?}, importer {importer}");
    sqlx::raw_sql("rollback")
        .execute(&mut holder)
        .await
        .expect("release");

    let failed = wait_for_run(&app.store, run.id, |r| r.ended_at.is_some()).await;
    eprintln!(
        "cut {} connections; the run ended {:?}: {:?}",
        cut.len(),
        failed.status,
        failed.error
    );
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    let error = failed.error.clone().unwrap_or_default();
    assert!(
        error.contains("database") && error.contains("nothing was changed"),
        "an operator's reason: {error}"
    );
    assert!(
        !error.contains("terminating connection") && !error.contains("57P01"),
        "no internal detail: {error}"
    );
    assert_eq!(
        snapshot(&app.store).await,
        before,
        "the tables are unchanged"
    );
    assert_eq!(common::records_written_by(&app.store, run.id).await, 0);

    // The service carries on: the lock is free, it is SERVING, and the next import
    // succeeds.
    assert_lock_free(&app).await;
    assert_serving(&app).await;
    let next = import(&app, task).await;
    assert_eq!(next.status, RunStatus::Succeeded, "{next:?}");
    assert!(common::records_written_by(&app.store, next.id).await > 500);
    app.stop().await;
}

/// The backend whose current query starts with `query_start` and waits for a lock.
async fn wait_until_blocked(observer: &mut PgConnection, query_start: &str) -> i32 {
    let give_up = Instant::now() + DEADLINE;
    loop {
        let blocked: Option<i32> = sqlx::query_scalar(
            "select pid from pg_stat_activity where datname = current_database() \
             and wait_event_type = 'Lock' and starts_with(lower(query), $1)",
        )
        .bind(query_start)
        .fetch_optional(&mut *observer)
        .await
        .expect("pg_stat_activity");
        if let Some(pid) = blocked {
            return pid;
        }
        assert!(
            Instant::now() < give_up,
            "no backend blocked in {query_start}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The certification lock is free and an edit lease is granted.
async fn assert_lock_free(app: &TestApp) {
    let lock = app.store.cert_lock().await.expect("read the lock");
    assert_eq!(lock.state, LockState::Free, "{lock:?}");
    let lease = common::lock::acquire(&app.client, "an editor", None)
        .await
        .expect("a lease");
    common::lock::release(&app.client, &lease.id)
        .await
        .expect("release the lease");
}

async fn assert_serving(app: &TestApp) {
    use tonic_health::pb::health_check_response::ServingStatus;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let reply = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check");
    assert_eq!(reply.into_inner().status, ServingStatus::Serving as i32);
}

// ---------------------------------------------------------------------------
// SQLite: the disk fills up mid-replace.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_sqlite_import_cleanly_and_the_database_stays_intact() {
    let mount = Tmpfs::mount("64m");
    let database = mount.path().join("alis-import.db");
    let url = format!("sqlite://{}?mode=rwc", database.display());
    let app = spawn_app_on(
        Backend::Sqlite,
        url,
        support::Guard::none(),
        AppOptions::default(),
    )
    .await;
    // Some 7 000 records: a replace writes megabytes of pages.
    let spec = SampleSpec {
        statewide_educators: 6_000,
        employees: 2_500,
        ..SampleSpec::default()
    };
    app.seed_sample(&spec).await;
    let task = create_task(&app).await;
    let first = import(&app, task).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
    let written = common::records_written_by(&app.store, first.id).await;
    assert!(written > 5_000, "{written} records");
    let before = snapshot(&app.store).await;

    // Empty the write-ahead log into the database file, then fill the disk up but for
    // a little: enough for the run's own bookkeeping, far too little for the replace.
    let checkpoint: (i64, i64, i64) = sqlx::query_as("pragma wal_checkpoint(truncate)")
        .fetch_one(sqlite(&app.store))
        .await
        .expect("checkpoint");
    assert_eq!(checkpoint.0, 0, "the checkpoint was not blocked");
    let left = 256 * 1024;
    mount.fill_leaving(left);
    eprintln!(
        "disk: {} bytes free, database {} bytes",
        mount.available(),
        std::fs::metadata(&database).unwrap().len()
    );

    let full = import(&app, task).await;
    eprintln!(
        "the import on a full disk ended {:?}: {:?}",
        full.status, full.error
    );
    assert_eq!(full.status, RunStatus::Failed, "{full:?}");
    let error = full.error.clone().unwrap_or_default();
    assert!(
        error.contains("disk") && error.contains("space") && error.contains("nothing was changed"),
        "says so in operator words: {error}"
    );
    assert!(
        !error.contains("SQLITE") && !error.contains("code: 13"),
        "no internal detail: {error}"
    );
    assert_eq!(integrity_check(&app.store).await, "ok");
    assert_eq!(
        snapshot(&app.store).await,
        before,
        "exactly the rows before"
    );
    assert_eq!(common::records_written_by(&app.store, full.id).await, 0);
    assert_lock_free(&app).await;

    // Space again: the next import succeeds, and the database is still sound.
    mount.free();
    let next = import(&app, task).await;
    assert_eq!(next.status, RunStatus::Succeeded, "{next:?}");
    assert_eq!(
        common::records_written_by(&app.store, next.id).await,
        written
    );
    assert_eq!(integrity_check(&app.store).await, "ok");
    app.stop().await;
    drop(mount);
}

fn sqlite(store: &Store) -> &sqlx::SqlitePool {
    match store {
        Store::Sqlite(pool) => pool,
        Store::Postgres(_) => panic!("a SQLite store"),
    }
}

async fn integrity_check(store: &Store) -> String {
    let rows: Vec<String> = sqlx::query_scalar("pragma integrity_check")
        .fetch_all(sqlite(store))
        .await
        .expect("integrity_check");
    rows.join("\n")
}

/// A tmpfs mounted on a fresh directory, unmounted when dropped (also while a
/// panicking test unwinds).
struct Tmpfs {
    dir: Option<tempfile::TempDir>,
    filler: PathBuf,
}

/// Mount points are named with this prefix and the test process's id, so a later
/// run can tell its own from those a killed run left behind.
const MOUNT_PREFIX: &str = "alis-import-disk-full-";

impl Tmpfs {
    fn mount(size: &str) -> Self {
        remove_stale_mounts();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{MOUNT_PREFIX}{}-", std::process::id()))
            .tempdir()
            .expect("a mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("alis-import-test")
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount -t tmpfs on {} failed ({status}): this test needs root, as CI has",
            dir.path().display()
        );
        let filler = dir.path().join("filler");
        Self {
            dir: Some(dir),
            filler,
        }
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().expect("mounted").path()
    }

    /// Bytes an unprivileged write could still use.
    fn available(&self) -> u64 {
        let path = std::ffi::CString::new(self.path().as_os_str().as_encoded_bytes())
            .expect("a path without NUL");
        // SAFETY: `statvfs` writes into the zeroed struct we own; the path is a valid C
        // string.
        let stats = unsafe {
            let mut stats: libc::statvfs = std::mem::zeroed();
            assert_eq!(libc::statvfs(path.as_ptr(), &mut stats), 0, "statvfs");
            stats
        };
        stats.f_bavail as u64 * stats.f_frsize as u64
    }

    /// Writes a file that leaves about `left` bytes free.
    fn fill_leaving(&self, left: u64) {
        let size = self.available().saturating_sub(left);
        let mut file = std::fs::File::create(&self.filler).expect("create the filler");
        let chunk = vec![0xA5_u8; 1 << 20];
        let mut written = 0;
        while written < size {
            let n = chunk.len().min((size - written) as usize);
            std::io::Write::write_all(&mut file, &chunk[..n]).expect("fill the disk");
            written += n as u64;
        }
        file.sync_all().expect("sync the filler");
        let available = self.available();
        assert!(
            available <= left + 64 * 1024,
            "{available} bytes still free"
        );
    }

    fn free(&self) {
        std::fs::remove_file(&self.filler).expect("remove the filler");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        unmount(dir.path());
        drop(dir);
    }
}

/// Unmounts, lazily when something still holds the file system open (a panicking
/// test may not have closed its pool): it is gone from the tree at once and freed
/// when the last file closes.
fn unmount(path: &Path) {
    let unmounted = Command::new("umount").arg(path).status();
    if !unmounted.is_ok_and(|s| s.success()) {
        let _ = Command::new("umount").arg("-l").arg(path).status();
    }
}

/// Unmounts the tmpfs that runs of this test killed before their clean-up left.
fn remove_stale_mounts() {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mounts.lines() {
        let Some(point) = line.split(' ').nth(4) else {
            continue;
        };
        let Some(rest) = point
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_prefix(MOUNT_PREFIX))
        else {
            continue;
        };
        let owner = rest.split('-').next().unwrap_or_default();
        if !Path::new("/proc").join(owner).exists() {
            unmount(Path::new(point));
            let _ = std::fs::remove_dir(point);
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------

async fn create_task(app: &TestApp) -> i64 {
    app.client
        .clone()
        .schedule_task(proto::ScheduleTaskRequest {
            task_id: 0,
            description: "ALiS import".into(),
            active: false,
            start_date: "2026-11-30".into(),
            start_time: "06:00".into(),
            weekdays: vec![],
            time_zone: "America/New_York".into(),
        })
        .await
        .expect("schedule a task")
        .into_inner()
        .task
        .expect("the task")
        .id
}

async fn run_now(app: &TestApp, task_id: i64) -> proto::Run {
    app.client
        .clone()
        .run_now(proto::RunNowRequest {
            task_id,
            ..Default::default()
        })
        .await
        .expect("RunNow")
        .into_inner()
        .run
        .expect("the run")
}

/// Runs an import to its end.
async fn import(app: &TestApp, task_id: i64) -> RunRecord {
    let run = run_now(app, task_id).await;
    wait_for_run(&app.store, run.id, |r| r.ended_at.is_some()).await
}

async fn wait_for_run(store: &Store, run_id: i64, done: impl Fn(&RunRecord) -> bool) -> RunRecord {
    common::app::wait_for_run(store, run_id, "its end", DEADLINE, done).await
}

/// Everything an import may touch, every column, as text.
async fn snapshot(store: &Store) -> Vec<String> {
    common::snapshot::rows(store, &common::snapshot::IMPORTED).await
}
