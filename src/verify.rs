//! Deciding whether each variation took effect, from what the probe observed inside the
//! control's and the experiment's sandboxes. A variation that was applied but changed nothing
//! the build can see (a locale that fell back to C, a time zone with the same abbreviation)
//! is reported as not effective, never counted as tested.

use crate::sandbox::probe::Observations;
use crate::variation::Kind;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Effect {
    pub observed_control: String,
    pub observed_experiment: String,
    pub effective: bool,
    /// Why it is not effective, when it is not.
    pub problem: Option<String>,
}

/// What the probe saw of `kind`, as text for the report.
fn observed(kind: Kind, o: &Observations) -> String {
    match kind {
        Kind::Environment => o.env_names.join(" "),
        Kind::BuildPath => o.cwd.clone(),
        Kind::Kernel => o.uname_release.clone(),
        Kind::Aslr => if o.aslr { "on" } else { "off" }.into(),
        Kind::NumCpus => o.nproc.to_string(),
        Kind::Time => o.date.clone(),
        Kind::Home => o.home.clone().unwrap_or_default(),
        Kind::Locales => o
            .locale
            .clone()
            .unwrap_or_else(|| "(failed to load)".into()),
        Kind::ExecPath => o.path.clone().unwrap_or_default(),
        Kind::Timezone => format!("{} {:+}", o.tz_abbreviation, o.tz_offset_secs),
        Kind::Umask => format!("{:04o}", o.umask),
        Kind::DomainHost => format!("{} / {}", o.nodename, o.domainname),
        Kind::UserGroup => format!(
            "{}:{} {} ({})",
            o.uid,
            o.gid,
            o.user.as_deref().unwrap_or("?"),
            o.gecos.as_deref().unwrap_or("")
        ),
        Kind::Fileordering => o.listing.join(" "),
    }
}

/// Compares the observations of a build with `kind` at its control value and one with it at
/// its experiment value.
pub fn effect(kind: Kind, c: &Observations, e: &Observations) -> Effect {
    let (oc, oe) = (observed(kind, c), observed(kind, e));
    let problem = match kind {
        Kind::Locales if e.locale.is_none() => {
            Some("the experiment locale failed to load, so the build ran in C".to_string())
        }
        Kind::Timezone if c.tz_abbreviation == e.tz_abbreviation => Some(format!(
            "both builds print the time zone abbreviation {}",
            c.tz_abbreviation
        )),
        Kind::Timezone if c.tz_offset_secs == e.tz_offset_secs => {
            Some("both builds have the same UTC offset".to_string())
        }
        Kind::Time => {
            let parts = |d: &str| d.split('-').map(str::to_string).collect::<Vec<_>>();
            let (pc, pe) = (parts(&c.date), parts(&e.date));
            (pc.len() != 3 || pe.len() != 3 || pc.iter().zip(&pe).any(|(a, b)| a == b)).then(|| {
                format!(
                    "the experiment's date {} does not differ from {} in year, month and day \
                         (is the build's libc able to load libfaketime?)",
                    e.date, c.date
                )
            })
        }
        _ if oc == oe => Some(format!("both builds observed `{oc}`")),
        _ => None,
    };
    Effect {
        observed_control: oc,
        observed_experiment: oe,
        effective: problem.is_none(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs() -> Observations {
        Observations {
            tz_abbreviation: "UTC".into(),
            date: "2026-11-22".into(),
            locale: Some("C.UTF-8".into()),
            ..Default::default()
        }
    }

    #[test]
    fn same_abbreviation_time_zones_are_not_effective() {
        let c = obs();
        let mut e = obs();
        e.tz_offset_secs = 3600;
        let eff = effect(Kind::Timezone, &c, &e);
        assert!(!eff.effective, "{eff:?}");
        e.tz_abbreviation = "CET".into();
        assert!(effect(Kind::Timezone, &c, &e).effective);
    }

    #[test]
    fn time_must_change_year_month_and_day() {
        let c = obs();
        let mut e = obs();
        e.date = "2028-01-22".into();
        assert!(!effect(Kind::Time, &c, &e).effective);
        e.date = "2028-01-23".into();
        assert!(effect(Kind::Time, &c, &e).effective);
    }

    #[test]
    fn a_locale_that_fell_back_is_not_effective() {
        let c = obs();
        let mut e = obs();
        e.locale = None;
        assert!(!effect(Kind::Locales, &c, &e).effective);
        e.locale = Some("tr_TR.UTF-8".into());
        assert!(effect(Kind::Locales, &c, &e).effective);
        assert!(!effect(Kind::Umask, &c, &c).effective);
    }
}
