//! Alert label and annotation templates: a small subset of Go's `text/template` as Prometheus
//! uses it (`template/template.go@v2.42.0`): text with `{{ ... }}` actions (`{{-`/`-}}` trim
//! whitespace) whose pipeline is one of `$labels.<name>` / `.Labels.<name>`, `$value` /
//! `.Value`, `$externalLabels.<name>` / `.ExternalLabels.<name>`, `$externalURL` /
//! `.ExternalURL`, optionally piped into or wrapped by `humanize`. Anything else expands to
//! Prometheus's `<error expanding template: ...>` text, so an unsupported template is visible
//! rather than silently wrong.

use crate::model::Labels;
use crate::promql::functions::go_fmt_v;

/// What a template can refer to.
pub struct TemplateData<'a> {
    pub labels: &'a Labels,
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
    pub value: f64,
}

/// Expands `text`; on an unsupported construct returns Prometheus's error text.
pub fn expand(text: &str, name: &str, data: &TemplateData<'_>) -> String {
    match try_expand(text, data) {
        Ok(s) => s,
        Err(e) => format!("<error expanding template: template: __alert_{name}:1: {e}>"),
    }
}

fn try_expand(text: &str, data: &TemplateData<'_>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let mut lit = &rest[..open];
        let mut action = &rest[open + 2..];
        if action.starts_with("- ") || action.starts_with("-\t") || action.starts_with("-\n") {
            lit = lit.trim_end();
            action = &action[1..];
        }
        out.push_str(lit);
        let close = action
            .find("}}")
            .ok_or_else(|| "unclosed action".to_string())?;
        let mut inner = &action[..close];
        let mut after = &action[close + 2..];
        if inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-") {
            inner = &inner[..inner.len() - 1];
            after = after.trim_start();
        }
        out.push_str(&pipeline(inner.trim(), data)?);
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

enum Val {
    Str(String),
    Num(f64),
}

impl Val {
    fn render(self) -> String {
        match self {
            Val::Str(s) => s,
            Val::Num(f) => go_fmt_v(f),
        }
    }
}

fn pipeline(p: &str, data: &TemplateData<'_>) -> Result<String, String> {
    if p.starts_with("/*") && p.ends_with("*/") {
        return Ok(String::new());
    }
    let stages: Vec<&str> = p.split('|').map(str::trim).collect();
    let mut v: Option<Val> = None;
    for st in stages {
        if v.is_none() && st.len() >= 2 && st.starts_with('"') && st.ends_with('"') {
            v = Some(operand(st, data)?);
            continue;
        }
        let words: Vec<&str> = st.split_whitespace().collect();
        v = Some(match words.as_slice() {
            [x] if v.is_none() => operand(x, data)?,
            ["humanize", x] if v.is_none() => humanize(operand(x, data)?)?,
            ["humanize"] => humanize(v.take().ok_or("missing operand")?)?,
            _ => return Err(format!("unsupported template action {p:?}")),
        });
    }
    Ok(v.map(Val::render).unwrap_or_default())
}

fn operand(x: &str, data: &TemplateData<'_>) -> Result<Val, String> {
    let field = |prefix: &str| x.strip_prefix(prefix).filter(|n| !n.is_empty());
    if let Some(n) = field("$labels.").or_else(|| field(".Labels.")) {
        return Ok(Val::Str(data.labels.get(n).unwrap_or("").to_string()));
    }
    if let Some(n) = field("$externalLabels.").or_else(|| field(".ExternalLabels.")) {
        return Ok(Val::Str(
            data.external_labels.get(n).unwrap_or("").to_string(),
        ));
    }
    match x {
        "$value" | ".Value" => Ok(Val::Num(data.value)),
        "$externalURL" | ".ExternalURL" => Ok(Val::Str(data.external_url.to_string())),
        _ if x.starts_with('"') && x.ends_with('"') && x.len() >= 2 => {
            Ok(Val::Str(x[1..x.len() - 1].to_string()))
        }
        _ => x
            .parse::<f64>()
            .map(Val::Num)
            .map_err(|_| format!("unsupported operand {x:?}")),
    }
}

/// Prometheus's `humanize`: SI prefixes, 4 significant digits.
fn humanize(v: Val) -> Result<Val, String> {
    let f = match v {
        Val::Num(f) => f,
        Val::Str(s) => s.parse::<f64>().map_err(|e| e.to_string())?,
    };
    if f == 0.0 || f.is_nan() || f.is_infinite() {
        return Ok(Val::Str(format!("{:.4}", go_fmt_v(f))));
    }
    let big = ["", "k", "M", "G", "T", "P", "E", "Z", "Y"];
    let small = ["", "m", "u", "n", "p", "f", "a", "z", "y"];
    let (mut x, mut i) = (f, 0);
    if f.abs() >= 1.0 {
        while x.abs() >= 1000.0 && i < big.len() - 1 {
            x /= 1000.0;
            i += 1;
        }
        Ok(Val::Str(format!("{}{}", go_g4(x), big[i])))
    } else {
        while x.abs() < 1.0 && i < small.len() - 1 {
            x *= 1000.0;
            i += 1;
        }
        Ok(Val::Str(format!("{}{}", go_g4(x), small[i])))
    }
}

/// Go's `%.4g`.
fn go_g4(x: f64) -> String {
    let s = format!("{:.3e}", x);
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = e.parse().unwrap_or(0);
    if !(-4..4).contains(&exp) {
        let m = m.trim_end_matches('0').trim_end_matches('.');
        return format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    let decimals = usize::try_from(3 - exp).unwrap_or(0);
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_labels_and_value() {
        let labels = Labels::from_pairs([("instance", "h:1"), ("job", "j")]).unwrap();
        let ext = Labels::empty();
        let d = TemplateData {
            labels: &labels,
            external_labels: &ext,
            external_url: "http://x",
            value: 1.5,
        };
        assert_eq!(
            expand(
                "{{ $labels.instance }} of {{$labels.job}} = {{ $value }} ({{ $labels.nope }})",
                "A",
                &d
            ),
            "h:1 of j = 1.5 ()"
        );
        assert_eq!(expand("{{ humanize 1234567.0 }}", "A", &d), "1.235M");
        assert_eq!(expand("a {{- \" b\" -}} c", "A", &d), "a bc");
        assert!(expand("{{ range . }}", "A", &d).starts_with("<error expanding template"));
    }
}
