//! The rules engine: promgate's PromQL evaluator, rules and promtool-compatible test runner.
//!
//! Semantics target Prometheus 2.42 (checked against its own test scripts and promtool 2.42,
//! see `shared/conformance/`). The engine evaluates over the synchronous storage port in
//! [`storage`] ([`storage::Queryable`] to read, [`storage::Appender`] to write recorded samples);
//! the gateway implements it over SQLite, [`storage::MemStorage`] implements it in memory for
//! tests and for `promgate test rules`. Nothing here reads the clock, speaks HTTP or opens a
//! database: evaluation time is always an argument.
//!
//! * [`promql`]: the engine (plan, then in-memory evaluation; kernels in `promql::functions`).
//! * [`rules`]: rule files, the alert state machine and alert templates.
//! * [`unittest`]: `promgate test rules`, promtool's test-file format and output.
//! * [`model`], [`duration`]: labels, samples, Prometheus durations.
#![forbid(unsafe_code)]

pub mod duration;
pub mod model;
pub mod promql;
pub mod rules;
pub mod storage;
pub mod template;
pub mod unittest;

pub use model::{Label, Labels, LabelsError, Sample, Timestamp};
pub use promql::{Engine, EvalError, EvalLimits, Value};
