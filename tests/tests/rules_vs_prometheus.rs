//! The shipped rule pack (`alerts.yaml`) evaluated by promgate and by a real Prometheus 2.42
//! over the same trading scenario: drawdown rising through 15%, the circuit breaker tripping,
//! the exchange WebSocket dropping, channel utilisation climbing past 80%, each clearing later.
//!
//! The whole scenario is written up front into both, with timestamps from now into the next
//! minutes, so what each evaluation sees depends only on its timestamp, not on when a write
//! happened to land. Both evaluate the same file path every 2 s; promgate phases its groups as
//! Prometheus does, so both evaluate at the same timestamps, and their `ALERTS` and
//! `ALERTS_FOR_STATE` samples are compared evaluation by evaluation. promgate's
//! `/api/v1/alerts` is watched meanwhile: each alert goes pending, then firing after its `for`,
//! then away, at the evaluations the scenario says.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use e2e::http::{self, ExportSeries};
use e2e::payload::{encode_v1, labels, series};
use e2e::{Prometheus, Promgate, now_ms};
use proto::v1::WriteRequest;

const INTERVAL_MS: i64 = 2_000;
/// When the scenario ends, relative to its start.
const END_S: i64 = 175;

/// A step function: `(from_s, value)`, sorted; the value before the first step is `base`.
struct Signal {
    name: &'static str,
    labels: &'static [(&'static str, &'static str)],
    base: f64,
    steps: &'static [(i64, f64)],
}

impl Signal {
    fn at(&self, rel_s: i64) -> f64 {
        self.steps
            .iter()
            .rev()
            .find(|(from, _)| rel_s >= *from)
            .map_or(self.base, |(_, v)| *v)
    }
}

/// The alert each signal drives, its `for`, and when its condition holds (seconds).
struct Expect {
    alert: &'static str,
    for_s: i64,
    from_s: i64,
    until_s: i64,
}

const SIGNALS: &[Signal] = &[
    Signal {
        name: "cryptofunk_current_drawdown",
        labels: &[("strategy", "market-making"), ("job", "cryptofunk")],
        base: 0.10,
        steps: &[(10, 0.20), (100, 0.05)],
    },
    Signal {
        name: "drawdown_percentage",
        labels: &[("strategy", "market-making"), ("job", "cryptofunk")],
        base: 10.0,
        steps: &[(10, 20.0), (100, 5.0)],
    },
    Signal {
        name: "cryptofunk_circuit_breaker_tripped",
        labels: &[("strategy", "market-making"), ("job", "cryptofunk")],
        base: 0.0,
        steps: &[(20, 1.0), (110, 0.0)],
    },
    Signal {
        name: "trading_ws_connection_status",
        labels: &[("exchange", "binance"), ("job", "trading-engine")],
        base: 1.0,
        steps: &[(30, 0.0), (80, 1.0)],
    },
    Signal {
        name: "trading_channel_utilization_percent",
        labels: &[("channel", "orders"), ("job", "trading-engine")],
        base: 50.0,
        steps: &[(15, 90.0), (160, 40.0)],
    },
];

const EXPECT: &[Expect] = &[
    Expect {
        alert: "TradingDrawdownHigh",
        for_s: 60,
        from_s: 10,
        until_s: 100,
    },
    Expect {
        alert: "TradingDrawdownPercentageHigh",
        for_s: 60,
        from_s: 10,
        until_s: 100,
    },
    Expect {
        alert: "CircuitBreakerTripped",
        for_s: 60,
        from_s: 20,
        until_s: 110,
    },
    Expect {
        alert: "ExchangeWebSocketDown",
        for_s: 30,
        from_s: 30,
        until_s: 80,
    },
    Expect {
        alert: "ChannelBackpressure",
        for_s: 120,
        from_s: 15,
        until_s: 160,
    },
];

/// One request with every signal from 60 s before `t0` to the end, a sample a second.
fn scenario(t0: i64) -> Vec<u8> {
    let timeseries = SIGNALS
        .iter()
        .map(|s| {
            let mut pairs = vec![("__name__", s.name)];
            pairs.extend_from_slice(s.labels);
            let samples: Vec<(i64, f64)> = (-60..=END_S + 5)
                .map(|rel| (t0 + rel * 1000, s.at(rel)))
                .collect();
            series(labels(&pairs), &samples)
        })
        .collect();
    encode_v1(&WriteRequest {
        timeseries,
        metadata: vec![],
    })
}

/// Samples by series key, limited to `[from, to]`.
fn samples(series: Vec<ExportSeries>, from: i64, to: i64) -> BTreeMap<String, Vec<(i64, f64)>> {
    series
        .into_iter()
        .map(|s| {
            let key = s.key();
            let v = s
                .timestamps
                .into_iter()
                .zip(s.values)
                .filter(|(t, _)| (from..=to).contains(t))
                .collect();
            (key, v)
        })
        .filter(|(_, v): &(String, Vec<(i64, f64)>)| !v.is_empty())
        .collect()
}

/// The first evaluation of a group at or after `t` (`evals` sorted).
fn first_eval_at_or_after(evals: &[i64], t: i64) -> i64 {
    *evals
        .iter()
        .find(|&&e| e >= t)
        .unwrap_or_else(|| panic!("no evaluation at or after {t}: {evals:?}"))
}

#[test]
fn alerts_yaml_gives_the_same_alerts_at_the_same_evaluations_as_prometheus() {
    let pack = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../alerts.yaml")
        .canonicalize()
        .expect("alerts.yaml");
    let pack = pack.display().to_string();
    let prom = Prometheus::start(&format!(
        "global:\n  evaluation_interval: 2s\nrule_files:\n  - {pack}\n"
    ));
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(
        data.path(),
        &format!("evaluation_interval: 2s\nrule_files:\n  - {pack}\n"),
    );

    // Start a few evaluations from now, so both are evaluating before anything changes.
    let t0 = (now_ms() / 1000 + 8) * 1000;
    let body = scenario(t0);
    for (name, url) in [
        ("prometheus", prom.write_url()),
        ("promgate", pg.write_url()),
    ] {
        let r = http::post_rw_v1(&url, body.clone()).expect("write");
        assert!(
            (200..300).contains(&r.status),
            "{name} refused the scenario: {} {}",
            r.status,
            r.text()
        );
    }

    // Watch promgate's /api/v1/alerts until the scenario is over: state and activeAt per
    // alert at each poll.
    let mut seen: HashMap<String, Vec<(i64, String, String)>> = HashMap::new();
    let end = t0 + END_S * 1000;
    while now_ms() < end + 3 * INTERVAL_MS {
        let v = http::get(&format!("{}/api/v1/alerts", pg.url()))
            .expect("alerts")
            .json()
            .expect("json");
        for a in v["data"]["alerts"].as_array().cloned().unwrap_or_default() {
            let name = a["labels"]["alertname"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            seen.entry(name).or_default().push((
                now_ms(),
                a["state"].as_str().unwrap_or_default().to_string(),
                a["activeAt"].as_str().unwrap_or_default().to_string(),
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    // Evaluation timestamps of each group, from promgate's ALERTS_FOR_STATE (written at every
    // evaluation while an alert is active) would miss quiet periods; use the rules API's
    // last evaluation and the interval instead: both sides evaluate at offset + k * 2 s.
    let groups = http::get(&format!("{}/api/v1/rules", pg.url()))
        .expect("rules")
        .json()
        .expect("json");
    let mut phase_of: HashMap<String, i64> = HashMap::new();
    for g in groups["data"]["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let last = g["lastEvaluation"].as_str().unwrap_or_default();
        let ms = chrono::DateTime::parse_from_rfc3339(last)
            .expect("lastEvaluation")
            .timestamp_millis();
        for r in g["rules"].as_array().cloned().unwrap_or_default() {
            phase_of.insert(
                r["name"].as_str().unwrap_or_default().to_string(),
                ms.rem_euclid(INTERVAL_MS),
            );
        }
    }

    // Compare the ALERTS and ALERTS_FOR_STATE samples of every evaluation in the scenario.
    let (from, to) = (t0, end);
    for metric in ["ALERTS", "ALERTS_FOR_STATE"] {
        let q = format!("{metric}[{}s]", (to - from) / 1000 + 1);
        let theirs = samples(prom.query(&q, to).expect("prometheus query"), from, to);
        let ours = samples(
            http::prom_query(&pg.url(), &q, to).expect("promgate query"),
            from,
            to,
        );
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{metric}: different series"
        );
        for (k, want) in &theirs {
            let got = &ours[k];
            assert_eq!(
                got, want,
                "{metric} {k}: promgate (left) and Prometheus (right) differ"
            );
        }
        if metric == "ALERTS" {
            // Every scripted alert went through pending and firing on Prometheus too.
            for e in EXPECT {
                for state in ["pending", "firing"] {
                    assert!(
                        theirs
                            .keys()
                            .any(|k| k.contains(&format!("alertname=\"{}\"", e.alert))
                                && k.contains(&format!("alertstate=\"{state}\""))),
                        "Prometheus never had {} {state}: {:?}",
                        e.alert,
                        theirs.keys()
                    );
                }
            }
        }
    }

    // And the lifecycle, as promgate's /api/v1/alerts showed it.
    for e in EXPECT {
        let phase = phase_of[e.alert];
        let evals: Vec<i64> = (0..=(END_S * 1000 / INTERVAL_MS + 2))
            .map(|k| (t0 - t0.rem_euclid(INTERVAL_MS)) + phase + k * INTERVAL_MS)
            .collect();
        let active = first_eval_at_or_after(&evals, t0 + e.from_s * 1000);
        let fires = first_eval_at_or_after(&evals, active + e.for_s * 1000);
        let gone = first_eval_at_or_after(&evals, t0 + e.until_s * 1000);
        let polls = seen
            .get(e.alert)
            .unwrap_or_else(|| panic!("{} never active", e.alert));
        for (_, _, a) in polls {
            let ms = chrono::DateTime::parse_from_rfc3339(a)
                .expect("activeAt")
                .timestamp_millis();
            assert_eq!(ms, active, "{}: activeAt {a}: {polls:?}", e.alert);
        }
        // Allow the poll's own latency (a poll right at an evaluation may see either side).
        let slack = 1_000;
        for (t, state, _) in polls {
            assert!(
                *t >= active,
                "{} seen before it became active: {t} < {active}",
                e.alert
            );
            assert!(
                *t < gone + slack,
                "{} still seen at {t}, resolved at {gone}",
                e.alert
            );
            match state.as_str() {
                "pending" => assert!(
                    *t < fires + slack,
                    "{} pending at {t} after {fires}",
                    e.alert
                ),
                "firing" => assert!(*t >= fires, "{} firing at {t} before {fires}", e.alert),
                other => panic!("{}: state {other}", e.alert),
            }
        }
        assert!(
            polls.iter().any(|(_, s, _)| s == "pending"),
            "{} never pending",
            e.alert
        );
        assert!(
            polls.iter().any(|(_, s, _)| s == "firing"),
            "{} never firing",
            e.alert
        );
    }
}
