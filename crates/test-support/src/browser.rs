//! Headless Chromium for page tests, driven over the Chrome DevTools Protocol on a pipe
//! (`--remote-debugging-pipe`: commands on the browser's fd 3, answers on its fd 4, each a JSON
//! message ended by a NUL byte). No WebDriver, no WebSocket: a shell maps the two descriptors
//! onto the child's standard input and output.
//!
//! [`Browser::launch`] finds `chromium` (Debian's package, which `scripts/test` installs) or the
//! binary named by `MCP_FLEET_CHROMIUM`; without one it returns `None`, except under `CI=true`,
//! where a missing browser is a failure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

/// The environment variable naming a Chromium binary to use instead of the one on `PATH`.
pub const CHROMIUM_ENV: &str = "MCP_FLEET_CHROMIUM";

/// Longest a single DevTools command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

type Replies = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// A running headless Chromium with a fresh profile; killed when dropped.
pub struct Browser {
    child: Child,
    stdin: tokio::sync::Mutex<ChildStdin>,
    replies: Replies,
    next_id: AtomicU64,
    _profile: tempfile::TempDir,
}

/// One tab of a [`Browser`].
pub struct Page<'b> {
    browser: &'b Browser,
    session: String,
}

/// The Chromium binary to run, if there is one.
fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(CHROMIUM_ENV) {
        return Some(PathBuf::from(path));
    }
    let names = [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ];
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

impl Browser {
    /// Starts headless Chromium, or returns `None` (with a message) when it is not installed.
    /// Under `CI=true` a missing Chromium panics: the page tests must run there.
    pub async fn launch() -> Option<Self> {
        let Some(binary) = find_chromium() else {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!(
                    "Chromium is not installed under CI=true: the browser tests must run \
                     (scripts/test installs Debian's chromium; or set {CHROMIUM_ENV})"
                );
            }
            eprintln!(
                "skipping the browser test: no chromium on PATH (scripts/test installs it; or set {CHROMIUM_ENV})"
            );
            return None;
        };
        let profile = tempfile::tempdir().expect("create a Chromium profile directory");
        let mut child = Command::new("sh")
            .arg("-c")
            // fd 3 (commands) is our pipe to the child's stdin, fd 4 (answers) our pipe from its
            // stdout; Chromium's own output goes to stderr.
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#)
            .arg(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--mute-audio",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Chromium is chatty (D-Bus and GPU warnings); shown with --nocapture only if asked.
            .stderr(if std::env::var_os("MCP_FLEET_CHROMIUM_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let replies: Replies = Arc::default();
        tokio::spawn(read_replies(BufReader::new(stdout), replies.clone()));
        let browser = Self {
            child,
            stdin: tokio::sync::Mutex::new(stdin),
            replies,
            next_id: AtomicU64::new(1),
            _profile: profile,
        };
        let version = browser
            .call(None, "Browser.getVersion", json!({}))
            .await
            .expect("Chromium answers over the DevTools pipe");
        eprintln!(
            "browser: {} ({})",
            version["product"].as_str().unwrap_or("?"),
            binary.display()
        );
        Some(browser)
    }

    /// Sends one DevTools command (to a page's `session`, or to the browser) and waits for its
    /// result.
    async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            msg["sessionId"] = json!(session);
        }
        let (tx, rx) = oneshot::channel();
        self.replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        let mut bytes = serde_json::to_vec(&msg).map_err(|e| e.to_string())?;
        bytes.push(0);
        {
            let mut stdin = self.stdin.lock().await;
            stdin
                .write_all(&bytes)
                .await
                .map_err(|e| format!("{method}: cannot write to Chromium: {e}"))?;
            stdin.flush().await.map_err(|e| e.to_string())?;
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, rx).await {
            Ok(Ok(answer)) => answer.map_err(|e| format!("{method}: {e}")),
            Ok(Err(_)) => Err(format!("{method}: Chromium exited")),
            Err(_) => Err(format!("{method}: no answer within {COMMAND_TIMEOUT:?}")),
        }
    }

    /// Opens a new tab with a `width`×`height` viewport (`mobile` emulates a phone: touch,
    /// the mobile viewport rules).
    pub async fn new_page(&self, width: u32, height: u32, mobile: bool) -> Page<'_> {
        let target = self
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await
            .expect("create a tab");
        let target_id = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await
            .expect("attach to the tab");
        let page = Page {
            browser: self,
            session: attached["sessionId"]
                .as_str()
                .expect("sessionId")
                .to_owned(),
        };
        // Needed for scripts added with `add_init_script` to run.
        page.call("Page.enable", json!({})).await;
        page.set_viewport(width, height, mobile).await;
        page
    }

    /// Closes the browser.
    pub async fn close(mut self) {
        let _ = self.call(None, "Browser.close", json!({})).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// Routes each answer to the command waiting for it; events are not used.
async fn read_replies(mut reader: BufReader<tokio::process::ChildStdout>, replies: Replies) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(0, &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if buf.last() == Some(&0) {
            buf.pop();
        }
        let Ok(msg) = serde_json::from_slice::<Value>(&buf) else {
            continue;
        };
        let Some(id) = msg.get("id").and_then(Value::as_u64) else {
            continue; // an event
        };
        let waiter = replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(tx) = waiter {
            let answer = match msg.get("error") {
                Some(err) => Err(err.to_string()),
                None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
            };
            let _ = tx.send(answer);
        }
    }
    // Chromium is gone: fail whatever still waits.
    replies.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

impl Page<'_> {
    async fn call(&self, method: &str, params: Value) -> Value {
        self.browser
            .call(Some(&self.session), method, params)
            .await
            .unwrap_or_else(|e| panic!("DevTools: {e}"))
    }

    /// Sets the viewport size.
    pub async fn set_viewport(&self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
    }

    /// Runs `source` in every document this tab loads from now on, before the page's own
    /// scripts (to stub out a browser feature, say).
    pub async fn add_init_script(&self, source: &str) {
        self.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": source}),
        )
        .await;
    }

    /// Loads `url` and waits until the document has loaded.
    pub async fn goto(&self, url: &str) {
        let nav = self.call("Page.navigate", json!({"url": url})).await;
        if let Some(err) = nav.get("errorText").and_then(Value::as_str) {
            panic!("cannot load {url}: {err}");
        }
        self.wait_for(
            &format!("{url} to load"),
            "document.readyState === 'complete'",
            Duration::from_secs(15),
        )
        .await;
    }

    /// Evaluates `expression` in the page (awaiting it when it is a promise) and returns its
    /// value as JSON; a thrown exception panics.
    pub async fn eval(&self, expression: &str) -> Value {
        let answer = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(exc) = answer.get("exceptionDetails") {
            panic!("page script failed: {expression}\n{exc:#}");
        }
        answer["result"]
            .get("value")
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Polls `expression` every 100 ms until it is truthy (not `false`, `null`, `0`, `""`) and
    /// returns that value; panics with `what` and the last value after `deadline`.
    pub async fn wait_for(&self, what: &str, expression: &str, deadline: Duration) -> Value {
        let end = Instant::now() + deadline;
        loop {
            let v = self.eval(expression).await;
            let truthy = match &v {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() >= end {
                panic!("timed out after {deadline:?} waiting for {what}; last value: {v}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the focused element, as a keyboard would.
    pub async fn type_text(&self, text: &str) {
        self.call("Input.insertText", json!({"text": text})).await;
    }

    /// Presses and releases one key (`Tab`, `Enter`, `ArrowDown`, …) on the focused element.
    pub async fn press(&self, key: &str) {
        let code = match key {
            "Tab" => 9,
            "Enter" => 13,
            "Escape" => 27,
            "ArrowUp" => 38,
            "ArrowDown" => 40,
            _ => 0,
        };
        // A key that types a character (Enter activates buttons) goes down as `keyDown` with
        // its text; others as `rawKeyDown`.
        let text = (key == "Enter").then_some("\r");
        let down = if text.is_some() {
            "keyDown"
        } else {
            "rawKeyDown"
        };
        for kind in [down, "keyUp"] {
            let mut event =
                json!({"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code});
            if let (Some(text), "keyDown") = (text, kind) {
                event["text"] = json!(text);
            }
            self.call("Input.dispatchKeyEvent", event).await;
        }
    }

    /// Saves a PNG of the whole page (not only the viewport) at `path`.
    pub async fn screenshot(&self, path: &Path) {
        let metrics = self.call("Page.getLayoutMetrics", json!({})).await;
        let size = &metrics["cssContentSize"];
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {
                        "x": 0, "y": 0,
                        "width": size["width"].as_f64().unwrap_or(1280.0),
                        "height": size["height"].as_f64().unwrap_or(800.0),
                        "scale": 1,
                    },
                }),
            )
            .await;
        let png = STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the screenshot directory");
        }
        std::fs::write(path, png).expect("write the screenshot");
        eprintln!("screenshot: {}", path.display());
    }
}
