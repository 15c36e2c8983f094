//! Turns the command line into one validated [`Config`]. Every user error is found here,
//! before anything is copied or built.

use crate::cli::{Format, Opts};
use crate::variation::Set;
use crate::vary_expr::{self, Param, VaryError};
use globset::{GlobSet, GlobSetBuilder};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("no build command given: write it after the options, e.g. `vary-build -- make`")]
    NoCommand,
    #[error(
        "the build command's argument {0:?} is not valid UTF-8; pass it through a script instead"
    )]
    NonUtf8Argument(String),
    #[error("source root {path}: {source}; pass an existing directory with -s/--source-root")]
    SourceRoot {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("source root {0} is not a directory; pass a directory with -s/--source-root")]
    SourceRootNotDir(PathBuf),
    #[error("artifact pattern `{pattern}` {why}")]
    Pattern { pattern: String, why: String },
    #[error(transparent)]
    Vary(#[from] VaryError),
    #[error(
        "store dir {0} is not empty; give an empty or new directory so nothing in it is overwritten"
    )]
    StoreDirNotEmpty(PathBuf),
    #[error("store dir {path}: {source}")]
    StoreDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--jobs must be at least 1")]
    ZeroJobs,
    #[error("--timeout `{0}` is not a duration; write e.g. 90s, 30m, 2h or 1h30m")]
    Timeout(String),
}

/// How the artifacts of one build are chosen.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// The patterns as given, for messages and the report.
    pub patterns: Vec<String>,
    /// Matched against paths relative to the build's workspace root, where the source tree
    /// is `SOURCE_NAME/` (so `../x` in a pattern becomes `x`, and `x` becomes `SOURCE_NAME/x`).
    pub set: GlobSet,
    /// One matcher per pattern, to tell which pattern matched nothing.
    pub each: Vec<GlobSet>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub source_root: PathBuf,
    /// The source root's own name; each build's copy has it too (builds may look at it).
    pub source_name: String,
    pub command: Vec<String>,
    pub artifacts: Artifacts,
    pub varied: Set,
    /// The literal `--vary` expression, for the report.
    pub vary_expr: Vec<String>,
    pub params: Vec<Param>,
    pub store_dir: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub format: Format,
    pub seed: u64,
    pub jobs: usize,
    pub timeout: Option<Duration>,
    pub allow_unavailable: bool,
    pub attribute: bool,
}

impl Config {
    pub fn from_opts(opts: Opts) -> Result<Config, ConfigError> {
        let command = opts
            .command
            .iter()
            .map(|a| {
                a.to_str()
                    .map(str::to_string)
                    .ok_or_else(|| ConfigError::NonUtf8Argument(a.to_string_lossy().into_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if command.is_empty() {
            return Err(ConfigError::NoCommand);
        }
        let source_root = check_source_root(&opts.source_root)?;
        let source_name = source_root
            .file_name()
            .map_or_else(|| "source".into(), |n| n.to_string_lossy().into_owned());
        let artifacts = artifacts(&opts.artifacts, &source_name)?;
        let sel = vary_expr::parse(&opts.vary)?;
        if let Some(dir) = &opts.store_dir {
            check_store_dir(dir)?;
        }
        let jobs = match opts.jobs {
            Some(0) => return Err(ConfigError::ZeroJobs),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let timeout = opts
            .timeout
            .as_deref()
            .map(|t| parse_duration(t).ok_or_else(|| ConfigError::Timeout(t.to_string())))
            .transpose()?;
        Ok(Config {
            source_root,
            source_name,
            command,
            artifacts,
            varied: sel.varied,
            vary_expr: if opts.vary.is_empty() {
                vec!["all".into()]
            } else {
                opts.vary
            },
            params: sel.params,
            store_dir: opts.store_dir,
            json: opts.json,
            format: opts.format,
            seed: opts.seed.unwrap_or_else(rand::random),
            jobs,
            timeout,
            allow_unavailable: opts.allow_unavailable,
            attribute: !opts.no_attribute,
        })
    }
}

fn check_source_root(path: &Path) -> Result<PathBuf, ConfigError> {
    let err = |source| ConfigError::SourceRoot {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(err)?;
    if !meta.is_dir() {
        return Err(ConfigError::SourceRootNotDir(path.to_path_buf()));
    }
    // Listing it proves we can read it, before any copying starts.
    std::fs::read_dir(path).map_err(err)?;
    path.canonicalize().map_err(err)
}

fn check_store_dir(dir: &Path) -> Result<(), ConfigError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ConfigError::StoreDirNotEmpty(dir.to_path_buf()));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ConfigError::StoreDir {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Rewrites a user pattern to one relative to the workspace root (see [`Artifacts::set`]).
fn workspace_pattern(pattern: &str, source_name: &str) -> Result<String, String> {
    if pattern.is_empty() {
        return Err("is empty".into());
    }
    if pattern.starts_with('/') {
        return Err("is absolute; write it relative to the source root".into());
    }
    let (beside, rest) = match pattern.strip_prefix("../") {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    if Path::new(rest)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(
            "reaches outside the build's workspace; only one leading `../` is allowed".into(),
        );
    }
    Ok(if beside {
        rest.to_string()
    } else {
        format!("{}/{rest}", globset::escape(source_name))
    })
}

fn artifacts(patterns: &[String], source_name: &str) -> Result<Artifacts, ConfigError> {
    let defaults = ["**".to_string()];
    let given = if patterns.is_empty() {
        &defaults[..]
    } else {
        patterns
    };
    let mut set = GlobSetBuilder::new();
    let mut each = Vec::new();
    for p in given {
        let bad = |why: String| ConfigError::Pattern {
            pattern: p.clone(),
            why,
        };
        let ws = workspace_pattern(p, source_name).map_err(bad)?;
        let glob = globset::GlobBuilder::new(&ws)
            .literal_separator(true)
            .build()
            .map_err(|e| bad(format!("is not a valid glob: {e}")))?;
        set.add(glob.clone());
        each.push(
            GlobSetBuilder::new()
                .add(glob)
                .build()
                .map_err(|e| bad(e.to_string()))?,
        );
    }
    Ok(Artifacts {
        patterns: if patterns.is_empty() {
            vec![]
        } else {
            patterns.to_vec()
        },
        set: set.build().map_err(|e| ConfigError::Pattern {
            pattern: given.join(" "),
            why: e.to_string(),
        })?,
        each,
    })
}

/// Parses `90`, `90s`, `30m`, `2h`, `1h30m`, `1d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        total = total.checked_add(num.parse::<u64>().ok()?.checked_mul(unit)?)?;
        num.clear();
    }
    if !num.is_empty() {
        return None;
    }
    Some(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("10m5"), None);
    }

    #[test]
    fn patterns_map_into_the_workspace_and_never_out_of_it() {
        let wp = |p| workspace_pattern(p, "pkg[1]");
        let g = globset::Glob::new(&wp("out/*.o").unwrap())
            .unwrap()
            .compile_matcher();
        assert!(g.is_match("pkg[1]/out/a.o"));
        assert!(!g.is_match("pkg1/out/a.o"));
        assert_eq!(wp("../*.deb").unwrap(), "*.deb");
        assert!(wp("../../etc/passwd").is_err());
        assert!(wp("a/../../b").is_err());
        assert!(wp("/etc/passwd").is_err());
    }

    #[test]
    fn default_artifacts_are_the_source_tree() {
        let a = artifacts(&[], "src").unwrap();
        assert!(a.set.is_match("src/out.txt"));
        assert!(a.set.is_match("src/deep/dir/x"));
        assert!(!a.set.is_match("x.deb"));
    }
}
