//! Unmounting takes down our own mount and nothing else: not a new mount made on the
//! same directory after ours was unmounted from outside, and not a mount made over
//! ours. (fuser alone unmounts by path whatever is there.)

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::is_mount_point;
use disorderfs::{Options, mount};

fn opts() -> Options {
    Options {
        passthrough: false,
        ..Options::default()
    }
}

/// Two roots, `a` and `b`, each with a file `which` naming it, and an empty mount point.
fn two_trees() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, mnt) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("mnt"),
    );
    for (dir, content) in [(&a, "a"), (&b, "b")] {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("which"), content).unwrap();
    }
    fs::create_dir(&mnt).unwrap();
    (tmp, a, b, mnt)
}

#[test]
fn a_mount_unmounted_from_outside_leaves_a_new_mount_on_the_same_directory_alone() {
    if !common::is_root() {
        eprintln!("skipped: needs root to unmount from outside with umount2");
        return;
    }
    let (_tmp, a, b, mnt) = two_trees();

    let first = mount(&a, &mnt, &opts()).unwrap();
    assert_eq!(fs::read_to_string(mnt.join("which")).unwrap(), "a");
    let c = common::cstr(&mnt);
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::umount2(c.as_ptr(), 0) }, 0);
    let start = Instant::now();
    while first.is_serving() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!first.is_serving());

    let second = mount(&b, &mnt, &opts()).unwrap();
    first
        .unmount()
        .expect("unmounting the mount that is already gone");
    assert!(is_mount_point(&mnt), "the new mount was taken down");
    assert_eq!(fs::read_to_string(mnt.join("which")).unwrap(), "b");
    second.unmount().unwrap();
    assert!(!is_mount_point(&mnt));
}

#[test]
fn a_mount_with_another_mounted_over_it_is_reported_and_the_other_left_alone() {
    if !common::is_root() {
        eprintln!("skipped: needs root to remove the covered mount afterwards");
        return;
    }
    let (_tmp, a, b, mnt) = two_trees();

    let under = mount(&a, &mnt, &opts()).unwrap();
    let over_opts = Options {
        allow_nonempty: true,
        ..opts()
    };
    let over = mount(&b, &mnt, &over_opts).unwrap();
    assert_eq!(fs::read_to_string(mnt.join("which")).unwrap(), "b");

    let err = under
        .unmount()
        .expect_err("a covered mount cannot be unmounted");
    assert!(err.to_string().contains("mounted over it"), "{err}");
    assert_eq!(
        fs::read_to_string(mnt.join("which")).unwrap(),
        "b",
        "the mount on top was taken down"
    );
    over.unmount().unwrap();
    // Ours shows again, still served; the error told the user how to remove it.
    assert_eq!(fs::read_to_string(mnt.join("which")).unwrap(), "a");
    let c = common::cstr(&mnt);
    // SAFETY: a valid NUL-terminated path; a lazy unmount so the test leaves no mount.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    assert!(!is_mount_point(&mnt));
}
