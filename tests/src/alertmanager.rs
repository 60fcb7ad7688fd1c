//! A real Alertmanager 0.25 (Debian `prometheus-alertmanager`) as a peer: started with a given
//! alertmanager.yml on a free loopback port, clustering off, its data in a temporary directory,
//! killed when dropped. Tests POST alerts to it and read `/api/v2/alerts`, or point its
//! receivers at capture servers to compare its notifications with promgate's.

use std::process::Command;

use crate::http;
use crate::server::{Process, free_port, peer_bin};

/// A running Alertmanager.
#[derive(Debug)]
pub struct Alertmanager {
    process: Process,
}

impl Alertmanager {
    /// Starts Alertmanager with `config` as alertmanager.yml (`{{PORT}}` stands for its own
    /// port). `--web.external-url` is `http://127.0.0.1:PORT`.
    pub fn start(config: &str) -> Self {
        Self::start_with_args(config, &[])
    }

    /// As [`Alertmanager::start`], with extra command-line flags.
    pub fn start_with_args(config: &str, args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("alertmanager-e2e-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let cfg = dir.path().join("alertmanager.yml");
        std::fs::write(&cfg, config.replace("{{PORT}}", &port.to_string())).expect("write");
        let mut cmd = Command::new(peer_bin("prometheus-alertmanager"));
        cmd.arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--web.external-url=http://127.0.0.1:{port}"))
            // An empty address disables the gossip cluster (no UDP/TCP port 9094).
            .arg("--cluster.listen-address=")
            .args(args);
        Alertmanager {
            process: Process::spawn("alertmanager", cmd, port, dir, "/-/ready"),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.process.url()
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    /// `POST /api/v2/alerts` with a JSON array of postable alerts; panics unless 200.
    pub fn post_alerts(&self, alerts_json: &str) {
        let r = http::post(
            &format!("{}/api/v2/alerts", self.url()),
            &[("Content-Type", "application/json")],
            alerts_json.as_bytes().to_vec(),
        )
        .unwrap_or_else(|e| panic!("POST /api/v2/alerts: {e}"));
        assert_eq!(r.status, 200, "POST /api/v2/alerts: {}", r.text());
    }

    /// `GET /api/v2/alerts` parsed.
    pub fn alerts(&self) -> serde_json::Value {
        let r = http::get(&format!("{}/api/v2/alerts", self.url()))
            .unwrap_or_else(|e| panic!("GET /api/v2/alerts: {e}"));
        assert_eq!(r.status, 200, "GET /api/v2/alerts: {}", r.text());
        serde_json::from_slice(&r.body).expect("alerts JSON")
    }
}
