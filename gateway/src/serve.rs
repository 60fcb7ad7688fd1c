//! `promgate serve`: load the configuration, bind the listener, open the store, serve until
//! SIGTERM or Ctrl-C, then shut down in order: stop accepting, finish in-flight requests, let
//! the writer commit what is queued, close the database.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::app::{AppState, router};
use crate::cli::ServeArgs;
use crate::config::Config;
use crate::ingest::remote_write::IngestMetrics;
use crate::store::{Store, StoreMetrics};
use crate::telemetry::HttpMetrics;

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
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("promgate")
        .build()
        .context("starting the async runtime")?
        .block_on(serve(Arc::new(config)))
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn serve(config: Arc<Config>) -> anyhow::Result<()> {
    let mut registry = Registry::with_prefix("promgate");
    let ingest = IngestMetrics::register(&mut registry);
    let http = HttpMetrics::register(&mut registry);
    let store_metrics = StoreMetrics::register(&mut registry);
    let state = Arc::new(AppState::new(config.clone(), registry, ingest, http));

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

    let store = {
        let storage = config.storage.clone();
        let limits = state.limits.clone();
        tokio::task::spawn_blocking(move || Store::open(&storage, limits, store_metrics, now_ms()))
            .await
            .context("opening the store")?
            .with_context(|| format!("opening the store in {}", config.storage.path.display()))?
    };
    let store = Arc::new(store);
    state.set_store(store.clone());
    tracing::info!("Ready.");

    let retention = tokio::spawn(retention_loop(
        store.clone(),
        config.storage.retention,
        config.storage.retention_check_interval,
        shutdown.clone(),
    ));

    let served = server.await.context("HTTP server task")?;
    retention.abort();
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
    retention: Duration,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let cutoff = now_ms() - retention.as_millis() as i64;
        match store.apply_retention(cutoff).await {
            Ok(s) if s.samples_deleted > 0 || s.series_retired > 0 => tracing::info!(
                samples = s.samples_deleted,
                series = s.series_retired,
                records = s.records_deleted,
                "Retention deleted old samples."
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "Retention failed; will retry."),
        }
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
