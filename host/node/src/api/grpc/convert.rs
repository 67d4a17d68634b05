//! Between the store's and runtime's types and the wire types of `jobhost.v1`.

use prost_types::Timestamp;
use tonic::Status;

use jobhost_proto::scheduler as proto;
use jobhost_runtime::PluginStatus;
use jobhost_store::{JobRecord, JobState, LogEntry, NodeInfo, StoreError};

/// A store failure as a gRPC status: UNAVAILABLE while Redis is unreachable (retry), else
/// INTERNAL. The message never carries connection details.
pub fn store_status(error: StoreError) -> Status {
    if error.is_unavailable() {
        // The store logs the outage once when it starts and once when it ends.
        tracing::debug!("request failed, redis unreachable: {error}");
        Status::unavailable("the job store (Redis) is unreachable; retry shortly")
    } else {
        tracing::error!("request failed: {error}");
        Status::internal(format!("job store error: {error}"))
    }
}

/// Unix ms as a protobuf timestamp.
pub fn timestamp(ms: u64) -> Timestamp {
    Timestamp {
        seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

/// Seconds at 10000-01-01T00:00:00Z: later times are refused.
const YEAR_10000: i64 = 253_402_300_800;

/// A protobuf timestamp as Unix ms; before 1970 or after year 9999 is refused.
pub fn timestamp_ms(t: &Timestamp) -> Result<u64, Status> {
    if !(0..YEAR_10000).contains(&t.seconds) || !(0..1_000_000_000).contains(&t.nanos) {
        return Err(Status::invalid_argument(format!(
            "timestamp {}s {}ns is out of range",
            t.seconds, t.nanos
        )));
    }
    Ok((t.seconds as u64).saturating_mul(1000) + (t.nanos as u64) / 1_000_000)
}

/// The wire state of a stored state.
pub fn state(state: JobState) -> proto::JobState {
    match state {
        JobState::Queued => proto::JobState::Queued,
        JobState::Scheduled => proto::JobState::Scheduled,
        JobState::Running => proto::JobState::Running,
        JobState::Succeeded => proto::JobState::Succeeded,
        JobState::Failed => proto::JobState::Failed,
        JobState::Cancelled => proto::JobState::Cancelled,
        JobState::Dead => proto::JobState::Dead,
    }
}

/// A `ListJobs` state filter: unspecified means all.
pub fn state_filter(value: i32) -> Result<Option<JobState>, Status> {
    let wire = proto::JobState::try_from(value)
        .map_err(|_| Status::invalid_argument(format!("unknown job state {value}")))?;
    Ok(match wire {
        proto::JobState::Unspecified => None,
        proto::JobState::Queued => Some(JobState::Queued),
        proto::JobState::Scheduled => Some(JobState::Scheduled),
        proto::JobState::Running => Some(JobState::Running),
        proto::JobState::Succeeded => Some(JobState::Succeeded),
        proto::JobState::Failed => Some(JobState::Failed),
        proto::JobState::Cancelled => Some(JobState::Cancelled),
        proto::JobState::Dead => Some(JobState::Dead),
    })
}

/// A job on the wire.
pub fn job(record: JobRecord) -> proto::Job {
    proto::Job {
        id: record.id,
        name: record.name,
        job_type: record.job_type,
        spec: record.spec,
        labels: record.labels.into_iter().collect(),
        priority: u32::from(record.priority),
        state: state(record.state) as i32,
        attempts: record.attempts,
        max_attempts: record.retry.max_attempts,
        timeout_ms: record.timeout_ms.unwrap_or(0),
        created_at: Some(timestamp(record.created_ms)),
        updated_at: Some(timestamp(record.updated_ms)),
        run_at: record.run_at_ms.map(timestamp),
        finished_at: record.finished_ms.map(timestamp),
        node: record.node.unwrap_or_default(),
        output: record.output.unwrap_or_default(),
        reason: record.reason.unwrap_or_default(),
        cancel_requested: record.cancel_requested,
        submitted_by: record.submitted_by,
        cancelled_by: record.cancelled_by,
        history: record
            .history
            .into_iter()
            .map(|a| proto::Attempt {
                attempt: a.attempt,
                node: a.node,
                started_at: Some(timestamp(a.started_ms)),
                ended_at: Some(timestamp(a.ended_ms)),
                outcome: a.outcome,
                reason: a.reason,
            })
            .collect(),
        archived: false,
    }
}

/// A job read from the job history: as [`job`], marked archived.
pub fn archived_job(record: JobRecord) -> proto::Job {
    proto::Job {
        archived: true,
        ..job(record)
    }
}

/// The JSON spec of the typed timer job.
pub fn timer_spec(timer: &proto::TimerJob) -> Result<String, Status> {
    if timer.duration_seconds < 0 {
        return Err(Status::invalid_argument(
            "timer_job.duration_seconds must not be negative",
        ));
    }
    let mut spec = serde_json::json!({
        "duration_seconds": timer.duration_seconds,
        "timer_name": timer.timer_name,
    });
    if !timer.control_plane_endpoint.is_empty() {
        spec["control_plane_endpoint"] = timer.control_plane_endpoint.clone().into();
    }
    Ok(spec.to_string())
}

const PAGE_TOKEN_PREFIX: &str = "after:";

/// An opaque page token for the listing cursor (a job id).
pub fn page_token(cursor: &str) -> String {
    format!("{PAGE_TOKEN_PREFIX}{cursor}")
}

/// The listing cursor in a page token; an empty token is the first page.
pub fn page_cursor(token: &str) -> Result<Option<String>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    match token.strip_prefix(PAGE_TOKEN_PREFIX) {
        Some(id)
            if !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            Ok(Some(id.to_owned()))
        }
        _ => Err(Status::invalid_argument(
            "page_token is not one this server returned",
        )),
    }
}

/// A log line on the wire.
pub fn log_line(entry: LogEntry) -> proto::LogLine {
    proto::LogLine {
        cursor: entry.cursor,
        attempt: entry.attempt,
        level: entry.level,
        message: entry.message,
    }
}

/// A plugin on the wire.
pub fn plugin(status: PluginStatus, grants: Vec<String>) -> proto::Plugin {
    let info = status.info.unwrap_or_else(|| jobhost_runtime::PluginInfo {
        name: String::new(),
        version: String::new(),
        job_types: Vec::new(),
        description: String::new(),
        capabilities: Vec::new(),
        spec_schema: None,
    });
    proto::Plugin {
        id: status.id,
        status: status.status.to_owned(),
        name: info.name,
        version: info.version,
        job_types: info.job_types,
        description: info.description,
        capabilities: info.capabilities,
        grants,
        rejection: status.rejection.unwrap_or_default(),
        digest: status.digest.unwrap_or_default(),
    }
}

/// A host node on the wire.
pub fn node(node: NodeInfo) -> proto::Node {
    proto::Node {
        id: node.id,
        hostname: node.hostname,
        version: node.version,
        job_types: node.job_types,
        capacity: node.capacity,
        started_at: Some(timestamp(node.started_ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_refuse_nonsense() {
        let t = timestamp(1_700_000_123_456);
        assert_eq!(timestamp_ms(&t).unwrap(), 1_700_000_123_456);
        for (seconds, nanos) in [(-1, 0), (i64::MAX, 0), (0, -5)] {
            let bad = Timestamp { seconds, nanos };
            assert_eq!(
                timestamp_ms(&bad).unwrap_err().code(),
                tonic::Code::InvalidArgument
            );
        }
    }

    #[test]
    fn page_tokens_round_trip_and_foreign_ones_are_refused() {
        let token = page_token("0190abcdef");
        assert_eq!(page_cursor(&token).unwrap().as_deref(), Some("0190abcdef"));
        assert_eq!(page_cursor("").unwrap(), None);
        for bad in ["garbage", "after:", "after:zz;DROP"] {
            assert_eq!(
                page_cursor(bad).unwrap_err().code(),
                tonic::Code::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_states_are_refused() {
        assert_eq!(state_filter(0).unwrap(), None);
        assert_eq!(state_filter(4).unwrap(), Some(JobState::Succeeded));
        assert!(state_filter(99).is_err());
    }
}
