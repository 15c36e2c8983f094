//! Command-line definitions only; validation happens in [`crate::config`].

use clap::{Parser, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// Build the same source twice or more while varying unintentional inputs (clock, host name,
/// time zone, locale, user, build path, kernel, ASLR, CPUs, umask, HOME, PATH, environment,
/// directory order), then say whether the output is reproducible and, if not, which variation
/// broke it and where the outputs differ.
#[derive(Debug, Parser)]
#[command(
    name = "vary-build",
    version,
    after_help = "Exit codes: 0 reproducible, 1 not reproducible, 2 usage or configuration error, \
                  3 a build failed, 4 a variation was unavailable or did not take effect, 130 interrupted.\n\
                  Run with --help (not -h) for the list of variations.",
    after_long_help = long_help()
)]
pub struct Opts {
    /// The source tree to build; it is copied, never modified.
    #[arg(short = 's', long, value_name = "DIR", default_value = ".")]
    pub source_root: PathBuf,

    /// Artifacts to compare: a glob relative to the source root, repeatable. May begin with
    /// `../` for outputs written beside the tree (as dpkg-buildpackage writes ../*.deb).
    /// Default: every file in the source tree after the build, except .git/.
    #[arg(short = 'a', long = "artifacts", value_name = "PATTERN")]
    pub artifacts: Vec<String>,

    /// What to vary (reprotest syntax, applied in order): all, none, +NAME, -NAME, @NAME (only
    /// this), NAME.PARAM=VALUE; comma-separated, repeatable. Default: all.
    #[arg(long, value_name = "EXPR", allow_hyphen_values = true)]
    pub vary: Vec<String>,

    /// Keep each build's artifacts and log, and the reports, in DIR (must be empty or absent).
    #[arg(long, value_name = "DIR")]
    pub store_dir: Option<PathBuf>,

    /// Write the JSON report (schema vary-build/report/v1) to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Format of the report on standard output.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Seed for every random choice; the report records it so a run can be replayed.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// How many builds run at once. Default: the number of CPUs.
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Kill a build (with its whole process tree) that runs longer than this, e.g. 90s, 30m, 2h.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,

    /// Carry on when a requested variation is unavailable or does not take effect (it is
    /// reported, and the exit code no longer says 4).
    #[arg(long)]
    pub allow_unavailable: bool,

    /// Do not run extra builds to find which variation caused a difference.
    #[arg(long)]
    pub no_attribute: bool,

    /// The build command and its arguments (run directly, not through a shell).
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

fn long_help() -> String {
    let mut s = crate::variation::help_text();
    s.push_str(
        "\nExit codes:\n  0 reproducible\n  1 not reproducible\n  2 usage or configuration error\n  \
         3 a build failed\n  4 a requested variation was unavailable or did not take effect\n  130 interrupted\n",
    );
    s
}
