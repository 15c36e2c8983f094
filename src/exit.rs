//! Exit codes, defined once. They are part of the stable interface (README, "Exit codes").

use crate::run::Verdict;

pub const REPRODUCIBLE: i32 = 0;
pub const UNREPRODUCIBLE: i32 = 1;
pub const USAGE: i32 = 2;
pub const BUILD_FAILED: i32 = 3;
pub const UNAVAILABLE: i32 = 4;
pub const INTERRUPTED: i32 = 130;

pub fn for_verdict(v: Verdict) -> i32 {
    match v {
        Verdict::Reproducible => REPRODUCIBLE,
        Verdict::Unreproducible => UNREPRODUCIBLE,
        Verdict::NoArtifacts => USAGE,
        Verdict::BuildFailed => BUILD_FAILED,
        Verdict::Unavailable => UNAVAILABLE,
    }
}
