//! One run of vary-build, start to end: plan, build, verify, compare, report. Owns the run
//! directory, so every workspace is removed however the run ends.

use crate::artifacts::Collected;
use crate::attribute::{Culprit, Diff, Search};
use crate::compare::{self, Limits};
use crate::config::Config;
use crate::dispatch::{BuildResult, DispatchError, Dispatcher, Event};
use crate::explain;
use crate::host::Host;
use crate::plan::{Plan, PlanError};
use crate::report::AttributionReport;
use crate::report::{
    ArtifactReport, ArtifactStatus, BuildReport, Report, SCHEMA, VariationReport, VariationStatus,
};
use crate::variation::{Kind, Set};
use crate::verify;
use crate::workspace;
use crate::workspace::{RunDir, WorkspaceError};
use futures::FutureExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use thiserror::Error;
use tokio::sync::{Semaphore, mpsc, watch};

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Dispatch(DispatchError),
    #[error("interrupted")]
    Interrupted,
    #[error("attribution stopped: {0}")]
    Attribution(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<DispatchError> for RunError {
    fn from(e: DispatchError) -> Self {
        match e {
            DispatchError::Interrupted => RunError::Interrupted,
            e => RunError::Dispatch(e),
        }
    }
}

/// How a run ended; [`crate::exit`] maps it to an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Reproducible,
    Unreproducible,
    /// An artifact pattern matched nothing in either build.
    NoArtifacts,
    BuildFailed,
    Unavailable,
}

pub struct Outcome {
    pub report: Report,
    pub verdict: Verdict,
    /// Lines for standard error that explain a failed build or a bad pattern.
    pub diagnostics: Vec<String>,
}

fn base_report(config: &Config, plan: Option<&Plan>) -> Report {
    Report {
        schema: SCHEMA,
        vary_build_version: env!("CARGO_PKG_VERSION"),
        seed: config.seed,
        command: config.command.clone(),
        source_root: config.source_root.display().to_string(),
        vary: config.vary_expr.clone(),
        source_date_epoch: plan.and_then(|p| p.source_date_epoch.clone()),
        run_dir: plan.map(|p| p.run_dir.display().to_string()),
        reproducible: false,
        nondeterministic: false,
        culprits: vec![],
        variations: plan.map_or_else(Vec::new, variation_reports),
        artifacts: vec![],
        builds: vec![],
        attribution: None,
        warnings: vec![],
        error: None,
    }
}

fn variation_reports(plan: &Plan) -> Vec<VariationReport> {
    plan.variations
        .iter()
        .map(|v| VariationReport {
            name: v.name,
            status: match (v.requested, &v.unavailable) {
                (false, _) => VariationStatus::NotVaried,
                (true, Some(_)) => VariationStatus::Unavailable,
                (true, None) => VariationStatus::Varied,
            },
            control: v.control.clone(),
            experiment: v.experiment.clone(),
            effective: None,
            reason: v.unavailable.clone(),
            observed_control: None,
            observed_experiment: None,
            caused_difference: None,
            fix: Kind::from_name(v.name)
                .map(|k| k.entry().fix.clone())
                .unwrap_or_default(),
        })
        .collect()
}

pub async fn run(
    config: Config,
    host: Host,
    events: mpsc::UnboundedSender<Event>,
    cancel: watch::Receiver<bool>,
) -> Result<Outcome, RunError> {
    let run_dir = RunDir::create()?;
    let plan = Arc::new(Plan::new(&config, &host, run_dir.path())?);
    let mut report = base_report(&config, Some(&plan));

    let unavailable: Vec<&str> = plan
        .variations
        .iter()
        .filter(|v| v.requested && v.unavailable.is_some())
        .map(|v| v.name)
        .collect();
    if !unavailable.is_empty() && !config.allow_unavailable {
        report.error = Some(format!(
            "variations unavailable on this machine: {}; fix what the report says, or pass \
             --allow-unavailable to test without them",
            unavailable.join(", ")
        ));
        return Ok(Outcome {
            report,
            verdict: Verdict::Unavailable,
            diagnostics: vec![],
        });
    }
    for varies in [false, true] {
        let root = plan.build_root(varies);
        std::fs::create_dir_all(&root).map_err(|source| RunError::Write { path: root, source })?;
    }

    let dispatcher = Dispatcher {
        config: config.clone(),
        plan: plan.clone(),
        slots: Arc::new(Semaphore::new(config.jobs)),
        events: events.clone(),
        cancel: cancel.clone(),
        path_turns: Default::default(),
    };
    // Control and experiment take the first slots. The second control (which tells
    // nondeterminism from variation) queues behind them and runs alongside the first
    // attribution builds, which start as soon as the experiment is seen to differ; their
    // results wait for it only when they need to subtract its noise.
    let (c2_tx, c2_rx) = watch::channel::<Option<Option<Collected>>>(None);
    let (dispatcher, config_ref) = (&dispatcher, &config);
    let control2_branch = async move {
        if !config_ref.attribute {
            return None;
        }
        tokio::task::yield_now().await;
        let r = dispatcher.build("control-2", Set::EMPTY).await;
        let seen = r
            .as_ref()
            .ok()
            .filter(|b| b.succeeded())
            .map(|b| b.artifacts.clone());
        let _ = c2_tx.send(Some(seen));
        Some(r)
    };
    let main_branch = async {
        let (control, experiment) = tokio::join!(
            dispatcher.build("control", Set::EMPTY),
            dispatcher.build("experiment", plan.varied)
        );
        let (control, experiment) = (control?, experiment?);
        let compared = compare_artifacts(&control, &experiment);
        let differs = compared
            .iter()
            .any(|a| a.status != ArtifactStatus::Identical);
        let search = if config.attribute
            && differs
            && control.succeeded()
            && experiment.succeeded()
            && !plan.varied.is_empty()
        {
            let noise = async {
                let mut rx = c2_rx.clone();
                let seen = rx
                    .wait_for(Option::is_some)
                    .await
                    .ok()
                    .and_then(|v| v.clone());
                // A failed control-2 ends the run as a build failure; no noise meanwhile.
                seen.flatten()
                    .map(|c2| differing(&control.artifacts, &c2))
                    .unwrap_or_default()
            }
            .shared();
            Some(
                search_culprits(
                    dispatcher,
                    &plan,
                    &control,
                    &experiment,
                    &compared,
                    noise,
                    &events,
                )
                .await?,
            )
        } else {
            None
        };
        Ok::<_, RunError>((control, experiment, compared, search))
    };
    let (main, control2) = tokio::join!(main_branch, control2_branch);
    let (control, experiment, compared, search) = main?;
    let mut builds = vec![control, experiment];
    if let Some(c2) = control2 {
        builds.push(c2?);
    }
    let mut outcome = conclude(&config, &plan, report, &builds, compared);
    if let Some(found) = search {
        let record = outcome.verdict != Verdict::BuildFailed && !outcome.report.culprits.is_empty();
        let tries = record_attribution(&config, &mut outcome.report, found, record);
        builds.extend(tries);
    }
    if let Some(store) = &config.store_dir {
        store_results(store, &plan.source_name, &builds, &outcome.report)?;
    }
    keep_failed_logs(&config, &mut outcome, &builds);
    drop(run_dir);
    Ok(outcome)
}

/// The artifacts whose hashes differ between two builds, or that only one has.
fn differing(x: &Collected, y: &Collected) -> Diff {
    let (x, y) = (&x.artifacts, &y.artifacts);
    x.keys()
        .chain(y.keys())
        .filter(|p| x.get(*p).map(|a| &a.sha256) != y.get(*p).map(|a| &a.sha256))
        .cloned()
        .collect()
}

fn build_report(config: &Config, b: &BuildResult) -> BuildReport {
    BuildReport {
        name: b.name.clone(),
        varied: b.varied.names().into_iter().map(String::from).collect(),
        exit_code: b.exit_code,
        timed_out: b.timed_out,
        duration_s: b.duration.as_secs_f64(),
        log: config
            .store_dir
            .as_ref()
            .map(|s| s.join(&b.name).join("build.log").display().to_string()),
    }
}

/// What the attribution search found.
struct Found {
    culprits: Vec<Culprit>,
    tries: Vec<BuildResult>,
    evidence: Vec<explain::Evidence>,
    /// The artifacts that differ because of variation (nondeterministic ones left out).
    full: Diff,
}

/// Finds the exact culprit sets for the artifacts that differ. `noise` resolves to the
/// nondeterministic artifacts once the second control is built.
async fn search_culprits(
    dispatcher: &Dispatcher,
    plan: &Plan,
    control: &BuildResult,
    experiment: &BuildResult,
    compared: &[ArtifactReport],
    noise: impl Future<Output = Diff> + Clone,
    events: &mpsc::UnboundedSender<Event>,
) -> Result<Found, RunError> {
    let evidence = match (&control.probe, &experiment.probe) {
        (Some(c), Some(e)) => {
            let diffs: Vec<(&str, &compare::Difference)> = compared
                .iter()
                .filter_map(|a| a.differences.as_ref().map(|d| (a.path.as_str(), d)))
                .collect();
            explain::find(&diffs, plan.varied, c, e)
        }
        _ => vec![],
    };
    let mut candidates: Vec<Kind> = Vec::new();
    for e in &evidence {
        let k = Kind::from_name(e.variation).expect("evidence names a kind");
        if !candidates.contains(&k) {
            candidates.push(k);
        }
    }
    let raw_full = differing(&control.artifacts, &experiment.artifacts);
    let tries = Mutex::new(Vec::new());
    let counter = AtomicUsize::new(0);
    let search = Search::new(|set: Set| {
        let (tries, noise, raw_full, counter) = (&tries, noise.clone(), &raw_full, &counter);
        async move {
            let d = if set == plan.varied {
                // The experiment itself: already built.
                raw_full.clone()
            } else {
                let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                let _ = events.send(Event::Testing(set));
                let b = dispatcher
                    .build(&format!("try-{n:02}"), set)
                    .await
                    .map_err(Arc::new)?;
                let mut d = differing(&control.artifacts, &b.artifacts);
                if !b.succeeded() {
                    // A build that breaks under some variations has changed its output too.
                    d.insert(format!("(the build failed: see {})", b.name));
                }
                let _ = workspace::remove_tree(&b.dir.join("ws"));
                tries.lock().expect("tries lock").push(b);
                d
            };
            let noise = noise.await;
            Ok::<Diff, Arc<DispatchError>>(d.difference(&noise).cloned().collect())
        }
    });
    let failed = |e: Arc<DispatchError>| match *e {
        DispatchError::Interrupted => RunError::Interrupted,
        _ => RunError::Attribution(e.to_string()),
    };
    let culprits = if plan.varied.len() == 1 {
        let full = search.test(plan.varied).await.map_err(failed)?;
        let one = Culprit {
            set: plan.varied,
            artifacts: full.clone(),
            from_sentinel: false,
        };
        if full.is_empty() { vec![] } else { vec![one] }
    } else {
        search.run(plan.varied, &candidates).await.map_err(failed)?
    };
    let full = search.test(plan.varied).await.map_err(failed)?;
    Ok(Found {
        culprits,
        tries: tries.into_inner().expect("tries lock"),
        evidence,
        full,
    })
}

/// Writes what the search found into the report (when `record`; a run that ended in a build
/// failure keeps only the list of builds) and returns the extra builds.
fn record_attribution(
    config: &Config,
    report: &mut Report,
    found: Found,
    record: bool,
) -> Vec<BuildResult> {
    let Found {
        culprits,
        tries,
        evidence,
        full,
    } = found;
    report
        .builds
        .extend(tries.iter().map(|b| build_report(config, b)));
    if !record {
        return tries;
    }
    report.culprits = culprits
        .iter()
        .map(|c| c.set.names().into_iter().map(String::from).collect())
        .collect();
    for a in report.artifacts.iter_mut() {
        a.culprits = culprits
            .iter()
            .filter(|c| c.artifacts.contains(&a.path))
            .map(|c| c.set.names().into_iter().map(String::from).collect())
            .collect();
    }
    let in_some = culprits.iter().fold(Set::EMPTY, |acc, c| acc.union(c.set));
    for v in report.variations.iter_mut() {
        if v.status == VariationStatus::Varied {
            v.caused_difference = Kind::from_name(v.name).map(|k| in_some.contains(k));
        }
    }
    let explained: Diff = culprits
        .iter()
        .flat_map(|c| c.artifacts.iter().cloned())
        .collect();
    report.attribution = Some(AttributionReport {
        extra_builds: tries.len(),
        evidence,
        unexplained: full.difference(&explained).cloned().collect(),
    });
    tries
}

fn conclude(
    config: &Config,
    plan: &Plan,
    mut report: Report,
    builds: &[BuildResult],
    compared: Vec<ArtifactReport>,
) -> Outcome {
    let (control, experiment) = (&builds[0], &builds[1]);
    let mut diagnostics = Vec::new();
    report.builds = builds.iter().map(|b| build_report(config, b)).collect();

    let failed: Vec<&BuildResult> = builds.iter().filter(|b| !b.succeeded()).collect();
    if !failed.is_empty() {
        for b in &failed {
            let why = if let Some(e) = &b.sandbox_error {
                format!("its sandbox could not be set up: {e}")
            } else if b.timed_out {
                format!(
                    "it ran longer than --timeout ({}s) and was killed with its process tree",
                    config.timeout.map_or(0, |t| t.as_secs())
                )
            } else {
                match b.exit_code {
                    Some(c) => format!("it exited with code {c}"),
                    None => "it was killed by a signal".to_string(),
                }
            };
            let only = if failed.len() == 1 {
                " (the other build succeeded, so the failure depends on what was varied)"
            } else {
                ""
            };
            let stored = config.store_dir.as_ref().map_or_else(String::new, |s| {
                format!(
                    "\nfull log: {}",
                    s.join(&b.name).join("build.log").display()
                )
            });
            diagnostics.push(format!(
                "build `{}` failed{only}: {why}\n--- last lines of its log ---\n{}\n---{stored}",
                b.name,
                b.log_tail(20)
            ));
        }
        report.error = Some(format!(
            "build failed: {}",
            failed
                .iter()
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return Outcome {
            report,
            verdict: Verdict::BuildFailed,
            diagnostics,
        };
    }

    // Did each variation take effect?
    let mut ineffective = Vec::new();
    for v in report.variations.iter_mut() {
        if v.status != VariationStatus::Varied {
            continue;
        }
        let kind = Kind::from_name(v.name).expect("catalogue names are kinds");
        match (&control.probe, &experiment.probe) {
            (Some(c), Some(e)) => {
                let eff = verify::effect(kind, c, e);
                v.effective = Some(eff.effective);
                v.observed_control = Some(eff.observed_control);
                v.observed_experiment = Some(eff.observed_experiment);
                if let Some(p) = eff.problem {
                    v.reason = Some(p);
                    ineffective.push(v.name);
                }
            }
            _ => {
                v.effective = Some(false);
                v.reason = Some(format!(
                    "the probe did not report: {}",
                    control
                        .probe_error
                        .as_deref()
                        .or(experiment.probe_error.as_deref())
                        .unwrap_or("unknown error")
                ));
                ineffective.push(v.name);
            }
        }
    }

    report.artifacts = compared;
    if let Some(control2) = builds.get(2) {
        let noise = differing(&control.artifacts, &control2.artifacts);
        for a in report.artifacts.iter_mut() {
            a.nondeterministic = noise.contains(&a.path);
        }
        report.nondeterministic = !noise.is_empty();
    }
    for (i, n) in config.artifacts.patterns.iter().enumerate() {
        let c = control
            .artifacts
            .matches_per_pattern
            .get(i)
            .copied()
            .unwrap_or(0);
        let e = experiment
            .artifacts
            .matches_per_pattern
            .get(i)
            .copied()
            .unwrap_or(0);
        if c == 0 && e == 0 {
            diagnostics.push(format!(
                "artifact pattern `{n}` matched nothing in either build; check it against the \
                 files the build writes (patterns are relative to the source root)"
            ));
        }
    }
    if !diagnostics.is_empty() {
        report.error = Some("an artifact pattern matched nothing".into());
        return Outcome {
            report,
            verdict: Verdict::NoArtifacts,
            diagnostics,
        };
    }
    report.reproducible = report
        .artifacts
        .iter()
        .all(|a| a.status == ArtifactStatus::Identical);
    // Without attribution, the whole varied set is the (coarse) culprit; attribution
    // replaces it with the exact sets.
    let varied_differs = report
        .artifacts
        .iter()
        .any(|a| a.status != ArtifactStatus::Identical && !a.nondeterministic);
    if varied_differs && !plan.varied.is_empty() {
        report.culprits = vec![plan.varied.names().into_iter().map(String::from).collect()];
    }
    let verdict = if !ineffective.is_empty() && !config.allow_unavailable {
        report.error = Some(format!(
            "variations did not take effect: {}; see each one's reason, or pass \
             --allow-unavailable to accept the result anyway",
            ineffective.join(", ")
        ));
        Verdict::Unavailable
    } else if report.reproducible {
        Verdict::Reproducible
    } else {
        Verdict::Unreproducible
    };
    Outcome {
        report,
        verdict,
        diagnostics,
    }
}

fn compare_artifacts(control: &BuildResult, experiment: &BuildResult) -> Vec<ArtifactReport> {
    let (c, e) = (
        &control.artifacts.artifacts,
        &experiment.artifacts.artifacts,
    );
    let mut paths: Vec<&String> = c.keys().chain(e.keys()).collect();
    paths.sort();
    paths.dedup();
    let limits = Limits::default();
    paths
        .into_iter()
        .map(|p| {
            let (ca, ea) = (c.get(p), e.get(p));
            let status = match (ca, ea) {
                (Some(a), Some(b)) if a.sha256 == b.sha256 => ArtifactStatus::Identical,
                (Some(_), Some(_)) => ArtifactStatus::Differs,
                (Some(_), None) => ArtifactStatus::OnlyInControl,
                _ => ArtifactStatus::OnlyInExperiment,
            };
            let differences = match (status, ca, ea) {
                (ArtifactStatus::Differs, Some(a), Some(b)) => {
                    compare::compare_files(&a.location, &b.location, p, &limits).unwrap_or_else(
                        |err| {
                            Some(compare::Difference {
                                source: p.clone(),
                                comparator: "error".into(),
                                comment: Some(err.to_string()),
                                unified_diff: None,
                                children: vec![],
                            })
                        },
                    )
                }
                _ => None,
            };
            ArtifactReport {
                path: p.clone(),
                status,
                control_sha256: ca.map(|a| a.sha256.clone()),
                experiment_sha256: ea.map(|a| a.sha256.clone()),
                nondeterministic: false,
                culprits: vec![],
                differences,
            }
        })
        .collect()
}

fn create_parent(path: &Path) -> Result<(), RunError> {
    match path.parent() {
        Some(parent) => std::fs::create_dir_all(parent).map_err(|source| RunError::Write {
            path: parent.to_path_buf(),
            source,
        }),
        None => Ok(()),
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    create_parent(path)?;
    std::fs::write(path, bytes).map_err(|source| RunError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Copies each build's log, probe and artifacts, and the report, into the store dir.
fn store_results(
    store: &Path,
    source_name: &str,
    builds: &[BuildResult],
    report: &Report,
) -> Result<(), RunError> {
    for b in builds {
        let dir = store.join(&b.name);
        let copy = |from: &Path, to: PathBuf| -> Result<(), RunError> {
            create_parent(&to)?;
            let meta = std::fs::symlink_metadata(from).map_err(|source| RunError::Write {
                path: from.to_path_buf(),
                source,
            })?;
            let res = if meta.file_type().is_symlink() {
                std::fs::read_link(from).and_then(|t| std::os::unix::fs::symlink(t, &to))
            } else {
                std::fs::copy(from, &to).map(drop)
            };
            res.map_err(|source| RunError::Write { path: to, source })
        };
        copy(&b.log, dir.join("build.log"))?;
        let probe = b.dir.join("meta").join("probe.json");
        if probe.exists() {
            copy(&probe, dir.join("probe.json"))?;
        }
        copy(&b.dir.join("meta").join("spec.json"), dir.join("spec.json"))?;
        let ws = b.dir.join("ws");
        for a in b.artifacts.artifacts.values() {
            // Exact bytes of the name (report paths are lossy for non-UTF-8 names); an
            // artifact beside the tree goes under beside/, never above the store.
            let Ok(rel) = a.location.strip_prefix(&ws) else {
                continue;
            };
            let rel = match rel.strip_prefix(source_name) {
                Ok(inner) => Path::new("artifacts").join(inner),
                Err(_) => Path::new("beside").join(rel),
            };
            copy(&a.location, dir.join(rel))?;
        }
    }
    write(&store.join("report.json"), report.to_json().as_bytes())
}

/// Without a store dir, a failed build's log would vanish with its workspace; keep it in
/// the user's state directory and say where.
fn keep_failed_logs(config: &Config, outcome: &mut Outcome, builds: &[BuildResult]) {
    if config.store_dir.is_some() || outcome.verdict != Verdict::BuildFailed {
        return;
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let dir = base.join("vary-build").join("logs").join(format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    ));
    for (b, r) in builds.iter().zip(outcome.report.builds.iter_mut()) {
        if b.succeeded() {
            continue;
        }
        let to = dir.join(format!("{}.log", b.name));
        if std::fs::create_dir_all(&dir).is_ok() && std::fs::copy(&b.log, &to).is_ok() {
            r.log = Some(to.display().to_string());
            outcome
                .diagnostics
                .push(format!("full log of `{}`: {}", b.name, to.display()));
        }
    }
}
