//! vary-build run by an unprivileged user on a machine where user namespaces are disabled.
//!
//! The tests make such a machine for real: they start a user namespace (as root) whose
//! `user.max_user_namespaces` is 0, and run vary-build in it as the unprivileged user named by
//! `VARY_BUILD_TEST_USER` (see .ci/run), so its attempts to create namespaces fail with the
//! kernel's own error. The namespace variations must then be reported unavailable with the
//! reason and the fix (exit 4), and with `--allow-unavailable` the rest must still work.

#[allow(dead_code)]
mod common;

use common::{User, processes_with, wait_until};
use serde_json::Value;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Run {
    code: i32,
    stderr: String,
    report: Value,
    tmp: PathBuf,
}

/// Runs vary-build with `args` on `script` as `user`, in a user namespace that forbids
/// creating further user namespaces.
fn run_without_userns(dir: &Path, user: &User, script: &str, args: &[&str]) -> Run {
    let bin = dir.join("bin/vary-build");
    let src = dir.join("src");
    let tmp = dir.join("tmp");
    for d in [bin.parent().unwrap(), &src, &tmp] {
        fs::create_dir_all(d).unwrap();
    }
    fs::copy(env!("CARGO_BIN_EXE_vary-build"), &bin).unwrap();
    fs::write(src.join("build.sh"), script).unwrap();
    for d in [dir, &src, &tmp] {
        std::os::unix::fs::chown(d, Some(user.uid), Some(user.gid)).unwrap();
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(src.join("build.sh"), Some(user.uid), Some(user.gid)).unwrap();
    let report = dir.join("report.json");
    let mut inner = format!(
        "echo 0 > /proc/sys/user/max_user_namespaces && cd {} && exec setpriv --reuid={} \
         --regid={} --clear-groups env TMPDIR={} HOME={} {} -s src --seed 7 -j 2 --json {} {} -- sh build.sh",
        dir.display(),
        user.uid,
        user.gid,
        tmp.display(),
        dir.display(),
        bin.display(),
        report.display(),
        args.join(" ")
    );
    inner = inner.replace('\'', "'\\''");
    // The namespace's maps are written from outside (we are root there); the shell waits
    // for them, then re-executes itself to gain root's capabilities inside.
    let mut child = Command::new("unshare")
        .args(["--user", "sh", "-c"])
        .arg(format!("read go; exec sh -c '{inner}'"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run unshare");
    // The maps can only be written once `unshare` has entered its new namespace.
    let ours = fs::read_link("/proc/self/ns/user").unwrap();
    let entered = wait_until(Duration::from_secs(20), || {
        fs::read_link(format!("/proc/{}/ns/user", child.id())).is_ok_and(|ns| ns != ours)
    });
    assert!(
        entered,
        "unshare --user did not enter a new user namespace within 20 s"
    );
    for map in ["uid_map", "gid_map"] {
        fs::write(format!("/proc/{}/{map}", child.id()), "0 0 4294967295\n")
            .unwrap_or_else(|e| panic!("writing {map} (the tests must run as root): {e}"));
    }
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report: fs::read(&report)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null),
        tmp,
    }
}

fn variation<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["variations"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == name))
        .unwrap_or(&Value::Null)
}

#[test]
fn namespace_variations_are_unavailable_with_the_reason_and_the_fix() {
    let user = User::from_env();
    let dir = tempfile::tempdir().unwrap();
    let r = run_without_userns(dir.path(), &user, "hostname > out.txt\n", &[]);
    assert_eq!(r.code, 4, "stderr: {}\nreport: {:#}", r.stderr, r.report);
    for name in ["domain_host", "user_group", "fileordering"] {
        let v = variation(&r.report, name);
        assert_eq!(v["status"], "unavailable", "{name}: {v:#}");
        let reason = v["reason"].as_str().unwrap_or("");
        assert!(
            reason.contains("cannot create a user namespace") && reason.contains("sysctl"),
            "{name}: {reason}"
        );
    }
    assert_eq!(variation(&r.report, "umask")["status"], "varied");
    assert!(r.report["builds"].as_array().is_some_and(|b| b.is_empty()));
}

#[test]
fn the_other_variations_still_work_and_leave_no_process_behind() {
    let user = User::from_env();
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("vb-no-userns-{}", std::process::id());
    let script = format!(
        "bash -c 'exec -a \"$0\" sleep 1000' {marker} &\n\
         setsid -f bash -c 'exec -a \"$0\" sleep 1000' {marker}-daemon </dev/null >/dev/null 2>&1\n\
         pwd > pwd.txt\numask > umask.txt\necho same > same.txt\n"
    );
    let r = run_without_userns(dir.path(), &user, &script, &["--allow-unavailable"]);
    assert_eq!(r.code, 1, "stderr: {}\nreport: {:#}", r.stderr, r.report);
    let culprits: Vec<Vec<String>> =
        serde_json::from_value(r.report["culprits"].clone()).unwrap_or_default();
    assert_eq!(
        culprits,
        vec![vec!["build_path".to_string()], vec!["umask".to_string()]],
        "{:#}",
        r.report
    );
    for name in ["build_path", "umask", "time", "locales"] {
        assert_eq!(variation(&r.report, name)["effective"], true, "{name}");
    }
    assert!(
        wait_until(Duration::from_secs(5), || processes_with(&marker)
            .is_empty()),
        "left behind: {:?}",
        processes_with(&marker)
    );
    assert_eq!(fs::read_dir(&r.tmp).unwrap().count(), 0, "TMPDIR not empty");
}
