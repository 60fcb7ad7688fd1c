//! A 204 means durable: write N requests (each answered 204), SIGKILL promgate right after the
//! last answer, restart it on the same data directory, and every acknowledged sample is there
//! with its exact bits: the stale marker NaN (0x7ff0000000000002), another NaN payload, ±Inf
//! and -0.0 included.

use std::collections::BTreeMap;

use e2e::http::post_rw_v1;
use e2e::payload::{RawSeries, raw_v1, snappy};
use e2e::{Promgate, now_ms};

/// Prometheus's stale marker.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
/// Go's `math.NaN()`, what an exporter's NaN gauge carries.
const GO_NAN: u64 = 0x7ff8_0000_0000_0001;

const REQUESTS: usize = 40;
const SERIES_PER_REQUEST: usize = 25;
const SAMPLES_PER_SERIES: usize = 4;

/// series key -> (timestamp -> value bits)
type Expected = BTreeMap<String, BTreeMap<i64, u64>>;

fn key(i: usize) -> String {
    format!(r#"durable_metric{{job="durability",series="{i}"}}"#)
}

#[test]
fn acknowledged_samples_survive_sigkill() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut pg = Promgate::start(data.path(), "");
    let base = now_ms() - 20 * 60_000;
    let mut expected = Expected::new();

    for r in 0..REQUESTS {
        // Half the series repeat across requests (appends), half are new each time.
        // Encoded by hand: prost (like Prometheus's gogo-protobuf) omits a value equal to 0.0
        // from the wire, so -0.0 would arrive as +0.0.
        let mut req: Vec<RawSeries> = Vec::new();
        for s in 0..SERIES_PER_REQUEST {
            let i = if s % 2 == 0 {
                s
            } else {
                1000 + r * SERIES_PER_REQUEST + s
            };
            let samples: Vec<(i64, f64)> = (0..SAMPLES_PER_SERIES)
                .map(|j| {
                    let t = base + ((r * SAMPLES_PER_SERIES + j) as i64) * 1000;
                    let v = match (r * 7 + s * 3 + j) % 11 {
                        0 => f64::from_bits(GO_NAN),
                        1 => f64::INFINITY,
                        2 => f64::NEG_INFINITY,
                        3 => -0.0,
                        4 => f64::MIN_POSITIVE,
                        5 => 1e308,
                        _ => (r * 1000 + s) as f64 + j as f64 / 8.0,
                    };
                    (t, v)
                })
                .collect();
            // The last request ends its repeating series with a stale marker.
            let mut samples = samples;
            if r == REQUESTS - 1 && s % 2 == 0 {
                let last = samples.last_mut().expect("samples");
                last.1 = f64::from_bits(STALE_NAN);
            }
            let name_i = i.to_string();
            let entry = expected.entry(key(i)).or_default();
            for &(t, v) in &samples {
                entry.insert(t, v.to_bits());
            }
            req.push((
                vec![
                    (b"__name__".to_vec(), b"durable_metric".to_vec()),
                    (b"job".to_vec(), b"durability".to_vec()),
                    (b"series".to_vec(), name_i.into_bytes()),
                ],
                samples,
            ));
        }
        let resp = post_rw_v1(&pg.write_url(), snappy(&raw_v1(&req))).expect("write");
        assert_eq!(resp.status, 204, "request {r}: {}", resp.text());
    }
    // A crash right after the last acknowledgement (SIGKILL: no shutdown path runs), then a
    // start on the same data directory.
    pg.restart();
    let got = pg
        .export(r#"{job="durability"}"#, None, true)
        .unwrap_or_else(|e| panic!("export after restart: {e}\n{}", pg.process().log_tail()));
    let mut actual = Expected::new();
    for s in &got {
        let bits = s
            .bits
            .clone()
            .unwrap_or_else(|| panic!("export with raw_bits=1 has no \"bits\" for {}", s.key()));
        assert_eq!(bits.len(), s.timestamps.len(), "bits of {}", s.key());
        // The decimal values agree with the bits (NaNs as "NaN").
        for (v, b) in s.values.iter().zip(&bits) {
            let from_bits = f64::from_bits(*b);
            assert!(
                v.to_bits() == *b || (v.is_nan() && from_bits.is_nan()),
                "{}: value {v} vs bits {b:016x}",
                s.key()
            );
        }
        let map = actual.entry(s.key()).or_default();
        for (t, b) in s.timestamps.iter().zip(bits) {
            assert!(
                map.insert(*t, b).is_none(),
                "{}: duplicate timestamp {t}",
                s.key()
            );
        }
    }

    let missing_series: Vec<&String> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    assert!(
        missing_series.is_empty(),
        "{} of {} acknowledged series lost after SIGKILL, e.g. {:?}",
        missing_series.len(),
        expected.len(),
        &missing_series[..missing_series.len().min(5)]
    );
    let mut lost = 0;
    let mut wrong = Vec::new();
    for (k, want) in &expected {
        let have = &actual[k];
        for (t, bits) in want {
            match have.get(t) {
                None => lost += 1,
                Some(b) if b != bits => wrong.push(format!("{k}@{t}: {b:016x} != {bits:016x}")),
                Some(_) => {}
            }
        }
        assert_eq!(
            have.len(),
            want.len(),
            "{k}: samples stored that were never sent"
        );
    }
    let total: usize = expected.values().map(BTreeMap::len).sum();
    assert_eq!(
        lost, 0,
        "{lost} of {total} acknowledged samples lost after SIGKILL"
    );
    assert!(wrong.is_empty(), "values not bit-exact: {wrong:?}");
    assert_eq!(total, REQUESTS * SERIES_PER_REQUEST * SAMPLES_PER_SERIES);
    // The stale markers are there.
    let stale = actual
        .values()
        .flat_map(BTreeMap::values)
        .filter(|b| **b == STALE_NAN)
        .count();
    assert_eq!(stale, SERIES_PER_REQUEST.div_ceil(2));
}

/// Writers keep sending while promgate is SIGKILLed mid-stream: after a restart every request
/// answered 2xx is there in full, and every request left without an answer is there in full or
/// not at all (never half applied).
#[test]
fn sigkill_under_concurrent_writes_loses_no_ack_and_applies_nothing_by_half() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    const WRITERS: usize = 4;
    const SERIES: usize = 100;
    const SAMPLES: usize = 10;

    let data = tempfile::tempdir().expect("tempdir");
    let mut pg = Promgate::start(data.path(), "");
    let url = pg.write_url();
    let base = now_ms() - 30 * 60_000;
    let stop = Arc::new(AtomicBool::new(false));
    // (writer, request number, acknowledged)
    let outcomes = Arc::new(Mutex::new(Vec::<(usize, usize, bool)>::new()));
    let mut threads = Vec::new();
    for w in 0..WRITERS {
        let (url, stop, outcomes) = (url.clone(), stop.clone(), outcomes.clone());
        threads.push(std::thread::spawn(move || {
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                let req: Vec<RawSeries> = (0..SERIES)
                    .map(|s| {
                        (
                            vec![
                                (b"__name__".to_vec(), b"crash_metric".to_vec()),
                                (b"req".to_vec(), format!("{w}-{k}").into_bytes()),
                                (b"series".to_vec(), s.to_string().into_bytes()),
                            ],
                            (0..SAMPLES)
                                .map(|j| (base + j as i64 * 1000, (k * 1000 + j) as f64))
                                .collect(),
                        )
                    })
                    .collect();
                let acked = matches!(
                    post_rw_v1(&url, snappy(&raw_v1(&req))),
                    Ok(r) if r.status == 204
                );
                outcomes.lock().expect("lock").push((w, k, acked));
                if !acked {
                    return;
                }
                k += 1;
            }
        }));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    pg.kill_9();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("writer thread");
    }
    pg.restart();

    let got = pg
        .export("crash_metric", None, false)
        .unwrap_or_else(|e| panic!("export after restart: {e}\n{}", pg.process().log_tail()));
    let mut per_request: BTreeMap<String, usize> = BTreeMap::new();
    for s in &got {
        let req = s.metric["req"].clone();
        let k: usize = req
            .split('-')
            .nth(1)
            .and_then(|k| k.parse().ok())
            .expect("req label");
        let want: Vec<f64> = (0..SAMPLES).map(|j| (k * 1000 + j) as f64).collect();
        assert_eq!(s.values, want, "{}", s.key());
        *per_request.entry(req).or_default() += 1;
    }
    let outcomes = outcomes.lock().expect("lock");
    let acked = outcomes.iter().filter(|o| o.2).count();
    eprintln!(
        "{acked} requests acknowledged, {} without answer, {} requests found after restart",
        outcomes.len() - acked,
        per_request.len()
    );
    assert!(
        acked >= WRITERS,
        "too few writes acknowledged before the kill: {acked}"
    );
    for &(w, k, ack) in outcomes.iter() {
        let n = per_request.get(&format!("{w}-{k}")).copied().unwrap_or(0);
        if ack {
            assert_eq!(
                n, SERIES,
                "acknowledged request {w}-{k}: {n} of {SERIES} series"
            );
        } else {
            assert!(
                n == 0 || n == SERIES,
                "unacknowledged request {w}-{k} half applied: {n} of {SERIES} series"
            );
        }
    }
    // Nothing stored that no writer sent.
    for req in per_request.keys() {
        let (w, k) = req.split_once('-').expect("req label");
        let (w, k): (usize, usize) = (w.parse().expect("w"), k.parse().expect("k"));
        assert!(
            outcomes.iter().any(|o| o.0 == w && o.1 == k),
            "{req} never sent"
        );
    }
}

/// SIGTERM shuts promgate down in order: it exits 0 within the grace period and a restart on
/// the same directory has every acknowledged sample.
#[test]
fn sigterm_exits_cleanly_and_keeps_the_data() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut pg = Promgate::start(data.path(), "");
    let ts = now_ms() - 60_000;
    let r = post_rw_v1(&pg.write_url(), e2e::rw_v1(50, 4, ts)).expect("write");
    assert_eq!(r.status, 204, "{}", r.text());
    let status = pg
        .process_mut()
        .terminate(std::time::Duration::from_secs(30))
        .unwrap_or_else(|| panic!("promgate still running 30s after SIGTERM"));
    assert!(
        status.success(),
        "exit after SIGTERM: {status}; log:\n{}",
        pg.process().log_tail()
    );
    pg.restart();
    let got = pg
        .export(e2e::payload::METRIC, None, false)
        .expect("export");
    assert_eq!(got.len(), 50);
    for s in &got {
        let i: usize = s.metric["series"].parse().expect("series label");
        let want: Vec<f64> = (0..4).map(|j| e2e::payload::value_of(i, j)).collect();
        assert_eq!(s.values, want, "{}", s.key());
    }
}
