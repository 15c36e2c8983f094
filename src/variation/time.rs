//! The `time` variation: where libfaketime is, which clock offset the experiment gets, and the
//! SOURCE_DATE_EPOCH every build shares.

use chrono::{DateTime, Datelike, Duration, Utc};
use rand::Rng;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian and other distributions install libfaketime. The multi-threaded variant is
/// preferred because build tools (make -j, cargo, ninja) start threads.
const LIBFAKETIME_CANDIDATES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/i386-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
    "/usr/local/lib/faketime/libfaketimeMT.so.1",
    "/usr/lib64/faketime/libfaketimeMT.so.1",
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];

pub fn find_libfaketime() -> Option<PathBuf> {
    LIBFAKETIME_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Chooses a forward clock offset of 400 to 800 days (plus some hours) such that year, month
/// and day of month all differ from `now`'s: a build that embeds any one of them is caught.
pub fn choose_offset(rng: &mut impl Rng, now: DateTime<Utc>) -> i64 {
    loop {
        let secs = rng.random_range(400 * 86_400..800 * 86_400i64);
        let later = now + Duration::seconds(secs);
        // Also check the end of a long build (one day later) still differs in every field.
        let later_end = later + Duration::days(1);
        let differs = |t: DateTime<Utc>| {
            t.year() != now.year() && t.month() != now.month() && t.day() != now.day()
        };
        if differs(later) && differs(later_end) {
            return secs;
        }
    }
}

/// The FAKETIME value for an offset: libfaketime reads a bare signed number as seconds.
pub fn faketime_value(offset_secs: i64) -> String {
    format!("{offset_secs:+}")
}

/// SOURCE_DATE_EPOCH for a source tree: the last commit time of a git checkout, else the
/// newest modification time of any file in it. Both builds get the same value.
pub fn source_date_epoch(root: &Path) -> Option<i64> {
    if root.join(".git").exists() {
        let out = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["log", "-1", "--format=%ct"])
            .output()
            .ok()?;
        if out.status.success() {
            if let Ok(v) = String::from_utf8_lossy(&out.stdout).trim().parse() {
                return Some(v);
            }
        }
    }
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter_map(|m| m.modified().ok())
        .filter_map(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn offsets_change_year_month_and_day_and_are_seeded() {
        let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        for seed in 0..50 {
            let a = choose_offset(&mut ChaCha8Rng::seed_from_u64(seed), now);
            let b = choose_offset(&mut ChaCha8Rng::seed_from_u64(seed), now);
            assert_eq!(a, b);
            let t = now + Duration::seconds(a);
            assert!(t.year() != now.year() && t.month() != now.month() && t.day() != now.day());
            assert!(a > 365 * 86_400);
        }
    }

    #[test]
    fn faketime_value_is_signed_seconds() {
        assert_eq!(faketime_value(34_560_000), "+34560000");
    }
}
