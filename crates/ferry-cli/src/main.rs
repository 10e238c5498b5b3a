//! The `ferry` binary: argument parsing and output only; the work is in ferry-core.
//!
//! Exit codes: 0 in sync, 1 error, 2 usage, 3 conflicts left for the user, 128+N when
//! a sync was stopped by signal N (130 for Ctrl-C).

mod api_client;
mod cli;
mod commands;
mod conduit_cmd;
mod config;
mod daemon_cmd;
mod install;
mod output;
mod progress_bar;
mod recovery;
mod signals;
mod status;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    output::init_logging(cli.verbose, cli.quiet);
    match commands::run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            output::report_error(&e);
            ExitCode::from(commands::EXIT_ERROR)
        }
    }
}
