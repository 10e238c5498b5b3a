//! `ferry sync --share SHARE` without a daemon: one exchange of a share with its
//! members that are online now, then exit.
//!
//! A device node is started for the command's lifetime (this device's key, a free UDP
//! port unless one is given, the relay if given, mDNS lookup). The node dials the
//! share's members as the daemon's does; once a member is connected and its entries
//! pulled, the share's conduit with it is run here (content pulled by hash from that
//! member). The node keeps answering the member meanwhile, so a member running `ferry
//! daemon` pulls this device's changes and content from it. A conduit is **settled**
//! when a run plans no copy, deletion, rename, folder or move for either side (open
//! `manual` conflicts excepted: they wait for `ferry resolve`); until then it runs
//! again when the member's entries change (its changes arrive as the daemon's do) or
//! every few seconds. The command ends when every member's conduit is settled, or at
//! the deadline with what it reached.

use crate::error::{DaemonError, Result};
use ferry_core::index::Index;
use ferry_core::{sync_conduit, Progress, PullSource, SyncOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a conduit that is not settled is run again without news from its member.
const RECHECK: Duration = Duration::from_secs(3);

/// What to sync and how long to try.
#[derive(Debug, Clone)]
pub struct OneShot {
    /// The share's ID.
    pub share: String,
    /// UDP address for the node (port 0: any free port).
    pub listen: SocketAddr,
    /// A relay server, as `ferry daemon --relay`.
    pub relay: Option<String>,
    /// Give up on members not settled by then.
    pub timeout: Duration,
    /// Find members on the local network by mDNS.
    pub local_discovery: bool,
}

/// What happened with one member.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MemberOutcome {
    /// The member's device ID.
    pub device: String,
    /// The share's conduit with it.
    pub conduit: i64,
    /// Connected, and its entries pulled, before the deadline.
    pub reached: bool,
    /// Both sides agree (see the module's notes).
    pub settled: bool,
    /// Runs made.
    pub runs: u32,
    /// Files and symlinks written here, over all runs.
    pub files_copied: u64,
    /// Paths removed here, over all runs.
    pub files_deleted: u64,
    /// Bytes written here, over all runs.
    pub bytes: u64,
    /// Open conflicts left for the user after the last run.
    pub conflicts: u64,
    /// Problems of the last run.
    pub problems: Vec<String>,
}

/// Syncs `opts.share` once with its members that can be reached.
pub fn sync_share_once(
    index: &mut Index,
    opts: &OneShot,
    progress: &dyn Progress,
) -> Result<Vec<MemberOutcome>> {
    let share = index
        .share(&opts.share)?
        .ok_or_else(|| DaemonError::NoShare(opts.share.clone()))?;
    let mut members: BTreeMap<i64, MemberOutcome> = BTreeMap::new();
    for m in index.share_members(&share.id)? {
        if let Some(conduit) = m.conduit_id {
            members.insert(
                conduit,
                MemberOutcome {
                    device: m.device,
                    conduit,
                    ..Default::default()
                },
            );
        }
    }
    if members.is_empty() {
        return Err(DaemonError::NoMembers(share.id));
    }
    let home = ferry_core::library::library_dir()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(crate::error::io_err("starting a runtime for", home.clone()))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let node = rt.block_on(ferry_net::Node::start(ferry_net::NodeConfig {
        home,
        listen: opts.listen,
        relay: opts.relay.clone(),
        device_name: ferry_net::host_name(),
        changes: Some(tx),
        local_discovery: opts.local_discovery,
    }))?;
    let deadline = Instant::now() + opts.timeout;
    let mut due: BTreeSet<i64> = BTreeSet::new();
    loop {
        if members.values().all(|m| m.settled) {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let waiting_on_news = members.values().any(|m| m.reached && !m.settled);
        let wait = if waiting_on_news {
            RECHECK.min(deadline - now)
        } else {
            deadline - now
        };
        match rt.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
            Ok(Some(c)) => {
                due.insert(c);
                while let Ok(c) = rx.try_recv() {
                    due.insert(c);
                }
            }
            Ok(None) => break,
            // Nothing new: run again those reached and not settled.
            Err(_) => due.extend(
                (members.values())
                    .filter(|m| m.reached && !m.settled)
                    .map(|m| m.conduit),
            ),
        }
        for conduit in std::mem::take(&mut due) {
            let Some(m) = members.get_mut(&conduit) else {
                continue;
            };
            let Some(content) = rt.block_on(node.content_for(conduit)) else {
                continue; // not connected (any more)
            };
            m.reached = true;
            let o = sync_conduit(
                index,
                conduit,
                &SyncOptions {
                    pull: Some(PullSource(Arc::new(content))),
                    ..Default::default()
                },
                progress,
            )?;
            m.runs += 1;
            m.files_copied += o.stats.files_copied;
            m.files_deleted += o.stats.files_deleted;
            m.bytes += o.stats.bytes_transferred;
            m.problems = o.problems.iter().map(|p| p.to_string()).collect();
            m.conflicts = (o.plan.conflicts.iter())
                .filter(|c| c.winner.is_none())
                .count() as u64;
            let p = &o.planned;
            // Archive removals are left out: the source forgets what it archived, so
            // the archive device cannot see them done (a later run removes them).
            let left = p.copy + p.delete + p.rename + p.mkdir + p.move_aside;
            m.settled = left == 0 && o.problems.is_empty() && !o.interrupted;
        }
    }
    rt.block_on(node.shutdown());
    Ok(members.into_values().collect())
}
