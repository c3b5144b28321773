//! Benchmark 4: many clients calling one RPC in a loop for a fixed time; throughput
//! and latency percentiles.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use alis_import::api::proto::cert_import_service_client::CertImportServiceClient;
use alis_import::api::proto::{AcquireCertLockRequest, ReleaseCertLockRequest};
use tonic_types::StatusExt as _;

use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::bench_support::stats::percentile;

/// What each client calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    /// `grpc.health.v1.Health/Check`.
    Health,
    /// `AcquireCertLock`, then `ReleaseCertLock` of the lease granted: what the edit
    /// service does around each write. Each call counts and is timed on its own.
    Lock,
}

/// The TTL the benchmark's leases ask for (each is released at once anyway).
pub const LEASE_TTL: Duration = Duration::from_secs(10);

/// What one load phase measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Seconds the clients ran.
    pub secs: f64,
    /// Latency of each successful call, µs.
    pub ok_us: Vec<u32>,
    /// Latency of each refusal (`FAILED_PRECONDITION`: an import runs), µs.
    pub refused_us: Vec<u32>,
    /// Refusals by the lock state they report (`PENDING`, `HELD`).
    pub refused_by_state: BTreeMap<String, u64>,
    /// Other failures.
    pub errors: u64,
}

impl Outcome {
    /// Calls per second that succeeded or were refused (both are answers).
    pub fn throughput(&self) -> f64 {
        (self.ok_us.len() + self.refused_us.len()) as f64 / self.secs
    }

    fn merge(&mut self, other: Outcome) {
        self.ok_us.extend(other.ok_us);
        self.refused_us.extend(other.refused_us);
        for (state, n) in other.refused_by_state {
            *self.refused_by_state.entry(state).or_default() += n;
        }
        self.errors += other.errors;
    }

    /// Sorts the latencies for percentiles.
    fn sort(&mut self) {
        self.ok_us.sort_unstable();
        self.refused_us.sort_unstable();
    }

    /// p50 and p99 of the successful calls, ms.
    pub fn ok_p50_p99_ms(&self) -> (f64, f64) {
        p50_p99(&self.ok_us)
    }

    /// p50 and p99 of the refusals, ms.
    pub fn refused_p50_p99_ms(&self) -> (f64, f64) {
        p50_p99(&self.refused_us)
    }
}

fn p50_p99(sorted: &[u32]) -> (f64, f64) {
    (
        f64::from(percentile(sorted, 50.0)) / 1000.0,
        f64::from(percentile(sorted, 99.0)) / 1000.0,
    )
}

/// Runs `clients` concurrent loops of `rpc`, one connection each, for `duration`,
/// or until `stop` resolves, whichever is first.
pub async fn drive(
    channels: &[Channel],
    rpc: Rpc,
    duration: Duration,
    stop: impl Future<Output = ()>,
) -> Outcome {
    let stop_flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = channels
        .iter()
        .enumerate()
        .map(|(i, channel)| {
            let stop = stop_flag.clone();
            tokio::spawn(client_loop(channel.clone(), rpc, i, deadline, stop))
        })
        .collect();
    let all = futures_util::future::join_all(tasks);
    tokio::pin!(all);
    let results = tokio::select! {
        results = &mut all => results,
        () = stop => {
            stop_flag.store(true, std::sync::atomic::Ordering::Relaxed);
            all.await
        }
    };
    let mut outcome = Outcome {
        secs: started.elapsed().as_secs_f64(),
        ..Outcome::default()
    };
    for result in results {
        outcome.merge(result.expect("client task"));
    }
    outcome.sort();
    outcome
}

async fn client_loop(
    channel: Channel,
    rpc: Rpc,
    index: usize,
    deadline: Instant,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Outcome {
    let mut health = HealthClient::new(channel.clone());
    let mut service = CertImportServiceClient::new(channel);
    let holder = format!("benchmark client {index}");
    let mut outcome = Outcome::default();
    while Instant::now() < deadline && !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match rpc {
            Rpc::Health => {
                let started = Instant::now();
                let reply = health.check(HealthCheckRequest::default()).await;
                record(&mut outcome, started, reply.map(drop));
            }
            Rpc::Lock => lock_pair(&mut service, &holder, &mut outcome).await,
        }
    }
    outcome
}

/// One acquire and, when granted, its release.
async fn lock_pair(
    service: &mut CertImportServiceClient<Channel>,
    holder: &str,
    outcome: &mut Outcome,
) {
    let started = Instant::now();
    let reply = service
        .acquire_cert_lock(AcquireCertLockRequest {
            holder: holder.to_owned(),
            ttl: Some(prost_types::Duration {
                seconds: LEASE_TTL.as_secs() as i64,
                nanos: 0,
            }),
        })
        .await;
    let lease_id = match &reply {
        Ok(granted) => granted.get_ref().lease.as_ref().map(|l| l.id.clone()),
        Err(_) => None,
    };
    record(outcome, started, reply.map(drop));
    if let Some(lease_id) = lease_id {
        let started = Instant::now();
        let reply = service
            .release_cert_lock(ReleaseCertLockRequest { lease_id })
            .await;
        record(outcome, started, reply.map(drop));
    }
}

fn record(outcome: &mut Outcome, started: Instant, reply: Result<(), tonic::Status>) {
    let us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
    match reply {
        Ok(()) => outcome.ok_us.push(us),
        Err(status) if status.code() == Code::FailedPrecondition => {
            outcome.refused_us.push(us);
            let state = status
                .get_details_error_info()
                .and_then(|info| info.metadata.get("lock_state").cloned())
                .unwrap_or_else(|| "unknown".into());
            *outcome.refused_by_state.entry(state).or_default() += 1;
        }
        Err(_) => outcome.errors += 1,
    }
}
