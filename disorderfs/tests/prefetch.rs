//! Prefetch: a small file a listing shows is stored by the lookup that must come
//! before any use of it, so reading it costs no READ; files above the limit, files
//! found without a listing, and files that changed size are read as usual; and no
//! store ever lands over data a process wrote (by `write`, through a shared mapping,
//! by truncation, or through another name of the same file).

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

use common::Fixture;
use disorderfs::{Options, Order};

const LIMIT: u64 = 64 * 1024;

/// Sizes around the page size and the limit; all but the last are prefetched.
const SIZES: [usize; 7] = [1, 100, 4095, 4096, 4097, LIMIT as usize, LIMIT as usize + 1];

fn opts(prefetch_max: u64) -> Options {
    Options {
        order: Order::Shuffle { seed: 5 },
        passthrough: false,
        prefetch_max,
        ..Options::default()
    }
}

/// Bytes that differ at every offset within a period longer than a page.
fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ salt)
        .collect()
}

fn sized_files(root: &Path) {
    fs::create_dir(root.join("d")).unwrap();
    for (i, len) in SIZES.iter().enumerate() {
        fs::write(root.join(format!("d/f{len}")), pattern(*len, i as u8)).unwrap();
    }
}

fn list(dir: &Path) -> usize {
    let mut n = 0;
    for entry in fs::read_dir(dir).unwrap() {
        entry.unwrap();
        n += 1;
    }
    n
}

#[test]
fn listed_small_files_are_read_without_a_read_request() {
    let fx = Fixture::new(&opts(LIMIT), sized_files);
    assert_eq!(list(&fx.mnt.join("d")), SIZES.len());
    for len in &SIZES[..SIZES.len() - 1] {
        let name = format!("d/f{len}");
        assert_eq!(
            fs::read(fx.mnt.join(&name)).unwrap(),
            fs::read(fx.root.join(&name)).unwrap(),
            "{name} through the mount"
        );
    }
    let stats = fx.stats();
    assert_eq!(stats.stores, SIZES.len() as u64 - 1, "{stats:?}");
    assert_eq!(stats.reads, 0, "a prefetched file was read: {stats:?}");

    let big = format!("d/f{}", LIMIT + 1);
    assert_eq!(
        fs::read(fx.mnt.join(&big)).unwrap(),
        fs::read(fx.root.join(&big)).unwrap()
    );
    let stats = fx.stats();
    assert!(
        stats.reads >= 1,
        "the file above the limit was not read: {stats:?}"
    );
    assert_eq!(stats.stores, SIZES.len() as u64 - 1, "{stats:?}");
}

#[test]
fn with_prefetch_off_every_file_is_read() {
    let fx = Fixture::new(&opts(0), sized_files);
    list(&fx.mnt.join("d"));
    for len in SIZES {
        let name = format!("d/f{len}");
        assert_eq!(
            fs::read(fx.mnt.join(&name)).unwrap(),
            fs::read(fx.root.join(&name)).unwrap()
        );
    }
    let stats = fx.stats();
    assert_eq!(stats.stores, 0, "{stats:?}");
    assert!(stats.reads >= SIZES.len() as u64, "{stats:?}");
}

#[test]
fn a_file_found_without_a_listing_is_read_not_stored() {
    let fx = Fixture::new(&opts(LIMIT), sized_files);
    assert_eq!(fs::read(fx.mnt.join("d/f100")).unwrap(), pattern(100, 1));
    let stats = fx.stats();
    assert_eq!((stats.stores, stats.reads), (0, 1), "{stats:?}");
}

#[test]
fn a_file_that_changed_size_since_the_listing_is_read_not_stored() {
    let opts = Options {
        // The kernel takes sizes from the daemon only without the writeback cache.
        writeback_cache: false,
        ..opts(LIMIT)
    };
    let fx = Fixture::new(&opts, sized_files);
    list(&fx.mnt.join("d"));
    let grown = [pattern(100, 1), b"grown".to_vec()].concat();
    fs::write(fx.root.join("d/f100"), &grown).unwrap();
    assert_eq!(fs::read(fx.mnt.join("d/f100")).unwrap(), grown);
    let stats = fx.stats();
    assert_eq!((stats.stores, stats.reads), (0, 1), "{stats:?}");
}

#[test]
fn a_write_after_a_listing_is_what_is_read_back() {
    let fx = Fixture::new(&opts(LIMIT), sized_files);
    list(&fx.mnt.join("d"));
    let new = pattern(4097, 99);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .open(fx.mnt.join("d/f4097"))
            .unwrap();
        f.write_all(&new).unwrap();
    }
    assert_eq!(fs::read(fx.mnt.join("d/f4097")).unwrap(), new);
    assert_eq!(fs::read(fx.root.join("d/f4097")).unwrap(), new);
}

#[test]
fn a_truncation_after_a_listing_is_what_is_read_back() {
    let fx = Fixture::new(&opts(LIMIT), sized_files);
    list(&fx.mnt.join("d"));
    fs::write(fx.mnt.join("d/f4096"), b"short").unwrap();
    assert_eq!(fs::read(fx.mnt.join("d/f4096")).unwrap(), b"short");
    assert_eq!(fs::read(fx.root.join("d/f4096")).unwrap(), b"short");
}

#[test]
fn a_write_through_a_shared_mapping_after_a_listing_is_kept() {
    let fx = Fixture::new(&opts(LIMIT), sized_files);
    list(&fx.mnt.join("d"));
    let path = fx.mnt.join("d/f4097");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let len = 4097;
    // SAFETY: a fresh shared mapping of `len` bytes of an open file, written within
    // its bounds and unmapped before the file is closed.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
        let bytes = std::slice::from_raw_parts_mut(p.cast::<u8>(), len);
        bytes[0] = b'M';
        bytes[4096] = b'N';
        assert_eq!(libc::msync(p, len, libc::MS_SYNC), 0);
        assert_eq!(libc::munmap(p, len), 0);
    }
    drop(f);
    let mut want = pattern(4097, 4);
    want[0] = b'M';
    want[4096] = b'N';
    assert_eq!(fs::read(&path).unwrap(), want);
    assert_eq!(fs::read(fx.root.join("d/f4097")).unwrap(), want);
}

#[test]
fn hard_links_listed_together_never_store_over_a_write() {
    let fx = Fixture::new(&opts(LIMIT), |root| {
        fs::create_dir(root.join("d")).unwrap();
        fs::write(root.join("d/a"), b"old data").unwrap();
        fs::hard_link(root.join("d/a"), root.join("d/b")).unwrap();
    });
    assert_eq!(list(&fx.mnt.join("d")), 2);
    fs::write(fx.mnt.join("d/a"), b"new data").unwrap();
    assert_eq!(fs::read(fx.mnt.join("d/b")).unwrap(), b"new data");
    assert_eq!(fs::read(fx.mnt.join("d/a")).unwrap(), b"new data");
    assert!(fx.stats().stores <= 1, "{:?}", fx.stats());
}

#[test]
fn many_files_listed_and_read_by_parallel_readers_match_the_root() {
    const FILES: usize = 400;
    let fx = Fixture::new(&opts(LIMIT), |root| {
        fs::create_dir(root.join("d")).unwrap();
        for i in 0..FILES {
            fs::write(
                root.join(format!("d/f{i}")),
                pattern(i * 37 % 9000 + 1, i as u8),
            )
            .unwrap();
        }
    });
    let mnt = fx.mnt.clone();
    // Two listers and two readers at once: lookups of a node being stored wait for
    // the store, and every byte read must be the root's.
    std::thread::scope(|s| {
        for t in 0..4 {
            let mnt = &mnt;
            s.spawn(move || {
                if t % 2 == 0 {
                    list(&mnt.join("d"));
                }
                for i in (0..FILES).map(|i| (i + t * 97) % FILES) {
                    let got = fs::read(mnt.join(format!("d/f{i}"))).unwrap();
                    assert_eq!(got, pattern(i * 37 % 9000 + 1, i as u8), "f{i}");
                }
            });
        }
    });
    assert!(fx.stats().stores > 0, "{:?}", fx.stats());
}
