//! Bounded unified diffs of line lists, the evidence most leaves carry.
//!
//! Bounds matter twice: a regenerated file can differ on every one of its million lines, and
//! a minified file can be one line of a megabyte. Lines past the limits are counted, not
//! shown; a long changed line is cut down to a window around the part that changed, because
//! that part (a timestamp, a path) is what the attribution stage looks for.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use similar::{Algorithm, DiffTag, capture_diff_slices_deadline, group_diff_ops};

use crate::compare::Limits;

/// Lines of unchanged context around each change, as in `diff -u`.
pub(crate) const CONTEXT_LINES: usize = 3;
/// Beyond this, Myers gives up on the optimal diff and returns a correct but coarser one.
const DIFF_TIMEOUT: Duration = Duration::from_secs(2);
/// Lines longer than this (in bytes) are shown as a window around their change.
const LONG_LINE: usize = 240;
/// Unchanged bytes kept on each side of the changed part of a long line.
const WINDOW: usize = 80;

/// A unified diff (hunks only, no file header) of `old` against `new`, bounded by `limits`;
/// `None` when the lists are equal.
pub(crate) fn unified_diff<S: AsRef<str>>(
    old: &[S],
    new: &[S],
    context: usize,
    limits: &Limits,
) -> Option<String> {
    let old: Vec<&str> = old.iter().map(AsRef::as_ref).collect();
    let new: Vec<&str> = new.iter().map(AsRef::as_ref).collect();
    let deadline = Instant::now() + DIFF_TIMEOUT;
    let ops = capture_diff_slices_deadline(Algorithm::Myers, &old, &new, Some(deadline));
    let groups = group_diff_ops(ops, context);
    if groups.is_empty() {
        return None;
    }
    let mut out = BoundedText::new(limits);
    for group in &groups {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        out.push_raw(format!(
            "@@ -{} +{} @@",
            hunk_range(first.old_range().start, last.old_range().end),
            hunk_range(first.new_range().start, last.new_range().end),
        ));
        for op in group {
            let (tag, old_range, new_range) = op.as_tag_tuple();
            match tag {
                DiffTag::Equal => old_range.for_each(|i| out.push(' ', old[i], None)),
                DiffTag::Delete => old_range.for_each(|i| out.push('-', old[i], None)),
                DiffTag::Insert => new_range.for_each(|i| out.push('+', new[i], None)),
                DiffTag::Replace => {
                    // Pair the n-th removed line with the n-th added one to find what changed.
                    for (k, i) in old_range.clone().enumerate() {
                        out.push('-', old[i], new.get(new_range.start + k).copied());
                    }
                    for (k, i) in new_range.enumerate() {
                        out.push('+', new[i], old.get(old_range.start + k).copied());
                    }
                }
            }
        }
    }
    Some(out.finish())
}

fn hunk_range(start: usize, end: usize) -> String {
    match end - start {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        len => format!("{},{len}", start + 1),
    }
}

/// Text that stops growing at the line and byte limits and says how much it left out.
pub(crate) struct BoundedText {
    text: String,
    lines: usize,
    omitted: usize,
    max_lines: usize,
    max_bytes: usize,
}

impl BoundedText {
    pub(crate) fn new(limits: &Limits) -> Self {
        BoundedText {
            text: String::new(),
            lines: 0,
            omitted: 0,
            max_lines: limits.max_diff_lines,
            max_bytes: limits.max_diff_bytes,
        }
    }

    /// Adds a diff line: `marker` then `line`, shortened when long (see [`elide`]).
    pub(crate) fn push(&mut self, marker: char, line: &str, counterpart: Option<&str>) {
        if self.is_full() {
            self.omitted += 1;
            return;
        }
        let line = elide(line, counterpart);
        self.push_raw(format!("{marker}{line}"));
    }

    pub(crate) fn push_raw(&mut self, line: String) {
        if self.is_full() || self.text.len() + line.len() + 1 > self.max_bytes {
            self.omitted += 1;
            self.lines = self.lines.max(self.max_lines);
            return;
        }
        self.text.push_str(&line);
        self.text.push('\n');
        self.lines += 1;
    }

    fn is_full(&self) -> bool {
        self.lines >= self.max_lines
    }

    pub(crate) fn finish(mut self) -> String {
        if self.omitted > 0 {
            self.text.push_str(&format!(
                "[… truncated: {} more lines not shown (limits: {} lines, {} bytes) …]\n",
                self.omitted, self.max_lines, self.max_bytes
            ));
        }
        self.text
    }
}

/// Shortens a long line to a window around where it differs from `counterpart` (or to its
/// start when there is none), marking cuts with `…`.
pub(crate) fn elide<'a>(line: &'a str, counterpart: Option<&str>) -> Cow<'a, str> {
    if line.len() <= LONG_LINE {
        return Cow::Borrowed(line);
    }
    let (start, end) = match counterpart {
        Some(other) => {
            let prefix = common_prefix_len(line, other);
            let suffix = common_suffix_len(&line[prefix..], &other[prefix.min(other.len())..]);
            let start = prefix.saturating_sub(WINDOW);
            let end = (line.len() - suffix + WINDOW).min(line.len());
            (start, end.min(start + 2 * LONG_LINE))
        }
        None => (0, LONG_LINE),
    };
    let start = char_boundary_at_or_before(line, start);
    let end = char_boundary_at_or_before(line, end).max(start);
    Cow::Owned(format!(
        "{}{}{} [line of {} bytes shortened]",
        if start > 0 { "…" } else { "" },
        &line[start..end],
        if end < line.len() { "…" } else { "" },
        line.len()
    ))
}

fn common_prefix_len(a: &str, b: &str) -> usize {
    let n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    char_boundary_at_or_before(a, n)
}

fn common_suffix_len(a: &str, b: &str) -> usize {
    let n = a
        .bytes()
        .rev()
        .zip(b.bytes().rev())
        .take_while(|(x, y)| x == y)
        .count();
    // Shrink until the suffix starts on a character boundary.
    (0..=n)
        .rev()
        .find(|&k| a.is_char_boundary(a.len() - k))
        .unwrap_or(0)
}

fn char_boundary_at_or_before(s: &str, index: usize) -> usize {
    let mut i = index.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_has_hunk_header_context_and_both_sides() {
        let old = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let new = ["a", "b", "c", "d", "E", "f", "g", "h"];
        let diff = unified_diff(&old, &new, 3, &Limits::default()).unwrap();
        assert_eq!(diff, "@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n");
    }

    #[test]
    fn equal_lists_have_no_diff() {
        assert_eq!(unified_diff(&["x"], &["x"], 3, &Limits::default()), None);
    }

    #[test]
    fn long_diffs_are_truncated_with_a_note() {
        let old: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
        let new: Vec<String> = (0..1000).map(|i| format!("LINE {i}")).collect();
        let limits = Limits {
            max_diff_lines: 10,
            ..Limits::default()
        };
        let diff = unified_diff(&old, &new, 3, &limits).unwrap();
        assert_eq!(diff.lines().count(), 11, "{diff}");
        assert!(diff.contains("-line 0\n"));
        assert!(
            diff.ends_with(
                "[… truncated: 1991 more lines not shown (limits: 10 lines, 16384 bytes) …]\n"
            ),
            "{diff}"
        );
    }

    #[test]
    fn byte_limit_bounds_the_diff() {
        let old: Vec<String> = (0..50).map(|i| format!("{i}{}", "x".repeat(200))).collect();
        let new: Vec<String> = (0..50).map(|i| format!("{i}{}", "y".repeat(200))).collect();
        let limits = Limits {
            max_diff_bytes: 1000,
            ..Limits::default()
        };
        let diff = unified_diff(&old, &new, 3, &limits).unwrap();
        assert!(diff.len() < 1200, "{}", diff.len());
        assert!(diff.contains("more lines not shown"));
    }

    #[test]
    fn long_changed_line_is_shown_around_its_change() {
        let old = format!("{}BUILT 2024-01-01 é{}", "a".repeat(5000), "z".repeat(5000));
        let new = format!("{}BUILT 2031-07-09 é{}", "a".repeat(5000), "z".repeat(5000));
        let diff = unified_diff(&[&old], &[&new], 3, &Limits::default()).unwrap();
        assert!(diff.contains("BUILT 2024-01-01"), "{diff}");
        assert!(diff.contains("BUILT 2031-07-09"), "{diff}");
        assert!(diff.len() < 1000, "{}", diff.len());
        assert!(diff.contains("[line of 10019 bytes shortened]"), "{diff}");
    }

    #[test]
    fn elide_never_splits_a_character() {
        let line = "é".repeat(400);
        let other = format!("{}x", "é".repeat(399));
        let shown = elide(&line, Some(&other));
        assert!(shown.contains('é'));
        let shown = elide(&line, None);
        assert!(shown.starts_with('é'));
    }
}
