//! Where an import's time and memory go: one [`run_import`] with a progress callback
//! that stamps each phase with the time and the process's RSS, then the PDF report as
//! `import-file` renders it. For the analysis, not a comparison.
//!
//! It runs in a child process (this program with `--phases URL FILE`), so that its
//! memory is its own and the figures are those of a fresh process, as the CLI's are.

use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use alis_import::import::summary::FileInfo;
use alis_import::import::{ImportRequest, ImportSettings, Phase, run_import};
use alis_import::report::{ReportHeader, render_pdf};
use alis_import::store::{NewRun, RunOutcome, RunStatus, Store};
use serde::{Deserialize, Serialize};

use crate::bench_support::data::{self, StatewideFile};
use crate::bench_support::process::{self, rss_mb};
use crate::bench_support::results::Section;

/// One step: how long it took, and the RSS as it ended.
#[derive(Debug, Serialize, Deserialize)]
struct Step {
    name: String,
    secs: f64,
    rss_mb: f64,
    peak_rss_mb: f64,
}

/// Imports `file` into `url` in a child process, stamping each phase.
fn steps(url: &str, file: &StatewideFile) -> Vec<Step> {
    let mut command = Command::new(std::env::current_exe().expect("own path"));
    command.arg("--phases").arg(url).arg(&file.path);
    let finished = process::run(command, &[0]);
    serde_json::from_str(&finished.stdout).expect("the breakdown prints its steps")
}

/// Seconds [`run_import`] took in a child process: the import as issue 8 lists it
/// (parse, match, guard, the one-transaction replace, summary), without the process,
/// the connection, the run's bookkeeping and the PDF report around it.
pub fn import_secs(url: &str, file: &StatewideFile) -> f64 {
    steps(url, file)
        .iter()
        .take_while(|step| step.name != "PdfReport")
        .map(|step| step.secs)
        .sum()
}

/// Runs the breakdown in a child process and adds its steps to `section`.
pub fn breakdown(section: &mut Section, url: &str, file: &StatewideFile) {
    let steps = steps(url, file);
    let mut line = Vec::new();
    for step in &steps {
        line.push(format!(
            "{} {:.2} s ({:.0} MB)",
            step.name, step.secs, step.rss_mb
        ));
        section.fact(
            format!("in-process import, {}: time", step.name),
            step.secs,
            "s",
        );
        section.fact(
            format!("in-process import, {}: RSS at its end", step.name),
            step.rss_mb,
            "MB",
        );
        section.fact(
            format!("in-process import, {}: peak RSS so far", step.name),
            step.peak_rss_mb,
            "MB",
        );
    }
    eprintln!("  phases: {}", line.join(", "));
}

/// The child's side: imports `file` into `url` once and prints the steps as JSON.
pub fn run_child(url: &str, file: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let steps = runtime.block_on(import_once(url, file));
    println!("{}", serde_json::to_string(&steps).expect("serialise"));
}

async fn import_once(url: &str, path: &str) -> Vec<Step> {
    let own = std::process::id();
    let store = Store::connect(url).await.expect("connect");
    store.migrate(true).await.expect("migrate");
    let run_id = store
        .start_run(&NewRun {
            task_id: None,
            run_by: "bench".into(),
            dry_run: false,
            force: false,
        })
        .await
        .expect("start a run");
    let request = ImportRequest {
        run_id,
        run_date: data::as_of(),
        dry_run: false,
        force: false,
        file: FileInfo {
            name: "bench.csv".into(),
            sha256: "0".repeat(64),
            from_cache: false,
        },
    };
    let stamp = |name: String| (name, Instant::now(), rss_mb(own), process::peak_rss_mb(own));
    let stamps = Mutex::new(vec![stamp("Connecting".into())]);
    let progress = |phase: Phase| {
        stamps
            .lock()
            .expect("stamps")
            .push(stamp(format!("{phase:?}")));
    };
    let input = std::fs::File::open(path).expect("open the statewide file");
    let summary = run_import(
        &store,
        input,
        &request,
        &ImportSettings::default(),
        &progress,
    )
    .await
    .expect("import");
    assert!(
        summary.rejected.is_none(),
        "refused: {:?}",
        summary.rejected
    );
    let mut stamps = stamps.into_inner().expect("stamps");
    // Then the report, as import-file renders it.
    stamps.push(stamp("PdfReport".into()));
    let header = ReportHeader {
        district: "Benchmark".into(),
        task_description: None,
        run_id,
        run_by: "bench".into(),
        started_at: jiff::Timestamp::now(),
        ended_at: Some(jiff::Timestamp::now()),
        time_zone: jiff::tz::TimeZone::UTC,
    };
    let pdf = render_pdf(&header, &summary).expect("render the report");
    stamps.push(stamp("End".into()));
    drop(pdf);
    let succeeded = RunOutcome {
        status: RunStatus::Succeeded,
        error: None,
    };
    store
        .finish_run(run_id, &succeeded, Some(&summary))
        .await
        .expect("finish the run");
    store.close().await;
    stamps
        .windows(2)
        .map(|pair| Step {
            name: pair[0].0.clone(),
            secs: (pair[1].1 - pair[0].1).as_secs_f64(),
            rss_mb: pair[1].2,
            peak_rss_mb: pair[1].3,
        })
        .collect()
}
