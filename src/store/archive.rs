//! Export and import: everything in one tar file.
//!
//! Layout (archive format version 1):
//! - `manifest.json`: kind, format version, record counts, and the size and SHA-256 of every
//!   other entry. Written first so a reader meets it before anything else.
//! - `records.json`: every record's metadata; payloads are named by entry.
//! - `images/NNNNNN.jpg|png`, `crops/NNNNNN.jpg|png`, `models/NNNN.fvmodel`,
//!   `checkpoints/NNNN.model`, `checkpoints/NNNN.optimiser`: the payloads.
//!
//! Tar rather than zip: no compression is needed (photos are already JPEG/PNG), so there is
//! no decompression to bomb, and every entry declares its size in a header that is checked
//! before the entry is read. The encoding is deterministic (sorted records, zero times), so
//! exporting the same data twice gives the same bytes.
//!
//! Import checks everything (sizes, checksums, counts, every photo decoded, every model
//! header, every reference) before it writes anything, reports every problem it found, and
//! then writes in one transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::fmt;
use std::io::Read;

use super::sha256_hex;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::dataset::{self, StoreContents};
use super::detached::{self, ActiveModelEntry};
use super::schema::{SCHEMA_VERSION, SchemaVersion};
use super::validate::{self, ArchiveLimits, ImageLimits};
use super::{ImportMode, Keyed, Profile, Settings, Store, StoreError, TrainingRun};

/// The archive format this build writes and the newest it reads.
pub const ARCHIVE_FORMAT_VERSION: u32 = 1;
/// Identifies a faceverify export among other tar files.
pub const ARCHIVE_KIND: &str = "faceverify-export";
pub const MANIFEST_ENTRY: &str = "manifest.json";
pub const RECORDS_ENTRY: &str = "records.json";
/// Suggested file name extension.
pub const ARCHIVE_EXTENSION: &str = "tar";

/// How many records of each kind an archive holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ArchiveCounts {
    pub profiles: u64,
    pub images: u64,
    pub models: u64,
    pub checkpoints: u64,
    pub runs: u64,
}

/// Size and checksum of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryDigest {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveManifest {
    pub kind: String,
    pub format_version: u32,
    /// The storage schema of the exporting app; informative.
    pub schema_version: SchemaVersion,
    pub counts: ArchiveCounts,
    pub entries: Vec<EntryDigest>,
}

/// Records name their payloads by the archive entry that holds them.
type ImageRecord = detached::ImageEntry<String>;
type ModelRecord = detached::ModelEntry<String>;
type CheckpointRecord = detached::CheckpointEntry<String>;

/// `records.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct ArchiveRecords {
    profiles: Vec<Profile>,
    images: Vec<ImageRecord>,
    models: Vec<ModelRecord>,
    active_models: Vec<ActiveModelEntry>,
    checkpoints: Vec<CheckpointRecord>,
    runs: Vec<TrainingRun>,
    settings: Option<Settings>,
}

/// One thing wrong inside an otherwise readable archive.
#[derive(Debug, Clone, PartialEq)]
pub enum ArchiveProblem {
    /// The manifest lists an entry the archive lacks.
    MissingEntry {
        entry: String,
    },
    /// The archive holds an entry the manifest does not list.
    UnlistedEntry {
        entry: String,
    },
    SizeMismatch {
        entry: String,
        listed: u64,
        actual: u64,
    },
    ChecksumMismatch {
        entry: String,
    },
    UnreadableRecords {
        detail: String,
    },
    CountMismatch {
        what: &'static str,
        listed: u64,
        found: u64,
    },
    /// A record names a payload entry that is not in the archive.
    MissingPayload {
        kind: &'static str,
        id: String,
        entry: String,
    },
    DuplicateId {
        kind: &'static str,
        id: String,
    },
    /// A record that the store would refuse (bad photo, bad model, dangling reference...).
    InvalidRecord {
        error: StoreError,
    },
}

impl fmt::Display for ArchiveProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveProblem::MissingEntry { entry } => {
                write!(f, "'{entry}' is listed in the manifest but missing")
            }
            ArchiveProblem::UnlistedEntry { entry } => {
                write!(f, "'{entry}' is not listed in the manifest")
            }
            ArchiveProblem::SizeMismatch {
                entry,
                listed,
                actual,
            } => write!(
                f,
                "'{entry}' is {actual} bytes but the manifest says {listed}"
            ),
            ArchiveProblem::ChecksumMismatch { entry } => write!(
                f,
                "'{entry}' does not match its SHA-256 checksum (the file was changed or damaged)"
            ),
            ArchiveProblem::UnreadableRecords { detail } => {
                write!(f, "'{RECORDS_ENTRY}' is unreadable ({detail})")
            }
            ArchiveProblem::CountMismatch {
                what,
                listed,
                found,
            } => write!(
                f,
                "the manifest counts {listed} {what} but the archive holds {found}"
            ),
            ArchiveProblem::MissingPayload { kind, id, entry } => {
                write!(
                    f,
                    "{kind} '{id}' needs '{entry}', which is not in the archive"
                )
            }
            ArchiveProblem::DuplicateId { kind, id } => {
                write!(f, "{kind} '{id}' appears more than once")
            }
            ArchiveProblem::InvalidRecord { error } => write!(f, "{error}"),
        }
    }
}

/// Why an import was refused. Nothing was written in any of these cases.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ArchiveError {
    #[error(
        "This file is not a faceverify export ({detail}). Choose a .tar file made with \
         'Export'. Nothing was imported."
    )]
    NotAnArchive { detail: String },
    #[error(
        "The archive has more than {limit} entries, more than any export; it was refused as \
         a possible archive bomb. Nothing was imported."
    )]
    TooManyEntries { limit: usize },
    #[error(
        "The archive entry '{entry}' claims {} (the limit is {}); it was refused as a possible \
         archive bomb. Nothing was imported.",
        super::format_bytes(*declared),
        super::format_bytes(*limit)
    )]
    EntryTooLarge {
        entry: String,
        declared: u64,
        limit: u64,
    },
    #[error(
        "The archive's entries add up to more than {} and were refused as a possible archive \
         bomb. Nothing was imported.",
        super::format_bytes(*limit)
    )]
    TooLarge { limit: u64 },
    #[error(
        "The archive holds '{entry}', which is not a plain file ({kind}); exports never do. \
         Nothing was imported."
    )]
    UnsupportedEntry { entry: String, kind: String },
    #[error("The archive holds an entry with an unsafe name ({entry:?}). Nothing was imported.")]
    UnsafeEntryName { entry: String },
    #[error("The archive holds '{entry}' twice. Nothing was imported.")]
    DuplicateEntry { entry: String },
    #[error(
        "The archive has no {MANIFEST_ENTRY}, so it is not a faceverify export (or it is \
         damaged). Nothing was imported."
    )]
    MissingManifest,
    #[error("The archive's {MANIFEST_ENTRY} is unreadable ({detail}). Nothing was imported.")]
    BadManifest { detail: String },
    #[error(
        "This archive was exported by a newer version of faceverify (archive format {found}; \
         this version reads up to {supported}). Reload to update the app, then import again. \
         Nothing was imported."
    )]
    NewerFormat { found: u32, supported: u32 },
    #[error("{}", describe_problems(problems))]
    Invalid { problems: Vec<ArchiveProblem> },
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl ArchiveError {
    pub fn user_message(&self) -> String {
        self.to_string()
    }
}

/// Lists problems, at most 20 (a broken archive can have thousands).
fn describe_problems(problems: &[ArchiveProblem]) -> String {
    const SHOWN: usize = 20;
    let mut text = format!(
        "The archive was not imported because {} problem{} {} found; nothing was changed:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        if problems.len() == 1 { "was" } else { "were" },
    );
    for problem in problems.iter().take(SHOWN) {
        text.push_str("\n- ");
        text.push_str(&problem.to_string());
    }
    if problems.len() > SHOWN {
        text.push_str(&format!("\n- and {} more", problems.len() - SHOWN));
    }
    text
}

/// What an import wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveImport {
    pub mode: ImportMode,
    pub counts: ArchiveCounts,
}

// ---------------------------------------------------------------------------------------------
// Export

/// Reads everything from `store` (one transaction) and encodes it.
pub async fn export_archive(store: &impl Store) -> Result<Vec<u8>, StoreError> {
    Ok(encode_archive(&store.export_contents().await?))
}

fn counts_of(contents: &StoreContents) -> ArchiveCounts {
    ArchiveCounts {
        profiles: contents.profiles.len() as u64,
        images: contents.images.len() as u64,
        models: contents.models.len() as u64,
        checkpoints: contents.checkpoints.len() as u64,
        runs: contents.runs.len() as u64,
    }
}

/// A tar archive of `entries` (name, bytes), in order, with fixed metadata so the same
/// contents always give the same bytes.
fn tar_of<'a>(entries: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in entries {
        let mut header = tar::Header::new_ustar();
        header
            .set_path(name)
            .expect("entry names are short and relative");
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder
            .append(&header, bytes)
            .expect("writing to memory cannot fail");
    }
    builder.into_inner().expect("writing to memory cannot fail")
}

/// Adds a payload under `name` and returns the name, for the record that refers to it.
fn named<'a>(payloads: &mut Vec<(String, &'a [u8])>, name: String, bytes: &'a [u8]) -> String {
    payloads.push((name.clone(), bytes));
    name
}

/// Encodes a data set as a tar archive. Deterministic: same contents, same bytes.
pub fn encode_archive(contents: &StoreContents) -> Vec<u8> {
    let mut payloads: Vec<(String, &[u8])> = Vec::new();
    let mut records = ArchiveRecords {
        profiles: contents.profiles.values().cloned().collect(),
        runs: contents.runs.values().cloned().collect(),
        settings: contents.settings,
        ..Default::default()
    };
    let extension = |bytes: &[u8]| {
        validate::inspect_image(bytes, &ImageLimits::default())
            .map_or("bin", |info| info.format.extension())
    };
    for (n, image) in contents.images.values().enumerate() {
        let mut folders = ["images", "crops"].into_iter();
        let Ok(mut record) = ImageRecord::detach(image, |bytes| {
            let folder = folders.next().expect("a photo has two payloads at most");
            let name = format!("{folder}/{n:06}.{}", extension(bytes));
            Ok::<_, Infallible>(named(&mut payloads, name, bytes))
        });
        // Descriptors are derived data: computed again after an import.
        record.descriptor = None;
        records.images.push(record);
    }
    for (n, model) in contents.models.values().enumerate() {
        let Ok(record) = ModelRecord::detach(model, |bytes| {
            let name = format!("models/{n:04}.fvmodel");
            Ok::<_, Infallible>(named(&mut payloads, name, bytes))
        });
        records.models.push(record);
    }
    records.active_models = contents
        .active_models
        .iter()
        .map(|(profile_id, model_id)| ActiveModelEntry {
            profile_id: profile_id.clone(),
            model_id: model_id.clone(),
        })
        .collect();
    for (n, checkpoint) in contents.checkpoints.values().enumerate() {
        let mut parts = ["model", "optimiser"].into_iter();
        let Ok(record) = CheckpointRecord::detach(checkpoint, |bytes| {
            let part = parts.next().expect("a checkpoint has two payloads");
            let name = format!("checkpoints/{n:04}.{part}");
            Ok::<_, Infallible>(named(&mut payloads, name, bytes))
        });
        records.checkpoints.push(record);
    }
    let records_json = serde_json::to_vec_pretty(&records).expect("records always serialise");
    let mut entries: Vec<(String, &[u8])> = vec![(RECORDS_ENTRY.to_owned(), &records_json)];
    entries.extend(payloads);
    let manifest = ArchiveManifest {
        kind: ARCHIVE_KIND.to_owned(),
        format_version: ARCHIVE_FORMAT_VERSION,
        schema_version: SCHEMA_VERSION,
        counts: counts_of(contents),
        entries: entries
            .iter()
            .map(|(name, bytes)| EntryDigest {
                name: name.clone(),
                size: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect(),
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).expect("a manifest always serialises");
    tar_of(
        std::iter::once((MANIFEST_ENTRY, manifest_json.as_slice()))
            .chain(entries.iter().map(|(n, b)| (n.as_str(), *b))),
    )
}

// ---------------------------------------------------------------------------------------------
// Import

/// Checks an archive completely, then writes it into `store` in one transaction.
pub async fn import_archive(
    store: &impl Store,
    archive: &[u8],
    mode: ImportMode,
    limits: &ArchiveLimits,
) -> Result<ArchiveImport, ArchiveError> {
    let contents = decode_archive(archive, limits, &ImageLimits::default())?;
    store.import_contents(&contents, mode).await?;
    Ok(ArchiveImport {
        mode,
        counts: counts_of(&contents),
    })
}

/// Reads the entries, enforcing the limits on declared sizes before reading any entry.
fn read_entries(
    archive: &[u8],
    limits: &ArchiveLimits,
) -> Result<BTreeMap<String, Vec<u8>>, ArchiveError> {
    if archive.starts_with(b"PK\x03\x04") || archive.starts_with(b"PK\x05\x06") {
        return Err(ArchiveError::NotAnArchive {
            detail: "it is a zip file".into(),
        });
    }
    if archive.starts_with(&[0x1f, 0x8b]) {
        return Err(ArchiveError::NotAnArchive {
            detail: "it is compressed with gzip; exports are plain .tar".into(),
        });
    }
    if archive.len() < 512 {
        return Err(ArchiveError::NotAnArchive {
            detail: format!("it is only {} bytes long", archive.len()),
        });
    }
    let not_tar = |e: std::io::Error| ArchiveError::NotAnArchive {
        detail: format!("it is not a readable tar archive: {e}"),
    };
    let mut reader = tar::Archive::new(archive);
    let mut entries = BTreeMap::new();
    let mut total = 0u64;
    for entry in reader.entries().map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        if entries.len() >= limits.max_entries {
            return Err(ArchiveError::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if !kind.is_file() {
            return Err(ArchiveError::UnsupportedEntry {
                entry: name,
                kind: format!("{kind:?}"),
            });
        }
        if !validate::is_safe_entry_name(&name) {
            return Err(ArchiveError::UnsafeEntryName { entry: name });
        }
        let declared = entry.size();
        if declared > limits.max_entry_bytes {
            return Err(ArchiveError::EntryTooLarge {
                entry: name,
                declared,
                limit: limits.max_entry_bytes,
            });
        }
        total = total.saturating_add(declared);
        if total > limits.max_total_bytes {
            return Err(ArchiveError::TooLarge {
                limit: limits.max_total_bytes,
            });
        }
        if entries.contains_key(&name) {
            return Err(ArchiveError::DuplicateEntry { entry: name });
        }
        // The declared size is within the limits, so reserving it is safe; `take` makes sure
        // a lying header cannot make us read more.
        let mut bytes = Vec::with_capacity(declared as usize);
        (&mut entry)
            .take(declared)
            .read_to_end(&mut bytes)
            .map_err(not_tar)?;
        if bytes.len() as u64 != declared {
            return Err(ArchiveError::NotAnArchive {
                detail: format!("'{name}' is cut short: the file is truncated"),
            });
        }
        entries.insert(name, bytes);
    }
    Ok(entries)
}

fn parse_manifest(bytes: &[u8]) -> Result<ArchiveManifest, ArchiveError> {
    // Kind and version first: a newer format may have changed everything else.
    #[derive(Deserialize)]
    struct Head {
        kind: String,
        format_version: u32,
    }
    let bad = |e: serde_json::Error| ArchiveError::BadManifest {
        detail: e.to_string(),
    };
    let head: Head = serde_json::from_slice(bytes).map_err(bad)?;
    if head.kind != ARCHIVE_KIND {
        return Err(ArchiveError::NotAnArchive {
            detail: format!("its manifest says it is a '{}'", head.kind),
        });
    }
    if head.format_version > ARCHIVE_FORMAT_VERSION {
        return Err(ArchiveError::NewerFormat {
            found: head.format_version,
            supported: ARCHIVE_FORMAT_VERSION,
        });
    }
    if head.format_version == 0 {
        return Err(ArchiveError::BadManifest {
            detail: "format version 0 does not exist".into(),
        });
    }
    serde_json::from_slice(bytes).map_err(bad)
}

/// Every entry the manifest lists is present and intact, and nothing else is in the archive.
fn check_listed_entries(
    manifest: &ArchiveManifest,
    entries: &BTreeMap<String, Vec<u8>>,
    problems: &mut Vec<ArchiveProblem>,
) {
    let mut listed = BTreeSet::new();
    for digest in &manifest.entries {
        if !listed.insert(digest.name.as_str()) {
            problems.push(ArchiveProblem::DuplicateId {
                kind: "manifest entry",
                id: digest.name.clone(),
            });
            continue;
        }
        match entries.get(&digest.name) {
            None => problems.push(ArchiveProblem::MissingEntry {
                entry: digest.name.clone(),
            }),
            Some(bytes) if bytes.len() as u64 != digest.size => {
                problems.push(ArchiveProblem::SizeMismatch {
                    entry: digest.name.clone(),
                    listed: digest.size,
                    actual: bytes.len() as u64,
                })
            }
            Some(bytes) if sha256_hex(bytes) != digest.sha256.to_ascii_lowercase() => problems
                .push(ArchiveProblem::ChecksumMismatch {
                    entry: digest.name.clone(),
                }),
            Some(_) => {}
        }
    }
    for name in entries.keys() {
        if !listed.contains(name.as_str()) {
            problems.push(ArchiveProblem::UnlistedEntry {
                entry: name.clone(),
            });
        }
    }
}

/// Decodes and checks an archive completely; returns its data set or every problem found.
pub fn decode_archive(
    archive: &[u8],
    limits: &ArchiveLimits,
    image_limits: &ImageLimits,
) -> Result<StoreContents, ArchiveError> {
    let mut entries = read_entries(archive, limits)?;
    let manifest = parse_manifest(
        &entries
            .remove(MANIFEST_ENTRY)
            .ok_or(ArchiveError::MissingManifest)?,
    )?;
    let mut problems = Vec::new();

    check_listed_entries(&manifest, &entries, &mut problems);

    let records: ArchiveRecords = match entries.get(RECORDS_ENTRY).map(|b| {
        serde_json::from_slice(b).map_err(|e| ArchiveProblem::UnreadableRecords {
            detail: e.to_string(),
        })
    }) {
        Some(Ok(records)) => records,
        Some(Err(problem)) => {
            problems.push(problem);
            return Err(ArchiveError::Invalid { problems });
        }
        None => {
            if !problems.iter().any(
                |p| matches!(p, ArchiveProblem::MissingEntry { entry } if entry == RECORDS_ENTRY),
            ) {
                problems.push(ArchiveProblem::MissingEntry {
                    entry: RECORDS_ENTRY.into(),
                });
            }
            return Err(ArchiveError::Invalid { problems });
        }
    };

    let found = ArchiveCounts {
        profiles: records.profiles.len() as u64,
        images: records.images.len() as u64,
        models: records.models.len() as u64,
        checkpoints: records.checkpoints.len() as u64,
        runs: records.runs.len() as u64,
    };
    let listed_counts = manifest.counts;
    for (what, listed, found) in [
        ("profiles", listed_counts.profiles, found.profiles),
        ("photos", listed_counts.images, found.images),
        ("models", listed_counts.models, found.models),
        ("checkpoints", listed_counts.checkpoints, found.checkpoints),
        ("training runs", listed_counts.runs, found.runs),
    ] {
        if listed != found {
            problems.push(ArchiveProblem::CountMismatch {
                what,
                listed,
                found,
            });
        }
    }

    let contents = build_contents(records, &entries, image_limits, &mut problems);
    if problems.is_empty() {
        Ok(contents)
    } else {
        Err(ArchiveError::Invalid { problems })
    }
}

/// Turns records into a data set, checking each record; problems are collected, not fatal,
/// so the user hears about all of them at once.
fn build_contents(
    records: ArchiveRecords,
    entries: &BTreeMap<String, Vec<u8>>,
    image_limits: &ImageLimits,
    problems: &mut Vec<ArchiveProblem>,
) -> StoreContents {
    let mut builder = ContentsBuilder {
        entries,
        image_limits,
        problems,
        contents: StoreContents::default(),
    };
    for profile in records.profiles {
        builder.check(dataset::check_profile_record(&profile));
        builder.insert(|c| &mut c.profiles, profile);
    }
    for record in records.images {
        builder.add_image(record);
    }
    for record in records.models {
        builder.add_model(record);
    }
    for pointer in records.active_models {
        builder.add_active_model(pointer);
    }
    for record in records.checkpoints {
        builder.add_checkpoint(record);
    }
    for run in records.runs {
        builder.require_profile(&run.profile_id);
        builder.check(dataset::check_run_record(&run));
        builder.insert(|c| &mut c.runs, run);
    }
    if let Some(settings) = records.settings {
        builder.check(dataset::check_settings(&settings));
        builder.contents.settings = Some(settings);
    }
    builder.contents
}

/// Turns an archive's records into store contents, collecting every problem on the way.
struct ContentsBuilder<'a> {
    entries: &'a BTreeMap<String, Vec<u8>>,
    image_limits: &'a ImageLimits,
    problems: &'a mut Vec<ArchiveProblem>,
    contents: StoreContents,
}

impl ContentsBuilder<'_> {
    /// The bytes of `entry`, a payload of the `kind` record `id`.
    /// The bytes of `entry`; a missing one is a problem, and clears `complete`.
    fn payload(
        &mut self,
        kind: &'static str,
        id: &str,
        entry: &str,
        complete: &mut bool,
    ) -> Result<Vec<u8>, Infallible> {
        let bytes = self.entries.get(entry).cloned();
        if bytes.is_none() {
            *complete = false;
            self.problems.push(ArchiveProblem::MissingPayload {
                kind,
                id: id.to_owned(),
                entry: entry.to_owned(),
            });
        }
        Ok(bytes.unwrap_or_default())
    }

    fn check(&mut self, result: Result<(), StoreError>) {
        if let Err(error) = result {
            self.problems.push(ArchiveProblem::InvalidRecord { error });
        }
    }

    /// Adds `value` under `key` to the table `table` picks; a key already there is a
    /// duplicate in the archive.
    fn insert<T: Keyed>(
        &mut self,
        table: fn(&mut StoreContents) -> &mut BTreeMap<String, T>,
        record: T,
    ) {
        let key = record.key().to_owned();
        self.insert_as(table, T::KIND, key, record);
    }

    /// Adds `value` under `key`; a second record under the same key is a problem.
    fn insert_as<T>(
        &mut self,
        table: fn(&mut StoreContents) -> &mut BTreeMap<String, T>,
        kind: &'static str,
        key: String,
        value: T,
    ) {
        if table(&mut self.contents)
            .insert(key.clone(), value)
            .is_some()
        {
            self.problems
                .push(ArchiveProblem::DuplicateId { kind, id: key });
        }
    }

    fn require_profile(&mut self, profile: &str) {
        if !self.contents.profiles.contains_key(profile) {
            self.problems.push(ArchiveProblem::InvalidRecord {
                error: StoreError::UnknownProfile {
                    profile: profile.to_owned(),
                },
            });
        }
    }

    fn add_image(&mut self, record: ImageRecord) {
        self.require_profile(&record.meta.profile_id);
        let mut complete = true;
        let Ok(mut image) =
            record.attach(|entry| self.payload("photo", &record.meta.id, entry, &mut complete));
        if !complete {
            return;
        }
        // Archives carry no descriptors (derived data): they are computed again on use.
        image.descriptor = None;
        self.check(dataset::check_image_record(&image, self.image_limits));
        self.insert(|c| &mut c.images, image);
    }

    fn add_model(&mut self, record: ModelRecord) {
        self.require_profile(&record.meta.profile_id);
        let mut complete = true;
        let Ok(model) =
            record.attach(|entry| self.payload("model", &record.meta.id, entry, &mut complete));
        if !complete {
            return;
        }
        self.check(dataset::check_model_record(&model));
        self.insert(|c| &mut c.models, model);
    }

    fn add_active_model(&mut self, pointer: ActiveModelEntry) {
        self.require_profile(&pointer.profile_id);
        match self.contents.models.get(&pointer.model_id) {
            Some(model) if model.meta.profile_id == pointer.profile_id => {}
            _ => self.problems.push(ArchiveProblem::InvalidRecord {
                error: StoreError::NotFound {
                    kind: "active model",
                    id: pointer.model_id.clone(),
                },
            }),
        }
        self.insert_as(
            |c| &mut c.active_models,
            "active model of profile",
            pointer.profile_id,
            pointer.model_id,
        );
    }

    fn add_checkpoint(&mut self, record: CheckpointRecord) {
        self.require_profile(&record.meta.profile_id);
        let mut complete = true;
        let Ok(checkpoint) = record.attach(|entry| {
            self.payload("checkpoint", &record.meta.profile_id, entry, &mut complete)
        });
        if !complete {
            return;
        }
        self.check(dataset::check_checkpoint_record(&checkpoint));
        self.insert(|c| &mut c.checkpoints, checkpoint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_store_exports_a_valid_archive() {
        let bytes = encode_archive(&StoreContents::default());
        assert_eq!(bytes, encode_archive(&StoreContents::default()));
        let decoded =
            decode_archive(&bytes, &ArchiveLimits::default(), &ImageLimits::default()).unwrap();
        assert_eq!(decoded, StoreContents::default());
    }

    #[test]
    fn problems_are_listed_up_to_twenty() {
        let problems: Vec<ArchiveProblem> = (0..25)
            .map(|n| ArchiveProblem::MissingEntry {
                entry: format!("e{n}"),
            })
            .collect();
        let message = ArchiveError::Invalid { problems }.user_message();
        assert!(message.starts_with("The archive was not imported because 25 problems"));
        assert!(message.contains("'e19'"));
        assert!(!message.contains("'e20'"));
        assert!(message.ends_with("and 5 more"));
    }
}
