//! The store's tasks and runs, against both backends: tasks re-plan their waiting run,
//! RunNow starts one import at a time (idempotently), due runs are claimed exactly once
//! by concurrent schedulers, silent workers are reaped, catch-up helpers, the runs page
//! with its filters and pagination, and run logs. Time is driven by the tests: every
//! instant the store decides on is passed in.

mod common;
mod support;

use std::sync::Arc;
use std::time::Duration;

use alis_import::import::summary::{FileInfo, Summary, SummaryContext};
use alis_import::scheduler::occurrence::TaskSchedule;
use alis_import::store::{
    Claim, LogLevel, NewRun, RunFilter, RunOutcome, RunRecord, RunStatus, StartedRun, Store,
    StoreError, Task, TaskDraft, TimeRange,
};
use common::TestStore;
use jiff::{SignedDuration, Timestamp};
use support::Backend;
use tokio::sync::Barrier;

on_both_backends!(
    saving_a_task_plans_exactly_one_waiting_run_run_by_its_saver,
    deactivating_a_task_removes_its_waiting_run,
    updating_a_missing_task_is_not_found_and_changes_nothing,
    tasks_keep_their_schedule_through_the_store,
    deleting_a_task_removes_its_waiting_run_and_keeps_its_past_runs,
    run_now_starts_a_run_in_progress_even_for_an_inactive_task,
    run_now_with_a_used_idempotency_key_returns_that_run,
    run_now_while_an_import_runs_is_busy_naming_it,
    twenty_concurrent_run_now_calls_start_one_import,
    concurrent_run_now_calls_with_one_key_make_one_run,
    a_due_run_is_claimed_once_earliest_first_and_not_before_it_is_due,
    no_run_is_claimed_while_another_import_runs,
    three_schedulers_claim_each_due_run_exactly_once,
    a_silent_worker_is_reaped_and_a_live_one_is_not,
    concurrent_reapers_fail_a_lost_run_once,
    phases_are_recorded_only_while_running,
    finishing_stores_the_report_only_for_a_run_in_progress,
    finishing_while_the_pdf_renders_shows_the_report_only_with_the_end,
    overdue_runs_are_found_and_missed_ones_failed_then_replanned,
    the_runs_page_lists_newest_first_with_every_filter,
    the_runs_page_walks_every_row_once_in_pages,
    a_page_token_that_was_not_handed_out_is_refused,
    run_log_entries_read_back_in_order,
);

// --- Helpers

/// The tests' "now": Monday 2026-11-02, 12:00 UTC.
fn base() -> Timestamp {
    at("2026-11-02T12:00:00Z")
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("a test instant")
}

fn mins(minutes: i64) -> Timestamp {
    base() + SignedDuration::from_mins(minutes)
}

fn hours(hours: i64) -> Timestamp {
    base() + SignedDuration::from_hours(hours)
}

fn secs(seconds: i64) -> Timestamp {
    base() + SignedDuration::from_secs(seconds)
}

fn schedule(start: &str, time: &str, days: &[&str], zone: &str) -> TaskSchedule {
    let days: Vec<String> = days.iter().map(|day| (*day).to_owned()).collect();
    TaskSchedule::parse(start, time, &days, Some(zone)).expect("a valid schedule")
}

fn weekly() -> TaskSchedule {
    schedule("2026-11-01", "06:30", &["MON"], "America/New_York")
}

fn draft(description: &str, active: bool, saved_by: &str) -> TaskDraft {
    TaskDraft {
        description: description.to_owned(),
        active,
        schedule: weekly(),
        saved_by: saved_by.to_owned(),
    }
}

fn run_for(task_id: Option<i64>, run_by: &str) -> NewRun {
    NewRun {
        task_id,
        run_by: run_by.to_owned(),
        dry_run: false,
        force: false,
    }
}

fn started(result: StartedRun) -> RunRecord {
    match result {
        StartedRun::Started(run) => run,
        other => panic!("expected a started run, got {other:?}"),
    }
}

fn claimed(claim: Claim) -> RunRecord {
    match claim {
        Claim::Claimed(run) => run,
        other => panic!("expected a claimed run, got {other:?}"),
    }
}

fn outcome(status: RunStatus) -> RunOutcome {
    RunOutcome {
        status,
        error: (status == RunStatus::Failed).then(|| "file not found".to_owned()),
    }
}

fn summary() -> Summary {
    let context = SummaryContext {
        run_date: jiff::civil::date(2026, 11, 2),
        dry_run: true,
        file: Some(FileInfo {
            name: "Curr_Lic_Eds_End_Limits_20261102.csv".into(),
            sha256: "ab".repeat(32),
            from_cache: true,
        }),
        expiring_within_days: 60,
    };
    Summary::rejected(&context, "a report for the test")
}

/// Creates a task and returns it.
async fn task(store: &Store, description: &str, saved_by: &str, next: Option<Timestamp>) -> Task {
    store
        .save_task(None, &draft(description, true, saved_by), next)
        .await
        .expect("save task")
}

/// Starts a run now and returns it.
async fn start(store: &Store, task_id: Option<i64>, run_by: &str, now: Timestamp) -> RunRecord {
    started(
        store
            .start_run_now(&run_for(task_id, run_by), None, "replica-test", now)
            .await
            .expect("start run"),
    )
}

/// Ends a run at `now`.
async fn end(store: &Store, run_id: i64, status: RunStatus, now: Timestamp) {
    let finished = store
        .finish_run_at(run_id, &outcome(status), None, now)
        .await
        .expect("finish run");
    assert!(finished, "run {run_id} was in progress");
}

/// Every WAITING run of `task_id`, straight from the table.
async fn waiting_count(db: &TestStore, task_id: i64) -> usize {
    let rows = db
        .rows(&format!(
            "select cast(count(*) as text) from import_runs \
             where task_id = {task_id} and status = 'WAITING'"
        ))
        .await;
    rows[0].parse().expect("a count")
}

async fn all_runs(store: &Store) -> Vec<RunRecord> {
    let page = store
        .list_runs(&RunFilter::default(), 1000, None)
        .await
        .expect("list runs");
    assert_eq!(page.next_page_token, None);
    page.runs
}

async fn run(store: &Store, id: i64) -> RunRecord {
    store
        .get_run(id)
        .await
        .expect("get run")
        .unwrap_or_else(|| panic!("run {id} exists"))
}

// --- Tasks

async fn saving_a_task_plans_exactly_one_waiting_run_run_by_its_saver(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let saved = task(store, "Weekly ALiS import", "alice", Some(hours(24))).await;
    assert_eq!(saved.description, "Weekly ALiS import");
    assert!(saved.active);
    assert_eq!(saved.schedule, weekly());
    assert_eq!(saved.saved_by, "alice");
    assert_eq!(store.get_task(saved.id).await.unwrap(), Some(saved.clone()));

    let waiting = store.waiting_run(saved.id).await.unwrap().expect("planned");
    assert_eq!(waiting.status, RunStatus::Waiting);
    assert_eq!(waiting.task_id, Some(saved.id));
    assert_eq!(
        waiting.task_description.as_deref(),
        Some("Weekly ALiS import")
    );
    assert_eq!(waiting.scheduled_for, Some(hours(24)));
    assert_eq!(waiting.run_by, "alice");
    assert_eq!(waiting.started_at, None);
    assert_eq!(waiting.owner, None);
    assert!(!waiting.has_report);
    assert_eq!(waiting_count(&db, saved.id).await, 1);

    // Saved again by someone else, for another time: still one, re-planned.
    let mut changed = draft("Weekly ALiS import (HR)", true, "bob");
    changed.schedule = schedule("2026-11-01", "07:00", &["TUE"], "America/New_York");
    let updated = store
        .save_task(Some(saved.id), &changed, Some(hours(48)))
        .await
        .unwrap();
    assert_eq!(updated.id, saved.id);
    assert_eq!(updated.saved_by, "bob");
    assert_eq!(updated.schedule, changed.schedule);
    assert_eq!(waiting_count(&db, saved.id).await, 1);
    let replanned = store.waiting_run(saved.id).await.unwrap().expect("planned");
    assert_ne!(replanned.id, waiting.id);
    assert_eq!(replanned.scheduled_for, Some(hours(48)));
    assert_eq!(replanned.run_by, "bob");
    assert_eq!(
        replanned.task_description.as_deref(),
        Some("Weekly ALiS import (HR)")
    );
    assert_eq!(store.get_run(waiting.id).await.unwrap(), None);

    // Active with no next occurrence (a one-off whose time has passed): none.
    store
        .save_task(Some(saved.id), &changed, None)
        .await
        .unwrap();
    assert_eq!(waiting_count(&db, saved.id).await, 0);

    // Another task has its own.
    let other = task(store, "Nightly check", "carol", Some(hours(1))).await;
    store
        .save_task(Some(saved.id), &changed, Some(hours(72)))
        .await
        .unwrap();
    assert_eq!(waiting_count(&db, saved.id).await, 1);
    assert_eq!(waiting_count(&db, other.id).await, 1);
    assert_eq!(all_runs(store).await.len(), 2);
}

async fn deactivating_a_task_removes_its_waiting_run(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let saved = task(store, "Weekly", "alice", Some(hours(24))).await;
    let kept = task(store, "Other", "alice", Some(hours(25))).await;
    assert_eq!(waiting_count(&db, saved.id).await, 1);

    let inactive = store
        .save_task(
            Some(saved.id),
            &draft("Weekly", false, "bob"),
            Some(hours(24)),
        )
        .await
        .unwrap();
    assert!(!inactive.active);
    assert_eq!(waiting_count(&db, saved.id).await, 0);
    assert_eq!(store.waiting_run(saved.id).await.unwrap(), None);
    assert!(!store.get_task(saved.id).await.unwrap().unwrap().active);
    let active: Vec<i64> = store
        .active_tasks()
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(active, [kept.id]);
    assert_eq!(waiting_count(&db, kept.id).await, 1);

    store
        .save_task(
            Some(saved.id),
            &draft("Weekly", true, "bob"),
            Some(hours(30)),
        )
        .await
        .unwrap();
    assert_eq!(waiting_count(&db, saved.id).await, 1);
    assert_eq!(
        store
            .waiting_run(saved.id)
            .await
            .unwrap()
            .unwrap()
            .scheduled_for,
        Some(hours(30))
    );
}

async fn updating_a_missing_task_is_not_found_and_changes_nothing(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let result = store
        .save_task(Some(999), &draft("Ghost", true, "alice"), Some(hours(1)))
        .await;
    assert!(
        matches!(result, Err(StoreError::TaskNotFound(999))),
        "{result:?}"
    );
    assert_eq!(store.get_task(999).await.unwrap(), None);
    assert!(store.active_tasks().await.unwrap().is_empty());
    assert!(all_runs(store).await.is_empty());
}

async fn tasks_keep_their_schedule_through_the_store(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let chicago = TaskDraft {
        description: "Mondays and Thursdays".into(),
        active: true,
        schedule: schedule(
            "2027-01-04",
            "06:30:15",
            &["thu", "Monday"],
            "america/chicago",
        ),
        saved_by: "alice".into(),
    };
    let once = TaskDraft {
        description: "Once".into(),
        active: true,
        schedule: schedule("2027-03-14", "02:30", &[], "UTC"),
        saved_by: "bob".into(),
    };
    let idle = TaskDraft {
        active: false,
        ..once.clone()
    };
    let first = store.save_task(None, &chicago, None).await.unwrap();
    let second = store.save_task(None, &once, None).await.unwrap();
    let third = store.save_task(None, &idle, None).await.unwrap();

    let read = store.get_task(first.id).await.unwrap().unwrap();
    assert_eq!(read.schedule, chicago.schedule);
    assert_eq!(read.schedule.weekdays().to_string(), "MON,THU");
    assert_eq!(read.schedule.time_zone_name(), "America/Chicago");
    assert_eq!(read.schedule.time().to_string(), "06:30:15");
    assert_eq!(read.schedule.start_date().to_string(), "2027-01-04");
    let read = store.get_task(second.id).await.unwrap().unwrap();
    assert_eq!(read.schedule, once.schedule);
    assert!(read.schedule.runs_once());

    let active = store.active_tasks().await.unwrap();
    assert_eq!(active, [first.clone(), second.clone()]);
    assert!(!store.get_task(third.id).await.unwrap().unwrap().active);
}

async fn deleting_a_task_removes_its_waiting_run_and_keeps_its_past_runs(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let doomed = task(store, "Weekly ALiS import", "alice", Some(hours(24))).await;
    let kept = task(store, "Kept", "alice", Some(hours(24))).await;
    let past = start(store, Some(doomed.id), "carol", base()).await;
    end(store, past.id, RunStatus::Succeeded, mins(5)).await;

    assert!(store.delete_task(doomed.id).await.unwrap());
    assert_eq!(store.get_task(doomed.id).await.unwrap(), None);
    assert_eq!(waiting_count(&db, doomed.id).await, 0);
    let past = run(store, past.id).await;
    assert_eq!(past.task_id, None);
    assert_eq!(past.task_description.as_deref(), Some("Weekly ALiS import"));
    assert_eq!(past.status, RunStatus::Succeeded);
    let left: Vec<i64> = all_runs(store).await.iter().map(|r| r.id).collect();
    let kept_waiting = store.waiting_run(kept.id).await.unwrap().unwrap();
    assert_eq!(left, [kept_waiting.id, past.id]);

    assert!(!store.delete_task(doomed.id).await.unwrap());
    assert_eq!(store.active_tasks().await.unwrap(), [kept]);
}

// --- Run now

async fn run_now_starts_a_run_in_progress_even_for_an_inactive_task(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let idle = store
        .save_task(None, &draft("Idle task", false, "alice"), Some(hours(1)))
        .await
        .unwrap();
    let now = at("2026-11-02T12:00:00.250Z");
    let request = NewRun {
        task_id: Some(idle.id),
        run_by: "operator-ops".into(),
        dry_run: true,
        force: true,
    };
    let result = store
        .start_run_now(&request, Some("cron-2026-11-02"), "replica-a", now)
        .await
        .unwrap();
    let started = started(result);
    assert_eq!(started.status, RunStatus::InProgress);
    assert_eq!(started.task_id, Some(idle.id));
    assert_eq!(started.task_description.as_deref(), Some("Idle task"));
    assert_eq!(started.started_at, Some(now));
    assert_eq!(started.heartbeat_at, Some(now));
    assert_eq!(started.scheduled_for, None);
    assert_eq!(started.ended_at, None);
    assert_eq!(started.owner.as_deref(), Some("replica-a"));
    assert_eq!(started.run_by, "operator-ops");
    assert!(started.dry_run && started.force);
    assert_eq!(started.idempotency_key.as_deref(), Some("cron-2026-11-02"));
    assert_eq!(run(store, started.id).await, started);
    assert_eq!(
        store.in_progress_run().await.unwrap(),
        Some(started.clone())
    );
    end(store, started.id, RunStatus::Succeeded, mins(1)).await;

    let missing = store
        .start_run_now(&run_for(Some(404), "ops"), None, "replica-a", base())
        .await;
    assert!(
        matches!(missing, Err(StoreError::TaskNotFound(404))),
        "{missing:?}"
    );
    assert_eq!(store.in_progress_run().await.unwrap(), None);

    let taskless = start(store, None, "ops", mins(2)).await;
    assert_eq!(taskless.task_id, None);
    assert_eq!(taskless.task_description, None);
}

async fn run_now_with_a_used_idempotency_key_returns_that_run(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let weekly = task(store, "Weekly", "alice", None).await;
    let request = run_for(Some(weekly.id), "cronjob");
    let first = started(
        store
            .start_run_now(&request, Some("slot-1"), "replica-a", base())
            .await
            .unwrap(),
    );
    // Again while it runs: the same run, not "busy".
    let again = store
        .start_run_now(&request, Some("slot-1"), "replica-b", mins(1))
        .await
        .unwrap();
    assert_eq!(again, StartedRun::Existing(first.clone()));

    end(store, first.id, RunStatus::Succeeded, mins(2)).await;
    let after = store
        .start_run_now(&request, Some("slot-1"), "replica-b", mins(3))
        .await
        .unwrap();
    let StartedRun::Existing(existing) = after else {
        panic!("expected the existing run, got {after:?}");
    };
    assert_eq!(existing.id, first.id);
    assert_eq!(existing.status, RunStatus::Succeeded);

    // Another slot starts another run; the first slot still names its own run.
    let second = started(
        store
            .start_run_now(&request, Some("slot-2"), "replica-a", mins(4))
            .await
            .unwrap(),
    );
    assert_ne!(second.id, first.id);
    let StartedRun::Existing(existing) = store
        .start_run_now(&request, Some("slot-1"), "replica-a", mins(5))
        .await
        .unwrap()
    else {
        panic!("expected the existing run");
    };
    assert_eq!(existing.id, first.id);
    assert_eq!(all_runs(store).await.len(), 2);
}

async fn run_now_while_an_import_runs_is_busy_naming_it(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let weekly = task(store, "Weekly", "alice", None).await;
    let running = start(store, Some(weekly.id), "alice", base()).await;

    let busy = store
        .start_run_now(&run_for(None, "bob"), Some("slot-9"), "replica-b", mins(1))
        .await
        .unwrap();
    assert_eq!(
        busy,
        StartedRun::Busy {
            running: running.clone()
        }
    );
    let legacy = store.start_run(&run_for(None, "import-file")).await;
    assert!(
        matches!(legacy, Err(StoreError::ImportInProgress { run_id }) if run_id == running.id),
        "{legacy:?}"
    );
    // Busy left nothing behind, not even the key.
    assert_eq!(all_runs(store).await, std::slice::from_ref(&running));

    end(store, running.id, RunStatus::Failed, mins(2)).await;
    let next = started(
        store
            .start_run_now(&run_for(None, "bob"), Some("slot-9"), "replica-b", mins(3))
            .await
            .unwrap(),
    );
    assert_eq!(next.idempotency_key.as_deref(), Some("slot-9"));
    end(store, next.id, RunStatus::Succeeded, mins(4)).await;
    let legacy_id = store
        .start_run(&run_for(None, "import-file"))
        .await
        .unwrap();
    assert_eq!(run(store, legacy_id).await.status, RunStatus::InProgress);
}

/// Runs `count` calls of `call` at once, each on its own tokio task (so each takes its
/// own pooled connection), released together by a barrier.
async fn all_at_once<T, F, Fut>(count: usize, call: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(count));
    let mut handles = Vec::new();
    for i in 0..count {
        let barrier = barrier.clone();
        let call = call(i);
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            call.await
        }));
    }
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.expect("task ran to the end"));
    }
    results
}

async fn twenty_concurrent_run_now_calls_start_one_import(backend: Backend) {
    let db = TestStore::new(backend).await;
    let weekly = task(&db.store, "Weekly", "alice", None).await;
    let results = all_at_once(20, |i| {
        let store = db.store.clone();
        async move {
            store
                .start_run_now(
                    &run_for(Some(weekly.id), &format!("user-{i}")),
                    None,
                    &format!("replica-{i}"),
                    base(),
                )
                .await
                .expect("start run now")
        }
    })
    .await;
    let started: Vec<&RunRecord> = results
        .iter()
        .filter_map(|r| match r {
            StartedRun::Started(run) => Some(run),
            _ => None,
        })
        .collect();
    assert_eq!(started.len(), 1, "{results:?}");
    let winner = started[0].id;
    for result in &results {
        match result {
            StartedRun::Started(_) => {}
            StartedRun::Busy { running } => assert_eq!(running.id, winner),
            other => panic!("unexpected {other:?}"),
        }
    }
    let runs = all_runs(&db.store).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::InProgress);
}

async fn concurrent_run_now_calls_with_one_key_make_one_run(backend: Backend) {
    let db = TestStore::new(backend).await;
    let weekly = task(&db.store, "Weekly", "alice", None).await;
    let results = all_at_once(20, |i| {
        let store = db.store.clone();
        async move {
            store
                .start_run_now(
                    &run_for(Some(weekly.id), "cronjob"),
                    Some("cron-slot-2026-11-02T06:00"),
                    &format!("replica-{i}"),
                    base(),
                )
                .await
                .expect("start run now")
        }
    })
    .await;
    let mut started = 0;
    let mut ids = Vec::new();
    for result in &results {
        match result {
            StartedRun::Started(run) => {
                started += 1;
                ids.push(run.id);
            }
            StartedRun::Existing(run) => ids.push(run.id),
            StartedRun::Busy { .. } => panic!("the key decides before busy: {result:?}"),
        }
    }
    assert_eq!(started, 1, "{results:?}");
    ids.dedup();
    assert_eq!(ids.len(), 1, "{results:?}");
    assert_eq!(all_runs(&db.store).await.len(), 1);
}

// --- Scheduling

async fn a_due_run_is_claimed_once_earliest_first_and_not_before_it_is_due(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let later = task(store, "Later", "bob", Some(hours(2))).await;
    let earlier = task(store, "Earlier", "alice", Some(hours(1))).await;

    assert_eq!(
        store
            .claim_due_run(hours(1) - SignedDuration::from_millis(1), "r1")
            .await
            .unwrap(),
        Claim::Nothing
    );
    let now = hours(3);
    let first = claimed(store.claim_due_run(now, "replica-1").await.unwrap());
    assert_eq!(first.task_id, Some(earlier.id));
    assert_eq!(first.status, RunStatus::InProgress);
    assert_eq!(first.scheduled_for, Some(hours(1)));
    assert_eq!(first.started_at, Some(now));
    assert_eq!(first.heartbeat_at, Some(now));
    assert_eq!(first.owner.as_deref(), Some("replica-1"));
    assert_eq!(first.run_by, "alice");
    assert_eq!(run(store, first.id).await, first);
    end(store, first.id, RunStatus::Succeeded, hours(3)).await;

    // Due exactly now counts.
    let second = claimed(store.claim_due_run(hours(2), "replica-2").await.unwrap());
    assert_eq!(second.task_id, Some(later.id));
    end(store, second.id, RunStatus::Succeeded, hours(3)).await;
    assert_eq!(
        store.claim_due_run(hours(100), "replica-1").await.unwrap(),
        Claim::Nothing
    );
}

async fn no_run_is_claimed_while_another_import_runs(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let weekly = task(store, "Weekly", "alice", Some(hours(1))).await;
    let running = start(store, None, "ops", base()).await;

    // Nothing due yet: nothing to wait for.
    assert_eq!(
        store.claim_due_run(mins(30), "replica-1").await.unwrap(),
        Claim::Nothing
    );
    assert_eq!(
        store.claim_due_run(hours(1), "replica-1").await.unwrap(),
        Claim::Busy {
            running: running.clone()
        }
    );
    let waiting = store
        .waiting_run(weekly.id)
        .await
        .unwrap()
        .expect("still waiting");
    assert_eq!(waiting.status, RunStatus::Waiting);
    assert_eq!(waiting.owner, None);

    end(store, running.id, RunStatus::Succeeded, hours(2)).await;
    let claimed = claimed(store.claim_due_run(hours(2), "replica-1").await.unwrap());
    assert_eq!(claimed.id, waiting.id);
}

async fn three_schedulers_claim_each_due_run_exactly_once(backend: Backend) {
    const ROUNDS: i64 = 50;
    let (url, _guard) = backend.fresh_database_url().await;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Store::connect(&url).await.expect("connect a replica"));
    }
    replicas[0].migrate(true).await.expect("migrate");
    let weekly = task(&replicas[0], "Weekly", "alice", Some(hours(0))).await;

    let mut claimed_ids = Vec::new();
    for round in 0..ROUNDS {
        let now = hours(round);
        let claims = all_at_once(3, |i| {
            let store = replicas[i].clone();
            async move {
                store
                    .claim_due_run(now, &format!("replica-{i}"))
                    .await
                    .expect("claim")
            }
        })
        .await;
        let winners: Vec<(usize, &RunRecord)> = claims
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Claim::Claimed(run) => Some((i, run)),
                _ => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {claims:?}");
        for claim in &claims {
            assert!(
                matches!(claim, Claim::Claimed(_) | Claim::Nothing),
                "round {round}: {claims:?}"
            );
        }
        let (winner, run) = winners[0];
        assert_eq!(run.scheduled_for, Some(now), "round {round}");
        assert_eq!(run.owner, Some(format!("replica-{winner}")));
        claimed_ids.push(run.id);
        let finished = replicas[winner]
            .finish_run_at(run.id, &outcome(RunStatus::Succeeded), None, now)
            .await
            .expect("finish");
        assert!(finished);
        let planned = replicas[(winner + 1) % 3]
            .plan_waiting_run(weekly.id, hours(round + 1))
            .await
            .expect("plan")
            .expect("planned, the task had no waiting run");
        assert_eq!(planned.run_by, "alice");
    }
    claimed_ids.sort_unstable();
    claimed_ids.dedup();
    assert_eq!(claimed_ids.len(), ROUNDS as usize);
    let succeeded = replicas[0]
        .list_runs(
            &RunFilter {
                statuses: vec![RunStatus::Succeeded],
                ..RunFilter::default()
            },
            1000,
            None,
        )
        .await
        .unwrap();
    assert_eq!(succeeded.runs.len(), ROUNDS as usize);
    for replica in &replicas {
        replica.close().await;
    }
}

async fn a_silent_worker_is_reaped_and_a_live_one_is_not(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let timeout = Duration::from_secs(60);
    let run = started(
        store
            .start_run_now(&run_for(None, "ops"), None, "replica-a", base())
            .await
            .unwrap(),
    );
    assert!(
        !store
            .heartbeat(run.id, "replica-b", secs(10))
            .await
            .unwrap()
    );
    assert!(
        store
            .heartbeat(run.id, "replica-a", secs(20))
            .await
            .unwrap()
    );
    assert_eq!(self::run(store, run.id).await.heartbeat_at, Some(secs(20)));

    // 60 s after the start, but only 50 s after the last heartbeat: alive.
    assert!(
        store
            .reap_lost_runs(secs(70), timeout)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .reap_lost_runs(secs(80), timeout)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(self::run(store, run.id).await.status, RunStatus::InProgress);

    let reaped = store.reap_lost_runs(secs(81), timeout).await.unwrap();
    assert_eq!(reaped.len(), 1, "{reaped:?}");
    assert_eq!(reaped[0].id, run.id);
    assert_eq!(reaped[0].status, RunStatus::Failed);
    assert_eq!(reaped[0].ended_at, Some(secs(81)));
    assert_eq!(
        reaped[0].error.as_deref(),
        Some("worker lost: no heartbeat since 2026-11-02T12:00:20.000Z")
    );
    assert_eq!(self::run(store, run.id).await, reaped[0]);

    // The worker wakes up: it is told, and cannot bring the run back.
    assert!(
        !store
            .heartbeat(run.id, "replica-a", secs(82))
            .await
            .unwrap()
    );
    assert!(!store.set_phase(run.id, "replacing").await.unwrap());
    let finished = store
        .finish_run_at(
            run.id,
            &outcome(RunStatus::Succeeded),
            Some(&summary()),
            secs(83),
        )
        .await
        .unwrap();
    assert!(!finished);
    let after = self::run(store, run.id).await;
    assert_eq!(after.status, RunStatus::Failed);
    assert_eq!(after.ended_at, Some(secs(81)));
    assert!(!after.has_report);
    assert_eq!(store.report_summary(run.id).await.unwrap(), None);

    // The database is free again.
    assert!(
        store
            .reap_lost_runs(secs(500), timeout)
            .await
            .unwrap()
            .is_empty()
    );
    start(store, None, "ops", secs(90)).await;
}

async fn concurrent_reapers_fail_a_lost_run_once(backend: Backend) {
    let db = TestStore::new(backend).await;
    let lost = start(&db.store, None, "ops", base()).await;
    let reaped = all_at_once(4, |_| {
        let store = db.store.clone();
        async move {
            store
                .reap_lost_runs(hours(1), Duration::from_secs(30))
                .await
                .expect("reap")
        }
    })
    .await;
    let all: Vec<i64> = reaped.iter().flatten().map(|r| r.id).collect();
    assert_eq!(all, [lost.id], "{reaped:?}");
    assert_eq!(run(&db.store, lost.id).await.status, RunStatus::Failed);
}

async fn phases_are_recorded_only_while_running(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let running = start(store, None, "ops", base()).await;
    assert_eq!(running.phase, None);
    assert!(store.set_phase(running.id, "fetching").await.unwrap());
    assert!(store.set_phase(running.id, "parsing").await.unwrap());
    assert_eq!(
        run(store, running.id).await.phase.as_deref(),
        Some("parsing")
    );
    end(store, running.id, RunStatus::Succeeded, mins(1)).await;
    assert!(!store.set_phase(running.id, "replacing").await.unwrap());
    assert_eq!(
        run(store, running.id).await.phase.as_deref(),
        Some("parsing")
    );
    assert!(!store.set_phase(12345, "parsing").await.unwrap());
}

async fn finishing_stores_the_report_only_for_a_run_in_progress(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let running = start(store, None, "ops", base()).await;
    let report = summary();
    // The summary and the PDF are stored with the run's end, in one transaction.
    assert!(
        store
            .finish_run_reported_at(
                running.id,
                &outcome(RunStatus::Succeeded),
                Some(&report),
                Some(b"%PDF-report"),
                mins(3)
            )
            .await
            .unwrap()
    );
    let done = run(store, running.id).await;
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(done.ended_at, Some(mins(3)));
    assert_eq!(done.error, None);
    assert!(done.has_report);
    assert_eq!(
        done.file_name.as_deref(),
        Some("Curr_Lic_Eds_End_Limits_20261102.csv")
    );
    assert_eq!(done.file_sha256, Some("ab".repeat(32)));
    assert_eq!(done.file_from_cache, Some(true));
    assert_eq!(
        store.report_summary(running.id).await.unwrap(),
        Some(report.clone())
    );
    assert_eq!(
        store.report_pdf(running.id).await.unwrap().as_deref(),
        Some(&b"%PDF-report"[..])
    );

    // A second end changes nothing, the report included.
    assert!(
        !store
            .finish_run_reported_at(
                running.id,
                &outcome(RunStatus::Failed),
                Some(&report),
                Some(b"%PDF-other"),
                mins(9)
            )
            .await
            .unwrap()
    );
    assert_eq!(run(store, running.id).await, done);
    assert_eq!(
        store.report_pdf(running.id).await.unwrap().as_deref(),
        Some(&b"%PDF-report"[..])
    );

    // Nor can a waiting run be finished.
    let weekly = task(store, "Weekly", "alice", Some(hours(5))).await;
    let waiting = store.waiting_run(weekly.id).await.unwrap().unwrap();
    assert!(
        !store
            .finish_run_at(waiting.id, &outcome(RunStatus::Succeeded), None, mins(9))
            .await
            .unwrap()
    );
    assert_eq!(run(store, waiting.id).await.status, RunStatus::Waiting);
}

async fn finishing_while_the_pdf_renders_shows_the_report_only_with_the_end(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let running = start(store, None, "ops", base()).await;
    let report = summary();
    // While the "renderer" works (PostgreSQL has written the summary by then, in the
    // open transaction), another connection sees neither the report nor the end.
    let pdf = async {
        // Long enough for the summary's insert beside it to have run.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(store.report_summary(running.id).await.unwrap(), None);
        assert_eq!(run(store, running.id).await.status, RunStatus::InProgress);
        Some(b"%PDF-rendered".to_vec())
    };
    assert!(
        store
            .finish_run_rendering(
                running.id,
                &outcome(RunStatus::Succeeded),
                &report,
                pdf,
                mins(3)
            )
            .await
            .unwrap()
    );
    let done = run(store, running.id).await;
    assert_eq!(
        (done.status, done.ended_at, done.has_report),
        (RunStatus::Succeeded, Some(mins(3)), true)
    );
    assert_eq!(done.file_sha256, Some("ab".repeat(32)));
    assert_eq!(
        store.report_summary(running.id).await.unwrap(),
        Some(report.clone())
    );
    assert_eq!(
        store.report_pdf(running.id).await.unwrap().as_deref(),
        Some(&b"%PDF-rendered"[..])
    );

    // A second end, with another summary, changes nothing.
    let mut other = report.clone();
    other.notes.push("another end".into());
    let pdf = async { Some(b"%PDF-other".to_vec()) };
    assert!(
        !store
            .finish_run_rendering(
                running.id,
                &outcome(RunStatus::Failed),
                &other,
                pdf,
                mins(9)
            )
            .await
            .unwrap()
    );
    assert_eq!(run(store, running.id).await, done);
    assert_eq!(
        store.report_summary(running.id).await.unwrap(),
        Some(report)
    );
    assert_eq!(
        store.report_pdf(running.id).await.unwrap().as_deref(),
        Some(&b"%PDF-rendered"[..])
    );

    // A PDF that could not be rendered: the run ends with its summary alone.
    let second = start(store, None, "ops", mins(10)).await;
    assert!(
        store
            .finish_run_rendering(
                second.id,
                &outcome(RunStatus::Succeeded),
                &other,
                async { None },
                mins(12)
            )
            .await
            .unwrap()
    );
    assert_eq!(run(store, second.id).await.status, RunStatus::Succeeded);
    assert_eq!(store.report_summary(second.id).await.unwrap(), Some(other));
    assert_eq!(store.report_pdf(second.id).await.unwrap(), None);
}

async fn overdue_runs_are_found_and_missed_ones_failed_then_replanned(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let first = task(store, "First", "alice", Some(hours(0))).await;
    let second = task(store, "Second", "bob", Some(hours(2))).await;
    let first_run = store.waiting_run(first.id).await.unwrap().unwrap();
    let second_run = store.waiting_run(second.id).await.unwrap().unwrap();

    assert!(
        store
            .overdue_waiting_runs(hours(0))
            .await
            .unwrap()
            .is_empty()
    );
    let ids = |runs: Vec<RunRecord>| runs.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.overdue_waiting_runs(secs(1)).await.unwrap()),
        [first_run.id]
    );
    assert_eq!(
        ids(store.overdue_waiting_runs(hours(3)).await.unwrap()),
        [first_run.id, second_run.id]
    );

    let reason = "missed: the service was down at 2026-11-02T12:00:00Z";
    assert!(
        store
            .fail_waiting_run(first_run.id, reason, hours(13))
            .await
            .unwrap()
    );
    assert!(
        !store
            .fail_waiting_run(first_run.id, "again", hours(14))
            .await
            .unwrap()
    );
    let missed = run(store, first_run.id).await;
    assert_eq!(missed.status, RunStatus::Failed);
    assert_eq!(missed.error.as_deref(), Some(reason));
    assert_eq!(missed.ended_at, Some(hours(13)));
    assert_eq!(missed.started_at, None);
    assert_eq!(
        ids(store.overdue_waiting_runs(hours(13)).await.unwrap()),
        [second_run.id]
    );

    // The next occurrence, once.
    let next = store
        .plan_waiting_run(first.id, hours(168))
        .await
        .unwrap()
        .expect("planned");
    assert_eq!(next.status, RunStatus::Waiting);
    assert_eq!(next.scheduled_for, Some(hours(168)));
    assert_eq!(next.run_by, "alice");
    assert_eq!(next.task_description.as_deref(), Some("First"));
    assert_eq!(
        store.plan_waiting_run(first.id, hours(169)).await.unwrap(),
        None
    );
    assert_eq!(
        store.plan_waiting_run(second.id, hours(170)).await.unwrap(),
        None
    );
    assert_eq!(waiting_count(&db, first.id).await, 1);
    assert_eq!(
        store
            .waiting_run(first.id)
            .await
            .unwrap()
            .unwrap()
            .scheduled_for,
        Some(hours(168))
    );

    // Never for an inactive or missing task.
    let idle = store
        .save_task(None, &draft("Idle", false, "carol"), None)
        .await
        .unwrap();
    assert_eq!(
        store.plan_waiting_run(idle.id, hours(5)).await.unwrap(),
        None
    );
    assert_eq!(store.plan_waiting_run(9999, hours(5)).await.unwrap(), None);
    assert_eq!(waiting_count(&db, idle.id).await, 0);

    // A claimed run is not "missed".
    let claimed = claimed(store.claim_due_run(hours(3), "replica-1").await.unwrap());
    assert_eq!(claimed.id, second_run.id);
    assert!(
        !store
            .fail_waiting_run(claimed.id, reason, hours(4))
            .await
            .unwrap()
    );
    assert_eq!(run(store, claimed.id).await.status, RunStatus::InProgress);
}

// --- The runs page

/// The runs of [`runs_page`], by name; the comment gives each run's sort key.
struct PageRuns {
    /// Task A's waiting run (base + 7 d).
    a_next: i64,
    /// Task B's planned run (base + 1 d).
    b_next: i64,
    /// Run-now without a task, by dave, in progress (started base + 4 h).
    taskless: i64,
    /// B's run missed at base + 3 h, failed at base + 5 h.
    b_missed: i64,
    /// Run-now of B by carol (started base + 2 h, ended + 30 min).
    b_manual: i64,
    /// Dry run-now of A by alice, with a report (started base + 2 h, ended + 10 min).
    a_dry: i64,
    /// B's scheduled run at base + 1 h, claimed at + 5 min, failed at + 20 min.
    b_failed: i64,
    /// Run-now of A by carol (started base, ended + 10 min).
    a_manual: i64,
    /// Task B's id.
    task_b: i64,
}

impl PageRuns {
    fn newest_first(&self) -> Vec<i64> {
        vec![
            self.a_next,
            self.b_next,
            self.taskless,
            self.b_missed,
            self.b_manual,
            self.a_dry,
            self.b_failed,
            self.a_manual,
        ]
    }
}

async fn runs_page(store: &Store) -> PageRuns {
    let task_a = task(store, "Weekly ALiS Import", "alice", Some(hours(7 * 24))).await;
    let task_b = task(store, "Nightly license check", "bob", Some(hours(1))).await;
    let a_next = store.waiting_run(task_a.id).await.unwrap().unwrap().id;

    let a_manual = start(store, Some(task_a.id), "carol", base()).await.id;
    end(store, a_manual, RunStatus::Succeeded, mins(10)).await;

    let b_failed = claimed(store.claim_due_run(mins(65), "replica-1").await.unwrap()).id;
    end(store, b_failed, RunStatus::Failed, mins(80)).await;
    let b_missed = store
        .plan_waiting_run(task_b.id, hours(3))
        .await
        .unwrap()
        .unwrap()
        .id;

    let dry = NewRun {
        task_id: Some(task_a.id),
        run_by: "alice".into(),
        dry_run: true,
        force: false,
    };
    let a_dry = started(
        store
            .start_run_now(&dry, None, "replica-2", hours(2))
            .await
            .unwrap(),
    )
    .id;
    assert!(
        store
            .finish_run_at(
                a_dry,
                &outcome(RunStatus::Succeeded),
                Some(&summary()),
                mins(130)
            )
            .await
            .unwrap()
    );
    let b_manual = start(store, Some(task_b.id), "carol", hours(2)).await.id;
    end(store, b_manual, RunStatus::Succeeded, mins(150)).await;

    assert!(
        store
            .fail_waiting_run(b_missed, "missed", hours(5))
            .await
            .unwrap()
    );
    let b_next = store
        .plan_waiting_run(task_b.id, hours(24))
        .await
        .unwrap()
        .unwrap()
        .id;
    let taskless = start(store, None, "dave", hours(4)).await.id;
    PageRuns {
        a_next,
        b_next,
        taskless,
        b_missed,
        b_manual,
        a_dry,
        b_failed,
        a_manual,
        task_b: task_b.id,
    }
}

/// The ids of every run that matches `filter`, in one page.
async fn listed(store: &Store, filter: RunFilter) -> Vec<i64> {
    let page = store
        .list_runs(&filter, 100, None)
        .await
        .expect("list runs");
    assert_eq!(page.next_page_token, None);
    page.runs.iter().map(|r| r.id).collect()
}

fn range(from: Option<Timestamp>, to: Option<Timestamp>) -> TimeRange {
    TimeRange { from, to }
}

async fn the_runs_page_lists_newest_first_with_every_filter(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let r = runs_page(store).await;
    let all = RunFilter::default;

    assert_eq!(listed(store, all()).await, r.newest_first());

    // One row in full.
    let rows = store.list_runs(&all(), 100, None).await.unwrap().runs;
    let failed = rows.iter().find(|run| run.id == r.b_failed).unwrap();
    assert_eq!(failed.task_id, Some(r.task_b));
    assert_eq!(
        failed.task_description.as_deref(),
        Some("Nightly license check")
    );
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.scheduled_for, Some(hours(1)));
    assert_eq!(failed.started_at, Some(mins(65)));
    assert_eq!(failed.ended_at, Some(mins(80)));
    assert_eq!(failed.run_by, "bob");
    assert_eq!(failed.owner.as_deref(), Some("replica-1"));
    assert_eq!(failed.error.as_deref(), Some("file not found"));
    let with_report: Vec<i64> = rows.iter().filter(|r| r.has_report).map(|r| r.id).collect();
    assert_eq!(with_report, [r.a_dry]);

    let keyword = |text: &str| RunFilter {
        description: Some(text.into()),
        ..all()
    };
    assert_eq!(
        listed(store, keyword("alis")).await,
        [r.a_next, r.a_dry, r.a_manual]
    );
    assert_eq!(
        listed(store, keyword("LICENSE CHECK")).await,
        [r.b_next, r.b_missed, r.b_manual, r.b_failed]
    );
    assert!(listed(store, keyword("%")).await.is_empty());
    assert!(listed(store, keyword("_")).await.is_empty());
    assert!(listed(store, keyword("monthly")).await.is_empty());

    let statuses = |statuses: &[RunStatus]| RunFilter {
        statuses: statuses.to_vec(),
        ..all()
    };
    assert_eq!(
        listed(store, statuses(&[RunStatus::Waiting])).await,
        [r.a_next, r.b_next]
    );
    assert_eq!(
        listed(store, statuses(&[RunStatus::Failed, RunStatus::InProgress])).await,
        [r.taskless, r.b_missed, r.b_failed]
    );
    assert_eq!(
        listed(store, statuses(&[RunStatus::Succeeded])).await,
        [r.b_manual, r.a_dry, r.a_manual]
    );

    let scheduled = |from, to| RunFilter {
        scheduled: range(from, to),
        ..all()
    };
    assert_eq!(
        listed(store, scheduled(Some(hours(1)), Some(hours(24)))).await,
        [r.b_missed, r.b_failed]
    );
    assert_eq!(
        listed(store, scheduled(Some(hours(24)), None)).await,
        [r.a_next, r.b_next]
    );
    assert_eq!(
        listed(store, scheduled(None, Some(hours(3)))).await,
        [r.b_failed]
    );

    let started = |from, to| RunFilter {
        started: range(from, to),
        ..all()
    };
    assert_eq!(
        listed(store, started(Some(hours(1)), Some(hours(2)))).await,
        [r.b_failed]
    );
    assert_eq!(
        listed(store, started(Some(hours(2)), Some(hours(4)))).await,
        [r.b_manual, r.a_dry]
    );
    assert_eq!(
        listed(store, started(Some(hours(4)), None)).await,
        [r.taskless]
    );

    let ended = |from, to| RunFilter {
        ended: range(from, to),
        ..all()
    };
    assert_eq!(
        listed(store, ended(Some(hours(2)), Some(hours(6)))).await,
        [r.b_missed, r.b_manual, r.a_dry]
    );
    assert_eq!(
        listed(store, ended(None, Some(hours(1)))).await,
        [r.a_manual]
    );

    let run_by = |who: &str| RunFilter {
        run_by: Some(who.into()),
        ..all()
    };
    assert_eq!(
        listed(store, run_by("bob")).await,
        [r.b_next, r.b_missed, r.b_failed]
    );
    assert_eq!(
        listed(store, run_by("carol")).await,
        [r.b_manual, r.a_manual]
    );
    assert!(listed(store, run_by("Bob")).await.is_empty());

    // Combined: every filter must hold.
    let mut combined = RunFilter {
        description: Some("License".into()),
        statuses: vec![RunStatus::Failed],
        run_by: Some("bob".into()),
        ..all()
    };
    assert_eq!(
        listed(store, combined.clone()).await,
        [r.b_missed, r.b_failed]
    );
    combined.started = range(Some(hours(1)), Some(hours(2)));
    assert_eq!(listed(store, combined.clone()).await, [r.b_failed]);
    combined.ended = range(Some(hours(2)), None);
    assert!(listed(store, combined).await.is_empty());
    let disjoint = RunFilter {
        description: Some("alis".into()),
        run_by: Some("bob".into()),
        ..all()
    };
    assert!(listed(store, disjoint).await.is_empty());
}

/// Every page of `filter` at `page_size`, as ids per page.
async fn pages(store: &Store, filter: &RunFilter, page_size: u32) -> Vec<Vec<i64>> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = store
            .list_runs(filter, page_size, token.as_deref())
            .await
            .expect("list runs");
        assert!(page.runs.len() <= page_size.max(1) as usize);
        pages.push(page.runs.iter().map(|r| r.id).collect());
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => return pages,
        }
        assert!(pages.len() < 100, "pagination does not end");
    }
}

async fn the_runs_page_walks_every_row_once_in_pages(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let r = runs_page(store).await;
    let n = r.newest_first();

    assert_eq!(
        pages(store, &RunFilter::default(), 2).await,
        [
            vec![n[0], n[1]],
            vec![n[2], n[3]],
            vec![n[4], n[5]],
            vec![n[6], n[7]]
        ]
    );
    // A page boundary between two runs with the same sort key (b_manual, a_dry).
    assert_eq!(
        pages(store, &RunFilter::default(), 5).await,
        [n[..5].to_vec(), n[5..].to_vec()]
    );
    assert_eq!(
        pages(store, &RunFilter::default(), 8).await,
        std::slice::from_ref(&n)
    );
    let ended = RunFilter {
        statuses: vec![RunStatus::Succeeded, RunStatus::Failed],
        ..RunFilter::default()
    };
    assert_eq!(
        pages(store, &ended, 3).await,
        [
            vec![r.b_missed, r.b_manual, r.a_dry],
            vec![r.b_failed, r.a_manual]
        ]
    );
    // 0 is read as 1.
    assert_eq!(pages(store, &RunFilter::default(), 0).await.len(), 8);

    // Rows added while paging do not shift the pages still to come.
    let first = store
        .list_runs(&RunFilter::default(), 2, None)
        .await
        .unwrap();
    task(store, "Brand new", "erin", Some(hours(1000))).await;
    let second = store
        .list_runs(&RunFilter::default(), 2, first.next_page_token.as_deref())
        .await
        .unwrap();
    let ids: Vec<i64> = second.runs.iter().map(|r| r.id).collect();
    assert_eq!(ids, [n[2], n[3]]);
}

async fn a_page_token_that_was_not_handed_out_is_refused(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    runs_page(store).await;
    let token = store
        .list_runs(&RunFilter::default(), 1, None)
        .await
        .unwrap()
        .next_page_token
        .expect("more than one run");
    assert_eq!(
        store
            .list_runs(&RunFilter::default(), 100, Some(&token))
            .await
            .unwrap()
            .runs
            .len(),
        7
    );
    // proto3's unset string is no token: the first page.
    let first = store
        .list_runs(&RunFilter::default(), 1, Some(""))
        .await
        .unwrap();
    assert_eq!(first.next_page_token.as_deref(), Some(token.as_str()));
    let other_backend = match backend {
        Backend::Postgres => "sqlite|2026-11-02T12:00:00.000Z|3",
        Backend::Sqlite => "pg|1793620800000000|3",
    };
    for bad in [
        "garbage".to_owned(),
        "zz".to_owned(),
        hex(other_backend),
        hex("pg|yesterday|3"),
        hex("sqlite|2026-11-02T12:00:00Z|3"),
        hex("sqlite|2026-11-02T12:00:00.000Z|three"),
        hex("pg|1793620800000000"),
        token[..token.len() - 2].to_owned(),
    ] {
        let result = store.list_runs(&RunFilter::default(), 10, Some(&bad)).await;
        assert!(
            matches!(result, Err(StoreError::InvalidPageToken)),
            "{bad}: {result:?}"
        );
    }
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

// --- Run log

async fn run_log_entries_read_back_in_order(backend: Backend) {
    let db = TestStore::new(backend).await;
    let store = &db.store;
    let run = start(store, None, "ops", base()).await;
    let other = {
        end(store, run.id, RunStatus::Failed, mins(1)).await;
        start(store, None, "ops", mins(2)).await
    };
    store
        .append_run_log(run.id, LogLevel::Info, "connecting to sftp.example.org:22")
        .await
        .unwrap();
    store
        .append_run_log(run.id, LogLevel::Warn, "retrying after a timeout")
        .await
        .unwrap();
    store
        .append_run_log(
            run.id,
            LogLevel::Error,
            "host key SHA256:abc does not match",
        )
        .await
        .unwrap();
    let log = store.run_log(run.id).await.unwrap();
    let entries: Vec<(LogLevel, &str)> =
        log.iter().map(|e| (e.level, e.message.as_str())).collect();
    assert_eq!(
        entries,
        [
            (LogLevel::Info, "connecting to sftp.example.org:22"),
            (LogLevel::Warn, "retrying after a timeout"),
            (LogLevel::Error, "host key SHA256:abc does not match"),
        ]
    );
    assert!(log.windows(2).all(|pair| pair[0].at <= pair[1].at));
    let written_recently = Timestamp::now() - SignedDuration::from_mins(10);
    assert!(
        log.iter().all(|entry| entry.at > written_recently),
        "{log:?}"
    );
    assert!(store.run_log(other.id).await.unwrap().is_empty());
    assert!(
        store
            .append_run_log(999_999, LogLevel::Info, "nobody's")
            .await
            .is_err()
    );
}
