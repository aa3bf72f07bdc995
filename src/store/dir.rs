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

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dataset::{Change, StoreContents};
use super::memory::{HeldStore, Persistence};
use super::schema::{SCHEMA_VERSION, SchemaVersion};
use super::sha256_hex;
use super::{
    FaultInjector, Keyed, Profile, Settings, StorageUsage, StoreError, TrainingRun, detached,
};

/// The commit point of a directory.
pub const MANIFEST_FILE: &str = "MANIFEST.json";
const BLOB_DIR: &str = "blobs";
const TEMP_SUFFIX: &str = ".tmp";

/// A payload file, named by the SHA-256 of its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BlobRef {
    sha256: String,
    len: u64,
}

type ImageEntry = detached::ImageEntry<BlobRef>;
type ModelEntry = detached::ModelEntry<BlobRef>;
type CheckpointEntry = detached::CheckpointEntry<BlobRef>;

/// Every record's metadata: the commit point.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Manifest {
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

    /// The records without payloads as `contents` has them, and the payload entries of only
    /// the records it still has: the manifest after a transaction's changes.
    fn follow(&mut self, contents: &StoreContents) {
        self.profiles = contents.profiles.clone();
        self.active_models = contents.active_models.clone();
        self.runs = contents.runs.clone();
        self.settings = contents.settings;
        self.images.retain(|id, _| contents.images.contains_key(id));
        self.models.retain(|id, _| contents.models.contains_key(id));
        self.checkpoints
            .retain(|profile, _| contents.checkpoints.contains_key(profile));
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

/// The store in a directory. Not for concurrent use by several processes. The records are
/// held in memory too (read once at open), so reads never touch the disk; writes go to disk
/// first and reach memory only once the manifest is committed.
pub type DirStore = HeldStore<Directory>;

/// The files of a [`DirStore`].
#[derive(Debug)]
pub struct Directory {
    root: PathBuf,
    manifest: RefCell<Manifest>,
    faults: FaultInjector,
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
    /// Opens (creating if needed) a store in `root`.
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
        let directory = Directory {
            manifest: RefCell::new(Manifest::empty()),
            root,
            faults,
        };
        directory.remove_temp_files();
        let mut contents = StoreContents::default();
        if manifest_path.exists() {
            let bytes = fs::read(&manifest_path).map_err(|e| read_failed(&manifest_path, e))?;
            let manifest = parse_manifest(&bytes)?;
            *directory.manifest.borrow_mut() = manifest;
            contents = directory.load_contents()?;
        }
        directory.remove_unreferenced_blobs(None);
        Ok(HeldStore {
            contents: RefCell::new(contents),
            persistence: directory,
        })
    }

    pub fn root(&self) -> &Path {
        &self.persistence.root
    }
}

impl Directory {
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

    /// Writes the payloads a change stores and records their files in `next`.
    fn stage_payloads(&self, next: &mut Manifest, change: &Change) -> Result<(), StoreError> {
        let put = |bytes: &[u8]| self.put_blob(bytes);
        match change {
            Change::PutImage(i) => {
                let entry = ImageEntry::detach(i, put)?;
                next.images.insert(i.key().to_owned(), entry);
            }
            Change::PutModel(m) => {
                let entry = ModelEntry::detach(m, put)?;
                next.models.insert(m.key().to_owned(), entry);
            }
            Change::PutCheckpoint(c) => {
                let entry = CheckpointEntry::detach(c, put)?;
                next.checkpoints.insert(c.key().to_owned(), entry);
            }
            _ => {}
        }
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
            contents
                .images
                .insert(id.clone(), entry.attach(|blob| self.read_blob(blob))?);
        }
        for (id, entry) in &manifest.models {
            contents
                .models
                .insert(id.clone(), entry.attach(|blob| self.read_blob(blob))?);
        }
        for (profile, entry) in &manifest.checkpoints {
            contents
                .checkpoints
                .insert(profile.clone(), entry.attach(|blob| self.read_blob(blob))?);
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

/// One transaction: payloads first, then the manifest switch, then cleanup.
impl Persistence for Directory {
    /// The next manifest.
    type Staged = Manifest;

    fn begin(&self) -> Manifest {
        self.manifest.borrow().clone()
    }

    fn stage(&self, next: &mut Manifest, change: &Change) -> Result<(), StoreError> {
        self.stage_payloads(next, change).map_err(|e| match e {
            StoreError::WriteFailed { detail } => StoreError::WriteFailed {
                detail: format!("{}: {detail}", change.name()),
            },
            other => other,
        })
    }

    fn commit(
        &self,
        mut next: Manifest,
        _: &StoreContents,
        contents: &StoreContents,
    ) -> Result<(), StoreError> {
        next.follow(contents);
        next.generation += 1;
        let bytes = serde_json::to_vec_pretty(&next).expect("a manifest always serialises");
        self.write_atomically(&self.root.join(MANIFEST_FILE), &bytes, "manifest")?;
        let previous = self.manifest.replace(next);
        self.remove_unreferenced_blobs(Some(&previous));
        Ok(())
    }

    /// Payload bytes by kind (each distinct payload file counted once) plus the manifest.
    fn usage(&self, _: &StoreContents) -> StorageUsage {
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
        usage
    }
}
