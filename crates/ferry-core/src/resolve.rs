//! Settling conflicts the user was asked about (`--conflict manual`).
//!
//! The choice is applied on disk with the sync's safety rules — the disk must still match
//! what the conflict was recorded from, the losing content goes to the version store (or
//! stays visible beside the winner with `both`), writes are verified temp files renamed
//! into place — and the conflict row is marked settled. The index is left alone: the
//! next sync scans the change and converges (same content on both sides merges the
//! version vectors; a loser moved aside is a plain rename plus a new file).

use crate::error::{Error, Result};
use crate::execute::replace_file;
use crate::index::{ConflictRow, Index, Resolution};
use crate::model::entry::{Entry, EntryKind};
use crate::model::rel_path::RelPath;
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
    Both,
    /// The one with the later mtime (ties: side A).
    Newest,
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
        Keep::Both | Keep::Newest => {
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
