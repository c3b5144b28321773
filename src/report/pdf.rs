//! The report as a whole and its first section, "Import Summary": the run, the file
//! and the counts (rules §4). The lists follow in [`lists`];
//! [`layout`](super::layout) decides where everything goes on the page.

use std::collections::BTreeSet;
use std::hash::{BuildHasher as _, Hash as _, Hasher as _};

use genpdf::style::Style;
use jiff::Timestamp;

use super::layout::{Align, Column, Pages, Rendered, Table};
use super::style::{ACCENT, ALERT, HEADING_SIZE, MUTED, body};
use super::text::group_digits;
use super::{ReportError, ReportHeader, fonts, lists};
use crate::import::summary::{ExpiringRecord, Summary};

/// Lays out and writes the whole report.
pub(crate) fn render(header: &ReportHeader, summary: &Summary) -> Result<Rendered, ReportError> {
    let mut pages = start(header, summary)?;
    first_section(&mut pages, header, summary)?;
    // Rules §4: a title page section with the counts, then the lists.
    pages.page_break()?;
    lists::lists(&mut pages, summary)?;
    pages.finish(&footer(header))
}

/// A report whose lists are laid out, from the second page on, before the run has
/// ended: the first page, with the run's end and the records it deleted, is drawn
/// by [`Draft::finish`].
///
/// The lists and every page's running header and footer depend only on what
/// [`ListsInputs`] holds, which the run knows before its replace begins.
pub(crate) struct Draft {
    pages: Pages,
    lists: ListsInputs,
}

impl Draft {
    /// Lays out the lists of `summary` from the second page on.
    pub fn lay_out(header: &ReportHeader, summary: &Summary) -> Result<Self, ReportError> {
        let mut pages = start(header, summary)?;
        pages.leave_first_page()?;
        lists::lists(&mut pages, summary)?;
        Ok(Self {
            pages,
            lists: ListsInputs::of(header, summary),
        })
    }

    /// The whole report for `header` and `summary`: this draft with its first page
    /// drawn when it can be (see [`Draft::try_finish`]), else rendered anew, as
    /// [`render`] does.
    pub fn finish(self, header: &ReportHeader, summary: &Summary) -> Result<Rendered, ReportError> {
        match self.try_finish(header, summary)? {
            Some(rendered) => Ok(rendered),
            None => render(header, summary),
        }
    }

    /// This draft with its first page drawn, when its lists are those of `summary` and
    /// the first section fits on the first page (as it does but for very long notes
    /// or reasons); `None` when it cannot be used.
    fn try_finish(
        mut self,
        header: &ReportHeader,
        summary: &Summary,
    ) -> Result<Option<Rendered>, ReportError> {
        if self.lists != ListsInputs::of(header, summary) {
            tracing::warn!(
                run_id = header.run_id,
                "the report's lists changed after they were laid out; rendering it anew"
            );
            return Ok(None);
        }
        let fits = self
            .pages
            .on_first_page(|pages| first_section(pages, header, summary))?;
        if !fits {
            return Ok(None);
        }
        self.pages.finish(&footer(header)).map(Some)
    }
}

/// Everything the pages after the first one show (the lists, and the running header
/// and footer on every page), as a 64-bit hash: a draft laid out for one run's
/// summary is finished only for a summary that agrees with it on all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ListsInputs(u64);

impl ListsInputs {
    fn of(header: &ReportHeader, summary: &Summary) -> Self {
        let mut hasher = foldhash::quality::FixedState::default().build_hasher();
        (
            &header.district,
            header.run_id,
            summary.run_date,
            summary.dry_run,
            &summary.rejected,
            summary.expiring_within_days,
        )
            .hash(&mut hasher);
        (
            &summary.skipped,
            &summary.missing_certification,
            &summary.expired_certifications,
            &summary.missing_date_records,
            &summary.invalid_rows,
            &summary.expiring_soon,
        )
            .hash(&mut hasher);
        Self(hasher.finish())
    }
}

/// A document with the first page started, its running header drawn.
fn start(header: &ReportHeader, summary: &Summary) -> Result<Pages, ReportError> {
    Pages::new(
        fonts::font_cache()?,
        &format!("Import Summary, {}, run {}", header.district, header.run_id),
        &running_header(header, summary),
    )
}

/// The first section: the run, the file, the counts and the notes.
fn first_section(
    pages: &mut Pages,
    header: &ReportHeader,
    summary: &Summary,
) -> Result<(), ReportError> {
    title(pages, header, summary)?;
    run_details(pages, header, summary)?;
    counts(pages, summary)?;
    notes(pages, summary)
}

fn footer(header: &ReportHeader) -> String {
    format!("ALiS certification import, run {}", header.run_id)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::plan::Plan;
    use crate::import::summary::{FileInfo, RecordCounts, SummaryContext};

    fn header(ended: bool) -> ReportHeader {
        ReportHeader {
            district: "Sample Supervisory Union".into(),
            task_description: Some("Nightly ALiS import".into()),
            run_id: 42,
            run_by: "scheduler".into(),
            started_at: "2026-11-30T11:00:03Z".parse().unwrap(),
            ended_at: ended.then(|| "2026-11-30T11:01:12Z".parse().unwrap()),
            time_zone: jiff::tz::TimeZone::get("America/New_York").unwrap(),
        }
    }

    /// A summary as `run_import` hands it over while the replace runs: the deleted
    /// records not counted, the file not hashed yet, with `rows` certifications
    /// expiring soon (a page holds about forty).
    fn summary_ahead(rows: usize) -> Summary {
        let context = SummaryContext {
            run_date: jiff::civil::date(2026, 11, 30),
            dry_run: false,
            file: Some(FileInfo {
                name: "Curr_Lic_Eds_End_Limits_20261130.csv".into(),
                sha256: String::new(),
                from_cache: false,
            }),
            expiring_within_days: 90,
        };
        let mut summary = Summary::of_plan(&context, &Plan::default(), RecordCounts::default());
        summary.data_rows = 51_234;
        summary.expiring_soon = (0..rows)
            .map(|n| ExpiringRecord {
                employee_number: format!("E{n:05}"),
                last_name: "Østergaard".into(),
                first_name: "Søren".into(),
                license_number: Some(format!("{:07}", 1_000_000 + n)),
                license_type: "Level II Professional Educator".into(),
                endorsement_code: None,
                expiration_date: jiff::civil::date(2026, 12, 24),
            })
            .collect();
        summary
    }

    /// The same summary once the run has ended: records deleted, file hashed, a note.
    fn ended(mut summary: Summary) -> Summary {
        summary.deleted = RecordCounts::new(812, 1_904);
        if let Some(file) = &mut summary.file {
            file.sha256 = "ab".repeat(32);
        }
        summary.notes.push("The file came from the cache.".into());
        summary
    }

    /// The PDF's bytes without its creation and modification times and its random
    /// document ID: what differs between two renderings of the same report.
    fn timeless(pdf: &[u8]) -> Vec<u8> {
        let mut bytes = pdf.to_vec();
        for (key, close) in [
            (&b"/CreationDate("[..], b')'),
            (&b"/ModDate("[..], b')'),
            (&b"/ID["[..], b']'),
        ] {
            let mut from = 0;
            while let Some(at) = bytes
                .get(from..)
                .and_then(|rest| rest.windows(key.len()).position(|w| w == key))
            {
                let start = from + at + key.len();
                let end = start + bytes[start..].iter().position(|&b| b == close).unwrap();
                bytes[start..end].fill(b'0');
                from = end;
            }
        }
        bytes
    }

    #[test]
    fn a_finished_draft_is_the_report_rendered_at_once() {
        let ahead = summary_ahead(300);
        let draft = Draft::lay_out(&header(false), &ahead).unwrap();
        let (header, summary) = (header(true), ended(ahead));
        let drafted = draft
            .try_finish(&header, &summary)
            .unwrap()
            .expect("drafted");
        let at_once = render(&header, &summary).unwrap();
        assert!(drafted.pages > 5, "{} pages", drafted.pages);
        assert_eq!(drafted.pages, at_once.pages);
        assert!(timeless(&drafted.bytes) == timeless(&at_once.bytes));
    }

    #[test]
    fn a_draft_whose_lists_changed_is_not_used() {
        let ahead = summary_ahead(50);
        let draft = Draft::lay_out(&header(false), &ahead).unwrap();
        let mut summary = ended(ahead);
        summary.expiring_soon.pop();
        assert!(draft.try_finish(&header(true), &summary).unwrap().is_none());
        // Nor for another run.
        let draft = Draft::lay_out(&header(false), &summary).unwrap();
        let other = ReportHeader {
            run_id: 43,
            ..header(true)
        };
        assert!(draft.try_finish(&other, &summary).unwrap().is_none());
    }

    #[test]
    fn a_first_section_longer_than_a_page_is_rendered_anew() {
        let ahead = summary_ahead(50);
        let draft = Draft::lay_out(&header(false), &ahead).unwrap();
        let mut summary = ended(ahead);
        summary.notes = (0..80).map(|n| format!("Note {n}.")).collect();
        let (header, summary) = (header(true), summary);
        assert!(
            Draft::lay_out(&header, &summary)
                .unwrap()
                .try_finish(&header, &summary)
                .unwrap()
                .is_none()
        );
        // `finish` renders it anew: the notes go on to the second page, the lists
        // after them.
        let finished = draft.finish(&header, &summary).unwrap();
        let at_once = render(&header, &summary).unwrap();
        assert_eq!(finished.pages, at_once.pages);
        assert!(timeless(&finished.bytes) == timeless(&at_once.bytes));
    }
}
