//! The file source of one run, built when the run starts (design §7): the local inbox
//! folder, or the SFTP folder reached with credentials read from the secrets
//! provider at that moment, so a password or host key rotated in Vault is used by the
//! next run without a restart.
//!
//! A run whose credentials cannot be read fails with [`CredentialsError`], which
//! says why in an operator's words (Vault unreachable, permission denied, a key
//! missing, …) and is written to the run's log; Vault's provider emits the tracing
//! event. No message here or there carries a secret value.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use super::{FileSource, LocalDirSource, SftpSettings, SftpSource};
use crate::fetch::{RunLog, RunLogLevel};
use crate::secrets::{SecretsError, SecretsProvider};

/// Makes each run's [`FileSource`] from the configured source kind.
///
/// An enum like [`FileSource`]: one variant per source kind, holding what stays fixed
/// between runs; what may change (the credentials) is read in
/// [`SourceFactory::source_for_run`].
#[derive(Debug, Clone)]
pub enum SourceFactory {
    /// Every run reads the same local folder.
    Local(LocalDirSource),
    /// Every run reads this SFTP folder, with credentials read for it.
    Sftp {
        /// The folder and time limits.
        settings: SftpSettings,
        /// Where the server, login and pinned host key come from.
        secrets: Arc<SecretsProvider>,
    },
}

/// The SFTP credentials could not be read, so the run cannot start fetching.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the SFTP credentials: {0}")]
pub struct CredentialsError(#[from] pub SecretsError);

impl SourceFactory {
    /// A factory for a local folder.
    pub fn local(dir: impl Into<PathBuf>) -> Self {
        Self::Local(LocalDirSource::new(dir))
    }

    /// The source a run starting now uses. For SFTP, reads the credentials from the
    /// secrets provider now and notes in `log` where they came from and which server
    /// they name (or why they could not be read).
    pub async fn source_for_run(&self, log: &impl RunLog) -> Result<FileSource, CredentialsError> {
        match self {
            Self::Local(source) => Ok(FileSource::Local(source.clone())),
            Self::Sftp { settings, secrets } => match secrets.sftp_credentials().await {
                Ok(credentials) => {
                    let source = SftpSource::new(settings.clone(), credentials);
                    note(
                        log,
                        RunLogLevel::Info,
                        &format!("read the SFTP credentials from {secrets}; source: {source}"),
                    )
                    .await;
                    Ok(FileSource::Sftp(source))
                }
                Err(error) => {
                    // The provider traces its own failures (Vault does), and the
                    // worker the run's; the run log is this step's to write.
                    let error = CredentialsError(error);
                    note(log, RunLogLevel::Error, &error.to_string()).await;
                    Err(error)
                }
            },
        }
    }

    /// The secrets provider, for the SFTP source.
    pub fn secrets(&self) -> Option<&Arc<SecretsProvider>> {
        match self {
            Self::Local(_) => None,
            Self::Sftp { secrets, .. } => Some(secrets),
        }
    }
}

/// A line in the run log; failing to write it is traced, not fatal: the run's own
/// outcome still records what happened.
async fn note(log: &impl RunLog, level: RunLogLevel, message: &str) {
    if let Err(error) = log.append(level, message).await {
        tracing::error!(error = %error, "cannot write to the run log");
    }
}

/// For the startup log, e.g. `SFTP folder /alis, credentials from Vault at …`.
impl fmt::Display for SourceFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(source) => write!(f, "local directory {}", source.dir().display()),
            Self::Sftp { settings, secrets } => write!(
                f,
                "SFTP folder {}, with the server and credentials from {secrets}",
                settings.folder
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use std::path::Path;

    use super::*;
    use crate::secrets::DevSecrets;
    use crate::store::StoreError;

    const FINGERPRINT: &str = "SHA256:alqSNwBJ+rjsYgipC3a0hbUlqGtBbQM67vCQiWMH90w";

    #[derive(Default)]
    struct Lines(Mutex<Vec<(RunLogLevel, String)>>);

    impl RunLog for Lines {
        fn run_id(&self) -> Option<i64> {
            Some(1)
        }

        async fn append(&self, level: RunLogLevel, message: &str) -> Result<(), StoreError> {
            self.0.lock().unwrap().push((level, message.to_owned()));
            Ok(())
        }
    }

    fn sftp_factory(secrets_file: &Path) -> SourceFactory {
        SourceFactory::Sftp {
            settings: SftpSettings::new("/outgoing"),
            secrets: Arc::new(SecretsProvider::Dev(DevSecrets::from_file(secrets_file))),
        }
    }

    #[tokio::test]
    async fn each_run_reads_the_credentials_anew() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sftp.env");
        let factory = sftp_factory(&file);
        let write = |host: &str| {
            std::fs::write(
                &file,
                format!(
                    "hostname={host}\nport=2222\nusername=district\npassword=P4ss-w0rd-9\n\
                     fingerprint={FINGERPRINT}\n"
                ),
            )
            .unwrap();
        };
        let log = Lines::default();

        write("first.example.org");
        let first = factory.source_for_run(&log).await.unwrap();
        write("second.example.org");
        let second = factory.source_for_run(&log).await.unwrap();

        assert_eq!(
            first.to_string(),
            "SFTP folder /outgoing on district@first.example.org:2222"
        );
        assert_eq!(
            second.to_string(),
            "SFTP folder /outgoing on district@second.example.org:2222"
        );
        let lines = log.0.lock().unwrap();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].1.contains("second.example.org"), "{lines:?}");
        assert!(lines.iter().all(|(_, line)| !line.contains("P4ss-w0rd-9")));
    }

    #[tokio::test]
    async fn unreadable_credentials_fail_the_run_and_are_written_to_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sftp.env");
        std::fs::write(&file, "hostname=sftp.example.org\nusername=district\n").unwrap();
        let log = Lines::default();

        let error = sftp_factory(&file).source_for_run(&log).await.unwrap_err();

        assert!(matches!(
            error.0,
            SecretsError::MissingKey {
                key: "password",
                ..
            }
        ));
        assert_eq!(
            error.to_string(),
            format!(
                "cannot read the SFTP credentials: the development secrets file {} has no \
                 `password` value",
                file.display()
            )
        );
        let lines = log.0.lock().unwrap();
        assert_eq!(lines.as_slice(), [(RunLogLevel::Error, error.to_string())]);
    }

    #[tokio::test]
    async fn the_local_source_needs_no_credentials_and_logs_nothing() {
        let log = Lines::default();
        let source = SourceFactory::local("/srv/inbox")
            .source_for_run(&log)
            .await
            .unwrap();
        assert_eq!(source.to_string(), "local directory /srv/inbox");
        assert!(log.0.lock().unwrap().is_empty());
    }
}
