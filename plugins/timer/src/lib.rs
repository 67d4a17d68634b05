//! `timer`: fires when its duration has elapsed, then reports to a control plane.
//!
//! Spec (JSON): `duration_seconds` (required, >= 0), `timer_name` (required),
//! `control_plane_endpoint` (optional http(s) URL; needs the `http` grant and the host in
//! `allowed_hosts`). The host schedules a timer job to run when it is due (the wait is a
//! delayed job in Redis, holding no instance or worker) and records that time in the spec as
//! `fire_at_ms`. When the job runs, the timer has fired: it POSTs
//! `{"job_id", "timer_name", "scheduled_at_ms", "fired_at_ms", "attempt"}` to the endpoint;
//! a failed callback is retried by the job's retry policy.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jobhost_plugin_sdk::http::{self, Request};
use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, RetryRequest, export_plugin, log};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    duration_seconds: i64,
    timer_name: String,
    #[serde(default)]
    control_plane_endpoint: Option<String>,
    /// Set by the host when it schedules the timer.
    #[serde(default)]
    fire_at_ms: Option<u64>,
}

const SCHEMA: &str = r#"{"type":"object","required":["duration_seconds","timer_name"],
"properties":{"duration_seconds":{"type":"integer","minimum":0},"timer_name":{"type":"string","minLength":1},
"control_plane_endpoint":{"type":"string"},"fire_at_ms":{"type":"integer"}}}"#;

fn parse(spec: &str) -> Result<Spec, String> {
    let spec: Spec = serde_json::from_str(spec).map_err(|e| format!("invalid timer spec: {e}"))?;
    if spec.duration_seconds < 0 {
        return Err("duration_seconds must not be negative".into());
    }
    if spec.timer_name.trim().is_empty() {
        return Err("timer_name is required".into());
    }
    if let Some(url) = spec
        .control_plane_endpoint
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        http::split_url(url).map_err(|e| format!("control_plane_endpoint: {e}"))?;
    }
    Ok(spec)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Timer;

impl Plugin for Timer {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "timer",
            env!("CARGO_PKG_VERSION"),
            &["timer"],
            "Fires after a duration and reports to a control plane",
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
        let fired = now_ms();
        let scheduled = spec.fire_at_ms.unwrap_or(fired);
        log::info(&format!(
            "timer {} fired ({} ms after its due time)",
            spec.timer_name,
            fired.saturating_sub(scheduled)
        ));
        let mut output = serde_json::json!({
            "timer_name": spec.timer_name, "scheduled_at_ms": scheduled, "fired_at_ms": fired,
        });
        let Some(endpoint) = spec.control_plane_endpoint.filter(|u| !u.is_empty()) else {
            return Outcome::Completed(output.to_string());
        };
        let report = serde_json::json!({
            "job_id": job.id, "timer_name": output["timer_name"], "scheduled_at_ms": scheduled,
            "fired_at_ms": fired, "attempt": job.attempt,
        })
        .to_string();
        let headers = [("content-type".to_owned(), "application/json".to_owned())];
        let request = Request {
            method: "POST",
            url: &endpoint,
            headers: &headers,
            body: report.as_bytes(),
            timeout: Some(Duration::from_secs(10)),
        };
        match http::send(&request) {
            Ok(response) if (200..300).contains(&response.status) => {
                output["callback_status"] = response.status.into();
                Outcome::Completed(output.to_string())
            }
            Ok(response) if response.status >= 500 || response.status == 429 => {
                Outcome::Retry(RetryRequest {
                    after_ms: 0,
                    reason: format!("callback: HTTP {}", response.status),
                })
            }
            Ok(response) => Outcome::Failed(format!("callback refused: HTTP {}", response.status)),
            Err(http::Error::Denied(message) | http::Error::Invalid(message)) => {
                Outcome::Failed(message)
            }
            Err(e) => Outcome::Retry(RetryRequest {
                after_ms: 0,
                reason: format!("callback: {e}"),
            }),
        }
    }
}

export_plugin!(Timer);
