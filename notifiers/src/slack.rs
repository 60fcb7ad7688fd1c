//! Slack incoming webhooks (`notify/slack/slack.go@v0.25.0`): the attachment Alertmanager
//! sends (title, title_link, text, color, fallback, ... templated the same way), plus Block Kit
//! `blocks` (a header with the title, a section with the text, a context with the link) so
//! current clients render a modern message while old ones fall back to the attachment; the
//! top-level `text` is the fallback line Slack uses in notifications.
//!
//! Slack allows about one message per second per webhook URL: sends to one URL are spaced by
//! [`MIN_INTERVAL`] across every receiver of the process (a process-wide table keyed by URL,
//! because two receivers can share one webhook), and a 429 is retryable with its `Retry-After`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use reqwest::Client;
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{GlobalConfig, HttpClientConfig, Secret, SlackAction, SlackConfig};
use crate::data::Data;
use crate::template::Templates;
use crate::{Notifier, NotifyError, http, truncate_runes};

/// Slack's limit for one incoming webhook.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// `maxTitleLenRunes` in Alertmanager's slack.go.
const MAX_TITLE_RUNES: usize = 1024;
/// Block Kit limits: header text 150 characters, section text 3000.
const MAX_HEADER_RUNES: usize = 150;
const MAX_SECTION_RUNES: usize = 3000;

enum ApiUrl {
    Inline(Secret),
    File(String),
}

/// One `slack_configs` entry.
pub struct Slack {
    cfg: SlackConfig,
    url: ApiUrl,
    http_config: HttpClientConfig,
    client: Client,
    templates: Arc<Templates>,
}

impl Slack {
    pub fn new(
        cfg: &SlackConfig,
        global: &GlobalConfig,
        templates: Arc<Templates>,
    ) -> Result<Slack, (&'static str, String)> {
        if cfg.api_url.is_some() && !cfg.api_url_file.is_empty() {
            return Err((
                "api_url",
                "at most one of api_url & api_url_file must be configured".into(),
            ));
        }
        let url = match (&cfg.api_url, cfg.api_url_file.as_str()) {
            (Some(u), _) => ApiUrl::Inline(u.clone()),
            (None, f) if !f.is_empty() => ApiUrl::File(f.to_string()),
            _ => match (&global.slack_api_url, global.slack_api_url_file.as_str()) {
                (Some(u), _) => ApiUrl::Inline(u.clone()),
                (None, f) if !f.is_empty() => ApiUrl::File(f.to_string()),
                _ => {
                    return Err((
                        "api_url",
                        "no global Slack API URL set either inline or in a file".into(),
                    ));
                }
            },
        };
        if let ApiUrl::Inline(u) = &url {
            url::Url::parse(u.expose()).map_err(|e| ("api_url", format!("invalid URL: {e}")))?;
        }
        for (field, text) in [
            ("title", &cfg.title),
            ("text", &cfg.text),
            ("color", &cfg.color),
            ("username", &cfg.username),
            ("channel", &cfg.channel),
            ("fallback", &cfg.fallback),
            ("pretext", &cfg.pretext),
            ("title_link", &cfg.title_link),
            ("footer", &cfg.footer),
        ] {
            templates.check(text).map_err(|e| (field, e.to_string()))?;
        }
        let http_config = cfg
            .http_config
            .clone()
            .unwrap_or_else(|| global.http_config.clone());
        let client = http::client(&http_config, http::DEFAULT_TIMEOUT)?;
        Ok(Slack {
            cfg: cfg.clone(),
            url,
            http_config,
            client,
            templates,
        })
    }

    /// The JSON body for `data`: Alertmanager's request plus `text` and `blocks`.
    pub fn payload(&self, data: &Data) -> Result<Value, NotifyError> {
        let t = |s: &str| self.templates.execute(s, data);
        let c = &self.cfg;
        let (title, _) = truncate_runes(&t(&c.title)?, MAX_TITLE_RUNES);
        let title_link = t(&c.title_link)?;
        let text = t(&c.text)?;
        let fallback = t(&c.fallback)?;
        let mrkdwn_in: Vec<String> = if c.mrkdwn_in.is_empty() {
            vec!["fallback".into(), "pretext".into(), "text".into()]
        } else {
            c.mrkdwn_in.clone()
        };
        let mut att = Attachment {
            title: title.clone(),
            title_link: title_link.clone(),
            pretext: t(&c.pretext)?,
            text: text.clone(),
            fallback: fallback.clone(),
            callback_id: t(&c.callback_id)?,
            fields: Vec::new(),
            actions: Vec::new(),
            image_url: t(&c.image_url)?,
            thumb_url: t(&c.thumb_url)?,
            footer: t(&c.footer)?,
            color: t(&c.color)?,
            mrkdwn_in,
        };
        for f in &c.fields {
            att.fields.push(Field {
                title: t(&f.title)?,
                value: t(&f.value)?,
                short: f.short.unwrap_or(c.short_fields),
            });
        }
        for a in &c.actions {
            att.actions.push(render_action(a, &t)?);
        }
        let mut body = serde_json::to_value(Request {
            channel: t(&c.channel)?,
            username: t(&c.username)?,
            icon_emoji: t(&c.icon_emoji)?,
            icon_url: t(&c.icon_url)?,
            link_names: c.link_names,
            attachments: vec![att],
        })
        .map_err(|e| NotifyError::permanent("encode", e.to_string()))?;
        let mut blocks = Vec::new();
        if !title.is_empty() {
            let (header, _) = truncate_runes(&title, MAX_HEADER_RUNES);
            blocks.push(json!({"type": "header", "text": {"type": "plain_text", "text": header}}));
        }
        if !text.is_empty() {
            let (section, _) = truncate_runes(&text, MAX_SECTION_RUNES);
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": section}}));
        }
        if !title_link.is_empty() {
            blocks.push(json!({"type": "context", "elements": [
                {"type": "mrkdwn", "text": format!("<{}|{}>", title_link, "View in promgate")}
            ]}));
        }
        if let Value::Object(m) = &mut body {
            if !fallback.is_empty() {
                m.insert("text".into(), Value::String(fallback));
            }
            if !blocks.is_empty() {
                m.insert("blocks".into(), Value::Array(blocks));
            }
        }
        Ok(body)
    }

    fn url(&self) -> Result<String, NotifyError> {
        match &self.url {
            ApiUrl::Inline(u) => Ok(u.expose().to_string()),
            ApiUrl::File(f) => http::read_secret_file(f),
        }
    }
}

fn render_action(
    a: &SlackAction,
    t: &dyn Fn(&str) -> Result<String, crate::TemplateError>,
) -> Result<SlackAction, NotifyError> {
    Ok(SlackAction {
        kind: t(&a.kind)?,
        text: t(&a.text)?,
        url: t(&a.url)?,
        style: t(&a.style)?,
        name: t(&a.name)?,
        value: t(&a.value)?,
        confirm: match &a.confirm {
            Some(c) => Some(crate::config::SlackConfirm {
                title: t(&c.title)?,
                text: t(&c.text)?,
                ok_text: t(&c.ok_text)?,
                dismiss_text: t(&c.dismiss_text)?,
            }),
            None => None,
        },
    })
}

#[derive(Serialize)]
struct Request {
    #[serde(skip_serializing_if = "String::is_empty")]
    channel: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    icon_emoji: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    icon_url: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    link_names: bool,
    attachments: Vec<Attachment>,
}

#[derive(Serialize)]
struct Attachment {
    #[serde(skip_serializing_if = "String::is_empty")]
    title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    title_link: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pretext: String,
    text: String,
    fallback: String,
    callback_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<Field>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    actions: Vec<SlackAction>,
    #[serde(skip_serializing_if = "String::is_empty")]
    image_url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    thumb_url: String,
    footer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    color: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mrkdwn_in: Vec<String>,
}

#[derive(Serialize)]
struct Field {
    title: String,
    value: String,
    short: bool,
}

type Slots = parking_lot::Mutex<HashMap<String, tokio::time::Instant>>;

/// When each webhook URL may next be used.
fn slots() -> &'static Slots {
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    SLOTS.get_or_init(Default::default)
}

/// Waits for this URL's next one-second slot and books it.
async fn wait_for_slot(url: &str) {
    let now = tokio::time::Instant::now();
    let at = {
        let mut m = slots().lock();
        // Forget idle URLs so the table stays small.
        m.retain(|_, t| *t + MIN_INTERVAL > now);
        let at = m.get(url).copied().map_or(now, |t| t.max(now));
        m.insert(url.to_string(), at + MIN_INTERVAL);
        at
    };
    tokio::time::sleep_until(at).await;
}

impl Notifier for Slack {
    fn notify<'a>(&'a self, data: &'a Data) -> BoxFuture<'a, Result<(), NotifyError>> {
        async move {
            let body = self.payload(data)?;
            let body = serde_json::to_vec(&body)
                .map_err(|e| NotifyError::permanent("encode", e.to_string()))?;
            let url = self.url()?;
            wait_for_slot(&url).await;
            http::post_json(&self.client, &url, &self.http_config, body).await?;
            Ok(())
        }
        .boxed()
    }
}
