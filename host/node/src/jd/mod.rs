//! The Chainlink Job Distributor: nodes register, job specs are proposed to them, approved
//! proposals are delivered by the delivery plugin (`ccip-submit`), and the JD's CSA key.
//!
//! This is the domain; `api/grpc/jd.rs` puts it on the wire (`api.job.v1`, `api.node.v1`,
//! `api.csa.v1`) and `store/jd.rs` keeps its records. Delivery is an ordinary jobhost job
//! of the delivery type, so it is retried with backoff, survives node deaths and shows in
//! `jobctl`; a proposal's delivery status is read from that job and settled into the
//! proposal once final.

pub mod labels;
pub mod nodes_file;
pub mod probe;
pub mod records;
pub mod spec;

use std::collections::BTreeMap;

use jobhost_config::JdConfig;
use jobhost_store::{
    Created, JobState, NewJob, RecordKind, RetryPolicy, Store, StoreError, UniqueIndex,
};

pub use labels::{Labels, Selector, SelectorOp};
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

/// What to register.
#[derive(Debug, Clone, Default)]
pub struct NodeRegistration {
    /// Node name.
    pub name: String,
    /// CSA public key.
    pub public_key: String,
    /// Labels.
    pub labels: Vec<(String, Option<String>)>,
}

/// Which nodes to list.
#[derive(Debug, Clone, Default)]
pub struct NodeFilter {
    /// Only these ids (empty: any).
    pub ids: Vec<String>,
    /// Only enabled (`Some(true)`) or disabled (`Some(false)`) nodes.
    pub enabled: Option<bool>,
    /// Every selector must match.
    pub selectors: Vec<Selector>,
    /// Only these public keys (empty: any).
    pub public_keys: Vec<String>,
}

/// Which proposed jobs to list (the Job Distributor's `ListJobs` filter).
#[derive(Debug, Clone, Default)]
pub struct ProposedJobFilter {
    /// Only these ids (empty: any).
    pub ids: Vec<String>,
    /// Only jobs of these nodes (empty: any).
    pub node_ids: Vec<String>,
    /// Every selector must match.
    pub selectors: Vec<Selector>,
    /// Only these uuids (empty: any).
    pub uuids: Vec<String>,
    /// Include soft-deleted jobs.
    pub include_deleted: bool,
}

/// A job by id, or by its (deprecated) uuid.
#[derive(Debug, Clone)]
pub enum JobRef {
    /// The JD id.
    Id(String),
    /// The spec's externalJobID (must be on one node only).
    Uuid(String),
}

/// A chain config from the nodes file, with the id of the node it belongs to.
#[derive(Debug, Clone)]
pub struct NodeChainConfig {
    /// The registered node's id.
    pub node_id: String,
    /// The config as the operator wrote it.
    pub config: nodes_file::ChainConfigEntry,
}

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

    /// Probes the nodes' HTTP APIs every `jd.probe_interval_ms` until `stop` (see
    /// [`probe`]); [`Distributor::is_connected`] answers from it.
    pub async fn probe_nodes(self, stop: tokio_util::sync::CancellationToken) {
        let interval = std::time::Duration::from_millis(self.config.probe_interval_ms.max(100));
        probe::run(self, interval, stop).await;
    }

    /// True while node `id`'s HTTP API answers its health probe: its last probe got an
    /// answer, within three probe intervals.
    pub fn is_connected(&self, id: &str) -> bool {
        let window = std::time::Duration::from_millis(
            self.config.probe_interval_ms.max(100).saturating_mul(3),
        );
        self.connectivity.is_connected(id, window)
    }

    // ---- nodes ----

    /// Registers a node. Its public key must be new (ALREADY_EXISTS otherwise); new nodes
    /// are enabled.
    pub async fn register_node(&self, registration: NodeRegistration) -> Result<ChainlinkNode> {
        let name = registration.name.trim();
        let public_key = registration.public_key.trim();
        if name.is_empty() {
            return Err(JdError::InvalidArgument("name must not be empty".into()));
        }
        if public_key.is_empty() {
            return Err(JdError::InvalidArgument(
                "public_key must not be empty".into(),
            ));
        }
        let labels = labels::parse(registration.labels).map_err(invalid_labels)?;
        let now = now();
        let node = ChainlinkNode {
            id: jobhost_store::new_id(),
            name: name.to_owned(),
            public_key: public_key.to_owned(),
            enabled: true,
            labels,
            created_ms: now,
            updated_ms: now,
        };
        let created = self
            .store
            .jd_create(
                RecordKind::Nodes,
                UniqueIndex::NodeKeys,
                public_key,
                &node.id,
                &to_json(&node),
            )
            .await?;
        match created {
            Created::New => {
                tracing::info!(node = %node.id, name = %node.name, "Job Distributor: node registered");
                Ok(node)
            }
            Created::Exists(id) => Err(JdError::AlreadyExists(format!(
                "a node with public key {public_key} is already registered (id {id})"
            ))),
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

    /// The node `id`.
    pub async fn node(&self, id: &str) -> Result<ChainlinkNode> {
        self.load::<ChainlinkNode>(RecordKind::Nodes, id)
            .await?
            .map(|(n, _)| n)
            .ok_or_else(|| JdError::NotFound(format!("node {id} not found")))
    }

    /// The node with `public_key`.
    pub async fn node_by_key(&self, public_key: &str) -> Result<ChainlinkNode> {
        let id = self
            .store
            .jd_lookup(UniqueIndex::NodeKeys, public_key.trim())
            .await?
            .ok_or_else(|| JdError::NotFound(format!("no node with public key {public_key}")))?;
        self.node(&id).await
    }

    async fn all<T: serde::de::DeserializeOwned>(&self, kind: RecordKind) -> Result<Vec<T>> {
        self.store
            .jd_all(kind)
            .await?
            .iter()
            .map(|text| from_json("record", text))
            .collect()
    }

    /// Nodes matching `filter`, oldest first, one page of `page_size` (0: all) at 1-based
    /// `page`; also the number of matches in all.
    pub async fn list_nodes(
        &self,
        filter: &NodeFilter,
        page_size: usize,
        page: usize,
    ) -> Result<(Vec<ChainlinkNode>, usize)> {
        let mut nodes: Vec<ChainlinkNode> = self
            .all::<ChainlinkNode>(RecordKind::Nodes)
            .await?
            .into_iter()
            .filter(|n| filter.ids.is_empty() || filter.ids.contains(&n.id))
            .filter(|n| filter.enabled.is_none_or(|e| n.enabled == e))
            .filter(|n| filter.public_keys.is_empty() || filter.public_keys.contains(&n.public_key))
            .filter(|n| labels::all_match(&filter.selectors, &n.labels))
            .collect();
        nodes.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        let total = nodes.len();
        if page_size > 0 {
            let skip = page.max(1).saturating_sub(1).saturating_mul(page_size);
            nodes = nodes.into_iter().skip(skip).take(page_size).collect();
        }
        Ok((nodes, total))
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

    /// Changes a node's name, public key and labels: only the ones given (non-empty).
    pub async fn update_node(
        &self,
        id: &str,
        name: &str,
        public_key: &str,
        new_labels: Vec<(String, Option<String>)>,
    ) -> Result<ChainlinkNode> {
        let new_labels = if new_labels.is_empty() {
            None
        } else {
            Some(labels::parse(new_labels).map_err(invalid_labels)?)
        };
        let current = self.node(id).await?;
        let public_key = public_key.trim();
        let rekey = !public_key.is_empty() && public_key != current.public_key;
        if rekey
            && !self
                .store
                .jd_claim_index(UniqueIndex::NodeKeys, public_key, id)
                .await?
        {
            return Err(JdError::AlreadyExists(format!(
                "a node with public key {public_key} is already registered"
            )));
        }
        let name = name.trim();
        let updated = self
            .update(RecordKind::Nodes, id, "node", |node: &mut ChainlinkNode| {
                if !name.is_empty() {
                    node.name = name.to_owned();
                }
                if rekey {
                    node.public_key = public_key.to_owned();
                }
                if let Some(l) = &new_labels {
                    node.labels = l.clone();
                }
                node.updated_ms = now();
                Ok(())
            })
            .await?;
        if rekey {
            self.store
                .jd_release_index(UniqueIndex::NodeKeys, &current.public_key)
                .await?;
        }
        Ok(updated)
    }

    /// Enables or disables proposals to node `id`.
    pub async fn set_node_enabled(&self, id: &str, enabled: bool) -> Result<ChainlinkNode> {
        self.update(RecordKind::Nodes, id, "node", |node: &mut ChainlinkNode| {
            node.enabled = enabled;
            node.updated_ms = now();
            Ok(())
        })
        .await
    }

    /// Chain configs from the nodes file of the registered nodes `node_ids` (empty: all).
    pub async fn chain_configs(&self, node_ids: &[String]) -> Result<Vec<NodeChainConfig>> {
        let Some(file) = &self.nodes_file else {
            return Ok(Vec::new());
        };
        let (nodes, _) = self
            .list_nodes(
                &NodeFilter {
                    ids: node_ids.to_vec(),
                    ..NodeFilter::default()
                },
                0,
                0,
            )
            .await?;
        let mut out = Vec::new();
        for node in nodes {
            if let Some(entry) = file.find(&node.name, &node.public_key)? {
                out.extend(
                    entry
                        .chain_configs
                        .into_iter()
                        .map(|config| NodeChainConfig {
                            node_id: node.id.clone(),
                            config,
                        }),
                );
            }
        }
        Ok(out)
    }

    // ---- jobs and proposals ----

    /// Proposes `spec` to node `node_id`: the spec's externalJobID names the job (a new one,
    /// or the node's existing job with that uuid, which gets the next revision). Approved
    /// at once when `jd.auto_approve` is on (then delivered), else PENDING.
    pub async fn propose(
        &self,
        node_id: &str,
        spec: &str,
        job_labels: Vec<(String, Option<String>)>,
    ) -> Result<Proposal> {
        let node = self.node(node_id).await?;
        if !node.enabled {
            return Err(JdError::FailedPrecondition(format!(
                "node {node_id} is disabled"
            )));
        }
        let uuid =
            spec::external_job_id(spec).map_err(|e| JdError::InvalidArgument(e.to_string()))?;
        let new_labels = if job_labels.is_empty() {
            None
        } else {
            Some(labels::parse(job_labels).map_err(invalid_labels)?)
        };
        let job_id = self.job_for(&node, &uuid, new_labels.clone()).await?;
        let proposal_id = jobhost_store::new_id();
        let job = self
            .update(RecordKind::Jobs, &job_id, "job", |job: &mut Job| {
                job.proposal_ids.push(proposal_id.clone());
                if let Some(l) = &new_labels {
                    job.labels = l.clone();
                }
                job.deleted_ms = None;
                job.updated_ms = now();
                Ok(())
            })
            .await?;
        let now = now();
        let mut proposal = Proposal {
            id: proposal_id,
            job_id: job.id.clone(),
            revision: job.proposal_ids.len() as i64,
            status: if self.config.auto_approve {
                ProposalStatus::Approved
            } else {
                ProposalStatus::Pending
            },
            spec: spec.to_owned(),
            created_ms: now,
            updated_ms: now,
            delivery_job: None,
            delivery: DeliveryStatus::Unspecified,
            delivery_error: None,
            node_job_id: None,
            response_ms: None,
            approved_by: None,
        };
        if proposal.status == ProposalStatus::Approved {
            self.start_delivery(&node, &job, &mut proposal).await?;
        }
        self.store
            .jd_put(RecordKind::Proposals, &proposal.id, &to_json(&proposal))
            .await?;
        tracing::info!(
            node = %node.name, job = %job.id, proposal = %proposal.id, revision = proposal.revision,
            status = ?proposal.status, "Job Distributor: job proposed"
        );
        Ok(proposal)
    }

    /// Hands the approved `proposal`, the latest of `job` on `node`, to delivery: deliveries
    /// of earlier revisions still waiting are cancelled, and the node's job made by the last
    /// delivered revision is replaced (a node holds one job per externalJobID). Records the
    /// delivery job in `proposal`, or why delivery cannot start.
    async fn start_delivery(
        &self,
        node: &ChainlinkNode,
        job: &Job,
        proposal: &mut Proposal,
    ) -> Result<()> {
        let earlier = &job.proposal_ids[..job.proposal_ids.len().saturating_sub(1)];
        self.supersede_deliveries(earlier, proposal.revision)
            .await?;
        let replaces = self.delivered_node_job(earlier).await?;
        let delivery = Delivery::Create {
            spec: &proposal.spec,
            replaces: replaces.as_ref().map(|(_, id)| id.as_str()),
        };
        match self.deliver(node, delivery, &proposal.id).await {
            Ok(job) => proposal.delivery_job = Some(job),
            Err(reason) => {
                tracing::warn!(node = %node.name, proposal = %proposal.id, "Job Distributor: cannot deliver: {reason}");
                proposal.delivery = DeliveryStatus::Failed;
                proposal.delivery_error = Some(reason);
            }
        }
        Ok(())
    }

    /// Approves a PENDING proposal (with `jd.auto_approve` off, proposals wait for this) and
    /// delivers it, as [`Distributor::propose`] does an approved one. Only a job's latest
    /// proposal can be approved (earlier revisions are superseded), on an enabled node, while
    /// the job is not deleted. Approving again an approved proposal whose delivery never
    /// started (the approver died in between) starts it; any other state is
    /// FAILED_PRECONDITION. `by` (who approved) is kept on the proposal.
    pub async fn approve(&self, proposal_id: &str, by: &str) -> Result<Proposal> {
        let current = self.proposal(proposal_id).await?;
        let job = self.job(&JobRef::Id(current.job_id.clone())).await?;
        let latest = job.proposal_ids.last().map(String::as_str);
        if latest != Some(current.id.as_str()) {
            return Err(JdError::FailedPrecondition(format!(
                "proposal {} is revision {} of job {}; only its latest revision ({}) can be approved",
                current.id,
                current.revision,
                job.id,
                job.proposal_ids.len()
            )));
        }
        if job.deleted_ms.is_some() {
            return Err(JdError::FailedPrecondition(format!(
                "job {} is deleted",
                job.id
            )));
        }
        let node = self.node(&job.node_id).await?;
        if !node.enabled {
            return Err(JdError::FailedPrecondition(format!(
                "node {} is disabled",
                node.id
            )));
        }
        // Pending -> approved is one atomic swap, so of two approvers one wins (a retry of
        // a never-started delivery may run twice; its idempotency key makes it one job).
        let mut approved = self
            .update(
                RecordKind::Proposals,
                proposal_id,
                "proposal",
                |p: &mut Proposal| {
                    let never_started = p.status == ProposalStatus::Approved
                        && p.delivery_job.is_none()
                        && p.delivery_error.is_none();
                    if p.status != ProposalStatus::Pending && !never_started {
                        return Err(JdError::FailedPrecondition(format!(
                            "proposal {} is {:?}: only a PENDING proposal can be approved",
                            p.id, p.status
                        )));
                    }
                    p.status = ProposalStatus::Approved;
                    p.approved_by = (!by.is_empty()).then(|| by.to_owned());
                    p.updated_ms = now();
                    Ok(())
                },
            )
            .await?;
        self.start_delivery(&node, &job, &mut approved).await?;
        let started = approved.clone();
        let approved = self
            .update(
                RecordKind::Proposals,
                proposal_id,
                "proposal",
                move |p: &mut Proposal| {
                    p.delivery_job = started.delivery_job.clone();
                    p.delivery = started.delivery;
                    p.delivery_error = started.delivery_error.clone();
                    Ok(())
                },
            )
            .await?;
        // A DeleteJob or a newer revision that raced the checks above: this delivery must
        // not land (DeleteJob and ProposeJob supersede only deliveries they can see).
        let now_job = self.job(&JobRef::Id(job.id.clone())).await?;
        let raced = if now_job.deleted_ms.is_some() {
            Some(0)
        } else if now_job.proposal_ids.last() != Some(&approved.id) {
            Some(now_job.proposal_ids.len() as i64)
        } else {
            None
        };
        if let Some(revision) = raced {
            self.supersede_deliveries(std::slice::from_ref(&approved.id), revision)
                .await?;
        }
        tracing::info!(
            node = %node.name, job = %job.id, proposal = %approved.id, revision = approved.revision,
            by, "Job Distributor: proposal approved"
        );
        Ok(approved)
    }

    /// The id of node's job for `uuid`, created if there is none.
    async fn job_for(
        &self,
        node: &ChainlinkNode,
        uuid: &str,
        job_labels: Option<Labels>,
    ) -> Result<String> {
        let field = format!("{}/{uuid}", node.id);
        if let Some(id) = self.store.jd_lookup(UniqueIndex::JobKeys, &field).await? {
            return Ok(id);
        }
        let now = now();
        let job = Job {
            id: jobhost_store::new_id(),
            uuid: uuid.to_owned(),
            node_id: node.id.clone(),
            proposal_ids: Vec::new(),
            labels: job_labels.unwrap_or_default(),
            created_ms: now,
            updated_ms: now,
            deleted_ms: None,
            rollback_policy_id: None,
        };
        let created = self
            .store
            .jd_create(
                RecordKind::Jobs,
                UniqueIndex::JobKeys,
                &field,
                &job.id,
                &to_json(&job),
            )
            .await?;
        Ok(match created {
            Created::New => job.id,
            Created::Exists(id) => id,
        })
    }

    /// Hands `delivery` for node to the delivery plugin as a jobhost job; the error is the
    /// reason delivery cannot even start.
    async fn deliver(
        &self,
        node: &ChainlinkNode,
        delivery: Delivery<'_>,
        proposal_id: &str,
    ) -> std::result::Result<String, String> {
        let no_credentials = || format!("no credentials configured for node {}", node.name);
        let entry = match &self.nodes_file {
            Some(file) => file
                .find(&node.name, &node.public_key)
                .map_err(|e| e.to_string())?
                .ok_or_else(no_credentials)?,
            None => return Err(no_credentials()),
        };
        if !entry.has_credentials() {
            return Err(no_credentials());
        }
        let (action, spec) = match delivery {
            Delivery::Create { spec, replaces } => {
                let mut spec = serde_json::json!({"action": "create", "node": entry.name, "url": entry.chainlink_url, "toml": spec});
                if let Some(old) = replaces {
                    spec["replaces"] = old.into();
                }
                ("create", spec)
            }
            Delivery::Delete { node_job_id } => (
                "delete",
                serde_json::json!({"action": "delete", "node": entry.name, "url": entry.chainlink_url, "node_job_id": node_job_id}),
            ),
        };
        let job = NewJob {
            name: format!("jd {action} {proposal_id} on {}", node.name),
            job_type: self.config.delivery_job_type.clone(),
            spec: spec.to_string(),
            labels: BTreeMap::from([
                ("jd.node".to_owned(), node.id.clone()),
                ("jd.proposal".to_owned(), proposal_id.to_owned()),
                ("jd.action".to_owned(), action.to_owned()),
            ]),
            retry: RetryPolicy {
                max_attempts: self.config.delivery_max_attempts.max(1),
                backoff_base_ms: self.config.delivery_backoff_ms,
                backoff_max_ms: self.config.delivery_backoff_max_ms,
            },
            idempotency_key: Some(format!("jd:{proposal_id}:{action}")),
            submitted_by: format!("jd:{proposal_id}"),
            ..NewJob::default()
        };
        let (id, _) = self.store.enqueue(&job).await.map_err(|e| e.to_string())?;
        Ok(id)
    }

    /// The proposal with its delivery status brought up to date from its delivery job (and
    /// stored, once the delivery is final, so it outlives the job's retention).
    pub async fn settle(&self, mut proposal: Proposal) -> Result<Proposal> {
        // Settled before (final), or never handed to delivery (not approved, or refused
        // before a job was made: then `delivery_error` says why).
        if proposal.response_ms.is_some() {
            return Ok(proposal);
        }
        let Some(job_id) = proposal.delivery_job.clone() else {
            return Ok(proposal);
        };
        let Some(job) = self.store.get(&job_id).await? else {
            return Ok(proposal);
        };
        let last_reason = || {
            job.reason
                .clone()
                .or_else(|| job.history.last().map(|a| a.reason.clone()))
        };
        let (delivery, error, final_) = match job.state {
            JobState::Succeeded => (DeliveryStatus::Delivered, None, true),
            JobState::Failed | JobState::Dead | JobState::Cancelled => {
                (DeliveryStatus::Failed, last_reason(), true)
            }
            _ if !job.history.is_empty() => (DeliveryStatus::Failed, last_reason(), false),
            _ => (DeliveryStatus::Unspecified, None, false),
        };
        proposal.delivery = delivery;
        proposal.delivery_error = error;
        if !final_ {
            return Ok(proposal);
        }
        proposal.response_ms = job.finished_ms.or(Some(job.updated_ms));
        proposal.node_job_id = job
            .output
            .as_deref()
            .and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())
            .and_then(|v| {
                v.get("node_job_id")
                    .and_then(|id| id.as_str())
                    .map(str::to_owned)
            });
        proposal.updated_ms = now();
        let settled = proposal.clone();
        // Another reader may settle it at the same time, to the same values.
        let _ = self
            .update(
                RecordKind::Proposals,
                &proposal.id,
                "proposal",
                move |p: &mut Proposal| {
                    *p = settled.clone();
                    Ok(())
                },
            )
            .await?;
        Ok(proposal)
    }

    /// Settles every proposal whose delivery has not been settled yet (see
    /// [`Distributor::settle`]); run periodically so outcomes outlive delivery jobs.
    pub async fn settle_pending(&self) -> Result<usize> {
        let mut settled = 0;
        for proposal in self.all::<Proposal>(RecordKind::Proposals).await? {
            let unsettled = proposal.delivery_job.is_some() && proposal.response_ms.is_none();
            if unsettled && self.settle(proposal).await?.response_ms.is_some() {
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// The proposal `id`, settled, if its record exists.
    async fn proposal_if_any(&self, id: &str) -> Result<Option<Proposal>> {
        match self.load::<Proposal>(RecordKind::Proposals, id).await? {
            Some((p, _)) => Ok(Some(self.settle(p).await?)),
            None => Ok(None),
        }
    }

    /// The proposal `id`, settled.
    pub async fn proposal(&self, id: &str) -> Result<Proposal> {
        let (proposal, _) = self
            .load::<Proposal>(RecordKind::Proposals, id)
            .await?
            .ok_or_else(|| JdError::NotFound(format!("proposal {id} not found")))?;
        self.settle(proposal).await
    }

    /// Proposals with these ids or of these jobs (both empty: all), oldest first.
    pub async fn list_proposals(
        &self,
        ids: &[String],
        job_ids: &[String],
    ) -> Result<Vec<Proposal>> {
        let mut out = Vec::new();
        for proposal in self.all::<Proposal>(RecordKind::Proposals).await? {
            if (ids.is_empty() || ids.contains(&proposal.id))
                && (job_ids.is_empty() || job_ids.contains(&proposal.job_id))
            {
                out.push(self.settle(proposal).await?);
            }
        }
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(out)
    }

    /// The job `reference` points to.
    pub async fn job(&self, reference: &JobRef) -> Result<Job> {
        match reference {
            JobRef::Id(id) => self
                .load::<Job>(RecordKind::Jobs, id)
                .await?
                .map(|(j, _)| j)
                .ok_or_else(|| JdError::NotFound(format!("job {id} not found"))),
            JobRef::Uuid(uuid) => {
                let mut found: Vec<Job> = self
                    .all::<Job>(RecordKind::Jobs)
                    .await?
                    .into_iter()
                    .filter(|j| &j.uuid == uuid)
                    .collect();
                match found.len() {
                    0 => Err(JdError::NotFound(format!("no job with uuid {uuid}"))),
                    1 => Ok(found.remove(0)),
                    n => Err(JdError::InvalidArgument(format!(
                        "uuid {uuid} names jobs on {n} nodes; ask by id"
                    ))),
                }
            }
        }
    }

    /// Jobs matching `filter`, oldest first.
    pub async fn list_jobs(&self, filter: &ProposedJobFilter) -> Result<Vec<Job>> {
        let mut jobs: Vec<Job> = self
            .all::<Job>(RecordKind::Jobs)
            .await?
            .into_iter()
            .filter(|j| filter.include_deleted || j.deleted_ms.is_none())
            .filter(|j| filter.ids.is_empty() || filter.ids.contains(&j.id))
            .filter(|j| filter.node_ids.is_empty() || filter.node_ids.contains(&j.node_id))
            .filter(|j| filter.uuids.is_empty() || filter.uuids.contains(&j.uuid))
            .filter(|j| labels::all_match(&filter.selectors, &j.labels))
            .collect();
        jobs.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(jobs)
    }

    /// The job `reference` points to, or the job of the proposal it names.
    async fn job_or_proposal_job(&self, reference: &JobRef) -> Result<Job> {
        match self.job(reference).await {
            Err(JdError::NotFound(message)) => match reference {
                JobRef::Id(id) => match self.load::<Proposal>(RecordKind::Proposals, id).await? {
                    Some((p, _)) => self.job(&JobRef::Id(p.job_id)).await,
                    None => Err(JdError::NotFound(message)),
                },
                JobRef::Uuid(_) => Err(JdError::NotFound(message)),
            },
            other => other,
        }
    }

    /// Revokes the latest proposal of a job (or of the proposal's job) while it is PROPOSED
    /// or PENDING.
    pub async fn revoke(&self, reference: &JobRef) -> Result<Proposal> {
        let job = self.job_or_proposal_job(reference).await?;
        let latest = job.proposal_ids.last().ok_or_else(|| {
            JdError::FailedPrecondition(format!("job {} has no proposal", job.id))
        })?;
        let revoked = self
            .update(RecordKind::Proposals, latest, "proposal", |p: &mut Proposal| {
                if !matches!(p.status, ProposalStatus::Proposed | ProposalStatus::Pending) {
                    return Err(JdError::FailedPrecondition(format!(
                        "proposal {} of job {} is {:?}: only a PROPOSED or PENDING proposal can be revoked",
                        p.id, p.job_id, p.status
                    )));
                }
                p.status = ProposalStatus::Revoked;
                p.updated_ms = now();
                Ok(())
            })
            .await?;
        self.settle(revoked).await
    }

    /// Deletes a job softly and removes it from its node when it was delivered there.
    pub async fn delete_job(&self, reference: &JobRef) -> Result<Job> {
        let job = self.job(reference).await?;
        if job.deleted_ms.is_some() {
            return Ok(job);
        }
        let deleted = self
            .update(RecordKind::Jobs, &job.id, "job", |j: &mut Job| {
                j.deleted_ms = Some(now());
                j.updated_ms = now();
                Ok(())
            })
            .await?;
        // A delivery still under way would land after the deletion.
        self.supersede_deliveries(&job.proposal_ids, 0).await?;
        if let Some((proposal_id, node_job_id)) = self.delivered_node_job(&job.proposal_ids).await?
        {
            let node = self.node(&job.node_id).await?;
            if let Err(reason) = self
                .deliver(
                    &node,
                    Delivery::Delete {
                        node_job_id: &node_job_id,
                    },
                    &proposal_id,
                )
                .await
            {
                tracing::warn!(job = %job.id, node = %node.name, "cannot remove the job from its node: {reason}");
            }
        }
        Ok(deleted)
    }

    /// Cancels the deliveries of `proposal_ids` still queued or waiting for a retry, so an
    /// older revision's retry cannot land on the node after revision `revision` (0: after
    /// the job's deletion). An attempt already running is asked to stop but may finish.
    async fn supersede_deliveries(&self, proposal_ids: &[String], revision: i64) -> Result<()> {
        for id in proposal_ids {
            // A proposal another call is still writing has no delivery to supersede yet.
            let Some(p) = self.proposal_if_any(id).await? else {
                continue;
            };
            if let (Some(job), None) = (&p.delivery_job, p.response_ms) {
                let reason = if revision > 0 {
                    format!("superseded by revision {revision}")
                } else {
                    "the job was deleted".to_owned()
                };
                self.store.cancel(job, &reason).await?;
            }
        }
        Ok(())
    }

    /// The node's id for the job, from the latest of `proposal_ids` that was delivered,
    /// with that proposal's id.
    async fn delivered_node_job(
        &self,
        proposal_ids: &[String],
    ) -> Result<Option<(String, String)>> {
        for id in proposal_ids.iter().rev() {
            let Some(p) = self.proposal_if_any(id).await? else {
                continue;
            };
            if let Some(node_job_id) = p.node_job_id {
                return Ok(Some((p.id, node_job_id)));
            }
        }
        Ok(None)
    }

    /// Replaces a job's labels (when given) and rollback policy (when given).
    pub async fn update_job(
        &self,
        reference: &JobRef,
        new_labels: Vec<(String, Option<String>)>,
        rollback_policy_id: Option<i64>,
    ) -> Result<Job> {
        let new_labels = if new_labels.is_empty() {
            None
        } else {
            Some(labels::parse(new_labels).map_err(invalid_labels)?)
        };
        let job = self.job(reference).await?;
        self.update(RecordKind::Jobs, &job.id, "job", |j: &mut Job| {
            if let Some(l) = &new_labels {
                j.labels = l.clone();
            }
            if rollback_policy_id.is_some() {
                j.rollback_policy_id = rollback_policy_id;
            }
            j.updated_ms = now();
            Ok(())
        })
        .await
    }

    // ---- CSA ----

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

/// What a delivery job does on the node.
enum Delivery<'a> {
    /// `POST /v2/jobs` with the spec, after deleting the node's job `replaces`.
    Create {
        spec: &'a str,
        replaces: Option<&'a str>,
    },
    /// `DELETE /v2/jobs/{id}`.
    Delete { node_job_id: &'a str },
}
