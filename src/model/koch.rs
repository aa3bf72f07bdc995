//! The tutorial's embedding network: the convolutional tower of Koch, Zemel and Salakhutdinov,
//! "Siamese Neural Networks for One-shot Image Recognition" (ICML 2015), at 100×100×3.
//!
//! | stage | output (channels × height × width) |
//! |---|---|
//! | input | 3 × 100 × 100 |
//! | Conv 64@10×10, ReLU | 64 × 91 × 91 |
//! | MaxPool 2×2, stride 2, ceil | 64 × 46 × 46 |
//! | Conv 128@7×7, ReLU | 128 × 40 × 40 |
//! | MaxPool | 128 × 20 × 20 |
//! | Conv 128@4×4, ReLU | 128 × 17 × 17 |
//! | MaxPool | 128 × 9 × 9 |
//! | Conv 256@4×4, ReLU | 256 × 6 × 6 |
//! | flatten | 9,216 |
//! | Dense 4,096, sigmoid | 4,096 |
//!
//! 38,960,448 parameters, 97% of them in the dense layer.
//!
//! # The pooling windows, and the tutorial's mistake we do not copy
//!
//! The tutorial's Keras code writes `MaxPooling2D(64, (2,2), padding='same')`. Keras reads the
//! first argument as `pool_size` and the second as `strides`, so it pools with **64×64 windows**
//! at stride 2. With `padding='same'` the output size is `ceil(input / stride)` whatever the
//! window, so the shapes (46, 20, 9) come out exactly as Koch's and nothing looks wrong — but
//! each output is the maximum over a 64×64 region (clipped at the borders): after the first
//! pool almost every position of a 91×91 map sees the same few strongest activations, and
//! most spatial detail is gone. Koch's network pools 2×2 windows at stride 2; the intended
//! argument was `MaxPooling2D((2,2), padding='same')`. We implement the paper's 2×2 pooling,
//! with the ceil rounding that Keras' `'same'` padding gives for a 2×2 window: an odd-sized map
//! (91, 17) keeps its last row and column as a 1-wide window instead of dropping them, which is
//! what produces 46 and 9 rather than 45 and 8.
//!
//! # Memory
//!
//! The dense weight alone is 9,216 × 4,096 × 4 bytes = 151 MB (144 MiB), above WebGPU's default
//! `maxStorageBufferBindingSize` of 128 MiB; training with Adam adds a gradient and two moment
//! estimates per parameter. [`check_koch_fits`] turns a device's limits into a clear answer
//! before anything is allocated, so a browser without enough GPU memory gets an error message
//! and not a hang or a lost device.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::{relu, sigmoid};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::tower::{EmbeddingTower, ImageShape};

/// The tower's input: 100×100 RGB, as in the tutorial.
pub const KOCH_INPUT: ImageShape = ImageShape::new(3, 100, 100);
/// Length of the embedding the tower produces.
pub const KOCH_EMBEDDING_DIM: usize = 4096;

/// `count` deterministic inputs of the tower's shape in 0..1, a different pattern per `phase`:
/// the workload of the Koch timings and device checks (the content does not change the cost).
pub fn pattern_images(count: usize, phase: f32, device: &Device) -> Tensor<4> {
    let [c, h, w] = KOCH_INPUT.as_array();
    let values: Vec<f32> = (0..count * c * h * w)
        .map(|i| (i as f32 * 0.013 + phase).sin() * 0.5 + 0.5)
        .collect();
    Tensor::from_data(TensorData::new(values, [count, c, h, w]), device)
}
/// Length of the flattened output of the last convolution (256 × 6 × 6).
pub const KOCH_FLATTENED_DIM: usize = 256 * 6 * 6;
/// Number of trainable parameters of the tower.
pub const KOCH_TOWER_PARAMS: usize = 38_960_448;

/// Bytes per parameter or activation: the networks run in f32.
const BYTES_PER_F32: u64 = 4;

/// How the tower's weights are initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KochInitialization {
    /// What the tutorial's Keras layers do by default: Glorot-uniform weights, zero biases.
    #[default]
    Tutorial,
    /// Koch et al.'s scheme: convolution weights N(0, 10⁻²), dense weights N(0, 2·10⁻¹),
    /// all biases N(0.5, 10⁻²) (standard deviations). The positive biases keep the ReLUs of a
    /// deep, freshly initialised tower from starting dead.
    Koch,
}

/// Configuration of a [`KochTower`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KochTowerConfig {
    /// Weight initialisation scheme.
    #[serde(default)]
    pub initialization: KochInitialization,
}

impl KochTowerConfig {
    /// The default configuration (tutorial initialisation).
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the configuration with another initialisation scheme.
    pub fn with_initialization(mut self, initialization: KochInitialization) -> Self {
        self.initialization = initialization;
        self
    }

    /// Builds the tower on `device`.
    pub fn init(&self, device: &Device) -> KochTower {
        let conv = |channels_in: usize, channels_out: usize, kernel: usize| {
            self.init_conv(channels_in, channels_out, kernel, device)
        };
        KochTower {
            conv1: conv(3, 64, 10),
            conv2: conv(64, 128, 7),
            conv3: conv(128, 128, 4),
            conv4: conv(128, 256, 4),
            // Same window and rounding for all three pools; see the module documentation.
            pool: MaxPool2dConfig::new([2, 2])
                .with_strides([2, 2])
                .with_ceil_mode(true)
                .init(),
            dense: self.init_dense(device),
        }
    }

    fn init_conv(
        &self,
        channels_in: usize,
        channels_out: usize,
        kernel: usize,
        device: &Device,
    ) -> Conv2d {
        let config = Conv2dConfig::new([channels_in, channels_out], [kernel, kernel])
            .with_initializer(self.weight_initializer(KOCH_CONV_WEIGHT_STD));
        let mut conv = config.init(device);
        conv.bias = Some(self.bias_param(channels_out, device));
        conv
    }

    fn init_dense(&self, device: &Device) -> Linear {
        let config = LinearConfig::new(KOCH_FLATTENED_DIM, KOCH_EMBEDDING_DIM)
            .with_initializer(self.weight_initializer(KOCH_DENSE_WEIGHT_STD));
        let mut dense = config.init(device);
        dense.bias = Some(self.bias_param(KOCH_EMBEDDING_DIM, device));
        dense
    }

    fn weight_initializer(&self, koch_std: f64) -> Initializer {
        match self.initialization {
            // Keras' glorot_uniform: U(±sqrt(6 / (fan_in + fan_out))), which is Burn's
            // Xavier-uniform with gain 1.
            KochInitialization::Tutorial => Initializer::XavierUniform { gain: 1.0 },
            KochInitialization::Koch => Initializer::Normal {
                mean: 0.0,
                std: koch_std,
            },
        }
    }

    // Burn's configs initialise biases with the weights' initialiser; both schemes want
    // something else for biases, so they are replaced here.
    fn bias_param(&self, len: usize, device: &Device) -> Param<Tensor<1>> {
        let bias = match self.initialization {
            KochInitialization::Tutorial => Tensor::zeros([len], device),
            KochInitialization::Koch => Tensor::random(
                [len],
                Distribution::Normal(KOCH_BIAS_MEAN, KOCH_BIAS_STD),
                device,
            ),
        };
        Param::from_tensor(bias)
    }
}

/// Koch et al.: convolution weights ~ N(0, 10⁻²).
const KOCH_CONV_WEIGHT_STD: f64 = 1e-2;
/// Koch et al.: fully connected weights ~ N(0, 2·10⁻¹).
const KOCH_DENSE_WEIGHT_STD: f64 = 2e-1;
/// Koch et al.: biases ~ N(0.5, 10⁻²).
const KOCH_BIAS_MEAN: f64 = 0.5;
const KOCH_BIAS_STD: f64 = 1e-2;

/// The tutorial's (and Koch's) embedding network. See the module documentation.
#[derive(Module, Debug)]
pub struct KochTower {
    /// Conv 64@10×10.
    pub conv1: Conv2d,
    /// Conv 128@7×7.
    pub conv2: Conv2d,
    /// Conv 128@4×4.
    pub conv3: Conv2d,
    /// Conv 256@4×4.
    pub conv4: Conv2d,
    /// 2×2 max pooling, stride 2, ceil rounding (shared: it has no parameters).
    pub pool: MaxPool2d,
    /// Dense 9,216 → 4,096, followed by a sigmoid.
    pub dense: Linear,
}

/// Every intermediate result of one forward pass, for checking shapes stage by stage.
#[derive(Debug, Clone)]
pub struct KochStages {
    /// After conv 1 + ReLU: `[B, 64, 91, 91]`.
    pub conv1: Tensor<4>,
    /// After pool 1: `[B, 64, 46, 46]`.
    pub pool1: Tensor<4>,
    /// After conv 2 + ReLU: `[B, 128, 40, 40]`.
    pub conv2: Tensor<4>,
    /// After pool 2: `[B, 128, 20, 20]`.
    pub pool2: Tensor<4>,
    /// After conv 3 + ReLU: `[B, 128, 17, 17]`.
    pub conv3: Tensor<4>,
    /// After pool 3: `[B, 128, 9, 9]`.
    pub pool3: Tensor<4>,
    /// After conv 4 + ReLU: `[B, 256, 6, 6]`.
    pub conv4: Tensor<4>,
    /// Flattened: `[B, 9216]`.
    pub flattened: Tensor<2>,
    /// Dense + sigmoid: `[B, 4096]`.
    pub embedding: Tensor<2>,
}

impl KochTower {
    /// Runs the tower and keeps every stage's output.
    pub fn forward_stages(&self, images: Tensor<4>) -> KochStages {
        let conv1 = relu(self.conv1.forward(images));
        let pool1 = self.pool.forward(conv1.clone());
        let conv2 = relu(self.conv2.forward(pool1.clone()));
        let pool2 = self.pool.forward(conv2.clone());
        let conv3 = relu(self.conv3.forward(pool2.clone()));
        let pool3 = self.pool.forward(conv3.clone());
        let conv4 = relu(self.conv4.forward(pool3.clone()));
        let flattened: Tensor<2> = conv4.clone().flatten(1, 3);
        let embedding = sigmoid(self.dense.forward(flattened.clone()));
        KochStages {
            conv1,
            pool1,
            conv2,
            pool2,
            conv3,
            pool3,
            conv4,
            flattened,
            embedding,
        }
    }
}

impl EmbeddingTower for KochTower {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(relu(self.conv1.forward(images)));
        let x = self.pool.forward(relu(self.conv2.forward(x)));
        let x = self.pool.forward(relu(self.conv3.forward(x)));
        let x = relu(self.conv4.forward(x));
        sigmoid(self.dense.forward(x.flatten(1, 3)))
    }

    fn embedding_dim(&self) -> usize {
        KOCH_EMBEDDING_DIM
    }

    fn input_size(&self) -> ImageShape {
        KOCH_INPUT
    }
}

/// The buffer limits of a GPU device that decide whether the Koch network fits.
///
/// The web layer fills this from the WebGPU adapter's `limits` (`maxStorageBufferBindingSize`,
/// `maxBufferSize`); natively it comes from wgpu's `Limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceBufferLimits {
    /// Largest range of one buffer a shader may bind as storage, in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer the device can allocate, in bytes.
    pub max_buffer_size: u64,
}

impl DeviceBufferLimits {
    /// WebGPU's defaults, which a page gets unless it requests more from the adapter:
    /// 128 MiB per storage binding and 256 MiB per buffer.
    pub const WEBGPU_DEFAULTS: Self = Self {
        max_storage_buffer_binding_size: 128 << 20,
        max_buffer_size: 256 << 20,
    };
}

/// The memory the Koch network needs, in bytes, for a given batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KochMemoryEstimate {
    /// Trainable parameters of the tower.
    pub parameter_count: u64,
    /// All parameters in f32.
    pub parameter_bytes: u64,
    /// The largest single parameter: the 9,216 × 4,096 dense weight.
    pub largest_parameter_bytes: u64,
    /// Parameters, their gradients and Adam's two moment estimates: four copies.
    pub training_state_bytes: u64,
    /// The largest layer output at this batch size (the first convolution's, `[B, 64, 91, 91]`).
    /// Scratch space a backend allocates inside a kernel (e.g. im2col) is not included.
    pub largest_activation_bytes: u64,
}

impl KochMemoryEstimate {
    /// The estimate for a tower run on `batch_size` images at a time.
    pub fn for_batch(batch_size: usize) -> Self {
        let parameter_count = KOCH_TOWER_PARAMS as u64;
        let parameter_bytes = parameter_count * BYTES_PER_F32;
        Self {
            parameter_count,
            parameter_bytes,
            largest_parameter_bytes: (KOCH_FLATTENED_DIM * KOCH_EMBEDDING_DIM) as u64
                * BYTES_PER_F32,
            // Adam: the weights, one gradient and two moments per weight.
            training_state_bytes: 4 * parameter_bytes,
            largest_activation_bytes: (batch_size * 64 * 91 * 91) as u64 * BYTES_PER_F32,
        }
    }
}

/// Why a device cannot hold the Koch network.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KochMemoryError {
    /// One tensor is larger than a single buffer binding may be.
    #[error(
        "this GPU cannot hold the Koch network: its {tensor} needs {} in one buffer, but the \
         device allows at most {} per {limit} — use fine-tune mode or the CPU backend",
        mib(*.required_bytes),
        mib(*.limit_bytes)
    )]
    TensorExceedsLimit {
        /// Which tensor does not fit.
        tensor: &'static str,
        /// Its size in bytes.
        required_bytes: u64,
        /// Which device limit it exceeds.
        limit: &'static str,
        /// The limit in bytes.
        limit_bytes: u64,
    },
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

/// Checks that a device with `limits` can bind every tensor of the Koch network at
/// `batch_size` images per tower pass, and returns the memory estimate when it can.
///
/// Buffer sizes are the hard limits: exceeding them fails validation in WebGPU (or, worse,
/// loses the device), whereas total memory is not exposed by WebGPU at all. The estimate's
/// `training_state_bytes` is what the page should show beside the check.
pub fn check_koch_fits(
    limits: &DeviceBufferLimits,
    batch_size: usize,
) -> Result<KochMemoryEstimate, KochMemoryError> {
    let estimate = KochMemoryEstimate::for_batch(batch_size);
    let tensors = [
        (
            "dense weight (9,216 × 4,096)",
            estimate.largest_parameter_bytes,
        ),
        (
            "first convolution's output at this batch size",
            estimate.largest_activation_bytes,
        ),
    ];
    for (tensor, required_bytes) in tensors {
        let device_limits = [
            (
                "storage-buffer binding (maxStorageBufferBindingSize)",
                limits.max_storage_buffer_binding_size,
            ),
            ("buffer (maxBufferSize)", limits.max_buffer_size),
        ];
        for (limit, limit_bytes) in device_limits {
            if required_bytes > limit_bytes {
                return Err(KochMemoryError::TensorExceedsLimit {
                    tensor,
                    required_bytes,
                    limit,
                    limit_bytes,
                });
            }
        }
    }
    Ok(estimate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device::flex()
    }

    #[test]
    fn parameter_count_matches_the_paper_and_the_tutorial() {
        let tower = KochTowerConfig::new().init(&device());
        assert_eq!(tower.num_params(), KOCH_TOWER_PARAMS);
        assert_eq!(KOCH_TOWER_PARAMS, 38_960_448);
        assert_eq!(tower.embedding_dim(), 4096);
        assert_eq!(tower.input_size(), ImageShape::new(3, 100, 100));
    }

    #[test]
    fn every_stage_has_the_tutorials_shape() {
        let device = device();
        let tower = KochTowerConfig::new().init(&device);
        let images = Tensor::random([1, 3, 100, 100], Distribution::Default, &device);
        let stages = tower.forward_stages(images.clone());
        assert_eq!(stages.conv1.dims(), [1, 64, 91, 91]);
        assert_eq!(stages.pool1.dims(), [1, 64, 46, 46]);
        assert_eq!(stages.conv2.dims(), [1, 128, 40, 40]);
        assert_eq!(stages.pool2.dims(), [1, 128, 20, 20]);
        assert_eq!(stages.conv3.dims(), [1, 128, 17, 17]);
        assert_eq!(stages.pool3.dims(), [1, 128, 9, 9]);
        assert_eq!(stages.conv4.dims(), [1, 256, 6, 6]);
        assert_eq!(stages.flattened.dims(), [1, KOCH_FLATTENED_DIM]);
        assert_eq!(stages.embedding.dims(), [1, 4096]);

        // The trait's forward is the same computation.
        let embedding = EmbeddingTower::forward(&tower, images);
        let difference: f32 = (embedding - stages.embedding)
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(difference < 1e-6, "difference {difference}");
    }

    #[test]
    fn ceil_pooling_keeps_the_last_odd_column_as_a_one_wide_window() {
        let device = device();
        let tower = KochTowerConfig::new().init(&device);
        // A 1×1×3×3 map of negative values: a zero-padded pool would report 0 at the border.
        let values: Vec<f32> = (1..=9).map(|v| -(v as f32)).collect();
        let input = Tensor::<4>::from_data(TensorData::new(values, [1, 1, 3, 3]), &device);
        let pooled = tower.pool.forward(input);
        assert_eq!(pooled.dims(), [1, 1, 2, 2]);
        let pooled: Vec<f32> = pooled.into_data().try_into_vec::<f32>().unwrap();
        // Windows: {-1,-2,-4,-5}, {-3,-6}, {-7,-8}, {-9}.
        assert_eq!(pooled, vec![-1.0, -3.0, -7.0, -9.0]);
    }

    #[test]
    fn koch_initialisation_draws_positive_biases() {
        let device = device();
        device.seed(7);
        let tower = KochTowerConfig::new()
            .with_initialization(KochInitialization::Koch)
            .init(&device);
        let bias = tower.conv1.bias.as_ref().unwrap().val();
        let mean: f32 = bias.clone().mean().into_scalar::<f32>();
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        let weight_std: f32 = tower
            .conv1
            .weight
            .val()
            .var(0)
            .mean()
            .sqrt()
            .into_scalar::<f32>();
        assert!((weight_std - 0.01).abs() < 0.003, "std {weight_std}");

        let tutorial = KochTowerConfig::new().init(&device);
        let bias_sum: f32 = tutorial
            .dense
            .bias
            .as_ref()
            .unwrap()
            .val()
            .abs()
            .sum()
            .into_scalar::<f32>();
        assert_eq!(bias_sum, 0.0);
    }

    #[test]
    fn default_webgpu_limits_cannot_hold_the_dense_weight() {
        let error = check_koch_fits(&DeviceBufferLimits::WEBGPU_DEFAULTS, 16).unwrap_err();
        let KochMemoryError::TensorExceedsLimit {
            required_bytes,
            limit_bytes,
            ..
        } = error.clone();
        assert_eq!(required_bytes, 150_994_944);
        assert_eq!(limit_bytes, 128 << 20);
        let message = error.to_string();
        assert!(message.contains("144.0 MiB"), "{message}");
        assert!(message.contains("128.0 MiB"), "{message}");
    }

    /// Limits an adapter may grant when the page asks for more than the defaults.
    const RAISED_LIMITS: DeviceBufferLimits = DeviceBufferLimits {
        max_storage_buffer_binding_size: 1 << 30,
        max_buffer_size: 1 << 30,
    };

    #[test]
    fn raised_limits_hold_it_and_the_estimate_counts_adam() {
        let estimate = check_koch_fits(&RAISED_LIMITS, 16).unwrap();
        assert_eq!(estimate.parameter_bytes, 38_960_448 * 4);
        assert_eq!(estimate.training_state_bytes, 4 * 38_960_448 * 4);
        assert_eq!(estimate.largest_activation_bytes, 16 * 64 * 91 * 91 * 4);
    }

    #[test]
    fn a_small_max_buffer_size_is_reported_even_with_a_large_binding_limit() {
        let limits = DeviceBufferLimits {
            max_buffer_size: 100 << 20,
            ..RAISED_LIMITS
        };
        let error = check_koch_fits(&limits, 1).unwrap_err();
        assert!(error.to_string().contains("maxBufferSize"), "{error}");
    }

    #[test]
    fn a_huge_batch_is_limited_by_its_activations() {
        // 512 images: 64×91×91×4 bytes each = 1.01 GiB for the first layer's output.
        let error = check_koch_fits(&RAISED_LIMITS, 512).unwrap_err();
        assert!(error.to_string().contains("first convolution"), "{error}");
    }
}
