//! The receiver half of alertmanager.yml (`config/config.go` and `config/notifiers.go` at
//! v0.25.0): `global`, `receivers`, `templates`, with Alertmanager's defaults. Fields are
//! rejected where Alertmanager's strict YAML loading would reject them; defaults that depend on
//! `global` (SMTP settings, Slack and PagerDuty URLs, `http_config`) are applied when the
//! receiver is built ([`crate::build_receiver`]), as Alertmanager does after loading.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{Error as _, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret (password, routing key, URL carrying a token): `Debug`, `Display` and `Serialize`
/// print `<secret>`, so it never reaches a log line or an API answer.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<secret>")
    }
}

/// Parses a Prometheus duration (`model.ParseDuration`: `1d2h30m`, `500ms`, ...).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let units: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3600 * 1000),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("m", 60 * 1000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut rest = s;
    let mut total: u64 = 0;
    let mut next_unit = 0;
    if rest.is_empty() {
        return Err(format!("not a valid duration string: {s:?}"));
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("not a valid duration string: {s:?}"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("not a valid duration string: {s:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some(pos) = units[next_unit..].iter().position(|(u, _)| *u == unit) else {
            return Err(format!("not a valid duration string: {s:?}"));
        };
        let ms = units[next_unit + pos].1;
        next_unit += pos + 1;
        total = n
            .checked_mul(ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration out of range: {s:?}"))?;
    }
    Ok(Duration::from_millis(total))
}

/// serde helper for Prometheus duration strings.
pub mod duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(D::Error::custom)
    }

    pub fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", v.as_millis()))
    }
}

fn default_true() -> bool {
    true
}

fn default_resolve_timeout() -> Duration {
    Duration::from_secs(300)
}

fn default_smtp_hello() -> String {
    "localhost".into()
}

fn default_pagerduty_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".into()
}

/// `global:`, with Alertmanager's defaults. Settings for receivers promgate does not implement
/// are accepted (so an existing file loads) and ignored.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// How long an alert without `endsAt` stays firing after its last update (default 5m).
    #[serde(default = "default_resolve_timeout", with = "duration")]
    pub resolve_timeout: Duration,
    /// The HTTP client settings receivers inherit.
    #[serde(default)]
    pub http_config: HttpClientConfig,
    #[serde(default)]
    pub smtp_from: String,
    #[serde(default = "default_smtp_hello")]
    pub smtp_hello: String,
    /// `host:port` of the SMTP server.
    #[serde(default)]
    pub smtp_smarthost: String,
    #[serde(default)]
    pub smtp_auth_username: String,
    #[serde(default)]
    pub smtp_auth_password: Secret,
    #[serde(default)]
    pub smtp_auth_password_file: String,
    #[serde(default)]
    pub smtp_auth_secret: Secret,
    #[serde(default)]
    pub smtp_auth_identity: String,
    #[serde(default = "default_true")]
    pub smtp_require_tls: bool,
    #[serde(default)]
    pub slack_api_url: Option<Secret>,
    #[serde(default)]
    pub slack_api_url_file: String,
    #[serde(default = "default_pagerduty_url")]
    pub pagerduty_url: String,
    #[serde(default, skip_serializing)]
    pub opsgenie_api_url: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub opsgenie_api_key: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub opsgenie_api_key_file: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub wechat_api_url: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub wechat_api_secret: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub wechat_api_corp_id: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub victorops_api_url: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub victorops_api_key: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub victorops_api_key_file: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub telegram_api_url: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub webex_api_url: Option<IgnoredAny>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            resolve_timeout: default_resolve_timeout(),
            http_config: HttpClientConfig::default(),
            smtp_from: String::new(),
            smtp_hello: default_smtp_hello(),
            smtp_smarthost: String::new(),
            smtp_auth_username: String::new(),
            smtp_auth_password: Secret::default(),
            smtp_auth_password_file: String::new(),
            smtp_auth_secret: Secret::default(),
            smtp_auth_identity: String::new(),
            smtp_require_tls: true,
            slack_api_url: None,
            slack_api_url_file: String::new(),
            pagerduty_url: default_pagerduty_url(),
            opsgenie_api_url: None,
            opsgenie_api_key: None,
            opsgenie_api_key_file: None,
            wechat_api_url: None,
            wechat_api_secret: None,
            wechat_api_corp_id: None,
            victorops_api_url: None,
            victorops_api_key: None,
            victorops_api_key_file: None,
            telegram_api_url: None,
            webex_api_url: None,
        }
    }
}

/// prometheus/common's `HTTPClientConfig` (the parts receivers use).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpClientConfig {
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
    /// Defaults to true, as in prometheus/common.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_redirects: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_http2: Option<bool>,
    /// Accepted so a file loads, refused when a receiver is built (not implemented).
    #[serde(default, skip_serializing)]
    pub oauth2: Option<IgnoredAny>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: Secret,
    #[serde(default)]
    pub password_file: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// Defaults to `Bearer`.
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub credentials: Secret,
    #[serde(default)]
    pub credentials_file: String,
}

pub use crate::tls::TlsConfig;

/// One entry of `receivers:`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slack_configs: Vec<SlackConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_configs: Vec<EmailConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pagerduty_configs: Vec<PagerdutyConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_configs: Vec<WebhookConfig>,
    /// Alertmanager integrations promgate does not implement: accepted by the parser so the
    /// error can name them, refused by [`crate::build_receiver`].
    #[serde(default, skip_serializing)]
    pub discord_configs: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub opsgenie_configs: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub wechat_configs: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub pushover_configs: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub victorops_configs: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub sns_configs: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub telegram_configs: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub webex_configs: Option<IgnoredAny>,
}

impl ReceiverConfig {
    /// The first configured integration kind promgate does not implement, if any.
    pub fn unsupported(&self) -> Option<&'static str> {
        [
            (self.discord_configs.is_some(), "discord_configs"),
            (self.opsgenie_configs.is_some(), "opsgenie_configs"),
            (self.wechat_configs.is_some(), "wechat_configs"),
            (self.pushover_configs.is_some(), "pushover_configs"),
            (self.victorops_configs.is_some(), "victorops_configs"),
            (self.sns_configs.is_some(), "sns_configs"),
            (self.telegram_configs.is_some(), "telegram_configs"),
            (self.webex_configs.is_some(), "webex_configs"),
        ]
        .into_iter()
        .find(|(set, _)| *set)
        .map(|(_, name)| name)
    }
}

fn default_slack_color() -> String {
    r#"{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}"#.into()
}
fn tmpl(name: &str) -> String {
    format!(r#"{{{{ template "{name}" . }}}}"#)
}
fn default_slack_username() -> String {
    tmpl("slack.default.username")
}
fn default_slack_title() -> String {
    tmpl("slack.default.title")
}
fn default_slack_title_link() -> String {
    tmpl("slack.default.titlelink")
}
fn default_slack_icon_emoji() -> String {
    tmpl("slack.default.iconemoji")
}
fn default_slack_icon_url() -> String {
    tmpl("slack.default.iconurl")
}
fn default_slack_pretext() -> String {
    tmpl("slack.default.pretext")
}
fn default_slack_text() -> String {
    tmpl("slack.default.text")
}
fn default_slack_fallback() -> String {
    tmpl("slack.default.fallback")
}
fn default_slack_callback_id() -> String {
    tmpl("slack.default.callbackid")
}
fn default_slack_footer() -> String {
    tmpl("slack.default.footer")
}

/// `slack_configs:` (Alertmanager's `SlackConfig`, `DefaultSlackConfig`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    #[serde(default)]
    pub send_resolved: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_config: Option<HttpClientConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<Secret>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_url_file: String,
    #[serde(default)]
    pub channel: String,
    #[serde(default = "default_slack_username")]
    pub username: String,
    #[serde(default = "default_slack_color")]
    pub color: String,
    #[serde(default = "default_slack_title")]
    pub title: String,
    #[serde(default = "default_slack_title_link")]
    pub title_link: String,
    #[serde(default = "default_slack_pretext")]
    pub pretext: String,
    #[serde(default = "default_slack_text")]
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<SlackField>,
    #[serde(default)]
    pub short_fields: bool,
    #[serde(default = "default_slack_footer")]
    pub footer: String,
    #[serde(default = "default_slack_fallback")]
    pub fallback: String,
    #[serde(default = "default_slack_callback_id")]
    pub callback_id: String,
    #[serde(default = "default_slack_icon_emoji")]
    pub icon_emoji: String,
    #[serde(default = "default_slack_icon_url")]
    pub icon_url: String,
    #[serde(default)]
    pub image_url: String,
    #[serde(default)]
    pub thumb_url: String,
    #[serde(default)]
    pub link_names: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mrkdwn_in: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<SlackAction>,
}

impl Default for SlackConfig {
    fn default() -> Self {
        // Deserializing an empty map applies exactly the serde defaults above.
        serde_json::from_str("{}").unwrap_or_else(|_| unreachable_default())
    }
}

#[allow(clippy::panic)]
fn unreachable_default() -> SlackConfig {
    panic!("SlackConfig defaults must deserialize from an empty map")
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackField {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackAction {
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub style: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<SlackConfirm>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackConfirm {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ok_text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dismiss_text: String,
}

fn default_email_html() -> String {
    tmpl("email.default.html")
}

/// promgate's default text part (Alertmanager sends none by default; see [`crate::email`]).
fn default_email_text() -> String {
    tmpl("email.default.text")
}

/// `email_configs:` (Alertmanager's `EmailConfig`, `DefaultEmailConfig`). Empty fields take
/// the `global.smtp_*` values when the receiver is built.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    #[serde(default)]
    pub send_resolved: bool,
    pub to: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub hello: String,
    /// `host:port`.
    #[serde(default)]
    pub smarthost: String,
    #[serde(default)]
    pub auth_username: String,
    #[serde(default)]
    pub auth_password: Secret,
    #[serde(default)]
    pub auth_password_file: String,
    #[serde(default)]
    pub auth_secret: Secret,
    #[serde(default)]
    pub auth_identity: String,
    /// Header name -> template; `Subject`, `To` and `From` have defaults.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_email_html")]
    pub html: String,
    /// Defaults to promgate's `email.default.text`; `''` sends only the HTML part.
    #[serde(default = "default_email_text")]
    pub text: String,
    #[serde(default)]
    pub require_tls: Option<bool>,
    #[serde(default)]
    pub tls_config: TlsConfig,
}

fn default_pd_description() -> String {
    tmpl("pagerduty.default.description")
}
fn default_pd_client() -> String {
    tmpl("pagerduty.default.client")
}
fn default_pd_client_url() -> String {
    tmpl("pagerduty.default.clientURL")
}
fn default_pd_severity() -> String {
    "error".into()
}

/// `pagerduty_configs:` (Alertmanager's `PagerdutyConfig`, `DefaultPagerdutyConfig`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyConfig {
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_config: Option<HttpClientConfig>,
    /// Events API v1 key; promgate speaks v2 only and refuses it when building.
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub service_key: Secret,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_key_file: String,
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub routing_key: Secret,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub routing_key_file: String,
    /// Defaults to `global.pagerduty_url`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(default = "default_pd_client")]
    pub client: String,
    #[serde(default = "default_pd_client_url")]
    pub client_url: String,
    #[serde(default = "default_pd_description")]
    pub description: String,
    /// Custom details; when empty, Alertmanager's `firing`/`resolved`/`num_*` defaults.
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<PagerdutyImage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<PagerdutyLink>,
    #[serde(default)]
    pub source: String,
    #[serde(default = "default_pd_severity")]
    pub severity: String,
    #[serde(default)]
    pub class: String,
    #[serde(default)]
    pub component: String,
    #[serde(default)]
    pub group: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyImage {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub src: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alt: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub href: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyLink {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub href: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
}

/// `webhook_configs:` (Alertmanager's `WebhookConfig`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_config: Option<HttpClientConfig>,
    /// Secret because webhook URLs often carry a token.
    pub url: Secret,
    /// Alerts per message, the rest counted in `truncatedAlerts`; 0 = unlimited.
    #[serde(default)]
    pub max_alerts: u64,
}

/// `templates:`: glob patterns of template files.
pub type TemplateGlobs = Vec<PathBuf>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("30m1h").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "<secret> <secret>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<secret>\"");
    }

    #[test]
    fn slack_defaults() {
        let c = SlackConfig::default();
        assert!(!c.send_resolved);
        assert_eq!(c.title, r#"{{ template "slack.default.title" . }}"#);
    }
}
