//! The APIs a node serves. `grpc`: the scheduler API, health and reflection; `http`:
//! the REST mirror, dashboard, inbound webhook triggers and health; `submit`: job
//! submission shared by both; `tls` and `auth`: who may call them; `listener`: the connections they accept; `ratelimit`: how often;
//! `places`: how many streams and connections one client may hold at once; `wsrpc`: the
//! Job Distributor's channel that Chainlink nodes dial.
//!
//! [`Services`] are what every transport serves, built once per node: one scheduler, one
//! Job Distributor (probed, its nodes file read once), one gate with its rate limits.

pub mod auth;
pub mod grpc;
pub mod http;
pub mod listener;
pub mod places;
pub mod ratelimit;
pub mod submit;
pub mod tls;
pub mod wsrpc;

use std::sync::Arc;

use jobhost_config::Config;
use jobhost_history::History;
use jobhost_runtime::Runtime;
use jobhost_store::Store;

use crate::jd::{Distributor, JdError};
use crate::plugin_state::StoreKv;
use auth::Gate;
use grpc::Scheduler;

/// What a node's APIs serve. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// The node's configuration.
    pub config: Arc<Config>,
    /// Jobs, queues and nodes in Redis.
    pub store: Store,
    /// The plugins and their runs.
    pub runtime: Runtime,
    /// Who may call the APIs, and how often.
    pub gate: Arc<Gate>,
    /// The scheduler API (gRPC; REST mirrors it).
    pub scheduler: Arc<Scheduler>,
    /// The Job Distributor, when `jd.enabled`.
    pub jd: Option<Distributor>,
    /// The job history (PostgreSQL), when `[history]` is on.
    pub history: Option<History>,
}

impl Services {
    /// Builds the services of a node on `store` and `runtime`: plugin state moves to the
    /// store, and the Job Distributor (reading its nodes file now, so a broken one fails
    /// the start) gives its delivery plugin the nodes' logins.
    pub fn new(
        config: Config,
        store: Store,
        runtime: Runtime,
        gate: Arc<Gate>,
        history: Option<History>,
    ) -> Result<Services, JdError> {
        // Plugin state (the `kv` capability) is shared by every node, through Redis.
        runtime.use_kv(Arc::new(StoreKv(store.clone())));
        let jd = if config.jd.enabled {
            let jd = Distributor::new(store.clone(), config.jd.clone())?;
            jd.provide_credentials(&runtime);
            Some(jd)
        } else {
            None
        };
        let scheduler = Arc::new(
            Scheduler::new(store.clone(), runtime.clone(), config.api.clone())
                .with_history(history.clone()),
        );
        Ok(Services {
            config: Arc::new(config),
            store,
            runtime,
            gate,
            scheduler,
            jd,
            history,
        })
    }
}
