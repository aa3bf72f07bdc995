//! The tutorial's verification rule.
//!
//! A probe (the face in front of the camera) is compared with the N stored verification images.
//! *Detections* are the comparisons whose score is above the detection threshold; the probe is
//! verified when detections / N is above the verification threshold:
//!
//! ```text
//! detection    = np.sum(np.array(results) > detection_threshold)
//! verification = detection / len(os.listdir(verification_images))
//! verified     = verification > verification_threshold
//! ```
//!
//! Unlike the tutorial, which ran the whole siamese network once per stored image, the
//! references are embedded once ([`ReferenceEmbeddings`]) and a probe is scored against all of
//! them in one batched operation.

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::read_f32s;
use crate::model::siamese::Siamese;
use crate::model::tower::EmbeddingTower;

/// A threshold outside `0..=1` (or NaN).
#[derive(Debug, Clone, Copy, PartialEq, Error)]
#[error("the {name} must lie in 0..=1, got {value}")]
pub struct ThresholdError {
    /// Which threshold.
    pub name: &'static str,
    /// The rejected value.
    pub value: f32,
}

macro_rules! unit_threshold {
    ($(#[$doc:meta])* $type:ident, $name:literal, $default:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
        #[serde(try_from = "f32", into = "f32")]
        pub struct $type(f32);

        impl $type {
            /// The threshold, when `value` lies in `0..=1`.
            pub fn new(value: f32) -> Result<Self, ThresholdError> {
                if (0.0..=1.0).contains(&value) {
                    Ok(Self(value))
                } else {
                    Err(ThresholdError { name: $name, value })
                }
            }

            /// The value, in `0..=1`.
            pub fn value(self) -> f32 {
                self.0
            }
        }

        impl Default for $type {
            fn default() -> Self {
                Self($default)
            }
        }

        impl TryFrom<f32> for $type {
            type Error = ThresholdError;
            fn try_from(value: f32) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$type> for f32 {
            fn from(threshold: $type) -> f32 {
                threshold.0
            }
        }
    };
}

unit_threshold!(
    /// A comparison counts as a detection when its score is strictly above this.
    /// Default 0.5, the tutorial's.
    DetectionThreshold,
    "detection threshold",
    0.5
);

unit_threshold!(
    /// A probe is verified when the fraction of detections is strictly above this.
    /// Default 0.5, the tutorial's.
    VerificationThreshold,
    "verification threshold",
    0.5
);

/// The two thresholds of the rule.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct VerificationPolicy {
    /// Score above which one comparison is a detection.
    pub detection: DetectionThreshold,
    /// Fraction of detections above which the probe is verified.
    pub verification: VerificationThreshold,
}

/// Why a probe could not be decided.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum VerificationError {
    /// There is nothing to compare the probe with.
    #[error("no verification images are stored: capture some before verifying")]
    NoReferences,
    /// A score is NaN or infinite: the model or the input is broken, and a NaN would silently
    /// count as "no detection".
    #[error("score {index} is not a finite number ({value})")]
    NonFiniteScore {
        /// Position of the reference.
        index: usize,
        /// The value.
        value: f32,
    },
    /// The device failed to return the scores.
    #[error("reading the scores back from the device failed: {0}")]
    Readback(String),
}

/// The decision on one probe, with everything that led to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationResult {
    /// The score against each reference, in reference order.
    pub scores: Vec<f32>,
    /// Scores above the detection threshold.
    pub detections: usize,
    /// Number of references, N.
    pub reference_count: usize,
    /// detections / N.
    pub fraction: f32,
    /// `fraction > verification threshold`.
    pub verified: bool,
    /// The policy that decided.
    pub policy: VerificationPolicy,
}

impl VerificationPolicy {
    /// A policy from its two thresholds.
    pub fn new(detection: DetectionThreshold, verification: VerificationThreshold) -> Self {
        Self {
            detection,
            verification,
        }
    }

    /// A policy from two raw values, validated.
    pub fn from_values(detection: f32, verification: f32) -> Result<Self, ThresholdError> {
        Ok(Self::new(
            DetectionThreshold::new(detection)?,
            VerificationThreshold::new(verification)?,
        ))
    }

    /// Number of `scores` that are detections.
    pub fn count_detections(&self, scores: &[f32]) -> usize {
        let threshold = self.detection.value();
        scores.iter().filter(|&&s| s > threshold).count()
    }

    /// Applies the rule to the scores of one probe against every reference.
    pub fn decide(&self, scores: Vec<f32>) -> Result<VerificationResult, VerificationError> {
        if scores.is_empty() {
            return Err(VerificationError::NoReferences);
        }
        if let Some((index, &value)) = scores.iter().enumerate().find(|(_, s)| !s.is_finite()) {
            return Err(VerificationError::NonFiniteScore { index, value });
        }
        let detections = self.count_detections(&scores);
        let reference_count = scores.len();
        // In f32 like the threshold: k/N and a decimal threshold equal to it (35/50 vs 0.7)
        // then round to the same float, and "above" keeps its exact meaning at the boundary.
        let fraction = detections as f32 / reference_count as f32;
        Ok(VerificationResult {
            verified: fraction > self.verification.value(),
            scores,
            detections,
            reference_count,
            fraction,
            policy: *self,
        })
    }
}

/// The embeddings of the stored verification images, computed once.
#[derive(Debug, Clone)]
pub struct ReferenceEmbeddings {
    embeddings: Tensor<2>,
}

impl ReferenceEmbeddings {
    /// Wraps `[N, D]` embeddings; N must be at least 1.
    pub fn new(embeddings: Tensor<2>) -> Result<Self, VerificationError> {
        if embeddings.dims()[0] == 0 {
            return Err(VerificationError::NoReferences);
        }
        Ok(Self { embeddings })
    }

    /// Embeds the reference images `[N, C, H, W]` with `model`'s tower.
    pub fn from_images<T: EmbeddingTower>(
        model: &Siamese<T>,
        images: Tensor<4>,
    ) -> Result<Self, VerificationError> {
        if images.dims()[0] == 0 {
            return Err(VerificationError::NoReferences);
        }
        Self::new(model.embed(images))
    }

    /// N.
    pub fn count(&self) -> usize {
        self.embeddings.dims()[0]
    }

    /// The `[N, D]` tensor.
    pub fn embeddings(&self) -> &Tensor<2> {
        &self.embeddings
    }
}

/// Scores `probe` (`[1, C, H, W]`) against every reference and applies `policy`.
///
/// The scores are read back asynchronously (WebGPU in a browser cannot read synchronously).
pub async fn verify_probe<T: EmbeddingTower>(
    model: &Siamese<T>,
    probe: Tensor<4>,
    references: &ReferenceEmbeddings,
    policy: &VerificationPolicy,
) -> Result<VerificationResult, VerificationError> {
    let scores = model.score_against_references(probe, references.embeddings.clone());
    policy.decide(read_scores(scores).await?)
}

/// Reads a probe's scores back from the device, asynchronously (WebGPU in a browser cannot
/// read synchronously).
pub async fn read_scores(scores: Tensor<1>) -> Result<Vec<f32>, VerificationError> {
    read_f32s(scores).await.map_err(VerificationError::Readback)
}

// Native only: the async functions are driven by pollster, a native-only dependency; the browser
// runs them through the worker's own tests.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::model::siamese::test_tower::{random_images, seeded_pool_siamese};

    /// The tutorial's example: 50 verification images, 32 scores above the detection
    /// threshold.
    fn tutorial_scores() -> Vec<f32> {
        (0..50).map(|i| if i < 32 { 0.9 } else { 0.1 }).collect()
    }

    #[test]
    fn thirty_two_of_fifty_is_not_verified_at_seven_tenths() {
        let policy = VerificationPolicy::from_values(0.5, 0.7).unwrap();
        let result = policy.decide(tutorial_scores()).unwrap();
        assert_eq!(result.detections, 32);
        assert_eq!(result.reference_count, 50);
        assert_eq!(result.fraction, 0.64);
        assert!(!result.verified);
        assert_eq!(result.scores, tutorial_scores());

        let lenient = VerificationPolicy::from_values(0.5, 0.6).unwrap();
        assert!(lenient.decide(tutorial_scores()).unwrap().verified);
    }

    #[test]
    fn both_comparisons_are_strict() {
        // 35 of 50 = 0.7 exactly: not above 0.7.
        let scores: Vec<f32> = (0..50).map(|i| if i < 35 { 0.9 } else { 0.1 }).collect();
        let policy = VerificationPolicy::from_values(0.5, 0.7).unwrap();
        let result = policy.decide(scores).unwrap();
        assert_eq!(result.fraction, 0.7);
        assert!(!result.verified);
        // A score equal to the detection threshold is not a detection.
        assert_eq!(policy.count_detections(&[0.5, 0.5000001]), 1);
    }

    #[test]
    fn no_references_and_broken_scores_are_typed_errors() {
        let policy = VerificationPolicy::default();
        assert_eq!(
            policy.decide(Vec::new()).unwrap_err(),
            VerificationError::NoReferences
        );
        assert!(matches!(
            policy.decide(vec![0.9, f32::NAN]),
            Err(VerificationError::NonFiniteScore { index: 1, .. })
        ));
        let empty = Tensor::<2>::zeros([0, 4], &Device::flex());
        assert_eq!(
            ReferenceEmbeddings::new(empty).unwrap_err(),
            VerificationError::NoReferences
        );
    }

    #[test]
    fn thresholds_are_validated_including_through_serde() {
        assert!(DetectionThreshold::new(1.0).is_ok());
        assert!(DetectionThreshold::new(0.0).is_ok());
        let error = DetectionThreshold::new(1.5).unwrap_err();
        assert_eq!(error.name, "detection threshold");
        assert!(VerificationThreshold::new(f32::NAN).is_err());
        assert!(serde_json::from_str::<VerificationThreshold>("-0.1").is_err());
        let policy: VerificationPolicy =
            serde_json::from_str(r#"{"detection": 0.8, "verification": 0.7}"#).unwrap();
        assert_eq!(policy, VerificationPolicy::from_values(0.8, 0.7).unwrap());
        let defaults = VerificationPolicy::default();
        assert_eq!(
            (defaults.detection.value(), defaults.verification.value()),
            (0.5, 0.5)
        );
    }

    #[test]
    fn a_probe_is_scored_against_cached_references_in_one_batch() {
        let (model, device) = seeded_pool_siamese(8);
        let references = random_images(5, &device);
        let cached = ReferenceEmbeddings::from_images(&model, references.clone()).unwrap();
        assert_eq!(cached.count(), 5);
        let probe = random_images(1, &device);

        let policy = VerificationPolicy::from_values(0.0, 0.5).unwrap();
        let result =
            pollster::block_on(verify_probe(&model, probe.clone(), &cached, &policy)).unwrap();
        assert_eq!(result.reference_count, 5);
        let pairwise: Vec<f32> = model
            .forward(probe.expand([5, 1, 6, 6]), references)
            .into_data()
            .try_into_vec()
            .unwrap();
        for (batched, single) in result.scores.iter().zip(&pairwise) {
            assert!((batched - single).abs() < 1e-6);
        }
        // Sigmoid scores are above 0, so every comparison is a detection at threshold 0.
        assert_eq!(result.detections, 5);
        assert!(result.verified);
    }
}
