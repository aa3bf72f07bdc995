//! Browser failures as the store's errors.

use std::fmt;

use js_sys::Reflect;
use wasm_bindgen::JsValue;

use crate::store::{Access, StorageEstimate, StorageFailure, StoreError};

use super::storage_usage;

/// A browser failure (a `DOMException`, an `Error`, or an idb error) as the store's rules
/// read it.
pub(super) fn failure_from_js(value: &JsValue) -> StorageFailure {
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

pub(super) fn failure_from_idb(error: &idb::Error) -> StorageFailure {
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
pub(super) async fn classify(failure: &StorageFailure, access: Access, needed: u64) -> StoreError {
    let available = if failure.is_quota() {
        storage_usage().await.map(|e| e.available())
    } else {
        None
    };
    failure.to_store_error(access, needed, available)
}

pub(super) fn corrupt(store: &str, reason: impl fmt::Display) -> StoreError {
    StoreError::Corrupt {
        detail: format!("a record in '{store}' is unreadable: {reason}"),
    }
}
