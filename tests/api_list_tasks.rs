//! `ListTasks` (design §4) through a real tonic client against the real server, on
//! both backends: the rows of the "VT - ALiS Certification Import" page, every filter
//! alone and all together, newest first, and pagination.
//!
//! The runs are written straight through the store (that is the quickest way to get
//! every status, run-by and time in place); everything asserted is read through gRPC.

mod common;
mod support;

use std::collections::{BTreeMap, BTreeSet};

use alis_import::api::proto::{self, RunStatus as WireStatus};
use alis_import::import::summary::{Summary, SummaryContext};
use alis_import::scheduler::occurrence::TaskSchedule;
use alis_import::store::{Claim, NewRun, RunOutcome, RunStatus, StartedRun, Store, TaskDraft};
use common::app::{TestApp, spawn_app};
use jiff::Timestamp;
use support::Backend;

on_both_backends!(
    rows_come_newest_first_with_the_columns_of_the_page,
    each_filter_alone_keeps_exactly_its_rows,
    filters_combine_with_and,
    pages_of_two_walk_every_row_exactly_once_and_end_with_an_empty_token,
);

fn at(text: &str) -> Timestamp {
    text.parse()
        .unwrap_or_else(|e| panic!("timestamp {text}: {e}"))
}

fn wire(text: &str) -> prost_types::Timestamp {
    let t = at(text);
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    }
}

fn from_wire(t: &prost_types::Timestamp) -> Timestamp {
    Timestamp::new(t.seconds, t.nanos).expect("timestamp in range")
}

/// `[from, to)` on the wire; `None` leaves that end open.
fn range(from: Option<&str>, to: Option<&str>) -> Option<proto::TimeRange> {
    Some(proto::TimeRange {
        from: from.map(wire),
        to: to.map(wire),
    })
}

fn statuses(list: &[WireStatus]) -> Vec<i32> {
    list.iter().map(|&s| s as i32).collect()
}

/// The page's runs, written through the store, each under a label; runs sort by
/// their own time (planned for, else started), and the labels are numbered in that
/// order, `r1` oldest. They are written in another order, so ids do not sort the same.
///
/// | label | task                 | how                | scheduled | started  | ended    | status      | run by | report |
/// |-------|----------------------|--------------------|-----------|----------|----------|-------------|--------|--------|
/// | r1    | Weekly ALiS Import   | scheduled, claimed | 02 11:00  | 11:00:30 | 11:05    | SUCCEEDED   | alice  | yes    |
/// | r2    | Nightly alis refresh | scheduled, missed  | 03 07:00  | –        | 03 20:00 | FAILED      | bob    | no     |
/// | r3    | Manual re-run        | run now            | –         | 04 15:00 | 15:01    | FAILED      | dave   | no     |
/// | r4    | Weekly ALiS Import   | run now            | –         | 05 09:00 | 09:04    | SUCCEEDED   | erin   | yes    |
/// | r5    | Nightly alis refresh | scheduled, claimed | 06 07:00  | 07:02    | 07:03    | FAILED      | bob    | yes    |
/// | r6    | (none: import-file)  | run now            | –         | 07 10:00 | 10:02    | SUCCEEDED   | cli    | yes    |
/// | r7    | Manual re-run        | run now            | –         | 07 18:00 | –        | IN_PROGRESS | carol  | no     |
/// | r8    | Nightly alis refresh | planned            | 08 07:00  | –        | –        | WAITING     | bob    | no     |
/// | r9    | Weekly ALiS Import   | planned            | 09 11:00  | –        | –        | WAITING     | alice  | no     |
///
/// (Days of November 2026, UTC.)
struct Page {
    app: TestApp,
    ids: BTreeMap<&'static str, i64>,
    /// The manual task (its runs are r3 and r7), inactive.
    manual_task: i64,
}

const NEWEST_FIRST: [&str; 9] = ["r9", "r8", "r7", "r6", "r5", "r4", "r3", "r2", "r1"];

fn draft(description: &str, saved_by: &str, active: bool) -> TaskDraft {
    TaskDraft {
        description: description.into(),
        active,
        schedule: TaskSchedule::parse(
            "2026-11-01",
            "06:00",
            &["MON".to_owned()],
            Some("America/New_York"),
        )
        .expect("schedule"),
        saved_by: saved_by.into(),
    }
}

fn summary(rejected: Option<&str>) -> Summary {
    let context = SummaryContext {
        run_date: jiff::civil::date(2026, 11, 2),
        dry_run: false,
        file: None,
        expiring_within_days: 90,
    };
    let mut summary = Summary::rejected(&context, rejected.unwrap_or_default());
    summary.rejected = rejected.map(str::to_owned);
    summary
}

async fn finish(store: &Store, run_id: i64, status: RunStatus, end: &str, report: Option<Summary>) {
    let outcome = RunOutcome {
        status,
        error: (status == RunStatus::Failed).then(|| "it failed".to_owned()),
    };
    assert!(
        store
            .finish_run_at(run_id, &outcome, report.as_ref(), at(end))
            .await
            .expect("finish run")
    );
}

async fn start_now(store: &Store, task_id: Option<i64>, run_by: &str, start: &str) -> i64 {
    let run = NewRun {
        task_id,
        run_by: run_by.into(),
        dry_run: false,
        force: false,
    };
    match store
        .start_run_now(&run, None, "replica-a", at(start))
        .await
        .expect("start run")
    {
        StartedRun::Started(run) => run.id,
        other => panic!("{other:?}"),
    }
}

/// Plans task `task_id`'s waiting run at `scheduled` and claims it at `start`.
async fn plan_and_claim(
    store: &Store,
    task_id: i64,
    task: &TaskDraft,
    scheduled: &str,
    start: &str,
) -> i64 {
    store
        .save_task(Some(task_id), task, Some(at(scheduled)))
        .await
        .expect("plan");
    match store
        .claim_due_run(at(start), "replica-a")
        .await
        .expect("claim")
    {
        Claim::Claimed(run) => {
            assert_eq!(run.task_id, Some(task_id));
            run.id
        }
        other => panic!("{other:?}"),
    }
}

async fn page(backend: Backend) -> Page {
    let app = spawn_app(backend).await;
    let store = &app.store;
    let mut ids = BTreeMap::new();
    let weekly = draft("Weekly ALiS Import", "alice", true);
    let nightly = draft("Nightly alis refresh", "bob", true);
    let manual = draft("Manual re-run", "carol", false);
    let weekly_id = store.save_task(None, &weekly, None).await.unwrap().id;
    let nightly_id = store.save_task(None, &nightly, None).await.unwrap().id;
    let manual_id = store.save_task(None, &manual, None).await.unwrap().id;

    let r6 = start_now(store, None, "cli", "2026-11-07T10:00:00Z").await;
    finish(
        store,
        r6,
        RunStatus::Succeeded,
        "2026-11-07T10:02:00Z",
        Some(summary(None)),
    )
    .await;
    ids.insert("r6", r6);

    let r1 = plan_and_claim(
        store,
        weekly_id,
        &weekly,
        "2026-11-02T11:00:00Z",
        "2026-11-02T11:00:30Z",
    )
    .await;
    finish(
        store,
        r1,
        RunStatus::Succeeded,
        "2026-11-02T11:05:00Z",
        Some(summary(None)),
    )
    .await;
    ids.insert("r1", r1);

    store
        .save_task(Some(nightly_id), &nightly, Some(at("2026-11-03T07:00:00Z")))
        .await
        .unwrap();
    let r2 = store.waiting_run(nightly_id).await.unwrap().unwrap().id;
    assert!(
        store
            .fail_waiting_run(
                r2,
                "missed: the service was down",
                at("2026-11-03T20:00:00Z")
            )
            .await
            .unwrap()
    );
    ids.insert("r2", r2);

    let r3 = start_now(store, Some(manual_id), "dave", "2026-11-04T15:00:00Z").await;
    finish(store, r3, RunStatus::Failed, "2026-11-04T15:01:00Z", None).await;
    ids.insert("r3", r3);

    let r4 = start_now(store, Some(weekly_id), "erin", "2026-11-05T09:00:00Z").await;
    finish(
        store,
        r4,
        RunStatus::Succeeded,
        "2026-11-05T09:04:00Z",
        Some(summary(None)),
    )
    .await;
    ids.insert("r4", r4);

    let r5 = plan_and_claim(
        store,
        nightly_id,
        &nightly,
        "2026-11-06T07:00:00Z",
        "2026-11-06T07:02:00Z",
    )
    .await;
    let rejected = summary(Some("mass-deletion guard"));
    finish(
        store,
        r5,
        RunStatus::Failed,
        "2026-11-06T07:03:00Z",
        Some(rejected),
    )
    .await;
    ids.insert("r5", r5);

    store
        .save_task(Some(weekly_id), &weekly, Some(at("2026-11-09T11:00:00Z")))
        .await
        .unwrap();
    ids.insert(
        "r9",
        store.waiting_run(weekly_id).await.unwrap().unwrap().id,
    );
    store
        .save_task(Some(nightly_id), &nightly, Some(at("2026-11-08T07:00:00Z")))
        .await
        .unwrap();
    ids.insert(
        "r8",
        store.waiting_run(nightly_id).await.unwrap().unwrap().id,
    );

    ids.insert(
        "r7",
        start_now(store, Some(manual_id), "carol", "2026-11-07T18:00:00Z").await,
    );
    Page {
        app,
        ids,
        manual_task: manual_id,
    }
}

impl Page {
    fn label(&self, id: i64) -> &'static str {
        self.ids
            .iter()
            .find(|&(_, &run_id)| run_id == id)
            .map_or("(unknown)", |(label, _)| label)
    }

    /// One call: the labels of the rows, in order; the page must be the last.
    async fn listed(&self, request: proto::ListTasksRequest) -> Vec<&'static str> {
        let response = self
            .app
            .client
            .clone()
            .list_tasks(request.clone())
            .await
            .unwrap_or_else(|status| panic!("{request:?}: {status}"))
            .into_inner();
        assert_eq!(response.next_page_token, "", "{request:?}");
        response.runs.iter().map(|run| self.label(run.id)).collect()
    }

    /// Every row, walking pages of `page_size` from the first; returns the labels and
    /// the number of pages.
    async fn walk(
        &self,
        request: proto::ListTasksRequest,
        page_size: i32,
    ) -> (Vec<&'static str>, usize) {
        let mut labels = Vec::new();
        let mut pages = 0;
        let mut token = String::new();
        loop {
            let response = self
                .app
                .client
                .clone()
                .list_tasks(proto::ListTasksRequest {
                    page_size,
                    page_token: token,
                    ..request.clone()
                })
                .await
                .expect("list tasks")
                .into_inner();
            pages += 1;
            assert!(response.runs.len() <= page_size as usize);
            labels.extend(response.runs.iter().map(|run| self.label(run.id)));
            if response.next_page_token.is_empty() {
                return (labels, pages);
            }
            assert!(
                !response.runs.is_empty(),
                "a page with a next token has rows"
            );
            token = response.next_page_token;
        }
    }
}

async fn rows_come_newest_first_with_the_columns_of_the_page(backend: Backend) {
    let page = page(backend).await;
    let response = page
        .app
        .client
        .clone()
        .list_tasks(proto::ListTasksRequest::default())
        .await
        .expect("list tasks")
        .into_inner();
    let labels: Vec<&str> = response.runs.iter().map(|r| page.label(r.id)).collect();
    assert_eq!(labels, NEWEST_FIRST);
    assert_eq!(response.next_page_token, "");
    let row = |label: &str| {
        response
            .runs
            .iter()
            .find(|run| run.id == page.ids[label])
            .expect("listed")
    };

    let r5 = row("r5");
    assert_eq!(r5.task_description, "Nightly alis refresh");
    assert_eq!(r5.status, WireStatus::Failed as i32);
    assert_eq!(
        r5.scheduled_start.as_ref().map(from_wire),
        Some(at("2026-11-06T07:00:00Z"))
    );
    assert_eq!(
        r5.actual_start.as_ref().map(from_wire),
        Some(at("2026-11-06T07:02:00Z"))
    );
    assert_eq!(
        r5.end.as_ref().map(from_wire),
        Some(at("2026-11-06T07:03:00Z"))
    );
    assert_eq!(r5.run_by, "bob");
    assert_eq!(r5.error, "it failed");

    let r2 = row("r2");
    assert_eq!(r2.actual_start, None, "a missed run never started");
    assert!(r2.error.starts_with("missed"), "{}", r2.error);
    let r6 = row("r6");
    assert_eq!((r6.task_id, r6.task_description.as_str()), (0, ""));
    assert_eq!(r6.scheduled_start, None);
    assert_eq!(row("r7").status, WireStatus::InProgress as i32);
    assert_eq!(row("r7").end, None);
    assert_eq!(row("r9").status, WireStatus::Waiting as i32);
    assert_eq!(
        row("r9").run_by,
        "alice",
        "a planned run is run by who saved its task"
    );

    let with_report: BTreeSet<&str> = response
        .runs
        .iter()
        .filter(|run| run.has_report)
        .map(|run| page.label(run.id))
        .collect();
    assert_eq!(with_report, BTreeSet::from(["r1", "r4", "r5", "r6"]));
}

/// Each filter on its own, with the rows it must keep, in order.
fn single_filters() -> Vec<(&'static str, proto::ListTasksRequest, Vec<&'static str>)> {
    let request = proto::ListTasksRequest::default;
    vec![
        (
            "keyword, lower case",
            proto::ListTasksRequest {
                description_keyword: "alis".into(),
                ..request()
            },
            vec!["r9", "r8", "r5", "r4", "r2", "r1"],
        ),
        (
            "keyword, mixed case and blanks",
            proto::ListTasksRequest {
                description_keyword: "  aLIs ".into(),
                ..request()
            },
            vec!["r9", "r8", "r5", "r4", "r2", "r1"],
        ),
        (
            "keyword, inside a word",
            proto::ListTasksRequest {
                description_keyword: "RE-RUN".into(),
                ..request()
            },
            vec!["r7", "r3"],
        ),
        (
            "keyword matching nothing",
            proto::ListTasksRequest {
                description_keyword: "payroll".into(),
                ..request()
            },
            vec![],
        ),
        (
            "one status",
            proto::ListTasksRequest {
                statuses: statuses(&[WireStatus::Failed]),
                ..request()
            },
            vec!["r5", "r3", "r2"],
        ),
        (
            "a set of statuses",
            proto::ListTasksRequest {
                statuses: statuses(&[WireStatus::Waiting, WireStatus::InProgress]),
                ..request()
            },
            vec!["r9", "r8", "r7"],
        ),
        (
            "succeeded",
            proto::ListTasksRequest {
                statuses: statuses(&[WireStatus::Succeeded]),
                ..request()
            },
            vec!["r6", "r4", "r1"],
        ),
        (
            "scheduled start, from inclusive, to exclusive",
            proto::ListTasksRequest {
                scheduled_start: range(Some("2026-11-03T07:00:00Z"), Some("2026-11-08T07:00:00Z")),
                ..request()
            },
            vec!["r5", "r2"],
        ),
        (
            "actual start, from inclusive, to exclusive",
            proto::ListTasksRequest {
                actual_start: range(Some("2026-11-04T15:00:00Z"), Some("2026-11-07T10:00:00Z")),
                ..request()
            },
            vec!["r5", "r4", "r3"],
        ),
        (
            "actual start, open end",
            proto::ListTasksRequest {
                actual_start: range(Some("2026-11-07T00:00:00Z"), None),
                ..request()
            },
            vec!["r7", "r6"],
        ),
        (
            "end, open start",
            proto::ListTasksRequest {
                end: range(None, Some("2026-11-04T00:00:00Z")),
                ..request()
            },
            vec!["r2", "r1"],
        ),
        (
            "end, both bounds",
            proto::ListTasksRequest {
                end: range(Some("2026-11-05T00:00:00Z"), Some("2026-11-08T00:00:00Z")),
                ..request()
            },
            vec!["r6", "r5", "r4"],
        ),
        (
            "run by",
            proto::ListTasksRequest {
                run_by: "bob".into(),
                ..request()
            },
            vec!["r8", "r5", "r2"],
        ),
        (
            "run by the command line",
            proto::ListTasksRequest {
                run_by: "cli".into(),
                ..request()
            },
            vec!["r6"],
        ),
        (
            "run by nobody known",
            proto::ListTasksRequest {
                run_by: "mallory".into(),
                ..request()
            },
            vec![],
        ),
    ]
}

async fn each_filter_alone_keeps_exactly_its_rows(backend: Backend) {
    let page = page(backend).await;
    for (name, request, expected) in single_filters() {
        assert_eq!(page.listed(request).await, expected, "{name}");
    }
    let every_status = statuses(&[
        WireStatus::Waiting,
        WireStatus::InProgress,
        WireStatus::Succeeded,
        WireStatus::Failed,
    ]);
    assert_eq!(
        page.listed(proto::ListTasksRequest {
            statuses: every_status,
            ..Default::default()
        })
        .await,
        NEWEST_FIRST,
        "every status is no filter"
    );
}

/// Rows for the AND of all six filters: one that passes them all, and for each filter
/// a row that fails only that one (December 2026, UTC; filters: keyword "alis",
/// status FAILED, scheduled / started / ended in [Dec 1, Dec 10), run by bob).
///
/// | label      | task                 | scheduled | started  | ended    | status    | run by |
/// |------------|----------------------|-----------|----------|----------|-----------|--------|
/// | all        | Nightly ALiS refresh | 02 07:00  | 07:01    | 07:02    | FAILED    | bob    |
/// | keyword    | Quarterly audit      | 03 07:00  | 07:01    | 07:02    | FAILED    | bob    |
/// | status     | Nightly ALiS refresh | 04 07:00  | 07:01    | 07:02    | SUCCEEDED | bob    |
/// | scheduled  | Nightly ALiS refresh | –         | 05 08:00 | 08:01    | FAILED    | bob    |
/// | started    | Nightly ALiS refresh | 06 07:00  | –        | 06 20:00 | FAILED    | bob    |
/// | ended      | Nightly ALiS refresh | 07 07:00  | 07:01    | 10 01:00 | FAILED    | bob    |
/// | run by     | Weekly ALiS import   | 08 07:00  | 07:01    | 07:02    | FAILED    | alice  |
async fn and_page(backend: Backend) -> Page {
    let app = spawn_app(backend).await;
    let store = &app.store;
    let mut ids = BTreeMap::new();
    let nightly = draft("Nightly ALiS refresh", "bob", true);
    let audit = draft("Quarterly audit", "bob", true);
    let weekly = draft("Weekly ALiS import", "alice", true);
    let nightly_id = store.save_task(None, &nightly, None).await.unwrap().id;
    let audit_id = store.save_task(None, &audit, None).await.unwrap().id;
    let weekly_id = store.save_task(None, &weekly, None).await.unwrap().id;
    for (label, task_id, task, day, status) in [
        ("all", nightly_id, &nightly, "02", RunStatus::Failed),
        ("keyword", audit_id, &audit, "03", RunStatus::Failed),
        ("status", nightly_id, &nightly, "04", RunStatus::Succeeded),
        ("run by", weekly_id, &weekly, "08", RunStatus::Failed),
    ] {
        let run = plan_and_claim(
            store,
            task_id,
            task,
            &format!("2026-12-{day}T07:00:00Z"),
            &format!("2026-12-{day}T07:01:00Z"),
        )
        .await;
        finish(
            store,
            run,
            status,
            &format!("2026-12-{day}T07:02:00Z"),
            None,
        )
        .await;
        ids.insert(label, run);
    }
    let run = start_now(store, Some(nightly_id), "bob", "2026-12-05T08:00:00Z").await;
    finish(store, run, RunStatus::Failed, "2026-12-05T08:01:00Z", None).await;
    ids.insert("scheduled", run);
    store
        .save_task(Some(nightly_id), &nightly, Some(at("2026-12-06T07:00:00Z")))
        .await
        .unwrap();
    let run = store.waiting_run(nightly_id).await.unwrap().unwrap().id;
    assert!(
        store
            .fail_waiting_run(run, "missed", at("2026-12-06T20:00:00Z"))
            .await
            .unwrap()
    );
    ids.insert("started", run);
    let run = plan_and_claim(
        store,
        nightly_id,
        &nightly,
        "2026-12-07T07:00:00Z",
        "2026-12-07T07:01:00Z",
    )
    .await;
    finish(store, run, RunStatus::Failed, "2026-12-10T01:00:00Z", None).await;
    ids.insert("ended", run);
    Page {
        app,
        ids,
        manual_task: 0,
    }
}

/// All six filters at once keep only the row that passes every one of them; without
/// any one of them, exactly the row that fails only that one comes back too. So each
/// filter takes part, and they combine with AND.
async fn filters_combine_with_and(backend: Backend) {
    let page = and_page(backend).await;
    let december = || range(Some("2026-12-01T00:00:00Z"), Some("2026-12-10T00:00:00Z"));
    let all = proto::ListTasksRequest {
        description_keyword: "alis".into(),
        statuses: statuses(&[WireStatus::Failed]),
        scheduled_start: december(),
        actual_start: december(),
        end: december(),
        run_by: "bob".into(),
        ..Default::default()
    };
    assert_eq!(page.listed(all.clone()).await, ["all"]);

    let without = [
        (
            "keyword",
            proto::ListTasksRequest {
                description_keyword: String::new(),
                ..all.clone()
            },
        ),
        (
            "status",
            proto::ListTasksRequest {
                statuses: Vec::new(),
                ..all.clone()
            },
        ),
        (
            "scheduled",
            proto::ListTasksRequest {
                scheduled_start: None,
                ..all.clone()
            },
        ),
        (
            "started",
            proto::ListTasksRequest {
                actual_start: None,
                ..all.clone()
            },
        ),
        (
            "ended",
            proto::ListTasksRequest {
                end: None,
                ..all.clone()
            },
        ),
        (
            "run by",
            proto::ListTasksRequest {
                run_by: String::new(),
                ..all.clone()
            },
        ),
    ];
    for (dropped, request) in without {
        assert_eq!(
            page.listed(request).await,
            [dropped, "all"],
            "without the {dropped} filter"
        );
    }
}

async fn pages_of_two_walk_every_row_exactly_once_and_end_with_an_empty_token(backend: Backend) {
    let page = page(backend).await;
    let (labels, pages) = page.walk(proto::ListTasksRequest::default(), 2).await;
    assert_eq!(labels, NEWEST_FIRST);
    assert_eq!(pages, 5, "9 rows: four full pages and one of one row");

    // Six rows: three full pages and no empty fourth.
    let alis = proto::ListTasksRequest {
        description_keyword: "alis".into(),
        ..Default::default()
    };
    let (labels, pages) = page.walk(alis, 2).await;
    assert_eq!(labels, ["r9", "r8", "r5", "r4", "r2", "r1"]);
    assert_eq!(pages, 3);

    // A newer row appears between two pages: the walk goes on where it was, with no
    // row repeated or skipped.
    let first = page
        .app
        .client
        .clone()
        .list_tasks(proto::ListTasksRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut walked: Vec<&str> = first.runs.iter().map(|r| page.label(r.id)).collect();
    let manual = draft("Manual re-run", "carol", true);
    let newest = page
        .app
        .store
        .save_task(
            Some(page.manual_task),
            &manual,
            Some(at("2026-11-20T11:00:00Z")),
        )
        .await
        .unwrap();
    let mut token = first.next_page_token;
    while !token.is_empty() {
        let next = page
            .app
            .client
            .clone()
            .list_tasks(proto::ListTasksRequest {
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        walked.extend(next.runs.iter().map(|r| page.label(r.id)));
        token = next.next_page_token;
    }
    assert_eq!(walked, NEWEST_FIRST);
    let (labels, _) = page.walk(proto::ListTasksRequest::default(), 2).await;
    assert_eq!(labels.len(), NEWEST_FIRST.len() + 1);
    assert_eq!(
        labels[0], "(unknown)",
        "the new row of task {} comes first",
        newest.id
    );
    assert_eq!(labels[1..], NEWEST_FIRST);
}
