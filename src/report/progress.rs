//! Progress on standard error, from dispatcher [`Event`]s: on a terminal, a live status line
//! (builds running with their elapsed time, builds finished, what the attribution search is
//! testing) under a log of finished builds; elsewhere, plain lines.

use crate::dispatch::Event;
use crate::variation::Set;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the live display shows.
#[derive(Default)]
struct State {
    running: Vec<(String, Instant)>,
    finished: usize,
    testing: Option<Set>,
}

impl State {
    fn status_line(&self, width: usize) -> String {
        let now = Instant::now();
        let running: Vec<String> = self
            .running
            .iter()
            .map(|(n, t)| format!("{n} {}s", now.duration_since(*t).as_secs()))
            .collect();
        let mut s = format!(
            "[{} running: {} | {} finished]",
            self.running.len(),
            running.join(", "),
            self.finished
        );
        if let Some(t) = self.testing {
            s.push_str(&format!(" testing: {t}"));
        }
        s.chars().take(width.saturating_sub(1)).collect()
    }
}

fn finished_line(name: &str, exit_code: Option<i32>, timed_out: bool, d: Duration) -> String {
    let how = match (timed_out, exit_code) {
        (true, _) => "timed out".to_string(),
        (false, Some(0)) => "succeeded".to_string(),
        (false, Some(c)) => format!("failed with exit code {c}"),
        (false, None) => "was killed".to_string(),
    };
    format!("vary-build: {name}: {how} after {:.1}s", d.as_secs_f64())
}

fn started_line(name: &str, varied: Set) -> String {
    let what = if varied.is_empty() {
        "nothing varied".to_string()
    } else {
        format!("varying {varied}")
    };
    format!("vary-build: {name}: started ({what})")
}

/// Prints events until the channel closes.
pub async fn print(mut events: mpsc::UnboundedReceiver<Event>) {
    let live = std::io::stderr().is_terminal();
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100usize);
    let mut state = State::default();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        let event = tokio::select! {
            e = events.recv() => match e {
                Some(e) => e,
                None => break,
            },
            _ = tick.tick(), if live => {
                redraw(&state, width);
                continue;
            }
        };
        let line = match event {
            Event::Started { name, varied } => {
                state.running.push((name.clone(), Instant::now()));
                (!live).then(|| started_line(&name, varied))
            }
            Event::Finished {
                name,
                exit_code,
                timed_out,
                duration,
            } => {
                state.running.retain(|(n, _)| *n != name);
                state.finished += 1;
                Some(finished_line(&name, exit_code, timed_out, duration))
            }
            Event::Cancelled(name) => {
                state.running.retain(|(n, _)| *n != name);
                (!live).then(|| {
                    format!("vary-build: {name}: cancelled, its answer is no longer needed")
                })
            }
            Event::Testing(set) => {
                state.testing = Some(set);
                (!live).then(|| format!("vary-build: testing whether {set} changes the output"))
            }
            Event::Warning(w) => Some(format!("vary-build: warning: {w}")),
        };
        if let Some(line) = line {
            if live {
                eprint!("\r\x1b[K");
            }
            eprintln!("{line}");
        }
        if live {
            redraw(&state, width);
        }
    }
    if live {
        eprint!("\r\x1b[K");
        let _ = std::io::stderr().flush();
    }
}

fn redraw(state: &State, width: usize) {
    eprint!("\r\x1b[K{}", state.status_line(width));
    let _ = std::io::stderr().flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variation::Kind;

    #[test]
    fn status_line_lists_running_builds_and_the_tested_set() {
        let mut s = State::default();
        s.running.push(("control".into(), Instant::now()));
        s.running.push(("try-01".into(), Instant::now()));
        s.finished = 3;
        s.testing = Some([Kind::Umask, Kind::Time].into_iter().collect());
        let line = s.status_line(200);
        assert_eq!(
            line,
            "[2 running: control 0s, try-01 0s | 3 finished] testing: time, umask"
        );
        assert_eq!(s.status_line(10).chars().count(), 9);
    }
}
