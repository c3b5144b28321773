//! Instants at the store's boundary: `jiff::Timestamp` in the service, `timestamptz`
//! (through chrono) on PostgreSQL, RFC 3339 UTC text on SQLite.
//!
//! Every instant the store writes is first truncated to the millisecond, the precision
//! of the SQLite text form, so that both backends give back exactly the instant they
//! were given and compare the same way.

use chrono::{DateTime, Utc};
use jiff::Timestamp;

use super::StoreError;

/// The SQLite text form: RFC 3339 UTC with exactly three fractional digits. Fixed width
/// (for years 1000–9999), so comparing the text compares the instants.
const TEXT_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// `at` truncated to the millisecond: what the store keeps of it.
pub(super) fn truncated(at: Timestamp) -> Timestamp {
    // Always in range: truncating moves towards the epoch.
    Timestamp::from_millisecond(at.as_millisecond()).unwrap_or(at)
}

/// `at` as a PostgreSQL `timestamptz` parameter.
pub(super) fn to_pg(at: Timestamp) -> DateTime<Utc> {
    // jiff's range (years -9999..=9999) lies inside chrono's (±262,143), so the
    // fallback is never taken.
    DateTime::from_timestamp_millis(at.as_millisecond()).unwrap_or_default()
}

/// A PostgreSQL `timestamptz` value as an instant.
pub(super) fn from_pg(at: DateTime<Utc>) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(at.timestamp_micros())
        .map_err(|e| StoreError::Corrupt(format!("timestamp {at} out of range: {e}")))
}

/// `at` as SQLite text.
pub(super) fn to_text(at: Timestamp) -> String {
    at.strftime(TEXT_FORMAT).to_string()
}

/// SQLite text as an instant.
pub(super) fn from_text(text: &str) -> Result<Timestamp, StoreError> {
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("timestamp {text:?}: {e}")))
}

/// Whether `text` is exactly what [`to_text`] writes, so that it compares correctly
/// against stored values.
pub(super) fn is_canonical_text(text: &str) -> bool {
    from_text(text).is_ok_and(|at| to_text(at) == text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_fixed_width_utc_with_milliseconds_and_reads_back() {
        let at: Timestamp = "2026-11-30T07:05:09.123456789-05:00".parse().unwrap();
        assert_eq!(to_text(at), "2026-11-30T12:05:09.123Z");
        assert_eq!(from_text(&to_text(at)).unwrap(), truncated(at));
        let whole: Timestamp = "2026-11-30T12:00:00Z".parse().unwrap();
        assert_eq!(to_text(whole), "2026-11-30T12:00:00.000Z");
        assert!(is_canonical_text("2026-11-30T12:00:00.000Z"));
        assert!(!is_canonical_text("2026-11-30T12:00:00Z"));
        assert!(!is_canonical_text("yesterday"));
    }

    #[test]
    fn postgres_values_round_trip_at_millisecond_precision() {
        let at: Timestamp = "2026-03-14T07:30:00.987654Z".parse().unwrap();
        assert_eq!(from_pg(to_pg(at)).unwrap(), truncated(at));
        assert_eq!(
            truncated(at),
            "2026-03-14T07:30:00.987Z".parse::<Timestamp>().unwrap()
        );
    }
}
