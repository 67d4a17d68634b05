//! The HTTP API (axum): the REST mirror of the scheduler API with its OpenAPI document,
//! the dashboard and its live stream, inbound webhook triggers, liveness (`/healthz`),
//! readiness (`/readyz`) and metrics (`/metrics`). Errors are JSON `{code, message}`
//! ([`error`]).
//!
//! One module per group of routes (`jobs`, `status`, `stream`, `jd`, `hooks`, `health`,
//! `openapi`, `dashboard`); `json` holds the bodies, `state` what every handler is given,
//! `guard` the gate every request passes and `server` the hyper server with its timeouts.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

mod dashboard;
pub mod error;
mod feed;
mod guard;
mod health;
mod hooks;
mod jd;
mod jobs;
pub mod json;
mod openapi;
mod server;
mod state;
mod status;
mod stream;

use crate::api::Services;
use crate::api::listener::{ApiListener, ConnectionLimits, Protocol};
use jobhost_config::Config;
use state::AppState;

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
/// Largest body of `POST /v1/jobs:batch`: each job is also held to `api.max_spec_bytes`, and
/// the batch to `api.max_batch_jobs`; this bounds what one request makes the node parse.
const BATCH_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The router of `services`, for tests: its event streams never end by themselves.
pub fn router(services: Services) -> Router {
    router_until(services, CancellationToken::new())
}

/// The router whose endless answers (event streams) end when `stop` fires, so a node
/// shutting down is not held open by a dashboard.
fn router_until(services: Services, stop: CancellationToken) -> Router {
    let jobs_limit = DefaultBodyLimit::max(
        services
            .config
            .api
            .max_spec_bytes
            .saturating_mul(2)
            .saturating_add(JOB_REQUEST_OVERHEAD),
    );
    let batch_limit = DefaultBodyLimit::max(BATCH_BODY_LIMIT);
    let state = Arc::new(AppState {
        services,
        feed: feed::SnapshotFeed::new(|services| {
            Box::pin(async move { status::snapshot_tick(&services).await })
        }),
        stop,
    });
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route(
            "/v1/jobs",
            post(jobs::create_job)
                .get(jobs::list_jobs)
                .layer(jobs_limit),
        )
        .route("/v1/jobs:batch", post(jobs::create_jobs).layer(batch_limit))
        .route("/v1/jobs/{id}", get(jobs::get_job))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel_job))
        .route("/v1/jobs/{id}/logs", get(jobs::job_logs))
        .route("/v1/history", get(jobs::history))
        .route("/v1/plugins", get(status::list_plugins))
        .route("/v1/nodes", get(status::list_nodes))
        .route("/v1/overview", get(status::overview))
        .route("/v1/stream", get(stream::stream))
        .route("/v1/jd/proposals/{id}", get(jd::proposal))
        .route("/v1/jd/proposals/{id}/approve", post(jd::approve))
        .route("/openapi.json", get(openapi::openapi))
        .route("/docs", get(openapi::docs))
        .route("/v1/hooks/{name}", post(hooks::trigger))
        .merge(dashboard::routes())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
}

/// Serves the HTTP API of `services` on `listener` until `shutdown` fires, over TLS unless
/// the gate is plaintext, each request checked by the gate (see `guard`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    services: Services,
    shutdown: CancellationToken,
) {
    let api = &services.config.api;
    let limits = ConnectionLimits::of(api);
    let header_timeout = std::time::Duration::from_millis(api.http_header_timeout_ms);
    let gate = services.gate.clone();
    let listener = ApiListener::new(listener, gate.tls(), Protocol::Http, limits);
    let app = router_until(services, shutdown.clone())
        .layer(axum::middleware::from_fn_with_state(gate, guard::guard));
    server::serve(listener, app, header_timeout, shutdown).await;
}
