//! An indexed database in memory, for running [`IndexedStore`] natively: object stores of
//! JSON records with the key paths and indexes that the schema's migrations create, and
//! transactions that work on a copy which a commit swaps in, as IndexedDB's roll back.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use faceverify::store::schema::{
    BY_PROFILE, IndexKey, IndexSpec, Lookup, SCHEMA, SchemaVersion, Select, StoreWrite, Upgrade,
};
use faceverify::store::{
    Access, IndexedDatabase, IndexedStore, IndexedTransaction, Record, StoreError,
};
use serde_json::Value;

type Records = BTreeMap<String, BTreeMap<String, Value>>;

/// What the migrations made: each object store's key path, each index's.
#[derive(Debug, Default)]
struct Layout {
    key_paths: BTreeMap<String, Option<String>>,
    indexes: BTreeMap<(String, String), Vec<String>>,
}

#[derive(Debug, Default)]
pub struct JsonDatabase {
    layout: Rc<RefCell<Layout>>,
    records: Rc<RefCell<Records>>,
}

/// A store on a new database at this build's schema.
pub fn json_store() -> IndexedStore<JsonDatabase> {
    let database = JsonDatabase::default();
    pollster::block_on(SCHEMA.upgrade(SchemaVersion(0), &database)).unwrap();
    IndexedStore::new(database)
}

impl Upgrade for JsonDatabase {
    fn create_object_store(&self, store: &str, key_path: Option<&str>) -> Result<(), String> {
        let mut layout = self.layout.borrow_mut();
        layout
            .key_paths
            .insert(store.into(), key_path.map(Into::into));
        Ok(())
    }

    fn create_index(&self, spec: &IndexSpec) -> Result<(), String> {
        let path = spec
            .key_path
            .iter()
            .map(|field| field.to_string())
            .collect();
        let mut layout = self.layout.borrow_mut();
        layout
            .indexes
            .insert((spec.store.into(), spec.index.into()), path);
        Ok(())
    }

    async fn rewrite_records(
        &self,
        store: &str,
        rewrite: fn(Value) -> Result<Value, String>,
    ) -> Result<(), String> {
        let mut records = self.records.borrow_mut();
        for record in records.entry(store.into()).or_default().values_mut() {
            *record = rewrite(record.take())?;
        }
        Ok(())
    }
}

impl IndexedDatabase for JsonDatabase {
    type Transaction = JsonTransaction;

    async fn begin(
        &self,
        stores: &[&'static str],
        _: Access,
    ) -> Result<JsonTransaction, StoreError> {
        let layout = self.layout.borrow();
        for store in stores {
            assert!(
                layout.key_paths.contains_key(*store),
                "no object store {store}"
            );
        }
        Ok(JsonTransaction {
            layout: self.layout.clone(),
            committed: self.records.clone(),
            records: RefCell::new(self.records.borrow().clone()),
        })
    }
}

pub struct JsonTransaction {
    layout: Rc<RefCell<Layout>>,
    committed: Rc<RefCell<Records>>,
    records: RefCell<Records>,
}

impl JsonTransaction {
    /// The records of `store` that `select` picks.
    fn select(&self, store: &str, select: Select) -> Vec<(String, Value)> {
        let records = self
            .records
            .borrow()
            .get(store)
            .cloned()
            .unwrap_or_default();
        let (index, wanted) = match select {
            Select::Key(key) => return records.into_iter().filter(|(k, _)| k == key).collect(),
            Select::All => return records.into_iter().collect(),
            Select::Index(index, key) => (index, serde_json::to_value(key).unwrap()),
        };
        let layout = self.layout.borrow();
        let path = &layout.indexes[&(store.to_owned(), index.to_owned())];
        let index_key = |record: &Value| match path.as_slice() {
            [field] => record[field].clone(),
            fields => fields.iter().map(|f| record[f].clone()).collect(),
        };
        let selected = records.into_iter().filter(|(_, r)| index_key(r) == wanted);
        selected.collect()
    }
}

fn byte_len(record: &Value, field: &str) -> u64 {
    record[field]
        .as_array()
        .map_or(0, |bytes| bytes.len() as u64)
}

impl IndexedTransaction for JsonTransaction {
    async fn read(&self, lookup: &Lookup<'_>) -> Result<Vec<Record>, StoreError> {
        let decode = |(_, record): (String, Value)| {
            let mut decoded = lookup.kind.decode(&record).unwrap();
            if let Record::ModelSummary(summary) = &mut decoded {
                summary.byte_len = byte_len(&record, "bytes");
            }
            decoded
        };
        Ok(self
            .select(lookup.store, lookup.select)
            .into_iter()
            .map(decode)
            .collect())
    }

    async fn keys(&self, store: &str, profile: Option<&str>) -> Result<Vec<String>, StoreError> {
        let select = match profile {
            Some(profile) => Select::Index(BY_PROFILE, IndexKey::Profile(profile)),
            None => Select::All,
        };
        Ok(self
            .select(store, select)
            .into_iter()
            .map(|(key, _)| key)
            .collect())
    }

    async fn payload_bytes(&self, store: &str, fields: &[&str]) -> Result<u64, StoreError> {
        let records = self.select(store, Select::All);
        Ok(records
            .iter()
            .flat_map(|(_, r)| fields.iter().map(|f| byte_len(r, f)))
            .sum())
    }

    async fn apply(&self, write: &StoreWrite<'_>, _: u64) -> Result<(), StoreError> {
        let mut records = self.records.borrow_mut();
        match write {
            StoreWrite::Put {
                store, record, key, ..
            } => {
                let value = serde_json::to_value(record).unwrap();
                let key = key.map(str::to_owned).unwrap_or_else(|| {
                    let path = self.layout.borrow().key_paths[*store]
                        .clone()
                        .expect("a key path");
                    value[path].as_str().unwrap().to_owned()
                });
                records
                    .entry(store.to_string())
                    .or_default()
                    .insert(key, value);
            }
            StoreWrite::Delete { store, key } => {
                records.entry(store.to_string()).or_default().remove(*key);
            }
            StoreWrite::Clear { store } => {
                records.remove(*store);
            }
        }
        Ok(())
    }

    async fn finish(self, abort: bool, _: u64) -> Result<(), StoreError> {
        if !abort {
            *self.committed.borrow_mut() = self.records.into_inner();
        }
        Ok(())
    }
}
