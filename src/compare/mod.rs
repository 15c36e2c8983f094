//! Comparison: decides, for one artifact path that differs between two builds, where and why
//! the two files differ, as a tree of [`Difference`]s (a small diffoscope).
//!
//! An ordered registry of comparators ([`registry`]) looks at both files' magic bytes; the
//! first comparator that recognises both compares them. Containers (gzip, xz, zstd, tar, zip,
//! ar) unpack their members in memory, within [`Limits`], and hand each member back to the
//! registry, so a `.deb` is compared down to the line of a text file inside `data.tar.xz`.
//! When nothing recognises a file, or a comparator fails on malformed input, the byte-level
//! fallback says why it fell back and where the first difference is.
//!
//! The leaves' text always carries the differing values themselves (both timestamps, both
//! hostnames): the attribution stage searches it for the sentinel values of each variation.

mod ar;
mod archive;
mod bytes;
mod compressed;
mod diff;
mod difference;
mod elf;
mod metadata;
mod registry;
mod tar;
#[cfg(test)]
mod test_support;
mod text;
mod zip;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use difference::Difference;

/// Bounds that keep a comparison fast and its report readable, whatever the artifacts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Unified-diff lines kept per leaf; the rest is counted in a truncation note.
    pub max_diff_lines: usize,
    /// Bytes of unified diff kept per leaf.
    pub max_diff_bytes: usize,
    /// How many containers deep members are unpacked (a `.deb` needs 2: ar, then tar.xz).
    pub max_depth: usize,
    /// Largest file or member (after decompression) unpacked into memory; larger ones are
    /// only compared byte by byte.
    pub max_member_size: u64,
    /// Differing members (or sections) reported per container; the rest are counted.
    pub max_children: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_diff_lines: 60,
            max_diff_bytes: 16 * 1024,
            max_depth: 8,
            max_member_size: 128 * 1024 * 1024,
            max_children: 50,
        }
    }
}

/// Why two artifacts could not be compared at all. Malformed contents are never an error:
/// they are reported inside the [`Difference`] and compared as bytes.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(
        "cannot read {path} to compare it: {source}; check that the build output still exists and is readable"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl CompareError {
    /// For `map_err` on any I/O of `path`: every failure to read an artifact is reported alike.
    fn reading(path: &Path) -> impl FnOnce(std::io::Error) -> CompareError + '_ {
        move |source| CompareError::Read {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Compares two files that were found at the same artifact path in two builds.
/// Returns `None` when the contents are identical.
pub fn compare_files(
    control: &Path,
    experiment: &Path,
    display_path: &str,
    limits: &Limits,
) -> Result<Option<Difference>, CompareError> {
    let size = |path: &Path| {
        std::fs::metadata(path)
            .map(|m| m.len())
            .map_err(CompareError::reading(path))
    };
    let (control_size, experiment_size) = (size(control)?, size(experiment)?);
    if control_size > limits.max_member_size || experiment_size > limits.max_member_size {
        return compare_large_files(control, experiment, display_path, limits);
    }
    let control_data = read_file(control)?;
    let experiment_data = read_file(experiment)?;
    let context = registry::Context::new(limits);
    Ok(registry::compare(
        &control_data,
        &experiment_data,
        display_path,
        &context,
    ))
}

/// Heuristic used here and elsewhere: valid UTF-8 without NUL bytes is text.
pub fn is_probably_text(bytes: &[u8]) -> bool {
    text::not_text_reason(bytes).is_none()
}

fn read_file(path: &Path) -> Result<Vec<u8>, CompareError> {
    std::fs::read(path).map_err(CompareError::reading(path))
}

/// Files too big to hold in memory are streamed side by side to find the first difference.
fn compare_large_files(
    control: &Path,
    experiment: &Path,
    display_path: &str,
    limits: &Limits,
) -> Result<Option<Difference>, CompareError> {
    let open = |path: &Path| File::open(path).map_err(CompareError::reading(path));
    let (mut a, mut b) = (open(control)?, open(experiment)?);
    let mut offset: u64 = 0;
    let (mut a_len, mut b_len) = (0u64, 0u64);
    let mut first_difference = None;
    let mut a_buf = vec![0u8; 1 << 16];
    let mut b_buf = vec![0u8; 1 << 16];
    loop {
        let na = read_full(&mut a, &mut a_buf).map_err(CompareError::reading(control))?;
        let nb = read_full(&mut b, &mut b_buf).map_err(CompareError::reading(experiment))?;
        a_len += na as u64;
        b_len += nb as u64;
        if first_difference.is_none() {
            let common = na.min(nb);
            if let Some(i) = (0..common).find(|&i| a_buf[i] != b_buf[i]) {
                first_difference = Some(offset + i as u64);
            } else if na != nb {
                first_difference = Some(offset + common as u64);
            }
        }
        offset += na.max(nb) as u64;
        if na == 0 && nb == 0 {
            break;
        }
    }
    let Some(first) = first_difference else {
        return Ok(None);
    };
    Ok(Some(Difference::leaf(
        display_path,
        "bytes",
        Some(format!(
            "fell back to bytes: too large to compare in detail (more than {} bytes); first difference at offset {first} of {a_len}/{b_len} bytes",
            limits.max_member_size
        )),
        None,
    )))
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::test_support::{Scratch, fallback_reason};

    #[test]
    fn identical_files_are_not_a_difference() {
        let s = Scratch::new();
        s.write("a/t", "same\n");
        s.write("b/t", "same\n");
        s.write_bytes("a/bin", b"\x7fELF\0\0garbage");
        s.write_bytes("b/bin", b"\x7fELF\0\0garbage");
        assert_eq!(s.compare("a/t", "b/t", "t"), None);
        assert_eq!(s.compare("a/bin", "b/bin", "bin"), None);
    }

    #[test]
    fn long_text_diffs_are_truncated() {
        let s = Scratch::new();
        let a: String = (0..500).map(|i| format!("entry {i} at 10:00\n")).collect();
        let b: String = (0..500).map(|i| format!("entry {i} at 11:00\n")).collect();
        s.write("a/log", &a);
        s.write("b/log", &b);
        let limits = Limits {
            max_diff_lines: 20,
            ..Limits::default()
        };
        let d = s.compare_within("a/log", "b/log", "log", &limits).unwrap();
        let diff = d.unified_diff.unwrap();
        assert_eq!(diff.lines().count(), 21, "{diff}");
        assert!(diff.contains("-entry 0 at 10:00\n"));
        assert!(
            diff.ends_with(
                "[… truncated: 981 more lines not shown (limits: 20 lines, 16384 bytes) …]\n"
            ),
            "{diff}"
        );
    }

    #[test]
    fn files_over_the_size_limit_are_streamed() {
        let s = Scratch::new();
        let a = vec![7u8; 300_000];
        let mut b = a.clone();
        b[200_001] = 8;
        b.push(9);
        s.write_bytes("a/big", &a);
        s.write_bytes("b/big", &b);
        let limits = Limits {
            max_member_size: 1000,
            ..Limits::default()
        };
        let d = s.compare_within("a/big", "b/big", "big", &limits).unwrap();
        assert_eq!(
            d.comment.as_deref(),
            Some(
                "fell back to bytes: too large to compare in detail (more than 1000 bytes); \
                 first difference at offset 200001 of 300000/300001 bytes"
            )
        );
        s.write_bytes("b/big", &a);
        assert_eq!(s.compare_within("a/big", "b/big", "big", &limits), None);
    }

    #[test]
    fn unreadable_file_is_an_error_that_names_it() {
        let s = Scratch::new();
        s.write("a", "x");
        let err =
            compare_files(&s.path("a"), &s.path("missing"), "a", &Limits::default()).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("missing"), "{message}");
        assert!(
            message.contains("check that the build output still exists"),
            "{message}"
        );
    }

    #[test]
    fn text_against_binary_says_the_formats_differ() {
        let s = Scratch::new();
        s.write("a/f", "hello world\n");
        s.write_bytes("b/f", b"\x1f\x8b\x08garbage");
        let d = s.compare("a/f", "b/f", "f").unwrap();
        let reason = fallback_reason(&d);
        assert!(
            reason.starts_with("formats differ: control is text, experiment is gzip;"),
            "{reason}"
        );
    }
}
