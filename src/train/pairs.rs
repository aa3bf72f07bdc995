//! Labelled pairs, their train/test split and their batches, all reproducible from one seed.
//!
//! The tutorial's data pipeline: (anchor, positive) pairs labelled 1 and (anchor, negative) pairs
//! labelled 0, as many of each, shuffled, 70% for training and 30% for testing, batches of 16.
//! Everything random here comes from [`SeededRng`], so the same seed gives the same pairs, split
//! and batch order on every platform — which is what lets a training run resume from a
//! checkpoint (epoch, batch) in the browser and land on the same weights as an uninterrupted run.
//!
//! The pairs hold whatever identifies an image (an index, a key in the store): building them
//! never touches pixels.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::store::ImageRole;

/// A small deterministic random number generator (SplitMix64).
///
/// Not `rand`: its generators' streams are not promised to stay the same across versions, and a
/// checkpoint written by one build must resume identically in the next. SplitMix64 is a
/// fixed, well-tested 64-bit mixer with a full period, plenty for shuffling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// An independent generator for one named use of a seed (e.g. one epoch's order), so that
    /// changing how many numbers one use draws cannot shift another's.
    pub fn for_stream(seed: u64, stream: u64) -> Self {
        let mut mixer = Self::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Self::new(mixer.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..bound` (`bound` > 0), without modulo bias (Lemire's method).
    pub fn below(&mut self, bound: usize) -> usize {
        assert!(bound > 0, "below(0) has no value to return");
        let bound = bound as u64;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            let low = product as u64;
            // Reject the few draws that would make small values more likely.
            if low >= bound.wrapping_neg() % bound {
                return (product >> 64) as usize;
            }
        }
    }

    /// A uniform float in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform float in `[low, high)`.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.next_f64()
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// Whether a pair shows the same person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairLabel {
    /// (anchor, positive): the same person; target 1.
    Same,
    /// (anchor, negative): different people; target 0.
    Different,
}

impl PairLabel {
    /// The value the network is trained to output.
    pub fn target(self) -> f32 {
        match self {
            PairLabel::Same => 1.0,
            PairLabel::Different => 0.0,
        }
    }

    /// True for [`PairLabel::Same`]: the "genuine" class of the metrics.
    pub fn is_same(self) -> bool {
        self == PairLabel::Same
    }

    /// `count` labels, same and different in turn: the labels of a timing workload.
    pub fn alternating(count: usize) -> Vec<PairLabel> {
        (0..count)
            .map(|i| match i % 2 {
                0 => PairLabel::Same,
                _ => PairLabel::Different,
            })
            .collect()
    }
}

/// Two images and whether they show the same person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelledPair<T> {
    /// Always an anchor image (a capture of the user).
    pub anchor: T,
    /// A positive (the user again) or a negative (someone else).
    pub other: T,
    /// Which of the two `other` is.
    pub label: PairLabel,
}

/// The training hyper-parameters. The defaults are the tutorial's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainingConfig {
    /// Adam's learning rate (tutorial: 1e-4).
    pub learning_rate: f64,
    /// Pairs per optimisation step (tutorial: 16). The last batch of an epoch may be smaller.
    pub batch_size: usize,
    /// Passes over the training pairs (tutorial: 50).
    pub epochs: usize,
    /// Seed of every random choice: pairing, split, batch order.
    pub seed: u64,
    /// Share of the pairs used for training; the rest is the test split (tutorial: 0.7).
    pub train_fraction: f64,
    /// Pairs of each label. `None`: as many as the smallest of the anchor, positive and
    /// negative sets, as the tutorial's `zip` does.
    pub pairs_per_class: Option<usize>,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-4,
            batch_size: 16,
            epochs: 50,
            seed: 42,
            train_fraction: 0.7,
            pairs_per_class: None,
        }
    }
}

/// A training configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// The learning rate must be a positive number.
    #[error("the learning rate must be positive, got {0}")]
    LearningRate(f64),
    /// Batches must hold at least one pair.
    #[error("the batch size must be at least 1")]
    BatchSize,
    /// At least one epoch.
    #[error("training needs at least one epoch")]
    Epochs,
    /// Both splits must be able to receive pairs.
    #[error("the training fraction must lie strictly between 0 and 1, got {0}")]
    TrainFraction(f64),
    /// Zero pairs per class leaves nothing to learn from.
    #[error("pairs per class must be at least 1")]
    PairsPerClass,
}

impl TrainingConfig {
    /// Checks every field; call before a run starts (settings come from the page).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(ConfigError::LearningRate(self.learning_rate));
        }
        if self.batch_size == 0 {
            return Err(ConfigError::BatchSize);
        }
        if self.epochs == 0 {
            return Err(ConfigError::Epochs);
        }
        if !(self.train_fraction > 0.0 && self.train_fraction < 1.0) {
            return Err(ConfigError::TrainFraction(self.train_fraction));
        }
        if self.pairs_per_class == Some(0) {
            return Err(ConfigError::PairsPerClass);
        }
        Ok(())
    }
}

/// Why pairs could not be made.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PairsError {
    /// One of the three image sets is empty.
    #[error("there are no {0:?} images: capture or import some first")]
    NoImages(ImageRole),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Stream numbers of [`SeededRng::for_stream`]: one per use of the seed.
const STREAM_PAIRING: u64 = 1;
const STREAM_SPLIT: u64 = 2;
const STREAM_EPOCH_BASE: u64 = 1 << 32;

/// Hands out items in a shuffled order, reshuffling each time it runs out, so that asking for
/// more pairs than there are images repeats images in fresh combinations.
struct CyclingSampler<'a, T> {
    items: &'a [T],
    order: Vec<usize>,
    next: usize,
}

impl<'a, T: Clone> CyclingSampler<'a, T> {
    fn new(items: &'a [T]) -> Self {
        Self {
            items,
            order: (0..items.len()).collect(),
            next: items.len(),
        }
    }

    fn draw(&mut self, rng: &mut SeededRng) -> T {
        if self.next == self.order.len() {
            rng.shuffle(&mut self.order);
            self.next = 0;
        }
        let item = self.items[self.order[self.next]].clone();
        self.next += 1;
        item
    }
}

/// Makes balanced labelled pairs, shuffled: `pairs_per_class` (anchor, positive) pairs labelled
/// [`PairLabel::Same`] and as many (anchor, negative) pairs labelled [`PairLabel::Different`].
pub fn make_pairs<T: Clone>(
    anchors: &[T],
    positives: &[T],
    negatives: &[T],
    pairs_per_class: Option<usize>,
    seed: u64,
) -> Result<Vec<LabelledPair<T>>, PairsError> {
    for (images, role) in [
        (anchors.len(), ImageRole::Anchor),
        (positives.len(), ImageRole::Positive),
        (negatives.len(), ImageRole::Negative),
    ] {
        if images == 0 {
            return Err(PairsError::NoImages(role));
        }
    }
    if pairs_per_class == Some(0) {
        return Err(ConfigError::PairsPerClass.into());
    }
    let per_class =
        pairs_per_class.unwrap_or(anchors.len().min(positives.len()).min(negatives.len()));

    let mut rng = SeededRng::for_stream(seed, STREAM_PAIRING);
    let mut positive_anchors = CyclingSampler::new(anchors);
    let mut negative_anchors = CyclingSampler::new(anchors);
    let mut positive_images = CyclingSampler::new(positives);
    let mut negative_images = CyclingSampler::new(negatives);
    let mut pairs = Vec::with_capacity(2 * per_class);
    for _ in 0..per_class {
        pairs.push(LabelledPair {
            anchor: positive_anchors.draw(&mut rng),
            other: positive_images.draw(&mut rng),
            label: PairLabel::Same,
        });
    }
    for _ in 0..per_class {
        pairs.push(LabelledPair {
            anchor: negative_anchors.draw(&mut rng),
            other: negative_images.draw(&mut rng),
            label: PairLabel::Different,
        });
    }
    rng.shuffle(&mut pairs);
    Ok(pairs)
}

/// The pairs divided into a training and a test split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairSplit<T> {
    /// Pairs the optimiser sees.
    pub train: Vec<LabelledPair<T>>,
    /// Held-out pairs for the metrics, early stopping and threshold calibration.
    pub test: Vec<LabelledPair<T>>,
}

/// Splits pairs into train and test with `train_fraction` of each label in the training split.
///
/// The tutorial takes the first 70% of one shuffled list, which leaves the test split's balance
/// to chance; splitting each label separately keeps both splits balanced, so precision and
/// recall on a small test split do not swing with the shuffle. As in the tutorial, one anchor
/// image may appear in pairs of both splits: the split is over pairs, not identities.
pub fn split_pairs<T>(
    pairs: Vec<LabelledPair<T>>,
    train_fraction: f64,
    seed: u64,
) -> Result<PairSplit<T>, ConfigError> {
    if !(train_fraction > 0.0 && train_fraction < 1.0) {
        return Err(ConfigError::TrainFraction(train_fraction));
    }
    let (same, different): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|p| p.label.is_same());
    let mut train = Vec::new();
    let mut test = Vec::new();
    for class in [same, different] {
        let train_count = (class.len() as f64 * train_fraction).round() as usize;
        let mut class = class.into_iter();
        train.extend(class.by_ref().take(train_count));
        test.extend(class);
    }
    let mut rng = SeededRng::for_stream(seed, STREAM_SPLIT);
    rng.shuffle(&mut train);
    rng.shuffle(&mut test);
    Ok(PairSplit { train, test })
}

/// Makes the pairs and splits them as `config` says.
pub fn prepare_pairs<T: Clone>(
    anchors: &[T],
    positives: &[T],
    negatives: &[T],
    config: &TrainingConfig,
) -> Result<PairSplit<T>, PairsError> {
    config.validate()?;
    let pairs = make_pairs(
        anchors,
        positives,
        negatives,
        config.pairs_per_class,
        config.seed,
    )?;
    Ok(split_pairs(pairs, config.train_fraction, config.seed)?)
}

/// The order in which one epoch visits `pair_count` training pairs, cut into batches of
/// `batch_size` indices (the last may be shorter).
///
/// A pure function of (seed, epoch): a run resumed at epoch `e`, batch `b` replays exactly
/// the batches an uninterrupted run would have seen.
pub fn epoch_batches(
    pair_count: usize,
    batch_size: usize,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    assert!(batch_size > 0, "batches must hold at least one pair");
    let mut order: Vec<usize> = (0..pair_count).collect();
    SeededRng::for_stream(seed, STREAM_EPOCH_BASE + epoch as u64).shuffle(&mut order);
    order.chunks(batch_size).map(<[usize]>::to_vec).collect()
}

/// Number of batches per epoch for `pair_count` pairs.
pub fn batches_per_epoch(pair_count: usize, batch_size: usize) -> usize {
    pair_count.div_ceil(batch_size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn splitmix_matches_its_reference_output() {
        // First outputs of SplitMix64 seeded with 1234567 (Vigna's reference implementation).
        let mut rng = SeededRng::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = SeededRng::new(9);
        let mut seen = [0usize; 7];
        for _ in 0..7_000 {
            seen[rng.below(7)] += 1;
        }
        // Each value ~1000 times; a broken reduction would starve some.
        assert!(seen.iter().all(|&n| (850..1150).contains(&n)), "{seen:?}");
        let x = rng.next_f64();
        assert!((0.0..1.0).contains(&x));
    }

    #[test]
    fn shuffle_is_a_permutation_and_depends_on_the_seed() {
        let mut a: Vec<u32> = (0..50).collect();
        let mut b = a.clone();
        SeededRng::new(1).shuffle(&mut a);
        SeededRng::new(2).shuffle(&mut b);
        assert_ne!(a, b);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn pairs_are_balanced_labelled_and_reproducible() {
        let anchors: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
        let positives: Vec<String> = (0..6).map(|i| format!("p{i}")).collect();
        let negatives: Vec<String> = (0..40).map(|i| format!("n{i}")).collect();
        let pairs = make_pairs(&anchors, &positives, &negatives, None, 7).unwrap();
        // The tutorial's zip: as many pairs per label as the smallest set.
        assert_eq!(pairs.len(), 10);
        for pair in &pairs {
            assert!(pair.anchor.starts_with('a'));
            let expected = if pair.other.starts_with('p') {
                PairLabel::Same
            } else {
                assert!(pair.other.starts_with('n'));
                PairLabel::Different
            };
            assert_eq!(pair.label, expected);
        }
        assert_eq!(pairs.iter().filter(|p| p.label.is_same()).count(), 5);
        // Within one cycle, each anchor is used once per label.
        let anchors_used: HashSet<_> = pairs
            .iter()
            .filter(|p| p.label.is_same())
            .map(|p| &p.anchor)
            .collect();
        assert_eq!(anchors_used.len(), 5);

        assert_eq!(
            pairs,
            make_pairs(&anchors, &positives, &negatives, None, 7).unwrap()
        );
        assert_ne!(
            pairs,
            make_pairs(&anchors, &positives, &negatives, None, 8).unwrap()
        );
    }

    #[test]
    fn more_pairs_than_images_cycle_through_fresh_combinations() {
        let pairs = make_pairs(&[0, 1, 2], &[10, 11, 12], &[20, 21, 22], Some(30), 1).unwrap();
        assert_eq!(pairs.len(), 60);
        let distinct_positive: HashSet<_> = pairs
            .iter()
            .filter(|p| p.label.is_same())
            .map(|p| (p.anchor, p.other))
            .collect();
        // Reshuffling every cycle reaches more than the 3 combinations of one fixed zip.
        assert!(distinct_positive.len() > 3, "{distinct_positive:?}");
    }

    #[test]
    fn an_empty_image_set_is_a_typed_error() {
        let error = make_pairs::<u8>(&[1], &[], &[3], None, 0).unwrap_err();
        assert_eq!(error, PairsError::NoImages(ImageRole::Positive));
        assert!(error.to_string().contains("Positive"));
    }

    #[test]
    fn the_split_is_seventy_thirty_within_each_label() {
        let anchors: Vec<u32> = (0..100).collect();
        let positives: Vec<u32> = (100..200).collect();
        let negatives: Vec<u32> = (200..300).collect();
        let config = TrainingConfig::default();
        let split = prepare_pairs(&anchors, &positives, &negatives, &config).unwrap();
        assert_eq!(split.train.len(), 140);
        assert_eq!(split.test.len(), 60);
        assert_eq!(split.train.iter().filter(|p| p.label.is_same()).count(), 70);
        assert_eq!(split.test.iter().filter(|p| p.label.is_same()).count(), 30);
        // No pair is in both splits (the image sets are disjoint, so pairs are distinct).
        let train: HashSet<_> = split.train.iter().map(|p| (p.anchor, p.other)).collect();
        assert!(
            split
                .test
                .iter()
                .all(|p| !train.contains(&(p.anchor, p.other)))
        );
        // Shuffled, not all positives first.
        assert!(split.train[..70].iter().any(|p| !p.label.is_same()));
    }

    #[test]
    fn epoch_batches_cover_every_pair_once_and_replay_for_a_resume() {
        let batches = epoch_batches(37, 16, 42, 3);
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![16, 16, 5]
        );
        assert_eq!(batches_per_epoch(37, 16), 3);
        let mut all: Vec<usize> = batches.concat();
        all.sort();
        assert_eq!(all, (0..37).collect::<Vec<_>>());
        assert_eq!(batches, epoch_batches(37, 16, 42, 3));
        assert_ne!(batches, epoch_batches(37, 16, 42, 4));
    }

    #[test]
    fn config_defaults_are_the_tutorials_and_round_trip_through_json() {
        let config = TrainingConfig::default();
        assert_eq!(config.learning_rate, 1e-4);
        assert_eq!(config.batch_size, 16);
        assert_eq!(config.train_fraction, 0.7);
        config.validate().unwrap();
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(
            serde_json::from_str::<TrainingConfig>(&json).unwrap(),
            config
        );
        // Missing fields take the defaults, so the page may send only what the user changed.
        let partial: TrainingConfig = serde_json::from_str(r#"{"epochs": 3}"#).unwrap();
        assert_eq!(partial.epochs, 3);
        assert_eq!(partial.batch_size, 16);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let bad = |edit: fn(&mut TrainingConfig)| {
            let mut config = TrainingConfig::default();
            edit(&mut config);
            config.validate().unwrap_err()
        };
        assert_eq!(
            bad(|c| c.learning_rate = 0.0),
            ConfigError::LearningRate(0.0)
        );
        assert_eq!(bad(|c| c.batch_size = 0), ConfigError::BatchSize);
        assert_eq!(bad(|c| c.epochs = 0), ConfigError::Epochs);
        assert_eq!(
            bad(|c| c.train_fraction = 1.0),
            ConfigError::TrainFraction(1.0)
        );
        assert_eq!(
            bad(|c| c.pairs_per_class = Some(0)),
            ConfigError::PairsPerClass
        );
    }
}
