//! Sharing a folder with other devices: offering it, accepting an offer, and tying a
//! member device's copy (a peer location) to this device's folder with a conduit.
//!
//! Each device runs its own conduit between its folder and each member's copy and
//! applies only its own side of the plan (see [`crate::execute::Executor`]); the
//! member does the same from its side. Mirror shares flow from the device that made
//! the share (its folder is side A on every device).

use crate::error::{Error, Result};
use crate::index::{Index, ShareMember, ShareRow};
use crate::plan::{ConflictPolicy, SyncMode};
use crate::replica::location::{canonical_root, open_location, Location};
use std::path::Path;

/// A new share ID: 128 random bits as 32 hex digits.
pub fn new_share_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Modes that work between devices today. Every conflict policy does (`manual`: each
/// device records the conflict; a resolution on one reaches the other as a newer edit,
/// see [`crate::resolve`]).
fn check_mode(mode: SyncMode, _policy: ConflictPolicy) -> Result<()> {
    match mode {
        SyncMode::Bidirectional | SyncMode::Mirror | SyncMode::Archive => Ok(()),
        other => Err(Error::Unsupported(format!(
            "mode {other} does not work between devices yet; use bidirectional, mirror or archive"
        ))),
    }
}

/// Makes `dir` a share offered to `devices` (device IDs); the folder becomes a
/// location if it is not one. A folder already shared is refused (add devices to
/// that share instead).
pub fn create_share(
    index: &mut Index,
    dir: &Path,
    devices: &[String],
    mode: SyncMode,
    policy: ConflictPolicy,
) -> Result<ShareRow> {
    check_mode(mode, policy)?;
    let loc = unshared_location(
        index,
        dir,
        "add devices to that share with `ferry share add-device`",
    )?;
    let share = index.insert_share(&new_share_id(), loc.id(), mode, policy, None)?;
    for d in devices {
        index.add_share_member(&share.id, d)?;
    }
    Ok(share)
}

/// `dir` as a location, if it is in no share yet (else refused, saying `instead`).
fn unshared_location(index: &mut Index, dir: &Path, instead: &str) -> Result<Location> {
    let root = canonical_root(dir)?;
    let loc = open_location(index, &root, false)?;
    let shares = index.shares()?;
    match shares.iter().find(|s| s.location_id == loc.id()) {
        Some(s) => Err(Error::Refused(format!(
            "{} is in share {} already; {instead}",
            root.display(),
            s.id
        ))),
        None => Ok(loc),
    }
}

/// Accepts the offer of share `share_id` into `dir` (created if missing; its parent
/// must exist). The offering device becomes the share's member, its folder tied to
/// this one by a conduit.
pub fn accept_offer(index: &mut Index, share_id: &str, dir: &Path) -> Result<ShareRow> {
    if let Some(s) = index.share(share_id)? {
        return Err(Error::Refused(format!(
            "share {} is accepted already (into location {})",
            s.id, s.location_id
        )));
    }
    let Some(offer) = index.offers_of(share_id)?.into_iter().next() else {
        return Err(Error::Refused(format!(
            "no device has offered share {share_id}; `ferry share list` shows the offers"
        )));
    };
    check_mode(offer.mode, offer.conflict_policy)?;
    if !dir.exists() {
        std::fs::create_dir(dir).map_err(|e| Error::Io {
            action: "create",
            path: dir.to_path_buf(),
            source: e,
        })?;
    }
    let loc = unshared_location(index, dir, "accept into another folder")?;
    let share = index.insert_share(
        share_id,
        loc.id(),
        offer.mode,
        offer.conflict_policy,
        Some(&offer.device),
    )?;
    index.add_share_member(share_id, &offer.device)?;
    attach_member(index, &share, &offer.device, &offer.folder_id)?;
    index.remove_offers(share_id)?;
    Ok(share)
}

/// Ties member `device`'s copy of `share` to this device's folder, once the device
/// said which location holds it (`their_location`, that folder's location ID on the
/// device): a peer location and the conduit between the two. Nothing changes when
/// they are tied already; a device that now names another location (it accepted the
/// share afresh into a new folder) is refused.
pub fn attach_member(
    index: &mut Index,
    share: &ShareRow,
    device: &str,
    their_location: &str,
) -> Result<ShareMember> {
    let member = index.share_member(&share.id, device)?.ok_or_else(|| {
        Error::Refused(format!(
            "device {device} is not a member of share {}",
            share.id
        ))
    })?;
    if let Some(id) = member.remote_location {
        let row = index.location(id)?;
        if row.uuid != their_location {
            return Err(Error::Refused(format!(
                "device {device} now holds share {} in another folder; remove it from the share and add it again",
                share.id
            )));
        }
        return Ok(member);
    }
    let peer = match index.location_by_uuid(their_location)? {
        Some(row) if row.peer.as_deref() == Some(device) => row,
        Some(_) => {
            return Err(Error::Refused(format!(
                "device {device} named a folder ID this device uses itself"
            )))
        }
        None => index.insert_peer_location(
            their_location,
            &format!("ferry-peer:{device}/{}", share.id),
            device,
        )?,
    };
    // Mirror flows from the device that made the share: its folder is side A.
    let (a, b) = match share.offered_by {
        None => (share.location_id, peer.id),
        Some(_) => (peer.id, share.location_id),
    };
    let conduit = match index.conduit_between(a, b)? {
        Some(c) => c,
        None => {
            let c = index.insert_conduit(a, b, share.mode, share.conflict_policy, false)?;
            // A daemon watches this device's folder and runs on every change.
            // The share's bandwidth limit, if it has one.
            let limit = match index.share_bandwidth_limit(&share.id)? {
                0 => c.bandwidth_limit,
                l => l,
            };
            index.update_conduit_schedule(
                c.id,
                crate::conduit::Schedule::Instant,
                c.parallel,
                limit,
            )?;
            c
        }
    };
    index.set_member_replica(&share.id, device, peer.id, conduit.id)?;
    index
        .share_member(&share.id, device)?
        .ok_or_else(|| Error::Corrupt("share member vanished".into()))
}

/// Up to `limit` entries of this device's folder in `share` changed after sequence
/// `after` (what a member holding them up to `after` lacks), in sequence order, each
/// with its sequence number: what this device sends that member.
pub fn outgoing(
    index: &Index,
    share: &ShareRow,
    after: u64,
    limit: usize,
) -> Result<Vec<crate::model::entry::Entry>> {
    index.entries_after(share.location_id, after, limit)
}

/// Stores entries member `device` sent for its copy of `share`, reaching its sequence
/// `upto`. The whole batch is checked first: an entry that cannot be true (a file
/// without a content hash, chunks that do not add up to its size, a piece larger than
/// a chunk can be) refuses the batch and stores nothing. Returns how many entries
/// changed. The member must be attached ([`attach_member`]).
pub fn incoming(
    index: &mut Index,
    share: &ShareRow,
    device: &str,
    entries: &[(
        crate::model::rel_path::RelPath,
        crate::model::entry::FileState,
    )],
    upto: u64,
) -> Result<usize> {
    let member = index.share_member(&share.id, device)?.ok_or_else(|| {
        Error::Refused(format!(
            "device {device} is not a member of share {}",
            share.id
        ))
    })?;
    let Some(location) = member.remote_location else {
        return Err(Error::Refused(format!(
            "device {device} has not said which folder holds share {}",
            share.id
        )));
    };
    for (path, state) in entries {
        check_path(path).and_then(|_| check_state(state)).map_err(|why| {
            Error::Refused(format!(
                "device {device} sent an entry that cannot be true for {path}: {why}; nothing stored"
            ))
        })?;
    }
    index.put_received(&share.id, device, location, entries, upto)
}

/// Why a received path cannot be one a device's folder syncs: ferry's own folder at
/// the root and its temp files are never indexed by a scan, so a device that sends one
/// is lying (and writing there would reach into this device's version store).
fn check_path(path: &crate::model::rel_path::RelPath) -> std::result::Result<(), &'static str> {
    let rules = crate::replica::ignore_rules::IndexRules {
        index_everything: true,
    };
    for (depth, name) in path.as_str().split('/').enumerate() {
        if rules.builtin_excluded(name, depth + 1, true) {
            return Err("a path inside ferry's own folder or a ferry temp file");
        }
    }
    Ok(())
}

/// Why a received file state cannot be true, if it cannot.
fn check_state(s: &crate::model::entry::FileState) -> std::result::Result<(), &'static str> {
    use crate::model::chunk::CHUNK_MAX;
    use crate::model::entry::{EntryKind, Presence};
    if s.presence == Presence::Dehydrated {
        return Err("files on demand are not shared between devices yet");
    }
    if s.presence == Presence::Tombstone {
        return Ok(());
    }
    match s.kind {
        EntryKind::File => {
            if s.hash.is_none() {
                return Err("a file without a content hash");
            }
            if s.chunks.is_empty() {
                if s.size > CHUNK_MAX as u64 {
                    return Err("a file larger than a chunk without a chunk list");
                }
            } else {
                if s.chunks
                    .iter()
                    .any(|c| c.len as usize > CHUNK_MAX || c.len == 0)
                {
                    return Err("a chunk larger than a chunk can be");
                }
                let sum: u64 = s.chunks.iter().map(|c| u64::from(c.len)).sum();
                if sum != s.size {
                    return Err("chunks that do not add up to the file's size");
                }
            }
        }
        EntryKind::Symlink => {
            if s.link_target.is_none() || s.hash.is_none() {
                return Err("a symlink without a target");
            }
        }
        EntryKind::Dir => {}
    }
    Ok(())
}
