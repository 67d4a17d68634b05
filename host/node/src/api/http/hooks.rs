//! Inbound webhook triggers: `POST /v1/hooks/{name}` starts the job template configured
//! under `[hooks.<name>]` with the request body as its spec, like a Chainlink webhook job
//! run, and answers 202 with the job id. Each hook has its own bearer token, checked before
//! the body is read.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use jobhost_config::SecretSource;
use jobhost_store::{NewJob, RetryPolicy};
use serde_json::json;
use tonic::Code;

use super::error::{ApiError, ApiResult};
use super::state::AppState;
use crate::api::submit::{SubmitError, submit};

/// `POST /v1/hooks/{name}`.
pub async fn trigger(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let services = &state.services;
    let hook = services
        .config
        .hooks
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no hook named {name:?}")))?;
    if !authorized(&headers, &hook.token) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            Code::Unauthenticated,
            "missing or wrong bearer token for this hook",
        ));
    }
    // The body is read only once the caller has shown the hook's token.
    let body = read_limited(body, services.config.api.max_hook_body_bytes).await?;
    let spec = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::invalid("the body must be UTF-8 text"))?;
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
    let jobhost_store::Enqueued { id, .. } = submit(&services.store, &services.runtime, &job)
        .await
        .map_err(|e| refused(&name, e))?;
    Ok((StatusCode::ACCEPTED, Json(json!({"job_id": id}))))
}

/// The answer to a trigger whose job was not accepted.
fn refused(hook: &str, error: SubmitError) -> ApiError {
    match error {
        e @ (SubmitError::Invalid { .. } | SubmitError::ValidateCrashed { .. }) => {
            ApiError::invalid(e.to_string())
        }
        e @ (SubmitError::NoPlugin { .. } | SubmitError::Unavailable(_)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::FailedPrecondition,
            e.to_string(),
        ),
        e @ (SubmitError::Busy | SubmitError::Compiling(_)) => ApiError::unavailable(e.to_string()),
        SubmitError::QueueFull(message) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            Code::ResourceExhausted,
            message,
        ),
        SubmitError::Store(e) => {
            tracing::warn!(hook, "hook trigger failed: {e}");
            ApiError::unavailable("the job store is unavailable; retry shortly")
        }
    }
}

/// Reads `body` whole, refusing more than `limit` bytes without buffering them.
async fn read_limited(body: Body, limit: usize) -> ApiResult<Bytes> {
    use http_body_util::BodyExt as _;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::ResourceExhausted,
            "request body is over the limit of api.max_hook_body_bytes",
        )),
        Err(e) => Err(ApiError::invalid(format!(
            "cannot read the request body: {e}"
        ))),
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
