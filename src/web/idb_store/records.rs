//! Records as IndexedDB holds them: written as every value that crosses to JS is, read back
//! as the lookup's kind.

use js_sys::{Array, Reflect, Uint8Array};
use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};

use crate::store::schema::{Lookup, RecordKind};
use crate::store::{Record, StoreError};

use super::errors::corrupt;

pub(super) fn to_record<T: Serialize + ?Sized>(
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
pub(super) fn decode(value: JsValue, lookup: &Lookup) -> Result<Record, StoreError> {
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
pub(super) fn payload_len(record: &JsValue, field: &str) -> u64 {
    let value = Reflect::get(record, &JsValue::from_str(field)).unwrap_or(JsValue::UNDEFINED);
    if let Some(bytes) = value.dyn_ref::<Uint8Array>() {
        u64::from(bytes.length())
    } else if let Some(array) = value.dyn_ref::<Array>() {
        u64::from(array.length())
    } else {
        0
    }
}

pub(super) fn string_key(key: JsValue, store: &str) -> Result<String, StoreError> {
    key.as_string()
        .ok_or_else(|| corrupt(store, format!("its key {key:?} is not text")))
}
