//! Test helpers: a scratch directory that removes itself, and running system tools in it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::compare::{Difference, Limits, compare_files};

pub(crate) struct Scratch(tempfile::TempDir);

impl Scratch {
    pub(crate) fn new() -> Self {
        Scratch(tempfile::tempdir().expect("create a temporary directory"))
    }

    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.0.path().join(relative)
    }

    pub(crate) fn write(&self, relative: &str, text: &str) {
        self.write_bytes(relative, text.as_bytes());
    }

    pub(crate) fn write_bytes(&self, relative: &str, data: &[u8]) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }

    pub(crate) fn compare(
        &self,
        control: &str,
        experiment: &str,
        display: &str,
    ) -> Option<Difference> {
        self.compare_within(control, experiment, display, &Limits::default())
    }

    pub(crate) fn compare_within(
        &self,
        control: &str,
        experiment: &str,
        display: &str,
        limits: &Limits,
    ) -> Option<Difference> {
        compare_files(&self.path(control), &self.path(experiment), display, limits)
            .expect("both files are readable")
    }
}

/// The leaves of `d`, failing with the whole tree unless there are `count`.
pub(crate) fn leaves(d: &Difference, count: usize) -> Vec<&Difference> {
    let leaves: Vec<&Difference> = d.leaves().collect();
    assert_eq!(leaves.len(), count, "{}", d.render_text(0));
    leaves
}

/// Why `d` fell back to bytes (its comment after `fell back to bytes: `); panics when it
/// did not fall back, so a test of a fallback cannot pass on a detailed comparison.
pub(crate) fn fallback_reason(d: &Difference) -> &str {
    assert_eq!(d.comparator, "bytes", "{}", d.render_text(0));
    let comment = d.comment.as_deref().expect("a byte fallback says why");
    comment
        .strip_prefix("fell back to bytes: ")
        .unwrap_or_else(|| panic!("fallback comment has no reason prefix: {comment}"))
}

/// Runs `program` in `dir` and panics with its output unless it succeeds.
pub(crate) fn run(dir: impl AsRef<Path>, program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir.as_ref())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
