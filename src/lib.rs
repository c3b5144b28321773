//! alis-import: imports Vermont educator licences and endorsements from the state's
//! ALiS licensing file into a school district ERP.
//!
//! # Layout
//!
//! - [`import`]: the import pipeline as plain functions over plain data:
//!   [`import::alis_file`] parses the file, [`import::plan`] matches educators to
//!   employees, [`import::summary`] computes the report's figures, and
//!   [`import::run_import`] drives parse → plan → guard → replace against a store.
//! - [`source`]: where ALiS files come from: the naming rule, the newest file, a verified copy.
//! - [`secrets`]: the SFTP credentials, from Vault (token, AppRole, Kubernetes) or dev values.
//! - [`store`]: the database (PostgreSQL or SQLite) behind one interface, with the
//!   migrations and the one-transaction replace.
//! - [`scheduler`]: when tasks run: [`scheduler::occurrence`] parses a task's schedule
//!   and computes its occurrences (weekdays, wall-clock time, time zone, DST rules).
//! - [`sample`]: a synthetic district and statewide file, for demos, tests and benchmarks.
//! - [`cli`]: the command line of the `alis-import` binary.

pub mod cli;
pub mod import;
pub mod sample;
pub mod scheduler;
pub mod secrets;
pub mod source;
pub mod store;
