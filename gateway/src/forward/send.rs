//! One target's HTTP sender: the remote-write spec's rules for one request, shared by the
//! target's shards.
//!
//! 2xx is success (Mimir's 202 included); 5xx, timeouts and network errors are retried with
//! exponential backoff and jitter, honouring `Retry-After`; 429 is retried only with
//! `retry_on_http_429` (Prometheus 2.42 drops it); other 4xx are dropped and counted, with the
//! receiver's message logged (throttled). A retry never spins: every retry waits at least the
//! jittered backoff, or `Retry-After`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::config::{RemoteWriteConfig, Wire};
use super::{ForwardMetrics, QueueLabels, StatusBoard};

/// Minimum time between two logs of the same kind of receiver error.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// An encoded, compressed request.
#[derive(Debug, Clone)]
pub struct Request {
    pub body: Bytes,
    pub samples: u64,
    /// Newest sample timestamp in it (ms).
    pub newest: i64,
}

/// How one request ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    Acked,
    Dropped,
    Interrupted,
}

enum Failure {
    Retry(String, Option<Duration>),
    Permanent(String),
}

/// A target's sender; cheap to share between shards.
pub struct Sender {
    cfg: Arc<RemoteWriteConfig>,
    pub queue: QueueLabels,
    client: reqwest::Client,
    /// `cfg.url`, parsed once.
    url: reqwest::Url,
    metrics: ForwardMetrics,
    board: StatusBoard,
    slot: usize,
    last_log: Mutex<Option<Instant>>,
}

impl Sender {
    pub fn new(
        cfg: Arc<RemoteWriteConfig>,
        queue: QueueLabels,
        metrics: ForwardMetrics,
        board: StatusBoard,
        slot: usize,
    ) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.remote_timeout)
            .user_agent(concat!("promgate/", env!("CARGO_PKG_VERSION")))
            .no_proxy();
        if cfg.url.starts_with("https://") {
            let tls = cfg
                .tls_config
                .client_config()
                .map_err(|e| format!("remote_write {}: tls_config: {e}", cfg.sanitized_url()))?;
            builder = builder.tls_backend_preconfigured(tls);
        }
        let client = builder
            .build()
            .map_err(|e| format!("remote_write {}: {e}", cfg.sanitized_url()))?;
        let url = reqwest::Url::parse(&cfg.url)
            .map_err(|e| format!("remote_write {}: url: {e}", cfg.sanitized_url()))?;
        Ok(Self {
            cfg,
            url,
            queue,
            client,
            metrics,
            board,
            slot,
            last_log: Mutex::new(None),
        })
    }

    /// Sends `requests` one after the other (they belong to one shard, so their order is
    /// the series' order). `Interrupted` when shutdown came first.
    pub async fn send_all(&self, requests: Vec<Request>, shutdown: &CancellationToken) -> Sent {
        for r in requests {
            if self.send(r, shutdown).await == Sent::Interrupted {
                return Sent::Interrupted;
            }
        }
        Sent::Acked
    }

    /// Sends one request with the spec's retry rules.
    pub async fn send(&self, request: Request, shutdown: &CancellationToken) -> Sent {
        let q = &self.cfg.queue_config;
        let mut backoff = q.min_backoff;
        loop {
            let started = std::time::Instant::now();
            let result = self.attempt(request.body.clone(), request.samples).await;
            self.metrics
                .sent_batch_duration
                .get_or_create(&self.queue)
                .observe(started.elapsed().as_secs_f64());
            let wait = match result {
                Ok(()) => {
                    self.settled(request.samples);
                    self.metrics
                        .samples
                        .get_or_create(&self.queue)
                        .inc_by(request.samples);
                    self.metrics
                        .bytes
                        .get_or_create(&self.queue)
                        .inc_by(request.body.len() as u64);
                    let sent = self.metrics.highest_sent.get_or_create(&self.queue);
                    let newest = request.newest as f64 / 1000.0;
                    if newest > sent.get() {
                        sent.set(newest);
                    }
                    let mut b = self.board.lock();
                    b[self.slot].last_success_unix_ms = Some(crate::serve::now_ms());
                    b[self.slot].last_error = None;
                    return Sent::Acked;
                }
                Err(Failure::Permanent(msg)) => {
                    self.settled(request.samples);
                    self.metrics
                        .failed
                        .get_or_create(&self.queue)
                        .inc_by(request.samples);
                    self.note_error(&msg, request.samples, false);
                    return Sent::Dropped;
                }
                Err(Failure::Retry(msg, retry_after)) => {
                    self.metrics
                        .retried
                        .get_or_create(&self.queue)
                        .inc_by(request.samples);
                    self.note_error(&msg, request.samples, true);
                    let jittered = backoff.mul_f64(0.5 + fastrand::f64() * 0.5);
                    retry_after
                        .unwrap_or(jittered)
                        .max(Duration::from_millis(1))
                }
            };
            backoff = (backoff * 2).min(q.max_backoff);
            tokio::select! {
                _ = shutdown.cancelled() => return Sent::Interrupted,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// A request's samples are no longer pending.
    fn settled(&self, samples: u64) {
        self.metrics
            .pending_samples
            .get_or_create(&self.queue)
            .dec_by(samples as i64);
    }

    fn note_error(&self, msg: &str, samples: u64, retrying: bool) {
        self.board.lock()[self.slot].last_error = Some(msg.to_string());
        {
            let mut last = self.last_log.lock();
            if last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        if retrying {
            tracing::warn!(remote = %self.queue.remote_name, url = %self.queue.url, samples, error = %msg, "Remote write failed; retrying.");
        } else {
            tracing::error!(remote = %self.queue.remote_name, url = %self.queue.url, samples, error = %msg, "Remote write refused; samples dropped.");
        }
    }

    async fn attempt(&self, body: Bytes, samples: u64) -> Result<(), Failure> {
        let (content_type, version) = match self.cfg.wire() {
            Wire::V1 => (proto::headers::CONTENT_TYPE_V1, "0.1.0"),
            Wire::V2 => (proto::headers::CONTENT_TYPE_V2, "2.0.0"),
        };
        let mut req = self
            .client
            .post(self.url.clone())
            .header("Content-Type", content_type)
            .header("Content-Encoding", proto::headers::ENCODING_SNAPPY)
            .header(proto::headers::VERSION, version);
        for (k, v) in &self.cfg.headers {
            req = req.header(k, v);
        }
        if let Some(b) = &self.cfg.basic_auth {
            let password = secret(b.password.as_deref(), b.password_file.as_deref())
                .map_err(Failure::Permanent)?;
            req = req.basic_auth(&b.username, password);
        }
        if let Some(a) = &self.cfg.authorization {
            let creds = secret(a.credentials.as_deref(), a.credentials_file.as_deref())
                .map_err(Failure::Permanent)?
                .unwrap_or_default();
            req = req.header("Authorization", format!("{} {creds}", a.kind));
        }
        let resp = match req.body(body).send().await {
            Ok(r) => r,
            Err(e) => return Err(Failure::Retry(without_url(&e), None)),
        };
        let status = resp.status();
        if status.is_success() {
            if self.cfg.wire() == Wire::V2 {
                self.check_written(&resp, samples);
            }
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.unwrap_or_default();
        let msg = format!(
            "HTTP {status}: {}",
            text.trim().chars().take(512).collect::<String>()
        );
        if status.is_server_error()
            || (status.as_u16() == 429 && self.cfg.queue_config.retry_on_http_429)
        {
            Err(Failure::Retry(msg, retry_after))
        } else {
            Err(Failure::Permanent(msg))
        }
    }

    /// A 2.0 receiver says how many samples it wrote; fewer than sent is logged (the spec
    /// leaves a partial write to the receiver, and a retry would not change it).
    fn check_written(&self, resp: &reqwest::Response, samples: u64) {
        let written = resp
            .headers()
            .get(proto::headers::SAMPLES_WRITTEN)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(w) = written
            && w < samples
        {
            self.note_error(
                &format!("receiver wrote {w} of {samples} samples"),
                samples - w,
                false,
            );
        }
    }
}

/// A secret given inline or in a file (read at each use, so rotation needs no reload).
fn secret(inline: Option<&str>, file: Option<&str>) -> Result<Option<String>, String> {
    match (inline, file) {
        (Some(s), _) => Ok(Some(s.to_string())),
        (None, Some(f)) => std::fs::read_to_string(f)
            .map(|s| Some(s.trim().to_string()))
            .map_err(|e| format!("reading credentials file {f}: {e}")),
        (None, None) => Ok(None),
    }
}

/// reqwest's error text without the URL (which may carry credentials).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut msg = kind.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
