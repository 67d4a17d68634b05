//! `jobctl`: the command-line client of the jobhost scheduler API (gRPC).
//!
//! Exit codes: 0 success; 1 the request failed (or, with `schedule --wait`, the job did not
//! succeed); 2 usage error.

/// `println!` that ends the process quietly when stdout is closed (e.g. piped to `head`),
/// instead of panicking on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use jobhost::api::proto::job_scheduler_client::JobSchedulerClient;
use jobhost::api::proto::{
    CancelJobRequest, GetJobRequest, Job, JobState, ListJobsRequest, ListNodesRequest,
    ListPluginsRequest, LogLine, Node, Plugin, ScheduleJobRequest, StreamJobLogsRequest,
};
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tonic::Status;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// Client of a jobhost server: schedule jobs, watch them, list plugins and nodes.
#[derive(Parser)]
#[command(name = "jobctl", version)]
struct Cli {
    /// The server: URL or host:port.
    #[arg(
        long,
        short,
        global = true,
        env = "JOBHOST_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    /// Print JSON instead of text (for scripts).
    #[arg(long, global = true)]
    json: bool,
    /// CA certificate that signed the server's certificate (PEM); implies TLS.
    #[arg(long, global = true, env = "JOBCTL_CA")]
    ca: Option<PathBuf>,
    /// Client certificate (PEM), signed by the server's `tls.client_ca_file`; its OU is
    /// the role (admin or viewer).
    #[arg(long, global = true, env = "JOBCTL_CERT", requires = "key")]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "JOBCTL_KEY", requires = "cert")]
    key: Option<PathBuf>,
    /// Bearer token (one of the server's `auth.tokens`), instead of a client certificate.
    #[arg(long, global = true, env = "JOBCTL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// The scheduler client, with the bearer token (if any) on every call.
type Client = JobSchedulerClient<InterceptedService<Channel, BearerToken>>;

/// Adds `authorization: Bearer <token>` to every call when a token is given.
#[derive(Clone)]
struct BearerToken(Option<MetadataValue<Ascii>>);

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Schedule a job (or, with --cron, a schedule).
    Schedule(ScheduleArgs),
    /// Show one job with its attempts.
    Get {
        /// Job id.
        id: String,
    },
    /// List jobs, newest first.
    List {
        /// Only jobs in this state (queued, scheduled, running, succeeded, failed, cancelled, dead).
        #[arg(long)]
        state: Option<String>,
        /// Only jobs of this type.
        #[arg(long = "type")]
        job_type: Option<String>,
        /// Only jobs with this label (repeatable): key=value.
        #[arg(long = "label", value_parser = key_value)]
        labels: Vec<(String, String)>,
        /// Jobs per page.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Continue from a previous page.
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Cancel a job.
    Cancel {
        /// Job id.
        id: String,
        /// Why (recorded on the job).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Print a job's log; with -f, keep following until the job ends.
    Logs {
        /// Job id.
        id: String,
        /// Follow live lines until the job ends.
        #[arg(short, long)]
        follow: bool,
    },
    /// List the plugins of the server's node.
    Plugins,
    /// List the live host nodes.
    Nodes,
    /// Run a command as a shell job (the Job Worker's `create`).
    Create {
        /// CPU limit, percent of one core.
        #[arg(long)]
        max_cpu: Option<u32>,
        /// Memory limit, MB.
        #[arg(long)]
        max_memory: Option<u64>,
        /// I/O limit, bytes/s (read and write, on the disk of the working directory).
        #[arg(long)]
        max_iobps: Option<u64>,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Stop a job (the Job Worker's `stop`; shown as STOPPED).
    Stop {
        /// Job id.
        id: String,
    },
    /// Stream a job's output: history, then live until it ends (the Job Worker's `stream`).
    Stream {
        /// Job id.
        id: String,
    },
}

#[derive(clap::Args)]
struct ScheduleArgs {
    /// Job type (the plugin that runs it).
    #[arg(long = "type")]
    job_type: String,
    /// The spec, inline.
    #[arg(long, conflicts_with = "spec_file")]
    spec: Option<String>,
    /// The spec, from a file (`-` reads standard input).
    #[arg(long)]
    spec_file: Option<std::path::PathBuf>,
    /// Display name (required with --cron).
    #[arg(long, default_value = "")]
    name: String,
    /// A label (repeatable): key=value.
    #[arg(long = "label", value_parser = key_value)]
    labels: Vec<(String, String)>,
    /// 0 (lowest, default) to 255.
    #[arg(long, default_value_t = 0)]
    priority: u32,
    /// Attempts in all (default 3).
    #[arg(long, default_value_t = 0)]
    max_attempts: u32,
    /// Deadline of one attempt, in ms (default: the plugin's).
    #[arg(long, default_value_t = 0)]
    timeout_ms: u64,
    /// Start no earlier than this RFC 3339 time (e.g. 2026-12-01T08:00:00Z).
    #[arg(long, conflicts_with = "delay")]
    run_at: Option<String>,
    /// Start after this delay: 30s, 5m, 2h.
    #[arg(long)]
    delay: Option<String>,
    /// Cron expression with seconds: a schedule that creates a job per fire.
    #[arg(long)]
    cron: Option<String>,
    /// Scheduling twice with the same key returns the first job.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Wait until the job ends; exit 1 unless it SUCCEEDED.
    #[arg(long, conflicts_with = "cron")]
    wait: bool,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

/// A failure, with the exit code it maps to.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn request(message: impl Into<String>) -> Self {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
    fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        Failure::request(format!("{:?}: {}", status.code(), status.message()))
    }
}

type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse(); // exits 2 on usage errors
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jobctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("jobctl: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}

/// `--server` as a URL: `https` when it says so or when TLS files are given.
fn server_url(server: &str, tls: bool) -> String {
    match server.split_once("://") {
        Some(("http", rest)) if tls => format!("https://{rest}"),
        Some(_) => server.to_owned(),
        None if tls => format!("https://{server}"),
        None => format!("http://{server}"),
    }
}

fn read_file(flag: &str, path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .map_err(|e| Failure::usage(format!("cannot read --{flag} {}: {e}", path.display())))
}

/// The TLS settings from --ca, --cert and --key, if any is given or the server URL is
/// `https`; without --ca, the server's certificate must chain to a public root.
fn client_tls(cli: &Cli) -> Result<Option<ClientTlsConfig>, Failure> {
    if cli.ca.is_none() && cli.cert.is_none() && !cli.server.starts_with("https://") {
        return Ok(None);
    }
    let mut tls = ClientTlsConfig::new();
    match &cli.ca {
        Some(ca) => tls = tls.ca_certificate(Certificate::from_pem(read_file("ca", ca)?)),
        None => tls = tls.with_webpki_roots(),
    }
    if let (Some(cert), Some(key)) = (&cli.cert, &cli.key) {
        tls = tls.identity(Identity::from_pem(
            read_file("cert", cert)?,
            read_file("key", key)?,
        ));
    }
    Ok(Some(tls))
}

/// True if `url`'s host is this machine, where plaintext does not cross a network.
fn is_loopback(url: &str) -> bool {
    let host = url
        .parse::<http::Uri>()
        .ok()
        .and_then(|uri| uri.host().map(|h| h.trim_matches(['[', ']']).to_owned()));
    match host.as_deref() {
        Some("localhost") => true,
        Some(host) => host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

async fn connect(cli: &Cli) -> Result<Client, Failure> {
    let tls = client_tls(cli)?;
    let server = server_url(&cli.server, tls.is_some());
    if cli.token.is_some() && tls.is_none() && !is_loopback(&server) {
        return Err(Failure::usage(format!(
            "refusing to send --token in plaintext to {server}: use an https:// server or --ca"
        )));
    }
    let mut endpoint = Channel::from_shared(server.clone())
        .map_err(|e| Failure::usage(format!("invalid --server {server:?}: {e}")))?
        .connect_timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| Failure::usage(format!("TLS settings: {e}")))?;
    }
    let channel = endpoint.connect().await.map_err(|e| {
        let cause = std::error::Error::source(&e).map_or(String::new(), |c| format!(" ({c})"));
        Failure::request(format!(
            "cannot reach jobhost at {server}: {e}{cause} (set --server or JOBHOST_SERVER; \
             over TLS, --ca, --cert and --key)"
        ))
    })?;
    let token = match &cli.token {
        Some(token) => {
            let mut value = format!("Bearer {token}")
                .parse::<MetadataValue<Ascii>>()
                .map_err(|_| Failure::usage("--token must be printable ASCII"))?;
            // Kept out of HTTP/2 header compression tables.
            value.set_sensitive(true);
            Some(value)
        }
        None => None,
    };
    Ok(
        JobSchedulerClient::with_interceptor(channel, BearerToken(token))
            .max_decoding_message_size(64 << 20),
    )
}

async fn run(cli: Cli) -> Outcome {
    let mut client = connect(&cli).await?;
    let json = cli.json;
    match cli.command {
        Command::Schedule(args) => schedule(&mut client, args, json).await,
        Command::Get { id } => {
            let job = get(&mut client, &id).await?;
            print_job(&job, json);
            Ok(())
        }
        Command::List {
            state,
            job_type,
            labels,
            limit,
            page_token,
        } => {
            let request = ListJobsRequest {
                state: match state {
                    Some(s) => parse_state(&s)? as i32,
                    None => 0,
                },
                job_type: job_type.unwrap_or_default(),
                labels: labels.into_iter().collect(),
                page_size: limit,
                page_token: page_token.unwrap_or_default(),
            };
            let page = client.list_jobs(request).await?.into_inner();
            print_list(&page.jobs, &page.next_page_token, json);
            Ok(())
        }
        Command::Cancel { id, reason } => {
            let job = cancel(&mut client, id, reason.unwrap_or_default()).await?;
            if json {
                outln!("{}", job_json(&job));
            } else {
                let note = if job.state() == JobState::Running {
                    " (stopping on its node)"
                } else {
                    ""
                };
                outln!("job {} {}{note}", job.id, state_name(job.state()));
            }
            Ok(())
        }
        Command::Logs { id, follow } => logs(&mut client, id, follow, json).await,
        Command::Plugins => {
            let plugins = client
                .list_plugins(ListPluginsRequest {})
                .await?
                .into_inner()
                .plugins;
            print_plugins(&plugins, json);
            Ok(())
        }
        Command::Create {
            max_cpu,
            max_memory,
            max_iobps,
            command,
        } => create(&mut client, max_cpu, max_memory, max_iobps, command, json).await,
        Command::Stop { id } => {
            let job = cancel(&mut client, id, "stopped with jobctl stop".into()).await?;
            if json {
                outln!("{}", job_json(&job));
            } else {
                outln!("Job stopped successfully:\nID: {}\nStatus: STOPPED", job.id);
            }
            Ok(())
        }
        Command::Stream { id } => {
            let request = StreamJobLogsRequest {
                job_id: id,
                follow: true,
                after: String::new(),
            };
            let mut stream = client.stream_job_logs(request).await?.into_inner();
            while let Some(line) = stream.next().await {
                let line = line?;
                if json {
                    print_log_line(&line, true);
                } else {
                    outln!("{}", line.message);
                }
            }
            Ok(())
        }
        Command::Nodes => {
            let nodes = client
                .list_nodes(ListNodesRequest {})
                .await?
                .into_inner()
                .nodes;
            print_nodes(&nodes, json);
            Ok(())
        }
    }
}

async fn schedule(client: &mut Client, args: ScheduleArgs, json: bool) -> Outcome {
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
                jobhost::store::now_ms() + u64::try_from(delay.as_millis()).unwrap_or(0),
            ))
        }
        (None, None) => None,
    };
    let request = ScheduleJobRequest {
        name: args.name,
        job_type: args.job_type,
        spec,
        labels: args.labels.into_iter().collect::<HashMap<_, _>>(),
        priority: args.priority,
        max_attempts: args.max_attempts,
        timeout_ms: args.timeout_ms,
        run_at,
        cron: args.cron.unwrap_or_default(),
        idempotency_key: args.idempotency_key.unwrap_or_default(),
        ..Default::default()
    };
    let response = client.schedule_job(request).await?.into_inner();
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
async fn create(
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
        ..Default::default()
    };
    let job = client
        .schedule_job(request)
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

fn no_job() -> Failure {
    Failure::request("the server returned no job")
}

async fn cancel(client: &mut Client, id: String, reason: String) -> Result<Job, Failure> {
    let request = CancelJobRequest { job_id: id, reason };
    client
        .cancel_job(request)
        .await?
        .into_inner()
        .job
        .ok_or_else(no_job)
}

async fn get(client: &mut Client, id: &str) -> Result<Job, Failure> {
    client
        .get_job(GetJobRequest { job_id: id.into() })
        .await?
        .into_inner()
        .job
        .ok_or_else(no_job)
}

async fn wait(client: &mut Client, id: &str) -> Result<Job, Failure> {
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

async fn logs(client: &mut Client, id: String, follow: bool, json: bool) -> Outcome {
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

fn parse_state(s: &str) -> Result<JobState, Failure> {
    let wanted = format!("JOB_STATE_{}", s.to_ascii_uppercase());
    JobState::from_str_name(&wanted).ok_or_else(|| {
        Failure::usage(format!(
            "unknown state {s:?}: use queued, scheduled, running, succeeded, failed, cancelled or dead"
        ))
    })
}

fn parse_time(s: &str) -> Result<prost_types::Timestamp, Failure> {
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

fn parse_delay(s: &str) -> Result<Duration, Failure> {
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

fn timestamp(ms: u64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

fn time_text(t: &prost_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn state_name(state: JobState) -> &'static str {
    state
        .as_str_name()
        .strip_prefix("JOB_STATE_")
        .unwrap_or("UNSPECIFIED")
}

fn job_json(job: &Job) -> Value {
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
        "history": job.history.iter().map(|a| json!({
            "attempt": a.attempt, "node": a.node, "started_at": time(&a.started_at),
            "ended_at": time(&a.ended_at), "outcome": a.outcome, "reason": a.reason,
        })).collect::<Vec<_>>(),
    })
}

fn print_job(job: &Job, json: bool) {
    if json {
        outln!("{}", job_json(job));
        return;
    }
    let time = |t: &Option<prost_types::Timestamp>| t.as_ref().map(time_text).unwrap_or_default();
    outln!("id:        {}", job.id);
    if !job.name.is_empty() {
        outln!("name:      {}", job.name);
    }
    outln!("type:      {}", job.job_type);
    outln!("state:     {}", state_name(job.state()));
    outln!("attempts:  {} of {}", job.attempts, job.max_attempts);
    if !job.node.is_empty() {
        outln!("node:      {}", job.node);
    }
    outln!("created:   {}", time(&job.created_at));
    if !job.submitted_by.is_empty() {
        outln!("by:        {}", job.submitted_by);
    }
    if !job.cancelled_by.is_empty() {
        outln!("cancelled by: {}", job.cancelled_by);
    }
    if job.run_at.is_some() {
        outln!("runs at:   {}", time(&job.run_at));
    }
    if job.finished_at.is_some() {
        outln!("finished:  {}", time(&job.finished_at));
    }
    if !job.output.is_empty() {
        outln!("output:    {}", job.output);
    }
    if !job.reason.is_empty() {
        outln!("reason:    {}", job.reason);
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
                format!(": {}", a.reason)
            }
        );
    }
}

fn print_list(jobs: &[Job], next: &str, json: bool) {
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
            job.name
        );
    }
    if !next.is_empty() {
        outln!("more: jobctl list --page-token {next}");
    }
}

fn print_log_line(line: &LogLine, json: bool) {
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
            line.message
        );
    }
}

fn print_plugins(plugins: &[Plugin], json: bool) {
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
            "{:<16} {:<9} {:<10} {:<24} {detail}",
            p.id,
            p.status,
            if p.version.is_empty() {
                "-"
            } else {
                &p.version
            },
            p.job_types.join(",")
        );
    }
}

fn print_nodes(nodes: &[Node], json: bool) {
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
            n.hostname,
            n.version,
            n.capacity,
            n.job_types.join(",")
        );
    }
}
