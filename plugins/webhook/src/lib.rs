//! `webhook`: delivers an HTTP request (grant: `http`, hosts in `allowed_hosts`).
//!
//! Spec (JSON): `url` (required), `method` (default POST), `headers` (object), `body`
//! (string), `timeout_ms` (default 10000), `success_statuses` (default: any 2xx).
//! Optional `signing`: `{"secret": NAME}` signs the delivery with HMAC-SHA256 over
//! `"<timestamp>.<body>"`, hex, in `x-jobhost-signature` (plus the Unix-seconds timestamp in
//! `x-jobhost-timestamp`; both names can be changed with `signature_header` and
//! `timestamp_header`). The secret comes from the host config (`plugins.<id>.secrets.NAME`),
//! never from the spec, and is never logged.
//! Outcome: a success status completes with `{"status": N}`; 5xx, 408, 429, timeouts and
//! connection errors ask for a retry (the job's backoff); any other status fails with the
//! status and an excerpt of the body.

use std::collections::BTreeMap;
use std::time::Duration;

use jobhost_plugin_sdk::http::{self, Request};
use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, RetryRequest, export_plugin, log};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    url: String,
    #[serde(default = "post")]
    method: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: String,
    #[serde(default = "ten_seconds")]
    timeout_ms: u64,
    #[serde(default)]
    success_statuses: Vec<u16>,
    #[serde(default)]
    signing: Option<Signing>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Signing {
    secret: String,
    #[serde(default = "signature_header")]
    signature_header: String,
    #[serde(default = "timestamp_header")]
    timestamp_header: String,
}

fn signature_header() -> String {
    "x-jobhost-signature".into()
}

fn timestamp_header() -> String {
    "x-jobhost-timestamp".into()
}

/// `(timestamp header, signature header)` for `body` signed with `secret` at `timestamp`.
fn sign(secret: &str, timestamp: u64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn post() -> String {
    "POST".into()
}

fn ten_seconds() -> u64 {
    10_000
}

const SCHEMA: &str = r#"{"type":"object","required":["url"],"additionalProperties":false,
"properties":{"url":{"type":"string"},"method":{"type":"string"},
"headers":{"type":"object","additionalProperties":{"type":"string"}},"body":{"type":"string"},
"timeout_ms":{"type":"integer","minimum":1},"success_statuses":{"type":"array","items":{"type":"integer"}},
"signing":{"type":"object","required":["secret"],"properties":{"secret":{"type":"string"},
"signature_header":{"type":"string"},"timestamp_header":{"type":"string"}}}}}"#;

fn parse(spec: &str) -> Result<Spec, String> {
    let spec: Spec =
        serde_json::from_str(spec).map_err(|e| format!("invalid webhook spec: {e}"))?;
    http::split_url(&spec.url).map_err(|e| e.to_string())?;
    if spec.timeout_ms == 0 {
        return Err("timeout_ms must be at least 1".into());
    }
    Ok(spec)
}

/// Retry with the job's own backoff (an `after_ms` of 0 lets the host choose).
fn retry(reason: String) -> Outcome {
    Outcome::Retry(RetryRequest {
        after_ms: 0,
        reason,
    })
}

struct Webhook;

impl Plugin for Webhook {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "webhook",
            env!("CARGO_PKG_VERSION"),
            &["webhook"],
            "Delivers an HTTP request",
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
        let mut headers: Vec<(String, String)> = spec.headers.into_iter().collect();
        if let Some(signing) = &spec.signing {
            let Some(secret) = jobhost_plugin_sdk::secret(&signing.secret) else {
                return Outcome::Failed(format!(
                    "signing secret `{0}` is not configured: set plugins.<id>.secrets.{0} in the host config",
                    signing.secret
                ));
            };
            let timestamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            headers.push((signing.timestamp_header.clone(), timestamp.to_string()));
            headers.push((
                signing.signature_header.clone(),
                sign(&secret, timestamp, &spec.body),
            ));
        }
        let request = Request {
            method: &spec.method,
            url: &spec.url,
            headers: &headers,
            body: spec.body.as_bytes(),
            timeout: Some(Duration::from_millis(spec.timeout_ms)),
        };
        log::info(&format!(
            "{} {} (attempt {})",
            spec.method, spec.url, job.attempt
        ));
        let response = match http::send(&request) {
            Ok(response) => response,
            Err(http::Error::Denied(message)) => return Outcome::Failed(message),
            Err(http::Error::Invalid(message)) => return Outcome::Failed(message),
            Err(e) => return retry(e.to_string()),
        };
        let status = response.status;
        let success = if spec.success_statuses.is_empty() {
            (200..300).contains(&status)
        } else {
            spec.success_statuses.contains(&status)
        };
        if success {
            log::info(&format!("delivered: {status}"));
            return Outcome::Completed(format!("{{\"status\":{status}}}"));
        }
        let excerpt: String = String::from_utf8_lossy(&response.body)
            .chars()
            .take(200)
            .collect();
        if status >= 500 || status == 408 || status == 429 {
            retry(format!("HTTP {status}: {excerpt}"))
        } else {
            Outcome::Failed(format!("HTTP {status}: {excerpt}"))
        }
    }
}

export_plugin!(Webhook);
