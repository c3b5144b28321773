//! The embedded default's first start: a demo district, a sample ALiS file in the
//! inbox and an active weekly task, so a fresh checkout shows a real import at once.
//! Only into an empty, service-managed ERP schema.

use std::time::Duration;

use anyhow::Context as _;
use jiff::Timestamp;

use crate::config::ServiceConfig;
use crate::sample::{self, SampleSpec};
use crate::scheduler::occurrence::TaskSchedule;
use crate::store::{Store, TaskDraft};

/// The demo task's description.
pub const DEMO_TASK: &str = "VT - ALiS Certification Import (weekly)";

/// Writes the demo data unless the ERP tables are not ours or already hold employees.
pub async fn seed_if_empty(
    store: &Store,
    config: &ServiceConfig,
    now: Timestamp,
) -> anyhow::Result<()> {
    if !config.database.manage_erp_schema || store.has_employees().await? {
        return Ok(());
    }
    let zone = jiff::tz::TimeZone::get(&config.time_zone)?;
    let spec = SampleSpec {
        as_of: now.to_zoned_datetime(zone).date(),
        ..SampleSpec::default()
    };
    store.insert_district(&sample::district(&spec)).await?;

    std::fs::create_dir_all(&config.inbox_dir)
        .with_context(|| format!("cannot create {}", config.inbox_dir.display()))?;
    let path = config.inbox_dir.join(sample::file_name(&spec));
    let file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    sample::write_statewide_file(&spec, &mut writer)?;
    let file = writer.into_inner().context("flushing the sample file")?;
    // The file is complete: date it before the "still uploading" window so a RunNow
    // right after start-up uses it.
    let written = std::time::SystemTime::now() - (config.min_file_age + Duration::from_secs(60));
    file.set_modified(written)?;

    let schedule = TaskSchedule::parse(
        &spec.as_of.to_string(),
        "06:00",
        &["MON".to_owned()],
        Some(&config.time_zone),
    )
    .map_err(|e| anyhow::anyhow!("demo schedule: {e}"))?;
    let next = schedule.next_occurrence(now);
    let draft = TaskDraft {
        description: DEMO_TASK.into(),
        active: true,
        schedule,
        saved_by: "demo".into(),
    };
    store.save_task(None, &draft, next).await?;
    tracing::info!(inbox = %config.inbox_dir.display(), "wrote the demo district, sample file and weekly task");
    Ok(())
}
