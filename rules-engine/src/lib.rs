//! The rules engine: promgate's PromQL evaluator, rules and promtool-compatible test runner.
//!
//! Semantics target Prometheus 2.42. The engine evaluates over the synchronous storage port in
//! [`storage`] ([`storage::Queryable`] to read, [`storage::Appender`] to write recorded samples);
//! the gateway implements it over SQLite, [`storage::MemStorage`] implements it in memory for
//! tests and for `promgate test rules`. Nothing here reads the clock, speaks HTTP or opens a
//! database: evaluation time is always an argument.
#![forbid(unsafe_code)]

pub mod duration;
pub mod model;
pub mod promql;
pub mod rules;
pub mod storage;
pub mod unittest;

pub use model::{Label, Labels, LabelsError, Sample, Timestamp};
