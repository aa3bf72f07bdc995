//! The `FVW1` weights container of the converted networks (see `models/README.md`): 4 bytes
//! magic, a u32 header length, a JSON header naming each tensor's shape, dtype and byte range,
//! then the payloads.

use std::collections::HashMap;

use burn::tensor::{TensorData, f16};

use super::WeightTensor;

const MAGIC: &[u8; 4] = b"FVW1";

/// Why a weights file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WeightsFileError {
    #[error("{model} weights: {detail}")]
    Format { model: String, detail: String },
    #[error("weights: tensor {name}: expected shape {expected:?}, file has {found:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("weights: tensor {0} is missing")]
    Missing(String),
}

/// The parsed contents of an `FVW1` weights file with `f16`, `f32` or quantised `u8` tensors
/// (`models/blazeface.f16.bin`, `models/facemesh.f16.bin`, `models/face_resnet.q8.bin`), in
/// CPU memory.
#[derive(Debug, Clone, Default)]
pub struct WeightsFile {
    pub tensors: HashMap<String, WeightTensor>,
    /// The header's `source` line.
    pub source: String,
}

impl WeightsFile {
    /// Parse a weights file (`FVW1` container of `model`).
    pub fn parse(bytes: &[u8], model: &str) -> Result<Self, WeightsFileError> {
        let bad = |m: String| WeightsFileError::Format {
            model: model.to_string(),
            detail: m,
        };
        if bytes.len() < 8 || &bytes[..4] != MAGIC {
            return Err(bad(
                "not a faceverify weights file (magic FVW1 missing)".into()
            ));
        }
        let header_len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        let header = bytes
            .get(8..8 + header_len)
            .ok_or_else(|| bad("truncated header".into()))?;
        let data = &bytes[8 + header_len..];
        let header: serde_json::Value =
            serde_json::from_slice(header).map_err(|e| bad(format!("header: {e}")))?;
        if header["format"] != "faceverify-weights"
            || header["version"] != 1
            || header["model"] != model
        {
            return Err(bad(format!(
                "header is not faceverify-weights version 1 for {model}"
            )));
        }
        let mut out = WeightsFile {
            tensors: HashMap::new(),
            source: header["source"].as_str().unwrap_or_default().to_string(),
        };
        for t in header["tensors"]
            .as_array()
            .ok_or_else(|| bad("no tensors".into()))?
        {
            let name = t["name"]
                .as_str()
                .ok_or_else(|| bad("tensor without a name".into()))?
                .to_string();
            let field = |k: &str| {
                t[k].as_u64()
                    .map(|v| v as usize)
                    .ok_or_else(|| bad(format!("{name}: no {k}")))
            };
            let shape: Vec<usize> = t["shape"]
                .as_array()
                .ok_or_else(|| bad(format!("{name}: no shape")))?
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize))
                .collect::<Option<_>>()
                .ok_or_else(|| bad(format!("{name}: bad shape")))?;
            let (offset, len) = (field("offset")?, field("bytes")?);
            let raw = data
                .get(offset..offset + len)
                .ok_or_else(|| bad(format!("{name}: payload out of bounds")))?;
            let values = decode(t, raw, shape.iter().product())
                .map_err(|detail| bad(format!("{name}: {detail}")))?;
            out.tensors.insert(name, WeightTensor { shape, values });
        }
        Ok(out)
    }

    /// The named tensor as `TensorData`, checking its shape.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<TensorData, WeightsFileError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| WeightsFileError::Missing(name.to_string()))?;
        if t.shape != shape {
            return Err(WeightsFileError::Shape {
                name: name.to_string(),
                expected: shape.to_vec(),
                found: t.shape.clone(),
            });
        }
        Ok(TensorData::new(t.values.clone(), t.shape.clone()))
    }
}

/// The `n` values of the tensor `t` (its header entry) from its payload `raw`. `u8` tensors
/// become `q * scale + min` computed in f64 and rounded to f32, exactly as tfjs dequantises
/// face-api's weights.
fn decode(t: &serde_json::Value, raw: &[u8], n: usize) -> Result<Vec<f32>, String> {
    let len = raw.len();
    match t["dtype"].as_str() {
        Some("f16") if len == 2 * n => Ok(raw
            .chunks_exact(2)
            .map(|b| f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect()),
        Some("f32") if len == 4 * n => Ok(raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()),
        Some("u8") if len == n => {
            let min = t["min"].as_f64().ok_or("no min")?;
            let scale = t["scale"].as_f64().ok_or("no scale")?;
            Ok(raw
                .iter()
                .map(|&q| (q as f64 * scale + min) as f32)
                .collect())
        }
        other => Err(format!("dtype {other:?} with {len} bytes for {n} values")),
    }
}
