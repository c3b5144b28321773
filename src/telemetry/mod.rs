//! Telemetry: log lines on stderr, and OpenTelemetry traces and metrics over OTLP/gRPC
//! (design §8).
//!
//! [`init`], called once by `main` inside the Tokio runtime, installs one `tracing`
//! subscriber with two layers: the log lines (text, or JSON with `--log-format json`)
//! and, when an OTLP endpoint is configured ([`TelemetryArgs`]), tracing-opentelemetry,
//! which turns the same `tracing` spans into OpenTelemetry spans. The returned
//! [`Telemetry`] flushes both signals at [`Telemetry::shutdown`], the last step of
//! shutdown.
//!
//! An unreachable collector never slows a request: finished spans go into a bounded
//! queue (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048; spans beyond it are dropped) that a
//! background thread exports in batches, each export bounded by
//! `OTEL_EXPORTER_OTLP_TIMEOUT` (10 s); metrics are collected and exported on their own
//! thread every `OTEL_METRIC_EXPORT_INTERVAL` (60 s). Failed exports are logged (target
//! `opentelemetry_sdk`), never retried into the request path.
//!
//! # Layout
//!
//! - [`config`]: the `OTEL_*` settings, and the resource (`service.name`, …).
//! - [`grpc`]: the server span per RPC, parented by the caller's `traceparent`.
//! - [`metrics`](mod@metrics): the instruments, recorded through [`metrics()`].
//!
//! # Spans
//!
//! | span | where | attributes |
//! |---|---|---|
//! | `{rpc.service}/{rpc.method}` (server) | every RPC but health checks | `rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`, `server.address`, `server.port`, `network.peer.address`, `network.peer.port` |
//! | `run` | one per run; a RunNow's is a child of its RPC | `run_id`, `task_id`, `dry_run`, `status`, `rows_parsed`, `records_imported`, `records_deleted` |
//! | `fetch` | child of `run` | `source`, `file`, `from_cache`, `listed`, `ignored` |
//! | `parse` | under `run_import` | `data_rows`, `invalid_rows`, `educators_kept`, `educators_not_kept`, `windows_1252` |
//! | `plan` | under `run_import` | `matched`, `skipped`, `unmatched`, `certifications`, `endorsements` |
//! | `guard` | under `run_import` | `holders_before`, `holders_after`, `refused` |
//! | `lock_wait` | under `run_import` | `run_id`, `epoch`, `leases_waited_for` |
//! | `replace` | under `run_import` | `run_id`, `certifications`, `endorsements` |
//! | `report` | child of `run` | `pdf_bytes` |
//!
//! Spans carry identifiers and counts, never a credential: the SFTP password, Vault
//! tokens and bearer tokens are `secrecy` values that no span or event records.
//! Counts are recorded as `i64`: tracing-opentelemetry exports `u64` and `usize`
//! fields as strings.

pub mod config;
pub mod grpc;
pub mod metrics;

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, FilterExt as _, filter_fn};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, Registry};

pub use self::config::TelemetryArgs;
pub use self::grpc::RpcSpanLayer;
pub use self::metrics::{EndedRun, Metrics, metrics};
use crate::cli::LogFormat;

/// What is logged when `RUST_LOG` does not say: the service at `info`; sqlx's
/// per-statement lines and the OpenTelemetry SDK's chatter only when they matter.
const DEFAULT_LOG_FILTER: &str =
    "info,sqlx=warn,opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry_otlp=warn";

/// Crates whose own spans are never exported: the exporter's transport (exporting
/// them would export the exports) and the SDK itself.
const NOT_EXPORTED: &[&str] = &["opentelemetry", "h2", "hyper", "tonic", "tower", "reqwest"];

/// The installed exporters, to flush at shutdown.
#[derive(Debug)]
#[must_use = "call `shutdown` last, or buffered spans and metrics are lost"]
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    shutdown_timeout: Duration,
}

/// Installs the global `tracing` subscriber and, when configured, the OpenTelemetry
/// tracer and meter providers and the W3C trace-context propagator.
///
/// Must run inside the Tokio runtime (the gRPC exporters' connections live on it), and
/// once per process. `RUST_LOG` filters both the log lines and the exported spans.
///
/// # Errors
///
/// An endpoint the exporter cannot use (not a URL, `https://` without a usable
/// certificate), or a subscriber already installed.
pub fn init(args: &TelemetryArgs, log_format: LogFormat) -> anyhow::Result<Telemetry> {
    let resource = args.resource();
    let tracer_provider = args
        .traces_endpoint()
        .map(|endpoint| tracer_provider(args, endpoint, resource.clone()))
        .transpose()?;
    let meter_provider = args
        .metrics_endpoint()
        .map(|endpoint| meter_provider(args, endpoint, resource))
        .transpose()?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    if let Some(provider) = &meter_provider {
        opentelemetry::global::set_meter_provider(provider.clone());
        if !metrics::install(provider) {
            anyhow::bail!("metrics were recorded before telemetry was initialised");
        }
    }

    let log_lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let log_lines = match log_format {
        LogFormat::Text => log_lines.boxed(),
        LogFormat::Json => log_lines.json().boxed(),
    };
    // The RPC span repeats addresses and names on every line: logs leave it out.
    let not_rpc_span = filter_fn(|meta| !(meta.is_span() && meta.target() == grpc::SPAN_TARGET));
    let mut layers: Vec<Box<dyn tracing_subscriber::Layer<Registry> + Send + Sync>> = vec![
        log_lines
            .with_filter(log_filter().and(not_rpc_span))
            .boxed(),
    ];
    if let Some(provider) = &tracer_provider {
        let exported = filter_fn(|meta| {
            !NOT_EXPORTED
                .iter()
                .any(|krate| meta.target().starts_with(krate))
        });
        layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer_with_scope(metrics::scope()))
                .with_threads(false)
                .with_filter(log_filter().and(exported))
                .boxed(),
        );
    }
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .context("installing the tracing subscriber")?;
    if tracer_provider.is_some() || meter_provider.is_some() {
        tracing::info!(
            traces = args.traces_endpoint().unwrap_or("off"),
            metrics = args.metrics_endpoint().unwrap_or("off"),
            "exporting telemetry over OTLP/gRPC"
        );
    }
    Ok(Telemetry {
        tracer_provider,
        meter_provider,
        shutdown_timeout: args.shutdown_timeout,
    })
}

impl Telemetry {
    /// Exports what is still buffered and stops the exporters, each within the
    /// shutdown timeout. Call it last: after the server drained and the jobs stopped,
    /// so their spans are in the batch.
    pub async fn shutdown(self) {
        if self.tracer_provider.is_none() && self.meter_provider.is_none() {
            return;
        }
        // The SDK's shutdown blocks its caller until the export thread is done.
        let flushed = tokio::task::spawn_blocking(move || {
            let timeout = self.shutdown_timeout;
            let traces = self
                .tracer_provider
                .map(|provider| provider.shutdown_with_timeout(timeout));
            let metrics = self
                .meter_provider
                .map(|provider| provider.shutdown_with_timeout(timeout));
            (traces, metrics)
        })
        .await;
        match flushed {
            Ok((traces, metrics)) => {
                for (signal, result) in [("traces", traces), ("metrics", metrics)] {
                    if let Some(Err(error)) = result {
                        tracing::warn!(signal, %error, "telemetry not flushed at shutdown");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "telemetry flush stopped"),
        }
    }
}

/// A run ended: records its outcome and counts on the current span (the worker's
/// `run` span) and in the metrics. A failed run's span is marked as an error.
pub fn run_ended(run: EndedRun<'_>) {
    let span = tracing::Span::current();
    span.record("status", run.status.as_str());
    if run.status != crate::store::RunStatus::Succeeded {
        span.record("otel.status_code", "ERROR");
    }
    if let Some(summary) = run.summary {
        span.record("rows_parsed", summary.data_rows as i64)
            .record("records_imported", summary.imported.total as i64)
            .record("records_deleted", summary.deleted.total as i64);
    }
    metrics().record_run(run);
}

/// `RUST_LOG`, or the default.
fn log_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER))
}

/// Spans, batched to `endpoint` on the SDK's export thread.
fn tracer_provider(
    args: &TelemetryArgs,
    endpoint: &str,
    resource: opentelemetry_sdk::Resource,
) -> anyhow::Result<SdkTracerProvider> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint);
    if let Some(tls) = collector_tls(args)? {
        exporter = exporter.with_tls_config(tls);
    }
    let exporter = exporter
        .build()
        .with_context(|| format!("the OTLP traces endpoint {endpoint:?}"))?;
    // The sampler is the SDK's default, which follows OTEL_TRACES_SAMPLER (and is
    // parent-based: a caller's sampling decision is kept).
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Metrics, collected and exported periodically on the SDK's reader thread.
fn meter_provider(
    args: &TelemetryArgs,
    endpoint: &str,
    resource: opentelemetry_sdk::Resource,
) -> anyhow::Result<SdkMeterProvider> {
    let mut exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint);
    if let Some(tls) = collector_tls(args)? {
        exporter = exporter.with_tls_config(tls);
    }
    let exporter = exporter
        .build()
        .with_context(|| format!("the OTLP metrics endpoint {endpoint:?}"))?;
    Ok(SdkMeterProvider::builder()
        .with_periodic_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// TLS to the collector, trusting `--otlp-certificate`, when one is given.
fn collector_tls(
    args: &TelemetryArgs,
) -> anyhow::Result<Option<tonic::transport::ClientTlsConfig>> {
    let Some(path) = &args.certificate else {
        return Ok(None);
    };
    let pem = std::fs::read(path)
        .with_context(|| format!("cannot read the collector's CA file {}", path.display()))?;
    Ok(Some(
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
    ))
}
