//! The command line of the `alis-import` binary: one subcommand per file.

mod check;
mod client;
mod import_file;
mod sample;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::store::Store;

/// Imports Vermont ALiS educator licences and endorsements into the district ERP.
///
/// With no subcommand it serves on the embedded defaults (`serve`).
#[derive(Debug, Parser)]
#[command(name = "alis-import", version, about)]
pub struct Cli {
    /// What to do (default: `serve`).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Log format on stderr: `text` for people, `json` for log collectors.
    #[arg(long, global = true, env = "ALIS_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// OpenTelemetry export (off unless an OTLP endpoint is set).
    #[command(flatten)]
    pub telemetry: crate::telemetry::TelemetryArgs,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC service (the default).
    Serve(Box<crate::config::ServiceConfig>),
    /// Apply the database migrations (and create the ERP tables when managed).
    Migrate(DatabaseArgs),
    /// Import a local ALiS file straight into the database, without a server.
    ImportFile(import_file::ImportFileArgs),
    /// Write a synthetic district into the database and a statewide ALiS file.
    Sample(sample::SampleArgs),
    /// Start an import for a task on a running service (`--wait` follows it).
    RunNow(client::RunNowArgs),
    /// List runs, schedule, show or delete tasks on a running service.
    Tasks(client::TasksArgs),
    /// A run's summary or log from a running service.
    Report(client::ReportArgs),
    /// Check the database, Vault and SFTP (host key, login, listing); imports nothing.
    Check(Box<check::CheckArgs>),
}

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database URL: `postgres://user@host/db` or `sqlite://PATH?mode=rwc` (creates the
    /// file). The embedded default is a SQLite file under `./data/`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/alis-import.db?mode=rwc"
    )]
    pub database_url: String,

    /// Create and migrate the ERP's own tables (employees, job classes,
    /// certifications, endorsements). On for the embedded setup; turn it off against a
    /// real ERP database, which has them already.
    #[arg(long, env = "ALIS_MANAGE_ERP_SCHEMA", default_value_t = true, action = clap::ArgAction::Set)]
    pub manage_erp_schema: bool,
}

impl DatabaseArgs {
    /// Connects and applies pending migrations, creating a SQLite file's folder first.
    pub async fn open(&self) -> anyhow::Result<Store> {
        use anyhow::Context as _;
        if let Some(folder) = sqlite_folder(&self.database_url) {
            std::fs::create_dir_all(&folder).with_context(|| {
                format!("cannot create the database folder {}", folder.display())
            })?;
        }
        let store = Store::connect(&self.database_url)
            .await
            .context("opening the database")?;
        store
            .migrate(self.manage_erp_schema)
            .await
            .context("migrating the database")?;
        Ok(store)
    }
}

/// The folder of a `sqlite://` URL's file, when it has one.
fn sqlite_folder(url: &str) -> Option<PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next()?;
    let parent = PathBuf::from(path).parent()?.to_path_buf();
    (!parent.as_os_str().is_empty()).then_some(parent)
}

impl Cli {
    /// Runs the chosen subcommand; the exit code is the command's verdict.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let command = match self.command {
            Some(command) => command,
            None => Command::Serve(Box::new(default_service_config()?)),
        };
        match command {
            Command::Serve(config) => {
                let app = crate::startup::Application::build(&config).await?;
                eprintln!("alis-import serving gRPC on {}", app.local_addr()?);
                app.run_until_stopped(shutdown_signal()).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Migrate(database) => {
                database.open().await?.close().await;
                println!("migrations applied");
                Ok(ExitCode::SUCCESS)
            }
            Command::ImportFile(args) => args.run().await,
            Command::Sample(args) => args.run().await,
            Command::RunNow(args) => args.run().await,
            Command::Tasks(args) => args.run().await,
            Command::Report(args) => args.run().await,
            Command::Check(args) => args.run().await,
        }
    }
}

/// The service configuration from environment variables and defaults alone, for a
/// bare `alis-import`.
fn default_service_config() -> anyhow::Result<crate::config::ServiceConfig> {
    Ok(crate::config::ServiceConfig::parse_from(["alis-import"])?)
}

/// Completes on Ctrl-C or SIGTERM (what Kubernetes sends).
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
