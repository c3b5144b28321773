//! Drives the running binary with `grpcurl` through server reflection only (no proto
//! files), as an operator would: `list`, `describe`, the health check, RunNow, GetRun
//! until the run ends, GetReport with the imported counts, and an error status.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use support::served::{Served, eventually};

const SERVICE: &str = "alis.certimport.v1.CertImportService";

/// How long a demo import may take from RunNow to its end.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn method(name: &str) -> String {
    format!("{SERVICE}/{name}")
}

/// A proto3-JSON int64 (grpcurl prints them as strings; zero is omitted).
fn int64(json: &Value, pointer: &str) -> i64 {
    match json.pointer(pointer) {
        None => 0,
        Some(Value::String(text)) => text
            .parse()
            .unwrap_or_else(|e| panic!("{pointer} = {text:?} is not an int64: {e}")),
        Some(Value::Number(n)) => n.as_i64().expect("an integer"),
        Some(other) => panic!("{pointer} is not an int64: {other}"),
    }
}

/// The lines of a `grpcurl describe` that declare something (an rpc, a field, an enum
/// value) and are not preceded by a `//` comment.
fn undocumented_declarations(description: &str) -> Vec<String> {
    let lines: Vec<&str> = description.lines().map(str::trim).collect();
    let mut undocumented = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let declares = line.ends_with(';') && !line.starts_with("//") && !line.starts_with('}');
        if declares && !(i > 0 && lines[i - 1].starts_with("//")) {
            undocumented.push((*line).to_owned());
        }
    }
    undocumented
}

/// The types of this service's package named in a `describe` (fields' types).
fn package_types(description: &str) -> Vec<String> {
    description
        .split(|c: char| c.is_whitespace() || "<>,(){};".contains(c))
        .filter_map(|word| word.strip_prefix(".alis.certimport.v1."))
        .map(|name| format!("alis.certimport.v1.{name}"))
        .collect()
}

/// `(rpc name, request type, response type)` of each `rpc` line of a describe.
fn rpcs(description: &str) -> Vec<(String, String, String)> {
    description
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix("rpc "))
        .map(|rest| {
            let name = rest.split_whitespace().next().expect("an rpc name");
            let types: Vec<&str> = rest
                .split(['(', ')'])
                .skip(1)
                .step_by(2)
                .map(|t| {
                    t.trim()
                        .trim_start_matches("stream ")
                        .trim_start_matches('.')
                })
                .collect();
            assert_eq!(types.len(), 2, "cannot read the rpc line {rest:?}");
            (name.to_owned(), types[0].to_owned(), types[1].to_owned())
        })
        .collect()
}

#[test]
fn the_comment_check_flags_a_declaration_without_a_comment() {
    let description = "x.v1.M is a message:\n// M.\nmessage M {\n  // Documented.\n  int64 a = 1;\n  \
                       int64 b = 2;\n  // Documented.\n  map<string, int64> c = 3;\n}";
    assert_eq!(undocumented_declarations(description), ["int64 b = 2;"]);
}

#[test]
fn reflection_lists_the_services_and_describes_every_rpc_and_field_with_its_comment() {
    let mut server = Served::start("grpcurl_smoke-reflection");

    let list = server.grpcurl(None, &["list"]);
    list.assert_success();
    let services: BTreeSet<&str> = list.stdout.lines().map(str::trim).collect();
    for expected in [SERVICE, "grpc.health.v1.Health"] {
        assert!(
            services.contains(expected),
            "`list` lacks {expected}:\n{list}"
        );
    }

    let service = server.grpcurl(None, &["describe", SERVICE]);
    service.assert_success();
    assert!(
        service
            .stdout
            .contains(&format!("{SERVICE} is a service:\n//")),
        "the service has no comment:\n{service}"
    );
    let rpcs = rpcs(&service.stdout);
    let names: BTreeSet<&str> = rpcs.iter().map(|(name, _, _)| name.as_str()).collect();
    for expected in [
        "ScheduleTask",
        "GetTask",
        "DeleteTask",
        "ListTasks",
        "RunNow",
        "GetRun",
        "WatchRun",
        "GetReport",
        "GetRunLog",
    ] {
        assert!(names.contains(expected), "no rpc {expected}:\n{service}");
    }
    let undocumented = undocumented_declarations(&service.stdout);
    assert!(
        undocumented.is_empty(),
        "rpcs without a comment in `describe`: {undocumented:#?}"
    );

    // Every message and enum of the package the service uses, reached from the rpcs'
    // requests and responses through their fields, with its own comment and one on
    // every field and value, as grpcurl shows them.
    let mut pending: Vec<String> = rpcs
        .iter()
        .flat_map(|(_, request, response)| [request.clone(), response.clone()])
        .collect();
    let mut described = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !described.insert(name.clone()) {
            continue;
        }
        let description = server.grpcurl(None, &["describe", &name]);
        description.assert_success();
        assert!(
            description
                .stdout
                .contains(&format!("{name} is a message:\n//"))
                || description
                    .stdout
                    .contains(&format!("{name} is an enum:\n//")),
            "{name} has no comment:\n{description}"
        );
        let undocumented = undocumented_declarations(&description.stdout);
        assert!(
            undocumented.is_empty(),
            "{name}: declarations without a comment in `describe`: {undocumented:#?}\n{description}"
        );
        pending.extend(package_types(&description.stdout));
    }
    assert!(
        described.len() > 2 * names.len(),
        "only {} types reached from the rpcs: {described:#?}",
        described.len()
    );

    let run_now = server.grpcurl(None, &["describe", "alis.certimport.v1.RunNowRequest"]);
    run_now.assert_success();
    for field in [
        "int64 task_id = 1;",
        "bool dry_run",
        "bool force",
        "string idempotency_key",
    ] {
        assert!(
            run_now.stdout.contains(field),
            "RunNowRequest lacks `{field}`:\n{run_now}"
        );
    }

    server.stop_gracefully();
}

#[test]
fn grpcurl_runs_an_import_and_reads_the_imported_counts_in_its_report() {
    let mut server = Served::start("grpcurl_smoke-import");

    for service in ["", SERVICE] {
        let data = format!(r#"{{"service": "{service}"}}"#);
        let health = server.grpcurl(Some(&data), &["grpc.health.v1.Health/Check"]);
        assert_eq!(
            health.assert_success().json()["status"],
            "SERVING",
            "{health}"
        );
    }

    let started = server.grpcurl(Some(r#"{"task_id": 1}"#), &[&method("RunNow")]);
    let started = started.assert_success().json();
    assert_eq!(started["run"]["taskId"], "1", "{started}");
    let run_id = int64(&started, "/run/id");
    assert!(run_id > 0, "RunNow returned no run id: {started}");

    let get_run = format!(r#"{{"run_id": {run_id}}}"#);
    let run = eventually("the run ends", RUN_TIMEOUT, || {
        let outcome = server.grpcurl(Some(&get_run), &[&method("GetRun")]);
        outcome.assert_success();
        let run = outcome.json();
        match run["run"]["status"].as_str() {
            Some("RUN_STATUS_SUCCEEDED") => Ok(run),
            Some("RUN_STATUS_FAILED") => panic!("the demo import failed: {run}"),
            _ => Err(outcome.to_string()),
        }
    });
    assert_eq!(run["run"]["hasReport"], true, "{run}");
    assert_eq!(run["run"]["phase"], "RUN_PHASE_DONE", "{run}");

    let report = server.grpcurl(Some(&get_run), &[&method("GetReport")]);
    let report = report.assert_success().json();
    let certifications = int64(&report, "/summary/imported/certifications");
    let endorsements = int64(&report, "/summary/imported/endorsements");
    assert!(certifications > 0, "no certifications imported: {report:#}");
    assert!(endorsements > 0, "no endorsements imported: {report:#}");
    assert_eq!(
        int64(&report, "/summary/imported/total"),
        certifications + endorsements,
        "{report:#}"
    );
    assert!(
        int64(&report, "/summary/dataRows") >= certifications,
        "{report:#}"
    );
    // The same figures as the JSON document of the rules.
    let document: Value = serde_json::from_str(
        report["summaryJson"]
            .as_str()
            .expect("summaryJson is a string"),
    )
    .expect("summaryJson is JSON");
    assert_eq!(
        document["imported"]["certifications"], certifications,
        "{document:#}"
    );

    server.stop_gracefully();
}

#[test]
fn grpcurl_exits_non_zero_with_not_found_for_an_unknown_task_or_run() {
    let mut server = Served::start("grpcurl_smoke-not-found");

    for (data, rpc) in [
        (r#"{"task_id": 999}"#, "RunNow"),
        (r#"{"task_id": 999}"#, "GetTask"),
        (r#"{"run_id": 999}"#, "GetRun"),
        (r#"{"run_id": 999}"#, "GetReport"),
    ] {
        let outcome = server.grpcurl(Some(data), &[&method(rpc)]);
        outcome.assert_failure();
        assert!(
            outcome.stderr.contains("Code: NotFound"),
            "{rpc} {data}: expected NotFound:\n{outcome}"
        );
    }
    // Nothing was started by the refused RunNow: the demo task still has only its
    // waiting run.
    let list = server.grpcurl(None, &[&method("ListTasks")]);
    let runs = list.assert_success().json();
    let statuses: Vec<&str> = runs["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|run| run["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses, ["RUN_STATUS_WAITING"], "{list}");

    server.stop_gracefully();
}
