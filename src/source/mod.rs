//! Where ALiS files come from: listing a folder, choosing the file a run uses, and
//! fetching a complete, verified local copy of it (rules §1.1–§1.2, design §7).
//!
//! The pipeline needs three things from a source and nothing else: what is there
//! ([`FileSource::list`]), which of it to use ([`choose_newest`], pure), and a local
//! copy it can read and hash ([`FileSource::download`]). Keeping the seam that narrow
//! lets the SFTP source slot in beside the local directory without the pipeline
//! knowing which one it talks to, and keeps the choosing rules testable without any
//! I/O.
//!
//! - [`file_name`]: the ALiS naming rule, parsed into [`AlisFileName`].
//! - [`local`]: a local directory (development, manual drops).
//! - [`sftp`]: the state's SFTP server, with a pinned host key.

pub mod file_name;
pub mod local;
pub mod sftp;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

pub use file_name::{AlisFileName, FileNameError};
pub use local::LocalDirSource;
pub use sftp::{SftpCredentials, SftpError, SftpSettings, SftpSource};

/// A recognised ALiS file in a source's folder, as the listing saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// Its name, which carries its datestamp.
    pub name: AlisFileName,
    /// Its size in bytes when listed; the download must produce exactly this many.
    pub size: u64,
    /// Its last modification time when listed; a file modified too recently may still
    /// be being written.
    pub modified: Timestamp,
}

/// Everything a source's folder holds: the recognised ALiS files and, for the run
/// log, everything else with the reason it is not used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Recognised ALiS files (regular files with a valid name), oldest first.
    pub files: Vec<ListedFile>,
    /// Entries that are not used, by name.
    pub ignored: Vec<IgnoredEntry>,
}

/// A folder entry that is not used, and why: rules §1.1 say it is never downloaded
/// and is noted in the run log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredEntry {
    /// The entry's name as found. It may hold control characters (that is one reason
    /// to ignore it), so log it as a field (`?name`), which escapes them, not
    /// interpolated into a message.
    pub name: String,
    /// Why it is not used.
    pub reason: IgnoreReason,
}

/// Why a folder entry is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreReason {
    /// The name is not an ALiS file name.
    #[error("not an ALiS file name: {0}")]
    NotAlisName(#[from] FileNameError),
    /// The name is not valid UTF-8 (it is recorded with replacement characters), so it
    /// cannot be an ALiS file name.
    #[error("not an ALiS file name: the name is not valid UTF-8")]
    NameNotUtf8,
    /// The entry is a directory.
    #[error("a directory, not a file")]
    Directory,
    /// The entry is a symbolic link. Links are not followed: the file a run uses must be
    /// in the folder itself, not wherever a link points.
    #[error("a symbolic link, not followed")]
    Symlink,
    /// The entry is something else that is not a regular file (socket, pipe, device).
    #[error("not a regular file")]
    NotRegularFile,
    /// The entry disappeared between being listed and being looked at.
    #[error("disappeared while the folder was being listed")]
    Vanished,
    /// The file was modified less than the minimum age ago.
    #[error("modified {}s ago, still being written (minimum age {}s)", .age.as_secs(), .min_age.as_secs())]
    TooYoung {
        /// How long ago it was modified.
        age: SignedDuration,
        /// The minimum age a file must have.
        min_age: SignedDuration,
    },
    /// The file's modification time is later than this service's clock; it is treated
    /// as still being written until the clock passes it by the minimum age.
    #[error(
        "modified {}s in the future by this service's clock, treated as still being written",
        .ahead.as_secs()
    )]
    ModifiedInFuture {
        /// How far ahead of the clock its modification time is.
        ahead: SignedDuration,
    },
}

/// What [`choose_newest`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The newest recognised file old enough to be complete; `None` when there is none
    /// (the run then falls back to the file cache, rules §1.2 step 3).
    pub chosen: Option<ListedFile>,
    /// The listing's ignored entries, plus recognised files that were too young.
    pub ignored: Vec<IgnoredEntry>,
}

/// Chooses the file a run uses (rules §1.2 step 1, design §7): the newest recognised
/// file, leaving out those modified less than `min_age` before `now` (they may still
/// be being written; they move to [`Choice::ignored`] with the reason).
///
/// A zero `min_age` turns the age check off. Otherwise a file whose modification time
/// is after `now` is also left out: the clocks disagree, and the file cannot be shown
/// to be complete.
pub fn choose_newest(listing: Listing, now: Timestamp, min_age: Duration) -> Choice {
    // A minimum age beyond jiff's range (centuries) means "never old enough".
    let min_age = SignedDuration::try_from(min_age).unwrap_or(SignedDuration::MAX);
    let Listing { files, mut ignored } = listing;
    let mut chosen: Option<ListedFile> = None;
    for file in files {
        if !min_age.is_zero() {
            let age = now.duration_since(file.modified);
            let reason = if age.is_negative() {
                Some(IgnoreReason::ModifiedInFuture { ahead: -age })
            } else if age < min_age {
                Some(IgnoreReason::TooYoung { age, min_age })
            } else {
                None
            };
            if let Some(reason) = reason {
                ignored.push(IgnoredEntry {
                    name: file.name.name().to_owned(),
                    reason,
                });
                continue;
            }
        }
        if chosen.as_ref().is_none_or(|best| file.name > best.name) {
            chosen = Some(file);
        }
    }
    Choice { chosen, ignored }
}

/// A complete, verified local copy of an ALiS file: the parser reads it, the file cache
/// stores it.
///
/// It is a plain path, not a self-deleting handle: the caller chose `dest_dir` and owns
/// what is in it (typically a per-run temporary directory that goes away with the run),
/// and a path can be opened as often as needed (`std::fs::File` is `Read + Seek`)
/// and outlives a failed parse for inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedFile {
    /// The file's name in the source, which is also its name in `dest_dir`.
    pub name: AlisFileName,
    /// Where the copy is: `dest_dir` joined with the name.
    pub path: PathBuf,
    /// Its size in bytes, equal to the listed size.
    pub size: u64,
    /// The SHA-256 of its bytes, computed while copying.
    pub sha256: [u8; 32],
}

impl FetchedFile {
    /// The SHA-256 in lowercase hex, as the report and the file cache show it.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// Opens the copy for reading.
    pub fn open(&self) -> io::Result<std::fs::File> {
        std::fs::File::open(&self.path)
    }
}

/// Why a source could not list or fetch. Messages name the folder or file and the
/// cause, for an operator; they never carry credentials.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The folder could not be listed (missing, not a directory, no permission).
    #[error("cannot list the folder {}: {source}", .dir.display())]
    ListFolder {
        /// The folder.
        dir: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// An entry's type, size or modification time could not be read.
    #[error("cannot read the size and modification time of {name}: {source}")]
    Metadata {
        /// The entry's name.
        name: String,
        /// The cause.
        source: io::Error,
    },
    /// The file to download could not be opened (it may have been removed since it was
    /// listed).
    #[error("cannot open {name} for reading: {source}")]
    Open {
        /// The file's name.
        name: AlisFileName,
        /// The cause.
        source: io::Error,
    },
    /// The file to download is no longer a regular file.
    #[error("{name} is no longer a regular file")]
    NoLongerRegularFile {
        /// The file's name.
        name: AlisFileName,
    },
    /// Reading the file failed part way.
    #[error("reading {name} failed: {source}")]
    Read {
        /// The file's name.
        name: AlisFileName,
        /// The cause.
        source: io::Error,
    },
    /// Writing the local copy failed (destination missing or full, no permission).
    #[error("cannot write the copy of {name} into {}: {source}", .dest_dir.display())]
    Write {
        /// The file's name.
        name: AlisFileName,
        /// The destination folder.
        dest_dir: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file's size changed between the listing and the copy: it is still being
    /// written or was replaced. Nothing was kept; a later run will try again.
    #[error(
        "{name} changed while being read: listed with {listed} bytes, read {read}; \
         it is probably still being written, try again later"
    )]
    SizeChanged {
        /// The file's name.
        name: AlisFileName,
        /// Its size in the listing.
        listed: u64,
        /// The bytes actually read (at most one more than listed: reading stops there).
        read: u64,
    },
    /// The file's modification time changed between the listing and the end of the
    /// copy: it was rewritten. Nothing was kept; a later run will try again.
    #[error(
        "{name} changed while being read: modified at {now}, listed as modified at {listed}; \
         try again later"
    )]
    ModifiedWhileReading {
        /// The file's name.
        name: AlisFileName,
        /// Its modification time in the listing.
        listed: Timestamp,
        /// Its modification time after the copy.
        now: Timestamp,
    },
    /// The background task doing blocking file I/O panicked or was cancelled.
    #[error("the file task did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The SFTP source failed: connecting, logging in, listing or downloading.
    #[error(transparent)]
    Sftp(#[from] SftpError),
}

/// The configured source of ALiS files.
///
/// An enum rather than a trait object on purpose: there are few sources (a local
/// directory and the SFTP server), each is matched on in two places
/// below, and an enum keeps `async fn` without boxing and lets each variant keep
/// its own concrete error detail. Adding a source means adding a variant and its two
/// match arms; the pipeline keeps calling [`FileSource::list`] and
/// [`FileSource::download`].
#[derive(Debug, Clone)]
pub enum FileSource {
    /// A directory on this machine.
    Local(LocalDirSource),
    /// A folder on an SFTP server.
    Sftp(SftpSource),
}

impl FileSource {
    /// Lists the folder: the recognised ALiS files, and everything else with a reason.
    pub async fn list(&self) -> Result<Listing, SourceError> {
        match self {
            Self::Local(source) => source.list().await,
            Self::Sftp(source) => Ok(source.list().await?),
        }
    }

    /// Copies `file` into `dest_dir` under its own name, through a temporary name, so
    /// that a partial copy is never visible under the final name; checks the size and
    /// computes the SHA-256 on the way. An existing file of that name in `dest_dir` is
    /// replaced. `dest_dir` must exist and should not be the source folder itself.
    pub async fn download(
        &self,
        file: &ListedFile,
        dest_dir: &Path,
    ) -> Result<FetchedFile, SourceError> {
        match self {
            Self::Local(source) => source.download(file, dest_dir).await,
            Self::Sftp(source) => Ok(source.download(file, dest_dir).await?),
        }
    }
}

/// Names the source for the run log, e.g. `local directory ./data/inbox`.
impl fmt::Display for FileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(source) => write!(f, "local directory {}", source.dir().display()),
            Self::Sftp(source) => fmt::Display::fmt(source, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-30T12:00:00Z";

    fn listed(name: &str, modified: &str) -> ListedFile {
        ListedFile {
            name: name.parse().unwrap(),
            size: 10,
            modified: modified.parse().unwrap(),
        }
    }

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    fn chosen_name(choice: &Choice) -> Option<&str> {
        choice.chosen.as_ref().map(|f| f.name.name())
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_newest_name_is_chosen_whatever_the_listing_order() {
        let files = vec![
            listed(
                "Curr_Lic_Eds_End_Limits_20261127_080000.csv",
                "2026-11-27T08:00:00Z",
            ),
            listed(
                "Curr_Lic_Eds_End_Limits_20261128.csv",
                "2026-11-28T08:00:00Z",
            ),
            listed(
                "Curr_Lic_Eds_End_Limits_20261127.csv",
                "2026-11-27T07:00:00Z",
            ),
        ];
        for rotation in 0..files.len() {
            let mut files = files.clone();
            files.rotate_left(rotation);
            let choice = choose_newest(
                Listing {
                    files,
                    ignored: vec![],
                },
                now(),
                MINUTE,
            );
            assert_eq!(
                chosen_name(&choice),
                Some("Curr_Lic_Eds_End_Limits_20261128.csv")
            );
            assert!(choice.ignored.is_empty());
        }
    }

    #[test]
    fn newest_follows_the_name_not_the_modification_time() {
        let listing = Listing {
            files: vec![
                listed(
                    "Curr_Lic_Eds_End_Limits_20261128.csv",
                    "2026-11-28T08:00:00Z",
                ),
                // Touched later, but its datestamp is older.
                listed(
                    "Curr_Lic_Eds_End_Limits_20261127.csv",
                    "2026-11-29T08:00:00Z",
                ),
            ],
            ignored: vec![],
        };
        let choice = choose_newest(listing, now(), MINUTE);
        assert_eq!(
            chosen_name(&choice),
            Some("Curr_Lic_Eds_End_Limits_20261128.csv")
        );
    }

    #[test]
    fn a_file_younger_than_the_minimum_age_is_skipped_for_the_next_newest() {
        let listing = Listing {
            files: vec![
                listed(
                    "Curr_Lic_Eds_End_Limits_20261127.csv",
                    "2026-11-27T08:00:00Z",
                ),
                listed(
                    "Curr_Lic_Eds_End_Limits_20261130.csv",
                    "2026-11-30T11:59:48Z",
                ),
            ],
            ignored: vec![],
        };
        let choice = choose_newest(listing, now(), MINUTE);
        assert_eq!(
            chosen_name(&choice),
            Some("Curr_Lic_Eds_End_Limits_20261127.csv")
        );
        assert_eq!(
            choice.ignored,
            [IgnoredEntry {
                name: "Curr_Lic_Eds_End_Limits_20261130.csv".into(),
                reason: IgnoreReason::TooYoung {
                    age: SignedDuration::from_secs(12),
                    min_age: SignedDuration::from_secs(60),
                },
            }]
        );
        assert_eq!(
            choice.ignored[0].reason.to_string(),
            "modified 12s ago, still being written (minimum age 60s)"
        );
    }

    #[test]
    fn a_file_exactly_the_minimum_age_is_used() {
        let listing = Listing {
            files: vec![listed(
                "Curr_Lic_Eds_End_Limits_20261130.csv",
                "2026-11-30T11:59:00Z",
            )],
            ignored: vec![],
        };
        let choice = choose_newest(listing, now(), MINUTE);
        assert_eq!(
            chosen_name(&choice),
            Some("Curr_Lic_Eds_End_Limits_20261130.csv")
        );
    }

    #[test]
    fn a_file_modified_in_the_future_is_skipped() {
        let listing = Listing {
            files: vec![listed(
                "Curr_Lic_Eds_End_Limits_20261130.csv",
                "2026-11-30T12:05:00Z",
            )],
            ignored: vec![],
        };
        let choice = choose_newest(listing, now(), MINUTE);
        assert_eq!(choice.chosen, None);
        assert_eq!(
            choice.ignored[0].reason.to_string(),
            "modified 300s in the future by this service's clock, treated as still being written"
        );
    }

    #[test]
    fn a_zero_minimum_age_uses_even_a_file_modified_in_the_future() {
        let listing = Listing {
            files: vec![listed(
                "Curr_Lic_Eds_End_Limits_20261130.csv",
                "2026-11-30T12:05:00Z",
            )],
            ignored: vec![],
        };
        let choice = choose_newest(listing, now(), Duration::ZERO);
        assert_eq!(
            chosen_name(&choice),
            Some("Curr_Lic_Eds_End_Limits_20261130.csv")
        );
    }

    #[test]
    fn an_empty_listing_chooses_nothing_and_keeps_the_ignored_entries() {
        let ignored = vec![IgnoredEntry {
            name: "Curr_Lic_Eds_End_Limits_latest.csv".into(),
            reason: IgnoreReason::NotAlisName(FileNameError::Datestamp("latest".into())),
        }];
        let choice = choose_newest(
            Listing {
                files: vec![],
                ignored: ignored.clone(),
            },
            now(),
            MINUTE,
        );
        assert_eq!(choice.chosen, None);
        assert_eq!(choice.ignored, ignored);
    }

    #[test]
    fn a_huge_minimum_age_makes_every_file_too_young() {
        let listing = Listing {
            files: vec![listed(
                "Curr_Lic_Eds_End_Limits_20000101.csv",
                "2000-01-01T00:00:00Z",
            )],
            ignored: vec![],
        };
        let choice = choose_newest(listing, now(), Duration::MAX);
        assert_eq!(choice.chosen, None);
        assert_eq!(choice.ignored.len(), 1);
    }

    #[test]
    fn ignore_reasons_read_as_a_run_log_line() {
        let reason = IgnoreReason::NotAlisName(FileNameError::Datestamp("latest".into()));
        assert_eq!(
            reason.to_string(),
            "not an ALiS file name: `latest` after the prefix is not a datestamp \
             (YYYYMMDD, YYYYMMDDHHMMSS or YYYYMMDD_HHMMSS)"
        );
    }

    #[test]
    fn a_fetched_file_shows_its_sha256_in_lowercase_hex() {
        let fetched = FetchedFile {
            name: "Curr_Lic_Eds_End_Limits_20261130.csv".parse().unwrap(),
            path: PathBuf::from("x"),
            size: 0,
            sha256: [0xAB; 32],
        };
        assert_eq!(fetched.sha256_hex(), "ab".repeat(32));
    }
}
