//! The rules every store shares. An operation is first *planned* against what is stored
//! (records checked, references resolved, nothing written) into a list of `Change`s; the
//! store then applies the whole list as one transaction. Planning before writing is what lets
//! a batch fail cleanly: a bad photo in the middle of an import is found before the first
//! write.
//!
//! The record checks (`check_*`) are public so the IndexedDB implementation can run them
//! before it opens its transaction.

use std::collections::{BTreeMap, BTreeSet};

use super::StoreError;
use super::types::{
    Checkpoint, ImageRole, Keyed, ModelId, Profile, ProfileId, Settings, StorageUsage, StoredImage,
    StoredModel, TrainingRun,
};
use super::validate::{self, ImageLimits};

/// Everything a store holds, as plain data: what export reads and import writes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoreContents {
    pub profiles: BTreeMap<ProfileId, Profile>,
    pub images: BTreeMap<String, StoredImage>,
    pub models: BTreeMap<ModelId, StoredModel>,
    /// The model each profile verifies with.
    pub active_models: BTreeMap<ProfileId, ModelId>,
    /// The latest checkpoint of each profile.
    pub checkpoints: BTreeMap<ProfileId, Checkpoint>,
    pub runs: BTreeMap<String, TrainingRun>,
    /// `None` until settings were first saved (the defaults apply).
    pub settings: Option<Settings>,
}

/// One write inside a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    ClearAll,
    PutProfile(Profile),
    DeleteProfile(ProfileId),
    PutImage(StoredImage),
    DeleteImage(String),
    PutModel(StoredModel),
    DeleteModel(ModelId),
    SetActiveModel {
        profile_id: ProfileId,
        model_id: ModelId,
    },
    ClearActiveModel(ProfileId),
    PutCheckpoint(Checkpoint),
    DeleteCheckpoint(ProfileId),
    PutRun(TrainingRun),
    DeleteRun(String),
    PutSettings(Settings),
}

impl Change {
    /// What the change does, for the fault injector's messages.
    pub fn name(&self) -> &'static str {
        match self {
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

    /// Bytes this change adds, for a quota message: payloads exactly, small records by their
    /// JSON size (as `StoreContents::usage` counts them).
    pub fn bytes_added(&self) -> u64 {
        match self {
            Change::PutImage(i) => i.payload_bytes(),
            Change::PutModel(m) => m.bytes.len() as u64,
            Change::PutCheckpoint(c) => c.payload_bytes(),
            Change::PutProfile(p) => json_len(p),
            Change::PutRun(r) => json_len(r),
            Change::PutSettings(s) => json_len(s),
            _ => 0,
        }
    }
}

/// What planning needs to know about the stored records: keys and references, no payloads.
/// Each store builds it inside the write's own transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub profiles: BTreeSet<ProfileId>,
    /// Photo id → its profile.
    pub images: BTreeMap<String, ProfileId>,
    /// Model id → its profile.
    pub models: BTreeMap<ModelId, ProfileId>,
    pub active_models: BTreeMap<ProfileId, ModelId>,
    /// Profiles with a checkpoint.
    pub checkpoints: BTreeSet<ProfileId>,
    /// Run id → its profile.
    pub runs: BTreeMap<String, ProfileId>,
    pub has_settings: bool,
}

impl Catalog {
    fn has_profile(&self, id: &str) -> bool {
        self.profiles.contains(id)
    }
    fn model_profile(&self, id: &str) -> Option<&str> {
        self.models.get(id).map(String::as_str)
    }
    fn active_model(&self, profile: &str) -> Option<&str> {
        self.active_models.get(profile).map(String::as_str)
    }
}

/// Stores `record` under its key, replacing what was there.
fn put<T: Keyed>(records: &mut BTreeMap<String, T>, record: T) {
    records.insert(record.key().to_owned(), record);
}

fn remove<T>(records: &mut BTreeMap<String, T>, key: &str) {
    records.remove(key);
}

/// The keys of `map` whose owning profile is `profile`.
fn owned_by(map: &BTreeMap<String, ProfileId>, profile: &str) -> Vec<String> {
    map.iter()
        .filter(|(_, owner)| *owner == profile)
        .map(|(key, _)| key.clone())
        .collect()
}

impl StoreContents {
    /// The keys and references planning needs.
    pub fn catalog(&self) -> Catalog {
        fn owners<T>(
            map: &BTreeMap<String, T>,
            owner: impl Fn(&T) -> &str,
        ) -> BTreeMap<String, String> {
            map.iter()
                .map(|(key, value)| (key.clone(), owner(value).to_owned()))
                .collect()
        }
        Catalog {
            profiles: self.profiles.keys().cloned().collect(),
            images: owners(&self.images, |i| &i.meta.profile_id),
            models: owners(&self.models, |m| &m.meta.profile_id),
            active_models: self.active_models.clone(),
            checkpoints: self.checkpoints.keys().cloned().collect(),
            runs: owners(&self.runs, |r| &r.profile_id),
            has_settings: self.settings.is_some(),
        }
    }

    /// Applies one planned change. Infallible: planning already checked everything.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::ClearAll => *self = StoreContents::default(),
            Change::PutProfile(p) => put(&mut self.profiles, p),
            Change::DeleteProfile(id) => remove(&mut self.profiles, &id),
            Change::PutImage(i) => put(&mut self.images, i),
            Change::DeleteImage(id) => remove(&mut self.images, &id),
            Change::PutModel(m) => put(&mut self.models, m),
            Change::DeleteModel(id) => remove(&mut self.models, &id),
            Change::SetActiveModel {
                profile_id,
                model_id,
            } => {
                self.active_models.insert(profile_id, model_id);
            }
            Change::ClearActiveModel(profile) => remove(&mut self.active_models, &profile),
            Change::PutCheckpoint(c) => put(&mut self.checkpoints, c),
            Change::DeleteCheckpoint(profile) => remove(&mut self.checkpoints, &profile),
            Change::PutRun(r) => put(&mut self.runs, r),
            Change::DeleteRun(id) => remove(&mut self.runs, &id),
            Change::PutSettings(s) => self.settings = Some(s),
        }
    }

    /// Bytes held, by kind. Payloads are counted exactly; small records by their JSON size.
    pub fn usage(&self) -> StorageUsage {
        StorageUsage {
            images: self.images.values().map(StoredImage::payload_bytes).sum(),
            models: self.models.values().map(|m| m.bytes.len() as u64).sum(),
            checkpoints: self
                .checkpoints
                .values()
                .map(Checkpoint::payload_bytes)
                .sum(),
            other: json_len(&self.profiles)
                + json_len(&self.runs)
                + json_len(&self.active_models)
                + json_len(&self.settings),
        }
    }

    /// Images of a profile, optionally of one role, oldest first (ties by id).
    pub fn images_of_profile(&self, profile: &str, role: Option<ImageRole>) -> Vec<StoredImage> {
        let mut images: Vec<StoredImage> = self
            .images
            .values()
            .filter(|i| i.meta.profile_id == profile && role.is_none_or(|r| i.meta.role == r))
            .cloned()
            .collect();
        images.sort_by(|a, b| (a.meta.created, &a.meta.id).cmp(&(b.meta.created, &b.meta.id)));
        images
    }
}

/// JSON size of a small record, for usage accounting.
fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> u64 {
    serde_json::to_vec(value).map_or(0, |v| v.len() as u64)
}

// ---------------------------------------------------------------------------------------------
// Record checks

fn invalid(kind: &'static str, id: &str, reason: impl Into<String>) -> StoreError {
    StoreError::InvalidRecord {
        kind,
        id: id.to_owned(),
        reason: reason.into(),
    }
}

fn check_id(kind: &'static str, id: &str) -> Result<(), StoreError> {
    if id.trim().is_empty() {
        return Err(invalid(kind, id, "its id is empty"));
    }
    if id.len() > 200 {
        return Err(invalid(kind, id, "its id is longer than 200 characters"));
    }
    Ok(())
}

pub fn check_profile_record(profile: &Profile) -> Result<(), StoreError> {
    check_id("profile", &profile.id)?;
    if profile.name.trim().is_empty() {
        return Err(invalid("profile", &profile.id, "its name is empty"));
    }
    Ok(())
}

/// A photo must be a complete JPEG or PNG of the size its record claims; so must its crop.
pub fn check_image_record(image: &StoredImage, limits: &ImageLimits) -> Result<(), StoreError> {
    check_id("photo", &image.meta.id)?;
    let reject = |reason| StoreError::InvalidImage {
        image_id: image.meta.id.clone(),
        reason,
    };
    validate::validate_image_with_size(&image.encoded, image.meta.width, image.meta.height, limits)
        .map_err(reject)?;
    if let Some(crop) = &image.aligned_crop {
        validate::validate_image(crop, limits).map_err(reject)?;
    }
    Ok(())
}

pub fn check_model_record(model: &StoredModel) -> Result<(), StoreError> {
    check_id("model", &model.meta.id)?;
    validate::check_model_bytes(
        &model.bytes,
        &model.meta.tower_kind,
        model.meta.format_version,
    )
    .map_err(|reason| StoreError::InvalidModel {
        model_id: model.meta.id.clone(),
        reason,
    })?;
    Ok(())
}

pub fn check_checkpoint_record(checkpoint: &Checkpoint) -> Result<(), StoreError> {
    check_id("training run", &checkpoint.meta.run_id)?;
    validate::parse_model_header(&checkpoint.model_bytes).map_err(|reason| {
        invalid(
            "checkpoint",
            &checkpoint.meta.profile_id,
            format!("its model is not valid: {reason}"),
        )
    })?;
    Ok(())
}

pub fn check_run_record(run: &TrainingRun) -> Result<(), StoreError> {
    check_id("training run", &run.id)?;
    for row in &run.epochs {
        let values = [
            Some(row.train_loss),
            row.test_loss,
            row.precision,
            row.recall,
        ];
        if values.iter().flatten().any(|v| !v.is_finite()) {
            return Err(invalid(
                "training run",
                &run.id,
                format!(
                    "epoch {} has a value that is not a finite number (record an unmeasured \
                     metric as none)",
                    row.epoch
                ),
            ));
        }
    }
    Ok(())
}

pub fn check_settings(settings: &Settings) -> Result<(), StoreError> {
    for (name, value) in [
        ("detection threshold", settings.detection_threshold),
        ("verification threshold", settings.verification_threshold),
    ] {
        if !(0.0..=1.0).contains(&value) {
            return Err(invalid(
                "settings",
                "settings",
                format!("the {name} must be between 0 and 1, not {value}"),
            ));
        }
    }
    let rate = settings.attempt_false_accept_rate;
    if !(rate > 0.0 && rate < 1.0) {
        return Err(invalid(
            "settings",
            "settings",
            format!("the false-accept rate per attempt must be above 0 and below 1, not {rate}"),
        ));
    }
    Ok(())
}

fn require_profile(catalog: &Catalog, profile: &str) -> Result<(), StoreError> {
    if catalog.has_profile(profile) {
        Ok(())
    } else {
        Err(StoreError::UnknownProfile {
            profile: profile.to_owned(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Planning

pub fn plan_put_profile(profile: &Profile) -> Result<Vec<Change>, StoreError> {
    check_profile_record(profile)?;
    Ok(vec![Change::PutProfile(profile.clone())])
}

/// Deleting a profile deletes everything that belongs to it, in the same transaction.
pub fn plan_delete_profile(catalog: &Catalog, profile: &str) -> Vec<Change> {
    if !catalog.has_profile(profile) {
        return Vec::new();
    }
    let mut changes: Vec<Change> = owned_by(&catalog.images, profile)
        .into_iter()
        .map(Change::DeleteImage)
        .collect();
    changes.push(Change::ClearActiveModel(profile.to_owned()));
    changes.extend(
        owned_by(&catalog.models, profile)
            .into_iter()
            .map(Change::DeleteModel),
    );
    changes.extend(
        owned_by(&catalog.runs, profile)
            .into_iter()
            .map(Change::DeleteRun),
    );
    changes.push(Change::DeleteCheckpoint(profile.to_owned()));
    changes.push(Change::DeleteProfile(profile.to_owned()));
    changes
}

pub fn plan_put_images(
    catalog: &Catalog,
    images: &[StoredImage],
    limits: &ImageLimits,
) -> Result<Vec<Change>, StoreError> {
    if let Some(id) = first_duplicate(images.iter().map(|i| i.meta.id.as_str())) {
        return Err(invalid("photo", id, "the batch holds it twice"));
    }
    for image in images {
        require_profile(catalog, &image.meta.profile_id)?;
        check_image_record(image, limits)?;
    }
    Ok(images.iter().cloned().map(Change::PutImage).collect())
}

/// `change` when there is something to delete; deleting what is not there changes nothing.
fn deletion(present: bool, change: Change) -> Vec<Change> {
    present.then_some(change).into_iter().collect()
}

pub fn plan_delete_image(catalog: &Catalog, id: &str) -> Vec<Change> {
    deletion(
        catalog.images.contains_key(id),
        Change::DeleteImage(id.to_owned()),
    )
}

pub fn plan_put_model(catalog: &Catalog, model: &StoredModel) -> Result<Vec<Change>, StoreError> {
    require_profile(catalog, &model.meta.profile_id)?;
    check_model_record(model)?;
    if let Some(owner) = catalog.model_profile(&model.meta.id)
        && owner != model.meta.profile_id
        && catalog.active_model(owner) == Some(model.meta.id.as_str())
    {
        return Err(StoreError::ActiveModelInUse {
            model_id: model.meta.id.clone(),
            profile: owner.to_owned(),
        });
    }
    Ok(vec![Change::PutModel(model.clone())])
}

/// The model, its activation, and the deletion of the profile's other models.
pub fn plan_replace_active_model(
    catalog: &Catalog,
    model: &StoredModel,
) -> Result<Vec<Change>, StoreError> {
    let profile = &model.meta.profile_id;
    let mut changes = plan_put_model(catalog, model)?;
    changes.push(Change::SetActiveModel {
        profile_id: profile.clone(),
        model_id: model.meta.id.clone(),
    });
    let earlier = owned_by(&catalog.models, profile).into_iter();
    changes.extend(
        earlier
            .filter(|id| *id != model.meta.id)
            .map(Change::DeleteModel),
    );
    Ok(changes)
}

pub fn plan_put_checkpoint(
    catalog: &Catalog,
    checkpoint: &Checkpoint,
) -> Result<Vec<Change>, StoreError> {
    require_profile(catalog, &checkpoint.meta.profile_id)?;
    check_checkpoint_record(checkpoint)?;
    Ok(vec![Change::PutCheckpoint(checkpoint.clone())])
}

pub fn plan_delete_checkpoint(catalog: &Catalog, profile: &str) -> Vec<Change> {
    deletion(
        catalog.checkpoints.contains(profile),
        Change::DeleteCheckpoint(profile.to_owned()),
    )
}

pub fn plan_put_run(catalog: &Catalog, run: &TrainingRun) -> Result<Vec<Change>, StoreError> {
    require_profile(catalog, &run.profile_id)?;
    check_run_record(run)?;
    Ok(vec![Change::PutRun(run.clone())])
}

pub fn plan_put_settings(settings: &Settings) -> Result<Vec<Change>, StoreError> {
    check_settings(settings)?;
    Ok(vec![Change::PutSettings(*settings)])
}

/// Checks that incoming contents hold together on their own (plus, when merging, with what
/// is stored): every record valid, every reference resolvable.
pub fn check_contents(
    incoming: &StoreContents,
    stored_profiles: &dyn Fn(&str) -> bool,
    limits: &ImageLimits,
) -> Result<(), StoreError> {
    let has_profile = |id: &str| incoming.profiles.contains_key(id) || stored_profiles(id);
    let require = |id: &str| {
        if has_profile(id) {
            Ok(())
        } else {
            Err(StoreError::UnknownProfile {
                profile: id.to_owned(),
            })
        }
    };
    for (key, profile) in &incoming.profiles {
        check_key("profile", key, &profile.id)?;
        check_profile_record(profile)?;
    }
    for (key, image) in &incoming.images {
        check_key("photo", key, &image.meta.id)?;
        require(&image.meta.profile_id)?;
        check_image_record(image, limits)?;
    }
    for (key, model) in &incoming.models {
        check_key("model", key, &model.meta.id)?;
        require(&model.meta.profile_id)?;
        check_model_record(model)?;
    }
    for (profile, model_id) in &incoming.active_models {
        require(profile)?;
        match incoming.models.get(model_id) {
            Some(m) if &m.meta.profile_id == profile => {}
            _ => {
                return Err(invalid(
                    "active model",
                    model_id,
                    format!("profile '{profile}' points at a model that is not in the data"),
                ));
            }
        }
    }
    for (profile, checkpoint) in &incoming.checkpoints {
        check_key("checkpoint", profile, &checkpoint.meta.profile_id)?;
        require(profile)?;
        check_checkpoint_record(checkpoint)?;
    }
    for (key, run) in &incoming.runs {
        check_key("training run", key, &run.id)?;
        require(&run.profile_id)?;
        check_run_record(run)?;
    }
    if let Some(settings) = &incoming.settings {
        check_settings(settings)?;
    }
    Ok(())
}

fn check_key(kind: &'static str, key: &str, id: &str) -> Result<(), StoreError> {
    if key != id {
        return Err(invalid(
            kind,
            id,
            format!("it is filed under the key '{key}'"),
        ));
    }
    Ok(())
}

/// Plans an import: `Replace` clears then writes everything; `Merge` adds incoming records
/// (replacing same-id ones) but keeps the stored active models, checkpoints and settings,
/// because those reflect the user's latest choices on this device.
pub fn plan_import(
    catalog: &Catalog,
    incoming: &StoreContents,
    mode: super::types::ImportMode,
    limits: &ImageLimits,
) -> Result<Vec<Change>, StoreError> {
    use super::types::ImportMode;
    let merge = mode == ImportMode::Merge;
    check_contents(incoming, &|id| merge && catalog.has_profile(id), limits)?;
    let mut changes = Vec::new();
    if !merge {
        changes.push(Change::ClearAll);
    }
    changes.extend(incoming.profiles.values().cloned().map(Change::PutProfile));
    changes.extend(incoming.images.values().cloned().map(Change::PutImage));
    // The stored catalogue with the incoming profiles, for checks during a merge.
    let mut merged = catalog.clone();
    merged.profiles.extend(incoming.profiles.keys().cloned());
    for model in incoming.models.values() {
        if merge {
            // Moving a stored active model to another profile would orphan its pointer.
            plan_put_model(&merged, model)?;
        }
        changes.push(Change::PutModel(model.clone()));
    }
    for (profile, model_id) in &incoming.active_models {
        if !merge || catalog.active_model(profile).is_none() {
            changes.push(Change::SetActiveModel {
                profile_id: profile.clone(),
                model_id: model_id.clone(),
            });
        }
    }
    for (profile, checkpoint) in &incoming.checkpoints {
        if !merge || !catalog.checkpoints.contains(profile) {
            changes.push(Change::PutCheckpoint(checkpoint.clone()));
        }
    }
    changes.extend(incoming.runs.values().cloned().map(Change::PutRun));
    if let Some(settings) = incoming.settings
        && (!merge || !catalog.has_settings)
    {
        changes.push(Change::PutSettings(settings));
    }
    Ok(changes)
}

/// The first id that appears twice in a batch (a batch is a set of distinct records).
fn first_duplicate<'a>(ids: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = BTreeSet::new();
    ids.into_iter().find(|id| !seen.insert(*id))
}
