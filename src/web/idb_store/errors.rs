//! Browser failures as the store's errors.

use std::fmt;

use wasm_bindgen::JsValue;

use crate::store::{Access, StorageEstimate, StorageFailure, StoreError};

use super::storage_usage;
use crate::web::js_get;

/// A browser failure (a `DOMException`, an `Error`, or any object with `name` and `message`)
/// as the store's rules read it.
pub(super) fn failure_from_js(value: &JsValue) -> StorageFailure {
    let text = |key| js_get(value, key).and_then(|v| v.as_string());
    let requested = js_get(value, "requested")
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

/// Turns a browser failure into the store's error for that kind of access
/// (`StorageFailure::to_store_error`), with the storage estimate where the quota is the
/// problem.
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
