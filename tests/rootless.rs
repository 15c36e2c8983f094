//! The rootless subset: vary-build run by an unprivileged user must still
//! apply every variation (through user namespaces), clean up, and refuse
//! what that user may not read.
//!
//! These tests run as root and switch to the user named by
//! `VARY_BUILD_TEST_USER` with `runuser`; .ci/run creates that user. Without
//! it they fail rather than pass by skipping.

// Each test binary uses a different part of the shared harness.
#[allow(dead_code)]
mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{User, Workdir, assert_clean_under_all, assert_leak_found, processes_with};

macro_rules! rootless_variation_tests {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let user = User::from_env();
            let name = stringify!($name);
            let wd = Workdir::new(concat!("rootless-", stringify!($name)), name);
            let out = wd.vary_build().run_as(&user).vary(&format!("@{name}")).run();
            assert_leak_found(&out, name);
        }
    )*};
}

rootless_variation_tests!(
    environment,
    build_path,
    kernel,
    aslr,
    num_cpus,
    time,
    home,
    locales,
    exec_path,
    timezone,
    umask,
    domain_host,
    user_group,
    fileordering,
);

#[test]
fn clean_project_is_reproducible_under_every_variation() {
    let user = User::from_env();
    let wd = Workdir::new("rootless-clean", "clean");
    let out = wd.vary_build().run_as(&user).vary("all").run();
    assert_clean_under_all(&out);
}

#[test]
fn background_processes_are_gone_after_a_normal_exit() {
    let user = User::from_env();
    let mut wd = Workdir::new("rootless-background", "processes");
    let marker = wd.marker();
    let out = wd.vary_build().run_as(&user).run();
    out.assert_exit(0).assert_builds_succeeded();
    let left = processes_with(&marker);
    out.check(left.is_empty(), || {
        format!("processes started by the build are still running: {left:?}")
    });
}

#[test]
fn unreadable_source_root_is_a_usage_error() {
    let user = User::from_env();
    let wd = Workdir::new("rootless-unreadable", "clean");
    // Only src/ and tmp/ are handed to the user; this stays root's.
    let locked = wd.root().join("locked");
    common::copy_tree(&wd.source(), &locked);
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).unwrap();
    let out = wd
        .vary_build()
        .run_as(&user)
        .source_root(Some(&locked))
        .vary("@umask")
        .run();
    out.assert_exit(2).assert_stderr_contains("locked");
}
