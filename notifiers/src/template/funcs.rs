//! Alertmanager 0.25's template function map (`template.DefaultFuncs`) as
//! [`rules_engine::template::Funcs`]: `toUpper`, `toLower`, `title`, `join`, `match`,
//! `safeHtml`, `reReplaceAll` and `stringSlice`, with Go's parameter types (so argument errors
//! read as Go's). Go's predefined functions come with the engine.

use std::sync::Arc;

use rules_engine::template::{Funcs, Param, Params, Value};

use super::objects::str_list;

const STR1: Params = Params::fixed(&[Param::Str]);

/// Alertmanager's `DefaultFuncs`.
pub(crate) struct AmFuncs;

impl Funcs for AmFuncs {
    fn params(&self, name: &str) -> Option<Params> {
        Some(match name {
            "toUpper" | "toLower" | "title" | "safeHtml" => STR1,
            "join" => Params::fixed(&[Param::Str, Param::Any]),
            "match" => Params::fixed(&[Param::Str, Param::Str]),
            "reReplaceAll" => Params::fixed(&[Param::Str, Param::Str, Param::Str]),
            "stringSlice" => Params::variadic(&[], Param::Str),
            _ => return None,
        })
    }

    fn call(&self, name: &str, args: Vec<Value>) -> Result<Value, String> {
        let s = |i: usize| args.get(i).and_then(Value::as_str).unwrap_or_default();
        Ok(match name {
            "toUpper" => Value::from(s(0).to_uppercase()),
            "toLower" => Value::from(s(0).to_lowercase()),
            "title" => Value::from(title(s(0))),
            "safeHtml" => Value::Html(Arc::from(s(0))),
            "join" => {
                let list = match args.get(1) {
                    Some(Value::List(l, _)) => l
                        .iter()
                        .map(|v| match v {
                            Value::Str(x) => Some(&**x),
                            _ => None,
                        })
                        .collect::<Option<Vec<&str>>>(),
                    _ => None,
                };
                let Some(list) = list else {
                    return Err(format!(
                        "wrong type for value; expected []string; got {}",
                        args.get(1).map_or("<nil>", Value::type_name)
                    ));
                };
                Value::from(list.join(s(0)))
            }
            "match" => {
                let re =
                    regex::Regex::new(s(0)).map_err(|e| format!("error parsing regexp: {e}"))?;
                Value::Bool(re.is_match(s(1)))
            }
            "reReplaceAll" => {
                let re = regex::Regex::new(s(0))
                    .map_err(|e| format!("regexp: Compile({:?}): {e}", s(0)))?;
                Value::from(re.replace_all(s(2), s(1)).into_owned())
            }
            "stringSlice" => str_list(args.iter().map(|a| a.as_str().unwrap_or_default())),
            _ => return Err(format!("{name:?} is not a defined function")),
        })
    }
}

/// `cases.Title(language.AmericanEnglish)`: the first letter of each word upper-cased, the
/// rest lower-cased.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if c.is_alphanumeric() || c == '\'' {
            if start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            start = false;
        } else {
            out.push(c);
            start = true;
        }
    }
    out
}
