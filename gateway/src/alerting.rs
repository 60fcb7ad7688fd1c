//! Alert delivery inside promgate, the way Alertmanager 0.25 does it and configured the same
//! way: alerts from promgate's own rules and from `POST /api/v2/alerts` are routed through the
//! alertmanager.yml route tree, grouped, inhibited and silenced, and the notifications written
//! to a durable outbox before the `notifiers` integrations deliver them. promgate's rule alerts
//! also go to the Alertmanagers of prometheus.yml's `alerting.alertmanagers`, as Prometheus
//! sends them.
//!
//! - [`matcher`]: Alertmanager's label matchers (parse, print, match).
//! - [`config`]: `route`, `inhibit_rules` and the delivery settings, checked at parse time;
//!   [`AlertmanagerFile`] is the whole alertmanager.yml.
//! - [`route`]: the routing tree. [`alert`]: the alert, its fingerprint and merge rules.
//! - [`inhibit`], [`silence`]: what mutes an alert.
//! - [`dispatch`]: aggregation groups and their timers, the notification log.
//! - [`db`]: silences, notification log and outbox in `alerting.db`. [`outbox`]: delivery.
//! - [`intake`]: alerts from rules (Prometheus's notifier semantics) and to downstream
//!   Alertmanagers. [`api`]: `/api/v2/alerts`, `/api/v2/alerts/groups`, `/api/v2/silences`.

pub mod alert;
pub mod api;
pub mod config;
pub mod db;
pub mod dispatch;
pub mod inhibit;
pub mod intake;
pub mod matcher;
pub mod metrics;
pub mod outbox;
pub mod route;
pub mod silence;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use self::config::{InhibitRuleConfig, NotificationSettings, RouteConfig};
use self::db::{Db, IntegrationKey};
use self::dispatch::{Clock, Dispatcher, IntegrationInfo, Routing};
use self::metrics::AlertingMetrics;
use self::outbox::Outbox;
use self::silence::Silences;

/// alertmanager.yml: the sections promgate implements. Unknown sections (for example
/// `time_intervals`) are refused by name.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerFile {
    #[serde(default)]
    pub global: Option<notifiers::GlobalConfig>,
    #[serde(default)]
    pub route: Option<RouteConfig>,
    #[serde(default)]
    pub receivers: Vec<notifiers::ReceiverConfig>,
    #[serde(default)]
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// Template file globs, relative to the file they are written in.
    #[serde(default)]
    pub templates: Vec<PathBuf>,
}

/// prometheus.yml's `alerting` section.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingSection {
    /// Alertmanagers promgate's rule alerts are sent to, as Prometheus sends them.
    #[serde(default)]
    pub alertmanagers: Vec<notifiers::alertmanager::AlertmanagerConfig>,
}

/// What the configuration says about alert delivery, checked and ready to run.
pub struct Built {
    pub global: notifiers::GlobalConfig,
    pub routing: Option<(RouteConfig, Vec<InhibitRuleConfig>)>,
    pub integrations: Vec<(IntegrationKey, notifiers::Integration)>,
    pub downstream: Vec<notifiers::alertmanager::AlertmanagerClient>,
}

impl AlertmanagerFile {
    /// Reads alertmanager.yml; errors carry `path:line:col`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut f = Self::parse(&text, &path.display().to_string())?;
        let base = path.parent().unwrap_or(Path::new("."));
        for t in &mut f.templates {
            if t.is_relative() {
                *t = base.join(&*t);
            }
        }
        f.check(&text, &path.display().to_string())
            .map_err(|e| e.join("\n"))?;
        Ok(f)
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, String> {
        serde_norway::from_str(text).map_err(|e| {
            let loc = e
                .location()
                .map(|l| format!("{}:{}: ", l.line(), l.column()))
                .unwrap_or_else(|| " ".into());
            let msg = e.to_string();
            let msg = match msg.rfind(" at line ") {
                Some(i) => msg[..i].to_string(),
                None => msg,
            };
            format!("{path}:{loc}{msg}")
        })
    }

    /// The cross-checks Alertmanager makes after parsing (routes name existing receivers,
    /// receiver names unique), each located in `text` where possible.
    pub fn check(&self, text: &str, path: &str) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let at = |key: &str, value: &str| match config::locate(text, key, value) {
            Some(l) => format!("{path}:{l}: "),
            None => format!("{path}: "),
        };
        let mut names = std::collections::HashSet::new();
        for r in &self.receivers {
            if r.name.is_empty() {
                errors.push(format!("{path}: missing name in receiver"));
            } else if !names.insert(r.name.as_str()) {
                errors.push(format!(
                    "{}notification config name {:?} is not unique",
                    at("name", &r.name),
                    r.name
                ));
            }
        }
        match &self.route {
            None if !self.receivers.is_empty() => {
                errors.push(format!("{path}: no routes provided"))
            }
            None => {}
            Some(route) => {
                let list: Vec<&str> = names.iter().copied().collect();
                for (node, msg) in config::check_routing(route, &list) {
                    let loc = match msg.split('"').nth(1) {
                        Some(name) if msg.starts_with("undefined receiver") => at("receiver", name),
                        _ => format!("{path}: "),
                    };
                    errors.push(format!("{loc}{node}: {msg}"));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Builds integrations and downstream clients from checked configuration; every problem
/// (bad template, missing credentials, bad URL) is reported.
pub fn build(
    am: Option<&AlertmanagerFile>,
    section: &AlertingSection,
) -> Result<Built, Vec<String>> {
    let mut errors = Vec::new();
    let global = match am.and_then(|a| a.global.clone()) {
        Some(g) => g,
        None => serde_norway::from_str("{}").map_err(|e| vec![format!("global: {e}")])?,
    };
    let mut integrations = Vec::new();
    let mut routing = None;
    if let Some(am) = am {
        let templates = match notifiers::Templates::load(&am.templates) {
            Ok(t) => Arc::new(t),
            Err(e) => {
                errors.push(e.to_string());
                Arc::new(notifiers::Templates::default())
            }
        };
        for r in &am.receivers {
            match notifiers::build_receiver(r, &global, templates.clone()) {
                Ok(list) => {
                    for i in list {
                        integrations.push((
                            IntegrationKey {
                                receiver: r.name.clone(),
                                integration: i.name.to_string(),
                                index: i.index,
                            },
                            i,
                        ));
                    }
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        if let Some(route) = &am.route {
            routing = Some((route.clone(), am.inhibit_rules.clone()));
        }
    }
    let mut downstream = Vec::new();
    for (i, c) in section.alertmanagers.iter().enumerate() {
        match notifiers::alertmanager::AlertmanagerClient::new(c, i) {
            Ok(c) => downstream.push(c),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(Built {
            global,
            routing,
            integrations,
            downstream,
        })
    } else {
        Err(errors)
    }
}

/// Alert delivery at run time, shared by the API handlers and the rule scheduler.
pub struct Alerting {
    pub dispatcher: Option<Arc<Dispatcher>>,
    pub silences: Arc<Mutex<Silences>>,
    pub db: Arc<Db>,
    pub clock: Clock,
    pub metrics: AlertingMetrics,
    pub resolve_timeout: std::time::Duration,
    pub settings: NotificationSettings,
    pub downstream: intake::Downstream,
}

impl Alerting {
    /// Opens `alerting.db` in `data_dir`, loads silences and the notification log, queues the
    /// outbox's undelivered rows and starts the dispatcher, the delivery workers and the
    /// downstream sender.
    pub async fn start(
        built: Built,
        settings: NotificationSettings,
        external_url: String,
        data_dir: &Path,
        clock: Clock,
        metrics: AlertingMetrics,
        shutdown: CancellationToken,
    ) -> Result<(Arc<Self>, Vec<tokio::task::JoinHandle<()>>), db::DbError> {
        let path = data_dir.join("alerting.db");
        let (db, saved, log, pending) = tokio::task::spawn_blocking(move || {
            let db = Db::open(&path)?;
            let saved = db.load_silences()?;
            let log = db.load_log()?;
            let pending = db.pending()?;
            Ok::<_, db::DbError>((db, saved, log, pending))
        })
        .await
        .map_err(|e| db::DbError::Task(e.to_string()))??;
        let db = Arc::new(db);
        let silences = Arc::new(Mutex::new(Silences::from_saved(saved)));
        let mut tasks = Vec::new();
        let dispatcher = match built.routing {
            Some((route, inhibit)) => {
                let mut receivers: HashMap<String, Vec<IntegrationInfo>> = HashMap::new();
                for (k, i) in &built.integrations {
                    receivers
                        .entry(k.receiver.clone())
                        .or_default()
                        .push(IntegrationInfo {
                            key: k.clone(),
                            send_resolved: i.send_resolved,
                        });
                }
                let outbox = Arc::new(Outbox::new(
                    built.integrations,
                    db.clone(),
                    settings.clone(),
                    clock,
                    metrics.clone(),
                ));
                if !pending.is_empty() {
                    tracing::info!(
                        notifications = pending.len(),
                        "Resuming undelivered notifications from the outbox."
                    );
                }
                outbox.submit(pending);
                tasks.extend(outbox.start(shutdown.clone()));
                let d = Arc::new(Dispatcher::new(
                    Routing {
                        tree: route::Route::new(&route),
                        receivers,
                        inhibitor: inhibit::Inhibitor::new(&inhibit),
                        external_url,
                    },
                    log,
                    clock,
                    settings.clone(),
                    db.clone(),
                    outbox,
                    silences.clone(),
                    metrics.clone(),
                ));
                tasks.push(tokio::spawn(d.clone().run(shutdown.clone())));
                Some(d)
            }
            None => None,
        };
        let (downstream, task) =
            intake::Downstream::start(built.downstream, metrics.clone(), shutdown.clone());
        tasks.extend(task);
        Ok((
            Arc::new(Self {
                dispatcher,
                silences,
                db,
                clock,
                metrics,
                resolve_timeout: built.global.resolve_timeout,
                settings,
                downstream,
            }),
            tasks,
        ))
    }
}
