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

mod channel;
pub mod csa;
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

pub use channel::{Call, Command, Decision, Outgoing, canonical_uuid, session_touch_interval};
pub use csa::{CsaKey, Keypair};
pub use jobs::{JobRef, ProposedJobFilter};
pub use labels::{Labels, Selector, SelectorOp};
pub use nodes::{ChainConfigSource, NodeChainConfig, NodeFilter, NodeRegistration};
pub use nodes_file::{
    ChainConfigEntry as NodesFileChainConfig, NodeEntry, NodesFile, NodesFileError,
};
pub use records::{ChainlinkNode, DeliveryStatus, Job, NodeReport, Proposal, ProposalStatus};

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
    /// The CSA key cannot be made, opened or sealed (a wrong `jd.csa_key_secret`, say).
    #[error("{0}")]
    Key(String),
}

type Result<T> = std::result::Result<T, JdError>;

/// The Job Distributor over one store. Cheap to clone.
#[derive(Clone)]
pub struct Distributor {
    store: Store,
    config: JdConfig,
    nodes_file: Option<NodesFile>,
    connectivity: probe::Connectivity,
    /// The value of `jd.csa_key_secret`, read at start.
    csa_secret: Option<std::sync::Arc<str>>,
    /// The CSA key, once opened.
    csa: std::sync::Arc<tokio::sync::OnceCell<CsaKey>>,
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
    /// A Job Distributor on `store` as `config` says; reads the nodes file and the CSA
    /// key's secret now, so a broken file or a missing secret is an error at start.
    pub fn new(store: Store, config: JdConfig) -> Result<Distributor> {
        let nodes_file = match &config.nodes_file {
            Some(path) => Some(NodesFile::open(path)?),
            None => None,
        };
        let csa_secret = match config.csa_secret_source(|name| std::env::var(name).ok()) {
            Some(source) => Some(source.read().filter(|s| !s.is_empty()).ok_or_else(|| {
                JdError::Key(format!(
                    "jd.csa_key_secret: {source:?} is not set or empty (the secret that encrypts the JD's CSA key)"
                ))
            })?),
            None => None,
        };
        Ok(Distributor {
            store,
            config,
            nodes_file,
            connectivity: probe::Connectivity::default(),
            csa_secret: csa_secret.map(std::sync::Arc::from),
            csa: Default::default(),
        })
    }

    /// The store its records are in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The Job Distributor's settings.
    pub fn config(&self) -> &JdConfig {
        &self.config
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

    /// The JD's CSA key: made on first use and kept in the store (sealed with
    /// `jd.csa_key_secret`), so every node of a deployment, and every restart, presents the
    /// same key. A stored key the secret does not open is an error, never a new key.
    pub async fn csa_key(&self) -> Result<CsaKey> {
        self.csa
            .get_or_try_init(|| self.open_csa_key())
            .await
            .cloned()
    }

    async fn open_csa_key(&self) -> Result<CsaKey> {
        let secret = self.csa_secret.as_deref();
        let (candidate, _) = csa::generate(secret)?;
        let stored = self.store.jd_keypair(&to_json(&candidate)).await?;
        match csa::unseal(&stored, secret)? {
            csa::Unsealed::Key(key) => {
                if secret.is_none() {
                    tracing::warn!(
                        "the Job Distributor's CSA private key is stored UNENCRYPTED in Redis: \
                         set jd.csa_key_secret (env:NAME or file:/path) or CSA_KEY_ENCRYPTION_SECRET to seal it"
                    );
                }
                Ok(key)
            }
            csa::Unsealed::Migrate(key, sealed) => {
                if self.store.jd_keypair_swap(&stored, &sealed).await? {
                    tracing::info!(
                        "the Job Distributor's CSA key was stored unencrypted: sealed it with jd.csa_key_secret"
                    );
                    Ok(key)
                } else {
                    // Another node sealed it first: read what it stored.
                    Box::pin(self.open_csa_key()).await
                }
            }
        }
    }
}
