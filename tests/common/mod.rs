//! Helpers for import scenarios: a small district written straight into the ERP
//! tables, ALiS files built row by row, an import call, and table snapshots.

#![allow(dead_code)]

use std::io::Cursor;

use alis_import::import::summary::{FileInfo, Summary};
use alis_import::import::{ImportRequest, ImportSettings, run_import};
use alis_import::store::{NewRun, RunOutcome, RunStatus, Store};

use crate::support::{Backend, Guard};

/// A migrated, empty database of one backend.
pub struct TestStore {
    pub store: Store,
    pub backend: Backend,
    _guard: Guard,
}

impl TestStore {
    pub async fn new(backend: Backend) -> Self {
        let (url, guard) = backend.fresh_database_url().await;
        let store = Store::connect(&url)
            .await
            .expect("connect to the test database");
        store
            .migrate(true)
            .await
            .expect("migrate the test database");
        Self {
            store,
            backend,
            _guard: guard,
        }
    }

    /// Runs SQL written for both backends (no placeholders).
    pub async fn execute(&self, sql: &str) {
        let safe = || sqlx::AssertSqlSafe(sql.to_owned());
        match &self.store {
            Store::Postgres(pool) => sqlx::raw_sql(safe()).execute(pool).await.map(|_| ()),
            Store::Sqlite(pool) => sqlx::raw_sql(safe()).execute(pool).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
    }

    /// Rows of a query as text columns joined by `|` (`∅` for NULL), in query order.
    pub async fn rows(&self, sql: &str) -> Vec<String> {
        use sqlx::Row;
        let safe = || sqlx::AssertSqlSafe(sql.to_owned());
        let rows: Vec<String> = match &self.store {
            Store::Postgres(pool) => sqlx::query(safe()).fetch_all(pool).await.map(|rows| {
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| r.get::<Option<String>, _>(i).unwrap_or_else(|| "∅".into()))
                            .collect::<Vec<_>>()
                            .join("|")
                    })
                    .collect()
            }),
            Store::Sqlite(pool) => sqlx::query(safe()).fetch_all(pool).await.map(|rows| {
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| r.get::<Option<String>, _>(i).unwrap_or_else(|| "∅".into()))
                            .collect::<Vec<_>>()
                            .join("|")
                    })
                    .collect()
            }),
        }
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
        rows
    }

    /// Everything the import may touch, row by row, every column, as text.
    pub async fn snapshot(&self) -> Vec<String> {
        let mut all = Vec::new();
        for (table, sql) in [
            (
                "certifications",
                "select cast(id as text), cast(employee_id as text), license_number, \
                 license_type, status, cast(issue_date as text), cast(expiration_date as text), \
                 source, cast(import_run_id as text) from certifications order by id",
            ),
            (
                "endorsements",
                "select cast(id as text), cast(certification_id as text), \
                 cast(employee_id as text), code, description, grade_level, \
                 cast(issue_date as text), cast(expiration_date as text), limits, \
                 cast(is_primary as text), source, cast(import_run_id as text) \
                 from endorsements order by id",
            ),
            (
                "endorsement_codes",
                "select code, description from endorsement_codes order by code",
            ),
            (
                "employees",
                "select cast(id as text), employee_number, state_staff_id, last_name, \
                 first_name, status, cast(job_class_id as text) from employees order by id",
            ),
        ] {
            all.extend(
                self.rows(sql)
                    .await
                    .into_iter()
                    .map(|r| format!("{table}: {r}")),
            );
        }
        all
    }

    /// Certifications of one employee as `number|type|status|issue|expiration|source`.
    pub async fn certifications_of(&self, employee_number: &str) -> Vec<String> {
        self.rows(&format!(
            "select c.license_number, c.license_type, c.status, cast(c.issue_date as text), \
             cast(c.expiration_date as text), c.source from certifications c \
             join employees e on e.id = c.employee_id \
             where e.employee_number = '{employee_number}' \
             order by c.license_number, c.license_type"
        ))
        .await
    }

    /// Endorsements of one employee as `licence|code|level|description|issue|expiration|limits|primary`.
    pub async fn endorsements_of(&self, employee_number: &str) -> Vec<String> {
        self.rows(&format!(
            "select c.license_number, n.code, n.grade_level, n.description, \
             cast(n.issue_date as text), cast(n.expiration_date as text), n.limits, \
             case when n.is_primary then 'primary' else '-' end \
             from endorsements n join certifications c on c.id = n.certification_id \
             join employees e on e.id = n.employee_id \
             where e.employee_number = '{employee_number}' \
             order by c.license_number, n.code, n.grade_level"
        ))
        .await
    }

    /// Imports `csv` as a run of its own and records the outcome, like `import-file`.
    pub async fn import(&self, csv: &str, options: ImportOptions) -> Summary {
        self.try_import(csv, options).await.expect("import ran")
    }

    pub async fn try_import(
        &self,
        csv: &str,
        options: ImportOptions,
    ) -> Result<Summary, alis_import::import::ImportError> {
        let run_id = self
            .store
            .start_run(&NewRun {
                task_id: None,
                run_by: "test".into(),
                dry_run: options.dry_run,
                force: options.force,
            })
            .await
            .expect("start run");
        let request = ImportRequest {
            run_id,
            run_date: jiff::civil::date(2026, 11, 30),
            dry_run: options.dry_run,
            force: options.force,
            file: FileInfo {
                name: "Curr_Lic_Eds_End_Limits_20261130.csv".into(),
                sha256: "test".into(),
                from_cache: false,
            },
        };
        let input = Cursor::new(csv.as_bytes().to_vec());
        let result = run_import(
            &self.store,
            input,
            &request,
            &options.settings,
            &|_: alis_import::import::Phase| {},
        )
        .await;
        let outcome = match &result {
            Ok(summary) if summary.rejected.is_none() => RunOutcome {
                status: RunStatus::Succeeded,
                error: None,
            },
            Ok(summary) => RunOutcome {
                status: RunStatus::Failed,
                error: summary.rejected.clone(),
            },
            Err(e) => RunOutcome {
                status: RunStatus::Failed,
                error: Some(e.to_string()),
            },
        };
        let finished = self
            .store
            .finish_run(run_id, &outcome, result.as_ref().ok())
            .await
            .expect("finish run");
        assert!(
            finished,
            "run {run_id} was still in progress when it finished"
        );
        result
    }
}

/// Flags of one test import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub dry_run: bool,
    pub force: bool,
    pub settings: ImportSettings,
}

impl ImportOptions {
    pub fn dry_run() -> Self {
        Self {
            dry_run: true,
            ..Self::default()
        }
    }
    pub fn forced() -> Self {
        Self {
            force: true,
            ..Self::default()
        }
    }
}

/// The standard ALiS header.
pub const HEADER: &str = "EducatorID,LastName,FirstName,LicenseNumber,LicenseType,LicenseStatus,\
LicenseIssueDate,LicenseExpirationDate,EndorsementCode,EndorsementDescription,EndorsementLevel,\
EndorsementIssueDate,EndorsementExpirationDate,Limits";

/// A file from its data lines (header added).
pub fn file(lines: &[&str]) -> String {
    let mut csv = String::from(HEADER);
    for line in lines {
        csv.push('\n');
        csv.push_str(line);
    }
    csv.push('\n');
    csv
}

/// SQL that writes the standard job classes: `TCH` needs a licence, `CUST` does not.
pub const JOB_CLASSES: &str = "insert into job_classes (id, code, description, certification_required) \
    values (1, 'TCH', 'Teacher', true), (2, 'CUST', 'Custodian', false);";

/// SQL for one employee row.
pub fn employee_sql(
    id: i64,
    staff_id: Option<&str>,
    last: &str,
    first: &str,
    status: &str,
    job_class: i64,
) -> String {
    let staff = staff_id.map_or("null".to_owned(), |s| format!("'{s}'"));
    format!(
        "insert into employees (id, employee_number, state_staff_id, last_name, first_name, \
         status, job_class_id) values ({id}, 'E{id:05}', {staff}, '{}', '{}', '{status}', \
         {job_class});",
        last.replace('\'', "''"),
        first.replace('\'', "''")
    )
}

/// SQL for a manual certification (with one endorsement) owned by an employee.
pub fn manual_certification_sql(
    cert_id: i64,
    employee_id: i64,
    number: &str,
    primary: &str,
) -> String {
    format!(
        "insert into certifications (id, employee_id, license_number, license_type, status, \
         issue_date, expiration_date, source) values ({cert_id}, {employee_id}, '{number}', \
         'Provisional', 'ACT', '2020-01-01', '2030-06-30', 'MANUAL'); \
         insert into endorsements (certification_id, employee_id, code, description, \
         grade_level, is_primary, source) values ({cert_id}, {employee_id}, '{primary}', \
         'Manual entry', '7-12', true, 'MANUAL');"
    )
}

/// Generates the same scenario test for PostgreSQL and SQLite.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::support::Backend::Postgres).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::support::Backend::Sqlite).await;
                }
            )*
        }
    };
}

pub mod app;
pub mod lock;
pub mod snapshot;

/// Certification and endorsement records written by one run.
pub async fn records_written_by(store: &Store, run_id: i64) -> i64 {
    const SQL: &str = "select (select count(*) from certifications where import_run_id = $1) \
        + (select count(*) from endorsements where import_run_id = $1)";
    match store {
        Store::Postgres(pool) => sqlx::query_scalar(SQL).bind(run_id).fetch_one(pool).await,
        Store::Sqlite(pool) => sqlx::query_scalar(SQL).bind(run_id).fetch_one(pool).await,
    }
    .expect("count records")
}
