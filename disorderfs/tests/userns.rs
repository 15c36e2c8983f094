//! The way vary-build uses the library: a single-threaded child that unshares user
//! and mount namespaces, maps one uid (1111) to the caller's, calls `mount()`, then
//! forks and execs a program that lists a directory through the mount.
//!
//! The child side runs in a fresh process (this test binary re-executed with the
//! ignored `userns_helper` test), because a process must be single-threaded to
//! unshare a user namespace and must not fork from a many-threaded test harness.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::is_root;
use disorderfs::order::order_entries;
use disorderfs::{Options, Order};

const SEED: u64 = 5;
const INSIDE_UID: u32 = 1111;

fn write_map(path: &str, content: &str) {
    fs::write(path, content).unwrap_or_else(|e| panic!("writing {path}: {e}"));
}

fn expected_order(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    order_entries(
        &mut names,
        |s| s.as_bytes(),
        Order::Shuffle { seed: SEED },
        b"",
    );
    names
}

/// The child side: exits 0 only if every check passed.
fn namespace_child(root: &Path, mnt: &Path) -> i32 {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // SAFETY: this process is single-threaded (a fresh fork), as unshare(CLONE_NEWUSER) needs.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) } != 0 {
        eprintln!("unshare: {}", std::io::Error::last_os_error());
        return 2;
    }
    write_map("/proc/self/setgroups", "deny");
    write_map("/proc/self/uid_map", &format!("{INSIDE_UID} {uid} 1"));
    write_map("/proc/self/gid_map", &format!("{INSIDE_UID} {gid} 1"));
    // SAFETY: a null-source remount that only changes propagation in our own namespace.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    assert_eq!(
        rc,
        0,
        "making / private: {}",
        std::io::Error::last_os_error()
    );

    let opts = Options {
        order: Order::Shuffle { seed: SEED },
        ..Options::default()
    };
    let m = match disorderfs::mount(root, mnt, &opts) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("mount failed: {e}");
            return 3;
        }
    };
    assert!(!m.passthrough(), "no passthrough inside a user namespace");
    // The build: a separate program, forked and exec'd, running as the same uid.
    let out = Command::new("ls").arg("-f").arg(mnt).output().unwrap();
    let listed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| *l != "." && *l != "..")
        .map(String::from)
        .collect();
    let owner = Command::new("stat")
        .args(["-c", "%u"])
        .arg(mnt.join("file-0"))
        .output()
        .unwrap();
    let owner = String::from_utf8(owner.stdout).unwrap();
    let expected = expected_order(root);
    fs::write(mnt.join("written-inside"), b"hi").unwrap();
    m.unmount().expect("unmount");
    let mut ok = true;
    if listed != expected {
        eprintln!("order through the mount: {listed:?}\nexpected: {expected:?}");
        ok = false;
    }
    if owner.trim() != INSIDE_UID.to_string() {
        eprintln!("owner inside the namespace: {owner:?}");
        ok = false;
    }
    if !root.join("written-inside").exists() {
        eprintln!("write through the mount did not reach the root");
        ok = false;
    }
    if fs::read_dir(mnt).unwrap().next().is_some() {
        eprintln!("mount point not empty after unmount");
        ok = false;
    }
    if ok { 0 } else { 1 }
}

/// Runs the child side; invoked by the tests below through a re-exec.
#[test]
#[ignore = "helper: run by the userns tests in a fresh process"]
fn userns_helper() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&mnt).unwrap();
    for i in 0..40 {
        fs::write(root.join(format!("file-{i}")), b"x").unwrap();
    }
    // SAFETY: the child only runs `namespace_child` and exits; this harness process
    // has no other thread doing work that could hold a lock across the fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let code = std::panic::catch_unwind(|| namespace_child(&root, &mnt)).unwrap_or(4);
        // SAFETY: leave the forked child without running the harness's exit path.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status), "child died: status {status}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "child checks failed");
    assert!(
        !common::is_mount_point(&mnt),
        "mount leaked into the parent namespace"
    );
}

fn run_helper(as_user: Option<&str>) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match as_user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    let out = cmd
        .args([
            "--ignored",
            "--exact",
            "userns_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TMPDIR", "/tmp")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "helper failed:\n{text}");
    assert!(text.contains("1 passed"), "helper did not run:\n{text}");
}

#[test]
fn mount_in_user_namespace_as_root() {
    run_helper(None);
}

#[test]
fn mount_in_user_namespace_as_unprivileged_user() {
    if !is_root() {
        // Already unprivileged: this is the same as the test above.
        run_helper(None);
        return;
    }
    // As the fuse3 package's udev rule does on a normal system, so that users can
    // open the device.
    let mode = fs::metadata("/dev/fuse").unwrap().permissions().mode() & 0o777;
    if mode != 0o666 {
        fs::set_permissions("/dev/fuse", fs::Permissions::from_mode(0o666)).unwrap();
    }
    run_helper(Some("nobody"));
}
