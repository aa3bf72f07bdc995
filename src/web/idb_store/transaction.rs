//! Requests, and a transaction in progress with the primitives the store is built on: records
//! are written as every value that crosses to JS is, and read back as the lookup's kind.

use js_sys::{Array, Promise, Reflect, Uint8Array};
use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbCursorWithValue, IdbObjectStore, IdbRequest, IdbTransaction};

use crate::store::schema::{BY_PROFILE, Lookup, RecordKind, Select, StoreWrite};
use crate::store::{Access, IndexedTransaction, Record, StorageFailure, StoreError};

use super::{classify, corrupt, failure_from_js};

/// Waits for a request's result, or the browser's failure. The promise settles inside the
/// request's event and the executor resumes the caller in a microtask of that event, so the
/// transaction is still active for the caller's next request.
pub(super) async fn settle(request: &IdbRequest) -> Result<JsValue, StorageFailure> {
    let done = Promise::new(&mut |resolve, reject| {
        request.set_onsuccess(Some(&resolve));
        request.set_onerror(Some(&reject));
    });
    match JsFuture::from(done).await {
        Ok(_) => request.result().map_err(|e| failure_from_js(&e)),
        Err(event) => Err(match request.error() {
            Ok(Some(error)) => failure_from_js(&error.into()),
            _ => failure_from_js(&event),
        }),
    }
}

/// Issues a request and waits for it.
pub(super) async fn issue(request: Result<IdbRequest, JsValue>) -> Result<JsValue, StorageFailure> {
    settle(&request.map_err(|e| failure_from_js(&e))?).await
}

/// A transaction in progress. `ended` settles when the browser finishes it: resolved on
/// `complete`, rejected on `abort` (its handlers are plain JS functions, so nothing on the
/// Rust side has to outlive it).
pub struct ActiveTransaction {
    raw: IdbTransaction,
    ended: Promise,
    access: Access,
}

impl ActiveTransaction {
    pub(super) fn new(raw: IdbTransaction, access: Access) -> Self {
        let ended = Promise::new(&mut |resolve, reject| {
            raw.set_oncomplete(Some(&resolve));
            raw.set_onabort(Some(&reject));
        });
        ActiveTransaction { raw, ended, access }
    }

    fn failed(&self, failure: StorageFailure) -> StoreError {
        failure.to_store_error(self.access, 0, None)
    }

    fn refused(&self, error: JsValue) -> StoreError {
        self.failed(failure_from_js(&error))
    }

    fn store(&self, name: &str) -> Result<IdbObjectStore, StoreError> {
        self.raw.object_store(name).map_err(|e| self.refused(e))
    }

    async fn run(&self, request: Result<IdbRequest, JsValue>) -> Result<JsValue, StoreError> {
        issue(request).await.map_err(|f| self.failed(f))
    }
}

impl IndexedTransaction for ActiveTransaction {
    /// The records a lookup selects.
    async fn read(&self, lookup: &Lookup<'_>) -> Result<Vec<Record>, StoreError> {
        let store = self.store(lookup.store)?;
        let values: Array = match lookup.select {
            // The record under the key, as an array of none or one.
            Select::Key(key) => self
                .run(store.get_all_with_key(&key.into()))
                .await?
                .unchecked_into(),
            Select::All => self.run(store.get_all()).await?.unchecked_into(),
            Select::Index(index, key) => {
                let key = crate::web::to_js(&key).map_err(|e| self.refused(e))?;
                let request = store.index(index).and_then(|i| i.get_all_with_key(&key));
                self.run(request).await?.unchecked_into()
            }
        };
        values.iter().map(|value| decode(value, lookup)).collect()
    }

    async fn keys(&self, store: &str, profile: Option<&str>) -> Result<Vec<String>, StoreError> {
        let object_store = self.store(store)?;
        let request = match profile {
            None => object_store.get_all_keys(),
            Some(profile) => (object_store.index(BY_PROFILE))
                .and_then(|index| index.get_all_keys_with_key(&profile.into())),
        };
        let keys: Array = self.run(request).await?.unchecked_into();
        keys.iter().map(|key| string_key(key, store)).collect()
    }

    /// Read with a cursor, so the records pass one at a time and their bytes never enter
    /// wasm memory.
    async fn payload_bytes(&self, store: &str, fields: &[&str]) -> Result<u64, StoreError> {
        let request = self
            .store(store)?
            .open_cursor()
            .map_err(|e| self.refused(e))?;
        let mut total = 0;
        loop {
            let cursor = settle(&request).await.map_err(|f| self.failed(f))?;
            let Some(cursor) = cursor.dyn_ref::<IdbCursorWithValue>() else {
                return Ok(total);
            };
            let record = cursor.value().map_err(|e| self.refused(e))?;
            total += fields.iter().map(|f| payload_len(&record, f)).sum::<u64>();
            cursor.continue_().map_err(|e| self.refused(e))?;
        }
    }

    /// Issues one request of a write. The record is turned into a JS value only now: a
    /// failure at any request aborts the transaction, which rolls back the earlier ones.
    async fn apply(&self, write: &StoreWrite<'_>, needed: u64) -> Result<(), StoreError> {
        let object_store = |name| self.raw.object_store(name);
        let request = match write {
            StoreWrite::Put {
                store,
                record,
                key,
                kind,
                id,
            } => {
                let value = to_record(record, kind, id)?;
                object_store(store).and_then(|s| match key {
                    Some(key) => s.put_with_key(&value, &(*key).into()),
                    None => s.put(&value),
                })
            }
            StoreWrite::Delete { store, key } => {
                object_store(store).and_then(|s| s.delete(&(*key).into()))
            }
            StoreWrite::Clear { store } => object_store(store).and_then(|s| s.clear()),
        };
        match issue(request).await {
            Ok(_) => Ok(()),
            Err(failure) => Err(classify(&failure, Access::Write, needed).await),
        }
    }

    async fn finish(self, abort: bool, needed: u64) -> Result<(), StoreError> {
        if abort {
            // Fails only when the transaction already ended, which is what we want anyway.
            let _ = self.raw.abort();
        }
        match JsFuture::from(self.ended.clone()).await {
            Ok(_) => Ok(()),
            Err(_) if abort => Ok(()),
            // The browser aborted it: its error says why (the quota, most often).
            Err(_) => Err(match self.raw.error() {
                Some(error) => classify(&failure_from_js(&error.into()), self.access, needed).await,
                None => self
                    .access
                    .error("the browser aborted the transaction".into()),
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Records

fn to_record<T: Serialize + ?Sized>(
    value: &T,
    kind: &'static str,
    id: &str,
) -> Result<JsValue, StoreError> {
    value
        .serialize(&crate::web::JS_SERIALIZER)
        .map_err(|e| StoreError::InvalidRecord {
            kind,
            id: id.to_owned(),
            reason: format!("the browser cannot store it ({e})"),
        })
}

/// A record read by `lookup`. A model summary takes the length of the weights it leaves in
/// JS.
fn decode(value: JsValue, lookup: &Lookup) -> Result<Record, StoreError> {
    let weights = match lookup.kind {
        RecordKind::ModelSummary => payload_len(&value, "bytes"),
        _ => 0,
    };
    let deserializer = serde_wasm_bindgen::Deserializer::from(value);
    let mut record = (lookup.kind.decode(deserializer)).map_err(|e| corrupt(lookup.store, e))?;
    if let Record::ModelSummary(summary) = &mut record {
        summary.byte_len = weights;
    }
    Ok(record)
}

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
