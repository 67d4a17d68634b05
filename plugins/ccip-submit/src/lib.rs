//! `ccip-submit`: delivers an approved job spec to a Chainlink node's HTTP API (grant: `http`,
//! the node's host in `allowed_hosts`).
//!
//! Spec (JSON), one of:
//! - `{"action": "create", "node": NAME, "url": "http://host:port", "toml": JOB_SPEC,
//!   "replaces"?: ID}` (`replaces`: the node's job for an earlier revision of the same
//!   spec, deleted first, because a node refuses a second job with the same externalJobID)
//! - `{"action": "delete", "node": NAME, "url": "http://host:port", "node_job_id": ID}`
//!
//! The node's credentials are not in the spec (specs are stored and returned by the APIs):
//! they are the secrets `chainlink/NAME/email` and `chainlink/NAME/password` of the host
//! config (`plugins.<id>.secrets`, or the Job Distributor's nodes file), and are never
//! logged nor returned. Where a secret `chainlink/NAME/url` exists (the nodes file always
//! has it), the spec's `url` must be that one, so a login only goes to its own node.
//!
//! Flow: `POST {url}/sessions` with `{"email", "password"}` answers with a `clsession` cookie;
//! then `POST {url}/v2/jobs` with `{"toml": JOB_SPEC}` completes with `{"node_job_id": ID}`
//! (the node's `data.id`), or `DELETE {url}/v2/jobs/ID` completes with `{"deleted": ID}` (a
//! 404 completes too, with `"already_gone": true`). A 401 to a jobs call (an expired session)
//! logs in again once and repeats the call.
//!
//! Creates are idempotent per externalJobID on the node. The node keeps one job per
//! externalJobID: a second one hits its unique constraint `external_job_id_uniq` (a 500,
//! `CreateJobFailed: failed to insert job: ERROR: duplicate key value violates unique
//! constraint "external_job_id_uniq" (SQLSTATE 23505)`). On that answer the plugin looks the
//! job up by the TOML's top-level `externalJobID` (`GET {url}/v2/jobs/UUID`), then:
//! - the node's job is this spec: completes with `{"node_job_id": ID, "already_created":
//!   true}` (an earlier attempt created it and its answer was lost);
//! - it is not, or that cannot be confirmed: deletes it and creates the job again, completing
//!   with `{"node_job_id": NEW, "replaced": OLD}` (a revision replacing an earlier one whose
//!   delivery was still in flight, or a job made by hand);
//! - it is gone (deleted in between): creates the job again.
//!
//! The node's answer carries no TOML (`presenters.JobResource` shows what the node parsed from
//! it, not the text), so "this spec" means: every top-level key of the TOML is one the answer
//! shows, with the same value (a key the TOML leaves out against the node's default):
//! `type`, `schemaVersion`, `name`, `externalJobID`, `maxTaskDuration` (as a duration),
//! `gasLimit`, `forwardingAllowed`, and `observationSource` (the answer's
//! `pipelineSpec.dotDagSource`). Any other key (a `ccip` job's `p2pKeyID`,
//! `ocrKeyBundleIDs`, relay settings...) is not shown, so such a job cannot be confirmed and
//! is replaced: a retried delivery may restart an identical job, but never leaves a different
//! one in place. Comments and layout are not part of the comparison (the node does not store
//! them).
//!
//! Outcome: 5xx, 408, 429, timeouts and connection errors ask for a retry (the job's backoff);
//! any other 4xx fails, naming the node, the status and the node's `errors[].detail`.
//!
//! Modules: `spec` (the plugin's spec and its checks), `credentials` (the node's login
//! secrets and where they may go), `session` (login and calls under a session),
//! `jobs` (the jobs API and the idempotent create), `compare` (whether the node's job is
//! this spec), `jsonapi` (reading the node's answers) and `go_values` (UUIDs and
//! durations in the node's forms). Only this file touches the plugin's exports.

mod compare;
mod credentials;
mod go_values;
mod jobs;
mod jsonapi;
mod session;
mod spec;

use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, export_plugin, log};

use credentials::{Credentials, check_login_url, configured_url};
use session::Session;
use spec::{SCHEMA, Spec, parse};

/// The plugin.
struct CcipSubmit;

impl Plugin for CcipSubmit {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "ccip-submit",
            env!("CARGO_PKG_VERSION"),
            &["ccip-submit"],
            "Delivers an approved job spec to a Chainlink node (creates or deletes the job)",
        )
        .with_capabilities(&["http"])
        .with_spec_schema(SCHEMA)
    }

    fn validate(spec: String) -> Result<(), String> {
        parse(&spec).map(|_| ())
    }

    fn run(job: Job) -> Outcome {
        let spec = match parse(&job.spec) {
            Ok(spec) => spec,
            Err(e) => return Outcome::Failed(e),
        };
        let (node, base) = spec.target();
        let Some(credentials) = Credentials::of(node) else {
            let reason = format!("no credentials configured for node {node}");
            log::error(&reason);
            return Outcome::Failed(reason);
        };
        // A node's login only ever goes to that node's own URL, where one is configured
        // (the Job Distributor's nodes file always has it): a spec naming node A with
        // another URL would otherwise send A's credentials there.
        let configured = configured_url(node);
        if let Err(reason) = check_login_url(node, base, configured.as_deref()) {
            log::error(&reason);
            return Outcome::Failed(reason);
        }
        log::info(&format!(
            "node {node}: {} at {base} (attempt {})",
            spec.action(),
            job.attempt
        ));
        let result = Session::open(node, base, credentials).and_then(|mut session| match &spec {
            Spec::Create { toml, replaces, .. } => {
                if let Some(old) = replaces {
                    session.delete(old)?;
                }
                session.create(toml)
            }
            Spec::Delete { node_job_id, .. } => session.delete(node_job_id),
        });
        match result {
            Ok(output) => Outcome::Completed(output),
            Err(outcome) => outcome,
        }
    }
}

export_plugin!(CcipSubmit);
