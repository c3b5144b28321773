//! Between the wire and the domain: request fields become domain values (or field
//! violations), stored values become proto messages.

use jiff::Timestamp;
use jiff::civil::Weekday as CivilWeekday;

use super::error::ApiError;
use super::proto;
use crate::import::summary::{ExpiringRecord, Summary};
use crate::scheduler::occurrence::TaskSchedule;
use crate::store::{LogEntry, LogLevel, RunFilter, RunRecord, RunStatus, Task, TimeRange};

/// The longest task description accepted.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// A task description: trimmed, 1 to 200 characters.
pub fn task_description(raw: &str) -> Result<String, (String, String)> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    if chars == 0 {
        return Err(("description".into(), "must not be blank".into()));
    }
    if chars > MAX_DESCRIPTION_CHARS {
        return Err((
            "description".into(),
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters, got {chars}"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// A task's schedule from a ScheduleTask request; every bad field is reported.
pub fn task_schedule(request: &proto::ScheduleTaskRequest) -> Result<TaskSchedule, ApiError> {
    let mut violations = Vec::new();
    let description = task_description(&request.description).err();
    violations.extend(description);
    let mut weekdays = Vec::new();
    for value in &request.weekdays {
        match proto::Weekday::try_from(*value).ok().and_then(weekday_name) {
            Some(name) => weekdays.push(name.to_owned()),
            None => violations.push(("weekdays".into(), format!("not a weekday: {value}"))),
        }
    }
    let zone = (!request.time_zone.trim().is_empty()).then_some(request.time_zone.trim());
    let schedule = TaskSchedule::parse(&request.start_date, &request.start_time, &weekdays, zone);
    match schedule {
        Ok(schedule) if violations.is_empty() => Ok(schedule),
        Ok(_) => Err(ApiError::InvalidArgument(violations)),
        Err(error) => {
            violations.extend(
                error
                    .into_violations()
                    .into_iter()
                    .map(|v| (v.field.to_owned(), v.description)),
            );
            Err(ApiError::InvalidArgument(violations))
        }
    }
}

fn weekday_name(weekday: proto::Weekday) -> Option<&'static str> {
    Some(match weekday {
        proto::Weekday::Unspecified => return None,
        proto::Weekday::Monday => "MON",
        proto::Weekday::Tuesday => "TUE",
        proto::Weekday::Wednesday => "WED",
        proto::Weekday::Thursday => "THU",
        proto::Weekday::Friday => "FRI",
        proto::Weekday::Saturday => "SAT",
        proto::Weekday::Sunday => "SUN",
    })
}

fn proto_weekday(weekday: CivilWeekday) -> proto::Weekday {
    match weekday {
        CivilWeekday::Monday => proto::Weekday::Monday,
        CivilWeekday::Tuesday => proto::Weekday::Tuesday,
        CivilWeekday::Wednesday => proto::Weekday::Wednesday,
        CivilWeekday::Thursday => proto::Weekday::Thursday,
        CivilWeekday::Friday => proto::Weekday::Friday,
        CivilWeekday::Saturday => proto::Weekday::Saturday,
        CivilWeekday::Sunday => proto::Weekday::Sunday,
    }
}

/// A timestamp on the wire.
pub fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    }
}

/// `at` plus `duration`, saturating at the end of time.
pub fn after(at: Timestamp, duration: std::time::Duration) -> Timestamp {
    jiff::SignedDuration::try_from(duration)
        .ok()
        .and_then(|d| at.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// A duration on the wire.
pub fn duration(d: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// A granted edit lease as sent.
pub fn lease(lease: &crate::lock::Lease) -> proto::CertLease {
    let granted = &lease.lease;
    let ttl = granted
        .expires_at
        .duration_since(granted.acquired_at)
        .unsigned_abs();
    proto::CertLease {
        id: granted.id.to_string(),
        holder: granted.holder.as_str().to_owned(),
        subject: granted.subject.clone(),
        acquire_time: Some(timestamp(granted.acquired_at)),
        expire_time: Some(timestamp(granted.expires_at)),
        ttl: Some(duration(ttl)),
        fencing_token: lease.fencing_token,
    }
}

/// A timestamp from the wire; `field` names it in the violation.
pub fn from_timestamp(t: &prost_types::Timestamp, field: &str) -> Result<Timestamp, ApiError> {
    Timestamp::new(t.seconds, t.nanos)
        .map_err(|_| ApiError::invalid(field, "timestamp out of range"))
}

/// A stored task as sent.
pub fn task(task: &Task, next_occurrence: Option<Timestamp>) -> proto::Task {
    let schedule = &task.schedule;
    proto::Task {
        id: task.id,
        description: task.description.clone(),
        active: task.active,
        start_date: schedule.start_date().to_string(),
        start_time: schedule.time().strftime("%H:%M:%S").to_string(),
        weekdays: schedule
            .weekdays()
            .iter()
            .map(|d| proto_weekday(d) as i32)
            .collect(),
        time_zone: schedule.time_zone_name().to_owned(),
        saved_by: task.saved_by.clone(),
        saved_at: Some(timestamp(task.saved_at)),
        next_occurrence: next_occurrence.map(timestamp),
    }
}

/// A run status on the wire.
pub fn run_status(status: RunStatus) -> proto::RunStatus {
    match status {
        RunStatus::Waiting => proto::RunStatus::Waiting,
        RunStatus::InProgress => proto::RunStatus::InProgress,
        RunStatus::Succeeded => proto::RunStatus::Succeeded,
        RunStatus::Failed => proto::RunStatus::Failed,
    }
}

/// A run status filter from the wire.
fn status_filter(value: i32) -> Result<RunStatus, ApiError> {
    match proto::RunStatus::try_from(value) {
        Ok(proto::RunStatus::Waiting) => Ok(RunStatus::Waiting),
        Ok(proto::RunStatus::InProgress) => Ok(RunStatus::InProgress),
        Ok(proto::RunStatus::Succeeded) => Ok(RunStatus::Succeeded),
        Ok(proto::RunStatus::Failed) => Ok(RunStatus::Failed),
        _ => Err(ApiError::invalid(
            "statuses",
            format!("not a run status: {value}"),
        )),
    }
}

/// A stored phase name on the wire.
pub fn run_phase(phase: Option<&str>, status: RunStatus) -> proto::RunPhase {
    match phase {
        _ if matches!(status, RunStatus::Succeeded | RunStatus::Failed) => proto::RunPhase::Done,
        Some(name) => proto::RunPhase::from_str_name(&format!("RUN_PHASE_{name}"))
            .unwrap_or(proto::RunPhase::Unspecified),
        None if status == RunStatus::Waiting => proto::RunPhase::Waiting,
        None => proto::RunPhase::Unspecified,
    }
}

/// A stored run as sent.
pub fn run(run: &RunRecord) -> proto::Run {
    proto::Run {
        id: run.id,
        task_id: run.task_id.unwrap_or(0),
        task_description: run.task_description.clone().unwrap_or_default(),
        status: run_status(run.status) as i32,
        phase: run_phase(run.phase.as_deref(), run.status) as i32,
        scheduled_start: run.scheduled_for.map(timestamp),
        actual_start: run.started_at.map(timestamp),
        end: run.ended_at.map(timestamp),
        run_by: run.run_by.clone(),
        dry_run: run.dry_run,
        force: run.force,
        has_report: run.has_report,
        error: run.error.clone().unwrap_or_default(),
        file_name: run.file_name.clone().unwrap_or_default(),
        file_sha256: run.file_sha256.clone().unwrap_or_default(),
        file_from_cache: run.file_from_cache.unwrap_or(false),
    }
}

/// The task list's filters from a ListTasks request.
pub fn run_filter(request: &proto::ListTasksRequest) -> Result<RunFilter, ApiError> {
    let range = |range: &Option<proto::TimeRange>, field: &str| -> Result<_, ApiError> {
        let Some(range) = range else {
            return Ok(TimeRange::default());
        };
        let from = range
            .from
            .as_ref()
            .map(|t| from_timestamp(t, field))
            .transpose()?;
        let to = range
            .to
            .as_ref()
            .map(|t| from_timestamp(t, field))
            .transpose()?;
        Ok(TimeRange { from, to })
    };
    let statuses = request
        .statuses
        .iter()
        .map(|s| status_filter(*s))
        .collect::<Result<Vec<_>, _>>()?;
    let keyword = request.description_keyword.trim();
    let run_by = request.run_by.trim();
    Ok(RunFilter {
        description: (!keyword.is_empty()).then(|| keyword.to_owned()),
        statuses,
        scheduled: range(&request.scheduled_start, "scheduled_start")?,
        started: range(&request.actual_start, "actual_start")?,
        ended: range(&request.end, "end")?,
        run_by: (!run_by.is_empty()).then(|| run_by.to_owned()),
    })
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn dated(records: &[ExpiringRecord]) -> Vec<proto::DatedRecord> {
    records
        .iter()
        .map(|r| proto::DatedRecord {
            employee_number: r.employee_number.clone(),
            last_name: r.last_name.clone(),
            first_name: r.first_name.clone(),
            license_number: r.license_number.clone().unwrap_or_default(),
            license_type: r.license_type.clone(),
            endorsement_code: r.endorsement_code.clone().unwrap_or_default(),
            expiration_date: r.expiration_date.to_string(),
        })
        .collect()
}

/// A run's summary as proto fields.
pub fn summary(summary: &Summary) -> proto::ImportSummary {
    let counts = |c: &crate::import::summary::RecordCounts| proto::RecordCounts {
        certifications: count(c.certifications),
        endorsements: count(c.endorsements),
        total: count(c.total),
    };
    proto::ImportSummary {
        run_date: summary.run_date.to_string(),
        dry_run: summary.dry_run,
        rejected: summary.rejected.clone().unwrap_or_default(),
        file: summary.file.as_ref().map(|f| proto::FileUsed {
            name: f.name.clone(),
            sha256: f.sha256.clone(),
            from_cache: f.from_cache,
        }),
        data_rows: count(summary.data_rows),
        invalid_rows: summary
            .invalid_rows
            .iter()
            .map(|r| proto::InvalidRow {
                line: count(r.line),
                reason: r.reason.clone(),
            })
            .collect(),
        not_imported_by_status: summary
            .not_imported_by_status
            .iter()
            .map(|(status, n)| (status.clone(), count(*n)))
            .collect(),
        educators_not_employed: count(summary.educators_not_employed),
        missing_certification: summary
            .missing_certification
            .iter()
            .map(|e| proto::EmployeeRef {
                employee_number: e.employee_number.clone(),
                last_name: e.last_name.clone(),
                first_name: e.first_name.clone(),
            })
            .collect(),
        expired_certifications: dated(&summary.expired_certifications),
        missing_dates: Some(proto::MissingDates {
            certification_issue: count(summary.missing_dates.certification_issue),
            certification_expiration: count(summary.missing_dates.certification_expiration),
            endorsement_issue: count(summary.missing_dates.endorsement_issue),
            endorsement_expiration: count(summary.missing_dates.endorsement_expiration),
        }),
        deleted: Some(counts(&summary.deleted)),
        imported: Some(counts(&summary.imported)),
        skipped: summary
            .skipped
            .iter()
            .map(|s| proto::SkippedEmployee {
                employee_number: s.employee_number.clone(),
                last_name: s.last_name.clone(),
                first_name: s.first_name.clone(),
                reasons: s.reasons.clone(),
                detail: s.detail.clone(),
            })
            .collect(),
        expiring_soon: dated(&summary.expiring_soon),
        notes: summary.notes.clone(),
    }
}

/// A run log line as sent.
pub fn log_entry(entry: &LogEntry) -> proto::RunLogEntry {
    let level = match entry.level {
        LogLevel::Info => proto::LogLevel::Info,
        LogLevel::Warn => proto::LogLevel::Warn,
        LogLevel::Error => proto::LogLevel::Error,
    };
    proto::RunLogEntry {
        at: Some(timestamp(entry.at)),
        level: level as i32,
        message: entry.message.clone(),
    }
}
