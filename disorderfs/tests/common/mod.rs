//! Shared harness for the integration tests: a fresh temp dir with a root and a
//! mount point, mounted with the given options and always unmounted on drop.

#![allow(dead_code)]

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use disorderfs::{Mount, Options};
use tempfile::TempDir;

/// A root directory mirrored at a mount point; unmounts before the temp dir goes.
pub struct Fixture {
    mount: Option<Mount>,
    pub root: PathBuf,
    pub mnt: PathBuf,
    pub tmp: TempDir,
}

impl Fixture {
    /// Creates `root` (filled by `populate`) and an empty mount point, then mounts.
    pub fn new(opts: &Options, populate: impl FnOnce(&Path)) -> Fixture {
        let tmp = tempfile::Builder::new()
            .prefix("disorderfs-test")
            .tempdir()
            .expect("temp dir");
        let root = tmp.path().join("root");
        let mnt = tmp.path().join("mnt");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&mnt).unwrap();
        populate(&root);
        let mount = disorderfs::mount(&root, &mnt, opts).expect("mount");
        Fixture {
            mount: Some(mount),
            root,
            mnt,
            tmp,
        }
    }

    /// What the mount has served so far.
    pub fn stats(&self) -> disorderfs::Stats {
        self.mount.as_ref().expect("mounted").stats()
    }

    /// Unmounts now, reporting a failure.
    pub fn unmount(mut self) {
        if let Some(m) = self.mount.take() {
            m.unmount().expect("unmount");
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(m) = self.mount.take() {
            if m.unmount().is_err() {
                let c = cstr(&self.mnt);
                // SAFETY: valid NUL-terminated path; a lazy unmount so no test leaves a mount.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

pub fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// Whether a path is a mount point right now (per /proc/self/mountinfo).
pub fn is_mount_point(p: &Path) -> bool {
    let canon = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let wanted = canon.to_string_lossy().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(wanted.as_str()))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}
