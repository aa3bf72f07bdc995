//! The wgpu device natively: Vulkan on a GPU, or Mesa's lavapipe on machines without one.

use burn::prelude::Device;

/// The natively initialised wgpu device, or `None` when FACEVERIFY_ALLOW_NO_GPU=1 says the
/// machine has no adapter on purpose. Without an adapter otherwise, a panic that says how to
/// install one: the wgpu tests never pass silently.
pub fn gpu() -> Option<Device> {
    match pollster::block_on(faceverify::backend::wgpu_device()) {
        Ok(device) => Some(device),
        Err(reason) if std::env::var("FACEVERIFY_ALLOW_NO_GPU").as_deref() == Ok("1") => {
            eprintln!(
                "NOTE: no wgpu adapter ({reason}); FACEVERIFY_ALLOW_NO_GPU=1, so the wgpu checks did not run"
            );
            None
        }
        Err(reason) => panic!(
            "no wgpu adapter: {reason}\nInstall Mesa's Vulkan drivers (`cargo xtask setup`), \
             or set FACEVERIFY_ALLOW_NO_GPU=1 on a machine that has none"
        ),
    }
}
