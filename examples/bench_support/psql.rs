//! `psql` on a database of the benchmark's PostgreSQL server, and the reference load:
//! the import's delete, then `\copy` of the rows an import wrote, in one transaction.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::{self, Finished};

/// Columns the reference loads: what the import writes (ids of endorsements, and the
/// timestamps, are the tables' defaults on both sides).
const CERTIFICATION_COLUMNS: &str = "id, employee_id, license_number, license_type, status, \
    issue_date, expiration_date, source, import_run_id";
const ENDORSEMENT_COLUMNS: &str = "certification_id, employee_id, code, description, \
    grade_level, issue_date, expiration_date, limits, is_primary, source, import_run_id";

/// The import's delete (src/store/erp.rs), word for word.
pub const DELETE: &str = "delete from endorsements where employee_id in \
    (select id from employees where status = 'ACTIVE');\n\
    delete from certifications where employee_id in \
    (select id from employees where status = 'ACTIVE');\n";

/// `psql` on one database.
pub struct Psql {
    port: u16,
    database: String,
}

impl Psql {
    /// `psql` on the database of `url` (`postgres://…@127.0.0.1:PORT/NAME`).
    pub fn new(port: u16, url: &str) -> Self {
        Self {
            port,
            database: url.rsplit('/').next().expect("database name").to_owned(),
        }
    }

    /// A `psql` command line, ready for more arguments.
    pub fn command(&self) -> Command {
        let mut command = Command::new("psql");
        command
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d"])
            .arg(&self.database);
        command
    }

    /// Runs each of `commands` (`-c`, each its own transaction).
    pub fn run(&self, commands: &[&str]) -> Finished {
        let mut command = self.command();
        for c in commands {
            command.args(["-c", c]);
        }
        process::run(command, &[0])
    }

    /// `select count(*) from table`.
    pub fn count(&self, table: &str) -> u64 {
        let mut command = self.command();
        command.args(["-At", "-c", &format!("select count(*) from {table}")]);
        let out = process::run(command, &[0]).stdout;
        out.trim().parse().expect("a count")
    }

    /// Vacuums the two tables and checkpoints: untimed, before every round.
    pub fn maintain(&self) {
        self.run(&["vacuum analyze certifications, endorsements", "checkpoint"]);
        process::settle();
    }

    /// Exports the rows in the tables now (an import's) into `work` and returns the
    /// reference's script: the import's delete, then `\copy` of both tables.
    pub fn export_reference(&self, work: &Path, prefix: &str) -> PathBuf {
        let certifications = work.join(format!("{prefix}-certifications.csv"));
        let endorsements = work.join(format!("{prefix}-endorsements.csv"));
        self.run(&[
            &format!(
                "\\copy (select {CERTIFICATION_COLUMNS} from certifications order by id) \
                 to '{}' with (format csv)",
                certifications.display()
            ),
            &format!(
                "\\copy (select {ENDORSEMENT_COLUMNS} from endorsements order by id) \
                 to '{}' with (format csv)",
                endorsements.display()
            ),
        ]);
        let script = work.join(format!("{prefix}-reference.sql"));
        std::fs::write(
            &script,
            format!(
                "{DELETE}\\copy certifications ({CERTIFICATION_COLUMNS}) from '{}' \
                 with (format csv)\n\\copy endorsements ({ENDORSEMENT_COLUMNS}) from '{}' \
                 with (format csv)\n",
                certifications.display(),
                endorsements.display()
            ),
        )
        .expect("write the reference script");
        script
    }

    /// Runs the reference script in one transaction (`psql -1 -f`).
    pub fn load(&self, script: &Path) -> Finished {
        let mut command = self.command();
        command.args(["-1", "-f"]).arg(script);
        process::run(command, &[0])
    }
}
