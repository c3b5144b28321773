//! The CLI's gRPC client commands: `run-now`, `tasks …`, `report …`. They talk to a
//! running service, as operators and the Kubernetes CronJob do.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::path::PathBuf;

use tonic::codegen::InterceptedService;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity as TlsIdentity};

use crate::api::proto;
use crate::api::proto::cert_import_service_client::CertImportServiceClient;

/// How to reach the service. Every flag is global, so it may also follow the
/// subcommand (`tasks list --server URL`), as operators type it.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The service's address (`https://…` for TLS).
    #[arg(
        long,
        global = true,
        env = "ALIS_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,

    /// CA certificate (PEM) that signs the server's certificate.
    #[arg(long, global = true, env = "ALIS_CA_FILE")]
    pub ca: Option<PathBuf>,

    /// Client certificate (PEM), for a server that requires mTLS.
    #[arg(long, global = true, env = "ALIS_CERT_FILE", requires = "key")]
    pub cert: Option<PathBuf>,

    /// Client private key (PEM).
    #[arg(long, global = true, env = "ALIS_KEY_FILE", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Bearer token (prefer `--token-file`: a command line is visible to other users).
    #[arg(
        long,
        global = true,
        env = "ALIS_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub token: Option<Token>,

    /// File holding the bearer token.
    #[arg(long, global = true, env = "ALIS_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

/// A bearer token; never printed.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl std::str::FromStr for Token {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.trim().to_owned()))
    }
}

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The client type the commands use.
pub type Client = CertImportServiceClient<InterceptedService<Channel, Bearer>>;

impl ServerArgs {
    /// Connects with the TLS and token settings given.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let read = |path: &PathBuf| {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        };
        let mut endpoint = Channel::from_shared(self.server.clone())
            .with_context(|| format!("not a server address: {}", self.server))?;
        if self.server.starts_with("https://") || self.ca.is_some() || self.cert.is_some() {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &self.ca {
                tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
            }
            if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
                tls = tls.identity(TlsIdentity::from_pem(read(cert)?, read(key)?));
            }
            endpoint = endpoint.tls_config(tls).context("TLS settings")?;
        }
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot reach alis-import at {}", self.server))?;
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => Some(token.0.clone()),
            (None, Some(path)) => Some(
                String::from_utf8(read(path)?)
                    .context("the token file is not text")?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let header = token
            .map(|t| {
                MetadataValue::try_from(format!("Bearer {t}"))
                    .context("the token holds characters a header cannot")
            })
            .transpose()?;
        Ok(CertImportServiceClient::with_interceptor(
            channel,
            Bearer(header),
        ))
    }
}

/// `run-now`: start an import for a task.
#[derive(Debug, Args)]
pub struct RunNowArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The task to run.
    #[arg(long)]
    task: i64,
    /// Follow the run until it ends; exit non-zero if it fails.
    #[arg(long)]
    wait: bool,
    /// Compute and report everything, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Pass the mass-deletion guard.
    #[arg(long)]
    force: bool,
    /// The same key returns the same run (a CronJob passes its scheduled slot).
    #[arg(long)]
    idempotency_key: Option<String>,
}

impl RunNowArgs {
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        let mut client = self.server.connect().await?;
        let run = client
            .run_now(proto::RunNowRequest {
                task_id: self.task,
                dry_run: self.dry_run,
                force: self.force,
                idempotency_key: self.idempotency_key.unwrap_or_default(),
            })
            .await
            .map_err(status_error)?
            .into_inner()
            .run
            .context("the server returned no run")?;
        println!("run {} {}", run.id, status_name(run.status));
        if !self.wait {
            return Ok(ExitCode::SUCCESS);
        }
        let mut updates = client
            .watch_run(proto::WatchRunRequest { run_id: run.id })
            .await
            .map_err(status_error)?
            .into_inner();
        let mut last = run;
        while let Some(update) = updates.message().await.map_err(status_error)? {
            if let Some(run) = update.run {
                eprintln!(
                    "run {}: {} {}{}",
                    run.id,
                    status_name(run.status),
                    phase_name(run.phase),
                    if update.detail.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", update.detail)
                    }
                );
                last = run;
            }
        }
        if last.status == proto::RunStatus::Succeeded as i32 {
            println!("run {} SUCCEEDED", last.id);
            Ok(ExitCode::SUCCESS)
        } else {
            println!(
                "run {} {}: {}",
                last.id,
                status_name(last.status),
                last.error
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `tasks …`: the task list and schedules.
#[derive(Debug, Args)]
pub struct TasksArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: TasksCommand,
}

#[derive(Debug, Subcommand)]
enum TasksCommand {
    /// The runs of the task list, newest first.
    List {
        /// Part of the task description.
        #[arg(long)]
        keyword: Option<String>,
        /// Only these statuses (WAITING, IN_PROGRESS, SUCCEEDED, FAILED).
        #[arg(long = "status")]
        statuses: Vec<String>,
        /// Only runs by this user.
        #[arg(long)]
        run_by: Option<String>,
        /// Rows per page.
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        /// Follow every page, not just the first.
        #[arg(long)]
        all: bool,
    },
    /// Create a task, or update one with `--id`.
    Schedule {
        /// The task to update.
        #[arg(long)]
        id: Option<i64>,
        /// Shown in the task list.
        #[arg(long)]
        description: String,
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        start_date: String,
        /// Wall-clock time, HH:MM.
        #[arg(long)]
        time: String,
        /// Weekdays (MON … SUN); none means once.
        #[arg(long = "weekday")]
        weekdays: Vec<String>,
        /// IANA time zone (default America/New_York).
        #[arg(long)]
        time_zone: Option<String>,
        /// Save it inactive (not scheduled).
        #[arg(long)]
        inactive: bool,
    },
    /// Show one task.
    Get {
        /// Task id.
        id: i64,
    },
    /// Delete a task (its past runs stay).
    Delete {
        /// Task id.
        id: i64,
    },
}

impl TasksArgs {
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        let mut client = self.server.connect().await?;
        match self.command {
            TasksCommand::List {
                keyword,
                statuses,
                run_by,
                page_size,
                all,
            } => {
                let statuses = statuses
                    .iter()
                    .map(|s| {
                        proto::RunStatus::from_str_name(&format!("RUN_STATUS_{}", s.to_uppercase()))
                            .map(|s| s as i32)
                            .with_context(|| format!("unknown status {s}"))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let mut page_token = String::new();
                println!(
                    "{:>6}  {:<11}  {:<20}  {:<20}  {:<20}  {:<12}  REPORT  TASK",
                    "RUN", "STATUS", "SCHEDULED", "STARTED", "ENDED", "RUN BY"
                );
                loop {
                    let page = client
                        .list_tasks(proto::ListTasksRequest {
                            description_keyword: keyword.clone().unwrap_or_default(),
                            statuses: statuses.clone(),
                            run_by: run_by.clone().unwrap_or_default(),
                            page_size,
                            page_token: page_token.clone(),
                            ..Default::default()
                        })
                        .await
                        .map_err(status_error)?
                        .into_inner();
                    for run in &page.runs {
                        println!(
                            "{:>6}  {:<11}  {:<20}  {:<20}  {:<20}  {:<12}  {:<6}  {}",
                            run.id,
                            status_name(run.status),
                            time(run.scheduled_start.as_ref()),
                            time(run.actual_start.as_ref()),
                            time(run.end.as_ref()),
                            run.run_by,
                            if run.has_report { "yes" } else { "-" },
                            run.task_description
                        );
                    }
                    if !all || page.next_page_token.is_empty() {
                        break;
                    }
                    page_token = page.next_page_token;
                }
            }
            TasksCommand::Schedule {
                id,
                description,
                start_date,
                time,
                weekdays,
                time_zone,
                inactive,
            } => {
                let weekdays = weekdays
                    .iter()
                    .map(|d| weekday(d).with_context(|| format!("unknown weekday {d}")))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let task = client
                    .schedule_task(proto::ScheduleTaskRequest {
                        task_id: id.unwrap_or(0),
                        description,
                        active: !inactive,
                        start_date,
                        start_time: time,
                        weekdays,
                        time_zone: time_zone.unwrap_or_default(),
                    })
                    .await
                    .map_err(status_error)?
                    .into_inner()
                    .task;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&task_json(task.as_ref()))?
                );
            }
            TasksCommand::Get { id } => {
                let task = client
                    .get_task(proto::GetTaskRequest { task_id: id })
                    .await
                    .map_err(status_error)?
                    .into_inner()
                    .task;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&task_json(task.as_ref()))?
                );
            }
            TasksCommand::Delete { id } => {
                client
                    .delete_task(proto::DeleteTaskRequest { task_id: id })
                    .await
                    .map_err(status_error)?;
                println!("task {id} deleted");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `report …`: a run's summary and log.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: ReportCommand,
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// Print a run's summary as JSON, or with `-o` save its PDF report.
    Get {
        /// Run id.
        run: i64,
        /// Write the PDF report to this file instead.
        #[arg(short = 'o', long = "output")]
        output: Option<std::path::PathBuf>,
    },
    /// Print a run's log (skipped names, fallbacks, connection errors).
    Log {
        /// Run id.
        run: i64,
    },
}

impl ReportArgs {
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        let mut client = self.server.connect().await?;
        match self.command {
            ReportCommand::Get {
                run,
                output: Some(path),
            } => {
                let mut chunks = client
                    .download_report(proto::DownloadReportRequest { run_id: run })
                    .await
                    .map_err(status_error)?
                    .into_inner();
                let mut pdf = Vec::new();
                while let Some(chunk) = chunks.message().await.map_err(status_error)? {
                    pdf.extend_from_slice(&chunk.chunk);
                }
                std::fs::write(&path, &pdf)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("{} ({} bytes)", path.display(), pdf.len());
            }
            ReportCommand::Get { run, output: None } => {
                let report = client
                    .get_report(proto::GetReportRequest { run_id: run })
                    .await
                    .map_err(status_error)?
                    .into_inner();
                println!("{}", report.summary_json);
            }
            ReportCommand::Log { run } => {
                let log = client
                    .get_run_log(proto::GetRunLogRequest { run_id: run })
                    .await
                    .map_err(status_error)?
                    .into_inner();
                for entry in log.entries {
                    let level = proto::LogLevel::try_from(entry.level)
                        .map(|l| l.as_str_name().trim_start_matches("LOG_LEVEL_"))
                        .unwrap_or("?");
                    println!(
                        "{}  {:<5}  {}",
                        time(entry.at.as_ref()),
                        level,
                        entry.message
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// A gRPC error as the operator should read it.
fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}

fn status_name(status: i32) -> &'static str {
    proto::RunStatus::try_from(status)
        .map(|s| s.as_str_name().trim_start_matches("RUN_STATUS_"))
        .unwrap_or("UNKNOWN")
}

fn phase_name(phase: i32) -> &'static str {
    proto::RunPhase::try_from(phase)
        .map(|p| p.as_str_name().trim_start_matches("RUN_PHASE_"))
        .unwrap_or("UNKNOWN")
}

fn time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok())
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

fn weekday(name: &str) -> Option<i32> {
    let upper = name.trim().to_uppercase();
    let full = match upper.get(..3)? {
        "MON" => proto::Weekday::Monday,
        "TUE" => proto::Weekday::Tuesday,
        "WED" => proto::Weekday::Wednesday,
        "THU" => proto::Weekday::Thursday,
        "FRI" => proto::Weekday::Friday,
        "SAT" => proto::Weekday::Saturday,
        "SUN" => proto::Weekday::Sunday,
        _ => return None,
    };
    Some(full as i32)
}

fn task_json(task: Option<&proto::Task>) -> serde_json::Value {
    let Some(task) = task else {
        return serde_json::Value::Null;
    };
    serde_json::json!({
        "id": task.id,
        "description": task.description,
        "active": task.active,
        "start_date": task.start_date,
        "start_time": task.start_time,
        "weekdays": task.weekdays.iter().map(|d| proto::Weekday::try_from(*d).map(|w| w.as_str_name()).unwrap_or("?")).collect::<Vec<_>>(),
        "time_zone": task.time_zone,
        "saved_by": task.saved_by,
        "next_occurrence": time(task.next_occurrence.as_ref()),
    })
}
