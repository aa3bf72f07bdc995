//! The storage contract on the native stores, plus what only native code can show: the
//! on-disk layout surviving failures and reopening, a newer layout refused, the quota, and
//! every hostile input.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use faceverify::store::archive::{
    self, ARCHIVE_FORMAT_VERSION, ArchiveError, ArchiveProblem, MANIFEST_ENTRY,
};
use faceverify::store::contract::{self, samples};
use faceverify::store::schema::{
    Migration, MigrationAction, SCHEMA, Schema, SchemaVersion, object_store,
};
use faceverify::store::validate::{
    self, ArchiveLimits, ImageError, ImageLimits, ModelFile, ModelFormatError, TensorDType,
    TensorSpec,
};
use faceverify::store::{
    DirStore, FaultInjector, ImageRole, ImportMode, MANIFEST_FILE, MemoryStore, Query, Record,
    SCHEMA_VERSION, Store, StoreError,
};
use pollster::block_on;
use serde_json::json;

#[path = "support/indexed.rs"]
mod indexed_database;
use indexed_database::json_store;

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "faceverify-store-{}-{n}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One test per contract case and implementation, so a failure names both.
macro_rules! contract_cases {
    ($($case:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(#[test]
            fn $case() {
                block_on(contract::$case(&MemoryStore::new()));
            })*
        }
        mod dir {
            use super::*;
            $(#[test]
            fn $case() {
                let dir = TempDir::new(stringify!($case));
                block_on(contract::$case(&DirStore::open(dir.path()).unwrap()));
            })*
        }
        mod indexed {
            use super::*;
            $(#[test]
            fn $case() {
                block_on(contract::$case(&json_store()));
            })*
        }
    };
}

contract_cases!(
    starts_empty,
    profiles_round_trip,
    images_round_trip_in_order,
    image_needs_a_profile,
    invalid_images_change_nothing,
    bad_batch_writes_nothing,
    delete_image,
    a_saved_model_replaces_the_profiles_earlier_ones,
    bad_model_changes_nothing,
    checkpoint_keeps_latest_per_profile,
    finishing_a_run_keeps_its_model_and_drops_its_checkpoint,
    runs_round_trip,
    settings_round_trip,
    usage_counts_payloads,
    delete_profile_cascades,
    clear_all_empties_everything,
    import_contents_replace_and_merge,
    archive_round_trip_is_byte_identical,
    hostile_archives_change_nothing,
    descriptors_round_trip_and_stay_out_of_archives,
);

#[test]
fn run_all_covers_every_case_on_memory() {
    block_on(contract::run_all(|| async { MemoryStore::new() }));
}

/// Every query the `Store` methods make, for the sample records and for ids that are not there.
fn sample_queries() -> Vec<Query<'static>> {
    let mut queries = vec![Query::Profiles, Query::Settings, Query::Everything];
    for id in ["alice", "bob", "nobody"] {
        queries.extend([
            Query::ModelSummaries(id),
            Query::ActiveModelId(id),
            Query::ActiveModel(id),
            Query::Checkpoint(id),
            Query::Runs(id),
        ]);
        let roles = ImageRole::ALL.map(Some).into_iter().chain([None]);
        queries.extend(roles.map(|role| Query::Images { profile: id, role }));
    }
    queries.extend(["alice-1", "bob-0", "nobody"].map(Query::Image));
    queries.extend(["run-1", "run-2"].map(Query::Run));
    queries
}

fn sorted(records: Vec<Record>) -> Vec<String> {
    let mut records: Vec<String> = records.iter().map(|r| format!("{r:?}")).collect();
    records.sort();
    records
}

/// The schema's keys and indexes (`Query::lookups`) find what the in-memory query finds.
#[test]
fn every_query_reads_the_same_records_through_the_schemas_indexes() {
    let (memory, indexed) = (MemoryStore::new(), json_store());
    block_on(samples::populate(&memory));
    block_on(samples::populate(&indexed));
    let mut found = 0;
    for query in sample_queries() {
        let expected = block_on(memory.read(query)).unwrap();
        found += usize::from(!expected.is_empty());
        let read = block_on(indexed.read(query)).unwrap();
        assert_eq!(sorted(read), sorted(expected), "{query:?}");
    }
    // Most queries find something, so this compares records, not empty answers.
    assert!(found >= 20, "{found}");
}

fn mark_photo(mut record: serde_json::Value) -> Result<serde_json::Value, String> {
    if record["id"] == "alice-2" {
        return Err("this photo cannot be rewritten".into());
    }
    record["upgraded"] = json!(true);
    Ok(record)
}

/// A later schema's migration runs its actions in order, and the first failure stops it with
/// the versions it was between.
#[test]
fn a_migration_runs_its_rewrite_and_reports_a_failure_with_its_versions() {
    let next = SchemaVersion(SCHEMA_VERSION.0 + 1);
    let migrations = Box::leak(Box::new([Migration {
        from: SCHEMA_VERSION,
        to: next,
        description: "marks every photo",
        actions: &[MigrationAction::RewriteRecords {
            store: object_store::IMAGES,
            rewrite: mark_photo,
        }],
    }]));
    let later = Schema {
        version: next,
        migrations,
    };
    let store = json_store();
    block_on(samples::populate(&store));
    let err = block_on(later.upgrade(SCHEMA_VERSION, store.database())).unwrap_err();
    assert!(
        matches!(&err, StoreError::MigrationFailed { from, to, detail }
            if *from == SCHEMA_VERSION.0 && *to == next.0 && detail.contains("cannot be rewritten")),
        "{err:?}"
    );
    // Nothing to run from the current version; a newer database is refused.
    block_on(later.upgrade(next, store.database())).unwrap();
    assert!(matches!(
        block_on(SCHEMA.upgrade(next, store.database())),
        Err(StoreError::SchemaTooNew { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Failures halfway

#[test]
fn memory_injected_failures_change_nothing() {
    let faults = FaultInjector::new();
    let store = MemoryStore::new().with_faults(faults.clone());
    block_on(contract::injected_failures_change_nothing(&store, &faults));
}

#[test]
fn indexed_injected_failures_roll_back_the_transaction() {
    let faults = FaultInjector::new();
    let store = json_store().with_faults(faults.clone());
    block_on(contract::injected_failures_change_nothing(&store, &faults));
}

#[test]
fn dir_injected_failures_change_nothing_in_memory_or_on_disk() {
    let dir = TempDir::new("faults");
    let faults = FaultInjector::new();
    let store = DirStore::open_with_faults(dir.path(), faults.clone()).unwrap();
    block_on(contract::injected_failures_change_nothing(&store, &faults));
    drop(store);

    // Every failure position, checked again by reopening from disk.
    let store = DirStore::open_with_faults(dir.path(), faults.clone()).unwrap();
    block_on(samples::populate(&store));
    let before = block_on(store.export_contents()).unwrap();
    let batch: Vec<_> = (0..3)
        .map(|n| samples::image(&format!("x{n}"), "bob", ImageRole::Negative, n))
        .collect();
    let mut failures = 0;
    loop {
        faults.fail_write(failures + 1);
        match block_on(store.put_images(&batch)) {
            Err(StoreError::WriteFailed { .. }) => {
                let reopened = DirStore::open(dir.path()).unwrap();
                assert_eq!(block_on(reopened.export_contents()).unwrap(), before);
                failures += 1;
            }
            Err(other) => panic!("{other:?}"),
            Ok(()) => break,
        }
    }
    faults.disarm();
    // 3 photos and 3 crops (file + rename each), then the manifest (file + rename).
    assert_eq!(failures, 14);
    let reopened = DirStore::open(dir.path()).unwrap();
    assert_eq!(
        block_on(reopened.list_images("bob", Some(ImageRole::Negative)))
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn dir_store_survives_reopening_and_cleans_leftovers_of_a_crash() {
    let dir = TempDir::new("reopen");
    let before = {
        let store = DirStore::open(dir.path()).unwrap();
        block_on(samples::populate(&store));
        block_on(store.export_contents()).unwrap()
    };
    // What a crash mid-transaction leaves: a half-written temp file and an unreferenced blob.
    std::fs::write(dir.path().join("MANIFEST.json.tmp"), b"{ half").unwrap();
    let orphan = dir.path().join("blobs").join("0".repeat(64));
    std::fs::write(&orphan, b"orphan payload").unwrap();
    let store = DirStore::open(dir.path()).unwrap();
    assert_eq!(block_on(store.export_contents()).unwrap(), before);
    assert!(!orphan.exists());
    assert!(!dir.path().join("MANIFEST.json.tmp").exists());
    // A damaged payload is reported as such, not returned: the store reads every payload
    // when it opens.
    drop(store);
    let blob = std::fs::read_dir(dir.path().join("blobs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&blob, b"bit rot").unwrap();
    let err = DirStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.user_message().contains("Delete all my data"));
}

#[test]
fn dir_store_refuses_a_newer_schema() {
    let dir = TempDir::new("newer");
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(
        dir.path().join(MANIFEST_FILE),
        br#"{ "schema_version": 3, "something": "new" }"#,
    )
    .unwrap();
    let err = DirStore::open(dir.path()).unwrap_err();
    assert_eq!(
        err,
        StoreError::SchemaTooNew {
            found: 3,
            supported: SCHEMA_VERSION.0
        }
    );
    assert!(err.user_message().contains("newer version"));
    // Nothing was touched.
    assert!(dir.path().join(MANIFEST_FILE).exists());
}

// ---------------------------------------------------------------------------------------------
// Quota

#[test]
fn quota_exceeded_is_a_clear_error_and_writes_nothing() {
    let sizing = MemoryStore::new();
    block_on(samples::populate(&sizing));
    let used = block_on(sizing.usage()).unwrap().total();

    let store = MemoryStore::with_quota(used + 500);
    block_on(samples::populate(&store));
    let before = block_on(store.export_contents()).unwrap();
    let batch: Vec<_> = (0..10)
        .map(|n| samples::image(&format!("q{n}"), "alice", ImageRole::Negative, n))
        .collect();
    let err = block_on(store.put_images(&batch)).unwrap_err();
    let StoreError::QuotaExceeded { needed, available } = err else {
        panic!("{err:?}");
    };
    assert_eq!(available, 500);
    assert!(needed > 500);
    let message = err.user_message();
    assert!(message.contains("Nothing was saved"), "{message}");
    assert!(
        message.contains("photos or profiles you no longer need"),
        "{message}"
    );
    assert_eq!(block_on(store.export_contents()).unwrap(), before);
    // Deleting still works on a full store, and frees room.
    assert!(block_on(store.delete_image("alice-0")).unwrap());
    assert!(block_on(store.delete_image("alice-1")).unwrap());
    block_on(store.put_image(&batch[0])).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Hostile photos

#[test]
fn not_an_image_is_refused() {
    let limits = ImageLimits::default();
    assert_eq!(
        validate::validate_image(b"hello, I am text", &limits),
        Err(ImageError::NotAnImage)
    );
    assert_eq!(
        validate::validate_image(b"", &limits),
        Err(ImageError::Empty)
    );
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
    assert!(matches!(
        validate::validate_image(gif, &limits),
        Err(ImageError::UnsupportedFormat { .. })
    ));
}

#[test]
fn truncated_jpeg_and_png_are_refused() {
    let limits = ImageLimits::default();
    let jpeg = samples::jpeg(64, 48, 9);
    assert!(validate::validate_image(&jpeg, &limits).is_ok());
    for keep in [jpeg.len() - 1, jpeg.len() / 2, 200] {
        let err = validate::validate_image(&jpeg[..keep], &limits).unwrap_err();
        assert_eq!(err, ImageError::Truncated { format: "JPEG" }, "kept {keep}");
        assert!(err.to_string().contains("truncated"));
    }
    let png = samples::png(64, 48, 9);
    let err = validate::validate_image(&png[..png.len() / 2], &limits).unwrap_err();
    assert_eq!(err, ImageError::Truncated { format: "PNG" });
}

#[test]
fn a_damaged_jpeg_body_is_refused() {
    let mut jpeg = samples::jpeg(64, 48, 9);
    // Keep the headers and the end marker, overwrite the frame header's component count.
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 9] = 0;
    assert!(validate::validate_image(&jpeg, &ImageLimits::default()).is_err());
}

#[test]
fn a_20000_by_20000_image_is_refused_from_its_header() {
    let limits = ImageLimits::default();
    for bytes in [
        samples::png_claiming(20_000, 20_000),
        samples::jpeg_claiming(20_000, 20_000),
    ] {
        let err = validate::inspect_image(&bytes, &limits).unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::TooLarge {
                    width: 20_000,
                    height: 20_000,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("resize"), "{err}");
        assert_eq!(validate::validate_image(&bytes, &limits).unwrap_err(), err);
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile models

#[test]
fn a_model_whose_shapes_do_not_fit_is_refused() {
    let good = samples::model_bytes(1);
    let header = validate::check_model_bytes(&good, samples::TOWER, 1).unwrap();
    let expected = header.tensors.clone();
    validate::check_model_layout(&header, &expected).unwrap();

    // The payload does not add up to the declared shapes.
    let err = validate::check_model_bytes(&good[..good.len() - 1], samples::TOWER, 1).unwrap_err();
    assert_eq!(
        err,
        ModelFormatError::PayloadSizeMismatch {
            expected: 36,
            actual: 35
        }
    );
    assert!(err.to_string().contains("truncated or damaged"));
    // Consistent file, wrong network.
    let other = ModelFile::new(
        samples::TOWER,
        vec![TensorSpec {
            name: "weight".into(),
            shape: vec![3, 2],
            dtype: TensorDType::F32,
        }],
        vec![0; 24],
    )
    .unwrap();
    let err = validate::check_model_layout(&other.header, &expected).unwrap_err();
    assert!(
        matches!(err, ModelFormatError::ShapeMismatch { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("different network"));
    // Shapes that overflow, a newer format, not a model at all.
    let mut huge = other.clone();
    huge.header.tensors[0].shape = vec![u64::MAX, 2];
    assert!(matches!(
        ModelFile::decode(&huge.encode()),
        Err(ModelFormatError::ShapeOverflow { .. })
    ));
    let mut newer = other.clone();
    newer.header.format_version = 9;
    assert_eq!(
        ModelFile::decode(&newer.encode()).unwrap_err(),
        ModelFormatError::UnsupportedVersion {
            found: 9,
            supported: 1
        }
    );
    assert_eq!(
        ModelFile::decode(b"PK\x03\x04 not a model at all").unwrap_err(),
        ModelFormatError::NotAModelFile
    );
    let decoded = ModelFile::decode(&good).unwrap();
    assert_eq!(decoded.tensor_bytes("bias").unwrap().len(), 12);
}

// ---------------------------------------------------------------------------------------------
// Hostile archives

fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).unwrap();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, *bytes).unwrap();
    }
    builder.into_inner().unwrap()
}

fn populated_archive() -> (MemoryStore, Vec<u8>) {
    let store = MemoryStore::new();
    block_on(samples::populate(&store));
    let bytes = block_on(archive::export_archive(&store)).unwrap();
    (store, bytes)
}

/// Entries of an archive, to rebuild it with changes.
fn entries_of(archive_bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut reader = tar::Archive::new(archive_bytes);
    reader
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

fn rebuild(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    tar_of(&refs)
}

fn import_into_populated(bytes: &[u8], limits: &ArchiveLimits) -> ArchiveError {
    let store = MemoryStore::new();
    block_on(samples::populate(&store));
    let before = block_on(store.export_contents()).unwrap();
    let err = block_on(archive::import_archive(
        &store,
        bytes,
        ImportMode::Replace,
        limits,
    ))
    .unwrap_err();
    assert_eq!(
        block_on(store.export_contents()).unwrap(),
        before,
        "a refused import changed the store: {err}"
    );
    err
}

#[test]
fn an_archive_bomb_is_refused_by_declared_sizes() {
    // A header claiming 10 GiB with almost nothing behind it: refused before reading.
    let mut header = tar::Header::new_ustar();
    header.set_path("images/000000.jpg").unwrap();
    header.set_size(10 << 30);
    header.set_mode(0o644);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(&[0; 1024]);
    let err = import_into_populated(&bytes, &ArchiveLimits::default());
    assert!(
        matches!(err, ArchiveError::EntryTooLarge { declared, .. } if declared == 10 << 30),
        "{err:?}"
    );
    assert!(err.user_message().contains("archive bomb"));

    // Many entries, each within the limit, adding up past the total.
    let (_, good) = populated_archive();
    let limits = ArchiveLimits {
        max_total_bytes: 2_000,
        ..ArchiveLimits::default()
    };
    assert!(matches!(
        import_into_populated(&good, &limits),
        ArchiveError::TooLarge { limit: 2_000 }
    ));

    // Too many entries.
    let blank = [0u8; 1];
    let names: Vec<String> = (0..50).map(|n| format!("e{n}")).collect();
    let many: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &blank[..])).collect();
    let limits = ArchiveLimits {
        max_entries: 40,
        ..ArchiveLimits::default()
    };
    assert!(matches!(
        import_into_populated(&tar_of(&many), &limits),
        ArchiveError::TooManyEntries { limit: 40 }
    ));
}

#[test]
fn a_zip_or_gzip_file_is_named_as_such() {
    let err = import_into_populated(b"PK\x03\x04 rest of a zip", &ArchiveLimits::default());
    assert!(err.user_message().contains("zip"), "{err}");
    let err = import_into_populated(&[0x1f, 0x8b, 8, 0, 0, 0], &ArchiveLimits::default());
    assert!(err.user_message().contains("gzip"), "{err}");
}

#[test]
fn an_archive_from_a_newer_format_version_is_refused() {
    let manifest = json!({
        "kind": "faceverify-export",
        "format_version": ARCHIVE_FORMAT_VERSION + 1,
        "whatever": "a future version writes",
    });
    let bytes = tar_of(&[(MANIFEST_ENTRY, &serde_json::to_vec(&manifest).unwrap())]);
    let err = import_into_populated(&bytes, &ArchiveLimits::default());
    assert_eq!(
        err,
        ArchiveError::NewerFormat {
            found: 2,
            supported: 1
        }
    );
    assert!(err.user_message().contains("newer version"));
}

#[test]
fn unsafe_names_and_missing_manifest_are_refused() {
    // `tar` refuses to write such a name, so it goes into the header by hand.
    let mut header = tar::Header::new_ustar();
    let name = b"../../etc/passwd";
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_size(1);
    header.set_mode(0o644);
    header.set_cksum();
    let mut traversal = header.as_bytes().to_vec();
    traversal.extend_from_slice(&[b'x'; 512]);
    traversal.extend_from_slice(&[0; 1024]);
    let err = import_into_populated(&traversal, &ArchiveLimits::default());
    assert!(
        matches!(err, ArchiveError::UnsafeEntryName { .. }),
        "{err:?}"
    );
    let err = import_into_populated(
        &tar_of(&[("records.json", b"{}")]),
        &ArchiveLimits::default(),
    );
    assert_eq!(err, ArchiveError::MissingManifest);
}

#[test]
fn import_reports_every_problem_exactly() {
    let (_, good) = populated_archive();
    let mut entries = entries_of(&good);
    // 1. A photo replaced by a truncated one: its size no longer matches.
    let photo = entries
        .iter_mut()
        .find(|(n, _)| n == "images/000001.jpg")
        .unwrap();
    let full_size = photo.1.len() as u64;
    photo.1.truncate(photo.1.len() / 2);
    // 1b. A model with one byte changed: its checksum no longer matches.
    let model = entries
        .iter_mut()
        .find(|(n, _)| n == "models/0001.fvmodel")
        .unwrap();
    let last = model.1.len() - 1;
    model.1[last] ^= 0xFF;
    // 2. An unlisted extra entry.
    entries.push(("notes.txt".into(), b"hello".to_vec()));
    // 3. A listed entry removed.
    entries.retain(|(n, _)| n != "crops/000002.png");
    let err = import_into_populated(&rebuild(&entries), &ArchiveLimits::default());
    let ArchiveError::Invalid { problems } = &err else {
        panic!("{err:?}");
    };
    assert!(problems.contains(&ArchiveProblem::SizeMismatch {
        entry: "images/000001.jpg".into(),
        listed: full_size,
        actual: full_size / 2,
    }));
    assert!(problems.contains(&ArchiveProblem::ChecksumMismatch {
        entry: "models/0001.fvmodel".into()
    }));
    assert!(problems.contains(&ArchiveProblem::UnlistedEntry {
        entry: "notes.txt".into()
    }));
    assert!(problems.contains(&ArchiveProblem::MissingEntry {
        entry: "crops/000002.png".into()
    }));
    // The truncated photo itself is named too, with why.
    assert!(
        problems.iter().any(|p| matches!(
            p,
            ArchiveProblem::InvalidRecord {
                error: StoreError::InvalidImage {
                    reason: ImageError::Truncated { .. },
                    ..
                }
            }
        )),
        "{problems:?}"
    );
    let message = err.user_message();
    assert!(message.contains("nothing was changed"), "{message}");
    assert!(message.contains("images/000001.jpg"), "{message}");
    assert!(message.contains("notes.txt"), "{message}");
}

#[test]
fn a_consistent_archive_with_a_bad_model_is_refused() {
    // Checksums re-computed, so only the content check can catch it.
    let (store, _) = populated_archive();
    let mut contents = block_on(store.export_contents()).unwrap();
    let model = contents.models.get_mut("alice-m2").unwrap();
    model.bytes.truncate(model.bytes.len() - 8);
    let bytes = archive::encode_archive(&contents);
    let err = import_into_populated(&bytes, &ArchiveLimits::default());
    let ArchiveError::Invalid { problems } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        matches!(
            &problems[0],
            ArchiveProblem::InvalidRecord {
                error: StoreError::InvalidModel { model_id, reason: ModelFormatError::PayloadSizeMismatch { .. } }
            } if model_id == "alice-m2"
        ),
        "{problems:?}"
    );
}

#[test]
fn dir_store_archive_round_trip_into_a_memory_store() {
    // Export from disk, import into memory: same data, same archive bytes.
    let dir = TempDir::new("cross");
    let disk = DirStore::open(dir.path()).unwrap();
    block_on(samples::populate(&disk));
    let bytes = block_on(archive::export_archive(&disk)).unwrap();
    let memory = MemoryStore::new();
    block_on(archive::import_archive(
        &memory,
        &bytes,
        ImportMode::Merge,
        &ArchiveLimits::default(),
    ))
    .unwrap();
    assert_eq!(
        block_on(memory.export_contents()).unwrap(),
        block_on(disk.export_contents()).unwrap()
    );
    assert_eq!(block_on(archive::export_archive(&memory)).unwrap(), bytes);
}
