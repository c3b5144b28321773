//! Crash safety of the certification lock with real processes (design §5–§6; issue 5):
//! two `alis-import serve` processes on one PostgreSQL. The importing one is killed
//! (`SIGKILL`) inside its replace transaction, or stopped (`SIGSTOP`) past the
//! heartbeat timeout while the other takes over and imports, then continued.
//!
//! The in-process replace gate cannot reach a child process, so the importer is held
//! with the hidden, test-only pause-file flags (`--test-pause-before-commit-file`,
//! `--test-pause-before-replace-file`): the import creates `<file>.reached` and waits
//! while `<file>` exists. Each process's log is kept under
//! `test-artifacts/cert_lock_processes/`.
//!
//! PostgreSQL only: the embedded SQLite setup is one process by design.
//!
//! The binary is cargo's `alis-import` of this build, or `ALIS_IMPORT_BIN` when set:
//! where several checkouts share one target directory, another build may replace
//! `target/debug/alis-import` at any moment, so copy it right after building and point
//! the variable at the copy. The test checks that the binary knows this build's flags.

mod common;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alis_import::lock::LockState;
use alis_import::sample::{self, SampleSpec};
use alis_import::store::{RunRecord, RunStatus, Store};
use common::lock::{Client, acquire, run_now, small_sample, wait_for_run};

/// The service processes' heartbeat timeout (and the scheduler's reaping tick).
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);
const TICK: Duration = Duration::from_millis(200);

/// The service binary under test, checked to be this build's.
fn binary() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let path = std::env::var_os("ALIS_IMPORT_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_alis-import")));
            let help = Command::new(&path)
                .args(["serve", "--help"])
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
            assert!(
                String::from_utf8_lossy(&help.stdout).contains("--lease-max-ttl"),
                "{} is not this build's alis-import (another checkout sharing the target \
                 directory replaced it?): build it, copy it, and set ALIS_IMPORT_BIN",
                path.display()
            );
            path
        })
        .clone()
}

/// One `alis-import serve` child process; killed when dropped.
struct ServiceProcess {
    child: Child,
    client: Client,
    name: String,
    _work: tempfile::TempDir,
}

impl ServiceProcess {
    /// Starts `name` (unique across the tests: it names the log) beating every
    /// `heartbeat`.
    async fn start(
        name: &str,
        url: &str,
        inbox: &Path,
        heartbeat: Duration,
        extra: &[String],
    ) -> Self {
        let logs = support::artifacts_dir().join("cert_lock_processes");
        std::fs::create_dir_all(&logs).expect("log folder");
        let log_path = logs.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let work = support::temp_dir();
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let mut child = Command::new(binary())
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--database-url", url])
            .arg("--inbox-dir")
            .arg(inbox)
            .arg("--work-dir")
            .arg(work.path())
            .args(["--demo-data", "false", "--min-file-age", "0s"])
            .args(["--scheduler-interval", &ms(TICK)])
            .args(["--heartbeat-interval", &ms(heartbeat)])
            .args(["--heartbeat-timeout", &ms(HEARTBEAT_TIMEOUT)])
            .args(["--instance-name", name])
            .args(extra)
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start alis-import serve");
        let addr = serving_address(&log_path, &mut child).await;
        let client = common::app::connect(addr).await;
        Self {
            child,
            client,
            name: name.to_owned(),
            _work: work,
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.name);
    }

    fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap the child");
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        // A stopped process must be continued to die of SIGKILL promptly.
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address a service process logs it serves on.
async fn serving_address(log: &Path, child: &mut Child) -> std::net::SocketAddr {
    const MARK: &str = "alis-import serving gRPC on ";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.starts_with(MARK)) {
            return line[MARK.len()..].trim().parse().expect("address");
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the service exited ({status}) before serving:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "the service never served:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `<file>.reached` exists: the import is held at that point.
async fn wait_reached(file: &Path) {
    let mut reached = file.as_os_str().to_owned();
    reached.push(".reached");
    let reached = PathBuf::from(reached);
    let deadline = Instant::now() + common::lock::DEADLINE;
    while !reached.exists() {
        assert!(
            Instant::now() < deadline,
            "the import never reached {}",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A database with the sample district, its statewide file in a shared inbox, a task,
/// and one import already done (so "unchanged" means something).
struct Setup {
    store: Store,
    url: String,
    inbox: tempfile::TempDir,
    pauses: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Self {
        let url = support::postgres_url().await;
        let store = Store::connect(&url).await.expect("connect");
        store.migrate(true).await.expect("migrate");
        let spec: SampleSpec = small_sample();
        store
            .insert_district(&sample::district(&spec))
            .await
            .expect("district");
        let inbox = support::temp_dir();
        let file = std::fs::File::create(inbox.path().join(sample::file_name(&spec))).unwrap();
        sample::write_statewide_file(&spec, std::io::BufWriter::new(file)).expect("file");
        Self {
            store,
            url,
            inbox,
            pauses: support::temp_dir(),
        }
    }

    /// Where a pause file goes (not created yet).
    fn pause_path(&self, name: &str) -> PathBuf {
        self.pauses.path().join(name)
    }

    async fn service(&self, name: &str, extra: &[String]) -> ServiceProcess {
        ServiceProcess::start(name, &self.url, self.inbox.path(), TICK, extra).await
    }

    /// Everything an import writes, as text.
    async fn certification_tables(&self) -> Vec<String> {
        let Store::Postgres(pool) = &self.store else {
            unreachable!()
        };
        sqlx::query_scalar(
            "select 'c ' || c::text from certifications c \
             union all select 'e ' || e::text from endorsements e order by 1",
        )
        .fetch_all(pool)
        .await
        .expect("read tables")
    }

    async fn lock_state(&self) -> LockState {
        self.store.cert_lock().await.expect("lock").state
    }

    async fn run(&self, id: i64) -> RunRecord {
        self.store.get_run(id).await.unwrap().unwrap()
    }
}

async fn create_task(client: &Client) -> i64 {
    client
        .clone()
        .schedule_task(alis_import::api::proto::ScheduleTaskRequest {
            task_id: 0,
            description: "Weekly ALiS import".into(),
            active: false,
            start_date: "2026-11-30".into(),
            start_time: "06:00".into(),
            weekdays: vec![],
            time_zone: "America/New_York".into(),
        })
        .await
        .expect("schedule")
        .into_inner()
        .task
        .expect("task")
        .id
}

async fn import_on(setup: &Setup, client: &Client, task: i64) -> RunRecord {
    let run = run_now(client, task).await;
    let done = wait_for_run(&setup.store, run.id, "ended", |r| r.ended_at.is_some()).await;
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_importer_mid_replace_leaves_the_tables_and_frees_the_lock() {
    let setup = Setup::new().await;
    let other = setup.service("kill-9-other", &[]).await;
    let pause = setup.pause_path("before-commit");
    let flags = [
        "--test-pause-before-commit-file".to_owned(),
        pause.display().to_string(),
    ];
    let mut importer = setup.service("kill-9-importer", &flags).await;
    let task = create_task(&other.client).await;
    import_on(&setup, &other.client, task).await;
    let before = setup.certification_tables().await;
    assert!(!before.is_empty());

    // The importer deletes and inserts everything, then holds before its commit.
    std::fs::write(&pause, b"").unwrap();
    let run = run_now(&importer.client, task).await;
    wait_reached(&pause).await;
    assert_eq!(setup.lock_state().await, LockState::Held);
    assert_eq!(setup.run(run.id).await.status, RunStatus::InProgress);

    importer.kill_9();
    let killed = Instant::now();
    assert_eq!(
        setup.certification_tables().await,
        before,
        "nothing was committed"
    );

    let failed = wait_for_run(
        &setup.store,
        run.id,
        "was failed by the other process",
        |r| r.status == RunStatus::Failed,
    )
    .await;
    let deadline = Instant::now() + common::lock::DEADLINE;
    while setup.lock_state().await != LockState::Free {
        assert!(Instant::now() < deadline, "the lock was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let freed_after = killed.elapsed();
    eprintln!(
        "run failed and lock freed {freed_after:?} after SIGKILL (heartbeat timeout {HEARTBEAT_TIMEOUT:?})"
    );
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("worker lost")),
        "{failed:?}"
    );
    assert!(
        freed_after <= HEARTBEAT_TIMEOUT + TICK * 2 + Duration::from_secs(2),
        "freed {freed_after:?} after the kill"
    );
    assert_eq!(setup.certification_tables().await, before);
    acquire(&other.client, "editor after the crash", None)
        .await
        .expect("edits are allowed again");
    // And the surviving process imports again.
    import_on(&setup, &other.client, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_importer_hung_inside_its_transaction_is_ended_by_the_database_and_reaped() {
    let setup = Setup::new().await;
    let other = setup.service("hung-other", &[]).await;
    let pause = setup.pause_path("before-commit");
    std::fs::write(&pause, b"").unwrap();
    let flags = [
        "--test-pause-before-commit-file".to_owned(),
        pause.display().to_string(),
    ];
    let importer = setup.service("hung-importer", &flags).await;
    let task = create_task(&other.client).await;
    let before = setup.certification_tables().await;

    let run = run_now(&importer.client, task).await;
    wait_reached(&pause).await;
    // Hung with the lock row locked by its open transaction: PostgreSQL ends the idle
    // transaction after the heartbeat timeout, so the reaper is not blocked for ever.
    importer.signal("STOP");
    let stopped = Instant::now();
    let failed = wait_for_run(&setup.store, run.id, "was reaped", |r| {
        r.status == RunStatus::Failed
    })
    .await;
    let deadline = Instant::now() + common::lock::DEADLINE;
    while setup.lock_state().await != LockState::Free {
        assert!(Instant::now() < deadline, "the lock was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "hung importer reaped and lock freed {:?} after SIGSTOP",
        stopped.elapsed()
    );
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("worker lost"))
    );
    assert_eq!(setup.certification_tables().await, before);

    std::fs::remove_file(&pause).unwrap();
    importer.signal("CONT");
    // Its commit fails (the database ended the transaction): still nothing written,
    // and the run stays failed.
    let second = import_on(&setup, &other.client, task).await;
    assert_eq!(common::records_written_by(&setup.store, run.id).await, 0);
    assert!(common::records_written_by(&setup.store, second.id).await > 0);
    assert_eq!(setup.run(run.id).await.status, RunStatus::Failed);
}

/// `SIGSTOP` of the importer held (with the lock) before its replace, past the
/// heartbeat timeout; the other process reaps its run, frees the lock and imports;
/// then `SIGCONT`. With `starved_heartbeat`, the importer's heartbeat never runs
/// (interval of an hour), as if its heartbeat task were starved: then only the epoch
/// can stop it. Otherwise whichever it notices first stops it: its refused heartbeat
/// or the epoch check of its replace transaction.
async fn a_stopped_importer_resumed_after_a_takeover_writes_nothing(starved_heartbeat: bool) {
    let setup = Setup::new().await;
    let name = if starved_heartbeat {
        "stop-starved"
    } else {
        "stop"
    };
    let other = setup.service(&format!("{name}-other"), &[]).await;
    let pause = setup.pause_path("before-replace");
    std::fs::write(&pause, b"").unwrap();
    let flags = [
        "--test-pause-before-replace-file".to_owned(),
        pause.display().to_string(),
    ];
    let heartbeat = if starved_heartbeat {
        Duration::from_secs(3600)
    } else {
        TICK
    };
    let stale = ServiceProcess::start(
        &format!("{name}-importer"),
        &setup.url,
        setup.inbox.path(),
        heartbeat,
        &flags,
    )
    .await;
    let task = create_task(&other.client).await;

    let stale_run = run_now(&stale.client, task).await;
    wait_reached(&pause).await;
    assert_eq!(setup.lock_state().await, LockState::Held);
    if !starved_heartbeat {
        // While it beats, the other process's reaper leaves it alone, however long
        // it holds the lock.
        tokio::time::sleep(HEARTBEAT_TIMEOUT + TICK * 3).await;
        assert_eq!(setup.run(stale_run.id).await.status, RunStatus::InProgress);
        assert_eq!(setup.lock_state().await, LockState::Held);
    }
    stale.signal("STOP");

    let reaped = wait_for_run(&setup.store, stale_run.id, "was reaped", |r| {
        r.status == RunStatus::Failed
    })
    .await;
    assert!(
        reaped
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("worker lost"))
    );
    assert_eq!(setup.lock_state().await, LockState::Free);
    let second = import_on(&setup, &other.client, task).await;
    let after_second = setup.certification_tables().await;

    std::fs::remove_file(&pause).unwrap();
    stale.signal("CONT");
    let fenced = wait_for_run(&setup.store, stale_run.id, "was recorded as fenced", |r| {
        r.error.as_deref().is_some_and(|e| e.starts_with("fenced"))
    })
    .await;
    eprintln!("{name}: {}", fenced.error.as_deref().unwrap_or_default());
    assert_eq!(fenced.status, RunStatus::Failed);
    if starved_heartbeat {
        assert!(
            fenced
                .error
                .as_deref()
                .is_some_and(|e| e.contains("epoch was")),
            "the epoch stopped it: {fenced:?}"
        );
    }
    assert_eq!(
        setup.certification_tables().await,
        after_second,
        "it wrote nothing"
    );
    assert_eq!(
        common::records_written_by(&setup.store, stale_run.id).await,
        0
    );
    let Store::Postgres(pool) = &setup.store else {
        unreachable!()
    };
    let foreign: i64 = sqlx::query_scalar(
        "select count(*) from certifications where import_run_id is distinct from $1",
    )
    .bind(second.id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(foreign, 0, "the data is the second import's");
    let lock = setup.store.cert_lock().await.unwrap();
    assert_eq!((lock.state, lock.epoch), (LockState::Free, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_importer_resumed_after_a_takeover_is_fenced() {
    a_stopped_importer_resumed_after_a_takeover_writes_nothing(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_importer_with_a_starved_heartbeat_is_fenced_by_the_epoch() {
    a_stopped_importer_resumed_after_a_takeover_writes_nothing(true).await;
}
