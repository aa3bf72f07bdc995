//! Burn modules. Every constructor takes the `Device` as a parameter, so the same network runs
//! on the CPU backend (flex) and on wgpu (WebGPU in the browser, Vulkan natively).
pub mod blazeface;
pub mod face_resnet;
pub mod facemesh;
pub mod koch;
pub mod siamese;
pub mod tower;
pub mod weights;

/// One tensor of a weights file (`models/*.bin`), as f32 (dequantised where the file stores
/// fewer bits).
#[derive(Debug, Clone)]
pub struct WeightTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// The shortcut of a depthwise-separable residual block (BlazeFace's and the face mesh's): the
/// input, max-pooled where the block down-samples, with zero channels appended where it widens.
pub(crate) fn residual_shortcut(
    x: burn::tensor::Tensor<4>,
    pool: Option<&burn::nn::pool::MaxPool2d>,
    extra_channels: usize,
) -> burn::tensor::Tensor<4> {
    let shortcut = match pool {
        Some(pool) => pool.forward(x),
        None => x,
    };
    if extra_channels == 0 {
        return shortcut;
    }
    let [b, _, h, w] = shortcut.dims();
    let zeros = burn::tensor::Tensor::zeros([b, extra_channels, h, w], &shortcut.device());
    burn::tensor::Tensor::cat(vec![shortcut, zeros], 1)
}
