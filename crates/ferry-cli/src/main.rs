//! The `ferry` binary: argument parsing and output only; the work is in ferry-core.
//!
//! Exit codes: 0 in sync, 1 error, 2 usage, 3 conflicts left for the user, 128+N when
//! a sync was stopped by signal N (130 for Ctrl-C). With `--json`, an error is also a
//! JSON object on stdout (`output::print_error`).

mod api_client;
mod cli;
mod commands;
mod conduit_cmd;
mod config;
mod daemon_cmd;
mod dashboard_cmd;
#[cfg(feature = "net")]
mod device_cmd;
mod exit;
#[cfg(feature = "hub")]
mod hub_cmd;
mod install;
mod ondemand_cmd;
mod output;
mod progress_bar;
mod recovery;
#[cfg(feature = "net")]
mod share_cmd;
mod signals;
mod status;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors exit 2 (help and --version 0); clap prints them on stderr.
            if e.use_stderr() && output::json_requested() {
                let text = e.render().to_string();
                let first = text.lines().next().unwrap_or_default();
                output::print_error("usage", first.strip_prefix("error: ").unwrap_or(first));
            }
            e.exit()
        }
    };
    output::init_logging(cli.verbose, cli.quiet);
    match commands::run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            output::report_error(&e);
            if cli.json {
                output::print_command_error(&e);
            }
            ExitCode::from(commands::EXIT_ERROR)
        }
    }
}
