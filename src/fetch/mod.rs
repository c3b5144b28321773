//! The fetch step: which ALiS file a run uses, as a verified local copy (rules §1.2,
//! design §7), over any [`FileSource`] and the file cache in the database.
//!
//! 1. List the source. Entries that are not ALiS files are never downloaded; each is
//!    noted in the run log (past [`MAX_IGNORED_LINES`], one line counts the rest).
//!    Files modified less than [`FetchSettings::min_age`] ago are still being written
//!    and are skipped ([`choose_newest`]).
//! 2. Take the newest recognised file. Refuse it, before downloading, when it is larger
//!    than [`FetchSettings::max_file_size`].
//! 3. If the cache already holds it (see below), copy the cached bytes out; otherwise
//!    download it (the source writes a temporary name, checks the size, hashes, then
//!    renames) and store it in the cache, which keeps the three newest files. The
//!    worker stores it while the import parses ([`begin_fetch`], [`PendingCache`]),
//!    and the import takes the lock only after it is stored.
//! 4. If the source holds no usable ALiS file, use the newest cached file, and say so in
//!    the run log and in [`Fetched::notes`] for the report. If the cache is empty too,
//!    the run fails with [`FetchError::NoFile`] ("no ALiS file found").
//! 5. A failure to list or download is returned as it is: it is not "no file", and it
//!    never falls back to the cache (rules §1.2 step 5). It is written to the run log,
//!    and, when it is a connection failure, to the connection events.
//!
//! # When the cached copy is reused
//!
//! Rules §1.2 reuse a cached file with "the same name and the same SHA-256". A listing
//! does not give the SHA-256: SFTP has no standard way to ask a server for a file's
//! hash (OpenSSH's server offers none), and hashing on our side means reading every
//! byte, which is the download the cache exists to save. So "the same file" is decided
//! from what a listing does give:
//!
//! - **Reuse** when the cache holds an entry of that name whose size and source
//!   modification time equal the listing's. The modification time compared is the one
//!   the *listing* showed when the file was downloaded, stored with the entry (to the
//!   microsecond), not the time it was stored: the server's clock is compared only with
//!   itself, so a skew between the server and this service cannot make a changed file
//!   look unchanged. The cached bytes are checked against the SHA-256 stored with them
//!   before use, so the run reads exactly the bytes whose SHA-256 the report shows.
//! - **Download** otherwise, and store the result under its name, replacing the entry
//!   of that name (the run log says whether the contents had changed or only the
//!   modification time).
//!
//! A file rewritten in place gets a new modification time from the server, and a file
//! modified within the minimum age is not used at all, so reuse can be wrong only if a
//! writer rewrites the file at exactly the same size *and* sets its modification time
//! back to the old value, to the precision the server reports (a second over SFTP).
//! That is the quick check `rsync` and `make` rely on. Downloading every time and
//! comparing hashes was the alternative: a full transfer from the state's server on
//! every run, for a cache that would then save nothing but a database write.
//!
//! An unusable cached copy (damaged bytes, or pruned by another replica while being
//! read) is not reused: the file is downloaded again, and the download replaces it.
//!
//! # Layout
//!
//! - this file: the steps above, over a [`FileSource`] and a [`Store`].
//! - `error`: [`FetchError`], one variant per cause.
//! - `run_log`: [`RunLog`], the seam through which the caller's run log receives
//!   the step's lines.
//! - `local_copy`: reading the downloaded copy back, writing a cached copy out.

mod error;
mod local_copy;
mod run_log;

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use tracing::Span;
use tracing::field::Empty;

pub use error::FetchError;
pub use run_log::{RunLog, RunLogLevel};

use crate::source::{
    FetchedFile, FileSource, IgnoredEntry, ListedFile, SourceError, choose_newest,
};
use crate::store::{
    CACHE_KEEP, CachedFile, NewCachedFile, NewConnectionEvent, Store, to_microsecond,
};
use local_copy::{read_back, write_out};

/// Entries not used that are noted one line each; the rest get one line with a count,
/// so that a folder full of other files does not bury the run log.
pub const MAX_IGNORED_LINES: usize = 20;

/// How the fetch step decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSettings {
    /// A file modified less than this long ago is still being written and is not used.
    /// Zero turns the check off.
    pub min_age: Duration,
    /// A file larger than this (in bytes, as listed) is refused without being
    /// downloaded. The file passes through memory on its way into the cache.
    pub max_file_size: u64,
}

impl Default for FetchSettings {
    /// Two minutes, 256 MiB: a statewide export is about 9 MB.
    fn default() -> Self {
        Self {
            min_age: Duration::from_secs(120),
            max_file_size: 256 * 1024 * 1024,
        }
    }
}

/// The file a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// A complete, verified local copy in the work directory, for the parser.
    pub file: FetchedFile,
    /// Whether its bytes came from the file cache (reused or fallen back to) rather
    /// than from the source in this run.
    pub from_cache: bool,
    /// Sentences for the report, e.g. that the folder held no ALiS file and the newest
    /// cached one was used. Empty when there is nothing to remark.
    pub notes: Vec<String>,
}

/// Chooses, gets and caches the file a run uses (rules §1.2; see the module doc):
/// returns a verified local copy in `work_dir` (which must exist and belongs to the
/// caller), whether it came from the cache, and notes for the report.
///
/// `now` is the run's clock: files modified less than `settings.min_age` before it
/// are skipped, and it is the cache entry's `stored_at`.
///
/// Every decision is written to `log`; so is a failure, so the caller need not log
/// the returned error again.
pub async fn fetch_file(
    source: &FileSource,
    store: &Store,
    work_dir: &Path,
    now: Timestamp,
    settings: &FetchSettings,
    log: &impl RunLog,
) -> Result<Fetched, FetchError> {
    let (fetched, cache) = begin_fetch(source, store, work_dir, now, settings, log).await?;
    if let Some(cache) = cache {
        cache.store(store, log).await?;
    }
    Ok(fetched)
}

/// [`fetch_file`] up to the local copy: what a download leaves to store in the file
/// cache is returned as a [`PendingCache`], for the caller to store while it reads the
/// copy. The worker does so alongside the parse, and lets the import take the lock
/// only once the file is cached, so that a run whose file could not be cached still
/// writes nothing (BENCHMARKS.md: writing a 200 MB file into the cache took longer
/// than downloading it).
#[tracing::instrument(
    name = "fetch",
    skip_all,
    fields(source = %source, file = Empty, from_cache = Empty, listed = Empty, ignored = Empty),
    err
)]
pub async fn begin_fetch(
    source: &FileSource,
    store: &Store,
    work_dir: &Path,
    now: Timestamp,
    settings: &FetchSettings,
    log: &impl RunLog,
) -> Result<(Fetched, Option<PendingCache>), FetchError> {
    let step = Fetch {
        source,
        store,
        work_dir,
        now,
        settings,
        log,
    };
    match step.run().await {
        Ok((fetched, cache)) => {
            let span = Span::current();
            span.record("file", fetched.file.name.name());
            span.record("from_cache", fetched.from_cache);
            Ok((fetched, cache))
        }
        Err(error) => Err(step.failed(error).await),
    }
}

/// A downloaded file still to be stored in the file cache (see [`begin_fetch`]).
#[derive(Debug)]
#[must_use = "the downloaded file is not cached until `store` is awaited"]
pub struct PendingCache {
    copy: FetchedFile,
    source_modified: Timestamp,
    stored_at: Timestamp,
    /// The cache's entry of the same name before the download, if any.
    previous: Option<CachedFile>,
    /// Whether that entry was found unusable (and so downloaded again).
    unusable: bool,
}

impl PendingCache {
    /// Stores the downloaded copy in the file cache, which keeps the newest
    /// [`CACHE_KEEP`] files, after checking it still has the SHA-256 it was downloaded
    /// with. A failure is written to the run log too.
    #[tracing::instrument(name = "cache_write", skip_all, fields(file = self.copy.name.name()), err)]
    pub async fn store(self, store: &Store, log: &impl RunLog) -> Result<(), FetchError> {
        let result = self.store_unlogged(store, log).await;
        if let Err(error) = &result
            && let Err(log_error) = log.append(RunLogLevel::Error, &error.to_string()).await
        {
            tracing::error!(error = %log_error, "cannot write the cache failure to the run log");
        }
        result
    }

    async fn store_unlogged(&self, store: &Store, log: &impl RunLog) -> Result<(), FetchError> {
        let copy = &self.copy;
        let bytes = read_back(copy).await?;
        let put = store
            .cache_put(&NewCachedFile {
                name: &copy.name,
                sha256: &copy.sha256,
                source_modified: self.source_modified,
                stored_at: self.stored_at,
                bytes: &bytes,
            })
            .await?;
        drop(bytes);
        let replaced = match &self.previous {
            None => String::new(),
            Some(_) if self.unusable => " (replacing the unusable cached copy)".to_owned(),
            Some(old) if old.sha256 == copy.sha256_hex() => " (it was cached already with \
                the same contents; only its modification time had changed)"
                .to_owned(),
            Some(old) => format!(
                " (replacing the cached copy of the same name, SHA-256 {}: the file was \
                 changed in the source)",
                old.sha256
            ),
        };
        let info = |message: String| async move {
            log.append(RunLogLevel::Info, &message)
                .await
                .map_err(FetchError::RunLog)
        };
        info(format!(
            "downloaded {:?}: {} bytes, SHA-256 {}; stored in the file cache{replaced}",
            copy.name.name(),
            copy.size,
            copy.sha256_hex()
        ))
        .await?;
        if !put.pruned.is_empty() {
            let names: Vec<String> = put.pruned.iter().map(|n| format!("{n:?}")).collect();
            info(format!(
                "removed from the file cache, which keeps the {CACHE_KEEP} newest files: {}",
                names.join(", ")
            ))
            .await?;
        }
        Ok(())
    }
}

/// One fetch: its inputs, so the steps below need not pass them around.
struct Fetch<'a, L> {
    source: &'a FileSource,
    store: &'a Store,
    work_dir: &'a Path,
    now: Timestamp,
    settings: &'a FetchSettings,
    log: &'a L,
}

impl<L: RunLog> Fetch<'_, L> {
    async fn run(&self) -> Result<(Fetched, Option<PendingCache>), FetchError> {
        let listing = self.source.list().await.map_err(|cause| FetchError::List {
            location: self.source.to_string(),
            cause: Box::new(cause),
        })?;
        let listed = listing.files.len();
        self.info(&format!(
            "listed {}: {listed} ALiS file(s), {} other entr{}",
            self.source,
            listing.ignored.len(),
            if listing.ignored.len() == 1 {
                "y"
            } else {
                "ies"
            }
        ))
        .await?;
        let choice = choose_newest(listing, self.now, self.settings.min_age);
        let span = Span::current();
        span.record("listed", listed as i64);
        span.record("ignored", choice.ignored.len() as i64);
        self.note_ignored(&choice.ignored).await?;
        match choice.chosen {
            Some(file) => self.take_from_source(file).await,
            // `choose_newest` passes over a recognised file only when it is too young,
            // so with none chosen, every listed one is still being written.
            None => Ok((self.fall_back_to_cache(listed).await?, None)),
        }
    }

    /// Reuses or downloads the newest file in the source.
    async fn take_from_source(
        &self,
        file: ListedFile,
    ) -> Result<(Fetched, Option<PendingCache>), FetchError> {
        if file.size > self.settings.max_file_size {
            return Err(FetchError::TooLarge {
                name: file.name,
                size: file.size,
                max: self.settings.max_file_size,
            });
        }
        self.info(&format!(
            "newest ALiS file: {:?}, {} bytes, modified {}",
            file.name.name(),
            file.size,
            file.modified
        ))
        .await?;

        let cached = self.store.cache_find(&file.name).await?;
        let mut unusable = false;
        if let Some(cached) = &cached
            && cached.size == file.size
            && cached.source_modified == to_microsecond(file.modified)
        {
            match self.reuse(cached).await {
                Ok(fetched) => return Ok((fetched, None)),
                Err(
                    error @ (FetchError::CachedCopyDamaged { .. }
                    | FetchError::CachedCopyGone { .. }),
                ) => {
                    unusable = true;
                    self.append(
                        RunLogLevel::Warn,
                        &format!("{error}; downloading {:?} again", file.name.name()),
                    )
                    .await?;
                }
                Err(error) => return Err(error),
            }
        }

        let copy = self
            .source
            .download(&file, self.work_dir)
            .await
            .map_err(|cause| FetchError::Download {
                name: file.name.clone(),
                cause: Box::new(cause),
            })?;
        let cache = PendingCache {
            copy: copy.clone(),
            source_modified: file.modified,
            stored_at: self.now,
            previous: cached,
            unusable,
        };
        let fetched = Fetched {
            file: copy,
            from_cache: false,
            notes: Vec::new(),
        };
        Ok((fetched, Some(cache)))
    }

    /// Uses the cached copy of the newest file, which the listing shows unchanged.
    async fn reuse(&self, cached: &CachedFile) -> Result<Fetched, FetchError> {
        let copy = self.restore(cached).await?;
        self.info(&format!(
            "{:?} is unchanged since it was cached at {} (same name, size and modification \
             time); used the cached copy, SHA-256 {}",
            cached.name.name(),
            cached.stored_at,
            cached.sha256
        ))
        .await?;
        Ok(Fetched {
            file: copy,
            from_cache: true,
            notes: vec![format!(
                "{} was unchanged since it was downloaded on {}; the cached copy was used",
                cached.name,
                cached.stored_at.strftime("%Y-%m-%d")
            )],
        })
    }

    /// Falls back to the newest cached file when the source holds no usable one.
    async fn fall_back_to_cache(&self, still_being_written: usize) -> Result<Fetched, FetchError> {
        let Some(cached) = self.store.cache_newest().await? else {
            return Err(FetchError::NoFile {
                location: self.source.to_string(),
                still_being_written,
            });
        };
        let copy = self.restore(&cached).await?;
        let why = match still_being_written {
            0 => format!("{} held no ALiS file", self.source),
            n => format!(
                "{} held no ALiS file old enough to use ({n} still being written)",
                self.source
            ),
        };
        let note = format!(
            "{why}; used the cached {} (downloaded {}, SHA-256 {})",
            cached.name, cached.stored_at, cached.sha256
        );
        self.append(RunLogLevel::Warn, &note).await?;
        Ok(Fetched {
            file: copy,
            from_cache: true,
            notes: vec![note],
        })
    }

    /// Copies a cached file's bytes into the work directory, after checking them
    /// against the size and SHA-256 stored with them.
    async fn restore(&self, cached: &CachedFile) -> Result<FetchedFile, FetchError> {
        let bytes =
            self.store
                .cache_read(cached.id)
                .await?
                .ok_or_else(|| FetchError::CachedCopyGone {
                    name: cached.name.clone(),
                })?;
        write_out(cached, bytes, self.work_dir).await
    }

    /// Notes every entry that is not used, up to [`MAX_IGNORED_LINES`] of them.
    async fn note_ignored(&self, ignored: &[IgnoredEntry]) -> Result<(), FetchError> {
        for entry in ignored.iter().take(MAX_IGNORED_LINES) {
            tracing::debug!(name = ?entry.name, reason = %entry.reason, "folder entry not used");
            self.info(&format!("{:?} not used: {}", entry.name, entry.reason))
                .await?;
        }
        if ignored.len() > MAX_IGNORED_LINES {
            self.info(&format!(
                "… and {} more entries not used (not ALiS files, or still being written)",
                ignored.len() - MAX_IGNORED_LINES
            ))
            .await?;
        }
        Ok(())
    }

    async fn info(&self, message: &str) -> Result<(), FetchError> {
        self.append(RunLogLevel::Info, message).await
    }

    async fn append(&self, level: RunLogLevel, message: &str) -> Result<(), FetchError> {
        self.log
            .append(level, message)
            .await
            .map_err(FetchError::RunLog)
    }

    /// Records a failure in the run log, and as a connection event when it is one;
    /// returns it. A failure to record it is traced, and the original error returned.
    async fn failed(&self, error: FetchError) -> FetchError {
        if let Err(log_error) = self
            .log
            .append(RunLogLevel::Error, &error.to_string())
            .await
        {
            tracing::error!(error = %log_error, "cannot write the fetch failure to the run log");
        }
        let cause = match &error {
            FetchError::List { cause, .. } | FetchError::Download { cause, .. } => cause,
            _ => return error,
        };
        if let Some((host, kind)) = connection_event(self.source, cause) {
            let detail = cause.to_string();
            let event = NewConnectionEvent {
                at: self.now,
                host: &host,
                kind,
                detail: &detail,
                run_id: self.log.run_id(),
            };
            if let Err(store_error) = self.store.record_connection_event(&event).await {
                tracing::error!(error = %store_error, "cannot record the connection event");
            }
        }
        error
    }
}

/// The connection event a source failure stands for, as `(host, kind)`.
///
/// A local directory has no connection, so none of its failures is one. The SFTP
/// source's arm maps `SourceError::Sftp(e)` to `(host, e.event_kind())`; the match on
/// the source makes adding a source without deciding this a compile error.
fn connection_event(source: &FileSource, cause: &SourceError) -> Option<(String, &'static str)> {
    match (source, cause) {
        (FileSource::Local(_), _) => None,
        (FileSource::Sftp(sftp), SourceError::Sftp(error)) => Some((
            format!("{}:{}", sftp.host(), sftp.port()),
            error.event_kind(),
        )),
        (FileSource::Sftp(_), _) => None,
    }
}
