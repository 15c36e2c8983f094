//! Workspaces: the private copy of the source tree each build runs in, and the run directory
//! that holds them all and is removed, whatever happens, when the run ends.
//!
//! Copying keeps modes and modification times (so make's timestamp logic and any
//! mtime-dependent output behave as in the source tree), copies symlinks as symlinks without
//! ever following them (so loops and links out of the tree are harmless), and skips sockets,
//! fifos and devices with a warning. The source tree itself is only ever read.

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum WorkspaceError {
    #[error(
        "cannot copy {path} into the build's workspace: {source}; make it readable, or move it out of the source tree"
    )]
    Copy { path: PathBuf, source: io::Error },
    #[error("cannot walk the source tree at {path}: {source}")]
    Walk { path: PathBuf, source: io::Error },
    #[error(
        "cannot create the run directory in {dir}: {source}; set TMPDIR to a writable directory"
    )]
    RunDir { dir: PathBuf, source: io::Error },
}

/// The outcome of a copy: what was skipped and why.
#[derive(Debug, Default)]
pub struct CopyReport {
    pub warnings: Vec<String>,
    pub files: u64,
}

fn copy_err(path: &Path) -> impl FnOnce(io::Error) -> WorkspaceError + '_ {
    move |source| WorkspaceError::Copy {
        path: path.to_path_buf(),
        source,
    }
}

fn set_times(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let at = TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mt = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    utimensat(None, path, &at, &mt, UtimensatFlags::NoFollowSymlink)
        .map_err(|e| io::Error::from_raw_os_error(e as i32))
}

/// Copies the tree at `src` to `dst` (which must not exist).
pub fn copy_tree(src: &Path, dst: &Path) -> Result<CopyReport, WorkspaceError> {
    let mut report = CopyReport::default();
    let mut dirs = Vec::new();
    for entry in walkdir::WalkDir::new(src)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| WorkspaceError::Walk {
            path: e.path().unwrap_or(src).to_path_buf(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| io::Error::other("walk failed")),
        })?;
        let rel = entry
            .path()
            .strip_prefix(src)
            .expect("walkdir stays below its root");
        let to = dst.join(rel);
        let from = entry.path();
        let meta = entry.metadata().map_err(|e| WorkspaceError::Copy {
            path: from.to_path_buf(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| io::Error::other("stat failed")),
        })?;
        let ft = meta.file_type();
        if ft.is_dir() {
            fs::create_dir(&to).map_err(copy_err(from))?;
            dirs.push((to, meta));
        } else if ft.is_symlink() {
            let target = fs::read_link(from).map_err(copy_err(from))?;
            std::os::unix::fs::symlink(&target, &to).map_err(copy_err(from))?;
            set_times(&to, &meta).map_err(copy_err(from))?;
            report.files += 1;
        } else if ft.is_file() {
            fs::copy(from, &to).map_err(copy_err(from))?;
            set_times(&to, &meta).map_err(copy_err(from))?;
            report.files += 1;
        } else {
            report.warnings.push(format!(
                "skipped {} (a socket, fifo or device cannot be copied into a workspace)",
                from.display()
            ));
        }
    }
    // Directories last, deepest first: their modes may forbid writing into them, and adding
    // entries would change their mtimes.
    for (dir, meta) in dirs.iter().rev() {
        fs::set_permissions(dir, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(copy_err(dir))?;
        set_times(dir, meta).map_err(copy_err(dir))?;
    }
    Ok(report)
}

/// Removes a tree that a build may have left read-only.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    for entry in walkdir::WalkDir::new(path).follow_links(false) {
        let Ok(entry) = entry else { continue };
        if entry.file_type().is_dir() {
            let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700));
        }
    }
    fs::remove_dir_all(path)
}

/// This run's private directory, removed when dropped (on success, error and interrupt).
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    keep: bool,
}

/// The file in a run directory that names the vary-build process owning it.
const OWNER_FILE: &str = "owner";

/// `PID START` of a process (its start time in clock ticks since boot), which tells a live
/// owner from a later process that reused its pid.
fn process_identity(pid: u32) -> Option<String> {
    let start = crate::procstat::stat_field(pid, 22)?;
    Some(format!("{pid} {start}"))
}

/// Removes run directories in `base` whose owner is gone: what a vary-build killed with
/// SIGKILL could not clean up itself. Directories of live runs, and ones we cannot read,
/// are left alone.
pub fn sweep_stale_runs(base: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(base) else {
        return removed;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_run = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with("vary-build-run."));
        let Ok(owner) = std::fs::read_to_string(path.join(OWNER_FILE)) else {
            continue;
        };
        let alive = owner
            .split(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .and_then(process_identity)
            .is_some_and(|now| now == owner.trim());
        if is_run && !alive && remove_tree(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

impl RunDir {
    pub fn create() -> Result<RunDir, WorkspaceError> {
        let base = std::env::temp_dir();
        for stale in sweep_stale_runs(&base) {
            eprintln!(
                "vary-build: removed {}, left by a vary-build that was killed",
                stale.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("vary-build-run.")
            .tempdir_in(&base)
            .map_err(|source| WorkspaceError::RunDir {
                dir: base.clone(),
                source,
            })?;
        let run = RunDir {
            path: dir.keep(),
            keep: false,
        };
        let me = process_identity(std::process::id()).unwrap_or_default();
        std::fs::write(run.path.join(OWNER_FILE), me).map_err(|source| WorkspaceError::RunDir {
            dir: run.path.clone(),
            source,
        })?;
        Ok(run)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = remove_tree(&self.path) {
                eprintln!(
                    "vary-build: could not remove {}: {e}; remove it by hand",
                    self.path.display()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn stale_run_dirs_are_swept_and_live_ones_kept() {
        let base = tempfile::tempdir().unwrap();
        let live = base.path().join("vary-build-run.live");
        let dead = base.path().join("vary-build-run.dead");
        let other = base.path().join("not-ours");
        for d in [&live, &dead, &other] {
            fs::create_dir(d).unwrap();
        }
        let me = process_identity(std::process::id()).unwrap();
        fs::write(live.join(OWNER_FILE), &me).unwrap();
        // Our pid with another start time: a process that reused a dead run's pid.
        fs::write(dead.join(OWNER_FILE), format!("{} 1", std::process::id())).unwrap();
        fs::write(other.join(OWNER_FILE), "1 1").unwrap();
        let removed = sweep_stale_runs(base.path());
        assert_eq!(removed, vec![dead.clone()]);
        assert!(live.exists() && other.exists() && !dead.exists());
    }

    #[test]
    fn copies_modes_mtimes_and_symlinks_without_following_them() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("d")).unwrap();
        fs::write(src.join("d/x.sh"), "echo hi").unwrap();
        fs::set_permissions(src.join("d/x.sh"), fs::Permissions::from_mode(0o751)).unwrap();
        symlink("/etc/passwd", src.join("out")).unwrap();
        symlink("loop", src.join("loop")).unwrap();
        fs::set_permissions(src.join("d"), fs::Permissions::from_mode(0o555)).unwrap();
        let dst = t.path().join("dst");
        let r = copy_tree(&src, &dst).unwrap();
        assert_eq!(r.files, 3);
        let m = fs::metadata(dst.join("d/x.sh")).unwrap();
        assert_eq!(m.mode() & 0o777, 0o751);
        assert_eq!(m.mtime(), fs::metadata(src.join("d/x.sh")).unwrap().mtime());
        assert_eq!(
            fs::read_link(dst.join("out")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(fs::read_link(dst.join("loop")).unwrap(), Path::new("loop"));
        assert_eq!(fs::metadata(dst.join("d")).unwrap().mode() & 0o777, 0o555);
        remove_tree(&dst).unwrap();
        assert!(!dst.exists());
        fs::set_permissions(src.join("d"), fs::Permissions::from_mode(0o755)).unwrap();
    }
}
