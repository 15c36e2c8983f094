//! The child side of a build: `vary-build __sandbox SPEC.json`.
//!
//! The dispatcher never changes process-wide state itself (it runs an async runtime, where
//! `pre_exec` hooks are unsafe). It re-executes this binary, which applies the spec in the
//! fixed order of [`steps`] and then runs the build. Three processes are involved:
//!
//! - the *outer* process enters the namespaces and waits for the init;
//! - the *init* (pid 1 of the new PID namespace) mounts, sets names and personality, runs the
//!   probe, runs the build, reaps orphans, and exits with the build's status;
//! - the *build* itself.
//!
//! Each dies with its parent (parent-death signal), and when the init dies the kernel kills
//! everything left in its PID namespace; so no build process outlives vary-build, whether it
//! returns, is interrupted, or is killed with SIGKILL. The mount namespace, and with it every
//! mount made here, disappears with its last process.

pub mod probe;
pub mod steps;
pub mod sys;

use crate::spec::{BuildSpec, Namespaces, SANDBOX_FAILED};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use sys::RealSys;

/// Environment variable through which the dispatcher tells the sandbox its pid, so the
/// sandbox can tell whether its parent died before the parent-death signal was armed.
pub const PARENT_PID_ENV: &str = "VARY_BUILD_PARENT_PID";

/// Entry point of `vary-build __sandbox ...`; returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    match args {
        [flag, mode] if flag == "--check" => check(mode),
        [spec] => run(Path::new(spec)),
        _ => {
            eprintln!("usage: vary-build __sandbox SPEC.json (internal; not for direct use)");
            2
        }
    }
}

/// Tries the namespaces a build would use, for [`crate::host`].
fn check(mode: &str) -> i32 {
    use nix::sched::{CloneFlags, unshare};
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let res = (|| -> Result<(), String> {
        if mode == "user" {
            unshare(CloneFlags::CLONE_NEWUSER)
                .map_err(|e| format!("cannot create a user namespace ({e})"))?;
            std::fs::write("/proc/self/setgroups", "deny")
                .and_then(|_| std::fs::write("/proc/self/uid_map", format!("1111 {uid} 1\n")))
                .and_then(|_| std::fs::write("/proc/self/gid_map", format!("1111 {gid} 1\n")))
                .map_err(|e| format!("cannot map ids in a user namespace ({e})"))?;
        }
        unshare(
            CloneFlags::CLONE_NEWNS
                | CloneFlags::CLONE_NEWUTS
                | CloneFlags::CLONE_NEWIPC
                | CloneFlags::CLONE_NEWPID,
        )
        .map_err(|e| format!("cannot create mount, UTS and PID namespaces ({e})"))
    })();
    match res {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// Reports a setup failure where the dispatcher looks for it, and on the build log.
fn fail(spec: &BuildSpec, msg: &str) -> i32 {
    eprintln!("vary-build sandbox: {msg}");
    let _ = std::fs::write(spec.meta_dir.join("sandbox-error.txt"), msg);
    SANDBOX_FAILED
}

fn arm_parent_death_signal() -> Result<(), String> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|e| format!("cannot set the parent-death signal: {e}"))
}

fn run(spec_path: &Path) -> i32 {
    if let Err(e) = arm_parent_death_signal() {
        eprintln!("vary-build sandbox: {e}");
        return SANDBOX_FAILED;
    }
    // The parent may have died before the signal was armed; then we were reparented.
    if let Ok(expected) = std::env::var(PARENT_PID_ENV) {
        if nix::unistd::getppid().as_raw().to_string() != expected {
            return SANDBOX_FAILED;
        }
    }
    let spec: BuildSpec = match std::fs::read(spec_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "vary-build sandbox: cannot read {}: {e}",
                spec_path.display()
            );
            return SANDBOX_FAILED;
        }
    };
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let mut sys = RealSys::default();
    if let Err(e) = steps::enter_namespaces(&spec, uid, gid, &mut sys) {
        return fail(&spec, &e.to_string());
    }
    // The init must notice if we die before it armed its own parent-death signal: it holds
    // the read end of a pipe whose only write end we keep.
    let (alive_r, alive_w) = match nix::unistd::pipe() {
        Ok(p) => p,
        Err(e) => return fail(&spec, &format!("cannot create a pipe: {e}")),
    };
    // SAFETY: this process is single-threaded (the sandbox never starts threads before this
    // point), so the child may run arbitrary code after fork.
    match unsafe { nix::unistd::fork() } {
        Err(e) => fail(&spec, &format!("cannot fork the build's init: {e}")),
        Ok(ForkResult::Child) => {
            drop(alive_w);
            std::process::exit(init(&spec, alive_r, sys));
        }
        Ok(ForkResult::Parent { child }) => {
            drop(alive_r);
            let code = wait_exit_code(child);
            drop(alive_w);
            code
        }
    }
}

/// Waits for `pid` and turns its end into an exit code (128 + signal, like a shell).
fn wait_exit_code(pid: Pid) -> i32 {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, c)) => return c,
            Ok(WaitStatus::Signaled(_, s, _)) => return 128 + s as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return SANDBOX_FAILED,
        }
    }
}

fn parent_is_gone(alive: &OwnedFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(alive.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Pid 1 of the build's PID namespace.
fn init(spec: &BuildSpec, alive: OwnedFd, mut sys: RealSys) -> i32 {
    if arm_parent_death_signal().is_err() || parent_is_gone(&alive) {
        return SANDBOX_FAILED;
    }
    // Without a PID namespace (Namespaces::None) orphans would escape to the host's init;
    // as a subreaper we inherit them and can kill them when the build ends.
    if spec.namespaces == Namespaces::None {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            return fail(spec, &format!("cannot become a child subreaper: {e}"));
        }
    }
    if let Err(e) = steps::prepare_init(spec, &mut sys) {
        return fail(spec, &e.to_string());
    }
    let probe = probe::run_probe(spec);
    if let Err(e) = std::fs::write(
        spec.meta_dir.join("probe.json"),
        serde_json::to_vec_pretty(&probe).unwrap_or_default(),
    ) {
        return fail(spec, &format!("cannot write the probe result: {e}"));
    }
    let code = run_build(spec);
    if spec.namespaces == Namespaces::None {
        kill_descendants();
    }
    // Never unmount by hand: background processes of the build may still use the mount, so
    // an unmount would fail or wait. Exiting kills everything left in the PID namespace, and
    // the mount namespace, with every mount in it, goes away with its last process.
    std::mem::forget(sys);
    code
}

/// Kills every process left below this one (we are their subreaper) and reaps them.
fn kill_descendants() {
    let me = std::process::id().to_string();
    loop {
        let children: Vec<u32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| crate::procstat::stat_field(*pid, 4).is_some_and(|p| p == me))
            .collect();
        if children.is_empty() {
            return;
        }
        for pid in &children {
            let _ = nix::sys::signal::kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
        // Reap them; their own children are re-parented to us and found next round.
        while let Ok(status) = waitpid(None, Some(WaitPidFlag::__WALL)) {
            if matches!(status, WaitStatus::StillAlive) {
                break;
            }
        }
    }
}

fn run_build(spec: &BuildSpec) -> i32 {
    let child = Command::new(&spec.argv[0])
        .args(&spec.argv[1..])
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "vary-build: cannot start the build command `{}`: {e}{}",
                spec.argv[0],
                if e.kind() == std::io::ErrorKind::NotFound {
                    "; is it installed and on PATH (or give its path)?"
                } else {
                    ""
                }
            );
            return 127;
        }
    };
    let build = Pid::from_raw(child.id() as i32);
    // As pid 1 we inherit every orphan; reap them all, and return when the build ends.
    loop {
        match waitpid(None, Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(pid, c)) if pid == build => return c,
            Ok(WaitStatus::Signaled(pid, s, _)) if pid == build => return 128 + s as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return SANDBOX_FAILED,
        }
    }
}
