//! The calls on jobs: schedule (and wait), cancel, get, wait, follow a log; and parsing of
//! their arguments.

use std::collections::HashMap;
use std::time::Duration;

use jobhost_proto::scheduler::{
    CancelJobRequest, GetJobRequest, Job, JobState, ScheduleJobRequest, StreamJobLogsRequest,
};
use serde_json::json;
use tokio_stream::StreamExt;

use crate::connect::Client;
use crate::output::*;
use crate::{Failure, Outcome, ScheduleArgs};

pub(crate) async fn schedule(client: &mut Client, args: ScheduleArgs, json: bool) -> Outcome {
    let spec = match (args.spec, args.spec_file) {
        (Some(spec), _) => spec,
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut spec = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut spec)
                .map_err(|e| Failure::usage(format!("reading the spec from stdin: {e}")))?;
            spec
        }
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| Failure::usage(format!("reading {}: {e}", path.display())))?,
        (None, None) => String::new(),
    };
    let run_at = match (args.run_at, args.delay) {
        (Some(at), _) => Some(parse_time(&at)?),
        (None, Some(delay)) => {
            let delay = parse_delay(&delay)?;
            Some(timestamp(
                now_ms() + u64::try_from(delay.as_millis()).unwrap_or(0),
            ))
        }
        (None, None) => None,
    };
    let request = ScheduleJobRequest {
        name: args.name,
        job_type: args.job_type.unwrap_or_default(),
        spec,
        labels: args.labels.into_iter().collect::<HashMap<_, _>>(),
        priority: args.priority,
        max_attempts: args.max_attempts,
        timeout_ms: args.timeout_ms,
        run_at,
        idempotency_key: match (&args.cron, args.idempotency_key) {
            (None, None) => crate::retry::fresh_key(),
            (_, key) => key.unwrap_or_default(),
        },
        cron: args.cron.unwrap_or_default(),
        ..Default::default()
    };
    let response = crate::retry::unavailable(|| {
        let (mut client, request) = (client.clone(), request.clone());
        async move { client.schedule_job(request).await }
    })
    .await?
    .into_inner();
    if let Some(schedule) = response.schedule {
        if json {
            outln!(
                "{}",
                json!({"schedule": schedule.name, "cron": schedule.cron,
                       "job_type": schedule.job_type,
                       "next_fire": schedule.next_fire.as_ref().map(time_text)})
            );
        } else {
            outln!(
                "schedule {} ({}) created; next fire {}",
                schedule.name,
                schedule.cron,
                schedule
                    .next_fire
                    .as_ref()
                    .map(time_text)
                    .unwrap_or_default()
            );
        }
        return Ok(());
    }
    let job = response.job.ok_or_else(no_job)?;
    if !args.wait {
        if json {
            outln!("{}", job_json(&job));
        } else {
            let existing = if response.created {
                ""
            } else {
                " (existing, same idempotency key)"
            };
            outln!("job {} {}{existing}", job.id, state_name(job.state()));
        }
        return Ok(());
    }
    let job = wait(client, &job.id).await?;
    print_job(&job, json);
    if job.state() == JobState::Succeeded {
        Ok(())
    } else {
        Err(Failure {
            code: 1,
            message: String::new(),
        })
    }
}

/// The Job Worker's `create`: a shell job running `command`.
pub(crate) async fn create(
    client: &mut Client,
    max_cpu: Option<u32>,
    max_memory: Option<u64>,
    max_iobps: Option<u64>,
    command: Vec<String>,
    json: bool,
) -> Outcome {
    let (program, args) = command.split_first().expect("clap requires a command");
    // The Job Worker treats 0 as "no limit".
    let io_bps = max_iobps.filter(|b| *b > 0);
    let spec = json!({
        "command": program, "args": args,
        "limits": {"cpu_percent": max_cpu, "memory_mb": max_memory, "io_bps": io_bps},
    });
    let request = ScheduleJobRequest {
        job_type: "shell".into(),
        spec: spec.to_string(),
        idempotency_key: crate::retry::fresh_key(),
        ..Default::default()
    };
    let job = crate::retry::unavailable(|| {
        let (mut client, request) = (client.clone(), request.clone());
        async move { client.schedule_job(request).await }
    })
    .await?
    .into_inner()
    .job
    .ok_or_else(no_job)?;
    if json {
        outln!("{}", job_json(&job));
    } else {
        outln!(
            "Job created:\nID: {}\nCommand: {}\nStatus: {}\nStartTime: {}",
            job.id,
            command.join(" "),
            state_name(job.state()),
            job.created_at.as_ref().map(time_text).unwrap_or_default()
        );
    }
    Ok(())
}

pub(crate) fn no_job() -> Failure {
    Failure::request("the server returned no job")
}

pub(crate) async fn cancel(
    client: &mut Client,
    id: String,
    reason: String,
) -> Result<Job, Failure> {
    let request = CancelJobRequest { job_id: id, reason };
    client
        .cancel_job(request)
        .await?
        .into_inner()
        .job
        .ok_or_else(no_job)
}

pub(crate) async fn get(client: &mut Client, id: &str) -> Result<Job, Failure> {
    client
        .get_job(GetJobRequest { job_id: id.into() })
        .await?
        .into_inner()
        .job
        .ok_or_else(no_job)
}

pub(crate) async fn wait(client: &mut Client, id: &str) -> Result<Job, Failure> {
    loop {
        let job = get(client, id).await?;
        if matches!(
            job.state(),
            JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::Dead
        ) {
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) async fn logs(client: &mut Client, id: String, follow: bool, json: bool) -> Outcome {
    let request = StreamJobLogsRequest {
        job_id: id,
        follow,
        after: String::new(),
    };
    let mut stream = client.stream_job_logs(request).await?.into_inner();
    while let Some(line) = stream.next().await {
        print_log_line(&line?, json);
    }
    Ok(())
}

pub(crate) fn parse_state(s: &str) -> Result<JobState, Failure> {
    let wanted = format!("JOB_STATE_{}", s.to_ascii_uppercase());
    JobState::from_str_name(&wanted).ok_or_else(|| {
        Failure::usage(format!(
            "unknown state {s:?}: use queued, scheduled, running, succeeded, failed, cancelled or dead"
        ))
    })
}

pub(crate) fn parse_time(s: &str) -> Result<prost_types::Timestamp, Failure> {
    let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|e| {
        Failure::usage(format!(
            "--run-at {s:?} is not an RFC 3339 time ({e}), e.g. 2026-12-01T08:00:00Z"
        ))
    })?;
    Ok(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

pub(crate) fn parse_delay(s: &str) -> Result<Duration, Failure> {
    let bad = || {
        Failure::usage(format!(
            "--delay {s:?}: use a number with s, m or h, e.g. 30s"
        ))
    };
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(seconds))
}

pub(crate) fn timestamp(ms: u64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}
