//! `MemoryStore`: the store in memory, for tests and for a session without persistence.
//! A transaction applies its changes to a copy and swaps it in only when every write
//! succeeded and the result fits the quota, so a failure leaves the previous state whole.
//! Copying is O(data) per write: fine for tests and small data, not meant for gigabytes.

use std::cell::RefCell;

use super::dataset::{self, Change, StoreContents};
use super::schema::{RawDatabase, SCHEMA_VERSION};
use super::validate::ImageLimits;
use super::{
    Checkpoint, FaultInjector, ImageRole, ImportMode, ModelId, ModelSummary, Profile, Settings,
    StorageUsage, Store, StoreError, StoredImage, StoredModel, TrainingRun,
};

#[derive(Debug, Default)]
pub struct MemoryStore {
    contents: RefCell<StoreContents>,
    /// Byte limit (like the browser's quota); `None` is unlimited.
    quota: Option<u64>,
    faults: FaultInjector,
    image_limits: ImageLimits,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that refuses to grow past `bytes` (as `StorageUsage::total` counts them),
    /// with `StoreError::QuotaExceeded`, like a browser whose quota is used up.
    pub fn with_quota(bytes: u64) -> Self {
        MemoryStore {
            quota: Some(bytes),
            ..Self::default()
        }
    }

    /// Routes every write through `faults`, so a test can make the Nth one fail.
    pub fn with_faults(mut self, faults: FaultInjector) -> Self {
        self.faults = faults;
        self
    }

    pub fn with_image_limits(mut self, limits: ImageLimits) -> Self {
        self.image_limits = limits;
        self
    }

    /// Opens records written at any older schema version, migrating them.
    pub fn open_raw(raw: &RawDatabase) -> Result<Self, StoreError> {
        let contents = raw.migrate(SCHEMA_VERSION)?.into_contents()?;
        Ok(MemoryStore {
            contents: RefCell::new(contents),
            ..Self::default()
        })
    }

    /// One transaction: apply to a copy, check the quota, swap in.
    fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let before = self.contents.borrow();
        let mut next = before.clone();
        for change in changes {
            self.faults.before_write(change_name(&change))?;
            next.apply(change);
        }
        if let Some(limit) = self.quota {
            let used_before = before.usage().total();
            let used_after = next.usage().total();
            // Shrinking is always allowed, so a full store can still be cleaned up.
            if used_after > limit && used_after > used_before {
                return Err(StoreError::QuotaExceeded {
                    needed: used_after - used_before,
                    available: limit.saturating_sub(used_before),
                });
            }
        }
        drop(before);
        *self.contents.borrow_mut() = next;
        Ok(())
    }
}

pub(crate) fn change_name(change: &Change) -> &'static str {
    match change {
        Change::ClearAll => "clear all",
        Change::PutProfile(_) => "put profile",
        Change::DeleteProfile(_) => "delete profile",
        Change::PutImage(_) => "put photo",
        Change::DeleteImage(_) => "delete photo",
        Change::PutModel(_) => "put model",
        Change::DeleteModel(_) => "delete model",
        Change::SetActiveModel { .. } => "set active model",
        Change::ClearActiveModel(_) => "clear active model",
        Change::PutCheckpoint(_) => "put checkpoint",
        Change::DeleteCheckpoint(_) => "delete checkpoint",
        Change::PutRun(_) => "put run",
        Change::DeleteRun(_) => "delete run",
        Change::PutSettings(_) => "put settings",
    }
}

impl Store for MemoryStore {
    async fn put_profile(&self, profile: &Profile) -> Result<(), StoreError> {
        self.commit(dataset::plan_put_profile(profile)?)
    }

    async fn get_profile(&self, id: &str) -> Result<Option<Profile>, StoreError> {
        Ok(self.contents.borrow().profiles.get(id).cloned())
    }

    async fn list_profiles(&self) -> Result<Vec<Profile>, StoreError> {
        Ok(self.contents.borrow().profiles.values().cloned().collect())
    }

    async fn delete_profile(&self, id: &str) -> Result<bool, StoreError> {
        let changes = dataset::plan_delete_profile(&*self.contents.borrow(), id);
        let existed = !changes.is_empty();
        self.commit(changes)?;
        Ok(existed)
    }

    async fn put_images(&self, images: &[StoredImage]) -> Result<(), StoreError> {
        let changes =
            dataset::plan_put_images(&*self.contents.borrow(), images, &self.image_limits)?;
        self.commit(changes)
    }

    async fn get_image(&self, id: &str) -> Result<Option<StoredImage>, StoreError> {
        Ok(self.contents.borrow().images.get(id).cloned())
    }

    async fn list_images(
        &self,
        profile: &str,
        role: Option<ImageRole>,
    ) -> Result<Vec<StoredImage>, StoreError> {
        Ok(self.contents.borrow().images_of_profile(profile, role))
    }

    async fn delete_image(&self, id: &str) -> Result<bool, StoreError> {
        let changes = dataset::plan_delete_image(&*self.contents.borrow(), id);
        let existed = !changes.is_empty();
        self.commit(changes)?;
        Ok(existed)
    }

    async fn put_model(&self, model: &StoredModel) -> Result<(), StoreError> {
        let changes = dataset::plan_put_model(&*self.contents.borrow(), model)?;
        self.commit(changes)
    }

    async fn get_model(&self, id: &str) -> Result<Option<StoredModel>, StoreError> {
        Ok(self.contents.borrow().models.get(id).cloned())
    }

    async fn list_models(&self, profile: &str) -> Result<Vec<ModelSummary>, StoreError> {
        let mut models: Vec<ModelSummary> = self
            .contents
            .borrow()
            .models
            .values()
            .filter(|m| m.profile_id == profile)
            .map(StoredModel::summary)
            .collect();
        super::sort_models(&mut models);
        Ok(models)
    }

    async fn set_active_model(&self, profile: &str, model_id: &str) -> Result<(), StoreError> {
        let changes = dataset::plan_set_active_model(&*self.contents.borrow(), profile, model_id)?;
        self.commit(changes)
    }

    async fn active_model_id(&self, profile: &str) -> Result<Option<ModelId>, StoreError> {
        Ok(self.contents.borrow().active_models.get(profile).cloned())
    }

    async fn delete_model(&self, id: &str) -> Result<bool, StoreError> {
        let changes = dataset::plan_delete_model(&*self.contents.borrow(), id)?;
        let existed = !changes.is_empty();
        self.commit(changes)?;
        Ok(existed)
    }

    async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let changes = dataset::plan_put_checkpoint(&*self.contents.borrow(), checkpoint)?;
        self.commit(changes)
    }

    async fn latest_checkpoint(&self, profile: &str) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.contents.borrow().checkpoints.get(profile).cloned())
    }

    async fn delete_checkpoint(&self, profile: &str) -> Result<bool, StoreError> {
        let changes = dataset::plan_delete_checkpoint(&*self.contents.borrow(), profile);
        let existed = !changes.is_empty();
        self.commit(changes)?;
        Ok(existed)
    }

    async fn put_run(&self, run: &TrainingRun) -> Result<(), StoreError> {
        let changes = dataset::plan_put_run(&*self.contents.borrow(), run)?;
        self.commit(changes)
    }

    async fn get_run(&self, id: &str) -> Result<Option<TrainingRun>, StoreError> {
        Ok(self.contents.borrow().runs.get(id).cloned())
    }

    async fn list_runs(&self, profile: &str) -> Result<Vec<TrainingRun>, StoreError> {
        let mut runs: Vec<TrainingRun> = self
            .contents
            .borrow()
            .runs
            .values()
            .filter(|r| r.profile_id == profile)
            .cloned()
            .collect();
        super::sort_runs(&mut runs);
        Ok(runs)
    }

    async fn delete_run(&self, id: &str) -> Result<bool, StoreError> {
        let changes = dataset::plan_delete_run(&*self.contents.borrow(), id);
        let existed = !changes.is_empty();
        self.commit(changes)?;
        Ok(existed)
    }

    async fn settings(&self) -> Result<Settings, StoreError> {
        Ok(self.contents.borrow().settings.unwrap_or_default())
    }

    async fn put_settings(&self, settings: &Settings) -> Result<(), StoreError> {
        self.commit(dataset::plan_put_settings(settings)?)
    }

    async fn usage(&self) -> Result<StorageUsage, StoreError> {
        Ok(self.contents.borrow().usage())
    }

    async fn clear_all(&self) -> Result<(), StoreError> {
        self.commit(vec![Change::ClearAll])
    }

    async fn export_contents(&self) -> Result<StoreContents, StoreError> {
        Ok(self.contents.borrow().clone())
    }

    async fn import_contents(
        &self,
        contents: &StoreContents,
        mode: ImportMode,
    ) -> Result<(), StoreError> {
        let changes =
            dataset::plan_import(&*self.contents.borrow(), contents, mode, &self.image_limits)?;
        self.commit(changes)
    }
}
