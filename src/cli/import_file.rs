//! `alis-import import-file PATH`: import a local file straight into the database.

use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use sha2::{Digest, Sha256};

use super::DatabaseArgs;
use crate::import::summary::{FileInfo, Summary};
use crate::import::{ImportRequest, ImportSettings, run_import};
use crate::report::{ReportHeader, render_pdf};
use crate::store::{NewRun, RunOutcome, RunStatus};

/// Exit status of a refused import (nothing changed).
const EXIT_REJECTED: u8 = 2;

/// Arguments of `import-file`.
#[derive(Debug, Args)]
pub struct ImportFileArgs {
    /// The ALiS file to import.
    path: PathBuf,

    #[command(flatten)]
    database: DatabaseArgs,

    /// Compute and report everything, write nothing.
    #[arg(long)]
    dry_run: bool,

    /// Pass the mass-deletion guard.
    #[arg(long)]
    force: bool,

    /// The date the report is computed as of, `YYYY-MM-DD` (default: today in
    /// `--time-zone`).
    #[arg(long)]
    as_of: Option<jiff::civil::Date>,

    /// The district's time zone (IANA name).
    #[arg(long, env = "ALIS_TIME_ZONE", default_value = "America/New_York")]
    time_zone: String,

    /// Print the structured summary as JSON on stdout.
    #[arg(long)]
    json: bool,

    /// Recorded as the run's "run by".
    #[arg(long, default_value = "local")]
    run_by: String,

    /// Also write the PDF report to this file.
    #[arg(long)]
    pdf: Option<PathBuf>,

    /// The district's name on the PDF report.
    #[arg(
        long,
        env = "ALIS_DISTRICT_NAME",
        default_value = "Sample Supervisory Union"
    )]
    district_name: String,

    /// Mass-deletion guard threshold in percent; 0 turns it off.
    #[arg(long, env = "ALIS_GUARD_MAX_DROP_PERCENT", default_value_t = 20)]
    guard_max_drop_percent: u32,
}

impl ImportFileArgs {
    /// Imports the file. Exit status: 0 when applied or a dry run, 2 when refused
    /// (nothing changed), 1 on failure (nothing changed either).
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        let zone = jiff::tz::TimeZone::get(&self.time_zone)
            .with_context(|| format!("unknown time zone {:?}", self.time_zone))?;
        let started_at = jiff::Timestamp::now();
        let run_date = match self.as_of {
            Some(date) => date,
            None => started_at.to_zoned_datetime(zone.clone()).date(),
        };
        let file = file_info(&self.path)?;
        let input = std::fs::File::open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        let store = self.database.open().await?;
        let settings = ImportSettings {
            guard_max_drop_percent: self.guard_max_drop_percent,
            ..ImportSettings::default()
        };
        let run_id = store
            .start_run(&NewRun {
                task_id: None,
                run_by: self.run_by.clone(),
                dry_run: self.dry_run,
                force: self.force,
            })
            .await?;
        let request = ImportRequest {
            run_id,
            run_date,
            dry_run: self.dry_run,
            force: self.force,
            file,
        };
        let outcome = run_import(
            &store,
            input,
            &request,
            &settings,
            &|_: crate::import::Phase| {},
        )
        .await;
        let summary = match outcome {
            Ok(summary) => summary,
            Err(error) => {
                let failed = RunOutcome {
                    status: RunStatus::Failed,
                    error: Some(error.to_string()),
                };
                // Already ended (failed by another process as lost) is as good as
                // failed here.
                let _ended_here = store.finish_run(run_id, &failed, None).await?;
                return Err(
                    anyhow::Error::new(error).context(format!("import run {run_id} failed"))
                );
            }
        };
        let outcome = match &summary.rejected {
            Some(reason) => RunOutcome {
                status: RunStatus::Failed,
                error: Some(reason.clone()),
            },
            None => RunOutcome {
                status: RunStatus::Succeeded,
                error: None,
            },
        };
        // The report is rendered once and kept with the run, like the service does.
        let header = ReportHeader {
            district: self.district_name.clone(),
            task_description: None,
            run_id,
            run_by: self.run_by.clone(),
            started_at,
            ended_at: Some(jiff::Timestamp::now()),
            time_zone: zone,
        };
        // On the blocking pool, as the report module asks of async callers (and on
        // an idle blocking thread, most often the one that parsed, whose freed memory
        // the layout then reuses).
        let span = tracing::Span::current();
        let (pdf, summary) = tokio::task::spawn_blocking(move || {
            let pdf = span.in_scope(|| render_pdf(&header, &summary));
            (pdf, summary)
        })
        .await
        .context("rendering the PDF report")?;
        let pdf = pdf.context("rendering the PDF report")?;
        let finished = store
            .finish_run_reported_at(
                run_id,
                &outcome,
                Some(&summary),
                Some(&pdf),
                jiff::Timestamp::now(),
            )
            .await?;
        store.close().await;
        if !finished {
            anyhow::bail!(
                "import run {run_id} was ended by another process before it finished \
                 (its heartbeat had stopped); see the run's error"
            );
        }

        if let Some(path) = &self.pdf {
            std::fs::write(path, &pdf)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            print!("{}", human_summary(run_id, &summary));
        }
        Ok(if summary.is_rejected() {
            ExitCode::from(EXIT_REJECTED)
        } else {
            ExitCode::SUCCESS
        })
    }
}

/// Name and SHA-256 of a local file.
fn file_info(path: &std::path::Path) -> anyhow::Result<FileInfo> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = file
            .read(&mut buffer)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(FileInfo {
        name,
        sha256: hex::encode(hasher.finalize()),
        from_cache: false,
    })
}

/// A short summary for a person at a terminal.
fn human_summary(run_id: i64, summary: &Summary) -> String {
    let mut out = String::new();
    let mode = if summary.dry_run {
        " (DRY RUN: nothing written)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "ALiS import run {run_id} as of {}{mode}",
        summary.run_date
    );
    if let Some(file) = &summary.file {
        let _ = writeln!(
            out,
            "  file:                    {} (sha256 {})",
            file.name, file.sha256
        );
    }
    if let Some(reason) = &summary.rejected {
        let _ = writeln!(out, "  REJECTED, nothing changed: {reason}");
    }
    let lines = [
        ("data rows read", summary.data_rows),
        ("invalid rows", summary.invalid_rows.len() as u64),
        ("educators not employed", summary.educators_not_employed),
        ("records deleted", summary.deleted.total),
        ("records imported", summary.imported.total),
        (
            "missing certification",
            summary.missing_certification.len() as u64,
        ),
        (
            "expired certifications",
            summary.expired_certifications.len() as u64,
        ),
        ("skipped employees", summary.skipped.len() as u64),
        ("expiring soon", summary.expiring_soon.len() as u64),
    ];
    for (label, value) in lines {
        let _ = writeln!(out, "  {:<24} {value}", format!("{label}:"));
    }
    for note in &summary.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    out
}
