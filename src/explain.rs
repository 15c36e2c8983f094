//! Sentinel evidence: each variation's experiment value is distinctive, so finding it in a
//! difference names the variation that caused it before any extra build is run.

use crate::compare::Difference;
use crate::sandbox::probe::Observations;
use crate::variation::{Kind, Set};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub variation: &'static str,
    pub sentinel: String,
    pub artifact: String,
}

/// The strings that betray each varied variation: the catalogue's fixed sentinels, plus
/// values only known once the experiment ran (its kernel release, zone abbreviation, date).
fn sentinels(
    varied: Set,
    control: &Observations,
    experiment: &Observations,
) -> Vec<(Kind, String)> {
    let mut out = Vec::new();
    for k in varied.iter() {
        for s in &k.entry().sentinels {
            out.push((k, s.clone()));
        }
        let dynamic = match k {
            Kind::Kernel => {
                Some(&experiment.uname_release).filter(|r| **r != control.uname_release)
            }
            Kind::Time => Some(&experiment.date).filter(|d| **d != control.date),
            // An alphabetic abbreviation (NST) or a numeric one with minutes (+0545): both
            // are distinctive enough; a short one like +03 is not.
            Kind::Timezone => Some(&experiment.tz_abbreviation).filter(|a| {
                let alpha = a.len() >= 3 && a.chars().all(|c| c.is_ascii_alphabetic());
                let numeric = a.len() == 5
                    && (a.starts_with('+') || a.starts_with('-'))
                    && a[1..].chars().all(|c| c.is_ascii_digit());
                (alpha || numeric) && **a != control.tz_abbreviation
            }),
            _ => None,
        };
        if let Some(v) = dynamic {
            out.push((k, v.clone()));
        }
    }
    out
}

/// Only what the experiment added: lines starting with `+` in diffs, and comments.
fn experiment_text(d: &Difference) -> String {
    let mut text = String::new();
    for leaf in std::iter::once(d).chain(d.leaves()) {
        if let Some(c) = &leaf.comment {
            text.push_str(c);
            text.push('\n');
        }
        if let Some(u) = &leaf.unified_diff {
            for line in u
                .lines()
                .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
            {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    text
}

/// Sentinels of `varied` found in the differences of the listed artifacts.
pub fn find(
    differences: &[(&str, &Difference)],
    varied: Set,
    control: &Observations,
    experiment: &Observations,
) -> Vec<Evidence> {
    let sentinels = sentinels(varied, control, experiment);
    let mut found = Vec::new();
    for (path, diff) in differences {
        let text = experiment_text(diff);
        for (k, s) in &sentinels {
            if text.contains(s.as_str())
                && !found
                    .iter()
                    .any(|e: &Evidence| e.variation == k.name() && e.artifact == *path)
            {
                found.push(Evidence {
                    variation: k.name(),
                    sentinel: s.clone(),
                    artifact: path.to_string(),
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(diff: &str) -> Difference {
        Difference {
            source: "out.txt".into(),
            comparator: "text".into(),
            comment: None,
            unified_diff: Some(diff.into()),
            children: vec![],
        }
    }

    #[test]
    fn finds_fixed_and_observed_sentinels_on_the_experiment_side_only() {
        let c = Observations {
            uname_release: "6.1.0".into(),
            tz_abbreviation: "UTC".into(),
            ..Default::default()
        };
        let e = Observations {
            uname_release: "2.6.60".into(),
            tz_abbreviation: "NST".into(),
            ..Default::default()
        };
        let d = leaf(
            "@@ -1 +1 @@\n-vary-build-control-host UTC\n+vary-build-host-experiment NST 2.6.60\n",
        );
        let ev = find(&[("out.txt", &d)], Set::all(), &c, &e);
        let names: Vec<&str> = ev.iter().map(|e| e.variation).collect();
        assert_eq!(names, vec!["kernel", "timezone", "domain_host"]);
        let only_control = leaf("-vary-build-host-experiment\n");
        assert!(find(&[("x", &only_control)], Set::all(), &c, &e).is_empty());
    }
}
