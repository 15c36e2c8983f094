//! The result type of a comparison, a tree of differences, and its plain-text presenter.

use serde::Serialize;

/// Where and why two files (or two members of containers) differ.
///
/// Inner nodes say which container held the difference; leaves carry the evidence: a comment
/// naming the differing values and, where it helps, a bounded unified diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The artifact path, or a member path such as `pkg.deb → data.tar.xz → ./usr/bin/x`.
    pub source: String,
    /// The comparator that produced this node: `text`, `gzip`, `tar`, `zip`, `ar`, `elf`, ...
    pub comparator: String,
    /// What differs, in words, with both values (e.g. two timestamps).
    pub comment: Option<String>,
    /// A bounded unified diff; it says so when it was truncated.
    pub unified_diff: Option<String>,
    /// Differences inside this container, in the order found.
    pub children: Vec<Difference>,
}

impl Difference {
    pub(crate) fn leaf(
        source: impl Into<String>,
        comparator: impl Into<String>,
        comment: Option<String>,
        unified_diff: Option<String>,
    ) -> Self {
        Difference {
            source: source.into(),
            comparator: comparator.into(),
            comment,
            unified_diff,
            children: Vec::new(),
        }
    }

    pub(crate) fn node(
        source: impl Into<String>,
        comparator: impl Into<String>,
        comment: Option<String>,
        children: Vec<Difference>,
    ) -> Self {
        Difference {
            source: source.into(),
            comparator: comparator.into(),
            comment,
            unified_diff: None,
            children,
        }
    }

    /// The nodes without children, depth first, in tree order.
    pub fn leaves(&self) -> impl Iterator<Item = &Difference> {
        let mut stack = vec![self];
        std::iter::from_fn(move || {
            while let Some(node) = stack.pop() {
                if node.children.is_empty() {
                    return Some(node);
                }
                stack.extend(node.children.iter().rev());
            }
            None
        })
    }

    /// Renders the tree as indented text, `indent` spaces before the top node.
    pub fn render_text(&self, indent: usize) -> String {
        let mut out = String::new();
        self.render_into(&mut out, indent);
        out
    }

    fn render_into(&self, out: &mut String, indent: usize) {
        let pad = " ".repeat(indent);
        out.push_str(&format!("{pad}{} [{}]\n", self.source, self.comparator));
        if let Some(comment) = &self.comment {
            for line in comment.lines() {
                out.push_str(&format!("{pad}  # {line}\n"));
            }
        }
        if let Some(diff) = &self.unified_diff {
            for line in diff.lines() {
                out.push_str(&format!("{pad}  │ {line}\n"));
            }
        }
        for child in &self.children {
            child.render_into(out, indent + 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Difference {
        Difference::node(
            "a.tar",
            "tar",
            Some("2 members differ".into()),
            vec![
                Difference::leaf("a.tar → x", "text", None, Some("-old\n+new\n".into())),
                Difference::node(
                    "a.tar → y.gz",
                    "gzip",
                    None,
                    vec![Difference::leaf(
                        "a.tar → y.gz",
                        "gzip metadata",
                        Some("mtime: 1 vs 2".into()),
                        None,
                    )],
                ),
            ],
        )
    }

    #[test]
    fn leaves_are_the_childless_nodes_in_tree_order() {
        let tree = sample();
        let leaves: Vec<_> = tree.leaves().map(|d| d.comparator.as_str()).collect();
        assert_eq!(leaves, ["text", "gzip metadata"]);
        let single = Difference::leaf("f", "bytes", None, None);
        assert_eq!(single.leaves().count(), 1);
    }

    #[test]
    fn render_text_indents_children_and_shows_evidence() {
        let text = sample().render_text(2);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[0], "  a.tar [tar]");
        assert_eq!(lines[1], "    # 2 members differ");
        assert_eq!(lines[2], "    a.tar → x [text]");
        assert_eq!(lines[3], "      │ -old");
        assert_eq!(lines[4], "      │ +new");
        assert!(text.contains("        # mtime: 1 vs 2"), "{text}");
    }

    #[test]
    fn serializes_to_json_with_all_fields() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["children"][0]["unified_diff"], "-old\n+new\n");
        assert_eq!(
            json["children"][1]["children"][0]["comment"],
            "mtime: 1 vs 2"
        );
    }
}
