//! The Job Distributor's records as stored (JSON documents, see `store/jd.rs`).

use serde::{Deserialize, Serialize};

use super::labels::Labels;

/// A registered Chainlink node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainlinkNode {
    /// JD-assigned id.
    pub id: String,
    /// The name it registered with.
    pub name: String,
    /// Its CSA public key (unique).
    pub public_key: String,
    /// Whether jobs may be proposed to it.
    pub enabled: bool,
    /// Its labels.
    pub labels: Labels,
    /// Registration time, Unix ms.
    pub created_ms: u64,
    /// Last change, Unix ms.
    pub updated_ms: u64,
    /// What the node said of itself in its latest `UpdateNode` over wsrpc; a node that has
    /// sent one receives its proposals over wsrpc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<NodeReport>,
}

/// A node's latest `UpdateNode` (`cfm.UpdateNodeRequest`), as it sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The request, protobuf-encoded, hex.
    pub update: String,
    /// When it arrived, Unix ms.
    pub at_ms: u64,
}

impl NodeReport {
    /// The request as the node sent it.
    pub fn update(&self) -> jobhost_proto::cfm::UpdateNodeRequest {
        let bytes = hex::decode(&self.update).unwrap_or_default();
        prost::Message::decode(bytes.as_slice()).unwrap_or_default()
    }
}

/// A job: one `externalJobID` on one node, with its proposals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// JD-assigned id.
    pub id: String,
    /// The spec's `externalJobID`.
    pub uuid: String,
    /// The node it is for.
    pub node_id: String,
    /// Its proposals, oldest first (revision = position + 1).
    pub proposal_ids: Vec<String>,
    /// Its labels.
    pub labels: Labels,
    /// Creation time, Unix ms.
    pub created_ms: u64,
    /// Last change, Unix ms.
    pub updated_ms: u64,
    /// Soft deletion time, Unix ms.
    pub deleted_ms: Option<u64>,
    /// Rollback policy id, if set.
    pub rollback_policy_id: Option<i64>,
}

/// Decision state of a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProposalStatus {
    /// Proposed, undecided.
    Proposed,
    /// Approved (and handed to delivery).
    Approved,
    /// Rejected.
    Rejected,
    /// Cancelled.
    Cancelled,
    /// Waiting for approval.
    Pending,
    /// Revoked before a decision.
    Revoked,
}

/// Where delivery of a proposal to its node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    /// Not delivered (yet).
    Unspecified,
    /// The node accepted the spec.
    Delivered,
    /// The node acknowledged it.
    Acknowledged,
    /// Delivery failed (see the reason).
    Failed,
}

/// One revision of a job's spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// JD-assigned id.
    pub id: String,
    /// Its job.
    pub job_id: String,
    /// 1 for the first proposal of a job, then + 1.
    pub revision: i64,
    /// Decision state.
    pub status: ProposalStatus,
    /// The spec, byte for byte as proposed.
    pub spec: String,
    /// Creation time, Unix ms.
    pub created_ms: u64,
    /// Last change, Unix ms.
    pub updated_ms: u64,
    /// The jobhost job delivering it, once approved.
    pub delivery_job: Option<String>,
    /// Delivery state as last settled (see `Distributor::settle`).
    pub delivery: DeliveryStatus,
    /// Why delivery failed, when it did.
    pub delivery_error: Option<String>,
    /// The job's id on the node, once delivered.
    pub node_job_id: Option<String>,
    /// When the node's answer arrived, Unix ms.
    pub response_ms: Option<u64>,
    /// When the node acknowledged receiving it over wsrpc, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_ms: Option<u64>,
    /// Who approved it through the HTTP API (`certificate:<CN>`, `token:<name>`, ...);
    /// `None` when approved at once (`jd.auto_approve`) or not approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
}
