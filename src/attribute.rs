//! Attribution: which variations, alone or together, change the output.
//!
//! The search is adaptive. It starts from sentinel evidence (a differing artifact that
//! contains the experiment's host name, build path, user name... names its variation), and
//! confirms each such candidate with one build. It then checks whether everything else still
//! makes a difference, and if so finds a minimal culprit set inside it by halving, testing both
//! halves at once (they run concurrently up to `-j`). When neither half alone changes the
//! output, the culprit is an interaction across the halves; it is minimised one side against
//! the other (as in QuickXplain), so a set like {domain_host, umask} is found exactly.
//! Every configuration is built at most once (results are memoised by variation set).
//!
//! Culprit sets are found under the usual assumption that adding variations to a set that
//! changes the output never makes the output match again. Minimal sets that overlap one found
//! earlier are not searched for.

use crate::variation::{Kind, Set};
use futures::future::Either;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// The artifacts that differ from the control (nondeterministic ones already left out).
pub type Diff = BTreeSet<String>;

/// A minimal set of variations that changes the output, and which artifacts it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Culprit {
    pub set: Set,
    pub artifacts: Diff,
    /// Confirmed from sentinel evidence rather than found by the search.
    pub from_sentinel: bool,
}

type Cells<E> = Mutex<HashMap<Set, Arc<OnceCell<Result<Diff, E>>>>>;

pub struct Search<F, E> {
    oracle: F,
    memo: Cells<E>,
    builds: AtomicUsize,
}

type Boxed<'a, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + 'a>>;

impl<F, Fut, E> Search<F, E>
where
    F: Fn(Set) -> Fut,
    Fut: Future<Output = Result<Diff, E>>,
    E: Clone,
{
    /// `oracle` builds with a set of variations and says which artifacts differ.
    pub fn new(oracle: F) -> Self {
        Search {
            oracle,
            memo: Mutex::new(HashMap::new()),
            builds: AtomicUsize::new(0),
        }
    }

    /// How many configurations the oracle was asked about.
    pub fn builds(&self) -> usize {
        self.builds.load(Ordering::Relaxed)
    }

    pub async fn test(&self, set: Set) -> Result<Diff, E> {
        if set.is_empty() {
            return Ok(Diff::new());
        }
        let cell = self
            .memo
            .lock()
            .expect("memo lock")
            .entry(set)
            .or_default()
            .clone();
        cell.get_or_init(|| async {
            self.builds.fetch_add(1, Ordering::Relaxed);
            (self.oracle)(set).await
        })
        .await
        .clone()
    }

    /// Splits a set in two halves, in catalogue order.
    fn halves(set: Set) -> (Set, Set) {
        let n = set.len() / 2;
        let first: Set = set.iter().take(n).collect();
        (first, set.difference(first))
    }

    /// Whether building with `set` changes the output (or, with a focus, that artifact).
    async fn changes(&self, set: Set, focus: Option<&str>) -> Result<bool, E> {
        let d = self.test(set).await?;
        Ok(match focus {
            Some(a) => d.contains(a),
            None => !d.is_empty(),
        })
    }

    /// Splits a set in three parts, in catalogue order.
    fn thirds(set: Set) -> (Set, Set, Set) {
        let n = set.len().div_ceil(3);
        let a: Set = set.iter().take(n).collect();
        let b: Set = set.difference(a).iter().take(n).collect();
        (a, b, set.difference(a).difference(b))
    }

    /// A minimal `y ⊆ x` such that `y ∪ fixed` changes the output, given that `x ∪ fixed`
    /// does and `fixed` alone does not.
    ///
    /// Each round builds two parts at once (what `-j 2` affords): two thirds of `x`. When
    /// neither changes the output the culprit is most likely in the last third, which is
    /// searched without building it first (a round saved); its result is confirmed, and if
    /// the guess was wrong, the culprit needs parts of several thirds and is minimised half
    /// against half (as in QuickXplain).
    fn minimize<'a>(&'a self, x: Set, fixed: Set, focus: Option<&'a str>) -> Boxed<'a, Set, E> {
        Box::pin(async move {
            // Nothing of `x` is needed when the background already changes the output (after
            // an interaction's first half has been found, say). Memoised, so cheap on paths
            // where `fixed` has been built already.
            if !fixed.is_empty() && self.changes(fixed, focus).await? {
                return Ok(Set::EMPTY);
            }
            if x.len() <= 1 {
                return Ok(x);
            }
            let (a, b, c) = if x.len() == 2 {
                let (a, b) = Self::halves(x);
                (a, b, Set::EMPTY)
            } else {
                Self::thirds(x)
            };
            // Whichever part answers first and changes the output is searched at once; the
            // other is dropped (cancelling its build, or its wait for a slot).
            let fa = Box::pin(self.changes(a.union(fixed), focus));
            let fb = Box::pin(self.changes(b.union(fixed), focus));
            let (first, first_part, rest, rest_part) = match futures::future::select(fa, fb).await {
                Either::Left((ra, fb)) => (ra?, a, Either::Right(fb), b),
                Either::Right((rb, fa)) => (rb?, b, Either::Left(fa), a),
            };
            if first {
                // Drop the other part now: an unpolled build would keep its slot.
                drop(rest);
                return self.minimize(first_part, fixed, focus).await;
            }
            // While the other part's answer is pending, search inside it as if it changed
            // the output, so that idle build slots work ahead; if it did not, that
            // speculative search is dropped (with its builds).
            let ahead = self.minimize(rest_part, fixed, focus);
            match futures::future::select(rest, ahead).await {
                Either::Left((changes, ahead)) => {
                    if changes? {
                        return ahead.await;
                    }
                }
                Either::Right((y, rest)) => {
                    if rest.await? {
                        return y;
                    }
                }
            }
            if !c.is_empty() {
                let y = self.minimize(c, fixed, focus).await?;
                if self.changes(y.union(fixed), focus).await? {
                    return Ok(y);
                }
            }
            // No part suffices alone: the culprit needs something from each half.
            let (h1, h2) = Self::halves(x);
            let y1 = self.minimize(h1, fixed.union(h2), focus).await?;
            let y2 = self.minimize(h2, fixed.union(y1), focus).await?;
            Ok(y1.union(y2))
        })
    }

    /// Finds the minimal culprit sets within `varied`, whose full result is `diff`.
    /// `candidates` are variations named by sentinel evidence, tried first.
    ///
    /// The oracle answers for `varied` itself (the experiment, already built). Its answer is
    /// awaited only when needed, so the first builds start at once, while the caller may
    /// still be working out which differences are noise.
    pub async fn run(&self, varied: Set, candidates: &[Kind]) -> Result<Vec<Culprit>, E> {
        let candidates: Vec<Kind> = candidates
            .iter()
            .copied()
            .filter(|k| varied.contains(*k))
            .collect();
        let tried = futures::future::join_all(
            candidates
                .iter()
                .map(|k| self.test([*k].into_iter().collect())),
        )
        .await;
        let mut culprits = Vec::new();
        for (k, d) in candidates.iter().zip(tried) {
            let d = d?;
            if !d.is_empty() {
                culprits.push(Culprit {
                    set: [*k].into_iter().collect(),
                    artifacts: d,
                    from_sentinel: true,
                });
            }
        }
        let mut rest = culprits.iter().fold(varied, |acc, c| acc.difference(c.set));
        // The whole experiment differs (that is why we are here), so the first search needs
        // no check; its result is checked instead, in case the difference was only noise.
        let mut known_to_change = candidates.is_empty();
        while known_to_change || self.changes(rest, None).await? {
            let m = if known_to_change {
                known_to_change = false;
                // Search while the caller finds out whether the experiment's difference is
                // only noise; if it is, stop (dropping the search cancels its builds).
                let search = self.minimize(rest, Set::EMPTY, None);
                let check = self.changes(varied, None);
                futures::pin_mut!(search, check);
                // The check is polled first, so an answer already known wins.
                match futures::future::select(check, search).await {
                    Either::Left((changes, search)) => {
                        if !changes? {
                            break;
                        }
                        search.await?
                    }
                    Either::Right((m, check)) => {
                        if !check.await? {
                            break;
                        }
                        m?
                    }
                }
            } else {
                self.minimize(rest, Set::EMPTY, None).await?
            };
            let artifacts = self.test(m).await?;
            if m.is_empty() || artifacts.is_empty() {
                break;
            }
            culprits.push(Culprit {
                set: m,
                artifacts,
                from_sentinel: false,
            });
            rest = rest.difference(m);
        }
        let diff = self.test(varied).await?;
        // An artifact that no set found so far explains has its own minimal set, which may
        // overlap the others (a file that changes only when two culprits act together).
        loop {
            let explained: Diff = culprits.iter().flat_map(|c| c.artifacts.clone()).collect();
            let Some(artifact) = diff.difference(&explained).next().cloned() else {
                break;
            };
            let m = self.minimize(varied, Set::EMPTY, Some(&artifact)).await?;
            let artifacts = self.test(m).await?;
            if !artifacts.contains(&artifact) || culprits.iter().any(|c| c.set == m) {
                break; // not monotonic: leave it unexplained rather than loop
            }
            culprits.push(Culprit {
                set: m,
                artifacts,
                from_sentinel: false,
            });
        }
        // An artifact belongs to the smallest sets that change it, not to their supersets.
        let smaller: Vec<Culprit> = culprits.clone();
        for c in culprits.iter_mut() {
            c.artifacts.retain(|a| {
                !smaller
                    .iter()
                    .any(|o| o.set != c.set && o.set.is_subset(c.set) && o.artifacts.contains(a))
            });
        }
        culprits.sort_by_key(|c| (c.set.len(), c.set));
        Ok(culprits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic build: each rule is (culprit set, artifact it changes).
    fn oracle(
        rules: Vec<(Set, &'static str)>,
    ) -> impl Fn(Set) -> std::future::Ready<Result<Diff, ()>> {
        move |s: Set| {
            std::future::ready(Ok(rules
                .iter()
                .filter(|(c, _)| c.is_subset(s))
                .map(|(_, a)| a.to_string())
                .collect()))
        }
    }

    fn set(kinds: &[Kind]) -> Set {
        kinds.iter().copied().collect()
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn one_culprit_among_fourteen_without_sentinels() {
        let rules = vec![(set(&[Kind::Timezone]), "out.txt")];
        let s = Search::new(oracle(rules.clone()));
        let c = rt().block_on(s.run(Set::all(), &[])).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].set, set(&[Kind::Timezone]));
        assert!(s.builds() <= 10, "{} builds", s.builds());
    }

    #[test]
    fn sentinel_evidence_confirms_with_one_build_and_checks_the_rest() {
        let rules = vec![(set(&[Kind::DomainHost]), "a")];
        let s = Search::new(oracle(rules.clone()));
        let c = rt()
            .block_on(s.run(Set::all(), &[Kind::DomainHost]))
            .unwrap();
        assert_eq!(c[0].set, set(&[Kind::DomainHost]));
        assert!(c[0].from_sentinel);
        // The confirmation, the check of the rest, and the experiment's own answer (which
        // the real oracle gives without building).
        assert_eq!(s.builds(), 3);
    }

    #[test]
    fn two_independent_culprits_and_an_interaction_are_all_found() {
        let rules = vec![
            (set(&[Kind::Timezone]), "tz.txt"),
            (set(&[Kind::Kernel]), "k.txt"),
            (set(&[Kind::DomainHost, Kind::Umask]), "both.txt"),
        ];
        let s = Search::new(oracle(rules.clone()));
        let c = rt().block_on(s.run(Set::all(), &[])).unwrap();
        let sets: Vec<Set> = c.iter().map(|c| c.set).collect();
        assert_eq!(
            sets,
            vec![
                set(&[Kind::Kernel]),
                set(&[Kind::Timezone]),
                set(&[Kind::Umask, Kind::DomainHost]),
            ]
        );
        assert_eq!(c[2].artifacts, ["both.txt".to_string()].into());
    }

    #[test]
    fn an_interaction_split_across_halves_is_minimal() {
        // environment is first in the catalogue and fileordering last: opposite halves.
        let rules = vec![(set(&[Kind::Environment, Kind::Fileordering]), "x")];
        let s = Search::new(oracle(rules.clone()));
        let c = rt().block_on(s.run(Set::all(), &[])).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].set, set(&[Kind::Environment, Kind::Fileordering]));
    }

    #[test]
    fn an_artifact_needing_two_single_culprits_together_gets_its_own_set() {
        let rules = vec![
            (set(&[Kind::DomainHost]), "host.txt"),
            (set(&[Kind::Umask]), "umask.txt"),
            (set(&[Kind::DomainHost, Kind::Umask]), "both.txt"),
        ];
        let s = Search::new(oracle(rules.clone()));
        let c = rt().block_on(s.run(Set::all(), &[])).unwrap();
        let both = c
            .iter()
            .find(|c| c.set == set(&[Kind::DomainHost, Kind::Umask]))
            .expect("the pair is a culprit set");
        assert!(both.artifacts.contains("both.txt"));
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn every_single_culprit_and_every_pair_interaction_is_found_exactly() {
        let mut worst_single = 0;
        for k in Kind::ALL {
            let rules = vec![(set(&[k]), "out")];
            let s = Search::new(oracle(rules.clone()));
            let c = rt().block_on(s.run(Set::all(), &[])).unwrap();
            assert_eq!(c.iter().map(|c| c.set).collect::<Vec<_>>(), vec![set(&[k])]);
            worst_single = worst_single.max(s.builds());
        }
        // Two rounds of two thirds, then the pair, then the rest: well under reprotest's 17.
        assert!(
            worst_single <= 9,
            "{worst_single} builds for a single culprit"
        );
        for (i, x) in Kind::ALL.iter().enumerate() {
            for y in &Kind::ALL[i + 1..] {
                let rules = vec![(set(&[*x, *y]), "out")];
                let s = Search::new(oracle(rules.clone()));
                let c = rt().block_on(s.run(Set::all(), &[])).unwrap();
                assert_eq!(
                    c.iter().map(|c| c.set).collect::<Vec<_>>(),
                    vec![set(&[*x, *y])],
                    "{x} with {y}"
                );
            }
        }
    }

    #[test]
    fn differences_that_are_only_noise_stop_the_search_at_once() {
        // The oracle says nothing differs (all noise), though the caller started the search.
        let s = Search::new(|_: Set| std::future::ready(Ok::<Diff, ()>(Diff::new())));
        let c = rt().block_on(s.run(Set::all(), &[])).unwrap();
        assert!(c.is_empty());
        assert!(s.builds() <= 3, "{} builds", s.builds());
    }

    #[test]
    fn configurations_are_never_built_twice() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let rules = vec![(set(&[Kind::Umask]), "u")];
        let inner = oracle(rules.clone());
        let seen = calls.clone();
        let s = Search::new(move |set: Set| {
            seen.lock().unwrap().push(set);
            inner(set)
        });
        rt().block_on(s.run(Set::all(), &[Kind::Umask, Kind::Umask]))
            .unwrap();
        let calls = calls.lock().unwrap();
        let unique: BTreeSet<Set> = calls.iter().copied().collect();
        assert_eq!(unique.len(), calls.len(), "{calls:?}");
    }
}
