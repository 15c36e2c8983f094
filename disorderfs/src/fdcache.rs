//! Descriptors of recently read inodes, kept open for the reads that follow.
//!
//! In no-open mode the kernel sends reads without a file handle, so a read needs a
//! descriptor of the inode opened for it. Re-opening the inode (through
//! `/proc/self/fd`) costs more than the `pread` itself, and a large file is read in
//! many requests, so the last few descriptors are kept. The cache is small and
//! bounded: every cached inode already holds one descriptor, and the daemon's
//! descriptor limit must cover all of those.
//!
//! An entry is tied to the `Inode` it was opened from, not to the node id, so it can
//! never serve another file; entries of inodes the kernel has forgotten are closed
//! at the next `prune` (a forgotten, deleted file's space is then freed).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, Weak};

use crate::inode::Inode;
use crate::sys;

/// How many read descriptors are kept (two per serving thread and a few more).
const CAPACITY: usize = 8;

#[derive(Debug)]
struct Slot {
    inode: Weak<Inode>,
    fd: Arc<OwnedFd>,
}

/// The most recently used read descriptors, least recent first.
#[derive(Debug, Default)]
pub(crate) struct ReadFds {
    slots: Mutex<Vec<Slot>>,
}

impl ReadFds {
    /// A descriptor of `inode` open for reading: a kept one, or a fresh one then kept.
    pub(crate) fn get(&self, inode: &Arc<Inode>) -> io::Result<Arc<OwnedFd>> {
        {
            let mut slots = self.slots.lock().expect("read descriptors poisoned");
            if let Some(pos) = slots
                .iter()
                .position(|s| std::ptr::eq(s.inode.as_ptr(), Arc::as_ptr(inode)))
            {
                let slot = slots.remove(pos);
                let fd = Arc::clone(&slot.fd);
                slots.push(slot);
                return Ok(fd);
            }
        }
        // Opened outside the lock: the other threads keep reading meanwhile.
        let fd = Arc::new(sys::reopen(inode.fd(), libc::O_RDONLY)?);
        let mut slots = self.slots.lock().expect("read descriptors poisoned");
        slots.retain(|s| s.inode.strong_count() > 0);
        if slots.len() >= CAPACITY {
            slots.remove(0);
        }
        slots.push(Slot {
            inode: Arc::downgrade(inode),
            fd: Arc::clone(&fd),
        });
        Ok(fd)
    }

    /// Closes the descriptors of inodes that are gone.
    pub(crate) fn prune(&self) {
        let mut slots = self.slots.lock().expect("read descriptors poisoned");
        slots.retain(|s| s.inode.strong_count() > 0);
    }
}
