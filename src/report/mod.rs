//! The report: one serde data type, rendered by one file per format. The JSON form is the
//! stable, versioned interface for CI systems (schema `vary-build/report/v1`, documented in
//! the README); fields are only ever added to it.

pub mod human;
pub mod progress;

use crate::compare::Difference;
use serde::Serialize;

pub const SCHEMA: &str = "vary-build/report/v1";

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub vary_build_version: &'static str,
    pub seed: u64,
    pub command: Vec<String>,
    pub source_root: String,
    pub vary: Vec<String>,
    pub source_date_epoch: Option<String>,
    /// This run's private directory (removed at the end); RUN_DIR in build_path's values.
    pub run_dir: Option<String>,
    pub reproducible: bool,
    pub nondeterministic: bool,
    pub culprits: Vec<Vec<String>>,
    pub variations: Vec<VariationReport>,
    pub artifacts: Vec<ArtifactReport>,
    pub builds: Vec<BuildReport>,
    /// How the culprits were found; null when no attribution ran.
    pub attribution: Option<AttributionReport>,
    pub warnings: Vec<String>,
    /// Why the run could not reach a verdict, when it could not.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VariationStatus {
    Varied,
    NotVaried,
    Unavailable,
}

#[derive(Debug, Clone, Serialize)]
pub struct VariationReport {
    pub name: &'static str,
    pub status: VariationStatus,
    pub control: String,
    pub experiment: String,
    /// Whether the probe saw the change; null when it was not varied or no build ran.
    pub effective: Option<bool>,
    pub reason: Option<String>,
    pub observed_control: Option<String>,
    pub observed_experiment: Option<String>,
    /// Whether it is in some culprit set; null when it was not varied or not attributed.
    pub caused_difference: Option<bool>,
    pub fix: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttributionReport {
    /// Builds run for the search, beyond control, control-2 and experiment.
    pub extra_builds: usize,
    pub evidence: Vec<crate::explain::Evidence>,
    /// Differing artifacts no culprit set explains (e.g. variations that cancel out).
    pub unexplained: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactStatus {
    Identical,
    Differs,
    OnlyInControl,
    OnlyInExperiment,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArtifactReport {
    pub path: String,
    pub status: ArtifactStatus,
    pub control_sha256: Option<String>,
    pub experiment_sha256: Option<String>,
    /// It also differs between two control builds with nothing varied.
    pub nondeterministic: bool,
    /// The culprit sets that change this artifact.
    pub culprits: Vec<Vec<String>>,
    pub differences: Option<Difference>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub name: String,
    pub varied: Vec<String>,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub duration_s: f64,
    /// Where the full log is, if it was kept.
    pub log: Option<String>,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }
}
