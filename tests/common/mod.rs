//! The one harness every integration test uses.
//!
//! A [`Workdir`] is a fresh temporary directory holding a copy of a fixture
//! project (`tests/fixtures/NAME/`) as the source tree, a private `TMPDIR` for
//! vary-build, and room for reports and store directories. [`VaryBuild`]
//! runs the real binary on it and returns an [`Outcome`]: exit code, stdout,
//! stderr and the parsed `--json` report.
//!
//! Every run checks the promises vary-build makes to every user, so that no
//! test has to remember them:
//! - the user's source tree is byte-for-byte, mode-for-mode unchanged;
//! - nothing is left in `TMPDIR` (no workspace, no log, no mount point);
//! - no process still holds vary-build's stdout or stderr open (a leaked
//!   build process would).
//!
//! When an assertion fails, the message shows the command line, the exit
//! code, stdout, stderr and the report, which is usually all it takes to see
//! why. Dropping a `Workdir` kills any process left with its marker and
//! detaches any mount left under it, so a failing test does not leave debris
//! behind for the next one.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_vary-build");

/// Every variation, by its reprotest name.
pub const VARIATIONS: [&str; 14] = [
    "environment",
    "build_path",
    "kernel",
    "aslr",
    "num_cpus",
    "time",
    "home",
    "locales",
    "exec_path",
    "timezone",
    "umask",
    "domain_host",
    "user_group",
    "fileordering",
];

/// The seed used unless a test asks for another, so failures replay exactly.
pub const SEED: u64 = 20240601;

/// How long one vary-build run may take before the harness kills it. Far
/// above what the tiny fixtures need; it only stops a hung run from hanging
/// the suite.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// How long stdout/stderr may stay open after vary-build exited. Only a
/// leaked process holding them keeps them open longer.
const PIPE_GRACE: Duration = Duration::from_secs(5);

/// An unprivileged user to run vary-build as (see tests/rootless.rs).
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl User {
    /// The user named by `VARY_BUILD_TEST_USER`; panics with instructions
    /// when it is unset, so that the rootless tests never pass by skipping.
    pub fn from_env() -> User {
        let name = match std::env::var("VARY_BUILD_TEST_USER") {
            Ok(name) if !name.is_empty() => name,
            _ => panic!(
                "VARY_BUILD_TEST_USER is not set: the rootless tests must run as root with an \
                 unprivileged user to switch to. Run them through .ci/run, which creates that \
                 user and sets the variable."
            ),
        };
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .arg(flag)
                .arg(&name)
                .output()
                .expect("run id");
            assert!(
                out.status.success(),
                "VARY_BUILD_TEST_USER={name} is not a user on this machine: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("id prints a number")
        };
        User {
            uid: id("-u"),
            gid: id("-g"),
            name,
        }
    }
}

/// A fresh directory for one test:
///
/// ```text
/// ROOT/src/          the source tree (a copy of the fixture)
/// ROOT/tmp/          TMPDIR for vary-build; must be empty after every run
/// ROOT/report.json   the --json report of the last run
/// ```
pub struct Workdir {
    dir: tempfile::TempDir,
    test: String,
    marker: Option<String>,
}

impl Workdir {
    /// A work directory whose source tree is a copy of `tests/fixtures/FIXTURE`.
    pub fn new(test: &str, fixture: &str) -> Workdir {
        let wd = Workdir::empty(test);
        let from = fixtures_dir().join(fixture);
        assert!(from.is_dir(), "no fixture {}", from.display());
        copy_tree(&from, &wd.source());
        wd
    }

    /// A work directory with an empty source tree, for tests that write
    /// their own files.
    pub fn empty(test: &str) -> Workdir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("vb-test-{test}-"))
            .tempdir()
            .expect("create test directory");
        fs::create_dir(dir.path().join("src")).expect("create src");
        fs::create_dir(dir.path().join("tmp")).expect("create tmp");
        Workdir {
            dir,
            test: test.to_string(),
            marker: None,
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn source(&self) -> PathBuf {
        self.root().join("src")
    }

    pub fn tmpdir(&self) -> PathBuf {
        self.root().join("tmp")
    }

    pub fn report_path(&self) -> PathBuf {
        self.root().join("report.json")
    }

    /// Writes `contents` to `path` (relative to the source tree), creating
    /// parent directories.
    pub fn write(&self, path: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
        let path = self.source().join(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent directory");
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// A string unique to this test, written to `src/marker` for the build
    /// to put in the argv of the processes it forks, so the test can find
    /// them (and `Drop` can kill them if the test fails).
    pub fn marker(&mut self) -> String {
        if self.marker.is_none() {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos();
            let marker = format!("vbmarker-{}-{}-{nanos}", self.test, std::process::id());
            self.write("marker", &marker);
            self.marker = Some(marker);
        }
        self.marker.clone().expect("just set")
    }

    /// A vary-build invocation on this work directory, with the defaults
    /// every test wants: `-s ROOT/src --json ROOT/report.json -j 2 --seed
    /// SEED`, and `sh build.sh` as the build command.
    pub fn vary_build(&self) -> VaryBuild<'_> {
        VaryBuild {
            wd: self,
            source_root: Some(self.source().into_os_string()),
            json: true,
            seed: Some(SEED),
            args: Vec::new(),
            command: vec!["sh".into(), "build.sh".into()],
            env: Vec::new(),
            user: None,
        }
    }

    /// Hands the work directory, its source tree and TMPDIR to `user` (other
    /// entries stay root's), and returns a copy of the binary that `user` can
    /// execute (the cargo target dir may not be).
    fn give_to(&self, user: &User) -> PathBuf {
        let bin_dir = self.root().join("bin");
        fs::create_dir_all(&bin_dir).expect("create bin dir");
        let bin = bin_dir.join("vary-build");
        if !bin.exists() {
            fs::copy(BIN, &bin).expect("copy the binary");
            fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod binary");
        }
        std::os::unix::fs::chown(self.root(), Some(user.uid), Some(user.gid))
            .expect("chown work directory");
        chown_tree(&self.source(), user.uid, user.gid);
        chown_tree(&self.tmpdir(), user.uid, user.gid);
        bin
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        // A failed test may leave vary-build running (under runuser, killing
        // the child does not reach it) and builds with it: vary-build's argv
        // names this directory, the build's sleepers carry the marker.
        let root = self.root().display().to_string();
        let needles = std::iter::once(root).chain(self.marker.clone());
        for needle in needles {
            for (pid, _) in processes_with(&needle) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        for mount in mounts_under(self.root()).into_iter().rev() {
            let _ = nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// One vary-build invocation, built up by a test and then run.
pub struct VaryBuild<'a> {
    wd: &'a Workdir,
    source_root: Option<OsString>,
    json: bool,
    seed: Option<u64>,
    args: Vec<OsString>,
    command: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    user: Option<User>,
}

impl<'a> VaryBuild<'a> {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Adds `--vary=EXPR`.
    pub fn vary(self, expr: &str) -> Self {
        self.arg(format!("--vary={expr}"))
    }

    /// Replaces the build command (`sh build.sh` by default); an empty list
    /// means no command at all.
    pub fn command<I, S>(mut self, command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command = command
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        self
    }

    /// Replaces the default `-s ROOT/src`; `None` passes no `-s` at all.
    pub fn source_root(mut self, dir: Option<&Path>) -> Self {
        self.source_root = dir.map(|d| d.as_os_str().to_os_string());
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Passes no `--seed`.
    pub fn no_seed(mut self) -> Self {
        self.seed = None;
        self
    }

    /// Passes no `--json`.
    pub fn no_json(mut self) -> Self {
        self.json = false;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs vary-build as `user` through `runuser`.
    pub fn run_as(mut self, user: &User) -> Self {
        self.user = Some(user.clone());
        self
    }

    /// The full argument list after the binary name.
    fn argv(&self) -> Vec<OsString> {
        let mut argv: Vec<OsString> = Vec::new();
        if let Some(source) = &self.source_root {
            argv.push("-s".into());
            argv.push(source.clone());
        }
        if self.json {
            argv.push("--json".into());
            argv.push(self.wd.report_path().into_os_string());
        }
        argv.push("-j".into());
        argv.push("2".into());
        if let Some(seed) = self.seed {
            argv.push("--seed".into());
            argv.push(seed.to_string().into());
        }
        argv.extend(self.args.iter().cloned());
        if !self.command.is_empty() {
            argv.push("--".into());
            argv.extend(self.command.iter().cloned());
        }
        argv
    }

    /// Starts vary-build without waiting, for tests that signal it.
    pub fn spawn(self) -> Running<'a> {
        let _ = fs::remove_file(self.wd.report_path());
        let tmpdir = self.wd.tmpdir();
        let mut cmd = match &self.user {
            None => {
                let mut cmd = Command::new(BIN);
                cmd.env("TMPDIR", &tmpdir).envs(self.env.iter().cloned());
                cmd
            }
            Some(user) => {
                let bin = self.wd.give_to(user);
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", &user.name, "--", "env"]);
                let mut tmp = OsString::from("TMPDIR=");
                tmp.push(&tmpdir);
                cmd.arg(tmp);
                for (k, v) in &self.env {
                    let mut kv = k.clone();
                    kv.push("=");
                    kv.push(v);
                    cmd.arg(kv);
                }
                cmd.arg(bin);
                cmd
            }
        };
        let argv = self.argv();
        cmd.args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let cmdline = render_cmdline(&cmd);
        let before = Snapshot::take(&self.wd.source());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmdline}: {e}"));
        let (tx, pipes) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let tx2 = tx.clone();
        thread::spawn(move || tx.send((1, read_all(stdout))));
        thread::spawn(move || tx2.send((2, read_all(stderr))));
        Running {
            wd: self.wd,
            child,
            cmdline,
            pipes,
            before,
        }
    }

    /// Runs vary-build to completion and checks the invariants every run
    /// must keep (source tree unchanged, TMPDIR empty, no leaked process
    /// holding its output).
    pub fn run(self) -> Outcome {
        let mut running = self.spawn();
        let status = running.wait(RUN_LIMIT);
        let out = running.finish(status);
        out.check_invariants();
        out
    }
}

/// A vary-build process the test has started and not yet collected.
pub struct Running<'a> {
    wd: &'a Workdir,
    child: Child,
    cmdline: String,
    pipes: mpsc::Receiver<(u8, Vec<u8>)>,
    before: Snapshot,
}

impl Running<'_> {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"))
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signal vary-build");
    }

    /// Waits for exit; kills vary-build and fails the test after `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait vary-build") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "vary-build did not finish within {limit:?}; killed it\ncommand: {}",
                    self.cmdline
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Collects output and the report of an exited vary-build.
    pub fn finish(self, status: ExitStatus) -> Outcome {
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().expect("exit code or signal"));
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut leaked = false;
        let deadline = Instant::now() + PIPE_GRACE;
        for _ in 0..2 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.pipes.recv_timeout(left) {
                Ok((1, bytes)) => stdout = bytes,
                Ok((_, bytes)) => stderr = bytes,
                Err(_) => leaked = true,
            }
        }
        let report = fs::read(self.wd.report_path()).ok().map(|bytes| {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "the --json report is not JSON ({e}):\n{}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        });
        Outcome {
            cmdline: self.cmdline,
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            report,
            pipes_left_open: leaked,
            source: self.wd.source(),
            tmpdir: self.wd.tmpdir(),
            before: self.before,
        }
    }
}

/// What one vary-build run did.
pub struct Outcome {
    pub cmdline: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub report: Option<Value>,
    /// vary-build exited but its stdout/stderr stayed open: a process it
    /// started outlived it.
    pub pipes_left_open: bool,
    source: PathBuf,
    tmpdir: PathBuf,
    before: Snapshot,
}

impl Outcome {
    /// Fails the test, showing everything about the run.
    #[track_caller]
    pub fn fail(&self, why: &str) -> ! {
        panic!("{why}\n\n{self}")
    }

    #[track_caller]
    pub fn check(&self, ok: bool, why: impl FnOnce() -> String) -> &Self {
        if !ok {
            self.fail(&why());
        }
        self
    }

    #[track_caller]
    pub fn assert_exit(&self, code: i32) -> &Self {
        self.check(self.code == code, || {
            format!("expected exit code {code}, got {}", self.code)
        })
    }

    #[track_caller]
    pub fn assert_stderr_contains(&self, fragment: &str) -> &Self {
        self.check(self.stderr.contains(fragment), || {
            format!("expected stderr to contain {fragment:?}")
        })
    }

    /// Help and usage text may go to either stream.
    #[track_caller]
    pub fn assert_output_contains(&self, fragment: &str) -> &Self {
        self.check(
            self.stdout.contains(fragment) || self.stderr.contains(fragment),
            || format!("expected the output to contain {fragment:?}"),
        )
    }

    /// The source tree is unchanged, TMPDIR is empty, and no process
    /// vary-build started outlived it holding its output.
    #[track_caller]
    pub fn check_invariants(&self) {
        self.check(!self.pipes_left_open, || {
            format!(
                "vary-build exited but its stdout/stderr stayed open for {PIPE_GRACE:?}: \
                 a process it started is still running"
            )
        });
        let after = Snapshot::take(&self.source);
        let changed = self.before.diff(&after);
        self.check(changed.is_empty(), || {
            format!("vary-build changed the user's source tree: {changed:?}")
        });
        let left = list_dir(&self.tmpdir);
        self.check(left.is_empty(), || {
            format!("vary-build left files in TMPDIR: {left:?}")
        });
    }

    #[track_caller]
    pub fn report(&self) -> &Value {
        match &self.report {
            Some(report) => report,
            None => self.fail("expected a --json report, none was written"),
        }
    }

    /// The report's entry for variation `name`.
    #[track_caller]
    pub fn variation(&self, name: &str) -> &Value {
        let found = self.report()["variations"]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| v["name"] == name));
        match found {
            Some(v) => v,
            None => self.fail(&format!("report has no variation {name:?}")),
        }
    }

    /// The report's entry for artifact `path`.
    #[track_caller]
    pub fn artifact(&self, path: &str) -> &Value {
        let found = self.report()["artifacts"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["path"] == path));
        match found {
            Some(a) => a,
            None => self.fail(&format!("report has no artifact {path:?}")),
        }
    }

    /// The report's builds.
    #[track_caller]
    pub fn builds(&self) -> &Vec<Value> {
        match self.report()["builds"].as_array() {
            Some(b) => b,
            None => self.fail("report.builds is not an array"),
        }
    }

    #[track_caller]
    pub fn culprits(&self) -> Vec<Vec<String>> {
        serde_json::from_value(self.report()["culprits"].clone())
            .unwrap_or_else(|e| self.fail(&format!("report.culprits is not [[string]]: {e}")))
    }

    #[track_caller]
    pub fn assert_reproducible(&self, expected: bool) -> &Self {
        self.check(self.report()["reproducible"] == expected, || {
            format!("expected report.reproducible == {expected}")
        })
    }

    /// `name` was varied and the probe saw it take effect.
    #[track_caller]
    pub fn assert_varied_and_effective(&self, name: &str) -> &Self {
        let v = self.variation(name);
        self.check(v["status"] == "varied" && v["effective"] == true, || {
            format!("expected {name} varied and effective, got {v}")
        })
    }

    #[track_caller]
    pub fn assert_not_varied(&self, name: &str) -> &Self {
        let v = self.variation(name);
        self.check(v["status"] == "not_varied", || {
            format!("expected {name} not varied, got {v}")
        })
    }

    #[track_caller]
    pub fn assert_artifact_status(&self, path: &str, status: &str) -> &Self {
        let a = self.artifact(path);
        self.check(a["status"] == status, || {
            format!("expected artifact {path} to be {status}, got {a}")
        })
    }

    /// Every build the report lists exited 0.
    #[track_caller]
    pub fn assert_builds_succeeded(&self) -> &Self {
        for b in self.builds() {
            self.check(b["exit_code"] == 0 && b["timed_out"] == false, || {
                format!("expected every build to succeed, got {b}")
            });
        }
        self
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command:   {}", self.cmdline)?;
        writeln!(f, "exit code: {}", self.code)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        writeln!(f, "--- stderr ---\n{}", self.stderr)?;
        match &self.report {
            Some(r) => writeln!(
                f,
                "--- report ---\n{}",
                serde_json::to_string_pretty(r).unwrap_or_default()
            ),
            None => writeln!(f, "--- no report ---"),
        }
    }
}

// Shared assertions for the per-variation tests (tests/integration and
// tests/rootless run the same checks).

/// `--vary @NAME` on the fixture leaking NAME: not reproducible, NAME is the
/// culprit, out.txt differs, nothing else was varied.
#[track_caller]
pub fn assert_leak_found(out: &Outcome, name: &str) {
    out.assert_exit(1)
        .assert_reproducible(false)
        .assert_builds_succeeded()
        .assert_varied_and_effective(name)
        .assert_artifact_status("out.txt", "differs");
    for other in VARIATIONS.iter().filter(|v| **v != name) {
        out.assert_not_varied(other);
    }
    let culprits = out.culprits();
    out.check(culprits == vec![vec![name.to_string()]], || {
        format!("expected culprits [[{name:?}]], got {culprits:?}")
    });
}

/// `--vary=-NAME` on the fixture leaking only NAME: reproducible, with every
/// other variation applied and effective.
#[track_caller]
pub fn assert_all_but_reproducible(out: &Outcome, name: &str) {
    out.assert_exit(0)
        .assert_reproducible(true)
        .assert_builds_succeeded()
        .assert_not_varied(name)
        .assert_artifact_status("out.txt", "identical");
    for other in VARIATIONS.iter().filter(|v| **v != name) {
        out.assert_varied_and_effective(other);
    }
}

/// `--vary all` on a project that leaks nothing: reproducible, everything
/// varied and effective, every artifact identical.
#[track_caller]
pub fn assert_clean_under_all(out: &Outcome) {
    out.assert_exit(0)
        .assert_reproducible(true)
        .assert_builds_succeeded();
    for name in VARIATIONS {
        out.assert_varied_and_effective(name);
    }
    let culprits = out.culprits();
    out.check(culprits.is_empty(), || {
        format!("expected no culprits, got {culprits:?}")
    });
    let artifacts = out.report()["artifacts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    out.check(!artifacts.is_empty(), || "expected artifacts".into());
    for a in &artifacts {
        out.check(a["status"] == "identical", || {
            format!("expected every artifact identical, got {a}")
        });
    }
    for path in ["out.txt", "out.tar"] {
        out.assert_artifact_status(path, "identical");
    }
}

// Processes and mounts.

/// Processes whose command line contains `marker`: (pid, command line).
pub fn processes_with(marker: &str) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(marker) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// Polls until `cond` holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Mounts in this process's mount namespace whose mount point or source is
/// at or under `dir` (a FUSE mount of a workspace may sit elsewhere but
/// still names its source), by mount point.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let unescape = |field: &str| PathBuf::from(OsString::from_vec(unescape_mountinfo(field)));
    info.lines()
        .filter_map(|line| {
            let point = unescape(line.split(' ').nth(4)?);
            // After the optional fields: " - FSTYPE SOURCE OPTIONS".
            let source = line
                .split_once(" - ")
                .and_then(|(_, rest)| rest.split(' ').nth(1))
                .map(unescape)
                .unwrap_or_default();
            (point.starts_with(dir) || source.starts_with(dir)).then_some(point)
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4].iter().all(u8::is_ascii_digit)
        {
            let octal = std::str::from_utf8(&bytes[i + 1..i + 4]).expect("ascii digits");
            out.push(u8::from_str_radix(octal, 8).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

// Files.

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The names in `dir`, sorted; empty if `dir` does not exist.
pub fn list_dir(dir: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// Copies a directory tree, keeping modes and symlinks (never following them).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create copy target");
    for entry in fs::read_dir(from).expect("read fixture dir").flatten() {
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src).expect("stat fixture file");
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).expect("readlink"), &dst)
                .expect("copy symlink");
        } else if meta.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).expect("copy fixture file");
        }
        if !meta.file_type().is_symlink() {
            fs::set_permissions(&dst, meta.permissions()).expect("copy mode");
        }
    }
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).expect("chown");
    let meta = fs::symlink_metadata(path).expect("stat");
    if meta.is_dir() {
        for entry in fs::read_dir(path).expect("read dir").flatten() {
            chown_tree(&entry.path(), uid, gid);
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = r.read_to_end(&mut buf);
    buf
}

fn render_cmdline(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains([' ', '\'', '"', '*', '$']) {
            format!("'{}'", a.replace('\'', "'\\''"))
        } else {
            a.into_owned()
        }
    }));
    parts.join(" ")
}

/// Everything about a tree a build could change, except access times.
#[derive(Debug, PartialEq)]
struct Snapshot(BTreeMap<Vec<u8>, Entry>);

#[derive(Debug, PartialEq)]
struct Entry {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    mtime: (i64, i64),
}

#[derive(Debug, PartialEq)]
enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(PathBuf),
    Other,
}

impl Snapshot {
    fn take(root: &Path) -> Snapshot {
        let mut entries = BTreeMap::new();
        Snapshot::walk(root, root, &mut entries);
        Snapshot(entries)
    }

    fn walk(root: &Path, path: &Path, entries: &mut BTreeMap<Vec<u8>, Entry>) {
        let Ok(meta) = fs::symlink_metadata(path) else {
            return;
        };
        let ft = meta.file_type();
        let kind = if ft.is_symlink() {
            Kind::Symlink(fs::read_link(path).unwrap_or_default())
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File(fs::read(path).unwrap_or_default())
        } else {
            Kind::Other
        };
        let rel = path
            .strip_prefix(root)
            .expect("under root")
            .as_os_str()
            .as_bytes()
            .to_vec();
        entries.insert(
            rel,
            Entry {
                kind,
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                nlink: meta.nlink(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
            },
        );
        if ft.is_dir()
            && let Ok(children) = fs::read_dir(path)
        {
            for child in children.flatten() {
                Snapshot::walk(root, &child.path(), entries);
            }
        }
    }

    /// The paths that differ between two snapshots.
    fn diff(&self, other: &Snapshot) -> Vec<String> {
        let mut paths: Vec<&Vec<u8>> = self.0.keys().chain(other.0.keys()).collect();
        paths.sort();
        paths.dedup();
        paths
            .into_iter()
            .filter(|p| self.0.get(*p) != other.0.get(*p))
            .map(|p| {
                let name = String::from_utf8_lossy(p).into_owned();
                match (self.0.get(p), other.0.get(p)) {
                    (Some(_), None) => format!("{name}: removed"),
                    (None, Some(_)) => format!("{name}: added"),
                    (Some(a), Some(b)) if a.kind != b.kind => format!("{name}: contents changed"),
                    (Some(a), Some(b)) => format!("{name}: metadata {a:?} -> {b:?}"),
                    (None, None) => unreachable!("path came from one of the maps"),
                }
            })
            .collect()
    }
}
