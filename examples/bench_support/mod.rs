//! What the benchmark examples share: statistics over interleaved rounds, the
//! results' shape (JSON fragments that `bench_report` merges), timed child processes
//! with their peak RSS, generated data, and a PostgreSQL server of their own.
//!
//! Included by each `examples/bench_*.rs` with `#[path = "bench_support/mod.rs"]`; each
//! example uses only part of it.
//!
//! # Method
//!
//! The machine is shared and noisy, so no absolute time is a result. Every benchmark
//! runs the service and its reference in the same process run, on the same data,
//! interleaved (A, B, A, B, …), and reports the ratio: the median of the per-pair
//! ratios, with their min and max, beside each side's median, min and max.

#![allow(dead_code)]

pub mod data;
pub mod machine;
pub mod process;
pub mod psql;
pub mod results;
pub mod stats;

#[path = "../../tests/support/postgres.rs"]
pub mod postgres;

use std::path::PathBuf;

/// Where the PostgreSQL harness writes its server log (it asks its parent module).
fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("ALIS_BENCH_WORK")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("alis-bench"));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// The release binary under test: `ALIS_BENCH_BINARY`, else `alis-import` beside this
/// example's own directory (`target/release/examples/..`).
pub fn service_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ALIS_BENCH_BINARY") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("own path");
    let release = exe
        .parent()
        .and_then(|examples| examples.parent())
        .expect("target/release/examples/<bench>");
    let binary = release.join("alis-import");
    assert!(
        binary.is_file(),
        "{} is missing: build it with `cargo build --release --bin alis-import`",
        binary.display()
    );
    binary
}
