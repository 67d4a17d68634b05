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

/// The name of the node's unique constraint on `jobs.external_job_id` (migration 0036): an
/// error naming it is the node refusing a second job with the same externalJobID.
const DUPLICATE_CONSTRAINT: &str = "external_job_id_uniq";

/// Whether an error answer is the node refusing a duplicate externalJobID.
fn duplicate(body: &[u8]) -> bool {
    detail(body).contains(DUPLICATE_CONSTRAINT)
}

/// `text` as a UUID in the forms the node's parser (`uuid.Parse`) takes (`xxxxxxxx-xxxx-...`,
/// 32 hex digits, `{...}`, `urn:uuid:...`), lower-case with dashes.
fn normalize_uuid(text: &str) -> Option<String> {
    let text = text
        .strip_prefix("urn:uuid:")
        .or_else(|| text.strip_prefix('{')?.strip_suffix('}'))
        .unwrap_or(text);
    let hex: String = match text.len() {
        36 => {
            let dashes = [8, 13, 18, 23];
            if !dashes.iter().all(|&i| text.as_bytes()[i] == b'-') {
                return None;
            }
            text.chars().filter(|&c| c != '-').collect()
        }
        32 => text.to_owned(),
        _ => return None,
    };
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// A Go duration (`time.ParseDuration`: `1h2m3.5s`, `500ms`, `0`) in nanoseconds.
fn go_duration(text: &str) -> Option<i128> {
    let (negative, mut rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut part = whole.checked_mul(scale)?;
        let mut divisor: i128 = 1;
        for digit in fraction.chars().take(18) {
            divisor *= 10;
            part += i128::from(digit.to_digit(10)?) * scale / divisor;
        }
        total = total.checked_add(part)?;
        rest = tail;
    }
    Some(if negative { -total } else { total })
}

/// Top-level keys of a job spec that the node's job resource shows (`presenters.JobResource`):
/// the key, where the answer's `data.attributes` shows it, and how to compare them.
const SHOWN: &[(&str, &str, Compare)] = &[
    ("type", "/type", Compare::Text("")),
    ("schemaVersion", "/schemaVersion", Compare::Integer),
    ("name", "/name", Compare::Text("")),
    ("externalJobID", "/externalJobID", Compare::Uuid),
    ("maxTaskDuration", "/maxTaskDuration", Compare::Duration),
    ("gasLimit", "/gasLimit", Compare::Integer),
    ("forwardingAllowed", "/forwardingAllowed", Compare::Flag),
    (
        "observationSource",
        "/pipelineSpec/dotDagSource",
        Compare::Text(""),
    ),
];

/// How a spec's value compares with the node's.
#[derive(Clone, Copy)]
enum Compare {
    /// Strings; a key left out is this default (`name`: the node shows `""`).
    Text(&'static str),
    /// Integers; a key left out is `null` on the node.
    Integer,
    /// UUIDs, in any form the node takes.
    Uuid,
    /// Go durations (the node shows `1m0s` for `1m`); a key left out is `0s`.
    Duration,
    /// Booleans; a key left out is `false`.
    Flag,
}

impl Compare {
    /// Whether the spec's value (`None`: the key is left out) is what the node shows.
    fn same(self, spec: Option<&toml::Value>, node: &serde_json::Value) -> bool {
        use serde_json::Value as Json;
        match self {
            Compare::Text(default) => {
                let spec = match spec {
                    None => Some(default),
                    Some(value) => value.as_str(),
                };
                let node = match node {
                    Json::Null => Some(default),
                    other => other.as_str(),
                };
                spec.is_some() && spec == node
            }
            Compare::Integer => match (spec, node) {
                (None, Json::Null) => true,
                (Some(value), Json::Number(n)) => {
                    value.as_integer().is_some() && value.as_integer() == n.as_i64()
                }
                _ => false,
            },
            Compare::Uuid => {
                let spec = spec.and_then(toml::Value::as_str).and_then(normalize_uuid);
                let node = node.as_str().and_then(normalize_uuid);
                spec.is_some() && spec == node
            }
            Compare::Duration => {
                let spec = match spec {
                    None => Some(0),
                    Some(value) => value.as_str().and_then(go_duration),
                };
                let node = node.as_str().and_then(go_duration);
                spec.is_some() && spec == node
            }
            Compare::Flag => {
                let spec = match spec {
                    None => Some(false),
                    Some(value) => value.as_bool(),
                };
                spec.is_some() && spec == node.as_bool()
            }
        }
    }
}

/// Whether the node's job (its JSON:API `attributes`) is the job `spec` describes, as far as
/// the node's answer shows it: `Ok`, or why not (for the log).
fn same_job(spec: &toml::Table, attributes: &serde_json::Value) -> Result<(), String> {
    let mut differ = Vec::new();
    let mut unseen = Vec::new();
    for (key, pointer, compare) in SHOWN {
        let value = spec.get(*key);
        match attributes.pointer(pointer) {
            Some(node) if !compare.same(value, node) => differ.push(*key),
            Some(_) => {}
            // Older nodes do not show every attribute: only a key the spec sets matters.
            None if value.is_some() => unseen.push(key.to_string()),
            None => {}
        }
    }
    unseen.extend(
        spec.keys()
            .filter(|key| !SHOWN.iter().any(|(shown, ..)| shown == key))
            .cloned(),
    );
    let mut why = Vec::new();
    if !differ.is_empty() {
        why.push(format!("differs in {}", differ.join(", ")));
    }
    if !unseen.is_empty() {
        why.push(format!(
            "cannot be compared in {} (the node's API does not show them)",
            unseen.join(", ")
        ));
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join("; "))
    }
}

/// A job the node holds, from a `GET /v2/jobs/ID` answer.
struct HeldJob {
    /// Its id on the node.
    id: String,
    /// Its JSON:API attributes.
    attributes: serde_json::Value,
}

/// The job of a `{"data": {"id", "attributes"}}` answer.
fn held_job(body: &[u8]) -> Option<HeldJob> {
    let document: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = match document.pointer("/data/id")? {
        serde_json::Value::String(id) if !id.is_empty() => id.clone(),
        serde_json::Value::Number(id) => id.to_string(),
        _ => return None,
    };
    let attributes = document.pointer("/data/attributes")?.clone();
    attributes.is_object().then_some(HeldJob { id, attributes })
}

/// What `POST /v2/jobs` did.
enum Posted {
    /// The node created the job: its id.
    Created(String),
    /// The node refused it as a duplicate externalJobID: its answer.
    Duplicate(Response),
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
    /// when it held another job with the same externalJobID (see the module docs).
    fn create(&mut self, toml: &str) -> Result<String, Outcome> {
        let refusal = match self.post(toml)? {
            Posted::Created(id) => return Ok(serde_json::json!({ "node_job_id": id }).to_string()),
            Posted::Duplicate(refusal) => refusal,
        };
        let node = self.node;
        let spec = toml.parse::<toml::Table>().ok();
        let external = spec
            .as_ref()
            .and_then(|spec| spec.get("externalJobID")?.as_str())
            .and_then(normalize_uuid);
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
                    return Ok(
                        serde_json::json!({ "node_job_id": held.id, "already_created": true })
                            .to_string(),
                    );
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
            Posted::Created(id) => {
                let mut output = serde_json::json!({ "node_job_id": id });
                if let Some(old) = replaced {
                    output["replaced"] = old.into();
                }
                Ok(output.to_string())
            }
            // Created again in between (another delivery of the same externalJobID): the next
            // attempt sorts it out.
            Posted::Duplicate(refusal) => Err(self.refused("the job", &refusal)),
        }
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
        // A node's login only ever goes to that node's own URL, where one is configured
        // (the Job Distributor's nodes file always has it): a spec naming node A with
        // another URL would otherwise send A's credentials there.
        let configured = jobhost_plugin_sdk::secret(&format!("chainlink/{node}/url"));
        if configured.is_some_and(|url| url.trim_end_matches('/') != base) {
            let reason = format!(
                "url {base} is not the API URL configured for node {node}; refusing to send its login there"
            );
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
