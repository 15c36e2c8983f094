//! Progress lines on standard error, from dispatcher [`Event`]s.

use crate::dispatch::Event;
use tokio::sync::mpsc;

/// Prints events until the channel closes.
pub async fn print(mut events: mpsc::UnboundedReceiver<Event>, quiet: bool) {
    while let Some(e) = events.recv().await {
        if quiet {
            continue;
        }
        match e {
            Event::Started { name, varied } => {
                let what = if varied.is_empty() {
                    "nothing varied".to_string()
                } else {
                    format!("varying {varied}")
                };
                eprintln!("vary-build: {name}: started ({what})");
            }
            Event::Finished {
                name,
                exit_code,
                timed_out,
                duration,
            } => {
                let how = match (timed_out, exit_code) {
                    (true, _) => "timed out".to_string(),
                    (false, Some(0)) => "succeeded".to_string(),
                    (false, Some(c)) => format!("failed with exit code {c}"),
                    (false, None) => "was killed".to_string(),
                };
                eprintln!(
                    "vary-build: {name}: {how} after {:.1}s",
                    duration.as_secs_f64()
                );
            }
            Event::Testing(set) => {
                eprintln!("vary-build: testing whether {set} changes the output")
            }
            Event::Warning(w) => eprintln!("vary-build: warning: {w}"),
        }
    }
}
