//! The variation catalogue: what each variation is called, what it changes, and how to fix a
//! build that depends on it.
//!
//! The descriptive half of each variation lives in `variations/NAME.yaml` (compiled in) so
//! that the catalogue, `--help` and the report speak with one voice. The mechanism half lives
//! in Rust: [`Kind`] names it, the sibling modules choose seeded values, and the sandbox
//! applies them. A YAML file without a mechanism, or a mechanism without a YAML file, fails
//! the catalogue test.

pub mod locale;
pub mod time;
pub mod timezone;

use serde::{Deserialize, Serialize};
use std::fmt;

/// One variation's mechanism. The order here is the catalogue's display order and the order
/// in which variations are listed in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Environment,
    BuildPath,
    Kernel,
    Aslr,
    NumCpus,
    Time,
    Home,
    Locales,
    ExecPath,
    Timezone,
    Umask,
    DomainHost,
    UserGroup,
    Fileordering,
}

impl Kind {
    pub const ALL: [Kind; 14] = [
        Kind::Environment,
        Kind::BuildPath,
        Kind::Kernel,
        Kind::Aslr,
        Kind::NumCpus,
        Kind::Time,
        Kind::Home,
        Kind::Locales,
        Kind::ExecPath,
        Kind::Timezone,
        Kind::Umask,
        Kind::DomainHost,
        Kind::UserGroup,
        Kind::Fileordering,
    ];

    /// The reprotest-compatible name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Environment => "environment",
            Kind::BuildPath => "build_path",
            Kind::Kernel => "kernel",
            Kind::Aslr => "aslr",
            Kind::NumCpus => "num_cpus",
            Kind::Time => "time",
            Kind::Home => "home",
            Kind::Locales => "locales",
            Kind::ExecPath => "exec_path",
            Kind::Timezone => "timezone",
            Kind::Umask => "umask",
            Kind::DomainHost => "domain_host",
            Kind::UserGroup => "user_group",
            Kind::Fileordering => "fileordering",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The catalogue entry for this variation.
    pub fn entry(self) -> &'static Entry {
        &catalogue()[self as usize]
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The descriptive half of a variation, as written in `variations/NAME.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    pub description: String,
    pub control: String,
    pub experiment: String,
    #[serde(default)]
    pub choices: Vec<String>,
    /// Distinctive substrings of the experiment value: finding one in a difference explains it.
    #[serde(default)]
    pub sentinels: Vec<String>,
    pub needs: String,
    pub fix: String,
}

const SOURCES: [(&str, &str); 14] = [
    (
        "environment",
        include_str!("../../variations/environment.yaml"),
    ),
    (
        "build_path",
        include_str!("../../variations/build_path.yaml"),
    ),
    ("kernel", include_str!("../../variations/kernel.yaml")),
    ("aslr", include_str!("../../variations/aslr.yaml")),
    ("num_cpus", include_str!("../../variations/num_cpus.yaml")),
    ("time", include_str!("../../variations/time.yaml")),
    ("home", include_str!("../../variations/home.yaml")),
    ("locales", include_str!("../../variations/locales.yaml")),
    ("exec_path", include_str!("../../variations/exec_path.yaml")),
    ("timezone", include_str!("../../variations/timezone.yaml")),
    ("umask", include_str!("../../variations/umask.yaml")),
    (
        "domain_host",
        include_str!("../../variations/domain_host.yaml"),
    ),
    (
        "user_group",
        include_str!("../../variations/user_group.yaml"),
    ),
    (
        "fileordering",
        include_str!("../../variations/fileordering.yaml"),
    ),
];

/// The compiled-in catalogue, indexed like [`Kind::ALL`].
pub fn catalogue() -> &'static [Entry] {
    static CATALOGUE: std::sync::OnceLock<Vec<Entry>> = std::sync::OnceLock::new();
    CATALOGUE.get_or_init(|| {
        SOURCES
            .iter()
            .map(|(name, text)| {
                // The catalogue is compiled in and checked by a unit test, so a parse error
                // here is a bug in this build of vary-build, not a user error.
                let entry: Entry = serde_yaml_ng::from_str(text)
                    .unwrap_or_else(|e| panic!("variations/{name}.yaml is invalid: {e}"));
                assert_eq!(
                    entry.name, *name,
                    "variations/{name}.yaml names itself wrongly"
                );
                entry
            })
            .collect()
    })
}

/// A set of variations, kept in catalogue order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Set(u16);

impl Set {
    pub const EMPTY: Set = Set(0);

    pub fn all() -> Set {
        Kind::ALL.into_iter().collect()
    }
    pub fn contains(self, k: Kind) -> bool {
        self.0 & (1 << k as u16) != 0
    }
    pub fn insert(&mut self, k: Kind) {
        self.0 |= 1 << k as u16;
    }
    pub fn remove(&mut self, k: Kind) {
        self.0 &= !(1 << k as u16);
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    pub fn iter(self) -> impl Iterator<Item = Kind> {
        Kind::ALL.into_iter().filter(move |k| self.contains(*k))
    }
    pub fn union(self, other: Set) -> Set {
        Set(self.0 | other.0)
    }
    pub fn intersection(self, other: Set) -> Set {
        Set(self.0 & other.0)
    }
    pub fn difference(self, other: Set) -> Set {
        Set(self.0 & !other.0)
    }
    pub fn is_subset(self, other: Set) -> bool {
        self.0 & !other.0 == 0
    }
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Kind::name).collect()
    }
}

impl FromIterator<Kind> for Set {
    fn from_iter<I: IntoIterator<Item = Kind>>(iter: I) -> Self {
        let mut s = Set::EMPTY;
        for k in iter {
            s.insert(k);
        }
        s
    }
}

impl fmt::Display for Set {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(", "))
    }
}

/// The catalogue as text for `--help`: every variation with its control and experiment values.
pub fn help_text() -> String {
    let mut out = String::from("Variations (names as in reprotest):\n");
    for e in catalogue() {
        out.push_str(&format!(
            "  {}\n      {}\n      control:    {}\n      experiment: {}\n      needs:      {}\n",
            e.name, e.description, e.control, e.experiment, e.needs
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_yaml_entry() {
        for k in Kind::ALL {
            assert_eq!(k.entry().name, k.name());
            assert_eq!(Kind::from_name(k.name()), Some(k));
        }
    }

    #[test]
    fn sentinels_are_distinct_and_never_substrings_of_control_values() {
        let all: Vec<&str> = catalogue()
            .iter()
            .flat_map(|e| e.sentinels.iter().map(String::as_str))
            .collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert!(!a.contains(b) && !b.contains(a), "{a} and {b} overlap");
            }
        }
        for e in catalogue() {
            for s in &e.sentinels {
                assert!(
                    !e.control.contains(s.as_str()),
                    "{} control has sentinel {s}",
                    e.name
                );
            }
        }
    }

    #[test]
    fn set_operations_keep_catalogue_order() {
        let s: Set = [Kind::Umask, Kind::Environment, Kind::Time]
            .into_iter()
            .collect();
        assert_eq!(s.names(), vec!["environment", "time", "umask"]);
        assert_eq!(s.len(), 3);
        assert!(s.difference(Set::all()).is_empty());
        assert!(!s.contains(Kind::Kernel));
    }
}
