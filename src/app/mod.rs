//! The app's use cases over any [`Store`]: check a camera frame, capture or import photos,
//! train a profile's model and verify a probe. The browser worker (`web::worker`) is thin glue
//! around these functions, and the same code is tested natively on [`MemoryStore`](crate::store::MemoryStore).
//!
//! Photos are kept twice: the photo as JPEG (what the person took, exported and re-analysable)
//! and the aligned 150×150 face crop (what every network reads). Classic mode resizes that crop
//! to the Koch tower's 100×100, so every mode works from the same stored crop.

use std::future::Future;
use std::pin::Pin;

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::face_resnet::{EMBEDDING_DIM, INPUT_SIZE};
use crate::model::koch::{
    DeviceBufferLimits, KOCH_INPUT, KochTower, KochTowerConfig, check_koch_fits,
};
use crate::model::siamese::{Siamese, SiameseHead};
use crate::pipeline::{FacePipeline, PipelineError};
use crate::store::validate::{self, ImageLimits};
use crate::store::{
    ImageDescriptor, ImageId, ImageRole, ImageSource, Millis, ModelId, ModelSummary, ProfileId,
    RunStatus, Store, StoreError, StoredImage, StoredModel, TrainingMode, TrainingRun,
};
use crate::train::impostors::ImpostorModel;
use crate::train::run::{
    CLASSIC_TOWER_KIND, FINE_TUNE_TOWER_KIND, FinalReport, FineTuneInputs, HeadModel, ImageTable,
    PairModel, RunControl, RunError, RunSettings, SiameseModel, StopReason, TrainedModel, Trainer,
    TrainingCheckpoint, TrainingEvent, TrainingObserver, classic_trainer, fine_tune_trainer,
    load_module_record,
};
use crate::verify::policy::{
    VerificationError, VerificationPolicy, VerificationResult, read_scores,
};
use crate::vision::align::{FaceTemplate, align_face};
use crate::vision::detect::Face;
use crate::vision::frame::Frame;

mod session;
pub use session::{Host, MAX_PROFILE_NAME, Session, SessionError};

/// Impostor samples added to the negatives of a fine-tune run.
pub const IMPOSTOR_SAMPLES: usize = 300;
/// Most (anchor, other) pairs per class in fine-tune mode: cached embeddings make pairs cheap.
pub const FINE_TUNE_MAX_PAIRS: usize = 400;
/// At most this many references are compared with a probe (the tutorial used 50).
pub const MAX_REFERENCES: usize = 50;
/// JPEG quality of stored photos and crops.
const JPEG_QUALITY: u8 = 92;

/// Why a use case failed. The worker turns these into sentences at the boundary.
#[derive(Debug, Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Training(#[from] RunError),
    #[error(transparent)]
    Verification(#[from] VerificationError),
    #[error("{0}")]
    Image(String),
    #[error("this profile has no trained model yet: capture anchors and positives, then train")]
    NoModel,
    #[error("training needs at least {needed} {role} photos of this profile, and it has {found}")]
    NotEnoughPhotos {
        role: &'static str,
        needed: usize,
        found: usize,
    },
    #[error(
        "classic mode trains on other people's faces too: import or capture at least {needed} negatives (it has {found})"
    )]
    NotEnoughNegatives { needed: usize, found: usize },
    #[error(
        "this GPU cannot hold the classic (Koch) network: {0}. Choose the CPU engine in the settings, or fine-tune mode"
    )]
    DeviceTooSmall(String),
    #[error("the stored model was made by a different version of the app ({0}); train again")]
    IncompatibleModel(String),
    #[error("this file is not a faceverify model ({0})")]
    NotAModel(String),
}

// ---------------------------------------------------------------------------------------------
// Frame quality

/// Advice for the person in front of the camera (the page words it). Every hint also refuses
/// a capture ([`QualityGate::Enforce`]) unless the person insists.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "hint", rename_all = "snake_case")]
pub enum FrameHint {
    NoFace,
    SeveralFaces { count: usize },
    TooSmall { face_pixels: u32 },
    TooDark { brightness: u8 },
    TooBlurred { sharpness: f32 },
}

/// Faces narrower than this fraction of the frame's shorter side are too small: the detector
/// sees the frame at 128×128, where it loses faces under a fifth of the frame (measured on a
/// 640×480 frame: found from 95 pixels up), so a face near that size is about to be lost.
pub const MIN_FACE_FRACTION: f32 = 0.25;
/// Mean brightness (0–255) of the face box below which a photo is too dark.
pub const MIN_BRIGHTNESS: u8 = 45;
/// Variance of the Laplacian of the aligned crop below which it is too blurred. LFW's photos,
/// upscaled from 250 pixels, measure above 40; a face moving during the exposure well below.
pub const MIN_SHARPNESS: f32 = 12.0;

/// What the live view draws: every face and the advice for this frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameCheck {
    pub width: u32,
    pub height: u32,
    /// Every face, highest score first.
    pub faces: Vec<Face>,
    /// Index into `faces` of the face the app would use (the largest).
    pub chosen: Option<usize>,
    pub hints: Vec<FrameHint>,
}

/// The hints for `frame` given its detections and, when there is a face, its aligned crop.
pub fn frame_hints(frame: &Frame, faces: &[Face], aligned: Option<&Frame>) -> Vec<FrameHint> {
    let Some(largest) = largest_face(faces).map(|i| &faces[i]) else {
        return vec![FrameHint::NoFace];
    };
    let mut hints = Vec::new();
    if faces.len() > 1 {
        hints.push(FrameHint::SeveralFaces { count: faces.len() });
    }
    let face_pixels = largest.bbox.width.max(0.0).round() as u32;
    if (face_pixels as f32) < MIN_FACE_FRACTION * frame.width().min(frame.height()) as f32 {
        hints.push(FrameHint::TooSmall { face_pixels });
    }
    let brightness = mean_brightness(frame, largest);
    if brightness < MIN_BRIGHTNESS {
        hints.push(FrameHint::TooDark { brightness });
    }
    if let Some(crop) = aligned {
        let sharpness = sharpness(crop);
        if sharpness < MIN_SHARPNESS {
            hints.push(FrameHint::TooBlurred { sharpness });
        }
    }
    hints
}

fn largest_face(faces: &[Face]) -> Option<usize> {
    (0..faces.len()).max_by(|&a, &b| faces[a].bbox.area().total_cmp(&faces[b].bbox.area()))
}

fn luma([r, g, b]: [u8; 3]) -> f32 {
    0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)
}

/// Mean luma inside the face box (clamped to the frame).
fn mean_brightness(frame: &Frame, face: &Face) -> u8 {
    let clamp = |v: f32, max: u32| (v.max(0.0) as u32).min(max);
    let (x0, x1) = (
        clamp(face.bbox.x_min, frame.width()),
        clamp(face.bbox.x_max(), frame.width()),
    );
    let (y0, y1) = (
        clamp(face.bbox.y_min, frame.height()),
        clamp(face.bbox.y_max(), frame.height()),
    );
    let (mut sum, mut count) = (0.0f64, 0u64);
    // Every other pixel: plenty for a mean, half the work per frame.
    for y in (y0..y1).step_by(2) {
        for x in (x0..x1).step_by(2) {
            sum += f64::from(luma(frame.pixel(x, y)));
            count += 1;
        }
    }
    if count == 0 {
        return 0;
    }
    (sum / count as f64).round().clamp(0.0, 255.0) as u8
}

/// Variance of the 4-neighbour Laplacian of the luma: low when there are no edges (blur).
pub fn sharpness(frame: &Frame) -> f32 {
    let (w, h) = (frame.width() as i64, frame.height() as i64);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let l = |x: i64, y: i64| luma(frame.pixel(x as u32, y as u32));
    let (mut sum, mut sum2, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let v =
                f64::from(l(x - 1, y) + l(x + 1, y) + l(x, y - 1) + l(x, y + 1) - 4.0 * l(x, y));
            sum += v;
            sum2 += v * v;
            n += 1.0;
        }
    }
    let mean = sum / n;
    (sum2 / n - mean * mean) as f32
}

/// Detects the faces of a live frame and advises (no embedding: cheap enough for a live view).
pub async fn check_frame(pipeline: &FacePipeline, frame: &Frame) -> Result<FrameCheck, AppError> {
    let faces = pipeline
        .detector()
        .detect(frame)
        .await
        .map_err(PipelineError::from)?
        .faces;
    let chosen = largest_face(&faces);
    let aligned = match chosen {
        Some(i) => Some(
            align_face(frame, &faces[i], &FaceTemplate::dlib_150()).map_err(PipelineError::from)?,
        ),
        None => None,
    };
    let hints = frame_hints(frame, &faces, aligned.as_ref());
    Ok(FrameCheck {
        width: frame.width(),
        height: frame.height(),
        faces,
        chosen,
        hints,
    })
}

// ---------------------------------------------------------------------------------------------
// Capture and import

/// A stored photo as the page lists it: no full photo, only the small aligned crop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSummary {
    pub id: ImageId,
    pub role: ImageRole,
    pub source: ImageSource,
    pub created: Millis,
    pub width: u32,
    pub height: u32,
    /// The aligned face crop (JPEG), for thumbnails.
    #[serde(with = "serde_bytes")]
    pub crop: Vec<u8>,
}

impl ImageSummary {
    pub fn of(image: &StoredImage) -> Self {
        Self {
            id: image.id.clone(),
            role: image.role,
            source: image.source,
            created: image.created,
            width: image.width,
            height: image.height,
            crop: image.aligned_crop.clone().unwrap_or_default(),
        }
    }
}

/// What became of a capture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CaptureOutcome {
    /// Stored; `hints` say how the next photo could be better (only with
    /// [`QualityGate::StoreAnyway`] are there any).
    Stored {
        image: ImageSummary,
        hints: Vec<FrameHint>,
    },
    /// Nothing stored: the face would make a poor reference photo, for the reasons in `hints`.
    Refused { hints: Vec<FrameHint> },
    /// Nothing stored: there was no face.
    NoFace,
}

/// Whether a capture must pass the frame checks before it is stored. Every photo a person
/// captures becomes a reference that later frames are compared with, so by default a face that
/// is too small, too dark, blurred, or shown beside another face is refused with the reason;
/// the person may insist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityGate {
    /// Refuse a face that any hint finds fault with.
    #[default]
    Enforce,
    /// Store the face whatever the hints say (they still come back as advice).
    StoreAnyway,
}

/// Where a new photo goes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPhoto {
    pub id: ImageId,
    pub profile: ProfileId,
    pub role: ImageRole,
    pub source: ImageSource,
    pub created: Millis,
}

fn encode_jpeg(frame: &Frame) -> Result<Vec<u8>, AppError> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
        .write_image(
            frame.pixels(),
            frame.width(),
            frame.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| AppError::Image(format!("could not encode the photo: {e}")))?;
    Ok(out)
}

/// Detects and aligns the largest face of `frame` and builds its record (not yet stored).
async fn photo_record(
    pipeline: &FacePipeline,
    frame: &Frame,
    photo: NewPhoto,
) -> Result<Option<(StoredImage, Vec<FrameHint>)>, AppError> {
    let faces = pipeline
        .detector()
        .detect(frame)
        .await
        .map_err(PipelineError::from)?
        .faces;
    let Some(chosen) = largest_face(&faces) else {
        return Ok(None);
    };
    let aligned = align_face(frame, &faces[chosen], &FaceTemplate::dlib_150())
        .map_err(PipelineError::from)?;
    let hints = frame_hints(frame, &faces, Some(&aligned));
    let image = StoredImage {
        id: photo.id,
        profile_id: photo.profile,
        role: photo.role,
        source: photo.source,
        created: photo.created,
        width: frame.width(),
        height: frame.height(),
        encoded: encode_jpeg(frame)?,
        aligned_crop: Some(encode_jpeg(&aligned)?),
        descriptor: None,
    };
    Ok(Some((image, hints)))
}

/// Stores one camera frame as a photo of `photo.role` (one transaction). No face, or a face
/// that `gate` refuses: nothing stored.
pub async fn capture<S: Store>(
    store: &S,
    pipeline: &FacePipeline,
    frame: &Frame,
    photo: NewPhoto,
    gate: QualityGate,
) -> Result<CaptureOutcome, AppError> {
    match photo_record(pipeline, frame, photo).await? {
        None => Ok(CaptureOutcome::NoFace),
        Some((_, hints)) if gate == QualityGate::Enforce && !hints.is_empty() => {
            Ok(CaptureOutcome::Refused { hints })
        }
        Some((image, hints)) => {
            store.put_image(&image).await?;
            Ok(CaptureOutcome::Stored {
                image: ImageSummary::of(&image),
                hints,
            })
        }
    }
}

/// One file handed to [`import_photos`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedFile {
    pub name: String,
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// A file that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedFile {
    pub name: String,
    pub reason: String,
}

/// What an import did: everything in `added` was stored in one transaction.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImportReport {
    pub added: Vec<ImageSummary>,
    pub skipped: Vec<SkippedFile>,
    /// Photos found inside archives (zip, tar, tgz) before sampling.
    pub found_in_archives: usize,
}

/// Limits for expanding archives of photos (a zip of LFW is 13,000 photos, 180 MB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpandLimits {
    /// At most this many photos are taken from all archives together (evenly sampled).
    pub max_photos: usize,
    /// Stop reading an archive after this many uncompressed bytes (a zip bomb).
    pub max_uncompressed_bytes: u64,
}

impl Default for ExpandLimits {
    fn default() -> Self {
        Self {
            max_photos: 200,
            max_uncompressed_bytes: 1 << 30,
        }
    }
}

fn is_photo_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".jpg", ".jpeg", ".png"].iter().any(|e| lower.ends_with(e))
        && !lower.rsplit('/').next().unwrap_or("").starts_with('.')
}

/// Turns the chosen files into photo files: photos stay, zip / tar / tgz archives are opened
/// and their photos sampled evenly (LFW's `lfw.tgz` holds 13,233), anything else is skipped.
pub fn expand_files(
    files: Vec<NamedFile>,
    limits: &ExpandLimits,
) -> (Vec<NamedFile>, Vec<SkippedFile>, usize) {
    let mut photos = Vec::new();
    let mut from_archives: Vec<NamedFile> = Vec::new();
    let mut skipped = Vec::new();
    for file in files {
        let lower = file.name.to_ascii_lowercase();
        let archive = if lower.ends_with(".zip") {
            Some(read_zip(&file.bytes, limits))
        } else if lower.ends_with(".tgz") || lower.ends_with(".tar.gz") {
            Some(read_tar(
                flate2::read::GzDecoder::new(file.bytes.as_slice()),
                limits,
            ))
        } else if lower.ends_with(".tar") {
            Some(read_tar(file.bytes.as_slice(), limits))
        } else {
            None
        };
        match archive {
            Some(Ok(found)) => from_archives.extend(found),
            Some(Err(reason)) => skipped.push(SkippedFile {
                name: file.name,
                reason,
            }),
            None => photos.push(file),
        }
    }
    let found = from_archives.len();
    let room = limits.max_photos.saturating_sub(photos.len());
    if from_archives.len() > room {
        // Evenly spaced, so a sorted archive of many people gives many people.
        let step = from_archives.len() as f64 / room.max(1) as f64;
        from_archives = (0..room)
            .map(|i| from_archives[(i as f64 * step) as usize].clone())
            .collect();
    }
    photos.extend(from_archives);
    (photos, skipped, found)
}

fn read_tar<R: std::io::Read>(reader: R, limits: &ExpandLimits) -> Result<Vec<NamedFile>, String> {
    let mut archive = tar::Archive::new(reader);
    let mut out = Vec::new();
    let mut total = 0u64;
    let entries = archive
        .entries()
        .map_err(|e| format!("not a readable tar archive ({e})"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("the archive is damaged ({e})"))?;
        let name = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let size = entry.header().size().unwrap_or(0);
        if !entry.header().entry_type().is_file() || !is_photo_name(&name) {
            continue;
        }
        total += size;
        if total > limits.max_uncompressed_bytes {
            return Err(format!(
                "it unpacks to more than {} (a zip bomb?)",
                crate::store::format_bytes(limits.max_uncompressed_bytes)
            ));
        }
        let mut bytes = Vec::with_capacity(size.min(64 << 20) as usize);
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut entry, 64 << 20), &mut bytes)
            .map_err(|e| format!("the archive is damaged ({e})"))?;
        out.push(NamedFile { name, bytes });
    }
    Ok(out)
}

fn read_zip(bytes: &[u8], limits: &ExpandLimits) -> Result<Vec<NamedFile>, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a readable zip archive ({e})"))?;
    let mut out = Vec::new();
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| format!("the zip archive is damaged ({e})"))?;
        let name = entry.name().to_string();
        if !entry.is_file() || !is_photo_name(&name) {
            continue;
        }
        // The declared size may lie: count what is actually inflated, with a cap per entry.
        let cap = limits.max_uncompressed_bytes.saturating_sub(total) + 1;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut entry, cap), &mut bytes)
            .map_err(|e| format!("the zip archive is damaged ({e})"))?;
        total += bytes.len() as u64;
        if total > limits.max_uncompressed_bytes {
            return Err(format!(
                "it unpacks to more than {} (a zip bomb?)",
                crate::store::format_bytes(limits.max_uncompressed_bytes)
            ));
        }
        out.push(NamedFile { name, bytes });
    }
    Ok(out)
}

/// Imports photos (or archives of photos) as `role`: each is checked (header size before
/// decoding, truncation, damage), its face found and aligned; photos without a face are
/// skipped with a reason. Everything accepted is stored in ONE transaction, so an import is
/// all or nothing. `progress(done, total)` is called after each photo.
#[allow(clippy::too_many_arguments)]
pub async fn import_photos<S: Store>(
    store: &S,
    pipeline: &FacePipeline,
    files: Vec<NamedFile>,
    profile: &str,
    role: ImageRole,
    now: Millis,
    new_id: &mut dyn FnMut() -> ImageId,
    progress: &mut dyn FnMut(usize, usize),
    yield_now: YieldFn,
) -> Result<ImportReport, AppError> {
    let (photos, mut skipped, found_in_archives) = expand_files(files, &ExpandLimits::default());
    let total = photos.len();
    let mut records = Vec::new();
    let limits = ImageLimits::default();
    for (done, file) in photos.into_iter().enumerate() {
        let frame = validate::inspect_image(&file.bytes, &limits)
            .map_err(|e| e.to_string())
            .and_then(|_| image::load_from_memory(&file.bytes).map_err(|e| e.to_string()));
        match frame {
            Err(reason) => skipped.push(SkippedFile {
                name: file.name,
                reason,
            }),
            Ok(decoded) => {
                let photo = NewPhoto {
                    id: new_id(),
                    profile: profile.into(),
                    role,
                    source: ImageSource::Import,
                    created: now,
                };
                match photo_record(pipeline, &Frame::from_image(&decoded), photo).await? {
                    Some((image, _)) => records.push(image),
                    None => skipped.push(SkippedFile {
                        name: file.name,
                        reason: "no face found".into(),
                    }),
                }
            }
        }
        progress(done + 1, total);
        yield_now().await;
    }
    store.put_images(&records).await?;
    Ok(ImportReport {
        added: records.iter().map(ImageSummary::of).collect(),
        skipped,
        found_in_archives,
    })
}

// ---------------------------------------------------------------------------------------------
// Training

/// A future that lets the host's event loop run (the worker answers messages meanwhile).
pub type YieldFn = fn() -> Pin<Box<dyn Future<Output = ()>>>;

/// Natively there is no event loop to yield to.
pub fn no_yield() -> Pin<Box<dyn Future<Output = ()>>> {
    Box::pin(std::future::ready(()))
}

/// What the person asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRequest {
    pub profile: ProfileId,
    pub mode: TrainingMode,
    /// `None`: the mode's default.
    pub epochs: Option<usize>,
    /// `None`: the tutorial's 16.
    pub batch_size: Option<usize>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Continue the profile's interrupted run when its checkpoint fits the data.
    #[serde(default)]
    pub resume: bool,
}

fn default_seed() -> u64 {
    42
}

/// Ids and times for the records a run writes.
#[derive(Debug, Clone, PartialEq)]
pub struct RunIds {
    pub run_id: String,
    pub model_id: String,
    pub now: Millis,
}

/// The end of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOutcome {
    /// The model saved and activated; `None` when the run was cancelled (its checkpoint waits).
    pub model: Option<ModelSummary>,
    pub stop: StopReason,
    pub report: Option<FinalReport>,
    /// Where a resumed run picked up: (epoch, batch), 0-based.
    pub resumed_from: Option<(usize, usize)>,
    /// Photos per role that went into the pairs (impostor samples counted as negatives).
    pub counts: [usize; 3],
}

/// Writes checkpoints and the run's history through the store, forwards events and yields.
struct StoreObserver<'a, S: Store> {
    store: &'a S,
    run: TrainingRun,
    now: Millis,
    on_event: &'a mut dyn FnMut(&TrainingEvent),
    yield_now: YieldFn,
}

impl<S: Store> TrainingObserver for StoreObserver<'_, S> {
    async fn yield_now(&mut self) {
        (self.yield_now)().await
    }

    fn on_event(&mut self, event: &TrainingEvent) {
        if let TrainingEvent::Epoch(stats) = event {
            self.run.epochs.retain(|e| e.epoch != stats.epoch);
            self.run.epochs.push(*stats);
        }
        (self.on_event)(event);
    }

    async fn save_checkpoint(&mut self, checkpoint: &TrainingCheckpoint) -> Result<(), String> {
        let record = checkpoint.to_store_checkpoint(&self.run.profile_id, &self.run.id, self.now);
        self.store
            .put_checkpoint(&record)
            .await
            .map_err(|e| e.to_string())?;
        self.store
            .put_run(&self.run)
            .await
            .map_err(|e| e.to_string())
    }
}

fn decode_crop(image: &StoredImage, size: u32) -> Result<Frame, AppError> {
    let bytes = image
        .aligned_crop
        .as_ref()
        .ok_or_else(|| AppError::Image(format!("photo {} has no aligned face crop", image.id)))?;
    let decoded = image::load_from_memory(bytes)
        .map_err(|e| AppError::Image(format!("photo {}: {e}", image.id)))?;
    let decoded = if decoded.width() != size || decoded.height() != size {
        decoded.resize_exact(size, size, image::imageops::FilterType::Triangle)
    } else {
        decoded
    };
    Ok(Frame::from_image(&decoded))
}

fn crops(images: &[StoredImage], size: u32) -> Result<Vec<Frame>, AppError> {
    images.iter().map(|i| decode_crop(i, size)).collect()
}

// ---------------------------------------------------------------------------------------------
// Stored descriptors

/// Crops embedded per batch when descriptors are computed (the event loop runs in between).
const DESCRIPTOR_BATCH: usize = 8;

/// The descriptors of `images`' aligned crops, in order. The descriptor network is fixed, so a
/// photo's descriptor never changes: the stored ones that this network made are read, the
/// others computed and stored with their photos, so the next verifier or fine-tune run reads
/// numbers instead of running the network.
pub async fn image_descriptors<S: Store>(
    store: &S,
    pipeline: &FacePipeline,
    images: &[StoredImage],
    yield_now: YieldFn,
) -> Result<Vec<Vec<f32>>, AppError> {
    let tower = pipeline.tower_sha256();
    let mut rows: Vec<Option<Vec<f32>>> = images
        .iter()
        .map(|i| i.descriptor.as_ref()?.values_for(tower, EMBEDDING_DIM))
        .collect();
    let missing: Vec<usize> = (0..images.len()).filter(|&i| rows[i].is_none()).collect();
    let mut computed = Vec::with_capacity(missing.len());
    for batch in missing.chunks(DESCRIPTOR_BATCH) {
        let frames = batch
            .iter()
            .map(|&i| decode_crop(&images[i], INPUT_SIZE as u32))
            .collect::<Result<Vec<_>, _>>()?;
        for (&i, values) in batch.iter().zip(pipeline.embed_aligned(&frames).await?) {
            computed.push((i, ImageDescriptor::new(tower, &values)));
            rows[i] = Some(values);
        }
        yield_now().await;
    }
    store_descriptors(store, images, computed).await;
    Ok(rows
        .into_iter()
        .map(|row| row.expect("every missing descriptor was computed"))
        .collect())
}

/// Writes computed descriptors onto their photos, re-read first so that a photo deleted,
/// moved or re-cropped meanwhile (another tab) is neither brought back nor overwritten. Only a
/// cache: when it cannot be written (a full quota), the next load computes them again.
async fn store_descriptors<S: Store>(
    store: &S,
    images: &[StoredImage],
    computed: Vec<(usize, ImageDescriptor)>,
) {
    let mut updated = Vec::with_capacity(computed.len());
    for (i, descriptor) in computed {
        if let Ok(Some(current)) = store.get_image(&images[i].id).await
            && current.aligned_crop == images[i].aligned_crop
        {
            updated.push(StoredImage {
                descriptor: Some(descriptor),
                ..current
            });
        }
    }
    if !updated.is_empty() {
        let _ = store.put_images(&updated).await;
    }
}

/// The least a run needs, per role.
pub const MIN_ANCHORS: usize = 1;
pub const MIN_POSITIVES: usize = 1;
pub const MIN_CLASSIC_NEGATIVES: usize = 2;

fn settings_for(request: &TrainRequest) -> RunSettings {
    let mut settings = RunSettings::for_mode(request.mode);
    if let Some(epochs) = request.epochs {
        settings.training.epochs = epochs.max(1);
    }
    if let Some(batch) = request.batch_size {
        settings.training.batch_size = batch.max(1);
    }
    settings.training.seed = request.seed;
    if request.mode == TrainingMode::FineTune {
        // Its epochs take milliseconds: a checkpoint every epoch would cost more than training.
        settings.checkpoint_interval_ms = FINE_TUNE_CHECKPOINT_INTERVAL_MS;
    }
    settings
}

/// How often a fine-tune run writes its checkpoint (a reload loses at most this much work).
pub const FINE_TUNE_CHECKPOINT_INTERVAL_MS: f64 = 2000.0;

/// Trains `request.profile`'s model on its stored photos: fine-tune (the frozen pretrained tower
/// embeds every crop once, the head learns on the CPU backend) or classic (the whole Koch
/// network on `device`). Checkpoints and the run's history go to the store every epoch; the
/// finished model is written, then activated. A cancelled run leaves its checkpoint so
/// `resume: true` continues it.
#[allow(clippy::too_many_arguments)]
pub async fn train<S: Store>(
    store: &S,
    pipeline: &FacePipeline,
    impostors: Option<&ImpostorModel>,
    device: &Device,
    device_limits: Option<&DeviceBufferLimits>,
    request: &TrainRequest,
    ids: RunIds,
    control: &RunControl,
    on_event: &mut dyn FnMut(&TrainingEvent),
    yield_now: YieldFn,
) -> Result<TrainOutcome, AppError> {
    let profile = request.profile.as_str();
    let anchors = store.list_images(profile, Some(ImageRole::Anchor)).await?;
    let positives = store
        .list_images(profile, Some(ImageRole::Positive))
        .await?;
    let negatives = store
        .list_images(profile, Some(ImageRole::Negative))
        .await?;
    for (role, needed, found) in [
        ("anchor", MIN_ANCHORS, anchors.len()),
        ("positive", MIN_POSITIVES, positives.len()),
    ] {
        if found < needed {
            return Err(AppError::NotEnoughPhotos {
                role,
                needed,
                found,
            });
        }
    }
    let mut settings = settings_for(request);

    // Resume only the profile's own interrupted run, with the settings it was started with.
    let previous = match store.latest_checkpoint(profile).await? {
        Some(checkpoint) if request.resume => {
            let run = store.get_run(&checkpoint.run_id).await?;
            match (TrainingCheckpoint::from_store_checkpoint(&checkpoint), run) {
                (Ok(saved), Some(run)) if run.mode == request.mode => {
                    settings = saved.settings.clone();
                    Some((saved, run))
                }
                _ => None,
            }
        }
        _ => None,
    };
    let run = match &previous {
        Some((_, run)) => TrainingRun {
            status: RunStatus::Running,
            ..run.clone()
        },
        None => TrainingRun {
            id: ids.run_id.clone(),
            profile_id: profile.into(),
            mode: request.mode,
            started: ids.now,
            status: RunStatus::Running,
            settings: serde_json::Value::Null,
            epochs: Vec::new(),
        },
    };

    let (tower_kind, counts, outcome) = match request.mode {
        TrainingMode::FineTune => {
            let embed = async |images: &[StoredImage]| {
                image_descriptors(store, pipeline, images, yield_now).await
            };
            let mut inputs = FineTuneInputs {
                anchors: embed(&anchors).await?,
                positives: embed(&positives).await?,
                negatives: embed(&negatives).await?,
                impostors: Vec::new(),
            };
            if let Some(model) = impostors {
                inputs.impostors = model.sample(IMPOSTOR_SAMPLES, settings.training.seed);
            }
            if inputs.negatives.len() + inputs.impostors.len() == 0 {
                return Err(AppError::NotEnoughNegatives {
                    needed: 1,
                    found: 0,
                });
            }
            if previous.is_none() && settings.training.pairs_per_class.is_none() {
                settings.training.pairs_per_class =
                    Some((anchors.len() * positives.len()).clamp(1, FINE_TUNE_MAX_PAIRS));
            }
            let counts = [
                inputs.anchors.len(),
                inputs.positives.len(),
                inputs.negatives.len() + inputs.impostors.len(),
            ];
            let fresh = fine_tune_trainer(&inputs, settings.clone())?;
            let table = [
                inputs.anchors,
                inputs.positives,
                [inputs.negatives, inputs.impostors].concat(),
            ]
            .concat();
            let seed = settings.training.seed;
            let (trainer, resumed) = resume(fresh, previous.as_ref().map(|(c, _)| c), || {
                HeadModel::new(&table, seed)
            })?;
            let outcome = run_trainer(
                store, trainer, resumed, run, &ids, control, on_event, yield_now,
            )
            .await?;
            (FINE_TUNE_TOWER_KIND, counts, outcome)
        }
        TrainingMode::Classic => {
            if negatives.len() < MIN_CLASSIC_NEGATIVES {
                return Err(AppError::NotEnoughNegatives {
                    needed: MIN_CLASSIC_NEGATIVES,
                    found: negatives.len(),
                });
            }
            // Both images of every pair go through the tower in one batch.
            koch_fits(device_limits, 2 * settings.training.batch_size)?;
            let size = KOCH_INPUT.width as u32;
            let table = |images: &[StoredImage]| -> Result<Vec<Vec<f32>>, AppError> {
                Ok(ImageTable::from_frames(&crops(images, size)?, KOCH_INPUT)?.images)
            };
            let (a, p, n) = (table(&anchors)?, table(&positives)?, table(&negatives)?);
            let counts = [a.len(), p.len(), n.len()];
            let autodiff = device.clone().autodiff();
            let build = || Siamese::new(KochTowerConfig::new().init(&autodiff), &autodiff);
            let fresh = classic_trainer(
                build(),
                autodiff.clone(),
                KOCH_INPUT,
                [&a, &p, &n],
                settings.clone(),
            )?;
            let images = [a, p, n].concat();
            let (trainer, resumed) = resume(fresh, previous.as_ref().map(|(c, _)| c), || {
                Ok(SiameseModel::new(
                    build(),
                    ImageTable {
                        shape: KOCH_INPUT,
                        images,
                    },
                    autodiff.clone(),
                    CLASSIC_TOWER_KIND,
                ))
            })?;
            let outcome = run_trainer(
                store, trainer, resumed, run, &ids, control, on_event, yield_now,
            )
            .await?;
            (CLASSIC_TOWER_KIND, counts, outcome)
        }
    };
    let (stop, record, report, resumed_from, mut run) = outcome;
    if stop == StopReason::Cancelled {
        run.status = RunStatus::Cancelled;
        store.put_run(&run).await?;
        return Ok(TrainOutcome {
            model: None,
            stop,
            report: None,
            resumed_from,
            counts,
        });
    }
    let report = report.expect("a finished run has a report");
    let policy = report
        .policy
        .as_ref()
        .map_or_else(VerificationPolicy::default, |p| p.policy);
    let metrics = serde_json::json!({
        "test": {
            "loss": report.test_loss,
            "precision": report.evaluation.precision,
            "recall": report.evaluation.recall,
            "accuracy": report.evaluation.accuracy,
            "auc": report.evaluation.auc,
            "eer": report.evaluation.eer.rate,
        },
        "policy": policy,
        "calibration": report.policy,
        "calibration_problem": report.calibration_problem,
    });
    let model = TrainedModel {
        tower_kind: tower_kind.into(),
        record,
        policy,
        summary: serde_json::json!({
            "mode": request.mode,
            "settings": run.settings,
            "images": {"anchor": counts[0], "positive": counts[1], "negative": counts[2]},
            "metrics": metrics,
        }),
    };
    let stored = StoredModel {
        id: ids.model_id.clone(),
        profile_id: profile.into(),
        tower_kind: tower_kind.into(),
        format_version: validate::MODEL_FILE_FORMAT_VERSION,
        created: ids.now,
        training_settings: run.settings.clone(),
        metrics,
        bytes: model.to_bytes(),
    };
    // The new model is written whole before the pointer moves; then the run is closed and its
    // checkpoint (no longer needed) removed.
    store.save_and_activate_model(&stored).await?;
    run.status = RunStatus::Finished;
    run.epochs = report.history.clone();
    store.put_run(&run).await?;
    store.delete_checkpoint(profile).await?;
    Ok(TrainOutcome {
        model: Some(stored.summary()),
        stop,
        report: Some(report),
        resumed_from,
        counts,
    })
}

type RunResult = (
    StopReason,
    Vec<u8>,
    Option<FinalReport>,
    Option<(usize, usize)>,
    TrainingRun,
);

fn resume<M: PairModel>(
    fresh: Trainer<M>,
    checkpoint: Option<&TrainingCheckpoint>,
    rebuild: impl FnOnce() -> Result<M, RunError>,
) -> Result<(Trainer<M>, Option<(usize, usize)>), AppError> {
    let Some(checkpoint) = checkpoint else {
        return Ok((fresh, None));
    };
    let split = fresh.split().clone();
    match Trainer::resume(rebuild()?, split, checkpoint) {
        Ok(trainer) => Ok((
            trainer,
            Some((checkpoint.position.epoch, checkpoint.position.next_batch)),
        )),
        // The photos changed since the checkpoint: its pairs no longer exist. Start afresh.
        Err(RunError::CheckpointMismatch(_)) => Ok((fresh, None)),
        Err(e) => Err(e.into()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_trainer<S: Store, M: PairModel>(
    store: &S,
    mut trainer: Trainer<M>,
    resumed: Option<(usize, usize)>,
    mut run: TrainingRun,
    ids: &RunIds,
    control: &RunControl,
    on_event: &mut dyn FnMut(&TrainingEvent),
    yield_now: YieldFn,
) -> Result<RunResult, AppError> {
    if resumed.is_none() {
        run.id = ids.run_id.clone();
        run.epochs.clear();
    }
    run.settings = serde_json::to_value(trainer.settings()).expect("settings serialise");
    store.put_run(&run).await?;
    let mut observer = StoreObserver {
        store,
        run,
        now: ids.now,
        on_event,
        yield_now,
    };
    let stop = match trainer.run(control, &mut observer).await {
        Ok(stop) => stop,
        Err(error) => {
            let mut run = observer.run;
            run.status = RunStatus::Failed;
            // Best effort: the error that stopped the run matters more than this write.
            let _ = store.put_run(&run).await;
            return Err(error.into());
        }
    };
    let run = observer.run;
    if stop == StopReason::Cancelled {
        return Ok((stop, Vec::new(), None, resumed, run));
    }
    let report = trainer.final_report().await?;
    let record = trainer.model().model_record().await?;
    Ok((stop, record, Some(report), resumed, run))
}

// ---------------------------------------------------------------------------------------------
// Verification

/// The active model of a profile, loaded, with its references embedded once.
pub struct Verifier {
    pub model_id: String,
    /// The thresholds the model's calibration proposed (the sliders mark them).
    pub calibrated: VerificationPolicy,
    network: VerifierNetwork,
    references: Tensor<2>,
    pub reference_ids: Vec<ImageId>,
}

enum VerifierNetwork {
    FineTune(SiameseHead),
    Classic(Siamese<KochTower>),
}

/// The photos a probe is compared with: the profile's verification photos, or, when it has
/// none, its most recent anchors and positives (the tutorial copied positives there by hand).
pub async fn reference_images<S: Store>(
    store: &S,
    profile: &str,
) -> Result<Vec<StoredImage>, AppError> {
    let mut chosen = store
        .list_images(profile, Some(ImageRole::Verification))
        .await?;
    if chosen.is_empty() {
        chosen = store
            .list_images(profile, Some(ImageRole::Positive))
            .await?;
        chosen.extend(store.list_images(profile, Some(ImageRole::Anchor)).await?);
        chosen.sort_by_key(|i| std::cmp::Reverse(i.created));
    }
    chosen.truncate(MAX_REFERENCES);
    Ok(chosen)
}

impl Verifier {
    /// Loads `profile`'s active model and its references' embeddings on `device` (fine-tune
    /// mode reads the stored descriptors; the Koch tower is trained, so it embeds them).
    pub async fn load<S: Store>(
        store: &S,
        pipeline: &FacePipeline,
        profile: &str,
        device: &Device,
        device_limits: Option<&DeviceBufferLimits>,
        yield_now: YieldFn,
    ) -> Result<Self, AppError> {
        let stored = store
            .active_model(profile)
            .await?
            .ok_or(AppError::NoModel)?;
        let model = TrainedModel::from_bytes(&stored.bytes)
            .map_err(|e| AppError::IncompatibleModel(e.to_string()))?;
        let references = reference_images(store, profile).await?;
        if references.is_empty() {
            return Err(VerificationError::NoReferences.into());
        }
        let reference_ids = references.iter().map(|i| i.id.clone()).collect();
        let (network, embeddings) = match model.tower_kind.as_str() {
            FINE_TUNE_TOWER_KIND => {
                let head =
                    load_module_record(SiameseHead::new(EMBEDDING_DIM, device), &model.record)
                        .map_err(|e| AppError::IncompatibleModel(e.to_string()))?;
                let rows = image_descriptors(store, pipeline, &references, yield_now).await?;
                let count = rows.len();
                let table = Tensor::from_data(
                    TensorData::new(rows.concat(), [count, EMBEDDING_DIM]),
                    device,
                );
                (VerifierNetwork::FineTune(head), table)
            }
            CLASSIC_TOWER_KIND => {
                koch_fits(device_limits, references.len())?;
                let network = load_module_record(
                    Siamese::new(KochTowerConfig::new().init(device), device),
                    &model.record,
                )
                .map_err(|e| AppError::IncompatibleModel(e.to_string()))?;
                let images = koch_batch(&crops(&references, KOCH_INPUT.width as u32)?, device)?;
                let embeddings = network.embed(images);
                (VerifierNetwork::Classic(network), embeddings)
            }
            other => {
                return Err(AppError::IncompatibleModel(format!("a '{other}' network")));
            }
        };
        Ok(Self {
            model_id: stored.id,
            calibrated: model.policy,
            network,
            references: embeddings,
            reference_ids,
        })
    }

    /// N.
    pub fn reference_count(&self) -> usize {
        self.reference_ids.len()
    }

    /// Scores an aligned 150×150 probe crop against every reference and applies `policy`.
    pub async fn decide(
        &self,
        pipeline: &FacePipeline,
        aligned: &Frame,
        policy: &VerificationPolicy,
    ) -> Result<VerificationResult, AppError> {
        let scores = match &self.network {
            VerifierNetwork::FineTune(head) => {
                let embedding = pipeline
                    .embed_aligned(std::slice::from_ref(aligned))
                    .await?
                    .pop()
                    .expect("one crop in, one embedding out");
                let device = self.references.device();
                let probe =
                    Tensor::from_data(TensorData::new(embedding, [1, EMBEDDING_DIM]), &device);
                head.score_against_references(probe, self.references.clone())
            }
            VerifierNetwork::Classic(network) => {
                let small = image::imageops::resize(
                    &aligned.to_image(),
                    KOCH_INPUT.width as u32,
                    KOCH_INPUT.height as u32,
                    image::imageops::FilterType::Triangle,
                );
                let frame = Frame::from_image(&image::DynamicImage::ImageRgb8(small));
                let probe = koch_batch(std::slice::from_ref(&frame), &self.references.device())?;
                network.score_against_references(probe, self.references.clone())
            }
        };
        Ok(policy.decide(read_scores(scores).await?)?)
    }
}

/// Refuses, with the reason, a Koch network whose tensors exceed the device's buffer limits
/// (`None`: the CPU backend, which has none): WebGPU would fail validation or lose the device.
fn koch_fits(limits: Option<&DeviceBufferLimits>, images: usize) -> Result<(), AppError> {
    match limits {
        Some(limits) => check_koch_fits(limits, images)
            .map(drop)
            .map_err(|e| AppError::DeviceTooSmall(e.to_string())),
        None => Ok(()),
    }
}

fn koch_batch(frames: &[Frame], device: &Device) -> Result<Tensor<4>, AppError> {
    let table = ImageTable::from_frames(frames, KOCH_INPUT)?;
    let [c, h, w] = KOCH_INPUT.as_array();
    Ok(Tensor::from_data(
        TensorData::new(table.images.concat(), [frames.len(), c, h, w]),
        device,
    ))
}

/// A verification attempt: no face is an answer, never a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum VerifyOutcome {
    NoFace {
        check: FrameCheck,
    },
    Decision {
        check: FrameCheck,
        result: VerificationResult,
        /// The thresholds the model's calibration proposed.
        calibrated: VerificationPolicy,
        model_id: String,
    },
}

/// Verifies the person in `frame` with `verifier` under `policy`.
pub async fn verify_frame(
    pipeline: &FacePipeline,
    verifier: &Verifier,
    frame: &Frame,
    policy: &VerificationPolicy,
) -> Result<VerifyOutcome, AppError> {
    let faces = pipeline
        .detector()
        .detect(frame)
        .await
        .map_err(PipelineError::from)?
        .faces;
    let Some(chosen) = largest_face(&faces) else {
        return Ok(VerifyOutcome::NoFace {
            check: FrameCheck {
                width: frame.width(),
                height: frame.height(),
                faces,
                chosen: None,
                hints: vec![FrameHint::NoFace],
            },
        });
    };
    let aligned = align_face(frame, &faces[chosen], &FaceTemplate::dlib_150())
        .map_err(PipelineError::from)?;
    let hints = frame_hints(frame, &faces, Some(&aligned));
    let result = verifier.decide(pipeline, &aligned, policy).await?;
    Ok(VerifyOutcome::Decision {
        check: FrameCheck {
            width: frame.width(),
            height: frame.height(),
            faces,
            chosen: Some(chosen),
            hints,
        },
        result,
        calibrated: verifier.calibrated,
        model_id: verifier.model_id.clone(),
    })
}

/// Stores a model file (the bytes of a profile's model, as `faceverify train --out` writes
/// them) as `profile`'s active model, with the settings and metrics it carries.
pub async fn import_model<S: Store>(
    store: &S,
    profile: &str,
    bytes: Vec<u8>,
    model_id: ModelId,
    now: Millis,
) -> Result<ModelSummary, AppError> {
    let model = TrainedModel::from_bytes(&bytes).map_err(|e| AppError::NotAModel(e.to_string()))?;
    let mut metrics = model.summary["metrics"].clone();
    if !metrics.is_object() {
        metrics = serde_json::json!({});
    }
    // The thresholds in the file are the ones it verifies with.
    metrics["policy"] = serde_json::json!(model.policy);
    let stored = StoredModel {
        id: model_id,
        profile_id: profile.into(),
        tower_kind: model.tower_kind,
        format_version: validate::MODEL_FILE_FORMAT_VERSION,
        created: now,
        training_settings: model.summary["settings"].clone(),
        metrics,
        bytes,
    };
    store.save_and_activate_model(&stored).await?;
    Ok(stored.summary())
}

// ---------------------------------------------------------------------------------------------
// What the page shows

/// The id of the profile made when none exists yet.
pub const DEFAULT_PROFILE_ID: &str = "default";

/// A checkpoint's position, without its (large) weights: "resume from epoch 3".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointSummary {
    pub run_id: String,
    pub mode: Option<TrainingMode>,
    pub epoch: u32,
    pub position: u64,
    pub created: Millis,
}

/// Everything the page draws for one profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileState {
    pub profiles: Vec<crate::store::Profile>,
    pub profile: crate::store::Profile,
    pub settings: crate::store::Settings,
    pub images: Vec<ImageSummary>,
    pub model: Option<ModelSummary>,
    /// The latest run with its per-epoch history, for the charts.
    pub latest_run: Option<TrainingRun>,
    pub checkpoint: Option<CheckpointSummary>,
    // No storage usage here: measuring it reads every stored payload (a third of a warm start's
    // profile read), so the page asks for it apart (`Store::usage`), after start-up.
}

/// Reads the state of `profile` (or of the first profile, creating one when there is none).
pub async fn profile_state<S: Store>(
    store: &S,
    profile: Option<&str>,
) -> Result<ProfileState, AppError> {
    let mut profiles = store.list_profiles().await?;
    if profiles.is_empty() {
        let first = crate::store::Profile {
            id: DEFAULT_PROFILE_ID.into(),
            name: "Me".into(),
        };
        store.put_profile(&first).await?;
        profiles.push(first);
    }
    let profile = profile
        .and_then(|id| profiles.iter().find(|p| p.id == id))
        .unwrap_or(&profiles[0])
        .clone();
    let images = store
        .list_images(&profile.id, None)
        .await?
        .iter()
        .map(ImageSummary::of)
        .collect();
    let model = match store.active_model_id(&profile.id).await? {
        Some(id) => store
            .list_models(&profile.id)
            .await?
            .into_iter()
            .find(|m| m.id == id),
        None => None,
    };
    let runs = store.list_runs(&profile.id).await?;
    let latest_run = runs.into_iter().max_by_key(|r| r.started);
    let checkpoint = match store.latest_checkpoint(&profile.id).await? {
        Some(c) => {
            let mode = store.get_run(&c.run_id).await?.map(|r| r.mode);
            Some(CheckpointSummary {
                run_id: c.run_id,
                mode,
                epoch: c.epoch,
                position: c.position,
                created: c.created,
            })
        }
        None => None,
    };
    Ok(ProfileState {
        profiles,
        profile,
        settings: store.settings().await?,
        images,
        model,
        latest_run,
        checkpoint,
    })
}
