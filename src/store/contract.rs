//! The contract every `Store` implementation passes: `MemoryStore` and `DirStore` natively
//! (tests/store_contract.rs), the IndexedDB store in headless Chromium (wasm-bindgen-test).
//! Each case takes a fresh, empty store and panics on a violation. No file system, threads
//! or clocks here, so the suite runs unchanged in a browser.

use std::future::Future;

use super::archive::{self, ArchiveError};
use super::validate::{ArchiveLimits, ModelFile, TensorDType, TensorSpec};
use super::{
    Checkpoint, CheckpointMeta, EpochStats, FaultInjector, ImageDescriptor, ImageMeta, ImageRole,
    ImageSource, ImportMode, ModelMeta, Profile, RunStatus, Settings, Store, StoreContents,
    StoreError, StoredImage, StoredModel, TrainingMode, TrainingRun,
};

/// Small, valid records for tests (encoded in memory with the `image` crate).
pub mod samples {
    use super::*;
    use image::ImageEncoder;

    /// A `width` × `height` RGB pattern, encoded into a buffer by `encode`.
    fn encoded(
        width: u32,
        height: u32,
        seed: u8,
        encode: impl FnOnce(&mut Vec<u8>, &[u8]) -> image::ImageResult<()>,
    ) -> Vec<u8> {
        let pixels: Vec<u8> = (0..width * height * 3)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect();
        let mut out = Vec::new();
        encode(&mut out, &pixels).expect("encoding an image in memory");
        out
    }

    pub fn jpeg(width: u32, height: u32, seed: u8) -> Vec<u8> {
        encoded(width, height, seed, |out, pixels| {
            image::codecs::jpeg::JpegEncoder::new_with_quality(out, 90).write_image(
                pixels,
                width,
                height,
                image::ExtendedColorType::Rgb8,
            )
        })
    }

    pub fn png(width: u32, height: u32, seed: u8) -> Vec<u8> {
        encoded(width, height, seed, |out, pixels| {
            image::codecs::png::PngEncoder::new(out).write_image(
                pixels,
                width,
                height,
                image::ExtendedColorType::Rgb8,
            )
        })
    }

    /// A PNG whose header claims `width` x `height` but holds no pixels: what a decompression
    /// bomb looks like to a header check.
    pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
        fn crc32(bytes: &[u8]) -> u32 {
            let mut crc = !0u32;
            for &b in bytes {
                crc ^= u32::from(b);
                for _ in 0..8 {
                    crc = if crc & 1 == 1 {
                        (crc >> 1) ^ 0xEDB8_8320
                    } else {
                        crc >> 1
                    };
                }
            }
            !crc
        }
        fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let start = out.len();
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            let crc = crc32(&out[start..]);
            out.extend_from_slice(&crc.to_be_bytes());
        }
        let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        chunk(&mut out, b"IHDR", &ihdr);
        // Decoders read the header up to the first data chunk; an empty one is enough.
        chunk(&mut out, b"IDAT", &[]);
        chunk(&mut out, b"IEND", &[]);
        out
    }

    /// A small real JPEG whose frame header is patched to claim `width` x `height`.
    pub fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
        let mut bytes = jpeg(16, 12, 3);
        let sof = bytes
            .windows(2)
            .position(|w| w[0] == 0xFF && (w[1] == 0xC0 || w[1] == 0xC2))
            .expect("a JPEG has a frame header");
        // FF C0, length (2), precision (1), height (2), width (2).
        bytes[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
        bytes[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
        bytes
    }

    pub fn profile(id: &str) -> Profile {
        Profile {
            id: id.into(),
            name: format!("Person {id}"),
        }
    }

    /// A 16x12 JPEG photo with an 8x8 PNG crop.
    pub fn image(id: &str, profile: &str, role: ImageRole, created: u64) -> StoredImage {
        let seed = id
            .bytes()
            .fold(0u8, |a, b| a.wrapping_mul(7).wrapping_add(b));
        StoredImage {
            meta: ImageMeta {
                id: id.into(),
                profile_id: profile.into(),
                role,
                source: ImageSource::Camera,
                created,
                width: 16,
                height: 12,
            },
            encoded: jpeg(16, 12, seed),
            aligned_crop: Some(png(8, 8, seed)),
            descriptor: None,
        }
    }

    pub const TOWER: &str = "test-tower";

    /// A model file with a 2x3 weight and a 3-element bias.
    pub fn model_bytes(seed: u8) -> Vec<u8> {
        let tensors = vec![
            TensorSpec {
                name: "weight".into(),
                shape: vec![2, 3],
                dtype: TensorDType::F32,
            },
            TensorSpec {
                name: "bias".into(),
                shape: vec![3],
                dtype: TensorDType::F32,
            },
        ];
        let payload = (0..36u8).map(|b| b.wrapping_add(seed)).collect();
        ModelFile::new(TOWER, tensors, payload)
            .expect("a consistent model file")
            .encode()
    }

    pub fn model(id: &str, profile: &str, created: u64) -> StoredModel {
        StoredModel {
            meta: ModelMeta {
                id: id.into(),
                profile_id: profile.into(),
                tower_kind: TOWER.into(),
                format_version: 1,
                created,
                training_settings: serde_json::json!({ "epochs": 3, "batch": 16 }),
                metrics: serde_json::json!({ "precision": 0.9, "recall": 0.8 }),
            },
            bytes: model_bytes(created as u8),
        }
    }

    pub fn checkpoint(profile: &str, run: &str, epoch: u32) -> Checkpoint {
        Checkpoint {
            meta: CheckpointMeta {
                profile_id: profile.into(),
                run_id: run.into(),
                epoch,
                position: 7,
                created: 1_000 + u64::from(epoch),
                trainer_state: serde_json::json!({ "seed": 42 }),
            },
            model_bytes: model_bytes(epoch as u8),
            optimiser_bytes: vec![epoch as u8; 20],
        }
    }

    pub fn run(id: &str, profile: &str, started: u64, epochs: u32) -> TrainingRun {
        TrainingRun {
            id: id.into(),
            profile_id: profile.into(),
            mode: TrainingMode::FineTune,
            started,
            status: RunStatus::Finished,
            settings: serde_json::json!({ "epochs": epochs }),
            epochs: (0..epochs)
                .map(|e| EpochStats {
                    epoch: e,
                    train_loss: 0.7 / f64::from(e + 1),
                    test_loss: Some(0.8 / f64::from(e + 1)),
                    precision: Some(0.5 + f64::from(e) * 0.1),
                    recall: None,
                })
                .collect(),
        }
    }

    pub fn settings() -> Settings {
        Settings {
            detection_threshold: 0.6,
            verification_threshold: 0.7,
            backend: super::super::BackendPreference::Cpu,
            mode: TrainingMode::Classic,
            attempt_false_accept_rate: 1e-3,
            adaptive_references: true,
            liveness_required: true,
        }
    }

    /// Writes each of `records`, in order, with the store's call `put`, which must succeed.
    async fn put_each<S: Store, T>(
        store: &S,
        put: impl AsyncFn(&S, &T) -> Result<(), StoreError>,
        records: &[T],
    ) {
        for record in records {
            put(store, record).await.unwrap();
        }
    }

    /// Two profiles with photos of every role, models (one active), a checkpoint, runs and
    /// settings.
    pub async fn populate<S: Store>(store: &S) {
        put_each(store, S::put_profile, &["alice", "bob"].map(profile)).await;
        let mut batch = Vec::new();
        for (n, role) in ImageRole::ALL.iter().enumerate() {
            batch.push(image(&format!("alice-{n}"), "alice", *role, 100 + n as u64));
        }
        store.put_images(&batch).await.unwrap();
        let bob_anchor = image("bob-0", "bob", ImageRole::Anchor, 5);
        put_each(store, S::put_image, &[bob_anchor]).await;
        put_each(
            store,
            S::replace_active_model,
            &[model("alice-m1", "alice", 10)],
        )
        .await;
        // An archive brought an older model that is not active.
        let mut archived = StoreContents::default();
        let older = model("alice-m2", "alice", 20);
        archived.models.insert(older.meta.id.clone(), older);
        let merge = store.import_contents(&archived, ImportMode::Merge).await;
        merge.expect("importing alice-m2");
        let checkpoints = [
            checkpoint("alice", "run-1", 2),
            checkpoint("bob", "run-2", 0),
        ];
        put_each(store, S::put_checkpoint, &checkpoints).await;
        let runs = [run("run-1", "alice", 50, 3), run("run-2", "bob", 60, 1)];
        put_each(store, S::put_run, &runs).await;
        put_each(store, S::put_settings, &[settings()]).await;
    }
}

use samples::*;

async fn snapshot(store: &impl Store) -> StoreContents {
    store.export_contents().await.expect("export_contents")
}

/// The ids of `records`, in the order they were listed.
fn ids<T>(records: Vec<T>, id: fn(T) -> String) -> Vec<String> {
    records.into_iter().map(id).collect()
}

/// Imports `archive_bytes` under the default limits.
async fn import_archive(
    store: &impl Store,
    archive_bytes: &[u8],
    mode: ImportMode,
) -> Result<archive::ArchiveImport, ArchiveError> {
    archive::import_archive(store, archive_bytes, mode, &ArchiveLimits::default()).await
}

/// Runs every case, each on a fresh store from `fresh`.
pub async fn run_all<S, F, Fut>(mut fresh: F)
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    starts_empty(&fresh().await).await;
    profiles_round_trip(&fresh().await).await;
    images_round_trip_in_order(&fresh().await).await;
    image_needs_a_profile(&fresh().await).await;
    invalid_images_change_nothing(&fresh().await).await;
    bad_batch_writes_nothing(&fresh().await).await;
    delete_image(&fresh().await).await;
    a_saved_model_replaces_the_profiles_earlier_ones(&fresh().await).await;
    bad_model_changes_nothing(&fresh().await).await;
    checkpoint_keeps_latest_per_profile(&fresh().await).await;
    finishing_a_run_keeps_its_model_and_drops_its_checkpoint(&fresh().await).await;
    runs_round_trip(&fresh().await).await;
    settings_round_trip(&fresh().await).await;
    usage_counts_payloads(&fresh().await).await;
    delete_profile_cascades(&fresh().await).await;
    clear_all_empties_everything(&fresh().await).await;
    import_contents_replace_and_merge(&fresh().await).await;
    archive_round_trip_is_byte_identical(&fresh().await).await;
    hostile_archives_change_nothing(&fresh().await).await;
    descriptors_round_trip_and_stay_out_of_archives(&fresh().await).await;
}

pub async fn starts_empty(store: &impl Store) {
    assert!(store.list_profiles().await.unwrap().is_empty());
    assert_eq!(snapshot(store).await, StoreContents::default());
    assert_eq!(store.settings().await.unwrap(), Settings::default());
    assert_eq!(store.usage().await.unwrap().images, 0);
    assert_eq!(store.get_image("nope").await.unwrap(), None);
    assert_eq!(store.active_model("nope").await.unwrap(), None);
    assert!(!store.delete_image("nope").await.unwrap());
    assert!(!store.delete_profile("nope").await.unwrap());
}

pub async fn profiles_round_trip(store: &impl Store) {
    store.put_profile(&profile("b")).await.unwrap();
    store.put_profile(&profile("a")).await.unwrap();
    let renamed = Profile {
        id: "b".into(),
        name: "Bea".into(),
    };
    store.put_profile(&renamed).await.unwrap();
    assert_eq!(
        store.list_profiles().await.unwrap(),
        vec![profile("a"), renamed.clone()]
    );
    let nameless = Profile {
        id: "c".into(),
        name: " ".into(),
    };
    assert!(matches!(
        store.put_profile(&nameless).await,
        Err(StoreError::InvalidRecord { .. })
    ));
}

pub async fn images_round_trip_in_order(store: &impl Store) {
    store.put_profile(&profile("p")).await.unwrap();
    store.put_profile(&profile("q")).await.unwrap();
    let late = image("late", "p", ImageRole::Anchor, 300);
    let early = image("early", "p", ImageRole::Anchor, 100);
    let tie_b = image("tie-b", "p", ImageRole::Anchor, 200);
    let tie_a = image("tie-a", "p", ImageRole::Anchor, 200);
    let negative = image("neg", "p", ImageRole::Negative, 50);
    let other = image("other", "q", ImageRole::Anchor, 1);
    let mut imported = image("imported", "p", ImageRole::Verification, 400);
    imported.meta.source = ImageSource::Import;
    imported.aligned_crop = None;
    for i in [&late, &early, &tie_b, &tie_a, &negative, &other, &imported] {
        store.put_image(i).await.unwrap();
    }
    assert_eq!(
        store.get_image("imported").await.unwrap(),
        Some(imported.clone())
    );
    assert_eq!(
        store
            .list_images("p", Some(ImageRole::Anchor))
            .await
            .unwrap(),
        vec![early, tie_a, tie_b, late]
    );
    let all = store.list_images("p", None).await.unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(all[0], negative);
    assert_eq!(all[5], imported);
    assert_eq!(store.list_images("q", None).await.unwrap(), vec![other]);
    // Same id replaces.
    let mut moved = imported.clone();
    moved.meta.role = ImageRole::Positive;
    store.put_image(&moved).await.unwrap();
    assert_eq!(store.get_image("imported").await.unwrap(), Some(moved));
    assert_eq!(store.list_images("p", None).await.unwrap().len(), 6);
}

pub async fn image_needs_a_profile(store: &impl Store) {
    let err = store
        .put_image(&image("i", "ghost", ImageRole::Anchor, 1))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::UnknownProfile {
            profile: "ghost".into()
        }
    );
    assert_eq!(snapshot(store).await, StoreContents::default());
}

/// Hostile photos: each is refused with a clear error and nothing stored changes.
pub async fn invalid_images_change_nothing(store: &impl Store) {
    populate(store).await;
    let before = snapshot(store).await;
    let good = image("new", "alice", ImageRole::Anchor, 1);
    let mut cases: Vec<(&str, StoredImage)> = Vec::new();
    let mut not_an_image = good.clone();
    not_an_image.encoded = b"this is a text file, not a photo".to_vec();
    cases.push(("not an image", not_an_image));
    let mut truncated = good.clone();
    truncated.encoded.truncate(truncated.encoded.len() * 2 / 3);
    cases.push(("truncated", truncated));
    let mut wrong_size = good.clone();
    wrong_size.meta.width = 17;
    cases.push(("wrong size", wrong_size));
    let mut huge = good.clone();
    huge.encoded = png_claiming(20_000, 20_000);
    huge.meta.width = 20_000;
    huge.meta.height = 20_000;
    cases.push(("20000x20000", huge));
    let mut bad_crop = good.clone();
    bad_crop.aligned_crop = Some(vec![0xFF, 0xD8, 0xFF, 0x00]);
    cases.push(("bad crop", bad_crop));
    let mut empty_id = good.clone();
    empty_id.meta.id = String::new();
    cases.push(("empty id", empty_id));
    for (what, bad) in cases {
        let err = store.put_image(&bad).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::InvalidImage { .. } | StoreError::InvalidRecord { .. }
            ),
            "{what}: {err:?}"
        );
        assert!(!err.user_message().is_empty());
        assert_eq!(snapshot(store).await, before, "{what} changed the store");
    }
}

/// One bad photo in a batch: the whole batch is refused, nothing of it is written.
pub async fn bad_batch_writes_nothing(store: &impl Store) {
    populate(store).await;
    let before = snapshot(store).await;
    let mut bad = image("b2", "alice", ImageRole::Negative, 2);
    bad.encoded.truncate(40);
    let batch = vec![
        image("b1", "alice", ImageRole::Negative, 1),
        bad,
        image("b3", "alice", ImageRole::Negative, 3),
    ];
    let err = store.put_images(&batch).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidImage { image_id, .. } if image_id == "b2"),
        "{err:?}"
    );
    assert_eq!(snapshot(store).await, before);
    let duplicated = vec![
        image("d", "alice", ImageRole::Negative, 1),
        image("d", "alice", ImageRole::Negative, 2),
    ];
    assert!(store.put_images(&duplicated).await.is_err());
    let mut orphan = batch.clone();
    orphan[1] = image("b2", "ghost", ImageRole::Negative, 2);
    assert!(matches!(
        store.put_images(&orphan).await,
        Err(StoreError::UnknownProfile { .. })
    ));
    assert_eq!(snapshot(store).await, before);
}

pub async fn delete_image(store: &impl Store) {
    populate(store).await;
    assert!(store.delete_image("alice-0").await.unwrap());
    assert_eq!(store.get_image("alice-0").await.unwrap(), None);
    assert!(!store.delete_image("alice-0").await.unwrap());
    // `populate` gives alice one photo of each role.
    assert_eq!(
        store.list_images("alice", None).await.unwrap().len(),
        ImageRole::ALL.len() - 1
    );
}

/// Saving a model activates it and deletes the profile's earlier models: only the active
/// one is ever used, and retraining must not fill the storage. Other profiles keep theirs.
pub async fn a_saved_model_replaces_the_profiles_earlier_ones(store: &impl Store) {
    populate(store).await;
    assert_eq!(
        store.active_model("alice").await.unwrap(),
        Some(model("alice-m1", "alice", 10))
    );
    // An archive may bring models that are not active: they are listed, oldest first.
    let listed = ids(store.list_models("alice").await.unwrap(), |m| m.meta.id);
    assert_eq!(listed, ["alice-m1", "alice-m2"]);
    assert_eq!(
        store.list_models("alice").await.unwrap()[0],
        model("alice-m1", "alice", 10).summary()
    );
    let bobs = model("bob-m", "bob", 5);
    store.replace_active_model(&bobs).await.unwrap();

    let newer = model("alice-m3", "alice", 30);
    store.replace_active_model(&newer).await.unwrap();
    assert_eq!(
        store.active_model("alice").await.unwrap(),
        Some(newer.clone())
    );
    assert_eq!(store.list_models("alice").await.unwrap(), [newer.summary()]);
    assert_eq!(store.list_models("bob").await.unwrap(), [bobs.summary()]);
    let stored = store.usage().await.unwrap().models;
    assert_eq!(stored, (newer.bytes.len() + bobs.bytes.len()) as u64);

    // Saving the active model again keeps it.
    store.replace_active_model(&newer).await.unwrap();
    assert_eq!(store.list_models("alice").await.unwrap(), [newer.summary()]);
    // Another profile's active model cannot be taken over by reusing its id.
    let err = store
        .replace_active_model(&model("bob-m", "alice", 40))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ActiveModelInUse { .. }),
        "{err:?}"
    );
    assert_eq!(store.active_model("bob").await.unwrap(), Some(bobs));
    assert_eq!(store.active_model("alice").await.unwrap(), Some(newer));
}

/// A model whose bytes do not fit its header is refused; the active model is untouched.
pub async fn bad_model_changes_nothing(store: &impl Store) {
    populate(store).await;
    let before = snapshot(store).await;
    let mut truncated = model("m-bad", "alice", 30);
    truncated.bytes.truncate(truncated.bytes.len() - 4);
    let mut not_a_model = model("m-bad", "alice", 30);
    not_a_model.bytes = b"GIF89a garbage".to_vec();
    let mut wrong_tower = model("m-bad", "alice", 30);
    wrong_tower.meta.tower_kind = "other-tower".into();
    for bad in [truncated, not_a_model, wrong_tower] {
        let err = store.replace_active_model(&bad).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidModel { .. }), "{err:?}");
        assert_eq!(snapshot(store).await, before);
    }
    let mut bad_checkpoint = checkpoint("alice", "run-1", 3);
    bad_checkpoint.model_bytes.truncate(20);
    assert!(store.put_checkpoint(&bad_checkpoint).await.is_err());
    assert_eq!(snapshot(store).await, before);
}

pub async fn checkpoint_keeps_latest_per_profile(store: &impl Store) {
    populate(store).await;
    let latest = [
        checkpoint("alice", "run-1", 3),
        checkpoint("bob", "run-2", 0),
    ];
    for c in &latest {
        store.put_checkpoint(c).await.unwrap();
    }
    for c in latest {
        assert_eq!(
            store.latest_checkpoint(&c.meta.profile_id).await.unwrap(),
            Some(c)
        );
    }
    assert!(matches!(
        store.put_checkpoint(&checkpoint("ghost", "r", 0)).await,
        Err(StoreError::UnknownProfile { .. })
    ));
}

/// A finished run closes in one transaction: its model replaces the profile's, the run is
/// saved as finished and the checkpoint goes. A refused run changes nothing.
pub async fn finishing_a_run_keeps_its_model_and_drops_its_checkpoint(store: &impl Store) {
    populate(store).await;
    let mut running = run("run-1", "alice", 50, 3);
    running.status = RunStatus::Running;
    store.put_run(&running).await.unwrap();
    let trained = model("alice-m3", "alice", 60);

    let mut diverged = run("run-1", "alice", 50, 3);
    diverged.epochs[0].train_loss = f64::NAN;
    let before = snapshot(store).await;
    assert!(store.finish_run(&trained, &diverged).await.is_err());
    assert_eq!(snapshot(store).await, before);

    let finished = run("run-1", "alice", 50, 3);
    store.finish_run(&trained, &finished).await.unwrap();
    assert_eq!(store.active_model("alice").await.unwrap(), Some(trained));
    assert_eq!(store.list_models("alice").await.unwrap().len(), 1);
    assert_eq!(store.get_run("run-1").await.unwrap(), Some(finished));
    assert_eq!(store.latest_checkpoint("alice").await.unwrap(), None);
    assert!(store.latest_checkpoint("bob").await.unwrap().is_some());
}

pub async fn runs_round_trip(store: &impl Store) {
    populate(store).await;
    let mut grown = run("run-1", "alice", 50, 5);
    grown.status = RunStatus::Running;
    store.put_run(&grown).await.unwrap();
    store.put_run(&run("run-0", "alice", 40, 1)).await.unwrap();
    assert_eq!(store.get_run("run-1").await.unwrap(), Some(grown.clone()));
    let listed = ids(store.list_runs("alice").await.unwrap(), |r| r.id);
    assert_eq!(listed, ["run-0", "run-1"]);
    let mut diverged = grown.clone();
    diverged.epochs[1].train_loss = f64::NAN;
    assert!(matches!(
        store.put_run(&diverged).await,
        Err(StoreError::InvalidRecord { .. })
    ));
    assert_eq!(store.get_run("run-1").await.unwrap(), Some(grown));
}

pub async fn settings_round_trip(store: &impl Store) {
    store.put_settings(&settings()).await.unwrap();
    assert_eq!(store.settings().await.unwrap(), settings());
    let mut bad = settings();
    bad.verification_threshold = 1.5;
    assert!(store.put_settings(&bad).await.is_err());
    assert_eq!(store.settings().await.unwrap(), settings());
}

pub async fn usage_counts_payloads(store: &impl Store) {
    store.put_profile(&profile("p")).await.unwrap();
    let empty = store.usage().await.unwrap();
    let photo = image("i", "p", ImageRole::Anchor, 1);
    store.put_image(&photo).await.unwrap();
    let with_photo = store.usage().await.unwrap();
    assert_eq!(with_photo.images - empty.images, photo.payload_bytes());
    let m = model("m", "p", 1);
    store.replace_active_model(&m).await.unwrap();
    assert_eq!(store.usage().await.unwrap().models, m.bytes.len() as u64);
    store.delete_image("i").await.unwrap();
    assert_eq!(store.usage().await.unwrap().images, 0);
}

pub async fn delete_profile_cascades(store: &impl Store) {
    populate(store).await;
    let bob_before = (
        store.list_images("bob", None).await.unwrap(),
        store.list_runs("bob").await.unwrap(),
    );
    assert!(store.delete_profile("alice").await.unwrap());
    assert_eq!(store.list_profiles().await.unwrap(), [profile("bob")]);
    assert!(store.list_images("alice", None).await.unwrap().is_empty());
    assert!(store.list_models("alice").await.unwrap().is_empty());
    assert_eq!(store.active_model_id("alice").await.unwrap(), None);
    assert_eq!(store.latest_checkpoint("alice").await.unwrap(), None);
    assert!(store.list_runs("alice").await.unwrap().is_empty());
    assert_eq!(store.usage().await.unwrap().models, 0);
    let bob_after = (
        store.list_images("bob", None).await.unwrap(),
        store.list_runs("bob").await.unwrap(),
    );
    assert_eq!(bob_before, bob_after);
    assert!(store.latest_checkpoint("bob").await.unwrap().is_some());
}

pub async fn clear_all_empties_everything(store: &impl Store) {
    populate(store).await;
    store.clear_all().await.unwrap();
    assert_eq!(snapshot(store).await, StoreContents::default());
    assert_eq!(store.settings().await.unwrap(), Settings::default());
    assert_eq!(store.usage().await.unwrap().images, 0);
    // Usable afterwards.
    populate(store).await;
}

pub async fn import_contents_replace_and_merge(store: &impl Store) {
    populate(store).await;
    let exported = snapshot(store).await;
    store.clear_all().await.unwrap();
    store
        .import_contents(&exported, ImportMode::Replace)
        .await
        .unwrap();
    assert_eq!(snapshot(store).await, exported);

    // Merge: incoming records are added, local choices (active model, checkpoint, settings)
    // are kept.
    let mut incoming = StoreContents::default();
    incoming.profiles.insert("carol".into(), profile("carol"));
    let carol = image("carol-0", "carol", ImageRole::Anchor, 1);
    incoming.images.insert(carol.meta.id.clone(), carol.clone());
    let other_alice_model = model("alice-m3", "alice", 30);
    incoming
        .models
        .insert(other_alice_model.meta.id.clone(), other_alice_model);
    incoming
        .active_models
        .insert("alice".into(), "alice-m3".into());
    incoming.settings = Some(Settings::default());
    let mut stray = incoming.clone();
    store
        .import_contents(&incoming, ImportMode::Merge)
        .await
        .unwrap();
    assert_eq!(store.get_image("carol-0").await.unwrap(), Some(carol));
    assert_eq!(
        store.active_model_id("alice").await.unwrap().as_deref(),
        Some("alice-m1")
    );
    assert_eq!(store.settings().await.unwrap(), settings());
    assert_eq!(store.list_models("alice").await.unwrap().len(), 3);

    // Replace with an inconsistent data set is refused whole.
    let before = snapshot(store).await;
    stray.profiles.clear();
    assert!(
        store
            .import_contents(&stray, ImportMode::Replace)
            .await
            .is_err()
    );
    assert_eq!(snapshot(store).await, before);
}

/// Export → wipe → import gives the same contents, and exporting again the same bytes.
pub async fn archive_round_trip_is_byte_identical(store: &impl Store) {
    populate(store).await;
    let before = snapshot(store).await;
    let archive_bytes = archive::export_archive(store).await.unwrap();
    store.clear_all().await.unwrap();
    assert_eq!(snapshot(store).await, StoreContents::default());
    let report = import_archive(store, &archive_bytes, ImportMode::Replace)
        .await
        .unwrap();
    // One photo of each role for alice, one for bob.
    assert_eq!(report.counts.images, ImageRole::ALL.len() as u64 + 1);
    assert_eq!(report.counts.models, 2);
    assert_eq!(snapshot(store).await, before);
    assert_eq!(archive::export_archive(store).await.unwrap(), archive_bytes);
    // Importing the same archive again in merge mode changes nothing.
    import_archive(store, &archive_bytes, ImportMode::Merge)
        .await
        .unwrap();
    assert_eq!(snapshot(store).await, before);
}

/// A photo's stored descriptor comes back bit for bit, can be replaced or dropped, and is
/// left out of archives (derived data, computed again after an import).
pub async fn descriptors_round_trip_and_stay_out_of_archives(store: &impl Store) {
    store.put_profile(&profile("p")).await.unwrap();
    let values = [0.1f32, -0.0, 1e-38, f32::MAX, -3.25, 7.0e-45];
    let mut photo = image("with-descriptor", "p", ImageRole::Anchor, 1);
    photo.descriptor = Some(ImageDescriptor::new("tower-a", &values));
    store.put_image(&photo).await.unwrap();
    let read = store.get_image(&photo.meta.id).await.unwrap().unwrap();
    assert_eq!(read, photo);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let descriptor = read.descriptor.as_ref().unwrap();
    assert_eq!(
        bits(&descriptor.values_for("tower-a", values.len()).unwrap()),
        bits(&values)
    );
    assert_eq!(descriptor.values_for("tower-b", values.len()), None);
    assert_eq!(descriptor.values_for("tower-a", values.len() + 1), None);
    assert_eq!(
        store.list_images("p", None).await.unwrap(),
        vec![photo.clone()]
    );

    let archive_bytes = archive::export_archive(store).await.unwrap();
    store.clear_all().await.unwrap();
    import_archive(store, &archive_bytes, ImportMode::Replace)
        .await
        .unwrap();
    let imported = store.get_image(&photo.meta.id).await.unwrap().unwrap();
    assert_eq!(imported.descriptor, None);
    assert_eq!(
        StoredImage {
            descriptor: photo.descriptor.clone(),
            ..imported
        },
        photo
    );
}

/// Damaged or hostile archives are refused before anything is written.
pub async fn hostile_archives_change_nothing(store: &impl Store) {
    populate(store).await;
    let before = snapshot(store).await;
    let good = archive::export_archive(store).await.unwrap();
    let hostile: Vec<(&str, Vec<u8>, ArchiveLimits)> = vec![
        ("empty file", Vec::new(), ArchiveLimits::default()),
        ("not an archive", jpeg(32, 32, 1), ArchiveLimits::default()),
        (
            "truncated archive",
            good[..good.len() / 2].to_vec(),
            ArchiveLimits::default(),
        ),
        (
            "flipped byte",
            {
                let mut bytes = good.clone();
                let at = bytes.len() - 2048;
                bytes[at] ^= 0x55;
                bytes
            },
            ArchiveLimits::default(),
        ),
        (
            "too many entries",
            good.clone(),
            ArchiveLimits {
                max_entries: 3,
                ..ArchiveLimits::default()
            },
        ),
    ];
    for (what, bytes, limits) in hostile {
        let err = archive::import_archive(store, &bytes, ImportMode::Replace, &limits)
            .await
            .unwrap_err();
        assert!(!matches!(err, ArchiveError::Store(_)), "{what}: {err:?}");
        assert!(!err.user_message().is_empty());
        assert_eq!(snapshot(store).await, before, "{what} changed the store");
    }
}

/// Fails each write of a transaction in turn: after every failure the store is exactly as
/// before; with no failure left to inject, the transaction completes. `faults` must be the
/// injector the store was built with.
pub async fn injected_failures_change_nothing(store: &impl Store, faults: &FaultInjector) {
    populate(store).await;
    let batch: Vec<StoredImage> = (0..3)
        .map(|n| image(&format!("batch-{n}"), "bob", ImageRole::Negative, 70 + n))
        .collect();
    let archive_bytes = archive::export_archive(store).await.unwrap();
    let new_model = model("bob-m", "bob", 99);

    for op in ["batch", "model", "import", "delete profile", "clear"] {
        let before = snapshot(store).await;
        let mut failures = 0u64;
        loop {
            faults.fail_write(failures + 1);
            let result = match op {
                "batch" => store.put_images(&batch).await,
                "model" => store.replace_active_model(&new_model).await,
                "import" => import_archive(store, &archive_bytes, ImportMode::Replace)
                    .await
                    .map(|_| ())
                    .map_err(|e| match e {
                        ArchiveError::Store(e) => e,
                        other => panic!("{other}"),
                    }),
                "delete profile" => store.delete_profile("alice").await.map(|_| ()),
                _ => store.clear_all().await,
            };
            match result {
                Err(StoreError::WriteFailed { detail }) => {
                    assert!(detail.contains("injected"), "{op}: {detail}");
                    let now = snapshot(store).await;
                    assert_eq!(
                        now,
                        before,
                        "{op}: failure {} changed the store",
                        failures + 1
                    );
                    failures += 1;
                    assert!(failures < 1000, "{op} never completed");
                }
                Err(other) => panic!("{op}: unexpected error {other:?}"),
                Ok(()) => {
                    faults.disarm();
                    break;
                }
            }
        }
        assert!(failures >= 1, "{op}: the store made no write");
    }
    assert_eq!(snapshot(store).await, StoreContents::default());
}
