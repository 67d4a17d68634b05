//! A running node: connects the store (or starts the `--dev` redis-server), loads and
//! watches the plugins folder, builds the [`Services`] once, binds both API ports, and runs
//! the APIs, the worker and the background loops until told to stop; then drains.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use jobhost_config::Config;
use jobhost_history::{DevPostgres, History};
use jobhost_runtime::Runtime;
use jobhost_store::{DevRedis, Store, StoreOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::Services;
use crate::api::auth::Gate;
use crate::api::{grpc, http, wsrpc};
use crate::worker::{self, WorkerSettings};

/// A node that has started: its ports are bound and its services built, nothing served
/// yet. [`Node::run_until`] serves.
pub struct Node {
    services: Services,
    grpc: (TcpListener, SocketAddr),
    http: (TcpListener, SocketAddr),
    /// The Job Distributor's node channel, when served.
    wsrpc: Option<(TcpListener, SocketAddr)>,
    /// The local Redis of `--dev`, kept alive until the node has drained.
    dev_redis: Option<DevRedis>,
    /// The local PostgreSQL of `--dev` (the job history), likewise.
    dev_postgres: Option<DevPostgres>,
    /// Keeps the plugins folder watched while the node runs.
    _watcher: jobhost_runtime::watcher::PluginWatcher,
}

impl Node {
    /// Starts a node as `config` says (`dev`: `serve --dev`): fails before anything is
    /// served if the TLS files, the plugins folder, Redis, the nodes file or either port is
    /// not usable.
    pub async fn start(mut config: Config, dev: bool) -> Result<Node> {
        // TLS files are checked before anything starts, so a typo fails at once.
        let gate = Arc::new(Gate::from_config(&config, dev)?);
        warn_if_plaintext(&config, &gate);
        let dir = config.runtime.plugins_dir.clone();
        if dev && !dir.exists() {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating plugins folder {}", dir.display()))?;
        }
        if !dir.is_dir() {
            bail!(
                "plugins folder {} does not exist: create it, point `runtime.plugins_dir` \
                 (or JOBHOST_PLUGINS_DIR, or --plugins-dir) at one, or run `just plugins`",
                dir.display()
            );
        }
        let dev_postgres = start_dev_history(&mut config, dev).await;
        let history = open_history(&config).await?;
        let (store, dev_redis) = connect_store(&config, dev).await?;
        let store = store.with_call_observer(Arc::new(|took| {
            crate::metrics::global().redis_call(took);
        }));
        let runtime = Runtime::new(config.clone())?;
        let services = Services::new(config, store, runtime.clone(), gate, history)?;
        runtime.detect_sandbox();
        // Both ports are bound before either API serves: a node that answers health on one
        // has the other open too, and a taken port stops the start before anything is served.
        // They are bound before any plugin runs (`describe` at load), so that no plugin ever
        // reaches this node's own services: its APIs and its Redis.
        let grpc = grpc::bind(&services.config.api).await?;
        let http = http::bind(&services.config).await?;
        let wsrpc = match &services.jd {
            Some(jd) if !services.config.jd.wsrpc_addr.is_empty() => {
                // A secret that does not open the stored key stops the start here.
                jd.csa_key().await?;
                let addr = &services.config.jd.wsrpc_addr;
                match wsrpc::bind(addr).await {
                    Ok(bound) => Some(bound),
                    // Several nodes on one machine: one holding the default port serves
                    // the channel for all (sessions are shared through Redis).
                    Err(e) if *addr == jobhost_config::JdConfig::default().wsrpc_addr => {
                        tracing::warn!(
                            "{e}; this node serves no wsrpc channel (set jd.wsrpc_addr to serve one)"
                        );
                        None
                    }
                    Err(e) => return Err(e),
                }
            }
            Some(jd) => {
                jd.csa_key().await?;
                None
            }
            None => None,
        };
        let mut own = services.store.server_addrs().await;
        own.extend([grpc.1, http.1]);
        own.extend(wsrpc.as_ref().map(|w| w.1));
        runtime.protect_services(own);
        // Plugins compile in the background: the APIs listen at once, and /readyz, health
        // and the dashboard say which plugins are still compiling.
        let loading = runtime.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            match loading.sync_dir().await {
                Ok(report) => tracing::info!(
                    loaded = report.loaded.len(),
                    rejected = report.rejected.len(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "plugins folder loaded"
                ),
                Err(e) => tracing::error!("cannot read the plugins folder: {e}"),
            }
        });
        let watcher = runtime.watch()?;
        Ok(Node {
            services,
            grpc,
            http,
            wsrpc,
            dev_redis,
            dev_postgres,
            _watcher: watcher,
        })
    }

    /// The node's services.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Serves until `stop` completes, or until the gRPC server fails; then stops claiming
    /// jobs, drains the running ones, and closes the APIs.
    pub async fn run_until(mut self, stop: impl Future<Output = ()>) -> Result<()> {
        let services = self.services.clone();
        let config = services.config.clone();
        let api_stop = CancellationToken::new();
        self.start_background(&api_stop);
        let (grpc_listener, grpc_addr) = self.grpc;
        let (http_listener, http_addr) = self.http;
        let tls = services.gate.tls().is_some();
        let api = tokio::spawn(grpc::serve(
            grpc_listener,
            services.clone(),
            api_stop.clone(),
        ));
        tracing::info!(addr = %grpc_addr, tls, job_distributor = config.jd.enabled, "gRPC API listening");
        let http_api = tokio::spawn(http::serve(
            http_listener,
            services.clone(),
            api_stop.clone(),
        ));
        tracing::info!(addr = %http_addr, tls, hooks = config.hooks.len(), "HTTP API listening");
        let shutdown = CancellationToken::new();
        // The worker joins the cluster once a plugin serves or the plugins folder has been
        // read (it would have nothing to claim before); the APIs serve meanwhile.
        let worker = tokio::spawn({
            let (store, runtime) = (services.store.clone(), services.runtime.clone());
            let (settings, shutdown) = (WorkerSettings::from_config(&config), shutdown.clone());
            async move {
                tokio::select! {
                    () = runtime.wait_first_serving() => {}
                    () = shutdown.cancelled() => return,
                }
                worker::run(store, runtime, settings, shutdown).await
            }
        });
        tokio::select! {
            () = stop => {}
            result = api => {
                // The gRPC server only ends by itself on an error; the node cannot serve
                // without it.
                shutdown.cancel();
                worker.await.context("node task")?;
                return Err(match result {
                    Ok(Err(e)) => e.into(),
                    Ok(Ok(())) => anyhow!("gRPC server stopped unexpectedly"),
                    Err(e) => anyhow!("gRPC server task failed: {e}"),
                });
            }
        }
        tracing::info!("shutting down: no new jobs are claimed");
        shutdown.cancel();
        worker.await.context("node task")?;
        api_stop.cancel();
        if let Err(e) = http_api.await {
            tracing::warn!("HTTP API task failed: {e}");
        }
        if let Some(redis) = self.dev_redis.as_mut() {
            redis.stop().await;
        }
        if let Some(postgres) = self.dev_postgres.as_mut() {
            postgres.stop().await;
        }
        Ok(())
    }

    /// The loops that run beside the APIs until `stop`: TLS file reloads and the Job
    /// Distributor's node probes.
    fn start_background(&mut self, stop: &CancellationToken) {
        let tls = &self.services.config.tls;
        if let (Some(server_tls), true) = (self.services.gate.tls(), tls.reload_interval_ms > 0) {
            let every = std::time::Duration::from_millis(tls.reload_interval_ms);
            tokio::spawn(server_tls.clone().watch(every, stop.clone()));
        }
        if let Some(history) = &self.services.history {
            let settings = crate::history::DrainSettings::new(
                &self.services.config.history,
                crate::worker::new_node_id(),
            );
            let store = self.services.store.clone();
            tokio::spawn(crate::history::drain(
                store,
                history.clone(),
                settings,
                stop.clone(),
            ));
        } else {
            let store = self.services.store.clone();
            tokio::spawn(crate::history::abandon_outbox(store, stop.clone()));
        }
        if let Some(jd) = &self.services.jd {
            tokio::spawn(jd.clone().probe_nodes(stop.clone()));
            if let Some((listener, addr)) = self.wsrpc.take() {
                tracing::info!(%addr, "Job Distributor node channel (wsrpc) listening");
                tokio::spawn(wsrpc::serve(listener, jd.clone(), stop.clone()));
            }
        }
    }
}

/// Warns at start when the APIs are served without TLS, saying who can do what then.
fn warn_if_plaintext(config: &Config, gate: &Gate) {
    if gate.tls().is_some() {
        return;
    }
    let why = if config.tls.enabled {
        "--dev without tls.cert_file"
    } else {
        "tls.enabled = false"
    };
    let who = if config.auth.tokens.is_empty() {
        "anyone who can reach them is admin"
    } else {
        "bearer tokens travel in the clear"
    };
    tracing::warn!(
        "the gRPC and HTTP APIs are PLAINTEXT ({why}): {who}. Use TLS outside development \
         (`jobhost certs init`, then tls.cert_file, tls.key_file, tls.client_ca_file)"
    );
}

/// `serve --dev` without a configured history: starts a local PostgreSQL (data in
/// `history.dev_dir`) and points `config` at it. Not installed or not starting: the node
/// runs without history, saying why.
async fn start_dev_history(config: &mut Config, dev: bool) -> Option<DevPostgres> {
    if !dev || config.history.enabled() {
        return None;
    }
    match DevPostgres::start(&config.history.dev_dir, None).await {
        Ok(postgres) => {
            tracing::info!(
                url = %postgres.shown_url(),
                dir = %postgres.dir().display(),
                "started a local PostgreSQL for the job history"
            );
            config.history.postgres_url = postgres.url();
            Some(postgres)
        }
        Err(e) => {
            tracing::warn!("no job history in this development node: {e}");
            None
        }
    }
}

/// The job history, when `[history]` is on. A configuration mistake (URL, login, database)
/// stops the start; an unreachable server does not.
async fn open_history(config: &Config) -> Result<Option<History>> {
    if !config.history.enabled() {
        return Ok(None);
    }
    let history = History::open(&config.history).await?;
    tracing::info!(url = %history.shown_url(), connected = history.is_connected(), "job history on");
    Ok(Some(history))
}

/// Connects to the configured Redis; in `--dev` mode without one, starts a local
/// `redis-server` child (AOF on) first, returned to be kept alive and stopped.
pub async fn connect_store(config: &Config, dev: bool) -> Result<(Store, Option<DevRedis>)> {
    let mut dev_redis = None;
    let url = if !config.redis.url.is_empty() {
        config.redis.url.clone()
    } else if dev {
        let redis = DevRedis::start(&config.redis.dev_dir, None).await?;
        tracing::info!(
            url = %redis.url(),
            dir = %redis.dir().display(),
            "started a local redis-server for development"
        );
        let url = redis.url();
        dev_redis = Some(redis);
        url
    } else {
        bail!(
            "no Redis configured: set JOBHOST_REDIS_URL (or `redis.url` in the config file) \
             to redis://host:port, or run `jobhost serve --dev` to start a local one"
        );
    };
    let store = Store::connect(&url, StoreOptions::from_config(config))
        .await
        .with_context(|| format!("cannot reach Redis at {}", redacted(&url)))?;
    Ok((store, dev_redis))
}

/// `url` without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_passwords_stay_out_of_messages() {
        assert_eq!(
            redacted("redis://app:s3cret@host:6379"),
            "redis://***@host:6379"
        );
        assert_eq!(redacted("redis://host:6379"), "redis://host:6379");
    }
}
