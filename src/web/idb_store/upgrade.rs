//! The connection, and the schema's migrations run in `onupgradeneeded`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Array, ArrayBuffer, Object, Reflect, Uint8Array};
use serde::Serialize;
use serde_json::Value;
use wasm_bindgen::prelude::*;
use web_sys::{
    IdbCursorWithValue, IdbDatabase, IdbFactory, IdbIndexParameters, IdbObjectStoreParameters,
    IdbOpenDbRequest, IdbTransaction, IdbVersionChangeEvent,
};

use crate::store::schema::{IndexSpec, Schema, SchemaVersion, Upgrade};
use crate::store::{Access, StorageFailure, StoreError};
use crate::web::executor::spawn_local;
use crate::web::{js_get, to_js};

use super::transaction::settle;
use super::{classify, failure_from_js};

/// An open connection. It closes itself when another connection needs a new version or
/// deletes the database (another tab upgrading, "Delete all my data"), and the store then
/// reopens on its next call.
#[derive(Debug)]
pub(super) struct Connection {
    pub(super) database: IdbDatabase,
    pub(super) closed: Rc<Cell<bool>>,
    /// `onversionchange` and `onclose`, kept for as long as the connection.
    _on_close: Closure<dyn FnMut()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.database.close();
    }
}

/// The browser's IndexedDB, in a window or a worker.
pub(super) fn factory() -> Result<IdbFactory, StoreError> {
    js_get(&js_sys::global(), "indexedDB")
        .and_then(|f| f.dyn_into::<IdbFactory>().ok())
        .ok_or_else(|| StoreError::Unavailable {
            detail: "this browser context has no IndexedDB".into(),
        })
}

impl Connection {
    pub(super) async fn open(
        name: &str,
        schema: &'static Schema,
    ) -> Result<Connection, StoreError> {
        let factory = factory()?;
        let request = (factory.open_with_u32(name, schema.version.0)).map_err(|e| {
            let detail = failure_from_js(&e).detail();
            StoreError::Unavailable { detail }
        })?;
        let migration_failure: Rc<RefCell<Option<StoreError>>> = Rc::default();
        let (upgrading, failure_slot) = (request.clone(), migration_failure.clone());
        let on_upgrade = Closure::once(move |event: IdbVersionChangeEvent| {
            let from = SchemaVersion(event.old_version() as u32);
            upgrade(&upgrading, from, schema, failure_slot)
        });
        request.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
        let opened = settle(&request).await;
        request.set_onupgradeneeded(None);
        if let Some(failure) = migration_failure.take() {
            if let Ok(database) = &opened {
                database.unchecked_ref::<IdbDatabase>().close();
            }
            return Err(failure);
        }
        let database: IdbDatabase = match opened {
            Ok(database) => database.unchecked_into(),
            Err(failure) => return Err(open_failed(failure, &factory, name, schema).await),
        };
        let closed = Rc::new(Cell::new(false));
        let (connection, closed_flag) = (database.clone(), closed.clone());
        // The browser also closes a connection itself when the user clears site data.
        let on_close = Closure::<dyn FnMut()>::new(move || {
            connection.close();
            closed_flag.set(true);
        });
        database.set_onversionchange(Some(on_close.as_ref().unchecked_ref()));
        database.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Connection {
            database,
            closed,
            _on_close: on_close,
        })
    }
}

async fn open_failed(
    failure: StorageFailure,
    factory: &IdbFactory,
    name: &str,
    schema: &Schema,
) -> StoreError {
    if !failure.named("VersionError") {
        return classify(&failure, Access::Open, 0).await;
    }
    let found = stored_version(factory, name).await;
    StoreError::SchemaTooNew {
        found: found.unwrap_or(schema.version.0 + 1),
        supported: schema.version.0,
    }
}

/// The version of an existing database (opening without a version never upgrades).
async fn stored_version(factory: &IdbFactory, name: &str) -> Option<u32> {
    let request = factory.open(name).ok()?;
    let database: IdbDatabase = settle(&request).await.ok()?.unchecked_into();
    let version = database.version() as u32;
    database.close();
    Some(version)
}

/// `onupgradeneeded`: runs the migrations from the stored version inside the upgrade
/// transaction. The work continues in a task whose every step runs while a request's success
/// event is being dispatched, which keeps the transaction alive until the last rewrite.
fn upgrade(
    request: &IdbOpenDbRequest,
    from: SchemaVersion,
    schema: &'static Schema,
    failure: Rc<RefCell<Option<StoreError>>>,
) {
    let database = request.result().ok().and_then(|d| d.dyn_into().ok());
    let (Some(database), Some(transaction)) = (database, request.transaction()) else {
        // Not inside an upgrade after all: nothing is created, and the open fails with this.
        *failure.borrow_mut() = Some(StoreError::MigrationFailed {
            from: from.0,
            to: schema.version.0,
            detail: "the upgrade could not start".into(),
        });
        return;
    };
    let upgrading = Upgrading {
        database,
        transaction,
    };
    spawn_local(async move {
        if let Err(e) = schema.upgrade(from, &upgrading).await {
            *failure.borrow_mut() = Some(e);
            // Aborting the upgrade restores the old version and every record.
            let _ = upgrading.transaction.abort();
        }
    });
}

/// The upgrade transaction of an `onupgradeneeded`, where the schema's migrations run.
struct Upgrading {
    database: IdbDatabase,
    transaction: IdbTransaction,
}

impl Upgrade for Upgrading {
    fn create_object_store(&self, store: &str, key_path: Option<&str>) -> Result<(), String> {
        let params = IdbObjectStoreParameters::new();
        params.set_key_path_opt_str(key_path);
        (self
            .database
            .create_object_store_with_optional_parameters(store, &params))
        .map(drop)
        .map_err(text)
    }

    fn create_index(&self, spec: &IndexSpec) -> Result<(), String> {
        // One field is a plain key path, several a compound one.
        let key_path = match spec.key_path {
            [single] => to_js(single),
            several => to_js(&several),
        };
        let params = IdbIndexParameters::new();
        params.set_unique(spec.unique);
        let object_store = self.transaction.object_store(spec.store).map_err(text)?;
        (object_store.create_index_with_str_sequence_and_optional_parameters(
            spec.index,
            &key_path.map_err(text)?,
            &params,
        ))
        .map(drop)
        .map_err(text)
    }

    /// With a cursor, one record at a time.
    async fn rewrite_records(
        &self,
        store: &str,
        rewrite: fn(Value) -> Result<Value, String>,
    ) -> Result<(), String> {
        let request = (self.transaction.object_store(store))
            .and_then(|s| s.open_cursor())
            .map_err(text)?;
        loop {
            let cursor = settle(&request).await.map_err(|f| f.detail())?;
            let Some(cursor) = cursor.dyn_ref::<IdbCursorWithValue>() else {
                return Ok(());
            };
            let rewritten = rewrite_record(&cursor.value().map_err(text)?, rewrite)?;
            settle(&cursor.update(&rewritten).map_err(text)?)
                .await
                .map_err(|f| f.detail())?;
            cursor.continue_().map_err(text)?;
        }
    }
}

fn text(error: JsValue) -> String {
    failure_from_js(&error).detail()
}

/// One record rewritten. Payload fields (`Uint8Array`s) are set aside and put back unchanged:
/// rewrites only touch metadata.
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
