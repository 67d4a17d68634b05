//! Proposals: a spec proposed to a node, approved (at once or by an operator), revoked,
//! and settled from its delivery job once that ends.

use jobhost_store::{JobState, RecordKind};

use super::channel::Command;
use super::jobs::JobRef;
use super::records::{DeliveryStatus, Job, Proposal, ProposalStatus};
use super::{Distributor, JdError, Result, invalid_labels, labels, now, spec, to_json};

impl Distributor {
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
        // A node on the channel keeps the job's uuid as the proposal's remote id.
        let channel = node.report.is_some();
        if channel && super::channel::canonical_uuid(&uuid).is_none() {
            return Err(JdError::InvalidArgument(format!(
                "node {node_id} receives proposals over wsrpc: the spec's externalJobID {uuid:?} must be a UUID"
            )));
        }
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
            // On the channel the node decides; on the HTTP path, `auto_approve` or an operator.
            status: if channel {
                ProposalStatus::Proposed
            } else if self.config.auto_approve {
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
            acked_ms: None,
            approved_by: None,
        };
        if proposal.status == ProposalStatus::Approved {
            self.start_delivery(&node, &job, &mut proposal).await?;
        }
        self.store
            .jd_put(RecordKind::Proposals, &proposal.id, &to_json(&proposal))
            .await?;
        if channel {
            let propose = Command::Propose {
                proposal: proposal.id.clone(),
            };
            self.queue(&node.id, propose).await?;
        }
        tracing::info!(
            node = %node.name, job = %job.id, proposal = %proposal.id, revision = proposal.revision,
            status = ?proposal.status, "Job Distributor: job proposed"
        );
        Ok(proposal)
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
    pub(super) async fn proposal_if_any(&self, id: &str) -> Result<Option<Proposal>> {
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

    /// Revokes the latest proposal of a job (or of the proposal's job) while it is PROPOSED
    /// or PENDING. A proposal a node received over wsrpc is revoked on the node too
    /// (`RevokeJob`; a refusal is recorded on the proposal).
    pub async fn revoke(&self, reference: &JobRef) -> Result<Proposal> {
        let job = self.job_or_proposal_job(reference).await?;
        let latest = job.proposal_ids.last().ok_or_else(|| {
            JdError::FailedPrecondition(format!("job {} has no proposal", job.id))
        })?;
        let mut sent = false;
        let revoked = self
            .update(RecordKind::Proposals, latest, "proposal", |p: &mut Proposal| {
                if !matches!(p.status, ProposalStatus::Proposed | ProposalStatus::Pending) {
                    return Err(JdError::FailedPrecondition(format!(
                        "proposal {} of job {} is {:?}: only a PROPOSED or PENDING proposal can be revoked",
                        p.id, p.job_id, p.status
                    )));
                }
                sent = p.delivery != DeliveryStatus::Unspecified;
                p.status = ProposalStatus::Revoked;
                p.updated_ms = now();
                Ok(())
            })
            .await?;
        // Sent over the channel (delivery is only set there for a PROPOSED proposal).
        if sent && revoked.status == ProposalStatus::Revoked && revoked.delivery_job.is_none() {
            let revoke = Command::Revoke {
                proposal: revoked.id.clone(),
            };
            self.queue(&job.node_id, revoke).await?;
        }
        self.settle(revoked).await
    }
}
