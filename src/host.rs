//! What this machine allows: user namespaces, FUSE, ASLR, CPUs. Found once, before planning,
//! so that a variation that cannot work is reported unavailable with the reason and the fix
//! instead of silently testing nothing.

use std::process::Command;

/// How builds are isolated on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// A user namespace (as any user), with mount, UTS and PID namespaces inside it.
    UserNamespace,
    /// Mount, UTS and PID namespaces without a user namespace: only as root.
    RootNamespaces,
    /// No namespaces at all; the reason says what to change.
    None(String),
}

#[derive(Debug, Clone)]
pub struct Host {
    pub isolation: Isolation,
    pub is_root: bool,
    pub uid: u32,
    pub gid: u32,
    /// The CPUs vary-build itself may run on.
    pub cpus: Vec<usize>,
    /// Ok, or why FUSE mounts cannot be made.
    pub fuse: Result<(), String>,
    /// kernel.randomize_va_space; 0 means ASLR is off system-wide.
    pub randomize_va_space: Option<u8>,
}

impl Host {
    pub fn detect() -> Host {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let is_root = uid == 0;
        Host {
            isolation: detect_isolation(is_root),
            is_root,
            uid,
            gid,
            cpus: allowed_cpus(),
            fuse: detect_fuse(),
            randomize_va_space: std::fs::read_to_string("/proc/sys/kernel/randomize_va_space")
                .ok()
                .and_then(|s| s.trim().parse().ok()),
        }
    }

    /// Why namespaces are unavailable, if they are.
    pub fn namespace_problem(&self) -> Option<&str> {
        match &self.isolation {
            Isolation::None(why) => Some(why),
            _ => None,
        }
    }
}

pub fn allowed_cpus() -> Vec<usize> {
    let Ok(set) = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) else {
        return vec![0];
    };
    (0..nix::sched::CpuSet::count())
        .filter(|&i| set.is_set(i).unwrap_or(false))
        .collect()
}

/// Runs `vary-build __sandbox --check`, a child that tries the namespaces for real: reading
/// sysctls cannot tell about AppArmor, seccomp or container policies.
fn detect_isolation(is_root: bool) -> Isolation {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return Isolation::None(format!("cannot find vary-build's own executable: {e}")),
    };
    let try_mode = |mode: &str| {
        Command::new(&exe)
            .args(["__sandbox", "--check", mode])
            .output()
            .map(|o| {
                (
                    o.status.success(),
                    String::from_utf8_lossy(&o.stderr).trim().to_string(),
                )
            })
    };
    match try_mode("user") {
        Ok((true, _)) => Isolation::UserNamespace,
        Ok((false, why)) if is_root => match try_mode("root") {
            Ok((true, _)) => Isolation::RootNamespaces,
            Ok((false, why2)) => Isolation::None(format!("{why}; {why2}")),
            Err(e) => Isolation::None(e.to_string()),
        },
        Ok((false, why)) => Isolation::None(format!(
            "{why}. Enable unprivileged user namespaces: `sysctl -w kernel.unprivileged_userns_clone=1` \
             (Debian) and `sysctl -w user.max_user_namespaces=15000`, or on Ubuntu 24.04+ \
             `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"
        )),
        Err(e) => Isolation::None(format!("cannot run the namespace check: {e}")),
    }
}

fn detect_fuse() -> Result<(), String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(
            "/dev/fuse does not exist: load the module (`modprobe fuse`) or, in a container, \
             pass the device through (--device /dev/fuse)"
                .into(),
        ),
        Err(e) => Err(format!(
            "cannot open /dev/fuse ({e}): install Debian's fuse3 package, whose udev rule makes \
             it mode 0666, or `chmod 0666 /dev/fuse`"
        )),
    }
}
