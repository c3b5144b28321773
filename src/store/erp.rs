//! The ERP's certification tables: who is active, what they hold, and the replace.

use std::collections::HashSet;

use jiff::civil::Date;
use sqlx::postgres::{PgConnection, PgCopyIn};
use sqlx::{AssertSqlSafe, Postgres, QueryBuilder, Sqlite, Transaction};

use super::{Store, StoreError, lock};
use crate::import::plan::Plan;
use crate::import::records::{ActiveEmployee, Certification, Endorsement};
use crate::import::summary::RecordCounts;
use crate::lock::Fence;

/// What active employees hold now: the mass-deletion guard's baseline and the
/// records a replace deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Holdings {
    /// Active employees holding at least one certification record.
    pub employees_with_certifications: u64,
    /// Certification records of active employees.
    pub certifications: u64,
    /// Endorsement records of active employees.
    pub endorsements: u64,
}

/// Rows per bulk statement on SQLite: well under its limit of 32,766 bound parameters.
/// (PostgreSQL takes the rows through COPY.)
const SQLITE_BATCH: usize = 1_000;

type EmployeeRow = (i64, String, Option<String>, String, String, bool);

impl Store {
    /// The district's active employees with their job class's certification flag.
    pub async fn active_employees(&self) -> Result<Vec<ActiveEmployee>, StoreError> {
        const SQL: &str = "select e.id, e.employee_number, e.state_staff_id, e.last_name, \
            e.first_name, coalesce(j.certification_required, false) \
            from employees e left join job_classes j on j.id = e.job_class_id \
            where e.status = 'ACTIVE' order by e.employee_number";
        let rows: Vec<EmployeeRow> = match self {
            Self::Postgres(pool) => sqlx::query_as(SQL).fetch_all(pool).await?,
            Self::Sqlite(pool) => sqlx::query_as(SQL).fetch_all(pool).await?,
        };
        Ok(rows
            .into_iter()
            .map(
                |(id, employee_number, state_staff_id, last_name, first_name, required)| {
                    ActiveEmployee {
                        id,
                        employee_number,
                        state_staff_id,
                        last_name,
                        first_name,
                        certification_required: required,
                    }
                },
            )
            .collect())
    }

    /// What active employees hold now.
    pub async fn holdings(&self) -> Result<Holdings, StoreError> {
        const SQL: &str = "select \
            (select count(distinct c.employee_id) from certifications c \
                join employees e on e.id = c.employee_id where e.status = 'ACTIVE'), \
            (select count(*) from certifications c \
                join employees e on e.id = c.employee_id where e.status = 'ACTIVE'), \
            (select count(*) from endorsements n \
                join employees e on e.id = n.employee_id where e.status = 'ACTIVE')";
        let (employees, certifications, endorsements): (i64, i64, i64) = match self {
            Self::Postgres(pool) => sqlx::query_as(SQL).fetch_one(pool).await?,
            Self::Sqlite(pool) => sqlx::query_as(SQL).fetch_one(pool).await?,
        };
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(Holdings {
            employees_with_certifications: count(employees),
            certifications: count(certifications),
            endorsements: count(endorsements),
        })
    }

    /// Rules §3 step 3, in ONE transaction: deletes every certification and
    /// endorsement of every active employee, then inserts the plan's records, written
    /// by the fenced run. Either all of it is committed or none of it (an error or a
    /// cancelled future rolls back). Returns the records deleted.
    ///
    /// The transaction begins with the fence check (design §6): under the lock row's
    /// lock, the certification lock must still be held by `fence.run_id` at
    /// `fence.epoch`, and the run still in progress; otherwise nothing is written and
    /// the answer is [`Replace::Fenced`]. It ends by freeing the lock, so the lock is
    /// free exactly when the new data is visible.
    ///
    /// `before_commit` is awaited after the last write, inside the transaction: a
    /// test hook to hold an import mid-replace (production passes a ready future).
    #[tracing::instrument(
        name = "replace",
        skip_all,
        fields(run_id = fence.run_id, epoch = fence.epoch, certifications, endorsements),
        err
    )]
    pub async fn replace_certifications(
        &self,
        fence: &Fence,
        plan: &Plan,
        before_commit: impl Future<Output = ()> + Send,
    ) -> Result<Replace, StoreError> {
        let run_id = fence.run_id;
        match self {
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                if !lock::fence_pg(&mut tx, fence).await? {
                    return Ok(Replace::Fenced);
                }
                let deleted = replace_postgres(&mut tx, run_id, plan).await?;
                lock::free_writing_pg(&mut tx, fence).await?;
                before_commit.await;
                tx.commit().await?;
                Ok(Replace::Replaced(deleted))
            }
            Self::Sqlite(pool) => {
                // IMMEDIATE takes the write lock up front, so neither the run's status
                // nor the id range read below can be raced by another writer.
                let mut tx = pool.begin_with("begin immediate").await?;
                if !lock::fence_sqlite(&mut tx, fence).await? {
                    return Ok(Replace::Fenced);
                }
                let deleted = replace_sqlite(&mut tx, run_id, plan).await?;
                lock::free_writing_sqlite(&mut tx, fence).await?;
                before_commit.await;
                tx.commit().await?;
                Ok(Replace::Replaced(deleted))
            }
        }
    }
}

/// What [`Store::replace_certifications`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// Committed; the records deleted.
    Replaced(RecordCounts),
    /// The run no longer holds the lock at its epoch: nothing was written.
    Fenced,
}

/// A certification row ready to insert: the plan's record, borrowed, and its ids.
struct CertificationRow<'p> {
    id: i64,
    employee_id: i64,
    record: &'p Certification,
}

/// An endorsement row ready to insert. `certification_id` is the certification's
/// position among the plan's until the ids are known.
struct EndorsementRow<'p> {
    certification_id: i64,
    employee_id: i64,
    record: &'p Endorsement,
    is_primary: bool,
}

impl EndorsementRow<'_> {
    /// The limits column: the limits joined with `; `, or NULL for none.
    fn limits(&self) -> Option<String> {
        (!self.record.limits.is_empty()).then(|| self.record.limits.join("; "))
    }
}

/// A date column's text (`YYYY-MM-DD`).
fn date_text(date: Option<Date>) -> Option<String> {
    date.map(|d| d.to_string())
}

/// An employee's primary endorsement before the replace: (employee, code, level).
type PrimaryKey = (i64, String, Option<String>);

/// Flattens the plan into rows with ids starting at `first_id`. An imported
/// endorsement is primary when it has the code and grade level of the employee's
/// previous primary endorsement (design §3.1); one per employee at most.
fn rows<'p>(
    plan: &'p Plan,
    first_id: i64,
    primaries: &HashSet<PrimaryKey>,
) -> (Vec<CertificationRow<'p>>, Vec<EndorsementRow<'p>>) {
    let mut certifications = Vec::with_capacity(plan.certification_count() as usize);
    let mut endorsements = Vec::with_capacity(plan.endorsement_count() as usize);
    let mut has_primary = HashSet::new();
    for (offset, (employee, certification)) in plan.certifications().enumerate() {
        let id = first_id + offset as i64;
        certifications.push(CertificationRow {
            id,
            employee_id: employee.id,
            record: certification,
        });
        for endorsement in &certification.endorsements {
            let key = (
                employee.id,
                endorsement.code.clone(),
                endorsement.grade_level.clone(),
            );
            let is_primary = primaries.contains(&key) && has_primary.insert(employee.id);
            endorsements.push(EndorsementRow {
                certification_id: id,
                employee_id: employee.id,
                record: endorsement,
                is_primary,
            });
        }
    }
    (certifications, endorsements)
}

const SELECT_PRIMARIES: &str = "select n.employee_id, n.code, n.grade_level from endorsements n \
    join employees e on e.id = n.employee_id where e.status = 'ACTIVE' and n.is_primary";
const DELETE_ENDORSEMENTS: &str = "delete from endorsements where employee_id in \
    (select id from employees where status = 'ACTIVE')";
const DELETE_CERTIFICATIONS: &str = "delete from certifications where employee_id in \
    (select id from employees where status = 'ACTIVE')";

fn deleted_counts(certifications: u64, endorsements: u64) -> RecordCounts {
    RecordCounts::new(certifications, endorsements)
}

async fn replace_postgres(
    tx: &mut Transaction<'static, Postgres>,
    run_id: i64,
    plan: &Plan,
) -> Result<RecordCounts, StoreError> {
    let primaries: Vec<PrimaryKey> = sqlx::query_as(SELECT_PRIMARIES)
        .fetch_all(&mut **tx)
        .await?;
    let endorsements_deleted = sqlx::query(DELETE_ENDORSEMENTS)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    let certifications_deleted = sqlx::query(DELETE_CERTIFICATIONS)
        .execute(&mut **tx)
        .await?
        .rows_affected();

    let count = i64::try_from(plan.certification_count()).unwrap_or(i64::MAX);
    // The sequence is looked up once: `nextval(pg_get_serial_sequence(…))` looked it
    // up for every row, 0.2 s of the lock's hold for 100,000 certifications.
    let ids: Vec<i64> = sqlx::query_scalar(
        "with s as materialized \
         (select pg_get_serial_sequence('certifications', 'id')::regclass as seq) \
         select nextval(s.seq) from s, generate_series(1, $1)",
    )
    .bind(count)
    .fetch_all(&mut **tx)
    .await?;
    // Sequence values are increasing but need not be contiguous under concurrency:
    // assign them one by one.
    let (mut certification_rows, mut endorsement_rows) =
        rows(plan, 0, &primaries.into_iter().collect());
    let id_of = |offset: i64| {
        usize::try_from(offset)
            .ok()
            .and_then(|i| ids.get(i))
            .copied()
            .ok_or_else(|| StoreError::Corrupt(format!("no id drawn for certification {offset}")))
    };
    for row in &mut certification_rows {
        row.id = id_of(row.id)?;
    }
    for row in &mut endorsement_rows {
        row.certification_id = id_of(row.certification_id)?;
    }

    let mut copy = CopyText::new(
        tx,
        "copy certifications (id, employee_id, license_number, license_type, status, \
         issue_date, expiration_date, source, import_run_id) from stdin",
    )
    .await?;
    for r in &certification_rows {
        let c = r.record;
        copy.row([
            Field::Int(r.id),
            Field::Int(r.employee_id),
            Field::Text(c.license_number.as_deref()),
            Field::Text(Some(&c.license_type)),
            Field::Text(Some(&c.status_code())),
            Field::Date(c.issue_date),
            Field::Date(c.expiration_date),
            Field::Text(Some("ALIS")),
            Field::Int(run_id),
        ])
        .await?;
    }
    copy.finish().await?;

    let mut copy = CopyText::new(
        tx,
        "copy endorsements (certification_id, employee_id, code, description, \
         grade_level, issue_date, expiration_date, limits, is_primary, source, \
         import_run_id) from stdin",
    )
    .await?;
    for r in &endorsement_rows {
        let e = r.record;
        copy.row([
            Field::Int(r.certification_id),
            Field::Int(r.employee_id),
            Field::Text(Some(&e.code)),
            Field::Text(e.description.as_deref()),
            Field::Text(e.grade_level.as_deref()),
            Field::Date(e.issue_date),
            Field::Date(e.expiration_date),
            Field::Text(r.limits().as_deref()),
            Field::Bool(r.is_primary),
            Field::Text(Some("ALIS")),
            Field::Int(run_id),
        ])
        .await?;
    }
    copy.finish().await?;

    let (codes, descriptions) = new_codes(&endorsement_rows);
    sqlx::query(
        "insert into endorsement_codes (code, description) \
         select code, description from unnest($1::text[], $2::text[]) as t(code, description) \
         on conflict (code) do nothing",
    )
    .bind(codes)
    .bind(descriptions)
    .execute(&mut **tx)
    .await?;

    tracing::Span::current()
        .record("run_id", run_id)
        .record("certifications", certification_rows.len() as i64)
        .record("endorsements", endorsement_rows.len() as i64);
    Ok(deleted_counts(certifications_deleted, endorsements_deleted))
}

/// Each distinct endorsement code once, with the description of its first row.
fn new_codes(rows: &[EndorsementRow<'_>]) -> (Vec<String>, Vec<Option<String>>) {
    let mut seen = HashSet::new();
    rows.iter()
        .filter(|r| seen.insert(r.record.code.as_str()))
        .map(|r| (r.record.code.clone(), r.record.description.clone()))
        .unzip()
}

/// One column value of a row sent with [`CopyText`].
enum Field<'a> {
    Int(i64),
    Bool(bool),
    Text(Option<&'a str>),
    Date(Option<Date>),
}

/// Rows streamed to PostgreSQL's `COPY … FROM STDIN` in its text format, a chunk at a
/// time: the server's own bulk path, without building statements or arrays.
struct CopyText<'c> {
    copy: PgCopyIn<&'c mut PgConnection>,
    buffer: Vec<u8>,
}

impl<'c> CopyText<'c> {
    /// Bytes buffered before a chunk is sent.
    const CHUNK: usize = 1 << 20;

    async fn new(connection: &'c mut PgConnection, statement: &str) -> Result<Self, StoreError> {
        Ok(Self {
            copy: connection.copy_in_raw(statement).await?,
            buffer: Vec::with_capacity(Self::CHUNK + 4096),
        })
    }

    async fn row<const N: usize>(&mut self, fields: [Field<'_>; N]) -> Result<(), StoreError> {
        use std::io::Write as _;
        for (i, field) in fields.into_iter().enumerate() {
            if i > 0 {
                self.buffer.push(b'\t');
            }
            // Writing to a vector cannot fail.
            let _ = match field {
                Field::Int(n) => write!(self.buffer, "{n}"),
                Field::Bool(b) => write!(self.buffer, "{}", if b { 't' } else { 'f' }),
                Field::Date(Some(d)) => write!(self.buffer, "{d}"),
                Field::Text(Some(text)) => {
                    escape_copy_text(&mut self.buffer, text);
                    Ok(())
                }
                Field::Text(None) | Field::Date(None) => write!(self.buffer, "\\N"),
            };
        }
        self.buffer.push(b'\n');
        if self.buffer.len() >= Self::CHUNK {
            self.copy.send(self.buffer.as_slice()).await?;
            self.buffer.clear();
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<u64, StoreError> {
        if !self.buffer.is_empty() {
            self.copy.send(self.buffer.as_slice()).await?;
        }
        Ok(self.copy.finish().await?)
    }
}

/// `text` as a field of COPY's text format: backslash, tab, newline and carriage
/// return escaped with a backslash.
fn escape_copy_text(out: &mut Vec<u8>, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(byte),
        }
    }
}

async fn replace_sqlite(
    tx: &mut Transaction<'static, Sqlite>,
    run_id: i64,
    plan: &Plan,
) -> Result<RecordCounts, StoreError> {
    let primaries: Vec<PrimaryKey> = sqlx::query_as(SELECT_PRIMARIES)
        .fetch_all(&mut **tx)
        .await?;
    let endorsements_deleted = sqlx::query(DELETE_ENDORSEMENTS)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    let certifications_deleted = sqlx::query(DELETE_CERTIFICATIONS)
        .execute(&mut **tx)
        .await?
        .rows_affected();

    // The write lock is ours (BEGIN IMMEDIATE), so ids after the current maximum are
    // free until commit.
    let max_id: i64 = sqlx::query_scalar("select coalesce(max(id), 0) from certifications")
        .fetch_one(&mut **tx)
        .await?;
    let (certification_rows, endorsement_rows) =
        rows(plan, max_id + 1, &primaries.into_iter().collect());

    for chunk in certification_rows.chunks(SQLITE_BATCH) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "insert into certifications (id, employee_id, license_number, license_type, \
             status, issue_date, expiration_date, source, import_run_id) ",
        );
        insert.push_values(chunk, |mut row, r| {
            let c = r.record;
            row.push_bind(r.id)
                .push_bind(r.employee_id)
                .push_bind(c.license_number.as_deref())
                .push_bind(c.license_type.as_str())
                .push_bind(c.status_code())
                .push_bind(date_text(c.issue_date))
                .push_bind(date_text(c.expiration_date))
                .push_bind("ALIS")
                .push_bind(run_id);
        });
        insert.build().persistent(true).execute(&mut **tx).await?;
    }
    for chunk in endorsement_rows.chunks(SQLITE_BATCH) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "insert into endorsements (certification_id, employee_id, code, description, \
             grade_level, issue_date, expiration_date, limits, is_primary, source, \
             import_run_id) ",
        );
        insert.push_values(chunk, |mut row, r| {
            let e = r.record;
            row.push_bind(r.certification_id)
                .push_bind(r.employee_id)
                .push_bind(e.code.as_str())
                .push_bind(e.description.as_deref())
                .push_bind(e.grade_level.as_deref())
                .push_bind(date_text(e.issue_date))
                .push_bind(date_text(e.expiration_date))
                .push_bind(r.limits())
                .push_bind(r.is_primary)
                .push_bind("ALIS")
                .push_bind(run_id);
        });
        insert.build().persistent(true).execute(&mut **tx).await?;
    }
    let (codes, descriptions) = new_codes(&endorsement_rows);
    for (code, description) in codes.iter().zip(&descriptions) {
        sqlx::query(AssertSqlSafe(
            "insert into endorsement_codes (code, description) values ($1, $2) \
             on conflict (code) do nothing",
        ))
        .bind(code)
        .bind(description)
        .execute(&mut **tx)
        .await?;
    }
    tracing::Span::current()
        .record("run_id", run_id)
        .record("certifications", certification_rows.len() as i64)
        .record("endorsements", endorsement_rows.len() as i64);
    Ok(deleted_counts(certifications_deleted, endorsements_deleted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::plan::MatchedEmployee;

    fn endorsement(code: &str, level: &str) -> Endorsement {
        Endorsement {
            code: code.into(),
            description: None,
            grade_level: Some(level.into()),
            issue_date: None,
            expiration_date: None,
            limits: vec!["Limit A".into(), "Limit B".into()],
        }
    }

    #[test]
    fn primary_endorsement_is_marked_again_once_per_employee() {
        let employee = ActiveEmployee {
            id: 7,
            employee_number: "E7".into(),
            state_staff_id: None,
            last_name: "L".into(),
            first_name: "F".into(),
            certification_required: true,
        };
        let certification = |endorsements| Certification {
            license_number: None,
            license_type: "Provisional".into(),
            status: "ACT".into(),
            issue_date: None,
            expiration_date: None,
            endorsements,
        };
        let plan = Plan {
            matched: vec![MatchedEmployee {
                employee,
                certifications: vec![
                    certification(vec![
                        endorsement("1-01", "K-6"),
                        endorsement("2-05", "7-12"),
                    ]),
                    certification(vec![endorsement("2-05", "7-12")]),
                ],
            }],
            ..Plan::default()
        };
        let primaries = HashSet::from([(7, "2-05".to_owned(), Some("7-12".to_owned()))]);
        let (certifications, endorsements) = rows(&plan, 100, &primaries);
        assert_eq!(
            certifications.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![100, 101]
        );
        let flags: Vec<bool> = endorsements.iter().map(|e| e.is_primary).collect();
        assert_eq!(flags, vec![false, true, false]);
        assert_eq!(
            endorsements[0].limits().as_deref(),
            Some("Limit A; Limit B")
        );
    }

    #[test]
    fn copy_text_escapes_its_separators_and_backslashes() {
        let mut out = Vec::new();
        escape_copy_text(&mut out, "a\\b\tc\nd\re \\N é");
        assert_eq!(out, "a\\\\b\\tc\\nd\\re \\\\N é".as_bytes());
    }
}
