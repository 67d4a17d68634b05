//! The gRPC API end to end: a real `jobhost serve` process, a real redis-server, a tonic
//! client.

use crate::common;

use std::time::{Duration, Instant};

use common::server::{Server, running_sleeper, wait_state};
use common::*;
use jobhost_proto::scheduler::{
    CancelJobRequest, GetJobRequest, JobState, ListJobsRequest, ListNodesRequest,
    ListPluginsRequest, ScheduleJobRequest, StreamJobLogsRequest, TimerJob,
};
use tokio_stream::StreamExt;
use tonic::Code;

fn schedule(job_type: &str, spec: &str) -> ScheduleJobRequest {
    ScheduleJobRequest {
        job_type: job_type.into(),
        spec: spec.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_job_runs_to_succeeded() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["hello"]).await;
    let mut client = server.client().await;
    let mut request = schedule("hello", r#"{"name": "Ada"}"#);
    request.labels.insert("team".into(), "infra".into());
    let response = client.schedule_job(request).await.unwrap().into_inner();
    assert!(response.created);
    let job = response.job.unwrap();
    // A node may have picked it up already.
    assert!(
        matches!(
            job.state(),
            JobState::Queued | JobState::Running | JobState::Succeeded
        ),
        "{job:?}"
    );
    assert!(job.created_at.is_some());
    // A plaintext node without tokens records the caller's address.
    assert_eq!(job.submitted_by, "anonymous:127.0.0.1");

    let done = wait_state(&mut client, &job.id, JobState::Succeeded).await;
    assert_eq!(done.output, r#"{"greeting":"hello, Ada"}"#);
    assert_eq!(done.labels["team"], "infra");
    assert_eq!(done.history.len(), 1);
    assert_eq!(done.history[0].outcome, "succeeded");
    // The older name answers the same.
    let status = client
        .get_job_status(GetJobRequest {
            job_id: job.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.job.unwrap().state(), JobState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_the_job_on_the_plugins_own_lines() {
    let redis = TestRedis::start().await;
    let env = [("JOBHOST_LOG_FORMAT", "json"), ("JOBHOST_LOG", "info")];
    let server = Server::start_with_env(&redis.url(), &["hello"], "", &env).await;
    let mut client = server.client().await;
    let job = client
        .schedule_job(schedule("hello", r#"{"name": "Ada"}"#))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    wait_state(&mut client, &job.id, JobState::Succeeded).await;
    let log = server.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let greeting = lines
        .iter()
        .find(|l| l["target"] == "plugin")
        .unwrap_or_else(|| panic!("no plugin line in {log}"));
    assert_eq!(greeting["level"], "INFO");
    assert_eq!(greeting["fields"]["message"], "greeting Ada (attempt 1)");
    // The line names its job itself: the per-job span is at debug, off at `info`.
    let fields = &greeting["fields"];
    assert_eq!(fields["job"], job.id.as_str());
    assert_eq!(fields["job_type"], "hello");
    assert_eq!(fields["attempt"], 1);
    assert!(greeting.get("span").is_none(), "{greeting}");
    // At info, one job leaves no per-job line of the node's own (its audit trail is the
    // job record's `submitted_by`).
    assert!(
        !lines
            .iter()
            .any(|l| l["fields"]["message"] == "job scheduled"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_right_codes_and_messages() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["hello", "noop"]).await;
    let mut client = server.client().await;

    let err = client
        .schedule_job(schedule("hello", "{}"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains(r#"spec must be JSON like {"name": "Ada"}"#),
        "{}",
        err.message()
    );

    let err = client
        .schedule_job(schedule("teleport", "{}"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message()
            .contains("no loaded plugin serves job type `teleport`"),
        "{}",
        err.message()
    );
    assert!(err.message().contains("hello, noop"), "{}", err.message());

    let err = client.schedule_job(schedule("", "")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let big = "x".repeat(1024 * 1024 + 1);
    let err = client
        .schedule_job(schedule("noop", &big))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains("the limit is 1048576 bytes (api.max_spec_bytes)"),
        "{}",
        err.message()
    );

    // A message the scheduler takes whole (it has room for a ScheduleJobs batch) still has
    // its spec held to the knob; one beyond any batch is refused unread.
    let too_big = "x".repeat(3 * 1024 * 1024);
    let err = client
        .schedule_job(schedule("noop", &too_big))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("(api.max_spec_bytes)"),
        "{}",
        err.message()
    );
    let way_too_big = "x".repeat(17 * 1024 * 1024);
    let err = client
        .schedule_job(schedule("noop", &way_too_big))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");

    let mut many = schedule("noop", "");
    for i in 0..65 {
        many.labels.insert(format!("k{i}"), "v".into());
    }
    let err = client.schedule_job(many).await.unwrap_err();
    assert!(
        err.message().contains("the limit is 64 (api.max_labels)"),
        "{}",
        err.message()
    );

    let mut loud = schedule("noop", "");
    loud.priority = 256;
    assert_eq!(
        client.schedule_job(loud).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let mut cron = schedule("noop", "");
    cron.name = "c".into();
    cron.cron = "every tuesday".into();
    let err = client.schedule_job(cron).await.unwrap_err();
    assert!(
        err.message().contains("invalid cron expression"),
        "{}",
        err.message()
    );

    let err = client
        .get_job(GetJobRequest {
            job_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .get_job(GetJobRequest {
            job_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = client
        .list_jobs(ListJobsRequest {
            page_token: "forged".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = client
        .list_jobs(ListJobsRequest {
            state: 42,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // The server is still fine.
    assert!(client.schedule_job(schedule("noop", "ok")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_timer_job_maps_to_the_timer_type() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["noop"]).await;
    let mut client = server.client().await;
    let request = ScheduleJobRequest {
        name: "my-timer".into(),
        timer_job: Some(TimerJob {
            duration_seconds: 300,
            timer_name: "build-timeout".into(),
            control_plane_endpoint: String::new(),
        }),
        ..Default::default()
    };
    let err = client.schedule_job(request).await.unwrap_err();
    // No timer plugin is loaded here: the typed form resolved to the `timer` type.
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("job type `timer`"),
        "{}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_return_the_first_job() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["noop"]).await;
    let mut client = server.client().await;
    let mut request = schedule("noop", "once");
    request.idempotency_key = "deploy-7".into();
    let first = client
        .schedule_job(request.clone())
        .await
        .unwrap()
        .into_inner();
    let second = client.schedule_job(request).await.unwrap().into_inner();
    assert!(first.created && !second.created);
    assert_eq!(first.job.unwrap().id, second.job.unwrap().id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_a_queued_and_a_running_job() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["noop"]).await;
    let mut client = server.client().await;
    let mut later = schedule("noop", "");
    later.run_at = Some(prost_types::Timestamp {
        seconds: (jobhost_store::now_ms() / 1000 + 3600) as i64,
        nanos: 0,
    });
    let scheduled = client
        .schedule_job(later)
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(scheduled.state(), JobState::Scheduled);
    let cancelled = client
        .cancel_job(CancelJobRequest {
            job_id: scheduled.id.clone(),
            reason: "not needed".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(cancelled.state(), JobState::Cancelled);
    assert_eq!(cancelled.reason, "not needed");
    assert_eq!(cancelled.cancelled_by, "anonymous:127.0.0.1");

    let running = running_sleeper(&mut client).await;
    client
        .cancel_job(CancelJobRequest {
            job_id: running.id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap();
    let done = wait_state(&mut client, &running.id, JobState::Cancelled).await;
    assert_eq!(done.history[0].outcome, "cancelled");
    // A running job's cancel keeps its reason and who asked.
    assert_eq!(done.reason, "cancelled on request");
    assert_eq!(done.cancelled_by, "anonymous:127.0.0.1");

    let err = client
        .cancel_job(CancelJobRequest {
            job_id: running.id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = client
        .cancel_job(CancelJobRequest {
            job_id: "nope".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_stream_history_then_live_lines_until_the_job_ends() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["noop"]).await;
    let mut client = server.client().await;
    let mut sleepy = schedule("noop", "");
    sleepy.labels.insert("sleep_ms".into(), "1500".into());
    let job = client
        .schedule_job(sleepy)
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    wait_state(&mut client, &job.id, JobState::Running).await;
    // The job has logged "sleeping 1500 ms" (history); its stdout comes later (live).
    let mut stream = client
        .stream_job_logs(StreamJobLogsRequest {
            job_id: job.id.clone(),
            follow: true,
            after: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut lines = Vec::new();
    let started = Instant::now();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("stream ends")
    {
        lines.push(line.unwrap().message);
    }
    // History first, then the line the job wrote after the stream opened, then the end.
    assert_eq!(lines, ["sleeping 1500 ms", "slept 1500 ms"]);
    assert!(started.elapsed() >= Duration::from_millis(500), "{lines:?}");
    let final_state = client
        .get_job(GetJobRequest {
            job_id: job.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(final_state.state(), JobState::Succeeded);

    // Without follow: history only, then the stream ends.
    let history: Vec<_> = client
        .stream_job_logs(StreamJobLogsRequest {
            job_id: job.id.clone(),
            follow: false,
            after: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    assert_eq!(history.len(), lines.len());
    let err = client
        .stream_job_logs(StreamJobLogsRequest {
            job_id: "nope".into(),
            follow: true,
            after: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_jobs_filters_and_pages_through_everything() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["noop", "hello"]).await;
    let mut client = server.client().await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let mut request = schedule("noop", &i.to_string());
        request.labels.insert(
            "parity".into(),
            if i % 2 == 0 { "even" } else { "odd" }.into(),
        );
        ids.push(
            client
                .schedule_job(request)
                .await
                .unwrap()
                .into_inner()
                .job
                .unwrap()
                .id,
        );
    }
    client
        .schedule_job(schedule("hello", r#"{"name":"x"}"#))
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_jobs(ListJobsRequest {
                job_type: "noop".into(),
                page_size: 10,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(page.jobs.into_iter().map(|j| j.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "every noop job once, newest first");

    let mut even = ListJobsRequest {
        page_size: 100,
        ..Default::default()
    };
    even.labels.insert("parity".into(), "even".into());
    let evens = client.list_jobs(even).await.unwrap().into_inner().jobs;
    assert_eq!(evens.len(), 13);

    for id in &ids {
        wait_state(&mut client, id, JobState::Succeeded).await;
    }
    let succeeded = client
        .list_jobs(ListJobsRequest {
            state: JobState::Succeeded as i32,
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert!(succeeded.len() >= 25);
    assert!(succeeded.iter().all(|j| j.state() == JobState::Succeeded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_and_nodes_are_listed() {
    let redis = TestRedis::start().await;
    let strict = "[runtime]\nstrict_imports = true\n";
    let server = Server::start_with(&redis.url(), &["noop", "net-probe"], strict).await;
    let mut client = server.client().await;
    let plugins = client
        .list_plugins(ListPluginsRequest {})
        .await
        .unwrap()
        .into_inner()
        .plugins;
    let noop = plugins.iter().find(|p| p.id == "noop").unwrap();
    assert_eq!(
        (noop.status.as_str(), noop.job_types.as_slice()),
        ("loaded", &["noop".to_owned()][..])
    );
    let probe = plugins.iter().find(|p| p.id == "net-probe").unwrap();
    assert_eq!(probe.status, "rejected");
    assert!(
        probe.rejection.contains("plugins.net-probe.grants"),
        "{}",
        probe.rejection
    );
    let start = Instant::now();
    loop {
        let nodes = client
            .list_nodes(ListNodesRequest {})
            .await
            .unwrap()
            .into_inner()
            .nodes;
        if let Some(node) = nodes.first() {
            assert_eq!(node.job_types, ["noop"]);
            assert!(node.capacity > 0);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the node never registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_redis_down_and_up() {
    let mut redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["noop"]).await;
    let port = redis.server.port();
    redis.server.stop().await;
    server
        .wait_health(tonic_health::ServingStatus::NotServing)
        .await;
    redis.server = jobhost_store::DevRedis::start(redis.dir.path(), Some(port))
        .await
        .unwrap();
    server
        .wait_health(tonic_health::ServingStatus::Serving)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["noop"]).await;
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "api.app.v1.AppService",
            "api.csa.v1.CSAService",
            "api.job.v1.JobService",
            "api.node.v1.NodeService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "jobhost.v1.JobScheduler"
        ]
    );
}

/// `GetJobRequest` as bytes on the wire: field 1 may hold what no string can.
#[derive(Clone, PartialEq, prost::Message)]
struct RawGetJob {
    #[prost(bytes = "vec", tag = "1")]
    job_id: Vec<u8>,
}

/// A message that cannot be decoded (invalid UTF-8 in a string field) is the caller's
/// error, INVALID_ARGUMENT, not INTERNAL; and an id of 64 KiB is not echoed whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_requests_and_huge_ids_are_invalid_or_cut() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["noop"]).await;
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/jobhost.v1.JobScheduler/GetJob");
    let codec = tonic_prost::ProstCodec::<RawGetJob, RawGetJob>::default();
    let bad = RawGetJob {
        job_id: vec![0xff, 0xfe, b'x'],
    };
    let err = grpc
        .unary(tonic::Request::new(bad), path.clone(), codec)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("failed to decode Protobuf message"),
        "{}",
        err.message()
    );

    let mut client = server.client().await;
    let huge = "x".repeat(64 * 1024);
    let err = client
        .get_job(jobhost_proto::scheduler::GetJobRequest { job_id: huge })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().len() < 200, "{}", err.message());
    assert!(err.message().contains("(65536 bytes)"), "{}", err.message());

    let err = client
        .stream_job_logs(StreamJobLogsRequest {
            job_id: "any".into(),
            follow: false,
            after: "garbage".into(),
        })
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("is not a log cursor"),
        "{}",
        err.message()
    );
}

/// Python's grpcio-reflection, Postman and older grpcurl speak only `v1alpha`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_is_served_as_v1alpha_too() {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["noop"]).await;
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("jobhost.v1.JobScheduler".into()),
    ]
    .map(|message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    });
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("v1alpha is served")
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "jobhost.v1.JobScheduler"),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n == "grpc.reflection.v1alpha.ServerReflection"),
        "{names:?}"
    );
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_jobs_on_a_host_without_cgroups_are_a_failed_precondition() {
    let redis = TestRedis::start().await;
    let config = "[sandbox]\ncgroup_root = \"/nonexistent/cgroup\"\n\n[plugins.shell]\ngrants = [\"process\"]\n";
    let server = Server::start_with(&redis.url(), &["shell"], config).await;
    let mut client = server.client().await;
    let err = client
        .schedule_job(schedule("shell", r#"{"command": "/bin/true"}"#))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("sandbox.allow_unconfined"),
        "{}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_of_output_reach_five_live_readers_and_a_late_one_identically() {
    let redis = TestRedis::start().await;
    let config =
        "[runtime]\nlog_limit_bytes = 134217728\n\n[plugins.shell]\ngrants = [\"process\"]\n";
    let server = Server::start_with(&redis.url(), &["shell"], config).await;
    let mut client = server.client().await;
    // ~50 MB of base64 in 8000-character lines, written as fast as the process can.
    let spec = r#"{"command": "/bin/sh", "args": ["-c", "head -c 37500000 /dev/urandom | base64 -w 8000"]}"#;
    let job = client
        .schedule_job(schedule("shell", spec))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let readers: Vec<_> = (0..5)
        .map(|_| {
            let channel_client = client.clone();
            let id = job.id.clone();
            tokio::spawn(async move {
                let mut client = channel_client;
                let stream = client
                    .stream_job_logs(StreamJobLogsRequest {
                        job_id: id,
                        follow: true,
                        after: String::new(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                digest_lines(stream).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for reader in readers {
        results.push(
            tokio::time::timeout(Duration::from_secs(120), reader)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let done = wait_state(&mut client, &job.id, JobState::Succeeded).await;
    assert_eq!(done.state(), JobState::Succeeded);
    let (bytes, digest) = results[0].clone();
    assert!(bytes >= 50_000_000, "only {bytes} bytes of output arrived");
    assert!(
        results.iter().all(|r| *r == (bytes, digest.clone())),
        "readers saw different bytes"
    );
    // A reader that comes after the job ended gets the whole history.
    let late = client
        .stream_job_logs(StreamJobLogsRequest {
            job_id: job.id.clone(),
            follow: true,
            after: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(digest_lines(late).await, (bytes, digest));
}

/// Bytes (lines plus newlines) and SHA-256 of everything a log stream delivers.
async fn digest_lines(
    mut stream: tonic::Streaming<jobhost_proto::scheduler::LogLine>,
) -> (usize, Vec<u8>) {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut bytes = 0;
    while let Some(line) = stream.next().await {
        let line = line.unwrap().message;
        bytes += line.len() + 1;
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    (bytes, hasher.finalize().to_vec())
}

/// One job of a batch as the caller sees it: its job, or its own error.
fn batch_outcome(
    result: &jobhost_proto::scheduler::ScheduleJobResult,
) -> Result<(&jobhost_proto::scheduler::Job, bool), (Code, &str)> {
    use jobhost_proto::scheduler::schedule_job_result::Result as Outcome;
    match result.result.as_ref().expect("a result per job") {
        Outcome::Scheduled(answer) => Ok((answer.job.as_ref().expect("a job"), answer.created)),
        Outcome::Error(error) => Err((Code::from(error.code), error.message.as_str())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_schedules_its_good_jobs_and_refuses_each_bad_one_alone() {
    use jobhost_proto::scheduler::ScheduleJobsRequest;
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["hello", "noop"]).await;
    let mut client = server.client().await;
    let keyed = |key: &str| ScheduleJobRequest {
        idempotency_key: key.into(),
        ..schedule("noop", "{}")
    };
    let mut labelled = schedule("hello", r#"{"name": "Ada"}"#);
    labelled.labels.insert("batch".into(), "1".into());
    let jobs = vec![
        labelled,
        schedule("hello", "{}"),    // the plugin refuses the spec
        schedule("teleport", "{}"), // no plugin serves the type
        keyed("once"),              // created
        keyed("once"),              // the same key: the job just created
        ScheduleJobRequest {
            priority: 256, // out of range
            ..schedule("noop", "{}")
        },
        schedule("hello", r#"{"name": "Bob"}"#),
    ];
    let answer = client
        .schedule_jobs(ScheduleJobsRequest { jobs })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.results.len(), 7);
    let outcomes: Vec<_> = answer.results.iter().map(batch_outcome).collect();

    let (ada, created) = outcomes[0].unwrap();
    assert!(created);
    assert_eq!(ada.labels["batch"], "1");
    assert_eq!(ada.submitted_by, "anonymous:127.0.0.1");
    assert!(ada.created_at.is_some());
    let (code, message) = outcomes[1].unwrap_err();
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        message.contains(r#"spec must be JSON like {"name": "Ada"}"#),
        "{message}"
    );
    let (code, message) = outcomes[2].unwrap_err();
    assert_eq!(code, Code::FailedPrecondition);
    assert!(
        message.contains("no loaded plugin serves job type `teleport`"),
        "{message}"
    );
    let (first, created) = outcomes[3].unwrap();
    assert!(created);
    let (again, created) = outcomes[4].unwrap();
    assert!(!created);
    assert_eq!(again.id, first.id);
    let (code, message) = outcomes[5].unwrap_err();
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        message.contains("priority 256 is out of range"),
        "{message}"
    );
    let (bob, _) = outcomes[6].unwrap();

    // The answer was built from what was written; what runs is what was answered.
    let done = wait_state(&mut client, &ada.id, JobState::Succeeded).await;
    assert_eq!(done.output, r#"{"greeting":"hello, Ada"}"#);
    assert_eq!(done.created_at, ada.created_at);
    let done = wait_state(&mut client, &bob.id, JobState::Succeeded).await;
    assert_eq!(done.output, r#"{"greeting":"hello, Bob"}"#);
    wait_state(&mut client, &first.id, JobState::Succeeded).await;
    // Three jobs were created, no more.
    let listed = client
        .list_jobs(ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.jobs.len(), 3, "{:?}", listed.jobs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_is_empty_too_large_or_over_a_queue_limit_is_refused_clearly() {
    use jobhost_proto::scheduler::ScheduleJobsRequest;
    let redis = TestRedis::start().await;
    let config = "[api]\nmax_batch_jobs = 5\n\n[job_types.noop]\nmax_queued = 2\n";
    let server = Server::start_with(&redis.url(), &["noop"], config).await;
    let mut client = server.client().await;

    let err = client
        .schedule_jobs(ScheduleJobsRequest { jobs: vec![] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("jobs is empty"), "{}", err.message());

    let six = vec![schedule("noop", "{}"); 6];
    let err = client
        .schedule_jobs(ScheduleJobsRequest { jobs: six })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains("6 jobs in one batch; the limit is 5 (api.max_batch_jobs)"),
        "{}",
        err.message()
    );

    // Three delayed jobs against a queue limit of two: the third alone is refused, by the
    // same script that admitted the first two.
    let later = ScheduleJobRequest {
        run_at: Some(prost_types::Timestamp {
            seconds: (jobhost_store::now_ms() / 1000 + 3600) as i64,
            nanos: 0,
        }),
        ..schedule("noop", "{}")
    };
    let answer = client
        .schedule_jobs(ScheduleJobsRequest {
            jobs: vec![later.clone(), later.clone(), later],
        })
        .await
        .unwrap()
        .into_inner();
    let outcomes: Vec<_> = answer.results.iter().map(batch_outcome).collect();
    assert_eq!(outcomes[0].unwrap().0.state(), JobState::Scheduled);
    assert_eq!(outcomes[1].unwrap().0.state(), JobState::Scheduled);
    let (code, message) = outcomes[2].unwrap_err();
    assert_eq!(code, Code::ResourceExhausted);
    assert!(message.contains("max_queued"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_of_kilobyte_specs_fits_in_one_call() {
    use jobhost_proto::scheduler::ScheduleJobsRequest;
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["noop"]).await;
    let mut client = server.client().await;
    // 1,000 jobs of 2 KiB: a 2 MiB message, over the 1 MiB a single job may be, within what
    // a batch may be.
    let spec = "x".repeat(2048);
    let jobs = vec![schedule("noop", &spec); 1000];
    let answer = client
        .schedule_jobs(ScheduleJobsRequest { jobs })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.results.len(), 1000);
    let created = answer
        .results
        .iter()
        .filter(|r| batch_outcome(r).is_ok_and(|(job, created)| created && job.spec.len() == 2048))
        .count();
    assert_eq!(created, 1000);
}

/// A `ListJobs` page stays within what a default gRPC client accepts (4 MiB) however large
/// the outputs: it ends early with a token for the rest, and paging still reaches every job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_fit_default_clients_whatever_the_outputs() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["hostile"]).await;
    let mut client = server.client().await;
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let job = client
            .schedule_job(schedule("hostile", "output:900000"))
            .await
            .unwrap()
            .into_inner()
            .job
            .unwrap();
        ids.insert(job.id.clone());
        wait_state(&mut client, &job.id, JobState::Succeeded).await;
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        // The default client (4 MiB decoding limit) reads every page.
        let page = client
            .list_jobs(jobhost_proto::scheduler::ListJobsRequest {
                page_size: 50,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("a page within the default message limit")
            .into_inner();
        pages += 1;
        assert!(
            page.jobs.len() < 5 || pages > 1,
            "the first page held all 4.5 MB"
        );
        seen.extend(page.jobs.into_iter().map(|j| j.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 10);
    }
    assert_eq!(seen, ids);
    assert!(pages >= 2);
}
