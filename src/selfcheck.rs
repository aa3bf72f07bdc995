//! A training self-check: a few forward + backward passes with Adam steps of the product's
//! `Siamese` network and `train_step` on a tiny tower, to prove that the whole training path (autodiff, optimiser, async loss readback)
//! works on a device before the app trusts it with a real run. The page's diagnostics button
//! and the browser tests run it on both backends.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::{relu, sigmoid};
use serde::{Deserialize, Serialize};

use crate::backend::BackendError;
use crate::model::siamese::Siamese;
use crate::model::tower::{EmbeddingTower, ImageShape};
use crate::train::pairs::PairLabel;
use crate::train::step::{PairBatch, adam_optimizer, train_step};

/// Image side of the check's inputs: small so the check takes milliseconds even on the CPU.
const SIDE: usize = 16;
const PAIRS: usize = 4;
const EMBEDDING: usize = 8;

/// A tiny tower, so the product's own `Siamese` network and training step run in miniature.
#[derive(Module, Debug)]
struct ProbeTower {
    conv: Conv2d,
    embed: Linear,
}

impl ProbeTower {
    fn new(device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new([3, 4], [3, 3])
                .with_stride([2, 2])
                .init(device),
            embed: LinearConfig::new(4 * 7 * 7, EMBEDDING).init(device),
        }
    }
}

impl EmbeddingTower for ProbeTower {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let features = relu(self.conv.forward(images));
        let [batch, channels, height, width] = features.dims();
        sigmoid(
            self.embed
                .forward(features.reshape([batch, channels * height * width])),
        )
    }

    fn embedding_dim(&self) -> usize {
        EMBEDDING
    }

    fn input_size(&self) -> ImageShape {
        ImageShape::new(3, SIDE, SIDE)
    }
}

/// What the check measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingCheck {
    pub steps: usize,
    pub first_loss: f32,
    pub last_loss: f32,
}

impl TrainingCheck {
    /// The loss fell and stayed finite: gradients flow and the optimiser updates the weights.
    pub fn passed(&self) -> bool {
        self.first_loss.is_finite()
            && self.last_loss.is_finite()
            && self.last_loss < self.first_loss
    }
}

fn image_batch(seed: f32, device: &Device) -> Tensor<4> {
    let values: Vec<f32> = (0..PAIRS * 3 * SIDE * SIDE)
        .map(|i| (i as f32 * 0.37 + seed).sin() * 0.5 + 0.5)
        .collect();
    Tensor::from_data(TensorData::new(values, [PAIRS, 3, SIDE, SIDE]), device)
}

/// Runs `steps` Adam steps on fixed data on `device` and reports the first and last loss.
pub async fn training_check(device: &Device, steps: usize) -> Result<TrainingCheck, BackendError> {
    let device = device.clone().autodiff();
    device.seed(7);
    let mut model = Siamese::new(ProbeTower::new(&device), &device);
    let mut optimizer = adam_optimizer();
    let left = image_batch(0.0, &device);
    // Pairs 0 and 2 are "the same face" (a slightly shifted copy), 1 and 3 are different.
    let labels = [
        PairLabel::Same,
        PairLabel::Different,
        PairLabel::Same,
        PairLabel::Different,
    ];
    let right = {
        let near = left.clone() * 0.95 + 0.02;
        let far = image_batch(2.5, &device);
        let same = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 1.0, 0.0], [PAIRS, 1, 1, 1]),
            &device,
        );
        near * same.clone() + far * (same.ones_like() - same)
    };

    let mut losses = Vec::with_capacity(steps);
    for _ in 0..steps {
        let batch = PairBatch::new(left.clone(), right.clone(), &labels, &device);
        // The product's training step: async readback only (a synchronous read panics on
        // WebGPU in the browser).
        let (updated, outcome) = train_step(model, &mut optimizer, batch, 1e-2).await;
        model = updated;
        losses.push(outcome.map_err(|e| BackendError::Read(e.to_string()))?.loss);
    }
    Ok(TrainingCheck {
        steps,
        first_loss: losses.first().copied().unwrap_or(f32::NAN),
        last_loss: losses.last().copied().unwrap_or(f32::NAN),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_falls_on_the_cpu_backend() {
        let check = pollster::block_on(training_check(&Device::flex(), 8)).unwrap();
        assert_eq!(check.steps, 8);
        assert!(check.passed(), "{check:?}");
    }

    #[test]
    fn a_rising_or_nan_loss_fails() {
        let rising = TrainingCheck {
            steps: 2,
            first_loss: 0.5,
            last_loss: 0.6,
        };
        let nan = TrainingCheck {
            steps: 2,
            first_loss: f32::NAN,
            last_loss: 0.1,
        };
        assert!(!rising.passed());
        assert!(!nan.passed());
    }
}
