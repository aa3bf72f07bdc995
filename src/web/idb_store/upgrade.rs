//! The connection, and the schema's migrations run in `onupgradeneeded`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use idb::{
    Database, DatabaseEvent as _, Event as _, Factory, IndexParams, KeyPath, ObjectStoreParams,
    Request as _,
};
use js_sys::{Array, ArrayBuffer, Object, Reflect, Uint8Array};
use serde::Serialize;
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{IdbDatabase, IdbTransaction};

use crate::store::schema::{MigrationAction, Schema, SchemaVersion};
use crate::store::{Access, StoreError};
use crate::web::executor::spawn_local;

use super::errors::{classify, failure_from_idb};

/// An open connection. It closes itself when another connection needs a new version or
/// deletes the database (another tab upgrading, "Delete all my data"), and the store then
/// reopens on its next call.
#[derive(Debug)]
pub(super) struct Connection {
    pub(super) database: Database,
    pub(super) closed: Rc<Cell<bool>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.database.close();
    }
}

impl Connection {
    pub(super) async fn open(
        name: &str,
        schema: &'static Schema,
    ) -> Result<Connection, StoreError> {
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
        .serialize(&crate::web::JS_SERIALIZER)
        .map_err(|e| format!("a rewritten record cannot be stored: {e}"))?;
    for (key, value) in payloads {
        Reflect::set(&rewritten, &key, &value).map_err(|e| format!("{e:?}"))?;
    }
    Ok(rewritten)
}
