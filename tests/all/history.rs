//! The job history in PostgreSQL: finished jobs archived off the job path through the
//! store's outbox, read back after Redis forgot them, searched (gRPC, REST, jobctl), kept
//! through a PostgreSQL outage, bounded when the outbox is full, idempotent across
//! drains and nodes, and clear errors for a bad URL or password. Real PostgreSQL
//! (`common::TestPostgres`) and real nodes.

use std::time::Duration;

use futures::StreamExt;
use jobhost_proto::scheduler::{
    GetJobRequest, JobState, ScheduleJobRequest, SearchHistoryRequest, StreamJobLogsRequest,
    job_scheduler_client::JobSchedulerClient,
};
use serde_json::Value;
use tonic::transport::Channel;

use crate::common::receiver::http_request;
use crate::common::server::{Server, schedule_ok, wait_state};
use crate::common::{TestPostgres, TestRedis, eventually};

/// Archive quickly; succeeded jobs leave Redis a second after they are archived.
const FAST: &str = "[history]\ninterval_ms = 50\n[redis]\nsucceeded_retention_secs = 1\n";

/// [`FAST`] with more `[history]` keys.
fn fast_with(history: &str) -> String {
    format!("[history]\ninterval_ms = 50\n{history}[redis]\nsucceeded_retention_secs = 1\n")
}

async fn node(redis: &TestRedis, pg: &TestPostgres, config: &str) -> Server {
    let url = pg.url();
    Server::start_with_env(
        &redis.url(),
        &["noop", "log-flood"],
        config,
        &[("JOBHOST_HISTORY_URL", &url)],
    )
    .await
}

fn noop(spec: &str, labels: &[(&str, &str)]) -> ScheduleJobRequest {
    ScheduleJobRequest {
        job_type: "noop".into(),
        spec: spec.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

async fn get(
    client: &mut JobSchedulerClient<Channel>,
    id: &str,
) -> Result<jobhost_proto::scheduler::Job, tonic::Status> {
    let answer = client.get_job(GetJobRequest { job_id: id.into() }).await?;
    Ok(answer.into_inner().job.unwrap())
}

/// Waits until the history holds `n` rows.
async fn wait_archived(pg: &TestPostgres, n: i64) {
    let start = std::time::Instant::now();
    loop {
        let have = pg.archived().await;
        if have == n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{have} of {n} jobs archived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A store on `redis` with history on (an outbox of 100), for the store-level tests.
async fn outbox_store(redis: &TestRedis) -> jobhost_store::Store {
    redis
        .store_with(jobhost_store::StoreOptions {
            archive_max: 100,
            ..Default::default()
        })
        .await
}

/// A `noop` job claimed by node `n1`, which logs `log` and succeeds with `output`: into the
/// outbox. Its id.
async fn run_to_success(
    store: &jobhost_store::Store,
    output: &str,
    log: &[(&str, &str)],
) -> String {
    let (id, _) = store
        .enqueue(&crate::common::new_job("noop", "spec"))
        .await
        .unwrap();
    let claimed = store
        .claim("n1", &["noop".to_string()], 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    store.append_log(&id, 1, log).await.unwrap();
    let done = jobhost_store::Finish::Succeeded {
        output: output.into(),
    };
    store.finish(&claimed[0], "n1", &done).await.unwrap();
    id
}

/// Waits until the history outbox is empty.
async fn wait_outbox_empty(store: &jobhost_store::Store) {
    let start = std::time::Instant::now();
    while store.archive_backlog().await.unwrap().0 > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the outbox drains"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET path` on the node's HTTP API: status and JSON body.
async fn http_json(server: &Server, path: &str) -> (u16, Value) {
    let (status, body) = http_request(&server.http_addr, "GET", path, &[], b"").await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

#[tokio::test]
async fn finished_jobs_are_archived_and_read_back_once_redis_forgot_them() {
    let redis = TestRedis::start().await;
    let pg = TestPostgres::start().await;
    let server = node(&redis, &pg, FAST).await;
    let mut client = server.client().await;
    // (With sleep_ms, noop logs a line before and after its sleep.)
    let ok = schedule_ok(
        &mut client,
        noop("the output", &[("team", "blue"), ("sleep_ms", "1")]),
    )
    .await;
    let mut failing = noop("", &[]);
    failing.job_type = "log-flood".into();
    failing.timeout_ms = 300;
    failing.max_attempts = 1;
    let failed = schedule_ok(&mut client, failing).await;
    wait_archived(&pg, 2).await;

    // Succeeded jobs leave Redis a second after they are archived (not before: see
    // the outage test); the failed one stays for redis.retention_secs.
    let gone = eventually(Duration::from_secs(10), || {
        redis
            .cli(&["EXISTS", &format!("jobhost:{{jobhost}}:job:{}", ok.id)])
            .trim()
            == "0"
    })
    .await;
    assert!(
        gone.is_some(),
        "the archived succeeded job expired from Redis"
    );
    let job = get(&mut client, &ok.id).await.unwrap();
    assert!(job.archived, "{job:?}");
    // Its log comes from the archive, with the cursors the live log gave: resuming after
    // the first line gives the second.
    let log = |after: String| {
        let mut client = client.clone();
        let id = ok.id.clone();
        async move {
            let request = StreamJobLogsRequest {
                job_id: id,
                follow: true,
                after,
            };
            let mut stream = client.stream_job_logs(request).await.unwrap().into_inner();
            let mut lines = Vec::new();
            while let Some(line) = stream.next().await {
                lines.push(line.unwrap());
            }
            lines
        }
    };
    let lines = log(String::new()).await;
    let texts: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(texts, ["sleeping 1 ms", "slept 1 ms"]);
    // (The live log's cursors: Redis stream ids, `<ms>-<n>`, not line numbers.)
    let ms: u64 = lines[0].cursor.split('-').next().unwrap().parse().unwrap();
    assert!(ms > 1_700_000_000_000, "{:?}", lines[0].cursor);
    let rest = log(lines[0].cursor.clone()).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(
        (rest[0].message.as_str(), &rest[0].cursor),
        ("slept 1 ms", &lines[1].cursor)
    );
    assert_eq!(job.state(), JobState::Succeeded);
    assert_eq!(job.output, "the output");
    assert_eq!(job.labels["team"], "blue");
    assert!(job.submitted_by.starts_with("anonymous:"), "{job:?}");
    assert_eq!(job.history.len(), 1);
    assert!(!job.history[0].node.is_empty(), "{job:?}");
    assert_eq!(job.history[0].outcome, "succeeded");
    assert!(job.finished_at.is_some() && job.created_at.is_some());

    // The REST mirror says the same, marked archived.
    let (status, body) = http_json(&server, &format!("/v1/jobs/{}", ok.id)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["archived"], true);
    assert_eq!(body["output"], "the output");

    // The dead job (its one attempt timed out) is still in Redis (not marked archived), and
    // archived too.
    let live = get(&mut client, &failed.id).await.unwrap();
    assert!(!live.archived);
    assert_eq!(live.state(), JobState::Dead);
    let row = pg
        .client()
        .await
        .query_one(
            "SELECT state, reason, log_lines, jsonb_array_length(log) FROM job_history WHERE id = $1",
            &[&failed.id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "DEAD");
    let reason: Option<String> = row.get(1);
    assert_eq!(reason.as_deref(), Some(live.reason.as_str()));
    assert!(row.get::<_, i64>(2) > 0, "its log lines are counted");
    assert!(row.get::<_, i32>(3) > 0, "its log is archived");

    // A job neither place knows is NOT_FOUND.
    let missing = get(&mut client, "01NOSUCHJOB0000000000000000")
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn postgres_down_mid_run_loses_nothing_and_the_outbox_drains_when_it_is_back() {
    let redis = TestRedis::start().await;
    let mut pg = TestPostgres::start().await;
    let server = node(&redis, &pg, FAST).await;
    let mut client = server.client().await;
    let first = schedule_ok(&mut client, noop("before", &[])).await;
    wait_archived(&pg, 1).await;

    pg.stop().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            schedule_ok(&mut client, noop(&format!("during {i}"), &[]))
                .await
                .id,
        );
    }
    // Jobs keep running while PostgreSQL is away; they wait whole in Redis, no expiry.
    for id in &ids {
        wait_state(&mut client, id, JobState::Succeeded).await;
    }
    let store = redis.store().await;
    let (waiting, overflow) = store.archive_backlog().await.unwrap();
    assert_eq!((waiting, overflow), (20, 0));
    let ttl = redis.cli(&["PTTL", &format!("jobhost:{{jobhost}}:job:{}", ids[0])]);
    assert_eq!(
        ttl.trim(),
        "-1",
        "a job waiting to be archived does not expire"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = http_json(&server, "/metrics").await;
    assert_eq!(status, 200);
    let metrics = body.as_str().unwrap_or_default().to_owned();
    assert!(metrics.contains("jobhost_history_up 0"), "{metrics}");

    pg.start_again().await;
    wait_archived(&pg, 21).await;
    wait_outbox_empty(&store).await;
    let rows = pg
        .client()
        .await
        .query("SELECT id, output FROM job_history ORDER BY id", &[])
        .await
        .unwrap();
    let mut archived: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let mut want = ids.clone();
    want.push(first.id);
    want.sort();
    archived.sort();
    assert_eq!(archived, want, "every job archived once");
}

#[tokio::test]
async fn a_full_outbox_keeps_jobs_running_and_counts_what_it_could_not_take() {
    let redis = TestRedis::start().await;
    let mut pg = TestPostgres::start().await;
    pg.stop().await;
    // PostgreSQL is down from the start: the node starts all the same.
    let server = node(&redis, &pg, &fast_with("outbox_max = 5\n")).await;
    let mut client = server.client().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let job = schedule_ok(&mut client, noop(&format!("job {i}"), &[])).await;
        wait_state(&mut client, &job.id, JobState::Succeeded).await;
        ids.push(job.id);
    }
    let store = redis.store().await;
    assert_eq!(store.archive_backlog().await.unwrap(), (5, 7));
    // The first five wait in the outbox, the others got their usual retention.
    let ttl = |id: &str| redis.cli(&["PTTL", &format!("jobhost:{{jobhost}}:job:{id}")]);
    assert_eq!(ttl(&ids[0]).trim(), "-1");
    let overflowed: i64 = ttl(&ids[11]).trim().parse().unwrap();
    assert!(overflowed > 0, "an overflowed job keeps its retention");
    let seen = eventually(Duration::from_secs(10), || {
        server.log().contains("history outbox is full")
    })
    .await;
    assert!(
        seen.is_some(),
        "the node says the outbox is full: {}",
        server.log()
    );

    pg.start_again().await;
    wait_archived(&pg, 5).await;
    let archived = pg.archived_ids().await;
    let mut first: Vec<String> = ids[..5].to_vec();
    first.sort();
    assert_eq!(archived, first);
    let (_, body) = http_json(&server, "/metrics").await;
    let metrics = body.as_str().unwrap_or_default();
    assert!(
        metrics.contains("jobhost_history_overflow_total 7"),
        "{metrics}"
    );
}

#[tokio::test]
async fn huge_outputs_and_logs_are_archived_within_the_caps() {
    let redis = TestRedis::start().await;
    let pg = TestPostgres::start().await;
    let config = fast_with("max_log_lines = 50\nmax_log_bytes = 20000\n");
    let server = node(&redis, &pg, &config).await;
    let mut client = server.client().await;
    let big = "x".repeat(900 * 1024) + "\u{0}nul";
    let ok = schedule_ok(&mut client, noop(&big, &[])).await;
    let mut flood = noop("", &[]);
    flood.job_type = "log-flood".into();
    flood.timeout_ms = 500;
    let flooded = schedule_ok(&mut client, flood).await;
    wait_archived(&pg, 2).await;
    let db = pg.client().await;
    let row = db
        .query_one(
            "SELECT length(output) FROM job_history WHERE id = $1",
            &[&ok.id],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i32>(0) as usize,
        900 * 1024 + 4,
        "the whole output, its NUL replaced"
    );
    let row = db
        .query_one(
            "SELECT jsonb_array_length(log), log_lines, \
             (SELECT sum(length(l->>'message')) FROM jsonb_array_elements(log) l)::bigint \
             FROM job_history WHERE id = $1",
            &[&flooded.id],
        )
        .await
        .unwrap();
    let (kept, total, bytes): (i32, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert!(kept > 0 && kept <= 50, "{kept} lines kept");
    assert!(bytes <= 20000, "{bytes} bytes kept");
    assert!(total > i64::from(kept), "{total} lines in all, {kept} kept");
}

#[tokio::test]
async fn history_is_searched_by_type_state_label_time_and_submitter_with_paging() {
    let redis = TestRedis::start().await;
    let pg = TestPostgres::start().await;
    let server = node(&redis, &pg, FAST).await;
    let mut client = server.client().await;
    let before = chrono::Utc::now();
    let mut blue = Vec::new();
    for i in 0..7 {
        blue.push(
            schedule_ok(&mut client, noop(&format!("blue {i}"), &[("team", "blue")]))
                .await
                .id,
        );
    }
    let red = schedule_ok(&mut client, noop("red", &[("team", "red")]))
        .await
        .id;
    let mut failing = noop("", &[("team", "blue")]);
    failing.job_type = "log-flood".into();
    failing.timeout_ms = 200;
    failing.max_attempts = 1;
    let failed = schedule_ok(&mut client, failing).await.id;
    wait_archived(&pg, 9).await;

    // gRPC: by label, paged 3 at a time, newest finished first, every page distinct.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .search_history(SearchHistoryRequest {
                labels: [("team".to_string(), "blue".to_string())].into(),
                job_type: "noop".into(),
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            page.jobs
                .iter()
                .all(|j| j.archived && j.labels["team"] == "blue")
        );
        assert!(page.jobs.len() <= 3);
        seen.extend(
            page.jobs
                .iter()
                .map(|j| (j.finished_at.unwrap(), j.id.clone())),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut ids: Vec<String> = seen.iter().map(|(_, id)| id.clone()).collect();
    let newest_first = seen
        .windows(2)
        .all(|w| (w[0].0.seconds, w[0].0.nanos) >= (w[1].0.seconds, w[1].0.nanos));
    assert!(newest_first, "{seen:?}");
    ids.sort();
    let mut want = blue.clone();
    want.sort();
    assert_eq!(ids, want);

    // By state and type.
    let page = client
        .search_history(SearchHistoryRequest {
            state: JobState::Dead as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        page.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        std::slice::from_ref(&failed)
    );
    let running = client
        .search_history(SearchHistoryRequest {
            state: JobState::Running as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(running.code(), tonic::Code::InvalidArgument);

    // REST: label, time window, submitter; bad input is a 400 naming it.
    let from = before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let path = format!(
        "/v1/history?label=team%3Dred&from={}",
        from.replace(':', "%3A").replace('+', "%2B")
    );
    let (status, body) = http_json(&server, &path).await;
    assert_eq!(status, 200, "{body}");
    let jobs = body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{body}");
    assert_eq!(jobs[0]["id"], red.as_str());
    assert_eq!(jobs[0]["archived"], true);
    let (status, body) = http_json(
        &server,
        &format!("/v1/history?to={}", before.timestamp_millis()),
    )
    .await;
    assert_eq!(
        (status, body["jobs"].as_array().map(Vec::len)),
        (200, Some(0)),
        "nothing finished before the test"
    );
    let submitter = get(&mut client, &red).await.unwrap().submitted_by;
    let by = submitter.replace(':', "%3A");
    let (status, body) = http_json(
        &server,
        &format!("/v1/history?submitted_by={by}&page_size=1000"),
    )
    .await;
    assert_eq!(
        (status, body["jobs"].as_array().map(Vec::len)),
        (200, Some(9)),
        "{body}"
    );
    let (status, _) = http_json(&server, "/v1/history?submitted_by=token%3Anobody").await;
    assert_eq!(status, 200);
    for bad in [
        "/v1/history?state=RUNNING",
        "/v1/history?from=yesterday",
        "/v1/history?page_token=zzz",
        "/v1/history?label=novalue",
        "/v1/history?colour=red",
    ] {
        let (status, body) = http_json(&server, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // jobctl history --json.
    let out = std::process::Command::new(crate::common::jobctl_bin())
        .args([
            "--server",
            &format!("http://{}", server.addr),
            "--json",
            "history",
            "--label",
            "team=red",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page["jobs"][0]["id"], red.as_str());
    assert_eq!(page["jobs"][0]["archived"], true);
    let out = std::process::Command::new(crate::common::jobctl_bin())
        .args([
            "--server",
            &format!("http://{}", server.addr),
            "history",
            "--type",
            "log-flood",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(&failed) && text.contains("DEAD"),
        "{text}"
    );
}

#[tokio::test]
async fn without_history_the_search_says_so_and_nothing_waits_for_an_archive() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["noop"]).await;
    let mut client = server.client().await;
    let status = client
        .search_history(SearchHistoryRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().contains("history.postgres_url"),
        "{status:?}"
    );
    let (code, body) = http_json(&server, "/v1/history").await;
    assert_eq!(code, 409, "{body}");
    let job = schedule_ok(&mut client, noop("x", &[])).await;
    wait_state(&mut client, &job.id, JobState::Succeeded).await;
    assert_eq!(redis.store().await.archive_backlog().await.unwrap(), (0, 0));
}

#[tokio::test]
async fn two_nodes_draining_archive_each_job_once() {
    let redis = TestRedis::start().await;
    let pg = TestPostgres::start().await;
    let a = node(&redis, &pg, FAST).await;
    let b = node(&redis, &pg, FAST).await;
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    let mut ids = Vec::new();
    for i in 0..60 {
        let client = if i % 2 == 0 { &mut ca } else { &mut cb };
        ids.push(schedule_ok(client, noop(&format!("{i}"), &[])).await.id);
    }
    wait_archived(&pg, 60).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pg.archived().await, 60);
    // Each job was written once: the archive counters of both nodes add up to the jobs.
    let mut total = 0.0;
    for server in [&a, &b] {
        let (_, body) = http_json(server, "/metrics").await;
        let text = body.as_str().unwrap_or_default().to_owned();
        total += text
            .lines()
            .find_map(|l| l.strip_prefix("jobhost_history_archived_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
    }
    assert_eq!(total, 60.0);
}

#[tokio::test]
async fn the_same_job_archived_twice_is_one_row_and_the_later_finish_wins() {
    let redis = TestRedis::start().await;
    let pg = TestPostgres::start().await;
    let config = jobhost_config::HistoryConfig {
        postgres_url: pg.url(),
        ..Default::default()
    };
    let history = jobhost_history::History::open(&config).await.unwrap();
    let store = outbox_store(&redis).await;
    let id = run_to_success(&store, "one", &[]).await;
    let pending = store
        .archive_pending(10, 10, 1 << 20)
        .await
        .unwrap()
        .entries;
    assert_eq!(pending.len(), 1);
    let job = pending[0].job.found().unwrap().clone();
    history.archive(std::slice::from_ref(&job)).await.unwrap();
    history.archive(std::slice::from_ref(&job)).await.unwrap();
    assert_eq!(pg.archived().await, 1);
    // An older copy never replaces a newer one.
    let mut older = job.clone();
    older.record.finished_ms = Some(job.finished_ms() - 1000);
    older.record.output = Some("stale".into());
    let mut newer = job.clone();
    newer.record.finished_ms = Some(job.finished_ms() + 1000);
    newer.record.output = Some("newer".into());
    history.archive(&[newer, older]).await.unwrap();
    let read = history.get(&id).await.unwrap().unwrap();
    assert_eq!(read.job.output.as_deref(), Some("newer"));
    assert_eq!(pg.archived().await, 1);

    // Released, the job's retention starts; a job changed since it was read stays.
    assert_eq!(
        store
            .archive_release(&[(id.clone(), job.finished_ms() + 1)])
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.archive_backlog().await.unwrap().0, 1);
    assert_eq!(
        store
            .archive_release(&[(id.clone(), job.finished_ms())])
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.archive_backlog().await.unwrap().0, 0);
    let ttl: i64 = redis
        .cli(&["PTTL", &format!("jobhost:{{jobhost}}:job:{id}")])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 0, "retention started: {ttl}");
}

#[tokio::test]
async fn the_archive_keeps_its_own_retention() {
    let redis = TestRedis::start().await;
    let pg = TestPostgres::start().await;
    // The schema exists once a node has connected.
    let first = node(&redis, &pg, FAST).await;
    drop(first);
    let db = pg.client().await;
    for (id, days) in [("old", 40), ("recent", 2)] {
        db.execute(
            "INSERT INTO job_history (id, job_type, state, created_at, updated_at, finished_at) \
             VALUES ($1, 'noop', 'SUCCEEDED', now(), now(), now() - make_interval(days => $2))",
            &[&id, &days],
        )
        .await
        .unwrap();
    }
    let _server = node(&redis, &pg, &fast_with("retention_days = 30\n")).await;
    let start = std::time::Instant::now();
    loop {
        let ids = pg.archived_ids().await;
        if ids == ["recent"] {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{ids:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_bad_url_a_wrong_password_or_a_missing_database_stops_the_start_naming_the_knob() {
    let redis = TestRedis::start().await;
    let pg = TestPostgres::start().await;
    let db = pg.client().await;
    db.batch_execute(
        "CREATE ROLE app LOGIN PASSWORD 'right-password'; GRANT CREATE ON SCHEMA public TO app",
    )
    .await
    .unwrap();
    // Password authentication for `app`, trust for the rest.
    let hba = pg.server.data_dir().join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host all app 127.0.0.1/32 scram-sha-256\n{rules}"),
    )
    .unwrap();
    db.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let port = pg.server.port();
    let cases = [
        (
            format!("postgres://app:wrong-secret@127.0.0.1:{port}/jobhost"),
            "refused the login",
        ),
        (
            format!("postgres://app@127.0.0.1:{port}/jobhost"),
            "password",
        ),
        (
            format!("postgres://jobhost@127.0.0.1:{port}/nosuchdb"),
            "nosuchdb",
        ),
        (
            "postgres://app:wrong-secret@127.0.0.1:notaport/x".to_string(),
            "not a PostgreSQL URL",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jobhost.toml");
    std::fs::write(&config, "[tls]\nenabled = false\n").unwrap();
    for (url, says) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_jobhost"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .arg("--plugins-dir")
            .arg(dir.path())
            .env("JOBHOST_REDIS_URL", redis.url())
            .env("JOBHOST_HISTORY_URL", &url)
            .env("JOBHOST_GRPC_ADDR", "127.0.0.1:0")
            .env("JOBHOST_HTTP_ADDR", "127.0.0.1:0")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url}: {err}");
        assert!(err.contains("history.postgres_url"), "{url}: {err}");
        assert!(err.contains(says), "{url}: {err}");
        assert!(
            !err.contains("wrong-secret"),
            "the password is masked: {err}"
        );
    }
    // The right password through history.password (env:) starts.
    let server = Server::start_with_env(
        &redis.url(),
        &["noop"],
        "[history]\npassword = \"env:TEST_PG_PASSWORD\"\n",
        &[
            (
                "JOBHOST_HISTORY_URL",
                &format!("postgres://app@127.0.0.1:{port}/jobhost"),
            ),
            ("TEST_PG_PASSWORD", "right-password"),
        ],
    )
    .await;
    assert!(!server.log().contains("right-password"));
    let mut client = server.client().await;
    let page = client.search_history(SearchHistoryRequest::default()).await;
    assert!(
        page.is_ok(),
        "the history answers with the right password: {page:?}"
    );
}

#[tokio::test]
async fn a_batch_of_chatty_jobs_stops_at_its_log_line_budget() {
    let redis = TestRedis::start().await;
    let store = outbox_store(&redis).await;
    let lines: Vec<(&str, &str)> = vec![("INFO", "a line"); 1000];
    for _ in 0..40 {
        run_to_success(&store, "", &lines).await;
    }
    // 1,000 lines each, read 16 jobs at a time: after 32 jobs the batch holds more than its
    // budget of 20,000 lines, and the rest wait for the next batch.
    assert_eq!(jobhost_store::LOG_LINES_PER_BATCH, 20_000);
    let batch = store.archive_pending(100, 1_000, 64 << 20).await.unwrap();
    assert!(batch.more, "the rest wait");
    assert_eq!(batch.entries.len(), 32);
    for entry in &batch.entries {
        let job = entry.job.found().unwrap();
        assert_eq!((job.log.len(), job.log_lines), (1_000, 1_000));
    }
    // The caps apply as the log is read: lines, and bytes ("a line" is 6 bytes).
    let one = store.archive_pending(1, 10, 64 << 20).await.unwrap();
    assert_eq!(one.entries[0].job.found().unwrap().log.len(), 10);
    let capped = store.archive_pending(1, 1_000, 600).await.unwrap();
    assert_eq!(capped.entries[0].job.found().unwrap().log.len(), 100);
}

#[tokio::test]
async fn a_database_error_that_is_not_the_rows_fault_keeps_the_batch_and_a_damaged_record_does_not_block_it()
 {
    let redis = TestRedis::start().await;
    let pg = TestPostgres::start().await;
    let server = node(&redis, &pg, FAST).await;
    let mut client = server.client().await;
    wait_archived(&pg, 0).await;
    let first = schedule_ok(&mut client, noop("first", &[])).await;
    wait_archived(&pg, 1).await;
    // The table goes away for a while (an operator's migration, a restore): every insert
    // fails with 42P01, which says nothing about the jobs. They wait; none is given up.
    let db = pg.client().await;
    db.batch_execute("ALTER TABLE job_history RENAME TO job_history_away")
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let job = schedule_ok(&mut client, noop(&format!("{i}"), &[])).await;
        wait_state(&mut client, &job.id, JobState::Succeeded).await;
        ids.push(job.id);
    }
    // A damaged record in the outbox (a state no version wrote) leaves it unarchived, said
    // loudly, while the three real jobs wait for the table.
    let prefix = "jobhost:{jobhost}:";
    redis.cli(&["HSET", &format!("{prefix}job:damaged"), "state", "BOGUS"]);
    redis.cli(&["ZADD", &format!("{prefix}archive"), "1", "damaged"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let store = redis.store().await;
    assert_eq!(
        store.archive_backlog().await.unwrap().0,
        3,
        "nothing given up"
    );
    let ttl: i64 = redis
        .cli(&["PTTL", &format!("{prefix}job:damaged")])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 0, "the damaged record expires: {ttl}");
    db.batch_execute("ALTER TABLE job_history_away RENAME TO job_history")
        .await
        .unwrap();
    wait_archived(&pg, 4).await;
    wait_outbox_empty(&store).await;
    let rows = pg.archived_ids().await;
    let mut want = ids;
    want.push(first.id);
    want.sort();
    assert_eq!(rows, want);
    let seen = eventually(Duration::from_secs(5), || {
        server
            .log()
            .contains("a finished job's record cannot be read")
    })
    .await;
    assert!(seen.is_some(), "{}", server.log());
    let (_, body) = http_json(&server, "/metrics").await;
    let metrics = body.as_str().unwrap_or_default();
    assert!(
        metrics.contains("jobhost_history_refused_total 1"),
        "{metrics}"
    );
}
