//! Lanes for request bodies sent as received: bodies that share a series go on one lane, in
//! order, so each series' samples still leave in order and on one connection at a time; the
//! lanes are sent concurrently.
//!
//! A body is placed on the lane of the series it shares with earlier bodies. When it shares
//! series with several lanes, those lanes are joined (one after the other: bodies on
//! different lanes share no series, so their relative order does not matter) and it goes on
//! the joined lane. A body sharing nothing opens a new lane while there are fewer than
//! `max` lanes, else joins the lightest.

use hashbrown::HashMap;

/// The lanes of one chunk; `T` is what is sent (a request).
pub struct Lanes<T> {
    max: usize,
    /// The lane each series was placed on (a lane index, resolved through `joined`).
    lane_of: HashMap<u64, usize>,
    /// Union-find parents: a joined lane points to the lane it was appended to.
    joined: Vec<usize>,
    items: Vec<Vec<T>>,
    /// Samples per lane, to pick the lightest.
    weight: Vec<u64>,
    open: usize,
}

impl<T> Lanes<T> {
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            lane_of: HashMap::new(),
            joined: Vec::new(),
            items: Vec::new(),
            weight: Vec::new(),
            open: 0,
        }
    }

    fn root(&mut self, mut lane: usize) -> usize {
        while self.joined[lane] != lane {
            let up = self.joined[self.joined[lane]];
            self.joined[lane] = up;
            lane = up;
        }
        lane
    }

    /// Places `item`, holding `samples` samples of the series `ids`.
    pub fn place(&mut self, ids: &[u64], samples: u64, item: T) {
        let mut lane: Option<usize> = None;
        for id in ids {
            let Some(&l) = self.lane_of.get(id) else {
                continue;
            };
            let l = self.root(l);
            match lane {
                None => lane = Some(l),
                Some(a) if a != l => {
                    // Join `l` after `a`.
                    let moved = std::mem::take(&mut self.items[l]);
                    self.items[a].extend(moved);
                    self.weight[a] += std::mem::take(&mut self.weight[l]);
                    self.joined[l] = a;
                    self.open -= 1;
                }
                Some(_) => {}
            }
        }
        let lane = match lane {
            Some(l) => l,
            None if self.open < self.max => {
                self.joined.push(self.items.len());
                self.items.push(Vec::new());
                self.weight.push(0);
                self.open += 1;
                self.items.len() - 1
            }
            None => (0..self.items.len())
                .filter(|&l| self.joined[l] == l)
                .min_by_key(|&l| self.weight[l])
                .unwrap_or(0),
        };
        for id in ids {
            self.lane_of.insert(*id, lane);
        }
        self.items[lane].push(item);
        self.weight[lane] += samples;
    }

    /// The lanes, each in placement order; starts over (keeping the series map's memory, so
    /// a forwarder reusing it does not grow a map per chunk).
    pub fn take(&mut self) -> Vec<Vec<T>> {
        self.lane_of.clear();
        self.joined.clear();
        self.weight.clear();
        self.open = 0;
        std::mem::take(&mut self.items)
            .into_iter()
            .filter(|l| !l.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_bodies_spread_and_repeats_follow_their_series() {
        let mut l = Lanes::new(3);
        l.place(&[1, 2], 2, "a1");
        l.place(&[3, 4], 2, "b1");
        l.place(&[5], 1, "c1");
        l.place(&[1, 2], 2, "a2");
        l.place(&[5], 1, "c2");
        l.place(&[3, 4], 2, "b2");
        assert_eq!(
            l.take(),
            vec![vec!["a1", "a2"], vec!["b1", "b2"], vec!["c1", "c2"]]
        );
        // The next chunk starts over.
        l.place(&[5], 1, "c3");
        l.place(&[1], 1, "a3");
        assert_eq!(l.take(), vec![vec!["c3"], vec!["a3"]]);
    }

    #[test]
    fn a_body_across_lanes_joins_them_in_order() {
        let mut l = Lanes::new(4);
        l.place(&[1], 1, "x");
        l.place(&[2], 1, "y");
        l.place(&[9], 1, "z");
        l.place(&[2, 1], 2, "xy");
        // Both series of "y" and "x" stay before "xy"; later bodies of series 1 or 2 follow.
        l.place(&[1], 1, "x2");
        assert_eq!(l.take(), vec![vec!["y", "x", "xy", "x2"], vec!["z"]]);
    }

    #[test]
    fn past_the_maximum_new_series_go_to_the_lightest_lane() {
        let mut l = Lanes::new(2);
        l.place(&[1], 10, "heavy");
        l.place(&[2], 1, "light");
        l.place(&[3], 1, "new");
        assert_eq!(l.take(), vec![vec!["heavy"], vec!["light", "new"]]);
    }

    #[test]
    fn per_series_order_holds_for_any_placement() {
        // Pseudo-random bodies over 30 series: within every lane, and only there, each
        // series' bodies appear in placement order, and no series is on two lanes.
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        let mut l = Lanes::new(5);
        let mut placed = Vec::new();
        for n in 0..200usize {
            let ids: Vec<u64> = (0..1 + next() % 4).map(|_| next() % 30).collect();
            l.place(&ids, ids.len() as u64, n);
            placed.push(ids);
        }
        let lanes = l.take();
        let mut lane_of_series = std::collections::HashMap::new();
        for (i, lane) in lanes.iter().enumerate() {
            let mut last_seen = std::collections::HashMap::new();
            for &n in lane {
                for id in &placed[n] {
                    assert_eq!(*lane_of_series.entry(*id).or_insert(i), i, "series {id}");
                    if let Some(prev) = last_seen.insert(*id, n) {
                        assert!(prev <= n, "series {id}: body {n} after {prev}");
                    }
                }
            }
        }
        assert_eq!(lanes.iter().map(Vec::len).sum::<usize>(), 200);
    }
}
