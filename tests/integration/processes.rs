//! Everything a build starts ends with it: background jobs and daemons after
//! a normal exit, the whole tree on a timeout, on Ctrl-C, and even when
//! vary-build itself is killed.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::common::{Workdir, list_dir, mounts_under, processes_with, wait_until};

/// Time for a started build to fork its sleepers: generous, a loaded CI
/// machine copies and sets up namespaces slowly.
const START_LIMIT: Duration = Duration::from_secs(120);

#[track_caller]
fn assert_no_marker_processes(marker: &str, out: &crate::common::Outcome) {
    let left = processes_with(marker);
    out.check(left.is_empty(), || {
        format!("processes started by the build are still running: {left:?}")
    });
}

#[test]
fn background_processes_are_gone_after_a_normal_exit() {
    let mut wd = Workdir::new("background", "processes");
    let marker = wd.marker();
    let out = wd.vary_build().run();
    out.assert_exit(0).assert_builds_succeeded();
    assert_no_marker_processes(&marker, &out);
}

#[test]
fn timeout_kills_the_whole_build() {
    let mut wd = Workdir::new("timeout", "processes");
    let marker = wd.marker();
    let out = wd
        .vary_build()
        .vary("@umask")
        .args(["--timeout", "2s"])
        .command(["sh", "build.sh", "hang"])
        .run();
    out.assert_exit(3);
    let stderr = out.stderr.to_lowercase();
    out.check(
        stderr.contains("timed out") || stderr.contains("timeout"),
        || "expected stderr to say the build timed out".into(),
    );
    assert_no_marker_processes(&marker, &out);
}

#[test]
fn sigint_stops_everything_and_cleans_up() {
    let mut wd = Workdir::new("sigint", "processes");
    let marker = wd.marker();
    let mut running = wd
        .vary_build()
        .vary("@umask")
        .command(["sh", "build.sh", "hang"])
        .spawn();
    let started = wait_until(START_LIMIT, || processes_with(&marker).len() >= 2);
    if !started {
        running.signal(Signal::SIGKILL);
        let status = running.wait(START_LIMIT);
        running
            .finish(status)
            .fail("the build never started its sleepers");
    }
    running.signal(Signal::SIGINT);
    let status = running.wait(Duration::from_secs(60));
    let out = running.finish(status);
    out.assert_exit(130);
    assert_no_marker_processes(&marker, &out);
    out.check_invariants();
}

#[test]
fn sigkill_of_vary_build_leaves_no_process_or_mount() {
    let mut wd = Workdir::new("sigkill", "processes");
    let marker = wd.marker();
    let root = wd.root().to_path_buf();
    let mounts_before = mounts_under(&root);
    // Every variation, so that every kind of mount and namespace is in use.
    let mut running = wd
        .vary_build()
        .vary("all")
        .command(["sh", "build.sh", "hang"])
        .spawn();
    let started = wait_until(START_LIMIT, || processes_with(&marker).len() >= 2);
    if !started {
        running.signal(Signal::SIGKILL);
        let status = running.wait(START_LIMIT);
        running
            .finish(status)
            .fail("the build never started its sleepers");
    }
    // Let the other build start too, if it runs concurrently.
    std::thread::sleep(Duration::from_secs(1));
    running.signal(Signal::SIGKILL);
    let status = running.wait(Duration::from_secs(10));
    let gone = wait_until(Duration::from_secs(5), || {
        processes_with(&marker).is_empty()
    });
    let left = processes_with(&marker);
    let unmounted = wait_until(Duration::from_secs(5), || {
        mounts_under(&root) == mounts_before
    });
    let mounts = mounts_under(&root);
    let out = running.finish(status);
    out.check(gone, || {
        format!("5 s after vary-build was killed, build processes remain: {left:?}")
    });
    out.check(unmounted, || {
        format!("5 s after vary-build was killed, mounts remain: {mounts:?}")
    });
    // The killed run could not remove its run directory; the next run sweeps it (and the
    // harness checks that TMPDIR is empty afterwards).
    let stale = list_dir(&wd.tmpdir());
    out.check(!stale.is_empty(), || {
        "the killed run left no run directory?".into()
    });
    let next = wd.vary_build().vary("@umask").command(["true"]).run();
    next.assert_exit(0)
        .assert_stderr_contains("left by a vary-build that was killed");
}
