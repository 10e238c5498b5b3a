//! `ferry completions SHELL` and `ferry man [DIR]`: what an installed tool ships,
//! generated from the same argument definitions the binary parses.

use crate::cli::Cli;
use anyhow::{Context, Result};
use clap::CommandFactory;
use std::path::Path;

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<u8> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "ferry", &mut std::io::stdout());
    Ok(crate::commands::EXIT_OK)
}

/// Writes `ferry.1` and a page per subcommand (`ferry-sync.1`, `ferry-conduit-add.1`…)
/// into `dir`, or prints `ferry.1` on stdout.
pub fn man(dir: Option<&Path>, quiet: bool) -> Result<u8> {
    let cmd = Cli::command();
    match dir {
        None => clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .context("writing the man page")?,
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            if !quiet {
                eprintln!(
                    "ferry: man pages written to {} (man ferry, once it is on MANPATH)",
                    dir.display()
                );
            }
        }
    }
    Ok(crate::commands::EXIT_OK)
}
