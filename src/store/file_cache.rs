//! The file cache (rules §1.2, design §3.2): the three newest ALiS files runs have
//! downloaded, with their bytes, in the database so that every replica can reuse them
//! or fall back to them.
//!
//! One entry per file name. A file the state re-publishes under the same name with
//! other contents replaces the superseded entry rather than sitting beside it: the
//! cache holds what each name last contained, "newest" stays a total order over names,
//! and the fallback never picks an outdated version of a name.
//!
//! Timestamps are kept to the microsecond on both backends (PostgreSQL's `timestamptz`
//! precision), so a value read back compares equal to what was written once it is
//! truncated the same way ([`to_microsecond`]).

use jiff::Timestamp;

use super::{Store, StoreError};
use crate::source::AlisFileName;

/// How many files the cache keeps (n-3, rules §1.2 step 6).
pub const CACHE_KEEP: usize = 3;

/// A cached file, without its bytes ([`Store::cache_read`] reads those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedFile {
    /// The entry's id.
    pub id: i64,
    /// The file's name, which carries its datestamp.
    pub name: AlisFileName,
    /// The SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time in the source's listing when it was downloaded (to the
    /// microsecond): with the name and size, what shows that a later listing still
    /// holds the same file.
    pub source_modified: Timestamp,
    /// When it was stored (to the microsecond).
    pub stored_at: Timestamp,
}

/// A downloaded file to store in the cache.
#[derive(Debug, Clone, Copy)]
pub struct NewCachedFile<'a> {
    /// Its name.
    pub name: &'a AlisFileName,
    /// The SHA-256 of `bytes`, as the download computed it. It is not recomputed here;
    /// [`Store::cache_read`]'s callers check it against the bytes they get back.
    pub sha256: &'a [u8; 32],
    /// Its modification time in the source's listing.
    pub source_modified: Timestamp,
    /// When it is stored (the run's clock).
    pub stored_at: Timestamp,
    /// Its contents.
    pub bytes: &'a [u8],
}

/// What [`Store::cache_put`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePut {
    /// The stored entry's id.
    pub id: i64,
    /// Names of the entries removed to keep the [`CACHE_KEEP`] newest, newest first.
    /// It holds the stored file's own name when the cache already had that many newer
    /// files.
    pub pruned: Vec<String>,
}

/// `timestamptz` on PostgreSQL.
pub(super) type PgTime = chrono::DateTime<chrono::Utc>;

/// The metadata columns, in [`CachedFile`]'s order.
macro_rules! columns {
    () => {
        "id, name, sha256, size, source_modified, stored_at"
    };
}

/// Newest first, as `AlisFileName` orders: date, then time (none before any), then the
/// name byte by byte (PostgreSQL's default collation would order it by language rules).
macro_rules! pg_newest_first {
    () => {
        "file_date desc, file_time desc nulls last, name collate \"C\" desc"
    };
}
macro_rules! sqlite_newest_first {
    () => {
        "file_date desc, file_time desc nulls last, name desc"
    };
}

impl Store {
    /// Stores a downloaded file (replacing an entry of the same name) and removes all
    /// but the [`CACHE_KEEP`] newest entries, in one transaction.
    ///
    /// On PostgreSQL the transaction first locks the table against other writers, so
    /// that replicas storing files at the same moment each prune a cache that includes
    /// the other's file; readers are not blocked.
    pub async fn cache_put(&self, file: &NewCachedFile<'_>) -> Result<CachePut, StoreError> {
        let name = file.name.name();
        let date = file.name.date().to_string();
        let time = file.name.time().map(|t| t.strftime("%H:%M:%S").to_string());
        let sha256 = hex::encode(file.sha256);
        let size = to_i64(file.bytes.len() as u64)?;
        let keep = to_i64(CACHE_KEEP as u64)?;
        let (id, pruned) = match self {
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("lock table file_cache in share row exclusive mode")
                    .execute(&mut *tx)
                    .await?;
                let id: i64 = sqlx::query_scalar(
                    "insert into file_cache (name, file_date, file_time, sha256, size, \
                     source_modified, stored_at, bytes) \
                     values ($1, $2::date, $3::time, $4, $5, $6, $7, $8) \
                     on conflict (name) do update set file_date = excluded.file_date, \
                     file_time = excluded.file_time, sha256 = excluded.sha256, \
                     size = excluded.size, source_modified = excluded.source_modified, \
                     stored_at = excluded.stored_at, bytes = excluded.bytes \
                     returning id",
                )
                .bind(name)
                .bind(&date)
                .bind(time.as_deref())
                .bind(&sha256)
                .bind(size)
                .bind(pg_time(file.source_modified)?)
                .bind(pg_time(file.stored_at)?)
                .bind(file.bytes)
                .fetch_one(&mut *tx)
                .await?;
                let pruned: Vec<(String,)> = sqlx::query_as(concat!(
                    "delete from file_cache where id not in \
                     (select id from file_cache order by ",
                    pg_newest_first!(),
                    " limit $1) returning name"
                ))
                .bind(keep)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                (id, pruned)
            }
            Self::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let id: i64 = sqlx::query_scalar(
                    "insert into file_cache (name, file_date, file_time, sha256, size, \
                     source_modified, stored_at, bytes) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8) \
                     on conflict (name) do update set file_date = excluded.file_date, \
                     file_time = excluded.file_time, sha256 = excluded.sha256, \
                     size = excluded.size, source_modified = excluded.source_modified, \
                     stored_at = excluded.stored_at, bytes = excluded.bytes \
                     returning id",
                )
                .bind(name)
                .bind(&date)
                .bind(time.as_deref())
                .bind(&sha256)
                .bind(size)
                .bind(sqlite_time(file.source_modified))
                .bind(sqlite_time(file.stored_at))
                .bind(file.bytes)
                .fetch_one(&mut *tx)
                .await?;
                let pruned: Vec<(String,)> = sqlx::query_as(concat!(
                    "delete from file_cache where id not in \
                     (select id from file_cache order by ",
                    sqlite_newest_first!(),
                    " limit $1) returning name"
                ))
                .bind(keep)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                (id, pruned)
            }
        };
        let mut pruned: Vec<String> = pruned.into_iter().map(|(name,)| name).collect();
        // `returning` has no order; newest first reads best in the run log.
        pruned.sort_by_cached_key(|name| std::cmp::Reverse(name.parse::<AlisFileName>().ok()));
        Ok(CachePut { id, pruned })
    }

    /// The cached entry of a file name, if there is one.
    pub async fn cache_find(&self, name: &AlisFileName) -> Result<Option<CachedFile>, StoreError> {
        const SQL: &str = concat!("select ", columns!(), " from file_cache where name = $1");
        match self {
            Self::Postgres(pool) => {
                let row: Option<PgRow> = sqlx::query_as(SQL)
                    .bind(name.name())
                    .fetch_optional(pool)
                    .await?;
                row.map(from_pg).transpose()
            }
            Self::Sqlite(pool) => {
                let row: Option<SqliteRow> = sqlx::query_as(SQL)
                    .bind(name.name())
                    .fetch_optional(pool)
                    .await?;
                row.map(from_sqlite).transpose()
            }
        }
    }

    /// The newest cached file, if the cache holds any.
    pub async fn cache_newest(&self) -> Result<Option<CachedFile>, StoreError> {
        Ok(self.cache_entries(Some(1)).await?.into_iter().next())
    }

    /// Every cached file, newest first, without the bytes.
    pub async fn cache_list(&self) -> Result<Vec<CachedFile>, StoreError> {
        self.cache_entries(None).await
    }

    /// The bytes of a cached file; `None` when the entry is gone (pruned since it was
    /// listed). The bytes are as stored: check them against [`CachedFile::sha256`].
    pub async fn cache_read(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        const SQL: &str = "select bytes from file_cache where id = $1";
        Ok(match self {
            Self::Postgres(pool) => {
                sqlx::query_scalar(SQL)
                    .bind(id)
                    .fetch_optional(pool)
                    .await?
            }
            Self::Sqlite(pool) => {
                sqlx::query_scalar(SQL)
                    .bind(id)
                    .fetch_optional(pool)
                    .await?
            }
        })
    }

    async fn cache_entries(&self, limit: Option<i64>) -> Result<Vec<CachedFile>, StoreError> {
        // `limit -1` is "no limit" to SQLite; PostgreSQL takes `limit null` for that.
        match self {
            Self::Postgres(pool) => {
                let rows: Vec<PgRow> = sqlx::query_as(concat!(
                    "select ",
                    columns!(),
                    " from file_cache order by ",
                    pg_newest_first!(),
                    " limit $1"
                ))
                .bind(limit)
                .fetch_all(pool)
                .await?;
                rows.into_iter().map(from_pg).collect()
            }
            Self::Sqlite(pool) => {
                let rows: Vec<SqliteRow> = sqlx::query_as(concat!(
                    "select ",
                    columns!(),
                    " from file_cache order by ",
                    sqlite_newest_first!(),
                    " limit $1"
                ))
                .bind(limit.unwrap_or(-1))
                .fetch_all(pool)
                .await?;
                rows.into_iter().map(from_sqlite).collect()
            }
        }
    }
}

type PgRow = (i64, String, String, i64, PgTime, PgTime);
type SqliteRow = (i64, String, String, i64, String, String);

fn from_pg(row: PgRow) -> Result<CachedFile, StoreError> {
    let (id, name, sha256, size, source_modified, stored_at) = row;
    cached_file(
        id,
        &name,
        sha256,
        size,
        from_pg_time(source_modified)?,
        from_pg_time(stored_at)?,
    )
}

fn from_sqlite(row: SqliteRow) -> Result<CachedFile, StoreError> {
    let (id, name, sha256, size, source_modified, stored_at) = row;
    cached_file(
        id,
        &name,
        sha256,
        size,
        from_sqlite_time(&source_modified)?,
        from_sqlite_time(&stored_at)?,
    )
}

fn cached_file(
    id: i64,
    name: &str,
    sha256: String,
    size: i64,
    source_modified: Timestamp,
    stored_at: Timestamp,
) -> Result<CachedFile, StoreError> {
    Ok(CachedFile {
        id,
        name: name
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("cached file name {name:?}: {e}")))?,
        sha256,
        size: u64::try_from(size)
            .map_err(|_| StoreError::Corrupt(format!("cached file {name}: size {size}")))?,
        source_modified,
        stored_at,
    })
}

fn to_i64(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n)
        .map_err(|_| StoreError::Corrupt(format!("{n} does not fit a database integer")))
}

/// `at` truncated to the microsecond: what the store keeps of a timestamp, so compare
/// a stored timestamp with a fresh one through this.
pub fn to_microsecond(at: Timestamp) -> Timestamp {
    // In range by construction: truncating moves a timestamp towards the epoch.
    Timestamp::from_microsecond(at.as_microsecond()).unwrap_or(at)
}

/// A timestamp for a PostgreSQL `timestamptz` parameter.
pub(super) fn pg_time(at: Timestamp) -> Result<PgTime, StoreError> {
    chrono::DateTime::from_timestamp_micros(at.as_microsecond())
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {at} out of range")))
}

/// A timestamp read from a PostgreSQL `timestamptz` column.
pub(super) fn from_pg_time(at: PgTime) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(at.timestamp_micros())
        .map_err(|e| StoreError::Corrupt(format!("timestamp {at}: {e}")))
}

/// A timestamp as SQLite stores it here: RFC 3339 UTC with microseconds, which sorts
/// as text.
pub(super) fn sqlite_time(at: Timestamp) -> String {
    to_microsecond(at)
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// A timestamp read from a SQLite text column.
pub(super) fn from_sqlite_time(text: &str) -> Result<Timestamp, StoreError> {
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("timestamp {text:?}: {e}")))
}
