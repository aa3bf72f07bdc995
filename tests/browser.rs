#![cfg(target_arch = "wasm32")]
//! Browser tests: run by `cargo xtask test` with wasm-bindgen-test in headless Chromium
//! (webdriver.json turns WebGPU on), inside a dedicated worker like the app's model code.

use burn::prelude::Device;
use faceverify::backend::{self, BackendKind, BackendPreference, BackendReason};
use faceverify::protocol::{WorkerRequest, WorkerResponse};
use faceverify::selfcheck;
use serde::Serialize;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_dedicated_worker);

#[wasm_bindgen_test]
async fn auto_selects_webgpu_when_an_adapter_passes_the_self_test() {
    let selected = backend::select(BackendPreference::Auto).await;
    assert_eq!(
        selected.report.kind,
        BackendKind::Wgpu,
        "webdriver.json enables WebGPU, yet: {}",
        selected.report.describe()
    );
    assert!(matches!(
        selected.report.reason,
        BackendReason::SelfTestPassed { .. }
    ));
}

#[wasm_bindgen_test]
async fn the_same_tensor_computation_agrees_on_webgpu_and_the_cpu() {
    let gpu = backend::wgpu_device().await.expect("WebGPU adapter");
    let on_gpu = backend::self_test_values(&gpu).await.unwrap();
    let on_cpu = backend::self_test_values(&Device::flex()).await.unwrap();
    assert_eq!(on_gpu.len(), 17);
    let diff = backend::max_abs_diff(&on_gpu, &on_cpu);
    assert!(
        diff <= backend::SELF_TEST_TOLERANCE,
        "differ by {diff}: {on_gpu:?} vs {on_cpu:?}"
    );
}

#[wasm_bindgen_test]
async fn forward_backward_and_adam_step_on_the_cpu_backend() {
    let check = selfcheck::training_check(&Device::flex(), 6).await.unwrap();
    assert!(check.passed(), "{check:?}");
}

#[wasm_bindgen_test]
async fn forward_backward_and_adam_step_on_webgpu() {
    let gpu = backend::wgpu_device().await.expect("WebGPU adapter");
    let check = selfcheck::training_check(&gpu, 6).await.unwrap();
    assert!(check.passed(), "{check:?}");
}

#[wasm_bindgen_test]
fn worker_messages_cross_the_js_boundary() {
    let request = WorkerRequest::CheckTraining { steps: 3 };
    let value = request
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .unwrap();
    let back: WorkerRequest = serde_wasm_bindgen::from_value(value).unwrap();
    assert_eq!(back, request);
    let response: WorkerResponse = serde_wasm_bindgen::from_value(
        js_sys::JSON::parse(r#"{"type":"Failed","request":"Init","message":"m"}"#).unwrap(),
    )
    .unwrap();
    assert_eq!(
        response,
        WorkerResponse::Failed {
            request: "Init".into(),
            message: "m".into()
        }
    );
}
