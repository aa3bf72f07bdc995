//! The records the store keeps (schema version 2). Every type is plain serde data so the same
//! shapes go to IndexedDB (through serde-wasm-bindgen), to `DirStore`'s manifest and into export
//! archives. Times are milliseconds since the Unix epoch passed in by the caller: the core never
//! reads a clock, so it stays deterministic and testable.

use serde::{Deserialize, Serialize};

/// Identifies a profile (one enrolled person). Chosen by the caller (e.g. a UUID).
pub type ProfileId = String;
/// Identifies a stored image. Chosen by the caller, unique across profiles.
pub type ImageId = String;
/// Identifies a stored model. Chosen by the caller, unique across profiles.
pub type ModelId = String;
/// Identifies a training run. Chosen by the caller, unique across profiles.
pub type RunId = String;

/// Milliseconds since the Unix epoch, supplied by the caller.
pub type Millis = u64;

/// A record the store keeps under a key of its own (IndexedDB's key path, `DirStore`'s manifest
/// and an archive's index use the same one).
pub trait Keyed {
    /// What messages call this kind of record ("photo", "training run").
    const KIND: &'static str;
    /// The key it is stored under: its id, or for a checkpoint its profile's.
    fn key(&self) -> &str;
}

macro_rules! keyed {
    ($($record:ty, $kind:literal, |$r:ident| $key:expr;)*) => {$(
        impl Keyed for $record {
            const KIND: &'static str = $kind;
            fn key(&self) -> &str {
                let $r = self;
                &$key
            }
        }
    )*};
}

keyed! {
    Profile, "profile", |p| p.id;
    StoredImage, "photo", |i| i.meta.id;
    StoredModel, "model", |m| m.meta.id;
    Checkpoint, "checkpoint of profile", |c| c.meta.profile_id;
    TrainingRun, "training run", |r| r.id;
}

/// One enrolled person: each profile has its own images, models, runs and checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub id: ProfileId,
    pub name: String,
}

/// What an image is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageRole {
    /// The enrolled person, the reference side of a training pair.
    Anchor,
    /// The enrolled person again, the "same" side of a training pair.
    Positive,
    /// Someone else, the "different" side of a training pair.
    Negative,
    /// The N reference images a probe is compared against at verification time.
    Verification,
    /// A probe's face kept after a clear match, compared like a reference so the references
    /// follow the person's appearance; bounded in number, never trained on.
    Adaptive,
}

impl ImageRole {
    pub const ALL: [ImageRole; 5] = [
        ImageRole::Anchor,
        ImageRole::Positive,
        ImageRole::Negative,
        ImageRole::Verification,
        ImageRole::Adaptive,
    ];
}

/// Where an image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageSource {
    Camera,
    Import,
}

/// What is known of a photo besides its pixels: the part that lists show and that every store
/// keeps beside the payloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMeta {
    pub id: ImageId,
    pub profile_id: ProfileId,
    pub role: ImageRole,
    pub source: ImageSource,
    pub created: Millis,
    /// Width of the photo in pixels; checked against the image header when stored.
    pub width: u32,
    /// Height of the photo in pixels; checked against the image header when stored.
    pub height: u32,
}

/// A photo with its aligned face crop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredImage {
    #[serde(flatten)]
    pub meta: ImageMeta,
    /// The photo as JPEG or PNG. Byte fields are serde bytes: a `Uint8Array` across the JS
    /// boundary (one copy), a number array in JSON.
    #[serde(with = "serde_bytes")]
    pub encoded: Vec<u8>,
    /// The aligned face crop as JPEG or PNG, when a face was found and aligned.
    #[serde(default, with = "serde_bytes")]
    pub aligned_crop: Option<Vec<u8>>,
    /// The crop's face descriptor, kept so that loading a verifier or a fine-tune run reads
    /// numbers instead of running the descriptor network again. Derived data: never exported,
    /// and ignored when another version of the network made it. Stored as two flat fields,
    /// `descriptor_tower` and `descriptor` (the bytes), as IndexedDB has always held it.
    #[serde(flatten, with = "flat_descriptor")]
    pub descriptor: Option<ImageDescriptor>,
}

/// `StoredImage::descriptor` as the flat fields `descriptor_tower` and `descriptor`; a record
/// with either missing has no descriptor.
mod flat_descriptor {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::ImageDescriptor;

    #[derive(Serialize, Deserialize)]
    struct Flat {
        #[serde(rename = "descriptor_tower")]
        tower_sha256: String,
        #[serde(rename = "descriptor", with = "serde_bytes")]
        f32_le: Vec<u8>,
    }

    pub fn serialize<S: Serializer>(
        value: &Option<ImageDescriptor>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value
            .as_ref()
            .map(|d| Flat {
                tower_sha256: d.tower_sha256.clone(),
                f32_le: d.f32_le.clone(),
            })
            .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<ImageDescriptor>, D::Error> {
        let flat = Option::<Flat>::deserialize(deserializer)?;
        Ok(flat.map(|f| ImageDescriptor {
            tower_sha256: f.tower_sha256,
            f32_le: f.f32_le,
        }))
    }
}

/// A face descriptor and the network that computed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageDescriptor {
    /// SHA-256 (hex) of the descriptor network's weight file.
    pub tower_sha256: String,
    /// The values as little-endian `f32`s: bit-exact in every store, and one byte payload
    /// rather than a number per value across the JS boundary.
    #[serde(with = "serde_bytes")]
    pub f32_le: Vec<u8>,
}

impl ImageDescriptor {
    pub fn new(tower_sha256: &str, values: &[f32]) -> Self {
        Self {
            tower_sha256: tower_sha256.to_string(),
            f32_le: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// The values, when this descriptor was made by the network `tower_sha256` and has
    /// `dimension` finite values; `None` means "compute it again".
    pub fn values_for(&self, tower_sha256: &str, dimension: usize) -> Option<Vec<f32>> {
        if self.tower_sha256 != tower_sha256 || self.f32_le.len() != dimension * 4 {
            return None;
        }
        let values: Vec<f32> = self
            .f32_le
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        values.iter().all(|v| v.is_finite()).then_some(values)
    }
}

impl StoredImage {
    /// Bytes this image occupies in storage (payloads only).
    pub fn payload_bytes(&self) -> u64 {
        self.encoded.len() as u64
            + self.aligned_crop.as_ref().map_or(0, |c| c.len() as u64)
            + self
                .descriptor
                .as_ref()
                .map_or(0, |d| d.f32_le.len() as u64)
    }
}

/// What is known of a trained model besides its weights (models can be megabytes; lists do
/// not load them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    pub id: ModelId,
    pub profile_id: ProfileId,
    /// Which network the weights belong to (e.g. "siamese-l1"); must match the model file header.
    pub tower_kind: String,
    /// Version of the model file format; must match the model file header.
    pub format_version: u32,
    pub created: Millis,
    /// The settings the model was trained with (epochs, batch, mode, seed...), free-form.
    pub training_settings: serde_json::Value,
    /// Evaluation results (precision, recall, thresholds...), free-form.
    pub metrics: serde_json::Value,
}

/// A trained model. `bytes` is a model file (`validate::ModelFile`), checked when stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredModel {
    #[serde(flatten)]
    pub meta: ModelMeta,
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

impl StoredModel {
    /// The model without its weights: what lists show.
    pub fn summary(&self) -> ModelSummary {
        ModelSummary {
            meta: self.meta.clone(),
            byte_len: self.bytes.len() as u64,
        }
    }
}

/// A model as lists show it: its metadata and the size of its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    #[serde(flatten)]
    pub meta: ModelMeta,
    pub byte_len: u64,
}

/// What is known of a checkpoint besides its weights and optimiser state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub profile_id: ProfileId,
    pub run_id: RunId,
    /// The epoch this checkpoint was taken in (0-based).
    pub epoch: u32,
    /// Index of the next batch to train within `epoch`.
    pub position: u64,
    pub created: Millis,
    /// Anything else resuming needs (seed, shuffle state...), free-form.
    pub trainer_state: serde_json::Value,
}

/// Training state written every epoch so training resumes after a reload. One per profile:
/// a new checkpoint replaces the previous one (only the latest is useful and they are large).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    #[serde(flatten)]
    pub meta: CheckpointMeta,
    /// The model weights as a model file (`validate::ModelFile`).
    #[serde(with = "serde_bytes")]
    pub model_bytes: Vec<u8>,
    /// The optimiser state, opaque to the store.
    #[serde(with = "serde_bytes")]
    pub optimiser_bytes: Vec<u8>,
}

impl Checkpoint {
    pub fn payload_bytes(&self) -> u64 {
        (self.model_bytes.len() + self.optimiser_bytes.len()) as u64
    }
}

/// Training mode: fine-tune a pretrained embedding (default) or train the tutorial's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainingMode {
    #[default]
    #[serde(alias = "fine-tune", alias = "finetune")]
    FineTune,
    Classic,
}

/// How far a training run got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Finished,
    Cancelled,
    Failed,
}

/// One row of a run's history, for the plots. Metrics that were not measured are `None`;
/// values must be finite (JSON, and so IndexedDB exports, cannot hold NaN or infinity).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    pub epoch: u32,
    pub train_loss: f64,
    pub test_loss: Option<f64>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
}

/// A training run and its per-epoch history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRun {
    pub id: RunId,
    pub profile_id: ProfileId,
    pub mode: TrainingMode,
    pub started: Millis,
    pub status: RunStatus,
    /// Epochs, batch size, seed... free-form.
    pub settings: serde_json::Value,
    pub epochs: Vec<EpochStats>,
}

/// Which compute backend the worker should use (kept in the settings).
pub use crate::backend::BackendPreference;

/// App-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// A comparison with a reference is a detection when its score is above this.
    pub detection_threshold: f32,
    /// A probe is verified when the fraction of detections is above this.
    pub verification_threshold: f32,
    pub backend: BackendPreference,
    pub mode: TrainingMode,
    /// The false-accept rate per verification attempt that training calibrates for.
    #[serde(default = "default_attempt_far")]
    pub attempt_false_accept_rate: f64,
    /// Whether a clear match may join the references as an adaptive photo.
    #[serde(default)]
    pub adaptive_references: bool,
    /// Whether Verify asks for a liveness challenge first (a photo or a video cannot pass).
    #[serde(default = "liveness_by_default")]
    pub liveness_required: bool,
}

/// An authenticator that a photo unlocks is none: liveness is on unless turned off.
fn liveness_by_default() -> bool {
    true
}

fn default_attempt_far() -> f64 {
    crate::verify::attempts::DEFAULT_ATTEMPT_FAR
}

impl Default for Settings {
    /// The tutorial's defaults; training may suggest calibrated ones later.
    fn default() -> Self {
        Settings {
            detection_threshold: 0.5,
            verification_threshold: 0.5,
            backend: BackendPreference::Auto,
            mode: TrainingMode::FineTune,
            attempt_false_accept_rate: default_attempt_far(),
            adaptive_references: false,
            liveness_required: liveness_by_default(),
        }
    }
}

/// How an import combines with what is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// Add the incoming records; an incoming record replaces a stored one with the same id.
    /// Stored active-model pointers, checkpoints and settings win over incoming ones.
    Merge,
    /// Delete everything stored, then write the incoming records (in one transaction).
    Replace,
}

/// Bytes stored, by kind, so a full store can tell the user what to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StorageUsage {
    /// Photos and aligned crops.
    pub images: u64,
    pub models: u64,
    pub checkpoints: u64,
    /// Profiles, runs, settings and bookkeeping.
    pub other: u64,
}

impl StorageUsage {
    pub fn total(&self) -> u64 {
        self.images + self.models + self.checkpoints + self.other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn photo(descriptor: Option<ImageDescriptor>) -> StoredImage {
        StoredImage {
            meta: ImageMeta {
                id: "p1".into(),
                profile_id: "alice".into(),
                role: ImageRole::Anchor,
                source: ImageSource::Camera,
                created: 1,
                width: 2,
                height: 3,
            },
            encoded: vec![1, 2],
            aligned_crop: None,
            descriptor,
        }
    }

    /// IndexedDB holds photos in this shape; a change of it would lose stored descriptors.
    #[test]
    fn a_photo_keeps_its_descriptor_in_two_flat_fields() {
        let with = photo(Some(ImageDescriptor::new("tower", &[1.0])));
        let value = serde_json::to_value(&with).unwrap();
        assert_eq!(value["descriptor_tower"], json!("tower"));
        assert_eq!(value["descriptor"], json!([0, 0, 128, 63]));
        assert_eq!(serde_json::from_value::<StoredImage>(value).unwrap(), with);

        let without = serde_json::to_value(photo(None)).unwrap();
        assert!(without.get("descriptor").is_none());
        assert!(without.get("descriptor_tower").is_none());
        assert_eq!(
            serde_json::from_value::<StoredImage>(without).unwrap(),
            photo(None)
        );
    }
}
