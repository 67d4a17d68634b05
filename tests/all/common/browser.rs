//! A real headless Chromium driven over the Chrome DevTools Protocol (CDP), for tests of
//! the dashboard.
//!
//! [`Browser::launch`] starts Debian's `chromium` (`just chromium` installs it; `just test`
//! does so first) with `--remote-debugging-port=0` and a fresh profile, reads the
//! `DevTools listening on ws://...` line from its stderr, and connects to that browser
//! endpoint with the minimal WebSocket client below (RFC 6455, client side: handshake,
//! masked text frames out, fragmented text in, ping/pong, close). It then opens one page
//! (`Target.createTarget`) and attaches to it with a flattened session
//! (`Target.attachToTarget`, `flatten: true`), so every command for the page goes over the
//! same socket with its `sessionId`.
//!
//! Commands are sent one at a time: [`Cdp::call`] writes a request and reads messages until
//! the answer with its id arrives; events read meanwhile are counted by method and queued
//! for [`Browser::wait_event`], and the page's uncaught exceptions and console messages are
//! kept for diagnostics. There is no background task: nothing happens between calls.
//!
//! The browser runs in its own process group, killed (SIGKILL) when the [`Browser`] drops;
//! [`Browser::close`] asks it to exit first.

use std::collections::{HashMap, VecDeque};
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long one CDP command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Chromium may take to print its DevTools endpoint.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Events kept for [`Browser::wait_event`] (older ones are only counted).
const MAX_QUEUED_EVENTS: usize = 1000;

/// The flags known to work headless in a container without a display, GPU or network.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
];

/// The Chromium binary: `$JOBHOST_TEST_CHROMIUM`, else `chromium` (Debian's package) or
/// `chromium-browser` on `PATH`. Panics, telling how to get one, if there is none: the
/// dashboard test must not pass without a browser.
pub fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("JOBHOST_TEST_CHROMIUM") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "JOBHOST_TEST_CHROMIUM={} is not a file: unset it and run the tests with \
             `just test`, which installs Debian's `chromium` package when it is missing",
            path.display()
        );
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "no Chromium found (looked for `chromium` and `chromium-browser` on PATH and in \
         /usr/bin; JOBHOST_TEST_CHROMIUM may name one): the dashboard test drives a real \
         headless browser. Run the tests with `just test`, which installs Debian's `chromium` \
         package when it is missing (or run `just chromium` once)."
    );
}

/// A headless Chromium with one page open, driven over CDP.
pub struct Browser {
    child: Child,
    cdp: Cdp,
    /// The page's flattened session.
    session: String,
    /// The last lines Chromium wrote to stderr.
    stderr: Arc<Mutex<VecDeque<String>>>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium with a fresh profile and an `about:blank` page of `width`×`height`
    /// CSS pixels.
    pub async fn launch(width: u32, height: u32) -> Browser {
        let binary = chromium();
        let profile = tempfile::tempdir().unwrap();
        let mut command = Command::new(&binary);
        command
            .args(FLAGS)
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0); // the browser and its helpers: one group, killed together
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));

        // A thread drains stderr (a full pipe would stall Chromium), hands over the
        // DevTools endpoint, and keeps the tail for error messages.
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let pipe = child.stderr.take().unwrap();
        let tail = stderr.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.trim().strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.to_owned());
                }
                // Without a system bus (containers, CI) Chromium logs dbus errors: noise.
                if line.contains("dbus") {
                    continue;
                }
                let mut tail = tail.lock().unwrap();
                tail.push_back(line);
                if tail.len() > 40 {
                    tail.pop_front();
                }
            }
        });
        let tail = |stderr: &Arc<Mutex<VecDeque<String>>>| {
            Vec::from(stderr.lock().unwrap().clone()).join("\n")
        };
        let url = match tokio::time::timeout(START_TIMEOUT, rx.recv()).await {
            Ok(Some(url)) => url,
            Ok(None) => {
                kill_group(&mut child);
                panic!(
                    "{} exited before opening DevTools; its stderr:\n{}",
                    binary.display(),
                    tail(&stderr)
                );
            }
            Err(_) => {
                kill_group(&mut child);
                panic!(
                    "{} printed no DevTools endpoint within {START_TIMEOUT:?}; its stderr:\n{}",
                    binary.display(),
                    tail(&stderr)
                );
            }
        };
        let cdp = match Cdp::connect(&url).await {
            Ok(cdp) => cdp,
            Err(e) => {
                kill_group(&mut child);
                panic!("cannot open the DevTools WebSocket {url}: {e}");
            }
        };

        // From here on, dropping `browser` (a panic included) kills Chromium.
        let mut browser = Browser {
            child,
            cdp,
            session: String::new(),
            stderr,
            _profile: profile,
        };
        let target = browser
            .cdp
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await
            .unwrap();
        let attached = browser
            .cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await
            .unwrap();
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        browser.send("Page.enable", json!({})).await;
        browser.send("Runtime.enable", json!({})).await;
        browser
            .send(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
            )
            .await;
        browser
    }

    /// Sends a command to the page; panics (with context) if it fails.
    pub async fn send(&mut self, method: &str, params: Value) -> Value {
        match self.cdp.call(Some(&self.session), method, params).await {
            Ok(result) => result,
            Err(e) => panic!("{method}: {e}\n{}", self.diagnostics()),
        }
    }

    /// Navigates the page to `url` and waits for its load event.
    pub async fn goto(&mut self, url: &str) {
        self.cdp.forget_events("Page.loadEventFired");
        let nav = self.send("Page.navigate", json!({"url": url})).await;
        if let Some(error) = nav.get("errorText").and_then(Value::as_str) {
            panic!("navigating to {url}: {error}\n{}", self.diagnostics());
        }
        self.wait_event("Page.loadEventFired", Duration::from_secs(30))
            .await;
    }

    /// Waits for the next event `method` of the page.
    pub async fn wait_event(&mut self, method: &str, limit: Duration) -> Value {
        match self.cdp.wait_event(&self.session, method, limit).await {
            Ok(event) => event,
            Err(e) => panic!("waiting for {method}: {e}\n{}", self.diagnostics()),
        }
    }

    /// How many events `method` the page has sent since launch.
    pub fn event_count(&self, method: &str) -> usize {
        self.cdp.counts.get(method).copied().unwrap_or(0)
    }

    /// Evaluates `expression` in the page (promises awaited) and returns its value as JSON
    /// (`null` for `undefined`); an exception thrown by it is an error.
    pub async fn try_eval(&mut self, expression: &str) -> Result<Value, String> {
        let params = json!({"expression": expression, "returnByValue": true, "awaitPromise": true});
        let answer = self
            .cdp
            .call(Some(&self.session), "Runtime.evaluate", params)
            .await?;
        if let Some(details) = answer.get("exceptionDetails") {
            let text = details["exception"]["description"]
                .as_str()
                .or(details["text"].as_str())
                .unwrap_or("exception");
            return Err(format!("{expression}: {text}"));
        }
        Ok(answer["result"]
            .get("value")
            .cloned()
            .unwrap_or(Value::Null))
    }

    /// [`Browser::try_eval`], panicking on an error.
    pub async fn eval(&mut self, expression: &str) -> Value {
        match self.try_eval(expression).await {
            Ok(value) => value,
            Err(e) => panic!("{e}\n{}", self.diagnostics()),
        }
    }

    /// Polls `expression` every 100 ms until it is truthy (not null, false, 0 or "") or
    /// `limit` passes; returns its value and how long it took, or the last value.
    pub async fn wait_for(
        &mut self,
        expression: &str,
        limit: Duration,
    ) -> Result<(Value, Duration), Value> {
        let start = Instant::now();
        loop {
            let value = self.eval(expression).await;
            if truthy(&value) {
                return Ok((value, start.elapsed()));
            }
            if start.elapsed() >= limit {
                return Err(value);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the centre of the first element matching the CSS `selector` with real mouse
    /// events (scrolled into view first). Panics if there is none.
    pub async fn click(&mut self, selector: &str) {
        let selector_js = serde_json::to_string(selector).unwrap();
        let centre = self
            .eval(&format!(
                "(() => {{ const el = document.querySelector({selector_js}); if (!el) return null; \
                 el.scrollIntoView({{block: 'center'}}); const r = el.getBoundingClientRect(); \
                 return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
            ))
            .await;
        let Some([x, y]) = serde_json::from_value::<Option<[f64; 2]>>(centre).unwrap() else {
            panic!("nothing to click: {selector}\n{}", self.diagnostics());
        };
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            let mut event = json!({"type": kind, "x": x, "y": y});
            if kind != "mouseMoved" {
                event["button"] = json!("left");
                event["clickCount"] = json!(1);
            }
            self.send("Input.dispatchMouseEvent", event).await;
        }
    }

    /// Focuses the first element matching the CSS `selector`, selects what it holds (so the
    /// text replaces it) and types `text` into it as the keyboard would (`Input.insertText`:
    /// `input` events, no key codes). Panics if there is no such element or it cannot take
    /// the focus (hidden, disabled).
    pub async fn type_into(&mut self, selector: &str, text: &str) {
        let selector_js = serde_json::to_string(selector).unwrap();
        let focused = self
            .eval(&format!(
                "(() => {{ const el = document.querySelector({selector_js}); if (!el) return false; \
                 el.focus(); if (typeof el.select === 'function') el.select(); \
                 return document.activeElement === el; }})()"
            ))
            .await;
        if focused != Value::Bool(true) {
            panic!(
                "cannot type into {selector}: missing or not focusable\n{}",
                self.diagnostics()
            );
        }
        self.send("Input.insertText", json!({"text": text})).await;
    }

    /// Presses and releases `key` on the focused element: `Enter`, `Escape`, `Tab` or a
    /// single printable character.
    pub async fn press(&mut self, key: &str) {
        let (code, key_code, text) = match key {
            "Enter" => ("Enter".to_owned(), 13, "\r".to_owned()),
            "Escape" => ("Escape".to_owned(), 27, String::new()),
            "Tab" => ("Tab".to_owned(), 9, String::new()),
            c if c.chars().count() == 1 => {
                let ch = c.chars().next().unwrap();
                let upper = ch.to_ascii_uppercase();
                (format!("Key{upper}"), upper as u32, c.to_owned())
            }
            other => panic!("press: unsupported key {other:?}"),
        };
        let mut down = json!({
            "type": if text.is_empty() { "rawKeyDown" } else { "keyDown" },
            "key": key,
            "code": code,
            "windowsVirtualKeyCode": key_code,
            "nativeVirtualKeyCode": key_code,
        });
        if !text.is_empty() {
            down["text"] = json!(text);
            down["unmodifiedText"] = json!(text);
        }
        self.send("Input.dispatchKeyEvent", down).await;
        self.send(
            "Input.dispatchKeyEvent",
            json!({"type": "keyUp", "key": key, "code": code,
                   "windowsVirtualKeyCode": key_code, "nativeVirtualKeyCode": key_code}),
        )
        .await;
    }

    /// A PNG of the whole page (beyond the viewport), written to `path` (folders created).
    pub async fn screenshot(&mut self, path: &Path) {
        let metrics = self.send("Page.getLayoutMetrics", json!({})).await;
        let size = &metrics["cssContentSize"];
        let (width, height) = (
            size["width"].as_f64().unwrap_or(1280.0).ceil(),
            size["height"].as_f64().unwrap_or(800.0).ceil(),
        );
        let shot = self
            .send(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
                }),
            )
            .await;
        let png = base64_decode(shot["data"].as_str().unwrap()).expect("screenshot is base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Uncaught exceptions in the page so far.
    pub fn page_errors(&self) -> &[String] {
        &self.cdp.errors
    }

    /// Exceptions, console and Chromium's stderr tail, for failure messages.
    pub fn diagnostics(&self) -> String {
        let last = |v: &[String]| v[v.len().saturating_sub(20)..].join("\n  ");
        format!(
            "page exceptions:\n  {}\npage console:\n  {}\nchromium stderr (tail):\n  {}",
            last(&self.cdp.errors),
            last(&self.cdp.console),
            Vec::from(self.stderr.lock().unwrap().clone()).join("\n  ")
        )
    }

    /// Asks the browser to exit, then makes sure it did.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.cdp.call(None, "Browser.close", json!({})),
        )
        .await;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Drop kills whatever is left of the process group.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// Kills the process group `child` leads (it was started with `process_group(0)`: the
/// browser with its zygotes and renderers) and reaps it.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id())
        && pid > 0
    {
        // kill(1) with a negative pid signals that process group.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{pid}")])
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// JavaScript's truthiness for a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The CDP connection: requests with ids, answers matched to them, events queued.
struct Cdp {
    ws: WebSocket,
    next_id: u64,
    /// Events not yet taken by `wait_event`: (session, method, params).
    events: VecDeque<(Option<String>, String, Value)>,
    /// Every event seen, by method.
    counts: HashMap<String, usize>,
    errors: Vec<String>,
    console: Vec<String>,
}

impl Cdp {
    async fn connect(url: &str) -> std::io::Result<Cdp> {
        Ok(Cdp {
            ws: WebSocket::connect(url).await?,
            next_id: 0,
            events: VecDeque::new(),
            counts: HashMap::new(),
            errors: Vec::new(),
            console: Vec::new(),
        })
    }

    /// Sends `method` (to the browser, or to `session`) and returns its result.
    async fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut request = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            request["sessionId"] = json!(session);
        }
        self.ws
            .send_text(&request.to_string())
            .await
            .map_err(|e| format!("DevTools connection: {e}"))?;
        let answer = tokio::time::timeout(CALL_TIMEOUT, async {
            loop {
                let message = self.read().await?;
                if message["id"].as_u64() == Some(id) {
                    return Ok::<Value, String>(message);
                }
            }
        })
        .await
        .map_err(|_| format!("no answer to {method} within {CALL_TIMEOUT:?}"))??;
        match answer.get("error") {
            Some(error) => Err(format!("{method} failed: {error}")),
            None => Ok(answer["result"].clone()),
        }
    }

    /// Waits for an event `method` of `session`, taking it from the queue first.
    async fn wait_event(
        &mut self,
        session: &str,
        method: &str,
        limit: Duration,
    ) -> Result<Value, String> {
        let matches =
            |e: &(Option<String>, String, Value)| e.0.as_deref() == Some(session) && e.1 == method;
        if let Some(at) = self.events.iter().position(matches) {
            return Ok(self.events.remove(at).unwrap().2);
        }
        tokio::time::timeout(limit, async {
            loop {
                self.read().await?;
                if let Some(at) = self.events.iter().position(matches) {
                    return Ok::<Value, String>(self.events.remove(at).unwrap().2);
                }
            }
        })
        .await
        .map_err(|_| format!("no {method} within {limit:?}"))?
    }

    fn forget_events(&mut self, method: &str) {
        self.events.retain(|e| e.1 != method);
    }

    /// Reads one message; events are recorded before it is returned.
    async fn read(&mut self) -> Result<Value, String> {
        let text = self
            .ws
            .recv_text()
            .await
            .map_err(|e| format!("DevTools connection: {e}"))?;
        let message: Value =
            serde_json::from_str(&text).map_err(|e| format!("bad DevTools message: {e}"))?;
        if let Some(method) = message["method"].as_str() {
            *self.counts.entry(method.to_owned()).or_default() += 1;
            let params = &message["params"];
            match method {
                "Runtime.exceptionThrown" => {
                    let details = &params["exceptionDetails"];
                    let text = details["exception"]["description"]
                        .as_str()
                        .or(details["text"].as_str())
                        .unwrap_or("exception");
                    self.errors.push(text.to_owned());
                }
                "Runtime.consoleAPICalled" => {
                    let args: Vec<String> = params["args"]
                        .as_array()
                        .map(|args| {
                            args.iter()
                                .map(|a| match &a["value"] {
                                    Value::String(s) => s.clone(),
                                    Value::Null => {
                                        a["description"].as_str().unwrap_or("undefined").to_owned()
                                    }
                                    v => v.to_string(),
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let level = params["type"].as_str().unwrap_or("log");
                    self.console.push(format!("{level}: {}", args.join(" ")));
                }
                _ => {}
            }
            let session = message["sessionId"].as_str().map(str::to_owned);
            self.events
                .push_back((session, method.to_owned(), params.clone()));
            if self.events.len() > MAX_QUEUED_EVENTS {
                self.events.pop_front();
            }
        }
        Ok(message)
    }
}

/// A minimal WebSocket client (RFC 6455) over plain TCP: enough for a local DevTools
/// endpoint (`ws://127.0.0.1:PORT/...`).
struct WebSocket {
    stream: BufReader<TcpStream>,
    /// Fragments of a message being received.
    partial: Vec<u8>,
}

/// Largest message accepted (full-page screenshots are a few MiB of base64).
const MAX_MESSAGE: usize = 256 << 20;

impl WebSocket {
    /// Connects and performs the opening handshake, checking `Sec-WebSocket-Accept`.
    async fn connect(url: &str) -> std::io::Result<WebSocket> {
        let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| invalid(format!("not a ws:// URL: {url}")))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let tcp = TcpStream::connect(authority).await?;
        tcp.set_nodelay(true)?;
        let mut stream = BufReader::new(tcp);
        let key = base64_encode(&rand::random::<[u8; 16]>());
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.get_mut().write_all(request.as_bytes()).await?;
        let mut status = String::new();
        stream.read_line(&mut status).await?;
        let mut accept = None;
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await? == 0 {
                return Err(invalid("connection closed during the handshake".into()));
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.trim().eq_ignore_ascii_case("sec-websocket-accept")
            {
                accept = Some(value.trim().to_owned());
            }
        }
        if status.split_whitespace().nth(1) != Some("101") {
            return Err(invalid(format!("handshake refused: {}", status.trim())));
        }
        let digest = ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
        );
        if accept.as_deref() != Some(base64_encode(digest.as_ref()).as_str()) {
            return Err(invalid(format!("bad Sec-WebSocket-Accept: {accept:?}")));
        }
        Ok(WebSocket {
            stream,
            partial: Vec::new(),
        })
    }

    async fn send_text(&mut self, text: &str) -> std::io::Result<()> {
        self.send_frame(0x1, text.as_bytes()).await
    }

    /// One final frame, masked as a client must.
    async fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = rand::random::<[u8; 4]>();
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.get_mut().write_all(&frame).await
    }

    /// The next text (or binary) message, answering pings on the way.
    async fn recv_text(&mut self) -> std::io::Result<String> {
        let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
        loop {
            let mut head = [0u8; 2];
            self.stream.read_exact(&mut head).await?;
            let fin = head[0] & 0x80 != 0;
            let opcode = head[0] & 0x0f;
            let masked = head[1] & 0x80 != 0;
            let len = match head[1] & 0x7f {
                126 => u64::from(self.stream.read_u16().await?),
                127 => self.stream.read_u64().await?,
                n => u64::from(n),
            };
            let len = usize::try_from(len)
                .ok()
                .filter(|&n| n <= MAX_MESSAGE)
                .ok_or_else(|| invalid("WebSocket frame too large"))?;
            let mut mask = [0u8; 4];
            if masked {
                self.stream.read_exact(&mut mask).await?;
            }
            let mut payload = vec![0u8; len];
            self.stream.read_exact(&mut payload).await?;
            if masked {
                payload
                    .iter_mut()
                    .enumerate()
                    .for_each(|(i, b)| *b ^= mask[i % 4]);
            }
            match opcode {
                0x0..=0x2 => {
                    if self.partial.len() + payload.len() > MAX_MESSAGE {
                        return Err(invalid("WebSocket message too large"));
                    }
                    self.partial.extend_from_slice(&payload);
                    if fin {
                        let message = std::mem::take(&mut self.partial);
                        return String::from_utf8(message)
                            .map_err(|_| invalid("WebSocket text is not UTF-8"));
                    }
                }
                0x8 => {
                    let _ = self.send_frame(0x8, &payload[..payload.len().min(2)]).await;
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "the browser closed the DevTools connection",
                    ));
                }
                0x9 => self.send_frame(0xA, &payload).await?,
                0xA => {}
                _ => return Err(invalid("unknown WebSocket opcode")),
            }
        }
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let value = BASE64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[test]
fn base64_round_trips() {
    for input in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
        let encoded = base64_encode(input);
        assert_eq!(base64_decode(&encoded).unwrap(), input);
    }
    assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    assert_eq!(base64_encode(b"fo"), "Zm8=");
    // RFC 6455's example: key "dGhlIHNhbXBsZSBub25jZQ==" is accepted as below.
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        b"dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11",
    );
    assert_eq!(
        base64_encode(digest.as_ref()),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}
