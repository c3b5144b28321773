//! Listing the SFTP folder and downloading one file from it, verified.

use std::io::Write;
use std::path::Path;

use jiff::Timestamp;
use russh_sftp::client::fs::{DirEntry, Metadata};
use russh_sftp::protocol::FileType;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tracing::Span;

use super::session::Connection;
use super::{SftpCredentials, SftpError, SftpSettings, TimeoutPhase};
use crate::source::{AlisFileName, FetchedFile, IgnoreReason, IgnoredEntry, ListedFile, Listing};

/// The most bytes asked of the file at a time. A read returns at most one SFTP data
/// packet (OpenSSH sends up to 255 KiB), so this only caps the buffer.
const READ_BUFFER: usize = 256 * 1024;

/// Blocks of the file waiting to be hashed and written. Network reads go on while the
/// disk and the hash catch up, up to this many blocks.
const WRITE_QUEUE: usize = 16;

/// Runs one SFTP request under the inactivity limit: a server or network that stalls
/// mid-session fails the operation (as a timeout) instead of hanging the run. A
/// timeout reported by russh-sftp's own request timer is the same timeout; any other
/// error becomes `failed(error)`.
async fn within<T, E: TimedOut>(
    settings: &SftpSettings,
    credentials: &SftpCredentials,
    future: impl Future<Output = Result<T, E>>,
    failed: impl FnOnce(E) -> SftpError,
) -> Result<T, SftpError> {
    let timeout = || SftpError::Timeout {
        host: credentials.host.clone(),
        port: credentials.port,
        phase: TimeoutPhase::Inactivity,
        after: settings.inactivity_timeout,
    };
    match tokio::time::timeout(settings.inactivity_timeout, future).await {
        Err(_) => Err(timeout()),
        Ok(Err(error)) if error.is_timeout() => Err(timeout()),
        Ok(Err(error)) => Err(failed(error)),
        Ok(Ok(value)) => Ok(value),
    }
}

/// Errors that can say "the request timed out".
trait TimedOut {
    fn is_timeout(&self) -> bool;
}

impl TimedOut for russh_sftp::client::error::Error {
    fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout)
    }
}

impl TimedOut for std::io::Error {
    fn is_timeout(&self) -> bool {
        self.kind() == std::io::ErrorKind::TimedOut
    }
}

pub(super) async fn list(
    connection: &Connection,
    settings: &SftpSettings,
    credentials: &SftpCredentials,
) -> Result<Listing, SftpError> {
    let failed = |detail: String| SftpError::ListingFailed {
        host: credentials.host.clone(),
        port: credentials.port,
        folder: settings.folder.clone(),
        detail,
    };
    let entries = within(
        settings,
        credentials,
        connection.sftp.read_dir(settings.folder.as_str()),
        |error| failed(describe(&error)),
    )
    .await?;
    let mut listing = Listing::default();
    for entry in entries {
        match classify(&entry).map_err(failed)? {
            Ok(file) => listing.files.push(file),
            Err(ignored) => listing.ignored.push(ignored),
        }
    }
    // The server's order is arbitrary; the run log should not be.
    listing.files.sort_by(|a, b| a.name.cmp(&b.name));
    listing.ignored.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listing)
}

/// One directory entry: a recognised file, an ignored entry, or an error that fails
/// the listing (a file without size or time might be the newest; guessing without it
/// could import an older one).
fn classify(entry: &DirEntry) -> Result<Result<ListedFile, IgnoredEntry>, String> {
    let name = entry.file_name();
    let ignore = |reason| {
        Ok(Err(IgnoredEntry {
            name: name.clone(),
            reason,
        }))
    };
    // The entry's attributes are the server's `lstat`: a symbolic link is reported as
    // one, not as what it points to. (`Metadata::is_regular` would be true for links:
    // it tests a bit, so the type is compared whole.)
    match entry.file_type() {
        FileType::File => {}
        FileType::Dir => return ignore(IgnoreReason::Directory),
        FileType::Symlink => return ignore(IgnoreReason::Symlink),
        FileType::Other => return ignore(IgnoreReason::NotRegularFile),
    }
    // russh-sftp decodes names lossily; a replacement character means the name was
    // not UTF-8 on the server.
    if name.contains(char::REPLACEMENT_CHARACTER) {
        return ignore(IgnoreReason::NameNotUtf8);
    }
    let alis_name = match name.parse::<AlisFileName>() {
        Ok(alis_name) => alis_name,
        Err(error) => return ignore(IgnoreReason::NotAlisName(error)),
    };
    let metadata = entry.metadata();
    let (size, modified) = size_and_mtime(&metadata)
        .ok_or_else(|| format!("the server did not report the size and time of {name}"))?;
    Ok(Ok(ListedFile {
        name: alis_name,
        size,
        modified,
    }))
}

fn size_and_mtime(metadata: &Metadata) -> Option<(u64, Timestamp)> {
    let size = metadata.size?;
    let modified = Timestamp::from_second(i64::from(metadata.mtime?)).ok()?;
    Some((size, modified))
}

pub(super) async fn download(
    connection: &Connection,
    settings: &SftpSettings,
    credentials: &SftpCredentials,
    listed: &ListedFile,
    dest_dir: &Path,
) -> Result<FetchedFile, SftpError> {
    let name = listed.name.name();
    let remote_path = remote_path(&settings.folder, name);
    let mut received: u64 = 0;
    let failed = |received: u64, detail: String| SftpError::TransferFailed {
        host: credentials.host.clone(),
        port: credentials.port,
        name: name.to_owned(),
        received,
        detail,
    };
    let write_error = |source| SftpError::LocalWrite {
        name: name.to_owned(),
        dest_dir: dest_dir.to_owned(),
        source,
    };

    // Removed on drop, so every early return below (and a cancelled run) cleans up.
    let temp = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(dest_dir)
        .map_err(write_error)?;
    let mut remote = within(
        settings,
        credentials,
        connection.sftp.open(remote_path.as_str()),
        |error| failed(0, format!("cannot open it: {}", describe(&error))),
    )
    .await?;

    // Hashing and writing happen on the blocking pool while the next blocks arrive.
    let (blocks, queue) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    let span = Span::current();
    let writer = tokio::task::spawn_blocking(move || span.in_scope(|| write_blocks(temp, queue)));

    // One byte more than listed is enough to know the file grew; reading stops there.
    let limit = listed.size.saturating_add(1);
    let read_result: Result<(), SftpError> = async {
        while received < limit {
            let want =
                usize::try_from(limit - received).map_or(READ_BUFFER, |n| n.min(READ_BUFFER));
            let mut block = vec![0; want];
            let n = within(settings, credentials, remote.read(&mut block), |error| {
                failed(received, error.to_string())
            })
            .await?;
            if n == 0 {
                break;
            }
            block.truncate(n);
            received += n as u64;
            if blocks.send(block).await.is_err() {
                // The writer stopped: its error is reported below.
                break;
            }
        }
        Ok(())
    }
    .await;
    drop(blocks);
    let written = writer
        .await
        .map_err(|error| write_error(std::io::Error::other(error)))?;
    read_result?;
    let (temp, sha256, written) = written.map_err(write_error)?;

    if received != listed.size || written != listed.size {
        return Err(SftpError::SizeMismatch {
            name: name.to_owned(),
            listed: listed.size,
            received,
        });
    }
    let after = within(settings, credentials, remote.metadata(), |error| {
        failed(
            received,
            format!("cannot read its attributes: {}", describe(&error)),
        )
    })
    .await?;
    if let Some((size, modified)) = size_and_mtime(&after) {
        if size != listed.size {
            return Err(SftpError::SizeMismatch {
                name: name.to_owned(),
                listed: listed.size,
                received: size,
            });
        }
        if modified != listed.modified {
            return Err(SftpError::ModifiedWhileReading {
                name: name.to_owned(),
                listed: listed.modified,
                now: modified,
            });
        }
    }
    // The copy is complete and verified: a failure to close the handle cannot change it.
    let _ = within(settings, credentials, remote.close(), |error| {
        failed(received, error.to_string())
    })
    .await;

    let path = dest_dir.join(name);
    let persist = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            // On disk before it has its final name, so a crash cannot leave a
            // complete-looking name over incomplete data.
            temp.as_file().sync_all()?;
            temp.persist(&path).map(|_| ()).map_err(|error| error.error)
        })
    };
    persist
        .await
        .map_err(|error| write_error(std::io::Error::other(error)))?
        .map_err(write_error)?;
    Ok(FetchedFile {
        name: listed.name.clone(),
        path,
        size: received,
        sha256,
    })
}

/// Writes and hashes blocks until the sender is done; returns the file, its SHA-256
/// and the bytes written.
fn write_blocks(
    mut temp: NamedTempFile,
    mut queue: mpsc::Receiver<Vec<u8>>,
) -> std::io::Result<(NamedTempFile, [u8; 32], u64)> {
    let mut hasher = Sha256::new();
    let mut written: u64 = 0;
    while let Some(block) = queue.blocking_recv() {
        hasher.update(&block);
        temp.write_all(&block)?;
        written += block.len() as u64;
    }
    Ok((temp, hasher.finalize().into(), written))
}

/// An SFTP error in words: the server's status message, without repeating the
/// status name when the message is just that (OpenSSH sends "No such file" for
/// `SSH_FX_NO_SUCH_FILE`).
fn describe(error: &russh_sftp::client::error::Error) -> String {
    match error {
        russh_sftp::client::error::Error::Status(status) => {
            let code = status.status_code.to_string();
            if status.error_message.is_empty() || status.error_message == code {
                code
            } else {
                format!("{code}: {}", status.error_message)
            }
        }
        other => other.to_string(),
    }
}

/// The file's path on the server: SFTP paths are always `/`-separated.
fn remote_path(folder: &str, name: &str) -> String {
    if folder.is_empty() || folder == "." {
        name.to_owned()
    } else if folder.ends_with('/') {
        format!("{folder}{name}")
    } else {
        format!("{folder}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_join_with_a_single_slash() {
        assert_eq!(remote_path("/alis", "f.csv"), "/alis/f.csv");
        assert_eq!(remote_path("/alis/", "f.csv"), "/alis/f.csv");
        assert_eq!(remote_path("inbox", "f.csv"), "inbox/f.csv");
        assert_eq!(remote_path(".", "f.csv"), "f.csv");
        assert_eq!(remote_path("", "f.csv"), "f.csv");
        assert_eq!(remote_path("/", "f.csv"), "/f.csv");
    }

    #[test]
    fn a_listing_entry_without_size_or_time_has_none() {
        let mut metadata = Metadata::default();
        assert_eq!(size_and_mtime(&metadata), None);
        metadata.size = Some(10);
        assert_eq!(size_and_mtime(&metadata), None);
        metadata.mtime = Some(1_795_000_000);
        assert_eq!(
            size_and_mtime(&metadata),
            Some((10, Timestamp::from_second(1_795_000_000).unwrap()))
        );
    }
}
