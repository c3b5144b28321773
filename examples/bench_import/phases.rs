//! Where an import's time goes: one in-process [`run_import`] with a progress callback
//! that stamps each phase, for the analysis (not a comparison).

use std::sync::Mutex;
use std::time::Instant;

use alis_import::import::summary::FileInfo;
use alis_import::import::{ImportRequest, ImportSettings, Phase, run_import};
use alis_import::store::{NewRun, RunOutcome, RunStatus, Store};

use crate::bench_support::data;
use crate::bench_support::data::StatewideFile;
use crate::bench_support::results::Section;

/// Imports `file` once in this process and adds each phase's seconds to `section`.
pub async fn breakdown(section: &mut Section, url: &str, file: &StatewideFile) {
    let store = Store::connect(url).await.expect("connect");
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
    let stamps = Mutex::new(Vec::new());
    let progress = |phase: Phase| stamps.lock().expect("stamps").push((phase, Instant::now()));
    let input = std::fs::File::open(&file.path).expect("open the statewide file");
    let started = Instant::now();
    let summary = run_import(
        &store,
        input,
        &request,
        &ImportSettings::default(),
        &progress,
    )
    .await
    .expect("import");
    let ended = Instant::now();
    assert!(
        summary.rejected.is_none(),
        "refused: {:?}",
        summary.rejected
    );
    let succeeded = RunOutcome {
        status: RunStatus::Succeeded,
        error: None,
    };
    store
        .finish_run(run_id, &succeeded, Some(&summary))
        .await
        .expect("finish the run");
    store.close().await;

    let stamps = stamps.into_inner().expect("stamps");
    let mut line = Vec::new();
    for (i, (phase, at)) in stamps.iter().enumerate() {
        let until = stamps.get(i + 1).map_or(ended, |(_, next)| *next);
        let secs = (until - *at).as_secs_f64();
        line.push(format!("{phase:?} {secs:.2} s"));
        section.fact(format!("in-process import phase: {phase:?}"), secs, "s");
    }
    let total = (ended - started).as_secs_f64();
    section.fact("in-process import (run_import) total", total, "s");
    eprintln!("  phases: {} (total {total:.2} s)", line.join(", "));
}
