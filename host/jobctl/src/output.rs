//! What jobctl prints: tables for people, `--json` for scripts.

use jobhost_proto::scheduler::{Job, JobState, LogLine, Node, Plugin};
use serde_json::{Value, json};

pub(crate) fn time_text(t: &prost_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// `text` from the server (a plugin's output, reasons, log lines, descriptions) as a
/// terminal should show it: control characters escaped (`\n`, `\u{1b}`), so a newline
/// cannot forge a row or a field and an escape sequence cannot drive the terminal. (The
/// node escapes the same way in its own terminal output; `--json` carries text as it is.)
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    use std::fmt::Write;
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

pub(crate) fn state_name(state: JobState) -> &'static str {
    state
        .as_str_name()
        .strip_prefix("JOB_STATE_")
        .unwrap_or("UNSPECIFIED")
}

pub(crate) fn job_json(job: &Job) -> Value {
    let time = |t: &Option<prost_types::Timestamp>| t.as_ref().map(time_text);
    json!({
        "id": job.id, "name": job.name, "job_type": job.job_type, "spec": job.spec,
        "labels": job.labels, "priority": job.priority, "state": state_name(job.state()),
        "attempts": job.attempts, "max_attempts": job.max_attempts,
        "timeout_ms": job.timeout_ms, "created_at": time(&job.created_at),
        "updated_at": time(&job.updated_at), "run_at": time(&job.run_at),
        "finished_at": time(&job.finished_at), "node": job.node, "output": job.output,
        "reason": job.reason, "cancel_requested": job.cancel_requested,
        "submitted_by": job.submitted_by, "cancelled_by": job.cancelled_by,
        "archived": job.archived,
        "history": job.history.iter().map(|a| json!({
            "attempt": a.attempt, "node": a.node, "started_at": time(&a.started_at),
            "ended_at": time(&a.ended_at), "outcome": a.outcome, "reason": a.reason,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn print_job(job: &Job, json: bool) {
    if json {
        outln!("{}", job_json(job));
        return;
    }
    let time = |t: &Option<prost_types::Timestamp>| t.as_ref().map(time_text).unwrap_or_default();
    outln!("id:        {}", job.id);
    if !job.name.is_empty() {
        outln!("name:      {}", printable(&job.name));
    }
    outln!("type:      {}", job.job_type);
    outln!("state:     {}", state_name(job.state()));
    outln!("attempts:  {} of {}", job.attempts, job.max_attempts);
    if job.archived {
        outln!("archived:  yes (read from the job history)");
    }
    if !job.node.is_empty() {
        outln!("node:      {}", job.node);
    }
    outln!("created:   {}", time(&job.created_at));
    if !job.submitted_by.is_empty() {
        outln!("by:        {}", printable(&job.submitted_by));
    }
    if !job.cancelled_by.is_empty() {
        outln!("cancelled by: {}", printable(&job.cancelled_by));
    }
    if job.run_at.is_some() {
        outln!("runs at:   {}", time(&job.run_at));
    }
    if job.finished_at.is_some() {
        outln!("finished:  {}", time(&job.finished_at));
    }
    if !job.output.is_empty() {
        outln!("output:    {}", printable(&job.output));
    }
    if !job.reason.is_empty() {
        outln!("reason:    {}", printable(&job.reason));
    }
    for a in &job.history {
        outln!(
            "attempt {}: {} on {} ({} .. {}){}",
            a.attempt,
            a.outcome,
            a.node,
            time(&a.started_at),
            time(&a.ended_at),
            if a.reason.is_empty() || a.outcome == "succeeded" {
                String::new()
            } else {
                format!(": {}", printable(&a.reason))
            }
        );
    }
}

pub(crate) fn print_list(jobs: &[Job], next: &str, json: bool) {
    if json {
        let jobs: Vec<Value> = jobs.iter().map(job_json).collect();
        outln!("{}", json!({"jobs": jobs, "next_page_token": next}));
        return;
    }
    outln!(
        "{:<34} {:<10} {:<16} {:<8} {:<24} NAME",
        "ID",
        "STATE",
        "TYPE",
        "ATTEMPTS",
        "CREATED"
    );
    for job in jobs {
        outln!(
            "{:<34} {:<10} {:<16} {:<8} {:<24} {}",
            job.id,
            state_name(job.state()),
            job.job_type,
            format!("{}/{}", job.attempts, job.max_attempts),
            job.created_at.as_ref().map(time_text).unwrap_or_default(),
            printable(&job.name)
        );
    }
    if !next.is_empty() {
        outln!("more: jobctl list --page-token {next}");
    }
}

/// A page of the job history: a table (or `--json`, as `list` prints).
pub(crate) fn print_history(jobs: &[Job], next: &str, json: bool) {
    if json {
        let jobs: Vec<Value> = jobs.iter().map(job_json).collect();
        outln!("{}", json!({"jobs": jobs, "next_page_token": next}));
        return;
    }
    outln!(
        "{:<34} {:<10} {:<16} {:<24} {:<24} {:<20} NAME",
        "ID",
        "STATE",
        "TYPE",
        "FINISHED",
        "NODE",
        "BY"
    );
    for job in jobs {
        let node = job.history.last().map(|a| a.node.as_str()).unwrap_or("");
        outln!(
            "{:<34} {:<10} {:<16} {:<24} {:<24} {:<20} {}",
            job.id,
            state_name(job.state()),
            job.job_type,
            job.finished_at.as_ref().map(time_text).unwrap_or_default(),
            printable(node),
            printable(&job.submitted_by),
            printable(&job.name)
        );
    }
    if !next.is_empty() {
        outln!("more: jobctl history --page-token {next} (with the same filters)");
    }
}

pub(crate) fn print_log_line(line: &LogLine, json: bool) {
    if json {
        outln!(
            "{}",
            json!({"cursor": line.cursor, "attempt": line.attempt, "level": line.level, "message": line.message})
        );
    } else {
        outln!(
            "[attempt {}] {:<5} {}",
            line.attempt,
            line.level,
            printable(&line.message)
        );
    }
}

pub(crate) fn print_plugins(plugins: &[Plugin], json: bool) {
    if json {
        let list: Vec<Value> = plugins
            .iter()
            .map(|p| {
                json!({"id": p.id, "status": p.status, "name": p.name, "version": p.version,
                       "job_types": p.job_types, "description": p.description,
                       "capabilities": p.capabilities, "grants": p.grants,
                       "rejection": p.rejection, "digest": p.digest})
            })
            .collect();
        outln!("{}", Value::Array(list));
        return;
    }
    outln!(
        "{:<16} {:<9} {:<10} {:<24} DETAIL",
        "ID",
        "STATUS",
        "VERSION",
        "JOB TYPES"
    );
    for p in plugins {
        let detail = if p.rejection.is_empty() {
            &p.description
        } else {
            &p.rejection
        };
        outln!(
            "{:<16} {:<9} {:<10} {:<24} {}",
            printable(&p.id),
            p.status,
            if p.version.is_empty() {
                "-".into()
            } else {
                printable(&p.version)
            },
            p.job_types.join(","),
            printable(detail)
        );
    }
}

pub(crate) fn print_nodes(nodes: &[Node], json: bool) {
    if json {
        let list: Vec<Value> = nodes
            .iter()
            .map(|n| {
                json!({"id": n.id, "hostname": n.hostname, "version": n.version,
                       "job_types": n.job_types, "capacity": n.capacity,
                       "started_at": n.started_at.as_ref().map(time_text)})
            })
            .collect();
        outln!("{}", Value::Array(list));
        return;
    }
    outln!(
        "{:<40} {:<20} {:<8} {:<8} JOB TYPES",
        "ID",
        "HOST",
        "VERSION",
        "CAPACITY"
    );
    for n in nodes {
        outln!(
            "{:<40} {:<20} {:<8} {:<8} {}",
            n.id,
            printable(&n.hostname),
            printable(&n.version),
            n.capacity,
            n.job_types.join(",")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("ok ✓"), "ok ✓");
        assert_eq!(printable("a\nb\u{1b}[2J"), "a\\nb\\u{1b}[2J");
    }
}
