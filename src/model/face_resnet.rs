//! The pretrained 128-d face embedding tower: dlib's ResNet face descriptor
//! (`dlib_face_recognition_resnet_model_v1`, released by Davis King into the public domain),
//! exactly as face-api (`@vladmandic/face-api` 1.7.15, `FaceRecognitionNet`) runs it.
//!
//! Input: `[B, 3, 150, 150]` RGB with values in 0..255 (face-api's range); the module itself
//! subtracts the per-channel mean [`MEAN_RGB`] and divides by 255. Output: `[B, 128]`, the face
//! descriptor, not normalised (dlib's descriptors have a length near 1; same person ⇔ Euclidean
//! distance below ~0.6 by dlib's convention).
//!
//! Layers (face-api's names; every conv is conv + bias, then a per-channel affine "scale"):
//! - `conv32_down`: 7×7/2 valid conv 3→32, ReLU; max pool 3×3/2 valid (150 → 72 → 35)
//! - `conv32_1..3`: residual blocks of two 3×3 "same" convs at 32 channels
//! - `conv64_down`, `conv128_down`, `conv256_down`, `conv256_down_out`: residual down blocks
//!   (first conv 3×3/2 valid; shortcut = 2×2/2 average pool, zero-padded in channels when they
//!   grow, and the conv branch zero-padded by one row/column at the bottom/right when the pooled
//!   shortcut is larger: 35 → 17 → 8 → 3|4 → 1|2)
//! - `conv64_1..3`, `conv128_1..2`, `conv256_1..2`: residual blocks
//! - global average over the remaining 2×2, then `fc`: 256 → 128 without bias.
//!
//! Weights: `models/face_resnet.q8.bin` (see `models/README.md`), parsed by
//! [`WeightsFile`] on the CPU and uploaded with [`FaceResNet::from_weights`] to any device.

use burn::module::{Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

use super::read_f32s;
use super::weights::{WeightsFile, WeightsFileError};

/// Side of the square input in pixels.
pub const INPUT_SIZE: usize = 150;
/// Length of the face descriptor.
pub const EMBEDDING_DIM: usize = 128;
/// Per-channel mean that face-api subtracts from 0..255 RGB before dividing by 255.
pub const MEAN_RGB: [f32; 3] = [122.782, 117.001, 104.298];
/// The committed weights file, relative to the crate root.
pub const WEIGHTS_PATH: &str = "models/face_resnet.q8.bin";

/// The `model` its weights file's header names.
const WEIGHTS_MODEL: &str = "face_resnet";

/// Errors reading a weights file.
#[derive(Debug, thiserror::Error)]
pub enum FaceResNetError {
    #[error(transparent)]
    Weights(#[from] WeightsFileError),
    #[error("face_resnet weights: {0}")]
    Format(String),
    #[error("face_resnet: reading a tensor back failed: {0}")]
    Read(String),
}

/// Per-channel affine transform `x * weight + bias` (face-api's `scale` layer; dlib's affine layer
/// that replaced batch norm at inference time).
#[derive(Module, Debug)]
pub struct ScaleLayer {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
}

impl ScaleLayer {
    pub fn new(channels: usize, device: &Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::ones([channels], device)),
            bias: Param::from_tensor(Tensor::zeros([channels], device)),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let c = self.weight.dims()[0];
        x * self.weight.val().reshape([1, c, 1, 1]) + self.bias.val().reshape([1, c, 1, 1])
    }
}

/// Convolution (with bias) followed by a [`ScaleLayer`] (face-api's `convLayer`).
#[derive(Module, Debug)]
pub struct ConvLayer {
    pub conv: Conv2d,
    pub scale: ScaleLayer,
}

impl ConvLayer {
    /// `down`: stride 2 with "valid" padding (face-api's `convDown`); otherwise stride 1 with
    /// "same" padding (symmetric for the odd kernels used here).
    pub fn new(channels: [usize; 2], kernel: usize, down: bool, device: &Device) -> Self {
        let (stride, padding) = if down {
            ([2, 2], PaddingConfig2d::Valid)
        } else {
            let p = kernel / 2;
            ([1, 1], PaddingConfig2d::Explicit(p, p, p, p))
        };
        let conv = Conv2dConfig::new(channels, [kernel, kernel])
            .with_stride(stride)
            .with_padding(padding)
            .with_bias(true)
            .with_initializer(burn::module::Initializer::Zeros)
            .init(device);
        Self {
            conv,
            scale: ScaleLayer::new(channels[1], device),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.scale.forward(self.conv.forward(x))
    }
}

/// Two [`ConvLayer`]s with an identity shortcut (face-api's `residual`), or, when `down`, a first
/// conv with stride 2 and an average-pooled, zero-padded shortcut (face-api's `residualDown`).
#[derive(Module, Debug)]
pub struct ResidualBlock {
    pub conv1: ConvLayer,
    pub conv2: ConvLayer,
    pub pool: AvgPool2d,
    #[module(skip)]
    pub down: bool,
}

impl ResidualBlock {
    pub fn new(channels: [usize; 2], down: bool, device: &Device) -> Self {
        assert!(
            down || channels[0] == channels[1],
            "a residual block without down-sampling keeps its width"
        );
        Self {
            conv1: ConvLayer::new(channels, 3, down, device),
            conv2: ConvLayer::new([channels[1], channels[1]], 3, false, device),
            pool: AvgPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            down,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = relu(self.conv1.forward(x.clone()));
        let mut out = self.conv2.forward(out);
        if !self.down {
            return relu(out + x);
        }
        let mut pooled = self.pool.forward(x);
        let [b, c_out, h_out, w_out] = out.dims();
        let [_, c_in, h_pool, w_pool] = pooled.dims();
        let device = out.device();
        if h_pool != h_out || w_pool != w_out {
            // face-api appends one row of zeros at the bottom, then one column at the right.
            out = Tensor::cat(
                vec![
                    out,
                    Tensor::zeros([b, c_out, h_pool - h_out, w_out], &device),
                ],
                2,
            );
            out = Tensor::cat(
                vec![
                    out,
                    Tensor::zeros([b, c_out, h_pool, w_pool - w_out], &device),
                ],
                3,
            );
        }
        if c_in != c_out {
            pooled = Tensor::cat(
                vec![
                    pooled,
                    Tensor::zeros([b, c_out - c_in, h_pool, w_pool], &device),
                ],
                1,
            );
        }
        relu(pooled + out)
    }
}

/// dlib's ResNet face descriptor. See the module documentation.
#[derive(Module, Debug)]
pub struct FaceResNet {
    pub conv32_down: ConvLayer,
    pub pool: MaxPool2d,
    pub conv32_1: ResidualBlock,
    pub conv32_2: ResidualBlock,
    pub conv32_3: ResidualBlock,
    pub conv64_down: ResidualBlock,
    pub conv64_1: ResidualBlock,
    pub conv64_2: ResidualBlock,
    pub conv64_3: ResidualBlock,
    pub conv128_down: ResidualBlock,
    pub conv128_1: ResidualBlock,
    pub conv128_2: ResidualBlock,
    pub conv256_down: ResidualBlock,
    pub conv256_1: ResidualBlock,
    pub conv256_2: ResidualBlock,
    pub conv256_down_out: ResidualBlock,
    /// `[256, 128]`, applied as `x · fc`.
    pub fc: Param<Tensor<2>>,
}

impl FaceResNet {
    /// The architecture with placeholder parameters (zeros; scales one); load real ones with
    /// [`FaceResNet::from_weights`] or [`FaceResNet::from_bytes`].
    pub fn new(device: &Device) -> Self {
        let r = |c: [usize; 2], down: bool| ResidualBlock::new(c, down, device);
        Self {
            conv32_down: ConvLayer::new([3, 32], 7, true, device),
            pool: MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).init(),
            conv32_1: r([32, 32], false),
            conv32_2: r([32, 32], false),
            conv32_3: r([32, 32], false),
            conv64_down: r([32, 64], true),
            conv64_1: r([64, 64], false),
            conv64_2: r([64, 64], false),
            conv64_3: r([64, 64], false),
            conv128_down: r([64, 128], true),
            conv128_1: r([128, 128], false),
            conv128_2: r([128, 128], false),
            conv256_down: r([128, 256], true),
            conv256_1: r([256, 256], false),
            conv256_2: r([256, 256], false),
            conv256_down_out: r([256, 256], true),
            fc: Param::from_tensor(Tensor::zeros([256, EMBEDDING_DIM], device)),
        }
    }

    /// Parse a weights file (see `models/README.md`) and build the network on `device`.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self, FaceResNetError> {
        Self::from_weights(&WeightsFile::parse(bytes, WEIGHTS_MODEL)?, device)
    }

    /// Build the network on `device` from parsed weights. Checks every tensor's name and shape.
    pub fn from_weights(weights: &WeightsFile, device: &Device) -> Result<Self, FaceResNetError> {
        let mut model = Self::new(device);
        let load1 = |p: &mut Param<Tensor<1>>, name: String| -> Result<(), FaceResNetError> {
            let shape = p.dims().to_vec();
            *p = Param::from_tensor(Tensor::from_data(weights.tensor(&name, &shape)?, device));
            Ok(())
        };
        let load4 = |p: &mut Param<Tensor<4>>, name: String| -> Result<(), FaceResNetError> {
            let shape = p.dims().to_vec();
            *p = Param::from_tensor(Tensor::from_data(weights.tensor(&name, &shape)?, device));
            Ok(())
        };
        let load_conv = |layer: &mut ConvLayer, prefix: &str| -> Result<(), FaceResNetError> {
            load4(&mut layer.conv.weight, format!("{prefix}.conv.weight"))?;
            let bias = layer
                .conv
                .bias
                .as_mut()
                .ok_or_else(|| FaceResNetError::Format("conv without bias".into()))?;
            load1(bias, format!("{prefix}.conv.bias"))?;
            load1(&mut layer.scale.weight, format!("{prefix}.scale.weight"))?;
            load1(&mut layer.scale.bias, format!("{prefix}.scale.bias"))
        };
        load_conv(&mut model.conv32_down, "conv32_down")?;
        for (block, name) in model.blocks_mut() {
            load_conv(&mut block.conv1, &format!("{name}.conv1"))?;
            load_conv(&mut block.conv2, &format!("{name}.conv2"))?;
        }
        let fc_shape = model.fc.dims().to_vec();
        model.fc = Param::from_tensor(Tensor::from_data(
            weights.tensor("fc.weight", &fc_shape)?,
            device,
        ));
        Ok(model)
    }

    fn blocks_mut(&mut self) -> [(&mut ResidualBlock, &'static str); 14] {
        [
            (&mut self.conv32_1, "conv32_1"),
            (&mut self.conv32_2, "conv32_2"),
            (&mut self.conv32_3, "conv32_3"),
            (&mut self.conv64_down, "conv64_down"),
            (&mut self.conv64_1, "conv64_1"),
            (&mut self.conv64_2, "conv64_2"),
            (&mut self.conv64_3, "conv64_3"),
            (&mut self.conv128_down, "conv128_down"),
            (&mut self.conv128_1, "conv128_1"),
            (&mut self.conv128_2, "conv128_2"),
            (&mut self.conv256_down, "conv256_down"),
            (&mut self.conv256_1, "conv256_1"),
            (&mut self.conv256_2, "conv256_2"),
            (&mut self.conv256_down_out, "conv256_down_out"),
        ]
    }

    /// `[B, 3, 150, 150]` RGB in 0..255 → `[B, 128]` face descriptors.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        let mean = Tensor::<4>::from_data(
            TensorData::new(MEAN_RGB.to_vec(), [1, 3, 1, 1]),
            &input.device(),
        );
        let x = (input - mean).div_scalar(255.0);
        let x = relu(self.conv32_down.forward(x));
        let x = self.pool.forward(x);
        let x = self.conv32_1.forward(x);
        let x = self.conv32_2.forward(x);
        let x = self.conv32_3.forward(x);
        let x = self.conv64_down.forward(x);
        let x = self.conv64_1.forward(x);
        let x = self.conv64_2.forward(x);
        let x = self.conv64_3.forward(x);
        let x = self.conv128_down.forward(x);
        let x = self.conv128_1.forward(x);
        let x = self.conv128_2.forward(x);
        let x = self.conv256_down.forward(x);
        let x = self.conv256_1.forward(x);
        let x = self.conv256_2.forward(x);
        let x = self.conv256_down_out.forward(x);
        let [b, c, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([b, c]);
        pooled.matmul(self.fc.val())
    }

    /// Run the tower and read the descriptors back (asynchronously, as WebGPU requires).
    pub async fn embed(
        &self,
        input: Tensor<4>,
    ) -> Result<Vec<[f32; EMBEDDING_DIM]>, FaceResNetError> {
        let values = read_f32s(self.forward(input))
            .await
            .map_err(FaceResNetError::Read)?;
        Ok(values
            .chunks_exact(EMBEDDING_DIM)
            .map(|c| {
                let mut v = [0.0; EMBEDDING_DIM];
                v.copy_from_slice(c);
                v
            })
            .collect())
    }
}

/// Build the tower's input `[B, 3, 150, 150]` (values 0..255) from `B` interleaved RGB8 images of
/// 150×150 pixels, concatenated (`B * 150 * 150 * 3` bytes, row-major, RGB per pixel).
pub fn input_from_rgb8(pixels: &[u8], device: &Device) -> Tensor<4> {
    super::square_rgb8_input(pixels, INPUT_SIZE, f32::from, "face_resnet", device)
}
