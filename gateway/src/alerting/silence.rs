//! Silences as Alertmanager 0.25 keeps them (`silence/silence.go`): a silence mutes the alerts
//! all its matchers match while `startsAt <= now <= endsAt`; an update keeps the id only when
//! the matchers are unchanged and the change is allowed in the silence's state (`canUpdate`),
//! otherwise the old silence is expired and a new one created; expiring sets `endsAt` (and
//! `startsAt` for a pending one) to now. Expired silences are kept for [`RETENTION`], as
//! Alertmanager's `--data.retention`. Persistence is the caller's (the alerting database).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::alert::LabelSet;
use super::matcher::{MatchType, Matcher, is_label_name};

/// How long expired silences stay listed (Alertmanager's default `--data.retention`).
pub const RETENTION: chrono::Duration = chrono::Duration::hours(120);

/// A silence matcher as the API and the database carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl SilenceMatcher {
    pub fn to_matcher(&self) -> Result<Matcher, String> {
        if !is_label_name(&self.name) {
            return Err(format!("invalid label name {:?}", self.name));
        }
        let kind = match (self.is_regex, self.is_equal) {
            (false, true) => MatchType::Equal,
            (false, false) => MatchType::NotEqual,
            (true, true) => MatchType::Regexp,
            (true, false) => MatchType::NotRegexp,
        };
        Matcher::new(kind, &self.name, &self.value).map_err(|e| match e {
            super::matcher::MatcherError::Regex { value, error } => {
                format!("invalid regular expression {value:?}: {error}")
            }
            e => e.to_string(),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    Expired,
    Active,
    Pending,
}

impl Silence {
    pub fn state(&self, now: DateTime<Utc>) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now > self.ends_at {
            SilenceState::Expired
        } else {
            SilenceState::Active
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    #[error("silence not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
}

/// A silence with its compiled matchers.
struct Entry {
    silence: Silence,
    matchers: Vec<Matcher>,
}

/// All silences.
#[derive(Default)]
pub struct Silences {
    by_id: HashMap<String, Entry>,
}

fn validate(s: &Silence) -> Result<Vec<Matcher>, SilenceError> {
    if s.matchers.is_empty() {
        return Err(SilenceError::Invalid(
            "at least one matcher required".into(),
        ));
    }
    let mut out = Vec::with_capacity(s.matchers.len());
    for (i, m) in s.matchers.iter().enumerate() {
        out.push(
            m.to_matcher()
                .map_err(|e| SilenceError::Invalid(format!("invalid label matcher {i}: {e}")))?,
        );
    }
    if out.iter().all(|m| m.matches("")) {
        return Err(SilenceError::Invalid(
            "at least one matcher must not match the empty string".into(),
        ));
    }
    if s.ends_at < s.starts_at {
        return Err(SilenceError::Invalid(
            "end time must not be before start time".into(),
        ));
    }
    Ok(out)
}

impl Silences {
    /// Loads persisted silences (invalid ones are skipped).
    pub fn from_saved(saved: Vec<Silence>) -> Self {
        let mut s = Self::default();
        for sil in saved {
            if let Ok(matchers) = validate(&sil) {
                s.by_id.insert(
                    sil.id.clone(),
                    Entry {
                        silence: sil,
                        matchers,
                    },
                );
            }
        }
        s
    }

    /// Creates or updates a silence (`Silences.Set`); returns the silences written (the new or
    /// updated one last; an expired predecessor first) for persistence.
    pub fn set(
        &mut self,
        mut sil: Silence,
        now: DateTime<Utc>,
    ) -> Result<Vec<Silence>, SilenceError> {
        let matchers = validate(&sil)?;
        let mut written = Vec::new();
        if !sil.id.is_empty() {
            let prev = self.by_id.get(&sil.id).ok_or(SilenceError::NotFound)?;
            if can_update(&prev.silence, &sil, now) {
                sil.updated_at = now;
                self.by_id.insert(
                    sil.id.clone(),
                    Entry {
                        silence: sil.clone(),
                        matchers,
                    },
                );
                return Ok(vec![sil]);
            }
            if prev.silence.state(now) != SilenceState::Expired {
                let id = sil.id.clone();
                written.extend(self.expire(&id, now)?);
            }
        }
        sil.id = new_id();
        if sil.starts_at < now {
            sil.starts_at = now;
        }
        sil.updated_at = now;
        self.by_id.insert(
            sil.id.clone(),
            Entry {
                silence: sil.clone(),
                matchers,
            },
        );
        written.push(sil);
        Ok(written)
    }

    /// Expires a silence (`Silences.Expire`); returns it for persistence.
    pub fn expire(&mut self, id: &str, now: DateTime<Utc>) -> Result<Vec<Silence>, SilenceError> {
        let e = self.by_id.get_mut(id).ok_or(SilenceError::NotFound)?;
        match e.silence.state(now) {
            // Alertmanager 0.25 answers 200 to expiring an expired silence; nothing changes.
            SilenceState::Expired => return Ok(Vec::new()),
            SilenceState::Active => e.silence.ends_at = now,
            SilenceState::Pending => {
                e.silence.starts_at = now;
                e.silence.ends_at = now;
            }
        }
        e.silence.updated_at = now;
        Ok(vec![e.silence.clone()])
    }

    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.by_id.get(id).map(|e| &e.silence)
    }

    pub fn all(&self) -> impl Iterator<Item = &Silence> {
        self.by_id.values().map(|e| &e.silence)
    }

    /// Ids of the active silences muting `labels` at `now`.
    pub fn mutes(&self, labels: &LabelSet, now: DateTime<Utc>) -> Vec<String> {
        self.by_id
            .values()
            .filter(|e| {
                e.silence.state(now) == SilenceState::Active
                    && e.matchers.iter().all(|m| m.matches_labels(labels))
            })
            .map(|e| e.silence.id.clone())
            .collect()
    }

    /// Drops silences expired longer than [`RETENTION`] ago; returns their ids.
    pub fn gc(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let old: Vec<String> = self
            .by_id
            .values()
            .filter(|e| e.silence.ends_at + RETENTION < now)
            .map(|e| e.silence.id.clone())
            .collect();
        for id in &old {
            self.by_id.remove(id);
        }
        old
    }
}

/// `canUpdate`: same matchers, and a change the state allows.
fn can_update(a: &Silence, b: &Silence, now: DateTime<Utc>) -> bool {
    if a.matchers != b.matchers {
        return false;
    }
    match a.state(now) {
        SilenceState::Active => b.starts_at == a.starts_at && b.ends_at >= now,
        SilenceState::Pending => b.starts_at >= now,
        SilenceState::Expired => false,
    }
}

/// A random version-4 UUID, as Alertmanager's silence ids.
fn new_id() -> String {
    let mut b = [0u8; 16];
    for x in &mut b {
        *x = fastrand::u8(..);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `GET /api/v2/silences?filter=`: a filter matcher compares with the silence's matcher
/// values by name (`CheckSilenceMatchesFilterLabels`).
pub fn matches_filter(s: &Silence, filter: &[Matcher]) -> bool {
    let sms: HashMap<&str, &str> = s
        .matchers
        .iter()
        .map(|m| (m.name.as_str(), m.value.as_str()))
        .collect();
    filter.iter().all(|m| {
        let v = sms.get(m.name.as_str());
        let negative = matches!(m.kind, MatchType::NotEqual | MatchType::NotRegexp);
        if m.value.is_empty() && (v.is_some() == negative) {
            return true;
        }
        m.matches(v.copied().unwrap_or(""))
    })
}

#[cfg(test)]
mod tests;
