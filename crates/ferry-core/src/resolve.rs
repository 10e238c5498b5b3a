//! Settling conflicts the user was asked about (`--conflict manual`).
//!
//! The choice is applied on disk with the sync's safety rules — the disk must still match
//! what the conflict was recorded from, the losing content goes to the version store (or
//! stays visible beside the winner with `both`), writes are verified temp files renamed
//! into place — and the conflict row is marked settled. The index is left alone: the
//! next sync scans the change and converges (same content on both sides merges the
//! version vectors; a loser moved aside is a plain rename plus a new file).
//!
//! **A conflict with another device** (a share's conduit: one side is a peer location,
//! the other device's folder, which this device never writes) is settled in the index,
//! and the files follow by the usual runs. The chosen content gets a version vector
//! that dominates both sides' — their merge, bumped with this folder's replica ID and a
//! fresh value of its clock — so each device takes it as a newer edit, not as a new
//! conflict:
//! - keeping this device's content (`mine`) gives this folder's entry that vector, with
//!   a fresh sequence number: it is announced to the other device, whose next run
//!   replaces its losing file (versioned there first) by pulling this one by hash;
//! - keeping the other device's content (`theirs`) gives the other device's entry, as
//!   held here, that vector: this device's next run pulls that content by hash from the
//!   other device (every piece checked against its BLAKE3) and installs it, the losing
//!   file going to this folder's version store first; the other device then sees the
//!   same content with a dominating vector and only merges the vectors;
//! - keeping both (`both`) moves this device's file beside the path under a conflict
//!   name (a new file for the next scan, which syncs) and then does what `theirs`
//!   does; the path is recorded gone at its old version and sequence, so its removal
//!   is never announced as a deletion.
//!
//! The other device does the same for a conflict resolved there; its resolution reaches
//! this device as an entry like any other, applied only if its vector dominates (a
//! "resolution" that does not is met as a conflict again). Nothing else is trusted: the
//! content is checked against its hash, and whatever is replaced is versioned.

use crate::error::{Error, Result};
use crate::execute::replace_file;
use crate::index::{ConflictRow, Index, LocationRow, Resolution};
use crate::model::entry::{Entry, EntryKind};
use crate::model::rel_path::RelPath;
use crate::model::version_vector::Causality;
use crate::plan::Side;
use crate::replica::disk::{self, Source};
use crate::replica::location::Location;
use crate::restore::locate;
use std::collections::HashSet;
use std::path::Path;

/// Which content survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The first folder's.
    A,
    /// The second folder's.
    B,
    /// Both: the second folder's stays at the path, the first folder's moves beside it
    /// as `name.conflict-…-a.ext` (a directory never moves: the file beside it does).
    /// With another device: this device's moves beside it, the other's takes the path.
    Both,
    /// The one with the later mtime (ties: side A).
    Newest,
    /// This device's content (a conflict with another device only).
    Mine,
    /// The other device's content (a conflict with another device only).
    Theirs,
}

/// One conflict settled.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Resolved {
    /// The conflict's ID.
    pub conflict: i64,
    /// A path key (`rel_path`), serialized for people.
    #[serde(serialize_with = "crate::model::rel_path::serialize_key")]
    pub path: String,
    /// What was kept (shown as `a`, `b` or `both`).
    pub kept: Resolution,
    /// Where the loser stays visible (`--keep both`), as a path key.
    #[serde(serialize_with = "crate::model::rel_path::serialize_opt_key")]
    pub loser_kept_at: Option<String>,
    /// The device the conflict was with (a share's conduit), whose content a run now
    /// pulls or to whom this device's entry is now announced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The conduit whose next run carries the resolution out (between devices).
    #[serde(skip)]
    pub run_conduit: Option<i64>,
}

/// Settles the open conflicts at `path` (in either folder of its conduit).
pub fn resolve_path(index: &mut Index, path: &Path, keep: Keep) -> Result<Vec<Resolved>> {
    let (loc, rel) = locate(index, path)?;
    let mut out = Vec::new();
    for c in index.conduits()? {
        if c.location_a != loc.id && c.location_b != loc.id {
            continue;
        }
        for row in index.open_conflicts_at(c.id, &rel)? {
            out.push(resolve_one(index, &row, keep)?);
        }
    }
    if out.is_empty() {
        return Err(Error::Other(format!(
            "no open conflict at {}; see `ferry conflicts`",
            crate::model::rel_path::escape_os(path)
        )));
    }
    Ok(out)
}

/// Settles one open conflict by its ID (as `ferry conflicts` and the dashboard list them).
pub fn resolve_id(index: &mut Index, id: i64, keep: Keep) -> Result<Resolved> {
    let row = index
        .conflicts(true)?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| Error::Other(format!("no open conflict #{id}; see `ferry conflicts`")))?;
    resolve_one(index, &row, keep)
}

/// Settles every open conflict. One that cannot be settled (e.g. changed since the last
/// sync) is reported and stays open; the others proceed.
pub fn resolve_all(index: &mut Index, keep: Keep) -> Result<(Vec<Resolved>, Vec<String>)> {
    let (mut done, mut errors) = (Vec::new(), Vec::new());
    for row in index.conflicts(true)? {
        match resolve_one(index, &row, keep) {
            Ok(r) => done.push(r),
            Err(e) => errors.push(format!(
                "{}: {e}",
                crate::model::rel_path::display_key(&row.path)
            )),
        }
    }
    Ok((done, errors))
}

fn open_loc(index: &Index, id: i64) -> Result<Location> {
    let row = index.location(id)?;
    let loc = Location::from_row(row);
    loc.verify_marker()?;
    Ok(loc)
}

fn resolve_one(index: &mut Index, row: &ConflictRow, keep: Keep) -> Result<Resolved> {
    let conduit = index
        .conduits()?
        .into_iter()
        .find(|c| c.id == row.conduit_id)
        .ok_or_else(|| Error::Corrupt(format!("conflict {} has no conduit", row.id)))?;
    let (ra, rb) = (
        index.location(conduit.location_a)?,
        index.location(conduit.location_b)?,
    );
    if ra.peer.is_some() || rb.peer.is_some() {
        return resolve_with_device(index, row, ra, rb, keep);
    }
    if matches!(keep, Keep::Mine | Keep::Theirs) {
        return Err(Error::Refused(
            "mine and theirs are for conflicts with another device; \
             this conflict is between two folders here: keep a, b, both or newest"
                .into(),
        ));
    }
    let (la, lb) = (
        open_loc(index, conduit.location_a)?,
        open_loc(index, conduit.location_b)?,
    );
    let (_lock_a, _lock_b) = (la.lock()?, lb.lock()?);
    let path = RelPath::new(&row.path)?;
    let live = |l: &Location| -> Result<Option<Entry>> {
        let e = index.entry(l.id(), &path)?.filter(|e| e.is_live());
        // Safety rule 2: decide only on what the conflict was recorded from.
        let abs = path.under(&l.root);
        disk::ensure_matches(l, &path, e.as_ref()).map_err(|_| {
            Error::Refused(format!(
                "{} changed since the last sync; run `ferry sync` first, then resolve",
                crate::model::rel_path::escape_os(&abs)
            ))
        })?;
        Ok(e)
    };
    let (ea, eb) = (live(&la)?, live(&lb)?);
    let keep = match keep {
        Keep::Newest => match (&ea, &eb) {
            (Some(a), Some(b)) if b.state.mtime_ns > a.state.mtime_ns => Keep::B,
            (None, Some(_)) => Keep::B,
            _ => Keep::A,
        },
        k => k,
    };
    let loser_kept_at = match keep {
        Keep::A | Keep::B => {
            let (w, (wl, we), (ll, le)) = if keep == Keep::A {
                (Side::A, (&la, &ea), (&lb, &eb))
            } else {
                (Side::B, (&lb, &eb), (&la, &ea))
            };
            take_winner(index, wl, we.as_ref(), ll, le.as_ref(), &path)?;
            le.as_ref()
                .map(|_| format!("version store of side {}", w.other().letter()))
        }
        // Both (Newest was settled above; Mine and Theirs were refused).
        _ => {
            // A directory stays where it is; the file (or A's side) moves aside.
            let a_is_dir = ea.as_ref().is_some_and(|e| e.state.kind == EntryKind::Dir);
            let (side, loc, e) = if a_is_dir {
                (Side::B, &lb, &eb)
            } else {
                (Side::A, &la, &ea)
            };
            match e {
                Some(e) => Some(move_aside(index, loc, e, side)?),
                None => None,
            }
        }
    };
    let resolution = match keep {
        Keep::A => Resolution::A,
        Keep::B => Resolution::B,
        _ => Resolution::Both,
    };
    index.settle_conflict(row.id, resolution, loser_kept_at.as_deref())?;
    Ok(Resolved {
        conflict: row.id,
        path: row.path.clone(),
        kept: resolution,
        loser_kept_at,
        device: None,
        run_conduit: None,
    })
}

/// Settles a conflict between this device's folder and another device's (see the
/// module's notes): only the index changes here; runs move the content.
fn resolve_with_device(
    index: &mut Index,
    row: &ConflictRow,
    ra: LocationRow,
    rb: LocationRow,
    keep: Keep,
) -> Result<Resolved> {
    let local_is_a = ra.peer.is_none();
    let (local_row, peer_row) = match (ra.peer.is_none(), rb.peer.is_none()) {
        (true, false) => (ra, rb),
        (false, true) => (rb, ra),
        _ => {
            return Err(Error::Corrupt(format!(
                "conflict {}: its conduit has no folder on this device",
                row.id
            )))
        }
    };
    let device = peer_row.peer.clone().unwrap_or_default();
    let (peer_id, replica) = (peer_row.id, local_row.replica_id);
    let local = Location::from_row(local_row);
    local.verify_marker()?;
    let _lock = local.lock()?;
    let path = RelPath::new(&row.path)?;
    let mine = index.entry(local.id(), &path)?.filter(|e| e.is_live());
    // Safety rule 2: decide only on what the conflict was recorded from.
    disk::ensure_matches(&local, &path, mine.as_ref()).map_err(|_| {
        Error::Refused(format!(
            "{} changed since the last sync; let it sync first, then resolve",
            crate::model::rel_path::escape_os(path.under(&local.root))
        ))
    })?;
    let theirs = index.entry(peer_id, &path)?.filter(|e| e.is_live());
    let (Some(mine), Some(theirs)) = (mine, theirs) else {
        return Err(Error::Refused(format!(
            "{} is no longer in conflict with device {device} (one side is gone); \
             see `ferry conflicts` after the next run",
            crate::model::rel_path::escape_os(path.under(&local.root))
        )));
    };
    if mine.state.version.compare(&theirs.state.version) != Causality::Concurrent {
        return Err(Error::Refused(format!(
            "{} is no longer in conflict with device {device} (a newer change arrived); \
             see `ferry conflicts` after the next run",
            crate::model::rel_path::escape_os(path.under(&local.root))
        )));
    }
    if mine.state.kind == EntryKind::Dir || theirs.state.kind == EntryKind::Dir {
        return Err(Error::Refused(format!(
            "{} is a folder on one device and a file on the other; \
             rename one of them yourself",
            crate::model::rel_path::escape_os(path.under(&local.root))
        )));
    }
    let mut aside = None;
    let keep_mine = match keep {
        Keep::Mine => true,
        Keep::Theirs => false,
        Keep::A => local_is_a,
        Keep::B => !local_is_a,
        Keep::Newest => match mine.state.mtime_ns.cmp(&theirs.state.mtime_ns) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => local_is_a,
        },
        // This device's file moves beside the path (`name.conflict-…-<side>.ext`: the
        // next scan records it as a new file, which syncs to the other device), and
        // the other device's content comes to the path. The path is recorded gone at
        // the version it had and with its sequence: not an edit, so it is not announced
        // (the other device must not take it for a deletion); the other device's
        // entry, dominating, is then pulled into the empty path by the next run.
        Keep::Both => {
            let side = if local_is_a { Side::A } else { Side::B };
            let moved_to = move_aside(index, &local, &mine, side)?;
            index.put_entries(local.id(), &[mine.tombstone(&mine.state.version)])?;
            aside = Some(moved_to);
            false
        }
    };
    // Bumped at a fresh value of this folder's clock, as a scan does for a local edit;
    // numbers are taken and rows stored together (`put_entries_numbered`).
    let merged = mine.state.version.merged(&theirs.state.version);
    if keep_mine {
        let mut e = [mine.clone()];
        index.put_entries_numbered(
            local.id(),
            &mut e,
            |_| true,
            |e, clock| {
                e.state.version = merged.bumped(replica, clock);
                e.cache.sequence = clock;
            },
        )?;
    } else {
        // The clock value only orders this folder's history: no row of it is stored.
        let clock = index.reserve_sequence(local.id(), 1)?;
        let mut e = [theirs.with_version(&merged.bumped(replica, clock))];
        index.put_entries_numbered(peer_id, &mut e, |_| true, |e, seq| e.cache.sequence = seq)?;
    }
    let winner_is_a = keep_mine == local_is_a;
    let (resolution, loser_kept_at) = if winner_is_a {
        (Resolution::A, "version store of side b")
    } else {
        (Resolution::B, "version store of side a")
    };
    let (resolution, loser_kept_at) = match aside {
        Some(aside) => (Resolution::Both, aside),
        None if keep_mine => (
            resolution,
            format!("{loser_kept_at} (on device {device}, when it takes this content)"),
        ),
        None => (
            resolution,
            format!("{loser_kept_at} (here, when the next run installs device {device}'s content)"),
        ),
    };
    index.settle_conflict(row.id, resolution, Some(&loser_kept_at))?;
    Ok(Resolved {
        conflict: row.id,
        path: row.path.clone(),
        kept: resolution,
        loser_kept_at: Some(loser_kept_at),
        device: Some(device),
        run_conduit: Some(row.conduit_id),
    })
}

/// Makes the loser's side hold the winner's content at `path`. A losing file is
/// versioned; a losing directory is refused (its files would all be at stake).
fn take_winner(
    index: &Index,
    wl: &Location,
    we: Option<&Entry>,
    ll: &Location,
    le: Option<&Entry>,
    path: &RelPath,
) -> Result<()> {
    if le.is_some_and(|e| e.state.kind == EntryKind::Dir) {
        return Err(Error::Refused(format!(
            "{} is a folder on the losing side; move it away yourself or use --keep both",
            crate::model::rel_path::escape_os(path.under(&ll.root))
        )));
    }
    match we {
        Some(w) if w.state.kind == EntryKind::Dir => {
            // The losing file goes (versioned); the next sync creates the folder there.
            if let Some(l) = le {
                disk::remove_file(index, ll, path, l, "conflict lost")?;
            }
            Ok(())
        }
        Some(w) => {
            let src = match w.state.kind {
                EntryKind::Symlink => Source::Symlink,
                _ => Source::File(disk::open_source(wl, path, &w.stat())?.0),
            };
            replace_file(index, ll, path, src, w, le)?;
            Ok(())
        }
        None => Err(Error::Refused(format!(
            "{} does not exist on the chosen side",
            crate::model::rel_path::escape_os(path.under(&wl.root))
        ))),
    }
}

/// Renames `e` on `side` to a fresh `name.conflict-…-<side>.ext`; returns that path.
fn move_aside(index: &Index, loc: &Location, e: &Entry, side: Side) -> Result<String> {
    let mut taken: HashSet<String> = index
        .entries(loc.id())?
        .into_iter()
        .map(|e| e.path.as_str().to_string())
        .collect();
    let aside = loop {
        let p = crate::plan::conflict_name::conflict_name(
            &mut taken,
            &|_| false,
            crate::index::unix_now(),
            &e.path,
            side,
        );
        if std::fs::symlink_metadata(p.under(&loc.root)).is_err() {
            break p;
        }
    };
    disk::move_checked(loc, &e.path, e, &aside)?;
    loc.dir()?.sync_all()?;
    Ok(aside.as_str().to_string())
}
