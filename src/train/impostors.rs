//! The impostor model: compact statistics of the face embeddings of many different people, so
//! fine-tune mode has negatives without the app shipping anyone's face.
//!
//! It is a mixture of `k` clusters of 128-d embeddings (k-means over one embedding per person),
//! each with its share of the people, its centroid and the per-dimension standard deviation of
//! its members. [`ImpostorModel::sample`] draws synthetic "other people": a cluster by share,
//! then a Gaussian around its centroid with its spreads. Every cluster summarises at least
//! `min_members` people (smaller clusters are merged into their nearest neighbour), so no
//! number in the file describes one person.
//!
//! The committed model (`models/impostors.json`, described in `models/IMPOSTORS.md`) is
//! computed by `faceverify impostors --lfw ../shared/data/lfw --out models/impostors.json`
//! from LFW people whose names start with A–F (one photo each, minus the identities the tests
//! and the demo clips use — see [`ImpostorSelection::default`]); the fine-tune tests draw their
//! user and their negatives from G–L, so the model never saw them.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::pairs::SeededRng;
use crate::vision::align::{SimilarityTransform, warp};
use crate::vision::frame::Frame;

/// `format` field of an impostor model file.
pub const IMPOSTOR_FORMAT: &str = "faceverify-impostors";
/// Version of the impostor model file this build reads and writes.
pub const IMPOSTOR_VERSION: u32 = 2;
/// The committed model, relative to the crate root.
pub const IMPOSTOR_MODEL_PATH: &str = "models/impostors.json";

/// Share of a 250-px LFW photo's side taken by the face crop: the centre 130 px, resized to
/// the tower's 150 px, is what matches dlib's face chips best on LFW's rough alignment
/// (`tests/face_resnet.rs`).
pub const LFW_FACE_FRACTION: f64 = 130.0 / 250.0;

/// Why an impostor model could not be built, read or used.
#[derive(Debug, Error)]
pub enum ImpostorError {
    /// Too few people for the requested clusters.
    #[error("{people} people cannot form clusters of at least {min_members}")]
    TooFewPeople {
        /// People given.
        people: usize,
        /// Smallest cluster allowed.
        min_members: usize,
    },
    /// Embeddings of different lengths, or not finite.
    #[error("invalid embeddings: {0}")]
    Embeddings(String),
    /// The file is not an impostor model of this version.
    #[error("not a faceverify impostor model (version {IMPOSTOR_VERSION}): {0}")]
    Format(String),
    /// Reading the photos or the file failed.
    #[error("{path}: {detail}")]
    Io {
        /// The path.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// Embedding the photos failed.
    #[error(transparent)]
    Run(#[from] super::run::RunError),
}

/// One cluster of people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpostorCluster {
    /// People in the cluster / all people.
    pub share: f64,
    /// People in the cluster.
    pub members: usize,
    /// Mean embedding of the members.
    pub centroid: Vec<f32>,
    /// Standard deviation of the members per dimension.
    pub std_dev: Vec<f32>,
}

/// The impostor model. See the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpostorModel {
    /// Always [`IMPOSTOR_FORMAT`].
    pub format: String,
    /// Always [`IMPOSTOR_VERSION`].
    pub version: u32,
    /// Length of the embeddings (128 for the pretrained tower).
    pub embedding_dim: usize,
    /// How the model was made (data, selection, crop, tower), in words.
    pub source: String,
    /// People summarised.
    pub people: usize,
    /// The clusters, largest first.
    pub clusters: Vec<ImpostorCluster>,
    /// How the dimensions vary together within a cluster: the lower-triangular Cholesky factor
    /// of the correlation matrix of every person's deviation from their cluster's centroid
    /// (each dimension divided by the cluster's standard deviation), pooled over all people,
    /// packed row by row (`dim·(dim+1)/2` numbers). Independent dimensions would make a
    /// weighted distance between two descriptors a sum of 128 independent terms, far more
    /// concentrated than between real faces: the synthetic impostors would never come as
    /// close to a person as real strangers do.
    pub correlation_cholesky: Vec<f32>,
}

/// How the clusters are fitted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FitOptions {
    /// Clusters before merging small ones.
    pub clusters: usize,
    /// Smallest number of people a cluster may summarise.
    pub min_members: usize,
    /// Lloyd iterations at most.
    pub iterations: usize,
    /// Seed of the k-means++ initialisation.
    pub seed: u64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            clusters: 32,
            min_members: 10,
            iterations: 50,
            seed: 7,
        }
    }
}

fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum()
}

fn nearest(point: &[f32], centroids: &[Vec<f32>]) -> usize {
    let mut best = (f64::INFINITY, 0);
    for (i, centroid) in centroids.iter().enumerate() {
        let d = squared_distance(point, centroid);
        if d < best.0 {
            best = (d, i);
        }
    }
    best.1
}

fn means(points: &[Vec<f32>], assignment: &[usize], count: usize, dim: usize) -> Vec<Vec<f32>> {
    let mut sums = vec![vec![0f64; dim]; count];
    let mut members = vec![0usize; count];
    for (point, &cluster) in points.iter().zip(assignment) {
        members[cluster] += 1;
        for (sum, &v) in sums[cluster].iter_mut().zip(point) {
            *sum += f64::from(v);
        }
    }
    sums.into_iter()
        .zip(members)
        .map(|(sum, n)| sum.iter().map(|s| (s / n.max(1) as f64) as f32).collect())
        .collect()
}

/// Merges clusters below `min_members` into their nearest neighbour, smallest first, until
/// every cluster summarises enough people.
fn merge_small_clusters(
    embeddings: &[Vec<f32>],
    assignment: &mut [usize],
    centroids: &mut Vec<Vec<f32>>,
    min_members: usize,
) {
    let dim = embeddings.first().map_or(0, Vec::len);
    loop {
        let mut members = vec![0usize; centroids.len()];
        for &c in assignment.iter() {
            members[c] += 1;
        }
        let smallest = (0..centroids.len())
            .filter(|&c| members[c] < min_members)
            .min_by_key(|&c| (members[c], c));
        let Some(small) = smallest else { break };
        let survivors: Vec<usize> = (0..centroids.len()).filter(|&c| c != small).collect();
        let survivor_centroids: Vec<Vec<f32>> =
            survivors.iter().map(|&c| centroids[c].clone()).collect();
        for (point, cluster) in embeddings.iter().zip(assignment.iter_mut()) {
            *cluster = if *cluster == small {
                nearest(point, &survivor_centroids)
            } else {
                survivors
                    .iter()
                    .position(|&c| c == *cluster)
                    .expect("a surviving cluster")
            };
        }
        *centroids = means(embeddings, assignment, survivors.len(), dim);
    }
}

/// Each cluster's share, members, centroid and per-dimension standard deviation.
fn cluster_statistics(
    embeddings: &[Vec<f32>],
    assignment: &[usize],
    centroids: &[Vec<f32>],
) -> Vec<ImpostorCluster> {
    let people = embeddings.len();
    centroids
        .iter()
        .enumerate()
        .map(|(c, centroid)| {
            let members: Vec<&Vec<f32>> = embeddings
                .iter()
                .zip(assignment)
                .filter(|(_, a)| **a == c)
                .map(|(e, _)| e)
                .collect();
            let std_dev = (0..centroid.len())
                .map(|d| {
                    let variance = members
                        .iter()
                        .map(|e| (f64::from(e[d]) - f64::from(centroid[d])).powi(2))
                        .sum::<f64>()
                        / members.len().max(1) as f64;
                    variance.sqrt() as f32
                })
                .collect();
            ImpostorCluster {
                share: members.len() as f64 / people as f64,
                members: members.len(),
                centroid: centroid.clone(),
                std_dev,
            }
        })
        .collect()
}

/// Shrinkage toward independence that keeps the pooled correlation matrix positive definite
/// (1,785 people estimate 8,256 correlations well, but not perfectly).
const CORRELATION_SHRINKAGE: f64 = 0.02;

/// See [`ImpostorModel::correlation_cholesky`].
fn pooled_correlation_cholesky(
    embeddings: &[Vec<f32>],
    assignment: &[usize],
    clusters: &[ImpostorCluster],
    dim: usize,
) -> Vec<f32> {
    let mut sums = vec![0f64; dim * dim];
    for (point, &c) in embeddings.iter().zip(assignment) {
        let cluster = &clusters[c];
        let deviation: Vec<f64> = (0..dim)
            .map(|d| {
                let sd = f64::from(cluster.std_dev[d]).max(1e-9);
                (f64::from(point[d]) - f64::from(cluster.centroid[d])) / sd
            })
            .collect();
        for i in 0..dim {
            for j in 0..=i {
                sums[i * dim + j] += deviation[i] * deviation[j];
            }
        }
    }
    let n = embeddings.len().max(1) as f64;
    let keep = 1.0 - CORRELATION_SHRINKAGE;
    let correlation = |i: usize, j: usize| {
        let (i, j) = if i >= j { (i, j) } else { (j, i) };
        let diagonal = |k: usize| (sums[k * dim + k] / n).max(1e-12);
        let r = sums[i * dim + j] / n / (diagonal(i) * diagonal(j)).sqrt();
        if i == j { 1.0 } else { keep * r }
    };
    cholesky(dim, correlation)
}

/// The packed lower-triangular Cholesky factor of the symmetric positive definite matrix
/// `entry(i, j)`.
fn cholesky(dim: usize, entry: impl Fn(usize, usize) -> f64) -> Vec<f32> {
    let mut l = vec![0f64; dim * dim];
    for i in 0..dim {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i * dim + k] * l[j * dim + k]).sum();
            l[i * dim + j] = if i == j {
                (entry(i, i) - sum).max(1e-12).sqrt()
            } else {
                (entry(i, j) - sum) / l[j * dim + j]
            };
        }
    }
    (0..dim)
        .flat_map(|i| (0..=i).map(move |j| (i, j)))
        .map(|(i, j)| l[i * dim + j] as f32)
        .collect()
}

impl ImpostorModel {
    /// Fits the model to one embedding per person.
    pub fn fit(
        embeddings: &[Vec<f32>],
        options: FitOptions,
        source: &str,
    ) -> Result<Self, ImpostorError> {
        let people = embeddings.len();
        let dim = embeddings.first().map_or(0, Vec::len);
        if dim == 0 || embeddings.iter().any(|e| e.len() != dim) {
            return Err(ImpostorError::Embeddings(
                "all embeddings must have one non-zero length".into(),
            ));
        }
        if embeddings.iter().flatten().any(|v| !v.is_finite()) {
            return Err(ImpostorError::Embeddings(
                "an embedding is not finite".into(),
            ));
        }
        if people < options.min_members.max(1) {
            return Err(ImpostorError::TooFewPeople {
                people,
                min_members: options.min_members,
            });
        }
        let k = options
            .clusters
            .clamp(1, people / options.min_members.max(1));

        // k-means++: each next centre drawn with probability proportional to its squared
        // distance from the nearest centre so far.
        let mut rng = SeededRng::for_stream(options.seed, 0x494D_504F); // "IMPO"
        let mut centroids = vec![embeddings[rng.below(people)].clone()];
        while centroids.len() < k {
            let weights: Vec<f64> = embeddings
                .iter()
                .map(|e| squared_distance(e, &centroids[nearest(e, &centroids)]))
                .collect();
            let total: f64 = weights.iter().sum();
            let mut target = rng.next_f64() * total;
            let mut chosen = people - 1;
            for (i, w) in weights.iter().enumerate() {
                if target < *w {
                    chosen = i;
                    break;
                }
                target -= w;
            }
            centroids.push(embeddings[chosen].clone());
        }
        let mut assignment: Vec<usize> =
            embeddings.iter().map(|e| nearest(e, &centroids)).collect();
        for _ in 0..options.iterations {
            centroids = means(embeddings, &assignment, centroids.len(), dim);
            let next: Vec<usize> = embeddings.iter().map(|e| nearest(e, &centroids)).collect();
            if next == assignment {
                break;
            }
            assignment = next;
        }

        merge_small_clusters(
            embeddings,
            &mut assignment,
            &mut centroids,
            options.min_members,
        );

        let mut clusters = cluster_statistics(embeddings, &assignment, &centroids);
        let correlation_cholesky =
            pooled_correlation_cholesky(embeddings, &assignment, &clusters, dim);
        clusters.sort_by_key(|cluster| std::cmp::Reverse(cluster.members));
        Ok(Self {
            format: IMPOSTOR_FORMAT.into(),
            version: IMPOSTOR_VERSION,
            embedding_dim: dim,
            source: source.into(),
            people,
            clusters,
            correlation_cholesky,
        })
    }

    /// `count` synthetic impostor embeddings, reproducible from `seed`.
    pub fn sample(&self, count: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = SeededRng::for_stream(seed, 0x5341_4D50); // "SAMP"
        let mut normal = move || {
            // Box–Muller; 1 − u keeps the logarithm's argument in (0, 1].
            let u = 1.0 - rng.next_f64();
            let v = rng.next_f64();
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        };
        let mut draws = Vec::with_capacity(count);
        let mut pick = SeededRng::for_stream(seed, 0x5049_434B); // "PICK"
        for _ in 0..count {
            let mut target = pick.next_f64();
            let mut cluster = &self.clusters[self.clusters.len() - 1];
            for candidate in &self.clusters {
                if target < candidate.share {
                    cluster = candidate;
                    break;
                }
                target -= candidate.share;
            }
            let independent: Vec<f64> = (0..self.embedding_dim).map(|_| normal()).collect();
            let correlated = self.correlate(&independent);
            draws.push(
                cluster
                    .centroid
                    .iter()
                    .zip(&cluster.std_dev)
                    .zip(correlated)
                    .map(|((&mean, &sd), z)| (f64::from(mean) + f64::from(sd) * z) as f32)
                    .collect(),
            );
        }
        draws
    }

    /// `L·z`: independent standard normals made to vary together like real deviations.
    fn correlate(&self, independent: &[f64]) -> Vec<f64> {
        let mut row_start = 0;
        (0..self.embedding_dim)
            .map(|row| {
                let factors = &self.correlation_cholesky[row_start..row_start + row + 1];
                row_start += row + 1;
                factors
                    .iter()
                    .zip(independent)
                    .map(|(&l, &z)| f64::from(l) * z)
                    .sum()
            })
            .collect()
    }

    /// Parses and checks a model file.
    pub fn from_json(text: &str) -> Result<Self, ImpostorError> {
        let model: Self =
            serde_json::from_str(text).map_err(|e| ImpostorError::Format(e.to_string()))?;
        model.check()?;
        Ok(model)
    }

    /// The model as pretty JSON (one number per line diffs badly; rows stay on one line).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("finite numbers always serialise")
    }

    fn check(&self) -> Result<(), ImpostorError> {
        let bad = |m: String| Err(ImpostorError::Format(m));
        if self.format != IMPOSTOR_FORMAT || self.version != IMPOSTOR_VERSION {
            return bad(format!("format {} version {}", self.format, self.version));
        }
        if self.clusters.is_empty() {
            return bad("no clusters".into());
        }
        for cluster in &self.clusters {
            if cluster.centroid.len() != self.embedding_dim
                || cluster.std_dev.len() != self.embedding_dim
            {
                return bad("a cluster's length differs from embedding_dim".into());
            }
            if cluster
                .centroid
                .iter()
                .chain(&cluster.std_dev)
                .any(|v| !v.is_finite())
                || !(cluster.share.is_finite() && cluster.share >= 0.0)
            {
                return bad("a cluster holds a number that is not finite".into());
            }
        }
        let total: f64 = self.clusters.iter().map(|c| c.share).sum();
        if (total - 1.0).abs() > 1e-6 {
            return bad(format!("cluster shares add up to {total}, not 1"));
        }
        let packed = self.embedding_dim * (self.embedding_dim + 1) / 2;
        if self.correlation_cholesky.len() != packed
            || self.correlation_cholesky.iter().any(|v| !v.is_finite())
        {
            return bad(format!(
                "the correlation factor needs {packed} finite numbers, has {}",
                self.correlation_cholesky.len()
            ));
        }
        Ok(())
    }
}

/// The face crop used until the detector is wired in: the centre square covering
/// [`LFW_FACE_FRACTION`] of the shorter side, resized to `size`×`size` (bilinear, as
/// `vision::align::warp`).
pub fn centre_face_crop(frame: &Frame, size: u32) -> Frame {
    let side = f64::from(frame.width().min(frame.height())) * LFW_FACE_FRACTION;
    let scale = f64::from(size) / side;
    let x0 = (f64::from(frame.width()) - side) / 2.0;
    let y0 = (f64::from(frame.height()) - side) / 2.0;
    let transform = SimilarityTransform {
        a: scale,
        b: 0.0,
        tx: -x0 * scale,
        ty: -y0 * scale,
    };
    warp(frame, &transform, size)
}

/// Which LFW identities the committed model summarises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpostorSelection {
    /// First letters of the names taken (inclusive range).
    pub first_letters: (char, char),
    /// Names left out although their letter is in range.
    pub excluded: Vec<String>,
    /// Photos per person averaged into that person's embedding.
    pub photos_per_person: usize,
}

impl Default for ImpostorSelection {
    /// A–F, one photo each. The tests' user (George_W_Bush) and negatives come from G–L;
    /// Colin_Powell is the impostor of the demo camera clips (`shared/camera/person-b`), so he is
    /// left out too: he must stay a face the app has never seen.
    fn default() -> Self {
        Self {
            first_letters: ('A', 'F'),
            excluded: vec!["Colin_Powell".into()],
            photos_per_person: 1,
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::model::face_resnet::INPUT_SIZE;
    use crate::pipeline::FacePipeline;
    use crate::vision::align::CropMode;

    fn io(path: &Path, detail: impl ToString) -> ImpostorError {
        ImpostorError::Io {
            path: path.display().to_string(),
            detail: detail.to_string(),
        }
    }

    /// The photos `selection` picks from an LFW folder (`<Name>/<Name>_NNNN.jpg`), grouped by
    /// person, names and files in sorted order.
    pub fn select_lfw_photos(
        lfw: &Path,
        selection: &ImpostorSelection,
    ) -> Result<Vec<(String, Vec<PathBuf>)>, ImpostorError> {
        let mut people = Vec::new();
        let entries = std::fs::read_dir(lfw).map_err(|e| io(lfw, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io(lfw, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let first = name.chars().next().unwrap_or(' ').to_ascii_uppercase();
            if !entry.path().is_dir()
                || first < selection.first_letters.0
                || first > selection.first_letters.1
                || selection.excluded.contains(&name)
            {
                continue;
            }
            let mut photos: Vec<PathBuf> = std::fs::read_dir(entry.path())
                .map_err(|e| io(&entry.path(), e))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
                .collect();
            photos.sort();
            photos.truncate(selection.photos_per_person.max(1));
            if !photos.is_empty() {
                people.push((name, photos));
            }
        }
        people.sort();
        Ok(people)
    }

    /// Reads a photo and crops its face for the pretrained tower.
    pub fn load_face(path: &Path) -> Result<Frame, ImpostorError> {
        let image = image::open(path).map_err(|e| io(path, e))?;
        Ok(centre_face_crop(
            &Frame::from_image(&image),
            INPUT_SIZE as u32,
        ))
    }

    /// Builds the impostor model from an LFW folder: the selected people's photos, their
    /// largest face detected and aligned by `pipeline` exactly as the app aligns a captured
    /// photo, embedded and averaged per person, then fitted. A person none of whose photos
    /// shows a face the detector finds is left out.
    pub fn build_from_lfw(
        lfw: &Path,
        selection: &ImpostorSelection,
        options: FitOptions,
        pipeline: &FacePipeline,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<ImpostorModel, ImpostorError> {
        let people = select_lfw_photos(lfw, selection)?;
        let mut embeddings = Vec::with_capacity(people.len());
        for (done, (_, photos)) in people.iter().enumerate() {
            let mut embedded = Vec::new();
            for photo in photos {
                let bytes = std::fs::read(photo).map_err(|e| io(photo, e))?;
                let analysis =
                    pollster::block_on(pipeline.analyse_encoded(&bytes, CropMode::Detect))
                        .map_err(|e| io(photo, e))?;
                embedded.extend(analysis.embedding);
            }
            if let Some(first) = embedded.first() {
                let mean: Vec<f32> = (0..first.len())
                    .map(|d| embedded.iter().map(|e| e[d]).sum::<f32>() / embedded.len() as f32)
                    .collect();
                embeddings.push(mean);
            }
            progress(done + 1, people.len());
        }
        let source = format!(
            "LFW (../shared/data/lfw, aligned grayscale 250x250), people whose names start with \
             {}-{} except {:?}: {} of {} people (the others show no face the detector finds), \
             the first {} photo(s) of each (sorted file names), the largest face detected by \
             BlazeFace and aligned to dlib's 150x150 template as the app aligns photos, \
             embedded by face_resnet.q8.bin and averaged per person; k-means++ (seed {}) with \
             {} clusters, clusters under {} people merged; correlations pooled within clusters",
            selection.first_letters.0,
            selection.first_letters.1,
            selection.excluded,
            embeddings.len(),
            people.len(),
            selection.photos_per_person,
            options.seed,
            options.clusters,
            options.min_members,
        );
        ImpostorModel::fit(&embeddings, options, &source)
    }

    /// Reads a model file.
    pub fn load_impostor_model(path: &Path) -> Result<ImpostorModel, ImpostorError> {
        let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
        ImpostorModel::from_json(&text)
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::{build_from_lfw, load_face, load_impostor_model, select_lfw_photos};

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs() -> Vec<Vec<f32>> {
        let mut rng = SeededRng::new(4);
        (0..60)
            .map(|i| {
                let centre = [0.0f32, 1.0, -1.0][i % 3];
                (0..4)
                    .map(|_| centre + rng.uniform(-0.1, 0.1) as f32)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn clusters_find_the_groups_and_respect_the_minimum() {
        let options = FitOptions {
            clusters: 3,
            min_members: 5,
            iterations: 20,
            seed: 1,
        };
        let model = ImpostorModel::fit(&blobs(), options, "test").unwrap();
        assert_eq!(model.clusters.len(), 3);
        assert!(model.clusters.iter().all(|c| c.members == 20));
        assert!(
            model
                .clusters
                .iter()
                .all(|c| c.std_dev.iter().all(|&s| s < 0.1))
        );
        let merged = ImpostorModel::fit(
            &blobs(),
            FitOptions {
                min_members: 25,
                ..options
            },
            "test",
        )
        .unwrap();
        assert!(
            merged.clusters.iter().all(|c| c.members >= 25),
            "{merged:?}"
        );
        let shares: f64 = merged.clusters.iter().map(|c| c.share).sum();
        assert!((shares - 1.0).abs() < 1e-9);
    }

    #[test]
    fn samples_are_reproducible_and_near_the_clusters() {
        let model = ImpostorModel::fit(
            &blobs(),
            FitOptions {
                clusters: 3,
                min_members: 5,
                iterations: 20,
                seed: 1,
            },
            "test",
        )
        .unwrap();
        let samples = model.sample(30, 5);
        assert_eq!(samples, model.sample(30, 5));
        assert_ne!(samples, model.sample(30, 6));
        for sample in &samples {
            let closest = model
                .clusters
                .iter()
                .map(|c| squared_distance(sample, &c.centroid))
                .fold(f64::INFINITY, f64::min);
            assert!(closest < 0.5, "{sample:?}");
        }
    }

    #[test]
    fn samples_vary_together_like_the_people_they_summarise() {
        // One group whose first two dimensions move together and whose third moves against
        // them.
        let mut rng = SeededRng::new(9);
        let people: Vec<Vec<f32>> = (0..400)
            .map(|_| {
                let shared = rng.uniform(-1.0, 1.0);
                let own = rng.uniform(-0.2, 0.2);
                vec![
                    (shared + own) as f32,
                    (shared - own) as f32,
                    (-shared) as f32,
                    rng.uniform(-1.0, 1.0) as f32,
                ]
            })
            .collect();
        let options = FitOptions {
            clusters: 1,
            min_members: 10,
            iterations: 5,
            seed: 3,
        };
        let model = ImpostorModel::fit(&people, options, "test").unwrap();
        let correlation = |points: &[Vec<f32>], a: usize, b: usize| {
            let n = points.len() as f64;
            let mean = |d: usize| points.iter().map(|p| f64::from(p[d])).sum::<f64>() / n;
            let (ma, mb) = (mean(a), mean(b));
            let cov = |x: usize, mx: f64, y: usize, my: f64| {
                points
                    .iter()
                    .map(|p| (f64::from(p[x]) - mx) * (f64::from(p[y]) - my))
                    .sum::<f64>()
                    / n
            };
            cov(a, ma, b, mb) / (cov(a, ma, a, ma) * cov(b, mb, b, mb)).sqrt()
        };
        let samples = model.sample(20_000, 1);
        for (a, b) in [(0, 1), (0, 2), (1, 3)] {
            let real = correlation(&people, a, b);
            let drawn = correlation(&samples, a, b);
            assert!((real - drawn).abs() < 0.05, "({a}, {b}): {real} vs {drawn}");
        }
        assert!(correlation(&samples, 0, 1) > 0.8);
        assert!(correlation(&samples, 0, 2) < -0.8);
    }

    #[test]
    fn json_round_trips_and_damage_is_refused() {
        let model = ImpostorModel::fit(
            &blobs(),
            FitOptions {
                clusters: 2,
                min_members: 5,
                iterations: 5,
                seed: 2,
            },
            "test",
        )
        .unwrap();
        assert_eq!(ImpostorModel::from_json(&model.to_json()).unwrap(), model);
        let mut broken = model.clone();
        broken.clusters[0].centroid.pop();
        assert!(ImpostorModel::from_json(&broken.to_json()).is_err());
        let mut broken = model.clone();
        broken.correlation_cholesky.pop();
        assert!(ImpostorModel::from_json(&broken.to_json()).is_err());
        assert!(matches!(
            ImpostorModel::fit(&blobs()[..3], FitOptions::default(), "x"),
            Err(ImpostorError::TooFewPeople { .. })
        ));
    }

    #[test]
    fn the_centre_crop_takes_the_middle_130_of_250() {
        let mut pixels = vec![0u8; 250 * 250 * 3];
        // A white square exactly over the crop region.
        for y in 60..190 {
            for x in 60..190 {
                let i = (y * 250 + x) * 3;
                pixels[i..i + 3].copy_from_slice(&[255, 255, 255]);
            }
        }
        let frame = Frame::new(250, 250, pixels).unwrap();
        let crop = centre_face_crop(&frame, 150);
        assert_eq!((crop.width(), crop.height()), (150, 150));
        // Inside the crop only white is sampled; the outermost pixel's bilinear footprint
        // reaches the black half a source pixel beyond the square.
        for y in 1..149 {
            for x in 1..149 {
                assert_eq!(crop.pixel(x, y), [255, 255, 255], "({x}, {y})");
            }
        }
        assert!(crop.pixel(0, 75)[0] > 200);
    }
}
