//! Alertmanager 0.25's API v2 where promgate serves it: `POST|GET /api/v2/alerts`,
//! `GET /api/v2/alerts/groups`, `GET|POST /api/v2/silences`, `GET|DELETE /api/v2/silence/{id}`.
//! Status codes and error texts are the real Alertmanager's (checked against it): schema
//! errors 422 with `{"code":6xx,"message":...}`, validation errors 400 with a JSON string.

// Helpers return a ready `Response` as their error, as handlers do; boxing it buys nothing here.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Alerting;
use super::alert::{Alert, LabelSet};
use super::dispatch::AlertView;
use super::matcher::{Matcher, is_label_name, parse_matcher};
use super::silence::{Silence, SilenceError, SilenceMatcher, SilenceState, matches_filter};
use crate::app::AppState;

fn json_response(code: StatusCode, v: &Value) -> Response {
    let mut body = serde_json::to_vec(v).unwrap_or_default();
    body.push(b'\n');
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A 400/404/500 whose body is a JSON string, as Alertmanager's.
fn text_error(code: StatusCode, msg: &str) -> Response {
    json_response(code, &Value::String(msg.to_string()))
}

fn schema_error(code: u16, msg: String) -> Response {
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({"code": code, "message": msg}),
    )
}

fn unavailable() -> Response {
    text_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "alert routing is not configured (set alertmanager_config or alertmanager in promgate's configuration)",
    )
}

/// strfmt.DateTime's format: RFC 3339 with milliseconds.
pub fn api_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn alerting(state: &AppState) -> Result<Arc<Alerting>, Response> {
    state
        .alerting()
        .ok_or_else(|| text_error(StatusCode::SERVICE_UNAVAILABLE, "promgate is starting"))
}

fn parse_time(v: &Value, field: &str, i: usize) -> Result<Option<DateTime<Utc>>, Response> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| {
                let t = t.with_timezone(&Utc);
                // Go's zero time means "not set".
                (t.timestamp() > -62135596800).then_some(t)
            })
            .map_err(|_| {
                schema_error(
                    601,
                    format!("{i}.{field} in body must be of type date-time: {s:?}"),
                )
            }),
        Some(_) => Err(schema_error(
            601,
            format!("{i}.{field} in body must be of type string"),
        )),
    }
}

fn string_map(v: Option<&Value>, field: &str, i: usize) -> Result<LabelSet, Response> {
    match v {
        None | Some(Value::Null) => Ok(LabelSet::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(schema_error(
                    601,
                    format!("{i}.{field}.{k} in body must be of type string"),
                )),
            })
            .collect(),
        Some(_) => Err(schema_error(
            601,
            format!("{i}.{field} in body must be of type object"),
        )),
    }
}

/// `types.Alert.Validate`.
fn validate(a: &Alert) -> Result<(), String> {
    if a.ends_at < a.starts_at {
        return Err("start time must be before end time".into());
    }
    if let Some(k) = a.labels.keys().find(|k| !is_label_name(k)) {
        return Err(format!("invalid label set: invalid name {k:?}"));
    }
    if a.labels.is_empty() {
        return Err("at least one label pair required".into());
    }
    if let Some(k) = a.annotations.keys().find(|k| !is_label_name(k)) {
        return Err(format!("invalid annotations: invalid name {k:?}"));
    }
    Ok(())
}

/// `POST /api/v2/alerts`.
pub async fn post_alerts(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let al = match alerting(&state) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(dispatcher) = al.dispatcher.clone() else {
        return unavailable();
    };
    let items: Vec<Value> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"code": 400, "message": format!("parsing alerts body from \"\" failed, because {e}")}),
            );
        }
    };
    let now = al.clock.now();
    let timeout = chrono::Duration::from_std(al.resolve_timeout).unwrap_or_default();
    let mut valid = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if item.get("labels").is_none_or(Value::is_null) {
            return schema_error(602, format!("{i}.labels in body is required"));
        }
        let mut labels = match string_map(item.get("labels"), "labels", i) {
            Ok(l) => l,
            Err(r) => return r,
        };
        // `removeEmptyLabels`.
        labels.retain(|_, v| !v.is_empty());
        let annotations = match string_map(item.get("annotations"), "annotations", i) {
            Ok(l) => l,
            Err(r) => return r,
        };
        let (starts, ends) = match (
            parse_time(item, "startsAt", i),
            parse_time(item, "endsAt", i),
        ) {
            (Ok(s), Ok(e)) => (s, e),
            (Err(r), _) | (_, Err(r)) => return r,
        };
        let generator_url = item
            .get("generatorURL")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let starts_at = starts.or(ends).unwrap_or(now);
        let (ends_at, timed_out) = match ends {
            Some(e) => (e, false),
            None => (now + timeout, true),
        };
        let a = Alert {
            labels,
            annotations,
            starts_at,
            ends_at,
            generator_url,
            updated_at: now,
            timeout: timed_out,
        };
        match validate(&a) {
            Ok(()) => valid.push(a),
            Err(e) => errors.push(e),
        }
    }
    al.metrics.received("api", valid.len());
    al.metrics.invalid(errors.len());
    dispatcher.put(valid);
    if !errors.is_empty() {
        return text_error(StatusCode::BAD_REQUEST, &errors.join("; "));
    }
    StatusCode::OK.into_response()
}

#[derive(Default)]
struct AlertQuery {
    active: bool,
    silenced: bool,
    inhibited: bool,
    filter: Vec<Matcher>,
    receiver: Option<regex::Regex>,
}

fn alert_query(raw: Option<String>) -> Result<AlertQuery, Response> {
    let mut q = AlertQuery {
        active: true,
        silenced: true,
        inhibited: true,
        ..Default::default()
    };
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "active" => q.active = v != "false",
            "silenced" => q.silenced = v != "false",
            "inhibited" => q.inhibited = v != "false",
            "filter" => match parse_matcher(&v) {
                Ok(m) => q.filter.push(m),
                Err(e) => return Err(text_error(StatusCode::BAD_REQUEST, &e.to_string())),
            },
            "receiver" => match regex::Regex::new(&format!("^(?:{v})$")) {
                Ok(r) => q.receiver = Some(r),
                Err(e) => return Err(text_error(StatusCode::BAD_REQUEST, &e.to_string())),
            },
            _ => {}
        }
    }
    Ok(q)
}

fn gettable(a: &Alert, receivers: &[String], silenced: &[String], inhibited: &[String]) -> Value {
    let state = if silenced.is_empty() && inhibited.is_empty() {
        "active"
    } else {
        "suppressed"
    };
    let mut v = json!({
        "annotations": a.annotations,
        "endsAt": api_time(&a.ends_at),
        "fingerprint": format!("{:016x}", a.fingerprint()),
        "receivers": receivers.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
        "startsAt": api_time(&a.starts_at),
        "status": {"inhibitedBy": inhibited, "silencedBy": silenced, "state": state},
        "updatedAt": api_time(&a.updated_at),
        "labels": a.labels,
    });
    if !a.generator_url.is_empty() {
        v["generatorURL"] = Value::String(a.generator_url.clone());
    }
    v
}

/// `GET /api/v2/alerts`: unresolved alerts, filtered as Alertmanager filters them.
pub async fn get_alerts(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Response {
    let al = match alerting(&state) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(d) = al.dispatcher.clone() else {
        return unavailable();
    };
    let q = match alert_query(raw) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let now = al.clock.now();
    let mut out: Vec<(Alert, Value)> = d
        .alerts()
        .into_iter()
        .filter(|v| {
            let (sil, inh) = (&v.silenced_by, &v.inhibited_by);
            !v.alert.resolved_at(now)
                && q.filter.iter().all(|m| m.matches_labels(&v.alert.labels))
                && q.receiver
                    .as_ref()
                    .is_none_or(|re| v.receivers.iter().any(|r| re.is_match(r)))
                && (q.silenced || sil.is_empty())
                && (q.inhibited || inh.is_empty())
                && (q.active || !(sil.is_empty() && inh.is_empty()))
        })
        .map(|v| {
            let json = gettable(&v.alert, &v.receivers, &v.silenced_by, &v.inhibited_by);
            (v.alert, json)
        })
        .collect();
    out.sort_by_key(|(a, _)| a.fingerprint());
    json_response(
        StatusCode::OK,
        &Value::Array(out.into_iter().map(|(_, v)| v).collect()),
    )
}

/// `GET /api/v2/alerts/groups`.
pub async fn get_groups(State(state): State<Arc<AppState>>) -> Response {
    let al = match alerting(&state) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(d) = al.dispatcher.clone() else {
        return unavailable();
    };
    let now = al.clock.now();
    let views: BTreeMap<u64, AlertView> = d
        .alerts()
        .into_iter()
        .map(|v| (v.alert.fingerprint(), v))
        .collect();
    let mut groups: Vec<Value> = d
        .groups()
        .into_iter()
        .map(|(labels, receiver, alerts)| {
            let alerts: Vec<Value> = alerts
                .iter()
                .filter(|a| !a.resolved_at(now))
                .map(|a| match views.get(&a.fingerprint()) {
                    Some(v) => gettable(a, &v.receivers, &v.silenced_by, &v.inhibited_by),
                    None => gettable(a, &[], &[], &[]),
                })
                .collect();
            json!({"alerts": alerts, "labels": labels, "receiver": {"name": receiver}})
        })
        .filter(|g| g["alerts"].as_array().is_some_and(|a| !a.is_empty()))
        .collect();
    groups.sort_by_key(|g| g["labels"].to_string());
    json_response(StatusCode::OK, &Value::Array(groups))
}

fn gettable_silence(s: &Silence, now: DateTime<Utc>) -> Value {
    json!({
        "id": s.id,
        "status": {"state": s.state(now)},
        "updatedAt": api_time(&s.updated_at),
        "comment": s.comment,
        "createdBy": s.created_by,
        "endsAt": api_time(&s.ends_at),
        "matchers": s.matchers.iter().map(|m| json!({
            "isEqual": m.is_equal, "isRegex": m.is_regex, "name": m.name, "value": m.value
        })).collect::<Vec<_>>(),
        "startsAt": api_time(&s.starts_at),
    })
}

/// `GET /api/v2/silences`: active first (by end), then pending (by start), then expired
/// (latest end first), as `SortSilences`.
pub async fn get_silences(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Response {
    let al = match alerting(&state) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let mut filter = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if k == "filter" {
            match parse_matcher(&v) {
                Ok(m) => filter.push(m),
                Err(e) => return text_error(StatusCode::BAD_REQUEST, &e.to_string()),
            }
        }
    }
    let now = al.clock.now();
    let sils = al.silences.lock();
    let mut list: Vec<&Silence> = sils.all().filter(|s| matches_filter(s, &filter)).collect();
    let rank = |s: &Silence| match s.state(now) {
        SilenceState::Active => 0,
        SilenceState::Pending => 1,
        SilenceState::Expired => 2,
    };
    list.sort_by(|a, b| {
        rank(a).cmp(&rank(b)).then_with(|| match a.state(now) {
            SilenceState::Active => a.ends_at.cmp(&b.ends_at),
            SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
            SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
        })
    });
    let out: Vec<Value> = list.iter().map(|s| gettable_silence(s, now)).collect();
    json_response(StatusCode::OK, &Value::Array(out))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableSilence {
    #[serde(default)]
    id: String,
    matchers: Option<Vec<SilenceMatcher>>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    created_by: Option<String>,
    comment: Option<String>,
}

async fn persist(al: &Alerting, written: Vec<Silence>) {
    let db = al.db.clone();
    match tokio::task::spawn_blocking(move || db.save_silences(&written, &[])).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "Saving silences failed."),
        Err(e) => tracing::error!(error = %e, "Saving silences failed."),
    }
}

/// `POST /api/v2/silences`: create, or update when `id` is given.
pub async fn post_silence(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let al = match alerting(&state) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let p: PostableSilence = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"code": 400, "message": format!("parsing silence body from \"\" failed, because {e}")}),
            );
        }
    };
    let Some(matchers) = p.matchers else {
        return schema_error(602, "matchers in body is required".into());
    };
    if matchers.is_empty() {
        return schema_error(612, "matchers in body should have at least 1 items".into());
    }
    let (Some(starts_at), Some(ends_at)) = (p.starts_at, p.ends_at) else {
        let f = if p.starts_at.is_none() {
            "startsAt"
        } else {
            "endsAt"
        };
        return schema_error(602, format!("{f} in body is required"));
    };
    let (Some(created_by), Some(comment)) = (p.created_by, p.comment) else {
        return schema_error(602, "createdBy in body is required".into());
    };
    let now = al.clock.now();
    if starts_at >= ends_at {
        return text_error(
            StatusCode::BAD_REQUEST,
            "Failed to create silence: start time must be before end time",
        );
    }
    if ends_at < now {
        return text_error(
            StatusCode::BAD_REQUEST,
            "Failed to create silence: end time can't be in the past",
        );
    }
    let sil = Silence {
        id: p.id,
        matchers,
        starts_at,
        ends_at,
        updated_at: now,
        created_by,
        comment,
    };
    let result = al.silences.lock().set(sil, now);
    match result {
        Ok(written) => {
            let id = written.last().map(|s| s.id.clone()).unwrap_or_default();
            persist(&al, written).await;
            json_response(StatusCode::OK, &json!({"silenceID": id}))
        }
        Err(SilenceError::NotFound) => text_error(StatusCode::NOT_FOUND, "silence not found"),
        Err(SilenceError::Invalid(m)) => {
            text_error(StatusCode::BAD_REQUEST, &format!("silence invalid: {m}"))
        }
    }
}

fn valid_uuid(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `GET /api/v2/silence/{id}`.
pub async fn get_silence(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let al = match alerting(&state) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !valid_uuid(&id) {
        return schema_error(
            601,
            format!("silenceID in path must be of type uuid: {id:?}"),
        );
    }
    let now = al.clock.now();
    match al.silences.lock().get(&id) {
        Some(s) => json_response(StatusCode::OK, &gettable_silence(s, now)),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `DELETE /api/v2/silence/{id}`: expires it.
pub async fn delete_silence(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    let al = match alerting(&state) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !valid_uuid(&id) {
        return schema_error(
            601,
            format!("silenceID in path must be of type uuid: {id:?}"),
        );
    }
    let now = al.clock.now();
    let result = al.silences.lock().expire(&id, now);
    match result {
        Ok(written) => {
            persist(&al, written).await;
            StatusCode::OK.into_response()
        }
        // Alertmanager 0.25 answers 500 here.
        Err(e) => text_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
