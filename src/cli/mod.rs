//! The command line of the `alis-import` binary: one subcommand per file.

mod import_file;
mod sample;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::store::Store;

/// Imports Vermont ALiS educator licences and endorsements into the district ERP.
#[derive(Debug, Parser)]
#[command(name = "alis-import", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the database migrations (and create the ERP tables when managed).
    Migrate(DatabaseArgs),
    /// Import a local ALiS file straight into the database, without a server.
    ImportFile(import_file::ImportFileArgs),
    /// Write a synthetic district into the database and a statewide ALiS file.
    Sample(sample::SampleArgs),
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
        match self.command {
            Command::Migrate(database) => {
                database.open().await?.close().await;
                println!("migrations applied");
                Ok(ExitCode::SUCCESS)
            }
            Command::ImportFile(args) => args.run().await,
            Command::Sample(args) => args.run().await,
        }
    }
}
