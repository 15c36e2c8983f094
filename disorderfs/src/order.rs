//! Directory order: the one thing disorderfs changes about the tree it mirrors.
//!
//! This module is pure: it takes the entries of one directory, as the underlying
//! filesystem listed them, and puts them in the order a mode asks for. The filesystem
//! calls it once per `opendir` and keeps the result for that handle, so a listing
//! never repeats or loses an entry across `readdir` calls and `rewinddir` replays it.
//!
//! A shuffle is a function of the seed, the directory's path relative to the mounted
//! root and the set of names in it, and of nothing else: the names are sorted before
//! they are shuffled, so the underlying filesystem's own order (which differs between
//! two copies of a tree) cannot leak into the result. The same seed therefore replays
//! the same orders in any copy of the tree, and two directories with the same names
//! are shuffled independently.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// How the entries of every directory are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// A seeded permutation per directory (see the module docs).
    Shuffle {
        /// The seed: the same seed gives the same order for the same directory.
        seed: u64,
    },
    /// The underlying filesystem's order, reversed (Debian's `--reverse-dirents`).
    Reverse,
    /// Sorted by name, bytewise (Debian's `--sort-dirents`).
    Sort,
    /// Sorted by name, then reversed (Debian's `--sort-dirents=yes --reverse-dirents=yes`).
    ReverseSort,
    /// The underlying filesystem's order, unchanged.
    AsIs,
}

impl Default for Order {
    fn default() -> Self {
        Order::Shuffle { seed: 0 }
    }
}

/// Reorders `entries` in place as `order` asks.
///
/// `entries` is the listing in the underlying filesystem's order; `name` gives an
/// entry's file name and `dir` is the directory's path relative to the root (empty
/// for the root itself), which keys the shuffle.
pub fn order_entries<T>(entries: &mut [T], name: impl Fn(&T) -> &[u8], order: Order, dir: &[u8]) {
    match order {
        Order::AsIs => {}
        Order::Reverse => entries.reverse(),
        Order::Sort => entries.sort_by(|a, b| name(a).cmp(name(b))),
        Order::ReverseSort => entries.sort_by(|a, b| name(b).cmp(name(a))),
        Order::Shuffle { seed } => {
            entries.sort_by(|a, b| name(a).cmp(name(b)));
            entries.shuffle(&mut rng_for(seed, dir));
            // A shuffle that leaves a small directory sorted would test nothing against a
            // sorted control (1 time in 24 for 4 entries): never hand out the sorted order.
            if entries.len() > 1 && entries.windows(2).all(|w| name(&w[0]) <= name(&w[1])) {
                entries.rotate_left(1);
            }
        }
    }
}

/// The generator for one directory: the seed and the directory's path, mixed so that
/// neighbouring seeds or paths give unrelated streams.
fn rng_for(seed: u64, dir: &[u8]) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&fnv1a(dir).to_le_bytes());
    key[16..24].copy_from_slice(&(dir.len() as u64).to_le_bytes());
    key[24..].copy_from_slice(b"disorder");
    ChaCha8Rng::from_seed(key)
}

/// FNV-1a: a stable hash (unlike `std`'s, which may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_shuffle_is_never_the_sorted_order() {
        for n in 2..6 {
            let v: Vec<String> = (0..n).map(|i| format!("f{i}.c")).collect();
            for seed in 0..300 {
                let got = ordered(v.clone(), Order::Shuffle { seed }, "src");
                assert_ne!(got, v, "seed {seed} left {n} entries sorted");
            }
        }
    }

    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("file{i:04}")).collect()
    }

    fn ordered(mut v: Vec<String>, order: Order, dir: &str) -> Vec<String> {
        order_entries(&mut v, |s| s.as_bytes(), order, dir.as_bytes());
        v
    }

    #[test]
    fn as_is_keeps_the_underlying_order() {
        let v = vec!["b".to_string(), "a".into(), "c".into()];
        assert_eq!(ordered(v.clone(), Order::AsIs, ""), v);
    }

    #[test]
    fn reverse_reverses_the_underlying_order() {
        let v = vec!["b".to_string(), "a".into(), "c".into()];
        assert_eq!(ordered(v, Order::Reverse, ""), ["c", "a", "b"]);
    }

    #[test]
    fn sort_is_bytewise() {
        let v = vec!["b".to_string(), "B".into(), "a".into(), "_".into()];
        assert_eq!(ordered(v, Order::Sort, ""), ["B", "_", "a", "b"]);
    }

    #[test]
    fn reverse_sort_is_descending() {
        let v = vec!["b".to_string(), "c".into(), "a".into()];
        assert_eq!(ordered(v, Order::ReverseSort, ""), ["c", "b", "a"]);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let v = names(500);
        let mut got = ordered(v.clone(), Order::Shuffle { seed: 7 }, "d");
        assert_ne!(got, v, "500 names should not stay sorted");
        got.sort();
        assert_eq!(got, v);
    }

    #[test]
    fn same_seed_and_dir_replays_whatever_the_input_order() {
        let v = names(100);
        let mut rev = v.clone();
        rev.reverse();
        let a = ordered(v, Order::Shuffle { seed: 42 }, "src/x");
        let b = ordered(rev, Order::Shuffle { seed: 42 }, "src/x");
        assert_eq!(a, b);
    }

    #[test]
    fn different_seed_or_dir_gives_a_different_order() {
        let v = names(100);
        let base = ordered(v.clone(), Order::Shuffle { seed: 1 }, "a");
        assert_ne!(base, ordered(v.clone(), Order::Shuffle { seed: 2 }, "a"));
        assert_ne!(base, ordered(v, Order::Shuffle { seed: 1 }, "b"));
    }

    #[test]
    fn tiny_directories_are_fine() {
        assert!(ordered(vec![], Order::Shuffle { seed: 3 }, "").is_empty());
        assert_eq!(
            ordered(vec!["x".into()], Order::Shuffle { seed: 3 }, ""),
            ["x"]
        );
    }
}
