//! Storage: every photo, model, checkpoint, training run and setting, behind one async trait.
//!
//! - [`Store`] is the contract. The browser implements it on IndexedDB (in `web`), natively
//!   there are [`MemoryStore`] and [`DirStore`]; [`contract`] is the test suite all of them
//!   pass.
//! - Every method is one transaction: it either happens whole or not at all. Operations are
//!   planned first (records checked, references resolved) and written after, so a bad record
//!   in a batch fails the batch before anything is written.
//! - The trait is async without `Send` bounds because IndexedDB is async and single-threaded.
//! - [`schema`] holds the version number and the migrations as data; [`archive`] exports and
//!   imports everything as one tar file; [`validate`] refuses hostile photos, models and
//!   archives.

pub mod archive;
pub mod contract;
pub mod dataset;
#[cfg(not(target_arch = "wasm32"))]
mod dir;
mod error;
pub mod exact_json;
mod fault;
mod memory;
pub mod schema;
mod types;
pub mod validate;

pub use dataset::{
    Change, StoreContents, check_checkpoint_record, check_contents, check_image_record,
    check_model_record, check_profile_record, check_run_record, check_settings,
};
#[cfg(not(target_arch = "wasm32"))]
pub use dir::{DirStore, LEGACY_V1_FILE, MANIFEST_FILE};
pub use error::{StoreError, format_bytes};
pub use fault::FaultInjector;
pub use memory::MemoryStore;
pub use schema::{SCHEMA_VERSION, SchemaVersion};
pub use types::*;

/// Where the app keeps its data. Each method is one transaction: on error nothing changed.
///
/// Lists are ordered: images and models oldest first, runs by start time, profiles by id
/// (ties by id), so every implementation returns the same sequence.
#[allow(async_fn_in_trait)]
pub trait Store {
    // Profiles ------------------------------------------------------------------------------

    /// Creates or renames a profile.
    async fn put_profile(&self, profile: &Profile) -> Result<(), StoreError>;
    async fn get_profile(&self, id: &str) -> Result<Option<Profile>, StoreError>;
    async fn list_profiles(&self) -> Result<Vec<Profile>, StoreError>;
    /// Deletes a profile with all its photos, models, runs and checkpoint. `false` when there
    /// was no such profile.
    async fn delete_profile(&self, id: &str) -> Result<bool, StoreError>;

    // Images --------------------------------------------------------------------------------

    /// Stores one photo (one capture = one transaction).
    async fn put_image(&self, image: &StoredImage) -> Result<(), StoreError> {
        self.put_images(std::slice::from_ref(image)).await
    }
    /// Stores a batch of photos all or nothing (one import = one transaction). A photo with
    /// an existing id replaces it.
    async fn put_images(&self, images: &[StoredImage]) -> Result<(), StoreError>;
    async fn get_image(&self, id: &str) -> Result<Option<StoredImage>, StoreError>;
    /// Photos of a profile, of one role or all, oldest first.
    async fn list_images(
        &self,
        profile: &str,
        role: Option<ImageRole>,
    ) -> Result<Vec<StoredImage>, StoreError>;
    async fn delete_image(&self, id: &str) -> Result<bool, StoreError>;

    // Models --------------------------------------------------------------------------------

    /// Stores a model without activating it: write the new model first, then switch the
    /// pointer with `set_active_model`, so the active model is never half-written.
    async fn put_model(&self, model: &StoredModel) -> Result<(), StoreError>;
    async fn get_model(&self, id: &str) -> Result<Option<StoredModel>, StoreError>;
    /// Models of a profile without their weights, oldest first.
    async fn list_models(&self, profile: &str) -> Result<Vec<ModelSummary>, StoreError>;
    /// Points the profile at a stored model of that profile.
    async fn set_active_model(&self, profile: &str, model_id: &str) -> Result<(), StoreError>;
    async fn active_model_id(&self, profile: &str) -> Result<Option<ModelId>, StoreError>;
    /// Deletes a model; refused for a profile's active model.
    async fn delete_model(&self, id: &str) -> Result<bool, StoreError>;

    /// The profile's active model with its weights.
    async fn active_model(&self, profile: &str) -> Result<Option<StoredModel>, StoreError> {
        match self.active_model_id(profile).await? {
            Some(id) => self.get_model(&id).await,
            None => Ok(None),
        }
    }

    /// Saves a freshly trained model and makes it the active one: two transactions in that
    /// order, so a failure in between leaves the previous model active and whole.
    async fn save_and_activate_model(&self, model: &StoredModel) -> Result<(), StoreError> {
        self.put_model(model).await?;
        self.set_active_model(&model.profile_id, &model.id).await
    }

    // Checkpoints ---------------------------------------------------------------------------

    /// Replaces the profile's checkpoint (only the latest is kept).
    async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError>;
    async fn latest_checkpoint(&self, profile: &str) -> Result<Option<Checkpoint>, StoreError>;
    async fn delete_checkpoint(&self, profile: &str) -> Result<bool, StoreError>;

    // Runs ----------------------------------------------------------------------------------

    /// Creates or replaces a run (training rewrites it after every epoch).
    async fn put_run(&self, run: &TrainingRun) -> Result<(), StoreError>;
    async fn get_run(&self, id: &str) -> Result<Option<TrainingRun>, StoreError>;
    async fn list_runs(&self, profile: &str) -> Result<Vec<TrainingRun>, StoreError>;
    async fn delete_run(&self, id: &str) -> Result<bool, StoreError>;

    // Settings ------------------------------------------------------------------------------

    /// The saved settings, or the defaults when none were saved.
    async fn settings(&self) -> Result<Settings, StoreError>;
    async fn put_settings(&self, settings: &Settings) -> Result<(), StoreError>;

    // Whole store ---------------------------------------------------------------------------

    async fn usage(&self) -> Result<StorageUsage, StoreError>;
    /// Deletes everything ("Delete all my data").
    async fn clear_all(&self) -> Result<(), StoreError>;
    /// Reads everything in one transaction (for export).
    async fn export_contents(&self) -> Result<StoreContents, StoreError>;
    /// Writes a whole data set in one transaction (for import): all of it or none of it.
    async fn import_contents(
        &self,
        contents: &StoreContents,
        mode: ImportMode,
    ) -> Result<(), StoreError>;
}

/// Sorting shared by the implementations, so lists come out identical.
/// SHA-256 of `bytes` as lowercase hex: names payload files, checks archive entries, and
/// identifies the network a stored descriptor came from.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn sort_models(models: &mut [ModelSummary]) {
    models.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
}

pub(crate) fn sort_runs(runs: &mut [TrainingRun]) {
    runs.sort_by(|a, b| (a.started, &a.id).cmp(&(b.started, &b.id)));
}
