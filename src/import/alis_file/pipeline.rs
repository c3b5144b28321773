//! Pass 2 on two threads: one splits the records (and follows the quoting, as pass 1
//! does), this one checks the rows.
//!
//! The sequential parse ([`super::read_sequentially`]) reads the file twice: pass 1
//! learns the encoding and whether a quoted field is left open, then pass 2 splits
//! the records and checks every row, all on one thread. Here the encoding is learnt
//! first, alone ([`super::check_encoding`]: a fast scan); then a reader thread splits
//! the records, follows the quoting on the very bytes it splits, and sends the records
//! in batches to this thread, which checks the rows exactly as pass 2 does, in the
//! same order. A quoted field left open is known only when the reader reaches the end.
//!
//! Whatever this path would not decide exactly as the sequential parse does (an I/O
//! error, a quoted field left open, a header that refuses the file) it leaves to the
//! sequential parse ([`Outcome::ReadAgain`]), which decides those before asking `keep`
//! anything: `keep` is still asked once per educator.

use std::io::{self, Read};
use std::sync::mpsc;

use csv::ByteRecord;

use super::{
    Collector, EducatorId, FileRejection, Header, Keep, Layout, LineTracker, ParseSettings,
    PersonName, QuoteCheck, TextEncoding, is_blank, next_record, record_line, records_of,
};

/// Records per batch sent from the reader thread.
const BATCH: usize = 512;
/// Batches on their way at most: the reader waits beyond (memory stays bounded).
const IN_FLIGHT: usize = 8;

/// What the two-thread parse came to.
pub(super) enum Outcome<F> {
    /// Every row read (or the file refused as the sequential parse refuses it).
    Read(Box<Result<(Collector<F>, TextEncoding), FileRejection>>),
    /// Read the file again, sequentially (see the module documentation).
    ReadAgain,
}

/// Records the reader thread has split, with the line each starts on.
struct Batch {
    lines: Vec<u64>,
    records: Vec<ByteRecord>,
    len: usize,
}

enum Message {
    Records(Batch),
    /// The reader reached the end with every quoted field closed, or stopped.
    End(Result<(), FileRejection>),
}

/// Parses `input`, whose encoding is `layout`'s and which stands at the first byte
/// after the BOM, on two threads; see [`Outcome`].
pub(super) fn parse<R, F, K>(
    input: &mut R,
    settings: &ParseSettings,
    keep: F,
    layout: &Layout,
) -> Outcome<F>
where
    R: Read + Send,
    F: FnMut(&EducatorId, &PersonName) -> K,
    K: Into<Keep>,
{
    let (full, filled) = mpsc::sync_channel(IN_FLIGHT);
    let (empty, emptied) = mpsc::channel();
    let encoding = layout.encoding();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let end = read(input, &full, &emptied);
            let _ = full.send(Message::End(end));
        });
        // `filled` is dropped when `check` returns, however it returns: a reader
        // still sending then stops.
        check(filled, empty, settings, keep, encoding)
    })
}

/// The reader thread: splits the records and follows the quoting.
fn read<R: Read>(
    input: &mut R,
    full: &mpsc::SyncSender<Message>,
    emptied: &mpsc::Receiver<Batch>,
) -> Result<(), FileRejection> {
    let mut quotes = QuoteCheck::new();
    let followed = Quoting {
        inner: input,
        quotes: &mut quotes,
    };
    let mut reader = records_of(LineTracker::new(followed));
    let mut at_end = false;
    while !at_end {
        let mut batch = emptied.try_recv().unwrap_or_else(|_| Batch {
            lines: Vec::with_capacity(BATCH),
            records: Vec::with_capacity(BATCH),
            len: 0,
        });
        batch.len = 0;
        while batch.len < BATCH {
            if batch.records.len() == batch.len {
                batch.records.push(ByteRecord::new());
                batch.lines.push(0);
            }
            let (Some(record), Some(line)) = (
                batch.records.get_mut(batch.len),
                batch.lines.get_mut(batch.len),
            ) else {
                break;
            };
            if !next_record(&mut reader, record)? {
                at_end = true;
                break;
            }
            // Also for a blank record, which drops the line starts before it.
            *line = record_line(&mut reader, record);
            batch.len += 1;
        }
        if batch.len > 0 && full.send(Message::Records(batch)).is_err() {
            // The checking thread has stopped: nobody waits for the end.
            return Ok(());
        }
    }
    drop(reader);
    quotes.verdict()
}

/// Feeds every byte read to the quoting check, as pass 1 does.
struct Quoting<'c, R> {
    inner: &'c mut R,
    quotes: &'c mut QuoteCheck,
}

impl<R: Read> Read for Quoting<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        let bytes = buffer
            .get(..read)
            .ok_or_else(|| io::Error::other("the input returned more bytes than asked for"))?;
        self.quotes.feed(bytes);
        Ok(read)
    }
}

/// This thread: checks the rows as pass 2 does.
fn check<F, K>(
    filled: mpsc::Receiver<Message>,
    empty: mpsc::Sender<Batch>,
    settings: &ParseSettings,
    keep: F,
    encoding: TextEncoding,
) -> Outcome<F>
where
    F: FnMut(&EducatorId, &PersonName) -> K,
    K: Into<Keep>,
{
    let mut header: Option<Header> = None;
    let mut collector = Collector::new(settings, keep);
    loop {
        let batch = match filled.recv() {
            Ok(Message::Records(batch)) => batch,
            Ok(Message::End(Ok(()))) => {
                return Outcome::Read(Box::new(match header {
                    Some(_) => Ok((collector, encoding)),
                    None => Err(FileRejection::Empty),
                }));
            }
            Ok(Message::End(Err(_))) | Err(_) => return Outcome::ReadAgain,
        };
        for (&line, record) in batch.lines.iter().zip(&batch.records).take(batch.len) {
            if is_blank(record, encoding) {
                continue;
            }
            match &header {
                Some(header) => collector.add_record(line, header, record, encoding),
                None => match Header::from_record(record, encoding) {
                    Ok(found) => header = Some(found),
                    Err(_) => return Outcome::ReadAgain,
                },
            }
        }
        let _ = empty.send(batch);
    }
}
