//! Integration tests: run the real vary-build binary on fixture projects
//! (tests/fixtures/) and check exit codes, reports, stored files, and that
//! nothing is left behind. The harness is tests/common/mod.rs; the rootless
//! subset is tests/rootless.rs.

// Each test binary uses a different part of the shared harness.
#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod attribution;
mod bad_input;
mod processes;
mod report;
mod tree;
mod variations;
