//! Vault's and the HTTP client's errors, turned into what an operator needs to know.

use vaultrs::error::ClientError;

use super::{SecretsError, VaultSecrets};

/// What a failed call was doing, which decides what a 403 or 404 means.
#[derive(Clone, Copy)]
pub(super) enum Call {
    /// Reading the secret: 403 is a missing policy, 404 a missing secret.
    Read,
    /// Logging in with the named method: 400/403 is refused credentials.
    Login(&'static str),
    /// Looking up or renewing the token: 403 is a dead token.
    Token,
}

impl VaultSecrets {
    /// The operator-facing error for a failed call.
    pub(super) fn failure(&self, error: ClientError, call: Call) -> SecretsError {
        let address = self.inner.settings.address.clone();
        match error {
            ClientError::APIError { code, errors } => {
                let said = if errors.is_empty() {
                    format!("HTTP {code}")
                } else {
                    format!("HTTP {code}: {}", errors.join("; ").trim())
                };
                match (call, code) {
                    (Call::Read, 403) => SecretsError::PermissionDenied {
                        path: self.secret_path(),
                        address,
                    },
                    (Call::Read, 404) => SecretsError::NotFound {
                        path: self.secret_path(),
                        address,
                    },
                    (Call::Login(method), 400 | 403) => SecretsError::LoginFailed {
                        method,
                        address,
                        detail: said,
                    },
                    (Call::Token, 403) => SecretsError::TokenRejected {
                        address,
                        detail: format!("{said} (expired, revoked or unknown)"),
                    },
                    _ => SecretsError::Vault {
                        address,
                        detail: said,
                    },
                }
            }
            ClientError::RestClientError { source } => unreachable_or_other(address, source),
            other => SecretsError::Vault {
                address,
                detail: error_chain(&other),
            },
        }
    }
}

/// Transport failures (refused, timed out, TLS) are "unreachable"; a non-JSON error
/// answer is a Vault error with its status.
fn unreachable_or_other(address: String, error: rustify::errors::ClientError) -> SecretsError {
    use rustify::errors::ClientError as Rest;
    match &error {
        Rest::ServerResponseError { code, .. } => SecretsError::Vault {
            address,
            detail: format!("HTTP {code}"),
        },
        Rest::RequestError { .. } | Rest::ResponseError { .. } => SecretsError::Unreachable {
            address,
            detail: error_chain(&error),
        },
        _ => SecretsError::Vault {
            address,
            detail: error_chain(&error),
        },
    }
}

/// An error and its causes, `: `-joined, without the libraries' generic wrappers.
pub(super) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    const WRAPPERS: [&str; 3] = [
        "An error occurred with the request",
        "Error sending HTTP request",
        "Error retrieving HTTP response",
    ];
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        let text = error.to_string();
        if !WRAPPERS.contains(&text.as_str()) && !parts.contains(&text) {
            parts.push(text);
        }
        next = error.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}
