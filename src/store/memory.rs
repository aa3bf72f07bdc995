//! Stores whose records are held in memory: [`MemoryStore`] (nothing else, for tests and a
//! session without persistence) and [`DirStore`](super::DirStore) (on disk as well).
//!
//! Reads never leave memory. A write applies its changes to a copy, lets the store's
//! [`Persistence`] take or refuse them, and swaps the copy in only then, so a failure leaves
//! the previous state whole. Copying is O(data) per write: fine for tests, the CLI and small
//! data, not meant for gigabytes.

use std::cell::RefCell;

use super::dataset::{Catalog, Change, StoreContents};
use super::{FaultInjector, Query, Record, StorageUsage, Store, StoreError};

/// What a held store keeps besides memory, and what it checks before taking a transaction.
pub trait Persistence {
    /// What a transaction builds up besides the new records (the directory's next manifest).
    type Staged;

    fn begin(&self) -> Self::Staged;
    /// Takes one change of the transaction, before it is applied to the copy.
    fn stage(&self, staged: &mut Self::Staged, change: &Change) -> Result<(), StoreError>;
    /// Makes `next` the stored state, or refuses it; `before` is the state now.
    fn commit(
        &self,
        staged: Self::Staged,
        before: &StoreContents,
        next: &StoreContents,
    ) -> Result<(), StoreError>;
    fn usage(&self, contents: &StoreContents) -> StorageUsage;
}

/// The records in memory, kept by `P`.
#[derive(Debug, Default)]
pub struct HeldStore<P> {
    pub(super) contents: RefCell<StoreContents>,
    pub(super) persistence: P,
}

impl<P: Persistence> Store for HeldStore<P> {
    async fn read(&self, query: Query<'_>) -> Result<Vec<Record>, StoreError> {
        Ok(self.contents.borrow().query(query))
    }

    async fn write(
        &self,
        plan: impl FnOnce(&Catalog) -> Result<Vec<Change>, StoreError>,
    ) -> Result<bool, StoreError> {
        let changes = plan(&self.contents.borrow().catalog())?;
        if changes.is_empty() {
            return Ok(false);
        }
        let before = self.contents.borrow();
        let mut next = before.clone();
        let mut staged = self.persistence.begin();
        for change in changes {
            self.persistence.stage(&mut staged, &change)?;
            next.apply(change);
        }
        self.persistence.commit(staged, &before, &next)?;
        drop(before);
        self.contents.replace(next);
        Ok(true)
    }

    async fn usage(&self) -> Result<StorageUsage, StoreError> {
        Ok(self.persistence.usage(&self.contents.borrow()))
    }
}

/// The store in memory only.
pub type MemoryStore = HeldStore<Volatile>;

/// Nothing kept beyond memory; a quota and injected faults, as a browser's storage has them.
#[derive(Debug, Default)]
pub struct Volatile {
    /// Byte limit (like the browser's quota); `None` is unlimited.
    quota: Option<u64>,
    faults: FaultInjector,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that refuses to grow past `bytes` (as `StorageUsage::total` counts them),
    /// with `StoreError::QuotaExceeded`, like a browser whose quota is used up.
    pub fn with_quota(bytes: u64) -> Self {
        let mut store = Self::default();
        store.persistence.quota = Some(bytes);
        store
    }

    /// Routes every write through `faults`, so a test can make the Nth one fail.
    pub fn with_faults(mut self, faults: FaultInjector) -> Self {
        self.persistence.faults = faults;
        self
    }
}

impl Persistence for Volatile {
    type Staged = ();

    fn begin(&self) {}

    fn stage(&self, _: &mut (), change: &Change) -> Result<(), StoreError> {
        self.faults.before_write(change.name())
    }

    fn commit(
        &self,
        _: (),
        before: &StoreContents,
        next: &StoreContents,
    ) -> Result<(), StoreError> {
        let Some(limit) = self.quota else {
            return Ok(());
        };
        let used_before = before.usage().total();
        let used_after = next.usage().total();
        // Shrinking is always allowed, so a full store can still be cleaned up.
        if used_after > limit && used_after > used_before {
            return Err(StoreError::QuotaExceeded {
                needed: used_after - used_before,
                available: limit.saturating_sub(used_before),
            });
        }
        Ok(())
    }

    fn usage(&self, contents: &StoreContents) -> StorageUsage {
        contents.usage()
    }
}
