//! The HTTP API (axum): the REST mirror of the scheduler API with its OpenAPI document
//! (`rest`), inbound webhook triggers, liveness (`/healthz`), readiness (`/readyz`) and
//! metrics (`/metrics`).
//!
//! `POST /v1/hooks/{name}` starts the job template configured under `[hooks.<name>]` with
//! the request body as its spec, like a Chainlink webhook job run, and answers 202 with the
//! job id. Each hook has its own bearer token. Errors are JSON `{code, message}`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio_util::sync::CancellationToken;

mod dashboard;
mod feed;
mod guard;
mod rest;
mod server;

/// The body of `POST /v1/jobs`, for the fuzz entry points ([`crate::fuzzing`]).
pub(crate) use rest::NewJobJson;

use crate::api::auth::Gate;
use crate::api::grpc::Scheduler;
use crate::api::submit::{SubmitError, submit};
use crate::api::tls::{ApiListener, ConnectionLimits, Protocol};
use crate::config::{Config, HookConfig, SecretSource};
use crate::runtime::Runtime;
use crate::store::{NewJob, RetryPolicy, Store};

/// Errors starting the HTTP server.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address is taken or not ours.
    #[error("cannot listen on {addr} (api.http_addr): {reason}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
}

struct AppState {
    store: Store,
    runtime: Runtime,
    hooks: BTreeMap<String, HookConfig>,
    /// `api.max_hook_body_bytes`.
    max_hook_body_bytes: usize,
    scheduler: Arc<Scheduler>,
    /// The Job Distributor, when `jd.enabled` (and its nodes file reads).
    jd: Option<crate::jd::Distributor>,
    /// The `/v1/stream` snapshots, shared by every open stream.
    feed: feed::SnapshotFeed,
    /// Fires when the node shuts down: event streams end then.
    stop: CancellationToken,
}

/// Binds `api.http_addr`; returns the listener and its actual address.
pub async fn bind(config: &Config) -> Result<(tokio::net::TcpListener, SocketAddr), HttpError> {
    let addr = config.api.http_addr.clone();
    let bind_error = |reason: String| HttpError::Bind {
        addr: addr.clone(),
        reason,
    };
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| bind_error(e.to_string()))?;
    let local = listener
        .local_addr()
        .map_err(|e| bind_error(e.to_string()))?;
    Ok((listener, local))
}

/// Room for everything in a job request besides the spec.
const JOB_REQUEST_OVERHEAD: usize = 64 * 1024;

/// The router, for serving and for tests.
pub fn router(store: Store, runtime: Runtime, config: &Config) -> Router {
    router_until(store, runtime, config, CancellationToken::new())
}

/// The router whose endless answers (event streams) end when `stop` fires, so a node
/// shutting down is not held open by a dashboard.
fn router_until(
    store: Store,
    runtime: Runtime,
    config: &Config,
    stop: CancellationToken,
) -> Router {
    let scheduler = Arc::new(Scheduler::new(
        store.clone(),
        runtime.clone(),
        config.api.clone(),
    ));
    let jd = if config.jd.enabled {
        crate::jd::Distributor::new(store.clone(), config.jd.clone())
            .inspect_err(|e| tracing::warn!("Job Distributor routes of the HTTP API are off: {e}"))
            .ok()
    } else {
        None
    };
    let state = Arc::new(AppState {
        store,
        runtime,
        hooks: config.hooks.clone(),
        max_hook_body_bytes: config.api.max_hook_body_bytes,
        scheduler,
        jd,
        feed: feed::SnapshotFeed::default(),
        stop,
    });
    let jobs_limit = DefaultBodyLimit::max(
        config
            .api
            .max_spec_bytes
            .saturating_mul(2)
            .saturating_add(JOB_REQUEST_OVERHEAD),
    );
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route(
            "/v1/jobs",
            post(rest::create_job)
                .get(rest::list_jobs)
                .layer(jobs_limit),
        )
        .route("/v1/jobs/{id}", get(rest::get_job))
        .route("/v1/jobs/{id}/cancel", post(rest::cancel_job))
        .route("/v1/jobs/{id}/logs", get(rest::job_logs))
        .route("/v1/plugins", get(rest::list_plugins))
        .route("/v1/nodes", get(rest::list_nodes))
        .route("/v1/overview", get(rest::overview))
        .route("/v1/stream", get(rest::stream))
        .route("/v1/jd/proposals/{id}", get(rest::jd_proposal))
        .route("/v1/jd/proposals/{id}/approve", post(rest::jd_approve))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs))
        .route("/v1/hooks/{name}", post(trigger))
        .merge(dashboard::routes())
        .fallback(not_found)
        .with_state(state)
}

/// The OpenAPI document of this API, generated from the handlers and types.
async fn openapi() -> Response {
    use utoipa::OpenApi as _;
    axum::Json(rest::ApiDoc::openapi()).into_response()
}

/// A page that renders the OpenAPI document (self-contained: no external assets).
async fn docs() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("docs.html"))
}

async fn not_found(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("no route {} (see /docs)", uri.path()),
    )
}

/// Serves the HTTP API on `listener` until `shutdown` fires, over TLS unless `gate` is
/// plaintext, each request checked by `gate` (see [`guard`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    gate: Arc<Gate>,
    store: Store,
    runtime: Runtime,
    config: &Config,
    shutdown: CancellationToken,
) {
    let limits = ConnectionLimits::of(&config.api);
    let listener = ApiListener::new(listener, gate.tls(), Protocol::Http, limits);
    let app = router_until(store, runtime, config, shutdown.clone())
        .layer(axum::middleware::from_fn_with_state(gate, guard::guard));
    let header_timeout = std::time::Duration::from_millis(config.api.http_header_timeout_ms);
    server::serve(listener, app, header_timeout, shutdown).await;
}

/// How long `/readyz` waits for Redis before calling it unreachable.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Ready when Redis answers and at least one plugin is loaded: 200 `{"status":"ready"}`,
/// else 503 with the reason (a load balancer takes the node out meanwhile).
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let redis = tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await;
    let redis_error = match redis {
        Ok(Ok(())) => None,
        Ok(Err(e)) if e.is_unavailable() => Some("Redis is unreachable".to_owned()),
        Ok(Err(e)) => Some(format!("Redis answered with an error: {e}")),
        Err(_) => Some(format!(
            "Redis did not answer within {} s",
            READY_TIMEOUT.as_secs()
        )),
    };
    if let Some(reason) = redis_error {
        return error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", reason);
    }
    let plugins = state.runtime.plugins();
    if !plugins.iter().any(|p| p.status == "loaded") {
        let rejected = plugins.iter().filter(|p| p.status != "loaded").count();
        let reason =
            format!("no plugin is loaded ({rejected} rejected; see `jobhost plugins list`)");
        return error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", reason);
    }
    axum::Json(json!({"status": "ready"})).into_response()
}

/// The node's metrics in the OpenMetrics text format (Prometheus scrapes it). While Redis
/// is unreachable the cluster-wide values keep their last reading and
/// `jobhost_cluster_view_up` is 0.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    use crate::metrics::{ClusterView, LocalView, QueueView};
    let plugins = state.runtime.plugins();
    let stats = state.runtime.stats();
    let local = LocalView {
        plugins_loaded: plugins.iter().filter(|p| p.status == "loaded").count(),
        plugins_rejected: plugins.iter().filter(|p| p.status != "loaded").count(),
        instances_in_use: stats.slots.saturating_sub(stats.free_slots),
        instance_slots: stats.slots,
    };
    let job_types = state.runtime.job_types();
    let overview = tokio::time::timeout(READY_TIMEOUT, state.store.overview(&job_types)).await;
    let cluster = match overview {
        Ok(Ok(o)) => Some(ClusterView {
            queues: o
                .queues
                .into_iter()
                .map(|q| QueueView {
                    job_type: q.job_type,
                    depth: q.depth,
                    next_age: std::time::Duration::from_millis(q.next_age_ms),
                })
                .collect(),
            running: o.running,
            scheduled: o.scheduled,
            dead: o.dead,
            nodes: o.nodes,
        }),
        Ok(Err(e)) => {
            tracing::warn!("metrics: cluster view unavailable: {e}");
            None
        }
        Err(_) => {
            tracing::warn!("metrics: Redis did not answer in time");
            None
        }
    };
    let metrics = crate::metrics::global();
    metrics.set_view(&local, cluster.as_ref());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

/// A JSON error answer.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"code": code, "message": message.into()});
    (status, axum::Json(body)).into_response()
}

async fn trigger(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let Some(hook) = state.hooks.get(&name) else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no hook named {name:?}"),
        );
    };
    if !authorized(&headers, &hook.token) {
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "missing or wrong bearer token for this hook",
        );
    }
    // The body is read only once the caller has shown the hook's token.
    let body = match read_limited(body, state.max_hook_body_bytes).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RESOURCE_EXHAUSTED",
                "request body is over the limit of api.max_hook_body_bytes",
            );
        }
        Err(BodyError::Unreadable(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                format!("cannot read the request body: {e}"),
            );
        }
    };
    let Ok(spec) = String::from_utf8(body.to_vec()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "the body must be UTF-8 text",
        );
    };
    let defaults = RetryPolicy::default();
    let job = NewJob {
        submitted_by: format!("hook:{name}"),
        name: format!("hook:{name}"),
        job_type: hook.job_type.clone(),
        spec,
        labels: hook.labels.clone(),
        priority: hook.priority,
        retry: RetryPolicy {
            max_attempts: if hook.max_attempts == 0 {
                defaults.max_attempts
            } else {
                hook.max_attempts
            },
            ..defaults
        },
        ..Default::default()
    };
    match submit(&state.store, &state.runtime, &job).await {
        Ok((id, _)) => (StatusCode::ACCEPTED, axum::Json(json!({"job_id": id}))).into_response(),
        Err(e @ (SubmitError::Invalid { .. } | SubmitError::ValidateCrashed { .. })) => {
            error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", e.to_string())
        }
        Err(e @ (SubmitError::NoPlugin { .. } | SubmitError::Unavailable(_))) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "FAILED_PRECONDITION",
            e.to_string(),
        ),
        Err(e @ SubmitError::Busy) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            e.to_string(),
        ),
        Err(SubmitError::QueueFull(message)) => {
            error(StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED", message)
        }
        Err(SubmitError::Store(e)) => {
            tracing::warn!(hook = %name, "hook trigger failed: {e}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "the job store is unavailable; retry shortly",
            )
        }
    }
}

/// Why a request body could not be read.
enum BodyError {
    /// It is longer than allowed.
    TooLarge,
    /// The connection failed or the framing was bad.
    Unreadable(String),
}

/// Reads `body` whole, refusing more than `limit` bytes without buffering them.
async fn read_limited(body: axum::body::Body, limit: usize) -> Result<Bytes, BodyError> {
    use http_body_util::BodyExt as _;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Unreadable(e.to_string())),
    }
}

/// True if the request carries `Authorization: Bearer <token>` matching the hook's token.
/// The token is read from its source on each request (so it can be rotated) and compared
/// in constant time; a hook whose token source is missing accepts nothing.
fn authorized(headers: &HeaderMap, source: &str) -> bool {
    let Some(expected) = SecretSource::parse(source).ok().and_then(|s| s.read()) else {
        return false;
    };
    let Some(given) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::api::auth::bearer_token)
    else {
        return false;
    };
    constant_time_eq(given.as_bytes(), expected.as_bytes()) && !expected.is_empty()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
