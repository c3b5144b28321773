//! Benchmark for the PDF report: renders a report whose expiring-soon list has
//! ROWS rows (5,000 by default) RUNS times (7 by default) and prints the median and
//! slowest times, the page count, the PDF size and the process's peak RSS.
//!
//! ```text
//! cargo run --release --example render_report -- [ROWS] [RUNS] [--out FILE.pdf]
//! ```
//!
//! It is an example rather than a timed test so that a slow CI machine cannot fail the
//! build; run it in release mode after changing the renderer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use alis_import::import::records::InvalidRow;
use alis_import::import::summary::{
    EmployeeRef, ExpiringRecord, FileInfo, MissingDateRecord, MissingDates, RecordCounts,
    SkippedRef, Summary,
};
use alis_import::report::{ReportHeader, render_pdf};
use jiff::civil::date;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut numbers = Vec::new();
    let mut out = None;
    while let Some(arg) = args.next() {
        if arg == "--out" {
            out = args.next();
        } else {
            numbers.push(arg.parse::<usize>()?);
        }
    }
    let rows = numbers.first().copied().unwrap_or(5_000);
    let runs = numbers.get(1).copied().unwrap_or(7).max(1);

    let header = header();
    let summary = summary(rows);
    let mut times = Vec::with_capacity(runs);
    let mut pdf = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        pdf = render_pdf(&header, &summary)?;
        times.push(started.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    let slowest = times[times.len() - 1];
    let pages = count_pages(&pdf);
    println!(
        "rows={rows} runs={runs} median={} slowest={} pages={pages} pdf_bytes={} peak_rss_kib={}",
        millis(median),
        millis(slowest),
        pdf.len(),
        peak_rss_kib().map_or_else(|| "unknown".to_owned(), |kib| kib.to_string()),
    );
    if let Some(path) = out {
        std::fs::write(&path, &pdf)?;
        println!("wrote {path}");
    }
    Ok(())
}

fn millis(duration: Duration) -> String {
    format!("{:.1}ms", duration.as_secs_f64() * 1000.0)
}

/// Pages as printpdf writes them: one `/Type/Page` object each (`/Type/Pages` is the tree).
fn count_pages(pdf: &[u8]) -> usize {
    let needle = b"/Type/Page";
    pdf.windows(needle.len() + 1)
        .filter(|w| &w[..needle.len()] == needle && w[needle.len()] != b's')
        .count()
}

/// VmHWM of this process (Linux), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn header() -> ReportHeader {
    ReportHeader {
        district: "Sample Supervisory Union".into(),
        task_description: Some("Nightly ALiS import".into()),
        run_id: 4_211,
        run_by: "scheduler".into(),
        started_at: "2026-11-30T11:00:03Z".parse().expect("a timestamp"),
        ended_at: Some("2026-11-30T11:01:12Z".parse().expect("a timestamp")),
        time_zone: jiff::tz::TimeZone::get("America/New_York").expect("a time zone"),
    }
}

/// A large run: `rows` certifications expiring soon, and a few of everything else.
fn summary(rows: usize) -> Summary {
    const NAMES: [(&str, &str); 6] = [
        ("Østergaard", "Søren"),
        ("Kowalczyk", "Łucja"),
        ("Nguyễn", "Thị Minh"),
        ("Brontë", "Zoë"),
        ("O'Brien", "Siobhán"),
        ("Smith", "John"),
    ];
    let employee = |n: usize| EmployeeRef {
        employee_number: format!("E{n:05}"),
        last_name: NAMES[n % NAMES.len()].0.into(),
        first_name: NAMES[n % NAMES.len()].1.into(),
    };
    let expiring = |n: usize| ExpiringRecord {
        employee_number: format!("E{n:05}"),
        last_name: NAMES[n % NAMES.len()].0.into(),
        first_name: NAMES[n % NAMES.len()].1.into(),
        license_number: Some(format!("{:07}", 1_000_000 + n)),
        license_type: "Level II Professional Educator".into(),
        endorsement_code: n.is_multiple_of(3).then(|| "3-71".into()),
        expiration_date: date(2026, 12, 1).saturating_add(jiff::Span::new().days((n % 90) as i64)),
    };
    Summary {
        run_date: date(2026, 11, 30),
        dry_run: false,
        rejected: None,
        file: Some(FileInfo {
            name: "Curr_Lic_Eds_End_Limits_20261127.csv".into(),
            sha256: "9f2c4e0b7a1d3c5e8f60718293a4b5c6d7e8f9011223344556677889900aabbc".into(),
            from_cache: false,
        }),
        data_rows: 51_234,
        invalid_rows: (0..20)
            .map(|n| InvalidRow {
                line: 17 + n * 101,
                reason: "LicenseIssueDate: not a date: 13/45/2020".into(),
            })
            .collect(),
        not_imported_by_status: BTreeMap::from([("EXP".into(), 310), ("SUS".into(), 2)]),
        educators_not_employed: 48_102,
        missing_certification: (0..25).map(employee).collect(),
        expired_certifications: (0..15)
            .map(|n| ExpiringRecord {
                expiration_date: date(2026, 6, 30),
                ..expiring(n)
            })
            .collect(),
        missing_dates: MissingDates {
            certification_issue: 0,
            certification_expiration: 3,
            endorsement_issue: 12,
            endorsement_expiration: 12,
        },
        missing_date_records: (0..24)
            .map(|n| MissingDateRecord {
                employee_number: format!("E{n:05}"),
                license_number: Some(format!("{:07}", 2_000_000 + n)),
                endorsement_code: (n % 2 == 0).then(|| "3-47".into()),
                missing_issue_date: n % 2 == 0,
                missing_expiration_date: true,
            })
            .collect(),
        deleted: RecordCounts::new(812, 1_904),
        imported: RecordCounts::new(809, 1_897),
        skipped: (0..40)
            .map(|n| SkippedRef {
                employee_number: format!("E{:05}", 90_000 + n),
                last_name: NAMES[n % NAMES.len()].0.into(),
                first_name: NAMES[n % NAMES.len()].1.into(),
                reasons: vec!["last_name".into()],
                detail: "ERP: O'BRIEN, ALiS: OBrien".into(),
            })
            .collect(),
        expiring_soon: (0..rows).map(expiring).collect(),
        expiring_within_days: 90,
        notes: vec!["The file was read as Windows-1252: it is not valid UTF-8.".into()],
    }
}
