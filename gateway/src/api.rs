//! The Prometheus-style HTTP API over the window.

pub mod error;
pub mod meta;
pub mod params;
pub mod query;
pub mod rules;
pub mod series;
