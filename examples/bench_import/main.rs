//! Benchmarks 1 and 2 of issue 8: the full import of a large statewide file against
//! each database's own bulk loader, fed the very rows the import produced.
//!
//! ```text
//! cargo build --release --bin alis-import --example bench_import
//! target/release/examples/bench_import [--quick] [--rounds N] [--only postgres|sqlite]
//!     [--work DIR] [--out FRAGMENT.json]
//! ```
//!
//! For each backend: a fresh database holding the district; one import of the largest
//! file (untimed warm-up, which also yields the rows); the rows exported; one import of
//! each file size (¼, ½, 1×) for the peak RSS against file size; then interleaved
//! rounds of `alis-import import-file` (a release child process, end to end: connect,
//! parse, match, guard, the one-transaction replace, summary, PDF report) against the
//! reference loading the same rows after the same delete in one transaction (`psql`
//! with `\copy`; the `sqlite3` shell with `.import --csv`). Tables are vacuumed (and
//! checkpointed) between rounds, untimed, so neither side inherits the other's debris.
//! `scripts/bench` runs it; see BENCHMARKS.md.

#[path = "../bench_support/mod.rs"]
mod bench_support;
mod phases;
mod postgres;
mod sqlite;

use std::path::PathBuf;
use std::process::Command;

use bench_support::data::{self, StatewideFile};
use bench_support::process::{self, Finished};
use bench_support::results::{thousands, write_fragment};
use bench_support::service_binary;

/// The allocator of the `alis-import` binary (tuned alike first thing in `main`), so
/// that the in-process phase breakdown measures what the CLI does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The command line.
pub struct Args {
    /// Small sizes for a smoke run.
    pub quick: bool,
    /// Interleaved rounds per comparison.
    pub rounds: usize,
    /// Scratch folder (generated files are reused from it).
    pub work: PathBuf,
    /// Where the JSON fragment goes.
    pub out: PathBuf,
    /// Run only this backend.
    pub only: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        quick: false,
        rounds: 5,
        work: std::env::temp_dir().join("alis-bench"),
        out: PathBuf::from("bench-import.json"),
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => {
                args.quick = true;
                args.rounds = 3;
            }
            "--rounds" => args.rounds = value().parse().expect("--rounds N"),
            "--work" => args.work = PathBuf::from(value()),
            "--out" => args.out = PathBuf::from(value()),
            "--only" => args.only = Some(value()),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// The data every backend imports.
pub struct Workload {
    /// ¼, ½ and the whole of the largest file, in that order.
    pub files: [StatewideFile; 3],
    /// The district: employees over the educators of the quarter file.
    pub district: alis_import::sample::SampleDistrict,
}

impl Workload {
    /// The largest file.
    pub fn full(&self) -> &StatewideFile {
        &self.files[2]
    }
}

fn main() {
    alis_import::allocator::tune();
    let mut raw = std::env::args().skip(1);
    if raw.next().as_deref() == Some("--phases") {
        let (url, file) = (raw.next().expect("URL"), raw.next().expect("FILE"));
        phases::run_child(&url, &file);
        return;
    }
    let args = parse_args();
    std::fs::create_dir_all(&args.work).expect("create the work folder");
    let (rows, employees) = if args.quick {
        (100_000, 10_500)
    } else {
        (1_000_000, 105_000)
    };
    eprintln!("generating statewide files of about {rows} rows and a district…");
    let educators = data::educators_for_rows(rows);
    let files = [educators / 4, educators / 2, educators]
        .map(|e| data::statewide_file(&args.work, e, false));
    let district = data::district(educators / 4, employees);
    let workload = Workload { files, district };
    eprintln!(
        "files: {} rows; district: {} employees, {} active",
        workload
            .files
            .iter()
            .map(|f| f.rows.to_string())
            .collect::<Vec<_>>()
            .join(" / "),
        workload.district.employees.len(),
        data::active(&workload.district)
    );

    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let wanted = |name: &str| args.only.as_deref().is_none_or(|only| only == name);
    let mut sections = Vec::new();
    if wanted("postgres") {
        sections.push(postgres::run(&args, &workload, &runtime));
    }
    if wanted("sqlite") {
        sections.push(sqlite::run(&args, &workload, &runtime));
    }
    write_fragment(&args.out, &sections);
}

/// `alis-import import-file FILE` against `url`, as a child process.
pub fn import_file(url: &str, file: &StatewideFile, json: bool) -> Finished {
    let mut command = Command::new(service_binary());
    command
        .arg("import-file")
        .arg(&file.path)
        .args(["--database-url", url, "--as-of"])
        .arg(data::as_of().to_string())
        .env("RUST_LOG", "warn");
    if json {
        command.arg("--json");
    }
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("ALIS_")) {
            command.env_remove(name);
        }
    }
    command.env_remove("DATABASE_URL");
    process::run(command, &[0])
}

/// Records imported by a `--json` import.
pub fn imported(finished: &Finished) -> (u64, u64) {
    let summary: serde_json::Value =
        serde_json::from_str(&finished.stdout).expect("import-file --json prints the summary");
    let count = |key| summary["imported"][key].as_u64().expect("imported counts");
    (count("certifications"), count("endorsements"))
}

/// Peak RSS and time of one import of each file size, as facts.
pub fn rss_by_file_size(
    section: &mut bench_support::results::Section,
    workload: &Workload,
    import: impl Fn(&StatewideFile) -> Finished,
) {
    let mut peaks = Vec::new();
    for file in &workload.files {
        let finished = import(file);
        eprintln!(
            "  {} rows: {:.2} s, peak RSS {:.0} MB",
            file.rows,
            finished.secs(),
            finished.max_rss_mb()
        );
        section.fact(
            format!("peak RSS, import of the {}-row file", thousands(file.rows)),
            finished.max_rss_mb(),
            "MB",
        );
        peaks.push(finished.max_rss_mb());
    }
    let growth = peaks[2] / peaks[0];
    section.fact(
        format!(
            "peak RSS growth, 4× the rows ({} / {} rows)",
            thousands(workload.files[2].rows),
            thousands(workload.files[0].rows)
        ),
        growth,
        "×",
    );
    section.check("peak RSS < 300 MB (largest file)", peaks[2], 300.0, true);
    section.check(
        "peak RSS does not grow with the file (4× the rows: ≤ 1.10×)",
        growth,
        1.10,
        true,
    );
}
