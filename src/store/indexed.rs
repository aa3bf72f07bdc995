//! [`IndexedStore`]: the store on a database of object stores and indexes laid out by the
//! schema, which is what IndexedDB is. A backend ([`IndexedDatabase`]) opens transactions with
//! a few primitives: read a lookup, list keys, sum payload bytes, issue a write, finish. The
//! queries, the catalogue for planning, the writes with their injected faults and the usage
//! are built on them here, once, and run natively on an in-memory database in the tests.
//!
//! A write is one read-write transaction: it reads the keys and references planning needs (no
//! payloads), plans with `dataset` (the rules every store shares), then issues its writes one
//! by one. Any failure (a refused record, a write the database rejects, an injected fault, the
//! quota) aborts the transaction, which rolls back every write already made in it, so the
//! stored data is exactly as before.

use super::dataset::{Catalog, Change, StoreContents};
use super::schema::object_store::{
    ACTIVE_MODELS, ALL, CHECKPOINTS, IMAGES, MODELS, PROFILES, RUNS, SETTINGS,
};
use super::schema::{Lookup, RecordKind, Select, StoreWrite};
use super::{Access, FaultInjector, Query, Record, StorageUsage, Store, StoreError};

/// A database laid out by the schema.
#[allow(async_fn_in_trait)]
pub trait IndexedDatabase {
    type Transaction: IndexedTransaction;

    /// Begins a transaction on `stores`: read-only for `Access::Read`, read-write for
    /// `Access::Write`.
    async fn begin(
        &self,
        stores: &[&'static str],
        access: Access,
    ) -> Result<Self::Transaction, StoreError>;
}

/// A transaction in progress. A read-only one ends by itself once dropped.
#[allow(async_fn_in_trait)]
pub trait IndexedTransaction {
    /// The records a lookup selects.
    async fn read(&self, lookup: &Lookup<'_>) -> Result<Vec<Record>, StoreError>;

    /// The primary keys of `store`: all, or those of one profile's records (by `BY_PROFILE`).
    async fn keys(&self, store: &str, profile: Option<&str>) -> Result<Vec<String>, StoreError>;

    /// The sum of the byte fields `fields` over every record of `store`.
    async fn payload_bytes(&self, store: &str, fields: &[&str]) -> Result<u64, StoreError>;

    /// Issues one write. `needed`: what the whole write adds, for a quota error.
    async fn apply(&self, write: &StoreWrite<'_>, needed: u64) -> Result<(), StoreError>;

    /// Commits, or with `abort` rolls back, and waits until the database has done so.
    async fn finish(self, abort: bool, needed: u64) -> Result<(), StoreError>;
}

/// The byte fields of each object store's records.
pub const PAYLOADS: [(&str, &[&str]); 3] = [
    (IMAGES, &["encoded", "aligned_crop", "descriptor"]),
    (MODELS, &["bytes"]),
    (CHECKPOINTS, &["model_bytes", "optimiser_bytes"]),
];

/// The [`Store`] on an [`IndexedDatabase`].
#[derive(Debug)]
pub struct IndexedStore<D> {
    database: D,
    faults: FaultInjector,
}

impl<D: IndexedDatabase> IndexedStore<D> {
    pub fn new(database: D) -> Self {
        IndexedStore {
            database,
            faults: FaultInjector::default(),
        }
    }

    pub fn database(&self) -> &D {
        &self.database
    }

    /// Routes every write request through `faults`, so a test can make the Nth one fail: the
    /// transaction is then aborted, as a failure of the database would abort it.
    pub fn with_faults(mut self, faults: FaultInjector) -> Self {
        self.faults = faults;
        self
    }

    async fn plan_and_write(
        &self,
        tx: &D::Transaction,
        plan: impl FnOnce(&Catalog) -> Result<Vec<Change>, StoreError>,
        needed: &mut u64,
    ) -> Result<bool, StoreError> {
        let changes = plan(&catalog(tx).await?)?;
        *needed = changes.iter().map(Change::bytes_added).sum();
        for change in &changes {
            for write in change.writes() {
                self.faults.before_write(change.name())?;
                tx.apply(&write, *needed).await?;
            }
        }
        Ok(!changes.is_empty())
    }
}

/// The keys and references planning needs, read in the write's own transaction.
async fn catalog(tx: &impl IndexedTransaction) -> Result<Catalog, StoreError> {
    let mut catalog = Catalog {
        profiles: tx.keys(PROFILES, None).await?.into_iter().collect(),
        checkpoints: tx.keys(CHECKPOINTS, None).await?.into_iter().collect(),
        has_settings: !tx.keys(SETTINGS, None).await?.is_empty(),
        ..Catalog::default()
    };
    let pointers = Lookup::new(ACTIVE_MODELS, Select::All, RecordKind::ActiveModel);
    for pointer in tx.read(&pointers).await? {
        if let Record::ActiveModel {
            profile_id,
            model_id,
        } = pointer
        {
            catalog.active_models.insert(profile_id, model_id);
        }
    }
    for profile in &catalog.profiles {
        for (store, owned) in [
            (IMAGES, &mut catalog.images),
            (MODELS, &mut catalog.models),
            (RUNS, &mut catalog.runs),
        ] {
            for key in tx.keys(store, Some(profile)).await? {
                owned.insert(key, profile.clone());
            }
        }
    }
    Ok(catalog)
}

impl<D: IndexedDatabase> Store for IndexedStore<D> {
    async fn read(&self, query: Query<'_>) -> Result<Vec<Record>, StoreError> {
        let tx = self
            .database
            .begin(&query.object_stores(), Access::Read)
            .await?;
        let mut records = Vec::new();
        for lookup in query.lookups() {
            records.extend(tx.read(&lookup).await?);
        }
        if let Some(next) = query.next_lookup(&records) {
            let more = tx.read(&next).await?;
            records.extend(more);
        }
        Ok(records)
    }

    async fn write(
        &self,
        plan: impl FnOnce(&Catalog) -> Result<Vec<Change>, StoreError>,
    ) -> Result<bool, StoreError> {
        let tx = self.database.begin(&ALL, Access::Write).await?;
        let mut needed = 0;
        let written = self.plan_and_write(&tx, plan, &mut needed).await;
        // Waits for the rollback too, so the caller's next read sees the old state.
        let ended = tx.finish(written.is_err(), needed).await;
        let changed = written?;
        ended.map(|()| changed)
    }

    /// Payload bytes are summed record by record; the small records are counted by their
    /// JSON size, as every store counts them.
    async fn usage(&self) -> Result<StorageUsage, StoreError> {
        let tx = self.database.begin(&ALL, Access::Read).await?;
        let mut payloads = [0; 3];
        for ((store, fields), total) in PAYLOADS.into_iter().zip(&mut payloads) {
            *total = tx.payload_bytes(store, fields).await?;
        }
        let mut small = Vec::new();
        for lookup in Lookup::small_records() {
            small.extend(tx.read(&lookup).await?);
        }
        let [images, models, checkpoints] = payloads;
        Ok(StorageUsage {
            images,
            models,
            checkpoints,
            other: StoreContents::from_records(small).usage().other,
        })
    }
}
