//! Logging setup and HTTP self-metrics (`/metrics` itself is served by `push::handler::metrics`,
//! beside the pushed groups).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Structured logs to stderr; `RUST_LOG` filters (default `info`), `PROMGATE_LOG_FORMAT=json`
/// switches to JSON lines.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if std::env::var("PROMGATE_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    handler: String,
    code: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HandlerLabel {
    handler: String,
}

/// Requests by route and status, and their duration.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<HandlerLabel, Histogram>,
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
        };
        let r = registry.sub_registry_with_prefix("http");
        r.register(
            "requests",
            "HTTP requests by route and status code",
            m.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "HTTP request duration by route",
            m.duration.clone(),
        );
        m
    }

    pub fn observe(&self, handler: String, code: u16, elapsed: Duration) {
        self.duration
            .get_or_create(&HandlerLabel {
                handler: handler.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels { handler, code })
            .inc();
    }
}
