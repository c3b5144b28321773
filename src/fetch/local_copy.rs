//! The local copies the fetch step handles: the downloaded copy read back for the
//! cache, and a cached file's bytes written out for the parser. Both are blocking
//! file work, run on tokio's blocking pool inside the caller's span.

use std::io::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};
use tracing::Span;

use super::FetchError;
use crate::source::FetchedFile;
use crate::store::CachedFile;

/// Reads the downloaded copy back for the cache, checking it is still what was
/// downloaded.
pub(super) async fn read_back(copy: &FetchedFile) -> Result<Vec<u8>, FetchError> {
    let path = copy.path.clone();
    let expected = copy.sha256;
    let span = Span::current();
    tokio::task::spawn_blocking(move || {
        span.in_scope(|| {
            let bytes = std::fs::read(&path).map_err(|cause| FetchError::LocalCopy {
                path: path.clone(),
                cause,
            })?;
            let actual: [u8; 32] = Sha256::digest(&bytes).into();
            if actual != expected {
                return Err(FetchError::LocalCopyChanged {
                    path,
                    expected: hex::encode(expected),
                    actual: hex::encode(actual),
                });
            }
            Ok(bytes)
        })
    })
    .await?
}

/// Writes cached bytes into `work_dir` under the file's name, through a temporary
/// name, once they match the size and SHA-256 stored with them.
pub(super) async fn write_out(
    cached: &CachedFile,
    bytes: Vec<u8>,
    work_dir: &Path,
) -> Result<FetchedFile, FetchError> {
    let cached = cached.clone();
    let work_dir = work_dir.to_owned();
    let span = Span::current();
    tokio::task::spawn_blocking(move || {
        span.in_scope(|| write_verified(&cached, &bytes, &work_dir))
    })
    .await?
}

fn write_verified(
    cached: &CachedFile,
    bytes: &[u8],
    work_dir: &Path,
) -> Result<FetchedFile, FetchError> {
    let sha256: [u8; 32] = Sha256::digest(bytes).into();
    let actual = hex::encode(sha256);
    if actual != cached.sha256 || bytes.len() as u64 != cached.size {
        return Err(FetchError::CachedCopyDamaged {
            name: cached.name.clone(),
            expected: cached.sha256.clone(),
            actual,
            expected_size: cached.size,
            size: bytes.len() as u64,
        });
    }
    let path = work_dir.join(cached.name.name());
    let local_error = |cause| FetchError::LocalCopy {
        path: path.clone(),
        cause,
    };
    // Removed on drop, so a failure leaves nothing under an ALiS name.
    let mut temp = tempfile::Builder::new()
        .prefix(".partial-cache-")
        .tempfile_in(work_dir)
        .map_err(local_error)?;
    temp.write_all(bytes).map_err(local_error)?;
    temp.persist(&path).map_err(|e| local_error(e.error))?;
    Ok(FetchedFile {
        name: cached.name.clone(),
        path,
        size: cached.size,
        sha256,
    })
}
