//! The LFW verification benchmark: read LFW's pairs file, run every distinct
//! image once through detect → largest face → align → embed (or the tutorial's centre crop),
//! and score the pairs by the Euclidean distance between their descriptors.
//!
//! Conventions:
//! - a pair is declared *the same person* when its distance is **strictly below** the threshold
//!   (dlib's rule; dlib uses 0.6). The ROC helpers of [`crate::train::metrics`] accept a score
//!   strictly *above* their threshold, so they are fed `score = −distance`, and every threshold
//!   they return is negated back into a distance here;
//! - accuracy follows LFW's 10-fold protocol: for each fold, the threshold that maximises
//!   accuracy on the nine other folds is applied to it; the figure is the mean (± standard
//!   deviation and standard error) of the ten test accuracies. Folds are made per class: the
//!   `i`-th same-person pair (in file order) of `n` goes to fold `⌊10·i / n⌋`, and likewise for
//!   the different-person pairs. On LFW's `pairs.txt` (10 sets of 300 same then 300 different
//!   pairs) this is exactly its 10 sets; on the dev file (all 1,500 same pairs, then all 1,500
//!   different ones) it makes 10 folds of 150 + 150, the same balance as `pairs.txt`'s sets.
//!
//! The core is platform-neutral (it gets decoded frames from a caller-supplied loader and reads
//! tensors asynchronously); reading the LFW folder from disk is native only.

use std::collections::HashMap;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::model::face_resnet::{self, EMBEDDING_DIM, FaceResNet, FaceResNetError};
use crate::train::metrics::{
    ConfusionCounts, MetricsError, area_under_curve, equal_error_rate, roc_curve, tar_at_far,
};
use crate::vision::align::{self, AlignError, CropMode, FaceTemplate};
use crate::vision::detect::{DetectError, Detections, FaceDetector};
use crate::vision::frame::Frame;

/// Folds of LFW's protocol.
pub const LFW_FOLDS: usize = 10;
/// dlib's decision threshold on descriptor distances (same person below it).
pub const DLIB_THRESHOLD: f32 = 0.6;
/// The false accept rate at which the true accept rate is reported.
pub const TARGET_FAR: f64 = 1e-3;
/// Default images per forward pass: large enough to amortise per-call overhead, small enough
/// that a batch of 150×150 inputs and activations stays modest in memory (also in a browser).
pub const DEFAULT_BATCH_SIZE: usize = 16;

/// Errors reading a pairs file. Line numbers count from 1, the header being line 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairsFileError {
    #[error("the pairs file is empty")]
    Empty,
    #[error(
        "line 1: the header '{text}' is neither `<count> same-then-different` nor LFW's \
         `<sets> <pairs per set>`"
    )]
    BadHeader { text: String },
    #[error("line {line}: '{text}': {reason}")]
    BadLine {
        line: usize,
        text: String,
        reason: String,
    },
    #[error(
        "line {line}: expected a {expected} pair here (header layout), found a {found} pair: \
         '{text}'"
    )]
    OutOfOrder {
        line: usize,
        text: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error(
        "the header announces {expected} pairs, the file has {found} (lines after the header \
         that are not blank)"
    )]
    WrongCount { expected: usize, found: usize },
}

/// Errors of an evaluation run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Pairs(#[from] PairsFileError),
    #[cfg(not(target_arch = "wasm32"))]
    #[error("cannot read {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{count} image(s) named by the pairs file are missing, first: {first}")]
    MissingImages { count: usize, first: String },
    #[error("cannot decode {image}: {message}")]
    Decode { image: String, message: String },
    #[error("the face detector failed: {0}")]
    Detect(#[from] DetectError),
    #[error("aligning {image} failed: {source}")]
    Align { image: String, source: AlignError },
    #[error("the face descriptor network failed: {0}")]
    Embed(#[from] FaceResNetError),
    #[error("the descriptor network returned {found} descriptors for {expected} images")]
    EmbeddingCount { expected: usize, found: usize },
    #[error("no pairs to evaluate")]
    NoPairs,
    #[error("10-fold accuracy needs every fold to hold pairs: fold {fold} is empty")]
    EmptyFold { fold: usize },
    #[error("pair {pair} is in fold {fold}, but there are only {folds} folds")]
    FoldOutOfRange {
        pair: usize,
        fold: usize,
        folds: usize,
    },
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("batch size must be at least 1")]
    ZeroBatchSize,
    #[error("{distances} distances but {labels} labels and {folds} fold indices")]
    LengthMismatch {
        distances: usize,
        labels: usize,
        folds: usize,
    },
}

/// One LFW image: `<person>/<person>_<number, 4 digits>.jpg` under the LFW folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LfwImage {
    pub person: String,
    /// As in the file name: 1 for `_0001`.
    pub number: u32,
}

impl LfwImage {
    pub fn new(person: impl Into<String>, number: u32) -> Self {
        Self {
            person: person.into(),
            number,
        }
    }

    /// The path relative to the LFW folder, with `/` separators.
    pub fn relative_path(&self) -> String {
        format!("{0}/{0}_{1:04}.jpg", self.person, self.number)
    }
}

impl std::fmt::Display for LfwImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.relative_path())
    }
}

/// Two images and whether they show the same person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LfwPair {
    pub first: LfwImage,
    pub second: LfwImage,
}

impl LfwPair {
    pub fn is_same_person(&self) -> bool {
        self.first.person == self.second.person
    }
}

/// How the pairs file orders its pairs (from its header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PairsLayout {
    /// `<n> same-then-different`: `n` same-person pairs, then `n` different-person pairs.
    SameThenDifferent { per_class: usize },
    /// LFW's `pairs.txt`, header `<sets> <n>`: `sets` times (`n` same, then `n` different).
    Sets { sets: usize, per_class: usize },
}

impl PairsLayout {
    pub fn total_pairs(&self) -> usize {
        match *self {
            Self::SameThenDifferent { per_class } => 2 * per_class,
            Self::Sets { sets, per_class } => 2 * sets * per_class,
        }
    }

    /// Whether pair number `index` (0-based, file order) must be a same-person pair.
    fn expects_same(&self, index: usize) -> bool {
        match *self {
            Self::SameThenDifferent { per_class } => index < per_class,
            Self::Sets { per_class, .. } => index % (2 * per_class) < per_class,
        }
    }
}

/// A parsed pairs file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairsFile {
    pub layout: PairsLayout,
    /// In file order.
    pub pairs: Vec<LfwPair>,
}

impl PairsFile {
    /// Parses LFW's pairs format: a header, then `Name i j` (same person) and `Name1 i Name2 j`
    /// (different people) lines, fields separated by spaces or tabs. Blank lines are skipped.
    /// The pairs must follow the header's layout and count.
    pub fn parse(text: &str) -> Result<Self, PairsFileError> {
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
        let (_, header) = lines
            .by_ref()
            .find(|(_, l)| !l.is_empty())
            .ok_or(PairsFileError::Empty)?;
        let layout = parse_header(header)?;
        let mut pairs = Vec::with_capacity(layout.total_pairs());
        for (line, text) in lines.filter(|(_, l)| !l.is_empty()) {
            let pair = parse_pair(line, text)?;
            // Checked here (not only by the count at the end) so that an error names the line.
            if pairs.len() < layout.total_pairs() {
                let expected = layout.expects_same(pairs.len());
                if pair.is_same_person() != expected {
                    let kind = |same: bool| {
                        if same {
                            "same-person"
                        } else {
                            "different-person"
                        }
                    };
                    return Err(PairsFileError::OutOfOrder {
                        line,
                        text: text.to_string(),
                        expected: kind(expected),
                        found: kind(pair.is_same_person()),
                    });
                }
            }
            pairs.push(pair);
        }
        if pairs.len() != layout.total_pairs() {
            return Err(PairsFileError::WrongCount {
                expected: layout.total_pairs(),
                found: pairs.len(),
            });
        }
        Ok(Self { layout, pairs })
    }

    /// Reads and parses a pairs file.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read(path: &std::path::Path) -> Result<Self, EvalError> {
        let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::parse(&text)?)
    }

    pub fn same_person_pairs(&self) -> usize {
        self.pairs.iter().filter(|p| p.is_same_person()).count()
    }

    /// At most `limit` pairs, balanced: the first `⌈limit/2⌉` same-person and the first
    /// `⌊limit/2⌋` different-person pairs in file order (a plain prefix of the dev file would
    /// hold same-person pairs only). The relative file order is kept.
    pub fn balanced_subset(&self, limit: usize) -> Vec<LfwPair> {
        let (mut same_left, mut different_left) = (limit.div_ceil(2), limit / 2);
        self.pairs
            .iter()
            .filter(|p| {
                let left = if p.is_same_person() {
                    &mut same_left
                } else {
                    &mut different_left
                };
                let keep = *left > 0;
                *left = left.saturating_sub(1);
                keep
            })
            .cloned()
            .collect()
    }

    /// Every image the pairs name, once each, in order of first appearance.
    pub fn distinct_images(&self) -> Vec<LfwImage> {
        distinct_images(&self.pairs)
    }
}

fn parse_header(text: &str) -> Result<PairsLayout, PairsFileError> {
    let bad = || PairsFileError::BadHeader {
        text: text.to_string(),
    };
    let fields: Vec<&str> = text.split_whitespace().collect();
    let count = |s: &str| s.parse::<usize>().ok().filter(|&n| n > 0);
    match fields.as_slice() {
        [n, kind] if kind.eq_ignore_ascii_case("same-then-different") => {
            Ok(PairsLayout::SameThenDifferent {
                per_class: count(n).ok_or_else(bad)?,
            })
        }
        [sets, n] => Ok(PairsLayout::Sets {
            sets: count(sets).ok_or_else(bad)?,
            per_class: count(n).ok_or_else(bad)?,
        }),
        _ => Err(bad()),
    }
}

fn parse_pair(line: usize, text: &str) -> Result<LfwPair, PairsFileError> {
    let bad = |reason: String| PairsFileError::BadLine {
        line,
        text: text.to_string(),
        reason,
    };
    let number = |s: &str| -> Result<u32, PairsFileError> {
        match s.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(bad(format!(
                "'{s}' is not an image number (LFW numbers its images from 1)"
            ))),
        }
    };
    // A name becomes a path component: refuse anything that could leave the LFW folder.
    let name = |s: &str| -> Result<String, PairsFileError> {
        if s.contains(['/', '\\']) || s == "." || s == ".." {
            return Err(bad(format!("'{s}' is not a person's name")));
        }
        Ok(s.to_string())
    };
    let fields: Vec<&str> = text.split_whitespace().collect();
    match fields.as_slice() {
        [person, i, j] => {
            let person = name(person)?;
            Ok(LfwPair {
                first: LfwImage::new(person.clone(), number(i)?),
                second: LfwImage::new(person, number(j)?),
            })
        }
        [a, i, b, j] => {
            if a == b {
                return Err(bad(format!(
                    "a different-person line names '{a}' twice (write `{a} {i} {j}` for a \
                     same-person pair)"
                )));
            }
            Ok(LfwPair {
                first: LfwImage::new(name(a)?, number(i)?),
                second: LfwImage::new(name(b)?, number(j)?),
            })
        }
        other => Err(bad(format!(
            "expected `Name i j` or `Name1 i Name2 j`, found {} fields",
            other.len()
        ))),
    }
}

/// Every image of `pairs`, once each, in order of first appearance.
pub fn distinct_images(pairs: &[LfwPair]) -> Vec<LfwImage> {
    let mut seen = std::collections::HashSet::new();
    pairs
        .iter()
        .flat_map(|p| [&p.first, &p.second])
        .filter(|image| seen.insert(*image))
        .cloned()
        .collect()
}

/// The fold of each pair (see the module documentation): per class, consecutive blocks in file
/// order, `folds` blocks as even as possible.
pub fn assign_folds(pairs: &[LfwPair], folds: usize) -> Vec<usize> {
    let same_total = pairs.iter().filter(|p| p.is_same_person()).count();
    let different_total = pairs.len() - same_total;
    let (mut same_seen, mut different_seen) = (0, 0);
    pairs
        .iter()
        .map(|p| {
            let (seen, total) = if p.is_same_person() {
                (&mut same_seen, same_total)
            } else {
                (&mut different_seen, different_total)
            };
            let fold = *seen * folds / total;
            *seen += 1;
            fold
        })
        .collect()
}

/// One fold of the cross-validation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FoldResult {
    /// Distance threshold chosen on the other folds (same person below it).
    pub threshold: f32,
    /// Accuracy of `threshold` on the other folds.
    pub train_accuracy: f64,
    /// Accuracy of `threshold` on this fold.
    pub test_accuracy: f64,
    /// Pairs in this fold.
    pub pairs: usize,
}

/// LFW's k-fold accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossValidation {
    pub folds: Vec<FoldResult>,
    /// Mean test accuracy over the folds.
    pub mean_accuracy: f64,
    /// Sample standard deviation (n − 1) of the folds' test accuracies.
    pub std_accuracy: f64,
    /// `std_accuracy / √folds`, the figure LFW's protocol reports after "±".
    pub standard_error: f64,
}

/// The distance threshold that maximises accuracy on `(distances, same)` under "same person
/// when distance < threshold", and that accuracy. Candidates are the midpoints between
/// consecutive distinct distances, plus one below all and one above all; among equally accurate
/// candidates the smallest wins (the strictest threshold).
pub fn best_threshold(distances: &[f32], same: &[bool]) -> (f32, f64) {
    let mut sorted: Vec<(f32, bool)> = distances
        .iter()
        .copied()
        .zip(same.iter().copied())
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = sorted.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let different_total = sorted.iter().filter(|(_, s)| !s).count();
    // Sweep the threshold upwards: after the group of equal distances ending at `i`, every pair
    // up to `i` is accepted.
    let (mut accepted_same, mut accepted_different) = (0usize, 0usize);
    let correct = |accepted_same: usize, accepted_different: usize| {
        (accepted_same + different_total - accepted_different) as f64 / n as f64
    };
    // Below everything: nothing accepted.
    let mut best = (sorted[0].0 - 1.0, correct(0, 0));
    let mut i = 0;
    while i < n {
        let value = sorted[i].0;
        while i < n && sorted[i].0 == value {
            if sorted[i].1 {
                accepted_same += 1;
            } else {
                accepted_different += 1;
            }
            i += 1;
        }
        let threshold = if i < n {
            value + (sorted[i].0 - value) / 2.0
        } else {
            value + 1.0
        };
        let accuracy = correct(accepted_same, accepted_different);
        if accuracy > best.1 {
            best = (threshold, accuracy);
        }
    }
    best
}

/// Accuracy of "same person when distance < threshold".
pub fn accuracy_at(distances: &[f32], same: &[bool], threshold: f32) -> Result<f64, EvalError> {
    Ok(counts_at(distances, same, threshold)?.accuracy())
}

fn counts_at(
    distances: &[f32],
    same: &[bool],
    threshold: f32,
) -> Result<ConfusionCounts, EvalError> {
    let scores: Vec<f32> = distances.iter().map(|d| -d).collect();
    Ok(ConfusionCounts::at_threshold(&scores, same, -threshold)?)
}

/// LFW's protocol on precomputed distances: for each fold, choose the threshold on the others
/// ([`best_threshold`]), test it on the fold, and average.
pub fn k_fold_accuracy(
    distances: &[f32],
    same: &[bool],
    fold_of_pair: &[usize],
    folds: usize,
) -> Result<CrossValidation, EvalError> {
    if distances.len() != same.len() || distances.len() != fold_of_pair.len() {
        return Err(EvalError::LengthMismatch {
            distances: distances.len(),
            labels: same.len(),
            folds: fold_of_pair.len(),
        });
    }
    if distances.is_empty() {
        return Err(EvalError::NoPairs);
    }
    if let Some((pair, &fold)) = fold_of_pair.iter().enumerate().find(|(_, f)| **f >= folds) {
        return Err(EvalError::FoldOutOfRange { pair, fold, folds });
    }
    // A fold without pairs would have nothing to test (and its "training set" would be all).
    if let Some(fold) = (0..folds).find(|k| !fold_of_pair.contains(k)) {
        return Err(EvalError::EmptyFold { fold });
    }
    let mut results = Vec::with_capacity(folds);
    for fold in 0..folds {
        let split = |in_fold: bool| -> (Vec<f32>, Vec<bool>) {
            (0..distances.len())
                .filter(|&i| (fold_of_pair[i] == fold) == in_fold)
                .map(|i| (distances[i], same[i]))
                .unzip()
        };
        let (test_d, test_s) = split(true);
        let (train_d, train_s) = split(false);
        if train_d.is_empty() {
            // Only one fold holds pairs: nothing to choose a threshold on.
            return Err(EvalError::EmptyFold {
                fold: (fold + 1) % folds,
            });
        }
        let (threshold, train_accuracy) = best_threshold(&train_d, &train_s);
        results.push(FoldResult {
            threshold,
            train_accuracy,
            test_accuracy: accuracy_at(&test_d, &test_s, threshold)?,
            pairs: test_d.len(),
        });
    }
    let k = results.len() as f64;
    let mean_accuracy = results.iter().map(|f| f.test_accuracy).sum::<f64>() / k;
    let variance = if results.len() > 1 {
        results
            .iter()
            .map(|f| (f.test_accuracy - mean_accuracy).powi(2))
            .sum::<f64>()
            / (k - 1.0)
    } else {
        0.0
    };
    Ok(CrossValidation {
        folds: results,
        mean_accuracy,
        std_accuracy: variance.sqrt(),
        standard_error: variance.sqrt() / k.sqrt(),
    })
}

/// The threshold-free figures of a set of distances.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DistanceMetrics {
    /// Area under the ROC curve (the probability that a random same-person pair is closer than
    /// a random different-person pair, ties counting half).
    pub auc: f64,
    /// Equal error rate (interpolated where FAR meets FRR).
    pub eer: f64,
    /// The achievable distance threshold nearest the EER crossing.
    pub eer_threshold: f32,
    /// The FAR target of `tar`.
    pub target_far: f64,
    /// Best true accept rate with a false accept rate at most `target_far`.
    pub tar: f64,
    /// The FAR actually reached at `tar_threshold`.
    pub tar_far: f64,
    /// Distance threshold of `tar` (same person below it).
    pub tar_threshold: f32,
    /// Accuracy at dlib's fixed threshold [`DLIB_THRESHOLD`].
    pub accuracy_at_dlib_threshold: f64,
    pub mean_same_distance: f64,
    pub mean_different_distance: f64,
}

/// ROC AUC, EER, TAR at `target_far` and the means, from distances.
pub fn distance_metrics(
    distances: &[f32],
    same: &[bool],
    target_far: f64,
) -> Result<DistanceMetrics, EvalError> {
    let scores: Vec<f32> = distances.iter().map(|d| -d).collect();
    let roc = roc_curve(&scores, same)?;
    let eer = equal_error_rate(&roc);
    let tar = tar_at_far(&roc, target_far)?;
    let mean = |want_same: bool| {
        let (sum, n) = distances
            .iter()
            .zip(same)
            .filter(|(_, s)| **s == want_same)
            .fold((0.0f64, 0usize), |(sum, n), (d, _)| {
                (sum + f64::from(*d), n + 1)
            });
        if n == 0 { 0.0 } else { sum / n as f64 }
    };
    Ok(DistanceMetrics {
        auc: area_under_curve(&roc),
        eer: eer.rate,
        eer_threshold: -eer.threshold,
        target_far,
        tar: tar.true_accept_rate,
        tar_far: tar.false_accept_rate,
        tar_threshold: -tar.threshold,
        accuracy_at_dlib_threshold: accuracy_at(distances, same, DLIB_THRESHOLD)?,
        mean_same_distance: mean(true),
        mean_different_distance: mean(false),
    })
}

/// Euclidean distance between two descriptors.
pub fn l2_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

/// What [`CropMode::Detect`] embeds for an image in which the detector finds no face.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoFaceFallback {
    /// The tutorial's centre crop (the 250-pixel centre square), resized to the tower's input.
    #[default]
    #[serde(alias = "centre", alias = "center")]
    CentreCrop,
    /// The same centre square, but warped so that LFW's mean keypoint positions
    /// ([`FaceTemplate::lfw`]) land on the tower's template: LFW's photos are already roughly
    /// aligned, so this frames an undetected face about as the tower expects, where the plain
    /// centre crop shows it much smaller than the tower was trained on.
    #[serde(alias = "lfw")]
    LfwFraming,
}

impl NoFaceFallback {
    /// The tower's input for `frame` without a detected face.
    pub fn crop(self, frame: &Frame, template: &FaceTemplate) -> Frame {
        match self {
            Self::CentreCrop => align::centre_crop(frame, template.size),
            Self::LfwFraming => {
                let side = align::CENTRE_CROP_SIDE;
                let (dx, dy) = (
                    (frame.width() as f32 - side) / 2.0,
                    (frame.height() as f32 - side) / 2.0,
                );
                let lfw = FaceTemplate::lfw(side as u32)
                    .points
                    .map(|p| crate::vision::frame::Point::new(p.x + dx, p.y + dy));
                let transform = align::SimilarityTransform::estimate(&lfw, &template.points)
                    .expect("the LFW and tower templates are fixed, non-degenerate point sets");
                align::warp(frame, &transform, template.size)
            }
        }
    }
}

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalOptions {
    pub crop: CropMode,
    /// What `CropMode::Detect` embeds when it finds no face.
    pub fallback: NoFaceFallback,
    /// Images per forward pass of the detector and of the descriptor network.
    pub batch_size: usize,
    /// At most this many pairs, balanced between the classes ([`PairsFile::balanced_subset`]).
    pub limit: Option<usize>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            crop: CropMode::Detect,
            fallback: NoFaceFallback::default(),
            batch_size: DEFAULT_BATCH_SIZE,
            limit: None,
        }
    }
}

/// The networks the benchmark runs, on one device.
pub struct EvalModels<'a> {
    pub detector: &'a FaceDetector,
    pub tower: &'a FaceResNet,
    pub device: &'a Device,
}

/// One pair's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairDistance {
    pub pair: LfwPair,
    pub distance: f32,
    pub fold: usize,
}

/// Seconds spent in each stage (wall clock; the stages run one after the other).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct StageTimes {
    pub decode: f64,
    pub detect: f64,
    pub align: f64,
    pub embed: f64,
    /// From the first image to the last descriptor.
    pub total: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub options: EvalOptions,
    pub pairs: usize,
    pub same_person_pairs: usize,
    /// Distinct images embedded (each once).
    pub images: usize,
    /// Images in which the detector found no face, so `options.fallback` was embedded instead
    /// (always 0 with [`CropMode::Centre`]).
    pub fallbacks: usize,
    pub fallback_images: Vec<LfwImage>,
    /// Images in which the detector saw more than one face (the largest was used).
    pub multiple_faces: usize,
    pub cross_validation: CrossValidation,
    pub metrics: DistanceMetrics,
    pub times: StageTimes,
    /// `images / times.total`.
    pub faces_per_second: f64,
    pub distances: Vec<PairDistance>,
}

/// Seconds on a monotonic-enough clock (`Instant` panics in wasm32, so the browser uses
/// `Date.now()`).
fn now_seconds() -> f64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs_f64()
    }
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Date::now() / 1000.0
    }
}

/// Photos the detector missed (cropped by the fallback) or found several faces in.
#[derive(Default)]
struct DetectionMisses {
    fallback_images: Vec<LfwImage>,
    multiple_faces: usize,
}

/// The tower's input for one batch: each photo's face crop, by `options.crop`, concatenated.
fn batch_crops(
    batch: &[LfwImage],
    frames: &[Frame],
    detections: &[Detections],
    options: &EvalOptions,
    misses: &mut DetectionMisses,
) -> Result<Vec<u8>, EvalError> {
    let template = FaceTemplate::dlib_150();
    let mut pixels = Vec::with_capacity(batch.len() * template.size.pow(2) as usize * 3);
    for (i, (image, frame)) in batch.iter().zip(frames).enumerate() {
        let crop = match options.crop {
            CropMode::Centre => align::centre_crop(frame, template.size),
            CropMode::Detect => {
                let largest = detections[i].pick_largest();
                if largest.faces_seen > 1 {
                    misses.multiple_faces += 1;
                }
                match largest.face {
                    Some(face) => align::align_face(frame, &face, &template).map_err(|source| {
                        EvalError::Align {
                            image: image.to_string(),
                            source,
                        }
                    })?,
                    // LFW is built from faces a detector found, so a miss is the detector's
                    // failure on this copy; the fallback keeps the pair scoreable, and the
                    // count says how often it happened.
                    None => {
                        misses.fallback_images.push(image.clone());
                        options.fallback.crop(frame, &template)
                    }
                }
            }
        };
        pixels.extend_from_slice(crop.pixels());
    }
    Ok(pixels)
}

/// Runs the benchmark: embeds every distinct image of `pairs` once (in batches of
/// `options.batch_size`), then scores the pairs. `load_image` decodes one image (it is called
/// once per distinct image, in batches); `progress(done, total)` is called with the number of
/// images embedded so far after each batch (and once with 0 at the start).
pub async fn evaluate_pairs(
    pairs_file: &PairsFile,
    models: &EvalModels<'_>,
    options: &EvalOptions,
    mut load_image: impl FnMut(&LfwImage) -> Result<Frame, EvalError>,
    mut progress: impl FnMut(usize, usize),
) -> Result<EvalReport, EvalError> {
    if options.batch_size == 0 {
        return Err(EvalError::ZeroBatchSize);
    }
    let pairs = match options.limit {
        Some(limit) => pairs_file.balanced_subset(limit),
        None => pairs_file.pairs.clone(),
    };
    if pairs.is_empty() {
        return Err(EvalError::NoPairs);
    }
    let images = distinct_images(&pairs);
    let mut embeddings: HashMap<LfwImage, [f32; EMBEDDING_DIM]> =
        HashMap::with_capacity(images.len());
    let mut times = StageTimes::default();
    let mut misses = DetectionMisses::default();
    let started = now_seconds();
    progress(0, images.len());

    for batch in images.chunks(options.batch_size) {
        let t = now_seconds();
        let frames = batch
            .iter()
            .map(&mut load_image)
            .collect::<Result<Vec<_>, _>>()?;
        times.decode += now_seconds() - t;

        let t = now_seconds();
        let detections = match options.crop {
            CropMode::Detect => models.detector.detect_batch(&frames).await?,
            CropMode::Centre => Vec::new(),
        };
        times.detect += now_seconds() - t;

        let t = now_seconds();
        let pixels = batch_crops(batch, &frames, &detections, options, &mut misses)?;
        times.align += now_seconds() - t;

        let t = now_seconds();
        let batch_embeddings = models
            .tower
            .embed(face_resnet::input_from_rgb8(&pixels, models.device))
            .await?;
        times.embed += now_seconds() - t;
        if batch_embeddings.len() != batch.len() {
            return Err(EvalError::EmbeddingCount {
                expected: batch.len(),
                found: batch_embeddings.len(),
            });
        }
        embeddings.extend(batch.iter().cloned().zip(batch_embeddings));
        progress(embeddings.len(), images.len());
    }
    times.total = now_seconds() - started;

    let folds = assign_folds(&pairs, LFW_FOLDS);
    let distances: Vec<f32> = pairs
        .iter()
        .map(|p| l2_distance(&embeddings[&p.first], &embeddings[&p.second]))
        .collect();
    let same: Vec<bool> = pairs.iter().map(LfwPair::is_same_person).collect();
    let cross_validation = k_fold_accuracy(&distances, &same, &folds, LFW_FOLDS)?;
    let metrics = distance_metrics(&distances, &same, TARGET_FAR)?;
    Ok(EvalReport {
        options: *options,
        pairs: pairs.len(),
        same_person_pairs: same.iter().filter(|s| **s).count(),
        images: images.len(),
        fallbacks: misses.fallback_images.len(),
        fallback_images: misses.fallback_images,
        multiple_faces: misses.multiple_faces,
        cross_validation,
        metrics,
        faces_per_second: if times.total > 0.0 {
            images.len() as f64 / times.total
        } else {
            0.0
        },
        times,
        distances: pairs
            .into_iter()
            .zip(distances)
            .zip(folds)
            .map(|((pair, distance), fold)| PairDistance {
                pair,
                distance,
                fold,
            })
            .collect(),
    })
}

/// The LFW folder on disk (`<root>/<Name>/<Name>_NNNN.jpg`).
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone)]
pub struct LfwDirectory {
    pub root: std::path::PathBuf,
}

#[cfg(not(target_arch = "wasm32"))]
impl LfwDirectory {
    pub fn new(root: impl Into<std::path::PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn path_of(&self, image: &LfwImage) -> std::path::PathBuf {
        self.root
            .join(&image.person)
            .join(format!("{}_{:04}.jpg", image.person, image.number))
    }

    /// Fails with every missing image counted before any network runs, so that a wrong
    /// `--lfw` folder is reported at once instead of after minutes of work.
    pub fn check_images(&self, images: &[LfwImage]) -> Result<(), EvalError> {
        let missing: Vec<&LfwImage> = images
            .iter()
            .filter(|image| !self.path_of(image).is_file())
            .collect();
        match missing.first() {
            None => Ok(()),
            Some(first) => Err(EvalError::MissingImages {
                count: missing.len(),
                first: self.path_of(first).display().to_string(),
            }),
        }
    }

    /// Decodes one image into an RGB frame (LFW's grayscale copy becomes R = G = B, which is
    /// what the descriptor network, trained on colour, is given for a gray photo).
    pub fn load(&self, image: &LfwImage) -> Result<Frame, EvalError> {
        let path = self.path_of(image);
        let bytes = std::fs::read(&path).map_err(|source| EvalError::Io {
            path: path.clone(),
            source,
        })?;
        let decoded = image::load_from_memory(&bytes).map_err(|e| EvalError::Decode {
            image: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Frame::from_image(&decoded))
    }
}

/// The whole benchmark natively: reads the pairs file, checks that every image exists, then
/// runs [`evaluate_pairs`] on the images under `lfw_root`.
#[cfg(not(target_arch = "wasm32"))]
pub async fn evaluate_lfw(
    lfw_root: &std::path::Path,
    pairs_path: &std::path::Path,
    models: &EvalModels<'_>,
    options: &EvalOptions,
    progress: impl FnMut(usize, usize),
) -> Result<EvalReport, EvalError> {
    let pairs_file = PairsFile::read(pairs_path)?;
    let lfw = LfwDirectory::new(lfw_root);
    let wanted = match options.limit {
        Some(limit) => distinct_images(&pairs_file.balanced_subset(limit)),
        None => pairs_file.distinct_images(),
    };
    lfw.check_images(&wanted)?;
    evaluate_pairs(
        &pairs_file,
        models,
        options,
        |image| lfw.load(image),
        progress,
    )
    .await
}
