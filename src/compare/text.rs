//! Text files: valid UTF-8 without NUL bytes, compared line by line.

use crate::compare::Difference;
use crate::compare::diff::{CONTEXT_LINES, unified_diff};
use crate::compare::registry::{Comparator, Context, FormatError};

/// Why `bytes` is not text, or `None` when it is.
pub(crate) fn not_text_reason(bytes: &[u8]) -> Option<String> {
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Some(format!("contains a NUL byte at offset {at}"));
    }
    match std::str::from_utf8(bytes) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "not UTF-8 text (invalid at offset {})",
            e.valid_up_to()
        )),
    }
}

pub(crate) struct Text;

impl Comparator for Text {
    fn name(&self) -> &'static str {
        "text"
    }

    fn recognizes(&self, data: &[u8]) -> bool {
        not_text_reason(data).is_none()
    }

    fn compare(
        &self,
        control: &[u8],
        experiment: &[u8],
        source: &str,
        context: &Context,
    ) -> Result<Difference, FormatError> {
        let as_str = |data| std::str::from_utf8(data).map_err(|e| FormatError(e.to_string()));
        let (old, new) = (lines(as_str(control)?), lines(as_str(experiment)?));
        let diff = unified_diff(&old, &new, CONTEXT_LINES, context.limits);
        let comment = match &diff {
            Some(_) => None,
            // Only reachable if the diff gave up; never leave a text leaf without evidence.
            None => Some("texts differ but no line-level difference was found".to_string()),
        };
        Ok(Difference::leaf(source, self.name(), comment, diff))
    }
}

/// Lines without their `\n`; a missing final newline is kept visible as diff(1) does, so
/// files that differ only there still show a difference.
fn lines(text: &str) -> Vec<String> {
    text.split_inclusive('\n')
        .map(|line| match line.strip_suffix('\n') {
            Some(line) => line.to_string(),
            None => format!("{line}\n\\ No newline at end of file"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::Limits;
    use crate::compare::registry::compare;

    #[test]
    fn text_detection() {
        assert!(crate::compare::is_probably_text(b"hello\n\xc3\xa9\n"));
        assert!(crate::compare::is_probably_text(b""));
        assert!(!crate::compare::is_probably_text(b"a\0b"));
        assert!(!crate::compare::is_probably_text(b"\xff\xfe"));
        assert_eq!(
            not_text_reason(b"ab\xffc").as_deref(),
            Some("not UTF-8 text (invalid at offset 2)")
        );
    }

    #[test]
    fn text_diff_names_the_changed_line() {
        let limits = Limits::default();
        let context = Context::new(&limits);
        let a = b"one\ntwo\nbuilt on host-a\nfour\n";
        let b = b"one\ntwo\nbuilt on host-b\nfour\n";
        let d = compare(a, b, "VERSION", &context).unwrap();
        assert_eq!(d.comparator, "text");
        assert_eq!(d.source, "VERSION");
        assert_eq!(
            d.unified_diff.as_deref(),
            Some("@@ -1,4 +1,4 @@\n one\n two\n-built on host-a\n+built on host-b\n four\n")
        );
    }

    #[test]
    fn missing_final_newline_is_a_visible_difference() {
        let limits = Limits::default();
        let context = Context::new(&limits);
        let d = compare(b"a\nb", b"a\nb\n", "f", &context).unwrap();
        let diff = d.unified_diff.unwrap();
        assert!(
            diff.contains("-b\n\\ No newline at end of file\n+b\n"),
            "{diff}"
        );
    }
}
