//! Executes a claimed run: fetch the file, import it, record the outcome. Whoever
//! claimed the run (the scheduler, or RunNow) hands it to [`Worker::spawn`].
//!
//! While a run executes, a heartbeat proves this process is alive; if the heartbeat is
//! refused (another replica declared the run lost), the import is dropped, which rolls
//! its transaction back. Shutdown cancels every run the same way and records it as
//! failed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::clock::Clock;
use crate::import::summary::{FileInfo, Summary};
use crate::import::{ImportRequest, ImportSettings, Phase, Progress, run_import};
use crate::source::{FileSource, LocalDirSource, choose_newest};
use crate::store::{RunOutcome, RunRecord, RunStatus, Store};

/// What a worker needs to know, fixed at startup.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Import thresholds.
    pub import: ImportSettings,
    /// The local inbox folder.
    pub inbox_dir: PathBuf,
    /// Scratch folder for files being read.
    pub work_dir: PathBuf,
    /// Files younger than this are still uploading.
    pub min_file_age: Duration,
    /// The district's time zone.
    pub time_zone: TimeZone,
    /// How often a running import proves it is alive.
    pub heartbeat_interval: Duration,
    /// Test and fault-injection hook: when set, every import waits for a permit of
    /// this semaphore before its replace. Never set in production.
    pub replace_gate: Option<Arc<tokio::sync::Semaphore>>,
}

/// Forwards phases to the run's phase writer, and holds the import at the replace
/// while a gate is configured.
struct RunProgress<'a> {
    phases: &'a watch::Sender<Phase>,
    replace_gate: Option<&'a tokio::sync::Semaphore>,
}

impl Progress for RunProgress<'_> {
    async fn enter(&self, phase: Phase) {
        let _ = self.phases.send(phase);
        if let (Phase::Replacing, Some(gate)) = (phase, self.replace_gate)
            && let Ok(permit) = gate.acquire().await
        {
            permit.forget();
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
    #[error("no ALiS file found in {0}")]
    NoFile(String),
    #[error("cannot read the ALiS file: {0}")]
    Source(#[from] crate::source::SourceError),
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot open the downloaded file: {0}")]
    Open(std::io::Error),
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
            dry_run = run.dry_run
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
        let (phase_tx, phase_rx) = watch::channel(Phase::Fetching);
        let outcome = tokio::select! {
            result = self.import(&run, &phase_tx) => Some(result),
            () = self.keep_alive(run.id) => None,
            () = self.write_phases(run.id, phase_rx) => None,
            () = self.cancel.cancelled() => Some(Err(RunError::Cancelled)),
        };
        let Some(result) = outcome else {
            tracing::warn!(
                run_id = run.id,
                "heartbeat refused: another replica took the run over"
            );
            return;
        };
        let (status, error, summary) = match result {
            Ok(summary) => match &summary.rejected {
                None => (RunStatus::Succeeded, None, Some(summary)),
                Some(reason) => (RunStatus::Failed, Some(reason.clone()), Some(summary)),
            },
            Err(error) => {
                tracing::error!(run_id = run.id, error = ?error, "run failed");
                (RunStatus::Failed, Some(operator_message(&error)), None)
            }
        };
        let _ = self.store.set_phase(run.id, "DONE").await;
        let outcome = RunOutcome { status, error };
        let finished = self
            .store
            .finish_run_at(run.id, &outcome, summary.as_ref(), self.clock.now())
            .await;
        if let Err(error) = finished {
            tracing::error!(run_id = run.id, error = ?anyhow::Error::new(error), "cannot record the run's end");
        }
    }

    async fn import(
        &self,
        run: &RunRecord,
        phase: &watch::Sender<Phase>,
    ) -> Result<Summary, RunError> {
        let _ = phase.send(Phase::Fetching);
        let source = FileSource::Local(LocalDirSource::new(self.settings.inbox_dir.clone()));
        let listing = source.list().await?;
        let choice = choose_newest(listing, self.clock.now(), self.settings.min_file_age);
        for ignored in &choice.ignored {
            let _ = self
                .store
                .append_run_log(
                    run.id,
                    crate::store::LogLevel::Warn,
                    &format!("ignored {}: {}", ignored.name, ignored.reason),
                )
                .await;
        }
        let listed = choice
            .chosen
            .ok_or_else(|| RunError::NoFile(source.to_string()))?;
        let work_dir = self.settings.work_dir.join(format!("run-{}", run.id));
        tokio::fs::create_dir_all(&work_dir)
            .await
            .map_err(RunError::Open)?;
        let fetched = source.download(&listed, &work_dir).await?;
        let input = std::fs::File::open(&fetched.path).map_err(RunError::Open)?;
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
                name: fetched.name.to_string(),
                sha256: fetched.sha256_hex(),
                from_cache: false,
            },
        };
        let progress = RunProgress {
            phases: phase,
            replace_gate: self.settings.replace_gate.as_deref(),
        };
        let summary = run_import(
            &self.store,
            input,
            &request,
            &self.settings.import,
            &progress,
        )
        .await;
        let _ = tokio::fs::remove_dir_all(&work_dir).await;
        Ok(summary?)
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
    async fn write_phases(&self, run_id: i64, mut phases: watch::Receiver<Phase>) {
        loop {
            let phase = *phases.borrow_and_update();
            if let Err(error) = self.store.set_phase(run_id, phase_name(phase)).await {
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
        Phase::Replacing => "REPLACING",
        Phase::Reporting => "REPORTING",
    }
}

/// What the run's `error` column says: for an operator, without internal detail.
fn operator_message(error: &RunError) -> String {
    match error {
        RunError::Store(_) | RunError::Import(crate::import::ImportError::Store(_)) => {
            "the database failed during the import; nothing was changed".into()
        }
        other => other.to_string(),
    }
}
