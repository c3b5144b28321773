//! The Import Summary as a PDF for HR (rules §4, issue 6).
//!
//! [`render_pdf`] turns a run's [`Summary`] plus the run facts the summary does not carry
//! ([`ReportHeader`]) into the bytes of a PDF: a first section "Import Summary" with the
//! run, the file and the counts, then one table per list (skipped employees, missing
//! certification, expired certifications, missing dates, invalid rows, expiring soon).
//! Tables repeat their header row on every page and every page says "Page N of M".
//!
//! The text is set in Liberation Sans, embedded in the binary, so the output is the same
//! on every machine and names with accents (Søren, Łucja, Nguyễn) print as written. See
//! `docs/report.md` for what the report shows and why it is laid out as it is.
//!
//! # Blocking
//!
//! Rendering is CPU-bound (a 5,000-row report takes tens of milliseconds in release
//! builds, much longer in debug builds) and never awaits. Async callers run it on the
//! blocking pool and keep their span:
//!
//! ```no_run
//! # async fn example(header: alis_import::report::ReportHeader, summary: alis_import::import::summary::Summary) -> anyhow::Result<()> {
//! let span = tracing::Span::current();
//! let pdf = tokio::task::spawn_blocking(move || {
//!     span.in_scope(|| alis_import::report::render_pdf(&header, &summary))
//! })
//! .await??;
//! # let _ = pdf; Ok(()) }
//! ```

mod fonts;
mod layout;
mod lists;
mod pdf;
mod style;
mod text;

use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::sync::oneshot;

use crate::import::summary::Summary;

/// The facts about a run that the report shows and the [`Summary`] does not carry.
#[derive(Debug, Clone)]
pub struct ReportHeader {
    /// Who the report is for, e.g. "Sample Supervisory Union".
    pub district: String,
    /// The task's description, when the run belongs to a scheduled task.
    pub task_description: Option<String>,
    /// The run's id, as listed in the task's run history.
    pub run_id: i64,
    /// Who started the run: a user name, or the scheduler.
    pub run_by: String,
    /// When the run started.
    pub started_at: Timestamp,
    /// When the run ended; `None` while it is still running.
    pub ended_at: Option<Timestamp>,
    /// The district's time zone: every time in the report is shown in it.
    pub time_zone: TimeZone,
}

/// Why a report could not be rendered. No cause depends on the summary's data: each
/// means the renderer itself is broken, so callers log the chain and report an
/// internal error.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The embedded font could not be read.
    #[error("the report's embedded font cannot be loaded")]
    Font(#[source] genpdf::error::Error),
    /// Laying out or writing the PDF failed.
    #[error("the report PDF cannot be rendered")]
    Render(#[source] genpdf::error::Error),
    /// The thread rendering the report stopped before it was done (it panicked).
    #[error("the report renderer stopped unexpectedly")]
    Stopped(#[source] Option<tokio::task::JoinError>),
}

/// Renders the Import Summary report of one run as a PDF.
///
/// CPU-bound and synchronous: call it from `spawn_blocking` in async code (see the module
/// documentation), or call [`render_pdf_in_background`].
pub fn render_pdf(header: &ReportHeader, summary: &Summary) -> Result<Vec<u8>, ReportError> {
    pdf::render(header, summary).map(logged)
}

/// [`render_pdf`] on the blocking pool, in the caller's span.
pub async fn render_pdf_in_background(
    header: ReportHeader,
    summary: Arc<Summary>,
) -> Result<Vec<u8>, ReportError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(|| render_pdf(&header, &summary)))
        .await
        .map_err(|stopped| ReportError::Stopped(Some(stopped)))?
}

/// A run's report rendered in two steps, so that most of the work is done while the
/// run replaces the records.
///
/// [`PdfDraft::start`] lays out the lists on the blocking pool as soon as the summary
/// is known but for the records the replace deletes ([`crate::import::Progress::summary_ahead`]);
/// [`PdfDraft::finish`] then draws the first page (the run's end, the records deleted)
/// and writes the PDF. The result is the PDF [`render_pdf`] makes of what `finish` is
/// given: a draft whose lists turn out not to be the final summary's, or whose first
/// section does not fit on the first page, is rendered anew.
///
/// genpdf's renderer is not `Send`, so the draft stays on the blocking-pool thread that
/// laid it out, waiting for `finish`; dropping the `PdfDraft` lets that thread go.
#[derive(Debug)]
pub struct PdfDraft {
    finish: oneshot::Sender<(ReportHeader, Arc<Summary>)>,
    rendered: tokio::task::JoinHandle<Option<Result<Vec<u8>, ReportError>>>,
}

impl PdfDraft {
    /// Starts laying out the report of `summary` (whose deleted records are not known
    /// yet) on the blocking pool, in the caller's span. Call it within a Tokio runtime.
    pub fn start(header: ReportHeader, summary: Arc<Summary>) -> Self {
        let (finish, finished) = oneshot::channel::<(ReportHeader, Arc<Summary>)>();
        let span = tracing::Span::current();
        let rendered = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let draft = pdf::Draft::lay_out(&header, &summary);
                drop(summary);
                let (header, summary) = finished.blocking_recv().ok()?;
                let rendered = match draft {
                    Ok(draft) => draft.finish(&header, &summary),
                    // Rendered anew, to fail the same way with the final summary.
                    Err(_) => pdf::render(&header, &summary),
                };
                Some(rendered.map(logged))
            })
        });
        Self { finish, rendered }
    }

    /// The report of the run as `header` and `summary` finally describe it.
    pub async fn finish(
        self,
        header: ReportHeader,
        summary: Arc<Summary>,
    ) -> Result<Vec<u8>, ReportError> {
        // Only a drafting thread that has stopped no longer waits for this: `rendered`
        // says why.
        let _ = self.finish.send((header, summary));
        match self.rendered.await {
            Ok(Some(rendered)) => rendered,
            Ok(None) => Err(ReportError::Stopped(None)),
            Err(stopped) => Err(ReportError::Stopped(Some(stopped))),
        }
    }
}

impl PdfDraft {
    /// The report of the run as `header` and `summary` finally describe it: `draft`
    /// finished, or the report rendered at once when the run drafted none (a dry run,
    /// a refused file, a failed run).
    pub async fn finish_or_render(
        draft: Option<Self>,
        header: ReportHeader,
        summary: Arc<Summary>,
    ) -> Result<Vec<u8>, ReportError> {
        match draft {
            Some(draft) => draft.finish(header, summary).await,
            None => render_pdf_in_background(header, summary).await,
        }
    }
}

fn logged(rendered: layout::Rendered) -> Vec<u8> {
    tracing::debug!(
        pages = rendered.pages,
        bytes = rendered.bytes.len(),
        "rendered the report"
    );
    rendered.bytes
}
