//! The PDF report read back as a person's tools read it: poppler's `pdftotext`,
//! `pdfinfo` and `pdftoppm` (Debian `poppler-utils`; the tests fail if it is missing).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use alis_import::import::records::InvalidRow;
use alis_import::import::summary::{
    EmployeeRef, ExpiringRecord, FileInfo, MissingDateRecord, MissingDates, RecordCounts,
    SkippedRef, Summary,
};
use alis_import::report::{ReportHeader, render_pdf};
use jiff::civil::date;
use tempfile::NamedTempFile;

#[test]
fn every_count_and_every_listed_employee_appears() {
    let summary = typical_summary();
    let pdf = Pdf::render(&summary);
    let text = pdf.text();

    for (label, values) in [
        ("Employees with missing certification data", vec!["5"]),
        ("Employees with expired certifications", vec!["3"]),
        ("Employees skipped", vec!["4"]),
        ("Imported", vec!["809", "1,897", "2,706"]),
        ("Deleted (active employees)", vec!["812", "1,904", "2,716"]),
        ("Imported without an issue date", vec!["0", "12", "12"]),
        ("Imported without an expiration date", vec!["3", "12", "15"]),
        ("Data rows read", vec!["51,234"]),
        ("Invalid rows (skipped", vec!["2"]),
        ("Not imported: license status EXP (expired)", vec!["310"]),
        ("Not imported: license status SUS (suspended)", vec!["2"]),
        ("Educators in the file not employed here", vec!["48,102"]),
    ] {
        assert_row_ends_with(&text, label, &values);
    }
    assert!(text.contains("(4 expired certification records)"), "{text}");

    let listed = [
        summary
            .skipped
            .iter()
            .map(|s| &s.employee_number)
            .collect::<Vec<_>>(),
        summary
            .missing_certification
            .iter()
            .map(|e| &e.employee_number)
            .collect(),
        summary
            .expired_certifications
            .iter()
            .map(|e| &e.employee_number)
            .collect(),
        summary
            .missing_date_records
            .iter()
            .map(|m| &m.employee_number)
            .collect(),
        summary
            .expiring_soon
            .iter()
            .map(|e| &e.employee_number)
            .collect(),
    ];
    for number in listed.iter().flatten() {
        assert!(
            text.contains(number.as_str()),
            "{number} is missing:\n{text}"
        );
    }
    for row in &summary.invalid_rows {
        let line = row.line.to_string();
        let listed = text
            .lines()
            .any(|l| l.contains(&row.reason) && l.split_whitespace().next() == Some(line.as_str()));
        assert!(listed, "invalid row {line} is missing:\n{text}");
    }
    for fact in [
        "4211",
        "scheduler",
        "2026-11-30 06:00:03 EST",
        "2026-11-30 06:01:12 EST (took 1 min 9 s)",
        "Curr_Lic_Eds_End_Limits_20261127.csv",
        SHA256,
        "the source folder",
        "Nightly ALiS import",
        "Sample Supervisory Union",
        "The file was not valid UTF-8 and was read as Windows-1252.",
    ] {
        assert!(text.contains(fact), "{fact} is missing:\n{text}");
    }
}

#[test]
fn dry_run_is_marked_exactly_when_it_was_one() {
    let mut summary = typical_summary();
    let wet = Pdf::render(&summary).text();
    assert!(!wet.contains("DRY RUN"), "{wet}");

    summary.dry_run = true;
    let dry = Pdf::render(&summary);
    let pages = dry.pages_text();
    assert!(
        pages[0].contains("DRY RUN: nothing was written."),
        "{}",
        pages[0]
    );
    for (n, page) in pages.iter().enumerate() {
        assert!(
            page.contains("DRY RUN"),
            "page {} has no DRY RUN mark",
            n + 1
        );
    }
}

#[test]
fn a_rejected_run_says_why_nothing_changed() {
    let reason = "mass-deletion guard: active employees holding a certification would fall \
                  from 1200 to 310 (74.2% fewer; at most 20% allowed). Nothing changed. If the \
                  file is right, run again with force.";
    let mut summary = typical_summary();
    summary.rejected = Some(reason.into());
    let text = collapse_spaces(&Pdf::render(&summary).text());
    assert!(text.contains("REJECTED: nothing was changed."), "{text}");
    assert!(text.contains(&collapse_spaces(reason)), "{text}");

    summary.rejected = None;
    let text = Pdf::render(&summary).text();
    assert!(!text.contains("REJECTED"), "{text}");
}

#[test]
fn five_thousand_rows_paginate_with_the_header_and_page_numbers_on_every_page() {
    const ROWS: usize = 5_000;
    let mut summary = empty_summary();
    summary.expiring_soon = (0..ROWS).map(expiring).collect();
    let pdf = Pdf::render(&summary);
    let pages = pdf.pages_text();
    let total = pdf.page_count();
    assert_eq!(pages.len(), total);

    let rows_per_page: Vec<Vec<String>> = pages.iter().map(|page| employee_numbers(page)).collect();
    let first = rows_per_page
        .iter()
        .position(|rows| !rows.is_empty())
        .expect("a page with rows");
    let full = rows_per_page[first + 1].len();
    for (n, rows) in rows_per_page.iter().enumerate().skip(first + 1) {
        if n + 1 < total {
            assert_eq!(rows.len(), full, "page {} is not full", n + 1);
        } else {
            assert!(
                (1..=full).contains(&rows.len()),
                "last page: {} rows",
                rows.len()
            );
        }
    }
    let expected_pages = first + 1 + (ROWS - rows_per_page[first].len()).div_ceil(full);
    assert_eq!(total, expected_pages, "{full} rows per page");

    let listed: Vec<&String> = rows_per_page.iter().flatten().collect();
    let distinct: BTreeSet<&String> = listed.iter().copied().collect();
    assert_eq!(
        (listed.len(), distinct.len()),
        (ROWS, ROWS),
        "each row once"
    );

    for (n, page) in pages.iter().enumerate().skip(first) {
        let header = page
            .lines()
            .find(|line| line.contains("Employee"))
            .unwrap_or_else(|| panic!("page {} has no table header:\n{page}", n + 1));
        for title in ["Name", "License", "License type", "Endorsement", "Expires"] {
            assert!(header.contains(title), "page {}: {header}", n + 1);
        }
    }
    for (n, page) in pages.iter().enumerate() {
        let number = format!("Page {} of {total}", n + 1);
        assert!(page.contains(&number), "page {} lacks {number:?}", n + 1);
    }
    // One page on its own, as a reader would print it.
    let last = pdf.page_text(total);
    assert!(last.contains(&format!("Page {total} of {total}")), "{last}");
    assert!(
        last.contains("Expiring within 90 days (5,000) (continued)"),
        "{last}"
    );
}

#[test]
fn accented_names_survive_the_round_trip() {
    let names = [
        ("Østergaard", "Søren"),
        ("Łódź-Kowalczyk", "Łucja"),
        ("Nguyễn", "Thị Minh Khai"),
        ("Brontë", "Zoë"),
        ("Ó Súilleabháin", "Siobhán"),
        ("Çelik", "Ğülşen"),
    ];
    let mut summary = empty_summary();
    summary.missing_certification = names
        .iter()
        .enumerate()
        .map(|(n, (last, first))| employee(n, last, first))
        .collect();
    // The same name decomposed (e + combining diaeresis) prints composed.
    summary
        .missing_certification
        .push(employee(9, "Bronte\u{308}", "Zoe\u{308}"));
    let text = Pdf::render(&summary).text();
    for (last, first) in names {
        assert!(
            text.contains(last) && text.contains(first),
            "{last}, {first}:\n{text}"
        );
    }
    let e9 = text
        .lines()
        .find(|l| l.contains("E00009"))
        .expect("row E00009");
    assert!(e9.contains("Brontë") && e9.contains("Zoë"), "{e9}");
}

#[test]
fn long_names_wrap_inside_their_column() {
    let last = "Wolfeschlegelsteinhausenbergerdorff-Østergaard-Vandenberghe de la Cruz y Nguyễn";
    let first = "Maria-Magdalena Anneliese Søren Siobhán Zoë Thị Minh Khai";
    let mut summary = empty_summary();
    summary.missing_certification = vec![employee(1, last, first)];
    let pdf = Pdf::render(&summary);
    let words = pdf.words();

    let header = |text: &str| {
        words
            .iter()
            .find(|w| w.text == text)
            .unwrap_or_else(|| panic!("no {text:?} header"))
            .clone()
    };
    let (last_header, first_header) = (header("Last"), header("First"));
    // Below the header row and above the next section's title (poppler's word boxes
    // are tall, so compare their middles).
    let next_section = words
        .iter()
        .find(|w| w.page == last_header.page && w.text == "Expired" && w.y_min > last_header.y_max)
        .map_or(730.0, Word::middle);
    let in_row = |w: &&Word| {
        w.page == last_header.page && w.middle() > last_header.y_max && w.middle() < next_section
    };
    let last_column: Vec<&Word> = words
        .iter()
        .filter(in_row)
        .filter(|w| w.x_min >= last_header.x_min - 0.5 && w.x_min < first_header.x_min)
        .collect();
    for word in &last_column {
        assert!(
            word.x_max < first_header.x_min,
            "{:?} runs into the next column",
            word.text
        );
    }
    let lines: BTreeSet<u64> = last_column.iter().map(|w| w.middle() as u64).collect();
    assert!(lines.len() >= 2, "the long last name did not wrap");
    let printed: String = last_column.iter().map(|w| w.text.as_str()).collect();
    assert_eq!(printed, last.replace(' ', ""));

    let right_margin = 612.0 - 16.0 * 72.0 / 25.4;
    for word in &words {
        assert!(
            word.x_max <= right_margin + 0.5,
            "{word:?} is past the margin"
        );
    }
}

#[test]
fn a_typical_report_stays_under_one_megabyte() {
    let pdf = Pdf::render(&typical_summary());
    let size = pdf.bytes.len();
    println!("typical report: {size} bytes, {} pages", pdf.page_count());
    assert!(size < 1_000_000, "{size} bytes");
}

#[test]
fn text_is_set_only_in_the_embedded_font() {
    let pdf = Pdf::render(&typical_summary());
    let fonts = run("pdffonts", &[pdf.path()]);
    let embedded: Vec<&str> = fonts
        .lines()
        .filter(|l| l.contains("CID TrueType"))
        .collect();
    assert_eq!(embedded.len(), 1, "{fonts}");
    assert!(embedded[0].contains(" yes "), "{fonts}");
    // Page content streams are not compressed: every font selection is visible.
    let content = String::from_utf8_lossy(&pdf.bytes);
    let selections: BTreeSet<&str> = content
        .match_indices(" Tf")
        .filter_map(|(at, _)| content[..at].rsplit('/').next())
        .filter_map(|operands| operands.split_whitespace().next())
        .collect();
    assert_eq!(selections, BTreeSet::from(["F0"]), "{fonts}");
}

#[test]
fn pages_are_rendered_to_png_for_people_to_look_at() {
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();

    let mut summary = typical_summary();
    summary.expiring_soon = (0..120).map(expiring).collect();
    let pngs = to_png(&Pdf::render(&summary), &artifacts.join("report"), 3);

    summary.dry_run = true;
    summary.rejected = Some(
        "too many invalid rows: 212 of 51,234 data rows (at most 100, or 1%). Nothing changed."
            .into(),
    );
    let rejected = to_png(
        &Pdf::render(&summary),
        &artifacts.join("report-rejected"),
        1,
    );

    for png in pngs.iter().chain(&rejected) {
        let size = std::fs::metadata(png).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} is {size} bytes", png.display());
    }
}

/// Writes the PDF and its first `pages` pages as PNGs (80 dpi) beside `prefix`.
fn to_png(pdf: &Pdf, prefix: &Path, pages: usize) -> Vec<PathBuf> {
    std::fs::write(prefix.with_extension("pdf"), &pdf.bytes).unwrap();
    let last = pages.to_string();
    let prefix_arg = prefix.to_str().unwrap();
    let args = [
        "-png",
        "-r",
        "80",
        "-f",
        "1",
        "-l",
        &last,
        pdf.path(),
        prefix_arg,
    ];
    run("pdftoppm", &args);
    // pdftoppm pads page numbers to the width of the document's page count.
    let width = pdf.page_count().to_string().len();
    (1..=pages)
        .map(|page| PathBuf::from(format!("{prefix_arg}-{page:0width$}.png")))
        .collect()
}

// ---------------------------------------------------------------------------------------

const SHA256: &str = "9f2c4e0b7a1d3c5e8f60718293a4b5c6d7e8f9011223344556677889900aabbc";

fn header() -> ReportHeader {
    ReportHeader {
        district: "Sample Supervisory Union".into(),
        task_description: Some("Nightly ALiS import".into()),
        run_id: 4211,
        run_by: "scheduler".into(),
        started_at: "2026-11-30T11:00:03Z".parse().unwrap(),
        ended_at: Some("2026-11-30T11:01:12Z".parse().unwrap()),
        time_zone: jiff::tz::TimeZone::get("America/New_York").unwrap(),
    }
}

fn employee(n: usize, last: &str, first: &str) -> EmployeeRef {
    EmployeeRef {
        employee_number: format!("E{n:05}"),
        last_name: last.into(),
        first_name: first.into(),
    }
}

fn expiring(n: usize) -> ExpiringRecord {
    ExpiringRecord {
        employee_number: format!("E{n:05}"),
        last_name: "Østergaard".into(),
        first_name: "Søren".into(),
        license_number: Some(format!("{}", 1_000_000 + n)),
        license_type: "Level II Professional Educator".into(),
        endorsement_code: n.is_multiple_of(3).then(|| "3-71".into()),
        expiration_date: date(2026, 12, 1).saturating_add(jiff::Span::new().days((n % 89) as i64)),
    }
}

fn expired(n: usize) -> ExpiringRecord {
    ExpiringRecord {
        expiration_date: date(2026, 6, 30),
        ..expiring(n)
    }
}

fn empty_summary() -> Summary {
    Summary {
        run_date: date(2026, 11, 30),
        dry_run: false,
        rejected: None,
        file: Some(FileInfo {
            name: "Curr_Lic_Eds_End_Limits_20261127.csv".into(),
            sha256: SHA256.into(),
            from_cache: false,
        }),
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
        expiring_within_days: 90,
        notes: Vec::new(),
    }
}

/// A run of a district of about 1,500 employees: a few entries in every list.
fn typical_summary() -> Summary {
    let mut summary = empty_summary();
    summary.data_rows = 51_234;
    summary.invalid_rows = vec![
        InvalidRow {
            line: 17,
            reason: "LicenseIssueDate: not a date: 13/45/2020".into(),
        },
        InvalidRow {
            line: 20_933,
            reason: "LastName: blank".into(),
        },
    ];
    summary.not_imported_by_status = BTreeMap::from([("EXP".into(), 310), ("SUS".into(), 2)]);
    summary.educators_not_employed = 48_102;
    summary.missing_certification = (100..105)
        .map(|n| employee(n, "Kowalczyk", "Łucja"))
        .collect();
    summary.expired_certifications = [200, 201, 201, 202].map(expired).to_vec();
    summary.missing_dates = MissingDates {
        certification_issue: 0,
        certification_expiration: 3,
        endorsement_issue: 12,
        endorsement_expiration: 12,
    };
    summary.missing_date_records = (300..315)
        .map(|n| MissingDateRecord {
            employee_number: format!("E{n:05}"),
            license_number: Some(format!("{}", 2_000_000 + n)),
            endorsement_code: (n % 5 != 0).then(|| "3-47".into()),
            missing_issue_date: n % 5 != 0,
            missing_expiration_date: true,
        })
        .collect();
    summary.deleted = RecordCounts::new(812, 1_904);
    summary.imported = RecordCounts::new(809, 1_897);
    summary.skipped = (400..404)
        .map(|n| SkippedRef {
            employee_number: format!("E{n:05}"),
            last_name: "O'Brien".into(),
            first_name: "Siobhán".into(),
            reasons: vec!["last_name".into(), "first_name".into()],
            detail: "ERP: O'BRIEN, ALiS: OBrien; ERP: Siobhán, ALiS: Siobhan".into(),
        })
        .collect();
    summary.expiring_soon = (500..650).map(expiring).collect();
    summary.notes = vec!["The file was not valid UTF-8 and was read as Windows-1252.".into()];
    summary
}

/// A rendered report, kept in a temporary file for poppler's tools.
struct Pdf {
    bytes: Vec<u8>,
    file: NamedTempFile,
}

impl Pdf {
    fn render(summary: &Summary) -> Self {
        let bytes = render_pdf(&header(), summary).expect("the report renders");
        assert!(bytes.starts_with(b"%PDF-"));
        let mut file = tempfile::Builder::new().suffix(".pdf").tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        Self { bytes, file }
    }

    fn path(&self) -> &str {
        self.file.path().to_str().unwrap()
    }

    fn text(&self) -> String {
        run("pdftotext", &["-layout", self.path(), "-"])
    }

    /// Each page's text (pdftotext ends every page with a form feed).
    fn pages_text(&self) -> Vec<String> {
        let text = self.text();
        let mut pages: Vec<String> = text.split('\u{c}').map(str::to_owned).collect();
        if pages.last().is_some_and(|p| p.trim().is_empty()) {
            pages.pop();
        }
        pages
    }

    fn page_text(&self, page: usize) -> String {
        let page = page.to_string();
        run(
            "pdftotext",
            &["-layout", "-f", &page, "-l", &page, self.path(), "-"],
        )
    }

    fn page_count(&self) -> usize {
        let info = run("pdfinfo", &[self.path()]);
        let pages = info.lines().find_map(|l| l.strip_prefix("Pages:"));
        pages
            .expect("pdfinfo prints Pages:")
            .trim()
            .parse()
            .unwrap()
    }

    /// Every word with its box, in points from the top left corner of its page.
    fn words(&self) -> Vec<Word> {
        let html = run("pdftotext", &["-bbox", self.path(), "-"]);
        let mut page = 0;
        let mut words = Vec::new();
        for line in html.lines().map(str::trim) {
            if line.starts_with("<page ") {
                page += 1;
            }
            let Some(rest) = line.strip_prefix("<word ") else {
                continue;
            };
            let attribute = |name: &str| -> f64 {
                let start = rest.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                let end = start + rest[start..].find('"').unwrap();
                rest[start..end].parse().unwrap()
            };
            let text = &rest[rest.find('>').unwrap() + 1..rest.rfind("</word>").unwrap()];
            words.push(Word {
                page,
                text: unescape(text),
                x_min: attribute("xMin"),
                x_max: attribute("xMax"),
                y_min: attribute("yMin"),
                y_max: attribute("yMax"),
            });
        }
        words
    }
}

#[derive(Debug, Clone)]
struct Word {
    page: usize,
    text: String,
    x_min: f64,
    x_max: f64,
    y_min: f64,
    y_max: f64,
}

impl Word {
    fn middle(&self) -> f64 {
        (self.y_min + self.y_max) / 2.0
    }
}

fn unescape(html: &str) -> String {
    html.replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Runs one of poppler's tools and returns what it printed.
fn run(tool: &str, args: &[&str]) -> String {
    let output = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} (Debian package poppler-utils) cannot run: {e}"));
    assert!(
        output.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Asserts that the table row whose label starts with `label` ends with `values`.
fn assert_row_ends_with(text: &str, label: &str, values: &[&str]) {
    let row = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with(label))
        .unwrap_or_else(|| panic!("no row {label:?} in:\n{text}"));
    let tail: Vec<&str> = row.split_whitespace().rev().take(values.len()).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    assert_eq!(tail, values, "row {row:?}");
}

/// Employee numbers at the start of table rows.
fn employee_numbers(page: &str) -> Vec<String> {
    page.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| {
            word.len() == 6
                && word.starts_with('E')
                && word[1..].chars().all(|c| c.is_ascii_digit())
        })
        .map(str::to_owned)
        .collect()
}

fn collapse_spaces(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
