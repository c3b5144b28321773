//! A real PostgreSQL server for the tests of one test binary.
//!
//! # Lifecycle
//!
//! The first call to [`PostgresServer::get`] (directly, or through [`postgres_url`])
//! starts the server; every later call, from any test thread or tokio runtime, gets the
//! same one. Starting is plain blocking `std::process` work, so it does not depend on the
//! runtime of whichever test happens to come first.
//!
//! The server runs under a small `sh` watchdog (see [`WATCHDOG`]) whose standard input
//! is a pipe. This process holds the only write end of that pipe and never writes to it;
//! the kernel closes it when this process exits, however it exits (normal end, panic,
//! `SIGKILL`, Ctrl-C). The watchdog sees end-of-file, asks postgres for a fast shutdown
//! (`SIGINT`, repeated until it is gone: a signal that arrives while postgres is still
//! starting can be lost), waits for it and removes the data directory. That is more robust than
//! polling the test's PID (PIDs are reused, and `kill -0` fails across users) or
//! `PR_SET_PDEATHSIG` (which fires when the spawning *thread* exits, and test threads
//! exit all the time).
//!
//! # Users
//!
//! `initdb` refuses to run as root. When the tests run as root (CI does), the watchdog,
//! `initdb` and `postgres` run as the `postgres` OS user, which the Debian server
//! package creates; otherwise they run as the current user.
//!
//! # Log
//!
//! initdb's and the server's output go to `test-artifacts/postgres/<test binary>.log`
//! (overwritten by the binary's next run), or to the file named by `ALIS_TEST_PG_LOG`.
//! Statement errors appear there with the statement, which helps when a test fails on
//! a database error.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// How to get the server binaries, for the panic message when they are missing.
const INSTALL_HINT: &str = "install them with `scripts/install-test-deps` \
     (or `apt-get install -y postgresql`)";

/// How long initdb plus server start may take. Normally well under two seconds; the
/// margin is for a 2-core machine that is also compiling.
const START_DEADLINE: Duration = Duration::from_secs(90);

/// How often to look whether the server is ready.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Attempts at finding a free port: between our probe and the server's bind another
/// process (another test binary, another worktree) may take it.
const PORT_ATTEMPTS: usize = 5;

/// Superuser created by initdb, whatever OS user runs the server.
const SUPERUSER: &str = "postgres";

/// Environment variable that overrides where the server log is written.
const LOG_ENV: &str = "ALIS_TEST_PG_LOG";

/// The watchdog, run as `sh -c WATCHDOG sh ROOT BINDIR PORT`, with this process
/// holding the write end of its stdin and the server log as its stdout and stderr.
///
/// It initialises a cluster in `ROOT/data`, starts postgres with its socket in
/// `ROOT/sock`, and removes `ROOT` once postgres has stopped: either because the test
/// process is gone (end-of-file on the lifeline, then `SIGINT` = fast shutdown) or
/// because postgres failed by itself (e.g. the port was taken).
const WATCHDOG: &str = r#"
set -u
root=${1:?root directory}
bin=${2:?binary directory}
port=${3:?port}
# POSIX shells give background jobs /dev/null as stdin, so keep the lifeline on fd 3.
exec 3<&0 </dev/null
"$bin/initdb" -D "$root/data" -U postgres -A trust -E UTF8 --locale=C \
    --no-sync --no-instructions 3<&- || { status=$?; rm -rf "$root"; exit "$status"; }
mkdir -m 700 "$root/sock" || { rm -rf "$root"; exit 1; }
"$bin/postgres" -D "$root/data" -p "$port" -k "$root/sock" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off -c max_connections=300 3<&- &
pg=$!
{
    cat <&3 >/dev/null
    # Until postgres is gone: between fork and exec, and before postgres installs its
    # handlers, SIGINT is ignored (as in every background job of a script) and lost.
    while kill -INT "$pg" 2>/dev/null; do sleep 0.1; done
} &
watcher=$!
exec 3<&-
wait "$pg"
status=$?
# If postgres stopped by itself, the watcher still waits on the lifeline: end it.
kill "$watcher" 2>/dev/null
rm -rf "$root"
exit "$status"
"#;

/// The server started once for this test binary.
static SERVER: OnceLock<Result<PostgresServer, String>> = OnceLock::new();

/// A PostgreSQL server on 127.0.0.1 that lives as long as this test process.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    /// Write end of the watchdog's stdin. Never written to; held (in a static) until
    /// the process exits, which is what stops the server.
    _lifeline: ChildStdin,
}

/// Returns the URL of a new, empty database on this test binary's PostgreSQL server,
/// starting the server on first use.
///
/// Each call creates a database of its own, so tests can run in parallel without seeing
/// each other's tables. Databases are not dropped: they go with the server.
pub async fn postgres_url() -> String {
    PostgresServer::get().create_database().await
}

impl PostgresServer {
    /// The server of this test binary, started (blocking, a second or two) on first
    /// call.
    ///
    /// # Panics
    ///
    /// When the server cannot be started, e.g. because its binaries are missing; the
    /// message says why and how to install them. Every test asking for it panics the
    /// same way: tests never skip for want of a database.
    pub fn get() -> &'static PostgresServer {
        match SERVER.get_or_init(start) {
            Ok(server) => server,
            Err(reason) => panic!("test PostgreSQL server is not available: {reason}"),
        }
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Temporary directory holding the cluster (`data/`) and the Unix socket (`sock/`);
    /// removed once the server has stopped.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Server log (initdb and postgres output), kept after the run for a person to
    /// read.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// URL of `database` on this server, as the superuser (trust authentication).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    ///
    /// Uses a short-lived connection rather than a pool, so it works from any tokio
    /// runtime (each `#[tokio::test]` has its own).
    pub async fn create_database(&self) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "test_{}_{:08x}",
            COUNTER.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        );
        let admin_url = self.url("postgres");
        let mut conn = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("connect to test PostgreSQL at {admin_url}: {e}"));
        // template0: always pristine, whatever anyone did to template1. FILE_COPY
        // (PostgreSQL 15+): about 70 ms here against 240 ms for the default WAL_LOG,
        // whose advantage (no checkpoint) is moot with fsync off.
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE template0 STRATEGY FILE_COPY"
        )))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        // Closing politely only saves the server a log line; failure is harmless.
        let _ = conn.close().await;
        self.url(&name)
    }
}

/// Starts the server, retrying on a port taken between probe and bind.
fn start() -> Result<PostgresServer, String> {
    let bin = find_bin_dir()?;
    let run_as = server_user()?;
    let log = log_path()?;
    File::create(&log).map_err(|e| format!("create server log {}: {e}", log.display()))?;

    let mut last_error = String::new();
    for _ in 0..PORT_ATTEMPTS {
        match start_once(&bin, run_as, &log) {
            Ok(server) => return Ok(server),
            Err(Failure::PortTaken(message)) => last_error = message,
            Err(Failure::Other(message)) => return Err(message),
        }
    }
    Err(format!(
        "no free port after {PORT_ATTEMPTS} attempts; last: {last_error}"
    ))
}

enum Failure {
    /// Another process bound the port first: worth another attempt.
    PortTaken(String),
    Other(String),
}

/// One attempt: a new directory, a new cluster, a new port.
fn start_once(
    bin: &Path,
    run_as: Option<(u32, u32)>,
    log: &Path,
) -> Result<PostgresServer, Failure> {
    let other = Failure::Other;
    let dir = tempfile::Builder::new()
        .prefix("alis-import-pg-")
        .tempdir()
        .map_err(|e| other(format!("create temporary directory: {e}")))?
        .keep();
    if let Some((uid, gid)) = run_as {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .map_err(|e| other(format!("chown {} to the postgres user: {e}", dir.display())))?;
    }
    let port = free_port().map_err(other)?;
    let log_start = fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let open_log = || {
        OpenOptions::new()
            .append(true)
            .open(log)
            .map_err(|e| Failure::Other(format!("open server log {}: {e}", log.display())))
    };

    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(WATCHDOG)
        .arg("sh")
        .arg(&dir)
        .arg(bin)
        .arg(port.to_string())
        // The postgres user may not be allowed into the test's working directory.
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(open_log()?)
        .stderr(open_log()?)
        // Own process group: a Ctrl-C on the terminal kills the test process, and the
        // watchdog then shuts postgres down cleanly instead of dying with it.
        .process_group(0);
    if let Some((uid, gid)) = run_as {
        command.uid(uid).gid(gid);
    }
    let mut child = command.spawn().map_err(|e| {
        let _ = fs::remove_dir_all(&dir);
        other(format!("spawn the postgres watchdog (sh): {e}"))
    })?;
    let lifeline = child.stdin.take().expect("stdin was configured as a pipe");

    // On any failure below, dropping `lifeline` makes the watchdog stop postgres and
    // remove `dir`.
    wait_until_ready(&mut child, &dir, port).map_err(|failure| {
        let output = log_since(log, log_start);
        let message = format!("{failure}; server log ({}):\n{output}", log.display());
        if output.contains("could not bind") || output.contains("Address already in use") {
            Failure::PortTaken(message)
        } else {
            Failure::Other(message)
        }
    })?;

    Ok(PostgresServer {
        port,
        dir,
        log: log.to_path_buf(),
        _lifeline: lifeline,
    })
}

/// Waits until the postmaster reports itself ready on `port`.
///
/// Reads `postmaster.pid` as `pg_ctl -w` does: its eighth line says `ready` once the
/// server accepts connections. Unlike probing the port, this cannot mistake another
/// server that grabbed the port for ours.
fn wait_until_ready(child: &mut Child, dir: &Path, port: u16) -> Result<(), String> {
    let pid_file = dir.join("data").join("postmaster.pid");
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Ok(contents) = fs::read_to_string(&pid_file) {
            let lines: Vec<&str> = contents.lines().collect();
            let port_matches = lines.get(3).map(|l| l.trim()) == Some(&port.to_string());
            let ready = lines.get(7).map(|l| l.trim()) == Some("ready");
            if port_matches && ready {
                return Ok(());
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => return Err(format!("postgres exited during start-up ({status})")),
            Ok(None) => {}
            Err(e) => return Err(format!("wait for the postgres watchdog: {e}")),
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "postgres not ready after {} s",
                START_DEADLINE.as_secs()
            ));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Directory with `initdb` and `postgres`: Debian's newest
/// `/usr/lib/postgresql/<major>/bin`, else the one on `PATH`.
fn find_bin_dir() -> Result<PathBuf, String> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();

    let debian = Path::new("/usr/lib/postgresql");
    let newest = fs::read_dir(debian)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major: u32 = entry.file_name().to_str()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .max_by_key(|(major, _)| *major);
    if let Some((_, dir)) = newest {
        return Ok(dir);
    }

    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .find(|dir| has_server(dir));
    on_path.ok_or_else(|| {
        format!(
            "PostgreSQL server binaries (initdb, postgres) not found in \
             {}/<version>/bin or on PATH; {INSTALL_HINT}",
            debian.display()
        )
    })
}

/// `Some((uid, gid))` of the `postgres` OS user when running as root (initdb refuses
/// root), `None` to run the server as ourselves.
fn server_user() -> Result<Option<(u32, u32)>, String> {
    if id(&["-u"])? != 0 {
        return Ok(None);
    }
    let uid = id(&["-u", SUPERUSER]).map_err(|e| {
        format!(
            "running as root, so the server must run as the `{SUPERUSER}` OS user, \
             which is missing ({e}); the server package creates it: {INSTALL_HINT}"
        )
    })?;
    Ok(Some((uid, id(&["-g", SUPERUSER])?)))
}

/// Runs `id ARGS` and parses the number it prints.
fn id(args: &[&str]) -> Result<u32, String> {
    let output = Command::new("id")
        .args(args)
        .output()
        .map_err(|e| format!("run `id`: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "`id {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    text.trim()
        .parse()
        .map_err(|e| format!("`id {}` printed {text:?}: {e}", args.join(" ")))
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("find a free port: {e}"))
}

/// Where the server log goes: `$ALIS_TEST_PG_LOG`, else
/// `test-artifacts/postgres/<test binary>.log` (overwritten by the binary's next run).
fn log_path() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(LOG_ENV) {
        return Ok(PathBuf::from(path));
    }
    let dir = super::artifacts_dir().join("postgres");
    fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("find the test binary: {e}"))?;
    let stem = exe
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("tests")
        .to_owned();
    // Cargo names test binaries `<target>-<16 hex digits>`; the hash changes per build.
    let name = match stem.rsplit_once('-') {
        Some((target, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            target.to_owned()
        }
        _ => stem,
    };
    Ok(dir.join(format!("{name}.log")))
}

/// What was appended to the log after byte `start`, for error messages.
fn log_since(log: &Path, start: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(log) {
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_ok() {
            let from = usize::try_from(start).unwrap_or(0).min(bytes.len());
            text = String::from_utf8_lossy(&bytes[from..]).into_owned();
        }
    }
    if text.trim().is_empty() {
        "(empty)".to_owned()
    } else {
        text
    }
}
