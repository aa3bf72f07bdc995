//! The face mesh network (`faceverify::model::facemesh`) against the same TensorFlow.js graph
//! run by TensorFlow.js in node, on the CPU backend (flex).
//!
//! Inputs are made here from `../shared` (never copied into the repository): colour photos and
//! frames of the two real webcam clips, each face found by the app's detector and cropped by
//! `vision::mesh::MeshCrop::for_face`. The fixture stores the SHA-256 of every crop, so a
//! change in decoding, detection or resampling fails loudly instead of showing up as a parity
//! miss. Regenerate the fixture: see `xtask/reference/facemesh_reference.mjs`.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use faceverify::model::facemesh::{
    FaceMesh, INPUT_SIZE, NUM_LANDMARKS, WEIGHTS_PATH, input_from_rgb8,
};
use faceverify::pipeline::FacePipeline;
use faceverify::vision::frame::Frame;
use faceverify::vision::mesh::MeshCrop;
use faceverify::vision::quality::largest_face;
use serde_json::Value;
use sha2::{Digest, Sha256};

#[path = "support/clips.rs"]
mod clips;

const FIXTURE: &str = "tests/fixtures/facemesh_reference.json";
/// Largest allowed difference of a landmark coordinate, in pixels of the 192×192 crop.
const PARITY_PX: f32 = 1.0;
/// Largest allowed difference of the face-presence probability.
const PARITY_SCORE: f32 = 0.01;

const PHOTOS: &[&str] = &[
    "color/astronaut.png",
    "color/biden.jpg",
    "color/obama.jpg",
    "color/obama2.jpg",
    "color/two_people.jpg",
];
/// Frames of the real webcam clips: (clip, frame index).
const CLIP_FRAMES: &[(&str, usize)] = &[
    ("webcam-a-session1.mjpeg", 0),
    ("webcam-a-session1.mjpeg", 120),
    ("webcam-a-session1.mjpeg", 240),
    ("webcam-a-session1.mjpeg", 360),
    ("webcam-a-session2.mjpeg", 0),
    ("webcam-a-session2.mjpeg", 150),
];

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn shared(relative: &str) -> PathBuf {
    crate_dir().join("../shared/data").join(relative)
}

fn pipeline() -> FacePipeline {
    let read = |p: &str| std::fs::read(crate_dir().join(p)).unwrap();
    FacePipeline::from_bytes(
        &read("models/blazeface.f16.bin"),
        &read("models/face_resnet.q8.bin"),
        &Device::flex(),
    )
    .unwrap()
}

/// Every input: its name and its 192×192 crop (RGB8).
fn inputs() -> Vec<(String, Frame)> {
    let pipeline = pipeline();
    let mut frames: Vec<(String, image::DynamicImage)> = PHOTOS
        .iter()
        .map(|p| {
            (
                p.to_string(),
                image::open(shared(p)).unwrap_or_else(|e| panic!("{p}: {e}")),
            )
        })
        .collect();
    for &(clip, index) in CLIP_FRAMES {
        let frame = clips::clip_frames(clip).swap_remove(index);
        frames.push((format!("camera/{clip}#{index}"), frame));
    }
    frames
        .into_iter()
        .map(|(name, image)| {
            let frame = Frame::from_image(&image);
            let faces = pollster::block_on(pipeline.detector().detect(&frame))
                .unwrap()
                .faces;
            let face = &faces[largest_face(&faces).unwrap_or_else(|| panic!("{name}: no face"))];
            (name, MeshCrop::for_face(&frame, face).crop)
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes the inputs for the reference script:
/// `FACEMESH_DUMP_DIR=/tmp/facemesh_inputs cargo test --test facemesh -- --ignored --exact dump_reference_inputs`.
#[test]
#[ignore = "writes the reference script's inputs"]
fn dump_reference_inputs() {
    let dir = PathBuf::from(std::env::var("FACEMESH_DUMP_DIR").expect("FACEMESH_DUMP_DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    let inputs = inputs();
    let mut bin = Vec::new();
    let described: Vec<Value> = inputs
        .iter()
        .map(|(name, crop)| {
            bin.extend_from_slice(crop.pixels());
            serde_json::json!({ "name": name, "sha256": sha256_hex(crop.pixels()) })
        })
        .collect();
    std::fs::write(dir.join("inputs.bin"), bin).unwrap();
    std::fs::write(
        dir.join("inputs.json"),
        serde_json::to_string_pretty(
            &serde_json::json!({ "size": INPUT_SIZE, "inputs": described }),
        )
        .unwrap(),
    )
    .unwrap();
}

#[test]
fn landmarks_match_tensorflow_js_within_a_pixel() {
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(crate_dir().join(FIXTURE)).unwrap()).unwrap();
    let device = Device::flex();
    let weights = std::fs::read(crate_dir().join(WEIGHTS_PATH)).unwrap();
    let mesh = FaceMesh::from_bytes(&weights, &device).unwrap();
    let inputs = inputs();
    let references = fixture["outputs"].as_array().unwrap();
    assert_eq!(references.len(), inputs.len());
    let mut worst = (0f32, String::new());
    for ((name, crop), reference) in inputs.iter().zip(references) {
        assert_eq!(reference["name"], name.as_str());
        assert_eq!(
            reference["sha256"],
            sha256_hex(crop.pixels()).as_str(),
            "{name}: the crop differs from the one the fixture was made from"
        );
        let out = pollster::block_on(mesh.run(input_from_rgb8(crop.pixels(), &device))).unwrap();
        let expected: Vec<f32> = reference["mesh"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(expected.len(), NUM_LANDMARKS * 3);
        for (i, (a, b)) in out.landmarks.iter().zip(&expected).enumerate() {
            let diff = (a - b).abs();
            if diff > worst.0 {
                worst = (diff, format!("{name} landmark {} axis {}", i / 3, i % 3));
            }
        }
        let score = reference["face_score"].as_f64().unwrap() as f32;
        assert!(
            (out.face_scores[0] - score).abs() <= PARITY_SCORE,
            "{name}: face score {} vs {score}",
            out.face_scores[0]
        );
        assert!(score > 0.5, "{name}: the reference sees no face ({score})");
    }
    println!(
        "largest landmark difference: {:.4} px ({})",
        worst.0, worst.1
    );
    assert!(
        worst.0 <= PARITY_PX,
        "largest landmark difference {} px at {}",
        worst.0,
        worst.1
    );
}
