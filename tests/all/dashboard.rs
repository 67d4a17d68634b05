//! The dashboard (`GET /`) in a real headless Chromium, driven over the DevTools protocol
//! (`tests/common/browser.rs`), against a real `jobhost serve` and Redis.
//!
//! A job scheduled over gRPC appears in the page and turns SUCCEEDED without a reload; its
//! detail shows its spec, output, attempt and live log; the node, the queue and the loaded
//! plugin are listed; a rejected plugin file shows its reason; with the network cut (a proxy
//! between browser and server drops every connection) the badge says "disconnected" and the
//! page reconnects by itself once it is back; the badge says "disconnected" once the server
//! is gone. A screenshot is saved to
//! `target/test-artifacts/dashboard.png` (under `$CARGO_TARGET_DIR` when set).
//!
//! With bearer tokens configured (`[auth.tokens]`, a viewer and an admin), the page shows a
//! sign-in form and no data; a wrong token keeps it locked with the server's message; the
//! viewer token (kept in sessionStorage only) shows jobs scheduled over gRPC (with the admin
//! token) and their live updates and log, all without a reload; Cancel as a viewer shows the
//! server's PERMISSION_DENIED message and leaves the job alone; a rate-limited page says
//! "slow down" and gets its data once allowed again; "Sign out" locks it again. Its sign-in
//! state is saved to `target/test-artifacts/dashboard-signin.png`, the viewer's refused
//! cancel to `dashboard-viewer.png`.
//!
//! With the job history on (a real PostgreSQL, `common::TestPostgres`), the History tab
//! lists the archived jobs newest finished first, as `GET /v1/history` orders them, with the
//! API's values as text (a name that is markup stays text); each filter (type, state,
//! label, submitter, finished from/before) narrows it to exactly its jobs, or to the
//! empty-state message; a bad label is refused in the page and a bad page size with the
//! server's message; two a page shows "More", which appends the last job and goes away; a
//! row opens a job Redis has forgotten, its detail, attempt and log read back from the
//! history and marked "archived"; with PostgreSQL stopped a search says the history is
//! unavailable. On a node without a history the tab says it is off (409). Its screenshot is
//! `dashboard-history.png`.
//!
//! Needs Chromium: `just test` installs Debian's `chromium` when it is missing. Without
//! one this test fails (it does not skip).

use crate::common;
use crate::common::browser;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use browser::Browser;
use common::server::{Server, schedule_ok, with_token};
use common::{TestPostgres, TestRedis, install_bytes};
use jobhost_proto::scheduler::job_scheduler_client::JobSchedulerClient;
use jobhost_proto::scheduler::{
    CancelJobRequest, GetJobRequest, Job, JobState, ScheduleJobRequest,
};
use serde_json::{Value, json};
use tonic::transport::Channel;

/// The job's display name: markup, to show that the page treats data as text.
const NAME: &str = "<img src=x onerror=\"window.__xss = 1\">greet-ada";

/// Polls in the page give up after this long.
const LIMIT: Duration = Duration::from_secs(30);

/// The viewer's token (`[auth.tokens.ops]`), typed into the page.
const VIEWER_TOKEN: &str = "dash-viewer-token-0123456789abcd";
/// The admin's token (`[auth.tokens.deploy]`), for the test's own gRPC calls.
const ADMIN_TOKEN: &str = "dash-admin-token-0123456789abcde";

/// One browser test at a time: two Chromiums and two servers at once on a small machine
/// would make the timings these tests rely on (a row seen before its job runs) flaky.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where CI picks up test artifacts: `<target dir>/test-artifacts`.
fn artifacts_dir() -> PathBuf {
    let workspace = crate::common::workspace();
    let workspace = workspace.as_path();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let target = if target.is_relative() {
        workspace.join(target)
    } else {
        target
    };
    target.join("test-artifacts")
}

/// A TCP forwarder between the browser and the server, to cut the network: [`Proxy::cut`]
/// drops every open connection and refuses new ones until [`Proxy::restore`]. (DevTools'
/// offline emulation leaves an open EventSource alone.)
struct Proxy {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    /// Bumped by `cut`: every forwarding task ends when it changes.
    cuts: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cuts, _) = tokio::sync::watch::channel(0);
        let task = tokio::spawn({
            let (up, cuts) = (up.clone(), cuts.clone());
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropped: the browser sees the connection close
                    }
                    let mut cut = cuts.subscribe();
                    let target = target.clone();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            }
        });
        Proxy {
            addr,
            up,
            cuts,
            task,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A JavaScript string literal for `s`.
fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Waits until `expression` is truthy in the page; on timeout saves a screenshot next to
/// the real one and fails with what the page showed.
async fn wait(browser: &mut Browser, what: &str, expression: &str) -> (Value, Duration) {
    match browser.wait_for(expression, LIMIT).await {
        Ok(found) => found,
        Err(last) => {
            let shot = artifacts_dir().join("dashboard-failure.png");
            browser.screenshot(&shot).await;
            let text = browser.eval("document.body.innerText.slice(0, 4000)").await;
            panic!(
                "{what}: not so after {LIMIT:?} (last value {last}); screenshot in {}\n\
                 page text:\n{}\n{}",
                shot.display(),
                text.as_str().unwrap_or_default(),
                browser.diagnostics()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_a_job_live_and_shows_nodes_and_plugins() {
    let _one = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    // The browser first: without one the test fails at once, saying how to get it.
    let mut browser = Browser::launch(1440, 1000).await;
    let launched = started.elapsed();

    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["hello"]).await;
    // A broken plugin file, dropped into the watched folder: rejected with its reason.
    install_bytes(&server.plugins_dir(), "broken", b"this is not WebAssembly");
    let served = started.elapsed();

    // The browser reaches the server through a proxy the test can cut.
    let proxy = Proxy::start(server.http_addr.clone()).await;
    let url = format!("http://{}/", proxy.addr);
    browser.goto(&url).await;
    let loaded = browser
        .eval("!!document.querySelector('[data-testid=app]') && document.title")
        .await;
    assert_eq!(loaded, "jobhost", "GET / is not the dashboard");
    assert_eq!(browser.eval("window.__loads").await, 1);
    let load_events = browser.event_count("Page.loadEventFired");
    // A reload would lose this.
    browser.eval("window.__testMarker = 'still here'").await;
    let page_loaded = started.elapsed();

    let (_, to_live) = wait(
        &mut browser,
        "the connection badge says live",
        "document.querySelector('[data-testid=conn-status]').dataset.state === 'connected'",
    )
    .await;

    // Delayed a little, so the row is seen before it runs and must change in place.
    let run_at = SystemTime::now() + Duration::from_secs(3);
    let mut client = server.client().await;
    let mut request = ScheduleJobRequest {
        name: NAME.into(),
        job_type: "hello".into(),
        spec: r#"{"name": "Ada"}"#.into(),
        run_at: Some(run_at.into()),
        ..Default::default()
    };
    request.labels.insert("suite".into(), "dashboard".into());
    let job = client
        .schedule_job(request)
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let id = js(&job.id);
    let row = format!(
        "Array.from(document.querySelectorAll('[data-testid=job-row]'))\
         .find(r => r.dataset.jobId === {id})"
    );
    let state = format!("({row})?.querySelector('[data-testid=job-state]').textContent");

    let (first_state, to_row) = wait(&mut browser, "the job's row appears", &state).await;
    let (_, to_done) = wait(
        &mut browser,
        "the job's state turns SUCCEEDED",
        &format!("{state} === 'SUCCEEDED'"),
    )
    .await;
    let to_done = to_row + to_done;
    assert_ne!(
        first_state, "SUCCEEDED",
        "the row should have been seen before the job ran (run_at is 3 s out)"
    );
    let cells = browser
        .eval(&format!(
            "(r => ['job-type', 'job-attempts', 'job-duration']\
             .map(t => r.querySelector(`[data-testid=${{t}}]`).textContent))({row})"
        ))
        .await;
    assert_eq!(cells[0], "hello");
    // Data is text, never markup.
    let name = browser
        .eval(&format!(
            "(r => [r.querySelector('[data-testid=job-name]').textContent, \
             !!document.querySelector('[data-testid=jobs-body] img'), \
             window.__xss === undefined])({row})"
        ))
        .await;
    assert_eq!(name, serde_json::json!([NAME, false, true]));
    assert!(
        cells[1].as_str().unwrap().starts_with("1 / "),
        "attempts: {cells}"
    );
    assert_ne!(cells[2], "–", "a finished job has a duration: {cells}");

    // No navigation happened: same document, same load count.
    assert_eq!(browser.eval("window.__loads").await, 1);
    assert_eq!(browser.eval("window.__testMarker").await, "still here");
    assert_eq!(browser.event_count("Page.loadEventFired"), load_events);

    // The rejected plugin shows why; the loaded one its job type.
    let (reason, _) = wait(
        &mut browser,
        "the broken plugin shows its rejection",
        "document.querySelector('[data-testid=plugin-row][data-plugin-id=broken] \
         [data-testid=plugin-rejection]')?.textContent",
    )
    .await;
    assert!(
        reason.as_str().unwrap().contains("not a WebAssembly file"),
        "rejection shown: {reason}"
    );
    let plugin = browser
        .eval(
            "(p => p && [p.querySelector('[data-testid=plugin-status]').textContent, \
             p.querySelector('[data-testid=plugin-job-types]').textContent])\
             (document.querySelector('[data-testid=plugin-row][data-plugin-id=hello]'))",
        )
        .await;
    assert_eq!(plugin, serde_json::json!(["loaded", "hello"]));
    let broken_status = browser
        .eval(
            "document.querySelector('[data-testid=plugin-row][data-plugin-id=broken] \
             [data-testid=plugin-status]').textContent",
        )
        .await;
    assert_eq!(broken_status, "rejected");

    let banner = browser
        .eval("document.querySelector('[data-testid=rejected-banner]:not([hidden])')?.textContent")
        .await;
    assert!(
        banner.as_str().unwrap_or_default().contains("broken"),
        "banner: {banner}"
    );

    // The node serving it, with its load and heartbeat; the queue of its type.
    let node = browser
        .eval(
            "(n => n && ['node-job-types', 'node-load', 'node-heartbeat']\
             .map(t => n.querySelector(`[data-testid=${t}]`).textContent))\
             (document.querySelector('[data-testid=node-row]'))",
        )
        .await;
    assert_eq!(node[0], "hello", "node: {node}");
    assert!(
        node[1].as_str().unwrap().contains(" / "),
        "node load: {node}"
    );
    assert!(
        node[2].as_str().unwrap().ends_with(" ago"),
        "heartbeat: {node}"
    );
    let queue = browser
        .eval(
            "document.querySelector('[data-testid=queue-row][data-type=hello] \
             [data-testid=queue-depth]')?.textContent",
        )
        .await;
    assert_eq!(queue, "0");

    // Its detail, opened with a real click: spec, output, the attempt, and the log that
    // streams from /v1/jobs/{id}/logs until it ends.
    let click_at = Instant::now();
    browser
        .click(&format!(
            "[data-testid=job-row][data-job-id=\"{}\"]",
            job.id
        ))
        .await;
    let detail = "document.querySelector('[data-testid=job-detail]:not([hidden])')";
    wait(
        &mut browser,
        "the detail panel shows the job",
        &format!(
            "{detail}?.dataset.jobId === {id} && \
             {detail}.querySelector('[data-testid=detail-state]').textContent === 'SUCCEEDED'"
        ),
    )
    .await;
    let (log_state, _) = wait(
        &mut browser,
        "the job's log ends and its attempts load",
        &format!(
            "{detail}.querySelectorAll('[data-testid=history-row]').length > 0 && \
             document.querySelector('[data-testid=log-status]').dataset.state"
        ),
    )
    .await;
    let to_log_end = click_at.elapsed();
    assert_eq!(log_state, "SUCCEEDED");
    let shown = browser
        .eval(&format!(
            "(d => ({{spec: d.querySelector('[data-testid=detail-spec]').textContent, \
             output: d.querySelector('[data-testid=detail-output]').textContent, \
             history: Array.from(d.querySelectorAll('[data-testid=history-row]'))\
               .map(r => r.textContent), \
             log: Array.from(d.querySelectorAll('[data-testid=log-line]'))\
               .map(l => l.textContent)}}))({detail})"
        ))
        .await;
    assert!(shown["spec"].as_str().unwrap().contains("Ada"), "{shown}");
    assert!(
        shown["output"].as_str().unwrap().contains("hello, Ada"),
        "{shown}"
    );
    let history = shown["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{shown}");
    assert!(
        history[0].as_str().unwrap().contains("succeeded"),
        "{shown}"
    );
    let log = shown["log"].as_array().unwrap();
    assert!(
        log.iter()
            .any(|l| l.as_str().unwrap().contains("greeting Ada (attempt 1)")),
        "log lines: {shown}"
    );
    // Selecting a job changes only the fragment.
    assert_eq!(
        browser.eval("location.hash").await,
        format!("#job={}", job.id)
    );
    assert_eq!(browser.eval("window.__loads").await, 1);
    assert_eq!(browser.event_count("Page.loadEventFired"), load_events);

    // A Python plugin dropped in compiles for seconds (the test server caches nothing): the
    // dashboard shows it compiling, then loaded.
    common::install(&server.plugins_dir(), &["hello-py"]);
    let py = "document.querySelector('[data-testid=plugin-row][data-plugin-id=hello-py] \
              [data-testid=plugin-status]')?.textContent";
    wait(
        &mut browser,
        "hello-py compiling",
        &format!("{py} === 'compiling'"),
    )
    .await;
    let compiling_count = browser
        .eval("document.getElementById('plugins-count').textContent")
        .await;
    assert!(
        compiling_count
            .as_str()
            .unwrap_or_default()
            .contains("1 compiling"),
        "{compiling_count}"
    );
    // Compiling 18 MiB takes seconds alone, longer beside other tests.
    let loaded = browser
        .wait_for(&format!("{py} === 'loaded'"), Duration::from_secs(180))
        .await;
    assert!(
        loaded.is_ok(),
        "hello-py never shown loaded: {:?}",
        loaded.err()
    );

    let shot = artifacts_dir().join("dashboard.png");
    browser.screenshot(&shot).await;

    // The network drops: "disconnected" while it is down, live again once it is back,
    // still without a reload.
    let badge = "document.querySelector('[data-testid=conn-status]')";
    let offline_at = Instant::now();
    proxy.cut();
    wait(
        &mut browser,
        "the badge says disconnected while offline",
        &format!("{badge}.dataset.state === 'disconnected'"),
    )
    .await;
    let to_offline = offline_at.elapsed();
    let before = browser.eval("window.__snapshots").await;
    let online_at = Instant::now();
    proxy.restore();
    wait(
        &mut browser,
        "the page reconnects and gets snapshots again",
        &format!("{badge}.dataset.state === 'connected' && window.__snapshots > {before}"),
    )
    .await;
    let to_reconnect = online_at.elapsed();
    assert_eq!(browser.eval("window.__loads").await, 1);
    assert_eq!(browser.event_count("Page.loadEventFired"), load_events);

    // Server gone: the badge says so (and the page keeps its last data).
    let snapshots = browser.eval("window.__snapshots").await;
    drop(server);
    let down_at = Instant::now();
    wait(
        &mut browser,
        "the badge says disconnected",
        &format!("{badge}.dataset.state === 'disconnected'"),
    )
    .await;
    let to_disconnected = down_at.elapsed();
    let still_there = browser.eval(&format!("!!({row})")).await;
    assert_eq!(
        still_there,
        Value::Bool(true),
        "the last data stays on screen"
    );

    assert!(
        browser.page_errors().is_empty(),
        "the page threw: {:?}",
        browser.page_errors()
    );
    eprintln!(
        "dashboard: chromium up in {launched:.2?}, redis + server in {:.2?}, page loaded at \
         {page_loaded:.2?}, live {to_live:.2?} later; after ScheduleJob (run_at +3 s) the row \
         showed in {to_row:.2?} (as {first_state}) and SUCCEEDED in {to_done:.2?}; detail and \
         log end {to_log_end:.2?} after the click; offline: disconnected badge in \
         {to_offline:.2?}, live again {to_reconnect:.2?} after going online; disconnected badge \
         {to_disconnected:.2?} after the server stopped; {snapshots} snapshots; screenshot {}; \
         total {:.2?}",
        served - launched,
        shot.display(),
        started.elapsed()
    );
    browser.close().await;
}

/// Schedules a `hello` job greeting `name` as the admin, `delay` from now.
async fn schedule_as_admin(
    client: &mut JobSchedulerClient<Channel>,
    name: &str,
    delay: Option<Duration>,
) -> Job {
    let request = ScheduleJobRequest {
        name: name.into(),
        job_type: "hello".into(),
        spec: json!({ "name": name }).to_string(),
        run_at: delay.map(|d| (SystemTime::now() + d).into()),
        ..Default::default()
    };
    client
        .schedule_job(with_token(request, ADMIN_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap()
}

/// The state shown in job `id`'s row (null while there is no such row).
fn row_state(id: &str) -> String {
    format!(
        "Array.from(document.querySelectorAll('[data-testid=job-row]'))\
         .find(r => r.dataset.jobId === {})?.querySelector('[data-testid=job-state]').textContent",
        js(id)
    )
}

/// What the page shows while locked: the sign-in form up, the data hidden and empty.
const LOCKED_VIEW: &str = "({\
    signin: !document.querySelector('[data-testid=signin]').hidden, \
    content: !document.querySelector('[data-testid=content]').hidden, \
    badge: document.querySelector('[data-testid=conn-status]').dataset.state, \
    rows: document.querySelectorAll('[data-testid=job-row], [data-testid=node-row], \
      [data-testid=plugin-row], [data-testid=queue-row]').length, \
    signout: !document.querySelector('[data-testid=signout]').hidden, \
    token: sessionStorage.getItem('jobhost.token')})";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_the_dashboard_signs_in_and_a_viewer_cannot_cancel() {
    let _one = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let mut browser = Browser::launch(1440, 1000).await;
    let redis = TestRedis::start().await;
    // A viewer for the browser, an admin for the test's own gRPC calls; a slow rate limit
    // with a big burst, so that only the test's own flood runs it dry.
    let config = "[auth.tokens.ops]\nrole = \"viewer\"\ntoken = \"env:DASH_VIEWER_TOKEN\"\n\
                  [auth.tokens.deploy]\nrole = \"admin\"\ntoken = \"env:DASH_ADMIN_TOKEN\"\n\
                  [api]\nrate_limit_per_sec = 0.5\nrate_limit_burst = 40\n";
    let server = Server::start_with_token(
        &redis.url(),
        &["hello"],
        config,
        &[
            ("DASH_VIEWER_TOKEN", VIEWER_TOKEN),
            ("DASH_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
        ADMIN_TOKEN,
    )
    .await;
    let mut admin = server.client().await;
    // A job from before anyone signed in: the locked page must not show it.
    let early = schedule_as_admin(&mut admin, "Grace", None).await;

    browser.goto(&format!("http://{}/", server.http_addr)).await;
    let load_events = browser.event_count("Page.loadEventFired");
    browser.eval("window.__testMarker = 'still here'").await;

    // Locked: the form, with a labelled input (focused) and an explanation; no data.
    wait(
        &mut browser,
        "the sign-in form shows",
        "document.querySelector('[data-testid=conn-status]').dataset.state === 'locked' && \
         !document.querySelector('[data-testid=signin]').hidden",
    )
    .await;
    let form = browser
        .eval(
            "(i => [i.labels[0]?.textContent, i.type, document.activeElement === i, \
             document.querySelector('[data-testid=signin-submit]').textContent, \
             document.querySelector('[data-testid=signin-error]').hidden])\
             (document.querySelector('[data-testid=signin-token]'))",
        )
        .await;
    assert_eq!(
        form,
        json!(["Bearer token", "password", true, "Sign in", true])
    );
    let help = browser
        .eval("document.querySelector('[data-testid=signin]').textContent")
        .await;
    let help = help.as_str().unwrap();
    assert!(
        help.contains("auth.tokens") && help.contains("client certificate"),
        "the form explains what to enter: {help}"
    );
    // Nothing came through, not even after a while (no retry loop fetching data).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let locked = json!({"signin": true, "content": false, "badge": "locked", "rows": 0,
                        "signout": false, "token": null});
    assert_eq!(browser.eval(LOCKED_VIEW).await, locked);
    assert_eq!(browser.eval("window.__snapshots").await, 0);
    let text = browser.eval("document.body.innerText").await;
    assert!(
        !text.as_str().unwrap().contains(&early.id[..8]),
        "the locked page shows a job: {text}"
    );

    // A wrong token: still locked, with the server's own message; nothing kept.
    browser
        .type_into(
            "[data-testid=signin-token]",
            "not-the-right-token-0123456789ab",
        )
        .await;
    browser.click("[data-testid=signin-submit]").await;
    let (refused, _) = wait(
        &mut browser,
        "a wrong token is refused",
        "(e => !e.hidden && e.textContent)(document.querySelector('[data-testid=signin-error]'))",
    )
    .await;
    assert!(
        refused.as_str().unwrap().contains("invalid bearer token"),
        "the server's message: {refused}"
    );
    assert_eq!(browser.eval(LOCKED_VIEW).await, locked);
    assert_eq!(browser.eval("window.__snapshots").await, 0);
    let signin_shot = artifacts_dir().join("dashboard-signin.png");
    browser.screenshot(&signin_shot).await;

    // The viewer's token, submitted with Enter: live, without a reload; the token is in
    // sessionStorage only.
    let signin_at = Instant::now();
    browser
        .type_into("[data-testid=signin-token]", VIEWER_TOKEN)
        .await;
    browser.press("Enter").await;
    wait(
        &mut browser,
        "the viewer is signed in and the page is live",
        "document.querySelector('[data-testid=conn-status]').dataset.state === 'connected' && \
         document.querySelector('[data-testid=signin]').hidden && \
         !document.querySelector('[data-testid=content]').hidden",
    )
    .await;
    let to_live = signin_at.elapsed();
    let stored = browser
        .eval(
            "[sessionStorage.getItem('jobhost.token'), localStorage.length, document.cookie, \
             !document.querySelector('[data-testid=signout]').hidden, \
             document.querySelector('[data-testid=signin-token]').value]",
        )
        .await;
    assert_eq!(stored, json!([VIEWER_TOKEN, 0, "", true, ""]));
    wait(
        &mut browser,
        "the job from before the sign-in shows, SUCCEEDED",
        &format!("{} === 'SUCCEEDED'", row_state(&early.id)),
    )
    .await;

    // A job scheduled now (to run in 3 s) appears and changes in place.
    let live = schedule_as_admin(&mut admin, "Ada", Some(Duration::from_secs(3))).await;
    let (first_state, _) = wait(
        &mut browser,
        "the new job's row appears",
        &row_state(&live.id),
    )
    .await;
    assert_ne!(
        first_state, "SUCCEEDED",
        "the row should show before the job runs"
    );
    wait(
        &mut browser,
        "the new job turns SUCCEEDED",
        &format!("{} === 'SUCCEEDED'", row_state(&live.id)),
    )
    .await;
    // Its detail and log, over the token too.
    browser
        .click(&format!(
            "[data-testid=job-row][data-job-id=\"{}\"]",
            live.id
        ))
        .await;
    let detail = "document.querySelector('[data-testid=job-detail]:not([hidden])')";
    let log_ended = format!(
        "{detail}?.dataset.jobId === {} && \
         {detail}.querySelectorAll('[data-testid=history-row]').length === 1 && \
         document.querySelector('[data-testid=log-status]').dataset.state === 'SUCCEEDED'",
        js(&live.id)
    );
    wait(&mut browser, "the job's detail and log load", &log_ended).await;
    // Who submitted it: the admin's token, by name.
    let fields = browser
        .eval("document.querySelector('[data-testid=detail-fields]').textContent")
        .await;
    assert!(
        fields
            .as_str()
            .unwrap()
            .contains("Submitted bytoken:deploy"),
        "detail fields: {fields}"
    );
    let log = browser
        .eval("Array.from(document.querySelectorAll('[data-testid=log-line]')).map(l => l.textContent)")
        .await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("greeting Ada (attempt 1)")),
        "log lines: {log}"
    );

    // Cancel as a viewer: refused, with the server's message, which stays up; the job is
    // left alone.
    let waiting = schedule_as_admin(&mut admin, "Linus", Some(Duration::from_secs(600))).await;
    wait(
        &mut browser,
        "the waiting job shows SCHEDULED",
        &format!("{} === 'SCHEDULED'", row_state(&waiting.id)),
    )
    .await;
    browser
        .click(&format!(
            "[data-testid=job-row][data-job-id=\"{}\"]",
            waiting.id
        ))
        .await;
    wait(
        &mut browser,
        "the waiting job's detail offers Cancel",
        &format!(
            "{detail}?.dataset.jobId === {} && \
             !document.querySelector('[data-testid=detail-cancel]').hidden",
            js(&waiting.id)
        ),
    )
    .await;
    browser.click("[data-testid=detail-cancel]").await;
    let cancel_error = "document.querySelector('[data-testid=cancel-error]')";
    let (denied, _) = wait(
        &mut browser,
        "the refused cancel shows",
        &format!("(e => !e.hidden && e.textContent)({cancel_error})"),
    )
    .await;
    let expected = format!(
        "role viewer is not allowed to perform operation POST /v1/jobs/{}/cancel (token ops)",
        waiting.id
    );
    assert!(
        denied.as_str().unwrap().contains(&expected),
        "shown: {denied}, expected the server's message: {expected}"
    );
    assert_eq!(
        browser.eval(&format!("{cancel_error}.dataset.code")).await,
        "PERMISSION_DENIED"
    );
    let snapshots = browser.eval("window.__snapshots").await.as_u64().unwrap();
    wait(
        &mut browser,
        "two more snapshots",
        &format!("window.__snapshots >= {}", snapshots + 2),
    )
    .await;
    let still = browser
        .eval(&format!(
            "[!{cancel_error}.hidden, \
             document.querySelector('[data-testid=detail-state]').textContent]"
        ))
        .await;
    assert_eq!(still, json!([true, "SCHEDULED"]), "the refusal stays shown");
    browser
        .screenshot(&artifacts_dir().join("dashboard-viewer.png"))
        .await;
    let job = admin
        .get_job(with_token(
            GetJobRequest {
                job_id: waiting.id.clone(),
            },
            ADMIN_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.state(), JobState::Scheduled);
    assert!(!job.cancel_requested, "a viewer's cancel went through");

    // Rate limited: the test runs the viewer's allowance dry (0.5 a second, 40 at once),
    // then opens a job: the page says "slow down" and gets it once allowed again.
    let statuses = browser
        .eval(
            "Promise.all(Array.from({length: 60}, () => fetch('/v1/overview', {headers: \
             {Authorization: 'Bearer ' + sessionStorage.getItem('jobhost.token')}})\
             .then(r => r.status)))",
        )
        .await;
    assert!(
        statuses.as_array().unwrap().contains(&json!(429)),
        "60 requests at once should exceed a burst of 40: {statuses}"
    );
    let limited_at = Instant::now();
    browser
        .click(&format!(
            "[data-testid=job-row][data-job-id=\"{}\"]",
            live.id
        ))
        .await;
    let (note, _) = wait(
        &mut browser,
        "the slow-down note shows",
        "(e => !e.hidden && e.textContent)(document.querySelector('[data-testid=rate-limited]'))",
    )
    .await;
    let note = note.as_str().unwrap();
    assert!(
        note.contains("Slow down") && note.contains("rate limit"),
        "note: {note}"
    );
    wait(
        &mut browser,
        "the job loads once allowed again and the note goes",
        &format!("({log_ended}) && document.querySelector('[data-testid=rate-limited]').hidden"),
    )
    .await;
    let to_recover = limited_at.elapsed();

    // All of it in one page load.
    assert_eq!(browser.eval("window.__loads").await, 1);
    assert_eq!(browser.eval("window.__testMarker").await, "still here");
    assert_eq!(browser.event_count("Page.loadEventFired"), load_events);

    // Sign out: the token is forgotten and the data goes; the server asks again.
    browser.click("[data-testid=signout]").await;
    wait(
        &mut browser,
        "signing out locks the page",
        "document.querySelector('[data-testid=conn-status]').dataset.state === 'locked'",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(browser.eval(LOCKED_VIEW).await, locked);
    assert_eq!(browser.eval("window.__loads").await, 1);

    assert!(
        browser.page_errors().is_empty(),
        "the page threw: {:?}",
        browser.page_errors()
    );
    eprintln!(
        "dashboard with tokens: live {to_live:.2?} after the sign-in; rate limited, the job \
         loaded {to_recover:.2?} after the click; sign-in screenshot {}; total {:.2?}",
        signin_shot.display(),
        started.elapsed()
    );
    browser.close().await;
}

/// Archive quickly; succeeded jobs leave Redis a second after they are archived, so their
/// detail then comes back from the history.
const HISTORY_CONFIG: &str =
    "[history]\ninterval_ms = 100\n[redis]\nsucceeded_retention_secs = 1\n";

/// A job name that is markup: the history table must show it as text.
const HISTORY_NAME: &str = "<img src=x onerror=\"window.__xss = 2\">ada";

/// What the History view shows: the rows' job ids in order, the message's kind (`""` when
/// hidden) and text, whether "More" shows, whether the view is the one on screen.
const HISTORY_VIEW: &str = "({\
    rows: Array.from(document.querySelectorAll('[data-testid=history-job-row]'))\
      .map(r => r.dataset.jobId), \
    kind: (m => m.hidden ? '' : m.dataset.kind)(document.getElementById('history-message')), \
    message: document.getElementById('history-message').textContent, \
    more: !document.getElementById('history-more').hidden, \
    shown: !document.getElementById('history-panel').hidden && \
      document.getElementById('jobs-panel').hidden && \
      document.getElementById('history-tab').getAttribute('aria-selected') === 'true'})";

/// How many history searches the page has had answered so far.
async fn history_loads(browser: &mut Browser) -> u64 {
    browser
        .eval("window.__historyLoads")
        .await
        .as_u64()
        .unwrap()
}

/// Waits until the page has had more than `before` history searches answered.
async fn wait_history_load(browser: &mut Browser, what: &str, before: u64) {
    wait(browser, what, &format!("window.__historyLoads > {before}")).await;
}

/// Opens the History tab with a real click and waits for its first search to answer.
async fn open_history(browser: &mut Browser) -> Value {
    let before = history_loads(browser).await;
    browser.click("[data-testid=history-tab]").await;
    wait_history_load(browser, "the History view answers its first search", before).await;
    browser.eval(HISTORY_VIEW).await
}

/// Sets the History filters (`history-<key>` = value; the others cleared, 50 a page),
/// clicks Search and waits for the answer; what the view then shows.
async fn history_search(browser: &mut Browser, filters: &[(&str, &str)]) -> Value {
    let filters: serde_json::Map<String, Value> = filters
        .iter()
        .map(|(k, v)| (format!("history-{k}"), json!(v)))
        .collect();
    let before = browser
        .eval(&format!(
            "(f => {{ for (const id of ['history-type', 'history-state', 'history-label', \
             'history-submitted-by', 'history-from', 'history-to']) \
             document.getElementById(id).value = ''; \
             document.getElementById('history-page-size').value = '50'; \
             for (const [id, v] of Object.entries(f)) document.getElementById(id).value = v; \
             return window.__historyLoads; }})({})",
            Value::Object(filters)
        ))
        .await
        .as_u64()
        .unwrap();
    browser.click("[data-testid=history-search]").await;
    wait_history_load(browser, "the history search answers", before).await;
    browser.eval(HISTORY_VIEW).await
}

/// The ids of `rows` (a JSON array of strings), sorted.
fn sorted_ids(rows: &Value) -> Vec<String> {
    let mut ids: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// `GET path` on the server's HTTP API: status and JSON body.
async fn get_json(server: &Server, path: &str) -> (u16, Value) {
    let (status, body) =
        common::receiver::http_request(&server.http_addr, "GET", path, &[], b"").await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_view_searches_pages_and_opens_archived_jobs() {
    let _one = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let mut browser = Browser::launch(1440, 1000).await;
    let redis = TestRedis::start().await;
    let mut pg = TestPostgres::start().await;
    let pg_url = pg.url();
    let server = Server::start_with_env(
        &redis.url(),
        &["hello", "noop"],
        HISTORY_CONFIG,
        &[("JOBHOST_HISTORY_URL", &pg_url)],
    )
    .await;
    let mut client = server.client().await;

    // Two types, two teams, three final states... of four jobs: Ada (hello, red, a name
    // that is markup), Grace (hello, blue), a noop (red), and a noop (red) cancelled before
    // it ran.
    let job = |job_type: &str, name: &str, spec: &str, team: &str| {
        let mut request = ScheduleJobRequest {
            name: name.into(),
            job_type: job_type.into(),
            spec: spec.into(),
            ..Default::default()
        };
        request.labels.insert("team".into(), team.into());
        request
    };
    let ada = schedule_ok(
        &mut client,
        job("hello", HISTORY_NAME, r#"{"name": "Ada"}"#, "red"),
    )
    .await;
    let grace = schedule_ok(
        &mut client,
        job("hello", "grace", r#"{"name": "Grace"}"#, "blue"),
    )
    .await;
    let noop = schedule_ok(&mut client, job("noop", "noop", "{}", "red")).await;
    let mut later = job("noop", "later", "{}", "red");
    later.run_at = Some((SystemTime::now() + Duration::from_secs(600)).into());
    let cancelled = schedule_ok(&mut client, later).await;
    client
        .cancel_job(CancelJobRequest {
            job_id: cancelled.id.clone(),
            reason: "not needed".into(),
        })
        .await
        .unwrap();
    let all = {
        let mut ids = vec![
            ada.id.clone(),
            grace.id.clone(),
            noop.id.clone(),
            cancelled.id.clone(),
        ];
        ids.sort();
        ids
    };
    let archived_at = Instant::now();
    while pg.archived().await < 4 {
        assert!(
            archived_at.elapsed() < LIMIT,
            "{} of 4 jobs archived",
            pg.archived().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let to_archived = archived_at.elapsed();

    browser.goto(&format!("http://{}/", server.http_addr)).await;
    wait(
        &mut browser,
        "the page is live",
        "document.querySelector('[data-testid=conn-status]').dataset.state === 'connected'",
    )
    .await;

    // The History tab: the newest finished jobs at once, all four, the Live panels hidden.
    let first = open_history(&mut browser).await;
    assert_eq!(first["shown"], true, "{first}");
    assert_eq!(sorted_ids(&first["rows"]), all, "{first}");
    assert_eq!(first["kind"], "", "{first}");
    assert_eq!(first["more"], false, "{first}");
    let overview_hidden = browser
        .eval("document.querySelector('[data-testid=overview]').hidden")
        .await;
    assert_eq!(
        overview_hidden, true,
        "the Live panels leave the History view"
    );

    // Its rows: the API's values, as text (the name is markup, shown as such).
    let (status, api) = get_json(&server, "/v1/history").await;
    assert_eq!(status, 200, "{api}");
    let api_ids: Vec<&str> = api["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        first["rows"].as_array().unwrap(),
        &api_ids,
        "newest finished first, as the API orders them"
    );
    let api_ada = api["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == ada.id.as_str())
        .unwrap()
        .clone();
    let ada_node = api_ada["history"][0]["node"].as_str().unwrap().to_owned();
    assert!(!ada_node.is_empty(), "{api_ada}");
    let submitter = api_ada["submitted_by"].as_str().unwrap().to_owned();
    let row = |id: &str| {
        format!(
            "(r => r && {{state: r.querySelector('[data-testid=history-job-state]').textContent, \
             type: r.querySelector('[data-testid=history-job-type]').textContent, \
             finished: r.querySelector('[data-testid=history-job-finished]').textContent, \
             node: r.querySelector('[data-testid=history-job-node]').title, \
             by: r.querySelector('[data-testid=history-job-submitted-by]').textContent, \
             name: r.querySelector('[data-testid=history-job-name]').textContent, \
             id: r.querySelector('[data-testid=history-job-id]').title}})\
             (document.querySelector('[data-testid=history-job-row][data-job-id=\"{id}\"]'))"
        )
    };
    let shown = browser.eval(&row(&ada.id)).await;
    assert_eq!(shown["state"], "SUCCEEDED", "{shown}");
    assert_eq!(shown["type"], "hello", "{shown}");
    assert_eq!(
        shown["node"],
        ada_node.as_str(),
        "the last attempt's node: {shown}"
    );
    assert_eq!(shown["by"], submitter.as_str(), "{shown}");
    assert_eq!(shown["name"], HISTORY_NAME, "{shown}");
    assert_eq!(shown["id"], ada.id.as_str(), "{shown}");
    assert_ne!(shown["finished"], "–", "{shown}");
    let markup = browser
        .eval(
            "[!!document.querySelector('[data-testid=history-jobs] img'), \
             window.__xss === undefined]",
        )
        .await;
    assert_eq!(markup, json!([false, true]), "data is text, never markup");
    let shown = browser.eval(&row(&cancelled.id)).await;
    assert_eq!(shown["state"], "CANCELLED", "{shown}");
    assert_eq!(shown["node"], "", "it never ran: no node: {shown}");

    // Filters: each one narrows the search to exactly its jobs.
    let by_type = history_search(&mut browser, &[("type", "noop")]).await;
    assert_eq!(
        sorted_ids(&by_type["rows"]),
        sorted_ids(&json!([noop.id, cancelled.id])),
        "type=noop: {by_type}"
    );
    let by_state = history_search(&mut browser, &[("state", "CANCELLED")]).await;
    assert_eq!(by_state["rows"], json!([cancelled.id]), "{by_state}");
    let both = history_search(&mut browser, &[("type", "hello"), ("label", "team=red")]).await;
    assert_eq!(both["rows"], json!([ada.id]), "{both}");
    let by_submitter = history_search(&mut browser, &[("submitted-by", &submitter)]).await;
    assert_eq!(sorted_ids(&by_submitter["rows"]), all, "{by_submitter}");
    // Finished before 2000: none, with the empty-state message; from 2000: all of them.
    let before_2000 = history_search(&mut browser, &[("to", "2000-01-01T00:00")]).await;
    assert_eq!(before_2000["rows"], json!([]), "{before_2000}");
    assert_eq!(before_2000["kind"], "empty", "{before_2000}");
    assert!(
        before_2000["message"]
            .as_str()
            .unwrap()
            .contains("No finished job matches"),
        "{before_2000}"
    );
    let since_2000 = history_search(&mut browser, &[("from", "2000-01-01T00:00")]).await;
    assert_eq!(sorted_ids(&since_2000["rows"]), all, "{since_2000}");
    assert_eq!(since_2000["kind"], "", "the message goes: {since_2000}");
    // A bad label is refused in the page; a bad page size by the server, with its message.
    let bad_label = history_search(&mut browser, &[("label", "team")]).await;
    assert_eq!(bad_label["kind"], "invalid", "{bad_label}");
    assert_eq!(bad_label["rows"], json!([]), "{bad_label}");
    assert!(
        bad_label["message"].as_str().unwrap().contains("key=value"),
        "{bad_label}"
    );
    let bad_size = history_search(&mut browser, &[("page-size", "5000")]).await;
    assert_eq!(bad_size["kind"], "invalid", "{bad_size}");
    assert!(
        bad_size["message"]
            .as_str()
            .unwrap()
            .contains("page_size 5000 is over the limit of 1000"),
        "the server's message: {bad_size}"
    );

    // Paging: team=red is three jobs; two a page shows two and "More", which appends the
    // third and goes. The label typed for real, the search sent with Enter.
    let (status, red) = get_json(&server, "/v1/history?label=team%3Dred").await;
    assert_eq!(status, 200, "{red}");
    let red: Vec<Value> = red["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].clone())
        .collect();
    assert_eq!(red.len(), 3, "{red:?}");
    history_search(&mut browser, &[("page-size", "2")]).await;
    browser
        .type_into("[data-testid=history-label]", "team=red")
        .await;
    let before = history_loads(&mut browser).await;
    browser.press("Enter").await;
    wait_history_load(&mut browser, "Enter runs the search", before).await;
    let page1 = browser.eval(HISTORY_VIEW).await;
    assert_eq!(page1["rows"], json!(red[..2]), "{page1}");
    assert_eq!(page1["more"], true, "{page1}");
    let before = history_loads(&mut browser).await;
    browser.click("[data-testid=history-more]").await;
    wait_history_load(&mut browser, "More loads the next page", before).await;
    let page2 = browser.eval(HISTORY_VIEW).await;
    assert_eq!(page2["rows"], json!(red), "appended, in order: {page2}");
    assert_eq!(page2["more"], false, "the last page: {page2}");

    // A row opens the job: Redis has forgotten Ada (succeeded, kept a second after it was
    // archived), so its detail, attempt and log come back from the history, marked so.
    let forgotten = Instant::now();
    loop {
        let (status, body) = get_json(&server, &format!("/v1/jobs/{}", ada.id)).await;
        assert_eq!(status, 200, "{body}");
        if body["archived"] == true {
            break;
        }
        assert!(forgotten.elapsed() < LIMIT, "Ada is still in Redis: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser
        .click(&format!(
            "[data-testid=history-job-row][data-job-id=\"{}\"]",
            ada.id
        ))
        .await;
    let detail = "document.querySelector('[data-testid=job-detail]:not([hidden])')";
    wait(
        &mut browser,
        "the archived job's detail, attempt and log load",
        &format!(
            "{detail}?.dataset.jobId === {} && \
             !document.querySelector('[data-testid=detail-archived]').hidden && \
             {detail}.querySelectorAll('[data-testid=history-row]').length === 1 && \
             document.querySelector('[data-testid=log-status]').dataset.state === 'SUCCEEDED'",
            js(&ada.id)
        ),
    )
    .await;
    let opened = browser
        .eval(&format!(
            "(d => ({{state: d.querySelector('[data-testid=detail-state]').textContent, \
             archived: d.querySelector('[data-testid=detail-archived]').textContent, \
             fields: d.querySelector('[data-testid=detail-fields]').textContent, \
             output: d.querySelector('[data-testid=detail-output]').textContent, \
             cancel: !d.querySelector('[data-testid=detail-cancel]').hidden, \
             log: Array.from(d.querySelectorAll('[data-testid=log-line]'))\
               .map(l => l.textContent), \
             selected: document.querySelector('[data-testid=history-job-row].selected')\
               ?.dataset.jobId}}))({detail})"
        ))
        .await;
    assert_eq!(opened["state"], "SUCCEEDED", "{opened}");
    assert_eq!(opened["archived"], "archived", "{opened}");
    assert!(
        opened["fields"].as_str().unwrap().contains("Archived"),
        "{opened}"
    );
    assert!(
        opened["output"].as_str().unwrap().contains("hello, Ada"),
        "{opened}"
    );
    assert_eq!(
        opened["cancel"], false,
        "a finished job has no Cancel: {opened}"
    );
    assert!(
        opened["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("greeting Ada (attempt 1)")),
        "the archived log: {opened}"
    );
    assert_eq!(opened["selected"], ada.id.as_str(), "{opened}");
    assert_eq!(
        browser.eval("location.hash").await,
        format!("#job={}", ada.id)
    );
    browser
        .screenshot(&artifacts_dir().join("dashboard-history.png"))
        .await;

    // Back to Live and to History again: the results stay, nothing reloads.
    browser.click("[data-testid=live-tab]").await;
    let live = browser
        .eval(
            "[document.getElementById('jobs-panel').hidden, \
             document.getElementById('history-panel').hidden, \
             document.querySelector('[data-testid=overview]').hidden]",
        )
        .await;
    assert_eq!(live, json!([false, true, false]));
    browser.click("[data-testid=history-tab]").await;
    let again = browser.eval(HISTORY_VIEW).await;
    assert_eq!(again["rows"], json!(red), "{again}");
    assert_eq!(again["shown"], true, "{again}");

    // PostgreSQL down: the search says the history is unavailable, with the server's
    // message (a connection the stop cut may fail once otherwise; the next one is refused).
    pg.stop().await;
    let down_at = Instant::now();
    let unavailable = loop {
        let view = history_search(&mut browser, &[]).await;
        if view["kind"] == "unavailable" || down_at.elapsed() > LIMIT {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(unavailable["kind"], "unavailable", "{unavailable}");
    assert_eq!(unavailable["rows"], json!([]), "{unavailable}");
    assert!(
        unavailable["message"]
            .as_str()
            .unwrap()
            .contains("the job history's database cannot be reached"),
        "{unavailable}"
    );

    assert_eq!(browser.eval("window.__loads").await, 1);
    assert!(
        browser.page_errors().is_empty(),
        "the page threw: {:?}",
        browser.page_errors()
    );
    eprintln!(
        "dashboard history: 4 jobs archived in {to_archived:.2?}; total {:.2?}",
        started.elapsed()
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_view_says_when_the_node_has_no_history() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut browser = Browser::launch(1280, 900).await;
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["hello"]).await;
    browser.goto(&format!("http://{}/", server.http_addr)).await;
    wait(
        &mut browser,
        "the page is live",
        "document.querySelector('[data-testid=conn-status]').dataset.state === 'connected'",
    )
    .await;

    let off = open_history(&mut browser).await;
    assert_eq!(off["shown"], true, "{off}");
    assert_eq!(off["kind"], "off", "{off}");
    assert_eq!(off["rows"], json!([]), "{off}");
    assert_eq!(off["more"], false, "{off}");
    let message = off["message"].as_str().unwrap();
    assert!(
        message.contains("The job history is off on this node")
            && message.contains("history.postgres_url"),
        "the page and the server say why: {off}"
    );
    // A search says so again; the live view is unaffected.
    let again = history_search(&mut browser, &[("type", "hello")]).await;
    assert_eq!(again["kind"], "off", "{again}");
    browser.click("[data-testid=live-tab]").await;
    let live = browser
        .eval(
            "[document.getElementById('jobs-panel').hidden, \
             document.getElementById('history-panel').hidden, \
             document.querySelector('[data-testid=conn-status]').dataset.state]",
        )
        .await;
    assert_eq!(live, json!([false, true, "connected"]));
    assert!(
        browser.page_errors().is_empty(),
        "the page threw: {:?}",
        browser.page_errors()
    );
    browser.close().await;
}
