//! Benchmark 5 of issue 8: the ALiS parser's throughput on the largest statewide file,
//! against the `csv` crate reading the same file as raw byte records (the floor any
//! CSV-based parser stands on) and against `wc -l` (the floor of reading the bytes).
//!
//! ```text
//! cargo build --release --example bench_parser
//! target/release/examples/bench_parser [--quick] [--rounds N] [--work DIR] [--out FRAGMENT.json]
//! ```
//!
//! Each round runs every contender once, in a rotating order, on the file in the page
//! cache: `alis_file::parse` keeping no educator (what a district that employs none of
//! the file's educators costs: both passes, every row validated), the same keeping
//! every educator (the records of all of them built and held), the `csv` crate's
//! `read_byte_record` loop, and `wc -l` as a child process.

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use alis_import::import::alis_file::{self, ParseSettings};
use bench_support::data::{self, StatewideFile};
use bench_support::machine::Load;
use bench_support::process;
use bench_support::results::{Comparison, Section, write_fragment};

/// The allocator of the `alis-import` binary (tuned alike first thing in `main`), so
/// that the parser is measured as the service runs it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    alis_import::allocator::tune();
    let mut quick = false;
    let mut rounds = 7;
    let mut work = std::env::temp_dir().join("alis-bench");
    let mut out = PathBuf::from("bench-parser.json");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => {
                quick = true;
                rounds = 3;
            }
            "--rounds" => rounds = value().parse().expect("--rounds N"),
            "--work" => work = PathBuf::from(value()),
            "--out" => out = PathBuf::from(value()),
            other => panic!("unknown argument {other}"),
        }
    }
    std::fs::create_dir_all(&work).expect("create the work folder");
    let rows = if quick { 100_000 } else { 1_000_000 };
    let file = data::statewide_file(&work, data::educators_for_rows(rows), false);
    write_fragment(&out, &[run(&file, rounds)]);
}

/// A contender: a name and a way to read the whole file once.
type Contender<'a> = (&'static str, Box<dyn Fn(&Path) + 'a>);

fn run(file: &StatewideFile, rounds: usize) -> Section {
    let start_load = Load::now();
    let mut section = Section::new("parser", "5. Parser throughput");
    let expected_rows = file.rows;
    let contenders: Vec<Contender> = vec![
        (
            "alis_file::parse, keep none",
            Box::new(move |path| parse(path, false, expected_rows)),
        ),
        (
            "alis_file::parse, keep all",
            Box::new(move |path| parse(path, true, expected_rows)),
        ),
        (
            "csv ByteRecord read",
            Box::new(move |path| csv_records(path, expected_rows)),
        ),
        ("wc -l", Box::new(move |path| wc_lines(path, expected_rows))),
    ];
    // Untimed: brings the file into the page cache.
    wc_lines(&file.path, expected_rows);
    let mut times = vec![Vec::new(); contenders.len()];
    for round in 0..rounds {
        for k in 0..contenders.len() {
            let i = (round + k) % contenders.len();
            let started = Instant::now();
            (contenders[i].1)(&file.path);
            times[i].push(started.elapsed().as_secs_f64());
        }
        eprintln!(
            "  round {}: {}",
            round + 1,
            contenders
                .iter()
                .zip(&times)
                .map(|((name, _), t)| format!("{name} {:.3} s", t[round]))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    let megabytes = file.bytes as f64 / 1e6;
    let label = format!(
        "{} rows, {megabytes:.0} MB",
        bench_support::results::thousands(file.rows)
    );
    let (csv_name, csv_times) = (contenders[2].0, times[2].clone());
    for (i, (name, _)) in contenders.iter().enumerate().take(2) {
        section.comparisons.push(Comparison::new(
            label.clone(),
            "s",
            (name, times[i].clone()),
            (csv_name, csv_times.clone()),
        ));
    }
    section.comparisons.push(Comparison::new(
        label,
        "s",
        (csv_name, csv_times),
        (contenders[3].0, times[3].clone()),
    ));
    for ((name, _), t) in contenders.iter().zip(&times) {
        let median = bench_support::stats::Series::of(t.clone()).median;
        section.fact(format!("{name}: MB/s (median)"), megabytes / median, "MB/s");
        section.fact(
            format!("{name}: rows/s (median)"),
            file.rows as f64 / median,
            "rows/s",
        );
    }
    section.note(
        "The parser reads the file twice (pass 1: is it UTF-8; pass 2, on two threads: \
         one splits the records and follows the quoting, the other validates and \
         normalises every row and fingerprints the certifications of educators it does \
         not keep); the csv reference only splits records, on one thread. The issue sets \
         no target here: the ratios are the finding.",
    );
    section.load = Some((start_load, Load::now()));
    section
}

fn parse(path: &Path, keep: bool, expected_rows: u64) {
    let input = std::fs::File::open(path).expect("open the statewide file");
    let parsed = alis_file::parse(input, &ParseSettings::default(), |_, _| keep)
        .expect("the sample file parses");
    assert_eq!(parsed.data_rows, expected_rows);
    assert!(parsed.invalid_rows.is_empty());
    assert_eq!(parsed.educators.is_empty(), !keep);
}

fn csv_records(path: &Path, expected_rows: u64) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .expect("open the statewide file");
    let mut record = csv::ByteRecord::new();
    let mut records = 0u64;
    while reader.read_byte_record(&mut record).expect("read") {
        records += 1;
    }
    assert_eq!(records, expected_rows + 1);
}

fn wc_lines(path: &Path, expected_rows: u64) {
    let mut command = Command::new("wc");
    command.arg("-l").arg(path);
    let out = process::run(command, &[0]).stdout;
    let lines: u64 = out
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("wc -l prints a count");
    assert_eq!(lines, expected_rows + 1);
}
