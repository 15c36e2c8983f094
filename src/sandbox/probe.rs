//! The probe: observes, from inside a build's sandbox and with the build's exact environment,
//! everything the variations are meant to change. The parent compares the control's and the
//! experiment's observations to decide whether each variation took effect.
//!
//! It runs as `vary-build __probe DIR`, executed by the sandbox's init just before the build,
//! so it sees what the build sees (LD_PRELOAD, LOCPATH, TZ, mounts, namespaces, personality).

use crate::spec::BuildSpec;
use serde::{Deserialize, Serialize};
use std::ffi::CStr;
use std::process::{Command, Stdio};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observations {
    pub env_names: Vec<String>,
    pub cwd: String,
    pub uname_release: String,
    pub nodename: String,
    pub domainname: String,
    pub uid: u32,
    pub gid: u32,
    pub user: Option<String>,
    pub gecos: Option<String>,
    pub umask: u32,
    pub nproc: usize,
    pub aslr: bool,
    /// Today's date by the (possibly faked) clock, in UTC.
    pub date: String,
    /// What setlocale(LC_ALL, "") chose; None when the locale could not be loaded.
    pub locale: Option<String>,
    pub tz_abbreviation: String,
    pub tz_offset_secs: i64,
    pub home: Option<String>,
    pub path: Option<String>,
    /// Names in the order a directory listing returned them.
    pub listing: Vec<String>,
}

/// What the init stores: the observations, or why the probe failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeResult {
    pub observations: Option<Observations>,
    pub error: Option<String>,
}

/// Runs the probe with the build's environment and working directory.
pub fn run_probe(spec: &BuildSpec) -> ProbeResult {
    let out = Command::new("/proc/self/exe")
        .arg("__probe")
        .arg(&spec.order_probe_dir)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match out {
        Ok(o) if o.status.success() => match serde_json::from_slice(&o.stdout) {
            Ok(obs) => ProbeResult {
                observations: Some(obs),
                error: None,
            },
            Err(e) => ProbeResult {
                observations: None,
                error: Some(format!("unreadable probe output: {e}")),
            },
        },
        Ok(o) => ProbeResult {
            observations: None,
            error: Some(format!(
                "probe failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            )),
        },
        Err(e) => ProbeResult {
            observations: None,
            error: Some(format!("cannot run the probe: {e}")),
        },
    }
}

/// Entry point of `vary-build __probe DIR`: prints the observations as JSON.
pub fn main(args: &[String]) -> i32 {
    let dir = args.first().map(String::as_str).unwrap_or(".");
    let obs = observe(dir);
    match serde_json::to_string(&obs) {
        Ok(s) => {
            println!("{s}");
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn cstr_opt(p: *const libc::c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: a non-null pointer returned by libc here points to a NUL-terminated string
        // that stays valid until the next call of the same function; we copy it at once.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

fn observe(dir: &str) -> Observations {
    let uts = nix::sys::utsname::uname().ok();
    let uts_str = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uts.as_ref()
            .map(|u| f(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    nix::sys::stat::umask(old);
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    // SAFETY: getpwuid returns NULL or a pointer to a static passwd entry; we copy the
    // fields immediately and this process is single-threaded.
    let pw = unsafe { libc::getpwuid(uid) };
    let (user, gecos) = if pw.is_null() {
        (None, None)
    } else {
        // SAFETY: `pw` is non-null and points to the entry getpwuid just filled.
        let pw = unsafe { &*pw };
        (cstr_opt(pw.pw_name), cstr_opt(pw.pw_gecos))
    };
    // SAFETY: the argument is a valid NUL-terminated empty string, meaning "from the
    // environment"; the returned pointer is copied at once.
    let locale = cstr_opt(unsafe { libc::setlocale(libc::LC_ALL, c"".as_ptr()) });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (tz_abbreviation, tz_offset_secs) = local_zone(now);
    let persona = nix::sys::personality::get().unwrap_or(nix::sys::personality::Persona::empty());
    let randomize = std::fs::read_to_string("/proc/sys/kernel/randomize_va_space")
        .map(|s| s.trim() != "0")
        .unwrap_or(true);
    let mut env_names: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    env_names.sort();
    Observations {
        env_names,
        cwd: std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        uname_release: uts_str(|u| u.release()),
        nodename: uts_str(|u| u.nodename()),
        domainname: std::fs::read_to_string("/proc/sys/kernel/domainname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        uid,
        gid,
        user,
        gecos,
        umask: old.bits(),
        nproc: crate::host::allowed_cpus().len(),
        aslr: randomize && !persona.contains(nix::sys::personality::Persona::ADDR_NO_RANDOMIZE),
        date: chrono::DateTime::from_timestamp(now, 0)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        locale,
        tz_abbreviation,
        tz_offset_secs,
        home: std::env::var("HOME").ok(),
        path: std::env::var("PATH").ok(),
        listing: std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The local zone's abbreviation and offset as libc sees them (from TZ), like `date +%Z %z`.
fn local_zone(now: i64) -> (String, i64) {
    unsafe extern "C" {
        fn tzset();
    }
    // SAFETY: tzset has no arguments; it reads TZ from this single-threaded process's
    // environment.
    unsafe { tzset() };
    let t: libc::time_t = now as libc::time_t;
    // SAFETY: `tm` is a plain C struct for which all-zero bytes is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call; localtime_r writes only
    // into `tm`.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        return (String::new(), 0);
    }
    (cstr_opt(tm.tm_zone).unwrap_or_default(), tm.tm_gmtoff)
}
