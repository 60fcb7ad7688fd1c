//! The HTTP application: shared state and the router.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;

use crate::api;
use crate::config::Config;
use crate::ingest::remote_write::{self, IngestMetrics, TokenBucket};
use crate::store::Store;
use crate::telemetry::HttpMetrics;
use crate::validate::LimitsConfig;

/// Everything handlers share. The store is set once it has opened, so `/-/healthy` answers
/// while the window is still being loaded.
pub struct AppState {
    pub config: Arc<Config>,
    pub limits: Arc<LimitsConfig>,
    store: OnceLock<Arc<Store>>,
    pub registry: Registry,
    pub ingest: IngestMetrics,
    pub http: HttpMetrics,
    pub rate_limit: Option<Mutex<TokenBucket>>,
    /// Remote-write targets' queue state, for `/api/v1/status/forward`.
    pub forward_status: crate::forward::StatusBoard,
    /// Pushgateway-style groups.
    pub push: Arc<crate::push::PushState>,
    rules: OnceLock<Arc<crate::rules::RuleManager>>,
    /// Reloads the rule files (`POST /-/reload`, SIGHUP); set once rules run.
    reload: OnceLock<Arc<dyn Fn() -> Result<String, String> + Send + Sync>>,
    last_warning: Mutex<Option<Instant>>,
    /// Alert routing and delivery; set once the alerting database is open.
    alerting: OnceLock<Arc<crate::alerting::Alerting>>,
}

/// Minimum time between two repeats of a throttled warning.
const WARN_EVERY: Duration = Duration::from_secs(10);

impl AppState {
    pub fn new(
        config: Arc<Config>,
        registry: Registry,
        ingest: IngestMetrics,
        http: HttpMetrics,
    ) -> Self {
        let limits = Arc::new(config.limits.clone());
        let rate_limit = (limits.ingestion_rate > 0.0).then(|| {
            Mutex::new(TokenBucket::new(
                limits.ingestion_rate,
                limits.ingestion_burst,
            ))
        });
        let mut registry = registry;
        let push = Arc::new(crate::push::PushState::new(
            config.push.clone(),
            &mut registry,
        ));
        Self {
            push,
            config,
            limits,
            store: OnceLock::new(),
            registry,
            ingest,
            http,
            rate_limit,
            forward_status: Default::default(),
            rules: OnceLock::new(),
            reload: OnceLock::new(),
            last_warning: Mutex::new(None),
            alerting: OnceLock::new(),
        }
    }

    pub fn store(&self) -> Option<Arc<Store>> {
        self.store.get().cloned()
    }

    /// Marks the store open; from then on `/-/ready` answers 200.
    pub fn set_store(&self, store: Arc<Store>) {
        let _ = self.store.set(store);
    }

    pub fn alerting(&self) -> Option<Arc<crate::alerting::Alerting>> {
        self.alerting.get().cloned()
    }

    pub fn set_alerting(&self, a: Arc<crate::alerting::Alerting>) {
        let _ = self.alerting.set(a);
    }

    /// The scheduled rule groups (none until rules are loaded).
    pub fn rules(&self) -> crate::rules::Groups {
        self.rules.get().map(|m| m.groups()).unwrap_or_default()
    }

    pub fn set_rules(
        &self,
        manager: Arc<crate::rules::RuleManager>,
        reload: Arc<dyn Fn() -> Result<String, String> + Send + Sync>,
    ) {
        let _ = self.rules.set(manager);
        let _ = self.reload.set(reload);
    }

    /// Reloads the rule files; the message says what changed, or why nothing did.
    pub fn reload(&self) -> Result<String, String> {
        match self.reload.get() {
            Some(f) => f(),
            None => Err("promgate is starting: nothing to reload yet".into()),
        }
    }

    /// Runs `log` at most once per [`WARN_EVERY`].
    pub fn warn_throttled(&self, log: impl FnOnce()) {
        let mut last = self.last_warning.lock();
        if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            drop(last);
            log();
        }
    }
}

/// The router with every endpoint.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/write", post(remote_write::remote_write))
        .route(
            "/api/v1/query",
            get(api::query::instant).post(api::query::instant),
        )
        .route(
            "/api/v1/query_range",
            get(api::query::range).post(api::query::range),
        )
        .route(
            "/api/v1/series",
            get(api::series::series).post(api::series::series),
        )
        .route(
            "/api/v1/export",
            get(api::series::export).post(api::series::export),
        )
        .route(
            "/api/v1/labels",
            get(api::meta::labels).post(api::meta::labels),
        )
        .route("/api/v1/label/{name}/values", get(api::meta::label_values))
        .route("/api/v1/metadata", get(api::meta::metadata))
        .route("/api/v1/status/tsdb", get(api::meta::tsdb_status))
        .route("/api/v1/status/buildinfo", get(api::meta::buildinfo))
        .route("/api/v1/status/forward", get(forward_status))
        .route("/api/v1/rules", get(api::rules::rules))
        .route("/api/v1/alerts", get(api::rules::alerts))
        .route("/metrics", get(crate::push::handler::metrics))
        .route(
            "/metrics/{*rest}",
            axum::routing::put(crate::push::handler::push)
                .post(crate::push::handler::push)
                .delete(crate::push::handler::push),
        )
        .route("/api/v1/metrics", get(crate::push::handler::api_metrics))
        .route(
            "/api/v1/admin/wipe",
            axum::routing::put(crate::push::handler::wipe),
        )
        .route(
            "/api/v2/alerts",
            get(crate::alerting::api::get_alerts).post(crate::alerting::api::post_alerts),
        )
        .route(
            "/api/v2/alerts/groups",
            get(crate::alerting::api::get_groups),
        )
        .route(
            "/api/v2/silences",
            get(crate::alerting::api::get_silences).post(crate::alerting::api::post_silence),
        )
        .route(
            "/api/v2/silence/{id}",
            get(crate::alerting::api::get_silence).delete(crate::alerting::api::delete_silence),
        )
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload).put(reload))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        // Bodies are capped where they are read (with a message naming the limit); axum's own
        // 2 MB default would refuse remote-write requests first.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// `GET /api/v1/status/forward`: each remote-write target's cursor, backlog and last error.
async fn forward_status(State(state): State<Arc<AppState>>) -> Response {
    api::error::success(state.forward_status.lock().clone())
}

/// `POST /-/reload`: 200 with what changed, or 500 with why the old rules stay in force.
async fn reload(State(state): State<Arc<AppState>>) -> Response {
    match tokio::task::spawn_blocking(move || state.reload()).await {
        Ok(Ok(msg)) => (StatusCode::OK, msg).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn healthy() -> &'static str {
    "Healthy.\n"
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.store().is_some() {
        (StatusCode::OK, "Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Loading the window.\n").into_response()
    }
}

/// Counts requests and their duration by route and status.
async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let handler = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let resp = next.run(req).await;
    state
        .http
        .observe(handler, resp.status().as_u16(), started.elapsed());
    resp
}
