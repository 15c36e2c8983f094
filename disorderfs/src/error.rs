//! The errors `mount` and `unmount` can report, each saying what to do about it.

use std::io;
use std::path::PathBuf;

/// Why a disorderfs mount could not be set up or taken down.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory to mirror is missing or not a directory.
    #[error(
        "root directory {path} does not exist or is not a directory: pass an existing directory to mirror"
    )]
    RootMissing {
        /// The root that was asked for.
        path: PathBuf,
    },
    /// The mount point is missing or not a directory.
    #[error("mount point {path} does not exist or is not a directory: create it first (mkdir -p)")]
    MountpointMissing {
        /// The mount point that was asked for.
        path: PathBuf,
    },
    /// The mount point has entries that the mount would hide.
    #[error(
        "mount point {path} is not empty: mount on an empty directory (its contents would be hidden)"
    )]
    MountpointNotEmpty {
        /// The mount point that was asked for.
        path: PathBuf,
    },
    /// The root and the mount point are the same directory, or one is inside the other.
    #[error("root {root} and mount point {mountpoint} overlap: use two separate directories")]
    Overlap {
        /// The root directory.
        root: PathBuf,
        /// The mount point.
        mountpoint: PathBuf,
    },
    /// There is no FUSE device.
    #[error(
        "/dev/fuse does not exist: load the fuse kernel module (modprobe fuse) or give the container the device (--device /dev/fuse)"
    )]
    NoFuseDevice,
    /// The FUSE device exists but this user may not open it.
    #[error(
        "permission denied opening /dev/fuse: make it world read-writable (chmod 666 /dev/fuse, as the fuse3 package's udev rule does) or run as root"
    )]
    FuseDeviceDenied,
    /// The kernel (and `fusermount3`, where it was tried) refused the mount.
    #[error(
        "could not mount disorderfs on {mountpoint}: {source}; as an unprivileged user install fuse3 (for fusermount3) or run inside a user and mount namespace"
    )]
    Mount {
        /// The mount point.
        mountpoint: PathBuf,
        /// What the kernel or fusermount3 said.
        source: io::Error,
    },
    /// Something else was mounted over the mount point, so ours cannot be reached to
    /// unmount it.
    #[error(
        "could not unmount {mountpoint}: another filesystem is mounted over it; unmount that one first (`umount {mountpoint}`), then ours (`fusermount3 -u {mountpoint}`)"
    )]
    Covered {
        /// The mount point.
        mountpoint: PathBuf,
    },
    /// Unmounting failed.
    #[error(
        "could not unmount {mountpoint}: {source}; unmount it by hand with `fusermount3 -u {mountpoint}` or `umount -l {mountpoint}`"
    )]
    Unmount {
        /// The mount point.
        mountpoint: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
    /// Some other I/O error while preparing the mount.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
}
