//! `alis-import sample`: a synthetic district in the database and its statewide file.

use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::DatabaseArgs;
use crate::sample::{self, SampleSpec};

/// Arguments of `sample`.
#[derive(Debug, Args)]
pub struct SampleArgs {
    #[command(flatten)]
    database: DatabaseArgs,

    /// Folder to write the statewide file into, under its ALiS name.
    #[arg(long, default_value = "data/inbox")]
    out_dir: PathBuf,

    /// Employees of the district (about 5% of them terminated).
    #[arg(long, default_value_t = 120)]
    employees: usize,

    /// Educators in the statewide file (most of them work elsewhere).
    #[arg(long, default_value_t = 2_000)]
    statewide_educators: usize,

    /// Seed: the same seed gives the same data.
    #[arg(long, default_value_t = 7)]
    seed: u64,

    /// The date the data is as of (licences expire around it), `YYYY-MM-DD`.
    #[arg(long)]
    as_of: Option<jiff::civil::Date>,

    /// Write only the file; leave the database alone.
    #[arg(long)]
    file_only: bool,
}

impl SampleArgs {
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        let spec = SampleSpec {
            seed: self.seed,
            statewide_educators: self.statewide_educators,
            employees: self.employees,
            as_of: self
                .as_of
                .unwrap_or_else(|| jiff::ZonedDateTime::now().date()),
        };
        if !self.file_only {
            let store = self.database.open().await?;
            anyhow::ensure!(
                !store.has_employees().await?,
                "the database already has employees; the sample district goes into an empty one"
            );
            store
                .insert_district(&sample::district(&spec))
                .await
                .context("writing the district")?;
            store.close().await;
        }
        std::fs::create_dir_all(&self.out_dir)
            .with_context(|| format!("cannot create {}", self.out_dir.display()))?;
        let path = self.out_dir.join(sample::file_name(&spec));
        let file = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let rows = sample::write_statewide_file(&spec, BufWriter::new(file))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}", path.display());
        eprintln!(
            "sample: {} employees, {} statewide educators, {rows} data rows",
            spec.employees, spec.statewide_educators
        );
        Ok(ExitCode::SUCCESS)
    }
}
