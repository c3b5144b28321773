//! Import tasks: what to import when, and who asked for it.
//!
//! Design §5: the next occurrence of every active task always exists as one `WAITING`
//! run. Saving a task re-plans that run in the same transaction, so no reader ever sees
//! a task with a stale or missing waiting run; a partial unique index
//! (`import_runs_one_waiting_per_task`) makes two waiting runs for one task impossible.
//! The store does not compute occurrences: the caller passes the next one in.

use jiff::Timestamp;
use jiff::civil::Weekday;
use sqlx::{ColumnIndex, Decode, Postgres, Row, Sqlite, Transaction, Type};

use super::instant::{from_pg, from_text, to_pg, to_text, truncated};
use super::{Store, StoreError};
use crate::scheduler::occurrence::{TaskSchedule, Weekdays};

/// An import task as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Database id.
    pub id: i64,
    /// What the runs page shows for each of its runs.
    pub description: String,
    /// Whether the scheduler plans and runs it; an inactive task runs only on `RunNow`.
    pub active: bool,
    /// When it runs.
    pub schedule: TaskSchedule,
    /// Who saved it last: its scheduled runs are run by them (design §4.1).
    pub saved_by: String,
    /// When it was saved last (the database's clock).
    pub saved_at: Timestamp,
}

/// A task as a caller saves it: everything but the id and the save time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDraft {
    /// What the runs page shows for each of its runs.
    pub description: String,
    /// Whether the scheduler plans and runs it.
    pub active: bool,
    /// When it runs.
    pub schedule: TaskSchedule,
    /// Who is saving it (the caller's identity, never a request field).
    pub saved_by: String,
}

/// The columns of a task, as [`task_from_row`] reads them (Postgres: the date as text).
macro_rules! task_columns_pg {
    () => {
        "id, description, active, start_date::text as start_date, start_time, weekdays, \
         time_zone, saved_by, saved_at"
    };
}
macro_rules! task_columns_sqlite {
    () => {
        "id, description, active, start_date, start_time, weekdays, time_zone, saved_by, \
         saved_at"
    };
}

const SELECT_TASK_PG: &str = concat!(
    "select ",
    task_columns_pg!(),
    " from import_tasks where id = $1"
);
const SELECT_TASK_SQLITE: &str = concat!(
    "select ",
    task_columns_sqlite!(),
    " from import_tasks where id = $1"
);
const ACTIVE_TASKS_PG: &str = concat!(
    "select ",
    task_columns_pg!(),
    " from import_tasks where active order by id"
);
const ACTIVE_TASKS_SQLITE: &str = concat!(
    "select ",
    task_columns_sqlite!(),
    " from import_tasks where active order by id"
);

const INSERT_TASK_PG: &str = concat!(
    "insert into import_tasks (description, active, start_date, start_time, weekdays, \
     time_zone, saved_by) values ($1, $2, $3::date, $4, $5, $6, $7) returning ",
    task_columns_pg!()
);
const INSERT_TASK_SQLITE: &str = concat!(
    "insert into import_tasks (description, active, start_date, start_time, weekdays, \
     time_zone, saved_by) values ($1, $2, $3, $4, $5, $6, $7) returning ",
    task_columns_sqlite!()
);
const UPDATE_TASK_PG: &str = concat!(
    "update import_tasks set description = $2, active = $3, start_date = $4::date, \
     start_time = $5, weekdays = $6, time_zone = $7, saved_by = $8, saved_at = now() \
     where id = $1 returning ",
    task_columns_pg!()
);
const UPDATE_TASK_SQLITE: &str = concat!(
    "update import_tasks set description = $2, active = $3, start_date = $4, \
     start_time = $5, weekdays = $6, time_zone = $7, saved_by = $8, \
     saved_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') where id = $1 returning ",
    task_columns_sqlite!()
);
const DELETE_WAITING_RUNS: &str =
    "delete from import_runs where task_id = $1 and status = 'WAITING'";
const INSERT_WAITING_RUN: &str = "insert into import_runs (task_id, task_description, status, \
    scheduled_for, run_by) values ($1, $2, 'WAITING', $3, $4)";
const DELETE_TASK: &str = "delete from import_tasks where id = $1";

/// A draft's schedule as the columns store it.
struct ScheduleColumns {
    start_date: String,
    start_time: String,
    weekdays: i32,
    time_zone: String,
}

impl ScheduleColumns {
    fn of(schedule: &TaskSchedule) -> Self {
        Self {
            start_date: schedule.start_date().to_string(),
            start_time: schedule.time().strftime("%H:%M:%S").to_string(),
            weekdays: weekday_bits(schedule.weekdays()),
            time_zone: schedule.time_zone_name().to_owned(),
        }
    }
}

/// The stored bit set: bit 0 = Monday … bit 6 = Sunday (migration 0101).
fn weekday_bits(days: Weekdays) -> i32 {
    days.iter()
        .map(|day| 1i32 << day.to_monday_zero_offset())
        .sum()
}

/// The weekday names of a stored bit set, as [`TaskSchedule::parse`] reads them.
fn weekday_names(bits: i32) -> Result<Vec<String>, StoreError> {
    if !(0..=0b111_1111).contains(&bits) {
        return Err(StoreError::Corrupt(format!("weekday bits {bits}")));
    }
    let days: Weekdays = (0..7i8)
        .filter(|offset| bits & (1 << offset) != 0)
        .filter_map(|offset| Weekday::from_monday_zero_offset(offset).ok())
        .collect();
    // The display form ("MON,THU") is the one `Weekdays` promises to read back.
    let text = days.to_string();
    Ok(text
        .split(',')
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect())
}

/// A task row, whatever the backend; `saved_at` decodes per backend.
fn task_from_row<R>(row: &R, saved_at: Timestamp) -> Result<Task, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let start_date: String = row.try_get("start_date")?;
    let start_time: String = row.try_get("start_time")?;
    let time_zone: String = row.try_get("time_zone")?;
    let weekdays = weekday_names(row.try_get("weekdays")?)?;
    let schedule = TaskSchedule::parse(&start_date, &start_time, &weekdays, Some(&time_zone))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Task {
        id: row.try_get("id")?,
        description: row.try_get("description")?,
        active: row.try_get("active")?,
        schedule,
        saved_by: row.try_get("saved_by")?,
        saved_at,
    })
}

fn task_from_pg(row: &sqlx::postgres::PgRow) -> Result<Task, StoreError> {
    task_from_row(row, from_pg(row.try_get("saved_at")?)?)
}

fn task_from_sqlite(row: &sqlx::sqlite::SqliteRow) -> Result<Task, StoreError> {
    let saved_at: String = row.try_get("saved_at")?;
    task_from_row(row, from_text(&saved_at)?)
}

impl Store {
    /// Creates the task (`id` `None`) or replaces task `id`'s fields, and in the same
    /// transaction re-plans its waiting run: the task's `WAITING` runs are deleted and,
    /// when the task is active and `next_occurrence` is given, one `WAITING` run is
    /// planned for that instant, run by `draft.saved_by`.
    ///
    /// # Errors
    ///
    /// [`StoreError::TaskNotFound`] when `id` names no task; nothing changes then.
    pub async fn save_task(
        &self,
        id: Option<i64>,
        draft: &TaskDraft,
        next_occurrence: Option<Timestamp>,
    ) -> Result<Task, StoreError> {
        let columns = ScheduleColumns::of(&draft.schedule);
        let planned = next_occurrence.filter(|_| draft.active).map(truncated);
        match self {
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let row = match id {
                    None => sqlx::query(INSERT_TASK_PG),
                    Some(id) => sqlx::query(UPDATE_TASK_PG).bind(id),
                }
                .bind(&draft.description)
                .bind(draft.active)
                .bind(&columns.start_date)
                .bind(&columns.start_time)
                .bind(columns.weekdays)
                .bind(&columns.time_zone)
                .bind(&draft.saved_by)
                .fetch_optional(&mut *tx)
                .await?;
                let task = task_from_pg(&row.ok_or(StoreError::TaskNotFound(id.unwrap_or(0)))?)?;
                replan_pg(&mut tx, &task, planned).await?;
                tx.commit().await?;
                Ok(task)
            }
            Self::Sqlite(pool) => {
                let mut tx = pool.begin_with("begin immediate").await?;
                let row = match id {
                    None => sqlx::query(INSERT_TASK_SQLITE),
                    Some(id) => sqlx::query(UPDATE_TASK_SQLITE).bind(id),
                }
                .bind(&draft.description)
                .bind(draft.active)
                .bind(&columns.start_date)
                .bind(&columns.start_time)
                .bind(columns.weekdays)
                .bind(&columns.time_zone)
                .bind(&draft.saved_by)
                .fetch_optional(&mut *tx)
                .await?;
                let task =
                    task_from_sqlite(&row.ok_or(StoreError::TaskNotFound(id.unwrap_or(0)))?)?;
                replan_sqlite(&mut tx, &task, planned).await?;
                tx.commit().await?;
                Ok(task)
            }
        }
    }

    /// Task `id`, if it exists.
    pub async fn get_task(&self, id: i64) -> Result<Option<Task>, StoreError> {
        match self {
            Self::Postgres(pool) => sqlx::query(SELECT_TASK_PG)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(task_from_pg)
                .transpose(),
            Self::Sqlite(pool) => sqlx::query(SELECT_TASK_SQLITE)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(task_from_sqlite)
                .transpose(),
        }
    }

    /// Deletes task `id` and its `WAITING` runs; returns whether it existed. Its past
    /// and running runs stay, with no task and the description they were created with.
    pub async fn delete_task(&self, id: i64) -> Result<bool, StoreError> {
        let deleted = match self {
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(DELETE_WAITING_RUNS)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let deleted = sqlx::query(DELETE_TASK)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                deleted
            }
            Self::Sqlite(pool) => {
                let mut tx = pool.begin_with("begin immediate").await?;
                sqlx::query(DELETE_WAITING_RUNS)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let deleted = sqlx::query(DELETE_TASK)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                deleted
            }
        };
        Ok(deleted > 0)
    }

    /// Every active task, oldest first: what the scheduler keeps planned.
    pub async fn active_tasks(&self) -> Result<Vec<Task>, StoreError> {
        match self {
            Self::Postgres(pool) => sqlx::query(ACTIVE_TASKS_PG)
                .fetch_all(pool)
                .await?
                .iter()
                .map(task_from_pg)
                .collect(),
            Self::Sqlite(pool) => sqlx::query(ACTIVE_TASKS_SQLITE)
                .fetch_all(pool)
                .await?
                .iter()
                .map(task_from_sqlite)
                .collect(),
        }
    }
}

async fn replan_pg(
    tx: &mut Transaction<'static, Postgres>,
    task: &Task,
    at: Option<Timestamp>,
) -> Result<(), StoreError> {
    sqlx::query(DELETE_WAITING_RUNS)
        .bind(task.id)
        .execute(&mut **tx)
        .await?;
    if let Some(at) = at {
        sqlx::query(INSERT_WAITING_RUN)
            .bind(task.id)
            .bind(&task.description)
            .bind(to_pg(at))
            .bind(&task.saved_by)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn replan_sqlite(
    tx: &mut Transaction<'static, Sqlite>,
    task: &Task,
    at: Option<Timestamp>,
) -> Result<(), StoreError> {
    sqlx::query(DELETE_WAITING_RUNS)
        .bind(task.id)
        .execute(&mut **tx)
        .await?;
    if let Some(at) = at {
        sqlx::query(INSERT_WAITING_RUN)
            .bind(task.id)
            .bind(&task.description)
            .bind(to_text(at))
            .bind(&task.saved_by)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekday_bits_round_trip_monday_first() {
        let days = Weekdays::from_names(["MON", "thu", "Sunday"]).unwrap();
        assert_eq!(weekday_bits(days), 0b100_1001);
        assert_eq!(weekday_names(0b100_1001).unwrap(), ["MON", "THU", "SUN"]);
        assert_eq!(
            Weekdays::from_names(weekday_names(0b100_1001).unwrap()).unwrap(),
            days
        );
        assert!(weekday_names(0).unwrap().is_empty());
        assert!(weekday_names(128).is_err());
        assert!(weekday_names(-1).is_err());
    }
}
