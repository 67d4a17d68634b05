//! What the cluster looks like: `GET /v1/plugins`, `/v1/nodes`, `/v1/overview`, and the
//! snapshot of all three (with the newest jobs) that `/v1/stream` sends.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use jobhost_proto::scheduler::{self as proto, job_scheduler_server::JobScheduler};
use tonic::{Request, Status};

use super::error::{ApiResult, ErrorBody};
use super::feed::Tick;
use super::json::{
    JobJson, NodeJson, NodeList, OverviewJson, PluginJson, PluginList, QueueJson, Snapshot,
    non_empty,
};
use super::state::AppState;
use crate::api::Services;
use crate::api::grpc::store_status;

/// Jobs in a snapshot.
const SNAPSHOT_JOBS: u32 = 50;
/// Most bytes of a spec, output or reason in a snapshot (the rest is cut, saying so).
const SNAPSHOT_TEXT_BYTES: usize = 2048;

async fn plugins(services: &Services) -> Result<Vec<PluginJson>, Status> {
    let answer = services
        .scheduler
        .list_plugins(Request::new(proto::ListPluginsRequest {}))
        .await?;
    Ok(answer
        .into_inner()
        .plugins
        .into_iter()
        .map(|p| PluginJson {
            id: p.id,
            status: p.status,
            version: p.version,
            job_types: p.job_types,
            capabilities: p.capabilities,
            grants: p.grants,
            rejection: non_empty(p.rejection),
            description: p.description,
        })
        .collect())
}

/// `GET /v1/plugins`: the answering node's plugins, loaded and rejected.
#[utoipa::path(get, path = "/v1/plugins", responses((status = 200, body = PluginList)))]
pub async fn list_plugins(State(state): State<Arc<AppState>>) -> ApiResult<Json<PluginList>> {
    let plugins = plugins(&state.services).await?;
    Ok(Json(PluginList { plugins }))
}

async fn nodes(services: &Services) -> Result<Vec<NodeJson>, Status> {
    let nodes = services.store.nodes().await.map_err(store_status)?;
    let now = jobhost_store::now_ms();
    Ok(nodes
        .into_iter()
        .map(|n| NodeJson {
            heartbeat_age_ms: now.saturating_sub(n.heartbeat_ms),
            id: n.id,
            hostname: n.hostname,
            version: n.version,
            job_types: n.job_types,
            capacity: n.capacity,
            running: n.running,
            started_ms: n.started_ms,
        })
        .collect())
}

/// `GET /v1/nodes`: live host nodes.
#[utoipa::path(get, path = "/v1/nodes", responses((status = 200, body = NodeList), (status = 503, body = ErrorBody)))]
pub async fn list_nodes(State(state): State<Arc<AppState>>) -> ApiResult<Json<NodeList>> {
    let nodes = nodes(&state.services).await?;
    Ok(Json(NodeList { nodes }))
}

async fn overview_of(services: &Services) -> Result<OverviewJson, Status> {
    let job_types = services.runtime.job_types();
    let o = services
        .store
        .overview(&job_types)
        .await
        .map_err(store_status)?;
    Ok(OverviewJson {
        queues: o
            .queues
            .into_iter()
            .map(|q| QueueJson {
                job_type: q.job_type,
                depth: q.depth,
                next_age_ms: q.next_age_ms,
            })
            .collect(),
        running: o.running,
        scheduled: o.scheduled,
        dead: o.dead,
        nodes: o.nodes,
    })
}

/// `GET /v1/overview`: queue depth per type and job counts, cluster-wide.
#[utoipa::path(get, path = "/v1/overview", responses((status = 200, body = OverviewJson), (status = 503, body = ErrorBody)))]
pub async fn overview(State(state): State<Arc<AppState>>) -> ApiResult<Json<OverviewJson>> {
    Ok(Json(overview_of(&state.services).await?))
}

async fn snapshot(services: &Services) -> Result<Snapshot, Status> {
    let jobs = services
        .scheduler
        .list_jobs(Request::new(proto::ListJobsRequest {
            page_size: SNAPSHOT_JOBS,
            ..Default::default()
        }))
        .await?
        .into_inner()
        .jobs;
    // A dashboard sends a snapshot a second to every open tab: the list shows the start of
    // each text, the detail view reads the whole job (`GET /v1/jobs/{id}`).
    let brief = |text: String| jobhost_runtime::text::cut(text, SNAPSHOT_TEXT_BYTES);
    let jobs = jobs.into_iter().map(|mut job| {
        job.spec = brief(job.spec);
        job.output = brief(job.output);
        job.reason = brief(job.reason);
        for attempt in &mut job.history {
            attempt.reason = brief(std::mem::take(&mut attempt.reason));
        }
        job
    });
    Ok(Snapshot {
        jobs: jobs.map(JobJson::from).collect(),
        nodes: nodes(services).await?,
        plugins: plugins(services).await?,
        overview: overview_of(services).await?,
    })
}

/// The `/v1/stream` event of the cluster now: a `snapshot`, or an `error` saying why not.
pub async fn snapshot_tick(services: &Services) -> Tick {
    let (name, json) = match snapshot(services).await {
        Ok(snapshot) => ("snapshot", serde_json::to_string(&snapshot)),
        Err(status) => ("error", serde_json::to_string(&ErrorBody::of(&status))),
    };
    Tick {
        name,
        json: json.unwrap_or_else(|_| "null".into()),
    }
}
