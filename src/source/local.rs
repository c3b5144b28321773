//! A local directory as the source of ALiS files: the embedded default
//! (`./data/inbox/`) and manual drops.
//!
//! It follows the same rules as the SFTP source will, so that what works against a
//! folder on a laptop works against the state's server: only regular files with an
//! ALiS name count, symbolic links are not followed, and a download is a copy through
//! a temporary name whose size and SHA-256 are checked before it takes its final name.
//!
//! The work is blocking file I/O, done on tokio's blocking pool inside the caller's
//! tracing span: one hop per call rather than one per read, and hashing while
//! copying needs the bytes in hand anyway.

use std::fs::{self, File, FileType};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use jiff::Timestamp;
use sha2::{Digest, Sha256};
use tracing::Span;
use tracing::field::Empty;

use super::{
    AlisFileName, FetchedFile, IgnoreReason, IgnoredEntry, ListedFile, Listing, SourceError,
};

/// Bytes read and hashed at a time while copying.
const COPY_BUFFER: usize = 64 * 1024;

/// A directory on this machine holding ALiS files (not its subdirectories).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDirSource {
    /// The directory that is listed. Relative paths are relative to the service's
    /// working directory.
    pub dir: PathBuf,
}

impl LocalDirSource {
    /// A source reading `dir`. Nothing is checked until the first listing, so a
    /// missing directory is reported by the run that needs it.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory that is listed.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Lists the directory (not recursively): regular files with an ALiS name become
    /// [`Listing::files`], oldest first; everything else is in [`Listing::ignored`]
    /// with the reason, sorted by name.
    #[tracing::instrument(
        name = "list_local_dir",
        skip_all,
        fields(dir = %self.dir.display(), files = Empty, ignored = Empty),
        err
    )]
    pub async fn list(&self) -> Result<Listing, SourceError> {
        let dir = self.dir.clone();
        let span = Span::current();
        let listing =
            tokio::task::spawn_blocking(move || span.in_scope(|| list_dir(&dir))).await??;
        let span = Span::current();
        span.record("files", listing.files.len() as i64);
        span.record("ignored", listing.ignored.len() as i64);
        Ok(listing)
    }

    /// Copies `file` into `dest_dir` (see [`super::FileSource::download`]).
    ///
    /// The copy is written under a hidden temporary name (`.partial-…`, never an ALiS
    /// name) that is removed on any failure, hashed while it is written, checked
    /// against the listing (same size, same modification time: otherwise the file
    /// changed while being read), flushed to disk, and only then renamed to its final
    /// name, replacing any earlier copy of that name.
    #[tracing::instrument(
        name = "download_local_file",
        skip_all,
        fields(name = %file.name, size = file.size as i64, sha256 = Empty),
        err
    )]
    pub async fn download(
        &self,
        file: &ListedFile,
        dest_dir: &Path,
    ) -> Result<FetchedFile, SourceError> {
        let source = self.dir.join(file.name.name());
        let listed = file.clone();
        let dest_dir = dest_dir.to_owned();
        let span = Span::current();
        let fetched = tokio::task::spawn_blocking(move || {
            span.in_scope(|| copy_verified(&source, &listed, &dest_dir))
        })
        .await??;
        Span::current().record("sha256", fetched.sha256_hex());
        Ok(fetched)
    }
}

fn list_dir(dir: &Path) -> Result<Listing, SourceError> {
    let list_error = |source| SourceError::ListFolder {
        dir: dir.to_owned(),
        source,
    };
    let mut listing = Listing::default();
    for entry in fs::read_dir(dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        match classify(&entry)? {
            Ok(file) => listing.files.push(file),
            Err(ignored) => listing.ignored.push(ignored),
        }
    }
    // The directory's order is arbitrary; the run log should not be.
    listing.files.sort_by(|a, b| a.name.cmp(&b.name));
    listing.ignored.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listing)
}

/// One directory entry: a recognised file, an ignored entry, or an error that must
/// fail the listing (an unreadable entry might be the newest file; guessing without it
/// could import an older one).
fn classify(entry: &fs::DirEntry) -> Result<Result<ListedFile, IgnoredEntry>, SourceError> {
    let raw_name = entry.file_name();
    let Some(name) = raw_name.to_str() else {
        return Ok(Err(IgnoredEntry {
            name: raw_name.to_string_lossy().into_owned(),
            reason: IgnoreReason::NameNotUtf8,
        }));
    };
    let ignore = |reason| {
        Ok(Err(IgnoredEntry {
            name: name.to_owned(),
            reason,
        }))
    };
    let metadata_error = |source| SourceError::Metadata {
        name: name.to_owned(),
        source,
    };
    // `DirEntry::file_type` and `DirEntry::metadata` do not follow symbolic links.
    let file_type = match entry.file_type() {
        Ok(file_type) => file_type,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return ignore(IgnoreReason::Vanished),
        Err(e) => return Err(metadata_error(e)),
    };
    if let Some(reason) = not_a_regular_file(file_type) {
        return ignore(reason);
    }
    let alis_name = match name.parse::<AlisFileName>() {
        Ok(alis_name) => alis_name,
        Err(e) => return ignore(IgnoreReason::NotAlisName(e)),
    };
    let metadata = match entry.metadata() {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return ignore(IgnoreReason::Vanished),
        Err(e) => return Err(metadata_error(e)),
    };
    // Replaced by something else since the directory was read.
    if let Some(reason) = not_a_regular_file(metadata.file_type()) {
        return ignore(reason);
    }
    let modified = metadata
        .modified()
        .and_then(to_timestamp)
        .map_err(metadata_error)?;
    Ok(Ok(ListedFile {
        name: alis_name,
        size: metadata.len(),
        modified,
    }))
}

fn not_a_regular_file(file_type: FileType) -> Option<IgnoreReason> {
    if file_type.is_symlink() {
        Some(IgnoreReason::Symlink)
    } else if file_type.is_dir() {
        Some(IgnoreReason::Directory)
    } else if !file_type.is_file() {
        Some(IgnoreReason::NotRegularFile)
    } else {
        None
    }
}

fn to_timestamp(time: SystemTime) -> io::Result<Timestamp> {
    Timestamp::try_from(time).map_err(io::Error::other)
}

fn copy_verified(
    source: &Path,
    listed: &ListedFile,
    dest_dir: &Path,
) -> Result<FetchedFile, SourceError> {
    let name = &listed.name;
    let open_error = |source| SourceError::Open {
        name: name.clone(),
        source,
    };
    let read_error = |source| SourceError::Read {
        name: name.clone(),
        source,
    };
    let write_error = |source| SourceError::Write {
        name: name.clone(),
        dest_dir: dest_dir.to_owned(),
        source,
    };

    // Do not follow a link that took the file's place since the listing. (A swap
    // between this check and the open remains possible; for a folder on this machine,
    // written by its own operators, that is accepted.)
    if !fs::symlink_metadata(source).map_err(open_error)?.is_file() {
        return Err(SourceError::NoLongerRegularFile { name: name.clone() });
    }
    let input = File::open(source).map_err(open_error)?;

    // Removed on drop, so every early return below cleans up after itself.
    let mut temp = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(dest_dir)
        .map_err(write_error)?;
    let mut hasher = Sha256::new();
    // One byte more than listed is enough to know the file grew; reading stops there
    // rather than following a file that keeps growing.
    let mut reader = (&input).take(listed.size.saturating_add(1));
    let mut buffer = vec![0; COPY_BUFFER];
    let mut read: u64 = 0;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        };
        let chunk = &buffer[..n];
        hasher.update(chunk);
        temp.write_all(chunk).map_err(write_error)?;
        read += n as u64;
    }
    if read != listed.size {
        return Err(SourceError::SizeChanged {
            name: name.clone(),
            listed: listed.size,
            read,
        });
    }
    let modified = input
        .metadata()
        .and_then(|m| m.modified())
        .and_then(to_timestamp)
        .map_err(read_error)?;
    if modified != listed.modified {
        return Err(SourceError::ModifiedWhileReading {
            name: name.clone(),
            listed: listed.modified,
            now: modified,
        });
    }

    // On disk before it has its final name, so a crash cannot leave a complete-looking
    // name over incomplete data.
    temp.as_file().sync_all().map_err(write_error)?;
    let path = dest_dir.join(name.name());
    temp.persist(&path).map_err(|e| write_error(e.error))?;
    Ok(FetchedFile {
        name: name.clone(),
        path,
        size: read,
        sha256: hasher.finalize().into(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tempfile::TempDir;

    use super::*;
    use crate::source::{FileNameError, FileSource, choose_newest};

    const HOUR: Duration = Duration::from_secs(3600);

    /// Writes `bytes` to `dir/name` and sets its modification time.
    fn put(dir: &Path, name: &str, bytes: &[u8], modified: SystemTime) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        set_modified(&path, modified);
        path
    }

    fn set_modified(path: &Path, modified: SystemTime) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
    }

    fn an_hour_ago() -> SystemTime {
        SystemTime::now() - HOUR
    }

    fn names(files: &[ListedFile]) -> Vec<&str> {
        files.iter().map(|f| f.name.name()).collect()
    }

    fn entries_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    async fn list(dir: &Path) -> Listing {
        LocalDirSource::new(dir).list().await.unwrap()
    }

    async fn listed(dir: &Path, name: &str) -> ListedFile {
        list(dir)
            .await
            .files
            .into_iter()
            .find(|f| f.name.name() == name)
            .unwrap()
    }

    #[tokio::test]
    async fn lists_only_recognised_names_and_reports_near_misses_as_ignored() {
        let inbox = TempDir::new().unwrap();
        let dir = inbox.path();
        let old = an_hour_ago();
        for name in [
            "Curr_Lic_Eds_End_Limits_20261127.csv",
            "Curr_Lic_Eds_End_Limits_20261128_060000.TXT",
            "Curr_Lic_Eds_End_Limits_20261129",
            "Curr_Lic_Eds_End_Limits_latest.csv",
            "Curr_Lic_Eds_End_Limits_20261399.csv",
            "curr_lic_eds_end_limits_20261127.csv",
            "Curr_Lic_Eds_End_Limits_20261127.csv.bak",
            "Curr_Lic_Eds_End_Limits_20261127.xlsx",
            "Curr_Lic_Eds_End_Limits_2026\\1127.csv",
            "Curr_Lic_Eds_End_Limits_20261127\n.csv",
        ] {
            put(dir, name, b"EducatorID\n", old);
        }
        fs::create_dir(dir.join("Curr_Lic_Eds_End_Limits_20261201.csv")).unwrap();
        std::os::unix::fs::symlink(
            dir.join("Curr_Lic_Eds_End_Limits_20261127.csv"),
            dir.join("Curr_Lic_Eds_End_Limits_20261202.csv"),
        )
        .unwrap();
        {
            use std::os::unix::ffi::OsStrExt;
            let not_utf8 = std::ffi::OsStr::from_bytes(b"Curr_Lic_Eds_End_Limits_\xff.csv");
            fs::write(dir.join(not_utf8), b"").unwrap();
        }

        let listing = list(dir).await;

        assert_eq!(
            names(&listing.files),
            [
                "Curr_Lic_Eds_End_Limits_20261127.csv",
                "Curr_Lic_Eds_End_Limits_20261128_060000.TXT",
                "Curr_Lic_Eds_End_Limits_20261129",
            ]
        );
        let ignored: Vec<(&str, &IgnoreReason)> = listing
            .ignored
            .iter()
            .map(|e| (e.name.as_str(), &e.reason))
            .collect();
        assert_eq!(
            ignored,
            [
                (
                    "Curr_Lic_Eds_End_Limits_20261127\n.csv",
                    &IgnoreReason::NotAlisName(FileNameError::ControlCharacter)
                ),
                (
                    "Curr_Lic_Eds_End_Limits_20261127.csv.bak",
                    &IgnoreReason::NotAlisName(FileNameError::Extension("csv.bak".into()))
                ),
                (
                    "Curr_Lic_Eds_End_Limits_20261127.xlsx",
                    &IgnoreReason::NotAlisName(FileNameError::Extension("xlsx".into()))
                ),
                (
                    "Curr_Lic_Eds_End_Limits_20261201.csv",
                    &IgnoreReason::Directory
                ),
                (
                    "Curr_Lic_Eds_End_Limits_20261202.csv",
                    &IgnoreReason::Symlink
                ),
                (
                    "Curr_Lic_Eds_End_Limits_20261399.csv",
                    &IgnoreReason::NotAlisName(FileNameError::NotADate("20261399".into()))
                ),
                (
                    "Curr_Lic_Eds_End_Limits_2026\\1127.csv",
                    &IgnoreReason::NotAlisName(FileNameError::PathSeparator)
                ),
                (
                    "Curr_Lic_Eds_End_Limits_latest.csv",
                    &IgnoreReason::NotAlisName(FileNameError::Datestamp("latest".into()))
                ),
                (
                    "Curr_Lic_Eds_End_Limits_\u{fffd}.csv",
                    &IgnoreReason::NameNotUtf8
                ),
                (
                    "curr_lic_eds_end_limits_20261127.csv",
                    &IgnoreReason::NotAlisName(FileNameError::PrefixCase)
                ),
            ]
        );
    }

    #[tokio::test]
    async fn a_listed_file_carries_its_size_and_modification_time() {
        let inbox = TempDir::new().unwrap();
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        put(
            inbox.path(),
            "Curr_Lic_Eds_End_Limits_20261127.csv",
            b"0123456789",
            modified,
        );

        let file = listed(inbox.path(), "Curr_Lic_Eds_End_Limits_20261127.csv").await;

        assert_eq!(file.size, 10);
        assert_eq!(
            file.modified,
            Timestamp::from_second(1_795_000_000).unwrap()
        );
    }

    #[tokio::test]
    async fn the_newest_file_is_chosen_across_date_and_time_variants() {
        let inbox = TempDir::new().unwrap();
        for name in [
            "Curr_Lic_Eds_End_Limits_20261126_235959.csv",
            "Curr_Lic_Eds_End_Limits_20261127.csv",
            "Curr_Lic_Eds_End_Limits_20261127075959.txt",
            "Curr_Lic_Eds_End_Limits_20261127_080000",
            "Curr_Lic_Eds_End_Limits_20261127.TXT",
        ] {
            put(inbox.path(), name, b"x", an_hour_ago());
        }

        let choice = choose_newest(list(inbox.path()).await, Timestamp::now(), HOUR / 2);

        assert_eq!(
            choice.chosen.map(|f| f.name.name().to_owned()).as_deref(),
            Some("Curr_Lic_Eds_End_Limits_20261127_080000")
        );
        assert!(choice.ignored.is_empty());
    }

    #[tokio::test]
    async fn a_file_still_being_written_is_skipped_for_the_previous_one() {
        let inbox = TempDir::new().unwrap();
        put(
            inbox.path(),
            "Curr_Lic_Eds_End_Limits_20261127.csv",
            b"x",
            an_hour_ago(),
        );
        put(
            inbox.path(),
            "Curr_Lic_Eds_End_Limits_20261130.csv",
            b"x",
            SystemTime::now() - Duration::from_secs(5),
        );

        let choice = choose_newest(list(inbox.path()).await, Timestamp::now(), HOUR / 2);

        assert_eq!(
            choice.chosen.map(|f| f.name.name().to_owned()).as_deref(),
            Some("Curr_Lic_Eds_End_Limits_20261127.csv")
        );
        assert_eq!(choice.ignored.len(), 1);
        assert_eq!(
            choice.ignored[0].name,
            "Curr_Lic_Eds_End_Limits_20261130.csv"
        );
        assert!(
            matches!(choice.ignored[0].reason, IgnoreReason::TooYoung { .. }),
            "{:?}",
            choice.ignored[0].reason
        );
        assert!(
            choice.ignored[0]
                .reason
                .to_string()
                .contains("still being written"),
        );
    }

    #[tokio::test]
    async fn a_missing_folder_is_an_error_naming_it() {
        let inbox = TempDir::new().unwrap();
        let missing = inbox.path().join("nope");

        let error = LocalDirSource::new(&missing).list().await.unwrap_err();

        assert!(matches!(error, SourceError::ListFolder { .. }), "{error:?}");
        assert!(error.to_string().contains(&*missing.to_string_lossy()));
    }

    #[tokio::test]
    async fn a_download_is_a_complete_copy_with_its_sha256_and_size() {
        let inbox = TempDir::new().unwrap();
        let dest = TempDir::new().unwrap();
        let name = "Curr_Lic_Eds_End_Limits_20261127.csv";
        // Larger than the copy buffer, and not a multiple of it.
        let bytes: Vec<u8> = (0..200_003u32).map(|i| (i % 251) as u8).collect();
        put(inbox.path(), name, &bytes, an_hour_ago());
        let source = FileSource::Local(LocalDirSource::new(inbox.path()));
        let file = source.list().await.unwrap().files.remove(0);

        let fetched = source.download(&file, dest.path()).await.unwrap();

        assert_eq!(fetched.name, file.name);
        assert_eq!(fetched.path, dest.path().join(name));
        assert_eq!(fetched.size, bytes.len() as u64);
        assert_eq!(fetched.sha256, <[u8; 32]>::from(Sha256::digest(&bytes)));
        assert_eq!(fs::read(&fetched.path).unwrap(), bytes);
        let mut reopened = Vec::new();
        fetched.open().unwrap().read_to_end(&mut reopened).unwrap();
        assert_eq!(reopened, bytes);
        assert_eq!(entries_in(dest.path()), [name]);
    }

    #[tokio::test]
    async fn an_empty_file_downloads_with_the_sha256_of_nothing() {
        let inbox = TempDir::new().unwrap();
        let dest = TempDir::new().unwrap();
        let name = "Curr_Lic_Eds_End_Limits_20261127.csv";
        put(inbox.path(), name, b"", an_hour_ago());
        let file = listed(inbox.path(), name).await;

        let fetched = LocalDirSource::new(inbox.path())
            .download(&file, dest.path())
            .await
            .unwrap();

        assert_eq!(fetched.size, 0);
        assert_eq!(
            fetched.sha256_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[tokio::test]
    async fn a_download_replaces_an_earlier_copy_of_the_same_name() {
        let inbox = TempDir::new().unwrap();
        let dest = TempDir::new().unwrap();
        let name = "Curr_Lic_Eds_End_Limits_20261127.csv";
        put(inbox.path(), name, b"new contents", an_hour_ago());
        fs::write(dest.path().join(name), b"stale").unwrap();
        let file = listed(inbox.path(), name).await;

        let fetched = LocalDirSource::new(inbox.path())
            .download(&file, dest.path())
            .await
            .unwrap();

        assert_eq!(fs::read(&fetched.path).unwrap(), b"new contents");
        assert_eq!(entries_in(dest.path()), [name]);
    }

    #[tokio::test]
    async fn a_file_that_grew_after_listing_is_refused_and_nothing_is_kept() {
        let inbox = TempDir::new().unwrap();
        let dest = TempDir::new().unwrap();
        let name = "Curr_Lic_Eds_End_Limits_20261127.csv";
        let path = put(inbox.path(), name, b"first part", an_hour_ago());
        let file = listed(inbox.path(), name).await;
        File::options()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b", second part")
            .unwrap();

        let error = LocalDirSource::new(inbox.path())
            .download(&file, dest.path())
            .await
            .unwrap_err();

        assert!(
            matches!(
                error,
                SourceError::SizeChanged {
                    listed: 10,
                    read: 11,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("changed while being read"));
        assert!(entries_in(dest.path()).is_empty());
    }

    #[tokio::test]
    async fn a_file_that_shrank_after_listing_is_refused() {
        let inbox = TempDir::new().unwrap();
        let dest = TempDir::new().unwrap();
        let name = "Curr_Lic_Eds_End_Limits_20261127.csv";
        let path = put(inbox.path(), name, b"0123456789", an_hour_ago());
        let file = listed(inbox.path(), name).await;
        fs::write(&path, b"0123").unwrap();

        let error = LocalDirSource::new(inbox.path())
            .download(&file, dest.path())
            .await
            .unwrap_err();

        assert!(
            matches!(
                error,
                SourceError::SizeChanged {
                    listed: 10,
                    read: 4,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(entries_in(dest.path()).is_empty());
    }

    #[tokio::test]
    async fn a_file_rewritten_at_the_same_size_is_refused() {
        let inbox = TempDir::new().unwrap();
        let dest = TempDir::new().unwrap();
        let name = "Curr_Lic_Eds_End_Limits_20261127.csv";
        let path = put(inbox.path(), name, b"0123456789", an_hour_ago());
        let file = listed(inbox.path(), name).await;
        fs::write(&path, b"9876543210").unwrap();
        set_modified(&path, an_hour_ago() + Duration::from_secs(1800));

        let error = LocalDirSource::new(inbox.path())
            .download(&file, dest.path())
            .await
            .unwrap_err();

        assert!(
            matches!(error, SourceError::ModifiedWhileReading { .. }),
            "{error:?}"
        );
        assert!(entries_in(dest.path()).is_empty());
    }

    #[tokio::test]
    async fn a_file_removed_after_listing_cannot_be_opened() {
        let inbox = TempDir::new().unwrap();
        let dest = TempDir::new().unwrap();
        let name = "Curr_Lic_Eds_End_Limits_20261127.csv";
        let path = put(inbox.path(), name, b"x", an_hour_ago());
        let file = listed(inbox.path(), name).await;
        fs::remove_file(&path).unwrap();

        let error = LocalDirSource::new(inbox.path())
            .download(&file, dest.path())
            .await
            .unwrap_err();

        assert!(matches!(error, SourceError::Open { .. }), "{error:?}");
        assert!(entries_in(dest.path()).is_empty());
    }

    #[tokio::test]
    async fn a_file_replaced_by_a_symlink_after_listing_is_not_followed() {
        let inbox = TempDir::new().unwrap();
        let elsewhere = TempDir::new().unwrap();
        let dest = TempDir::new().unwrap();
        let name = "Curr_Lic_Eds_End_Limits_20261127.csv";
        let path = put(inbox.path(), name, b"x", an_hour_ago());
        let file = listed(inbox.path(), name).await;
        let target = put(elsewhere.path(), "secret", b"y", an_hour_ago());
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();

        let error = LocalDirSource::new(inbox.path())
            .download(&file, dest.path())
            .await
            .unwrap_err();

        assert!(
            matches!(error, SourceError::NoLongerRegularFile { .. }),
            "{error:?}"
        );
        assert!(entries_in(dest.path()).is_empty());
    }

    #[tokio::test]
    async fn a_missing_destination_is_a_write_error() {
        let inbox = TempDir::new().unwrap();
        let dest = TempDir::new().unwrap();
        let name = "Curr_Lic_Eds_End_Limits_20261127.csv";
        put(inbox.path(), name, b"x", an_hour_ago());
        let file = listed(inbox.path(), name).await;

        let error = LocalDirSource::new(inbox.path())
            .download(&file, &dest.path().join("missing"))
            .await
            .unwrap_err();

        assert!(matches!(error, SourceError::Write { .. }), "{error:?}");
    }
}
