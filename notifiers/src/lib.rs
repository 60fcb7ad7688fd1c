//! Alert receivers with Alertmanager 0.25's payloads, templates and retry rules.
//!
//! Architecture: [`config`] is the receiver half of alertmanager.yml; [`build_receiver`] turns
//! one `receivers:` entry into [`Integration`]s, each an `Arc<dyn Notifier>` (one file per kind:
//! [`slack`], [`email`], [`pagerduty`], [`webhook`]) that renders [`data::Data`] through
//! [`template::Templates`] (Go `text/template` with Alertmanager's function map and
//! `default.tmpl`) and sends it once. Retrying, backoff, grouping and the durable outbox belong
//! to the caller (the gateway); a [`NotifyError`] says whether a retry can help and when.
//! [`alertmanager`] hands alerts to an existing Alertmanager as Prometheus 2.42 does.
//!
//! This crate depends on no other workspace crate.

#![forbid(unsafe_code)]

pub mod alertmanager;
pub mod config;
pub mod data;
pub mod email;
pub mod http;
pub mod pagerduty;
pub mod slack;
pub mod template;
pub mod tls;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

pub use config::{GlobalConfig, ReceiverConfig, Secret};
pub use data::{Alert, Data, KV, Status};
pub use template::{TemplateError, Templates};

/// Sends one notification for a group of alerts. Object safe: integrations are
/// `Arc<dyn Notifier>`.
pub trait Notifier: Send + Sync {
    fn notify<'a>(&'a self, data: &'a Data) -> BoxFuture<'a, Result<(), NotifyError>>;
}

/// Why a notification was not delivered, and whether trying again can help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NotifyError {
    /// 5xx, 429, network errors and timeouts are retryable; other 4xx, template and
    /// configuration errors are not.
    pub retryable: bool,
    /// The receiver's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
    /// A metric label: `http_4xx`, `http_5xx`, `http_429`, `network`, `timeout`, `smtp`,
    /// `template`, `config`, `encode`.
    pub reason: &'static str,
    /// What went wrong, for the log; never contains a secret (URLs are redacted).
    pub message: String,
}

impl NotifyError {
    pub fn permanent(reason: &'static str, message: impl Into<String>) -> NotifyError {
        NotifyError {
            retryable: false,
            retry_after: None,
            reason,
            message: message.into(),
        }
    }

    pub fn retryable(reason: &'static str, message: impl Into<String>) -> NotifyError {
        NotifyError {
            retryable: true,
            retry_after: None,
            reason,
            message: message.into(),
        }
    }
}

impl From<TemplateError> for NotifyError {
    fn from(e: TemplateError) -> Self {
        NotifyError::permanent("template", e.to_string())
    }
}

/// One configured integration of a receiver (`slack_configs[index]`, ...).
#[derive(Clone)]
pub struct Integration {
    /// `slack`, `email`, `pagerduty` or `webhook`.
    pub name: &'static str,
    /// Position in its `*_configs` list.
    pub index: usize,
    /// Whether resolved groups are sent (the caller filters).
    pub send_resolved: bool,
    pub notifier: Arc<dyn Notifier>,
}

impl Integration {
    /// What this integration is sent for a group, or `None` when it sends nothing: with
    /// `send_resolved: false` resolved alerts are left out, and a group with nothing firing is
    /// not sent (Alertmanager's `RetryStage`).
    pub fn data_for<'d>(&self, data: &'d Data) -> Option<std::borrow::Cow<'d, Data>> {
        if self.send_resolved {
            return Some(std::borrow::Cow::Borrowed(data));
        }
        data.firing_only().map(std::borrow::Cow::Owned)
    }
}

impl std::fmt::Debug for Integration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Integration")
            .field("name", &self.name)
            .field("index", &self.index)
            .field("send_resolved", &self.send_resolved)
            .finish()
    }
}

/// A receiver that cannot be built, naming where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("receiver {receiver:?}: {integration}[{index}]: {field}: {message}")]
pub struct ConfigError {
    pub receiver: String,
    /// `slack_configs`, `email_configs`, ...
    pub integration: &'static str,
    pub index: usize,
    pub field: &'static str,
    pub message: String,
}

/// Builds the integrations of one receiver, applying `global` defaults as Alertmanager does
/// after loading its file. Every template is parsed here so a bad one fails the config check.
pub fn build_receiver(
    cfg: &ReceiverConfig,
    global: &GlobalConfig,
    templates: Arc<Templates>,
) -> Result<Vec<Integration>, ConfigError> {
    if let Some(kind) = cfg.unsupported() {
        return Err(ConfigError {
            receiver: cfg.name.clone(),
            integration: kind,
            index: 0,
            field: kind,
            message: "this Alertmanager integration is not supported by promgate".into(),
        });
    }
    let mut out = Vec::new();
    for (i, c) in cfg.slack_configs.iter().enumerate() {
        let n = slack::Slack::new(c, global, templates.clone())
            .map_err(|(field, message)| err(cfg, "slack_configs", i, field, message))?;
        out.push(Integration {
            name: "slack",
            index: i,
            send_resolved: c.send_resolved,
            notifier: Arc::new(n),
        });
    }
    for (i, c) in cfg.email_configs.iter().enumerate() {
        let n = email::Email::new(c, global, templates.clone())
            .map_err(|(field, message)| err(cfg, "email_configs", i, field, message))?;
        out.push(Integration {
            name: "email",
            index: i,
            send_resolved: c.send_resolved,
            notifier: Arc::new(n),
        });
    }
    for (i, c) in cfg.pagerduty_configs.iter().enumerate() {
        let n = pagerduty::Pagerduty::new(c, global, templates.clone())
            .map_err(|(field, message)| err(cfg, "pagerduty_configs", i, field, message))?;
        out.push(Integration {
            name: "pagerduty",
            index: i,
            send_resolved: c.send_resolved,
            notifier: Arc::new(n),
        });
    }
    for (i, c) in cfg.webhook_configs.iter().enumerate() {
        let n = webhook::Webhook::new(c, global)
            .map_err(|(field, message)| err(cfg, "webhook_configs", i, field, message))?;
        out.push(Integration {
            name: "webhook",
            index: i,
            send_resolved: c.send_resolved,
            notifier: Arc::new(n),
        });
    }
    Ok(out)
}

fn err(
    cfg: &ReceiverConfig,
    integration: &'static str,
    index: usize,
    field: &'static str,
    message: String,
) -> ConfigError {
    ConfigError {
        receiver: cfg.name.clone(),
        integration,
        index,
        field,
        message,
    }
}

/// `notify.TruncateInRunes`: at most `n` characters, the last one `…` when cut.
pub fn truncate_runes(s: &str, n: usize) -> (String, bool) {
    if s.chars().count() <= n {
        return (s.to_string(), false);
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    (out, true)
}
