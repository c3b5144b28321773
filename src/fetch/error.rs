//! Why the fetch step failed.

use std::io;
use std::path::PathBuf;

use crate::source::{AlisFileName, SourceError};
use crate::store::StoreError;

/// Why the fetch step failed. Each message is for an operator and complete on its own.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The source could not be listed: not "no file", so the cache is not used.
    #[error("listing {location} failed: {cause}")]
    List {
        /// The source, e.g. `local directory ./data/inbox`.
        location: String,
        /// The cause.
        #[source]
        cause: Box<SourceError>,
    },
    /// The newest file is larger than the configured maximum; it was not downloaded.
    #[error(
        "{name} is {size} bytes, more than the maximum file size of {max} bytes; \
         it was not downloaded"
    )]
    TooLarge {
        /// The file.
        name: AlisFileName,
        /// Its listed size.
        size: u64,
        /// The maximum.
        max: u64,
    },
    /// Downloading the newest file failed.
    #[error("downloading {name} failed: {cause}")]
    Download {
        /// The file.
        name: AlisFileName,
        /// The cause.
        #[source]
        cause: Box<SourceError>,
    },
    /// The local copy could not be read back or written.
    #[error("cannot use the local copy {}: {cause}", .path.display())]
    LocalCopy {
        /// The copy's path (or the work directory).
        path: PathBuf,
        /// The cause.
        #[source]
        cause: io::Error,
    },
    /// The downloaded copy no longer had the SHA-256 the download computed when it was
    /// read back for the cache: something else wrote into the work directory.
    #[error(
        "the downloaded copy {} changed before it could be cached (SHA-256 {actual}, \
         downloaded as {expected}); is something else writing into the work directory?",
        .path.display()
    )]
    LocalCopyChanged {
        /// The copy's path.
        path: PathBuf,
        /// The SHA-256 computed while downloading.
        expected: String,
        /// The SHA-256 read back.
        actual: String,
    },
    /// The cached file the run falls back to is damaged.
    #[error(
        "the cached copy of {name} is damaged: {size} bytes with SHA-256 {actual}, stored \
         as {expected_size} bytes with SHA-256 {expected}"
    )]
    CachedCopyDamaged {
        /// The file.
        name: AlisFileName,
        /// The SHA-256 stored with it.
        expected: String,
        /// The SHA-256 of the bytes read.
        actual: String,
        /// The size stored with it.
        expected_size: u64,
        /// The size of the bytes read.
        size: u64,
    },
    /// The cached file the run falls back to was pruned (by another replica) between
    /// being chosen and being read.
    #[error(
        "the cached copy of {name} was removed from the file cache while it was being \
         read (another replica stored a newer file); run again"
    )]
    CachedCopyGone {
        /// The file.
        name: AlisFileName,
    },
    /// No usable ALiS file in the source, and none in the cache (rules §1.2 step 4).
    #[error(
        "no ALiS file found: {location} {}, and the file cache is empty",
        describe_no_file(*.still_being_written)
    )]
    NoFile {
        /// The source, e.g. `local directory ./data/inbox`.
        location: String,
        /// Recognised files skipped as still being written.
        still_being_written: usize,
    },
    /// The file cache (the database) failed.
    #[error("the file cache could not be used: {0}")]
    Store(#[from] StoreError),
    /// A line could not be written to the run log.
    #[error("the run log could not be written: {0}")]
    RunLog(#[source] StoreError),
    /// The background task doing blocking file work panicked or was cancelled.
    #[error("the file task did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn describe_no_file(still_being_written: usize) -> String {
    match still_being_written {
        0 => "holds no recognised ALiS file".to_owned(),
        n => format!("holds only ALiS files still being written ({n})"),
    }
}
