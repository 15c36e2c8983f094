//! Attribution: with everything varied, vary-build must name exactly the variations (alone or
//! together) that change each artifact, tell nondeterminism apart, and run no extra build
//! when the output is reproducible.

use crate::common::{Outcome, Workdir};

fn names(sets: &[&[&str]]) -> Vec<Vec<String>> {
    sets.iter()
        .map(|s| s.iter().map(|n| n.to_string()).collect())
        .collect()
}

fn run_all(test: &str, script: &str) -> Outcome {
    let wd = Workdir::empty(test);
    wd.write("build.sh", script);
    wd.vary_build().vary("all").run()
}

fn artifact_culprits(out: &Outcome, path: &str) -> Vec<Vec<String>> {
    serde_json::from_value(out.artifact(path)["culprits"].clone()).unwrap_or_default()
}

fn extra_builds(out: &Outcome) -> u64 {
    out.report()["attribution"]["extra_builds"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

#[test]
fn one_culprit_among_all_variations() {
    let out = run_all("attr-one", "date +%Z%z > out.txt\necho fixed > same.txt\n");
    out.assert_exit(1).assert_builds_succeeded();
    out.check(out.culprits() == names(&[&["timezone"]]), || {
        format!("culprits {:?}", out.culprits())
    });
    out.check(out.report()["nondeterministic"] == false, || {
        "nondeterministic?".into()
    });
    out.check(out.variation("umask")["caused_difference"] == false, || {
        "umask was varied without effect and must say so".into()
    });
    out.check(extra_builds(&out) <= 6, || {
        format!("{} extra builds for one culprit", extra_builds(&out))
    });
    out.assert_output_contains("unreproducible when varying: timezone");
}

#[test]
fn two_independent_culprits_are_named_per_artifact() {
    let out = run_all("attr-two", "hostname > host.txt\numask > umask.txt\n");
    out.assert_exit(1);
    out.check(
        out.culprits() == names(&[&["umask"], &["domain_host"]]),
        || format!("culprits {:?}", out.culprits()),
    );
    out.check(
        artifact_culprits(&out, "host.txt") == names(&[&["domain_host"]]),
        || {
            format!(
                "host.txt culprits {:?}",
                artifact_culprits(&out, "host.txt")
            )
        },
    );
    out.check(
        artifact_culprits(&out, "umask.txt") == names(&[&["umask"]]),
        || {
            format!(
                "umask.txt culprits {:?}",
                artifact_culprits(&out, "umask.txt")
            )
        },
    );
}

#[test]
fn an_interaction_of_two_variations_is_one_culprit_set() {
    // Changes only when the host name AND the umask are both the experiment's.
    let out = run_all(
        "attr-interaction",
        "if [ \"$(hostname)\" = vary-build-host-experiment ] && [ \"$(umask)\" = 0002 ]; \
         then echo both; else echo not-both; fi > out.txt\n",
    );
    out.assert_exit(1);
    out.check(
        out.culprits() == names(&[&["umask", "domain_host"]]),
        || format!("culprits {:?}", out.culprits()),
    );
    out.assert_output_contains("umask together with domain_host");
}

#[test]
fn a_nondeterministic_build_is_not_blamed_on_any_variation() {
    let out = run_all("attr-nondet", "od -An -N8 -tx8 /dev/urandom > out.txt\n");
    out.assert_exit(1);
    out.check(out.report()["nondeterministic"] == true, || {
        "not flagged".into()
    });
    out.check(out.culprits().is_empty(), || {
        format!("culprits {:?}", out.culprits())
    });
    out.check(out.artifact("out.txt")["nondeterministic"] == true, || {
        "artifact".into()
    });
    out.assert_output_contains("nondeterministic even with nothing varied: out.txt");
}

#[test]
fn nondeterminism_in_one_artifact_and_a_variation_in_another() {
    let out = run_all(
        "attr-mixed",
        "od -An -N8 -tx8 /dev/urandom > random.txt\nuname -r > kernel.txt\n",
    );
    out.assert_exit(1);
    out.check(out.report()["nondeterministic"] == true, || {
        "not flagged".into()
    });
    out.check(out.culprits() == names(&[&["kernel"]]), || {
        format!("culprits {:?}", out.culprits())
    });
    out.check(artifact_culprits(&out, "random.txt").is_empty(), || {
        "random.txt blamed on a variation".into()
    });
    out.check(
        artifact_culprits(&out, "kernel.txt") == names(&[&["kernel"]]),
        || "kernel.txt".into(),
    );
}

#[test]
fn a_reproducible_build_runs_no_attribution_build() {
    let out = run_all("attr-clean", "echo same > out.txt\n");
    out.assert_exit(0);
    let names: Vec<String> = out
        .builds()
        .iter()
        .map(|b| b["name"].as_str().unwrap_or("").to_string())
        .collect();
    out.check(names == ["control", "experiment", "control-2"], || {
        format!("builds {names:?}")
    });
    out.check(out.report()["attribution"].is_null(), || {
        "attribution ran".into()
    });
}

#[test]
fn no_attribute_runs_two_builds_and_blames_the_whole_set() {
    let wd = Workdir::empty("attr-off");
    wd.write("build.sh", "hostname > out.txt\n");
    let out = wd
        .vary_build()
        .vary("@domain_host,+umask")
        .arg("--no-attribute")
        .run();
    out.assert_exit(1);
    out.check(out.builds().len() == 2, || {
        format!("{} builds", out.builds().len())
    });
    out.check(
        out.culprits() == names(&[&["umask", "domain_host"]]),
        || format!("culprits {:?}", out.culprits()),
    );
}
