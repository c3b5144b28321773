//! The state's SFTP server as the source of ALiS files (design §7, rules §1.1–§1.2).
//!
//! A run builds an [`SftpSource`] from the credentials it has just read from the
//! secrets provider (so a rotated password takes effect at the next run), lists the
//! folder, chooses a file with [`super::choose_newest`] and downloads it. Both calls
//! share one SSH connection, opened on first use and closed when the source is
//! dropped or [`SftpSource::close`]d.
//!
//! Security: the server's host key is checked against the pinned fingerprints during
//! the key exchange, before anything is sent that depends on the credentials; the
//! password and key stay in `secrecy` types and appear in no error, log line or
//! `Debug` output.
//!
//! - [`fingerprint`]: the pinned `SHA256:…` fingerprint.
//! - [`error`]: [`SftpError`], one variant per cause, with the connection-event kind.
//! - `session`: connect, check the host key, log in, start SFTP.
//! - `transfer`: list the folder and download a file, verified.

pub mod error;
pub mod fingerprint;
mod session;
mod transfer;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::Mutex;
use tracing::field::Empty;

pub use error::{SftpError, TimeoutPhase};
pub use fingerprint::{FingerprintError, HostKeyFingerprint};

use super::{FetchedFile, ListedFile, Listing};
use session::Connection;

/// How the SFTP source behaves: where it looks and how long it waits. Part of the
/// service's configuration; the server and login come from [`SftpCredentials`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftpSettings {
    /// The folder on the server holding the ALiS files: absolute, or relative to the
    /// login's home directory (`.` for the home directory itself).
    pub folder: String,
    /// How long to wait for the TCP connection to be accepted.
    pub connect_timeout: Duration,
    /// How long the SSH handshake may take, and again how long logging in and
    /// starting SFTP may take: a server that accepts connections but does not speak
    /// SSH fails after this.
    pub handshake_timeout: Duration,
    /// How long to wait for any one answer in an open session (a listing, a block
    /// of the file) before giving up on a stalled server or network.
    pub inactivity_timeout: Duration,
    /// How often to send an SSH keepalive while the connection is otherwise idle.
    pub keepalive_interval: Duration,
    /// The largest file that will be downloaded; a larger one is refused before the
    /// download starts (and a file growing past it is cut off).
    pub max_file_size: u64,
    /// How many read requests are in flight at once while downloading. Reads are
    /// pipelined so the transfer is not limited by the round trip time.
    pub concurrent_reads: usize,
    /// The SSH channel window in bytes: how much the server may send before this
    /// client acknowledges it. Large enough to cover the pipelined reads.
    pub window_size: u32,
}

impl SftpSettings {
    /// Settings for `folder` with the default time limits: 10 s to connect, 30 s for
    /// the handshake and for the login, 60 s of silence mid-session, keepalives every
    /// 15 s, files up to 1 GiB, 16 reads in flight, an 8 MiB window.
    pub fn new(folder: impl Into<String>) -> Self {
        Self {
            folder: folder.into(),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(30),
            inactivity_timeout: Duration::from_secs(60),
            keepalive_interval: Duration::from_secs(15),
            max_file_size: 1 << 30,
            concurrent_reads: 16,
            window_size: 8 << 20,
        }
    }
}

/// Where the SFTP server is and how to log in to it: read from the secrets provider
/// at the start of each run.
#[derive(Clone)]
pub struct SftpCredentials {
    /// The server's host name or address.
    pub host: String,
    /// The server's port (22 unless the state says otherwise).
    pub port: u16,
    /// The login name.
    pub username: String,
    /// The password; empty when only a key is used.
    pub password: SecretString,
    /// An optional private key (OpenSSH or PEM text, unencrypted), tried before the
    /// password.
    pub private_key: Option<SecretString>,
    /// The server host key fingerprints that are trusted. Usually one; two while the
    /// state rolls over to a new host key.
    pub fingerprints: Vec<HostKeyFingerprint>,
}

/// Shows where and who, never the password or key.
impl fmt::Debug for SftpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SftpCredentials")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "[redacted]"),
            )
            .field("fingerprints", &self.fingerprints)
            .finish()
    }
}

/// An SFTP folder holding ALiS files, reached with one set of credentials.
///
/// Cheap to clone; clones share the connection. Build a new one for each run, with
/// the credentials read for that run.
#[derive(Clone)]
pub struct SftpSource {
    inner: Arc<Inner>,
}

struct Inner {
    settings: SftpSettings,
    credentials: SftpCredentials,
    /// The open connection, if any. A mutex rather than a pool: a run lists, then
    /// downloads, one after the other.
    connection: Mutex<Option<Connection>>,
}

impl fmt::Debug for SftpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SftpSource")
            .field("settings", &self.inner.settings)
            .field("credentials", &self.inner.credentials)
            .finish_non_exhaustive()
    }
}

/// Names the folder and server for the run log, e.g.
/// `SFTP folder /alis on alis@sftp.example.org:22`.
impl fmt::Display for SftpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credentials = &self.inner.credentials;
        write!(
            f,
            "SFTP folder {} on {}@{}:{}",
            self.inner.settings.folder, credentials.username, credentials.host, credentials.port
        )
    }
}

impl SftpSource {
    /// A source for the folder in `settings` on the server in `credentials`. Nothing
    /// is contacted until the first call.
    pub fn new(settings: SftpSettings, credentials: SftpCredentials) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                credentials,
                connection: Mutex::new(None),
            }),
        }
    }

    /// The settings this source uses.
    pub fn settings(&self) -> &SftpSettings {
        &self.inner.settings
    }

    /// The server's host name.
    pub fn host(&self) -> &str {
        &self.inner.credentials.host
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.inner.credentials.port
    }

    /// Connects, checks the host key, logs in and starts SFTP, without listing
    /// anything (the connectivity check). A later [`SftpSource::list`] or
    /// [`SftpSource::download`] reuses the connection.
    #[tracing::instrument(
        name = "sftp_connect",
        skip_all,
        fields(host = %self.host(), port = i64::from(self.port()))
    )]
    pub async fn connect(&self) -> Result<(), SftpError> {
        let mut connection = self.inner.connection.lock().await;
        self.ensure_connected(&mut connection)
            .await
            .map(|_| ())
            .inspect_err(|error| error.emit(self.host(), self.port()))
    }

    /// Lists the folder: regular files with an ALiS name become [`Listing::files`]
    /// (sorted by name), everything else is in [`Listing::ignored`] with the reason
    /// (sorted by name): near-miss names, directories, symbolic links (not followed),
    /// other file types.
    #[tracing::instrument(
        name = "list_sftp_folder",
        skip_all,
        fields(host = %self.host(), port = i64::from(self.port()), folder = %self.inner.settings.folder,
               files = Empty, ignored = Empty)
    )]
    pub async fn list(&self) -> Result<Listing, SftpError> {
        let result = async {
            let mut slot = self.inner.connection.lock().await;
            let connection = self.ensure_connected(&mut slot).await?;
            let listing =
                transfer::list(connection, &self.inner.settings, &self.inner.credentials).await;
            if listing.is_err() {
                drop_connection(&mut slot);
            }
            listing
        }
        .await;
        match &result {
            Ok(listing) => {
                let span = tracing::Span::current();
                span.record("files", listing.files.len() as i64);
                span.record("ignored", listing.ignored.len() as i64);
            }
            Err(error) => error.emit(self.host(), self.port()),
        }
        result
    }

    /// Downloads `file` into `dest_dir` under its own name (see
    /// [`super::FileSource::download`]): refused beforehand if larger than
    /// [`SftpSettings::max_file_size`]; read with several requests in flight; hashed
    /// (SHA-256) and written to a hidden temporary file (`.partial-…`) as it arrives;
    /// checked against the listing (same size, same modification time); flushed; and
    /// only then renamed to its final name. On any failure nothing is left in
    /// `dest_dir`.
    #[tracing::instrument(
        name = "download_sftp_file",
        skip_all,
        fields(host = %self.host(), port = i64::from(self.port()), name = %file.name, size = file.size as i64,
               sha256 = Empty)
    )]
    pub async fn download(
        &self,
        file: &ListedFile,
        dest_dir: &Path,
    ) -> Result<FetchedFile, SftpError> {
        let result = async {
            if file.size > self.inner.settings.max_file_size {
                return Err(SftpError::TooLarge {
                    name: file.name.to_string(),
                    size: file.size,
                    max: self.inner.settings.max_file_size,
                });
            }
            let mut slot = self.inner.connection.lock().await;
            let connection = self.ensure_connected(&mut slot).await?;
            let fetched = transfer::download(
                connection,
                &self.inner.settings,
                &self.inner.credentials,
                file,
                dest_dir,
            )
            .await;
            if fetched.is_err() {
                drop_connection(&mut slot);
            }
            fetched
        }
        .await;
        match &result {
            Ok(fetched) => {
                tracing::Span::current().record("sha256", fetched.sha256_hex());
            }
            Err(error) => error.emit(self.host(), self.port()),
        }
        result
    }

    /// Closes the connection, if one is open, telling the server goodbye. Dropping
    /// the last clone of the source closes it too, less politely.
    pub async fn close(&self) {
        if let Some(connection) = self.inner.connection.lock().await.take() {
            connection.close().await;
        }
    }

    async fn ensure_connected<'a>(
        &self,
        slot: &'a mut Option<Connection>,
    ) -> Result<&'a Connection, SftpError> {
        let connection = match slot.take() {
            Some(open) if !open.is_closed() => open,
            _ => {
                let fresh = session::connect(&self.inner.settings, &self.inner.credentials).await?;
                tracing::debug!(host = %self.host(), port = self.port(), "SFTP session open");
                fresh
            }
        };
        Ok(slot.insert(connection))
    }
}

/// A failed session may be unusable (cut, timed out mid-request); the next call opens
/// a fresh one rather than finding out.
fn drop_connection(slot: &mut Option<Connection>) {
    *slot = None;
}
