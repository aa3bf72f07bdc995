#![cfg(target_arch = "wasm32")]
//! The storage contract on IndexedDB, in headless Chromium (a dedicated worker, like the app's
//! storage code), plus what only a browser can show: the version-1 database upgraded in
//! `onupgradeneeded`, a newer database refused, data surviving a closed connection, "Delete all
//! my data", and the quota error's mapping.

use std::cell::Cell;

use faceverify::store::archive;
use faceverify::store::contract::{self, samples};
use faceverify::store::schema::{self, MigrationAction, SchemaVersion, object_store};
use faceverify::store::validate::ArchiveLimits;
use faceverify::store::{
    Access, FaultInjector, ImageRole, ImageSource, ImportMode, SCHEMA_VERSION, Settings, Store,
    StoreContents, StoreError,
};
use faceverify::web::idb_store::{
    self, IdbStore, PersistentStorage, StorageEstimate, store_error_from_browser,
};
use idb::{DatabaseEvent as _, Event as _, Factory, Request as _};
use js_sys::{Reflect, Uint8Array};
use serde::Serialize;
use serde_json::{Value, json};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_dedicated_worker);

/// A database name no other test (or earlier run in the same profile) uses.
fn unique_name(what: &str) -> String {
    thread_local!(static COUNTER: Cell<u32> = const { Cell::new(0) });
    let n = COUNTER.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    let salt = (js_sys::Math::random() * 1e9) as u64;
    format!("faceverify-test-{what}-{n}-{salt}")
}

async fn fresh_store(what: &str) -> IdbStore {
    IdbStore::open(&unique_name(what)).await.unwrap()
}

#[wasm_bindgen_test]
async fn contract_suite_passes_on_indexeddb() {
    contract::run_all(|| fresh_store("contract")).await;
}

#[wasm_bindgen_test]
async fn injected_failures_roll_back_the_whole_transaction() {
    let faults = FaultInjector::new();
    let store = fresh_store("faults").await.with_faults(faults.clone());
    contract::injected_failures_change_nothing(&store, &faults).await;
    // The model save is one transaction: model and pointer together or not at all.
    samples::populate(&store).await;
    let before = store.export_contents().await.unwrap();
    faults.fail_write(2);
    let err = store
        .save_and_activate_model(&samples::model("alice-m9", "alice", 90))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WriteFailed { .. }), "{err:?}");
    assert_eq!(store.export_contents().await.unwrap(), before);
    store
        .save_and_activate_model(&samples::model("alice-m9", "alice", 90))
        .await
        .unwrap();
    assert_eq!(
        store.active_model_id("alice").await.unwrap().as_deref(),
        Some("alice-m9")
    );
    idb_store::delete_database(store.name()).await.unwrap();
}

/// Export, delete the whole database, import into a new one: the same records, and exporting
/// again gives the same bytes.
#[wasm_bindgen_test]
async fn export_wipe_import_is_byte_identical() {
    let name = unique_name("archive");
    let store = IdbStore::open(&name).await.unwrap();
    samples::populate(&store).await;
    let before = store.export_contents().await.unwrap();
    let archive_bytes = archive::export_archive(&store).await.unwrap();
    drop(store);

    idb_store::delete_database(&name).await.unwrap();
    let store = IdbStore::open(&name).await.unwrap();
    assert_eq!(
        store.export_contents().await.unwrap(),
        StoreContents::default()
    );
    archive::import_archive(
        &store,
        &archive_bytes,
        ImportMode::Replace,
        &ArchiveLimits::default(),
    )
    .await
    .unwrap();
    assert_eq!(store.export_contents().await.unwrap(), before);
    assert_eq!(
        archive::export_archive(&store).await.unwrap(),
        archive_bytes
    );
    idb_store::delete_database(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn data_survives_closing_and_reopening_the_database() {
    let name = unique_name("reopen");
    let store = IdbStore::open(&name).await.unwrap();
    samples::populate(&store).await;
    let before = store.export_contents().await.unwrap();
    drop(store);
    let store = IdbStore::open(&name).await.unwrap();
    assert_eq!(store.export_contents().await.unwrap(), before);
    // Closing explicitly: the next call reopens.
    store.close();
    assert_eq!(store.list_profiles().await.unwrap().len(), 2);
    idb_store::delete_database(&name).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Version 1

/// Creates `name` at `version` with the object stores and indexes `schema::MIGRATIONS`
/// describes up to that version, with raw idb calls (what version 1 of the app did).
async fn create_database_at(name: &str, version: SchemaVersion) -> idb::Database {
    let factory = Factory::new().unwrap();
    let mut request = factory.open(name, Some(version.0)).unwrap();
    request.on_upgrade_needed(move |event| {
        let database = event.database().unwrap();
        let transaction = event.target().unwrap().transaction().unwrap();
        for migration in schema::MIGRATIONS.iter().filter(|m| m.to <= version) {
            for action in migration.actions {
                match *action {
                    MigrationAction::CreateObjectStore { store, key_path } => {
                        let mut params = idb::ObjectStoreParams::new();
                        params.key_path(key_path.map(idb::KeyPath::new_single));
                        database.create_object_store(store, params).unwrap();
                    }
                    MigrationAction::CreateIndex {
                        store,
                        index,
                        key_path,
                        unique,
                    } => {
                        let mut params = idb::IndexParams::new();
                        params.unique(unique);
                        let key_path = if key_path.len() == 1 {
                            idb::KeyPath::new_single(key_path[0])
                        } else {
                            idb::KeyPath::new_array(key_path.iter().copied())
                        };
                        transaction
                            .object_store(store)
                            .unwrap()
                            .create_index(index, key_path, Some(params))
                            .unwrap();
                    }
                    // Records are written after the upgrade.
                    MigrationAction::DeriveActiveModelPointers
                    | MigrationAction::RewriteRecords { .. } => {}
                }
            }
        }
    });
    request.await.unwrap()
}

/// A JSON record as a JS object, with `payloads` set as `Uint8Array`s (as the app keeps them).
fn js_record(json: Value, payloads: &[(&str, &[u8])]) -> JsValue {
    let record = json
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .unwrap();
    for (field, bytes) in payloads {
        Reflect::set(&record, &(*field).into(), &Uint8Array::from(*bytes)).unwrap();
    }
    record
}

/// Writes version-1 records: images with `kind` and no `source`, models with `tower` and an
/// `active` flag, settings with only the thresholds. `broken_image` leaves out `kind`.
async fn write_version_1_records(database: &idb::Database, broken_image: bool) {
    let photo = samples::image("v1-photo", "alice", ImageRole::Verification, 7);
    let model = samples::model("v1-model", "alice", 3);
    let old_model = samples::model("v1-old", "alice", 1);
    let transaction = database
        .transaction(
            &[
                object_store::PROFILES,
                object_store::IMAGES,
                object_store::MODELS,
                object_store::SETTINGS,
            ],
            idb::TransactionMode::ReadWrite,
        )
        .unwrap();
    let put = |store: &str, record: JsValue, key: Option<&str>| {
        transaction
            .object_store(store)
            .unwrap()
            .put(&record, key.map(JsValue::from_str).as_ref())
            .unwrap()
    };
    put(
        object_store::PROFILES,
        js_record(json!({ "id": "alice", "name": "Alice" }), &[]),
        None,
    )
    .await
    .unwrap();
    let mut image = json!({
        "id": photo.id, "profile_id": "alice", "kind": "verification", "created": 7,
        "width": photo.width, "height": photo.height,
    });
    if broken_image {
        image.as_object_mut().unwrap().remove("kind");
    }
    let crop = photo.aligned_crop.clone().unwrap();
    put(
        object_store::IMAGES,
        js_record(
            image,
            &[("encoded", &photo.encoded), ("aligned_crop", &crop)],
        ),
        None,
    )
    .await
    .unwrap();
    let model_v1 = |m: &faceverify::store::StoredModel, active: bool| {
        json!({
            "id": m.id, "profile_id": "alice", "tower": m.tower_kind, "created": m.created,
            "training_settings": m.training_settings, "metrics": m.metrics, "active": active,
        })
    };
    put(
        object_store::MODELS,
        js_record(model_v1(&model, true), &[("bytes", &model.bytes)]),
        None,
    )
    .await
    .unwrap();
    // An older writer's number array instead of a Uint8Array reads back the same.
    let mut old = model_v1(&old_model, false);
    old["bytes"] = json!(old_model.bytes);
    put(object_store::MODELS, js_record(old, &[]), None)
        .await
        .unwrap();
    put(
        object_store::SETTINGS,
        js_record(
            json!({ "detection_threshold": 0.6, "verification_threshold": 0.8 }),
            &[],
        ),
        Some(schema::SETTINGS_KEY),
    )
    .await
    .unwrap();
    assert!(transaction.await.unwrap().is_committed());
}

fn assert_version_1_data_found(contents: &StoreContents) {
    let photo = samples::image("v1-photo", "alice", ImageRole::Verification, 7);
    assert_eq!(contents.profiles["alice"].name, "Alice");
    assert_eq!(contents.images["v1-photo"], photo);
    assert_eq!(contents.images["v1-photo"].source, ImageSource::Camera);
    assert_eq!(
        contents.models["v1-model"],
        samples::model("v1-model", "alice", 3)
    );
    assert_eq!(
        contents.models["v1-old"],
        samples::model("v1-old", "alice", 1)
    );
    assert_eq!(contents.active_models["alice"], "v1-model");
    assert_eq!(
        contents.settings,
        Some(Settings {
            detection_threshold: 0.6,
            verification_threshold: 0.8,
            ..Settings::default()
        })
    );
}

#[wasm_bindgen_test]
async fn version_1_database_opened_with_version_2_finds_everything() {
    let name = unique_name("v1");
    let database = create_database_at(&name, SchemaVersion(1)).await;
    write_version_1_records(&database, false).await;
    database.close();

    let store = IdbStore::open(&name).await.unwrap();
    assert_version_1_data_found(&store.export_contents().await.unwrap());
    assert_eq!(
        store.active_model("alice").await.unwrap().unwrap().id,
        "v1-model"
    );
    // The version-2 indexes work on migrated records.
    assert_eq!(
        store
            .list_images("alice", Some(ImageRole::Verification))
            .await
            .unwrap()
            .len(),
        1
    );
    drop(store);
    // Reopening reads the version-2 layout as it is.
    let store = IdbStore::open(&name).await.unwrap();
    assert_version_1_data_found(&store.export_contents().await.unwrap());
    idb_store::delete_database(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_failed_migration_leaves_the_version_1_database_whole() {
    let name = unique_name("v1-broken");
    let database = create_database_at(&name, SchemaVersion(1)).await;
    write_version_1_records(&database, true).await;
    database.close();

    let err = IdbStore::open(&name).await.unwrap_err();
    assert!(
        matches!(err, StoreError::MigrationFailed { from: 1, to: 2, .. }),
        "{err:?}"
    );
    assert!(err.user_message().contains("Nothing was changed"), "{err}");

    // Still version 1, with its stores and records as they were.
    let database = Factory::new()
        .unwrap()
        .open(&name, None)
        .unwrap()
        .await
        .unwrap();
    assert_eq!(database.version().unwrap(), 1);
    assert!(
        !database
            .store_names()
            .contains(&object_store::RUNS.to_string())
    );
    let transaction = database
        .transaction(&[object_store::MODELS], idb::TransactionMode::ReadOnly)
        .unwrap();
    let models = transaction
        .object_store(object_store::MODELS)
        .unwrap()
        .get_all(None, None)
        .unwrap()
        .await
        .unwrap();
    assert_eq!(models.len(), 2);
    assert!(
        models
            .iter()
            .all(|m| Reflect::has(m, &"tower".into()).unwrap())
    );
    database.close();
    idb_store::delete_database(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_database_from_a_newer_version_is_refused_untouched() {
    let name = unique_name("newer");
    let database = create_database_at(&name, SchemaVersion(SCHEMA_VERSION.0 + 1)).await;
    database.close();
    let err = IdbStore::open(&name).await.unwrap_err();
    assert_eq!(
        err,
        StoreError::SchemaTooNew {
            found: SCHEMA_VERSION.0 + 1,
            supported: SCHEMA_VERSION.0
        }
    );
    assert!(err.user_message().contains("newer version"), "{err}");
    idb_store::delete_database(&name).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Quota, persistence, deleting everything

/// Filling the real quota would take gigabytes, so the mapping is checked on the exceptions
/// the browser raises: a `DOMException` named `QuotaExceededError`, and the newer shape that
/// says how much was requested.
#[wasm_bindgen_test]
fn quota_exceeded_becomes_a_clear_message() {
    let estimate = StorageEstimate {
        usage: 9_000_000,
        quota: 10_000_000,
    };
    let exception = web_sys::DomException::new_with_message_and_name(
        "The quota has been exceeded.",
        "QuotaExceededError",
    )
    .unwrap();
    let err = store_error_from_browser(&exception.into(), Access::Write, 3_000_000, Some(estimate));
    assert_eq!(
        err,
        StoreError::QuotaExceeded {
            needed: 3_000_000,
            available: 1_000_000
        }
    );
    let message = err.user_message();
    assert!(message.contains("3.0 MB"), "{message}");
    assert!(message.contains("1.0 MB"), "{message}");
    assert!(message.contains("Nothing was saved"), "{message}");
    assert!(message.contains("checkpoint"), "{message}");

    let newer = js_record(
        json!({ "name": "QuotaExceededError", "message": "full", "requested": 5_000_000 }),
        &[],
    );
    assert_eq!(
        store_error_from_browser(&newer, Access::Write, 1, None),
        StoreError::QuotaExceeded {
            needed: 5_000_000,
            available: 0
        }
    );

    // Anything else keeps its name in the detail, with the message for that kind of access.
    let other = web_sys::DomException::new_with_message_and_name("disk gone", "UnknownError")
        .unwrap()
        .into();
    let write = store_error_from_browser(&other, Access::Write, 0, None);
    assert_eq!(
        write,
        StoreError::WriteFailed {
            detail: "UnknownError: disk gone".into()
        }
    );
    assert!(write.user_message().contains("Nothing was changed"));
    assert!(matches!(
        store_error_from_browser(&other, Access::Read, 0, None),
        StoreError::ReadFailed { .. }
    ));
    let open = store_error_from_browser(&other, Access::Open, 0, None);
    assert!(matches!(open, StoreError::Unavailable { .. }), "{open:?}");
    assert!(open.user_message().contains("Private windows"));
}

#[wasm_bindgen_test]
async fn storage_estimate_and_persistence_are_reported() {
    let estimate = idb_store::storage_usage()
        .await
        .expect("Chromium workers have navigator.storage.estimate()");
    assert!(estimate.quota > 0, "{estimate:?}");
    // `persist()` exists only in windows; these tests run in a worker.
    assert_eq!(
        idb_store::request_persistent_storage().await,
        PersistentStorage::Unsupported
    );
}

#[wasm_bindgen_test]
async fn delete_all_data_empties_the_database_even_while_it_is_open() {
    let store = IdbStore::open_default().await.unwrap();
    samples::populate(&store).await;
    assert!(!store.list_profiles().await.unwrap().is_empty());
    // The open connection closes itself when the deletion asks it to.
    idb_store::delete_all_data().await.unwrap();
    // The store reopens a new, empty database on its next call.
    assert_eq!(
        store.export_contents().await.unwrap(),
        StoreContents::default()
    );
    assert_eq!(store.settings().await.unwrap(), Settings::default());
    drop(store);
    idb_store::delete_all_data().await.unwrap();
}
