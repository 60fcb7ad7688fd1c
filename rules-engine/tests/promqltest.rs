//! Runs Prometheus v2.42.0's own PromQL test scripts (`promql/testdata/*.test`, copied under
//! `shared/conformance/upstream/promql-testdata/`) in their own semantics, as `promql/test.go`
//! does: `load`, `clear`, `eval`, `eval_fail`, `eval_ordered`; values equal within a relative
//! 1e-6 (NaN equals NaN); every instant evaluation is repeated as a range query (middle step
//! compared) and with `@` pinned on its selectors at the five times `atModifierTestCases`
//! picks. Cases listed in `promqltest_skip.txt` (`file:line reason`) are skipped; the list is
//! meant to stay empty.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use promql_parser::parser::{AtModifier, Expr};
use rules_engine::model::{Labels, Sample, Timestamp};
use rules_engine::promql::{Engine, EvalLimits, Value, parse_expr};
use rules_engine::storage::MemStorage;
use rules_engine::unittest::series::{SeqValue, parse_series_desc};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/upstream/promql-testdata")
}

fn skip_list() -> Vec<String> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promqltest_skip.txt");
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn parse_dur(s: &str) -> i64 {
    rules_engine::duration::parse_model_duration(s).expect("duration")
}

/// `parseNumber`: Go `ParseInt(s, 0, 64)` then `ParseFloat`.
fn parse_number(s: &str) -> Option<f64> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(i as f64);
    }
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
    if s.chars()
        .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
    {
        return None;
    }
    s.parse::<f64>().ok()
}

fn almost_equal(a: f64, b: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    const EPSILON: f64 = 0.000001;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || diff < MIN_NORMAL {
        return diff < EPSILON * MIN_NORMAL;
    }
    diff / (a.abs() + b.abs()) < EPSILON
}

struct Eval {
    line: usize,
    expr: String,
    at_ms: i64,
    fail: bool,
    ordered: bool,
    scalar: Option<f64>,
    /// Expected (labels, value, 1-based position).
    metrics: Vec<(Labels, f64, usize)>,
}

enum Cmd {
    Clear,
    Load(Vec<(Labels, Vec<Sample>)>),
    Eval(Eval),
}

fn parse_script(src: &str) -> Vec<Cmd> {
    let lines: Vec<String> = src
        .split('\n')
        .map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                String::new()
            } else {
                l.to_string()
            }
        })
        .collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = &lines[i];
        if l.is_empty() {
            i += 1;
            continue;
        }
        let word = l
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if word == "clear" {
            cmds.push(Cmd::Clear);
        } else if word == "load" {
            let step = parse_dur(l["load".len()..].trim());
            let mut defs: Vec<(Labels, Vec<Sample>)> = Vec::new();
            while i + 1 < lines.len() && !lines[i + 1].is_empty() {
                i += 1;
                let (labels, vals) =
                    parse_series_desc(&lines[i]).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
                let samples = expand(&vals, step);
                match defs.iter_mut().find(|(l, _)| *l == labels) {
                    Some(d) => d.1 = samples,
                    None => defs.push((labels, samples)),
                }
            }
            cmds.push(Cmd::Load(defs));
        } else if word.starts_with("eval") {
            let (fail, ordered) = (word == "eval_fail", word == "eval_ordered");
            let rest = l[word.len()..].trim_start();
            let rest = rest.strip_prefix("instant").expect("instant").trim_start();
            let rest = rest.strip_prefix("at").expect("at").trim_start();
            let (at, expr) = rest.split_once(char::is_whitespace).expect("expr");
            let mut ev = Eval {
                line: i + 1,
                expr: expr.trim().to_string(),
                at_ms: parse_dur(at),
                fail,
                ordered,
                scalar: None,
                metrics: Vec::new(),
            };
            let mut j = 1;
            while i + 1 < lines.len() && !lines[i + 1].is_empty() {
                i += 1;
                if let Some(f) = parse_number(&lines[i]) {
                    ev.scalar = Some(f);
                    break;
                }
                let (labels, vals) =
                    parse_series_desc(&lines[i]).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
                let v = vals.first().copied().flatten().unwrap_or(f64::NAN);
                ev.metrics.retain(|(l, _, _)| *l != labels);
                ev.metrics.push((labels, v, j));
                j += 1;
            }
            cmds.push(Cmd::Eval(ev));
        } else {
            panic!("line {}: invalid command {l:?}", i + 1);
        }
        i += 1;
    }
    cmds
}

fn expand(vals: &[SeqValue], step: i64) -> Vec<Sample> {
    vals.iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| Sample::new(i as i64 * step, v)))
        .collect()
}

fn engine() -> Engine {
    Engine::new(EvalLimits {
        max_samples: 10_000,
        lookback_delta: Duration::from_secs(300),
        default_subquery_step: Duration::from_secs(60),
    })
}

fn compare(ev: &Eval, got: &Value) -> Result<(), String> {
    match got {
        Value::Vector(v) => {
            let mut seen = vec![false; ev.metrics.len()];
            for (pos, s) in v.iter().enumerate() {
                let Some(k) = ev.metrics.iter().position(|(l, _, _)| *l == s.labels) else {
                    return Err(format!("unexpected metric {} in result", s.labels));
                };
                let (_, want, exp_pos) = &ev.metrics[k];
                if ev.ordered && *exp_pos != pos + 1 {
                    return Err(format!(
                        "expected metric {} at position {exp_pos} but was at {}",
                        s.labels,
                        pos + 1
                    ));
                }
                if !almost_equal(*want, s.v) {
                    return Err(format!("expected {want} for {} but got {}", s.labels, s.v));
                }
                seen[k] = true;
            }
            if let Some(k) = seen.iter().position(|s| !s) {
                return Err(format!("expected metric {} not found", ev.metrics[k].0));
            }
            Ok(())
        }
        Value::Scalar(s) => {
            let want = ev.scalar.unwrap_or(f64::NAN);
            if almost_equal(want, s.v) {
                Ok(())
            } else {
                Err(format!("expected Scalar {want} but got {}", s.v))
            }
        }
        Value::Matrix(_) => Err("received range result on instant evaluation".into()),
        Value::String { .. } => Err("unexpected string result".into()),
    }
}

fn system_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// `atModifierTestCases`: pins `@ ts` on every selector and outermost subquery without one;
/// `None` when the expression calls a function unsafe under `@`.
fn with_at(expr: &Expr, ts: i64) -> Option<Expr> {
    const UNSAFE: &[&str] = &[
        "days_in_month",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "hour",
        "minute",
        "month",
        "year",
        "predict_linear",
        "time",
        "timestamp",
    ];
    fn has_unsafe(e: &Expr) -> bool {
        match e {
            Expr::Aggregate(a) => has_unsafe(&a.expr) || a.param.as_deref().is_some_and(has_unsafe),
            Expr::Unary(u) => has_unsafe(&u.expr),
            Expr::Binary(b) => has_unsafe(&b.lhs) || has_unsafe(&b.rhs),
            Expr::Paren(p) => has_unsafe(&p.expr),
            Expr::Subquery(s) => has_unsafe(&s.expr),
            Expr::Call(c) => {
                UNSAFE.contains(&c.func.name) || c.args.args.iter().any(|a| has_unsafe(a))
            }
            _ => false,
        }
    }
    fn set(e: &mut Expr, at: &AtModifier) {
        match e {
            Expr::Aggregate(a) => {
                set(&mut a.expr, at);
                if let Some(p) = a.param.as_deref_mut() {
                    set(p, at);
                }
            }
            Expr::Unary(u) => set(&mut u.expr, at),
            Expr::Binary(b) => {
                set(&mut b.lhs, at);
                set(&mut b.rhs, at);
            }
            Expr::Paren(p) => set(&mut p.expr, at),
            Expr::Subquery(s) => {
                s.at.get_or_insert_with(|| at.clone());
            }
            Expr::VectorSelector(vs) => {
                vs.at.get_or_insert_with(|| at.clone());
            }
            Expr::MatrixSelector(ms) => {
                ms.vs.at.get_or_insert_with(|| at.clone());
            }
            Expr::Call(c) => {
                for a in &mut c.args.args {
                    set(a, at);
                }
            }
            _ => {}
        }
    }
    if has_unsafe(expr) {
        return None;
    }
    let mut e = expr.clone();
    set(&mut e, &AtModifier::At(system_time(ts)));
    Some(e)
}

fn run_eval(st: &MemStorage, ev: &Eval) -> Result<(), String> {
    let eng = engine();
    let expr = parse_expr(&ev.expr).map_err(|e| format!("parse: {e}"))?;
    let mut queries = vec![(expr.clone(), ev.at_ms)];
    if let Some(pinned) = with_at(&expr, ev.at_ms) {
        let ts = ev.at_ms;
        let times = if ts == 0 {
            vec![-1000, 0, 1000]
        } else {
            vec![-10 * ts, 0, ts / 5, ts, 10 * ts]
        };
        queries.extend(times.into_iter().map(|t| (pinned.clone(), t)));
    }
    for (i, (q, t)) in queries.iter().enumerate() {
        let what = if i == 0 {
            String::new()
        } else {
            format!(" (with @ {}, at {t}ms)", ev.at_ms)
        };
        let res = eng.instant(st, q, Timestamp(*t));
        let res = match (res, ev.fail) {
            (Err(_), true) => continue,
            (Err(e), false) => return Err(format!("error evaluating{what}: {e}")),
            (Ok(_), true) => return Err(format!("expected error{what} but got none")),
            (Ok(v), false) => v,
        };
        compare(ev, &res).map_err(|e| format!("instant{what}: {e}"))?;
        let range = eng
            .range(
                st,
                q,
                Timestamp(t - 60_000),
                Timestamp(t + 60_000),
                Duration::from_secs(60),
            )
            .map_err(|e| format!("range mode{what}: {e}"))?;
        if ev.ordered {
            continue;
        }
        let Value::Matrix(m) = range else {
            return Err("range mode: not a matrix".into());
        };
        let picked: Vec<(Labels, f64)> = m
            .iter()
            .filter_map(|s| {
                s.samples
                    .iter()
                    .find(|p| p.t.0 == *t)
                    .map(|p| (s.labels.clone(), p.v))
            })
            .collect();
        let as_value = if matches!(res, Value::Scalar(_)) {
            Value::Scalar(Sample::new(*t, picked.first().map_or(f64::NAN, |p| p.1)))
        } else {
            Value::Vector(
                picked
                    .into_iter()
                    .map(|(labels, v)| rules_engine::promql::VectorSample {
                        labels,
                        t: Timestamp(*t),
                        v,
                    })
                    .collect(),
            )
        };
        compare(ev, &as_value).map_err(|e| format!("range mode{what}: {e}"))?;
    }
    Ok(())
}

#[test]
fn upstream_promql_test_scripts() {
    let dir = testdata();
    let skip = skip_list();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 11, "expected the 11 upstream scripts");
    let (mut passed, mut skipped, mut failures) = (0, 0, Vec::new());
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let src = std::fs::read_to_string(f).unwrap();
        let st = MemStorage::new();
        for cmd in parse_script(&src) {
            match cmd {
                Cmd::Clear => st.clear(),
                Cmd::Load(defs) => {
                    for (l, s) in defs {
                        st.add(l, s);
                    }
                }
                Cmd::Eval(ev) => {
                    let id = format!("{name}:{}", ev.line);
                    if skip.contains(&id) {
                        skipped += 1;
                        continue;
                    }
                    match run_eval(&st, &ev) {
                        Ok(()) => passed += 1,
                        Err(e) => failures.push(format!("{id} {}: {e}", ev.expr)),
                    }
                }
            }
        }
    }
    eprintln!(
        "promqltest: {passed} passed, {skipped} skipped, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(passed + skipped, 566, "every upstream eval command runs");
}
