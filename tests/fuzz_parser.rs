//! Fuzzing the ALiS parser (`import::alis_file::parse`) on stable Rust, with proptest
//! (issue 8). Three generators, each run for a bounded number of cases:
//!
//! - **arbitrary bytes**: raw bytes from a CSV-heavy alphabet (quotes, commas, CR, LF,
//!   BOM pieces, UTF-8 and Windows-1252 high bytes), often after a valid header;
//! - **well-formed files** with a differential oracle: a file model (educators,
//!   licences, endorsements; valid and invalid dates; quoting; BOM; CRLF; blank lines;
//!   repeated rows; Unicode or Windows-1252 names; header spellings, order, optional
//!   and unknown columns; thresholds; a `keep` choice) is written out as bytes, and a
//!   small independent model of rules §1.3–§1.5 predicts the whole outcome: rejection,
//!   data rows, the exact lines of the invalid rows, every kept educator with their
//!   certifications and endorsements, the educators not kept;
//! - **mutated files**: well-formed files with random byte edits.
//!
//! Every input also goes through the invariants any outcome must keep (no panic,
//! invalid rows ≤ data rows and within the file's lines, educators kept only when
//! `keep` said yes and asked once each, the same result when the input arrives a few
//! bytes per read, the same result twice) and a memory bound: the heap the parse
//! holds at its peak, measured per thread by a counting allocator, stays within a
//! linear bound of the input's size.
//!
//! Sizes: `ALIS_FUZZ_CASES` cases per generator (default below), seed
//! `ALIS_FUZZ_SEED` (random by default; printed, so a failure is reproducible). A
//! failing input is shrunk, written to `test-artifacts/fuzz-failures/`, and named in
//! the panic: copy it into `tests/fuzz-regressions/`, where
//! `fuzz_regressions_replay_cleanly` replays every file on every run.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use alis_import::import::alis_file::{FileRejection, ParseSettings, parse};
use alis_import::import::records::{
    Certification, Educator, EducatorId, Endorsement, NameKey, ParsedFile, PersonName,
};
use jiff::civil::Date;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

// ---------------------------------------------------------------------------
// Memory: a counting allocator, per thread.
// ---------------------------------------------------------------------------

/// Counts the bytes each thread holds and the most it held since the last reset. The
/// thread-locals are `const`-initialised `Cell`s without destructors, so using them
/// never allocates.
struct CountingAllocator;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get().wrapping_add(size as isize);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn note_free(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().wrapping_sub(size as isize)));
}

// SAFETY: every call is forwarded to `System` unchanged; the bookkeeping only reads
// and writes thread-local integers.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            note_alloc(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            note_alloc(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(pointer, layout) };
        note_free(layout.size());
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            note_free(layout.size());
            note_alloc(new_size);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its value with the most heap it held at once, beyond what
/// the thread held before (its result included).
fn with_peak_heap<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(base));
    let value = f();
    let peak = PEAK.with(Cell::get);
    (value, usize::try_from(peak.wrapping_sub(base)).unwrap_or(0))
}

/// The heap a parse may hold: the parser's fixed buffers (a 64 KiB read chunk, the
/// CSV reader's buffer, the record) plus a linear share of the input for its maps and
/// the kept records. A parse that buffered the input many times over, or grew with
/// something other than the input, breaks it.
fn heap_bound(input_len: usize) -> usize {
    512 * 1024 + 64 * input_len
}

// ---------------------------------------------------------------------------
// Running the parser and the invariants of every outcome.
// ---------------------------------------------------------------------------

/// What one parse returned, with what `keep` was asked.
#[derive(Debug)]
struct Outcome {
    result: Result<ParsedFile, FileRejection>,
    /// Each question `keep` got (normalised ID) and its answer, in order.
    asked: Vec<(EducatorId, bool)>,
    peak_heap: usize,
}

/// Which educators `keep` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeepMode {
    All,
    Nobody,
    /// Educators whose normalised ID's bytes add up to an even number.
    EvenIds,
}

impl KeepMode {
    fn keeps(self, id: &EducatorId) -> bool {
        match self {
            KeepMode::All => true,
            KeepMode::Nobody => false,
            KeepMode::EvenIds => id
                .as_str()
                .bytes()
                .map(u32::from)
                .sum::<u32>()
                .is_multiple_of(2),
        }
    }
}

/// A reader that hands out at most `step` bytes per read, as a slow network or a
/// pipe would: chunk boundaries land everywhere, inside UTF-8 sequences, BOMs, CRLF.
struct Trickle {
    inner: Cursor<Vec<u8>>,
    step: usize,
}

impl Read for Trickle {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let end = buffer.len().min(self.step);
        self.inner.read(&mut buffer[..end])
    }
}

impl Seek for Trickle {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.inner.seek(to)
    }
}

fn run_parse<R: Read + Seek + Send>(input: R, settings: &ParseSettings, keep: KeepMode) -> Outcome {
    let mut asked = Vec::new();
    let (result, peak_heap) = with_peak_heap(|| {
        parse(input, settings, |id, _name| {
            let answer = keep.keeps(id);
            asked.push((id.clone(), answer));
            answer
        })
    });
    Outcome {
        result,
        asked,
        peak_heap,
    }
}

/// A comparable rendering of an outcome (`ParsedFile` has no `PartialEq`).
fn rendered(result: &Result<ParsedFile, FileRejection>) -> String {
    format!("{result:?}")
}

/// Physical lines: what a line number in the report may name.
fn line_count(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1
}

/// Parses `bytes` three ways and checks what every outcome must satisfy, whatever the
/// input. Returns the outcome of the plain parse.
fn check_invariants(
    bytes: &[u8],
    settings: &ParseSettings,
    keep: KeepMode,
) -> Result<Outcome, TestCaseError> {
    let outcome = run_parse(Cursor::new(bytes), settings, keep);

    // Deterministic, and blind to how the bytes arrive.
    let again = run_parse(Cursor::new(bytes.to_vec()), settings, keep);
    prop_assert_eq!(rendered(&outcome.result), rendered(&again.result));
    let step = 1 + bytes.len() % 7;
    let trickled = run_parse(
        Trickle {
            inner: Cursor::new(bytes.to_vec()),
            step,
        },
        settings,
        keep,
    );
    prop_assert_eq!(
        rendered(&outcome.result),
        rendered(&trickled.result),
        "{} bytes at a time",
        step
    );
    prop_assert_eq!(&outcome.asked, &trickled.asked);

    prop_assert!(
        outcome.peak_heap <= heap_bound(bytes.len()),
        "the parse held {} bytes of heap for {} bytes of input",
        outcome.peak_heap,
        bytes.len()
    );

    // `keep` is asked once per distinct educator.
    let mut distinct = HashSet::new();
    for (id, _) in &outcome.asked {
        prop_assert!(distinct.insert(id.clone()), "asked twice about {:?}", id);
    }

    match &outcome.result {
        Ok(parsed) => check_parsed(bytes, settings, &outcome.asked, parsed)?,
        Err(FileRejection::TooManyInvalidRows { invalid, data_rows }) => {
            prop_assert!(invalid <= data_rows, "{:?}", outcome.result);
            prop_assert!(*invalid > 0);
            let over_count = *invalid > settings.max_invalid_rows;
            let over_share = *invalid as f64 / *data_rows as f64 > settings.max_invalid_fraction;
            prop_assert!(over_count || over_share, "refused within the thresholds");
        }
        Err(FileRejection::MissingColumns(columns)) => prop_assert!(!columns.is_empty()),
        Err(FileRejection::Empty | FileRejection::NoDataRows | FileRejection::Unreadable(_)) => {}
    }
    Ok(outcome)
}

fn check_parsed(
    bytes: &[u8],
    settings: &ParseSettings,
    asked: &[(EducatorId, bool)],
    parsed: &ParsedFile,
) -> Result<(), TestCaseError> {
    let invalid = parsed.invalid_rows.len() as u64;
    prop_assert!(parsed.data_rows > 0);
    prop_assert!(invalid <= parsed.data_rows);
    // Accepted, so within the thresholds, so every invalid row is listed.
    prop_assert!(invalid <= settings.max_invalid_rows);
    let lines = line_count(bytes);
    let mut previous = 0;
    for row in &parsed.invalid_rows {
        prop_assert!(
            (1..=lines).contains(&row.line),
            "invalid row on line {} of a file of {} lines",
            row.line,
            lines
        );
        prop_assert!(row.line >= previous, "invalid rows out of file order");
        previous = row.line;
        prop_assert!(!row.reason.is_empty());
    }
    prop_assert_eq!(
        parsed.decoded_as_windows_1252,
        std::str::from_utf8(bytes).is_err()
    );

    // Kept exactly those `keep` said yes to, in the order asked.
    let yes: Vec<&EducatorId> = asked.iter().filter(|(_, a)| *a).map(|(id, _)| id).collect();
    let kept: Vec<&EducatorId> = parsed.educators.iter().map(|e| &e.id).collect();
    prop_assert_eq!(kept, yes);
    let no = asked.iter().filter(|(_, a)| !*a).count() as u64;
    prop_assert_eq!(parsed.educators_not_kept, no);

    // Every record comes from a valid row of its own.
    let valid_rows = parsed.data_rows - invalid;
    let certifications: usize = parsed
        .educators
        .iter()
        .map(|e| e.certifications.len())
        .sum();
    let endorsements: usize = parsed
        .educators
        .iter()
        .flat_map(|e| &e.certifications)
        .map(|c| c.endorsements.len())
        .sum();
    prop_assert!(certifications as u64 <= valid_rows);
    prop_assert!(endorsements as u64 <= valid_rows);
    prop_assert!(parsed.educators.len() as u64 + no <= valid_rows);

    for educator in &parsed.educators {
        prop_assert!(!educator.certifications.is_empty(), "{:?}", educator);
        prop_assert!(!educator.name.last.is_empty() && !educator.name.first.is_empty());
        let mut keys = HashSet::new();
        for certification in &educator.certifications {
            let key = match &certification.license_number {
                Some(number) => format!("#{number}"),
                None => format!(
                    "{}|{:?}",
                    certification.license_type, certification.issue_date
                ),
            };
            prop_assert!(keys.insert(key), "certification twice: {:?}", educator);
            prop_assert!(!certification.license_type.is_empty());
            prop_assert!(!certification.status.is_empty());
            let mut endorsement_keys = HashSet::new();
            for endorsement in &certification.endorsements {
                prop_assert!(!endorsement.code.is_empty());
                prop_assert!(
                    endorsement_keys.insert((&endorsement.code, &endorsement.grade_level)),
                    "endorsement twice: {:?}",
                    certification
                );
                let distinct: HashSet<&String> = endorsement.limits.iter().collect();
                prop_assert_eq!(distinct.len(), endorsement.limits.len());
                for limit in &endorsement.limits {
                    prop_assert!(!limit.is_empty() && limit.trim() == limit);
                    prop_assert!(!limit.contains(';'));
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The runner: cases, seed, failures written out.
// ---------------------------------------------------------------------------

/// Cases per generator when `ALIS_FUZZ_CASES` is unset: together about half a minute
/// of a debug build on the 2-core CI machine.
const DEFAULT_CASES: u32 = 2_000;

fn cases() -> u32 {
    std::env::var("ALIS_FUZZ_CASES")
        .ok()
        .map(|v| v.parse().expect("ALIS_FUZZ_CASES is a number"))
        .unwrap_or(DEFAULT_CASES)
}

/// The seed of this run: `ALIS_FUZZ_SEED`, or a fresh one.
fn seed() -> u64 {
    std::env::var("ALIS_FUZZ_SEED")
        .ok()
        .map(|v| v.parse().expect("ALIS_FUZZ_SEED is a number"))
        .unwrap_or_else(|| fastrand::u64(..))
}

/// Runs `check` on `cases()` inputs from `strategy`; on a failure, writes the shrunk
/// input to `test-artifacts/fuzz-failures/` and panics naming it and the seed.
fn fuzz<S>(name: &str, strategy: S, check: impl Fn(&S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: AsBytes,
{
    let seed = seed();
    let cases = cases();
    let started = std::time::Instant::now();
    eprintln!("{name}: {cases} cases, ALIS_FUZZ_SEED={seed}");
    let mut seed_bytes = [0_u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        // Enough to shrink a file of a few hundred rows to its essence.
        max_shrink_iters: 4_096,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    match runner.run(&strategy, |value| check(&value)) {
        Ok(()) => eprintln!("{name}: {cases} cases passed in {:?}", started.elapsed()),
        Err(TestError::Fail(reason, value)) => {
            let path = save_failure(name, value.as_bytes());
            panic!(
                "{name} failed (ALIS_FUZZ_SEED={seed}): {reason}\nshrunk input ({} bytes): {}\n\
                 copy it into tests/fuzz-regressions/ once fixed",
                value.as_bytes().len(),
                path.display()
            );
        }
        Err(TestError::Abort(reason)) => panic!("{name} aborted (ALIS_FUZZ_SEED={seed}): {reason}"),
    }
}

/// The bytes a generated value stands for (written out on failure).
trait AsBytes: std::fmt::Debug {
    fn as_bytes(&self) -> Vec<u8>;
}

impl AsBytes for Vec<u8> {
    fn as_bytes(&self) -> Vec<u8> {
        self.clone()
    }
}

fn save_failure(name: &str, bytes: Vec<u8>) -> PathBuf {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let dir = support::artifacts_dir().join("fuzz-failures");
    std::fs::create_dir_all(&dir).expect("create the fuzz failures folder");
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    let path = dir.join(format!("{name}-{:016x}.csv", hasher.finish()));
    std::fs::write(&path, bytes).expect("write the failing input");
    path
}

/// Settings that refuse no file for its invalid rows, so every row is checked.
fn lenient() -> ParseSettings {
    ParseSettings {
        max_invalid_rows: u64::MAX,
        max_invalid_fraction: 1.0,
    }
}

// ---------------------------------------------------------------------------
// (a) Arbitrary bytes.
// ---------------------------------------------------------------------------

/// The standard header.
const HEADER: &str = "EducatorID,LastName,FirstName,LicenseNumber,LicenseType,LicenseStatus,\
LicenseIssueDate,LicenseExpirationDate,EndorsementCode,EndorsementDescription,EndorsementLevel,\
EndorsementIssueDate,EndorsementExpirationDate,Limits";

/// Byte pieces that matter to a CSV parser, UTF-8 and Windows-1252 among them.
const PIECES: &[&[u8]] = &[
    b",",
    b",",
    b",",
    b"\"",
    b"\"\"",
    b"\n",
    b"\r\n",
    b"\r",
    b" ",
    b"\t",
    b";",
    b"/",
    b"-",
    b"0",
    b"7",
    b"12",
    b"2020",
    b"07/01/2020",
    b"2027-06-30",
    b"13/45/2020",
    b"ACT",
    b"udr",
    b"Smith",
    b"1001",
    b"0001001",
    b"L-1",
    b"2-05",
    b"K-6",
    b"\xEF\xBB\xBF",
    b"\xEF\xBB",
    b"\xC3\xA9",
    b"\xC3",
    b"\xE1\xBB\x85",
    b"\xF0\x9F\x98\x80",
    b"\xE9",
    b"\x80",
    b"\x9D",
    b"\xFF",
    b"\x00",
];

fn arbitrary_bytes() -> impl Strategy<Value = Vec<u8>> {
    let raw = prop::collection::vec(any::<u8>(), 0..2_048);
    let pieces =
        (0_u8..4, prop::collection::vec(0..PIECES.len(), 0..1_500)).prop_map(|(prefix, picks)| {
            let mut bytes = match prefix {
                0 => Vec::new(),
                1 => b"\xEF\xBB\xBF".to_vec(),
                _ => format!("{HEADER}\n").into_bytes(),
            };
            for pick in picks {
                bytes.extend_from_slice(PIECES[pick]);
            }
            bytes
        });
    prop_oneof![1 => raw, 4 => pieces]
}

#[test]
fn arbitrary_bytes_keep_every_invariant() {
    fuzz("arbitrary_bytes", arbitrary_bytes(), |bytes| {
        for (settings, keep) in [
            (lenient(), KeepMode::EvenIds),
            (ParseSettings::default(), KeepMode::All),
        ] {
            check_invariants(bytes, &settings, keep)?;
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// (b) Well-formed files and the oracle.
// ---------------------------------------------------------------------------

/// The columns of rules §1.4 in canonical spelling, split into words for spelling
/// variants, and whether the header must have them.
const COLUMNS: [(&[&str], bool); 14] = [
    (&["Educator", "ID"], true),
    (&["Last", "Name"], true),
    (&["First", "Name"], true),
    (&["License", "Number"], false),
    (&["License", "Type"], true),
    (&["License", "Status"], true),
    (&["License", "Issue", "Date"], true),
    (&["License", "Expiration", "Date"], true),
    (&["Endorsement", "Code"], true),
    (&["Endorsement", "Description"], false),
    (&["Endorsement", "Level"], false),
    (&["Endorsement", "Issue", "Date"], false),
    (&["Endorsement", "Expiration", "Date"], false),
    (&["Limits"], false),
];

const EDUCATOR_ID: usize = 0;
const LAST_NAME: usize = 1;
const FIRST_NAME: usize = 2;
const LICENSE_NUMBER: usize = 3;
const LICENSE_TYPE: usize = 4;
const LICENSE_STATUS: usize = 5;
const LICENSE_ISSUE: usize = 6;
const LICENSE_EXPIRATION: usize = 7;
const ENDORSEMENT_CODE: usize = 8;
const ENDORSEMENT_DESCRIPTION: usize = 9;
const ENDORSEMENT_LEVEL: usize = 10;
const ENDORSEMENT_ISSUE: usize = 11;
const ENDORSEMENT_EXPIRATION: usize = 12;
const LIMITS: usize = 13;

/// Names with what Vermont's file holds: accents, apostrophes, spaces, and letters
/// beyond Latin-1. The first ones are also Windows-1252.
const LAST_NAMES_1252: &[&str] = &[
    "Smith",
    "O'Brien",
    "Østergaard",
    "Dubois-Lefèvre",
    "Œuvray",
    "Van der Berg",
];
const LAST_NAMES_UNICODE: &[&str] = &[
    "Nguyễn",
    "Łukasiewicz",
    "Straße",
    "ΟΔΥΣΣΕΥΣ",
    "St.\u{A0}Pierre",
    "Kowalski",
];
const FIRST_NAMES_1252: &[&str] = &["Zoë", "José", "Søren", "Anne Marie", "François", "Ann"];
const FIRST_NAMES_UNICODE: &[&str] = &["Łucja", "Mei", "Aoife", "Đức", "Σοφία", "Anne  Marie"];
const TYPES: &[&str] = &[
    "Level I Professional Educator",
    "Level II Professional Educator",
    "Provisional",
    "Emergency",
];
const STATUSES: &[&str] = &["ACT", "UDR", "EXP", "SUS", "act", " Udr "];
const CODES: &[&str] = &["2-05", "1-01", "3-70", "2-05a"];
const LEVELS: &[&str] = &["K-6", "7-12", "", "PK-12"];
const DESCRIPTIONS: &[&str] = &[
    "Elementary Education",
    "English, Language Arts",
    "Math \"core\"",
    "Science\nmulti-line",
    "",
];
const LIMITS_VALUES: &[&str] = &[
    "",
    "Grades 5-8 only",
    "A; B",
    " B ;C;; A ",
    "Limited, see note",
];
/// Text that is never a date (rules §1.4).
const NOT_DATES: &[&str] = &[
    "13/01/2020",
    "02/30/2021",
    "2021-02-29",
    "2020-7-01",
    "7/1/20",
    "20200701",
    "2020/07/01",
    "07-01-2020",
    "N/A",
    "0/0/0000",
    "2020-00-10",
    "12/31/99999",
    "½/01/2020",
    "2020-07-01T00:00",
];

/// A cell's date, as the model means it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateCell {
    Blank,
    Valid(Date),
    Invalid(usize),
}

impl DateCell {
    /// Written one of the accepted ways (`form` picks which).
    fn text(self, form: u8) -> String {
        match self {
            DateCell::Blank => String::new(),
            DateCell::Invalid(i) => NOT_DATES[i % NOT_DATES.len()].to_owned(),
            DateCell::Valid(d) => match form % 3 {
                0 => format!("{:02}/{:02}/{:04}", d.month(), d.day(), d.year()),
                1 => format!("{}/{}/{:04}", d.month(), d.day(), d.year()),
                _ => format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
            },
        }
    }
}

fn some_date(n: u32) -> Date {
    let year = 1995 + (n % 40) as i16;
    let month = 1 + (n / 40 % 12) as i8;
    let day = 1 + (n / 480 % 31) as i8;
    // Clamp to the month's length: every generated valid date exists.
    let first = jiff::civil::date(year, month, 1);
    jiff::civil::date(year, month, day.min(first.days_in_month()))
}

/// One data row as the model means it: what each column holds (before quoting and
/// padding), or `None` for a blank line.
#[derive(Debug, Clone)]
struct ModelRow {
    cells: [String; 14],
    dates: [DateCell; 14],
    /// Fields added (positive) or removed (negative) at the end: a wrong field count.
    extra_fields: i8,
}

/// The generator's choices for one line; small numbers, so shrinking simplifies.
#[derive(Debug, Clone)]
struct LineChoice {
    kind: u8,
    educator: u8,
    licence: u8,
    endorsement: u8,
    mutation: u8,
    argument: u16,
    quoting: u16,
    padding: u16,
    terminator: u8,
}

fn line_choice() -> impl Strategy<Value = LineChoice> {
    (
        (0_u8..20, 0_u8..7, 0_u8..4, 0_u8..5),
        (0_u8..26, any::<u16>(), any::<u16>(), any::<u16>(), 0_u8..10),
    )
        .prop_map(
            |(
                (kind, educator, licence, endorsement),
                (mutation, argument, quoting, padding, terminator),
            )| {
                LineChoice {
                    kind,
                    educator,
                    licence,
                    endorsement,
                    mutation,
                    argument,
                    quoting,
                    padding,
                    terminator,
                }
            },
        )
}

/// The generator's choices for a whole file.
#[derive(Debug, Clone)]
struct FileChoice {
    bom: bool,
    windows_1252: bool,
    column_order: u64,
    spelling: u64,
    /// Bit i: optional column i is left out of the header.
    absent_optional: u16,
    /// Index+1 of a required column left out (rare), 0 for none.
    missing_required: u8,
    unknown_column: bool,
    blank_lines_before_header: u8,
    final_newline: bool,
    keep: u8,
    thresholds: u8,
    lines: Vec<LineChoice>,
}

fn file_choice() -> impl Strategy<Value = FileChoice> {
    (
        (
            any::<bool>(),
            any::<bool>(),
            any::<u64>(),
            any::<u64>(),
            any::<u16>(),
        ),
        (
            prop_oneof![12 => Just(0_u8), 1 => 1_u8..=14],
            any::<bool>(),
            0_u8..3,
            prop_oneof![4 => Just(true), 1 => Just(false)],
            0_u8..3,
            0_u8..4,
        ),
        prop::collection::vec(line_choice(), 0..160),
    )
        .prop_map(
            |(
                (bom, windows_1252, column_order, spelling, absent_optional),
                (missing_required, unknown_column, blank_lines, final_newline, keep, thresholds),
                lines,
            )| FileChoice {
                bom,
                windows_1252,
                column_order,
                spelling,
                absent_optional,
                missing_required,
                unknown_column,
                blank_lines_before_header: blank_lines,
                final_newline,
                keep,
                thresholds,
                lines,
            },
        )
}

/// A generated file: its bytes and everything the oracle needs to predict the parse.
#[derive(Debug, Clone)]
struct Generated {
    bytes: Vec<u8>,
    settings: ParseSettings,
    keep: KeepMode,
    /// Column index (canonical order) → position in the header, `None` if absent.
    positions: [Option<usize>; 14],
    header_len: usize,
    /// Data rows: model and starting line.
    rows: Vec<(ModelRow, u64)>,
    missing_required: Vec<&'static str>,
}

impl AsBytes for Generated {
    fn as_bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }
}

/// `EducatorID` written for educator `k`: leading zeros and padding do not change it.
fn educator_id(k: u8, variant: u16) -> String {
    let id = 1000 + u32::from(k) * 37;
    match variant % 4 {
        0 | 1 => id.to_string(),
        2 => format!("00{id}"),
        _ => format!(" {id} "),
    }
}

fn canonical_name(words: &[&str]) -> String {
    words.concat()
}

fn spelled(words: &[&str], style: u64) -> String {
    let joiner = ["", " ", "_", ""][(style % 4) as usize];
    let joined = words.join(joiner);
    match style / 4 % 3 {
        0 => joined,
        1 => joined.to_lowercase(),
        _ => joined.to_uppercase(),
    }
}

/// Writes one field as CSV: quoted when it must be (or when asked), inner quotes
/// doubled.
fn csv_field(value: &str, quote: bool) -> String {
    let must = value.contains([',', '"', '\r', '\n']);
    if must || quote {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

const PADS: &[&str] = &[" ", "  ", "\t", "\u{A0}"];

fn generate(choice: &FileChoice) -> Generated {
    let windows_1252 = choice.windows_1252;
    let (lasts, firsts) = if windows_1252 {
        (LAST_NAMES_1252, FIRST_NAMES_1252)
    } else {
        (LAST_NAMES_UNICODE, FIRST_NAMES_UNICODE)
    };

    // The header: which columns, in which order, spelt how.
    let mut present: Vec<usize> = (0..14)
        .filter(|&c| COLUMNS[c].1 || choice.absent_optional & (1 << c) == 0)
        .collect();
    let mut missing_required = Vec::new();
    if choice.missing_required > 0 {
        let c = usize::from(choice.missing_required - 1) % 14;
        if COLUMNS[c].1 {
            present.retain(|&p| p != c);
            missing_required.push(c);
        }
    }
    let mut order: Vec<Option<usize>> = present.iter().copied().map(Some).collect();
    if choice.unknown_column {
        order.push(None);
    }
    fastrand::Rng::with_seed(choice.column_order).shuffle(&mut order);
    let mut positions = [None; 14];
    for (position, column) in order.iter().enumerate() {
        if let Some(c) = column {
            positions[*c] = Some(position);
        }
    }
    let header_len = order.len();
    let mut spelling = fastrand::Rng::with_seed(choice.spelling);
    let header: Vec<String> = order
        .iter()
        .map(|column| match column {
            Some(c) => csv_field(&spelled(COLUMNS[*c].0, spelling.u64(..)), spelling.bool()),
            None => "Notes, internal".to_owned().replace(',', ";"),
        })
        .collect();

    let mut out = String::new();
    let mut offsets = Vec::new();
    let push_line = |out: &mut String, text: &str, terminator: &str| {
        out.push_str(text);
        out.push_str(terminator);
    };
    for _ in 0..choice.blank_lines_before_header {
        push_line(&mut out, "", "\n");
    }
    let header_line = header.join(",");
    let terminator_of = |t: u8| match t {
        0..=5 => "\n",
        6..=8 => "\r\n",
        _ => "\r",
    };
    let mut rows = Vec::new();
    let lines = &choice.lines;
    let last_index = lines.len();
    push_line(
        &mut out,
        &header_line,
        if last_index == 0 && !choice.final_newline {
            ""
        } else {
            "\n"
        },
    );
    for (index, line) in lines.iter().enumerate() {
        let terminator = if index + 1 == last_index && !choice.final_newline {
            ""
        } else {
            terminator_of(line.terminator)
        };
        if line.kind >= 16 {
            let text = match line.kind {
                16 => "",
                17 => "   ",
                18 => ",,,,",
                _ => "\"\", ,\t",
            };
            push_line(&mut out, text, terminator);
            continue;
        }
        let row = model_row(line, lasts, firsts);
        let start = out.len();
        let mut fields: Vec<String> = order
            .iter()
            .enumerate()
            .map(|(position, column)| {
                let value = match column {
                    Some(c) => row.cells[*c].clone(),
                    None => "x".repeat(position % 3),
                };
                let padded = if line.padding & (1 << (position % 16)) != 0 && !value.is_empty() {
                    let pad = PADS[usize::from(line.padding >> 12) % PADS.len()];
                    format!("{pad}{value}{pad}")
                } else {
                    value
                };
                csv_field(&padded, line.quoting & (1 << (position % 16)) != 0)
            })
            .collect();
        match row.extra_fields {
            n if n > 0 => fields.push("extra".into()),
            n if n < 0 => {
                fields.pop();
            }
            _ => {}
        }
        // A row of nothing but blank fields would be a blank line, not a data row.
        let text = fields.join(",");
        push_line(&mut out, &text, terminator);
        offsets.push(start);
        rows.push(row);
    }

    let mut bytes = Vec::new();
    if choice.bom {
        bytes.extend_from_slice(b"\xEF\xBB\xBF");
    }
    let prefix = bytes.len();
    if windows_1252 {
        let (encoded, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&out);
        assert!(!unmappable, "the Windows-1252 names are all Windows-1252");
        // One byte per character in Windows-1252: a line's offset is its character
        // count.
        bytes.extend_from_slice(&encoded);
        offsets = offsets
            .into_iter()
            .map(|o| out[..o].chars().count())
            .collect();
    } else {
        bytes.extend_from_slice(out.as_bytes());
    }
    let lines_of: Vec<u64> = offsets
        .iter()
        .map(|&o| 1 + bytes[..prefix + o].iter().filter(|&&b| b == b'\n').count() as u64)
        .collect();

    let settings = match choice.thresholds {
        0 | 1 => lenient(),
        2 => ParseSettings::default(),
        _ => ParseSettings {
            max_invalid_rows: 3,
            max_invalid_fraction: 0.25,
        },
    };
    let keep = match choice.keep {
        0 => KeepMode::All,
        1 => KeepMode::Nobody,
        _ => KeepMode::EvenIds,
    };
    Generated {
        bytes,
        settings,
        keep,
        positions,
        header_len,
        rows: rows.into_iter().zip(lines_of).collect(),
        missing_required: missing_required
            .into_iter()
            .map(|c| leak(canonical_name(COLUMNS[c].0)))
            .collect(),
    }
}

fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

/// The model of one data row: educator `k`'s licence `j` with endorsement `e`, then
/// one mutation that may or may not make it invalid (the oracle decides).
fn model_row(line: &LineChoice, lasts: &[&str], firsts: &[&str]) -> ModelRow {
    let k = line.educator;
    let j = line.licence;
    let e = line.endorsement;
    let a = line.argument;
    let educator_seed = u32::from(k) * 7919;
    let licence_seed = educator_seed + u32::from(j) * 104_729;
    let mut cells: [String; 14] = Default::default();
    let mut dates = [DateCell::Blank; 14];
    cells[EDUCATOR_ID] = educator_id(k, 0);
    cells[LAST_NAME] = lasts[usize::from(k) % lasts.len()].to_owned();
    cells[FIRST_NAME] = firsts[usize::from(k) % firsts.len()].to_owned();
    // Licence 3 has no number: it is told apart by type and issue date.
    cells[LICENSE_NUMBER] = if j == 3 {
        String::new()
    } else {
        format!("L{}-{}", 7000 + u32::from(k), j)
    };
    cells[LICENSE_TYPE] = TYPES[(licence_seed as usize / 3) % TYPES.len()].to_owned();
    cells[LICENSE_STATUS] = STATUSES[(licence_seed as usize / 5) % 4].to_owned();
    dates[LICENSE_ISSUE] = if licence_seed.is_multiple_of(11) {
        DateCell::Blank
    } else {
        DateCell::Valid(some_date(licence_seed))
    };
    dates[LICENSE_EXPIRATION] = DateCell::Valid(some_date(licence_seed + 3));
    if e < 4 {
        let endorsement_seed = licence_seed + u32::from(e) * 31;
        cells[ENDORSEMENT_CODE] = CODES[usize::from(e)].to_owned();
        cells[ENDORSEMENT_DESCRIPTION] =
            DESCRIPTIONS[usize::from(e) % DESCRIPTIONS.len()].to_owned();
        cells[ENDORSEMENT_LEVEL] = LEVELS[(endorsement_seed as usize) % LEVELS.len()].to_owned();
        dates[ENDORSEMENT_ISSUE] = DateCell::Valid(some_date(endorsement_seed));
        dates[ENDORSEMENT_EXPIRATION] = if endorsement_seed.is_multiple_of(5) {
            DateCell::Blank
        } else {
            DateCell::Valid(some_date(endorsement_seed + 9))
        };
        cells[LIMITS] = LIMITS_VALUES[usize::from(a) % LIMITS_VALUES.len()].to_owned();
    }
    let mut extra_fields = 0;
    let mut form = (a % 3) as u8;
    match line.mutation {
        // Most rows are plain repeats.
        0..=9 => form = 0,
        10 => dates[LICENSE_ISSUE] = DateCell::Invalid(usize::from(a)),
        11 => dates[LICENSE_EXPIRATION] = DateCell::Invalid(usize::from(a)),
        12 => dates[ENDORSEMENT_ISSUE] = DateCell::Invalid(usize::from(a)),
        13 => dates[ENDORSEMENT_EXPIRATION] = DateCell::Invalid(usize::from(a)),
        14 => {
            let required = [
                EDUCATOR_ID,
                LAST_NAME,
                FIRST_NAME,
                LICENSE_TYPE,
                LICENSE_STATUS,
            ];
            cells[required[usize::from(a) % required.len()]] = String::new();
        }
        15 => extra_fields = if a.is_multiple_of(2) { 1 } else { -1 },
        // Disagreements with the licence's other rows.
        16 => cells[LICENSE_STATUS] = STATUSES[usize::from(a) % STATUSES.len()].to_owned(),
        17 => dates[LICENSE_EXPIRATION] = DateCell::Valid(some_date(u32::from(a))),
        18 => cells[LAST_NAME] = lasts[usize::from(a) % lasts.len()].to_owned(),
        19 => cells[LICENSE_TYPE] = TYPES[usize::from(a) % TYPES.len()].to_owned(),
        // Spellings that agree.
        20 => cells[LAST_NAME] = cells[LAST_NAME].to_uppercase(),
        21 => cells[FIRST_NAME] = cells[FIRST_NAME].replace(' ', "   "),
        22 => cells[EDUCATOR_ID] = educator_id(k, a),
        23 => cells[LICENSE_STATUS] = cells[LICENSE_STATUS].to_lowercase(),
        // A licence row without an endorsement, whatever the other columns say.
        24 => cells[ENDORSEMENT_CODE] = String::new(),
        _ => cells[LIMITS] = format!("Limit {}", a % 4),
    }
    for c in [
        LICENSE_ISSUE,
        LICENSE_EXPIRATION,
        ENDORSEMENT_ISSUE,
        ENDORSEMENT_EXPIRATION,
    ] {
        cells[c] = dates[c].text(form);
    }
    ModelRow {
        cells,
        dates,
        extra_fields,
    }
}

/// A certification's identity within its educator (rules §1.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Number(String),
    TypeAndIssue(String, Option<Date>),
}

/// The licence columns every row of a certification must agree on, compared as the
/// import compares them.
type Agreement = (
    Option<String>,
    String,
    String,
    Option<Date>,
    Option<Date>,
    NameKey,
    NameKey,
);

/// What the oracle predicts.
#[derive(Debug)]
struct Prediction {
    result: Result<(), FileRejection>,
    data_rows: u64,
    invalid_lines: Vec<u64>,
    educators: Vec<Educator>,
    not_kept: u64,
}

/// Rules §1.3–§1.5 over the model, written independently of the parser.
fn predict(generated: &Generated) -> Prediction {
    let column = |row: &ModelRow, c: usize| -> Option<String> {
        generated.positions[c].map(|_| row.cells[c].trim().to_owned())
    };
    let date = |row: &ModelRow, c: usize| -> DateCell {
        match generated.positions[c] {
            Some(_) => row.dates[c],
            None => DateCell::Blank,
        }
    };
    let data_rows = generated.rows.len() as u64;
    let mut invalid_lines = Vec::new();
    let mut educators: Vec<Educator> = Vec::new();
    let mut decided: HashMap<EducatorId, Option<usize>> = HashMap::new();
    let mut first_rows: HashMap<(EducatorId, Key), (Agreement, usize)> = HashMap::new();
    let mut endorsement_index: HashMap<(EducatorId, Key, String, Option<String>), usize> =
        HashMap::new();
    let mut not_kept = 0;

    for (row, line) in &generated.rows {
        let field_count = generated.header_len as i64 + i64::from(row.extra_fields);
        let nonblank = |c| column(row, c).is_some_and(|v| !v.is_empty());
        let dates_ok = [
            LICENSE_ISSUE,
            LICENSE_EXPIRATION,
            ENDORSEMENT_ISSUE,
            ENDORSEMENT_EXPIRATION,
        ]
        .iter()
        .all(|&c| !matches!(date(row, c), DateCell::Invalid(_)));
        let well_formed = field_count == generated.header_len as i64
            && [
                EDUCATOR_ID,
                LAST_NAME,
                FIRST_NAME,
                LICENSE_TYPE,
                LICENSE_STATUS,
            ]
            .iter()
            .all(|&c| nonblank(c))
            && dates_ok;
        if !well_formed {
            invalid_lines.push(*line);
            continue;
        }
        let as_date = |c| match date(row, c) {
            DateCell::Valid(d) => Some(d),
            _ => None,
        };
        let id = EducatorId::parse(&column(row, EDUCATOR_ID).unwrap_or_default())
            .expect("a non-blank ID");
        let last = column(row, LAST_NAME).unwrap_or_default();
        let first = column(row, FIRST_NAME).unwrap_or_default();
        let number = column(row, LICENSE_NUMBER).filter(|n| !n.is_empty());
        let license_type = column(row, LICENSE_TYPE).unwrap_or_default();
        let status = column(row, LICENSE_STATUS).unwrap_or_default();
        let key = match &number {
            Some(n) => Key::Number(n.clone()),
            None => Key::TypeAndIssue(license_type.clone(), as_date(LICENSE_ISSUE)),
        };
        let agreement: Agreement = (
            number.clone(),
            license_type.clone(),
            status.to_uppercase(),
            as_date(LICENSE_ISSUE),
            as_date(LICENSE_EXPIRATION),
            NameKey::new(&last),
            NameKey::new(&first),
        );

        // `keep` decides on an educator's first well-formed row.
        let slot = *decided.entry(id.clone()).or_insert_with(|| {
            if generated.keep.keeps(&id) {
                educators.push(Educator {
                    id: id.clone(),
                    raw_id: column(row, EDUCATOR_ID).unwrap_or_default(),
                    name: PersonName::new(&last, &first),
                    certifications: Vec::new(),
                });
                Some(educators.len() - 1)
            } else {
                not_kept += 1;
                None
            }
        });

        let certification = match first_rows.get(&(id.clone(), key.clone())) {
            Some((first_agreement, index)) => {
                if *first_agreement != agreement {
                    invalid_lines.push(*line);
                    continue;
                }
                *index
            }
            None => {
                let index = match slot {
                    Some(e) => {
                        educators[e].certifications.push(Certification {
                            license_number: number.clone(),
                            license_type: license_type.clone(),
                            status: status.clone(),
                            issue_date: as_date(LICENSE_ISSUE),
                            expiration_date: as_date(LICENSE_EXPIRATION),
                            endorsements: Vec::new(),
                        });
                        educators[e].certifications.len() - 1
                    }
                    None => 0,
                };
                first_rows.insert((id.clone(), key.clone()), (agreement, index));
                index
            }
        };
        let (Some(e), Some(code)) = (
            slot,
            column(row, ENDORSEMENT_CODE).filter(|c| !c.is_empty()),
        ) else {
            continue;
        };
        let level = column(row, ENDORSEMENT_LEVEL).filter(|l| !l.is_empty());
        let limits = column(row, LIMITS).unwrap_or_default();
        let endorsements = &mut educators[e].certifications[certification].endorsements;
        let index = *endorsement_index
            .entry((id.clone(), key.clone(), code.clone(), level.clone()))
            .or_insert_with(|| {
                endorsements.push(Endorsement {
                    code: code.clone(),
                    description: column(row, ENDORSEMENT_DESCRIPTION).filter(|d| !d.is_empty()),
                    grade_level: level.clone(),
                    issue_date: as_date(ENDORSEMENT_ISSUE),
                    expiration_date: as_date(ENDORSEMENT_EXPIRATION),
                    limits: Vec::new(),
                });
                endorsements.len() - 1
            });
        for limit in limits.split(';').map(str::trim).filter(|l| !l.is_empty()) {
            let known = &mut endorsements[index].limits;
            if !known.iter().any(|k| k == limit) {
                known.push(limit.to_owned());
            }
        }
    }

    let invalid = invalid_lines.len() as u64;
    let settings = &generated.settings;
    let result = if !generated.missing_required.is_empty() {
        Err(FileRejection::MissingColumns(
            generated.missing_required.clone(),
        ))
    } else if data_rows == 0 {
        Err(FileRejection::NoDataRows)
    } else if invalid > settings.max_invalid_rows
        || invalid as f64 / data_rows as f64 > settings.max_invalid_fraction
    {
        Err(FileRejection::TooManyInvalidRows { invalid, data_rows })
    } else {
        Ok(())
    };
    Prediction {
        result,
        data_rows,
        invalid_lines,
        educators,
        not_kept,
    }
}

/// How many generated files reached each kind of outcome: the generator is only as
/// good as the cases it reaches.
#[derive(Debug, Default)]
struct Coverage {
    accepted_clean: AtomicU64,
    accepted_with_invalid_rows: AtomicU64,
    accepted_with_kept_educators: AtomicU64,
    too_many_invalid_rows: AtomicU64,
    missing_columns: AtomicU64,
    no_data_rows: AtomicU64,
    windows_1252: AtomicU64,
    multi_line_records: AtomicU64,
}

impl Coverage {
    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Asserts every kind of outcome was reached (with enough cases to expect it).
    fn assert_reached_everything(&self) {
        eprintln!("{self:?}");
        if cases() < 200 {
            return;
        }
        for (what, counter) in [
            ("accepted without invalid rows", &self.accepted_clean),
            (
                "accepted with invalid rows",
                &self.accepted_with_invalid_rows,
            ),
            (
                "accepted with kept educators",
                &self.accepted_with_kept_educators,
            ),
            ("too many invalid rows", &self.too_many_invalid_rows),
            ("missing columns", &self.missing_columns),
            ("no data rows", &self.no_data_rows),
            ("Windows-1252", &self.windows_1252),
            ("multi-line records", &self.multi_line_records),
        ] {
            assert!(
                counter.load(Ordering::Relaxed) > 0,
                "no generated file was {what}"
            );
        }
    }
}

fn check_against_oracle(generated: &Generated, coverage: &Coverage) -> Result<(), TestCaseError> {
    let outcome = check_invariants(&generated.bytes, &generated.settings, generated.keep)?;
    let predicted = predict(generated);
    match &outcome.result {
        Ok(parsed) if parsed.invalid_rows.is_empty() => Coverage::count(&coverage.accepted_clean),
        Ok(_) => Coverage::count(&coverage.accepted_with_invalid_rows),
        Err(FileRejection::TooManyInvalidRows { .. }) => {
            Coverage::count(&coverage.too_many_invalid_rows)
        }
        Err(FileRejection::MissingColumns(_)) => Coverage::count(&coverage.missing_columns),
        Err(FileRejection::NoDataRows) => Coverage::count(&coverage.no_data_rows),
        Err(_) => {}
    }
    if outcome
        .result
        .as_ref()
        .is_ok_and(|p| !p.educators.is_empty())
    {
        Coverage::count(&coverage.accepted_with_kept_educators);
    }
    if outcome
        .result
        .as_ref()
        .is_ok_and(|p| p.decoded_as_windows_1252)
    {
        Coverage::count(&coverage.windows_1252);
    }
    let lines: Vec<u64> = generated.rows.iter().map(|(_, line)| *line).collect();
    if lines.windows(2).any(|pair| pair[1] > pair[0] + 1) {
        Coverage::count(&coverage.multi_line_records);
    }
    match (&outcome.result, &predicted.result) {
        (Ok(parsed), Ok(())) => {
            prop_assert_eq!(parsed.data_rows, predicted.data_rows, "data rows");
            let lines: Vec<u64> = parsed.invalid_rows.iter().map(|r| r.line).collect();
            prop_assert_eq!(lines, predicted.invalid_lines, "invalid rows' lines");
            prop_assert_eq!(
                parsed.educators_not_kept,
                predicted.not_kept,
                "educators not kept"
            );
            prop_assert_eq!(&parsed.educators, &predicted.educators, "kept educators");
        }
        (Err(got), Err(expected)) => prop_assert_eq!(got, expected),
        (got, expected) => prop_assert!(
            false,
            "parser: {:?}\noracle: {:?} ({} data rows, invalid on lines {:?})",
            got.as_ref().map(|p| (p.data_rows, p.invalid_rows.len())),
            expected,
            predicted.data_rows,
            predicted.invalid_lines
        ),
    }
    Ok(())
}

#[test]
fn well_formed_files_parse_as_the_oracle_predicts() {
    let coverage = Coverage::default();
    fuzz(
        "well_formed",
        file_choice().prop_map(|choice| generate(&choice)),
        |generated| check_against_oracle(generated, &coverage),
    );
    coverage.assert_reached_everything();
}

// ---------------------------------------------------------------------------
// (c) Mutated files.
// ---------------------------------------------------------------------------

/// A byte-level edit of a file: at a relative position, delete, insert or overwrite.
#[derive(Debug, Clone)]
struct Edit {
    at: u16,
    kind: u8,
    byte: u8,
    length: u8,
}

fn mutated_files() -> impl Strategy<Value = Vec<u8>> {
    let edit =
        (any::<u16>(), 0_u8..5, any::<u8>(), 1_u8..16).prop_map(|(at, kind, byte, length)| Edit {
            at,
            kind,
            byte,
            length,
        });
    (file_choice(), prop::collection::vec(edit, 1..12)).prop_map(|(choice, edits)| {
        let mut bytes = generate(&choice).bytes;
        for edit in edits {
            let at = if bytes.is_empty() {
                0
            } else {
                usize::from(edit.at) * bytes.len() / 65_536
            };
            let length = usize::from(edit.length);
            let significant = [b'"', b',', b'\n', b'\r', 0xEF, 0xC3, 0xE9, b' '];
            match edit.kind {
                0 => {
                    let end = (at + length).min(bytes.len());
                    bytes.drain(at..end);
                }
                1 => bytes.insert(at, edit.byte),
                2 => bytes.insert(at, significant[usize::from(edit.byte) % significant.len()]),
                3 if at < bytes.len() => {
                    bytes[at] = significant[usize::from(edit.byte) % significant.len()]
                }
                _ => {
                    // Duplicate a slice: repeated rows, repeated quotes.
                    let end = (at + length * 4).min(bytes.len());
                    let slice = bytes[at..end].to_vec();
                    bytes.splice(at..at, slice);
                }
            }
        }
        bytes
    })
}

#[test]
fn mutated_files_keep_every_invariant() {
    fuzz("mutated", mutated_files(), |bytes| {
        check_invariants(bytes, &lenient(), KeepMode::EvenIds)?;
        check_invariants(bytes, &ParseSettings::default(), KeepMode::All)?;
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Large inputs: memory stays linear, time stays bounded.
// ---------------------------------------------------------------------------

#[test]
fn huge_fields_and_long_files_stay_within_the_memory_bound() {
    let row = "1001,Smith,Ann,L-1,Provisional,ACT,07/01/2020,06/30/2027,2-05,Elementary,K-6,,,";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // One quoted field of 4 MiB (the CSV reader must hold one record).
        ("a 4 MiB quoted field", {
            let mut bytes = format!("{HEADER}\n{row}\n1002,Jones,Bo,L-2,Provisional,ACT,,,2-05,\"")
                .into_bytes();
            bytes.extend(std::iter::repeat_n(b'x', 4 << 20));
            bytes.extend_from_slice(b"\",K-6,,,\n");
            bytes
        }),
        // A quote opened and never closed, 2 MiB before the end.
        ("an unterminated quote", {
            let mut bytes = format!("{HEADER}\n{row}\n\"").into_bytes();
            bytes.extend(std::iter::repeat_n(b'y', 2 << 20));
            bytes
        }),
        // 40 000 distinct educators, none kept: the parser keeps fingerprints only.
        ("40 000 educators not kept", {
            let mut text = format!("{HEADER}\n");
            for i in 0..40_000 {
                text.push_str(&format!(
                    "{},Name{i},First,L-{i},Provisional,ACT,07/01/2020,06/30/2027,2-05,Elementary,K-6,,,\n",
                    10_000 + i
                ));
            }
            text.into_bytes()
        }),
        // 100 000 lines of bare commas: blank lines, no records kept.
        ("100 000 blank lines", {
            let mut text = format!("{HEADER}\n{row}\n");
            text.push_str(&",,,,\n".repeat(100_000));
            text.into_bytes()
        }),
    ];
    for (what, bytes) in cases {
        let started = std::time::Instant::now();
        let outcome = run_parse(Cursor::new(&bytes), &lenient(), KeepMode::Nobody);
        eprintln!(
            "{what}: {} bytes, peak heap {} bytes, {:?}: {:?}",
            bytes.len(),
            outcome.peak_heap,
            started.elapsed(),
            outcome.result.as_ref().map(|p| p.data_rows)
        );
        assert!(
            outcome.peak_heap <= heap_bound(bytes.len()),
            "{what}: {} bytes of heap for {} bytes of input",
            outcome.peak_heap,
            bytes.len()
        );
    }
}

/// Found by this fuzz target (arbitrary bytes): a file starting with two UTF-8 BOMs
/// read three bytes at a time looked empty, while read at once its header was read.
#[test]
fn a_second_bom_is_read_the_same_whatever_the_read_size() {
    let text = format!(
        "\u{FEFF}\u{FEFF}{HEADER}\r\n1001,Smith,Ann,L-1,Provisional,ACT,07/01/2020,06/30/2027,2-05,,,,,\r\n"
    );
    for step in [1, 2, 3, 4, 5, 64 * 1024] {
        let outcome = run_parse(
            Trickle {
                inner: Cursor::new(text.clone().into_bytes()),
                step,
            },
            &lenient(),
            KeepMode::All,
        );
        let parsed = outcome
            .result
            .unwrap_or_else(|e| panic!("{step} bytes at a time: {e:?}"));
        assert_eq!(parsed.data_rows, 1, "{step} bytes at a time");
        assert_eq!(parsed.educators.len(), 1, "{step} bytes at a time");
    }
}

/// Found by this fuzz target's memory bound: the parser remembered the start of every
/// blank line after the last data row (16 bytes per 2-byte `" \n"` line), so a file of
/// blank lines held eight times its size; now they are forgotten as they are passed.
#[test]
fn blank_lines_take_constant_memory() {
    let row = "1001,Smith,Ann,L-1,Provisional,ACT,07/01/2020,06/30/2027,2-05,Elementary,K-6,,,";
    let peak = |blank_lines: usize, before_header: bool| {
        let blanks = " ,\n".repeat(blank_lines);
        let text = if before_header {
            format!("{blanks}{HEADER}\n{row}\n")
        } else {
            format!("{HEADER}\n{row}\n{blanks}{row}\n")
        };
        let outcome = run_parse(Cursor::new(text.as_bytes()), &lenient(), KeepMode::All);
        let parsed = outcome.result.expect("parsed");
        assert_eq!(parsed.data_rows, if before_header { 1 } else { 2 });
        outcome.peak_heap
    };
    for before_header in [false, true] {
        let (few, many) = (peak(1_000, before_header), peak(200_000, before_header));
        eprintln!(
            "blank lines (before the header: {before_header}): 1 000 → {few} bytes, 200 000 → {many} bytes of heap"
        );
        assert!(
            many <= few + 64 * 1024,
            "200 000 blank lines held {many} bytes of heap, 1 000 held {few}"
        );
    }
}

// ---------------------------------------------------------------------------
// Regressions: every file under tests/fuzz-regressions/ replayed.
// ---------------------------------------------------------------------------

fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions")
}

#[test]
fn fuzz_regressions_replay_cleanly() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(regressions_dir())
        .expect("tests/fuzz-regressions exists")
        .map(|entry| entry.expect("read the folder").path())
        .filter(|path| path.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no regression inputs found");
    let mut failures = Vec::new();
    for path in &files {
        let bytes = std::fs::read(path).expect("read a regression input");
        for (settings, keep) in [
            (lenient(), KeepMode::EvenIds),
            (ParseSettings::default(), KeepMode::All),
            (lenient(), KeepMode::Nobody),
        ] {
            let checked = std::panic::catch_unwind(|| {
                let outcome = check_invariants(&bytes, &settings, keep)?;
                // Every read size, not only the one the fuzz loop picks per input.
                for step in 1..=8 {
                    let trickled = run_parse(
                        Trickle {
                            inner: Cursor::new(bytes.clone()),
                            step,
                        },
                        &settings,
                        keep,
                    );
                    prop_assert_eq!(
                        rendered(&outcome.result),
                        rendered(&trickled.result),
                        "{} bytes at a time",
                        step
                    );
                }
                Ok::<_, TestCaseError>(())
            });
            match checked {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => failures.push(format!("{}: {error}", path.display())),
                Err(_) => failures.push(format!("{}: the parser panicked", path.display())),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{} regression inputs replayed", files.len());
}
