//! The `remote_write` section, as in prometheus.yml (Prometheus 2.42's field names and
//! defaults), and `external_labels`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::config::de_duration;

/// One remote-write target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// Receiver endpoint, e.g. `http://prometheus:9090/api/v1/write`.
    pub url: String,
    /// Names the target in metrics and logs (default: a hash of the URL, as Prometheus).
    #[serde(default)]
    pub name: Option<String>,
    /// Request timeout.
    #[serde(default = "default_timeout", deserialize_with = "de_duration")]
    pub remote_timeout: Duration,
    /// Extra HTTP headers (not the remote-write protocol headers).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization` header credentials (bearer by default).
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// Relabeling applied to each series (after the external labels are added) before it is
    /// sent; a series a step drops is not forwarded.
    #[serde(default, deserialize_with = "super::relabel::de_configs")]
    pub write_relabel_configs: Vec<super::relabel::RelabelConfig>,
    /// Queueing and retries.
    #[serde(default)]
    pub queue_config: QueueConfig,
    /// TLS settings for `https://` URLs.
    #[serde(default)]
    pub tls_config: notifiers::tls::TlsConfig,
    /// Wire protocol: `prometheus.WriteRequest` (remote write 1.0, the default) or
    /// `io.prometheus.write.v2.Request` (2.0, with a symbol table per request).
    #[serde(default = "default_message")]
    pub protobuf_message: String,
}

/// The remote-write message sent on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    V1,
    V2,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(default = "default_auth_type", rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub credentials: Option<String>,
    #[serde(default)]
    pub credentials_file: Option<String>,
}

/// `queue_config`, with Prometheus 2.42's defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Samples buffered per shard (Prometheus: 2500). promgate's queue is the database, so
    /// this only bounds how much one read from it holds.
    pub capacity: usize,
    /// Most concurrent senders (Prometheus: 200); the forwarder adds shards up to this when
    /// the queue falls behind (see the `forward` module doc).
    pub max_shards: usize,
    /// Fewest concurrent senders (Prometheus: 1).
    pub min_shards: usize,
    /// Samples per request (Prometheus: 500).
    pub max_samples_per_send: usize,
    /// Longest a sample waits for a request to fill up (Prometheus: 5s).
    #[serde(deserialize_with = "de_duration")]
    pub batch_send_deadline: Duration,
    /// First retry delay (Prometheus: 30ms).
    #[serde(deserialize_with = "de_duration")]
    pub min_backoff: Duration,
    /// Longest retry delay (Prometheus: 5s).
    #[serde(deserialize_with = "de_duration")]
    pub max_backoff: Duration,
    /// Retry requests answered 429 (Prometheus 2.42: false: they are dropped).
    pub retry_on_http_429: bool,
    /// promgate's own: most bytes of unsent records kept for this target; beyond it the
    /// oldest are dropped, counted and logged. 0: bounded only by disk.
    pub max_backlog_bytes: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            capacity: 2500,
            max_shards: 200,
            min_shards: 1,
            max_samples_per_send: 500,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            retry_on_http_429: false,
            max_backlog_bytes: 1 << 30,
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_message() -> String {
    proto::headers::PROTO_V1.to_string()
}

fn default_auth_type() -> String {
    "Bearer".to_string()
}

impl RemoteWriteConfig {
    /// The message this target sends.
    pub fn wire(&self) -> Wire {
        if self.protobuf_message == proto::headers::PROTO_V2 {
            Wire::V2
        } else {
            Wire::V1
        }
    }

    /// Whether this target may be sent remote-write 1.0 request bodies as they arrived (see
    /// `store::ReceivedBody`): it speaks 1.0 and adds no labels, so a body is exactly what it
    /// would be sent whenever its relabel rules, if any, leave every series in it as it is.
    pub fn as_received(&self, external_labels: &BTreeMap<String, String>) -> bool {
        self.wire() == Wire::V1 && external_labels.is_empty()
    }

    /// The name used in metrics: `name`, else the first 6 hex digits of a hash of the URL
    /// (Prometheus uses a hash of the whole config; the URL is stabler across edits).
    pub fn remote_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            format!(
                "{:06x}",
                xxhash_rust::xxh3::xxh3_64(self.url.as_bytes()) >> 40
            )
        })
    }

    /// The URL with any userinfo removed, for logs and metric labels.
    pub fn sanitized_url(&self) -> String {
        let Some((scheme, rest)) = self.url.split_once("://") else {
            return self.url.clone();
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        format!("{scheme}://{host}{path}")
    }

    /// Every error in this target's settings, prefixed with `remote_write[i]`.
    pub fn validate(&self, i: usize) -> Vec<String> {
        let mut e = Vec::new();
        let at = format!("remote_write[{i}]");
        let q = &self.queue_config;
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            e.push(format!(
                "{at}.url: must be an http:// or https:// URL, got {:?}",
                self.url
            ));
        }
        if let Err(err) = self.tls_config.validate() {
            e.push(format!("{at}.tls_config: {err}"));
        }
        if self.protobuf_message != proto::headers::PROTO_V1
            && self.protobuf_message != proto::headers::PROTO_V2
        {
            e.push(format!(
                "{at}.protobuf_message: must be {} or {}, got {:?}",
                proto::headers::PROTO_V1,
                proto::headers::PROTO_V2,
                self.protobuf_message
            ));
        }
        if q.max_shards == 0 || q.min_shards == 0 || q.min_shards > q.max_shards {
            e.push(format!(
                "{at}.queue_config: need 1 <= min_shards <= max_shards, got {} and {}",
                q.min_shards, q.max_shards
            ));
        }
        if self.basic_auth.is_some() && self.authorization.is_some() {
            e.push(format!("{at}: at most one of basic_auth and authorization"));
        }
        if let Some(b) = &self.basic_auth
            && b.password.is_some()
            && b.password_file.is_some()
        {
            e.push(format!(
                "{at}.basic_auth: at most one of password and password_file"
            ));
        }
        if let Some(a) = &self.authorization {
            if a.credentials.is_some() && a.credentials_file.is_some() {
                e.push(format!(
                    "{at}.authorization: at most one of credentials and credentials_file"
                ));
            }
            if a.kind.eq_ignore_ascii_case("basic") {
                e.push(format!(
                    "{at}.authorization.type: use basic_auth for Basic credentials"
                ));
            }
        }
        for h in self.headers.keys() {
            let reserved = [
                "authorization",
                "host",
                "content-encoding",
                "content-type",
                "x-prometheus-remote-write-version",
                "user-agent",
                "connection",
                "keep-alive",
                "proxy-authenticate",
                "proxy-authorization",
                "www-authenticate",
            ];
            if reserved.contains(&h.to_ascii_lowercase().as_str()) {
                e.push(format!("{at}.headers: {h} is reserved and cannot be set"));
            }
        }
        if q.max_samples_per_send == 0 {
            e.push(format!(
                "{at}.queue_config.max_samples_per_send: must be positive"
            ));
        }
        if q.min_backoff > q.max_backoff {
            e.push(format!(
                "{at}.queue_config: min_backoff must not exceed max_backoff"
            ));
        }
        if self.remote_timeout.is_zero() {
            e.push(format!("{at}.remote_timeout: must be positive"));
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(y: &str) -> RemoteWriteConfig {
        serde_norway::from_str(y).unwrap()
    }

    #[test]
    fn defaults_are_prometheus_2_42s() {
        let c = parse("url: http://p:9090/api/v1/write\n");
        assert_eq!(c.remote_timeout, Duration::from_secs(30));
        assert_eq!(c.queue_config.max_samples_per_send, 500);
        assert_eq!(c.queue_config.min_backoff, Duration::from_millis(30));
        assert!(!c.queue_config.retry_on_http_429);
        assert!(c.validate(0).is_empty());
        assert_eq!(c.remote_name().len(), 6);
    }

    #[test]
    fn validation_names_the_field() {
        let c = parse(
            "url: ftp://x\nheaders: {Authorization: x}\nprotobuf_message: io.prometheus.write.v3.Request\n",
        );
        let e = c.validate(2).join("\n");
        assert!(e.contains("remote_write[2].url"), "{e}");
        assert!(
            e.contains("remote_write[2].headers: Authorization is reserved"),
            "{e}"
        );
        assert!(e.contains("remote_write[2].protobuf_message"), "{e}");
    }

    #[test]
    fn userinfo_is_not_logged() {
        let c = parse("url: http://user:pw@host:9090/api/v1/write\n");
        assert_eq!(c.sanitized_url(), "http://host:9090/api/v1/write");
    }
}
