//! The scheduler: when each task's imports run.
//!
//! - [`occurrence`]: a task's schedule as a domain type ([`occurrence::TaskSchedule`],
//!   [`occurrence::Weekdays`]) and the pure arithmetic that turns it into instants,
//!   including the daylight-saving-time rules of `design.md` §5. No clock, no store,
//!   no process time zone: every function takes the instants it needs.
//! - [`job`]: the background job every replica runs: claims due runs, reaps runs whose
//!   worker died, catches up after downtime.

pub mod job;
pub mod occurrence;

pub use job::{Scheduler, SchedulerSettings, Tick};
