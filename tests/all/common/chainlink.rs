//! A fake Chainlink node for tests: the part of the node's HTTP API (operator UI API) that
//! job delivery uses, answering as the real node does, on 127.0.0.1.
//!
//! Modelled on smartcontractkit/chainlink `core/web`: `router.go` (routes), `auth/auth.go`
//! (session cookie `clsession`, 401 otherwise), `sessions_controller.go` and
//! `sessions/localauth/orm.go` (login), `jobs_controller.go` and `services/job/validate.go`
//! (job specs), `helpers.go` (JSON:API documents `{"data": {"type", "id", "attributes"}}` and
//! errors `{"errors": [{"detail"}]}`, media type `application/vnd.api+json`).
//!
//! Served: `GET /health`, `GET /readyz`, `POST /sessions`, `DELETE /sessions`, and with a
//! session `GET /v2/jobs`, `POST /v2/jobs`, `GET /v2/jobs/{id}` (`{id}`: the job's id or its
//! externalJobID, as `JobsController.Show`), `DELETE /v2/jobs/{id}`.
//! Jobs are shown as `presenters.JobResource` shows them (`presenters/job.go`): what the node
//! parsed from the TOML (`name`, `type`, `schemaVersion`, `externalJobID`, `maxTaskDuration`,
//! `gasLimit`, `forwardingAllowed`, `pipelineSpec.dotDagSource`), never the TOML itself.
//! Not modelled: API tokens, WebAuthn, rate limits, roles, the per-type validation of a job
//! spec (the real node answers 400 when, say, an OCR spec names a missing key bundle), and the
//! per-type spec objects of a job resource (`ccipSpec`, `webhookSpec`, ...).
//!
//! Every request is recorded (method, path, headers, body), and so is every job the node
//! holds. Tests steer it with [`ChainlinkNode::expire_sessions`],
//! [`ChainlinkNode::fail_next`], [`ChainlinkNode::stall_next`], [`ChainlinkNode::stop`] and
//! [`ChainlinkNode::restart`].

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::receiver::Received;

/// The session cookie's name (`auth.SessionName`).
pub const SESSION_COOKIE: &str = "clsession";

/// The JSON:API media type every answer but 204 and unknown routes carries.
const MEDIA_TYPE: &str = "application/vnd.api+json";

/// Job types the node knows (`job.Type`, `schemaVersions` in `services/job/models.go`); all
/// are at schema version 1.
const JOB_TYPES: &[&str] = &[
    "blockhashstore",
    "blockheaderfeeder",
    "bootstrap",
    "ccip",
    "cron",
    "directrequest",
    "fluxmonitor",
    "gateway",
    "keeper",
    "legacygasstationserver",
    "legacygasstationsidecar",
    "offchainreporting",
    "offchainreporting2",
    "standardcapabilities",
    "stream",
    "vrf",
    "webhook",
    "workflow",
];

/// Job types whose spec must carry a pipeline (`observationSource`; `requiresPipelineSpec`).
const NEEDS_PIPELINE: &[&str] = &[
    "cron",
    "directrequest",
    "fluxmonitor",
    "stream",
    "vrf",
    "webhook",
];

/// A job the node holds.
#[derive(Debug, Clone)]
pub struct NodeJob {
    /// The node's id for it (an int32 on the real node).
    pub id: i32,
    /// The TOML it was created from, exactly as received.
    pub toml: String,
    /// Its `type`.
    pub job_type: String,
    /// Its `name`, if the spec has one.
    pub name: Option<String>,
    /// Its `externalJobID` (generated when the spec has none), lower-case with dashes.
    pub external_job_id: String,
}

/// Everything the node knows and has seen.
struct NodeState {
    /// The API user's email.
    email: String,
    /// The API user's password.
    password: String,
    /// Live session ids.
    sessions: HashSet<String>,
    /// Jobs by id.
    jobs: BTreeMap<i32, NodeJob>,
    /// The id the next job gets.
    next_id: i32,
    /// Every request received, in order.
    requests: Vec<Received>,
    /// Scripted error answers for the next `/v2/jobs` calls: (status, detail).
    failures: VecDeque<(StatusCode, String)>,
    /// How long the answers to the next `/v2/jobs` calls are held back.
    stalls: VecDeque<Duration>,
}

/// The state, shared by the handlers and the test.
type Shared = Arc<Mutex<NodeState>>;

/// A running server: how to stop it, and its task.
struct Server {
    /// Cancelled to shut the server down (it stops accepting at once).
    shutdown: CancellationToken,
    /// The serving task.
    task: tokio::task::JoinHandle<()>,
}

/// The fake node. Dropping it stops the server.
pub struct ChainlinkNode {
    /// The port it listens on, kept across stop and restart.
    port: u16,
    /// What it knows and has seen.
    state: Shared,
    /// The server while it runs.
    server: Mutex<Option<Server>>,
}

impl ChainlinkNode {
    /// Starts a node on a free port of 127.0.0.1 whose API user is `email` / `password`.
    pub async fn start(email: &str, password: &str) -> ChainlinkNode {
        let state = Arc::new(Mutex::new(NodeState {
            email: email.to_owned(),
            password: password.to_owned(),
            sessions: HashSet::new(),
            jobs: BTreeMap::new(),
            next_id: 1,
            requests: Vec::new(),
            failures: VecDeque::new(),
            stalls: VecDeque::new(),
        }));
        let listener = bind(0).expect("a free port on 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let server = serve(listener, state.clone());
        ChainlinkNode {
            port,
            state,
            server: Mutex::new(Some(server)),
        }
    }

    /// Base URL of its API: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Received> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The `(method, path)` of every request received so far.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.requests()
            .into_iter()
            .map(|r| (r.method, r.path))
            .collect()
    }

    /// The jobs it holds: id -> the TOML each was created from.
    pub fn jobs(&self) -> BTreeMap<String, String> {
        self.state
            .lock()
            .unwrap()
            .jobs
            .values()
            .map(|job| (job.id.to_string(), job.toml.clone()))
            .collect()
    }

    /// One job it holds, by id.
    pub fn job(&self, id: &str) -> Option<NodeJob> {
        let id: i32 = id.parse().ok()?;
        self.state.lock().unwrap().jobs.get(&id).cloned()
    }

    /// Forgets every session, as the session reaper does once they time out: the next call
    /// with an old cookie gets 401.
    pub fn expire_sessions(&self) {
        self.state.lock().unwrap().sessions.clear();
    }

    /// Answers the next `n` authenticated `/v2/jobs` calls with `status` and a JSON:API error
    /// carrying `detail`, instead of handling them. A 401 also ends the caller's session (the
    /// session expiring between the login and the call).
    pub fn fail_next(&self, n: usize, status: u16, detail: &str) {
        let status = StatusCode::from_u16(status).expect("an HTTP status");
        let mut state = self.state.lock().unwrap();
        state
            .failures
            .extend(std::iter::repeat_n((status, detail.to_owned()), n));
    }

    /// Handles the next `n` calls to `/v2/jobs` as usual but holds each answer back for
    /// `delay`, as if it were lost on the way: a client that gives up sooner sees a timeout
    /// although the node did the work (created the job, say).
    pub fn stall_next(&self, n: usize, delay: Duration) {
        let mut state = self.state.lock().unwrap();
        state.stalls.extend(std::iter::repeat_n(delay, n));
    }

    /// Stops serving: the port refuses connections until [`ChainlinkNode::restart`]. Jobs and
    /// sessions are kept (they live in the node's database).
    pub async fn stop(&self) {
        let server = self.server.lock().unwrap().take();
        if let Some(mut server) = server {
            server.shutdown.cancel();
            if tokio::time::timeout(Duration::from_secs(5), &mut server.task)
                .await
                .is_err()
            {
                server.task.abort();
            }
        }
    }

    /// Serves again on the same port.
    pub async fn restart(&self) {
        self.stop().await;
        let mut listener = bind(self.port);
        for _ in 0..100 {
            if listener.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            listener = bind(self.port);
        }
        let listener = listener.unwrap_or_else(|e| panic!("rebinding port {}: {e}", self.port));
        *self.server.lock().unwrap() = Some(serve(listener, self.state.clone()));
    }
}

impl Drop for ChainlinkNode {
    fn drop(&mut self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.shutdown.cancel();
            server.task.abort();
        }
    }
}

/// A listener on 127.0.0.1:`port` (0: a free one), reusing the address so a restart can
/// take the port back while old connections linger.
fn bind(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(128)
}

/// Serves the node's routes on `listener` until shut down.
fn serve(listener: tokio::net::TcpListener, state: Shared) -> Server {
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone().cancelled_owned();
    let app = router(state);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await;
    });
    Server { shutdown, task }
}

/// The routes (`core/web/router.go`), every request recorded first.
fn router(state: Shared) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/readyz", get(health))
        .route("/sessions", post(create_session).delete(delete_session))
        .route("/v2/jobs", get(list_jobs).post(create_job))
        .route("/v2/jobs/{id}", get(show_job).delete(delete_job))
        // gin answers unknown routes and unknown methods alike with a plain 404.
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

/// Records the request (method, path and query, headers, body), then passes it on; holds
/// the answer to a `/v2/jobs` call back when a stall is queued.
async fn record(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let jobs_call = parts.uri.path().starts_with("/v2/jobs");
    state.lock().unwrap().requests.push(Received {
        method: parts.method.to_string(),
        path,
        headers,
        body: body.to_vec(),
    });
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    if jobs_call {
        let stall = state.lock().unwrap().stalls.pop_front();
        if let Some(delay) = stall {
            tokio::time::sleep(delay).await;
        }
    }
    response
}

/// A JSON:API document with `status`.
fn document(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, MEDIA_TYPE)],
        body.to_string(),
    )
        .into_response()
}

/// A JSON:API error (`jsonAPIError`): `{"errors": [{"detail": ...}]}`.
fn error(status: StatusCode, detail: &str) -> Response {
    document(status, json!({ "errors": [{ "detail": detail }] }))
}

/// An error answer decided before a handler's own work: status and detail.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

/// gin's answer to a route it does not have.
async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain")],
        "404 page not found",
    )
        .into_response()
}

/// `GET /health` (and `/readyz`): every check passing.
async fn health() -> Response {
    document(
        StatusCode::OK,
        json!({ "data": [{
            "type": "checks",
            "id": "JobSpawner",
            "attributes": { "name": "JobSpawner", "status": "passing", "output": "" }
        }] }),
    )
}

/// The body of `POST /sessions` (`sessions.SessionRequest`); absent fields are empty.
#[derive(Deserialize)]
struct SessionRequest {
    /// The API user's email.
    #[serde(default)]
    email: String,
    /// The API user's password.
    #[serde(default)]
    password: String,
}

/// `POST /sessions`: logs in. 400 for a body that is not JSON, 401 for unknown credentials
/// (with the real node's details), else 200 and the session cookie.
async fn create_session(State(state): State<Shared>, body: Bytes) -> Response {
    let request: SessionRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("error binding json {e}")),
    };
    let mut state = state.lock().unwrap();
    // localauth: the user is looked up by email (case-insensitively); an unknown one is the
    // database's "no rows" error; then the password is checked.
    if !request.email.eq_ignore_ascii_case(&state.email) {
        return error(StatusCode::UNAUTHORIZED, "sql: no rows in result set");
    }
    if request.password != state.password {
        return error(StatusCode::UNAUTHORIZED, "Invalid password");
    }
    let session = format!("{:032x}", rand::random::<u128>());
    state.sessions.insert(session.clone());
    let mut response = document(
        StatusCode::OK,
        json!({ "data": { "type": "session", "id": "sessionID", "attributes": { "authenticated": true } } }),
    );
    // The cookie store's options (`SessionOptions`): path /, 30 days, HttpOnly, SameSite
    // strict (Secure only with secure cookies configured, i.e. behind TLS).
    let cookie =
        format!("{SESSION_COOKIE}={session}; Path=/; Max-Age=2592000; HttpOnly; SameSite=Strict");
    response
        .headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).unwrap());
    response
}

/// `DELETE /sessions`: logs out.
async fn delete_session(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let mut state = state.lock().unwrap();
    let session = match authenticate(&state, &headers) {
        Ok(session) => session,
        Err(refusal) => return refusal.into_response(),
    };
    state.sessions.remove(&session);
    document(
        StatusCode::OK,
        json!({ "data": { "type": "session", "id": "sessionID", "attributes": { "authenticated": false } } }),
    )
}

/// The request's session, or the 401 the real node answers: without a session cookie
/// `Authentication failed`, with one it no longer knows `session missing or expired, please
/// login again`.
fn authenticate(state: &NodeState, headers: &HeaderMap) -> Result<String, Refusal> {
    let session = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned());
    match session {
        None => Err(Refusal(
            StatusCode::UNAUTHORIZED,
            "Authentication failed".into(),
        )),
        Some(session) if state.sessions.contains(&session) => Ok(session),
        Some(_) => Err(Refusal(
            StatusCode::UNAUTHORIZED,
            "session missing or expired, please login again".into(),
        )),
    }
}

/// Authenticates a `/v2/jobs` call and serves a scripted failure if one is queued. A
/// scripted 401 also ends the caller's session, as a real 401 means it is gone.
fn admit(state: &mut NodeState, headers: &HeaderMap) -> Result<(), Refusal> {
    let session = authenticate(state, headers)?;
    match state.failures.pop_front() {
        Some((status, detail)) => {
            if status == StatusCode::UNAUTHORIZED {
                state.sessions.remove(&session);
            }
            Err(Refusal(status, detail))
        }
        None => Ok(()),
    }
}

/// The JSON:API resource of a job (`presenters.JobResource`, without the per-type spec
/// objects): what the node parsed from the TOML, not the TOML. `name` is `""` when the spec
/// has none (`Name.ValueOrZero()`), `maxTaskDuration` Go's form of the duration (`1m` shows
/// as `1m0s`; none is `0s`), `gasLimit` `null` when unset, and
/// `pipelineSpec.dotDagSource` the `observationSource` (`""` when none).
fn resource(job: &NodeJob) -> Value {
    let table = toml::from_str::<toml::Table>(&job.toml).unwrap_or_default();
    let source = table
        .get("observationSource")
        .and_then(|s| s.as_str())
        .unwrap_or_default();
    let max_task_duration = table
        .get("maxTaskDuration")
        .and_then(|d| d.as_str())
        .and_then(go_duration)
        .unwrap_or(0);
    json!({
        "type": "jobs",
        "id": job.id.to_string(),
        "attributes": {
            "name": job.name.clone().unwrap_or_default(),
            "type": job.job_type,
            "schemaVersion": 1,
            "gasLimit": table.get("gasLimit").and_then(|g| g.as_integer()),
            "forwardingAllowed": table.get("forwardingAllowed").and_then(|f| f.as_bool()).unwrap_or(false),
            "maxTaskDuration": go_duration_string(max_task_duration),
            "externalJobID": job.external_job_id,
            "pipelineSpec": { "id": job.id, "jobID": job.id, "dotDagSource": source },
            "errors": [],
        }
    })
}

/// `GET /v2/jobs`: every job, newest first, with their count.
async fn list_jobs(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let mut state = state.lock().unwrap();
    if let Err(refusal) = admit(&mut state, &headers) {
        return refusal.into_response();
    }
    let data: Vec<Value> = state.jobs.values().rev().map(resource).collect();
    let count = data.len();
    document(
        StatusCode::OK,
        json!({ "data": data, "meta": { "count": count } }),
    )
}

/// The body of `POST /v2/jobs` (`web.CreateJobRequest`).
#[derive(Deserialize)]
struct CreateJobRequest {
    /// The job spec; absent is empty (and then an invalid job type).
    #[serde(default)]
    toml: String,
}

/// `POST /v2/jobs`: 422 for a body that is not JSON or a spec `job.ValidateSpec` refuses,
/// 500 for a duplicate `externalJobID`, else 200 and the job's resource.
async fn create_job(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut state = state.lock().unwrap();
    if let Err(refusal) = admit(&mut state, &headers) {
        return refusal.into_response();
    }
    let request: CreateJobRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    };
    let spec = match validate_spec(&request.toml) {
        Ok(spec) => spec,
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("failed to parse TOML: {e}"),
            );
        }
    };
    let external_job_id = match spec.external_job_id {
        Some(id) => id,
        None => random_uuid(),
    };
    if state
        .jobs
        .values()
        .any(|job| job.external_job_id == external_job_id)
    {
        // The real node has no check of its own: the insert hits the unique constraint
        // `external_job_id_uniq` (migration 0036), which is not one of the errors
        // `JobsController.Create` maps to 400, so it answers 500.
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "CreateJobFailed: failed to insert job: ERROR: duplicate key value violates \
             unique constraint \"external_job_id_uniq\" (SQLSTATE 23505)",
        );
    }
    let id = state.next_id;
    state.next_id += 1;
    let job = NodeJob {
        id,
        toml: request.toml,
        job_type: spec.job_type,
        name: spec.name,
        external_job_id,
    };
    let body = json!({ "data": resource(&job) });
    state.jobs.insert(id, job);
    document(StatusCode::OK, body)
}

/// `GET /v2/jobs/{id}` (`JobsController.Show`): a job by external job id when `{id}` is a
/// UUID, else by id; 404 `job not found` for none, 422 (Go's parse error) for an id that is
/// neither a UUID nor an int32.
async fn show_job(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut state = state.lock().unwrap();
    if let Err(refusal) = admit(&mut state, &headers) {
        return refusal.into_response();
    }
    let job = if let Some(external) = parse_uuid(&id) {
        state
            .jobs
            .values()
            .find(|job| job.external_job_id == external)
    } else {
        match parse_job_id(&id) {
            Ok(id) => state.jobs.get(&id),
            Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, &e),
        }
    };
    match job {
        Some(job) => document(StatusCode::OK, json!({ "data": resource(job) })),
        None => error(StatusCode::NOT_FOUND, "job not found"),
    }
}

/// `DELETE /v2/jobs/{id}`: 204; 404 for a job it does not have, 422 for an id that is not
/// an int32.
async fn delete_job(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut state = state.lock().unwrap();
    if let Err(refusal) = admit(&mut state, &headers) {
        return refusal.into_response();
    }
    let id = match parse_job_id(&id) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, &e),
    };
    match state.jobs.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => error(StatusCode::NOT_FOUND, "JobSpec not found"),
    }
}

/// What `job.ValidateSpec` reads from a spec.
struct ValidSpec {
    /// `type`.
    job_type: String,
    /// `name`.
    name: Option<String>,
    /// `externalJobID`, normalised; `None` when absent (or all zeros).
    external_job_id: Option<String>,
}

/// The checks of `job.ValidateSpec`: TOML syntax, a known `type`, its `schemaVersion`, a
/// pipeline for the types that need one, no `<{}>`; plus a well-formed `externalJobID`.
fn validate_spec(spec: &str) -> Result<ValidSpec, String> {
    let table: toml::Table = toml::from_str(spec).map_err(|e| e.message().to_owned())?;
    let job_type = table.get("type").and_then(|t| t.as_str()).unwrap_or("");
    if !JOB_TYPES.contains(&job_type) {
        return Err("invalid job type".into());
    }
    if table.get("schemaVersion").and_then(|v| v.as_integer()) != Some(1) {
        return Err("invalid schema version".into());
    }
    let pipeline = table
        .get("observationSource")
        .and_then(|s| s.as_str())
        .unwrap_or("");
    if NEEDS_PIPELINE.contains(&job_type) && pipeline.is_empty() {
        return Err("pipeline spec not specified".into());
    }
    if spec.contains("<{}>") {
        return Err("'<{}>' syntax is not supported. Please use \"{}\" instead".into());
    }
    if let Some(value) = table.get("maxTaskDuration") {
        let text = value.as_str().unwrap_or_default();
        go_duration(text).ok_or_else(|| format!("time: invalid duration {text:?}"))?;
    }
    let external_job_id = match table.get("externalJobID") {
        None => None,
        Some(value) => {
            let text = value.as_str().unwrap_or_default();
            let id =
                parse_uuid(text).ok_or_else(|| format!("invalid UUID length: {}", text.len()))?;
            (id != "00000000-0000-0000-0000-000000000000").then_some(id)
        }
    };
    Ok(ValidSpec {
        job_type: job_type.to_owned(),
        name: table
            .get("name")
            .and_then(|n| n.as_str())
            .map(str::to_owned),
        external_job_id,
    })
}

/// `text` as a UUID (with or without dashes), lower-case with dashes.
fn parse_uuid(text: &str) -> Option<String> {
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

/// A Go duration (`time.ParseDuration`: `1h2m3.5s`, `500ms`, `0`) in nanoseconds; negative
/// durations are not modelled.
fn go_duration(text: &str) -> Option<u128> {
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0u128;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(split);
        let split = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(split);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        total += whole * scale;
        let mut divisor = 1u128;
        for digit in fraction.chars().take(18) {
            divisor *= 10;
            total += u128::from(digit.to_digit(10)?) * scale / divisor;
        }
        rest = tail;
    }
    Some(total)
}

/// A duration as Go's `time.Duration.String` writes it (`0s`, `1.5ms`, `1m0s`, `2h0m3.5s`).
fn go_duration_string(nanos: u128) -> String {
    /// `value / scale` with its fraction, trailing zeros trimmed.
    fn decimal(value: u128, scale: u128) -> String {
        let (whole, rest) = (value / scale, value % scale);
        if rest == 0 {
            return whole.to_string();
        }
        let width = scale.ilog10() as usize;
        let fraction = format!("{rest:0width$}");
        format!("{whole}.{}", fraction.trim_end_matches('0'))
    }
    const SECOND: u128 = 1_000_000_000;
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < SECOND {
        let (unit, scale) = match nanos {
            ..1_000 => ("ns", 1),
            1_000..1_000_000 => ("\u{b5}s", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{}{unit}", decimal(nanos, scale));
    }
    let (hours, minutes) = (nanos / (3600 * SECOND), nanos / (60 * SECOND) % 60);
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    text.push_str(&decimal(nanos % (60 * SECOND), SECOND));
    text.push('s');
    text
}

/// A random (version 4) UUID.
fn random_uuid() -> String {
    let mut bytes = rand::random::<u128>().to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    parse_uuid(&hex::encode(bytes)).expect("32 hex digits")
}

/// A job id as `Job.SetID` reads it (`strconv.ParseInt(value, 10, 32)`), with Go's error.
fn parse_job_id(text: &str) -> Result<i32, String> {
    text.parse::<i32>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        format!("strconv.ParseInt: parsing {text:?}: {why}")
    })
}
