//! zip archives (and jar, apk, wheel, which are zips): members in central-directory order,
//! with their DOS and Unix timestamps, permissions, compression and CRC.

use std::borrow::Cow;
use std::io::Cursor;

use ::zip::ZipArchive;
use ::zip::extra_fields::ExtraField;

use crate::compare::Limits;
use crate::compare::archive::{Container, Kind, Member};
use crate::compare::compressed::read_bounded;
use crate::compare::metadata::{Fields, unix_time};
use crate::compare::registry::FormatError;

pub(crate) struct Zip;

impl Container for Zip {
    const KIND: Kind = Kind::archive("zip");
    const HEADER: &'static str = "zip archive";

    fn recognizes(&self, data: &[u8]) -> bool {
        // A local file header, or the end-of-central-directory record of an empty zip.
        data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06")
    }

    fn read<'a>(
        &self,
        data: &'a [u8],
        limits: &Limits,
    ) -> Result<(Fields, Vec<Member<'a>>), FormatError> {
        let error = |e| FormatError::new("cannot read zip archive", e);
        let mut archive = ZipArchive::new(Cursor::new(data)).map_err(error)?;
        let comment = vec![(
            "comment",
            String::from_utf8_lossy(archive.comment()).into_owned(),
        )];
        let mut members = Vec::with_capacity(archive.len());
        for index in 0..archive.len() {
            let mut file = archive.by_index(index).map_err(error)?;
            let name = file.name().to_string();
            let mut fields = vec![
                ("modified (DOS, local time)", dos_time(file.last_modified())),
                (
                    "unix mode",
                    file.unix_mode()
                        .map_or_else(|| "(none)".into(), |m| format!("{m:06o}")),
                ),
                ("compression", file.compression().to_string()),
                ("comment", file.comment().to_string()),
            ];
            for field in file.extra_data_fields() {
                if let ExtraField::ExtendedTimestamp(times) = field {
                    let show = |t: Option<u32>| {
                        t.map_or_else(|| "(none)".into(), |t| unix_time(i64::from(t)))
                    };
                    fields.push(("mtime (extended timestamp)", show(times.mod_time())));
                    fields.push(("atime (extended timestamp)", show(times.ac_time())));
                }
            }
            let content = if file.is_file() {
                match read_bounded(&mut file, limits.max_member_size) {
                    Ok(data) => Some(Cow::Owned(data)),
                    Err(e) => {
                        // Size and CRC still tell whether the contents differ.
                        fields.push(("contents", format!("not unpacked: {e}")));
                        fields.push(("size", file.size().to_string()));
                        fields.push(("crc32", format!("{:08x}", file.crc32())));
                        None
                    }
                }
            } else {
                None
            };
            members.push(Member {
                name,
                fields,
                content,
            });
        }
        Ok((comment, members))
    }
}

fn dos_time(time: Option<::zip::DateTime>) -> String {
    match time {
        Some(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        None => "(invalid)".into(),
    }
}

#[cfg(test)]
mod tests {
    use crate::compare::Difference;
    use crate::compare::test_support::{Scratch, leaves, run};

    /// Runs Info-ZIP in `dir` of `s`; its DOS timestamps are local time, so pinned to UTC.
    fn zip(s: &Scratch, dir: &str, args: &[&str]) {
        assert!(
            std::process::Command::new("zip").arg("-v").output().is_ok(),
            "install zip (apt-get install -y zip) to run this test"
        );
        let mut all = vec!["TZ=UTC", "zip", "-q"];
        all.extend_from_slice(args);
        run(s.path(dir), "env", &all);
    }

    #[test]
    fn zip_member_timestamps() {
        let s = Scratch::new();
        for (side, time) in [("a", "@1700000000"), ("b", "@1700003600")] {
            s.write(&format!("{side}/f.txt"), "same contents\n");
            run(s.path(side), "touch", &["-d", time, "f.txt"]);
            zip(&s, side, &["out.zip", "f.txt"]);
        }
        let d = s.compare("a/out.zip", "b/out.zip", "out.jar").unwrap();
        assert_eq!(d.comparator, "zip");
        let leaves = leaves(&d, 1);
        assert_eq!(leaves[0].source, "out.jar → f.txt");
        let comment = leaves[0].comment.as_deref().unwrap();
        assert!(
            comment.starts_with(
                "zip member metadata differs: modified (DOS, local time) 2023-11-14 22:13:20 vs \
                 2023-11-14 23:13:20; mtime (extended timestamp) 1700000000 (2023-11-14 22:13:20 \
                 UTC) vs 1700003600 (2023-11-14 23:13:20 UTC)"
            ),
            "{comment}"
        );
    }

    #[test]
    fn zip_member_order_and_contents() {
        let s = Scratch::new();
        for (side, order, value) in [("a", ["p", "q"], "1"), ("b", ["q", "p"], "2")] {
            s.write(&format!("{side}/p"), &format!("value={value}\n"));
            s.write(&format!("{side}/q"), "q\n");
            run(s.path(side), "touch", &["-d", "@1700000000", "p", "q"]);
            zip(&s, side, &["-X", "z.zip", order[0], order[1]]);
        }
        let d = s.compare("a/z.zip", "b/z.zip", "z.zip").unwrap();
        let leaves: Vec<&Difference> = d.leaves().collect();
        assert_eq!(
            leaves[0].comment.as_deref(),
            Some("member order differs (2 members in both)")
        );
        let content = leaves.iter().find(|l| l.comparator == "text").unwrap();
        assert_eq!(content.source, "z.zip → p");
        assert_eq!(
            content.unified_diff.as_deref(),
            Some("@@ -1 +1 @@\n-value=1\n+value=2\n")
        );
        assert_eq!(leaves.len(), 2, "{}", d.render_text(0));
    }
}
