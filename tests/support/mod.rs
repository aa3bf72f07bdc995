//! End-to-end test support: a static file server for the built app, ChromeDriver, and a small
//! WebDriver client. Plain std + serde_json: no browser-downloading test framework works here.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub mod app;
pub mod data;

/// `../shared` beside the repository, with the camera clips and the photos the end-to-end
/// tests serve, or a panic that says what is missing.
pub fn shared_dir() -> PathBuf {
    data::shared_root(&["camera", "data"])
}

/// The built app (`cargo xtask dist`), from FACEVERIFY_DIST, or a panic that says how to build it.
pub fn dist_dir() -> PathBuf {
    let dir = std::env::var_os("FACEVERIFY_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| data::repo().join("dist"));
    assert!(
        dir.join("index.html").is_file() && dir.join("worker.js").is_file(),
        "end-to-end tests need the built app in {}: run them through `cargo xtask test` (it runs `cargo xtask dist`)",
        dir.display()
    );
    dir
}

/// The app's static server, shared with `cargo xtask serve`.
#[path = "../../xtask/src/static_server.rs"]
mod static_server;
pub use static_server::{Site, StaticServer};

impl StaticServer {
    /// Serves `root` as a host should (README.md): with the cross-origin isolation headers.
    pub fn start(root: PathBuf) -> Self {
        Self::start_site(Site::isolated(root))
    }

    /// A host that sends no cross-origin isolation headers: the page gets one thread.
    pub fn start_without_isolation(root: PathBuf) -> Self {
        Self::start_site(Site {
            isolated: false,
            ..Site::isolated(root)
        })
    }

    /// Also serves `../shared` under `/shared/`, for tests that feed the app shared photos.
    pub fn start_with_shared(root: PathBuf) -> Self {
        Self::start_site(Site {
            mounts: vec![("/shared/".to_string(), shared_dir())],
            ..Site::isolated(root)
        })
    }
}

/// A ChromeDriver process on a free port, stopped on drop.
pub struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    pub fn start() -> Self {
        let binary =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        assert!(
            Path::new(&binary).exists() && Path::new("/usr/bin/chromium").exists(),
            "end-to-end tests need Chromium and ChromeDriver ({binary}, /usr/bin/chromium): run `cargo xtask setup`"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok((200, body)) = http(port, "GET", "/status", None)
                && body["value"]["ready"] == json!(true)
            {
                return driver;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("chromedriver did not become ready on port {port}");
    }

    /// A new headless Chromium session with the common flags plus `extra_args`.
    pub fn session(&self, extra_args: &[String]) -> Session {
        let profile = std::env::temp_dir().join(format!(
            "faceverify-e2e-profile-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ rand_suffix()
        ));
        self.session_with_profile(extra_args, &profile)
    }

    /// A session on a given profile directory (to reopen the browser with the same data).
    pub fn session_with_profile(&self, extra_args: &[String], profile: &Path) -> Session {
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend(extra_args.iter().cloned());
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
                "goog:loggingPrefs": { "browser": "ALL" }
            }}
        });
        let (status, body) =
            http(self.port, "POST", "/session", Some(&capabilities)).expect("create session");
        assert_eq!(status, 200, "chromedriver refused the session: {body}");
        let id = body["value"]["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        let session = Session {
            port: self.port,
            id,
        };
        session.command(
            "POST",
            "/timeouts",
            json!({ "script": 300_000, "pageLoad": 120_000 }),
        );
        session
    }
}

fn rand_suffix() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish() as u128
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
pub struct Session {
    port: u16,
    id: String,
}

impl Session {
    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("/session/{}{path}", self.id);
        let body = (method == "POST").then_some(&body);
        let (status, reply) = http(self.port, method, &url, body).expect("webdriver request");
        assert_eq!(status, 200, "webdriver {method} {path} failed: {reply}");
        reply["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", json!({ "url": url }));
    }

    /// Runs `script` (a function body; `return` gives the result) in the page.
    pub fn eval(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
    }

    /// Runs an async function body in the page and returns what it resolves to.
    pub fn eval_async(&self, body: &str) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             (async () => {{ {body} }})().then(done, e => done({{ error: String(e) }}));"
        );
        self.command(
            "POST",
            "/execute/async",
            json!({ "script": script, "args": [] }),
        )
    }

    /// Polls a JS expression until it is truthy; returns its value.
    pub fn wait_for(&self, expression: &str, what: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(&format!("return ({expression});"));
            if !(value.is_null() || value == json!(false) || value == json!("")) {
                return value;
            }
            if Instant::now() > deadline {
                let text = self.eval("return document.body.innerText;");
                panic!(
                    "timed out after {timeout:?} waiting for {what} ({expression}); page text:\n{text}"
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Text content of the element with `id` ("" when hidden or missing).
    pub fn text(&self, id: &str) -> String {
        self.eval(&format!(
            "const e = document.getElementById('{id}'); return e && !e.hidden ? e.textContent : '';"
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Chooses local files in the `<input type=file id=...>` (WebDriver "send keys": one path
    /// per line), which fires its change event as if a person picked them.
    pub fn upload(&self, id: &str, files: &[PathBuf]) {
        let element = self.command(
            "POST",
            "/element",
            json!({ "using": "css selector", "value": format!("#{id}") }),
        );
        let element = element
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.as_str())
            .expect("element reference")
            .to_string();
        let paths: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            json!({ "text": paths.join("\n") }),
        );
    }

    pub fn click(&self, id: &str) {
        self.eval(&format!("document.getElementById('{id}').click();"));
    }

    /// Saves a PNG screenshot (for people to look at; tests do not compare pixels).
    pub fn screenshot(&self, path: &Path) {
        use base64_decode::decode;
        let data = self.command("GET", "/screenshot", Value::Null);
        if let Some(b64) = data.as_str()
            && let Some(bytes) = decode(b64)
        {
            let _ = std::fs::write(path, bytes);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = http(self.port, "DELETE", &format!("/session/{}", self.id), None);
    }
}

/// Minimal HTTP/1.1 client for ChromeDriver on loopback.
fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(600)))?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )?;
    // Read the head, then exactly Content-Length bytes: ChromeDriver may keep the
    // connection open despite `Connection: close`, so reading to EOF could wait forever.
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (key, value) = l.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    };
    let body = if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok())
    {
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        String::from_utf8_lossy(&body).into_owned()
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_chunked(&mut reader)?
    } else {
        let mut body = String::new();
        reader.read_to_string(&mut body)?;
        body
    };
    Ok((
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    ))
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut out = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk)?;
        if size == 0 {
            return Ok(String::from_utf8_lossy(&out).into_owned());
        }
        out.extend_from_slice(&chunk[..size]);
    }
}

/// Base64 decoding for screenshots (std has none).
mod base64_decode {
    pub fn decode(input: &str) -> Option<Vec<u8>> {
        let value = |c: u8| -> Option<u32> {
            Some(match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            } as u32)
        };
        let bytes: Vec<u8> = input
            .bytes()
            .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
            .collect();
        let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
        for chunk in bytes.chunks(4) {
            let mut n = 0u32;
            for (i, &c) in chunk.iter().enumerate() {
                n |= value(c)? << (18 - 6 * i);
            }
            let produced = chunk.len() * 6 / 8;
            for i in 0..produced {
                out.push((n >> (16 - 8 * i)) as u8);
            }
        }
        Some(out)
    }
}
