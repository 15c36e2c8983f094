//! What the kernel-side caching (writeback cache, kept read descriptors) must never
//! change: data and mtimes reach the root by the time a file is closed, appends land
//! where they do natively, partial-page writes keep the bytes around them, and a
//! file's reads are never served from another file's descriptor.

mod common;

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::Fixture;
use disorderfs::{Options, Order};

/// The mode vary-build gets inside its user namespace: no passthrough, no opens.
fn no_open() -> Options {
    Options {
        order: Order::Shuffle { seed: 3 },
        passthrough: false,
        ..Options::default()
    }
}

/// One descriptor per open, without passthrough.
fn open_per_file() -> Options {
    Options {
        no_open: false,
        ..no_open()
    }
}

/// Bytes that differ at every offset within a period longer than a page, so a
/// misplaced or repeated page shows.
fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ salt)
        .collect()
}

fn written_in_pieces_reaches_the_root_on_close(opts: &Options) {
    let fx = Fixture::new(opts, |_| {});
    let data = pattern(3 * 1024 * 1024 + 123, 7);
    {
        let mut f = fs::File::create(fx.mnt.join("big")).unwrap();
        for piece in data.chunks(100_000) {
            f.write_all(piece).unwrap();
        }
    }
    // Read behind the mount's back: only what the daemon was sent is there.
    assert!(
        fs::read(fx.root.join("big")).unwrap() == data,
        "root differs"
    );
    assert!(
        fs::read(fx.mnt.join("big")).unwrap() == data,
        "mount differs"
    );
    let (native, mounted) = (
        fs::metadata(fx.root.join("big")).unwrap(),
        fs::metadata(fx.mnt.join("big")).unwrap(),
    );
    assert_eq!(native.size(), mounted.size());
    assert_eq!(
        (native.mtime(), native.mtime_nsec()),
        (mounted.mtime(), mounted.mtime_nsec()),
        "the root's mtime is the one the mount shows"
    );
    fx.unmount();
}

#[test]
fn written_data_and_mtime_reach_the_root_when_the_file_is_closed() {
    written_in_pieces_reaches_the_root_on_close(&no_open());
    written_in_pieces_reaches_the_root_on_close(&open_per_file());
}

/// Two appenders and a positioned writer on one file, as a log or archive gets.
fn appends(dir: &Path) -> Vec<u8> {
    let path = dir.join("log");
    fs::write(&path, b"start\n").unwrap();
    let mut a = OpenOptions::new().append(true).open(&path).unwrap();
    let mut b = OpenOptions::new().append(true).open(&path).unwrap();
    a.write_all(b"a1\n").unwrap();
    b.write_all(b"b1\n").unwrap();
    a.write_all(&pattern(10_000, 1)).unwrap();
    b.write_all(b"b2\n").unwrap();
    let mut w = OpenOptions::new().write(true).open(&path).unwrap();
    w.seek(SeekFrom::Start(2)).unwrap();
    w.write_all(b"AR").unwrap();
    a.write_all(b"a2\n").unwrap();
    drop((a, b, w));
    fs::read(&path).unwrap()
}

#[test]
fn appends_land_where_they_do_natively() {
    let native = tempfile::tempdir().unwrap();
    let expected = appends(native.path());
    for opts in [no_open(), open_per_file()] {
        let fx = Fixture::new(&opts, |_| {});
        assert!(appends(&fx.mnt) == expected, "through the mount");
        assert!(
            fs::read(fx.root.join("log")).unwrap() == expected,
            "in the root"
        );
        fx.unmount();
    }
}

#[test]
fn a_write_inside_a_page_of_a_write_only_file_keeps_the_bytes_around_it() {
    for opts in [no_open(), open_per_file()] {
        let fx = Fixture::new(&opts, |root| {
            fs::write(root.join("f"), pattern(10_000, 2)).unwrap();
            fs::set_permissions(root.join("f"), fs::Permissions::from_mode(0o200)).unwrap();
        });
        {
            let mut f = OpenOptions::new()
                .write(true)
                .open(fx.mnt.join("f"))
                .unwrap();
            f.seek(SeekFrom::Start(5000)).unwrap();
            f.write_all(b"XYZ").unwrap();
        }
        let mut expected = pattern(10_000, 2);
        expected[5000..5003].copy_from_slice(b"XYZ");
        fs::set_permissions(fx.mnt.join("f"), fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            fs::read(fx.root.join("f")).unwrap() == expected,
            "in the root"
        );
        assert!(
            fs::read(fx.mnt.join("f")).unwrap() == expected,
            "through the mount"
        );
        fx.unmount();
    }
}

#[test]
fn reads_never_come_from_a_deleted_file() {
    let fx = Fixture::new(&no_open(), |_| {});
    // Files the kernel has not seen, so their reads go to the daemon; more rounds than
    // read descriptors are kept, and deleted files' inode numbers get reused.
    for round in 0..24u8 {
        let name = format!("f{round}");
        let data = pattern(300_000, round);
        fs::write(fx.root.join(&name), &data).unwrap();
        assert!(
            fs::read(fx.mnt.join(&name)).unwrap() == data,
            "round {round}"
        );
        fs::remove_file(fx.mnt.join(&name)).unwrap();
    }
    fx.unmount();
}
