//! `DirStore`: the store on disk, for the CLI and native tests.
//!
//! Layout (schema version 2):
//! - `MANIFEST.json`: every record's metadata; payloads are referenced by SHA-256. The
//!   manifest is the commit point: a transaction writes its new payload files first, then
//!   writes the new manifest to a temporary file and renames it over the old one (atomic on
//!   POSIX and Windows). A crash before the rename leaves the old manifest, which never
//!   references the new files; a crash after it leaves the complete new state.
//! - `blobs/<sha256>`: payloads (photos, crops, model weights, optimiser state), immutable and
//!   content-addressed, each also written to a temporary file and renamed.
//! - Leftovers of an interrupted transaction (temporary files, unreferenced blobs) are removed
//!   when the store is opened and after each commit.
//!
//! Version 1 kept everything in one JSON file, `faceverify-store.json` (a `RawDatabase`).
//! Opening such a directory migrates it: the version-2 layout is written and committed, and
//! only then is the old file removed.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dataset::{self, Catalog, Change, StoreContents};
use super::memory::change_name;
use super::schema::{RawDatabase, SCHEMA_VERSION, SchemaVersion};
use super::sha256_hex;
use super::validate::ImageLimits;
use super::{
    Checkpoint, FaultInjector, ImageDescriptor, ImageRole, ImageSource, ImportMode, Millis,
    ModelId, ModelSummary, Profile, Settings, StorageUsage, Store, StoreError, StoredImage,
    StoredModel, TrainingRun,
};

/// The commit point of a version-2 directory.
pub const MANIFEST_FILE: &str = "MANIFEST.json";
/// The single file of a version-1 directory.
pub const LEGACY_V1_FILE: &str = "faceverify-store.json";
const BLOB_DIR: &str = "blobs";
const TEMP_SUFFIX: &str = ".tmp";

/// A payload file, named by the SHA-256 of its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BlobRef {
    sha256: String,
    len: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ImageEntry {
    id: String,
    profile_id: String,
    role: ImageRole,
    source: ImageSource,
    created: Millis,
    width: u32,
    height: u32,
    encoded: BlobRef,
    aligned_crop: Option<BlobRef>,
    /// Small (512 bytes) and derived: kept in the manifest rather than as a payload file.
    #[serde(default)]
    descriptor: Option<ImageDescriptor>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ModelEntry {
    id: String,
    profile_id: String,
    tower_kind: String,
    format_version: u32,
    created: Millis,
    training_settings: serde_json::Value,
    metrics: serde_json::Value,
    bytes: BlobRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CheckpointEntry {
    profile_id: String,
    run_id: String,
    epoch: u32,
    position: u64,
    created: Millis,
    model: BlobRef,
    optimiser: BlobRef,
    trainer_state: serde_json::Value,
}

/// Every record's metadata: the commit point.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct Manifest {
    schema_version: SchemaVersion,
    /// Increases with each commit; useful when reading a directory by hand.
    generation: u64,
    profiles: BTreeMap<String, Profile>,
    images: BTreeMap<String, ImageEntry>,
    models: BTreeMap<String, ModelEntry>,
    active_models: BTreeMap<String, String>,
    checkpoints: BTreeMap<String, CheckpointEntry>,
    runs: BTreeMap<String, TrainingRun>,
    settings: Option<Settings>,
}

impl Manifest {
    fn empty() -> Self {
        Manifest {
            schema_version: SCHEMA_VERSION,
            ..Default::default()
        }
    }

    fn blobs(&self) -> BTreeSet<&str> {
        let mut blobs = BTreeSet::new();
        for image in self.images.values() {
            blobs.insert(image.encoded.sha256.as_str());
            if let Some(crop) = &image.aligned_crop {
                blobs.insert(crop.sha256.as_str());
            }
        }
        for model in self.models.values() {
            blobs.insert(model.bytes.sha256.as_str());
        }
        for checkpoint in self.checkpoints.values() {
            blobs.insert(checkpoint.model.sha256.as_str());
            blobs.insert(checkpoint.optimiser.sha256.as_str());
        }
        blobs
    }
}

impl Catalog for Manifest {
    fn has_profile(&self, id: &str) -> bool {
        self.profiles.contains_key(id)
    }
    fn has_image(&self, id: &str) -> bool {
        self.images.contains_key(id)
    }
    fn has_run(&self, id: &str) -> bool {
        self.runs.contains_key(id)
    }
    fn has_checkpoint(&self, profile: &str) -> bool {
        self.checkpoints.contains_key(profile)
    }
    fn has_settings(&self) -> bool {
        self.settings.is_some()
    }
    fn model_profile(&self, id: &str) -> Option<&str> {
        self.models.get(id).map(|m| m.profile_id.as_str())
    }
    fn active_model(&self, profile: &str) -> Option<&str> {
        self.active_models.get(profile).map(String::as_str)
    }
    fn images_of(&self, profile: &str) -> Vec<String> {
        let of = |e: &&ImageEntry| e.profile_id == profile;
        self.images
            .values()
            .filter(of)
            .map(|e| e.id.clone())
            .collect()
    }
    fn models_of(&self, profile: &str) -> Vec<String> {
        let of = |e: &&ModelEntry| e.profile_id == profile;
        self.models
            .values()
            .filter(of)
            .map(|e| e.id.clone())
            .collect()
    }
    fn runs_of(&self, profile: &str) -> Vec<String> {
        let of = |r: &&TrainingRun| r.profile_id == profile;
        self.runs
            .values()
            .filter(of)
            .map(|r| r.id.clone())
            .collect()
    }
}

/// The store in a directory. Not for concurrent use by several processes.
#[derive(Debug)]
pub struct DirStore {
    root: PathBuf,
    manifest: RefCell<Manifest>,
    faults: FaultInjector,
    image_limits: ImageLimits,
}

fn write_failed(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::WriteFailed {
        detail: format!("{what} {}: {e}", path.display()),
    }
}

fn read_failed(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::ReadFailed {
        detail: format!("{}: {e}", path.display()),
    }
}

impl DirStore {
    /// Opens (creating if needed) a store in `root`, migrating an older layout.
    pub fn open(root: impl Into<PathBuf>) -> Result<DirStore, StoreError> {
        Self::open_with_faults(root, FaultInjector::default())
    }

    /// `open`, with every file write and rename routed through `faults`.
    pub fn open_with_faults(
        root: impl Into<PathBuf>,
        faults: FaultInjector,
    ) -> Result<DirStore, StoreError> {
        let root = root.into();
        let blob_dir = root.join(BLOB_DIR);
        fs::create_dir_all(&blob_dir).map_err(|e| write_failed("creating", &blob_dir, e))?;
        let manifest_path = root.join(MANIFEST_FILE);
        let legacy_path = root.join(LEGACY_V1_FILE);
        let store = DirStore {
            manifest: RefCell::new(Manifest::empty()),
            root,
            faults,
            image_limits: ImageLimits::default(),
        };
        store.remove_temp_files();
        if manifest_path.exists() {
            let bytes = fs::read(&manifest_path).map_err(|e| read_failed(&manifest_path, e))?;
            let manifest = parse_manifest(&bytes)?;
            *store.manifest.borrow_mut() = manifest;
            // A migration that committed but was interrupted before removing the old file.
            if legacy_path.exists() {
                let _ = fs::remove_file(&legacy_path);
            }
        } else if legacy_path.exists() {
            store.migrate_legacy(&legacy_path)?;
        }
        store.remove_unreferenced_blobs(None);
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn with_image_limits(mut self, limits: ImageLimits) -> Self {
        self.image_limits = limits;
        self
    }

    /// Writes the version-2 layout from a version-1 file, then removes the file.
    fn migrate_legacy(&self, legacy_path: &Path) -> Result<(), StoreError> {
        let bytes = fs::read(legacy_path).map_err(|e| read_failed(legacy_path, e))?;
        let raw: RawDatabase = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            detail: format!("{}: {e}", legacy_path.display()),
        })?;
        let from = raw.schema_version;
        let contents = raw.migrate(SCHEMA_VERSION)?.into_contents()?;
        // Written as-is: these records were accepted by version 1 and must not be lost now.
        self.commit(contents_as_changes(contents))
            .map_err(|e| StoreError::MigrationFailed {
                from: from.0,
                to: SCHEMA_VERSION.0,
                detail: e.to_string(),
            })?;
        fs::remove_file(legacy_path).map_err(|e| write_failed("removing", legacy_path, e))
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.root.join(BLOB_DIR).join(sha256)
    }

    /// Writes `bytes` to `path` through a temporary file and a rename, so `path` is either
    /// absent, the old file, or the complete new file.
    fn write_atomically(&self, path: &Path, bytes: &[u8], what: &str) -> Result<(), StoreError> {
        let mut temp = path.as_os_str().to_owned();
        temp.push(TEMP_SUFFIX);
        let temp = PathBuf::from(temp);
        self.faults.before_write(what)?;
        let result = (|| {
            let mut file = fs::File::create(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&temp);
            return Err(write_failed("writing", &temp, e));
        }
        if let Err(fault) = self.faults.before_write("rename into place") {
            let _ = fs::remove_file(&temp);
            return Err(fault);
        }
        fs::rename(&temp, path).map_err(|e| {
            let _ = fs::remove_file(&temp);
            write_failed("renaming", &temp, e)
        })?;
        // Make the rename itself durable; not every platform can open a directory.
        if let Some(dir) = path.parent()
            && let Ok(dir) = fs::File::open(dir)
        {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    fn put_blob(&self, bytes: &[u8]) -> Result<BlobRef, StoreError> {
        let blob = BlobRef {
            sha256: sha256_hex(bytes),
            len: bytes.len() as u64,
        };
        let path = self.blob_path(&blob.sha256);
        let complete = fs::metadata(&path).is_ok_and(|m| m.len() == blob.len);
        if !complete {
            self.write_atomically(&path, bytes, "payload file")?;
        }
        Ok(blob)
    }

    fn read_blob(&self, blob: &BlobRef) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(&blob.sha256);
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::Corrupt {
                detail: format!("payload file {} is missing", path.display()),
            },
            _ => read_failed(&path, e),
        })?;
        if bytes.len() as u64 != blob.len || sha256_hex(&bytes) != blob.sha256 {
            return Err(StoreError::Corrupt {
                detail: format!(
                    "payload file {} does not match its checksum",
                    path.display()
                ),
            });
        }
        Ok(bytes)
    }

    /// Writes the payloads of `change` and records it in `next`.
    fn stage(&self, next: &mut Manifest, change: Change) -> Result<(), StoreError> {
        match change {
            Change::ClearAll => {
                *next = Manifest {
                    generation: next.generation,
                    ..Manifest::empty()
                }
            }
            Change::PutProfile(p) => {
                next.profiles.insert(p.id.clone(), p);
            }
            Change::DeleteProfile(id) => {
                next.profiles.remove(&id);
            }
            Change::PutImage(i) => {
                let encoded = self.put_blob(&i.encoded)?;
                let aligned_crop = match &i.aligned_crop {
                    Some(crop) => Some(self.put_blob(crop)?),
                    None => None,
                };
                let entry = ImageEntry {
                    id: i.id,
                    profile_id: i.profile_id,
                    role: i.role,
                    source: i.source,
                    created: i.created,
                    width: i.width,
                    height: i.height,
                    encoded,
                    aligned_crop,
                    descriptor: i.descriptor,
                };
                next.images.insert(entry.id.clone(), entry);
            }
            Change::DeleteImage(id) => {
                next.images.remove(&id);
            }
            Change::PutModel(m) => {
                let bytes = self.put_blob(&m.bytes)?;
                let entry = ModelEntry {
                    id: m.id,
                    profile_id: m.profile_id,
                    tower_kind: m.tower_kind,
                    format_version: m.format_version,
                    created: m.created,
                    training_settings: m.training_settings,
                    metrics: m.metrics,
                    bytes,
                };
                next.models.insert(entry.id.clone(), entry);
            }
            Change::DeleteModel(id) => {
                next.models.remove(&id);
            }
            Change::SetActiveModel {
                profile_id,
                model_id,
            } => {
                next.active_models.insert(profile_id, model_id);
            }
            Change::ClearActiveModel(profile) => {
                next.active_models.remove(&profile);
            }
            Change::PutCheckpoint(c) => {
                let model = self.put_blob(&c.model_bytes)?;
                let optimiser = self.put_blob(&c.optimiser_bytes)?;
                let entry = CheckpointEntry {
                    profile_id: c.profile_id,
                    run_id: c.run_id,
                    epoch: c.epoch,
                    position: c.position,
                    created: c.created,
                    model,
                    optimiser,
                    trainer_state: c.trainer_state,
                };
                next.checkpoints.insert(entry.profile_id.clone(), entry);
            }
            Change::DeleteCheckpoint(profile) => {
                next.checkpoints.remove(&profile);
            }
            Change::PutRun(r) => {
                next.runs.insert(r.id.clone(), r);
            }
            Change::DeleteRun(id) => {
                next.runs.remove(&id);
            }
            Change::PutSettings(s) => next.settings = Some(s),
        }
        Ok(())
    }

    /// One transaction: payloads first, then the manifest switch, then cleanup.
    fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut next = self.manifest.borrow().clone();
        for change in changes {
            let what = change_name(&change);
            self.stage(&mut next, change).map_err(|e| match e {
                StoreError::WriteFailed { detail } => StoreError::WriteFailed {
                    detail: format!("{what}: {detail}"),
                },
                other => other,
            })?;
        }
        next.generation += 1;
        let bytes = serde_json::to_vec_pretty(&next).expect("a manifest always serialises");
        self.write_atomically(&self.root.join(MANIFEST_FILE), &bytes, "manifest")?;
        let previous = self.manifest.replace(next);
        self.remove_unreferenced_blobs(Some(&previous));
        Ok(())
    }

    /// Removes payload files the manifest no longer references: those of `previous` (after a
    /// commit), or all of them (on open, after an interrupted transaction). Best effort: a
    /// leftover file wastes space but never breaks the store.
    fn remove_unreferenced_blobs(&self, previous: Option<&Manifest>) {
        let current = self.manifest.borrow();
        let referenced = current.blobs();
        let candidates: Vec<String> = match previous {
            Some(previous) => previous.blobs().into_iter().map(str::to_owned).collect(),
            None => fs::read_dir(self.root.join(BLOB_DIR))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
        };
        for name in candidates {
            if !referenced.contains(name.as_str()) {
                let _ = fs::remove_file(self.blob_path(&name));
            }
        }
    }

    fn remove_temp_files(&self) {
        for dir in [self.root.clone(), self.root.join(BLOB_DIR)] {
            for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                if entry.file_name().to_string_lossy().ends_with(TEMP_SUFFIX) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }

    fn load_image(&self, entry: &ImageEntry) -> Result<StoredImage, StoreError> {
        Ok(StoredImage {
            id: entry.id.clone(),
            profile_id: entry.profile_id.clone(),
            role: entry.role,
            source: entry.source,
            created: entry.created,
            width: entry.width,
            height: entry.height,
            encoded: self.read_blob(&entry.encoded)?,
            aligned_crop: match &entry.aligned_crop {
                Some(crop) => Some(self.read_blob(crop)?),
                None => None,
            },
            descriptor: entry.descriptor.clone(),
        })
    }

    fn load_model(&self, entry: &ModelEntry) -> Result<StoredModel, StoreError> {
        Ok(StoredModel {
            id: entry.id.clone(),
            profile_id: entry.profile_id.clone(),
            tower_kind: entry.tower_kind.clone(),
            format_version: entry.format_version,
            created: entry.created,
            training_settings: entry.training_settings.clone(),
            metrics: entry.metrics.clone(),
            bytes: self.read_blob(&entry.bytes)?,
        })
    }

    fn load_checkpoint(&self, entry: &CheckpointEntry) -> Result<Checkpoint, StoreError> {
        Ok(Checkpoint {
            profile_id: entry.profile_id.clone(),
            run_id: entry.run_id.clone(),
            epoch: entry.epoch,
            position: entry.position,
            created: entry.created,
            model_bytes: self.read_blob(&entry.model)?,
            optimiser_bytes: self.read_blob(&entry.optimiser)?,
            trainer_state: entry.trainer_state.clone(),
        })
    }

    /// Records as plain data, payloads loaded.
    fn load_contents(&self) -> Result<StoreContents, StoreError> {
        let manifest = self.manifest.borrow();
        let mut contents = StoreContents {
            profiles: manifest.profiles.clone(),
            active_models: manifest.active_models.clone(),
            runs: manifest.runs.clone(),
            settings: manifest.settings,
            ..Default::default()
        };
        for (id, entry) in &manifest.images {
            contents.images.insert(id.clone(), self.load_image(entry)?);
        }
        for (id, entry) in &manifest.models {
            contents.models.insert(id.clone(), self.load_model(entry)?);
        }
        for (profile, entry) in &manifest.checkpoints {
            contents
                .checkpoints
                .insert(profile.clone(), self.load_checkpoint(entry)?);
        }
        Ok(contents)
    }
}

fn parse_manifest(bytes: &[u8]) -> Result<Manifest, StoreError> {
    #[derive(Deserialize)]
    struct VersionOnly {
        schema_version: SchemaVersion,
    }
    let corrupt = |e: serde_json::Error| StoreError::Corrupt {
        detail: format!("{MANIFEST_FILE} is unreadable: {e}"),
    };
    let version: VersionOnly = serde_json::from_slice(bytes).map_err(corrupt)?;
    if version.schema_version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: version.schema_version.0,
            supported: SCHEMA_VERSION.0,
        });
    }
    // Version 2 is the first manifest layout; a later one adds its migration here.
    serde_json::from_slice(bytes).map_err(corrupt)
}

/// The changes that write `contents` into an empty store.
fn contents_as_changes(contents: StoreContents) -> Vec<Change> {
    let mut changes = vec![Change::ClearAll];
    changes.extend(contents.profiles.into_values().map(Change::PutProfile));
    changes.extend(contents.images.into_values().map(Change::PutImage));
    changes.extend(contents.models.into_values().map(Change::PutModel));
    changes.extend(
        contents
            .active_models
            .into_iter()
            .map(|(profile_id, model_id)| Change::SetActiveModel {
                profile_id,
                model_id,
            }),
    );
    changes.extend(
        contents
            .checkpoints
            .into_values()
            .map(Change::PutCheckpoint),
    );
    changes.extend(contents.runs.into_values().map(Change::PutRun));
    changes.extend(contents.settings.map(Change::PutSettings));
    changes
}

impl Store for DirStore {
    async fn put_profile(&self, profile: &Profile) -> Result<(), StoreError> {
        self.commit(dataset::plan_put_profile(profile)?)
    }

    async fn get_profile(&self, id: &str) -> Result<Option<Profile>, StoreError> {
        Ok(self.manifest.borrow().profiles.get(id).cloned())
    }

    async fn list_profiles(&self) -> Result<Vec<Profile>, StoreError> {
        Ok(self.manifest.borrow().profiles.values().cloned().collect())
    }

    async fn delete_profile(&self, id: &str) -> Result<bool, StoreError> {
        let changes = dataset::plan_delete_profile(&*self.manifest.borrow(), id);
        let existed = !changes.is_empty();
        self.commit(changes)?;
        Ok(existed)
    }

    async fn put_images(&self, images: &[StoredImage]) -> Result<(), StoreError> {
        let changes =
            dataset::plan_put_images(&*self.manifest.borrow(), images, &self.image_limits)?;
        self.commit(changes)
    }

    async fn get_image(&self, id: &str) -> Result<Option<StoredImage>, StoreError> {
        let entry = self.manifest.borrow().images.get(id).cloned();
        entry.map(|e| self.load_image(&e)).transpose()
    }

    async fn list_images(
        &self,
        profile: &str,
        role: Option<ImageRole>,
    ) -> Result<Vec<StoredImage>, StoreError> {
        let mut entries: Vec<ImageEntry> = self
            .manifest
            .borrow()
            .images
            .values()
            .filter(|i| i.profile_id == profile && role.is_none_or(|r| i.role == r))
            .cloned()
            .collect();
        entries.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        entries.iter().map(|e| self.load_image(e)).collect()
    }

    async fn delete_image(&self, id: &str) -> Result<bool, StoreError> {
        let changes = dataset::plan_delete_image(&*self.manifest.borrow(), id);
        let existed = !changes.is_empty();
        self.commit(changes)?;
        Ok(existed)
    }

    async fn put_model(&self, model: &StoredModel) -> Result<(), StoreError> {
        let changes = dataset::plan_put_model(&*self.manifest.borrow(), model)?;
        self.commit(changes)
    }

    async fn get_model(&self, id: &str) -> Result<Option<StoredModel>, StoreError> {
        let entry = self.manifest.borrow().models.get(id).cloned();
        entry.map(|e| self.load_model(&e)).transpose()
    }

    async fn list_models(&self, profile: &str) -> Result<Vec<ModelSummary>, StoreError> {
        let mut models: Vec<ModelSummary> = self
            .manifest
            .borrow()
            .models
            .values()
            .filter(|m| m.profile_id == profile)
            .map(|m| ModelSummary {
                id: m.id.clone(),
                profile_id: m.profile_id.clone(),
                tower_kind: m.tower_kind.clone(),
                format_version: m.format_version,
                created: m.created,
                training_settings: m.training_settings.clone(),
                metrics: m.metrics.clone(),
                byte_len: m.bytes.len,
            })
            .collect();
        super::sort_models(&mut models);
        Ok(models)
    }

    async fn set_active_model(&self, profile: &str, model_id: &str) -> Result<(), StoreError> {
        let changes = dataset::plan_set_active_model(&*self.manifest.borrow(), profile, model_id)?;
        self.commit(changes)
    }

    async fn active_model_id(&self, profile: &str) -> Result<Option<ModelId>, StoreError> {
        Ok(self.manifest.borrow().active_models.get(profile).cloned())
    }

    async fn delete_model(&self, id: &str) -> Result<bool, StoreError> {
        let changes = dataset::plan_delete_model(&*self.manifest.borrow(), id)?;
        let existed = !changes.is_empty();
        self.commit(changes)?;
        Ok(existed)
    }

    async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let changes = dataset::plan_put_checkpoint(&*self.manifest.borrow(), checkpoint)?;
        self.commit(changes)
    }

    async fn latest_checkpoint(&self, profile: &str) -> Result<Option<Checkpoint>, StoreError> {
        let entry = self.manifest.borrow().checkpoints.get(profile).cloned();
        entry.map(|e| self.load_checkpoint(&e)).transpose()
    }

    async fn delete_checkpoint(&self, profile: &str) -> Result<bool, StoreError> {
        let changes = dataset::plan_delete_checkpoint(&*self.manifest.borrow(), profile);
        let existed = !changes.is_empty();
        self.commit(changes)?;
        Ok(existed)
    }

    async fn put_run(&self, run: &TrainingRun) -> Result<(), StoreError> {
        let changes = dataset::plan_put_run(&*self.manifest.borrow(), run)?;
        self.commit(changes)
    }

    async fn get_run(&self, id: &str) -> Result<Option<TrainingRun>, StoreError> {
        Ok(self.manifest.borrow().runs.get(id).cloned())
    }

    async fn list_runs(&self, profile: &str) -> Result<Vec<TrainingRun>, StoreError> {
        let mut runs: Vec<TrainingRun> = self
            .manifest
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
        let changes = dataset::plan_delete_run(&*self.manifest.borrow(), id);
        let existed = !changes.is_empty();
        self.commit(changes)?;
        Ok(existed)
    }

    async fn settings(&self) -> Result<Settings, StoreError> {
        Ok(self.manifest.borrow().settings.unwrap_or_default())
    }

    async fn put_settings(&self, settings: &Settings) -> Result<(), StoreError> {
        self.commit(dataset::plan_put_settings(settings)?)
    }

    /// Payload bytes by kind (each distinct payload file counted once) plus the manifest.
    async fn usage(&self) -> Result<StorageUsage, StoreError> {
        let manifest = self.manifest.borrow();
        let mut seen = BTreeSet::new();
        let mut count = |blob: &BlobRef| {
            if seen.insert(blob.sha256.clone()) {
                blob.len
            } else {
                0
            }
        };
        let mut usage = StorageUsage::default();
        for image in manifest.images.values() {
            usage.images += count(&image.encoded);
            usage.images += image.aligned_crop.as_ref().map_or(0, &mut count);
        }
        for model in manifest.models.values() {
            usage.models += count(&model.bytes);
        }
        for checkpoint in manifest.checkpoints.values() {
            usage.checkpoints += count(&checkpoint.model) + count(&checkpoint.optimiser);
        }
        usage.other = fs::metadata(self.root.join(MANIFEST_FILE)).map_or(0, |m| m.len());
        Ok(usage)
    }

    async fn clear_all(&self) -> Result<(), StoreError> {
        self.commit(vec![Change::ClearAll])
    }

    async fn export_contents(&self) -> Result<StoreContents, StoreError> {
        self.load_contents()
    }

    async fn import_contents(
        &self,
        contents: &StoreContents,
        mode: ImportMode,
    ) -> Result<(), StoreError> {
        let changes =
            dataset::plan_import(&*self.manifest.borrow(), contents, mode, &self.image_limits)?;
        self.commit(changes)
    }
}
