//! The report as a whole and its first section, "Import Summary": the run, the file
//! and the counts (rules §4). The lists follow in [`lists`];
//! [`layout`](super::layout) decides where everything goes on the page.

use std::collections::BTreeSet;

use genpdf::style::Style;
use jiff::Timestamp;

use super::layout::{Align, Column, Pages, Rendered, Table};
use super::style::{ACCENT, ALERT, HEADING_SIZE, MUTED, body};
use super::text::group_digits;
use super::{ReportError, ReportHeader, fonts, lists};
use crate::import::summary::{ExpiringRecord, Summary};

/// Lays out and writes the whole report.
pub(crate) fn render(header: &ReportHeader, summary: &Summary) -> Result<Rendered, ReportError> {
    let mut pages = Pages::new(
        fonts::font_cache()?,
        &format!("Import Summary, {}, run {}", header.district, header.run_id),
        &running_header(header, summary),
    )?;
    title(&mut pages, header, summary)?;
    run_details(&mut pages, header, summary)?;
    counts(&mut pages, summary)?;
    notes(&mut pages, summary)?;
    // Rules §4: a title page section with the counts, then the lists.
    pages.page_break()?;
    lists::lists(&mut pages, summary)?;
    pages.finish(&format!("ALiS certification import, run {}", header.run_id))
}

/// One line at the top of every page, so a loose printed page still says what it is
/// and whether it was a dry run.
fn running_header(header: &ReportHeader, summary: &Summary) -> String {
    let mut text = format!(
        "Import Summary · {} · run {} · as of {}",
        header.district, header.run_id, summary.run_date
    );
    if summary.dry_run {
        text.push_str(" · DRY RUN");
    }
    if summary.is_rejected() {
        text.push_str(" · REJECTED");
    }
    text
}

fn title(pages: &mut Pages, header: &ReportHeader, summary: &Summary) -> Result<(), ReportError> {
    pages.block("Import Summary", sized(22, ACCENT), 0.0)?;
    pages.gap(1.0);
    pages.block(&header.district, Style::new().with_font_size(13), 0.0)?;
    if let Some(task) = &header.task_description {
        pages.block(task, sized(10, MUTED), 0.0)?;
    }
    if summary.dry_run {
        pages.gap(3.0);
        pages.block(
            "DRY RUN: nothing was written. The figures show what this import would have changed.",
            sized(11, ALERT),
            0.0,
        )?;
    }
    if let Some(reason) = &summary.rejected {
        pages.gap(3.0);
        pages.block(
            "REJECTED: nothing was changed. The import stopped before writing anything because:",
            sized(11, ALERT),
            0.0,
        )?;
        pages.block(reason, sized(11, ALERT), 0.0)?;
    }
    pages.gap(4.0);
    Ok(())
}

const LABEL_VALUE: &[Column] = &[
    Column::new("", 3, Align::Left),
    Column::new("", 9, Align::Left),
];

fn run_details(
    pages: &mut Pages,
    header: &ReportHeader,
    summary: &Summary,
) -> Result<(), ReportError> {
    let zone = header
        .time_zone
        .iana_name()
        .unwrap_or("the district's time zone");
    let ended = match header.ended_at {
        Some(ended) => format!(
            "{} (took {})",
            local_time(header, ended),
            duration(header.started_at, ended)
        ),
        None => "still running".to_owned(),
    };
    let mut rows = vec![
        pair("Run ID", header.run_id.to_string()),
        pair("Run by", header.run_by.clone()),
        pair("Started", local_time(header, header.started_at)),
        pair("Ended", ended),
        pair(
            "Figures as of",
            format!("{} (times in this report are {zone})", summary.run_date),
        ),
    ];
    match &summary.file {
        Some(file) => rows.extend([
            pair("File", file.name.clone()),
            pair("SHA-256", file.sha256.clone()),
            pair(
                "File came from",
                if file.from_cache {
                    "the file cache: a copy kept from an earlier download"
                } else {
                    "the source folder"
                }
                .to_owned(),
            ),
        ]),
        None => rows.push(pair("File", "none was read".to_owned())),
    }
    pages.table(&untitled("Run", LABEL_VALUE), &rows)
}

const EMPLOYEE_COUNTS: &[Column] = &[
    Column::new("Employees", 10, Align::Left),
    Column::new("Count", 2, Align::Right),
];

const RECORD_COUNTS: &[Column] = &[
    Column::new("Records", 6, Align::Left),
    Column::new("Certifications", 2, Align::Right),
    Column::new("Endorsements", 2, Align::Right),
    Column::new("Total", 2, Align::Right),
];

const FILE_COUNTS: &[Column] = &[
    Column::new("Rows and educators", 10, Align::Left),
    Column::new("Count", 2, Align::Right),
];

/// The six counts of rules §4 (three about employees, three about records), then the
/// figures about the file itself.
fn counts(pages: &mut Pages, summary: &Summary) -> Result<(), ReportError> {
    pages.gap(5.0);
    let expired_employees = distinct_employees(&summary.expired_certifications);
    let employees = vec![
        count(
            "Employees with missing certification data",
            summary.missing_certification.len(),
        ),
        count(
            &format!(
                "Employees with expired certifications ({} expired certification records)",
                group_digits(summary.expired_certifications.len() as u64)
            ),
            expired_employees,
        ),
        count(
            "Employees skipped (Educator ID or name mismatch)",
            summary.skipped.len(),
        ),
    ];
    pages.table(&untitled("Counts", EMPLOYEE_COUNTS), &employees)?;
    pages.gap(3.0);

    let dates = summary.missing_dates;
    let records = vec![
        records(
            "Imported",
            summary.imported.certifications,
            summary.imported.endorsements,
            summary.imported.total,
        ),
        records(
            "Deleted (active employees)",
            summary.deleted.certifications,
            summary.deleted.endorsements,
            summary.deleted.total,
        ),
        records(
            "Imported without an issue date",
            dates.certification_issue,
            dates.endorsement_issue,
            dates.certification_issue + dates.endorsement_issue,
        ),
        records(
            "Imported without an expiration date",
            dates.certification_expiration,
            dates.endorsement_expiration,
            dates.certification_expiration + dates.endorsement_expiration,
        ),
    ];
    pages.table(&untitled("", RECORD_COUNTS), &records)?;
    pages.gap(3.0);

    let mut file = vec![
        count_u64("Data rows read", summary.data_rows),
        count(
            "Invalid rows (skipped, listed below)",
            summary.invalid_rows.len(),
        ),
    ];
    for (status, n) in &summary.not_imported_by_status {
        file.push(count_u64(
            &format!("Not imported: license status {}", status_name(status)),
            *n,
        ));
    }
    file.push(count_u64(
        "Educators in the file not employed here",
        summary.educators_not_employed,
    ));
    pages.table(&untitled("", FILE_COUNTS), &file)
}

fn notes(pages: &mut Pages, summary: &Summary) -> Result<(), ReportError> {
    if summary.notes.is_empty() {
        return Ok(());
    }
    pages.gap(4.0);
    pages.block("Notes", sized(HEADING_SIZE, ACCENT), 8.0)?;
    pages.gap(1.0);
    for note in &summary.notes {
        pages.block(&format!("• {note}"), body(), 0.0)?;
    }
    Ok(())
}

/// A license status code with its meaning, when it is one of the usual ones.
fn status_name(status: &str) -> String {
    let meaning = match status.trim().to_ascii_uppercase().as_str() {
        "EXP" => "expired",
        "SUS" => "suspended",
        "REV" => "revoked",
        "PND" => "pending",
        _ => return status.to_owned(),
    };
    format!("{status} ({meaning})")
}

fn distinct_employees(records: &[ExpiringRecord]) -> usize {
    records
        .iter()
        .map(|r| r.employee_number.as_str())
        .collect::<BTreeSet<_>>()
        .len()
}

fn local_time(header: &ReportHeader, at: Timestamp) -> String {
    at.to_zoned_datetime(header.time_zone.clone())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

fn duration(from: Timestamp, to: Timestamp) -> String {
    let seconds = to.duration_since(from).as_secs().max(0);
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

fn untitled<'a>(title: &str, columns: &'a [Column]) -> Table<'a> {
    Table {
        title: title.to_owned(),
        intro: None,
        columns,
        when_empty: "",
    }
}

fn pair(label: &str, value: String) -> Vec<String> {
    vec![label.to_owned(), value]
}

fn count(label: &str, n: usize) -> Vec<String> {
    count_u64(label, n as u64)
}

fn count_u64(label: &str, n: u64) -> Vec<String> {
    vec![label.to_owned(), group_digits(n)]
}

fn records(label: &str, certifications: u64, endorsements: u64, total: u64) -> Vec<String> {
    vec![
        label.to_owned(),
        group_digits(certifications),
        group_digits(endorsements),
        group_digits(total),
    ]
}

fn sized(size: u8, color: genpdf::style::Color) -> Style {
    Style::new().with_font_size(size).with_color(color)
}
