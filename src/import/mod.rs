//! The import pipeline: parse → plan → guard → replace → summary.
//!
//! Parsing and planning are pure functions over bytes and rows ([`alis_file`],
//! [`plan`], [`summary`]); [`run_import`] puts them together with the places that
//! touch the world: reading the district from the store, the certification lock
//! ([`crate::lock`]), and the one-transaction replace.

pub mod alis_file;
pub mod plan;
pub mod records;
pub mod summary;

use std::io::{Read, Seek};
use std::sync::Arc;

use jiff::civil::Date;

use self::alis_file::{FileRejection, ParseSettings};
use self::plan::{District, Plan};
use self::summary::{FileInfo, RecordCounts, Summary, SummaryContext};
use crate::lock::{LockError, LockSettings, hold_for_replace};
use crate::store::{Replace, Store, StoreError};

/// The import's settings (rules §1.5, §3, §4).
#[derive(Debug, Clone)]
pub struct ImportSettings {
    /// Invalid-row thresholds.
    pub parse: ParseSettings,
    /// Mass-deletion guard: the largest allowed fall, in percent, of active employees
    /// holding a certification; 0 turns the guard off.
    pub guard_max_drop_percent: u32,
    /// Look-ahead of the report's "expiring soon" list, in days.
    pub expiring_within_days: u32,
    /// The certification lock: lease cap, polling, and the clock leases expire by.
    pub lock: LockSettings,
}

impl Default for ImportSettings {
    fn default() -> Self {
        Self {
            parse: ParseSettings::default(),
            guard_max_drop_percent: 20,
            expiring_within_days: 90,
            lock: LockSettings::default(),
        }
    }
}

/// One import to perform.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The run that writes the records (`import_run_id`).
    pub run_id: i64,
    /// The date the summary is computed as of, in the district's time zone.
    pub run_date: Date,
    /// Compute everything, write nothing.
    pub dry_run: bool,
    /// Pass the mass-deletion guard.
    pub force: bool,
    /// The file being read.
    pub file: FileInfo,
}

/// The steps of an import, in order, as callers may show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Getting the file (done by the caller, before [`run_import`]).
    Fetching,
    /// Reading and validating the file.
    Parsing,
    /// Matching educators to employees.
    Planning,
    /// Checking the mass-deletion guard.
    Guard,
    /// Waiting for manual certification edits (leases) to end before replacing; the
    /// detail says how many are outstanding.
    WaitingForEdits,
    /// Deleting and inserting in one transaction.
    Replacing,
    /// Computing the summary.
    Reporting,
}

/// Told of each phase as the import enters it; the import waits for the returned
/// future. Callers record progress with it (a plain `Fn(Phase)` closure will do), and
/// tests hold an import at a phase.
pub trait Progress: Sync {
    /// The import enters `phase`.
    fn enter(&self, phase: Phase) -> impl Future<Output = ()> + Send;

    /// What the current phase is waiting for has changed (e.g. the number of
    /// outstanding edit leases while [`Phase::WaitingForEdits`]).
    fn detail(&self, _detail: String) {}

    /// Awaited before the import takes the lock (a real run, past the guard): what the
    /// caller must finish before anything is written. An `Err` ends the import with
    /// [`ImportError::NotReady`], nothing written. The worker waits here for the file
    /// cache write it runs alongside the parse; ready at once by default.
    fn ready_to_write(&self) -> impl Future<Output = Result<(), String>> + Send {
        std::future::ready(Ok(()))
    }

    /// The replace has written everything and is about to commit: awaited inside the
    /// transaction. A test hook (to hold an import mid-replace); nothing by default.
    fn before_commit(&self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}

impl<F: Fn(Phase) + Sync> Progress for F {
    fn enter(&self, phase: Phase) -> impl Future<Output = ()> + Send {
        self(phase);
        std::future::ready(())
    }
}

/// Why an import could not be carried out (as opposed to being refused: a refusal is
/// a [`Summary`] with `rejected` set).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The database failed; nothing was committed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The parsing task died.
    #[error("the parser stopped unexpectedly")]
    ParserTask(#[source] tokio::task::JoinError),
    /// The task computing the summary died (after the replace committed).
    #[error("computing the import summary stopped unexpectedly")]
    SummaryTask(#[source] tokio::task::JoinError),
    /// What the caller had to finish before the import writes failed
    /// ([`Progress::ready_to_write`]); nothing was written.
    #[error("{0}; nothing was written")]
    NotReady(String),
    /// The run lost the certification lock to another process (design §6): it was
    /// declared lost and taken over. Nothing was written. The text starts "fenced".
    #[error(
        "fenced: run {run_id} no longer holds the certification lock (its epoch was \
         {epoch}); another process declared it lost or took the lock over. Nothing was \
         written."
    )]
    Fenced {
        /// The fenced run.
        run_id: i64,
        /// The epoch it had (0 when it never got one).
        epoch: i64,
    },
}

impl From<LockError> for ImportError {
    fn from(error: LockError) -> Self {
        match error {
            LockError::Fenced { run_id, epoch } => Self::Fenced { run_id, epoch },
            LockError::Store(error) => Self::Store(error),
        }
    }
}

/// Runs one import of `input` (the whole ALiS file) against `store`.
///
/// Returns the summary. When the file or the guard refuses the import, the summary's
/// `rejected` says why and nothing was written. An `Err` means the import failed
/// part-way; the replace's transaction was rolled back, so nothing was written either.
///
/// Before replacing, the import takes the certification lock (design §6): it marks it
/// pending, waits in [`Phase::WaitingForEdits`] until no edit lease is outstanding, and
/// holds it through the replace transaction, which frees it as it commits. When this
/// function returns, the lock is free (or another run's). If its future is dropped
/// instead (cancellation, shutdown), the caller frees it with
/// [`Store::free_cert_lock`]. A dry run writes nothing, so it does not take the lock
/// and never makes edits wait.
#[tracing::instrument(skip_all, fields(run_id = request.run_id, dry_run = request.dry_run), err)]
pub async fn run_import<R>(
    store: &Store,
    input: R,
    request: &ImportRequest,
    settings: &ImportSettings,
    progress: &impl Progress,
) -> Result<Summary, ImportError>
where
    R: Read + Seek + Send + 'static,
{
    let context = SummaryContext {
        run_date: request.run_date,
        dry_run: request.dry_run,
        file: Some(request.file.clone()),
        expiring_within_days: settings.expiring_within_days,
    };

    progress.enter(Phase::Parsing).await;
    let district = Arc::new(District::new(store.active_employees().await?));
    let parse_settings = settings.parse.clone();
    let parse_district = Arc::clone(&district);
    // `alis_file::parse` opens the `parse` span, under this one.
    let span = tracing::Span::current();
    let parsing = tokio::task::spawn_blocking(move || {
        let _entered = span.entered();
        alis_file::parse(input, &parse_settings, |id, name| {
            parse_district.keep(id, name)
        })
    });
    // The guard's count of current holdings is read while the file is parsed: it does
    // not depend on the file, and it is read before the lock either way.
    let (parsed, before) = tokio::join!(parsing, store.holdings());
    let mut parsed = match parsed.map_err(ImportError::ParserTask)? {
        Ok(parsed) => parsed,
        Err(rejection) => return Ok(rejected_file(&context, &rejection)),
    };
    let before = before?;

    progress.enter(Phase::Planning).await;
    let plan = plan::plan_import(&district, &mut parsed);

    progress.enter(Phase::Guard).await;
    if let Some(refusal) = guard(
        settings,
        request,
        before.employees_with_certifications,
        &plan,
    ) {
        let mut summary = Summary::of_plan(&context, &plan, RecordCounts::default());
        summary.imported = RecordCounts::default();
        summary.rejected = Some(refusal);
        return Ok(with_file_facts(summary, &parsed));
    }

    // The summary depends on the replace only for the records it deletes: it is worked
    // out on the blocking pool while the database replaces.
    let plan = Arc::new(plan);
    let summarising = {
        let (context, plan) = (context.clone(), Arc::clone(&plan));
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| Summary::of_plan(&context, &plan, RecordCounts::default()))
        })
    };
    let deleted = if request.dry_run {
        RecordCounts::new(before.certifications, before.endorsements)
    } else {
        progress
            .ready_to_write()
            .await
            .map_err(ImportError::NotReady)?;
        let replaced = replace_under_lock(store, request.run_id, &plan, settings, progress).await;
        if replaced.is_err() {
            // Every exit frees the lock; a fenced run's lock is another's, and stays.
            let now = settings.lock.clock.now();
            if let Err(error) = store.free_cert_lock(request.run_id, now).await {
                tracing::error!(run_id = request.run_id, error = ?anyhow::Error::new(error), "cannot free the certification lock");
            }
        }
        replaced?
    };

    progress.enter(Phase::Reporting).await;
    let mut summary = summarising.await.map_err(ImportError::SummaryTask)?;
    summary.deleted = deleted;
    Ok(with_file_facts(summary, &parsed))
}

/// Rules §3 steps 2–4: takes the certification lock, replaces in one transaction that
/// first checks the fence and frees the lock as it commits.
async fn replace_under_lock(
    store: &Store,
    run_id: i64,
    plan: &Plan,
    settings: &ImportSettings,
    progress: &impl Progress,
) -> Result<RecordCounts, ImportError> {
    progress.enter(Phase::WaitingForEdits).await;
    // This process's lease desk refuses from memory until the claim is dropped, when
    // this function returns (crate::lock::OwnImport).
    let claim = settings.lock.own.claim(run_id);
    let fence = hold_for_replace(store, run_id, &settings.lock, |outstanding| {
        progress.detail(outstanding_leases(outstanding));
    })
    .await?;
    claim.held();
    progress.enter(Phase::Replacing).await;
    match store
        .replace_certifications(&fence, plan, progress.before_commit())
        .await?
    {
        Replace::Replaced(deleted) => Ok(deleted),
        Replace::Fenced => Err(ImportError::Fenced {
            run_id,
            epoch: fence.epoch,
        }),
    }
}

/// The detail of [`Phase::WaitingForEdits`].
fn outstanding_leases(count: u64) -> String {
    match count {
        1 => "1 edit lease outstanding".into(),
        n => format!("{n} edit leases outstanding"),
    }
}

/// Rules §3 step 1: refuses an import that would make too many active employees lose
/// every certification, unless forced.
#[tracing::instrument(
    skip_all,
    fields(
        holders_before = holders_before as i64,
        holders_after = plan.employees_with_certifications() as i64,
        refused = false
    )
)]
fn guard(
    settings: &ImportSettings,
    request: &ImportRequest,
    holders_before: u64,
    plan: &Plan,
) -> Option<String> {
    let holders_after = plan.employees_with_certifications();
    if request.force || settings.guard_max_drop_percent == 0 || holders_after >= holders_before {
        return None;
    }
    let drop = holders_before - holders_after;
    if drop * 100 <= u64::from(settings.guard_max_drop_percent) * holders_before {
        return None;
    }
    tracing::Span::current().record("refused", true);
    Some(format!(
        "mass-deletion guard: active employees holding a certification would fall from \
         {holders_before} to {holders_after} ({:.1}% fewer; at most {}% allowed). Nothing \
         changed. If the file is right, run again with force.",
        drop as f64 * 100.0 / holders_before as f64,
        settings.guard_max_drop_percent
    ))
}

fn rejected_file(context: &SummaryContext, rejection: &FileRejection) -> Summary {
    let mut summary = Summary::rejected(context, rejection.to_string());
    if let FileRejection::TooManyInvalidRows { data_rows, .. } = rejection {
        summary.data_rows = *data_rows;
    }
    summary
}

/// Adds what the parser learned about the file itself to a summary.
fn with_file_facts(mut summary: Summary, parsed: &records::ParsedFile) -> Summary {
    summary.data_rows = parsed.data_rows;
    summary.invalid_rows = parsed.invalid_rows.clone();
    summary.educators_not_employed = parsed.educators_not_kept;
    if parsed.decoded_as_windows_1252 {
        summary
            .notes
            .push("The file was not valid UTF-8 and was read as Windows-1252.".into());
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::plan::MatchedEmployee;
    use crate::import::records::{ActiveEmployee, Certification};

    fn plan_with_holders(holders: usize) -> Plan {
        let certification = Certification {
            license_number: None,
            license_type: "Provisional".into(),
            status: "ACT".into(),
            issue_date: None,
            expiration_date: None,
            endorsements: vec![],
        };
        Plan {
            matched: (0..holders)
                .map(|i| MatchedEmployee {
                    employee: ActiveEmployee {
                        id: i as i64,
                        employee_number: format!("E{i}"),
                        state_staff_id: None,
                        last_name: "L".into(),
                        first_name: "F".into(),
                        certification_required: true,
                    },
                    certifications: vec![certification.clone()],
                })
                .collect(),
            ..Plan::default()
        }
    }

    fn request(force: bool) -> ImportRequest {
        ImportRequest {
            run_id: 1,
            run_date: jiff::civil::date(2026, 11, 30),
            dry_run: false,
            force,
            file: FileInfo {
                name: "f".into(),
                sha256: "0".into(),
                from_cache: false,
            },
        }
    }

    #[test]
    fn guard_allows_a_fall_of_exactly_the_threshold() {
        let settings = ImportSettings::default();
        assert_eq!(
            guard(&settings, &request(false), 100, &plan_with_holders(80)),
            None
        );
    }

    #[test]
    fn guard_refuses_a_fall_beyond_the_threshold() {
        let settings = ImportSettings::default();
        let refusal = guard(&settings, &request(false), 100, &plan_with_holders(79));
        assert!(refusal.is_some_and(|r| r.starts_with("mass-deletion guard")));
    }

    #[test]
    fn force_passes_the_guard() {
        let settings = ImportSettings::default();
        assert_eq!(
            guard(&settings, &request(true), 100, &plan_with_holders(0)),
            None
        );
    }

    #[test]
    fn zero_threshold_turns_the_guard_off() {
        let settings = ImportSettings {
            guard_max_drop_percent: 0,
            ..ImportSettings::default()
        };
        assert_eq!(
            guard(&settings, &request(false), 100, &plan_with_holders(0)),
            None
        );
    }

    #[test]
    fn guard_ignores_a_district_with_no_holders_yet() {
        let settings = ImportSettings::default();
        assert_eq!(
            guard(&settings, &request(false), 0, &plan_with_holders(0)),
            None
        );
    }
}
