//! Records as IndexedDB holds them, and the reads that answer a `Query`.

use js_sys::{Array, Reflect, Uint8Array};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};

use crate::store::schema::object_store::{
    ACTIVE_MODELS, CHECKPOINTS, IMAGES, MODELS, PROFILES, RUNS, SETTINGS,
};
use crate::store::schema::{BY_PROFILE, BY_PROFILE_ROLE, SETTINGS_KEY};
use crate::store::{ModelSummary, Query, Record, StoreError};

use super::errors::corrupt;
use super::transaction::ActiveTransaction;

/// A record as IndexedDB stores it, written as every value that crosses to JS is.
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

pub(super) fn from_record<T: DeserializeOwned>(
    value: JsValue,
    store: &str,
) -> Result<T, StoreError> {
    serde_wasm_bindgen::from_value(value).map_err(|e| corrupt(store, e))
}

/// The byte fields of a photo record.
pub(super) const IMAGE_PAYLOADS: &[&str] = &["encoded", "aligned_crop", "descriptor"];

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

/// Answers a query inside an open read transaction.
pub(super) async fn read_records(
    tx: &ActiveTransaction,
    query: Query<'_>,
) -> Result<Vec<Record>, StoreError> {
    let by_profile = |profile: &str| JsValue::from_str(profile);
    Ok(match query {
        Query::Profile(id) => read_keyed(tx, PROFILES, id, Record::Profile).await?,
        Query::Profiles => read_every(tx, PROFILES, Record::Profile).await?,
        Query::Image(id) => read_keyed(tx, IMAGES, id, Record::Image).await?,
        Query::Images { profile, role } => {
            let (index, key) = match role {
                Some(role) => (
                    BY_PROFILE_ROLE,
                    Array::of2(&by_profile(profile), &to_record(&role, "photo", profile)?).into(),
                ),
                None => (BY_PROFILE, by_profile(profile)),
            };
            let records = tx.get_all_where(IMAGES, index, key).await?;
            decode_all(records, IMAGES, Record::Image)?
        }
        Query::Model(id) => read_keyed(tx, MODELS, id, Record::Model).await?,
        Query::ModelSummaries(profile) => {
            let records = tx
                .get_all_where(MODELS, BY_PROFILE, by_profile(profile))
                .await?;
            records
                .into_iter()
                .map(read_model_summary)
                .collect::<Result<_, _>>()?
        }
        Query::ActiveModelId(profile) => {
            read_keyed(tx, ACTIVE_MODELS, profile, Record::from_pointer).await?
        }
        Query::ActiveModel(profile) => {
            let mut records = read_keyed(tx, ACTIVE_MODELS, profile, Record::from_pointer).await?;
            if let Some(Record::ActiveModel { model_id, .. }) = records.first().cloned() {
                records.extend(read_keyed(tx, MODELS, &model_id, Record::Model).await?);
            }
            records
        }
        Query::Checkpoint(profile) => {
            read_keyed(tx, CHECKPOINTS, profile, Record::Checkpoint).await?
        }
        Query::Run(id) => read_keyed(tx, RUNS, id, Record::Run).await?,
        Query::Runs(profile) => {
            let records = tx
                .get_all_where(RUNS, BY_PROFILE, by_profile(profile))
                .await?;
            decode_all(records, RUNS, Record::Run)?
        }
        Query::Settings => read_keyed(tx, SETTINGS, SETTINGS_KEY, Record::Settings).await?,
        Query::Everything => {
            let mut records = read_small_records(tx).await?;
            records.extend(read_every(tx, IMAGES, Record::Image).await?);
            records.extend(read_every(tx, MODELS, Record::Model).await?);
            records.extend(read_every(tx, CHECKPOINTS, Record::Checkpoint).await?);
            records
        }
    })
}

/// Records of `store`, each read as a `T` and wrapped as a `Record`.
fn decode_all<T: DeserializeOwned>(
    records: Vec<JsValue>,
    store: &str,
    wrap: fn(T) -> Record,
) -> Result<Vec<Record>, StoreError> {
    records
        .into_iter()
        .map(|record| from_record(record, store).map(wrap))
        .collect()
}

/// The record under `key` in `store`, if any.
async fn read_keyed<T: DeserializeOwned>(
    tx: &ActiveTransaction,
    store: &str,
    key: &str,
    wrap: fn(T) -> Record,
) -> Result<Vec<Record>, StoreError> {
    decode_all(tx.get(store, key).await?.into_iter().collect(), store, wrap)
}

/// Every record of `store`.
async fn read_every<T: DeserializeOwned>(
    tx: &ActiveTransaction,
    store: &str,
    wrap: fn(T) -> Record,
) -> Result<Vec<Record>, StoreError> {
    decode_all(tx.get_all(store).await?, store, wrap)
}

/// A model record without its weights: they stay in JS, only their length is taken.
fn read_model_summary(record: JsValue) -> Result<Record, StoreError> {
    let byte_len = payload_len(&record, "bytes");
    let summary: ModelSummary = from_record(record, MODELS)?;
    Ok(Record::ModelSummary(ModelSummary {
        byte_len,
        ..summary
    }))
}

/// Profiles, active-model pointers, runs and settings: the records without payloads.
pub(super) async fn read_small_records(tx: &ActiveTransaction) -> Result<Vec<Record>, StoreError> {
    let mut records = read_every(tx, PROFILES, Record::Profile).await?;
    records.extend(read_every(tx, ACTIVE_MODELS, Record::from_pointer).await?);
    records.extend(read_every(tx, RUNS, Record::Run).await?);
    records.extend(read_keyed(tx, SETTINGS, SETTINGS_KEY, Record::Settings).await?);
    Ok(records)
}
