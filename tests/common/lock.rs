//! Helpers for the certification lock's tests: leases through the real API, waiting on
//! a run's observable state, the refusal's exact shape, and raw SQL as the ERP would
//! write it.

use std::time::Duration;

use alis_import::api::proto::{self, Weekday};
use alis_import::sample::SampleSpec;
use alis_import::store::{RunRecord, Store};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::app::TestApp;

pub type Client = proto::cert_import_service_client::CertImportServiceClient<Channel>;

/// The message every refusal carries, exactly.
pub const IN_PROGRESS: &str = "Certification data update is in Progress.";

/// How long a test waits for an observable state before failing.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A district of 40 employees and a statewide file of 300 educators.
pub fn small_sample() -> SampleSpec {
    SampleSpec {
        statewide_educators: 300,
        employees: 40,
        ..SampleSpec::default()
    }
}

/// An active weekly task.
pub async fn create_task(app: &TestApp) -> proto::Task {
    app.client
        .clone()
        .schedule_task(proto::ScheduleTaskRequest {
            task_id: 0,
            description: "Weekly ALiS import".into(),
            active: true,
            start_date: "2026-11-30".into(),
            start_time: "06:00".into(),
            weekdays: vec![Weekday::Monday as i32],
            time_zone: "America/New_York".into(),
        })
        .await
        .expect("schedule task")
        .into_inner()
        .task
        .expect("task")
}

/// Starts an import of `task_id` now.
pub async fn run_now(client: &Client, task_id: i64) -> proto::Run {
    client
        .clone()
        .run_now(proto::RunNowRequest {
            task_id,
            ..Default::default()
        })
        .await
        .expect("run now")
        .into_inner()
        .run
        .expect("run")
}

/// Asks for a lease.
pub async fn acquire(
    client: &Client,
    holder: &str,
    ttl: Option<Duration>,
) -> Result<proto::CertLease, Status> {
    client
        .clone()
        .acquire_cert_lock(proto::AcquireCertLockRequest {
            holder: holder.into(),
            ttl: ttl.map(|ttl| prost_types::Duration {
                seconds: ttl.as_secs() as i64,
                nanos: ttl.subsec_nanos() as i32,
            }),
        })
        .await
        .map(|response| response.into_inner().lease.expect("lease"))
}

/// Ends a lease.
pub async fn release(client: &Client, lease_id: &str) -> Result<(), Status> {
    client
        .clone()
        .release_cert_lock(proto::ReleaseCertLockRequest {
            lease_id: lease_id.into(),
        })
        .await
        .map(|_| ())
}

/// Asserts that `status` is the refusal of design §4 naming run `run_id`.
pub fn assert_refused_for(status: &Status, run_id: i64) {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(status.message(), IN_PROGRESS);
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo detail");
    assert_eq!(info.reason, "IMPORT_IN_PROGRESS");
    assert_eq!(info.domain, "alis-import");
    assert_eq!(
        info.metadata.get("run_id"),
        Some(&run_id.to_string()),
        "{info:?}"
    );
    let retry = details.retry_info().expect("RetryInfo detail");
    assert!(
        retry.retry_delay.is_some_and(|d| d > Duration::ZERO),
        "{retry:?}"
    );
}

/// Polls run `run_id` until `done` holds, failing after [`DEADLINE`].
pub async fn wait_for_run(
    store: &Store,
    run_id: i64,
    what: &str,
    done: impl Fn(&RunRecord) -> bool,
) -> RunRecord {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let run = store
            .get_run(run_id)
            .await
            .expect("read run")
            .expect("run exists");
        if done(&run) {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {run_id} never {what}: {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a run is at `phase`.
pub fn at_phase(run: &RunRecord, phase: &str) -> bool {
    run.phase.as_deref() == Some(phase)
}

/// Whether a run has ended.
pub fn ended(run: &RunRecord) -> bool {
    run.ended_at.is_some()
}

/// Runs one statement as the ERP's edit service would, outside the service; the
/// database's message on failure.
pub async fn try_sql(store: &Store, sql: &str) -> Result<u64, String> {
    let message = |error: sqlx::Error| match error {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    };
    let sql = || sqlx::AssertSqlSafe(sql.to_owned());
    match store {
        Store::Postgres(pool) => sqlx::query(sql())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(message),
        Store::Sqlite(pool) => sqlx::query(sql())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(message),
    }
}

/// One integer from a query.
pub async fn scalar(store: &Store, sql: &str) -> i64 {
    let sql = || sqlx::AssertSqlSafe(sql.to_owned());
    match store {
        Store::Postgres(pool) => sqlx::query_scalar(sql()).fetch_one(pool).await,
        Store::Sqlite(pool) => sqlx::query_scalar(sql()).fetch_one(pool).await,
    }
    .unwrap_or_else(|e| panic!("{e}"))
}
