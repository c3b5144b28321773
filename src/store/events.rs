//! SFTP connection events (design §3.2, §7): every failed connection, refused
//! authentication, host key mismatch, timeout and transfer error, with the server and
//! the time, for operators looking into why runs failed.
//!
//! `kind` is free text on purpose: the source names its failures (`SftpError`'s event
//! kinds), and a new kind should not need a migration. `detail` is the operator's
//! message; the source guarantees that it carries no credential.

use jiff::Timestamp;

use super::file_cache::{PgTime, from_pg_time, from_sqlite_time, pg_time, sqlite_time};
use super::{Store, StoreError};

/// An event to record.
#[derive(Debug, Clone, Copy)]
pub struct NewConnectionEvent<'a> {
    /// When it happened.
    pub at: Timestamp,
    /// The server it concerns (`host` or `host:port`).
    pub host: &'a str,
    /// What happened, a short machine-readable word (`auth_refused`, `timeout`, …).
    pub kind: &'a str,
    /// The operator's message. Never a password or token.
    pub detail: &'a str,
    /// The run it happened in; `None` outside a run (`alis-import check`).
    pub run_id: Option<i64>,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionEvent {
    /// Its id; later events have greater ids.
    pub id: i64,
    /// When it happened (to the microsecond).
    pub at: Timestamp,
    /// The server it concerns.
    pub host: String,
    /// What happened.
    pub kind: String,
    /// The operator's message.
    pub detail: String,
    /// The run it happened in, if any (and if that run is still recorded).
    pub run_id: Option<i64>,
}

/// Which events [`Store::connection_events`] returns: those matching every field that
/// is set, newest first, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionEventFilter {
    /// Only this server's.
    pub host: Option<String>,
    /// Only this run's.
    pub run_id: Option<i64>,
    /// Only those at or after this time.
    pub since: Option<Timestamp>,
    /// At most this many.
    pub limit: u32,
}

impl ConnectionEventFilter {
    /// The newest `limit` events of any server and run.
    pub fn latest(limit: u32) -> Self {
        Self {
            host: None,
            run_id: None,
            since: None,
            limit,
        }
    }
}

impl Store {
    /// Records a connection event; returns its id.
    pub async fn record_connection_event(
        &self,
        event: &NewConnectionEvent<'_>,
    ) -> Result<i64, StoreError> {
        const SQL: &str = "insert into connection_events (occurred_at, host, kind, detail, \
                           run_id) values ($1, $2, $3, $4, $5) returning id";
        Ok(match self {
            Self::Postgres(pool) => {
                sqlx::query_scalar(SQL)
                    .bind(pg_time(event.at)?)
                    .bind(event.host)
                    .bind(event.kind)
                    .bind(event.detail)
                    .bind(event.run_id)
                    .fetch_one(pool)
                    .await?
            }
            Self::Sqlite(pool) => {
                sqlx::query_scalar(SQL)
                    .bind(sqlite_time(event.at))
                    .bind(event.host)
                    .bind(event.kind)
                    .bind(event.detail)
                    .bind(event.run_id)
                    .fetch_one(pool)
                    .await?
            }
        })
    }

    /// The events `filter` selects, newest first.
    pub async fn connection_events(
        &self,
        filter: &ConnectionEventFilter,
    ) -> Result<Vec<ConnectionEvent>, StoreError> {
        let limit = i64::from(filter.limit);
        match self {
            Self::Postgres(pool) => {
                let rows: Vec<Row<PgTime>> = sqlx::query_as(
                    "select id, occurred_at, host, kind, detail, run_id \
                     from connection_events \
                     where ($1::text is null or host = $1) \
                     and ($2::bigint is null or run_id = $2) \
                     and ($3::timestamptz is null or occurred_at >= $3) \
                     order by occurred_at desc, id desc limit $4",
                )
                .bind(filter.host.as_deref())
                .bind(filter.run_id)
                .bind(filter.since.map(pg_time).transpose()?)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                rows.into_iter()
                    .map(|row| event(row, from_pg_time))
                    .collect()
            }
            Self::Sqlite(pool) => {
                let rows: Vec<Row<String>> = sqlx::query_as(
                    "select id, occurred_at, host, kind, detail, run_id \
                     from connection_events \
                     where ($1 is null or host = $1) \
                     and ($2 is null or run_id = $2) \
                     and ($3 is null or occurred_at >= $3) \
                     order by occurred_at desc, id desc limit $4",
                )
                .bind(filter.host.as_deref())
                .bind(filter.run_id)
                .bind(filter.since.map(sqlite_time))
                .bind(limit)
                .fetch_all(pool)
                .await?;
                rows.into_iter()
                    .map(|row| event(row, |at| from_sqlite_time(&at)))
                    .collect()
            }
        }
    }
}

/// An event row, with the backend's timestamp type.
type Row<T> = (i64, T, String, String, String, Option<i64>);

fn event<T>(
    (id, at, host, kind, detail, run_id): Row<T>,
    timestamp: impl Fn(T) -> Result<Timestamp, StoreError>,
) -> Result<ConnectionEvent, StoreError> {
    Ok(ConnectionEvent {
        id,
        at: timestamp(at)?,
        host,
        kind,
        detail,
        run_id,
    })
}
