//! The OpenAPI document of the HTTP API (`/openapi.json`), generated from the handlers and
//! the JSON types, and a page that renders it (`/docs`).

use axum::Json;
use axum::response::Html;
use utoipa::OpenApi;

use super::json::*;
use super::{jd, jobs, status, stream};

/// The OpenAPI document of the HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "jobhost HTTP API",
        description = "REST mirror of the jobhost.v1.JobScheduler gRPC API, and the dashboard's streams."
    ),
    paths(
        jobs::create_job,
        jobs::create_jobs,
        jobs::list_jobs,
        jobs::get_job,
        jobs::cancel_job,
        jobs::job_logs,
        jobs::history,
        status::list_plugins,
        status::list_nodes,
        status::overview,
        stream::stream,
        jd::proposal,
        jd::approve
    ),
    components(schemas(
        ErrorBody,
        ProposalJson,
        JobJson,
        AttemptJson,
        NewJobJson,
        NewJobsJson,
        BatchJson,
        BatchResultJson,
        CreatedJson,
        JobPage,
        CancelledJson,
        PluginJson,
        PluginList,
        NodeJson,
        NodeList,
        QueueJson,
        OverviewJson,
        Snapshot,
        LogLineJson
    ))
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// `GET /docs`: renders the OpenAPI document (self-contained: no external assets).
pub async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_lists_every_route() {
        let doc = ApiDoc::openapi();
        let paths: Vec<&String> = doc.paths.paths.keys().collect();
        for path in [
            "/v1/jobs",
            "/v1/jobs:batch",
            "/v1/jobs/{id}",
            "/v1/jobs/{id}/cancel",
            "/v1/jobs/{id}/logs",
            "/v1/plugins",
            "/v1/nodes",
            "/v1/overview",
            "/v1/stream",
            "/v1/jd/proposals/{id}",
            "/v1/jd/proposals/{id}/approve",
        ] {
            assert!(paths.iter().any(|p| *p == path), "{path} in {paths:?}");
        }
    }
}
