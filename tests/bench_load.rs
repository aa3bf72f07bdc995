#![cfg(not(target_arch = "wasm32"))]
//! The page-load half of `cargo xtask bench`: how long a person waits after opening the app,
//! read from the User Timing marks `www/app.js` sets (milliseconds from navigation start), in
//! headless Chromium on the built app (`dist/`) with the fake camera. Not a test: `#[ignore]`d,
//! and `cargo xtask bench` runs it with `--include-ignored --nocapture` and collects the lines:
//!
//! ```text
//! figure=browser.load.cpu.cold_to_ready median=… min=… max=… runs=3 unit=ms
//! ```
//!
//! - `cold_*`: a first visit, in a fresh browser profile (no HTTP cache, no service worker, no
//!   compiled-code cache): the wasm and the models come from the local server.
//! - `warm_*`: the app opened again in the same browser with a trained profile: the service
//!   worker serves it from its cache.
//! - `*_to_worker`: the worker has compiled and started the wasm; `*_to_backend`: the backend
//!   is chosen (on WebGPU after the adapter's self-test); `*_to_camera`: the camera is live;
//!   `*_to_ready`: the first camera frame is answered, so both networks are loaded.
//! - `first_verification`: from the first press of Verify after a reload to the verdict (the
//!   model is read, the references embedded and, on WebGPU, the shaders compiled), and
//!   `warm_to_first_verdict` = `warm_to_ready` + `first_verification`: the bench presses Verify
//!   as soon as the page is ready, but WebDriver's polling would add its own delay.

mod support;

use serde_json::Value;
use support::app::{
    STARTUP, browser_args, burst, identity_only, open_app, temp_profile, train, verify,
};
use support::{ChromeDriver, Session, StaticServer, dist_dir};

const RUNS: usize = 3;
const CLIP: &str = "person-a.mjpeg";

/// The start-up marks and the first verification's measure, in ms from navigation start.
const TIMINGS: &str = "
    const at = (name) => {
        const [entry] = performance.getEntriesByName('faceverify:' + name);
        return entry ? (entry.entryType === 'measure' ? entry.duration : entry.startTime) : null;
    };
    const requests = performance.getEntriesByType('measure')
        .filter((m) => m.name.startsWith('faceverify:request:'))
        .map((m) => [m.name.slice('faceverify:'.length), m.duration]);
    return Object.fromEntries(['worker-loaded', 'backend-ready', 'camera-live', 'ready',
        'first-verification'].map((name) => [name, at(name)]).concat(requests));";

fn wait_until_ready(session: &Session) -> Value {
    session.wait_for(
        "performance.getEntriesByName('faceverify:ready').length > 0",
        "the first answered camera frame",
        STARTUP,
    );
    session.eval(TIMINGS)
}

fn print_figure(name: &str, mut values: Vec<f64>) {
    if values.is_empty() {
        return;
    }
    values.sort_by(f64::total_cmp);
    println!(
        "figure=browser.load.{name} median={:.1} min={:.1} max={:.1} runs={} unit=ms",
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
        values.len()
    );
}

/// `name`'s value in every run.
fn series(runs: &[Value], name: &str) -> Vec<f64> {
    runs.iter().filter_map(|run| run[name].as_f64()).collect()
}

fn print_start_up(prefix: &str, runs: &[Value]) {
    for (mark, figure) in [
        ("worker-loaded", "to_worker"),
        ("backend-ready", "to_backend"),
        ("camera-live", "to_camera"),
        ("ready", "to_ready"),
    ] {
        print_figure(&format!("{prefix}_{figure}"), series(runs, mark));
    }
    // Where the time between the marks goes: the first round trip of each worker request
    // (`Init` chooses the backend, `LoadState` reads the profile, the first `CheckFrame` loads
    // the networks).
    for request in ["LoadState", "Init", "CheckFrame"] {
        print_figure(
            &format!("{prefix}_request_{request}"),
            series(runs, &format!("request:{request}")),
        );
    }
}

#[test]
#[ignore = "benchmark: needs the built app, Chromium and ../shared; run by `cargo xtask bench`"]
fn page_load_figures() {
    let server = StaticServer::start(dist_dir());
    let driver = ChromeDriver::start();
    // FACEVERIFY_BENCH_BACKENDS=cpu (or webgpu) measures one backend only.
    let only = std::env::var("FACEVERIFY_BENCH_BACKENDS").unwrap_or_default();
    for (backend, label, query) in [
        ("cpu", "CPU", "?backend=cpu"),
        ("webgpu", "WebGPU", "?backend=webgpu"),
    ] {
        if !only.is_empty() && !only.split(',').any(|b| b.trim() == backend) {
            continue;
        }
        let url = server.url(&format!("/{query}"));
        let args = browser_args(CLIP, backend == "webgpu");

        // First visits, each in a new profile.
        let mut cold = Vec::new();
        for run in 0..RUNS {
            let profile = temp_profile(&format!("bench-cold-{backend}-{run}"));
            let session = driver.session_with_profile(&args, &profile);
            session.goto(&url);
            cold.push(wait_until_ready(&session));
            drop(session);
            let _ = std::fs::remove_dir_all(&profile);
        }
        print_start_up(&format!("{backend}.cold"), &cold);

        // A trained profile, reloaded: enrolment and a fine-tune run on the CPU backend (the
        // model is the same on either backend), then reloads on `backend`.
        let profile = temp_profile(&format!("bench-warm-{backend}"));
        let session = driver.session_with_profile(&args, &profile);
        open_app(&session, &server.url("/?backend=cpu"), "CPU");
        // The figure is the first identity decision, not a liveness challenge.
        identity_only(&session);
        assert!(burst(&session, "anchor", 4, 2) >= 2, "no anchors captured");
        assert!(
            burst(&session, "positive", 4, 2) >= 2,
            "no positives captured"
        );
        let status = train(&session, "fine_tune", None);
        assert!(status.starts_with("Done"), "{status}");
        let mut warm = Vec::new();
        for _ in 0..RUNS {
            // WebDriver's navigation returns after the new page's load event: no old marks.
            open_app(&session, &url, label);
            let mut timings = wait_until_ready(&session);
            let (verdict, detail) = verify(&session);
            assert!(
                verdict == "verified" || verdict == "not-verified",
                "{verdict}: {detail}"
            );
            timings["first-verification"] = session.eval(TIMINGS)["first-verification"].clone();
            warm.push(timings);
        }
        print_start_up(&format!("{backend}.warm"), &warm);
        print_figure(
            &format!("{backend}.first_verification"),
            series(&warm, "first-verification"),
        );
        let to_verdict = warm
            .iter()
            .filter_map(|run| Some(run["ready"].as_f64()? + run["first-verification"].as_f64()?))
            .collect();
        print_figure(&format!("{backend}.warm_to_first_verdict"), to_verdict);
        drop(session);
        let _ = std::fs::remove_dir_all(&profile);
    }
}

/// Times 1,000 calls of the module's `version()` (a call into wasm and a string back: one
/// crossing each way), five times, in a module worker of the served app's origin.
const CROSSINGS: &str = "
    const source = `
        const module = await import('${location.origin}/faceverify.js');
        await module.default();
        const runs = [];
        for (let run = 0; run < 5; run += 1) {
            const started = performance.now();
            for (let i = 0; i < 1000; i += 1) module.version();
            runs.push(performance.now() - started);
        }
        postMessage(runs);`;
    const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
    const worker = new Worker(url, { type: 'module' });
    return await new Promise((resolve, reject) => {
        worker.onmessage = (event) => resolve(event.data);
        worker.onerror = (event) => reject(new Error(event.message));
    });";

/// What a crossing of the JS boundary costs in the served build, outside wasm-bindgen-test's
/// runner (whose own figure is `browser.codec.*`).
#[test]
#[ignore = "benchmark: needs the built app and Chromium; run by `cargo xtask bench`"]
fn crossing_figure() {
    let server = StaticServer::start(dist_dir());
    let driver = ChromeDriver::start();
    let profile = temp_profile("bench-crossing");
    let session = driver.session_with_profile(&browser_args(CLIP, false), &profile);
    session.goto(&server.url("/icon.svg"));
    let runs: Vec<f64> = serde_json::from_value(session.eval_async(CROSSINGS))
        .expect("the worker answers with its timings");
    print_figure("version_call_x1000", runs);
    drop(session);
    let _ = std::fs::remove_dir_all(&profile);
}
