//! Download speed of the SFTP source against OpenSSH's own `sftp` client, on the same
//! file from the same local test sshd (loopback, so the figure is CPU, not network).
//!
//! ```text
//! cargo run --release --example sftp_download_bench [-- SIZE_MB [ROUNDS [WINDOW_MIB [READS]]]]
//!     [--out FRAGMENT.json]
//! ```
//!
//! With `--out`, the rounds are also written as a results fragment for
//! `scripts/bench` (benchmark 3 of issue 8; see BENCHMARKS.md).
//!
//! Each round times, from nothing to a complete local file: `sftp -b` (connect, key
//! login, `get`); the SFTP source (connect, password login, list, download with
//! SHA-256 and size check, rename into place); and the fetch step a run waits for
//! before parsing (the same, through `begin_fetch`, with a fresh SQLite database whose
//! file cache has nothing to reuse), then, apart, the file cache write the run does
//! while it parses.
//! Prints the best and median of each and the ratios. Needs root (the harness creates
//! a user) and OpenSSH.

#[path = "bench_support/mod.rs"]
mod bench_support;
#[path = "../tests/support/sshd.rs"]
mod sshd;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use alis_import::fetch::{FetchSettings, RunLog, RunLogLevel, begin_fetch};
use alis_import::source::{FileSource, SftpCredentials, SftpSettings, SftpSource};
use alis_import::store::{Store, StoreError};

const NAME: &str = "Curr_Lic_Eds_End_Limits_20261127.csv";

#[tokio::main]
async fn main() {
    let mut out = None;
    let mut positional = Vec::new();
    let mut all = std::env::args().skip(1);
    while let Some(arg) = all.next() {
        if arg == "--out" {
            out = Some(all.next().expect("--out PATH"));
        } else {
            positional.push(arg);
        }
    }
    let start_load = bench_support::machine::Load::now();
    let mut args = positional.into_iter();
    let size_mb: usize = args.next().map_or(200, |a| a.parse().expect("SIZE_MB"));
    let rounds: usize = args.next().map_or(5, |a| a.parse().expect("ROUNDS"));
    let defaults = SftpSettings::new("");
    let window_size: u32 = args.next().map_or(defaults.window_size, |a| {
        a.parse::<u32>().expect("WINDOW_MIB") << 20
    });
    let concurrent_reads: usize = args
        .next()
        .map_or(defaults.concurrent_reads, |a| a.parse().expect("READS"));
    let size = size_mb * 1_000_000;

    let server = sshd::SshServer::start("bench-password");
    let mut bytes = vec![0u8; size];
    fastrand::fill(&mut bytes);
    server.put(NAME, &bytes, SystemTime::now() - Duration::from_secs(3600));
    drop(bytes);
    let work = tempfile::tempdir().unwrap();
    let batch = work.path().join("batch");
    let reference_copy = work.path().join("reference.csv");
    std::fs::write(
        &batch,
        format!(
            "get {}/{NAME} {}\n",
            server.remote_folder(),
            reference_copy.display()
        ),
    )
    .unwrap();

    let settings = SftpSettings {
        window_size,
        concurrent_reads,
        ..SftpSettings::new(server.remote_folder())
    };
    let credentials = SftpCredentials {
        host: server.host().to_owned(),
        port: server.port(),
        username: server.username().to_owned(),
        password: server.password().into(),
        private_key: None,
        fingerprints: vec![server.fingerprint().parse().unwrap()],
    };
    println!(
        "file: {size_mb} MB; {rounds} rounds each, alternating; source: {} MiB window, {} \
         reads in flight; sftp: {}",
        window_size >> 20,
        concurrent_reads,
        openssh_version()
    );

    let mut openssh = Vec::new();
    let mut ours = Vec::new();
    let mut fetch_step = Vec::new();
    let mut cache_write = Vec::new();
    for round in 0..rounds {
        let started = Instant::now();
        let status = Command::new("sftp")
            .args(["-q", "-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"])
            .arg("-i")
            .arg(server.client_key_path())
            .arg("-P")
            .arg(server.port().to_string())
            .arg("-b")
            .arg(&batch)
            .arg(format!("{}@{}", server.username(), server.host()))
            .stdout(Stdio::null())
            .status()
            .expect("run sftp (apt-get install -y openssh-client)");
        assert!(status.success(), "sftp failed");
        openssh.push(started.elapsed());
        assert_eq!(
            std::fs::metadata(&reference_copy).unwrap().len(),
            size as u64
        );
        std::fs::remove_file(&reference_copy).unwrap();

        let dest = tempfile::tempdir_in(work.path()).unwrap();
        let started = Instant::now();
        let source = SftpSource::new(settings.clone(), credentials.clone());
        let file = source.list().await.unwrap().files.remove(0);
        let fetched = source.download(&file, dest.path()).await.unwrap();
        ours.push(started.elapsed());
        source.close().await;
        assert_eq!(fetched.size, size as u64);
        drop(dest);

        // The fetch step, into a fresh database: its cache has nothing to reuse.
        let dest = tempfile::tempdir_in(work.path()).unwrap();
        let store = Store::connect(&format!(
            "sqlite://{}?mode=rwc",
            dest.path().join("cache.db").display()
        ))
        .await
        .unwrap();
        store.migrate(true).await.unwrap();
        let fetch_settings = FetchSettings {
            min_age: Duration::ZERO,
            ..FetchSettings::default()
        };
        let started = Instant::now();
        let source = FileSource::Sftp(SftpSource::new(settings.clone(), credentials.clone()));
        let (fetched, pending) = begin_fetch(
            &source,
            &store,
            dest.path(),
            jiff::Timestamp::now(),
            &fetch_settings,
            &Quiet,
        )
        .await
        .unwrap();
        fetch_step.push(started.elapsed());
        assert!(!fetched.from_cache);
        let started = Instant::now();
        pending
            .expect("a download leaves the file to cache")
            .store(&store, &Quiet)
            .await
            .unwrap();
        cache_write.push(started.elapsed());
        store.close().await;

        println!(
            "round {}: sftp {:.3} s, source {:.3} s, fetch step {:.3} s, then the cache \
             write {:.3} s",
            round + 1,
            openssh[round].as_secs_f64(),
            ours[round].as_secs_f64(),
            fetch_step[round].as_secs_f64(),
            cache_write[round].as_secs_f64()
        );
        std::io::stdout().flush().unwrap();
    }

    // What each client negotiated, from sshd's log, in connection order.
    let mut negotiated: Vec<String> = Vec::new();
    let mut client = String::new();
    for line in server.log().lines() {
        if let Some((_, software)) = line.split_once("remote software version ") {
            client = software.trim().to_owned();
        } else if let Some((_, cipher)) = line.split_once("kex: server->client cipher: ") {
            let pair = format!("{client}: {}", cipher.trim_end_matches(" [preauth]"));
            if !negotiated.contains(&pair) {
                negotiated.push(pair);
            }
        }
    }
    for pair in &negotiated {
        println!("negotiated by {pair}");
    }

    // In the order they ran: `summary` sorts.
    let paired = (
        openssh.clone(),
        ours.clone(),
        fetch_step.clone(),
        cache_write.clone(),
    );
    let (openssh_best, openssh_median) = summary(&mut openssh);
    let (ours_best, ours_median) = summary(&mut ours);
    let mbps = |d: Duration| size as f64 / 1e6 / d.as_secs_f64();
    println!(
        "OpenSSH sftp: best {:.3} s ({:.0} MB/s), median {:.3} s",
        openssh_best.as_secs_f64(),
        mbps(openssh_best),
        openssh_median.as_secs_f64()
    );
    println!(
        "SFTP source:  best {:.3} s ({:.0} MB/s), median {:.3} s",
        ours_best.as_secs_f64(),
        mbps(ours_best),
        ours_median.as_secs_f64()
    );
    println!(
        "ratio (source / sftp): best {:.2}x, median {:.2}x",
        ours_best.as_secs_f64() / openssh_best.as_secs_f64(),
        ours_median.as_secs_f64() / openssh_median.as_secs_f64()
    );
    if let Some(out) = out {
        write_fragment(
            std::path::Path::new(&out),
            size_mb,
            paired,
            &negotiated,
            start_load,
        );
    }
}

/// Benchmark 3's results fragment: the rounds, paired in the order they ran.
fn write_fragment(
    out: &std::path::Path,
    size_mb: usize,
    (openssh, ours, fetch_step, cache_write): (
        Vec<Duration>,
        Vec<Duration>,
        Vec<Duration>,
        Vec<Duration>,
    ),
    negotiated: &[String],
    start_load: bench_support::machine::Load,
) {
    use bench_support::results::{Comparison, Section};
    let secs = |v: Vec<Duration>| v.iter().map(Duration::as_secs_f64).collect::<Vec<_>>();
    let mut section = Section::new("sftp_download", "3. SFTP download vs. OpenSSH sftp");
    let label = format!("{size_mb} MB file from a local sshd, connect to complete local file");
    let with_cache: Vec<Duration> = fetch_step
        .iter()
        .zip(&cache_write)
        .map(|(fetch, cache)| *fetch + *cache)
        .collect();
    let fetch = Comparison::new(
        label.clone(),
        "s",
        (
            "fetch step as a run waits for it: SFTP list + download + SHA-256",
            secs(fetch_step),
        ),
        ("OpenSSH sftp -b: get", secs(openssh.clone())),
    );
    let sequential = Comparison::new(
        label.clone(),
        "s",
        (
            "fetch step, then the file cache write (SQLite) the run overlaps with its parse",
            secs(with_cache),
        ),
        ("OpenSSH sftp -b: get", secs(openssh.clone())),
    );
    let download = Comparison::new(
        label,
        "s",
        ("SFTP source (russh): list + download + SHA-256", secs(ours)),
        ("OpenSSH sftp -b: get", secs(openssh)),
    );
    for (name, comparison) in [("fetch step", &fetch), ("SFTP source", &download)] {
        section.fact(
            format!("{name}: MB/s (median)"),
            size_mb as f64 / comparison.ours.median,
            "MB/s",
        );
    }
    section.fact(
        "OpenSSH sftp: MB/s (median)",
        size_mb as f64 / fetch.reference.median,
        "MB/s",
    );
    section.check(
        "fetch step / OpenSSH sftp ≤ 1.3× (median of per-round ratios)",
        fetch.ratio.median,
        1.3,
        true,
    );
    let mut cache_secs = secs(cache_write);
    cache_secs.sort_by(f64::total_cmp);
    section.fact(
        format!("file cache write, {size_mb} MB into SQLite (median)"),
        cache_secs[cache_secs.len() / 2],
        "s",
    );
    section.note(
        "The fetch step is what a run waits for before parsing (`begin_fetch`): the \
         listing, the file cache's look-up (a fresh SQLite database per round, so nothing \
         to reuse) and the download as the SFTP source does it. The run then stores the \
         file's bytes in the file cache while it parses, and takes the certification lock \
         only once they are stored; the second row adds that write to the fetch step, as \
         a run did before the write moved alongside the parse. The SFTP source row is the \
         download alone, without the fetch step's look-ups.",
    );
    section.comparisons.push(fetch);
    section.comparisons.push(sequential);
    section.comparisons.push(download);
    for pair in negotiated {
        section.note(format!("negotiated by {pair}"));
    }
    section.load = Some((start_load, bench_support::machine::Load::now()));
    bench_support::results::write_fragment(out, &[section]);
}

fn summary(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    (times[0], times[times.len() / 2])
}

fn openssh_version() -> String {
    let output = Command::new("ssh").arg("-V").output().unwrap();
    String::from_utf8_lossy(&output.stderr).trim().to_owned()
}

/// A run log that keeps nothing: the benchmark times the fetch, not its log.
struct Quiet;

impl RunLog for Quiet {
    fn run_id(&self) -> Option<i64> {
        None
    }

    async fn append(&self, _level: RunLogLevel, _message: &str) -> Result<(), StoreError> {
        Ok(())
    }
}
