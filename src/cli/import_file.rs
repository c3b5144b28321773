//! `alis-import import-file PATH`: import a local file straight into the database.

use std::fmt::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::DatabaseArgs;
use crate::import::summary::{FileInfo, Summary};
use crate::import::{ImportRequest, ImportSettings, Phase, Progress, run_import};
use crate::report::{ReportHeader, render_pdf_in_background};
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
        let input = std::fs::File::open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        // The SHA-256 is computed alongside the parse, from a second handle to the
        // same open file (so of the very bytes parsed, even if the path is replaced
        // meanwhile). Nothing is written before it is known (`ready_to_write`).
        let hashed = {
            let file = input
                .try_clone()
                .with_context(|| format!("cannot open {}", self.path.display()))?;
            let path = self.path.clone();
            let (tell, hashed) = watch::channel(None);
            tokio::task::spawn_blocking(move || {
                let info = file_info(&path, &file).map_err(|e| format!("{e:#}"));
                let _ = tell.send(Some(info));
            });
            HashedFile(hashed)
        };
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
            // The summary gets the SHA-256 below, once the hashing thread has it.
            file: FileInfo {
                name: file_name(&self.path),
                sha256: String::new(),
                from_cache: false,
            },
        };
        let outcome = run_import(&store, input, &request, &settings, &hashed).await;
        let summary = match (outcome, hashed.get().await) {
            (Ok(summary), Ok(file)) => Summary {
                file: Some(file),
                ..summary
            },
            // Only a run that wrote nothing gets here (writing waits for the hash).
            (Ok(_), Err(error)) => {
                let failed = RunOutcome {
                    status: RunStatus::Failed,
                    error: Some(error.clone()),
                };
                let _ended_here = store.finish_run(run_id, &failed, None).await?;
                anyhow::bail!("import run {run_id} failed: {error}; nothing was written");
            }
            (Err(error), _) => {
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
        // The PDF renders on the blocking pool (as the report module asks of async
        // callers) while the summary is written, in the transaction that then stores
        // the PDF and ends the run.
        let summary = Arc::new(summary);
        // What became of the PDF, and a copy of it when `--pdf` asks for one.
        let (mut failed, mut copy) = (None, None);
        let pdf = {
            let (failed, copy, wanted) = (&mut failed, &mut copy, self.pdf.is_some());
            let rendering = render_pdf_in_background(header, Arc::clone(&summary));
            async move {
                match rendering.await.map_err(anyhow::Error::new) {
                    Ok(pdf) => {
                        *copy = wanted.then(|| pdf.clone());
                        Some(pdf)
                    }
                    Err(error) => {
                        *failed = Some(error);
                        None
                    }
                }
            }
        };
        let finished = store
            .finish_run_rendering(run_id, &outcome, &summary, pdf, jiff::Timestamp::now())
            .await?;
        store.close().await;
        if !finished {
            anyhow::bail!(
                "import run {run_id} was ended by another process before it finished \
                 (its heartbeat had stopped); see the run's error"
            );
        }
        if let Some(error) = failed {
            return Err(error.context(format!(
                "import run {run_id} ended with its summary stored, but its PDF report \
                 could not be rendered"
            )));
        }

        if let (Some(path), Some(pdf)) = (&self.pdf, &copy) {
            std::fs::write(path, pdf)
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

/// The file's SHA-256 as the hashing thread reports it, for the import to wait for
/// before it writes.
struct HashedFile(watch::Receiver<Option<Result<FileInfo, String>>>);

impl HashedFile {
    async fn get(&self) -> Result<FileInfo, String> {
        let mut hashed = self.0.clone();
        match hashed.wait_for(Option::is_some).await {
            Ok(info) => info.clone().unwrap_or_else(|| Err("not hashed".into())),
            Err(_) => {
                Err("the file's SHA-256 could not be computed (the hashing thread stopped)".into())
            }
        }
    }
}

impl Progress for HashedFile {
    async fn enter(&self, _phase: Phase) {}

    async fn ready_to_write(&self) -> Result<(), String> {
        self.get().await.map(drop)
    }
}

/// The name a summary gives the file at `path`.
fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Name and SHA-256 of the local file at `path`, open as `file`. Reads by position,
/// so it shares `file`'s descriptor without moving the parser's offset.
fn file_info(path: &std::path::Path, file: &std::fs::File) -> anyhow::Result<FileInfo> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 256 * 1024];
    let mut offset = 0;
    loop {
        let read = match file.read_at(&mut buffer, offset) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        hasher.update(buffer.get(..read).unwrap_or_default());
        offset += read as u64;
    }
    Ok(FileInfo {
        name: file_name(path),
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
