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
//! Needs Chromium: `just test` installs Debian's `chromium` when it is missing. Without
//! one this test fails (it does not skip).

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use browser::Browser;
use common::server::Server;
use common::{TestRedis, install_bytes};
use jobhost::api::proto::ScheduleJobRequest;
use serde_json::Value;

/// The job's display name: markup, to show that the page treats data as text.
const NAME: &str = "<img src=x onerror=\"window.__xss = 1\">greet-ada";

/// Polls in the page give up after this long.
const LIMIT: Duration = Duration::from_secs(30);

/// Where CI picks up test artifacts: `<target dir>/test-artifacts`.
fn artifacts_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
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
        "the job's log ends",
        "document.querySelector('[data-testid=log-status]').dataset.state",
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
