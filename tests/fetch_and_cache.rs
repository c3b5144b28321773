//! The fetch step and the file cache (rules §1.2), against both store backends, with a
//! local-directory source in a temporary folder and the run's clock set by the test.

mod common;
mod support;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use alis_import::fetch::{
    FetchError, FetchSettings, Fetched, MAX_IGNORED_LINES, RunLog, RunLogLevel, fetch_file,
};
use alis_import::source::{AlisFileName, FileSource, LocalDirSource};
use alis_import::store::{
    CachedFile, ConnectionEventFilter, NewCachedFile, NewConnectionEvent, NewRun, StoreError,
};
use common::TestStore;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};
use support::{Backend, temp_dir};
use tempfile::TempDir;

on_both_backends!(
    the_newest_recognised_file_is_downloaded_and_cached,
    a_second_fetch_of_the_same_file_reuses_the_cached_copy,
    reuse_is_decided_by_name_size_and_modification_time,
    a_file_changed_in_the_source_is_downloaded_again_and_replaces_its_cached_copy,
    names_that_are_not_alis_files_are_ignored_and_logged,
    many_ignored_entries_are_summarised_in_one_line,
    a_file_still_being_written_is_skipped,
    an_empty_folder_falls_back_to_the_newest_cached_file,
    an_empty_folder_and_an_empty_cache_is_no_alis_file_found,
    a_folder_of_files_still_being_written_and_an_empty_cache_says_so,
    a_folder_that_cannot_be_listed_fails_without_falling_back,
    only_the_three_newest_files_stay_cached,
    a_file_over_the_maximum_size_is_refused_and_not_cached,
    cached_bytes_round_trip_exactly,
    a_damaged_cached_copy_is_downloaded_again_and_never_used,
    concurrent_stores_keep_the_three_newest_in_name_order,
    connection_events_round_trip,
);

/// The run's clock in every test.
fn now() -> Timestamp {
    "2026-11-30T12:00:00Z".parse().unwrap()
}

fn an_hour_ago() -> Timestamp {
    now() - SignedDuration::from_hours(1)
}

/// A run log that keeps its lines.
#[derive(Default)]
struct Lines(Mutex<Vec<(RunLogLevel, String)>>);

impl RunLog for Lines {
    fn run_id(&self) -> Option<i64> {
        None
    }

    async fn append(&self, level: RunLogLevel, message: &str) -> Result<(), StoreError> {
        self.0.lock().unwrap().push((level, message.to_owned()));
        Ok(())
    }
}

impl Lines {
    fn all(&self) -> Vec<(RunLogLevel, String)> {
        self.0.lock().unwrap().clone()
    }

    fn containing(&self, text: &str) -> Vec<(RunLogLevel, String)> {
        self.all()
            .into_iter()
            .filter(|(_, line)| line.contains(text))
            .collect()
    }
}

/// A database, an inbox folder as the source, and the run's settings.
struct Scenario {
    db: TestStore,
    inbox: TempDir,
    source: FileSource,
    settings: FetchSettings,
}

impl Scenario {
    async fn new(backend: Backend) -> Self {
        let inbox = temp_dir();
        let source = FileSource::Local(LocalDirSource::new(inbox.path()));
        Self {
            db: TestStore::new(backend).await,
            inbox,
            source,
            settings: FetchSettings {
                min_age: Duration::from_secs(60),
                max_file_size: 1024 * 1024,
            },
        }
    }

    /// Writes a file into the inbox with the given modification time.
    fn put(&self, name: &str, bytes: &[u8], modified: Timestamp) -> PathBuf {
        put(self.inbox.path(), name, bytes, modified)
    }

    /// Empties the inbox.
    fn clear_inbox(&self) {
        for entry in fs::read_dir(self.inbox.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                fs::remove_dir(&path).unwrap();
            } else {
                fs::remove_file(&path).unwrap();
            }
        }
    }

    /// Fetches into a fresh work directory (returned, so the copy outlives the call).
    async fn fetch(&self, log: &Lines) -> (Result<Fetched, FetchError>, TempDir) {
        let work = temp_dir();
        let result = fetch_file(
            &self.source,
            &self.db.store,
            work.path(),
            now(),
            &self.settings,
            log,
        )
        .await;
        (result, work)
    }

    async fn fetch_ok(&self) -> (Fetched, TempDir, Lines) {
        let log = Lines::default();
        let (result, work) = self.fetch(&log).await;
        let fetched = result.unwrap_or_else(|e| panic!("fetch failed: {e}; log: {:?}", log.all()));
        (fetched, work, log)
    }

    async fn fetch_err(&self) -> (FetchError, TempDir, Lines) {
        let log = Lines::default();
        let (result, work) = self.fetch(&log).await;
        match result {
            Ok(fetched) => panic!("fetch should fail, got {fetched:?}"),
            Err(error) => (error, work, log),
        }
    }

    async fn cache(&self) -> Vec<CachedFile> {
        self.db.store.cache_list().await.unwrap()
    }

    async fn cached_names(&self) -> Vec<String> {
        self.cache()
            .await
            .into_iter()
            .map(|c| c.name.name().to_owned())
            .collect()
    }
}

fn put(dir: &Path, name: &str, bytes: &[u8], modified: Timestamp) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    set_modified(&path, modified);
    path
}

fn set_modified(path: &Path, modified: Timestamp) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(modified.try_into().unwrap())
        .unwrap();
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn entries_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

const NOV_27: &str = "Curr_Lic_Eds_End_Limits_20261127.csv";
const NOV_28: &str = "Curr_Lic_Eds_End_Limits_20261128.csv";
const NOV_28_0600: &str = "Curr_Lic_Eds_End_Limits_20261128_060000.csv";
const NOV_30: &str = "Curr_Lic_Eds_End_Limits_20261130.csv";

async fn the_newest_recognised_file_is_downloaded_and_cached(backend: Backend) {
    let s = Scenario::new(backend).await;
    s.put(NOV_27, b"the 27th", an_hour_ago());
    s.put(NOV_28_0600, b"the 28th at six", an_hour_ago());
    s.put(NOV_28, b"the 28th", an_hour_ago());

    let (fetched, work, _log) = s.fetch_ok().await;

    assert_eq!(fetched.file.name.name(), NOV_28_0600);
    assert!(!fetched.from_cache);
    assert!(fetched.notes.is_empty(), "{:?}", fetched.notes);
    assert_eq!(fetched.file.path, work.path().join(NOV_28_0600));
    assert_eq!(fs::read(&fetched.file.path).unwrap(), b"the 28th at six");
    assert_eq!(entries_in(work.path()), [NOV_28_0600]);
    let cache = s.cache().await;
    assert_eq!(cache.len(), 1);
    assert_eq!(cache[0].name.name(), NOV_28_0600);
    assert_eq!(cache[0].sha256, sha256_hex(b"the 28th at six"));
    assert_eq!(cache[0].sha256, fetched.file.sha256_hex());
    assert_eq!(cache[0].size, 15);
    assert_eq!(cache[0].source_modified, an_hour_ago());
    assert_eq!(cache[0].stored_at, now());
}

async fn a_second_fetch_of_the_same_file_reuses_the_cached_copy(backend: Backend) {
    let s = Scenario::new(backend).await;
    s.put(NOV_28, b"the 28th", an_hour_ago());
    let (first, _work, _log) = s.fetch_ok().await;
    let cached_before = s.cache().await;

    let (second, work, log) = s.fetch_ok().await;

    assert!(second.from_cache);
    assert_eq!(second.file.name, first.file.name);
    assert_eq!(second.file.sha256, first.file.sha256);
    assert_eq!(second.file.path, work.path().join(NOV_28));
    assert_eq!(fs::read(&second.file.path).unwrap(), b"the 28th");
    assert_eq!(entries_in(work.path()), [NOV_28]);
    assert_eq!(second.notes.len(), 1, "{:?}", second.notes);
    assert!(
        second.notes[0].contains("cached copy"),
        "{:?}",
        second.notes
    );
    assert_eq!(
        s.cache().await,
        cached_before,
        "no new cache row, nothing rewritten"
    );
    assert_eq!(
        log.containing("used the cached copy").len(),
        1,
        "{:?}",
        log.all()
    );
}

async fn reuse_is_decided_by_name_size_and_modification_time(backend: Backend) {
    // The documented limit of the reuse rule: contents rewritten at the same size, with
    // the modification time set back, are not noticed. This shows the bytes of a reuse
    // come from the cache, not from the source.
    let s = Scenario::new(backend).await;
    let path = s.put(NOV_28, b"original", an_hour_ago());
    s.fetch_ok().await;
    fs::write(&path, b"REWRITTE").unwrap();
    set_modified(&path, an_hour_ago());

    let (fetched, _work, _log) = s.fetch_ok().await;

    assert!(fetched.from_cache);
    assert_eq!(fs::read(&fetched.file.path).unwrap(), b"original");
}

async fn a_file_changed_in_the_source_is_downloaded_again_and_replaces_its_cached_copy(
    backend: Backend,
) {
    let s = Scenario::new(backend).await;
    let path = s.put(NOV_28, b"first version", an_hour_ago());
    s.fetch_ok().await;
    let first = s.cache().await;
    fs::write(&path, b"corrected version").unwrap();
    set_modified(&path, an_hour_ago() + SignedDuration::from_mins(30));

    let (fetched, _work, log) = s.fetch_ok().await;

    assert!(!fetched.from_cache);
    assert_eq!(fs::read(&fetched.file.path).unwrap(), b"corrected version");
    let cache = s.cache().await;
    assert_eq!(cache.len(), 1, "one entry per name");
    assert_eq!(cache[0].sha256, sha256_hex(b"corrected version"));
    assert_eq!(cache[0].size, 17);
    assert_ne!(cache[0].sha256, first[0].sha256);
    assert_eq!(
        log.containing("changed in the source").len(),
        1,
        "{:?}",
        log.all()
    );

    // Touched without a change: downloaded again (the listing cannot tell), same
    // contents, still one entry.
    set_modified(&path, an_hour_ago() + SignedDuration::from_mins(40));
    let (again, _work, log) = s.fetch_ok().await;
    assert!(!again.from_cache);
    assert_eq!(s.cache().await.len(), 1);
    assert_eq!(s.cache().await[0].sha256, sha256_hex(b"corrected version"));
    assert_eq!(
        log.containing("only its modification time had changed")
            .len(),
        1,
        "{:?}",
        log.all()
    );
}

const NEAR_MISSES: [&str; 6] = [
    "Curr_Lic_Eds_End_Limits_latest.csv",
    "Curr_Lic_Eds_End_Limits_20261399.csv",
    "Curr_Lic_Eds_End_Limits_20261201.csv.bak",
    "curr_lic_eds_end_limits_20261201.csv",
    "Curr_Lic_Eds_End_Limits_20261201.xlsx",
    "Curr_Lic_Eds_End_Limits_2026\\1201.csv",
];

async fn names_that_are_not_alis_files_are_ignored_and_logged(backend: Backend) {
    let s = Scenario::new(backend).await;
    s.put(NOV_27, b"the real one", an_hour_ago());
    for name in NEAR_MISSES {
        s.put(name, b"not an ALiS file", an_hour_ago());
    }
    fs::create_dir(s.inbox.path().join("Curr_Lic_Eds_End_Limits_20261202.csv")).unwrap();

    let (fetched, work, log) = s.fetch_ok().await;

    assert_eq!(fetched.file.name.name(), NOV_27);
    assert_eq!(entries_in(work.path()), [NOV_27], "nothing else copied");
    assert_eq!(s.cached_names().await, [NOV_27]);
    for name in NEAR_MISSES
        .into_iter()
        .chain(["Curr_Lic_Eds_End_Limits_20261202.csv"])
    {
        let quoted = format!("{name:?} not used");
        assert_eq!(log.containing(&quoted).len(), 1, "{name}: {:?}", log.all());
    }
}

async fn many_ignored_entries_are_summarised_in_one_line(backend: Backend) {
    let s = Scenario::new(backend).await;
    s.put(NOV_27, b"the real one", an_hour_ago());
    let extra = 7;
    for i in 0..MAX_IGNORED_LINES + extra {
        s.put(&format!("notes-{i:02}.txt"), b"x", an_hour_ago());
    }

    let (fetched, _work, log) = s.fetch_ok().await;

    assert_eq!(fetched.file.name.name(), NOV_27);
    assert_eq!(log.containing(" not used: ").len(), MAX_IGNORED_LINES);
    assert_eq!(
        log.containing(&format!("and {extra} more entries not used"))
            .len(),
        1,
        "{:?}",
        log.all()
    );
}

async fn a_file_still_being_written_is_skipped(backend: Backend) {
    let s = Scenario::new(backend).await;
    s.put(NOV_27, b"complete", an_hour_ago());
    s.put(NOV_30, b"half writ", now() - SignedDuration::from_secs(10));

    let (fetched, work, log) = s.fetch_ok().await;

    assert_eq!(fetched.file.name.name(), NOV_27);
    assert!(!fetched.from_cache);
    assert_eq!(entries_in(work.path()), [NOV_27]);
    assert_eq!(s.cached_names().await, [NOV_27]);
    let skipped = log.containing(&format!("{NOV_30:?} not used"));
    assert_eq!(skipped.len(), 1, "{:?}", log.all());
    assert!(skipped[0].1.contains("still being written"), "{skipped:?}");

    // Once it is old enough, the same folder gives the newer file.
    let later = fetch_file(
        &s.source,
        &s.db.store,
        work.path(),
        now() + SignedDuration::from_mins(5),
        &s.settings,
        &Lines::default(),
    )
    .await
    .unwrap();
    assert_eq!(later.file.name.name(), NOV_30);
}

async fn an_empty_folder_falls_back_to_the_newest_cached_file(backend: Backend) {
    let s = Scenario::new(backend).await;
    s.put(NOV_27, b"the 27th", an_hour_ago());
    s.fetch_ok().await;
    s.put(NOV_28, b"the 28th", an_hour_ago());
    s.fetch_ok().await;
    s.clear_inbox();

    let (fetched, work, log) = s.fetch_ok().await;

    assert!(fetched.from_cache);
    assert_eq!(fetched.file.name.name(), NOV_28);
    assert_eq!(fs::read(&fetched.file.path).unwrap(), b"the 28th");
    assert_eq!(entries_in(work.path()), [NOV_28]);
    assert_eq!(fetched.notes.len(), 1, "{:?}", fetched.notes);
    assert!(
        fetched.notes[0].contains("held no ALiS file")
            && fetched.notes[0].contains(&format!("used the cached {NOV_28}")),
        "{:?}",
        fetched.notes
    );
    let warnings: Vec<_> = log
        .all()
        .into_iter()
        .filter(|(level, _)| *level == RunLogLevel::Warn)
        .map(|(_, line)| line)
        .collect();
    assert_eq!(warnings, fetched.notes);
    assert_eq!(
        s.cached_names().await,
        [NOV_28, NOV_27],
        "the cache is unchanged"
    );
}

async fn an_empty_folder_and_an_empty_cache_is_no_alis_file_found(backend: Backend) {
    let s = Scenario::new(backend).await;
    s.put("README.txt", b"not an ALiS file", an_hour_ago());

    let (error, work, log) = s.fetch_err().await;

    assert!(matches!(error, FetchError::NoFile { .. }), "{error:?}");
    assert!(error.to_string().contains("no ALiS file found"), "{error}");
    assert!(entries_in(work.path()).is_empty());
    let errors = log
        .all()
        .into_iter()
        .filter(|(level, _)| *level == RunLogLevel::Error)
        .count();
    assert_eq!(errors, 1, "{:?}", log.all());
}

async fn a_folder_of_files_still_being_written_and_an_empty_cache_says_so(backend: Backend) {
    let s = Scenario::new(backend).await;
    s.put(NOV_30, b"half writ", now() - SignedDuration::from_secs(10));

    let (error, _work, _log) = s.fetch_err().await;

    assert!(
        matches!(
            error,
            FetchError::NoFile {
                still_being_written: 1,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("no ALiS file found"), "{message}");
    assert!(message.contains("still being written"), "{message}");
}

async fn a_folder_that_cannot_be_listed_fails_without_falling_back(backend: Backend) {
    let s = Scenario::new(backend).await;
    s.put(NOV_28, b"the 28th", an_hour_ago());
    s.fetch_ok().await;
    let cached_before = s.cache().await;
    let missing = s.inbox.path().join("gone");
    let source = FileSource::Local(LocalDirSource::new(&missing));
    let work = temp_dir();
    let log = Lines::default();

    let error = fetch_file(&source, &s.db.store, work.path(), now(), &s.settings, &log)
        .await
        .unwrap_err();

    assert!(matches!(error, FetchError::List { .. }), "{error:?}");
    assert!(!error.to_string().contains("no ALiS file found"), "{error}");
    assert!(
        error.to_string().contains(&*missing.to_string_lossy()),
        "{error}"
    );
    assert!(entries_in(work.path()).is_empty(), "no fallback copy");
    assert_eq!(s.cache().await, cached_before);
    assert_eq!(log.containing("listing").len(), 1, "{:?}", log.all());
    assert_eq!(log.all()[0].0, RunLogLevel::Error);
    // A local folder is not a connection: no connection event.
    let events =
        s.db.store
            .connection_events(&ConnectionEventFilter::latest(10))
            .await
            .unwrap();
    assert!(events.is_empty(), "{events:?}");
}

async fn only_the_three_newest_files_stay_cached(backend: Backend) {
    const A: &str = "Curr_Lic_Eds_End_Limits_20261120.csv";
    const B: &str = "Curr_Lic_Eds_End_Limits_20261121_080000.csv";
    // The same day without a time is older than B.
    const C: &str = "Curr_Lic_Eds_End_Limits_20261121";
    const D: &str = "Curr_Lic_Eds_End_Limits_20261122.TXT";
    const OLD: &str = "Curr_Lic_Eds_End_Limits_20261101.csv";
    let s = Scenario::new(backend).await;

    // Each run finds one file, in an order that is not the files' own.
    let mut pruned_lines = Vec::new();
    for name in [C, A, D, B] {
        s.clear_inbox();
        s.put(name, name.as_bytes(), an_hour_ago());
        let (fetched, _work, log) = s.fetch_ok().await;
        assert_eq!(fetched.file.name.name(), name);
        assert!(!fetched.from_cache);
        pruned_lines.extend(log.containing("removed from the file cache"));
    }

    assert_eq!(s.cached_names().await, [D, B, C]);
    assert_eq!(pruned_lines.len(), 1, "{pruned_lines:?}");
    assert!(
        pruned_lines[0].1.contains(&format!("{A:?}")),
        "{pruned_lines:?}"
    );

    // A file older than the three cached is used by its run but not kept.
    s.clear_inbox();
    s.put(OLD, b"old", an_hour_ago());
    let (fetched, _work, _log) = s.fetch_ok().await;
    assert_eq!(fetched.file.name.name(), OLD);
    assert_eq!(fs::read(&fetched.file.path).unwrap(), b"old");
    assert_eq!(s.cached_names().await, [D, B, C]);
    for cached in s.cache().await {
        assert_eq!(cached.sha256, sha256_hex(cached.name.name().as_bytes()));
    }
}

async fn a_file_over_the_maximum_size_is_refused_and_not_cached(backend: Backend) {
    let mut s = Scenario::new(backend).await;
    s.settings.max_file_size = 10;
    s.put(NOV_27, b"ten bytes!", an_hour_ago());
    s.fetch_ok().await;
    s.put(NOV_28, b"eleven byte", an_hour_ago());

    let (error, work, log) = s.fetch_err().await;

    assert!(
        matches!(
            error,
            FetchError::TooLarge {
                size: 11,
                max: 10,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        entries_in(work.path()).is_empty(),
        "not downloaded, no fallback"
    );
    assert_eq!(s.cached_names().await, [NOV_27]);
    assert_eq!(
        log.containing("maximum file size").len(),
        1,
        "{:?}",
        log.all()
    );
}

async fn cached_bytes_round_trip_exactly(backend: Backend) {
    let s = Scenario::new(backend).await;
    // Every byte value, a BOM, NULs and invalid UTF-8, longer than a copy buffer.
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend((0..200_003u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    s.put(NOV_28, &bytes, an_hour_ago());
    let (downloaded, _work, _log) = s.fetch_ok().await;
    let cached = s.cache().await.remove(0);

    let stored = s.db.store.cache_read(cached.id).await.unwrap().unwrap();
    assert_eq!(stored, bytes);
    assert_eq!(cached.size, bytes.len() as u64);
    assert_eq!(cached.sha256, sha256_hex(&bytes));

    s.clear_inbox();
    let (restored, _work, _log) = s.fetch_ok().await;
    assert!(restored.from_cache);
    let copy = fs::read(&restored.file.path).unwrap();
    assert_eq!(sha256_hex(&copy), sha256_hex(&bytes));
    assert_eq!(copy, bytes);
    assert_eq!(restored.file.sha256, downloaded.file.sha256);
    assert_eq!(restored.file.size, bytes.len() as u64);
}

async fn a_damaged_cached_copy_is_downloaded_again_and_never_used(backend: Backend) {
    let s = Scenario::new(backend).await;
    s.put(NOV_28, b"the 28th", an_hour_ago());
    s.fetch_ok().await;
    let damage = match backend {
        Backend::Postgres => "update file_cache set bytes = decode(repeat('00', size::int), 'hex')",
        Backend::Sqlite => "update file_cache set bytes = zeroblob(size)",
    };
    s.db.execute(damage).await;

    // Reuse finds it damaged: downloaded again, and the download repairs the cache.
    let (fetched, _work, log) = s.fetch_ok().await;
    assert!(!fetched.from_cache);
    assert_eq!(fs::read(&fetched.file.path).unwrap(), b"the 28th");
    assert_eq!(log.containing("is damaged").len(), 1, "{:?}", log.all());
    assert_eq!(
        log.containing("replacing the unusable cached copy").len(),
        1,
        "{:?}",
        log.all()
    );
    let repaired = s.cache().await.remove(0);
    assert_eq!(
        s.db.store.cache_read(repaired.id).await.unwrap().unwrap(),
        b"the 28th"
    );

    // As a fallback it is refused, not used.
    s.db.execute(damage).await;
    s.clear_inbox();
    let (error, work, _log) = s.fetch_err().await;
    assert!(
        matches!(error, FetchError::CachedCopyDamaged { .. }),
        "{error:?}"
    );
    assert!(entries_in(work.path()).is_empty());
}

async fn concurrent_stores_keep_the_three_newest_in_name_order(backend: Backend) {
    // Same date and time, other extensions: the name decides, byte by byte, as
    // `AlisFileName` orders them (`.TXT` before `.csv`), whatever the collation.
    let names: Vec<AlisFileName> = [
        "Curr_Lic_Eds_End_Limits_20261127.csv",
        "Curr_Lic_Eds_End_Limits_20261127.TXT",
        "Curr_Lic_Eds_End_Limits_20261127",
        "Curr_Lic_Eds_End_Limits_20261126_235959.txt",
        "Curr_Lic_Eds_End_Limits_20261127_000000.csv",
        "Curr_Lic_Eds_End_Limits_20261125.csv",
    ]
    .into_iter()
    .map(|n| n.parse().unwrap())
    .collect();
    let db = TestStore::new(backend).await;
    let store = &db.store;

    // As several replicas would, all at once.
    let mut puts = tokio::task::JoinSet::new();
    for name in names.clone() {
        let store = store.clone();
        puts.spawn(async move {
            let bytes = name.name().as_bytes();
            let sha256: [u8; 32] = Sha256::digest(bytes).into();
            store
                .cache_put(&NewCachedFile {
                    name: &name,
                    sha256: &sha256,
                    source_modified: an_hour_ago(),
                    stored_at: now(),
                    bytes,
                })
                .await
                .unwrap()
        });
    }
    let pruned: usize = puts
        .join_all()
        .await
        .iter()
        .map(|put| put.pruned.len())
        .sum();

    let mut newest_first = names.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    let expected: Vec<&str> = newest_first[..3].iter().map(|n| n.name()).collect();
    let cached: Vec<String> = store
        .cache_list()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name.name().to_owned())
        .collect();
    assert_eq!(cached, expected);
    assert_eq!(pruned, names.len() - 3, "each file is pruned once");
    assert_eq!(
        store.cache_newest().await.unwrap().unwrap().name.name(),
        expected[0]
    );
}

async fn connection_events_round_trip(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let run_id = store
        .start_run(&NewRun {
            task_id: None,
            run_by: "test".into(),
            dry_run: false,
            force: false,
        })
        .await
        .unwrap();
    // Nanoseconds are more than the store keeps: it keeps microseconds.
    let t0: Timestamp = "2026-11-30T08:00:00.123456789Z".parse().unwrap();
    let kept_t0: Timestamp = "2026-11-30T08:00:00.123456Z".parse().unwrap();
    let t1 = t0 + SignedDuration::from_mins(1);
    let t2 = t0 + SignedDuration::from_mins(2);
    let events = [
        (t0, "sftp.example.org", "timeout", "no answer in 10s", None),
        (
            t1,
            "sftp.example.org",
            "fingerprint_mismatch",
            "presented SHA256:abc, expected SHA256:def",
            Some(run_id),
        ),
        (
            t2,
            "other.example.org",
            "auth_refused",
            "refused user alis",
            Some(run_id),
        ),
    ];
    let mut ids = Vec::new();
    for (at, host, kind, detail, run_id) in events {
        ids.push(
            store
                .record_connection_event(&NewConnectionEvent {
                    at,
                    host,
                    kind,
                    detail,
                    run_id,
                })
                .await
                .unwrap(),
        );
    }

    let all = store
        .connection_events(&ConnectionEventFilter::latest(10))
        .await
        .unwrap();
    let summary: Vec<(i64, &str, &str, Option<i64>)> = all
        .iter()
        .map(|e| (e.id, e.host.as_str(), e.kind.as_str(), e.run_id))
        .collect();
    assert_eq!(
        summary,
        [
            (ids[2], "other.example.org", "auth_refused", Some(run_id)),
            (
                ids[1],
                "sftp.example.org",
                "fingerprint_mismatch",
                Some(run_id)
            ),
            (ids[0], "sftp.example.org", "timeout", None),
        ]
    );
    assert_eq!(all[2].at, kept_t0);
    assert_eq!(all[1].detail, "presented SHA256:abc, expected SHA256:def");

    let by_host = ConnectionEventFilter {
        host: Some("sftp.example.org".into()),
        ..ConnectionEventFilter::latest(10)
    };
    let ids_of = |events: Vec<alis_import::store::ConnectionEvent>| {
        events.into_iter().map(|e| e.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids_of(store.connection_events(&by_host).await.unwrap()),
        [ids[1], ids[0]]
    );
    let by_run = ConnectionEventFilter {
        run_id: Some(run_id),
        ..ConnectionEventFilter::latest(10)
    };
    assert_eq!(
        ids_of(store.connection_events(&by_run).await.unwrap()),
        [ids[2], ids[1]]
    );
    let since = ConnectionEventFilter {
        since: Some(t1),
        ..ConnectionEventFilter::latest(10)
    };
    assert_eq!(
        ids_of(store.connection_events(&since).await.unwrap()),
        [ids[2], ids[1]]
    );
    assert_eq!(
        ids_of(
            store
                .connection_events(&ConnectionEventFilter::latest(1))
                .await
                .unwrap()
        ),
        [ids[2]]
    );

    // The events outlive the run.
    db.execute(&format!("delete from import_runs where id = {run_id}"))
        .await;
    let after = store
        .connection_events(&ConnectionEventFilter::latest(10))
        .await
        .unwrap();
    assert_eq!(after.len(), 3);
    assert!(after.iter().all(|e| e.run_id.is_none()), "{after:?}");
}
