//! Notification templates: Go `text/template` with Alertmanager 0.25's function map
//! (`toUpper`, `toLower`, `title`, `join`, `match`, `safeHtml`, `reReplaceAll`,
//! `stringSlice` plus Go's built-ins) and default template names (`slack.default.title`,
//! `pagerduty.default.description`, `email.default.subject`, `email.default.html`, ...), plus
//! the user's files from `templates:` globs.
//!
//! The language is the workspace's one implementation of Go `text/template`
//! ([`rules_engine::template`]); this module gives it Alertmanager's data (`objects`: `Data`,
//! `Alerts` with `.Firing`, `KV` with `.SortedPairs` and `.Remove`, ...) and function map
//! (`funcs`).
//!
//! The default definitions are written for promgate to render exactly what Alertmanager's
//! `default.tmpl` renders for the Slack, PagerDuty and email subject fields (the tests compare
//! with a real Alertmanager). The HTML email body is promgate's own, simpler markup with the same
//! content (firing and resolved alerts with labels, annotations and source links); it is
//! escaped as `html/template` escapes text and attribute values, with URL attributes (`href`,
//! `src`, ...) normalized first; other contexts (script, style) are not tracked.

mod funcs;
mod objects;

use std::path::PathBuf;

use rules_engine::template::{Escaping, ParseError, Template};

use crate::data::Data;
use funcs::AmFuncs;

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
pub struct Templates {
    set: Template,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.names().collect();
        names.sort_unstable();
        f.debug_struct("Templates").field("names", &names).finish()
    }
}

/// The name the default definitions are parsed under (their main tree is not a template).
const DEFAULTS_NAME: &str = "default.tmpl";

/// A parse error of text `parse_name` (Go's `template: NAME:LINE: MESSAGE`), reported for
/// `name`.
fn parse_err(name: &str, parse_name: &str, e: ParseError) -> TemplateError {
    let text = e.0;
    let located = text
        .strip_prefix("template: ")
        .and_then(|r| r.strip_prefix(parse_name))
        .and_then(|r| r.strip_prefix(':'))
        .and_then(|r| r.split_once(':'))
        .and_then(|(line, msg)| Some((line.parse().ok()?, msg.trim_start().to_string())));
    let (line, message) = located.unwrap_or((0, text));
    TemplateError::Parse {
        name: name.to_string(),
        line,
        message,
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
        let mut set = Template::new();
        set.parse(DEFAULTS_NAME, DEFAULT_TEMPLATES, &AmFuncs)
            .map_err(|e| parse_err(DEFAULTS_NAME, DEFAULTS_NAME, e))?;
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
                set.parse(&name, &text, &AmFuncs)
                    .map_err(|e| parse_err(&f.display().to_string(), &name, e))?;
            }
        }
        Ok(Templates { set })
    }

    /// Names of all defined templates.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.set.names().filter(|n| *n != DEFAULTS_NAME)
    }

    /// Executes `text` (which may call `template "name"`) against `data`, like Alertmanager's
    /// `ExecuteTextString`. An empty text gives an empty string.
    pub fn execute(&self, text: &str, data: &Data) -> Result<String, TemplateError> {
        self.run(text, data, Escaping::Text)
    }

    /// Like [`Templates::execute`], escaping printed values as `html/template` does in text
    /// and attribute values, URL attributes normalized first (email HTML bodies).
    pub fn execute_html(&self, text: &str, data: &Data) -> Result<String, TemplateError> {
        self.run(text, data, Escaping::HtmlAttrs)
    }

    /// Parses `text` and checks that every `template` it calls exists, for config checks.
    pub fn check(&self, text: &str) -> Result<(), TemplateError> {
        let set = self.with_text(text)?;
        match set
            .missing_templates()
            .into_iter()
            .find(|m| m.parse_name.is_empty())
        {
            Some(m) => Err(TemplateError::Parse {
                name: String::new(),
                line: m.line,
                message: format!("no such template {:?}", m.called),
            }),
            None => Ok(()),
        }
    }

    /// The set with `text` added under the name "", as Alertmanager clones its set and parses
    /// the text into the clone.
    fn with_text(&self, text: &str) -> Result<Template, TemplateError> {
        let mut set = self.set.clone();
        set.parse("", text, &AmFuncs)
            .map_err(|e| parse_err("", "", e))?;
        Ok(set)
    }

    fn run(&self, text: &str, data: &Data, escaping: Escaping) -> Result<String, TemplateError> {
        if text.is_empty() {
            return Ok(String::new());
        }
        let set = self.with_text(text)?;
        set.execute_escaped("", &objects::data(data), &AmFuncs, escaping)
            .map_err(|e| TemplateError::Exec {
                name: String::new(),
                message: e.0,
            })
    }
}

#[cfg(test)]
mod tests;
