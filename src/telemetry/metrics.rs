//! The service's metrics (design §8), as OpenTelemetry instruments.
//!
//! Code records through [`metrics()`]: `metrics().record_lease_refused()`. Before
//! [`super::init`] installs a meter provider (tests that run the service in-process,
//! the CLI without an endpoint) every instrument is a no-op.
//!
//! | name | kind, unit | attributes |
//! |---|---|---|
//! | `alis_import.runs` | counter, `{run}` | `status` (`SUCCEEDED`, `FAILED`), `dry_run` |
//! | `alis_import.run.duration` | histogram, `s` | `status`, `dry_run` |
//! | `alis_import.rows.parsed` | counter, `{row}` | — (data rows read, valid or not) |
//! | `alis_import.rows.invalid` | counter, `{row}` | — |
//! | `alis_import.records.imported` | counter, `{record}` | `kind` (`certification`, `endorsement`) |
//! | `alis_import.records.deleted` | counter, `{record}` | `kind` |
//! | `alis_import.lock.waits` | counter, `{wait}` | — (imports that had to wait for edit leases) |
//! | `alis_import.lock.wait.duration` | histogram, `s` | — (every import's lock-wait phase) |
//! | `alis_import.lease.refusals` | counter, `{lease}` | — (edit leases refused: an import runs) |
//! | `rpc.server.call.duration` | histogram, `s` | `rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code` |

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::metrics::SdkMeterProvider;

use crate::import::summary::Summary;
use crate::store::RunStatus;

/// Buckets of run durations, in seconds: a district file imports in seconds, the
/// statewide one in a minute or two; a run waiting for edit leases or a slow SFTP
/// server takes longer.
const RUN_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];
/// Buckets of lock waits, in seconds (a lease lasts at most its capped TTL).
const LOCK_WAIT_BUCKETS: &[f64] = &[0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
/// Buckets of RPC durations, in seconds (the semantic conventions' advice).
const RPC_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The service's instruments. Before [`super::init`] installs its meter provider, those
/// of the global one (a no-op unless someone installed one).
pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(|| Metrics::new(&opentelemetry::global::meter_with_scope(scope())))
}

/// Makes [`metrics()`] record into `provider`. Called once, by [`super::init`], before
/// anything records; returns false if instruments were already in use.
pub(super) fn install(provider: &SdkMeterProvider) -> bool {
    METRICS
        .set(Metrics::new(&provider.meter_with_scope(scope())))
        .is_ok()
}

/// This crate as the instrumentation scope of its spans and metrics.
pub(super) fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("alis-import")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// The instruments of design §8 and the RPC server duration.
#[derive(Debug)]
pub struct Metrics {
    runs: Counter<u64>,
    run_duration: Histogram<f64>,
    rows_parsed: Counter<u64>,
    rows_invalid: Counter<u64>,
    records_imported: Counter<u64>,
    records_deleted: Counter<u64>,
    lock_waits: Counter<u64>,
    lock_wait_duration: Histogram<f64>,
    lease_refusals: Counter<u64>,
    rpc_duration: Histogram<f64>,
}

/// One run that ended, as the metrics see it.
#[derive(Debug, Clone, Copy)]
pub struct EndedRun<'a> {
    /// How it ended.
    pub status: RunStatus,
    /// Whether it was a dry run (nothing written).
    pub dry_run: bool,
    /// From claim to end.
    pub duration: Duration,
    /// Its summary, when the import got far enough to have one.
    pub summary: Option<&'a Summary>,
}

impl Metrics {
    fn new(meter: &Meter) -> Self {
        Self {
            runs: meter
                .u64_counter("alis_import.runs")
                .with_unit("{run}")
                .with_description("Runs executed by this replica, by outcome")
                .build(),
            run_duration: meter
                .f64_histogram("alis_import.run.duration")
                .with_unit("s")
                .with_description("How long runs took, from claim to end")
                .with_boundaries(RUN_BUCKETS.to_vec())
                .build(),
            rows_parsed: meter
                .u64_counter("alis_import.rows.parsed")
                .with_unit("{row}")
                .with_description("Data rows read from ALiS files, valid or not")
                .build(),
            rows_invalid: meter
                .u64_counter("alis_import.rows.invalid")
                .with_unit("{row}")
                .with_description("Data rows skipped as invalid")
                .build(),
            records_imported: meter
                .u64_counter("alis_import.records.imported")
                .with_unit("{record}")
                .with_description("Certification and endorsement records written")
                .build(),
            records_deleted: meter
                .u64_counter("alis_import.records.deleted")
                .with_unit("{record}")
                .with_description("Certification and endorsement records replaced")
                .build(),
            lock_waits: meter
                .u64_counter("alis_import.lock.waits")
                .with_unit("{wait}")
                .with_description("Imports that waited for edit leases before replacing")
                .build(),
            lock_wait_duration: meter
                .f64_histogram("alis_import.lock.wait.duration")
                .with_unit("s")
                .with_description("How long imports spent in the lock-wait phase")
                .with_boundaries(LOCK_WAIT_BUCKETS.to_vec())
                .build(),
            lease_refusals: meter
                .u64_counter("alis_import.lease.refusals")
                .with_unit("{lease}")
                .with_description("Edit leases refused because an import wants the lock")
                .build(),
            rpc_duration: meter
                .f64_histogram("rpc.server.call.duration")
                .with_unit("s")
                .with_description("How long RPCs took, to the last message")
                .with_boundaries(RPC_BUCKETS.to_vec())
                .build(),
        }
    }

    /// A run ended: counts it, its duration, the rows it read and, when it wrote, the
    /// records it imported and deleted.
    pub fn record_run(&self, run: EndedRun<'_>) {
        let outcome = [
            KeyValue::new("status", run.status.as_str()),
            KeyValue::new("dry_run", run.dry_run),
        ];
        self.runs.add(1, &outcome);
        self.run_duration
            .record(run.duration.as_secs_f64(), &outcome);
        let Some(summary) = run.summary else {
            return;
        };
        self.rows_parsed.add(summary.data_rows, &[]);
        self.rows_invalid
            .add(summary.invalid_rows.len() as u64, &[]);
        let wrote =
            run.status == RunStatus::Succeeded && !run.dry_run && summary.rejected.is_none();
        if wrote {
            for (counter, counts) in [
                (&self.records_imported, &summary.imported),
                (&self.records_deleted, &summary.deleted),
            ] {
                counter.add(
                    counts.certifications,
                    &[KeyValue::new("kind", "certification")],
                );
                counter.add(counts.endorsements, &[KeyValue::new("kind", "endorsement")]);
            }
        }
    }

    /// An import took the certification lock after `waited` in its lock-wait phase,
    /// with at most `leases` edit leases outstanding meanwhile: the duration always,
    /// a wait only when there were leases to wait for.
    pub fn record_lock_wait(&self, waited: Duration, leases: u64) {
        if leases > 0 {
            self.lock_waits.add(1, &[]);
        }
        self.lock_wait_duration.record(waited.as_secs_f64(), &[]);
    }

    /// An edit lease was refused because an import wants or holds the lock.
    pub fn record_lease_refused(&self) {
        self.lease_refusals.add(1, &[]);
    }

    /// An RPC ended with `code` after `duration`.
    pub fn record_rpc(&self, service: &str, method: &str, code: tonic::Code, duration: Duration) {
        self.rpc_duration.record(
            duration.as_secs_f64(),
            &[
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", service.to_owned()),
                KeyValue::new("rpc.method", method.to_owned()),
                KeyValue::new("rpc.grpc.status_code", code as i64),
            ],
        );
    }
}
