//! The normal case end to end: a statewide file of 50,000 rows and a district of
//! 2,000 employees, imported by a release server through RunNow (fetch from the
//! inbox, file cache, parse, match, guard, replace, summary, PDF, run recorded),
//! against `psql` loading the same rows after the same delete.

use std::time::Instant;

use alis_import::api::proto::cert_import_service_client::CertImportServiceClient;
use alis_import::api::proto::{
    GetRunRequest, RunNowRequest, RunStatus, ScheduleTaskRequest, WatchRunRequest,
    WatchRunResponse, Weekday,
};
use tonic::transport::Channel;

use crate::bench_support::process;
use crate::bench_support::psql::Psql;
use crate::bench_support::results::{Comparison, Section, thousands};
use crate::server::Server;

/// Creates an inactive task for RunNow; returns its id.
pub async fn create_task(client: &mut CertImportServiceClient<Channel>) -> i64 {
    let reply = client
        .schedule_task(ScheduleTaskRequest {
            description: "benchmark".into(),
            active: false,
            start_date: "2026-01-05".into(),
            start_time: "02:00".into(),
            weekdays: vec![Weekday::Monday as i32],
            time_zone: "America/New_York".into(),
            ..ScheduleTaskRequest::default()
        })
        .await
        .expect("ScheduleTask");
    reply.into_inner().task.expect("task").id
}

/// Starts a run of task `task_id` with RunNow and follows it with WatchRun: the run's
/// id and its stream of updates.
pub async fn start_watched(
    client: &mut CertImportServiceClient<Channel>,
    task_id: i64,
) -> (i64, tonic::Streaming<WatchRunResponse>) {
    let run = client
        .run_now(RunNowRequest {
            task_id,
            ..RunNowRequest::default()
        })
        .await
        .expect("RunNow")
        .into_inner()
        .run
        .expect("run");
    let updates = client
        .watch_run(WatchRunRequest { run_id: run.id })
        .await
        .expect("WatchRun")
        .into_inner();
    (run.id, updates)
}

/// RunNow, then WatchRun to the end. Returns the seconds from the call to the end as
/// the client sees it (WatchRun looks every 200 ms), and from the run's actual start to
/// its end as the service recorded them.
pub async fn run_now(client: &mut CertImportServiceClient<Channel>, task_id: i64) -> (f64, f64) {
    let started = Instant::now();
    let (run_id, mut updates) = start_watched(client, task_id).await;
    while updates.message().await.expect("WatchRun stream").is_some() {}
    let secs = started.elapsed().as_secs_f64();
    let ended = client
        .get_run(GetRunRequest { run_id })
        .await
        .expect("GetRun")
        .into_inner()
        .run
        .expect("run");
    assert_eq!(
        ended.status,
        RunStatus::Succeeded as i32,
        "run {} did not succeed: {}",
        run_id,
        ended.error
    );
    let seconds = |t: Option<prost_types::Timestamp>| {
        let t = t.expect("the run's start and end");
        t.seconds as f64 + f64::from(t.nanos) / 1e9
    };
    (secs, seconds(ended.end) - seconds(ended.actual_start))
}

/// Runs the RunNow comparison on `server` (whose inbox holds the file of `rows`).
pub async fn compare(
    section: &mut Section,
    server: &Server,
    psql: &Psql,
    work: &std::path::Path,
    (rows, employees): (u64, usize),
    rounds: usize,
) {
    let mut client = CertImportServiceClient::new(server.channel().await);
    let task_id = create_task(&mut client).await;
    // Warm-up: fills the file cache, and yields the rows for the reference.
    let (warm_up, _) = run_now(&mut client, task_id).await;
    eprintln!("  warm-up RunNow: {warm_up:.2} s");
    let certifications = psql.count("certifications");
    let endorsements = psql.count("endorsements");
    let script = psql.export_reference(work, "runnow");

    let (mut ours, mut recorded) = (Vec::new(), Vec::new());
    let (mut reference, mut peaks) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for side in [round % 2, 1 - round % 2] {
            psql.maintain();
            if side == 0 {
                process::reset_peak_rss(server.pid());
                let (seen, run) = run_now(&mut client, task_id).await;
                ours.push(seen);
                recorded.push(run);
                peaks.push(process::peak_rss_mb(server.pid()));
            } else {
                reference.push(psql.load(&script).secs());
            }
        }
        eprintln!(
            "  round {}: RunNow {:.3} s (the run itself {:.3} s; server peak RSS {:.0} MB), \
             psql {:.3} s",
            round + 1,
            ours[round],
            recorded[round],
            peaks[round],
            reference[round]
        );
    }
    assert_eq!(psql.count("certifications"), certifications);
    assert_eq!(psql.count("endorsements"), endorsements);

    let comparison = Comparison::new(
        format!(
            "RunNow, {} rows, {} employees → {} certifications + {} endorsements",
            thousands(rows),
            thousands(employees as u64),
            thousands(certifications),
            thousands(endorsements)
        ),
        "s",
        ("RunNow → run ended (gRPC, release server)", ours),
        ("psql -1: delete + \\copy ×2", reference.clone()),
    );
    let run_itself = Comparison::new(
        "the same runs, from their actual start to their end as the service recorded them",
        "s",
        (
            "the run: fetch, cache, import, report, bookkeeping",
            recorded,
        ),
        ("psql -1: delete + \\copy ×2", reference),
    );
    section.fact(
        "RunNow: file rows per second, call to end (median)",
        rows as f64 / comparison.ours.median,
        "rows/s",
    );
    section.fact(
        "RunNow: server peak RSS during a run (max)",
        peaks.iter().copied().fold(0.0, f64::max),
        "MB",
    );
    section.comparisons.push(comparison);
    section.comparisons.push(run_itself);
    section.note(
        "RunNow has no target in the issue; its ratio to \\copy shows the fixed costs \
         (fetch and file cache, run bookkeeping, report PDF) at a normal district's size. \
         WatchRun looks at the run every 200 ms (it may run on another replica), so the \
         call-to-end time moves in steps of that poll; the run's own recorded start and end \
         do not.",
    );
}
