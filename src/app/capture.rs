//! Checking a camera frame, capturing it as a photo, and importing photos: each face is found,
//! aligned and stored with its crop, one transaction per capture or import.

use serde::{Deserialize, Serialize};

use crate::model::facemesh::FaceMesh;
use crate::pipeline::{FacePipeline, PipelineError};
use crate::store::validate::{self, ImageLimits};
use crate::store::{
    ImageId, ImageMeta, ImageRole, ImageSource, Millis, ProfileId, Store, StoredImage,
};
use crate::vision::align::{FaceTemplate, align_face};
use crate::vision::frame::Frame;
use crate::vision::mesh::mesh_face;
use crate::vision::quality::{FrameCheck, FrameHint, eyes_hint, frame_hints, largest_face};

use super::expand::{ExpandLimits, expand_files};
use super::{AppError, JPEG_QUALITY, YieldFn};

/// The faces of `frame`, what the checks say of it, and its largest face aligned for the
/// tower (none without a face).
pub async fn examine_frame(
    pipeline: &FacePipeline,
    frame: &Frame,
) -> Result<(FrameCheck, Option<Frame>), AppError> {
    let faces = pipeline
        .detector()
        .detect(frame)
        .await
        .map_err(PipelineError::from)?
        .faces;
    let chosen = largest_face(&faces);
    let aligned = chosen
        .map(|i| align_face(frame, &faces[i], &FaceTemplate::dlib_150()))
        .transpose()
        .map_err(PipelineError::from)?;
    let hints = frame_hints(frame, &faces, aligned.as_ref());
    let check = FrameCheck {
        width: frame.width(),
        height: frame.height(),
        faces,
        chosen,
        hints,
    };
    Ok((check, aligned))
}

/// Detects the faces of a live frame and advises (no embedding: cheap enough for a live view).
pub async fn check_frame(pipeline: &FacePipeline, frame: &Frame) -> Result<FrameCheck, AppError> {
    Ok(examine_frame(pipeline, frame).await?.0)
}

/// A stored photo as the page lists it: no full photo, only the small aligned crop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSummary {
    #[serde(flatten)]
    pub meta: ImageMeta,
    /// The aligned face crop (JPEG), for thumbnails.
    #[serde(with = "serde_bytes")]
    pub crop: Vec<u8>,
}

impl ImageSummary {
    pub fn of(image: &StoredImage) -> Self {
        Self {
            meta: image.meta.clone(),
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
/// is turned away, has its eyes shut, is too small, too dark, blurred, or shown beside another
/// face is refused with the reason; the person may insist.
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
/// With the face mesh, the hints also say whether the eyes are closed.
async fn photo_record(
    pipeline: &FacePipeline,
    mesh: Option<&FaceMesh>,
    frame: &Frame,
    photo: NewPhoto,
) -> Result<Option<(StoredImage, Vec<FrameHint>)>, AppError> {
    let (check, Some(aligned)) = examine_frame(pipeline, frame).await? else {
        return Ok(None);
    };
    let FrameCheck {
        mut hints,
        faces,
        chosen,
        ..
    } = check;
    if let (Some(mesh), Some(chosen)) = (mesh, chosen)
        && let Some(meshed) = mesh_face(mesh, frame, &faces[chosen]).await?
    {
        hints.extend(eyes_hint(meshed.state.eyes()));
    }
    Ok(Some((stored_image(frame, &aligned, photo)?, hints)))
}

/// The record of `frame` as a photo, with its face's aligned crop.
pub(super) fn stored_image(
    frame: &Frame,
    aligned: &Frame,
    photo: NewPhoto,
) -> Result<StoredImage, AppError> {
    Ok(StoredImage {
        meta: ImageMeta {
            id: photo.id,
            profile_id: photo.profile,
            role: photo.role,
            source: photo.source,
            created: photo.created,
            width: frame.width(),
            height: frame.height(),
        },
        encoded: encode_jpeg(frame)?,
        aligned_crop: Some(encode_jpeg(aligned)?),
        descriptor: None,
    })
}

/// Stores one camera frame as a photo of `photo.role` (one transaction). No face, or a face
/// that `gate` refuses: nothing stored.
pub async fn capture<S: Store>(
    store: &S,
    pipeline: &FacePipeline,
    mesh: Option<&FaceMesh>,
    frame: &Frame,
    photo: NewPhoto,
    gate: QualityGate,
) -> Result<CaptureOutcome, AppError> {
    match photo_record(pipeline, mesh, frame, photo).await? {
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
                match photo_record(pipeline, None, &Frame::from_image(&decoded), photo).await? {
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
