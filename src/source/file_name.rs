//! The name of an ALiS file, parsed (rules §1.1).
//!
//! The state drops files into a shared folder that also holds other things: older
//! exports, spreadsheets, backups, operators' notes. The name is the only thing that
//! says which file is an ALiS export and how new it is, so it is parsed once, strictly,
//! into an [`AlisFileName`]; everything downstream (choosing the newest file, the file
//! cache, the report) works with that value and never re-reads the raw string.
//!
//! Strictness is the point: a near miss (`Curr_Lic_Eds_End_Limits_latest.csv`, an
//! impossible date, a `.csv.bak`) is rejected with a reason for the run log rather
//! than guessed at, and a name that could move a path (`/`, `\`, `..`) or corrupt a
//! log line (NUL, control characters) never becomes an `AlisFileName`, so it is safe
//! to join an `AlisFileName` onto a directory.

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, Time};

/// The fixed, case-sensitive start of every ALiS file name.
pub const PREFIX: &str = "Curr_Lic_Eds_End_Limits_";

/// A valid ALiS file name: `Curr_Lic_Eds_End_Limits_<YYYYMMDD>[[_]HHMMSS][.csv|.txt]`.
///
/// Ordering is "newest is greatest": by date, then time of day, where a name without
/// a time sorts before the same date with any time; names that carry the same date
/// and time (say `…_20261127.csv` and `…_20261127.txt`) are ordered by the full name,
/// so the order is total and the same on every replica.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlisFileName {
    // Field order is the derived ordering: date, then time (`None` < `Some`), then the
    // name as the tie-break. The name determines the other two, so the derived
    // equality is equality of names.
    date: Date,
    time: Option<Time>,
    name: String,
}

impl AlisFileName {
    /// The name exactly as it appears in the folder.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The datestamp's calendar date.
    pub fn date(&self) -> Date {
        self.date
    }

    /// The datestamp's time of day, when the name carries one.
    pub fn time(&self) -> Option<Time> {
        self.time
    }
}

impl fmt::Display for AlisFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl AsRef<str> for AlisFileName {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

/// Why a name is not an ALiS file name. The messages say what is wrong with the name
/// (not the name itself: the caller has it and logs it beside the reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileNameError {
    /// The name is empty.
    #[error("the name is empty")]
    Empty,
    /// The name holds `/` or `\`, so it would point somewhere else than the folder.
    #[error("the name contains a path separator (`/` or `\\`)")]
    PathSeparator,
    /// The name holds `..`.
    #[error("the name contains `..`")]
    DotDot,
    /// The name holds NUL or another control character.
    #[error("the name contains a control character")]
    ControlCharacter,
    /// The name starts with the prefix in another letter case.
    #[error("the prefix must be exactly `{PREFIX}` (letter case matters)")]
    PrefixCase,
    /// The name does not start with the prefix at all.
    #[error("the name does not start with `{PREFIX}`")]
    NoPrefix,
    /// What follows the prefix is not `YYYYMMDD`, `YYYYMMDDHHMMSS` or
    /// `YYYYMMDD_HHMMSS`.
    #[error(
        "`{0}` after the prefix is not a datestamp (YYYYMMDD, YYYYMMDDHHMMSS or YYYYMMDD_HHMMSS)"
    )]
    Datestamp(String),
    /// The eight date digits are not a calendar date.
    #[error("`{0}` is not a calendar date (YYYYMMDD)")]
    NotADate(String),
    /// The six time digits are not a time of day.
    #[error("`{0}` is not a time of day (HHMMSS, 000000 to 235959)")]
    NotATime(String),
    /// The extension is neither `csv` nor `txt`.
    #[error("the extension `.{0}` is not `.csv` or `.txt`")]
    Extension(String),
}

impl FromStr for AlisFileName {
    type Err = FileNameError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        check_safe(name)?;
        let rest = strip_prefix(name)?;
        let (stamp, ext) = match rest.split_once('.') {
            Some((stamp, ext)) => (stamp, Some(ext)),
            None => (rest, None),
        };
        if let Some(ext) = ext
            && !ext.eq_ignore_ascii_case("csv")
            && !ext.eq_ignore_ascii_case("txt")
        {
            return Err(FileNameError::Extension(ext.to_owned()));
        }
        let (date, time) = parse_datestamp(stamp)?;
        Ok(Self {
            date,
            time,
            name: name.to_owned(),
        })
    }
}

/// Rejects names that could escape the folder or corrupt a log line, whatever else
/// they look like.
fn check_safe(name: &str) -> Result<(), FileNameError> {
    if name.is_empty() {
        return Err(FileNameError::Empty);
    }
    if name.contains(['/', '\\']) {
        return Err(FileNameError::PathSeparator);
    }
    if name.contains("..") {
        return Err(FileNameError::DotDot);
    }
    if name.chars().any(char::is_control) {
        return Err(FileNameError::ControlCharacter);
    }
    Ok(())
}

fn strip_prefix(name: &str) -> Result<&str, FileNameError> {
    if let Some(rest) = name.strip_prefix(PREFIX) {
        return Ok(rest);
    }
    // `get` rather than slicing: the name may hold multi-byte characters.
    match name.get(..PREFIX.len()) {
        Some(start) if start.eq_ignore_ascii_case(PREFIX) => Err(FileNameError::PrefixCase),
        _ => Err(FileNameError::NoPrefix),
    }
}

/// `YYYYMMDD`, `YYYYMMDDHHMMSS` or `YYYYMMDD_HHMMSS`, each part a real date or time.
fn parse_datestamp(stamp: &str) -> Result<(Date, Option<Time>), FileNameError> {
    let shape_error = || FileNameError::Datestamp(stamp.to_owned());
    // ASCII first: the byte offsets below then fall on character boundaries.
    if !stamp.is_ascii() {
        return Err(shape_error());
    }
    let (date_digits, time_digits) = match stamp.len() {
        8 => (stamp, None),
        14 => (&stamp[..8], Some(&stamp[8..])),
        15 if stamp.as_bytes()[8] == b'_' => (&stamp[..8], Some(&stamp[9..])),
        _ => return Err(shape_error()),
    };
    // Digits only: `parse` would also accept a sign.
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(date_digits) || !time_digits.is_none_or(all_digits) {
        return Err(shape_error());
    }
    let date =
        parse_date(date_digits).ok_or_else(|| FileNameError::NotADate(date_digits.into()))?;
    let time = match time_digits {
        Some(digits) => {
            Some(parse_time(digits).ok_or_else(|| FileNameError::NotATime(digits.into()))?)
        }
        None => None,
    };
    Ok((date, time))
}

/// Eight ASCII digits → a calendar date, or `None` when there is no such day.
fn parse_date(digits: &str) -> Option<Date> {
    let year = digits.get(..4)?.parse().ok()?;
    let month = digits.get(4..6)?.parse().ok()?;
    let day = digits.get(6..8)?.parse().ok()?;
    Date::new(year, month, day).ok()
}

/// Six ASCII digits → a time of day, or `None` when out of range.
fn parse_time(digits: &str) -> Option<Time> {
    let hour = digits.get(..2)?.parse().ok()?;
    let minute = digits.get(2..4)?.parse().ok()?;
    let second = digits.get(4..6)?.parse().ok()?;
    Time::new(hour, minute, second, 0).ok()
}

#[cfg(test)]
mod tests {
    use jiff::civil::{date, time};

    use super::*;

    fn parse(name: &str) -> Result<AlisFileName, FileNameError> {
        name.parse()
    }

    fn ok(name: &str) -> AlisFileName {
        parse(name).unwrap_or_else(|e| panic!("{name} should parse: {e}"))
    }

    #[test]
    fn a_date_only_name_with_csv_extension_parses() {
        let name = ok("Curr_Lic_Eds_End_Limits_20261127.csv");
        assert_eq!(name.name(), "Curr_Lic_Eds_End_Limits_20261127.csv");
        assert_eq!(name.date(), date(2026, 11, 27));
        assert_eq!(name.time(), None);
    }

    #[test]
    fn a_time_after_an_underscore_parses() {
        let name = ok("Curr_Lic_Eds_End_Limits_20261127_235959.csv");
        assert_eq!(name.date(), date(2026, 11, 27));
        assert_eq!(name.time(), Some(time(23, 59, 59, 0)));
    }

    #[test]
    fn a_time_directly_after_the_date_parses() {
        let name = ok("Curr_Lic_Eds_End_Limits_20261127000000.txt");
        assert_eq!(name.time(), Some(time(0, 0, 0, 0)));
    }

    #[test]
    fn the_extension_may_be_csv_or_txt_in_any_case_or_absent() {
        for ext in [".csv", ".CSV", ".Csv", ".txt", ".TXT", ".tXt", ""] {
            let name = format!("Curr_Lic_Eds_End_Limits_20261127{ext}");
            assert_eq!(ok(&name).name(), name);
        }
    }

    #[test]
    fn other_extensions_are_rejected() {
        for (name, ext) in [
            ("Curr_Lic_Eds_End_Limits_20261127.xlsx", "xlsx"),
            ("Curr_Lic_Eds_End_Limits_20261127.csv.bak", "csv.bak"),
            ("Curr_Lic_Eds_End_Limits_20261127.", ""),
            ("Curr_Lic_Eds_End_Limits_20261127.csv ", "csv "),
        ] {
            assert_eq!(
                parse(name),
                Err(FileNameError::Extension(ext.into())),
                "{name}"
            );
        }
    }

    #[test]
    fn the_prefix_is_case_sensitive() {
        for name in [
            "curr_lic_eds_end_limits_20261127.csv",
            "CURR_LIC_EDS_END_LIMITS_20261127.csv",
            "Curr_Lic_Eds_End_limits_20261127.csv",
        ] {
            assert_eq!(parse(name), Err(FileNameError::PrefixCase), "{name}");
        }
    }

    #[test]
    fn names_without_the_prefix_are_rejected() {
        for name in [
            "Curr_Lic_Eds_End_Limits20261127.csv",
            "Curr_Lic_Eds_20261127.csv",
            " Curr_Lic_Eds_End_Limits_20261127.csv",
            "xCurr_Lic_Eds_End_Limits_20261127.csv",
            "notes.txt",
            "é",
        ] {
            assert_eq!(parse(name), Err(FileNameError::NoPrefix), "{name}");
        }
    }

    #[test]
    fn a_word_instead_of_a_datestamp_is_rejected() {
        assert_eq!(
            parse("Curr_Lic_Eds_End_Limits_latest.csv"),
            Err(FileNameError::Datestamp("latest".into()))
        );
    }

    #[test]
    fn datestamps_of_the_wrong_shape_are_rejected() {
        for stamp in [
            "",
            "2026112",
            "202611270",
            "2026-11-27",
            "20261127-235959",
            "20261127_2359",
            "20261127__235959",
            "20261127_23595",
            "20261127_2359590",
            "2026112_7235959",
            "+2026112",
            "２０２６１１２７",
            "2026112é12345",
            "20261127_2359é",
            "20261127T235959",
            "20261127 235959",
        ] {
            let name = format!("Curr_Lic_Eds_End_Limits_{stamp}.csv");
            assert_eq!(
                parse(&name),
                Err(FileNameError::Datestamp(stamp.into())),
                "{name}"
            );
        }
    }

    #[test]
    fn impossible_calendar_dates_are_rejected() {
        for stamp in ["20261399", "20261301", "20261100", "20261131", "20250229"] {
            let name = format!("Curr_Lic_Eds_End_Limits_{stamp}.csv");
            assert_eq!(
                parse(&name),
                Err(FileNameError::NotADate(stamp.into())),
                "{name}"
            );
        }
    }

    #[test]
    fn a_leap_day_in_a_leap_year_is_a_date() {
        assert_eq!(
            ok("Curr_Lic_Eds_End_Limits_20280229").date(),
            date(2028, 2, 29)
        );
    }

    #[test]
    fn impossible_times_of_day_are_rejected() {
        for digits in ["240000", "236000", "235960", "999999"] {
            for sep in ["", "_"] {
                let name = format!("Curr_Lic_Eds_End_Limits_20261127{sep}{digits}.csv");
                assert_eq!(
                    parse(&name),
                    Err(FileNameError::NotATime(digits.into())),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn names_with_path_separators_are_rejected() {
        for name in [
            "inbox/Curr_Lic_Eds_End_Limits_20261127.csv",
            "Curr_Lic_Eds_End_Limits_20261127.csv/",
            "inbox\\Curr_Lic_Eds_End_Limits_20261127.csv",
            "/Curr_Lic_Eds_End_Limits_20261127.csv",
        ] {
            assert_eq!(parse(name), Err(FileNameError::PathSeparator), "{name}");
        }
    }

    #[test]
    fn names_with_dot_dot_are_rejected() {
        for name in [
            "..Curr_Lic_Eds_End_Limits_20261127.csv",
            "Curr_Lic_Eds_End_Limits_20261127..csv",
            "..",
        ] {
            assert_eq!(parse(name), Err(FileNameError::DotDot), "{name}");
        }
    }

    #[test]
    fn names_with_nul_or_control_characters_are_rejected() {
        for name in [
            "Curr_Lic_Eds_End_Limits_20261127.csv\0",
            "Curr_Lic_Eds_End_Limits_20261127\n.csv",
            "Curr_Lic_Eds_End_Limits_20261127.csv\r",
            "\u{1b}[2JCurr_Lic_Eds_End_Limits_20261127.csv",
            "Curr_Lic_Eds_End_Limits_20261127\u{7f}.csv",
            "Curr_Lic_Eds_End_Limits_20261127\u{85}.csv",
        ] {
            assert_eq!(
                parse(name),
                Err(FileNameError::ControlCharacter),
                "{name:?}"
            );
        }
    }

    #[test]
    fn an_empty_name_is_rejected() {
        assert_eq!(parse(""), Err(FileNameError::Empty));
    }

    #[test]
    fn errors_say_why_the_name_was_rejected() {
        let message = |name: &str| parse(name).map(|_| ()).unwrap_err().to_string();
        assert_eq!(
            message("Curr_Lic_Eds_End_Limits_20261399.csv"),
            "`20261399` is not a calendar date (YYYYMMDD)"
        );
        assert_eq!(
            message("curr_lic_eds_end_limits_20261127.csv"),
            "the prefix must be exactly `Curr_Lic_Eds_End_Limits_` (letter case matters)"
        );
        assert_eq!(
            message("Curr_Lic_Eds_End_Limits_20261127.csv.bak"),
            "the extension `.csv.bak` is not `.csv` or `.txt`"
        );
    }

    #[test]
    fn a_later_date_is_newer() {
        assert!(
            ok("Curr_Lic_Eds_End_Limits_20261128.csv")
                > ok("Curr_Lic_Eds_End_Limits_20261127_235959.csv")
        );
        assert!(ok("Curr_Lic_Eds_End_Limits_20270101") > ok("Curr_Lic_Eds_End_Limits_20261231"));
    }

    #[test]
    fn a_name_without_a_time_sorts_before_the_same_date_with_a_time() {
        assert!(
            ok("Curr_Lic_Eds_End_Limits_20261127.csv")
                < ok("Curr_Lic_Eds_End_Limits_20261127_000000.csv")
        );
        // Even when the name without a time would sort later as a plain string.
        assert!(
            ok("Curr_Lic_Eds_End_Limits_20261127.txt")
                < ok("Curr_Lic_Eds_End_Limits_20261127000000.csv")
        );
    }

    #[test]
    fn a_later_time_on_the_same_date_is_newer_whichever_separator_it_uses() {
        assert!(
            ok("Curr_Lic_Eds_End_Limits_20261127_080000.csv")
                > ok("Curr_Lic_Eds_End_Limits_20261127075959.csv")
        );
        assert!(
            ok("Curr_Lic_Eds_End_Limits_20261127080001.csv")
                > ok("Curr_Lic_Eds_End_Limits_20261127_080000.csv")
        );
    }

    #[test]
    fn equal_datestamps_are_ordered_by_the_full_name() {
        let mut names = [
            ok("Curr_Lic_Eds_End_Limits_20261127.txt"),
            ok("Curr_Lic_Eds_End_Limits_20261127"),
            ok("Curr_Lic_Eds_End_Limits_20261127.csv"),
            ok("Curr_Lic_Eds_End_Limits_20261127.CSV"),
        ];
        names.sort();
        let sorted: Vec<&str> = names.iter().map(AlisFileName::name).collect();
        assert_eq!(
            sorted,
            [
                "Curr_Lic_Eds_End_Limits_20261127",
                "Curr_Lic_Eds_End_Limits_20261127.CSV",
                "Curr_Lic_Eds_End_Limits_20261127.csv",
                "Curr_Lic_Eds_End_Limits_20261127.txt",
            ]
        );
        let a = ok("Curr_Lic_Eds_End_Limits_20261127_120000");
        let b = ok("Curr_Lic_Eds_End_Limits_20261127120000");
        assert_ne!(a, b);
        assert_ne!(a.cmp(&b), std::cmp::Ordering::Equal);
    }

    #[test]
    fn names_display_as_written() {
        let name = ok("Curr_Lic_Eds_End_Limits_20261127_080000.TXT");
        assert_eq!(
            name.to_string(),
            "Curr_Lic_Eds_End_Limits_20261127_080000.TXT"
        );
    }
}
