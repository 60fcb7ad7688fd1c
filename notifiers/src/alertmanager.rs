//! Alertmanager as a downstream, as Prometheus 2.42 hands alerts over
//! (`notifier/notifier.go@v2.42.0`): the `alerting.alertmanagers` entries of prometheus.yml
//! (static targets only), and a client that POSTs `PostableAlert`s to `/api/v2/alerts` on every
//! target. A batch counts as delivered when at least one Alertmanager took it, as in Prometheus.
//! When to resend and what `endsAt` to set are the caller's (the gateway's rule manager).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Client;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize, Serializer};

use crate::config::{Authorization, BasicAuth, HttpClientConfig, Secret, TlsConfig, duration};
use crate::data::KV;
use crate::{NotifyError, http};

fn default_scheme() -> String {
    "http".into()
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_api_version() -> String {
    "v2".into()
}
fn default_path_prefix() -> String {
    "/".into()
}

/// One `alerting.alertmanagers` entry (Prometheus's `AlertmanagerConfig`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default = "default_scheme")]
    pub scheme: String,
    #[serde(default = "default_path_prefix")]
    pub path_prefix: String,
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// Only `v2`: Alertmanager 0.25 still serves v1, but Prometheus's v1 client is deprecated.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_redirects: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_http2: Option<bool>,
    /// Service discovery and relabelling are accepted so a prometheus.yml loads, and refused
    /// by [`AlertmanagerClient::new`] with their name.
    #[serde(default, skip_serializing)]
    pub relabel_configs: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub alert_relabel_configs: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub file_sd_configs: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub dns_sd_configs: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub kubernetes_sd_configs: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub consul_sd_configs: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub http_sd_configs: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub oauth2: Option<IgnoredAny>,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            static_configs: Vec::new(),
            scheme: default_scheme(),
            path_prefix: default_path_prefix(),
            timeout: default_timeout(),
            api_version: default_api_version(),
            basic_auth: None,
            authorization: None,
            bearer_token: None,
            bearer_token_file: None,
            tls_config: None,
            proxy_url: None,
            follow_redirects: None,
            enable_http2: None,
            relabel_configs: None,
            alert_relabel_configs: None,
            file_sd_configs: None,
            dns_sd_configs: None,
            kubernetes_sd_configs: None,
            consul_sd_configs: None,
            http_sd_configs: None,
            oauth2: None,
        }
    }
}

impl AlertmanagerConfig {
    fn http_config(&self) -> HttpClientConfig {
        HttpClientConfig {
            basic_auth: self.basic_auth.clone(),
            authorization: self.authorization.clone(),
            bearer_token: self.bearer_token.clone(),
            bearer_token_file: self.bearer_token_file.clone(),
            tls_config: self.tls_config.clone(),
            proxy_url: self.proxy_url.clone(),
            follow_redirects: self.follow_redirects,
            enable_http2: self.enable_http2,
            oauth2: self.oauth2,
        }
    }
}

/// `static_configs: [{targets: [...], labels: {...}}]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Alertmanager's `models.PostableAlert`, as Prometheus sends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    pub labels: KV,
    #[serde(default)]
    pub annotations: KV,
    #[serde(
        serialize_with = "ser_opt_time",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(
        serialize_with = "ser_opt_time",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(
        rename = "generatorURL",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub generator_url: String,
}

/// As Prometheus writes these times: go-openapi's `strfmt.DateTime`, RFC 3339 with exactly
/// three fractional digits (`.150Z`, where Go's own `time.Time` JSON would write `.15Z`).
fn ser_opt_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        None => s.serialize_none(),
    }
}

/// A config that cannot be used, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("alerting.alertmanagers[{index}]: {field}: {message}")]
pub struct AlertmanagerConfigError {
    pub index: usize,
    pub field: &'static str,
    pub message: String,
}

/// Sends alerts to the Alertmanagers of one `alertmanagers` entry.
pub struct AlertmanagerClient {
    urls: Vec<String>,
    http_config: HttpClientConfig,
    client: Client,
}

impl AlertmanagerClient {
    /// `index` is the entry's position, for error messages.
    pub fn new(cfg: &AlertmanagerConfig, index: usize) -> Result<Self, AlertmanagerConfigError> {
        let e = |field: &'static str, message: String| AlertmanagerConfigError {
            index,
            field,
            message,
        };
        for (set, name) in [
            (cfg.relabel_configs.is_some(), "relabel_configs"),
            (cfg.alert_relabel_configs.is_some(), "alert_relabel_configs"),
            (cfg.file_sd_configs.is_some(), "file_sd_configs"),
            (cfg.dns_sd_configs.is_some(), "dns_sd_configs"),
            (cfg.kubernetes_sd_configs.is_some(), "kubernetes_sd_configs"),
            (cfg.consul_sd_configs.is_some(), "consul_sd_configs"),
            (cfg.http_sd_configs.is_some(), "http_sd_configs"),
        ] {
            if set {
                return Err(e(
                    name,
                    "not supported by promgate (use static_configs)".into(),
                ));
            }
        }
        if cfg.api_version != "v2" {
            return Err(e(
                "api_version",
                format!("{:?} is not supported, only v2", cfg.api_version),
            ));
        }
        if cfg.scheme != "http" && cfg.scheme != "https" {
            return Err(e("scheme", format!("unknown scheme {:?}", cfg.scheme)));
        }
        let mut urls = Vec::new();
        for sc in &cfg.static_configs {
            for t in &sc.targets {
                let prefix = cfg.path_prefix.trim_end_matches('/');
                let prefix = if prefix.is_empty() || prefix.starts_with('/') {
                    prefix.to_string()
                } else {
                    format!("/{prefix}")
                };
                let u = format!("{}://{}{}/api/v2/alerts", cfg.scheme, t, prefix);
                url::Url::parse(&u)
                    .map_err(|err| e("static_configs", format!("invalid target {t:?}: {err}")))?;
                urls.push(u);
            }
        }
        if urls.is_empty() {
            return Err(e("static_configs", "no targets".into()));
        }
        let http_config = cfg.http_config();
        let client = http::client(&http_config, cfg.timeout).map_err(|(f, m)| e(f, m))?;
        Ok(AlertmanagerClient {
            urls,
            http_config,
            client,
        })
    }

    /// The `/api/v2/alerts` URLs alerts go to.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// POSTs the batch to every Alertmanager concurrently; Ok when at least one accepted it,
    /// otherwise the first error (retryable when any failure was).
    pub async fn send(&self, alerts: &[PostableAlert]) -> Result<(), NotifyError> {
        let body = serde_json::to_vec(alerts)
            .map_err(|e| NotifyError::permanent("encode", e.to_string()))?;
        let sends = self.urls.iter().map(|u| {
            let body = body.clone();
            async move { http::post_json(&self.client, u, &self.http_config, body).await }
        });
        let results = futures_util::future::join_all(sends).await;
        let mut first_err: Option<NotifyError> = None;
        let mut any_retryable = false;
        for r in results {
            match r {
                Ok(_) => return Ok(()),
                Err(e) => {
                    any_retryable |= e.retryable;
                    first_err.get_or_insert(e);
                }
            }
        }
        let mut err = first_err
            .unwrap_or_else(|| NotifyError::permanent("config", "no Alertmanager configured"));
        err.retryable = any_retryable;
        Err(err)
    }
}

/// Prometheus's batch size for one POST (`maxBatchSize`).
pub const MAX_BATCH: usize = 64;

/// Prometheus's default `--rules.alert.resend-delay`.
pub const DEFAULT_RESEND_DELAY: Duration = Duration::from_secs(60);

/// The `endsAt` Prometheus gives a firing alert (`rules/manager.go` `sendAlerts`,
/// `ValidUntil`): four times the larger of the resend delay and the evaluation interval after
/// `now`, so the alert resolves by itself in Alertmanager if Prometheus stops re-sending it.
pub fn firing_ends_at(
    now: DateTime<Utc>,
    resend_delay: Duration,
    eval_interval: Duration,
) -> DateTime<Utc> {
    let delta = resend_delay.max(eval_interval);
    let delta = chrono::Duration::from_std(delta * 4).unwrap_or(chrono::Duration::MAX);
    now.checked_add_signed(delta)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Whether an alert is due to be (re-)sent: Prometheus sends an alert at each evaluation when
/// it has never been sent or was last sent at least `resend_delay` ago (`needsSending`), and a
/// resolved alert until it has been sent once after resolving.
pub fn needs_sending(
    now: DateTime<Utc>,
    last_sent: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    resend_delay: Duration,
) -> bool {
    let Some(last) = last_sent else {
        return true;
    };
    if let Some(r) = resolved_at
        && last < r
    {
        return true;
    }
    let delay = chrono::Duration::from_std(resend_delay).unwrap_or(chrono::Duration::MAX);
    last.checked_add_signed(delay).is_none_or(|t| t <= now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ends_at_is_four_resend_delays() {
        let now = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().unwrap();
        assert_eq!(
            firing_ends_at(now, Duration::from_secs(60), Duration::from_secs(15)),
            now + chrono::Duration::minutes(4)
        );
        assert_eq!(
            firing_ends_at(now, Duration::from_secs(60), Duration::from_secs(120)),
            now + chrono::Duration::minutes(8)
        );
    }

    /// The digits Prometheus 2.42 writes (`same_shape_as_prometheus_sends` compares a real
    /// capture, but only a capture at a round tenth of a second shows the difference).
    #[test]
    fn times_have_three_fractional_digits_as_prometheus_writes_them() {
        let at = |ms: u32| {
            let t = Utc
                .with_ymd_and_hms(2026, 11, 22, 11, 6, 25)
                .single()
                .unwrap()
                + chrono::Duration::milliseconds(i64::from(ms))
                + chrono::Duration::microseconds(999);
            let a = PostableAlert {
                labels: KV::new(),
                annotations: KV::new(),
                starts_at: Some(t),
                ends_at: None,
                generator_url: String::new(),
            };
            serde_json::to_value(&a).unwrap()["startsAt"].clone()
        };
        assert_eq!(at(150), "2026-11-22T11:06:25.150Z");
        assert_eq!(at(0), "2026-11-22T11:06:25.000Z");
        assert_eq!(at(7), "2026-11-22T11:06:25.007Z");
    }

    #[test]
    fn resend_rules() {
        let t = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().unwrap();
        let m = chrono::Duration::minutes(1);
        let d = Duration::from_secs(60);
        assert!(needs_sending(t, None, None, d));
        assert!(!needs_sending(t + m / 2, Some(t), None, d));
        assert!(needs_sending(t + m, Some(t), None, d));
        assert!(needs_sending(t + m / 2, Some(t), Some(t + m / 4), d));
    }
}
