//! `MemoryStore`: the store in memory, for tests and for a session without persistence.
//! A transaction applies its changes to a copy and swaps it in only when every write
//! succeeded and the result fits the quota, so a failure leaves the previous state whole.
//! Copying is O(data) per write: fine for tests and small data, not meant for gigabytes.

use std::cell::RefCell;

use super::dataset::{Catalog, Change, StoreContents};
use super::{FaultInjector, Query, Record, StorageUsage, Store, StoreError};

#[derive(Debug, Default)]
pub struct MemoryStore {
    contents: RefCell<StoreContents>,
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
        MemoryStore {
            quota: Some(bytes),
            ..Self::default()
        }
    }

    /// Routes every write through `faults`, so a test can make the Nth one fail.
    pub fn with_faults(mut self, faults: FaultInjector) -> Self {
        self.faults = faults;
        self
    }

    /// One transaction: apply to a copy, check the quota, swap in.
    fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let before = self.contents.borrow();
        let mut next = before.clone();
        for change in changes {
            self.faults.before_write(change.name())?;
            next.apply(change);
        }
        if let Some(limit) = self.quota {
            let used_before = before.usage().total();
            let used_after = next.usage().total();
            // Shrinking is always allowed, so a full store can still be cleaned up.
            if used_after > limit && used_after > used_before {
                return Err(StoreError::QuotaExceeded {
                    needed: used_after - used_before,
                    available: limit.saturating_sub(used_before),
                });
            }
        }
        drop(before);
        *self.contents.borrow_mut() = next;
        Ok(())
    }
}

/// A write to contents held in memory (this store's and `DirStore`'s): plans against their
/// catalogue, then hands the changes to `commit`. Whether anything was written.
pub(super) fn write_planned(
    contents: &RefCell<StoreContents>,
    plan: impl FnOnce(&Catalog) -> Result<Vec<Change>, StoreError>,
    commit: impl FnOnce(Vec<Change>) -> Result<(), StoreError>,
) -> Result<bool, StoreError> {
    let changes = plan(&contents.borrow().catalog())?;
    let changed = !changes.is_empty();
    commit(changes)?;
    Ok(changed)
}

impl Store for MemoryStore {
    async fn read(&self, query: Query<'_>) -> Result<Vec<Record>, StoreError> {
        Ok(self.contents.borrow().query(query))
    }

    async fn write(
        &self,
        plan: impl FnOnce(&Catalog) -> Result<Vec<Change>, StoreError>,
    ) -> Result<bool, StoreError> {
        write_planned(&self.contents, plan, |changes| self.commit(changes))
    }

    async fn usage(&self) -> Result<StorageUsage, StoreError> {
        Ok(self.contents.borrow().usage())
    }
}
