//! The Chainlink Job Distributor services on the wire: `api.job.v1.JobService`,
//! `api.node.v1.NodeService` and `api.csa.v1.CSAService`, over [`Distributor`].

use std::collections::HashMap;

use tonic::{Request, Response, Status};

use super::convert::{store_status, timestamp};
use crate::jd::{
    self, ChainConfigSource, DeliveryStatus, Distributor, JdError, JobRef, NodeFilter,
    NodeRegistration, ProposalStatus, ProposedJobFilter, Selector, SelectorOp,
};
use jobhost_proto::api::{app::v1 as app, csa::v1 as csa, job::v1 as job, label, node::v1 as node};

/// A Job Distributor failure as a gRPC status (the codes its clients match on).
pub fn status(error: JdError) -> Status {
    match error {
        JdError::NotFound(m) => Status::not_found(m),
        JdError::AlreadyExists(m) => Status::already_exists(m),
        JdError::InvalidArgument(m) => Status::invalid_argument(m),
        JdError::FailedPrecondition(m) => Status::failed_precondition(m),
        JdError::Store(e) => store_status(e),
        e @ (JdError::NodesFile(_) | JdError::Corrupt(_) | JdError::Key(_)) => {
            tracing::error!("Job Distributor request failed: {e}");
            Status::internal(e.to_string())
        }
    }
}

fn labels_in(labels: Vec<label::Label>) -> Vec<(String, Option<String>)> {
    labels.into_iter().map(|l| (l.key, l.value)).collect()
}

fn labels_out(labels: &jd::Labels) -> Vec<label::Label> {
    labels
        .iter()
        .map(|(key, value)| label::Label {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

pub(crate) fn selectors_in(selectors: Vec<label::Selector>) -> Result<Vec<Selector>, Status> {
    selectors
        .into_iter()
        .map(|s| {
            let op = match label::SelectorOp::try_from(s.op) {
                Ok(label::SelectorOp::Eq) => SelectorOp::Eq,
                Ok(label::SelectorOp::NotEq) => SelectorOp::NotEq,
                Ok(label::SelectorOp::In) => SelectorOp::In,
                Ok(label::SelectorOp::NotIn) => SelectorOp::NotIn,
                Ok(label::SelectorOp::Exist) => SelectorOp::Exist,
                Ok(label::SelectorOp::NotExist) => SelectorOp::NotExist,
                Err(_) => {
                    return Err(Status::invalid_argument(format!(
                        "selector on {:?}: unknown op {}",
                        s.key, s.op
                    )));
                }
            };
            Ok(Selector {
                key: s.key,
                op,
                value: s.value,
            })
        })
        .collect()
}

/// A node as the API shows it: what it said of itself over wsrpc (`UpdateNode`) included,
/// and `is_connected` as of now.
async fn node_out(jd: &Distributor, node: jd::ChainlinkNode) -> node::Node {
    let report = node.report.as_ref().map(|r| r.update()).unwrap_or_default();
    node::Node {
        is_connected: jd.connected(&node).await,
        version: report.version,
        workflow_key: report.workflow_key,
        p2p_key_bundles: report
            .p2p_key_bundles
            .into_iter()
            .map(|b| node::P2pKeyBundle {
                peer_id: b.peer_id,
                public_key: b.public_key,
            })
            .collect(),
        nop_friendly_name: report.nop_friendly_name,
        id: node.id,
        name: node.name,
        public_key: node.public_key,
        is_enabled: node.enabled,
        labels: labels_out(&node.labels),
        created_at: Some(timestamp(node.created_ms)),
        updated_at: Some(timestamp(node.updated_ms)),
    }
}

fn job_out(j: jd::Job) -> job::Job {
    job::Job {
        id: j.id,
        uuid: j.uuid,
        node_id: j.node_id,
        proposal_ids: j.proposal_ids,
        created_at: Some(timestamp(j.created_ms)),
        updated_at: Some(timestamp(j.updated_ms)),
        deleted_at: j.deleted_ms.map(timestamp),
        labels: labels_out(&j.labels),
        rollback_policy_id: j.rollback_policy_id,
    }
}

fn proposal_out(p: jd::Proposal) -> job::Proposal {
    let status = match p.status {
        ProposalStatus::Proposed => job::ProposalStatus::Proposed,
        ProposalStatus::Approved => job::ProposalStatus::Approved,
        ProposalStatus::Rejected => job::ProposalStatus::Rejected,
        ProposalStatus::Cancelled => job::ProposalStatus::Cancelled,
        ProposalStatus::Pending => job::ProposalStatus::Pending,
        ProposalStatus::Revoked => job::ProposalStatus::Revoked,
    };
    let delivery = match p.delivery {
        DeliveryStatus::Unspecified => job::ProposalDeliveryStatus::Unspecified,
        DeliveryStatus::Delivered => job::ProposalDeliveryStatus::Delivered,
        DeliveryStatus::Acknowledged => job::ProposalDeliveryStatus::Acknowledged,
        DeliveryStatus::Failed => job::ProposalDeliveryStatus::Failed,
    };
    job::Proposal {
        id: p.id,
        revision: p.revision,
        status: status.into(),
        delivery_status: delivery.into(),
        spec: p.spec,
        job_id: p.job_id,
        created_at: Some(timestamp(p.created_ms)),
        updated_at: Some(timestamp(p.updated_ms)),
        acked_at: p.acked_ms.map(timestamp),
        response_received_at: p.response_ms.map(timestamp),
    }
}

/// The id or (deprecated) uuid of a request's `id_oneof`.
fn job_ref(id: Option<String>, uuid: Option<String>) -> Result<JobRef, Status> {
    match (id, uuid) {
        (Some(id), _) if !id.is_empty() => Ok(JobRef::Id(id)),
        (_, Some(uuid)) if !uuid.is_empty() => Ok(JobRef::Uuid(uuid)),
        _ => Err(Status::invalid_argument("id is required")),
    }
}

/// The [`JobRef`] of a request's `id_oneof` (module `$module` holds its `IdOneof`).
macro_rules! id_oneof {
    ($request:expr, $module:ident) => {{
        // The uuid form is deprecated in the protocol but still served to older clients.
        #[allow(deprecated)]
        let reference = match $request.id_oneof {
            Some(job::$module::IdOneof::Id(id)) => job_ref(Some(id), None),
            Some(job::$module::IdOneof::Uuid(uuid)) => job_ref(None, Some(uuid)),
            None => job_ref(None, None),
        };
        reference
    }};
}

/// `api.job.v1.JobService`.
#[derive(Clone)]
pub struct JobService {
    jd: Distributor,
}

impl JobService {
    /// The service over `jd`.
    pub fn new(jd: Distributor) -> Self {
        JobService { jd }
    }
}

#[tonic::async_trait]
impl job::job_service_server::JobService for JobService {
    async fn get_job(
        &self,
        request: Request<job::GetJobRequest>,
    ) -> Result<Response<job::GetJobResponse>, Status> {
        let reference = id_oneof!(request.into_inner(), get_job_request)?;
        let found = self.jd.job(&reference).await.map_err(status)?;
        Ok(Response::new(job::GetJobResponse {
            job: Some(job_out(found)),
        }))
    }

    async fn get_proposal(
        &self,
        request: Request<job::GetProposalRequest>,
    ) -> Result<Response<job::GetProposalResponse>, Status> {
        let id = request.into_inner().id;
        let proposal = self.jd.proposal(&id).await.map_err(status)?;
        Ok(Response::new(job::GetProposalResponse {
            proposal: Some(proposal_out(proposal)),
        }))
    }

    async fn list_jobs(
        &self,
        request: Request<job::ListJobsRequest>,
    ) -> Result<Response<job::ListJobsResponse>, Status> {
        let f = request.into_inner().filter.unwrap_or_default();
        let filter = ProposedJobFilter {
            ids: f.ids,
            node_ids: f.node_ids,
            selectors: selectors_in(f.selectors)?,
            uuids: f.uuids,
            include_deleted: f.include_deleted,
        };
        let jobs = self.jd.list_jobs(&filter).await.map_err(status)?;
        Ok(Response::new(job::ListJobsResponse {
            jobs: jobs.into_iter().map(job_out).collect(),
        }))
    }

    async fn list_proposals(
        &self,
        request: Request<job::ListProposalsRequest>,
    ) -> Result<Response<job::ListProposalsResponse>, Status> {
        let f = request.into_inner().filter.unwrap_or_default();
        let proposals = self
            .jd
            .list_proposals(&f.ids, &f.job_ids)
            .await
            .map_err(status)?;
        Ok(Response::new(job::ListProposalsResponse {
            proposals: proposals.into_iter().map(proposal_out).collect(),
        }))
    }

    async fn propose_job(
        &self,
        request: Request<job::ProposeJobRequest>,
    ) -> Result<Response<job::ProposeJobResponse>, Status> {
        let r = request.into_inner();
        let proposal = self
            .jd
            .propose(&r.node_id, &r.spec, labels_in(r.labels))
            .await
            .map_err(status)?;
        Ok(Response::new(job::ProposeJobResponse {
            proposal: Some(proposal_out(proposal)),
        }))
    }

    async fn batch_propose_job(
        &self,
        request: Request<job::BatchProposeJobRequest>,
    ) -> Result<Response<job::BatchProposeJobResponse>, Status> {
        let r = request.into_inner();
        let mut success_responses = HashMap::new();
        let mut failed_responses = HashMap::new();
        for node_id in r.node_ids {
            match self
                .jd
                .propose(&node_id, &r.spec, labels_in(r.labels.clone()))
                .await
            {
                Ok(proposal) => {
                    success_responses.insert(
                        node_id,
                        job::ProposeJobResponse {
                            proposal: Some(proposal_out(proposal)),
                        },
                    );
                }
                Err(e) => {
                    failed_responses.insert(
                        node_id,
                        job::ProposeJobFailure {
                            error_message: status(e).message().to_owned(),
                        },
                    );
                }
            }
        }
        Ok(Response::new(job::BatchProposeJobResponse {
            success_responses,
            failed_responses,
        }))
    }

    async fn revoke_job(
        &self,
        request: Request<job::RevokeJobRequest>,
    ) -> Result<Response<job::RevokeJobResponse>, Status> {
        let reference = id_oneof!(request.into_inner(), revoke_job_request)?;
        let proposal = self.jd.revoke(&reference).await.map_err(status)?;
        Ok(Response::new(job::RevokeJobResponse {
            proposal: Some(proposal_out(proposal)),
        }))
    }

    async fn delete_job(
        &self,
        request: Request<job::DeleteJobRequest>,
    ) -> Result<Response<job::DeleteJobResponse>, Status> {
        let reference = id_oneof!(request.into_inner(), delete_job_request)?;
        let deleted = self.jd.delete_job(&reference).await.map_err(status)?;
        Ok(Response::new(job::DeleteJobResponse {
            job: Some(job_out(deleted)),
        }))
    }

    async fn update_job(
        &self,
        request: Request<job::UpdateJobRequest>,
    ) -> Result<Response<job::UpdateJobResponse>, Status> {
        let r = request.into_inner();
        let (labels, rollback) = (labels_in(r.labels.clone()), r.rollback_policy_id);
        let reference = id_oneof!(r, update_job_request)?;
        let updated = self
            .jd
            .update_job(&reference, labels, rollback)
            .await
            .map_err(status)?;
        Ok(Response::new(job::UpdateJobResponse {
            job: Some(job_out(updated)),
        }))
    }
}

/// `api.node.v1.NodeService`.
#[derive(Clone)]
pub struct NodeService {
    jd: Distributor,
}

impl NodeService {
    /// The service over `jd`.
    pub fn new(jd: Distributor) -> Self {
        NodeService { jd }
    }
}

fn chain_type(name: &str) -> node::ChainType {
    match name.to_ascii_lowercase().as_str() {
        "evm" => node::ChainType::Evm,
        "solana" => node::ChainType::Solana,
        "starknet" => node::ChainType::Starknet,
        "aptos" => node::ChainType::Aptos,
        "tron" => node::ChainType::Tron,
        "ton" => node::ChainType::Ton,
        "sui" => node::ChainType::Sui,
        "stellar" => node::ChainType::Stellar,
        "canton" => node::ChainType::Canton,
        _ => node::ChainType::Unspecified,
    }
}

fn chain_config_out(c: jd::NodeChainConfig) -> node::ChainConfig {
    match c.config {
        // `cfm.ChainConfig` and `api.node.v1.ChainConfig` share fields 1..=7, field for
        // field: what the node sent passes through whole.
        ChainConfigSource::Reported(reported) => {
            let bytes = prost::Message::encode_to_vec(&reported);
            let mut config: node::ChainConfig =
                prost::Message::decode(bytes.as_slice()).unwrap_or_default();
            config.node_id = c.node_id;
            config
        }
        ChainConfigSource::File(entry) => file_chain_config_out(c.node_id, entry),
    }
}

fn file_chain_config_out(node_id: String, entry: jd::NodesFileChainConfig) -> node::ChainConfig {
    use node::ocr2_config::{OcrKeyBundle, P2pKeyBundle, Plugins};
    let ocr2 = entry.ocr2.map(|o| {
        let has = |p: &str| o.plugins.iter().any(|x| x.eq_ignore_ascii_case(p));
        node::Ocr2Config {
            enabled: o.enabled,
            is_bootstrap: o.is_bootstrap,
            p2p_key_bundle: Some(P2pKeyBundle {
                peer_id: o.peer_id.clone(),
                public_key: o.p2p_public_key.clone(),
            }),
            ocr_key_bundle: Some(OcrKeyBundle {
                bundle_id: o.bundle_id.clone(),
                config_public_key: o.config_public_key.clone(),
                offchain_public_key: o.offchain_public_key.clone(),
                onchain_signing_address: o.onchain_signing_address.clone(),
                onchain_signing_pub_key: String::new(),
            }),
            multiaddr: o.multiaddr.clone(),
            plugins: Some(Plugins {
                commit: has("commit"),
                execute: has("execute"),
                median: has("median"),
                mercury: has("mercury"),
                rebalancer: has("rebalancer"),
            }),
            forwarder_address: o.forwarder_address.clone(),
        }
    });
    node::ChainConfig {
        chain: Some(node::Chain {
            id: entry.chain_id,
            r#type: chain_type(&entry.chain_type).into(),
        }),
        account_address: entry.account_address,
        admin_address: entry.admin_address,
        flux_monitor_config: Some(node::FluxMonitorConfig { enabled: false }),
        ocr1_config: Some(node::Ocr1Config::default()),
        ocr2_config: ocr2,
        account_address_public_key: entry.account_address_public_key,
        node_id,
    }
}

#[tonic::async_trait]
impl node::node_service_server::NodeService for NodeService {
    async fn disable_node(
        &self,
        request: Request<node::DisableNodeRequest>,
    ) -> Result<Response<node::DisableNodeResponse>, Status> {
        let id = request.into_inner().id;
        let n = self.jd.set_node_enabled(&id, false).await.map_err(status)?;
        Ok(Response::new(node::DisableNodeResponse {
            node: Some(node_out(&self.jd, n).await),
        }))
    }

    async fn enable_node(
        &self,
        request: Request<node::EnableNodeRequest>,
    ) -> Result<Response<node::EnableNodeResponse>, Status> {
        let id = request.into_inner().id;
        let n = self.jd.set_node_enabled(&id, true).await.map_err(status)?;
        Ok(Response::new(node::EnableNodeResponse {
            node: Some(node_out(&self.jd, n).await),
        }))
    }

    async fn get_node(
        &self,
        request: Request<node::GetNodeRequest>,
    ) -> Result<Response<node::GetNodeResponse>, Status> {
        let r = request.into_inner();
        let n = match (r.id.is_empty(), r.public_key) {
            (false, _) => self.jd.node(&r.id).await,
            (true, Some(key)) if !key.is_empty() => self.jd.node_by_key(&key).await,
            _ => return Err(Status::invalid_argument("id or public_key is required")),
        }
        .map_err(status)?;
        Ok(Response::new(node::GetNodeResponse {
            node: Some(node_out(&self.jd, n).await),
        }))
    }

    async fn list_nodes(
        &self,
        request: Request<node::ListNodesRequest>,
    ) -> Result<Response<node::ListNodesResponse>, Status> {
        let r = request.into_inner();
        let f = r.filter.unwrap_or_default();
        let enabled = match node::EnableState::try_from(f.enabled) {
            Ok(node::EnableState::Enabled) => Some(true),
            Ok(node::EnableState::Disabled) => Some(false),
            Ok(node::EnableState::Unspecified) => None,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "unknown enabled state {}",
                    f.enabled
                )));
            }
        };
        if r.page_size < 0 || r.page < 0 {
            return Err(Status::invalid_argument(
                "page_size and page must not be negative",
            ));
        }
        let filter = NodeFilter {
            ids: f.ids,
            enabled,
            selectors: selectors_in(f.selectors)?,
            public_keys: f.public_keys,
        };
        let (nodes, total) = self
            .jd
            .list_nodes(&filter, r.page_size as usize, r.page as usize)
            .await
            .map_err(status)?;
        Ok(Response::new(node::ListNodesResponse {
            nodes: futures::future::join_all(nodes.into_iter().map(|n| node_out(&self.jd, n)))
                .await,
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }

    async fn list_node_chain_configs(
        &self,
        request: Request<node::ListNodeChainConfigsRequest>,
    ) -> Result<Response<node::ListNodeChainConfigsResponse>, Status> {
        let f = request.into_inner().filter.unwrap_or_default();
        let configs = self.jd.chain_configs(&f.node_ids).await.map_err(status)?;
        Ok(Response::new(node::ListNodeChainConfigsResponse {
            chain_configs: configs.into_iter().map(chain_config_out).collect(),
        }))
    }

    async fn register_node(
        &self,
        request: Request<node::RegisterNodeRequest>,
    ) -> Result<Response<node::RegisterNodeResponse>, Status> {
        let r = request.into_inner();
        let n = self
            .jd
            .register_node(NodeRegistration {
                name: r.name,
                public_key: r.public_key,
                labels: labels_in(r.labels),
            })
            .await
            .map_err(status)?;
        Ok(Response::new(node::RegisterNodeResponse {
            node: Some(node_out(&self.jd, n).await),
        }))
    }

    async fn update_node(
        &self,
        request: Request<node::UpdateNodeRequest>,
    ) -> Result<Response<node::UpdateNodeResponse>, Status> {
        let r = request.into_inner();
        let n = self
            .jd
            .update_node(&r.id, &r.name, &r.public_key, labels_in(r.labels))
            .await
            .map_err(status)?;
        Ok(Response::new(node::UpdateNodeResponse {
            node: Some(node_out(&self.jd, n).await),
        }))
    }
}

/// `api.csa.v1.CSAService`.
#[derive(Clone)]
pub struct CsaService {
    jd: Distributor,
}

impl CsaService {
    /// The service over `jd`.
    pub fn new(jd: Distributor) -> Self {
        CsaService { jd }
    }

    async fn keypair(&self) -> Result<csa::Keypair, Status> {
        let key = self.jd.csa_key().await.map_err(status)?;
        let pair = key.record().clone();
        Ok(csa::Keypair {
            id: pair.id,
            public_key: pair.public_key,
            created_at: Some(timestamp(pair.created_ms)),
        })
    }
}

#[tonic::async_trait]
impl csa::csa_service_server::CsaService for CsaService {
    async fn get_keypair(
        &self,
        _request: Request<csa::GetKeypairRequest>,
    ) -> Result<Response<csa::GetKeypairResponse>, Status> {
        Ok(Response::new(csa::GetKeypairResponse {
            keypair: Some(self.keypair().await?),
        }))
    }

    async fn list_keypairs(
        &self,
        _request: Request<csa::ListKeypairsRequest>,
    ) -> Result<Response<csa::ListKeypairsResponse>, Status> {
        Ok(Response::new(csa::ListKeypairsResponse {
            keypairs: vec![self.keypair().await?],
        }))
    }
}

/// `api.app.v1.AppService`: the JD's version, for clients that ask which JD they talk to.
#[derive(Clone, Copy, Debug, Default)]
pub struct AppService;

#[tonic::async_trait]
impl app::app_service_server::AppService for AppService {
    async fn version(
        &self,
        _request: Request<app::VersionRequest>,
    ) -> Result<Response<app::VersionResponse>, Status> {
        Ok(Response::new(app::VersionResponse {
            version: format!("jobhost {}", env!("CARGO_PKG_VERSION")),
        }))
    }
}
