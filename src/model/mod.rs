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

/// A network's input `[B, 3, size, size]` from `B` interleaved RGB8 images of `size`×`size`
/// pixels, concatenated (row-major, RGB per pixel), each byte mapped by `to_input`. `network`
/// names the caller in the panic message.
pub(crate) fn square_rgb8_input(
    pixels: &[u8],
    size: usize,
    to_input: impl Fn(u8) -> f32,
    network: &str,
    device: &burn::tensor::Device,
) -> burn::tensor::Tensor<4> {
    let per_image = size * size * 3;
    assert!(
        !pixels.is_empty() && pixels.len().is_multiple_of(per_image),
        "{network}::input_from_rgb8: {} bytes is not a whole number of {size}x{size} RGB images",
        pixels.len()
    );
    let b = pixels.len() / per_image;
    let values: Vec<f32> = pixels.iter().map(|&p| to_input(p)).collect();
    burn::tensor::Tensor::<4>::from_data(
        burn::tensor::TensorData::new(values, [b, size, size, 3]),
        device,
    )
    .permute([0, 3, 1, 2])
}

/// A tensor's values read back from its device as f32, asynchronously (WebGPU in a browser
/// cannot read synchronously). The error is in words, for the caller's own error type.
pub async fn read_f32s<const D: usize>(
    tensor: burn::tensor::Tensor<D>,
) -> Result<Vec<f32>, String> {
    tensor
        .into_data_async()
        .await
        .map_err(|e| e.to_string())?
        .try_into_vec::<f32>()
        .map_err(|e| format!("{e:?}"))
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
