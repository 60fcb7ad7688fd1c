//! Notification templates: Go `text/template` with Alertmanager 0.25's function map
//! (`toUpper`, `toLower`, `title`, `join`, `match`, `safeHtml`, `reReplaceAll`,
//! `stringSlice` plus Go's built-ins) and default template names (`slack.default.title`,
//! `pagerduty.default.description`, `email.default.subject`, `email.default.html`, ...), plus
//! the user's files from `templates:` globs.
//!
//! Why not the `gtmpl` crate: Alertmanager's defaults call methods with arguments
//! (`.CommonLabels.Remove .GroupLabels.Names`), which gtmpl refuses ("not a function but has
//! arguments"); they need a value that is both a list and has methods (`range .Alerts` and
//! `.Alerts.Firing`), which gtmpl's `Value` cannot be; and gtmpl ranges over maps in hash
//! order where Go sorts keys. So the private `parse` and `exec` modules implement the
//! `text/template` subset those templates use, over typed values (`exec::Value`) that mirror
//! Alertmanager's `template.Data`, `Alert`, `KV` and `Pairs`.
//!
//! The default definitions are written for promgate to render exactly what Alertmanager's
//! `default.tmpl` renders for the Slack, PagerDuty and email subject fields (the tests compare
//! with a real Alertmanager). The HTML email body is promgate's own, simpler markup with the same
//! content (firing and resolved alerts with labels, annotations and source links); it is
//! escaped as `html/template` escapes text and attribute values, with URL attributes (`href`,
//! `src`, ...) normalized first; other contexts (script, style) are not tracked.

mod exec;
mod parse;

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use crate::data::Data;
use exec::{Exec, Value};
use parse::List;

/// A template that cannot be loaded or executed, naming the template and position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template: {name}:{line}: {message}")]
    Parse {
        name: String,
        line: usize,
        message: String,
    },
    #[error("template: {name}: executing: {message}")]
    Exec { name: String, message: String },
    #[error("templates: {path}: {message}")]
    Io { path: String, message: String },
}

/// promgate's default template definitions (see the module doc).
pub const DEFAULT_TEMPLATES: &str = r##"
{{ define "__alertmanager" }}Alertmanager{{ end }}
{{ define "__alertmanagerURL" }}{{ .ExternalURL }}/#/alerts?receiver={{ .Receiver | urlquery }}{{ end }}
{{ define "__subject" -}}
  [{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ len .Alerts.Firing }}{{ end }}]
  {{- " " }}{{ join " " .GroupLabels.SortedPairs.Values }}{{ " " }}
  {{- if gt (len .CommonLabels) (len .GroupLabels) -}}
    ({{ with .CommonLabels.Remove .GroupLabels.Names }}{{ join " " .Values }}{{ end }})
  {{- end }}
{{- end }}
{{ define "__description" }}{{ end }}
{{ define "__text_alert_list" }}
  {{- range . -}}
    Labels:{{ "\n" }}
    {{- range .Labels.SortedPairs }} - {{ .Name }} = {{ .Value }}{{ "\n" }}{{ end -}}
    Annotations:{{ "\n" }}
    {{- range .Annotations.SortedPairs }} - {{ .Name }} = {{ .Value }}{{ "\n" }}{{ end -}}
    Source: {{ .GeneratorURL }}{{ "\n" }}
  {{- end }}
{{- end }}

{{ define "slack.default.title" }}{{ template "__subject" . }}{{ end }}
{{ define "slack.default.username" }}{{ template "__alertmanager" . }}{{ end }}
{{ define "slack.default.fallback" }}{{ template "slack.default.title" . }} | {{ template "slack.default.titlelink" . }}{{ end }}
{{ define "slack.default.callbackid" }}{{ end }}
{{ define "slack.default.pretext" }}{{ end }}
{{ define "slack.default.titlelink" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{ define "slack.default.iconemoji" }}{{ end }}
{{ define "slack.default.iconurl" }}{{ end }}
{{ define "slack.default.text" }}{{ end }}
{{ define "slack.default.footer" }}{{ end }}

{{ define "pagerduty.default.description" }}{{ template "__subject" . }}{{ end }}
{{ define "pagerduty.default.client" }}{{ template "__alertmanager" . }}{{ end }}
{{ define "pagerduty.default.clientURL" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{ define "pagerduty.default.instances" }}{{ template "__text_alert_list" . }}{{ end }}

{{ define "email.default.subject" }}{{ template "__subject" . }}{{ end }}
{{ define "email.default.text" }}{{ template "__subject" . }}
{{ if gt (len .Alerts.Firing) 0 }}
Alerts Firing:
{{ template "__text_alert_list" .Alerts.Firing }}{{ end }}
{{- if gt (len .Alerts.Resolved) 0 }}
Alerts Resolved:
{{ template "__text_alert_list" .Alerts.Resolved }}{{ end }}
{{ template "__alertmanagerURL" . }}
{{ end }}
{{ define "__email_alert" -}}
<tr><td style="padding:8px 12px;border-top:1px solid #e9e9e9">
{{- range .Labels.SortedPairs }}{{ .Name }} = {{ .Value }}<br>{{ end }}
{{- if gt (len .Annotations) 0 }}<strong>Annotations</strong><br>{{ end }}
{{- range .Annotations.SortedPairs }}{{ .Name }} = {{ .Value }}<br>{{ end -}}
<a href="{{ .GeneratorURL }}">Source</a></td></tr>
{{ end }}
{{ define "email.default.html" -}}
<!DOCTYPE html>
<html>
<head>
<meta name="viewport" content="width=device-width">
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<title>{{ template "__subject" . }}</title>
</head>
<body style="font-family:Helvetica,Arial,sans-serif;font-size:14px;background:#f6f6f6;margin:0;padding:20px">
<table width="100%" style="max-width:600px;margin:0 auto;background:#fff;border:1px solid #e9e9e9;border-radius:3px" cellpadding="0" cellspacing="0">
<tr><td style="padding:20px;color:#fff;background:{{ if gt (len .Alerts.Firing) 0 }}#E6522C{{ else }}#68B90F{{ end }}">
{{ len .Alerts }} alert{{ if gt (len .Alerts) 1 }}s{{ end }} for {{ range .GroupLabels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}
</td></tr>
<tr><td style="padding:12px"><a href="{{ template "__alertmanagerURL" . }}">View in {{ template "__alertmanager" . }}</a></td></tr>
{{ if gt (len .Alerts.Firing) 0 }}<tr><td style="padding:8px 12px"><strong>[{{ len .Alerts.Firing }}] Firing</strong></td></tr>
{{ range .Alerts.Firing }}{{ template "__email_alert" . }}{{ end }}{{ end -}}
{{ if gt (len .Alerts.Resolved) 0 }}<tr><td style="padding:8px 12px"><strong>[{{ len .Alerts.Resolved }}] Resolved</strong></td></tr>
{{ range .Alerts.Resolved }}{{ template "__email_alert" . }}{{ end }}{{ end -}}
<tr><td style="padding:12px;color:#999;font-size:12px"><a href="{{ .ExternalURL }}">Sent by {{ template "__alertmanager" . }}</a></td></tr>
</table>
</body>
</html>
{{ end }}
"##;

/// Alertmanager's default templates plus the user's.
#[derive(Debug)]
pub struct Templates {
    defs: HashMap<String, List>,
}

fn parse_err(name: &str, e: parse::ParseError) -> TemplateError {
    TemplateError::Parse {
        name: name.to_string(),
        line: e.line,
        message: e.message,
    }
}

impl Default for Templates {
    fn default() -> Self {
        match Templates::load(&[]) {
            Ok(t) => t,
            Err(e) => unreachable_defaults(e),
        }
    }
}

#[allow(clippy::panic)]
fn unreachable_defaults(e: TemplateError) -> Templates {
    panic!("the built-in templates must parse: {e}")
}

impl Templates {
    /// Loads the defaults and every file matching the globs, in glob order and then file-name
    /// order; a later definition of a name replaces an earlier one, as in Go. A glob that
    /// matches nothing is allowed (Alertmanager allows it: the files may appear later).
    pub fn load(globs: &[PathBuf]) -> Result<Templates, TemplateError> {
        let mut defs = parse::parse("default.tmpl", DEFAULT_TEMPLATES)
            .map_err(|e| parse_err("default.tmpl", e))?;
        defs.remove("default.tmpl");
        for g in globs {
            let pattern = g.to_string_lossy();
            let paths = glob::glob(&pattern).map_err(|e| TemplateError::Io {
                path: pattern.to_string(),
                message: format!("bad glob: {e}"),
            })?;
            let mut files = Vec::new();
            for p in paths {
                let p = p.map_err(|e| TemplateError::Io {
                    path: pattern.to_string(),
                    message: e.to_string(),
                })?;
                files.push(p);
            }
            files.sort();
            for f in files {
                let text = std::fs::read_to_string(&f).map_err(|e| TemplateError::Io {
                    path: f.display().to_string(),
                    message: e.to_string(),
                })?;
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                let parsed = parse::parse(&name, &text)
                    .map_err(|e| parse_err(&f.display().to_string(), e))?;
                defs.extend(parsed);
            }
        }
        Ok(Templates { defs })
    }

    /// Names of all defined templates.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.defs.keys().map(String::as_str)
    }

    /// Executes `text` (which may call `template "name"`) against `data`, like Alertmanager's
    /// `ExecuteTextString`. An empty text gives an empty string.
    pub fn execute(&self, text: &str, data: &Data) -> Result<String, TemplateError> {
        self.run(text, data, false)
    }

    /// Like [`Templates::execute`], HTML-escaping printed values (email HTML bodies).
    pub fn execute_html(&self, text: &str, data: &Data) -> Result<String, TemplateError> {
        self.run(text, data, true)
    }

    /// Parses `text` and checks that every `template` it calls exists, for config checks.
    pub fn check(&self, text: &str) -> Result<(), TemplateError> {
        let parsed = parse::parse("", text).map_err(|e| parse_err("", e))?;
        for body in parsed.values() {
            self.check_calls(body, &parsed)?;
        }
        Ok(())
    }

    fn check_calls(&self, body: &List, local: &HashMap<String, List>) -> Result<(), TemplateError> {
        use parse::Node;
        for n in body {
            match n {
                Node::Template(name, _, line)
                    if !self.defs.contains_key(name) && !local.contains_key(name) =>
                {
                    return Err(TemplateError::Parse {
                        name: String::new(),
                        line: *line,
                        message: format!("no such template {name:?}"),
                    });
                }
                Node::Action(p, line) => check_funcs(p, *line)?,
                Node::If(p, a, b, line)
                | Node::With(p, a, b, line)
                | Node::Range(p, a, b, line) => {
                    check_funcs(p, *line)?;
                    self.check_calls(a, local)?;
                    if let Some(b) = b {
                        self.check_calls(b, local)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn run(&self, text: &str, data: &Data, html: bool) -> Result<String, TemplateError> {
        if text.is_empty() {
            return Ok(String::new());
        }
        let mut parsed = parse::parse("", text).map_err(|e| parse_err("", e))?;
        let body = parsed.remove("").unwrap_or_default();
        let merged;
        let defs = if parsed.is_empty() {
            &self.defs
        } else {
            let mut m = self.defs.clone();
            m.extend(parsed);
            merged = m;
            &merged
        };
        Exec::new(defs, html)
            .run(&body, Value::Data(Rc::new(data.clone())))
            .map_err(|e| TemplateError::Exec {
                name: String::new(),
                message: e.0,
            })
    }
}

/// Go rejects calls of undefined functions when parsing; so does [`Templates::check`].
fn check_funcs(p: &parse::Pipe, line: usize) -> Result<(), TemplateError> {
    use parse::Arg;
    for cmd in &p.cmds {
        for a in cmd {
            match a {
                Arg::Ident(name) if !exec::FUNCS.contains(&name.as_str()) => {
                    return Err(TemplateError::Parse {
                        name: String::new(),
                        line,
                        message: format!("function {name:?} not defined"),
                    });
                }
                Arg::Sub(inner, _) => check_funcs(inner, line)?,
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
