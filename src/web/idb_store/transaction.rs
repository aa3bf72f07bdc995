//! Requests, and a transaction in progress with the primitives the store is built on.

use js_sys::{Array, Promise};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbCursorWithValue, IdbObjectStore, IdbRequest, IdbTransaction};

use crate::store::schema::{BY_PROFILE, Lookup, Select, StoreWrite};
use crate::store::{Access, IndexedTransaction, Record, StorageFailure, StoreError};

use super::errors::{classify, failure_from_js};
use super::records::{decode, payload_len, string_key, to_record};

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

    /// A failed read as the store's error: a missing object store or index is a damaged layout.
    fn failed(&self, failure: StorageFailure) -> StoreError {
        if failure.named("NotFoundError") {
            let detail = format!(
                "the database lacks a part of its layout ({})",
                failure.detail()
            );
            return StoreError::Corrupt { detail };
        }
        self.access.error(failure.detail())
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
            Select::Key(key) => {
                let value = self.run(store.get(&key.into())).await?;
                match value.is_undefined() {
                    true => Array::new(),
                    false => Array::of1(&value),
                }
            }
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
