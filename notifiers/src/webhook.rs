//! Generic webhooks (`notify/webhook/webhook.go@v0.25.0`): the webhook JSON version 4, with
//! `max_alerts` truncation counted in `truncatedAlerts`.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use reqwest::Client;

use crate::config::{GlobalConfig, HttpClientConfig, WebhookConfig};
use crate::data::Data;
use crate::{Notifier, NotifyError, http};

/// One `webhook_configs` entry.
pub struct Webhook {
    url: String,
    max_alerts: u64,
    http_config: HttpClientConfig,
    client: Client,
}

impl Webhook {
    pub fn new(
        cfg: &WebhookConfig,
        global: &GlobalConfig,
    ) -> Result<Webhook, (&'static str, String)> {
        let url = cfg.url.expose();
        let parsed = url::Url::parse(url).map_err(|e| ("url", format!("invalid URL: {e}")))?;
        if parsed.scheme() != "http" && parsed.scheme() != "https" {
            return Err(("url", "scheme required for webhook url".into()));
        }
        let http_config = cfg
            .http_config
            .clone()
            .unwrap_or_else(|| global.http_config.clone());
        let client = http::client(&http_config, http::DEFAULT_TIMEOUT)?;
        Ok(Webhook {
            url: url.to_string(),
            max_alerts: cfg.max_alerts,
            http_config,
            client,
        })
    }

    /// The body Alertmanager would POST for `data`.
    pub fn payload(&self, data: &Data) -> Result<Vec<u8>, NotifyError> {
        payload(data, self.max_alerts)
    }
}

/// The webhook JSON for `data` truncated to `max_alerts` (0 = all).
pub fn payload(data: &Data, max_alerts: u64) -> Result<Vec<u8>, NotifyError> {
    let body = if max_alerts > 0 && data.alerts.len() as u64 > max_alerts {
        let mut d = data.clone();
        d.truncate_alerts(max_alerts);
        serde_json::to_vec(&d)
    } else {
        serde_json::to_vec(data)
    };
    body.map_err(|e| NotifyError::permanent("encode", e.to_string()))
}

impl Notifier for Webhook {
    fn notify<'a>(&'a self, data: &'a Data) -> BoxFuture<'a, Result<(), NotifyError>> {
        async move {
            let body = self.payload(data)?;
            http::post_json(&self.client, &self.url, &self.http_config, body).await?;
            Ok(())
        }
        .boxed()
    }
}

#[allow(dead_code)]
fn _assert_object_safe(n: Webhook) -> Arc<dyn Notifier> {
    Arc::new(n)
}
