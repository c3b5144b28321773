//! The scheduler job (design §5) in the real service: the test moves the service's
//! manual clock and calls `Scheduler::try_execute_once` itself (the service's own
//! interval is an hour), saves tasks through gRPC and reads runs from the store.
//! Every started run is followed to its end by watching its row, with a deadline.
//!
//! On both backends, except exactly-once across replicas, which is PostgreSQL's job
//! (the embedded SQLite default is one process).

mod common;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use alis_import::api::proto::{self, Weekday};
use alis_import::clock::Clock as _;
use alis_import::import::summary::FileInfo;
use alis_import::import::{ImportRequest, ImportSettings, Phase, run_import};
use alis_import::sample::{self, SampleSpec};
use alis_import::scheduler::Tick;
use alis_import::store::{NewRun, RunFilter, RunRecord, RunStatus, StartedRun, Store};
use common::app::{
    AppOptions, TestApp, instance_named, run_ended, spare_guard, spawn_app, spawn_app_on,
    spawn_app_with, spawn_killable_app_on, wait_for_run,
};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use support::Backend;

on_both_backends!(
    weekly_runs_follow_new_york_time_through_march_and_its_dst_change,
    a_task_without_weekdays_runs_once_and_then_nothing_waits,
    spring_forward_runs_a_time_in_the_gap_at_three_thirty_daylight_time,
    fall_back_runs_a_repeated_time_once_at_its_first_instant,
    a_run_overdue_inside_the_catch_up_window_runs_once,
    a_run_overdue_beyond_the_catch_up_window_is_missed_and_the_next_one_waits,
    deactivating_removes_the_waiting_run_and_reactivating_plans_one,
    a_due_run_starts_when_the_running_import_ends_within_the_busy_wait,
    a_due_run_gives_up_after_the_busy_wait_naming_the_running_import,
    a_run_whose_worker_stopped_beating_is_failed_as_worker_lost,
    a_killed_instance_s_import_is_failed_by_another_instance,
    an_import_whose_run_was_reaped_replaces_nothing,
    a_graceful_stop_fails_the_running_import_as_cancelled,
);

const NEW_YORK: &str = "America/New_York";
const EVERY_DAY: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

/// Printed by the DST scenarios before the zone jiff sees for the process, so that
/// `dst_instants_do_not_depend_on_the_process_time_zone` can check its child saw `TZ`.
const PROCESS_ZONE_MARKER: &str = "process time zone: ";

fn at(text: &str) -> Timestamp {
    text.parse()
        .unwrap_or_else(|e| panic!("timestamp {text}: {e}"))
}

fn from_wire(t: &prost_types::Timestamp) -> Timestamp {
    Timestamp::new(t.seconds, t.nanos).expect("timestamp in range")
}

fn minutes(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

fn task_request(
    description: &str,
    start_date: &str,
    start_time: &str,
    weekdays: &[Weekday],
) -> proto::ScheduleTaskRequest {
    proto::ScheduleTaskRequest {
        task_id: 0,
        description: description.into(),
        active: true,
        start_date: start_date.into(),
        start_time: start_time.into(),
        weekdays: weekdays.iter().map(|&d| d as i32).collect(),
        time_zone: NEW_YORK.into(),
    }
}

/// Saves a task through gRPC (at the service's clock) and returns it.
async fn save(app: &TestApp, request: proto::ScheduleTaskRequest) -> proto::Task {
    app.client
        .clone()
        .schedule_task(request)
        .await
        .expect("schedule task")
        .into_inner()
        .task
        .expect("task")
}

/// Runs a task now through gRPC and returns the started run's id.
async fn run_now(app: &TestApp, task_id: i64) -> i64 {
    let run = app
        .client
        .clone()
        .run_now(proto::RunNowRequest {
            task_id,
            ..Default::default()
        })
        .await
        .expect("run now")
        .into_inner()
        .run
        .expect("run");
    assert_eq!(run.status, proto::RunStatus::InProgress as i32);
    run.id
}

async fn tick(app: &TestApp) -> Tick {
    app.scheduler.try_execute_once().await.expect("tick")
}

/// When task `task_id`'s waiting run is planned for, if it has one.
async fn waiting_at(store: &Store, task_id: i64) -> Option<Timestamp> {
    store
        .waiting_run(task_id)
        .await
        .expect("waiting run")
        .map(|run| run.scheduled_for.expect("a waiting run is scheduled"))
}

/// Every run of the database, newest first.
async fn all_runs(store: &Store) -> Vec<RunRecord> {
    store
        .list_runs(&RunFilter::default(), 500, None)
        .await
        .expect("list runs")
        .runs
}

/// The runs of a task that left `WAITING` (started, or failed as missed).
async fn past_runs_of(store: &Store, task_id: i64) -> Vec<RunRecord> {
    all_runs(store)
        .await
        .into_iter()
        .filter(|run| run.task_id == Some(task_id) && run.status != RunStatus::Waiting)
        .collect()
}

/// Waits until the worker of run `run_id` has beaten at `now` or later: a test that
/// moves the clock while an import runs lets its heartbeat catch up before a tick,
/// or the tick would (rightly) reap it.
async fn heartbeat_caught_up(app: &TestApp, run_id: i64) {
    let now = app.clock.now();
    wait_for_run(
        &app.store,
        run_id,
        "a heartbeat at the test's clock",
        Duration::from_secs(30),
        |run| run.heartbeat_at.is_some_and(|beat| beat >= now),
    )
    .await;
}

async fn phase_is_replacing(store: &Store, run_id: i64) -> RunRecord {
    wait_for_run(
        store,
        run_id,
        "the replace gate",
        Duration::from_secs(60),
        |run| run.phase.as_deref() == Some("REPLACING"),
    )
    .await
}

fn small_sample() -> SampleSpec {
    SampleSpec {
        statewide_educators: 150,
        employees: 20,
        ..SampleSpec::default()
    }
}

fn print_process_zone() {
    println!(
        "{PROCESS_ZONE_MARKER}{}",
        TimeZone::system().iana_name().unwrap_or("(unnamed)")
    );
}

/// Monday and Thursday at 06:00 New York time, stepping the clock a day at a time
/// through five weeks of March 2027, which has the spring-forward change (Sunday the
/// 14th): ten runs, each started by a tick and imported by the worker; 11:00 UTC
/// before the change, 10:00 UTC after it.
async fn weekly_runs_follow_new_york_time_through_march_and_its_dst_change(backend: Backend) {
    let app = spawn_app(backend).await;
    app.seed_sample(&small_sample()).await;
    app.clock.set(at("2027-03-01T00:00:00Z"));
    let task = save(
        &app,
        task_request(
            "Monday and Thursday import",
            "2027-03-01",
            "06:00",
            &[Weekday::Monday, Weekday::Thursday],
        ),
    )
    .await;

    let mut started = Vec::new();
    let mut day = jiff::civil::date(2027, 3, 1);
    while day <= jiff::civil::date(2027, 4, 4) {
        // Noon UTC: 07:00 or 08:00 in New York, after the day's 06:00 run is due.
        let noon = day
            .at(12, 0, 0, 0)
            .to_zoned_datetime(TimeZone::UTC)
            .unwrap();
        app.clock.set(noon.timestamp());
        let tick = tick(&app).await;
        assert_eq!(
            (tick.reaped.len(), tick.missed.len(), tick.gave_up.len()),
            (0, 0, 0),
            "{day}: {tick:?}"
        );
        if let Some(run_id) = tick.started {
            let run = run_ended(&app.store, run_id).await;
            assert_eq!(run.status, RunStatus::Succeeded, "{day}: {:?}", run.error);
            assert!(run.has_report, "{day}");
            assert_eq!(run.started_at, Some(noon.timestamp()), "{day}");
            assert_eq!(run.run_by, "local", "run by who saved the task");
            started.push(run.scheduled_for.expect("a scheduled run"));
        }
        day = day.tomorrow().unwrap();
    }

    let expected: Vec<Timestamp> = [
        "2027-03-01T11:00:00Z",
        "2027-03-04T11:00:00Z",
        "2027-03-08T11:00:00Z",
        "2027-03-11T11:00:00Z",
        "2027-03-15T10:00:00Z",
        "2027-03-18T10:00:00Z",
        "2027-03-22T10:00:00Z",
        "2027-03-25T10:00:00Z",
        "2027-03-29T10:00:00Z",
        "2027-04-01T10:00:00Z",
    ]
    .map(at)
    .to_vec();
    assert_eq!(started, expected);
    for instant in &started {
        let local = instant.to_zoned_datetime(TimeZone::get(NEW_YORK).unwrap());
        assert_eq!(local.time(), jiff::civil::time(6, 0, 0, 0), "{local}");
    }
    assert_eq!(
        waiting_at(&app.store, task.id).await,
        Some(at("2027-04-05T10:00:00Z")),
        "the next Monday waits"
    );
}

/// No weekday selected: one run at the start date and time, and nothing after it.
async fn a_task_without_weekdays_runs_once_and_then_nothing_waits(backend: Backend) {
    let app = spawn_app(backend).await;
    let task = save(
        &app,
        task_request("One-off import", "2026-12-02", "09:00", &[]),
    )
    .await;
    let due = at("2026-12-02T14:00:00Z");
    assert_eq!(task.next_occurrence.as_ref().map(from_wire), Some(due));

    app.clock.set(due - SignedDuration::from_secs(1));
    assert_eq!(tick(&app).await, Tick::default(), "not due yet");
    app.clock.set(due);
    let run_id = tick(&app).await.started.expect("the one-off run starts");
    let run = run_ended(&app.store, run_id).await;
    assert_eq!(run.scheduled_for, Some(due));

    assert_eq!(waiting_at(&app.store, task.id).await, None);
    let got = app
        .client
        .clone()
        .get_task(proto::GetTaskRequest { task_id: task.id })
        .await
        .expect("get task")
        .into_inner()
        .task
        .expect("task");
    assert_eq!(got.next_occurrence, None);
    for later in [
        SignedDuration::from_hours(1),
        SignedDuration::from_hours(24 * 7),
    ] {
        app.clock.set(due + later);
        assert_eq!(tick(&app).await, Tick::default(), "{later:?} later");
    }
    let ids: Vec<i64> = all_runs(&app.store).await.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![run_id], "one run, ever");
}

/// Every day at 02:30 New York time across the spring-forward night: Saturday at
/// 02:30 EST (07:30 UTC); on Sunday 2027-03-14 02:30 does not exist and the run is at
/// 03:30 EDT (still 07:30 UTC); Monday at 02:30 EDT (06:30 UTC).
async fn spring_forward_runs_a_time_in_the_gap_at_three_thirty_daylight_time(backend: Backend) {
    print_process_zone();
    let app = spawn_app(backend).await;
    app.clock.set(at("2027-03-12T12:00:00Z"));
    let task = save(
        &app,
        task_request("Nightly import", "2027-03-12", "02:30", &EVERY_DAY),
    )
    .await;

    let expected = [
        "2027-03-13T07:30:00Z",
        "2027-03-14T07:30:00Z",
        "2027-03-15T06:30:00Z",
    ]
    .map(at);
    for due in expected {
        assert_eq!(waiting_at(&app.store, task.id).await, Some(due));
        app.clock.set(due - SignedDuration::from_secs(1));
        assert_eq!(tick(&app).await, Tick::default(), "{due} is not due yet");
        app.clock.set(due);
        let run_id = tick(&app).await.started.expect("started when due");
        let run = run_ended(&app.store, run_id).await;
        assert_eq!(run.scheduled_for, Some(due));
        assert_eq!(run.started_at, Some(due));
    }
    let gap_day = expected[1].to_zoned_datetime(TimeZone::get(NEW_YORK).unwrap());
    assert_eq!(
        gap_day.to_string(),
        "2027-03-14T03:30:00-04:00[America/New_York]"
    );
}

/// Sundays at 01:30 New York time: on 2026-11-01 01:30 happens twice; the run is at
/// the first (01:30 EDT, 05:30 UTC) only, and the next one is a week later (01:30
/// EST, 06:30 UTC).
async fn fall_back_runs_a_repeated_time_once_at_its_first_instant(backend: Backend) {
    print_process_zone();
    let app = spawn_app(backend).await;
    app.clock.set(at("2026-10-31T12:00:00Z"));
    let task = save(
        &app,
        task_request(
            "Sunday night import",
            "2026-10-25",
            "01:30",
            &[Weekday::Sunday],
        ),
    )
    .await;
    let first = at("2026-11-01T05:30:00Z");
    assert_eq!(task.next_occurrence.as_ref().map(from_wire), Some(first));

    app.clock.set(first);
    let run_id = tick(&app)
        .await
        .started
        .expect("started at the first 01:30");
    let run = run_ended(&app.store, run_id).await;
    assert_eq!(run.scheduled_for, Some(first));

    // The second 01:30 (EST), and a little after it: nothing more runs.
    for now in ["2026-11-01T06:30:00Z", "2026-11-01T06:31:00Z"].map(at) {
        app.clock.set(now);
        assert_eq!(tick(&app).await, Tick::default(), "{now}");
    }
    assert_eq!(
        waiting_at(&app.store, task.id).await,
        Some(at("2026-11-08T06:30:00Z"))
    );
    assert_eq!(past_runs_of(&app.store, task.id).await.len(), 1);
}

/// Runs the DST scenarios of this binary again, on both backends, in a child process
/// whose `TZ` is Tokyo's: the instants must not move. (Setting `TZ` in this process
/// would race the tests beside it.) The child's PostgreSQL server inherits `TZ` too,
/// so its default zone is Tokyo's as well. The pure schedule arithmetic has the same
/// check, under three zones, in `src/scheduler/occurrence.rs`; this one covers the
/// store, the API and the scheduler around it.
#[test]
fn dst_instants_do_not_depend_on_the_process_time_zone() {
    const ZONE: &str = "Asia/Tokyo";
    let tests = [
        "postgres::spring_forward_runs_a_time_in_the_gap_at_three_thirty_daylight_time",
        "sqlite::spring_forward_runs_a_time_in_the_gap_at_three_thirty_daylight_time",
        "postgres::fall_back_runs_a_repeated_time_once_at_its_first_instant",
        "sqlite::fall_back_runs_a_repeated_time_once_at_its_first_instant",
    ];
    let log = support::artifacts_dir()
        .join("postgres")
        .join("scheduler_job-TZ-Asia_Tokyo.log");
    std::fs::create_dir_all(log.parent().unwrap()).expect("log directory");
    let output = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .env("TZ", ZONE)
        .env("ALIS_TEST_PG_LOG", &log)
        .args(["--exact", "--nocapture", "--test-threads=2"])
        .args(tests)
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = format!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "TZ={ZONE}:\n{report}");
    assert!(
        stdout.contains(&format!("test result: ok. {} passed", tests.len())),
        "TZ={ZONE}:\n{report}"
    );
    assert_eq!(
        stdout
            .matches(&format!("{PROCESS_ZONE_MARKER}{ZONE}\n"))
            .count(),
        tests.len(),
        "TZ={ZONE} did not reach jiff in the child:\n{report}"
    );
}

/// The clock stands at Monday 2026-11-30 12:00 UTC; a Monday and Thursday 06:00 task's
/// next run is Thursday 2026-12-03 at 11:00 UTC.
const THURSDAY: &str = "2026-12-03T11:00:00Z";
/// The occurrence after it.
const NEXT_MONDAY: &str = "2026-12-07T11:00:00Z";

async fn weekly_task(app: &TestApp, description: &str, active: bool) -> proto::Task {
    let mut request = task_request(
        description,
        "2026-11-30",
        "06:00",
        &[Weekday::Monday, Weekday::Thursday],
    );
    request.active = active;
    save(app, request).await
}

/// The service was down at the scheduled time and comes back an hour later, inside
/// the 12-hour catch-up window: the run starts at once, and only once.
async fn a_run_overdue_inside_the_catch_up_window_runs_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let task = weekly_task(&app, "Weekly import", true).await;
    let due = at(THURSDAY);
    let planned = app
        .store
        .waiting_run(task.id)
        .await
        .unwrap()
        .expect("planned");
    assert_eq!(planned.scheduled_for, Some(due));

    app.clock.set(due + SignedDuration::from_hours(1));
    let first = tick(&app).await;
    assert_eq!(first.started, Some(planned.id), "{first:?}");
    assert!(first.missed.is_empty(), "{first:?}");
    // At once again, while it may still run, and again after it ended.
    assert_eq!(tick(&app).await, Tick::default());
    let run = run_ended(&app.store, planned.id).await;
    assert_eq!(tick(&app).await, Tick::default());

    assert_eq!(run.scheduled_for, Some(due));
    assert_eq!(run.started_at, Some(due + SignedDuration::from_hours(1)));
    assert_eq!(past_runs_of(&app.store, task.id).await.len(), 1);
    assert_eq!(waiting_at(&app.store, task.id).await, Some(at(NEXT_MONDAY)));
}

/// Back 13 hours after the scheduled time, beyond the window: the run is failed as
/// missed without starting, and the next occurrence waits.
async fn a_run_overdue_beyond_the_catch_up_window_is_missed_and_the_next_one_waits(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let task = weekly_task(&app, "Weekly import", true).await;
    let planned = app
        .store
        .waiting_run(task.id)
        .await
        .unwrap()
        .expect("planned");
    let back = at(THURSDAY) + SignedDuration::from_hours(13);

    app.clock.set(back);
    let tick_back = tick(&app).await;
    assert_eq!(tick_back.missed, vec![planned.id], "{tick_back:?}");
    assert_eq!(tick_back.started, None, "{tick_back:?}");
    assert_eq!(
        tick(&app).await,
        Tick::default(),
        "missed once, nothing starts"
    );

    let missed = app.store.get_run(planned.id).await.unwrap().unwrap();
    assert_eq!(missed.status, RunStatus::Failed);
    let error = missed.error.as_deref().unwrap_or_default();
    assert!(error.starts_with("missed"), "{error}");
    assert_eq!(missed.started_at, None, "it never started");
    assert_eq!(missed.ended_at, Some(back));

    let next = app
        .store
        .waiting_run(task.id)
        .await
        .unwrap()
        .expect("next planned");
    assert_eq!(next.status, RunStatus::Waiting);
    assert_eq!(next.scheduled_for, Some(at(NEXT_MONDAY)));
    let got = app
        .client
        .clone()
        .get_task(proto::GetTaskRequest { task_id: task.id })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(
        got.next_occurrence.as_ref().map(from_wire),
        Some(at(NEXT_MONDAY))
    );
}

/// Saving a task inactive removes its waiting run, so nothing runs at its time;
/// saving it active again plans exactly one, at the next occurrence after now.
async fn deactivating_removes_the_waiting_run_and_reactivating_plans_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let task = weekly_task(&app, "Weekly import", true).await;
    assert_eq!(waiting_at(&app.store, task.id).await, Some(at(THURSDAY)));

    let mut update = task_request(
        "Weekly import",
        "2026-11-30",
        "06:00",
        &[Weekday::Monday, Weekday::Thursday],
    );
    update.task_id = task.id;
    update.active = false;
    let saved = save(&app, update.clone()).await;
    assert_eq!(saved.next_occurrence, None);
    assert_eq!(waiting_at(&app.store, task.id).await, None);
    app.clock.set(at(THURSDAY) + SignedDuration::from_hours(1));
    assert_eq!(
        tick(&app).await,
        Tick::default(),
        "an inactive task does not run"
    );

    update.active = true;
    let saved = save(&app, update.clone()).await;
    assert_eq!(
        saved.next_occurrence.as_ref().map(from_wire),
        Some(at(NEXT_MONDAY))
    );
    // Saving an active task again re-plans; it never adds a second waiting run.
    save(&app, update).await;
    let waiting: Vec<_> = all_runs(&app.store)
        .await
        .into_iter()
        .filter(|run| run.status == RunStatus::Waiting)
        .collect();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0].scheduled_for, Some(at(NEXT_MONDAY)));
    assert!(
        past_runs_of(&app.store, task.id).await.is_empty(),
        "the deactivated occurrence never ran"
    );
}

/// A service whose imports wait at the replace gate, waiting at most 10 minutes for a
/// running import; with a sample district and a manual task, its running import
/// (held at the gate) and a scheduled task due on Thursday, a minute from now.
struct BusyScenario {
    app: TestApp,
    gate: Arc<tokio::sync::Semaphore>,
    scheduled_task: proto::Task,
    /// The scheduled task's run, waiting.
    due_run: i64,
    /// The manual import in progress.
    running: i64,
}

async fn busy_scenario(backend: Backend) -> BusyScenario {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let app = spawn_app_with(
        backend,
        AppOptions {
            flags: vec!["--busy-wait".into(), "10m".into()],
            replace_gate: Some(Arc::clone(&gate)),
        },
    )
    .await;
    app.seed_sample(&small_sample()).await;
    app.clock.set(at(THURSDAY) - minutes(1));
    let scheduled_task = weekly_task(&app, "Scheduled import", true).await;
    let due_run = app
        .store
        .waiting_run(scheduled_task.id)
        .await
        .unwrap()
        .expect("planned")
        .id;
    let manual = weekly_task(&app, "Manual import", false).await;
    let running = run_now(&app, manual.id).await;
    phase_is_replacing(&app.store, running).await;
    BusyScenario {
        app,
        gate,
        scheduled_task,
        due_run,
        running,
    }
}

/// The scheduled run falls due while another import runs: it waits, and starts at the
/// first tick after that import ended, within the busy wait.
async fn a_due_run_starts_when_the_running_import_ends_within_the_busy_wait(backend: Backend) {
    let s = busy_scenario(backend).await;
    let app = &s.app;

    app.clock.set(at(THURSDAY) + minutes(5));
    heartbeat_caught_up(app, s.running).await;
    assert_eq!(
        tick(app).await,
        Tick::default(),
        "waits for the running import"
    );
    let due = app.store.get_run(s.due_run).await.unwrap().unwrap();
    assert_eq!(due.status, RunStatus::Waiting);

    s.gate.add_permits(1);
    let running = run_ended(&app.store, s.running).await;
    assert_eq!(running.status, RunStatus::Succeeded, "{:?}", running.error);
    let now = at(THURSDAY) + minutes(6);
    app.clock.set(now);
    let started = tick(app).await;
    assert_eq!(started.started, Some(s.due_run), "{started:?}");
    assert!(started.gave_up.is_empty(), "{started:?}");

    s.gate.add_permits(1);
    let run = run_ended(&app.store, s.due_run).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.scheduled_for, Some(at(THURSDAY)));
    assert_eq!(run.started_at, Some(now));
    assert_eq!(
        waiting_at(&app.store, s.scheduled_task.id).await,
        Some(at(NEXT_MONDAY))
    );
}

/// The other import is still running 10 minutes after the scheduled time: the
/// scheduled run fails, naming the running one, and the next occurrence waits. The
/// running import is left alone.
async fn a_due_run_gives_up_after_the_busy_wait_naming_the_running_import(backend: Backend) {
    let s = busy_scenario(backend).await;
    let app = &s.app;

    app.clock.set(at(THURSDAY) + minutes(10));
    heartbeat_caught_up(app, s.running).await;
    assert_eq!(
        tick(app).await,
        Tick::default(),
        "10 minutes: still waiting"
    );

    let now = at(THURSDAY) + minutes(10) + SignedDuration::from_secs(1);
    app.clock.set(now);
    heartbeat_caught_up(app, s.running).await;
    let gave_up = tick(app).await;
    assert_eq!(gave_up.gave_up, vec![s.due_run], "{gave_up:?}");
    assert_eq!(
        (gave_up.started, gave_up.reaped.len()),
        (None, 0),
        "{gave_up:?}"
    );

    let failed = app.store.get_run(s.due_run).await.unwrap().unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.started_at, None);
    assert_eq!(failed.ended_at, Some(now));
    let error = failed.error.unwrap_or_default();
    assert!(error.contains(&format!("run {}", s.running)), "{error}");
    assert!(error.contains("10m"), "{error}");
    assert_eq!(
        waiting_at(&app.store, s.scheduled_task.id).await,
        Some(at(NEXT_MONDAY))
    );

    let running = app.store.get_run(s.running).await.unwrap().unwrap();
    assert_eq!(running.status, RunStatus::InProgress, "left alone");
    s.gate.add_permits(1);
    let running = run_ended(&app.store, s.running).await;
    assert_eq!(running.status, RunStatus::Succeeded, "{:?}", running.error);
    assert_eq!(tick(app).await, Tick::default());
}

/// A run recorded as in progress by a worker that no longer beats: failed as "worker
/// lost" once its last heartbeat is more than the timeout (60 s) old, not before, and
/// then the database takes imports again. A run whose worker beats is left alone.
async fn a_run_whose_worker_stopped_beating_is_failed_as_worker_lost(backend: Backend) {
    let app = spawn_app(backend).await;
    let start = app.clock.now();
    let dead = match app
        .store
        .start_run_now(&manual_run("ops"), None, "dead-worker", start)
        .await
        .unwrap()
    {
        StartedRun::Started(run) => run,
        other => panic!("{other:?}"),
    };

    app.clock.advance(SignedDuration::from_secs(60));
    assert_eq!(
        tick(&app).await,
        Tick::default(),
        "60 s is not more than 60 s"
    );
    app.clock.advance(SignedDuration::from_secs(1));
    let reaped = tick(&app).await;
    assert_eq!(reaped.reaped, vec![dead.id], "{reaped:?}");
    let lost = app.store.get_run(dead.id).await.unwrap().unwrap();
    assert_eq!(lost.status, RunStatus::Failed);
    let error = lost.error.unwrap_or_default();
    assert!(
        error.starts_with("worker lost: no heartbeat since 2026-11-30T12:00:00"),
        "{error}"
    );
    assert_eq!(lost.ended_at, Some(app.clock.now()));

    // Its import lock is free: RunNow starts an import instead of ABORTED.
    let task = weekly_task(&app, "Manual import", false).await;
    let next = run_now(&app, task.id).await;
    run_ended(&app.store, next).await;

    let live = match app
        .store
        .start_run_now(&manual_run("ops"), None, "live-worker", app.clock.now())
        .await
        .unwrap()
    {
        StartedRun::Started(run) => run,
        other => panic!("{other:?}"),
    };
    app.clock.advance(SignedDuration::from_secs(50));
    let beat = app.clock.now();
    assert!(
        app.store
            .heartbeat(live.id, "live-worker", beat)
            .await
            .unwrap()
    );
    assert!(
        !app.store
            .heartbeat(live.id, "dead-worker", beat)
            .await
            .unwrap(),
        "only the owner beats for a run"
    );
    app.clock.advance(SignedDuration::from_secs(30));
    assert_eq!(
        tick(&app).await,
        Tick::default(),
        "80 s old, beaten 30 s ago"
    );
    assert_eq!(
        app.store.get_run(live.id).await.unwrap().unwrap().status,
        RunStatus::InProgress
    );
    app.clock.advance(SignedDuration::from_secs(31));
    assert_eq!(tick(&app).await.reaped, vec![live.id]);
}

fn manual_run(run_by: &str) -> NewRun {
    NewRun {
        task_id: None,
        run_by: run_by.into(),
        dry_run: false,
        force: false,
    }
}

/// Writes the sample district into the database and its file into `inbox`.
async fn seed_into(store: &Store, inbox: &std::path::Path, spec: &SampleSpec) {
    store
        .insert_district(&sample::district(spec))
        .await
        .expect("insert district");
    let file = std::fs::File::create(inbox.join(sample::file_name(spec))).expect("create file");
    sample::write_statewide_file(spec, std::io::BufWriter::new(file)).expect("write file");
}

/// Two instances on one database. Instance A runs a real import, held at the replace
/// gate, and is killed: no shutdown, its heartbeat simply stops. Instance B fails the
/// run as "worker lost" once A's last heartbeat is older than the timeout; nothing of
/// the import was written, and B can import again.
async fn a_killed_instance_s_import_is_failed_by_another_instance(backend: Backend) {
    let (url, guard) = backend.fresh_database_url().await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mut a = spawn_killable_app_on(
        backend,
        url.clone(),
        guard,
        AppOptions {
            flags: instance_named("replica-a"),
            replace_gate: Some(gate),
        },
    )
    .await;
    let b = spawn_app_on(
        backend,
        url,
        spare_guard(backend).await,
        AppOptions {
            flags: instance_named("replica-b"),
            ..AppOptions::default()
        },
    )
    .await;
    seed_into(&b.store, a.app.inbox.path(), &small_sample()).await;
    let task = weekly_task(&b, "Manual import", false).await;
    let run_id = run_now(&a.app, task.id).await;
    let running = phase_is_replacing(&b.store, run_id).await;
    assert_eq!(running.owner.as_deref(), Some("replica-a"));

    a.kill().await;
    let killed = b.store.get_run(run_id).await.unwrap().unwrap();
    assert_eq!(killed.status, RunStatus::InProgress, "nobody ended it");
    // A's clock, like B's, stood at the epoch: that is its last heartbeat.
    b.clock.advance(SignedDuration::from_secs(59));
    assert_eq!(tick(&b).await, Tick::default(), "within the timeout");
    b.clock.advance(SignedDuration::from_secs(2));
    let reaped = tick(&b).await;
    assert_eq!(reaped.reaped, vec![run_id], "{reaped:?}");

    let lost = b.store.get_run(run_id).await.unwrap().unwrap();
    assert_eq!(lost.status, RunStatus::Failed);
    let error = lost.error.unwrap_or_default();
    assert!(error.starts_with("worker lost"), "{error}");
    assert_eq!(common::records_written_by(&b.store, run_id).await, 0);

    // B imports now (its own inbox has the file too).
    seed_file(b.inbox.path(), &small_sample());
    let next = run_now(&b, task.id).await;
    let next = run_ended(&b.store, next).await;
    assert_eq!(next.status, RunStatus::Succeeded, "{:?}", next.error);
    assert_eq!(next.owner.as_deref(), Some("replica-b"));
}

fn seed_file(inbox: &std::path::Path, spec: &SampleSpec) {
    let file = std::fs::File::create(inbox.join(sample::file_name(spec))).expect("create file");
    sample::write_statewide_file(spec, std::io::BufWriter::new(file)).expect("write file");
}

/// A worker that was only paused (not dead) past the timeout, and whose run was
/// reaped meanwhile, carries on with its import: the replace must refuse, since the
/// run no longer holds the import lock and another import may be running.
async fn an_import_whose_run_was_reaped_replaces_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let spec = small_sample();
    app.seed_sample(&spec).await;
    let paused = match app
        .store
        .start_run_now(&manual_run("ops"), None, "paused-worker", app.clock.now())
        .await
        .unwrap()
    {
        StartedRun::Started(run) => run,
        other => panic!("{other:?}"),
    };
    app.clock.advance(SignedDuration::from_secs(61));
    assert_eq!(tick(&app).await.reaped, vec![paused.id]);

    // The paused worker wakes up and goes on with its import.
    let file = std::fs::File::open(app.inbox.path().join(sample::file_name(&spec))).unwrap();
    let request = ImportRequest {
        run_id: paused.id,
        run_date: jiff::civil::date(2026, 11, 30),
        dry_run: false,
        force: false,
        file: FileInfo {
            name: sample::file_name(&spec),
            sha256: "test".into(),
            from_cache: false,
        },
    };
    let result = run_import(
        &app.store,
        file,
        &request,
        &ImportSettings::default(),
        &|_: Phase| {},
    )
    .await;
    assert!(result.is_err(), "the replace went ahead: {result:?}");
    assert_eq!(common::records_written_by(&app.store, paused.id).await, 0);
    let run = app.store.get_run(paused.id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.error.unwrap_or_default().starts_with("worker lost"));
}

/// Stopping an instance gracefully (what dropping a `TestApp` does) is not a lost
/// worker: the instance itself fails its running import as cancelled, writes nothing,
/// and frees the lock before it stops.
async fn a_graceful_stop_fails_the_running_import_as_cancelled(backend: Backend) {
    let (url, guard) = backend.fresh_database_url().await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let app = spawn_app_on(
        backend,
        url.clone(),
        spare_guard(backend).await,
        AppOptions {
            replace_gate: Some(gate),
            ..AppOptions::default()
        },
    )
    .await;
    app.seed_sample(&small_sample()).await;
    let task = weekly_task(&app, "Manual import", false).await;
    let run_id = run_now(&app, task.id).await;
    phase_is_replacing(&app.store, run_id).await;

    app.stop().await;
    let store = Store::connect(&url).await.expect("connect after the stop");
    let run = store.get_run(run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap_or_default();
    assert!(error.starts_with("cancelled"), "{error}");
    assert_eq!(common::records_written_by(&store, run_id).await, 0);
    assert_eq!(
        store.in_progress_run().await.unwrap(),
        None,
        "the lock is free"
    );
    store.close().await;
    drop(guard);
}

/// Three instances on one PostgreSQL database, their clocks moved together a day at a
/// time over 40 days of a daily task: each round all three tick at once (and then once
/// more), and each due run is started by exactly one of them, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_start_each_due_run_exactly_once() {
    const ROUNDS: usize = 40;
    let backend = Backend::Postgres;
    let (url, guard) = backend.fresh_database_url().await;
    let mut replicas = Vec::new();
    let mut guard = Some(guard);
    for name in ["replica-a", "replica-b", "replica-c"] {
        let guard = match guard.take() {
            Some(guard) => guard,
            None => spare_guard(backend).await,
        };
        let options = AppOptions {
            flags: instance_named(name),
            ..AppOptions::default()
        };
        replicas.push((
            name,
            spawn_app_on(backend, url.clone(), guard, options).await,
        ));
    }
    let set_clocks = |now: Timestamp| {
        for (_, app) in &replicas {
            app.clock.set(now);
        }
    };
    let tick_all = || {
        let ticks = replicas.iter().map(|(name, app)| {
            let scheduler = app.scheduler.clone();
            let name = *name;
            tokio::spawn(async move { (name, scheduler.try_execute_once().await.expect("tick")) })
        });
        futures_util::future::join_all(ticks)
    };

    set_clocks(at("2026-12-01T00:00:00Z"));
    let store = replicas[0].1.store.clone();
    let task = save(
        &replicas[0].1,
        task_request("Daily import", "2026-12-01", "06:00", &EVERY_DAY),
    )
    .await;
    let mut started_by: BTreeMap<&str, usize> = BTreeMap::new();
    let mut expected_slots = Vec::new();
    for round in 0..ROUNDS {
        let waiting = store.waiting_run(task.id).await.unwrap().expect("planned");
        let due = waiting.scheduled_for.expect("scheduled");
        expected_slots.push(due);
        set_clocks(due);
        let ticks: Vec<(&str, Tick)> = tick_all()
            .await
            .into_iter()
            .map(|joined| joined.expect("tick task"))
            .collect();
        let started: Vec<(&str, i64)> = ticks
            .iter()
            .filter_map(|(name, tick)| tick.started.map(|id| (*name, id)))
            .collect();
        assert_eq!(started.len(), 1, "round {round}: {ticks:?}");
        assert_eq!(started[0].1, waiting.id, "round {round}");
        *started_by.entry(started[0].0).or_default() += 1;
        let again: Vec<(&str, Tick)> = tick_all()
            .await
            .into_iter()
            .map(|joined| joined.expect("tick task"))
            .collect();
        assert!(
            again.iter().all(|(_, tick)| tick.started.is_none()),
            "round {round}, second wave: {again:?}"
        );
        let run = run_ended(&store, waiting.id).await;
        assert_eq!(run.owner.as_deref(), Some(started[0].0), "round {round}");
    }

    let runs = all_runs(&store).await;
    let past: Vec<&RunRecord> = runs
        .iter()
        .filter(|run| run.status != RunStatus::Waiting)
        .collect();
    assert_eq!(past.len(), ROUNDS, "one run per due slot");
    let slots: BTreeSet<Timestamp> = past.iter().filter_map(|run| run.scheduled_for).collect();
    assert_eq!(slots, expected_slots.iter().copied().collect());
    assert!(past.iter().all(|run| run.started_at == run.scheduled_for));
    let mut owners: BTreeMap<&str, usize> = BTreeMap::new();
    for run in &past {
        *owners
            .entry(run.owner.as_deref().unwrap_or("none"))
            .or_default() += 1;
    }
    assert_eq!(owners, started_by, "the runs table agrees with the ticks");
    assert_eq!(
        runs.iter()
            .filter(|run| run.status == RunStatus::Waiting)
            .count(),
        1,
        "and the next one waits"
    );
}
