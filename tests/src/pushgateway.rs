//! The real Pushgateway 1.5 (`/usr/bin/prometheus-pushgateway`, Debian package) on a free
//! loopback port with persistence off, a push client that sends any method, headers and body
//! without following redirects, and the normalisation that makes Pushgateway's and promgate's
//! `/metrics` and `/api/v1/metrics` comparable (timestamps and each side's own metrics out).

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::http::Response;
use crate::server::{Process, free_port};

pub const PUSHGATEWAY_BIN: &str = "/usr/bin/prometheus-pushgateway";

/// A running Pushgateway, killed when dropped.
#[derive(Debug)]
pub struct Pushgateway {
    process: Process,
}

impl Pushgateway {
    /// Starts Pushgateway with persistence off (`--persistence.file=`) and the admin API on.
    pub fn start() -> Self {
        assert!(
            Path::new(PUSHGATEWAY_BIN).is_file(),
            "{PUSHGATEWAY_BIN} is missing: run scripts/setup.sh (Debian package prometheus-pushgateway)"
        );
        let dir = tempfile::Builder::new()
            .prefix("pushgateway-e2e-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let mut cmd = Command::new(PUSHGATEWAY_BIN);
        cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--persistence.file=")
            .arg("--web.enable-admin-api")
            .arg("--log.level=warn");
        Pushgateway {
            process: Process::spawn("pushgateway", cmd, port, dir, "/-/ready"),
        }
    }

    pub fn url(&self) -> String {
        self.process.url()
    }

    pub fn process(&self) -> &Process {
        &self.process
    }
}

fn client() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(64)
            .build()
            .expect("build HTTP client")
    })
}

/// Sends `method url` with headers and body; `Err` only when no HTTP answer came.
pub fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Response, String> {
    let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let mut req = client().request(m, url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().map_err(|e| format!("{method} {url}: {e:?}"))?;
    crate::http::read(resp)
}

/// Families that belong to the server itself, not to what was pushed.
fn own_family(name: &str) -> bool {
    [
        "go_",
        "process_",
        "pushgateway_",
        "promhttp_",
        "promgate_",
        "prometheus_remote_storage_",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

fn is_time_family(name: &str) -> bool {
    name == "push_time_seconds" || name == "push_failure_time_seconds"
}

/// `/metrics` text with the server's own families removed and push times other than 0
/// replaced by `T`.
pub fn normalize_exposition(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let name = if let Some(rest) = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
        {
            rest.split(' ').next().unwrap_or("")
        } else {
            line.split(['{', ' ']).next().unwrap_or("")
        };
        if own_family(name) {
            continue;
        }
        if is_time_family(name) && !line.starts_with('#') {
            let (series, value) = line.rsplit_once(' ').unwrap_or((line, ""));
            let v = if value == "0" { "0" } else { "T" };
            out.push_str(&format!("{series} {v}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `/api/v1/metrics` with groups sorted by their labels, `time_stamp`s removed, metrics sorted
/// by labels and push times other than 0 replaced by `T`.
pub fn normalize_api(v: &Value) -> Value {
    let mut groups: Vec<Value> = v["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut g| {
            if let Some(obj) = g.as_object_mut() {
                for (name, fam) in obj.iter_mut() {
                    let Some(f) = fam.as_object_mut() else {
                        continue;
                    };
                    f.remove("time_stamp");
                    if let Some(Value::Array(ms)) = f.get_mut("metrics") {
                        for m in ms.iter_mut() {
                            if is_time_family(name) && m["value"].as_str().is_some_and(|s| s != "0")
                            {
                                m["value"] = Value::String("T".into());
                            }
                        }
                        ms.sort_by_key(|m| m["labels"].to_string());
                    }
                }
            }
            g
        })
        .collect();
    groups.sort_by_key(|g| g["labels"].to_string());
    serde_json::json!({"status": v["status"], "data": groups})
}

/// The Python with `prometheus_client`: `$PROMGATE_PYTHON`, else `target/py/bin/python3` of
/// this checkout (created by `scripts/setup.sh`). Panics, naming the fix, when it is missing.
pub fn python() -> std::path::PathBuf {
    let p = std::env::var_os("PROMGATE_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("workspace root")
                .join("target/py/bin/python3")
        });
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup.sh (it creates the virtualenv with prometheus_client), or set PROMGATE_PYTHON",
        p.display()
    );
    p
}

/// Runs a Python script with [`python`]; panics with its output when it fails.
pub fn run_python(script: &str) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .output()
        .expect("run python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "python failed ({}):\n{text}",
        out.status
    );
    text
}
