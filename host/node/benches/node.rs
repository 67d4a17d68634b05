//! A node in the bench's process, as `jobhost serve` runs one: its runtime on the test
//! plugins, its worker loop, and the scheduler API on a local port (throughput, latency).
#![allow(dead_code)]

use std::time::Duration;

use jobhost::api::grpc::Scheduler;
use jobhost::worker::{self, WorkerSettings};
use jobhost_config::{ApiConfig, Config};
use jobhost_proto::scheduler::job_scheduler_client::JobSchedulerClient;
use jobhost_proto::scheduler::job_scheduler_server::JobSchedulerServer;
use jobhost_proto::scheduler::{ScheduleJobRequest, ScheduleJobsRequest};
use jobhost_runtime::Runtime;
use jobhost_store::{Store, free_port};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// A runtime with the test plugins loaded (no compile cache: every bench compiles afresh).
pub async fn runtime() -> Runtime {
    runtime_reusing(None).await
}

/// As [`runtime`], with `plugins.noop.reuse` set to `reuse` (opt-in instance reuse).
pub async fn runtime_reusing(reuse: Option<u32>) -> Runtime {
    let mut config = Config::default();
    config.plugins.entry("noop".into()).or_default().reuse = reuse;
    config.runtime.plugins_dir = crate::support::test_plugins_dir();
    config.runtime.cache = false;
    // JOBHOST_BENCH_EPOCH_TICK_MS: compare epoch ticks (does a finer tick cost throughput?).
    if let Some(tick) = std::env::var("JOBHOST_BENCH_EPOCH_TICK_MS")
        .ok()
        .and_then(|t| t.parse().ok())
    {
        config.runtime.epoch_tick_ms = tick;
    }
    let runtime = Runtime::new(config).unwrap();
    runtime.sync_dir().await.unwrap();
    runtime
}

/// A node's worker loop.
pub struct Node {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Starts a worker loop running `concurrency` jobs at once.
pub fn start_worker(store: &Store, runtime: &Runtime, concurrency: usize) -> Node {
    let settings = WorkerSettings {
        node_id: worker::new_node_id(),
        concurrency,
        lease: Duration::from_secs(30),
        heartbeat: Duration::from_secs(5),
        shutdown_grace: Duration::from_secs(5),
        poll: Duration::from_secs(1),
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(worker::run(
        store.clone(),
        runtime.clone(),
        settings,
        shutdown.clone(),
    ));
    Node { shutdown, task }
}

/// Stops `nodes` and waits until they have drained.
pub async fn stop(nodes: Vec<Node>) {
    for node in nodes {
        node.shutdown.cancel();
        node.task.await.unwrap();
    }
}

/// Serves the scheduler API of (`store`, `runtime`) on a free local port; a client of it.
pub async fn serve_api(store: &Store, runtime: &Runtime) -> JobSchedulerClient<Channel> {
    let port = free_port();
    let scheduler = Scheduler::new(store.clone(), runtime.clone(), ApiConfig::default());
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(JobSchedulerServer::new(scheduler))
            .serve(addr),
    );
    for _ in 0..100 {
        if let Ok(client) = JobSchedulerClient::connect(format!("http://127.0.0.1:{port}")).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the API did not start");
}

/// A no-op job.
pub fn noop() -> ScheduleJobRequest {
    numbered(0)
}

/// A no-op job whose spec carries its number (`{"i":7}`), as BullMQ's peer gives each job
/// its own data: no two specs of a batch are the same.
pub fn numbered(i: usize) -> ScheduleJobRequest {
    ScheduleJobRequest {
        job_type: "noop".into(),
        spec: format!("{{\"i\":{i}}}"),
        ..Default::default()
    }
}

/// Jobs per `ScheduleJobs` call of [`submit`].
pub const BATCH: usize = 1_000;
/// `ScheduleJobs` calls [`submit`] keeps in flight.
pub const IN_FLIGHT: usize = 4;

/// Submits `n` no-op jobs (each with its own spec, see [`numbered`]) through `ScheduleJobs`,
/// [`IN_FLIGHT`] batches at a time.
pub async fn submit(client: &JobSchedulerClient<Channel>, n: usize) {
    let batches: Vec<(usize, usize)> = (0..n.div_ceil(BATCH))
        .map(|i| (i * BATCH, BATCH.min(n - i * BATCH)))
        .collect();
    for wave in batches.chunks(IN_FLIGHT) {
        let calls = wave.iter().map(|&(first, size)| {
            let mut client = client.clone();
            async move {
                let jobs = (first..first + size).map(numbered).collect();
                let answer = client
                    .schedule_jobs(ScheduleJobsRequest { jobs })
                    .await
                    .expect("ScheduleJobs")
                    .into_inner();
                assert_eq!(answer.results.len(), size);
            }
        });
        futures::future::join_all(calls).await;
    }
}

/// Waits until no `noop` job is queued or running.
pub async fn drained(store: &Store) {
    loop {
        let load = store.type_load("noop").await.unwrap();
        if load.queued + load.running + load.scheduled == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
