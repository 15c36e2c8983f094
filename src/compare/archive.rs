//! What all archives (tar, zip, ar) and ELF section tables share: a list of named members
//! with metadata and contents, compared for membership, order, metadata and contents.
//!
//! Each such format only says how to recognise and read itself ([`Container`]); the
//! comparison around the reading is written once here, so every container reports header,
//! listing and member differences, and falls back to byte evidence, the same way.
//!
//! Order is compared on purpose: an archive whose members follow the build machine's
//! directory order is unreproducible even when every member is identical.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::compare::diff::{CONTEXT_LINES, unified_diff};
use crate::compare::metadata::{self, Fields};
use crate::compare::registry::{self, Comparator, Context, FormatError};
use crate::compare::{Difference, Limits, bytes};

/// Names shown in a comment before the rest is counted.
const NAMES_IN_COMMENT: usize = 10;

/// One member of an archive, read into memory.
pub(crate) struct Member<'a> {
    pub(crate) name: String,
    /// Metadata not implied by the contents: sizes and checksums only appear when the
    /// contents could not be read, so a changed file is not reported twice.
    pub(crate) fields: Fields,
    /// The member's data, borrowed from the archive where the format allows (tar, ELF) so
    /// a large archive is not held twice; `None` for entries without contents.
    pub(crate) content: Option<Cow<'a, [u8]>>,
}

/// How a container format talks about itself, for comments.
pub(crate) struct Kind {
    /// The comparator name, e.g. `tar`.
    pub(crate) format: &'static str,
    /// What its entries are called: `member`, `section`.
    pub(crate) noun: &'static str,
    /// Compares the contents of two same-named entries (archives recurse into the registry).
    pub(crate) compare_content: fn(&[u8], &[u8], &str, &Context) -> Option<Difference>,
}

impl Kind {
    /// An archive format (tar, zip, ar): its members are files, compared like any file but
    /// one container level deeper.
    pub(crate) const fn archive(format: &'static str) -> Kind {
        Kind {
            format,
            noun: "member",
            compare_content: compare_nested,
        }
    }
}

/// A format made of named members (or sections): every `Container` is a [`Comparator`].
pub(crate) trait Container: Sync {
    /// How the format talks about itself; `KIND.format` is also the comparator name.
    const KIND: Kind;
    /// What the header fields returned by `read` are called in comments, e.g. `elf header`.
    const HEADER: &'static str;
    /// Whether `data` is in this format, judged by its contents (magic bytes).
    fn recognizes(&self, data: &[u8]) -> bool;
    /// The fields of the whole file (empty for formats whose header says nothing worth
    /// comparing) and its members in stored order. An error means malformed input.
    fn read<'a>(
        &self,
        data: &'a [u8],
        limits: &Limits,
    ) -> Result<(Fields, Vec<Member<'a>>), FormatError>;
}

impl<T: Container> Comparator for T {
    fn name(&self) -> &'static str {
        T::KIND.format
    }

    fn recognizes(&self, data: &[u8]) -> bool {
        Container::recognizes(self, data)
    }

    fn compare(
        &self,
        control: &[u8],
        experiment: &[u8],
        source: &str,
        context: &Context,
    ) -> Result<Difference, FormatError> {
        let (control_header, control_members) = self.read(control, context.limits)?;
        let (experiment_header, experiment_members) = self.read(experiment, context.limits)?;
        let kind = &T::KIND;
        let mut children: Vec<Difference> = metadata::difference(
            source,
            kind.format,
            T::HEADER,
            &control_header,
            &experiment_header,
        )
        .into_iter()
        .collect();
        children.extend(compare_members(
            kind,
            source,
            control_members,
            experiment_members,
            context,
        ));
        let unexplained = format!(
            "{} bytes differ but no {noun}, {noun} order or {noun} metadata difference was found \
             (padding or header fields not compared)",
            kind.format,
            noun = kind.noun
        );
        Ok(bytes::explained_node(
            control,
            experiment,
            source,
            kind.format,
            children,
            &unexplained,
            context.limits,
        ))
    }
}

/// The differences between two member lists of one container at `source`.
fn compare_members(
    kind: &Kind,
    source: &str,
    control: Vec<Member<'_>>,
    experiment: Vec<Member<'_>>,
    context: &Context,
) -> Vec<Difference> {
    let control = with_unique_names(control);
    let experiment = with_unique_names(experiment);
    let mut children: Vec<Difference> =
        listing_difference(kind, source, &control, &experiment, context)
            .into_iter()
            .collect();
    let mut by_name: HashMap<&str, &Member<'_>> =
        experiment.iter().map(|m| (m.name.as_str(), m)).collect();
    let mut omitted = 0usize;
    for a in &control {
        let Some(b) = by_name.remove(a.name.as_str()) else {
            continue;
        };
        let Some(difference) = compare_member(kind, source, a, b, context) else {
            continue;
        };
        if children.len() < context.limits.max_children {
            children.push(difference);
        } else {
            omitted += 1;
        }
    }
    if omitted > 0 {
        children.push(Difference::leaf(
            source,
            kind.format,
            Some(format!(
                "{omitted} more differing {noun}s not shown (limit: {} per container)",
                context.limits.max_children,
                noun = kind.noun
            )),
            None,
        ));
    }
    children
}

/// `compare_content` of [`Kind::archive`].
fn compare_nested(
    control: &[u8],
    experiment: &[u8],
    source: &str,
    context: &Context,
) -> Option<Difference> {
    registry::compare(control, experiment, source, &context.nested())
}

/// Duplicate names (a tar may hold a path twice) get `(#2)`, `(#3)` so both are compared.
fn with_unique_names(members: Vec<Member<'_>>) -> Vec<Member<'_>> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    members
        .into_iter()
        .map(|mut m| {
            let count = seen.entry(m.name.clone()).or_insert(0);
            *count += 1;
            if *count > 1 {
                m.name = format!("{} (#{count})", m.name);
            }
            m
        })
        .collect()
}

fn listing_difference(
    kind: &Kind,
    source: &str,
    control: &[Member<'_>],
    experiment: &[Member<'_>],
    context: &Context,
) -> Option<Difference> {
    let a: Vec<&str> = control.iter().map(|m| m.name.as_str()).collect();
    let b: Vec<&str> = experiment.iter().map(|m| m.name.as_str()).collect();
    if a == b {
        return None;
    }
    // Sets, not `contains` on the lists: archives can hold tens of thousands of members.
    let (in_a, in_b): (HashSet<&str>, HashSet<&str>) =
        (a.iter().copied().collect(), b.iter().copied().collect());
    let only_a: Vec<&str> = a.iter().copied().filter(|n| !in_b.contains(n)).collect();
    let only_b: Vec<&str> = b.iter().copied().filter(|n| !in_a.contains(n)).collect();
    let common_a: Vec<&str> = a.iter().copied().filter(|n| in_b.contains(n)).collect();
    let common_b: Vec<&str> = b.iter().copied().filter(|n| in_a.contains(n)).collect();
    let noun = kind.noun;
    let mut parts = Vec::new();
    if !only_a.is_empty() {
        parts.push(format!("{noun}s only in control: {}", name_list(&only_a)));
    }
    if !only_b.is_empty() {
        parts.push(format!(
            "{noun}s only in experiment: {}",
            name_list(&only_b)
        ));
    }
    if common_a != common_b {
        parts.push(format!(
            "{noun} order differs ({} {noun}s in both)",
            common_a.len()
        ));
    }
    Some(Difference::leaf(
        source,
        kind.format,
        Some(parts.join("; ")),
        unified_diff(&a, &b, CONTEXT_LINES, context.limits).map(|d| format!("{noun} list:\n{d}")),
    ))
}

fn name_list(names: &[&str]) -> String {
    let shown = names[..names.len().min(NAMES_IN_COMMENT)].join(", ");
    match names.len().saturating_sub(NAMES_IN_COMMENT) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

fn compare_member(
    kind: &Kind,
    source: &str,
    a: &Member<'_>,
    b: &Member<'_>,
    context: &Context,
) -> Option<Difference> {
    let member_source = format!("{source} → {}", a.name);
    let what = format!("{} {} metadata", kind.format, kind.noun);
    let metadata = metadata::difference(&member_source, kind.format, &what, &a.fields, &b.fields);
    let content = match (&a.content, &b.content) {
        (Some(x), Some(y)) => (kind.compare_content)(x, y, &member_source, context),
        // A change of entry type shows in the metadata.
        _ => None,
    };
    match (metadata, content) {
        (Some(m), Some(c)) => Some(Difference::node(
            member_source,
            kind.format,
            None,
            vec![m, c],
        )),
        (m, c) => m.or(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::Limits;

    fn member(name: &str, content: &'static str) -> Member<'static> {
        Member {
            name: name.to_string(),
            fields: vec![("mtime", "0".to_string())],
            content: Some(Cow::Borrowed(content.as_bytes())),
        }
    }

    const TEST_KIND: Kind = Kind::archive("test");

    #[test]
    fn differing_members_beyond_the_limit_are_counted() {
        let limits = Limits {
            max_children: 2,
            ..Limits::default()
        };
        let context = Context::new(&limits);
        let a: Vec<Member<'_>> = (0..5).map(|i| member(&format!("m{i}"), "old\n")).collect();
        let b: Vec<Member<'_>> = (0..5).map(|i| member(&format!("m{i}"), "new\n")).collect();
        let children = compare_members(&TEST_KIND, "x", a, b, &context);
        let sources: Vec<&str> = children.iter().map(|c| c.source.as_str()).collect();
        assert_eq!(sources, ["x → m0", "x → m1", "x"]);
        assert_eq!(
            children[2].comment.as_deref(),
            Some("3 more differing members not shown (limit: 2 per container)")
        );
    }

    #[test]
    fn duplicate_names_are_compared_pairwise() {
        let limits = Limits::default();
        let context = Context::new(&limits);
        let a = vec![member("d", "1\n"), member("d", "2\n")];
        let b = vec![member("d", "1\n"), member("d", "3\n")];
        let children = compare_members(&TEST_KIND, "x", a, b, &context);
        assert_eq!(children.len(), 1);
        assert_eq!(children[0].source, "x → d (#2)");
        assert_eq!(
            children[0].unified_diff.as_deref(),
            Some("@@ -1 +1 @@\n-2\n+3\n")
        );
    }
}
