#![cfg(all(feature = "webgpu", not(target_arch = "wasm32")))]
//! The wgpu backend natively: Vulkan on a GPU, or Mesa's lavapipe on machines without one
//! (`cargo xtask setup` installs mesa-vulkan-drivers). Without any adapter these tests fail and
//! say so, unless FACEVERIFY_ALLOW_NO_GPU=1 declares the machine has none on purpose. Built with
//! the default feature `webgpu` (`cargo test --workspace`); `cargo xtask test` leaves the native
//! wgpu stack out and tests WebGPU in the browser.

use burn::prelude::Device;
use faceverify::backend::{self, BackendKind, BackendPreference, BackendReason};
use faceverify::selfcheck;

#[path = "support/gpu.rs"]
mod gpu;
use gpu::gpu;

#[test]
fn auto_selects_wgpu_after_the_self_test_agrees_with_the_cpu() {
    let Some(_) = gpu() else { return };
    let selected = pollster::block_on(backend::select(BackendPreference::Auto));
    assert_eq!(
        selected.report.kind,
        BackendKind::Wgpu,
        "{}",
        selected.report.describe()
    );
    let BackendReason::SelfTestPassed { max_abs_diff } = selected.report.reason else {
        panic!("{:?}", selected.report)
    };
    assert!(max_abs_diff <= backend::SELF_TEST_TOLERANCE);
}

#[test]
fn the_same_tensor_computation_agrees_on_wgpu_and_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let on_gpu = pollster::block_on(backend::self_test_values(&gpu)).unwrap();
    let on_cpu = pollster::block_on(backend::self_test_values(&Device::flex())).unwrap();
    let diff = backend::max_abs_diff(&on_gpu, &on_cpu);
    assert!(
        diff <= backend::SELF_TEST_TOLERANCE,
        "{on_gpu:?} vs {on_cpu:?}"
    );
}

#[test]
fn forward_backward_and_adam_step_on_wgpu() {
    let Some(gpu) = gpu() else { return };
    let check = pollster::block_on(selfcheck::training_check(&gpu, 6)).unwrap();
    assert!(check.passed(), "{check:?}");
}
