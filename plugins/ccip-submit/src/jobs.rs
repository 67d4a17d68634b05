//! The node's jobs API under a session: `POST /v2/jobs`, `GET /v2/jobs/UUID` and
//! `DELETE /v2/jobs/ID`, and a create that is idempotent per externalJobID (on the node's
//! duplicate refusal: look the job up, keep it when it is this spec, else replace it), with
//! the outputs the job completes with.

use jobhost_plugin_sdk::http::Response;
use jobhost_plugin_sdk::{Outcome, log};

use crate::compare::{external_job_id, same_job};
use crate::jsonapi::{HeldJob, created_id, duplicate, held_job};
use crate::session::Session;

/// What `POST /v2/jobs` did.
enum Posted {
    /// The node created the job: its id.
    Created(String),
    /// The node refused it as a duplicate externalJobID: its answer.
    Duplicate(Response),
}

/// The output of a create: `{"node_job_id": ID}`, with `"replaced": OLD` when the node's
/// earlier job with the same externalJobID was deleted for it.
fn created(id: &str, replaced: Option<String>) -> String {
    let mut output = serde_json::json!({ "node_job_id": id });
    if let Some(old) = replaced {
        output["replaced"] = old.into();
    }
    output.to_string()
}

/// The output of a create the node already held: `{"node_job_id": ID, "already_created":
/// true}`.
fn already_created(id: &str) -> String {
    serde_json::json!({ "node_job_id": id, "already_created": true }).to_string()
}

/// The output of a delete: `{"deleted": ID}`, with `"already_gone": true` when the node no
/// longer had the job.
fn deleted(id: &str, already_gone: bool) -> String {
    if already_gone {
        serde_json::json!({ "deleted": id, "already_gone": true }).to_string()
    } else {
        serde_json::json!({ "deleted": id }).to_string()
    }
}

impl Session<'_> {
    /// `POST /v2/jobs` once: the created job's id, or the node's duplicate refusal.
    fn post(&mut self, toml: &str) -> Result<Posted, Outcome> {
        let body = serde_json::json!({ "toml": toml }).to_string();
        let response = self.call("POST", "/v2/jobs", body.as_bytes())?;
        if !(200..300).contains(&response.status) {
            if duplicate(&response.body) {
                return Ok(Posted::Duplicate(response));
            }
            return Err(self.refused("the job", &response));
        }
        let Some(id) = created_id(&response.body) else {
            return Err(Outcome::Failed(format!(
                "node {} accepted the job ({}) but named no job id: {}",
                self.node,
                response.status,
                self.detail(&response)
            )));
        };
        log::info(&format!("node {}: created job {id}", self.node));
        Ok(Posted::Created(id))
    }

    /// `GET /v2/jobs/UUID`: the node's job with that externalJobID, `None` on a 404.
    fn find(&mut self, external: &str) -> Result<Option<HeldJob>, Outcome> {
        let response = self.call("GET", &format!("/v2/jobs/{external}"), b"")?;
        match response.status {
            200..=299 => held_job(&response.body).map(Some).ok_or_else(|| {
                Outcome::Failed(format!(
                    "node {} answered the lookup of externalJobID {external} ({}) without a job: {}",
                    self.node,
                    response.status,
                    self.detail(&response)
                ))
            }),
            404 => Ok(None),
            _ => Err(self.refused(
                &format!("the lookup of externalJobID {external}"),
                &response,
            )),
        }
    }

    /// Creates the job, idempotently per externalJobID: the output `{"node_job_id": ID}`, with
    /// `"already_created": true` when the node already held this job, or `"replaced": OLD`
    /// when it held another job with the same externalJobID (see the crate docs).
    pub(crate) fn create(&mut self, toml: &str) -> Result<String, Outcome> {
        let refusal = match self.post(toml)? {
            Posted::Created(id) => return Ok(created(&id, None)),
            Posted::Duplicate(refusal) => refusal,
        };
        let node = self.node;
        let spec = toml.parse::<toml::Table>().ok();
        let external = spec.as_ref().and_then(external_job_id);
        let (Some(spec), Some(external)) = (spec, external) else {
            // Not a duplicate of this spec's externalJobID: nothing to look up.
            return Err(self.refused("the job", &refusal));
        };
        log::info(&format!(
            "node {node}: already holds a job with externalJobID {external}; looking it up"
        ));
        let replaced = match self.find(&external)? {
            None => {
                log::info(&format!(
                    "node {node}: the job with externalJobID {external} is gone; creating it again"
                ));
                None
            }
            Some(held) => match same_job(&spec, &held.attributes) {
                Ok(()) => {
                    log::info(&format!(
                        "node {node}: job {} (externalJobID {external}) is this spec: already created",
                        held.id
                    ));
                    return Ok(already_created(&held.id));
                }
                Err(why) => {
                    log::info(&format!(
                        "node {node}: job {} (externalJobID {external}) {why}: replacing it",
                        held.id
                    ));
                    self.delete(&held.id)?;
                    Some(held.id)
                }
            },
        };
        match self.post(toml)? {
            Posted::Created(id) => Ok(created(&id, replaced)),
            // Created again in between (another delivery of the same externalJobID): the next
            // attempt sorts it out.
            Posted::Duplicate(refusal) => Err(self.refused("the job", &refusal)),
        }
    }

    /// `DELETE /v2/jobs/ID`: the output `{"deleted": ID}`, with `"already_gone": true` when
    /// the node no longer had the job.
    pub(crate) fn delete(&mut self, id: &str) -> Result<String, Outcome> {
        let response = self.call("DELETE", &format!("/v2/jobs/{id}"), b"")?;
        match response.status {
            200..=299 => {
                log::info(&format!("node {}: deleted job {id}", self.node));
                Ok(deleted(id, false))
            }
            404 => {
                log::info(&format!(
                    "node {}: job {id} was already gone (404): nothing to delete",
                    self.node
                ));
                Ok(deleted(id, true))
            }
            _ => Err(self.refused(&format!("the deletion of job {id}"), &response)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// `output` read back as JSON (the job's output is what the Job Distributor parses).
    fn json(output: String) -> Value {
        serde_json::from_str(&output).expect("the output is JSON")
    }

    #[test]
    fn a_created_job_is_named_by_its_node_job_id() {
        assert_eq!(json(created("17", None)), json!({ "node_job_id": "17" }));
    }

    #[test]
    fn a_replacing_create_names_the_job_it_replaced() {
        assert_eq!(
            json(created("18", Some("17".into()))),
            json!({ "node_job_id": "18", "replaced": "17" })
        );
    }

    #[test]
    fn a_create_the_node_already_held_says_so() {
        assert_eq!(
            json(already_created("17")),
            json!({ "node_job_id": "17", "already_created": true })
        );
    }

    #[test]
    fn a_delete_names_the_job_and_whether_it_was_already_gone() {
        assert_eq!(json(deleted("17", false)), json!({ "deleted": "17" }));
        assert_eq!(
            json(deleted("17", true)),
            json!({ "deleted": "17", "already_gone": true })
        );
    }
}
