#![cfg(not(target_arch = "wasm32"))]
//! The whole face pipeline (detect → align → embed) natively on the CPU backend, against
//! `tests/fixtures/pipeline_native.json`: the numbers the browser test
//! (`tests/browser/pipeline.rs`) compares the worker's WebGPU and CPU results with. This test
//! keeps the fixture honest (it fails when the native pipeline drifts from it), and rewrites it
//! with `FACEVERIFY_WRITE_FIXTURE=1 cargo test --test pipeline_parity`.

use faceverify::pipeline::descriptor_distance;
use serde_json::{Value, json};

#[path = "support/data.rs"]
mod data;
use data::{pipeline, repo, shared};

const FIXTURE: &str = "tests/fixtures/pipeline_native.json";
/// Photos from `../shared/data`: one face, two faces, and a grayscale LFW photo.
pub const PHOTOS: [&str; 3] = [
    "color/obama.jpg",
    "color/two_people.jpg",
    "lfw/George_W_Bush/George_W_Bush_0001.jpg",
];

#[test]
fn the_native_pipeline_matches_its_fixture() {
    let pipeline = pipeline();
    let results: Vec<Value> = PHOTOS
        .iter()
        .map(|name| {
            let path = shared(name);
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (this test needs ../shared)", path.display()));
            let analysis =
                pollster::block_on(pipeline.analyse_encoded(&bytes, Default::default())).unwrap();
            json!({
                "name": name,
                "faces_seen": analysis.faces_seen,
                "embedding": analysis.embedding.expect("a face"),
            })
        })
        .collect();
    let path = repo().join(FIXTURE);
    if std::env::var_os("FACEVERIFY_WRITE_FIXTURE").is_some() {
        let fixture = json!({
            "description": "Native detect → align → embed (flex CPU backend) on photos of ../shared/data, for tests/browser/pipeline.rs.",
            "command": "FACEVERIFY_WRITE_FIXTURE=1 cargo test --test pipeline_parity",
            "photos": results,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&fixture).unwrap()).unwrap();
        return;
    }
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (now, then) in results.iter().zip(fixture["photos"].as_array().unwrap()) {
        assert_eq!(now["name"], then["name"]);
        assert_eq!(now["faces_seen"], then["faces_seen"], "{}", now["name"]);
        let a: Vec<f32> = serde_json::from_value(now["embedding"].clone()).unwrap();
        let b: Vec<f32> = serde_json::from_value(then["embedding"].clone()).unwrap();
        let distance = descriptor_distance(&a, &b);
        assert!(distance <= 1e-5, "{}: drifted by {distance}", now["name"]);
    }
}
