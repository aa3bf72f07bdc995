#![cfg(target_arch = "wasm32")]
//! The browser half of `cargo xtask bench`: the benchmark suite of `faceverify bench`
//! (`cli/src/bench/`, included below) on WebGPU and on the wasm CPU backend, in a dedicated
//! worker of headless Chromium like the app's model code. Not a test: `cargo xtask test` skips
//! files named `bench_*`, and the figures only mean something through `cargo xtask bench`,
//! which copies the photos to `target/bench-data/` (the test runner serves the crate's folder)
//! and runs this with `--nocapture` to read the lines it logs:
//!
//! ```text
//! figure=browser.webgpu.detect_640x480 median=… min=… max=… runs=3 unit=ms
//! flops=browser.webgpu.detect_640x480 value=…
//! ```
//!
//! Runs are few: headless Chromium's WebGPU is SwiftShader, a software renderer on the CPU.
//! The Koch training step runs at 16 pairs on the CPU backend and at one pair on WebGPU
//! (SwiftShader needs ~30 s for one pair and ~90 s for two).

#[allow(dead_code)]
#[path = "../cli/src/bench/mod.rs"]
mod bench;

use bench::figures;
use bench::{Data, Plan, Record, Sink};
use faceverify::backend;
use faceverify::model::koch::check_koch_fits;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::{Response, WorkerGlobalScope};

wasm_bindgen_test_configure!(run_in_dedicated_worker);

/// Where `cargo xtask bench` puts the photos (relative to the crate root, which the runner
/// serves).
const DATA: &str = "/target/bench-data";

fn scope() -> WorkerGlobalScope {
    js_sys::global().unchecked_into()
}

/// `performance.now()`: milliseconds, finer than `Date.now()`.
fn clock() -> f64 {
    scope()
        .performance()
        .map_or_else(js_sys::Date::now, |p| p.now())
}

/// The bytes at `path` on the runner's server; `None` for a 404.
async fn fetch(path: &str) -> Result<Option<Vec<u8>>, String> {
    let response: Response = JsFuture::from(scope().fetch_with_str(path))
        .await
        .map_err(|e| format!("fetching {path}: {e:?}"))?
        .unchecked_into();
    if !response.ok() {
        return Ok(None);
    }
    let buffer = JsFuture::from(
        response
            .array_buffer()
            .map_err(|e| format!("reading {path}: {e:?}"))?,
    )
    .await
    .map_err(|e| format!("reading {path}: {e:?}"))?;
    Ok(Some(js_sys::Uint8Array::new(&buffer).to_vec()))
}

async fn required(path: &str) -> Vec<u8> {
    fetch(path)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{path} is missing"))
}

struct Console;

impl Sink for Console {
    fn figure(&mut self, record: Record) {
        for line in figures::record_lines(&record, None) {
            console_log!("{line}");
        }
    }

    fn note(&mut self, line: &str) {
        console_log!("bench: {line}");
    }
}

/// The weights (`models/`) and the photos `cargo xtask bench` copied, or notes on what is
/// missing.
async fn data() -> Data {
    let mut frame = None;
    let mut captures = Vec::new();
    match fetch(&format!("{DATA}/manifest.txt")).await.unwrap() {
        None => console_log!(
            "bench: browser: no {DATA}/manifest.txt (run through `cargo xtask bench`, which \
             copies the photos from ../shared): the photo figures are skipped"
        ),
        Some(manifest) => {
            for line in String::from_utf8_lossy(&manifest).lines() {
                match line.split_once(' ') {
                    Some(("frame", file)) => {
                        let bytes = required(&format!("{DATA}/{file}")).await;
                        frame = Some(bench::camera_frame(&bytes).unwrap());
                    }
                    Some(("capture", file)) => {
                        let bytes = required(&format!("{DATA}/{file}")).await;
                        captures.push(bench::decode(&bytes).unwrap());
                    }
                    _ => {}
                }
            }
        }
    }
    Data {
        detector_weights: required("/models/blazeface.f16.bin").await,
        tower_weights: required("/models/face_resnet.q8.bin").await,
        impostors_json: String::from_utf8(required("/models/impostors.json").await).unwrap(),
        mesh_weights: required("/models/facemesh.f16.bin").await,
        frame,
        captures,
    }
}

/// The figure prefix of the CPU backend in this build.
#[cfg(not(feature = "threads"))]
const CPU: &str = "browser.cpu";
#[cfg(feature = "threads")]
const CPU: &str = "browser.cpu_threads";

/// The multithreaded build computes on a pool of one Web Worker per core, started first (as
/// the app's worker does); the single-thread build has nothing to start.
async fn start_cpu_threads() {
    #[cfg(feature = "threads")]
    {
        // `navigator.hardwareConcurrency`, by reflection: the worker's navigator is not among
        // the web-sys features the library enables.
        let navigator = js_sys::Reflect::get(&scope(), &"navigator".into()).expect("a navigator");
        let cores = js_sys::Reflect::get(&navigator, &"hardwareConcurrency".into())
            .ok()
            .and_then(|n| n.as_f64())
            .unwrap_or(1.0)
            .max(1.0) as usize;
        JsFuture::from(faceverify::init_thread_pool(cores))
            .await
            .expect("the thread pool starts");
        console_log!("bench: {CPU}: {} threads", backend::cpu_threads());
    }
}

#[wasm_bindgen_test]
async fn bench_the_wasm_cpu_backend() {
    start_cpu_threads().await;
    let data = data().await;
    let plan = Plan {
        warmup: 1,
        runs: 3,
        // ~40 s a step at 16 pairs in wasm: no warm-up (nothing to compile on the CPU).
        koch_step_warmup: 0,
        koch_step_runs: 2,
        koch_pairs: 16,
        koch_skip: None,
        ready_warmup: 0,
        ready_runs: 2,
        align: true,
        only: None,
    };
    let started = clock();
    bench::run(
        CPU,
        &backend::cpu_device(),
        &data,
        &plan,
        clock,
        &mut Console,
    )
    .await
    .unwrap();
    console_log!("bench: {CPU}: done in {:.1} s", (clock() - started) / 1e3);
}

#[wasm_bindgen_test]
async fn bench_webgpu() {
    let gpu = match backend::wgpu_device().await {
        Ok(gpu) => gpu,
        Err(reason) => {
            console_log!("bench: browser.webgpu: skipped, no WebGPU adapter ({reason})");
            return;
        }
    };
    let data = data().await;
    let koch_pairs = 1;
    let koch_skip = match faceverify::backend::wgpu_buffer_limits().await {
        None => Some("the adapter's limits could not be read".to_string()),
        Some(limits) => check_koch_fits(&limits, koch_pairs)
            .err()
            .map(|e| format!("{e} (adapter limits: {limits:?})")),
    };
    let plan = Plan {
        warmup: 1,
        runs: 3,
        // One warm-up step compiles the training kernels (~30 s on SwiftShader), one is timed.
        koch_step_warmup: 1,
        koch_step_runs: 1,
        koch_pairs,
        koch_skip,
        // The pipeline's kernels are compiled by then: no warm-up, one run of 60 photos.
        ready_warmup: 0,
        ready_runs: 1,
        // CPU work: timed once, in the CPU backend's run.
        align: false,
        only: None,
    };
    let started = clock();
    bench::run("browser.webgpu", &gpu, &data, &plan, clock, &mut Console)
        .await
        .unwrap();
    console_log!(
        "bench: browser.webgpu: done in {:.1} s",
        (clock() - started) / 1e3
    );
}

/// Milliseconds per call of `work`, over `runs` timed calls after one warm-up.
#[cfg(not(feature = "threads"))]
fn time_ms(runs: usize, mut work: impl FnMut()) -> bench::figures::Summary {
    work();
    let samples: Vec<f64> = (0..runs)
        .map(|_| {
            let started = clock();
            work();
            clock() - started
        })
        .collect();
    bench::figures::Summary::of(&samples)
}

#[cfg(not(feature = "threads"))]
fn codec_figure(name: &str, summary: &bench::figures::Summary) {
    console_log!(
        "{}",
        figures::figure_line(&format!("browser.codec.{name}"), summary, "ms")
    );
}

/// What crossing the JS boundary costs in this build: single values, a 200-epoch training run
/// (the largest record without payloads) read the two ways the IndexedDB store can read it,
/// and a photo's bytes. Once, in the single-thread build: the boundary is the same in both.
#[cfg(not(feature = "threads"))]
#[wasm_bindgen_test]
async fn bench_crossing_the_js_boundary() {
    use faceverify::store::{EpochStats, RunStatus, TrainingMode, TrainingRun};
    use wasm_bindgen::JsValue;
    const SERIALIZER: serde_wasm_bindgen::Serializer =
        serde_wasm_bindgen::Serializer::json_compatible().serialize_bytes_as_arrays(false);
    let numbers = js_sys::Array::new();
    codec_figure(
        "from_f64_x1000",
        &time_ms(20, || {
            numbers.set_length(0);
            for i in 0..1000 {
                numbers.push(&JsValue::from_f64(f64::from(i) * 0.5));
            }
        }),
    );
    let run = TrainingRun {
        id: "run".into(),
        profile_id: "me".into(),
        mode: TrainingMode::FineTune,
        started: 0,
        status: RunStatus::Finished,
        settings: serde_json::json!({ "epochs": 200, "batch_size": 16 }),
        epochs: (0..200)
            .map(|epoch| EpochStats {
                epoch,
                train_loss: 0.5 / f64::from(epoch + 1),
                test_loss: Some(0.25),
                precision: Some(0.9),
                recall: None,
            })
            .collect(),
    };
    let record = serde::Serialize::serialize(&run, &SERIALIZER).unwrap();
    codec_figure(
        "run_200_epochs.write",
        &time_ms(10, || {
            serde::Serialize::serialize(&run, &SERIALIZER).unwrap();
        }),
    );
    codec_figure(
        "run_200_epochs.read_serde_wasm_bindgen",
        &time_ms(10, || {
            let back: TrainingRun = serde_wasm_bindgen::from_value(record.clone()).unwrap();
            assert_eq!(back.epochs.len(), 200);
        }),
    );
    codec_figure(
        "run_200_epochs.read_json",
        &time_ms(10, || {
            let text = js_sys::JSON::stringify(&record)
                .unwrap()
                .as_string()
                .unwrap();
            let back: TrainingRun = serde_json::from_str(&text).unwrap();
            assert_eq!(back.epochs.len(), 200);
        }),
    );
    let photo = vec![7u8; 50_000];
    let bytes = serde::Serialize::serialize(&serde_bytes::Bytes::new(&photo), &SERIALIZER).unwrap();
    codec_figure(
        "photo_50kb.read_serde_wasm_bindgen",
        &time_ms(20, || {
            let back: serde_bytes::ByteBuf = serde_wasm_bindgen::from_value(bytes.clone()).unwrap();
            assert_eq!(back.len(), photo.len());
        }),
    );
}
