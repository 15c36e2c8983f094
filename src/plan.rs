//! The plan: concrete control and experiment values for every variation, all drawn from one
//! seed, and the [`BuildSpec`] of any build that varies some subset of them.
//!
//! Values are drawn in a fixed order whatever `--vary` says, so one seed always gives the same
//! values and a run can be replayed. Availability is decided here too: a variation this machine
//! cannot apply is marked unavailable with the reason and the fix, never dropped silently.

use crate::config::Config;
use crate::host::{Host, Isolation};
use crate::spec::{BuildSpec, DirOrder, Identity, Namespaces, View};
use crate::variation::{Kind, Set, locale, time, timezone};
use chrono::{DateTime, Utc};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PlanError {
    #[error("unknown parameter `{kind}.{param}`; {kind} accepts: {accepted}")]
    UnknownParam {
        kind: Kind,
        param: String,
        accepted: &'static str,
    },
    #[error("bad value `{value}` for `{kind}.{param}`: {why}")]
    BadValue {
        kind: Kind,
        param: String,
        value: String,
        why: String,
    },
}

/// A value for the control and one for the experiment.
#[derive(Debug, Clone)]
struct Pair<T> {
    control: T,
    experiment: T,
}

impl<T> Pair<T> {
    fn new(control: T, experiment: T) -> Self {
        Pair {
            control,
            experiment,
        }
    }
    fn pick(&self, varied: bool) -> &T {
        if varied {
            &self.experiment
        } else {
            &self.control
        }
    }
}

pub const ENV_VAR: (&str, &str) = (
    "VARY_BUILD_EXPERIMENT_VAR",
    "vary-build-environment-experiment",
);
const HOME: (&str, &str) = (
    "/nonexistent/vary-build-home",
    "/nonexistent/vary-build-home-experiment",
);
const EXEC_PATH_EXTRA: &str = "/vary-build-exec-path-experiment/bin";
const LOCALE: (&str, &str) = ("C.UTF-8", "tr_TR.UTF-8");
const HOSTS: ((&str, &str), (&str, &str)) = (
    ("vary-build-control-host", "vary-build-control-domain"),
    ("vary-build-host-experiment", "vary-build-domain-experiment"),
);
const UMASK: (u32, u32) = (0o022, 0o002);
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The directory, beside the source tree in every workspace, whose listing order the probe
/// records to verify `fileordering`. Sixteen entries: a shuffle that keeps their order is
/// vanishingly unlikely, and the seed makes it replayable anyway.
pub const ORDER_PROBE_DIR: &str = ".vary-build-order-probe";
pub const ORDER_PROBE_ENTRIES: usize = 16;

/// FAKETIME_SHARED ("SEMAPHORE SHARED_MEMORY") for builds without libfaketime: names no
/// object, so every build has the variable (see [`Plan::spec`]).
const NO_FAKETIME_SHARED: &str = "/vary-build-no-faketime /vary-build-no-faketime";

/// Environment variables whose values vary-build manages; every build has all of them, so
/// only `environment` changes which variables exist.
const MANAGED_ENV: &[&str] = &[
    "HOME",
    "PATH",
    "LANG",
    "LC_ALL",
    "LANGUAGE",
    "TZ",
    "LD_PRELOAD",
    "FAKETIME",
    "FAKETIME_DONT_FAKE_MONOTONIC",
    "NO_FAKE_STAT",
    "FAKETIME_SHARED",
    "LOCPATH",
    "USER",
    "LOGNAME",
    "PWD",
    "OLDPWD",
    ENV_VAR.0,
];

fn identities(home: &Pair<String>) -> Pair<Identity> {
    let id = |n: u32, who: &str, home: &str| Identity {
        uid: n,
        gid: n,
        user: format!("vbuild-{who}"),
        group: format!("vbuild-{who}"),
        gecos: format!("vary-build {who} user"),
        home: home.to_string(),
    };
    Pair::new(
        id(1111, "control", &home.control),
        id(2222, "experiment", &home.experiment),
    )
}

struct Values {
    env_var: (String, String),
    home: Pair<String>,
    path: Pair<String>,
    locale: Pair<String>,
    locpath: Option<PathBuf>,
    timezone: Pair<String>,
    umask: Pair<u32>,
    hosts: Pair<(String, String)>,
    cpus: Pair<Vec<usize>>,
    faketime_lib: Option<PathBuf>,
    time_offset: i64,
    order: Pair<DirOrder>,
}

/// What the report says about one variation before anything is built.
#[derive(Debug, Clone, Serialize)]
pub struct VariationPlan {
    pub name: &'static str,
    pub requested: bool,
    /// Why it cannot be applied here, and what to change.
    pub unavailable: Option<String>,
    pub control: String,
    pub experiment: String,
}

pub struct Plan {
    pub seed: u64,
    pub run_dir: PathBuf,
    pub source_name: String,
    pub namespaces: Namespaces,
    pub variations: Vec<VariationPlan>,
    /// Requested and available: what the experiment varies.
    pub varied: Set,
    pub source_date_epoch: Option<String>,
    argv: Vec<String>,
    base_env: Vec<(String, String)>,
    ld_preload: String,
    values: Values,
}

impl Plan {
    /// Draws every value from the seed, applies `--vary` parameters, and decides availability.
    /// `run_dir` is this run's private directory (a generated locale goes there).
    pub fn new(config: &Config, host: &Host, run_dir: &Path) -> Result<Plan, PlanError> {
        Self::new_at(config, host, run_dir, Utc::now())
    }

    fn new_at(
        config: &Config,
        host: &Host,
        run_dir: &Path,
        now: DateTime<Utc>,
    ) -> Result<Plan, PlanError> {
        let namespaces = match &host.isolation {
            Isolation::UserNamespace => Namespaces::User,
            Isolation::RootNamespaces => Namespaces::Root,
            Isolation::None(_) => Namespaces::None,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let time_offset = time::choose_offset(&mut rng, now);
        let tz_choices = &Kind::Timezone.entry().choices;
        let tz_control = "UTC".to_string();
        let tz_experiment = timezone::choose(&mut rng, tz_choices, &tz_control, now)
            .unwrap_or_else(|| tz_choices[0].clone());
        let mut shuffled = host.cpus.clone();
        shuffled.shuffle(&mut rng);
        let mut subset: Vec<usize> = shuffled[..(host.cpus.len() / 2).max(1)].to_vec();
        subset.sort_unstable();
        let shuffle_seed: u64 = rng.random();

        let user_path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_string());
        let mut values = Values {
            env_var: (ENV_VAR.0.into(), ENV_VAR.1.into()),
            home: Pair::new(HOME.0.into(), HOME.1.into()),
            path: Pair::new(user_path.clone(), format!("{user_path}:{EXEC_PATH_EXTRA}")),
            locale: Pair::new(LOCALE.0.into(), LOCALE.1.into()),
            locpath: None,
            timezone: Pair::new(tz_control, tz_experiment),
            umask: Pair::new(UMASK.0, UMASK.1),
            hosts: Pair::new(
                (HOSTS.0.0.into(), HOSTS.0.1.into()),
                (HOSTS.1.0.into(), HOSTS.1.1.into()),
            ),
            cpus: Pair::new(host.cpus.clone(), subset),
            faketime_lib: time::find_libfaketime(),
            time_offset,
            order: Pair::new(DirOrder::Sorted, DirOrder::Shuffled { seed: shuffle_seed }),
        };
        for p in &config.params {
            apply_param(&mut values, p, host)?;
        }

        let mut variations = Vec::new();
        let mut varied = Set::EMPTY;
        for kind in Kind::ALL {
            let requested = config.varied.contains(kind);
            let unavailable = if requested {
                unavailability(kind, &mut values, host, namespaces, run_dir, now)
            } else {
                None
            };
            if requested && unavailable.is_none() {
                varied.insert(kind);
            }
            let (control, experiment) = describe(kind, &values);
            variations.push(VariationPlan {
                name: kind.name(),
                requested,
                unavailable,
                control,
                experiment,
            });
        }

        // Relative to RUN_DIR (the report's `run_dir`), so that one seed gives one plan; the
        // probe reports the absolute paths the builds saw.
        let path_of = |varies: bool| {
            let root = Self::build_root_in(run_dir, varies);
            let rel = root.strip_prefix(run_dir).unwrap_or(&root);
            format!("RUN_DIR/{}/{}", rel.display(), config.source_name)
        };
        let bp = &mut variations[Kind::BuildPath as usize];
        (bp.control, bp.experiment) = (path_of(false), path_of(true));

        let (base_env, ld_preload, sde) = base_environment();
        let source_date_epoch =
            sde.or_else(|| time::source_date_epoch(&config.source_root).map(|t| t.to_string()));
        Ok(Plan {
            seed: config.seed,
            run_dir: run_dir.to_path_buf(),
            source_name: config.source_name.clone(),
            namespaces,
            variations,
            varied,
            source_date_epoch,
            argv: config.command.clone(),
            base_env,
            ld_preload,
            values,
        })
    }

    /// Where the build root of a build is on the host; the dispatcher creates both.
    pub fn build_root(&self, varies_path: bool) -> PathBuf {
        Self::build_root_in(&self.run_dir, varies_path)
    }

    fn build_root_in(run_dir: &Path, varies_path: bool) -> PathBuf {
        if varies_path {
            run_dir.join("vary-build-path-experiment").join("deeper")
        } else {
            run_dir.join("build")
        }
    }

    /// The spec of a build that varies `varied` (a subset of [`Plan::varied`]).
    pub fn spec(&self, name: &str, varied: Set, workspace: &Path, meta_dir: &Path) -> BuildSpec {
        let on = |k: Kind| varied.contains(k);
        let v = &self.values;
        let build_root = self.build_root(on(Kind::BuildPath));
        let cwd = build_root.join(&self.source_name);
        let identity = match self.namespaces {
            Namespaces::User => Some(identities(&v.home).pick(on(Kind::UserGroup)).clone()),
            Namespaces::Root | Namespaces::None => None,
        };
        let mut env = self.base_env.clone();
        let mut set = |k: &str, val: String| env.push((k.to_string(), val));
        set("HOME", v.home.pick(on(Kind::Home)).clone());
        set("PATH", v.path.pick(on(Kind::ExecPath)).clone());
        let loc = v.locale.pick(on(Kind::Locales)).clone();
        set("LANG", loc.clone());
        set("LC_ALL", loc.clone());
        set(
            "LANGUAGE",
            if on(Kind::Locales) {
                loc.split('.').next().unwrap_or("C").to_string()
            } else {
                "C".into()
            },
        );
        set("TZ", v.timezone.pick(on(Kind::Timezone)).clone());
        let faketime = on(Kind::Time).then_some(v.faketime_lib.as_ref()).flatten();
        set(
            "LD_PRELOAD",
            match faketime {
                Some(lib) if self.ld_preload.is_empty() => lib.display().to_string(),
                Some(lib) => format!("{}:{}", lib.display(), self.ld_preload),
                None => self.ld_preload.clone(),
            },
        );
        set(
            "FAKETIME",
            if faketime.is_some() {
                time::faketime_value(v.time_offset)
            } else {
                String::new()
            },
        );
        set("FAKETIME_DONT_FAKE_MONOTONIC", "1".into());
        // Move the clock only: with faked stat() the files a build reads would seem a year
        // newer, and archivers would record mtimes the files never had (a false culprit).
        set("NO_FAKE_STAT", "1".into());
        // libfaketime puts the name of its semaphore in FAKETIME_SHARED (in the private
        // /dev/shm, the build command always makes one), so builds without it get the variable
        // too. Empty would make a libfaketime the build loads itself exit; a name of nothing is
        // taken as stale and replaced.
        if faketime.is_none() {
            set("FAKETIME_SHARED", NO_FAKETIME_SHARED.into());
        }
        if let Some(lp) = &v.locpath {
            set("LOCPATH", lp.display().to_string());
        }
        if let Some(id) = &identity {
            set("USER", id.user.clone());
            set("LOGNAME", id.user.clone());
        }
        set("PWD", cwd.display().to_string());
        if let Some(sde) = &self.source_date_epoch {
            set("SOURCE_DATE_EPOCH", sde.clone());
        }
        if on(Kind::Environment) {
            set(&v.env_var.0, v.env_var.1.clone());
        }
        env.sort();
        env.dedup_by(|a, b| a.0 == b.0);

        BuildSpec {
            name: name.to_string(),
            varied: varied.names().into_iter().map(String::from).collect(),
            argv: self.argv.clone(),
            env,
            namespaces: self.namespaces,
            workspace: workspace.to_path_buf(),
            order_probe_dir: build_root.join(ORDER_PROBE_DIR),
            build_root,
            cwd,
            view: if self.namespaces == Namespaces::None {
                View::InPlace
            } else if self.varied.contains(Kind::Fileordering) {
                View::Disorder {
                    order: *v.order.pick(on(Kind::Fileordering)),
                }
            } else {
                View::Bind
            },
            identity,
            uts: (self.namespaces != Namespaces::None)
                .then(|| v.hosts.pick(on(Kind::DomainHost)).clone()),
            uname26: on(Kind::Kernel),
            // The control runs with randomisation off so that the experiment turning it on
            // is a real change.
            aslr: on(Kind::Aslr),
            cpus: Some(v.cpus.pick(on(Kind::NumCpus)).clone()),
            umask: *v.umask.pick(on(Kind::Umask)),
            meta_dir: meta_dir.to_path_buf(),
        }
    }
}

/// The caller's environment without the variables vary-build manages, the caller's
/// LD_PRELOAD (kept in every build), and the caller's SOURCE_DATE_EPOCH if set.
fn base_environment() -> (Vec<(String, String)>, String, Option<String>) {
    let mut env = Vec::new();
    let mut ld_preload = String::new();
    let mut sde = None;
    for (k, v) in std::env::vars_os() {
        let (Some(k), Some(v)) = (k.to_str(), v.to_str()) else {
            continue;
        };
        match k {
            "LD_PRELOAD" => ld_preload = v.to_string(),
            "SOURCE_DATE_EPOCH" => sde = Some(v.to_string()),
            _ if MANAGED_ENV.contains(&k) || k.starts_with("VARY_BUILD_") => {}
            _ => env.push((k.to_string(), v.to_string())),
        }
    }
    (env, ld_preload, sde)
}

const PARAMS: &[(Kind, &str)] = &[
    (Kind::Environment, "experiment (NAME=VALUE)"),
    (Kind::Home, "control, experiment (absolute paths)"),
    (Kind::Locales, "experiment (a locale such as de_DE.UTF-8)"),
    (
        Kind::Timezone,
        "control, experiment (zone names such as Asia/Tokyo)",
    ),
    (Kind::Umask, "control, experiment (octal, e.g. 0027)"),
    (Kind::NumCpus, "experiment (a CPU count)"),
    (Kind::Time, "offset_days (more than 365)"),
    (Kind::Fileordering, "order (shuffle or reverse)"),
];

fn apply_param(v: &mut Values, p: &crate::vary_expr::Param, host: &Host) -> Result<(), PlanError> {
    let accepted = PARAMS
        .iter()
        .find(|(k, _)| *k == p.kind)
        .map_or("no parameters", |(_, a)| a);
    let bad = |why: &str| PlanError::BadValue {
        kind: p.kind,
        param: p.param.clone(),
        value: p.value.clone(),
        why: why.to_string(),
    };
    let val = p.value.clone();
    match (p.kind, p.param.as_str()) {
        (Kind::Environment, "experiment") => {
            let (k, x) = val
                .split_once('=')
                .filter(|(k, _)| !k.is_empty() && !k.contains(char::is_whitespace))
                .ok_or_else(|| bad("write NAME=VALUE"))?;
            if MANAGED_ENV.contains(&k) {
                return Err(bad("that variable is managed by another variation"));
            }
            v.env_var = (k.to_string(), x.to_string());
        }
        (Kind::Home, which @ ("control" | "experiment")) => {
            if !val.starts_with('/') {
                return Err(bad("HOME must be an absolute path"));
            }
            set_side(&mut v.home, which, val);
        }
        (Kind::Locales, "experiment") => v.locale.experiment = val,
        (Kind::Timezone, which @ ("control" | "experiment")) => {
            if timezone::face(&val, Utc::now()).is_none() {
                return Err(bad("not a time zone name from the tz database"));
            }
            set_side(&mut v.timezone, which, val);
        }
        (Kind::Umask, which @ ("control" | "experiment")) => {
            let m = u32::from_str_radix(&val, 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| bad("write an octal mask such as 0022"))?;
            set_side(&mut v.umask, which, m);
        }
        (Kind::NumCpus, "experiment") => {
            let n: usize = val.parse().map_err(|_| bad("write a whole number"))?;
            if n == 0 || n >= host.cpus.len() {
                return Err(bad(&format!(
                    "must be from 1 to {} (fewer than the {} CPUs available)",
                    host.cpus.len().saturating_sub(1),
                    host.cpus.len()
                )));
            }
            v.cpus.experiment = host.cpus[..n].to_vec();
        }
        (Kind::Time, "offset_days") => {
            let d: i64 = val
                .parse()
                .map_err(|_| bad("write a whole number of days"))?;
            if d.abs() <= 365 {
                return Err(bad("must be more than 365 days so that the year differs"));
            }
            v.time_offset = d * 86_400;
        }
        (Kind::Fileordering, "order") => {
            v.order.experiment = match val.as_str() {
                "shuffle" => v.order.experiment,
                "reverse" => DirOrder::Reverse,
                _ => return Err(bad("write shuffle or reverse")),
            }
        }
        _ => {
            return Err(PlanError::UnknownParam {
                kind: p.kind,
                param: p.param.clone(),
                accepted,
            });
        }
    }
    Ok(())
}

fn set_side<T>(pair: &mut Pair<T>, which: &str, value: T) {
    if which == "control" {
        pair.control = value;
    } else {
        pair.experiment = value;
    }
}

/// Why `kind` cannot be applied on this machine, if it cannot. May prepare what the variation
/// needs (a private locale) as a side effect.
fn unavailability(
    kind: Kind,
    v: &mut Values,
    host: &Host,
    ns: Namespaces,
    run_dir: &Path,
    now: DateTime<Utc>,
) -> Option<String> {
    match kind {
        Kind::Environment | Kind::Home | Kind::ExecPath | Kind::Umask | Kind::Kernel => None,
        Kind::BuildPath => None,
        Kind::DomainHost | Kind::Fileordering if ns == Namespaces::None => Some(format!(
            "{} needs a {} namespace, and none can be created here: {}",
            kind,
            if kind == Kind::DomainHost {
                "UTS"
            } else {
                "mount"
            },
            host.namespace_problem().unwrap_or("")
        )),
        Kind::DomainHost => None,
        Kind::Aslr => match host.randomize_va_space {
            Some(0) => Some(
                "ASLR is off system-wide (kernel.randomize_va_space=0); enable it with \
                 `sysctl -w kernel.randomize_va_space=2`"
                    .into(),
            ),
            _ => None,
        },
        Kind::NumCpus => (v.cpus.control.len() < 2).then(|| {
            "vary-build may use only one CPU, so the experiment cannot see fewer; run it with \
             at least two CPUs (check taskset or the container's CPU limit)"
                .into()
        }),
        Kind::Time => v.faketime_lib.is_none().then(|| {
            "libfaketime is not installed; install it (Debian: apt-get install libfaketime)".into()
        }),
        Kind::Locales => {
            let mut problems = Vec::new();
            for name in [v.locale.control.clone(), v.locale.experiment.clone()] {
                match locale::prepare(&name, &run_dir.join("locales")) {
                    Ok(locale::Setup::Installed) => {}
                    Ok(locale::Setup::Generated { locpath }) => v.locpath = Some(locpath),
                    Err(why) => problems.push(why),
                }
            }
            (!problems.is_empty()).then(|| problems.join("; "))
        }
        Kind::Timezone => {
            if let Some(why) =
                timezone::incompatibility(&v.timezone.control, &v.timezone.experiment, now)
            {
                return Some(why);
            }
            [&v.timezone.control, &v.timezone.experiment]
                .into_iter()
                .find(|z| *z != "UTC" && !timezone::zoneinfo_present(z))
                .map(|z| {
                    format!(
                        "time zone {z} is not in /usr/share/zoneinfo; install Debian's tzdata package"
                    )
                })
        }
        Kind::UserGroup => (ns != Namespaces::User).then(|| {
            format!(
                "user namespaces are not available, so builds cannot see another uid ({}); see \
                 the README's rootless section to enable them",
                host.namespace_problem()
                    .unwrap_or("as root without a user namespace")
            )
        }),
        Kind::Fileordering => host.fuse.clone().err(),
    }
}

/// The report's text for a variation's two values.
fn describe(kind: Kind, v: &Values) -> (String, String) {
    let pair = |p: &Pair<String>| (p.control.clone(), p.experiment.clone());
    let cpus = |c: &[usize]| {
        let list: Vec<String> = c.iter().map(ToString::to_string).collect();
        format!("{} (CPUs {})", c.len(), list.join(","))
    };
    match kind {
        Kind::Environment => (
            "(no extra variable)".into(),
            format!("{}={}", v.env_var.0, v.env_var.1),
        ),
        Kind::Home => pair(&v.home),
        Kind::ExecPath => pair(&v.path),
        Kind::Locales => pair(&v.locale),
        Kind::Timezone => pair(&v.timezone),
        Kind::Umask => (
            format!("{:04o}", v.umask.control),
            format!("{:04o}", v.umask.experiment),
        ),
        Kind::DomainHost => (
            format!("{} / {}", v.hosts.control.0, v.hosts.control.1),
            format!("{} / {}", v.hosts.experiment.0, v.hosts.experiment.1),
        ),
        Kind::NumCpus => (cpus(&v.cpus.control), cpus(&v.cpus.experiment)),
        Kind::Time => (
            "the real clock".into(),
            format!(
                "the real clock {:+} days ({:+} s, FAKETIME={})",
                v.time_offset / 86_400,
                v.time_offset,
                time::faketime_value(v.time_offset)
            ),
        ),
        Kind::Fileordering => (
            format!("{:?}", v.order.control).to_lowercase(),
            match v.order.experiment {
                DirOrder::Shuffled { seed } => format!("shuffled (seed {seed})"),
                o => format!("{o:?}").to_lowercase(),
            },
        ),
        Kind::UserGroup => {
            let ids = identities(&v.home);
            let d = |i: &Identity| format!("{}:{} {}", i.uid, i.gid, i.user);
            (d(&ids.control), d(&ids.experiment))
        }
        Kind::Aslr => ("off".into(), "on".into()),
        Kind::Kernel => ("the running kernel".into(), "2.6.x (UNAME26)".into()),
        Kind::BuildPath => (String::new(), String::new()), // filled in by Plan::new
    }
}

/// The catalogue text must agree with the constants here; `--help` shows the text.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_text_names_the_values_used() {
        let e = |k: Kind| k.entry();
        assert!(e(Kind::Home).control.contains(HOME.0));
        assert!(e(Kind::Home).experiment.contains(HOME.1));
        assert!(e(Kind::ExecPath).experiment.contains(EXEC_PATH_EXTRA));
        assert!(e(Kind::Locales).experiment.contains(LOCALE.1));
        assert!(e(Kind::DomainHost).experiment.contains(HOSTS.1.0));
        assert!(e(Kind::Environment).experiment.contains(ENV_VAR.0));
        assert!(
            e(Kind::Umask)
                .experiment
                .contains(&format!("{:04o}", UMASK.1))
        );
        let ids = identities(&Pair::new(String::new(), String::new()));
        assert!(e(Kind::UserGroup).experiment.contains(&ids.experiment.user));
        assert!(crate::variation::catalogue().len() == Kind::ALL.len());
    }
}
