//! The proposal lifecycle over the wsrpc channel, for nodes that dial in: what the JD sends
//! a node (queued in the node's outbox, so whichever jobhost node holds its session sends it,
//! now or when it reconnects) and what the node's answers and messages do to the records.
//!
//! A node that has sent `UpdateNode` receives its proposals over the channel: PROPOSED, then
//! delivery DELIVERED when sent and ACKNOWLEDGED (`acked_at`) when the node answers;
//! `ApprovedJob` / `RejectedJob` / `CancelledJob` from the node decide it. The other nodes
//! keep the HTTP path (`delivery.rs`), where `jd.auto_approve` or an operator approves.

use jobhost_proto::cfm;
use prost::Message as _;
use serde::{Deserialize, Serialize};

use jobhost_store::{RecordKind, UniqueIndex};

use super::records::{ChainlinkNode, DeliveryStatus, Job, NodeReport, Proposal, ProposalStatus};
use super::{Distributor, JdError, Result, now, to_json};

/// A call the JD owes a node, by what it is about (the wire form is built when it is sent,
/// from the records as they are then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Command {
    /// `ProposeJob` with this proposal.
    Propose {
        /// The proposal's id.
        proposal: String,
    },
    /// `RevokeJob` of this proposal.
    Revoke {
        /// The proposal's id.
        proposal: String,
    },
    /// `DeleteJob` of this job.
    Delete {
        /// The job's id.
        job: String,
    },
}

/// A [`Command`] as queued in a node's outbox, with an id of its own (two equal commands
/// are still two entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    /// Unique id of this entry.
    pub id: String,
    /// What to send.
    #[serde(flatten)]
    pub command: Command,
}

/// A call ready to go on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The method (`ProposeJob`, `RevokeJob`, `DeleteJob`).
    pub method: &'static str,
    /// The encoded request.
    pub payload: Vec<u8>,
    /// It was sent before, and its answer lost (the node may already have it).
    pub resend: bool,
}

/// What a node decided about a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// `ApprovedJob`: PROPOSED → APPROVED.
    Approved,
    /// `RejectedJob`: PROPOSED → REJECTED.
    Rejected,
    /// `CancelledJob`: APPROVED → CANCELLED.
    Cancelled,
}

/// How often a session proves it is alive (in the store, for `is_connected` on every
/// jobhost node) and checks that no newer connection of its node took over.
pub fn session_touch_interval(config: &jobhost_config::JdConfig) -> std::time::Duration {
    std::time::Duration::from_millis(config.wsrpc_ping_interval_ms.min(5_000))
}

/// `id` in the canonical form nodes use (lower-case, hyphenated), if it is a UUID.
pub fn canonical_uuid(id: &str) -> Option<String> {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    let hyphens_ok = id.len() == 32 || (id.len() == 36 && id.matches('-').count() == 4);
    if hex.len() != 32 || !hyphens_ok || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

impl Distributor {
    /// Queues `command` for node `node_id`'s session.
    pub(super) async fn queue(&self, node_id: &str, command: Command) -> Result<()> {
        let entry = Outgoing {
            id: jobhost_store::new_id(),
            command,
        };
        self.store.jd_outbox_push(node_id, &to_json(&entry)).await?;
        Ok(())
    }

    /// The oldest call waiting for node `node_id`, as stored (to remove it once done).
    pub async fn next_outgoing(&self, node_id: &str) -> Result<Option<(Outgoing, String)>> {
        let Some(text) = self.store.jd_outbox_head(node_id).await? else {
            return Ok(None);
        };
        match serde_json::from_str(&text) {
            Ok(entry) => Ok(Some((entry, text))),
            Err(e) => {
                // Nothing can send it: drop it rather than block the node's outbox.
                tracing::error!(node = node_id, "dropping an unreadable outbox entry: {e}");
                self.store.jd_outbox_pop(node_id, &text).await?;
                Box::pin(self.next_outgoing(node_id)).await
            }
        }
    }

    /// Removes the call `text` (as [`Distributor::next_outgoing`] gave it) once done.
    pub async fn done_outgoing(&self, node_id: &str, text: &str) -> Result<()> {
        self.store.jd_outbox_pop(node_id, text).await?;
        Ok(())
    }

    /// The wire call for `entry`, recording that it is being sent; `None` when there is
    /// nothing to send any more (the proposal was revoked or its job deleted first).
    pub async fn prepare_call(&self, entry: &Outgoing) -> Result<Option<Call>> {
        match &entry.command {
            Command::Propose { proposal } => {
                let Some(p) = self.proposal_if_any(proposal).await? else {
                    return Ok(None);
                };
                let job = self.job_by_id(&p.job_id).await?;
                if job.deleted_ms.is_some() {
                    return Ok(None);
                }
                // Sent only while still PROPOSED: a revocation linearises with this swap.
                let (mut sending, mut resend) = (false, false);
                self.update(
                    RecordKind::Proposals,
                    proposal,
                    "proposal",
                    |p: &mut Proposal| {
                        sending = p.status == ProposalStatus::Proposed;
                        resend = p.delivery == DeliveryStatus::Delivered;
                        if sending {
                            p.delivery = DeliveryStatus::Delivered;
                            p.delivery_error = None;
                            p.updated_ms = now();
                        }
                        Ok(())
                    },
                )
                .await?;
                Ok(sending.then(|| Call {
                    method: "ProposeJob",
                    payload: cfm::ProposeJobRequest {
                        id: remote_id(&job),
                        spec: p.spec.clone(),
                        multiaddrs: Vec::new(),
                        version: p.revision,
                    }
                    .encode_to_vec(),
                    resend,
                }))
            }
            Command::Revoke { proposal } => {
                let Some(p) = self.proposal_if_any(proposal).await? else {
                    return Ok(None);
                };
                let job = self.job_by_id(&p.job_id).await?;
                Ok(Some(Call {
                    method: "RevokeJob",
                    payload: cfm::RevokeJobRequest {
                        id: remote_id(&job),
                    }
                    .encode_to_vec(),
                    resend: false,
                }))
            }
            Command::Delete { job } => {
                let job = self.job_by_id(job).await?;
                Ok(Some(Call {
                    method: "DeleteJob",
                    payload: cfm::DeleteJobRequest {
                        id: remote_id(&job),
                    }
                    .encode_to_vec(),
                    resend: false,
                }))
            }
        }
    }

    /// Records the node's answer to the call made for `entry`: `Err` holds its error text.
    pub async fn call_answered(
        &self,
        node: &ChainlinkNode,
        entry: &Outgoing,
        answer: std::result::Result<(), String>,
    ) -> Result<()> {
        let (proposal, what) = match &entry.command {
            Command::Propose { proposal } => (proposal.clone(), "ProposeJob"),
            Command::Revoke { proposal } => (proposal.clone(), "RevokeJob"),
            Command::Delete { job } => {
                let job = self.job_by_id(job).await?;
                match job.proposal_ids.last() {
                    Some(latest) => (latest.clone(), "DeleteJob"),
                    None => return Ok(()),
                }
            }
        };
        match (&answer, what) {
            (Ok(()), "ProposeJob") => {
                tracing::info!(node = %node.name, proposal, "Job Distributor: the node acknowledged the proposal");
            }
            (Ok(()), _) => {
                tracing::info!(node = %node.name, proposal, "Job Distributor: the node did {what}");
                return Ok(());
            }
            (Err(e), _) => {
                tracing::warn!(node = %node.name, proposal, "Job Distributor: the node refused {what}: {e}");
            }
        }
        self.update(
            RecordKind::Proposals,
            &proposal,
            "proposal",
            |p: &mut Proposal| {
                match (&answer, what) {
                    (Ok(()), _) => {
                        p.delivery = DeliveryStatus::Acknowledged;
                        p.acked_ms = Some(now());
                    }
                    (Err(e), "ProposeJob") => {
                        p.delivery = DeliveryStatus::Failed;
                        p.delivery_error = Some(e.clone());
                    }
                    (Err(e), _) => p.delivery_error = Some(format!("the node refused {what}: {e}")),
                }
                p.updated_ms = now();
                Ok(())
            },
        )
        .await
        .map(drop)
    }

    /// Keeps what node `node_id` said of itself in `UpdateNode`; the answer lists the chain
    /// configs it cannot take, by chain id.
    pub async fn node_reported(
        &self,
        node_id: &str,
        update: &cfm::UpdateNodeRequest,
    ) -> Result<cfm::UpdateNodeResponse> {
        let report = NodeReport {
            update: hex::encode(update.encode_to_vec()),
            at_ms: now(),
        };
        self.update(
            RecordKind::Nodes,
            node_id,
            "node",
            |n: &mut ChainlinkNode| {
                n.report = Some(report.clone());
                n.updated_ms = now();
                Ok(())
            },
        )
        .await?;
        let mut errors = std::collections::HashMap::new();
        for config in &update.chain_configs {
            let chain = config.chain.clone().unwrap_or_default();
            if chain.id.trim().is_empty() {
                errors.insert(
                    String::new(),
                    cfm::ChainConfigError {
                        message: "chain config without a chain id".into(),
                    },
                );
            }
        }
        Ok(cfm::UpdateNodeResponse {
            chain_config_errors: errors,
        })
    }

    /// Applies node `node_id`'s decision on revision `version` of its job `uuid`.
    pub async fn node_decided(
        &self,
        node_id: &str,
        uuid: &str,
        version: i64,
        decision: Decision,
    ) -> Result<Proposal> {
        let job = self.node_job(node_id, uuid).await?;
        if job.deleted_ms.is_some() {
            return Err(JdError::FailedPrecondition(format!(
                "job proposal {uuid} was deleted"
            )));
        }
        let latest = usize::try_from(version).ok() == Some(job.proposal_ids.len());
        let index = usize::try_from(version - 1).ok();
        let proposal_id = index.and_then(|i| job.proposal_ids.get(i)).ok_or_else(|| {
            JdError::NotFound(format!("job proposal {uuid} has no version {version}"))
        })?;
        // What each decision may follow: a node re-approves a cancelled spec if it is the
        // latest version (chainlink `feeds` does); the same decision again (its earlier
        // answer was lost, and the node rolled back) is accepted as it is.
        let (from, to): (&[ProposalStatus], ProposalStatus) = match decision {
            Decision::Approved if latest => (
                &[ProposalStatus::Proposed, ProposalStatus::Cancelled],
                ProposalStatus::Approved,
            ),
            Decision::Approved => (&[ProposalStatus::Proposed], ProposalStatus::Approved),
            Decision::Rejected => (&[ProposalStatus::Proposed], ProposalStatus::Rejected),
            Decision::Cancelled => (&[ProposalStatus::Approved], ProposalStatus::Cancelled),
        };
        let decided = self
            .update(
                RecordKind::Proposals,
                proposal_id,
                "proposal",
                |p: &mut Proposal| {
                    if p.status == to {
                        return Ok(());
                    }
                    if !from.contains(&p.status) {
                        return Err(JdError::FailedPrecondition(format!(
                            "job proposal {uuid} version {version} is {:?}: it cannot become {to:?}",
                            p.status
                        )));
                    }
                    p.status = to;
                    p.response_ms = Some(now());
                    p.updated_ms = now();
                    Ok(())
                },
            )
            .await?;
        tracing::info!(node = node_id, job = %job.id, proposal = %decided.id, version, status = ?to, "Job Distributor: the node decided");
        Ok(decided)
    }

    async fn job_by_id(&self, id: &str) -> Result<Job> {
        self.load::<Job>(RecordKind::Jobs, id)
            .await?
            .map(|(job, _)| job)
            .ok_or_else(|| JdError::NotFound(format!("job {id} not found")))
    }

    /// Node `node_id`'s job whose remote id is `uuid` (any case, as nodes send it).
    async fn node_job(&self, node_id: &str, uuid: &str) -> Result<Job> {
        let field = format!("{node_id}/{uuid}");
        if let Some(id) = self.store.jd_lookup(UniqueIndex::JobKeys, &field).await? {
            return self.job_by_id(&id).await;
        }
        let wanted = canonical_uuid(uuid);
        self.all::<Job>(RecordKind::Jobs)
            .await?
            .into_iter()
            .find(|j| j.node_id == node_id && wanted.is_some() && canonical_uuid(&j.uuid) == wanted)
            .ok_or_else(|| JdError::NotFound(format!("job proposal {uuid} not found")))
    }
}

/// The id a node knows a job by: its uuid, canonical.
fn remote_id(job: &Job) -> String {
    canonical_uuid(&job.uuid).unwrap_or_else(|| job.uuid.clone())
}

#[cfg(test)]
mod tests {
    use super::canonical_uuid;

    #[test]
    fn uuids_are_canonical_lower_case() {
        assert_eq!(
            canonical_uuid("7C9A2B1E-0000-4000-8000-00000000000A").as_deref(),
            Some("7c9a2b1e-0000-4000-8000-00000000000a")
        );
        assert_eq!(
            canonical_uuid("7c9a2b1e000040008000000000000001").as_deref(),
            Some("7c9a2b1e-0000-4000-8000-000000000001")
        );
        for bad in [
            "",
            "0A1B-2",
            "7c9a2b1e-0000-4000-8000-00000000000g",
            "7c9a-2b1e000040008000000000000001",
        ] {
            assert_eq!(canonical_uuid(bad), None, "{bad}");
        }
    }
}
