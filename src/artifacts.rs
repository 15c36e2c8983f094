//! Collecting a build's artifacts: the files its patterns select, with their hashes.
//!
//! Paths are reported relative to the source root; an artifact written beside the tree (a
//! `../` pattern) is reported as `../NAME`. A symlink is an artifact too: its hash is that of
//! its target text, never of what it points to.

use crate::config::Artifacts;
use crate::plan::ORDER_PROBE_DIR;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    /// Where it is in this build's workspace.
    #[serde(skip)]
    pub location: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub symlink: bool,
}

/// A build's artifacts by reported path, and how many each pattern matched.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    pub artifacts: BTreeMap<String, Artifact>,
    pub matches_per_pattern: Vec<usize>,
}

fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex(&h.finalize()), size))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Collects the artifacts of the build whose workspace is `workspace`, where the source tree
/// is `workspace/source_name`.
pub fn collect(workspace: &Path, source_name: &str, spec: &Artifacts) -> io::Result<Collected> {
    let mut out = Collected {
        artifacts: BTreeMap::new(),
        matches_per_pattern: vec![0; spec.each.len()],
    };
    let git_dir = Path::new(source_name).join(".git");
    let walker = walkdir::WalkDir::new(workspace)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let rel = e.path().strip_prefix(workspace).unwrap_or(e.path());
            // The order probe is ours, not the build's; .git is noise unless asked for.
            rel != Path::new(ORDER_PROBE_DIR) && !(spec.patterns.is_empty() && rel == git_dir)
        });
    for entry in walker {
        let entry = entry.map_err(|e| {
            e.into_io_error()
                .unwrap_or_else(|| io::Error::other("walking the workspace failed"))
        })?;
        let ft = entry.file_type();
        if !(ft.is_file() || ft.is_symlink()) {
            continue;
        }
        let rel = entry.path().strip_prefix(workspace).unwrap_or(entry.path());
        if !spec.set.is_match(rel) {
            continue;
        }
        for (i, one) in spec.each.iter().enumerate() {
            if one.is_match(rel) {
                out.matches_per_pattern[i] += 1;
            }
        }
        let (sha256, size) = if ft.is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            let bytes = target.as_os_str().as_bytes();
            (hex(&Sha256::digest(bytes)), bytes.len() as u64)
        } else {
            sha256_file(entry.path())?
        };
        out.artifacts.insert(
            display_path(rel, source_name),
            Artifact {
                location: entry.path().to_path_buf(),
                sha256,
                size,
                symlink: ft.is_symlink(),
            },
        );
    }
    Ok(out)
}

/// `src/x` → `x`; `x.deb` (beside the tree) → `../x.deb`.
fn display_path(rel: &Path, source_name: &str) -> String {
    match rel.strip_prefix(source_name) {
        Ok(inner) => inner.to_string_lossy().into_owned(),
        Err(_) => format!("../{}", rel.to_string_lossy()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use globset::{Glob, GlobSetBuilder};

    fn spec(patterns: &[&str]) -> Artifacts {
        let mut all = GlobSetBuilder::new();
        let mut each = vec![];
        for p in patterns {
            let g = Glob::new(p).unwrap();
            all.add(g.clone());
            each.push(GlobSetBuilder::new().add(g).build().unwrap());
        }
        Artifacts {
            patterns: vec![],
            set: all.build().unwrap(),
            each,
        }
    }

    #[test]
    fn collects_files_and_symlinks_with_paths_relative_to_the_source() {
        let t = tempfile::tempdir().unwrap();
        let ws = t.path();
        std::fs::create_dir_all(ws.join("pkg/.git")).unwrap();
        std::fs::create_dir_all(ws.join(ORDER_PROBE_DIR)).unwrap();
        std::fs::write(ws.join("pkg/out.txt"), "hello").unwrap();
        std::fs::write(ws.join("pkg/.git/index"), "x").unwrap();
        std::fs::write(ws.join("pkg_1.0.deb"), "deb").unwrap();
        std::fs::write(ws.join(ORDER_PROBE_DIR).join("a"), "").unwrap();
        std::os::unix::fs::symlink("out.txt", ws.join("pkg/link")).unwrap();
        let c = collect(ws, "pkg", &spec(&["pkg/**", "*.deb"])).unwrap();
        let keys: Vec<&str> = c.artifacts.keys().map(String::as_str).collect();
        assert_eq!(keys, vec!["../pkg_1.0.deb", "link", "out.txt"]);
        assert_eq!(
            c.artifacts["out.txt"].sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(c.artifacts["link"].symlink);
        assert_eq!(c.matches_per_pattern, vec![2, 1]);
    }
}
