//! The `vary-build` binary: parse, run, report, and map the outcome to an exit code.

use clap::Parser;
use std::io::Write;
use vary_build::cli::{Format, Opts};
use vary_build::config::Config;
use vary_build::exit;
use vary_build::host::Host;
use vary_build::report::{human, progress};
use vary_build::run::{self, RunError};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Hidden re-entry points: the build's sandbox and its probe (see src/sandbox).
    match args.get(1).map(String::as_str) {
        Some("__sandbox") => std::process::exit(vary_build::sandbox::main(&args[2..])),
        Some("__probe") => std::process::exit(vary_build::sandbox::probe::main(&args[2..])),
        _ => {}
    }
    let opts = Opts::parse();
    let code = match Config::from_opts(opts) {
        Ok(config) => main_with(config),
        Err(e) => {
            eprintln!("vary-build: {e}");
            exit::USAGE
        }
    };
    std::process::exit(code);
}

fn main_with(config: Config) -> i32 {
    let host = Host::detect();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vary-build: cannot start the async runtime: {e}");
            return exit::USAGE;
        }
    };
    rt.block_on(async move {
        let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
        let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
        let printer = tokio::spawn(progress::print(ev_rx));
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term => {},
            }
            eprintln!("vary-build: interrupted; stopping the builds and cleaning up");
            let _ = cancel_tx.send(true);
        });
        let json_path = config.json.clone();
        let format = config.format;
        let result = run::run(config, host, ev_tx, cancel_rx).await;
        let _ = printer.await;
        match result {
            Ok(outcome) => {
                for d in &outcome.diagnostics {
                    eprintln!("vary-build: {d}");
                }
                let json = outcome.report.to_json();
                if let Some(p) = json_path {
                    if let Err(e) = std::fs::write(&p, &json) {
                        eprintln!("vary-build: cannot write {}: {e}", p.display());
                        return exit::USAGE;
                    }
                }
                let text = match format {
                    Format::Json => json + "\n",
                    Format::Human => human::render(&outcome.report),
                };
                // A closed pipe (vary-build ... | head) is not an error.
                let _ = std::io::stdout().write_all(text.as_bytes());
                exit::for_verdict(outcome.verdict)
            }
            Err(RunError::Interrupted) => exit::INTERRUPTED,
            Err(e @ RunError::Plan(_)) => {
                eprintln!("vary-build: {e}");
                exit::USAGE
            }
            Err(e) => {
                eprintln!("vary-build: {e}");
                exit::BUILD_FAILED
            }
        }
    })
}
