//! Where the tests find their inputs: the repository's own files (models, fixtures) and the
//! shared data beside it (`../shared`: LFW, colour photos and the pairs files in `data/`, the
//! camera clips in `camera/`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use faceverify::pipeline::FacePipeline;

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared` beside the repository, once every entry of `needed` is found in it. Otherwise a
/// panic naming what is missing: these tests never pass silently without their data.
pub fn shared_root(needed: &[&str]) -> PathBuf {
    let dir = repo().join("../shared");
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|entry| !dir.join(entry).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "this test needs the shared data at {} ({}); it is missing",
        dir.display(),
        missing.join(", ")
    );
    dir.canonicalize().unwrap()
}

/// `../shared/data`, once every entry of `needed` is found in it (as `shared_root`).
pub fn shared_data(needed: &[&str]) -> PathBuf {
    let needed: Vec<String> = needed.iter().map(|entry| format!("data/{entry}")).collect();
    let needed: Vec<&str> = needed.iter().map(String::as_str).collect();
    shared_root(&needed).join("data")
}

/// One file or folder of `../shared/data`, or a panic that says it is missing.
pub fn shared(relative: &str) -> PathBuf {
    shared_data(&[relative]).join(relative)
}

/// A JSON file of the repository (a test fixture), parsed.
pub fn json(relative: &str) -> serde_json::Value {
    let path = repo().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The face pipeline (detector and descriptor network) on the CPU, from `models/`.
pub fn pipeline() -> FacePipeline {
    let read = |name: &str| {
        let path = repo().join("models").join(name);
        std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask models`)", path.display()))
    };
    FacePipeline::from_bytes(
        &read("blazeface.f16.bin"),
        &read("face_resnet.q8.bin"),
        &Device::flex(),
    )
    .unwrap()
}
