//! tar archives: members by path, with their mode, owner, mtime, link target and PAX
//! records, in archive order.

use std::borrow::Cow;

use crate::compare::Limits;
use crate::compare::archive::{Container, Kind, Member};
use crate::compare::metadata::{Fields, unix_time};
use crate::compare::registry::FormatError;

pub(crate) struct Tar;

impl Container for Tar {
    const KIND: Kind = Kind::archive("tar");
    // Never shown: a tar has no header of its own, only its members' headers.
    const HEADER: &'static str = "tar archive";

    fn recognizes(&self, data: &[u8]) -> bool {
        // POSIX ustar and GNU tar both put "ustar" at offset 257; v7 archives have no magic.
        data.get(257..262) == Some(b"ustar".as_slice())
    }

    fn read<'a>(
        &self,
        data: &'a [u8],
        _limits: &Limits,
    ) -> Result<(Fields, Vec<Member<'a>>), FormatError> {
        let error = |e| FormatError::new("cannot read tar archive", e);
        let mut archive = ::tar::Archive::new(data);
        let mut members = Vec::new();
        for entry in archive.entries().map_err(error)? {
            let mut entry = entry.map_err(error)?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let fields = fields(&mut entry).map_err(error)?;
            let entry_type = entry.header().entry_type();
            let content = if entry_type.is_file() || entry_type.is_contiguous() {
                // Regular members are stored contiguously: borrow them instead of copying.
                let start = usize::try_from(entry.raw_file_position()).unwrap_or(usize::MAX);
                let end = start.saturating_add(usize::try_from(entry.size()).unwrap_or(usize::MAX));
                let body = data
                    .get(start..end)
                    .ok_or_else(|| FormatError(format!("member {name} is truncated")))?;
                Some(Cow::Borrowed(body))
            } else {
                None
            };
            members.push(Member {
                name,
                fields,
                content,
            });
        }
        Ok((Fields::new(), members))
    }
}

fn fields(entry: &mut ::tar::Entry<&[u8]>) -> std::io::Result<Fields> {
    let header = entry.header();
    let name =
        |n: Option<&[u8]>| n.map_or_else(String::new, |n| String::from_utf8_lossy(n).into_owned());
    let mut fields = vec![
        ("type", format!("{:?}", header.entry_type())),
        ("mode", format!("{:04o}", header.mode()?)),
        ("uid", header.uid()?.to_string()),
        ("gid", header.gid()?.to_string()),
        ("uname", name(header.username_bytes())),
        ("gname", name(header.groupname_bytes())),
        (
            "mtime",
            unix_time(i64::try_from(header.mtime()?).unwrap_or(i64::MAX)),
        ),
    ];
    if let Some(link) = entry.link_name_bytes() {
        fields.push(("link", String::from_utf8_lossy(&link).into_owned()));
    }
    // PAX records carry sub-second and access/change times that the ustar header cannot.
    if let Some(extensions) = entry.pax_extensions()? {
        let mut records = Vec::new();
        for extension in extensions {
            let extension = extension?;
            let key = String::from_utf8_lossy(extension.key_bytes()).into_owned();
            if key != "path" && key != "linkpath" {
                let value = String::from_utf8_lossy(extension.value_bytes());
                records.push(format!("{key}={value}"));
            }
        }
        if !records.is_empty() {
            fields.push(("pax records", records.join(" ")));
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use crate::compare::Difference;
    use crate::compare::test_support::{Scratch, fallback_reason, leaves, run};

    /// GNU tar arguments that pin everything but what a test varies.
    const FIXED: [&str; 4] = ["--owner=0", "--group=0", "--numeric-owner", "--format=gnu"];

    fn tar(s: &Scratch, dir: &str, args: &[&str]) {
        let mut all: Vec<&str> = FIXED.to_vec();
        all.extend_from_slice(args);
        run(s.path(dir), "tar", &all);
    }

    #[test]
    fn tar_gz_member_line_and_mtime() {
        let s = Scratch::new();
        for (side, host, time) in [
            ("a", "host-a", "@1700000000"),
            ("b", "host-b", "@1700086400"),
        ] {
            s.write(
                &format!("{side}/a.txt"),
                &format!("name: demo\nbuilt on {host}\nend\n"),
            );
            s.write(&format!("{side}/same.txt"), "unchanged\n");
            run(s.path(side), "touch", &["-d", time, "a.txt"]);
            run(s.path(side), "touch", &["-d", "@1600000000", "same.txt"]);
            tar(&s, side, &["-czf", "out.tar.gz", "a.txt", "same.txt"]);
        }
        let d = s
            .compare("a/out.tar.gz", "b/out.tar.gz", "out.tar.gz")
            .unwrap();
        assert_eq!(
            (d.source.as_str(), d.comparator.as_str()),
            ("out.tar.gz", "gzip")
        );
        assert_eq!(d.children.len(), 1, "{}", d.render_text(0));
        let tar = &d.children[0];
        assert_eq!(tar.comparator, "tar");
        assert_eq!(tar.children.len(), 1, "{}", d.render_text(0));
        let member = &tar.children[0];
        assert_eq!(member.source, "out.tar.gz → a.txt");
        let leaves: Vec<&Difference> = member.leaves().collect();
        assert_eq!(leaves.len(), 2);
        assert_eq!(
            leaves[0].comment.as_deref(),
            Some(
                "tar member metadata differs: mtime 1700000000 (2023-11-14 22:13:20 UTC) vs \
                 1700086400 (2023-11-15 22:13:20 UTC)"
            )
        );
        assert_eq!(leaves[1].comparator, "text");
        assert_eq!(
            leaves[1].unified_diff.as_deref(),
            Some("@@ -1,3 +1,3 @@\n name: demo\n-built on host-a\n+built on host-b\n end\n")
        );
    }

    #[test]
    fn member_order_and_owner_names() {
        let s = Scratch::new();
        for side in ["a", "b"] {
            s.write(&format!("{side}/x"), "x\n");
            s.write(&format!("{side}/y"), "y\n");
        }
        run(
            s.path("a"),
            "tar",
            &[
                "--mtime=@0",
                "--owner=alice:1000",
                "--group=0",
                "-cf",
                "t.tar",
                "x",
                "y",
            ],
        );
        run(
            s.path("b"),
            "tar",
            &[
                "--mtime=@0",
                "--owner=bob:1001",
                "--group=0",
                "-cf",
                "t.tar",
                "y",
                "x",
            ],
        );
        let d = s.compare("a/t.tar", "b/t.tar", "t.tar").unwrap();
        assert_eq!(d.comparator, "tar");
        let leaves = leaves(&d, 3);
        assert_eq!(
            leaves[0].comment.as_deref(),
            Some("member order differs (2 members in both)")
        );
        assert_eq!(
            leaves[0].unified_diff.as_deref(),
            Some("member list:\n@@ -1,2 +1,2 @@\n+y\n x\n-y\n")
        );
        assert_eq!(leaves[1].source, "t.tar → x");
        assert_eq!(
            leaves[1].comment.as_deref(),
            Some("tar member metadata differs: uid 1000 vs 1001; uname alice vs bob")
        );
    }

    #[test]
    fn members_only_on_one_side_are_named() {
        let s = Scratch::new();
        s.write("a/common", "c\n");
        s.write("a/old.log", "o\n");
        s.write("b/common", "c\n");
        s.write("b/new.log", "n\n");
        tar(
            &s,
            "a",
            &["--mtime=@0", "-cf", "t.tar", "common", "old.log"],
        );
        tar(
            &s,
            "b",
            &["--mtime=@0", "-cf", "t.tar", "common", "new.log"],
        );
        let d = s.compare("a/t.tar", "b/t.tar", "t.tar").unwrap();
        let leaves = leaves(&d, 1);
        assert_eq!(
            leaves[0].comment.as_deref(),
            Some("members only in control: old.log; members only in experiment: new.log")
        );
    }

    #[test]
    fn corrupt_tar_falls_back_to_bytes() {
        let s = Scratch::new();
        s.write("f1", "one\n");
        s.write("f2", "two\n");
        tar(&s, "", &["--mtime=@0", "-cf", "good.tar", "f1", "f2"]);
        let mut data = std::fs::read(s.path("good.tar")).unwrap();
        // Garble the second header's size field: its checksum no longer matches.
        data[1024 + 124..1024 + 130].copy_from_slice(b"zzzzzz");
        s.write_bytes("bad.tar", &data);
        let d = s.compare("good.tar", "bad.tar", "t.tar").unwrap();
        let reason = fallback_reason(&d);
        assert!(
            reason.starts_with("tar comparator failed: cannot read tar archive:"),
            "{reason}"
        );
        assert!(
            reason.ends_with("first difference at offset 1148 of 10240/10240 bytes"),
            "{reason}"
        );
    }
}
