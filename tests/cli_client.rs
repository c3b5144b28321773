//! The CLI client commands (`run-now`, `tasks …`, `report …`) against the real binary
//! serving on its embedded defaults, as operators and the Kubernetes CronJob
//! (`alis-import run-now --task ID --wait`) run them: exit statuses, what they print,
//! and what they change.

mod support;

use std::path::Path;

use sqlx::Connection as _;
use support::served::{Outcome, Served, alis_import, free_local_addr};

/// `run N STATUS…` lines of a run-now: the run id and the rest of the line.
fn run_lines(outcome: &Outcome) -> Vec<(i64, String)> {
    outcome
        .stdout
        .lines()
        .filter_map(|line| {
            let (id, rest) = line.strip_prefix("run ")?.split_once(' ')?;
            Some((id.parse().ok()?, rest.to_owned()))
        })
        .collect()
}

/// `(run id, status)` of each row of `tasks list`.
fn listed_runs(outcome: &Outcome) -> Vec<(i64, String)> {
    let mut lines = outcome.stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.trim_start().starts_with("RUN"),
        "no header:\n{outcome}"
    );
    lines
        .map(|row| {
            let mut columns = row.split_whitespace();
            let id = columns.next().and_then(|id| id.parse().ok());
            let status = columns.next().map(str::to_owned);
            id.zip(status)
                .unwrap_or_else(|| panic!("unreadable row {row:?}:\n{outcome}"))
        })
        .collect()
}

/// What the import writes: every certification, endorsement and endorsement code, as
/// one string per table, read straight from the server's SQLite file.
fn erp_snapshot(database: &Path) -> Vec<String> {
    let url = format!("sqlite://{}?mode=ro", database.display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
        let mut tables = Vec::new();
        for sql in [
            "select count(*) || ':' || coalesce(group_concat(id || '/' || employee_id || '/' || \
             license_type || '/' || status || '/' || source || '/' || coalesce(import_run_id, '-'), ','), '') \
             from (select * from certifications order by id)",
            "select count(*) || ':' || coalesce(group_concat(id || '/' || certification_id || '/' || \
             code || '/' || is_primary || '/' || source || '/' || coalesce(import_run_id, '-'), ','), '') \
             from (select * from endorsements order by id)",
            "select count(*) || ':' || coalesce(group_concat(code, ','), '') \
             from (select code from endorsement_codes order by code)",
        ] {
            let table: String = sqlx::query_scalar(sql)
                .fetch_one(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{e}: {sql}"));
            tables.push(table);
        }
        tables
    })
}

/// How many rows of `table` the run wrote.
fn rows_written_by(database: &Path, table: &str, run: i64) -> i64 {
    let snapshot = erp_snapshot(database);
    let index = match table {
        "certifications" => 0,
        "endorsements" => 1,
        other => panic!("{other}"),
    };
    let suffix = format!("/{run}");
    snapshot[index]
        .split_once(':')
        .map(|(_, rows)| rows.split(',').filter(|row| row.ends_with(&suffix)).count())
        .unwrap_or_default() as i64
}

#[test]
fn run_now_wait_exits_zero_and_prints_the_run_when_the_import_succeeds() {
    let mut server = Served::start("cli_client-succeeds");

    let outcome = server.cli(&["run-now", "--task", "1", "--wait"]);
    outcome.assert_success();
    let lines = run_lines(&outcome);
    assert_eq!(
        lines.first().map(|(id, _)| *id),
        Some(2),
        "run-now prints the run it started (the demo task's waiting run is 1):\n{outcome}"
    );
    assert_eq!(
        lines.last(),
        Some(&(2, "SUCCEEDED".to_owned())),
        "run-now --wait ends with the run's status:\n{outcome}"
    );
    assert!(rows_written_by(&server.database_file(), "certifications", 2) > 0);

    // `report get` prints the summary JSON of that run.
    let report = server.cli(&["report", "get", "2"]);
    let summary = report.assert_success().json();
    assert_eq!(summary["dry_run"], false, "{report}");
    assert_eq!(
        summary["imported"]["certifications"].as_i64(),
        Some(rows_written_by(
            &server.database_file(),
            "certifications",
            2
        )),
        "the report counts what was written:\n{report}"
    );

    // `--server` may follow the subcommand; only SUCCEEDED runs are listed.
    let list = alis_import(
        server.dir(),
        &[
            "tasks",
            "list",
            "--server",
            &server.url(),
            "--status",
            "SUCCEEDED",
        ],
        &[],
    );
    list.assert_success();
    assert_eq!(listed_runs(&list), [(2, "SUCCEEDED".to_owned())], "{list}");
    // Without a filter: the finished run and the demo task's next (waiting) one, which
    // sorts first by its scheduled start.
    let all = server.cli(&["tasks", "list"]);
    assert_eq!(
        listed_runs(all.assert_success()),
        [(1, "WAITING".to_owned()), (2, "SUCCEEDED".to_owned())],
        "{all}"
    );

    // A CronJob fired twice for the same slot starts one import.
    let first = server.cli(&[
        "run-now",
        "--task",
        "1",
        "--idempotency-key",
        "slot-1",
        "--wait",
    ]);
    let again = server.cli(&[
        "run-now",
        "--task",
        "1",
        "--idempotency-key",
        "slot-1",
        "--wait",
    ]);
    let first_run = run_lines(first.assert_success()).last().cloned();
    assert_eq!(first_run, Some((3, "SUCCEEDED".to_owned())), "{first}");
    assert_eq!(
        run_lines(again.assert_success()).last().cloned(),
        first_run,
        "the same idempotency key returns the same run:\n{again}"
    );

    server.stop_gracefully();
}

#[test]
fn run_now_wait_exits_non_zero_when_the_import_fails_and_the_log_says_why() {
    let mut server = Served::start("cli_client-fails");
    // No usable file: the demo file is gone, a near miss (impossible date) is left.
    for entry in std::fs::read_dir(server.inbox()).expect("read the inbox") {
        std::fs::remove_file(entry.expect("an inbox entry").path()).expect("empty the inbox");
    }
    let near_miss = "Curr_Lic_Eds_End_Limits_20261399.csv";
    std::fs::write(server.inbox().join(near_miss), "EducatorID\n").expect("write a near miss");

    let outcome = server.cli(&["run-now", "--task", "1", "--wait"]);
    assert_eq!(
        outcome.status.code(),
        Some(1),
        "a failed run exits 1:\n{outcome}"
    );
    let (run, status) = run_lines(&outcome).pop().expect("a run line");
    assert_eq!(run, 2, "{outcome}");
    assert!(
        status.starts_with("FAILED") && status.contains("no ALiS file found"),
        "the reason is printed:\n{outcome}"
    );

    let log = server.cli(&["report", "log", "2"]);
    log.assert_success();
    assert!(
        log.stdout.contains(near_miss),
        "the log names the file it ignored:\n{log}"
    );

    let failed = server.cli(&["tasks", "list", "--status", "failed"]);
    assert_eq!(
        listed_runs(failed.assert_success()),
        [(2, "FAILED".to_owned())],
        "{failed}"
    );

    // A run that found no file has no report.
    let report = server.cli(&["report", "get", "2"]);
    report.assert_failure();
    assert!(report.stderr.contains("NotFound"), "{report}");

    // Without --wait, run-now only starts the run: it exits 0 whatever follows.
    let started = server.cli(&["run-now", "--task", "1"]);
    assert_eq!(
        run_lines(started.assert_success())
            .first()
            .map(|(id, _)| *id),
        Some(3),
        "{started}"
    );

    server.stop_gracefully();
}

#[test]
fn run_now_dry_run_reports_what_it_would_import_and_writes_nothing() {
    let mut server = Served::start("cli_client-dry-run");
    let database = server.database_file();
    let before = erp_snapshot(&database);

    let dry = server.cli(&["run-now", "--task", "1", "--dry-run", "--wait"]);
    assert_eq!(
        run_lines(dry.assert_success()).last(),
        Some(&(2, "SUCCEEDED".to_owned())),
        "{dry}"
    );
    assert_eq!(
        erp_snapshot(&database),
        before,
        "the dry run changed the ERP tables"
    );

    let report = server.cli(&["report", "get", "2"]);
    let summary = report.assert_success().json();
    assert_eq!(summary["dry_run"], true, "{report}");
    let would_import = summary["imported"]["certifications"]
        .as_i64()
        .unwrap_or_default();
    assert!(
        would_import > 0,
        "the dry run reports what it would import:\n{report}"
    );

    // The same import for real does change them, as much as the dry run said.
    let real = server.cli(&["run-now", "--task", "1", "--wait"]);
    assert_eq!(
        run_lines(real.assert_success()).last(),
        Some(&(3, "SUCCEEDED".to_owned())),
        "{real}"
    );
    assert_ne!(erp_snapshot(&database), before);
    assert_eq!(
        rows_written_by(&database, "certifications", 3),
        would_import
    );

    server.stop_gracefully();
}

#[test]
fn tasks_schedule_then_get_round_trips_a_task_and_update_and_delete_follow() {
    let mut server = Served::start("cli_client-tasks");
    let description = "Nightly licence check";
    let schedule = |extra: &[&str]| {
        let mut args = vec![
            "tasks",
            "schedule",
            "--description",
            description,
            "--start-date",
            "2031-01-06",
            "--time",
            "06:30",
            "--weekday",
            "MON",
            "--weekday",
            "thu",
            "--time-zone",
            "America/Chicago",
        ];
        args.extend_from_slice(extra);
        server.cli(&args)
    };

    let saved = schedule(&[]);
    let task = saved.assert_success().json();
    let id = task["id"].as_i64().expect("a task id");
    assert!(id > 1, "a new task, not the demo's:\n{saved}");
    assert_eq!(task["description"], description);
    assert_eq!(task["active"], true);
    assert_eq!(task["start_date"], "2031-01-06");
    assert!(
        task["start_time"]
            .as_str()
            .is_some_and(|t| t.starts_with("06:30")),
        "{saved}"
    );
    assert_eq!(
        task["weekdays"],
        serde_json::json!(["WEEKDAY_MONDAY", "WEEKDAY_THURSDAY"])
    );
    assert_eq!(task["time_zone"], "America/Chicago");
    // Monday 2031-01-06 06:30 CST is 12:30 UTC.
    assert_eq!(task["next_occurrence"], "2031-01-06 12:30:00Z", "{saved}");

    let got = server.cli(&["tasks", "get", &id.to_string()]);
    assert_eq!(
        got.assert_success().json(),
        task,
        "get returns what schedule saved"
    );

    let listed = server.cli(&["tasks", "list", "--keyword", "nightly licence"]);
    let rows = listed_runs(listed.assert_success());
    assert_eq!(rows.len(), 1, "one waiting run for the new task:\n{listed}");
    assert_eq!(rows[0].1, "WAITING");
    assert!(listed.stdout.contains("2031-01-06 12:30:00Z"), "{listed}");

    // Saving it inactive keeps it and removes its waiting run.
    let id_text = id.to_string();
    let updated = schedule(&["--id", &id_text, "--inactive"]);
    let updated = updated.assert_success().json();
    assert_eq!(updated["id"], id);
    assert_eq!(updated["active"], false);
    let got = server.cli(&["tasks", "get", &id_text]);
    assert_eq!(got.assert_success().json(), updated);
    let listed = server.cli(&["tasks", "list", "--keyword", "nightly licence"]);
    assert_eq!(listed_runs(listed.assert_success()), [], "{listed}");

    // Bad input is refused by the server, field by field.
    let invalid = server.cli(&[
        "tasks",
        "schedule",
        "--description",
        description,
        "--start-date",
        "2031-02-30",
        "--time",
        "25:00",
    ]);
    invalid.assert_failure();
    assert!(invalid.stderr.contains("InvalidArgument"), "{invalid}");

    let deleted = server.cli(&["tasks", "delete", &id_text]);
    assert!(
        deleted
            .assert_success()
            .stdout
            .contains(&format!("task {id} deleted")),
        "{deleted}"
    );
    let gone = server.cli(&["tasks", "get", &id_text]);
    gone.assert_failure();
    assert!(gone.stderr.contains("NotFound"), "{gone}");

    server.stop_gracefully();
}

#[test]
fn client_commands_against_an_unreachable_server_fail_with_a_clear_error() {
    let dir = support::temp_dir();
    let url = format!("http://{}", free_local_addr());
    let reach_error = format!("cannot reach alis-import at {url}");
    for args in [
        &["run-now", "--task", "1", "--wait", "--server", &url][..],
        &["tasks", "list", "--server", &url][..],
        &["tasks", "get", "1", "--server", &url][..],
        &["report", "get", "1", "--server", &url][..],
        &["report", "log", "1", "--server", &url][..],
    ] {
        let outcome = alis_import(dir.path(), args, &[]);
        assert_eq!(outcome.status.code(), Some(1), "{outcome}");
        assert!(outcome.stderr.contains(&reach_error), "{outcome}");
    }
    // The environment variable the CronJob sets works the same way.
    let outcome = alis_import(
        dir.path(),
        &["run-now", "--task", "1", "--wait"],
        &[("ALIS_SERVER", &url)],
    );
    assert_eq!(outcome.status.code(), Some(1), "{outcome}");
    assert!(outcome.stderr.contains(&reach_error), "{outcome}");

    let garbage = alis_import(dir.path(), &["tasks", "list", "--server", "not a url"], &[]);
    garbage.assert_failure();
    assert!(garbage.stderr.contains("not a url"), "{garbage}");
}
