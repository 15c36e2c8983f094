//! The sandbox's steps, in their one fixed order. Each function is generic over [`Sys`] so the
//! order and arguments are unit-tested.
//!
//! Order, and why:
//! 1. [`enter_namespaces`] (in the first sandbox process): the user namespace first, because
//!    it grants the capabilities every later step needs without being root; then its uid and
//!    gid maps (setgroups must be denied before an unprivileged gid map is accepted); then the
//!    mount, UTS, IPC and PID namespaces, owned by the new user namespace. The PID namespace
//!    takes effect for the next child, the build's init.
//! 2. [`prepare_init`] (in that init, pid 1): mount propagation to slave first so nothing we
//!    mount leaks to the host; then a private /dev/shm ([`private_dev_shm`]); then the
//!    workspace view at the build root; then passwd and group files; then host and domain
//!    name. All need CAP_SYS_ADMIN in the namespace.
//! 3. Last the per-process settings that the build inherits across fork and exec:
//!    personality, CPU affinity, umask. Done late so the setup itself runs normally.

use super::sys::Sys;
use crate::spec::{BuildSpec, Identity, Namespaces, View};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use std::path::Path;

/// A failed step: which one, and the system's answer.
#[derive(Debug)]
pub struct StepError {
    pub step: &'static str,
    pub error: std::io::Error,
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.error)
    }
}

trait Step<T> {
    fn step(self, step: &'static str) -> Result<T, StepError>;
}

impl<T> Step<T> for std::io::Result<T> {
    fn step(self, step: &'static str) -> Result<T, StepError> {
        self.map_err(|error| StepError { step, error })
    }
}

pub fn enter_namespaces(
    spec: &BuildSpec,
    outer_uid: u32,
    outer_gid: u32,
    sys: &mut impl Sys,
) -> Result<(), StepError> {
    if spec.namespaces == Namespaces::None {
        return Ok(());
    }
    if spec.namespaces == Namespaces::User {
        let (uid, gid) = spec
            .identity
            .as_ref()
            .map_or((outer_uid, outer_gid), |i| (i.uid, i.gid));
        sys.unshare(CloneFlags::CLONE_NEWUSER)
            .step("create a user namespace")?;
        sys.write_file(Path::new("/proc/self/setgroups"), "deny")
            .step("deny setgroups in the user namespace")?;
        sys.write_file(
            Path::new("/proc/self/uid_map"),
            &format!("{uid} {outer_uid} 1\n"),
        )
        .step("write the uid map")?;
        sys.write_file(
            Path::new("/proc/self/gid_map"),
            &format!("{gid} {outer_gid} 1\n"),
        )
        .step("write the gid map")?;
    }
    sys.unshare(
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWPID,
    )
    .step("create mount, UTS, IPC and PID namespaces")
}

pub fn prepare_init(spec: &BuildSpec, sys: &mut impl Sys) -> Result<(), StepError> {
    if spec.namespaces != Namespaces::None {
        prepare_namespaces(spec, sys)?;
    }
    sys.personality(spec.uname26, !spec.aslr)
        .step("set the personality (UNAME26, ADDR_NO_RANDOMIZE)")?;
    if let Some(cpus) = &spec.cpus {
        sys.set_affinity(cpus).step("set the CPU affinity")?;
    }
    sys.umask(spec.umask);
    Ok(())
}

/// The steps that need the build's own mount and UTS namespaces.
fn prepare_namespaces(spec: &BuildSpec, sys: &mut impl Sys) -> Result<(), StepError> {
    sys.mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
    )
    .step("make mounts private to the sandbox")?;
    private_dev_shm(sys)?;
    match spec.view {
        View::Bind => sys
            .mount(
                Some(&spec.workspace),
                &spec.build_root,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
            )
            .step("bind the workspace at the build path")?,
        View::Disorder { order } => sys
            .mount_disorderfs(&spec.workspace, &spec.build_root, order)
            .step("mount disorderfs at the build path")?,
        View::InPlace => {}
    }
    if let Some(id) = &spec.identity {
        for (file, make) in [
            ("passwd", passwd as fn(&str, &Identity) -> String),
            ("group", group),
        ] {
            let etc = Path::new("/etc").join(file);
            let host = sys.read_file(&etc).unwrap_or_default();
            let ours = spec.meta_dir.join(file);
            sys.write_file(&ours, &make(&host, id))
                .step("write the build's passwd and group files")?;
            sys.mount(Some(&ours), &etc, None, MsFlags::MS_BIND)
                .step("bind the build's passwd and group files over /etc")?;
        }
    }
    if let Some((host, domain)) = &spec.uts {
        sys.sethostname(host).step("set the host name")?;
        sys.setdomainname(domain).step("set the NIS domain name")?;
    }
    Ok(())
}

/// Where POSIX semaphores and shared memory objects live (`sem_open`, `shm_open`).
pub const DEV_SHM: &str = "/dev/shm";

/// Gives the build an empty /dev/shm of its own, which vanishes with its mount namespace.
///
/// The IPC namespace does not cover POSIX semaphores: they are files in /dev/shm. libfaketime
/// names its semaphore after the pid of the first process that can create it, passes the name
/// on in FAKETIME_SHARED, deletes it when that process exits, and makes a process that finds
/// it deleted and cannot create its own exit at start. In our PID namespaces every build
/// reuses the same small pids, and builds killed at the end leave their semaphores behind; in
/// the host's /dev/shm such leftovers kept the build command from owning the semaphore, a
/// `setsid -f` parent owned it instead, and the daemon it forked died (issue: "the setsid
/// daemon did not start" under `time`). In an empty /dev/shm the build command owns it.
pub fn private_dev_shm(sys: &mut impl Sys) -> Result<(), StepError> {
    sys.mount(
        Some(Path::new("tmpfs")),
        Path::new(DEV_SHM),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    )
    .step("mount a private /dev/shm")
}

/// The host's passwd with the build user in place of any entry with its name or uid.
pub fn passwd(host: &str, id: &Identity) -> String {
    let mut out: String = host
        .lines()
        .filter(|l| {
            let mut f = l.split(':');
            let name = f.next().unwrap_or("");
            let uid = f.nth(1).unwrap_or("");
            name != id.user && uid != id.uid.to_string()
        })
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!(
        "{}:x:{}:{}:{}:{}:/bin/sh\n",
        id.user, id.uid, id.gid, id.gecos, id.home
    ));
    out
}

/// The host's group with the build group in place of any entry with its name or gid.
pub fn group(host: &str, id: &Identity) -> String {
    let mut out: String = host
        .lines()
        .filter(|l| {
            let mut f = l.split(':');
            let name = f.next().unwrap_or("");
            let gid = f.nth(1).unwrap_or("");
            name != id.group && gid != id.gid.to_string()
        })
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!("{}:x:{}:\n", id.group, id.gid));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::sys::RealSys;
    use crate::spec::{DirOrder, View};
    use std::io;
    use std::path::PathBuf;
    use std::process::Command;

    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        fail_on: Option<&'static str>,
    }

    impl Recorder {
        fn rec(&mut self, call: String) -> io::Result<()> {
            let fail = self.fail_on.is_some_and(|f| call.starts_with(f));
            self.calls.push(call);
            if fail {
                Err(io::Error::from_raw_os_error(libc::EPERM))
            } else {
                Ok(())
            }
        }
    }

    impl Sys for Recorder {
        fn unshare(&mut self, flags: CloneFlags) -> io::Result<()> {
            self.rec(format!("unshare {flags:?}"))
        }
        fn write_file(&mut self, path: &Path, contents: &str) -> io::Result<()> {
            let first = contents.lines().last().unwrap_or("");
            self.rec(format!("write {} {first}", path.display()))
        }
        fn read_file(&mut self, _: &Path) -> io::Result<String> {
            Ok("root:x:0:0:root:/root:/bin/bash\nclash:x:1111:1111::/:/bin/sh\n".into())
        }
        fn mount(
            &mut self,
            s: Option<&Path>,
            t: &Path,
            _: Option<&str>,
            f: MsFlags,
        ) -> io::Result<()> {
            self.rec(format!("mount {s:?} {} {f:?}", t.display()))
        }
        fn mount_disorderfs(&mut self, r: &Path, m: &Path, o: DirOrder) -> io::Result<()> {
            self.rec(format!("disorderfs {} {} {o:?}", r.display(), m.display()))
        }
        fn sethostname(&mut self, n: &str) -> io::Result<()> {
            self.rec(format!("sethostname {n}"))
        }
        fn setdomainname(&mut self, n: &str) -> io::Result<()> {
            self.rec(format!("setdomainname {n}"))
        }
        fn personality(&mut self, u: bool, n: bool) -> io::Result<()> {
            self.rec(format!("personality uname26={u} no_randomize={n}"))
        }
        fn set_affinity(&mut self, c: &[usize]) -> io::Result<()> {
            self.rec(format!("affinity {c:?}"))
        }
        fn umask(&mut self, m: u32) {
            let _ = self.rec(format!("umask {m:o}"));
        }
    }

    fn spec() -> BuildSpec {
        BuildSpec {
            name: "control".into(),
            varied: vec![],
            argv: vec!["make".into()],
            env: vec![],
            namespaces: Namespaces::User,
            workspace: PathBuf::from("/run/ws"),
            build_root: PathBuf::from("/run/build"),
            cwd: PathBuf::from("/run/build/src"),
            view: View::Bind,
            identity: Some(Identity {
                uid: 1111,
                gid: 1111,
                user: "vbuild-control".into(),
                group: "vbuild-control".into(),
                gecos: "vary-build control user".into(),
                home: "/nonexistent/h".into(),
            }),
            uts: Some(("h".into(), "d".into())),
            uname26: false,
            aslr: false,
            cpus: Some(vec![0, 1]),
            umask: 0o022,
            meta_dir: PathBuf::from("/run/meta"),
            order_probe_dir: PathBuf::from("/run/build/.p"),
        }
    }

    #[test]
    fn user_namespace_comes_first_and_maps_the_caller_to_the_build_identity() {
        let mut r = Recorder::default();
        enter_namespaces(&spec(), 1000, 1000, &mut r).unwrap();
        assert_eq!(
            r.calls,
            vec![
                "unshare CloneFlags(CLONE_NEWUSER)",
                "write /proc/self/setgroups deny",
                "write /proc/self/uid_map 1111 1000 1",
                "write /proc/self/gid_map 1111 1000 1",
                "unshare CloneFlags(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID)",
            ]
        );
    }

    #[test]
    fn root_namespaces_skip_the_user_namespace() {
        let mut s = spec();
        s.namespaces = Namespaces::Root;
        s.identity = None;
        let mut r = Recorder::default();
        enter_namespaces(&s, 0, 0, &mut r).unwrap();
        assert_eq!(r.calls.len(), 1);
        assert!(r.calls[0].contains("CLONE_NEWNS"));
    }

    #[test]
    fn init_steps_run_in_the_documented_order() {
        let mut s = spec();
        s.view = View::Disorder {
            order: DirOrder::Shuffled { seed: 7 },
        };
        s.uname26 = true;
        let mut r = Recorder::default();
        prepare_init(&s, &mut r).unwrap();
        let kinds: Vec<&str> = r
            .calls
            .iter()
            .map(|c| c.split(' ').next().unwrap())
            .collect();
        assert_eq!(
            kinds,
            vec![
                "mount",
                "mount",
                "disorderfs",
                "write",
                "mount",
                "write",
                "mount",
                "sethostname",
                "setdomainname",
                "personality",
                "affinity",
                "umask"
            ]
        );
        assert!(r.calls[0].contains("MS_SLAVE"));
        assert!(
            r.calls[1].contains(" /dev/shm ") && r.calls[1].contains("MS_NOSUID"),
            "{}",
            r.calls[1]
        );
        assert!(r.calls[2].contains("Shuffled { seed: 7 }"));
        assert!(
            r.calls[4].contains(" /etc/passwd ") && r.calls[4].contains("MS_BIND"),
            "{}",
            r.calls[4]
        );
        assert_eq!(r.calls[9], "personality uname26=true no_randomize=true");
    }

    #[test]
    fn a_failing_step_stops_the_sequence_and_is_named() {
        let mut r = Recorder {
            fail_on: Some("sethostname"),
            ..Default::default()
        };
        let err = prepare_init(&spec(), &mut r).unwrap_err();
        assert_eq!(err.step, "set the host name");
        assert!(r.calls.last().unwrap().starts_with("sethostname"));
        assert!(!r.calls.iter().any(|c| c.starts_with("umask")));
    }

    /// Regression: under `time` (libfaketime), a `setsid -f` daemon never started when the
    /// host's /dev/shm held stale libfaketime semaphores named after the build's pids. Replays
    /// that: a test-owned tmpfs plays the host's /dev/shm with such files, the build's
    /// /dev/shm step runs, and a faked-clock shell, pid 1 of a new PID namespace, starts the
    /// daemon and waits for the file it creates.
    #[test]
    fn setsid_daemon_under_faketime_starts_despite_stale_semaphores() {
        let lib = crate::variation::time::find_libfaketime()
            .expect("libfaketime is needed for this test (apt-get install libfaketime)");
        let dir = tempfile::tempdir().unwrap();
        let dir_path = dir.path().to_path_buf();
        // A thread of its own, because unshare(CLONE_NEWNS) moves only the calling thread
        // (and what it spawns) into the new mount namespace; it goes away with the thread.
        let status = std::thread::spawn(move || {
            let mut sys = RealSys::default();
            sys.unshare(CloneFlags::CLONE_NEWNS)
                .expect("unshare a mount namespace (run the tests as root)");
            sys.mount(
                None,
                Path::new("/"),
                None,
                MsFlags::MS_REC | MsFlags::MS_SLAVE,
            )
            .unwrap();
            sys.mount(
                Some(Path::new("tmpfs")),
                Path::new(DEV_SHM),
                Some("tmpfs"),
                MsFlags::empty(),
            )
            .unwrap();
            // Left over for every pid but that of `setsid` (2), the one that must not own
            // the semaphore.
            for pid in std::iter::once(1).chain(3..=20) {
                let stale = Path::new(DEV_SHM).join(format!("sem.faketime_sem_{pid}"));
                std::fs::write(stale, "stale").unwrap();
            }
            private_dev_shm(&mut sys).unwrap();
            // The daemon waits until `setsid` (pid 2) is gone, then starts a program: with a
            // stale file for pid 1, `setsid` would have owned the semaphore and deleted it on
            // exit, and that program would die at start.
            let script = "setsid -f sh -c 'while kill -0 2 2>/dev/null; do :; done
                    touch up && exec sleep 1000' </dev/null >/dev/null 2>&1
                i=0
                while [ ! -e up ]; do
                    i=$((i + 1)); [ $i -gt 100 ] && exit 1; sleep 0.05
                done";
            Command::new("unshare")
                .args(["--pid", "--fork", "--kill-child", "env"])
                .arg(format!("LD_PRELOAD={}", lib.display()))
                .args(["FAKETIME=+86400", "FAKETIME_DONT_FAKE_MONOTONIC=1"])
                .args(["sh", "-c", script])
                .current_dir(&dir_path)
                .status()
                .expect("run unshare (util-linux)")
        })
        .join()
        .unwrap();
        assert!(
            dir.path().join("up").exists(),
            "the daemon did not start ({status})"
        );
        assert!(status.success(), "{status}");
    }

    #[test]
    fn passwd_replaces_clashing_entries() {
        let id = spec().identity.unwrap();
        let p = passwd(
            "root:x:0:0:root:/root:/bin/bash\nold:x:1111:5::/:/bin/sh\n",
            &id,
        );
        assert!(!p.contains("old:"));
        assert!(p.contains("root:x:0:0"));
        assert!(p.ends_with(
            "vbuild-control:x:1111:1111:vary-build control user:/nonexistent/h:/bin/sh\n"
        ));
        let g = group("root:x:0:\nvbuild-control:x:9:\n", &id);
        assert_eq!(g, "root:x:0:\nvbuild-control:x:1111:\n");
    }
}
