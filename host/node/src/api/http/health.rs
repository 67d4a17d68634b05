//! Liveness (`/healthz`), readiness (`/readyz`) and the node's metrics (`/metrics`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::state::AppState;

/// Alive: the process answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// How long `/readyz` waits for Redis before calling it unreachable.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Ready when Redis answers, the plugins folder has been read through once (its plugins
/// compile in the background from the start; the APIs answer meanwhile) and at least one
/// plugin is loaded: 200 `{"status":"ready"}`, with `"compiling": [ids]` while changed files
/// compile, else 503 with the reason (a load balancer takes the node out meanwhile).
pub async fn ready(State(state): State<Arc<AppState>>) -> ApiResult<Json<serde_json::Value>> {
    let services = &state.services;
    let redis = tokio::time::timeout(READY_TIMEOUT, services.store.ping()).await;
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
        return Err(ApiError::unavailable(reason));
    }
    let plugins = services.runtime.plugins();
    let compiling = services.runtime.compiling();
    let loaded = plugins.iter().any(|p| p.status == "loaded");
    if !services.runtime.first_sync_done() {
        return Err(ApiError::unavailable(format!(
            "plugins are still compiling: {}",
            if compiling.is_empty() {
                "(reading the folder)".to_owned()
            } else {
                compiling.join(", ")
            }
        )));
    }
    if !loaded {
        let rejected = plugins.iter().filter(|p| p.status == "rejected").count();
        let reason =
            format!("no plugin is loaded ({rejected} rejected; see `jobhost plugins list`)");
        return Err(ApiError::unavailable(reason));
    }
    if compiling.is_empty() {
        return Ok(Json(json!({"status": "ready"})));
    }
    Ok(Json(json!({"status": "ready", "compiling": compiling})))
}

/// The node's metrics in the OpenMetrics text format (Prometheus scrapes it). While Redis
/// is unreachable the cluster-wide values keep their last reading and
/// `jobhost_cluster_view_up` is 0.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let services = &state.services;
    use crate::metrics::{ClusterView, LocalView, QueueView};
    let plugins = services.runtime.plugins();
    let stats = services.runtime.stats();
    let local = LocalView {
        plugins_loaded: plugins.iter().filter(|p| p.status == "loaded").count(),
        plugins_rejected: plugins.iter().filter(|p| p.status == "rejected").count(),
        plugins_compiling: plugins.iter().filter(|p| p.status == "compiling").count(),
        instances_in_use: stats.slots.saturating_sub(stats.free_slots),
        instance_slots: stats.slots,
        instances_kept: stats.kept_instances,
    };
    let job_types = services.runtime.job_types();
    let overview = tokio::time::timeout(READY_TIMEOUT, services.store.overview(&job_types)).await;
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
            if !e.is_unavailable() {
                tracing::warn!("metrics: cluster view unavailable: {e}");
            }
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
