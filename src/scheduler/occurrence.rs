//! A task's schedule and the instants it runs at.
//!
//! A [`TaskSchedule`] is a start date, a wall-clock time, a set of [`Weekdays`] and an
//! IANA time zone. Only [`TaskSchedule::parse`] builds one: it checks every raw field
//! and reports each bad one as a [`FieldViolation`], so a schedule that exists is valid.
//! Its occurrences are
//!
//! - with weekdays selected: every selected weekday on or after the start date, at the
//!   wall-clock time in the task's zone;
//! - with none selected: exactly once, at the start date and time.
//!
//! # Daylight saving time
//!
//! A day's wall-clock time becomes an instant through jiff's `compatible`
//! disambiguation (the default of RFC 5545 and Temporal). That gives two rules:
//!
//! - **A time that does not exist** (spring forward) is pushed forward by the length of
//!   the gap: in `America/New_York` a 02:30 task runs on 2027-03-14 at 03:30 EDT
//!   (07:30 UTC). `design.md` §5 says "the first instant after the gap", which would be
//!   03:00 EDT; the issue's acceptance test asks for 03:30 EDT, and this module follows
//!   the acceptance test. The two readings agree only for a task at exactly 02:00.
//! - **A time that happens twice** (fall back) runs once, at the first (earlier,
//!   daylight-time) instant: a 01:30 task runs on 2026-11-01 at 01:30 EDT (05:30 UTC),
//!   and the occurrence after that is on the next selected day, never 01:30 EST an hour
//!   later. This holds because each day yields exactly one instant, whatever its clock
//!   does.
//!
//! Between transitions the wall-clock time stays put and the UTC instant moves: a 06:00
//! task runs at 11:00 UTC in winter and at 10:00 UTC in summer.
//!
//! # Time zone data
//!
//! Zones come from jiff's time zone database through [`TimeZone::get`], never from the
//! process (`TZ`, `/etc/localtime`), so a schedule gives the same instants on every
//! host. On Linux jiff reads the system copy (`/usr/share/zoneinfo`, or `$TZDIR`); a
//! runtime image without tzdata needs jiff's `tzdb-bundle-always` feature. The names
//! `localtime`, `posixrules` and `Factory` are refused: in a system database they stand
//! for the host's own zone, or for no real place.

use std::fmt;
use std::iter::FusedIterator;
use std::str::FromStr;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// The zone a task runs in when it names none.
pub const DEFAULT_TIME_ZONE: &str = "America/New_York";

/// The name [`FieldViolation`]s give the start date.
pub const START_DATE_FIELD: &str = "start_date";
/// The name [`FieldViolation`]s give the wall-clock time.
pub const START_TIME_FIELD: &str = "start_time";
/// The name [`FieldViolation`]s give the weekdays.
pub const WEEKDAYS_FIELD: &str = "weekdays";
/// The name [`FieldViolation`]s give the time zone.
pub const TIME_ZONE_FIELD: &str = "time_zone";

/// Names a system zoneinfo directory holds that are not places: `localtime` links to
/// the host's own zone (which would make a schedule depend on the host), `posixrules`
/// is a template for POSIX `TZ` strings, and `Factory` is a placeholder zone.
const REFUSED_ZONE_NAMES: [&str; 3] = ["localtime", "posixrules", "Factory"];

/// How many days [`TaskSchedule::next_occurrence`] examines: the day before the day of
/// `after` (a time pushed past midnight by a gap belongs to the day before), that day,
/// the week after it, and slack for days a zone skips altogether (Pacific/Apia dropped
/// 2011-12-30).
const SEARCH_DAYS: usize = 16;

/// The weekdays, Monday first (the order [`Weekdays`] iterates and displays in), each
/// with the short and the full name it is parsed from.
const WEEKDAY_NAMES: [(Weekday, &str, &str); 7] = [
    (Weekday::Monday, "MON", "MONDAY"),
    (Weekday::Tuesday, "TUE", "TUESDAY"),
    (Weekday::Wednesday, "WED", "WEDNESDAY"),
    (Weekday::Thursday, "THU", "THURSDAY"),
    (Weekday::Friday, "FRI", "FRIDAY"),
    (Weekday::Saturday, "SAT", "SATURDAY"),
    (Weekday::Sunday, "SUN", "SUNDAY"),
];

/// The weekdays a task runs on, as a set. Empty means the task runs once.
///
/// Parsed from names (`MON` or `Monday`, in any case, surrounding blanks ignored);
/// iterated and displayed Monday first, as short upper-case names joined by commas
/// (`MON,THU`; the empty set displays as the empty string). [`FromStr`] reads that form
/// back, so it can be stored as text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Weekdays(u8);

impl Weekdays {
    /// No weekday: a task that runs once.
    pub const NONE: Weekdays = Weekdays(0);
    /// All seven weekdays: a daily task.
    pub const EVERY_DAY: Weekdays = Weekdays(0b111_1111);

    /// Parses a list of weekday names; duplicates are harmless.
    ///
    /// # Errors
    ///
    /// [`UnknownWeekdays`] naming every entry that is not a weekday.
    pub fn from_names<I, S>(names: I) -> Result<Self, UnknownWeekdays>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut days = Weekdays::NONE;
        let mut unknown = Vec::new();
        for name in names {
            let name = name.as_ref();
            match weekday_named(name) {
                Some(day) => days = days.with(day),
                None => unknown.push(name.to_owned()),
            }
        }
        if unknown.is_empty() {
            Ok(days)
        } else {
            Err(UnknownWeekdays { names: unknown })
        }
    }

    /// This set with `day` added.
    #[must_use]
    pub fn with(self, day: Weekday) -> Self {
        Weekdays(self.0 | bit(day))
    }

    /// Whether `day` is in the set.
    pub fn contains(self, day: Weekday) -> bool {
        self.0 & bit(day) != 0
    }

    /// Whether no weekday is selected, i.e. the task runs once.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many weekdays are selected.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The selected weekdays, Monday first.
    pub fn iter(self) -> WeekdaysIter {
        WeekdaysIter {
            days: self,
            next: 0,
        }
    }
}

/// The bit of `day` in a [`Weekdays`]: Monday is bit 0, Sunday bit 6.
fn bit(day: Weekday) -> u8 {
    1 << day.to_monday_zero_offset()
}

/// The weekday called `name` (short or full English name, any case, blanks trimmed).
fn weekday_named(name: &str) -> Option<Weekday> {
    let name = name.trim();
    WEEKDAY_NAMES
        .iter()
        .find(|(_, short, full)| {
            name.eq_ignore_ascii_case(short) || name.eq_ignore_ascii_case(full)
        })
        .map(|(day, _, _)| *day)
}

impl FromIterator<Weekday> for Weekdays {
    fn from_iter<I: IntoIterator<Item = Weekday>>(days: I) -> Self {
        days.into_iter().fold(Weekdays::NONE, Weekdays::with)
    }
}

impl IntoIterator for Weekdays {
    type Item = Weekday;
    type IntoIter = WeekdaysIter;

    fn into_iter(self) -> WeekdaysIter {
        self.iter()
    }
}

impl fmt::Display for Weekdays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut separator = "";
        for (day, short, _) in WEEKDAY_NAMES {
            if self.contains(day) {
                write!(f, "{separator}{short}")?;
                separator = ",";
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Weekdays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Weekdays({self})")
    }
}

/// Reads the [`Display`](fmt::Display) form: names separated by commas; the empty (or
/// blank) string is the empty set.
impl FromStr for Weekdays {
    type Err = UnknownWeekdays;

    fn from_str(text: &str) -> Result<Self, UnknownWeekdays> {
        if text.trim().is_empty() {
            Ok(Weekdays::NONE)
        } else {
            Weekdays::from_names(text.split(','))
        }
    }
}

/// The weekdays of a [`Weekdays`], Monday first.
#[derive(Debug, Clone)]
pub struct WeekdaysIter {
    /// The set being walked.
    days: Weekdays,
    /// Index into [`WEEKDAY_NAMES`] of the next weekday to look at.
    next: usize,
}

impl Iterator for WeekdaysIter {
    type Item = Weekday;

    fn next(&mut self) -> Option<Weekday> {
        while let Some((day, _, _)) = WEEKDAY_NAMES.get(self.next) {
            self.next += 1;
            if self.days.contains(*day) {
                return Some(*day);
            }
        }
        None
    }
}

impl FusedIterator for WeekdaysIter {}

/// Some names given as weekdays are not weekdays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown weekday {}: expected MON..SUN or MONDAY..SUNDAY, in any case",
    quoted(.names)
)]
pub struct UnknownWeekdays {
    /// Every offending name, as given.
    names: Vec<String>,
}

impl UnknownWeekdays {
    /// The names that are not weekdays, as given, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// `names` debug-quoted (so blanks and control characters show) and comma-separated.
fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("{name:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One bad field of a schedule: what the gRPC layer returns as a `BadRequest` field
/// violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field: [`START_DATE_FIELD`], [`START_TIME_FIELD`], [`WEEKDAYS_FIELD`] or
    /// [`TIME_ZONE_FIELD`].
    pub field: &'static str,
    /// What is wrong and what is expected, for the caller to read; quotes the bad input
    /// but nothing internal.
    pub description: String,
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// A task schedule's raw fields did not parse.
///
/// Holds one [`FieldViolation`] per bad field (never none), in the order start date,
/// start time, weekdays, time zone, so a caller can fix everything in one go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid task schedule: {}", joined(.violations))]
pub struct ScheduleError {
    /// The bad fields; not empty.
    violations: Vec<FieldViolation>,
}

impl ScheduleError {
    /// The bad fields, at least one.
    pub fn violations(&self) -> &[FieldViolation] {
        &self.violations
    }

    /// The bad fields, at least one, by value.
    pub fn into_violations(self) -> Vec<FieldViolation> {
        self.violations
    }
}

/// `violations` displayed and separated by semicolons.
fn joined(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// When a task runs: a start date, a wall-clock time and the weekdays to repeat on, in
/// an IANA time zone. See the [module docs](self) for the rules, DST included.
///
/// Valid by construction: built only by [`TaskSchedule::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSchedule {
    /// The first day the task may run.
    start_date: Date,
    /// The wall-clock time it runs at, to the second (no fraction).
    time: Time,
    /// The weekdays it repeats on; none means once, on `start_date`.
    weekdays: Weekdays,
    /// The zone `time` is read in.
    time_zone: TimeZone,
    /// `time_zone`'s IANA name as the database spells it, for storage and display.
    time_zone_name: String,
}

impl TaskSchedule {
    /// Builds a schedule from the raw fields of a request or a stored row.
    ///
    /// - `start_date`: `YYYY-MM-DD`, a real calendar date;
    /// - `time`: `HH:MM` or `HH:MM:SS`, 24-hour, two digits each;
    /// - `weekdays`: weekday names as [`Weekdays::from_names`] reads them; none means
    ///   once;
    /// - `time_zone`: an IANA name in any case (`america/chicago`, `UTC`), kept as the
    ///   database spells it; `None` or `""` (proto3's unset string) mean
    ///   [`DEFAULT_TIME_ZONE`].
    ///
    /// # Errors
    ///
    /// A [`ScheduleError`] with one [`FieldViolation`] for each bad field.
    pub fn parse(
        start_date: &str,
        time: &str,
        weekdays: &[String],
        time_zone: Option<&str>,
    ) -> Result<Self, ScheduleError> {
        let start_date = parse_start_date(start_date);
        let time = parse_start_time(time);
        let weekdays = Weekdays::from_names(weekdays).map_err(|unknown| FieldViolation {
            field: WEEKDAYS_FIELD,
            description: unknown.to_string(),
        });
        let time_zone = parse_time_zone(time_zone);
        match (start_date, time, weekdays, time_zone) {
            (Ok(start_date), Ok(time), Ok(weekdays), Ok((time_zone, time_zone_name))) => {
                Ok(TaskSchedule {
                    start_date,
                    time,
                    weekdays,
                    time_zone,
                    time_zone_name,
                })
            }
            (start_date, time, weekdays, time_zone) => Err(ScheduleError {
                violations: [
                    start_date.err(),
                    time.err(),
                    weekdays.err(),
                    time_zone.err(),
                ]
                .into_iter()
                .flatten()
                .collect(),
            }),
        }
    }

    /// The first day the task may run.
    pub fn start_date(&self) -> Date {
        self.start_date
    }

    /// The wall-clock time the task runs at, whole seconds.
    pub fn time(&self) -> Time {
        self.time
    }

    /// The weekdays the task repeats on; empty for a task that runs once.
    pub fn weekdays(&self) -> Weekdays {
        self.weekdays
    }

    /// The zone the wall-clock time is read in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// The zone's IANA name as the database spells it (`America/New_York`), which
    /// [`TaskSchedule::parse`] accepts back.
    pub fn time_zone_name(&self) -> &str {
        &self.time_zone_name
    }

    /// Whether the task runs once (no weekday selected) rather than weekly.
    pub fn runs_once(&self) -> bool {
        self.weekdays.is_empty()
    }

    /// The first occurrence strictly after `after`, or `None` when there is none (a
    /// one-off task whose time has come, or the end of the representable calendar).
    ///
    /// A nonexistent wall time runs shifted forward by the gap (02:30 → 03:30 EDT); a
    /// repeated one runs at its first instant only. See the [module docs](self).
    pub fn next_occurrence(&self, after: Timestamp) -> Option<Timestamp> {
        if self.runs_once() {
            return self.occurrence_on(self.start_date).filter(|&at| at > after);
        }
        let day_of_after = self.time_zone.to_datetime(after).date();
        let mut day = day_of_after
            .yesterday()
            .unwrap_or(day_of_after)
            .max(self.start_date);
        for _ in 0..SEARCH_DAYS {
            if self.weekdays.contains(day.weekday())
                && let Some(at) = self.occurrence_on(day)
                && at > after
            {
                return Some(at);
            }
            day = day.tomorrow().ok()?;
        }
        None
    }

    /// The occurrences strictly after `after`, in order (finite only for a one-off task).
    pub fn occurrences_after(&self, after: Timestamp) -> Occurrences<'_> {
        Occurrences {
            schedule: self,
            after,
        }
    }

    /// The occurrences at or after `from` and before `to`, in order.
    pub fn occurrences_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> impl Iterator<Item = Timestamp> + '_ {
        // Occurrences fall on whole seconds, so "after one nanosecond before `from`" is
        // "at or after `from`". Only `Timestamp::MIN` has no such predecessor, and no
        // occurrence falls on it.
        let after = from
            .checked_sub(SignedDuration::from_nanos(1))
            .unwrap_or(from);
        self.occurrences_after(after).take_while(move |&at| at < to)
    }

    /// The instant the task runs at on `day`, ignoring the weekdays; `None` past the
    /// end of the representable range.
    fn occurrence_on(&self, day: Date) -> Option<Timestamp> {
        // `compatible`: a gap pushes the time forward by its length, a fold takes the
        // earlier instant. The module docs say why.
        self.time_zone
            .to_ambiguous_timestamp(day.to_datetime(self.time))
            .compatible()
            .ok()
    }
}

/// The occurrences of a [`TaskSchedule`] after an instant, in order; from
/// [`TaskSchedule::occurrences_after`].
#[derive(Debug, Clone)]
pub struct Occurrences<'a> {
    /// Whose occurrences.
    schedule: &'a TaskSchedule,
    /// The last occurrence yielded, or the starting instant.
    after: Timestamp,
}

impl Iterator for Occurrences<'_> {
    type Item = Timestamp;

    fn next(&mut self) -> Option<Timestamp> {
        let at = self.schedule.next_occurrence(self.after)?;
        self.after = at;
        Some(at)
    }
}

impl FusedIterator for Occurrences<'_> {}

/// `YYYY-MM-DD`, a real calendar date.
fn parse_start_date(raw: &str) -> Result<Date, FieldViolation> {
    let invalid = || FieldViolation {
        field: START_DATE_FIELD,
        description: format!("{raw:?} is not a calendar date of the form YYYY-MM-DD"),
    };
    let Some([year, month, day]) = numbers_shaped(raw, "9999-99-99") else {
        return Err(invalid());
    };
    let (Ok(month), Ok(day)) = (i8::try_from(month), i8::try_from(day)) else {
        return Err(invalid());
    };
    Date::new(year, month, day).map_err(|_| invalid())
}

/// `HH:MM` or `HH:MM:SS`, 24-hour.
fn parse_start_time(raw: &str) -> Result<Time, FieldViolation> {
    let invalid = || FieldViolation {
        field: START_TIME_FIELD,
        description: format!(
            "{raw:?} is not a time of day of the form HH:MM or HH:MM:SS (24-hour)"
        ),
    };
    let [hour, minute, second] = match (
        numbers_shaped(raw, "99:99"),
        numbers_shaped(raw, "99:99:99"),
    ) {
        (Some([hour, minute]), _) => [hour, minute, 0],
        (_, Some(hms)) => hms,
        _ => return Err(invalid()),
    };
    let (Ok(hour), Ok(minute), Ok(second)) = (
        i8::try_from(hour),
        i8::try_from(minute),
        i8::try_from(second),
    ) else {
        return Err(invalid());
    };
    Time::new(hour, minute, second, 0).map_err(|_| invalid())
}

/// An IANA zone from jiff's database with its canonical name; none or `""` is
/// [`DEFAULT_TIME_ZONE`].
fn parse_time_zone(raw: Option<&str>) -> Result<(TimeZone, String), FieldViolation> {
    let name = match raw {
        None | Some("") => DEFAULT_TIME_ZONE,
        Some(name) => name,
    };
    let unknown = || FieldViolation {
        field: TIME_ZONE_FIELD,
        description: format!(
            "{name:?} is not an IANA time zone name such as {DEFAULT_TIME_ZONE} or UTC"
        ),
    };
    if REFUSED_ZONE_NAMES
        .iter()
        .any(|refused| refused.eq_ignore_ascii_case(name))
    {
        return Err(unknown());
    }
    let zone = TimeZone::get(name).map_err(|_| unknown())?;
    // `Etc/Unknown` loads but has no IANA name: it is jiff's "no zone".
    let canonical = zone.iana_name().ok_or_else(unknown)?.to_owned();
    Ok((zone, canonical))
}

/// The numbers in `raw` if it has exactly the shape `shape`, where each `9` stands for
/// one ASCII digit and any other character for itself; `N` is how many numbers the
/// shape has.
fn numbers_shaped<const N: usize>(raw: &str, shape: &str) -> Option<[i16; N]> {
    if raw.len() != shape.len() {
        return None;
    }
    let mut numbers = [0_i16; N];
    let mut index = 0;
    let mut in_number = false;
    for (byte, expected) in raw.bytes().zip(shape.bytes()) {
        if expected == b'9' {
            if !byte.is_ascii_digit() {
                return None;
            }
            let number = numbers.get_mut(index)?;
            *number = number
                .checked_mul(10)?
                .checked_add(i16::from(byte - b'0'))?;
            in_number = true;
        } else {
            if byte != expected {
                return None;
            }
            if in_number {
                index += 1;
                in_number = false;
            }
        }
    }
    if in_number {
        index += 1;
    }
    (index == N).then_some(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> Timestamp {
        text.parse().expect("a UTC timestamp")
    }

    fn utcs(texts: &[&str]) -> Vec<Timestamp> {
        texts.iter().map(|text| utc(text)).collect()
    }

    fn owned(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    fn schedule(start_date: &str, time: &str, weekdays: &[&str], zone: &str) -> TaskSchedule {
        TaskSchedule::parse(start_date, time, &owned(weekdays), Some(zone))
            .expect("a valid schedule")
    }

    fn violations(
        start_date: &str,
        time: &str,
        weekdays: &[&str],
        zone: &str,
    ) -> Vec<FieldViolation> {
        TaskSchedule::parse(start_date, time, &owned(weekdays), Some(zone))
            .expect_err("an invalid schedule")
            .into_violations()
    }

    /// Wall-clock time and UTC offset (in hours) of `at` in the schedule's zone.
    fn local(schedule: &TaskSchedule, at: Timestamp) -> (String, i32) {
        let zone = schedule.time_zone();
        (
            zone.to_datetime(at).to_string(),
            zone.to_offset(at).seconds() / 3600,
        )
    }

    // --- Weekdays

    #[test]
    fn weekday_names_parse_short_or_full_in_any_case() {
        let cases = [
            ("MON", Weekday::Monday),
            ("tuesday", Weekday::Tuesday),
            ("Wed", Weekday::Wednesday),
            ("THURSDAY", Weekday::Thursday),
            ("fri", Weekday::Friday),
            (" Sat ", Weekday::Saturday),
            ("SuNdAy", Weekday::Sunday),
        ];
        for (name, day) in cases {
            let days = Weekdays::from_names([name]).expect("a weekday name");
            assert_eq!(days.iter().collect::<Vec<_>>(), [day], "{name}");
        }
        let all = Weekdays::from_names(cases.map(|(name, _)| name)).expect("weekday names");
        assert_eq!(all, Weekdays::EVERY_DAY);
        assert_eq!(all.len(), 7);
    }

    #[test]
    fn weekdays_iterate_and_display_monday_first_whatever_the_input_order() {
        let days = Weekdays::from_names(["sun", "Thursday", "MON", "thu"]).expect("weekday names");
        assert_eq!(
            days.iter().collect::<Vec<_>>(),
            [Weekday::Monday, Weekday::Thursday, Weekday::Sunday]
        );
        assert_eq!(days.into_iter().count(), 3);
        assert_eq!(days.len(), 3);
        assert_eq!(days.to_string(), "MON,THU,SUN");
        assert_eq!(format!("{days:?}"), "Weekdays(MON,THU,SUN)");
        assert_eq!(
            Weekdays::EVERY_DAY.to_string(),
            "MON,TUE,WED,THU,FRI,SAT,SUN"
        );
    }

    #[test]
    fn unknown_weekday_names_are_all_reported_as_given() {
        let error =
            Weekdays::from_names(["MON", "Funday", "", "Mo", "Thurs"]).expect_err("unknown names");
        assert_eq!(error.names(), ["Funday", "", "Mo", "Thurs"]);
        assert_eq!(
            error.to_string(),
            r#"unknown weekday "Funday", "", "Mo", "Thurs": expected MON..SUN or MONDAY..SUNDAY, in any case"#
        );
    }

    #[test]
    fn no_weekday_names_make_the_empty_set_that_means_once() {
        let days = Weekdays::from_names(Vec::<String>::new()).expect("no names");
        assert_eq!(days, Weekdays::NONE);
        assert!(days.is_empty());
        assert_eq!(days.len(), 0);
        assert_eq!(days.iter().next(), None);
        assert_eq!(days.to_string(), "");
        assert_eq!("".parse::<Weekdays>(), Ok(Weekdays::NONE));
        assert_eq!(" ".parse::<Weekdays>(), Ok(Weekdays::NONE));
    }

    #[test]
    fn weekdays_read_back_their_display_form() {
        for names in [
            &["MON", "THU"][..],
            &["SUN"],
            &[],
            &["tue", "wed", "fri", "sat"],
        ] {
            let days = Weekdays::from_names(names).expect("weekday names");
            assert_eq!(days.to_string().parse::<Weekdays>(), Ok(days), "{names:?}");
        }
        assert_eq!(
            " mon , Thursday".parse::<Weekdays>(),
            Weekdays::from_names(["MON", "THU"])
        );
        assert_eq!(
            "MON,,THU"
                .parse::<Weekdays>()
                .map_err(|error| error.names().to_vec()),
            Err(vec![String::new()])
        );
    }

    #[test]
    fn weekdays_collect_from_jiff_weekdays() {
        let days: Weekdays = [Weekday::Thursday, Weekday::Monday, Weekday::Thursday]
            .into_iter()
            .collect();
        assert_eq!(Ok(days), Weekdays::from_names(["MON", "THU"]));
        assert!(days.contains(Weekday::Monday));
        assert!(days.contains(Weekday::Thursday));
        assert!(!days.contains(Weekday::Sunday));
        assert_eq!(Weekdays::NONE.with(Weekday::Sunday).to_string(), "SUN");
    }

    // --- Parsing a schedule

    #[test]
    fn a_schedule_without_a_time_zone_runs_in_new_york() {
        for zone in [None, Some("")] {
            let schedule = TaskSchedule::parse("2027-03-01", "06:00", &[], zone).expect("valid");
            assert_eq!(schedule.time_zone_name(), "America/New_York");
            assert_eq!(
                schedule.time_zone(),
                &TimeZone::get("America/New_York").expect("tzdb has New York")
            );
        }
    }

    #[test]
    fn a_schedule_keeps_its_fields_and_the_zone_name_as_the_database_spells_it() {
        let schedule = schedule(
            "2027-03-01",
            "06:05:07",
            &["thu", "Monday"],
            "america/chicago",
        );
        assert_eq!(schedule.start_date(), jiff::civil::date(2027, 3, 1));
        assert_eq!(schedule.time(), jiff::civil::time(6, 5, 7, 0));
        assert_eq!(schedule.weekdays().to_string(), "MON,THU");
        assert!(!schedule.runs_once());
        assert_eq!(schedule.time_zone_name(), "America/Chicago");
        assert_eq!(
            self::schedule("2027-03-01", "06:00", &[], "utc").time_zone_name(),
            "UTC"
        );
    }

    #[test]
    fn times_parse_with_or_without_seconds() {
        for (raw, expected) in [
            ("06:00", jiff::civil::time(6, 0, 0, 0)),
            ("00:00", jiff::civil::time(0, 0, 0, 0)),
            ("23:59", jiff::civil::time(23, 59, 0, 0)),
            ("23:59:59", jiff::civil::time(23, 59, 59, 0)),
            ("07:30:15", jiff::civil::time(7, 30, 15, 0)),
        ] {
            assert_eq!(
                schedule("2027-03-01", raw, &[], "UTC").time(),
                expected,
                "{raw}"
            );
        }
    }

    #[test]
    fn malformed_or_impossible_dates_are_start_date_violations() {
        for raw in [
            "2027-02-30",
            "2027-13-01",
            "2027-00-10",
            "2027-03-00",
            "2027-2-03",
            "27-03-14",
            "2027/03/14",
            "20270314",
            "2027-03-14T06:00",
            " 2027-03-14",
            "+2027-03-14",
            "",
        ] {
            let found = violations(raw, "06:00", &[], "UTC");
            assert_eq!(
                found,
                [FieldViolation {
                    field: START_DATE_FIELD,
                    description: format!("{raw:?} is not a calendar date of the form YYYY-MM-DD"),
                }],
                "{raw}"
            );
        }
        assert_eq!(
            schedule("2028-02-29", "06:00", &[], "UTC").start_date(),
            jiff::civil::date(2028, 2, 29)
        );
    }

    #[test]
    fn malformed_or_impossible_times_are_start_time_violations() {
        for raw in [
            "24:00",
            "06:60",
            "06:00:60",
            "6:00",
            "0600",
            "06:00:00.5",
            "06:00 ",
            "-1:00",
            "06h00",
            "",
        ] {
            let found = violations("2027-03-01", raw, &[], "UTC");
            assert_eq!(found.len(), 1, "{raw}");
            assert_eq!(found[0].field, "start_time", "{raw}");
            assert!(
                found[0]
                    .description
                    .starts_with(&format!("{raw:?} is not a time of day")),
                "{raw}"
            );
        }
    }

    #[test]
    fn unknown_weekdays_are_one_weekdays_violation() {
        let found = violations("2027-03-01", "06:00", &["MON", "Moon", "Thurs"], "UTC");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].field, "weekdays");
        assert!(
            found[0].description.contains(r#""Moon", "Thurs""#),
            "{}",
            found[0].description
        );
    }

    #[test]
    fn unknown_and_host_dependent_zones_are_time_zone_violations() {
        for raw in [
            "Mars/Olympus",
            "America/New York",
            "localtime",
            "LOCALTIME",
            "posixrules",
            "Factory",
            "Etc/Unknown",
            "+05:00",
            "EST5EDT,M3.2.0,M11.1.0",
            " UTC",
        ] {
            let found = violations("2027-03-01", "06:00", &[], raw);
            assert_eq!(
                found,
                [FieldViolation {
                    field: TIME_ZONE_FIELD,
                    description: format!(
                        "{raw:?} is not an IANA time zone name such as America/New_York or UTC"
                    ),
                }],
                "{raw}"
            );
        }
    }

    #[test]
    fn every_bad_field_is_reported_at_once_in_field_order() {
        let error = TaskSchedule::parse(
            "2027-02-30",
            "25:00",
            &owned(&["Funday"]),
            Some("Mars/Olympus"),
        )
        .expect_err("four bad fields");
        let fields: Vec<_> = error
            .violations()
            .iter()
            .map(|violation| violation.field)
            .collect();
        assert_eq!(
            fields,
            ["start_date", "start_time", "weekdays", "time_zone"]
        );
        assert_eq!(
            error.to_string(),
            "invalid task schedule: \
             start_date: \"2027-02-30\" is not a calendar date of the form YYYY-MM-DD; \
             start_time: \"25:00\" is not a time of day of the form HH:MM or HH:MM:SS (24-hour); \
             weekdays: unknown weekday \"Funday\": expected MON..SUN or MONDAY..SUNDAY, in any case; \
             time_zone: \"Mars/Olympus\" is not an IANA time zone name such as America/New_York or UTC"
        );
    }

    // --- Occurrences

    #[test]
    fn monday_and_thursday_in_march_2027_are_nine_instants_at_six_local() {
        let schedule = schedule("2027-01-01", "06:00", &["MON", "THU"], "America/New_York");
        // March 2027 in New York: from 00:00 EST on the 1st to 00:00 EDT on April 1st.
        let march: Vec<_> = schedule
            .occurrences_between(utc("2027-03-01T05:00:00Z"), utc("2027-04-01T04:00:00Z"))
            .collect();
        assert_eq!(
            march,
            utcs(&[
                "2027-03-01T11:00:00Z", // Mon, EST
                "2027-03-04T11:00:00Z", // Thu
                "2027-03-08T11:00:00Z",
                "2027-03-11T11:00:00Z",
                "2027-03-15T10:00:00Z", // Mon, EDT since the 14th
                "2027-03-18T10:00:00Z",
                "2027-03-22T10:00:00Z",
                "2027-03-25T10:00:00Z",
                "2027-03-29T10:00:00Z",
            ])
        );
        for at in march {
            assert!(local(&schedule, at).0.ends_with("T06:00:00"), "{at}");
        }
    }

    #[test]
    fn a_weekly_time_stays_at_six_local_across_spring_forward_and_fall_back() {
        let schedule = schedule("2026-01-01", "06:00", &["SUN"], "America/New_York");
        let spring: Vec<_> = schedule
            .occurrences_after(utc("2027-03-01T00:00:00Z"))
            .take(3)
            .collect();
        assert_eq!(
            spring,
            utcs(&[
                "2027-03-07T11:00:00Z",
                "2027-03-14T10:00:00Z",
                "2027-03-21T10:00:00Z"
            ])
        );
        let fall: Vec<_> = schedule
            .occurrences_after(utc("2026-10-24T00:00:00Z"))
            .take(3)
            .collect();
        assert_eq!(
            fall,
            utcs(&[
                "2026-10-25T10:00:00Z",
                "2026-11-01T11:00:00Z",
                "2026-11-08T11:00:00Z"
            ])
        );
        assert_eq!(
            local(&schedule, fall[0]),
            ("2026-10-25T06:00:00".to_owned(), -4)
        );
        assert_eq!(
            local(&schedule, fall[1]),
            ("2026-11-01T06:00:00".to_owned(), -5)
        );
        assert_eq!(
            local(&schedule, spring[1]),
            ("2027-03-14T06:00:00".to_owned(), -4)
        );
    }

    #[test]
    fn a_future_start_date_holds_back_the_first_occurrence() {
        // 2027-06-10 is a Thursday.
        let mondays = schedule("2027-06-10", "09:00", &["MON"], "America/New_York");
        assert_eq!(
            mondays.next_occurrence(utc("2026-12-01T00:00:00Z")),
            Some(utc("2027-06-14T13:00:00Z"))
        );
        let thursdays = schedule("2027-06-10", "09:00", &["THU"], "America/New_York");
        assert_eq!(
            thursdays.next_occurrence(utc("2026-12-01T00:00:00Z")),
            Some(utc("2027-06-10T13:00:00Z"))
        );
    }

    #[test]
    fn a_start_date_on_a_selected_weekday_runs_later_that_same_day() {
        // 2026-11-12 is a Thursday; 10:00 EST is 15:00 UTC.
        let schedule = schedule("2026-11-12", "18:00", &["THU"], "America/New_York");
        assert_eq!(
            schedule.next_occurrence(utc("2026-11-12T15:00:00Z")),
            Some(utc("2026-11-12T23:00:00Z"))
        );
        // Strictly after: the occurrence itself is not its own successor.
        assert_eq!(
            schedule.next_occurrence(utc("2026-11-12T23:00:00Z")),
            Some(utc("2026-11-19T23:00:00Z"))
        );
    }

    #[test]
    fn a_task_without_weekdays_runs_once_then_never() {
        let schedule = schedule("2026-12-01", "07:15", &[], "America/New_York");
        assert!(schedule.runs_once());
        let once = utc("2026-12-01T12:15:00Z");
        assert_eq!(
            schedule.next_occurrence(utc("2020-01-01T00:00:00Z")),
            Some(once)
        );
        assert_eq!(
            schedule.next_occurrence(utc("2026-12-01T12:14:59Z")),
            Some(once)
        );
        assert_eq!(schedule.next_occurrence(once), None);
        assert_eq!(schedule.next_occurrence(utc("2027-01-01T00:00:00Z")), None);
        assert_eq!(
            schedule
                .occurrences_after(utc("2026-01-01T00:00:00Z"))
                .collect::<Vec<_>>(),
            [once]
        );
    }

    #[test]
    fn a_time_in_the_spring_forward_gap_runs_shifted_forward_by_the_gap() {
        // 2027-03-14 02:30 does not exist in New York: it runs at 03:30 EDT.
        let weekly = schedule("2027-03-01", "02:30", &["SUN"], "America/New_York");
        let at = weekly.next_occurrence(utc("2027-03-13T12:00:00Z"));
        assert_eq!(at, Some(utc("2027-03-14T07:30:00Z")));
        assert_eq!(
            at.map(|at| local(&weekly, at)),
            Some(("2027-03-14T03:30:00".to_owned(), -4))
        );
        assert_eq!(
            weekly.next_occurrence(utc("2027-03-14T07:30:00Z")),
            Some(utc("2027-03-21T06:30:00Z"))
        );
        let once = schedule("2027-03-14", "02:30", &[], "America/New_York");
        assert_eq!(
            once.next_occurrence(utc("2027-03-01T00:00:00Z")),
            Some(utc("2027-03-14T07:30:00Z"))
        );
    }

    #[test]
    fn a_time_in_the_fall_back_fold_runs_once_at_its_first_instant() {
        // 2026-11-01 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
        let weekly = schedule("2026-10-01", "01:30", &["SUN"], "America/New_York");
        let first = utc("2026-11-01T05:30:00Z");
        assert_eq!(
            weekly.next_occurrence(utc("2026-10-31T12:00:00Z")),
            Some(first)
        );
        assert_eq!(
            local(&weekly, first),
            ("2026-11-01T01:30:00".to_owned(), -4)
        );
        let next_week = Some(utc("2026-11-08T06:30:00Z"));
        assert_eq!(weekly.next_occurrence(first), next_week);
        assert_eq!(
            weekly.next_occurrence(utc("2026-11-01T06:00:00Z")),
            next_week
        );

        let daily = schedule(
            "2026-10-01",
            "01:30",
            &["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"],
            "America/New_York",
        );
        assert_eq!(
            daily
                .occurrences_between(utc("2026-10-31T00:00:00Z"), utc("2026-11-03T00:00:00Z"))
                .collect::<Vec<_>>(),
            utcs(&[
                "2026-10-31T05:30:00Z",
                "2026-11-01T05:30:00Z",
                "2026-11-02T06:30:00Z"
            ])
        );
    }

    #[test]
    fn chicago_schedules_follow_central_time() {
        let mondays = schedule("2027-01-01", "06:00", &["MON"], "America/Chicago");
        assert_eq!(
            mondays
                .occurrences_after(utc("2027-03-07T00:00:00Z"))
                .take(2)
                .collect::<Vec<_>>(),
            utcs(&["2027-03-08T12:00:00Z", "2027-03-15T11:00:00Z"])
        );
        let gap = schedule("2027-03-14", "02:30", &[], "America/Chicago");
        assert_eq!(
            gap.next_occurrence(utc("2027-03-01T00:00:00Z")),
            Some(utc("2027-03-14T08:30:00Z"))
        );
    }

    #[test]
    fn utc_schedules_run_at_the_same_instant_all_year() {
        let sundays = schedule("2026-10-01", "01:30", &["SUN"], "UTC");
        assert_eq!(
            sundays
                .occurrences_after(utc("2026-10-30T00:00:00Z"))
                .take(2)
                .collect::<Vec<_>>(),
            utcs(&["2026-11-01T01:30:00Z", "2026-11-08T01:30:00Z"])
        );
        assert_eq!(
            sundays.next_occurrence(utc("2027-03-13T00:00:00Z")),
            Some(utc("2027-03-14T01:30:00Z"))
        );
    }

    #[test]
    fn a_time_pushed_past_midnight_by_a_gap_still_counts_for_its_own_day() {
        // Samoa skipped Friday 2011-12-30: 10:00 that day is 10:00 Saturday, +14.
        let fridays = schedule("2011-12-01", "10:00", &["FRI"], "Pacific/Apia");
        let skipped_friday = utc("2011-12-30T20:00:00Z");
        assert_eq!(
            local(&fridays, skipped_friday),
            ("2011-12-31T10:00:00".to_owned(), 14)
        );
        // Asked on Saturday 09:00 local, the Friday occurrence is still ahead.
        assert_eq!(
            fridays.next_occurrence(utc("2011-12-30T19:00:00Z")),
            Some(skipped_friday)
        );
        assert_eq!(
            fridays.next_occurrence(skipped_friday),
            Some(utc("2012-01-05T20:00:00Z"))
        );
    }

    #[test]
    fn occurrences_between_includes_from_and_excludes_to() {
        let schedule = schedule("2026-01-01", "06:00", &["SUN"], "UTC");
        let sundays = |from: &str, to: &str| -> Vec<Timestamp> {
            schedule.occurrences_between(utc(from), utc(to)).collect()
        };
        assert_eq!(
            sundays("2026-11-01T06:00:00Z", "2026-11-15T06:00:00Z"),
            utcs(&["2026-11-01T06:00:00Z", "2026-11-08T06:00:00Z"])
        );
        assert_eq!(sundays("2026-11-01T06:00:00Z", "2026-11-01T06:00:00Z"), []);
        assert_eq!(sundays("2026-11-02T00:00:00Z", "2026-11-01T00:00:00Z"), []);
    }

    #[test]
    fn occurrences_stop_at_the_end_of_the_calendar_instead_of_failing() {
        let daily = schedule(
            "9999-12-20",
            "12:00",
            &["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"],
            "America/New_York",
        );
        let last_days: Vec<_> = daily
            .occurrences_after(utc("9999-12-25T00:00:00Z"))
            .collect();
        assert_eq!(last_days.first(), Some(&utc("9999-12-25T17:00:00Z")));
        assert!(last_days.len() <= 7, "{last_days:?}");
        assert_eq!(daily.next_occurrence(Timestamp::MAX), None);
    }

    /// Prints the zone jiff sees for the process, for
    /// `occurrences_do_not_depend_on_the_process_time_zone`, which runs this test in a
    /// child process with `TZ` set and checks that `TZ` took effect there.
    #[test]
    fn a_schedule_gives_the_same_instant_whatever_the_process_zone() {
        println!(
            "{PROCESS_ZONE_MARKER}{}",
            TimeZone::system().iana_name().unwrap_or("(unnamed)")
        );
        let schedule = schedule("2027-03-01", "06:00", &["MON"], "America/New_York");
        assert_eq!(
            schedule.next_occurrence(utc("2027-03-01T04:59:59Z")),
            Some(utc("2027-03-01T11:00:00Z"))
        );
    }

    /// What the probe above prints before the process zone's name.
    const PROCESS_ZONE_MARKER: &str = "process time zone: ";

    /// Mutating `TZ` in this process would race the tests running beside it (and is
    /// `unsafe` in edition 2024), so this runs exact-instant tests of this module again
    /// in a fresh copy of the test binary, under zones far from New York and from each
    /// other. The probe's output proves jiff in the child did see `TZ`.
    #[test]
    fn occurrences_do_not_depend_on_the_process_time_zone() {
        let module = module_path!()
            .split_once("::")
            .map_or(module_path!(), |(_crate, path)| path);
        let tests = [
            "a_schedule_gives_the_same_instant_whatever_the_process_zone",
            "monday_and_thursday_in_march_2027_are_nine_instants_at_six_local",
            "a_weekly_time_stays_at_six_local_across_spring_forward_and_fall_back",
            "a_start_date_on_a_selected_weekday_runs_later_that_same_day",
            "a_time_in_the_spring_forward_gap_runs_shifted_forward_by_the_gap",
            "a_time_in_the_fall_back_fold_runs_once_at_its_first_instant",
            "a_time_pushed_past_midnight_by_a_gap_still_counts_for_its_own_day",
        ];
        let test_binary = std::env::current_exe().expect("the test binary's path");
        for zone in ["Asia/Tokyo", "Pacific/Kiritimati", "Etc/GMT+12"] {
            let output = std::process::Command::new(&test_binary)
                .env("TZ", zone)
                .args(["--exact", "--nocapture", "--test-threads=1"])
                .args(tests.map(|test| format!("{module}::{test}")))
                .output()
                .expect("the test binary runs");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let report = format!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
            assert!(output.status.success(), "TZ={zone}:\n{report}");
            assert!(
                stdout.contains(&format!("test result: ok. {} passed", tests.len())),
                "TZ={zone}:\n{report}"
            );
            assert!(
                stdout.contains(&format!("{PROCESS_ZONE_MARKER}{zone}\n")),
                "TZ={zone} did not reach jiff in the child:\n{report}"
            );
        }
    }
}
