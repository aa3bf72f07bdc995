//! Adaptive references: after a clear match, the probe's face may join the references, so a
//! person whose appearance drifts (another room's light, a beard, the years) keeps matching.
//! Bounded and conservative: at most [`MAX_ADAPTIVE_REFERENCES`] per person, the oldest out
//! first; never in place of an enrolled photo; only from a frame with no quality fault whose
//! *enrolled* references alone verify it under a stricter policy, so an adaptive photo cannot
//! pull in the next one (no drift away from the enrolled person), and an impostor who slips
//! through once at the edge of the thresholds does not become a reference.

use serde::{Deserialize, Serialize};

use crate::store::{ImageId, ImageRole, ImageSource, Millis, Store};
use crate::verify::policy::{
    DetectionThreshold, VerificationPolicy, VerificationResult, VerificationThreshold,
};
use crate::vision::frame::Frame;
use crate::vision::quality::FrameCheck;

use super::AppError;
use super::capture::{NewPhoto, stored_image};

/// Most adaptive photos kept per person.
pub const MAX_ADAPTIVE_REFERENCES: usize = 10;
/// How much higher than the detection threshold the enrolled references' scores must be.
pub const ADAPTATION_DETECTION_MARGIN: f32 = 0.1;
/// How much higher than the verification threshold their fraction of detections must be.
pub const ADAPTATION_FRACTION_MARGIN: f32 = 0.2;

/// What became of a verified frame's face.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Adaptation {
    /// Adaptive references are off (the settings).
    #[default]
    Off,
    /// Kept as an adaptive reference.
    Learned { image: ImageId },
    /// Not kept, and why.
    Skipped { reason: AdaptationSkip },
}

/// Why a frame's face did not become an adaptive reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdaptationSkip {
    /// The frame was not verified.
    NotVerified,
    /// A quality check found fault with the frame (too small, dark, blurred, another face).
    FrameFault,
    /// Verified, but not clearly enough by the enrolled photos alone.
    NarrowMargin,
}

/// The stricter policy a frame must pass on the enrolled references alone.
fn clear_margin_policy(policy: &VerificationPolicy) -> VerificationPolicy {
    let raise = |value: f32, by: f32, cap: f32| (value + by).min(cap).max(value);
    VerificationPolicy::new(
        DetectionThreshold::new(raise(
            policy.detection.value(),
            ADAPTATION_DETECTION_MARGIN,
            0.99,
        ))
        .unwrap_or(policy.detection),
        VerificationThreshold::new(raise(
            policy.verification.value(),
            ADAPTATION_FRACTION_MARGIN,
            0.95,
        ))
        .unwrap_or(policy.verification),
    )
}

/// Whether a decision is a clear match: verified, a faultless frame, and the first `enrolled`
/// scores (the enrolled references) verifying it under `clear_margin_policy`.
pub fn clear_match(
    result: &VerificationResult,
    check: &FrameCheck,
    enrolled: usize,
) -> Result<(), AdaptationSkip> {
    if !result.verified {
        return Err(AdaptationSkip::NotVerified);
    }
    if !check.hints.is_empty() {
        return Err(AdaptationSkip::FrameFault);
    }
    let strict = clear_margin_policy(&result.policy);
    let enrolled_scores = result.scores[..enrolled.min(result.scores.len())].to_vec();
    match strict.decide(enrolled_scores) {
        Ok(decision) if decision.verified => Ok(()),
        _ => Err(AdaptationSkip::NarrowMargin),
    }
}

/// Keeps `frame` (with its face's `aligned` crop) as an adaptive reference of `profile`, and
/// removes the oldest beyond [`MAX_ADAPTIVE_REFERENCES`].
pub async fn keep_adaptive<S: Store>(
    store: &S,
    profile: &str,
    frame: &Frame,
    aligned: &Frame,
    id: ImageId,
    now: Millis,
) -> Result<ImageId, AppError> {
    let photo = NewPhoto {
        id: id.clone(),
        profile: profile.into(),
        role: ImageRole::Adaptive,
        source: ImageSource::Camera,
        created: now,
    };
    store
        .put_image(&stored_image(frame, aligned, photo)?)
        .await?;
    let mut kept = store
        .list_images(profile, Some(ImageRole::Adaptive))
        .await?;
    kept.sort_by_key(|i| std::cmp::Reverse((i.meta.created, i.meta.id.clone())));
    for old in kept.iter().skip(MAX_ADAPTIVE_REFERENCES) {
        store.delete_image(&old.meta.id).await?;
    }
    Ok(id)
}

/// Forgets every adaptive reference of `profile`; returns how many there were.
pub async fn forget_adaptive<S: Store>(store: &S, profile: &str) -> Result<usize, AppError> {
    let kept = store
        .list_images(profile, Some(ImageRole::Adaptive))
        .await?;
    for image in &kept {
        store.delete_image(&image.meta.id).await?;
    }
    Ok(kept.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(hints: Vec<crate::vision::quality::FrameHint>) -> FrameCheck {
        FrameCheck {
            width: 640,
            height: 480,
            faces: Vec::new(),
            chosen: None,
            hints,
        }
    }

    fn decided(scores: Vec<f32>) -> VerificationResult {
        VerificationPolicy::from_values(0.5, 0.5)
            .unwrap()
            .decide(scores)
            .unwrap()
    }

    #[test]
    fn only_a_clear_match_of_the_enrolled_photos_is_kept() {
        let clean = check(Vec::new());
        // Four enrolled references, then two adaptive ones.
        let clear = decided(vec![0.9, 0.9, 0.9, 0.7, 0.1, 0.1]);
        assert_eq!(clear_match(&clear, &clean, 4), Ok(()));
        // Verified, but only through the adaptive references: no chain of adaptations.
        let through_adaptive = decided(vec![0.9, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9]);
        assert!(through_adaptive.verified);
        assert_eq!(
            clear_match(&through_adaptive, &clean, 4),
            Err(AdaptationSkip::NarrowMargin)
        );
        // Verified at the edge: scores just above the detection threshold.
        let edge = decided(vec![0.55, 0.55, 0.55, 0.55]);
        assert!(edge.verified);
        assert_eq!(
            clear_match(&edge, &clean, 4),
            Err(AdaptationSkip::NarrowMargin)
        );
        let refused = decided(vec![0.1, 0.1]);
        assert_eq!(
            clear_match(&refused, &clean, 2),
            Err(AdaptationSkip::NotVerified)
        );
        let dark = check(vec![crate::vision::quality::FrameHint::TooDark {
            brightness: 10,
        }]);
        assert_eq!(
            clear_match(&clear, &dark, 4),
            Err(AdaptationSkip::FrameFault)
        );
    }

    #[test]
    fn the_clear_margin_policy_is_stricter_and_stays_a_policy() {
        let strict = clear_margin_policy(&VerificationPolicy::from_values(0.5, 0.5).unwrap());
        assert!((strict.detection.value() - 0.6).abs() < 1e-6);
        assert!((strict.verification.value() - 0.7).abs() < 1e-6);
        let top = clear_margin_policy(&VerificationPolicy::from_values(0.95, 0.9).unwrap());
        assert_eq!(top.detection.value(), 0.99);
        assert_eq!(top.verification.value(), 0.95);
    }
}
