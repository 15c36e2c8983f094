//! The `timezone` variation: choosing a real zone whose UTC offset and abbreviation both
//! differ from the control's. reprotest's GMT+12 / GMT-14 both print "GMT" for `date +%Z`,
//! so a build embedding only the abbreviation looked reproducible; we check both.

use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::{OffsetName, Tz};
use rand::Rng;
use std::path::Path;

/// A zone's observable face at one instant: what `date +%Z` and `date +%z` print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Face {
    pub abbreviation: String,
    pub offset_secs: i32,
}

impl Face {
    /// `+hhmm` as `date +%z` prints it.
    pub fn offset_text(&self) -> String {
        let s = self.offset_secs;
        let sign = if s < 0 { '-' } else { '+' };
        let a = s.unsigned_abs();
        format!("{sign}{:02}{:02}", a / 3600, (a % 3600) / 60)
    }
}

pub fn face(zone: &str, at: DateTime<Utc>) -> Option<Face> {
    let tz: Tz = zone.parse().ok()?;
    let off = tz.offset_from_utc_datetime(&at.naive_utc());
    Some(Face {
        abbreviation: off.abbreviation().unwrap_or(zone).to_string(),
        offset_secs: off.fix().local_minus_utc(),
    })
}

/// Whether the system's tz database has the zone; without it TZ=zone silently means UTC.
pub fn zoneinfo_present(zone: &str) -> bool {
    Path::new("/usr/share/zoneinfo").join(zone).is_file()
}

/// Why `experiment` cannot serve against `control` at `at`, if it cannot.
pub fn incompatibility(control: &str, experiment: &str, at: DateTime<Utc>) -> Option<String> {
    let Some(c) = face(control, at) else {
        return Some(format!("`{control}` is not a known time zone name"));
    };
    let Some(e) = face(experiment, at) else {
        return Some(format!("`{experiment}` is not a known time zone name"));
    };
    if c.abbreviation == e.abbreviation {
        return Some(format!(
            "{control} and {experiment} both print `{}` for date +%Z",
            c.abbreviation
        ));
    }
    if c.offset_secs == e.offset_secs {
        return Some(format!(
            "{control} and {experiment} have the same UTC offset {}",
            c.offset_text()
        ));
    }
    None
}

/// A seeded choice among `choices` of a zone that differs from `control` in both respects.
pub fn choose(
    rng: &mut impl Rng,
    choices: &[String],
    control: &str,
    at: DateTime<Utc>,
) -> Option<String> {
    let usable: Vec<&String> = choices
        .iter()
        .filter(|z| incompatibility(control, z, at).is_none())
        .collect();
    if usable.is_empty() {
        return None;
    }
    Some(usable[rng.random_range(0..usable.len())].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_that_share_an_abbreviation_or_offset_are_rejected() {
        let winter = DateTime::from_timestamp(1_795_000_000, 0).unwrap(); // November 2026
        // London and Dublin both print GMT in winter: reprotest's kind of silent no-op.
        let why = incompatibility("Europe/London", "Europe/Dublin", winter).unwrap();
        assert!(why.contains("GMT"), "{why}");
        assert!(incompatibility("UTC", "Etc/UTC", winter).is_some());
        assert!(incompatibility("UTC", "America/St_Johns", winter).is_none());
        assert!(incompatibility("UTC", "Not/AZone", winter).is_some());
    }

    #[test]
    fn offset_text_matches_date_format() {
        let f = Face {
            abbreviation: "NST".into(),
            offset_secs: -(3 * 3600 + 1800),
        };
        assert_eq!(f.offset_text(), "-0330");
    }
}
