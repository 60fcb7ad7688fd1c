//! Forwarding to a real Prometheus 2.42 receiver: everything written into promgate arrives
//! with the same labels plus the external labels and the same values, also across a receiver
//! outage and a SIGKILL of promgate with a backlog queued. Both ways of sending are covered:
//! re-encoded from the record log (a target with external labels), and request bodies sent
//! as received (a target without external labels, where its relabel rules change nothing).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::http::{self, ExportSeries};
use e2e::payload::{encode_v1, labels, series};
use e2e::{Promgate, eventually, free_port, now_ms};
use proto::v1::WriteRequest;

/// A Prometheus receiver on a fixed port and data directory, so it can be stopped and started
/// again where promgate expects it.
struct Receiver {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Receiver {
    fn start(dir: &Path, port: u16) -> Self {
        let mut r = Receiver {
            port,
            dir: dir.to_path_buf(),
            child: None,
        };
        r.up();
        r
    }

    fn up(&mut self) {
        std::fs::write(self.dir.join("prometheus.yml"), "global: {}\n").expect("config");
        let log = std::fs::File::create(self.dir.join("prometheus.log")).expect("log");
        let child = Command::new("/usr/bin/prometheus")
            .arg(format!(
                "--config.file={}",
                self.dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start /usr/bin/prometheus (scripts/setup.sh installs it)");
        self.child = Some(child);
        let ready = format!("{}/-/ready", self.url());
        eventually(Duration::from_secs(30), || match http::get(&ready) {
            Ok(r) if r.status == 200 => Ok(()),
            other => Err(format!("{other:?}")),
        });
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Raw samples of every series matching `selector` in the last 30 minutes.
    fn raw(&self, selector: &str) -> Result<Vec<ExportSeries>, String> {
        http::prom_query(&self.url(), &format!("{selector}[30m]"), now_ms())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

/// How promgate forwards in a test.
#[derive(Clone, Copy, PartialEq)]
enum Way {
    /// With external labels: every record re-encoded.
    Encoded,
    /// Without external labels: request bodies as received where kept.
    AsReceived,
}

fn config(receiver: &Receiver, way: Way) -> String {
    let external = match way {
        Way::Encoded => "external_labels:\n  cluster: eu-1\n  venue: overridden-never\n",
        Way::AsReceived => "",
    };
    format!(
        "{external}remote_write:\n  - url: {}/api/v1/write\n    name: prom\n    \
         queue_config:\n      min_backoff: 50ms\n      max_backoff: 500ms\n",
        receiver.url()
    )
}

/// `series_count` series of `fwd_pnl`, one sample each at `t`.
fn write(pg: &Promgate, round: usize, series_count: usize, t: i64) {
    let req = WriteRequest {
        timeseries: (0..series_count)
            .map(|i| {
                series(
                    labels(&[
                        ("__name__", "fwd_pnl"),
                        ("strategy", &format!("s{i}")),
                        ("venue", "binance"),
                    ]),
                    &[(t, (round * 1000 + i) as f64 + 0.25)],
                )
            })
            .collect(),
        metadata: vec![],
    };
    let r = http::post_rw_v1(&pg.write_url(), encode_v1(&req)).expect("write");
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
}

/// What promgate stored, with the external labels added, keyed by label set.
fn expected(pg: &Promgate, way: Way) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut out = BTreeMap::new();
    for mut s in pg.export("fwd_pnl", None, false).expect("export") {
        if way == Way::Encoded {
            s.metric.insert("cluster".into(), "eu-1".into());
        }
        let points = s
            .timestamps
            .iter()
            .copied()
            .zip(s.values.iter().copied())
            .collect();
        out.insert(http::labels_key(&s.metric), points);
    }
    out
}

fn received(r: &Receiver) -> Result<BTreeMap<String, Vec<(i64, f64)>>, String> {
    Ok(r.raw("fwd_pnl")?
        .into_iter()
        .map(|s| {
            let points = s
                .timestamps
                .iter()
                .copied()
                .zip(s.values.iter().copied())
                .collect();
            (http::labels_key(&s.metric), points)
        })
        .collect())
}

/// Waits until the receiver holds exactly `want`.
fn arrives(receiver: &Receiver, want: &BTreeMap<String, Vec<(i64, f64)>>, within: Duration) {
    let samples = |m: &BTreeMap<String, Vec<(i64, f64)>>| m.values().map(Vec::len).sum::<usize>();
    eventually(within, || {
        let got = received(receiver)?;
        if got == *want {
            Ok(())
        } else {
            Err(format!(
                "{} of {} series match; {} of {} samples arrived",
                got.iter().filter(|(k, v)| want.get(*k) == Some(v)).count(),
                want.len(),
                samples(&got),
                samples(want)
            ))
        }
    });
}

/// A series of the target's queue metrics.
fn queue_series(name: &str, receiver: &Receiver) -> String {
    format!(
        "{name}{{remote_name=\"prom\",url=\"{}/api/v1/write\"}}",
        receiver.url()
    )
}

#[test]
fn forwards_everything_with_external_labels() {
    let rdir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(rdir.path(), free_port());
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(data.path(), &config(&receiver, Way::Encoded));
    let t0 = now_ms() - 60_000;
    for round in 0..5 {
        write(&pg, round, 50, t0 + round as i64 * 10_000);
    }
    let want = expected(&pg, Way::Encoded);
    assert_eq!(want.len(), 50);
    assert!(
        want.keys()
            .all(|k| k.contains("cluster=\"eu-1\"") && k.contains("venue=\"binance\""))
    );
    arrives(&receiver, &want, Duration::from_secs(30));
    let metrics = pg.metrics();
    let sent = queue_series("prometheus_remote_storage_samples_total", &receiver);
    assert_eq!(
        http::metric_value(&metrics, &sent),
        Some(250.0),
        "{metrics}"
    );
    // The queue's shards: bounds as configured (Prometheus's defaults), and the shards that
    // sent the last chunk (these small writes fit one request each: one shard); nothing is
    // pending once everything arrived.
    for (name, want) in [
        ("shards_max", 200.0),
        ("shards_min", 1.0),
        ("shards", 1.0),
        ("samples_pending", 0.0),
    ] {
        let series = queue_series(&format!("prometheus_remote_storage_{name}"), &receiver);
        assert_eq!(
            http::metric_value(&metrics, &series),
            Some(want),
            "{series}"
        );
    }
    let status = http::get(&format!("{}/api/v1/status/forward", pg.url())).expect("status");
    let v = status.json().expect("json");
    assert_eq!(v["data"][0]["name"], "prom");
    assert_eq!(v["data"][0]["cursor"], v["data"][0]["committed"]);
    assert_eq!(v["data"][0]["shards"], 1);
    assert_eq!(v["data"][0]["protobuf_message"], "prometheus.WriteRequest");
}

/// The counter of requests sent as received.
fn as_received(pg: &Promgate, receiver: &Receiver) -> f64 {
    let name = queue_series("promgate_forward_requests_as_received_total", receiver);
    http::metric_value(&pg.metrics(), &name).unwrap_or(0.0)
}

#[test]
fn bodies_as_received_arrive_and_partly_stored_requests_are_encoded() {
    let rdir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(rdir.path(), free_port());
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(data.path(), &config(&receiver, Way::AsReceived));
    let t0 = now_ms() - 60_000;
    for round in 0..3 {
        write(&pg, round, 30, t0 + round as i64 * 10_000);
    }
    // Stored in part: one series has an invalid label name, one sample is out of order.
    let bad = WriteRequest {
        timeseries: vec![
            series(
                labels(&[
                    ("__name__", "fwd_pnl"),
                    ("strategy", "late"),
                    ("venue", "x"),
                ]),
                &[(t0 + 40_000, 1.5)],
            ),
            series(
                labels(&[("__name__", "fwd_pnl"), ("0bad", "y"), ("venue", "x")]),
                &[(t0 + 40_000, 2.5)],
            ),
            series(
                labels(&[
                    ("__name__", "fwd_pnl"),
                    ("strategy", "s1"),
                    ("venue", "binance"),
                ]),
                &[(t0, 3.5)],
            ),
        ],
        metadata: vec![],
    };
    let r = http::post_rw_v1(&pg.write_url(), encode_v1(&bad)).expect("write");
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    // An identical retry of a stored request: nothing new is stored.
    write(&pg, 2, 30, t0 + 20_000);
    write(&pg, 3, 30, t0 + 30_000);
    let want = expected(&pg, Way::AsReceived);
    assert_eq!(want.len(), 31);
    assert_eq!(want.values().map(Vec::len).sum::<usize>(), 121);
    arrives(&receiver, &want, Duration::from_secs(30));
    // The four requests stored whole went as received; the other two were re-encoded.
    assert_eq!(as_received(&pg, &receiver), 4.0);
    let sent = queue_series("prometheus_remote_storage_samples_total", &receiver);
    assert_eq!(http::metric_value(&pg.metrics(), &sent), Some(121.0));
}

#[test]
fn a_relabeling_target_gets_untouched_bodies_as_received_and_the_rest_by_its_rules() {
    let rdir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(rdir.path(), free_port());
    let data = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "{}    write_relabel_configs:\n      \
         - {{source_labels: [strategy], regex: 'drop_me', action: drop}}\n",
        config(&receiver, Way::AsReceived)
    );
    let pg = Promgate::start(data.path(), &config);
    let t0 = now_ms() - 60_000;
    // Three requests the rule leaves as they are.
    for round in 0..3 {
        write(&pg, round, 20, t0 + round as i64 * 10_000);
    }
    // One holding a series the rule drops, besides two it keeps.
    let mixed = WriteRequest {
        timeseries: ["s0", "s1", "drop_me"]
            .iter()
            .map(|s| {
                series(
                    labels(&[
                        ("__name__", "fwd_pnl"),
                        ("strategy", s),
                        ("venue", "binance"),
                    ]),
                    &[(t0 + 30_000, 7.5)],
                )
            })
            .collect(),
        metadata: vec![],
    };
    let r = http::post_rw_v1(&pg.write_url(), encode_v1(&mixed)).expect("write");
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    let mut want = expected(&pg, Way::AsReceived);
    let dropped = want
        .keys()
        .find(|k| k.contains("drop_me"))
        .cloned()
        .expect("promgate stored the series the target drops");
    want.remove(&dropped);
    assert_eq!(want.len(), 20);
    assert_eq!(want.values().map(Vec::len).sum::<usize>(), 62);
    arrives(&receiver, &want, Duration::from_secs(30));
    assert_eq!(as_received(&pg, &receiver), 3.0);
    let dropped = queue_series("prometheus_remote_storage_samples_dropped_total", &receiver);
    let metrics = pg.metrics();
    assert_eq!(
        http::metric_value(&metrics, &dropped),
        Some(1.0),
        "{metrics}"
    );
}

#[test]
fn an_outage_and_a_crash_lose_nothing() {
    outage_and_crash(Way::Encoded);
}

#[test]
fn an_outage_and_a_crash_lose_nothing_as_received() {
    outage_and_crash(Way::AsReceived);
}

fn outage_and_crash(way: Way) {
    let rdir = tempfile::tempdir().expect("tempdir");
    let mut receiver = Receiver::start(rdir.path(), free_port());
    let data = tempfile::tempdir().expect("tempdir");
    let mut pg = Promgate::start(data.path(), &config(&receiver, way));
    let t0 = now_ms() - 120_000;
    write(&pg, 0, 20, t0);
    eventually(Duration::from_secs(30), || {
        let n = received(&receiver)?.len();
        if n == 20 {
            Ok(())
        } else {
            Err(format!("{n} series"))
        }
    });

    // The receiver goes away for 30 s while writes continue every second.
    receiver.down();
    let started = Instant::now();
    let mut round = 1;
    while started.elapsed() < Duration::from_secs(30) {
        write(&pg, round, 20, t0 + round as i64 * 1000);
        round += 1;
        if round == 15 {
            // promgate crashes with the backlog queued, and comes back.
            pg.restart();
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
    let want = expected(&pg, way);
    assert_eq!(want.values().map(Vec::len).sum::<usize>(), 20 * round);
    receiver.up();
    arrives(&receiver, &want, Duration::from_secs(60));
    if way == Way::AsReceived {
        // The backlog from before the crash went re-encoded from the log (bodies are kept in
        // memory only); what was written after the restart went as received.
        assert!(as_received(&pg, &receiver) > 0.0);
    }
    let metrics = pg.metrics();
    assert!(
        !metrics.lines().any(
            |l| l.starts_with("prometheus_remote_storage_samples_failed_total")
                && !l.ends_with(" 0")
        ),
        "nothing may be dropped: {metrics}"
    );
}
