//! One fixture per variation, each leaking exactly that input into out.txt:
//! varying only it must find it, and varying everything else must not.

use crate::common::{
    VARIATIONS, Workdir, assert_all_but_reproducible, assert_clean_under_all, assert_leak_found,
};

macro_rules! variation_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[test]
            fn varying_only_it_finds_the_leak() {
                let name = stringify!($name);
                let wd = Workdir::new(concat!(stringify!($name), "-only"), name);
                let out = wd.vary_build().vary(&format!("@{name}")).run();
                assert_leak_found(&out, name);
            }

            #[test]
            fn varying_everything_else_is_reproducible() {
                let name = stringify!($name);
                let wd = Workdir::new(concat!(stringify!($name), "-others"), name);
                let out = wd.vary_build().vary(&format!("-{name}")).run();
                assert_all_but_reproducible(&out, name);
            }
        }
    )*};
}

variation_tests!(
    environment,
    build_path,
    kernel,
    aslr,
    num_cpus,
    time,
    home,
    locales,
    exec_path,
    timezone,
    umask,
    domain_host,
    user_group,
    fileordering,
);

#[test]
fn every_variation_has_its_tests() {
    // The macro list above and the catalogue in the harness must not drift.
    for name in VARIATIONS {
        assert!(
            crate::common::fixtures_dir()
                .join(name)
                .join("build.sh")
                .is_file(),
            "variation {name} has no fixture"
        );
    }
}

#[test]
fn clean_project_is_reproducible_under_every_variation() {
    let wd = Workdir::new("clean-all", "clean");
    let out = wd.vary_build().vary("all").run();
    assert_clean_under_all(&out);
}

#[test]
fn default_vary_is_all() {
    let wd = Workdir::new("clean-default", "clean");
    let out = wd.vary_build().run();
    assert_clean_under_all(&out);
}

#[test]
fn vary_none_builds_without_varying_anything() {
    let wd = Workdir::new("clean-none", "clean");
    let out = wd.vary_build().vary("none").run();
    out.assert_exit(0)
        .assert_reproducible(true)
        .assert_builds_succeeded();
    for name in VARIATIONS {
        out.assert_not_varied(name);
    }
}

#[test]
fn vary_expressions_apply_in_order() {
    // all, minus time and timezone, plus timezone again: only time is off.
    let wd = Workdir::new("vary-order", "timezone");
    let out = wd
        .vary_build()
        .vary("-time,-timezone")
        .vary("+timezone")
        .run();
    out.assert_exit(1)
        .assert_not_varied("time")
        .assert_varied_and_effective("timezone")
        .assert_varied_and_effective("umask");
}

mod time_make {
    //! make under a faked clock: it must still build, see that a fresh
    //! target is up to date, and rebuild after an edit (build.sh fails
    //! otherwise, which vary-build reports as exit 3).
    use super::*;

    #[test]
    fn varying_time_finds_the_date() {
        let wd = Workdir::new("time-make-only", "time_make");
        let out = wd.vary_build().vary("@time").run();
        assert_leak_found(&out, "time");
    }

    #[test]
    fn varying_everything_else_is_reproducible() {
        let wd = Workdir::new("time-make-others", "time_make");
        let out = wd.vary_build().vary("-time").run();
        assert_all_but_reproducible(&out, "time");
    }

    #[test]
    fn only_the_clock_moves_file_times_stay_real() {
        // libfaketime fakes stat() by default (for programs that call it through libc, as
        // dpkg does; coreutils' statx is not faked), which made dpkg record shifted mtimes
        // and blamed `time` for files the build only read.
        let wd = Workdir::empty("time-file-times");
        wd.write("input.txt", "source\n");
        wd.write(
            "st.c",
            "#include <stdio.h>\n#include <sys/stat.h>\n\
             int main(void) { struct stat s; if (stat(\"input.txt\", &s)) return 1;\n\
             printf(\"%ld\\n\", (long)s.st_mtime); return 0; }\n",
        );
        wd.write("build.sh", "cc -o st st.c && ./st > out.txt\n");
        let out = wd.vary_build().vary("@time").args(["-a", "out.txt"]).run();
        out.assert_exit(0)
            .assert_varied_and_effective("time")
            .assert_artifact_status("out.txt", "identical");
    }

    #[test]
    fn make_works_under_every_variation() {
        let wd = Workdir::new("time-make-all", "time_make");
        let out = wd.vary_build().vary("all").run();
        out.assert_exit(1)
            .assert_builds_succeeded()
            .assert_varied_and_effective("time")
            .assert_artifact_status("out.txt", "differs")
            .assert_artifact_status("src/a.txt", "identical");
        let culprits = out.culprits();
        out.check(
            culprits.iter().any(|set| set.iter().any(|v| v == "time")),
            || format!("expected time among the culprits, got {culprits:?}"),
        );
    }
}
