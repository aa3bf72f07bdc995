//! Thresholds for a stated false-accept rate per verification *attempt*.
//!
//! An attempt is one probe compared with the N references under both thresholds: what an
//! impostor in front of the camera gets per try. The test split of a handful of enrolment
//! photos cannot show rates near 1e-4 (its resolution is one in a few dozen), so the impostor
//! side comes from thousands of attempts: samples of the impostor model (synthetic other
//! people's descriptors) plus any real faces imported as negatives, each scored against the
//! real references.
//!
//! The rule is chosen so that the *one-sided 95% upper confidence bound* of the FAR
//! (Clopper–Pearson) stays within the target, not just the observed rate: zero accepted
//! impostors out of 50,000 attempts bound the FAR by about 6e-5, out of 10,000 only by 3e-4.
//! Among the rules that meet it (for each detection threshold, the lowest verification
//! threshold that does), the one rejecting the fewest genuine attempts wins, and among those the
//! one whose genuine attempts pass with the most room (see `lenient_rule`).

use serde::{Deserialize, Serialize};

use super::calibration::CalibrationError;
use super::policy::{DetectionThreshold, VerificationPolicy, VerificationThreshold};
use crate::train::metrics::MetricsError;

/// The false-accept rate per attempt an authenticator aims for by default: one impostor
/// attempt in ten thousand.
pub const DEFAULT_ATTEMPT_FAR: f64 = 1e-4;

/// Confidence of the FAR's upper bound.
pub const CONFIDENCE: f64 = 0.95;

/// Detection thresholds tried, in steps of 0.01 (what the page's sliders show).
const DETECTION_STEPS: u32 = 100;

/// Impostor attempts needed to show `target` at [`CONFIDENCE`]: zero accepts bound the FAR by
/// about 3/n, so 5/target leaves room for a few accepted impostors. Clamped so a lax target
/// still draws thousands and a strict one stays affordable.
pub fn impostor_attempts_for(target: f64) -> usize {
    let wanted = if target > 0.0 {
        5.0 / target
    } else {
        f64::INFINITY
    };
    wanted.clamp(5_000.0, 200_000.0).ceil() as usize
}

/// A linear siamese head (`sigmoid(bias + Σ wᵢ·|aᵢ − bᵢ|)`) in plain Rust: scoring tens of
/// thousands of synthetic attempts is a few hundred million multiply-adds, cheaper on the CPU
/// than a round trip per batch to a device.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearHead {
    pub weights: Vec<f32>,
    pub bias: f32,
}

impl LinearHead {
    /// The probability that `a` and `b` show the same person.
    pub fn score(&self, a: &[f32], b: &[f32]) -> f32 {
        let logit: f32 = self
            .weights
            .iter()
            .zip(a.iter().zip(b))
            .map(|(w, (x, y))| w * (x - y).abs())
            .sum::<f32>()
            + self.bias;
        1.0 / (1.0 + (-logit).exp())
    }

    /// One attempt: `probe` against every reference, skipping the reference at `skip` (a
    /// genuine probe that is itself a reference must not be compared with itself).
    pub fn attempt(&self, probe: &[f32], references: &[Vec<f32>], skip: Option<usize>) -> Vec<f32> {
        references
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(_, reference)| self.score(probe, reference))
            .collect()
    }
}

/// The chosen thresholds and what they achieve per attempt.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AttemptCalibration {
    pub policy: VerificationPolicy,
    /// The FAR per attempt that was asked for.
    pub target_false_accept_rate: f64,
    /// Impostor attempts scored.
    pub impostor_attempts: usize,
    /// Of those, verified under `policy`.
    pub impostors_accepted: usize,
    /// `impostors_accepted / impostor_attempts`.
    pub false_accept_rate: f64,
    /// The FAR is below this with 95% confidence.
    pub false_accept_upper_bound: f64,
    /// Genuine attempts scored (the person's own photos against the other references).
    pub genuine_attempts: usize,
    /// Of those, refused under `policy`.
    pub genuine_rejected: usize,
    /// `genuine_rejected / genuine_attempts`: measured on enrolment photos the model was
    /// trained on, so a floor rather than a forecast.
    pub false_reject_rate: f64,
    /// Whether the upper bound is within the target. When no thresholds reach it (too few
    /// impostor attempts, or a model that cannot separate), the policy is the one with the
    /// lowest observed FAR and this is false.
    pub target_met: bool,
}

/// One probe's scores, sorted ascending, so the detections above any threshold are a binary
/// search away.
struct Attempt {
    sorted: Vec<f32>,
}

impl Attempt {
    fn new(mut scores: Vec<f32>) -> Self {
        scores.sort_by(f32::total_cmp);
        Self { sorted: scores }
    }

    /// Scores above `threshold`.
    fn detections(&self, threshold: f32) -> usize {
        self.sorted.len() - self.sorted.partition_point(|&s| s <= threshold)
    }

    /// Whether the rule verifies this attempt.
    fn verified(&self, policy: &VerificationPolicy) -> bool {
        let detections = self.detections(policy.detection.value());
        // As `VerificationPolicy::decide` computes it.
        (detections as f32 / self.sorted.len() as f32) > policy.verification.value()
    }

    /// How far every score needed for the verdict lies above the detection threshold: the
    /// score of the weakest detection the rule requires, minus the threshold (negative when the
    /// rule refuses the attempt, -1 when no number of detections could pass).
    fn margin(&self, policy: &VerificationPolicy) -> f32 {
        let n = self.sorted.len();
        let needed = (1..=n).find(|&k| (k as f32 / n as f32) > policy.verification.value());
        match needed {
            Some(k) => self.sorted[n - k] - policy.detection.value(),
            None => -1.0,
        }
    }
}

/// The genuine attempts' margins under `policy`, at their lower quartile: three in four
/// genuine attempts could lose this much of every score and still pass.
fn genuine_margin(genuine: &[Attempt], policy: &VerificationPolicy) -> f32 {
    let mut margins: Vec<f32> = genuine.iter().map(|a| a.margin(policy)).collect();
    margins.sort_by(f32::total_cmp);
    margins[margins.len() / 4]
}

/// `P(X ≤ k)` for `X ~ Binomial(n, p)`, summed in log space (n is in the tens of thousands).
fn binomial_cdf(k: usize, n: usize, p: f64) -> f64 {
    if p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return if k >= n { 1.0 } else { 0.0 };
    }
    let (log_p, log_q) = (p.ln(), (-p).ln_1p());
    let mut log_term = n as f64 * log_q;
    let mut total = log_term.exp();
    for i in 0..k.min(n) {
        log_term += ((n - i) as f64).ln() - ((i + 1) as f64).ln() + log_p - log_q;
        total += log_term.exp();
    }
    total.min(1.0)
}

/// The one-sided upper confidence bound of a rate seen as `k` in `n` (Clopper–Pearson).
pub fn upper_bound(k: usize, n: usize, confidence: f64) -> f64 {
    if n == 0 || k >= n {
        return 1.0;
    }
    let alpha = 1.0 - confidence;
    let (mut low, mut high) = (k as f64 / n as f64, 1.0);
    for _ in 0..100 {
        let mid = 0.5 * (low + high);
        if binomial_cdf(k, n, mid) > alpha {
            low = mid;
        } else {
            high = mid;
        }
    }
    high
}

/// The verification thresholds worth trying with `n` references: the fraction k/N lies on
/// their grid, so "above j/N" for j = 0..N are the only distinct rules.
fn verification_steps(references: usize) -> Vec<f32> {
    (0..=references)
        .map(|j| j as f32 / references as f32)
        .collect()
}

/// A rule that meets the target, with its accepted impostors, refused genuine attempts and
/// genuine margin.
type Rule = (VerificationPolicy, usize, usize, f32);

/// Over every detection threshold, the most lenient verification threshold whose accepted
/// impostor count `meets` the target; of those rules, the one refusing the fewest genuine
/// attempts, and among those the one with the widest genuine margin. The enrolment photos the
/// genuine attempts come from trained the model, so many rules refuse none of them; a later
/// photo scores lower, and the rule with room to spare is the one that still lets it in.
fn lenient_rule(
    genuine: &[Attempt],
    impostor: &[Attempt],
    references: usize,
    meets: &dyn Fn(usize) -> bool,
) -> Option<Rule> {
    let mut best: Option<Rule> = None;
    for step in 0..DETECTION_STEPS {
        let detection = DetectionThreshold::new(step as f32 / DETECTION_STEPS as f32).ok()?;
        // Impostor attempts by number of detections: each verification threshold then costs a
        // sum over N + 1 counts instead of a pass over every attempt.
        let mut by_detections = vec![0usize; references + 1];
        for attempt in impostor {
            by_detections[attempt.detections(detection.value())] += 1;
        }
        let rule = verification_steps(references)
            .into_iter()
            .find_map(|verification| {
                let policy = VerificationPolicy::new(
                    detection,
                    VerificationThreshold::new(verification).ok()?,
                );
                let accepted: usize = (0..=references)
                    .filter(|&k| (k as f32 / references as f32) > verification)
                    .map(|k| by_detections[k])
                    .sum();
                meets(accepted).then_some((policy, accepted))
            });
        if let Some((policy, accepted)) = rule {
            let rejected = genuine.iter().filter(|a| !a.verified(&policy)).count();
            let margin = genuine_margin(genuine, &policy);
            let better = best.is_none_or(|(_, _, fewest, widest)| {
                rejected < fewest || (rejected == fewest && margin > widest)
            });
            if better {
                best = Some((policy, accepted, rejected, margin));
            }
        }
    }
    best
}

/// Chooses thresholds for `target` FAR per attempt.
///
/// - `genuine`: the person's attempts, one score per reference.
/// - `impostor`: other people's attempts against the same references.
pub fn calibrate_attempts(
    genuine: Vec<Vec<f32>>,
    impostor: Vec<Vec<f32>>,
    target: f64,
) -> Result<AttemptCalibration, CalibrationError> {
    if !(0.0..=1.0).contains(&target) {
        return Err(MetricsError::TargetOutOfRange(target).into());
    }
    if genuine.is_empty() || impostor.is_empty() {
        return Err(MetricsError::MissingClass {
            genuine: genuine.len(),
            impostor: impostor.len(),
        }
        .into());
    }
    // Every impostor attempt is compared with all N references; a genuine one with the
    // references other than itself.
    let references = impostor[0].len();
    let all = genuine.iter().chain(&impostor);
    if references == 0
        || impostor.iter().any(|a| a.len() != references)
        || genuine.iter().any(Vec::is_empty)
    {
        return Err(CalibrationError::UnevenAttempts);
    }
    if let Some((index, &value)) = all.flatten().enumerate().find(|(_, s)| !s.is_finite()) {
        return Err(MetricsError::NonFiniteScore { index, value }.into());
    }
    let genuine: Vec<Attempt> = genuine.into_iter().map(Attempt::new).collect();
    let impostor: Vec<Attempt> = impostor.into_iter().map(Attempt::new).collect();
    let alpha = 1.0 - CONFIDENCE;
    let bounded = |accepted: usize| binomial_cdf(accepted, impostor.len(), target) <= alpha;
    let observed = |accepted: usize| accepted as f64 <= target * impostor.len() as f64;
    // Rules whose bound meets the target; failing any, rules whose observed rate does.
    let chosen = lenient_rule(&genuine, &impostor, references, &bounded)
        .map(|rule| (true, rule))
        .or_else(|| lenient_rule(&genuine, &impostor, references, &observed).map(|r| (false, r)));
    let (met, (policy, accepted, rejected, _)) = match chosen {
        Some(found) => found,
        // Even refusing everything shows more than the target: nothing can be claimed.
        None => {
            let refuse_all = VerificationPolicy::new(
                DetectionThreshold::new(0.99)?,
                VerificationThreshold::new(1.0)?,
            );
            (false, (refuse_all, 0, genuine.len(), -1.0))
        }
    };
    Ok(AttemptCalibration {
        policy,
        target_false_accept_rate: target,
        impostor_attempts: impostor.len(),
        impostors_accepted: accepted,
        false_accept_rate: accepted as f64 / impostor.len() as f64,
        false_accept_upper_bound: upper_bound(accepted, impostor.len(), CONFIDENCE),
        genuine_attempts: genuine.len(),
        genuine_rejected: rejected,
        false_reject_rate: rejected as f64 / genuine.len() as f64,
        target_met: met,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binomial_bound_matches_known_values() {
        // Zero in n: 1 - 0.05^(1/n), about 3/n ("rule of three").
        let bound = upper_bound(0, 30_000, 0.95);
        assert!(
            (bound - (1.0 - 0.05f64.powf(1.0 / 30_000.0))).abs() < 1e-9,
            "{bound}"
        );
        assert!((bound * 30_000.0 - 3.0).abs() < 0.01);
        // One in 100: the exact Clopper-Pearson bound is 0.0465.
        assert!((upper_bound(1, 100, 0.95) - 0.0465).abs() < 5e-4);
        assert_eq!(upper_bound(5, 5, 0.95), 1.0);
        assert!((binomial_cdf(2, 4, 0.5) - 11.0 / 16.0).abs() < 1e-12);
    }

    #[test]
    fn enough_impostor_attempts_are_drawn_to_show_the_target() {
        let n = impostor_attempts_for(DEFAULT_ATTEMPT_FAR);
        assert_eq!(n, 50_000);
        assert!(upper_bound(0, n, CONFIDENCE) < DEFAULT_ATTEMPT_FAR);
        assert_eq!(impostor_attempts_for(0.5), 5_000);
        assert_eq!(impostor_attempts_for(0.0), 200_000);
    }

    fn attempts(rows: &[[f32; 4]], times: usize) -> Vec<Vec<f32>> {
        rows.iter()
            .flat_map(|r| std::iter::repeat_n(r.to_vec(), times))
            .collect()
    }

    #[test]
    fn the_bound_not_the_observed_rate_must_meet_the_target() {
        let genuine = attempts(&[[0.9, 0.9, 0.9, 0.9], [0.9, 0.9, 0.6, 0.2]], 5);
        // 10,000 impostors, ten of whom score 0.7 against three references: accepting those
        // ten shows exactly the target 1e-3, but its bound (1.7e-3) does not meet it.
        let mut impostor = attempts(&[[0.1, 0.2, 0.3, 0.1]], 9_990);
        impostor.extend(attempts(&[[0.7, 0.7, 0.7, 0.1]], 10));
        let calibration = calibrate_attempts(genuine.clone(), impostor.clone(), 1e-3).unwrap();
        assert!(calibration.target_met);
        assert!(calibration.false_accept_upper_bound <= 1e-3);
        assert_eq!(calibration.impostors_accepted, 0);
        // The strong impostors are refused, and both genuine kinds still pass.
        assert_eq!(calibration.genuine_rejected, 0);
        assert!(
            !calibration
                .policy
                .decide(impostor[9_995].clone())
                .unwrap()
                .verified
        );
        assert!(
            calibration
                .policy
                .decide(genuine[5].clone())
                .unwrap()
                .verified
        );
        // 1e-4 asked of 10,000 attempts: no rule can show it, and the calibration says so.
        let strict = calibrate_attempts(genuine, impostor, 1e-4).unwrap();
        assert!(!strict.target_met);
        assert_eq!(strict.impostors_accepted, 0);
        assert!(strict.false_accept_upper_bound > 1e-4);
    }

    #[test]
    fn the_most_lenient_rule_that_costs_the_fewest_genuine_attempts_wins() {
        let genuine = attempts(&[[0.95, 0.95, 0.95, 0.3]], 3);
        let impostor = attempts(&[[0.2, 0.2, 0.1, 0.1]], 60_000);
        let calibration = calibrate_attempts(genuine, impostor, 1e-4).unwrap();
        assert!(calibration.target_met);
        assert_eq!(calibration.impostors_accepted, 0);
        // The lowest detection threshold that separates: above 0.1 an impostor has 2 of 4
        // detections and the person 4 of 4, so "more than half" tells them apart.
        assert_eq!(calibration.policy.detection.value(), 0.1);
        assert_eq!(calibration.policy.verification.value(), 0.5);
        assert_eq!(calibration.genuine_rejected, 0);
    }

    #[test]
    fn bad_input_is_refused() {
        let ok = vec![vec![0.5, 0.5]];
        assert!(calibrate_attempts(vec![], ok.clone(), 1e-4).is_err());
        assert!(calibrate_attempts(ok.clone(), vec![], 1e-4).is_err());
        assert!(calibrate_attempts(ok.clone(), ok.clone(), 2.0).is_err());
        assert!(calibrate_attempts(vec![vec![f32::NAN]], ok.clone(), 1e-4).is_err());
        let ragged = vec![vec![0.5, 0.5], vec![0.5]];
        assert!(calibrate_attempts(ok, ragged, 1e-4).is_err());
    }

    #[test]
    fn the_plain_head_scores_like_the_formula() {
        let head = LinearHead {
            weights: vec![-1.0, -2.0],
            bias: 3.0,
        };
        let score = head.score(&[1.0, 0.0], &[0.0, 0.5]);
        assert!((score - 1.0 / (1.0 + (-(3.0f32 - 1.0 - 1.0)).exp())).abs() < 1e-6);
        let references = vec![vec![1.0, 0.0], vec![0.0, 0.5]];
        assert_eq!(head.attempt(&[1.0, 0.0], &references, Some(0)).len(), 1);
        assert_eq!(head.attempt(&[1.0, 0.0], &references, None).len(), 2);
    }
}
