//! The Chainlink Job Distributor: nodes register, job specs are proposed to them, approved
//! proposals are delivered by the delivery plugin (`ccip-submit`), and the JD's CSA key.
//!
//! This is the domain; `api/grpc/jd.rs` puts it on the wire (`api.job.v1`, `api.node.v1`,
//! `api.csa.v1`) and `store/jd.rs` keeps its records. Delivery is an ordinary jobhost job
//! of the delivery type, so it is retried with backoff, survives node deaths and shows in
//! `jobctl`; a proposal's delivery status is read from that job and settled into the
//! proposal once final.
//!
//! [`Distributor`] is the one entry point; its methods are grouped by what they act on:
//! `nodes`, `proposals`, `jobs`, `delivery` (one module each, each an `impl Distributor`),
//! with the nodes file, labels, specs, probes and the stored records beside them.

mod delivery;
mod jobs;
pub mod labels;
mod nodes;
pub mod nodes_file;
pub mod probe;
mod proposals;
pub mod records;
pub mod spec;

use jobhost_config::JdConfig;
use jobhost_store::{RecordKind, Store, StoreError};

pub use jobs::{JobRef, ProposedJobFilter};
pub use labels::{Labels, Selector, SelectorOp};
pub use nodes::{NodeChainConfig, NodeFilter, NodeRegistration};
pub use nodes_file::{NodeEntry, NodesFile, NodesFileError};
pub use records::{ChainlinkNode, DeliveryStatus, Job, Keypair, Proposal, ProposalStatus};

/// Why a Job Distributor call failed; each maps to one gRPC status code.
#[derive(Debug, thiserror::Error)]
pub enum JdError {
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It exists already (a node's public key is taken).
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request is well-formed but not allowed in the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The nodes file cannot be read.
    #[error(transparent)]
    NodesFile(#[from] NodesFileError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record cannot be read back.
    #[error("corrupt Job Distributor record {0}")]
    Corrupt(String),
}

type Result<T> = std::result::Result<T, JdError>;

/// The Job Distributor over one store. Cheap to clone.
#[derive(Clone)]
pub struct Distributor {
    store: Store,
    config: JdConfig,
    nodes_file: Option<NodesFile>,
    connectivity: probe::Connectivity,
}

fn now() -> u64 {
    jobhost_store::now_ms()
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("records serialize")
}

fn from_json<T: serde::de::DeserializeOwned>(kind: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| JdError::Corrupt(format!("{kind}: {e}")))
}

fn invalid_labels(e: labels::LabelError) -> JdError {
    JdError::InvalidArgument(e.to_string())
}

impl Distributor {
    /// A Job Distributor on `store` as `config` says; reads the nodes file now, so a broken
    /// one is an error at start.
    pub fn new(store: Store, config: JdConfig) -> Result<Distributor> {
        let nodes_file = match &config.nodes_file {
            Some(path) => Some(NodesFile::open(path)?),
            None => None,
        };
        Ok(Distributor {
            store,
            config,
            nodes_file,
            connectivity: probe::Connectivity::default(),
        })
    }

    /// Gives the delivery plugin (`jd.delivery_job_type`) the nodes' logins from the nodes
    /// file as its secrets `chainlink/<node>/email|password|url`; no other plugin sees them.
    pub fn provide_credentials(&self, runtime: &jobhost_runtime::Runtime) {
        if let Some(file) = &self.nodes_file {
            let provider = std::sync::Arc::new(file.clone());
            runtime.provide_secrets(&self.config.delivery_job_type, provider);
        }
    }

    async fn load<T: serde::de::DeserializeOwned>(
        &self,
        kind: RecordKind,
        id: &str,
    ) -> Result<Option<(T, String)>> {
        match self.store.jd_get(kind, id).await? {
            Some(text) => Ok(Some((from_json(id, &text)?, text))),
            None => Ok(None),
        }
    }

    async fn all<T: serde::de::DeserializeOwned>(&self, kind: RecordKind) -> Result<Vec<T>> {
        self.store
            .jd_all(kind)
            .await?
            .iter()
            .map(|text| from_json("record", text))
            .collect()
    }

    /// Changes a record with `change` and stores it, retrying if another writer got there
    /// first.
    async fn update<T, F>(
        &self,
        kind: RecordKind,
        id: &str,
        missing: &str,
        mut change: F,
    ) -> Result<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
        F: FnMut(&mut T) -> Result<()>,
    {
        loop {
            let (mut record, old) = self
                .load::<T>(kind, id)
                .await?
                .ok_or_else(|| JdError::NotFound(format!("{missing} {id} not found")))?;
            change(&mut record)?;
            let new = to_json(&record);
            if self.store.jd_swap(kind, id, &old, &new).await? {
                return Ok(record);
            }
        }
    }

    /// The JD's keypair: created on first use and kept in the store, so every node of a
    /// deployment, and every restart, answers with the same key.
    pub async fn keypair(&self) -> Result<Keypair> {
        use ring::signature::KeyPair as _;
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| JdError::Corrupt("cannot generate an ed25519 key".into()))?;
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|_| JdError::Corrupt("cannot read back a generated ed25519 key".into()))?;
        let candidate = Keypair {
            id: 1,
            public_key: hex::encode(pair.public_key().as_ref()),
            pkcs8: hex::encode(pkcs8.as_ref()),
            created_ms: now(),
        };
        let stored = self.store.jd_keypair(&to_json(&candidate)).await?;
        from_json("csa keypair", &stored)
    }
}
