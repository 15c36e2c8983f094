//! Mistakes a user can make, and builds that fail: each must end with the
//! documented exit code and a message that says what went wrong, before
//! touching anything it should not.

use std::fs;

use crate::common::Workdir;

#[test]
fn missing_source_root_is_a_usage_error() {
    let wd = Workdir::new("missing-root", "clean");
    let missing = wd.root().join("vb-does-not-exist");
    let out = wd.vary_build().source_root(Some(&missing)).run();
    out.assert_exit(2)
        .assert_stderr_contains("vb-does-not-exist");
}

#[test]
fn source_root_that_is_a_file_is_a_usage_error() {
    let wd = Workdir::new("file-root", "clean");
    let file = wd.source().join("build.sh");
    let out = wd.vary_build().source_root(Some(&file)).run();
    out.assert_exit(2).assert_stderr_contains("build.sh");
}

#[test]
fn artifact_pattern_matching_nothing_is_a_usage_error() {
    let wd = Workdir::new("no-match", "clean");
    let out = wd
        .vary_build()
        .vary("@umask")
        .args(["-a", "vb-nothing/*.bin"])
        .run();
    out.assert_exit(2)
        .assert_stderr_contains("vb-nothing/*.bin");
}

#[test]
fn artifact_pattern_outside_the_workspace_is_a_usage_error() {
    let wd = Workdir::new("outside-pattern", "clean");
    let out = wd.vary_build().args(["-a", "../../vb-escape"]).run();
    out.assert_exit(2).assert_stderr_contains("../../vb-escape");
}

#[test]
fn missing_command_is_a_usage_error() {
    let wd = Workdir::new("no-command", "clean");
    let out = wd.vary_build().command(Vec::<&str>::new()).run();
    out.assert_exit(2);
}

#[test]
fn empty_command_after_dashes_is_a_usage_error() {
    let wd = Workdir::new("empty-command", "clean");
    let out = wd.vary_build().command(Vec::<&str>::new()).arg("--").run();
    out.assert_exit(2);
}

#[test]
fn command_not_found_is_a_build_failure_naming_the_build() {
    let wd = Workdir::new("not-found", "clean");
    let out = wd
        .vary_build()
        .vary("@umask")
        .command(["vb-no-such-command"])
        .run();
    out.assert_exit(3)
        .assert_stderr_contains("vb-no-such-command");
    out.check(
        out.stderr.contains("control") || out.stderr.contains("experiment"),
        || "expected stderr to name the failed build".into(),
    );
}

#[test]
fn build_failing_only_in_the_experiment_is_reported() {
    let wd = Workdir::empty("fails-in-experiment");
    wd.write(
        "build.sh",
        "set -e\necho vb-log-line-1\necho vb-log-tail-line \"TZ=$TZ\"\ntest \"$TZ\" = UTC\necho ok > out.txt\n",
    );
    let store = wd.root().join("store");
    let out = wd
        .vary_build()
        .vary("@timezone")
        .arg("--store-dir")
        .arg(&store)
        .run();
    out.assert_exit(3)
        .assert_stderr_contains("experiment")
        .assert_stderr_contains("vb-log-tail-line")
        .assert_stderr_contains(&store.join("experiment/build.log").display().to_string());
    let log = fs::read_to_string(store.join("experiment/build.log")).unwrap_or_default();
    out.check(
        log.contains("vb-log-line-1") && log.contains("vb-log-tail-line"),
        || format!("the stored experiment log is incomplete: {log:?}"),
    );
}

#[test]
fn unknown_variation_suggests_the_closest_name() {
    let wd = Workdir::new("unknown-variation", "clean");
    let out = wd.vary_build().vary("+timezon").run();
    out.assert_exit(2)
        .assert_stderr_contains("timezon")
        .assert_stderr_contains("timezone");
}

#[test]
fn unknown_variation_in_only_form_is_rejected() {
    let wd = Workdir::new("unknown-only", "clean");
    let out = wd.vary_build().vary("@fileorder").run();
    out.assert_exit(2).assert_stderr_contains("fileordering");
}

#[test]
fn expression_varying_nothing_is_rejected() {
    let wd = Workdir::new("varies-nothing", "clean");
    let out = wd.vary_build().vary("@time,-time").run();
    out.assert_exit(2);
}

#[test]
fn non_empty_store_dir_is_refused_and_left_alone() {
    let wd = Workdir::new("store-not-empty", "clean");
    let store = wd.root().join("store");
    fs::create_dir(&store).unwrap();
    fs::write(store.join("keep.txt"), "precious\n").unwrap();
    let out = wd.vary_build().arg("--store-dir").arg(&store).run();
    out.assert_exit(2)
        .assert_stderr_contains(&store.display().to_string());
    let names = crate::common::list_dir(&store);
    out.check(names == ["keep.txt"], || {
        format!("the store dir was changed: {names:?}")
    });
    out.check(
        fs::read_to_string(store.join("keep.txt")).unwrap() == "precious\n",
        || "keep.txt was modified".into(),
    );
}

#[test]
fn bad_timeout_is_a_usage_error() {
    let wd = Workdir::new("bad-timeout", "clean");
    let out = wd.vary_build().args(["--timeout", "vb-forever"]).run();
    out.assert_exit(2).assert_stderr_contains("vb-forever");
}

#[test]
fn bad_seed_is_a_usage_error() {
    let wd = Workdir::new("bad-seed", "clean");
    let out = wd
        .vary_build()
        .no_seed()
        .args(["--seed", "vb-not-a-number"])
        .run();
    out.assert_exit(2);
}

#[test]
fn unknown_option_is_a_usage_error() {
    let wd = Workdir::new("unknown-option", "clean");
    let out = wd.vary_build().arg("--vb-no-such-option").run();
    out.assert_exit(2)
        .assert_stderr_contains("--vb-no-such-option");
}
