//! The alert as routing sees it: labels, annotations, `startsAt`/`endsAt`, and the merge rules
//! Alertmanager applies when the same alert (same fingerprint) arrives again
//! (`types.Alert.Merge` and `provider/mem` `Put` in Alertmanager 0.25).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

pub type LabelSet = BTreeMap<String, String>;

/// An alert as received (from promgate's rules or `POST /api/v2/alerts`).
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub generator_url: String,
    /// When promgate last received it.
    pub updated_at: DateTime<Utc>,
    /// `endsAt` was not given and was set to now + `resolve_timeout`.
    pub timeout: bool,
}

impl Alert {
    pub fn fingerprint(&self) -> u64 {
        fingerprint(&self.labels)
    }

    /// Resolved at `now`: `endsAt` is set and not after `now` (`Alert.ResolvedAt`).
    pub fn resolved_at(&self, now: DateTime<Utc>) -> bool {
        self.ends_at <= now
    }

    /// `types.Alert.Merge`: the younger alert's data, the earliest start, and the later end
    /// when that end was explicit.
    pub fn merge(&self, newer: &Alert) -> Alert {
        if newer.updated_at < self.updated_at {
            return newer.merge(self);
        }
        let mut res = newer.clone();
        if self.starts_at < newer.starts_at {
            res.starts_at = self.starts_at;
        }
        let now_resolved = |a: &Alert| a.ends_at <= newer.updated_at;
        if now_resolved(newer) {
            if now_resolved(self) && self.ends_at > newer.ends_at {
                res.ends_at = self.ends_at;
            }
        } else if self.ends_at > newer.ends_at && !self.timeout {
            res.ends_at = self.ends_at;
        }
        res
    }

    /// Whether `newer` overlaps this alert's activity and so merges into it (`mem.Put`).
    pub fn overlaps(&self, newer: &Alert) -> bool {
        (newer.ends_at > self.starts_at && newer.ends_at < self.ends_at)
            || (newer.starts_at > self.starts_at && newer.starts_at < self.ends_at)
    }
}

/// `model.LabelSet.Fingerprint()`: FNV-1a 64 over sorted names and values, each followed by
/// the 0xff separator.
pub fn fingerprint(labels: &LabelSet) -> u64 {
    const OFFSET: u64 = 14695981039346656037;
    const PRIME: u64 = 1099511628211;
    let mut h = OFFSET;
    let mut add = |b: &[u8]| {
        for &x in b {
            h ^= u64::from(x);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (k, v) in labels {
        add(k.as_bytes());
        add(&[0xff]);
        add(v.as_bytes());
        add(&[0xff]);
    }
    h
}

/// `model.LabelSet.String()`: `{a="b", c="d"}`, the second part of a group key.
pub fn label_set_string(labels: &LabelSet) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(k);
        s.push('=');
        // Go's %q: printable text as is, `"` and `\` escaped, control characters as escapes.
        s.push_str(&serde_json::to_string(v).unwrap_or_default());
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_prometheus_common() {
        // The empty set hashes to the FNV offset basis; `{name="value"}` was posted to a real
        // Alertmanager 0.25, which answered fingerprint 3a8504e67bf53465.
        assert_eq!(fingerprint(&LabelSet::new()), 14695981039346656037);
        let l = LabelSet::from([("name".to_string(), "value".to_string())]);
        assert_eq!(
            fingerprint(&l),
            0x3a8504e67bf53465,
            "as Alertmanager 0.25 reports it"
        );
    }

    #[test]
    fn group_label_string() {
        let l = LabelSet::from([
            ("b".to_string(), "x\"y".to_string()),
            ("a".to_string(), "1".to_string()),
        ]);
        assert_eq!(label_set_string(&l), r#"{a="1", b="x\"y"}"#);
    }
}
