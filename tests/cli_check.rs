//! `alis-import check` as an operator runs it: the real binary, configured through the
//! environment variables the Helm chart sets, against a real sshd and a real OpenBao.

mod support;

#[path = "support/openbao.rs"]
mod openbao;
#[path = "support/sshd.rs"]
mod sshd;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use alis_import::store::{ConnectionEventFilter, Store};

use openbao::OpenBao;
use sshd::SshServer;

/// A valid fingerprint of no server in these tests.
const OTHER_FINGERPRINT: &str = "SHA256:alqSNwBJ+rjsYgipC3a0hbUlqGtBbQM67vCQiWMH90w";
const SECRET_PATH: &str = "district/sftp";
const FILE: &str = "Curr_Lic_Eds_End_Limits_20261127.csv";

/// An sshd holding one ALiS file, an OpenBao holding its credentials, a migrated
/// database, and a token file.
struct Servers {
    sshd: SshServer,
    bao: OpenBao,
    dir: tempfile::TempDir,
    url: String,
}

impl Servers {
    async fn start(password: &str, fingerprint: Option<&str>) -> Self {
        let sshd = SshServer::start(password);
        sshd.put(
            FILE,
            b"EducatorID\n",
            SystemTime::now() - Duration::from_secs(3600),
        );
        let bao = OpenBao::start();
        let port = sshd.port().to_string();
        bao.put_secret(
            SECRET_PATH,
            &[
                ("hostname", sshd.host()),
                ("port", &port),
                ("username", sshd.username()),
                ("password", password),
                ("fingerprint", fingerprint.unwrap_or(sshd.fingerprint())),
            ],
        );
        bao.read_policy("check-reader", SECRET_PATH);
        let dir = support::temp_dir();
        std::fs::write(
            dir.path().join("vault-token"),
            bao.create_token(&["check-reader"], "1h", true),
        )
        .unwrap();
        let url = support::sqlite_url(dir.path());
        let store = Store::connect(&url).await.expect("connect");
        store.migrate(true).await.expect("migrate");
        store.close().await;
        Self {
            sshd,
            bao,
            dir,
            url,
        }
    }

    /// Runs `alis-import check` with the server's environment; returns the exit code
    /// and stdout (stderr is added to failure messages).
    fn check(&self) -> (Option<i32>, String, String) {
        let token_file = self.dir.path().join("vault-token");
        let mut command = Command::new(env!("CARGO_BIN_EXE_alis-import"));
        command
            .arg("check")
            .env_clear()
            .env("DATABASE_URL", &self.url)
            .env("ALIS_SOURCE", "sftp")
            .env("VAULT_ADDR", self.bao.address())
            .env("ALIS_VAULT_AUTH", "token")
            .env("ALIS_VAULT_TOKEN_FILE", &token_file)
            .env("ALIS_VAULT_KV_MOUNT", "secret")
            .env("ALIS_VAULT_SFTP_PATH", SECRET_PATH)
            .env("ALIS_SFTP_FOLDER", self.sshd.remote_folder())
            .env("ALIS_SFTP_CONNECT_TIMEOUT", "5s")
            .env("ALIS_SFTP_HANDSHAKE_TIMEOUT", "5s")
            .env("ALIS_MIN_FILE_AGE", "60s")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        run_bounded(&mut command, Duration::from_secs(30))
    }

    async fn store(&self) -> Store {
        Store::connect(&self.url).await.expect("connect")
    }
}

/// Runs a command, killing it after `limit`.
fn run_bounded(command: &mut Command, limit: Duration) -> (Option<i32>, String, String) {
    let mut child = command.spawn().expect("start alis-import");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("alis-import check did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), out.join().unwrap(), err.join().unwrap())
}

fn line<'a>(stdout: &'a str, start: &str) -> &'a str {
    stdout
        .lines()
        .find(|line| line.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting with {start:?} in:\n{stdout}"))
}

async fn cached_files(store: &Store) -> usize {
    store.cache_list().await.expect("cache list").len()
}

fn assert_no_password(password: &str, texts: &[&str]) {
    for text in texts {
        assert!(!text.contains(password), "the password leaked:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_every_step_against_the_servers_and_imports_nothing() {
    let password = "check-ok-Pw-6e0d";
    let servers = Servers::start(password, None).await;

    let (code, stdout, stderr) = servers.check();

    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(line(&stdout, "[ok]   database").contains("sqlite://"));
    let vault = line(&stdout, "[ok]   Vault");
    assert!(vault.contains(&servers.bao.address()), "{vault}");
    assert!(vault.contains(servers.sshd.username()), "{vault}");
    line(&stdout, "[ok]   SFTP connect");
    let host_key = line(&stdout, "[ok]   SFTP host key");
    assert!(host_key.contains(servers.sshd.fingerprint()), "{host_key}");
    line(&stdout, "[ok]   SFTP login");
    let list = line(&stdout, "[ok]   SFTP list");
    assert!(list.contains(&format!("a run would use {FILE}")), "{list}");
    assert!(stdout.trim_end().ends_with("all checks passed"), "{stdout}");
    assert!(
        !stdout.contains("[FAIL]") && !stdout.contains("[skip]"),
        "{stdout}"
    );
    assert_no_password(password, &[&stdout, &stderr]);
    assert!(
        servers.sshd.wait_for_log(&format!(
            "Accepted password for {}",
            servers.sshd.username()
        )),
        "{}",
        servers.sshd.log()
    );
    let store = servers.store().await;
    assert_eq!(cached_files(&store).await, 0, "check downloads nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_naming_the_host_key_step_with_a_wrong_fingerprint() {
    let password = "check-fp-Pw-92aa";
    let servers = Servers::start(password, Some(OTHER_FINGERPRINT)).await;

    let (code, stdout, stderr) = servers.check();

    assert_eq!(code, Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    line(&stdout, "[ok]   database");
    line(&stdout, "[ok]   Vault");
    line(&stdout, "[ok]   SFTP connect");
    let failed = line(&stdout, "[FAIL] SFTP host key");
    assert!(failed.contains(servers.sshd.fingerprint()), "{failed}");
    assert!(failed.contains(OTHER_FINGERPRINT), "{failed}");
    line(&stdout, "[skip] SFTP login");
    line(&stdout, "[skip] SFTP list");
    assert!(
        stdout
            .trim_end()
            .ends_with("check FAILED at: SFTP host key"),
        "{stdout}"
    );
    assert_no_password(password, &[&stdout, &stderr]);
    let sshd = &servers.sshd;
    assert!(
        sshd.wait_for_log("Connection closed by") || sshd.wait_for_log("Connection reset by"),
        "{}",
        sshd.log()
    );
    assert_eq!(sshd.auth_attempts(), Vec::<String>::new());

    let store = servers.store().await;
    let events = store
        .connection_events(&ConnectionEventFilter::latest(10))
        .await
        .expect("events");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].kind, "fingerprint_mismatch");
    assert_eq!(events[0].run_id, None);
    assert_eq!(events[0].host, format!("127.0.0.1:{}", sshd.port()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_naming_vault_when_it_is_down_and_tries_no_sftp() {
    let password = "check-vault-Pw-13f7";
    let mut servers = Servers::start(password, None).await;
    servers.bao.stop();

    let (code, stdout, stderr) = servers.check();

    assert_eq!(code, Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    line(&stdout, "[ok]   database");
    let failed = line(&stdout, "[FAIL] Vault");
    assert!(
        failed.contains(&format!("Vault unreachable at {}", servers.bao.address())),
        "{failed}"
    );
    for step in ["SFTP connect", "SFTP host key", "SFTP login", "SFTP list"] {
        line(&stdout, &format!("[skip] {step}"));
    }
    assert!(servers.sshd.auth_attempts().is_empty());
}
