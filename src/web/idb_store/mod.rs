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
//!
//! Files: `upgrade.rs` (the connection and the migrations), `transaction.rs` (a transaction in
//! progress and a write's requests), `records.rs` (records as stored, and the reads),
//! `errors.rs` (browser failures as the store's errors); this one has the store itself and the
//! storage helpers.

mod errors;
mod records;
mod transaction;
mod upgrade;

use std::cell::RefCell;
use std::rc::Rc;

use idb::{Factory, TransactionMode};
use js_sys::{Array, Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::store::dataset::{Catalog, Change, StoreContents};
use crate::store::schema::object_store::{
    ACTIVE_MODELS, ALL, CHECKPOINTS, IMAGES, MODELS, PROFILES, RUNS, SETTINGS,
};
use crate::store::schema::{SCHEMA, Schema};
use crate::store::validate::ImageLimits;

use crate::store::{
    Access, FaultInjector, Query, Record, StorageEstimate, StorageUsage, Store, StoreError,
};
pub use errors::store_error_from_browser;
use errors::{classify, failure_from_idb, failure_from_js};
use records::{IMAGE_PAYLOADS, read_records, read_small_records};
use transaction::{ActiveTransaction, WriteFailure, load_catalog};
use upgrade::Connection;

/// The app's database.
pub const DATABASE_NAME: &str = "faceverify";

/// Cache Storage caches whose names start with this belong to the app ("Delete all my data"
/// deletes them). The origin may host other apps that import `pkg/`, so only these go.
pub const CACHE_NAME_PREFIX: &str = "faceverify";

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
        for change in &changes {
            for write in change.writes() {
                self.faults
                    .before_write(change.name())
                    .map_err(WriteFailure::Store)?;
                tx.apply(&write).await?;
            }
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

// ---------------------------------------------------------------------------------------------
// Storage helpers

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
