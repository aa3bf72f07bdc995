//! `dist/`, the served app, and `cargo xtask serve`.
//!
//! The page needs no bundler and no HTML rewriting: its files in `www/` are served as they are,
//! beside the library compiled for the browser and bound by wasm-bindgen (`--target web`, which
//! `www/worker.js` imports), its multithreaded twin in `threads/`, and the model files in
//! `models/`. Building that takes a cargo build, wasm-bindgen and copies, so the xtask does it
//! itself: a bundler CLI compiled on every new machine cost 1,194 CPU seconds for this.
//! The app is assembled in a staging folder and moved into place whole, so a failed build
//! leaves the last good `dist/` (and a running server's files) alone.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::static_server::{Site, StaticServer};
use crate::{Result, WASM_TARGET, cargo, root, run, target_dir, threads};

/// Where `serve` listens unless `--port` says otherwise.
const DEFAULT_PORT: u16 = 8080;

/// The served app's folder.
pub fn dist_dir() -> PathBuf {
    root().join("dist")
}

/// How the library is built for the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmBuild {
    /// The `release` profile, which the browser tests build anyway: CI's `dist/` and `pkg/`
    /// then cost only a link.
    Tests,
    /// The `app` profile (`Cargo.toml`: fat LTO, one codegen unit): what is served, packaged
    /// and measured. A build tree of its own.
    App,
}

impl WasmBuild {
    /// The cargo profile, which is also the folder of its output.
    pub fn profile(self) -> &'static str {
        match self {
            WasmBuild::Tests => "release",
            WasmBuild::App => "app",
        }
    }
}

/// Builds the library for the browser and returns its module, which `wasm_bindgen_web`
/// binds. `cargo xtask pkg` uses the same build.
pub fn build_wasm(build: WasmBuild) -> Result<PathBuf> {
    let profile = build.profile();
    run(cargo().args([
        "build",
        "--profile",
        profile,
        "--lib",
        "--target",
        WASM_TARGET,
    ]))?;
    Ok(target_dir()
        .join(WASM_TARGET)
        .join(profile)
        .join("faceverify.wasm"))
}

/// wasm-bindgen's ES-module glue (`faceverify.js`) and module (`faceverify_bg.wasm`) into
/// `out`, without the name and producers sections: function names for debuggers and toolchain
/// versions, 7 MB of 40 that the browser never needs.
pub fn wasm_bindgen_web(wasm: &Path, out: &Path) -> Result {
    run(Command::new("wasm-bindgen")
        .args(["--target", "web", "--out-name", "faceverify"])
        .args(["--remove-name-section", "--remove-producers-section"])
        .arg("--out-dir")
        .arg(out)
        .arg(wasm))
}

/// `cargo xtask dist`: builds the whole app into `dist/`.
pub fn build(wasm: WasmBuild) -> Result {
    let dist = dist_dir();
    let staging = root().join("dist.partial");
    remove_if_present(&staging)?;
    wasm_bindgen_web(&build_wasm(wasm)?, &staging)?;
    threads::build(&staging.join("threads"))?;
    copy_files(&root().join("www"), &staging)?;
    copy_files(&root().join("models"), &staging.join("models"))?;
    remove_if_present(&dist)?;
    std::fs::rename(&staging, &dist)
        .map_err(|e| format!("moving {} to {}: {e}", staging.display(), dist.display()))?;
    println!("xtask: dist: wrote {}", dist.display());
    Ok(())
}

fn remove_if_present(dir: &Path) -> Result {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("removing {}: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Copies the files of `from` into `to` (created), folders and all: the page's modules sit in
/// `www/page/`.
pub fn copy_files(from: &Path, to: &Path) -> Result {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("{}: {e}", from.display()))?
            .path();
        let target = to.join(path.file_name().expect("an entry has a name"));
        if path.is_dir() {
            copy_files(&path, &target)?;
        } else if path.is_file() {
            std::fs::copy(&path, &target).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// The port of `serve`'s arguments: `--port N`, or the default.
fn parse_port(args: &[String]) -> Result<u16> {
    match args {
        [] => Ok(DEFAULT_PORT),
        [flag, port] if flag == "--port" => port
            .parse()
            .map_err(|_| format!("--port: '{port}' is not a port number")),
        _ => Err("usage: cargo xtask serve [--port N]".into()),
    }
}

/// `cargo xtask serve [--port N]`: builds `dist/`, then serves it on 127.0.0.1 as a host
/// should (with the cross-origin isolation headers) until interrupted.
pub fn serve(args: &[String]) -> Result {
    let port = parse_port(args)?;
    build(WasmBuild::App)?;
    let address = format!("127.0.0.1:{port}");
    let server = StaticServer::bind(&address, Site::isolated(dist_dir()))
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    println!(
        "xtask: serving {} on {} (Ctrl-C stops it; run it again after a change)",
        dist_dir().display(),
        server.url("/")
    );
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::static_server::{content_type, resolve};

    #[test]
    fn serve_takes_a_port_or_the_default() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_port(&[]), Ok(DEFAULT_PORT));
        assert_eq!(parse_port(&args(&["--port", "9000"])), Ok(9000));
        assert!(
            parse_port(&args(&["--port", "eighty"]))
                .unwrap_err()
                .contains("eighty")
        );
        assert!(parse_port(&args(&["--open"])).is_err());
    }

    #[test]
    fn the_page_needs_no_build_step_of_its_own() {
        // www/ is copied as it is: every file the page or the worker loads must be there.
        let index = std::fs::read_to_string(root().join("www/index.html")).unwrap();
        assert!(
            !index.contains("data-trunk"),
            "index.html still asks for a bundler"
        );
        for linked in ["style.css", "app.js", "manifest.webmanifest", "icon.svg"] {
            assert!(index.contains(linked), "index.html does not load {linked}");
            assert!(
                root().join("www").join(linked).is_file(),
                "www/{linked} is missing"
            );
        }
    }

    #[test]
    fn the_service_worker_keeps_every_module_of_the_page() {
        // Offline, a module missing from the cache stops the page from starting.
        let worker = std::fs::read_to_string(root().join("www/sw.js")).unwrap();
        let mut modules = vec!["app.js".to_string(), "verifier.js".to_string()];
        for entry in std::fs::read_dir(root().join("www/page")).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            modules.push(format!("page/{name}"));
        }
        for module in modules {
            assert!(
                worker.contains(&format!("'{module}'")),
                "sw.js does not keep {module}"
            );
        }
    }

    #[test]
    fn copying_takes_folders_along() {
        let from = std::env::temp_dir().join(format!("xtask-copy-{}", std::process::id()));
        let to = from.with_extension("out");
        std::fs::create_dir_all(from.join("page")).unwrap();
        std::fs::write(from.join("app.js"), "a").unwrap();
        std::fs::write(from.join("page/ui.js"), "b").unwrap();
        copy_files(&from, &to).unwrap();
        assert_eq!(std::fs::read_to_string(to.join("page/ui.js")).unwrap(), "b");
        assert_eq!(std::fs::read_to_string(to.join("app.js")).unwrap(), "a");
        std::fs::remove_dir_all(&from).unwrap();
        std::fs::remove_dir_all(&to).unwrap();
    }

    #[test]
    fn paths_resolve_inside_the_served_folders_only() {
        let root = std::env::temp_dir().join(format!("xtask-static-{}", std::process::id()));
        let mounted = root.join("mounted");
        std::fs::create_dir_all(&mounted).unwrap();
        std::fs::write(root.join("index.html"), "page").unwrap();
        std::fs::write(mounted.join("a.jpg"), "photo").unwrap();
        let site = Site {
            root: root.clone(),
            mounts: vec![("/shared/".into(), mounted.clone())],
            isolated: true,
        };
        let index = root.join("index.html").canonicalize().unwrap();
        assert_eq!(resolve(&site, "/"), Some(index.clone()));
        assert_eq!(resolve(&site, "/index.html?backend=cpu"), Some(index));
        assert_eq!(
            resolve(&site, "/shared/a.jpg"),
            Some(mounted.join("a.jpg").canonicalize().unwrap())
        );
        assert_eq!(resolve(&site, "/../etc/passwd"), None);
        assert_eq!(resolve(&site, "/shared/../../index.html"), None);
        assert_eq!(resolve(&site, "/missing.js"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn modules_and_wasm_get_the_types_browsers_require() {
        assert_eq!(content_type(Path::new("worker.js")), "text/javascript");
        assert_eq!(
            content_type(Path::new("faceverify_bg.wasm")),
            "application/wasm"
        );
    }

    #[test]
    fn a_served_file_comes_with_the_isolation_headers() {
        use std::io::{Read, Write};
        let dir = std::env::temp_dir().join(format!("xtask-serve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), "<p>page</p>").unwrap();
        let server = StaticServer::start_site(Site::isolated(dir.clone()));
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.contains("Cross-Origin-Embedder-Policy: require-corp"));
        assert!(answer.contains("Cross-Origin-Opener-Policy: same-origin"));
        assert!(answer.ends_with("<p>page</p>"));
        assert_eq!(*server.requests.lock().unwrap(), ["/"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
