//! The inode table: which underlying file each FUSE node id stands for.
//!
//! Each node the kernel knows about holds a descriptor of the underlying inode
//! (`O_PATH`, or read-only for a regular file a listing found), so every later
//! operation starts from that descriptor and never from a path. Holding the descriptor
//! also keeps the underlying inode alive, so its `(st_dev, st_ino)` key cannot be
//! reused by another file while the kernel still refers to the node.
//!
//! The table also keeps each node's prefetch store state (see `prefetch`), under the
//! same lock as the kernel's reference count, so that the first reference and a
//! pending store are one step.
//!
//! Node ids are the underlying inode numbers where that is unambiguous (files on the
//! root's device), so `stat`'s `st_ino` and `readdir`'s `d_ino` agree with each other
//! and with the native tree. Files on other devices, or whose number is taken, get an
//! id from a separate range.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use fuser::BackingId;

/// FUSE's fixed node id for the root directory.
pub(crate) const ROOT_ID: u64 = 1;

/// Where node ids for files whose own inode number cannot be used start.
const ALT_ID_START: u64 = 1 << 63;

/// One underlying inode the kernel holds a reference to.
#[derive(Debug)]
pub(crate) struct Inode {
    fd: OwnedFd,
    /// `fd` is open for reading: regular files found by a listing are opened so,
    /// which spares each later read (and prefetch store) a re-open.
    readable: bool,
    pub(crate) key: (u64, u64),
    /// The directory's path relative to the root, as last looked up: it keys the
    /// shuffle. Only directories keep one; renames are picked up on the next lookup.
    pub(crate) dir_path: Mutex<Vec<u8>>,
    /// The kernel passthrough backing file shared by all open handles of this inode,
    /// and how many handles use it.
    pub(crate) backing: Mutex<Option<(Arc<BackingId>, usize)>>,
    /// With the writeback cache, held across each write (which must leave the mtime
    /// as it was, see `DisorderFs::write`) and each mtime change, so the two cannot
    /// interleave.
    pub(crate) mtime_lock: Mutex<()>,
}

impl Inode {
    pub(crate) fn new(fd: OwnedFd, key: (u64, u64), dir_path: Vec<u8>) -> Inode {
        Inode {
            readable: false,
            fd,
            key,
            dir_path: Mutex::new(dir_path),
            backing: Mutex::new(None),
            mtime_lock: Mutex::new(()),
        }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The inode's descriptor, if it is open for reading (not `O_PATH`).
    pub(crate) fn read_fd(&self) -> Option<BorrowedFd<'_>> {
        self.readable.then(|| self.fd.as_fd())
    }
}

#[derive(Debug)]
struct Entry {
    inode: Arc<Inode>,
    nlookup: u64,
    store: Store,
}

/// Where a node's prefetch store is (see `prefetch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    /// Nothing to store: the kernel reads the file as usual.
    None,
    /// To be stored by the first lookup of the node, if the file still has the size
    /// the kernel was given (which the kernel keeps until it is told otherwise).
    Pending(u64),
    /// Being stored by a lookup now.
    Storing,
}

/// What `remember` did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Remembered {
    pub id: u64,
    /// The node's prefetch store is still to come (pending or in progress).
    pub store_pending: bool,
}

/// What a lookup must do about the node's prefetch store.
#[derive(Debug)]
pub(crate) enum StoreTurn {
    /// Nothing pending.
    Nothing,
    /// Store the file now, if it still has the given size, then call `Table::stored`.
    Store(Arc<Inode>, u64),
}

#[derive(Debug, Default)]
struct Maps {
    by_id: HashMap<u64, Entry>,
    by_key: HashMap<(u64, u64), u64>,
    next_alt: u64,
}

/// Node id → inode, and underlying `(dev, ino)` → node id.
#[derive(Debug)]
pub(crate) struct Table {
    maps: Mutex<Maps>,
    root_dev: u64,
    /// Signalled when a store ends.
    stored: Condvar,
    /// How many nodes have a store pending or in progress: requests skip the lock
    /// while there are none.
    stores: AtomicUsize,
}

impl Table {
    /// A table holding only the root, whose descriptor is `root_fd`.
    pub(crate) fn new(root_fd: OwnedFd, root_key: (u64, u64)) -> Table {
        let mut maps = Maps {
            next_alt: ALT_ID_START,
            ..Maps::default()
        };
        maps.by_key.insert(root_key, ROOT_ID);
        maps.by_id.insert(
            ROOT_ID,
            Entry {
                inode: Arc::new(Inode::new(root_fd, root_key, Vec::new())),
                // The root is never forgotten.
                nlookup: u64::MAX / 2,
                store: Store::None,
            },
        );
        Table {
            maps: Mutex::new(maps),
            root_dev: root_key.0,
            stored: Condvar::new(),
            stores: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Maps> {
        self.maps.lock().expect("inode table poisoned")
    }

    pub(crate) fn get(&self, id: u64) -> Option<Arc<Inode>> {
        self.lock().by_id.get(&id).map(|e| Arc::clone(&e.inode))
    }

    /// Records one more kernel reference to the inode behind `fd` (whose key is `key`);
    /// `fd` is dropped when the inode is already known. A node the kernel did not know
    /// gets a pending prefetch store of `prefetch` bytes when asked, in the same step,
    /// so no other request can see the node without seeing its store.
    pub(crate) fn remember(
        &self,
        (fd, readable): (OwnedFd, bool),
        key: (u64, u64),
        mut dir_path: Option<Vec<u8>>,
        prefetch: Option<u64>,
    ) -> Remembered {
        let mut maps = self.lock();
        // Opened and looked up by another request meanwhile.
        if let Some(known) = Self::count_known(&mut maps, key, &mut dir_path) {
            return known;
        }
        let natural = key.1;
        let id =
            if key.0 == self.root_dev && natural > ROOT_ID && !maps.by_id.contains_key(&natural) {
                natural
            } else {
                while maps.by_id.contains_key(&maps.next_alt) {
                    maps.next_alt += 1;
                }
                let id = maps.next_alt;
                maps.next_alt += 1;
                id
            };
        maps.by_key.insert(key, id);
        maps.by_id.insert(
            id,
            Entry {
                inode: Arc::new(Inode {
                    readable,
                    ..Inode::new(fd, key, dir_path.unwrap_or_default())
                }),
                nlookup: 1,
                store: prefetch.map_or(Store::None, Store::Pending),
            },
        );
        if prefetch.is_some() {
            self.stores.fetch_add(1, Ordering::SeqCst);
        }
        Remembered {
            id,
            store_pending: prefetch.is_some(),
        }
    }

    /// Records one more kernel reference to the inode `key` if the table has it already
    /// (no descriptor is needed then).
    pub(crate) fn remember_known(
        &self,
        key: (u64, u64),
        mut dir_path: Option<Vec<u8>>,
    ) -> Option<Remembered> {
        Self::count_known(&mut self.lock(), key, &mut dir_path)
    }

    /// `remember_known` under the lock; takes `dir_path` only when the inode is known.
    fn count_known(
        maps: &mut Maps,
        key: (u64, u64),
        dir_path: &mut Option<Vec<u8>>,
    ) -> Option<Remembered> {
        let id = *maps.by_key.get(&key)?;
        let entry = maps.by_id.get_mut(&id).expect("maps agree");
        entry.nlookup += 1;
        if let Some(path) = dir_path.take() {
            *entry.inode.dir_path.lock().expect("dir path poisoned") = path;
        }
        Some(Remembered {
            id,
            store_pending: entry.store != Store::None,
        })
    }

    /// For a lookup of node `id`: whether this lookup stores the node's data (then it
    /// must call `stored` before answering); waits while another lookup stores it.
    pub(crate) fn store_turn(&self, id: u64) -> StoreTurn {
        if !self.stores_pending() {
            return StoreTurn::Nothing;
        }
        let mut maps = self.lock();
        loop {
            let Some(entry) = maps.by_id.get_mut(&id) else {
                return StoreTurn::Nothing;
            };
            match entry.store {
                Store::None => return StoreTurn::Nothing,
                Store::Pending(size) => {
                    entry.store = Store::Storing;
                    return StoreTurn::Store(Arc::clone(&entry.inode), size);
                }
                Store::Storing => maps = self.stored.wait(maps).expect("inode table poisoned"),
            }
        }
    }

    /// Ends the store `store_turn` handed out.
    pub(crate) fn stored(&self, id: u64) {
        let mut maps = self.lock();
        if let Some(entry) = maps.by_id.get_mut(&id) {
            Self::clear_store(&self.stores, entry);
        }
        drop(maps);
        self.stored.notify_all();
    }

    /// Called before any request but a lookup about node `id`: a pending store is
    /// dropped (the kernel reads the file as usual). With `wait`, a store in progress
    /// is waited for; reads must not wait, see `prefetch`.
    pub(crate) fn settle_store(&self, id: u64, wait: bool) {
        if !self.stores_pending() {
            return;
        }
        let mut maps = self.lock();
        loop {
            let Some(entry) = maps.by_id.get_mut(&id) else {
                return;
            };
            match entry.store {
                Store::None => return,
                Store::Pending(_) => return Self::clear_store(&self.stores, entry),
                Store::Storing if wait => {
                    maps = self.stored.wait(maps).expect("inode table poisoned");
                }
                Store::Storing => return,
            }
        }
    }

    fn clear_store(stores: &AtomicUsize, entry: &mut Entry) {
        if entry.store != Store::None {
            entry.store = Store::None;
            stores.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Whether any node has a store pending or in progress.
    pub(crate) fn stores_pending(&self) -> bool {
        self.stores.load(Ordering::SeqCst) > 0
    }

    /// The node id the kernel knows the underlying inode `key` by, if any.
    pub(crate) fn id_of(&self, key: (u64, u64)) -> Option<u64> {
        self.lock().by_key.get(&key).copied()
    }

    /// Drops `n` kernel references; the inode's descriptor closes with the last one.
    pub(crate) fn forget(&self, id: u64, n: u64) {
        let mut maps = self.lock();
        let Some(entry) = maps.by_id.get_mut(&id) else {
            return;
        };
        entry.nlookup = entry.nlookup.saturating_sub(n);
        if entry.nlookup == 0 {
            let mut entry = maps.by_id.remove(&id).expect("just seen");
            Self::clear_store(&self.stores, &mut entry);
            maps.by_key.remove(&entry.inode.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let root = std::fs::File::open("/").expect("open /");
        Table::new(root.into(), (0, 2))
    }

    fn fd() -> (OwnedFd, bool) {
        (std::fs::File::open("/").expect("open /").into(), false)
    }

    #[test]
    fn a_store_is_handed_out_once_and_only_for_a_new_node() {
        let t = table();
        let first = t.remember(fd(), (0, 10), None, Some(100));
        assert!(first.store_pending);
        // A second reference while pending still says so: its entry needs revalidation.
        let again = t.remember(fd(), (0, 10), None, Some(100));
        assert_eq!(again.id, first.id);
        assert!(again.store_pending);
        match t.store_turn(first.id) {
            StoreTurn::Store(_, size) => assert_eq!(size, 100),
            StoreTurn::Nothing => panic!("the pending store was not handed out"),
        }
        t.stored(first.id);
        assert!(matches!(t.store_turn(first.id), StoreTurn::Nothing));
        assert!(!t.stores_pending());
        // A node the kernel already knows never gets a store.
        let known = t.remember(fd(), (0, 10), None, Some(100));
        assert!(!known.store_pending);
    }

    #[test]
    fn any_other_request_drops_a_pending_store() {
        let t = table();
        let id = t.remember(fd(), (0, 11), None, Some(5)).id;
        t.settle_store(id, false);
        assert!(!t.stores_pending());
        assert!(matches!(t.store_turn(id), StoreTurn::Nothing));
    }

    #[test]
    fn forgetting_a_node_drops_its_store() {
        let t = table();
        let id = t.remember(fd(), (0, 12), None, Some(5)).id;
        t.forget(id, 1);
        assert!(!t.stores_pending());
    }

    #[test]
    fn a_writer_waits_for_a_store_in_progress_and_a_reader_does_not() {
        let t = Arc::new(table());
        let id = t.remember(fd(), (0, 13), None, Some(5)).id;
        assert!(matches!(t.store_turn(id), StoreTurn::Store(..)));
        // Readers go ahead: the kernel may hold the page the store waits for.
        t.settle_store(id, false);
        let writer = {
            let t = Arc::clone(&t);
            std::thread::spawn(move || t.settle_store(id, true))
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !writer.is_finished(),
            "a writer went past a store in progress"
        );
        t.stored(id);
        writer.join().expect("writer");
    }
}
