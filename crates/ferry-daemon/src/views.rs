//! JSON views of the index shared by the API and `ferry status` without a daemon.

use crate::shared::ConduitState;
use ferry_core::index::Index;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Every conduit with its settings, file counts, last run, open conflicts and, when a
/// daemon runs, its live state (a paused conduit is `paused` from the moment the index
/// says so, before its task has heard).
pub fn conduits(
    index: &Index,
    states: Option<&HashMap<i64, ConduitState>>,
) -> ferry_core::Result<Vec<Value>> {
    let conflicts = index.conflicts(true)?;
    let generations = index.generations(10_000)?;
    let mut rows = Vec::new();
    for c in index.conduits()? {
        let (la, lb) = (index.location(c.location_a)?, index.location(c.location_b)?);
        let last = generations.iter().find(|g| g.conduit_id == c.id);
        let state = states.and_then(|s| s.get(&c.id));
        let share = index.share_of_conduit(c.id)?.map(|(s, _)| s.id);
        rows.push(json!({
            "conduit": c.id,
            "a": la.root, "b": lb.root,
            // A side that is another device's copy of a shared folder: that device's ID.
            "peer_a": la.peer, "peer_b": lb.peer,
            "share": share,
            "mode": c.mode, "conflict_policy": c.conflict_policy,
            "schedule": c.schedule,
            "parallel": c.parallel,
            "bandwidth_limit": c.bandwidth_limit,
            "paused": c.paused,
            "index_everything": c.index_everything,
            "files": {"a": index.live_file_count(la.id)?, "b": index.live_file_count(lb.id)?},
            "runs": c.generation,
            "last_run": last.map(|g| json!({
                "generation": g.id, "started_at": g.started_at, "completed_at": g.completed_at,
                "status": g.status, "trigger": g.trigger,
            })),
            "open_conflicts": conflicts.iter().filter(|x| x.conduit_id == c.id).count(),
            "pending": pending(index, c.id, la.id, lb.id)?,
            "files_on_demand": files_on_demand(index, &c)?,
            "state": if states.is_some() && c.paused {
                Some("paused".to_string())
            } else {
                state.map(|s| s.state.clone())
            },
            "watch": if states.is_some() && c.paused {
                Some("off".to_string())
            } else {
                state.map(|s| s.watch.clone())
            },
            "last_error": state.and_then(|s| s.last_error.clone()),
            "problems": state.map(|s| json!(s.problems)).unwrap_or(json!([])),
        }));
    }
    Ok(rows)
}

/// A selective conduit's use of its local side: bytes local and online-only, pinned
/// paths, hydrations under way, quota and free-space floor. `null` for other modes.
fn files_on_demand(index: &Index, c: &ferry_core::index::ConduitRow) -> ferry_core::Result<Value> {
    if c.mode != ferry_core::SyncMode::Selective {
        return Ok(Value::Null);
    }
    let u = ferry_core::on_demand::usage_of(index, c)?;
    Ok(json!({
        "bytes_local": u.bytes_local,
        "bytes_online_only": u.bytes_online_only,
        "files_local": u.files_local,
        "files_online_only": u.files_online_only,
        "pinned": u.pinned,
        "hydrations_in_progress": u.hydrating,
        "local_quota": u.settings.local_quota,
        "min_free_percent": u.settings.min_free_percent,
    }))
}

/// What a conduit has not synced yet, as far as the index knows: the files changed on
/// either side since it last converged (`{"files", "bytes"}`, the bytes of the live
/// ones), counted from each location's sequence numbers. `null` when unknown: the
/// conduit never converged, or its last run left errors. Changes on disk that no scan
/// has seen yet are not counted.
fn pending(index: &Index, conduit: i64, la: i64, lb: i64) -> ferry_core::Result<Value> {
    let Some((sa, sb)) = index.conduit_clean_point(conduit)? else {
        return Ok(Value::Null);
    };
    let (fa, ba) = index.changed_since(la, sa)?;
    let (fb, bb) = index.changed_since(lb, sb)?;
    Ok(json!({"files": fa + fb, "bytes": ba + bb}))
}

/// Every location with its file count and the free space of its file system (not
/// known here for another device's copy: `peer` names that device).
pub fn locations(index: &Index) -> ferry_core::Result<Vec<Value>> {
    let mut out = Vec::new();
    for l in index.locations()? {
        if let Some(peer) = &l.peer {
            out.push(json!({
                "location": l.id,
                "uuid": l.uuid,
                "root": l.root,
                "peer": peer,
                "files": index.live_file_count(l.id)?,
                "free_bytes": null,
                "total_bytes": null,
                "error": null,
            }));
            continue;
        }
        let space = ferry_core::replica::free_space(&l.root);
        out.push(json!({
            "location": l.id,
            "uuid": l.uuid,
            "root": l.root,
            "files": index.live_file_count(l.id)?,
            "free_bytes": space.as_ref().ok().map(|s| s.0),
            "total_bytes": space.as_ref().ok().map(|s| s.1),
            "error": space.err().map(|e| e.to_string()),
        }));
    }
    Ok(out)
}
