//! Why an SFTP connection, listing or download failed, one variant per cause, each
//! naming the server and what an operator can do, none carrying a credential.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;

use super::HostKeyFingerprint;

/// Which step of a session ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// Opening the TCP connection.
    Connect,
    /// The SSH greeting and key exchange (including the host key check).
    Handshake,
    /// Authentication and starting the SFTP subsystem.
    Login,
    /// Waiting for the server's answer to one request in an open session (listing,
    /// reading): the server or the network stalled.
    Inactivity,
}

impl TimeoutPhase {
    fn describe(self) -> &'static str {
        match self {
            Self::Connect => "opening the connection",
            Self::Handshake => "the SSH handshake",
            Self::Login => "logging in",
            Self::Inactivity => "an answer from the server",
        }
    }
}

/// Why the SFTP source failed.
///
/// Every message names the server (`host:port`) or the file, says what happened in
/// an operator's words, and never includes the password or private key: those are
/// held in `secrecy` types and nothing here receives them. [`SftpError::event_kind`]
/// and [`SftpError::detail`] give the connection-event log its `kind` and `detail`.
#[derive(Debug, thiserror::Error)]
pub enum SftpError {
    /// Nothing listens on the port (or a firewall rejects the connection).
    #[error("SFTP server {host}:{port} refused the connection")]
    ConnectionRefused {
        /// The server's host name.
        host: String,
        /// The server's port.
        port: u16,
    },
    /// The server could not be reached for another reason (name resolution, no route).
    #[error("cannot connect to SFTP server {host}:{port}: {source}")]
    Unreachable {
        /// The server's host name.
        host: String,
        /// The server's port.
        port: u16,
        /// The cause.
        source: io::Error,
    },
    /// A step did not finish in its configured time.
    #[error(
        "SFTP server {host}:{port} timed out: no progress in {} waiting for {}",
        humantime::format_duration(*.after),
        .phase.describe()
    )]
    Timeout {
        /// The server's host name.
        host: String,
        /// The server's port.
        port: u16,
        /// The step that ran out of time.
        phase: TimeoutPhase,
        /// The configured time limit.
        after: Duration,
    },
    /// The server's host key is not one of the pinned ones: it may have been
    /// replaced, or this is not the state's server. Nothing was sent to it.
    #[error(
        "SFTP server {host}:{port} presented host key {presented}, which is not the pinned \
         fingerprint ({}); not logging in. If the state has rotated its key, pin the new \
         fingerprint in the credentials",
        join(.expected)
    )]
    HostKeyMismatch {
        /// The server's host name.
        host: String,
        /// The server's port.
        port: u16,
        /// The fingerprint of the key the server presented.
        presented: HostKeyFingerprint,
        /// The pinned fingerprints.
        expected: Vec<HostKeyFingerprint>,
    },
    /// The SSH handshake failed (not an SSH server, no common algorithm, protocol error,
    /// connection dropped).
    #[error("SSH handshake with {host}:{port} failed: {detail}")]
    Handshake {
        /// The server's host name.
        host: String,
        /// The server's port.
        port: u16,
        /// What went wrong, from the SSH library.
        detail: String,
    },
    /// The server refused the user name and password (or key).
    #[error(
        "SFTP server {host}:{port} refused authentication for user {username} \
         (methods the server would accept: {methods}); check the credentials"
    )]
    AuthRefused {
        /// The server's host name.
        host: String,
        /// The server's port.
        port: u16,
        /// The user name that was refused.
        username: String,
        /// The authentication methods the server offers, for diagnosis.
        methods: String,
    },
    /// The configured private key could not be read (not an OpenSSH/PEM key, or
    /// encrypted). The key's contents are not shown.
    #[error("the SFTP private key in the credentials cannot be used: {detail}")]
    PrivateKey {
        /// Why, from the key parser (it does not quote the key).
        detail: String,
    },
    /// Logged in, but the server would not start the SFTP subsystem (the account may be
    /// limited to shell access, or the server has no SFTP).
    #[error("SFTP server {host}:{port} refused to start the SFTP subsystem: {detail}")]
    SubsystemRefused {
        /// The server's host name.
        host: String,
        /// The server's port.
        port: u16,
        /// What the server answered.
        detail: String,
    },
    /// The folder could not be listed.
    #[error("cannot list the folder {folder} on {host}:{port}: {detail}")]
    ListingFailed {
        /// The server's host name.
        host: String,
        /// The server's port.
        port: u16,
        /// The folder.
        folder: String,
        /// The server's or the connection's error.
        detail: String,
    },
    /// The download failed or was cut part way. Nothing was kept.
    #[error("downloading {name} from {host}:{port} failed after {received} bytes: {detail}")]
    TransferFailed {
        /// The server's host name.
        host: String,
        /// The server's port.
        port: u16,
        /// The file's name.
        name: String,
        /// Bytes received before the failure.
        received: u64,
        /// The server's or the connection's error.
        detail: String,
    },
    /// The download did not produce the listed number of bytes: the file is still
    /// being written or was replaced. Nothing was kept.
    #[error(
        "{name} changed while being downloaded: listed with {listed} bytes, received \
         {received}; it is probably still being written, try again later"
    )]
    SizeMismatch {
        /// The file's name.
        name: String,
        /// Its size in the listing.
        listed: u64,
        /// The bytes received (at most one more than listed: reading stops there).
        received: u64,
    },
    /// The file's modification time changed while it was downloaded. Nothing was kept.
    #[error(
        "{name} changed while being downloaded: modified at {now}, listed as modified at \
         {listed}; try again later"
    )]
    ModifiedWhileReading {
        /// The file's name.
        name: String,
        /// Its modification time in the listing.
        listed: Timestamp,
        /// Its modification time after the download.
        now: Timestamp,
    },
    /// The file is larger than the configured maximum; it was not downloaded.
    #[error("{name} is {size} bytes, more than the maximum of {max} bytes; not downloaded")]
    TooLarge {
        /// The file's name.
        name: String,
        /// Its size (listed, or received so far).
        size: u64,
        /// The configured maximum.
        max: u64,
    },
    /// Writing the local copy failed.
    #[error("cannot write the copy of {name} into {}: {source}", .dest_dir.display())]
    LocalWrite {
        /// The file's name.
        name: String,
        /// The destination folder.
        dest_dir: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

fn join(fingerprints: &[HostKeyFingerprint]) -> String {
    fingerprints
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl SftpError {
    /// The kind of connection event this failure is, for the connection-event log and
    /// metrics: a short, stable, machine-readable word.
    pub fn event_kind(&self) -> &'static str {
        match self {
            Self::ConnectionRefused { .. } => "refused",
            Self::Unreachable { .. } => "unreachable",
            Self::Timeout { .. } => "timeout",
            Self::HostKeyMismatch { .. } => "fingerprint_mismatch",
            Self::Handshake { .. } => "handshake_error",
            Self::AuthRefused { .. } => "auth_refused",
            Self::PrivateKey { .. } => "credentials_invalid",
            Self::SubsystemRefused { .. } => "subsystem_refused",
            Self::ListingFailed { .. } => "listing_error",
            Self::TransferFailed { .. } => "transfer_error",
            Self::SizeMismatch { .. } | Self::ModifiedWhileReading { .. } => "file_changed",
            Self::TooLarge { .. } => "too_large",
            Self::LocalWrite { .. } => "local_write_error",
        }
    }

    /// The event's detail for the connection-event log and the run's error log: the
    /// full message, which names the server and (for a mismatch) both fingerprints.
    pub fn detail(&self) -> String {
        self.to_string()
    }

    /// Whether this failure happened before or while connecting and logging in (as
    /// opposed to listing or transferring in an open session).
    pub fn is_connection_failure(&self) -> bool {
        matches!(
            self,
            Self::ConnectionRefused { .. }
                | Self::Unreachable { .. }
                | Self::Timeout {
                    phase: TimeoutPhase::Connect | TimeoutPhase::Handshake | TimeoutPhase::Login,
                    ..
                }
                | Self::HostKeyMismatch { .. }
                | Self::Handshake { .. }
                | Self::AuthRefused { .. }
                | Self::PrivateKey { .. }
                | Self::SubsystemRefused { .. }
        )
    }

    /// Emits the tracing event every failure gets, with the server and the kind as
    /// fields. A host key mismatch is an error (it may be an attack); the rest are
    /// warnings (the run fails and says why, but the service is fine).
    pub(super) fn emit(&self, host: &str, port: u16) {
        let kind = self.event_kind();
        if matches!(self, Self::HostKeyMismatch { .. }) {
            tracing::error!(host, port, kind, error = %self, "SFTP host key mismatch");
        } else {
            tracing::warn!(host, port, kind, error = %self, "SFTP failure");
        }
    }
}
