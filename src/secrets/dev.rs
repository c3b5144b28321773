//! Development secrets: the SFTP credentials given directly by the configuration, or
//! read from a `KEY=VALUE` file. For the embedded setup and local testing only.
//!
//! Nothing here reads the environment: the configuration layer passes the values it
//! was given (flags, environment variables), or a file path.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::{SecretValues, SecretsError, SftpCredentials, credentials_from};

/// Credentials from the configuration or a file, with the same keys as the Vault
/// secret (see [`super`]). Says at construction, in the log, that it is for
/// development only.
pub struct DevSecrets {
    source: DevSource,
}

enum DevSource {
    Values(SecretValues),
    /// Read again at each run, so an edited file takes effect like a rotated secret.
    File(PathBuf),
}

impl DevSecrets {
    /// Credentials from key/value pairs (`hostname`, `port`, `username`, `password`,
    /// `fingerprint`, optionally `private_key`). They are checked when read, at the
    /// start of a run, like Vault's.
    pub fn from_values(values: impl IntoIterator<Item = (String, SecretString)>) -> Self {
        tracing::warn!(
            provider = "dev",
            "SFTP credentials come from the development secrets provider (configuration \
             values): for development only; use Vault in production"
        );
        Self {
            source: DevSource::Values(values.into_iter().collect()),
        }
    }

    /// Credentials from a file of `KEY=VALUE` lines (blank lines and `#` comments
    /// allowed; a value may be wrapped in single or double quotes), read at each run.
    pub fn from_file(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        tracing::warn!(
            provider = "dev",
            file = %path.display(),
            "SFTP credentials come from the development secrets provider (a file): for \
             development only; use Vault in production"
        );
        Self {
            source: DevSource::File(path),
        }
    }

    /// Reads the credentials now.
    pub async fn sftp_credentials(&self) -> Result<SftpCredentials, SecretsError> {
        match &self.source {
            DevSource::Values(values) => credentials_from(values, "development secrets"),
            DevSource::File(path) => {
                let text = tokio::fs::read_to_string(path).await.map_err(|source| {
                    SecretsError::DevFile {
                        path: path.clone(),
                        source,
                    }
                })?;
                let values = parse_file(path, &text)?;
                credentials_from(
                    &values,
                    &format!("development secrets file {}", path.display()),
                )
            }
        }
    }
}

impl fmt::Debug for DevSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            DevSource::Values(values) => f
                .debug_struct("DevSecrets")
                .field("keys", &values.keys().collect::<Vec<_>>())
                .finish(),
            DevSource::File(path) => f.debug_struct("DevSecrets").field("file", path).finish(),
        }
    }
}

impl fmt::Display for DevSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            DevSource::Values(_) => f.write_str("development secrets from the configuration"),
            DevSource::File(path) => {
                write!(f, "development secrets from the file {}", path.display())
            }
        }
    }
}

fn parse_file(path: &Path, text: &str) -> Result<SecretValues, SecretsError> {
    let mut values = SecretValues::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(SecretsError::DevFileSyntax {
                path: path.to_owned(),
                line: index + 1,
            });
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(SecretsError::DevFileSyntax {
                path: path.to_owned(),
                line: index + 1,
            });
        }
        let value = value.trim();
        let value = unquote(value, '"')
            .or_else(|| unquote(value, '\''))
            .unwrap_or(value);
        values.insert(key.to_ascii_lowercase(), SecretString::from(value));
    }
    Ok(values)
}

fn unquote(value: &str, quote: char) -> Option<&str> {
    value.strip_prefix(quote)?.strip_suffix(quote)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    const FINGERPRINT: &str = "SHA256:alqSNwBJ+rjsYgipC3a0hbUlqGtBbQM67vCQiWMH90w";

    #[tokio::test]
    async fn values_from_the_configuration_become_credentials() {
        let dev = DevSecrets::from_values([
            ("hostname".to_owned(), "localhost".into()),
            ("username".to_owned(), "dev".into()),
            ("password".to_owned(), "devpass".into()),
            ("fingerprint".to_owned(), FINGERPRINT.into()),
        ]);
        let credentials = dev.sftp_credentials().await.unwrap();
        assert_eq!(credentials.host, "localhost");
        assert_eq!(credentials.port, 22);
        assert_eq!(credentials.password.expose_secret(), "devpass");
        assert!(!format!("{dev:?}").contains("devpass"));
    }

    #[tokio::test]
    async fn a_file_is_read_at_each_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sftp.env");
        let write = |password: &str| {
            std::fs::write(
                &path,
                format!(
                    "# development SFTP server\n\nHOSTNAME = localhost\nport=2222\n\
                     username='dev'\npassword=\"{password}\"\nfingerprint={FINGERPRINT}\n"
                ),
            )
            .unwrap();
        };
        write("first");
        let dev = DevSecrets::from_file(&path);
        let first = dev.sftp_credentials().await.unwrap();
        write("second");
        let second = dev.sftp_credentials().await.unwrap();

        assert_eq!(first.port, 2222);
        assert_eq!(first.username, "dev");
        assert_eq!(first.password.expose_secret(), "first");
        assert_eq!(second.password.expose_secret(), "second");
    }

    #[tokio::test]
    async fn a_line_that_is_not_key_value_is_named_by_number_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sftp.env");
        std::fs::write(&path, "hostname=localhost\nmy-password-by-itself\n").unwrap();

        let error = DevSecrets::from_file(&path)
            .sftp_credentials()
            .await
            .unwrap_err();

        assert!(
            matches!(error, SecretsError::DevFileSyntax { line: 2, .. }),
            "{error:?}"
        );
        assert!(!error.to_string().contains("my-password"));
    }

    #[tokio::test]
    async fn a_missing_file_is_named() {
        let error = DevSecrets::from_file("/nonexistent/sftp.env")
            .sftp_credentials()
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/sftp.env"),
            "{error}"
        );
    }
}
