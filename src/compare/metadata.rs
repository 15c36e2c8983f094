//! Named metadata fields (timestamps, owners, modes) of headers and members, and the leaf
//! that names the ones that differ with both values.

use crate::compare::Difference;

/// Field name and its rendered value, in display order.
pub(crate) type Fields = Vec<(&'static str, String)>;

/// A leaf naming every field whose value differs, e.g.
/// `tar member metadata differs: mtime 1 (…) vs 2 (…); uid 0 vs 1000`.
pub(crate) fn difference(
    source: &str,
    comparator: &str,
    what: &str,
    control: &Fields,
    experiment: &Fields,
) -> Option<Difference> {
    let value = |fields: &Fields, name: &str| {
        fields
            .iter()
            .find(|(n, _)| *n == name)
            .map_or_else(|| "(absent)".to_string(), |(_, v)| v.clone())
    };
    let mut names: Vec<&str> = control.iter().map(|(n, _)| *n).collect();
    for (n, _) in experiment {
        if !names.contains(n) {
            names.push(n);
        }
    }
    let changes: Vec<String> = names
        .into_iter()
        .filter_map(|name| {
            let (a, b) = (value(control, name), value(experiment, name));
            (a != b).then(|| format!("{name} {a} vs {b}"))
        })
        .collect();
    if changes.is_empty() {
        return None;
    }
    Some(Difference::leaf(
        source,
        comparator,
        Some(format!("{what} differs: {}", changes.join("; "))),
        None,
    ))
}

/// Seconds since the epoch, with the UTC date a reader (and a sentinel search) needs.
pub(crate) fn unix_time(seconds: i64) -> String {
    match chrono::DateTime::from_timestamp(seconds, 0) {
        Some(t) => format!("{seconds} ({})", t.format("%Y-%m-%d %H:%M:%S UTC")),
        None => seconds.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_only_differing_fields_with_both_values() {
        let a: Fields = vec![("mtime", unix_time(1_700_000_000)), ("uid", "0".into())];
        let b: Fields = vec![
            ("mtime", unix_time(1_700_000_100)),
            ("uid", "0".into()),
            ("gname", "wheel".into()),
        ];
        let d = difference("x", "tar metadata", "tar member metadata", &a, &b).unwrap();
        assert_eq!(
            d.comment.as_deref(),
            Some(
                "tar member metadata differs: mtime 1700000000 (2023-11-14 22:13:20 UTC) vs \
                 1700000100 (2023-11-14 22:15:00 UTC); gname (absent) vs wheel"
            )
        );
        assert_eq!(difference("x", "m", "m", &a, &a), None);
    }
}
