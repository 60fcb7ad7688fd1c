//! Alertmanager's template data (`template/template.go@v0.25.0` `Data`, `Alert`, `KV`): what
//! every template sees and, with `version`, `groupKey` and `truncatedAlerts`, the webhook JSON
//! version 4 (`notify/webhook/webhook.go@v0.25.0` `Message`) field for field and in Go's field
//! order.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

/// A label or annotation set, sorted by name (Go's `template.KV`, a `map[string]string` whose
/// JSON encoding sorts keys).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KV(pub BTreeMap<String, String>);

impl KV {
    pub fn new() -> KV {
        KV(BTreeMap::new())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `KV.Names`: the sorted names.
    pub fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    /// `KV.Values`: the values in name order.
    pub fn values(&self) -> Vec<&str> {
        self.0.values().map(String::as_str).collect()
    }

    /// `KV.Remove`: a copy without the given names.
    pub fn remove(&self, names: &[&str]) -> KV {
        KV(self
            .0
            .iter()
            .filter(|(k, _)| !names.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for KV {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        KV(iter
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect())
    }
}

/// An alert's or a group's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Go's zero `time.Time`, which Alertmanager prints for an unset `endsAt`.
pub fn go_zero_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Formats like Go's `time.Time.MarshalJSON` for a UTC time (RFC 3339 with trailing fractional
/// zeros removed, `Z`).
pub fn go_time(t: &DateTime<Utc>) -> String {
    let s = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    // "....ssss.nnnnnnnnnZ": drop trailing zeros of the fraction, and the dot if nothing is left.
    match s.rfind('.') {
        Some(dot) => {
            let frac = s[dot + 1..s.len() - 1].trim_end_matches('0');
            if frac.is_empty() {
                format!("{}Z", &s[..dot])
            } else {
                format!("{}.{}Z", &s[..dot], frac)
            }
        }
        None => s,
    }
}

fn ser_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&go_time(t))
}

/// One alert as templates and the webhook see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: Status,
    pub labels: KV,
    pub annotations: KV,
    #[serde(serialize_with = "ser_time")]
    pub starts_at: DateTime<Utc>,
    /// Go's zero time (0001-01-01T00:00:00Z) when unset.
    #[serde(serialize_with = "ser_time")]
    pub ends_at: DateTime<Utc>,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// 16 lower-case hex digits of [`fingerprint`] over `labels`.
    pub fingerprint: String,
}

impl Alert {
    /// An alert whose fingerprint is computed from its labels.
    pub fn new(
        status: Status,
        labels: KV,
        annotations: KV,
        starts_at: DateTime<Utc>,
        ends_at: Option<DateTime<Utc>>,
        generator_url: impl Into<String>,
    ) -> Alert {
        let fingerprint = format!("{:016x}", fingerprint(&labels));
        Alert {
            status,
            labels,
            annotations,
            starts_at,
            ends_at: ends_at.unwrap_or_else(go_zero_time),
            generator_url: generator_url.into(),
            fingerprint,
        }
    }
}

/// Everything one notification is about: a group of alerts for one receiver.
#[derive(Clone, Debug, PartialEq)]
pub struct Data {
    pub receiver: String,
    pub status: Status,
    pub alerts: Vec<Alert>,
    pub group_labels: KV,
    pub common_labels: KV,
    pub common_annotations: KV,
    pub external_url: String,
    pub group_key: String,
    /// Alerts left out of `alerts` by a webhook's `max_alerts`.
    pub truncated_alerts: u64,
}

impl Data {
    /// Builds the data like Alertmanager's `Template.Data`: the receiver name is
    /// `regexp.QuoteMeta`-escaped, the group is firing when any alert is, common labels
    /// and annotations are those every alert shares with the first, and a firing alert's
    /// `endsAt` is hidden (Go's zero time), as `types.Alerts` does ("if the end timestamp is
    /// not reached yet, do not expose it").
    pub fn new(
        receiver: &str,
        group_key: impl Into<String>,
        group_labels: KV,
        mut alerts: Vec<Alert>,
        external_url: impl Into<String>,
    ) -> Data {
        for a in &mut alerts {
            if a.status == Status::Firing {
                a.ends_at = go_zero_time();
            }
        }
        let status = if alerts.iter().any(|a| a.status == Status::Firing) {
            Status::Firing
        } else {
            Status::Resolved
        };
        let (mut common_labels, mut common_annotations) = match alerts.first() {
            Some(a) => (a.labels.clone(), a.annotations.clone()),
            None => (KV::new(), KV::new()),
        };
        for a in alerts.iter().skip(1) {
            if common_labels.is_empty() && common_annotations.is_empty() {
                break;
            }
            common_labels
                .0
                .retain(|k, v| a.labels.get(k) == Some(v.as_str()));
            common_annotations
                .0
                .retain(|k, v| a.annotations.get(k) == Some(v.as_str()));
        }
        Data {
            receiver: quote_meta(receiver),
            status,
            alerts,
            group_labels,
            common_labels,
            common_annotations,
            external_url: external_url.into(),
            group_key: group_key.into(),
            truncated_alerts: 0,
        }
    }

    /// The firing alerts (`.Alerts.Firing`).
    pub fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter().filter(|a| a.status == Status::Firing)
    }

    /// The resolved alerts (`.Alerts.Resolved`).
    pub fn resolved(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter().filter(|a| a.status == Status::Resolved)
    }

    /// The data an integration with `send_resolved: false` gets (Alertmanager's `RetryStage`):
    /// only the firing alerts, common labels and annotations recomputed over them; `None` when
    /// nothing fires (nothing is sent).
    pub fn firing_only(&self) -> Option<Data> {
        let firing: Vec<Alert> = self.firing().cloned().collect();
        if firing.is_empty() {
            return None;
        }
        if firing.len() == self.alerts.len() {
            return Some(self.clone());
        }
        let mut d = Data::new(
            "",
            self.group_key.clone(),
            self.group_labels.clone(),
            firing,
            self.external_url.clone(),
        );
        d.receiver = self.receiver.clone();
        Some(d)
    }

    /// Keeps the first `max` alerts and counts the rest in `truncated_alerts` (the webhook's
    /// `max_alerts`; 0 means no limit). Like Alertmanager, which truncates before building the
    /// template data, the status and common labels and annotations are those of the alerts kept.
    pub fn truncate_alerts(&mut self, max: u64) {
        if max == 0 {
            return;
        }
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        if self.alerts.len() <= max {
            return;
        }
        let truncated = (self.alerts.len() - max) as u64;
        let kept = self.alerts[..max].to_vec();
        let mut d = Data::new(
            "",
            std::mem::take(&mut self.group_key),
            std::mem::take(&mut self.group_labels),
            kept,
            std::mem::take(&mut self.external_url),
        );
        d.receiver = std::mem::take(&mut self.receiver);
        d.truncated_alerts = truncated;
        *self = d;
    }
}

/// The webhook JSON read back (for a durable outbox that stores what it will send).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DataRepr {
    receiver: String,
    status: Status,
    alerts: Vec<Alert>,
    group_labels: KV,
    common_labels: KV,
    common_annotations: KV,
    #[serde(rename = "externalURL")]
    external_url: String,
    #[serde(default)]
    group_key: String,
    #[serde(default)]
    truncated_alerts: u64,
}

impl<'de> Deserialize<'de> for Data {
    /// Reads the webhook JSON version 4 that [`Serialize`] writes; fields are taken as they are
    /// (nothing is recomputed).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Data, D::Error> {
        let r = DataRepr::deserialize(d)?;
        Ok(Data {
            receiver: r.receiver,
            status: r.status,
            alerts: r.alerts,
            group_labels: r.group_labels,
            common_labels: r.common_labels,
            common_annotations: r.common_annotations,
            external_url: r.external_url,
            group_key: r.group_key,
            truncated_alerts: r.truncated_alerts,
        })
    }
}

impl Serialize for Data {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Message", 10)?;
        st.serialize_field("receiver", &self.receiver)?;
        st.serialize_field("status", &self.status)?;
        st.serialize_field("alerts", &self.alerts)?;
        st.serialize_field("groupLabels", &self.group_labels)?;
        st.serialize_field("commonLabels", &self.common_labels)?;
        st.serialize_field("commonAnnotations", &self.common_annotations)?;
        st.serialize_field("externalURL", &self.external_url)?;
        st.serialize_field("version", "4")?;
        st.serialize_field("groupKey", &self.group_key)?;
        st.serialize_field("truncatedAlerts", &self.truncated_alerts)?;
        st.end()
    }
}

/// Alertmanager's `model.LabelSet.Fingerprint`: FNV-1a 64 over the sorted label names and
/// values, each followed by a 0xff separator byte.
pub fn fingerprint(labels: &KV) -> u64 {
    const OFFSET: u64 = 14695981039346656037;
    const PRIME: u64 = 1099511628211;
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (k, v) in &labels.0 {
        add(k.as_bytes());
        add(&[0xff]);
        add(v.as_bytes());
        add(&[0xff]);
    }
    h
}

/// Sorts alerts the way Alertmanager's dispatcher does before a notification
/// (`types.AlertSlice`): by `job`, then `instance` (alerts with the label first), then by the
/// whole label set.
pub fn sort_alerts(alerts: &mut [Alert]) {
    alerts.sort_by(|a, b| {
        for key in ["job", "instance"] {
            match (a.labels.get(key), b.labels.get(key)) {
                (None, None) => continue,
                (None, Some(_)) => return std::cmp::Ordering::Greater,
                (Some(_), None) => return std::cmp::Ordering::Less,
                (Some(x), Some(y)) if x != y => return x.cmp(y),
                _ => {}
            }
        }
        labels_before(&a.labels, &b.labels)
    });
}

/// `model.LabelSet.Before`: compares the sorted names, then the values, then the sizes.
fn labels_before(a: &KV, b: &KV) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for ((ka, va), (kb, vb)) in a.0.iter().zip(b.0.iter()) {
        match ka.cmp(kb) {
            Ordering::Equal => {}
            o => return o,
        }
        match va.cmp(vb) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    a.len().cmp(&b.len())
}

/// Go's `regexp.QuoteMeta`.
pub fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_alertmanager() {
        // Empty set: FNV-1a offset basis (model.emptyLabelSignature).
        assert_eq!(fingerprint(&KV::new()), 14695981039346656037);
    }

    #[test]
    fn go_time_trims_fraction() {
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single().unwrap();
        assert_eq!(go_time(&t), "2024-01-02T03:04:05Z");
        let t = t + chrono::Duration::milliseconds(500);
        assert_eq!(go_time(&t), "2024-01-02T03:04:05.5Z");
        assert_eq!(go_time(&go_zero_time()), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn webhook_json_round_trips() {
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single().unwrap()
            + chrono::Duration::nanoseconds(123_456_789);
        let a = Alert::new(
            Status::Resolved,
            KV::from_iter([("a", "1")]),
            KV::new(),
            t,
            Some(t),
            "u",
        );
        let b = Alert::new(
            Status::Firing,
            KV::from_iter([("a", "2")]),
            KV::new(),
            t,
            None,
            "",
        );
        let mut d = Data::new("r", "{}:{a=\"1\"}", KV::new(), vec![a, b], "http://x");
        d.truncated_alerts = 3;
        let json = serde_json::to_string(&d).unwrap();
        let back: Data = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn common_labels_and_status() {
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single().unwrap();
        let a = Alert::new(
            Status::Resolved,
            KV::from_iter([("a", "1"), ("b", "2")]),
            KV::from_iter([("s", "x")]),
            t,
            Some(t),
            "",
        );
        let b = Alert::new(
            Status::Firing,
            KV::from_iter([("a", "1"), ("b", "3")]),
            KV::from_iter([("s", "x")]),
            t,
            None,
            "",
        );
        let d = Data::new("r.x", "{}", KV::new(), vec![a, b], "http://am");
        assert_eq!(d.status, Status::Firing);
        assert_eq!(d.receiver, "r\\.x");
        assert_eq!(d.common_labels, KV::from_iter([("a", "1")]));
        assert_eq!(d.common_annotations, KV::from_iter([("s", "x")]));
    }
}
