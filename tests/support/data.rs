//! Where the tests find their inputs: the repository's own files (models, fixtures) and the
//! shared data beside it (`../shared`: LFW, colour photos and the pairs files in `data/`, the
//! camera clips in `camera/`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use faceverify::model::{blazeface, face_resnet};
use faceverify::pipeline::FacePipeline;
use sha2::{Digest, Sha256};

/// The colour photos of `../shared/data` with exactly one face each.
pub const PORTRAITS: &[&str] = &[
    "color/astronaut.png",
    "color/biden.jpg",
    "color/biden2.jpg",
    "color/obama.jpg",
    "color/obama1.jpg",
    "color/obama2.jpg",
    "color/obama3.jpg",
    "color/obama_partial_face.jpg",
];
/// The colour photo of `../shared/data` with two faces.
pub const TWO_PEOPLE: &str = "color/two_people.jpg";

/// The repository's root: the checkout `cargo test` runs in (it sets CARGO_MANIFEST_DIR for
/// the test process too), else the one this test was compiled in. Clones that share a
/// CARGO_TARGET_DIR (as .ci/run does) may run a test binary another clone compiled, and it must
/// read its own checkout's files.
pub fn repo() -> &'static Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
    })
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

/// The entries of the folder `dir` (an LFW person's photos, say), sorted: the same order on
/// every machine.
pub fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .collect();
    paths.sort();
    paths
}

/// A JSON file of the repository (a test fixture), parsed.
pub fn json(relative: &str) -> serde_json::Value {
    let path = repo().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `inputs` of a reference fixture, once they are the test's inputs, `names`, in the same
/// order: the fixture's figures are compared with the test's input by input.
pub fn fixture_inputs<'a, 'n>(
    fixture: &'a serde_json::Value,
    names: impl IntoIterator<Item = &'n str>,
) -> &'a [serde_json::Value] {
    let inputs = fixture["inputs"].as_array().expect("fixture has inputs");
    let listed: Vec<&str> = inputs
        .iter()
        .map(|i| i["name"].as_str().unwrap_or(""))
        .collect();
    let names: Vec<&str> = names.into_iter().collect();
    assert_eq!(listed, names, "fixture and test disagree on the input list");
    inputs
}

/// A model file of the repository (`path` as a model's `WEIGHTS_PATH`), or a panic that says
/// how to fetch the models.
pub fn model_file(path: &str) -> Vec<u8> {
    let path = repo().join(path);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask models`)", path.display()))
}

/// The face pipeline (detector and descriptor network) on the CPU, from `models/`.
pub fn pipeline() -> FacePipeline {
    FacePipeline::from_bytes(
        &model_file(blazeface::WEIGHTS_PATH),
        &model_file(face_resnet::WEIGHTS_PATH),
        &Device::flex(),
    )
    .unwrap()
}

/// Writes a reference script's inputs to the folder named by the environment variable
/// `dir_variable`: `inputs.bin`, the inputs' pixels one after another, and `inputs.json`,
/// `description` (how the pixels were made, and each input's name and checksum).
pub fn write_reference_inputs(dir_variable: &str, pixels: &[u8], description: &serde_json::Value) {
    let dir = std::env::var_os(dir_variable).unwrap_or_else(|| panic!("set {dir_variable}"));
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create the inputs folder");
    std::fs::write(dir.join("inputs.bin"), pixels).expect("write inputs.bin");
    let json = serde_json::to_string_pretty(description).unwrap();
    std::fs::write(dir.join("inputs.json"), json).expect("write inputs.json");
    println!("wrote the reference inputs to {}", dir.display());
}

/// `write_reference_inputs` for inputs made as `preprocess` describes: `inputs` gives each
/// input's pixels and its entry in `inputs.json` (its name and where it was cut from), to which
/// the pixels' checksum is added as `rgb_sha256`.
pub fn write_preprocessed_inputs<'a>(
    dir_variable: &str,
    preprocess: &str,
    inputs: impl IntoIterator<Item = (&'a [u8], serde_json::Value)>,
) {
    let mut pixels = Vec::new();
    let entries: Vec<serde_json::Value> = inputs
        .into_iter()
        .map(|(rgb, mut entry)| {
            pixels.extend_from_slice(rgb);
            entry["rgb_sha256"] = sha256_hex(rgb).into();
            entry
        })
        .collect();
    let description = serde_json::json!({ "preprocess": preprocess, "inputs": entries });
    write_reference_inputs(dir_variable, &pixels, &description);
}

/// `bytes`' SHA-256 in lower-case hex: how the reference fixtures name their input pixels.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
