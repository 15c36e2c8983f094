//! ar archives: Debian packages (`.deb`) and static libraries (`.a`), members with their
//! mtime, owner and mode, in archive order.

use std::borrow::Cow;
use std::io::Read;

use crate::compare::Limits;
use crate::compare::archive::{Container, Kind, Member};
use crate::compare::metadata::{Fields, unix_time};
use crate::compare::registry::FormatError;

pub(crate) struct Ar;

impl Container for Ar {
    const KIND: Kind = Kind::archive("ar");
    // Never shown: the global header is only the magic, so `read` returns no fields.
    const HEADER: &'static str = "ar archive";

    fn recognizes(&self, data: &[u8]) -> bool {
        data.starts_with(b"!<arch>\n")
    }

    fn read<'a>(
        &self,
        data: &'a [u8],
        _limits: &Limits,
    ) -> Result<(Fields, Vec<Member<'a>>), FormatError> {
        let error = |e| FormatError::new("cannot read ar archive", e);
        // The ar crate skips the symbol table and resolves GNU and BSD long names.
        let mut archive = ::ar::Archive::new(data);
        let mut members = Vec::new();
        while let Some(entry) = archive.next_entry() {
            let mut entry = entry.map_err(error)?;
            let header = entry.header();
            let name = String::from_utf8_lossy(header.identifier()).into_owned();
            let fields = vec![
                (
                    "mtime",
                    unix_time(i64::try_from(header.mtime()).unwrap_or(i64::MAX)),
                ),
                ("uid", header.uid().to_string()),
                ("gid", header.gid().to_string()),
                ("mode", format!("{:o}", header.mode())),
            ];
            let mut content = Vec::new();
            entry.read_to_end(&mut content).map_err(error)?;
            members.push(Member {
                name,
                fields,
                content: Some(Cow::Owned(content)),
            });
        }
        Ok((Fields::new(), members))
    }
}

#[cfg(test)]
mod tests {
    use crate::compare::test_support::{Scratch, leaves, run};

    /// Builds `dir/pkg.deb` the way dpkg-deb lays it out.
    fn deb(s: &Scratch, dir: &str, changelog: &str, ar_flags: &str) {
        s.write(
            &format!("{dir}/root/usr/share/doc/demo/changelog"),
            changelog,
        );
        s.write(
            &format!("{dir}/root/usr/bin/demo"),
            "#!/bin/sh\necho demo\n",
        );
        s.write(
            &format!("{dir}/ctl/control"),
            "Package: demo\nVersion: 1.0\n",
        );
        s.write(&format!("{dir}/debian-binary"), "2.0\n");
        let fixed = [
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--sort=name",
        ];
        let tar = |archive: &str, from: &str| {
            let mut args = fixed.to_vec();
            args.extend(["-cJf", archive, "-C", from, "."]);
            run(s.path(dir), "tar", &args);
        };
        tar("data.tar.xz", "root");
        tar("control.tar.xz", "ctl");
        run(
            s.path(dir),
            "ar",
            &[
                ar_flags,
                "pkg.deb",
                "debian-binary",
                "control.tar.xz",
                "data.tar.xz",
            ],
        );
    }

    #[test]
    fn deb_names_the_changed_file_inside_data_tar_xz() {
        let s = Scratch::new();
        deb(
            &s,
            "a",
            "demo 1.0\n\n -- Builder <b@example.org>  Mon, 01 Jan 2024 10:00:00 +0000\n",
            "rcD",
        );
        deb(
            &s,
            "b",
            "demo 1.0\n\n -- Builder <b@example.org>  Sat, 09 Jul 2033 04:05:06 +0000\n",
            "rcD",
        );
        let d = s
            .compare("a/pkg.deb", "b/pkg.deb", "demo_1.0_all.deb")
            .unwrap();
        assert_eq!(d.comparator, "ar");
        let leaves = leaves(&d, 1);
        let leaf = leaves[0];
        assert_eq!(
            leaf.source,
            "demo_1.0_all.deb → data.tar.xz → ./usr/share/doc/demo/changelog"
        );
        assert_eq!(leaf.comparator, "text");
        let diff = leaf.unified_diff.as_deref().unwrap();
        assert!(
            diff.contains("-- Builder <b@example.org>  Mon, 01 Jan 2024 10:00:00 +0000\n"),
            "{diff}"
        );
        assert!(
            diff.contains("+ -- Builder <b@example.org>  Sat, 09 Jul 2033 04:05:06 +0000\n"),
            "{diff}"
        );
        // The path through the tree: ar, then xz, then tar.
        let path: Vec<&str> = std::iter::successors(Some(&d), |n| n.children.first())
            .map(|n| n.comparator.as_str())
            .collect();
        assert_eq!(path, ["ar", "xz", "tar", "text"]);
    }

    #[test]
    fn ar_member_mtime_and_owner() {
        let s = Scratch::new();
        for (side, time) in [("a", "@1700000000"), ("b", "@1700000042")] {
            s.write(&format!("{side}/m.o"), "same\n");
            run(s.path(side), "touch", &["-d", time, "m.o"]);
            // U: store real timestamps, as non-deterministic ar builds do.
            run(s.path(side), "ar", &["rcU", "lib.a", "m.o"]);
        }
        let d = s.compare("a/lib.a", "b/lib.a", "lib.a").unwrap();
        let leaves = leaves(&d, 1);
        assert_eq!(leaves[0].source, "lib.a → m.o");
        assert_eq!(
            leaves[0].comment.as_deref(),
            Some(
                "ar member metadata differs: mtime 1700000000 (2023-11-14 22:13:20 UTC) vs \
                 1700000042 (2023-11-14 22:14:02 UTC)"
            )
        );
    }
}
