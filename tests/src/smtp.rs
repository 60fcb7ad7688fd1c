//! A real SMTP server (Python aiosmtpd, from `target/py` made by `scripts/setup.sh`, or
//! `$PROMGATE_PYTHON`) for email tests: every accepted message is recorded with its envelope,
//! raw text and whether TLS and AUTH were used. Optional PLAIN/LOGIN auth, STARTTLS or implicit
//! TLS with a self-signed certificate for 127.0.0.1 made by `openssl`, and scripted failure
//! replies.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::server::free_port;

/// How the server is started.
#[derive(Clone, Debug, Default)]
pub struct SmtpOptions {
    /// `(user, password)` required for PLAIN/LOGIN.
    pub auth: Option<(String, String)>,
    /// STARTTLS required (`Tls::Starttls`) or implicit TLS (`Tls::Smtps`).
    pub tls: SmtpTls,
    /// SMTP reply codes answered to the first DATA commands, in order.
    pub fail: Vec<u16>,
    /// A fixed port (for example 465, where clients use implicit TLS); a free one otherwise.
    pub port: Option<u16>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SmtpTls {
    #[default]
    None,
    Starttls,
    Smtps,
}

/// One received message.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct ReceivedMail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// The raw message: headers, blank line, body.
    pub data: String,
    pub tls: bool,
    pub authenticated: bool,
    pub helo: Option<String>,
}

impl ReceivedMail {
    /// The first value of header `name` (unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let head = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// A running SMTP server; killed when dropped.
pub struct SmtpServer {
    child: Child,
    port: u16,
    out: tempfile::TempDir,
    /// The certificate clients must trust (when TLS is on).
    pub ca_file: Option<PathBuf>,
}

/// The Python with aiosmtpd: `$PROMGATE_PYTHON`, else `target/py/bin/python3` of this checkout.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("PROMGATE_PYTHON") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/py/bin/python3");
    assert!(
        p.is_file(),
        "{} missing: run scripts/setup.sh (it creates the virtualenv with aiosmtpd), or set PROMGATE_PYTHON",
        p.display()
    );
    p
}

impl SmtpServer {
    pub fn start(opts: SmtpOptions) -> Self {
        let out = tempfile::Builder::new()
            .prefix("smtp-e2e-")
            .tempdir()
            .expect("tempdir");
        let port = opts.port.unwrap_or_else(free_port);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/smtp_server.py");
        let mut cmd = Command::new(python());
        cmd.arg(&script)
            .arg("--port")
            .arg(port.to_string())
            .arg("--out")
            .arg(out.path());
        if let Some((u, p)) = &opts.auth {
            cmd.arg("--user").arg(u).arg("--password").arg(p);
        }
        let mut ca_file = None;
        if opts.tls != SmtpTls::None {
            let cert = out.path().join("cert.pem");
            let key = out.path().join("key.pem");
            let st = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args(["-subj", "/CN=127.0.0.1"])
                .args(["-addext", "subjectAltName=IP:127.0.0.1"])
                .args(["-addext", "basicConstraints=critical,CA:FALSE"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run openssl");
            assert!(st.success(), "openssl req failed");
            cmd.arg("--tlscert").arg(&cert).arg("--tlskey").arg(&key);
            if opts.tls == SmtpTls::Smtps {
                cmd.arg("--smtps");
            }
            ca_file = Some(cert);
        }
        for f in &opts.fail {
            cmd.arg("--fail").arg(f.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start aiosmtpd ({}): {e}", script.display()));
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read from smtp server");
        assert_eq!(line.trim(), "READY", "SMTP server did not start");
        SmtpServer {
            child,
            port,
            out,
            ca_file,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Messages received so far, in order.
    pub fn received(&self) -> Vec<ReceivedMail> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.out.path())
            .expect("read dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                serde_json::from_slice(&std::fs::read(p).expect("read mail")).expect("mail json")
            })
            .collect()
    }

    /// Waits for `n` messages.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        crate::eventually(timeout, || {
            let got = self.received();
            if got.len() >= n {
                Ok(got)
            } else {
                Err(format!("{} of {n} mails", got.len()))
            }
        })
    }
}

/// A self-signed certificate for 127.0.0.1 (also its own CA) made by `openssl`:
/// `(DIR/NAME.crt, DIR/NAME.key)`.
pub fn self_signed_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let st = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl (needed for TLS tests)");
    assert!(st.success(), "openssl req failed");
    (cert, key)
}

/// An HTTPS server (Python stdlib, `tests/py/https_capture.py`) recording POSTs, for TLS tests
/// of HTTP receivers; optionally requires a client certificate. Killed when dropped.
pub struct HttpsCapture {
    child: Child,
    port: u16,
    out: tempfile::TempDir,
    pub ca_file: PathBuf,
    /// A client certificate and key the server accepts (when started with mutual TLS).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl HttpsCapture {
    pub fn start(mutual_tls: bool) -> Self {
        let out = tempfile::Builder::new()
            .prefix("https-e2e-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let (cert, key) = self_signed_cert(out.path(), "server");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/https_capture.py");
        let mut cmd = Command::new(python());
        cmd.arg(&script)
            .arg("--port")
            .arg(port.to_string())
            .arg("--out")
            .arg(out.path())
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key);
        let client_cert = mutual_tls.then(|| self_signed_cert(out.path(), "client"));
        if let Some((c, _)) = &client_cert {
            cmd.arg("--client-ca").arg(c);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", script.display()));
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read from https server");
        assert_eq!(line.trim(), "READY", "HTTPS capture server did not start");
        HttpsCapture {
            child,
            port,
            out,
            ca_file: cert,
            client_cert,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The POSTs received so far, as JSON records (`path`, `headers`, `body`, `client_cert`).
    pub fn received(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.out.path())
            .expect("read dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json"))
            .collect()
    }
}

impl Drop for HttpsCapture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
