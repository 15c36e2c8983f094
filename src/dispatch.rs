//! The dispatcher: runs builds concurrently (up to `-j`), each in its own workspace copy of
//! the source, through `vary-build __sandbox`. It streams each build's output to a log file,
//! enforces the timeout, stops every build when the run is cancelled, and reports progress
//! only as [`Event`]s: it never prints.

use crate::artifacts::{self, Collected};
use crate::config::Config;
use crate::plan::{ORDER_PROBE_DIR, ORDER_PROBE_ENTRIES, Plan};
use crate::sandbox::PARENT_PID_ENV;
use crate::sandbox::probe::{Observations, ProbeResult};
use crate::spec::SANDBOX_FAILED;
use crate::variation::Set;
use crate::workspace::{self, WorkspaceError};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{Semaphore, mpsc, watch};

#[derive(Debug, Error)]
pub enum DispatchError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("interrupted")]
    Interrupted,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DispatchError {
    let what = what.into();
    move |source| DispatchError::Io { what, source }
}

/// Progress, for reporters.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        name: String,
        varied: Set,
    },
    Finished {
        name: String,
        exit_code: Option<i32>,
        timed_out: bool,
        duration: Duration,
    },
    /// The attribution search is about to build with these variations.
    Testing(Set),
    /// A build was stopped because its answer was no longer needed (or the run ended).
    Cancelled(String),
    Warning(String),
}

#[derive(Debug)]
pub struct BuildResult {
    pub name: String,
    pub varied: Set,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub duration: Duration,
    pub log: PathBuf,
    pub dir: PathBuf,
    pub probe: Option<Observations>,
    pub probe_error: Option<String>,
    /// The sandbox could not set the build up (its reason).
    pub sandbox_error: Option<String>,
    pub artifacts: Collected,
}

impl BuildResult {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && self.sandbox_error.is_none()
    }

    /// The last `n` lines of the build's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

pub struct Dispatcher {
    pub config: Config,
    pub plan: Arc<Plan>,
    pub slots: Arc<Semaphore>,
    pub events: mpsc::UnboundedSender<Event>,
    pub cancel: watch::Receiver<bool>,
    /// One turn at a time per build path, when builds cannot each have their own mount.
    pub path_turns:
        std::sync::Mutex<std::collections::HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

impl Dispatcher {
    async fn cancelled(&self) {
        let mut c = self.cancel.clone();
        let _ = c.wait_for(|v| *v).await;
    }

    /// Runs one build that varies `varied` and collects its artifacts.
    pub async fn build(&self, name: &str, varied: Set) -> Result<BuildResult, DispatchError> {
        let _slot = tokio::select! {
            s = self.slots.acquire() => s.expect("the semaphore is never closed"),
            _ = self.cancelled() => return Err(DispatchError::Interrupted),
        };
        let dir = self.plan.run_dir.join("builds").join(name);
        let ws = dir.join("ws");
        let meta = dir.join("meta");
        for d in [&ws, &meta] {
            std::fs::create_dir_all(d).map_err(io_err(format!("cannot create {}", d.display())))?;
        }
        let src = self.config.source_root.clone();
        let dst = ws.join(&self.plan.source_name);
        let copy = tokio::task::spawn_blocking(move || workspace::copy_tree(&src, &dst))
            .await
            .expect("the copy task does not panic")?;
        for w in copy.warnings {
            let _ = self.events.send(Event::Warning(format!("{name}: {w}")));
        }
        make_order_probe(&ws.join(ORDER_PROBE_DIR))
            .map_err(io_err("cannot create the directory-order probe"))?;
        let spec = self.plan.spec(name, varied, &ws, &meta);
        let spec_path = meta.join("spec.json");
        std::fs::write(
            &spec_path,
            serde_json::to_vec_pretty(&spec).expect("a spec always serializes"),
        )
        .map_err(io_err("cannot write the build spec"))?;

        // Without a mount namespace, the workspace itself must be at the build path, so
        // builds that share a path take turns (control and experiment still run together).
        let _in_place = match spec.view {
            crate::spec::View::InPlace => {
                Some(self.move_to_build_root(&ws, &spec.build_root).await?)
            }
            _ => None,
        };
        let log = dir.join("build.log");
        let log_file = std::fs::File::create(&log)
            .map_err(io_err(format!("cannot create {}", log.display())))?;
        let log_err = log_file
            .try_clone()
            .map_err(io_err("cannot duplicate the log file"))?;
        let exe = std::env::current_exe().map_err(io_err("cannot find vary-build's executable"))?;
        let mut child = tokio::process::Command::new(exe)
            .arg("__sandbox")
            .arg(&spec_path)
            .env(PARENT_PID_ENV, std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(log_err))
            // Its own process group: a terminal's Ctrl-C reaches vary-build, which then stops
            // the builds itself, in order, and cleans up.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(io_err("cannot start the build's sandbox"))?;
        let _ = self.events.send(Event::Started {
            name: name.to_string(),
            varied,
        });
        // If this future is dropped (the attribution search no longer needs the build), the
        // child is killed (kill_on_drop) and reporters hear that it was cancelled.
        let mut cancelled = CancelNotice {
            events: &self.events,
            name: Some(name.to_string()),
        };
        let started = Instant::now();
        let timeout = async {
            match self.config.timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        let mut timed_out = false;
        let status = tokio::select! {
            s = child.wait() => s,
            _ = timeout => {
                timed_out = true;
                // Killing the sandbox kills its init (parent-death signal), and with it the
                // whole PID namespace: the build's entire process tree.
                let _ = child.start_kill();
                child.wait().await
            }
            _ = self.cancelled() => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(DispatchError::Interrupted);
            }
        }
        .map_err(io_err("cannot wait for the build"))?;
        cancelled.name = None;
        let duration = started.elapsed();
        let exit_code = status.code();
        let _ = self.events.send(Event::Finished {
            name: name.to_string(),
            exit_code,
            timed_out,
            duration,
        });

        drop(_in_place);
        let sandbox_error = (exit_code == Some(SANDBOX_FAILED))
            .then(|| std::fs::read_to_string(meta.join("sandbox-error.txt")).ok())
            .flatten();
        let probe: Option<ProbeResult> = std::fs::read(meta.join("probe.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let (probe, probe_error) = match probe {
            Some(p) => (p.observations, p.error),
            None => (None, Some("the probe did not run".to_string())),
        };
        let artifacts = {
            let ws = ws.clone();
            let source_name = self.plan.source_name.clone();
            let spec = self.config.artifacts.clone();
            tokio::task::spawn_blocking(move || artifacts::collect(&ws, &source_name, &spec))
                .await
                .expect("collecting does not panic")
                .map_err(io_err(format!("cannot collect the artifacts of {name}")))?
        };
        Ok(BuildResult {
            name: name.to_string(),
            varied,
            exit_code,
            timed_out,
            duration,
            log,
            dir,
            probe,
            probe_error,
            sandbox_error,
            artifacts,
        })
    }
}

/// Sends [`Event::Cancelled`] when dropped, unless disarmed by taking `name`.
struct CancelNotice<'a> {
    events: &'a mpsc::UnboundedSender<Event>,
    name: Option<String>,
}

impl Drop for CancelNotice<'_> {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            let _ = self.events.send(Event::Cancelled(name));
        }
    }
}

/// The workspace moved to the build path, for as long as this lives; dropping it moves the
/// workspace back and lets the next build that shares the path have it.
struct InPlace {
    workspace: PathBuf,
    build_root: PathBuf,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for InPlace {
    fn drop(&mut self) {
        if let Err(e) = std::fs::rename(&self.build_root, &self.workspace) {
            eprintln!(
                "vary-build: cannot move {} back to {}: {e}",
                self.build_root.display(),
                self.workspace.display()
            );
        }
    }
}

impl Dispatcher {
    async fn move_to_build_root(&self, ws: &Path, root: &Path) -> Result<InPlace, DispatchError> {
        let lock = self
            .path_turns
            .lock()
            .expect("path lock")
            .entry(root.to_path_buf())
            .or_default()
            .clone();
        let turn = tokio::select! {
            t = lock.lock_owned() => t,
            _ = self.cancelled() => return Err(DispatchError::Interrupted),
        };
        if let Some(parent) = root.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io_err(format!("cannot create {}", parent.display())))?;
        }
        // rename(2) replaces an empty directory, such as the one the run dir prepared.
        std::fs::rename(ws, root).map_err(io_err(format!(
            "cannot move the workspace to the build path {}",
            root.display()
        )))?;
        Ok(InPlace {
            workspace: ws.to_path_buf(),
            build_root: root.to_path_buf(),
            _turn: turn,
        })
    }
}

fn make_order_probe(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for i in 0..ORDER_PROBE_ENTRIES {
        std::fs::write(dir.join(format!("entry-{i:02}")), "")?;
    }
    Ok(())
}
