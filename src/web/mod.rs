//! The browser layer: the worker's message loop (it owns the Burn device and IndexedDB), and
//! the wasm-bindgen exports of the `pkg/` package. Everything here is thin glue over the core.
//! The page itself (`www/app.js`) is plain JavaScript that draws and talks to the worker, so
//! the main thread never compiles or runs this module.

pub mod idb_store;
mod worker;

use wasm_bindgen::prelude::*;

use crate::backend::{self, BackendPreference};

pub use worker::worker_main;

/// Runs when the module is instantiated: panics reach the console with their message.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
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
    let preference: BackendPreference = preference
        .parse()
        .map_err(|e: String| JsValue::from_str(&e))?;
    let selected = backend::select(preference).await;
    let value = to_js(&selected.report)?;
    js_sys::Reflect::set(
        &value,
        &"description".into(),
        &selected.report.describe().into(),
    )?;
    Ok(value)
}

/// Serialises to plain JS objects (never `Map`s), so page code and tests can read fields.
pub(crate) fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsValue::from_str(&e.to_string()))
}
