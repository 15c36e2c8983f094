//! The human-readable report: variations with their values and whether they took effect,
//! the artifacts that differ with bounded diffs, and a one-line answer at the end.

use super::{ArtifactStatus, Report, VariationStatus};
use std::fmt::Write;

pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "seed {} (replay with --seed {})", r.seed, r.seed);
    let _ = writeln!(s, "\nvariations:");
    for v in &r.variations {
        let state = match (v.status, v.effective) {
            (VariationStatus::NotVaried, _) => "not varied".to_string(),
            (VariationStatus::Unavailable, _) => {
                format!("UNAVAILABLE: {}", v.reason.as_deref().unwrap_or(""))
            }
            (VariationStatus::Varied, Some(true)) => "effective".to_string(),
            (VariationStatus::Varied, Some(false)) => {
                format!("NOT EFFECTIVE: {}", v.reason.as_deref().unwrap_or(""))
            }
            (VariationStatus::Varied, None) => "varied".to_string(),
        };
        let _ = writeln!(s, "  {:<13} {state}", v.name);
        if v.caused_difference == Some(false) {
            let _ = writeln!(s, "      varied without effect on the output");
        }
        if v.status == VariationStatus::Varied {
            let _ = writeln!(s, "      control:    {}", v.control);
            let _ = writeln!(s, "      experiment: {}", v.experiment);
        }
    }
    let count = |st| r.artifacts.iter().filter(|a| a.status == st).count();
    if !r.artifacts.is_empty() {
        let _ = writeln!(
            s,
            "\nartifacts: {} identical, {} differ, {} only in control, {} only in experiment",
            count(ArtifactStatus::Identical),
            count(ArtifactStatus::Differs),
            count(ArtifactStatus::OnlyInControl),
            count(ArtifactStatus::OnlyInExperiment)
        );
    }
    for a in &r.artifacts {
        match a.status {
            ArtifactStatus::Identical => {}
            ArtifactStatus::OnlyInControl => {
                let _ = writeln!(s, "  only in control:    {}", a.path);
            }
            ArtifactStatus::OnlyInExperiment => {
                let _ = writeln!(s, "  only in experiment: {}", a.path);
            }
            ArtifactStatus::Differs => {
                let _ = writeln!(s, "  differs: {}", a.path);
                if let Some(d) = &a.differences {
                    for line in d.render_text(2).lines() {
                        let _ = writeln!(s, "    {line}");
                    }
                }
            }
        }
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s.push('\n');
    s.push_str(&answer(r));
    s.push('\n');
    s
}

/// The short answer that ends the report.
pub fn answer(r: &Report) -> String {
    if let Some(e) = &r.error {
        return format!("no verdict: {e}");
    }
    if r.reproducible {
        return "reproducible".to_string();
    }
    let mut out = Vec::new();
    if !r.culprits.is_empty() {
        let sets: Vec<String> = r
            .culprits
            .iter()
            .map(|c| c.join(" together with "))
            .collect();
        out.push(format!("unreproducible when varying: {}", sets.join("; ")));
        for c in &r.culprits {
            let arts: Vec<&str> = r
                .artifacts
                .iter()
                .filter(|a| a.culprits.contains(c))
                .map(|a| a.path.as_str())
                .collect();
            out.push(format!("  {}: {}", c.join(" + "), arts.join(", ")));
        }
    }
    if r.nondeterministic {
        let arts: Vec<&str> = r
            .artifacts
            .iter()
            .filter(|a| a.nondeterministic)
            .map(|a| a.path.as_str())
            .collect();
        out.push(format!(
            "nondeterministic even with nothing varied: {}",
            arts.join(", ")
        ));
    }
    if out.is_empty() {
        out.push("unreproducible".to_string());
    }
    out.join("\n")
}
