//! `ferry share DIR --with DEVICE`, `ferry share list`, `ferry share add-device`,
//! `ferry accept SHARE DIR`: shared folders in the index (ferry-core's `share`); the
//! daemon's device node offers them and keeps them in step.

use crate::cli::{ShareArgs, ShareCommand};
use crate::commands::EXIT_OK;
use crate::output::{self, NotFound};
use anyhow::{Context, Result};
use ferry_core::plan::{ConflictPolicy, SyncMode};
use ferry_net::{DeviceId, DeviceStore, StoreError};
use serde_json::json;
use std::path::Path;

pub fn share(args: &ShareArgs, json_out: bool) -> Result<u8> {
    let home = ferry_core::library::library_dir()?;
    match (&args.command, &args.dir) {
        (Some(ShareCommand::List), _) => list(&home, json_out),
        (Some(ShareCommand::Decline { share }), _) => {
            let index = ferry_core::library::open_index()?;
            if !index.decline_offers(share)? {
                return Err(NotFound(format!(
                    "no open offer of share {share}; see `ferry share list`"
                ))
                .into());
            }
            if json_out {
                output::print(json!({"declined": share}))?;
            } else {
                println!("declined share {share}");
            }
            Ok(EXIT_OK)
        }
        (Some(ShareCommand::AddDevice { share, device }), _) => {
            let id = resolve(&home, device)?;
            let index = ferry_core::library::open_index()?;
            if index.share(share)?.is_none() {
                return Err(NotFound(format!("no share {share}; see `ferry share list`")).into());
            }
            index.add_share_member(share, &id.to_string())?;
            if json_out {
                output::print(json!({"share": share, "added": id}))?;
            } else {
                println!("offered share {share} to {}", id.short());
            }
            Ok(EXIT_OK)
        }
        (Some(ShareCommand::RemoveDevice { share, device }), _) => {
            remove_device(&home, share, device, json_out)
        }
        (None, Some(dir)) if args.with.is_empty() && args.bandwidth_limit.is_some() => {
            // A folder shared already: change its limit.
            let index = ferry_core::library::open_index()?;
            let limit = args.bandwidth_limit.clone().unwrap_or_default();
            let root = ferry_core::replica::canonical_root(dir)?;
            let share = (index.shares()?.into_iter())
                .find(|s| index.location(s.location_id).is_ok_and(|l| l.root == root))
                .ok_or_else(|| NotFound(format!("{} is not shared", dir.display())))?;
            index.set_share_bandwidth(&share.id, &limit)?;
            if json_out {
                output::print(json!({
                    "share": share.id,
                    "bandwidth_limit": limit.base,
                    "bandwidth_schedule": limit.is_scheduled().then(|| limit.to_string()),
                }))?;
            } else {
                println!("share {}: bandwidth limit {limit}", share.id);
            }
            Ok(EXIT_OK)
        }
        (None, Some(dir)) => {
            if args.with.is_empty() {
                anyhow::bail!(
                    "say which device to share with: --with DEVICE (see `ferry device list`)"
                );
            }
            let mut devices = Vec::new();
            for d in &args.with {
                devices.push(resolve(&home, d)?.to_string());
            }
            let mode = args
                .mode
                .map(|m| m.mode())
                .unwrap_or(SyncMode::Bidirectional);
            let policy = (args.conflict.map(|p| p.policy())).unwrap_or(ConflictPolicy::Newest);
            let mut index = ferry_core::library::open_index()?;
            #[cfg(feature = "hub")]
            let book = match &args.hub {
                Some(hub) => Some(crate::hub_cmd::known_hub(hub)?),
                None => None,
            };
            let share = ferry_core::share::create_share(&mut index, dir, &devices, mode, policy)?;
            #[cfg(feature = "hub")]
            if let (Some(book), Some(hub)) = (book, &args.hub) {
                book.set_share_hub(&share.id, &hub.to_string())?;
            }
            let limit = args.bandwidth_limit.clone().unwrap_or_default();
            if !limit.is_unlimited() {
                index.set_share_bandwidth(&share.id, &limit)?;
            }
            if json_out {
                output::print(json!({
                    "share": share,
                    "devices": devices,
                    "bandwidth_limit": limit.base,
                    "bandwidth_schedule": limit.is_scheduled().then(|| limit.to_string()),
                }))?;
            } else {
                println!("{}", share.id);
                eprintln!(
                    "shared {} ({mode}); the other device accepts with `ferry accept {} DIR` \
                     (its daemon shows the offer once the two are connected)",
                    dir.display(),
                    share.id
                );
            }
            Ok(EXIT_OK)
        }
        (None, None) => anyhow::bail!(
            "say which folder to share: `ferry share DIR --with DEVICE` (or `ferry share list`)"
        ),
    }
}

pub fn accept(share_id: &str, dir: &Path, json_out: bool) -> Result<u8> {
    let mut index = ferry_core::library::open_index()?;
    let share = ferry_core::share::accept_offer(&mut index, share_id, dir)?;
    if json_out {
        output::print(json!({"share": share}))?;
    } else {
        println!(
            "accepted share {} into {} ({})",
            share.id,
            dir.display(),
            share.mode
        );
    }
    Ok(EXIT_OK)
}

fn list(home: &Path, json_out: bool) -> Result<u8> {
    let index = ferry_core::library::open_existing_index()?;
    let store = DeviceStore::open_existing(home).context("opening the devices store")?;
    let name_of = |id: &str| -> Option<String> {
        let id: DeviceId = id.parse().ok()?;
        store.as_ref()?.get(&id).ok()??.name
    };
    let mut shares = Vec::new();
    for s in index.shares()? {
        let root = index.location(s.location_id)?.root;
        let members: Vec<_> = (index.share_members(&s.id)?.into_iter())
            .map(|m| {
                json!({
                    "device": m.device,
                    "name": name_of(&m.device),
                    "joined": m.remote_location.is_some(),
                    "conduit": m.conduit_id,
                })
            })
            .collect();
        shares.push(json!({
            "id": s.id, "folder": root, "mode": s.mode, "conflict_policy": s.conflict_policy,
            "offered_by": s.offered_by, "members": members,
        }));
    }
    let offers: Vec<_> = (index.offers()?.into_iter())
        .map(|o| {
            json!({
                "share": o.share_id, "device": o.device, "name": name_of(&o.device),
                "folder_name": o.folder_name, "mode": o.mode, "conflict_policy": o.conflict_policy,
                "received_at": o.received_at,
            })
        })
        .collect();
    if json_out {
        output::print(json!({"shares": shares, "offers": offers}))?;
        return Ok(EXIT_OK);
    }
    if shares.is_empty() && offers.is_empty() {
        println!("no shares yet; share a folder with `ferry share DIR --with DEVICE`");
    }
    for s in &shares {
        println!(
            "{}  {}  ({})",
            s["id"].as_str().unwrap_or_default(),
            s["folder"].as_str().unwrap_or_default(),
            s["mode"].as_str().unwrap_or_default()
        );
        for m in s["members"].as_array().into_iter().flatten() {
            let who = m["name"]
                .as_str()
                .or(m["device"].as_str())
                .unwrap_or_default();
            let state = if m["joined"] == true {
                "in step with this device"
            } else {
                "offered, not accepted yet"
            };
            println!("    {who}: {state}");
        }
    }
    for o in &offers {
        let who = o["name"]
            .as_str()
            .or(o["device"].as_str())
            .unwrap_or_default();
        println!(
            "offer {} from {who}: folder {:?} ({}); accept with `ferry accept {} DIR`",
            o["share"].as_str().unwrap_or_default(),
            o["folder_name"].as_str().unwrap_or_default(),
            o["mode"].as_str().unwrap_or_default(),
            o["share"].as_str().unwrap_or_default()
        );
    }
    Ok(EXIT_OK)
}

/// A known device by ID or name.
/// `ferry share remove-device SHARE DEVICE`.
fn remove_device(home: &Path, share: &str, device: &str, json_out: bool) -> Result<u8> {
    // A member need not be a known device any more: its ID is enough.
    let id = match device.parse::<DeviceId>() {
        Ok(id) => id,
        Err(_) => resolve(home, device)?,
    };
    let mut index = ferry_core::library::open_index()?;
    if index.share(share)?.is_none() {
        return Err(NotFound(format!("no share {share}; see `ferry share list`")).into());
    }
    let Some(member) = index.remove_share_member(share, &id.to_string())? else {
        return Err(NotFound(format!(
            "{} is not a member of share {share}; see `ferry share list`",
            id.short()
        ))
        .into());
    };
    if let Some(conduit) = member.conduit_id {
        index.remove_conduit(conduit)?;
    }
    #[cfg(feature = "hub")]
    let hub = {
        let book = ferry_hub::client::HubBook::open(home)?;
        let hub = book.share_hub(share)?;
        if hub.is_some() {
            book.add_removal(share, &id.to_string())?;
        }
        hub
    };
    #[cfg(not(feature = "hub"))]
    let hub: Option<String> = None;
    if json_out {
        output::print(json!({"share": share, "removed": id, "hub": hub}))?;
    } else {
        println!("removed {} from share {share}", id.short());
        if hub.is_some() {
            println!(
                "the daemon tells the share's hub and starts a new key epoch the removed device cannot read"
            );
        }
    }
    Ok(EXIT_OK)
}

fn resolve(home: &Path, device: &str) -> Result<DeviceId> {
    let not_known = || {
        NotFound(format!(
            "no device {device:?}; add it with `ferry device add ID` first"
        ))
    };
    let Some(store) = DeviceStore::open_existing(home)? else {
        return Err(not_known().into());
    };
    store.resolve(device).map_err(|e| match e {
        StoreError::NotFound(_) => not_known().into(),
        e => e.into(),
    })
}

/// `ferry sync --share SHARE`: asks a running daemon to run the share's conduits, else
/// syncs once with the members online (`ferry_daemon::oneshot`). Exit 0 when every
/// member is in step, 3 when only open conflicts are left, 1 when a member was not
/// reached or not in step by the deadline.
pub fn sync_share(
    index: &mut ferry_core::index::Index,
    share: &str,
    args: &crate::cli::SyncArgs,
    json_out: bool,
) -> Result<u8> {
    use crate::commands::{EXIT_CONFLICTS, EXIT_ERROR};
    let library = ferry_core::library::library_dir()?;
    let row = index.share(share)?.ok_or_else(|| {
        NotFound(format!(
            "no share {share} on this device; see `ferry share list`"
        ))
    })?;
    let conduits: Vec<i64> = (index.share_members(&row.id)?.into_iter())
        .filter_map(|m| m.conduit_id)
        .collect();
    // A running daemon owns this device's key and connections: it runs them.
    if crate::api_client::get(&library, "/api/status")?.is_some() {
        for c in &conduits {
            crate::api_client::post(&library, &format!("/api/conduits/{c}/sync"))?;
        }
        if json_out {
            output::print(json!({"share": row.id, "daemon": true, "conduits": conduits}))?;
        } else {
            println!(
                "the running daemon syncs share {} now (conduits {conduits:?}); see `ferry status`",
                row.id
            );
        }
        return Ok(EXIT_OK);
    }
    let opts = ferry_daemon::oneshot::OneShot {
        share: row.id.clone(),
        listen: args
            .listen
            .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
        relay: args.relay.clone(),
        timeout: std::time::Duration::from_secs(args.timeout),
        local_discovery: !args.no_local_discovery,
    };
    let members = ferry_daemon::oneshot::sync_share_once(index, &opts, &ferry_core::NoProgress)
        .with_context(|| format!("syncing share {}", row.id))?;
    let all_settled = members.iter().all(|m| m.settled);
    let conflicts = members.iter().any(|m| m.conflicts > 0);
    if json_out {
        output::print(json!({"share": row.id, "daemon": false, "members": members}))?;
    } else {
        for m in &members {
            let state = match (m.reached, m.settled) {
                (false, _) => "not reached".to_string(),
                (true, true) => "in step".to_string(),
                (true, false) => "not in step yet".to_string(),
            };
            println!(
                "{}: {state}; {} copied, {} deleted here ({} runs){}",
                m.device,
                m.files_copied,
                m.files_deleted,
                m.runs,
                if m.conflicts > 0 {
                    format!(", {} open conflicts (`ferry conflicts`)", m.conflicts)
                } else {
                    String::new()
                }
            );
            for p in &m.problems {
                eprintln!("ferry: {}: {p}", m.device);
            }
        }
    }
    Ok(if !all_settled {
        EXIT_ERROR
    } else if conflicts {
        EXIT_CONFLICTS
    } else {
        EXIT_OK
    })
}
