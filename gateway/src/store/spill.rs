//! Request bodies of records that left the in-memory tail ([`super::recent`]) before every
//! forwarder had sent them, kept in files under `<data>/bodies/`: a forwarder draining a
//! backlog longer than the tail (a receiver down for minutes) still sends them as received
//! instead of re-encoding each record from the log.
//!
//! Not durable, on purpose: nothing is fsynced and the directory is emptied at start. The
//! record in SQLite stays the one durable copy; a body missing here (after a restart, past
//! the byte budget, after a failed write or read) only means its record is re-encoded.
//!
//! Bodies go into segment files of up to [`SEGMENT_BYTES`] in record order; a segment is
//! deleted once every forwarder is past its last record. A record's frame is the number of
//! its bodies (u32), then each body as `samples u32, newest i64, ids u32, ids × u64, len u32,
//! len bytes`, little-endian.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Buf, Bytes};

use super::ReceivedBody;
use super::recent::{KeptBody, RecentRecord};

/// A segment file is closed past this size.
const SEGMENT_BYTES: u64 = 64 << 20;

/// Where the bodies of consecutive records are: one run of adjacent frames in one file, so
/// a forwarder reads many records with one read into one buffer.
#[derive(Debug, Clone)]
pub struct Run {
    file: Arc<File>,
    offset: u64,
    /// Each record's seq and frame length, in file order.
    frames: Vec<(i64, usize)>,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    file: Arc<File>,
    len: u64,
    /// A write failed: the file may end in part of a frame, so nothing more goes into it.
    broken: bool,
}

/// Where one spilled record's frame is.
#[derive(Debug, Clone, Copy)]
struct Frame {
    seq: i64,
    /// The number of its segment.
    segment: u64,
    offset: u64,
    len: usize,
}

#[derive(Debug)]
pub struct Spill {
    dir: PathBuf,
    budget: u64,
    /// Bytes in all segments.
    bytes: u64,
    /// Segments with consecutive numbers, the last one numbered `next_number - 1`.
    segments: VecDeque<Segment>,
    /// Per spilled record, in seq order.
    index: VecDeque<Frame>,
    /// The next segment file's number (its name).
    next_number: u64,
    frame: Vec<u8>,
}

impl Spill {
    /// Empties (or creates) `dir`; `budget` bytes at most on disk, 0 to keep nothing.
    pub fn open(dir: &Path, budget: u64) -> std::io::Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        if budget > 0 {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            budget,
            bytes: 0,
            segments: VecDeque::new(),
            index: VecDeque::new(),
            next_number: 0,
            frame: Vec::new(),
        })
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The number of `segments[0]`.
    fn front_number(&self) -> u64 {
        self.next_number - self.segments.len() as u64
    }

    /// Writes the bodies of `records` (ascending seqs, each after those already here); those
    /// past the budget are not kept. A failed write is logged and loses only what it held.
    pub fn append(&mut self, records: &[RecentRecord]) {
        for r in records {
            let Some(bodies) = &r.bodies else { continue };
            if self.index.back().is_some_and(|f| f.seq >= r.seq) {
                continue;
            }
            encode_frame(bodies, &mut self.frame);
            let len = self.frame.len() as u64;
            if self.bytes.saturating_add(len) > self.budget {
                continue;
            }
            if let Err(e) = self.write_frame(r.seq) {
                tracing::warn!(
                    error = %e,
                    dir = %self.dir.display(),
                    "Could not keep request bodies on disk; their records will be re-encoded."
                );
            }
        }
    }

    fn write_frame(&mut self, seq: i64) -> std::io::Result<()> {
        let len = self.frame.len() as u64;
        if self
            .segments
            .back()
            .is_none_or(|s| s.broken || s.len + len > SEGMENT_BYTES)
        {
            let path = self.dir.join(format!("{:016}.bodies", self.next_number));
            let file = File::options()
                .create_new(true)
                .append(true)
                .read(true)
                .open(&path)?;
            self.next_number += 1;
            self.segments.push_back(Segment {
                path,
                file: Arc::new(file),
                len: 0,
                broken: false,
            });
        }
        let segment_number = self.next_number - 1;
        let Some(segment) = self.segments.back_mut() else {
            return Ok(());
        };
        let offset = segment.len;
        if let Err(e) = (&*segment.file).write_all(&self.frame) {
            segment.broken = true;
            return Err(e);
        }
        segment.len += len;
        self.bytes += len;
        self.index.push_back(Frame {
            seq,
            segment: segment_number,
            offset,
            len: self.frame.len(),
        });
        Ok(())
    }

    /// Where the bodies of record `seq` are, if here, with those of the records after it
    /// that follow in the same file, up to about `max_bytes` in all.
    pub fn locate_run(&self, seq: i64, max_bytes: usize) -> Option<Run> {
        let i = self.index.binary_search_by_key(&seq, |f| f.seq).ok()?;
        let first = self.index[i];
        let segment = self
            .segments
            .get(usize::try_from(first.segment - self.front_number()).ok()?)?;
        let mut run = Run {
            file: segment.file.clone(),
            offset: first.offset,
            frames: vec![(seq, first.len)],
        };
        let (mut end, mut bytes) = (first.offset + first.len as u64, first.len);
        for f in self.index.range(i + 1..) {
            if f.segment != first.segment || f.offset != end || bytes + f.len > max_bytes {
                break;
            }
            run.frames.push((f.seq, f.len));
            end += f.len as u64;
            bytes += f.len;
        }
        Some(run)
    }

    /// Forgets the records up to `seq` and deletes the segments holding only those.
    pub fn release_through(&mut self, seq: i64) {
        while self.index.front().is_some_and(|f| f.seq <= seq) {
            self.index.pop_front();
        }
        // A segment is done when no indexed record remains in it (the one being written too,
        // once nothing is left at all).
        let first_needed = self.index.front().map_or(self.next_number, |f| f.segment);
        while self.front_number() < first_needed {
            let Some(front) = self.segments.pop_front() else {
                break;
            };
            if let Err(e) = std::fs::remove_file(&front.path) {
                tracing::warn!(error = %e, path = %front.path.display(), "Could not delete a spilled bodies file.");
            }
            self.bytes -= front.len;
        }
    }
}

/// Reads the bodies of a run's records (outside the spill's lock: files are only appended
/// to), in one read; a record whose frame does not decode is left out (and re-encoded).
pub fn read_run(run: &Run) -> Vec<(i64, Arc<[KeptBody]>)> {
    let total = run.frames.iter().map(|f| f.1).sum();
    let mut buf = vec![0; total];
    if let Err(e) = run.file.read_exact_at(&mut buf, run.offset) {
        tracing::warn!(error = %e, "Could not read spilled request bodies; re-encoding their records.");
        return Vec::new();
    }
    let mut buf = Bytes::from(buf);
    let mut out = Vec::with_capacity(run.frames.len());
    for &(seq, len) in &run.frames {
        match decode_frame(buf.split_to(len)) {
            Some(bodies) => out.push((seq, bodies)),
            None => tracing::warn!(
                seq,
                "A spilled request body frame does not decode; re-encoding its record."
            ),
        }
    }
    out
}

fn encode_frame(bodies: &[KeptBody], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&(bodies.len() as u32).to_le_bytes());
    for k in bodies {
        out.extend_from_slice(&k.body.samples.to_le_bytes());
        out.extend_from_slice(&k.body.newest.to_le_bytes());
        out.extend_from_slice(&(k.ids.len() as u32).to_le_bytes());
        for id in &k.ids {
            out.extend_from_slice(&id.to_le_bytes());
        }
        out.extend_from_slice(&(k.body.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&k.body.data);
    }
}

fn decode_frame(mut buf: Bytes) -> Option<Arc<[KeptBody]>> {
    let count = buf.try_get_u32_le().ok()?;
    let mut out = Vec::new();
    for _ in 0..count {
        let samples = buf.try_get_u32_le().ok()?;
        let newest = buf.try_get_i64_le().ok()?;
        let n = buf.try_get_u32_le().ok()? as usize;
        if buf.remaining() < n.checked_mul(8)? {
            return None;
        }
        let ids = (0..n).map(|_| buf.get_u64_le()).collect();
        let len = buf.try_get_u32_le().ok()? as usize;
        if buf.remaining() < len {
            return None;
        }
        let data = buf.split_to(len);
        out.push(KeptBody {
            body: ReceivedBody {
                data,
                samples,
                newest,
            },
            ids,
        });
    }
    (!buf.has_remaining()).then(|| out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: i64, payload: &[u8]) -> RecentRecord {
        RecentRecord {
            seq,
            data: Bytes::new(),
            bodies: Some(
                vec![
                    KeptBody {
                        body: ReceivedBody {
                            data: Bytes::copy_from_slice(payload),
                            samples: 3,
                            newest: seq * 1000,
                        },
                        ids: vec![seq as u64, 7].into(),
                    },
                    KeptBody {
                        body: ReceivedBody {
                            data: Bytes::from_static(b"second"),
                            samples: 1,
                            newest: -5,
                        },
                        ids: vec![].into(),
                    },
                ]
                .into(),
            ),
        }
    }

    /// A body as plain values: data, samples, newest, ids.
    type Plain = (Vec<u8>, u32, i64, Vec<u64>);

    fn get(s: &Spill, seq: i64) -> Option<Vec<Plain>> {
        let run = read_run(&s.locate_run(seq, usize::MAX)?);
        let bodies = &run.first().filter(|r| r.0 == seq)?.1;
        Some(
            bodies
                .iter()
                .map(|k| {
                    (
                        k.body.data.to_vec(),
                        k.body.samples,
                        k.body.newest,
                        k.ids.to_vec(),
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn bodies_come_back_as_written_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spill::open(&dir.path().join("bodies"), 1 << 20).unwrap();
        s.append(&[record(1, b"one"), record(2, b"two"), record(4, b"four")]);
        assert_eq!(
            get(&s, 2),
            Some(vec![
                (b"two".to_vec(), 3, 2000, vec![2, 7]),
                (b"second".to_vec(), 1, -5, vec![]),
            ])
        );
        assert!(get(&s, 3).is_none());
        assert_eq!(get(&s, 4).unwrap()[0].0, b"four");
        // Appending an older record again changes nothing.
        s.append(&[record(2, b"again")]);
        assert_eq!(get(&s, 2).unwrap()[0].0, b"two");
        s.release_through(2);
        assert!(get(&s, 1).is_none() && get(&s, 2).is_none());
        assert_eq!(get(&s, 4).unwrap()[0].0, b"four");
        s.release_through(4);
        assert_eq!(s.bytes(), 0);
        assert_eq!(
            std::fs::read_dir(dir.path().join("bodies"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn consecutive_records_are_read_in_one_run_up_to_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spill::open(&dir.path().join("bodies"), 1 << 20).unwrap();
        s.append(&[record(1, b"one"), record(2, b"two"), record(3, b"three")]);
        let run = s.locate_run(1, usize::MAX).unwrap();
        let got: Vec<(i64, Vec<u8>)> = read_run(&run)
            .into_iter()
            .map(|(seq, b)| (seq, b[0].body.data.to_vec()))
            .collect();
        assert_eq!(
            got,
            [(1, &b"one"[..]), (2, b"two"), (3, b"three")].map(|(q, d)| (q, d.to_vec()))
        );
        // A run holds at least its first record, then only what fits.
        let one = s.locate_run(2, 1).unwrap();
        assert_eq!(one.frames.len(), 1);
        assert_eq!(read_run(&one)[0].0, 2);
        assert!(s.locate_run(4, usize::MAX).is_none());
    }

    #[test]
    fn the_budget_bounds_the_disk_and_reopening_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bodies");
        let payload = vec![b'x'; 400];
        let mut s = Spill::open(&path, 1000).unwrap();
        s.append(&[
            record(1, &payload),
            record(2, &payload),
            record(3, &payload),
        ]);
        assert!(get(&s, 1).is_some() && get(&s, 2).is_some());
        // The third would pass 1000 bytes: not kept (its record is re-encoded).
        assert!(get(&s, 3).is_none());
        assert!(s.bytes() <= 1000);
        drop(s);
        let s = Spill::open(&path, 1000).unwrap();
        assert!(get(&s, 1).is_none());
        assert_eq!(std::fs::read_dir(&path).unwrap().count(), 0);
    }

    #[test]
    fn a_damaged_frame_is_refused_not_misread() {
        let bodies = record(1, b"payload").bodies.unwrap();
        let mut frame = Vec::new();
        encode_frame(&bodies, &mut frame);
        for cut in 0..frame.len() {
            let got = decode_frame(Bytes::copy_from_slice(&frame[..cut]));
            assert!(got.is_none(), "cut at {cut}");
        }
        assert_eq!(decode_frame(Bytes::from(frame)).unwrap().len(), 2);
    }
}
