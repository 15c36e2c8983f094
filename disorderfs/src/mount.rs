//! Setting a mount up and taking it down.
//!
//! `mount` checks its inputs first (so every user mistake gets its own error), then
//! lets `fuser` mount: a direct mount(2) of `/dev/fuse`, which works as root and as
//! root of a user namespace (kernel >= 4.18), falling back to the setuid
//! `fusermount3` helper when the kernel says EPERM (an unprivileged standalone user).
//! The kernel's INIT handshake is done before `mount` returns, so the mount is live.
//! Requests are then served by background threads of the calling process.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fuser::{BackgroundSession, Config, MountOption, Session, SessionACL};

use crate::error::Error;
use crate::fs::{DisorderFs, Settings};
use crate::order::Order;
use crate::prefetch::Prefetch;
use crate::stats::{Counters, Stats};

/// How a mount behaves. `Options::default()` is a seed-0 shuffle with the caching
/// documented in the crate docs.
#[derive(Debug, Clone)]
pub struct Options {
    /// How directory entries are ordered.
    pub order: Order,
    /// Added to every file's `st_blocks` (Debian's `--pad-blocks`).
    pub pad_blocks: u64,
    /// Let every user use the mount (`allow_other`), and create files as the calling
    /// user rather than as the mounting one. Needs root, or `user_allow_other` in
    /// /etc/fuse.conf for an unprivileged `fusermount3` mount.
    pub multi_user: bool,
    /// How long the kernel may cache names, attributes and misses.
    pub cache_ttl: Duration,
    /// Use kernel FUSE passthrough for open files where the kernel allows it (root in
    /// the initial user namespace): reads, writes and mmap then bypass the daemon.
    /// Elsewhere this is ignored.
    pub passthrough: bool,
    /// Where passthrough is not in use, answer the kernel's first `open` with ENOSYS,
    /// so that it opens and closes files without asking us at all (and keeps their
    /// pages cached): the fastest mode inside a user namespace. The daemon then does
    /// I/O on descriptors of its own, so files opened with O_SYNC or O_DIRECT get
    /// ordinary I/O underneath. Ignored when passthrough is used, which needs an open per file.
    pub no_open: bool,
    /// Where passthrough is not in use, let the kernel cache writes (FUSE writeback
    /// cache): `write` fills the page cache and the daemon gets the data in large
    /// batches, at the latest when the file is closed or synced. The kernel then owns
    /// the size and mtime of every file it has cached, so a change made to the root
    /// behind the mount's back to a file the kernel has cached is not seen until the
    /// kernel drops that file; a build that works only through the mount is
    /// unaffected.
    pub writeback_cache: bool,
    /// Where passthrough is not in use, regular files of up to this many bytes that a
    /// listing shows the kernel are stored in its cache by their first lookup, so
    /// reading them costs no READ round trip; a listed file that is only stat'ed pays
    /// that lookup instead (see the crate docs). 0 turns it off.
    pub prefetch_max: u64,
    /// Worker threads serving requests (at least 1). Three, not two, on a 2-core
    /// machine: with a request always in flight, `tar` over 10,000 files took 0.31-0.35 s
    /// with three against 0.36-0.42 s with two and 0.35-0.42 s with four, measured
    /// alternately; `make -j2` did not change.
    pub threads: usize,
    /// Allow mounting over a directory that has entries (they are hidden meanwhile).
    pub allow_nonempty: bool,
    /// Extra mount options, as for `-o` (`ro`, `noexec`, `allow_other`, ...).
    pub mount_options: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            order: Order::default(),
            pad_blocks: 0,
            multi_user: false,
            cache_ttl: Duration::from_secs(60),
            passthrough: true,
            no_open: true,
            writeback_cache: true,
            prefetch_max: 64 * 1024,
            threads: 3,
            allow_nonempty: false,
            mount_options: Vec::new(),
        }
    }
}

/// A live mount. Dropping it unmounts (best effort); `unmount` reports failures.
#[derive(Debug)]
pub struct Mount {
    session: Option<BackgroundSession>,
    /// The mount point as canonical path, resolved before mounting: looking it up later
    /// would ask the daemon.
    canonical: PathBuf,
    /// The kernel's unique id of our mount (never reused, unlike device numbers and
    /// mountinfo's ids): tells ours from whatever is mounted at the mount point by the
    /// time we unmount. None where the kernel does not give it (before 6.8).
    mount_id: Option<u64>,
    counters: Arc<Counters>,
    mountpoint: PathBuf,
    passthrough: bool,
}

impl Mount {
    /// The directory the mount is on.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// What the mount has served so far.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// Whether open files use kernel passthrough (decided at mount time).
    pub fn passthrough(&self) -> bool {
        self.passthrough
    }

    /// Whether the mount is still being served (false once it was unmounted from outside,
    /// e.g. with `fusermount3 -u`).
    pub fn is_serving(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| !s.guard.is_finished())
    }

    /// Unmounts and waits for the serving threads to finish.
    ///
    /// When something still uses the mount (a process with its cwd inside, say), the
    /// mount is detached lazily instead: it disappears from the tree at once and the
    /// filesystem goes away when its last user lets go. A mount already unmounted from
    /// outside is left as it is, and so is whatever was mounted on the directory since;
    /// a mount that something else was mounted over is reported ([`Error::Covered`]),
    /// not forced.
    pub fn unmount(mut self) -> Result<(), Error> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> Result<(), Error> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        // Where our id is unknown, the mount point is trusted, as before mounting.
        let ours_at_mountpoint = match self.mount_id {
            Some(id) => unique_mount_id(&self.canonical) == Some(id),
            None => true,
        };
        if !ours_at_mountpoint {
            return self.let_go(session);
        }
        match session.umount_and_join() {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => lazy_unmount(&self.mountpoint),
            Err(e) if !is_mounted(&self.canonical) => {
                // The threads failed but the mount is gone, which is what was asked.
                let _ = e;
                Ok(())
            }
            Err(source) => Err(Error::Unmount {
                mountpoint: self.mountpoint.clone(),
                source,
            }),
        }
    }

    /// What unmounting does when the mount point no longer shows our mount: it was
    /// unmounted from outside (`fusermount3 -u`), or something was mounted over it.
    /// fuser would unmount by path (its check that its own mount is still there passes
    /// for a dead connection too), taking down whatever is mounted there now, even a new
    /// disorderfs on the same directory. So fuser's handle is let go without unmounting
    /// (its `/dev/fuse` descriptor stays open, unused, until the process exits), and a
    /// mount of ours that is still there, under another, is reported, not forced.
    fn let_go(&self, session: BackgroundSession) -> Result<(), Error> {
        // Unmounted from outside, the serving threads see the connection end at once;
        // still serving after a while, the mount is there, under another.
        let start = std::time::Instant::now();
        while !session.guard.is_finished() && start.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let covered = !session.guard.is_finished();
        std::mem::forget(session);
        if covered {
            return Err(Error::Covered {
                mountpoint: self.mountpoint.clone(),
            });
        }
        Ok(())
    }
}

/// The unique id of the mount `path` is on, from `statx` without asking the filesystem
/// anything (no attribute is requested, and none is synced).
fn unique_mount_id(path: &Path) -> Option<u64> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stx = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `c` is a valid NUL-terminated path and `stx` has room for a `struct statx`.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_DONT_SYNC,
            libc::STATX_MNT_ID_UNIQUE,
            stx.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: `statx` succeeded, so it filled the struct (zeroed beforehand anyway).
    let stx = unsafe { stx.assume_init() };
    (stx.stx_mask & libc::STATX_MNT_ID_UNIQUE != 0).then_some(stx.stx_mnt_id)
}

/// A path as mountinfo writes it (space, tab, newline and backslash octal-escaped).
fn mountinfo_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = self.unmount_inner();
    }
}

/// Detaches the mount now; the filesystem lives on until its last user is gone.
fn lazy_unmount(mountpoint: &Path) -> Result<(), Error> {
    let c = CString::new(mountpoint.as_os_str().as_bytes()).map_err(|e| Error::Unmount {
        mountpoint: mountpoint.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    let status = std::process::Command::new("fusermount3")
        .args(["-u", "-z", "-q", "--"])
        .arg(mountpoint)
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        _ => Err(Error::Unmount {
            mountpoint: mountpoint.to_path_buf(),
            source: io::Error::from_raw_os_error(libc::EBUSY),
        }),
    }
}

/// Whether the canonical path `path` is currently a mount point (per mountinfo, so
/// nothing asks a daemon that may be gone).
fn is_mounted(path: &Path) -> bool {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = mountinfo_path(path);
    mountinfo
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(wanted.as_str()))
}

/// Mounts disorderfs: `root` mirrored at `mountpoint`, ordered as `opts.order` says.
///
/// Returns once the mount is live. Also raises this process's soft limit on open
/// files to its hard limit, since every file the kernel has cached holds a
/// descriptor (children started afterwards inherit the raised limit).
pub fn mount(root: &Path, mountpoint: &Path, opts: &Options) -> Result<Mount, Error> {
    let root_fd = open_root(root)?;
    check_mountpoint(root, mountpoint, opts)?;
    let canonical = mountpoint
        .canonicalize()
        .unwrap_or_else(|_| mountpoint.to_path_buf());
    check_dev_fuse()?;
    raise_nofile_limit();
    grow_fd_table(root_fd.as_fd());

    // Passthrough, where permitted, beats no-open for anything but tiny files; where
    // it is not (a user namespace), no-open is the fastest mode.
    let passthrough = opts.passthrough && passthrough_permitted();
    let no_open = opts.no_open && !passthrough;
    let settings = Settings {
        order: opts.order,
        pad_blocks: opts.pad_blocks,
        multi_user: opts.multi_user,
        ttl: opts.cache_ttl,
        passthrough,
        no_open,
        writeback: opts.writeback_cache && !passthrough,
    };
    // Passthrough files are read from the root directly, not from the cache a store fills.
    let prefetch = Arc::new(Prefetch::new(if passthrough {
        0
    } else {
        opts.prefetch_max
    }));
    let counters = Arc::new(Counters::default());
    let fs = DisorderFs::new(
        root_fd,
        settings,
        Arc::clone(&prefetch),
        Arc::clone(&counters),
    )
    .map_err(|source| Error::Io {
        what: format!("reading the attributes of {}", root.display()),
        source,
    })?;
    let config = fuser_config(opts);
    let session = Session::new(fs, mountpoint, &config).map_err(|source| Error::Mount {
        mountpoint: mountpoint.to_path_buf(),
        source,
    })?;
    prefetch.connect(session.notifier());
    let session = session.spawn().map_err(|source| Error::Io {
        what: "starting the threads that serve the mount".into(),
        source,
    })?;
    let mount_id = unique_mount_id(&canonical);
    Ok(Mount {
        session: Some(session),
        canonical,
        mount_id,
        counters,
        mountpoint: mountpoint.to_path_buf(),
        passthrough,
    })
}

fn open_root(root: &Path) -> Result<OwnedFd, Error> {
    let missing = || Error::RootMissing {
        path: root.to_path_buf(),
    };
    let c = CString::new(root.as_os_str().as_bytes()).map_err(|_| missing())?;
    // SAFETY: `c` is a valid NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(missing());
    }
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    debug_assert!(fd.as_raw_fd() >= 0);
    Ok(fd)
}

fn check_mountpoint(root: &Path, mountpoint: &Path, opts: &Options) -> Result<(), Error> {
    let missing = || Error::MountpointMissing {
        path: mountpoint.to_path_buf(),
    };
    if !mountpoint.is_dir() {
        return Err(missing());
    }
    if let (Ok(r), Ok(m)) = (root.canonicalize(), mountpoint.canonicalize()) {
        // A mount point inside the root would make the filesystem look at itself.
        if m.starts_with(&r) {
            return Err(Error::Overlap {
                root: root.to_path_buf(),
                mountpoint: mountpoint.to_path_buf(),
            });
        }
    }
    let allow_nonempty = opts.allow_nonempty || opts.mount_options.iter().any(|o| o == "nonempty");
    if !allow_nonempty {
        let mut entries = fs::read_dir(mountpoint).map_err(|_| missing())?;
        if entries.next().is_some() {
            return Err(Error::MountpointNotEmpty {
                path: mountpoint.to_path_buf(),
            });
        }
    }
    Ok(())
}

fn check_dev_fuse() -> Result<(), Error> {
    match fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NoFuseDevice),
        // fusermount3 is setuid root and opens the device itself.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && fusermount3_present() => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(Error::FuseDeviceDenied),
        Err(source) => Err(Error::Io {
            what: "opening /dev/fuse".into(),
            source,
        }),
    }
}

fn fusermount3_present() -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("fusermount3").is_file())
    })
}

/// Passthrough needs CAP_SYS_ADMIN in the initial user namespace.
fn passthrough_permitted() -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let initial_ns = fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| {
        let fields: Vec<&str> = map.split_whitespace().collect();
        fields == ["0", "0", "4294967295"]
    });
    root && initial_ns
}

fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to fill and then to read.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// How many descriptors the table is grown to up front (bounded: the table costs 8
/// bytes per slot).
const FD_TABLE_SLOTS: libc::rlim_t = 1 << 16;

/// Grows this process's descriptor table now to what the serving threads will need.
///
/// Every inode the kernel caches holds a descriptor, so a large tree's first listing
/// opens thousands. The kernel grows the table by doubling it, and in a process with
/// several threads each doubling waits for an RCU grace period: 4-21 ms apiece on the
/// project machine, measured with `perf trace` as the `openat` that returned 256, 512,
/// ..., 8192. Growing it before the serving threads exist costs nothing of the kind.
fn grow_fd_table(any_fd: BorrowedFd<'_>) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    let Ok(slot) = i32::try_from(lim.rlim_cur.min(FD_TABLE_SLOTS).saturating_sub(1)) else {
        return;
    };
    if slot < 3 {
        return;
    }
    // SAFETY: duplicating a live descriptor onto a number nothing uses (fcntl picks the
    // lowest free one at or above `slot`), then closing that duplicate at once.
    unsafe {
        let fd = libc::fcntl(any_fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, slot);
        if fd >= 0 {
            libc::close(fd);
        }
    }
}

/// Translates `Options` (and `-o` strings) into fuser's mount configuration.
fn fuser_config(opts: &Options) -> Config {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("disorderfs".into()),
        MountOption::Subtype("disorderfs".into()),
        // Permission checks are the kernel's, against the attributes we report.
        MountOption::DefaultPermissions,
    ];
    config.acl = if opts.multi_user {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    for opt in opts.mount_options.iter().flat_map(|o| o.split(',')) {
        let parsed = match opt {
            "" | "nonempty" | "default_permissions" | "rw" => None,
            "allow_other" => {
                config.acl = SessionACL::All;
                None
            }
            "allow_root" => {
                if config.acl == SessionACL::Owner {
                    config.acl = SessionACL::RootAndOwner;
                }
                None
            }
            "auto_unmount" => Some(MountOption::AutoUnmount),
            "ro" => Some(MountOption::RO),
            "dev" => Some(MountOption::Dev),
            "nodev" => Some(MountOption::NoDev),
            "suid" => Some(MountOption::Suid),
            "nosuid" => Some(MountOption::NoSuid),
            "exec" => Some(MountOption::Exec),
            "noexec" => Some(MountOption::NoExec),
            "atime" => Some(MountOption::Atime),
            "noatime" => Some(MountOption::NoAtime),
            "sync" => Some(MountOption::Sync),
            "async" => Some(MountOption::Async),
            "dirsync" => Some(MountOption::DirSync),
            o if o.starts_with("fsname=") => Some(MountOption::FSName(o[7..].into())),
            o if o.starts_with("subtype=") => Some(MountOption::Subtype(o[8..].into())),
            other => Some(MountOption::CUSTOM(other.into())),
        };
        if let Some(parsed) = parsed {
            if matches!(parsed, MountOption::FSName(_)) {
                config
                    .mount_options
                    .retain(|o| !matches!(o, MountOption::FSName(_)));
            }
            config.mount_options.push(parsed);
        }
    }
    config.n_threads = Some(opts.threads.max(1));
    config.clone_fd = true;
    config
}
