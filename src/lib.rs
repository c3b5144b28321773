//! alis-import: imports Vermont educator licences and endorsements from the state's
//! ALiS licensing file into a school district ERP.
//!
//! # Layout
//!
//! - [`import`]: the import pipeline as plain functions over plain data:
//!   [`import::alis_file`] parses the file, [`import::plan`] matches educators to
//!   employees, [`import::summary`] computes the report's figures, and
//!   [`import::run_import`] drives parse → plan → guard → replace against a store.
//! - [`source`]: where ALiS files come from: the naming rule, the newest file, a verified
//!   copy, and [`source::SourceFactory`], each run's source with credentials read as it starts.
//! - [`fetch`]: the file a run uses (rules §1.2): the newest in the source, reused from or
//!   stored in the file cache, or the newest cached one when the source holds none.
//! - [`lock`]: the certification lock: edit leases, the import's exclusive hold, epochs
//!   (fencing), and the database triggers behind them.
//! - [`secrets`]: the SFTP credentials, from Vault (token, AppRole, Kubernetes) or dev values.
//! - [`store`]: the database (PostgreSQL or SQLite) behind one interface, with the
//!   migrations and the one-transaction replace.
//! - [`scheduler`]: when tasks run: [`scheduler::occurrence`] parses a task's schedule
//!   and computes its occurrences (weekdays, wall-clock time, time zone, DST rules).
//! - [`report`]: the Import Summary as a PDF for HR, rendered from a run's summary.
//! - [`sample`]: a synthetic district and statewide file, for demos, tests and benchmarks.
//! - [`api`]: the gRPC service: handlers, conversions, the error → status table.
//! - [`worker`]: executes a claimed run: fetch, import, record the outcome.
//! - [`startup`]: builds the application and runs it until shutdown.
//! - [`telemetry`]: logs, and OpenTelemetry traces and metrics over OTLP (off unless
//!   configured): the span per RPC, the metrics.
//! - [`config`]: the one typed configuration (flags and environment variables).
//! - [`clock`]: where "now" comes from (a manual clock in tests).
//! - [`demo`]: the embedded default's demo district, file and task.
//! - [`cli`]: the command line of the `alis-import` binary.

pub mod allocator;
pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod fetch;
pub mod import;
pub mod lock;
pub mod report;
pub mod sample;
pub mod scheduler;
pub mod secrets;
pub mod source;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod worker;
