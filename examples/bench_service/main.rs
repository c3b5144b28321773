//! Benchmarks 1 (its normal-district part: RunNow end to end) and 4 (RPC under load)
//! of issue 8, against a release `alis-import` server on PostgreSQL.
//!
//! ```text
//! cargo build --release --bin alis-import --example bench_service
//! target/release/examples/bench_service [--quick] [--rounds N] [--load-secs S]
//!     [--load-rounds N] [--only normal|load] [--work DIR] [--out FRAGMENT.json]
//! ```
//!
//! The server is the release binary as a child process (`ALIS_BENCH_BINARY`, default
//! `target/release/alis-import`), on a PostgreSQL server this process starts, with the
//! statewide file in its inbox folder. The load generator runs here, on the same two
//! cores: both sides of each ratio pay for it alike.

#[path = "../bench_support/mod.rs"]
mod bench_support;
mod load;
mod lock_load;
mod run_now;
mod server;

use std::path::PathBuf;
use std::time::Duration;

use bench_support::data;
use bench_support::machine::Load;
use bench_support::postgres::PostgresServer;
use bench_support::psql::Psql;
use bench_support::results::{Section, write_fragment};
use server::Server;

struct Args {
    quick: bool,
    rounds: usize,
    load_secs: u64,
    load_rounds: usize,
    work: PathBuf,
    out: PathBuf,
    /// Run only `normal` (1b) or `load` (4).
    only: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        quick: false,
        rounds: 5,
        load_secs: 10,
        load_rounds: 3,
        work: std::env::temp_dir().join("alis-bench"),
        out: PathBuf::from("bench-service.json"),
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => {
                args.quick = true;
                args.rounds = 2;
                args.load_secs = 2;
                args.load_rounds = 1;
            }
            "--rounds" => args.rounds = value().parse().expect("--rounds N"),
            "--load-secs" => args.load_secs = value().parse().expect("--load-secs S"),
            "--load-rounds" => args.load_rounds = value().parse().expect("--load-rounds N"),
            "--work" => args.work = PathBuf::from(value()),
            "--out" => args.out = PathBuf::from(value()),
            "--only" => args.only = Some(value()),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let work = args.work.join("service");
    let _ = std::fs::remove_dir_all(&work);
    let postgres = PostgresServer::get();
    let wanted = |name: &str| args.only.as_deref().is_none_or(|only| only == name);
    let mut sections = Vec::new();
    if wanted("normal") {
        sections.push(normal_district(&args, postgres, &work.join("normal")).await);
    }
    if wanted("load") {
        sections.push(lock_under_load(&args, postgres, &work.join("load")).await);
    }
    write_fragment(&args.out, &sections);
}

/// A server on a fresh database seeded with `employees` over the educators of a
/// statewide file of about `rows` rows, which is in its inbox.
async fn serve(
    postgres: &PostgresServer,
    work: &std::path::Path,
    rows: u64,
    employees: usize,
) -> (Server, Psql, data::StatewideFile) {
    let inbox = work.join("inbox");
    std::fs::create_dir_all(&inbox).expect("create the inbox");
    let educators = data::educators_for_rows(rows);
    let file = data::statewide_file(&inbox, educators, true);
    let url = postgres.create_database().await;
    data::seed_database(&url, &data::district(educators, employees)).await;
    let psql = Psql::new(postgres.port(), &url);
    let server = Server::start(&url, &inbox, work).await;
    (server, psql, file)
}

/// Benchmark 1b: the normal district through RunNow.
async fn normal_district(
    args: &Args,
    postgres: &PostgresServer,
    work: &std::path::Path,
) -> Section {
    let start_load = Load::now();
    let (rows, employees) = if args.quick {
        (20_000, 800)
    } else {
        (50_000, 2_000)
    };
    let (server, psql, file) = serve(postgres, work, rows, employees).await;
    let mut section = Section::new(
        "runnow_normal",
        "1b. Normal district end to end through RunNow (PostgreSQL)",
    );
    eprintln!(
        "RunNow: {} rows, {employees} employees, {} interleaved rounds against psql…",
        file.rows, args.rounds
    );
    run_now::compare(
        &mut section,
        &server,
        &psql,
        work,
        (file.rows, employees),
        args.rounds,
    )
    .await;
    section.load = Some((start_load, Load::now()));
    section
}

/// Benchmark 4, on a server with the large district, so that an import holds the lock
/// for seconds.
async fn lock_under_load(
    args: &Args,
    postgres: &PostgresServer,
    work: &std::path::Path,
) -> Section {
    let start_load = Load::now();
    let (rows, employees) = if args.quick {
        (100_000, 10_500)
    } else {
        (1_000_000, 105_000)
    };
    let (server, _psql, file) = serve(postgres, work, rows, employees).await;
    let mut section = Section::new("lock_rpc_load", "4. Lock RPCs under load");
    let records = format!(
        "the records of {} employees from a {}-row file",
        bench_support::results::thousands(employees as u64),
        bench_support::results::thousands(file.rows)
    );
    lock_load::run(
        &mut section,
        &server,
        Duration::from_secs(args.load_secs),
        args.load_rounds,
        &records,
    )
    .await;
    section.load = Some((start_load, Load::now()));
    section
}
