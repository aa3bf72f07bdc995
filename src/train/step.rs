//! One optimisation step of a siamese network, and the matching evaluation pass.
//!
//! Every read of a result goes through an `async` read-back (one [`Transaction`] per step for
//! the loss and the probabilities together): a synchronous read panics on WebGPU in a browser
//! and leaves its device broken. Natively these functions are driven by `pollster::block_on`.
//!
//! The model and the batch must live on the same device; for training that is an autodiff
//! device (`device.autodiff()`), for evaluation the inference model from `model.valid()` and a
//! plain device.

use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Transaction;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::loss::binary_cross_entropy;
use super::pairs::PairLabel;
use crate::model::siamese::{Siamese, SiameseHead};
use crate::model::tower::EmbeddingTower;

/// Adam's ε as in Keras (the tutorial's optimiser), rather than Burn's default 1e-5.
pub const ADAM_EPSILON: f32 = 1e-7;

/// The tutorial's optimiser: Adam (β₁ 0.9, β₂ 0.999, ε 1e-7). The learning rate is passed to
/// each step, from
/// [`TrainingConfig::learning_rate`](super::pairs::TrainingConfig::learning_rate).
pub fn adam_optimizer() -> ModuleOptimizer {
    AdamConfig::new().with_epsilon(ADAM_EPSILON).init()
}

/// A batch of image pairs with their targets.
#[derive(Debug, Clone)]
pub struct PairBatch {
    /// Anchors: `[B, C, H, W]`.
    pub first: Tensor<4>,
    /// Positives or negatives: `[B, C, H, W]`.
    pub second: Tensor<4>,
    /// 1 (same person) or 0 (different): `[B]`.
    pub targets: Tensor<1>,
}

impl PairBatch {
    /// A batch from its two image tensors and the pairs' labels.
    pub fn new(first: Tensor<4>, second: Tensor<4>, labels: &[PairLabel], device: &Device) -> Self {
        assert_eq!(
            first.dims(),
            second.dims(),
            "both sides of a pair batch match"
        );
        assert_eq!(first.dims()[0], labels.len(), "one label per pair");
        Self {
            first,
            second,
            targets: targets_tensor(labels, device),
        }
    }
}

/// A batch of embedding pairs with their targets, for training the head alone (fine-tune mode:
/// the tower is frozen and its embeddings were computed once).
#[derive(Debug, Clone)]
pub struct EmbeddingPairBatch {
    /// Anchor embeddings: `[B, D]`.
    pub first: Tensor<2>,
    /// Positive or negative embeddings: `[B, D]`.
    pub second: Tensor<2>,
    /// 1 or 0: `[B]`.
    pub targets: Tensor<1>,
}

/// The `[B]` target tensor for `labels`.
pub fn targets_tensor(labels: &[PairLabel], device: &Device) -> Tensor<1> {
    let values: Vec<f32> = labels.iter().map(|l| l.target()).collect();
    Tensor::from_data(TensorData::new(values, [labels.len()]), device)
}

/// What one step (or evaluation pass) measured, read back from the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepOutcome {
    /// Mean binary cross-entropy of the batch (before the update, for a training step).
    pub loss: f32,
    /// The network's probability for each pair, in batch order — for precision and recall.
    pub probabilities: Vec<f32>,
}

/// Why a step's results could not be read.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StepError {
    /// The device failed to execute or return the batch's results.
    #[error("reading the step's results back from the device failed: {0}")]
    Readback(String),
}

async fn read_outcome(loss: Tensor<1>, probabilities: Tensor<1>) -> Result<StepOutcome, StepError> {
    let data = Transaction::default()
        .register(loss)
        .register(probabilities)
        .execute_async()
        .await
        .map_err(|e| StepError::Readback(e.to_string()))?;
    let [loss, probabilities]: [TensorData; 2] = data
        .try_into()
        .map_err(|_| StepError::Readback("expected two tensors back".into()))?;
    let to_floats = |data: TensorData| {
        data.try_into_vec::<f32>()
            .map_err(|e| StepError::Readback(format!("{e:?}")))
    };
    let loss = to_floats(loss)?;
    Ok(StepOutcome {
        loss: loss[0],
        probabilities: to_floats(probabilities)?,
    })
}

/// Trains `model` on one batch: forward, binary cross-entropy, backward, one Adam step.
///
/// Returns the updated model even when reading the loss back fails: the update itself has
/// already been applied by then, and the caller decides whether to go on.
pub async fn train_step<T: EmbeddingTower>(
    model: Siamese<T>,
    optimizer: &mut ModuleOptimizer,
    batch: PairBatch,
    learning_rate: f64,
) -> (Siamese<T>, Result<StepOutcome, StepError>) {
    let probabilities = model.forward(batch.first, batch.second);
    optimise(
        model,
        probabilities,
        batch.targets,
        optimizer,
        learning_rate,
    )
    .await
}

/// Trains only the head on one batch of cached embeddings (fine-tune mode), as [`train_step`].
pub async fn train_head_step(
    head: SiameseHead,
    optimizer: &mut ModuleOptimizer,
    batch: EmbeddingPairBatch,
    learning_rate: f64,
) -> (SiameseHead, Result<StepOutcome, StepError>) {
    let probabilities = head.forward(batch.first, batch.second);
    optimise(head, probabilities, batch.targets, optimizer, learning_rate).await
}

/// The rest of a training step once `module` gave its `probabilities` for a batch labelled
/// `targets`: binary cross-entropy, backward, one Adam step, the outcome read back.
async fn optimise<M: Module>(
    module: M,
    probabilities: Tensor<1>,
    targets: Tensor<1>,
    optimizer: &mut ModuleOptimizer,
    learning_rate: f64,
) -> (M, Result<StepOutcome, StepError>) {
    let loss = binary_cross_entropy(probabilities.clone(), targets);
    let gradients = GradientsParams::from_grads(loss.backward(), &module);
    let module = optimizer.step(learning_rate, module, gradients);
    let outcome = read_outcome(loss.detach(), probabilities.detach()).await;
    (module, outcome)
}

/// Loss and probabilities of `model` on a batch, without training (the test split).
pub async fn evaluate_batch<T: EmbeddingTower>(
    model: &Siamese<T>,
    batch: PairBatch,
) -> Result<StepOutcome, StepError> {
    let probabilities = model.forward(batch.first, batch.second);
    let loss = binary_cross_entropy(probabilities.clone(), batch.targets);
    read_outcome(loss, probabilities).await
}
