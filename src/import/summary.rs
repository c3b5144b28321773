//! The import summary (rules §4–§5): the figures HR reads, as a typed value whose JSON
//! form is a stable interface.

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::plan::Plan;
use super::records::{ActiveEmployee, Certification, InvalidRow};

/// Everything the report says about one import. Serialises to the JSON of rules §5;
/// keys there are never renamed, new keys may be added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The date the figures are computed as of, in the district's time zone.
    pub run_date: Date,
    /// True when nothing was written on purpose.
    pub dry_run: bool,
    /// Why the file or the run was refused; then nothing changed.
    pub rejected: Option<String>,
    /// The file used, when one was found.
    pub file: Option<FileInfo>,
    /// Non-blank data rows read (valid or not).
    pub data_rows: u64,
    /// Rows skipped, with line and reason.
    pub invalid_rows: Vec<InvalidRow>,
    /// Certification records of matched employees not imported, per status.
    pub not_imported_by_status: BTreeMap<String, u64>,
    /// Distinct educators in the file who match no active employee by ID or name.
    pub educators_not_employed: u64,
    /// Active employees whose job class requires certification and who hold none
    /// after the import.
    pub missing_certification: Vec<EmployeeRef>,
    /// Imported certifications whose expiration date is before the run date.
    pub expired_certifications: Vec<ExpiringRecord>,
    /// Counts of imported records without issue or expiration dates.
    pub missing_dates: MissingDates,
    /// The imported records those counts are made of.
    pub missing_date_records: Vec<MissingDateRecord>,
    /// Records deleted for active employees.
    pub deleted: RecordCounts,
    /// Records imported.
    pub imported: RecordCounts,
    /// Active employees skipped for a mismatch, with reasons.
    pub skipped: Vec<SkippedRef>,
    /// Imported certifications and endorsements that expire within the look-ahead
    /// window (from the run date, inclusive).
    pub expiring_soon: Vec<ExpiringRecord>,
    /// The look-ahead window of `expiring_soon`, in days.
    pub expiring_within_days: u32,
    /// Notes for the reader, e.g. that the file came from the cache or was decoded as
    /// Windows-1252.
    pub notes: Vec<String>,
}

/// The file an import read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// File name as listed.
    pub name: String,
    /// Lower-case hex SHA-256 of its bytes.
    pub sha256: String,
    /// True when the copy came from the file cache instead of the source folder.
    pub from_cache: bool,
}

/// An employee as HR knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmployeeRef {
    /// ERP employee number.
    pub employee_number: String,
    /// Last name in the ERP.
    pub last_name: String,
    /// First name in the ERP.
    pub first_name: String,
}

impl From<&ActiveEmployee> for EmployeeRef {
    fn from(employee: &ActiveEmployee) -> Self {
        Self {
            employee_number: employee.employee_number.clone(),
            last_name: employee.last_name.clone(),
            first_name: employee.first_name.clone(),
        }
    }
}

/// A certification (or one of its endorsements) with its expiration date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiringRecord {
    /// ERP employee number.
    pub employee_number: String,
    /// Last name in the ERP.
    pub last_name: String,
    /// First name in the ERP.
    pub first_name: String,
    /// The licence's number, when it has one.
    pub license_number: Option<String>,
    /// The licence type.
    pub license_type: String,
    /// Set when the record is an endorsement rather than the licence itself.
    pub endorsement_code: Option<String>,
    /// The last valid day.
    pub expiration_date: Date,
}

/// Imported records without dates (rules §4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingDates {
    /// Certifications without an issue date.
    pub certification_issue: u64,
    /// Certifications without an expiration date.
    pub certification_expiration: u64,
    /// Endorsements without an issue date.
    pub endorsement_issue: u64,
    /// Endorsements without an expiration date.
    pub endorsement_expiration: u64,
}

/// One imported record that lacks a date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingDateRecord {
    /// ERP employee number.
    pub employee_number: String,
    /// The licence's number, when it has one.
    pub license_number: Option<String>,
    /// Set when the record is an endorsement.
    pub endorsement_code: Option<String>,
    /// True when the issue date is missing.
    pub missing_issue_date: bool,
    /// True when the expiration date is missing.
    pub missing_expiration_date: bool,
}

/// Certification and endorsement record counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCounts {
    /// Certification records.
    pub certifications: u64,
    /// Endorsement records.
    pub endorsements: u64,
    /// Both together.
    pub total: u64,
}

impl RecordCounts {
    /// Counts with their total.
    pub fn new(certifications: u64, endorsements: u64) -> Self {
        Self {
            certifications,
            endorsements,
            total: certifications + endorsements,
        }
    }
}

/// A skipped employee in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRef {
    /// ERP employee number.
    pub employee_number: String,
    /// Last name in the ERP.
    pub last_name: String,
    /// First name in the ERP.
    pub first_name: String,
    /// `educator_id`, `last_name`, `first_name` or `duplicate_state_staff_id`.
    pub reasons: Vec<String>,
    /// Both values of each mismatch.
    pub detail: String,
}

/// What the summary is computed from besides the plan.
#[derive(Debug, Clone)]
pub struct SummaryContext {
    /// The run's date in the district's time zone.
    pub run_date: Date,
    /// Whether the run writes nothing.
    pub dry_run: bool,
    /// The file read.
    pub file: Option<FileInfo>,
    /// The look-ahead window for `expiring_soon`, in days.
    pub expiring_within_days: u32,
}

impl Summary {
    /// A summary that says only why nothing changed (the file or run was refused).
    pub fn rejected(context: &SummaryContext, reason: impl Into<String>) -> Self {
        Self {
            run_date: context.run_date,
            dry_run: context.dry_run,
            rejected: Some(reason.into()),
            file: context.file.clone(),
            data_rows: 0,
            invalid_rows: Vec::new(),
            not_imported_by_status: BTreeMap::new(),
            educators_not_employed: 0,
            missing_certification: Vec::new(),
            expired_certifications: Vec::new(),
            missing_dates: MissingDates::default(),
            missing_date_records: Vec::new(),
            deleted: RecordCounts::default(),
            imported: RecordCounts::default(),
            skipped: Vec::new(),
            expiring_soon: Vec::new(),
            expiring_within_days: context.expiring_within_days,
            notes: Vec::new(),
        }
    }

    /// The figures of an import that was (or, in a dry run, would be) applied.
    /// `deleted` are the records the replace removes for active employees.
    pub fn of_plan(context: &SummaryContext, plan: &Plan, deleted: RecordCounts) -> Self {
        let mut summary = Self::rejected(context, String::new());
        summary.rejected = None;
        summary.deleted = deleted;
        summary.imported = RecordCounts::new(plan.certification_count(), plan.endorsement_count());
        summary.not_imported_by_status = plan.not_imported_by_status.clone();
        summary.skipped = plan
            .skipped
            .iter()
            .map(|s| SkippedRef {
                employee_number: s.employee.employee_number.clone(),
                last_name: s.employee.last_name.clone(),
                first_name: s.employee.first_name.clone(),
                reasons: s.reasons.iter().map(|r| r.as_str().to_owned()).collect(),
                detail: s.detail.clone(),
            })
            .collect();

        let holds_none = |certifications: &[Certification]| certifications.is_empty();
        let without_certification = plan
            .matched
            .iter()
            .filter(|m| holds_none(&m.certifications))
            .map(|m| &m.employee)
            .chain(plan.skipped.iter().map(|s| &s.employee))
            .chain(plan.unmatched.iter());
        let mut missing: Vec<EmployeeRef> = without_certification
            .filter(|e| e.certification_required)
            .map(EmployeeRef::from)
            .collect();
        missing.sort_by(|a, b| a.employee_number.cmp(&b.employee_number));
        summary.missing_certification = missing;

        let horizon = context
            .run_date
            .saturating_add(jiff::Span::new().days(i64::from(context.expiring_within_days)));
        for (employee, certification) in plan.certifications() {
            let record = |endorsement_code: Option<&str>, expiration_date: Date| ExpiringRecord {
                employee_number: employee.employee_number.clone(),
                last_name: employee.last_name.clone(),
                first_name: employee.first_name.clone(),
                license_number: certification.license_number.clone(),
                license_type: certification.license_type.clone(),
                endorsement_code: endorsement_code.map(str::to_owned),
                expiration_date,
            };
            if let Some(expires) = certification.expiration_date {
                if expires < context.run_date {
                    summary.expired_certifications.push(record(None, expires));
                } else if expires <= horizon {
                    summary.expiring_soon.push(record(None, expires));
                }
            }
            for endorsement in &certification.endorsements {
                if let Some(expires) = endorsement.expiration_date
                    && expires >= context.run_date
                    && expires <= horizon
                {
                    summary
                        .expiring_soon
                        .push(record(Some(&endorsement.code), expires));
                }
            }

            let dates = summary.missing_dates;
            let mut note = |endorsement_code: Option<&str>, issue: bool, expiration: bool| {
                if issue || expiration {
                    summary.missing_date_records.push(MissingDateRecord {
                        employee_number: employee.employee_number.clone(),
                        license_number: certification.license_number.clone(),
                        endorsement_code: endorsement_code.map(str::to_owned),
                        missing_issue_date: issue,
                        missing_expiration_date: expiration,
                    });
                }
            };
            let mut counts = dates;
            let (issue, expiration) = (
                certification.issue_date.is_none(),
                certification.expiration_date.is_none(),
            );
            counts.certification_issue += u64::from(issue);
            counts.certification_expiration += u64::from(expiration);
            note(None, issue, expiration);
            for endorsement in &certification.endorsements {
                let (issue, expiration) = (
                    endorsement.issue_date.is_none(),
                    endorsement.expiration_date.is_none(),
                );
                counts.endorsement_issue += u64::from(issue);
                counts.endorsement_expiration += u64::from(expiration);
                note(Some(&endorsement.code), issue, expiration);
            }
            summary.missing_dates = counts;
        }
        summary.expiring_soon.sort_by(|a, b| {
            (a.expiration_date, &a.employee_number).cmp(&(b.expiration_date, &b.employee_number))
        });
        summary
    }

    /// Whether the import changed (or, dry, would change) the data.
    pub fn is_rejected(&self) -> bool {
        self.rejected.is_some()
    }
}
