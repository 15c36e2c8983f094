//! The `locales` variation: making sure the experiment locale really exists. A locale that is
//! not installed makes glibc fall back to C without a word, so reprotest-style runs can test
//! nothing; we generate it privately with `localedef` into a directory given by LOCPATH, and
//! report the variation unavailable when that is impossible.

use std::path::{Path, PathBuf};
use std::process::Command;

/// How the experiment locale was made available.
#[derive(Debug, Clone)]
pub enum Setup {
    /// The system has it (`locale -a` lists it).
    Installed,
    /// Generated privately; every build gets LOCPATH pointing here.
    Generated { locpath: PathBuf },
}

/// `tr_TR.UTF-8` → `tr_TR.utf8`, the spelling `locale -a` uses.
fn normalized(name: &str) -> String {
    match name.split_once('.') {
        Some((lang, codeset)) => {
            let cs: String = codeset
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_lowercase())
                .collect();
            format!("{lang}.{cs}")
        }
        None => name.to_string(),
    }
}

pub fn is_installed(name: &str) -> bool {
    let Ok(out) = Command::new("locale").arg("-a").output() else {
        return false;
    };
    let want = normalized(name);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| normalized(l.trim()) == want)
}

/// Where generated locales are cached between runs: generating one takes about a second.
/// Keyed by the C library's version, whose locale format can change between releases.
fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let out = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&out.stdout)
        .trim()
        .replace(' ', "-");
    if version.is_empty() {
        return None;
    }
    Some(base.join("vary-build").join("locales").join(version))
}

/// Makes `name` (like `tr_TR.UTF-8`) usable: installed, cached from an earlier run, or
/// generated (into the cache, else under `fallback_dir`).
/// The error is the reason the variation is unavailable, with what to install.
pub fn prepare(name: &str, fallback_dir: &Path) -> Result<Setup, String> {
    if is_installed(name) {
        return Ok(Setup::Installed);
    }
    if let Some(cache) = cache_dir() {
        if let Ok(setup) = generate(name, &cache) {
            return Ok(setup);
        }
    }
    generate(name, fallback_dir)
}

fn generate(name: &str, dir: &Path) -> Result<Setup, String> {
    let target = dir.join(name);
    if target.join("LC_COLLATE").is_file() && target.join("LC_CTYPE").is_file() {
        return Ok(Setup::Generated {
            locpath: dir.to_path_buf(),
        });
    }
    let (lang, codeset) = name
        .split_once('.')
        .ok_or_else(|| format!("locale `{name}` must be written LANG.CODESET, e.g. tr_TR.UTF-8"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let out = Command::new("localedef")
        .arg("-i")
        .arg(lang)
        .arg("-f")
        .arg(codeset)
        .arg(&target)
        .output()
        .map_err(|e| {
            format!(
                "locale {name} is not installed and localedef could not run ({e}); \
                 install Debian's `locales` package or generate {name} with locale-gen"
            )
        })?;
    // localedef exits 1 for warnings while still writing a usable locale.
    if target.join("LC_COLLATE").is_file() && target.join("LC_CTYPE").is_file() {
        Ok(Setup::Generated {
            locpath: dir.to_path_buf(),
        })
    } else {
        Err(format!(
            "locale {name} is not installed and localedef could not generate it ({}); \
             install Debian's `locales` package (it ships the locale sources) or generate \
             {name} with locale-gen",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_like_locale_a() {
        assert_eq!(normalized("tr_TR.UTF-8"), "tr_TR.utf8");
        assert_eq!(normalized("C.utf8"), "C.utf8");
    }

    #[test]
    fn c_utf8_is_always_installed_on_glibc_2_35_and_later() {
        assert!(is_installed("C.UTF-8"));
        assert!(matches!(
            prepare("C.UTF-8", Path::new("/nonexistent")),
            Ok(Setup::Installed)
        ));
    }

    #[test]
    fn a_locale_without_sources_is_refused_with_a_reason() {
        let dir = std::env::temp_dir().join(format!("vb-locale-test-{}", std::process::id()));
        let err = prepare("xx_NOPE.UTF-8", &dir).unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(err.contains("xx_NOPE.UTF-8"), "{err}");
    }
}
