//! The telemetry settings: the standard OpenTelemetry environment variables that
//! decide whether and where traces and metrics go, as typed flags parsed in `main`.
//!
//! Only the variables that decide *what* is exported are read here. The SDK's tuning
//! variables keep their standard meaning and are read by the SDK itself when `main`
//! builds the exporters: `OTEL_TRACES_SAMPLER`/`_ARG`, `OTEL_BSP_*` (batch size, queue,
//! delay), `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_EXPORTER_OTLP_TIMEOUT` (and its
//! per-signal forms), `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_COMPRESSION`.
//! Parsing those a second time here would only duplicate the SDK.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};
use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

/// The service name when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES`
/// gives one.
pub const DEFAULT_SERVICE_NAME: &str = "alis-import";

/// How traces and metrics leave the process. With no endpoint, nothing is exported:
/// spans and metrics cost next to nothing and the logs are unchanged.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Telemetry (OpenTelemetry)")]
pub struct TelemetryArgs {
    /// The OTLP/gRPC collector for traces and metrics, e.g. `http://otel-collector:4317`.
    /// Unset (and no per-signal endpoint): nothing is exported.
    #[arg(
        long = "otlp-endpoint",
        env = "OTEL_EXPORTER_OTLP_ENDPOINT",
        global = true,
        value_name = "URL"
    )]
    pub endpoint: Option<String>,

    /// The collector for traces only, when it is not `--otlp-endpoint`.
    #[arg(
        long = "otlp-traces-endpoint",
        env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        global = true,
        value_name = "URL"
    )]
    pub traces_endpoint: Option<String>,

    /// The collector for metrics only, when it is not `--otlp-endpoint`.
    #[arg(
        long = "otlp-metrics-endpoint",
        env = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        global = true,
        value_name = "URL"
    )]
    pub metrics_endpoint: Option<String>,

    /// The OTLP transport. Only `grpc` is built in: `http/protobuf` is refused at
    /// startup rather than silently sent somewhere else.
    #[arg(
        long = "otlp-protocol",
        env = "OTEL_EXPORTER_OTLP_PROTOCOL",
        global = true,
        default_value = "grpc"
    )]
    pub protocol: OtlpProtocol,

    /// CA certificates (PEM) that sign the collector's certificate, for an `https://`
    /// endpoint.
    #[arg(
        long = "otlp-certificate",
        env = "OTEL_EXPORTER_OTLP_CERTIFICATE",
        global = true,
        value_name = "FILE"
    )]
    pub certificate: Option<PathBuf>,

    /// `service.name` of every span and metric (default `alis-import`, or the
    /// `service.name` of `OTEL_RESOURCE_ATTRIBUTES`).
    #[arg(long = "otel-service-name", env = "OTEL_SERVICE_NAME", global = true)]
    pub service_name: Option<String>,

    /// More resource attributes, `key=value` pairs separated by commas (values
    /// percent-encoded), e.g. `deployment.environment.name=prod,k8s.namespace.name=hr`.
    #[arg(
        long = "otel-resource-attributes",
        env = "OTEL_RESOURCE_ATTRIBUTES",
        global = true,
        value_name = "PAIRS"
    )]
    pub resource_attributes: Option<String>,

    /// `true` turns every export off, whatever else is set.
    #[arg(
        long = "otel-sdk-disabled",
        env = "OTEL_SDK_DISABLED",
        global = true,
        default_value_t = false,
        action = ArgAction::Set
    )]
    pub sdk_disabled: bool,

    /// `otlp` exports traces (when an endpoint is set); `none` does not.
    #[arg(
        long = "otel-traces-exporter",
        env = "OTEL_TRACES_EXPORTER",
        global = true,
        default_value = "otlp"
    )]
    pub traces_exporter: ExporterKind,

    /// `otlp` exports metrics (when an endpoint is set); `none` does not.
    #[arg(
        long = "otel-metrics-exporter",
        env = "OTEL_METRICS_EXPORTER",
        global = true,
        default_value = "otlp"
    )]
    pub metrics_exporter: ExporterKind,

    /// At shutdown, how long each signal's last export may take before it is given up
    /// (an unreachable collector must not hold the process up).
    #[arg(
        long = "otel-shutdown-timeout",
        env = "ALIS_OTEL_SHUTDOWN_TIMEOUT",
        global = true,
        default_value = "5s",
        value_parser = humantime::parse_duration
    )]
    pub shutdown_timeout: Duration,
}

/// The OTLP transports this build speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (port 4317 by convention).
    Grpc,
}

/// A signal's exporter (`OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExporterKind {
    /// OTLP, to the configured endpoint.
    Otlp,
    /// Not exported.
    None,
}

impl Default for TelemetryArgs {
    /// Nothing exported: what a process with no `OTEL_*` variable gets.
    fn default() -> Self {
        Self {
            endpoint: None,
            traces_endpoint: None,
            metrics_endpoint: None,
            protocol: OtlpProtocol::Grpc,
            certificate: None,
            service_name: None,
            resource_attributes: None,
            sdk_disabled: false,
            traces_exporter: ExporterKind::Otlp,
            metrics_exporter: ExporterKind::Otlp,
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

impl TelemetryArgs {
    /// Where traces go, if anywhere.
    pub fn traces_endpoint(&self) -> Option<&str> {
        self.signal_endpoint(self.traces_exporter, &self.traces_endpoint)
    }

    /// Where metrics go, if anywhere.
    pub fn metrics_endpoint(&self) -> Option<&str> {
        self.signal_endpoint(self.metrics_exporter, &self.metrics_endpoint)
    }

    /// The signal's own endpoint, else the common one; none when the SDK or the
    /// signal is turned off. An empty value counts as unset (the OpenTelemetry rule).
    fn signal_endpoint<'a>(
        &'a self,
        exporter: ExporterKind,
        own: &'a Option<String>,
    ) -> Option<&'a str> {
        if self.sdk_disabled || exporter == ExporterKind::None {
            return None;
        }
        non_empty(own).or_else(|| non_empty(&self.endpoint))
    }

    /// The resource every span and metric carries: `service.name`, `service.version`,
    /// the SDK's own attributes, and `OTEL_RESOURCE_ATTRIBUTES`.
    pub fn resource(&self) -> Resource {
        let mut attributes = self
            .resource_attributes
            .as_deref()
            .map(parse_resource_attributes)
            .unwrap_or_default();
        let from_attributes = attributes
            .iter()
            .position(|kv| kv.key.as_str() == "service.name")
            .map(|i| attributes.remove(i).value.to_string());
        let service_name = non_empty(&self.service_name)
            .map(str::to_owned)
            .or(from_attributes)
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
        if !attributes
            .iter()
            .any(|kv| kv.key.as_str() == "service.version")
        {
            attributes.push(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
        }
        Resource::builder_empty()
            .with_detector(Box::new(
                opentelemetry_sdk::resource::TelemetryResourceDetector,
            ))
            .with_attributes(attributes)
            .with_service_name(service_name)
            .build()
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// `OTEL_RESOURCE_ATTRIBUTES`: `key=value` pairs separated by commas, values
/// percent-encoded; a malformed pair is skipped.
fn parse_resource_attributes(text: &str) -> Vec<KeyValue> {
    text.split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let key = key.trim();
            (!key.is_empty()).then(|| KeyValue::new(key.to_owned(), percent_decode(value.trim())))
        })
        .collect()
}

/// Decodes `%XX` escapes; anything else (including a stray `%`) is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        telemetry: TelemetryArgs,
    }

    fn args(flags: &[&str]) -> TelemetryArgs {
        let mut argv = vec!["test"];
        argv.extend_from_slice(flags);
        Cli::try_parse_from(argv).expect("flags parse").telemetry
    }

    fn attribute(resource: &Resource, key: &str) -> Option<String> {
        resource
            .get(&opentelemetry::Key::from(key.to_owned()))
            .map(|v| v.to_string())
    }

    #[test]
    fn the_telemetry_flags_fit_every_subcommand() {
        use clap::CommandFactory as _;
        crate::cli::Cli::command().debug_assert();
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        let args = TelemetryArgs::default();
        assert_eq!(args.traces_endpoint(), None);
        assert_eq!(args.metrics_endpoint(), None);
    }

    #[test]
    fn the_common_endpoint_serves_both_signals_unless_one_has_its_own() {
        let args = args(&[
            "--otlp-endpoint",
            "http://collector:4317",
            "--otlp-metrics-endpoint",
            "http://metrics:4317",
        ]);
        assert_eq!(args.traces_endpoint(), Some("http://collector:4317"));
        assert_eq!(args.metrics_endpoint(), Some("http://metrics:4317"));
    }

    #[test]
    fn an_empty_endpoint_counts_as_unset() {
        let args = args(&[
            "--otlp-endpoint",
            " ",
            "--otlp-traces-endpoint",
            "http://t:4317",
        ]);
        assert_eq!(args.traces_endpoint(), Some("http://t:4317"));
        assert_eq!(args.metrics_endpoint(), None);
    }

    #[test]
    fn sdk_disabled_and_none_exporters_turn_export_off() {
        let disabled = args(&[
            "--otlp-endpoint",
            "http://c:4317",
            "--otel-sdk-disabled",
            "true",
        ]);
        assert_eq!(disabled.traces_endpoint(), None);
        assert_eq!(disabled.metrics_endpoint(), None);
        let no_traces = args(&[
            "--otlp-endpoint",
            "http://c:4317",
            "--otel-traces-exporter",
            "none",
        ]);
        assert_eq!(no_traces.traces_endpoint(), None);
        assert_eq!(no_traces.metrics_endpoint(), Some("http://c:4317"));
    }

    #[test]
    fn only_grpc_is_accepted_as_the_protocol() {
        let mut argv = vec!["test", "--otlp-protocol", "http/protobuf"];
        assert!(Cli::try_parse_from(&argv).is_err());
        argv[2] = "grpc";
        assert!(Cli::try_parse_from(&argv).is_ok());
    }

    #[test]
    fn the_service_is_named_alis_import_by_default() {
        let resource = TelemetryArgs::default().resource();
        assert_eq!(
            attribute(&resource, "service.name").as_deref(),
            Some("alis-import")
        );
        assert_eq!(
            attribute(&resource, "service.version").as_deref(),
            Some(env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(
            attribute(&resource, "telemetry.sdk.language").as_deref(),
            Some("rust")
        );
    }

    #[test]
    fn the_service_name_comes_from_the_flag_then_the_resource_attributes() {
        let from_attributes = args(&["--otel-resource-attributes", "service.name=hr-import,a=b"]);
        assert_eq!(
            attribute(&from_attributes.resource(), "service.name").as_deref(),
            Some("hr-import")
        );
        let both = args(&[
            "--otel-resource-attributes",
            "service.name=hr-import",
            "--otel-service-name",
            "alis-prod",
        ]);
        assert_eq!(
            attribute(&both.resource(), "service.name").as_deref(),
            Some("alis-prod")
        );
    }

    #[test]
    fn resource_attributes_are_split_trimmed_and_percent_decoded() {
        let parsed = parse_resource_attributes(
            "deployment.environment.name = prod , team=HR%20Systems,broken,=x,k=50%",
        );
        let pairs: Vec<(String, String)> = parsed
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("deployment.environment.name".into(), "prod".into()),
                ("team".into(), "HR Systems".into()),
                ("k".into(), "50%".into()),
            ]
        );
    }
}
