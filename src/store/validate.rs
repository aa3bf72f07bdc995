//! Checks for untrusted bytes before they reach the store: photos from a file picker or an
//! archive, model files, archive sizes. Every check is cheap first (headers, declared sizes)
//! and refuses before allocating for what the header claims, so a hostile file cannot make the
//! tab run out of memory.

use std::io::Cursor;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Limits for one photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Longest side in pixels. Cameras give 640x480 to 4K; nothing needs more than 8K.
    pub max_side: u32,
    /// Width x height. A decoded RGBA image of 40 MP is 160 MB, already a lot for a tab.
    pub max_pixels: u64,
    /// Size of the encoded file.
    pub max_encoded_bytes: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            max_side: 8192,
            max_pixels: 40_000_000,
            max_encoded_bytes: 50 * 1024 * 1024,
        }
    }
}

/// The encoded formats the store accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncodedFormat {
    Jpeg,
    Png,
}

impl EncodedFormat {
    pub fn name(self) -> &'static str {
        match self {
            EncodedFormat::Jpeg => "JPEG",
            EncodedFormat::Png => "PNG",
        }
    }

    /// File name extension used in export archives.
    pub fn extension(self) -> &'static str {
        match self {
            EncodedFormat::Jpeg => "jpg",
            EncodedFormat::Png => "png",
        }
    }
}

/// What a valid photo's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: EncodedFormat,
    pub width: u32,
    pub height: u32,
}

/// Why a photo was refused. The Display text is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImageError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is not an image (only JPEG and PNG photos can be used)")]
    NotAnImage,
    #[error("{format} images are not supported; save the photo as JPEG or PNG and try again")]
    UnsupportedFormat { format: String },
    #[error(
        "the image is {width}x{height} pixels, larger than the {max_side}x{max_side} (and \
         {max_pixels} pixel) limit; resize it and try again"
    )]
    TooLarge {
        width: u32,
        height: u32,
        max_side: u32,
        max_pixels: u64,
    },
    #[error("the file is {bytes} bytes, more than the {limit} byte limit for one photo")]
    FileTooLarge { bytes: u64, limit: u64 },
    #[error("the {format} file is truncated (it ends before the image does); copy it again")]
    Truncated { format: &'static str },
    #[error("the {format} file is damaged and cannot be decoded ({detail})")]
    Corrupt {
        format: &'static str,
        detail: String,
    },
    #[error(
        "the image is {actual_width}x{actual_height} pixels but its record says \
         {declared_width}x{declared_height}"
    )]
    DimensionsMismatch {
        declared_width: u32,
        declared_height: u32,
        actual_width: u32,
        actual_height: u32,
    },
}

const JPEG_MAGIC: [u8; 3] = [0xFF, 0xD8, 0xFF];
const JPEG_END_OF_IMAGE: [u8; 2] = [0xFF, 0xD9];
const PNG_MAGIC: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
/// A PNG ends with an empty IEND chunk: length 0, type, CRC.
const PNG_IEND_CHUNK: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82];

/// Reads only the header: format and size. Refuses a huge image before anything is decoded
/// or allocated, and a file whose end marker is missing (a truncated copy or download).
pub fn inspect_image(bytes: &[u8], limits: &ImageLimits) -> Result<ImageInfo, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    if bytes.len() as u64 > limits.max_encoded_bytes {
        return Err(ImageError::FileTooLarge {
            bytes: bytes.len() as u64,
            limit: limits.max_encoded_bytes,
        });
    }
    let format = match image::guess_format(bytes) {
        Ok(image::ImageFormat::Jpeg) if bytes.starts_with(&JPEG_MAGIC) => EncodedFormat::Jpeg,
        Ok(image::ImageFormat::Png) if bytes.starts_with(&PNG_MAGIC) => EncodedFormat::Png,
        Ok(other) => {
            return Err(ImageError::UnsupportedFormat {
                format: format!("{other:?}").to_uppercase(),
            });
        }
        Err(_) => return Err(ImageError::NotAnImage),
    };
    let reader = image::ImageReader::with_format(Cursor::new(bytes), to_image_format(format));
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| decode_error(format, bytes, e))?;
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt {
            format: format.name(),
            detail: format!("it claims a size of {width}x{height}"),
        });
    }
    if width > limits.max_side
        || height > limits.max_side
        || u64::from(width) * u64::from(height) > limits.max_pixels
    {
        return Err(ImageError::TooLarge {
            width,
            height,
            max_side: limits.max_side,
            max_pixels: limits.max_pixels,
        });
    }
    if !has_end_marker(format, bytes) {
        return Err(ImageError::Truncated {
            format: format.name(),
        });
    }
    Ok(ImageInfo {
        format,
        width,
        height,
    })
}

/// `inspect_image`, then a full decode (bounded by the same limits) to catch damage inside.
pub fn validate_image(bytes: &[u8], limits: &ImageLimits) -> Result<ImageInfo, ImageError> {
    let info = inspect_image(bytes, limits)?;
    let mut reader =
        image::ImageReader::with_format(Cursor::new(bytes), to_image_format(info.format));
    let mut decode_limits = image::Limits::default();
    decode_limits.max_image_width = Some(limits.max_side);
    decode_limits.max_image_height = Some(limits.max_side);
    // RGBA of the largest allowed image, with room for the decoder's own buffers.
    decode_limits.max_alloc = Some(limits.max_pixels.saturating_mul(4 * 2));
    reader.limits(decode_limits);
    reader
        .decode()
        .map_err(|e| decode_error(info.format, bytes, e))?;
    Ok(info)
}

/// Validates a photo and checks that it has the size its record claims.
pub fn validate_image_with_size(
    bytes: &[u8],
    declared_width: u32,
    declared_height: u32,
    limits: &ImageLimits,
) -> Result<ImageInfo, ImageError> {
    let info = validate_image(bytes, limits)?;
    if (info.width, info.height) != (declared_width, declared_height) {
        return Err(ImageError::DimensionsMismatch {
            declared_width,
            declared_height,
            actual_width: info.width,
            actual_height: info.height,
        });
    }
    Ok(info)
}

fn to_image_format(format: EncodedFormat) -> image::ImageFormat {
    match format {
        EncodedFormat::Jpeg => image::ImageFormat::Jpeg,
        EncodedFormat::Png => image::ImageFormat::Png,
    }
}

fn has_end_marker(format: EncodedFormat, bytes: &[u8]) -> bool {
    match format {
        // Some encoders pad with zero bytes after the end-of-image marker.
        EncodedFormat::Jpeg => {
            let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            bytes[..end].ends_with(&JPEG_END_OF_IMAGE)
        }
        EncodedFormat::Png => bytes.ends_with(&PNG_IEND_CHUNK),
    }
}

fn decode_error(format: EncodedFormat, bytes: &[u8], error: image::ImageError) -> ImageError {
    let eof = match &error {
        image::ImageError::IoError(io) => io.kind() == std::io::ErrorKind::UnexpectedEof,
        other => {
            let text = other.to_string().to_lowercase();
            text.contains("eof") || text.contains("end of file") || text.contains("unexpected end")
        }
    };
    if eof || !has_end_marker(format, bytes) {
        ImageError::Truncated {
            format: format.name(),
        }
    } else {
        ImageError::Corrupt {
            format: format.name(),
            detail: error.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Model files

/// First bytes of every model file.
pub const MODEL_FILE_MAGIC: [u8; 8] = *b"FVMODEL\0";
/// The model file format this build reads and writes.
pub const MODEL_FILE_FORMAT_VERSION: u32 = 1;
/// A header lists tensor names and shapes; a megabyte is far more than any network needs.
pub const MAX_MODEL_HEADER_BYTES: u32 = 1 << 20;

/// Element type of a stored tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorDType {
    F32,
    F16,
    Bf16,
    I32,
    /// Raw bytes: lets a model carry an opaque blob (e.g. a Burn record) as a 1-D tensor.
    U8,
}

impl TensorDType {
    pub fn size_bytes(self) -> u64 {
        match self {
            TensorDType::F32 | TensorDType::I32 => 4,
            TensorDType::F16 | TensorDType::Bf16 => 2,
            TensorDType::U8 => 1,
        }
    }
}

/// Name, shape and type of one tensor in a model file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<u64>,
    pub dtype: TensorDType,
}

impl TensorSpec {
    /// Bytes of this tensor's data, or `None` when the shape overflows.
    pub fn byte_len(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(self.dtype.size_bytes(), |acc, &d| acc.checked_mul(d))
    }
}

/// The JSON header of a model file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFileHeader {
    pub format_version: u32,
    pub tower_kind: String,
    /// Tensors in payload order; the payload is their data concatenated, little-endian.
    pub tensors: Vec<TensorSpec>,
}

/// A model file: `MODEL_FILE_MAGIC`, the header length (u32 little-endian), the JSON header,
/// then the payload. The header makes a model checkable without loading it into a network:
/// a file whose shapes do not add up to its payload, or do not fit the network, is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFile {
    pub header: ModelFileHeader,
    pub payload: Vec<u8>,
}

/// Why a model file was refused. The Display text is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelFormatError {
    #[error("the model file is only {len} bytes, too short to be a model")]
    TooShort { len: usize },
    #[error("the file is not a faceverify model")]
    NotAModelFile,
    #[error("the model header is {len} bytes, more than the {limit} byte limit")]
    HeaderTooLarge { len: u64, limit: u32 },
    #[error("the model header is unreadable ({detail})")]
    BadHeader { detail: String },
    #[error(
        "the model file has format version {found}, but this version of faceverify reads up to \
         {supported}; update the app to use it"
    )]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("the model file lists no tensors")]
    NoTensors,
    #[error("tensor '{tensor}' has an impossible shape")]
    ShapeOverflow { tensor: String },
    #[error(
        "the model's shapes need {expected} bytes of weights but the file holds {actual}: it is \
         truncated or damaged"
    )]
    PayloadSizeMismatch { expected: u64, actual: u64 },
    #[error("the model record says tower '{record}' but the file holds tower '{file}'")]
    TowerKindMismatch { record: String, file: String },
    #[error("the model record says format version {record} but the file has {file}")]
    FormatVersionMismatch { record: u32, file: u32 },
    #[error(
        "tensor '{tensor}' has shape {found:?} but the network needs {expected:?}: the model \
         was made for a different network"
    )]
    ShapeMismatch {
        tensor: String,
        expected: Vec<u64>,
        found: Option<Vec<u64>>,
    },
}

impl ModelFile {
    /// Builds a model file and checks that the payload fits the declared shapes.
    pub fn new(
        tower_kind: impl Into<String>,
        tensors: Vec<TensorSpec>,
        payload: Vec<u8>,
    ) -> Result<ModelFile, ModelFormatError> {
        let file = ModelFile {
            header: ModelFileHeader {
                format_version: MODEL_FILE_FORMAT_VERSION,
                tower_kind: tower_kind.into(),
                tensors,
            },
            payload,
        };
        check_payload(&file.header, file.payload.len() as u64)?;
        Ok(file)
    }

    pub fn encode(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).expect("a model header always serialises");
        let mut out = Vec::with_capacity(12 + header.len() + self.payload.len());
        out.extend_from_slice(&MODEL_FILE_MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.payload);
        out
    }

    /// Parses and checks a model file (header, version, payload size).
    pub fn decode(bytes: &[u8]) -> Result<ModelFile, ModelFormatError> {
        let (header, offset) = parse_model_header(bytes)?;
        Ok(ModelFile {
            header,
            payload: bytes[offset..].to_vec(),
        })
    }

    /// The data of one tensor, by name.
    pub fn tensor_bytes(&self, name: &str) -> Option<&[u8]> {
        let mut start = 0usize;
        for spec in &self.header.tensors {
            let len = spec.byte_len()? as usize;
            if spec.name == name {
                return self.payload.get(start..start + len);
            }
            start += len;
        }
        None
    }
}

/// Parses the header and checks it against the payload; returns it and the payload offset.
/// Reads no further than the header, so it is cheap on large models.
pub fn parse_model_header(bytes: &[u8]) -> Result<(ModelFileHeader, usize), ModelFormatError> {
    if bytes.len() < 12 {
        return Err(ModelFormatError::TooShort { len: bytes.len() });
    }
    if bytes[..8] != MODEL_FILE_MAGIC {
        return Err(ModelFormatError::NotAModelFile);
    }
    let header_len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if header_len > MAX_MODEL_HEADER_BYTES {
        return Err(ModelFormatError::HeaderTooLarge {
            len: u64::from(header_len),
            limit: MAX_MODEL_HEADER_BYTES,
        });
    }
    let header_end = 12 + header_len as usize;
    if bytes.len() < header_end {
        return Err(ModelFormatError::TooShort { len: bytes.len() });
    }
    let header: ModelFileHeader = serde_json::from_slice(&bytes[12..header_end]).map_err(|e| {
        ModelFormatError::BadHeader {
            detail: e.to_string(),
        }
    })?;
    check_payload(&header, (bytes.len() - header_end) as u64)?;
    Ok((header, header_end))
}

fn check_payload(header: &ModelFileHeader, payload_len: u64) -> Result<(), ModelFormatError> {
    if header.format_version > MODEL_FILE_FORMAT_VERSION || header.format_version == 0 {
        return Err(ModelFormatError::UnsupportedVersion {
            found: header.format_version,
            supported: MODEL_FILE_FORMAT_VERSION,
        });
    }
    if header.tensors.is_empty() {
        return Err(ModelFormatError::NoTensors);
    }
    let mut expected = 0u64;
    for spec in &header.tensors {
        let len = spec
            .byte_len()
            .ok_or_else(|| ModelFormatError::ShapeOverflow {
                tensor: spec.name.clone(),
            })?;
        expected = expected
            .checked_add(len)
            .ok_or_else(|| ModelFormatError::ShapeOverflow {
                tensor: spec.name.clone(),
            })?;
    }
    if expected != payload_len {
        return Err(ModelFormatError::PayloadSizeMismatch {
            expected,
            actual: payload_len,
        });
    }
    Ok(())
}

/// Checks a stored model's bytes against its record: a parsable model file of the same tower
/// and format version whose shapes add up to its payload.
pub fn check_model_bytes(
    bytes: &[u8],
    tower_kind: &str,
    format_version: u32,
) -> Result<ModelFileHeader, ModelFormatError> {
    let (header, _) = parse_model_header(bytes)?;
    if header.tower_kind != tower_kind {
        return Err(ModelFormatError::TowerKindMismatch {
            record: tower_kind.to_owned(),
            file: header.tower_kind,
        });
    }
    if header.format_version != format_version {
        return Err(ModelFormatError::FormatVersionMismatch {
            record: format_version,
            file: header.format_version,
        });
    }
    Ok(header)
}

/// Checks that a model file has exactly the tensors a network needs (the network's code
/// supplies `expected`). Used before loading weights into a network.
pub fn check_model_layout(
    header: &ModelFileHeader,
    expected: &[TensorSpec],
) -> Result<(), ModelFormatError> {
    for want in expected {
        let found = header.tensors.iter().find(|t| t.name == want.name);
        if found.is_none_or(|t| t.shape != want.shape || t.dtype != want.dtype) {
            return Err(ModelFormatError::ShapeMismatch {
                tensor: want.name.clone(),
                expected: want.shape.clone(),
                found: found.map(|t| t.shape.clone()),
            });
        }
    }
    if let Some(extra) = header
        .tensors
        .iter()
        .find(|t| !expected.iter().any(|w| w.name == t.name))
    {
        return Err(ModelFormatError::ShapeMismatch {
            tensor: extra.name.clone(),
            expected: Vec::new(),
            found: Some(extra.shape.clone()),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Archives

/// Caps that make a hostile archive ("bomb") harmless: checked against the sizes the archive
/// declares, before any entry is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    pub max_entries: usize,
    pub max_entry_bytes: u64,
    pub max_total_bytes: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            // A few thousand photos, each with a crop, plus models.
            max_entries: 50_000,
            max_entry_bytes: 512 * 1024 * 1024,
            // A wasm tab cannot hold much more than this in memory anyway.
            max_total_bytes: 2 * 1024 * 1024 * 1024,
        }
    }
}

/// An archive entry name the importer accepts: relative, `/`-separated, no `..`, plain
/// characters only. Import never writes files, but names are echoed in messages and a
/// traversal name is a sign of a hostile archive.
pub fn is_safe_entry_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('/')
        && name.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_that_could_escape_are_unsafe() {
        for good in [
            "manifest.json",
            "images/000001.jpg",
            "checkpoints/0001.model",
        ] {
            assert!(is_safe_entry_name(good), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "images/../../x",
            "images//x",
            "a\\b",
            "images/./x",
            "naïve.jpg",
        ] {
            assert!(!is_safe_entry_name(bad), "{bad}");
        }
    }

    #[test]
    fn model_file_round_trips_and_refuses_an_oversized_header() {
        let spec = TensorSpec {
            name: "w".into(),
            shape: vec![2, 2],
            dtype: TensorDType::F16,
        };
        let file = ModelFile::new("tower", vec![spec.clone()], vec![1; 8]).unwrap();
        assert_eq!(ModelFile::decode(&file.encode()).unwrap(), file);
        assert_eq!(
            ModelFile::new("tower", vec![spec], vec![1; 7]).unwrap_err(),
            ModelFormatError::PayloadSizeMismatch {
                expected: 8,
                actual: 7
            }
        );
        let mut bytes = MODEL_FILE_MAGIC.to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            parse_model_header(&bytes),
            Err(ModelFormatError::HeaderTooLarge { .. })
        ));
        assert_eq!(
            ModelFile::new("tower", Vec::new(), Vec::new()).unwrap_err(),
            ModelFormatError::NoTensors
        );
    }

    #[test]
    fn oversized_files_are_refused_before_decoding() {
        let limits = ImageLimits {
            max_encoded_bytes: 10,
            ..ImageLimits::default()
        };
        assert_eq!(
            inspect_image(&[0xFF; 11], &limits),
            Err(ImageError::FileTooLarge {
                bytes: 11,
                limit: 10
            })
        );
    }
}
