//! Writing a district's job classes and employees: the demo and the tests seed the
//! ERP tables with [`crate::sample`] data through here.

use sqlx::QueryBuilder;

use super::{Store, StoreError};
use crate::sample::SampleDistrict;

/// Rows per insert statement (SQLite allows 32,766 parameters; 7 per row).
const BATCH: usize = 2_000;

/// Inserts job classes and employees on one backend's transaction.
macro_rules! insert_district {
    ($db:ty, $tx:expr, $district:expr) => {{
        for chunk in $district.job_classes.chunks(BATCH) {
            let mut insert = QueryBuilder::<$db>::new(
                "insert into job_classes (id, code, description, certification_required) ",
            );
            insert.push_values(chunk, |mut row, j| {
                row.push_bind(j.id)
                    .push_bind(j.code)
                    .push_bind(j.description)
                    .push_bind(j.certification_required);
            });
            insert.build().execute(&mut *$tx).await?;
        }
        for chunk in $district.employees.chunks(BATCH) {
            let mut insert = QueryBuilder::<$db>::new(
                "insert into employees (id, employee_number, state_staff_id, last_name, \
                 first_name, status, job_class_id) ",
            );
            insert.push_values(chunk, |mut row, e| {
                row.push_bind(e.id)
                    .push_bind(e.employee_number.as_str())
                    .push_bind(e.state_staff_id.as_deref())
                    .push_bind(e.last_name.as_str())
                    .push_bind(e.first_name.as_str())
                    .push_bind(e.status)
                    .push_bind(e.job_class_id);
            });
            insert.build().execute(&mut *$tx).await?;
        }
    }};
}

impl Store {
    /// Inserts a district's job classes and employees in one transaction.
    pub async fn insert_district(&self, district: &SampleDistrict) -> Result<(), StoreError> {
        match self {
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                insert_district!(sqlx::Postgres, tx, district);
                tx.commit().await?;
            }
            Self::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                insert_district!(sqlx::Sqlite, tx, district);
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Whether the ERP's employees table holds anyone (the demo seeds an empty one).
    pub async fn has_employees(&self) -> Result<bool, StoreError> {
        const SQL: &str = "select exists (select 1 from employees)";
        Ok(match self {
            Self::Postgres(pool) => sqlx::query_scalar(SQL).fetch_one(pool).await?,
            Self::Sqlite(pool) => sqlx::query_scalar(SQL).fetch_one(pool).await?,
        })
    }
}
