//! The system calls the sandbox makes, behind a trait so that the order of the steps in
//! [`super::steps`] is unit-tested with a recording fake.

use crate::spec::DirOrder;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use std::io;
use std::path::Path;

pub trait Sys {
    fn unshare(&mut self, flags: CloneFlags) -> io::Result<()>;
    fn write_file(&mut self, path: &Path, contents: &str) -> io::Result<()>;
    fn read_file(&mut self, path: &Path) -> io::Result<String>;
    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
    ) -> io::Result<()>;
    /// Mounts `root` at `mountpoint` through disorderfs; the mount lives as long as `self`.
    fn mount_disorderfs(
        &mut self,
        root: &Path,
        mountpoint: &Path,
        order: DirOrder,
    ) -> io::Result<()>;
    fn sethostname(&mut self, name: &str) -> io::Result<()>;
    fn setdomainname(&mut self, name: &str) -> io::Result<()>;
    fn personality(&mut self, uname26: bool, no_randomize: bool) -> io::Result<()>;
    fn set_affinity(&mut self, cpus: &[usize]) -> io::Result<()>;
    fn umask(&mut self, mask: u32);
}

/// The real thing.
#[derive(Default)]
pub struct RealSys {
    mounts: Vec<disorderfs::Mount>,
}

fn errno(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

impl Sys for RealSys {
    fn unshare(&mut self, flags: CloneFlags) -> io::Result<()> {
        nix::sched::unshare(flags).map_err(errno)
    }

    fn write_file(&mut self, path: &Path, contents: &str) -> io::Result<()> {
        std::fs::write(path, contents)
    }

    fn read_file(&mut self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
    ) -> io::Result<()> {
        nix::mount::mount(source, target, fstype, flags, None::<&str>).map_err(errno)
    }

    fn mount_disorderfs(
        &mut self,
        root: &Path,
        mountpoint: &Path,
        order: DirOrder,
    ) -> io::Result<()> {
        let order = match order {
            DirOrder::Sorted => disorderfs::Order::Sort,
            DirOrder::Reverse => disorderfs::Order::Reverse,
            DirOrder::Shuffled { seed } => disorderfs::Order::Shuffle { seed },
        };
        let opts = disorderfs::Options {
            order,
            ..Default::default()
        };
        let m = disorderfs::mount(root, mountpoint, &opts)
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.mounts.push(m);
        Ok(())
    }

    fn sethostname(&mut self, name: &str) -> io::Result<()> {
        nix::unistd::sethostname(name).map_err(errno)
    }

    fn setdomainname(&mut self, name: &str) -> io::Result<()> {
        // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call;
        // the kernel copies them and does not keep the pointer.
        let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn personality(&mut self, uname26: bool, no_randomize: bool) -> io::Result<()> {
        use nix::sys::personality::{self, Persona};
        let mut p = personality::get().map_err(errno)?;
        p.set(Persona::UNAME26, uname26);
        p.set(Persona::ADDR_NO_RANDOMIZE, no_randomize);
        personality::set(p).map(drop).map_err(errno)
    }

    fn set_affinity(&mut self, cpus: &[usize]) -> io::Result<()> {
        let mut set = nix::sched::CpuSet::new();
        for &c in cpus {
            set.set(c).map_err(errno)?;
        }
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(errno)
    }

    fn umask(&mut self, mask: u32) {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
}
