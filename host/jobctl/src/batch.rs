//! `jobctl schedule --from-file FILE|-`: many jobs from one JSON object a line, sent in
//! batches through `ScheduleJobs`; one result line per job.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;

use jobhost_proto::scheduler::{
    ScheduleJobRequest, ScheduleJobsRequest, schedule_job_result::Result as Outcome,
};
use serde::Deserialize;
use serde_json::json;

use crate::connect::Client;
use crate::jobs::timestamp;
use crate::output::*;
use crate::{Failure, Outcome as CliOutcome};

/// Bytes of job lines sent in one call at most (the node takes messages of 16 MiB).
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// One line of the file: a job as `POST /v1/jobs` takes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobLine {
    #[serde(rename = "type")]
    job_type: String,
    #[serde(default)]
    spec: serde_json::Value,
    #[serde(default)]
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    priority: u32,
    #[serde(default)]
    max_attempts: u32,
    #[serde(default)]
    backoff_base_ms: u64,
    #[serde(default)]
    backoff_max_ms: u64,
    #[serde(default)]
    timeout_ms: u64,
    #[serde(default)]
    run_at_ms: Option<u64>,
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    cron: String,
}

impl From<JobLine> for ScheduleJobRequest {
    fn from(line: JobLine) -> Self {
        let spec = match line.spec {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        ScheduleJobRequest {
            name: line.name,
            job_type: line.job_type,
            spec,
            labels: line.labels.into_iter().collect::<HashMap<_, _>>(),
            priority: line.priority,
            max_attempts: line.max_attempts,
            timeout_ms: line.timeout_ms,
            run_at: line.run_at_ms.map(timestamp),
            // A line without a key gets one, so a retried batch creates each job once.
            idempotency_key: match line.idempotency_key {
                key if key.is_empty() && line.cron.is_empty() => crate::retry::fresh_key(),
                key => key,
            },
            backoff_base_ms: line.backoff_base_ms,
            backoff_max_ms: line.backoff_max_ms,
            cron: line.cron,
            ..Default::default()
        }
    }
}

/// Schedules every job of `path` (`-`: standard input), `batch` at a time. A line that is
/// not a job, or a job the node refuses, is reported with its line number and does not stop
/// the others; the exit code is 1 if any was refused. Blank lines are skipped.
pub(crate) async fn schedule_file(
    client: &mut Client,
    path: &std::path::Path,
    batch: usize,
    json: bool,
) -> CliOutcome {
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(path)
            .map_err(|e| Failure::usage(format!("reading {}: {e}", path.display())))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut report = Report { json, refused: 0 };
    // Lines that are not jobs wait with the batch, so results come out in the file's order.
    let mut pending: Vec<(usize, Result<ScheduleJobRequest, String>)> = Vec::new();
    let mut bytes = 0;
    for (index, line) in reader.lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(|e| Failure::usage(format!("reading {}: {e}", path.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        let job = serde_json::from_str::<JobLine>(&line)
            .map(Into::into)
            .map_err(|e| format!("not a job: {e}"));
        bytes += line.len();
        pending.push((number, job));
        // A call carries at most `batch` jobs and about BATCH_BYTES of them, whichever
        // comes first, to stay within the node's message limit.
        if pending.iter().filter(|(_, job)| job.is_ok()).count() >= batch || bytes >= BATCH_BYTES {
            bytes = 0;
            send(client, std::mem::take(&mut pending), &mut report).await?;
        }
    }
    if !pending.is_empty() {
        send(client, pending, &mut report).await?;
    }
    if report.refused > 0 {
        return Err(Failure::request(format!(
            "{} job(s) refused",
            report.refused
        )));
    }
    Ok(())
}

/// What has been printed so far.
struct Report {
    json: bool,
    refused: usize,
}

impl Report {
    fn refused(&mut self, line: usize, code: &str, message: &str) {
        self.refused += 1;
        if self.json {
            outln!(
                "{}",
                json!({"line": line, "error": {"code": code, "message": message}})
            );
        } else {
            outln!("line {line}: refused: {code}: {message}");
        }
    }
}

async fn send(
    client: &mut Client,
    pending: Vec<(usize, Result<ScheduleJobRequest, String>)>,
    report: &mut Report,
) -> CliOutcome {
    let mut lines = Vec::with_capacity(pending.len());
    let mut jobs = Vec::with_capacity(pending.len());
    for (line, job) in pending {
        match job {
            Ok(job) => {
                jobs.push(job);
                lines.push((line, None));
            }
            Err(message) => lines.push((line, Some(message))),
        }
    }
    let sent = jobs.len();
    let results = if sent == 0 {
        Vec::new()
    } else {
        let request = ScheduleJobsRequest { jobs };
        crate::retry::unavailable(|| {
            let (mut client, request) = (client.clone(), request.clone());
            async move { client.schedule_jobs(request).await }
        })
        .await?
        .into_inner()
        .results
    };
    if results.len() != sent {
        return Err(Failure::request(format!(
            "the node answered {} results for {sent} jobs",
            results.len()
        )));
    }
    let mut results = results.into_iter();
    for (line, unparsed) in lines {
        if let Some(message) = unparsed {
            report.refused(line, "InvalidArgument", &message);
            continue;
        }
        let result = results.next().expect("one result per job sent");
        match result.result {
            Some(Outcome::Scheduled(scheduled)) => match (scheduled.job, scheduled.schedule) {
                (Some(job), _) if report.json => {
                    outln!(
                        "{}",
                        json!({"line": line, "created": scheduled.created, "job": job_json(&job)})
                    );
                }
                (Some(job), _) => {
                    let existing = if scheduled.created {
                        ""
                    } else {
                        " (existing, same idempotency key)"
                    };
                    outln!(
                        "line {line}: job {} {}{existing}",
                        job.id,
                        state_name(job.state())
                    );
                }
                (None, Some(schedule)) if report.json => {
                    outln!("{}", json!({"line": line, "schedule": schedule.name}));
                }
                (None, Some(schedule)) => {
                    outln!(
                        "line {line}: schedule {} ({}) created",
                        schedule.name,
                        schedule.cron
                    );
                }
                (None, None) => report.refused(line, "Internal", "no job in the answer"),
            },
            Some(Outcome::Error(error)) => {
                let code = format!("{:?}", tonic::Code::from(error.code));
                report.refused(line, &code, &error.message);
            }
            None => report.refused(line, "Internal", "no result in the answer"),
        }
    }
    Ok(())
}
