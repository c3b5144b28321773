//! The SFTP source against a real OpenSSH sshd on loopback: listing, verified
//! downloads, the pinned host key, authentication, timeouts and cut transfers.

#[path = "support/sshd.rs"]
mod sshd;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use alis_import::source::sftp::{HostKeyFingerprint, TimeoutPhase};
use alis_import::source::{
    FileSource, IgnoreReason, SftpCredentials, SftpError, SftpSettings, SftpSource, SourceError,
    choose_newest,
};
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use sshd::SshServer;

const HOUR: Duration = Duration::from_secs(3600);
/// A valid fingerprint of no server in these tests.
const OTHER_FINGERPRINT: &str = "SHA256:alqSNwBJ+rjsYgipC3a0hbUlqGtBbQM67vCQiWMH90w";

fn an_hour_ago() -> SystemTime {
    SystemTime::now() - HOUR
}

fn settings(server: &SshServer) -> SftpSettings {
    SftpSettings {
        connect_timeout: Duration::from_secs(5),
        handshake_timeout: Duration::from_secs(10),
        inactivity_timeout: Duration::from_secs(10),
        ..SftpSettings::new(server.remote_folder())
    }
}

fn credentials(server: &SshServer) -> SftpCredentials {
    SftpCredentials {
        host: server.host().to_owned(),
        port: server.port(),
        username: server.username().to_owned(),
        password: server.password().into(),
        private_key: None,
        fingerprints: vec![server.fingerprint().parse().unwrap()],
    }
}

fn source(server: &SshServer) -> SftpSource {
    SftpSource::new(settings(server), credentials(server))
}

fn entries_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Everything every test's tracing (and russh's `log` records) wrote, at TRACE level.
/// One buffer for the process: a test scans it for its own (unique) password and
/// server port.
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
            .expect("install the capturing subscriber (and the log bridge)");
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

#[tokio::test]
async fn the_newest_recognised_file_is_downloaded_with_its_sha256_and_size() {
    let server = SshServer::start("list-and-download-pw");
    let newest = "Curr_Lic_Eds_End_Limits_20261128_060000.csv";
    // Larger than a read block and not a multiple of it.
    let bytes: Vec<u8> = (0..1_300_007u32).map(|i| (i % 251) as u8).collect();
    server.put(
        "Curr_Lic_Eds_End_Limits_20261127.csv",
        b"older",
        an_hour_ago(),
    );
    server.put(newest, &bytes, an_hour_ago());
    server.put(
        "Curr_Lic_Eds_End_Limits_20261128.txt",
        b"same day, no time",
        an_hour_ago(),
    );
    for near_miss in [
        "Curr_Lic_Eds_End_Limits_latest.csv",
        "Curr_Lic_Eds_End_Limits_20261399.csv",
        "curr_lic_eds_end_limits_20261130.csv",
        "Curr_Lic_Eds_End_Limits_20261130.csv.bak",
    ] {
        server.put(near_miss, b"not ALiS", an_hour_ago());
    }
    std::fs::create_dir(server.inbox().join("Curr_Lic_Eds_End_Limits_20261201.csv")).unwrap();
    std::os::unix::fs::symlink(
        server.inbox().join(newest),
        server.inbox().join("Curr_Lic_Eds_End_Limits_20261202.csv"),
    )
    .unwrap();
    let dest = TempDir::new().unwrap();
    let source = FileSource::Sftp(source(&server));

    let listing = source.list().await.unwrap();
    let choice = choose_newest(listing.clone(), Timestamp::now(), Duration::from_secs(60));
    let chosen = choice.chosen.unwrap();
    let fetched = source.download(&chosen, dest.path()).await.unwrap();

    let names: Vec<&str> = listing.files.iter().map(|f| f.name.name()).collect();
    assert_eq!(
        names,
        [
            "Curr_Lic_Eds_End_Limits_20261127.csv",
            "Curr_Lic_Eds_End_Limits_20261128.txt",
            newest,
        ]
    );
    let ignored: Vec<(&str, &IgnoreReason)> = listing
        .ignored
        .iter()
        .map(|e| (e.name.as_str(), &e.reason))
        .collect();
    assert_eq!(ignored.len(), 6, "{ignored:?}");
    assert!(ignored.contains(&(
        "Curr_Lic_Eds_End_Limits_20261201.csv",
        &IgnoreReason::Directory
    )));
    assert!(ignored.contains(&(
        "Curr_Lic_Eds_End_Limits_20261202.csv",
        &IgnoreReason::Symlink
    )));
    assert!(
        ignored
            .iter()
            .filter(|(name, _)| name.contains("latest")
                || name.contains("1399")
                || name.starts_with("curr")
                || name.ends_with(".bak"))
            .all(|(_, reason)| matches!(reason, IgnoreReason::NotAlisName(_))),
        "{ignored:?}"
    );
    assert_eq!(chosen.name.name(), newest);
    assert_eq!(chosen.size, bytes.len() as u64);
    assert_eq!(fetched.name.name(), newest);
    assert_eq!(fetched.size, bytes.len() as u64);
    assert_eq!(fetched.sha256, <[u8; 32]>::from(Sha256::digest(&bytes)));
    assert_eq!(std::fs::read(&fetched.path).unwrap(), bytes);
    assert_eq!(entries_in(dest.path()), [newest]);
}

#[tokio::test]
async fn a_listed_file_carries_the_servers_size_and_modification_time() {
    let server = SshServer::start("size-and-time-pw");
    let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
    server.put(
        "Curr_Lic_Eds_End_Limits_20261127.csv",
        b"0123456789",
        modified,
    );

    let listing = source(&server).list().await.unwrap();

    assert_eq!(listing.files.len(), 1);
    assert_eq!(listing.files[0].size, 10);
    assert_eq!(
        listing.files[0].modified,
        Timestamp::from_second(1_795_000_000).unwrap()
    );
}

#[tokio::test]
async fn an_empty_file_downloads_with_the_sha256_of_nothing() {
    let server = SshServer::start("empty-file-pw");
    server.put("Curr_Lic_Eds_End_Limits_20261127.csv", b"", an_hour_ago());
    let dest = TempDir::new().unwrap();
    let source = source(&server);

    let file = source.list().await.unwrap().files.remove(0);
    let fetched = source.download(&file, dest.path()).await.unwrap();

    assert_eq!(fetched.size, 0);
    assert_eq!(
        fetched.sha256_hex(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[tokio::test]
async fn a_wrong_pinned_fingerprint_fails_before_any_authentication() {
    let server = SshServer::start("wrong-fingerprint-pw");
    server.put("Curr_Lic_Eds_End_Limits_20261127.csv", b"x", an_hour_ago());
    let mut credentials = credentials(&server);
    credentials.fingerprints = vec![OTHER_FINGERPRINT.parse().unwrap()];
    let source = SftpSource::new(settings(&server), credentials);

    let error = source.list().await.unwrap_err();

    match &error {
        SftpError::HostKeyMismatch {
            presented,
            expected,
            ..
        } => {
            assert_eq!(presented.to_string(), server.fingerprint());
            assert_eq!(expected.len(), 1);
            assert_eq!(expected[0].to_string(), OTHER_FINGERPRINT);
        }
        other => panic!("expected a host key mismatch, got {other:?}"),
    }
    assert_eq!(error.event_kind(), "fingerprint_mismatch");
    assert!(error.is_connection_failure());
    let message = error.to_string();
    assert!(message.contains(server.fingerprint()), "{message}");
    assert!(message.contains(OTHER_FINGERPRINT), "{message}");
    // sshd logs the end of the connection; by then any authentication request would
    // have been logged too.
    assert!(
        server.wait_for_log("[preauth]"),
        "sshd logged nothing about the connection:\n{}",
        server.log()
    );
    assert!(
        server.wait_for_log("Connection closed by") || server.wait_for_log("Connection reset by"),
        "{}",
        server.log()
    );
    assert_eq!(server.auth_attempts(), Vec::<String>::new());
    assert!(
        !server.log().contains("userauth-request"),
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn a_new_host_key_is_accepted_while_the_old_one_is_still_pinned_too() {
    let server = SshServer::start("rotation-pin-pw");
    let mut credentials = credentials(&server);
    credentials.fingerprints =
        HostKeyFingerprint::parse_list(&format!("{OTHER_FINGERPRINT}, {}", server.fingerprint()))
            .unwrap();

    SftpSource::new(settings(&server), credentials)
        .connect()
        .await
        .unwrap();

    assert!(!server.auth_attempts().is_empty(), "{}", server.log());
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_appears_nowhere() {
    captured_logs();
    let server = SshServer::start("the-right-password-7c1f");
    let wrong_password = "Wr0ng-Pa55word-e5b9d2";
    let mut credentials = credentials(&server);
    credentials.password = wrong_password.into();
    let source = SftpSource::new(settings(&server), credentials.clone());

    let error = source.list().await.unwrap_err();

    assert!(
        matches!(&error, SftpError::AuthRefused { username, .. } if username == server.username()),
        "{error:?}"
    );
    assert_eq!(error.event_kind(), "auth_refused");
    let message = error.to_string();
    assert!(message.contains("refused authentication"), "{message}");
    assert!(message.contains(server.username()), "{message}");
    let source_error = SourceError::from(error);
    for shown in [
        message.clone(),
        format!("{source_error:?}"),
        source_error.to_string(),
        format!("{credentials:?}"),
        format!("{source:?}"),
        source.to_string(),
    ] {
        assert!(!shown.contains(wrong_password), "password leaked: {shown}");
    }
    assert!(server.wait_for_log("Failed password"), "{}", server.log());
    let logs = logs_text();
    // The scan covers the SSH library's own (`log` crate) records too.
    assert!(
        logs.contains("russh"),
        "russh's log records were not captured"
    );
    assert!(
        !logs.contains(wrong_password),
        "password leaked into the logs"
    );
    assert!(!logs.contains("the-right-password-7c1f"));
    let event = logs
        .lines()
        .find(|line| line.contains("auth_refused") && line.contains(&server.port().to_string()))
        .unwrap_or_else(|| panic!("no tracing event for the refusal in:\n{logs}"));
    assert!(event.contains("WARN"), "{event}");
    assert!(event.contains("host=127.0.0.1"), "{event}");
}

#[tokio::test]
async fn a_private_key_logs_in_without_a_password() {
    let server = SshServer::start("key-auth-pw");
    server.put("Curr_Lic_Eds_End_Limits_20261127.csv", b"x", an_hour_ago());
    let mut credentials = credentials(&server);
    credentials.password = "".into();
    credentials.private_key = Some(server.client_private_key().into());

    let listing = SftpSource::new(settings(&server), credentials)
        .list()
        .await
        .unwrap();

    assert_eq!(listing.files.len(), 1);
    assert!(
        server.wait_for_log("Accepted publickey"),
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn a_refused_port_fails_within_the_connect_timeout() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let settings = SftpSettings {
        connect_timeout: Duration::from_secs(2),
        ..SftpSettings::new("/")
    };
    let credentials = SftpCredentials {
        host: "127.0.0.1".into(),
        port,
        username: "nobody".into(),
        password: "unused".into(),
        private_key: None,
        fingerprints: vec![OTHER_FINGERPRINT.parse().unwrap()],
    };
    let started = Instant::now();

    let error = SftpSource::new(settings, credentials)
        .list()
        .await
        .unwrap_err();

    assert!(
        matches!(&error, SftpError::ConnectionRefused { port: p, .. } if *p == port),
        "{error:?}"
    );
    assert_eq!(error.event_kind(), "refused");
    assert!(error.to_string().contains(&format!("127.0.0.1:{port}")));
    assert!(started.elapsed() < Duration::from_secs(2) + Duration::from_secs(3));
}

#[tokio::test]
async fn a_port_that_accepts_but_never_answers_times_out_in_the_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and holds every connection, saying nothing.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let handshake_timeout = Duration::from_secs(1);
    let settings = SftpSettings {
        connect_timeout: Duration::from_secs(2),
        handshake_timeout,
        ..SftpSettings::new("/")
    };
    let credentials = SftpCredentials {
        host: "127.0.0.1".into(),
        port,
        username: "nobody".into(),
        password: "unused".into(),
        private_key: None,
        fingerprints: vec![OTHER_FINGERPRINT.parse().unwrap()],
    };
    let started = Instant::now();

    let error = SftpSource::new(settings, credentials)
        .list()
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    silent.abort();

    assert!(
        matches!(
            &error,
            SftpError::Timeout {
                phase: TimeoutPhase::Handshake,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.event_kind(), "timeout");
    assert!(error.to_string().contains("timed out"), "{error}");
    assert!(elapsed >= handshake_timeout, "{elapsed:?}");
    assert!(
        elapsed < handshake_timeout + Duration::from_secs(3),
        "{elapsed:?}"
    );
}

/// What the proxy does once `limit` bytes have come back from the server.
#[derive(Clone, Copy)]
enum Cut {
    /// Closes both connections.
    Close,
    /// Keeps both open but forwards nothing more (a stalled server or network).
    Stall,
}

/// Forwards connections to `target`, cutting each after `limit` bytes have come back
/// from the server.
async fn cutting_proxy(target: u16, limit: usize, cut: Cut) -> (u16, tokio::task::JoinHandle<()>) {
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
                if let Cut::Stall = cut {
                    // Hold everything open until the test ends.
                    let _held = (server_read, client_write);
                    std::future::pending::<()>().await;
                }
                upstream.abort();
                // Dropping both halves closes both connections.
            });
        }
    });
    (port, task)
}

#[tokio::test]
async fn a_transfer_cut_part_way_fails_and_leaves_nothing_behind() {
    let server = SshServer::start("cut-transfer-pw");
    let name = "Curr_Lic_Eds_End_Limits_20261127.csv";
    let bytes: Vec<u8> = (0..4_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
    server.put(name, &bytes, an_hour_ago());
    // Enough for the handshake, login and listing; far less than the file.
    let (proxy_port, proxy) = cutting_proxy(server.port(), 1_000_000, Cut::Close).await;
    let mut credentials = credentials(&server);
    credentials.port = proxy_port;
    let settings = SftpSettings {
        inactivity_timeout: Duration::from_secs(5),
        ..settings(&server)
    };
    let source = SftpSource::new(settings, credentials);
    let dest = TempDir::new().unwrap();
    let file = source.list().await.unwrap().files.remove(0);
    let started = Instant::now();

    let error = source.download(&file, dest.path()).await.unwrap_err();
    proxy.abort();

    assert!(
        matches!(
            &error,
            SftpError::TransferFailed { received, .. } if *received < bytes.len() as u64
        ),
        "{error:?}"
    );
    assert_eq!(error.event_kind(), "transfer_error");
    assert!(!error.is_connection_failure());
    assert!(started.elapsed() < Duration::from_secs(5 + 3));
    assert_eq!(entries_in(dest.path()), Vec::<String>::new());
}

#[tokio::test]
async fn a_file_larger_than_the_maximum_is_not_downloaded() {
    let server = SshServer::start("too-large-pw");
    server.put(
        "Curr_Lic_Eds_End_Limits_20261127.csv",
        &[b'x'; 2000],
        an_hour_ago(),
    );
    let source = SftpSource::new(
        SftpSettings {
            max_file_size: 1000,
            ..settings(&server)
        },
        credentials(&server),
    );
    let dest = TempDir::new().unwrap();
    let file = source.list().await.unwrap().files.remove(0);

    let error = source.download(&file, dest.path()).await.unwrap_err();

    assert!(
        matches!(
            error,
            SftpError::TooLarge {
                size: 2000,
                max: 1000,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(entries_in(dest.path()), Vec::<String>::new());
}

#[tokio::test]
async fn a_file_that_grew_after_listing_is_refused_and_nothing_is_kept() {
    let server = SshServer::start("grew-pw");
    let name = "Curr_Lic_Eds_End_Limits_20261127.csv";
    let path = server.put(name, b"first part", an_hour_ago());
    let source = source(&server);
    let dest = TempDir::new().unwrap();
    let file = source.list().await.unwrap().files.remove(0);
    std::fs::File::options()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b", second part")
        .unwrap();

    let error = source.download(&file, dest.path()).await.unwrap_err();

    assert!(
        matches!(
            error,
            SftpError::SizeMismatch {
                listed: 10,
                received: 11,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("still being written"));
    assert_eq!(entries_in(dest.path()), Vec::<String>::new());
}

#[tokio::test]
async fn a_missing_folder_is_a_listing_error_naming_it() {
    let server = SshServer::start("missing-folder-pw");
    let folder = format!("{}/nope", server.remote_folder());
    let source = SftpSource::new(
        SftpSettings {
            folder: folder.clone(),
            ..settings(&server)
        },
        credentials(&server),
    );

    let error = source.list().await.unwrap_err();

    assert!(
        matches!(error, SftpError::ListingFailed { .. }),
        "{error:?}"
    );
    assert_eq!(error.event_kind(), "listing_error");
    assert!(error.to_string().contains(&folder), "{error}");
}

#[tokio::test]
async fn a_transfer_that_stalls_times_out_and_leaves_nothing_behind() {
    let server = SshServer::start("stalled-transfer-pw");
    let name = "Curr_Lic_Eds_End_Limits_20261127.csv";
    let bytes: Vec<u8> = (0..4_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
    server.put(name, &bytes, an_hour_ago());
    let (proxy_port, proxy) = cutting_proxy(server.port(), 1_000_000, Cut::Stall).await;
    let mut credentials = credentials(&server);
    credentials.port = proxy_port;
    let inactivity_timeout = Duration::from_secs(2);
    let settings = SftpSettings {
        inactivity_timeout,
        ..settings(&server)
    };
    let source = SftpSource::new(settings, credentials);
    let dest = TempDir::new().unwrap();
    let file = source.list().await.unwrap().files.remove(0);
    let started = Instant::now();

    let error = source.download(&file, dest.path()).await.unwrap_err();
    let elapsed = started.elapsed();
    proxy.abort();

    assert!(
        matches!(
            &error,
            SftpError::Timeout {
                phase: TimeoutPhase::Inactivity,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.event_kind(), "timeout");
    assert!(elapsed >= inactivity_timeout, "{elapsed:?}");
    assert!(
        elapsed < inactivity_timeout + Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert_eq!(entries_in(dest.path()), Vec::<String>::new());
}
