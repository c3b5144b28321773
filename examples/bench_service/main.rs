//! Benchmarks 1 (its normal-district part: RunNow end to end) and 4 (RPC under load)
//! of issue 8, against a release `alis-import` server on PostgreSQL.
//!
//! ```text
//! cargo build --release --bin alis-import --example bench_service
//! target/release/examples/bench_service [--quick] [--rounds N] [--load-secs S]
//!     [--load-rounds N] [--work DIR] [--out FRAGMENT.json]
//! ```
//!
//! The server is the release binary as a child process (`ALIS_BENCH_BINARY`, default
//! `target/release/alis-import`), on a PostgreSQL server this process starts, with the
//! statewide file in its inbox folder. The load generator runs here, on the same two
//! cores: both sides of each ratio pay for it alike.

#[path = "../bench_support/mod.rs"]
mod bench_support;
mod load;
mod run_now;
mod server;

use std::path::PathBuf;
use std::time::Duration;

use bench_support::data;
use bench_support::machine::Load;
use bench_support::postgres::PostgresServer;
use bench_support::psql::Psql;
use bench_support::results::{Section, write_fragment};
use load::Rpc;
use server::Server;

/// Concurrent clients of the load benchmark.
const CLIENTS: usize = 64;

struct Args {
    quick: bool,
    rounds: usize,
    load_secs: u64,
    load_rounds: usize,
    work: PathBuf,
    out: PathBuf,
}

fn parse_args() -> Args {
    let mut args = Args {
        quick: false,
        rounds: 5,
        load_secs: 10,
        load_rounds: 3,
        work: std::env::temp_dir().join("alis-bench"),
        out: PathBuf::from("bench-service.json"),
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
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let work = args.work.join("service");
    let inbox = work.join("inbox");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&inbox).expect("create the inbox");

    let rows = if args.quick { 20_000 } else { 50_000 };
    let employees = if args.quick { 800 } else { 2_000 };
    let educators = data::educators_for_rows(rows);
    let file = data::statewide_file(&inbox, educators, true);
    let district = data::district(educators, employees);

    let server_pg = PostgresServer::get();
    let url = server_pg.create_database().await;
    data::seed_database(&url, &district).await;
    let psql = Psql::new(server_pg.port(), &url);
    let server = Server::start(&url, &inbox, &work).await;

    let start_load = Load::now();
    let mut normal = Section::new(
        "runnow_normal",
        "1b. Normal district end to end through RunNow (PostgreSQL)",
    );
    eprintln!(
        "RunNow: {} rows, {employees} employees, {} interleaved rounds against psql…",
        file.rows, args.rounds
    );
    run_now::compare(
        &mut normal,
        &server,
        &psql,
        &work,
        (file.rows, employees),
        args.rounds,
    )
    .await;
    normal.load = Some((start_load, Load::now()));

    let lock = load_section(&args, &server).await;
    write_fragment(&args.out, &[normal, lock]);
}

/// Benchmark 4: the lock RPCs against the health check, same clients, same server.
async fn load_section(args: &Args, server: &Server) -> Section {
    let start_load = Load::now();
    let mut section = Section::new("lock_rpc_load", "4. Lock RPCs under load");
    let mut channels = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        channels.push(server.channel().await);
    }
    let duration = Duration::from_secs(args.load_secs);
    eprintln!(
        "load: {CLIENTS} clients, {} s per phase, {} rounds…",
        args.load_secs, args.load_rounds
    );
    let mut health = Vec::new();
    for round in 0..args.load_rounds {
        let outcome = load::drive(&channels, Rpc::Health, duration, std::future::pending()).await;
        let (p50, p99) = outcome.ok_p50_p99_ms();
        eprintln!(
            "  round {}: Health/Check {:.0} calls/s, p50 {p50:.2} ms, p99 {p99:.2} ms, {} errors",
            round + 1,
            outcome.throughput(),
            outcome.errors
        );
        assert_eq!(outcome.errors, 0, "health checks failed");
        health.push(outcome);
    }
    let throughput: Vec<f64> = health.iter().map(load::Outcome::throughput).collect();
    let p50: Vec<f64> = health.iter().map(|o| o.ok_p50_p99_ms().0).collect();
    let p99: Vec<f64> = health.iter().map(|o| o.ok_p50_p99_ms().1).collect();
    let median = |v: &[f64]| bench_support::stats::Series::of(v.to_vec()).median;
    section.fact(
        "Health/Check: calls/s (median of rounds)",
        median(&throughput),
        "calls/s",
    );
    section.fact(
        "Health/Check: p50 latency (median of rounds)",
        median(&p50),
        "ms",
    );
    section.fact(
        "Health/Check: p99 latency (median of rounds)",
        median(&p99),
        "ms",
    );
    section.note(
        "PENDING: AcquireCertLock/ReleaseCertLock are on branch `lock`, not yet on main; \
         the lock side of this benchmark (throughput ratio ≥ 0.5×, p99 ≤ 10 ms, and the \
         refusals while an import runs) is added when it lands.",
    );
    section.load = Some((start_load, Load::now()));
    section
}
