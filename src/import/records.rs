//! The values the import pipeline passes between its steps: what the ALiS file says
//! (educators, their certifications and endorsements) and who the district employs.
//!
//! These are plain data. Parsing produces [`ParsedFile`], the store produces
//! [`ActiveEmployee`]s, planning combines both.

use std::fmt;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// An ALiS Educator ID or an ERP State Staff ID, normalised for comparison.
///
/// Rules §2.1: IDs are trimmed; when both sides are all digits they compare as
/// numbers, so leading zeros do not matter. Storing the all-digit form without its
/// leading zeros makes plain equality implement that rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EducatorId(String);

impl EducatorId {
    /// Normalises a raw ID; `None` when it is blank.
    pub fn parse(raw: &str) -> Option<Self> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return None;
        }
        if trimmed.bytes().all(|b| b.is_ascii_digit()) {
            let digits = trimmed.trim_start_matches('0');
            let canonical = if digits.is_empty() { "0" } else { digits };
            return Some(Self(canonical.to_owned()));
        }
        Some(Self(trimmed.to_owned()))
    }

    /// The normalised form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EducatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A last or first name normalised for comparison (rules §2.1): trimmed, runs of
/// white space collapsed to one space, Unicode case folded. Nothing else: accents and
/// punctuation stay significant (`O'BRIEN` and `OBrien` differ).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameKey(String);

impl NameKey {
    /// Normalises a name as written in the file or the ERP.
    pub fn new(raw: &str) -> Self {
        // The parser normalises two names per row of the statewide file: ASCII names,
        // nearly all of them, are built in one allocation. For ASCII text the three
        // case conversions below come down to ASCII lowercasing.
        if raw.is_ascii() {
            let mut folded = Vec::with_capacity(raw.len());
            let mut space = false;
            for &byte in raw.as_bytes() {
                // `char::is_whitespace` on ASCII: these six.
                if matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
                    space = !folded.is_empty();
                } else {
                    if space {
                        folded.push(b' ');
                        space = false;
                    }
                    folded.push(byte.to_ascii_lowercase());
                }
            }
            // ASCII in, ASCII out: the conversion cannot fail.
            return Self(String::from_utf8(folded).unwrap_or_default());
        }
        let collapsed = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        // `to_lowercase` is Unicode-aware; full case folding differs from it only for
        // a handful of characters (e.g. final sigma, `ß`), handled by folding the
        // lowercase form once more through uppercase.
        let folded = collapsed.to_lowercase().to_uppercase().to_lowercase();
        Self(folded)
    }

    /// The normalised form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An educator's full name as the file writes it, with its comparison key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName {
    /// Last name as written (trimmed).
    pub last: String,
    /// First name as written (trimmed).
    pub first: String,
}

impl PersonName {
    /// Builds a name from raw values, trimming them.
    pub fn new(last: &str, first: &str) -> Self {
        Self {
            last: last.trim().to_owned(),
            first: first.trim().to_owned(),
        }
    }

    /// The (last, first) comparison key.
    pub fn key(&self) -> (NameKey, NameKey) {
        (NameKey::new(&self.last), NameKey::new(&self.first))
    }
}

/// One endorsement record: identified within its certification by (code, grade level).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endorsement {
    /// Endorsement code, e.g. `2-05`.
    pub code: String,
    /// Description from the file, e.g. `English`.
    pub description: Option<String>,
    /// Grade range, e.g. `7-12`.
    pub grade_level: Option<String>,
    /// Endorsement issue date; `None` when the file leaves it blank.
    pub issue_date: Option<Date>,
    /// Endorsement expiration date (the last valid day); `None` when blank.
    pub expiration_date: Option<Date>,
    /// Limitations, distinct, in file order.
    pub limits: Vec<String>,
}

/// One certification (licence) record with its endorsements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certification {
    /// Licence number, when the file gives one.
    pub license_number: Option<String>,
    /// Licence type, e.g. `Level II Professional Educator`.
    pub license_type: String,
    /// Status code as written (trimmed), e.g. `ACT`.
    pub status: String,
    /// Licence issue date; `None` when blank.
    pub issue_date: Option<Date>,
    /// Licence expiration date (the last valid day); `None` when blank.
    pub expiration_date: Option<Date>,
    /// Endorsements in file order of first appearance.
    pub endorsements: Vec<Endorsement>,
}

impl Certification {
    /// Rules §1.6: only `ACT` and `UDR` (trimmed, case-insensitive) are imported.
    pub fn is_importable(&self) -> bool {
        let status = self.status.trim();
        status.eq_ignore_ascii_case("ACT") || status.eq_ignore_ascii_case("UDR")
    }

    /// The status as counted in the report: trimmed and upper-cased.
    pub fn status_code(&self) -> String {
        self.status.trim().to_uppercase()
    }
}

/// An educator from the file with all of their certification records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Educator {
    /// Normalised Educator ID.
    pub id: EducatorId,
    /// The Educator ID as written (trimmed), for messages.
    pub raw_id: String,
    /// Name as written on the educator's first valid row.
    pub name: PersonName,
    /// Certification records in file order of first appearance.
    pub certifications: Vec<Certification>,
}

/// A data row the parser skipped, with its 1-based physical line number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidRow {
    /// Line of the file where the row starts (1-based, the header is a line too).
    pub line: u64,
    /// Why it was skipped, e.g. `LicenseIssueDate: not a date: 13/45/2020`.
    pub reason: String,
}

/// The outcome of parsing a whole file that was not rejected.
#[derive(Debug, Clone, Default)]
pub struct ParsedFile {
    /// Non-blank rows after the header, valid or not.
    pub data_rows: u64,
    /// Rows skipped, in file order.
    pub invalid_rows: Vec<InvalidRow>,
    /// Educators the caller asked to keep, in file order of first appearance.
    pub educators: Vec<Educator>,
    /// Distinct educators (by normalised ID, over valid rows) the caller did not keep.
    pub educators_not_kept: u64,
    /// True when the file was not valid UTF-8 and was decoded as Windows-1252.
    pub decoded_as_windows_1252: bool,
}

/// An active employee of the district, as the ERP tables describe them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveEmployee {
    /// `employees.id`.
    pub id: i64,
    /// `employees.employee_number`, what HR recognises.
    pub employee_number: String,
    /// `employees.state_staff_id` as stored (may be absent).
    pub state_staff_id: Option<String>,
    /// Last name as stored.
    pub last_name: String,
    /// First name as stored.
    pub first_name: String,
    /// Whether the employee's job class requires certification.
    pub certification_required: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The general (Unicode) normalisation, which the ASCII path must agree with.
    fn unicode_key(raw: &str) -> String {
        let collapsed = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        collapsed.to_lowercase().to_uppercase().to_lowercase()
    }

    #[test]
    fn ascii_names_normalise_as_unicode_names_do() {
        for raw in [
            "Smith",
            "  O'Brien  ",
            "Van der   Berg",
            "ST.\tPIERRE",
            "Anne\u{b}Marie\r\n",
            "",
            "   ",
            "McAllister-JONES 3rd",
        ] {
            assert_eq!(NameKey::new(raw).as_str(), unicode_key(raw), "{raw:?}");
        }
    }

    #[test]
    fn non_ascii_names_are_case_folded() {
        assert_eq!(NameKey::new(" Østergaard ").as_str(), "østergaard");
        assert_eq!(NameKey::new("STRAẞE").as_str(), "strasse");
        assert_eq!(NameKey::new("Nguyễn  Thị").as_str(), "nguyễn thị");
    }
}
