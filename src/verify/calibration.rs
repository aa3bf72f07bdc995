//! Proposes the policy's thresholds for a target false accept rate, measured on the test split,
//! and says what false reject rate that costs.
//!
//! Two levels, matching the two thresholds of the rule:
//! 1. **Detection** — per comparison: from the test split's pair scores (genuine = same
//!    person), the lowest threshold whose FAR on impostor pairs stays within the target, i.e.
//!    the one that rejects the fewest genuine pairs.
//! 2. **Verification** — per probe: given each test probe's scores against the N references
//!    (genuine probes show the user, impostor probes someone else), the fraction of detections
//!    per probe is itself a score, calibrated the same way.
//!
//! A FAR measured on `n` impostors has a resolution of `1/n`: with 60 impostor pairs the best
//! that can be observed below 1.7% is 0%. Each proposal carries its sample sizes so the page can
//! say how much the figure is worth.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::policy::{
    DetectionThreshold, ThresholdError, VerificationError, VerificationPolicy,
    VerificationThreshold,
};
use crate::train::metrics::{ConfusionCounts, MetricsError, roc_curve, tar_at_far};

/// Why thresholds could not be proposed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CalibrationError {
    /// The scores could not be evaluated (mismatched lengths, a missing class, NaN, a target
    /// outside 0..=1).
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A probe had no reference scores, or a broken one.
    #[error(transparent)]
    Verification(#[from] VerificationError),
    /// Internal: a proposed threshold left 0..=1.
    #[error(transparent)]
    Threshold(#[from] ThresholdError),
    /// Attempts with no scores, or impostor attempts against different numbers of references.
    #[error(
        "every impostor attempt must be scored against the same references, and none may be empty"
    )]
    UnevenAttempts,
}

/// A proposed threshold and what it achieves on the data it was chosen from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdProposal {
    /// Scores strictly above this are accepted.
    pub threshold: f32,
    /// The FAR that was asked for.
    pub target_false_accept_rate: f64,
    /// Impostors accepted / impostors, at `threshold`.
    pub false_accept_rate: f64,
    /// Genuines rejected / genuines, at `threshold`: the cost of the target.
    pub false_reject_rate: f64,
    /// Genuine samples measured.
    pub genuine_count: usize,
    /// Impostor samples measured.
    pub impostor_count: usize,
}

impl ThresholdProposal {
    /// Smallest non-zero FAR these impostor samples can show: `1 / impostor_count`.
    pub fn false_accept_resolution(&self) -> f64 {
        1.0 / self.impostor_count as f64
    }
}

/// Proposes a threshold for scores in 0..=1 so that the FAR stays within `target_far`.
fn propose(
    scores: &[f32],
    genuine: &[bool],
    target_far: f64,
) -> Result<ThresholdProposal, CalibrationError> {
    let roc = roc_curve(scores, genuine)?;
    let point = tar_at_far(&roc, target_far)?;
    // The "accept everything" point's threshold sits just below the lowest score, which is
    // below 0 when that score is 0. Raising it to 0 only rejects more, so the FAR target still
    // holds; the rates are recomputed at the threshold actually proposed.
    let threshold = point.threshold.clamp(0.0, 1.0);
    let counts = ConfusionCounts::at_threshold(scores, genuine, threshold)?;
    Ok(ThresholdProposal {
        threshold,
        target_false_accept_rate: target_far,
        false_accept_rate: counts.false_accept_rate(),
        false_reject_rate: counts.false_reject_rate(),
        genuine_count: counts.genuine(),
        impostor_count: counts.impostor(),
    })
}

/// Proposes the detection threshold from the test split's pair scores.
///
/// - `scores`: the network's probability for each test pair.
/// - `genuine`: true for (anchor, positive) pairs.
pub fn propose_detection_threshold(
    scores: &[f32],
    genuine: &[bool],
    target_far: f64,
) -> Result<(DetectionThreshold, ThresholdProposal), CalibrationError> {
    let proposal = propose(scores, genuine, target_far)?;
    Ok((DetectionThreshold::new(proposal.threshold)?, proposal))
}

/// A proposed policy with what each level costs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PolicyProposal {
    /// The proposed thresholds.
    pub policy: VerificationPolicy,
    /// Per-comparison figures of the detection threshold.
    pub detection: ThresholdProposal,
    /// Per-probe figures of the verification threshold: FAR = impostor probes verified,
    /// FRR = genuine probes refused.
    pub verification: ThresholdProposal,
}

/// Proposes both thresholds for one target FAR.
///
/// - `pair_scores`, `pair_genuine`: the test split's pairs, for the detection threshold.
/// - `genuine_probes`: for each probe of the user, its scores against the N references.
/// - `impostor_probes`: the same for probes of other people.
pub fn propose_policy(
    pair_scores: &[f32],
    pair_genuine: &[bool],
    genuine_probes: &[Vec<f32>],
    impostor_probes: &[Vec<f32>],
    target_far: f64,
) -> Result<PolicyProposal, CalibrationError> {
    let (detection, detection_figures) =
        propose_detection_threshold(pair_scores, pair_genuine, target_far)?;
    // Score every probe with the proposed detection threshold; the fraction of detections is
    // the probe-level score.
    let counting = VerificationPolicy::new(detection, VerificationThreshold::default());
    let mut fractions = Vec::with_capacity(genuine_probes.len() + impostor_probes.len());
    let mut genuine = Vec::with_capacity(fractions.capacity());
    for (probes, is_genuine) in [(genuine_probes, true), (impostor_probes, false)] {
        for scores in probes {
            fractions.push(counting.decide(scores.clone())?.fraction);
            genuine.push(is_genuine);
        }
    }
    let verification_figures = propose(&fractions, &genuine, target_far)?;
    let verification = VerificationThreshold::new(verification_figures.threshold)?;
    Ok(PolicyProposal {
        policy: VerificationPolicy::new(detection, verification),
        detection: detection_figures,
        verification: verification_figures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn a_zero_far_target_costs_the_genuine_pairs_below_the_best_impostor() {
        // Genuine 0.9, 0.8, 0.6; impostor 0.7, 0.4, 0.2.
        let scores = [0.9, 0.8, 0.7, 0.6, 0.4, 0.2];
        let genuine = [true, true, false, true, false, false];
        let (threshold, figures) = propose_detection_threshold(&scores, &genuine, 0.0).unwrap();
        // Above 0.7: no impostor gets in, and 0.6 G is refused.
        assert_eq!(threshold.value(), 0.7);
        assert!(close(figures.false_accept_rate, 0.0));
        assert!(close(figures.false_reject_rate, 1.0 / 3.0));
        assert_eq!((figures.genuine_count, figures.impostor_count), (3, 3));
        assert!(close(figures.false_accept_resolution(), 1.0 / 3.0));

        // Allowing one impostor in three lets every genuine pair through.
        let (threshold, figures) = propose_detection_threshold(&scores, &genuine, 0.34).unwrap();
        assert_eq!(threshold.value(), 0.4);
        assert!(close(figures.false_reject_rate, 0.0));
        assert!(close(figures.false_accept_rate, 1.0 / 3.0));
    }

    #[test]
    fn accept_everything_is_clamped_into_range_and_recomputed() {
        // A target FAR of 1 allows accepting everything, including the genuine score of 0,
        // which needs a threshold just below 0.
        let (threshold, figures) =
            propose_detection_threshold(&[0.0, 0.5], &[true, false], 1.0).unwrap();
        assert_eq!(threshold.value(), 0.0);
        // No valid threshold lets a score of exactly 0 through: the figures say so.
        assert!(close(figures.false_reject_rate, 1.0));
        assert!(close(figures.false_accept_rate, 1.0));
    }

    #[test]
    fn policy_proposal_calibrates_fractions_per_probe() {
        let pair_scores = [0.9, 0.8, 0.7, 0.3, 0.2, 0.1];
        let pair_genuine = [true, true, true, false, false, false];
        // Four references per probe.
        let genuine_probes = vec![
            vec![0.9, 0.9, 0.9, 0.9], // 4/4
            vec![0.9, 0.9, 0.9, 0.1], // 3/4
            vec![0.9, 0.1, 0.1, 0.1], // 1/4
        ];
        let impostor_probes = vec![
            vec![0.9, 0.9, 0.1, 0.1], // 2/4
            vec![0.1, 0.1, 0.1, 0.1], // 0/4
        ];
        let proposal = propose_policy(
            &pair_scores,
            &pair_genuine,
            &genuine_probes,
            &impostor_probes,
            0.0,
        )
        .unwrap();
        // Pairs separate perfectly: detection above 0.3 lets every genuine pair in.
        assert_eq!(proposal.policy.detection.value(), 0.3);
        assert!(close(proposal.detection.false_reject_rate, 0.0));
        // Probes: no impostor may pass, so verification above 0.5; the 1/4 probe is refused.
        assert_eq!(proposal.policy.verification.value(), 0.5);
        assert!(close(proposal.verification.false_accept_rate, 0.0));
        assert!(close(proposal.verification.false_reject_rate, 1.0 / 3.0));
        assert_eq!(proposal.verification.impostor_count, 2);
        // The proposal decides like the policy it contains.
        let decision = proposal.policy.decide(genuine_probes[1].clone()).unwrap();
        assert!(decision.verified);
        let decision = proposal.policy.decide(impostor_probes[0].clone()).unwrap();
        assert!(!decision.verified);
    }

    #[test]
    fn errors_are_typed() {
        assert!(matches!(
            propose_detection_threshold(&[0.5], &[true], 0.1),
            Err(CalibrationError::Metrics(MetricsError::MissingClass { .. }))
        ));
        assert!(matches!(
            propose_detection_threshold(&[0.5, 0.4], &[true, false], 2.0),
            Err(CalibrationError::Metrics(MetricsError::TargetOutOfRange(_)))
        ));
        assert!(matches!(
            propose_policy(&[0.9, 0.1], &[true, false], &[vec![]], &[vec![0.2]], 0.0),
            Err(CalibrationError::Verification(
                VerificationError::NoReferences
            ))
        ));
    }
}
