//! Child processes timed from spawn to exit, with their peak resident set size.
//!
//! The peak RSS comes from GNU time (`/usr/bin/time -f %M`) wrapped around the command,
//! not from our own `wait4`: Linux carries a process's high-water RSS across `exec`,
//! so a child forked from this (large) benchmark process would report at least our
//! own peak. GNU time is small, so the figure it reads is its child's alone.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished child did.
#[derive(Debug)]
pub struct Finished {
    /// Spawn to exit.
    pub wall: Duration,
    /// Peak resident set size, KiB.
    pub max_rss_kib: u64,
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Finished {
    /// Wall time in seconds.
    pub fn secs(&self) -> f64 {
        self.wall.as_secs_f64()
    }

    /// Peak RSS in MB (10⁶ bytes).
    pub fn max_rss_mb(&self) -> f64 {
        self.max_rss_kib as f64 * 1024.0 / 1e6
    }
}

/// Runs `command` to its end; panics with its output unless it exits with one of
/// `ok_codes`.
#[track_caller]
pub fn run(command: Command, ok_codes: &[i32]) -> Finished {
    let line = format!("{command:?}");
    let rss_file = tempfile::NamedTempFile::new().expect("temporary file");
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "%M", "-o"])
        .arg(rss_file.path())
        .arg(command.get_program())
        .args(command.get_args());
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => timed.env(name, value),
            None => timed.env_remove(name),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        timed.current_dir(dir);
    }
    let mut command = timed;
    // Output goes to anonymous temporary files, not pipes: nothing to drain while the
    // child runs, and no reader thread competing with it for the CPU.
    let mut out = tempfile::tempfile().expect("temporary file");
    let mut err = tempfile::tempfile().expect("temporary file");
    command
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(err.try_clone().expect("dup"));
    let started = Instant::now();
    let status = command
        .spawn()
        .and_then(|mut child| child.wait())
        .unwrap_or_else(|e| panic!("cannot run {line}: {e}"));
    let wall = started.elapsed();
    let max_rss_kib = std::fs::read_to_string(rss_file.path())
        .ok()
        .and_then(|text| text.lines().last()?.trim().parse().ok())
        .unwrap_or(0);
    let read = |file: &mut std::fs::File| {
        use std::io::Seek as _;
        let mut text = String::new();
        file.seek(std::io::SeekFrom::Start(0)).expect("seek");
        file.read_to_string(&mut text).expect("read output");
        text
    };
    let finished = Finished {
        wall,
        max_rss_kib,
        code: status.code(),
        stdout: read(&mut out),
        stderr: read(&mut err),
    };
    assert!(
        finished.code.is_some_and(|c| ok_codes.contains(&c)),
        "{line} failed ({:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        finished.code,
        finished.stdout.chars().take(4000).collect::<String>(),
        finished.stderr.chars().take(4000).collect::<String>()
    );
    finished
}

/// Peak RSS (`VmHWM`) of a running process, MB (10⁶ bytes).
pub fn peak_rss_mb(pid: u32) -> f64 {
    status_kib(pid, "VmHWM:") as f64 * 1024.0 / 1e6
}

/// Current RSS (`VmRSS`) of a running process, MB (10⁶ bytes).
pub fn rss_mb(pid: u32) -> f64 {
    status_kib(pid, "VmRSS:") as f64 * 1024.0 / 1e6
}

/// Resets a running process's peak RSS to its current RSS (`clear_refs` 5), so the
/// next [`peak_rss_mb`] is the peak of what follows.
pub fn reset_peak_rss(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .unwrap_or_else(|e| panic!("reset the peak RSS of {pid}: {e}"));
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Sleeps a little between rounds so that one side's writeback or autovacuum is not
/// billed to the other.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}
