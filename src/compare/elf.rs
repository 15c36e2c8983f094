//! ELF objects, executables and shared libraries: which sections differ.
//!
//! Naming the section is most of the diagnosis: `.note.gnu.build-id` differs whenever
//! anything else does, `.rodata` holds `__DATE__` and `__FILE__` strings, `.debug_str` and
//! `.debug_line` hold build paths, `.comment` the compiler version. Each differing section
//! shows its differing printable strings, or a hex dump when it has none.

use std::borrow::Cow;

use object::{Object, ObjectSection, SectionKind};

use crate::compare::archive::{Container, Kind, Member};
use crate::compare::metadata::Fields;
use crate::compare::registry::{Context, FormatError};
use crate::compare::{Difference, Limits, bytes};

pub(crate) struct Elf;

impl Container for Elf {
    const KIND: Kind = Kind {
        format: "elf",
        noun: "section",
        compare_content: compare_section,
    };
    const HEADER: &'static str = "elf header";

    fn recognizes(&self, data: &[u8]) -> bool {
        data.starts_with(b"\x7fELF")
    }

    fn read<'a>(
        &self,
        data: &'a [u8],
        _limits: &Limits,
    ) -> Result<(Fields, Vec<Member<'a>>), FormatError> {
        let error = |e| FormatError::new("cannot parse ELF file", e);
        let file = object::File::parse(data).map_err(error)?;
        let header = vec![
            ("architecture", format!("{:?}", file.architecture())),
            ("kind", format!("{:?}", file.kind())),
            ("entry point", format!("{:#x}", file.entry())),
        ];
        let mut members = Vec::new();
        for (i, section) in file.sections().enumerate() {
            let name = match section.name() {
                Ok("") | Err(_) => format!("(unnamed section #{i})"),
                Ok(name) => name.to_string(),
            };
            // Addresses shift whenever an earlier section grows, so they are not compared; the
            // size only matters for sections without contents in the file (.bss).
            let member = if section.kind() == SectionKind::UninitializedData {
                Member {
                    name,
                    fields: vec![("size", section.size().to_string())],
                    content: None,
                }
            } else {
                Member {
                    name,
                    fields: Fields::new(),
                    content: Some(Cow::Borrowed(section.data().map_err(error)?)),
                }
            };
            members.push(member);
        }
        Ok((header, members))
    }
}

fn compare_section(
    control: &[u8],
    experiment: &[u8],
    source: &str,
    context: &Context,
) -> Option<Difference> {
    if control == experiment {
        return None;
    }
    let section = source.rsplit(" → ").next().unwrap_or(source);
    Some(bytes::binary_leaf(
        control,
        experiment,
        source,
        "elf section",
        &format!("section {section} differs"),
        context.limits,
    ))
}

#[cfg(test)]
mod tests {
    use crate::compare::Difference;
    use crate::compare::test_support::{Scratch, fallback_reason, run};

    #[test]
    fn elf_names_the_sections_holding_a_build_date() {
        let s = Scratch::new();
        let program = "#include <stdio.h>\n\
                       static const char stamp[] = \"built \" BUILD_DATE;\n\
                       int main(void) { puts(stamp); return 0; }\n";
        for (side, date) in [("a", "Jan  1 2024 10:00:00"), ("b", "Jul  9 2033 04:05:06")] {
            s.write(&format!("{side}/prog.c"), program);
            let define = format!("-DBUILD_DATE=\"{date}\"");
            run(
                s.path(side),
                "gcc",
                &["-O1", "-Wl,--build-id", &define, "-o", "prog", "prog.c"],
            );
        }
        let d = s.compare("a/prog", "b/prog", "usr/bin/prog").unwrap();
        assert_eq!(d.comparator, "elf", "{}", d.render_text(0));
        let leaves: Vec<&Difference> = d.leaves().collect();
        let sources: Vec<&str> = leaves.iter().map(|l| l.source.as_str()).collect();
        assert_eq!(
            sources,
            [
                "usr/bin/prog → .note.gnu.build-id",
                "usr/bin/prog → .rodata"
            ],
            "{}",
            d.render_text(0)
        );
        let rodata = leaves[1];
        assert_eq!(rodata.comparator, "elf section");
        assert!(
            rodata
                .comment
                .as_deref()
                .unwrap()
                .starts_with("section .rodata differs; first difference at offset")
        );
        let diff = rodata.unified_diff.as_deref().unwrap();
        assert!(diff.contains("-built Jan  1 2024 10:00:00\n"), "{diff}");
        assert!(diff.contains("+built Jul  9 2033 04:05:06\n"), "{diff}");
        let build_id = leaves[0].unified_diff.as_deref().unwrap();
        assert!(build_id.starts_with("hex dump:\n"), "{build_id}");
    }

    #[test]
    fn truncated_elf_falls_back_to_bytes() {
        let s = Scratch::new();
        s.write("prog.c", "int main(void) { return 0; }\n");
        run(s.path(""), "gcc", &["-o", "prog", "prog.c"]);
        let whole = std::fs::read(s.path("prog")).unwrap();
        s.write_bytes("cut", &whole[..100]);
        let d = s.compare("prog", "cut", "prog").unwrap();
        let reason = fallback_reason(&d);
        assert!(
            reason.starts_with("elf comparator failed: cannot parse ELF file"),
            "{reason}"
        );
    }
}
