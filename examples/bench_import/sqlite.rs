//! Benchmark 2: the import on the embedded SQLite backend against the `sqlite3`
//! shell's `.import` of the same rows.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bench_support::data;
use crate::bench_support::machine::Load;
use crate::bench_support::process::{self, Finished};
use crate::bench_support::results::{Comparison, Section, thousands};
use crate::bench_support::stats::interleave;
use crate::{Args, Workload, import_file, imported, phases, rss_by_file_size};

/// The import's delete (src/store/erp.rs), word for word.
const DELETE: &str = "delete from endorsements where employee_id in \
    (select id from employees where status = 'ACTIVE');\n\
    delete from certifications where employee_id in \
    (select id from employees where status = 'ACTIVE');\n";

/// The `sqlite3` shell on the benchmark's database file.
struct Shell {
    db: PathBuf,
}

impl Shell {
    /// Runs each of `commands` (SQL or one dot-command each) in one shell.
    fn run(&self, commands: &[&str]) -> Finished {
        let mut command = Command::new("sqlite3");
        command
            .args(["-bail", "-batch"])
            .arg(&self.db)
            .args(commands);
        process::run(command, &[0])
    }

    fn count(&self, table: &str) -> u64 {
        self.run(&[&format!("select count(*) from {table}")])
            .stdout
            .trim()
            .parse()
            .expect("a count")
    }

    /// Checkpoints the WAL into the database: untimed, before every round.
    fn maintain(&self) {
        self.run(&["pragma wal_checkpoint(truncate)"]);
        process::settle();
    }
}

/// Runs benchmark 2.
pub fn run(args: &Args, workload: &Workload, runtime: &tokio::runtime::Runtime) -> Section {
    let start_load = Load::now();
    let mut section = Section::new(
        "sqlite_import",
        "2. Bulk import vs. sqlite3 .import (SQLite)",
    );
    let db = args.work.join("bench.sqlite");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let url = format!("sqlite://{}?mode=rwc", db.display());
    eprintln!("SQLite: seeding the district…");
    runtime.block_on(data::seed_database(&url, &workload.district));
    let shell = Shell { db };
    let full = workload.full();

    eprintln!("SQLite: warm-up import of {} rows…", full.rows);
    let first = import_file(&url, full, true);
    let (certifications, endorsements) = imported(&first);
    assert_eq!(shell.count("certifications"), certifications);
    assert_eq!(shell.count("endorsements"), endorsements);
    let script = export_reference(&shell, &args.work);

    eprintln!("SQLite: peak RSS by file size…");
    rss_by_file_size(&mut section, workload, |file| {
        shell.maintain();
        import_file(&url, file, false)
    });
    shell.maintain();
    phases::breakdown(&mut section, &url, full);

    eprintln!(
        "SQLite: {} interleaved rounds, import-file vs sqlite3 .import…",
        args.rounds
    );
    let (ours, reference) = interleave(
        args.rounds,
        |_| {
            shell.maintain();
            import_file(&url, full, false).secs()
        },
        |_| {
            shell.maintain();
            shell.run(&[&format!(".read {}", script.display())]).secs()
        },
    );
    assert_eq!(shell.count("certifications"), certifications);
    assert_eq!(shell.count("endorsements"), endorsements);

    let comparison = Comparison::new(
        format!(
            "{} rows, {} active employees → {} certifications + {} endorsements",
            thousands(full.rows),
            thousands(data::active(&workload.district) as u64),
            thousands(certifications),
            thousands(endorsements)
        ),
        "s",
        ("alis-import import-file", ours),
        (
            "sqlite3: delete + .import --csv ×2, one transaction",
            reference,
        ),
    );
    section.fact(
        "import: file rows per second (median)",
        full.rows as f64 / comparison.ours.median,
        "rows/s",
    );
    let records = (certifications + endorsements) as f64;
    section.fact(
        "sqlite3 .import: database records written per second (median)",
        records / comparison.reference.median,
        "records/s",
    );
    section.check(
        "import / sqlite3 .import ≤ 2× (median of per-round ratios)",
        comparison.ratio.median,
        2.0,
        true,
    );
    section.comparisons.push(comparison);
    section.note(
        "Both sides: the same database file (WAL, as the service opens it), foreign keys \
         on, synchronous FULL (both defaults), one transaction. `.import` loads every \
         column of the exported rows; it reads empty CSV fields as '' where the import \
         writes NULL, which costs it nothing.",
    );
    section.load = Some((start_load, Load::now()));
    section
}

/// Exports the rows the import wrote (every column) and returns the shell script
/// that deletes and reloads them in one transaction.
fn export_reference(shell: &Shell, work: &Path) -> PathBuf {
    let mut files = Vec::new();
    for table in ["certifications", "endorsements"] {
        let path = work.join(format!("sqlite-{table}.csv"));
        shell.run(&[
            ".mode csv",
            ".headers off",
            &format!(".once {}", path.display()),
            &format!("select * from {table} order by id"),
        ]);
        files.push(path);
    }
    let script = work.join("sqlite-reference.sql");
    std::fs::write(
        &script,
        format!(
            "pragma foreign_keys = on;\nbegin;\n{DELETE}\
             .import --csv {} certifications\n.import --csv {} endorsements\ncommit;\n",
            files[0].display(),
            files[1].display()
        ),
    )
    .expect("write the reference script");
    script
}
