//! A running import's life: heartbeats, phases, and its end.
//!
//! Every write here is conditional on the run still being `IN_PROGRESS` (and, for a
//! heartbeat, still owned by the caller), so a worker that was presumed dead and reaped
//! cannot bring its run back to life: it learns from the `false` it gets back.

use jiff::Timestamp;

use crate::import::summary::{FileInfo, Summary};
use crate::store::instant::{to_pg, to_text};
use crate::store::{RunOutcome, Store, StoreError};

const HEARTBEAT: &str = "update import_runs set heartbeat_at = $3 \
    where id = $1 and owner = $2 and status = 'IN_PROGRESS'";
const SET_PHASE: &str = "update import_runs set phase = $2, phase_detail = $3 \
    where id = $1 and status = 'IN_PROGRESS'";
/// A run in progress or failed (reaped as lost) becomes failed with a "fenced" reason
/// ahead of any earlier one; never a succeeded run, never twice.
const FENCE_RUN: &str = "update import_runs set status = 'FAILED', \
    error = $2 || coalesce(' (earlier: ' || error || ')', ''), ended_at = coalesce(ended_at, $3) \
    where id = $1 and status in ('IN_PROGRESS', 'FAILED') \
    and (error is null or error not like 'fenced:%')";
const FINISH: &str = "update import_runs set status = $2, error = $3, ended_at = $7, \
    file_name = coalesce($4, file_name), file_sha256 = coalesce($5, file_sha256), \
    file_from_cache = coalesce($6, file_from_cache) \
    where id = $1 and status = 'IN_PROGRESS'";
/// A run's report: its summary, and its PDF when there is one (a PDF stored earlier
/// stays when there is none).
const SAVE_REPORT_PG: &str = "insert into import_reports (run_id, summary, pdf) \
    values ($1, $2::json, $3) on conflict (run_id) do update \
    set summary = excluded.summary, pdf = coalesce(excluded.pdf, import_reports.pdf)";
const SAVE_PDF: &str = "update import_reports set pdf = $2 where run_id = $1";
const SAVE_REPORT_SQLITE: &str = "insert into import_reports (run_id, summary, pdf) \
    values ($1, $2, $3) on conflict (run_id) do update \
    set summary = excluded.summary, pdf = coalesce(excluded.pdf, import_reports.pdf)";

/// Runs [`FINISH`] in `$tx`, either backend's transaction, with the end's time
/// encoded for it: how many runs it ended (0 when the run was not in progress).
macro_rules! end_run {
    ($tx:ident, $run_id:expr, $outcome:expr, $file:expr, $ended_at:expr) => {{
        let file: Option<&FileInfo> = $file;
        sqlx::query(FINISH)
            .bind($run_id)
            .bind($outcome.status.as_str())
            .bind($outcome.error.as_deref())
            .bind(file.map(|f| f.name.as_str()))
            .bind(file.map(|f| f.sha256.as_str()))
            .bind(file.map(|f| f.from_cache))
            .bind($ended_at)
            .execute(&mut *$tx)
            .await?
            .rows_affected()
    }};
}

impl Store {
    /// Records that worker `owner` is still running run `run_id` at `now`. `false`
    /// when the run is no longer in progress or not `owner`'s (reaped, finished): the
    /// worker must stop, and write nothing more.
    pub async fn heartbeat(
        &self,
        run_id: i64,
        owner: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let updated = match self {
            Self::Postgres(pool) => sqlx::query(HEARTBEAT)
                .bind(run_id)
                .bind(owner)
                .bind(to_pg(now))
                .execute(pool)
                .await?
                .rows_affected(),
            Self::Sqlite(pool) => sqlx::query(HEARTBEAT)
                .bind(run_id)
                .bind(owner)
                .bind(to_text(now))
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(updated > 0)
    }

    /// Sets what running import `run_id` is doing now (`fetching`, `parsing`, …), for
    /// `WatchRun`. `false` when the run is not in progress.
    pub async fn set_phase(&self, run_id: i64, phase: &str) -> Result<bool, StoreError> {
        self.set_phase_detail(run_id, phase, None).await
    }

    /// As [`Store::set_phase`], with what the phase is waiting for (e.g. "2 edit leases
    /// outstanding"); `None` clears it.
    pub async fn set_phase_detail(
        &self,
        run_id: i64,
        phase: &str,
        detail: Option<&str>,
    ) -> Result<bool, StoreError> {
        let updated = match self {
            Self::Postgres(pool) => sqlx::query(SET_PHASE)
                .bind(run_id)
                .bind(phase)
                .bind(detail)
                .execute(pool)
                .await?
                .rows_affected(),
            Self::Sqlite(pool) => sqlx::query(SET_PHASE)
                .bind(run_id)
                .bind(phase)
                .bind(detail)
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(updated > 0)
    }

    /// Records that run `run_id` was fenced (design §6): its worker found the run taken
    /// over, so it stopped and wrote nothing. The run ends (or stays) `FAILED` with
    /// `reason` (which starts with "fenced") ahead of an earlier reason such as the
    /// reaper's "worker lost". `false` when the run succeeded or was already fenced.
    pub async fn fence_run(
        &self,
        run_id: i64,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let updated = match self {
            Self::Postgres(pool) => sqlx::query(FENCE_RUN)
                .bind(run_id)
                .bind(reason)
                .bind(to_pg(now))
                .execute(pool)
                .await?
                .rows_affected(),
            Self::Sqlite(pool) => sqlx::query(FENCE_RUN)
                .bind(run_id)
                .bind(reason)
                .bind(to_text(now))
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(updated > 0)
    }

    /// [`Store::finish_run_at`] at the wall clock's now (a record of when, not a
    /// scheduling decision), for `import-file`.
    pub async fn finish_run(
        &self,
        run_id: i64,
        outcome: &RunOutcome,
        summary: Option<&Summary>,
    ) -> Result<bool, StoreError> {
        self.finish_run_at(run_id, outcome, summary, Timestamp::now())
            .await
    }

    /// Ends run `run_id` at `now` and stores its summary (when there is one) in the
    /// same transaction, so a finished run never lacks the report it had. Only a run
    /// still `IN_PROGRESS` is finished: returns `false`, changing nothing, when it was
    /// not (reaped as lost, or already finished), so a fenced run stays failed.
    pub async fn finish_run_at(
        &self,
        run_id: i64,
        outcome: &RunOutcome,
        summary: Option<&Summary>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.finish_run_reported_at(run_id, outcome, summary, None, now)
            .await
    }

    /// [`Store::finish_run_at`], storing the report's PDF too (with a summary) in the
    /// same transaction: a client that sees the run ended can download its report at
    /// once. (Stored after the run ended, a PDF could be asked for a moment before it
    /// was there.)
    pub async fn finish_run_reported_at(
        &self,
        run_id: i64,
        outcome: &RunOutcome,
        summary: Option<&Summary>,
        pdf: Option<&[u8]>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let json = summary
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let file = summary.and_then(|s| s.file.as_ref());
        // The same statements in either backend's transaction; only the end's
        // encoding and the summary's insert differ.
        macro_rules! finish_in {
            ($tx:ident, $ended_at:expr, $save_report:expr) => {{
                if end_run!($tx, run_id, outcome, file, $ended_at) == 0 {
                    return Ok(false);
                }
                if let Some(json) = json {
                    sqlx::query($save_report)
                        .bind(run_id)
                        .bind(json)
                        .bind(pdf)
                        .execute(&mut *$tx)
                        .await?;
                }
                $tx.commit().await?;
            }};
        }
        match self {
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                finish_in!(tx, to_pg(now), SAVE_REPORT_PG);
            }
            Self::Sqlite(pool) => {
                let mut tx = pool.begin_with("begin immediate").await?;
                finish_in!(tx, to_text(now), SAVE_REPORT_SQLITE);
            }
        }
        Ok(true)
    }

    /// [`Store::finish_run_reported_at`] with the PDF still being rendered: on
    /// PostgreSQL the summary is encoded and written while `pdf` renders, in the
    /// transaction that then stores the PDF (when it comes: `None` ends the run with
    /// its summary alone) and ends the run. Nothing of it is seen before that commit,
    /// and a run that was not `IN_PROGRESS` any more is left as it was (`false`).
    /// SQLite, whose write lock would stop every other writer while the PDF renders,
    /// waits for the PDF first.
    pub async fn finish_run_rendering(
        &self,
        run_id: i64,
        outcome: &RunOutcome,
        summary: &Summary,
        pdf: impl Future<Output = Option<Vec<u8>>> + Send,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let pool = match self {
            Self::Postgres(pool) => pool,
            Self::Sqlite(_) => {
                let pdf = pdf.await;
                return self
                    .finish_run_reported_at(run_id, outcome, Some(summary), pdf.as_deref(), now)
                    .await;
            }
        };
        let mut tx = pool.begin().await?;
        // `pdf` first: a renderer that starts when polled starts now.
        let (pdf, saved) = tokio::join!(pdf, async {
            let json =
                serde_json::to_string(summary).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            sqlx::query(SAVE_REPORT_PG)
                .bind(run_id)
                .bind(json)
                .bind(None::<&[u8]>)
                .execute(&mut *tx)
                .await?;
            Ok::<_, StoreError>(())
        });
        saved?;
        if end_run!(tx, run_id, outcome, summary.file.as_ref(), to_pg(now)) == 0 {
            // Rolled back with the summary: the run had ended elsewhere.
            return Ok(false);
        }
        if let Some(pdf) = pdf {
            sqlx::query(SAVE_PDF)
                .bind(run_id)
                .bind(pdf)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
