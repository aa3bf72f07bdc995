//! A training self-check: a few forward + backward passes with Adam steps on a tiny siamese
//! network, to prove that the whole training path (autodiff, optimiser, async loss readback)
//! works on a device before the app trusts it with a real run. The page's diagnostics button
//! and the browser tests run it on both backends.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::{relu, sigmoid};
use serde::{Deserialize, Serialize};

use crate::backend::BackendError;

/// Image side of the check's inputs: small so the check takes milliseconds even on the CPU.
const SIDE: usize = 16;
const PAIRS: usize = 4;

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
            embed: LinearConfig::new(4 * 7 * 7, 8).init(device),
        }
    }

    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let features = relu(self.conv.forward(images));
        let [batch, channels, height, width] = features.dims();
        sigmoid(
            self.embed
                .forward(features.reshape([batch, channels * height * width])),
        )
    }
}

/// Two images through one shared tower, L1 distance of the embeddings, a dense layer and a
/// sigmoid: the shape of the product's network, in miniature.
#[derive(Module, Debug)]
struct ProbeSiamese {
    tower: ProbeTower,
    head: Linear,
}

impl ProbeSiamese {
    fn forward(&self, left: Tensor<4>, right: Tensor<4>) -> Tensor<2> {
        let distance = (self.tower.forward(left) - self.tower.forward(right)).abs();
        sigmoid(self.head.forward(distance))
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

/// Binary cross-entropy on probabilities, clamped so log never sees 0.
fn binary_cross_entropy(probabilities: Tensor<2>, labels: Tensor<2>) -> Tensor<1> {
    let p = probabilities.clamp(1e-6, 1.0 - 1e-6);
    let one = p.ones_like();
    let loss = labels.clone() * p.clone().log() + (one.clone() - labels) * (one - p).log();
    loss.mean().neg()
}

/// Runs `steps` Adam steps on fixed data on `device` and reports the first and last loss.
pub async fn training_check(device: &Device, steps: usize) -> Result<TrainingCheck, BackendError> {
    let device = device.clone().autodiff();
    device.seed(7);
    let mut model = ProbeSiamese {
        tower: ProbeTower::new(&device),
        head: LinearConfig::new(8, 1).init(&device),
    };
    let mut optimizer = AdamConfig::new().init();
    let left = image_batch(0.0, &device);
    // Pairs 0 and 2 are "the same face" (a slightly shifted copy), 1 and 3 are different.
    let right = {
        let near = left.clone() * 0.95 + 0.02;
        let far = image_batch(2.5, &device);
        let same = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 1.0, 0.0], [PAIRS, 1, 1, 1]),
            &device,
        );
        near * same.clone() + far * (same.ones_like() - same)
    };
    let labels = Tensor::<2>::from_data(
        TensorData::new(vec![1.0f32, 0.0, 1.0, 0.0], [PAIRS, 1]),
        &device,
    );

    let mut losses = Vec::with_capacity(steps);
    for _ in 0..steps {
        let loss = binary_cross_entropy(model.forward(left.clone(), right.clone()), labels.clone());
        // Async readback: a synchronous read panics on WebGPU in the browser.
        let value = loss
            .clone()
            .into_data_async()
            .await
            .map_err(|e| BackendError::Read(format!("{e:?}")))?
            .try_to_vec::<f32>()
            .map_err(|e| BackendError::Read(format!("{e:?}")))?[0];
        losses.push(value);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-2, model, grads);
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
