//! The gRPC API: `alis.certimport.v1.CertImportService`.
//!
//! # Layout
//!
//! - [`proto`]: the generated types (the one `include_proto!` site).
//! - [`convert`]: request fields into domain values, stored values into messages.
//! - [`error`]: the one error → `Status` table.
//! - [`auth`]: bearer tokens and roles: who may call what.
//! - [`identity`]: who is calling, set on each request by the auth interceptor.
//!
//! Handlers are thin: validate, call the store or the worker, convert.

pub mod auth;
pub mod convert;
pub mod error;
pub mod identity;
pub mod proto;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use self::auth::{Role, require};
use self::error::ApiError;
use self::proto::cert_import_service_server::CertImportService;
use crate::clock::Clock;
use crate::lock::{Grant, LeaseDesk, LeaseHolder, LeaseId, LeaseTtl, NewLease, Release};
use crate::store::{NewRun, RunStatus, StartedRun, Store, TaskDraft};
use crate::worker::Worker;

/// Rows per ListTasks page when the request does not say.
const DEFAULT_PAGE_SIZE: u32 = 50;
/// The most rows a ListTasks page returns.
const MAX_PAGE_SIZE: u32 = 500;
/// The largest chunk DownloadReport sends.
const REPORT_CHUNK: usize = 1024 * 1024;
/// How often WatchRun looks at the run (it may execute on another replica).
const WATCH_POLL: Duration = Duration::from_millis(200);

/// The service's state, shared by every request.
#[derive(Debug, Clone)]
pub struct CertImportApi {
    store: Store,
    leases: LeaseDesk,
    worker: Worker,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
    lease_max_ttl: Duration,
}

impl CertImportApi {
    /// The API over a store, starting runs on `worker`. Opens the lease desk on the
    /// current runtime.
    pub fn new(
        store: Store,
        worker: Worker,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            leases: LeaseDesk::open(store.clone(), worker.own_import()),
            store,
            worker,
            clock,
            shutdown,
            lease_max_ttl: crate::lock::LockSettings::default().max_ttl,
        }
    }

    /// The longest edit lease granted (`--lease-max-ttl`).
    pub fn with_lease_max_ttl(mut self, max: Duration) -> Self {
        self.lease_max_ttl = max;
        self
    }
}

fn id(value: i64, field: &str) -> Result<i64, ApiError> {
    if value > 0 {
        Ok(value)
    } else {
        Err(ApiError::invalid(field, "must be a positive id"))
    }
}

type ReportStream =
    Pin<Box<dyn Stream<Item = Result<proto::DownloadReportResponse, Status>> + Send>>;

type WatchStream = Pin<Box<dyn Stream<Item = Result<proto::WatchRunResponse, Status>> + Send>>;

#[tonic::async_trait]
impl CertImportService for CertImportApi {
    async fn schedule_task(
        &self,
        request: Request<proto::ScheduleTaskRequest>,
    ) -> Result<Response<proto::ScheduleTaskResponse>, Status> {
        let saved_by = require(&request, Role::Operator)?.subject;
        let request = request.into_inner();
        let schedule = convert::task_schedule(&request)?;
        let description = convert::task_description(&request.description)
            .map_err(|(f, d)| ApiError::InvalidArgument(vec![(f, d)]))?;
        let task_id = (request.task_id != 0).then_some(request.task_id);
        if let Some(task_id) = task_id {
            id(task_id, "task_id")?;
        }
        let next = request
            .active
            .then(|| schedule.next_occurrence(self.clock.now()))
            .flatten();
        let draft = TaskDraft {
            description,
            active: request.active,
            schedule,
            saved_by,
        };
        let task = self
            .store
            .save_task(task_id, &draft, next)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(proto::ScheduleTaskResponse {
            task: Some(convert::task(&task, next)),
        }))
    }

    async fn get_task(
        &self,
        request: Request<proto::GetTaskRequest>,
    ) -> Result<Response<proto::GetTaskResponse>, Status> {
        require(&request, Role::Viewer)?;
        let task_id = id(request.get_ref().task_id, "task_id")?;
        let task = self
            .store
            .get_task(task_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("task {task_id}")))?;
        let next = self
            .store
            .waiting_run(task_id)
            .await
            .map_err(ApiError::from)?;
        let next = next.and_then(|run| run.scheduled_for);
        Ok(Response::new(proto::GetTaskResponse {
            task: Some(convert::task(&task, next)),
        }))
    }

    async fn delete_task(
        &self,
        request: Request<proto::DeleteTaskRequest>,
    ) -> Result<Response<proto::DeleteTaskResponse>, Status> {
        require(&request, Role::Operator)?;
        let task_id = id(request.get_ref().task_id, "task_id")?;
        if !self
            .store
            .delete_task(task_id)
            .await
            .map_err(ApiError::from)?
        {
            return Err(ApiError::NotFound(format!("task {task_id}")).into());
        }
        Ok(Response::new(proto::DeleteTaskResponse {}))
    }

    async fn list_tasks(
        &self,
        request: Request<proto::ListTasksRequest>,
    ) -> Result<Response<proto::ListTasksResponse>, Status> {
        require(&request, Role::Viewer)?;
        let request = request.into_inner();
        let filter = convert::run_filter(&request)?;
        let page_size = match u32::try_from(request.page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(n) if n <= MAX_PAGE_SIZE => n,
            _ => {
                return Err(ApiError::invalid(
                    "page_size",
                    format!("must be between 0 and {MAX_PAGE_SIZE}"),
                )
                .into());
            }
        };
        let token = (!request.page_token.is_empty()).then_some(request.page_token.as_str());
        let page = self
            .store
            .list_runs(&filter, page_size, token)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::InvalidPageToken => {
                    ApiError::invalid("page_token", "not a token this service issued")
                }
                other => ApiError::from(other),
            })?;
        Ok(Response::new(proto::ListTasksResponse {
            runs: page.runs.iter().map(convert::run).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn run_now(
        &self,
        request: Request<proto::RunNowRequest>,
    ) -> Result<Response<proto::RunNowResponse>, Status> {
        let run_by = require(&request, Role::Operator)?.subject;
        let request = request.into_inner();
        let task_id = id(request.task_id, "task_id")?;
        if self
            .store
            .get_task(task_id)
            .await
            .map_err(ApiError::from)?
            .is_none()
        {
            return Err(ApiError::NotFound(format!("task {task_id}")).into());
        }
        let key = request.idempotency_key.trim();
        if key.len() > 200 {
            return Err(ApiError::invalid("idempotency_key", "must be at most 200 bytes").into());
        }
        let start = self
            .store
            .start_run_now(
                &NewRun {
                    task_id: Some(task_id),
                    run_by,
                    dry_run: request.dry_run,
                    force: request.force,
                },
                (!key.is_empty()).then_some(key),
                self.worker.owner(),
                self.clock.now(),
            )
            .await
            .map_err(ApiError::from)?;
        let run = match start {
            StartedRun::Started(run) => {
                self.worker.spawn(run.clone());
                run
            }
            StartedRun::Existing(run) => run,
            StartedRun::Busy { running } => {
                return Err(ApiError::ImportRunning { run_id: running.id }.into());
            }
        };
        Ok(Response::new(proto::RunNowResponse {
            run: Some(convert::run(&run)),
        }))
    }

    async fn get_run(
        &self,
        request: Request<proto::GetRunRequest>,
    ) -> Result<Response<proto::GetRunResponse>, Status> {
        require(&request, Role::Viewer)?;
        let run_id = id(request.get_ref().run_id, "run_id")?;
        let run = self
            .store
            .get_run(run_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("run {run_id}")))?;
        Ok(Response::new(proto::GetRunResponse {
            run: Some(convert::run(&run)),
        }))
    }

    type WatchRunStream = WatchStream;

    async fn watch_run(
        &self,
        request: Request<proto::WatchRunRequest>,
    ) -> Result<Response<Self::WatchRunStream>, Status> {
        require(&request, Role::Viewer)?;
        let run_id = id(request.get_ref().run_id, "run_id")?;
        let first = self
            .store
            .get_run(run_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("run {run_id}")))?;
        let store = self.store.clone();
        let shutdown = self.shutdown.clone();
        let stream = async_stream(first, move |previous| {
            let store = store.clone();
            let shutdown = shutdown.clone();
            async move {
                loop {
                    if matches!(previous.status, RunStatus::Succeeded | RunStatus::Failed) {
                        return None;
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => {
                            return Some(Err(Status::unavailable("the server is shutting down")));
                        }
                        () = tokio::time::sleep(WATCH_POLL) => {}
                    }
                    match store.get_run(previous.id).await {
                        Ok(Some(run))
                            if run.status != previous.status
                                || run.phase != previous.phase
                                || run.phase_detail != previous.phase_detail =>
                        {
                            return Some(Ok(run));
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            return Some(Err(Status::not_found(format!(
                                "run {} was deleted",
                                previous.id
                            ))));
                        }
                        Err(error) => return Some(Err(ApiError::from(error).into())),
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_report(
        &self,
        request: Request<proto::GetReportRequest>,
    ) -> Result<Response<proto::GetReportResponse>, Status> {
        require(&request, Role::Viewer)?;
        let run_id = id(request.get_ref().run_id, "run_id")?;
        let summary = self
            .store
            .report_summary(run_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("report of run {run_id}")))?;
        let summary_json = serde_json::to_string_pretty(&summary)
            .map_err(|e| Status::internal(format!("cannot encode the summary: {e}")))?;
        Ok(Response::new(proto::GetReportResponse {
            summary: Some(convert::summary(&summary)),
            summary_json,
        }))
    }

    type DownloadReportStream = ReportStream;

    async fn download_report(
        &self,
        request: Request<proto::DownloadReportRequest>,
    ) -> Result<Response<Self::DownloadReportStream>, Status> {
        require(&request, Role::Viewer)?;
        let run_id = id(request.get_ref().run_id, "run_id")?;
        let pdf = self
            .store
            .report_pdf(run_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("PDF report of run {run_id}")))?;
        let total_size = i64::try_from(pdf.len()).unwrap_or(i64::MAX);
        let chunks: Vec<Result<proto::DownloadReportResponse, Status>> = pdf
            .chunks(REPORT_CHUNK)
            .map(|chunk| {
                Ok(proto::DownloadReportResponse {
                    chunk: chunk.to_vec(),
                    total_size,
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn get_run_log(
        &self,
        request: Request<proto::GetRunLogRequest>,
    ) -> Result<Response<proto::GetRunLogResponse>, Status> {
        require(&request, Role::Viewer)?;
        let run_id = id(request.get_ref().run_id, "run_id")?;
        if self
            .store
            .get_run(run_id)
            .await
            .map_err(ApiError::from)?
            .is_none()
        {
            return Err(ApiError::NotFound(format!("run {run_id}")).into());
        }
        let entries = self.store.run_log(run_id).await.map_err(ApiError::from)?;
        Ok(Response::new(proto::GetRunLogResponse {
            entries: entries.iter().map(convert::log_entry).collect(),
        }))
    }

    async fn acquire_cert_lock(
        &self,
        request: Request<proto::AcquireCertLockRequest>,
    ) -> Result<Response<proto::AcquireCertLockResponse>, Status> {
        let subject = require(&request, Role::CertEditor)?.subject;
        let request = request.into_inner();
        let holder = LeaseHolder::parse(&request.holder).map_err(|d| ("holder".to_owned(), d));
        let ttl = LeaseTtl::parse(
            request.ttl.map(|ttl| (ttl.seconds, ttl.nanos)),
            self.lease_max_ttl,
        )
        .map_err(|d| ("ttl".to_owned(), d));
        let (holder, ttl) = match (holder, ttl) {
            (Ok(holder), Ok(ttl)) => (holder, ttl),
            (holder, ttl) => {
                let violations = [holder.err(), ttl.err()].into_iter().flatten().collect();
                return Err(ApiError::InvalidArgument(violations).into());
            }
        };
        let now = self.clock.now();
        let lease = NewLease {
            id: LeaseId::random(),
            holder,
            subject,
            acquired_at: now,
            expires_at: convert::after(now, ttl.get()),
        };
        match self.leases.grant(lease).await.map_err(ApiError::from)? {
            Grant::Granted(lease) => Ok(Response::new(proto::AcquireCertLockResponse {
                lease: Some(convert::lease(&lease)),
            })),
            Grant::Refused(refusal) => {
                crate::telemetry::metrics().record_lease_refused();
                tracing::info!(
                    run_id = refusal.run_id,
                    lock_state = refusal.state.as_str(),
                    "edit lease refused: an import wants or holds the certification lock"
                );
                Err(ApiError::ImportInProgress(refusal).into())
            }
        }
    }

    async fn release_cert_lock(
        &self,
        request: Request<proto::ReleaseCertLockRequest>,
    ) -> Result<Response<proto::ReleaseCertLockResponse>, Status> {
        let subject = require(&request, Role::CertEditor)?.subject;
        let id = LeaseId::parse(&request.get_ref().lease_id)
            .map_err(|d| ApiError::invalid("lease_id", d))?;
        match self
            .leases
            .release(id.clone(), subject)
            .await
            .map_err(ApiError::from)?
        {
            Release::Released | Release::Unknown => {
                Ok(Response::new(proto::ReleaseCertLockResponse {}))
            }
            Release::NotYours => Err(ApiError::PermissionDenied(format!(
                "lease {id} was taken by another identity; only it may release the lease"
            ))
            .into()),
        }
    }
}

/// A stream that yields `first`, then whatever `next(previous)` yields until it
/// returns `None` (the run ended). Items are converted to WatchRun messages.
fn async_stream<F, Fut>(
    first: crate::store::RunRecord,
    next: F,
) -> impl Stream<Item = Result<proto::WatchRunResponse, Status>> + Send
where
    F: Fn(crate::store::RunRecord) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<Result<crate::store::RunRecord, Status>>> + Send,
{
    let message = |run: &crate::store::RunRecord| proto::WatchRunResponse {
        run: Some(convert::run(run)),
        detail: run.phase_detail.clone().unwrap_or_default(),
    };
    let initial = message(&first);
    let next = Arc::new(next);
    let rest = futures_util::stream::unfold(Some(first), move |state| {
        let next = Arc::clone(&next);
        async move {
            let previous = state?;
            match next(previous).await? {
                Ok(run) => Some((Ok(message(&run)), Some(run))),
                Err(status) => Some((Err(status), None)),
            }
        }
    });
    tokio_stream::StreamExt::chain(tokio_stream::once(Ok(initial)), rest)
}
