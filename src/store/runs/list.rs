//! The rows of the "VT - ALiS Certification Import" page (design §4 `ListTasks`): one
//! per run, newest first, filtered, keyset-paginated.
//!
//! "Newest" is the run's own time: when it was planned for, else when it started, else
//! when it was recorded; ties go to the higher id. A page token holds the sort key of
//! the last row handed out, so a page continues exactly after it however many rows are
//! added meanwhile, and no row is skipped or repeated.

use chrono::{DateTime, Utc};
use jiff::Timestamp;
use sqlx::{Database, Encode, QueryBuilder, Row, Type};

use super::{RunRecord, RunStatus, run_columns, run_from_pg, run_from_sqlite};
use crate::store::instant::{is_canonical_text, to_pg, to_text};
use crate::store::{Store, StoreError};

/// A half-open range of instants, `[from, to)`; either end may be open. A run whose
/// instant is unset (never started, not ended) is outside every range that has an end
/// set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeRange {
    /// Inclusive lower bound.
    pub from: Option<Timestamp>,
    /// Exclusive upper bound.
    pub to: Option<Timestamp>,
}

impl TimeRange {
    /// Whether neither end is set.
    pub fn is_unbounded(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }
}

/// Which runs to list; every filter that is set must hold (AND). The default lists all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunFilter {
    /// A substring of the run's task description, ignoring ASCII case; `%` and `_`
    /// are plain characters. Runs without a task description never match.
    pub description: Option<String>,
    /// The statuses to include; empty means every status.
    pub statuses: Vec<RunStatus>,
    /// When the run was planned for.
    pub scheduled: TimeRange,
    /// When it actually started.
    pub started: TimeRange,
    /// When it ended.
    pub ended: TimeRange,
    /// Exactly who it ran as.
    pub run_by: Option<String>,
}

/// One page of runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPage {
    /// The runs, newest first.
    pub runs: Vec<RunRecord>,
    /// Where the next page starts; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// The sort key: a run's own time.
const SORT_AT: &str = "coalesce(scheduled_for, started_at, created_at)";

/// Token prefixes: a token only fits the backend that made it (the key's
/// representation differs).
const PG_TOKEN: &str = "pg";
const SQLITE_TOKEN: &str = "sqlite";

/// The page query: filters, then rows after `after` (sort key, id), newest first,
/// `limit` rows. `instant` turns an instant into the backend's parameter.
fn page_query<DB, T>(
    filter: &RunFilter,
    after: Option<(T, i64)>,
    limit: i64,
    instant: fn(Timestamp) -> T,
) -> QueryBuilder<DB>
where
    DB: Database,
    DB::Arguments: Default,
    T: for<'t> Encode<'t, DB> + Type<DB> + Clone,
    String: for<'t> Encode<'t, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + Type<DB>,
{
    let mut query = QueryBuilder::new(concat!("select ", run_columns!(), ", "));
    query
        .push(SORT_AT)
        .push(" as sort_at from import_runs where true");
    if let Some(keyword) = &filter.description {
        query
            .push(" and lower(task_description) like ")
            .push_bind(like_pattern(keyword))
            .push(" escape '\\'");
    }
    if !filter.statuses.is_empty() {
        query.push(" and status in (");
        let mut statuses = query.separated(", ");
        for status in &filter.statuses {
            statuses.push_bind(status.as_str().to_owned());
        }
        query.push(")");
    }
    for (column, range) in [
        ("scheduled_for", &filter.scheduled),
        ("started_at", &filter.started),
        ("ended_at", &filter.ended),
    ] {
        if let Some(from) = range.from {
            query
                .push(format_args!(" and {column} >= "))
                .push_bind(instant(from));
        }
        if let Some(to) = range.to {
            query
                .push(format_args!(" and {column} < "))
                .push_bind(instant(to));
        }
    }
    if let Some(run_by) = &filter.run_by {
        query.push(" and run_by = ").push_bind(run_by.clone());
    }
    if let Some((sort_at, id)) = after {
        query
            .push(format_args!(" and ({SORT_AT} < "))
            .push_bind(sort_at.clone())
            .push(format_args!(" or ({SORT_AT} = "))
            .push_bind(sort_at)
            .push(" and id < ")
            .push_bind(id)
            .push("))");
    }
    query
        .push(format_args!(" order by {SORT_AT} desc, id desc limit "))
        .push_bind(limit);
    query
}

/// A `like` pattern matching `keyword` anywhere, lower-cased, with the pattern
/// characters escaped by `\`.
fn like_pattern(keyword: &str) -> String {
    let mut pattern = String::from("%");
    for c in keyword.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A token for the row with sort key `sort_at` (backend-specific text) and `id`.
fn encode_token(backend: &str, sort_at: &str, id: i64) -> String {
    hex::encode(format!("{backend}|{sort_at}|{id}"))
}

/// The sort key and id a token of `backend` holds.
fn decode_token<'t>(
    backend: &str,
    token: &'t str,
    buffer: &'t mut String,
) -> Option<(&'t str, i64)> {
    *buffer = String::from_utf8(hex::decode(token).ok()?).ok()?;
    let rest = buffer.strip_prefix(backend)?.strip_prefix('|')?;
    let (sort_at, id) = rest.rsplit_once('|')?;
    Some((sort_at, id.parse().ok()?))
}

impl Store {
    /// One page of the runs that match `filter`, newest first: at most `page_size`
    /// runs (0 counts as 1), starting after the row `page_token` (from the previous
    /// page's [`RunPage::next_page_token`]) points at, or from the newest when there is
    /// none (an empty token, proto3's unset string, is none).
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidPageToken`] for a token this store did not hand out.
    pub async fn list_runs(
        &self,
        filter: &RunFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<RunPage, StoreError> {
        let page_size = usize::try_from(page_size.max(1)).unwrap_or(usize::MAX);
        let limit = i64::try_from(page_size).unwrap_or(i64::MAX - 1) + 1;
        let page_token = page_token.filter(|token| !token.is_empty());
        let mut buffer = String::new();
        let mut rows: Vec<(RunRecord, String)> = match self {
            Self::Postgres(pool) => {
                let after = page_token
                    .map(|token| {
                        let (sort_at, id) = decode_token(PG_TOKEN, token, &mut buffer)
                            .ok_or(StoreError::InvalidPageToken)?;
                        let micros: i64 =
                            sort_at.parse().map_err(|_| StoreError::InvalidPageToken)?;
                        let sort_at = DateTime::<Utc>::from_timestamp_micros(micros)
                            .ok_or(StoreError::InvalidPageToken)?;
                        Ok::<_, StoreError>((sort_at, id))
                    })
                    .transpose()?;
                page_query(filter, after, limit, to_pg)
                    .build()
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|row| {
                        let sort_at: DateTime<Utc> = row.try_get("sort_at")?;
                        Ok((run_from_pg(row)?, sort_at.timestamp_micros().to_string()))
                    })
                    .collect::<Result<_, StoreError>>()?
            }
            Self::Sqlite(pool) => {
                let after = page_token
                    .map(|token| {
                        let (sort_at, id) = decode_token(SQLITE_TOKEN, token, &mut buffer)
                            .filter(|(sort_at, _)| is_canonical_text(sort_at))
                            .ok_or(StoreError::InvalidPageToken)?;
                        Ok::<_, StoreError>((sort_at.to_owned(), id))
                    })
                    .transpose()?;
                page_query(filter, after, limit, to_text)
                    .build()
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|row| Ok((run_from_sqlite(row)?, row.try_get("sort_at")?)))
                    .collect::<Result<_, StoreError>>()?
            }
        };
        let backend = match self {
            Self::Postgres(_) => PG_TOKEN,
            Self::Sqlite(_) => SQLITE_TOKEN,
        };
        let next_page_token = if rows.len() > page_size {
            rows.truncate(page_size);
            rows.last()
                .map(|(run, sort_at)| encode_token(backend, sort_at, run.id))
        } else {
            None
        };
        Ok(RunPage {
            runs: rows.into_iter().map(|(run, _)| run).collect(),
            next_page_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_match_literally() {
        assert_eq!(like_pattern("ALiS"), "%alis%");
        assert_eq!(like_pattern("100%_a\\b"), "%100\\%\\_a\\\\b%");
    }

    #[test]
    fn tokens_read_back_only_on_their_backend() {
        let token = encode_token(SQLITE_TOKEN, "2026-11-30T12:00:00.000Z", 42);
        let mut buffer = String::new();
        assert_eq!(
            decode_token(SQLITE_TOKEN, &token, &mut buffer),
            Some(("2026-11-30T12:00:00.000Z", 42))
        );
        assert_eq!(decode_token(PG_TOKEN, &token, &mut buffer), None);
        assert_eq!(decode_token(SQLITE_TOKEN, "not hex", &mut buffer), None);
        assert_eq!(decode_token(SQLITE_TOKEN, "", &mut buffer), None);
    }
}
