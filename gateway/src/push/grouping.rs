//! The grouping key in a push URL: `/metrics/job/<job>{/<label>/<value>}`, where a name ending
//! in `@base64` marks its value as URL-safe base64 (RFC 4648, padding optional, `=` alone for
//! the empty value), exactly as Pushgateway 1.5 splits and checks it.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Grouping labels, sorted by name; always holds `job`.
pub type GroupingKey = Vec<(String, String)>;

const BASE64_SUFFIX: &str = "@base64";

/// Go's `base64.RawURLEncoding` after trimming `=`: no padding, lenient trailing bits.
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// A push path that names no valid group (answered 400 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PathError(pub String);

impl PathError {
    /// Not a push path at all (Pushgateway's router answers 404 there).
    pub fn is_not_found(&self) -> bool {
        self.0.starts_with("404 ")
    }
}

fn decode_base64(s: &str) -> Result<String, String> {
    let bytes = URL_SAFE_LENIENT
        .decode(s.trim_end_matches('='))
        .map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| "decoded value is not valid UTF-8".into())
}

/// Parses what follows `/metrics/` in the path: `job[@base64]/<job>` then label pairs.
/// `rest` is the (percent-decoded) path after `/metrics/`.
pub fn parse(rest: &str) -> Result<GroupingKey, PathError> {
    let (job_part, labels) = match rest.strip_prefix("job/") {
        Some(r) => (false, r),
        None => match rest.strip_prefix("job@base64/") {
            Some(r) => (true, r),
            None => {
                return Err(PathError(format!(
                    "404 page not found: /metrics/{rest} is not a push path (expected /metrics/job/<job>{{/<label>/<value>}})"
                )));
            }
        },
    };
    let (job, tail) = match labels.find('/') {
        Some(i) => (&labels[..i], &labels[i..]),
        None => (labels, ""),
    };
    let job = if job_part {
        decode_base64(job)
            .map_err(|e| PathError(format!("invalid base64 encoding in job name {job:?}: {e}")))?
    } else {
        job.to_string()
    };
    let mut key: GroupingKey = Vec::new();
    if tail.len() > 1 {
        let parts: Vec<&str> = tail[1..].split('/').collect();
        if !parts.len().is_multiple_of(2) {
            return Err(PathError(format!(
                "odd number of components in label string {tail:?}"
            )));
        }
        for pair in parts.chunks(2) {
            let (name, value) = (pair[0], pair[1]);
            let trimmed = name.strip_suffix(BASE64_SUFFIX).unwrap_or(name);
            if !rules_engine::model::is_valid_label_name(trimmed) || trimmed.starts_with("__") {
                return Err(PathError(format!("improper label name {trimmed:?}")));
            }
            let value = if trimmed.len() == name.len() {
                value.to_string()
            } else {
                decode_base64(value).map_err(|e| {
                    PathError(format!(
                        "invalid base64 encoding for label {trimmed}={value:?}: {e}"
                    ))
                })?
            };
            match key.iter_mut().find(|(n, _)| n == trimmed) {
                Some(slot) => slot.1 = value,
                None => key.push((trimmed.to_string(), value)),
            }
        }
    }
    if job.is_empty() {
        return Err(PathError("job name is required".into()));
    }
    match key.iter_mut().find(|(n, _)| n == "job") {
        Some(slot) => slot.1 = job,
        None => key.push(("job".into(), job)),
    }
    key.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(pairs: &[(&str, &str)]) -> GroupingKey {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn plain_and_base64() {
        assert_eq!(parse("job/j1").unwrap(), k(&[("job", "j1")]));
        assert_eq!(
            parse("job/j1/instance/i1").unwrap(),
            k(&[("instance", "i1"), ("job", "j1")])
        );
        assert_eq!(
            parse("job/j2/x@base64/=").unwrap(),
            k(&[("job", "j2"), ("x", "")])
        );
        assert_eq!(
            parse("job@base64/YWJj/y@base64/L3Y").unwrap(),
            k(&[("job", "abc"), ("y", "/v")])
        );
        // A `job` label in the path is overridden by the job segment, as in Pushgateway.
        assert_eq!(parse("job/a/job/b").unwrap(), k(&[("job", "a")]));
    }

    #[test]
    fn bad_paths() {
        assert!(
            parse("job/")
                .unwrap_err()
                .0
                .contains("job name is required")
        );
        assert!(parse("job/j/a").unwrap_err().0.contains("odd number"));
        assert!(
            parse("job/j/__x/1")
                .unwrap_err()
                .0
                .contains("improper label name")
        );
        assert!(
            parse("job/j/1a/1")
                .unwrap_err()
                .0
                .contains("improper label name")
        );
        assert!(parse("job@base64/!!").unwrap_err().0.contains("base64"));
        assert!(parse("foo/bar").is_err());
    }
}
