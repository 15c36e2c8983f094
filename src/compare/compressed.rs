//! Single-file compressors (gzip, xz, zstd): compare their headers, then hand the
//! decompressed contents back to the registry.
//!
//! The decompressed contents keep the compressed file's name as their source, so members of
//! a `.tar.gz` read as `x.tar.gz → member`. Decompression stops at `max_member_size`: a
//! decompression bomb becomes a byte comparison, not an out-of-memory.

use std::io::{Read, Write};

use crate::compare::metadata::{self, Fields, unix_time};
use crate::compare::registry::{self, Comparator, Context, FormatError};
use crate::compare::{Difference, bytes};

type Decode = fn(&[u8], u64) -> Result<(Vec<u8>, Fields), FormatError>;

pub(crate) struct Compressed {
    name: &'static str,
    magic: &'static [u8],
    decode: Decode,
}

pub(crate) const GZIP: Compressed = Compressed {
    name: "gzip",
    magic: &[0x1f, 0x8b, 0x08],
    decode: decode_gzip,
};

pub(crate) const XZ: Compressed = Compressed {
    name: "xz",
    magic: &[0xfd, b'7', b'z', b'X', b'Z', 0x00],
    decode: decode_xz,
};

pub(crate) const ZSTD: Compressed = Compressed {
    name: "zstd",
    magic: &[0x28, 0xb5, 0x2f, 0xfd],
    decode: decode_zstd,
};

impl Comparator for Compressed {
    fn name(&self) -> &'static str {
        self.name
    }

    fn recognizes(&self, data: &[u8]) -> bool {
        data.starts_with(self.magic)
    }

    fn compare(
        &self,
        control: &[u8],
        experiment: &[u8],
        source: &str,
        context: &Context,
    ) -> Result<Difference, FormatError> {
        let limit = context.limits.max_member_size;
        let (control_content, control_header) = (self.decode)(control, limit)?;
        let (experiment_content, experiment_header) = (self.decode)(experiment, limit)?;
        let what = format!("{} header", self.name);
        let mut children: Vec<Difference> = metadata::difference(
            source,
            self.name,
            &what,
            &control_header,
            &experiment_header,
        )
        .into_iter()
        .collect();
        children.extend(registry::compare(
            &control_content,
            &experiment_content,
            source,
            &context.nested(),
        ));
        Ok(bytes::explained_node(
            control,
            experiment,
            source,
            self.name,
            children,
            "compressed data differs although header and decompressed contents are equal \
             (another compression level or compressor version?)",
            context.limits,
        ))
    }
}

/// Reads all of `reader`, failing once more than `limit` bytes come out.
pub(crate) fn read_bounded(reader: impl Read, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    check_bound(out.len(), limit)?;
    Ok(out)
}

fn check_bound(len: usize, limit: u64) -> std::io::Result<()> {
    if len as u64 > limit {
        return Err(std::io::Error::other(format!(
            "contents larger than max_member_size ({limit} bytes) are not unpacked"
        )));
    }
    Ok(())
}

fn decode_gzip(data: &[u8], limit: u64) -> Result<(Vec<u8>, Fields), FormatError> {
    let mut decoder = flate2::read::MultiGzDecoder::new(data);
    let content = read_bounded(&mut decoder, limit)
        .map_err(|e| FormatError::new("cannot decompress gzip data", e))?;
    let header = decoder
        .header()
        .ok_or_else(|| FormatError("gzip header missing".to_string()))?;
    let text = |field: Option<&[u8]>| {
        field.map_or_else(
            || "(none)".to_string(),
            |f| String::from_utf8_lossy(f).into_owned(),
        )
    };
    let mtime = match header.mtime() {
        0 => "0 (not set)".to_string(),
        t => unix_time(i64::from(t)),
    };
    let fields = vec![
        ("mtime", mtime),
        ("filename", text(header.filename())),
        ("comment", text(header.comment())),
        ("os", header.operating_system().to_string()),
        // XFL reflects the compression level; `recognizes` guarantees the header is there.
        ("extra flags", data.get(8).map_or(0, |b| *b).to_string()),
    ];
    Ok((content, fields))
}

fn decode_xz(data: &[u8], limit: u64) -> Result<(Vec<u8>, Fields), FormatError> {
    let mut out = BoundedWriter {
        data: Vec::new(),
        limit,
    };
    lzma_rs::xz_decompress(&mut &data[..], &mut out)
        .map_err(|e| FormatError::new("cannot decompress xz data", e))?;
    let check = match data.get(7).map(|b| b & 0x0f) {
        Some(0) => "none",
        Some(1) => "crc32",
        Some(4) => "crc64",
        Some(10) => "sha256",
        _ => "other",
    };
    Ok((out.data, vec![("integrity check", check.to_string())]))
}

fn decode_zstd(data: &[u8], limit: u64) -> Result<(Vec<u8>, Fields), FormatError> {
    let mut input = data;
    let mut content = Vec::new();
    // A zstd file is a sequence of frames; each decoder reads one.
    while !input.is_empty() {
        let decoder = ruzstd::decoding::StreamingDecoder::new(&mut input)
            .map_err(|e| FormatError::new("cannot decompress zstd data", e))?;
        let room = limit.saturating_sub(content.len() as u64);
        let frame = read_bounded(decoder, room)
            .map_err(|e| FormatError::new("cannot decompress zstd data", e))?;
        content.extend_from_slice(&frame);
    }
    Ok((content, Fields::new()))
}

/// A `Write` sink for decoders that push their output (lzma-rs) rather than being read.
struct BoundedWriter {
    data: Vec<u8>,
    limit: u64,
}

impl Write for BoundedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        check_bound(self.data.len() + buf.len(), self.limit)?;
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::compare::Limits;
    use crate::compare::test_support::{Scratch, fallback_reason, leaves, run};

    #[test]
    fn gzip_header_mtime_and_content_line() {
        let s = Scratch::new();
        s.write("a/notes.txt", "alpha\nbuilt by alice\nomega\n");
        s.write("b/notes.txt", "alpha\nbuilt by bob\nomega\n");
        run(s.path("a"), "touch", &["-d", "@1700000000", "notes.txt"]);
        run(s.path("b"), "touch", &["-d", "@1700003600", "notes.txt"]);
        // gzip (without -n) stores the file name and mtime in its header.
        run(s.path("a"), "gzip", &["notes.txt"]);
        run(s.path("b"), "gzip", &["notes.txt"]);
        let d = s
            .compare("a/notes.txt.gz", "b/notes.txt.gz", "notes.txt.gz")
            .unwrap();
        assert_eq!(d.comparator, "gzip");
        let leaves = leaves(&d, 2);
        assert_eq!(
            leaves[0].comment.as_deref(),
            Some(
                "gzip header differs: mtime 1700000000 (2023-11-14 22:13:20 UTC) vs \
                 1700003600 (2023-11-14 23:13:20 UTC)"
            )
        );
        assert_eq!(leaves[1].comparator, "text");
        let diff = leaves[1].unified_diff.as_deref().unwrap();
        assert!(diff.contains("-built by alice\n+built by bob\n"), "{diff}");
    }

    #[test]
    fn gzip_level_difference_is_explained() {
        let s = Scratch::new();
        let text: String = (0..2000)
            .map(|i| format!("line {i} {}\n", i * 7919 % 1000))
            .collect();
        s.write("a/f", &text);
        s.write("b/f", &text);
        run(s.path("a"), "gzip", &["-n", "-1", "f"]);
        run(s.path("b"), "gzip", &["-n", "-9", "f"]);
        let d = s.compare("a/f.gz", "b/f.gz", "f.gz").unwrap();
        let leaves = leaves(&d, 1);
        let comment = leaves[0].comment.as_deref().unwrap();
        assert!(
            comment.starts_with("gzip header differs: extra flags 4 vs 2"),
            "{comment}"
        );
    }

    #[test]
    fn xz_and_zstd_contents_are_compared() {
        let s = Scratch::new();
        for tool in ["xz", "zstd"] {
            s.write(&format!("{tool}/a/f"), "same\nTZ=UTC\n");
            s.write(&format!("{tool}/b/f"), "same\nTZ=Asia/Kolkata\n");
            for side in ["a", "b"] {
                run(s.path(&format!("{tool}/{side}")), tool, &["-q", "f"]);
            }
            let ext = if tool == "xz" { "xz" } else { "zst" };
            let d = s
                .compare(
                    &format!("{tool}/a/f.{ext}"),
                    &format!("{tool}/b/f.{ext}"),
                    "f",
                )
                .unwrap();
            assert_eq!(d.comparator, tool);
            let leaves = leaves(&d, 1);
            assert_eq!(
                leaves[0].unified_diff.as_deref(),
                Some("@@ -1,2 +1,2 @@\n same\n-TZ=UTC\n+TZ=Asia/Kolkata\n")
            );
        }
    }

    #[test]
    fn truncated_gzip_falls_back_to_bytes_with_the_error() {
        let s = Scratch::new();
        let text: String = (0..500).map(|i| format!("{i}\n")).collect();
        s.write("f", &text);
        run(s.path(""), "gzip", &["-n", "f"]);
        let whole = std::fs::read(s.path("f.gz")).unwrap();
        s.write_bytes("cut.gz", &whole[..whole.len() / 2]);
        let d = s.compare("f.gz", "cut.gz", "f.gz").unwrap();
        let reason = fallback_reason(&d);
        assert!(
            reason.starts_with("gzip comparator failed: cannot decompress gzip data"),
            "{reason}"
        );
    }

    #[test]
    fn decompression_stops_at_the_member_size_limit() {
        let s = Scratch::new();
        s.write("a/f", &"0".repeat(100_000));
        s.write("b/f", &"1".repeat(100_000));
        run(s.path("a"), "gzip", &["-n", "f"]);
        run(s.path("b"), "gzip", &["-n", "f"]);
        let limits = Limits {
            max_member_size: 10_000,
            ..Limits::default()
        };
        let d = s
            .compare_within("a/f.gz", "b/f.gz", "f.gz", &limits)
            .unwrap();
        let reason = fallback_reason(&d);
        assert!(
            reason.contains("larger than max_member_size (10000 bytes)"),
            "{reason}"
        );
    }
}
