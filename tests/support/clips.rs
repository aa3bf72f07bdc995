//! The camera clips of `../shared/camera` (MJPEG: JPEG images one after another), frame by frame.

use std::path::Path;

/// The JPEG images of `../shared/camera/<name>`, one per frame.
pub fn clip_jpegs(name: &str) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/camera")
        .join(name);
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}: these tests need ../shared", path.display()));
    let starts: Vec<usize> = bytes
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == [0xFF, 0xD8, 0xFF])
        .map(|(i, _)| i)
        .collect();
    starts
        .iter()
        .zip(starts.iter().skip(1).chain([&bytes.len()]))
        .map(|(&start, &end)| bytes[start..end].to_vec())
        .collect()
}

/// The decoded frames of `../shared/camera/<name>`.
#[allow(dead_code)] // The end-to-end tests only cut clips.
pub fn clip_frames(name: &str) -> Vec<image::DynamicImage> {
    clip_jpegs(name)
        .iter()
        .map(|jpeg| image::load_from_memory(jpeg).unwrap())
        .collect()
}
