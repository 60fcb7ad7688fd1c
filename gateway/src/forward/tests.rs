//! The chunk builder over a real store: shard assignment, request size, order, relabeling.

use std::collections::BTreeMap;

use proto::{Message, v1};
use rules_engine::Labels;

use super::*;
use crate::config::StorageConfig;
use crate::store::{Entry, ForwardTarget, ReceivedBody, StoreMetrics, Target, WriteBatch};
use crate::validate::LimitsConfig;

fn store(dir: &std::path::Path) -> Arc<Store> {
    store_with(dir, false)
}

fn store_with(dir: &std::path::Path, as_received: bool) -> Arc<Store> {
    let cfg = StorageConfig {
        path: dir.to_path_buf(),
        ..StorageConfig::default()
    };
    let metrics = StoreMetrics::register(&mut Registry::default());
    let target = ForwardTarget {
        name: "t".into(),
        max_backlog_bytes: 0,
        as_received,
    };
    Arc::new(
        Store::open(
            &cfg,
            Arc::new(LimitsConfig::default()),
            metrics,
            1_000,
            &[target],
        )
        .unwrap(),
    )
}

/// `series` series × `per` samples at `t0, t0 + 1, ...`, one record.
fn write(store: &Store, series: usize, per: usize, t0: i64) {
    let mut b = WriteBatch::default();
    for i in 0..series {
        let l = Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]).unwrap();
        let start = b.samples.len() as u32;
        b.samples
            .extend((0..per).map(|k| Sample::new(t0 + k as i64, (i * 1000 + k) as f64)));
        b.entries.push(Entry {
            target: Target::New(l.clone(), crate::store::head::SeriesKey::of(&l)),
            samples: start..b.samples.len() as u32,
        });
    }
    store.write_blocking(b).unwrap();
}

fn builder(store: &Arc<Store>, yaml: &str) -> ChunkBuilder {
    let cfg: RemoteWriteConfig = serde_norway::from_str(yaml).unwrap();
    let f = Forwarder::new(
        cfg,
        &BTreeMap::new(),
        store.clone(),
        ForwardMetrics::register(&mut Registry::default()),
        StatusBoard::default(),
    )
    .unwrap();
    f.builder.lock().take().unwrap()
}

/// Per shard: per series key, its (timestamp, value) in the order sent.
#[allow(clippy::disallowed_methods)] // bodies built by the test, of bounded size
fn decode(chunk: &Chunk, per_send: usize) -> Vec<BTreeMap<String, Vec<(i64, f64)>>> {
    chunk
        .shards
        .iter()
        .map(|requests| {
            let mut m: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
            for r in requests {
                let raw = snap::raw::Decoder::new().decompress_vec(&r.body).unwrap();
                let req = v1::WriteRequest::decode(raw.as_slice()).unwrap();
                let n: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
                assert_eq!(n as u64, r.samples);
                assert!(n <= per_send);
                for ts in req.timeseries {
                    let key = format!(
                        "{:?}",
                        ts.labels
                            .iter()
                            .map(|l| (&l.name, &l.value))
                            .collect::<Vec<_>>()
                    );
                    m.entry(key)
                        .or_default()
                        .extend(ts.samples.iter().map(|s| (s.timestamp, s.value)));
                }
            }
            m
        })
        .collect()
}

#[test]
fn a_backlog_fans_out_to_max_shards_with_each_series_on_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    for r in 0..3 {
        write(&store, 20, 2, 10_000 + r * 100);
    }
    let mut b = builder(
        &store,
        "url: http://127.0.0.1:1/api/v1/write\nname: t\n\
         queue_config: {max_samples_per_send: 10, max_shards: 4}\n\
         write_relabel_configs:\n- {source_labels: [i], regex: '7', action: drop}\n",
    );
    let chunk = b.build(0).unwrap().unwrap();
    assert_eq!(chunk.last_seq, 3);
    // 120 samples at 10 per request would be 12 shards; max_shards caps them at 4.
    assert_eq!(chunk.shards.len(), 4);
    assert_eq!(chunk.relabel_dropped, 6);
    assert_eq!(chunk.missing, 0);
    let shards = decode(&chunk, 10);
    let mut seen = BTreeMap::new();
    for (i, shard) in shards.iter().enumerate() {
        assert!(!shard.is_empty(), "shard {i} is empty");
        for (key, samples) in shard {
            assert!(seen.insert(key.clone(), i).is_none(), "{key} on two shards");
            // All six samples of the series, in timestamp order.
            let ts: Vec<i64> = samples.iter().map(|s| s.0).collect();
            assert_eq!(
                ts,
                vec![10_000, 10_001, 10_100, 10_101, 10_200, 10_201],
                "{key}"
            );
        }
    }
    assert_eq!(seen.len(), 19);
    assert!(b.build(3).unwrap().is_none());
}

#[test]
fn a_trickle_uses_min_shards() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    write(&store, 2, 1, 10_000);
    let mut b = builder(
        &store,
        "url: http://127.0.0.1:1/api/v1/write\nname: t\nqueue_config: {max_samples_per_send: 10, max_shards: 4}\n",
    );
    let chunk = b.build(0).unwrap().unwrap();
    assert_eq!(chunk.shards.len(), 1);
    let mut b = builder(
        &store,
        "url: http://127.0.0.1:1/api/v1/write\nname: t\nqueue_config: {max_samples_per_send: 10, max_shards: 4, min_shards: 3}\n",
    );
    assert_eq!(b.build(0).unwrap().unwrap().shards.len(), 3);
}

#[test]
fn chunks_stop_at_the_sample_bound_on_a_record_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    for r in 0..5 {
        write(&store, 10, 1, 10_000 + r);
    }
    // capacity 10 × 2 shards: a chunk holds at least 20 samples, ending on a record.
    let mut b = builder(
        &store,
        "url: http://127.0.0.1:1/api/v1/write\nname: t\nqueue_config: {capacity: 10, max_samples_per_send: 10, max_shards: 2}\n",
    );
    let first = b.build(0).unwrap().unwrap();
    assert_eq!(first.last_seq, 2);
    let second = b.build(first.last_seq).unwrap().unwrap();
    assert_eq!(second.last_seq, 4);
    let third = b.build(second.last_seq).unwrap().unwrap();
    assert_eq!(third.last_seq, 5);
}

/// A remote-write 1.0 body of `series` series × one sample at `t`, and its batch carrying it.
fn received(series: usize, t: i64, value: f64) -> (Bytes, WriteBatch) {
    let mut req = v1::WriteRequest::default();
    let mut b = WriteBatch::default();
    for i in 0..series {
        let l = Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]).unwrap();
        req.timeseries.push(v1::TimeSeries {
            labels: l
                .iter()
                .map(|l| v1::Label {
                    name: l.name.to_string(),
                    value: l.value.to_string(),
                })
                .collect(),
            samples: vec![v1::Sample {
                value,
                timestamp: t,
            }],
            ..Default::default()
        });
        let start = b.samples.len() as u32;
        b.samples.push(Sample::new(t, value));
        b.entries.push(Entry {
            target: Target::New(l.clone(), crate::store::head::SeriesKey::of(&l)),
            samples: start..b.samples.len() as u32,
        });
    }
    let body = Bytes::from(
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap(),
    );
    b.body = Some(ReceivedBody {
        data: body.clone(),
        samples: series as u32,
        newest: t,
    });
    (body, b)
}

const PLAIN: &str = "url: http://127.0.0.1:1/api/v1/write\nname: t\nqueue_config: {max_samples_per_send: 10, max_shards: 4}\n";

/// Every (series, samples) a chunk sends, merged across its shards.
fn contents(chunks: &[&Chunk]) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut all: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for c in chunks {
        for shard in decode(c, 10) {
            for (k, v) in shard {
                all.entry(k).or_default().extend(v);
            }
        }
    }
    all
}

#[test]
fn bodies_go_as_received_and_other_records_are_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), true);
    let (a, batch) = received(3, 10_000, 1.0);
    store.write_blocking(batch).unwrap();
    write(&store, 2, 1, 10_001); // no body: a rule's output, say
    let (c, batch) = received(3, 10_002, 2.0);
    store.write_blocking(batch).unwrap();
    // Stored only in part (the samples at 10_002 are there already): its body is not kept.
    let (_, batch) = received(4, 10_002, 2.0);
    store.write_blocking(batch).unwrap();

    let mut b = builder(&store, PLAIN);
    let first = b.build(0).unwrap().unwrap();
    assert!(first.bodies > 0);
    assert_eq!(
        first.last_seq, 1,
        "a chunk does not mix bodies and encoded records"
    );
    assert_eq!(first.shards.len(), 1);
    assert_eq!(first.shards[0][0].body, a);
    assert_eq!(first.shards[0][0].samples, 3);
    assert_eq!(first.shards[0][0].newest, 10_000);
    let second = b.build(1).unwrap().unwrap();
    assert_eq!(second.bodies, 0);
    assert_eq!(second.last_seq, 2);
    let third = b.build(2).unwrap().unwrap();
    assert!(third.bodies > 0);
    assert_eq!(third.last_seq, 3);
    assert_eq!(third.shards[0][0].body, c);
    let fourth = b.build(3).unwrap().unwrap();
    assert_eq!(fourth.bodies, 0);
    assert_eq!(fourth.last_seq, 4);
    // Only the sample not stored before is in it.
    assert_eq!(contents(&[&fourth]).len(), 1);
    assert!(b.build(4).unwrap().is_none());
    let sent = contents(&[&first, &second, &third, &fourth]);

    // Relabel rules that leave every series of a body as it is: the body goes as received.
    let rules = |rule: &str| format!("{PLAIN}write_relabel_configs:\n- {rule}\n");
    let mut r = builder(
        &store,
        &rules("{source_labels: [i], regex: x, action: drop}"),
    );
    let chunk = r.build(0).unwrap().unwrap();
    assert!(chunk.bodies > 0);
    assert_eq!(chunk.shards[0][0].body, a);
    // Rules that drop or change a series of a body: re-encoded, as the rules say.
    for rule in [
        "{source_labels: [i], regex: '1', action: drop}",
        "{source_labels: [i], regex: '1', target_label: changed, replacement: yes}",
    ] {
        let mut r = builder(&store, &rules(rule));
        let chunk = r.build(0).unwrap().unwrap();
        assert_eq!(chunk.bodies, 0, "{rule}");
        assert_eq!(chunk.last_seq, 4, "{rule}");
        let got = contents(&[&chunk]);
        let mut want = sent.clone();
        let one = want.remove(r#"[("__name__", "m"), ("i", "1")]"#).unwrap();
        if rule.contains("changed") {
            let key = r#"[("__name__", "m"), ("changed", "yes"), ("i", "1")]"#;
            want.insert(key.into(), one);
        }
        assert_eq!(got, want, "{rule}");
    }

    // Bodies live in memory only: after a restart everything is re-encoded from the log.
    drop((b, r, store));
    let store = store_with(dir.path(), true);
    let mut b = builder(&store, PLAIN);
    let chunk = b.build(0).unwrap().unwrap();
    assert_eq!(chunk.bodies, 0);
    assert_eq!(chunk.last_seq, 4);
    assert_eq!(contents(&[&chunk]), sent);
}

#[test]
#[allow(clippy::disallowed_methods)] // bodies built by the test, of bounded size
fn bodies_past_the_memory_tail_are_sent_from_disk_as_received() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), true);
    // 40 bodies of 200 series: several times the tail's 64 KiB in unit tests.
    let bodies: Vec<Bytes> = (0..40)
        .map(|k| {
            let (body, batch) = received(200, 10_000 + k, k as f64);
            store.write_blocking(batch).unwrap();
            body
        })
        .collect();
    let mut tail = Vec::new();
    assert!(
        !store.recent_after(0, 100, &mut tail),
        "the first records left memory"
    );
    assert!(!store.spilled_bodies(1, usize::MAX).is_empty());
    let yaml = "url: http://127.0.0.1:1/api/v1/write\nname: t\nqueue_config: {max_samples_per_send: 1000, max_shards: 4}\n";
    let mut b = builder(&store, yaml);
    let (mut sent, mut requests, mut after) = (Vec::new(), 0, 0);
    while let Some(chunk) = b.build(after).unwrap() {
        assert!(chunk.bodies > 0, "records {after}.. were re-encoded");
        // Every body holds the same series: one lane, in order.
        assert_eq!(chunk.shards.len(), 1);
        requests += chunk.shards[0].len();
        sent.extend(chunk.shards[0].iter().map(|r| r.body.clone()));
        after = chunk.last_seq;
    }
    assert_eq!(after, 40);
    // Bodies of 200 samples go up to five to a request of 1000 (a chunk's end may cut a
    // run short), decoding to the same series in the same order.
    assert!((8..=10).contains(&requests), "{requests} requests");
    let series = |bodies: &[Bytes]| -> Vec<v1::TimeSeries> {
        bodies
            .iter()
            .flat_map(|b| {
                let raw = snap::raw::Decoder::new().decompress_vec(b).unwrap();
                v1::WriteRequest::decode(raw.as_slice()).unwrap().timeseries
            })
            .collect()
    };
    assert!(
        series(&sent) == series(&bodies),
        "what was sent decodes otherwise"
    );

    // Sent and acknowledged: the files go.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(store.set_cursor("t", 40)).unwrap();
    assert!(store.spilled_bodies(1, usize::MAX).is_empty());
    assert_eq!(
        std::fs::read_dir(dir.path().join("bodies"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn record_numbers_keep_growing_after_retention_emptied_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    write(&store, 2, 1, 10_000);
    write(&store, 2, 1, 10_001);
    assert_eq!(*store.committed().borrow(), 2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(store.set_cursor("t", 2)).unwrap();
    // Everything is older than the cutoff and sent: the log is emptied.
    let stats = rt.block_on(store.apply_retention(1_000_000)).unwrap();
    assert_eq!(stats.records_deleted, 2);
    write(&store, 2, 1, 2_000_000);
    assert_eq!(
        *store.committed().borrow(),
        3,
        "a record number is never reused"
    );
    drop(store);
    let store = self::store(dir.path());
    assert_eq!(*store.committed().borrow(), 3);
    rt.block_on(store.set_cursor("t", 3)).unwrap();
    rt.block_on(store.apply_retention(3_000_000)).unwrap();
    drop(store);
    let store = self::store(dir.path());
    assert_eq!(*store.committed().borrow(), 3);
    write(&store, 2, 1, 4_000_000);
    assert_eq!(*store.committed().borrow(), 4);
}
