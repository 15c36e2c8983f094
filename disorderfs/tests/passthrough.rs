//! The same file operations, run natively and through a mount, must give the same
//! results: each step records what it observed (contents, attributes, errno), and
//! the two records are compared line by line.

mod common;

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirEntryExt, FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use common::{Fixture, cstr, is_root};
use disorderfs::{Options, Order};

fn ret(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn outcome<T: std::fmt::Debug>(r: io::Result<T>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!("err {}", e.raw_os_error().unwrap_or(-1)),
    }
}

/// The attributes that must agree (inode numbers, blocks and ctime/atime may not).
fn attrs(p: &Path) -> String {
    match fs::symlink_metadata(p) {
        Ok(m) => {
            let t = m.file_type();
            let kind = if t.is_dir() {
                "dir"
            } else if t.is_symlink() {
                "link"
            } else if t.is_fifo() {
                "fifo"
            } else {
                "file"
            };
            format!(
                "{kind} mode={:o} size={} nlink={} uid={} gid={}",
                m.mode(),
                if t.is_dir() { 0 } else { m.size() },
                m.nlink(),
                m.uid(),
                m.gid()
            )
        }
        Err(e) => format!("err {}", e.raw_os_error().unwrap_or(-1)),
    }
}

fn listing(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Runs every operation under `d` and returns what was observed, one line per step.
fn exercise(d: &Path) -> Vec<String> {
    let mut log = Vec::new();
    let mut note = |step: &str, what: String| log.push(format!("{step}: {what}"));
    let a = d.join("a");

    // create / write / read / append / truncate
    fs::write(&a, b"hello\n").unwrap();
    note("create", attrs(&a));
    note("read", format!("{:?}", fs::read(&a).unwrap()));
    OpenOptions::new()
        .append(true)
        .open(&a)
        .unwrap()
        .write_all(b"world\n")
        .unwrap();
    note("append", format!("{:?}", fs::read_to_string(&a).unwrap()));
    File::options()
        .write(true)
        .open(&a)
        .unwrap()
        .set_len(3)
        .unwrap();
    note("ftruncate", format!("{:?}", fs::read(&a).unwrap()));
    // SAFETY: valid path, plain truncate.
    note(
        "truncate",
        outcome(ret(unsafe { libc::truncate(cstr(&a).as_ptr(), 10) })),
    );
    note("truncated", format!("{:?}", fs::read(&a).unwrap()));
    note(
        "excl",
        outcome(
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&a)
                .map(drop),
        ),
    );
    note("missing", outcome(File::open(d.join("nope")).map(drop)));
    note(
        "dir-write",
        outcome(OpenOptions::new().write(true).open(d).map(drop)),
    );

    // pread / pwrite / fsync / seek
    {
        let mut f = OpenOptions::new().read(true).write(true).open(&a).unwrap();
        f.seek(SeekFrom::Start(5)).unwrap();
        f.write_all(b"XY").unwrap();
        f.sync_all().unwrap();
        f.sync_data().unwrap();
        let mut s = String::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_string(&mut s).unwrap();
        note("pwrite", format!("{s:?}"));
    }

    // chmod / chown / utimens
    fs::set_permissions(&a, fs::Permissions::from_mode(0o640)).unwrap();
    note("chmod", attrs(&a));
    {
        let f = File::open(&a).unwrap();
        // SAFETY: fchmod on a live descriptor.
        note(
            "fchmod",
            outcome(ret(unsafe { libc::fchmod(f.as_raw_fd(), 0o604) })),
        );
        note("fchmod-attrs", attrs(&a));
    }
    if is_root() {
        // SAFETY: valid path; root may give files away.
        note(
            "chown",
            outcome(ret(unsafe { libc::chown(cstr(&a).as_ptr(), 1234, 5678) })),
        );
        note("chown-attrs", attrs(&a));
        // SAFETY: as above.
        unsafe { libc::chown(cstr(&a).as_ptr(), 0, 0) };
    }
    let times = [
        libc::timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 123_456_789,
        },
        libc::timespec {
            tv_sec: 1_200_000_000,
            tv_nsec: 987_654_321,
        },
    ];
    // SAFETY: valid path and two timespecs.
    note(
        "utimens",
        outcome(ret(unsafe {
            libc::utimensat(libc::AT_FDCWD, cstr(&a).as_ptr(), times.as_ptr(), 0)
        })),
    );
    let m = fs::metadata(&a).unwrap();
    note(
        "times",
        format!(
            "{} {} {} {}",
            m.atime(),
            m.atime_nsec(),
            m.mtime(),
            m.mtime_nsec()
        ),
    );

    // symlink / readlink / link
    let l = d.join("l");
    symlink("a", &l).unwrap();
    note("symlink", attrs(&l));
    note("readlink", format!("{:?}", fs::read_link(&l).unwrap()));
    note("via-link", format!("{:?}", fs::read(&l).unwrap()));
    symlink("nowhere", d.join("dangling")).unwrap();
    note(
        "dangling",
        outcome(File::open(d.join("dangling")).map(drop)),
    );
    // SAFETY: valid path and timespecs; AT_SYMLINK_NOFOLLOW sets the link's own times.
    note(
        "lutimens",
        outcome(ret(unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                cstr(&l).as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })),
    );
    note(
        "link-mtime",
        fs::symlink_metadata(&l).unwrap().mtime().to_string(),
    );
    let b = d.join("b");
    fs::hard_link(&a, &b).unwrap();
    note("link", format!("{} / {}", attrs(&a), attrs(&b)));
    fs::write(&b, b"via b").unwrap();
    note("link-shared", format!("{:?}", fs::read(&a).unwrap()));

    // mknod / mkdir / rmdir / unlink
    let p = d.join("fifo");
    // SAFETY: valid path.
    note(
        "mkfifo",
        outcome(ret(unsafe { libc::mkfifo(cstr(&p).as_ptr(), 0o644) })),
    );
    note("fifo-attrs", attrs(&p));
    let q = d.join("node");
    // SAFETY: valid path; a FIFO needs no privilege.
    note(
        "mknod",
        outcome(ret(unsafe {
            libc::mknod(cstr(&q).as_ptr(), libc::S_IFIFO | 0o600, 0)
        })),
    );
    let sub = d.join("sub");
    fs::create_dir(&sub).unwrap();
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o750)).unwrap();
    note("mkdir", attrs(&sub));
    note("mkdir-again", outcome(fs::create_dir(&sub)));
    fs::write(sub.join("inner"), b"x").unwrap();
    note("rmdir-full", outcome(fs::remove_dir(&sub)));
    note("unlink", outcome(fs::remove_file(&b)));
    note("unlink-nlink", attrs(&a));
    note("unlink-missing", outcome(fs::remove_file(&b)));
    note("rmdir-file", outcome(fs::remove_dir(&a)));

    // rename, with flags
    let c = d.join("c");
    fs::rename(&a, &c).unwrap();
    note("rename", format!("{} / {}", attrs(&a), attrs(&c)));
    fs::write(d.join("x"), b"x-content").unwrap();
    let rn = |from: &str, to: &str, flags: u32| {
        // SAFETY: valid paths; renameat2 with the given flags.
        outcome(ret(unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                cstr(&d.join(from)).as_ptr(),
                libc::AT_FDCWD,
                cstr(&d.join(to)).as_ptr(),
                flags,
            )
        }))
    };
    note("noreplace", rn("c", "x", libc::RENAME_NOREPLACE));
    note("exchange", rn("c", "x", libc::RENAME_EXCHANGE));
    note(
        "exchanged",
        format!(
            "{:?} {:?}",
            fs::read(&c).unwrap(),
            fs::read(d.join("x")).unwrap()
        ),
    );
    fs::rename(&sub, d.join("sub2")).unwrap();
    note(
        "rename-dir",
        format!("{:?}", fs::read(d.join("sub2/inner")).unwrap()),
    );
    note("old-dir-gone", attrs(&sub));
    fs::remove_file(d.join("sub2/inner")).unwrap();
    note("rmdir", outcome(fs::remove_dir(d.join("sub2"))));

    // mmap
    let mm = d.join("mm");
    {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&mm)
            .unwrap();
        f.set_len(8192).unwrap();
        // SAFETY: a fresh shared mapping of 8192 bytes of a file that long; unmapped below.
        unsafe {
            let ptr = libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            );
            assert_ne!(ptr, libc::MAP_FAILED);
            let bytes = std::slice::from_raw_parts_mut(ptr.cast::<u8>(), 8192);
            bytes[100..105].copy_from_slice(b"mmap!");
            bytes[5000] = b'Z';
            libc::msync(ptr, 8192, libc::MS_SYNC);
            libc::munmap(ptr, 8192);
        }
    }
    let data = fs::read(&mm).unwrap();
    note("mmap", format!("{:?} {}", &data[100..105], data[5000]));

    // statfs / access
    {
        let mut s: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: valid path and a struct to fill.
        ret(unsafe { libc::statfs(cstr(d).as_ptr(), &mut s) }).unwrap();
        note(
            "statfs",
            format!(
                "bsize={} blocks={} namelen={}",
                s.f_bsize, s.f_blocks, s.f_namelen
            ),
        );
    }
    let acc = |p: &Path, mode| {
        // SAFETY: valid path.
        outcome(ret(unsafe { libc::access(cstr(p).as_ptr(), mode) }))
    };
    note("access-rw", acc(&c, libc::R_OK | libc::W_OK));
    note("access-x", acc(&c, libc::X_OK));
    note("access-missing", acc(&d.join("nope"), libc::F_OK));

    // extended attributes
    let name = CString::new("user.disorder").unwrap();
    // SAFETY: valid strings and buffers in all the xattr calls below.
    unsafe {
        note(
            "setxattr",
            outcome(ret(libc::setxattr(
                cstr(&c).as_ptr(),
                name.as_ptr(),
                b"value".as_ptr().cast(),
                5,
                0,
            ))),
        );
        note(
            "setxattr-create",
            outcome(ret(libc::setxattr(
                cstr(&c).as_ptr(),
                name.as_ptr(),
                b"v".as_ptr().cast(),
                1,
                libc::XATTR_CREATE,
            ))),
        );
        let size = libc::getxattr(cstr(&c).as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0);
        note("getxattr-size", size.to_string());
        let mut buf = [0u8; 64];
        let n = libc::getxattr(
            cstr(&c).as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        );
        note("getxattr", format!("{:?}", &buf[..n.max(0) as usize]));
        let mut small = [0u8; 2];
        let n = libc::getxattr(
            cstr(&c).as_ptr(),
            name.as_ptr(),
            small.as_mut_ptr().cast(),
            small.len(),
        );
        note("getxattr-erange", outcome(ret(n as i32)));
        let n = libc::listxattr(cstr(&c).as_ptr(), buf.as_mut_ptr().cast(), buf.len());
        note("listxattr", format!("{:?}", &buf[..n.max(0) as usize]));
        note(
            "removexattr",
            outcome(ret(libc::removexattr(cstr(&c).as_ptr(), name.as_ptr()))),
        );
        let n = libc::getxattr(
            cstr(&c).as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        );
        note("getxattr-gone", outcome(ret(n as i32)));
    }

    // fallocate and SEEK_DATA / SEEK_HOLE
    let sparse = d.join("sparse");
    {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&sparse)
            .unwrap();
        // SAFETY: fallocate/pwrite/lseek on a live descriptor with valid buffers.
        unsafe {
            note(
                "fallocate",
                outcome(ret(libc::fallocate(f.as_raw_fd(), 0, 0, 1 << 20))),
            );
            note("fallocate-size", f.metadata().unwrap().size().to_string());
            note(
                "punch",
                outcome(ret(libc::fallocate(
                    f.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    0,
                    1 << 20,
                ))),
            );
            libc::pwrite(f.as_raw_fd(), [7u8; 4096].as_ptr().cast(), 4096, 0);
            libc::pwrite(f.as_raw_fd(), [9u8; 4096].as_ptr().cast(), 4096, 3 << 20);
            libc::fsync(f.as_raw_fd());
            note(
                "seek-hole",
                libc::lseek(f.as_raw_fd(), 0, libc::SEEK_HOLE).to_string(),
            );
            note(
                "seek-data",
                libc::lseek(f.as_raw_fd(), 8192, libc::SEEK_DATA).to_string(),
            );
        }
    }

    // locks: conflicts between two open file descriptions
    {
        let f1 = File::open(&c).unwrap();
        let f2 = File::open(&c).unwrap();
        // SAFETY: flock on live descriptors.
        unsafe {
            note(
                "flock",
                outcome(ret(libc::flock(f1.as_raw_fd(), libc::LOCK_EX))),
            );
            note(
                "flock-conflict",
                outcome(ret(libc::flock(
                    f2.as_raw_fd(),
                    libc::LOCK_EX | libc::LOCK_NB,
                ))),
            );
            libc::flock(f1.as_raw_fd(), libc::LOCK_UN);
            note(
                "flock-free",
                outcome(ret(libc::flock(
                    f2.as_raw_fd(),
                    libc::LOCK_EX | libc::LOCK_NB,
                ))),
            );
        }
        let g1 = OpenOptions::new().read(true).write(true).open(&c).unwrap();
        let g2 = OpenOptions::new().read(true).write(true).open(&c).unwrap();
        let mut lk: libc::flock = unsafe { std::mem::zeroed() };
        lk.l_type = libc::F_WRLCK as i16;
        lk.l_whence = libc::SEEK_SET as i16;
        lk.l_len = 10;
        // SAFETY: OFD lock calls on live descriptors with a valid flock struct.
        unsafe {
            note(
                "ofd-lock",
                outcome(ret(libc::fcntl(g1.as_raw_fd(), libc::F_OFD_SETLK, &lk))),
            );
            note(
                "ofd-conflict",
                outcome(ret(libc::fcntl(g2.as_raw_fd(), libc::F_OFD_SETLK, &lk))),
            );
            let mut probe = lk;
            libc::fcntl(g2.as_raw_fd(), libc::F_OFD_GETLK, &mut probe);
            note(
                "ofd-getlk",
                format!("type={} len={}", probe.l_type, probe.l_len),
            );
        }
    }

    // a bigger file, written and read in pieces larger than one request
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(d.join("big"), &big).unwrap();
    note(
        "big",
        format!("{}", fs::read(d.join("big")).unwrap() == big),
    );

    note("listing", format!("{:?}", listing(d)));
    log
}

fn compare_with_native(opts: &Options) {
    let native = tempfile::tempdir().unwrap();
    let native_log = exercise(native.path());
    let fx = Fixture::new(opts, |_| {});
    let mounted_log = exercise(&fx.mnt);
    for (n, m) in native_log.iter().zip(&mounted_log) {
        assert_eq!(n, m, "native and mounted differ");
    }
    assert_eq!(native_log.len(), mounted_log.len());
    // The mount wrote through to the root.
    assert_eq!(listing(&fx.root), listing(native.path()));
    fx.unmount();
}

#[test]
fn operations_match_native() {
    // No-open mode: the kernel opens files without asking; the mode vary-build gets
    // inside its user namespace, where passthrough is not permitted.
    compare_with_native(&Options {
        order: Order::Shuffle { seed: 1 },
        passthrough: false,
        ..Options::default()
    });
}

#[test]
fn operations_match_native_with_an_open_per_file() {
    // One descriptor per open, with kernel passthrough where permitted (root here).
    compare_with_native(&Options::default());
    compare_with_native(&Options {
        passthrough: false,
        no_open: false,
        ..Options::default()
    });
}

#[test]
fn stat_and_readdir_agree_with_native_inode_numbers() {
    let fx = Fixture::new(&Options::default(), |root| {
        fs::create_dir(root.join("d")).unwrap();
        fs::write(root.join("d/f"), b"1").unwrap();
        fs::write(root.join("g"), b"2").unwrap();
    });
    for name in ["d", "d/f", "g"] {
        let native = fs::metadata(fx.root.join(name)).unwrap().ino();
        let mounted = fs::metadata(fx.mnt.join(name)).unwrap().ino();
        assert_eq!(native, mounted, "{name}");
    }
    for e in fs::read_dir(&fx.mnt).unwrap() {
        let e = e.unwrap();
        assert_eq!(e.ino(), e.metadata().unwrap().ino(), "{:?}", e.file_name());
    }
}

#[test]
fn pad_blocks_adds_to_st_blocks() {
    let opts = Options {
        pad_blocks: 5,
        ..Options::default()
    };
    let fx = Fixture::new(&opts, |root| {
        fs::write(root.join("f"), vec![1u8; 10_000]).unwrap()
    });
    let native = fs::metadata(fx.root.join("f")).unwrap().blocks();
    let mounted = fs::metadata(fx.mnt.join("f")).unwrap().blocks();
    assert_eq!(mounted, native + 5);
}

#[test]
fn names_and_symlinks_cannot_leave_the_root() {
    let fx = Fixture::new(&Options::default(), |root| {
        fs::create_dir(root.join("inside")).unwrap();
        symlink("../../..", root.join("inside/up")).unwrap();
        symlink("/", root.join("abs")).unwrap();
    });
    // The kernel resolves `..` and links itself, in the caller's view, as natively:
    // through the mount, `mnt/inside/..` is the mount's root, not the underlying root.
    assert_eq!(listing(&fx.mnt.join("inside/..")), listing(&fx.mnt),);
    // Creating through a link that points outside creates outside natively too, so
    // the daemon must not be the one to follow it: a create through `up` resolves in
    // the caller's namespace, exactly where the native path would go.
    let through = fs::canonicalize(fx.mnt.join("inside/up")).unwrap();
    let native = fs::canonicalize(fx.mnt.join("inside/../../..")).unwrap();
    assert_eq!(through, native);
    assert_eq!(fs::read_link(fx.mnt.join("abs")).unwrap(), Path::new("/"));
}
