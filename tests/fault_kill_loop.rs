//! The kill loop (issue 8, design §5–§6): an import runs in a child `alis-import serve`
//! process, started by `RunNow` over gRPC, and is killed with `SIGKILL` at a random
//! moment. Every time, the certification tables must be exactly as before the import
//! or exactly as after it (full snapshots, every column, compared with both references
//! computed beforehand), never in between; the certification lock must be free exactly
//! when the new data is visible; and a second service instance must recover: its
//! scheduler leaves the run and the lock alone while the heartbeat is fresh, then,
//! once the timeout has passed, fails the run "worker lost" (saying so when its
//! import had committed) and frees the lock; an edit lease is granted and a new
//! import starts (every fifth iteration, and the last, waits for it to succeed).
//!
//! Each iteration starts from the same database: a template holding a district and a
//! previous import (so "before" has data, and differs from "after"), copied per
//! iteration (PostgreSQL: `CREATE DATABASE … TEMPLATE`; SQLite: a file copy). Copies
//! keep sequences, so the post-import state, ids and run ids included, is the same in
//! every copy; three calibration imports measure it (and check that it is) and when
//! the replace commits. Kill delays are then drawn, seeded and stratified: 70 % up to
//! 120 % of the commit time (fetch, parse, plan, guard, waiting for edits, the
//! transaction), the rest up to 115 % of the whole import (the report, the run's end,
//! after it). On PostgreSQL a kill inside the replace transaction is recognised by the
//! certification ids it drew (a sequence never gives them back).
//!
//! The recovering instance runs in this process on a manual clock (set to the instant
//! of the kill, then moved past the heartbeat timeout), so nothing here waits for the
//! timeout to pass in real time.
//!
//! `ALIS_FAULT_ITERATIONS` (default 50) kills per backend; `ALIS_FAULT_SEED` replays a
//! run's delays (the seed is printed). Child logs: `test-artifacts/fault_kill_loop/`
//! (kept for a failing iteration only). Both backends take about 80 s together on the
//! 2-core CI machine (a debug build's PDF report is most of an import).

mod common;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alis_import::api::proto::{self, cert_import_service_client::CertImportServiceClient};
use alis_import::lock::LockState;
use alis_import::sample::{self, SampleSpec};
use alis_import::store::{RunRecord, RunStatus, Store};
use common::app::{AppOptions, TestApp, spawn_app_on};
use jiff::{SignedDuration, Timestamp};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use support::{Backend, PostgresServer};
use tonic::transport::Channel;

type Client = CertImportServiceClient<Channel>;

/// How often the importing child proves it is alive.
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
/// After this long without a heartbeat, the recovering instance fails the run. Its
/// clock is manual, so a generous timeout costs no time, and a child starved for a
/// while on a busy machine is still "fresh" at the first tick.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long any observable state may take to come about before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);
/// Calibration imports (run to completion) before the kills.
const CALIBRATION_RUNS: usize = 3;

/// Big enough that the replace takes tens of milliseconds (some 1 200 certification
/// and endorsement records of 400 employees), small enough for the loop to stay
/// within its time budget (the debug build's PDF report is most of an import's time).
fn sample_spec() -> SampleSpec {
    SampleSpec {
        statewide_educators: 1_500,
        employees: 400,
        ..SampleSpec::default()
    }
}

fn iterations() -> usize {
    std::env::var("ALIS_FAULT_ITERATIONS")
        .ok()
        .map(|v| v.parse().expect("ALIS_FAULT_ITERATIONS is a number"))
        .unwrap_or(50)
}

fn seed() -> u64 {
    std::env::var("ALIS_FAULT_SEED")
        .ok()
        .map(|v| v.parse().expect("ALIS_FAULT_SEED is a number"))
        .unwrap_or_else(|| fastrand::u64(..))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_imports_killed_at_random_moments_leave_before_or_after_and_are_recovered() {
    kill_loop(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_imports_killed_at_random_moments_leave_before_or_after_and_are_recovered() {
    kill_loop(Backend::Sqlite).await;
}

// ---------------------------------------------------------------------------
// The loop.
// ---------------------------------------------------------------------------

/// Where a kill landed, as seen afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Landed {
    /// Tables as before, before the replace began; the run was reaped as lost.
    Before,
    /// Tables as before, but the replace had drawn certification ids from the sequence
    /// (PostgreSQL, which never gives them back): killed inside the transaction, which
    /// was rolled back. The run was reaped as lost.
    BeforeInsideTheTransaction,
    /// Tables as after, the run not recorded as ended: the kill fell between the
    /// commit and the run's end (rendering the report), and the run was reaped as
    /// lost although its records are in place.
    AfterCommitBeforeFinish,
    /// Tables as after; the run had ended SUCCEEDED before the kill.
    AfterFinished,
}

/// What complete imports showed.
struct Calibration {
    /// The tables after the import.
    after: Vec<String>,
    /// Certification and endorsement records the import writes.
    written: i64,
    /// When (after `RunNow` returned) the replace had committed at the latest: the
    /// first sight of the REPORTING phase.
    committed_by: Duration,
    /// How long the slowest import took.
    longest: Duration,
}

/// Runs complete imports in child processes; checks they all end in the same tables.
async fn calibrate(fixture: &Fixture, inbox: &Path) -> Calibration {
    let backend = fixture.backend;
    let mut after: Option<Vec<String>> = None;
    let (mut written, mut committed_by, mut longest) = (0, Duration::ZERO, Duration::ZERO);
    for run in 0..CALIBRATION_RUNS {
        let copy = fixture.copy(&format!("calibration{run}")).await;
        let name = format!("{backend}-calibration-{run}");
        let mut child = ServiceProcess::start(&copy.url, inbox, &name).await;
        let started = run_now(&child.client, fixture.task_id).await;
        let t0 = Instant::now();
        let mut reporting_seen = None;
        let ended = loop {
            let run = copy
                .store
                .get_run(started.id)
                .await
                .expect("read")
                .expect("run");
            if run.ended_at.is_some() {
                break run;
            }
            if run.phase.as_deref() == Some("REPORTING") {
                reporting_seen.get_or_insert(t0.elapsed());
            }
            assert!(t0.elapsed() < DEADLINE, "calibration import never ended");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        assert_eq!(ended.status, RunStatus::Succeeded, "calibration: {ended:?}");
        let took = t0.elapsed();
        committed_by = committed_by.max(reporting_seen.unwrap_or(took));
        longest = longest.max(took);
        written = common::records_written_by(&copy.store, started.id).await;
        let tables = snapshot(&copy.store).await;
        eprintln!(
            "{backend} calibration {run}: committed by {reporting_seen:?}, ended after {took:?} \
             (run {:?}), {written} records",
            duration_of(&ended)
        );
        match &after {
            None => after = Some(tables),
            Some(reference) => assert_same(reference, &tables, "two complete imports of one copy"),
        }
        child.kill();
        child.forget_log();
        copy.close().await;
    }
    Calibration {
        after: after.expect("calibrated"),
        written,
        committed_by,
        longest,
    }
}

/// The kill delay of iteration `i` of `n`: stratified (iteration i draws within the
/// i-th of n equal slices of [0, 1)), then mapped so that 70 % of the kills fall
/// before 120 % of the commit time (fetch, parse, plan, guard, the transaction) and
/// the rest up to 115 % of the whole import (the report, the run's end, after it).
fn kill_delay(calibration: &Calibration, i: usize, n: usize, rng: &mut fastrand::Rng) -> Duration {
    let u = (i as f64 + rng.f64()) / n as f64;
    let commit = calibration.committed_by.as_secs_f64() * 1.2;
    let end = (calibration.longest.as_secs_f64() * 1.15).max(commit);
    let seconds = if u < 0.7 {
        u / 0.7 * commit
    } else {
        commit + (u - 0.7) / 0.3 * (end - commit)
    };
    Duration::from_secs_f64(seconds)
}

async fn kill_loop(backend: Backend) {
    let started = Instant::now();
    let seed = seed();
    let iterations = iterations();
    eprintln!("{backend} kill loop: {iterations} iterations, ALIS_FAULT_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let fixture = Fixture::new(backend).await;
    let spec = sample_spec();
    let inbox = support::temp_dir();
    write_sample_file(&spec, inbox.path());
    let calibration = calibrate(&fixture, inbox.path()).await;
    assert!(
        calibration.written > 500,
        "the sample imports a thousand records or so"
    );
    assert_ne!(
        fixture.before, calibration.after,
        "the import changes the tables"
    );

    let mut landed: BTreeMap<Landed, usize> = BTreeMap::new();
    let mut phases: BTreeMap<String, usize> = BTreeMap::new();
    for iteration in 0..iterations {
        let delay = kill_delay(&calibration, iteration, iterations, &mut rng);
        let context = format!(
            "{backend} iteration {iteration} (ALIS_FAULT_SEED={seed}), killed {delay:?} after RunNow"
        );
        let mut copy = fixture.copy(&format!("kill{iteration}")).await;
        let mut child =
            ServiceProcess::start(&copy.url, inbox.path(), &format!("{backend}-{iteration}")).await;
        let run = run_now(&child.client, fixture.task_id).await;
        tokio::time::sleep(delay).await;
        child.kill();
        let killed_at = Timestamp::now();
        copy.wait_for_orphans().await;

        let at_kill = copy
            .store
            .get_run(run.id)
            .await
            .expect("read")
            .expect("the run");
        let lock_at_kill = copy.store.cert_lock().await.expect("read the lock");
        let tables = snapshot(&copy.store).await;
        let outcome = if tables == fixture.before {
            assert_eq!(
                at_kill.status,
                RunStatus::InProgress,
                "{context}: {at_kill:?}"
            );
            if copy.certification_ids_drawn().await > fixture.certification_ids_drawn {
                Landed::BeforeInsideTheTransaction
            } else {
                Landed::Before
            }
        } else if tables == calibration.after {
            match at_kill.status {
                RunStatus::Succeeded => Landed::AfterFinished,
                RunStatus::InProgress => Landed::AfterCommitBeforeFinish,
                other => panic!("{context}: tables as after the import, run {other:?}"),
            }
        } else {
            panic!(
                "{context}: the tables are neither as before nor as after the import:\n{}",
                describe_difference(&fixture.before, &calibration.after, &tables)
            );
        };
        // The lock is free exactly when the new data is visible (design §6): after the
        // commit it is free; before it, free or the killed run's.
        match outcome {
            Landed::AfterCommitBeforeFinish | Landed::AfterFinished => {
                assert_eq!(
                    lock_at_kill.state,
                    LockState::Free,
                    "{context}: {lock_at_kill:?}"
                )
            }
            Landed::Before | Landed::BeforeInsideTheTransaction => assert!(
                lock_at_kill.state == LockState::Free || lock_at_kill.run_id == Some(run.id),
                "{context}: {lock_at_kill:?}"
            ),
        }
        let written = common::records_written_by(&copy.store, run.id).await;
        let expected = match outcome {
            Landed::Before | Landed::BeforeInsideTheTransaction => 0,
            Landed::AfterCommitBeforeFinish | Landed::AfterFinished => calibration.written,
        };
        assert_eq!(written, expected, "{context}: records of the killed run");

        // A second instance recovers the run: not while its heartbeat is fresh, then
        // once the timeout has passed (unless it had ended).
        let recoverer = copy.recoverer(killed_at).await;
        let tick = recoverer.scheduler.try_execute_once().await.expect("tick");
        assert!(
            tick.reaped.is_empty(),
            "{context}: reaped while the heartbeat was fresh: {tick:?}"
        );
        assert_eq!(
            copy.store.cert_lock().await.expect("read the lock"),
            lock_at_kill,
            "{context}: the lock stays while the heartbeat is fresh"
        );
        recoverer
            .clock
            .set(killed_at + span(HEARTBEAT_TIMEOUT + Duration::from_secs(1)));
        let tick = recoverer.scheduler.try_execute_once().await.expect("tick");
        let ended = copy
            .store
            .get_run(run.id)
            .await
            .expect("read")
            .expect("the run");
        if outcome == Landed::AfterFinished {
            assert!(tick.reaped.is_empty(), "{context}: {tick:?}");
            assert_eq!(ended.status, RunStatus::Succeeded, "{context}");
        } else {
            assert_eq!(tick.reaped, vec![run.id], "{context}: {tick:?}");
            assert_eq!(ended.status, RunStatus::Failed, "{context}");
            let error = ended.error.clone().unwrap_or_default();
            assert!(error.starts_with("worker lost"), "{context}: {error}");
            // Said so when the records are the lost run's (else HR reads "failed" and
            // believes nothing changed).
            assert_eq!(
                error.contains("after its import was committed"),
                outcome == Landed::AfterCommitBeforeFinish,
                "{context}: {error}"
            );
        }
        assert_eq!(
            snapshot(&copy.store).await,
            tables,
            "{context}: reaping changed the tables"
        );

        // The lock is free again, and edits are allowed.
        let lock = copy.store.cert_lock().await.expect("read the lock");
        assert_eq!(lock.state, LockState::Free, "{context}: {lock:?}");
        let lease = common::lock::acquire(&recoverer.client, "an editor after the kill", None)
            .await
            .unwrap_or_else(|status| panic!("{context}: a lease after recovery: {status:?}"));
        common::lock::release(&recoverer.client, &lease.id)
            .await
            .expect("release the lease");

        // The import slot is free again: a new import starts. Every fifth iteration
        // (and the last) also waits for it to succeed; the others stop it (a
        // graceful stop rolls it back) to keep the loop within its time budget.
        std::fs::copy(
            inbox.path().join(sample::file_name(&spec)),
            recoverer.inbox.path().join(sample::file_name(&spec)),
        )
        .expect("the file in the recovering instance's inbox");
        let next = run_now(&recoverer.client, fixture.task_id).await;
        assert_eq!(
            next.status,
            proto::RunStatus::InProgress as i32,
            "{context}: {next:?}"
        );
        if iteration % 5 == 4 || iteration + 1 == iterations {
            let next = wait_for_run(&copy.store, next.id, "the next import ended", |r| {
                r.ended_at.is_some()
            })
            .await;
            assert_eq!(
                next.status,
                RunStatus::Succeeded,
                "{context}: the next import: {next:?}"
            );
            assert_eq!(
                common::records_written_by(&copy.store, next.id).await,
                calibration.written,
                "{context}: the next import wrote everything"
            );
        }

        eprintln!(
            "{context}: last phase {}, {outcome:?}",
            at_kill.phase.as_deref().unwrap_or("-")
        );
        *landed.entry(outcome).or_default() += 1;
        *phases
            .entry(at_kill.phase.clone().unwrap_or_else(|| "-".into()))
            .or_default() += 1;
        recoverer.stop().await;
        child.forget_log();
        copy.close().await;
    }

    eprintln!(
        "{backend} kill loop: {iterations} kills in {:?} (commit by {:?}, import {:?}); \
         outcomes {landed:?}; last phase written before the kill {phases:?}",
        started.elapsed(),
        calibration.committed_by,
        calibration.longest,
    );
    if iterations >= 20 {
        // The stratified delays reach both sides of the commit.
        let before = landed.get(&Landed::Before).copied().unwrap_or(0)
            + landed
                .get(&Landed::BeforeInsideTheTransaction)
                .copied()
                .unwrap_or(0);
        let after = landed
            .get(&Landed::AfterCommitBeforeFinish)
            .copied()
            .unwrap_or(0)
            + landed.get(&Landed::AfterFinished).copied().unwrap_or(0);
        assert!(
            before > 0 && after > 0,
            "kills on one side of the commit only: {landed:?}"
        );
    }
}

fn span(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).expect("a short duration")
}

fn duration_of(run: &RunRecord) -> Duration {
    let (Some(start), Some(end)) = (run.started_at, run.ended_at) else {
        panic!("the run has no start or end: {run:?}")
    };
    Duration::try_from(end.duration_since(start)).expect("a run ends after it starts")
}

// ---------------------------------------------------------------------------
// Databases: the template and its copies.
// ---------------------------------------------------------------------------

/// The template database: migrated, a district, a task, one import of an older file.
struct Fixture {
    backend: Backend,
    /// PostgreSQL: the template database's name. SQLite: the template file.
    template: String,
    task_id: i64,
    /// The certification tables before the import.
    before: Vec<String>,
    /// PostgreSQL: the certification id sequence's position before the import.
    certification_ids_drawn: i64,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new(backend: Backend) -> Self {
        let dir = support::temp_dir();
        let spec = sample_spec();
        let (url, template) = match backend {
            Backend::Postgres => {
                let url = support::postgres_url().await;
                let name = database_name(&url);
                (url, name)
            }
            Backend::Sqlite => {
                let file = dir.path().join("template.db");
                (
                    format!("sqlite://{}?mode=rwc", file.display()),
                    file.display().to_string(),
                )
            }
        };
        let app = spawn_app_on(backend, url, support::Guard::none(), AppOptions::default()).await;
        app.store
            .insert_district(&sample::district(&spec))
            .await
            .expect("insert the district");
        let task_id = app
            .client
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
            .id;
        // Last month's file: a quarter of its rows differ from this month's.
        write_older_file(&spec, app.inbox.path());
        let previous = run_now(&app.client, task_id).await;
        let previous = wait_for_run(&app.store, previous.id, "the previous import ended", |r| {
            r.ended_at.is_some()
        })
        .await;
        assert_eq!(previous.status, RunStatus::Succeeded, "{previous:?}");
        let before = snapshot(&app.store).await;
        let certification_ids_drawn = certification_ids_drawn(&app.store).await;
        app.stop().await;
        let fixture = Self {
            backend,
            template,
            task_id,
            before,
            certification_ids_drawn,
            _dir: dir,
        };
        if backend == Backend::Postgres {
            // CREATE DATABASE … TEMPLATE wants the template to have no sessions.
            wait_without_sessions(&fixture.template).await;
        } else {
            assert!(
                !Path::new(&format!("{}-wal", fixture.template)).exists(),
                "the template's WAL was checkpointed on close"
            );
        }
        fixture
    }

    /// A fresh copy of the template.
    async fn copy(&self, name: &str) -> Copy {
        match self.backend {
            Backend::Postgres => {
                let name = format!("{}_{name}", self.template);
                admin(&format!(
                    "create database {name} template {} strategy file_copy",
                    self.template
                ))
                .await;
                let url = PostgresServer::get().url(&name);
                Copy {
                    backend: self.backend,
                    store: Store::connect(&url).await.expect("connect to the copy"),
                    url,
                    database: Some(name),
                    _dir: None,
                }
            }
            Backend::Sqlite => {
                let dir = support::temp_dir();
                let file = dir.path().join(format!("{name}.db"));
                std::fs::copy(&self.template, &file).expect("copy the template");
                let url = format!("sqlite://{}?mode=rw", file.display());
                Copy {
                    backend: self.backend,
                    store: Store::connect(&url).await.expect("open the copy"),
                    url,
                    database: None,
                    _dir: Some(dir),
                }
            }
        }
    }
}

/// One iteration's database.
struct Copy {
    backend: Backend,
    url: String,
    store: Store,
    /// PostgreSQL: the database's name, dropped at the end.
    database: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Copy {
    /// Waits until no session of the killed child is left, then reconnects. A killed
    /// client's backend goes on until it notices: a `COMMIT` it had received may still
    /// land, so the tables are only "after the kill" once it is gone.
    async fn wait_for_orphans(&mut self) {
        if let Some(database) = &self.database {
            self.store.close().await;
            wait_without_sessions(database).await;
            self.store = Store::connect(&self.url)
                .await
                .expect("reconnect to the copy");
        }
    }

    async fn certification_ids_drawn(&self) -> i64 {
        certification_ids_drawn(&self.store).await
    }

    /// A second service instance on this database, its clock at `now`.
    async fn recoverer(&self, now: Timestamp) -> TestApp {
        let flags = vec![
            "--heartbeat-timeout".into(),
            format!("{}ms", HEARTBEAT_TIMEOUT.as_millis()),
            "--instance-name".into(),
            "recoverer".into(),
        ];
        let app = spawn_app_on(
            self.backend,
            self.url.clone(),
            support::Guard::none(),
            AppOptions {
                flags,
                replace_gate: None,
            },
        )
        .await;
        app.clock.set(now);
        app
    }

    async fn close(self) {
        self.store.close().await;
        if let Some(database) = &self.database {
            admin(&format!("drop database {database} with (force)")).await;
        }
    }
}

/// PostgreSQL: the last value the certification id sequence gave (a rolled-back
/// transaction does not give values back). SQLite: 0 (ids are computed, not drawn).
async fn certification_ids_drawn(store: &Store) -> i64 {
    match store {
        Store::Postgres(pool) => sqlx::query_scalar(
            "select coalesce(last_value, 0) from pg_sequences \
             where sequencename = 'certifications_id_seq'",
        )
        .fetch_one(pool)
        .await
        .expect("read the certification id sequence"),
        Store::Sqlite(_) => 0,
    }
}

/// Runs one statement as the superuser on the `postgres` database.
async fn admin(sql: &str) {
    let url = PostgresServer::get().url("postgres");
    let mut conn = PgConnection::connect(&url).await.expect("connect as admin");
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

async fn wait_without_sessions(database: &str) {
    let url = PostgresServer::get().url("postgres");
    let mut conn = PgConnection::connect(&url).await.expect("connect as admin");
    let give_up = Instant::now() + DEADLINE;
    loop {
        let sessions: i64 =
            sqlx::query_scalar("select count(*) from pg_stat_activity where datname = $1")
                .bind(database)
                .fetch_one(&mut conn)
                .await
                .expect("read pg_stat_activity");
        if sessions == 0 {
            break;
        }
        assert!(Instant::now() < give_up, "{database} kept its sessions");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = conn.close().await;
}

fn database_name(url: &str) -> String {
    url.rsplit('/').next().expect("a database name").to_owned()
}

// ---------------------------------------------------------------------------
// Files.
// ---------------------------------------------------------------------------

fn write_sample_file(spec: &SampleSpec, dir: &Path) {
    let file = std::fs::File::create(dir.join(sample::file_name(spec))).expect("create the file");
    sample::write_statewide_file(spec, std::io::BufWriter::new(file)).expect("write the file");
}

/// Last month's file: this month's without every fourth data row.
fn write_older_file(spec: &SampleSpec, dir: &Path) {
    let mut bytes = Vec::new();
    sample::write_statewide_file(spec, &mut bytes).expect("write the file");
    let text = String::from_utf8(bytes).expect("UTF-8");
    let older: String = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i == 0 || i % 4 != 0)
        .map(|(_, line)| format!("{line}\n"))
        .collect();
    std::fs::write(dir.join("Curr_Lic_Eds_End_Limits_20261101.csv"), older)
        .expect("write the older file");
}

// ---------------------------------------------------------------------------
// The child process.
// ---------------------------------------------------------------------------

/// `alis-import serve` as a child process; killed when dropped.
struct ServiceProcess {
    child: Child,
    client: Client,
    log: PathBuf,
    _work: tempfile::TempDir,
}

impl ServiceProcess {
    async fn start(url: &str, inbox: &Path, name: &str) -> Self {
        let logs = support::artifacts_dir().join("fault_kill_loop");
        std::fs::create_dir_all(&logs).expect("the log folder");
        let log = logs.join(format!("{name}.log"));
        let output = std::fs::File::create(&log).expect("the log file");
        let work = support::temp_dir();
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let child = Command::new(env!("CARGO_BIN_EXE_alis-import"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--database-url", url])
            .arg("--inbox-dir")
            .arg(inbox)
            .arg("--work-dir")
            .arg(work.path())
            .args(["--demo-data", "false", "--min-file-age", "0s"])
            // Its scheduler must neither claim nor reap: the recoverer does.
            .args(["--scheduler-interval", "1h"])
            .args(["--heartbeat-interval", &ms(HEARTBEAT_INTERVAL)])
            .args(["--heartbeat-timeout", &ms(HEARTBEAT_TIMEOUT)])
            .args(["--instance-name", name])
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(output)
            .spawn()
            .expect("start alis-import serve");
        let mut process = Self {
            child,
            client: connect_lazy("127.0.0.1:1"),
            log,
            _work: work,
        };
        let addr = process.serving_address().await;
        process.client = common::app::connect(addr).await;
        process
    }

    async fn serving_address(&mut self) -> std::net::SocketAddr {
        const MARK: &str = "alis-import serving gRPC on ";
        let give_up = Instant::now() + DEADLINE;
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            // Only a whole line: the child may be halfway through writing it.
            let line = text
                .split_inclusive('\n')
                .find(|l| l.starts_with(MARK) && l.ends_with('\n'));
            if let Some(line) = line {
                return line[MARK.len()..].trim().parse().expect("an address");
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the service exited ({status}) before serving:\n{text}");
            }
            assert!(
                Instant::now() < give_up,
                "the service never served:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `SIGKILL`, and waits until it is gone.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap the child");
    }

    /// The iteration passed: its log is of no interest.
    fn forget_log(&self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect_lazy(addr: &str) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy();
    CertImportServiceClient::new(channel)
}

async fn run_now(client: &Client, task_id: i64) -> proto::Run {
    client
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

async fn wait_for_run(
    store: &Store,
    run_id: i64,
    what: &str,
    done: impl Fn(&RunRecord) -> bool,
) -> RunRecord {
    common::app::wait_for_run(store, run_id, what, DEADLINE, done).await
}

// ---------------------------------------------------------------------------
// Snapshots.
// ---------------------------------------------------------------------------

/// Everything an import may touch, every column, as text, in a stable order.
async fn snapshot(store: &Store) -> Vec<String> {
    use common::snapshot::{CERTIFICATIONS, EMPLOYEES, ENDORSEMENT_CODES, ENDORSEMENTS, rows};
    rows(
        store,
        &[CERTIFICATIONS, ENDORSEMENTS, ENDORSEMENT_CODES, EMPLOYEES],
    )
    .await
}

fn assert_same(reference: &[String], actual: &[String], what: &str) {
    assert!(
        reference == actual,
        "{what} differ:\n{}",
        describe_difference(reference, reference, actual)
    );
}

/// Row counts per table, and the first rows `actual` has that neither reference has.
fn describe_difference(before: &[String], after: &[String], actual: &[String]) -> String {
    let count = |rows: &[String]| {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for row in rows {
            *counts
                .entry(row.split(':').next().unwrap_or(""))
                .or_default() += 1;
        }
        format!("{counts:?}")
    };
    let known: std::collections::HashSet<&String> = before.iter().chain(after).collect();
    let strange: Vec<&String> = actual
        .iter()
        .filter(|r| !known.contains(r))
        .take(5)
        .collect();
    format!(
        "before: {}\nafter:  {}\nactual: {}\nrows in neither (first 5): {strange:#?}",
        count(before),
        count(after),
        count(actual)
    )
}
