//! The browser layer: the worker's message loop (it owns the Burn device and IndexedDB), and
//! the wasm-bindgen exports of the `pkg/` package. Everything here is thin glue over the core.
//! The page itself (`www/app.js`) is plain JavaScript that draws and talks to the worker, so
//! the main thread never compiles or runs this module.

mod executor;
pub mod idb_store;
mod worker;

use wasm_bindgen::prelude::*;

use crate::backend::{self, BackendPreference};
use crate::protocol::choice_from_str;

pub use worker::worker_main;

/// Runs when the module is instantiated: a panic reaches the console with its message and, in
/// the app's worker, the page, which fails every request in flight with it instead of waiting
/// for answers that will never come (the module cannot run on after a panic).
#[wasm_bindgen(start)]
pub fn start() {
    backend::run_static_constructors();
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        let Ok(scope) = js_sys::global().dyn_into::<web_sys::DedicatedWorkerGlobalScope>() else {
            return;
        };
        let message = crate::protocol::WorkerResponse::panicked(info);
        if let Ok(value) = to_js(&message) {
            let _ = scope.post_message(&value);
        }
    }));
}

/// The library's version, for apps that import `pkg/`.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Chooses a backend (`"auto"`, `"webgpu"` or `"cpu"`) the way the app's worker does and
/// returns its report: `{ kind, reason, description, ... }`.
#[wasm_bindgen(js_name = selectBackend)]
pub async fn select_backend(preference: String) -> Result<JsValue, JsValue> {
    let preference: BackendPreference =
        choice_from_str("backend", &preference).map_err(|e| JsValue::from_str(&e))?;
    let selected = backend::select(preference).await;
    let value = to_js(&selected.report)?;
    js_sys::Reflect::set(
        &value,
        &"description".into(),
        &selected.report.describe().into(),
    )?;
    Ok(value)
}

/// `target[key]`, or `None` where it is missing, `undefined` or `null`.
pub(crate) fn js_get(target: &JsValue, key: &str) -> Option<JsValue> {
    let value = js_sys::Reflect::get(target, &key.into()).ok()?;
    (!value.is_undefined() && !value.is_null()).then_some(value)
}

/// A JS error's message (an `Error`, a `DOMException`, a string, or anything else).
pub(crate) fn js_message(error: &JsValue) -> String {
    let message = js_get(error, "message").and_then(|m| m.as_string());
    message
        .or_else(|| error.as_string())
        .unwrap_or_else(|| format!("{error:?}"))
}

/// How Rust values become JS values, for the page and for IndexedDB alike: plain objects
/// (never `Map`s), so page code and tests can read fields; `None` as `null`; and bytes
/// (`serde_bytes` fields: photo crops, archives) as `Uint8Array`s, which `new Blob([..])` and
/// IndexedDB take as they are. (`json_compatible` alone writes bytes as arrays of numbers, and
/// a Blob of such an array holds their decimal text.)
pub(crate) const JS_SERIALIZER: serde_wasm_bindgen::Serializer =
    serde_wasm_bindgen::Serializer::json_compatible().serialize_bytes_as_arrays(false);

pub(crate) fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&JS_SERIALIZER)
        .map_err(|e| JsValue::from_str(&e.to_string()))
}
