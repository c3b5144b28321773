//! The Vault token's lifecycle: obtaining one, renewing it after two thirds of its
//! TTL, logging in again when it cannot be renewed, and the job that keeps it alive
//! between runs.

use std::sync::atomic::Ordering;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vaultrs::api::AuthInfo;
use vaultrs::client::Client;

use super::failure::{Call, error_chain};
use super::{SecretsError, TokenState, VaultAuth, VaultSecrets};

/// How long the renewal job waits after a failed renewal before trying again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);
/// How long the renewal job sleeps when the token never expires; it only checks.
const IDLE_CHECK: Duration = Duration::from_secs(3600);
/// The renewal job never loops faster than this, whatever the TTL.
const MIN_WAIT: Duration = Duration::from_millis(250);

/// A token's lease as this client knows it: when it was obtained and for how long.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lease {
    /// When the token was obtained or last renewed (just before the request).
    pub(super) obtained: Instant,
    /// `None`: the token does not expire (a root token, say).
    pub(super) ttl: Option<Duration>,
    /// Whether Vault allows renewing it (batch tokens, for one, are not).
    pub(super) renewable: bool,
}

impl Lease {
    pub(super) fn new(obtained: Instant, ttl_seconds: u64, renewable: bool) -> Self {
        Self {
            obtained,
            ttl: (ttl_seconds > 0).then(|| Duration::from_secs(ttl_seconds)),
            renewable,
        }
    }

    /// When to renew: after two thirds of the TTL, leaving a third for retries.
    pub(super) fn renew_at(&self) -> Option<Instant> {
        self.ttl.map(|ttl| self.obtained + ttl * 2 / 3)
    }

    pub(super) fn expires_at(&self) -> Option<Instant> {
        self.ttl.map(|ttl| self.obtained + ttl)
    }

    pub(super) fn is_expired(&self, now: Instant) -> bool {
        self.expires_at().is_some_and(|at| now >= at)
    }

    pub(super) fn is_due(&self, now: Instant) -> bool {
        self.renew_at().is_some_and(|at| now >= at)
    }
}

impl VaultSecrets {
    /// One step of the renewal job: obtains a token if there is none, renews it if
    /// two thirds of its TTL have passed, logs in again if it cannot be renewed.
    /// Returns when the next renewal is due (`None`: the token does not expire).
    pub async fn try_execute_once(&self) -> Result<Option<Instant>, SecretsError> {
        let mut state = self.inner.state.lock().await;
        self.ensure_token(&mut state).await?;
        Ok(state.lease.and_then(|lease| lease.renew_at()))
    }

    /// Renews the token now, whether due or not (or logs in again if it cannot be
    /// renewed).
    pub async fn renew_token(&self) -> Result<(), SecretsError> {
        let mut state = self.inner.state.lock().await;
        match state.lease {
            None => self.obtain_token(&mut state).await,
            Some(_) => self.renew(&mut state).await,
        }
    }

    /// Keeps the token alive between runs until `cancel` fires: renews it when due,
    /// retries after a failure (logged as a warning; the next read reports it if it
    /// persists).
    pub async fn run_until_stopped(&self, cancel: CancellationToken) {
        loop {
            let wait = match self.try_execute_once().await {
                Ok(Some(due)) => due.saturating_duration_since(Instant::now()),
                Ok(None) => IDLE_CHECK,
                Err(error) => {
                    tracing::warn!(
                        address = %self.inner.settings.address,
                        error = %error,
                        "Vault token renewal failed; trying again"
                    );
                    RETRY_AFTER_FAILURE
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait.max(MIN_WAIT)) => {}
            }
        }
    }

    pub(super) async fn ensure_token(&self, state: &mut TokenState) -> Result<(), SecretsError> {
        let now = Instant::now();
        match state.lease {
            None => self.obtain_token(state).await,
            Some(lease) if lease.is_expired(now) => {
                if self.inner.settings.auth.can_log_in() {
                    self.log_in(state).await
                } else {
                    Err(SecretsError::TokenRejected {
                        address: self.inner.settings.address.clone(),
                        detail: "the token has expired; configure a new one".into(),
                    })
                }
            }
            Some(lease) if lease.is_due(now) => self.renew(state).await,
            Some(_) => Ok(()),
        }
    }

    /// Logs in, or for a configured token, looks it up to learn its TTL.
    async fn obtain_token(&self, state: &mut TokenState) -> Result<(), SecretsError> {
        match &self.inner.settings.auth {
            VaultAuth::Token(token) => self.look_up_token(state, token).await,
            _ => self.log_in(state).await,
        }
    }

    async fn look_up_token(
        &self,
        state: &mut TokenState,
        token: &SecretString,
    ) -> Result<(), SecretsError> {
        state.client.set_token(token.expose_secret());
        let started = Instant::now();
        let info = vaultrs::token::lookup_self(&state.client)
            .await
            .map_err(|error| self.failure(error, Call::Token))?;
        state.lease = Some(Lease::new(
            started,
            info.ttl,
            info.renewable.unwrap_or(false),
        ));
        Ok(())
    }

    pub(super) async fn log_in(&self, state: &mut TokenState) -> Result<(), SecretsError> {
        let method = self.inner.settings.auth.method();
        // Login endpoints need no token; an expired one must not be sent along.
        state.client.set_token("");
        state.lease = None;
        let started = Instant::now();
        let info: AuthInfo = match &self.inner.settings.auth {
            VaultAuth::Token(token) => return self.look_up_token(state, token).await,
            VaultAuth::AppRole {
                mount,
                role_id,
                secret_id,
            } => vaultrs::auth::approle::login(
                &state.client,
                mount,
                role_id,
                secret_id.expose_secret(),
            )
            .await
            .map_err(|error| self.failure(error, Call::Login(method)))?,
            VaultAuth::Kubernetes {
                mount,
                role,
                jwt_path,
            } => {
                let jwt = SecretString::from(
                    tokio::fs::read_to_string(jwt_path)
                        .await
                        .map_err(|source| SecretsError::ServiceAccountToken {
                            path: jwt_path.clone(),
                            source,
                        })?
                        .trim()
                        .to_owned(),
                );
                vaultrs::auth::kubernetes::login(&state.client, mount, role, jwt.expose_secret())
                    .await
                    .map_err(|error| self.failure(error, Call::Login(method)))?
            }
        };
        state.client.set_token(&info.client_token);
        state.lease = Some(Lease::new(started, info.lease_duration, info.renewable));
        self.inner.logins.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            address = %self.inner.settings.address,
            method,
            ttl_s = info.lease_duration,
            renewable = info.renewable,
            "logged in to Vault"
        );
        Ok(())
    }

    async fn renew(&self, state: &mut TokenState) -> Result<(), SecretsError> {
        let can_log_in = self.inner.settings.auth.can_log_in();
        let Some(lease) = state.lease else {
            return self.obtain_token(state).await;
        };
        if !lease.renewable {
            // A batch token, say: only a new login gives a new lease.
            return if can_log_in {
                self.log_in(state).await
            } else {
                Ok(())
            };
        }
        let started = Instant::now();
        match vaultrs::token::renew_self(&state.client, None).await {
            Ok(info) => {
                self.inner.renewals.fetch_add(1, Ordering::Relaxed);
                let renewed = Lease::new(started, info.lease_duration, info.renewable);
                // Vault caps a renewal at the token's maximum TTL; when the granted
                // lease has shrunk to under half the original, a fresh login lasts
                // longer than renewing again.
                let shrunk = match (renewed.ttl, lease.ttl) {
                    (Some(new), Some(old)) => new < old / 2,
                    _ => false,
                };
                if shrunk && can_log_in {
                    return self.log_in(state).await;
                }
                if shrunk {
                    tracing::warn!(
                        address = %self.inner.settings.address,
                        ttl_s = info.lease_duration,
                        "the Vault token is close to its maximum TTL and cannot be renewed \
                         beyond it; configure a new token before it expires"
                    );
                }
                state.lease = Some(renewed);
                tracing::debug!(
                    address = %self.inner.settings.address,
                    ttl_s = info.lease_duration,
                    "renewed the Vault token"
                );
                Ok(())
            }
            Err(error) if can_log_in => {
                tracing::info!(
                    address = %self.inner.settings.address,
                    error = %error_chain(&error),
                    "cannot renew the Vault token; logging in again"
                );
                self.log_in(state).await
            }
            Err(error) => Err(self.failure(error, Call::Token)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_due_after_two_thirds_and_expired_at_its_ttl() {
        let start = Instant::now();
        let lease = Lease::new(start, 30, true);
        assert!(!lease.is_due(start + Duration::from_secs(19)));
        assert!(lease.is_due(start + Duration::from_secs(20)));
        assert!(!lease.is_expired(start + Duration::from_secs(29)));
        assert!(lease.is_expired(start + Duration::from_secs(30)));
    }

    #[test]
    fn a_token_without_ttl_is_never_due() {
        let start = Instant::now();
        let lease = Lease::new(start, 0, false);
        assert_eq!(lease.renew_at(), None);
        assert!(!lease.is_expired(start + Duration::from_secs(1 << 30)));
    }
}
