//! Authentication, roles and TLS against the real server (design §4.1), with keys and
//! certificates generated here: which tokens are refused, which role may call which
//! RPC, "run by" from the token only, and what TLS and mTLS let through.

mod common;
mod support;

use std::path::PathBuf;
use std::time::Duration;

use alis_import::api::proto::cert_import_service_client::CertImportServiceClient;
use alis_import::api::proto::{self, Weekday};
use alis_import::config::ServiceConfig;
use alis_import::sample::SampleSpec;
use alis_import::startup::Application;
use common::app::{AppOptions, TestApp, spawn_app_with};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use support::Backend;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Request, Status};

const ISSUER: &str = "https://erp.example.org";
const AUDIENCE: &str = "alis-import";

/// An ES256 key pair on disk: the service reads the public half.
struct Keys {
    _dir: tempfile::TempDir,
    public_pem_path: PathBuf,
    private_pem: String,
}

fn es256_keys() -> Keys {
    let dir = support::temp_dir();
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key pair");
    let public_pem_path = dir.path().join("jwt-public.pem");
    std::fs::write(&public_pem_path, pair.public_key_pem()).expect("write public key");
    Keys {
        _dir: dir,
        public_pem_path,
        private_pem: pair.serialize_pem(),
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn token(keys: &Keys, claims: serde_json::Value) -> String {
    let key = EncodingKey::from_ec_pem(keys.private_pem.as_bytes()).expect("encoding key");
    jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key).expect("sign token")
}

fn claims(subject: &str, roles: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "sub": subject, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "iat": now(),
        "roles": roles,
    })
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

async fn app_with_auth(keys: &Keys) -> TestApp {
    let flags = vec![
        "--auth-public-key-file".into(),
        keys.public_pem_path.display().to_string(),
        "--auth-issuer".into(),
        ISSUER.into(),
        "--auth-audience".into(),
        AUDIENCE.into(),
        "--auth-leeway".into(),
        "5s".into(),
    ];
    spawn_app_with(
        Backend::Sqlite,
        AppOptions {
            flags,
            ..AppOptions::default()
        },
    )
    .await
}

fn schedule_request() -> proto::ScheduleTaskRequest {
    proto::ScheduleTaskRequest {
        task_id: 0,
        description: "Weekly ALiS import".into(),
        active: true,
        start_date: "2026-11-30".into(),
        start_time: "06:00".into(),
        weekdays: vec![Weekday::Monday as i32],
        time_zone: String::new(),
    }
}

#[tokio::test]
async fn missing_expired_foreign_or_forged_tokens_are_unauthenticated() {
    let keys = es256_keys();
    let other_keys = es256_keys();
    let app = app_with_auth(&keys).await;
    let mut client = app.client.clone();

    let missing = client
        .list_tasks(proto::ListTasksRequest::default())
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);

    let mut expired = claims("ann", &["viewer"]);
    expired["exp"] = serde_json::json!(now() - 3600);
    let mut wrong_issuer = claims("ann", &["viewer"]);
    wrong_issuer["iss"] = serde_json::json!("https://evil.example.org");
    let mut wrong_audience = claims("ann", &["viewer"]);
    wrong_audience["aud"] = serde_json::json!("another-service");
    let mut no_subject = claims("ann", &["viewer"]);
    no_subject.as_object_mut().expect("object").remove("sub");
    let cases = [
        ("expired", token(&keys, expired)),
        ("wrong issuer", token(&keys, wrong_issuer)),
        ("wrong audience", token(&keys, wrong_audience)),
        ("no subject", token(&keys, no_subject)),
        (
            "wrong signature",
            token(&other_keys, claims("ann", &["viewer"])),
        ),
        ("not a JWT", "not.a.jwt".to_owned()),
    ];
    for (case, bad) in cases {
        let status = client
            .list_tasks(with_token(proto::ListTasksRequest::default(), &bad))
            .await
            .expect_err(case);
        assert_eq!(status.code(), Code::Unauthenticated, "{case}");
        assert!(
            !status.message().contains("Invalid"),
            "{case}: no internal detail: {}",
            status.message()
        );
    }

    let good = token(&keys, claims("ann", &["viewer"]));
    client
        .list_tasks(with_token(proto::ListTasksRequest::default(), &good))
        .await
        .expect("valid token");
}

fn ok_unit<T>(result: Result<T, Status>) -> Result<(), Status> {
    result.map(|_| ())
}

/// Whether a status means the caller was let in (the call may still fail for other
/// reasons, e.g. a task that does not exist).
fn admitted(result: &Result<(), Status>) -> bool {
    match result {
        Ok(()) => true,
        Err(status) => !matches!(
            status.code(),
            Code::PermissionDenied | Code::Unauthenticated
        ),
    }
}

async fn call_each_rpc(
    client: &mut CertImportServiceClient<Channel>,
    token: &str,
) -> Vec<(&'static str, bool)> {
    vec![
        (
            "ScheduleTask",
            admitted(&ok_unit(
                client
                    .schedule_task(with_token(schedule_request(), token))
                    .await,
            )),
        ),
        (
            "GetTask",
            admitted(&ok_unit(
                client
                    .get_task(with_token(proto::GetTaskRequest { task_id: 999 }, token))
                    .await,
            )),
        ),
        (
            "DeleteTask",
            admitted(&ok_unit(
                client
                    .delete_task(with_token(proto::DeleteTaskRequest { task_id: 999 }, token))
                    .await,
            )),
        ),
        (
            "ListTasks",
            admitted(&ok_unit(
                client
                    .list_tasks(with_token(proto::ListTasksRequest::default(), token))
                    .await,
            )),
        ),
        (
            "RunNow",
            admitted(&ok_unit(
                client
                    .run_now(with_token(
                        proto::RunNowRequest {
                            task_id: 999,
                            ..Default::default()
                        },
                        token,
                    ))
                    .await,
            )),
        ),
        (
            "GetRun",
            admitted(&ok_unit(
                client
                    .get_run(with_token(proto::GetRunRequest { run_id: 999 }, token))
                    .await,
            )),
        ),
        (
            "WatchRun",
            admitted(&ok_unit(
                client
                    .watch_run(with_token(proto::WatchRunRequest { run_id: 999 }, token))
                    .await,
            )),
        ),
        (
            "GetReport",
            admitted(&ok_unit(
                client
                    .get_report(with_token(proto::GetReportRequest { run_id: 999 }, token))
                    .await,
            )),
        ),
        (
            "DownloadReport",
            admitted(&ok_unit(
                client
                    .download_report(with_token(
                        proto::DownloadReportRequest { run_id: 999 },
                        token,
                    ))
                    .await,
            )),
        ),
        (
            "GetRunLog",
            admitted(&ok_unit(
                client
                    .get_run_log(with_token(proto::GetRunLogRequest { run_id: 999 }, token))
                    .await,
            )),
        ),
        (
            "AcquireCertLock",
            admitted(&ok_unit(
                client
                    .acquire_cert_lock(with_token(
                        proto::AcquireCertLockRequest {
                            holder: "edit service".into(),
                            ttl: None,
                        },
                        token,
                    ))
                    .await,
            )),
        ),
        (
            "ReleaseCertLock",
            admitted(&ok_unit(
                client
                    .release_cert_lock(with_token(
                        proto::ReleaseCertLockRequest {
                            lease_id: "0123456789abcdef0123456789abcdef".into(),
                        },
                        token,
                    ))
                    .await,
            )),
        ),
    ]
}

#[tokio::test]
async fn each_role_may_call_exactly_its_rpcs() {
    let keys = es256_keys();
    let app = app_with_auth(&keys).await;
    let mut client = app.client.clone();
    let viewer_rpcs = [
        "GetTask",
        "ListTasks",
        "GetRun",
        "WatchRun",
        "GetReport",
        "DownloadReport",
        "GetRunLog",
    ];
    let operator_rpcs = ["ScheduleTask", "DeleteTask", "RunNow"];
    for (roles, allowed) in [
        (vec!["viewer"], viewer_rpcs.to_vec()),
        (
            vec!["operator"],
            [viewer_rpcs.as_slice(), operator_rpcs.as_slice()].concat(),
        ),
        (
            vec!["cert-editor"],
            vec!["AcquireCertLock", "ReleaseCertLock"],
        ),
        (vec![], vec![]),
        (vec!["admin", "root"], vec![]),
    ] {
        let token = token(&keys, claims("someone", &roles));
        for (rpc, admitted) in call_each_rpc(&mut client, &token).await {
            assert_eq!(
                admitted,
                allowed.contains(&rpc),
                "roles {roles:?} calling {rpc}"
            );
        }
    }
}

#[tokio::test]
async fn run_by_is_the_tokens_subject_whatever_the_request_says() {
    let keys = es256_keys();
    let app = app_with_auth(&keys).await;
    app.seed_sample(&SampleSpec {
        statewide_educators: 200,
        employees: 20,
        ..SampleSpec::default()
    })
    .await;
    let mut client = app.client.clone();
    let alice = token(&keys, claims("alice@district.example", &["operator"]));
    let task = client
        .schedule_task(with_token(schedule_request(), &alice))
        .await
        .expect("schedule")
        .into_inner()
        .task
        .expect("task");
    assert_eq!(task.saved_by, "alice@district.example");

    let bob = token(&keys, claims("bob@district.example", &["operator"]));
    let mut request = with_token(
        proto::RunNowRequest {
            task_id: task.id,
            dry_run: true,
            ..Default::default()
        },
        &bob,
    );
    // A caller naming someone else in metadata changes nothing.
    request.metadata_mut().insert(
        "x-run-by",
        "alice@district.example".parse().expect("header"),
    );
    request
        .metadata_mut()
        .insert("run-by", "alice@district.example".parse().expect("header"));
    let run = client
        .run_now(request)
        .await
        .expect("run now")
        .into_inner()
        .run
        .expect("run");
    assert_eq!(run.run_by, "bob@district.example");
    let stored = app
        .store
        .get_run(run.id)
        .await
        .expect("get run")
        .expect("run");
    assert_eq!(stored.run_by, "bob@district.example");
}

#[tokio::test]
async fn roles_can_come_from_a_nested_claim_and_aliases() {
    let keys = es256_keys();
    let flags = vec![
        "--auth-public-key-file".into(),
        keys.public_pem_path.display().to_string(),
        "--auth-roles-claim".into(),
        "realm_access.roles".into(),
        "--auth-role-aliases".into(),
        "hr-staff=viewer,it-ops=operator".into(),
    ];
    let app = spawn_app_with(
        Backend::Sqlite,
        AppOptions {
            flags,
            ..AppOptions::default()
        },
    )
    .await;
    let mut client = app.client.clone();
    let mut nested = serde_json::json!({"sub": "hr1", "exp": now() + 600, "realm_access": {"roles": ["hr-staff"]}});
    let hr = token(&keys, nested.clone());
    client
        .list_tasks(with_token(proto::ListTasksRequest::default(), &hr))
        .await
        .expect("hr-staff is a viewer");
    let refused = client
        .schedule_task(with_token(schedule_request(), &hr))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    nested["realm_access"]["roles"] = serde_json::json!(["it-ops"]);
    let ops = token(&keys, nested);
    client
        .schedule_task(with_token(schedule_request(), &ops))
        .await
        .expect("it-ops is an operator");
}

#[tokio::test]
async fn health_and_reflection_need_no_token() {
    let keys = es256_keys();
    let app = app_with_auth(&keys).await;
    let channel = Channel::from_shared(format!("http://{}", app.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check without a token");
    assert_eq!(
        reply.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn without_authentication_only_loopback_is_accepted() {
    let (url, _guard) = Backend::Sqlite.fresh_database_url().await;
    let dir = support::temp_dir();
    let config = ServiceConfig::parse_from([
        "alis-import",
        "--listen",
        "0.0.0.0:0",
        "--database-url",
        &url,
        "--demo-data",
        "false",
        "--inbox-dir",
        &dir.path().display().to_string(),
    ])
    .expect("config");
    let error = Application::build(&config)
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        error.contains("refusing to listen on 0.0.0.0:0 without authentication"),
        "{error}"
    );
}

#[tokio::test]
async fn hs256_needs_an_explicit_opt_in() {
    let dir = support::temp_dir();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef").expect("write secret");
    let (url, _guard) = Backend::Sqlite.fresh_database_url().await;
    let base = [
        "alis-import",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &url,
        "--demo-data",
        "false",
    ];
    let secret_flag = ["--auth-hs256-secret-file", secret.to_str().expect("utf-8")];
    let config = ServiceConfig::parse_from(base.iter().chain(secret_flag.iter())).expect("config");
    let error = format!(
        "{:#}",
        Application::build(&config).await.expect_err("needs opt-in")
    );
    assert!(error.contains("--auth-allow-hs256"), "{error}");
    let opted = ServiceConfig::parse_from(
        base.iter()
            .chain(secret_flag.iter())
            .chain(["--auth-allow-hs256"].iter()),
    )
    .expect("config");
    Application::build(&opted)
        .await
        .expect("HS256 with the opt-in");
}

/// A CA, a server certificate for 127.0.0.1, and a client certificate, on disk.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = support::temp_dir();
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alis-import test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
        let write = |name: &str, text: String| {
            std::fs::write(dir.path().join(name), text).expect("write pem")
        };
        write("ca.pem", ca.as_ref().pem());
        for (name, sans) in [
            (
                "server",
                vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            ),
            ("client", vec!["client".to_owned()]),
        ] {
            let key = rcgen::KeyPair::generate().expect("key");
            let params = rcgen::CertificateParams::new(sans).expect("params");
            let cert = params.signed_by(&key, &ca).expect("sign");
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).expect("read pem")
    }
}

async fn tls_app(pki: &Pki, client_ca: bool) -> TestApp {
    let mut flags = vec![
        "--tls-cert-file".into(),
        pki.path("server.pem"),
        "--tls-key-file".into(),
        pki.path("server.key"),
    ];
    if client_ca {
        flags.extend(["--tls-client-ca-file".into(), pki.path("ca.pem")]);
    }
    spawn_app_with(
        Backend::Sqlite,
        AppOptions {
            flags,
            ..AppOptions::default()
        },
    )
    .await
}

async fn tls_client(
    addr: std::net::SocketAddr,
    pki: &Pki,
    with_cert: bool,
) -> Result<CertImportServiceClient<Channel>, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pki.read("ca.pem")))
        .domain_name("localhost");
    if with_cert {
        tls = tls.identity(Identity::from_pem(
            pki.read("client.pem"),
            pki.read("client.key"),
        ));
    }
    let channel = Channel::from_shared(format!("https://{addr}"))
        .expect("uri")
        .tls_config(tls)
        .expect("tls config")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(CertImportServiceClient::new(channel))
}

#[tokio::test]
async fn tls_refuses_plaintext_and_serves_tls_clients() {
    let pki = Pki::new();
    let app = tls_app(&pki, false).await;
    let plain = Channel::from_shared(format!("http://{}", app.addr))
        .expect("uri")
        .connect()
        .await;
    let refused = match plain {
        Err(_) => true,
        Ok(channel) => CertImportServiceClient::new(channel)
            .list_tasks(proto::ListTasksRequest::default())
            .await
            .is_err(),
    };
    assert!(refused, "a plaintext client is refused");
    let mut client = tls_client(app.addr, &pki, false)
        .await
        .expect("TLS client connects");
    client
        .list_tasks(proto::ListTasksRequest::default())
        .await
        .expect("served over TLS");
}

#[tokio::test]
async fn mtls_refuses_clients_without_a_certificate() {
    let pki = Pki::new();
    let app = tls_app(&pki, true).await;
    let without = match tls_client(app.addr, &pki, false).await {
        Err(_) => true,
        Ok(mut client) => client
            .list_tasks(proto::ListTasksRequest::default())
            .await
            .is_err(),
    };
    assert!(without, "a client without a certificate is refused");
    let mut client = tls_client(app.addr, &pki, true)
        .await
        .expect("client with a certificate connects");
    client
        .list_tasks(proto::ListTasksRequest::default())
        .await
        .expect("served over mTLS");
}

// The CLI runs as a blocking child process: the server needs threads of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_client_speaks_tls_and_sends_its_token() {
    let pki = Pki::new();
    let keys = es256_keys();
    let mut flags = vec![
        "--tls-cert-file".into(),
        pki.path("server.pem"),
        "--tls-key-file".into(),
        pki.path("server.key"),
    ];
    flags.extend([
        "--auth-public-key-file".into(),
        keys.public_pem_path.display().to_string(),
    ]);
    let app = spawn_app_with(
        Backend::Sqlite,
        AppOptions {
            flags,
            ..AppOptions::default()
        },
    )
    .await;
    let token_file = pki.dir.path().join("token");
    std::fs::write(
        &token_file,
        token(
            &keys,
            serde_json::json!({"sub": "cli", "exp": now() + 600, "roles": ["operator"]}),
        ),
    )
    .expect("token");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "tasks",
            "schedule",
            "--server",
            &format!("https://localhost:{}", app.addr.port()),
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        args.extend(["--ca".into(), pki.path("ca.pem")]);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args.extend(
            [
                "--description",
                "From the CLI",
                "--start-date",
                "2026-12-01",
                "--time",
                "06:00",
                "--weekday",
                "MON",
            ]
            .map(str::to_owned),
        );
        std::process::Command::new(env!("CARGO_BIN_EXE_alis-import"))
            .args(&args)
            .output()
            .expect("run cli")
    };
    let without = run(&[]);
    assert!(!without.status.success());
    assert!(
        String::from_utf8_lossy(&without.stderr).contains("Unauthenticated"),
        "{}",
        String::from_utf8_lossy(&without.stderr)
    );
    let with = run(&["--token-file", token_file.to_str().expect("utf-8")]);
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert!(String::from_utf8_lossy(&with.stdout).contains("\"saved_by\": \"cli\""));
}
