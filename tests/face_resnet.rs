//! The pretrained face embedding tower (`faceverify::model::face_resnet`) against face-api's own
//! forward pass, on the CPU backend (flex) and on wgpu, plus a sanity check that it separates
//! people on a small fixed LFW subset.
//!
//! Inputs are made here, from `../shared/data` (never copied into the repository), with one
//! deterministic preprocessing ([`PREPROCESS`]); the fixture stores the SHA-256 of every input's
//! pixels, so a change in decoding or resampling fails loudly instead of showing up as a parity
//! miss. Regenerate the fixture: see `xtask/reference/face_resnet_reference.mjs`.

use std::path::Path;

use burn::tensor::Device;
use faceverify::model::face_resnet::{
    EMBEDDING_DIM, FaceResNet, INPUT_SIZE, WEIGHTS_PATH, input_from_rgb8,
};
use faceverify::model::weights::WeightsFile;

#[path = "support/data.rs"]
mod data;
use data::{
    PORTRAITS, TWO_PEOPLE, fixture_inputs, json, model_file, sha256_hex, shared_data,
    write_preprocessed_inputs,
};

const FIXTURE: &str = "tests/fixtures/face_resnet_reference.json";
/// Largest allowed L2 distance between our descriptor and face-api's.
const PARITY_L2: f32 = 0.01;

const PREPROCESS: &str = "Decode with the `image` crate (0.25) to RGB8 (grayscale replicated to R=G=B). \
Crop the square box [x0, x0+side) x [y0, y0+side) given per input (`crop`: [x0, y0, side]). \
Resample it to 150x150 by exact area averaging: output pixel (i, j) is the mean of the source \
over [x0 + j*s, x0 + (j+1)*s) x [y0 + i*s, y0 + (i+1)*s), s = side/150, each source pixel \
weighted by its overlap with that square, computed in f64, then rounded as floor(v + 0.5) to u8. \
Stored row-major, RGB per pixel; the network sees these values as float32 in 0..255.";

/// LFW (250x250, aligned, grayscale): two photos each of four people, centre box of
/// [`LFW_SIDE`] pixels, roughly the region dlib's 150x150 face chips cover.
const LFW: &[&str] = &[
    "lfw/George_W_Bush/George_W_Bush_0001.jpg",
    "lfw/George_W_Bush/George_W_Bush_0002.jpg",
    "lfw/Colin_Powell/Colin_Powell_0001.jpg",
    "lfw/Colin_Powell/Colin_Powell_0002.jpg",
    "lfw/Gerhard_Schroeder/Gerhard_Schroeder_0001.jpg",
    "lfw/Gerhard_Schroeder/Gerhard_Schroeder_0002.jpg",
    "lfw/Hugo_Chavez/Hugo_Chavez_0001.jpg",
    "lfw/Hugo_Chavez/Hugo_Chavez_0002.jpg",
];
const LFW_SIDE: u32 = 130;

struct Input {
    name: String,
    crop: [u32; 3],
    rgb: Vec<u8>,
}

/// The preprocessing [`PREPROCESS`] describes.
fn area_resample(img: &image::RgbImage, [x0, y0, side]: [u32; 3]) -> Vec<u8> {
    let n = INPUT_SIZE;
    let s = side as f64 / n as f64;
    // For one axis: for each output index, the (source index, weight) pairs of its interval.
    let weights = |origin: u32| -> Vec<Vec<(u32, f64)>> {
        (0..n)
            .map(|o| {
                let a = origin as f64 + o as f64 * s;
                let b = a + s;
                let mut w = Vec::new();
                let mut k = a.floor() as u32;
                while (k as f64) < b {
                    let overlap = (b.min(k as f64 + 1.0) - a.max(k as f64)).max(0.0);
                    if overlap > 0.0 {
                        w.push((k, overlap / s));
                    }
                    k += 1;
                }
                w
            })
            .collect()
    };
    let (wx, wy) = (weights(x0), weights(y0));
    let mut out = Vec::with_capacity(n * n * 3);
    for row in &wy {
        for col in &wx {
            let mut acc = [0f64; 3];
            for &(y, fy) in row {
                for &(x, fx) in col {
                    let p = img.get_pixel(x, y).0;
                    for c in 0..3 {
                        acc[c] += fy * fx * p[c] as f64;
                    }
                }
            }
            for v in acc {
                out.push((v + 0.5).floor().clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

fn load_input(shared: &Path, name: &str, lfw_side: Option<u32>) -> Input {
    let path = shared.join(name);
    let img = image::open(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .to_rgb8();
    let (w, h) = img.dimensions();
    let side = lfw_side.unwrap_or(w.min(h)).min(w.min(h));
    let crop = [(w - side) / 2, (h - side) / 2, side];
    Input {
        name: name.to_string(),
        crop,
        rgb: area_resample(&img, crop),
    }
}

fn all_inputs() -> Vec<Input> {
    let shared = shared_data(&["color", "lfw"]);
    // Colour photos: the centre square of the whole frame (parity only; no face alignment).
    let color = PORTRAITS.iter().chain([&TWO_PEOPLE]);
    color
        .map(|n| load_input(&shared, n, None))
        .chain(LFW.iter().map(|n| load_input(&shared, n, Some(LFW_SIDE))))
        .collect()
}

fn model(device: &Device) -> FaceResNet {
    FaceResNet::from_bytes(&model_file(WEIGHTS_PATH), device).expect("weights file loads")
}

fn embed(model: &FaceResNet, inputs: &[&Input], device: &Device) -> Vec<[f32; EMBEDDING_DIM]> {
    let pixels: Vec<u8> = inputs.iter().flat_map(|i| i.rgb.iter().copied()).collect();
    let x = input_from_rgb8(&pixels, device);
    pollster::block_on(model.embed(x)).expect("embeddings read back")
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

/// Our descriptors against face-api's on `device`; returns the largest distance.
fn check_parity(device: &Device, label: &str) -> f32 {
    let fixture = json(FIXTURE);
    let inputs = all_inputs();
    let refs = fixture_inputs(&fixture, inputs.iter().map(|i| i.name.as_str()));
    for (r, inp) in refs.iter().zip(&inputs) {
        let crop: Vec<u32> = serde_json::from_value(r["crop"].clone()).expect("crop");
        assert_eq!(
            crop, inp.crop,
            "{}: crop box differs from the fixture's",
            inp.name
        );
        assert_eq!(
            r["rgb_sha256"],
            sha256_hex(&inp.rgb).as_str(),
            "{}: the 150x150 input pixels differ from those the reference was computed on \
             (image decoding or resampling changed); regenerate the fixture, see \
             xtask/reference/face_resnet_reference.mjs",
            inp.name
        );
    }
    let model = model(device);
    let refs_ref: Vec<&Input> = inputs.iter().collect();
    let ours = embed(&model, &refs_ref, device);
    let mut worst = 0f32;
    let mut failures = Vec::new();
    for ((r, inp), e) in refs.iter().zip(&inputs).zip(&ours) {
        let reference: Vec<f32> =
            serde_json::from_value(r["embedding"].clone()).expect("embedding");
        assert_eq!(reference.len(), EMBEDDING_DIM);
        let d = l2(e, &reference);
        println!(
            "{label}: {:45} L2 to face-api = {d:.2e} (|ref| = {:.3})",
            inp.name,
            l2(&reference, &[0.0; EMBEDDING_DIM])
        );
        worst = worst.max(d);
        if d.is_nan() || d >= PARITY_L2 {
            failures.push(format!("{}: {d}", inp.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{label}: descriptors differ from face-api's by L2 >= {PARITY_L2}: {failures:?}"
    );
    println!("{label}: largest L2 distance to face-api: {worst:.2e}");
    worst
}

#[test]
fn weights_file_has_every_tensor() {
    let bytes = model_file(WEIGHTS_PATH);
    let w = WeightsFile::parse(&bytes, "face_resnet").expect("parses");
    // conv32_down (4 tensors) + 14 residual blocks x 2 conv layers x 4 tensors + fc.
    assert_eq!(w.tensors.len(), 4 + 14 * 8 + 1);
    let params: usize = w.tensors.values().map(|t| t.values.len()).sum();
    assert_eq!(
        params, 5_614_592,
        "parameter count of dlib's ResNet as shipped by face-api"
    );
    assert_eq!(w.tensors["fc.weight"].shape, vec![256, 128]);
    assert_eq!(
        w.tensors["conv64_down.conv1.conv.weight"].shape,
        vec![64, 32, 3, 3]
    );
    // Loading checks every name and shape against the module.
    FaceResNet::from_weights(&w, &Device::flex()).expect("module loads the weights");
}

#[test]
fn output_shape() {
    let device = Device::flex();
    let model = FaceResNet::new(&device);
    let y = model.forward(burn::tensor::Tensor::zeros(
        [2, 3, INPUT_SIZE, INPUT_SIZE],
        &device,
    ));
    assert_eq!(y.dims(), [2, EMBEDDING_DIM]);
}

#[test]
fn parity_with_face_api_flex() {
    check_parity(&Device::flex(), "flex");
}

#[test]
#[cfg(feature = "webgpu")]
fn parity_with_face_api_wgpu() {
    let device = Device::wgpu_options().init().unwrap_or_else(|e| {
        panic!(
            "no wgpu adapter ({e:?}): this test needs one natively; without a GPU install Mesa's \
             Vulkan driver (`apt-get install mesa-vulkan-drivers`, lavapipe)"
        )
    });
    check_parity(&device, "wgpu");
}

#[test]
fn lfw_same_person_closer_than_different() {
    let shared = shared_data(&["color", "lfw"]);
    let inputs: Vec<Input> = LFW
        .iter()
        .map(|n| load_input(&shared, n, Some(LFW_SIDE)))
        .collect();
    let device = Device::flex();
    let model = model(&device);
    let refs: Vec<&Input> = inputs.iter().collect();
    let emb = embed(&model, &refs, &device);
    let person = |name: &str| name.split('/').nth(1).unwrap_or_default().to_string();
    let (mut same, mut diff) = (Vec::new(), Vec::new());
    for i in 0..inputs.len() {
        for j in i + 1..inputs.len() {
            let d = l2(&emb[i], &emb[j]);
            if person(&inputs[i].name) == person(&inputs[j].name) {
                same.push(d);
            } else {
                diff.push(d);
            }
        }
    }
    let max_same = same.iter().cloned().fold(f32::MIN, f32::max);
    let min_diff = diff.iter().cloned().fold(f32::MAX, f32::min);
    println!(
        "same-person distances {same:.3?}; different-person: min {min_diff:.3}, all {diff:.3?}"
    );
    assert!(
        max_same < min_diff,
        "every same-person distance should be below every different-person distance: \
         max same {max_same}, min different {min_diff}"
    );
}

/// Writes the inputs the reference script consumes (see face_resnet_reference.mjs). Ignored:
/// run it by name with FACE_RESNET_DUMP_DIR set.
#[test]
#[ignore]
fn dump_reference_inputs() {
    let inputs = all_inputs();
    let described = inputs.iter().map(|i| {
        (
            &i.rgb[..],
            serde_json::json!({ "name": i.name, "crop": i.crop }),
        )
    });
    write_preprocessed_inputs("FACE_RESNET_DUMP_DIR", PREPROCESS, described);
}
