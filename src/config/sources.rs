//! The settings of where ALiS files come from: the source kind, the SFTP time limits,
//! and the secrets provider that holds the SFTP credentials (Vault, or a development
//! file). `serve` and `check` share them, so `check` tests exactly what the server uses.
//!
//! The names are the ones the Helm chart sets (`ALIS_SOURCE`, `VAULT_ADDR`,
//! `ALIS_VAULT_AUTH`, `ALIS_VAULT_ROLE`, `ALIS_VAULT_KV_MOUNT`, `ALIS_VAULT_SFTP_PATH`,
//! `ALIS_VAULT_KUBERNETES_TOKEN_FILE`, `VAULT_CACERT`). Vault's own credentials (a
//! token, an AppRole secret ID) are read from files, never from flags or environment
//! values: a command line is visible to every user of the machine, and files are how
//! Kubernetes hands Secrets to a pod.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use secrecy::SecretString;

use crate::secrets::{DevSecrets, SecretsProvider, VaultAuth, VaultSecrets, VaultSettings};
use crate::source::{SftpSettings, SourceFactory};

/// Where ALiS files come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKind {
    /// The local inbox folder (`--inbox-dir`): development and manual drops.
    Local,
    /// The state's SFTP server, with credentials from the secrets provider.
    Sftp,
}

/// How the service authenticates to Vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VaultAuthMethod {
    /// A token read from `--vault-token-file`.
    Token,
    /// AppRole: `--vault-role-id` and the secret ID from `--vault-secret-id-file`.
    Approle,
    /// Kubernetes: the pod's service-account token (`--vault-kubernetes-token-file`)
    /// exchanged for a Vault token of `--vault-role`.
    Kubernetes,
}

/// The source of ALiS files and, for SFTP, where its credentials come from.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Where ALiS files come from: `local` (the inbox folder, the embedded default) or
    /// `sftp` (the state's SFTP server; credentials from Vault when `VAULT_ADDR` is
    /// set, otherwise from `--dev-secrets-file`).
    #[arg(long = "source", env = "ALIS_SOURCE", default_value = "local")]
    pub kind: SourceKind,

    /// The folder on the SFTP server holding the ALiS files: absolute, or relative to
    /// the login's home directory.
    #[arg(long, env = "ALIS_SFTP_FOLDER", default_value = ".")]
    pub sftp_folder: String,

    /// How long to wait for the SFTP server to accept the TCP connection.
    #[arg(long, env = "ALIS_SFTP_CONNECT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub sftp_connect_timeout: Duration,

    /// How long the SSH handshake (with the host key check) may take, and again how
    /// long logging in may take: a server that accepts but does not answer fails after
    /// this.
    #[arg(long, env = "ALIS_SFTP_HANDSHAKE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub sftp_handshake_timeout: Duration,

    /// How long an open SFTP session may wait for any one answer (a listing, a block of
    /// the file) before the run gives up on a stalled server or network.
    #[arg(long, env = "ALIS_SFTP_INACTIVITY_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub sftp_inactivity_timeout: Duration,

    /// How often an SSH keepalive is sent while the session is otherwise idle.
    #[arg(long, env = "ALIS_SFTP_KEEPALIVE_INTERVAL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub sftp_keepalive_interval: Duration,

    /// Vault, where the SFTP credentials live in production.
    #[command(flatten)]
    pub vault: VaultArgs,

    /// Development only: a file of `KEY=VALUE` lines holding the SFTP credentials (the
    /// keys of the Vault secret), read at the start of each run. Used with
    /// `--source sftp` when `VAULT_ADDR` is not set; the service warns at startup.
    #[arg(long, env = "ALIS_DEV_SECRETS_FILE")]
    pub dev_secrets_file: Option<PathBuf>,
}

/// Where the SFTP credentials are in Vault, and how to log in.
#[derive(Debug, Clone, Args)]
pub struct VaultArgs {
    /// Vault's (or OpenBao's) address, `https://HOST:PORT`. Setting it makes Vault the
    /// source of the SFTP credentials.
    #[arg(long = "vault-addr", env = "VAULT_ADDR")]
    pub address: Option<String>,

    /// How to authenticate to Vault: `token`, `approle` or `kubernetes`.
    #[arg(long = "vault-auth", env = "ALIS_VAULT_AUTH", default_value = "token")]
    pub auth: VaultAuthMethod,

    /// `token` auth: the file holding the Vault token (read at startup).
    #[arg(long = "vault-token-file", env = "ALIS_VAULT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// `approle` auth: the role ID.
    #[arg(long = "vault-role-id", env = "ALIS_VAULT_ROLE_ID")]
    pub role_id: Option<String>,

    /// `approle` auth: the file holding the secret ID (read at startup).
    #[arg(long = "vault-secret-id-file", env = "ALIS_VAULT_SECRET_ID_FILE")]
    pub secret_id_file: Option<PathBuf>,

    /// `kubernetes` auth: the Vault role bound to the service account.
    #[arg(long = "vault-role", env = "ALIS_VAULT_ROLE")]
    pub role: Option<String>,

    /// `kubernetes` auth: the service-account token file, read again at each login
    /// (projected tokens rotate).
    #[arg(long = "vault-kubernetes-token-file", env = "ALIS_VAULT_KUBERNETES_TOKEN_FILE", default_value = VaultAuth::KUBERNETES_TOKEN_PATH)]
    pub kubernetes_token_file: PathBuf,

    /// The mount of the auth method (default: `approle` or `kubernetes`, after the
    /// method).
    #[arg(long = "vault-auth-mount", env = "ALIS_VAULT_AUTH_MOUNT")]
    pub auth_mount: Option<String>,

    /// The mount of the KV v2 secrets engine holding the SFTP credentials.
    #[arg(
        long = "vault-kv-mount",
        env = "ALIS_VAULT_KV_MOUNT",
        default_value = "secret"
    )]
    pub kv_mount: String,

    /// The path of the SFTP credentials in that engine (keys `hostname`, `port`,
    /// `username`, `password`, `fingerprint`, optionally `private_key`).
    #[arg(
        long = "vault-sftp-path",
        env = "ALIS_VAULT_SFTP_PATH",
        default_value = "alis-import/sftp"
    )]
    pub sftp_path: String,

    /// A PEM CA bundle that signs Vault's certificate (besides the system's roots).
    #[arg(long = "vault-cacert", env = "VAULT_CACERT")]
    pub ca_cert: Option<PathBuf>,

    /// A Vault Enterprise / OpenBao namespace.
    #[arg(long = "vault-namespace", env = "VAULT_NAMESPACE")]
    pub namespace: Option<String>,

    /// How long one request to Vault may take.
    #[arg(long = "vault-timeout", env = "ALIS_VAULT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
}

impl SourceArgs {
    /// The SFTP source's settings; files larger than `max_file_size` are refused.
    pub fn sftp_settings(&self, max_file_size: u64) -> SftpSettings {
        SftpSettings {
            connect_timeout: self.sftp_connect_timeout,
            handshake_timeout: self.sftp_handshake_timeout,
            inactivity_timeout: self.sftp_inactivity_timeout,
            keepalive_interval: self.sftp_keepalive_interval,
            max_file_size,
            ..SftpSettings::new(self.sftp_folder.clone())
        }
    }

    /// The secrets provider the SFTP source reads its credentials from: `None` for the
    /// local source, which needs none. Reads Vault's own credential files now; contacts
    /// nothing.
    pub fn secrets_provider(&self) -> anyhow::Result<Option<SecretsProvider>> {
        if self.kind == SourceKind::Local {
            return Ok(None);
        }
        match (&self.vault.address, &self.dev_secrets_file) {
            (Some(_), Some(_)) => bail!(
                "both VAULT_ADDR (--vault-addr) and ALIS_DEV_SECRETS_FILE (--dev-secrets-file) \
                 are set: the SFTP credentials come from one place; unset the development file"
            ),
            (Some(_), None) => {
                let vault = VaultSecrets::new(self.vault.settings()?)
                    .context("Vault settings (--vault-addr)")?;
                Ok(Some(SecretsProvider::Vault(vault)))
            }
            (None, Some(file)) => Ok(Some(SecretsProvider::Dev(DevSecrets::from_file(file)))),
            (None, None) => bail!(
                "ALIS_SOURCE=sftp needs the SFTP credentials: set VAULT_ADDR (--vault-addr) to \
                 read them from Vault, or, for development only, ALIS_DEV_SECRETS_FILE \
                 (--dev-secrets-file)"
            ),
        }
    }

    /// The factory of each run's source: the inbox folder, or the SFTP folder with
    /// credentials from `secrets` (which must be `Some` for SFTP: see
    /// [`SourceArgs::secrets_provider`]).
    pub fn source_factory(
        &self,
        inbox_dir: &Path,
        max_file_size: u64,
        secrets: Option<Arc<SecretsProvider>>,
    ) -> anyhow::Result<SourceFactory> {
        Ok(match (self.kind, secrets) {
            (SourceKind::Local, _) => SourceFactory::local(inbox_dir),
            (SourceKind::Sftp, Some(secrets)) => SourceFactory::Sftp {
                settings: self.sftp_settings(max_file_size),
                secrets,
            },
            (SourceKind::Sftp, None) => bail!("the SFTP source needs a secrets provider"),
        })
    }
}

impl VaultArgs {
    /// The provider's settings, with the token or secret ID read from its file.
    pub fn settings(&self) -> anyhow::Result<VaultSettings> {
        let address = self
            .address
            .clone()
            .context("VAULT_ADDR (--vault-addr) is not set")?;
        let auth = match self.auth {
            VaultAuthMethod::Token => {
                let file = self.token_file.as_deref().context(
                    "ALIS_VAULT_AUTH=token needs the token's file: set ALIS_VAULT_TOKEN_FILE \
                     (--vault-token-file)",
                )?;
                VaultAuth::Token(read_secret_file(file, "Vault token")?)
            }
            VaultAuthMethod::Approle => {
                let role_id = self.role_id.clone().context(
                    "ALIS_VAULT_AUTH=approle needs ALIS_VAULT_ROLE_ID (--vault-role-id)",
                )?;
                let file = self.secret_id_file.as_deref().context(
                    "ALIS_VAULT_AUTH=approle needs the secret ID's file: set \
                     ALIS_VAULT_SECRET_ID_FILE (--vault-secret-id-file)",
                )?;
                VaultAuth::AppRole {
                    mount: self.auth_mount.clone().unwrap_or_else(|| "approle".into()),
                    role_id,
                    secret_id: read_secret_file(file, "AppRole secret ID")?,
                }
            }
            VaultAuthMethod::Kubernetes => VaultAuth::Kubernetes {
                mount: self
                    .auth_mount
                    .clone()
                    .unwrap_or_else(|| "kubernetes".into()),
                role: self
                    .role
                    .clone()
                    .context("ALIS_VAULT_AUTH=kubernetes needs ALIS_VAULT_ROLE (--vault-role)")?,
                jwt_path: self.kubernetes_token_file.clone(),
            },
        };
        Ok(VaultSettings {
            mount: self.kv_mount.clone(),
            ca_cert: self.ca_cert.clone(),
            namespace: self.namespace.clone(),
            request_timeout: self.request_timeout,
            ..VaultSettings::new(address, self.sftp_path.clone(), auth)
        })
    }
}

/// A credential file's contents, trimmed; an empty file is an error (naming the file,
/// never quoting it).
fn read_secret_file(path: &Path, what: &str) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} file {}", path.display()))?;
    let value = text.trim();
    if value.is_empty() {
        bail!("the {what} file {} is empty", path.display());
    }
    Ok(SecretString::from(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::config::ServiceConfig;

    fn parse(flags: &[&str]) -> ServiceConfig {
        let mut args = vec!["alis-import"];
        args.extend_from_slice(flags);
        ServiceConfig::parse_from(args).expect("flags parse")
    }

    #[test]
    fn the_default_source_is_the_local_inbox_and_needs_no_secrets() {
        let config = parse(&[]);
        assert_eq!(config.source.kind, SourceKind::Local);
        assert!(config.source.secrets_provider().unwrap().is_none());
        let factory = config
            .source
            .source_factory(&config.inbox_dir, config.max_file_size, None)
            .unwrap();
        assert!(matches!(factory, SourceFactory::Local(_)), "{factory:?}");
    }

    #[test]
    fn a_flag_given_twice_takes_its_last_value() {
        let config = parse(&["--source", "sftp", "--source", "local"]);
        assert_eq!(config.source.kind, SourceKind::Local);
    }

    #[test]
    fn sftp_settings_come_from_the_flags() {
        let config = parse(&[
            "--source",
            "sftp",
            "--sftp-folder",
            "/outgoing",
            "--sftp-connect-timeout",
            "3s",
            "--sftp-handshake-timeout",
            "4s",
            "--sftp-inactivity-timeout",
            "5s",
            "--sftp-keepalive-interval",
            "6s",
        ]);
        let settings = config.source.sftp_settings(1234);
        assert_eq!(settings.folder, "/outgoing");
        assert_eq!(settings.connect_timeout, Duration::from_secs(3));
        assert_eq!(settings.handshake_timeout, Duration::from_secs(4));
        assert_eq!(settings.inactivity_timeout, Duration::from_secs(5));
        assert_eq!(settings.keepalive_interval, Duration::from_secs(6));
        assert_eq!(settings.max_file_size, 1234);
    }

    #[test]
    fn sftp_without_vault_or_a_dev_file_is_refused_naming_both() {
        let error = parse(&["--source", "sftp"])
            .source
            .secrets_provider()
            .unwrap_err()
            .to_string();
        assert!(error.contains("VAULT_ADDR"), "{error}");
        assert!(error.contains("ALIS_DEV_SECRETS_FILE"), "{error}");
    }

    #[test]
    fn a_token_is_read_from_its_file_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "s.TOKEN-VALUE-1\n").unwrap();
        let config = parse(&[
            "--source",
            "sftp",
            "--vault-addr",
            "http://127.0.0.1:8200",
            "--vault-token-file",
            token_file.to_str().unwrap(),
            "--vault-kv-mount",
            "kv",
            "--vault-sftp-path",
            "district/sftp",
        ]);
        let settings = config.source.vault.settings().unwrap();
        assert_eq!(settings.mount, "kv");
        assert_eq!(settings.path, "district/sftp");
        match &settings.auth {
            VaultAuth::Token(token) => assert_eq!(token.expose_secret(), "s.TOKEN-VALUE-1"),
            other => panic!("{other:?}"),
        }
        let provider = config.source.secrets_provider().unwrap().unwrap();
        for shown in [
            format!("{config:?}"),
            format!("{provider:?}"),
            provider.to_string(),
        ] {
            assert!(!shown.contains("TOKEN-VALUE"), "{shown}");
        }
    }

    #[test]
    fn approle_needs_a_role_id_and_a_secret_id_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret_id = dir.path().join("secret-id");
        std::fs::write(&secret_id, "SECRET-ID-VALUE").unwrap();
        let base = [
            "--vault-addr",
            "http://127.0.0.1:8200",
            "--vault-auth",
            "approle",
        ];
        let error = parse(&base).source.vault.settings().unwrap_err();
        assert!(error.to_string().contains("ALIS_VAULT_ROLE_ID"), "{error}");

        let mut flags = base.to_vec();
        flags.extend([
            "--vault-role-id",
            "role-1",
            "--vault-secret-id-file",
            secret_id.to_str().unwrap(),
        ]);
        match parse(&flags).source.vault.settings().unwrap().auth {
            VaultAuth::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                assert_eq!(mount, "approle");
                assert_eq!(role_id, "role-1");
                assert_eq!(secret_id.expose_secret(), "SECRET-ID-VALUE");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kubernetes_auth_takes_the_role_and_token_file_the_chart_sets() {
        let config = parse(&[
            "--vault-addr",
            "https://vault.vault.svc:8200",
            "--vault-auth",
            "kubernetes",
            "--vault-role",
            "alis-import",
            "--vault-kubernetes-token-file",
            "/var/run/secrets/vault/token",
        ]);
        match config.source.vault.settings().unwrap().auth {
            VaultAuth::Kubernetes {
                mount,
                role,
                jwt_path,
            } => {
                assert_eq!(mount, "kubernetes");
                assert_eq!(role, "alis-import");
                assert_eq!(jwt_path, PathBuf::from("/var/run/secrets/vault/token"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_empty_or_missing_token_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        for (file, expected) in [
            (empty.to_str().unwrap().to_owned(), "is empty"),
            ("/nonexistent/token".to_owned(), "cannot read"),
        ] {
            let error = parse(&[
                "--vault-addr",
                "http://127.0.0.1:8200",
                "--vault-token-file",
                &file,
            ])
            .source
            .vault
            .settings()
            .unwrap_err()
            .to_string();
            assert!(error.contains(expected) && error.contains(&file), "{error}");
        }
    }
}
