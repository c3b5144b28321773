//! Executes a claimed run: fetch the file, import it, render the report, record the
//! outcome. Whoever claimed the run (the scheduler, or RunNow) hands it to
//! [`Worker::spawn`].
//!
//! While a run executes, a heartbeat proves this process is alive; if the heartbeat is
//! refused (another replica declared the run lost), the import is dropped, which rolls
//! its transaction back, and the run is recorded as fenced. Shutdown cancels every run
//! the same way and records it as failed.
//!
//! Whatever way a run ends (success, failure, fenced, cancelled, shut down), the worker
//! then frees the certification lock if the run still wants or holds it: the `finally`
//! of design §6. If the process dies instead, the reaper of another replica frees it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::clock::Clock;
use crate::fetch::{FetchSettings, RunLog, begin_fetch};
use crate::import::summary::{FileInfo, Summary};
use crate::import::{ImportError, ImportRequest, ImportSettings, Phase, Progress, run_import};
use crate::report::{ReportHeader, render_pdf_in_background};
use crate::source::{CredentialsError, FileSource, SourceFactory};
use crate::store::{LogLevel, RunOutcome, RunRecord, RunStatus, Store, StoreError};

/// What a worker needs to know, fixed at startup.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Import thresholds.
    pub import: ImportSettings,
    /// Where each run's file comes from (the SFTP credentials are read per run).
    pub sources: SourceFactory,
    /// Scratch folder for files being read.
    pub work_dir: PathBuf,
    /// How the file is chosen, and the largest accepted.
    pub fetch: FetchSettings,
    /// The district's name on reports.
    pub district_name: String,
    /// The district's time zone.
    pub time_zone: TimeZone,
    /// How often a running import proves it is alive.
    pub heartbeat_interval: Duration,
    /// Test and fault-injection hook: when set, every import waits for a permit of
    /// this semaphore before its replace. Never set in production.
    pub replace_gate: Option<Arc<tokio::sync::Semaphore>>,
    /// Test-only hooks for tests that run the binary as a child process (see
    /// [`PauseFiles`]). Never set in production.
    pub pause_files: PauseFiles,
}

/// TEST ONLY: files that hold an import while they exist, so a test can kill or stop
/// the process at a known point (the in-process `replace_gate` cannot reach a child
/// process). On reaching the point the import creates `<file>.reached`, then waits
/// until `<file>` is deleted. Set by hidden flags; never in production.
#[derive(Debug, Clone, Default)]
pub struct PauseFiles {
    /// Holds the import after it took the lock (HELD), before its replace transaction.
    pub before_replace: Option<PathBuf>,
    /// Holds the import inside its replace transaction, after every write, before
    /// the commit.
    pub before_commit: Option<PathBuf>,
}

/// How often a paused import looks whether its pause file is gone.
const PAUSE_POLL: Duration = Duration::from_millis(50);

/// TEST ONLY: announces that the import reached `file`'s point, then waits while
/// `file` exists.
async fn pause_while_exists(file: &Path) {
    if !file.exists() {
        return;
    }
    let mut reached = file.as_os_str().to_owned();
    reached.push(".reached");
    if let Err(error) = std::fs::write(&reached, b"") {
        tracing::warn!(%error, "cannot announce the test pause");
    }
    tracing::warn!(file = %file.display(), "TEST PAUSE: import held until the file is deleted");
    while file.exists() {
        tokio::time::sleep(PAUSE_POLL).await;
    }
}

/// The run's log in the store, as the fetch step writes to it.
struct StoreRunLog<'a> {
    store: &'a Store,
    run_id: i64,
}

impl RunLog for StoreRunLog<'_> {
    fn run_id(&self) -> Option<i64> {
        Some(self.run_id)
    }

    async fn append(&self, level: LogLevel, message: &str) -> Result<(), StoreError> {
        self.store.append_run_log(self.run_id, level, message).await
    }
}

/// A phase and what it waits for, as the run's row shows them.
type PhaseState = (Phase, Option<String>);

/// Forwards phases to the run's phase writer, and holds the import at the replace
/// while a gate or a pause file is configured (tests).
struct RunProgress<'a> {
    phases: &'a watch::Sender<PhaseState>,
    replace_gate: Option<&'a tokio::sync::Semaphore>,
    pause_files: &'a PauseFiles,
    /// The file cache write's outcome, once it has one.
    cached: watch::Receiver<Option<Result<(), String>>>,
}

impl Progress for RunProgress<'_> {
    async fn enter(&self, phase: Phase) {
        let _ = self.phases.send((phase, None));
        if phase != Phase::Replacing {
            return;
        }
        if let Some(gate) = self.replace_gate
            && let Ok(permit) = gate.acquire().await
        {
            permit.forget();
        }
        if let Some(file) = &self.pause_files.before_replace {
            pause_while_exists(file).await;
        }
    }

    async fn ready_to_write(&self) -> Result<(), String> {
        let mut cached = self.cached.clone();
        match cached.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Ok(())),
            Err(_) => Err("the file cache write stopped unexpectedly".into()),
        }
    }

    fn detail(&self, detail: String) {
        self.phases
            .send_modify(|(_, current)| *current = Some(detail));
    }

    async fn before_commit(&self) {
        if let Some(file) = &self.pause_files.before_commit {
            pause_while_exists(file).await;
        }
    }
}

/// Runs imports in the background, tracked so shutdown can wait for them.
#[derive(Debug, Clone)]
pub struct Worker {
    store: Store,
    settings: Arc<WorkerSettings>,
    clock: Arc<dyn Clock>,
    owner: String,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

/// Why a run did not end normally.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),
    #[error("cannot use the run's work folder: {0}")]
    WorkDir(std::io::Error),
    #[error("cancelled: the service is shutting down; nothing was changed")]
    Cancelled,
}

impl Worker {
    /// A worker for this process; `owner` names it in claimed runs.
    pub fn new(
        store: Store,
        settings: WorkerSettings,
        clock: Arc<dyn Clock>,
        owner: String,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            store,
            settings: Arc::new(settings),
            clock,
            owner,
            tracker: TaskTracker::new(),
            cancel,
        }
    }

    /// This worker's importing run, as the lease desk refuses from it
    /// ([`crate::lock::OwnImport`]).
    pub fn own_import(&self) -> crate::lock::OwnImport {
        self.settings.import.lock.own.clone()
    }

    /// The name this worker claims runs under.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Executes a claimed (IN_PROGRESS) run in the background.
    pub fn spawn(&self, run: RunRecord) {
        let worker = self.clone();
        let span = tracing::info_span!(
            "run",
            run_id = run.id,
            task_id = run.task_id,
            dry_run = run.dry_run,
            status = tracing::field::Empty,
            rows_parsed = tracing::field::Empty,
            records_imported = tracing::field::Empty,
            records_deleted = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        self.tracker
            .spawn(async move { worker.execute(run).await }.instrument(span));
    }

    /// Waits until every spawned run has ended (after cancellation, they end quickly).
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Executes one claimed run to its end and records the outcome.
    pub async fn execute(&self, run: RunRecord) {
        let started = std::time::Instant::now();
        let (phase_tx, phase_rx) = watch::channel((Phase::Fetching, None));
        let outcome = tokio::select! {
            result = self.import(&run, &phase_tx) => Some(result),
            () = self.keep_alive(run.id) => None,
            () = self.write_phases(run.id, phase_rx) => None,
            () = self.cancel.cancelled() => Some(Err(RunError::Cancelled)),
        };
        // Finally (design §6): the import has ended or been dropped; it must not keep
        // the certification lock, whatever happened.
        self.free_lock(run.id).await;
        let fenced = crate::telemetry::EndedRun {
            status: RunStatus::Failed,
            dry_run: run.dry_run,
            duration: started.elapsed(),
            summary: None,
        };
        let result = match outcome {
            None => {
                tracing::warn!(
                    run_id = run.id,
                    "heartbeat refused: another replica took the run over"
                );
                crate::telemetry::run_ended(fenced);
                self.record_fenced(run.id, TAKEN_OVER).await;
                return;
            }
            Some(Err(RunError::Import(error @ ImportError::Fenced { .. }))) => {
                tracing::warn!(run_id = run.id, %error, "the import was fenced");
                crate::telemetry::run_ended(fenced);
                self.record_fenced(run.id, &error.to_string()).await;
                return;
            }
            Some(result) => result,
        };
        let (status, error, summary) = match result {
            Ok(summary) => match &summary.rejected {
                None => (RunStatus::Succeeded, None, Some(Arc::new(summary))),
                Some(reason) => (
                    RunStatus::Failed,
                    Some(reason.clone()),
                    Some(Arc::new(summary)),
                ),
            },
            Err(error) => {
                tracing::error!(run_id = run.id, error = ?error, "run failed");
                (RunStatus::Failed, Some(operator_message(&error)), None)
            }
        };
        crate::telemetry::run_ended(crate::telemetry::EndedRun {
            status,
            dry_run: run.dry_run,
            duration: started.elapsed(),
            summary: summary.as_deref(),
        });
        let _ = self.store.set_phase(run.id, "REPORTING").await;
        let outcome = RunOutcome { status, error };
        let now = self.clock.now();
        // The PDF renders while the summary is written (PostgreSQL), in the
        // transaction that ends the run.
        let finished = match &summary {
            Some(summary) => {
                let pdf = self.render_report(&run, Arc::clone(summary));
                self.store
                    .finish_run_rendering(run.id, &outcome, summary, pdf, now)
                    .await
            }
            None => {
                self.store
                    .finish_run_reported_at(run.id, &outcome, None, None, now)
                    .await
            }
        };
        match finished {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    run_id = run.id,
                    "the run was ended elsewhere (reaped); outcome not recorded"
                );
            }
            Err(error) => {
                tracing::error!(run_id = run.id, error = ?anyhow::Error::new(error), "cannot record the run's end");
            }
        }
    }

    /// Frees the certification lock if run `run_id` still wants or holds it. A failure
    /// is logged: the reaper frees a lock whose run has ended.
    async fn free_lock(&self, run_id: i64) {
        match self.store.free_cert_lock(run_id, self.clock.now()).await {
            Ok(true) => tracing::info!(run_id, "certification lock freed"),
            Ok(false) => {}
            Err(error) => {
                tracing::error!(run_id, error = ?anyhow::Error::new(error), "cannot free the certification lock; the reaper will")
            }
        }
    }

    /// Records that the run was fenced: it ends (or stays) failed with `reason`.
    async fn record_fenced(&self, run_id: i64, reason: &str) {
        if let Err(error) = self.store.fence_run(run_id, reason, self.clock.now()).await {
            tracing::error!(run_id, error = ?anyhow::Error::new(error), "cannot record the fenced run");
        }
    }

    async fn import(
        &self,
        run: &RunRecord,
        phase: &watch::Sender<PhaseState>,
    ) -> Result<Summary, RunError> {
        let _ = phase.send((Phase::Fetching, None));
        let log = StoreRunLog {
            store: &self.store,
            run_id: run.id,
        };
        let source = self.settings.sources.source_for_run(&log).await?;
        let work_dir = self.settings.work_dir.join(format!("run-{}", run.id));
        tokio::fs::create_dir_all(&work_dir)
            .await
            .map_err(RunError::WorkDir)?;
        let result = self.import_from(run, &source, &work_dir, phase).await;
        if let Err(error) = tokio::fs::remove_dir_all(&work_dir).await {
            tracing::warn!(run_id = run.id, %error, "cannot remove the run's work folder");
        }
        result
    }

    async fn import_from(
        &self,
        run: &RunRecord,
        source: &FileSource,
        work_dir: &Path,
        phase: &watch::Sender<PhaseState>,
    ) -> Result<Summary, RunError> {
        let log = StoreRunLog {
            store: &self.store,
            run_id: run.id,
        };
        let (fetched, pending_cache) = begin_fetch(
            source,
            &self.store,
            work_dir,
            self.clock.now(),
            &self.settings.fetch,
            &log,
        )
        .await?;
        // A downloaded file is stored in the file cache while the import parses; the
        // import waits for it before it takes the lock (RunProgress::ready_to_write).
        let (cached_tx, cached) = watch::channel(None);
        let caching = async {
            let result = match pending_cache {
                Some(pending) => pending.store(&self.store, &log).await,
                None => Ok(()),
            };
            let _ = cached_tx.send(Some(result.as_ref().map(|_| ()).map_err(|e| e.to_string())));
            result
        };
        let input = std::fs::File::open(&fetched.file.path).map_err(RunError::WorkDir)?;
        let request = ImportRequest {
            run_id: run.id,
            run_date: self
                .clock
                .now()
                .to_zoned_datetime(self.settings.time_zone.clone())
                .date(),
            dry_run: run.dry_run,
            force: run.force,
            file: FileInfo {
                name: fetched.file.name.to_string(),
                sha256: fetched.file.sha256_hex(),
                from_cache: fetched.from_cache,
            },
        };
        let progress = RunProgress {
            phases: phase,
            replace_gate: self.settings.replace_gate.as_deref(),
            pause_files: &self.settings.pause_files,
            cached,
        };
        let importing = run_import(
            &self.store,
            input,
            &request,
            &self.settings.import,
            &progress,
        );
        let (cached, imported) = tokio::join!(caching, importing);
        // A file that could not be cached fails the run, as it did when the cache was
        // written before the parse: the import waited for it, so nothing was written.
        cached?;
        let mut summary = imported?;
        summary.notes.extend(fetched.notes);
        Ok(summary)
    }

    /// Renders the run's PDF report; a rendering failure is logged, and the run keeps
    /// its structured summary.
    #[tracing::instrument(name = "report", skip_all, fields(pdf_bytes = tracing::field::Empty))]
    async fn render_report(&self, run: &RunRecord, summary: Arc<Summary>) -> Option<Vec<u8>> {
        let header = ReportHeader {
            district: self.settings.district_name.clone(),
            task_description: run.task_description.clone(),
            run_id: run.id,
            run_by: run.run_by.clone(),
            started_at: run.started_at.unwrap_or_else(|| self.clock.now()),
            ended_at: Some(self.clock.now()),
            time_zone: self.settings.time_zone.clone(),
        };
        match render_pdf_in_background(header, summary).await {
            Ok(pdf) => {
                tracing::Span::current().record("pdf_bytes", pdf.len() as i64);
                Some(pdf)
            }
            Err(error) => {
                tracing::error!(run_id = run.id, error = ?anyhow::Error::new(error), "cannot render the report");
                None
            }
        }
    }

    /// Beats until the store refuses the heartbeat (the run was taken over), then
    /// returns. Store errors are retried: the reaper decides, not a blip.
    async fn keep_alive(&self, run_id: i64) {
        loop {
            tokio::time::sleep(self.settings.heartbeat_interval).await;
            match self
                .store
                .heartbeat(run_id, &self.owner, self.clock.now())
                .await
            {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => {
                    tracing::warn!(run_id, error = ?anyhow::Error::new(error), "heartbeat failed")
                }
            }
        }
    }

    /// Writes each phase change to the run's row so every replica can watch it. Never
    /// returns on its own.
    async fn write_phases(&self, run_id: i64, mut phases: watch::Receiver<PhaseState>) {
        loop {
            let (phase, detail) = phases.borrow_and_update().clone();
            if let Err(error) = self
                .store
                .set_phase_detail(run_id, phase_name(phase), detail.as_deref())
                .await
            {
                tracing::warn!(run_id, error = ?anyhow::Error::new(error), "cannot record phase");
            }
            if phases.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The stored name of a phase (the proto's `RunPhase` without its prefix).
pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Fetching => "FETCHING",
        Phase::Parsing => "PARSING",
        Phase::Planning => "PLANNING",
        Phase::Guard => "GUARD",
        Phase::WaitingForEdits => "WAITING_FOR_EDITS",
        Phase::Replacing => "REPLACING",
        Phase::Reporting => "REPORTING",
    }
}

/// The reason of a run whose heartbeat was refused.
const TAKEN_OVER: &str = "fenced: another process declared this run lost (its heartbeat \
    was late) and took it over; this worker stopped its import";

/// What the run's `error` column says: for an operator, without internal detail.
fn operator_message(error: &RunError) -> String {
    match error {
        RunError::Import(crate::import::ImportError::Store(error)) if error.is_disk_full() => {
            "the database's disk is full: the import ran out of space and nothing was \
             changed; free space on the database's disk, then run the import again"
                .into()
        }
        RunError::Import(crate::import::ImportError::Store(_)) => {
            "the database failed during the import; nothing was changed".into()
        }
        other => other.to_string(),
    }
}
