//! The `ferry` binary: argument parsing and output only; the work is in ferry-core.
//!
//! Exit codes: 0 in sync, 1 error, 2 usage, 3 conflicts left for the user.

mod api_client;
mod cli;
mod commands;
mod conduit_cmd;
mod daemon_cmd;
mod progress_bar;
mod recovery;
mod status;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = cli::Cli::parse();
    match commands::run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ferry: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
