//! The database: PostgreSQL in production, SQLite for the embedded default, behind
//! one [`Store`]. SQL lives here and nowhere else.
//!
//! # Layout
//!
//! - `erp`: reads and the one-transaction replace of the ERP's certification tables.
//! - `tasks`: import tasks (schedules) and the re-planning of their waiting run.
//! - `runs`: import runs: starting, claiming, heartbeats, reaping, the runs page,
//!   reports and run logs.
//! - `file_cache` and `events`: the ALiS file cache (three newest files, with their
//!   bytes) and the SFTP connection events.
//! - `lock`: the certification lock's row and the edit leases (see [`crate::lock`]).
//!
//! Dates are ISO `YYYY-MM-DD` text on the wire to both backends (Postgres casts them),
//! timestamps are `timestamptz` on Postgres and RFC 3339 UTC text on SQLite.

mod district;
mod erp;
mod events;
mod file_cache;
mod instant;
mod lock;
mod runs;
mod tasks;

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use erp::{Holdings, Replace};
pub use events::{ConnectionEvent, ConnectionEventFilter, NewConnectionEvent};
pub use file_cache::{CACHE_KEEP, CachePut, CachedFile, NewCachedFile, to_microsecond};
pub use lock::LeaseConnection;
pub use runs::{
    Claim, LogEntry, LogLevel, NewRun, RunFilter, RunOutcome, RunPage, RunRecord, RunStatus,
    StartedRun, TimeRange,
};
pub use tasks::{Task, TaskDraft};

static POSTGRES_ERP: Migrator = sqlx::migrate!("migrations/postgres/erp");
static POSTGRES_SERVICE: Migrator = sqlx::migrate!("migrations/postgres/service");
static SQLITE_ERP: Migrator = sqlx::migrate!("migrations/sqlite/erp");
static SQLITE_SERVICE: Migrator = sqlx::migrate!("migrations/sqlite/service");

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no backend this service speaks.
    #[error("unsupported database URL scheme in {0:?}: use postgres://… or sqlite://…")]
    UnsupportedUrl(String),
    /// The database could not be reached or refused the connection.
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    /// Applying the schema failed.
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
    /// A stored value could not be read back.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// No task has this id.
    #[error("no import task with id {0}")]
    TaskNotFound(i64),
    /// Another import is running in this database (one at a time, design §5).
    #[error("another import is in progress: run {run_id}")]
    ImportInProgress {
        /// The run in progress.
        run_id: i64,
    },
    /// A page token that this store did not hand out (or one from another backend).
    #[error("invalid page token")]
    InvalidPageToken,
}

impl StoreError {
    /// Whether the database said its disk is full: SQLite's `SQLITE_FULL` (13),
    /// PostgreSQL's `disk_full` (53100). The two codes cannot be mistaken for each other.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::Query(sqlx::Error::Database(error)) => {
                matches!(error.code().as_deref(), Some("13" | "53100"))
            }
            _ => false,
        }
    }
}

/// A connection pool to one of the two supported backends.
#[derive(Debug, Clone)]
pub enum Store {
    /// PostgreSQL (production; several replicas share it).
    Postgres(PgPool),
    /// SQLite file (embedded default, single process).
    Sqlite(SqlitePool),
}

impl Store {
    /// Connects to `postgres://…` / `postgresql://…` or `sqlite://PATH` (add
    /// `?mode=rwc` to create the file).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(StoreError::Connect)?;
            Ok(Self::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(StoreError::Connect)?
                .foreign_keys(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(30));
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                // When SQLite ends a transaction by itself (SQLITE_FULL, for one), sqlx's
                // ROLLBACK fails and it keeps counting the transaction as open: every
                // later `begin` on that connection would fail ("non-zero transaction
                // depth"), run after run. Such a connection is closed, not handed out.
                .before_acquire(|conn, _| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
                .connect_with(options)
                .await
                .map_err(StoreError::Connect)?;
            Ok(Self::Sqlite(pool))
        } else {
            Err(StoreError::UnsupportedUrl(redact_url(url)))
        }
    }

    /// Applies the service's migrations, and the ERP tables' too when
    /// `manage_erp_schema` is on (a real ERP already has them).
    pub async fn migrate(&self, manage_erp_schema: bool) -> Result<(), StoreError> {
        // Each migration set keeps its own bookkeeping table, so the ERP's tables can
        // be left to the ERP without the service's history noticing.
        let (erp, service) = match self {
            Self::Postgres(_) => (&POSTGRES_ERP, &POSTGRES_SERVICE),
            Self::Sqlite(_) => (&SQLITE_ERP, &SQLITE_SERVICE),
        };
        let with_table = |migrator: &Migrator, table: &'static str| {
            let mut migrator = Migrator::with_migrations(migrator.migrations.to_vec());
            migrator.dangerous_set_table_name(table);
            migrator
        };
        if manage_erp_schema {
            self.run_migrator(&with_table(erp, "_alis_erp_migrations"))
                .await?;
        }
        self.run_migrator(&with_table(service, "_alis_import_migrations"))
            .await
    }

    async fn run_migrator(&self, migrator: &Migrator) -> Result<(), StoreError> {
        match self {
            Self::Postgres(pool) => migrator.run(pool).await?,
            Self::Sqlite(pool) => migrator.run(pool).await?,
        }
        Ok(())
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        match self {
            Self::Postgres(pool) => pool.close().await,
            Self::Sqlite(pool) => pool.close().await,
        }
    }
}

/// The URL without its password, for messages.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://…@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
