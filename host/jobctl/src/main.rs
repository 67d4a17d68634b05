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

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use jobhost_proto::scheduler::{
    JobState, ListJobsRequest, ListNodesRequest, ListPluginsRequest, SearchHistoryRequest,
    StreamJobLogsRequest,
};
use tokio_stream::StreamExt;

mod batch;
mod connect;
mod jobs;
mod output;
mod retry;

use connect::connect;
use jobs::{cancel, create, get, logs, parse_state, schedule, wait};
use output::{
    job_json, print_history, print_job, print_list, print_log_line, print_nodes, print_plugins,
    state_name,
};

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
    /// Search the job history (PostgreSQL): finished jobs, newest finished first, including
    /// those Redis retention has dropped.
    History {
        /// Only jobs of this type.
        #[arg(long = "type")]
        job_type: Option<String>,
        /// Only jobs that ended in this state (succeeded, failed, cancelled, dead).
        #[arg(long)]
        state: Option<String>,
        /// Only jobs with this label (repeatable): key=value.
        #[arg(long = "label", value_parser = key_value)]
        labels: Vec<(String, String)>,
        /// Only jobs finished at or after this time: RFC 3339 (2026-12-01T00:00:00Z) or
        /// Unix ms.
        #[arg(long, value_parser = time_arg)]
        from: Option<prost_types::Timestamp>,
        /// Only jobs finished before this time: RFC 3339 or Unix ms.
        #[arg(long, value_parser = time_arg)]
        to: Option<prost_types::Timestamp>,
        /// Only jobs submitted by this caller, e.g. token:ci.
        #[arg(long)]
        submitted_by: Option<String>,
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
    /// Stop a job (the Job Worker's `stop`): cancels it and returns once it has ended (its
    /// process group gone), printing the state it ended in (CANCELLED, as everywhere).
    Stop {
        /// Job id.
        id: String,
        /// Longest wait for the job to end, in seconds: its plugin's cancel grace period
        /// and the shell's SIGTERM-to-SIGKILL delay fit well within the default, and so does
        /// a lease (30 s by default) when the job's node died.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Stream a job's output: history, then live until it ends, as the job wrote it (the
    /// Job Worker's `stream`; `logs` shows the same lines escaped, with their level).
    Stream {
        /// Job id.
        id: String,
    },
}

#[derive(clap::Args)]
struct ScheduleArgs {
    /// Job type (the plugin that runs it).
    #[arg(long = "type", required_unless_present = "from_file")]
    job_type: Option<String>,
    /// Many jobs from a file (`-` reads standard input): one JSON job a line, shaped as the
    /// body of `POST /v1/jobs` (`{"type": "noop", "spec": {...}, "labels": {...}}`), sent
    /// in batches through `ScheduleJobs`. Prints one result a line (with its line number);
    /// exits 1 if any job was refused. The other options do not apply to these jobs.
    #[arg(long, conflicts_with_all = ["job_type", "spec", "spec_file", "cron", "wait", "run_at", "delay", "idempotency_key"])]
    from_file: Option<std::path::PathBuf>,
    /// Jobs per `ScheduleJobs` call with --from-file (at most the node's api.max_batch_jobs).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10000))]
    batch_size: u32,
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
    /// Attempts the plugin may end (default 3; attempts lost with their node do not count).
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

/// `--from`/`--to`: RFC 3339 or Unix milliseconds.
fn time_arg(s: &str) -> Result<prost_types::Timestamp, String> {
    let ms = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<i64>().ok()
    } else {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis())
    };
    let ms = ms.filter(|ms| *ms >= 0).ok_or_else(|| {
        format!("expected an RFC 3339 time (2026-12-01T00:00:00Z) or Unix ms, got {s:?}")
    })?;
    Ok(prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
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
async fn run(cli: Cli) -> Outcome {
    let mut client = connect(&cli).await?;
    let json = cli.json;
    match cli.command {
        Command::Schedule(ScheduleArgs {
            from_file: Some(path),
            batch_size,
            ..
        }) => batch::schedule_file(&mut client, &path, batch_size as usize, json).await,
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
        Command::History {
            job_type,
            state,
            labels,
            from,
            to,
            submitted_by,
            limit,
            page_token,
        } => {
            let request = SearchHistoryRequest {
                job_type: job_type.unwrap_or_default(),
                state: match state {
                    Some(s) => parse_state(&s)? as i32,
                    None => 0,
                },
                labels: labels.into_iter().collect(),
                from,
                to,
                submitted_by: submitted_by.unwrap_or_default(),
                page_size: limit,
                page_token: page_token.unwrap_or_default(),
            };
            let page = client.search_history(request).await?.into_inner();
            print_history(&page.jobs, &page.next_page_token, json);
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
        Command::Stop { id, timeout } => {
            let job = cancel(&mut client, id, "stopped with jobctl stop".into()).await?;
            // The cancel is asked; the job ends on its node once its process is gone.
            let limit = std::time::Duration::from_secs(timeout);
            let job = match tokio::time::timeout(limit, wait(&mut client, &job.id)).await {
                Ok(ended) => ended?,
                Err(_) => {
                    return Err(Failure::request(format!(
                        "job {} is still {} after {timeout}s: its node has not stopped it yet",
                        job.id,
                        state_name(get(&mut client, &job.id).await?.state())
                    )));
                }
            };
            if json {
                outln!("{}", job_json(&job));
            } else {
                let verdict = match job.state() {
                    JobState::Cancelled => "Job stopped successfully",
                    _ => "Job ended before it could be stopped",
                };
                outln!(
                    "{verdict}:\nID: {}\nStatus: {}",
                    job.id,
                    state_name(job.state())
                );
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
