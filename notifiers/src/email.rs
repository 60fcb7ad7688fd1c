//! Email through SMTP with `lettre` (`notify/email/email.go@v0.25.0`): one connection per
//! notification; implicit TLS when the smarthost port is 465, otherwise plain TCP upgraded with
//! STARTTLS when `require_tls` (the default) and never upgraded when it is false, as
//! Alertmanager does; PLAIN or LOGIN authentication when `auth_username` is set and the server
//! offers AUTH. Headers are templates (`Subject`, `To` and `From` default to Alertmanager's);
//! the body is `multipart/alternative` with a quoted-printable text part and then the HTML part.
//!
//! Differences from Alertmanager: CRAM-MD5 (`auth_secret`) and `auth_identity` are not
//! supported by lettre and are refused when the receiver is built; `text` defaults to
//! promgate's `email.default.text` (Alertmanager's default is no text part), so mail clients
//! without HTML get the alert list too; set `text: ''` for Alertmanager's behaviour.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailboxes, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{EmailConfig, GlobalConfig, Secret, TlsConfig};
use crate::data::Data;
use crate::template::Templates;
use crate::{Notifier, NotifyError, http};

/// How long one SMTP conversation may take.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// One `email_configs` entry, with `global.smtp_*` defaults applied.
pub struct Email {
    to: String,
    from: String,
    hello: String,
    host: String,
    port: u16,
    auth_username: String,
    auth_password: Secret,
    auth_password_file: String,
    require_tls: bool,
    tls: TlsConfig,
    /// Canonical header name -> template.
    headers: BTreeMap<String, String>,
    html: String,
    text: String,
    hostname: String,
    templates: Arc<Templates>,
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `content-type` -> `Content-Type`.
pub fn canonical_header(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        upper = c == '-';
    }
    out
}

impl Email {
    pub fn new(
        cfg: &EmailConfig,
        global: &GlobalConfig,
        templates: Arc<Templates>,
    ) -> Result<Email, (&'static str, String)> {
        if cfg.to.is_empty() {
            return Err(("to", "missing to address in email config".into()));
        }
        let smarthost = if cfg.smarthost.is_empty() {
            &global.smtp_smarthost
        } else {
            &cfg.smarthost
        };
        if smarthost.is_empty() {
            return Err(("smarthost", "no global SMTP smarthost set".into()));
        }
        let (host, port) = smarthost
            .rsplit_once(':')
            .ok_or_else(|| ("smarthost", format!("address {smarthost}: missing port")))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port: u16 = port
            .parse()
            .map_err(|_| ("smarthost", format!("address {smarthost}: invalid port")))?;
        let from = if cfg.from.is_empty() {
            global.smtp_from.clone()
        } else {
            cfg.from.clone()
        };
        if from.is_empty() {
            return Err(("from", "no global SMTP from set".into()));
        }
        let hello = if cfg.hello.is_empty() {
            global.smtp_hello.clone()
        } else {
            cfg.hello.clone()
        };
        let auth_username = if cfg.auth_username.is_empty() {
            global.smtp_auth_username.clone()
        } else {
            cfg.auth_username.clone()
        };
        let (auth_password, auth_password_file) =
            if cfg.auth_password.is_empty() && cfg.auth_password_file.is_empty() {
                (
                    global.smtp_auth_password.clone(),
                    global.smtp_auth_password_file.clone(),
                )
            } else {
                (cfg.auth_password.clone(), cfg.auth_password_file.clone())
            };
        if !auth_password.is_empty() && !auth_password_file.is_empty() {
            return Err((
                "auth_password",
                "at most one of auth_password & auth_password_file must be configured".into(),
            ));
        }
        let secret = if cfg.auth_secret.is_empty() {
            &global.smtp_auth_secret
        } else {
            &cfg.auth_secret
        };
        if !secret.is_empty() && auth_password.is_empty() && auth_password_file.is_empty() {
            return Err((
                "auth_secret",
                "CRAM-MD5 authentication is not supported by promgate; use auth_password (PLAIN/LOGIN)"
                    .into(),
            ));
        }
        let identity = if cfg.auth_identity.is_empty() {
            &global.smtp_auth_identity
        } else {
            &cfg.auth_identity
        };
        if !identity.is_empty() && *identity != auth_username {
            return Err((
                "auth_identity",
                "an authorization identity different from auth_username is not supported by promgate"
                    .into(),
            ));
        }
        let mut headers = BTreeMap::new();
        for (k, v) in &cfg.headers {
            let c = canonical_header(k);
            HeaderName::new_from_ascii(c.clone())
                .map_err(|_| ("headers", format!("invalid header name {k:?}")))?;
            if headers.insert(c.clone(), v.clone()).is_some() {
                return Err(("headers", format!("duplicate header {c:?} in email config")));
            }
        }
        headers
            .entry("Subject".into())
            .or_insert_with(|| r#"{{ template "email.default.subject" . }}"#.into());
        headers.entry("To".into()).or_insert_with(|| cfg.to.clone());
        headers.entry("From".into()).or_insert_with(|| from.clone());
        for (field, text) in [
            ("to", &cfg.to),
            ("from", &from),
            ("html", &cfg.html),
            ("text", &cfg.text),
        ] {
            templates.check(text).map_err(|e| (field, e.to_string()))?;
        }
        for v in headers.values() {
            templates.check(v).map_err(|e| ("headers", e.to_string()))?;
        }
        let tls = cfg.tls_config.clone();
        if let Some(ca) = &tls.ca_file {
            std::fs::metadata(ca)
                .map_err(|e| ("tls_config.ca_file", format!("{}: {e}", ca.display())))?;
        }
        if tls.cert_file.is_some() || tls.key_file.is_some() {
            return Err((
                "tls_config.cert_file",
                "client certificates for SMTP are not supported by promgate".into(),
            ));
        }
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost.localdomain".into());
        Ok(Email {
            to: cfg.to.clone(),
            from,
            hello,
            host,
            port,
            auth_username,
            auth_password,
            auth_password_file,
            require_tls: cfg.require_tls.unwrap_or(global.smtp_require_tls),
            tls,
            headers,
            html: cfg.html.clone(),
            text: cfg.text.clone(),
            hostname,
            templates,
        })
    }

    /// The message for `data` (headers, multipart body), ready to send.
    pub fn message(&self, data: &Data) -> Result<Message, NotifyError> {
        let t = |s: &str| self.templates.execute(s, data);
        let from = t(&self.from)?;
        let to = t(&self.to)?;
        let from_addrs: Mailboxes = from.parse().map_err(|e| {
            NotifyError::permanent("config", format!("parse 'from' addresses: {e}"))
        })?;
        let from_addrs: Vec<Address> = from_addrs.into_iter().map(|m| m.email).collect();
        if from_addrs.len() != 1 {
            return Err(NotifyError::permanent(
                "config",
                format!(
                    "must be exactly one 'from' address (got: {})",
                    from_addrs.len()
                ),
            ));
        }
        let to_addrs: Mailboxes = to
            .parse()
            .map_err(|e| NotifyError::permanent("config", format!("parse 'to' addresses: {e}")))?;
        let to_addrs: Vec<Address> = to_addrs.into_iter().map(|m| m.email).collect();
        let envelope = lettre::address::Envelope::new(from_addrs.into_iter().next(), to_addrs)
            .map_err(|e| NotifyError::permanent("config", format!("envelope: {e}")))?;

        let mut b = Message::builder().envelope(envelope).date_now();
        let mut has_message_id = false;
        for (name, tmpl) in &self.headers {
            let value = t(tmpl).map_err(|e| {
                NotifyError::permanent("template", format!("execute {name:?} header template: {e}"))
            })?;
            match name.as_str() {
                "Subject" => b = b.subject(value),
                "From" => {
                    let m: Mailboxes = value.parse().map_err(|e| {
                        NotifyError::permanent("config", format!("parse From header: {e}"))
                    })?;
                    for mb in m {
                        b = b.from(mb);
                    }
                }
                "To" => {
                    let m: Mailboxes = value.parse().map_err(|e| {
                        NotifyError::permanent("config", format!("parse To header: {e}"))
                    })?;
                    for mb in m {
                        b = b.to(mb);
                    }
                }
                _ => {
                    if name == "Message-Id" {
                        has_message_id = true;
                    }
                    let hn = HeaderName::new_from_ascii(name.clone()).map_err(|_| {
                        NotifyError::permanent("config", format!("invalid header name {name:?}"))
                    })?;
                    b = b.raw_header(HeaderValue::new(hn, value));
                }
            }
        }
        if !has_message_id {
            b = b.message_id(Some(format!(
                "<{}.{}@{}>",
                chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
                fastrand::u64(..),
                self.hostname
            )));
        }
        let mut parts = Vec::new();
        if !self.text.is_empty() {
            let body = t(&self.text)?;
            parts.push(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .header(ContentTransferEncoding::QuotedPrintable)
                    .body(body),
            );
        }
        if !self.html.is_empty() {
            let body = self.templates.execute_html(&self.html, data)?;
            parts.push(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .header(ContentTransferEncoding::QuotedPrintable)
                    .body(body),
            );
        }
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else {
            return Err(NotifyError::permanent(
                "config",
                "email has neither a text nor an html body",
            ));
        };
        let mut mp = MultiPart::alternative().singlepart(first);
        for p in parts {
            mp = mp.singlepart(p);
        }
        b.multipart(mp)
            .map_err(|e| NotifyError::permanent("config", format!("build message: {e}")))
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, NotifyError> {
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .hello_name(ClientId::Domain(self.hello.clone()))
            .timeout(Some(SMTP_TIMEOUT));
        if self.port == 465 || self.require_tls {
            let server_name = self
                .tls
                .server_name
                .clone()
                .unwrap_or_else(|| self.host.clone());
            let mut p = TlsParameters::builder(server_name)
                .dangerous_accept_invalid_certs(self.tls.insecure_skip_verify);
            if let Some(ca) = &self.tls.ca_file {
                let pem = std::fs::read(ca).map_err(|e| {
                    NotifyError::permanent("config", format!("{}: {e}", ca.display()))
                })?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    NotifyError::permanent("config", format!("{}: {e}", ca.display()))
                })?;
                p = p.add_root_certificate(cert);
            }
            let params = p
                .build_rustls()
                .map_err(|e| NotifyError::permanent("config", format!("TLS parameters: {e}")))?;
            b = b.tls(if self.port == 465 {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            });
        } else {
            b = b.tls(Tls::None);
        }
        if !self.auth_username.is_empty() {
            let password = if self.auth_password_file.is_empty() {
                self.auth_password.expose().to_string()
            } else {
                http::read_secret_file(&self.auth_password_file)?
            };
            if !password.is_empty() {
                b = b
                    .credentials(Credentials::new(self.auth_username.clone(), password))
                    .authentication(vec![Mechanism::Plain, Mechanism::Login]);
            }
        }
        Ok(b.build())
    }
}

impl Notifier for Email {
    fn notify<'a>(&'a self, data: &'a Data) -> BoxFuture<'a, Result<(), NotifyError>> {
        async move {
            let msg = self.message(data)?;
            let transport = self.transport()?;
            transport.send(msg).await.map_err(|e| {
                let message = format!("SMTP {}:{}: {e}", self.host, self.port);
                if e.is_permanent() {
                    NotifyError::permanent("smtp", message)
                } else {
                    let reason = if e.is_timeout() { "timeout" } else { "smtp" };
                    NotifyError::retryable(reason, message)
                }
            })?;
            Ok(())
        }
        .boxed()
    }
}
