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
