//! Which Burn device runs the networks, and why.
//!
//! The browser gets WebGPU only when an adapter exists *and* a start-up self-test agrees with the
//! CPU backend: some drivers hand out an adapter whose kernels silently return zeros, and a face
//! verifier that quietly computes garbage is worse than a slow one. Everything else falls back
//! to Burn's `flex` CPU backend, and the reason is kept so the page can show it.

use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use serde::{Deserialize, Serialize};

use crate::model::koch::DeviceBufferLimits;

/// Largest difference between the GPU's and the CPU's self-test values that still counts as
/// agreement. Both compute in f32 but in different orders; 1e-3 is far above rounding noise
/// for these magnitudes and far below what a broken kernel produces.
pub const SELF_TEST_TOLERANCE: f32 = 1e-3;

/// The two kinds of device the app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendKind {
    /// Burn's wgpu backend: WebGPU in the browser, Vulkan/Metal/DX12 natively.
    Wgpu,
    /// Burn's `flex` backend: portable Rust on the CPU (wasm SIMD in the browser).
    Cpu,
}

impl BackendKind {
    /// The name a person sees.
    pub fn label(self) -> &'static str {
        match self {
            BackendKind::Wgpu => "WebGPU",
            BackendKind::Cpu => "CPU",
        }
    }
}

/// What the user (or the settings page) asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendPreference {
    /// WebGPU when it works, otherwise the CPU.
    #[default]
    Auto,
    /// WebGPU when it works; still falls back to the CPU (with the reason) when it does not.
    #[serde(alias = "wgpu", alias = "gpu")]
    Webgpu,
    /// Always the CPU backend.
    #[serde(alias = "flex")]
    Cpu,
}

/// Why the current backend was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum BackendReason {
    /// A GPU adapter exists and its self-test agreed with the CPU.
    SelfTestPassed { max_abs_diff: f32 },
    /// The preference said CPU.
    CpuRequested,
    /// No GPU adapter: the browser has no WebGPU, it is disabled, or the machine has no driver.
    NoAdapter { detail: String },
    /// An adapter exists but its results disagree with the CPU's.
    SelfTestFailed { max_abs_diff: f32 },
    /// An adapter exists but running the self-test failed.
    SelfTestError { detail: String },
}

/// The backend in use and why: what the page and the CLI show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendReport {
    pub kind: BackendKind,
    #[serde(flatten)]
    pub reason: BackendReason,
    /// Threads the CPU backend computes on: every core natively and in the browser's
    /// multithreaded build, one in the browser's single-thread build.
    #[serde(default = "one_thread")]
    pub threads: usize,
}

fn one_thread() -> usize {
    1
}

/// Threads Burn's CPU backend runs on in this build.
pub fn cpu_threads() -> usize {
    #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
    return rayon::current_num_threads();
    #[cfg(all(target_arch = "wasm32", not(feature = "threads")))]
    return 1;
}

impl BackendReport {
    pub fn new(kind: BackendKind, reason: BackendReason) -> Self {
        Self {
            kind,
            reason,
            threads: cpu_threads(),
        }
    }

    /// One sentence for a person: which backend runs, why, and what they can do about it; for
    /// the CPU also on how many threads.
    pub fn describe(&self) -> String {
        let why = self.describe_reason();
        match (self.kind, self.threads) {
            (BackendKind::Wgpu, _) => why,
            (BackendKind::Cpu, 0 | 1) => format!("{why} It computes on one thread."),
            (BackendKind::Cpu, n) => format!("{why} It computes on {n} threads."),
        }
    }

    fn describe_reason(&self) -> String {
        match &self.reason {
            BackendReason::SelfTestPassed { max_abs_diff } => format!(
                "WebGPU: the GPU passed the start-up self-test (largest difference from the CPU {max_abs_diff:.1e})."
            ),
            BackendReason::CpuRequested => {
                "CPU: chosen in the settings. Switch to Auto to use WebGPU where it works.".into()
            }
            BackendReason::NoAdapter { .. } => {
                "CPU: this browser offers no WebGPU, so training and verification run on the CPU (slower). \
                 A current Chrome or Edge with hardware acceleration on enables WebGPU."
                    .into()
            }
            BackendReason::SelfTestFailed { max_abs_diff } => format!(
                "CPU: the GPU gave wrong results in the start-up self-test (off by {max_abs_diff:.1e}), so it is not used. \
                 Updating the graphics driver or the browser may fix it."
            ),
            BackendReason::SelfTestError { detail } => format!(
                "CPU: the GPU failed the start-up self-test ({detail}), so it is not used."
            ),
        }
    }
}

/// Errors while choosing or testing a device.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("reading a tensor from the device failed: {0}")]
    Read(String),
}

/// A device ready for use, with the report of how it was chosen.
#[derive(Debug, Clone)]
pub struct SelectedBackend {
    pub device: Device,
    pub report: BackendReport,
}

/// Deterministic pseudo-data for the self-test: smooth, signed, no two values alike.
fn wave(len: usize, freq: f32, scale: f32) -> Vec<f32> {
    (0..len).map(|i| (i as f32 * freq).sin() * scale).collect()
}

/// The fixed computation of the self-test: a convolution, ReLU, a matrix product and a sigmoid,
/// the kernels the face networks rely on. Returns 17 numbers read back asynchronously (a
/// synchronous read panics on WebGPU in the browser).
pub async fn self_test_values(device: &Device) -> Result<Vec<f32>, BackendError> {
    let x = Tensor::<4>::from_data(
        TensorData::new(wave(2 * 3 * 12 * 12, 0.7, 1.0), [2, 3, 12, 12]),
        device,
    );
    let w = Tensor::<4>::from_data(
        TensorData::new(wave(4 * 3 * 3 * 3, 0.3, 0.2), [4, 3, 3, 3]),
        device,
    );
    let b = Tensor::<1>::from_data(TensorData::new(vec![0.1f32, -0.2, 0.05, 0.0], [4]), device);
    let features = relu(conv2d(
        x,
        w,
        Some(b),
        ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
    ));
    let mean = features.clone().mean().reshape([1, 1]);
    let m = Tensor::<2>::from_data(TensorData::new(wave(576 * 8, 0.11, 0.05), [576, 8]), device);
    let scores = sigmoid(features.reshape([2, 576]).matmul(m)).reshape([1, 16]);
    let out = Tensor::cat(vec![scores, mean], 1);
    let data = out
        .into_data_async()
        .await
        .map_err(|e| BackendError::Read(format!("{e:?}")))?;
    data.try_to_vec::<f32>()
        .map_err(|e| BackendError::Read(format!("{e:?}")))
}

/// Largest absolute difference between two equally long value lists (infinite when the lengths
/// differ or a value is not finite, so that such results never count as agreement).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (x - y).abs();
            if d.is_finite() { d } else { f32::INFINITY }
        })
        .fold(0.0, f32::max)
}

/// Runs the self-test on `gpu` and on the CPU and decides whether `gpu` may be used.
pub async fn check_gpu(gpu: Device) -> SelectedBackend {
    let cpu = cpu_device();
    let reason = match (self_test_values(&gpu).await, self_test_values(&cpu).await) {
        (Ok(g), Ok(c)) => {
            let diff = max_abs_diff(&g, &c);
            if diff <= SELF_TEST_TOLERANCE {
                return SelectedBackend {
                    device: gpu,
                    report: BackendReport::new(
                        BackendKind::Wgpu,
                        BackendReason::SelfTestPassed { max_abs_diff: diff },
                    ),
                };
            }
            BackendReason::SelfTestFailed { max_abs_diff: diff }
        }
        (Err(e), _) | (_, Err(e)) => BackendReason::SelfTestError {
            detail: e.to_string(),
        },
    };
    SelectedBackend {
        device: cpu,
        report: BackendReport::new(BackendKind::Cpu, reason),
    }
}

#[cfg(target_arch = "wasm32")]
unsafe extern "C" {
    /// Synthesised by the wasm linker: runs every static constructor (the registries of
    /// Burn's kernel compiler, through cubecl's pliron and `inventory`).
    fn __wasm_call_ctors();
}

/// Runs the wasm module's static constructors, once; natively the loader has run them. The
/// module's start function calls it, and so does every way to a Burn device here, because
/// wasm-bindgen-test does not run start functions. Without any explicit call the linker treats
/// the module as a "command" and runs every constructor again at the start of every exported
/// function, including the ones the glue calls for each `JsValue` it makes: one crossing of the
/// JS boundary cost about 0.47 ms (`browser.codec.from_f64_x1000` in `cargo xtask bench`).
pub fn run_static_constructors() {
    #[cfg(target_arch = "wasm32")]
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        static DONE: AtomicBool = AtomicBool::new(false);
        if !DONE.swap(true, Ordering::SeqCst) {
            // SAFETY: runs once per instance, before any Burn device exists; the
            // constructors only fill registries.
            unsafe { __wasm_call_ctors() }
        }
    }
}

/// Burn's CPU device, with the static constructors run.
pub fn cpu_device() -> Device {
    run_static_constructors();
    Device::flex()
}

/// The wgpu device, initialised at most once per process (per page in the browser): a second
/// initialisation of Burn's wgpu runtime fails with a registration error.
#[cfg(all(feature = "webgpu", not(target_arch = "wasm32")))]
pub async fn wgpu_device() -> Result<Device, String> {
    use std::sync::Mutex;
    static WGPU: Mutex<Option<Result<Device, String>>> = Mutex::new(None);
    let mut slot = WGPU.lock().unwrap_or_else(|p| p.into_inner());
    slot.get_or_insert_with(|| Device::wgpu_options().init().map_err(|e| e.to_string()))
        .clone()
}

/// The wgpu device, initialised at most once per page: a second initialisation of Burn's wgpu
/// runtime fails with a registration error. The worker handles one request at a time, so the
/// check-then-initialise below cannot race.
#[cfg(all(feature = "webgpu", target_arch = "wasm32"))]
pub async fn wgpu_device() -> Result<Device, String> {
    use std::cell::RefCell;
    thread_local! {
        static WGPU: RefCell<Option<Result<Device, String>>> = const { RefCell::new(None) };
    }
    if let Some(done) = WGPU.with(|w| w.borrow().clone()) {
        return done;
    }
    run_static_constructors();
    let result = Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| e.to_string());
    WGPU.with(|w| *w.borrow_mut() = Some(result.clone()));
    result
}

/// A build without Burn's wgpu backend: the browser's multithreaded build, whose WebGPU
/// objects could not be shared between its threads. The page loads it only where it would
/// not use WebGPU anyway.
#[cfg(not(feature = "webgpu"))]
pub async fn wgpu_device() -> Result<Device, String> {
    Err("this build of faceverify runs on the CPU only".into())
}

/// The buffer limits of the adapter wgpu picks (Burn's runtime requests the adapter's limits
/// in full; in the browser, WebGPU's adapter), for the Koch network's memory check
/// (`model::koch::check_koch_fits`); `None` without an adapter.
#[cfg(feature = "webgpu")]
pub async fn wgpu_buffer_limits() -> Option<DeviceBufferLimits> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let options = wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    };
    let limits = instance.request_adapter(&options).await.ok()?.limits();
    Some(DeviceBufferLimits {
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_buffer_size: limits.max_buffer_size,
    })
}

/// A build without Burn's wgpu backend has no adapter.
#[cfg(not(feature = "webgpu"))]
pub async fn wgpu_buffer_limits() -> Option<DeviceBufferLimits> {
    None
}

/// Chooses the device for `preference`: WebGPU when an adapter exists and passes the self-test,
/// otherwise the CPU, with the reason.
pub async fn select(preference: BackendPreference) -> SelectedBackend {
    if preference == BackendPreference::Cpu {
        return SelectedBackend {
            device: cpu_device(),
            report: BackendReport::new(BackendKind::Cpu, BackendReason::CpuRequested),
        };
    }
    match wgpu_device().await {
        Ok(gpu) => check_gpu(gpu).await,
        Err(detail) => SelectedBackend {
            device: cpu_device(),
            report: BackendReport::new(BackendKind::Cpu, BackendReason::NoAdapter { detail }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_self_test_is_deterministic_and_not_trivial() {
        let cpu = Device::flex();
        let a = pollster::block_on(self_test_values(&cpu)).unwrap();
        let b = pollster::block_on(self_test_values(&cpu)).unwrap();
        assert_eq!(a.len(), 17);
        assert_eq!(a, b);
        // A broken kernel that returns zeros gives sigmoid(0) = 0.5 everywhere and mean 0.
        assert!(a[..16].iter().any(|v| (v - 0.5).abs() > 0.01), "{a:?}");
        assert!(a[16] > 0.0);
    }

    #[test]
    fn zeros_from_a_broken_driver_do_not_count_as_agreement() {
        let cpu = pollster::block_on(self_test_values(&Device::flex())).unwrap();
        let zeros = vec![0.0; cpu.len()];
        assert!(max_abs_diff(&cpu, &zeros) > SELF_TEST_TOLERANCE);
        assert_eq!(max_abs_diff(&cpu, &cpu[1..]), f32::INFINITY);
        assert_eq!(max_abs_diff(&[f32::NAN], &[0.0]), f32::INFINITY);
    }

    #[test]
    fn cpu_preference_never_touches_the_gpu() {
        let selected = pollster::block_on(select(BackendPreference::Cpu));
        assert_eq!(selected.report.kind, BackendKind::Cpu);
        assert_eq!(selected.report.reason, BackendReason::CpuRequested);
    }

    #[test]
    fn every_reason_has_a_sentence_that_names_the_backend() {
        let reasons = [
            (
                BackendKind::Wgpu,
                BackendReason::SelfTestPassed { max_abs_diff: 1e-7 },
            ),
            (BackendKind::Cpu, BackendReason::CpuRequested),
            (
                BackendKind::Cpu,
                BackendReason::NoAdapter {
                    detail: "none".into(),
                },
            ),
            (
                BackendKind::Cpu,
                BackendReason::SelfTestFailed { max_abs_diff: 0.5 },
            ),
            (
                BackendKind::Cpu,
                BackendReason::SelfTestError {
                    detail: "lost".into(),
                },
            ),
        ];
        for (kind, reason) in reasons {
            let text = BackendReport::new(kind, reason).describe();
            assert!(text.starts_with(kind.label()), "{text}");
        }
    }

    #[test]
    fn the_cpu_description_says_how_many_threads_compute() {
        let mut report = BackendReport::new(BackendKind::Cpu, BackendReason::CpuRequested);
        report.threads = 1;
        assert!(report.describe().ends_with("It computes on one thread."));
        report.threads = 4;
        assert!(report.describe().ends_with("It computes on 4 threads."));
        let gpu = BackendReason::SelfTestPassed { max_abs_diff: 0.0 };
        assert!(
            !BackendReport::new(BackendKind::Wgpu, gpu)
                .describe()
                .contains("thread")
        );
        // Natively the CPU backend runs on rayon's pool, one thread per core.
        assert_eq!(cpu_threads(), rayon::current_num_threads());
    }
}
