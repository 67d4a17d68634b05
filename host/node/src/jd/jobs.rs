//! Jobs: one externalJobID on one node, with its revisions; lookup by id or uuid,
//! listing, update and delete.

use jobhost_store::{Created, RecordKind, UniqueIndex};

use super::channel::Command;
use super::delivery::Delivery;
use super::labels::{self, Labels, Selector};
use super::records::{ChainlinkNode, DeliveryStatus, Job, Proposal};
use super::{Distributor, JdError, Result, invalid_labels, now, to_json};

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

impl Distributor {
    /// The id of node's job for `uuid`, created if there is none.
    pub(super) async fn job_for(
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
    pub(super) async fn job_or_proposal_job(&self, reference: &JobRef) -> Result<Job> {
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
        let node = self.node(&job.node_id).await?;
        if node.report.is_some() {
            // On the channel: the node removes it, if it ever received a proposal of it.
            let mut received = false;
            for id in &job.proposal_ids {
                if let Some(p) = self.proposal_if_any(id).await? {
                    received |=
                        p.delivery_job.is_none() && p.delivery != DeliveryStatus::Unspecified;
                }
            }
            if received {
                self.queue(
                    &job.node_id,
                    Command::Delete {
                        job: job.id.clone(),
                    },
                )
                .await?;
            }
        }
        // A delivery still under way would land after the deletion.
        self.supersede_deliveries(&job.proposal_ids, 0).await?;
        if let Some((proposal_id, node_job_id)) = self.delivered_node_job(&job.proposal_ids).await?
            && let Err(reason) = self
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
        Ok(deleted)
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
}
