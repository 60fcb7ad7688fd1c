//! promgate's configuration: one YAML root, unknown fields rejected, `${VAR}` expanded from the
//! environment before parsing (for secrets), every error naming file, line and field.
//!
//! Each subsystem owns its section: [`StorageConfig`] here, [`crate::validate::LimitsConfig`]
//! for ingest validation. Sections for rules, forwarding and alert delivery arrive with those
//! features; until then they are unknown fields and rejected as such.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::validate::LimitsConfig;

/// The root of promgate's configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the HTTP listener (remote write, APIs, `/metrics`).
    pub listen: SocketAddr,
    /// The SQLite window.
    pub storage: StorageConfig,
    /// Validation rules and limits applied to everything ingested.
    pub limits: LimitsConfig,
    /// Labels added to every forwarded series that does not have them (prometheus.yml's
    /// `global.external_labels`).
    pub external_labels: std::collections::BTreeMap<String, String>,
    /// Where accepted samples are forwarded (prometheus.yml's `remote_write`).
    pub remote_write: Vec<crate::forward::config::RemoteWriteConfig>,
    /// Prometheus rule files to evaluate (paths relative to the configuration file). With no
    /// configuration file at all, `alerts.yaml` in the working directory is used if present.
    pub rule_files: Vec<PathBuf>,
    /// How often rule groups without their own `interval` are evaluated.
    #[serde(deserialize_with = "de_duration")]
    pub evaluation_interval: Duration,
    /// The URL alert templates see as `$externalURL`.
    pub external_url: String,
    /// Pushgateway-style push: admin API, TTL and aggregation per group.
    pub push: crate::push::config::PushConfig,
    /// An alertmanager.yml (relative to this file) whose `route`, `receivers`,
    /// `inhibit_rules`, `templates` and `global` promgate routes and delivers alerts with.
    pub alertmanager_config: Option<PathBuf>,
    /// The same sections written inline instead.
    pub alertmanager: Option<crate::alerting::AlertmanagerFile>,
    /// prometheus.yml's `alerting` section: `alertmanagers` to hand promgate's rule alerts to.
    pub alerting: crate::alerting::AlertingSection,
    /// Delivery settings beyond alertmanager.yml (outbox retries, resolve and re-fire policy).
    pub notifications: crate::alerting::config::NotificationSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9091)),
            storage: StorageConfig::default(),
            limits: LimitsConfig::default(),
            external_labels: Default::default(),
            remote_write: Vec::new(),
            rule_files: Vec::new(),
            evaluation_interval: Duration::from_secs(60),
            external_url: String::new(),
            push: Default::default(),
            alertmanager_config: None,
            alertmanager: None,
            alerting: Default::default(),
            notifications: Default::default(),
        }
    }
}

/// The `storage` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory holding the SQLite database.
    pub path: PathBuf,
    /// How long samples are kept; older ones are deleted and series left empty are retired.
    #[serde(deserialize_with = "de_duration")]
    pub retention: Duration,
    /// How often the retention task runs.
    #[serde(deserialize_with = "de_duration")]
    pub retention_check_interval: Duration,
    /// `fsync` every commit (SQLite `synchronous=FULL`). Off by default: commits survive a
    /// crash or SIGKILL of promgate either way; this adds survival of a power loss or kernel
    /// crash at the cost of one fsync per commit.
    pub fsync: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data"),
            retention: Duration::from_secs(2 * 3600),
            retention_check_interval: Duration::from_secs(60),
            fsync: false,
        }
    }
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: environment variable {var} is not set")]
    MissingEnv {
        path: String,
        line: usize,
        var: String,
    },
    #[error("{path}:{line}: unterminated ${{...}} reference")]
    BadEnvRef { path: String, line: usize },
    #[error("{path}:{location}{message}")]
    Parse {
        path: String,
        location: String,
        message: String,
    },
    #[error("{path}: {}", .errors.join("; "))]
    Invalid { path: String, errors: Vec<String> },
}

impl Config {
    /// Reads, expands, parses and validates a configuration file. Rule file paths are made
    /// relative to the file's directory, and the rule files are loaded and checked too.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let display = path.display().to_string();
        let raw = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: display.clone(),
            source,
        })?;
        let mut cfg = Self::parse(&raw, &display, |v| std::env::var(v).ok())?;
        let base = path.parent().unwrap_or(Path::new("."));
        for f in &mut cfg.rule_files {
            if f.is_relative() {
                *f = base.join(&f);
            }
        }
        crate::rules::load(&cfg.rule_files).map_err(|errors| ConfigError::Invalid {
            path: display.clone(),
            errors,
        })?;
        if let Some(am) = &mut cfg.alertmanager {
            for t in &mut am.templates {
                if t.is_relative() {
                    *t = base.join(&*t);
                }
            }
        }
        if let Some(f) = &cfg.alertmanager_config {
            let f = if f.is_relative() {
                base.join(f)
            } else {
                f.clone()
            };
            let am =
                crate::alerting::AlertmanagerFile::load(&f).map_err(|e| ConfigError::Invalid {
                    path: display.clone(),
                    errors: vec![format!("alertmanager_config: {e}")],
                })?;
            cfg.alertmanager = Some(am);
        }
        crate::alerting::build(cfg.alertmanager.as_ref(), &cfg.alerting).map_err(|errors| {
            ConfigError::Invalid {
                path: display,
                errors,
            }
        })?;
        Ok(cfg)
    }

    /// Parses configuration text; `env` resolves `${VAR}` references. `path` names the source
    /// in errors.
    pub fn parse(
        text: &str,
        path: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let expanded = expand_env(text, path, env)?;
        // An empty file (or one holding only comments) is the default configuration.
        let cfg: Config = if expanded.trim().is_empty()
            || expanded
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            Config::default()
        } else {
            serde_norway::from_str(&expanded).map_err(|e| ConfigError::Parse {
                path: path.to_string(),
                location: e
                    .location()
                    .map(|l| format!("{}:{}: ", l.line(), l.column()))
                    .unwrap_or_else(|| " ".to_string()),
                message: strip_location(&e.to_string()),
            })?
        };
        let mut errors = cfg.validate();
        if let Some(am) = &cfg.alertmanager {
            if cfg.alertmanager_config.is_some() {
                errors.push("alertmanager: set either alertmanager_config (a file) or alertmanager (inline), not both".into());
            }
            if let Err(e) = am.check(&expanded, path) {
                errors.extend(e);
            }
        }
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_string(),
                errors,
            })
        }
    }

    /// Every semantic error in the configuration, each naming its field.
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.storage.retention < Duration::from_secs(60) {
            errors.push("storage.retention: must be at least 1m".to_string());
        }
        if self.evaluation_interval.is_zero() {
            errors.push("evaluation_interval: must be positive".to_string());
        }
        if self.storage.retention_check_interval.is_zero() {
            errors.push("storage.retention_check_interval: must be positive".to_string());
        }
        errors.extend(self.limits.validate());
        errors.extend(self.push.validate());
        errors.extend(self.notifications.validate());
        for (name, value) in &self.external_labels {
            if !rules_engine::model::is_valid_label_name(name) || name.starts_with("__") {
                errors.push(format!("external_labels: invalid label name {name:?}"));
            }
            if value.is_empty() {
                errors.push(format!("external_labels.{name}: empty value"));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, rw) in self.remote_write.iter().enumerate() {
            errors.extend(rw.validate(i));
            if !names.insert(rw.remote_name()) {
                errors.push(format!(
                    "remote_write[{i}]: duplicate name {:?} (set distinct `name`s)",
                    rw.remote_name()
                ));
            }
        }
        errors
    }
}

/// Replaces `${VAR}` with the variable's value; `$$` stands for a literal `$`. A reference
/// starting with a digit is no variable name: `${1}` stays as written, so relabel
/// replacements keep working unescaped (named groups need `$${name}`).
fn expand_env(
    text: &str,
    path: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(tail) = after.strip_prefix('{')
                && !tail.starts_with(|c: char| c.is_ascii_digit())
            {
                let end = tail.find('}').ok_or(ConfigError::BadEnvRef {
                    path: path.to_string(),
                    line: i + 1,
                })?;
                let var = &tail[..end];
                let value = env(var).ok_or_else(|| ConfigError::MissingEnv {
                    path: path.to_string(),
                    line: i + 1,
                    var: var.to_string(),
                })?;
                out.push_str(&value);
                rest = &tail[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// serde_norway appends " at line L column C" to messages; the location already leads ours.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(" column ") => msg[..i].to_string(),
        _ => msg.to_string(),
    }
}

/// Deserializes a Prometheus duration (`90s`, `1h30m`, `2d`, `0s`).
pub fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    // promql-parser refuses zero durations, which Prometheus's config format allows.
    if s.starts_with('0') && s.chars().all(|c| c == '0' || c.is_ascii_alphabetic()) {
        return Ok(Duration::ZERO);
    }
    promql_parser::util::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "promgate.yml", |v| {
            (v == "SECRET").then(|| "s3cr3t".to_string())
        })
    }

    #[test]
    fn empty_file_is_the_default() {
        let c = parse("# nothing\n").unwrap();
        assert_eq!(c.listen, SocketAddr::from(([0, 0, 0, 0], 9091)));
        assert_eq!(c.storage.retention, Duration::from_secs(7200));
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let err = parse("storage:\n  path: /tmp/x\n  retnetion: 1h\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("promgate.yml:3:"), "{err}");
        assert!(err.contains("unknown field `retnetion`"), "{err}");
    }

    #[test]
    fn bad_duration_is_located() {
        let err = parse("storage:\n  retention: 2 hours\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("promgate.yml:2:"), "{err}");
        assert!(err.contains("invalid duration"), "{err}");
    }

    #[test]
    fn env_expansion() {
        let c = parse("storage:\n  path: /var/${SECRET}\n  retention: 3h\n").unwrap();
        assert_eq!(c.storage.path, PathBuf::from("/var/s3cr3t"));
        let err = parse("\nstorage:\n  path: ${NOPE}\n")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "promgate.yml:3: environment variable NOPE is not set");
        let c = parse("storage:\n  path: /a$$b\n").unwrap();
        assert_eq!(c.storage.path, PathBuf::from("/a$b"));
        let c = parse("storage:\n  path: /a${1}b\n").unwrap();
        assert_eq!(c.storage.path, PathBuf::from("/a${1}b"));
    }

    #[test]
    fn semantic_errors_are_all_reported() {
        let err = parse("storage:\n  retention: 10s\n  retention_check_interval: 0s\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("storage.retention: must be at least 1m"),
            "{err}"
        );
        assert!(err.contains("storage.retention_check_interval"), "{err}");
    }
}
