//! Request parameters as the Prometheus API takes them: repeated `match[]`, times as RFC 3339
//! or Unix seconds, from the query string or a POST form.

use promql_parser::label::Matcher;
use promql_parser::parser::{self, Expr};

use super::error::ApiError;

/// All parameters of a request, in order (query string first, then form body).
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(query: Option<&str>, form: &[u8]) -> Self {
        let mut v: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        v.extend(form_urlencoded::parse(form).into_owned());
        Self(v)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A time parameter in milliseconds, or `default` when absent.
    pub fn time_ms(&self, key: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(default),
            Some(v) => parse_time_ms(v).ok_or_else(|| {
                ApiError::bad_data(format!(
                    "invalid parameter {key:?}: cannot parse {v:?} to a valid timestamp"
                ))
            }),
        }
    }

    /// The `match[]` selectors, each a list of matchers; at least one is required.
    pub fn selectors(&self) -> Result<Vec<Vec<Matcher>>, ApiError> {
        let sels: Vec<Vec<Matcher>> = self
            .all("match[]")
            .map(parse_selector)
            .collect::<Result<_, _>>()?;
        if sels.is_empty() {
            return Err(ApiError::bad_data("no match[] parameter provided"));
        }
        Ok(sels)
    }
}

/// Parses RFC 3339 or (fractional) Unix seconds, as Prometheus's `parseTime`.
pub fn parse_time_ms(v: &str) -> Option<i64> {
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() {
            return Some((secs * 1000.0).round() as i64);
        }
        return None;
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// Parses a series selector (`up{job="x"}`) into matchers, the metric name included.
pub fn parse_selector(s: &str) -> Result<Vec<Matcher>, ApiError> {
    let expr = parser::parse(s)
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {e}")))?;
    match expr {
        Expr::VectorSelector(vs) => {
            let mut ms: Vec<Matcher> = vs.matchers.matchers;
            if let Some(name) = vs.name {
                ms.push(Matcher::new(
                    promql_parser::label::MatchOp::Equal,
                    rules_engine::model::METRIC_NAME,
                    &name,
                ));
            }
            if ms.iter().all(|m| m.is_match("")) {
                return Err(ApiError::bad_data(format!(
                    "invalid parameter \"match[]\": {s:?} matches the empty label set: at least one matcher must not match the empty string"
                )));
            }
            Ok(ms)
        }
        _ => Err(ApiError::bad_data(format!(
            "invalid parameter \"match[]\": {s:?} is not a series selector"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_selectors() {
        assert_eq!(parse_time_ms("1.5"), Some(1500));
        assert_eq!(
            parse_time_ms("2026-01-01T00:00:00Z"),
            Some(1_767_225_600_000)
        );
        assert_eq!(parse_time_ms("soon"), None);
        assert_eq!(parse_selector("up{job=\"a\"}").unwrap().len(), 2);
        assert!(parse_selector("{job=~\".*\"}").is_err());
        assert!(parse_selector("rate(x[5m])").is_err());
        let p = Params::parse(Some("match[]=a&match[]=b&start=1"), b"end=2");
        assert_eq!(p.all("match[]").collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(p.time_ms("end", 0).unwrap(), 2000);
    }
}
