//! The pushed groups and the rules of changing them, as Pushgateway 1.5's `DiskMetricStore`
//! applies them: PUT replaces the group, POST replaces the families it names, a push whose
//! result could not be exposed consistently (a timestamp, an invalid or reserved name, a type
//! that differs from the same family elsewhere, a series exposed twice, a summary's or
//! histogram's suffix colliding with another family) is refused and only sets the group's
//! `push_failure_time_seconds`. Plus promgate's aggregation of counters across pushes.
//!
//! Every change is planned on a copy (`plan_*`), committed to the store with the group's new
//! state, and only then answered; the registry holds the planned state from the moment the
//! write is queued, so concurrent pushes into an aggregating group build on each other.

use std::collections::{BTreeMap, BTreeSet};

use hashbrown::{HashMap, HashSet};

use super::config::Behaviour;
use super::family::{Family, Kind, Metric, Value};
use super::grouping::GroupingKey;

pub const PUSH_TIME: &str = "push_time_seconds";
pub const PUSH_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway succeeded.";
pub const PUSH_FAILURE_TIME: &str = "push_failure_time_seconds";
pub const PUSH_FAILURE_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway failed.";

/// A family as stored in a group, with the time it was last pushed (ns since the epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub family: Family,
    pub at_ns: i64,
}

/// One group: its grouping labels and families.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub key: GroupingKey,
    pub families: BTreeMap<String, Stored>,
    /// Last successful change (ns; 0: never), and when that value was set.
    pub push_ns: i64,
    pub push_set_ns: i64,
    /// Last failed change (ns; 0: never), and when that value was set.
    pub failure_ns: i64,
    pub failure_set_ns: i64,
    /// Newest sample timestamp written for this group (ms), so the next write is later.
    pub last_write_ms: i64,
    /// TTL and aggregation set by pushes' headers, over the configured rules.
    pub overrides: super::config::Overrides,
}

impl Group {
    pub fn new(key: GroupingKey, now_ns: i64) -> Self {
        Self {
            key,
            families: BTreeMap::new(),
            push_ns: 0,
            push_set_ns: now_ns,
            failure_ns: 0,
            failure_set_ns: now_ns,
            last_write_ms: 0,
            overrides: Default::default(),
        }
    }

    pub fn last_push_successful(&self) -> bool {
        self.push_ns >= self.failure_ns
    }

    /// The labels of the group's own `push_*` metrics: grouping labels plus `instance=""`.
    pub fn own_labels(&self) -> Vec<(String, String)> {
        let mut l = self.key.clone();
        if !l.iter().any(|(n, _)| n == "instance") {
            l.push(("instance".into(), String::new()));
            l.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        l
    }
}

/// Why a push was refused after parsing (400; sets `push_failure_time_seconds`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pushed metrics are invalid or inconsistent with existing metrics: {0}")]
pub struct Inconsistent(pub String);

/// Every group, and an index of which groups hold each family name.
#[derive(Default)]
pub struct Groups {
    groups: BTreeMap<GroupingKey, Group>,
    by_family: HashMap<String, BTreeSet<GroupingKey>>,
}

impl Groups {
    pub fn get(&self, key: &GroupingKey) -> Option<&Group> {
        self.groups.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Removes a group and returns it (planning a change works on it out of the set).
    pub fn take(&mut self, key: &GroupingKey) -> Option<Group> {
        let old = self.groups.remove(key)?;
        for name in old.families.keys() {
            if let Some(s) = self.by_family.get_mut(name) {
                s.remove(key);
                if s.is_empty() {
                    self.by_family.remove(name);
                }
            }
        }
        Some(old)
    }

    /// Installs (or with `None` removes) a group's state.
    pub fn set(&mut self, key: &GroupingKey, group: Option<Group>) {
        self.take(key);
        if let Some(g) = group {
            for name in g.families.keys() {
                self.by_family
                    .entry(name.clone())
                    .or_default()
                    .insert(key.clone());
            }
            self.groups.insert(key.clone(), g);
        }
    }

    /// The group `old` after a failed push: only its failure time moves (created when new).
    pub fn plan_failure(old: Option<&Group>, key: &GroupingKey, now_ns: i64) -> Group {
        let mut g = old
            .cloned()
            .unwrap_or_else(|| Group::new(key.clone(), now_ns));
        g.failure_ns = now_ns;
        g.failure_set_ns = now_ns;
        g
    }

    /// The group `old` (taken out of the set, see [`Groups::take`]) after a PUT (`replace`)
    /// or POST of `families`, or why it is refused.
    pub fn plan_push(
        &self,
        old: Option<&Group>,
        key: &GroupingKey,
        mut families: Vec<Family>,
        replace: bool,
        behaviour: Behaviour,
        now_ns: i64,
    ) -> Result<Group, Inconsistent> {
        if families
            .iter()
            .any(|f| f.metrics.iter().any(|m| m.timestamp_ms.is_some()))
        {
            return Err(Inconsistent(
                "pushed metrics must not have timestamps".into(),
            ));
        }
        for f in &mut families {
            check_family(f)?;
            sanitize(f, key);
            check_duplicates(f)?;
        }
        let mut g = match old {
            // PUT without aggregation keeps nothing of the families: no need to copy them.
            Some(o) if replace && !behaviour.aggregate => Group {
                families: BTreeMap::new(),
                key: o.key.clone(),
                ..*o
            },
            Some(o) => o.clone(),
            None => Group::new(key.clone(), now_ns),
        };
        if behaviour.aggregate {
            for f in families {
                let name = f.name.clone();
                match g.families.get_mut(&name) {
                    Some(s) if s.family.kind == f.kind => {
                        aggregate(&mut s.family, f);
                        s.at_ns = now_ns;
                    }
                    Some(s) => {
                        return Err(Inconsistent(format!(
                            "metric family {name:?} is a {} in this aggregating group, pushed as a {}",
                            s.family.kind.proto_name(),
                            f.kind.proto_name()
                        )));
                    }
                    None => {
                        g.families.insert(
                            name,
                            Stored {
                                family: f,
                                at_ns: now_ns,
                            },
                        );
                    }
                }
            }
        } else {
            if replace {
                g.families.clear();
            }
            for f in families {
                g.families.insert(
                    f.name.clone(),
                    Stored {
                        family: f,
                        at_ns: now_ns,
                    },
                );
            }
        }
        g.push_ns = now_ns;
        g.push_set_ns = now_ns;
        self.check_against_others(&g)?;
        Ok(g)
    }

    /// Checks a group's planned families against every other group's: same type per family
    /// name, no series exposed twice, no summary/histogram suffix collisions.
    fn check_against_others(&self, g: &Group) -> Result<(), Inconsistent> {
        for (name, s) in &g.families {
            if name == PUSH_TIME || name == PUSH_FAILURE_TIME {
                return Err(Inconsistent(format!(
                    "metric family {name:?} is reserved for the push time of each group"
                )));
            }
            if name.starts_with("promgate_") {
                return Err(Inconsistent(format!(
                    "metric family {name:?} collides with promgate's own metrics (prefix promgate_)"
                )));
            }
            let kind = s.family.kind;
            for other_key in self.by_family.get(name).into_iter().flatten() {
                if *other_key == g.key {
                    continue;
                }
                let Some(other) = self
                    .groups
                    .get(other_key)
                    .and_then(|o| o.families.get(name))
                else {
                    continue;
                };
                if other.family.kind != kind {
                    let m = &s.family.metrics[0];
                    return Err(Inconsistent(format!(
                        "collected metric {name:?} {{{}}} is not a {}",
                        describe_labels(&m.labels),
                        other.family.kind.proto_name()
                    )));
                }
                if keys_compatible(&g.key, other_key) {
                    let theirs: HashSet<&[(String, String)]> = other
                        .family
                        .metrics
                        .iter()
                        .map(|m| m.labels.as_slice())
                        .collect();
                    if let Some(m) = s
                        .family
                        .metrics
                        .iter()
                        .find(|m| theirs.contains(m.labels.as_slice()))
                    {
                        return Err(Inconsistent(format!(
                            "collected metric {name:?} {{{}}} was collected before with the same name and label values",
                            describe_labels(&m.labels)
                        )));
                    }
                }
            }
            self.check_suffixes(g, name, kind)?;
        }
        Ok(())
    }

    /// client_golang's `checkSuffixCollisions` over the exposition the change would produce.
    fn check_suffixes(&self, g: &Group, name: &str, kind: Kind) -> Result<(), Inconsistent> {
        let kind_of = |n: &str| -> Option<Kind> {
            if let Some(s) = g.families.get(n) {
                return Some(s.family.kind);
            }
            let keys = self.by_family.get(n)?;
            keys.iter()
                .filter(|k| **k != g.key)
                .find_map(|k| self.groups.get(k)?.families.get(n).map(|s| s.family.kind))
        };
        for (suffix, hist_only) in [("_count", false), ("_sum", false), ("_bucket", true)] {
            if let Some(base) = name.strip_suffix(suffix) {
                match kind_of(base) {
                    Some(Kind::Summary) if !hist_only => {
                        return Err(Inconsistent(format!(
                            "collected metric named {name:?} collides with previously collected summary named {base:?}"
                        )));
                    }
                    Some(Kind::Histogram) => {
                        return Err(Inconsistent(format!(
                            "collected metric named {name:?} collides with previously collected histogram named {base:?}"
                        )));
                    }
                    _ => {}
                }
            }
        }
        if matches!(kind, Kind::Summary | Kind::Histogram) {
            let mut suffixes = vec!["_count", "_sum"];
            if kind == Kind::Histogram {
                suffixes.push("_bucket");
            }
            for suffix in suffixes {
                let other = format!("{name}{suffix}");
                if kind_of(&other).is_some() {
                    let what = if kind == Kind::Summary {
                        "summary"
                    } else {
                        "histogram"
                    };
                    return Err(Inconsistent(format!(
                        "collected metric named {other:?} collides with previously collected {what} named {name:?}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Two groups can expose the same series only if they agree on every grouping label both
/// have (values are forced onto every metric) and differ in which labels they have.
fn keys_compatible(a: &GroupingKey, b: &GroupingKey) -> bool {
    if a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0 == y.0) {
        return false;
    }
    a.iter()
        .all(|(n, v)| b.iter().find(|(m, _)| m == n).is_none_or(|(_, w)| w == v))
}

pub fn describe_labels(labels: &[(String, String)]) -> String {
    labels
        .iter()
        .map(|(n, v)| format!("{n}={v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Names and label names valid, labels not reserved, no `quantile`/`le` where the type
/// reserves it.
fn check_family(f: &Family) -> Result<(), Inconsistent> {
    if !rules_engine::model::is_valid_metric_name(&f.name) {
        return Err(Inconsistent(format!(
            "{:?} is not a valid metric name",
            f.name
        )));
    }
    for m in &f.metrics {
        for (n, _) in &m.labels {
            if !rules_engine::model::is_valid_label_name(n) || n.starts_with("__") {
                return Err(Inconsistent(format!(
                    "collected metric {:?} {{{}}} has a label with an invalid name: {n}",
                    f.name,
                    describe_labels(&m.labels)
                )));
            }
            let reserved = match f.kind {
                Kind::Summary => n == "quantile",
                Kind::Histogram => n == "le",
                _ => false,
            };
            if reserved {
                return Err(Inconsistent(format!(
                    "collected metric {:?} {{{}}} must not have an explicit {n:?} label",
                    f.name,
                    describe_labels(&m.labels)
                )));
            }
        }
        let mut names: Vec<&str> = m.labels.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(Inconsistent(format!(
                "collected metric {:?} {{{}}} has two or more labels with the same name",
                f.name,
                describe_labels(&m.labels)
            )));
        }
    }
    Ok(())
}

/// Pushgateway's `sanitizeLabels`: grouping labels override the body's, `instance` is added
/// (empty) when missing, labels are sorted.
fn sanitize(f: &mut Family, key: &GroupingKey) {
    for m in &mut f.metrics {
        for (n, v) in key {
            match m.labels.iter_mut().find(|(x, _)| x == n) {
                Some(slot) => slot.1.clone_from(v),
                None => m.labels.push((n.clone(), v.clone())),
            }
        }
        if !m.labels.iter().any(|(n, _)| n == "instance") {
            m.labels.push(("instance".into(), String::new()));
        }
        m.labels.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }
}

fn check_duplicates(f: &Family) -> Result<(), Inconsistent> {
    let mut seen = HashSet::with_capacity(f.metrics.len());
    for m in &f.metrics {
        if !seen.insert(m.labels.as_slice()) {
            return Err(Inconsistent(format!(
                "collected metric {:?} {{{}}} was collected before with the same name and label values",
                f.name,
                describe_labels(&m.labels)
            )));
        }
    }
    Ok(())
}

/// Adds `new` into `stored` (same kind): counters and histogram/summary counts, sums and
/// buckets add up; gauges, untyped values and summary quantiles take the new value.
fn aggregate(stored: &mut Family, new: Family) {
    if new.help.is_some() {
        stored.help = new.help;
    }
    let kind = stored.kind;
    let mut index: HashMap<Vec<(String, String)>, usize> = stored
        .metrics
        .iter()
        .enumerate()
        .map(|(i, m)| (m.labels.clone(), i))
        .collect();
    for m in new.metrics {
        let Some(&i) = index.get(&m.labels) else {
            index.insert(m.labels.clone(), stored.metrics.len());
            stored.metrics.push(m);
            continue;
        };
        let cur: &mut Metric = &mut stored.metrics[i];
        match (&mut cur.value, m.value) {
            (Value::Simple(a), Value::Simple(b)) => {
                if kind == Kind::Counter {
                    *a += b;
                } else {
                    *a = b;
                }
            }
            (
                Value::Summary {
                    count,
                    sum,
                    quantiles,
                },
                Value::Summary {
                    count: c,
                    sum: s,
                    quantiles: q,
                },
            ) => {
                *count = count.saturating_add(c);
                *sum += s;
                *quantiles = q;
            }
            (
                Value::Histogram {
                    count,
                    sum,
                    buckets,
                },
                Value::Histogram {
                    count: c,
                    sum: s,
                    buckets: b,
                },
            ) => {
                *count = count.saturating_add(c);
                *sum += s;
                for (le, n) in b {
                    match buckets
                        .iter_mut()
                        .find(|(x, _)| x.to_bits() == le.to_bits())
                    {
                        Some(slot) => slot.1 = slot.1.saturating_add(n),
                        None => buckets.push((le, n)),
                    }
                }
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
            (slot, other) => *slot = other,
        }
    }
}

#[cfg(test)]
mod tests;
