//! Benchmark 4: the certification lock's RPCs under load, on a server of their own
//! whose district is large enough that an import holds the lock for seconds.
//!
//! 1. Rounds of 64 clients calling `Health/Check`, then the same clients calling
//!    `AcquireCertLock` + `ReleaseCertLock` (order alternating), same duration each:
//!    the throughput ratio and each side's p50/p99.
//! 2. The same lock load while an import runs: the clients start when the run reaches
//!    `WAITING_FOR_EDITS` (the lock is pending: from then on every lease is refused)
//!    and stop when it reaches `REPORTING` (the replace has committed and freed the
//!    lock), so every call meets the lock pending or held; p99 of those refusals.

use std::time::Duration;

use alis_import::api::proto::cert_import_service_client::CertImportServiceClient;
use alis_import::api::proto::{GetRunRequest, RunPhase, RunStatus};
use tokio::sync::oneshot;

use crate::bench_support::results::{Comparison, Section};
use crate::bench_support::stats::Series;
use crate::load::{self, Outcome, Rpc};
use crate::run_now::{create_task, start_watched};
use crate::server::Server;

/// Concurrent clients.
pub const CLIENTS: usize = 64;

/// Runs benchmark 4 against `server`, whose inbox holds a file that imports `records`
/// certification and endorsement rows.
pub async fn run(
    section: &mut Section,
    server: &Server,
    duration: Duration,
    rounds: usize,
    records: &str,
) {
    let mut channels = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        channels.push(server.channel().await);
    }
    eprintln!(
        "load: {CLIENTS} clients, {} s per phase, {rounds} rounds…",
        duration.as_secs()
    );
    let (mut health, mut lock) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [Rpc::Health, Rpc::Lock]
        } else {
            [Rpc::Lock, Rpc::Health]
        };
        for rpc in order {
            let outcome = load::drive(&channels, rpc, duration, std::future::pending()).await;
            let (p50, p99) = outcome.ok_p50_p99_ms();
            eprintln!(
                "  round {}: {rpc:?} {:.0} calls/s, p50 {p50:.2} ms, p99 {p99:.2} ms, \
                 {} refused, {} errors",
                round + 1,
                outcome.throughput(),
                outcome.refused_us.len(),
                outcome.errors
            );
            assert_eq!(outcome.errors, 0, "{rpc:?} calls failed");
            assert!(
                outcome.refused_us.is_empty(),
                "no import runs: nothing is refused"
            );
            match rpc {
                Rpc::Health => health.push(outcome),
                Rpc::Lock => lock.push(outcome),
            }
        }
    }
    let throughput = |v: &[Outcome]| v.iter().map(Outcome::throughput).collect::<Vec<_>>();
    let comparison = Comparison::new(
        format!(
            "{CLIENTS} clients, one connection each, {} s per round",
            duration.as_secs()
        ),
        "calls/s",
        ("AcquireCertLock + ReleaseCertLock", throughput(&lock)),
        ("grpc.health.v1.Health/Check", throughput(&health)),
    );
    section.check(
        "lock RPCs ≥ 0.5× the health check's throughput (median of per-round ratios)",
        comparison.ratio.median,
        0.5,
        false,
    );
    section.comparisons.push(comparison);
    let median = |v: Vec<f64>| Series::of(v).median;
    for (name, outcomes) in [("Health/Check", &health), ("lock RPCs", &lock)] {
        let p50 = median(outcomes.iter().map(|o| o.ok_p50_p99_ms().0).collect());
        let p99 = median(outcomes.iter().map(|o| o.ok_p50_p99_ms().1).collect());
        section.fact(format!("{name}: p50 latency (median of rounds)"), p50, "ms");
        section.fact(format!("{name}: p99 latency (median of rounds)"), p99, "ms");
        if name == "lock RPCs" {
            section.check("lock RPCs: p99 ≤ 10 ms", p99, 10.0, true);
        }
    }

    let during = while_importing(server, &channels).await;
    let (p50, p99) = during.refused_p50_p99_ms();
    eprintln!(
        "  during the import: {} refused ({:?}) in {:.1} s, p50 {p50:.2} ms, p99 {p99:.2} ms; \
         {} granted, {} errors",
        during.refused_us.len(),
        during.refused_by_state,
        during.secs,
        during.ok_us.len(),
        during.errors
    );
    assert!(!during.refused_us.is_empty(), "the import refused no lease");
    section.fact(
        format!("during an import ({records}): refusals"),
        during.refused_us.len() as f64,
        "calls",
    );
    for (state, n) in &during.refused_by_state {
        section.fact(
            format!("during the import: refused with the lock {state}"),
            *n as f64,
            "calls",
        );
    }
    section.fact(
        "during the import: refusals per second",
        during.throughput(),
        "calls/s",
    );
    section.fact("during the import: refusal p50 latency", p50, "ms");
    section.fact("during the import: refusal p99 latency", p99, "ms");
    section.fact(
        "during the import: calls granted (the lock freed, `REPORTING` not yet seen)",
        during.ok_us.len() as f64,
        "calls",
    );
    section.check(
        "refusals while an import runs: p99 ≤ 10 ms",
        p99,
        10.0,
        true,
    );
    section.note(format!(
        "The load generator runs on the same two cores as the server (and, during the \
         import, PostgreSQL): both sides of each ratio pay for it alike. Leases ask for a \
         {} s TTL and are released at once.",
        load::LEASE_TTL.as_secs()
    ));
    section.note(format!(
        "The import window: the clients start when WatchRun reports WAITING_FOR_EDITS \
         (the lock is PENDING) and stop when it reports REPORTING (the replace has \
         committed and freed the lock); the import replaces \
         {records}."
    ));
}

/// Starts an import and runs the lock load while it wants or holds the lock.
async fn while_importing(server: &Server, channels: &[tonic::transport::Channel]) -> Outcome {
    let mut client = CertImportServiceClient::new(server.channel().await);
    let task_id = create_task(&mut client).await;
    let (run_id, mut updates) = start_watched(&mut client, task_id).await;
    loop {
        let update = updates
            .message()
            .await
            .expect("WatchRun stream")
            .expect("the run ended before it waited for the lock");
        let phase = update.run.map_or(0, |r| r.phase);
        if phase >= RunPhase::WaitingForEdits as i32 {
            break;
        }
    }
    // The lock is freed as the replace commits, and the run then reports: stop there.
    let (ended_tx, ended_rx) = oneshot::channel();
    let follow = tokio::spawn(async move {
        while let Ok(Some(update)) = updates.message().await {
            if update.run.map_or(0, |r| r.phase) >= RunPhase::Reporting as i32 {
                break;
            }
        }
        let _ = ended_tx.send(());
    });
    let stop = async {
        let _ = ended_rx.await;
    };
    let outcome = load::drive(channels, Rpc::Lock, Duration::from_secs(300), stop).await;
    follow.await.expect("WatchRun follower");
    wait_until_succeeded(&mut client, run_id).await;
    outcome
}

/// Waits (bounded) for run `run_id` to end, and panics unless it succeeded: a window
/// measured against a failed import would measure nothing.
async fn wait_until_succeeded(
    client: &mut CertImportServiceClient<tonic::transport::Channel>,
    run_id: i64,
) {
    for _ in 0..600 {
        let run = client
            .get_run(GetRunRequest { run_id })
            .await
            .expect("GetRun")
            .into_inner()
            .run
            .expect("run");
        if run.status != RunStatus::InProgress as i32 {
            assert_eq!(
                run.status,
                RunStatus::Succeeded as i32,
                "the import under load failed: {}",
                run.error
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the import under load did not end within a minute of its replace");
}
