//! `promgate serve`: load the configuration, bind the listener, open the store, serve until
//! SIGTERM or Ctrl-C, then shut down in order: stop accepting, finish in-flight requests, let
//! the writer commit what is queued, close the database.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::app::{AppState, router};
use crate::cli::ServeArgs;
use crate::config::Config;
use crate::forward::{ForwardMetrics, Forwarder};
use crate::ingest::remote_write::IngestMetrics;
use crate::rules::{RuleManager, RuleMetrics};
use crate::store::{ForwardTarget, Store, StoreMetrics};
use crate::telemetry::HttpMetrics;
use rules_engine::rules::alerting::AlertContext;

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.storage.path = dir;
    }
    // The embedded defaults evaluate the shipped rule pack when it is at hand.
    let pack = std::path::Path::new("alerts.yaml");
    if args.config.is_none() && pack.exists() {
        config.rule_files = vec![pack.to_path_buf()];
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("promgate")
        .build()
        .context("starting the async runtime")?
        .block_on(serve(Arc::new(config), args.config))
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn serve(config: Arc<Config>, config_path: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let forward_metrics = ForwardMetrics::register(&mut registry);
    let own = registry.sub_registry_with_prefix("promgate");
    let ingest = IngestMetrics::register(own);
    let http = HttpMetrics::register(own);
    let store_metrics = StoreMetrics::register(own);
    let rule_metrics = RuleMetrics::register(own);
    let alerting_metrics = crate::alerting::metrics::AlertingMetrics::register(own);
    let alerting_built = crate::alerting::build(config.alertmanager.as_ref(), &config.alerting)
        .map_err(|errors| anyhow::anyhow!("alerting configuration:\n  {}", errors.join("\n  ")))?;
    let rule_groups = crate::rules::load(&config.rule_files)
        .map_err(|errors| anyhow::anyhow!("loading rule files:\n  {}", errors.join("\n  ")))?;
    let state = Arc::new(AppState::new(config.clone(), registry, ingest, http));
    let targets: Vec<ForwardTarget> = config
        .remote_write
        .iter()
        .map(|rw| ForwardTarget {
            name: rw.remote_name(),
            max_backlog_bytes: rw.queue_config.max_backlog_bytes,
            as_received: rw.as_received(&config.external_labels),
        })
        .collect();

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(listen = %config.listen, data = %config.storage.path.display(), "Promgate listening.");

    let shutdown = CancellationToken::new();
    let server = {
        let app = router(state.clone());
        let token = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await
        })
    };
    tokio::spawn({
        let token = shutdown.clone();
        async move {
            wait_for_signal().await;
            tracing::info!("Shutting down: no new connections; finishing in-flight requests.");
            token.cancel();
        }
    });

    // Alert delivery is up before the store reports ready, so `/api/v2/*` answers from the
    // first ready moment. It stops after the rules (which feed it) and before the store closes.
    std::fs::create_dir_all(&config.storage.path)
        .with_context(|| format!("creating {}", config.storage.path.display()))?;
    let alert_shutdown = CancellationToken::new();
    let (alerting, alert_tasks) = crate::alerting::Alerting::start(
        alerting_built,
        config.notifications.clone(),
        config.external_url.clone(),
        &config.storage.path,
        crate::alerting::dispatch::Clock::System,
        alerting_metrics,
        alert_shutdown.clone(),
    )
    .await
    .context("opening the alerting database")?;
    state.set_alerting(alerting.clone());

    let store = {
        let storage = config.storage.clone();
        let limits = state.limits.clone();
        tokio::task::spawn_blocking(move || {
            Store::open(&storage, limits, store_metrics, now_ms(), &targets)
        })
        .await
        .context("opening the store")?
        .with_context(|| format!("opening the store in {}", config.storage.path.display()))?
    };
    let store = Arc::new(store);
    {
        let (push, store) = (state.push.clone(), store.clone());
        let groups = tokio::task::spawn_blocking(move || push.load(&store))
            .await
            .context("loading push groups")?
            .context("loading push groups")?;
        tracing::info!(groups, "Loaded the pushed groups.");
    }
    state.set_store(store.clone());
    let push_maintenance = tokio::spawn(crate::push::maintenance_loop(
        state.clone(),
        store.clone(),
        shutdown.clone(),
    ));
    tracing::info!("Ready.");

    let mut forwarders = Vec::new();
    for rw in &config.remote_write {
        let f = Forwarder::new(
            rw.clone(),
            &config.external_labels,
            store.clone(),
            forward_metrics.clone(),
            state.forward_status.clone(),
        )
        .map_err(anyhow::Error::msg)?;
        forwarders.push(tokio::spawn(f.run(shutdown.clone())));
    }

    tracing::info!(
        groups = rule_groups.len(),
        files = config.rule_files.len(),
        "Evaluating rules."
    );
    let ctx = AlertContext {
        external_labels: rules_engine::Labels::from_pairs(config.external_labels.clone())
            .unwrap_or_default(),
        external_url: config.external_url.clone(),
        server_url: Some(config.external_url.clone()),
    };
    let rules = Arc::new(
        RuleManager::new(
            config.evaluation_interval,
            ctx,
            store.clone(),
            rule_metrics,
            shutdown.clone(),
        )
        .with_alerting(alerting),
    );
    rules.apply(rule_groups);
    let reload = {
        let (rules, initial) = (rules.clone(), config.rule_files.clone());
        Arc::new(move || -> Result<String, String> {
            // The rule file list comes from the configuration file as it is now.
            let loaded = match &config_path {
                Some(p) => Config::load(p).map_err(|e| e.to_string()),
                None => Ok(Config {
                    rule_files: initial.clone(),
                    ..Config::default()
                }),
            }
            .and_then(|c| crate::rules::load(&c.rule_files).map_err(|e| e.join("\n")));
            let specs = loaded.map_err(|e| {
                format!("rules not reloaded, the previous ones stay in force:\n{e}")
            })?;
            let (kept, started, stopped) = rules.apply(specs);
            let msg = format!(
                "rules reloaded: {kept} groups unchanged, {started} (re)started, {stopped} stopped"
            );
            tracing::info!(kept, started, stopped, "Rules reloaded.");
            Ok(msg)
        })
    };
    state.set_rules(rules.clone(), reload);
    tokio::spawn(reload_on_sighup(state.clone(), shutdown.clone()));

    let retention = tokio::spawn(retention_loop(
        store.clone(),
        config.clone(),
        forward_metrics,
        shutdown.clone(),
    ));

    let served = server.await.context("HTTP server task")?;
    retention.abort();
    push_maintenance.abort();
    // Rule groups finish the evaluation under way; forwarders stop at the next request
    // boundary, with what they had acknowledged saved.
    rules.stop().await;
    alert_shutdown.cancel();
    for t in alert_tasks {
        let _ = t.await;
    }
    for t in forwarders {
        let _ = t.await;
    }
    // In-flight requests are done; the writer drains its queue and closes the database.
    tokio::task::spawn_blocking(move || store.close())
        .await
        .context("closing the store")?;
    served.context("HTTP server")?;
    tracing::info!("Stopped.");
    Ok(())
}

async fn retention_loop(
    store: Arc<Store>,
    config: Arc<Config>,
    forward_metrics: ForwardMetrics,
    shutdown: CancellationToken,
) {
    let retention = config.storage.retention;
    let mut tick = tokio::time::interval(config.storage.retention_check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let cutoff = now_ms() - retention.as_millis() as i64;
        match store.apply_retention(cutoff).await {
            Ok(s)
                if s.samples_deleted > 0
                    || s.series_retired > 0
                    || !s.backlog_dropped.is_empty() =>
            {
                for (name, n) in &s.backlog_dropped {
                    forward_metrics.count_backlog_dropped(&config.remote_write, name, *n);
                }
                tracing::info!(
                    samples = s.samples_deleted,
                    series = s.series_retired,
                    records = s.records_deleted,
                    "Retention deleted old samples."
                )
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "Retention failed; will retry."),
        }
    }
}

/// Reloads the rules on SIGHUP, as Prometheus does.
async fn reload_on_sighup(state: Arc<AppState>, shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("Cannot listen for SIGHUP; reload with POST /-/reload.");
            return;
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = hup.recv() => {}
            }
            let state = state.clone();
            match tokio::task::spawn_blocking(move || state.reload()).await {
                Ok(Err(e)) => tracing::error!(error = %e, "Reload failed."),
                Err(e) => tracing::error!(error = %e, "Reload failed."),
                Ok(Ok(_)) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (state, shutdown);
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "Cannot listen for SIGTERM.");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
