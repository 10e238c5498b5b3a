//! JSON views of the index shared by the API and `ferry status` without a daemon.

use crate::problems::ProblemView;
use crate::shared::ConduitState;
use ferry_core::index::{Index, RunStatus};
use ferry_core::{ConflictPolicy, Schedule, SyncMode};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;

/// One conduit as the API (`/api/conduits`, `/api/status`) and `ferry status --json`
/// show it. Serialized through a `serde_json::Value` (keys sorted), as the documents
/// always were.
#[derive(Debug, Clone, Serialize)]
pub struct ConduitView {
    /// The conduit's ID.
    pub conduit: i64,
    /// Side A's root (or label, for another device's copy).
    pub a: PathBuf,
    /// Side B's root (or label).
    pub b: PathBuf,
    /// A side that is another device's copy of a shared folder: that device's ID.
    pub peer_a: Option<String>,
    /// See `peer_a`.
    pub peer_b: Option<String>,
    /// The share the conduit serves, if any.
    pub share: Option<String>,
    /// Its mode.
    pub mode: SyncMode,
    /// Its conflict policy.
    pub conflict_policy: ConflictPolicy,
    /// When it runs.
    pub schedule: Schedule,
    /// Copies at once (0: one per core).
    pub parallel: u32,
    /// Bytes per second (0: none).
    pub bandwidth_limit: u64,
    /// Paused by the user.
    pub paused: bool,
    /// Indexes everything (no ignore rules).
    pub index_everything: bool,
    /// Live files on each side.
    pub files: SideCounts,
    /// Runs so far (the conduit's generation counter).
    pub runs: i64,
    /// Its latest run, if any.
    pub last_run: Option<LastRun>,
    /// Conflicts waiting for the user.
    pub open_conflicts: usize,
    /// What it has not synced yet, if known (see [`Pending`]).
    pub pending: Option<Pending>,
    /// A selective conduit's use of its local side; `None` for other modes.
    pub files_on_demand: Option<FilesOnDemand>,
    /// The daemon's live state of the conduit (`None` without a daemon).
    pub state: Option<String>,
    /// How it is watched (`None` without a daemon).
    pub watch: Option<String>,
    /// The last run's error, if it failed.
    pub last_error: Option<String>,
    /// The last run's problems, by kind.
    pub problems: Vec<ProblemView>,
}

/// Live files of each side.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SideCounts {
    /// Side A's.
    pub a: u64,
    /// Side B's.
    pub b: u64,
}

/// A conduit's latest run, in short.
#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    /// Its generation ID.
    pub generation: i64,
    /// When it started (seconds since the epoch).
    pub started_at: i64,
    /// When it ended, if it did.
    pub completed_at: Option<i64>,
    /// How it ended (or `running`).
    pub status: RunStatus,
    /// What started it.
    pub trigger: String,
}

/// Every conduit with its settings, file counts, last run, open conflicts and, when a
/// daemon runs, its live state (a paused conduit is `paused` from the moment the index
/// says so, before its task has heard).
pub fn conduits(
    index: &Index,
    states: Option<&HashMap<i64, ConduitState>>,
) -> ferry_core::Result<Vec<ConduitView>> {
    let conflicts = index.conflicts(true)?;
    let generations = index.generations(10_000)?;
    let mut rows = Vec::new();
    for c in index.conduits()? {
        let (la, lb) = (index.location(c.location_a)?, index.location(c.location_b)?);
        let last = generations.iter().find(|g| g.conduit_id == c.id);
        let state = states.and_then(|s| s.get(&c.id));
        let share = index.share_of_conduit(c.id)?.map(|(s, _)| s.id);
        let paused = states.is_some() && c.paused;
        rows.push(ConduitView {
            conduit: c.id,
            files: SideCounts {
                a: index.live_file_count(la.id)?,
                b: index.live_file_count(lb.id)?,
            },
            a: la.root,
            b: lb.root,
            peer_a: la.peer,
            peer_b: lb.peer,
            share,
            mode: c.mode,
            conflict_policy: c.conflict_policy,
            schedule: c.schedule,
            parallel: c.parallel,
            bandwidth_limit: c.bandwidth_limit,
            paused: c.paused,
            index_everything: c.index_everything,
            runs: c.generation,
            last_run: last.map(|g| LastRun {
                generation: g.id,
                started_at: g.started_at,
                completed_at: g.completed_at,
                status: g.status,
                trigger: g.trigger.clone(),
            }),
            open_conflicts: conflicts.iter().filter(|x| x.conduit_id == c.id).count(),
            pending: pending(index, c.id, la.id, lb.id)?,
            files_on_demand: files_on_demand(index, &c)?,
            state: if paused {
                Some("paused".to_string())
            } else {
                state.map(|s| s.state.clone())
            },
            watch: if paused {
                Some("off".to_string())
            } else {
                state.map(|s| s.watch.clone())
            },
            last_error: state.and_then(|s| s.last_error.clone()),
            problems: state.map(|s| s.problems.clone()).unwrap_or_default(),
        });
    }
    Ok(rows)
}

/// A selective conduit's use of its local side: bytes local and online-only, pinned
/// paths, hydrations under way, quota and free-space floor. `null` for other modes.
fn files_on_demand(
    index: &Index,
    c: &ferry_core::index::ConduitRow,
) -> ferry_core::Result<Option<FilesOnDemand>> {
    if c.mode != SyncMode::Selective {
        return Ok(None);
    }
    let u = ferry_core::on_demand::usage_of(index, c)?;
    Ok(Some(FilesOnDemand {
        bytes_local: u.bytes_local,
        bytes_online_only: u.bytes_online_only,
        files_local: u.files_local,
        files_online_only: u.files_online_only,
        pinned: u.pinned,
        hydrations_in_progress: u.hydrating,
        local_quota: u.settings.local_quota,
        min_free_percent: u.settings.min_free_percent,
    }))
}

/// A selective conduit's use of its local side.
#[derive(Debug, Clone, Serialize)]
pub struct FilesOnDemand {
    /// Bytes whose content is on this disk.
    pub bytes_local: u64,
    /// Bytes online-only (dehydrated).
    pub bytes_online_only: u64,
    /// Files whose content is on this disk.
    pub files_local: u64,
    /// Files online-only.
    pub files_online_only: u64,
    /// Pinned paths.
    pub pinned: u64,
    /// Hydrations under way.
    pub hydrations_in_progress: u64,
    /// The quota of local bytes, if set.
    pub local_quota: Option<u64>,
    /// The free-space floor, if set.
    pub min_free_percent: Option<u8>,
}

/// What a conduit has not synced yet (see [`pending`]).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Pending {
    /// Files changed on either side since it last converged.
    pub files: u64,
    /// Bytes of the live ones.
    pub bytes: u64,
}

/// What a conduit has not synced yet, as far as the index knows: the files changed on
/// either side since it last converged (`{"files", "bytes"}`, the bytes of the live
/// ones), counted from each location's sequence numbers. `null` when unknown: the
/// conduit never converged, or its last run left errors. Changes on disk that no scan
/// has seen yet are not counted.
fn pending(index: &Index, conduit: i64, la: i64, lb: i64) -> ferry_core::Result<Option<Pending>> {
    let Some((sa, sb)) = index.conduit_clean_point(conduit)? else {
        return Ok(None);
    };
    let (fa, ba) = index.changed_since(la, sa)?;
    let (fb, bb) = index.changed_since(lb, sb)?;
    Ok(Some(Pending {
        files: fa + fb,
        bytes: ba + bb,
    }))
}

/// One location as `/api/locations` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LocationView {
    /// The location's ID.
    pub location: i64,
    /// Its UUID (its marker's).
    pub uuid: String,
    /// Its root (or label, for another device's copy).
    pub root: PathBuf,
    /// For another device's copy: that device's ID (absent for a folder here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Live files.
    pub files: u64,
    /// Free bytes of its file system (`None` when unknown).
    pub free_bytes: Option<u64>,
    /// Size of its file system (`None` when unknown).
    pub total_bytes: Option<u64>,
    /// Why the free space is unknown, if it could not be read.
    pub error: Option<String>,
}

/// Every location with its file count and the free space of its file system (not
/// known here for another device's copy: `peer` names that device).
pub fn locations(index: &Index) -> ferry_core::Result<Vec<LocationView>> {
    let mut out = Vec::new();
    for l in index.locations()? {
        let files = index.live_file_count(l.id)?;
        if l.peer.is_some() {
            out.push(LocationView {
                location: l.id,
                uuid: l.uuid,
                root: l.root,
                peer: l.peer,
                files,
                free_bytes: None,
                total_bytes: None,
                error: None,
            });
            continue;
        }
        let space = ferry_core::replica::free_space(&l.root);
        out.push(LocationView {
            location: l.id,
            uuid: l.uuid,
            root: l.root,
            peer: None,
            files,
            free_bytes: space.as_ref().ok().map(|s| s.0),
            total_bytes: space.as_ref().ok().map(|s| s.1),
            error: space.err().map(|e| e.to_string()),
        });
    }
    Ok(out)
}
