//! `alis-import check`: can the service reach what it needs? The database, the secrets
//! provider (Vault) and the SFTP server: connection, host key against the pinned
//! fingerprint, login, listing of the folder. One line per step, as it happens;
//! nothing is imported or downloaded. This is what an operator runs after
//! configuring credentials.
//!
//! It takes exactly the flags and environment variables of `serve`, so run in the
//! server's container it checks what the server will use. A step that fails is named,
//! the steps after it that depend on it are skipped, and the exit status is 0 only
//! when every step passed. An SFTP failure is also recorded as a connection event
//! (without a run), like a run's.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Args;
use jiff::Timestamp;

use crate::config::{ServiceConfig, SourceKind};
use crate::secrets::SecretsProvider;
use crate::source::sftp::TimeoutPhase;
use crate::source::{FileSource, Listing, SftpCredentials, SftpError, SftpSource, choose_newest};
use crate::store::{ConnectionEventFilter, NewConnectionEvent, Store, StoreError};

/// Arguments of `check`: those of `serve`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    config: ServiceConfig,
}

/// The SFTP steps, in order.
const SFTP_STEPS: [&str; 4] = ["SFTP connect", "SFTP host key", "SFTP login", "SFTP list"];

/// The steps' results, printed as they come.
#[derive(Default)]
struct Steps {
    failed: Vec<&'static str>,
}

impl Steps {
    fn passed(&mut self, step: &str, detail: &str) {
        println!("[ok]   {step:<14} {detail}");
    }

    fn failed(&mut self, step: &'static str, detail: &str) {
        println!("[FAIL] {step:<14} {detail}");
        self.failed.push(step);
    }

    fn skipped(&mut self, step: &str, why: &str) {
        println!("[skip] {step:<14} {why}");
    }
}

impl CheckArgs {
    /// Runs every step; exit status 0 when all passed, 1 otherwise.
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        let config = &self.config;
        let mut steps = Steps::default();
        println!("alis-import check: database, secrets and source (nothing is imported)");

        let store = check_database(config, &mut steps).await;
        match config.source.kind {
            SourceKind::Local => {
                check_local(config, &mut steps).await;
                steps.skipped("Vault, SFTP", "not used: the source is local (ALIS_SOURCE)");
            }
            SourceKind::Sftp => check_sftp(config, store.as_ref(), &mut steps).await,
        }
        if let Some(store) = store {
            store.close().await;
        }

        if steps.failed.is_empty() {
            println!("all checks passed");
            Ok(ExitCode::SUCCESS)
        } else {
            println!("check FAILED at: {}", steps.failed.join(", "));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Connects and reads the service's own tables (which also shows the migrations
/// have been applied). Nothing is written or migrated.
async fn check_database(config: &ServiceConfig, steps: &mut Steps) -> Option<Store> {
    let url = crate::store::redact_url(&config.database.database_url);
    let read = async {
        let store = Store::connect(&config.database.database_url).await?;
        match store
            .connection_events(&ConnectionEventFilter::latest(1))
            .await
        {
            Ok(_) => Ok(store),
            Err(error) => {
                store.close().await;
                Err(error)
            }
        }
    };
    match read.await {
        Ok(store) => {
            steps.passed("database", &format!("connected to {url}"));
            Some(store)
        }
        Err(error) => {
            let hint = match error {
                StoreError::Query(_) => " (has `alis-import migrate` been run?)",
                _ => "",
            };
            steps.failed(
                "database",
                &format!("{url}: {:#}{hint}", anyhow::Error::new(error)),
            );
            None
        }
    }
}

async fn check_local(config: &ServiceConfig, steps: &mut Steps) {
    let source = FileSource::Local(crate::source::LocalDirSource::new(config.inbox_dir.clone()));
    match source.list().await {
        Ok(listing) => steps.passed("inbox", &describe_listing(&source, listing, config)),
        Err(error) => steps.failed("inbox", &error.to_string()),
    }
}

async fn check_sftp(config: &ServiceConfig, store: Option<&Store>, steps: &mut Steps) {
    let secrets = match config.source.secrets_provider() {
        Ok(Some(secrets)) => secrets,
        Ok(None) => unreachable!("the SFTP source always has a secrets provider"),
        Err(error) => {
            steps.failed("secrets", &format!("{error:#}"));
            skip_sftp(steps, "no credentials");
            return;
        }
    };
    let step = match &secrets {
        SecretsProvider::Vault(_) => "Vault",
        SecretsProvider::Dev(_) => "secrets",
    };
    let credentials = match secrets.sftp_credentials().await {
        Ok(credentials) => credentials,
        Err(error) => {
            steps.failed(step, &format!("{secrets}: {error}"));
            skip_sftp(steps, "no credentials");
            return;
        }
    };
    steps.passed(
        step,
        &format!(
            "read from {secrets}{}; SFTP server {}:{}, user {}",
            token_state(&secrets).await,
            credentials.host,
            credentials.port,
            credentials.username
        ),
    );

    let settings = config.source.sftp_settings(config.max_file_size);
    let source = SftpSource::new(settings, credentials.clone());
    if let Err(error) = source.connect().await {
        report_sftp_failure(&error, &credentials, steps);
        record(store, &source, &error).await;
        return;
    }
    steps.passed(
        SFTP_STEPS[0],
        &format!(
            "{}:{} accepted the connection",
            source.host(),
            source.port()
        ),
    );
    steps.passed(
        SFTP_STEPS[1],
        &format!(
            "the server's key matches the pinned fingerprint ({})",
            pinned(&credentials)
        ),
    );
    steps.passed(
        SFTP_STEPS[2],
        &format!("logged in as {} and started SFTP", credentials.username),
    );
    match source.list().await {
        Ok(listing) => {
            let source = FileSource::Sftp(source.clone());
            steps.passed(SFTP_STEPS[3], &describe_listing(&source, listing, config));
        }
        Err(error) => {
            steps.failed(SFTP_STEPS[3], &error.detail());
            record(store, &source, &error).await;
        }
    }
    source.close().await;
}

/// Names the step a connection failure stopped at; the earlier ones passed.
fn report_sftp_failure(error: &SftpError, credentials: &SftpCredentials, steps: &mut Steps) {
    let failed_at = match error {
        SftpError::ConnectionRefused { .. }
        | SftpError::Unreachable { .. }
        | SftpError::Timeout {
            phase: TimeoutPhase::Connect,
            ..
        } => 0,
        SftpError::HostKeyMismatch { .. }
        | SftpError::Handshake { .. }
        | SftpError::Timeout {
            phase: TimeoutPhase::Handshake,
            ..
        } => 1,
        SftpError::AuthRefused { .. }
        | SftpError::PrivateKey { .. }
        | SftpError::SubsystemRefused { .. }
        | SftpError::Timeout {
            phase: TimeoutPhase::Login,
            ..
        } => 2,
        _ => 3,
    };
    let passed = [
        format!(
            "{}:{} accepted the connection",
            credentials.host, credentials.port
        ),
        format!(
            "the server's key matches the pinned fingerprint ({})",
            pinned(credentials)
        ),
        format!("logged in as {}", credentials.username),
    ];
    for (index, step) in SFTP_STEPS.iter().enumerate() {
        match index.cmp(&failed_at) {
            std::cmp::Ordering::Less => steps.passed(step, &passed[index]),
            std::cmp::Ordering::Equal => steps.failed(step, &error.detail()),
            std::cmp::Ordering::Greater => steps.skipped(step, "not tried"),
        }
    }
}

fn skip_sftp(steps: &mut Steps, why: &str) {
    for step in SFTP_STEPS {
        steps.skipped(step, &format!("not tried: {why}"));
    }
}

/// Records an SFTP failure as a connection event without a run, when the database
/// is reachable.
async fn record(store: Option<&Store>, source: &SftpSource, error: &SftpError) {
    let Some(store) = store else { return };
    let host = format!("{}:{}", source.host(), source.port());
    let detail = error.detail();
    let event = NewConnectionEvent {
        at: Timestamp::now(),
        host: &host,
        kind: error.event_kind(),
        detail: &detail,
        run_id: None,
    };
    if let Err(error) = store.record_connection_event(&event).await {
        tracing::warn!(error = %anyhow::Error::new(error), "cannot record the connection event");
    }
}

fn pinned(credentials: &SftpCredentials) -> String {
    credentials
        .fingerprints
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `; token valid for 59m 58s, renewable` for Vault; nothing for other providers.
async fn token_state(secrets: &SecretsProvider) -> String {
    let SecretsProvider::Vault(vault) = secrets else {
        return String::new();
    };
    let status = vault.token_status().await;
    let mut text = String::from("; token ");
    match status.expires_in {
        Some(left) => {
            let left = std::time::Duration::from_secs(left.as_secs());
            let _ = write!(text, "valid for {}", humantime::format_duration(left));
        }
        None => text.push_str("without expiry"),
    }
    text.push_str(if status.renewable {
        ", renewable"
    } else {
        ", not renewable"
    });
    text
}

/// What a run would find: the recognised files, the one it would use, the rest.
fn describe_listing(source: &FileSource, listing: Listing, config: &ServiceConfig) -> String {
    let files = listing.files.len();
    let others = listing.ignored.len();
    let choice = choose_newest(listing, Timestamp::now(), config.min_file_age);
    let chosen = match &choice.chosen {
        Some(file) => format!(
            "a run would use {} ({} bytes, modified {})",
            file.name, file.size, file.modified
        ),
        None => "none is usable now (a run would fall back to the file cache)".to_owned(),
    };
    format!("{source}: {files} ALiS file(s), {others} other entr(ies); {chosen}")
}
