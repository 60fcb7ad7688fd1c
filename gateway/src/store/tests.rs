use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use promql_parser::label::{MatchOp, Matcher};
use rules_engine::model::{STALE_NAN_BITS, stale_nan};
use rules_engine::storage::{Appender, Queryable, Series, TimeRange};
use rules_engine::{Labels, Sample};

use super::*;
use crate::config::StorageConfig;
use crate::validate::{LimitsConfig, Reason};

fn open_at(dir: &std::path::Path, limits: LimitsConfig, now_ms: i64) -> Store {
    let cfg = StorageConfig {
        path: dir.to_path_buf(),
        retention: Duration::from_secs(3600),
        ..StorageConfig::default()
    };
    let metrics = StoreMetrics::register(&mut Registry::default());
    Store::open(&cfg, Arc::new(limits), metrics, now_ms, &[]).unwrap()
}

fn open_with(dir: &std::path::Path, limits: LimitsConfig) -> Store {
    open_at(dir, limits, 10_000)
}

fn open(dir: &std::path::Path) -> Store {
    open_with(dir, LimitsConfig::default())
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied()).unwrap()
}

fn batch(series: &[(&Labels, &[(i64, f64)])]) -> WriteBatch {
    let mut b = WriteBatch::default();
    for (l, samples) in series {
        let start = b.samples.len() as u32;
        b.samples
            .extend(samples.iter().map(|&(t, v)| Sample::new(t, v)));
        b.entries.push(Entry {
            target: Target::New((*l).clone(), crate::store::head::SeriesKey::of(l)),
            samples: start..b.samples.len() as u32,
        });
    }
    b
}

fn all(store: &Store) -> Vec<Series> {
    store
        .select(
            &[Matcher::new(MatchOp::NotEqual, "__name__", "")],
            TimeRange::new(i64::MIN, i64::MAX),
        )
        .unwrap()
}

#[test]
fn writes_survive_reopen_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let up = labels(&[("__name__", "up"), ("job", "a")]);
    let x = labels(&[("__name__", "x")]);
    {
        let store = open(dir.path());
        let out = store
            .write_blocking(batch(&[
                (&up, &[(1000, 1.0), (2000, 0.0)]),
                (&x, &[(1500, stale_nan())]),
            ]))
            .unwrap();
        assert_eq!((out.accepted, out.series_created), (3, 2));
        assert!(out.rejected.is_empty());
        store
            .write_blocking(batch(&[(&up, &[(3000, 1.0)])]))
            .unwrap();
        store.close();
    }
    let store = open(dir.path());
    let got = all(&store);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].labels, up);
    assert_eq!(
        got[0].samples,
        vec![
            Sample::new(1000, 1.0),
            Sample::new(2000, 0.0),
            Sample::new(3000, 1.0)
        ]
    );
    assert_eq!(got[1].samples[0].v.to_bits(), STALE_NAN_BITS);
    // Ids are not reused after reopening.
    let y = labels(&[("__name__", "y")]);
    store.write_blocking(batch(&[(&y, &[(1, 1.0)])])).unwrap();
    let ids: Vec<u64> = store.head().all().iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|&i| i <= 3) && ids.contains(&3));
}

/// The record layout of schema version 2, written here as that version wrote it.
fn encode_entry_v2(out: &mut Vec<u8>, id: u64, samples: &[Sample]) {
    use super::codec::{put_varint, zigzag};
    put_varint(out, id);
    put_varint(out, samples.len() as u64);
    let (mut t, mut v) = (0i64, 0u64);
    for s in samples {
        put_varint(out, zigzag(s.t.0 - t));
        put_varint(out, s.v.to_bits() ^ v);
        (t, v) = (s.t.0, s.v.to_bits());
    }
}

#[test]
fn a_version_2_database_is_migrated_to_the_current_record_layout() {
    let dir = tempfile::tempdir().unwrap();
    let up = labels(&[("__name__", "up"), ("job", "a")]);
    let pnl = labels(&[("__name__", "pnl_usd")]);
    // In the order the store lists series (by labels).
    let written = [
        (
            &pnl,
            vec![(1500, -1234.5), (2500, f64::from_bits(STALE_NAN_BITS))],
        ),
        (&up, vec![(1000, 1.0), (2000, 0.0), (3000, 1.0)]),
    ];
    {
        let store = open(dir.path());
        for (l, s) in &written {
            store.write_blocking(batch(&[(l, s.as_slice())])).unwrap();
        }
        store.close();
    }
    // Turn the database into what version 2 left: its layout in every record.
    {
        let conn = rusqlite::Connection::open(dir.path().join("promgate.db")).unwrap();
        let rows: Vec<(i64, Vec<u8>)> = conn
            .prepare("SELECT seq, data FROM log")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len(), 2);
        for (seq, data) in rows {
            let mut old = Vec::new();
            codec::decode_record(&data, |id, s| encode_entry_v2(&mut old, id, s)).unwrap();
            conn.execute(
                "UPDATE log SET data = ?2 WHERE seq = ?1",
                rusqlite::params![seq, old],
            )
            .unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
    }
    let store = open(dir.path());
    let got = all(&store);
    let bits = |s: &[Sample]| s.iter().map(|x| (x.t.0, x.v.to_bits())).collect::<Vec<_>>();
    assert_eq!(got.len(), 2);
    for (series, (l, s)) in got.iter().zip(&written) {
        assert_eq!(&series.labels, *l);
        let want: Vec<Sample> = s.iter().map(|&(t, v)| Sample::new(t, v)).collect();
        assert_eq!(bits(&series.samples), bits(&want));
    }
    store.close();
    let conn = rusqlite::Connection::open(dir.path().join("promgate.db")).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
    // Rewritten, not read through a fallback: every record decodes in the current layout.
    let mut stmt = conn.prepare("SELECT data FROM log").unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut samples = 0;
    while let Some(r) = rows.next().unwrap() {
        codec::decode_record(r.get_ref(0).unwrap().as_blob().unwrap(), |_, s| {
            samples += s.len()
        })
        .unwrap();
    }
    assert_eq!(samples, 5);
}

#[test]
fn out_of_order_and_duplicates_are_rejected_like_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = labels(&[("__name__", "m")]);
    store
        .write_blocking(batch(&[(&s, &[(1000, 1.0), (2000, 2.0)])]))
        .unwrap();
    let out = store
        .write_blocking(batch(&[(
            &s,
            &[(1500, 9.0), (2000, 2.0), (2000, 3.0), (2500, 4.0)],
        )]))
        .unwrap();
    assert_eq!(out.accepted, 1, "only 2500 is new");
    assert_eq!(out.rejected.counts.get(&Reason::out_of_order), Some(&1));
    assert_eq!(out.rejected.counts.get(&Reason::duplicate_sample), Some(&1));
    let (series, reason, detail) = out.rejected.first.clone().unwrap();
    assert_eq!(
        (series.as_str(), reason),
        (r#"{__name__="m"}"#, Reason::out_of_order)
    );
    assert!(
        detail.contains("1500") && detail.contains("2000"),
        "{detail}"
    );
}

#[test]
fn out_of_order_window_inserts_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let limits = LimitsConfig {
        out_of_order_window: Duration::from_secs(1),
        ..LimitsConfig::default()
    };
    let s = labels(&[("__name__", "m")]);
    {
        let store = open_with(dir.path(), limits.clone());
        store
            .write_blocking(batch(&[(&s, &[(1000, 1.0), (3000, 3.0)])]))
            .unwrap();
        let out = store
            .write_blocking(batch(&[(&s, &[(2500, 2.5), (1000, 1.0), (1500, 9.0)])]))
            .unwrap();
        assert_eq!(
            out.accepted, 1,
            "2500 inside the window; 1000 is a retry; 1500 too old"
        );
        assert_eq!(out.rejected.counts.get(&Reason::out_of_order), Some(&1));
    }
    let store = open_with(dir.path(), limits);
    let ts: Vec<i64> = all(&store)[0].samples.iter().map(|x| x.t.0).collect();
    assert_eq!(ts, vec![1000, 2500, 3000]);
}

#[test]
fn series_limits_reject_new_series_only() {
    let dir = tempfile::tempdir().unwrap();
    let limits = LimitsConfig {
        max_series: 4,
        max_series_per_metric: 2,
        max_series_per_job: 1,
        ..LimitsConfig::default()
    };
    let store = open_with(dir.path(), limits);
    let a = labels(&[("__name__", "a"), ("i", "1")]);
    let a2 = labels(&[("__name__", "a"), ("i", "2")]);
    let a3 = labels(&[("__name__", "a"), ("i", "3")]);
    let j1 = labels(&[("__name__", "b"), ("job", "j")]);
    let j2 = labels(&[("__name__", "c"), ("job", "j")]);
    let d = labels(&[("__name__", "d")]);
    let e = labels(&[("__name__", "e")]);
    let out = store
        .write_blocking(batch(&[
            (&a, &[(1, 1.0)]),
            (&a2, &[(1, 1.0)]),
            (&a3, &[(1, 1.0)]),
            (&j1, &[(1, 1.0)]),
            (&j2, &[(1, 1.0)]),
            (&d, &[(1, 1.0)]),
            (&e, &[(1, 1.0)]),
        ]))
        .unwrap();
    assert_eq!(
        out.rejected.counts.get(&Reason::series_limit_per_metric),
        Some(&1)
    );
    assert_eq!(
        out.rejected.counts.get(&Reason::series_limit_per_job),
        Some(&1)
    );
    assert_eq!(out.rejected.counts.get(&Reason::series_limit), Some(&1));
    assert_eq!(store.head().len(), 4);
    // Existing series keep receiving samples at the limit.
    let out = store.write_blocking(batch(&[(&a, &[(2, 1.0)])])).unwrap();
    assert_eq!((out.accepted, out.rejected.total()), (1, 0));
}

#[test]
fn retention_deletes_samples_and_retires_series_durably() {
    let dir = tempfile::tempdir().unwrap();
    let old = labels(&[("__name__", "old")]);
    let live = labels(&[("__name__", "live")]);
    {
        let store = open(dir.path());
        store
            .write_blocking(batch(&[
                (&old, &[(100, 1.0)]),
                (&live, &[(100, 1.0), (9000, 2.0)]),
            ]))
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let stats = rt.block_on(store.apply_retention(5000)).unwrap();
        assert_eq!(stats.samples_deleted, 2);
        assert_eq!(stats.series_retired, 1);
        assert_eq!(store.head().len(), 1);
        // A writer that resolved `old` before retention must not write into a detached series.
        store
            .write_blocking(batch(&[(&old, &[(9500, 3.0)])]))
            .unwrap();
        assert_eq!(store.head().len(), 2);
    }
    // Reopened later, with the same cutoff (clock moved on by the retention).
    let store = open_at(dir.path(), LimitsConfig::default(), 5000 + 3_600_000);
    let got = all(&store);
    assert_eq!(
        got.iter().map(|s| s.samples.len()).collect::<Vec<_>>(),
        vec![1, 1]
    );
}

#[test]
fn a_failed_commit_is_undone_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = labels(&[("__name__", "m")]);
    store
        .write_blocking(batch(&[(&s, &[(1000, 1.0)])]))
        .unwrap();
    // Another connection holds the write lock: the writer's transaction cannot commit.
    let blocker = rusqlite::Connection::open(dir.path().join("promgate.db")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let n = labels(&[("__name__", "n")]);
    let err = store.write_blocking(batch(&[(&s, &[(2000, 2.0)]), (&n, &[(2000, 1.0)])]));
    assert!(
        err.is_err(),
        "a write that could not commit must not be acknowledged"
    );
    assert!(matches!(err, Err(StoreError::CommitFailed(_))), "{err:?}");
    assert_eq!(
        all(&store).iter().map(|x| x.samples.len()).sum::<usize>(),
        1
    );
    assert_eq!(store.head().len(), 1);
    blocker.execute_batch("ROLLBACK").unwrap();
    let out = store
        .write_blocking(batch(&[(&s, &[(2000, 2.0)]), (&n, &[(2000, 1.0)])]))
        .unwrap();
    assert_eq!(out.accepted, 2);
}

#[test]
fn appender_writes_recorded_samples() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let l = labels(&[("__name__", "job:up:sum")]);
    store
        .append(vec![Series {
            labels: l.clone(),
            samples: vec![Sample::new(5, 2.0)],
        }])
        .unwrap();
    let got = store
        .select(
            &[Matcher::new(MatchOp::Equal, "__name__", "job:up:sum")],
            TimeRange::new(0, 10),
        )
        .unwrap();
    assert_eq!(
        got,
        vec![Series {
            labels: l,
            samples: vec![Sample::new(5, 2.0)]
        }]
    );
}

fn open_targets(dir: &std::path::Path, now_ms: i64, targets: &[(&str, u64)]) -> Store {
    let cfg = StorageConfig {
        path: dir.to_path_buf(),
        retention: Duration::from_secs(3600),
        ..StorageConfig::default()
    };
    let targets: Vec<ForwardTarget> = targets
        .iter()
        .map(|(n, b)| ForwardTarget {
            name: n.to_string(),
            max_backlog_bytes: *b,
            as_received: false,
        })
        .collect();
    let metrics = StoreMetrics::register(&mut Registry::default());
    Store::open(
        &cfg,
        Arc::new(LimitsConfig::default()),
        metrics,
        now_ms,
        &targets,
    )
    .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn forward_cursors_persist_and_start_at_the_newest_record() {
    let dir = tempfile::tempdir().unwrap();
    let m = labels(&[("__name__", "m")]);
    {
        let store = open_targets(dir.path(), 10_000, &[]);
        store.write_blocking(batch(&[(&m, &[(1, 1.0)])])).unwrap();
        assert_eq!(*store.committed().borrow(), 1);
    }
    let store = open_targets(dir.path(), 10_000, &[("a", 0)]);
    assert_eq!(
        store.cursor("a"),
        Some(1),
        "a new target gets data from now on"
    );
    store.write_blocking(batch(&[(&m, &[(2, 1.0)])])).unwrap();
    store.write_blocking(batch(&[(&m, &[(3, 1.0)])])).unwrap();
    assert_eq!(*store.committed().borrow(), 3);
    rt().block_on(store.set_cursor("a", 2)).unwrap();
    drop(store);
    let store = open_targets(dir.path(), 10_000, &[("a", 0)]);
    assert_eq!(store.cursor("a"), Some(2));
    drop(store);
    // A target no longer configured loses its cursor and holds nothing back.
    let store = open_targets(dir.path(), 10_000, &[]);
    assert_eq!(store.cursor("a"), None);
    assert_eq!(store.highest_timestamp(), 3);
}

#[test]
fn retention_keeps_what_a_target_has_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let old = labels(&[("__name__", "old")]);
    let store = open_targets(dir.path(), 10_000, &[("a", 0)]);
    store
        .write_blocking(batch(&[(&old, &[(100, 1.0)])]))
        .unwrap();
    let rt = rt();
    // The record is past the retention but unsent: it and its series stay.
    let stats = rt.block_on(store.apply_retention(5000)).unwrap();
    assert_eq!((stats.records_deleted, stats.series_retired), (0, 0));
    let reader = store.open_reader().unwrap();
    let n: i64 = reader
        .query_row("SELECT COUNT(*) FROM log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    assert!(
        store.head().get(1).is_some(),
        "the forwarder still needs its labels"
    );
    // Once sent, both go.
    rt.block_on(store.set_cursor("a", 1)).unwrap();
    let stats = rt.block_on(store.apply_retention(5000)).unwrap();
    assert_eq!((stats.records_deleted, stats.series_retired), (1, 1));
}

#[test]
fn a_backlog_over_budget_drops_the_oldest_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_targets(dir.path(), 10_000, &[("a", 100), ("b", 0)]);
    let m = labels(&[("__name__", "m")]);
    for i in 0..20 {
        let samples: Vec<(i64, f64)> = (0..10)
            .map(|k| (i * 100 + k, (i * k) as f64 + 0.5))
            .collect();
        store.write_blocking(batch(&[(&m, &samples)])).unwrap();
    }
    let stats = rt().block_on(store.apply_retention(-1)).unwrap();
    assert_eq!(stats.backlog_dropped.len(), 1);
    let (name, samples) = &stats.backlog_dropped[0];
    assert_eq!(name, "a");
    assert!(
        *samples > 0 && *samples % 10 == 0,
        "whole records: {samples}"
    );
    let cursor = store.cursor("a").unwrap();
    assert_eq!(cursor as u64 * 10, *samples);
    let reader = store.open_reader().unwrap();
    let left: i64 = reader
        .query_row(
            "SELECT SUM(length(data)) FROM log WHERE seq > ?1",
            [cursor],
            |r| r.get(0),
        )
        .unwrap();
    assert!(left <= 100, "{left} bytes left for a");
    assert_eq!(
        store.cursor("b"),
        Some(0),
        "an unbounded target keeps everything"
    );
}
