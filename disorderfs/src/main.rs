//! `disorderfs [OPTIONS] ROOTDIR MOUNTPOINT`: the standalone binary.
//!
//! Accepts Debian's disorderfs options, with Debian's defaults (reverse order,
//! `--pad-blocks=1`), so existing scripts can switch to it, plus `--seed N`
//! (which turns shuffling on) to replay the orders of an earlier run. Like Debian's,
//! it goes to the background once the mount is live unless `-f` is given; it
//! unmounts on SIGINT, SIGTERM or SIGHUP, and exits when unmounted from outside.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use disorderfs::{Mount, Options, Order};

fn yes_no(s: &str) -> Result<bool, String> {
    match s {
        "yes" | "y" | "true" | "1" | "on" => Ok(true),
        "no" | "n" | "false" | "0" | "off" => Ok(false),
        other => Err(format!("expected yes or no, got {other:?}")),
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "disorderfs",
    version,
    about = "Mirror ROOTDIR at MOUNTPOINT with directory entries in a chosen order",
    after_help = "Order: --shuffle-dirents wins over --sort/--reverse; --sort-dirents with \
                  --reverse-dirents gives reverse-sorted order. Unmount with \
                  `fusermount3 -u MOUNTPOINT` or by signalling the process."
)]
struct Cli {
    /// Directory to mirror.
    rootdir: PathBuf,
    /// Empty directory to mount on.
    mountpoint: PathBuf,
    /// Shuffle directory entries (seeded; see --seed).
    #[arg(long, value_name = "yes|no", value_parser = yes_no, action = clap::ArgAction::Set, default_value = "no")]
    shuffle_dirents: bool,
    /// Reverse directory entries (Debian's default).
    #[arg(long, value_name = "yes|no", value_parser = yes_no, action = clap::ArgAction::Set, default_value = "yes")]
    reverse_dirents: bool,
    /// Sort directory entries by name.
    #[arg(long, value_name = "yes|no", value_parser = yes_no, action = clap::ArgAction::Set, default_value = "no")]
    sort_dirents: bool,
    /// Seed for the shuffle; implies --shuffle-dirents=yes. Random (and printed) if omitted.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Add N to every file's st_blocks.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pad_blocks: u64,
    /// Let all users use the mount, creating files as the caller (needs root).
    #[arg(long, value_name = "yes|no", value_parser = yes_no, action = clap::ArgAction::Set, default_value = "no")]
    multi_user: bool,
    /// Accepted for compatibility; locks are always handled by the kernel for the mount.
    #[arg(long, value_name = "yes|no", value_parser = yes_no, action = clap::ArgAction::Set, default_value = "no")]
    share_locks: bool,
    /// Use kernel FUSE passthrough for open files when permitted (root, initial namespace);
    /// `no` gives the no-open mode used inside user namespaces.
    #[arg(long, value_name = "yes|no", value_parser = yes_no, action = clap::ArgAction::Set, default_value = "yes")]
    passthrough: bool,
    /// Without passthrough, let the kernel open and close files without asking the
    /// daemon (fastest without passthrough); `no` opens each file.
    #[arg(long, value_name = "yes|no", value_parser = yes_no, action = clap::ArgAction::Set, default_value = "yes")]
    no_open: bool,
    /// Without passthrough, let the kernel cache writes and send them in batches
    /// (fast); the kernel then trusts its own sizes and mtimes of cached files, so
    /// changes made to ROOTDIR behind the mount's back may go unseen. `no` writes
    /// through at once.
    #[arg(long, value_name = "yes|no", value_parser = yes_no, action = clap::ArgAction::Set, default_value = "yes")]
    writeback_cache: bool,
    /// Without passthrough, store files of up to BYTES that a listing shows in the
    /// kernel's cache at their first lookup, so reading them costs no READ round trip
    /// (a listed file that is only stat'ed then pays that lookup); 0 turns it off.
    #[arg(long, value_name = "BYTES", default_value_t = Options::default().prefetch_max)]
    prefetch_max: u64,
    /// Seconds the kernel may cache names and attributes.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    cache_timeout: f64,
    /// Mount options, comma-separated (ro, noexec, allow_other, nonempty, ...).
    #[arg(short = 'o', value_name = "OPTS")]
    options: Vec<String>,
    /// Stay in the foreground.
    #[arg(short = 'f')]
    foreground: bool,
    /// Single-threaded operation (the same as --threads 1).
    #[arg(short = 's')]
    single_thread: bool,
    /// Threads serving requests.
    #[arg(long, value_name = "N", default_value_t = Options::default().threads as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
    /// Debug: implies -f.
    #[arg(short = 'd')]
    debug: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

impl Cli {
    fn order(&self) -> (Order, Option<u64>) {
        if self.shuffle_dirents || self.seed.is_some() {
            let seed = self.seed.unwrap_or_else(rand::random);
            return (Order::Shuffle { seed }, Some(seed));
        }
        let order = match (self.sort_dirents, self.reverse_dirents) {
            (true, true) => Order::ReverseSort,
            (true, false) => Order::Sort,
            (false, true) => Order::Reverse,
            (false, false) => Order::AsIs,
        };
        (order, None)
    }

    fn options(&self, order: Order) -> Result<Options> {
        if !self.cache_timeout.is_finite() || self.cache_timeout < 0.0 {
            bail!("--cache-timeout must be a number of seconds >= 0");
        }
        Ok(Options {
            order,
            pad_blocks: self.pad_blocks,
            multi_user: self.multi_user,
            cache_ttl: Duration::from_secs_f64(self.cache_timeout),
            threads: if self.single_thread {
                1
            } else {
                usize::from(self.threads)
            },
            passthrough: self.passthrough,
            no_open: self.no_open,
            writeback_cache: self.writeback_cache,
            prefetch_max: self.prefetch_max,
            mount_options: self.options.clone(),
            ..Options::default()
        })
    }
}

/// Blocks the termination signals in this thread (and in the serving threads, which
/// inherit the mask), so that only `wait` receives them.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local, zero-initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Serves until a termination signal arrives or the mount is taken away.
fn wait(mount: &Mount, set: &libc::sigset_t) {
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: 200_000_000,
    };
    while mount.is_serving() {
        // SAFETY: `set` is a valid signal set and `timeout` a valid timespec.
        let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &timeout) };
        if sig > 0 {
            return;
        }
    }
}

/// Forks: the parent waits until the child reports the mount live (or failed) and
/// exits with that result; the child carries on in a new session.
fn daemonize() -> Result<Option<OwnedFd>> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 returns.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("creating a pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are ours alone.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the process is single-threaded here (nothing is mounted or spawned yet).
    match unsafe { libc::fork() } {
        -1 => bail!("fork: {}", std::io::Error::last_os_error()),
        0 => {
            drop(read_end);
            // SAFETY: setsid in the fresh child cannot break anything.
            unsafe { libc::setsid() };
            Ok(Some(write_end))
        }
        _ => {
            drop(write_end);
            let mut report = String::new();
            std::fs::File::from(read_end).read_to_string(&mut report)?;
            match report.strip_prefix("ok") {
                Some(_) => std::process::exit(0),
                None if report.is_empty() => bail!("the background process died before mounting"),
                None => {
                    eprintln!("{}", report.trim_end());
                    std::process::exit(1);
                }
            }
        }
    }
}

/// Points stdin, stdout and stderr at /dev/null, as a daemon should.
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which this process owns.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let (order, seed) = cli.order();
    let opts = cli.options(order)?;
    let foreground = cli.foreground || cli.debug;

    let notify = if foreground { None } else { daemonize()? };
    let set = block_signals();
    let mounted = disorderfs::mount(&cli.rootdir, &cli.mountpoint, &opts);
    let mount = match (mounted, notify) {
        (Ok(m), notify) => {
            if !cli.quiet {
                let how = match seed {
                    Some(s) => format!("shuffled with seed {s} (replay with --seed {s})"),
                    None => format!("order {order:?}"),
                };
                eprintln!(
                    "disorderfs: {} mounted on {}, {how}",
                    cli.rootdir.display(),
                    cli.mountpoint.display()
                );
            }
            if let Some(fd) = notify {
                std::fs::File::from(fd).write_all(b"ok")?;
                detach_stdio();
            }
            m
        }
        (Err(e), Some(fd)) => {
            let _ = std::fs::File::from(fd).write_all(format!("disorderfs: {e}").as_bytes());
            std::process::exit(1);
        }
        (Err(e), None) => return Err(e).context("disorderfs"),
    };
    wait(&mount, &set);
    mount.unmount().context("disorderfs")?;
    Ok(())
}
