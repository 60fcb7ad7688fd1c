//! The alertmanager.yml sections promgate reads (`route`, `inhibit_rules`, `receivers`,
//! `templates`, `global`) and promgate's own delivery settings. Each piece is checked as it is
//! parsed, so a bad matcher, regular expression, duration or `group_by` label is reported at its
//! line; cross references (receiver names) are checked afterwards and located by searching the
//! text. The error texts are Alertmanager 0.25's (`config/config.go`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::matcher::{MatchType, Matcher, is_label_name, parse_matchers};
use crate::config::de_duration;

/// A `match_re` value: an anchored regular expression.
#[derive(Clone, Debug)]
pub struct RegexValue(pub Matcher);

impl RegexValue {
    /// The matcher for label `name`.
    pub fn matcher(&self, name: &str) -> Matcher {
        let mut m = self.0.clone();
        m.name = name.to_string();
        m
    }
}

impl<'de> Deserialize<'de> for RegexValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // Alertmanager keeps the anchored text as the matcher's value, so it is what route
        // keys (and so group keys) show.
        Matcher::new(MatchType::Regexp, "", &format!("^(?:{s})$"))
            .map(RegexValue)
            .map_err(|e| serde::de::Error::custom(format!("error parsing regexp: {e}")))
    }
}

/// `matchers: ['a="b"', 'c=~"d", e!="f"']`, each string holding one or more matchers.
fn de_matchers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Matcher>, D::Error> {
    let lines = Vec::<String>::deserialize(d)?;
    let mut out = Vec::new();
    for line in &lines {
        out.extend(parse_matchers(line).map_err(serde::de::Error::custom)?);
    }
    Ok(out)
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

fn de_label_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let m = BTreeMap::<String, String>::deserialize(d)?;
    if let Some(k) = m.keys().find(|k| !is_label_name(k)) {
        return Err(serde::de::Error::custom(format!(
            "invalid label name {k:?}"
        )));
    }
    Ok(m)
}

fn de_label_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    if let Some(k) = v.iter().find(|k| !is_label_name(k)) {
        return Err(serde::de::Error::custom(format!(
            "invalid label name {k:?}"
        )));
    }
    Ok(v)
}

/// One node of `route`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawRoute")]
pub struct RouteConfig {
    pub receiver: Option<String>,
    pub group_by: Option<Vec<String>>,
    pub continue_matching: bool,
    pub matches: BTreeMap<String, String>,
    pub match_re: BTreeMap<String, RegexValue>,
    pub matchers: Vec<Matcher>,
    pub group_wait: Option<Duration>,
    pub group_interval: Option<Duration>,
    pub repeat_interval: Option<Duration>,
    pub routes: Vec<RouteConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    #[serde(default)]
    receiver: Option<String>,
    #[serde(default)]
    group_by: Option<Vec<String>>,
    #[serde(default, rename = "continue")]
    continue_matching: bool,
    #[serde(default, rename = "match", deserialize_with = "de_label_map")]
    matches: BTreeMap<String, String>,
    #[serde(default)]
    match_re: BTreeMap<String, RegexValue>,
    #[serde(default, deserialize_with = "de_matchers")]
    matchers: Vec<Matcher>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    group_wait: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    group_interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    repeat_interval: Option<Duration>,
    #[serde(default)]
    routes: Vec<RouteConfig>,
}

impl TryFrom<RawRoute> for RouteConfig {
    type Error = String;

    /// `Route.UnmarshalYAML`'s checks.
    fn try_from(r: RawRoute) -> Result<Self, String> {
        if let Some(k) = r.match_re.keys().find(|k| !is_label_name(k)) {
            return Err(format!("invalid label name {k:?}"));
        }
        if let Some(g) = &r.group_by {
            let mut seen = std::collections::HashSet::new();
            for l in g {
                if l != "..." && !is_label_name(l) {
                    return Err(format!("invalid label name {l:?} in group_by list"));
                }
                if !seen.insert(l.as_str()) && l != "..." {
                    return Err(format!("duplicated label {l:?} in group_by"));
                }
            }
            if g.iter().any(|l| l == "...") && g.iter().any(|l| l != "...") {
                return Err(
                    "cannot have wildcard group_by (`...`) and other other labels at the same time"
                        .into(),
                );
            }
        }
        if r.group_interval == Some(Duration::ZERO) {
            return Err("group_interval cannot be zero".into());
        }
        if r.repeat_interval == Some(Duration::ZERO) {
            return Err("repeat_interval cannot be zero".into());
        }
        Ok(Self {
            receiver: r.receiver,
            group_by: r.group_by,
            continue_matching: r.continue_matching,
            matches: r.matches,
            match_re: r.match_re,
            matchers: r.matchers,
            group_wait: r.group_wait,
            group_interval: r.group_interval,
            repeat_interval: r.repeat_interval,
            routes: r.routes,
        })
    }
}

impl RouteConfig {
    fn has_matchers(&self) -> bool {
        !self.matches.is_empty() || !self.match_re.is_empty() || !self.matchers.is_empty()
    }

    /// Every receiver name used in the tree, with the node's path (`route.routes[0]...`).
    pub fn receivers_used(&self, path: &str, out: &mut Vec<(String, String)>) {
        if let Some(r) = self.receiver.as_deref().filter(|r| !r.is_empty()) {
            out.push((path.to_string(), r.to_string()));
        }
        for (i, c) in self.routes.iter().enumerate() {
            c.receivers_used(&format!("{path}.routes[{i}]"), out);
        }
    }
}

/// One of `inhibit_rules`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    #[serde(default, deserialize_with = "de_label_map")]
    pub source_match: BTreeMap<String, String>,
    #[serde(default)]
    pub source_match_re: BTreeMap<String, RegexValue>,
    #[serde(default, deserialize_with = "de_matchers")]
    pub source_matchers: Vec<Matcher>,
    #[serde(default, deserialize_with = "de_label_map")]
    pub target_match: BTreeMap<String, String>,
    #[serde(default)]
    pub target_match_re: BTreeMap<String, RegexValue>,
    #[serde(default, deserialize_with = "de_matchers")]
    pub target_matchers: Vec<Matcher>,
    #[serde(default, deserialize_with = "de_label_names")]
    pub equal: Vec<String>,
}

/// Checks of the whole routing section: the root route's rules and that every receiver a
/// route names exists. Returns (path, message) pairs.
pub fn check_routing(route: &RouteConfig, receiver_names: &[&str]) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    if route.receiver.as_deref().is_none_or(str::is_empty) {
        errors.push((
            "route".to_string(),
            "root route must specify a default receiver".to_string(),
        ));
    }
    if route.has_matchers() {
        errors.push((
            "route".to_string(),
            "root route must not have any matchers".to_string(),
        ));
    }
    if route.continue_matching {
        errors.push((
            "route".to_string(),
            "cannot have continue in root route".to_string(),
        ));
    }
    let mut used = Vec::new();
    route.receivers_used("route", &mut used);
    for (path, name) in used {
        if !receiver_names.contains(&name.as_str()) {
            errors.push((path, format!("undefined receiver {name:?} used in route")));
        }
    }
    errors
}

/// promgate's delivery settings (the `notifications` section), beyond what alertmanager.yml
/// can say.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationSettings {
    /// Send a group's resolved notification as soon as every alert of the group is resolved,
    /// instead of at the next `group_interval` tick. Off by default: that is Alertmanager's
    /// behaviour, which batches a resolve with whatever else changed in the interval and so
    /// pages less when alerts flap; turn it on for receivers where a late "resolved" costs
    /// more than an extra message.
    pub resolve_immediately: bool,
    /// Flap damping: after a group's resolved notification, a re-fire within this time is held
    /// back until the time has passed (and dropped if the group resolves again meanwhile).
    /// `0s` (the default) disables it, as in Alertmanager.
    #[serde(deserialize_with = "de_duration")]
    pub min_refire_interval: Duration,
    /// An undeliverable notification is retried with exponential backoff (and jitter) from
    /// `retry_initial` up to `retry_max` between attempts...
    #[serde(deserialize_with = "de_duration")]
    pub retry_initial: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub retry_max: Duration,
    /// ...and dropped (logged and counted) once it is this old.
    #[serde(deserialize_with = "de_duration")]
    pub give_up_after: Duration,
    /// How often promgate's own firing alerts are re-sent to the router and to downstream
    /// Alertmanagers (Prometheus's `--rules.alert.resend-delay`).
    #[serde(deserialize_with = "de_duration")]
    pub resend_delay: Duration,
    /// Notifications in flight at once per integration (never two for one group).
    pub max_in_flight: usize,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            resolve_immediately: false,
            min_refire_interval: Duration::ZERO,
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(5 * 60),
            give_up_after: Duration::from_secs(24 * 3600),
            resend_delay: Duration::from_secs(60),
            max_in_flight: 64,
        }
    }
}

impl NotificationSettings {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.retry_initial.is_zero() {
            errors.push("notifications.retry_initial: must be positive".into());
        }
        if self.retry_max < self.retry_initial {
            errors.push("notifications.retry_max: must be at least retry_initial".into());
        }
        if self.give_up_after.is_zero() {
            errors.push("notifications.give_up_after: must be positive".into());
        }
        if self.resend_delay.is_zero() {
            errors.push("notifications.resend_delay: must be positive".into());
        }
        if self.max_in_flight == 0 {
            errors.push("notifications.max_in_flight: must be at least 1".into());
        }
        errors
    }
}

/// The first line (1-based) of `text` on which `key:` is followed by `value`, for locating
/// errors found after parsing.
pub fn locate(text: &str, key: &str, value: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim_start().trim_start_matches("- ");
            t.strip_prefix(key)
                .and_then(|r| r.trim_start().strip_prefix(':'))
                .is_some_and(|r| r.trim().trim_matches(|c| c == '"' || c == '\'') == value)
        })
        .map(|i| i + 1)
}
