//! The `--vary` expression language, compatible with reprotest's `--vary`.
//!
//! Terms are comma-separated and applied in order, starting from `all`:
//! `all`, `none`, `+NAME` (add), `-NAME` (remove), `@NAME` (only this), a bare `NAME` (add),
//! and `NAME.PARAM=VALUE` (set a parameter; does not change what is varied).
//! Several `--vary` options are simply further terms.

use crate::variation::{Kind, Set};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum VaryError {
    #[error("unknown variation `{given}` in --vary{}; run `vary-build --help` for the list", suggestion(.closest))]
    UnknownName {
        given: String,
        closest: Option<&'static str>,
    },
    #[error(
        "empty term in --vary `{expr}`; separate names with single commas, e.g. --vary=-time,-umask"
    )]
    EmptyTerm { expr: String },
    #[error(
        "--vary `{expr}` leaves nothing varied; write --vary=none if you only want to check that two identical builds match"
    )]
    NothingVaried { expr: String },
    #[error(
        "`{term}` in --vary: a parameter is written NAME.PARAM=VALUE, e.g. timezone.experiment=Asia/Tokyo"
    )]
    BadParam { term: String },
}

fn suggestion(closest: &Option<&'static str>) -> String {
    match closest {
        Some(c) => format!(" (did you mean `{c}`?)"),
        None => String::new(),
    }
}

/// A parameter given as `NAME.PARAM=VALUE`; the plan validates PARAM and VALUE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub kind: Kind,
    pub param: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub varied: Set,
    pub params: Vec<Param>,
}

fn lookup(name: &str) -> Result<Kind, VaryError> {
    Kind::from_name(name).ok_or_else(|| VaryError::UnknownName {
        given: name.to_string(),
        closest: Kind::ALL
            .into_iter()
            .map(|k| (strsim::damerau_levenshtein(name, k.name()), k.name()))
            .filter(|(d, k)| *d <= 3 || k.starts_with(name) || name.starts_with(k))
            .min()
            .map(|(_, k)| k),
    })
}

/// Parses the `--vary` options in order. No option at all means `all`.
pub fn parse<S: AsRef<str>>(exprs: &[S]) -> Result<Selection, VaryError> {
    let mut varied = Set::all();
    let mut params = Vec::new();
    let mut literally_none = false;
    let joined = exprs
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(",");
    for expr in exprs {
        let expr = expr.as_ref();
        for raw in expr.split(',') {
            let term = raw.trim();
            literally_none = false;
            match term {
                "" => {
                    return Err(VaryError::EmptyTerm {
                        expr: expr.to_string(),
                    });
                }
                "all" => varied = Set::all(),
                "none" => {
                    varied = Set::EMPTY;
                    literally_none = true;
                }
                _ if term.contains('=') => {
                    let (lhs, value) = term.split_once('=').expect("contains =");
                    let (name, param) = lhs.split_once('.').ok_or_else(|| VaryError::BadParam {
                        term: term.to_string(),
                    })?;
                    if param.is_empty() {
                        return Err(VaryError::BadParam {
                            term: term.to_string(),
                        });
                    }
                    params.push(Param {
                        kind: lookup(name)?,
                        param: param.to_string(),
                        value: value.to_string(),
                    });
                }
                _ => {
                    let (op, name) = match term.as_bytes()[0] {
                        b'+' | b'-' | b'@' => (term.as_bytes()[0], &term[1..]),
                        _ => (b'+', term),
                    };
                    let kind = lookup(name)?;
                    match op {
                        b'+' => varied.insert(kind),
                        b'-' => varied.remove(kind),
                        _ => varied = [kind].into_iter().collect(),
                    }
                }
            }
        }
    }
    if varied.is_empty() && !literally_none {
        return Err(VaryError::NothingVaried { expr: joined });
    }
    Ok(Selection { varied, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(exprs: &[&str]) -> Vec<&'static str> {
        parse(exprs).unwrap().varied.names()
    }

    #[test]
    fn default_and_all_vary_everything() {
        assert_eq!(parse::<&str>(&[]).unwrap().varied, Set::all());
        assert_eq!(parse(&["all"]).unwrap().varied, Set::all());
    }

    #[test]
    fn minus_removes_from_all_and_terms_apply_in_order() {
        let s = parse(&["-time"]).unwrap().varied;
        assert!(!s.contains(Kind::Time));
        assert_eq!(s.len(), 13);
        assert_eq!(names(&["@time,+umask"]), vec!["time", "umask"]);
        assert_eq!(names(&["@time", "+umask", "-time"]), vec!["umask"]);
        assert_eq!(names(&["none,kernel"]), vec!["kernel"]);
    }

    #[test]
    fn only_literal_none_may_vary_nothing() {
        assert!(parse(&["none"]).unwrap().varied.is_empty());
        assert_eq!(
            parse(&["@time,-time"]),
            Err(VaryError::NothingVaried {
                expr: "@time,-time".into()
            })
        );
    }

    #[test]
    fn unknown_names_suggest_the_closest() {
        let err = parse(&["+timezon"]).unwrap_err();
        assert!(err.to_string().contains("did you mean `timezone`"), "{err}");
        let err = parse(&["-fileorder"]).unwrap_err();
        assert!(err.to_string().contains("`fileordering`"), "{err}");
        assert!(matches!(
            parse(&["@zzzzzzzzzz"]),
            Err(VaryError::UnknownName { closest: None, .. })
        ));
    }

    #[test]
    fn parameters_are_collected_without_changing_the_set() {
        let s = parse(&["-time,timezone.experiment=Asia/Tokyo"]).unwrap();
        assert_eq!(s.varied.len(), 13);
        assert_eq!(s.params[0].kind, Kind::Timezone);
        assert_eq!(s.params[0].param, "experiment");
        assert_eq!(s.params[0].value, "Asia/Tokyo");
        assert!(matches!(
            parse(&["timezone=x"]),
            Err(VaryError::BadParam { .. })
        ));
        assert!(matches!(
            parse(&["time,,umask"]),
            Err(VaryError::EmptyTerm { .. })
        ));
    }
}
