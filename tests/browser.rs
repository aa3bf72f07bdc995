#![cfg(target_arch = "wasm32")]
//! Browser tests: run by `cargo xtask test` with wasm-bindgen-test in headless Chromium
//! (webdriver.json turns WebGPU on), inside a dedicated worker like the app's model code. One
//! test binary for all of them (`pipeline` and `store` are its modules): each binary costs a
//! link, a wasm-bindgen pass and a browser start.

#[path = "browser/pipeline.rs"]
mod pipeline;
#[path = "browser/store.rs"]
mod store;

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
    let on_cpu = backend::self_test_values(&backend::cpu_device())
        .await
        .unwrap();
    assert_eq!(on_gpu.len(), 17);
    let diff = backend::max_abs_diff(&on_gpu, &on_cpu);
    assert!(
        diff <= backend::SELF_TEST_TOLERANCE,
        "differ by {diff}: {on_gpu:?} vs {on_cpu:?}"
    );
}

#[wasm_bindgen_test]
async fn forward_backward_and_adam_step_on_the_cpu_backend() {
    let check = selfcheck::training_check(&backend::cpu_device(), 6)
        .await
        .unwrap();
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

// ---------------------------------------------------------------------------------------------
// Training in the browser: one classic step of the full Koch network, one fine-tune
// epoch of the head, each on WebGPU and on the CPU backend; the Koch memory check against the
// real adapter's limits. Only async reads: a synchronous read panics on WebGPU in wasm.

use burn::module::Module;
use burn::prelude::{Tensor, TensorData};
use faceverify::model::koch::{
    DeviceBufferLimits, KochMemoryError, KochTowerConfig, check_koch_fits, pattern_images,
};
use faceverify::model::siamese::{Siamese, SiameseHead};
use faceverify::train::impostors::ImpostorModel;
use faceverify::train::loss::binary_cross_entropy;
use faceverify::train::pairs::{
    LabelledPair, PairLabel, PairSplit, SeededRng, TrainingConfig, epoch_batches,
};
use faceverify::train::run::{
    FineTuneInputs, PairModel, RunControl, RunSettings, SilentObserver, StopReason,
    fine_tune_trainer, seeded_head,
};
use faceverify::train::step::{
    EmbeddingPairBatch, PairBatch, adam_optimizer, targets_tensor, train_head_step, train_step,
};

/// Pairs in the Koch step on the CPU backend: one "same" and one "different" pair.
const KOCH_PAIRS_CPU: usize = 2;
/// Pairs in the Koch step on WebGPU: one, because SwiftShader (headless Chromium's software
/// WebGPU) needs ~30 s for a one-pair step and ~90 s for two on a 2-core machine.
const KOCH_PAIRS_WEBGPU: usize = 1;

fn now_ms() -> f64 {
    js_sys::Date::now()
}

async fn read_floats<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .into_data_async()
        .await
        .expect("async read")
        .try_into_vec::<f32>()
        .expect("f32 values")
}

fn max_abs_change(before: &[f32], after: &[f32]) -> f32 {
    assert_eq!(before.len(), after.len());
    before
        .iter()
        .zip(after)
        .map(|(b, a)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// The memory check's answer for this page's adapter at the Koch step's batch size.
async fn koch_fits_this_adapter() -> Result<(), KochMemoryError> {
    let limits = faceverify::backend::wgpu_buffer_limits()
        .await
        .expect("webdriver.json enables WebGPU, so the adapter has limits");
    check_koch_fits(&limits, KOCH_PAIRS_WEBGPU).map(|_| ())
}

#[wasm_bindgen_test]
async fn the_koch_memory_check_answers_for_the_real_adapter() {
    let started = now_ms();
    let limits = faceverify::backend::wgpu_buffer_limits()
        .await
        .expect("webdriver.json enables WebGPU, so the adapter has limits");
    // WebGPU guarantees at least its defaults.
    assert!(
        limits.max_storage_buffer_binding_size
            >= DeviceBufferLimits::WEBGPU_DEFAULTS.max_storage_buffer_binding_size,
        "{limits:?}"
    );
    assert!(
        limits.max_buffer_size >= DeviceBufferLimits::WEBGPU_DEFAULTS.max_buffer_size,
        "{limits:?}"
    );
    match check_koch_fits(&limits, 16) {
        Ok(estimate) => {
            assert_eq!(estimate.parameter_count, 38_960_448);
            assert_eq!(estimate.training_state_bytes, 4 * estimate.parameter_bytes);
            assert!(estimate.largest_parameter_bytes <= limits.max_storage_buffer_binding_size);
            console_log!("Koch network fits this adapter ({limits:?}): {estimate:?}");
        }
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.contains("MiB")
                    && (message.contains("maxStorageBufferBindingSize")
                        || message.contains("maxBufferSize"))
                    && message.contains("fine-tune mode or the CPU backend"),
                "{message}"
            );
            console_log!("Koch network does not fit this adapter ({limits:?}): {message}");
        }
    }
    // An adapter with only WebGPU's default limits never holds the 144 MiB dense weight.
    assert!(check_koch_fits(&DeviceBufferLimits::WEBGPU_DEFAULTS, 1).is_err());
    // The answer is immediate: no allocation, no device work.
    assert!(now_ms() - started < 10_000.0);
}

/// One step of the product's `train_step` on the full Koch siamese network (38,964,545
/// parameters, Adam) on `pairs` pairs: finite loss, and the weights moved.
async fn koch_training_step(device: &Device, pairs: usize) {
    let device = device.clone().autodiff();
    let model = Siamese::new(KochTowerConfig::new().init(&device), &device);
    let conv1_before = read_floats(model.tower.conv1.weight.val()).await;
    let head_before = read_floats(model.head.classifier.weight.val()).await;
    let labels = PairLabel::alternating(pairs);
    let batch = PairBatch::new(
        pattern_images(pairs, 0.0, &device),
        pattern_images(pairs, 1.3, &device),
        &labels,
        &device,
    );
    let mut optimizer = adam_optimizer();
    let started = now_ms();
    let (model, outcome) = train_step(model, &mut optimizer, batch, 1e-4).await;
    let outcome = outcome.expect("the step's loss reads back");
    let step_ms = now_ms() - started;
    assert!(outcome.loss.is_finite(), "{outcome:?}");
    assert_eq!(outcome.probabilities.len(), pairs);
    assert!(
        outcome
            .probabilities
            .iter()
            .all(|p| p.is_finite() && (0.0..=1.0).contains(p)),
        "{outcome:?}"
    );
    let conv1_change = max_abs_change(
        &conv1_before,
        &read_floats(model.tower.conv1.weight.val()).await,
    );
    let head_change = max_abs_change(
        &head_before,
        &read_floats(model.head.classifier.weight.val()).await,
    );
    assert!(
        conv1_change > 0.0 && conv1_change.is_finite(),
        "conv1 moved {conv1_change}"
    );
    assert!(
        head_change > 0.0 && head_change.is_finite(),
        "head moved {head_change}"
    );
    console_log!(
        "Koch step, {pairs} pairs: loss {:.4}, {step_ms:.0} ms; largest change conv1 {conv1_change:.2e}, head {head_change:.2e}",
        outcome.loss
    );
}

#[wasm_bindgen_test]
async fn one_koch_training_step_on_the_cpu_backend() {
    koch_training_step(&backend::cpu_device(), KOCH_PAIRS_CPU).await;
}

#[wasm_bindgen_test]
async fn one_koch_training_step_on_webgpu() {
    // The memory check decides first, as the app must: on an adapter that cannot bind the
    // dense weight the step is not attempted (it would fail validation or lose the device).
    if let Err(error) = koch_fits_this_adapter().await {
        console_log!("SKIPPED on this adapter, as the app would refuse classic mode: {error}");
        return;
    }
    let gpu = backend::wgpu_device().await.expect("WebGPU adapter");
    koch_training_step(&gpu, KOCH_PAIRS_WEBGPU).await;
}

/// A person's captures: the embedding of one face plus small per-capture noise (dlib's
/// descriptors of one person lie within ~0.4 of each other).
fn captures(centre: &[f32], count: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = SeededRng::new(seed);
    (0..count)
        .map(|_| {
            centre
                .iter()
                .map(|&v| v + rng.uniform(-0.025, 0.025) as f32)
                .collect()
        })
        .collect()
}

/// Fine-tune data: 10 anchors and 10 positives of one synthetic person, and 40 negatives
/// sampled from the bundled impostor model (the frozen tower's embeddings of other people).
fn fine_tune_inputs() -> FineTuneInputs {
    let impostors = ImpostorModel::from_json(include_str!("../models/impostors.json"))
        .expect("the bundled impostor model");
    let person = impostors.sample(1, 99).remove(0);
    FineTuneInputs {
        anchors: captures(&person, 10, 1),
        positives: captures(&person, 10, 2),
        negatives: Vec::new(),
        impostors: impostors.sample(40, 3),
        start: None,
    }
}

fn fine_tune_settings() -> RunSettings {
    let mut settings = RunSettings::fine_tune();
    settings.training = TrainingConfig {
        epochs: 1,
        batch_size: 8,
        pairs_per_class: Some(40),
        ..settings.training
    };
    settings.patience = None;
    settings
}

/// Loss of `head` (on an autodiff device) over `pairs` of rows of `table`, without training.
async fn head_loss(head: &SiameseHead, table: &Tensor<2>, pairs: &[LabelledPair<usize>]) -> f32 {
    let inference = head.valid();
    let (first, second) = pair_sides(table, pairs);
    let labels: Vec<PairLabel> = pairs.iter().map(|p| p.label).collect();
    let targets = targets_tensor(&labels, &table.device());
    let loss = binary_cross_entropy(
        inference.forward(first.inner(), second.inner()),
        targets.inner(),
    );
    read_floats(loss).await[0]
}

fn pair_sides(table: &Tensor<2>, pairs: &[LabelledPair<usize>]) -> (Tensor<2>, Tensor<2>) {
    let side = |pick: fn(&LabelledPair<usize>) -> usize| {
        let ids: Vec<i64> = pairs.iter().map(|p| pick(p) as i64).collect();
        let ids = Tensor::<1, burn::prelude::Int>::from_data(
            TensorData::new(ids, [pairs.len()]),
            &table.device(),
        );
        table.clone().select(0, ids)
    };
    (side(|p| p.anchor), side(|p| p.other))
}

/// One epoch of the product's `train_head_step` over cached embeddings on `device`: the
/// training pairs' loss falls and every step's loss is finite.
async fn fine_tune_epoch(device: &Device) {
    let device = device.clone().autodiff();
    let inputs = fine_tune_inputs();
    let settings = fine_tune_settings();
    // The product's pairs and split over the same table (anchors, positives, negatives).
    let trainer = fine_tune_trainer(&inputs, settings.clone()).expect("a fine-tune run");
    let PairSplit { train, .. } = trainer.split().clone();
    let rows: Vec<Vec<f32>> = [inputs.anchors, inputs.positives, inputs.impostors].concat();
    let dim = rows[0].len();
    let table = Tensor::<2>::from_data(TensorData::new(rows.concat(), [rows.len(), dim]), &device);
    let mut head = seeded_head(dim, settings.training.seed, &device);
    let mut optimizer = adam_optimizer();
    let before = head_loss(&head, &table, &train).await;
    let started = now_ms();
    let mut step_losses = Vec::new();
    for batch in epoch_batches(
        train.len(),
        settings.training.batch_size,
        settings.training.seed,
        0,
    ) {
        let pairs: Vec<LabelledPair<usize>> = batch.iter().map(|&i| train[i].clone()).collect();
        let (first, second) = pair_sides(&table, &pairs);
        let labels: Vec<PairLabel> = pairs.iter().map(|p| p.label).collect();
        let batch = EmbeddingPairBatch {
            first,
            second,
            targets: targets_tensor(&labels, &device),
        };
        let (updated, outcome) =
            train_head_step(head, &mut optimizer, batch, settings.training.learning_rate).await;
        head = updated;
        step_losses.push(outcome.expect("the step's loss reads back").loss);
    }
    let epoch_ms = now_ms() - started;
    let after = head_loss(&head, &table, &train).await;
    assert!(step_losses.len() >= 3, "{step_losses:?}");
    assert!(step_losses.iter().all(|l| l.is_finite()), "{step_losses:?}");
    assert!(
        after.is_finite() && after < before,
        "training loss {before} → {after}; steps {step_losses:?}"
    );
    console_log!(
        "fine-tune epoch, {} pairs in {} steps: loss {before:.4} → {after:.4}, {epoch_ms:.0} ms",
        train.len(),
        step_losses.len()
    );
}

#[wasm_bindgen_test]
async fn one_fine_tune_epoch_on_the_cpu_backend() {
    fine_tune_epoch(&backend::cpu_device()).await;
}

#[wasm_bindgen_test]
async fn one_fine_tune_epoch_on_webgpu() {
    let gpu = backend::wgpu_device().await.expect("WebGPU adapter");
    fine_tune_epoch(&gpu).await;
}

/// The product's fine-tune run (`fine_tune_trainer`, a `HeadModel` on the CPU backend, as the
/// worker runs it whatever the tower ran on) for one epoch, checkpoint included.
#[wasm_bindgen_test]
async fn the_fine_tune_trainer_runs_one_epoch_in_the_worker() {
    let mut trainer =
        fine_tune_trainer(&fine_tune_inputs(), fine_tune_settings()).expect("a fine-tune run");
    let train = trainer.split().train.clone();
    let before = trainer.model().evaluate_batch(&train).await.unwrap().loss;
    let stop = trainer
        .run(&RunControl::new(now_ms), &mut SilentObserver)
        .await
        .expect("one epoch");
    assert_eq!(stop, StopReason::Completed);
    let history = &trainer.position().history;
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(history[0].train_loss.is_finite(), "{history:?}");
    assert!(
        history[0].test_loss.is_some_and(f64::is_finite),
        "{history:?}"
    );
    let after = trainer.model().evaluate_batch(&train).await.unwrap().loss;
    assert!(after < before, "training loss {before} → {after}");
    // The end-of-epoch checkpoint reads everything asynchronously.
    let checkpoint = trainer.checkpoint().await.expect("checkpoint");
    assert!(!checkpoint.model.is_empty() && !checkpoint.optimiser.is_empty());
}
