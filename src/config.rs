//! The service's one typed configuration: command-line flags, each also settable by
//! an environment variable, parsed once in `main`. Nothing below reads the
//! environment. With no flags at all it is the embedded default: SQLite under
//! `./data/`, the inbox folder `./data/inbox/`, loopback only.
//!
//! - `sources`: the source kind, the SFTP time limits and the secrets provider
//!   (Vault or a development file).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::api::auth::AuthArgs;
use crate::cli::DatabaseArgs;
use crate::import::ImportSettings;
use crate::import::alis_file::ParseSettings;

mod sources;

pub use sources::{SourceArgs, SourceKind, VaultArgs, VaultAuthMethod};

/// Everything `alis-import serve` needs.
#[derive(Debug, Clone, Args)]
pub struct ServiceConfig {
    /// Address the gRPC server listens on. Without authentication configured only a
    /// loopback address is accepted.
    #[arg(long, env = "ALIS_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// The database.
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Bearer-token authentication (off unless a key is configured).
    #[command(flatten)]
    pub auth: AuthArgs,

    /// TLS: the server's certificate chain (PEM). With `--tls-key-file`, the server
    /// speaks only TLS.
    #[arg(long, env = "ALIS_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// TLS: the server's private key (PEM).
    #[arg(long, env = "ALIS_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,

    /// mTLS: CA certificates (PEM) that sign client certificates; when set, every
    /// client must present one.
    #[arg(long, env = "ALIS_TLS_CLIENT_CA_FILE", requires = "tls_cert_file")]
    pub tls_client_ca_file: Option<PathBuf>,

    /// The local inbox folder the ALiS file is taken from (the development and
    /// manual-drop source).
    #[arg(long, env = "ALIS_INBOX_DIR", default_value = "data/inbox")]
    pub inbox_dir: PathBuf,

    /// Scratch folder for downloaded files while a run reads them.
    #[arg(long, env = "ALIS_WORK_DIR", default_value = "data/work")]
    pub work_dir: PathBuf,

    /// A file modified less than this long ago is taken to be still uploading.
    #[arg(long, env = "ALIS_MIN_FILE_AGE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub min_file_age: Duration,

    /// The largest ALiS file accepted, in bytes (refused before downloading).
    #[arg(long, env = "ALIS_MAX_FILE_SIZE", default_value_t = 256 * 1024 * 1024)]
    pub max_file_size: u64,

    /// The district's time zone (IANA name): report dates are computed in it.
    #[arg(long, env = "ALIS_TIME_ZONE", default_value = "America/New_York")]
    pub time_zone: String,

    /// The name of the district or supervisory union, printed on reports.
    #[arg(
        long,
        env = "ALIS_DISTRICT_NAME",
        default_value = "Sample Supervisory Union"
    )]
    pub district_name: String,

    /// How often the scheduler looks for due runs and lost workers.
    #[arg(long, env = "ALIS_SCHEDULER_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub scheduler_interval: Duration,

    /// How often a running import proves it is alive.
    #[arg(long, env = "ALIS_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,

    /// A running import silent for longer than this is failed ("worker lost") by any
    /// replica, and its lock freed.
    #[arg(long, env = "ALIS_HEARTBEAT_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub heartbeat_timeout: Duration,

    /// After downtime, a waiting run overdue by less than this runs once; older ones
    /// are marked missed.
    #[arg(long, env = "ALIS_CATCH_UP_WINDOW", default_value = "12h", value_parser = humantime::parse_duration)]
    pub catch_up_window: Duration,

    /// How long a due scheduled run waits for another running import before it fails.
    #[arg(long, env = "ALIS_BUSY_WAIT", default_value = "30m", value_parser = humantime::parse_duration)]
    pub busy_wait: Duration,

    /// Mass-deletion guard: largest allowed fall, in percent, of active employees
    /// holding a certification; 0 turns the guard off.
    #[arg(long, env = "ALIS_GUARD_MAX_DROP_PERCENT", default_value_t = 20)]
    pub guard_max_drop_percent: u32,

    /// A file with more invalid rows than this is rejected.
    #[arg(long, env = "ALIS_MAX_INVALID_ROWS", default_value_t = 100)]
    pub max_invalid_rows: u64,

    /// A file with more invalid rows than this percentage of its data rows is rejected.
    #[arg(long, env = "ALIS_MAX_INVALID_PERCENT", default_value_t = 1.0)]
    pub max_invalid_percent: f64,

    /// The report's "expiring soon" look-ahead, in days.
    #[arg(long, env = "ALIS_EXPIRING_WITHIN_DAYS", default_value_t = 90)]
    pub expiring_within_days: u32,

    /// "Run by" of requests while no authentication is configured (loopback only).
    #[arg(long, env = "ALIS_LOCAL_OPERATOR", default_value = "local")]
    pub local_operator: String,

    /// On first start with an empty ERP schema managed by the service, write a demo
    /// district, a sample ALiS file in the inbox and an active weekly task. Turn off in
    /// production.
    #[arg(long, env = "ALIS_DEMO_DATA", default_value_t = true, action = clap::ArgAction::Set)]
    pub demo_data: bool,

    /// Identifies this replica in claimed runs (default: host name and process id).
    #[arg(long, env = "ALIS_INSTANCE_NAME")]
    pub instance_name: Option<String>,

    /// Where ALiS files come from (the inbox folder or SFTP) and where the SFTP
    /// credentials are (Vault, or a development file).
    #[command(flatten)]
    pub source: SourceArgs,

    /// The longest certification edit lease granted (AcquireCertLock); longer requests
    /// are capped. Also the longest an import waits for edits to finish.
    #[arg(long, env = "ALIS_LEASE_MAX_TTL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub lease_max_ttl: Duration,

    /// TEST ONLY (hidden): while this file exists, every import waits after taking the
    /// certification lock, before its replace transaction.
    #[arg(long, hide = true)]
    pub test_pause_before_replace_file: Option<PathBuf>,

    /// TEST ONLY (hidden): while this file exists, every import waits inside its replace
    /// transaction, before the commit.
    #[arg(long, hide = true)]
    pub test_pause_before_commit_file: Option<PathBuf>,
}

impl ServiceConfig {
    /// Parses flags (the first item is the program name), falling back to environment
    /// variables and defaults: `parse_from(["alis-import"])` is the embedded default.
    /// A flag given twice takes its last value, so callers (tests) can override a base
    /// set of flags by appending.
    pub fn parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{Args as _, FromArgMatches as _};
        let command =
            Self::augment_args(clap::Command::new("alis-import").args_override_self(true));
        Self::from_arg_matches(&command.try_get_matches_from(args)?)
    }

    /// The import settings these flags describe.
    pub fn import_settings(&self) -> ImportSettings {
        ImportSettings {
            parse: ParseSettings {
                max_invalid_rows: self.max_invalid_rows,
                max_invalid_fraction: self.max_invalid_percent / 100.0,
            },
            guard_max_drop_percent: self.guard_max_drop_percent,
            expiring_within_days: self.expiring_within_days,
            lock: crate::lock::LockSettings {
                max_ttl: self.lease_max_ttl,
                replace_idle_timeout: self.heartbeat_timeout,
                ..crate::lock::LockSettings::default()
            },
        }
    }

    /// This replica's name in claimed runs.
    pub fn instance(&self) -> String {
        self.instance_name.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "localhost".into());
            format!("{host}:{}", std::process::id())
        })
    }
}
