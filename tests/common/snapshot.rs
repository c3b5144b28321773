//! Whole-table snapshots for the fault tests: every column of every row, as text, in a
//! stable order, so that "exactly as before" and "exactly as after" are comparisons of
//! two vectors.

use alis_import::store::Store;
use sqlx::Row;

/// A table's name and the query that reads all of it, every column cast to text.
pub type Table = (&'static str, &'static str);

pub const CERTIFICATIONS: Table = (
    "certifications",
    "select cast(id as text), cast(employee_id as text), license_number, license_type, \
     status, cast(issue_date as text), cast(expiration_date as text), source, \
     cast(import_run_id as text) from certifications order by id",
);

pub const ENDORSEMENTS: Table = (
    "endorsements",
    "select cast(id as text), cast(certification_id as text), cast(employee_id as text), \
     code, description, grade_level, cast(issue_date as text), \
     cast(expiration_date as text), limits, cast(is_primary as text), source, \
     cast(import_run_id as text) from endorsements order by id",
);

pub const ENDORSEMENT_CODES: Table = (
    "endorsement_codes",
    "select code, description from endorsement_codes order by code",
);

pub const EMPLOYEES: Table = (
    "employees",
    "select cast(id as text), employee_number, state_staff_id, last_name, first_name, \
     status, cast(job_class_id as text) from employees order by id",
);

/// Everything an import writes.
pub const IMPORTED: [Table; 3] = [CERTIFICATIONS, ENDORSEMENTS, ENDORSEMENT_CODES];

/// Each row of `tables` as `table: value|value|…`, NULL as `∅`.
pub async fn rows(store: &Store, tables: &[Table]) -> Vec<String> {
    let join = |values: Vec<Option<String>>| {
        values
            .into_iter()
            .map(|v| v.unwrap_or_else(|| "∅".into()))
            .collect::<Vec<_>>()
            .join("|")
    };
    let mut all = Vec::new();
    for &(table, sql) in tables {
        let rows: Vec<String> = match store {
            Store::Postgres(pool) => sqlx::query(sql)
                .fetch_all(pool)
                .await
                .expect(table)
                .iter()
                .map(|r| join((0..r.len()).map(|i| r.get(i)).collect()))
                .collect(),
            Store::Sqlite(pool) => sqlx::query(sql)
                .fetch_all(pool)
                .await
                .expect(table)
                .iter()
                .map(|r| join((0..r.len()).map(|i| r.get(i)).collect()))
                .collect(),
        };
        all.extend(rows.into_iter().map(|r| format!("{table}: {r}")));
    }
    all
}
