//! Prefetch: small files' contents pushed into the kernel's page cache, so that
//! reading a file from a cold cache costs one round trip (its lookup) instead of two
//! or more.
//!
//! Without it, the first read of a file is a READ round trip, and a `stat` after it a
//! GETATTR round trip too (the kernel drops its cached atime after every READ), on top
//! of the lookup or listing that found the file. For a tree of small files (`tar`,
//! `git add`, a compiler reading sources) those round trips are most of what FUSE
//! costs.
//!
//! # How, and why a store can never overwrite newer data
//! A store (`FUSE_NOTIFY_STORE`) replaces whatever the kernel has cached for its
//! range, dirty data included, and a process that has the file open can change that
//! data without asking the daemon (a write through a shared mapping does). So a store
//! is only ever made while no process can have the file open:
//!
//! 1. When `READDIRPLUS` hands the kernel a small regular file it did not know yet,
//!    the node gets a pending store, in the same step as the kernel's first reference
//!    is counted (see `Table::remember`), and its entry is sent with a zero timeout.
//! 2. The kernel must therefore revalidate the entry before any path walk can go
//!    through it: no process can open, stat or map the file without a LOOKUP first.
//!    The node was new, so no other name or descriptor leads to it either; a node
//!    that already had a store pending gets a zero timeout on every entry sent.
//! 3. The first LOOKUP of the node stores the file's data, and only then answers, with
//!    the full timeout. Concurrent lookups of the node wait for the store.
//!
//! Every other request about the node drops a pending store (it cannot be needed then,
//! and the rule above makes such requests impossible anyway while a store is pending),
//! and requests that change data or privileges wait for a store in progress. Reads
//! never wait: the kernel holds the page locked while it waits for a READ, and the
//! store waits for that lock.
//!
//! Nothing is read from the root for a file the build never looks at: the store is
//! made by the lookup, not by the listing. A store whose file changed size since the
//! listing is not made (the kernel's size is the listing's).

use std::io;
use std::os::fd::AsRawFd;
use std::sync::OnceLock;

use fuser::{INodeNo, Notifier};

use crate::inode::Inode;
use crate::sys;

/// Which files are prefetched, and the channel their data goes through.
#[derive(Debug)]
pub(crate) struct Prefetch {
    max_size: u64,
    /// Set once the session exists, before the first request.
    notifier: OnceLock<Notifier>,
}

impl Prefetch {
    /// Files of 1 to `max_size` bytes are prefetched; 0 turns prefetch off.
    pub(crate) fn new(max_size: u64) -> Prefetch {
        Prefetch {
            max_size,
            notifier: OnceLock::new(),
        }
    }

    /// Connects the session's notification channel; without it nothing is prefetched.
    pub(crate) fn connect(&self, notifier: Notifier) {
        let _ = self.notifier.set(notifier);
    }

    /// Whether a regular file of `size` bytes is to be prefetched.
    pub(crate) fn wants(&self, size: u64) -> bool {
        self.in_range(size) && self.notifier.get().is_some()
    }

    fn in_range(&self, size: u64) -> bool {
        size > 0 && size <= self.max_size
    }

    /// Reads the whole file behind `inode` and stores it as node `id`'s data, unless
    /// its size is no longer `size`; says whether it stored. Failures only lose the
    /// shortcut: the kernel then reads the file as usual.
    pub(crate) fn store(&self, id: u64, inode: &Inode, size: u64) -> bool {
        let Some(notifier) = self.notifier.get() else {
            return false;
        };
        let stored = (|| -> io::Result<bool> {
            let reopened;
            let fd = match inode.read_fd() {
                Some(fd) => fd.as_raw_fd(),
                None => {
                    reopened = sys::reopen(inode.fd(), libc::O_RDONLY)?;
                    reopened.as_raw_fd()
                }
            };
            match read_exactly(fd, size)? {
                Some(data) => notifier.store(INodeNo(id), 0, &data).map(|()| true),
                None => Ok(false),
            }
        })();
        stored.unwrap_or(false)
    }
}

/// The whole content of `fd`, if it is `size` bytes long.
fn read_exactly(fd: i32, size: u64) -> io::Result<Option<Vec<u8>>> {
    // One byte more than expected tells a grown file from an unchanged one.
    let want = usize::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))? + 1;
    let mut buf = vec![0u8; want];
    let mut got = 0;
    while got < want {
        match sys::pread(fd, &mut buf[got..], got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    if got as u64 != size {
        return Ok(None);
    }
    buf.truncate(got);
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_a_file_of_the_expected_size_only() {
        let mut f = tempfile::tempfile().expect("temp file");
        f.write_all(b"hello").expect("write");
        let fd = f.as_raw_fd();
        assert_eq!(read_exactly(fd, 5).unwrap().as_deref(), Some(&b"hello"[..]));
        assert_eq!(read_exactly(fd, 4).unwrap(), None, "a grown file");
        assert_eq!(read_exactly(fd, 6).unwrap(), None, "a shrunk file");
    }

    #[test]
    fn sizes_outside_the_limit_are_not_wanted() {
        let p = Prefetch::new(4096);
        assert!(!p.in_range(0));
        assert!(p.in_range(1));
        assert!(p.in_range(4096));
        assert!(!p.in_range(4097));
        assert!(!Prefetch::new(0).in_range(1));
        assert!(
            !p.wants(100),
            "nothing is prefetched before the session is connected"
        );
    }
}
