//! `/api/v1/rules` and `/api/v1/alerts`, in Prometheus 2.42's JSON.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use rules_engine::model::format_go_float_e;
use rules_engine::rules::Rule;
use rules_engine::rules::alerting::{Alert, AlertState};
use serde_json::{Value, json};

use super::error::{ApiError, success};
use super::params::Params;
use crate::app::AppState;

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

fn labels(l: impl IntoIterator<Item = (String, String)>) -> Value {
    Value::Object(l.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

fn alert_json(a: &Alert) -> Value {
    json!({
        "labels": labels(a.labels.iter().map(|l| (l.name.clone(), l.value.clone()))),
        "annotations": labels(a.annotations.iter().map(|l| (l.name.clone(), l.value.clone()))),
        "state": a.state.as_str(),
        "activeAt": rfc3339(a.active_at),
        "value": format_go_float_e(a.value),
    })
}

/// `GET /api/v1/rules[?type=alert|record]`.
pub async fn rules(
    State(state): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref(), &[]);
    let (want_alert, want_record) = match p.get("type") {
        None | Some("") => (true, true),
        Some("alert") => (true, false),
        Some("record") => (false, true),
        Some(other) => {
            return Err(ApiError::bad_data(format!(
                "invalid rule type {other:?}: use alert or record"
            )));
        }
    };
    let mut groups = Vec::new();
    for g in state.rules().iter() {
        let sg = g.lock();
        let mut rules = Vec::new();
        for (i, (rule, st)) in sg.group.spec.rules.iter().zip(&sg.group.states).enumerate() {
            let common = |v: &mut Value| {
                v["health"] = json!(st.health.as_str());
                v["lastError"] = json!(st.last_error.clone().unwrap_or_default());
                v["evaluationTime"] = json!(sg.rule_durations[i]);
                v["lastEvaluation"] = json!(
                    st.last_eval
                        .map(rfc3339)
                        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
                );
            };
            match rule {
                Rule::Alerting(a) if want_alert => {
                    let mut alerts: Vec<&Alert> = st.alerts.active_alerts().collect();
                    alerts.sort_by(|x, y| x.labels.cmp(&y.labels));
                    let rule_state = if alerts.iter().any(|x| x.state == AlertState::Firing) {
                        "firing"
                    } else if alerts.is_empty() {
                        "inactive"
                    } else {
                        "pending"
                    };
                    let mut v = json!({
                        "state": rule_state,
                        "name": a.alert,
                        "query": a.expr.to_string(),
                        "duration": a.for_ms as f64 / 1000.0,
                        "keepFiringFor": a.keep_firing_for_ms as f64 / 1000.0,
                        "labels": labels(a.labels.iter().map(|l| (l.name.clone(), l.value.clone()))),
                        "annotations": labels(a.annotations.iter().map(|l| (l.name.clone(), l.value.clone()))),
                        "alerts": alerts.into_iter().map(alert_json).collect::<Vec<_>>(),
                        "type": "alerting",
                    });
                    common(&mut v);
                    rules.push(v);
                }
                Rule::Recording(r) if want_record => {
                    let mut v = json!({
                        "name": r.record,
                        "query": r.expr.to_string(),
                        "labels": labels(r.labels.iter().map(|l| (l.name.clone(), l.value.clone()))),
                        "type": "recording",
                    });
                    common(&mut v);
                    rules.push(v);
                }
                _ => {}
            }
        }
        groups.push(json!({
            "name": sg.group.spec.name,
            "file": sg.group.spec.file,
            "rules": rules,
            "interval": sg.interval.as_secs_f64(),
            "limit": sg.group.spec.limit,
            "evaluationTime": sg.last_duration,
            "lastEvaluation": sg.last_eval.map(rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        }));
    }
    Ok(success(json!({ "groups": groups })))
}

/// `GET /api/v1/alerts`: every pending and firing alert.
pub async fn alerts(State(state): State<Arc<AppState>>) -> Response {
    let mut out = Vec::new();
    for g in state.rules().iter() {
        let sg = g.lock();
        for st in &sg.group.states {
            let mut alerts: Vec<&Alert> = st.alerts.active_alerts().collect();
            alerts.sort_by(|x, y| x.labels.cmp(&y.labels));
            out.extend(alerts.into_iter().map(alert_json));
        }
    }
    success(json!({ "alerts": out }))
}
