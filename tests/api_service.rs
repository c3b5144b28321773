//! The gRPC API through a real tonic client against the real server on port 0, on
//! both backends: every RPC's happy path, each validation error and status code.

mod common;
mod support;

use std::sync::Arc;
use std::time::Duration;

use alis_import::api::proto::{self, RunStatus, Weekday};
use alis_import::sample::SampleSpec;
use common::app::{AppOptions, TestApp, spawn_app, spawn_app_with};
use support::Backend;
use tonic::Code;
use tonic_types::StatusExt;

on_both_backends!(
    scheduling_a_task_plans_its_next_run,
    every_invalid_field_is_reported_as_a_field_violation,
    missing_things_are_not_found_and_bad_ids_are_invalid,
    run_now_imports_and_watch_run_follows_it_to_the_end,
    run_now_works_for_an_inactive_task,
    twenty_concurrent_run_now_calls_start_one_import,
    the_same_idempotency_key_returns_the_same_run,
    a_run_without_a_file_fails_with_a_clear_reason,
    a_file_that_cannot_be_cached_fails_the_run_and_changes_nothing,
    deleting_a_task_keeps_its_past_runs,
    database_down_is_unavailable,
);

fn weekly(description: &str, active: bool) -> proto::ScheduleTaskRequest {
    proto::ScheduleTaskRequest {
        task_id: 0,
        description: description.into(),
        active,
        start_date: "2026-11-30".into(),
        start_time: "06:00".into(),
        weekdays: vec![Weekday::Monday as i32, Weekday::Thursday as i32],
        time_zone: "America/New_York".into(),
    }
}

async fn create_task(app: &TestApp, description: &str, active: bool) -> proto::Task {
    app.client
        .clone()
        .schedule_task(weekly(description, active))
        .await
        .expect("schedule task")
        .into_inner()
        .task
        .expect("task")
}

fn small_sample() -> SampleSpec {
    SampleSpec {
        statewide_educators: 300,
        employees: 40,
        ..SampleSpec::default()
    }
}

/// Starts a run of `task_id` with RunNow; returns the run as started.
async fn start_run(app: &TestApp, request: proto::RunNowRequest) -> proto::Run {
    app.client
        .clone()
        .run_now(request)
        .await
        .expect("run now")
        .into_inner()
        .run
        .expect("run")
}

/// A run's log lines.
async fn run_log(app: &TestApp, run_id: i64) -> Vec<String> {
    app.client
        .clone()
        .get_run_log(proto::GetRunLogRequest { run_id })
        .await
        .expect("run log")
        .into_inner()
        .entries
        .into_iter()
        .map(|entry| entry.message)
        .collect()
}

/// Follows a run until it ends; returns every (status, phase) seen.
async fn watch_to_end(app: &TestApp, run_id: i64) -> (proto::Run, Vec<(i32, i32)>) {
    let mut stream = app
        .client
        .clone()
        .watch_run(proto::WatchRunRequest { run_id })
        .await
        .expect("watch run")
        .into_inner();
    let mut seen = Vec::new();
    let mut last = None;
    let deadline = Duration::from_secs(60);
    while let Some(update) = tokio::time::timeout(deadline, stream.message())
        .await
        .expect("run ends in time")
        .expect("stream ok")
    {
        let run = update.run.expect("run");
        seen.push((run.status, run.phase));
        last = Some(run);
    }
    (last.expect("at least one message"), seen)
}

async fn scheduling_a_task_plans_its_next_run(backend: Backend) {
    let app = spawn_app(backend).await;
    let task = create_task(&app, "Weekly ALiS import", true).await;
    // The clock stands at Monday 2026-11-30 12:00 UTC (07:00 in New York): the next
    // run is Thursday 06:00 EST = 11:00 UTC.
    let next = task.next_occurrence.expect("next occurrence");
    assert_eq!(
        jiff::Timestamp::new(next.seconds, 0).unwrap().to_string(),
        "2026-12-03T11:00:00Z"
    );
    assert_eq!(task.saved_by, "local");
    assert_eq!(task.start_time, "06:00:00");

    let got = app
        .client
        .clone()
        .get_task(proto::GetTaskRequest { task_id: task.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.task.unwrap().next_occurrence, Some(next));

    let page = app
        .client
        .clone()
        .list_tasks(proto::ListTasksRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.runs.len(), 1);
    assert_eq!(page.runs[0].status, RunStatus::Waiting as i32);
    assert_eq!(page.runs[0].task_description, "Weekly ALiS import");
    assert_eq!(page.runs[0].run_by, "local");

    // Deactivating removes the waiting run.
    let mut update = weekly("Weekly ALiS import", false);
    update.task_id = task.id;
    app.client.clone().schedule_task(update).await.unwrap();
    let page = app
        .client
        .clone()
        .list_tasks(proto::ListTasksRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(page.runs.is_empty(), "{:?}", page.runs);
}

async fn every_invalid_field_is_reported_as_a_field_violation(backend: Backend) {
    let app = spawn_app(backend).await;
    let bad = proto::ScheduleTaskRequest {
        task_id: 0,
        description: "   ".into(),
        active: true,
        start_date: "2026-02-30".into(),
        start_time: "25:00".into(),
        weekdays: vec![Weekday::Unspecified as i32],
        time_zone: "Mars/Olympus_Mons".into(),
    };
    let status = app
        .client
        .clone()
        .schedule_task(bad)
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields: Vec<String> = status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default();
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "description",
            "start_date",
            "start_time",
            "time_zone",
            "weekdays"
        ]
    );

    for (request, field) in [
        (
            proto::ListTasksRequest {
                page_size: 501,
                ..Default::default()
            },
            "page_size",
        ),
        (
            proto::ListTasksRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            proto::ListTasksRequest {
                statuses: vec![0],
                ..Default::default()
            },
            "statuses",
        ),
    ] {
        let status = app
            .client
            .clone()
            .list_tasks(request)
            .await
            .expect_err(field);
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        let details = status.get_error_details();
        let violated = details
            .bad_request()
            .map(|b| b.field_violations[0].field.clone());
        assert_eq!(violated.as_deref(), Some(field));
    }
}

async fn missing_things_are_not_found_and_bad_ids_are_invalid(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut client = app.client.clone();
    assert_eq!(
        client
            .get_task(proto::GetTaskRequest { task_id: 999 })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        client
            .delete_task(proto::DeleteTaskRequest { task_id: 999 })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        client
            .get_run(proto::GetRunRequest { run_id: 999 })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        client
            .get_report(proto::GetReportRequest { run_id: 999 })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        client
            .get_run_log(proto::GetRunLogRequest { run_id: 999 })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        client
            .watch_run(proto::WatchRunRequest { run_id: 999 })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let run_now = proto::RunNowRequest {
        task_id: 999,
        ..Default::default()
    };
    assert_eq!(
        client.run_now(run_now).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        client
            .get_task(proto::GetTaskRequest { task_id: 0 })
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    assert_eq!(
        client
            .get_run(proto::GetRunRequest { run_id: -1 })
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let mut update = weekly("x", true);
    update.task_id = 999;
    assert_eq!(
        client.schedule_task(update).await.unwrap_err().code(),
        Code::NotFound
    );
}

async fn run_now_imports_and_watch_run_follows_it_to_the_end(backend: Backend) {
    let app = spawn_app(backend).await;
    app.seed_sample(&small_sample()).await;
    let task = create_task(&app, "Weekly ALiS import", true).await;
    let run = start_run(
        &app,
        proto::RunNowRequest {
            task_id: task.id,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(run.status, RunStatus::InProgress as i32);
    assert_eq!(run.run_by, "local");

    let (last, seen) = watch_to_end(&app, run.id).await;
    assert_eq!(last.status, RunStatus::Succeeded as i32, "{}", last.error);
    assert_eq!(last.phase, proto::RunPhase::Done as i32);
    assert!(last.has_report);
    assert_eq!(last.file_name, "Curr_Lic_Eds_End_Limits_20261130.csv");
    assert!(
        seen.len() >= 2,
        "saw at least the start and the end: {seen:?}"
    );

    let report = app
        .client
        .clone()
        .get_report(proto::GetReportRequest { run_id: run.id })
        .await
        .unwrap()
        .into_inner();
    let summary = report.summary.expect("summary");
    assert!(
        summary
            .imported
            .as_ref()
            .is_some_and(|c| c.certifications > 0)
    );
    assert_eq!(summary.run_date, "2026-11-30");
    let json: serde_json::Value = serde_json::from_str(&report.summary_json).expect("json");
    assert_eq!(
        json["imported"]["certifications"].as_i64(),
        summary.imported.map(|c| c.certifications)
    );

    let rows = common::records_written_by(&app.store, run.id).await;
    assert!(rows > 0, "records carry the run id");

    let mut chunks = app
        .client
        .clone()
        .download_report(proto::DownloadReportRequest { run_id: run.id })
        .await
        .expect("download report")
        .into_inner();
    let mut pdf = Vec::new();
    let mut total = 0;
    while let Some(chunk) = chunks.message().await.expect("chunk") {
        total = chunk.total_size;
        pdf.extend_from_slice(&chunk.chunk);
    }
    assert!(pdf.starts_with(b"%PDF"), "a PDF");
    assert_eq!(usize::try_from(total).ok(), Some(pdf.len()));
    let text = support::pdf_text(&pdf);
    assert!(text.contains("Import Summary"), "{text}");
    assert!(text.contains(&format!("{}", run.id)));
}

async fn run_now_works_for_an_inactive_task(backend: Backend) {
    let app = spawn_app(backend).await;
    app.seed_sample(&small_sample()).await;
    let task = create_task(&app, "Manual only", false).await;
    let run = start_run(
        &app,
        proto::RunNowRequest {
            task_id: task.id,
            dry_run: true,
            ..Default::default()
        },
    )
    .await;
    let (last, _) = watch_to_end(&app, run.id).await;
    assert_eq!(last.status, RunStatus::Succeeded as i32, "{}", last.error);
    assert!(last.dry_run);
    let report = app
        .client
        .clone()
        .get_report(proto::GetReportRequest { run_id: run.id })
        .await
        .unwrap()
        .into_inner();
    assert!(report.summary.unwrap().dry_run);
    assert_eq!(
        common::records_written_by(&app.store, run.id).await,
        0,
        "a dry run writes nothing"
    );
}

async fn twenty_concurrent_run_now_calls_start_one_import(backend: Backend) {
    // The import that starts waits before its replace until the other calls are in.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let options = AppOptions {
        replace_gate: Some(Arc::clone(&gate)),
        ..AppOptions::default()
    };
    let app = spawn_app_with(backend, options).await;
    app.seed_sample(&small_sample()).await;
    let task = create_task(&app, "Weekly ALiS import", true).await;
    let calls = (0..20).map(|_| {
        let mut client = app.client.clone();
        tokio::spawn(async move {
            client
                .run_now(proto::RunNowRequest {
                    task_id: task.id,
                    ..Default::default()
                })
                .await
        })
    });
    let results: Vec<_> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let started: Vec<i64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.get_ref().run.as_ref().unwrap().id)
        .collect();
    assert_eq!(started.len(), 1, "exactly one import starts");
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(refused.code(), Code::Aborted);
        assert!(
            refused.message().contains(&format!("run {}", started[0])),
            "{}",
            refused.message()
        );
    }
    gate.add_permits(1);
    let (last, _) = watch_to_end(&app, started[0]).await;
    assert_eq!(last.status, RunStatus::Succeeded as i32, "{}", last.error);
}

async fn the_same_idempotency_key_returns_the_same_run(backend: Backend) {
    let app = spawn_app(backend).await;
    app.seed_sample(&small_sample()).await;
    let task = create_task(&app, "Weekly ALiS import", true).await;
    let request = proto::RunNowRequest {
        task_id: task.id,
        idempotency_key: "cron-2026-11-30T06:00".into(),
        ..Default::default()
    };
    let first = app
        .client
        .clone()
        .run_now(request.clone())
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    watch_to_end(&app, first.id).await;
    let second = app
        .client
        .clone()
        .run_now(request)
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    assert_eq!(first.id, second.id);
    let page = app
        .client
        .clone()
        .list_tasks(proto::ListTasksRequest {
            statuses: vec![RunStatus::Succeeded as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.runs.len(), 1);
}

async fn a_run_without_a_file_fails_with_a_clear_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let task = create_task(&app, "Weekly ALiS import", true).await;
    std::fs::write(
        app.inbox.path().join("Curr_Lic_Eds_End_Limits_latest.csv"),
        "x",
    )
    .unwrap();
    let run = start_run(
        &app,
        proto::RunNowRequest {
            task_id: task.id,
            ..Default::default()
        },
    )
    .await;
    let (last, _) = watch_to_end(&app, run.id).await;
    assert_eq!(last.status, RunStatus::Failed as i32);
    assert!(last.error.contains("no ALiS file found"), "{}", last.error);
    let log = run_log(&app, run.id).await;
    assert!(
        log.iter()
            .any(|line| line.contains("Curr_Lic_Eds_End_Limits_latest.csv")),
        "the near miss is noted in the run log: {log:?}"
    );
}

/// The worker stores a downloaded file in the cache while the import parses; the
/// import waits for it before taking the lock, so a cache failure still writes nothing.
async fn a_file_that_cannot_be_cached_fails_the_run_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.seed_sample(&small_sample()).await;
    let task = create_task(&app, "Weekly ALiS import", true).await;
    let run_now = || async {
        let request = proto::RunNowRequest {
            task_id: task.id,
            ..Default::default()
        };
        watch_to_end(&app, start_run(&app, request).await.id)
            .await
            .0
    };
    let first = run_now().await;
    assert_eq!(first.status, RunStatus::Succeeded as i32, "{}", first.error);
    let before = common::snapshot::rows(&app.store, &common::snapshot::IMPORTED).await;

    // A newer file (the same rows: importing them again would still write every
    // record anew, under the new run's id) that the cache refuses to store.
    let spec = small_sample();
    std::fs::copy(
        app.inbox.path().join(alis_import::sample::file_name(&spec)),
        app.inbox
            .path()
            .join("Curr_Lic_Eds_End_Limits_20261201.csv"),
    )
    .unwrap();
    let refuse = match backend {
        Backend::Postgres => vec![
            "create function refuse_cache() returns trigger language plpgsql as \
             $$ begin raise exception 'the test refuses the file cache'; end $$",
            "create trigger refuse_cache before insert or update on file_cache \
             for each row execute function refuse_cache()",
        ],
        Backend::Sqlite => vec![
            "create trigger refuse_cache before insert on file_cache \
             begin select raise(abort, 'the test refuses the file cache'); end",
        ],
    };
    for sql in refuse {
        common::lock::try_sql(&app.store, sql).await.expect(sql);
    }

    let second = run_now().await;
    assert_eq!(second.status, RunStatus::Failed as i32);
    assert!(
        second.error.contains("the file cache could not be used"),
        "the run says why: {}",
        second.error
    );
    assert_eq!(
        common::snapshot::rows(&app.store, &common::snapshot::IMPORTED).await,
        before,
        "nothing was written"
    );
    assert_eq!(common::records_written_by(&app.store, second.id).await, 0);
    let lock = app.store.cert_lock().await.expect("the lock row");
    assert_eq!(lock.state, alis_import::lock::LockState::Free, "{lock:?}");
    let log = run_log(&app, second.id).await;
    assert!(
        log.iter()
            .any(|line| line.contains("the file cache could not be used")),
        "the run log has the failure: {log:?}"
    );
}

async fn deleting_a_task_keeps_its_past_runs(backend: Backend) {
    let app = spawn_app(backend).await;
    app.seed_sample(&small_sample()).await;
    let task = create_task(&app, "Soon deleted", true).await;
    let run = start_run(
        &app,
        proto::RunNowRequest {
            task_id: task.id,
            ..Default::default()
        },
    )
    .await;
    watch_to_end(&app, run.id).await;
    app.client
        .clone()
        .delete_task(proto::DeleteTaskRequest { task_id: task.id })
        .await
        .unwrap();

    let page = app
        .client
        .clone()
        .list_tasks(proto::ListTasksRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<i64> = page.runs.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        vec![run.id],
        "the waiting run is gone, the past run stays"
    );
    assert_eq!(page.runs[0].task_description, "Soon deleted");
    assert_eq!(
        app.client
            .clone()
            .get_task(proto::GetTaskRequest { task_id: task.id })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
}

async fn database_down_is_unavailable(backend: Backend) {
    let app = spawn_app(backend).await;
    app.store.close().await;
    let status = app
        .client
        .clone()
        .list_tasks(proto::ListTasksRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        !status.message().contains("pool"),
        "no internal text: {}",
        status.message()
    );
}
