//! A real OpenSSH `sshd` for tests: loopback, a free port, its own config, host key,
//! log and test user, stopped when dropped (and when the test process dies).
//!
//! Include it from a test file with `#[path = "support/sshd.rs"] mod sshd;`.
//!
//! Each [`SshServer`] creates its own system user (`alist_<pid>_<n>`, with a home
//! directory inside the server's temporary directory), because a password belongs to
//! a user and tests that rotate it must not disturb each other. Users left behind by
//! a test process that was killed are removed by the next one. Tests run as root
//! (useradd, chpasswd, sshd all need it).

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tempfile::TempDir;

const SSHD: &str = "/usr/sbin/sshd";
const INSTALL_HINT: &str =
    "run `scripts/install-test-deps` (or `apt-get install -y openssh-server openssh-client`)";
const USER_PREFIX: &str = "alist_";

/// useradd, userdel and chpasswd lock /etc/passwd and /etc/shadow; tests in one
/// process take turns, and retries cover other processes.
static ACCOUNTS: Mutex<()> = Mutex::new(());
static NEXT_USER: AtomicU32 = AtomicU32::new(0);
static SWEPT: std::sync::Once = std::sync::Once::new();

/// A running sshd with one password (and key) user and a folder to serve.
pub struct SshServer {
    child: Child,
    dir: TempDir,
    port: u16,
    username: String,
    password: Mutex<String>,
    fingerprint: String,
    inbox: PathBuf,
    log: PathBuf,
    client_key: PathBuf,
}

impl SshServer {
    /// Starts an sshd on a free loopback port with a fresh host key and a new user
    /// whose password is `password`. Panics (naming the install command) when
    /// OpenSSH is missing.
    pub fn start(password: &str) -> Self {
        require(SSHD);
        require_tool("ssh-keygen");
        require_tool("useradd");
        require_tool("chpasswd");
        SWEPT.call_once(remove_stale_users);

        // /run/sshd is sshd's privilege separation directory; a fresh container lacks it.
        fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        fs::set_permissions("/run/sshd", fs::Permissions::from_mode(0o755)).unwrap();

        let dir = tempfile::Builder::new()
            .prefix("alis-sshd-")
            .tempdir()
            .expect("create the sshd directory");
        // The test user must be able to reach its home inside it.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();

        let host_key = dir.path().join("ssh_host_ed25519_key");
        run(Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "alis-test-host",
                "-f",
            ])
            .arg(&host_key));
        let fingerprint = fingerprint_of(&host_key.with_extension("pub"));

        let client_key = dir.path().join("client_ed25519");
        run(Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "alis-test-client",
                "-f",
            ])
            .arg(&client_key));

        let username = format!(
            "{USER_PREFIX}{}_{}",
            std::process::id(),
            NEXT_USER.fetch_add(1, Ordering::Relaxed)
        );
        let home = dir.path().join("home");
        let inbox = home.join("inbox");
        fs::create_dir_all(&inbox).unwrap();
        create_user(&username, &home);
        set_password(&username, password);
        run(Command::new("chown").arg("-R").arg(&username).arg(&home));

        let keys_dir = dir.path().join("authorized_keys");
        fs::create_dir(&keys_dir).unwrap();
        fs::copy(client_key.with_extension("pub"), keys_dir.join(&username)).unwrap();

        let log = dir.path().join("sshd.log");
        let config = dir.path().join("sshd_config");
        let mut attempts = 0;
        let (child, port) = loop {
            attempts += 1;
            let port = free_port();
            fs::write(
                &config,
                format!(
                    "Port {port}\n\
                     ListenAddress 127.0.0.1\n\
                     HostKey {host_key}\n\
                     PidFile {dir}/sshd.pid\n\
                     UsePAM no\n\
                     PasswordAuthentication yes\n\
                     KbdInteractiveAuthentication no\n\
                     PubkeyAuthentication yes\n\
                     AuthorizedKeysFile {keys}/%u\n\
                     StrictModes no\n\
                     PermitRootLogin no\n\
                     AllowUsers {username}\n\
                     MaxStartups 100\n\
                     LoginGraceTime 60\n\
                     Subsystem sftp internal-sftp\n\
                     LogLevel DEBUG1\n",
                    host_key = host_key.display(),
                    dir = dir.path().display(),
                    keys = keys_dir.display(),
                ),
            )
            .unwrap();
            let mut command = Command::new(SSHD);
            command
                .arg("-D")
                .arg("-f")
                .arg(&config)
                .arg("-E")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            die_with_parent(&mut command);
            let mut child = command.spawn().expect("start sshd");
            if wait_for_banner(port, &mut child) {
                break (child, port);
            }
            let _ = child.kill();
            let _ = child.wait();
            // Another process may have taken the port between choosing and binding it.
            assert!(
                attempts < 5,
                "sshd did not start; its log:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        };

        Self {
            child,
            dir,
            port,
            username,
            password: Mutex::new(password.to_owned()),
            fingerprint,
            inbox,
            log,
            client_key,
        }
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The port sshd listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The test user's name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The test user's current password.
    pub fn password(&self) -> String {
        self.password.lock().unwrap().clone()
    }

    /// Changes the test user's password (a rotation on the server side).
    pub fn set_password(&self, password: &str) {
        set_password(&self.username, password);
        *self.password.lock().unwrap() = password.to_owned();
    }

    /// The host key's fingerprint exactly as `ssh-keygen -lf` prints it (`SHA256:…`).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The folder served to the test user, on this machine: drop files here.
    pub fn inbox(&self) -> &Path {
        &self.inbox
    }

    /// The same folder as the SFTP client names it (absolute path on the server).
    pub fn remote_folder(&self) -> String {
        self.inbox.to_str().expect("a UTF-8 temp path").to_owned()
    }

    /// Writes a file into the inbox with the given modification time.
    pub fn put(&self, name: &str, bytes: &[u8], modified: SystemTime) -> PathBuf {
        let path = self.inbox.join(name);
        fs::write(&path, bytes).unwrap();
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        path
    }

    /// The private key (OpenSSH format) authorised for the test user.
    pub fn client_key_path(&self) -> &Path {
        &self.client_key
    }

    /// The private key's text.
    pub fn client_private_key(&self) -> String {
        fs::read_to_string(&self.client_key).unwrap()
    }

    /// sshd's log file (LogLevel DEBUG1: every authentication request is logged as
    /// `userauth-request for user …`).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// sshd's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log lines recording an authentication request for the test user.
    pub fn auth_attempts(&self) -> Vec<String> {
        let marker = format!("userauth-request for user {}", self.username);
        self.log()
            .lines()
            .filter(|line| line.contains(&marker))
            .map(str::to_owned)
            .collect()
    }

    /// Waits (up to 10 s) until the log holds a line containing `text`; sshd writes
    /// its log asynchronously from the connection's process.
    pub fn wait_for_log(&self, text: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        // SIGTERM lets sshd remove its pid file; the connection processes end with
        // their clients.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        delete_user(&self.username);
    }
}

/// Asks the kernel to send SIGTERM to the child when the test (thread) that started
/// it dies, so a crashed or killed test process leaves no server behind.
pub fn die_with_parent(command: &mut Command) {
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_banner(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let mut banner = [0; 8];
            if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-2.0-" {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn fingerprint_of(public_key: &Path) -> String {
    // "256 SHA256:… comment (ED25519)"
    let output = run(Command::new("ssh-keygen").arg("-lf").arg(public_key));
    output
        .split_whitespace()
        .nth(1)
        .expect("ssh-keygen -lf prints a fingerprint")
        .to_owned()
}

fn create_user(username: &str, home: &Path) {
    let _turn = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    retry(|| {
        Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", "-d"])
            .arg(home)
            .arg(username)
            .output()
    });
}

fn set_password(username: &str, password: &str) {
    let _turn = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    retry(|| {
        let mut child = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{username}:{password}\n").as_bytes())?;
        child.wait_with_output()
    });
}

fn delete_user(username: &str) {
    let _turn = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..20 {
        // `-f`: the server's per-connection processes run as the user and may not
        // have noticed yet that their client is gone.
        match Command::new("userdel").arg("-f").arg(username).output() {
            // 6: no such user.
            Ok(output) if output.status.success() || output.status.code() == Some(6) => return,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    eprintln!("could not delete the test user {username}; the next test run removes it");
}

/// Removes test users whose process is gone (a test process that was killed).
fn remove_stale_users() {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    for line in passwd.lines() {
        let Some(name) = line.split(':').next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(USER_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('_').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            delete_user(name);
        }
    }
}

/// Runs an account command, retrying while another process holds the lock on
/// /etc/passwd or /etc/shadow.
fn retry(mut attempt: impl FnMut() -> std::io::Result<std::process::Output>) {
    let mut last = String::new();
    for _ in 0..50 {
        match attempt() {
            Ok(output) if output.status.success() => return,
            Ok(output) => last = String::from_utf8_lossy(&output.stderr).into_owned(),
            Err(error) => last = error.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("account command failed: {last}");
}

fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}; {INSTALL_HINT}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn require(path: &str) {
    assert!(Path::new(path).exists(), "{path} not found: {INSTALL_HINT}");
}

fn require_tool(name: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false);
    assert!(found, "`{name}` not found on PATH: {INSTALL_HINT}");
}
