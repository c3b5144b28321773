//! OpenTelemetry export (design §8), end to end: the real binary as a child process
//! (the tracer and meter providers are process-wide, so one process per test) with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an OTLP/gRPC receiver in this process,
//! called through its gRPC API with a W3C `traceparent`.
//!
//! What reaches the receiver: a server span per RPC, child of the caller's span; the
//! `run` span under RunNow's, with its phases; the metrics; and none of the secrets the
//! service handled (the SFTP password from Vault, the Vault token, the caller's bearer
//! token). And a collector that goes away or stops answering slows no request.

mod support;

#[path = "support/openbao.rs"]
mod openbao;
#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;
#[path = "support/sshd.rs"]
mod sshd;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use alis_import::api::proto::cert_import_service_client::CertImportServiceClient;
use alis_import::api::proto::{self, Weekday};
use alis_import::sample::{self, SampleSpec};
use alis_import::store::Store;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use tonic::transport::Channel;
use tonic::{Code, Request};

use openbao::OpenBao;
use otlp_receiver::{
    OtlpReceiver, Received, bool_attribute, contains, int_attribute, string_attribute,
};
use sshd::SshServer;
use support::served::Served;

const SERVICE: &str = "alis.certimport.v1.CertImportService";
const ISSUER: &str = "https://erp.example.org";
const AUDIENCE: &str = "alis-import";
const SECRET_PATH: &str = "alis-import/sftp";

/// Settings that make the child export promptly (the SDK reads them itself).
fn prompt_export_env(receiver: &OtlpReceiver) -> Vec<(String, String)> {
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "500".into()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000".into()),
        ("ALIS_OTEL_SHUTDOWN_TIMEOUT", "3s".into()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=test".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A W3C trace context of a caller: `(trace id, span id, traceparent)`.
fn caller_context() -> (Vec<u8>, Vec<u8>, String) {
    let trace_id: [u8; 16] = fastrand::u128(1..).to_be_bytes();
    let span_id: [u8; 8] = fastrand::u64(1..).to_be_bytes();
    let traceparent = format!("00-{}-{}-01", hex::encode(trace_id), hex::encode(span_id));
    (trace_id.to_vec(), span_id.to_vec(), traceparent)
}

fn request<T>(message: T, bearer: Option<&str>, traceparent: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = bearer {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
    }
    if let Some(traceparent) = traceparent {
        request
            .metadata_mut()
            .insert("traceparent", traceparent.parse().expect("header"));
    }
    request
}

/// An ES256 key pair: the service reads the public half from a file.
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

fn bearer_token(keys: &Keys, subject: &str, roles: &[&str]) -> String {
    let now = jiff::Timestamp::now().as_second();
    let claims = serde_json::json!({
        "sub": subject, "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "iat": now,
        "roles": roles,
    });
    let key = EncodingKey::from_ec_pem(keys.private_pem.as_bytes()).expect("encoding key");
    jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key).expect("sign token")
}

async fn client(served: &Served) -> CertImportServiceClient<Channel> {
    CertImportServiceClient::connect(served.url())
        .await
        .expect("connect to the service")
}

/// Follows run `run_id` with WatchRun (a server stream) until it ends.
async fn watch_to_end(
    client: &mut CertImportServiceClient<Channel>,
    bearer: &str,
    traceparent: &str,
    run_id: i64,
) -> proto::Run {
    let mut stream = client
        .watch_run(request(
            proto::WatchRunRequest { run_id },
            Some(bearer),
            Some(traceparent),
        ))
        .await
        .expect("watch run")
        .into_inner();
    let mut last = None;
    while let Some(message) = tokio::time::timeout(Duration::from_secs(120), stream.message())
        .await
        .expect("the run ends within two minutes")
        .expect("watch run stream")
    {
        last = message.run;
    }
    last.expect("at least one message")
}

fn lease_request() -> proto::AcquireCertLockRequest {
    proto::AcquireCertLockRequest {
        holder: "erp-certification-editor".into(),
        ttl: Some(prost_types::Duration {
            seconds: 30,
            nanos: 0,
        }),
    }
}

/// Polls GetRun until run `run_id` is in `phase`.
async fn wait_for_phase(
    client: &mut CertImportServiceClient<Channel>,
    bearer: &str,
    run_id: i64,
    phase: proto::RunPhase,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = client
            .get_run(request(proto::GetRunRequest { run_id }, Some(bearer), None))
            .await
            .expect("get run")
            .into_inner()
            .run
            .expect("run");
        if run.phase == phase as i32 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "run {run_id} did not reach {phase:?}: {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The spans of one trace, by span id.
struct Trace<'a> {
    by_id: HashMap<&'a [u8], &'a Span>,
}

impl<'a> Trace<'a> {
    fn of(received: &'a Received, trace_id: &[u8]) -> Self {
        Self {
            by_id: received
                .spans()
                .into_iter()
                .filter(|s| s.trace_id == trace_id)
                .map(|s| (s.span_id.as_slice(), s))
                .collect(),
        }
    }

    /// The one span named `name`.
    #[track_caller]
    fn named(&self, name: &str) -> &'a Span {
        let found: Vec<&&Span> = self.by_id.values().filter(|s| s.name == name).collect();
        assert_eq!(
            found.len(),
            1,
            "one span {name:?} in the trace; spans: {:?}",
            self.by_id.values().map(|s| &s.name).collect::<Vec<_>>()
        );
        found[0]
    }

    /// Whether `span` is `ancestor` or below it.
    fn is_under(&self, span: &Span, ancestor: &Span) -> bool {
        let mut current = Some(span);
        while let Some(s) = current {
            if s.span_id == ancestor.span_id {
                return true;
            }
            current = self.by_id.get(s.parent_span_id.as_slice()).copied();
        }
        false
    }
}

/// Asserts the RPC server span of `method` answered `code`, in the caller's trace as
/// a child of the caller's span, with the semantic-convention attributes.
#[track_caller]
fn assert_rpc_span<'a>(
    received: &'a Received,
    method: &str,
    caller: &(Vec<u8>, Vec<u8>, String),
    server_port: u16,
    code: Code,
) -> &'a Span {
    let trace = Trace::of(received, &caller.0);
    let span = trace.named(&format!("{SERVICE}/{method}"));
    assert_eq!(
        span.kind,
        SpanKind::Server as i32,
        "{method}: a server span"
    );
    assert_eq!(
        span.parent_span_id, caller.1,
        "{method}: the caller's span is its parent"
    );
    let attributes = &span.attributes;
    assert_eq!(string_attribute(attributes, "rpc.system"), Some("grpc"));
    assert_eq!(string_attribute(attributes, "rpc.service"), Some(SERVICE));
    assert_eq!(string_attribute(attributes, "rpc.method"), Some(method));
    assert_eq!(
        int_attribute(attributes, "rpc.grpc.status_code"),
        Some(code as i64),
        "{method}: status code"
    );
    assert_eq!(
        string_attribute(attributes, "server.address"),
        Some("127.0.0.1")
    );
    assert_eq!(
        int_attribute(attributes, "server.port"),
        Some(i64::from(server_port))
    );
    assert_eq!(
        string_attribute(attributes, "network.peer.address"),
        Some("127.0.0.1")
    );
    assert!(int_attribute(attributes, "network.peer.port").is_some_and(|p| p > 0));
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    span
}

/// An sshd, an OpenBao holding its credentials, token keys, a database with a sample
/// district and the sample file on the SFTP server: the service's surroundings.
struct World {
    sshd: SshServer,
    bao: OpenBao,
    keys: Keys,
    vault_token: String,
    password: String,
    spec: SampleSpec,
    dir: tempfile::TempDir,
    database_url: String,
}

impl World {
    async fn new() -> Self {
        let password = format!("Sftp{:016x}Pw", fastrand::u64(..));
        let sshd = SshServer::start(&password);
        let bao = OpenBao::start();
        bao.read_policy("alis-reader", SECRET_PATH);
        let vault_token = bao.create_token(&["alis-reader"], "1h", true);
        let port = sshd.port().to_string();
        bao.put_secret(
            SECRET_PATH,
            &[
                ("hostname", sshd.host()),
                ("port", &port),
                ("username", sshd.username()),
                ("password", &password),
                ("fingerprint", sshd.fingerprint()),
            ],
        );
        let spec = SampleSpec {
            statewide_educators: 300,
            employees: 40,
            ..SampleSpec::default()
        };
        let mut file = Vec::new();
        sample::write_statewide_file(&spec, &mut file).expect("the sample file");
        sshd.put(
            &sample::file_name(&spec),
            &file,
            SystemTime::now() - Duration::from_secs(3600),
        );

        let dir = support::temp_dir();
        let database_url = support::sqlite_url(dir.path());
        let store = Store::connect(&database_url).await.expect("database");
        store.migrate(true).await.expect("migrate");
        store
            .insert_district(&sample::district(&spec))
            .await
            .expect("insert the district");
        store.close().await;
        Self {
            sshd,
            bao,
            keys: es256_keys(),
            vault_token,
            password,
            spec,
            dir,
            database_url,
        }
    }

    /// `serve` with token authentication and SFTP + Vault, on the seeded database.
    fn serve_args(&self) -> Vec<String> {
        let token_file = self.dir.path().join("vault-token");
        std::fs::write(&token_file, &self.vault_token).expect("write the Vault token file");
        let dir = |name: &str| {
            let path = self.dir.path().join(name);
            std::fs::create_dir_all(&path).expect("create a folder");
            path.display().to_string()
        };
        [
            "serve",
            "--database-url",
            &self.database_url,
            "--demo-data",
            "false",
            "--inbox-dir",
            &dir("inbox"),
            "--work-dir",
            &dir("work"),
            "--scheduler-interval",
            "1h",
            "--auth-public-key-file",
            &self.keys.public_pem_path.display().to_string(),
            "--auth-issuer",
            ISSUER,
            "--auth-audience",
            AUDIENCE,
            "--source",
            "sftp",
            "--vault-addr",
            &self.bao.address(),
            "--vault-token-file",
            &token_file.display().to_string(),
            "--vault-sftp-path",
            SECRET_PATH,
            "--sftp-folder",
            &self.sshd.remote_folder(),
        ]
        .into_iter()
        .map(str::to_owned)
        .collect()
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_and_run_spans_and_metrics_reach_the_collector_and_no_secret_does() {
    let receiver = OtlpReceiver::start().await;
    let world = World::new().await;
    let mut env = prompt_export_env(&receiver);
    // More spans and events than in production: more places a secret could slip into.
    env.push(("RUST_LOG".into(), "debug".into()));
    let mut served = Served::start_with("telemetry-otlp", &world.serve_args(), &env);
    let port = served
        .addr()
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    let bearer = bearer_token(&world.keys, "otel-tester", &["operator", "cert-editor"]);
    let mut client = client(&served).await;

    let list_caller = caller_context();
    client
        .list_tasks(request(
            proto::ListTasksRequest::default(),
            Some(&bearer),
            Some(&list_caller.2),
        ))
        .await
        .expect("list tasks");
    let schedule_caller = caller_context();
    let task = client
        .schedule_task(request(
            schedule_request(),
            Some(&bearer),
            Some(&schedule_caller.2),
        ))
        .await
        .expect("schedule task")
        .into_inner()
        .task
        .expect("task");
    let refused_caller = caller_context();
    let refused = client
        .list_tasks(request(
            proto::ListTasksRequest::default(),
            None,
            Some(&refused_caller.2),
        ))
        .await
        .expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated);
    // An edit lease is out when the run starts: the import waits for it (lock_wait),
    // and refuses new leases meanwhile.
    let lease = client
        .acquire_cert_lock(request(lease_request(), Some(&bearer), None))
        .await
        .expect("a lease while no import runs")
        .into_inner()
        .lease
        .expect("lease");
    let run_caller = caller_context();
    let run = client
        .run_now(request(
            proto::RunNowRequest {
                task_id: task.id,
                ..Default::default()
            },
            Some(&bearer),
            Some(&run_caller.2),
        ))
        .await
        .expect("run now")
        .into_inner()
        .run
        .expect("run");
    wait_for_phase(
        &mut client,
        &bearer,
        run.id,
        proto::RunPhase::WaitingForEdits,
    )
    .await;
    // The phase is shown a moment before the lock is marked pending: a lease granted
    // in between is given back at once, and asked for again.
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused_lease_caller = loop {
        let caller = caller_context();
        match client
            .acquire_cert_lock(request(lease_request(), Some(&bearer), Some(&caller.2)))
            .await
        {
            Err(refusal) => {
                assert_eq!(refusal.code(), Code::FailedPrecondition, "{refusal:?}");
                break caller;
            }
            Ok(granted) => {
                let lease_id = granted.into_inner().lease.expect("lease").id;
                client
                    .release_cert_lock(request(
                        proto::ReleaseCertLockRequest { lease_id },
                        Some(&bearer),
                        None,
                    ))
                    .await
                    .expect("give the lease back");
                assert!(Instant::now() < deadline, "leases still granted");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    client
        .release_cert_lock(request(
            proto::ReleaseCertLockRequest { lease_id: lease.id },
            Some(&bearer),
            None,
        ))
        .await
        .expect("release the lease");
    let watch_caller = caller_context();
    let run = watch_to_end(&mut client, &bearer, &watch_caller.2, run.id).await;
    assert_eq!(
        run.status,
        proto::RunStatus::Succeeded as i32,
        "{run:?}\n{}",
        served.log()
    );

    // A run that fails: the SFTP server no longer takes the password Vault holds. Its
    // error paths (refused login, run log, connection event) handle the password too.
    world
        .sshd
        .set_password(&format!("Rotated{:016x}", fastrand::u64(..)));
    let failing_caller = caller_context();
    let failing = client
        .run_now(request(
            proto::RunNowRequest {
                task_id: task.id,
                ..Default::default()
            },
            Some(&bearer),
            Some(&failing_caller.2),
        ))
        .await
        .expect("run now")
        .into_inner()
        .run
        .expect("run");
    let failing = watch_to_end(&mut client, &bearer, &failing_caller.2, failing.id).await;
    assert_eq!(
        failing.status,
        proto::RunStatus::Failed as i32,
        "{failing:?}"
    );

    // SIGTERM: the service drains, stops its jobs, then flushes telemetry, last.
    served.stop_gracefully();
    let received = receiver.received();
    // The RPC server spans, in their callers' traces.
    assert_rpc_span(&received, "ListTasks", &list_caller, port, Code::Ok);
    assert_rpc_span(&received, "ScheduleTask", &schedule_caller, port, Code::Ok);
    assert_rpc_span(
        &received,
        "AcquireCertLock",
        &refused_lease_caller,
        port,
        Code::FailedPrecondition,
    );
    let refused_span = assert_rpc_span(
        &received,
        "ListTasks",
        &refused_caller,
        port,
        Code::Unauthenticated,
    );
    assert_eq!(
        refused_span.status.as_ref().map_or(0, |s| s.code),
        0,
        "a caller's error does not mark the server span failed"
    );
    let run_now = assert_rpc_span(&received, "RunNow", &run_caller, port, Code::Ok);

    // The run: a child of RunNow's span, with its outcome and counts.
    let trace = Trace::of(&received, &run_caller.0);
    let run_span = trace.named("run");
    assert_eq!(
        run_span.parent_span_id, run_now.span_id,
        "the run is RunNow's child"
    );
    let attributes = &run_span.attributes;
    assert_eq!(int_attribute(attributes, "run_id"), Some(run.id));
    assert_eq!(int_attribute(attributes, "task_id"), Some(task.id));
    assert_eq!(bool_attribute(attributes, "dry_run"), Some(false));
    assert_eq!(string_attribute(attributes, "status"), Some("SUCCEEDED"));
    let rows = int_attribute(attributes, "rows_parsed").expect("rows_parsed");
    assert!(rows > 0, "rows parsed: {rows}");
    let imported = int_attribute(attributes, "records_imported").expect("records_imported");
    assert!(imported > 0, "records imported: {imported}");
    assert!(int_attribute(attributes, "records_deleted").is_some());

    // Its phases, under it, with their counts.
    let fetch = trace.named("fetch");
    assert_eq!(fetch.parent_span_id, run_span.span_id);
    assert_eq!(
        string_attribute(&fetch.attributes, "file"),
        Some(sample::file_name(&world.spec).as_str())
    );
    assert_eq!(bool_attribute(&fetch.attributes, "from_cache"), Some(false));
    let parse = trace.named("parse");
    assert_eq!(int_attribute(&parse.attributes, "data_rows"), Some(rows));
    let plan = trace.named("plan");
    assert!(int_attribute(&plan.attributes, "matched").is_some_and(|m| m > 0));
    let guard = trace.named("guard");
    assert_eq!(bool_attribute(&guard.attributes, "refused"), Some(false));
    let replace = trace.named("replace");
    let written = int_attribute(&replace.attributes, "certifications").unwrap_or_default()
        + int_attribute(&replace.attributes, "endorsements").unwrap_or_default();
    assert_eq!(written, imported, "the replace wrote what the run imported");
    let lock_wait = trace.named("lock_wait");
    // The lease taken before the run (and a probe that raced the pending mark).
    assert!(int_attribute(&lock_wait.attributes, "leases_waited_for").is_some_and(|n| n >= 1));
    assert!(int_attribute(&lock_wait.attributes, "epoch").is_some_and(|e| e > 0));
    let report = trace.named("report");
    assert!(int_attribute(&report.attributes, "pdf_bytes").is_some_and(|b| b > 0));
    // The stream's span lasts to its last message, which reports the run's end: past
    // the replace.
    let watch = assert_rpc_span(&received, "WatchRun", &watch_caller, port, Code::Ok);
    assert!(watch.end_time_unix_nano > replace.end_time_unix_nano);
    for phase in [fetch, parse, plan, guard, lock_wait, replace, report] {
        assert!(
            trace.is_under(phase, run_span),
            "{} is under the run",
            phase.name
        );
        assert!(phase.start_time_unix_nano >= run_span.start_time_unix_nano);
    }

    // The resource.
    for resource in received.span_resources() {
        assert_eq!(
            string_attribute(resource, "service.name"),
            Some("alis-import")
        );
        assert_eq!(
            string_attribute(resource, "deployment.environment.name"),
            Some("test")
        );
    }

    // The metrics of design §8.
    let metrics = received.metrics_by_name();
    for name in [
        "alis_import.runs",
        "alis_import.run.duration",
        "alis_import.rows.parsed",
        "alis_import.rows.invalid",
        "alis_import.records.imported",
        "alis_import.records.deleted",
        "alis_import.lock.waits",
        "alis_import.lock.wait.duration",
        "alis_import.lease.refusals",
        "rpc.server.call.duration",
    ] {
        assert!(
            metrics.contains_key(name),
            "metric {name}; got {:?}",
            metrics.keys()
        );
    }
    let last_runs = metrics["alis_import.runs"].last().unwrap();
    let Some(Data::Sum(runs)) = &last_runs.data else {
        panic!("alis_import.runs is a sum: {last_runs:?}")
    };
    for status in ["SUCCEEDED", "FAILED"] {
        let points: Vec<_> = runs
            .data_points
            .iter()
            .filter(|p| string_attribute(&p.attributes, "status") == Some(status))
            .collect();
        assert_eq!(points.len(), 1, "{status}: {runs:?}");
        assert_eq!(
            points[0].value,
            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(1)),
            "{status}"
        );
    }

    for (name, expected) in [
        ("alis_import.lock.waits", 1),
        ("alis_import.lease.refusals", 1),
    ] {
        let last = metrics[name].last().unwrap();
        let Some(Data::Sum(sum)) = &last.data else {
            panic!("{name} is a sum: {last:?}")
        };
        let total: i64 = sum
            .data_points
            .iter()
            .map(|p| match p.value {
                Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(
                    v,
                )) => v,
                _ => 0,
            })
            .sum();
        assert_eq!(total, expected, "{name}: {sum:?}");
    }

    // The failed run's span says so, and is marked as an error.
    let failed_trace = Trace::of(&received, &failing_caller.0);
    let failed_run = failed_trace.named("run");
    assert_eq!(
        string_attribute(&failed_run.attributes, "status"),
        Some("FAILED")
    );
    assert_eq!(
        failed_run.status.as_ref().map(|s| s.code),
        Some(opentelemetry_proto::tonic::trace::v1::status::StatusCode::Error as i32)
    );

    // No secret anywhere: every attribute, event and resource of every span and
    // metric, as sent and as decoded.
    let (wire, decoded) = received.wire_and_debug();
    for (what, secret) in [
        ("the SFTP password", world.password.as_str()),
        ("the bearer token", bearer.as_str()),
        ("the Vault token", world.vault_token.as_str()),
    ] {
        assert!(!contains(&wire, secret.as_bytes()), "{what} was exported");
        assert!(!decoded.contains(secret), "{what} was exported");
    }
    // The scan does read the exported attributes: the file's name, an attribute of
    // the fetch span, is found.
    assert!(contains(&wire, sample::file_name(&world.spec).as_bytes()));
    assert!(decoded.contains(&sample::file_name(&world.spec)));
}

/// Calls ListTasks again and again for at least `at_least`, and on until `done`
/// holds (for at most `GIVE_UP` more): each must answer within `BOUND`.
///
/// The limit is a time, not a count of calls: on a fast machine a fixed count of
/// calls could end before `at_least` has passed, and on a slow one before the
/// exporter has had its turn.
async fn requests_stay_prompt(
    client: &mut CertImportServiceClient<Channel>,
    phase: &str,
    at_least: Duration,
    done: impl Fn() -> bool,
) -> usize {
    /// How long one ListTasks may take, whatever the collector does.
    const BOUND: Duration = Duration::from_millis(1000);
    /// How long after `at_least` `done` may take to hold.
    const GIVE_UP: Duration = Duration::from_secs(30);
    let started = Instant::now();
    let mut calls = 0;
    loop {
        let elapsed = started.elapsed();
        if elapsed >= at_least && done() {
            eprintln!("{phase}: {calls} requests in {elapsed:?}");
            return calls;
        }
        assert!(
            elapsed < at_least + GIVE_UP,
            "{phase}: still waiting after {elapsed:?} and {calls} requests"
        );
        let sent = Instant::now();
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            client.list_tasks(proto::ListTasksRequest::default()),
        )
        .await
        .unwrap_or_else(|_| panic!("{phase}: request {calls} hung"));
        answer.unwrap_or_else(|status| panic!("{phase}: request {calls} failed: {status}"));
        let took = sent.elapsed();
        assert!(took < BOUND, "{phase}: request {calls} took {took:?}");
        calls += 1;
        // A breath between calls, so the exporter's threads get the cores too.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_goes_away_or_hangs_slows_no_request() {
    let mut receiver = OtlpReceiver::start().await;
    let env = prompt_export_env(&receiver);
    let mut served = Served::start_with("telemetry-collector-down", &[], &env);
    let mut client = client(&served).await;
    client
        .list_tasks(proto::ListTasksRequest::default())
        .await
        .expect("list tasks");
    receiver
        .wait_for("the first spans", Duration::from_secs(30), |r| {
            !r.spans().is_empty()
        })
        .await;

    // The collector goes away: its port refuses connections. For a second, ten rounds
    // of the exporter (every 100 ms here) fail while requests go on.
    let addr = receiver.addr();
    receiver.stop().await;
    requests_stay_prompt(
        &mut client,
        "collector gone",
        Duration::from_secs(1),
        || true,
    )
    .await;

    // A collector that accepts connections and never answers: an export hangs for its
    // whole timeout (2 s here) on the exporter's own thread. Requests go on until the
    // exporter has written to it, and for longer than one export's timeout.
    let hung = tokio::net::TcpListener::bind(addr)
        .await
        .expect("rebind the collector's port");
    let bytes_sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = bytes_sent.clone();
    let held = tokio::spawn(async move {
        let mut readers = tokio::task::JoinSet::new();
        while let Ok((mut connection, _)) = hung.accept().await {
            let counter = counter.clone();
            readers.spawn(async move {
                let mut buffer = [0u8; 4096];
                while let Ok(n @ 1..) =
                    tokio::io::AsyncReadExt::read(&mut connection, &mut buffer).await
                {
                    counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                }
                // Never answers; keeps the connection open until the test ends.
                std::future::pending::<()>().await;
            });
        }
    });
    requests_stay_prompt(
        &mut client,
        "collector hung",
        Duration::from_millis(2500),
        || bytes_sent.load(std::sync::atomic::Ordering::Relaxed) > 0,
    )
    .await;

    // Shutdown gives each signal's last export its timeout (3 s here), no more.
    let started = Instant::now();
    served.stop_gracefully();
    let stopping = started.elapsed();
    assert!(
        stopping < Duration::from_secs(15),
        "shutdown took {stopping:?}"
    );
    held.abort();
}
