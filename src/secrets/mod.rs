//! Where the SFTP credentials come from: HashiCorp Vault (or OpenBao) in production,
//! development values for the embedded setup (design §7).
//!
//! The credentials are read at the start of every run, not at startup, so a password
//! or host key rotated in Vault is used by the next run without a restart.
//!
//! # The secret's keys
//!
//! One secret (a KV v2 entry in Vault; `KEY=VALUE` lines in a development file) holds:
//!
//! | key | required | value |
//! |---|---|---|
//! | `hostname` | yes | the SFTP server's host name or address |
//! | `port` | no (22) | its port, 1–65535 (a string or a number) |
//! | `username` | yes | the login name |
//! | `password` | yes, unless `private_key` is set | the password |
//! | `fingerprint` | yes | the server's host key fingerprint, `SHA256:<base64>` as `ssh-keygen -lf` prints it; several separated by commas or spaces while a host key rotation is rolled |
//! | `private_key` | no | an unencrypted OpenSSH/PEM private key, tried before the password |
//!
//! Values are never logged or shown in errors; errors name the key that is missing
//! or invalid and say why.
//!
//! - [`vault`]: Vault KV v2 with token, AppRole or Kubernetes authentication and
//!   token renewal.
//! - [`dev`]: values given by the configuration, or a file; development only.

pub mod dev;
pub mod vault;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

pub use dev::DevSecrets;
pub use vault::{TokenStatus, VaultAuth, VaultSecrets, VaultSettings};

use crate::source::SftpCredentials;
use crate::source::sftp::HostKeyFingerprint;

/// The names of the keys in the credentials secret (see the module documentation).
pub mod keys {
    /// The SFTP server's host name.
    pub const HOSTNAME: &str = "hostname";
    /// The SFTP server's port.
    pub const PORT: &str = "port";
    /// The login name.
    pub const USERNAME: &str = "username";
    /// The password.
    pub const PASSWORD: &str = "password";
    /// The pinned host key fingerprint(s).
    pub const FINGERPRINT: &str = "fingerprint";
    /// An optional private key.
    pub const PRIVATE_KEY: &str = "private_key";
    /// Every key above.
    pub const ALL: [&str; 6] = [HOSTNAME, PORT, USERNAME, PASSWORD, FINGERPRINT, PRIVATE_KEY];
}

/// The configured secrets provider.
///
/// An enum like [`crate::source::FileSource`]: two providers, matched in one place.
#[derive(Debug)]
pub enum SecretsProvider {
    /// HashiCorp Vault or OpenBao.
    Vault(VaultSecrets),
    /// Development values; see [`DevSecrets`].
    Dev(DevSecrets),
}

impl SecretsProvider {
    /// Reads the SFTP credentials now. Call it at the start of each run.
    pub async fn sftp_credentials(&self) -> Result<SftpCredentials, SecretsError> {
        match self {
            Self::Vault(vault) => vault.sftp_credentials().await,
            Self::Dev(dev) => dev.sftp_credentials().await,
        }
    }
}

/// Names the provider for the startup log and `alis-import check`.
impl fmt::Display for SecretsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vault(vault) => vault.fmt(f),
            Self::Dev(dev) => dev.fmt(f),
        }
    }
}

/// Why the credentials could not be read. Messages say where and why, for an operator;
/// they never contain a secret value, token or password.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The Vault address is not a usable `http://` or `https://` URL.
    #[error("the Vault address {address} is not valid: {reason}")]
    InvalidAddress {
        /// The configured address.
        address: String,
        /// Why.
        reason: String,
    },
    /// Vault could not be reached (refused, timed out, TLS failure, name resolution).
    #[error("Vault unreachable at {address}: {detail}")]
    Unreachable {
        /// Vault's address.
        address: String,
        /// The cause.
        detail: String,
    },
    /// The token has no read permission on the secret.
    #[error(
        "permission denied reading {path} from Vault at {address}: the token's policies do \
         not allow reading it"
    )]
    PermissionDenied {
        /// The secret's path, `MOUNT/PATH`.
        path: String,
        /// Vault's address.
        address: String,
    },
    /// There is no secret at the path.
    #[error("no secret at {path} in Vault at {address}")]
    NotFound {
        /// The secret's path, `MOUNT/PATH`.
        path: String,
        /// Vault's address.
        address: String,
    },
    /// The configured token is not (or no longer) valid, and this authentication
    /// method cannot log in again.
    #[error("Vault at {address} rejected the configured token: {detail}")]
    TokenRejected {
        /// Vault's address.
        address: String,
        /// What Vault said.
        detail: String,
    },
    /// Logging in (AppRole, Kubernetes) was refused.
    #[error("Vault {method} login at {address} failed: {detail}")]
    LoginFailed {
        /// `AppRole` or `Kubernetes`.
        method: &'static str,
        /// Vault's address.
        address: String,
        /// What Vault said.
        detail: String,
    },
    /// The Kubernetes service-account token file could not be read.
    #[error("cannot read the Kubernetes service-account token {}: {source}", .path.display())]
    ServiceAccountToken {
        /// The token file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Vault answered with another error (sealed, internal error, …).
    #[error("Vault at {address} answered with an error: {detail}")]
    Vault {
        /// Vault's address.
        address: String,
        /// The status and what Vault said.
        detail: String,
    },
    /// A required key is missing from the secret.
    #[error("the {location} has no `{key}` value")]
    MissingKey {
        /// Which secret, e.g. `Vault secret secret/alis-import/sftp`.
        location: String,
        /// The missing key.
        key: &'static str,
    },
    /// A key's value is not usable. The value itself is not shown.
    #[error("the {location} has an invalid `{key}` value: {reason}")]
    InvalidKey {
        /// Which secret.
        location: String,
        /// The key.
        key: &'static str,
        /// Why the value is not usable.
        reason: String,
    },
    /// The development secrets file could not be read.
    #[error("cannot read the development secrets file {}: {source}", .path.display())]
    DevFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line of the development secrets file is not `KEY=VALUE`.
    #[error("line {line} of the development secrets file {} is not KEY=VALUE", .path.display())]
    DevFileSyntax {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
    },
}

impl SecretsError {
    /// A short, stable word for the kind of failure, for the run's error log and
    /// metrics (like [`crate::source::SftpError::event_kind`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidAddress { .. } => "vault_config_invalid",
            Self::Unreachable { .. } => "vault_unreachable",
            Self::PermissionDenied { .. } => "vault_permission_denied",
            Self::NotFound { .. } => "vault_secret_missing",
            Self::TokenRejected { .. } => "vault_token_rejected",
            Self::LoginFailed { .. } | Self::ServiceAccountToken { .. } => "vault_login_failed",
            Self::Vault { .. } => "vault_error",
            Self::MissingKey { .. } | Self::InvalidKey { .. } => "credentials_invalid",
            Self::DevFile { .. } | Self::DevFileSyntax { .. } => "dev_secrets_unreadable",
        }
    }
}

/// The secret's values by key, each kept secret until it is known not to be one.
pub(crate) type SecretValues = BTreeMap<String, SecretString>;

/// Builds the credentials from the secret's values (see the module documentation for
/// the keys). `location` names the secret in errors.
pub(crate) fn credentials_from(
    values: &SecretValues,
    location: &str,
) -> Result<SftpCredentials, SecretsError> {
    let missing = |key| SecretsError::MissingKey {
        location: location.to_owned(),
        key,
    };
    let invalid = |key, reason: String| SecretsError::InvalidKey {
        location: location.to_owned(),
        key,
        reason,
    };
    let text = |key: &'static str| {
        values
            .get(key)
            .map(|value| value.expose_secret().trim())
            .filter(|value| !value.is_empty())
    };

    let host = text(keys::HOSTNAME).ok_or_else(|| missing(keys::HOSTNAME))?;
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(keys::HOSTNAME, "it contains spaces".into()));
    }
    let port = match text(keys::PORT) {
        None => 22,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| invalid(keys::PORT, "not a port number (1–65535)".into()))?,
    };
    let username = text(keys::USERNAME).ok_or_else(|| missing(keys::USERNAME))?;
    let private_key = values
        .get(keys::PRIVATE_KEY)
        .filter(|key| !key.expose_secret().trim().is_empty())
        .cloned();
    let password = match values.get(keys::PASSWORD) {
        Some(password) if !password.expose_secret().is_empty() => password.clone(),
        _ if private_key.is_some() => SecretString::from(""),
        _ => return Err(missing(keys::PASSWORD)),
    };
    let fingerprints = HostKeyFingerprint::parse_list(
        text(keys::FINGERPRINT).ok_or_else(|| missing(keys::FINGERPRINT))?,
    )
    .map_err(|error| invalid(keys::FINGERPRINT, error.to_string()))?;

    Ok(SftpCredentials {
        host: host.to_owned(),
        port,
        username: username.to_owned(),
        password,
        private_key,
        fingerprints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FINGERPRINT: &str = "SHA256:alqSNwBJ+rjsYgipC3a0hbUlqGtBbQM67vCQiWMH90w";

    fn values(pairs: &[(&str, &str)]) -> SecretValues {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), SecretString::from(*v)))
            .collect()
    }

    fn complete() -> SecretValues {
        values(&[
            ("hostname", "sftp.example.org"),
            ("port", "2222"),
            ("username", "district"),
            ("password", "s3cret"),
            ("fingerprint", FINGERPRINT),
        ])
    }

    #[test]
    fn complete_values_become_credentials() {
        let credentials = credentials_from(&complete(), "test secret").unwrap();
        assert_eq!(credentials.host, "sftp.example.org");
        assert_eq!(credentials.port, 2222);
        assert_eq!(credentials.username, "district");
        assert_eq!(credentials.password.expose_secret(), "s3cret");
        assert_eq!(credentials.fingerprints[0].to_string(), FINGERPRINT);
        assert!(credentials.private_key.is_none());
    }

    #[test]
    fn the_port_defaults_to_22() {
        let mut values = complete();
        values.remove("port");
        assert_eq!(credentials_from(&values, "test secret").unwrap().port, 22);
    }

    #[test]
    fn each_missing_key_is_named() {
        for key in ["hostname", "username", "password", "fingerprint"] {
            let mut values = complete();
            values.remove(key);
            let error = credentials_from(&values, "Vault secret secret/alis").unwrap_err();
            assert!(
                matches!(error, SecretsError::MissingKey { key: k, .. } if k == key),
                "{error:?}"
            );
            assert_eq!(
                error.to_string(),
                format!("the Vault secret secret/alis has no `{key}` value")
            );
        }
    }

    #[test]
    fn an_invalid_value_names_the_key_but_not_the_value() {
        for (key, bad) in [
            ("port", "70000"),
            ("port", "0"),
            ("fingerprint", "MD5:16:27:ac"),
            ("hostname", "sftp example"),
        ] {
            let mut values = complete();
            values.insert(key.to_owned(), bad.into());
            let error = credentials_from(&values, "test secret").unwrap_err();
            assert!(
                matches!(error, SecretsError::InvalidKey { key: k, .. } if k == key),
                "{error:?}"
            );
            assert!(error.to_string().contains(&format!("`{key}`")), "{error}");
        }
    }

    #[test]
    fn a_private_key_makes_the_password_optional() {
        let mut values = complete();
        values.remove("password");
        values.insert(
            "private_key".into(),
            "-----BEGIN OPENSSH PRIVATE KEY-----".into(),
        );
        let credentials = credentials_from(&values, "test secret").unwrap();
        assert!(credentials.private_key.is_some());
        assert_eq!(credentials.password.expose_secret(), "");
    }

    #[test]
    fn credentials_debug_shows_no_secret() {
        let mut values = complete();
        values.insert("private_key".into(), "PRIVATE-KEY-TEXT".into());
        let credentials = credentials_from(&values, "test secret").unwrap();
        let shown = format!("{credentials:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("PRIVATE-KEY-TEXT"), "{shown}");
        assert!(shown.contains("district"), "{shown}");
    }
}
