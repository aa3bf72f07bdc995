//! Error injection for tests: make the Nth write of a store fail, to prove that a transaction
//! that fails halfway leaves the store as it was.

use std::cell::Cell;
use std::rc::Rc;

use super::StoreError;

/// A shared switch: the store calls `before_write` before each physical write (a record in
/// `MemoryStore`, a file or rename in `DirStore`); the test arms it with `fail_write`.
/// Clones share the same state, so the test keeps one and hands one to the store.
#[derive(Debug, Clone, Default)]
pub struct FaultInjector {
    state: Rc<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    writes: Cell<u64>,
    fail_at: Cell<Option<u64>>,
}

impl FaultInjector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the `n`th write from now fail (1 = the next one), once.
    pub fn fail_write(&self, n: u64) {
        assert!(n >= 1, "writes are counted from 1");
        self.state.fail_at.set(Some(self.state.writes.get() + n));
    }

    /// Stops a pending failure.
    pub fn disarm(&self) {
        self.state.fail_at.set(None);
    }

    /// Writes attempted so far (including a failed one).
    pub fn writes(&self) -> u64 {
        self.state.writes.get()
    }

    /// Called by stores before each write; fails when armed for this one.
    pub fn before_write(&self, what: &str) -> Result<(), StoreError> {
        let n = self.state.writes.get() + 1;
        self.state.writes.set(n);
        if self.state.fail_at.get() == Some(n) {
            self.state.fail_at.set(None);
            return Err(StoreError::WriteFailed {
                detail: format!("injected failure at write {n} ({what})"),
            });
        }
        Ok(())
    }
}
