//! Directory order through real mounts: seeded shuffles replay, listings split over
//! many `getdents` calls hold each entry exactly once, and `rewinddir` replays.

mod common;

use std::collections::HashSet;
use std::ffi::CStr;
use std::fs;
use std::path::Path;

use common::{Fixture, cstr};
use disorderfs::{Options, Order};

/// Lists `dir` with opendir/readdir, the way C programs do, skipping `.` and `..`.
/// Returns the names read before and after a `rewinddir`.
fn readdir_twice(dir: &Path) -> (Vec<String>, Vec<String>) {
    let c = cstr(dir);
    // SAFETY: valid path; the DIR stream is used only here and closed at the end.
    unsafe {
        let d = libc::opendir(c.as_ptr());
        assert!(!d.is_null(), "opendir {}", dir.display());
        let read_all = || {
            let mut names = Vec::new();
            loop {
                let ent = libc::readdir(d);
                if ent.is_null() {
                    break;
                }
                let name = CStr::from_ptr((*ent).d_name.as_ptr())
                    .to_string_lossy()
                    .into_owned();
                if name != "." && name != ".." {
                    names.push(name);
                }
            }
            names
        };
        let first = read_all();
        libc::rewinddir(d);
        let second = read_all();
        libc::closedir(d);
        (first, second)
    }
}

fn populate(root: &Path, n: usize) {
    for i in 0..n {
        fs::write(root.join(format!("entry-with-a-longish-name-{i:05}")), b"").unwrap();
    }
    fs::create_dir(root.join("sub")).unwrap();
    for i in 0..50 {
        fs::write(root.join(format!("sub/s{i:03}")), b"").unwrap();
    }
}

fn order_of(root: &Path, order: Order, sub: &str) -> Vec<String> {
    let mnt = tempfile::tempdir().unwrap();
    let opts = Options {
        order,
        ..Options::default()
    };
    let m = disorderfs::mount(root, mnt.path(), &opts).expect("mount");
    let (names, _) = readdir_twice(&mnt.path().join(sub));
    m.unmount().expect("unmount");
    names
}

#[test]
fn big_directory_lists_each_entry_once_and_rewinds() {
    let n = 2000;
    let fx = Fixture::new(
        &Options {
            order: Order::Shuffle { seed: 9 },
            ..Options::default()
        },
        |r| populate(r, n),
    );
    let (first, second) = readdir_twice(&fx.mnt);
    assert_eq!(first.len(), n + 1, "every entry (and sub) once");
    let unique: HashSet<_> = first.iter().collect();
    assert_eq!(unique.len(), first.len(), "no entry repeated");
    let mut native: Vec<String> = fs::read_dir(&fx.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    native.sort();
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(sorted, native);
    assert_ne!(
        first, native,
        "2000 shuffled names should not come out sorted"
    );
    assert_eq!(first, second, "rewinddir replays the same order");
    // A second opendir of the same directory gives the same order too.
    assert_eq!(readdir_twice(&fx.mnt).0, first);
    fx.unmount();
}

#[test]
fn same_seed_replays_and_different_seed_differs() {
    let tmp = tempfile::tempdir().unwrap();
    populate(tmp.path(), 100);
    let a = order_of(tmp.path(), Order::Shuffle { seed: 1234 }, "");
    let b = order_of(tmp.path(), Order::Shuffle { seed: 1234 }, "");
    let c = order_of(tmp.path(), Order::Shuffle { seed: 4321 }, "");
    assert_eq!(a, b);
    assert_ne!(a, c);
    let sub_a = order_of(tmp.path(), Order::Shuffle { seed: 1234 }, "sub");
    assert_eq!(
        sub_a,
        order_of(tmp.path(), Order::Shuffle { seed: 1234 }, "sub")
    );
    assert_ne!(
        sub_a,
        order_of(tmp.path(), Order::Shuffle { seed: 4321 }, "sub")
    );
}

#[test]
fn same_seed_replays_in_a_copy_of_the_tree() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    populate(one.path(), 300);
    // Created in the opposite order, so the underlying order differs.
    for i in (0..300).rev() {
        fs::write(
            two.path().join(format!("entry-with-a-longish-name-{i:05}")),
            b"",
        )
        .unwrap();
    }
    fs::create_dir(two.path().join("sub")).unwrap();
    let seed = Order::Shuffle { seed: 77 };
    assert_eq!(
        order_of(one.path(), seed, ""),
        order_of(two.path(), seed, "")
    );
}

#[test]
fn sort_reverse_and_as_is() {
    let tmp = tempfile::tempdir().unwrap();
    populate(tmp.path(), 200);
    let mut native: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let as_is = order_of(tmp.path(), Order::AsIs, "");
    assert_eq!(as_is, native, "as-is keeps the underlying order");
    native.reverse();
    assert_eq!(order_of(tmp.path(), Order::Reverse, ""), native);
    native.sort();
    assert_eq!(order_of(tmp.path(), Order::Sort, ""), native);
    native.reverse();
    assert_eq!(order_of(tmp.path(), Order::ReverseSort, ""), native);
}

#[test]
fn listing_is_fixed_for_an_open_handle_while_the_directory_changes() {
    let fx = Fixture::new(&Options::default(), |r| populate(r, 500));
    let c = cstr(&fx.mnt);
    // SAFETY: valid path; the DIR stream is used only here and closed at the end.
    let names = unsafe {
        let d = libc::opendir(c.as_ptr());
        assert!(!d.is_null());
        let mut names = Vec::new();
        let mut i = 0;
        loop {
            let ent = libc::readdir(d);
            if ent.is_null() {
                break;
            }
            names.push(
                CStr::from_ptr((*ent).d_name.as_ptr())
                    .to_string_lossy()
                    .into_owned(),
            );
            i += 1;
            if i == 10 {
                // Changing the directory mid-listing must not make entries repeat.
                fs::write(fx.mnt.join("added-late"), b"").unwrap();
            }
        }
        libc::closedir(d);
        names
    };
    let unique: HashSet<_> = names.iter().collect();
    assert_eq!(unique.len(), names.len());
    assert!(names.len() >= 503, "all entries present: {}", names.len());
}
