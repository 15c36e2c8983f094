//! A [`BuildSpec`]: everything one build's sandbox must set up, as plain data.
//!
//! The plan writes it, the dispatcher hands it to `vary-build __sandbox` as a JSON file, and
//! the sandbox alone applies it. Nothing here does anything.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The user and group a build runs as, inside its user namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub group: String,
    pub gecos: String,
    pub home: String,
}

/// How the workspace appears at the build root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum View {
    /// A bind mount: the build sees the workspace as it is.
    Bind,
    /// Our disorderfs FUSE mount, listing directories in this order.
    Disorder { order: DirOrder },
    /// The workspace already is at the build root (no mount namespace to mount in).
    InPlace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "order")]
pub enum DirOrder {
    Sorted,
    Reverse,
    Shuffled { seed: u64 },
}

/// Which namespaces the sandbox creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Namespaces {
    /// User namespace first (any caller), then mount, UTS, IPC and PID namespaces.
    User,
    /// Mount, UTS, IPC and PID namespaces without a user namespace (root only).
    Root,
    /// No namespaces (unprivileged user namespaces are disabled): the dispatcher moves the
    /// workspace to the build path itself and runs builds sharing a path one at a time; the
    /// sandbox's init is a child subreaper that kills what the build leaves behind.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSpec {
    pub name: String,
    /// Names of the variations at their experiment value in this build.
    pub varied: Vec<String>,
    pub argv: Vec<String>,
    /// The complete environment of the build, in a fixed order.
    pub env: Vec<(String, String)>,
    pub namespaces: Namespaces,
    /// The build's workspace on the host: it holds the copy of the source tree.
    pub workspace: PathBuf,
    /// Where the workspace appears inside the sandbox.
    pub build_root: PathBuf,
    /// The build's working directory (inside `build_root`).
    pub cwd: PathBuf,
    pub view: View,
    pub identity: Option<Identity>,
    /// (host name, NIS domain name).
    pub uts: Option<(String, String)>,
    pub uname26: bool,
    pub aslr: bool,
    pub cpus: Option<Vec<usize>>,
    pub umask: u32,
    /// Where the sandbox writes `probe.json` and `sandbox-error.txt` (host path).
    pub meta_dir: PathBuf,
    /// A directory under `build_root` with entries whose listed order the probe records.
    pub order_probe_dir: PathBuf,
}

/// The sandbox's exit code when it failed before the build started; the reason is in
/// `meta_dir/sandbox-error.txt`.
pub const SANDBOX_FAILED: i32 = 125;
