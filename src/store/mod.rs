//! Storage: every photo, model, checkpoint, training run and setting, behind one async trait.
//!
//! - [`Store`] is the contract. Natively there are [`MemoryStore`] and [`DirStore`]; the
//!   browser's store is [`IndexedStore`] on IndexedDB (its primitives in `web`); [`contract`]
//!   is the test suite all of them pass.
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
pub mod detached;
#[cfg(not(target_arch = "wasm32"))]
mod dir;
mod error;
mod fault;
pub mod indexed;
mod memory;
pub mod query;
pub mod schema;
mod types;
pub mod validate;

pub use dataset::{
    Catalog, Change, StoreContents, check_checkpoint_record, check_contents, check_image_record,
    check_model_record, check_profile_record, check_run_record, check_settings,
};
#[cfg(not(target_arch = "wasm32"))]
pub use dir::{DirStore, MANIFEST_FILE};
pub use error::{Access, StorageEstimate, StorageFailure, StoreError, format_bytes};
pub use fault::FaultInjector;
pub use indexed::{IndexedDatabase, IndexedStore, IndexedTransaction};
pub use memory::MemoryStore;
pub use query::{FromRecord, Query, Record};
pub use schema::{SCHEMA_VERSION, SchemaVersion};
pub use types::*;
use validate::ImageLimits;

/// Where the app keeps its data. Each method is one transaction: on error nothing changed.
///
/// A backend implements the three primitives it really differs in: [`Store::read`] answers a
/// [`Query`], [`Store::write`] plans against the stored [`Catalog`] and applies the plan
/// atomically, [`Store::usage`] counts bytes. Everything else is written once, here, over
/// them; every store keeps photos within the same [`ImageLimits`].
///
/// Lists are ordered: images and models oldest first, runs by start time, profiles by id
/// (ties by id), so every implementation returns the same sequence.
#[allow(async_fn_in_trait)]
pub trait Store {
    // Primitives ----------------------------------------------------------------------------

    /// The records `query` names, read in one transaction, in any order.
    async fn read(&self, query: Query<'_>) -> Result<Vec<Record>, StoreError>;

    /// One write transaction: reads the catalogue, asks `plan` for the changes, applies them
    /// all or none. Whether anything was written.
    async fn write(
        &self,
        plan: impl FnOnce(&Catalog) -> Result<Vec<Change>, StoreError>,
    ) -> Result<bool, StoreError>;

    async fn usage(&self) -> Result<StorageUsage, StoreError>;

    // Profiles ------------------------------------------------------------------------------

    /// Creates or renames a profile.
    async fn put_profile(&self, profile: &Profile) -> Result<(), StoreError> {
        self.apply(|_| dataset::plan_put_profile(profile)).await
    }
    async fn list_profiles(&self) -> Result<Vec<Profile>, StoreError> {
        let mut profiles: Vec<Profile> = self.read_all(Query::Profiles).await?;
        // IndexedDB orders keys by UTF-16 units; the other stores by bytes.
        profiles.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(profiles)
    }
    /// Deletes a profile with all its photos, models, runs and checkpoint. `false` when there
    /// was no such profile.
    async fn delete_profile(&self, id: &str) -> Result<bool, StoreError> {
        self.write(|catalog| Ok(dataset::plan_delete_profile(catalog, id)))
            .await
    }

    // Images --------------------------------------------------------------------------------

    /// Stores one photo (one capture = one transaction).
    async fn put_image(&self, image: &StoredImage) -> Result<(), StoreError> {
        self.put_images(std::slice::from_ref(image)).await
    }
    /// Stores a batch of photos all or nothing (one import = one transaction). A photo with
    /// an existing id replaces it.
    async fn put_images(&self, images: &[StoredImage]) -> Result<(), StoreError> {
        let limits = ImageLimits::default();
        self.apply(|catalog| dataset::plan_put_images(catalog, images, &limits))
            .await
    }
    async fn get_image(&self, id: &str) -> Result<Option<StoredImage>, StoreError> {
        self.read_one(Query::Image(id)).await
    }
    /// Photos of a profile, of one role or all, oldest first.
    async fn list_images(
        &self,
        profile: &str,
        role: Option<ImageRole>,
    ) -> Result<Vec<StoredImage>, StoreError> {
        let images = self.read_all(Query::Images { profile, role }).await?;
        Ok(oldest_first(images, |i| (i.meta.created, &i.meta.id)))
    }
    async fn delete_image(&self, id: &str) -> Result<bool, StoreError> {
        self.write(|catalog| Ok(dataset::plan_delete_image(catalog, id)))
            .await
    }

    // Models --------------------------------------------------------------------------------

    /// Models of a profile without their weights, oldest first.
    async fn list_models(&self, profile: &str) -> Result<Vec<ModelSummary>, StoreError> {
        let models = self.read_all(Query::ModelSummaries(profile)).await?;
        Ok(oldest_first(models, |m| (m.meta.created, &m.meta.id)))
    }
    async fn active_model_id(&self, profile: &str) -> Result<Option<ModelId>, StoreError> {
        let records = self.read(Query::ActiveModelId(profile)).await?;
        Ok(records.into_iter().find_map(|record| match record {
            Record::ActiveModel { model_id, .. } => Some(model_id),
            _ => None,
        }))
    }
    /// The profile's active model with its weights.
    async fn active_model(&self, profile: &str) -> Result<Option<StoredModel>, StoreError> {
        self.read_one(Query::ActiveModel(profile)).await
    }
    /// Saves a freshly trained or imported model, makes it the profile's active one and
    /// deletes the profile's earlier models, in one transaction: on any failure the previous
    /// model stays active and whole. Only the active model is ever used, so retraining does
    /// not fill the storage.
    async fn replace_active_model(&self, model: &StoredModel) -> Result<(), StoreError> {
        self.apply(|catalog| dataset::plan_replace_active_model(catalog, model))
            .await
    }

    // Checkpoints ---------------------------------------------------------------------------

    /// Replaces the profile's checkpoint (only the latest is kept).
    async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        self.apply(|catalog| dataset::plan_put_checkpoint(catalog, checkpoint))
            .await
    }
    async fn latest_checkpoint(&self, profile: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.read_one(Query::Checkpoint(profile)).await
    }

    // Runs ----------------------------------------------------------------------------------

    /// Creates or replaces a run (training rewrites it after every epoch).
    async fn put_run(&self, run: &TrainingRun) -> Result<(), StoreError> {
        self.apply(|catalog| dataset::plan_put_run(catalog, run))
            .await
    }
    async fn get_run(&self, id: &str) -> Result<Option<TrainingRun>, StoreError> {
        self.read_one(Query::Run(id)).await
    }
    async fn list_runs(&self, profile: &str) -> Result<Vec<TrainingRun>, StoreError> {
        let runs = self.read_all(Query::Runs(profile)).await?;
        Ok(oldest_first(runs, |r| (r.started, &r.id)))
    }
    /// Closes a finished training run in one transaction: its model replaces the profile's
    /// (as [`Store::replace_active_model`] does), the run is saved as it ended, and the
    /// profile's checkpoint, no longer needed, is deleted. A reload never finds a finished run
    /// still offered for resuming, nor a checkpoint beside the model it became.
    async fn finish_run(&self, model: &StoredModel, run: &TrainingRun) -> Result<(), StoreError> {
        self.apply(|catalog| {
            let mut changes = dataset::plan_replace_active_model(catalog, model)?;
            changes.extend(dataset::plan_put_run(catalog, run)?);
            changes.extend(dataset::plan_delete_checkpoint(catalog, &run.profile_id));
            Ok(changes)
        })
        .await
    }

    // Settings ------------------------------------------------------------------------------

    /// The saved settings, or the defaults when none were saved.
    async fn settings(&self) -> Result<Settings, StoreError> {
        Ok(self.read_one(Query::Settings).await?.unwrap_or_default())
    }
    async fn put_settings(&self, settings: &Settings) -> Result<(), StoreError> {
        self.apply(|_| dataset::plan_put_settings(settings)).await
    }

    // Whole store ---------------------------------------------------------------------------

    /// Deletes everything ("Delete all my data").
    async fn clear_all(&self) -> Result<(), StoreError> {
        self.write(|_| Ok(vec![Change::ClearAll])).await.map(drop)
    }
    /// Reads everything in one transaction (for export).
    async fn export_contents(&self) -> Result<StoreContents, StoreError> {
        Ok(StoreContents::from_records(
            self.read(Query::Everything).await?,
        ))
    }
    /// Writes a whole data set in one transaction (for import): all of it or none of it.
    async fn import_contents(
        &self,
        contents: &StoreContents,
        mode: ImportMode,
    ) -> Result<(), StoreError> {
        let limits = ImageLimits::default();
        self.apply(|catalog| dataset::plan_import(catalog, contents, mode, &limits))
            .await
    }

    // Reading typed records and writing plans ------------------------------------------------

    /// One write transaction whose caller does not ask whether anything changed.
    async fn apply(
        &self,
        plan: impl FnOnce(&Catalog) -> Result<Vec<Change>, StoreError>,
    ) -> Result<(), StoreError> {
        self.write(plan).await.map(drop)
    }

    /// The records of type `T` that `query` returns.
    async fn read_all<T: FromRecord>(&self, query: Query<'_>) -> Result<Vec<T>, StoreError> {
        Ok(query::narrow(self.read(query).await?))
    }
    /// The record of type `T` that `query` returns, if any.
    async fn read_one<T: FromRecord>(&self, query: Query<'_>) -> Result<Option<T>, StoreError> {
        Ok(self.read_all(query).await?.into_iter().next())
    }
}

/// `records` ordered by time, ties by id: what every store lists, whatever order it read in.
fn oldest_first<T>(mut records: Vec<T>, key: impl Fn(&T) -> (Millis, &String)) -> Vec<T> {
    records.sort_by(|a, b| key(a).cmp(&key(b)));
    records
}

/// SHA-256 of `bytes` as lowercase hex: names payload files, checks archive entries, and
/// identifies the network a stored descriptor came from.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
