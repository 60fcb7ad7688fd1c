//! Alert label and annotation templates: a small subset of Go's `text/template` as Prometheus
//! uses it (`template/template.go@v2.42.0`): text with `{{ ... }}` actions (`{{-`/`-}}` trim
//! whitespace) whose pipelines combine `$labels.<name>` / `.Labels.<name>`, `$value` /
//! `.Value`, `$externalLabels.<name>` / `.ExternalLabels.<name>`, `$externalURL` /
//! `.ExternalURL`, string and number literals, and the functions `humanize`, `humanize1024`,
//! `humanizePercentage`, `humanizeDuration`, `printf`, `print`, `toUpper`, `toLower` and
//! `title` (control structures such as `if`/`range` are not supported). Anything else expands to
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

/// Splits a pipeline stage into words, keeping quoted strings whole (quotes included).
fn words(st: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = st.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' || c == '`' {
            cur.push(c);
            loop {
                let Some(n) = chars.next() else {
                    return Err("unterminated quoted string".into());
                };
                cur.push(n);
                if n == '\\' && c == '"' {
                    if let Some(e) = chars.next() {
                        cur.push(e);
                    }
                    continue;
                }
                if n == c {
                    break;
                }
            }
        } else if c.is_whitespace() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn split_pipes(p: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quote) = (0, None);
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match (quote, b[i]) {
            (None, b'"' | b'`') => quote = Some(b[i]),
            (Some(b'"'), b'\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            (None, b'|') => {
                out.push(p[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(p[start..].trim());
    out
}

fn pipeline(p: &str, data: &TemplateData<'_>) -> Result<String, String> {
    if p.starts_with("/*") && p.ends_with("*/") {
        return Ok(String::new());
    }
    let mut v: Option<Val> = None;
    for st in split_pipes(p) {
        let w = words(st)?;
        let Some((head, rest)) = w.split_first() else {
            return Err(format!("missing value for command in {p:?}"));
        };
        let mut args = rest
            .iter()
            .map(|a| operand(a, data))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(prev) = v.take() {
            args.push(prev);
        }
        v = Some(if is_function(head) {
            call(head, args)?
        } else if args.is_empty() {
            operand(head, data)?
        } else {
            return Err(format!("can't give argument to non-function {head}"));
        });
    }
    Ok(v.map(Val::render).unwrap_or_default())
}

fn is_function(name: &str) -> bool {
    matches!(
        name,
        "humanize"
            | "humanize1024"
            | "humanizePercentage"
            | "humanizeDuration"
            | "printf"
            | "print"
            | "toUpper"
            | "toLower"
            | "title"
    )
}

fn num(v: &Val) -> Result<f64, String> {
    match v {
        Val::Num(f) => Ok(*f),
        Val::Str(s) => s.trim().parse::<f64>().map_err(|e| e.to_string()),
    }
}

fn one(name: &str, args: Vec<Val>) -> Result<Val, String> {
    let n = args.len();
    args.into_iter()
        .next()
        .filter(|_| n == 1)
        .ok_or_else(|| format!("wrong number of args for {name}: want 1 got {n}"))
}

fn call(name: &str, args: Vec<Val>) -> Result<Val, String> {
    match name {
        "humanize" => humanize(one(name, args)?),
        "humanize1024" => {
            let v = num(&one(name, args)?)?;
            if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
                return Ok(Val::Str(go_g4(v)));
            }
            let (mut x, mut i) = (v, 0);
            let p = ["", "ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"];
            while x.abs() >= 1024.0 && i < p.len() - 1 {
                x /= 1024.0;
                i += 1;
            }
            Ok(Val::Str(format!("{}{}", go_g4(x), p[i])))
        }
        "humanizePercentage" => Ok(Val::Str(format!(
            "{}%",
            go_g4(num(&one(name, args)?)? * 100.0)
        ))),
        "humanizeDuration" => humanize_duration(num(&one(name, args)?)?),
        "toUpper" => Ok(Val::Str(one(name, args)?.render().to_uppercase())),
        "toLower" => Ok(Val::Str(one(name, args)?.render().to_lowercase())),
        "title" => {
            let s = one(name, args)?.render();
            let mut out = String::with_capacity(s.len());
            let mut start = true;
            for c in s.chars() {
                if start && c.is_alphabetic() {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = !c.is_alphanumeric() && c != '_' && c != '\'';
            }
            Ok(Val::Str(out))
        }
        "print" => Ok(Val::Str(
            args.into_iter()
                .map(Val::render)
                .collect::<Vec<_>>()
                .join(""),
        )),
        "printf" => {
            let mut it = args.into_iter();
            let fmt = it.next().ok_or("wrong number of args for printf")?.render();
            printf(&fmt, it.collect())
        }
        _ => Err(format!("function {name:?} not defined")),
    }
}

fn humanize_duration(v: f64) -> Result<Val, String> {
    if v.is_nan() || v.is_infinite() {
        return Ok(Val::Str(go_g4(v)));
    }
    if v == 0.0 {
        return Ok(Val::Str(format!("{}s", go_g4(v))));
    }
    if v.abs() >= 1.0 {
        let (sign, v) = if v < 0.0 { ("-", -v) } else { ("", v) };
        let d = crate::promql::functions::time::go_f64_to_i64(v);
        let (secs, mins, hours, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86_400);
        return Ok(Val::Str(if days != 0 {
            format!("{sign}{days}d {hours}h {mins}m {secs}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {mins}m {secs}s")
        } else if mins != 0 {
            format!("{sign}{mins}m {secs}s")
        } else {
            format!("{sign}{}s", go_g4(v))
        }));
    }
    let (mut x, mut prefix) = (v, "");
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if x.abs() >= 1.0 {
            break;
        }
        prefix = p;
        x *= 1000.0;
    }
    Ok(Val::Str(format!("{}{prefix}s", go_g4(x))))
}

/// Go's `fmt.Sprintf` for the verbs alert templates use: `%s %v %d %f %e %g %q %%`, with an
/// optional width and precision.
fn printf(fmt: &str, args: Vec<Val>) -> Result<Val, String> {
    let mut out = String::new();
    let mut args = args.into_iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut width = String::new();
        while let Some(d) = chars.peek().copied().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(d) = chars.peek().copied().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let s = match (verb, &arg) {
            ('s' | 'v', _) => arg.render(),
            ('q', _) => format!("{:?}", arg.render()),
            ('d', Val::Num(f)) => format!("%!d(float64={})", go_fmt_v(*f)),
            ('d', Val::Str(x)) => format!("%!d(string={x})"),
            ('f' | 'F', Val::Num(f)) => format!("{f:.*}", prec.unwrap_or(6)),
            ('e', Val::Num(f)) => go_exp_fmt(*f, prec.unwrap_or(6)),
            ('g', Val::Num(f)) => match prec {
                Some(4) => go_g4(*f),
                _ => go_fmt_v(*f),
            },
            _ => return Err(format!("unsupported printf verb %{verb}")),
        };
        let w: usize = width.parse().unwrap_or(0);
        out.push_str(&format!("{s:>w$}"));
    }
    Ok(Val::Str(out))
}

fn go_exp_fmt(f: f64, prec: usize) -> String {
    let s = format!("{f:.prec$e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let exp: i32 = e.parse().unwrap_or(0);
            format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
        }
        None => s,
    }
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
        _ if x.starts_with('`') && x.ends_with('`') && x.len() >= 2 => {
            Ok(Val::Str(x[1..x.len() - 1].to_string()))
        }
        _ if x.starts_with('"') && x.ends_with('"') && x.len() >= 2 => {
            let mut out = String::new();
            let mut it = x[1..x.len() - 1].chars();
            while let Some(c) = it.next() {
                if c != '\\' {
                    out.push(c);
                    continue;
                }
                match it.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(e) => out.push(e),
                    None => {}
                }
            }
            Ok(Val::Str(out))
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
        assert_eq!(expand("{{ $value | humanizePercentage }}", "A", &d), "150%");
        assert_eq!(expand("{{ printf \"%.2f\" $value }}", "A", &d), "1.50");
        assert_eq!(expand("{{ humanizeDuration 3725 }}", "A", &d), "1h 2m 5s");
        assert_eq!(expand("{{ $labels.job | toUpper }}", "A", &d), "J");
    }
}
