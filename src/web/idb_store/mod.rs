//! `IdbStore`: the store on IndexedDB, [`IndexedStore`] over [`Idb`], plus the storage helpers
//! [`storage_usage`] and [`delete_database`]. The layout, the queries' lookups and the
//! migrations are the schema's (`store::schema`); the transactions' rules are
//! `store::indexed`'s. Records cross the JS boundary as every value does (serde-wasm-bindgen):
//! payloads as `Uint8Array`s, the free-form JSON fields (training settings, metrics) as plain
//! objects, so a number like `1.0` in them reads back as the equal `1`.
//!
//! Files: `upgrade.rs` (the connection and the migrations), `transaction.rs` (requests, a
//! transaction's primitives and the records as stored); this one has the database, browser
//! failures as the store's errors, and the storage helpers.

mod transaction;
mod upgrade;

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Array;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::IdbTransactionMode;

use crate::store::schema::{SCHEMA, Schema};
use crate::store::{
    Access, IndexedDatabase, IndexedStore, StorageEstimate, StorageFailure, StoreError,
};
use crate::web::{js_get, js_message};
use transaction::{ActiveTransaction, issue};
use upgrade::{Connection, factory};

/// The app's database.
pub const DATABASE_NAME: &str = "faceverify";

/// The app's storage in the browser.
pub type IdbStore = IndexedStore<Idb>;

/// An IndexedDB database, opened (or reopened, see [`Connection`]) when a transaction needs it.
#[derive(Debug)]
pub struct Idb {
    name: String,
    schema: &'static Schema,
    connection: RefCell<Option<Rc<Connection>>>,
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
        Ok(IndexedStore::new(Idb {
            name: name.to_owned(),
            schema,
            connection: RefCell::new(Some(Rc::new(connection))),
        }))
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.database().name
    }

    /// Closes the connection now (it also closes when the store is dropped); the next call
    /// reopens it.
    pub fn close(&self) {
        self.database().connection.borrow_mut().take();
    }
}

impl Idb {
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
}

impl IndexedDatabase for Idb {
    type Transaction = ActiveTransaction;

    async fn begin(
        &self,
        stores: &[&'static str],
        access: Access,
    ) -> Result<ActiveTransaction, StoreError> {
        let mode = match access {
            Access::Write => IdbTransactionMode::Readwrite,
            _ => IdbTransactionMode::Readonly,
        };
        let names: Array = stores.iter().map(|s| JsValue::from_str(s)).collect();
        let connection = self.connection().await?;
        let raw = match connection
            .database
            .transaction_with_str_sequence_and_mode(&names, mode)
        {
            Err(e) if failure_from_js(&e).named("InvalidStateError") => {
                // The connection closed under us (the browser, or a deletion): reopen once.
                connection.closed.set(true);
                let connection = self.connection().await?;
                connection
                    .database
                    .transaction_with_str_sequence_and_mode(&names, mode)
            }
            opened => opened,
        };
        raw.map(|raw| ActiveTransaction::new(raw, access))
            .map_err(|e| failure_from_js(&e).to_store_error(access, 0, None))
    }
}

// ---------------------------------------------------------------------------------------------
// Browser failures

/// A browser failure (a `DOMException`, an `Error`, or any object with `name` and `message`)
/// as the store's rules read it.
pub fn failure_from_js(value: &JsValue) -> StorageFailure {
    let text = |key| js_get(value, key).and_then(|v| v.as_string());
    let requested = js_get(value, "requested")
        .and_then(|v| v.as_f64())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v as u64);
    StorageFailure {
        name: text("name").filter(|n| !n.is_empty()),
        message: js_message(value),
        requested,
    }
}

/// The store's error for a browser failure, with the storage estimate where the quota is the
/// problem.
async fn classify(failure: &StorageFailure, access: Access, needed: u64) -> StoreError {
    let available = if failure.is_quota() {
        storage_usage().await.map(|e| e.available())
    } else {
        None
    };
    failure.to_store_error(access, needed, available)
}

fn corrupt(store: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        detail: format!("a record in '{store}' is unreadable: {reason}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Storage helpers

/// What the browser says this origin uses and may use (`navigator.storage.estimate()`), or
/// `None` where it cannot tell (insecure contexts, old browsers).
pub async fn storage_usage() -> Option<StorageEstimate> {
    let navigator = js_get(&js_sys::global(), "navigator")?;
    let manager: web_sys::StorageManager = js_get(&navigator, "storage")?.dyn_into().ok()?;
    let estimate = JsFuture::from(manager.estimate().ok()?).await.ok()?;
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
    let request = factory()?.delete_database(name).map(Into::into);
    issue(request)
        .await
        .map(drop)
        .map_err(|failure| StoreError::WriteFailed {
            detail: format!("deleting the database: {}", failure.detail()),
        })
}
