//! The inode table: which underlying file each FUSE node id stands for.
//!
//! Each node the kernel knows about holds an `O_PATH` descriptor of the underlying
//! inode, so every later operation starts from that descriptor and never from a
//! path. Holding the descriptor also keeps the underlying inode alive, so its
//! `(st_dev, st_ino)` key cannot be reused by another file while the kernel still
//! refers to the node.
//!
//! Node ids are the underlying inode numbers where that is unambiguous (files on the
//! root's device), so `stat`'s `st_ino` and `readdir`'s `d_ino` agree with each other
//! and with the native tree. Files on other devices, or whose number is taken, get an
//! id from a separate range.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};

use fuser::BackingId;

/// FUSE's fixed node id for the root directory.
pub(crate) const ROOT_ID: u64 = 1;

/// Where node ids for files whose own inode number cannot be used start.
const ALT_ID_START: u64 = 1 << 63;

/// One underlying inode the kernel holds a reference to.
#[derive(Debug)]
pub(crate) struct Inode {
    fd: OwnedFd,
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
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[derive(Debug)]
struct Entry {
    inode: Arc<Inode>,
    nlookup: u64,
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
                inode: Arc::new(Inode {
                    fd: root_fd,
                    key: root_key,
                    dir_path: Mutex::new(Vec::new()),
                    backing: Mutex::new(None),
                    mtime_lock: Mutex::new(()),
                }),
                // The root is never forgotten.
                nlookup: u64::MAX / 2,
            },
        );
        Table {
            maps: Mutex::new(maps),
            root_dev: root_key.0,
        }
    }

    pub(crate) fn get(&self, id: u64) -> Option<Arc<Inode>> {
        let maps = self.maps.lock().expect("inode table poisoned");
        maps.by_id.get(&id).map(|e| Arc::clone(&e.inode))
    }

    /// Records one more kernel reference to the inode behind `fd` (whose key is `key`)
    /// and returns its node id; `fd` is dropped when the inode is already known.
    pub(crate) fn remember(&self, fd: OwnedFd, key: (u64, u64), dir_path: Option<Vec<u8>>) -> u64 {
        let mut maps = self.maps.lock().expect("inode table poisoned");
        if let Some(&id) = maps.by_key.get(&key) {
            let entry = maps.by_id.get_mut(&id).expect("maps agree");
            entry.nlookup += 1;
            if let Some(path) = dir_path {
                *entry.inode.dir_path.lock().expect("dir path poisoned") = path;
            }
            return id;
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
                    fd,
                    key,
                    dir_path: Mutex::new(dir_path.unwrap_or_default()),
                    backing: Mutex::new(None),
                    mtime_lock: Mutex::new(()),
                }),
                nlookup: 1,
            },
        );
        id
    }

    /// Drops `n` kernel references; the inode's descriptor closes with the last one.
    pub(crate) fn forget(&self, id: u64, n: u64) {
        let mut maps = self.maps.lock().expect("inode table poisoned");
        let Some(entry) = maps.by_id.get_mut(&id) else {
            return;
        };
        entry.nlookup = entry.nlookup.saturating_sub(n);
        if entry.nlookup == 0 {
            let entry = maps.by_id.remove(&id).expect("just seen");
            maps.by_key.remove(&entry.inode.key);
        }
    }
}
