//! disorderfs: a FUSE passthrough of a directory whose listings come out in a
//! chosen order, to expose builds that depend on directory order.
//!
//! Builds that list a directory and use the order it comes in (`find`, unsorted
//! wildcards, `os.listdir`, `tar` without `--sort`) are unreproducible across
//! filesystems. Mounting the source through disorderfs with a seeded shuffle makes
//! that dependence show, and the seed replays the exact orders that broke a build.
//!
//! The crate is a library (vary-build mounts it inside its sandbox) and a standalone
//! binary that accepts Debian's disorderfs options plus `--seed`.
//!
//! - [`order`]: the pure ordering logic (shuffle, reverse, sort, as-is).
//! - [`mount()`] / [`Mount`]: set a mount up, tear it down (also on drop).
//! - `fs` (private): the FUSE operations, with the caching policy documented there.
//! - `prefetch` (private): small files a listing shows are stored in the kernel's
//!   cache by the lookup that must precede any use of them, so reading a listed file
//!   costs one round trip instead of two or three.
//! - [`Mount::stats`]: counts of reads served and files prefetched.
//!
//! ```no_run
//! use disorderfs::{Options, Order, mount};
//! let opts = Options { order: Order::Shuffle { seed: 42 }, ..Options::default() };
//! let m = mount("/src".as_ref(), "/mnt".as_ref(), &opts)?;
//! // ... run the build in /mnt ...
//! m.unmount()?;
//! # Ok::<(), disorderfs::Error>(())
//! ```

mod error;
mod fdcache;
mod fs;
mod inode;
mod mount;
pub mod order;
mod prefetch;
mod stats;
mod sys;

pub use error::Error;
pub use mount::{Mount, Options, mount};
pub use order::Order;
pub use stats::Stats;
