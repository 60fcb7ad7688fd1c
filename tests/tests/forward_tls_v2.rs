//! Forwarding over TLS to a real Prometheus 2.42 receiver serving HTTPS with client
//! certificates required (`--web.config.file`), and remote write 2.0 on the wire to promgate's
//! own receiver (Prometheus 2.42 only speaks 1.0), through a capturing proxy that records the
//! headers promgate sends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::http;
use e2e::payload::{encode_v1, labels, series};
use e2e::{Promgate, eventually, free_port, now_ms};
use proto::v1::WriteRequest;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A CA, a server certificate for `receiver.test` only, and a client certificate, as PEM
/// files in `dir`.
fn make_pki(dir: &Path) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "promgate test CA");
    let ca_key = KeyPair::generate().expect("ca key");
    let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |names: Vec<String>, file: &str| {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("sign");
        std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).expect("write cert");
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).expect("write key");
    };
    leaf(vec!["receiver.test".into()], "server");
    leaf(vec!["promgate.test".into()], "client");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write ca");
}

/// A blocking HTTPS client trusting the test CA, presenting the client certificate, and
/// resolving `receiver.test` to the receiver.
fn https_client(dir: &Path, addr: SocketAddr) -> reqwest::blocking::Client {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("ca.pem")).expect("ca") {
        roots.add(c.expect("ca cert")).expect("add ca");
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("client.pem"))
        .expect("client cert")
        .map(|c| c.expect("cert"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("client.key")).expect("client key");
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .expect("client auth");
    reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(tls)
        .resolve("receiver.test", addr)
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Prometheus 2.42 serving HTTPS that requires a client certificate signed by the test CA.
struct TlsPrometheus {
    child: Child,
    port: u16,
    client: reqwest::blocking::Client,
}

impl TlsPrometheus {
    fn start(dir: &Path) -> Self {
        let web = dir.join("web.yml");
        std::fs::write(
            &web,
            format!(
                "tls_server_config:\n  cert_file: {d}/server.pem\n  key_file: {d}/server.key\n  \
                 client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {d}/ca.pem\n",
                d = dir.display()
            ),
        )
        .expect("web config");
        std::fs::write(dir.join("prometheus.yml"), "global: {}\n").expect("config");
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new("/usr/bin/prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--web.config.file={}", web.display()))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start /usr/bin/prometheus (scripts/setup.sh installs it)");
        let client = https_client(dir, SocketAddr::from(([127, 0, 0, 1], port)));
        let p = TlsPrometheus {
            child,
            port,
            client,
        };
        eventually(Duration::from_secs(30), || {
            p.get("/-/ready")
                .and_then(|(s, b)| if s == 200 { Ok(()) } else { Err(b) })
        });
        p
    }

    fn get(&self, path: &str) -> Result<(u16, String), String> {
        let r = self
            .client
            .get(format!("https://receiver.test:{}{path}", self.port))
            .send()
            .map_err(|e| format!("{e:?}"))?;
        Ok((r.status().as_u16(), r.text().unwrap_or_default()))
    }

    /// `(labels key, value)` of each series `query` returns now.
    fn instant(&self, query: &str) -> Result<Vec<(String, f64)>, String> {
        let path = format!("/api/v1/query?query={}", form_urlencoded(query));
        let (status, body) = self.get(&path)?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(body);
        }
        let mut out = Vec::new();
        for s in v["data"]["result"].as_array().ok_or(body.clone())? {
            let metric: std::collections::BTreeMap<String, String> =
                serde_json::from_value(s["metric"].clone()).map_err(|e| e.to_string())?;
            let value: f64 = s["value"][1]
                .as_str()
                .and_then(|x| x.parse().ok())
                .ok_or(body.clone())?;
            out.push((http::labels_key(&metric), value));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

fn form_urlencoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for TlsPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(pg: &Promgate, name: &str, n: usize, t: i64, value: impl Fn(usize) -> f64) {
    let req = WriteRequest {
        timeseries: (0..n)
            .map(|i| {
                series(
                    labels(&[("__name__", name), ("i", &i.to_string())]),
                    &[(t, value(i))],
                )
            })
            .collect(),
        metadata: vec![],
    };
    let r = http::post_rw_v1(&pg.write_url(), encode_v1(&req)).expect("write");
    assert_eq!(r.status, 204, "{}", r.text());
}

fn counter(pg: &Promgate, name: &str, remote: &str) -> f64 {
    pg.metrics()
        .lines()
        .filter(|l| {
            l.starts_with(&format!("prometheus_remote_storage_{name}_total{{"))
                && l.contains(&format!("remote_name=\"{remote}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn tls_with_ca_client_certificate_and_server_name() {
    let pki = tempfile::tempdir().expect("tempdir");
    make_pki(pki.path());
    let receiver = TlsPrometheus::start(pki.path());
    let d = pki.path().display();
    let url = format!("https://127.0.0.1:{}/api/v1/write", receiver.port);
    // `trusted`: the test CA, the client certificate, and the certificate's name (the URL's
    // host is an IP address the certificate does not carry). `untrusted`: the system's trust
    // store, which does not know the test CA. `insecure`: no verification of the server, its
    // series marked by a relabel step so they do not collide with `trusted`'s.
    let config = format!(
        "remote_write:\n\
         - url: {url}\n  name: trusted\n  tls_config:\n    ca_file: {d}/ca.pem\n    \
           cert_file: {d}/client.pem\n    key_file: {d}/client.key\n    server_name: receiver.test\n\
         - url: {url}\n  name: untrusted\n  tls_config:\n    cert_file: {d}/client.pem\n    \
           key_file: {d}/client.key\n  queue_config: {{min_backoff: 50ms, max_backoff: 200ms}}\n\
         - url: {url}\n  name: insecure\n  tls_config:\n    insecure_skip_verify: true\n    \
           cert_file: {d}/client.pem\n    key_file: {d}/client.key\n  \
           write_relabel_configs:\n  - {{target_label: via, replacement: insecure}}\n"
    );
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(data.path(), &config);
    let t = now_ms();
    write(&pg, "tls_m", 4, t, |i| i as f64 + 0.5);
    let want: Vec<(String, f64)> = (0..4)
        .map(|i| (format!("tls_m{{i=\"{i}\"}}"), i as f64 + 0.5))
        .collect();
    eventually(Duration::from_secs(30), || {
        let got = receiver.instant("tls_m{via=\"\"}")?;
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
    let want_insecure: Vec<(String, f64)> = (0..4)
        .map(|i| {
            (
                format!("tls_m{{i=\"{i}\",via=\"insecure\"}}"),
                i as f64 + 0.5,
            )
        })
        .collect();
    eventually(Duration::from_secs(30), || {
        let got = receiver.instant("tls_m{via=\"insecure\"}")?;
        if got == want_insecure {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
    // The untrusted target keeps retrying and delivers nothing.
    let started = Instant::now();
    eventually(Duration::from_secs(20), || {
        let retried = counter(&pg, "samples_retried", "untrusted");
        if retried >= 8.0 {
            Ok(())
        } else {
            Err(format!("{retried} retried"))
        }
    });
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(counter(&pg, "samples", "untrusted"), 0.0);
    assert_eq!(counter(&pg, "samples", "trusted"), 4.0);
    let status = http::get(&format!("{}/api/v1/status/forward", pg.url()))
        .expect("status")
        .json()
        .expect("json");
    let untrusted = status["data"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["name"] == "untrusted")
        .expect("untrusted target")
        .clone();
    let err = untrusted["last_error"].as_str().unwrap_or_default();
    assert!(err.to_lowercase().contains("certificate"), "{untrusted}");
}

#[test]
fn tls_config_errors_name_the_field() {
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = data.path().join("bad.yml");
    std::fs::write(
        &cfg,
        "remote_write:\n- url: https://127.0.0.1:1/api/v1/write\n  tls_config:\n    cert_file: /nonexistent.pem\n",
    )
    .expect("write");
    let out = Command::new(e2e::server::promgate_bin())
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .expect("run promgate check config");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("remote_write[0].tls_config: cert_file and key_file must be given together"),
        "{text}"
    );
}

/// What the capturing proxy saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    status: u16,
    written: Option<String>,
}

/// An HTTP/1.1 proxy on loopback that records each request and passes it on to `upstream`,
/// answering with the upstream's status and remote-write headers.
fn capturing_proxy(upstream: String) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/api/v1/write",
        listener.local_addr().expect("addr")
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (log, upstream) = (log.clone(), upstream.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut conn = conn;
                loop {
                    let mut headers = Vec::new();
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = line.trim_end().split_once(':') {
                            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                        }
                    }
                    let len = headers
                        .iter()
                        .find(|(k, _)| k == "content-length")
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let pass: Vec<(&str, &str)> = headers
                        .iter()
                        .filter(|(k, _)| {
                            k == "content-type"
                                || k == "content-encoding"
                                || k == "x-prometheus-remote-write-version"
                        })
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let resp = http::post(&upstream, &pass, body.clone()).expect("upstream");
                    let written = resp
                        .header(proto::headers::SAMPLES_WRITTEN)
                        .map(str::to_string);
                    log.lock().expect("lock").push(Seen {
                        headers: headers.clone(),
                        body,
                        status: resp.status,
                        written: written.clone(),
                    });
                    let mut out = format!(
                        "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
                        resp.status,
                        resp.body.len()
                    );
                    if let Some(w) = written {
                        out.push_str(&format!("{}: {w}\r\n", proto::headers::SAMPLES_WRITTEN));
                    }
                    out.push_str("\r\n");
                    if conn.write_all(out.as_bytes()).is_err()
                        || conn.write_all(&resp.body).is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

#[test]
#[allow(clippy::disallowed_methods)] // decompressing bodies promgate sent, of bounded size
fn remote_write_2_round_trips_through_promgates_receiver() {
    let rdir = tempfile::tempdir().expect("tempdir");
    let receiver = Promgate::start(rdir.path(), "");
    let (proxy, seen) = capturing_proxy(receiver.write_url());
    let sdir = tempfile::tempdir().expect("tempdir");
    let sender = Promgate::start(
        sdir.path(),
        &format!(
            "external_labels:\n  cluster: eu-1\n\
             remote_write:\n- url: {proxy}\n  name: v2\n  protobuf_message: io.prometheus.write.v2.Request\n  \
               queue_config: {{max_samples_per_send: 7}}\n"
        ),
    );
    // Values a float encoder can get wrong: signed zero, subnormals, infinities, NaN.
    let specials = [
        0.25,
        -0.0,
        f64::MIN_POSITIVE / 4.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        1e300,
        -123456.789,
    ];
    let t0 = now_ms() - 30_000;
    for round in 0..3 {
        write(&sender, "v2_m", specials.len(), t0 + round * 1000, |i| {
            if round == 1 {
                specials[i]
            } else {
                i as f64 + round as f64
            }
        });
    }
    let want = sender.export("v2_m", None, true).expect("export sender");
    assert_eq!(want.len(), specials.len());
    eventually(Duration::from_secs(30), || {
        let got = receiver.export("v2_m", None, true)?;
        let mut got: Vec<_> = got
            .into_iter()
            .map(|mut s| {
                if s.metric.remove("cluster").as_deref() != Some("eu-1") {
                    return Err(format!("no external label on {}", s.key()));
                }
                Ok((s.key(), s.timestamps, s.bits))
            })
            .collect::<Result<_, String>>()?;
        let mut exp: Vec<_> = want
            .iter()
            .map(|s| (s.key(), s.timestamps.clone(), s.bits.clone()))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        if got == exp {
            Ok(())
        } else {
            Err(format!("{got:?}\n!=\n{exp:?}"))
        }
    });
    // The proxy logs a request once the receiver answered it, and the sender counts it once
    // the proxy answered: wait for both.
    eventually(Duration::from_secs(10), || {
        let n = counter(&sender, "samples", "v2");
        if n == 24.0 {
            Ok(())
        } else {
            Err(format!("{n} samples acknowledged"))
        }
    });
    let seen = seen.lock().expect("lock").clone();
    // 24 samples at 7 per request: at least 4 requests, each a 2.0 request answered by the
    // receiver with the samples it wrote.
    assert!(seen.len() >= 4, "{seen:?}");
    let mut total = 0;
    for s in &seen {
        let h = |k: &str| {
            s.headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(h("content-type"), Some(proto::headers::CONTENT_TYPE_V2));
        assert_eq!(h("content-encoding"), Some("snappy"));
        assert_eq!(h("x-prometheus-remote-write-version"), Some("2.0.0"));
        assert_eq!(s.status, 204);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&s.body)
            .expect("snappy");
        let req = <proto::v2::Request as proto::Message>::decode(raw.as_slice()).expect("v2");
        assert_eq!(req.symbols[0], "");
        let n: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
        assert!(n <= 7);
        assert_eq!(s.written.as_deref(), Some(n.to_string().as_str()));
        total += n;
    }
    assert_eq!(total, 24);
}
