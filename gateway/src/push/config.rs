//! The `push` section: Pushgateway compatibility switches and promgate's opt-in extensions
//! (TTL, counter aggregation), chosen per group by matching its grouping labels.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::config::de_duration;

/// The `push` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Serve `PUT /api/v1/admin/wipe` (Pushgateway's `--web.enable-admin-api`).
    pub enable_admin_api: bool,
    /// How often every group's current values are written to the window again, as a
    /// Prometheus scraping a Pushgateway would see them; keeps pushed series visible to rules
    /// past the lookback. 0 writes only at push time.
    #[serde(deserialize_with = "de_duration")]
    pub republish_interval: Duration,
    /// Most samples one push may hold (a histogram bucket, quantile, `_sum` and `_count` each
    /// count one), on top of `limits.max_samples_per_request`. A push is one job's final
    /// state: far smaller than a remote-write stream, and parsed whole before it is checked.
    pub max_samples_per_push: usize,
    /// Honour the per-request headers `Promgate-Push-TTL: <duration>` and
    /// `Promgate-Push-Aggregate: true|false`, which set a group's TTL and aggregation from
    /// then on (stored with the group), over what `groups` says. Off: such headers are
    /// refused with 400.
    pub request_options: bool,
    /// Per-group behaviour; the first rule whose `match` fits a group's grouping labels
    /// applies. Groups no rule matches behave as in Pushgateway.
    pub groups: Vec<GroupRule>,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            enable_admin_api: false,
            republish_interval: Duration::from_secs(60),
            max_samples_per_push: 200_000,
            request_options: false,
            groups: Vec::new(),
        }
    }
}

/// Behaviour for the groups whose grouping labels match.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct GroupRule {
    /// Grouping label name to a regular expression its value must match in full (as in
    /// relabelling). An empty map matches every group.
    #[serde(rename = "match")]
    pub matchers: BTreeMap<String, String>,
    /// A group not pushed again within this time is deleted (stale markers are written for
    /// its series). Unset: kept until deleted.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub ttl: Option<Duration>,
    /// Pushes add their counters, and histogram and summary counts, sums and buckets, to the
    /// group's values instead of replacing them; gauges and untyped metrics keep the last
    /// value. PUT then replaces nothing: only DELETE (or the TTL) clears the group.
    pub aggregate: bool,
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

/// A rule with its patterns compiled.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    matchers: Vec<(String, regex::Regex)>,
    pub ttl: Option<Duration>,
    pub aggregate: bool,
}

/// What applies to one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Behaviour {
    pub ttl_ms: Option<i64>,
    pub aggregate: bool,
}

impl PushConfig {
    /// Errors, each naming the field.
    pub fn validate(&self) -> Vec<String> {
        match self.compile() {
            Ok(_) => Vec::new(),
            Err(e) => e,
        }
    }

    pub fn compile(&self) -> Result<Vec<CompiledRule>, Vec<String>> {
        let mut errors = Vec::new();
        let mut out = Vec::new();
        if self.max_samples_per_push == 0 {
            errors.push("push.max_samples_per_push: must be positive".into());
        }
        for (i, r) in self.groups.iter().enumerate() {
            let mut matchers = Vec::new();
            for (name, pattern) in &r.matchers {
                match regex::Regex::new(&format!("^(?:{pattern})$")) {
                    Ok(re) => matchers.push((name.clone(), re)),
                    Err(e) => errors.push(format!("push.groups[{i}].match.{name}: {e}")),
                }
            }
            if r.ttl.is_some_and(|t| t.is_zero()) {
                errors.push(format!("push.groups[{i}].ttl: must be positive"));
            }
            out.push(CompiledRule {
                matchers,
                ttl: r.ttl,
                aggregate: r.aggregate,
            });
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

/// A group's own settings, from the headers of a push (see `request_options`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    pub ttl_ms: Option<i64>,
    pub aggregate: Option<bool>,
}

impl Overrides {
    /// `self` with what `newer` sets replacing it.
    pub fn then(self, newer: Overrides) -> Overrides {
        Overrides {
            ttl_ms: newer.ttl_ms.or(self.ttl_ms),
            aggregate: newer.aggregate.or(self.aggregate),
        }
    }

    pub fn apply(self, b: Behaviour) -> Behaviour {
        Behaviour {
            ttl_ms: self.ttl_ms.or(b.ttl_ms),
            aggregate: self.aggregate.unwrap_or(b.aggregate),
        }
    }
}

/// The behaviour of the group with grouping labels `key` (sorted pairs).
pub fn behaviour(rules: &[CompiledRule], key: &[(String, String)]) -> Behaviour {
    let value = |n: &str| {
        key.iter()
            .find(|(k, _)| k == n)
            .map_or("", |(_, v)| v.as_str())
    };
    rules
        .iter()
        .find(|r| r.matchers.iter().all(|(n, re)| re.is_match(value(n))))
        .map(|r| Behaviour {
            ttl_ms: r.ttl.map(|t| t.as_millis() as i64),
            aggregate: r.aggregate,
        })
        .unwrap_or_default()
}
