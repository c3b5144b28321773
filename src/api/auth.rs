//! Who may call what (design §4.1): bearer JWTs verified against configured keys,
//! roles from a configured claim.
//!
//! | role | may call |
//! |---|---|
//! | `viewer` | ListTasks, GetTask, GetRun, WatchRun, GetReport, DownloadReport, GetRunLog |
//! | `operator` | everything a viewer may, plus ScheduleTask, DeleteTask, RunNow |
//! | `cert-editor` | AcquireCertLock, ReleaseCertLock |
//!
//! A missing, malformed, expired or wrongly signed token, or one from another issuer or
//! for another audience, is `UNAUTHENTICATED`; a valid token without the role the RPC
//! needs is `PERMISSION_DENIED`. "Run by" is the token's `sub`, never a request field.
//! Health and reflection are not behind this interceptor: probes and grpcurl's
//! discovery need no token.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use super::identity::Identity;

/// A role a caller may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads tasks, runs, reports and logs.
    Viewer,
    /// A viewer who also schedules tasks and starts runs.
    Operator,
    /// The ERP's certification-edit service: takes and releases edit leases.
    CertEditor,
}

impl Role {
    /// The role's name in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::CertEditor => "cert-editor",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [Self::Viewer, Self::Operator, Self::CertEditor]
            .into_iter()
            .find(|r| r.as_str() == name)
    }
}

/// The most clock skew accepted between the token issuer and this service.
const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Token verification settings. Setting a key turns authentication on.
#[derive(Debug, Clone, Default, Args)]
pub struct AuthArgs {
    /// PEM public key (RSA for RS256, EC P-256 for ES256) that signs callers' tokens.
    #[arg(long, env = "ALIS_AUTH_PUBLIC_KEY_FILE")]
    pub auth_public_key_file: Option<PathBuf>,

    /// JWKS file (a JSON Web Key Set) with the keys that sign callers' tokens; a
    /// token's `kid` picks its key.
    #[arg(long, env = "ALIS_AUTH_JWKS_FILE")]
    pub auth_jwks_file: Option<PathBuf>,

    /// File holding a shared HS256 secret. Only with `--auth-allow-hs256`: a shared
    /// secret lets every holder mint tokens, so prefer public keys.
    #[arg(long, env = "ALIS_AUTH_HS256_SECRET_FILE")]
    pub auth_hs256_secret_file: Option<PathBuf>,

    /// Accept HS256 tokens signed with `--auth-hs256-secret-file`.
    #[arg(long, env = "ALIS_AUTH_ALLOW_HS256")]
    pub auth_allow_hs256: bool,

    /// Required `iss` of tokens.
    #[arg(long, env = "ALIS_AUTH_ISSUER")]
    pub auth_issuer: Option<String>,

    /// Required `aud` of tokens.
    #[arg(long, env = "ALIS_AUTH_AUDIENCE")]
    pub auth_audience: Option<String>,

    /// The claim holding the caller's roles (a list, or a space-separated string); a
    /// dotted path reaches into objects, e.g. `realm_access.roles`.
    #[arg(long, env = "ALIS_AUTH_ROLES_CLAIM", default_value = "roles")]
    pub auth_roles_claim: String,

    /// Extra names for roles, `NAME=ROLE` (e.g. `hr-staff=viewer`), comma-separated
    /// or repeated; ROLE is viewer, operator or cert-editor.
    #[arg(long, env = "ALIS_AUTH_ROLE_ALIASES", value_delimiter = ',')]
    pub auth_role_aliases: Vec<String>,

    /// Clock skew accepted on `exp` and `nbf` (at most 5 minutes).
    #[arg(long, env = "ALIS_AUTH_LEEWAY", default_value = "30s", value_parser = humantime::parse_duration)]
    pub auth_leeway: Duration,
}

impl AuthArgs {
    /// Whether any key is configured (authentication is on).
    pub fn is_configured(&self) -> bool {
        self.auth_public_key_file.is_some()
            || self.auth_jwks_file.is_some()
            || self.auth_hs256_secret_file.is_some()
    }
}

/// A verification key and the algorithm it verifies.
struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies bearer tokens and turns them into identities.
pub struct Authenticator {
    keys: Vec<Key>,
    issuer: Option<String>,
    audience: Option<String>,
    roles_claim: Vec<String>,
    aliases: HashMap<String, Role>,
    leeway: Duration,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("keys", &self.keys.len())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused (logged; the caller only learns UNAUTHENTICATED).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No `authorization: Bearer …` metadata.
    #[error("no bearer token")]
    Missing,
    /// No configured key verifies it, or a claim check failed.
    #[error("invalid token: {0}")]
    Invalid(String),
}

impl Authenticator {
    /// The authenticator the flags describe; `None` when authentication is off.
    pub fn from_args(args: &AuthArgs) -> anyhow::Result<Option<Self>> {
        if !args.is_configured() {
            return Ok(None);
        }
        anyhow::ensure!(
            args.auth_leeway <= MAX_LEEWAY,
            "--auth-leeway must be at most {}",
            humantime::format_duration(MAX_LEEWAY)
        );
        let mut keys = Vec::new();
        if let Some(path) = &args.auth_public_key_file {
            let pem =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let key = if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                Key {
                    kid: None,
                    algorithm: Algorithm::ES256,
                    key,
                }
            } else {
                let key = DecodingKey::from_rsa_pem(&pem).with_context(|| {
                    format!(
                        "{} is neither an EC P-256 nor an RSA public key in PEM",
                        path.display()
                    )
                })?;
                Key {
                    kid: None,
                    algorithm: Algorithm::RS256,
                    key,
                }
            };
            keys.push(key);
        }
        if let Some(path) = &args.auth_jwks_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let set: JwkSet = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a JWKS", path.display()))?;
            for jwk in &set.keys {
                let algorithm = match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    _ => anyhow::bail!("{}: only RSA and EC keys are supported", path.display()),
                };
                let key = DecodingKey::from_jwk(jwk)
                    .with_context(|| format!("{}: unusable key", path.display()))?;
                keys.push(Key {
                    kid: jwk.common.key_id.clone(),
                    algorithm,
                    key,
                });
            }
        }
        if let Some(path) = &args.auth_hs256_secret_file {
            anyhow::ensure!(
                args.auth_allow_hs256,
                "--auth-hs256-secret-file needs --auth-allow-hs256 (shared secrets let every holder mint tokens)"
            );
            let secret =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let secret = secret.trim_ascii();
            anyhow::ensure!(
                secret.len() >= 32,
                "the HS256 secret must be at least 32 bytes"
            );
            keys.push(Key {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret).context("unusable HS256 secret")?,
            });
        }
        anyhow::ensure!(!keys.is_empty(), "no token verification key configured");
        let mut aliases = HashMap::new();
        for alias in &args.auth_role_aliases {
            let (name, role) = alias
                .split_once('=')
                .with_context(|| format!("role alias {alias:?} is not NAME=ROLE"))?;
            let role = Role::from_name(role.trim())
                .with_context(|| format!("role alias {alias:?}: unknown role {role:?}"))?;
            aliases.insert(name.trim().to_owned(), role);
        }
        Ok(Some(Self {
            keys,
            issuer: args.auth_issuer.clone(),
            audience: args.auth_audience.clone(),
            roles_claim: args
                .auth_roles_claim
                .split('.')
                .map(str::to_owned)
                .collect(),
            aliases,
            leeway: args.auth_leeway,
        }))
    }

    /// Verifies a token (signature, `exp`, `nbf`, issuer, audience) and reads the
    /// caller's subject and roles from it.
    pub fn authenticate(&self, token: &str) -> Result<Identity, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        let candidates = self.keys.iter().filter(|k| {
            k.algorithm == header.alg
                && (header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
        });
        let mut last_error = TokenError::Invalid(format!("no key for algorithm {:?}", header.alg));
        for key in candidates {
            let mut validation = Validation::new(key.algorithm);
            validation.leeway = self.leeway.as_secs();
            validation.validate_nbf = true;
            let mut required = vec!["exp", "sub"];
            if let Some(issuer) = &self.issuer {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            match &self.audience {
                Some(audience) => {
                    validation.set_audience(&[audience]);
                    required.push("aud");
                }
                None => validation.validate_aud = false,
            }
            validation.set_required_spec_claims(&required);
            match jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation) {
                Ok(data) => return self.identity(&data.claims),
                Err(error) => last_error = TokenError::Invalid(error.to_string()),
            }
        }
        Err(last_error)
    }

    fn identity(&self, claims: &serde_json::Value) -> Result<Identity, TokenError> {
        let subject = claims
            .get("sub")
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| TokenError::Invalid("no subject".into()))?;
        let mut value = Some(claims);
        for part in &self.roles_claim {
            value = value.and_then(|v| v.get(part));
        }
        let names: Vec<&str> = match value {
            Some(serde_json::Value::Array(items)) => {
                items.iter().filter_map(|v| v.as_str()).collect()
            }
            Some(serde_json::Value::String(text)) => text.split_whitespace().collect(),
            _ => Vec::new(),
        };
        let roles = names
            .into_iter()
            .filter_map(|name| Role::from_name(name).or_else(|| self.aliases.get(name).copied()))
            .collect();
        Ok(Identity {
            subject: subject.to_owned(),
            roles,
        })
    }
}

/// The interceptor that puts an [`Identity`] on every request of the service.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// No authentication configured (loopback only): every caller is the local
    /// operator, with every role.
    Local(String),
    /// Bearer tokens verified by the authenticator.
    Tokens(Arc<Authenticator>),
}

impl Interceptor for Authentication {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let identity = match self {
            Self::Local(subject) => Identity::local(subject.clone()),
            Self::Tokens(authenticator) => {
                let token = request
                    .metadata()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| {
                        v.strip_prefix("Bearer ")
                            .or_else(|| v.strip_prefix("bearer "))
                    })
                    .ok_or(TokenError::Missing);
                match token.and_then(|t| authenticator.authenticate(t.trim())) {
                    Ok(identity) => identity,
                    Err(error) => {
                        tracing::info!(%error, "request refused: not authenticated");
                        return Err(Status::unauthenticated("a valid bearer token is required"));
                    }
                }
            }
        };
        request.extensions_mut().insert(identity);
        Ok(request)
    }
}

/// The caller's identity, if it holds `role` (operators hold viewer rights too).
pub fn require<T>(request: &Request<T>, role: Role) -> Result<Identity, Status> {
    let identity = request
        .extensions()
        .get::<Identity>()
        .ok_or_else(|| Status::unauthenticated("a valid bearer token is required"))?;
    let allowed = identity.roles.contains(&role)
        || (role == Role::Viewer && identity.roles.contains(&Role::Operator));
    if allowed {
        Ok(identity.clone())
    } else {
        Err(Status::permission_denied(format!(
            "this call needs the {} role",
            role.as_str()
        )))
    }
}

/// Every role, for the local operator.
pub fn all_roles() -> BTreeSet<Role> {
    [Role::Viewer, Role::Operator, Role::CertEditor]
        .into_iter()
        .collect()
}
