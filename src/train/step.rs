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
    let loss = binary_cross_entropy(probabilities.clone(), batch.targets);
    let gradients = GradientsParams::from_grads(loss.backward(), &model);
    let model = optimizer.step(learning_rate, model, gradients);
    let outcome = read_outcome(loss.detach(), probabilities.detach()).await;
    (model, outcome)
}

/// Trains only the head on one batch of cached embeddings (fine-tune mode).
pub async fn train_head_step(
    head: SiameseHead,
    optimizer: &mut ModuleOptimizer,
    batch: EmbeddingPairBatch,
    learning_rate: f64,
) -> (SiameseHead, Result<StepOutcome, StepError>) {
    let probabilities = head.forward(batch.first, batch.second);
    let loss = binary_cross_entropy(probabilities.clone(), batch.targets);
    let gradients = GradientsParams::from_grads(loss.backward(), &head);
    let head = optimizer.step(learning_rate, head, gradients);
    let outcome = read_outcome(loss.detach(), probabilities.detach()).await;
    (head, outcome)
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

// Native only: the async functions are driven by pollster, a native-only dependency; the browser
// runs them through the worker's own tests.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::model::tower::ImageShape;
    use crate::train::metrics::{ConfusionCounts, area_under_curve, roc_curve};
    use crate::train::pairs::{SeededRng, make_pairs};
    use burn::nn::conv::{Conv2d, Conv2dConfig};
    use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::activation::{relu, sigmoid};

    /// A tiny tower with the Koch tower's structure: conv, ceil max-pool, dense + sigmoid.
    #[derive(Module, Debug)]
    struct TinyTower {
        conv: Conv2d,
        pool: MaxPool2d,
        dense: Linear,
    }

    const SIDE: usize = 8;

    impl TinyTower {
        fn new(device: &Device) -> Self {
            Self {
                conv: Conv2dConfig::new([1, 4], [3, 3]).init(device),
                pool: MaxPool2dConfig::new([2, 2]).with_ceil_mode(true).init(),
                // 8 → 6 (conv) → 3 (pool).
                dense: LinearConfig::new(4 * 3 * 3, 8).init(device),
            }
        }
    }

    impl EmbeddingTower for TinyTower {
        fn forward(&self, images: Tensor<4>) -> Tensor<2> {
            let x = self.pool.forward(relu(self.conv.forward(images)));
            sigmoid(self.dense.forward(x.flatten(1, 3)))
        }
        fn embedding_dim(&self) -> usize {
            8
        }
        fn input_size(&self) -> ImageShape {
            ImageShape::new(1, SIDE, SIDE)
        }
    }

    /// Synthetic "people": person 0 is bright on the left, person 1 on the right, person 2 at
    /// the top, each image with its own noise.
    fn face(person: usize, rng: &mut SeededRng) -> Vec<f32> {
        (0..SIDE * SIDE)
            .map(|i| {
                let (row, column) = (i / SIDE, i % SIDE);
                let lit = match person {
                    0 => column < SIDE / 2,
                    1 => column >= SIDE / 2,
                    _ => row < SIDE / 2,
                };
                let base = if lit { 0.8 } else { 0.2 };
                base + rng.uniform(-0.1, 0.1) as f32
            })
            .collect()
    }

    struct Dataset {
        images: Vec<Vec<f32>>,
        first: Vec<usize>,
        second: Vec<usize>,
        labels: Vec<PairLabel>,
    }

    fn dataset() -> Dataset {
        let mut rng = SeededRng::new(11);
        let mut images = Vec::new();
        let mut ids = |person: usize, count: usize, images: &mut Vec<Vec<f32>>| -> Vec<usize> {
            (0..count)
                .map(|_| {
                    images.push(face(person, &mut rng));
                    images.len() - 1
                })
                .collect()
        };
        let anchors = ids(0, 6, &mut images);
        let positives = ids(0, 6, &mut images);
        let mut negatives = ids(1, 3, &mut images);
        negatives.extend(ids(2, 3, &mut images));
        let pairs = make_pairs(&anchors, &positives, &negatives, Some(16), 5).unwrap();
        Dataset {
            images,
            first: pairs.iter().map(|p| p.anchor).collect(),
            second: pairs.iter().map(|p| p.other).collect(),
            labels: pairs.iter().map(|p| p.label).collect(),
        }
    }

    fn images_tensor(images: &[Vec<f32>], ids: &[usize], device: &Device) -> Tensor<4> {
        let values: Vec<f32> = ids
            .iter()
            .flat_map(|&i| images[i].iter().copied())
            .collect();
        Tensor::from_data(TensorData::new(values, [ids.len(), 1, SIDE, SIDE]), device)
    }

    fn batch(data: &Dataset, device: &Device) -> PairBatch {
        PairBatch::new(
            images_tensor(&data.images, &data.first, device),
            images_tensor(&data.images, &data.second, device),
            &data.labels,
            device,
        )
    }

    #[test]
    fn the_loss_falls_and_the_trained_model_separates_the_set() {
        let device = Device::flex().autodiff();
        device.seed(21);
        let data = dataset();
        let mut model = Siamese::new(TinyTower::new(&device), &device);
        let mut optimizer = adam_optimizer();
        let train = batch(&data, &device);

        let mut losses = Vec::new();
        for _ in 0..60 {
            let (updated, outcome) =
                pollster::block_on(train_step(model, &mut optimizer, train.clone(), 1e-2));
            model = updated;
            let outcome = outcome.unwrap();
            assert_eq!(outcome.probabilities.len(), 32);
            losses.push(outcome.loss);
        }
        let first = losses[0];
        let last = *losses.last().unwrap();
        assert!(last < 0.5 * first, "loss {first} → {last}: {losses:?}");

        // Evaluate with the inference model on the plain device.
        let plain = Device::flex();
        let inference = model.valid();
        let outcome = pollster::block_on(evaluate_batch(&inference, batch(&data, &plain))).unwrap();
        assert!(
            (outcome.loss - last).abs() < 0.2,
            "{} vs {last}",
            outcome.loss
        );
        let genuine: Vec<bool> = data.labels.iter().map(|l| l.is_same()).collect();
        let counts = ConfusionCounts::at_threshold(&outcome.probabilities, &genuine, 0.5).unwrap();
        assert_eq!(counts.accuracy(), 1.0, "{counts:?}");
        let roc = roc_curve(&outcome.probabilities, &genuine).unwrap();
        assert_eq!(area_under_curve(&roc), 1.0);
    }

    #[test]
    fn training_the_head_alone_on_cached_embeddings_learns_too() {
        let device = Device::flex().autodiff();
        device.seed(4);
        let data = dataset();
        // A fixed (untrained) tower stands in for the frozen pretrained one.
        let tower = TinyTower::new(&Device::flex());
        let embed = |ids: &[usize]| {
            let embeddings = tower.forward(images_tensor(&data.images, ids, &Device::flex()));
            Tensor::<2>::from_data(embeddings.into_data(), &device)
        };
        let embedded = EmbeddingPairBatch {
            first: embed(&data.first),
            second: embed(&data.second),
            targets: targets_tensor(&data.labels, &device),
        };
        let mut head = SiameseHead::new(8, &device);
        let mut optimizer = adam_optimizer();
        let mut losses = Vec::new();
        for _ in 0..40 {
            let (updated, outcome) = pollster::block_on(train_head_step(
                head,
                &mut optimizer,
                embedded.clone(),
                5e-2,
            ));
            head = updated;
            losses.push(outcome.unwrap().loss);
        }
        assert!(losses[39] < losses[0], "{losses:?}");
    }
}
