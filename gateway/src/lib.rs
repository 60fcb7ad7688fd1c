//! promgate's gateway: HTTP ingest (remote write 1.0 and 2.0) with validation and limits, the
//! durable SQLite window, and self-metrics. Assembles `rules-engine` and `proto`.
#![forbid(unsafe_code)]

pub mod alerting;
pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod forward;
pub mod ingest;
pub mod push;
pub mod rules;
pub mod serve;
pub mod store;
pub mod telemetry;
pub mod validate;
