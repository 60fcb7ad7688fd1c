//! The text exposition format 0.0.4 (and OpenMetrics 1.0 text) parsed into [`Family`]s with
//! the semantics of Go's `expfmt.TextParser`, which Pushgateway 1.5 uses for every push that is
//! not delimited protobuf: samples of one family may be spread over the body, a summary's or
//! histogram's `_sum`, `_count` (and `_bucket`) lines join the declared family by label set,
//! a `# TYPE` after samples or a second `# HELP` is an error, families left without samples are
//! dropped, and every error names its line.
//!
//! Written by hand rather than with `prometheus-parse` because that crate ignores these rules
//! (it accepts a TYPE after samples, does not group histograms by label set, gives no line
//! numbers) and the push path is benchmarked: this parser borrows from the body until a value
//! is stored. OpenMetrics differs in a few places, handled when `openmetrics` is set: the body
//! ends with `# EOF`, a counter `x` exposes `x_total` (stored as family `x_total`, as a 0.0.4
//! exposition names it), `_created` series and exemplars are skipped, `# UNIT` is accepted, and
//! `info`/`stateset` families are stored as gauges.

use hashbrown::HashMap;

use super::family::{Family, Kind, Metric, Value};

/// A body that is not valid text exposition; says which line and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("text format parsing error in line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// How a sample line attaches to its family.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Value,
    Sum,
    Count,
    Bucket,
    /// An OpenMetrics `_created` line: skipped.
    Created,
}

struct Builder {
    name: String,
    help: Option<String>,
    kind: Option<Kind>,
    /// OpenMetrics counter: its samples carry `_total`.
    om_counter: bool,
    metrics: Vec<Metric>,
    /// Summary/histogram metric per label set (quantile and le excluded).
    by_labels: HashMap<Vec<(String, String)>, usize>,
}

/// Parses a whole body. `openmetrics` selects the OpenMetrics variant.
pub fn parse(body: &[u8], openmetrics: bool) -> Result<Vec<Family>, ParseError> {
    let mut p = Parser {
        families: Vec::new(),
        by_name: HashMap::new(),
        openmetrics,
    };
    let mut eof = false;
    for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
        let line = i + 1;
        if eof {
            if raw.is_empty() {
                continue;
            }
            return Err(err(line, "content after # EOF"));
        }
        if p.line(raw, line)? {
            eof = true;
        }
    }
    if openmetrics && !eof {
        return Err(ParseError {
            line: body.split(|b| *b == b'\n').count(),
            message: "OpenMetrics body does not end with # EOF".into(),
        });
    }
    Ok(p.finish())
}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

struct Parser {
    families: Vec<Builder>,
    by_name: HashMap<String, usize>,
    openmetrics: bool,
}

/// A byte cursor over one line.
struct Line<'a> {
    b: &'a [u8],
    pos: usize,
    no: usize,
}

impl<'a> Line<'a> {
    fn skip_blank(&mut self) {
        while self.pos < self.b.len() && matches!(self.b[self.pos], b' ' | b'\t') {
            self.pos += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }
    fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }
    /// Bytes up to the next blank or the end.
    fn token(&mut self) -> &'a [u8] {
        let start = self.pos;
        while self.pos < self.b.len() && !matches!(self.b[self.pos], b' ' | b'\t') {
            self.pos += 1;
        }
        &self.b[start..self.pos]
    }
    fn metric_name(&mut self) -> &'a [u8] {
        let start = self.pos;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphabetic()
                || c == b'_'
                || c == b':'
                || (self.pos > start && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.pos += 1;
        }
        &self.b[start..self.pos]
    }
    fn label_name(&mut self) -> &'a [u8] {
        let start = self.pos;
        while let Some(c) = self.peek() {
            let ok =
                c.is_ascii_alphabetic() || c == b'_' || (self.pos > start && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.pos += 1;
        }
        &self.b[start..self.pos]
    }
    fn utf8(&self, b: &'a [u8], what: &str) -> Result<&'a str, ParseError> {
        std::str::from_utf8(b).map_err(|_| err(self.no, format!("{what} is not valid UTF-8")))
    }
}

fn quoted(b: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(b))
}

impl Parser {
    /// Handles one line; true at an OpenMetrics `# EOF`.
    fn line(&mut self, raw: &[u8], no: usize) -> Result<bool, ParseError> {
        let mut l = Line { b: raw, pos: 0, no };
        l.skip_blank();
        match l.peek() {
            None => Ok(false),
            Some(b'#') => {
                l.pos += 1;
                self.comment(&mut l)
            }
            Some(_) => {
                self.sample(&mut l)?;
                Ok(false)
            }
        }
    }

    fn comment(&mut self, l: &mut Line<'_>) -> Result<bool, ParseError> {
        l.skip_blank();
        let word = l.token();
        match word {
            b"HELP" | b"TYPE" | b"UNIT" => {}
            b"EOF" if self.openmetrics => return Ok(true),
            _ => return Ok(false),
        }
        l.skip_blank();
        let name = l.metric_name();
        if name.is_empty() || !(l.at_end() || matches!(l.peek(), Some(b' ' | b'\t'))) {
            return Err(err(l.no, "invalid metric name in comment"));
        }
        let name = l.utf8(name, "metric name")?;
        l.skip_blank();
        match word {
            b"HELP" => {
                let text = help_text(l)?;
                let idx = self.family_for_declaration(name);
                let f = &mut self.families[idx];
                if f.help.is_some() {
                    return Err(err(
                        l.no,
                        format!("second HELP line for metric name {name:?}"),
                    ));
                }
                f.help = Some(text);
            }
            b"TYPE" => {
                let t = l.token();
                let t = l.utf8(t, "metric type")?.to_ascii_lowercase();
                let (kind, om_counter) = match (t.as_str(), self.openmetrics) {
                    ("counter", om) => (Kind::Counter, om),
                    ("gauge", _) => (Kind::Gauge, false),
                    ("summary", _) => (Kind::Summary, false),
                    ("histogram", _) => (Kind::Histogram, false),
                    ("untyped", false) | ("unknown", true) => (Kind::Untyped, false),
                    ("info", true) | ("stateset", true) => (Kind::Gauge, false),
                    _ => return Err(err(l.no, format!("unknown metric type {t:?}"))),
                };
                let name = if t == "info" {
                    format!("{name}_info")
                } else {
                    name.to_string()
                };
                let idx = self.family_for_declaration(&name);
                let f = &mut self.families[idx];
                if f.kind.is_some() || !f.metrics.is_empty() {
                    return Err(err(
                        l.no,
                        format!(
                            "second TYPE line for metric name {name:?}, or TYPE reported after samples"
                        ),
                    ));
                }
                f.kind = Some(kind);
                f.om_counter = om_counter;
            }
            _ => {} // UNIT: promgate keeps no units for pushed families.
        }
        Ok(false)
    }

    /// The family a HELP/TYPE line names (created when new).
    fn family_for_declaration(&mut self, name: &str) -> usize {
        if let Some(i) = self.by_name.get(name) {
            return *i;
        }
        self.new_family(name)
    }

    fn new_family(&mut self, name: &str) -> usize {
        let i = self.families.len();
        self.families.push(Builder {
            name: name.to_string(),
            help: None,
            kind: None,
            om_counter: false,
            metrics: Vec::new(),
            by_labels: HashMap::new(),
        });
        self.by_name.insert(name.to_string(), i);
        i
    }

    /// The family a sample name belongs to, and which part of it the sample is.
    fn family_for_sample(&mut self, name: &str) -> (usize, Part) {
        if let Some(&i) = self.by_name.get(name) {
            let f = &self.families[i];
            if !f.om_counter {
                return (i, Part::Value);
            }
        }
        let suffixes: [(&str, Part); 5] = [
            ("_sum", Part::Sum),
            ("_count", Part::Count),
            ("_bucket", Part::Bucket),
            ("_total", Part::Value),
            ("_created", Part::Created),
        ];
        for (suffix, part) in suffixes {
            let Some(base) = name.strip_suffix(suffix) else {
                continue;
            };
            let Some(&i) = self.by_name.get(base) else {
                continue;
            };
            let f = &self.families[i];
            let fits = match (f.kind, part) {
                (Some(Kind::Summary), Part::Sum | Part::Count) => true,
                (Some(Kind::Histogram), Part::Sum | Part::Count | Part::Bucket) => true,
                (Some(Kind::Summary | Kind::Histogram), Part::Created) => self.openmetrics,
                (Some(Kind::Counter), Part::Value | Part::Created) => f.om_counter,
                _ => false,
            };
            if fits {
                return (i, part);
            }
        }
        match self.by_name.get(name) {
            Some(&i) => (i, Part::Value),
            None => (self.new_family(name), Part::Value),
        }
    }

    fn sample(&mut self, l: &mut Line<'_>) -> Result<(), ParseError> {
        let name = l.metric_name();
        if name.is_empty() {
            return Err(err(
                l.no,
                format!("invalid metric name, found {}", quoted(l.token())),
            ));
        }
        let name = l.utf8(name, "metric name")?;
        l.skip_blank();
        let mut labels: Vec<(String, String)> = Vec::new();
        if l.peek() == Some(b'{') {
            l.pos += 1;
            read_labels(l, name, &mut labels)?;
            l.skip_blank();
        }
        let v = l.token();
        if v.is_empty() {
            return Err(err(
                l.no,
                format!("expected float as value for metric {name:?}, got nothing"),
            ));
        }
        let value = parse_float(v)
            .ok_or_else(|| err(l.no, format!("expected float as value, got {}", quoted(v))))?;
        l.skip_blank();
        let mut timestamp = None;
        if !l.at_end() && l.peek() != Some(b'#') {
            let t = l.token();
            timestamp = Some(if self.openmetrics {
                parse_float(t)
                    .filter(|f| f.is_finite())
                    .map(|f| (f * 1000.0) as i64)
                    .ok_or_else(|| err(l.no, format!("expected timestamp, got {}", quoted(t))))?
            } else {
                std::str::from_utf8(t)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| {
                        err(
                            l.no,
                            format!("expected integer as timestamp, got {}", quoted(t)),
                        )
                    })?
            });
            l.skip_blank();
        }
        if !l.at_end() {
            // OpenMetrics exemplars (` # {...} v`) are skipped.
            if !(self.openmetrics && l.peek() == Some(b'#')) {
                return Err(err(
                    l.no,
                    format!("spurious string after timestamp: {}", quoted(l.token())),
                ));
            }
        }
        let (idx, part) = self.family_for_sample(name);
        if part == Part::Created {
            return Ok(());
        }
        let no = l.no;
        let f = &mut self.families[idx];
        match f.kind {
            Some(Kind::Summary) | Some(Kind::Histogram) => {
                let hist = f.kind == Some(Kind::Histogram);
                let special = if hist { "le" } else { "quantile" };
                let mut bound = None;
                if let Some(pos) = labels.iter().position(|(n, _)| n == special) {
                    let (_, v) = labels.remove(pos);
                    bound = Some(parse_float(v.as_bytes()).ok_or_else(|| {
                        err(
                            no,
                            format!("expected float as value for '{special}' label, got {v:?}"),
                        )
                    })?);
                }
                // Lines of one metric usually follow each other: check the last one first.
                let last = f.metrics.len().checked_sub(1);
                let slot = match last.filter(|&i| f.metrics[i].labels == labels) {
                    Some(i) => i,
                    None => match f.by_labels.get(&labels) {
                        Some(&s) => s,
                        None => {
                            let s = f.metrics.len();
                            f.by_labels.insert(labels.clone(), s);
                            f.metrics.push(Metric {
                                labels,
                                value: if hist {
                                    Value::Histogram {
                                        count: 0,
                                        sum: 0.0,
                                        buckets: Vec::new(),
                                    }
                                } else {
                                    Value::Summary {
                                        count: 0,
                                        sum: 0.0,
                                        quantiles: Vec::new(),
                                    }
                                },
                                timestamp_ms: None,
                            });
                            s
                        }
                    },
                };
                let m = &mut f.metrics[slot];
                if timestamp.is_some() {
                    m.timestamp_ms = timestamp;
                }
                match (&mut m.value, part) {
                    (
                        Value::Summary { count, .. } | Value::Histogram { count, .. },
                        Part::Count,
                    ) => {
                        *count = value as u64;
                    }
                    (Value::Summary { sum, .. } | Value::Histogram { sum, .. }, Part::Sum) => {
                        *sum = value;
                    }
                    (Value::Summary { quantiles, .. }, Part::Value) => {
                        if let Some(q) = bound {
                            quantiles.push((q, value));
                        }
                    }
                    (Value::Histogram { buckets, .. }, Part::Bucket) => {
                        if let Some(le) = bound {
                            buckets.push((le, value as u64));
                        }
                    }
                    // A histogram's base name without a suffix: Go's parser ignores it too.
                    _ => {}
                }
            }
            _ => {
                f.metrics.push(Metric {
                    labels,
                    value: Value::Simple(value),
                    timestamp_ms: timestamp,
                });
            }
        }
        Ok(())
    }

    fn finish(self) -> Vec<Family> {
        self.families
            .into_iter()
            .filter(|f| !f.metrics.is_empty())
            .map(|f| Family {
                name: if f.om_counter {
                    format!("{}_total", f.name)
                } else {
                    f.name
                },
                help: f.help,
                kind: f.kind.unwrap_or(Kind::Untyped),
                metrics: f.metrics,
            })
            .collect()
    }
}

/// Reads `name="value",...}` after the `{`.
fn read_labels(
    l: &mut Line<'_>,
    metric: &str,
    labels: &mut Vec<(String, String)>,
) -> Result<(), ParseError> {
    loop {
        l.skip_blank();
        if l.peek() == Some(b'}') {
            l.pos += 1;
            return Ok(());
        }
        let name = l.label_name();
        if name.is_empty() {
            return Err(err(
                l.no,
                format!("invalid label name for metric {metric:?}"),
            ));
        }
        let name = l.utf8(name, "label name")?;
        if name == "__name__" {
            return Err(err(l.no, "label name \"__name__\" is reserved"));
        }
        l.skip_blank();
        if l.peek() != Some(b'=') {
            return Err(err(
                l.no,
                format!(
                    "expected '=' after label name, found {}",
                    quoted(&l.b[l.pos..(l.pos + 1).min(l.b.len())])
                ),
            ));
        }
        l.pos += 1;
        l.skip_blank();
        if l.peek() != Some(b'"') {
            return Err(err(
                l.no,
                format!(
                    "expected '\"' at start of label value, found {}",
                    quoted(&l.b[l.pos..(l.pos + 1).min(l.b.len())])
                ),
            ));
        }
        l.pos += 1;
        let mut value = Vec::new();
        loop {
            match l.peek() {
                None => {
                    return Err(err(
                        l.no,
                        format!(
                            "label value of {name:?} not terminated before the end of the line"
                        ),
                    ));
                }
                Some(b'"') => {
                    l.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    l.pos += 1;
                    match l.peek() {
                        Some(b'\\') => value.push(b'\\'),
                        Some(b'"') => value.push(b'"'),
                        Some(b'n') => value.push(b'\n'),
                        other => {
                            return Err(err(
                                l.no,
                                format!(
                                    "invalid escape sequence '\\{}' in label value of {name:?}",
                                    other.map_or(String::new(), |c| (c as char).to_string())
                                ),
                            ));
                        }
                    }
                    l.pos += 1;
                }
                Some(c) => {
                    value.push(c);
                    l.pos += 1;
                }
            }
        }
        let value = String::from_utf8(value).map_err(|_| {
            err(
                l.no,
                format!("the value of label {name:?} is not valid UTF-8"),
            )
        })?;
        if labels.iter().any(|(n, _)| n == name) {
            return Err(err(
                l.no,
                format!("duplicate label name {name:?} for metric {metric:?}"),
            ));
        }
        labels.push((name.to_string(), value));
        l.skip_blank();
        match l.peek() {
            Some(b',') => l.pos += 1,
            Some(b'}') => {
                l.pos += 1;
                return Ok(());
            }
            _ => {
                let (_, v) = labels.last().cloned().unwrap_or_default();
                return Err(err(l.no, format!("unexpected end of label value {v:?}")));
            }
        }
    }
}

/// The rest of a HELP line with `\\` and `\n` unescaped.
fn help_text(l: &mut Line<'_>) -> Result<String, ParseError> {
    let rest = &l.b[l.pos..];
    let mut out = Vec::with_capacity(rest.len());
    let mut i = 0;
    while i < rest.len() {
        if rest[i] == b'\\' {
            match rest.get(i + 1) {
                Some(b'\\') => out.push(b'\\'),
                Some(b'n') => out.push(b'\n'),
                other => {
                    return Err(err(
                        l.no,
                        format!(
                            "invalid escape sequence '\\{}' in HELP text",
                            other.map_or(String::new(), |c| (*c as char).to_string())
                        ),
                    ));
                }
            }
            i += 2;
        } else {
            out.push(rest[i]);
            i += 1;
        }
    }
    l.pos = l.b.len();
    String::from_utf8(out).map_err(|_| err(l.no, "HELP text is not valid UTF-8"))
}

/// Go's `strconv.ParseFloat` for the forms exposition uses (`NaN`, `+Inf`, `-Inf`, decimals and
/// exponents).
fn parse_float(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    let lower = s.to_ascii_lowercase();
    match lower.trim_start_matches(['+', '-']) {
        "inf" | "infinity" => {
            return Some(if s.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    // Out of range (`1e400`) is an error, as for Go's ParseFloat.
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests;
