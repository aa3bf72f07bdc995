//! The whole face pipeline (detect → align → embed) inside a dedicated worker, on WebGPU and on
//! the CPU backend, against the native results in `tests/fixtures/pipeline_native.json` (kept
//! honest by `tests/pipeline_parity.rs`). `cargo xtask test` copies the photos from `../shared`
//! into `target/test-data/`, which wasm-bindgen-test's server serves with the crate's folder.

use burn::prelude::Device;
use faceverify::backend;
use faceverify::pipeline::{FacePipeline, descriptor_distance};
use faceverify::vision::align::CropMode;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::{Response, WorkerGlobalScope};

/// Browser and native descriptors may differ by float rounding only.
const TOLERANCE: f32 = 1e-3;

async fn fetch(path: &str) -> Vec<u8> {
    let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
    let response: Response = JsFuture::from(scope.fetch_with_str(path))
        .await
        .unwrap_or_else(|e| panic!("fetching {path}: {e:?}"))
        .unchecked_into();
    assert!(
        response.ok(),
        "{path}: HTTP {} (run through `cargo xtask test`, which stages the photos)",
        response.status()
    );
    let buffer = JsFuture::from(response.array_buffer().unwrap())
        .await
        .unwrap();
    js_sys::Uint8Array::new(&buffer).to_vec()
}

async fn check_pipeline_on(device: Device, label: &str) {
    let pipeline = FacePipeline::from_bytes(
        &fetch("/models/blazeface.f16.bin").await,
        &fetch("/models/face_resnet.q8.bin").await,
        &device,
    )
    .unwrap();
    let fixture: serde_json::Value =
        serde_json::from_slice(&fetch("/tests/fixtures/pipeline_native.json").await).unwrap();
    for expected in fixture["photos"].as_array().unwrap() {
        let name = expected["name"].as_str().unwrap();
        let bytes = fetch(&format!("/target/test-data/{name}")).await;
        let analysis = pipeline
            .analyse_encoded(&bytes, CropMode::Detect)
            .await
            .unwrap();
        assert_eq!(
            analysis.faces_seen as u64,
            expected["faces_seen"].as_u64().unwrap(),
            "{name} on {label}"
        );
        let native: Vec<f32> = serde_json::from_value(expected["embedding"].clone()).unwrap();
        let distance = descriptor_distance(&analysis.embedding.unwrap(), &native);
        assert!(
            distance <= TOLERANCE,
            "{name} on {label}: {distance} from native"
        );
    }
    let grey = faceverify::vision::frame::Frame::uniform(320, 240, [128, 128, 128]).unwrap();
    let empty = pipeline.analyse(&grey, CropMode::Detect).await.unwrap();
    assert_eq!(empty.faces_seen, 0);
    assert!(empty.embedding.is_none(), "no face, no descriptor");
}

#[wasm_bindgen_test]
async fn the_pipeline_in_a_worker_matches_native_on_the_cpu_backend() {
    check_pipeline_on(backend::cpu_device(), "the CPU backend").await;
}

#[wasm_bindgen_test]
async fn the_pipeline_in_a_worker_matches_native_on_webgpu() {
    let device = backend::wgpu_device()
        .await
        .expect("webdriver.json enables WebGPU");
    check_pipeline_on(device, "WebGPU").await;
}

/// The face mesh on WebGPU agrees with the CPU backend (whose landmarks `tests/facemesh.rs`
/// holds to TensorFlow.js's within a pixel): every staged photo with a face, on the crop the
/// liveness check would take, landmarks within a pixel of the 192×192 crop.
#[wasm_bindgen_test]
async fn the_face_mesh_on_webgpu_agrees_with_the_cpu_backend() {
    use faceverify::model::facemesh::{FaceMesh, input_from_rgb8};
    use faceverify::vision::detect::FaceDetector;
    use faceverify::vision::frame::Frame;
    use faceverify::vision::mesh::MeshCrop;
    let gpu = backend::wgpu_device()
        .await
        .expect("webdriver.json enables WebGPU");
    let cpu = backend::cpu_device();
    let weights = fetch("/models/facemesh.f16.bin").await;
    let (on_gpu, on_cpu) = (
        FaceMesh::from_bytes(&weights, &gpu).unwrap(),
        FaceMesh::from_bytes(&weights, &cpu).unwrap(),
    );
    let detector =
        FaceDetector::from_bytes(&fetch("/models/blazeface.f16.bin").await, &cpu).unwrap();
    let fixture: serde_json::Value =
        serde_json::from_slice(&fetch("/tests/fixtures/pipeline_native.json").await).unwrap();
    let mut compared = 0;
    for photo in fixture["photos"].as_array().unwrap() {
        let name = photo["name"].as_str().unwrap();
        let image =
            image::load_from_memory(&fetch(&format!("/target/test-data/{name}")).await).unwrap();
        let frame = Frame::from_image(&image);
        let Some(face) = detector.detect_largest(&frame).await.unwrap().face else {
            continue;
        };
        let crop = MeshCrop::for_face(&frame, &face);
        let pixels = crop.crop.pixels();
        let expected = on_cpu.run(input_from_rgb8(pixels, &cpu)).await.unwrap();
        let got = on_gpu.run(input_from_rgb8(pixels, &gpu)).await.unwrap();
        let worst = expected
            .landmarks
            .iter()
            .zip(&got.landmarks)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst <= 1.0, "{name}: landmarks {worst} px apart on WebGPU");
        let score = (expected.face_scores[0] - got.face_scores[0]).abs();
        assert!(score <= 0.01, "{name}: face scores {score} apart");
        compared += 1;
    }
    assert!(compared >= 3, "only {compared} photos with a face");
}
