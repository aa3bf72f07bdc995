#![cfg(not(target_arch = "wasm32"))]
//! End-to-end tests against the built app (`cargo xtask dist`) in headless Chromium with a fake
//! camera. They need the build, Chromium and ../shared, so they are `#[ignore]`d in a plain
//! `cargo test` and run by `cargo xtask test` (`--include-ignored`); when something they need
//! is missing they fail and say what.

mod support;

use support::app::{STARTUP, browser_args, press, until_count};
use support::{ChromeDriver, Site, StaticServer, dist_dir, shared_dir};

/// The app as `server` serves it, open in a fresh browser; closed on drop (the session, then
/// the browser, then the server).
struct OpenApp {
    session: support::Session,
    _driver: ChromeDriver,
    server: StaticServer,
}

/// Opens `page` (path and query) of what `server` serves in a fresh browser started with `args`.
fn open(server: StaticServer, args: &[String], page: &str) -> OpenApp {
    let driver = ChromeDriver::start();
    let session = driver.session(args);
    session.goto(&server.url(page));
    OpenApp {
        session,
        _driver: driver,
        server,
    }
}

/// Opens `page` of what `server` serves in a fresh browser whose fake camera plays
/// person-a.mjpeg, with WebGPU or without.
fn open_person_a(server: StaticServer, webgpu: bool, page: &str) -> OpenApp {
    open(server, &browser_args("person-a.mjpeg", webgpu), page)
}

/// Grabs the current video frame and returns its size and pixel statistics.
const FRAME_STATS: &str = r#"
    const v = document.getElementById('camera');
    const t0 = performance.now();
    while (!(v.readyState >= 2 && v.videoWidth > 0)) {
        if (performance.now() - t0 > 30000) return { error: 'no video frames within 30 s' };
        await new Promise(r => setTimeout(r, 100));
    }
    const c = document.createElement('canvas');
    c.width = v.videoWidth; c.height = v.videoHeight;
    const g = c.getContext('2d');
    g.drawImage(v, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let sum = 0, sum2 = 0, chroma = 0;
    const n = c.width * c.height;
    for (let i = 0; i < d.length; i += 4) {
        const y = (d[i] + d[i + 1] + d[i + 2]) / 3;
        sum += y; sum2 += y * y;
        chroma += Math.abs(d[i] - d[i + 1]) + Math.abs(d[i + 1] - d[i + 2]);
    }
    const mean = sum / n;
    return { width: c.width, height: c.height, mean, std: Math.sqrt(sum2 / n - mean * mean), chroma: chroma / n };
"#;

fn backend_of(session: &support::Session) -> String {
    session
        .wait_for(
            "document.getElementById('backend-status').dataset.backend",
            "the worker to report its backend",
            STARTUP,
        )
        .as_str()
        .unwrap()
        .to_string()
}

/// Asserts that the worker reports the CPU backend; returns the page's backend status line, the
/// threads the backend computes on, as the page shows them, and the cores the browser has.
fn cpu_status(session: &support::Session) -> (String, u64, u64) {
    assert_eq!(backend_of(session), "CPU");
    let status = session.text("backend-status");
    let threads =
        session.eval("return Number(document.getElementById('backend-status').dataset.threads);");
    let cores = session.eval("return navigator.hardwareConcurrency;");
    (status, threads.as_u64().unwrap(), cores.as_u64().unwrap())
}

/// Runs the page's training self-check and asserts that it passed; returns what it reports.
fn run_passing_training_check(session: &support::Session) -> String {
    press(
        session,
        "check-training",
        "the self-check button to be enabled",
    );
    let passed = session.wait_for(
        "document.getElementById('check-result').dataset.passed",
        "the training self-check result",
        STARTUP,
    );
    let text = session.text("check-result");
    assert_eq!(passed, "true", "{text}");
    text
}

#[test]
#[ignore = "end-to-end: needs the built app, Chromium and ../shared; run by `cargo xtask test`"]
fn fake_camera_frames_reach_the_page_and_webgpu_is_chosen() {
    let app = open_person_a(StaticServer::start(dist_dir()), true, "/");
    let session = &app.session;

    session.wait_for(
        "document.getElementById('camera-panel').dataset.camera === 'live'",
        "the camera to go live",
        STARTUP,
    );
    let stats = session.eval_async(FRAME_STATS);
    assert!(stats.get("error").is_none(), "{stats}");
    assert_eq!(stats["width"], 640, "{stats}");
    assert_eq!(stats["height"], 480, "{stats}");
    let (mean, std, chroma) = (
        stats["mean"].as_f64().unwrap(),
        stats["std"].as_f64().unwrap(),
        stats["chroma"].as_f64().unwrap(),
    );
    // A real photo: neither black nor blown out, with structure (not a flat test colour).
    assert!((20.0..235.0).contains(&mean) && std > 15.0, "{stats}");
    // person-a.mjpeg is grayscale LFW: R = G = B up to JPEG noise. Chromium's built-in fake
    // pattern is green, so this proves the clip itself is on screen.
    assert!(chroma < 8.0, "not the grayscale clip: {stats}");

    assert_eq!(
        backend_of(session),
        "WebGPU",
        "{}",
        session.text("backend-status")
    );
    assert!(session.text("webgpu-notice").is_empty());
    let text = run_passing_training_check(session);
    assert!(text.contains("WebGPU"), "{text}");
}

#[test]
#[ignore = "end-to-end: needs the built app, Chromium and ../shared; run by `cargo xtask test`"]
fn without_webgpu_the_cpu_backend_runs_and_the_page_says_why() {
    let app = open_person_a(StaticServer::start(dist_dir()), false, "/");
    let session = &app.session;

    let (status, threads, cores) = cpu_status(session);
    assert!(status.contains("no WebGPU"), "{status}");
    // The server sends the isolation headers: the multithreaded build runs, on every core.
    assert_eq!(threads, cores.max(1), "{status}");
    assert!(
        status.contains(&format!("on {threads} threads")) || cores == 1,
        "{status}"
    );
    let notice = session.text("webgpu-notice");
    assert!(notice.contains("WebGPU is missing"), "{notice}");
    let text = run_passing_training_check(session);
    assert!(text.contains("CPU"), "{text}");
}

#[test]
#[ignore = "end-to-end: needs the built app, Chromium and ../shared; run by `cargo xtask test`"]
fn a_host_without_isolation_headers_gets_the_single_thread_build() {
    let app = open_person_a(
        StaticServer::start_without_isolation(dist_dir()),
        false,
        "/?backend=cpu",
    );
    let session = &app.session;

    let (status, threads, _) = cpu_status(session);
    let isolated = session.eval("return self.crossOriginIsolated;");
    assert_eq!(isolated, false);
    assert_eq!(threads, 1, "{status}");
    assert!(status.contains("on one thread"), "{status}");
    run_passing_training_check(session);
    let requests = app.server.requests.lock().unwrap().clone();
    assert!(
        !requests.iter().any(|path| path.starts_with("/threads/")),
        "the multithreaded build was fetched: {requests:?}"
    );
}

#[test]
#[ignore = "end-to-end: needs the built app, Chromium and ../shared; run by `cargo xtask test`"]
fn a_denied_camera_shows_what_to_do_and_the_page_still_works() {
    // A fake device exists but the permission prompt is denied.
    let app = open(
        StaticServer::start(dist_dir()),
        &[
            "--use-fake-device-for-media-stream".into(),
            "--deny-permission-prompts".into(),
        ],
        "/?backend=cpu",
    );
    let session = &app.session;

    session.wait_for(
        "document.getElementById('camera-panel').dataset.camera === 'error'",
        "the camera error",
        STARTUP,
    );
    let message = session.text("camera-status");
    assert!(
        message.contains("denied") && message.contains("Allow the camera"),
        "{message}"
    );
    assert!(
        session.eval("return !document.getElementById('camera-retry').hidden;")
            == serde_json::json!(true),
        "the Retry button is offered"
    );
    // The rest of the app is unaffected: capturing waits for a camera, importing works.
    assert_eq!(backend_of(session), "CPU");
    run_passing_training_check(session);
    assert_eq!(
        session.eval("return document.getElementById('capture-anchor').disabled;"),
        serde_json::json!(true)
    );
    let photos: Vec<_> = [
        "Colin_Powell/Colin_Powell_0001.jpg",
        "Hugo_Chavez/Hugo_Chavez_0001.jpg",
    ]
    .iter()
    .map(|p| shared_dir().join("data/lfw").join(p))
    .collect();
    session.upload("negative-files", &photos);
    until_count(session, "negative", "=== 2", "two imported negatives");
    let status = session.text("import-status");
    assert!(status.contains("Added 2 negatives"), "{status}");
}

/// Runs the app's own worker in the page: `Init` with `preference`, then `AnalysePhoto` for
/// each photo (URLs under /shared/, or a data: URL), and returns `{ backend, results }`. The
/// server is cross-origin isolated, so the CPU runs in the multithreaded build.
const ANALYSE_IN_WORKER: &str = r#"
    const [preference, urls] = [__PREFERENCE__, __URLS__];
    // The page's way of starting it: the preference picks the build (the CPU: multithreaded).
    const worker = new Worker(`./worker.js?backend=${preference}`, { type: 'module' });
    const next = (type) => new Promise((resolve, reject) => {
        const listen = (event) => {
            if (event.data.type === type) { worker.removeEventListener('message', listen); resolve(event.data); }
            else if (event.data.type === 'Failed') { worker.removeEventListener('message', listen); reject(new Error(event.data.message)); }
        };
        worker.addEventListener('message', listen);
    });
    const progress = [];
    worker.addEventListener('message', (event) => { if (event.data.type === 'ModelProgress') progress.push(event.data); });
    await next('Loaded');
    worker.postMessage({ type: 'Init', preference });
    const ready = await next('Ready');
    const results = [];
    for (const url of urls) {
        // 'grey' is a uniform 320x240 PNG made here (the page's CSP allows no data: fetches).
        let bytes;
        if (url === 'grey') {
            const canvas = new OffscreenCanvas(320, 240);
            const g = canvas.getContext('2d');
            g.fillStyle = 'rgb(128, 128, 128)';
            g.fillRect(0, 0, 320, 240);
            bytes = new Uint8Array(await (await canvas.convertToBlob({ type: 'image/png' })).arrayBuffer());
        } else {
            bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
        }
        const started = performance.now();
        worker.postMessage({ type: 'AnalysePhoto', bytes, crop: 'detect' });
        const analysis = (await next('PhotoAnalysed')).analysis;
        analysis.ms = performance.now() - started;
        results.push(analysis);
    }
    worker.terminate();
    return { backend: ready.backend, results, progress };
"#;

#[test]
#[ignore = "end-to-end: needs the built app, Chromium and ../shared; run by `cargo xtask test`"]
fn the_face_pipeline_runs_in_the_worker_on_webgpu_and_cpu_and_agrees_with_native() {
    let app = open(
        StaticServer::start_with_shared(dist_dir()),
        &["--enable-unsafe-webgpu".to_string()],
        "/?backend=cpu",
    );
    let session = &app.session;
    backend_of(session);

    let photos = ["obama.jpg", "two_people.jpg"];
    let native = support::data::pipeline();
    let expected: Vec<_> = photos
        .iter()
        .map(|name| {
            let bytes = std::fs::read(shared_dir().join("data/color").join(name)).unwrap();
            pollster::block_on(native.analyse_encoded(&bytes, Default::default())).unwrap()
        })
        .collect();
    let mut urls: Vec<String> = photos
        .iter()
        .map(|p| format!("/shared/data/color/{p}"))
        .collect();
    urls.push("grey".into());

    for (preference, label) in [("webgpu", "Wgpu"), ("cpu", "Cpu")] {
        let script = ANALYSE_IN_WORKER
            .replace("__PREFERENCE__", &format!("{preference:?}"))
            .replace("__URLS__", &serde_json::to_string(&urls).unwrap());
        let out = session.eval_async(&script);
        assert!(out.get("error").is_none(), "{preference}: {out}");
        assert_eq!(
            out["backend"]["kind"], label,
            "{preference}: {}",
            out["backend"]
        );
        if preference == "cpu" {
            let cores = session.eval("return navigator.hardwareConcurrency;");
            assert_eq!(
                out["backend"]["threads"], cores,
                "the multithreaded build runs"
            );
        }
        let results = out["results"].as_array().unwrap();
        assert_eq!(results[0]["faces_seen"], 1, "obama.jpg on {label}");
        assert_eq!(results[1]["faces_seen"], 2, "two_people.jpg on {label}");
        assert_eq!(results[2]["faces_seen"], 0, "a grey frame on {label}");
        assert!(results[2]["embedding"].is_null(), "no face, no descriptor");
        for (browser, native) in results.iter().zip(&expected) {
            let browser: Vec<f32> = serde_json::from_value(browser["embedding"].clone()).unwrap();
            let distance = faceverify::pipeline::descriptor_distance(
                &browser,
                native.embedding.as_ref().unwrap(),
            );
            assert!(
                distance <= 1e-3,
                "{label}: browser and native descriptors differ by {distance}"
            );
        }
        // Per-photo time in the worker (the first includes downloading and building the networks).
        let times: Vec<String> = results
            .iter()
            .map(|r| format!("{:.0} ms", r["ms"].as_f64().unwrap_or(f64::NAN)))
            .collect();
        eprintln!(
            "face pipeline in the worker on {label}: {}",
            times.join(", ")
        );
        // The models were downloaded with progress (or came from the HTTP cache the second time).
        let progress = out["progress"].as_array().unwrap();
        assert!(
            progress
                .iter()
                .any(|p| p["name"] == "face descriptor network"),
            "{out}"
        );
    }
}

/// Starts the app's worker (CPU) with its model files served from `/spare-models/`, keeps it
/// as `window.spareWorker`, and analyses one photo: `{ ok: true }`, or `{ failed: message }`.
const ANALYSE_WITH_SPARE_MODELS: &str = r#"
    if (!window.spareWorker) {
        window.spareWorker = new Worker('./worker.js?backend=cpu&models=/spare-models/', { type: 'module' });
        window.spareNext = (types) => new Promise((resolve) => {
            const listen = (event) => {
                if (types.includes(event.data.type)) {
                    window.spareWorker.removeEventListener('message', listen);
                    resolve(event.data);
                }
            };
            window.spareWorker.addEventListener('message', listen);
        });
        await window.spareNext(['Loaded']);
        window.spareWorker.postMessage({ type: 'Init', preference: 'cpu' });
        await window.spareNext(['Ready', 'Failed']);
    }
    const bytes = new Uint8Array(await (await fetch('/shared/data/color/obama.jpg')).arrayBuffer());
    window.spareWorker.postMessage({ type: 'AnalysePhoto', bytes, crop: 'detect' });
    const answer = await window.spareNext(['PhotoAnalysed', 'Failed']);
    return answer.type === 'PhotoAnalysed' ? { ok: true } : { failed: answer.message };
"#;

/// `worker.js` fetches the model files and forgets a failed download, so the next request
/// downloads again: here the descriptor network is missing from the server at first, then
/// put back, and the same worker analyses the photo without a reload.
#[test]
#[ignore = "end-to-end: needs the built app, Chromium and ../shared; run by `cargo xtask test`"]
fn a_failed_model_download_is_tried_again_on_the_next_request() {
    let models =
        std::env::temp_dir().join(format!("faceverify-spare-models-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&models);
    std::fs::create_dir_all(&models).unwrap();
    let served = dist_dir().join("models");
    let missing = "face_resnet.q8.bin";
    for entry in std::fs::read_dir(&served).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && !path.ends_with(missing) {
            std::fs::copy(&path, models.join(path.file_name().unwrap())).unwrap();
        }
    }
    let server = StaticServer::start_site(Site {
        mounts: vec![
            ("/shared/".to_string(), shared_dir()),
            ("/spare-models/".to_string(), models.clone()),
        ],
        ..Site::isolated(dist_dir())
    });
    let app = open(server, &[], "/?backend=cpu");
    let session = &app.session;
    backend_of(session);

    let first = session.eval_async(ANALYSE_WITH_SPARE_MODELS);
    let message = first["failed"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("face descriptor network"), "{first}");

    std::fs::copy(served.join(missing), models.join(missing)).unwrap();
    let second = session.eval_async(ANALYSE_WITH_SPARE_MODELS);
    assert_eq!(
        second,
        serde_json::json!({ "ok": true }),
        "after: {message}"
    );
    let _ = std::fs::remove_dir_all(&models);
}
