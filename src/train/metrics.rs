//! How well scores separate genuine pairs (the same person) from impostor pairs, as plain data
//! the page can plot.
//!
//! Conventions, used everywhere in the crate:
//! - a pair is *accepted* when its score is **strictly greater** than the threshold — the
//!   tutorial's `prediction > 0.5` and its verification rule;
//! - *genuine* (`true` label) = same person = the positive class;
//! - FAR (false accept rate) = impostors accepted / impostors; FRR (false reject rate) =
//!   genuines rejected / genuines; TAR = 1 − FRR = recall.
//!
//! A ratio whose denominator is zero is reported as 0 (as Keras' precision and recall do), so
//! that a batch without, say, any predicted positive still yields plottable numbers.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why metrics could not be computed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MetricsError {
    /// Scores and labels must pair up one to one.
    #[error("{scores} scores but {labels} labels")]
    LengthMismatch {
        /// Number of scores.
        scores: usize,
        /// Number of labels.
        labels: usize,
    },
    /// A score is NaN or infinite: the model diverged or an input was broken.
    #[error("score {index} is not a finite number ({value})")]
    NonFiniteScore {
        /// Position of the score.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A ROC curve needs at least one genuine and one impostor pair.
    #[error("a ROC curve needs both classes: {genuine} genuine and {impostor} impostor pairs")]
    MissingClass {
        /// Genuine pairs present.
        genuine: usize,
        /// Impostor pairs present.
        impostor: usize,
    },
    /// A FAR target must be a rate.
    #[error("the target false accept rate must lie in 0..=1, got {0}")]
    TargetOutOfRange(f64),
}

fn check_inputs(scores: &[f32], labels: &[bool]) -> Result<(), MetricsError> {
    if scores.len() != labels.len() {
        return Err(MetricsError::LengthMismatch {
            scores: scores.len(),
            labels: labels.len(),
        });
    }
    if let Some((index, &value)) = scores.iter().enumerate().find(|(_, s)| !s.is_finite()) {
        return Err(MetricsError::NonFiniteScore { index, value });
    }
    Ok(())
}

/// `numerator / denominator`, or 0 when there is nothing to divide (see the module docs).
fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// The four outcomes at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConfusionCounts {
    /// Genuine pairs accepted.
    pub true_positives: usize,
    /// Impostor pairs accepted.
    pub false_positives: usize,
    /// Impostor pairs rejected.
    pub true_negatives: usize,
    /// Genuine pairs rejected.
    pub false_negatives: usize,
}

impl ConfusionCounts {
    /// Counts the outcomes of accepting every score above `threshold`.
    pub fn at_threshold(
        scores: &[f32],
        labels: &[bool],
        threshold: f32,
    ) -> Result<Self, MetricsError> {
        check_inputs(scores, labels)?;
        let mut counts = Self::default();
        for (&score, &genuine) in scores.iter().zip(labels) {
            match (score > threshold, genuine) {
                (true, true) => counts.true_positives += 1,
                (true, false) => counts.false_positives += 1,
                (false, false) => counts.true_negatives += 1,
                (false, true) => counts.false_negatives += 1,
            }
        }
        Ok(counts)
    }

    /// Adds another batch's counts (metrics accumulated over an epoch).
    pub fn add(&mut self, other: ConfusionCounts) {
        self.true_positives += other.true_positives;
        self.false_positives += other.false_positives;
        self.true_negatives += other.true_negatives;
        self.false_negatives += other.false_negatives;
    }

    /// Genuine pairs counted.
    pub fn genuine(&self) -> usize {
        self.true_positives + self.false_negatives
    }

    /// Impostor pairs counted.
    pub fn impostor(&self) -> usize {
        self.false_positives + self.true_negatives
    }

    /// Of the accepted pairs, the share that were genuine.
    pub fn precision(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    /// Of the genuine pairs, the share accepted (= TAR).
    pub fn recall(&self) -> f64 {
        ratio(self.true_positives, self.genuine())
    }

    /// Share of all pairs decided correctly.
    pub fn accuracy(&self) -> f64 {
        ratio(
            self.true_positives + self.true_negatives,
            self.genuine() + self.impostor(),
        )
    }

    /// Impostors accepted / impostors.
    pub fn false_accept_rate(&self) -> f64 {
        ratio(self.false_positives, self.impostor())
    }

    /// Genuines rejected / genuines.
    pub fn false_reject_rate(&self) -> f64 {
        ratio(self.false_negatives, self.genuine())
    }
}

/// One point of a ROC curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// Scores strictly above this are accepted.
    pub threshold: f32,
    /// x: impostors accepted / impostors.
    pub false_accept_rate: f64,
    /// y: genuines accepted / genuines.
    pub true_accept_rate: f64,
}

impl RocPoint {
    /// 1 − TAR.
    pub fn false_reject_rate(&self) -> f64 {
        1.0 - self.true_accept_rate
    }
}

/// The ROC curve: one point per distinct achievable decision, thresholds descending, from
/// "accept nothing" (0, 0) to "accept everything" (1, 1).
///
/// With distinct score values `d₀ > d₁ > … > dₖ₋₁`, the thresholds are `d₀ … dₖ₋₁` (threshold
/// `dⱼ` accepts exactly the scores above it) and finally the largest float below `dₖ₋₁`, which
/// accepts every score. Tied scores move both rates at once, giving a diagonal segment — which
/// makes the area under the curve equal the probability that a random genuine pair outscores a
/// random impostor pair, ties counting half.
pub fn roc_curve(scores: &[f32], labels: &[bool]) -> Result<Vec<RocPoint>, MetricsError> {
    check_inputs(scores, labels)?;
    let genuine = labels.iter().filter(|&&g| g).count();
    let impostor = labels.len() - genuine;
    if genuine == 0 || impostor == 0 {
        return Err(MetricsError::MissingClass { genuine, impostor });
    }
    let mut ranked: Vec<(f32, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));

    let point = |threshold: f32, accepted_genuine: usize, accepted_impostor: usize| RocPoint {
        threshold,
        false_accept_rate: ratio(accepted_impostor, impostor),
        true_accept_rate: ratio(accepted_genuine, genuine),
    };
    let mut points = Vec::new();
    let (mut accepted_genuine, mut accepted_impostor) = (0, 0);
    let mut i = 0;
    while i < ranked.len() {
        let value = ranked[i].0;
        points.push(point(value, accepted_genuine, accepted_impostor));
        while i < ranked.len() && ranked[i].0 == value {
            if ranked[i].1 {
                accepted_genuine += 1;
            } else {
                accepted_impostor += 1;
            }
            i += 1;
        }
    }
    let lowest = ranked[ranked.len() - 1].0;
    points.push(point(
        lowest.next_down(),
        accepted_genuine,
        accepted_impostor,
    ));
    Ok(points)
}

/// Area under a ROC curve from [`roc_curve`], by the trapezoidal rule.
pub fn area_under_curve(points: &[RocPoint]) -> f64 {
    points
        .windows(2)
        .map(|w| {
            (w[1].false_accept_rate - w[0].false_accept_rate)
                * (w[0].true_accept_rate + w[1].true_accept_rate)
                / 2.0
        })
        .sum()
}

/// The rate at which false accepts and false rejects are equal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EqualErrorRate {
    /// Where FAR and FRR cross, interpolated linearly between the two ROC points around it.
    pub rate: f64,
    /// The achievable threshold nearest the crossing (the stricter one on a tie).
    pub threshold: f32,
    /// FAR at `threshold`.
    pub false_accept_rate: f64,
    /// FRR at `threshold`.
    pub false_reject_rate: f64,
}

/// The equal error rate of a ROC curve from [`roc_curve`].
///
/// Along the curve FAR − FRR rises from −1 (accept nothing) to +1 (accept everything); the EER
/// is where it crosses 0.
pub fn equal_error_rate(points: &[RocPoint]) -> EqualErrorRate {
    let gap = |p: &RocPoint| p.false_accept_rate - p.false_reject_rate();
    let after = points
        .iter()
        .position(|p| gap(p) >= 0.0)
        .expect("a ROC curve from roc_curve ends at (1, 1), where FAR − FRR = 1");
    let at = |p: &RocPoint, rate: f64| EqualErrorRate {
        rate,
        threshold: p.threshold,
        false_accept_rate: p.false_accept_rate,
        false_reject_rate: p.false_reject_rate(),
    };
    let upper = &points[after];
    if after == 0 || gap(upper) == 0.0 {
        return at(upper, upper.false_accept_rate);
    }
    let lower = &points[after - 1];
    let fraction = -gap(lower) / (gap(upper) - gap(lower));
    let rate =
        lower.false_accept_rate + fraction * (upper.false_accept_rate - lower.false_accept_rate);
    let nearest = if gap(upper) < -gap(lower) {
        upper
    } else {
        lower
    };
    at(nearest, rate)
}

/// A threshold with the rates it achieves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// Scores strictly above this are accepted.
    pub threshold: f32,
    /// Impostors accepted / impostors.
    pub false_accept_rate: f64,
    /// Genuines rejected / genuines.
    pub false_reject_rate: f64,
    /// Genuines accepted / genuines.
    pub true_accept_rate: f64,
}

impl From<&RocPoint> for OperatingPoint {
    fn from(point: &RocPoint) -> Self {
        Self {
            threshold: point.threshold,
            false_accept_rate: point.false_accept_rate,
            false_reject_rate: point.false_reject_rate(),
            true_accept_rate: point.true_accept_rate,
        }
    }
}

/// The best TAR whose FAR does not exceed `target_far`, and its threshold (the highest one that
/// reaches that TAR, so the FAR is as low as it can be).
pub fn tar_at_far(points: &[RocPoint], target_far: f64) -> Result<OperatingPoint, MetricsError> {
    if !(0.0..=1.0).contains(&target_far) {
        return Err(MetricsError::TargetOutOfRange(target_far));
    }
    // FAR never decreases along the curve and the first point has FAR 0, so the eligible
    // points are a non-empty prefix.
    let mut best = &points[0];
    for point in points
        .iter()
        .take_while(|p| p.false_accept_rate <= target_far)
    {
        if point.true_accept_rate > best.true_accept_rate {
            best = point;
        }
    }
    Ok(best.into())
}

/// Everything the page shows about one evaluation (a test split, an epoch's training pairs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationReport {
    /// The threshold of the counts and the rates below.
    pub threshold: f32,
    /// Outcomes at `threshold`.
    pub counts: ConfusionCounts,
    /// Accepted pairs that were genuine.
    pub precision: f64,
    /// Genuine pairs accepted.
    pub recall: f64,
    /// Pairs decided correctly.
    pub accuracy: f64,
    /// FAR at `threshold`.
    pub false_accept_rate: f64,
    /// FRR at `threshold`.
    pub false_reject_rate: f64,
    /// The whole ROC curve.
    pub roc: Vec<RocPoint>,
    /// Area under `roc`.
    pub auc: f64,
    /// Equal error rate.
    pub eer: EqualErrorRate,
}

/// Evaluates `scores` against `labels` at `threshold`, with the threshold-free curves.
pub fn evaluate(
    scores: &[f32],
    labels: &[bool],
    threshold: f32,
) -> Result<EvaluationReport, MetricsError> {
    let counts = ConfusionCounts::at_threshold(scores, labels, threshold)?;
    let roc = roc_curve(scores, labels)?;
    Ok(EvaluationReport {
        threshold,
        counts,
        precision: counts.precision(),
        recall: counts.recall(),
        accuracy: counts.accuracy(),
        false_accept_rate: counts.false_accept_rate(),
        false_reject_rate: counts.false_reject_rate(),
        auc: area_under_curve(&roc),
        eer: equal_error_rate(&roc),
        roc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f64 = 1e-12;

    /// Six pairs, worked by hand in the tests below:
    /// 0.9 G, 0.8 G, 0.7 I, 0.6 G, 0.4 I, 0.2 I (G = genuine, I = impostor).
    fn six() -> (Vec<f32>, Vec<bool>) {
        (
            vec![0.6, 0.2, 0.9, 0.4, 0.7, 0.8],
            vec![true, false, true, false, false, true],
        )
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < EPS
    }

    #[test]
    fn counts_and_rates_at_one_half() {
        let (scores, labels) = six();
        let counts = ConfusionCounts::at_threshold(&scores, &labels, 0.5).unwrap();
        // Accepted: 0.9 G, 0.8 G, 0.7 I, 0.6 G.
        assert_eq!(
            counts,
            ConfusionCounts {
                true_positives: 3,
                false_positives: 1,
                true_negatives: 2,
                false_negatives: 0
            }
        );
        assert!(close(counts.precision(), 0.75));
        assert!(close(counts.recall(), 1.0));
        assert!(close(counts.accuracy(), 5.0 / 6.0));
        assert!(close(counts.false_accept_rate(), 1.0 / 3.0));
        assert!(close(counts.false_reject_rate(), 0.0));
    }

    #[test]
    fn a_score_equal_to_the_threshold_is_rejected() {
        let counts = ConfusionCounts::at_threshold(&[0.5], &[true], 0.5).unwrap();
        assert_eq!(counts.false_negatives, 1);
    }

    #[test]
    fn empty_denominators_give_zero_like_keras() {
        let counts = ConfusionCounts::at_threshold(&[0.1, 0.2], &[false, false], 0.5).unwrap();
        assert_eq!(counts.precision(), 0.0);
        assert_eq!(counts.recall(), 0.0);
        assert_eq!(counts.accuracy(), 1.0);
    }

    #[test]
    fn roc_curve_of_the_hand_example() {
        let (scores, labels) = six();
        let roc = roc_curve(&scores, &labels).unwrap();
        let third = 1.0 / 3.0;
        let expected = [
            (0.9, 0.0, 0.0),
            (0.8, 0.0, third),
            (0.7, 0.0, 2.0 * third),
            (0.6, third, 2.0 * third),
            (0.4, third, 1.0),
            (0.2, 2.0 * third, 1.0),
        ];
        assert_eq!(roc.len(), 7);
        for (point, (threshold, far, tar)) in roc.iter().zip(expected) {
            assert_eq!(point.threshold, threshold);
            assert!(close(point.false_accept_rate, far), "{point:?}");
            assert!(close(point.true_accept_rate, tar), "{point:?}");
        }
        let last = roc[6];
        assert!(last.threshold < 0.2);
        assert_eq!((last.false_accept_rate, last.true_accept_rate), (1.0, 1.0));
        // Each point's rates are what thresholding at its threshold gives.
        for point in &roc {
            let counts = ConfusionCounts::at_threshold(&scores, &labels, point.threshold).unwrap();
            assert!(close(counts.false_accept_rate(), point.false_accept_rate));
            assert!(close(counts.recall(), point.true_accept_rate));
        }
    }

    #[test]
    fn auc_is_the_share_of_correctly_ordered_genuine_impostor_pairs() {
        let (scores, labels) = six();
        let roc = roc_curve(&scores, &labels).unwrap();
        // Genuine 0.9 and 0.8 beat all three impostors, 0.6 beats two: 8 of 9.
        assert!(close(area_under_curve(&roc), 8.0 / 9.0));
    }

    #[test]
    fn ties_count_half_in_the_auc() {
        let roc = roc_curve(&[0.5, 0.5], &[true, false]).unwrap();
        assert!(close(area_under_curve(&roc), 0.5));
        let perfect = roc_curve(&[0.9, 0.1], &[true, false]).unwrap();
        assert!(close(area_under_curve(&perfect), 1.0));
    }

    #[test]
    fn eer_where_far_meets_frr_exactly() {
        let (scores, labels) = six();
        let eer = equal_error_rate(&roc_curve(&scores, &labels).unwrap());
        // At threshold 0.6: FAR 1/3 (0.7 I accepted), FRR 1/3 (0.6 G rejected).
        assert!(close(eer.rate, 1.0 / 3.0));
        assert_eq!(eer.threshold, 0.6);
        assert!(close(eer.false_accept_rate, 1.0 / 3.0));
        assert!(close(eer.false_reject_rate, 1.0 / 3.0));
    }

    #[test]
    fn eer_interpolates_between_points() {
        // 0.9 G, 0.8 G, 0.7 I, 0.6 G, 0.5 I.
        let scores = [0.9, 0.8, 0.7, 0.6, 0.5];
        let labels = [true, true, false, true, false];
        let eer = equal_error_rate(&roc_curve(&scores, &labels).unwrap());
        // Threshold 0.7: FAR 0, FRR 1/3 (gap −1/3); threshold 0.6: FAR 1/2, FRR 1/3 (gap +1/6).
        // Crossing two thirds of the way: FAR = FRR = 1/3. Threshold 0.6 is nearer.
        assert!(close(eer.rate, 1.0 / 3.0));
        assert_eq!(eer.threshold, 0.6);
        assert!(close(eer.false_accept_rate, 0.5));
    }

    #[test]
    fn tar_at_a_given_far() {
        let (scores, labels) = six();
        let roc = roc_curve(&scores, &labels).unwrap();
        let strict = tar_at_far(&roc, 0.0).unwrap();
        assert_eq!(strict.threshold, 0.7);
        assert!(close(strict.true_accept_rate, 2.0 / 3.0));
        assert!(close(strict.false_reject_rate, 1.0 / 3.0));
        // FAR 1/3 allowed: threshold 0.4 accepts every genuine pair.
        let loose = tar_at_far(&roc, 0.34).unwrap();
        assert_eq!(loose.threshold, 0.4);
        assert!(close(loose.true_accept_rate, 1.0));
        assert!(close(loose.false_accept_rate, 1.0 / 3.0));
        assert!(tar_at_far(&roc, 1.5).is_err());
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        assert_eq!(
            roc_curve(&[0.1], &[true, false]).unwrap_err(),
            MetricsError::LengthMismatch {
                scores: 1,
                labels: 2
            }
        );
        assert_eq!(
            roc_curve(&[0.1, 0.2], &[true, true]).unwrap_err(),
            MetricsError::MissingClass {
                genuine: 2,
                impostor: 0
            }
        );
        assert!(matches!(
            ConfusionCounts::at_threshold(&[f32::NAN], &[true], 0.5),
            Err(MetricsError::NonFiniteScore { index: 0, .. })
        ));
    }

    #[test]
    fn the_report_is_plain_serialisable_data() {
        let (scores, labels) = six();
        let report = evaluate(&scores, &labels, 0.5).unwrap();
        assert!(close(report.precision, 0.75));
        assert!(close(report.auc, 8.0 / 9.0));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["roc"].as_array().unwrap().len(), 7);
        assert!(json["eer"]["rate"].is_number());
        let back: EvaluationReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }
}
