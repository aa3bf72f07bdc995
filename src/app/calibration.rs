//! The thresholds a profile's model verifies with, calibrated per verification attempt: the
//! person's own photos against the other references (genuine attempts) and thousands of
//! other people's descriptors against all of them (impostor attempts).

use crate::pipeline::FacePipeline;
use crate::store::{ImageRole, Store, StoredImage};
use crate::verify::attempts::{AttemptCalibration, LinearHead, calibrate_attempts};

use super::AppError;
use super::descriptors::image_descriptors;
use super::training::no_yield;
use super::verification::reference_images;

/// The person's enrolled photos: every role that shows them.
async fn enrolled_photos<S: Store>(store: &S, profile: &str) -> Result<Vec<StoredImage>, AppError> {
    let mut photos = Vec::new();
    for role in [
        ImageRole::Anchor,
        ImageRole::Positive,
        ImageRole::Verification,
    ] {
        photos.extend(store.list_images(profile, Some(role)).await?);
    }
    Ok(photos)
}

/// Calibrates `head` for `target` FAR per attempt against `profile`'s references.
///
/// - Genuine attempts: each enrolled photo against the references other than itself.
/// - Impostor attempts: each of `impostors` (descriptors of other people, synthetic or
///   imported) against every reference.
pub async fn calibrate_profile<S: Store>(
    store: &S,
    pipeline: &FacePipeline,
    profile: &str,
    head: &LinearHead,
    impostors: &[Vec<f32>],
    target: f64,
) -> Result<AttemptCalibration, AppError> {
    let references = reference_images(store, profile).await?;
    let reference_rows = image_descriptors(store, pipeline, &references, no_yield).await?;
    let enrolled = enrolled_photos(store, profile).await?;
    let enrolled_rows = image_descriptors(store, pipeline, &enrolled, no_yield).await?;
    let genuine: Vec<Vec<f32>> = enrolled
        .iter()
        .zip(&enrolled_rows)
        .map(|(photo, row)| {
            let itself = references.iter().position(|r| r.meta.id == photo.meta.id);
            head.attempt(row, &reference_rows, itself)
        })
        // A photo that is the only reference has nothing to be compared with.
        .filter(|scores| !scores.is_empty())
        .collect();
    let impostor: Vec<Vec<f32>> = impostors
        .iter()
        .map(|row| head.attempt(row, &reference_rows, None))
        .collect();
    Ok(calibrate_attempts(genuine, impostor, target)?)
}
