//! The README's "Two commands" section, run as written: its first command (the
//! embedded default, no flags) brings up a server, and its grpcurl lines and CLI lines,
//! copied out of the README with only the address changed to this test's port, answer
//! what the README says they answer.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::served::{BINARY, Outcome, Served, alis_import, eventually, grpcurl};

/// The address the README's lines use; the test substitutes its own port.
const README_ADDR: &str = "127.0.0.1:50051";
/// How the README runs the binary; the test runs the binary cargo built for it.
const CARGO_RUN: &str = "cargo run --release";

/// How long the import the README starts may take to end.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The text of the `## heading` section, up to the next `## ` heading.
fn section<'a>(readme: &'a str, heading: &str) -> &'a str {
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README has no `## {heading}` section"));
    let body = &readme[start + 1..];
    let end = body[3..].find("\n## ").map_or(body.len(), |i| i + 3);
    &body[..end]
}

/// The lines of each ```` ```sh ```` block, in order.
fn sh_blocks(text: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.push(current.take().expect("an open block")),
            (Some(block), line) if !line.trim().is_empty() => block.push(line.to_owned()),
            _ => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```sh block");
    blocks
}

/// The number in the first `(run N)` after `marker` in the prose.
fn run_number_after(text: &str, marker: &str) -> i64 {
    let from = text
        .find(marker)
        .unwrap_or_else(|| panic!("the README does not mention {marker}"));
    let rest = &text[from..];
    let at = rest
        .find("(run ")
        .unwrap_or_else(|| panic!("no `(run N)` after {marker}"));
    let digits: String = rest[at + 5..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("a run number")
}

/// A proto3-JSON int64 (grpcurl prints them as strings; zero is omitted).
fn int64(json: &Value, pointer: &str) -> i64 {
    match json.pointer(pointer) {
        None => 0,
        Some(Value::String(text)) => text.parse().expect("an int64"),
        Some(Value::Number(n)) => n.as_i64().expect("an integer"),
        Some(other) => panic!("{pointer} is not an int64: {other}"),
    }
}

/// The README's CLI line with `cargo run --release --` replaced by the built binary.
fn with_binary(line: &str) -> String {
    let args = line
        .strip_prefix(&format!("{CARGO_RUN} -- "))
        .unwrap_or_else(|| panic!("not a `{CARGO_RUN} -- …` line: {line}"));
    format!("'{BINARY}' {args}")
}

/// Checks what GetReport's JSON promises: records deleted and imported, skipped
/// employees with the reason, expired and expiring licences.
fn assert_promised_summary(outcome: &Outcome, summary: &Value) {
    assert!(
        int64(summary, "/imported/certifications") > 0
            && int64(summary, "/imported/endorsements") > 0,
        "no imported counts:\n{outcome}"
    );
    assert!(
        summary.get("deleted").is_some(),
        "no deleted counts:\n{outcome}"
    );
    let skipped = summary["skipped"].as_array();
    assert!(
        skipped.is_some_and(|s| !s.is_empty() && s.iter().all(|e| e["reasons"].is_array())),
        "no skipped employees with their reason:\n{outcome}"
    );
    for list in ["expiredCertifications", "expiringSoon"] {
        assert!(
            summary[list].as_array().is_some_and(|l| !l.is_empty()),
            "no {list}:\n{outcome}"
        );
    }
}

#[test]
fn the_readme_first_command_serves_what_its_grpcurl_and_cli_lines_show() {
    grpcurl();
    let readme = readme();
    let two_commands = section(&readme, "Two commands");
    let blocks = sh_blocks(two_commands);

    // The first command is `cargo run --release`: the crate's only binary, no flags.
    assert_eq!(
        blocks.first().map(Vec::as_slice),
        Some([CARGO_RUN.to_owned()].as_slice()),
        "the README's first command changed"
    );
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("read Cargo.toml");
    assert_eq!(
        manifest.matches("[[bin]]").count(),
        1,
        "`cargo run` must have exactly one binary to run"
    );
    assert!(manifest.contains("name = \"alis-import\""));
    assert!(
        !Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/bin")
            .exists()
    );

    let lines: Vec<&str> = blocks.iter().flatten().map(String::as_str).collect();
    let grpcurl_lines: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("grpcurl "))
        .collect();
    let cli_lines: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with(&format!("{CARGO_RUN} -- ")))
        .collect();
    let rpc_of = |line: &str| {
        line.rsplit(' ')
            .next()
            .expect("a last word")
            .rsplit('/')
            .next()
            .expect("a method")
            .to_owned()
    };
    assert_eq!(
        grpcurl_lines.iter().map(|l| rpc_of(l)).collect::<Vec<_>>(),
        ["list", "ListTasks", "RunNow", "GetReport"],
        "the README's grpcurl lines changed: {grpcurl_lines:#?}"
    );
    let readme_run = run_number_after(two_commands, "`RunNow` starts an import");

    let mut server = Served::start("readme_commands");
    let mut started_run = None;
    for line in &grpcurl_lines {
        assert_eq!(
            line.matches(README_ADDR).count(),
            1,
            "expected the address {README_ADDR} once in: {line}"
        );
        let line = line.replace(README_ADDR, &server.addr());
        match rpc_of(&line).as_str() {
            "list" => {
                let outcome = server.sh(&line);
                outcome.assert_success();
                for service in [
                    "alis.certimport.v1.CertImportService",
                    "grpc.health.v1.Health",
                ] {
                    assert!(
                        outcome.stdout.lines().any(|l| l.trim() == service),
                        "`list` lacks {service}:\n{outcome}"
                    );
                }
            }
            "ListTasks" => {
                let outcome = server.sh(&line);
                let runs = outcome.assert_success().json();
                let runs = runs["runs"].as_array().expect("runs");
                assert!(
                    runs.iter()
                        .any(|r| r["status"] == "RUN_STATUS_WAITING" && r["taskId"] == "1"),
                    "the demo task's next run is not WAITING:\n{outcome}"
                );
            }
            "RunNow" => {
                let outcome = server.sh(&line);
                let run = outcome.assert_success().json();
                let id = int64(&run, "/run/id");
                assert_eq!(
                    id, readme_run,
                    "the README says RunNow starts run {readme_run}:\n{outcome}"
                );
                started_run = Some(id);
            }
            "GetReport" => {
                let started = started_run.expect("RunNow ran before GetReport");
                assert!(
                    line.contains(&format!(r#""run_id": {started}"#)),
                    "GetReport asks for another run than RunNow started ({started}): {line}"
                );
                // "a moment later": until the run has ended, there is no report yet.
                let outcome = eventually("GetReport answers", RUN_TIMEOUT, || {
                    let outcome = server.sh(&line);
                    if outcome.status.success() {
                        Ok(outcome)
                    } else if outcome.stderr.contains("Code: NotFound") {
                        Err(outcome.to_string())
                    } else {
                        panic!("GetReport failed:\n{outcome}")
                    }
                });
                let report = outcome.json();
                assert_promised_summary(&outcome, &report["summary"]);
            }
            other => unreachable!("{other}"),
        }
    }

    // "The same with the CLI", after the grpcurl lines above.
    let (server_lines, offline_lines): (Vec<&str>, Vec<&str>) =
        cli_lines.iter().partition(|l| !l.contains(" import-file "));
    let mut cli_run = None;
    for line in &server_lines {
        let outcome = server.sh(&with_binary(line));
        outcome.assert_success();
        let words: Vec<&str> = line.split_whitespace().collect();
        match &words[4..] {
            ["run-now", "--task", "1", "--wait"] => {
                let last = outcome.stdout.lines().last().unwrap_or_default();
                let id: i64 = last
                    .strip_prefix("run ")
                    .and_then(|rest| rest.strip_suffix(" SUCCEEDED"))
                    .and_then(|id| id.parse().ok())
                    .unwrap_or_else(|| panic!("run-now --wait did not succeed:\n{outcome}"));
                cli_run = Some(id);
            }
            ["tasks", "list"] => {
                let statuses: Vec<(&str, &str)> = outcome
                    .stdout
                    .lines()
                    .skip(1)
                    .filter_map(|row| {
                        let mut columns = row.split_whitespace();
                        Some((columns.next()?, columns.next()?))
                    })
                    .collect();
                let cli_run = cli_run.expect("run-now ran before tasks list");
                for expected in [
                    ("1", "WAITING"),
                    (&*readme_run.to_string(), "SUCCEEDED"),
                    (&*cli_run.to_string(), "SUCCEEDED"),
                ] {
                    assert!(
                        statuses.contains(&expected),
                        "tasks list lacks run {} {}:\n{outcome}",
                        expected.0,
                        expected.1
                    );
                }
            }
            ["report", "get", run] => {
                let cli_run = cli_run.expect("run-now ran before report get");
                assert_eq!(
                    run.parse::<i64>().ok(),
                    Some(cli_run),
                    "the README's `report get` asks for another run than its run-now \
                     started ({cli_run})"
                );
                let document = outcome.json();
                assert!(
                    document["imported"]["certifications"]
                        .as_i64()
                        .is_some_and(|n| n > 0),
                    "no imported certifications:\n{outcome}"
                );
            }
            other => panic!("a README CLI line this test does not know: {other:?}"),
        }
    }
    assert!(cli_run.is_some(), "the README shows no `run-now` line");

    server.stop_gracefully();

    // "Without a server, `import-file` imports a file straight into the database".
    assert!(
        !offline_lines.is_empty(),
        "the README shows no import-file line"
    );
    for line in offline_lines {
        let outcome = server.sh(&with_binary(line));
        outcome.assert_success();
        assert!(
            outcome.stdout.contains("Curr_Lic_Eds_End_Limits_"),
            "import-file did not read the demo file:\n{outcome}"
        );
    }
}

#[test]
fn help_lists_every_subcommand_the_readme_and_the_cronjob_use() {
    let dir = support::temp_dir();
    let help = alis_import(dir.path(), &["--help"], &[]);
    help.assert_success();
    let listed = |outcome: &Outcome, command: &str| {
        outcome
            .stdout
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("{command} ")))
    };
    let mut expected: Vec<String> = [
        "serve",
        "migrate",
        "import-file",
        "sample",
        "run-now",
        "tasks",
        "report",
    ]
    .map(String::from)
    .to_vec();
    // The README's command table.
    let readme = readme();
    for row in section(&readme, "Command line")
        .lines()
        .filter_map(|l| l.strip_prefix("| `alis-import "))
    {
        expected.push(row.split([' ', '`']).next().expect("a command").to_owned());
    }
    for command in &expected {
        assert!(listed(&help, command), "--help lacks {command}:\n{help}");
    }
    for (command, subcommands) in [
        ("tasks", &["list", "schedule", "get", "delete"][..]),
        ("report", &["get", "log"][..]),
    ] {
        let help = alis_import(dir.path(), &[command, "--help"], &[]);
        help.assert_success();
        for subcommand in subcommands {
            assert!(
                listed(&help, subcommand),
                "{command} --help lacks {subcommand}:\n{help}"
            );
        }
    }
    let run_now = alis_import(dir.path(), &["run-now", "--help"], &[]);
    for flag in [
        "--task",
        "--wait",
        "--dry-run",
        "--force",
        "--idempotency-key",
        "--server",
    ] {
        assert!(
            run_now.assert_success().stdout.contains(flag),
            "run-now --help lacks {flag}:\n{run_now}"
        );
    }
}

#[test]
fn the_readme_parser_finds_blocks_and_run_numbers() {
    let text =
        "## A\n\n```sh\none\n\ntwo\n```\n\n`RunNow` starts x (run 12) y\n\n```sh\nthree\n```\n";
    assert_eq!(sh_blocks(text), [vec!["one", "two"], vec!["three"]]);
    assert_eq!(run_number_after(text, "`RunNow` starts"), 12);
    assert_eq!(section("# T\n\n## A\na\n## B\nb\n", "A"), "## A\na");
}
