//! The lists after the first section, one titled table each, in the order HR works
//! through them (rules §4): skipped employees, missing certification data, expired
//! certifications, missing dates, invalid rows, expiring soon.

use super::ReportError;
use super::layout::{Align, Column, Pages, Table};
use super::style::{MUTED, body};
use super::text::group_digits;
use crate::import::summary::{ExpiringRecord, MissingDateRecord, SkippedRef, Summary};

const SKIPPED: &[Column] = &[
    Column::new("Employee", 2, Align::Left),
    Column::new("Name", 4, Align::Left),
    Column::new("Mismatch", 3, Align::Left),
    Column::new("ERP and ALiS values", 6, Align::Left),
];

const EMPLOYEES: &[Column] = &[
    Column::new("Employee", 2, Align::Left),
    Column::new("Last name", 5, Align::Left),
    Column::new("First name", 5, Align::Left),
];

const MISSING_DATES: &[Column] = &[
    Column::new("Employee", 2, Align::Left),
    Column::new("License", 3, Align::Left),
    Column::new("Record", 3, Align::Left),
    Column::new("Missing", 4, Align::Left),
];

const INVALID_ROWS: &[Column] = &[
    Column::new("Line", 1, Align::Right),
    Column::new("Reason", 9, Align::Left),
];

/// Most list rows one report shows, all lists together. A row costs about 25 KB of
/// memory while the PDF is built (genpdf keeps every glyph of every page as an object
/// until it writes), so this bounds a render at about 250 MB and 10 MB of PDF whatever
/// the summary holds. Real districts stay far below it; rows past it are counted in
/// the report and listed in the run's structured summary.
pub(crate) const MAX_LIST_ROWS: usize = 10_000;

/// A list's title, the sentence that says what it is, its columns and its rows.
type Section = (String, String, &'static [Column], Vec<Vec<String>>);

/// One section per list, in the order HR works through them.
pub(crate) fn lists(pages: &mut Pages, summary: &Summary) -> Result<(), ReportError> {
    let horizon = summary
        .run_date
        .saturating_add(jiff::Span::new().days(i64::from(summary.expiring_within_days)));
    let sections: [Section; 6] = [
        (
            titled("Skipped employees", summary.skipped.len()),
            "Active employees whose Educator ID or name does not match the ALiS file. \
             Nothing was imported for them until the mismatch is corrected."
                .into(),
            SKIPPED,
            summary.skipped.iter().map(skipped_row).collect(),
        ),
        (
            titled(
                "Missing certification data",
                summary.missing_certification.len(),
            ),
            "Active employees whose job class requires certification and who hold no \
             certification record after this import."
                .into(),
            EMPLOYEES,
            summary
                .missing_certification
                .iter()
                .map(|e| {
                    vec![
                        e.employee_number.clone(),
                        e.last_name.clone(),
                        e.first_name.clone(),
                    ]
                })
                .collect(),
        ),
        (
            titled(
                "Expired certifications",
                summary.expired_certifications.len(),
            ),
            format!(
                "Imported certifications whose expiration date (the last valid day) is \
                 before {}.",
                summary.run_date
            ),
            EXPIRED,
            summary
                .expired_certifications
                .iter()
                .map(expiring_row)
                .collect(),
        ),
        (
            titled("Missing dates", summary.missing_date_records.len()),
            "Imported certification and endorsement records without an issue date or an \
             expiration date."
                .into(),
            MISSING_DATES,
            summary
                .missing_date_records
                .iter()
                .map(missing_date_row)
                .collect(),
        ),
        (
            titled("Invalid rows", summary.invalid_rows.len()),
            "Rows of the file that were skipped; nothing on them was imported.".into(),
            INVALID_ROWS,
            summary
                .invalid_rows
                .iter()
                .map(|row| vec![row.line.to_string(), row.reason.clone()])
                .collect(),
        ),
        (
            titled(
                &format!("Expiring within {} days", summary.expiring_within_days),
                summary.expiring_soon.len(),
            ),
            format!(
                "Certifications and endorsements of active employees that expire from {} \
                 to {horizon}, earliest first, so HR can act before they lapse.",
                summary.run_date
            ),
            EXPIRING,
            summary.expiring_soon.iter().map(expiring_row).collect(),
        ),
    ];
    let lengths: Vec<usize> = sections.iter().map(|section| section.3.len()).collect();
    let shares = share_rows(&lengths, MAX_LIST_ROWS);
    for ((title, intro, columns, mut rows), shown) in sections.into_iter().zip(shares) {
        let omitted = rows.len() - shown;
        rows.truncate(shown);
        pages.gap(6.0);
        let table = Table {
            title,
            intro: Some(intro),
            columns,
            when_empty: "None.",
        };
        pages.table(&table, &rows)?;
        if omitted > 0 {
            let note = format!(
                "… and {} more not shown: a report shows at most {} list rows. The run's \
                 structured summary lists them all.",
                group_digits(omitted as u64),
                group_digits(MAX_LIST_ROWS as u64)
            );
            pages.block(&note, body().with_color(MUTED), 0.0)?;
        }
    }
    Ok(())
}

/// Splits `budget` rows among lists of the given lengths: every list gets an equal
/// share, and what a short list leaves over goes to the longer ones.
fn share_rows(lengths: &[usize], budget: usize) -> Vec<usize> {
    let mut shares = vec![0; lengths.len()];
    let mut remaining = budget;
    loop {
        let open: Vec<usize> = (0..lengths.len())
            .filter(|&i| shares[i] < lengths[i])
            .collect();
        if open.is_empty() || remaining == 0 {
            return shares;
        }
        let each = (remaining / open.len()).max(1);
        for i in open {
            let given = (lengths[i] - shares[i]).min(each).min(remaining);
            shares[i] += given;
            remaining -= given;
        }
    }
}

const EXPIRED: &[Column] = &expiring_columns("Expired");

const EXPIRING: &[Column] = &expiring_columns("Expires");

const fn expiring_columns(date_title: &'static str) -> [Column; 6] {
    [
        Column::new("Employee", 2, Align::Left),
        Column::new("Name", 4, Align::Left),
        Column::new("License", 2, Align::Left),
        Column::new("License type", 4, Align::Left),
        Column::new("Endorsement", 2, Align::Left),
        Column::new(date_title, 2, Align::Left),
    ]
}

fn skipped_row(skipped: &SkippedRef) -> Vec<String> {
    let reasons: Vec<&str> = skipped.reasons.iter().map(|r| reason_name(r)).collect();
    vec![
        skipped.employee_number.clone(),
        name(&skipped.last_name, &skipped.first_name),
        reasons.join(", "),
        skipped.detail.clone(),
    ]
}

fn expiring_row(record: &ExpiringRecord) -> Vec<String> {
    vec![
        record.employee_number.clone(),
        name(&record.last_name, &record.first_name),
        record.license_number.clone().unwrap_or_default(),
        record.license_type.clone(),
        record.endorsement_code.clone().unwrap_or_default(),
        record.expiration_date.to_string(),
    ]
}

fn missing_date_row(record: &MissingDateRecord) -> Vec<String> {
    let what = match &record.endorsement_code {
        Some(code) => format!("Endorsement {code}"),
        None => "Certification".to_owned(),
    };
    let missing = match (record.missing_issue_date, record.missing_expiration_date) {
        (true, true) => "issue and expiration dates",
        (true, false) => "issue date",
        (false, true) => "expiration date",
        (false, false) => "",
    };
    vec![
        record.employee_number.clone(),
        record.license_number.clone().unwrap_or_default(),
        what,
        missing.to_owned(),
    ]
}

/// The skip reasons of rules §5 in words.
fn reason_name(reason: &str) -> &str {
    match reason {
        "educator_id" => "Educator ID",
        "last_name" => "Last name",
        "first_name" => "First name",
        "duplicate_state_staff_id" => "Duplicate State Staff ID",
        other => other,
    }
}

fn name(last: &str, first: &str) -> String {
    match (last.is_empty(), first.is_empty()) {
        (false, false) => format!("{last}, {first}"),
        (false, true) => last.to_owned(),
        _ => first.to_owned(),
    }
}

fn titled(title: &str, n: usize) -> String {
    format!("{title} ({})", group_digits(n as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_that_fit_the_budget_are_shown_whole() {
        assert_eq!(
            share_rows(&[5_000, 40, 25, 15, 24, 20], MAX_LIST_ROWS),
            [5_000, 40, 25, 15, 24, 20]
        );
        assert_eq!(share_rows(&[0, 0], 10), [0, 0]);
    }

    #[test]
    fn long_lists_share_what_short_lists_leave() {
        assert_eq!(share_rows(&[100, 3, 100], 50), [24, 3, 23]);
        assert_eq!(
            share_rows(&[20_000, 20_000, 10], 10_000),
            [4_995, 4_995, 10]
        );
        assert_eq!(share_rows(&[7, 7, 7], 2), [1, 1, 0]);
    }
}
