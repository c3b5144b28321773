//! Benchmark 1: the import on PostgreSQL against `psql \copy` of the same rows.

use crate::bench_support::data;
use crate::bench_support::machine::Load;
use crate::bench_support::postgres::PostgresServer;
use crate::bench_support::psql::Psql;
use crate::bench_support::results::{Comparison, Section, thousands};
use crate::bench_support::stats::interleave;
use crate::{Args, Workload, import_file, imported, phases, rss_by_file_size};

/// Runs benchmark 1.
pub fn run(args: &Args, workload: &Workload, runtime: &tokio::runtime::Runtime) -> Section {
    let start_load = Load::now();
    let mut section = Section::new(
        "postgres_import",
        "1. Bulk import vs. psql \\copy (PostgreSQL)",
    );
    eprintln!("PostgreSQL: starting a server and seeding the district…");
    let server = PostgresServer::get();
    let url = runtime.block_on(server.create_database());
    runtime.block_on(data::seed_database(&url, &workload.district));
    let psql = Psql::new(server.port(), &url);
    let full = workload.full();

    eprintln!("PostgreSQL: warm-up import of {} rows…", full.rows);
    let first = import_file(&url, full, true);
    let (certifications, endorsements) = imported(&first);
    assert_eq!(psql.count("certifications"), certifications);
    assert_eq!(psql.count("endorsements"), endorsements);
    let script = psql.export_reference(&args.work, "pg");

    eprintln!("PostgreSQL: peak RSS by file size…");
    rss_by_file_size(&mut section, workload, |file| {
        psql.maintain();
        import_file(&url, file, false)
    });
    psql.maintain();
    phases::breakdown(&mut section, &url, full);

    eprintln!(
        "PostgreSQL: {} interleaved rounds, import-file vs psql \\copy…",
        args.rounds
    );
    let mut peaks = Vec::new();
    let (ours, reference) = interleave(
        args.rounds,
        |_| {
            psql.maintain();
            let finished = import_file(&url, full, false);
            peaks.push(finished.max_rss_mb());
            finished.secs()
        },
        |_| {
            psql.maintain();
            psql.load(&script).secs()
        },
    );
    assert_eq!(psql.count("certifications"), certifications);
    assert_eq!(psql.count("endorsements"), endorsements);

    let comparison = Comparison::new(
        format!(
            "{} rows ({:.0} MB), {} active employees → {} certifications + {} endorsements",
            thousands(full.rows),
            full.bytes as f64 / 1e6,
            thousands(data::active(&workload.district) as u64),
            thousands(certifications),
            thousands(endorsements)
        ),
        "s",
        ("alis-import import-file", ours),
        ("psql -1: delete + \\copy ×2", reference),
    );
    let records = (certifications + endorsements) as f64;
    section.fact(
        "import: file rows per second (median)",
        full.rows as f64 / comparison.ours.median,
        "rows/s",
    );
    section.fact(
        "import: database records written per second (median)",
        records / comparison.ours.median,
        "records/s",
    );
    section.fact(
        "psql \\copy: database records written per second (median)",
        records / comparison.reference.median,
        "records/s",
    );
    section.fact(
        "import: peak RSS over the timed rounds (max)",
        peaks.iter().copied().fold(0.0, f64::max),
        "MB",
    );
    section.check(
        "import / psql \\copy ≤ 1.5× (median of per-round ratios)",
        comparison.ratio.median,
        1.5,
        true,
    );
    section.comparisons.push(comparison);

    eprintln!(
        "PostgreSQL: {} interleaved rounds, run_import in-process vs psql \\copy…",
        args.rounds
    );
    let (in_process, reference) = interleave(
        args.rounds,
        |_| {
            psql.maintain();
            phases::import_secs(&url, full)
        },
        |_| {
            psql.maintain();
            psql.load(&script).secs()
        },
    );
    assert_eq!(psql.count("certifications"), certifications);
    let scope = Comparison::new(
        "the same import in-process, as the issue lists it: parse, match, guard, the \
         one-transaction replace, summary (no process start, no run bookkeeping, no PDF)",
        "s",
        ("run_import (in a child process, timed inside)", in_process),
        ("psql -1: delete + \\copy ×2", reference),
    );
    section.check(
        "run_import alone / psql \\copy ≤ 1.5× (median of per-round ratios)",
        scope.ratio.median,
        1.5,
        true,
    );
    section.comparisons.push(scope);
    section.note(format!(
        "The district is {} employees over the file's first {} educators, so every \
         file size matches the same employees; the largest file's other rows are \
         educators employed elsewhere (parsed, checked, not imported).",
        workload.district.employees.len(),
        workload.files[0].educators
    ));
    section.note(
        "Server started by the benchmark (tests/support/postgres.rs): fsync, \
         synchronous_commit and full_page_writes off, for both sides.",
    );
    section.load = Some((start_load, Load::now()));
    section
}
