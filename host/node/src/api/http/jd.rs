//! The Job Distributor's HTTP routes: a proposal with its delivery details, and approving
//! one (the JD protocol has no call for this; here the JD's operator approves).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use tonic::Code;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::json::ProposalJson;
use super::state::AppState;
use crate::api::auth::Identity;
use crate::api::grpc::jd::status;
use crate::jd::Distributor;

/// The Job Distributor, or 501 when `jd.enabled` is off.
fn distributor(state: &AppState) -> ApiResult<&Distributor> {
    state.services.jd.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            Code::Unimplemented,
            "the Job Distributor is off (jd.enabled)",
        )
    })
}

/// `GET /v1/jd/proposals/{id}`: a Job Distributor proposal with its delivery details.
#[utoipa::path(get, path = "/v1/jd/proposals/{id}", params(("id" = String, Path, description = "Proposal id")),
    responses((status = 200, body = ProposalJson), (status = 404, body = ErrorBody), (status = 501, description = "The Job Distributor is off", body = ErrorBody)))]
pub async fn proposal(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<ProposalJson>> {
    let proposal = distributor(&state)?.proposal(&id).await.map_err(status)?;
    Ok(Json(ProposalJson::from(proposal)))
}

/// `POST /v1/jd/proposals/{id}/approve`: approves a PENDING proposal (`jd.auto_approve`
/// off) and delivers it. The JD protocol has no call for this: with real Job Distributors
/// the node's operator approves; here the JD's operator does.
#[utoipa::path(post, path = "/v1/jd/proposals/{id}/approve", params(("id" = String, Path, description = "Proposal id")),
    responses((status = 200, description = "Approved, and handed to delivery", body = ProposalJson), (status = 404, body = ErrorBody),
        (status = 409, description = "FAILED_PRECONDITION: not PENDING, not the job's latest revision, the job deleted or the node disabled", body = ErrorBody),
        (status = 501, description = "The Job Distributor is off", body = ErrorBody)))]
pub async fn approve(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Identity>>,
    Path(id): Path<String>,
) -> ApiResult<Json<ProposalJson>> {
    let jd = distributor(&state)?;
    let by = caller.map(|Extension(c)| c.principal()).unwrap_or_default();
    let proposal = jd.approve(&id, &by).await.map_err(status)?;
    Ok(Json(ProposalJson::from(proposal)))
}
