//! `cargo xtask bench`: the app's figures, one line each (see docs/BENCH.md).
//!
//! 1. Native: `faceverify bench` (release build) on the flex CPU backend and on wgpu, with the
//!    theoretical floor of each compute-bound figure.
//! 2. Sizes: the model files and the app's wasm (raw, gzip -9, brotli 11) from the last build
//!    in `dist/` (`cargo xtask dist`).
//! 3. Peers (`--peers`, `peers.rs`): face-api on the tfjs wasm backend in headless Chromium,
//!    right before our browser figures, and the ratios ours / theirs after them.
//! 4. Browser: `tests/bench_browser.rs` (the same suite) in headless Chromium on WebGPU and on
//!    the wasm CPU backend; its console lines come back through wasm-bindgen-test-runner's
//!    `--nocapture`. The photos it needs are copied from `../shared` into `target/bench-data/`,
//!    which the runner serves (it serves the crate's folder).
//!
//! Every figure line is printed as it is measured, then all of them again at the end.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{Result, WASM_TARGET, cargo, root};

const USAGE: &str = "usage: cargo xtask bench [--skip-native] [--skip-browser] [--peers] [-- ARGS]
  --peers  also time face-api 1.7.15 on tfjs-backend-wasm 4.22.0 in headless Chromium (npm
           packages installed into target/peers/) and print ratio.<figure>= ours / theirs
  ARGS go to `faceverify bench` (e.g. -- --runs 3 --backend cpu); see docs/BENCH.md";

/// The person whose LFW photos stand in for the user's captures (as in `faceverify bench`).
const FINE_TUNE_PERSON: &str = "George_W_Bush";
const FINE_TUNE_PHOTOS: usize = 60;
/// Wasm-bindgen-test's limit for the whole browser run: the wasm CPU backend's Koch steps and
/// SwiftShader's WebGPU take minutes.
const BROWSER_TIMEOUT_S: &str = "2400";

#[derive(Default)]
struct Collected {
    /// `figure=` lines, in order.
    figures: Vec<String>,
    /// `ratio.` lines (`--peers`), in order.
    ratios: Vec<String>,
    /// `floor=` lines, in order.
    floors: Vec<String>,
    /// `bench:` notes (skips and their reasons).
    notes: Vec<String>,
}

impl Collected {
    fn take(&mut self, line: &str) {
        for (key, list) in [
            ("figure=", &mut self.figures),
            ("floor=", &mut self.floors),
            ("bench: ", &mut self.notes),
        ] {
            if let Some(at) = line.find(key) {
                list.push(line[at..].trim_end().to_string());
            }
        }
    }
}

/// Runs `command`, echoing its standard output line by line, and returns those lines.
pub(crate) fn run_streaming(command: &mut Command) -> Result<Vec<String>> {
    let line = format!("{command:?}").replace('"', "");
    println!("xtask: $ {line}");
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start `{line}`: {e}"))?;
    let mut lines = Vec::new();
    let stdout = child.stdout.take().expect("stdout is piped");
    for text in BufReader::new(stdout).lines() {
        let text = text.map_err(|e| format!("reading `{line}`: {e}"))?;
        println!("{text}");
        let _ = std::io::stdout().flush();
        lines.push(text);
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for `{line}`: {e}"))?;
    if status.success() {
        Ok(lines)
    } else {
        Err(format!("`{line}` failed ({status})"))
    }
}

fn size_line(name: &str, bytes: u64) -> String {
    format!("figure=size.{name} median={bytes} min={bytes} max={bytes} runs=1 unit=bytes")
}

fn gzip_size(bytes: &[u8]) -> Result<u64> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .map(|out| out.len() as u64)
        .map_err(|e| format!("gzip: {e}"))
}

/// Brotli at quality 11 through Node's zlib (Node is already needed by `cargo xtask test`).
fn brotli_size(path: &Path) -> Result<u64> {
    let script = "const z = require('zlib'); const b = require('fs').readFileSync(process.argv[1]); \
                  process.stdout.write(String(z.brotliCompressSync(b, { params: { \
                  [z.constants.BROTLI_PARAM_QUALITY]: 11, \
                  [z.constants.BROTLI_PARAM_SIZE_HINT]: b.length } }).length))";
    let out = Command::new("node")
        .args(["-e", script])
        .arg(path)
        .output()
        .map_err(|e| format!("node: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "node: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("node printed no size: {e}"))
}

/// The sizes: model files, and the wasm of the last `dist/` build.
fn sizes(collected: &mut Collected) -> Result {
    let mut emit = |line: String| {
        println!("{line}");
        collected.take(&line);
    };
    let models = root().join("models");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&models)
        .map_err(|e| format!("{}: {e}", models.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bin" || x == "json"))
        .collect();
    files.sort();
    for file in files {
        let bytes = std::fs::metadata(&file).map_err(|e| e.to_string())?.len();
        let name = file.file_name().unwrap().to_string_lossy();
        emit(size_line(&format!("model.{name}"), bytes));
    }
    // The single-thread build (`wasm.*`) and the multithreaded one (`wasm_threads.*`).
    let mut wasm_brotli = None;
    for (name, folder) in [("wasm", "dist"), ("wasm_threads", "dist/threads")] {
        let wasm = root().join(folder).join("faceverify_bg.wasm");
        let Ok(bytes) = std::fs::read(&wasm) else {
            emit(format!(
                "bench: sizes: no {} (run `cargo xtask dist` or `cargo xtask test` first): \
                 {name} sizes skipped",
                wasm.display()
            ));
            continue;
        };
        emit(size_line(&format!("{name}.raw"), bytes.len() as u64));
        emit(size_line(&format!("{name}.gzip9"), gzip_size(&bytes)?));
        match brotli_size(&wasm) {
            Ok(size) => {
                emit(size_line(&format!("{name}.brotli11"), size));
                if name == "wasm" {
                    wasm_brotli = Some(size);
                }
            }
            Err(e) => emit(format!("bench: sizes: {name} brotli skipped ({e})")),
        }
    }
    if let Some(wasm) = wasm_brotli {
        let dist = root().join("dist");
        let mut total = wasm;
        for file in first_visit_files(
            &std::fs::read_to_string(dist.join("sw.js")).map_err(|e| format!("dist/sw.js: {e}"))?,
        )? {
            if file != "faceverify_bg.wasm" {
                total += brotli_size(&dist.join(&file))?;
            }
        }
        emit(size_line("download.brotli11", total));
    }
    Ok(())
}

/// What a first visit downloads (dist/ paths): the files the service worker keeps at install
/// (`SHELL` in `sw.js`: the page's files, the single-thread build, the detector and the
/// descriptor network), `sw.js` itself, and the face mesh, which the first capture fetches.
/// A cross-origin-isolated host also loads the multithreaded build (`size.wasm_threads.*`).
fn first_visit_files(service_worker: &str) -> Result<Vec<String>> {
    let list = service_worker
        .split("const SHELL = [")
        .nth(1)
        .and_then(|rest| rest.split("];").next())
        .ok_or("sw.js has no `const SHELL = [...]` list")?;
    let mut files: Vec<String> = list
        .split(',')
        .map(|entry| entry.trim().trim_matches('\'').to_owned())
        .filter(|entry| !entry.is_empty() && entry != "./")
        .collect();
    files.extend(["sw.js".to_owned(), "models/facemesh.f16.bin".to_owned()]);
    Ok(files)
}

/// Copies the photos the browser suite needs into `target/bench-data/` with a manifest; without
/// `../shared` the folder stays empty and the suite skips those figures, saying so.
fn stage_browser_data() -> Result<PathBuf> {
    let dir = root().join("target").join("bench-data");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("captures")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let shared = root().join("..").join("shared").join("data");
    let mut manifest = String::new();
    let frame = shared.join("color").join("obama.jpg");
    if frame.is_file() {
        std::fs::copy(&frame, dir.join("frame.jpg")).map_err(|e| e.to_string())?;
        manifest.push_str("frame frame.jpg\n");
    } else {
        println!(
            "bench: browser: no {}: the photo figures are skipped",
            frame.display()
        );
    }
    let person = shared.join("lfw").join(FINE_TUNE_PERSON);
    if let Ok(entries) = std::fs::read_dir(&person) {
        let mut photos: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
            .collect();
        photos.sort();
        for (i, photo) in photos.iter().take(FINE_TUNE_PHOTOS).enumerate() {
            let name = format!("captures/{i:02}.jpg");
            std::fs::copy(photo, dir.join(&name)).map_err(|e| e.to_string())?;
            manifest.push_str(&format!("capture {name}\n"));
        }
    } else {
        println!(
            "bench: browser: no {}: fine-tune time-to-ready is skipped",
            person.display()
        );
    }
    std::fs::write(dir.join("manifest.txt"), manifest).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// `machine cores=… mhz=…` from the native run, else `/proc/cpuinfo`.
fn cores_and_mhz(native: &[String]) -> (usize, f64) {
    let from_native = native.iter().find_map(|line| {
        let rest = line.strip_prefix("machine ")?;
        let field = |key: &str| {
            rest.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.parse::<f64>().ok())
        };
        Some((field("cores=")? as usize, field("mhz=")?))
    });
    from_native.unwrap_or_else(|| {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cores = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count()
            .max(1);
        let mhz = cpuinfo
            .lines()
            .filter(|l| l.starts_with("cpu MHz"))
            .filter_map(|l| l.split_once(':')?.1.trim().parse::<f64>().ok())
            .fold(1000.0, f64::max);
        (cores, mhz)
    })
}

/// The median of figure `name` among `figure=` lines.
pub(crate) fn median(figures: &[String], name: &str) -> Option<f64> {
    figures.iter().find_map(|line| {
        let rest = line.strip_prefix("figure=")?;
        let (figure, fields) = rest.split_once(' ')?;
        (figure == name).then_some(())?;
        fields
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("median=")?.parse::<f64>().ok())
    })
}

/// Floors of the browser figures from their `flops=` lines: the wasm CPU backend runs on one
/// thread with 128-bit SIMD and no FMA (8 FLOP/cycle: a 4-lane multiply and a 4-lane add);
/// SwiftShader runs shaders on every core, 4 lanes wide (8 FLOP/cycle/core assumed alike).
/// `tests/bench_browser.rs` run by `command` (a `cargo test` for the wasm target) in headless
/// Chromium, with its lines on the console.
fn browser_suite(command: &mut Command) -> &mut Command {
    crate::in_browser(
        command.args(["--test", "bench_browser", "--", "--nocapture"]),
        BROWSER_TIMEOUT_S,
    )
}

fn browser_floors(lines: &[String], cores: usize, mhz: f64, collected: &mut Collected) {
    let wasm_peak = mhz * 8.0 / 1e3;
    let swiftshader_peak = cores as f64 * mhz * 8.0 / 1e3;
    let assumption = format!(
        "bench: browser floors assume {wasm_peak:.1} GFLOP/s for the wasm CPU backend (1 thread \
         x {mhz:.0} MHz x 8 FLOP/cycle: SIMD128, 4 lanes, multiply and add, no FMA; {cores} times \
         that for the multithreaded build) and \
         {swiftshader_peak:.1} GFLOP/s for WebGPU on SwiftShader ({cores} cores x {mhz:.0} MHz \
         x 8 FLOP/cycle); a real GPU's peak is far higher"
    );
    println!("{assumption}");
    collected.notes.push(assumption);
    let median = |name: &str| median(&collected.figures, name);
    let mut floors = Vec::new();
    for line in lines {
        let Some(at) = line.find("flops=") else {
            continue;
        };
        let Some((name, value)) = line[at + "flops=".len()..].split_once(" value=") else {
            continue;
        };
        let (Ok(flops), Some(median_ms)) = (value.trim().parse::<f64>(), median(name)) else {
            continue;
        };
        let peak = if name.starts_with("browser.webgpu.") {
            swiftshader_peak
        } else if name.starts_with("browser.cpu_threads.") {
            cores as f64 * wasm_peak
        } else {
            wasm_peak
        };
        let floor_ms = flops / (peak * 1e9) * 1e3;
        floors.push(format!(
            "floor={name} flops={flops:.3e} peak_gflops={peak:.1} floor_ms={floor_ms:.3} \
             of_median={:.1}%",
            100.0 * floor_ms / median_ms
        ));
    }
    for floor in floors {
        println!("{floor}");
        collected.floors.push(floor);
    }
}

#[derive(Debug, Default, PartialEq)]
struct Options {
    skip_native: bool,
    skip_browser: bool,
    peers: bool,
    /// Arguments for `faceverify bench`.
    passthrough: Vec<String>,
}

/// The options, or None when help was asked for.
fn parse_args(args: &[String]) -> Result<Option<Options>> {
    let mut options = Options::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--skip-native" => options.skip_native = true,
            "--skip-browser" => options.skip_browser = true,
            "--peers" => options.peers = true,
            "--" => options.passthrough.extend(iter.by_ref().cloned()),
            "help" | "--help" | "-h" => return Ok(None),
            other => return Err(format!("bench: unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(Some(options))
}

pub fn run(args: &[String]) -> Result {
    let Some(Options {
        skip_native,
        skip_browser,
        peers,
        passthrough,
    }) = parse_args(args)?
    else {
        println!("{USAGE}");
        return Ok(());
    };

    let started = Instant::now();
    let mut collected = Collected::default();
    let mut timings = Vec::new();

    let mut native = Vec::new();
    if !skip_native {
        println!("\nxtask: ==> native figures (faceverify bench, release build)");
        let step = Instant::now();
        native = run_streaming(
            cargo()
                .args([
                    "run",
                    "--release",
                    "--quiet",
                    "-p",
                    "faceverify-cli",
                    "--",
                    "bench",
                ])
                .args(&passthrough)
                .env(
                    "XDG_RUNTIME_DIR",
                    std::env::var("XDG_RUNTIME_DIR").unwrap_or("/tmp".into()),
                ),
        )?;
        native.iter().for_each(|l| collected.take(l));
        timings.push(("native", step.elapsed().as_secs_f64()));
    }

    if !skip_browser {
        // The sizes and the page-load figures are of the app as shipped: build it first.
        println!("\nxtask: ==> build the app (cargo xtask dist)");
        let step = Instant::now();
        crate::dist::build(crate::dist::WasmBuild::App)?;
        timings.push(("dist build", step.elapsed().as_secs_f64()));
    }

    println!("\nxtask: ==> sizes");
    let step = Instant::now();
    sizes(&mut collected)?;
    timings.push(("sizes", step.elapsed().as_secs_f64()));

    if peers {
        println!("\nxtask: ==> peers (face-api on the tfjs wasm backend in headless Chromium)");
        let step = Instant::now();
        crate::peers::run()?.iter().for_each(|l| collected.take(l));
        timings.push(("peers", step.elapsed().as_secs_f64()));
    }

    let mut page_load_failure = None;
    if !skip_browser {
        browser_figures(&native, &mut collected, &mut timings)?;
        page_load_failure = page_load_figures(&mut collected, &mut timings).err();
    }

    if peers {
        let (ratios, notes) = crate::peers::ratios(&collected.figures);
        ratios.iter().chain(&notes).for_each(|l| println!("{l}"));
        collected.ratios.extend(ratios);
        collected.notes.extend(notes);
    }

    println!("\nxtask: bench: every figure");
    for line in collected
        .figures
        .iter()
        .chain(&collected.ratios)
        .chain(&collected.floors)
        .chain(&collected.notes)
    {
        println!("{line}");
    }
    println!("\nxtask: bench timings");
    for (name, seconds) in &timings {
        println!("  {seconds:>7.1} s  {name}");
    }
    println!("  {:>7.1} s  total", started.elapsed().as_secs_f64());
    page_load_failure.map_or(Ok(()), Err)
}

type Timings = Vec<(&'static str, f64)>;

/// The suite in headless Chromium: the single-thread build (WebGPU and the wasm CPU backend),
/// then the multithreaded build.
fn browser_figures(native: &[String], collected: &mut Collected, timings: &mut Timings) -> Result {
    println!(
        "\nxtask: ==> browser figures (tests/bench_browser.rs in headless Chromium: WebGPU \
         on SwiftShader, and the wasm CPU backend)"
    );
    let step = Instant::now();
    let data = stage_browser_data()?;
    println!("xtask: bench: photos staged in {}", data.display());
    let mut command = cargo();
    // The app's own profile, so the figures are those of the served build.
    let profile = crate::dist::WasmBuild::App.profile();
    command.args(["test", "--profile", profile, "--target", WASM_TARGET]);
    let browser = run_streaming(browser_suite(&mut command))?;
    browser.iter().for_each(|l| collected.take(l));
    let (cores, mhz) = cores_and_mhz(native);
    browser_floors(&browser, cores, mhz, collected);
    timings.push(("browser", step.elapsed().as_secs_f64()));

    println!(
        "\nxtask: ==> browser figures of the multithreaded build (the same suite, the CPU \
         backend on a pool of one Web Worker per core)"
    );
    let step = Instant::now();
    crate::threads::setup()?;
    let threaded = run_streaming(browser_suite(&mut crate::threads::cargo("test")))?;
    threaded.iter().for_each(|l| collected.take(l));
    browser_floors(&threaded, cores, mhz, collected);
    timings.push(("browser, threads", step.elapsed().as_secs_f64()));
    Ok(())
}

/// The page-load figures. A failure here is reported after every figure of the run (and its
/// ratios) has been printed, not instead of them.
fn page_load_figures(collected: &mut Collected, timings: &mut Timings) -> Result {
    println!(
        "\nxtask: ==> page load (tests/bench_load.rs: the built app in headless Chromium, \
         cold and warm, CPU and WebGPU)"
    );
    let step = Instant::now();
    let load = run_streaming(
        // The native tests' selection and features, so the page-load driver reuses their
        // build (default features would build Burn's native wgpu stack for it).
        cargo()
            .args(crate::NATIVE_TEST_ARGS)
            .args(["--quiet", "--test", "bench_load", "--"])
            .args(["--include-ignored", "--nocapture"])
            .env("FACEVERIFY_DIST", root().join("dist")),
    );
    timings.push(("page load", step.elapsed().as_secs_f64()));
    match load {
        Ok(lines) => {
            lines.iter().for_each(|l| collected.take(l));
            Ok(())
        }
        Err(e) => {
            let note = format!("bench: page load failed, its figures are missing: {e}");
            println!("{note}");
            collected.notes.push(note);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_collected_wherever_the_runner_puts_them() {
        let mut collected = Collected::default();
        collected.take("figure=browser.cpu.x median=1.000 min=1.000 max=1.000 runs=1 unit=ms");
        collected.take("  floor=native.cpu.x flops=1e9 peak_gflops=1.0 floor_ms=1 of_median=1%");
        collected.take("bench: native.wgpu: skipped");
        collected.take("test bench_webgpu ... ok");
        assert_eq!(collected.figures.len(), 1);
        assert!(collected.floors[0].starts_with("floor=native.cpu.x"));
        assert_eq!(collected.notes, vec!["bench: native.wgpu: skipped"]);
    }

    #[test]
    fn browser_floors_use_the_figure_medians() {
        let mut collected = Collected {
            figures: vec![
                "figure=browser.cpu.k median=100.000 min=1 max=1 runs=1 unit=ms".into(),
                "figure=browser.webgpu.k median=10.000 min=1 max=1 runs=1 unit=ms".into(),
            ],
            ..Collected::default()
        };
        let lines = vec![
            "flops=browser.cpu.k value=8000000000".to_string(),
            "flops=browser.webgpu.k value=16000000000".to_string(),
        ];
        browser_floors(&lines, 2, 1000.0, &mut collected);
        // 8 GFLOP at 8 GFLOP/s = 1 s; 16 GFLOP at 16 GFLOP/s = 1 s.
        assert!(
            collected.floors[0].contains("floor_ms=1000.000"),
            "{:?}",
            collected.floors
        );
        assert!(collected.floors[0].contains("of_median=1000.0%"));
        assert!(collected.floors[1].contains("peak_gflops=16.0"));
        assert_eq!(
            cores_and_mhz(&["machine cores=4 mhz=3000 flops_per_cycle=64".into()]),
            (4, 3000.0)
        );
    }

    #[test]
    fn a_first_visit_downloads_the_service_workers_list_and_the_face_mesh() {
        let sw = std::fs::read_to_string(root().join("www/sw.js")).unwrap();
        let files = first_visit_files(&sw).unwrap();
        for needed in [
            "index.html",
            "worker.js",
            "faceverify_bg.wasm",
            "models/face_resnet.q8.bin",
            "models/facemesh.f16.bin",
            "sw.js",
        ] {
            assert!(files.iter().any(|f| f == needed), "{needed} in {files:?}");
        }
        // Every entry is a file of dist/: from www/, the wasm-bindgen build, or models/.
        for file in &files {
            let found = root().join("www").join(file).is_file()
                || file.starts_with("faceverify")
                || root().join(file).is_file();
            assert!(found, "{file} is not built into dist/");
        }
    }

    #[test]
    fn peers_is_a_flag_beside_the_skips() {
        let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let options = parse_args(&args(&["--skip-native", "--skip-browser", "--peers"]))
            .unwrap()
            .unwrap();
        assert!(options.skip_native && options.skip_browser && options.peers);
        assert!(!parse_args(&[]).unwrap().unwrap().peers);
        // After `--` everything goes to `faceverify bench`, `--peers` included.
        let options = parse_args(&args(&["--", "--peers"])).unwrap().unwrap();
        assert!(!options.peers);
        assert_eq!(options.passthrough, ["--peers"]);
        assert_eq!(parse_args(&args(&["--help"])).unwrap(), None);
        assert!(parse_args(&args(&["--peer"])).is_err());
    }
}
