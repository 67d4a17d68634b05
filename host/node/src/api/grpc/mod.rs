//! The gRPC server: `jobhost.v1.JobScheduler`, `grpc.health.v1.Health` and server
//! reflection, on one port.

use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic_health::ServingStatus;

mod convert;
mod guard;
pub mod jd;
mod scheduler;

pub use convert::{store_status, timestamp};
pub use scheduler::Scheduler;
pub(crate) use scheduler::{first_fire, new_job};

use jobhost_config::ApiConfig;
use jobhost_proto::scheduler::job_scheduler_server::JobSchedulerServer;
use jobhost_runtime::Runtime;
use jobhost_store::Store;

use crate::api::Services;
use crate::api::listener::{ApiListener, ConnectionLimits, Protocol};

/// Errors starting the gRPC server.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// The address is taken or not ours.
    #[error("cannot listen on {addr} (api.grpc_addr): {reason}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The server failed.
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Room for everything in a request besides the spec (labels, names, keys).
const REQUEST_OVERHEAD: usize = 64 * 1024;

/// The service name health is reported for, besides the whole server ("").
const SCHEDULER_SERVICE: &str = "jobhost.v1.JobScheduler";

/// Binds `api.grpc_addr`; returns the listener and its actual address (port 0 picks one).
pub async fn bind(config: &ApiConfig) -> Result<(tokio::net::TcpListener, SocketAddr), GrpcError> {
    let bind_error = |reason: String| GrpcError::Bind {
        addr: config.grpc_addr.clone(),
        reason,
    };
    let addr: SocketAddr = config
        .grpc_addr
        .parse()
        .map_err(|e: std::net::AddrParseError| bind_error(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| bind_error(e.to_string()))?;
    let local = listener
        .local_addr()
        .map_err(|e| bind_error(e.to_string()))?;
    Ok((listener, local))
}

/// Serves the gRPC API of `services` on `listener` until `shutdown` fires, over TLS unless
/// the gate is plaintext, each call checked by the gate; with a Job Distributor, its
/// services too.
pub async fn serve(
    listener: tokio::net::TcpListener,
    services: Services,
    shutdown: CancellationToken,
) -> Result<(), GrpcError> {
    let config = &services.config.api;
    let (health, health_service) = tonic_health::server::health_reporter();
    // Reflection in both versions: grpcurl and current clients speak v1; Python's
    // grpcio-reflection, Postman and older grpcurl only v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(jobhost_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .expect("the embedded descriptor sets are valid");
    let max_request = config.max_spec_bytes.saturating_add(REQUEST_OVERHEAD);
    /// Largest `jobhost.v1.JobScheduler` request: room for a `ScheduleJobs` batch, as the
    /// REST batch body limit gives.
    const BATCH_MESSAGE_LIMIT: usize = 16 * 1024 * 1024;
    let limits = ConnectionLimits::of(config);
    // `ScheduleJobs` carries many jobs in one message (each still held to max_spec_bytes).
    let scheduler = JobSchedulerServer::from_arc(services.scheduler.clone())
        .max_decoding_message_size(max_request.max(BATCH_MESSAGE_LIMIT));
    let jd_services = services.jd.clone().map(|jd| {
        use jobhost_proto::api::{app, csa, job, node};
        (
            job::v1::job_service_server::JobServiceServer::new(jd::JobService::new(jd.clone()))
                .max_decoding_message_size(max_request),
            node::v1::node_service_server::NodeServiceServer::new(jd::NodeService::new(jd.clone())),
            csa::v1::csa_service_server::CsaServiceServer::new(jd::CsaService::new(jd)),
            app::v1::app_service_server::AppServiceServer::new(jd::AppService),
        )
    });
    let (jd_jobs, jd_nodes, jd_csa, jd_app) = match jd_services {
        Some((a, b, c, d)) => (Some(a), Some(b), Some(c), Some(d)),
        None => (None, None, None, None),
    };
    let health_task = tokio::spawn(report_health(
        health,
        services.store.clone(),
        services.runtime.clone(),
        shutdown.clone(),
    ));
    let gate = services.gate.clone();
    let listener = ApiListener::new(listener, gate.tls(), Protocol::Grpc, limits);
    let incoming = futures::stream::unfold(listener, |mut listener| async move {
        let stream = listener.next().await;
        Some((Ok::<_, std::io::Error>(stream), listener))
    });
    let result = Server::builder()
        // Dead or silent peers are found and their connections closed.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .layer(guard::GuardLayer::new(gate))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(scheduler)
        .add_optional_service(jd_jobs)
        .add_optional_service(jd_nodes)
        .add_optional_service(jd_app)
        .add_optional_service(jd_csa)
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await;
    health_task.abort();
    Ok(result?)
}

/// Keeps `grpc.health.v1` current: SERVING while Redis answers, the plugins folder has been
/// read once and at least one plugin is loaded; NOT_SERVING otherwise.
async fn report_health(
    health: tonic_health::server::HealthReporter,
    store: Store,
    runtime: Runtime,
    stop: CancellationToken,
) {
    let mut last = None;
    loop {
        let redis_ok = store.ping().await.is_ok();
        // Serving once the plugins folder has been read through (its plugins compile in
        // the background from the start) and a plugin is loaded.
        let plugins_ok =
            runtime.first_sync_done() && runtime.plugins().iter().any(|p| p.status == "loaded");
        let status = if redis_ok && plugins_ok {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            if status == ServingStatus::NotServing && !runtime.first_sync_done() {
                tracing::info!(
                    redis_ok,
                    "health: NOT_SERVING until the plugins have compiled"
                );
            } else if status == ServingStatus::NotServing {
                tracing::warn!(redis_ok, plugins_ok, "health: NOT_SERVING");
            } else {
                tracing::info!("health: SERVING");
            }
            health.set_service_status("", status).await;
            health.set_service_status(SCHEDULER_SERVICE, status).await;
            last = Some(status);
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = stop.cancelled() => return,
        }
    }
}
