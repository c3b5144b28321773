//! The run's own log, as the fetch step sees it: a place to append lines.
//!
//! The store's run log methods belong to the worker; the fetch step only needs to
//! append, so it takes this trait and the caller plugs the store in (tests collect
//! the lines in memory).

use std::future::Future;

use crate::store::StoreError;

/// The severity of a run log line: the store's, under the name the fetch step uses.
pub use crate::store::LogLevel as RunLogLevel;

/// The run's own log (GetRunLog, `alis-import report`), into which the fetch step
/// writes what it saw and decided. The worker implements it over the store's run log
/// table; tests collect the lines.
///
/// [`super::fetch_file`] takes it as a generic parameter, not `&dyn RunLog`: an async
/// method needs boxing to be object-safe, and each caller has one concrete log.
pub trait RunLog: Sync {
    /// The run the lines belong to, which connection events name too; `None` when the
    /// fetch happens outside a run.
    fn run_id(&self) -> Option<i64>;

    /// Appends one line. A line is plain text for an operator; entry names in it are
    /// quoted and escaped (`{:?}`), since a folder entry may hold control characters.
    fn append(
        &self,
        level: RunLogLevel,
        message: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
