//! The ALiS file parser (rules §1.3–§1.5): reads the statewide licence file and
//! returns the certification records of the educators the caller keeps, or refuses
//! the whole file.
//!
//! The parser makes two passes over its input. The first reads raw bytes to learn
//! whether the whole stream is UTF-8 (else every field is decoded as Windows-1252)
//! and that no quoted field is left open at the end. The second seeks back to the
//! start and reads one CSV record at a time; only the records of kept educators, and
//! a small fingerprint per certification of everyone else, stay in memory.
//!
//! [`parse`] runs the second pass on two threads (`alis_file/pipeline.rs`): a reader thread
//! splits the records and follows the quoting (so the first pass only learns the
//! encoding), while the calling thread checks the rows in file order. A file that
//! path cannot decide exactly as `read_sequentially` does both passes on one
//! thread, as written here.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use foldhash::{HashMap, HashMapExt};
use std::io::{self, Read, Seek, SeekFrom};

use csv::ByteRecord;

mod pipeline;
use jiff::civil::Date;

use super::records::{
    Certification, Educator, EducatorId, Endorsement, InvalidRow, NameKey, ParsedFile, PersonName,
};

/// Limits on invalid rows beyond which the whole file is refused (rules §1.5).
#[derive(Debug, Clone)]
pub struct ParseSettings {
    /// A file with more invalid rows than this is refused. Default 100.
    pub max_invalid_rows: u64,
    /// A file whose invalid rows are more than this share of its data rows is
    /// refused. Default 0.01 (1%).
    pub max_invalid_fraction: f64,
}

impl Default for ParseSettings {
    fn default() -> Self {
        Self {
            max_invalid_rows: 100,
            max_invalid_fraction: 0.01,
        }
    }
}

/// How much of an educator [`parse`] keeps, as its caller decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Every certification and endorsement: the caller may import them.
    Records,
    /// The educator's ID and name, without their records: the caller only needs to
    /// know the educator is in the file (a name-only match is never imported, only
    /// reported), and a statewide file's common names would otherwise keep the
    /// records of thousands of educators employed elsewhere. Only the first educator
    /// of each name is kept so (a name-only match is reported with the first educator
    /// of that name in the file): later ones are checked, and counted as kept, but not
    /// held.
    NameOnly,
    /// Nothing: the educator is only counted.
    Nothing,
}

impl From<bool> for Keep {
    fn from(keep: bool) -> Self {
        if keep { Keep::Records } else { Keep::Nothing }
    }
}

/// Why a whole file is refused; when it is, nothing changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileRejection {
    /// Nothing but blank lines, so not even a header.
    #[error("the ALiS file is empty: it has no header line")]
    Empty,
    /// Required columns absent from the header, by canonical name.
    #[error("the ALiS file lacks required columns: {}", .0.join(", "))]
    MissingColumns(Vec<&'static str>),
    /// A header and nothing after it but blank lines.
    #[error("the ALiS file has a header line but no data rows")]
    NoDataRows,
    /// More invalid rows than the settings allow.
    #[error(
        "{invalid} of the {data_rows} data rows in the ALiS file are invalid, more than \
         allowed (the maximum number and the maximum share of invalid rows are both settings)"
    )]
    TooManyInvalidRows {
        /// Invalid rows in the whole file.
        invalid: u64,
        /// Non-blank rows after the header.
        data_rows: u64,
    },
    /// The bytes could not be read, or are not CSV.
    #[error("the ALiS file could not be read: {0}")]
    Unreadable(String),
}

/// Parses an ALiS file (rules §1.3–§1.5).
///
/// `keep` is asked once per distinct educator (by normalised Educator ID, on their
/// first valid row) whether to keep their records ([`Keep`]; `true` and `false` mean
/// all or nothing); the caller keeps only educators who might be its employees, so
/// memory grows with the district rather than with the statewide file. Educators not
/// kept still count towards `data_rows`, the invalid rows and `educators_not_kept`,
/// and their rows are checked as strictly. An educator kept by name only is in
/// `educators` with no certifications when no educator before them has their name
/// (see [`Keep::NameOnly`]), and their rows are checked like those of educators not
/// kept.
///
/// Pass 2 runs on two threads: one splits the records, this one checks the rows
/// (`alis_file/pipeline.rs`).
///
/// Memory: besides the kept educators' records, the parser holds every distinct
/// Educator ID and, for each certification of an educator not kept, a fingerprint
/// (a 64-bit hash of its licence columns, 16 bits of each column's own hash and its
/// first line, under a 64-bit hash of its key: 40 bytes) so that a later row
/// disagreeing with it is still found. That is a few
/// megabytes for the statewide file, against the tens of megabytes the full records
/// would take. The price is that two different certifications whose keys hash alike
/// (odds about n²/2⁶⁵, some 10⁻¹⁰ for 100 000 certifications) would be compared with
/// each other, and only for educators who are not imported anyway.
#[tracing::instrument(
    skip_all,
    fields(
        data_rows,
        invalid_rows,
        educators_kept,
        educators_not_kept,
        windows_1252
    ),
    err
)]
pub fn parse<R: Read + Seek + Send, K: Into<Keep>>(
    mut input: R,
    settings: &ParseSettings,
    mut keep: impl FnMut(&EducatorId, &PersonName) -> K,
) -> Result<ParsedFile, FileRejection> {
    let origin = input.stream_position().map_err(unreadable)?;
    let layout = check_encoding(&mut input, CHECK_CHUNK_BYTES)?;
    input
        .seek(SeekFrom::Start(origin + body_start(&layout)))
        .map_err(unreadable)?;
    let (collector, encoding) = match pipeline::parse(&mut input, settings, &mut keep, &layout) {
        pipeline::Outcome::Read(read) => (*read)?,
        pipeline::Outcome::ReadAgain => {
            input.seek(SeekFrom::Start(origin)).map_err(unreadable)?;
            read_sequentially(input, settings, &mut keep)?
        }
    };
    let span = tracing::Span::current();
    span.record("data_rows", collector.data_rows as i64);
    span.record("invalid_rows", collector.invalid_count as i64);
    span.record("educators_kept", collector.kept.len() as i64);
    span.record("educators_not_kept", collector.educators_not_kept as i64);
    span.record("windows_1252", encoding == TextEncoding::Windows1252);
    collector.finish(settings, encoding)
}

/// The two passes one after the other, on this thread: what [`pipeline`] falls back
/// to, and what it must agree with.
fn read_sequentially<R, F, K>(
    mut input: R,
    settings: &ParseSettings,
    keep: F,
) -> Result<(Collector<F>, TextEncoding), FileRejection>
where
    R: Read + Seek,
    F: FnMut(&EducatorId, &PersonName) -> K,
    K: Into<Keep>,
{
    let origin = input.stream_position().map_err(unreadable)?;
    let layout = check_layout(&mut input, CHECK_CHUNK_BYTES)?;
    input
        .seek(SeekFrom::Start(origin + body_start(&layout)))
        .map_err(unreadable)?;
    let encoding = layout.encoding();

    // `csv::Reader` buffers its input itself (a `BufReader` inside), so records
    // are read in chunks and never the whole file at once.
    let mut reader = records_of(LineTracker::new(input));
    let mut record = ByteRecord::new();
    let header = loop {
        if !next_record(&mut reader, &mut record)? {
            return Err(FileRejection::Empty);
        }
        if !is_blank(&record, encoding) {
            break Header::from_record(&record, encoding)?;
        }
        forget_lines_before(&mut reader, &record);
    };

    let mut collector = Collector::new(settings, keep);
    while next_record(&mut reader, &mut record)? {
        if is_blank(&record, encoding) {
            forget_lines_before(&mut reader, &record);
            continue;
        }
        let line = record_line(&mut reader, &record);
        collector.add_record(line, &header, &record, encoding);
    }
    Ok((collector, encoding))
}

/// The CSV reader of pass 2.
fn records_of<R: Read>(input: LineTracker<R>) -> csv::Reader<LineTracker<R>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input)
}

// ---------------------------------------------------------------------------
// Pass 1: encoding and quoting over raw bytes.
// ---------------------------------------------------------------------------

const UTF8_BOM: &[u8; 3] = b"\xEF\xBB\xBF";
const CHECK_CHUNK_BYTES: usize = 64 * 1024;

/// What the first pass learns about the whole input.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    is_utf8: bool,
    has_bom: bool,
}

impl Layout {
    /// How every field is decoded: UTF-8 when the whole input is UTF-8, else
    /// Windows-1252 (rules §1.3).
    fn encoding(&self) -> TextEncoding {
        if self.is_utf8 {
            TextEncoding::Utf8
        } else {
            TextEncoding::Windows1252
        }
    }
}

/// Where the records start: after the file's own BOM, if it has one.
fn body_start(layout: &Layout) -> u64 {
    if layout.has_bom {
        UTF8_BOM.len() as u64
    } else {
        0
    }
}

/// Reads the whole input once, `chunk_size` bytes at a time.
///
/// The CSV reader itself accepts a quoted field left open at the end of the file (it
/// takes the rest of the file as that field), which would silently swallow rows; so
/// this pass follows the quoting and refuses such a file.
fn check_layout<R: Read>(input: &mut R, chunk_size: usize) -> Result<Layout, FileRejection> {
    let mut quotes = QuoteCheck::new();
    let layout = read_layout(input, chunk_size, Some(&mut quotes))?;
    quotes.verdict()?;
    Ok(layout)
}

/// [`check_layout`] without following the quoting: the encoding alone, for the
/// two-thread parse ([`pipeline`]), whose reader thread follows the quoting itself.
fn check_encoding<R: Read>(input: &mut R, chunk_size: usize) -> Result<Layout, FileRejection> {
    read_layout(input, chunk_size, None)
}

fn read_layout<R: Read>(
    input: &mut R,
    chunk_size: usize,
    mut quotes: Option<&mut QuoteCheck>,
) -> Result<Layout, FileRejection> {
    let mut utf8 = Utf8Check::default();
    let mut head = [0_u8; 3];
    let head_len = read_up_to(input, &mut head)?;
    let head = head.get(..head_len).unwrap_or_default();
    let has_bom = head == UTF8_BOM;
    utf8.feed(head);
    if let Some(quotes) = quotes.as_deref_mut()
        && !has_bom
    {
        quotes.feed(head);
    }

    let mut buffer = vec![0_u8; chunk_size.max(1)];
    loop {
        let read = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(unreadable(error)),
        };
        let chunk = buffer.get(..read).ok_or_else(too_many_bytes)?;
        utf8.feed(chunk);
        if let Some(quotes) = quotes.as_deref_mut() {
            quotes.feed(chunk);
        }
    }
    Ok(Layout {
        is_utf8: utf8.finish(),
        has_bom,
    })
}

/// Fills `buffer` unless the input ends first; returns the bytes read.
fn read_up_to<R: Read>(input: &mut R, buffer: &mut [u8]) -> Result<usize, FileRejection> {
    let mut filled = 0;
    while let Some(rest) = buffer.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        match input.read(rest) {
            Ok(0) => break,
            Ok(read) if read <= rest.len() => filled += read,
            Ok(_) => return Err(too_many_bytes()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(unreadable(error)),
        }
    }
    Ok(filled)
}

/// Streaming UTF-8 validation; a sequence split across chunks is carried over.
#[derive(Debug, Default)]
struct Utf8Check {
    invalid: bool,
    /// The start of a multi-byte sequence that the last chunk cut off.
    pending: [u8; 4],
    pending_len: usize,
}

impl Utf8Check {
    fn feed(&mut self, mut chunk: &[u8]) {
        if self.invalid {
            return;
        }
        // Complete a sequence carried over from the previous chunk, byte by byte.
        while self.pending_len > 0 {
            let Some((&byte, rest)) = chunk.split_first() else {
                return;
            };
            chunk = rest;
            let Some(slot) = self.pending.get_mut(self.pending_len) else {
                self.invalid = true;
                return;
            };
            *slot = byte;
            self.pending_len += 1;
            match std::str::from_utf8(self.pending.get(..self.pending_len).unwrap_or_default()) {
                Ok(_) => self.pending_len = 0,
                Err(error) if error.error_len().is_some() => {
                    self.invalid = true;
                    return;
                }
                Err(_) => {}
            }
        }
        if let Err(error) = std::str::from_utf8(chunk) {
            let tail = chunk.get(error.valid_up_to()..).unwrap_or_default();
            match (error.error_len(), self.pending.get_mut(..tail.len())) {
                (None, Some(pending)) => {
                    pending.copy_from_slice(tail);
                    self.pending_len = tail.len();
                }
                _ => self.invalid = true,
            }
        }
    }

    /// Whether everything fed was UTF-8, with no sequence cut off at the end.
    fn finish(&self) -> bool {
        !self.invalid && self.pending_len == 0
    }
}

/// Follows RFC 4180 quoting exactly as the `csv` reader does (a quote opens a
/// quoted field only at the start of a field; `""` inside one is a quote; CR and LF
/// both end records), to tell whether the input ends inside a quoted field.
#[derive(Debug)]
struct QuoteCheck {
    state: QuoteState,
    line: u64,
    opened_on: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    FieldStart,
    InField,
    InQuotes,
    QuoteInQuotes,
}

impl QuoteCheck {
    fn new() -> Self {
        Self {
            state: QuoteState::FieldStart,
            line: 1,
            opened_on: 1,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        use QuoteState::*;
        let mut rest = bytes;
        while let Some((&byte, after)) = rest.split_first() {
            self.state = match (self.state, byte) {
                (FieldStart, b'"') => {
                    self.opened_on = self.line;
                    InQuotes
                }
                (InQuotes, b'"') => QuoteInQuotes,
                (QuoteInQuotes, b'"') => InQuotes,
                (InQuotes, _) => InQuotes,
                (_, b',' | b'\r' | b'\n') => FieldStart,
                (_, _) => InField,
            };
            if byte == b'\n' {
                self.line += 1;
            }
            rest = after;
            // Every byte of the file comes through here: skip the runs that cannot
            // change the state with a tight search instead of a step per byte. Inside
            // a field only a delimiter or line end matters; inside quotes only a
            // quote (the line ends passed over are still counted).
            let run = match self.state {
                // (Fields are short: a plain search beats `memchr3`'s set-up here.)
                InField => rest
                    .iter()
                    .position(|&b| matches!(b, b',' | b'\r' | b'\n'))
                    .unwrap_or(rest.len()),
                InQuotes => {
                    let run = memchr::memchr(b'"', rest).unwrap_or(rest.len());
                    let skipped = rest.get(..run).unwrap_or_default();
                    self.line += memchr::memchr_iter(b'\n', skipped).count() as u64;
                    run
                }
                FieldStart | QuoteInQuotes => 0,
            };
            rest = rest.get(run..).unwrap_or_default();
        }
    }

    /// Refuses the file when it ends inside a quoted field.
    fn verdict(&self) -> Result<(), FileRejection> {
        if self.state == QuoteState::InQuotes {
            return Err(FileRejection::Unreadable(format!(
                "a quoted field that starts on line {} is never closed",
                self.opened_on
            )));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Pass 2: records, physical lines, decoding.
// ---------------------------------------------------------------------------

/// Input adapter that remembers where each non-blank physical line starts.
///
/// The `csv` reader's own positions point just past the previous record, so after
/// blank lines or a CRLF ending they name the wrong line; the report must name the
/// line a record actually starts on (rules §1.5). A record starts at the first byte
/// after its predecessor that is not CR or LF, which is always such a line start.
/// Entries are dropped once a record past them is read, so this holds at most one
/// buffer's and one record's worth of lines.
struct LineTracker<R> {
    inner: R,
    offset: u64,
    line: u64,
    after_line_end: bool,
    /// (byte offset, line) of line starts not yet passed.
    line_starts: VecDeque<(u64, u64)>,
}

impl<R> LineTracker<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            offset: 0,
            line: 1,
            after_line_end: true,
            line_starts: VecDeque::new(),
        }
    }

    /// The line of the first non-blank line start at or after `offset`.
    fn line_from(&mut self, offset: u64) -> Option<u64> {
        while self
            .line_starts
            .front()
            .is_some_and(|&(start, _)| start < offset)
        {
            self.line_starts.pop_front();
        }
        self.line_starts.front().map(|&(_, line)| line)
    }
}

impl<R: Read> LineTracker<R> {
    /// The first read returns at least four bytes unless the input ends first. The
    /// `csv` reader strips a UTF-8 BOM at the start of its input (here: a second BOM,
    /// the file's own being skipped already) only when its first read holds all of
    /// it, and takes a first read of nothing but the BOM for the end of the input: a
    /// reader returning a few bytes at a time made such a file look empty.
    fn read_start(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let want = buffer.len().min(UTF8_BOM.len() + 1);
        let mut filled = 0;
        while let Some(rest) = buffer.get_mut(filled..).filter(|_| filled < want) {
            match self.inner.read(rest) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(filled)
    }
}

impl<R: Read> Read for LineTracker<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = if self.offset == 0 {
            self.read_start(buffer)?
        } else {
            self.inner.read(buffer)?
        };
        let Some(bytes) = buffer.get(..read) else {
            return Err(io::Error::other(
                "the input returned more bytes than asked for",
            ));
        };
        // Alternates between a run of line-end bytes (CR, LF) and a run of others;
        // a line starts where a run of others does. Runs are found with tight
        // searches rather than a state update per byte: this adapter sees every byte
        // of the file.
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.after_line_end {
                let run = rest
                    .iter()
                    .position(|&b| b != b'\n' && b != b'\r')
                    .unwrap_or(rest.len());
                let (ends, after) = rest.split_at(run);
                self.line += memchr::memchr_iter(b'\n', ends).count() as u64;
                self.offset += run as u64;
                rest = after;
                if !rest.is_empty() {
                    self.line_starts.push_back((self.offset, self.line));
                    self.after_line_end = false;
                }
            } else {
                let run = memchr::memchr2(b'\n', b'\r', rest).unwrap_or(rest.len());
                self.offset += run as u64;
                rest = rest.get(run..).unwrap_or_default();
                self.after_line_end = !rest.is_empty();
            }
        }
        Ok(read)
    }
}

fn next_record<R: Read>(
    reader: &mut csv::Reader<LineTracker<R>>,
    record: &mut ByteRecord,
) -> Result<bool, FileRejection> {
    reader
        .read_byte_record(record)
        .map_err(|error| FileRejection::Unreadable(error.to_string()))
}

/// The 1-based physical line `record` (just read) starts on.
fn record_line<R: Read>(reader: &mut csv::Reader<LineTracker<R>>, record: &ByteRecord) -> u64 {
    let position = record.position();
    let from = position.map_or(0, csv::Position::byte);
    let fallback = position.map_or(0, csv::Position::line);
    reader.get_mut().line_from(from).unwrap_or(fallback)
}

/// Drops the line starts before `record`, a blank one that is never reported: else a
/// run of blank lines would be remembered line by line until the next data row (16
/// bytes for every two-byte `" \n"`).
fn forget_lines_before<R: Read>(reader: &mut csv::Reader<LineTracker<R>>, record: &ByteRecord) {
    let _ = record_line(reader, record);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextEncoding {
    Utf8,
    Windows1252,
}

impl TextEncoding {
    /// Decodes one field. The CSV structure is ASCII in both encodings, so a field
    /// of a valid UTF-8 file is itself valid UTF-8.
    fn decode(self, bytes: &[u8]) -> Cow<'_, str> {
        match self {
            // `from_utf8` first: on valid input (always, after pass 1) it is several
            // times cheaper than the lossy decoder, which walks the bytes in chunks.
            Self::Utf8 => match std::str::from_utf8(bytes) {
                Ok(text) => Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(bytes),
            },
            Self::Windows1252 => {
                encoding_rs::WINDOWS_1252
                    .decode_without_bom_handling(bytes)
                    .0
            }
        }
    }
}

/// A record whose fields are all empty or white space is a blank line: it carries
/// no data. (That covers lines of spaces, `""` and lines of bare commas, as a
/// spreadsheet export leaves them.)
fn is_blank(record: &ByteRecord, encoding: TextEncoding) -> bool {
    record
        .iter()
        .all(|field| encoding.decode(field).trim().is_empty())
}

fn trimmed(value: Cow<'_, str>) -> Cow<'_, str> {
    match value {
        Cow::Borrowed(text) => Cow::Borrowed(text.trim()),
        Cow::Owned(text) if text.trim().len() == text.len() => Cow::Owned(text),
        Cow::Owned(text) => Cow::Owned(text.trim().to_owned()),
    }
}

fn unreadable(error: io::Error) -> FileRejection {
    FileRejection::Unreadable(error.to_string())
}

fn too_many_bytes() -> FileRejection {
    FileRejection::Unreadable("the input returned more bytes than asked for".to_owned())
}

// ---------------------------------------------------------------------------
// Columns and the header.
// ---------------------------------------------------------------------------

/// The columns of rules §1.4, in `Column::ALL` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    EducatorId,
    LastName,
    FirstName,
    LicenseNumber,
    LicenseType,
    LicenseStatus,
    LicenseIssueDate,
    LicenseExpirationDate,
    EndorsementCode,
    EndorsementDescription,
    EndorsementLevel,
    EndorsementIssueDate,
    EndorsementExpirationDate,
    Limits,
}

impl Column {
    const ALL: [Column; 14] = [
        Column::EducatorId,
        Column::LastName,
        Column::FirstName,
        Column::LicenseNumber,
        Column::LicenseType,
        Column::LicenseStatus,
        Column::LicenseIssueDate,
        Column::LicenseExpirationDate,
        Column::EndorsementCode,
        Column::EndorsementDescription,
        Column::EndorsementLevel,
        Column::EndorsementIssueDate,
        Column::EndorsementExpirationDate,
        Column::Limits,
    ];

    /// The canonical name, as HR sees it in messages.
    const fn name(self) -> &'static str {
        match self {
            Column::EducatorId => "EducatorID",
            Column::LastName => "LastName",
            Column::FirstName => "FirstName",
            Column::LicenseNumber => "LicenseNumber",
            Column::LicenseType => "LicenseType",
            Column::LicenseStatus => "LicenseStatus",
            Column::LicenseIssueDate => "LicenseIssueDate",
            Column::LicenseExpirationDate => "LicenseExpirationDate",
            Column::EndorsementCode => "EndorsementCode",
            Column::EndorsementDescription => "EndorsementDescription",
            Column::EndorsementLevel => "EndorsementLevel",
            Column::EndorsementIssueDate => "EndorsementIssueDate",
            Column::EndorsementExpirationDate => "EndorsementExpirationDate",
            Column::Limits => "Limits",
        }
    }

    /// Whether the header must have this column.
    const fn is_required_column(self) -> bool {
        matches!(
            self,
            Column::EducatorId
                | Column::LastName
                | Column::FirstName
                | Column::LicenseType
                | Column::LicenseStatus
                | Column::LicenseIssueDate
                | Column::LicenseExpirationDate
                | Column::EndorsementCode
        )
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Column names compare case-insensitively, ignoring spaces and underscores.
fn comparable_column_name(name: &str) -> String {
    name.trim()
        .chars()
        .filter(|c| *c != ' ' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Where each known column is in the file.
#[derive(Debug)]
struct Header {
    /// Field index per column, in `Column::ALL` order.
    positions: [Option<usize>; 14],
    field_count: usize,
}

impl Header {
    /// Finds the columns; unknown ones are ignored. A column named twice is read
    /// from its first occurrence.
    fn from_record(record: &ByteRecord, encoding: TextEncoding) -> Result<Self, FileRejection> {
        let known: Vec<String> = Column::ALL
            .iter()
            .map(|column| comparable_column_name(column.name()))
            .collect();
        let mut positions = [None; 14];
        for (index, field) in record.iter().enumerate() {
            let name = comparable_column_name(&encoding.decode(field));
            let slot = known
                .iter()
                .position(|known| *known == name)
                .and_then(|c| positions.get_mut(c));
            if let Some(slot) = slot {
                slot.get_or_insert(index);
            }
        }
        let missing: Vec<&'static str> = Column::ALL
            .iter()
            .zip(&positions)
            .filter(|(column, position)| column.is_required_column() && position.is_none())
            .map(|(column, _)| column.name())
            .collect();
        if !missing.is_empty() {
            return Err(FileRejection::MissingColumns(missing));
        }
        Ok(Self {
            positions,
            field_count: record.len(),
        })
    }

    /// The trimmed value of `column`; empty when the file has no such column.
    fn value<'r>(&self, text: &RecordText<'r>, column: Column) -> Cow<'r, str> {
        match self.positions.get(column as usize).copied().flatten() {
            Some(index) => trimmed(text.field(index)),
            None => Cow::Borrowed(""),
        }
    }
}

/// One record's fields as text. A UTF-8 record is validated once, whole, and its
/// fields are slices of it (the delimiters are ASCII, so a field boundary is always
/// a character boundary): validating each of 14 short fields on its own cost more
/// than the rest of reading them.
#[derive(Debug, Clone, Copy)]
struct RecordText<'r> {
    record: &'r ByteRecord,
    /// The record's fields, concatenated, when they are UTF-8.
    whole: Option<&'r str>,
    encoding: TextEncoding,
}

impl<'r> RecordText<'r> {
    fn new(record: &'r ByteRecord, encoding: TextEncoding) -> Self {
        let whole = match encoding {
            TextEncoding::Utf8 => std::str::from_utf8(record.as_slice()).ok(),
            TextEncoding::Windows1252 => None,
        };
        Self {
            record,
            whole,
            encoding,
        }
    }

    /// Field `index`, decoded; empty when the record has no such field.
    fn field(&self, index: usize) -> Cow<'r, str> {
        let sliced = self
            .whole
            .zip(self.record.range(index))
            .and_then(|(whole, range)| whole.get(range));
        match sliced {
            Some(text) => Cow::Borrowed(text),
            None => self
                .encoding
                .decode(self.record.get(index).unwrap_or_default()),
        }
    }
}

// ---------------------------------------------------------------------------
// Rows.
// ---------------------------------------------------------------------------

/// Parses a date written `MM/DD/YYYY` or `YYYY-MM-DD` (rules §1.4).
///
/// Month and day in the US form may also have one digit (`7/1/2020`), as
/// spreadsheets write them; the year always has four digits and the ISO form
/// always two-digit month and day. Anything else, or a day that does not exist
/// (`2026-02-30`), is not a date.
fn parse_date(value: &str) -> Option<Date> {
    let (year, month, day) = if let Some((month, rest)) = value.split_once('/') {
        let (day, year) = rest.split_once('/')?;
        (year, month, day)
    } else {
        let (year, rest) = value.split_once('-')?;
        let (month, day) = rest.split_once('-')?;
        if month.len() != 2 || day.len() != 2 {
            return None;
        }
        (year, month, day)
    };
    // Digits only, of the allowed lengths (at most four, so the value fits).
    let number = |text: &str, lengths: std::ops::RangeInclusive<usize>| {
        if !lengths.contains(&text.len()) {
            return None;
        }
        text.bytes().try_fold(0_i16, |n, b| {
            b.is_ascii_digit().then(|| n * 10 + i16::from(b - b'0'))
        })
    };
    let year = number(year, 4..=4)?;
    let month = i8::try_from(number(month, 1..=2)?).ok()?;
    let day = i8::try_from(number(day, 1..=2)?).ok()?;
    Date::new(year, month, day).ok()
}

/// The licence columns of one row, which every row of a certification repeats.
#[derive(Debug)]
struct LicenceColumns<'r> {
    number: Option<Cow<'r, str>>,
    license_type: Cow<'r, str>,
    status: Cow<'r, str>,
    issue_date: Option<Date>,
    expiration_date: Option<Date>,
    last_name: Cow<'r, str>,
    first_name: Cow<'r, str>,
}

/// The licence columns in the order a disagreement is looked for and reported.
const LICENCE_COLUMNS: [Column; 7] = [
    Column::LicenseNumber,
    Column::LicenseType,
    Column::LicenseStatus,
    Column::LicenseIssueDate,
    Column::LicenseExpirationDate,
    Column::LastName,
    Column::FirstName,
];

impl LicenceColumns<'_> {
    /// One hash per column of `LICENCE_COLUMNS`, of the value as the import uses
    /// it: dates as dates (`7/1/2020` agrees with `2020-07-01`), the status and
    /// names case-insensitively (rules §1.6, §2.1), the rest exactly.
    fn fingerprint(&self) -> [u64; 7] {
        [
            hash_of(&self.number.as_deref()),
            hash_of(&*self.license_type),
            hash_of(&*upper_case(&self.status)),
            hash_of(&self.issue_date),
            hash_of(&self.expiration_date),
            hash_of(&NameKey::new(&self.last_name)),
            hash_of(&NameKey::new(&self.first_name)),
        ]
    }

    /// The certification's key, borrowed: for hashing without allocating.
    fn key_ref(&self) -> CertificationKeyRef<'_> {
        match &self.number {
            Some(number) => CertificationKeyRef::Number(number),
            None => CertificationKeyRef::TypeAndIssueDate(&self.license_type, self.issue_date),
        }
    }

    fn to_certification(&self) -> Certification {
        Certification {
            license_number: self.number.as_deref().map(str::to_owned),
            license_type: self.license_type.to_string(),
            status: self.status.to_string(),
            issue_date: self.issue_date,
            expiration_date: self.expiration_date,
            endorsements: Vec::new(),
        }
    }
}

/// The endorsement columns of a row with an EndorsementCode.
#[derive(Debug)]
struct EndorsementColumns<'r> {
    code: Cow<'r, str>,
    description: Option<Cow<'r, str>>,
    level: Option<Cow<'r, str>>,
    issue_date: Option<Date>,
    expiration_date: Option<Date>,
    limits: Cow<'r, str>,
}

/// A valid data row.
#[derive(Debug)]
struct Row<'r> {
    educator_id: EducatorId,
    raw_id: Cow<'r, str>,
    licence: LicenceColumns<'r>,
    /// `None` for a licence row without an endorsement (blank EndorsementCode);
    /// such a row's other endorsement columns are ignored.
    endorsement: Option<EndorsementColumns<'r>>,
}

/// Reads one record's values, collecting every problem rather than the first.
struct RowReader<'h, 'r> {
    header: &'h Header,
    text: RecordText<'r>,
    problems: Vec<String>,
}

impl<'r> RowReader<'_, 'r> {
    fn optional(&self, column: Column) -> Option<Cow<'r, str>> {
        Some(self.header.value(&self.text, column)).filter(|v| !v.is_empty())
    }

    fn required(&mut self, column: Column) -> Cow<'r, str> {
        let value = self.header.value(&self.text, column);
        if value.is_empty() {
            self.problems
                .push(format!("{column}: required value is blank"));
        }
        value
    }

    fn date(&mut self, column: Column) -> Option<Date> {
        let value = self.optional(column)?;
        let date = parse_date(&value);
        if date.is_none() {
            self.problems
                .push(format!("{column}: not a date: {}", shortened(&value)));
        }
        date
    }
}

/// Keeps a reason readable when a field holds something long by mistake.
fn shortened(value: &str) -> Cow<'_, str> {
    const MAX_CHARS: usize = 60;
    match value.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => Cow::Owned(format!("{}…", value.get(..end).unwrap_or(value))),
        None => Cow::Borrowed(value),
    }
}

/// Checks one record; `Err` holds the reason it is invalid (every problem found,
/// separated by `; `).
fn read_row<'r>(
    header: &Header,
    record: &'r ByteRecord,
    encoding: TextEncoding,
) -> Result<Row<'r>, String> {
    if record.len() != header.field_count {
        return Err(format!(
            "wrong field count: expected {}, got {}",
            header.field_count,
            record.len()
        ));
    }
    let mut reader = RowReader {
        header,
        text: RecordText::new(record, encoding),
        problems: Vec::new(),
    };
    let raw_id = reader.required(Column::EducatorId);
    let last_name = reader.required(Column::LastName);
    let first_name = reader.required(Column::FirstName);
    let number = reader.optional(Column::LicenseNumber);
    let license_type = reader.required(Column::LicenseType);
    let status = reader.required(Column::LicenseStatus);
    let issue_date = reader.date(Column::LicenseIssueDate);
    let expiration_date = reader.date(Column::LicenseExpirationDate);
    let code = reader.optional(Column::EndorsementCode);
    let description = reader.optional(Column::EndorsementDescription);
    let level = reader.optional(Column::EndorsementLevel);
    let endorsement_issue = reader.date(Column::EndorsementIssueDate);
    let endorsement_expiration = reader.date(Column::EndorsementExpirationDate);
    let limits = header.value(&reader.text, Column::Limits);
    if !reader.problems.is_empty() {
        return Err(reader.problems.join("; "));
    }
    let educator_id = EducatorId::parse(&raw_id)
        .ok_or_else(|| format!("{}: required value is blank", Column::EducatorId))?;
    Ok(Row {
        educator_id,
        raw_id,
        licence: LicenceColumns {
            number,
            license_type,
            status,
            issue_date,
            expiration_date,
            last_name,
            first_name,
        },
        endorsement: code.map(|code| EndorsementColumns {
            code,
            description,
            level,
            issue_date: endorsement_issue,
            expiration_date: endorsement_expiration,
            limits,
        }),
    })
}

// ---------------------------------------------------------------------------
// Certifications, endorsements and counts.
// ---------------------------------------------------------------------------

/// The 64-bit hash fingerprints and index keys are made of: foldhash's quality
/// variant, fixed, so that a parse's hashes do not depend on the process (SipHash,
/// the standard library's, took a twentieth of the parse).
fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
    foldhash::quality::FixedState::default().hash_one(value)
}

/// A certification's key within its educator (rules §1.5), borrowed from a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum CertificationKeyRef<'r> {
    Number(&'r str),
    TypeAndIssueDate(&'r str, Option<Date>),
}

impl CertificationKeyRef<'_> {
    /// Whether `certification` (built from a row) has this key.
    fn is_key_of(&self, certification: &Certification) -> bool {
        match (self, certification.license_number.as_deref()) {
            (Self::Number(number), Some(held)) => *number == held,
            (Self::TypeAndIssueDate(license_type, issue_date), None) => {
                *license_type == certification.license_type
                    && *issue_date == certification.issue_date
            }
            _ => false,
        }
    }
}

/// `text` in upper case, borrowed when it already is (status codes nearly always).
fn upper_case(text: &str) -> Cow<'_, str> {
    if text
        .bytes()
        .any(|b| !b.is_ascii() || b.is_ascii_lowercase())
    {
        Cow::Owned(text.to_uppercase())
    } else {
        Cow::Borrowed(text)
    }
}

/// What a certification's first row said, enough to check its later rows: 32 bytes.
///
/// Whether a later row agrees is decided by `whole`, a 64-bit hash of the seven
/// licence columns as the import uses them. `columns` keeps 16 bits of each column's
/// own hash, only to name the column that differs in the reason a row is invalid.
#[derive(Debug, Clone, Copy)]
struct Fingerprint {
    whole: u64,
    columns: [u16; 7],
    first_line: u64,
}

impl Fingerprint {
    fn new(columns: [u64; 7], first_line: u64) -> Self {
        Self {
            whole: hash_of(&columns),
            // The low 16 bits of each column's hash: truncation is the point.
            columns: columns.map(|column| column as u16),
            first_line,
        }
    }

    /// The reason a later row is invalid, naming the first column that differs.
    fn check(&self, later: &Fingerprint) -> Result<(), String> {
        if self.whole == later.whole {
            return Ok(());
        }
        let differing = LICENCE_COLUMNS
            .iter()
            .zip(self.columns.iter().zip(&later.columns))
            .find(|(_, (first, row))| first != row);
        Err(match differing {
            Some((column, _)) => format!(
                "{column} disagrees with line {} for the same licence",
                self.first_line
            ),
            // The differing column's 16 bits happen to agree (odds 1 in 65 536).
            None => format!(
                "the licence columns disagree with line {} for the same licence",
                self.first_line
            ),
        })
    }
}

/// Whether `keep` kept an educator, and where their records are.
#[derive(Debug, Clone, Copy)]
enum Decision {
    Kept(usize),
    /// In `kept` without records: rows are only checked, as for `NotKept`.
    NameOnly,
    NotKept,
}

/// An educator whose records are kept, as their rows arrive.
struct KeptEducator {
    educator: Educator,
    /// The fingerprint of each of `educator.certifications`, in the same order.
    fingerprints: Vec<Fingerprint>,
}

/// Where the kept educators' certifications and endorsements are, by a 64-bit hash of
/// their keys (the educator's place among the kept, then the certification's key, then
/// the endorsement's code and level). One map for all educators: a map per educator
/// cost more than the records it indexed. A hit is checked against the record it
/// points to; should two keys hash alike, the records are scanned instead.
#[derive(Default)]
struct KeptIndex {
    certifications: HashMap<u64, u32>,
    endorsements: HashMap<u64, u32>,
}

impl KeptIndex {
    /// The position of the item `is_it` recognises among `items`, or `None` if it is
    /// new (and then `items.len()` is recorded as its position).
    fn find<T>(
        index: &mut HashMap<u64, u32>,
        hash: u64,
        items: &[T],
        is_it: impl Fn(&T) -> bool,
    ) -> Option<usize> {
        match index.entry(hash) {
            Entry::Occupied(entry) => {
                let at = *entry.get() as usize;
                if items.get(at).is_some_and(&is_it) {
                    Some(at)
                } else {
                    items.iter().position(is_it)
                }
            }
            Entry::Vacant(entry) => {
                entry.insert(u32::try_from(items.len()).unwrap_or(u32::MAX));
                None
            }
        }
    }
}

impl KeptEducator {
    fn add(
        &mut self,
        slot: usize,
        index: &mut KeptIndex,
        row: &Row<'_>,
        fingerprint: Fingerprint,
    ) -> Result<(), String> {
        let key = row.licence.key_ref();
        let certifications = &mut self.educator.certifications;
        let at = match KeptIndex::find(
            &mut index.certifications,
            hash_of(&(slot, key)),
            certifications,
            |c| key.is_key_of(c),
        ) {
            Some(at) => {
                if let Some(first) = self.fingerprints.get(at) {
                    first.check(&fingerprint)?;
                }
                at
            }
            None => {
                push_lean(certifications, row.licence.to_certification());
                push_lean(&mut self.fingerprints, fingerprint);
                certifications.len() - 1
            }
        };
        let (Some(endorsement), Some(certification)) =
            (&row.endorsement, certifications.get_mut(at))
        else {
            return Ok(());
        };
        let (code, level) = (&*endorsement.code, endorsement.level.as_deref());
        let endorsements = &mut certification.endorsements;
        match KeptIndex::find(
            &mut index.endorsements,
            hash_of(&(slot, at, code, level)),
            endorsements,
            |e| e.code == code && e.grade_level.as_deref() == level,
        ) {
            // A repeated endorsement only adds limits: its description and dates
            // are those of its first row.
            Some(at) => {
                if let Some(existing) = endorsements.get_mut(at) {
                    add_limits(&mut existing.limits, &endorsement.limits);
                }
            }
            None => {
                let mut limits = Vec::new();
                add_limits(&mut limits, &endorsement.limits);
                push_lean(
                    endorsements,
                    Endorsement {
                        code: code.to_owned(),
                        description: endorsement.description.as_deref().map(str::to_owned),
                        grade_level: level.map(str::to_owned),
                        issue_date: endorsement.issue_date,
                        expiration_date: endorsement.expiration_date,
                        limits,
                    },
                );
            }
        }
        Ok(())
    }

    /// The educator's records, without spare capacity.
    fn finish(self) -> Educator {
        let mut educator = self.educator;
        for certification in &mut educator.certifications {
            certification.endorsements.shrink_to_fit();
        }
        educator.certifications.shrink_to_fit();
        educator
    }
}

/// Pushes `item` without the spare room a growing vector takes (room for four at
/// least): a typical educator has one or two licences and endorsements, and that
/// room was over half of the records' memory.
fn push_lean<T>(items: &mut Vec<T>, item: T) {
    if items.len() == items.capacity() && items.len() < 4 {
        items.reserve_exact(1);
    }
    items.push(item);
}

/// Adds the `;`-separated limits not already listed, trimmed, in order.
fn add_limits(limits: &mut Vec<String>, field: &str) {
    for limit in field
        .split(';')
        .map(str::trim)
        .filter(|limit| !limit.is_empty())
    {
        if !limits.iter().any(|known| known == limit) {
            limits.push(limit.to_owned());
        }
    }
}

/// An Educator ID as the decisions are filed under it: an all-digit ID (nearly all
/// of them) as its number, without an allocation each. Normalised all-digit IDs have
/// no leading zeros, so the number stands for exactly one of them.
#[derive(Debug, PartialEq, Eq, Hash)]
enum IdKey {
    Number(u64),
    Text(Box<str>),
}

impl IdKey {
    fn of(id: &EducatorId) -> Self {
        let text = id.as_str();
        match text.parse() {
            Ok(number) if text.bytes().all(|b| b.is_ascii_digit()) => Self::Number(number),
            _ => Self::Text(text.into()),
        }
    }
}

/// Accumulates the data rows of pass 2.
struct Collector<K> {
    keep: K,
    /// One more than the threshold is enough to report; the rest are only counted.
    max_invalid_details: u64,
    data_rows: u64,
    invalid_count: u64,
    invalid_rows: Vec<InvalidRow>,
    decisions: HashMap<IdKey, Decision>,
    kept: Vec<KeptEducator>,
    kept_index: KeptIndex,
    /// The first kept educator of each name, by a 64-bit hash of the name's key (a
    /// hit is checked against the educator's name).
    names_kept: HashMap<u64, usize>,
    educators_not_kept: u64,
    /// Hash of (Educator ID, certification key) → fingerprint, for educators not kept.
    not_kept_certifications: HashMap<u64, Fingerprint>,
}

impl<K, D> Collector<K>
where
    K: FnMut(&EducatorId, &PersonName) -> D,
    D: Into<Keep>,
{
    fn new(settings: &ParseSettings, keep: K) -> Self {
        Self {
            keep,
            max_invalid_details: settings.max_invalid_rows.saturating_add(1),
            data_rows: 0,
            invalid_count: 0,
            invalid_rows: Vec::new(),
            decisions: HashMap::new(),
            kept: Vec::new(),
            kept_index: KeptIndex::default(),
            names_kept: HashMap::new(),
            educators_not_kept: 0,
            not_kept_certifications: HashMap::new(),
        }
    }

    fn add_record(
        &mut self,
        line: u64,
        header: &Header,
        record: &ByteRecord,
        encoding: TextEncoding,
    ) {
        self.data_rows += 1;
        let added = read_row(header, record, encoding).and_then(|row| self.add_row(line, &row));
        if let Err(reason) = added {
            self.invalid(line, reason);
        }
    }

    fn add_row(&mut self, line: u64, row: &Row<'_>) -> Result<(), String> {
        let fingerprint = Fingerprint::new(row.licence.fingerprint(), line);
        match self.decide(row) {
            Decision::Kept(slot) => match self.kept.get_mut(slot) {
                Some(educator) => educator.add(slot, &mut self.kept_index, row, fingerprint),
                None => Ok(()),
            },
            Decision::NameOnly | Decision::NotKept => {
                let key = hash_of(&(&row.educator_id, row.licence.key_ref()));
                match self.not_kept_certifications.entry(key) {
                    Entry::Occupied(first) => first.get().check(&fingerprint),
                    Entry::Vacant(entry) => {
                        entry.insert(fingerprint);
                        Ok(())
                    }
                }
            }
        }
    }

    /// Asks `keep` about an educator the first time one of their rows is valid.
    fn decide(&mut self, row: &Row<'_>) -> Decision {
        let id_key = IdKey::of(&row.educator_id);
        if let Some(decision) = self.decisions.get(&id_key) {
            return *decision;
        }
        let name = PersonName::new(&row.licence.last_name, &row.licence.first_name);
        let keep = (self.keep)(&row.educator_id, &name).into();
        let name_key = name.key();
        let name_hash = hash_of(&name_key);
        let store = match keep {
            Keep::Records => true,
            Keep::NameOnly => !self.has_name(name_hash, &name_key),
            Keep::Nothing => false,
        };
        if store {
            self.names_kept.entry(name_hash).or_insert(self.kept.len());
            self.kept.push(KeptEducator {
                educator: Educator {
                    id: row.educator_id.clone(),
                    raw_id: row.raw_id.to_string(),
                    name,
                    certifications: Vec::new(),
                },
                fingerprints: Vec::new(),
            });
        }
        let decision = match keep {
            Keep::Records => Decision::Kept(self.kept.len().saturating_sub(1)),
            Keep::NameOnly => Decision::NameOnly,
            Keep::Nothing => {
                self.educators_not_kept += 1;
                Decision::NotKept
            }
        };
        self.decisions.insert(id_key, decision);
        decision
    }

    /// Whether an educator with this name is kept already.
    fn has_name(&self, hash: u64, key: &(NameKey, NameKey)) -> bool {
        self.names_kept
            .get(&hash)
            .and_then(|&at| self.kept.get(at))
            .is_some_and(|kept| kept.educator.name.key() == *key)
    }

    fn invalid(&mut self, line: u64, reason: String) {
        self.invalid_count += 1;
        if (self.invalid_rows.len() as u64) < self.max_invalid_details {
            self.invalid_rows.push(InvalidRow { line, reason });
        }
    }

    fn finish(
        self,
        settings: &ParseSettings,
        encoding: TextEncoding,
    ) -> Result<ParsedFile, FileRejection> {
        if self.data_rows == 0 {
            return Err(FileRejection::NoDataRows);
        }
        if exceeds_thresholds(self.invalid_count, self.data_rows, settings) {
            return Err(FileRejection::TooManyInvalidRows {
                invalid: self.invalid_count,
                data_rows: self.data_rows,
            });
        }
        Ok(ParsedFile {
            data_rows: self.data_rows,
            invalid_rows: self.invalid_rows,
            educators: self.kept.into_iter().map(KeptEducator::finish).collect(),
            educators_not_kept: self.educators_not_kept,
            decoded_as_windows_1252: encoding == TextEncoding::Windows1252,
        })
    }
}

/// Rules §1.5: more than `max_invalid_rows`, or more than `max_invalid_fraction` of
/// the data rows. The share is compared as a quotient so that exactly 1% is not
/// pushed over by rounding.
fn exceeds_thresholds(invalid: u64, data_rows: u64, settings: &ParseSettings) -> bool {
    invalid > settings.max_invalid_rows
        || (data_rows > 0 && invalid as f64 / data_rows as f64 > settings.max_invalid_fraction)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    const HEADER: &str = "EducatorID,LastName,FirstName,LicenseNumber,LicenseType,LicenseStatus,\
        LicenseIssueDate,LicenseExpirationDate,EndorsementCode,EndorsementDescription,\
        EndorsementLevel,EndorsementIssueDate,EndorsementExpirationDate,Limits";

    /// A licence row of Ann Smith with one endorsement.
    const ANN: &str = "1001,Smith,Ann,L-1,Level I Professional Educator,ACT,07/01/2020,06/30/2027,\
        2-05,Elementary Education,K-6,07/01/2020,06/30/2027,";

    fn file(rows: &[&str]) -> String {
        let mut text = format!("{HEADER}\n");
        for row in rows {
            text.push_str(row);
            text.push('\n');
        }
        text
    }

    /// Tolerates any share of invalid rows, so that small files can show them.
    fn lenient() -> ParseSettings {
        ParseSettings {
            max_invalid_rows: 100,
            max_invalid_fraction: 1.0,
        }
    }

    fn parse_bytes(bytes: &[u8]) -> Result<ParsedFile, FileRejection> {
        parse(Cursor::new(bytes), &lenient(), |_, _| true)
    }

    fn parse_with_defaults(text: &str) -> Result<ParsedFile, FileRejection> {
        parse(Cursor::new(text), &ParseSettings::default(), |_, _| true)
    }

    fn parse_text(text: &str) -> Result<ParsedFile, FileRejection> {
        parse_bytes(text.as_bytes())
    }

    fn parse_rows(rows: &[&str]) -> ParsedFile {
        parse_text(&file(rows)).expect("file is accepted")
    }

    fn date(year: i16, month: i8, day: i8) -> Date {
        Date::new(year, month, day).expect("valid test date")
    }

    fn only_educator(parsed: &ParsedFile) -> &Educator {
        assert_eq!(
            parsed.educators.len(),
            1,
            "educators: {:?}",
            parsed.educators
        );
        &parsed.educators[0]
    }

    fn invalid(line: u64, reason: &str) -> InvalidRow {
        InvalidRow {
            line,
            reason: reason.to_owned(),
        }
    }

    /// `valid` rows of distinct educators, then `invalid` rows with a bad date.
    fn generated_file(valid: usize, invalid: usize) -> String {
        let mut text = format!("{HEADER}\n");
        for id in 0..valid + invalid {
            let issue = if id < valid {
                "07/01/2020"
            } else {
                "13/45/2020"
            };
            text.push_str(&format!(
                "{id},Last{id},First{id},L{id},Provisional,ACT,{issue},06/30/2027,2-05,,,,,\n"
            ));
        }
        text
    }

    // --- the two-thread parse against the sequential one ---

    /// The two-thread parse's result, `None` when it leaves the file to the
    /// sequential parse, beside the sequential parse's.
    fn both_ways(bytes: &[u8]) -> (Option<String>, String) {
        fn keep_all(_: &EducatorId, _: &PersonName) -> bool {
            true
        }
        let settings = lenient();
        let finish = |read: Result<(Collector<_>, TextEncoding), FileRejection>| {
            format!("{:?}", read.and_then(|(c, e)| c.finish(&settings, e)))
        };
        let mut input = Cursor::new(bytes);
        let layout = check_encoding(&mut input, 7).expect("readable");
        input.set_position(body_start(&layout));
        let pipelined = match pipeline::parse(&mut input, &settings, keep_all, &layout) {
            pipeline::Outcome::Read(read) => Some(finish(*read)),
            pipeline::Outcome::ReadAgain => None,
        };
        let sequential = finish(read_sequentially(Cursor::new(bytes), &settings, keep_all));
        (pipelined, sequential)
    }

    #[test]
    fn the_two_thread_parse_decides_as_the_sequential_one_or_leaves_it_the_file() {
        let rows = |first: &str| {
            let mut text = format!("{HEADER}\r\n\r\n");
            text.push_str(first);
            for id in 0..1500 {
                text.push_str(&format!(
                    "{id},Last{id},First{id},L{id},Provisional,ACT,07/01/2020,06/30/2027,\
                     2-05,,,,,\n \n"
                ));
            }
            text.into_bytes()
        };
        let mut latin = rows("");
        latin.extend_from_slice(b"9,Caf\xe9,Ann,L9,Provisional,ACT,07/01/2020,06/30/2027,,,,,,\n");
        let mut accented_then_latin = rows("8,Caf\u{e9},Bo,L8,Provisional,ACT,07/01/2020,,,,,,,\n");
        accented_then_latin.extend_from_slice(b"9,Caf\xe9,Ann,L9,Provisional,ACT,,,,,,,,\n");
        let mut open_quote = rows("");
        open_quote.extend_from_slice(b"9,\"Caf");
        let mut bom = UTF8_BOM.to_vec();
        bom.extend(rows(
            "8,Caf\u{e9},Bo,L8,Provisional,ACT,07/01/2020,,,,,,,\n",
        ));
        let cases: [(&str, Vec<u8>, bool); 8] = [
            ("UTF-8, CRLF and blank lines", rows(""), true),
            ("with a BOM and an accent", bom, true),
            ("ASCII, then Windows-1252", latin, true),
            (
                "UTF-8 accents, then Windows-1252",
                accented_then_latin,
                true,
            ),
            ("a quoted field left open", open_quote, false),
            (
                "a header without the columns",
                b"a,b\n1,2\n".to_vec(),
                false,
            ),
            ("nothing but blank lines", b"\n , \n\n".to_vec(), true),
            ("no bytes", Vec::new(), true),
        ];
        for (name, bytes, decided_here) in cases {
            let (pipelined, sequential) = both_ways(&bytes);
            assert_eq!(pipelined.is_some(), decided_here, "{name}: {sequential}");
            if let Some(pipelined) = pipelined {
                assert_eq!(pipelined, sequential, "{name}");
            }
        }
    }

    // --- settings and messages ---

    #[test]
    fn default_settings_are_100_rows_and_one_percent() {
        let settings = ParseSettings::default();
        assert_eq!(settings.max_invalid_rows, 100);
        assert_eq!(settings.max_invalid_fraction, 0.01);
    }

    #[test]
    fn rejection_messages_explain_the_cause() {
        let missing = FileRejection::MissingColumns(vec!["EducatorID", "LicenseStatus"]);
        assert_eq!(
            missing.to_string(),
            "the ALiS file lacks required columns: EducatorID, LicenseStatus"
        );
        let too_many = FileRejection::TooManyInvalidRows {
            invalid: 101,
            data_rows: 20_000,
        }
        .to_string();
        assert!(
            too_many.starts_with("101 of the 20000 data rows"),
            "{too_many}"
        );
        assert!(too_many.contains("are both settings"), "{too_many}");
        assert!(FileRejection::Empty.to_string().contains("no header"));
        assert!(
            FileRejection::NoDataRows
                .to_string()
                .contains("no data rows")
        );
        assert!(
            FileRejection::Unreadable("boom".into())
                .to_string()
                .ends_with(": boom")
        );
    }

    #[test]
    fn column_list_matches_the_enum_order() {
        for (index, column) in Column::ALL.iter().enumerate() {
            assert_eq!(*column as usize, index, "{column}");
        }
    }

    // --- encoding ---

    #[test]
    fn bom_is_stripped() {
        let text = format!("\u{FEFF}{}", file(&[ANN]));
        let parsed = parse_text(&text).expect("accepted");
        assert_eq!(only_educator(&parsed).raw_id, "1001");
        assert!(!parsed.decoded_as_windows_1252);
    }

    #[test]
    fn id_keys_stand_for_one_id_each() {
        let key = |raw: &str| IdKey::of(&EducatorId::parse(raw).expect("an ID"));
        assert_eq!(key("00123"), IdKey::Number(123));
        assert_eq!(key("123"), key("0123"));
        assert_ne!(key("+123"), key("123"));
        assert_eq!(key("+123"), IdKey::Text("+123".into()));
        assert_eq!(
            key("123456789012345678901234567890"),
            IdKey::Text("123456789012345678901234567890".into())
        );
        assert_ne!(key("A123"), key("a123"));
    }

    #[test]
    fn a_later_row_names_the_licence_column_that_differs() {
        let first = Fingerprint::new([1, 2, 3, 4, 5, 6, 7], 2);
        assert!(
            first
                .check(&Fingerprint::new([1, 2, 3, 4, 5, 6, 7], 9))
                .is_ok()
        );
        let reason = first
            .check(&Fingerprint::new([1, 2, 3, 99, 5, 6, 7], 9))
            .expect_err("a differing date");
        assert_eq!(
            reason,
            format!(
                "{} disagrees with line 2 for the same licence",
                Column::LicenseIssueDate
            )
        );
        // Differing only above the 16 bits kept per column: still refused.
        let reason = first
            .check(&Fingerprint::new([1, 2, 3, 4 + (1 << 20), 5, 6, 7], 9))
            .expect_err("a differing column");
        assert_eq!(
            reason,
            "the licence columns disagree with line 2 for the same licence"
        );
    }

    #[test]
    fn utf8_accents_are_kept() {
        let row = ANN.replace("Smith,Ann", "Müller,Zoë");
        let parsed = parse_rows(&[&row]);
        assert!(!parsed.decoded_as_windows_1252);
        assert_eq!(
            only_educator(&parsed).name,
            PersonName::new("Müller", "Zoë")
        );
    }

    #[test]
    fn invalid_utf8_is_read_as_windows_1252() {
        let row = ANN.replace("Smith,Ann", "M\u{1}ller,J\u{2}r\u{3}me");
        let mut bytes = file(&[&row]).into_bytes();
        for byte in &mut bytes {
            *byte = match *byte {
                1 => 0xFC, // ü
                2 => 0xE9, // é
                3 => 0xF4, // ô
                other => other,
            };
        }
        let parsed = parse_bytes(&bytes).expect("accepted");
        assert!(parsed.decoded_as_windows_1252);
        assert_eq!(
            only_educator(&parsed).name,
            PersonName::new("Müller", "Jérôme")
        );
    }

    #[test]
    fn bom_is_stripped_from_a_windows_1252_file() {
        let row = ANN.replace("Smith", "Sm\u{1}th");
        let text = format!("\u{FEFF}{}", file(&[&row]));
        let bytes: Vec<u8> = text
            .bytes()
            .map(|b| if b == 1 { 0xEF } else { b })
            .collect();
        let parsed = parse_bytes(&bytes).expect("header found despite the BOM");
        assert!(parsed.decoded_as_windows_1252);
        assert_eq!(only_educator(&parsed).name.last, "Smïth");
    }

    #[test]
    fn utf8_multibyte_split_across_chunk_boundary_is_valid() {
        let text = file(&[&ANN.replace("Smith,Ann", "Ölçü😀,Zoë")]);
        for chunk_size in 1..=5 {
            let layout =
                check_layout(&mut Cursor::new(text.as_bytes()), chunk_size).expect("readable");
            assert!(layout.is_utf8, "chunk size {chunk_size}");
        }
        // And feeding the validator every possible split of a 4-byte sequence.
        let emoji = "a😀b".as_bytes();
        for split in 0..=emoji.len() {
            let mut check = Utf8Check::default();
            check.feed(&emoji[..split]);
            check.feed(&emoji[split..]);
            assert!(check.finish(), "split at {split}");
        }
    }

    #[test]
    fn broken_utf8_is_found_at_any_chunk_boundary() {
        // A cut-off sequence at the end, a bad continuation byte, a lone continuation.
        for bytes in [&b"ab\xC3"[..], b"a\xC3\x28b", b"a\x80b", b"\xF0\x9F\x98"] {
            for chunk_size in 1..=4 {
                let layout = check_layout(&mut Cursor::new(bytes), chunk_size).expect("readable");
                assert!(!layout.is_utf8, "{bytes:?} in chunks of {chunk_size}");
            }
        }
    }

    // --- CSV layout ---

    #[test]
    fn crlf_and_lf_both_work() {
        let lf = file(&[ANN, "", "1002,Jones,Bob,,Provisional,ACT,13/45/2020,,,,,,,"]);
        let crlf = lf.replace('\n', "\r\n");
        let from_lf = parse_text(&lf).expect("LF accepted");
        let from_crlf = parse_text(&crlf).expect("CRLF accepted");
        assert_eq!(from_lf.educators, from_crlf.educators);
        assert_eq!(from_lf.data_rows, 2);
        assert_eq!(from_crlf.data_rows, 2);
        let expected = vec![invalid(4, "LicenseIssueDate: not a date: 13/45/2020")];
        assert_eq!(from_lf.invalid_rows, expected);
        assert_eq!(from_crlf.invalid_rows, expected);
    }

    #[test]
    fn quoted_fields_hold_commas_quotes_and_line_breaks() {
        let row = ANN.replace(
            "Elementary Education",
            "\"English, \"\"Advanced\"\"\nand\r\nReading\"",
        );
        let parsed = parse_rows(&[&row]);
        let endorsement = &only_educator(&parsed).certifications[0].endorsements[0];
        assert_eq!(
            endorsement.description.as_deref(),
            Some("English, \"Advanced\"\nand\r\nReading")
        );
        assert!(parsed.invalid_rows.is_empty());
    }

    #[test]
    fn quotes_inside_unquoted_fields_are_literal() {
        let row = ANN.replace("Level I Professional Educator", "Level 2\" Educator");
        let parsed = parse_rows(&[&row]);
        assert_eq!(
            only_educator(&parsed).certifications[0].license_type,
            "Level 2\" Educator"
        );
    }

    #[test]
    fn unterminated_quote_makes_file_unreadable() {
        let text = file(&[ANN, "1002,\"Jones,Bob,,Provisional,ACT,,,,,,,,", ANN]);
        let rejection = parse_text(&text).expect_err("refused");
        assert_eq!(
            rejection,
            FileRejection::Unreadable(
                "a quoted field that starts on line 3 is never closed".to_owned()
            )
        );
    }

    #[test]
    fn read_error_makes_file_unreadable() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        impl Seek for Failing {
            fn seek(&mut self, _: SeekFrom) -> io::Result<u64> {
                Ok(0)
            }
        }
        let rejection =
            parse(Failing, &ParseSettings::default(), |_, _| true).expect_err("refused");
        assert_eq!(
            rejection,
            FileRejection::Unreadable("disk on fire".to_owned())
        );
    }

    #[test]
    fn blank_lines_are_skipped() {
        let text = format!(
            "\n  \n{HEADER}\n\n{ANN}\n   \n\"\"\n,,, ,,,,,,,,,,\n\r\n1002,Jones,Bob,,Provisional,ACT,bad,,,,,,,\n\n"
        );
        let parsed = parse_text(&text).expect("accepted");
        assert_eq!(parsed.data_rows, 2);
        assert_eq!(only_educator(&parsed).raw_id, "1001");
        assert_eq!(
            parsed.invalid_rows,
            vec![invalid(10, "LicenseIssueDate: not a date: bad")]
        );
    }

    #[test]
    fn line_numbers_account_for_multiline_quoted_fields() {
        let multiline = ANN.replace("Elementary Education", "\"Elementary\nEducation\n(K-6)\"");
        let bad = "1002,Jones,Bob,,Provisional,ACT,2026-02-30,,,,,,,";
        let parsed = parse_rows(&[bad, &multiline, bad]);
        // Header line 1, bad row 2, quoted row lines 3–5, bad row 6.
        assert_eq!(
            parsed.invalid_rows,
            vec![
                invalid(2, "LicenseIssueDate: not a date: 2026-02-30"),
                invalid(6, "LicenseIssueDate: not a date: 2026-02-30"),
            ]
        );
    }

    // --- header ---

    #[test]
    fn header_names_ignore_case_spaces_and_underscores() {
        let text = "educator_id, LAST NAME ,first_name,License Type,license_status,\
            LICENSE_ISSUE_DATE,License Expiration Date,endorsement code\n\
            1001,Smith,Ann,Provisional,ACT,07/01/2020,06/30/2027,2-05\n";
        let parsed = parse_text(text).expect("accepted");
        let educator = only_educator(&parsed);
        assert_eq!(educator.name, PersonName::new("Smith", "Ann"));
        assert_eq!(educator.certifications[0].license_type, "Provisional");
        assert_eq!(
            educator.certifications[0].expiration_date,
            Some(date(2027, 6, 30))
        );
    }

    #[test]
    fn columns_are_found_in_any_order() {
        let text = "LicenseStatus,EndorsementCode,FirstName,LicenseExpirationDate,LastName,\
            LicenseIssueDate,LicenseType,EducatorID\n\
            ACT,2-05,Ann,06/30/2027,Smith,07/01/2020,Provisional,1001\n";
        let parsed = parse_text(text).expect("accepted");
        let educator = only_educator(&parsed);
        assert_eq!(educator.raw_id, "1001");
        assert_eq!(educator.name, PersonName::new("Smith", "Ann"));
        assert_eq!(educator.certifications[0].status, "ACT");
        assert_eq!(educator.certifications[0].endorsements[0].code, "2-05");
    }

    #[test]
    fn unknown_columns_are_ignored() {
        let text = format!("Region,{HEADER},Notes\nNE,{ANN},call back\n");
        let parsed = parse_text(&text).expect("accepted");
        assert!(parsed.invalid_rows.is_empty());
        assert_eq!(only_educator(&parsed).raw_id, "1001");
    }

    #[test]
    fn duplicate_column_is_read_from_its_first_occurrence() {
        let text = "EducatorID,LastName,FirstName,LicenseType,LicenseStatus,LicenseIssueDate,\
            LicenseExpirationDate,EndorsementCode,Last Name\n\
            1001,Smith,Ann,Provisional,ACT,,,,Jones\n";
        let parsed = parse_text(text).expect("accepted");
        assert_eq!(only_educator(&parsed).name.last, "Smith");
    }

    #[test]
    fn missing_required_column_rejects_file() {
        let header = HEADER
            .replace("EducatorID,", "")
            .replace("LicenseStatus,", "");
        let text = format!("{header}\n1001,Smith\n");
        assert_eq!(
            parse_text(&text).expect_err("refused"),
            FileRejection::MissingColumns(vec!["EducatorID", "LicenseStatus"])
        );
    }

    #[test]
    fn optional_columns_may_be_absent() {
        let text = "EducatorID,LastName,FirstName,LicenseType,LicenseStatus,LicenseIssueDate,\
            LicenseExpirationDate,EndorsementCode\n\
            1001,Smith,Ann,Provisional,ACT,07/01/2020,06/30/2027,2-05\n";
        let parsed = parse_text(text).expect("accepted");
        let certification = &only_educator(&parsed).certifications[0];
        assert_eq!(certification.license_number, None);
        let endorsement = &certification.endorsements[0];
        assert_eq!(endorsement.description, None);
        assert_eq!(endorsement.grade_level, None);
        assert!(endorsement.limits.is_empty());
    }

    #[test]
    fn empty_file_is_rejected() {
        assert_eq!(parse_text("").expect_err("refused"), FileRejection::Empty);
        assert_eq!(
            parse_text("\n \r\n\n").expect_err("refused"),
            FileRejection::Empty
        );
        assert_eq!(
            parse_bytes(UTF8_BOM).expect_err("refused"),
            FileRejection::Empty
        );
    }

    #[test]
    fn header_without_rows_is_rejected() {
        assert_eq!(
            parse_text(HEADER).expect_err("refused"),
            FileRejection::NoDataRows
        );
        let blank_rows = format!("{HEADER}\r\n\r\n  \n,,,\n");
        assert_eq!(
            parse_text(&blank_rows).expect_err("refused"),
            FileRejection::NoDataRows
        );
    }

    // --- values and dates ---

    #[test]
    fn both_date_forms_parse() {
        assert_eq!(parse_date("07/01/2020"), Some(date(2020, 7, 1)));
        assert_eq!(parse_date("2020-07-01"), Some(date(2020, 7, 1)));
        assert_eq!(parse_date("7/1/2020"), Some(date(2020, 7, 1)));
        assert_eq!(parse_date("02/29/2024"), Some(date(2024, 2, 29)));
        let row = ANN.replace("07/01/2020,06/30/2027,2-05", "2020-07-01,6/30/2027,2-05");
        let parsed = parse_rows(&[&row]);
        let certification = &only_educator(&parsed).certifications[0];
        assert_eq!(certification.issue_date, Some(date(2020, 7, 1)));
        assert_eq!(certification.expiration_date, Some(date(2027, 6, 30)));
    }

    #[test]
    fn other_date_forms_are_not_dates() {
        for text in [
            "13/45/2020",
            "2026-02-30",
            "02/29/2023",
            "2020/07/01",
            "07/01/20",
            "2020-7-1",
            "07-01-2020",
            "7/1/2020/1",
            "07/01/2020 00:00",
            "+7/1/2020",
            "",
            "July 1, 2020",
            "001/01/2020",
            "07/01/02020",
        ] {
            assert_eq!(parse_date(text), None, "{text:?}");
        }
    }

    #[test]
    fn blank_date_is_missing_not_invalid() {
        let row = "1001,Smith,Ann,L-1,Provisional,ACT,, ,2-05,,,,,";
        let parsed = parse_rows(&[row]);
        assert!(parsed.invalid_rows.is_empty());
        let certification = &only_educator(&parsed).certifications[0];
        assert_eq!(certification.issue_date, None);
        assert_eq!(certification.expiration_date, None);
        assert_eq!(certification.endorsements[0].issue_date, None);
        assert_eq!(certification.endorsements[0].expiration_date, None);
    }

    #[test]
    fn bad_date_makes_row_invalid_with_line_and_reason() {
        let bad_licence = ANN.replace("07/01/2020,06/30/2027,2-05", "13/45/2020,06/30/2027,2-05");
        let bad_endorsement = ANN.replace("K-6,07/01/2020,06/30/2027", "K-6,07/01/2020,2026-02-30");
        let parsed = parse_rows(&[&bad_licence, ANN, &bad_endorsement]);
        assert_eq!(
            parsed.invalid_rows,
            vec![
                invalid(2, "LicenseIssueDate: not a date: 13/45/2020"),
                invalid(4, "EndorsementExpirationDate: not a date: 2026-02-30"),
            ]
        );
        assert_eq!(parsed.data_rows, 3);
        assert_eq!(only_educator(&parsed).certifications.len(), 1);
    }

    #[test]
    fn long_bad_value_is_shortened_in_the_reason() {
        let garbage = "x".repeat(500);
        let row = ANN.replace(
            "07/01/2020,06/30/2027,2-05",
            &format!("{garbage},06/30/2027,2-05"),
        );
        let parsed = parse_rows(&[ANN, &row]);
        let reason = &parsed.invalid_rows[0].reason;
        assert_eq!(
            *reason,
            format!("LicenseIssueDate: not a date: {}…", "x".repeat(60))
        );
    }

    #[test]
    fn values_are_trimmed() {
        let row =
            "  1001 , Smith , Ann ,\" L-1 \", Provisional , ACT , 07/01/2020 ,,\t2-05 ,,,,, a ; b ";
        let parsed = parse_rows(&[row]);
        let educator = only_educator(&parsed);
        assert_eq!(educator.raw_id, "1001");
        assert_eq!(
            educator.name,
            PersonName {
                last: "Smith".into(),
                first: "Ann".into()
            }
        );
        let certification = &educator.certifications[0];
        assert_eq!(certification.license_number.as_deref(), Some("L-1"));
        assert_eq!(certification.license_type, "Provisional");
        assert_eq!(certification.status, "ACT");
        assert_eq!(certification.issue_date, Some(date(2020, 7, 1)));
        assert_eq!(certification.endorsements[0].code, "2-05");
        assert_eq!(certification.endorsements[0].limits, vec!["a", "b"]);
    }

    #[test]
    fn blank_optional_value_is_none() {
        let row = "1001,Smith,Ann,  ,Provisional,ACT,,,2-05, ,,,,";
        let parsed = parse_rows(&[row]);
        let certification = &only_educator(&parsed).certifications[0];
        assert_eq!(certification.license_number, None);
        assert_eq!(certification.endorsements[0].description, None);
        assert_eq!(certification.endorsements[0].grade_level, None);
    }

    #[test]
    fn blank_required_value_makes_row_invalid() {
        let row = "1001, ,Ann,L-1,Provisional,,07/01/2020,bad,,,,,,";
        let blank_id = ANN.replacen("1001", " ", 1);
        let parsed = parse_rows(&[ANN, row, &blank_id]);
        assert_eq!(
            parsed.invalid_rows,
            vec![
                invalid(
                    3,
                    "LastName: required value is blank; LicenseStatus: required value is blank; \
                     LicenseExpirationDate: not a date: bad"
                ),
                invalid(4, "EducatorID: required value is blank"),
            ]
        );
    }

    #[test]
    fn wrong_field_count_is_invalid() {
        let short = "1001,Smith,Ann,L-1,Provisional,ACT,07/01/2020,06/30/2027,2-05,,,,";
        let long = format!("{ANN},extra");
        let parsed = parse_rows(&[ANN, short, &long]);
        assert_eq!(
            parsed.invalid_rows,
            vec![
                invalid(3, "wrong field count: expected 14, got 13"),
                invalid(4, "wrong field count: expected 14, got 15"),
            ]
        );
        assert_eq!(parsed.data_rows, 3);
    }

    // --- certifications and endorsements ---

    #[test]
    fn rows_of_one_licence_group_into_one_certification() {
        let english = ANN.replace("2-05,Elementary Education,K-6", "3-12,English,7-12");
        let math = ANN.replace("2-05,Elementary Education,K-6", "3-33,Mathematics,7-12");
        let other = "1001,Smith,Ann,L-2,Provisional,ACT,,,,,,,,";
        let parsed = parse_rows(&[ANN, &english, other, &math]);
        let educator = only_educator(&parsed);
        assert_eq!(educator.certifications.len(), 2);
        let first = &educator.certifications[0];
        assert_eq!(first.license_number.as_deref(), Some("L-1"));
        let codes: Vec<&str> = first.endorsements.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, ["2-05", "3-12", "3-33"]);
        assert_eq!(
            educator.certifications[1].license_number.as_deref(),
            Some("L-2")
        );
        assert!(educator.certifications[1].endorsements.is_empty());
    }

    #[test]
    fn certification_without_number_is_keyed_by_type_and_issue_date() {
        let rows = [
            "1001,Smith,Ann,,Provisional,ACT,07/01/2020,06/30/2022,2-05,,,,,",
            "1001,Smith,Ann,,Provisional,ACT,2020-07-01,06/30/2022,3-12,,,,,",
            "1001,Smith,Ann,,Provisional,ACT,07/01/2021,06/30/2023,2-05,,,,,",
            "1001,Smith,Ann,,Emergency,ACT,07/01/2020,06/30/2021,2-05,,,,,",
        ];
        let parsed = parse_rows(&rows);
        let certifications = &only_educator(&parsed).certifications;
        let summary: Vec<(&str, Option<Date>, usize)> = certifications
            .iter()
            .map(|c| (c.license_type.as_str(), c.issue_date, c.endorsements.len()))
            .collect();
        assert_eq!(
            summary,
            [
                ("Provisional", Some(date(2020, 7, 1)), 2),
                ("Provisional", Some(date(2021, 7, 1)), 1),
                ("Emergency", Some(date(2020, 7, 1)), 1),
            ]
        );
    }

    #[test]
    fn disagreeing_licence_row_is_invalid() {
        let later_expiry = ANN.replace("06/30/2027,2-05", "06/30/2028,3-12");
        let other_status = ANN.replace(",ACT,", ",EXP,");
        let parsed = parse_rows(&[ANN, &later_expiry, &other_status]);
        assert_eq!(
            parsed.invalid_rows,
            vec![
                invalid(
                    3,
                    "LicenseExpirationDate disagrees with line 2 for the same licence"
                ),
                invalid(
                    4,
                    "LicenseStatus disagrees with line 2 for the same licence"
                ),
            ]
        );
        let certification = &only_educator(&parsed).certifications[0];
        assert_eq!(certification.expiration_date, Some(date(2027, 6, 30)));
        assert_eq!(certification.endorsements.len(), 1);
    }

    #[test]
    fn licence_rows_agree_on_values_not_spelling() {
        // Same dates in the other form; status and names differing only in case.
        let respelled = ANN
            .replace("Smith,Ann", "SMITH , ann")
            .replace(",ACT,07/01/2020,06/30/2027,", ",act,2020-07-01,6/30/2027,")
            .replace("2-05", "3-12");
        let renamed = ANN.replace("Smith", "Smyth");
        let parsed = parse_rows(&[ANN, &respelled, &renamed]);
        assert_eq!(
            parsed.invalid_rows,
            vec![invalid(
                4,
                "LastName disagrees with line 2 for the same licence"
            )]
        );
        assert_eq!(
            only_educator(&parsed).certifications[0].endorsements.len(),
            2
        );
    }

    #[test]
    fn disagreeing_row_of_not_kept_educator_is_invalid() {
        let other_type = ANN.replace("Level I Professional Educator", "Provisional");
        let other_educator = other_type.replacen("1001", "1002", 1);
        let text = file(&[ANN, &other_type, &other_educator]);
        let parsed = parse(Cursor::new(text), &lenient(), |_, _| false).expect("accepted");
        assert!(parsed.educators.is_empty());
        assert_eq!(parsed.educators_not_kept, 2);
        assert_eq!(
            parsed.invalid_rows,
            vec![invalid(
                3,
                "LicenseType disagrees with line 2 for the same licence"
            )]
        );
    }

    #[test]
    fn educator_kept_by_name_only_has_no_records_and_rows_still_checked() {
        let other_type = ANN.replace("Level I Professional Educator", "Provisional");
        let text = file(&[ANN, &other_type]);
        let parsed = parse(Cursor::new(text), &lenient(), |_, _| Keep::NameOnly).expect("accepted");
        let educator = only_educator(&parsed);
        assert_eq!(
            (educator.raw_id.as_str(), educator.name.last.as_str()),
            ("1001", "Smith")
        );
        assert!(educator.certifications.is_empty());
        assert_eq!(parsed.educators_not_kept, 0);
        assert_eq!(
            parsed.invalid_rows,
            vec![invalid(
                3,
                "LicenseType disagrees with line 2 for the same licence"
            )]
        );
    }

    #[test]
    fn repeated_endorsement_merges_limits_distinct_in_file_order() {
        let with = |limits: &str| format!("{ANN}{limits}");
        let parsed = parse_rows(&[&with("B; A"), &with("A;C"), &with(" ; "), &with("b;B")]);
        let endorsements = &only_educator(&parsed).certifications[0].endorsements;
        assert_eq!(endorsements.len(), 1);
        assert_eq!(endorsements[0].limits, vec!["B", "A", "C", "b"]);
    }

    #[test]
    fn repeated_endorsement_keeps_first_description_and_dates() {
        let repeated = ANN.replace(
            "Elementary Education,K-6,07/01/2020,06/30/2027,",
            "Elem. Ed.,K-6,,06/30/2030,",
        ) + "Grade 3 only";
        let parsed = parse_rows(&[ANN, &repeated]);
        let endorsement = &only_educator(&parsed).certifications[0].endorsements[0];
        assert_eq!(
            endorsement.description.as_deref(),
            Some("Elementary Education")
        );
        assert_eq!(endorsement.issue_date, Some(date(2020, 7, 1)));
        assert_eq!(endorsement.expiration_date, Some(date(2027, 6, 30)));
        assert_eq!(endorsement.limits, vec!["Grade 3 only"]);
    }

    #[test]
    fn same_code_at_another_level_is_another_endorsement() {
        let other_level = ANN.replace(",K-6,", ",5-8,");
        let no_level = ANN.replace(",K-6,", ",,");
        let parsed = parse_rows(&[ANN, &other_level, &no_level, &other_level]);
        let levels: Vec<Option<&str>> = only_educator(&parsed).certifications[0]
            .endorsements
            .iter()
            .map(|e| e.grade_level.as_deref())
            .collect();
        assert_eq!(levels, [Some("K-6"), Some("5-8"), None]);
    }

    #[test]
    fn blank_endorsement_code_is_a_licence_without_endorsement() {
        let licence_only = ANN.replace("2-05,", ",") + "ignored limit";
        let parsed = parse_rows(&[&licence_only]);
        let certification = &only_educator(&parsed).certifications[0];
        assert_eq!(certification.license_number.as_deref(), Some("L-1"));
        assert!(certification.endorsements.is_empty());
        let parsed = parse_rows(&[&licence_only, ANN]);
        assert_eq!(
            only_educator(&parsed).certifications[0].endorsements.len(),
            1
        );
    }

    // --- educators ---

    #[test]
    fn educator_name_comes_from_first_valid_row() {
        let invalid_first = ANN
            .replace("Smith", "Wrong")
            .replace("06/30/2027,2-05", "bad,2-05");
        let other_licence = ANN.replace("Smith", "Smyth").replace("L-1", "L-2");
        let parsed = parse_rows(&[&invalid_first, ANN, &other_licence]);
        let educator = only_educator(&parsed);
        assert_eq!(educator.name, PersonName::new("Smith", "Ann"));
        assert_eq!(educator.certifications.len(), 2);
    }

    #[test]
    fn keep_is_asked_once_per_distinct_educator() {
        let zero_padded = ANN.replacen("1001", "0001001", 1).replace("L-1", "L-2");
        let bob = "1002,Jones,Bob,,Provisional,ACT,,,,,,,,";
        let invalid_only = "1003,Brown,Cy,,Provisional,ACT,bad,,,,,,,";
        let text = file(&[&zero_padded, ANN, bob, invalid_only, bob]);
        let mut asked = Vec::new();
        let parsed = parse(Cursor::new(text), &lenient(), |id, name| {
            asked.push((id.as_str().to_owned(), name.last.clone()));
            true
        })
        .expect("accepted");
        assert_eq!(
            asked,
            [
                ("1001".to_owned(), "Smith".to_owned()),
                ("1002".into(), "Jones".into())
            ]
        );
        assert_eq!(parsed.educators.len(), 2);
        assert_eq!(parsed.educators[0].raw_id, "0001001");
        assert_eq!(parsed.educators[0].certifications.len(), 2);
    }

    #[test]
    fn not_kept_educators_are_counted_not_stored() {
        let bob = "1002,Jones,Bob,,Provisional,ACT,,,,,,,,";
        let cy = "1003,Brown,Cy,,Provisional,ACT,,,,,,,,";
        let cy_invalid = "1004,Brown,Di,,Provisional,ACT,bad,,,,,,,";
        let text = file(&[bob, ANN, cy, bob, cy_invalid]);
        let parsed =
            parse(Cursor::new(text), &lenient(), |id, _| id.as_str() == "1001").expect("accepted");
        assert_eq!(only_educator(&parsed).raw_id, "1001");
        assert_eq!(parsed.educators_not_kept, 2);
        assert_eq!(parsed.data_rows, 5);
        assert_eq!(
            parsed.invalid_rows,
            vec![invalid(6, "LicenseIssueDate: not a date: bad")]
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = fastrand::Rng::with_seed(20_261_130);
        let alphabet: &[u8] = b",,,\"\"\r\n\n ;/-0123456789aA\xC3\xA9\xEF\xBB\xBF\x80\xFF";
        for _ in 0..3_000 {
            let mut bytes = match rng.u8(0..3) {
                0 => Vec::new(),
                1 => format!("{HEADER}\n").into_bytes(),
                _ => file(&[ANN]).into_bytes(),
            };
            for _ in 0..rng.usize(0..120) {
                bytes.push(alphabet[rng.usize(..alphabet.len())]);
            }
            let mut asked = 0_u64;
            let result = parse(Cursor::new(&bytes), &lenient(), |_, _| {
                asked += 1;
                asked.is_multiple_of(2)
            });
            if let Ok(parsed) = result {
                assert!(
                    parsed.invalid_rows.len() as u64 <= parsed.data_rows,
                    "{bytes:?}"
                );
                let educators = parsed.educators.len() as u64 + parsed.educators_not_kept;
                assert_eq!(educators, asked, "{bytes:?}");
                assert!(
                    parsed.invalid_rows.iter().all(|row| row.line >= 2),
                    "{bytes:?}"
                );
            }
        }
    }

    // --- thresholds ---

    #[test]
    fn more_than_one_percent_invalid_rejects_file() {
        assert_eq!(
            parse_with_defaults(&generated_file(98, 2)).expect_err("refused"),
            FileRejection::TooManyInvalidRows {
                invalid: 2,
                data_rows: 100
            }
        );
    }

    #[test]
    fn more_than_100_invalid_rejects_file() {
        // 101 of 20 000 rows is only 0.5%, but more than 100.
        assert_eq!(
            parse_with_defaults(&generated_file(19_899, 101)).expect_err("refused"),
            FileRejection::TooManyInvalidRows {
                invalid: 101,
                data_rows: 20_000
            }
        );
    }

    #[test]
    fn exactly_at_threshold_is_accepted() {
        let parsed = parse_with_defaults(&generated_file(99, 1)).expect("1 of 100 is exactly 1%");
        assert_eq!(parsed.invalid_rows.len(), 1);
        let parsed = parse_with_defaults(&generated_file(9_900, 100)).expect("100 rows and 1%");
        assert_eq!(parsed.invalid_rows.len(), 100);
        assert_eq!(parsed.educators.len(), 9_900);
    }

    #[test]
    fn thresholds_are_settings() {
        let text = generated_file(5, 5);
        let lenient = ParseSettings {
            max_invalid_rows: 5,
            max_invalid_fraction: 0.5,
        };
        let parsed = parse(Cursor::new(&text), &lenient, |_, _| true).expect("at both limits");
        assert_eq!(parsed.invalid_rows.len(), 5);
        let strict_count = ParseSettings {
            max_invalid_rows: 4,
            max_invalid_fraction: 1.0,
        };
        assert_eq!(
            parse(Cursor::new(&text), &strict_count, |_, _| true).expect_err("refused"),
            FileRejection::TooManyInvalidRows {
                invalid: 5,
                data_rows: 10
            }
        );
        let strict_share = ParseSettings {
            max_invalid_rows: 100,
            max_invalid_fraction: 0.49,
        };
        assert!(parse(Cursor::new(&text), &strict_share, |_, _| true).is_err());
    }

    #[test]
    fn invalid_row_details_are_capped_but_all_counted() {
        let settings = ParseSettings {
            max_invalid_rows: 2,
            max_invalid_fraction: 1.0,
        };
        let mut collector = Collector::new(&settings, |_: &EducatorId, _: &PersonName| true);
        for line in 2..12 {
            collector.invalid(line, "bad".to_owned());
        }
        assert_eq!(collector.invalid_count, 10);
        assert_eq!(collector.invalid_rows.len(), 3);
        assert_eq!(collector.invalid_rows[2].line, 4);
    }
}
