//! `write_relabel_configs` against the real thing: two targets with different rules (a
//! Prometheus 2.42 receiver and a VictoriaMetrics receiver) each get what their rules say, and
//! what they get equals what a real Prometheus 2.42 *sender* with the same external labels and
//! the same `write_relabel_configs` delivers to receivers of its own from the same input.
//! Also: recording-rule outputs and `ALERTS`/`ALERTS_FOR_STATE` are forwarded like ingested
//! samples.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use e2e::http::{self, ExportSeries};
use e2e::payload::{encode_v1, labels, series};
use e2e::{Prometheus, Promgate, VictoriaMetrics, eventually, now_ms};
use proto::v1::WriteRequest;

/// Rules for the Prometheus-bound target: every action whose outcome shows in the labels.
const RULES_PROM: &str = r#"
    - source_labels: [__name__]
      regex: 'fwd_secret.*'
      action: drop
    - source_labels: [strategy]
      regex: 's(\d)'
      target_label: strategy_num
      replacement: 'n${1}'
    - source_labels: [venue, strategy]
      separator: /
      target_label: route
    - source_labels: [strategy]
      target_label: bucket
      modulus: 4
      action: hashmod
    - source_labels: [desk]
      target_label: desk_upper
      action: uppercase
    - source_labels: [cluster]
      target_label: cluster_lower
      action: lowercase
    - regex: 'ex_(.*)'
      replacement: 'x_$1'
      action: labelmap
    - regex: 'ex_.*|venue'
      action: labeldrop
    - source_labels: [mirror]
      target_label: side
      action: dropequal
    - source_labels: [__name__]
      regex: 'orders_total|fwd_pnl'
      action: keep
"#;

/// Rules for the VictoriaMetrics-bound target.
const RULES_VM: &str = r#"
    - source_labels: [__name__]
      regex: 'fwd_.*'
      action: keep
    - source_labels: [mirror]
      target_label: side
      action: keepequal
    - regex: '__name__|strategy|cluster|side'
      action: labelkeep
"#;

/// The input: `(labels, values)` per series, three samples each.
fn input() -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let pairs = |v: &[(&str, String)]| -> Vec<(String, String)> {
        v.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    };
    for i in 0..12 {
        let side = if i % 2 == 0 { "buy" } else { "sell" };
        out.push(pairs(&[
            ("__name__", "fwd_pnl".into()),
            ("strategy", format!("s{i}")),
            ("venue", if i % 2 == 0 { "binance" } else { "okx" }.into()),
            ("desk", if i % 4 < 2 { "Rates" } else { "fx" }.into()),
            ("side", side.into()),
            (
                "mirror",
                if i % 3 == 0 {
                    side.into()
                } else {
                    "none".into()
                },
            ),
            ("ex_region", "eu".into()),
        ]));
    }
    for i in 0..3 {
        out.push(pairs(&[
            ("__name__", "fwd_secret_x".into()),
            ("strategy", format!("s{i}")),
            ("side", "buy".into()),
            ("mirror", "buy".into()),
        ]));
        out.push(pairs(&[
            ("__name__", "orders_total".into()),
            ("strategy", format!("s{i}")),
            ("side", "sell".into()),
            ("mirror", "x".into()),
            ("venue", "binance".into()),
        ]));
    }
    out
}

fn request(round: i64, t: i64) -> Vec<u8> {
    let req = WriteRequest {
        timeseries: input()
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let l: Vec<(&str, &str)> =
                    l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                series(labels(&l), &[(t, (round * 100 + i as i64) as f64 + 0.25)])
            })
            .collect(),
        metadata: vec![],
    };
    encode_v1(&req)
}

/// Prometheus's staleness marker.
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

type Contents = BTreeMap<String, Vec<(i64, f64)>>;

fn contents(series: Vec<ExportSeries>) -> Contents {
    series
        .into_iter()
        .map(|s| {
            let points = s
                .timestamps
                .iter()
                .copied()
                .zip(s.values.iter().copied())
                .collect();
            (s.key(), points)
        })
        .collect()
}

fn from_prometheus(p: &Prometheus) -> Result<Contents, String> {
    Ok(contents(p.query("{__name__=~\".+\"}[30m]", now_ms())?))
}

fn from_vm(vm: &VictoriaMetrics) -> Result<Contents, String> {
    vm.force_flush();
    Ok(contents(vm.export("{__name__=~\".+\"}", None)?))
}

fn indent(rules: &str, by: usize) -> String {
    rules
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{}{}\n", " ".repeat(by), l.trim_start_matches("    ")))
        .collect()
}

#[test]
fn two_targets_get_what_their_rules_say_as_prometheus_would_send_it() {
    // promgate's receivers.
    let prom = Prometheus::start("global: {}\n");
    let vm = VictoriaMetrics::start();
    // A Prometheus 2.42 sender with the same rules, and its receivers.
    let ref_prom = Prometheus::start("global: {}\n");
    let ref_vm = VictoriaMetrics::start();
    let queue =
        "  queue_config: {batch_send_deadline: 500ms, min_backoff: 50ms, max_backoff: 500ms}\n";
    let sender = Prometheus::start(&format!(
        "global:\n  external_labels:\n    cluster: EU-1\n\
         remote_write:\n\
         - url: {}\n  name: prom\n  write_relabel_configs:\n{}{queue}\
         - url: {}\n  name: vm\n  write_relabel_configs:\n{}{queue}",
        ref_prom.write_url(),
        indent(RULES_PROM, 4),
        ref_vm.write_url(),
        indent(RULES_VM, 4),
    ));
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(
        data.path(),
        &format!(
            "external_labels:\n  cluster: EU-1\n\
             remote_write:\n\
             - url: {}\n  name: prom\n  write_relabel_configs:\n{}\
             - url: {}\n  name: vm\n  write_relabel_configs:\n{}",
            prom.write_url(),
            indent(RULES_PROM, 4),
            vm.write_url(),
            indent(RULES_VM, 4),
        ),
    );
    // Prometheus's sender only forwards samples newer than its queue's start: current
    // timestamps, a second apart.
    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(1100));
        let body = request(round, now_ms());
        for url in [pg.write_url(), sender.write_url()] {
            let r = http::post_rw_v1(&url, body.clone()).expect("write");
            assert_eq!(r.status, 204, "{url}: {}", r.text());
        }
    }

    // What the rules say, written out by hand for the VictoriaMetrics target: fwd_* series
    // whose `mirror` equals `side` (i = 0, 3, 6, 9 of fwd_pnl, and the three fwd_secret_x),
    // with only __name__, strategy, cluster and side left.
    let want_vm: BTreeSet<String> =
        [0, 3, 6, 9]
            .iter()
            .map(|i| {
                let side = if i % 2 == 0 { "buy" } else { "sell" };
                format!("fwd_pnl{{cluster=\"EU-1\",side=\"{side}\",strategy=\"s{i}\"}}")
            })
            .chain((0..3).map(|i| {
                format!("fwd_secret_x{{cluster=\"EU-1\",side=\"buy\",strategy=\"s{i}\"}}")
            }))
            .collect();
    let got_vm = eventually(Duration::from_secs(60), || {
        let got = from_vm(&vm)?;
        let want = from_vm(&ref_vm)?;
        if got.len() == want_vm.len() && got.values().all(|v| v.len() == 3) && got == want {
            Ok(got)
        } else {
            Err(format!("promgate's:\n{got:#?}\nPrometheus's:\n{want:#?}"))
        }
    });
    assert_eq!(got_vm.keys().cloned().collect::<BTreeSet<_>>(), want_vm);

    // The Prometheus target: fwd_pnl (not i % 3 == 0, dropped by dropequal) and orders_total.
    let got_prom = eventually(Duration::from_secs(60), || {
        let got = from_prometheus(&prom)?;
        let want = from_prometheus(&ref_prom)?;
        if got.len() == 8 + 3 && got.values().all(|v| v.len() == 3) && got == want {
            Ok(got)
        } else {
            Err(format!("promgate's:\n{got:#?}\nPrometheus's:\n{want:#?}"))
        }
    });
    // Spot checks of what each action did, independent of the reference.
    let s1 = got_prom
        .keys()
        .find(|k| k.starts_with("fwd_pnl{") && k.contains("strategy=\"s1\""))
        .expect("fwd_pnl s1");
    for part in [
        "strategy_num=\"n1\"",
        "route=\"okx/s1\"",
        "desk_upper=\"RATES\"",
        "cluster_lower=\"eu-1\"",
        "x_region=\"eu\"",
        "bucket=\"",
    ] {
        assert!(s1.contains(part), "{part} in {s1}");
    }
    assert!(!s1.contains("venue=") && !s1.contains("ex_region="), "{s1}");
    assert!(
        !got_prom
            .keys()
            .any(|k| k.contains("strategy=\"s10\"") && k.contains("strategy_num")),
        "s(\\d) is anchored"
    );
    let metrics = pg.metrics();
    let dropped: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("prometheus_remote_storage_samples_dropped_total{")
                && l.contains("remote_name=\"prom\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    // 4 fwd_pnl (dropequal) + 3 fwd_secret_x (drop) series, three samples each.
    assert_eq!(dropped, 21.0, "{metrics}");
}

#[test]
fn recording_rules_and_alerts_are_forwarded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n- name: fwd\n  interval: 1s\n  rules:\n  - record: fwd:pnl:sum\n    expr: sum(fwd_live)\n  \
         - alert: FwdLiveHigh\n    expr: fwd_live > 5\n    for: 2s\n    labels:\n      severity: page\n",
    )
    .expect("rules");
    let receiver = Prometheus::start("global: {}\n");
    let pg = Promgate::start(
        dir.path().join("data").as_path(),
        &format!(
            "rule_files: [{}]\nexternal_labels:\n  cluster: eu-1\n\
             remote_write:\n- url: {}\n  name: prom\n",
            rules.display(),
            receiver.write_url()
        ),
    );
    // Live samples every 500 ms for 6 s: the rules see them, the alert goes pending, then
    // firing.
    for k in 0..12 {
        let req = WriteRequest {
            timeseries: (0..2)
                .map(|i| {
                    series(
                        labels(&[("__name__", "fwd_live"), ("i", &i.to_string())]),
                        &[(now_ms(), 4.0 + i as f64 + k as f64 * 0.01)],
                    )
                })
                .collect(),
            metadata: vec![],
        };
        let r = http::post_rw_v1(&pg.write_url(), encode_v1(&req)).expect("write");
        assert_eq!(r.status, 204);
        std::thread::sleep(Duration::from_millis(500));
    }
    // The rules go on evaluating: compare what was evaluated up to now.
    let until = now_ms();
    let upto = |c: Contents| -> Contents {
        c.into_iter()
            .map(|(k, v)| {
                (
                    k,
                    v.into_iter().filter(|p| p.0 <= until).collect::<Vec<_>>(),
                )
            })
            .filter(|(_, v)| !v.is_empty())
            .collect()
    };
    for selector in ["fwd:pnl:sum", "ALERTS", "ALERTS_FOR_STATE"] {
        let stored = |pg: &Promgate| -> Result<Contents, String> {
            let mut out = Contents::new();
            for mut s in pg.export(selector, None, true)? {
                s.metric.insert("cluster".into(), "eu-1".into());
                // Stale markers (the pending series ends when the alert fires) are forwarded
                // too, but Prometheus's query API does not return them.
                let bits = s.bits.clone().unwrap_or_default();
                let points = s
                    .timestamps
                    .iter()
                    .copied()
                    .zip(s.values.iter().copied())
                    .zip(bits)
                    .filter(|(_, b)| *b != STALE_NAN_BITS)
                    .map(|(p, _)| p)
                    .collect();
                out.insert(http::labels_key(&s.metric), points);
            }
            Ok(out)
        };
        eventually(Duration::from_secs(30), || {
            let want = upto(stored(&pg)?);
            if want.is_empty() {
                return Err(format!("promgate has no {selector}"));
            }
            let got = upto(contents(
                receiver.query(&format!("{selector}[30m]"), now_ms())?,
            ));
            if got == want {
                Ok(())
            } else {
                Err(format!("{selector}: received\n{got:#?}\nstored\n{want:#?}"))
            }
        });
    }
    let alerts = contents(receiver.query("ALERTS[30m]", now_ms()).expect("query"));
    assert!(
        alerts
            .keys()
            .any(|k| k.contains("alertstate=\"firing\"") && k.contains("i=\"1\"")),
        "{alerts:#?}"
    );
}
