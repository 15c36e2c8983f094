//! Counts of what a mount has done, for diagnosis and for tests that must tell a
//! round trip saved from one made.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a mount has served since it was mounted (see [`crate::Mount::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// READ requests: file data the kernel asked for because it had none cached.
    pub reads: u64,
    /// Files whose data was pushed into the kernel's cache before any read (see the
    /// crate docs on prefetch).
    pub stores: u64,
}

/// The live counters behind [`Stats`], shared by the serving threads.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    reads: AtomicU64,
    stores: AtomicU64,
}

impl Counters {
    pub(crate) fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stored(&self) {
        self.stores.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            reads: self.reads.load(Ordering::Relaxed),
            stores: self.stores.load(Ordering::Relaxed),
        }
    }
}
