//! Transactions: the requests of a write, and a transaction in progress.

use std::collections::BTreeSet;

use idb::Query as KeyQuery;
use js_sys::Promise;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use web_sys::IdbTransaction;

use crate::store::dataset::Catalog;
use crate::store::detached::ActiveModelEntry;
use crate::store::schema::object_store::{
    ACTIVE_MODELS, CHECKPOINTS, IMAGES, MODELS, PROFILES, RUNS, SETTINGS,
};
use crate::store::schema::{BY_PROFILE, SETTINGS_KEY, StoreWrite};
use crate::store::{Access, StorageFailure, StoreError};

use super::errors::{failure_from_idb, failure_from_js};
use super::records::{from_record, payload_len, string_key, to_record};

/// A transaction in progress. `ended` settles when the browser finishes it: resolved on
/// `complete`, rejected on `abort` (its handlers are plain JS functions, so nothing on the
/// Rust side has to outlive it).
pub(super) struct ActiveTransaction {
    pub(super) raw: IdbTransaction,
    pub(super) transaction: idb::Transaction,
    pub(super) ended: Promise,
    pub(super) access: Access,
}

impl ActiveTransaction {
    pub(super) fn new(transaction: idb::Transaction, access: Access) -> Self {
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

    pub(super) fn failed(&self, e: idb::Error) -> StoreError {
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

    pub(super) fn store(&self, name: &str) -> Result<idb::ObjectStore, StoreError> {
        self.transaction
            .object_store(name)
            .map_err(|e| self.failed(e))
    }

    /// Issues a request and waits for its result, each failure as the store's error.
    async fn run<T, R>(&self, request: Result<R, idb::Error>) -> Result<T, StoreError>
    where
        R: IntoFuture<Output = Result<T, idb::Error>>,
    {
        request
            .map_err(|e| self.failed(e))?
            .await
            .map_err(|e| self.failed(e))
    }

    pub(super) async fn get(&self, store: &str, key: &str) -> Result<Option<JsValue>, StoreError> {
        self.run(self.store(store)?.get(JsValue::from_str(key)))
            .await
    }

    pub(super) async fn get_all(&self, store: &str) -> Result<Vec<JsValue>, StoreError> {
        self.run(self.store(store)?.get_all(None, None)).await
    }

    /// Every primary key of `store`.
    pub(super) async fn keys(&self, store: &str) -> Result<BTreeSet<String>, StoreError> {
        let keys = self
            .run(self.store(store)?.get_all_keys(None, None))
            .await?;
        keys.into_iter().map(|k| string_key(k, store)).collect()
    }

    /// Records of `store` whose `index` key equals `key`.
    pub(super) async fn get_all_where(
        &self,
        store: &str,
        index: &str,
        key: JsValue,
    ) -> Result<Vec<JsValue>, StoreError> {
        let index = self.store(store)?.index(index);
        self.run(index.and_then(|i| i.get_all(Some(KeyQuery::Key(key)), None)))
            .await
    }

    /// Primary keys of the records of `store` whose `index` key equals `key`.
    pub(super) async fn keys_where(
        &self,
        store: &str,
        index: &str,
        key: &str,
    ) -> Result<Vec<String>, StoreError> {
        let key = KeyQuery::Key(JsValue::from_str(key));
        let index = self.store(store)?.index(index);
        let keys = self
            .run(index.and_then(|i| i.get_all_keys(Some(key), None)))
            .await?;
        keys.into_iter().map(|k| string_key(k, store)).collect()
    }

    /// Sum of the payload fields of every record of `store`, read with a cursor so the
    /// records pass one at a time and their bytes never enter wasm memory.
    pub(super) async fn payload_bytes(
        &self,
        store: &str,
        fields: &[&str],
    ) -> Result<u64, StoreError> {
        let mut cursor = self.run(self.store(store)?.open_cursor(None, None)).await?;
        let mut total = 0;
        while let Some(current) = cursor {
            let record = current.value().map_err(|e| self.failed(e))?;
            total += fields.iter().map(|f| payload_len(&record, f)).sum::<u64>();
            cursor = self.run(current.next(None)).await?;
        }
        Ok(total)
    }

    /// Issues one request of a write. The record is turned into a JS value only now: a
    /// failure at any request aborts the transaction, which rolls back the earlier ones.
    pub(super) async fn apply(&self, write: &StoreWrite<'_>) -> Result<(), WriteFailure> {
        let browser = |e: idb::Error| WriteFailure::Browser(failure_from_idb(&e));
        let object_store = |name| self.transaction.object_store(name).map_err(browser);
        match write {
            StoreWrite::Put {
                store,
                record,
                key,
                kind,
                id,
            } => {
                let value = to_record(record, kind, id).map_err(WriteFailure::Store)?;
                let key = key.map(JsValue::from_str);
                let request = object_store(store)?.put(&value, key.as_ref());
                request.map_err(browser)?.await.map_err(browser)?;
            }
            StoreWrite::Delete { store, key } => {
                let request = object_store(store)?.delete(JsValue::from_str(key));
                request.map_err(browser)?.await.map_err(browser)?;
            }
            StoreWrite::Clear { store } => {
                object_store(store)?
                    .clear()
                    .map_err(browser)?
                    .await
                    .map_err(browser)?;
            }
        }
        Ok(())
    }

    pub(super) fn abort(&self) {
        // Fails only when the transaction already ended, which is what we want anyway.
        let _ = self.raw.abort();
    }

    /// Waits until the browser has committed or rolled back the transaction. On abort, the
    /// transaction's error (null when we aborted it ourselves).
    pub(super) async fn end(&self) -> Result<(), Option<StorageFailure>> {
        match JsFuture::from(self.ended.clone()).await {
            Ok(_) => Ok(()),
            Err(_) => Err(self.raw.error().map(|e| failure_from_js(&e.into()))),
        }
    }
}

/// The keys and references planning needs, read in the write's own transaction.
pub(super) async fn load_catalog(tx: &ActiveTransaction) -> Result<Catalog, StoreError> {
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
pub(super) enum WriteFailure {
    /// Refused by the rules, or injected: already the user's error.
    Store(StoreError),
    /// Refused by the browser.
    Browser(StorageFailure),
}
