//! The face mesh network: MediaPipe's face landmark model, a 192×192 RGB face crop → 468 3-D
//! landmarks and a face-presence score.
//!
//! Built after the TensorFlow.js graph `models/facemesh.json` of npm `@vladmandic/human` 3.3.6
//! (MediaPipe's `face_landmark`, Apache-2.0; see `models/README.md`):
//! - `stem`: 3×3/2 conv 3→16 (TensorFlow "same": the one padding row/column at the
//!   bottom/right), bias, PReLU.
//! - `trunk`: 14 [`MeshBlock`]s, 192/2 = 96 → 48 → 24 → 12 → 6 pixels, 16 → 32 → 64 → 128
//!   channels: depthwise 3×3 (no bias), pointwise 1×1 (bias), added to the input (max-pooled
//!   2×2 and zero-padded in channels where the block down-samples or widens), PReLU.
//! - Two of the graph's three heads, each starting from the 6×6×128 trunk: the landmarks
//!   (blocks down to 3×3, a 1×1 projection to 32 channels with PReLU, a 32-channel block, and a
//!   3×3/3 conv to 1404 = 468 × (x, y, z) in crop pixels) and the face flag (the same shape to
//!   one logit, then a sigmoid). The third head (lip and eye contours) is not used.
//!
//! Weights: `models/facemesh.f16.bin`, the published float16 values as they are.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{PRelu, PReluConfig, PaddingConfig2d};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};

use super::read_f32s;
use super::weights::{WeightsFile, WeightsFileError};

/// Side of the square input crop in pixels.
pub const INPUT_SIZE: usize = 192;
/// Landmarks per face.
pub const NUM_LANDMARKS: usize = 468;
/// The committed weights file, relative to the crate root.
pub const WEIGHTS_PATH: &str = "models/facemesh.f16.bin";
/// The model name in the weights file's header.
pub const WEIGHTS_MODEL: &str = "facemesh";

/// The trunk's blocks: (channels in, channels out, stride).
pub const TRUNK: [(usize, usize, usize); 14] = [
    (16, 16, 1),
    (16, 16, 1),
    (16, 32, 2),
    (32, 32, 1),
    (32, 32, 1),
    (32, 64, 2),
    (64, 64, 1),
    (64, 64, 1),
    (64, 128, 2),
    (128, 128, 1),
    (128, 128, 1),
    (128, 128, 2),
    (128, 128, 1),
    (128, 128, 1),
];

/// Errors reading the weights or the network's output.
#[derive(Debug, thiserror::Error)]
pub enum FaceMeshError {
    #[error(transparent)]
    Weights(#[from] WeightsFileError),
    #[error("face mesh: reading a tensor back failed: {0}")]
    Read(String),
}

fn zero_conv(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    padding: PaddingConfig2d,
    groups: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(padding)
        .with_groups(groups)
        .with_bias(bias)
        .with_initializer(burn::module::Initializer::Zeros)
        .init(device)
}

/// TensorFlow "same" padding of a 3×3 kernel: 1 all round at stride 1; at stride 2 on an even
/// size, the one row/column at the bottom/right.
fn same_3x3(stride: usize) -> PaddingConfig2d {
    if stride == 2 {
        PaddingConfig2d::Explicit(0, 0, 1, 1)
    } else {
        PaddingConfig2d::Explicit(1, 1, 1, 1)
    }
}

fn prelu(channels: usize, device: &Device) -> PRelu {
    PReluConfig::new()
        .with_num_parameters(channels)
        .init(device)
}

/// Depthwise 3×3 + pointwise 1×1 with a residual connection, then PReLU.
#[derive(Module, Debug)]
pub struct MeshBlock {
    pub depthwise: Conv2d,
    pub pointwise: Conv2d,
    pub activation: PRelu,
    pub pool: Option<MaxPool2d>,
    /// Zero channels appended to the shortcut so that it matches the wider output.
    #[module(skip)]
    pub extra_channels: usize,
}

impl MeshBlock {
    pub fn new(channels_in: usize, channels_out: usize, stride: usize, device: &Device) -> Self {
        let depthwise = zero_conv(
            [channels_in, channels_in],
            3,
            stride,
            same_3x3(stride),
            channels_in,
            false,
            device,
        );
        let pointwise = zero_conv(
            [channels_in, channels_out],
            1,
            1,
            PaddingConfig2d::Valid,
            1,
            true,
            device,
        );
        Self {
            depthwise,
            pointwise,
            activation: prelu(channels_out, device),
            pool: (stride == 2).then(|| MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init()),
            extra_channels: channels_out - channels_in,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let branch = self.pointwise.forward(self.depthwise.forward(x.clone()));
        let shortcut = super::residual_shortcut(x, self.pool.as_ref(), self.extra_channels);
        self.activation.forward(branch + shortcut)
    }
}

/// One output head: blocks on the 6×6 trunk, a 1×1 projection to 32 channels (PReLU), a
/// 32-channel block, and a 3×3/3 conv over the remaining 3×3 map.
#[derive(Module, Debug)]
pub struct MeshHead {
    pub blocks: Vec<MeshBlock>,
    pub projection: Conv2d,
    pub projection_activation: PRelu,
    pub refine: MeshBlock,
    pub output: Conv2d,
}

impl MeshHead {
    fn new(blocks: usize, outputs: usize, device: &Device) -> Self {
        let blocks = (0..blocks)
            .map(|k| MeshBlock::new(128, 128, if k == 0 { 2 } else { 1 }, device))
            .collect();
        Self {
            blocks,
            projection: zero_conv([128, 32], 1, 1, PaddingConfig2d::Valid, 1, true, device),
            projection_activation: prelu(32, device),
            refine: MeshBlock::new(32, 32, 1, device),
            output: zero_conv([32, outputs], 3, 3, PaddingConfig2d::Valid, 1, true, device),
        }
    }

    /// `[B, 128, 6, 6]` → `[B, outputs]`.
    fn forward(&self, mut x: Tensor<4>) -> Tensor<2> {
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = self
            .projection_activation
            .forward(self.projection.forward(x));
        let x = self.output.forward(self.refine.forward(x));
        let [b, c, _, _] = x.dims();
        x.reshape([b, c])
    }
}

/// The raw outputs of the network for a batch.
#[derive(Debug, Clone)]
pub struct FaceMeshOutput {
    /// `[B, 468, 3]`: x, y in crop pixels (0..192), z relative depth on the same scale.
    pub landmarks: Tensor<3>,
    /// `[B]`: probability that the crop shows a face.
    pub face_score: Tensor<1>,
}

/// The outputs read back to the CPU.
#[derive(Debug, Clone, PartialEq)]
pub struct RawMesh {
    /// `B * 468 * 3` values, landmark-major.
    pub landmarks: Vec<f32>,
    /// `B` face-presence probabilities.
    pub face_scores: Vec<f32>,
}

/// MediaPipe's face landmark network. See the module documentation.
#[derive(Module, Debug)]
pub struct FaceMesh {
    pub stem: Conv2d,
    pub stem_activation: PRelu,
    pub trunk: Vec<MeshBlock>,
    pub mesh: MeshHead,
    pub face_flag: MeshHead,
}

impl FaceMesh {
    /// The architecture with zero parameters; load real ones with [`FaceMesh::from_bytes`].
    pub fn new(device: &Device) -> Self {
        Self {
            stem: zero_conv([3, 16], 3, 2, same_3x3(2), 1, true, device),
            stem_activation: prelu(16, device),
            trunk: TRUNK
                .iter()
                .map(|&(cin, cout, stride)| MeshBlock::new(cin, cout, stride, device))
                .collect(),
            mesh: MeshHead::new(3, NUM_LANDMARKS * 3, device),
            face_flag: MeshHead::new(1, 1, device),
        }
    }

    /// Parses a weights file (see `models/README.md`) and builds the network on `device`.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self, FaceMeshError> {
        Self::from_weights(&WeightsFile::parse(bytes, WEIGHTS_MODEL)?, device)
    }

    /// Builds the network on `device` from parsed weights, checking every name and shape.
    pub fn from_weights(weights: &WeightsFile, device: &Device) -> Result<Self, FaceMeshError> {
        let loader = Loader { weights, device };
        let mut model = Self::new(device);
        loader.conv(&mut model.stem, "stem")?;
        loader.prelu(&mut model.stem_activation, "stem_activation")?;
        for (k, block) in model.trunk.iter_mut().enumerate() {
            loader.block(block, &format!("trunk.{k}"))?;
        }
        loader.head(&mut model.mesh, "mesh")?;
        loader.head(&mut model.face_flag, "face_flag")?;
        Ok(model)
    }

    /// `[B, 3, 192, 192]` RGB in [0, 1] → landmarks and face scores.
    pub fn forward(&self, input: Tensor<4>) -> FaceMeshOutput {
        let mut x = self.stem_activation.forward(self.stem.forward(input));
        for block in &self.trunk {
            x = block.forward(x);
        }
        let landmarks = self.mesh.forward(x.clone());
        let [b, _] = landmarks.dims();
        let flag = self.face_flag.forward(x);
        FaceMeshOutput {
            landmarks: landmarks.reshape([b, NUM_LANDMARKS, 3]),
            face_score: sigmoid(flag).reshape([b]),
        }
    }

    /// Runs the network and reads the outputs back (asynchronously, as WebGPU requires).
    pub async fn run(&self, input: Tensor<4>) -> Result<RawMesh, FaceMeshError> {
        let out = self.forward(input);
        Ok(RawMesh {
            landmarks: read_f32s(out.landmarks)
                .await
                .map_err(FaceMeshError::Read)?,
            face_scores: read_f32s(out.face_score)
                .await
                .map_err(FaceMeshError::Read)?,
        })
    }
}

/// Copies named tensors of a weights file into modules.
struct Loader<'a> {
    weights: &'a WeightsFile,
    device: &'a Device,
}

impl Loader<'_> {
    fn param<const D: usize>(
        &self,
        param: &mut Param<Tensor<D>>,
        name: &str,
    ) -> Result<(), FaceMeshError> {
        let shape = param.dims().to_vec();
        *param = Param::from_tensor(Tensor::from_data(
            self.weights.tensor(name, &shape)?,
            self.device,
        ));
        Ok(())
    }

    fn conv(&self, conv: &mut Conv2d, prefix: &str) -> Result<(), FaceMeshError> {
        self.param(&mut conv.weight, &format!("{prefix}.weight"))?;
        if let Some(bias) = conv.bias.as_mut() {
            self.param(bias, &format!("{prefix}.bias"))?;
        }
        Ok(())
    }

    fn prelu(&self, activation: &mut PRelu, prefix: &str) -> Result<(), FaceMeshError> {
        self.param(&mut activation.alpha, &format!("{prefix}.alpha"))
    }

    fn block(&self, block: &mut MeshBlock, prefix: &str) -> Result<(), FaceMeshError> {
        self.conv(&mut block.depthwise, &format!("{prefix}.depthwise"))?;
        self.conv(&mut block.pointwise, &format!("{prefix}.pointwise"))?;
        self.prelu(&mut block.activation, &format!("{prefix}.activation"))
    }

    fn head(&self, head: &mut MeshHead, prefix: &str) -> Result<(), FaceMeshError> {
        for (k, block) in head.blocks.iter_mut().enumerate() {
            self.block(block, &format!("{prefix}.blocks.{k}"))?;
        }
        self.conv(&mut head.projection, &format!("{prefix}.projection"))?;
        self.prelu(
            &mut head.projection_activation,
            &format!("{prefix}.projection_activation"),
        )?;
        self.block(&mut head.refine, &format!("{prefix}.refine"))?;
        self.conv(&mut head.output, &format!("{prefix}.output"))
    }
}

/// The network's input `[B, 3, 192, 192]` from `B` interleaved RGB8 crops of 192×192 pixels,
/// concatenated: each value `p / 255` (as human's `cutAndResize` divides), in f32.
pub fn input_from_rgb8(pixels: &[u8], device: &Device) -> Tensor<4> {
    super::square_rgb8_input(
        pixels,
        INPUT_SIZE,
        |p| f32::from(p) / 255.0,
        "facemesh",
        device,
    )
}
