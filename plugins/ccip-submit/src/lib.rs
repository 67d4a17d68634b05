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
//! config (`plugins.<id>.secrets`), and are never logged nor returned.
//!
//! Flow: `POST {url}/sessions` with `{"email", "password"}` answers with a `clsession` cookie;
//! then `POST {url}/v2/jobs` with `{"toml": JOB_SPEC}` completes with `{"node_job_id": ID}`
//! (the node's `data.id`), or `DELETE {url}/v2/jobs/ID` completes with `{"deleted": ID}` (a
//! 404 completes too, with `"already_gone": true`). A 401 to a jobs call (an expired session)
//! logs in again once and repeats the call.
//! Outcome: 5xx, 408, 429, timeouts and connection errors ask for a retry (the job's backoff);
//! any other 4xx fails, naming the node, the status and the node's `errors[].detail`.

use jobhost_plugin_sdk::http::{self, Request, Response};
use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, RetryRequest, export_plugin, log};
use serde::Deserialize;

/// What to do on which node.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
enum Spec {
    /// Create a job on the node from its TOML spec.
    Create {
        /// The node's name: it names the node's credentials in the host config.
        node: String,
        /// Base URL of the node's HTTP API (`http://host:6688`).
        url: String,
        /// The job spec, delivered byte for byte.
        toml: String,
        /// The node's job of an earlier revision, deleted before the new one is created.
        #[serde(default)]
        replaces: Option<String>,
    },
    /// Delete a job from the node.
    Delete {
        /// The node's name: it names the node's credentials in the host config.
        node: String,
        /// Base URL of the node's HTTP API (`http://host:6688`).
        url: String,
        /// The job's id on the node (as returned by `create`).
        node_job_id: String,
    },
}

impl Spec {
    /// The node's name and its base URL without a trailing `/`.
    fn target(&self) -> (&str, &str) {
        match self {
            Spec::Create { node, url, .. } | Spec::Delete { node, url, .. } => {
                (node, url.trim_end_matches('/'))
            }
        }
    }

    /// What the job does, for the log.
    fn action(&self) -> &'static str {
        match self {
            Spec::Create { .. } => "create",
            Spec::Delete { .. } => "delete",
        }
    }
}

/// JSON Schema of the spec.
const SCHEMA: &str = r#"{"type":"object","oneOf":[
{"required":["action","node","url","toml"],"additionalProperties":false,"properties":{
"action":{"const":"create"},"node":{"type":"string","pattern":"^[A-Za-z0-9._-]{1,128}$"},
"url":{"type":"string"},"toml":{"type":"string","minLength":1},
"replaces":{"type":"string","pattern":"^[A-Za-z0-9-]{1,64}$"}}},
{"required":["action","node","url","node_job_id"],"additionalProperties":false,"properties":{
"action":{"const":"delete"},"node":{"type":"string","pattern":"^[A-Za-z0-9._-]{1,128}$"},
"url":{"type":"string"},"node_job_id":{"type":"string","pattern":"^[A-Za-z0-9-]{1,64}$"}}}]}"#;

/// Name of the session cookie a Chainlink node sets on login.
const SESSION_COOKIE: &str = "clsession";

/// Parses and checks a spec; the error is the message shown to whoever submitted it.
fn parse(spec: &str) -> Result<Spec, String> {
    let spec: Spec =
        serde_json::from_str(spec).map_err(|e| format!("invalid ccip-submit spec: {e}"))?;
    let (node, url) = spec.target();
    check_node(node)?;
    check_url(url)?;
    match &spec {
        Spec::Create { toml, .. } if toml.trim().is_empty() => {
            return Err("toml must be the job spec, not empty".into());
        }
        Spec::Delete { node_job_id, .. } => check_job_id(node_job_id)?,
        Spec::Create {
            replaces: Some(id), ..
        } => check_job_id(id)?,
        Spec::Create { .. } => {}
    }
    Ok(spec)
}

/// A node name is 1-128 letters, digits, `.`, `_` or `-` (it becomes part of secret names).
fn check_node(node: &str) -> Result<(), String> {
    let ok = (1..=128).contains(&node.len())
        && node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "node must be 1-128 letters, digits, '.', '_' or '-', not {node:?}"
        ))
    }
}

/// The node's URL is an http(s) base URL, without query or fragment.
fn check_url(url: &str) -> Result<(), String> {
    http::split_url(url).map_err(|e| format!("url: {e}"))?;
    if url.contains(['?', '#']) {
        return Err(format!(
            "url must be the node's base URL (http://host:port), not {url:?}"
        ));
    }
    Ok(())
}

/// A node's job id is 1-64 letters, digits or `-` (it becomes a URL path segment).
fn check_job_id(id: &str) -> Result<(), String> {
    let ok =
        (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "node_job_id must be the node's job id (letters, digits, '-'), not {id:?}"
        ))
    }
}

/// Retry with the job's own backoff (an `after_ms` of 0 lets the host choose).
fn retry(reason: String) -> Outcome {
    Outcome::Retry(RetryRequest {
        after_ms: 0,
        reason,
    })
}

/// Statuses worth another attempt later: the node is failing or busy, not refusing.
fn transient(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// A node's login, read from the host's secrets; never logged nor returned.
struct Credentials {
    /// The API user's email.
    email: String,
    /// The API user's password.
    password: String,
}

impl Credentials {
    /// The secrets `chainlink/NODE/email` and `chainlink/NODE/password`, if both are set.
    fn of(node: &str) -> Option<Credentials> {
        let read = |what: &str| {
            jobhost_plugin_sdk::secret(&format!("chainlink/{node}/{what}"))
                .filter(|value| !value.is_empty())
        };
        Some(Credentials {
            email: read("email")?,
            password: read("password")?,
        })
    }

    /// `text` with the email and the password masked, for messages that quote the node.
    fn redact(&self, text: &str) -> String {
        text.replace(&self.password, "***")
            .replace(&self.email, "***")
    }
}

/// The JSON:API error document a Chainlink node answers errors with.
#[derive(Deserialize)]
struct ErrorDocument {
    /// The errors, usually one.
    errors: Vec<ErrorObject>,
}

/// One JSON:API error.
#[derive(Deserialize)]
struct ErrorObject {
    /// What went wrong, in the node's words.
    #[serde(default)]
    detail: String,
}

/// The JSON:API document a node answers a created job with.
#[derive(Deserialize)]
struct CreatedDocument {
    /// The job resource.
    data: CreatedJob,
}

/// The created job resource: only its id matters here.
#[derive(Deserialize)]
struct CreatedJob {
    /// The job's id on the node (a string in JSON:API; a number is accepted too).
    id: serde_json::Value,
}

/// What the node said: its `errors[].detail` joined, else an excerpt of the body.
fn detail(body: &[u8]) -> String {
    if let Ok(document) = serde_json::from_slice::<ErrorDocument>(body) {
        let details: Vec<&str> = document
            .errors
            .iter()
            .map(|e| e.detail.as_str())
            .filter(|d| !d.is_empty())
            .collect();
        if !details.is_empty() {
            return details.join("; ");
        }
    }
    let excerpt: String = String::from_utf8_lossy(body)
        .trim()
        .chars()
        .take(200)
        .collect();
    if excerpt.is_empty() {
        "no detail".into()
    } else {
        excerpt
    }
}

/// The created job's id, from a `{"data": {"id": ...}}` answer.
fn created_id(body: &[u8]) -> Option<String> {
    let document: CreatedDocument = serde_json::from_slice(body).ok()?;
    match document.data.id {
        serde_json::Value::String(id) if !id.is_empty() => Some(id),
        serde_json::Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// The `clsession` cookie's value from a login answer's `Set-Cookie` headers.
fn session_cookie(response: &Response) -> Option<String> {
    response
        .headers
        .iter()
        .filter(|(name, _)| name == "set-cookie")
        .filter_map(|(_, value)| value.split(';').next()?.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

/// Sends one request to `node`. A refused request fails the job; a connection failure or a
/// timeout asks for a retry.
fn send(
    node: &str,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Response, Outcome> {
    let request = Request {
        method,
        url,
        headers,
        body,
        timeout: None,
    };
    http::send(&request).map_err(|e| match e {
        http::Error::Denied(_) | http::Error::Invalid(_) => {
            Outcome::Failed(format!("node {node}: {e}"))
        }
        http::Error::Connection(_) | http::Error::Timeout(_) => {
            let reason = format!("node {node} unreachable: {e}");
            log::warn(&reason);
            retry(reason)
        }
    })
}

/// Logs in to `node`: `POST /sessions`; the session cookie's value.
fn login(node: &str, base: &str, credentials: &Credentials) -> Result<String, Outcome> {
    let body = serde_json::json!({"email": credentials.email, "password": credentials.password});
    let headers = [("content-type".to_owned(), "application/json".to_owned())];
    let response = send(
        node,
        "POST",
        &format!("{base}/sessions"),
        &headers,
        body.to_string().as_bytes(),
    )?;
    let status = response.status;
    log::info(&format!("node {node}: login: {status}"));
    if !(200..300).contains(&status) {
        let detail = credentials.redact(&detail(&response.body));
        return Err(if transient(status) {
            retry(format!("node {node} could not log in ({status}): {detail}"))
        } else {
            Outcome::Failed(format!(
                "node {node} refused the login ({status}): {detail}; check its credentials \
                 (secrets chainlink/{node}/email and chainlink/{node}/password)"
            ))
        });
    }
    session_cookie(&response).ok_or_else(|| {
        Outcome::Failed(format!(
            "node {node} accepted the login but set no {SESSION_COOKIE} cookie: is {base} a Chainlink node?"
        ))
    })
}

/// A logged-in session with one node.
struct Session<'a> {
    /// The node's name.
    node: &'a str,
    /// The node's base URL.
    base: &'a str,
    /// Its credentials, to log in again when the session expires.
    credentials: Credentials,
    /// The session cookie's value.
    cookie: String,
}

impl<'a> Session<'a> {
    /// Logs in to `node` at `base`.
    fn open(node: &'a str, base: &'a str, credentials: Credentials) -> Result<Self, Outcome> {
        let cookie = login(node, base, &credentials)?;
        Ok(Session {
            node,
            base,
            credentials,
            cookie,
        })
    }

    /// Sends a call under the session; a 401 (the session expired) logs in again once and
    /// sends it again. A second 401 fails the job.
    fn call(&mut self, method: &str, path: &str, body: &[u8]) -> Result<Response, Outcome> {
        let response = self.call_once(method, path, body)?;
        if response.status != 401 {
            return Ok(response);
        }
        log::info(&format!(
            "node {}: {method} {path}: 401, session expired; logging in again",
            self.node
        ));
        self.cookie = login(self.node, self.base, &self.credentials)?;
        let response = self.call_once(method, path, body)?;
        if response.status == 401 {
            return Err(Outcome::Failed(format!(
                "node {} refused a fresh session ({method} {path}: 401): {}",
                self.node,
                self.detail(&response)
            )));
        }
        Ok(response)
    }

    /// Sends a call with the session cookie and logs its status.
    fn call_once(&self, method: &str, path: &str, body: &[u8]) -> Result<Response, Outcome> {
        let mut headers = vec![(
            "cookie".to_owned(),
            format!("{SESSION_COOKIE}={}", self.cookie),
        )];
        if !body.is_empty() {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
        }
        let url = format!("{}{path}", self.base);
        let response = send(self.node, method, &url, &headers, body)?;
        log::info(&format!(
            "node {}: {method} {path}: {}",
            self.node, response.status
        ));
        Ok(response)
    }

    /// What the node said in `response`, credentials masked.
    fn detail(&self, response: &Response) -> String {
        self.credentials.redact(&detail(&response.body))
    }

    /// The outcome of an error answer to `what`: a retry if transient, else a failure.
    fn refused(&self, what: &str, response: &Response) -> Outcome {
        let (node, status) = (self.node, response.status);
        let detail = self.detail(response);
        if transient(status) {
            retry(format!("node {node} answered {status} to {what}: {detail}"))
        } else {
            Outcome::Failed(format!("node {node} rejected {what} ({status}): {detail}"))
        }
    }

    /// `POST /v2/jobs`: the output `{"node_job_id": ID}`.
    fn create(&mut self, toml: &str) -> Result<String, Outcome> {
        let body = serde_json::json!({ "toml": toml }).to_string();
        let response = self.call("POST", "/v2/jobs", body.as_bytes())?;
        if !(200..300).contains(&response.status) {
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
        Ok(serde_json::json!({ "node_job_id": id }).to_string())
    }

    /// `DELETE /v2/jobs/ID`: the output `{"deleted": ID}`, with `"already_gone": true` when
    /// the node no longer had the job.
    fn delete(&mut self, id: &str) -> Result<String, Outcome> {
        let response = self.call("DELETE", &format!("/v2/jobs/{id}"), b"")?;
        match response.status {
            200..=299 => {
                log::info(&format!("node {}: deleted job {id}", self.node));
                Ok(serde_json::json!({ "deleted": id }).to_string())
            }
            404 => {
                log::info(&format!(
                    "node {}: job {id} was already gone (404): nothing to delete",
                    self.node
                ));
                Ok(serde_json::json!({ "deleted": id, "already_gone": true }).to_string())
            }
            _ => Err(self.refused(&format!("the deletion of job {id}"), &response)),
        }
    }
}

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
