//! Inhibition as Alertmanager 0.25 applies it (`inhibit/inhibit.go`): an alert matching a rule's
//! target matchers is muted while an unresolved alert matches its source matchers and has the
//! same values for the `equal` labels (an absent label equals an absent label); an alert that
//! matches both sides cannot be inhibited by another alert that also matches both sides, so an
//! alert never inhibits itself.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::alert::{Alert, LabelSet};
use super::config::InhibitRuleConfig;
use super::matcher::{MatchType, Matcher, Matchers};

pub struct InhibitRule {
    source: Matchers,
    target: Matchers,
    equal: Vec<String>,
    /// Alerts matching the source side, by fingerprint: labels and `endsAt`.
    sources: HashMap<u64, (LabelSet, DateTime<Utc>)>,
}

impl InhibitRule {
    pub fn new(c: &InhibitRuleConfig) -> Self {
        let side = |eq: &std::collections::BTreeMap<String, String>,
                    re: &std::collections::BTreeMap<String, super::config::RegexValue>,
                    ms: &[Matcher]| {
            let mut v: Vec<Matcher> = eq
                .iter()
                .filter_map(|(k, v)| Matcher::new(MatchType::Equal, k, v).ok())
                .collect();
            v.extend(re.iter().map(|(k, r)| r.matcher(k)));
            v.extend(ms.iter().cloned());
            Matchers(v)
        };
        Self {
            source: side(&c.source_match, &c.source_match_re, &c.source_matchers),
            target: side(&c.target_match, &c.target_match_re, &c.target_matchers),
            equal: c.equal.clone(),
            sources: HashMap::new(),
        }
    }

    /// The fingerprint of an alert that inhibits `labels` at `now`, if any (`hasEqual`).
    fn inhibited_by(&self, labels: &LabelSet, both_sides: bool, now: DateTime<Utc>) -> Option<u64> {
        fn get<'a>(l: &'a LabelSet, n: &str) -> &'a str {
            l.get(n).map_or("", String::as_str)
        }
        self.sources
            .iter()
            .find(|(_, (src, ends_at))| {
                *ends_at > now
                    && self.equal.iter().all(|n| get(src, n) == get(labels, n))
                    && !(both_sides && self.target.matches(src))
            })
            .map(|(fp, _)| *fp)
    }
}

/// All inhibition rules and the source alerts each has seen.
#[derive(Default)]
pub struct Inhibitor {
    rules: Vec<InhibitRule>,
}

impl Inhibitor {
    pub fn new(cfg: &[InhibitRuleConfig]) -> Self {
        Self {
            rules: cfg.iter().map(InhibitRule::new).collect(),
        }
    }

    /// Records an alert (new or updated) for the rules whose source side it matches.
    pub fn observe(&mut self, a: &Alert) {
        for r in &mut self.rules {
            if r.source.matches(&a.labels) {
                r.sources
                    .insert(a.fingerprint(), (a.labels.clone(), a.ends_at));
            }
        }
    }

    /// Forgets source alerts resolved before `now`.
    pub fn gc(&mut self, now: DateTime<Utc>) {
        for r in &mut self.rules {
            r.sources.retain(|_, (_, ends_at)| *ends_at > now);
        }
    }

    /// The fingerprint of the alert inhibiting `labels` at `now`, if one does (`Mutes`).
    pub fn mutes(&self, labels: &LabelSet, now: DateTime<Utc>) -> Option<u64> {
        self.rules.iter().find_map(|r| {
            if !r.target.matches(labels) {
                return None;
            }
            r.inhibited_by(labels, r.source.matches(labels), now)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn alert(labels: &[(&str, &str)], ends_in_s: i64) -> Alert {
        let t0 = Utc.timestamp_opt(1_000_000, 0).single().expect("time");
        Alert {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: LabelSet::new(),
            starts_at: t0,
            ends_at: t0 + chrono::Duration::seconds(ends_in_s),
            generator_url: String::new(),
            updated_at: t0,
            timeout: false,
        }
    }

    fn rule(yaml: &str) -> Inhibitor {
        let c: InhibitRuleConfig = serde_norway::from_str(yaml).expect("rule");
        Inhibitor::new(&[c])
    }

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_000_010, 0).single().expect("time")
    }

    #[test]
    fn source_inhibits_target_with_equal_labels() {
        let mut ih = rule(
            "source_matchers: [severity=critical]\ntarget_matchers: [severity=warning]\nequal: [cluster]\n",
        );
        let crit = alert(
            &[
                ("alertname", "A"),
                ("severity", "critical"),
                ("cluster", "c1"),
            ],
            60,
        );
        ih.observe(&crit);
        let warn1 = alert(
            &[
                ("alertname", "B"),
                ("severity", "warning"),
                ("cluster", "c1"),
            ],
            60,
        );
        let warn2 = alert(
            &[
                ("alertname", "B"),
                ("severity", "warning"),
                ("cluster", "c2"),
            ],
            60,
        );
        assert_eq!(ih.mutes(&warn1.labels, now()), Some(crit.fingerprint()));
        assert_eq!(ih.mutes(&warn2.labels, now()), None, "cluster differs");
        assert_eq!(ih.mutes(&crit.labels, now()), None, "not a target");
        // Once the source resolves, the target is no longer muted.
        let later = now() + chrono::Duration::seconds(120);
        assert_eq!(ih.mutes(&warn1.labels, later), None);
    }

    #[test]
    fn absent_equal_labels_are_equal() {
        let mut ih = rule("source_match: {a: x}\ntarget_match: {b: y}\nequal: [zone]\n");
        ih.observe(&alert(&[("a", "x")], 60));
        assert!(ih.mutes(&alert(&[("b", "y")], 60).labels, now()).is_some());
        assert!(
            ih.mutes(&alert(&[("b", "y"), ("zone", "z")], 60).labels, now())
                .is_none()
        );
    }

    #[test]
    fn an_alert_does_not_inhibit_itself() {
        // Source and target both match `severity=~".+"`: an alert on both sides is inhibited
        // only by an alert that is a source and not a target.
        let mut ih = rule(
            "source_matchers: ['severity=~\".+\"']\ntarget_matchers: ['severity=~\".+\"']\nequal: [job]\n",
        );
        let a = alert(&[("job", "j"), ("severity", "page")], 60);
        ih.observe(&a);
        assert_eq!(ih.mutes(&a.labels, now()), None);
        let b = alert(&[("job", "j"), ("severity", "warn")], 60);
        ih.observe(&b);
        assert_eq!(ih.mutes(&a.labels, now()), None, "b matches both sides too");
    }
}
