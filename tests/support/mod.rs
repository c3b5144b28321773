//! Test support shared by the integration tests: real databases, temporary
//! directories and a place for artifacts. Use it from a test file with `mod support;`.
//!
//! # Real PostgreSQL: one server per test binary, one database per test
//!
//! Tests talk to a real PostgreSQL (design §10: nothing is mocked that can run for
//! real), started from the Debian binaries on 127.0.0.1 with its own port, data
//! directory and socket directory.
//!
//! - **One server per test binary**: starting a cluster costs about a second, so the
//!   first test that asks starts it and all tests of the binary share it. It is tuned for
//!   tests (no fsync), never for data that matters, and it stops by itself when the test
//!   process exits (see [`postgres`] for how, since Rust tests have no global teardown).
//! - **One database per test**: [`postgres_url`] creates a new, empty database each
//!   call. Tests run in parallel threads, so sharing a database would make them see each
//!   other's rows; a database each keeps them independent, with no clean-up between
//!   tests and no ordering assumptions.
//!
//! The same behavioural scenario can run against both store backends with [`Backend`]:
//!
//! ```ignore
//! mod support;
//! use support::Backend;
//!
//! #[tokio::test]
//! async fn import_is_idempotent() {
//!     for backend in Backend::ALL {
//!         let (url, _guard) = backend.fresh_database_url().await;
//!         // ... connect to `url`, run the scenario, assert; `_guard` keeps a SQLite
//!         // database's directory until the end of the iteration.
//!     }
//! }
//! ```
//!
//! A missing server binary makes the test panic with the command that installs it;
//! tests never skip themselves.
//!
//! # The real binary
//!
//! [`served`] runs the `alis-import` binary itself as a child process on its embedded
//! defaults, for the tests that drive it from outside as operators do: grpcurl, the CLI
//! client and the README's commands.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod postgres;
pub mod served;

use std::fmt;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

#[allow(unused_imports)]
pub use postgres::{PostgresServer, postgres_url};

/// A store backend the service supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// PostgreSQL, as in production: a fresh database on this binary's test server.
    Postgres,
    /// SQLite, as in the embedded default: a fresh file in a temporary directory.
    Sqlite,
}

impl Backend {
    /// Every backend, for running one scenario against each.
    pub const ALL: [Backend; 2] = [Backend::Postgres, Backend::Sqlite];

    /// A URL of a new, empty database of this backend, and the guard that keeps its
    /// storage alive: hold the guard as long as the database is in use.
    pub async fn fresh_database_url(self) -> (String, Guard) {
        match self {
            Backend::Postgres => (postgres_url().await, Guard { _dir: None }),
            Backend::Sqlite => {
                let dir = temp_dir();
                (sqlite_url(dir.path()), Guard { _dir: Some(dir) })
            }
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        })
    }
}

/// Keeps a test database's storage alive: for SQLite, the temporary directory holding
/// the file, removed when the guard is dropped. (A PostgreSQL test database lives as
/// long as the server, i.e. the test process.)
#[derive(Debug)]
#[must_use = "the database's storage is removed when the guard is dropped"]
pub struct Guard {
    _dir: Option<TempDir>,
}

impl Guard {
    /// A guard that keeps nothing: for a second service (or a reconnection) on a
    /// database whose storage another guard keeps alive.
    pub fn none() -> Self {
        Self { _dir: None }
    }
}

/// URL of a SQLite database file `test.db` in `dir`, created on first connection.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}/test.db?mode=rwc", dir.display())
}

/// A new temporary directory, removed when the returned value is dropped.
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("alis-import-test-")
        .tempdir()
        .expect("create a temporary directory for a test")
}

/// `<repo>/test-artifacts/` (created if missing): for files a person may want to look
/// at after a run, such as server logs or generated reports. Ignored by git.
pub fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("create test artifacts directory {}: {e}", dir.display()));
    dir
}

/// The text of a PDF as poppler's `pdftotext -layout` reads it.
pub fn pdf_text(pdf: &[u8]) -> String {
    let dir = temp_dir();
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, pdf).expect("write the PDF for pdftotext");
    let out = std::process::Command::new("pdftotext")
        .arg("-layout")
        .arg(&path)
        .arg("-")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run pdftotext ({e}): install it with scripts/install-test-deps (Debian poppler-utils)")
        });
    assert!(
        out.status.success(),
        "pdftotext failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
