//! PagerDuty Events API v2 (`notify/pagerduty/pagerduty.go@v0.25.0` `notifyV2`): `trigger`
//! while any alert of the group fires, `resolve` once all are resolved, `dedup_key` = SHA-256
//! of the group key (Alertmanager's `notify.Key.Hash`) so trigger and resolve meet the same
//! incident; summary cut to 1024 characters; an event over 512,000 bytes has its custom details
//! replaced by a note. 202 is delivered, 400 permanent, 429 and 5xx retryable.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use reqwest::Client;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{GlobalConfig, HttpClientConfig, PagerdutyConfig, Secret};
use crate::data::{Data, Status};
use crate::template::Templates;
use crate::{Notifier, NotifyError, http, truncate_runes};

/// `maxEventSize`.
pub const MAX_EVENT_BYTES: usize = 512_000;
/// `maxV2SummaryLenRunes`.
pub const MAX_SUMMARY_RUNES: usize = 1024;

/// Alertmanager's `DefaultPagerdutyDetails`, added to the configured details.
const DEFAULT_DETAILS: [(&str, &str); 4] = [
    (
        "firing",
        r#"{{ template "pagerduty.default.instances" .Alerts.Firing }}"#,
    ),
    (
        "resolved",
        r#"{{ template "pagerduty.default.instances" .Alerts.Resolved }}"#,
    ),
    ("num_firing", "{{ .Alerts.Firing | len }}"),
    ("num_resolved", "{{ .Alerts.Resolved | len }}"),
];

enum RoutingKey {
    Inline(Secret),
    File(String),
}

/// One `pagerduty_configs` entry.
pub struct Pagerduty {
    cfg: PagerdutyConfig,
    routing_key: RoutingKey,
    url: String,
    details: BTreeMap<String, String>,
    http_config: HttpClientConfig,
    client: Client,
    templates: Arc<Templates>,
}

/// The dedup key for a group: hex SHA-256 of the group key.
pub fn dedup_key(group_key: &str) -> String {
    let digest = Sha256::digest(group_key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Pagerduty {
    pub fn new(
        cfg: &PagerdutyConfig,
        global: &GlobalConfig,
        templates: Arc<Templates>,
    ) -> Result<Pagerduty, (&'static str, String)> {
        if !cfg.service_key.is_empty() || !cfg.service_key_file.is_empty() {
            return Err((
                "service_key",
                "the Events API v1 (service_key) is not supported by promgate; use routing_key (Events API v2)".into(),
            ));
        }
        let routing_key = match (cfg.routing_key.is_empty(), cfg.routing_key_file.is_empty()) {
            (false, true) => RoutingKey::Inline(cfg.routing_key.clone()),
            (true, false) => RoutingKey::File(cfg.routing_key_file.clone()),
            (true, true) => {
                return Err((
                    "routing_key",
                    "missing service or routing key in PagerDuty config".into(),
                ));
            }
            (false, false) => {
                return Err((
                    "routing_key",
                    "at most one of routing_key & routing_key_file must be configured".into(),
                ));
            }
        };
        let url = if cfg.url.is_empty() {
            global.pagerduty_url.clone()
        } else {
            cfg.url.clone()
        };
        url::Url::parse(&url).map_err(|e| ("url", format!("invalid URL: {e}")))?;
        let mut details = cfg.details.clone();
        for (k, v) in DEFAULT_DETAILS {
            details
                .entry(k.to_string())
                .or_insert_with(|| v.to_string());
        }
        let mut cfg = cfg.clone();
        // notifyV2: an empty severity is "error".
        if cfg.severity.is_empty() {
            cfg.severity = "error".into();
        }
        if cfg.source.is_empty() {
            cfg.source = cfg.client.clone();
        }
        for (field, text) in [
            ("description", &cfg.description),
            ("client", &cfg.client),
            ("client_url", &cfg.client_url),
            ("source", &cfg.source),
            ("severity", &cfg.severity),
            ("class", &cfg.class),
            ("component", &cfg.component),
            ("group", &cfg.group),
        ] {
            templates.check(text).map_err(|e| (field, e.to_string()))?;
        }
        for text in details.values() {
            templates
                .check(text)
                .map_err(|e| ("details", e.to_string()))?;
        }
        let http_config = cfg
            .http_config
            .clone()
            .unwrap_or_else(|| global.http_config.clone());
        let client = http::client(&http_config, http::DEFAULT_TIMEOUT)?;
        Ok(Pagerduty {
            cfg,
            routing_key,
            url,
            details,
            http_config,
            client,
            templates,
        })
    }

    /// The Events API v2 body for `data`, at most [`MAX_EVENT_BYTES`].
    pub fn payload(&self, data: &Data) -> Result<Vec<u8>, NotifyError> {
        let t = |s: &str| self.templates.execute(s, data);
        let c = &self.cfg;
        let mut details = BTreeMap::new();
        for (k, v) in &self.details {
            details.insert(k.clone(), t(v)?);
        }
        let (summary, _) = truncate_runes(&t(&c.description)?, MAX_SUMMARY_RUNES);
        let key = match &self.routing_key {
            RoutingKey::Inline(k) => k.expose().to_string(),
            RoutingKey::File(f) => http::read_secret_file(f)?,
        };
        let routing_key = t(&key)?;
        if routing_key.is_empty() {
            return Err(NotifyError::permanent(
                "config",
                "routing key cannot be empty",
            ));
        }
        let mut images = Vec::new();
        for i in &c.images {
            let img = Image {
                src: t(&i.src)?,
                alt: t(&i.alt)?,
                href: t(&i.href)?,
            };
            if !img.src.is_empty() {
                images.push(img);
            }
        }
        let mut links = Vec::new();
        for l in &c.links {
            let link = Link {
                href: t(&l.href)?,
                text: t(&l.text)?,
            };
            if !link.href.is_empty() {
                links.push(link);
            }
        }
        let mut msg = Message {
            routing_key,
            dedup_key: dedup_key(&data.group_key),
            event_action: match data.status {
                Status::Firing => "trigger",
                Status::Resolved => "resolve",
            },
            payload: Payload {
                summary,
                source: t(&c.source)?,
                severity: t(&c.severity)?,
                class: t(&c.class)?,
                component: t(&c.component)?,
                group: t(&c.group)?,
                custom_details: details,
            },
            client: t(&c.client)?,
            client_url: t(&c.client_url)?,
            images,
            links,
        };
        let enc = |m: &Message| {
            serde_json::to_vec(m).map_err(|e| NotifyError::permanent("encode", e.to_string()))
        };
        let mut body = enc(&msg)?;
        if body.len() > MAX_EVENT_BYTES {
            tracing::warn!(
                size = body.len(),
                limit = MAX_EVENT_BYTES,
                "Truncated PagerDuty custom details because the event exceeds the limit."
            );
            msg.payload.custom_details = BTreeMap::from([(
                "error".to_string(),
                "Custom details have been removed because the original event exceeds the maximum size of 512KB".to_string(),
            )]);
            body = enc(&msg)?;
        }
        Ok(body)
    }
}

#[derive(Serialize)]
struct Message {
    routing_key: String,
    dedup_key: String,
    event_action: &'static str,
    payload: Payload,
    #[serde(skip_serializing_if = "String::is_empty")]
    client: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    client_url: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    images: Vec<Image>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<Link>,
}

#[derive(Serialize)]
struct Payload {
    summary: String,
    source: String,
    severity: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    class: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    component: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    group: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    custom_details: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Image {
    src: String,
    alt: String,
    href: String,
}

#[derive(Serialize)]
struct Link {
    href: String,
    text: String,
}

impl Notifier for Pagerduty {
    fn notify<'a>(&'a self, data: &'a Data) -> BoxFuture<'a, Result<(), NotifyError>> {
        async move {
            let body = self.payload(data)?;
            http::post_json(&self.client, &self.url, &self.http_config, body).await?;
            Ok(())
        }
        .boxed()
    }
}
