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
//! blocking pool, in their span, with [`render_pdf_in_background`]:
//!
//! ```no_run
//! # async fn example(header: alis_import::report::ReportHeader, summary: std::sync::Arc<alis_import::import::summary::Summary>) -> anyhow::Result<()> {
//! let pdf = alis_import::report::render_pdf_in_background(header, summary).await?;
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
    /// The blocking-pool thread rendering it stopped before it was done (it panicked).
    #[error("the report renderer stopped unexpectedly")]
    Stopped(#[source] tokio::task::JoinError),
}

/// Renders the Import Summary report of one run as a PDF.
///
/// CPU-bound and synchronous: async code calls [`render_pdf_in_background`] instead.
pub fn render_pdf(header: &ReportHeader, summary: &Summary) -> Result<Vec<u8>, ReportError> {
    let rendered = pdf::render(header, summary)?;
    tracing::debug!(
        pages = rendered.pages,
        bytes = rendered.bytes.len(),
        "rendered the report"
    );
    Ok(rendered.bytes)
}

/// [`render_pdf`] on the blocking pool, in the caller's span, for async callers. The
/// summary is shared, not copied: callers store it while the PDF renders.
pub async fn render_pdf_in_background(
    header: ReportHeader,
    summary: Arc<Summary>,
) -> Result<Vec<u8>, ReportError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(|| render_pdf(&header, &summary)))
        .await
        .map_err(ReportError::Stopped)?
}
