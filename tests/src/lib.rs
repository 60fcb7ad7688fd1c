//! Harness for promgate's end-to-end tests and its ingest benchmark: the built `promgate` binary
//! started beside real peers from Debian packages (Prometheus 2.42, VictoriaMetrics), each on a
//! free loopback port with its own temporary data directory, killed when dropped.
//!
//! - [`server`]: [`Promgate`], [`Prometheus`], [`VictoriaMetrics`] and the process plumbing they
//!   share (readiness wait, logs, SIGKILL, CPU seconds from `/proc`).
//! - [`payload`]: remote-write 1.0 and 2.0 request builders, snappy-encoded as senders send them.
//! - [`http`]: a small blocking HTTP client and parsers for the query and export APIs.
//! - [`trading`]: a deterministic trading-stack data set (counters with resets, gauges, classic
//!   histograms, stale markers) for query tests and the query benchmark.
//! - [`diff`]: the same Prometheus API call to two servers, answers compared.
//! - [`alertmanager`]: a real Alertmanager 0.25 ([`Alertmanager`]) on a free port.
//! - [`capture`]: an HTTP capture server standing in for Slack, PagerDuty or a webhook
//!   consumer, with scripted answers (429 with `Retry-After`, 5xx, 400).
//! - [`smtp`]: a real SMTP server (Python aiosmtpd from `target/py`) recording mail, optionally
//!   with STARTTLS, implicit TLS and AUTH; and an HTTPS capture server for TLS tests.
//!
//! Nothing here is mocked: every test talks HTTP to a real process. Peers come from
//! `scripts/setup.sh`; promgate from `cargo build -p gateway`.
#![forbid(unsafe_code)]

pub mod alertmanager;
pub mod capture;
pub mod diff;
pub mod http;
pub mod payload;
pub mod server;
pub mod smtp;
pub mod trading;

pub use alertmanager::Alertmanager;
pub use capture::{CaptureServer, Captured};
pub use http::{ExportSeries, Response};
pub use payload::{rw_v1, rw_v2};
pub use server::{Prometheus, Promgate, VictoriaMetrics, Vmagent, cpu_seconds, free_port};
pub use smtp::{HttpsCapture, ReceivedMail, SmtpOptions, SmtpServer, SmtpTls};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Calls `check` every 100 ms until it returns `Ok`, and returns that; panics with the last
/// error after `timeout`.
#[track_caller]
pub fn eventually<T>(
    timeout: std::time::Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if std::time::Instant::now() > deadline => {
                panic!("not true after {timeout:?}: {e}")
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}
