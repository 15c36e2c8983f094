//! Real workloads inside a mount, compared with the same workload natively: a C
//! project built with make and gcc, and a git repository initialised and committed.
//! Both run in no-open mode (`passthrough: false`), the mode vary-build gets inside
//! its user namespace; the operations test covers the passthrough mode too.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::Fixture;
use disorderfs::{Options, Order};

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(dir: &Path, cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "A")
        .env("GIT_AUTHOR_EMAIL", "a@example.org")
        .env("GIT_AUTHOR_DATE", "2020-01-01T00:00:00Z")
        .env("GIT_COMMITTER_NAME", "A")
        .env("GIT_COMMITTER_EMAIL", "a@example.org")
        .env("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed in {}:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write_c_project(dir: &Path) {
    fs::create_dir_all(dir.join("src")).unwrap();
    fs::create_dir_all(dir.join("include")).unwrap();
    fs::write(
        dir.join("include/util.h"),
        "int add(int, int);\nint mul(int, int);\n",
    )
    .unwrap();
    fs::write(
        dir.join("src/add.c"),
        "#include \"util.h\"\nint add(int a, int b) { return a + b; }\n",
    )
    .unwrap();
    fs::write(
        dir.join("src/mul.c"),
        "#include \"util.h\"\nint mul(int a, int b) { return a * b; }\n",
    )
    .unwrap();
    fs::write(
        dir.join("src/main.c"),
        "#include <stdio.h>\n#include \"util.h\"\nint main(void) { printf(\"%d %d\\n\", add(2, 3), mul(4, 5)); return 0; }\n",
    )
    .unwrap();
    // $(wildcard) is unsorted in old makes: exactly the kind of order a build can leak.
    fs::write(
        dir.join("Makefile"),
        "SRCS := $(wildcard src/*.c)\nOBJS := $(SRCS:.c=.o)\nprog: $(OBJS)\n\tgcc -o $@ $(OBJS)\n%.o: %.c include/util.h\n\tgcc -O2 -Iinclude -c -o $@ $<\nclean:\n\trm -f prog $(OBJS)\n",
    )
    .unwrap();
}

#[test]
fn c_project_builds_the_same_through_the_mount() {
    if !have("gcc") || !have("make") {
        panic!("gcc and make are needed for this test");
    }
    let native = tempfile::tempdir().unwrap();
    write_c_project(native.path());
    run(native.path(), "make", &["-j2"]);
    let native_out = run(native.path(), "./prog", &[]);

    let fx = Fixture::new(
        &Options {
            order: Order::Shuffle { seed: 3 },
            passthrough: false,
            ..Options::default()
        },
        write_c_project,
    );
    run(&fx.mnt, "make", &["-j2"]);
    let mounted_out = run(&fx.mnt, "./prog", &[]);
    assert_eq!(native_out, "5 20\n");
    assert_eq!(mounted_out, native_out);
    for obj in ["src/add.o", "src/mul.o", "src/main.o"] {
        assert_eq!(
            fs::read(native.path().join(obj)).unwrap(),
            fs::read(fx.mnt.join(obj)).unwrap(),
            "{obj} differs"
        );
    }
    // make sees up-to-date targets through the mount (mtimes behave).
    let again = run(&fx.mnt, "make", &[]);
    assert!(again.contains("up to date"), "make rebuilt: {again}");
    run(&fx.mnt, "make", &["clean"]);
    assert!(!fx.root.join("prog").exists());
    fx.unmount();
}

fn git_session(dir: &Path) -> (String, String, String) {
    write_c_project(dir);
    run(dir, "git", &["init", "-q", "-b", "main"]);
    run(dir, "git", &["add", "-A"]);
    run(dir, "git", &["commit", "-q", "-m", "first"]);
    fs::write(
        dir.join("src/add.c"),
        "int add(int a, int b) { return b + a; }\n",
    )
    .unwrap();
    fs::rename(dir.join("src/mul.c"), dir.join("src/times.c")).unwrap();
    run(dir, "git", &["add", "-A"]);
    run(dir, "git", &["commit", "-q", "-m", "second"]);
    run(dir, "git", &["gc", "-q"]);
    run(dir, "git", &["fsck", "--strict"]);
    (
        run(dir, "git", &["ls-files", "-s"]),
        run(dir, "git", &["rev-parse", "HEAD"]),
        run(dir, "git", &["status", "--porcelain"]),
    )
}

#[test]
fn git_init_add_commit_match_native() {
    if !have("git") {
        panic!("git is needed for this test");
    }
    let native = tempfile::tempdir().unwrap();
    let native_result = git_session(native.path());
    let fx = Fixture::new(
        &Options {
            order: Order::Shuffle { seed: 11 },
            passthrough: false,
            ..Options::default()
        },
        |_| {},
    );
    let mounted_result = git_session(&fx.mnt);
    assert!(native_result.0.contains("src/times.c"));
    assert_eq!(
        mounted_result, native_result,
        "ls-files, HEAD and status must match"
    );
    fx.unmount();
}
