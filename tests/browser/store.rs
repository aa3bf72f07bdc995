//! The storage contract on IndexedDB, in headless Chromium (a dedicated worker, like the app's
//! storage code), plus what only a browser can show: an upgrade in `onupgradeneeded` (records
//! rewritten, or all rolled back), a newer database refused, data surviving a closed
//! connection, "Delete all my data", and the quota error's mapping.

use std::cell::Cell;

use faceverify::store::archive;
use faceverify::store::contract::{self, samples};
use faceverify::store::schema::{Migration, MigrationAction, Schema, SchemaVersion, object_store};
use faceverify::store::validate::ArchiveLimits;
use faceverify::store::{
    Access, FaultInjector, ImportMode, SCHEMA_VERSION, Settings, StorageEstimate, Store,
    StoreContents, StoreError,
};
use faceverify::web::idb_store::{self, IdbStore, failure_from_js};
use js_sys::{Reflect, Uint8Array};
use serde::Serialize;
use serde_json::{Value, json};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

/// A browser failure as the store reports it, given what the storage estimate said.
fn store_error_from_browser(
    error: &JsValue,
    access: Access,
    needed: u64,
    estimate: Option<StorageEstimate>,
) -> StoreError {
    failure_from_js(error).to_store_error(access, needed, estimate.map(|e| e.available()))
}

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

/// A fresh database holding the sample records, its name, and its records as exported.
async fn populated_store(what: &str) -> (String, IdbStore, StoreContents) {
    let store = fresh_store(what).await;
    samples::populate(&store).await;
    let contents = store.export_contents().await.unwrap();
    (store.name().to_owned(), store, contents)
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
        .replace_active_model(&samples::model("alice-m9", "alice", 90))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WriteFailed { .. }), "{err:?}");
    assert_eq!(store.export_contents().await.unwrap(), before);
    store
        .replace_active_model(&samples::model("alice-m9", "alice", 90))
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
    let (name, store, before) = populated_store("archive").await;
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
    let (name, store, before) = populated_store("reopen").await;
    drop(store);
    let store = IdbStore::open(&name).await.unwrap();
    assert_eq!(store.export_contents().await.unwrap(), before);
    // Closing explicitly: the next call reopens.
    store.close();
    assert_eq!(store.list_profiles().await.unwrap().len(), 2);
    idb_store::delete_database(&name).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Upgrades

/// The version after this build's, as a later build would define it.
const NEXT: SchemaVersion = SchemaVersion(SCHEMA_VERSION.0 + 1);

/// A later schema that rewrites every photo record (adding a field the photo type ignores).
static MARKING: Schema = Schema {
    version: NEXT,
    migrations: &[Migration {
        from: SCHEMA_VERSION,
        to: NEXT,
        description: "marks every photo",
        actions: &[MigrationAction::RewriteRecords {
            store: object_store::IMAGES,
            rewrite: mark_photo,
        }],
    }],
};

/// Like `MARKING`, but its rewrite fails on the third photo, after two were rewritten.
static FAILING: Schema = Schema {
    version: NEXT,
    migrations: &[Migration {
        from: SCHEMA_VERSION,
        to: NEXT,
        description: "fails on the third photo",
        actions: &[MigrationAction::RewriteRecords {
            store: object_store::IMAGES,
            rewrite: mark_two_photos,
        }],
    }],
};

fn mark_photo(mut record: Value) -> Result<Value, String> {
    record["upgraded"] = json!(true);
    Ok(record)
}

thread_local! {
    static PHOTOS_REWRITTEN: Cell<usize> = const { Cell::new(0) };
}

fn mark_two_photos(record: Value) -> Result<Value, String> {
    let done = PHOTOS_REWRITTEN.with(|n| n.replace(n.get() + 1));
    if done == 2 {
        return Err("this photo cannot be rewritten".into());
    }
    mark_photo(record)
}

/// The database's version and its photo records, read by plain JavaScript.
async fn raw_photos(name: &str) -> (u32, Vec<JsValue>) {
    let read = js_sys::Function::new_with_args(
        "name, store",
        "return new Promise((resolve, reject) => {
            const open = indexedDB.open(name);
            open.onerror = () => reject(open.error);
            open.onsuccess = () => {
                const database = open.result;
                const all = database.transaction(store).objectStore(store).getAll();
                all.onerror = () => reject(all.error);
                all.onsuccess = () => { database.close(); resolve([database.version, all.result]); };
            };
        })",
    );
    let promise = read
        .call2(&JsValue::NULL, &name.into(), &object_store::IMAGES.into())
        .unwrap();
    let found: js_sys::Array = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise))
        .await
        .unwrap()
        .unchecked_into();
    let photos: js_sys::Array = found.get(1).unchecked_into();
    (found.get(0).as_f64().unwrap() as u32, photos.to_vec())
}

fn upgraded(photo: &JsValue) -> bool {
    Reflect::get(photo, &"upgraded".into()).unwrap() == JsValue::TRUE
}

#[wasm_bindgen_test]
async fn an_upgrade_rewrites_records_and_keeps_their_payloads() {
    let (name, store, before) = populated_store("upgrade").await;
    drop(store);

    let store = IdbStore::open_with_schema(&name, &MARKING).await.unwrap();
    assert_eq!(store.export_contents().await.unwrap(), before);
    drop(store);
    let (version, photos) = raw_photos(&name).await;
    assert_eq!(version, NEXT.0);
    assert_eq!(photos.len(), before.images.len());
    for photo in &photos {
        assert!(upgraded(photo));
        let encoded = Reflect::get(photo, &"encoded".into()).unwrap();
        assert!(encoded.is_instance_of::<Uint8Array>());
    }

    // This build cannot read what the later one wrote, and says so without touching it.
    let err = IdbStore::open(&name).await.unwrap_err();
    assert_eq!(
        err,
        StoreError::SchemaTooNew {
            found: NEXT.0,
            supported: SCHEMA_VERSION.0
        }
    );
    assert!(err.user_message().contains("newer version"), "{err}");
    let store = IdbStore::open_with_schema(&name, &MARKING).await.unwrap();
    assert_eq!(store.export_contents().await.unwrap(), before);
    drop(store);
    idb_store::delete_database(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_failed_upgrade_leaves_the_database_whole() {
    let (name, store, before) = populated_store("upgrade-fails").await;
    drop(store);

    PHOTOS_REWRITTEN.with(|n| n.set(0));
    let err = IdbStore::open_with_schema(&name, &FAILING)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::MigrationFailed { from, to, .. }
            if from == SCHEMA_VERSION.0 && to == NEXT.0),
        "{err:?}"
    );
    assert!(err.user_message().contains("Nothing was changed"), "{err}");
    assert!(PHOTOS_REWRITTEN.with(Cell::get) >= 3);

    // Still at its version, the two rewrites made before the failure rolled back.
    let (version, photos) = raw_photos(&name).await;
    assert_eq!(version, SCHEMA_VERSION.0);
    assert!(!photos.iter().any(upgraded));
    let store = IdbStore::open(&name).await.unwrap();
    assert_eq!(store.export_contents().await.unwrap(), before);
    drop(store);
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
    assert!(message.contains("deleting photos or profiles"), "{message}");

    let newer = json!({ "name": "QuotaExceededError", "message": "full", "requested": 5_000_000 })
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .unwrap();
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
async fn the_storage_estimate_is_reported() {
    let estimate = idb_store::storage_usage()
        .await
        .expect("Chromium workers have navigator.storage.estimate()");
    assert!(estimate.quota > 0, "{estimate:?}");
}

#[wasm_bindgen_test]
async fn deleting_the_database_empties_it_even_while_it_is_open() {
    let store = IdbStore::open(idb_store::DATABASE_NAME).await.unwrap();
    samples::populate(&store).await;
    assert!(!store.list_profiles().await.unwrap().is_empty());
    // The open connection closes itself when the deletion asks it to.
    idb_store::delete_database(store.name()).await.unwrap();
    // The store reopens a new, empty database on its next call.
    assert_eq!(
        store.export_contents().await.unwrap(),
        StoreContents::default()
    );
    assert_eq!(store.settings().await.unwrap(), Settings::default());
    drop(store);
    idb_store::delete_database(idb_store::DATABASE_NAME)
        .await
        .unwrap();
}
