//! The FUSE filesystem: a passthrough of one directory whose listings are reordered.
//!
//! Every request is answered from the descriptors in the inode table (`O_PATH`, or
//! read-only for regular files a listing found) with the `*at` family of calls (see
//! `sys`), so nothing is ever resolved by path and no symlink is ever followed by the
//! daemon. Only `opendir` is special: it reads the whole directory, orders it once (see
//! `order`) and keeps that listing for the handle, so offsets are indexes into a fixed
//! list.
//!
//! # Caching, chosen for speed (see `Options` for the knobs)
//! - Entries, attributes and negative lookups are cached by the kernel for
//!   `Options::cache_ttl`. Every change made through the mount goes through the kernel,
//!   which updates or drops what it cached, so this is exact for a build that works
//!   only through the mount; a change made to the root behind the mount's back can be
//!   seen late, by up to the TTL.
//! - Files are opened with `FOPEN_KEEP_CACHE` and the kernel's `AUTO_INVAL_DATA`, so
//!   file contents stay in the page cache across opens and are dropped when the size
//!   or mtime changes. Read-only handles are opened with `FOPEN_NOFLUSH`: their
//!   `close` costs no round trip.
//! - Where the kernel allows it (root in the initial user namespace, kernel >= 6.9),
//!   opened files use FUSE passthrough: reads, writes and mmap go straight to the
//!   underlying file without entering this process.
//! - Elsewhere (inside a user namespace, as vary-build mounts it) the first `open` is
//!   answered with ENOSYS: the kernel then opens and closes files without a round
//!   trip, keeps their pages cached, and sends reads and writes with handle 0. Reads
//!   use the inode's own descriptor where it is open for reading (regular files found
//!   by a listing), or else one of a few kept open for recently read inodes (see
//!   `fdcache`); writes use a descriptor opened for the request. Round trips are what
//!   FUSE costs (two context switches each), so this is the fastest mode for builds.
//! - Where passthrough is not used, the kernel's writeback cache is on
//!   (`Options::writeback_cache`): `write` only fills the page cache, the daemon gets
//!   the data in requests of up to 1 MiB, at the latest when the file is closed (so
//!   the root holds it once `close` returns), and data written through the mount stays
//!   cached for the reads that follow. The kernel then owns sizes and mtimes of the
//!   files it caches: appends are placed by the kernel (handles are opened without
//!   `O_APPEND`), and the daemon's writes leave the root's mtime as the kernel set it.
//!   A change made to a cached file behind the mount's back is not seen until the
//!   kernel drops the file.
//! - `READDIRPLUS` (always, not adaptive) answers a listing and the lookups that
//!   follow it in one round trip per page of entries.
//! - Requests are served by several threads, each with its own `/dev/fuse` clone.
//!
//! - Small regular files a listing shows are prefetched (`Options::prefetch_max`, see
//!   `prefetch`): their entries are sent with a zero timeout, and the LOOKUP that must
//!   revalidate them before any use stores their data in the kernel's cache first. A
//!   listed file then costs that one round trip, instead of a READ plus a GETATTR
//!   when the reader stats it after reading (the kernel drops its cached atime after
//!   every READ).
//!
//! File locks (`flock`, `fcntl`) are left to the kernel, which handles them locally
//! for the mount: correct for every process using the mount, which is everyone in a
//! build.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::fdcache::ReadFds;
use crate::inode::{Inode, ROOT_ID, Remembered, StoreTurn, Table};
use crate::order::{Order, order_entries};
use crate::prefetch::Prefetch;
use crate::stats::Counters;
use crate::sys;

/// The bit of a file handle that says it was opened with a passthrough backing file;
/// the low 32 bits are the descriptor.
const PASSTHROUGH_BIT: u64 = 1 << 32;

/// What the filesystem needs to know from `Options`.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub order: Order,
    pub pad_blocks: u64,
    pub multi_user: bool,
    pub ttl: Duration,
    pub passthrough: bool,
    pub no_open: bool,
    /// Ask for the kernel's writeback cache (only where passthrough is not used).
    pub writeback: bool,
}

/// What `do_lookup` found.
struct Found {
    id: u64,
    attr: FileAttr,
    /// The node's prefetch store is still to come: its entry must be revalidated
    /// before use (see `prefetch`).
    store_pending: bool,
}

/// One opened directory: its listing, fixed and ordered at `opendir`.
#[derive(Debug)]
struct Listing {
    dir: Arc<Inode>,
    entries: Vec<Dirent>,
}

#[derive(Debug)]
struct Dirent {
    name: OsString,
    ino: u64,
    kind: FileType,
}

/// The filesystem a mount serves.
#[derive(Debug)]
pub(crate) struct DisorderFs {
    table: Table,
    settings: Settings,
    /// Whether the kernel agreed to passthrough and the last attempt to use it worked.
    passthrough: AtomicBool,
    /// Whether the kernel agreed to cache writes (decided at `init`).
    writeback: bool,
    /// Read descriptors kept across no-open reads.
    read_fds: ReadFds,
    /// Small files' contents pushed to the kernel after a listing (see `prefetch`).
    prefetch: Arc<Prefetch>,
    counters: Arc<Counters>,
    dirs: Mutex<HashMap<u64, Arc<Listing>>>,
    next_dir: AtomicU64,
}

fn errno(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn system_time(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::new(sec.unsigned_abs(), 0) + Duration::from_nanos(nsec as u64)
    }
}

fn kind_of_mode(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn kind_of_dtype(d_type: u8) -> Option<FileType> {
    Some(match d_type {
        libc::DT_DIR => FileType::Directory,
        libc::DT_LNK => FileType::Symlink,
        libc::DT_CHR => FileType::CharDevice,
        libc::DT_BLK => FileType::BlockDevice,
        libc::DT_FIFO => FileType::NamedPipe,
        libc::DT_SOCK => FileType::Socket,
        libc::DT_REG => FileType::RegularFile,
        _ => return None,
    })
}

/// A descriptor to do I/O with, kept alive for the duration of one request.
enum IoFd {
    Handle(i32),
    Owned(OwnedFd),
    Kept(Arc<OwnedFd>),
    /// The inode's own descriptor, open for reading.
    Inode(Arc<Inode>),
}

impl IoFd {
    fn raw(&self) -> i32 {
        match self {
            IoFd::Handle(fd) => *fd,
            IoFd::Owned(fd) => fd.as_raw_fd(),
            IoFd::Kept(fd) => fd.as_raw_fd(),
            IoFd::Inode(inode) => inode.fd().as_raw_fd(),
        }
    }
}

fn fd_of(fh: FileHandle) -> i32 {
    (fh.0 & 0xffff_ffff) as i32
}

thread_local! {
    static THREAD_READY: Cell<bool> = const { Cell::new(false) };
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Makes the calling worker thread ready to create files: its own umask of 0.
fn prepare_thread() {
    THREAD_READY.with(|ready| {
        if !ready.get() {
            // Failing leaves the process umask in force: modes come out stricter, never looser.
            let _ = sys::private_zero_umask();
            ready.set(true);
        }
    });
}

/// Acts as the calling user for the lifetime of the guard (multi-user mounts only),
/// so that created files belong to the caller.
struct AsCaller {
    active: bool,
}

impl AsCaller {
    fn new(fs: &DisorderFs, req: &Request) -> AsCaller {
        prepare_thread();
        if !fs.settings.multi_user {
            return AsCaller { active: false };
        }
        sys::set_thread_creds(req.uid(), req.gid(), &[]);
        AsCaller { active: true }
    }
}

impl Drop for AsCaller {
    fn drop(&mut self) {
        if self.active {
            // SAFETY: geteuid/getegid cannot fail.
            let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
            sys::set_thread_creds(uid, gid, &[]);
        }
    }
}

impl DisorderFs {
    pub(crate) fn new(
        root_fd: OwnedFd,
        settings: Settings,
        prefetch: Arc<Prefetch>,
        counters: Arc<Counters>,
    ) -> io::Result<DisorderFs> {
        let st = sys::fstat(root_fd.as_fd())?;
        Ok(DisorderFs {
            table: Table::new(root_fd, (st.st_dev, st.st_ino)),
            passthrough: AtomicBool::new(false),
            writeback: false,
            read_fds: ReadFds::default(),
            prefetch,
            counters,
            settings,
            dirs: Mutex::new(HashMap::new()),
            next_dir: AtomicU64::new(1),
        })
    }

    fn inode(&self, ino: INodeNo) -> Result<Arc<Inode>, Errno> {
        self.table.get(ino.0).ok_or(Errno::ESTALE)
    }

    /// `inode` for a request that changes the node's data or privileges: any prefetch
    /// store of the node is settled first (see `prefetch`).
    fn data_inode(&self, ino: INodeNo) -> Result<Arc<Inode>, Errno> {
        self.table.settle_store(ino.0, true);
        self.inode(ino)
    }

    /// `inode` for handlers that work in `io::Result`, so that a stale node is one
    /// more error of the request and the reply is written in one place.
    fn inode_io(&self, ino: INodeNo) -> io::Result<Arc<Inode>> {
        self.inode(ino).map_err(io_of)
    }

    fn attr(&self, id: u64, st: &libc::stat) -> FileAttr {
        FileAttr {
            ino: INodeNo(id),
            size: st.st_size as u64,
            blocks: (st.st_blocks as u64).saturating_add(self.settings.pad_blocks),
            atime: system_time(st.st_atime, st.st_atime_nsec),
            mtime: system_time(st.st_mtime, st.st_mtime_nsec),
            ctime: system_time(st.st_ctime, st.st_ctime_nsec),
            crtime: UNIX_EPOCH,
            kind: kind_of_mode(st.st_mode),
            perm: (st.st_mode & 0o7777) as u16,
            nlink: st.st_nlink as u32,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev as u32,
            blksize: st.st_blksize as u32,
            flags: 0,
        }
    }

    /// The attributes the kernel shows for node `id`: the root keeps its real inode
    /// number, since its node id is fixed at 1.
    fn attr_of_node(&self, id: u64, st: &libc::stat) -> FileAttr {
        let shown = if id == ROOT_ID { st.st_ino } else { id };
        self.attr(shown, st)
    }

    /// Looks `name` up in `parent` and takes one kernel reference on the result.
    /// `listed` is the entry's type when a listing found it: a small file the kernel
    /// did not know then gets a pending prefetch store.
    fn do_lookup(
        &self,
        parent: &Inode,
        name: &OsStr,
        listed: Option<FileType>,
    ) -> io::Result<Found> {
        let cname = sys::component(name)?;
        // Most lookups are of nodes the kernel knows already (revalidations, listings
        // seen before): a stat finds those, and no descriptor is opened.
        let st = sys::stat_at(parent.fd(), &cname)?;
        let key = (st.st_dev, st.st_ino);
        if let Some(known) = self
            .table
            .remember_known(key, self.dir_path(parent, name, &st))
        {
            return Ok(self.found(known, &st));
        }
        // A file the listing says is regular is opened for reading at once (its reads
        // then need no re-open); anything else, or a file we may not read, by path only.
        let read_fd = (listed == Some(FileType::RegularFile))
            .then(|| sys::open_read(parent.fd(), &cname).ok())
            .flatten();
        let readable = read_fd.is_some();
        let fd = match read_fd {
            Some(fd) => fd,
            None => sys::open_path(parent.fd(), &cname)?,
        };
        // What was opened may not be what was stat'ed, if the name changed meanwhile.
        let st = sys::fstat(fd.as_fd())?;
        let size = st.st_size as u64;
        let prefetch = (listed.is_some()
            && st.st_mode & libc::S_IFMT == libc::S_IFREG
            && self.prefetch.wants(size))
        .then_some(size);
        let remembered = self.table.remember(
            (fd, readable),
            (st.st_dev, st.st_ino),
            self.dir_path(parent, name, &st),
            prefetch,
        );
        Ok(self.found(remembered, &st))
    }

    /// A directory's path relative to the root (what keys its shuffle); None for
    /// anything else.
    fn dir_path(&self, parent: &Inode, name: &OsStr, st: &libc::stat) -> Option<Vec<u8>> {
        (st.st_mode & libc::S_IFMT == libc::S_IFDIR).then(|| {
            let parent_path = parent.dir_path.lock().expect("dir path poisoned");
            let mut path = parent_path.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name.as_bytes());
            path
        })
    }

    fn found(&self, remembered: Remembered, st: &libc::stat) -> Found {
        Found {
            id: remembered.id,
            attr: self.attr(remembered.id, st),
            store_pending: remembered.store_pending,
        }
    }

    /// Looks `name` up for a LOOKUP-style reply: a pending prefetch store of the node
    /// is made (or waited for) before the entry is handed out with its full timeout.
    fn lookup_entry(&self, parent: &Inode, name: &OsStr) -> io::Result<FileAttr> {
        let found = self.do_lookup(parent, name, None)?;
        if let StoreTurn::Store(inode, size) = self.table.store_turn(found.id) {
            if self.prefetch.store(found.id, &inode, size) {
                self.counters.stored();
            }
            self.table.stored(found.id);
        }
        Ok(found.attr)
    }

    fn reply_lookup(&self, parent: &Inode, name: &OsStr, reply: ReplyEntry) {
        match self.lookup_entry(parent, name) {
            Ok(attr) => reply.entry(&self.settings.ttl, &attr, Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// Answers `getattr` and `setattr`: both end with the node's fresh attributes.
    fn reply_attr(&self, ino: INodeNo, st: io::Result<libc::stat>, reply: ReplyAttr) {
        match st {
            Ok(st) => reply.attr(&self.settings.ttl, &self.attr_of_node(ino.0, &st)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// Creates the entry `name` in `parent` with `make(parent, name)` and answers with
    /// a lookup of it, which takes the kernel's reference: what `mknod`, `mkdir` and
    /// `symlink` share. It runs as the caller so that the entry belongs to them.
    fn make_entry(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        reply: ReplyEntry,
        make: impl FnOnce(BorrowedFd<'_>, &CStr) -> io::Result<()>,
    ) {
        let parent = match self.inode(parent) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let made = {
            let _caller = AsCaller::new(self, req);
            sys::component(name).and_then(|n| make(parent.fd(), &n))
        };
        match made {
            Ok(()) => self.reply_lookup(&parent, name, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// Removes `name` from `parent` (`unlink` and `rmdir`, told apart by `flags`).
    fn remove(&self, parent: INodeNo, name: &OsStr, flags: i32) -> io::Result<()> {
        let parent = self.inode_io(parent)?;
        sys::unlinkat(parent.fd(), &sys::component(name)?, flags)
    }

    /// Opens an ordered listing of `dir`.
    fn list(&self, dir: Arc<Inode>) -> io::Result<Listing> {
        let raw = sys::read_dir(dir.fd())?;
        let (mut dots, mut rest): (Vec<_>, Vec<_>) = raw
            .into_iter()
            .partition(|e| e.name == b"." || e.name == b"..");
        dots.sort_by(|a, b| a.name.cmp(&b.name));
        {
            let path = dir.dir_path.lock().expect("dir path poisoned");
            order_entries(&mut rest, |e| &e.name, self.settings.order, &path);
        }
        let mut entries = Vec::with_capacity(dots.len() + rest.len());
        for e in dots.into_iter().chain(rest) {
            let kind = match kind_of_dtype(e.d_type) {
                Some(kind) => kind,
                // Some filesystems do not fill d_type; ask the inode itself.
                None => {
                    let Ok(cname) = CString::new(e.name.clone()) else {
                        continue;
                    };
                    match sys::open_path(dir.fd(), &cname).and_then(|fd| sys::fstat(fd.as_fd())) {
                        Ok(st) => kind_of_mode(st.st_mode),
                        Err(_) => continue,
                    }
                }
            };
            entries.push(Dirent {
                name: OsString::from_vec(e.name),
                ino: e.ino,
                kind,
            });
        }
        Ok(Listing { dir, entries })
    }

    fn listing(&self, fh: FileHandle) -> Result<Arc<Listing>, Errno> {
        let dirs = self.dirs.lock().expect("dir handles poisoned");
        dirs.get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    /// Turns a freshly opened descriptor into a file handle, with a passthrough
    /// backing file when the kernel allows it. Returns the handle and open flags.
    fn handle_for(
        &self,
        inode: &Inode,
        fd: OwnedFd,
        flags: i32,
        open_backing: impl FnOnce(BorrowedFd<'_>) -> io::Result<fuser::BackingId>,
    ) -> (FileHandle, FopenFlags, Option<Arc<fuser::BackingId>>) {
        let read_only = flags & libc::O_ACCMODE == libc::O_RDONLY;
        let mut fopen = FopenFlags::FOPEN_KEEP_CACHE;
        if read_only {
            fopen |= FopenFlags::FOPEN_NOFLUSH;
        }
        if self.passthrough.load(Ordering::Relaxed) {
            let mut backing = inode.backing.lock().expect("backing poisoned");
            let shared = match backing.as_mut() {
                Some((id, users)) => {
                    *users += 1;
                    Some(Arc::clone(id))
                }
                None => match open_backing(fd.as_fd()) {
                    Ok(id) => {
                        let id = Arc::new(id);
                        *backing = Some((Arc::clone(&id), 1));
                        Some(id)
                    }
                    Err(_) => {
                        // Not permitted here after all: stop trying, serve reads ourselves.
                        self.passthrough.store(false, Ordering::Relaxed);
                        None
                    }
                },
            };
            if let Some(id) = shared {
                let fh = fd.into_raw_fd() as u64 | PASSTHROUGH_BIT;
                return (
                    FileHandle(fh),
                    fopen & !FopenFlags::FOPEN_KEEP_CACHE,
                    Some(id),
                );
            }
        }
        (FileHandle(fd.into_raw_fd() as u64), fopen, None)
    }

    /// The descriptor to do I/O with: the handle's own, or in no-open mode (where the
    /// kernel sends handle 0) a descriptor of the inode: for reading, one of the few
    /// kept open (see `fdcache`); for writing, one opened for this request only (with
    /// the writeback cache, writes come in large batches). Either way the daemon stays
    /// near one descriptor per cached inode, however many files a build reads.
    fn io_fd(&self, ino: INodeNo, fh: FileHandle, write: bool) -> Result<IoFd, Errno> {
        self.table.settle_store(ino.0, write);
        if !self.settings.no_open {
            return Ok(IoFd::Handle(fd_of(fh)));
        }
        let inode = self.inode(ino)?;
        let opened = if write {
            sys::reopen(inode.fd(), libc::O_RDWR)
                .or_else(|_| sys::reopen(inode.fd(), libc::O_WRONLY))
                .map(IoFd::Owned)
        } else if inode.read_fd().is_some() {
            Ok(IoFd::Inode(inode))
        } else {
            self.read_fds.get(&inode).map(IoFd::Kept)
        };
        opened.map_err(|e| errno(&e))
    }

    /// Opens a file for a handle with `open(flags)`. With the writeback cache the
    /// kernel chooses every write's offset itself (appends included) and may read to
    /// fill a page of a file opened write-only, so the descriptor is opened without
    /// `O_APPEND` and for reading too where permitted.
    fn open_for_handle(
        &self,
        flags: i32,
        open: impl Fn(i32) -> io::Result<OwnedFd>,
    ) -> io::Result<OwnedFd> {
        if !self.writeback {
            return open(flags);
        }
        let flags = flags & !libc::O_APPEND;
        if flags & libc::O_ACCMODE == libc::O_WRONLY {
            let rdwr = (flags & !libc::O_ACCMODE) | libc::O_RDWR;
            if let Ok(fd) = open(rdwr) {
                return Ok(fd);
            }
        }
        open(flags)
    }

    fn release_backing(&self, inode: &Inode) {
        let mut backing = inode.backing.lock().expect("backing poisoned");
        if let Some((_, users)) = backing.as_mut() {
            *users -= 1;
            if *users == 0 {
                *backing = None;
            }
        }
    }
}

fn timespec(t: Option<TimeOrNow>) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => libc::timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: i64::from(d.subsec_nanos()),
            },
            Err(e) => {
                let d = e.duration();
                let (sec, nsec) = if d.subsec_nanos() == 0 {
                    (-(d.as_secs() as i64), 0)
                } else {
                    (
                        -(d.as_secs() as i64) - 1,
                        1_000_000_000 - i64::from(d.subsec_nanos()),
                    )
                };
                libc::timespec {
                    tv_sec: sec,
                    tv_nsec: nsec,
                }
            }
        },
    }
}

impl Filesystem for DisorderFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        for wanted in [
            // Always READDIRPLUS (not adaptive): a listing is nearly always followed by
            // a lookup of each entry (`tar`, `find`, `make`), and the adaptive mode
            // sends all but a listing's first page without attributes.
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_AUTO_INVAL_DATA,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_ASYNC_DIO,
        ] {
            // A capability the kernel lacks only costs speed.
            let _ = config.add_capabilities(wanted);
        }
        if self.settings.passthrough
            && config.set_max_stack_depth(1).is_ok()
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
        {
            self.passthrough.store(true, Ordering::Relaxed);
        }
        // Passthrough files bypass the page cache this would fill.
        self.writeback = self.settings.writeback
            && !self.passthrough.load(Ordering::Relaxed)
            && config
                .add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE)
                .is_ok();
        // Writes of up to 1 MiB per request (the kernel's default cap on request pages).
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_background(64);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let parent = match self.inode(parent) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        match self.lookup_entry(&parent, name) {
            Ok(attr) => reply.entry(&self.settings.ttl, &attr, Generation(0)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                // A negative entry: the kernel remembers the miss for the TTL, which
                // spares compilers' include-path probes a round trip each.
                let mut attr = self.attr(0, &zero_stat());
                attr.ino = INodeNo(0);
                reply.entry(&self.settings.ttl, &attr, Generation(0));
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.table.forget(ino.0, nlookup);
        self.read_fds.prune();
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let st = self.inode_io(ino).and_then(|inode| sys::fstat(inode.fd()));
        self.reply_attr(ino, st, reply);
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let inode = match self.data_inode(ino) {
            Ok(i) => i,
            Err(e) => return reply.error(e),
        };
        let _caller = AsCaller::new(self, req);
        let fh = fh.filter(|_| !self.settings.no_open);
        // No write may restore an older mtime over this one (see `write`).
        let _mtime_guard = (self.writeback && mtime.is_some())
            .then(|| inode.mtime_lock.lock().expect("mtime lock poisoned"));
        let result = (|| -> io::Result<()> {
            if let Some(mode) = mode {
                match fh {
                    Some(fh) => sys::fchmod(fd_of(fh), mode & 0o7777)?,
                    None => sys::chmod_path(inode.fd(), mode & 0o7777)?,
                }
            }
            if uid.is_some() || gid.is_some() {
                sys::fchownat(inode.fd(), uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX))?;
            }
            if let Some(size) = size {
                match fh {
                    Some(fh) => sys::ftruncate(fd_of(fh), size)?,
                    None => sys::truncate_path(inode.fd(), size)?,
                }
            }
            if atime.is_some() || mtime.is_some() {
                sys::utimens(inode.fd(), &[timespec(atime), timespec(mtime)])?;
            }
            Ok(())
        })();
        self.reply_attr(ino, result.and_then(|()| sys::fstat(inode.fd())), reply);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.inode_io(ino).and_then(|i| sys::readlink(i.fd())) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.make_entry(req, parent, name, reply, |dir, n| {
            sys::mknodat(dir, n, mode, u64::from(rdev))
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.make_entry(req, parent, name, reply, |dir, n| {
            sys::mkdirat(dir, n, mode)
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.remove(parent, name, 0));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.remove(parent, name, libc::AT_REMOVEDIR));
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.make_entry(req, parent, link_name, reply, |dir, n| {
            sys::symlinkat(&c_name(target.as_os_str())?, dir, n)
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let renamed = (|| {
            let (parent, newparent) = (self.inode_io(parent)?, self.inode_io(newparent)?);
            let (old, new) = (sys::component(name)?, sys::component(newname)?);
            sys::renameat2(parent.fd(), &old, newparent.fd(), &new, flags.bits())
        })();
        reply_empty(reply, renamed);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let (inode, newparent) = match (self.inode(ino), self.inode(newparent)) {
            (Ok(i), Ok(n)) => (i, n),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        match sys::component(newname).and_then(|n| sys::link(inode.fd(), newparent.fd(), &n)) {
            Ok(()) => self.reply_lookup(&newparent, newname, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if self.settings.no_open {
            // Tells the kernel to stop sending opens and releases at all: files then
            // cost no round trip to open or close, and stay in the page cache.
            return reply.error(Errno::ENOSYS);
        }
        let inode = match self.data_inode(ino) {
            Ok(i) => i,
            Err(e) => return reply.error(e),
        };
        let opened = {
            let _caller = AsCaller::new(self, req);
            self.open_for_handle(flags.0, |flags| sys::reopen(inode.fd(), flags))
        };
        let fd = match opened {
            Ok(fd) => fd,
            Err(e) => return reply.error(errno(&e)),
        };
        let (fh, fopen, backing) =
            self.handle_for(&inode, fd, flags.0, |fd| reply.open_backing(fd));
        match backing {
            Some(id) => reply.opened_passthrough(fh, fopen, &id),
            None => reply.opened(fh, fopen),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.counters.read();
        let fd = match self.io_fd(ino, fh, false) {
            Ok(fd) => fd,
            Err(e) => return reply.error(e),
        };
        READ_BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            if buf.len() < size as usize {
                buf.resize(size as usize, 0);
            }
            match sys::pread(fd.raw(), &mut buf[..size as usize], offset) {
                Ok(n) => reply.data(&buf[..n]),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let fd = match self.io_fd(ino, fh, true) {
            Ok(fd) => fd,
            Err(e) => return reply.error(e),
        };
        if !self.writeback {
            return match sys::pwrite(fd.raw(), data, offset) {
                Ok(n) => reply.written(n as u32),
                Err(e) => reply.error(errno(&e)),
            };
        }
        // With the writeback cache the kernel owns the mtime: it sends it in a SETATTR
        // when it changed it (which can overtake writes of older data still in flight)
        // and not at all when a write fell in the same clock tick. Writes of cached
        // data therefore leave the root's mtime as it was, so it stays the mount's.
        let inode = match self.inode(ino) {
            Ok(i) => i,
            Err(e) => return reply.error(e),
        };
        let guard = inode.mtime_lock.lock().expect("mtime lock poisoned");
        let written = sys::fstat(inode.fd()).and_then(|before| {
            let n = sys::pwrite(fd.raw(), data, offset)?;
            let mtime = libc::timespec {
                tv_sec: before.st_mtime,
                tv_nsec: before.st_mtime_nsec,
            };
            sys::utimens(inode.fd(), &[timespec(None), mtime])?;
            Ok(n)
        });
        drop(guard);
        match written {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        if self.settings.no_open {
            // Writes are synchronous here, and the kernel writes a file's cached data
            // back before it would flush, so a close has nothing to report: ENOSYS
            // tells the kernel to stop sending flushes.
            return reply.error(Errno::ENOSYS);
        }
        // Closing a duplicate reports what closing the file would (write-back errors
        // on filesystems that delay them) without giving up the handle.
        // SAFETY: `dup` of a descriptor this handle owns; the copy is closed at once.
        let dup = unsafe { libc::dup(fd_of(fh)) };
        if dup < 0 {
            return reply.error(errno(&io::Error::last_os_error()));
        }
        // SAFETY: `dup` is a descriptor created just above and owned by nobody else.
        match unsafe { libc::close(dup) } {
            0 => reply.ok(),
            _ => reply.error(errno(&io::Error::last_os_error())),
        }
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if self.settings.no_open {
            // Only created files get here, with handle 0: their descriptor is the inode's.
            return reply.ok();
        }
        sys::close(fd_of(fh));
        if fh.0 & PASSTHROUGH_BIT != 0 {
            if let Ok(inode) = self.inode(ino) {
                self.release_backing(&inode);
            }
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let fd = self.io_fd(ino, fh, false).map_err(io_of);
        reply_empty(reply, fd.and_then(|fd| sys::fsync(fd.raw(), datasync)));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.inode_io(ino).and_then(|inode| self.list(inode)) {
            Ok(listing) => {
                let fh = self.next_dir.fetch_add(1, Ordering::Relaxed);
                self.dirs
                    .lock()
                    .expect("dir handles poisoned")
                    .insert(fh, Arc::new(listing));
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listing = match self.listing(fh) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        for (i, e) in listing.entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(e.ino), i as u64 + 1, e.kind, &e.name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let listing = match self.listing(fh) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let ttl = self.settings.ttl;
        for (i, e) in listing.entries.iter().enumerate().skip(offset as usize) {
            let next = i as u64 + 1;
            if e.name == "." || e.name == ".." {
                // The kernel takes no reference for these; they only carry a d_ino.
                let mut attr = self.attr(e.ino, &zero_stat());
                attr.kind = FileType::Directory;
                if reply.add(INodeNo(e.ino), next, &e.name, &ttl, &attr, Generation(0)) {
                    break;
                }
                continue;
            }
            let Ok(found) = self.do_lookup(&listing.dir, &e.name, Some(e.kind)) else {
                // Removed since opendir: leave it out, as a fresh listing would.
                continue;
            };
            // An entry whose store is to come must be revalidated before use.
            let ttl = if found.store_pending {
                Duration::ZERO
            } else {
                ttl
            };
            let id = found.id;
            if reply.add(INodeNo(id), next, &e.name, &ttl, &found.attr, Generation(0)) {
                self.table.forget(id, 1);
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs
            .lock()
            .expect("dir handles poisoned")
            .remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let synced = self.listing(fh).map_err(io_of).and_then(|listing| {
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
            let fd = sys::openat(listing.dir.fd(), c".", flags, 0)?;
            sys::fsync(fd.as_raw_fd(), datasync)
        });
        reply_empty(reply, synced);
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        match self.inode_io(ino).and_then(|i| sys::fstatvfs(i.fd())) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let set = self.data_inode(ino).map_err(io_of).and_then(|inode| {
            let name = c_name(name)?;
            sys::setxattr(inode.fd(), &name, value, flags)
        });
        reply_empty(reply, set);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let result = self.data_inode(ino).map_err(io_of).and_then(|inode| {
            let name = c_name(name)?;
            let mut buf = vec![0u8; size as usize];
            let n = sys::getxattr(inode.fd(), &name, &mut buf)?;
            buf.truncate(n);
            Ok((n, buf))
        });
        reply_xattr(result, size, reply);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let result = self.inode_io(ino).and_then(|inode| {
            let mut buf = vec![0u8; size as usize];
            let n = sys::listxattr(inode.fd(), &mut buf)?;
            buf.truncate(n);
            Ok((n, buf))
        });
        reply_xattr(result, size, reply);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let removed = self.data_inode(ino).map_err(io_of).and_then(|inode| {
            let name = c_name(name)?;
            sys::removexattr(inode.fd(), &name)
        });
        reply_empty(reply, removed);
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let allowed = self.inode_io(ino).and_then(|inode| {
            let _caller = AsCaller::new(self, req);
            sys::faccessat(inode.fd(), mask.bits())
        });
        reply_empty(reply, allowed);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let parent = match self.inode(parent) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        // Opening an existing file may truncate it: a store of it in progress (through
        // another name) must land first, as an earlier READ would have.
        if self.table.stores_pending() {
            let existing = sys::component(name).and_then(|n| sys::stat_at(parent.fd(), &n));
            if let Some(id) = existing
                .ok()
                .and_then(|st| self.table.id_of((st.st_dev, st.st_ino)))
            {
                self.table.settle_store(id, true);
            }
        }
        let created = {
            let _caller = AsCaller::new(self, req);
            sys::component(name).and_then(|n| {
                let flags = (flags | libc::O_CREAT | libc::O_CLOEXEC) & !libc::O_NOFOLLOW;
                self.open_for_handle(flags, |flags| sys::openat(parent.fd(), &n, flags, mode))
            })
        };
        let fd = match created {
            Ok(fd) => fd,
            Err(e) => return reply.error(errno(&e)),
        };
        let Found { id, attr, .. } = match self.do_lookup(&parent, name, None) {
            Ok(found) => found,
            Err(e) => return reply.error(errno(&e)),
        };
        // The file is open now: a store still pending must never be made.
        self.table.settle_store(id, true);
        let Some(inode) = self.table.get(id) else {
            return reply.error(Errno::ESTALE);
        };
        let ttl = self.settings.ttl;
        if self.settings.no_open {
            // I/O uses descriptors of the inode (see `io_fd`); this descriptor's
            // flags (O_APPEND, say) must not be reused for other writers anyway.
            drop(fd);
            return reply.created(
                &ttl,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE,
            );
        }
        let (fh, fopen, backing) = self.handle_for(&inode, fd, flags, |fd| reply.open_backing(fd));
        match backing {
            Some(b) => reply.created_passthrough(&ttl, &attr, Generation(0), fh, fopen, &b),
            None => reply.created(&ttl, &attr, Generation(0), fh, fopen),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let fd = self.io_fd(ino, fh, true).map_err(io_of);
        reply_empty(
            reply,
            fd.and_then(|fd| sys::fallocate(fd.raw(), mode, offset, length)),
        );
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let fd = self.io_fd(ino, fh, false).map_err(io_of);
        match fd.and_then(|fd| sys::lseek(fd.raw(), offset, whence)) {
            Ok(pos) => reply.offset(pos),
            Err(e) => reply.error(errno(&e)),
        }
    }
}

fn io_of(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.code())
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Answers a request that has nothing to return but success or an errno.
fn reply_empty(reply: ReplyEmpty, result: io::Result<()>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

fn reply_xattr(result: io::Result<(usize, Vec<u8>)>, size: u32, reply: ReplyXattr) {
    match result {
        Ok((n, _)) if size == 0 => reply.size(n as u32),
        Ok((_, data)) => reply.data(&data),
        Err(e) => reply.error(errno(&e)),
    }
}

fn zero_stat() -> libc::stat {
    // SAFETY: `struct stat` is plain old data for which all-zero bytes are valid.
    unsafe { std::mem::zeroed() }
}
