//! The HTTP side shared by the receivers: a reqwest client per integration built from
//! prometheus/common's `http_config` (auth, TLS, redirects, proxy), Alertmanager's
//! `User-Agent`, and one retry classification (`notify/util.go` `Retrier` at v0.25.0, widened
//! as promgate's issue asks: 429 is retryable for every receiver, not only PagerDuty, and
//! `Retry-After` is passed back to the caller).

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, StatusCode};

use crate::NotifyError;
use crate::config::{HttpClientConfig, TlsConfig};

/// What Alertmanager 0.25 sends.
pub const USER_AGENT: &str = "Alertmanager/0.25.0";

/// Per-request timeout when the caller sets none (Alertmanager relies on the notification
/// context; promgate bounds every request).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds a client for one integration. Errors name the field.
pub fn client(cfg: &HttpClientConfig, timeout: Duration) -> Result<Client, (&'static str, String)> {
    if cfg.oauth2.is_some() {
        return Err((
            "http_config.oauth2",
            "oauth2 is not supported by promgate".into(),
        ));
    }
    let auth_count = usize::from(cfg.basic_auth.is_some())
        + usize::from(cfg.authorization.is_some())
        + usize::from(cfg.bearer_token.is_some() || cfg.bearer_token_file.is_some());
    if auth_count > 1 {
        return Err((
            "http_config",
            "at most one of basic_auth, authorization and bearer_token(_file) must be configured"
                .into(),
        ));
    }
    if let Some(b) = &cfg.basic_auth
        && !b.password.is_empty()
        && !b.password_file.is_empty()
    {
        return Err((
            "http_config.basic_auth",
            "at most one of password and password_file must be configured".into(),
        ));
    }
    if let Some(a) = &cfg.authorization {
        if a.kind.eq_ignore_ascii_case("basic") {
            return Err((
                "http_config.authorization.type",
                "authorization type cannot be set to \"basic\", use \"basic_auth\" instead".into(),
            ));
        }
        if !a.credentials.is_empty() && !a.credentials_file.is_empty() {
            return Err((
                "http_config.authorization",
                "at most one of credentials and credentials_file must be configured".into(),
            ));
        }
    }
    let mut b = Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(USER_AGENT)
        .tls_backend_rustls();
    if !cfg.follow_redirects.unwrap_or(true) {
        b = b.redirect(reqwest::redirect::Policy::none());
    }
    if cfg.enable_http2 == Some(false) {
        b = b.http1_only();
    }
    match &cfg.proxy_url {
        Some(p) => {
            let proxy = reqwest::Proxy::all(p)
                .map_err(|e| ("http_config.proxy_url", format!("invalid proxy URL: {e}")))?;
            b = b.proxy(proxy);
        }
        None => b = b.no_proxy(),
    }
    if let Some(tls) = &cfg.tls_config {
        b = apply_tls(b, tls)?;
    }
    b.build()
        .map_err(|e| ("http_config", format!("cannot build HTTP client: {e}")))
}

fn apply_tls(
    b: reqwest::ClientBuilder,
    tls: &TlsConfig,
) -> Result<reqwest::ClientBuilder, (&'static str, String)> {
    let cfg = tls
        .client_config()
        .map_err(|e| ("http_config.tls_config", e.to_string()))?;
    Ok(b.tls_backend_preconfigured(cfg))
}

/// Adds the configured authentication; `*_file` secrets are read per request, as
/// prometheus/common does, so a rotated file takes effect without a reload.
pub fn authorize(
    req: reqwest::RequestBuilder,
    cfg: &HttpClientConfig,
) -> Result<reqwest::RequestBuilder, NotifyError> {
    if let Some(b) = &cfg.basic_auth {
        let password = if b.password_file.is_empty() {
            b.password.expose().to_string()
        } else {
            read_secret_file(&b.password_file)?
        };
        return Ok(req.basic_auth(&b.username, Some(password)));
    }
    if let Some(a) = &cfg.authorization {
        let creds = if a.credentials_file.is_empty() {
            a.credentials.expose().to_string()
        } else {
            read_secret_file(&a.credentials_file)?
        };
        let kind = if a.kind.is_empty() { "Bearer" } else { &a.kind };
        return Ok(req.header(reqwest::header::AUTHORIZATION, format!("{kind} {creds}")));
    }
    if let Some(t) = &cfg.bearer_token {
        return Ok(req.bearer_auth(t.expose()));
    }
    if let Some(f) = &cfg.bearer_token_file {
        return Ok(req.bearer_auth(read_secret_file(f)?));
    }
    Ok(req)
}

/// Reads a secret from a file, trimmed (Alertmanager trims `*_file` contents).
pub fn read_secret_file(path: &str) -> Result<String, NotifyError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| NotifyError::permanent("config", format!("cannot read {path}: {e}")))
}

/// POSTs a JSON body and classifies the outcome.
pub async fn post_json(
    client: &Client,
    url: &str,
    cfg: &HttpClientConfig,
    body: Vec<u8>,
) -> Result<(StatusCode, String), NotifyError> {
    let req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    let req = authorize(req, cfg)?;
    let resp = req.send().await.map_err(|e| transport_error(&e, url))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    // Bounded: only the first KiB of an error body is kept for the message.
    let body = resp.text().await.unwrap_or_default();
    check(status, &headers, &body, url)?;
    Ok((status, body))
}

/// Turns a transport failure into a retryable error without the URL's secrets.
pub fn transport_error(e: &reqwest::Error, url: &str) -> NotifyError {
    let reason = if e.is_timeout() { "timeout" } else { "network" };
    let msg = strip_url(&e.to_string(), url);
    NotifyError::retryable(
        reason,
        format!("{reason} error posting to {}: {msg}", redact(url)),
    )
}

/// The retry rule: 2xx is delivered; 5xx and 429 are retryable (honouring `Retry-After`);
/// any other status is permanent.
pub fn check(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    url: &str,
) -> Result<(), NotifyError> {
    if status.is_success() {
        return Ok(());
    }
    let snippet: String = body.chars().take(1024).collect();
    let message = format!(
        "unexpected status code {} from {}: {}",
        status.as_u16(),
        redact(url),
        snippet.trim()
    );
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let (retryable, reason) = match status.as_u16() {
        429 => (true, "http_429"),
        500..=599 => (true, "http_5xx"),
        400..=499 => (false, "http_4xx"),
        _ => (false, "http_other"),
    };
    Err(NotifyError {
        retryable,
        retry_after: if retryable { retry_after } else { None },
        reason,
        message,
    })
}

/// `Retry-After`: delta seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A URL safe to log: scheme, host and port only (Slack and webhook URLs carry tokens in their
/// paths, like Alertmanager's `notify.RedactURL`).
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            match u.port() {
                Some(p) => format!("{}://{}:{}/<redacted>", u.scheme(), host, p),
                None => format!("{}://{}/<redacted>", u.scheme(), host),
            }
        }
        Err(_) => "<redacted>".into(),
    }
}

fn strip_url(msg: &str, url: &str) -> String {
    if url.is_empty() {
        return msg.to_string();
    }
    let mut m = msg.replace(url, &redact(url));
    // reqwest prints the parsed URL, which may differ from the configured text (a trailing
    // slash); remove any path after the host too.
    if let Ok(u) = url::Url::parse(url) {
        m = m.replace(u.as_str(), &redact(url));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let h = HeaderMap::new();
        let e = check(StatusCode::BAD_REQUEST, &h, "bad", "http://x/y").unwrap_err();
        assert!(!e.retryable);
        assert_eq!(e.reason, "http_4xx");
        let e = check(StatusCode::BAD_GATEWAY, &h, "", "http://x/y").unwrap_err();
        assert!(e.retryable);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        let e = check(StatusCode::TOO_MANY_REQUESTS, &h, "", "http://x/token").unwrap_err();
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        assert!(!e.message.contains("token"));
        assert!(check(StatusCode::ACCEPTED, &h, "", "").is_ok());
    }

    #[test]
    fn redacts_paths() {
        assert_eq!(
            redact("https://hooks.slack.com/services/T/B/secret"),
            "https://hooks.slack.com/<redacted>"
        );
    }
}
