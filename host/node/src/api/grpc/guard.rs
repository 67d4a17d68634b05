//! The gRPC side of [`crate::api::auth`]: a tower layer in front of every service that
//! authenticates, authorizes and rate-limits each call before it reaches a handler.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::Status;
use tower::{Layer, Service};

use crate::api::auth::{Access, AuthError, Call, Gate};
use crate::api::listener::PeerInfo;
use crate::api::places::Holding;

/// Wraps services in [`Guard`].
#[derive(Clone)]
pub struct GuardLayer {
    gate: Arc<Gate>,
}

impl GuardLayer {
    /// Guards with `gate`.
    pub fn new(gate: Arc<Gate>) -> GuardLayer {
        GuardLayer { gate }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            gate: self.gate.clone(),
        }
    }
}

/// Lets a call through to `inner` only if its caller may make it; the caller's
/// [`crate::api::auth::Identity`] goes into the request's extensions.
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S, B> Service<http::Request<B>> for Guard<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let (operation, access) = classify(path);
        // Health checks are cheap and probes poll them: they need a credential but do not
        // use up the caller's allowance.
        let counted = !path.starts_with("/grpc.health.v1.Health/");
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or("(not text)"));
        let call = Call {
            operation: &operation,
            access,
            counted,
            streaming: STREAMS.contains(&path),
        };
        let checked = self
            .gate
            .check(request.extensions().get::<PeerInfo>(), authorization, &call);
        match checked {
            Ok((identity, slot)) => {
                request.extensions_mut().insert(identity);
                let answer = self.inner.call(request);
                Box::pin(async move {
                    let response = undecodable_is_invalid_argument(answer.await?);
                    let Some(slot) = slot else {
                        return Ok(response);
                    };
                    // A stream holds its place until its response body is dropped.
                    Ok(response.map(|body| tonic::body::Body::new(Holding::new(body, slot))))
                })
            }
            Err(refusal) => {
                tracing::debug!(%operation, "refused: {refusal}");
                let response = status(refusal).into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

/// tonic answers a request it cannot decode (invalid UTF-8 in a string field, a truncated
/// message) with INTERNAL, as if the server had failed; the caller sent it, so it is
/// INVALID_ARGUMENT, with tonic's message kept. Such an answer comes before any handler
/// runs, so its status is in the response headers.
fn undecodable_is_invalid_argument<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers();
    let internal = headers
        .get("grpc-status")
        .is_some_and(|s| s.as_bytes() == b"13");
    let undecodable = headers.get("grpc-message").is_some_and(|m| {
        let message = String::from_utf8_lossy(m.as_bytes()).replace("%20", " ");
        message.starts_with("failed to decode Protobuf message")
    });
    if internal && undecodable {
        response
            .headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("3"));
    }
    response
}

fn status(refusal: AuthError) -> Status {
    match refusal {
        AuthError::Unauthenticated(m) => Status::unauthenticated(m),
        AuthError::PermissionDenied(m) => Status::permission_denied(m),
        limited @ (AuthError::RateLimited { .. } | AuthError::TooManyStreams { .. }) => {
            Status::resource_exhausted(limited.to_string())
        }
    }
}

/// Every gRPC method this node serves that only reads. Anything not listed, including any
/// method added later, is a write until it is listed here (a test keeps the list and the
/// protos in step).
const READS: &[&str] = &[
    "/jobhost.v1.JobScheduler/GetJob",
    "/jobhost.v1.JobScheduler/GetJobStatus",
    "/jobhost.v1.JobScheduler/ListJobs",
    "/jobhost.v1.JobScheduler/StreamJobLogs",
    "/jobhost.v1.JobScheduler/ListPlugins",
    "/jobhost.v1.JobScheduler/ListNodes",
    "/jobhost.v1.JobScheduler/SearchHistory",
    "/api.job.v1.JobService/GetJob",
    "/api.job.v1.JobService/GetProposal",
    "/api.job.v1.JobService/ListJobs",
    "/api.job.v1.JobService/ListProposals",
    "/api.node.v1.NodeService/GetNode",
    "/api.node.v1.NodeService/ListNodes",
    "/api.node.v1.NodeService/ListNodeChainConfigs",
    "/api.csa.v1.CSAService/GetKeypair",
    "/api.csa.v1.CSAService/ListKeypairs",
    "/api.app.v1.AppService/Version",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// The served methods whose answers stream for as long as the client wants (server or
/// bidirectional streaming); each holds one of the caller's stream places.
const STREAMS: &[&str] = &[
    "/jobhost.v1.JobScheduler/StreamJobLogs",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// `/pkg.Service/Method` → (`Service/method_in_snake_case`, whether it only reads).
fn classify(path: &str) -> (String, Access) {
    let access = if READS.contains(&path) {
        Access::Read
    } else {
        Access::Write
    };
    let mut parts = path.trim_start_matches('/').rsplitn(2, '/');
    let method = parts.next().unwrap_or(path);
    let service = parts
        .next()
        .and_then(|s| s.rsplit('.').next())
        .unwrap_or("");
    (format!("{service}/{}", snake_case(method)), access)
}

fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every method in the protos this node serves, as `/pkg.Service/Method`.
    fn served_methods() -> Vec<String> {
        use prost::Message as _;
        let mut paths = Vec::new();
        for set in [
            jobhost_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ] {
            let set = prost_types::FileDescriptorSet::decode(set).unwrap();
            for file in set.file {
                for service in &file.service {
                    for method in &service.method {
                        paths.push(format!(
                            "/{}.{}/{}",
                            file.package(),
                            service.name(),
                            method.name()
                        ));
                    }
                }
            }
        }
        paths
    }

    #[test]
    fn every_served_method_is_classified_and_reads_are_only_reads() {
        let served = served_methods();
        assert!(served.len() > 20, "{served:?}");
        for read in READS {
            let is_reflection = read.starts_with("/grpc.reflection.");
            assert!(
                is_reflection || served.iter().any(|p| p == read),
                "{read} is not served"
            );
        }
        let reads: Vec<_> = served
            .iter()
            .filter(|p| classify(p).1 == Access::Read)
            .collect();
        let writes: Vec<_> = served
            .iter()
            .filter(|p| classify(p).1 == Access::Write)
            .collect();
        // The writes, by name: a method changing state must never be readable by a viewer.
        for write in [
            "/jobhost.v1.JobScheduler/ScheduleJob",
            "/jobhost.v1.JobScheduler/ScheduleJobs",
            "/jobhost.v1.JobScheduler/CancelJob",
            "/api.job.v1.JobService/ProposeJob",
            "/api.job.v1.JobService/BatchProposeJob",
            "/api.job.v1.JobService/RevokeJob",
            "/api.job.v1.JobService/DeleteJob",
            "/api.job.v1.JobService/UpdateJob",
            "/api.node.v1.NodeService/RegisterNode",
            "/api.node.v1.NodeService/UpdateNode",
            "/api.node.v1.NodeService/EnableNode",
            "/api.node.v1.NodeService/DisableNode",
        ] {
            assert!(
                writes.iter().any(|p| *p == write),
                "{write} must be a write"
            );
        }
        assert_eq!(reads.len() + writes.len(), served.len());
        assert_eq!(
            writes.len(),
            12,
            "a new method: list it in READS if it only reads {writes:?}"
        );
        assert_eq!(classify("/a.b.Unknown/GetEverything").1, Access::Write);
        assert_eq!(
            classify("/api.job.v1.JobService/BatchProposeJob").0,
            "JobService/batch_propose_job"
        );
    }
}
