//! A run's error log: what `GetRunLog` shows, e.g. the SFTP connection failures of a
//! run (design §7). Entries are timestamped by the database when written.

use jiff::Timestamp;
use sqlx::Row;

use crate::store::instant::{from_pg, from_text};
use crate::store::{Store, StoreError};

/// How serious a log entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogLevel {
    /// For the record.
    Info,
    /// Something went wrong but the run went on.
    Warn,
    /// Something went wrong that failed the run.
    Error,
}

impl LogLevel {
    /// The stored (and displayed) form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
        }
    }

    /// The level whose stored form is `text`.
    pub fn from_stored(text: &str) -> Option<Self> {
        [Self::Info, Self::Warn, Self::Error]
            .into_iter()
            .find(|level| level.as_str() == text)
    }
}

/// One entry of a run's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// When it was written.
    pub at: Timestamp,
    /// How serious it is.
    pub level: LogLevel,
    /// What happened, for an operator (never a secret).
    pub message: String,
}

const APPEND: &str = "insert into import_run_log (run_id, level, message) values ($1, $2, $3)";
const ENTRIES: &str = "select logged_at, level, message from import_run_log \
    where run_id = $1 order by id";

fn level(text: &str) -> Result<LogLevel, StoreError> {
    LogLevel::from_stored(text).ok_or_else(|| StoreError::Corrupt(format!("log level {text:?}")))
}

impl Store {
    /// Adds an entry to run `run_id`'s log.
    ///
    /// # Errors
    ///
    /// A query error when the run does not exist.
    pub async fn append_run_log(
        &self,
        run_id: i64,
        level: LogLevel,
        message: &str,
    ) -> Result<(), StoreError> {
        match self {
            Self::Postgres(pool) => sqlx::query(APPEND)
                .bind(run_id)
                .bind(level.as_str())
                .bind(message)
                .execute(pool)
                .await?
                .rows_affected(),
            Self::Sqlite(pool) => sqlx::query(APPEND)
                .bind(run_id)
                .bind(level.as_str())
                .bind(message)
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(())
    }

    /// Run `run_id`'s log, in the order it was written (empty for an unknown run).
    pub async fn run_log(&self, run_id: i64) -> Result<Vec<LogEntry>, StoreError> {
        match self {
            Self::Postgres(pool) => sqlx::query(ENTRIES)
                .bind(run_id)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(LogEntry {
                        at: from_pg(row.try_get("logged_at")?)?,
                        level: level(row.try_get("level")?)?,
                        message: row.try_get("message")?,
                    })
                })
                .collect(),
            Self::Sqlite(pool) => sqlx::query(ENTRIES)
                .bind(run_id)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(LogEntry {
                        at: from_text(row.try_get("logged_at")?)?,
                        level: level(row.try_get("level")?)?,
                        message: row.try_get("message")?,
                    })
                })
                .collect(),
        }
    }
}
