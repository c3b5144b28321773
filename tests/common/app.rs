//! The real service on port 0, against a fresh database of one backend, with its own
//! inbox and work folders and a manual clock; and a tonic client to it.

use std::sync::Arc;
use std::time::Duration;

use alis_import::api::proto::cert_import_service_client::CertImportServiceClient;
use alis_import::clock::ManualClock;
use alis_import::config::ServiceConfig;
use alis_import::sample::{self, SampleSpec};
use alis_import::startup::Application;
use alis_import::store::Store;
use tokio::sync::oneshot;
use tonic::transport::Channel;

use crate::support::{Backend, Guard};

/// A running service and what a test needs to talk to it.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub client: CertImportServiceClient<Channel>,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    pub scheduler: alis_import::scheduler::Scheduler,
    pub inbox: tempfile::TempDir,
    pub backend: Backend,
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _work: tempfile::TempDir,
    _guard: Guard,
}

/// The instant test clocks start at: Monday 2026-11-30 12:00 UTC.
pub fn test_epoch() -> jiff::Timestamp {
    "2026-11-30T12:00:00Z".parse().expect("timestamp")
}

/// Options of a test service.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// Extra flags for the service configuration.
    pub flags: Vec<String>,
    /// Hold every import before its replace until the test adds permits.
    pub replace_gate: Option<Arc<tokio::sync::Semaphore>>,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, AppOptions::default()).await
}

pub async fn spawn_app_with(backend: Backend, options: AppOptions) -> TestApp {
    let (url, guard) = backend.fresh_database_url().await;
    spawn_app_on(backend, url, guard, options).await
}

/// A service on an existing database (several instances may share one).
pub async fn spawn_app_on(
    backend: Backend,
    url: String,
    guard: Guard,
    options: AppOptions,
) -> TestApp {
    let inbox = crate::support::temp_dir();
    let work = crate::support::temp_dir();
    let mut args: Vec<String> = vec![
        "alis-import".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--database-url".into(),
        url.clone(),
        "--inbox-dir".into(),
        inbox.path().display().to_string(),
        "--work-dir".into(),
        work.path().display().to_string(),
        "--demo-data".into(),
        "false".into(),
        "--min-file-age".into(),
        "0s".into(),
        // Tests drive the scheduler themselves.
        "--scheduler-interval".into(),
        "1h".into(),
        "--heartbeat-interval".into(),
        "200ms".into(),
    ];
    args.extend(options.flags);
    let config = ServiceConfig::parse_from(args).expect("test configuration");
    let clock = Arc::new(ManualClock::new(test_epoch()));
    let app = Application::build_with(&config, clock.clone(), options.replace_gate.clone())
        .await
        .expect("build app");
    let addr = app.local_addr().expect("local addr");
    let store = app.store().clone();
    let scheduler = app.scheduler().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    // The listener is bound already: a lazy channel connects on first use (and a test
    // of a TLS server builds its own client).
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy();
    let client = CertImportServiceClient::new(channel);
    TestApp {
        addr,
        client,
        store,
        clock,
        scheduler,
        inbox,
        backend,
        url,
        stop: Some(stop),
        served: Some(served),
        _work: work,
        _guard: guard,
    }
}

/// A client connected to `addr`, retrying briefly while the server starts.
pub async fn connect(addr: std::net::SocketAddr) -> CertImportServiceClient<Channel> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match CertImportServiceClient::connect(format!("http://{addr}")).await {
            Ok(client) => return client,
            Err(error) if tokio::time::Instant::now() > deadline => {
                panic!("cannot connect to {addr}: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

impl TestApp {
    /// Writes a sample district into the database and its statewide file into the inbox.
    pub async fn seed_sample(&self, spec: &SampleSpec) {
        self.store
            .insert_district(&sample::district(spec))
            .await
            .expect("insert district");
        let path = self.inbox.path().join(sample::file_name(spec));
        let file = std::fs::File::create(&path).expect("create sample file");
        sample::write_statewide_file(spec, std::io::BufWriter::new(file))
            .expect("write sample file");
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A guard for a second (third, …) instance on a database whose real guard another
/// instance holds: `spawn_app_on` wants one per instance. For SQLite it is an unused
/// temporary directory; for PostgreSQL an unused empty database.
pub async fn spare_guard(backend: Backend) -> Guard {
    backend.fresh_database_url().await.1
}

/// `--instance-name NAME`: instances in one test process would otherwise all claim
/// runs as the same `host:pid`, and one could beat for another's run.
pub fn instance_named(name: &str) -> Vec<String> {
    vec!["--instance-name".into(), name.into()]
}

/// A service on a runtime of its own, on a thread of its own, so that a test can kill
/// it abruptly, as when a pod is killed: no graceful shutdown, its tasks (imports,
/// heartbeats, the server) simply stop existing. Dropping a [`TestApp`] is not that: it
/// stops the service gracefully, which fails its running import as cancelled.
///
/// Its client and store work from the test's runtime while it lives (its thread drives
/// their I/O); after [`KillableApp::kill`] they are dead, use another instance's.
pub struct KillableApp {
    pub app: TestApp,
    kill: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// [`spawn_app_on`], on a runtime of its own that [`KillableApp::kill`] drops.
pub async fn spawn_killable_app_on(
    backend: Backend,
    url: String,
    guard: Guard,
    options: AppOptions,
) -> KillableApp {
    let (started, app) = oneshot::channel();
    let (kill, killed) = oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the killable instance");
        runtime.block_on(async move {
            let app = spawn_app_on(backend, url, guard, options).await;
            if started.send(app).is_ok() {
                let _ = killed.await;
            }
        });
        // Dropping a current-thread runtime drops every task spawned on it, at once
        // and without running any of them further.
        drop(runtime);
    });
    let app = app.await.expect("the killable instance started");
    KillableApp {
        app,
        kill: Some(kill),
        thread: Some(thread),
    }
}

impl KillableApp {
    /// Kills the instance: returns once every task of it is gone. Its database rows
    /// stay as they were at that moment (a running import stays `IN_PROGRESS`).
    pub async fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .expect("join the killer")
                .expect("the killable instance's thread ended cleanly");
        }
    }
}

impl Drop for KillableApp {
    fn drop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}

/// Waits until run `run_id` satisfies `done`, polling the store (the run may execute
/// on any instance), and returns it; panics after `deadline` naming `what`.
pub async fn wait_for_run(
    store: &Store,
    run_id: i64,
    what: &str,
    deadline: Duration,
    done: impl Fn(&alis_import::store::RunRecord) -> bool,
) -> alis_import::store::RunRecord {
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        let run = store
            .get_run(run_id)
            .await
            .expect("read the run")
            .unwrap_or_else(|| panic!("run {run_id} exists"));
        if done(&run) {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "run {run_id} did not reach {what} within {deadline:?}: {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until run `run_id` has ended (SUCCEEDED or FAILED) and returns it.
pub async fn run_ended(store: &Store, run_id: i64) -> alis_import::store::RunRecord {
    use alis_import::store::RunStatus;
    wait_for_run(store, run_id, "its end", Duration::from_secs(60), |run| {
        matches!(run.status, RunStatus::Succeeded | RunStatus::Failed)
    })
    .await
}
