//! Source trees that are awkward to copy and compare: names that are not
//! UTF-8, symlinks that loop or point outside, builds that rewrite their own
//! tree, outputs written beside the tree.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;

use crate::common::Workdir;

/// `café.txt` in Latin-1: not valid UTF-8.
const LATIN1_NAME: &[u8] = b"caf\xe9.txt";
const LATIN1_DIR: &[u8] = b"r\xe9pertoire";

#[test]
fn non_utf8_file_names_are_copied_and_compared() {
    let wd = Workdir::empty("non-utf8");
    wd.write(OsStr::from_bytes(LATIN1_NAME), "control and experiment\n");
    let dir = wd.source().join(OsStr::from_bytes(LATIN1_DIR));
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("inside.txt"), "unchanged\n").unwrap();
    // Only the Latin-1-named file picks up the timezone, through a glob so
    // the script itself stays ASCII.
    wd.write(
        "build.sh",
        "set -eu\nfor f in caf*.txt; do date '+%z %Z' >> \"$f\"; done\ncat r*pertoire/inside.txt > out.txt\n",
    );
    let store = wd.root().join("store");
    let out = wd
        .vary_build()
        .vary("@timezone")
        .arg("--store-dir")
        .arg(&store)
        .run();
    out.assert_exit(1)
        .assert_builds_succeeded()
        .assert_artifact_status("out.txt", "identical");
    let artifacts = out.report()["artifacts"].as_array().unwrap();
    let differing: Vec<_> = artifacts
        .iter()
        .filter(|a| a["status"] == "differs")
        .collect();
    out.check(
        differing.len() == 1
            && differing[0]["path"]
                .as_str()
                .unwrap_or("")
                .starts_with("caf"),
        || format!("expected exactly the Latin-1-named file to differ, got {differing:?}"),
    );
    // The stored copies keep the exact bytes of the names.
    for build in out.builds() {
        let name = build["name"].as_str().unwrap();
        let artifacts = store.join(name).join("artifacts");
        let file = artifacts.join(OsStr::from_bytes(LATIN1_NAME));
        let inside = artifacts
            .join(OsStr::from_bytes(LATIN1_DIR))
            .join("inside.txt");
        out.check(file.is_file() && inside.is_file(), || {
            format!("build {name}: the non-UTF-8 names were not stored byte for byte")
        });
        let content = fs::read_to_string(&file).unwrap();
        out.check(content.starts_with("control and experiment\n"), || {
            format!("build {name}: stored {content:?}")
        });
    }
}

#[test]
fn symlink_loops_are_copied_as_symlinks() {
    let wd = Workdir::empty("symlink-loop");
    symlink("self", wd.source().join("self")).unwrap();
    symlink("pong", wd.source().join("ping")).unwrap();
    symlink("ping", wd.source().join("pong")).unwrap();
    fs::create_dir(wd.source().join("dir")).unwrap();
    symlink("..", wd.source().join("dir/up")).unwrap();
    wd.write(
        "build.sh",
        "set -eu\nfor l in self ping pong dir/up; do test -L \"$l\"; readlink \"$l\"; done > out.txt\n",
    );
    let store = wd.root().join("store");
    let out = wd
        .vary_build()
        .vary("@umask")
        .arg("--store-dir")
        .arg(&store)
        .run();
    out.assert_exit(0).assert_builds_succeeded();
    let stored = fs::read_to_string(store.join("control/artifacts/out.txt"));
    out.check(
        stored.as_deref().ok() == Some("self\npong\nping\n..\n"),
        || format!("the build did not see the loops as the same symlinks: {stored:?}"),
    );
    for a in out.report()["artifacts"].as_array().unwrap() {
        let path = a["path"].as_str().unwrap_or("");
        out.check(!path.starts_with("dir/up/"), || {
            format!("a symlink to a directory was followed: {a}")
        });
    }
}

#[test]
fn symlinks_pointing_outside_are_never_followed() {
    let wd = Workdir::empty("symlink-outside");
    let secret_dir = wd.root().join("secret-dir");
    fs::create_dir(&secret_dir).unwrap();
    fs::write(secret_dir.join("secret.txt"), "vb-secret-content\n").unwrap();
    let secret = wd.root().join("secret.txt");
    fs::write(&secret, "vb-secret-content\n").unwrap();
    symlink(&secret, wd.source().join("outside-file")).unwrap();
    symlink(&secret_dir, wd.source().join("outside-dir")).unwrap();
    symlink("../secret.txt", wd.source().join("outside-relative")).unwrap();
    wd.write(
        "build.sh",
        "set -eu\nfor l in outside-file outside-dir outside-relative; do test -L \"$l\"; readlink \"$l\"; done > out.txt\n",
    );
    let store = wd.root().join("store");
    let out = wd
        .vary_build()
        .vary("@umask")
        .arg("--store-dir")
        .arg(&store)
        .run();
    out.assert_exit(0).assert_builds_succeeded();
    let expected = format!(
        "{}\n{}\n../secret.txt\n",
        secret.display(),
        secret_dir.display()
    );
    let stored = fs::read_to_string(store.join("control/artifacts/out.txt")).ok();
    out.check(stored.as_deref() == Some(expected.as_str()), || {
        format!("the build did not see the symlinks unchanged: {stored:?}, wanted {expected:?}")
    });
    for a in out.report()["artifacts"].as_array().unwrap() {
        let path = a["path"].as_str().unwrap_or("");
        out.check(!path.starts_with("outside-dir/"), || {
            format!("a symlink to a directory outside the tree was followed: {a}")
        });
    }
    // Nothing stored anywhere holds the secret's bytes as a regular file.
    let leaked = find_regular_files_containing(&store, b"vb-secret-content");
    out.check(leaked.is_empty(), || {
        format!("content outside the source tree was copied: {leaked:?}")
    });
    out.check(
        fs::read_to_string(&secret).unwrap() == "vb-secret-content\n",
        || "the file outside the tree was modified".into(),
    );
}

fn find_regular_files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            found.extend(find_regular_files_containing(&path, needle));
        } else if meta.is_file() {
            let bytes = fs::read(&path).unwrap_or_default();
            // The build log may quote the symlink target, never its content.
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn a_build_rewriting_its_tree_leaves_the_users_tree_alone() {
    // The harness compares the source tree before and after; this build
    // appends, chmods, deletes, renames, relinks and creates files.
    let wd = Workdir::new("modifies-itself", "modifies_itself");
    let out = wd.vary_build().vary("@umask").run();
    out.assert_exit(0)
        .assert_builds_succeeded()
        .assert_artifact_status("renamed.txt", "identical")
        .assert_artifact_status("sub/new/file.txt", "identical");
    let original = fs::read_to_string(wd.source().join("data.txt")).unwrap();
    out.check(original == "data\n", || {
        format!("the user's data.txt now holds {original:?}")
    });
}

#[test]
fn artifacts_beside_the_tree_are_collected() {
    let wd = Workdir::new("beside", "beside");
    let out = wd
        .vary_build()
        .vary("@timezone")
        .args(["-a", "../beside.txt", "-a", "out.txt"])
        .run();
    out.assert_exit(1)
        .assert_builds_succeeded()
        .assert_artifact_status("../beside.txt", "differs")
        .assert_artifact_status("out.txt", "identical");
    let paths: Vec<_> = out.report()["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].clone())
        .collect();
    out.check(paths.len() == 2, || {
        format!("expected only the two requested artifacts, got {paths:?}")
    });
    out.check(!wd.root().join("beside.txt").exists(), || {
        "the build wrote beside the user's tree instead of its own copy".into()
    });
}
