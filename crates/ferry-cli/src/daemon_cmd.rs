//! `ferry daemon`: continuous sync in the foreground (see ferry-daemon).

use crate::cli::DaemonArgs;
use crate::config::Config;
use anyhow::{Context, Result};
use ferry_core::index::Index;

pub fn run(index: Index, args: &DaemonArgs, config: &Config) -> Result<u8> {
    drop(index); // the daemon opens its own connections
    let library = ferry_core::library::library_dir()?;
    ferry_daemon::run(ferry_daemon::DaemonOptions {
        library,
        port: args.port.or(config.daemon_port).unwrap_or(0),
        net: net_options(args),
        conduit_defaults: config.conduit_defaults(),
    })
    .context("running the daemon")?;
    Ok(crate::commands::EXIT_OK)
}

#[cfg(feature = "net")]
fn net_options(args: &DaemonArgs) -> Option<ferry_daemon::NetOptions> {
    args.listen.map(|listen| ferry_daemon::NetOptions {
        listen,
        relay: args.relay.clone(),
        local_discovery: !args.no_local_discovery,
    })
}

#[cfg(not(feature = "net"))]
fn net_options(_args: &DaemonArgs) -> Option<ferry_daemon::NetOptions> {
    None
}
