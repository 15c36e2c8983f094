//! The standalone binary: Debian-compatible options, clear errors, background and
//! foreground operation, and a clean exit on unmount or signal.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{is_mount_point, is_root};
use disorderfs::Order;
use disorderfs::order::order_entries;

const BIN: &str = env!("CARGO_BIN_EXE_disorderfs");

fn dirs() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::Builder::new()
        .prefix("disorderfs-cli")
        .tempdir()
        .unwrap();
    let root = tmp.path().join("root");
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&mnt).unwrap();
    for i in 0..30 {
        fs::write(root.join(format!("f{i}")), b"data").unwrap();
    }
    (tmp, root, mnt)
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Unmounts (if still mounted) on drop, so a failing test leaves nothing behind.
struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        if is_mount_point(self.0) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(self.0)
                .status();
        }
    }
}

/// `fusermount3 -u`, then waits for the daemon serving `mnt` to exit.
fn unmount_from_outside(mnt: &Path) {
    let st = Command::new("fusermount3")
        .arg("-u")
        .arg(mnt)
        .status()
        .unwrap();
    assert!(st.success());
    wait_for_exit(mnt.to_str().unwrap());
}

/// Waits until no process has `needle` on its command line.
fn wait_for_exit(needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive = fs::read_dir("/proc").unwrap().flatten().any(|e| {
            fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c).contains(needle)
                    && fs::read_to_string(e.path().join("stat")).is_ok_and(|s| !s.contains(") Z "))
            })
        });
        if !alive {
            return;
        }
        assert!(Instant::now() < deadline, "disorderfs did not exit");
        sleep(Duration::from_millis(50));
    }
}

fn listed(dir: &Path) -> Vec<String> {
    let out = Command::new("ls").arg("-f").arg(dir).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| *l != "." && *l != "..")
        .map(String::from)
        .collect()
}

#[test]
fn missing_root_is_a_clear_error() {
    let (tmp, _root, mnt) = dirs();
    let out = Command::new(BIN)
        .arg(tmp.path().join("nope"))
        .arg(&mnt)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("does not exist or is not a directory"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn missing_mountpoint_is_a_clear_error() {
    let (tmp, root, _mnt) = dirs();
    let out = Command::new(BIN)
        .arg(&root)
        .arg(tmp.path().join("nope"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("mount point"),
        "{}",
        stderr_of(&out)
    );
    assert!(stderr_of(&out).contains("mkdir"), "{}", stderr_of(&out));
}

#[test]
fn non_empty_mountpoint_is_a_clear_error() {
    let (_tmp, root, mnt) = dirs();
    fs::write(mnt.join("occupied"), b"").unwrap();
    let out = Command::new(BIN).arg(&root).arg(&mnt).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("is not empty"),
        "{}",
        stderr_of(&out)
    );
    assert!(!is_mount_point(&mnt));
}

#[test]
fn missing_dev_fuse_is_a_clear_error() {
    if !is_root() {
        panic!("this test hides /dev in a private mount namespace, which needs root");
    }
    let (_tmp, root, mnt) = dirs();
    let script = format!(
        "mount -t tmpfs none /dev && exec {BIN} -f {} {}",
        root.display(),
        mnt.display()
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("/dev/fuse does not exist"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn background_mount_with_debian_options_then_fusermount_unmount() {
    let (_tmp, root, mnt) = dirs();
    let _guard = Unmount(&mnt);
    let out = Command::new(BIN)
        .args([
            "--shuffle-dirents=yes",
            "--reverse-dirents=no",
            "--sort-dirents=no",
        ])
        .args([
            "--pad-blocks=3",
            "--multi-user=no",
            "--seed",
            "99",
            "-o",
            "noatime",
            "-q",
        ])
        .arg(&root)
        .arg(&mnt)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).is_empty(),
        "-q prints nothing: {}",
        stderr_of(&out)
    );
    // The parent returned: the mount is live already.
    assert!(is_mount_point(&mnt));
    let mut expected: Vec<String> = (0..30).map(|i| format!("f{i}")).collect();
    order_entries(
        &mut expected,
        |s| s.as_bytes(),
        Order::Shuffle { seed: 99 },
        b"",
    );
    assert_eq!(listed(&mnt), expected);
    let native = fs::metadata(root.join("f1")).unwrap().blocks();
    assert_eq!(fs::metadata(mnt.join("f1")).unwrap().blocks(), native + 3);
    unmount_from_outside(&mnt);
    assert!(!is_mount_point(&mnt));
}

#[test]
fn default_order_is_debians_reverse() {
    let (_tmp, root, mnt) = dirs();
    let _guard = Unmount(&mnt);
    let child: Child = Command::new(BIN)
        .arg("-f")
        .arg(&root)
        .arg(&mnt)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_mount_point(&mnt) {
        assert!(Instant::now() < deadline, "no mount");
        sleep(Duration::from_millis(20));
    }
    let mut native = listed(&root);
    native.reverse();
    assert_eq!(listed(&mnt), native);
    // SAFETY: signalling the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("mounted on"),
        "{}",
        stderr_of(&out)
    );
    assert!(!is_mount_point(&mnt), "SIGTERM unmounts");
}

/// The pids of the processes with `needle` on their command line.
fn pids_of(needle: &str) -> Vec<String> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// How many of `pid`'s threads serve requests (fuser names them `fuser-N`; its
/// supervising thread is `fuser-bg`).
fn serving_threads(pid: &str) -> usize {
    fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter(|t| {
            fs::read_to_string(t.path().join("comm")).is_ok_and(|c| {
                c.trim_end()
                    .strip_prefix("fuser-")
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
        })
        .count()
}

#[test]
fn threads_and_prefetch_options_are_taken_and_checked() {
    let out = Command::new(BIN)
        .args(["--threads", "0", "/nonexistent", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("--threads"), "{}", stderr_of(&out));

    for (args, want) in [(&["--threads", "5"][..], 5), (&["-s"][..], 1)] {
        let (_tmp, root, mnt) = dirs();
        let _guard = Unmount(&mnt);
        let out = Command::new(BIN)
            .args(args)
            .args(["--prefetch-max", "0", "-q"])
            .arg(&root)
            .arg(&mnt)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        let needle = mnt.to_str().unwrap();
        let pids = pids_of(needle);
        assert_eq!(pids.len(), 1, "{pids:?}");
        // The serving threads start right after the mount is live.
        let deadline = Instant::now() + Duration::from_secs(5);
        while serving_threads(&pids[0]) < want && Instant::now() < deadline {
            sleep(Duration::from_millis(20));
        }
        assert_eq!(serving_threads(&pids[0]), want, "{args:?}");
        assert_eq!(fs::read(mnt.join("f3")).unwrap(), b"data");
        unmount_from_outside(&mnt);
    }
}
