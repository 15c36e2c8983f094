//! The ordered list of comparators and the dispatch every file and member goes through.
//!
//! Order matters only where formats overlap: containers and ELF are recognised by magic
//! bytes and come first; text would accept any UTF-8, so it comes last; bytes is the
//! fallback, not a member of the list.

use crate::compare::{Difference, Limits, ar, bytes, compressed, elf, tar, text, zip};

/// One format: recognises a file by its contents and compares two such files.
pub(crate) trait Comparator: Sync {
    /// Also the `comparator` of the nodes it produces.
    fn name(&self) -> &'static str;
    /// Whether `data` is in this format, judged by its contents (magic bytes).
    fn recognizes(&self, data: &[u8]) -> bool;
    /// Compares two recognised, unequal files. An error means malformed input; the caller
    /// then falls back to bytes and keeps the error as the reason.
    fn compare(
        &self,
        control: &[u8],
        experiment: &[u8],
        source: &str,
        context: &Context,
    ) -> Result<Difference, FormatError>;
}

/// Why a comparator could not parse its input.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct FormatError(pub(crate) String);

impl FormatError {
    pub(crate) fn new(what: &str, error: impl std::fmt::Display) -> Self {
        FormatError(format!("{what}: {error}"))
    }
}

/// Limits plus how deep in nested containers the current comparison is.
pub(crate) struct Context<'a> {
    pub(crate) limits: &'a Limits,
    depth: usize,
}

impl<'a> Context<'a> {
    pub(crate) fn new(limits: &'a Limits) -> Self {
        Context { limits, depth: 0 }
    }

    /// The context for the members of a container.
    pub(crate) fn nested(&self) -> Context<'a> {
        Context {
            limits: self.limits,
            depth: self.depth + 1,
        }
    }
}

static COMPARATORS: &[&dyn Comparator] = &[
    &compressed::GZIP,
    &compressed::XZ,
    &compressed::ZSTD,
    &zip::Zip,
    &ar::Ar,
    &elf::Elf,
    &tar::Tar,
    &text::Text,
];

/// Compares two blobs found at `source`; `None` when they are equal.
pub(crate) fn compare(
    control: &[u8],
    experiment: &[u8],
    source: &str,
    context: &Context,
) -> Option<Difference> {
    if control == experiment {
        return None;
    }
    if context.depth > context.limits.max_depth {
        let reason = format!(
            "containers nested deeper than {} levels are not unpacked",
            context.limits.max_depth
        );
        return Some(bytes::compare(
            control, experiment, source, &reason, context,
        ));
    }
    let in_control = COMPARATORS.iter().find(|c| c.recognizes(control));
    let in_experiment = COMPARATORS.iter().find(|c| c.recognizes(experiment));
    let reason = match (in_control, in_experiment) {
        (Some(a), Some(b)) if a.name() == b.name() => {
            match a.compare(control, experiment, source, context) {
                Ok(difference) => return Some(difference),
                Err(e) => format!("{} comparator failed: {e}", a.name()),
            }
        }
        (Some(a), Some(b)) => format!(
            "formats differ: control is {}, experiment is {}",
            a.name(),
            b.name()
        ),
        (Some(a), None) => format!(
            "formats differ: control is {}, experiment is {}",
            a.name(),
            unrecognised(experiment)
        ),
        (None, Some(b)) => format!(
            "formats differ: control is {}, experiment is {}",
            unrecognised(control),
            b.name()
        ),
        (None, None) => {
            let why = text::not_text_reason(control).or_else(|| text::not_text_reason(experiment));
            why.unwrap_or_else(|| "no comparator recognises this format".to_string())
        }
    };
    Some(bytes::compare(
        control, experiment, source, &reason, context,
    ))
}

fn unrecognised(data: &[u8]) -> String {
    match text::not_text_reason(data) {
        Some(why) => format!("unrecognised ({why})"),
        None => "text".to_string(),
    }
}
