//! HashiCorp Vault (or OpenBao) as the source of the SFTP credentials: a KV v2 read
//! at a configured mount and path, after authenticating by token, AppRole or
//! Kubernetes service account, with the token renewed before it expires.
//!
//! vaultrs has no token lifecycle of its own, so it is kept here. A token has a lease
//! (a TTL from when it was obtained); when two thirds of it have passed the token is
//! renewed (`renew-self`), and when it cannot be renewed (not renewable, refused,
//! close to its maximum TTL, expired) a method that can log in (AppRole, Kubernetes)
//! logs in again. A configured static token cannot be replaced: when it expires,
//! reads fail and say so. Renewal happens lazily at each read and, between reads,
//! in [`VaultSecrets::run_until_stopped`] (a weekly run would otherwise find a
//! short-lived token long expired).
//!
//! Nothing secret is logged: vaultrs's settings type derives `Debug` with the token
//! in it, so the client is never formatted, and this module's `Debug` shows only the
//! address, path and method.
//!
//! - `token`: the token's lease, renewal, re-login and the renewal job.
//! - `failure`: Vault's errors in an operator's words.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::Mutex;
use tokio::time::Instant;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use super::{SecretValues, SecretsError, SftpCredentials, credentials_from};

mod failure;
mod token;

use failure::{Call, error_chain};
use token::Lease;

/// Where the secret is and how to authenticate. Part of the service's configuration.
#[derive(Debug, Clone)]
pub struct VaultSettings {
    /// Vault's address, `http(s)://host:port`.
    pub address: String,
    /// The KV v2 secrets engine's mount (`secret` in a dev server).
    pub mount: String,
    /// The secret's path within the mount, e.g. `alis-import/sftp`.
    pub path: String,
    /// How to authenticate.
    pub auth: VaultAuth,
    /// A PEM CA bundle to trust for an `https` address (besides the system's roots).
    pub ca_cert: Option<PathBuf>,
    /// A Vault Enterprise / OpenBao namespace, if any.
    pub namespace: Option<String>,
    /// How long one HTTP request to Vault may take.
    pub request_timeout: Duration,
}

impl VaultSettings {
    /// Settings for the secret at `path` in the `secret` mount, with a 10 s request
    /// timeout, no extra CA and no namespace.
    pub fn new(address: impl Into<String>, path: impl Into<String>, auth: VaultAuth) -> Self {
        Self {
            address: address.into(),
            mount: "secret".into(),
            path: path.into(),
            auth,
            ca_cert: None,
            namespace: None,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// How to authenticate to Vault. Secret parts are `SecretString`s (redacted in
/// `Debug`).
#[derive(Debug, Clone)]
pub enum VaultAuth {
    /// A token given by the configuration. It is renewed while renewable; once it
    /// expires, reads fail until it is replaced.
    Token(SecretString),
    /// AppRole: a role ID and secret ID, exchanged for a token.
    AppRole {
        /// The AppRole auth mount (`approle` by default).
        mount: String,
        /// The role ID.
        role_id: String,
        /// The secret ID.
        secret_id: SecretString,
    },
    /// Kubernetes: the pod's service-account token, exchanged for a Vault token.
    Kubernetes {
        /// The Kubernetes auth mount (`kubernetes` by default).
        mount: String,
        /// The Vault role bound to the service account.
        role: String,
        /// The service-account token file, read at each login (projected tokens
        /// rotate): [`VaultAuth::KUBERNETES_TOKEN_PATH`] by default.
        jwt_path: PathBuf,
    },
}

impl VaultAuth {
    /// Where Kubernetes mounts a pod's service-account token.
    pub const KUBERNETES_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

    fn method(&self) -> &'static str {
        match self {
            Self::Token(_) => "token",
            Self::AppRole { .. } => "AppRole",
            Self::Kubernetes { .. } => "Kubernetes",
        }
    }

    fn can_log_in(&self) -> bool {
        !matches!(self, Self::Token(_))
    }
}

/// The Vault token's state, for `alis-import check`, metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenStatus {
    /// Logins performed (AppRole, Kubernetes) since startup.
    pub logins: u64,
    /// Successful renewals since startup.
    pub renewals: u64,
    /// Time left on the current token; `None` before the first use, or when the
    /// token does not expire.
    pub expires_in: Option<Duration>,
    /// Whether the current token can be renewed.
    pub renewable: bool,
}

/// Reads the SFTP credentials from Vault; see the module documentation.
///
/// Cheap to clone; clones share the token, so the renewal job
/// ([`VaultSecrets::run_until_stopped`]) and the runs can each hold one.
#[derive(Clone)]
pub struct VaultSecrets {
    inner: Arc<Shared>,
}

struct Shared {
    settings: VaultSettings,
    state: Mutex<TokenState>,
    logins: AtomicU64,
    renewals: AtomicU64,
}

struct TokenState {
    /// Carries the current token.
    client: VaultClient,
    /// The current token's lease; `None` until a token has been obtained (or checked,
    /// for a configured token).
    lease: Option<Lease>,
}

impl VaultSecrets {
    /// A provider for `settings`. Checks the address and CA file path; contacts
    /// nothing until the first read.
    pub fn new(settings: VaultSettings) -> Result<Self, SecretsError> {
        let invalid = |reason: String| SecretsError::InvalidAddress {
            address: settings.address.clone(),
            reason,
        };
        let url = url::Url::parse(&settings.address).map_err(|error| invalid(error.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid(
                "expected http://HOST:PORT or https://HOST:PORT".into(),
            ));
        }
        // Every field is set explicitly: vaultrs's defaults read VAULT_* environment
        // variables, and nothing below the configuration should.
        let mut builder = VaultClientSettingsBuilder::default();
        builder
            .address(url.as_str())
            .token(String::new())
            .timeout(Some(settings.request_timeout))
            .verify(true)
            .ca_certs(
                settings
                    .ca_cert
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect(),
            )
            .identity(None)
            .namespace(settings.namespace.clone());
        let client_settings = builder
            .build()
            .map_err(|error| invalid(error.to_string()))?;
        let client = VaultClient::new(client_settings).map_err(|error| SecretsError::Vault {
            address: settings.address.clone(),
            detail: error_chain(&error),
        })?;
        Ok(Self {
            inner: Arc::new(Shared {
                settings,
                state: Mutex::new(TokenState {
                    client,
                    lease: None,
                }),
                logins: AtomicU64::new(0),
                renewals: AtomicU64::new(0),
            }),
        })
    }

    /// Reads the SFTP credentials now (authenticating or renewing first if needed).
    #[tracing::instrument(
        name = "read_sftp_credentials",
        skip_all,
        fields(address = %self.inner.settings.address, path = %self.secret_path())
    )]
    pub async fn sftp_credentials(&self) -> Result<SftpCredentials, SecretsError> {
        let result = async {
            let values = self.read_secret().await?;
            credentials_from(&values, &format!("Vault secret {}", self.secret_path()))
        }
        .await;
        if let Err(error) = &result {
            tracing::warn!(
                address = %self.inner.settings.address,
                path = %self.secret_path(),
                error = %error,
                "cannot read the SFTP credentials from Vault"
            );
        }
        result
    }

    /// The token's state.
    pub async fn token_status(&self) -> TokenStatus {
        let lease = self.inner.state.lock().await.lease;
        let now = Instant::now();
        TokenStatus {
            logins: self.inner.logins.load(Ordering::Relaxed),
            renewals: self.inner.renewals.load(Ordering::Relaxed),
            expires_in: lease
                .and_then(|lease| lease.expires_at())
                .map(|at| at.saturating_duration_since(now)),
            renewable: lease.is_some_and(|lease| lease.renewable),
        }
    }

    fn secret_path(&self) -> String {
        format!(
            "{}/{}",
            self.inner.settings.mount.trim_matches('/'),
            self.inner.settings.path.trim_matches('/')
        )
    }

    async fn read_secret(&self) -> Result<SecretValues, SecretsError> {
        let mut state = self.inner.state.lock().await;
        let logins_before = self.inner.logins.load(Ordering::Relaxed);
        self.ensure_token(&mut state).await?;
        let data = match self.read_kv(&state.client).await {
            // A token revoked or expired behind our back looks like a denied read; a
            // method that can log in tries once more with a fresh token.
            Err(ClientError::APIError { code: 403, .. })
                if self.inner.settings.auth.can_log_in()
                    && self.inner.logins.load(Ordering::Relaxed) == logins_before =>
            {
                self.log_in(&mut state).await?;
                self.read_kv(&state.client).await
            }
            other => other,
        }
        .map_err(|error| self.failure(error, Call::Read))?;
        self.values_from(data)
    }

    async fn read_kv(
        &self,
        client: &VaultClient,
    ) -> Result<HashMap<String, serde_json::Value>, ClientError> {
        vaultrs::kv2::read(
            client,
            self.inner.settings.mount.trim_matches('/'),
            self.inner.settings.path.trim_matches('/'),
        )
        .await
    }

    fn values_from(
        &self,
        data: HashMap<String, serde_json::Value>,
    ) -> Result<SecretValues, SecretsError> {
        let mut values = SecretValues::new();
        for (key, value) in data {
            let text = match value {
                serde_json::Value::String(text) => text,
                serde_json::Value::Number(number) => number.to_string(),
                serde_json::Value::Null => continue,
                _ => {
                    if let Some(key) = super::keys::ALL.iter().find(|k| **k == key) {
                        return Err(SecretsError::InvalidKey {
                            location: format!("Vault secret {}", self.secret_path()),
                            key,
                            reason: "expected a string".into(),
                        });
                    }
                    continue;
                }
            };
            values.insert(key, SecretString::from(text));
        }
        Ok(values)
    }
}

impl fmt::Debug for VaultSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultSecrets")
            .field("address", &self.inner.settings.address)
            .field("secret", &self.secret_path())
            .field("auth", &self.inner.settings.auth.method())
            .finish_non_exhaustive()
    }
}

/// `Vault at https://vault:8200 (secret secret/alis-import/sftp, AppRole auth)`.
impl fmt::Display for VaultSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Vault at {} (secret {}, {} auth)",
            self.inner.settings.address,
            self.secret_path(),
            self.inner.settings.auth.method()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_address_is_refused_before_any_request() {
        for address in ["vault:8200", "ftp://vault:8200", "http://", "not a url"] {
            let error = VaultSecrets::new(VaultSettings::new(
                address,
                "alis/sftp",
                VaultAuth::Token("t".into()),
            ))
            .unwrap_err();
            assert!(
                matches!(error, SecretsError::InvalidAddress { .. }),
                "{address}: {error:?}"
            );
        }
    }

    #[test]
    fn debug_and_display_show_no_token_or_secret_id() {
        let vault = VaultSecrets::new(VaultSettings::new(
            "http://127.0.0.1:8200",
            "alis/sftp",
            VaultAuth::AppRole {
                mount: "approle".into(),
                role_id: "role-1".into(),
                secret_id: "SECRET-ID-VALUE".into(),
            },
        ))
        .unwrap();
        let settings = VaultSettings::new(
            "http://127.0.0.1:8200",
            "alis/sftp",
            VaultAuth::Token("TOKEN-VALUE".into()),
        );
        for shown in [
            format!("{vault:?}"),
            vault.to_string(),
            format!("{settings:?}"),
        ] {
            assert!(!shown.contains("SECRET-ID-VALUE"), "{shown}");
            assert!(!shown.contains("TOKEN-VALUE"), "{shown}");
        }
        assert_eq!(
            vault.to_string(),
            "Vault at http://127.0.0.1:8200 (secret secret/alis/sftp, AppRole auth)"
        );
    }
}
