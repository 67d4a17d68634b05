//! The HTTP side of [`crate::api::auth`]: middleware that authenticates, authorizes and
//! rate-limits each request to the API. The page shells (`/`, `/docs`, `/openapi.json`),
//! health probes (`/healthz`, `/readyz`) and webhook triggers (each with its own token)
//! are open; everything that returns or changes data is guarded.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tonic::Code;

use super::error::ApiError;
use crate::api::auth::{Access, AuthError, Call, Gate};
use crate::api::listener::PeerInfo;
use crate::api::places::Holding;

/// Paths anyone may fetch: they hold no job data.
fn is_open(path: &str) -> bool {
    matches!(
        path,
        "/" | "/healthz" | "/readyz" | "/docs" | "/openapi.json"
    ) || path.starts_with("/v1/hooks/")
}

/// Paths whose answers are Server-Sent Events streams: `/v1/stream` and
/// `/v1/jobs/{id}/logs`.
fn is_stream(path: &str) -> bool {
    path == "/v1/stream"
        || path
            .strip_prefix("/v1/jobs/")
            .and_then(|rest| rest.strip_suffix("/logs"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// Lets the request through only if its caller may make it; the caller's identity goes
/// into the request's extensions.
pub async fn guard(State(gate): State<Arc<Gate>>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with("/v1/hooks/") {
        // Hooks check their own tokens, but their callers still count against a rate
        // limit (by address) before any body is read.
        let peer = request
            .extensions()
            .get::<ConnectInfo<PeerInfo>>()
            .map(|ConnectInfo(p)| p);
        if let Err(refusal) = gate.admit_address(peer) {
            return refuse(refusal);
        }
    }
    if is_open(&path) {
        return next.run(request).await;
    }
    let access = match *request.method() {
        Method::GET | Method::HEAD | Method::OPTIONS => Access::Read,
        _ => Access::Write,
    };
    let operation = format!("{} {path}", request.method());
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let peer = request
        .extensions()
        .get::<ConnectInfo<PeerInfo>>()
        .map(|ConnectInfo(p)| p);
    let call = Call {
        operation: &operation,
        access,
        counted: true,
        streaming: is_stream(&path),
    };
    match gate.check(peer, authorization, &call) {
        Ok((identity, slot)) => {
            request.extensions_mut().insert(identity);
            let response = next.run(request).await;
            // A stream holds its place until its response body is dropped.
            match slot {
                Some(slot) => response.map(|body| Body::new(Holding::new(body, slot))),
                None => response,
            }
        }
        Err(refusal) => {
            tracing::debug!(%operation, "refused: {refusal}");
            refuse(refusal)
        }
    }
}

fn refuse(refusal: AuthError) -> Response {
    match refusal {
        AuthError::Unauthenticated(message) => {
            let mut response =
                ApiError::new(StatusCode::UNAUTHORIZED, Code::Unauthenticated, message)
                    .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"jobhost\""),
            );
            response
        }
        AuthError::PermissionDenied(message) => {
            ApiError::new(StatusCode::FORBIDDEN, Code::PermissionDenied, message).into_response()
        }
        streams @ AuthError::TooManyStreams { .. } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            Code::ResourceExhausted,
            streams.to_string(),
        )
        .into_response(),
        limited @ AuthError::RateLimited { retry_after, .. } => {
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                Code::ResourceExhausted,
                limited.to_string(),
            )
            .into_response();
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
    }
}
