//! Delivery: an approved proposal becomes a job of the delivery type (`jd.delivery_job_type`),
//! which creates (or deletes) the job on the Chainlink node.

use std::collections::BTreeMap;

use jobhost_store::{NewJob, RetryPolicy};

use super::records::{ChainlinkNode, DeliveryStatus, Job, Proposal};
use super::{Distributor, Result};

/// What a delivery job does on the node.
pub(super) enum Delivery<'a> {
    /// `POST /v2/jobs` with the spec, after deleting the node's job `replaces`.
    Create {
        spec: &'a str,
        replaces: Option<&'a str>,
    },
    /// `DELETE /v2/jobs/{id}`.
    Delete { node_job_id: &'a str },
}

impl Distributor {
    /// Hands the approved `proposal`, the latest of `job` on `node`, to delivery: deliveries
    /// of earlier revisions still waiting are cancelled, and the node's job made by the last
    /// delivered revision is replaced (a node holds one job per externalJobID). Records the
    /// delivery job in `proposal`, or why delivery cannot start.
    pub(super) async fn start_delivery(
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

    /// Hands `delivery` for node to the delivery plugin as a jobhost job; the error is the
    /// reason delivery cannot even start.
    pub(super) async fn deliver(
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
            // Its outcome settles the proposal when next read, which may be long after.
            keep_succeeded: true,
            ..NewJob::default()
        };
        let (id, _) = self.store.enqueue(&job).await.map_err(|e| e.to_string())?;
        Ok(id)
    }

    /// Cancels the deliveries of `proposal_ids` still queued or waiting for a retry, so an
    /// older revision's retry cannot land on the node after revision `revision` (0: after
    /// the job's deletion). An attempt already running is asked to stop but may finish.
    pub(super) async fn supersede_deliveries(
        &self,
        proposal_ids: &[String],
        revision: i64,
    ) -> Result<()> {
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
    pub(super) async fn delivered_node_job(
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
}
