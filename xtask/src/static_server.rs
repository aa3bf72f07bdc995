//! A static file server for the built app: `cargo xtask serve`, and (included by path) the
//! end-to-end tests and the page-load benchmark. Plain std. It answers GET with the file's
//! bytes, the MIME types a browser insists on for modules and streamed wasm, and, unless told
//! otherwise, the two headers that make the page cross-origin isolated (the multithreaded
//! build needs them; README.md tells a host to send the same). It logs every request path.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The two headers that make a page cross-origin isolated.
const ISOLATION_HEADERS: &str =
    "Cross-Origin-Opener-Policy: same-origin\r\nCross-Origin-Embedder-Policy: require-corp\r\n";

/// What a server serves: a root folder, optional folders under URL prefixes, and whether it
/// sends the isolation headers.
pub struct Site {
    pub root: PathBuf,
    /// `(prefix, folder)`: a path starting with `prefix` is served from `folder`.
    pub mounts: Vec<(String, PathBuf)>,
    pub isolated: bool,
}

impl Site {
    /// `root` with the isolation headers, as a host should serve the app.
    pub fn isolated(root: PathBuf) -> Self {
        Self {
            root,
            mounts: Vec::new(),
            isolated: true,
        }
    }
}

/// A running server; dropping it stops it.
pub struct StaticServer {
    pub port: u16,
    /// Every request path, in order: the offline tests read it.
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl StaticServer {
    /// Serves `site` on 127.0.0.1 on a free port.
    pub fn start_site(site: Site) -> Self {
        Self::bind("127.0.0.1:0", site).expect("bind a local port")
    }

    /// Serves `site` on `address` (`host:port`).
    pub fn bind(address: &str, site: Site) -> std::io::Result<Self> {
        let listener = TcpListener::bind(address)?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopped, site) = (requests.clone(), stop.clone(), Arc::new(site));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (site, log) = (site.clone(), log.clone());
                std::thread::spawn(move || serve_one(stream, &site, &log));
            }
        });
        Ok(Self {
            port,
            requests,
            stop,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

pub(crate) fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css",
        Some("json" | "webmanifest") => "application/json",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("jpg" | "jpeg") => "image/jpeg",
        _ => "application/octet-stream",
    }
}

/// The file a request path names, or None when it lies outside the served folders.
pub(crate) fn resolve(site: &Site, path: &str) -> Option<PathBuf> {
    let clean = path.split(['?', '#']).next().unwrap_or("/");
    let (root, clean) = site
        .mounts
        .iter()
        .find_map(|(prefix, dir)| {
            clean
                .strip_prefix(prefix.as_str())
                .map(|rest| (dir.as_path(), rest))
        })
        .unwrap_or((site.root.as_path(), clean));
    let relative = if clean == "/" || clean.is_empty() {
        "index.html"
    } else {
        clean.trim_start_matches('/')
    };
    let file = root.join(relative).canonicalize().ok()?;
    file.starts_with(root.canonicalize().ok()?).then_some(file)
}

fn serve_one(stream: TcpStream, site: &Site, log: &Mutex<Vec<String>>) {
    let Ok(reading) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reading);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Drain the headers; the server answers GET only.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    log.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(path.clone());
    let extra_headers = if site.isolated { ISOLATION_HEADERS } else { "" };
    let mut stream = stream;
    match resolve(site, &path).and_then(|file| Some((std::fs::read(&file).ok()?, file))) {
        Some((body, file)) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\n{extra_headers}Connection: close\r\n\r\n",
                content_type(&file),
                body.len()
            );
            let _ = stream
                .write_all(head.as_bytes())
                .and_then(|()| stream.write_all(&body));
        }
        None => {
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
            );
        }
    }
}
