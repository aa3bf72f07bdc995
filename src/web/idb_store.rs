//! `IdbStore`: the [`Store`] on IndexedDB (through the `idb` crate), plus the storage helpers
//! [`storage_usage`] and [`delete_all_data`].
//!
//! Layout (`store::schema`): one object store per record kind. Records cross
//! the JS boundary the way every value does, through serde-wasm-bindgen: photos, models and
//! checkpoints keep their payloads as `Uint8Array`s (one copy in, one copy out); the free-form
//! JSON fields (training settings, metrics...) are plain objects, so a number like `1.0` in
//! them reads back as the equal `1`.
//!
//! Transactions: every `Store` method is one IndexedDB transaction. A write first reads, inside
//! its own readwrite transaction, the keys and references planning needs (no payloads), plans
//! with `store::dataset` (the rules every store shares), then issues its writes one by one. Any
//! failure (a refused record, a write the browser rejects, an injected fault, the quota) aborts
//! the transaction, and IndexedDB rolls back every write already made in it, so the stored data
//! is exactly as before. A model save writes the model and switches the active pointer in the
//! same transaction.
//!
//! Upgrades run the schema's migrations in `onupgradeneeded`: object stores and indexes are
//! created, then records are rewritten with cursors inside the upgrade transaction. A failed
//! rewrite aborts the upgrade, which leaves the database at its old version, untouched.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::fmt;
use std::rc::Rc;

use idb::{
    Database, DatabaseEvent as _, Event as _, Factory, IndexParams, KeyPath, ObjectStoreParams,
    Query as KeyQuery, Request as _, TransactionMode,
};
use js_sys::{Array, ArrayBuffer, Function, Object, Promise, Reflect, Uint8Array};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::executor::spawn_local;
use web_sys::{IdbDatabase, IdbTransaction};

use crate::store::dataset::{Catalog, Change, StoreContents};
use crate::store::detached::ActiveModelEntry;
use crate::store::schema::object_store::{
    ACTIVE_MODELS, ALL, CHECKPOINTS, IMAGES, MODELS, PROFILES, RUNS, SETTINGS,
};
use crate::store::schema::{
    BY_PROFILE, BY_PROFILE_ROLE, MigrationAction, SCHEMA, SETTINGS_KEY, Schema, SchemaVersion,
    StoreWrite,
};
use crate::store::validate::ImageLimits;
use crate::store::{
    Access, FaultInjector, ModelSummary, Query, Record, StorageEstimate, StorageFailure,
    StorageUsage, Store, StoreError,
};

/// The app's database.
pub const DATABASE_NAME: &str = "faceverify";

/// Cache Storage caches whose names start with this belong to the app ("Delete all my data"
/// deletes them). The origin may host other apps that import `pkg/`, so only these go.
pub const CACHE_NAME_PREFIX: &str = "faceverify";

// ---------------------------------------------------------------------------------------------
// Errors

/// A browser failure (a `DOMException`, an `Error`, or an idb error) as the store's rules
/// read it.
fn failure_from_js(value: &JsValue) -> StorageFailure {
    let text = |key: &str| {
        Reflect::get(value, &JsValue::from_str(key))
            .ok()
            .and_then(|v| v.as_string())
    };
    let requested = Reflect::get(value, &JsValue::from_str("requested"))
        .ok()
        .and_then(|v| v.as_f64())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v as u64);
    StorageFailure {
        name: text("name").filter(|n| !n.is_empty()),
        message: text("message")
            .or_else(|| value.as_string())
            .unwrap_or_else(|| format!("{value:?}")),
        requested,
    }
}

fn failure_from_idb(error: &idb::Error) -> StorageFailure {
    match js_value_of(error) {
        Some(value) if value.is_object() => failure_from_js(&value),
        _ => StorageFailure {
            message: error.to_string(),
            ..StorageFailure::default()
        },
    }
}

/// The JS value inside an idb error, when it wraps one.
fn js_value_of(error: &idb::Error) -> Option<JsValue> {
    use idb::Error::*;
    match error {
        DomException(e) => Some(e.clone().into()),
        AddFailed(v)
        | ClearFailed(v)
        | CountFailed(v)
        | CursorAdvanceFailed(v)
        | CursorContinueFailed(v)
        | CursorKeyNotFound(v)
        | CursorPrimaryKeyNotFound(v)
        | CursorValueNotFound(v)
        | DeleteFailed(v)
        | GetAllFailed(v)
        | GetAllKeysFailed(v)
        | GetFailed(v)
        | GetKeyFailed(v)
        | IndexCreateFailed(v)
        | IndexDeleteFailed(v)
        | IndexedDbDeleteFailed(v)
        | IndexedDbNotFound(v)
        | IndexedDbOpenFailed(v)
        | IndexNotFound(v)
        | KeyPathNotFound(v)
        | KeyRangeCreateFailed(v)
        | ObjectStoreCreateFailed(v)
        | ObjectStoreDeleteFailed(v)
        | ObjectStoreNotFound(v)
        | OpenCursorFailed(v)
        | OpenKeyCursorFailed(v)
        | TransactionAbortError(v)
        | TransactionCommitError(v)
        | TransactionOpenFailed(v)
        | UpdateFailed(v) => Some(v.clone()),
        _ => None,
    }
}

/// Turns a browser failure (a `DOMException`, or any object with `name` and `message`) into
/// the store's error for that kind of access (`StorageFailure::to_store_error`), with the
/// storage estimate where the quota is the problem.
pub fn store_error_from_browser(
    error: &JsValue,
    access: Access,
    needed: u64,
    estimate: Option<StorageEstimate>,
) -> StoreError {
    failure_from_js(error).to_store_error(access, needed, estimate.map(|e| e.available()))
}

/// Like `store_error_from_browser`, reading the storage estimate when the quota is the problem.
async fn classify(failure: &StorageFailure, access: Access, needed: u64) -> StoreError {
    let available = if failure.is_quota() {
        storage_usage().await.map(|e| e.available())
    } else {
        None
    };
    failure.to_store_error(access, needed, available)
}

fn corrupt(store: &str, reason: impl fmt::Display) -> StoreError {
    StoreError::Corrupt {
        detail: format!("a record in '{store}' is unreadable: {reason}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Records as IndexedDB holds them

/// A record as IndexedDB stores it, written as every value that crosses to JS is.
fn to_record<T: Serialize + ?Sized>(
    value: &T,
    kind: &'static str,
    id: &str,
) -> Result<JsValue, StoreError> {
    value
        .serialize(&super::JS_SERIALIZER)
        .map_err(|e| StoreError::InvalidRecord {
            kind,
            id: id.to_owned(),
            reason: format!("the browser cannot store it ({e})"),
        })
}

fn from_record<T: DeserializeOwned>(value: JsValue, store: &str) -> Result<T, StoreError> {
    serde_wasm_bindgen::from_value(value).map_err(|e| corrupt(store, e))
}

/// The byte fields of a photo record.
const IMAGE_PAYLOADS: &[&str] = &["encoded", "aligned_crop", "descriptor"];

/// Length of a payload field (`Uint8Array` or number array) without copying it into wasm.
fn payload_len(record: &JsValue, field: &str) -> u64 {
    let value = Reflect::get(record, &JsValue::from_str(field)).unwrap_or(JsValue::UNDEFINED);
    if let Some(bytes) = value.dyn_ref::<Uint8Array>() {
        u64::from(bytes.length())
    } else if let Some(array) = value.dyn_ref::<Array>() {
        u64::from(array.length())
    } else {
        0
    }
}

fn string_key(key: JsValue, store: &str) -> Result<String, StoreError> {
    key.as_string()
        .ok_or_else(|| corrupt(store, format!("its key {key:?} is not text")))
}

// ---------------------------------------------------------------------------------------------
// Writes

/// One IndexedDB request of a write transaction.
enum Write {
    Put {
        store: &'static str,
        value: JsValue,
        /// Only for out-of-line keys (settings).
        key: Option<JsValue>,
    },
    Delete {
        store: &'static str,
        key: String,
    },
    Clear {
        store: &'static str,
    },
}

impl Write {
    /// For the fault injector's messages.
    fn describe(&self) -> String {
        match self {
            Write::Put { store, .. } => format!("put into {store}"),
            Write::Delete { store, .. } => format!("delete from {store}"),
            Write::Clear { store } => format!("clear {store}"),
        }
    }
}

/// Serialises a planned change into requests; done before the first write so a record the
/// browser cannot hold fails the transaction before anything is written.
fn encode(change: &Change) -> Result<Vec<Write>, StoreError> {
    change
        .writes()
        .into_iter()
        .map(|write| {
            Ok(match write {
                StoreWrite::Put {
                    store,
                    record,
                    key,
                    kind,
                    id,
                } => Write::Put {
                    store,
                    value: to_record(&record, kind, id)?,
                    key: key.map(JsValue::from_str),
                },
                StoreWrite::Delete { store, key } => Write::Delete {
                    store,
                    key: key.to_owned(),
                },
                StoreWrite::Clear { store } => Write::Clear { store },
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Connection and transactions

/// An open connection. It closes itself when another connection needs a new version or
/// deletes the database (another tab upgrading, "Delete all my data"), and the store then
/// reopens on its next call.
#[derive(Debug)]
struct Connection {
    database: Database,
    closed: Rc<Cell<bool>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.database.close();
    }
}

impl Connection {
    async fn open(name: &str, schema: &'static Schema) -> Result<Connection, StoreError> {
        let unavailable = |e: &idb::Error| StoreError::Unavailable {
            detail: failure_from_idb(e).detail(),
        };
        let factory = Factory::new().map_err(|e| unavailable(&e))?;
        let mut request = factory
            .open(name, Some(schema.version.0))
            .map_err(|e| unavailable(&e))?;
        let migration_failure: Rc<RefCell<Option<StoreError>>> = Rc::default();
        let failure_slot = migration_failure.clone();
        request.on_upgrade_needed(move |event| upgrade(event, schema, failure_slot));
        let database = match request.await {
            Ok(database) => database,
            Err(e) => {
                if let Some(failure) = migration_failure.borrow_mut().take() {
                    return Err(failure);
                }
                let failure = failure_from_idb(&e);
                if failure.named("VersionError") {
                    let found = stored_version(&factory, name)
                        .await
                        .unwrap_or(schema.version.0 + 1);
                    return Err(StoreError::SchemaTooNew {
                        found,
                        supported: schema.version.0,
                    });
                }
                return Err(classify(&failure, Access::Open, 0).await);
            }
        };
        let raw: IdbDatabase = database.into();
        let closed = Rc::new(Cell::new(false));
        let mut database = Database::from(raw.clone());
        let closed_by_version_change = closed.clone();
        database.on_version_change(move |_| {
            raw.close();
            closed_by_version_change.set(true);
        });
        // The browser closes a connection itself when the user clears site data.
        let closed_by_browser = closed.clone();
        database.on_close(move |_| closed_by_browser.set(true));
        Ok(Connection { database, closed })
    }
}

/// The version of an existing database (opening without a version never upgrades).
async fn stored_version(factory: &Factory, name: &str) -> Option<u32> {
    let database = factory.open(name, None).ok()?.await.ok()?;
    let version = database.version().ok();
    database.close();
    version
}

/// `onupgradeneeded`: runs the migrations from the stored version inside the upgrade
/// transaction. The work continues in a task whose every step runs while a request's success
/// event is being dispatched, which keeps the transaction alive until the last rewrite.
fn upgrade(
    event: idb::event::VersionChangeEvent,
    schema: &'static Schema,
    failure: Rc<RefCell<Option<StoreError>>>,
) {
    let from = SchemaVersion(event.old_version().unwrap_or(0));
    let setup = event.target().and_then(|request| {
        let database = request.database()?;
        let transaction = request
            .transaction()
            .ok_or(idb::Error::TransactionNotFound)?;
        Ok((database, transaction))
    });
    let (database, transaction) = match setup {
        Ok(found) => found,
        Err(e) => {
            *failure.borrow_mut() = Some(StoreError::MigrationFailed {
                from: from.0,
                to: schema.version.0,
                detail: format!("the upgrade could not start: {e}"),
            });
            // Closing the connection aborts the upgrade, so no half-made layout is kept.
            if let Ok(database) = event.database() {
                database.close();
            }
            return;
        }
    };
    let raw: IdbTransaction = transaction.into();
    spawn_local(async move {
        let transaction = idb::Transaction::from(raw.clone());
        if let Err(e) = migrate(&database, &transaction, schema, from).await {
            *failure.borrow_mut() = Some(e);
            // Aborting the upgrade restores the old version and every record.
            let _ = raw.abort();
        }
    });
}

async fn migrate(
    database: &Database,
    transaction: &idb::Transaction,
    schema: &Schema,
    from: SchemaVersion,
) -> Result<(), StoreError> {
    for migration in schema.migrations_from(from)? {
        let fail = |detail: String| StoreError::MigrationFailed {
            from: migration.from.0,
            to: migration.to.0,
            detail,
        };
        for action in migration.actions {
            match *action {
                MigrationAction::CreateObjectStore { store, key_path } => {
                    let mut params = ObjectStoreParams::new();
                    params.key_path(key_path.map(KeyPath::new_single));
                    database
                        .create_object_store(store, params)
                        .map_err(|e| fail(format!("creating '{store}': {e}")))?;
                }
                MigrationAction::CreateIndex {
                    store,
                    index,
                    key_path,
                    unique,
                } => {
                    let key_path = match key_path {
                        [single] => KeyPath::new_single(single),
                        several => KeyPath::new_array(several.iter().copied()),
                    };
                    let mut params = IndexParams::new();
                    params.unique(unique);
                    transaction
                        .object_store(store)
                        .and_then(|s| s.create_index(index, key_path, Some(params)))
                        .map_err(|e| fail(format!("creating index '{index}' on '{store}': {e}")))?;
                }
                MigrationAction::RewriteRecords { store, rewrite } => {
                    rewrite_records(transaction, store, rewrite)
                        .await
                        .map_err(|e| fail(format!("{store}: {e}")))?;
                }
            }
        }
    }
    Ok(())
}

/// Rewrites every record of a store with a migration's JSON rewrite. Payload fields
/// (`Uint8Array`s) are set aside and put back unchanged: rewrites only touch metadata.
async fn rewrite_records(
    transaction: &idb::Transaction,
    store: &str,
    rewrite: fn(Value) -> Result<Value, String>,
) -> Result<(), String> {
    let text = |e: idb::Error| e.to_string();
    let records = transaction.object_store(store).map_err(text)?;
    let mut cursor = records
        .open_cursor(None, None)
        .map_err(text)?
        .await
        .map_err(text)?;
    while let Some(current) = cursor {
        let record = current.value().map_err(text)?;
        let rewritten = rewrite_record(&record, rewrite)?;
        current
            .update(&rewritten)
            .map_err(text)?
            .await
            .map_err(text)?;
        cursor = current.next(None).map_err(text)?.await.map_err(text)?;
    }
    Ok(())
}

fn rewrite_record(
    record: &JsValue,
    rewrite: fn(Value) -> Result<Value, String>,
) -> Result<JsValue, String> {
    let mut payloads = Vec::new();
    let metadata = if record.is_object() {
        let metadata = Object::new();
        for entry in Object::entries(record.unchecked_ref()).iter() {
            let entry: Array = entry.unchecked_into();
            let (key, value) = (entry.get(0), entry.get(1));
            if value.is_instance_of::<Uint8Array>() || value.is_instance_of::<ArrayBuffer>() {
                payloads.push((key, value));
            } else {
                Reflect::set(&metadata, &key, &value).map_err(|e| format!("{e:?}"))?;
            }
        }
        metadata.into()
    } else {
        record.clone()
    };
    let json: Value = serde_wasm_bindgen::from_value(metadata)
        .map_err(|e| format!("a record is unreadable: {e}"))?;
    let rewritten = rewrite(json)?
        .serialize(&super::JS_SERIALIZER)
        .map_err(|e| format!("a rewritten record cannot be stored: {e}"))?;
    for (key, value) in payloads {
        Reflect::set(&rewritten, &key, &value).map_err(|e| format!("{e:?}"))?;
    }
    Ok(rewritten)
}

/// A transaction in progress. `ended` settles when the browser finishes it: resolved on
/// `complete`, rejected on `abort` (its handlers are plain JS functions, so nothing on the
/// Rust side has to outlive it).
struct ActiveTransaction {
    raw: IdbTransaction,
    transaction: idb::Transaction,
    ended: Promise,
    access: Access,
}

impl ActiveTransaction {
    fn new(transaction: idb::Transaction, access: Access) -> Self {
        let raw: IdbTransaction = transaction.into();
        let ended = Promise::new(&mut |resolve, reject| {
            raw.set_oncomplete(Some(&resolve));
            raw.set_onabort(Some(&reject));
        });
        ActiveTransaction {
            transaction: idb::Transaction::from(raw.clone()),
            raw,
            ended,
            access,
        }
    }

    fn failed(&self, e: idb::Error) -> StoreError {
        let failure = failure_from_idb(&e);
        if failure.named("NotFoundError") {
            return StoreError::Corrupt {
                detail: format!(
                    "the database lacks a part of its layout ({})",
                    failure.detail()
                ),
            };
        }
        self.access.error(failure.detail())
    }

    fn store(&self, name: &str) -> Result<idb::ObjectStore, StoreError> {
        self.transaction
            .object_store(name)
            .map_err(|e| self.failed(e))
    }

    async fn get(&self, store: &str, key: &str) -> Result<Option<JsValue>, StoreError> {
        let request = self
            .store(store)?
            .get(JsValue::from_str(key))
            .map_err(|e| self.failed(e))?;
        request.await.map_err(|e| self.failed(e))
    }

    async fn get_all(&self, store: &str) -> Result<Vec<JsValue>, StoreError> {
        let request = self
            .store(store)?
            .get_all(None, None)
            .map_err(|e| self.failed(e))?;
        request.await.map_err(|e| self.failed(e))
    }

    async fn keys(&self, store: &str) -> Result<BTreeSet<String>, StoreError> {
        let request = self
            .store(store)?
            .get_all_keys(None, None)
            .map_err(|e| self.failed(e))?;
        let keys = request.await.map_err(|e| self.failed(e))?;
        keys.into_iter().map(|k| string_key(k, store)).collect()
    }

    /// Records of `store` whose `index` key equals `key`.
    async fn get_all_where(
        &self,
        store: &str,
        index: &str,
        key: JsValue,
    ) -> Result<Vec<JsValue>, StoreError> {
        let request = self
            .store(store)?
            .index(index)
            .and_then(|i| i.get_all(Some(KeyQuery::Key(key)), None))
            .map_err(|e| self.failed(e))?;
        request.await.map_err(|e| self.failed(e))
    }

    /// Primary keys of the records of `store` whose `index` key equals `key`.
    async fn keys_where(
        &self,
        store: &str,
        index: &str,
        key: &str,
    ) -> Result<Vec<String>, StoreError> {
        let request = self
            .store(store)?
            .index(index)
            .and_then(|i| i.get_all_keys(Some(KeyQuery::Key(JsValue::from_str(key))), None))
            .map_err(|e| self.failed(e))?;
        let keys = request.await.map_err(|e| self.failed(e))?;
        keys.into_iter().map(|k| string_key(k, store)).collect()
    }

    /// Sum of the payload fields of every record of `store`, read with a cursor so the
    /// records pass one at a time and their bytes never enter wasm memory.
    async fn payload_bytes(&self, store: &str, fields: &[&str]) -> Result<u64, StoreError> {
        let request = self
            .store(store)?
            .open_cursor(None, None)
            .map_err(|e| self.failed(e))?;
        let mut cursor = request.await.map_err(|e| self.failed(e))?;
        let mut total = 0;
        while let Some(current) = cursor {
            let record = current.value().map_err(|e| self.failed(e))?;
            total += fields.iter().map(|f| payload_len(&record, f)).sum::<u64>();
            let next = current.next(None).map_err(|e| self.failed(e))?;
            cursor = next.await.map_err(|e| self.failed(e))?;
        }
        Ok(total)
    }

    async fn apply(&self, write: &Write) -> Result<(), idb::Error> {
        match write {
            Write::Put { store, value, key } => {
                self.transaction
                    .object_store(store)?
                    .put(value, key.as_ref())?
                    .await?;
            }
            Write::Delete { store, key } => {
                self.transaction
                    .object_store(store)?
                    .delete(JsValue::from_str(key))?
                    .await?;
            }
            Write::Clear { store } => self.transaction.object_store(store)?.clear()?.await?,
        }
        Ok(())
    }

    fn abort(&self) {
        // Fails only when the transaction already ended, which is what we want anyway.
        let _ = self.raw.abort();
    }

    /// Waits until the browser has committed or rolled back the transaction. On abort, the
    /// transaction's error (null when we aborted it ourselves).
    async fn end(&self) -> Result<(), Option<StorageFailure>> {
        match JsFuture::from(self.ended.clone()).await {
            Ok(_) => Ok(()),
            Err(_) => Err(self.raw.error().map(|e| failure_from_js(&e.into()))),
        }
    }
}

/// The keys and references planning needs, read in the write's own transaction.
async fn load_catalog(tx: &ActiveTransaction) -> Result<Catalog, StoreError> {
    let mut catalog = Catalog {
        profiles: tx.keys(PROFILES).await?,
        checkpoints: tx.keys(CHECKPOINTS).await?,
        has_settings: tx.get(SETTINGS, SETTINGS_KEY).await?.is_some(),
        ..Catalog::default()
    };
    for pointer in tx.get_all(ACTIVE_MODELS).await? {
        let pointer: ActiveModelEntry = from_record(pointer, ACTIVE_MODELS)?;
        catalog
            .active_models
            .insert(pointer.profile_id, pointer.model_id);
    }
    for profile in &catalog.profiles {
        for (store, owned) in [
            (IMAGES, &mut catalog.images),
            (MODELS, &mut catalog.models),
            (RUNS, &mut catalog.runs),
        ] {
            for key in tx.keys_where(store, BY_PROFILE, profile).await? {
                owned.insert(key, profile.clone());
            }
        }
    }
    Ok(catalog)
}

/// Why a write transaction did not commit, before it becomes a `StoreError`.
enum WriteFailure {
    /// Refused by the rules, or injected: already the user's error.
    Store(StoreError),
    /// Refused by the browser.
    Browser(StorageFailure),
}

// ---------------------------------------------------------------------------------------------
// The store

/// The app's storage in the browser. Every method is one IndexedDB transaction.
#[derive(Debug)]
pub struct IdbStore {
    name: String,
    schema: &'static Schema,
    connection: RefCell<Option<Rc<Connection>>>,
    faults: FaultInjector,
    image_limits: ImageLimits,
}

impl IdbStore {
    /// Opens (creating or upgrading) the database `name`. Fails with `SchemaTooNew` when a
    /// newer faceverify wrote it, `MigrationFailed` when an upgrade failed (the data stays at
    /// its old version), `Unavailable` when the browser refuses storage.
    pub async fn open(name: &str) -> Result<IdbStore, StoreError> {
        IdbStore::open_with_schema(name, &SCHEMA).await
    }

    /// `open` with another schema than this build's: for testing an upgrade.
    pub async fn open_with_schema(
        name: &str,
        schema: &'static Schema,
    ) -> Result<IdbStore, StoreError> {
        let connection = Connection::open(name, schema).await?;
        Ok(IdbStore {
            name: name.to_owned(),
            schema,
            connection: RefCell::new(Some(Rc::new(connection))),
            faults: FaultInjector::default(),
            image_limits: ImageLimits::default(),
        })
    }

    /// Opens the app's database, [`DATABASE_NAME`].
    pub async fn open_default() -> Result<IdbStore, StoreError> {
        IdbStore::open(DATABASE_NAME).await
    }

    /// Routes every write request through `faults`, so a test can make the Nth one fail: the
    /// transaction is then aborted, as a browser failure would abort it.
    pub fn with_faults(mut self, faults: FaultInjector) -> Self {
        self.faults = faults;
        self
    }

    pub fn with_image_limits(mut self, limits: ImageLimits) -> Self {
        self.image_limits = limits;
        self
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Closes the connection now (it also closes when the store is dropped); the next call
    /// reopens it.
    pub fn close(&self) {
        self.connection.borrow_mut().take();
    }

    async fn connection(&self) -> Result<Rc<Connection>, StoreError> {
        let current = self.connection.borrow().clone();
        match current {
            Some(connection) if !connection.closed.get() => Ok(connection),
            _ => {
                let connection = Rc::new(Connection::open(&self.name, self.schema).await?);
                *self.connection.borrow_mut() = Some(connection.clone());
                Ok(connection)
            }
        }
    }

    async fn begin(
        &self,
        stores: &[&str],
        mode: TransactionMode,
        access: Access,
    ) -> Result<ActiveTransaction, StoreError> {
        let connection = self.connection().await?;
        match connection.database.transaction(stores, mode) {
            Ok(transaction) => Ok(ActiveTransaction::new(transaction, access)),
            Err(e) if failure_from_idb(&e).named("InvalidStateError") => {
                // The connection closed under us (the browser, or a deletion): reopen once.
                connection.closed.set(true);
                let connection = self.connection().await?;
                connection
                    .database
                    .transaction(stores, mode)
                    .map(|transaction| ActiveTransaction::new(transaction, access))
                    .map_err(|e| access.error(failure_from_idb(&e).detail()))
            }
            Err(e) => Err(access.error(failure_from_idb(&e).detail())),
        }
    }

    async fn begin_read(&self, stores: &[&str]) -> Result<ActiveTransaction, StoreError> {
        self.begin(stores, TransactionMode::ReadOnly, Access::Read)
            .await
    }

    /// One write transaction: read the catalog, plan, write. Returns whether anything was
    /// written.
    async fn commit(
        &self,
        plan: impl FnOnce(&Catalog) -> Result<Vec<Change>, StoreError>,
    ) -> Result<bool, StoreError> {
        let tx = self
            .begin(&ALL, TransactionMode::ReadWrite, Access::Write)
            .await?;
        let mut needed = 0;
        let outcome = self.plan_and_write(&tx, plan, &mut needed).await;
        let ended = match &outcome {
            Ok(_) => tx.end().await,
            Err(_) => {
                tx.abort();
                // Wait for the rollback, so the caller's next read sees the old state.
                let _ = tx.end().await;
                Ok(())
            }
        };
        match (outcome, ended) {
            (Ok(changed), Ok(())) => Ok(changed),
            (Ok(_), Err(Some(failure))) | (Err(WriteFailure::Browser(failure)), _) => {
                Err(classify(&failure, Access::Write, needed).await)
            }
            (Ok(_), Err(None)) => Err(StoreError::WriteFailed {
                detail: "the browser aborted the transaction".into(),
            }),
            (Err(WriteFailure::Store(e)), _) => Err(e),
        }
    }

    async fn plan_and_write(
        &self,
        tx: &ActiveTransaction,
        plan: impl FnOnce(&Catalog) -> Result<Vec<Change>, StoreError>,
        needed: &mut u64,
    ) -> Result<bool, WriteFailure> {
        let catalog = load_catalog(tx).await.map_err(WriteFailure::Store)?;
        let changes = plan(&catalog).map_err(WriteFailure::Store)?;
        *needed = changes.iter().map(Change::bytes_added).sum();
        let mut writes = Vec::new();
        for change in &changes {
            writes.extend(encode(change).map_err(WriteFailure::Store)?);
        }
        for write in &writes {
            self.faults
                .before_write(&write.describe())
                .map_err(WriteFailure::Store)?;
            tx.apply(write)
                .await
                .map_err(|e| WriteFailure::Browser(failure_from_idb(&e)))?;
        }
        Ok(!changes.is_empty())
    }
}

impl Drop for IdbStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl Store for IdbStore {
    async fn read(&self, query: Query<'_>) -> Result<Vec<Record>, StoreError> {
        let stores: &[&str] = match query {
            Query::Profile(_) | Query::Profiles => &[PROFILES],
            Query::Image(_) | Query::Images { .. } => &[IMAGES],
            Query::Model(_) | Query::ModelSummaries(_) => &[MODELS],
            Query::ActiveModelId(_) => &[ACTIVE_MODELS],
            Query::ActiveModel(_) => &[ACTIVE_MODELS, MODELS],
            Query::Checkpoint(_) => &[CHECKPOINTS],
            Query::Run(_) | Query::Runs(_) => &[RUNS],
            Query::Settings => &[SETTINGS],
            Query::Everything => &ALL,
        };
        let tx = self.begin_read(stores).await?;
        read_records(&tx, query).await
    }

    async fn write(
        &self,
        plan: impl FnOnce(&Catalog) -> Result<Vec<Change>, StoreError>,
    ) -> Result<bool, StoreError> {
        self.commit(plan).await
    }

    /// Payload bytes are summed record by record; the small records are counted by their
    /// JSON size, as every store counts them.
    async fn usage(&self) -> Result<StorageUsage, StoreError> {
        let tx = self.begin_read(&ALL).await?;
        let images = tx.payload_bytes(IMAGES, IMAGE_PAYLOADS).await?;
        let models = tx.payload_bytes(MODELS, &["bytes"]).await?;
        let checkpoints = tx
            .payload_bytes(CHECKPOINTS, &["model_bytes", "optimiser_bytes"])
            .await?;
        let small = StoreContents::from_records(read_small_records(&tx).await?);
        Ok(StorageUsage {
            images,
            models,
            checkpoints,
            other: small.usage().other,
        })
    }

    fn image_limits(&self) -> &ImageLimits {
        &self.image_limits
    }
}

/// Answers a query inside an open read transaction.
async fn read_records(tx: &ActiveTransaction, query: Query<'_>) -> Result<Vec<Record>, StoreError> {
    let by_profile = |profile: &str| JsValue::from_str(profile);
    Ok(match query {
        Query::Profile(id) => read_keyed(tx, PROFILES, id, Record::Profile).await?,
        Query::Profiles => read_every(tx, PROFILES, Record::Profile).await?,
        Query::Image(id) => read_keyed(tx, IMAGES, id, Record::Image).await?,
        Query::Images { profile, role } => {
            let (index, key) = match role {
                Some(role) => (
                    BY_PROFILE_ROLE,
                    Array::of2(&by_profile(profile), &to_record(&role, "photo", profile)?).into(),
                ),
                None => (BY_PROFILE, by_profile(profile)),
            };
            let records = tx.get_all_where(IMAGES, index, key).await?;
            decode_all(records, IMAGES, Record::Image)?
        }
        Query::Model(id) => read_keyed(tx, MODELS, id, Record::Model).await?,
        Query::ModelSummaries(profile) => {
            let records = tx
                .get_all_where(MODELS, BY_PROFILE, by_profile(profile))
                .await?;
            records
                .into_iter()
                .map(read_model_summary)
                .collect::<Result<_, _>>()?
        }
        Query::ActiveModelId(profile) => {
            read_keyed(tx, ACTIVE_MODELS, profile, Record::from_pointer).await?
        }
        Query::ActiveModel(profile) => {
            let mut records = read_keyed(tx, ACTIVE_MODELS, profile, Record::from_pointer).await?;
            if let Some(Record::ActiveModel { model_id, .. }) = records.first().cloned() {
                records.extend(read_keyed(tx, MODELS, &model_id, Record::Model).await?);
            }
            records
        }
        Query::Checkpoint(profile) => {
            read_keyed(tx, CHECKPOINTS, profile, Record::Checkpoint).await?
        }
        Query::Run(id) => read_keyed(tx, RUNS, id, Record::Run).await?,
        Query::Runs(profile) => {
            let records = tx
                .get_all_where(RUNS, BY_PROFILE, by_profile(profile))
                .await?;
            decode_all(records, RUNS, Record::Run)?
        }
        Query::Settings => read_keyed(tx, SETTINGS, SETTINGS_KEY, Record::Settings).await?,
        Query::Everything => {
            let mut records = read_small_records(tx).await?;
            records.extend(read_every(tx, IMAGES, Record::Image).await?);
            records.extend(read_every(tx, MODELS, Record::Model).await?);
            records.extend(read_every(tx, CHECKPOINTS, Record::Checkpoint).await?);
            records
        }
    })
}

/// Records of `store`, each read as a `T` and wrapped as a `Record`.
fn decode_all<T: DeserializeOwned>(
    records: Vec<JsValue>,
    store: &str,
    wrap: fn(T) -> Record,
) -> Result<Vec<Record>, StoreError> {
    records
        .into_iter()
        .map(|record| from_record(record, store).map(wrap))
        .collect()
}

/// The record under `key` in `store`, if any.
async fn read_keyed<T: DeserializeOwned>(
    tx: &ActiveTransaction,
    store: &str,
    key: &str,
    wrap: fn(T) -> Record,
) -> Result<Vec<Record>, StoreError> {
    decode_all(tx.get(store, key).await?.into_iter().collect(), store, wrap)
}

/// Every record of `store`.
async fn read_every<T: DeserializeOwned>(
    tx: &ActiveTransaction,
    store: &str,
    wrap: fn(T) -> Record,
) -> Result<Vec<Record>, StoreError> {
    decode_all(tx.get_all(store).await?, store, wrap)
}

/// A model record without its weights: they stay in JS, only their length is taken.
fn read_model_summary(record: JsValue) -> Result<Record, StoreError> {
    let byte_len = payload_len(&record, "bytes");
    let summary: ModelSummary = from_record(record, MODELS)?;
    Ok(Record::ModelSummary(ModelSummary {
        byte_len,
        ..summary
    }))
}

/// Profiles, active-model pointers, runs and settings: the records without payloads.
async fn read_small_records(tx: &ActiveTransaction) -> Result<Vec<Record>, StoreError> {
    let mut records = read_every(tx, PROFILES, Record::Profile).await?;
    records.extend(read_every(tx, ACTIVE_MODELS, Record::from_pointer).await?);
    records.extend(read_every(tx, RUNS, Record::Run).await?);
    records.extend(read_keyed(tx, SETTINGS, SETTINGS_KEY, Record::Settings).await?);
    Ok(records)
}

// ---------------------------------------------------------------------------------------------
// Page helpers

/// `navigator.storage`, in a window or a worker; `None` where the browser lacks it (insecure
/// contexts, old browsers).
fn storage_manager() -> Option<web_sys::StorageManager> {
    let navigator = Reflect::get(&js_sys::global(), &JsValue::from_str("navigator")).ok()?;
    let storage = Reflect::get(&navigator, &JsValue::from_str("storage")).ok()?;
    storage.dyn_into::<web_sys::StorageManager>().ok()
}

/// What the browser says this origin uses and may use (`navigator.storage.estimate()`), or
/// `None` where it cannot tell.
pub async fn storage_usage() -> Option<StorageEstimate> {
    let estimate = JsFuture::from(storage_manager()?.estimate().ok()?)
        .await
        .ok()?;
    let estimate: web_sys::StorageEstimate = estimate.unchecked_into();
    let bytes = |v: Option<f64>| v.filter(|v| v.is_finite() && *v >= 0.0).map(|v| v as u64);
    Some(StorageEstimate {
        usage: bytes(estimate.get_usage()).unwrap_or(0),
        quota: bytes(estimate.get_quota())?,
    })
}

/// Deletes the database `name` (open connections of this app close themselves first; one
/// held by another program's tab delays this until that tab closes).
pub async fn delete_database(name: &str) -> Result<(), StoreError> {
    let failed = |e: idb::Error| StoreError::WriteFailed {
        detail: format!("deleting the database: {}", failure_from_idb(&e).detail()),
    };
    let factory = Factory::new().map_err(|e| StoreError::Unavailable {
        detail: failure_from_idb(&e).detail(),
    })?;
    factory.delete(name).map_err(failed)?.await.map_err(failed)
}

/// "Delete all my data": the app's Cache Storage caches, then the database. Caches go first so
/// that a failure leaves the user's data (the database) as it was, and says so.
pub async fn delete_all_data() -> Result<(), StoreError> {
    delete_app_caches()
        .await
        .map_err(|detail| StoreError::WriteFailed {
            detail: format!("deleting the app's cached files: {detail}"),
        })?;
    delete_database(DATABASE_NAME).await
}

/// Deletes the caches named `CACHE_NAME_PREFIX...`. `caches` is missing in insecure contexts:
/// then there is nothing to delete. Reached through `Reflect` (no web-sys feature for it).
async fn delete_app_caches() -> Result<(), String> {
    let caches = Reflect::get(&js_sys::global(), &JsValue::from_str("caches"))
        .map_err(|e| failure_from_js(&e).detail())?;
    if caches.is_undefined() || caches.is_null() {
        return Ok(());
    }
    let call = |method: &str, args: &Array| -> Result<JsFuture, String> {
        let function: Function = Reflect::get(&caches, &JsValue::from_str(method))
            .and_then(|f| f.dyn_into::<Function>())
            .map_err(|e| failure_from_js(&e).detail())?;
        let promise: Promise = Reflect::apply(&function, &caches, args)
            .and_then(|p| p.dyn_into::<Promise>())
            .map_err(|e| failure_from_js(&e).detail())?;
        Ok(JsFuture::from(promise))
    };
    let names: Array = call("keys", &Array::new())?
        .await
        .map_err(|e| failure_from_js(&e).detail())?
        .unchecked_into();
    for name in names.iter().filter_map(|n| n.as_string()) {
        if name.starts_with(CACHE_NAME_PREFIX) {
            call("delete", &Array::of1(&JsValue::from_str(&name)))?
                .await
                .map_err(|e| failure_from_js(&e).detail())?;
        }
    }
    Ok(())
}
