//! The fallback for anything no comparator understands (and for ELF sections): where the
//! first differing byte is, and the evidence a reader needs to see why.
//!
//! Binaries usually differ because of an embedded string (a date, a path, a hostname), so
//! the `strings`-style printable runs of both sides are diffed first; only when those are
//! equal does a hex dump around the first difference stand in.

use crate::compare::diff::unified_diff;
use crate::compare::registry::Context;
use crate::compare::{Difference, Limits};

/// Shortest printable run that counts as a string, as in strings(1).
const MIN_STRING_LEN: usize = 4;
/// Blobs up to this size get a complete hex dump; larger ones a window.
const FULL_HEX_DUMP_MAX: usize = 512;
/// Hex dump lines shown before the one holding the first difference.
const HEX_LINES_BEFORE: usize = 2;
/// Hex dump lines shown from the first difference on.
const HEX_LINES_FROM: usize = 4;
const HEX_WIDTH: usize = 16;

/// The fallback leaf: says why nothing better was possible and where the bytes differ.
pub(crate) fn compare(
    control: &[u8],
    experiment: &[u8],
    source: &str,
    reason: &str,
    context: &Context,
) -> Difference {
    binary_leaf(
        control,
        experiment,
        source,
        "bytes",
        &format!("fell back to bytes: {reason}"),
        context.limits,
    )
}

/// The node for a file whose `children` say why it differs from the other; when none do
/// (padding, a compression level), a leaf with `unexplained` and the byte evidence stands in,
/// so a differing file never reads as an empty, unexplained node.
pub(crate) fn explained_node(
    control: &[u8],
    experiment: &[u8],
    source: &str,
    comparator: &str,
    mut children: Vec<Difference>,
    unexplained: &str,
    limits: &Limits,
) -> Difference {
    if children.is_empty() {
        children.push(binary_leaf(
            control,
            experiment,
            source,
            comparator,
            unexplained,
            limits,
        ));
    }
    Difference::node(source, comparator, None, children)
}

/// A leaf describing two differing binary blobs: `what` plus the first difference, with a
/// diff of their printable strings, or a hex dump when the strings are equal.
pub(crate) fn binary_leaf(
    control: &[u8],
    experiment: &[u8],
    source: &str,
    comparator: &str,
    what: &str,
    limits: &Limits,
) -> Difference {
    let first = first_difference(control, experiment);
    let comment = format!(
        "{what}; first difference at offset {first} of {}/{} bytes",
        control.len(),
        experiment.len()
    );
    let small = control.len().max(experiment.len()) <= FULL_HEX_DUMP_MAX;
    let strings_diff = || {
        unified_diff(&strings(control), &strings(experiment), 1, limits)
            .map(|d| format!("printable strings that differ:\n{d}"))
    };
    // A small blob that is mostly binary (a build ID, a header) reads best as a hex dump.
    let diff = if small && !mostly_strings(control) && !mostly_strings(experiment) {
        hex_diff(control, experiment, first, limits)
    } else {
        strings_diff().or_else(|| hex_diff(control, experiment, first, limits))
    };
    Difference::leaf(source, comparator, Some(comment), diff)
}

pub(crate) fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Runs of printable ASCII at least [`MIN_STRING_LEN`] long, like strings(1).
pub(crate) fn strings(data: &[u8]) -> Vec<&str> {
    data.split(|&b| !(b == b'\t' || (0x20..0x7f).contains(&b)))
        .filter(|run| run.len() >= MIN_STRING_LEN)
        // Printable ASCII is always UTF-8.
        .filter_map(|run| std::str::from_utf8(run).ok())
        .collect()
}

fn mostly_strings(data: &[u8]) -> bool {
    let in_strings: usize = strings(data).iter().map(|s| s.len()).sum();
    in_strings * 2 >= data.len()
}

fn hex_diff(a: &[u8], b: &[u8], first: usize, limits: &Limits) -> Option<String> {
    let (from, to) = if a.len().max(b.len()) <= FULL_HEX_DUMP_MAX {
        (0, usize::MAX)
    } else {
        let line = first / HEX_WIDTH;
        (
            line.saturating_sub(HEX_LINES_BEFORE) * HEX_WIDTH,
            (line + HEX_LINES_FROM) * HEX_WIDTH,
        )
    };
    unified_diff(&hex_dump(a, from, to), &hex_dump(b, from, to), 1, limits)
        .map(|d| format!("hex dump:\n{d}"))
}

fn hex_dump(data: &[u8], from: usize, to: usize) -> Vec<String> {
    let end = to.min(data.len());
    let start = from.min(end);
    data[start..end]
        .chunks(HEX_WIDTH)
        .enumerate()
        .map(|(i, chunk)| {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let ascii: String = chunk
                .iter()
                .map(|&b| {
                    if (0x20..0x7f).contains(&b) {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            format!(
                "{:08x}: {:<width$} {ascii}",
                start + i * HEX_WIDTH,
                hex.join(" "),
                width = HEX_WIDTH * 3 - 1
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::registry;

    fn compare_blobs(a: &[u8], b: &[u8]) -> Difference {
        let limits = Limits::default();
        registry::compare(a, b, "blob", &Context::new(&limits)).unwrap()
    }

    #[test]
    fn binary_with_embedded_strings_shows_the_differing_strings() {
        let mut a = vec![0u8, 1, 2, 3, 0xff];
        a.extend_from_slice(b"compiled at 12:00:01 on builder-a\0\x01\x02version 1.0\0");
        let mut b = a.clone();
        let at = b.windows(8).position(|w| w == b"12:00:01").unwrap();
        b[at..at + 8].copy_from_slice(b"23:59:59");
        let d = compare_blobs(&a, &b);
        assert_eq!(d.comparator, "bytes");
        let comment = d.comment.as_deref().unwrap();
        assert!(
            comment.starts_with("fell back to bytes: contains a NUL byte at offset 0;"),
            "{comment}"
        );
        assert!(comment.ends_with(&format!("first difference at offset {at} of 53/53 bytes")));
        let diff = d.unified_diff.unwrap();
        assert!(
            diff.contains("-compiled at 12:00:01 on builder-a\n"),
            "{diff}"
        );
        assert!(
            diff.contains("+compiled at 23:59:59 on builder-a\n"),
            "{diff}"
        );
    }

    #[test]
    fn binary_without_strings_shows_a_hex_dump() {
        let a: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let mut b = a.clone();
        b[2000] = 0xaa;
        let d = compare_blobs(&a, &b);
        assert!(
            d.comment
                .unwrap()
                .ends_with("first difference at offset 2000 of 4096/4096 bytes")
        );
        let diff = d.unified_diff.unwrap();
        assert!(diff.starts_with("hex dump:\n"), "{diff}");
        assert!(diff.contains("-000007d0: d0 d1"), "{diff}");
        assert!(diff.contains("+000007d0: aa d1"), "{diff}");
        assert!(diff.lines().count() < 12, "{diff}");
    }

    #[test]
    fn a_prefix_differs_at_the_end_of_the_shorter() {
        assert_eq!(first_difference(b"abc", b"abcd"), 3);
        let d = compare_blobs(b"\xffabc", b"\xffabcd");
        assert!(
            d.comment
                .unwrap()
                .contains("first difference at offset 4 of 4/5 bytes")
        );
    }
}
