//! Runs through the real service fetching over SFTP with credentials from Vault: a real
//! OpenSSH sshd and a real OpenBao on loopback, the service on port 0, RunNow and the
//! reports through its gRPC API. Each test has its own sshd (and user), OpenBao,
//! database and folders.
//!
//! Every tracing event of the process (the service runs in it), at TRACE, is captured
//! in a buffer, so a test can scan all of it for a password.

mod common;
mod support;

#[path = "support/openbao.rs"]
mod openbao;
#[path = "support/sshd.rs"]
mod sshd;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use alis_import::api::proto::{self, RunStatus, Weekday};
use alis_import::sample::{self, SampleSpec};
use alis_import::store::{ConnectionEvent, ConnectionEventFilter, Store};
use common::app::{AppOptions, TestApp, spawn_app_with, test_epoch};
use jiff::ToSpan;
use sha2::{Digest, Sha256};
use support::Backend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use openbao::OpenBao;
use sshd::SshServer;

on_both_backends!(run_now_through_sftp_and_vault_imports_the_newest_recognised_file);

/// A valid fingerprint of no server in these tests.
const OTHER_FINGERPRINT: &str = "SHA256:alqSNwBJ+rjsYgipC3a0hbUlqGtBbQM67vCQiWMH90w";
/// Where each test's credentials are in its OpenBao.
const SECRET_PATH: &str = "alis-import/sftp";

// --- fixture -------------------------------------------------------------------------

/// An sshd, an OpenBao holding its credentials, and the service reading them.
struct Fixture {
    app: TestApp,
    sshd: SshServer,
    bao: OpenBao,
    task_id: i64,
    /// The service's Vault token.
    token: String,
    _secrets: tempfile::TempDir,
}

/// What goes into the Vault secret, besides what the sshd dictates.
struct Secret<'a> {
    password: &'a str,
    port: Option<u16>,
    fingerprint: Option<&'a str>,
}

impl Fixture {
    /// Starts sshd (its user's password is `password`), OpenBao with the matching
    /// credentials, readable with a token that may read that path only, and the
    /// service configured for `--source sftp` with `flags` added.
    async fn start(backend: Backend, password: &str, flags: &[&str]) -> Self {
        Self::start_with_token_ttl(backend, password, flags, "1h").await
    }

    /// As [`Fixture::start`], with a renewable token of this TTL.
    async fn start_with_token_ttl(
        backend: Backend,
        password: &str,
        flags: &[&str],
        token_ttl: &str,
    ) -> Self {
        captured_logs();
        let sshd = SshServer::start(password);
        let bao = OpenBao::start();
        let secrets = support::temp_dir();
        let token_file = secrets.path().join("vault-token");
        bao.read_policy("alis-reader", SECRET_PATH);
        let token = bao.create_token(&["alis-reader"], token_ttl, true);
        std::fs::write(&token_file, &token).unwrap();
        let fixture_flags = [
            "--source".to_owned(),
            "sftp".to_owned(),
            "--vault-addr".to_owned(),
            bao.address(),
            "--vault-token-file".to_owned(),
            token_file.display().to_string(),
            "--vault-sftp-path".to_owned(),
            SECRET_PATH.to_owned(),
            "--vault-timeout".to_owned(),
            "3s".to_owned(),
            "--sftp-folder".to_owned(),
            sshd.remote_folder(),
            "--sftp-connect-timeout".to_owned(),
            "5s".to_owned(),
            "--sftp-handshake-timeout".to_owned(),
            "10s".to_owned(),
            "--sftp-inactivity-timeout".to_owned(),
            "10s".to_owned(),
        ];
        let mut all_flags: Vec<String> = fixture_flags.to_vec();
        all_flags.extend(flags.iter().map(|f| (*f).to_owned()));
        let app = spawn_app_with(
            backend,
            AppOptions {
                flags: all_flags,
                replace_gate: None,
            },
        )
        .await;
        let task_id = create_task(&app).await;
        let fixture = Self {
            app,
            sshd,
            bao,
            task_id,
            token,
            _secrets: secrets,
        };
        fixture.put_secret(Secret {
            password,
            port: None,
            fingerprint: None,
        });
        fixture
    }

    /// Writes the credentials secret (a new version): the sshd's host, user and, unless
    /// overridden, port and fingerprint.
    fn put_secret(&self, secret: Secret<'_>) {
        let port = secret.port.unwrap_or(self.sshd.port()).to_string();
        self.bao.put_secret(
            SECRET_PATH,
            &[
                ("hostname", self.sshd.host()),
                ("port", &port),
                ("username", self.sshd.username()),
                ("password", secret.password),
                (
                    "fingerprint",
                    secret.fingerprint.unwrap_or(self.sshd.fingerprint()),
                ),
            ],
        );
    }

    /// Writes the sample district into the ERP tables.
    async fn seed_district(&self, spec: &SampleSpec) {
        self.app
            .store
            .insert_district(&sample::district(spec))
            .await
            .expect("insert the district");
    }

    /// Starts a run of the task and follows it to its end.
    async fn run(&self) -> proto::Run {
        let run = self
            .app
            .client
            .clone()
            .run_now(proto::RunNowRequest {
                task_id: self.task_id,
                ..Default::default()
            })
            .await
            .expect("run now")
            .into_inner()
            .run
            .expect("run");
        watch_to_end(&self.app, run.id).await
    }

    async fn run_log(&self, run_id: i64) -> Vec<String> {
        self.app
            .client
            .clone()
            .get_run_log(proto::GetRunLogRequest { run_id })
            .await
            .expect("get run log")
            .into_inner()
            .entries
            .into_iter()
            .map(|entry| entry.message)
            .collect()
    }

    async fn report(&self, run_id: i64) -> proto::ImportSummary {
        self.app
            .client
            .clone()
            .get_report(proto::GetReportRequest { run_id })
            .await
            .expect("get report")
            .into_inner()
            .summary
            .expect("summary")
    }

    async fn events(&self, run_id: i64) -> Vec<ConnectionEvent> {
        self.app
            .store
            .connection_events(&ConnectionEventFilter {
                run_id: Some(run_id),
                ..ConnectionEventFilter::latest(10)
            })
            .await
            .expect("connection events")
    }

    async fn cached_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .app
            .store
            .cache_list()
            .await
            .expect("cache list")
            .into_iter()
            .map(|file| file.name.to_string())
            .collect();
        names.sort();
        names
    }
}

async fn create_task(app: &TestApp) -> i64 {
    app.client
        .clone()
        .schedule_task(proto::ScheduleTaskRequest {
            task_id: 0,
            description: "VT - ALiS Certification Import".into(),
            active: false,
            start_date: "2026-11-30".into(),
            start_time: "06:00".into(),
            weekdays: vec![Weekday::Monday as i32],
            time_zone: "America/New_York".into(),
        })
        .await
        .expect("schedule task")
        .into_inner()
        .task
        .expect("task")
        .id
}

/// Follows a run until it ends (at most a minute).
async fn watch_to_end(app: &TestApp, run_id: i64) -> proto::Run {
    let mut stream = app
        .client
        .clone()
        .watch_run(proto::WatchRunRequest { run_id })
        .await
        .expect("watch run")
        .into_inner();
    let mut last = None;
    while let Some(update) = tokio::time::timeout(Duration::from_secs(60), stream.message())
        .await
        .expect("the run ends within a minute")
        .expect("stream ok")
    {
        last = update.run;
    }
    last.expect("at least one update")
}

fn small_sample() -> SampleSpec {
    SampleSpec {
        statewide_educators: 300,
        employees: 40,
        ..SampleSpec::default()
    }
}

fn sample_file(spec: &SampleSpec) -> Vec<u8> {
    sample_file_and_rows(spec).0
}

/// The sample's statewide file and its number of data rows.
fn sample_file_and_rows(spec: &SampleSpec) -> (Vec<u8>, i64) {
    let mut bytes = Vec::new();
    let rows = sample::write_statewide_file(spec, &mut bytes).expect("write the sample file");
    (bytes, i64::try_from(rows).unwrap())
}

/// An instant relative to the service's (manual) clock, as a file modification time.
fn clock_minus(span: jiff::Span) -> SystemTime {
    let at = test_epoch() - span;
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(at.as_second()).unwrap())
}

fn an_hour_before_the_clock() -> SystemTime {
    clock_minus(1.hour())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every certification, endorsement and endorsement code, as text.
async fn certification_tables(store: &Store) -> Vec<String> {
    const SQL: &str = "select 'c|' || cast(id as text) || '|' || cast(employee_id as text) || '|' \
        || coalesce(license_number, '') || '|' || license_type || '|' || status || '|' || source \
        from certifications \
        union all select 'e|' || cast(id as text) || '|' || code || '|' \
        || coalesce(grade_level, '') || '|' || source from endorsements \
        union all select 'k|' || code from endorsement_codes order by 1";
    match store {
        Store::Postgres(pool) => sqlx::query_scalar(SQL).fetch_all(pool).await,
        Store::Sqlite(pool) => sqlx::query_scalar(SQL).fetch_all(pool).await,
    }
    .expect("read the certification tables")
}

// --- captured logs ---------------------------------------------------------------------

/// Everything tracing (and the `log` bridge: russh) wrote in this process, at TRACE.
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || BufferWriter(writer.clone()))
            .try_init()
            .expect("install the capturing subscriber");
        logs
    })
}

struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs_text() -> String {
    String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned()
}

// --- a proxy that cuts transfers -------------------------------------------------------

/// Forwards connections to `target`, closing both sides once `limit` bytes have come
/// back from the server.
async fn cutting_proxy(target: u16, limit: usize) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(("127.0.0.1", target)).await.unwrap();
            tokio::spawn(async move {
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let upstream = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let mut forwarded = 0;
                let mut buffer = vec![0; 16 * 1024];
                while forwarded < limit {
                    let want = buffer.len().min(limit - forwarded);
                    match server_read.read(&mut buffer[..want]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if client_write.write_all(&buffer[..n]).await.is_err() {
                                break;
                            }
                            forwarded += n;
                        }
                    }
                }
                upstream.abort();
                // Dropping both halves closes both connections.
            });
        }
    });
    (port, task)
}

// --- tests -----------------------------------------------------------------------------

async fn run_now_through_sftp_and_vault_imports_the_newest_recognised_file(backend: Backend) {
    let password = "full-run-Pw-3a9c71";
    let fixture = Fixture::start(backend, password, &["--min-file-age", "60s"]).await;
    let spec = small_sample();
    fixture.seed_district(&spec).await;
    let newest = sample::file_name(&spec);
    assert_eq!(newest, "Curr_Lic_Eds_End_Limits_20261130.csv");
    let (bytes, rows) = sample_file_and_rows(&spec);
    let sshd = &fixture.sshd;
    sshd.put(&newest, &bytes, an_hour_before_the_clock());
    sshd.put(
        "Curr_Lic_Eds_End_Limits_20261127.csv",
        b"older: never read",
        an_hour_before_the_clock(),
    );
    for near_miss in [
        "Curr_Lic_Eds_End_Limits_latest.csv",
        "Curr_Lic_Eds_End_Limits_20261399.csv",
        "curr_lic_eds_end_limits_20261201.csv",
    ] {
        sshd.put(near_miss, b"not ALiS", an_hour_before_the_clock());
    }
    // Newer by name, but modified 5 s before the clock: still being uploaded.
    let too_young = "Curr_Lic_Eds_End_Limits_20261130_115955.csv";
    sshd.put(too_young, b"half a file", clock_minus(5.seconds()));

    let run = fixture.run().await;

    assert_eq!(run.status, RunStatus::Succeeded as i32, "{}", run.error);
    assert_eq!(run.file_name, newest);
    let summary = fixture.report(run.id).await;
    let file = summary.file.as_ref().expect("file used");
    assert_eq!(file.name, newest);
    assert_eq!(file.sha256, sha256_hex(&bytes));
    assert!(!file.from_cache);
    assert_eq!(summary.data_rows, rows);
    let imported = summary.imported.expect("imported counts");
    assert!(imported.certifications > 0 && imported.endorsements > 0);
    assert_eq!(
        common::records_written_by(&fixture.app.store, run.id).await,
        imported.certifications + imported.endorsements
    );

    let log = fixture.run_log(run.id).await;
    let noted = |name: &str| log.iter().any(|line| line.contains(name));
    for ignored in [
        "Curr_Lic_Eds_End_Limits_latest.csv",
        "Curr_Lic_Eds_End_Limits_20261399.csv",
        "curr_lic_eds_end_limits_20261201.csv",
    ] {
        assert!(noted(ignored), "{ignored} is not in the run log: {log:#?}");
    }
    assert!(
        log.iter()
            .any(|line| line.contains(too_young) && line.contains("still being written")),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|line| line.contains(&format!(
            "read the SFTP credentials from Vault at {}",
            fixture.bao.address()
        ))),
        "{log:#?}"
    );
    assert_eq!(fixture.cached_names().await, [newest.as_str()]);
    assert!(
        sshd.wait_for_log(&format!("Accepted password for {}", sshd.username())),
        "{}",
        sshd.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pinned_fingerprint_fails_the_run_before_authentication() {
    let fixture = Fixture::start(Backend::Sqlite, "fingerprint-Pw-51d0", &[]).await;
    fixture.sshd.put(
        "Curr_Lic_Eds_End_Limits_20261127.csv",
        b"x",
        an_hour_before_the_clock(),
    );
    fixture.put_secret(Secret {
        password: "fingerprint-Pw-51d0",
        port: None,
        fingerprint: Some(OTHER_FINGERPRINT),
    });

    let run = fixture.run().await;

    assert_eq!(run.status, RunStatus::Failed as i32);
    let presented = fixture.sshd.fingerprint();
    for text in [presented, OTHER_FINGERPRINT] {
        assert!(run.error.contains(text), "{text} not in {}", run.error);
    }
    let log = fixture.run_log(run.id).await;
    assert!(
        log.iter()
            .any(|line| line.contains(presented) && line.contains(OTHER_FINGERPRINT)),
        "{log:#?}"
    );
    let events = fixture.events(run.id).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].kind, "fingerprint_mismatch");
    assert_eq!(events[0].host, format!("127.0.0.1:{}", fixture.sshd.port()));
    assert!(events[0].detail.contains(presented) && events[0].detail.contains(OTHER_FINGERPRINT));
    // By the time sshd logs the end of the connection, any authentication request
    // would have been logged too.
    let sshd = &fixture.sshd;
    assert!(
        sshd.wait_for_log("Connection closed by") || sshd.wait_for_log("Connection reset by"),
        "{}",
        sshd.log()
    );
    assert_eq!(sshd.auth_attempts(), Vec::<String>::new());
    assert!(!sshd.log().contains("userauth-request"), "{}", sshd.log());
    assert!(fixture.cached_names().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_with_auth_refused_and_appears_nowhere() {
    let right = "Right-Pa55word-0f3e8a";
    let wrong = "Wr0ng-Pa55word-9b27c4";
    let fixture = Fixture::start(Backend::Sqlite, right, &[]).await;
    fixture.sshd.put(
        "Curr_Lic_Eds_End_Limits_20261127.csv",
        b"x",
        an_hour_before_the_clock(),
    );
    fixture.put_secret(Secret {
        password: wrong,
        port: None,
        fingerprint: None,
    });

    let run = fixture.run().await;

    assert_eq!(run.status, RunStatus::Failed as i32);
    assert!(
        run.error.contains("refused authentication"),
        "{}",
        run.error
    );
    assert!(run.error.contains(fixture.sshd.username()), "{}", run.error);
    let events = fixture.events(run.id).await;
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["auth_refused"]
    );
    assert!(
        fixture.sshd.wait_for_log("Failed password"),
        "{}",
        fixture.sshd.log()
    );

    // Everything a person or a collector could see about this run.
    let mut shown = vec![run.error.clone(), format!("{run:?}")];
    shown.extend(fixture.run_log(run.id).await);
    shown.extend(events.iter().map(|e| format!("{e:?}")));
    match fixture
        .app
        .client
        .clone()
        .get_report(proto::GetReportRequest { run_id: run.id })
        .await
    {
        Ok(report) => shown.push(format!("{:?}", report.into_inner())),
        Err(status) => shown.push(status.message().to_owned()),
    }
    let page = fixture
        .app
        .client
        .clone()
        .list_tasks(proto::ListTasksRequest::default())
        .await
        .expect("list tasks")
        .into_inner();
    shown.push(format!("{page:?}"));
    let logs = logs_text();
    shown.push(logs.clone());
    for text in &shown {
        for password in [wrong, right] {
            if let Some(line) = text.lines().find(|line| line.contains(password)) {
                panic!("a password leaked: {line}");
            }
        }
    }
    // The scan saw this run's event, inside the run's span, and the SSH library's own
    // records.
    let port = format!("port={}", fixture.sshd.port());
    assert!(
        logs.lines().any(|line| line.contains("auth_refused")
            && line.contains(&port)
            && line.contains("run{")),
        "no tracing event for the refusal in the run's span"
    );
    assert!(logs.contains("russh"), "russh's records were not captured");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_port_and_a_silent_port_fail_within_the_configured_timeouts() {
    let password = "timeouts-Pw-77ab";
    let timeout = Duration::from_secs(2);
    let fixture = Fixture::start(
        Backend::Sqlite,
        password,
        &[
            "--sftp-connect-timeout",
            "2s",
            "--sftp-handshake-timeout",
            "2s",
        ],
    )
    .await;
    let refused_port = sshd::free_port();
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    // Accepts and holds every connection, saying nothing.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });

    let mut outcomes = Vec::new();
    for port in [refused_port, silent_port] {
        fixture.put_secret(Secret {
            password,
            port: Some(port),
            fingerprint: None,
        });
        let started = Instant::now();
        let run = fixture.run().await;
        outcomes.push((run, started.elapsed()));
    }
    holder.abort();

    let (refused, refused_after) = &outcomes[0];
    assert_eq!(refused.status, RunStatus::Failed as i32);
    assert!(
        refused.error.contains("refused the connection"),
        "{}",
        refused.error
    );
    assert!(
        *refused_after < timeout + Duration::from_secs(3),
        "{refused_after:?}"
    );
    let events = fixture.events(refused.id).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].kind, "refused");
    assert_eq!(events[0].host, format!("127.0.0.1:{refused_port}"));

    let (silent, silent_after) = &outcomes[1];
    assert_eq!(silent.status, RunStatus::Failed as i32);
    assert!(silent.error.contains("timed out"), "{}", silent.error);
    assert!(*silent_after >= timeout, "{silent_after:?}");
    assert!(
        *silent_after < timeout + Duration::from_secs(4),
        "{silent_after:?}"
    );
    let events = fixture.events(silent.id).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].kind, "timeout");
    assert_eq!(events[0].host, format!("127.0.0.1:{silent_port}"));
    let log = fixture.run_log(silent.id).await;
    assert!(
        log.iter().any(|line| line.contains("timed out")),
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_cut_part_way_fails_and_changes_nothing() {
    let password = "cut-transfer-Pw-c0ffee";
    let fixture = Fixture::start(
        Backend::Sqlite,
        password,
        &["--sftp-inactivity-timeout", "5s"],
    )
    .await;
    // About 1 MB: the proxy lets the handshake, login and listing through, and cuts
    // the download less than a third of the way in.
    let spec = SampleSpec {
        statewide_educators: 3_000,
        ..small_sample()
    };
    fixture.seed_district(&spec).await;
    let bytes = sample_file(&spec);
    assert!(bytes.len() > 900_000, "{}", bytes.len());
    fixture.sshd.put(
        &sample::file_name(&spec),
        &bytes,
        an_hour_before_the_clock(),
    );
    let (proxy_port, proxy) = cutting_proxy(fixture.sshd.port(), 300_000).await;
    fixture.put_secret(Secret {
        password,
        port: Some(proxy_port),
        fingerprint: None,
    });
    let before = certification_tables(&fixture.app.store).await;

    let run = fixture.run().await;
    proxy.abort();

    assert_eq!(run.status, RunStatus::Failed as i32);
    assert!(run.error.contains("downloading"), "{}", run.error);
    let events = fixture.events(run.id).await;
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["transfer_error"]
    );
    assert_eq!(certification_tables(&fixture.app.store).await, before);
    assert!(fixture.cached_names().await.is_empty());
    assert_eq!(
        common::records_written_by(&fixture.app.store, run.id).await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_folder_falls_back_to_the_cache_which_keeps_three_files() {
    let password = "cache-Pw-4e21";
    let fixture = Fixture::start(Backend::Sqlite, password, &[]).await;
    let spec = small_sample();
    fixture.seed_district(&spec).await;
    let bytes = sample_file(&spec);
    let names: Vec<String> = (26..=29)
        .map(|day| format!("Curr_Lic_Eds_End_Limits_202611{day}.csv"))
        .collect();
    for name in &names {
        fixture.sshd.put(name, &bytes, an_hour_before_the_clock());
        let run = fixture.run().await;
        assert_eq!(run.status, RunStatus::Succeeded as i32, "{}", run.error);
        assert_eq!(&run.file_name, name);
    }
    assert_eq!(fixture.cached_names().await, names[1..]);
    for name in &names {
        std::fs::remove_file(fixture.sshd.inbox().join(name)).unwrap();
    }

    let run = fixture.run().await;

    assert_eq!(run.status, RunStatus::Succeeded as i32, "{}", run.error);
    assert_eq!(run.file_name, names[3]);
    let summary = fixture.report(run.id).await;
    assert!(summary.file.as_ref().is_some_and(|f| f.from_cache));
    assert!(
        summary
            .notes
            .iter()
            .any(|note| note.contains("held no ALiS file") && note.contains(&names[3])),
        "{:?}",
        summary.notes
    );
    let log = fixture.run_log(run.id).await;
    assert!(
        log.iter().any(|line| line.contains("held no ALiS file")),
        "{log:#?}"
    );
    assert_eq!(fixture.cached_names().await, names[1..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_rotated_in_vault_and_on_the_server_is_used_by_the_next_run() {
    let first = "rotation-first-Pw-1a";
    let second = "rotation-second-Pw-2b";
    let fixture = Fixture::start(Backend::Sqlite, first, &[]).await;
    let spec = small_sample();
    fixture.seed_district(&spec).await;
    fixture.sshd.put(
        &sample::file_name(&spec),
        &sample_file(&spec),
        an_hour_before_the_clock(),
    );
    let run = fixture.run().await;
    assert_eq!(run.status, RunStatus::Succeeded as i32, "{}", run.error);

    fixture.sshd.set_password(second);
    fixture.put_secret(Secret {
        password: second,
        port: None,
        fingerprint: None,
    });
    let run = fixture.run().await;

    assert_eq!(run.status, RunStatus::Succeeded as i32, "{}", run.error);
    // The first password no longer opens the server, so the second run logged in with
    // the rotated one: two accepted logins.
    let accepted = format!("Accepted password for {}", fixture.sshd.username());
    let deadline = Instant::now() + Duration::from_secs(10);
    while fixture.sshd.log().matches(&accepted).count() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        fixture.sshd.log().matches(&accepted).count(),
        2,
        "{}",
        fixture.sshd.log()
    );
    assert!(!fixture.sshd.log().contains("Failed password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_stopped_fails_the_run_with_vault_unreachable() {
    let mut fixture = Fixture::start(Backend::Sqlite, "vault-down-Pw-8c", &[]).await;
    fixture.sshd.put(
        "Curr_Lic_Eds_End_Limits_20261127.csv",
        b"x",
        an_hour_before_the_clock(),
    );
    let address = fixture.bao.address();
    fixture.bao.stop();
    let started = Instant::now();

    let run = fixture.run().await;

    assert_eq!(run.status, RunStatus::Failed as i32);
    assert!(
        run.error.starts_with(&format!(
            "cannot read the SFTP credentials: Vault unreachable at {address}"
        )),
        "{}",
        run.error
    );
    // The configured Vault request timeout is 3 s.
    assert!(
        started.elapsed() < Duration::from_secs(3 + 4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fixture.run_log(run.id).await, [run.error.as_str()]);
    assert!(fixture.events(run.id).await.is_empty());
    assert!(fixture.sshd.auth_attempts().is_empty());
    assert!(
        logs_text().lines().any(|line| line.contains("WARN")
            && line.contains("cannot read the SFTP credentials from Vault")
            && line.contains(&address)),
        "no tracing event for the Vault failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_without_read_on_the_path_fails_the_run_with_a_permission_error() {
    let fixture = Fixture::start(Backend::Sqlite, "policy-Pw-3d", &[]).await;
    // The token's policy now allows reading another path only.
    let elsewhere = "alis-import/elsewhere";
    fixture.bao.write_policy(
        "alis-reader",
        &format!("path \"secret/data/{elsewhere}\" {{ capabilities = [\"read\"] }}"),
    );

    let run = fixture.run().await;

    assert_eq!(run.status, RunStatus::Failed as i32);
    assert!(
        run.error.contains(&format!(
            "permission denied reading secret/{SECRET_PATH} from Vault at {}",
            fixture.bao.address()
        )),
        "{}",
        run.error
    );
    assert_eq!(fixture.run_log(run.id).await, [run.error.as_str()]);
    assert!(fixture.sshd.auth_attempts().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_keeps_a_short_lived_vault_token_alive_between_runs_and_stops_cleanly() {
    // Renewable, 3 s: without the service's renewal job it is dead before the run.
    let fixture = Fixture::start_with_token_ttl(Backend::Sqlite, "renewal-Pw-5f", &[], "3s").await;
    let spec = small_sample();
    fixture.seed_district(&spec).await;
    fixture.sshd.put(
        &sample::file_name(&spec),
        &sample_file(&spec),
        an_hour_before_the_clock(),
    );
    let renewed = || {
        fixture.bao.lookup_token(&fixture.token)["last_renewal_time"]
            .as_i64()
            .is_some()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !renewed() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(renewed(), "the token was not renewed before any run");
    // Past the token's first TTL.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let run = fixture.run().await;

    assert_eq!(run.status, RunStatus::Succeeded as i32, "{}", run.error);
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), fixture.app.stop())
        .await
        .expect("the service (and its renewal job) stops");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
