//! The scheduler job. Every replica runs one; the database decides which of them
//! executes a due run (an atomic claim), so each run executes exactly once.
//!
//! Shaped as [`Scheduler::run_until_stopped`] looping over a public
//! [`Scheduler::try_execute_once`], which tests call directly with a manual clock.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::store::{Claim, RunRecord, Store, StoreError};
use crate::worker::Worker;

/// The scheduler's timings.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Time between two ticks.
    pub interval: Duration,
    /// A running import silent for longer is failed ("worker lost").
    pub heartbeat_timeout: Duration,
    /// A waiting run overdue by less than this still runs (once) after downtime.
    pub catch_up_window: Duration,
    /// How long a due run waits for another running import before it fails.
    pub busy_wait: Duration,
}

/// What one tick did, for tests and logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tick {
    /// Runs failed because their worker stopped beating.
    pub reaped: Vec<i64>,
    /// Waiting runs failed as missed (overdue beyond the catch-up window).
    pub missed: Vec<i64>,
    /// Waiting runs failed because another import ran for too long.
    pub gave_up: Vec<i64>,
    /// The run this tick claimed and started.
    pub started: Option<i64>,
}

/// Claims and starts due runs.
#[derive(Debug, Clone)]
pub struct Scheduler {
    store: Store,
    worker: Worker,
    clock: Arc<dyn Clock>,
    settings: SchedulerSettings,
}

impl Scheduler {
    /// A scheduler executing its runs on `worker`.
    pub fn new(
        store: Store,
        worker: Worker,
        clock: Arc<dyn Clock>,
        settings: SchedulerSettings,
    ) -> Self {
        Self {
            store,
            worker,
            clock,
            settings,
        }
    }

    /// Ticks every `interval` until `cancel` fires. Errors are logged and retried on
    /// the next tick: a database blip must not stop scheduling.
    pub async fn run_until_stopped(self, cancel: CancellationToken) {
        // The first tick comes one interval after start, not at once.
        let start = tokio::time::Instant::now() + self.settings.interval;
        let mut interval = tokio::time::interval_at(start, self.settings.interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = interval.tick() => {}
            }
            match self.try_execute_once().await {
                Ok(tick) if tick != Tick::default() => tracing::info!(?tick, "scheduler tick"),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = ?anyhow::Error::new(error), "scheduler tick failed")
                }
            }
        }
    }

    /// One pass: reap lost runs, fail missed ones, claim and start a due run.
    ///
    /// Its span is at DEBUG: at INFO every tick would be a trace of its own, and a
    /// scheduled run's `run` span is better the root of its own trace.
    #[tracing::instrument(level = "debug", skip_all, err)]
    pub async fn try_execute_once(&self) -> Result<Tick, StoreError> {
        let now = self.clock.now();
        let mut tick = Tick::default();
        for run in self
            .store
            .reap_lost_runs(now, self.settings.heartbeat_timeout)
            .await?
        {
            tracing::warn!(run_id = run.id, "worker lost: run failed");
            tick.reaped.push(run.id);
        }

        for run in self.store.overdue_waiting_runs(now).await? {
            if overdue(&run, now) > span(self.settings.catch_up_window) {
                let reason = format!(
                    "missed: the service was not running at the scheduled time {}",
                    run.scheduled_for.map(|t| t.to_string()).unwrap_or_default()
                );
                if self.store.fail_waiting_run(run.id, &reason, now).await? {
                    tick.missed.push(run.id);
                    self.plan_next(&run, now).await?;
                }
            }
        }

        match self.store.claim_due_run(now, self.worker.owner()).await? {
            Claim::Claimed(run) => {
                self.plan_next(&run, now).await?;
                tick.started = Some(run.id);
                self.worker.spawn(run);
            }
            Claim::Busy { running } => {
                for run in self.store.overdue_waiting_runs(now).await? {
                    if overdue(&run, now) > span(self.settings.busy_wait) {
                        let reason = format!(
                            "another import (run {}) was still running {} after the scheduled time",
                            running.id,
                            humantime::format_duration(self.settings.busy_wait)
                        );
                        if self.store.fail_waiting_run(run.id, &reason, now).await? {
                            tick.gave_up.push(run.id);
                            self.plan_next(&run, now).await?;
                        }
                    }
                }
            }
            Claim::Nothing => {}
        }
        Ok(tick)
    }

    /// Plans the next occurrence of a run's task after `now`, so an active task always
    /// has its next run waiting.
    async fn plan_next(&self, run: &RunRecord, now: Timestamp) -> Result<(), StoreError> {
        let Some(task_id) = run.task_id else {
            return Ok(());
        };
        let Some(task) = self.store.get_task(task_id).await? else {
            return Ok(());
        };
        if !task.active {
            return Ok(());
        }
        if let Some(next) = task.schedule.next_occurrence(now) {
            self.store.plan_waiting_run(task.id, next).await?;
        }
        Ok(())
    }
}

fn overdue(run: &RunRecord, now: Timestamp) -> SignedDuration {
    run.scheduled_for
        .map_or(SignedDuration::ZERO, |at| now.duration_since(at))
}

fn span(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}
