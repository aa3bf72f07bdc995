//! The default model: a siamese head trained once on LFW pairs of many people, so that a
//! profile verifies right after its first photo, before it has a model of its own. It is
//! committed as numbers with its calibration (`models/default_head.json`, made by
//! `cargo xtask default-model`) and compiled into the library.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::Param;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::eval::{LfwImage, LfwPair};
use crate::model::face_resnet::EMBEDDING_DIM;
use crate::model::siamese::SiameseHead;
use crate::train::pairs::SeededRng;
use crate::train::step::{EmbeddingPairBatch, adam_optimizer, train_head_step};
use crate::verify::policy::{
    DetectionThreshold, VerificationPolicy, VerificationThreshold, read_scores,
};

/// The committed default model.
const BUNDLED: &str = include_str!("../../models/default_head.json");

/// The model id a decision by the default model carries.
pub const DEFAULT_MODEL_ID: &str = "default";

/// Why the default model could not be built or read.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DefaultHeadError {
    #[error("the default model is unreadable: {0}")]
    Unreadable(String),
    #[error("the default model has {found} weights, expected {expected}")]
    WrongSize { expected: usize, found: usize },
    #[error("no training pairs: the LFW folder needs people with two or more photos")]
    NoPairs,
    #[error("reading scores failed: {0}")]
    Scores(String),
}

/// How the default model did on pairs it was not trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadEvaluation {
    /// Where the pairs came from.
    pub pairs_file: String,
    pub same_pairs: usize,
    pub different_pairs: usize,
    /// Different-person pairs scored above the detection threshold.
    pub false_accept_rate: f64,
    /// Same-person pairs scored below it.
    pub false_reject_rate: f64,
    /// Area under the ROC curve of the scores.
    pub auc: f64,
}

/// The default model as committed: the head's weights and bias, the thresholds it verifies
/// with, and how they were chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefaultHead {
    /// How to make it again.
    pub source: String,
    pub weights: Vec<f32>,
    pub bias: f32,
    pub policy: VerificationPolicy,
    /// The pair false-accept rate the detection threshold was chosen for.
    pub target_false_accept_rate: f64,
    pub training_pairs: usize,
    pub evaluation: HeadEvaluation,
}

impl DefaultHead {
    /// The default model compiled into the library.
    pub fn bundled() -> Result<Self, DefaultHeadError> {
        Self::from_json(BUNDLED)
    }

    pub fn from_json(text: &str) -> Result<Self, DefaultHeadError> {
        let head: Self =
            serde_json::from_str(text).map_err(|e| DefaultHeadError::Unreadable(e.to_string()))?;
        if head.weights.len() != EMBEDDING_DIM {
            return Err(DefaultHeadError::WrongSize {
                expected: EMBEDDING_DIM,
                found: head.weights.len(),
            });
        }
        Ok(head)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain numbers and strings always serialise")
    }

    /// The head as a module on `device`.
    pub fn module(&self, device: &Device) -> SiameseHead {
        let mut head = SiameseHead::new(self.weights.len(), device);
        head.classifier.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(self.weights.clone(), [self.weights.len(), 1]),
            device,
        ));
        head.classifier.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![self.bias], [1]),
            device,
        )));
        head
    }

    /// Reads a trained head's weights and bias.
    pub async fn weights_of(head: &SiameseHead) -> Result<(Vec<f32>, f32), DefaultHeadError> {
        let weights = read_scores(head.classifier.weight.val().flatten::<1>(0, 1))
            .await
            .map_err(|e| DefaultHeadError::Scores(e.to_string()))?;
        let bias = match &head.classifier.bias {
            Some(bias) => read_scores(bias.val())
                .await
                .map_err(|e| DefaultHeadError::Scores(e.to_string()))?[0],
            None => 0.0,
        };
        Ok((weights, bias))
    }
}

/// Training pairs from LFW photos that appear nowhere in `held_out` (the evaluation pairs):
/// up to `per_class` same-person pairs (consecutive photos of one person) and as many
/// different-person pairs (photos of two people drawn at random), shuffled. The photos are
/// disjoint, not the people: the dev pairs hold most people with two or more photos, and a
/// head of one weight per dimension cannot learn who anyone is.
pub fn training_pairs(
    people: &BTreeMap<String, Vec<u32>>,
    held_out: &[LfwPair],
    per_class: usize,
    seed: u64,
) -> Vec<LfwPair> {
    let excluded: BTreeSet<&LfwImage> = held_out
        .iter()
        .flat_map(|p| [&p.first, &p.second])
        .collect();
    let remaining: Vec<(String, Vec<u32>)> = people
        .iter()
        .map(|(name, photos)| {
            let kept = photos
                .iter()
                .copied()
                .filter(|n| !excluded.contains(&LfwImage::new(name.as_str(), *n)))
                .collect();
            (name.clone(), kept)
        })
        .collect();
    let people: Vec<(&String, &Vec<u32>)> = remaining
        .iter()
        .filter(|(_, photos)| !photos.is_empty())
        .map(|(name, photos)| (name, photos))
        .collect();
    let mut rng = SeededRng::for_stream(seed, 0x4446_4c54); // "DFLT"
    let mut same = Vec::new();
    for (name, photos) in people.iter().filter(|(_, photos)| photos.len() >= 2) {
        for window in photos.windows(2).take(4) {
            same.push(LfwPair {
                first: LfwImage::new(name.as_str(), window[0]),
                second: LfwImage::new(name.as_str(), window[1]),
            });
        }
    }
    rng.shuffle(&mut same);
    same.truncate(per_class);
    let mut pairs = same;
    let wanted = pairs.len();
    while people.len() >= 2 && pairs.len() < 2 * wanted {
        let (a, b) = (rng.below(people.len()), rng.below(people.len()));
        if a == b {
            continue;
        }
        let pick = |(name, photos): (&String, &Vec<u32>), rng: &mut SeededRng| {
            LfwImage::new(name.as_str(), photos[rng.below(photos.len())])
        };
        let first = pick(people[a], &mut rng);
        let second = pick(people[b], &mut rng);
        pairs.push(LfwPair { first, second });
    }
    rng.shuffle(&mut pairs);
    pairs
}

/// Settings of the default model's training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadTraining {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

impl Default for HeadTraining {
    fn default() -> Self {
        Self {
            epochs: 60,
            batch_size: 64,
            learning_rate: 1e-2,
            seed: 7,
        }
    }
}

/// One training pair as embeddings: `(first, second, same person)`.
pub type EmbeddedPair = (Vec<f32>, Vec<f32>, bool);

/// Trains a head on embedded pairs with the product's training step (Adam, binary
/// cross-entropy), on `device` (an autodiff device).
pub async fn fit_head(
    pairs: &[EmbeddedPair],
    settings: &HeadTraining,
    device: &Device,
) -> Result<SiameseHead, DefaultHeadError> {
    if pairs.is_empty() {
        return Err(DefaultHeadError::NoPairs);
    }
    let mut head = crate::train::run::seeded_head(EMBEDDING_DIM, settings.seed, device);
    let mut optimizer = adam_optimizer();
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    let mut rng = SeededRng::for_stream(settings.seed, 0x4550_4f43); // "EPOC"
    for _ in 0..settings.epochs {
        rng.shuffle(&mut order);
        for batch in order.chunks(settings.batch_size) {
            let batch = embedded_batch(batch.iter().map(|&i| &pairs[i]), device);
            let (next, outcome) =
                train_head_step(head, &mut optimizer, batch, settings.learning_rate).await;
            outcome.map_err(|e| DefaultHeadError::Scores(e.to_string()))?;
            head = next;
        }
    }
    Ok(head)
}

fn embedded_batch<'a>(
    pairs: impl Iterator<Item = &'a EmbeddedPair>,
    device: &Device,
) -> EmbeddingPairBatch {
    let (mut first, mut second, mut targets) = (Vec::new(), Vec::new(), Vec::new());
    for (a, b, same) in pairs {
        first.extend_from_slice(a);
        second.extend_from_slice(b);
        targets.push(if *same { 1.0f32 } else { 0.0 });
    }
    let rows = targets.len();
    let dim = first.len() / rows.max(1);
    EmbeddingPairBatch {
        first: Tensor::from_data(TensorData::new(first, [rows, dim]), device),
        second: Tensor::from_data(TensorData::new(second, [rows, dim]), device),
        targets: Tensor::from_data(TensorData::new(targets, [rows]), device),
    }
}

/// The head's score for each pair.
pub async fn score_pairs(
    head: &SiameseHead,
    pairs: &[EmbeddedPair],
    device: &Device,
) -> Result<Vec<f32>, DefaultHeadError> {
    let mut scores = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(256) {
        let batch = embedded_batch(chunk.iter(), device);
        let probabilities = head.forward(batch.first, batch.second);
        scores.extend(
            read_scores(probabilities)
                .await
                .map_err(|e| DefaultHeadError::Scores(e.to_string()))?,
        );
    }
    Ok(scores)
}

/// How a detection threshold does on scored pairs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairRates {
    pub threshold: f32,
    /// Different-person pairs scored above the threshold.
    pub false_accept_rate: f64,
    /// Same-person pairs scored at or below it.
    pub false_reject_rate: f64,
    pub pairs: usize,
}

/// The rates of `threshold` on `scores` (`same`: whether each pair shows one person).
pub fn rates_at(scores: &[f32], same: &[bool], threshold: f32) -> PairRates {
    let rate = |select: bool, accept: bool| {
        let chosen: Vec<f32> = scores
            .iter()
            .zip(same)
            .filter(|(_, s)| **s == select)
            .map(|(v, _)| *v)
            .collect();
        let hits = chosen
            .iter()
            .filter(|v| (**v > threshold) == accept)
            .count();
        hits as f64 / chosen.len().max(1) as f64
    };
    PairRates {
        threshold,
        false_accept_rate: rate(false, true),
        false_reject_rate: rate(true, false),
        pairs: scores.len(),
    }
}

/// The lowest detection threshold whose false-accept rate on the different-person scores is at
/// most `target` (a detection is a score above the threshold), and the false-accept and
/// false-reject rates there. Verification takes more than half of the references.
pub fn calibrate(scores: &[f32], same: &[bool], target: f64) -> (VerificationPolicy, f64, f64) {
    let mut different: Vec<f32> = scores
        .iter()
        .zip(same)
        .filter(|(_, s)| !**s)
        .map(|(v, _)| *v)
        .collect();
    different.sort_by(|a, b| b.total_cmp(a));
    // Allowed false accepts: the largest count whose rate stays within the target.
    let allowed = (target * different.len() as f64).floor() as usize;
    let threshold = different
        .get(allowed)
        .map_or(0.5, |score| score.clamp(0.0, 1.0));
    let rates = rates_at(scores, same, threshold);
    let policy = VerificationPolicy::new(
        DetectionThreshold::new(threshold).expect("clamped to 0..=1"),
        VerificationThreshold::new(0.5).expect("in range"),
    );
    (policy, rates.false_accept_rate, rates.false_reject_rate)
}

/// Area under the ROC curve: the chance that a same-person pair outscores a different one.
pub fn auc(scores: &[f32], same: &[bool]) -> f64 {
    let positives: Vec<f32> = scores
        .iter()
        .zip(same)
        .filter(|(_, s)| **s)
        .map(|(v, _)| *v)
        .collect();
    let negatives: Vec<f32> = scores
        .iter()
        .zip(same)
        .filter(|(_, s)| !**s)
        .map(|(v, _)| *v)
        .collect();
    if positives.is_empty() || negatives.is_empty() {
        return 0.5;
    }
    let mut wins = 0.0;
    for p in &positives {
        for n in &negatives {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (positives.len() * negatives.len()) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_admits_at_most_the_target_share_of_impostors() {
        // 1,000 impostor scores 0.000..0.999 and 100 genuine ones 0.90..0.999.
        let mut scores: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let mut same = vec![false; 1000];
        scores.extend((0..100).map(|i| 0.9 + i as f32 / 1000.0));
        same.extend(vec![true; 100]);
        let (policy, far, frr) = calibrate(&scores, &same, 0.005);
        assert!(far <= 0.005, "{far}");
        assert!(far > 0.0, "the target is used, not undercut: {far}");
        let threshold = policy.detection.value();
        assert!((0.99..1.0).contains(&threshold), "{threshold}");
        assert!(frr > 0.8, "most genuine scores lie below 0.99: {frr}");
        assert_eq!(policy.verification.value(), 0.5);
    }

    #[test]
    fn auc_is_the_chance_a_genuine_pair_outscores_an_impostor() {
        assert_eq!(auc(&[0.9, 0.8, 0.1, 0.2], &[true, true, false, false]), 1.0);
        assert_eq!(auc(&[0.1, 0.9], &[true, false]), 0.0);
        assert_eq!(auc(&[0.5, 0.5], &[true, false]), 0.5);
    }

    #[test]
    fn training_pairs_leave_out_the_evaluation_photos_and_balance_the_classes() {
        let people: BTreeMap<String, Vec<u32>> = (0..40)
            .map(|i| (format!("Person_{i:02}"), (1..=(1 + i % 4)).collect()))
            .collect();
        let held_out = vec![LfwPair {
            first: LfwImage::new("Person_03", 1),
            second: LfwImage::new("Person_07", 1),
        }];
        let pairs = training_pairs(&people, &held_out, 25, 7);
        let same = pairs.iter().filter(|p| p.is_same_person()).count();
        assert_eq!(same, 25);
        assert_eq!(pairs.len(), 50);
        for pair in &pairs {
            for image in [&pair.first, &pair.second] {
                assert!(!held_out[0].first.eq(image) && !held_out[0].second.eq(image));
                assert!(people[&image.person].contains(&image.number));
            }
        }
        assert_eq!(pairs, training_pairs(&people, &held_out, 25, 7), "seeded");
    }

    #[test]
    fn the_bundled_default_model_reads_and_scores_the_same_face_higher() {
        let head = DefaultHead::bundled().unwrap();
        assert_eq!(head.weights.len(), EMBEDDING_DIM);
        assert!(
            head.evaluation.same_pairs > 0 && head.evaluation.auc > 0.9,
            "{:?}",
            head.evaluation
        );
        let device = Device::flex();
        let module = head.module(&device);
        let face: Vec<f32> = (0..EMBEDDING_DIM)
            .map(|i| (i as f32 * 0.37).sin() * 0.1)
            .collect();
        let other: Vec<f32> = face.iter().map(|v| -v).collect();
        let pairs = [(face.clone(), face.clone(), true), (face, other, false)];
        let scores = pollster::block_on(score_pairs(&module, &pairs, &device)).unwrap();
        assert!(scores[0] > head.policy.detection.value(), "{scores:?}");
        assert!(scores[1] < head.policy.detection.value(), "{scores:?}");
        assert_eq!(DefaultHead::from_json(&head.to_json()).unwrap(), head);
    }

    #[test]
    fn a_damaged_default_model_is_refused() {
        assert!(matches!(
            DefaultHead::from_json("{"),
            Err(DefaultHeadError::Unreadable(_))
        ));
        let mut head = DefaultHead::bundled().unwrap();
        head.weights.pop();
        assert!(matches!(
            DefaultHead::from_json(&head.to_json()),
            Err(DefaultHeadError::WrongSize { .. })
        ));
    }
}
