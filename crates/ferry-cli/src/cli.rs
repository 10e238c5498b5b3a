//! Command-line arguments.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// ferry keeps folders in step: safely, moving only what changed.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, long_about = None)]
pub struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sync two folders (creating their conduit on first use).
    Sync(SyncArgs),
    /// Sync two demo folders (./ferry-demo/a and ./ferry-demo/b), creating them with sample files.
    Demo {
        /// Where to create the demo folders.
        #[arg(default_value = "ferry-demo")]
        dir: PathBuf,
    },
    /// Index a folder (registering it as a location) and report what changed.
    Scan {
        dir: PathBuf,
        /// Index everything, including node_modules and OS clutter.
        #[arg(long)]
        index_everything: bool,
    },
    /// Show conduits, their locations and their last run.
    Status,
    /// List conflicts (open ones, and recently settled ones with --all).
    Conflicts {
        /// Include settled conflicts.
        #[arg(long)]
        all: bool,
    },
    /// List past runs (generations), newest first.
    History {
        /// How many runs to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// First folder (side a; the source in mirror mode).
    pub a: PathBuf,
    /// Second folder (side b; the target in mirror mode).
    pub b: PathBuf,
    /// How changes move; stored with the conduit for later runs.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Who wins when both sides changed a file; stored with the conduit.
    #[arg(long = "conflict", value_enum)]
    pub conflict: Option<PolicyArg>,
    /// Show what would happen; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Proceed past safety stops: a run deleting most of a side, a folder whose marker is gone.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Index everything, including node_modules and OS clutter.
    #[arg(long)]
    pub index_everything: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// b becomes an exact copy of a (b's own edits are versioned, then overwritten).
    Mirror,
    /// Changes flow both ways; concurrent edits go to the conflict policy.
    Bidirectional,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PolicyArg {
    /// Last writer (by mtime) wins; the loser is kept in the version store.
    Newest,
    /// As newest, and the loser also stays visible as name.conflict-DATE-SIDE.ext.
    KeepBoth,
    /// Side a wins.
    Source,
    /// Side b wins.
    Target,
    /// Touch nothing; record the conflict and exit 3.
    Manual,
}
