//! What vary-build writes: the JSON report, the store directory, stdout, the
//! help text, and the plan replayed from a seed.

use std::fs;

use serde_json::Value;

use crate::common::{SEED, VARIATIONS, Workdir, sha256_hex};

#[test]
fn store_dir_holds_logs_artifacts_and_the_report() {
    let wd = Workdir::new("store-layout", "timezone");
    let store = wd.root().join("store");
    let out = wd
        .vary_build()
        .vary("@timezone")
        .arg("--store-dir")
        .arg(&store)
        .run();
    out.assert_exit(1);
    let stored: Value =
        serde_json::from_slice(&fs::read(store.join("report.json")).unwrap_or_default())
            .unwrap_or(Value::Null);
    out.check(&stored == out.report(), || {
        format!("DIR/report.json differs from the --json report: {stored}")
    });
    let builds = out.builds();
    out.check(builds.len() >= 2, || "expected at least two builds".into());
    let mut outputs = Vec::new();
    for build in builds {
        let name = build["name"].as_str().unwrap_or_default();
        let log_path = store.join(name).join("build.log");
        let artifact = store.join(name).join("artifacts/out.txt");
        let log = fs::read_to_string(&log_path).unwrap_or_default();
        let content = fs::read_to_string(&artifact).unwrap_or_default();
        out.check(!content.is_empty(), || {
            format!("{} is missing or empty", artifact.display())
        });
        // build.sh prints out.txt: the log is this build's own output.
        out.check(log.contains(content.trim()), || {
            format!(
                "{} does not hold the build's output {content:?}: {log:?}",
                log_path.display()
            )
        });
        out.check(build["log"] == log_path.display().to_string(), || {
            format!(
                "report.builds[].log should be {}, got {}",
                log_path.display(),
                build["log"]
            )
        });
        outputs.push(content);
    }
    out.check(outputs[0] != outputs[1], || {
        format!("the stored outputs should differ by timezone: {outputs:?}")
    });
    let control = fs::read(store.join("control/artifacts/out.txt")).unwrap_or_default();
    out.check(
        out.artifact("out.txt")["control_sha256"] == sha256_hex(&control),
        || "control_sha256 is not the sha256 of the stored control artifact".into(),
    );
}

#[test]
fn json_report_has_every_field_with_its_type() {
    let wd = Workdir::new("json-schema", "timezone");
    let out = wd.vary_build().vary("@timezone").run();
    out.assert_exit(1);
    let r = out.report();
    let check = |ok: bool, what: &str| out.check(ok, || format!("report: {what}"));
    check(r["schema"] == "vary-build/report/v1", "schema");
    check(
        r["vary_build_version"] == env!("CARGO_PKG_VERSION"),
        "vary_build_version",
    );
    check(r["seed"] == SEED, "seed is the one given");
    check(
        r["command"] == serde_json::json!(["sh", "build.sh"]),
        "command",
    );
    let source = fs::canonicalize(wd.source()).unwrap();
    check(
        r["source_root"] == source.display().to_string(),
        "source_root is absolute",
    );
    check(r["reproducible"] == false, "reproducible");
    check(
        r["nondeterministic"].is_boolean(),
        "nondeterministic is a bool",
    );
    check(
        r["culprits"] == serde_json::json!([["timezone"]]),
        "culprits",
    );

    let variations = r["variations"].as_array().cloned().unwrap_or_default();
    let mut names: Vec<&str> = variations
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    names.sort_unstable();
    let mut all = VARIATIONS.to_vec();
    all.sort_unstable();
    check(names == all, "variations lists each variation once");
    for v in &variations {
        let status = v["status"].as_str().unwrap_or_default();
        check(
            ["varied", "not_varied", "unavailable"].contains(&status),
            "variations[].status",
        );
        check(v["control"].is_string(), "variations[].control is a string");
        check(
            v["experiment"].is_string(),
            "variations[].experiment is a string",
        );
        check(
            v["effective"].is_boolean() || v["effective"].is_null(),
            "variations[].effective is bool or null",
        );
        check(
            v["reason"].is_string() || v["reason"].is_null(),
            "variations[].reason is string or null",
        );
        check(
            status != "varied" || v["control"] != v["experiment"],
            "a varied variation has different control and experiment values",
        );
    }
    let tz = out.variation("timezone");
    check(
        tz["reason"].is_null(),
        "an effective variation has no reason",
    );

    let artifacts = r["artifacts"].as_array().cloned().unwrap_or_default();
    let statuses = [
        "identical",
        "differs",
        "only_in_control",
        "only_in_experiment",
    ];
    for a in &artifacts {
        check(a["path"].is_string(), "artifacts[].path");
        check(
            statuses.contains(&a["status"].as_str().unwrap_or_default()),
            "artifacts[].status",
        );
        for (side, missing_when) in [
            ("control_sha256", "only_in_experiment"),
            ("experiment_sha256", "only_in_control"),
        ] {
            let sha = a[side].as_str().unwrap_or_default();
            check(
                if a["status"] == missing_when {
                    a[side].is_null()
                } else {
                    sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit())
                },
                "artifacts[].*_sha256 is a hex sha256, or null on the side without the file",
            );
        }
        check(
            (a["status"] == "identical") == a["differences"].is_null(),
            "artifacts[].differences is null exactly when identical",
        );
    }
    let diff = &out.artifact("out.txt")["differences"];
    for field in ["source", "comparator", "unified_diff"] {
        check(
            diff[field].is_string(),
            "differences has source, comparator, unified_diff",
        );
    }
    check(
        diff["comment"].is_string() || diff["comment"].is_null(),
        "differences.comment",
    );
    check(
        diff["children"].is_array(),
        "differences.children is an array",
    );
    check(
        out.artifact("build.sh")["status"] == "identical",
        "unchanged sources are identical artifacts",
    );

    let builds = out.builds();
    check(builds[0]["name"] == "control", "the first build is control");
    check(
        builds[0]["varied"] == serde_json::json!([]),
        "control varies nothing",
    );
    check(
        builds
            .iter()
            .any(|b| b["varied"] == serde_json::json!(["timezone"])),
        "a build varies timezone",
    );
    for b in builds {
        check(b["name"].is_string(), "builds[].name");
        check(b["exit_code"] == 0, "builds[].exit_code");
        check(b["timed_out"] == false, "builds[].timed_out");
        check(
            b["duration_s"].as_f64().is_some_and(|d| d >= 0.0),
            "builds[].duration_s is a non-negative number",
        );
        check(b["log"].is_string() || b["log"].is_null(), "builds[].log");
    }
}

#[test]
fn unified_diff_shows_both_sides() {
    let wd = Workdir::new("unified-diff", "timezone");
    let store = wd.root().join("store");
    let out = wd
        .vary_build()
        .vary("@timezone")
        .arg("--store-dir")
        .arg(&store)
        .run();
    out.assert_exit(1);
    let diff = out.artifact("out.txt")["differences"]["unified_diff"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for build in out.builds() {
        let name = build["name"].as_str().unwrap_or_default();
        let content =
            fs::read_to_string(store.join(name).join("artifacts/out.txt")).unwrap_or_default();
        out.check(!content.is_empty() && diff.contains(content.trim()), || {
            format!("the unified diff does not show {name}'s {content:?}")
        });
    }
}

#[test]
fn same_seed_gives_the_same_plan() {
    let wd = Workdir::new("same-seed", "clean");
    let plan = |out: &crate::common::Outcome| -> Vec<Value> {
        out.report()["variations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|v| serde_json::json!([v["name"], v["status"], v["control"], v["experiment"]]))
            .collect()
    };
    let first = wd.vary_build().seed(4242).vary("all").run();
    first.assert_exit(0);
    let second = wd.vary_build().seed(4242).vary("all").run();
    second.assert_exit(0);
    second.check(second.report()["seed"] == 4242, || {
        "seed not recorded".into()
    });
    let (a, b) = (plan(&first), plan(&second));
    second.check(a == b, || {
        format!("same seed, different plans:\n{a:?}\n{b:?}")
    });
}

#[test]
fn format_json_prints_the_report() {
    let wd = Workdir::new("format-json", "timezone");
    let out = wd
        .vary_build()
        .vary("@timezone")
        .args(["--format", "json"])
        .run();
    out.assert_exit(1);
    let printed: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
    out.check(&printed == out.report(), || {
        "stdout under --format json is not the report".into()
    });
}

#[test]
fn human_output_names_the_culprit_and_the_artifact() {
    let wd = Workdir::new("human", "timezone");
    let out = wd.vary_build().vary("@timezone").run();
    out.assert_exit(1);
    out.check(
        out.stdout.contains("timezone") && out.stdout.contains("out.txt"),
        || "the human report should name the culprit and the differing file".into(),
    );
}

#[test]
fn help_lists_every_variation_with_its_values() {
    let wd = Workdir::empty("help");
    let out = wd
        .vary_build()
        .source_root(None)
        .no_json()
        .no_seed()
        .command(Vec::<&str>::new())
        .arg("--help")
        .run();
    out.assert_exit(0);
    for name in VARIATIONS {
        out.assert_output_contains(name);
    }
    for value in ["C.UTF-8", "tr_TR.UTF-8", "0022", "0002"] {
        out.assert_output_contains(value);
    }
}

#[test]
fn both_builds_get_the_same_source_date_epoch() {
    let wd = Workdir::new("sde-shared", "sde");
    let out = wd.vary_build().vary("@time").run();
    out.assert_exit(0)
        .assert_builds_succeeded()
        .assert_varied_and_effective("time")
        .assert_artifact_status("out.txt", "identical");
}

#[test]
fn a_users_source_date_epoch_is_kept() {
    let wd = Workdir::new("sde-user", "sde");
    let store = wd.root().join("store");
    let out = wd
        .vary_build()
        .vary("@time")
        .env("SOURCE_DATE_EPOCH", "1234567890")
        .arg("--store-dir")
        .arg(&store)
        .run();
    out.assert_exit(0);
    for build in out.builds() {
        let name = build["name"].as_str().unwrap_or_default();
        let got =
            fs::read_to_string(store.join(name).join("artifacts/out.txt")).unwrap_or_default();
        out.check(got == "1234567890\n", || {
            format!("build {name} saw SOURCE_DATE_EPOCH={got:?}, not the user's")
        });
    }
}
