//! One frame in, one face descriptor out: detect (BlazeFace) → pick the largest face → align
//! onto the tower's template → embed (dlib's ResNet, 128-d). The same code runs natively (CLI,
//! tests) and in the browser worker, on any Burn device.

use std::sync::{Mutex, OnceLock};

use burn::prelude::Device;
use serde::{Deserialize, Serialize};

use crate::model::face_resnet::{self, EMBEDDING_DIM, FaceResNet, FaceResNetError};
use crate::store::sha256_hex;
use crate::vision::align::{self, AlignError, CropMode, FaceTemplate};
use crate::vision::detect::{DetectError, Face, FaceDetector};
use crate::vision::frame::Frame;

/// Why a frame could not be analysed. "No face" is not an error: it is a [`FaceAnalysis`]
/// without an embedding.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("the face detector failed: {0}")]
    Detect(#[from] DetectError),
    #[error("aligning the face failed: {0}")]
    Align(#[from] AlignError),
    #[error("the face descriptor network failed: {0}")]
    Embed(#[from] FaceResNetError),
    #[error("could not read the image: {0}")]
    Decode(String),
}

/// What the pipeline found in one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceAnalysis {
    /// Every face the detector saw (the pipeline works on the largest).
    pub faces_seen: usize,
    /// The largest face in frame coordinates; `None` when there is no face (or with the centre
    /// crop, which does not look for one).
    pub face: Option<Face>,
    /// The 128-d descriptor of the aligned face; `None` when there was no face to align.
    pub embedding: Option<Vec<f32>>,
    pub crop: CropMode,
}

/// The detector and the descriptor network on one device.
pub struct FacePipeline {
    detector: FaceDetector,
    tower: FaceResNet,
    /// SHA-256 (hex) of the tower's weight file: names the descriptors it makes. Hashed on first
    /// use, from `tower_weights`: hashing 6.5 MB in wasm would otherwise delay the first camera
    /// frame of every visit, which needs only the detector.
    tower_sha256: OnceLock<String>,
    tower_weights: Mutex<Option<Vec<u8>>>,
    template: FaceTemplate,
    device: Device,
}

impl FacePipeline {
    /// Builds both networks from their weight files (`models/blazeface.f16.bin`,
    /// `models/face_resnet.q8.bin`).
    pub fn from_bytes(
        detector_weights: &[u8],
        tower_weights: &[u8],
        device: &Device,
    ) -> Result<Self, PipelineError> {
        Ok(Self {
            detector: FaceDetector::from_bytes(detector_weights, device)?,
            tower: FaceResNet::from_bytes(tower_weights, device)?,
            tower_sha256: OnceLock::new(),
            tower_weights: Mutex::new(Some(tower_weights.to_vec())),
            template: FaceTemplate::dlib_150(),
            device: device.clone(),
        })
    }

    /// SHA-256 (hex) of the descriptor network's weights: a stored descriptor is valid for
    /// this pipeline only when it names the same network.
    pub fn tower_sha256(&self) -> &str {
        self.tower_sha256.get_or_init(|| {
            let weights = self
                .tower_weights
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take()
                .unwrap_or_default();
            sha256_hex(&weights)
        })
    }

    /// The face detector, for callers that only need the boxes (the live view).
    pub fn detector(&self) -> &FaceDetector {
        &self.detector
    }

    /// Detects, aligns and embeds the largest face of `frame`.
    pub async fn analyse(
        &self,
        frame: &Frame,
        crop: CropMode,
    ) -> Result<FaceAnalysis, PipelineError> {
        let (face, faces_seen) = match crop {
            CropMode::Detect => {
                let largest = self.detector.detect_largest(frame).await?;
                (largest.face, largest.faces_seen)
            }
            CropMode::Centre => (None, 0),
        };
        if crop == CropMode::Detect && face.is_none() {
            return Ok(FaceAnalysis {
                faces_seen,
                face: None,
                embedding: None,
                crop,
            });
        }
        let input = align::crop(frame, crop, face.as_ref(), &self.template)?;
        let embedding = self.embed_aligned(&[input]).await?.pop();
        Ok(FaceAnalysis {
            faces_seen,
            face,
            embedding,
            crop,
        })
    }

    /// Descriptors of already aligned 150×150 crops, in one batch.
    pub async fn embed_aligned(&self, crops: &[Frame]) -> Result<Vec<Vec<f32>>, PipelineError> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        let pixels: Vec<u8> = crops
            .iter()
            .flat_map(|c| c.pixels().iter().copied())
            .collect();
        let embeddings = self
            .tower
            .embed(face_resnet::input_from_rgb8(&pixels, &self.device))
            .await?;
        Ok(embeddings.into_iter().map(|e| e.to_vec()).collect())
    }

    /// Decodes an encoded photo (JPEG/PNG) and analyses it.
    pub async fn analyse_encoded(
        &self,
        bytes: &[u8],
        crop: CropMode,
    ) -> Result<FaceAnalysis, PipelineError> {
        let image =
            image::load_from_memory(bytes).map_err(|e| PipelineError::Decode(e.to_string()))?;
        self.analyse(&Frame::from_image(&image), crop).await
    }
}

/// Euclidean distance between two descriptors (dlib's rule: the same person below ~0.6).
pub fn descriptor_distance(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), EMBEDDING_DIM);
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}
