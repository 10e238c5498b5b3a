//! Version history of a path and restoring one version.
//!
//! A restore writes through the same safe path as a sync (verified temp file, current
//! content versioned first, atomic rename) and leaves the index alone: to ferry it is an
//! ordinary local edit, which the next sync scans and propagates like any other.

use crate::error::{Error, IoContext, Result};
use crate::execute::replace_file;
use crate::index::{Index, LocationRow, VersionRow};
use crate::model::entry::{kind_of, Entry, EntryKind};
use crate::model::rel_path::RelPath;
use crate::replica::disk::Source;
use crate::replica::fs_ops::blake3_file;
use crate::replica::ignore_rules::FERRY_DIR;
use crate::replica::location::Location;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// A version, with the location whose store holds it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionInfo {
    #[serde(flatten)]
    pub row: VersionRow,
    /// Root of the location whose `.ferry/versions/` holds it.
    pub location: PathBuf,
}

/// Absolute, normalised form of `path` with symlinks resolved above its last component,
/// so a path that no longer exists (a deleted file, even a deleted folder) still resolves
/// and a symlink at the end stays the symlink itself.
fn absolute(path: &Path) -> Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .ctx("read current directory", ".")?
            .join(path)
    };
    let mut abs = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                abs.pop();
            }
            Component::CurDir => {}
            other => abs.push(other),
        }
    }
    let name = abs.file_name().map(|n| n.to_os_string()).ok_or_else(|| {
        Error::Other(format!(
            "{} names no file",
            crate::model::rel_path::escape_os(path)
        ))
    })?;
    let mut existing = abs.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut missing = Vec::new();
    while std::fs::symlink_metadata(&existing).is_err() {
        match (existing.file_name(), existing.parent()) {
            (Some(n), Some(p)) => {
                missing.push(n.to_os_string());
                existing = p.to_path_buf();
            }
            _ => break,
        }
    }
    let mut out = std::fs::canonicalize(&existing).ctx("resolve", &existing)?;
    out.extend(missing.iter().rev());
    out.push(name);
    Ok(out)
}

/// The location holding `path` (which need not exist) and the path inside it.
pub(crate) fn locate(index: &Index, path: &Path) -> Result<(LocationRow, RelPath)> {
    let abs = absolute(path)?;
    let best = index
        .locations()?
        .into_iter()
        .filter(|l| abs.starts_with(&l.root) && abs != l.root)
        .max_by_key(|l| l.root.as_os_str().len());
    let Some(loc) = best else {
        return Err(Error::Other(format!(
            "{} is not inside a folder ferry syncs",
            crate::model::rel_path::escape_os(&abs)
        )));
    };
    let rel = RelPath::from_path(abs.strip_prefix(&loc.root).unwrap_or(&abs))?;
    if rel.as_str() == FERRY_DIR || rel.as_str().starts_with(&format!("{FERRY_DIR}/")) {
        return Err(Error::Other(format!(
            "{} is inside ferry's own {FERRY_DIR} folder",
            crate::model::rel_path::escape_os(&abs)
        )));
    }
    Ok((loc, rel))
}

/// Locations paired with `location` by a conduit, and itself.
fn partners(index: &Index, location: &LocationRow) -> Result<Vec<LocationRow>> {
    let mut out = vec![location.clone()];
    for c in index.conduits()? {
        let other = if c.location_a == location.id {
            c.location_b
        } else if c.location_b == location.id {
            c.location_a
        } else {
            continue;
        };
        if !out.iter().any(|l| l.id == other) {
            out.push(index.location(other)?);
        }
    }
    Ok(out)
}

/// Earlier contents of `path`, kept in its own location or in any location synced with
/// it (the same relative path), newest first.
pub fn versions_of_path(index: &Index, path: &Path) -> Result<Vec<VersionInfo>> {
    let (loc, rel) = locate(index, path)?;
    let mut out = Vec::new();
    for l in partners(index, &loc)? {
        for row in index.versions_of(l.id, &rel)? {
            out.push(VersionInfo {
                row,
                location: l.root.clone(),
            });
        }
    }
    out.sort_by_key(|v| std::cmp::Reverse((v.row.created_at, v.row.id)));
    Ok(out)
}

/// What a restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreOutcome {
    pub version: i64,
    #[serde(serialize_with = "crate::model::rel_path::serialize_os_path")]
    pub restored_to: PathBuf,
    /// Whether something was replaced (and kept as a version first).
    pub replaced_kept: bool,
    /// Whether the target is inside a synced folder (so the next sync carries it over).
    pub in_synced_folder: bool,
}

/// Brings version `id` of `path` back, to `path` itself or to `to`. The target must be
/// inside a folder ferry syncs (so what it replaces can be versioned), or not exist yet.
pub fn restore(index: &Index, path: &Path, id: i64, to: Option<&Path>) -> Result<RestoreOutcome> {
    let version = versions_of_path(index, path)?
        .into_iter()
        .find(|v| v.row.id == id)
        .ok_or_else(|| {
            Error::Other(format!(
                "{} has no version {id}; see `ferry versions {}`",
                crate::model::rel_path::escape_os(path),
                crate::model::rel_path::escape_os(path)
            ))
        })?;
    let stored_rel = RelPath::new(&version.row.stored_path)?;
    if !stored_rel
        .as_str()
        .starts_with(&format!("{FERRY_DIR}/versions/"))
    {
        return Err(Error::Corrupt(format!(
            "version {id} is recorded outside the version store"
        )));
    }
    let stored = stored_rel.under(&version.location);
    let meta = std::fs::symlink_metadata(&stored).ctx("open version", &stored)?;
    let target = to.unwrap_or(path);
    let source_entry = |rel: RelPath| -> Result<Entry> {
        let kind = kind_of(&meta)
            .filter(|k| *k != EntryKind::Dir)
            .ok_or_else(|| Error::Corrupt(format!("version {id} is not a file")))?;
        let link_target = match kind {
            EntryKind::Symlink => Some(
                crate::model::rel_path::encode(
                    std::fs::read_link(&stored)
                        .ctx("read version", &stored)?
                        .as_os_str()
                        .as_bytes(),
                )
                .into_owned(),
            ),
            _ => None,
        };
        let hash = match (kind, version.row.hash) {
            (EntryKind::File, Some(h)) => Some(h),
            (EntryKind::File, None) => Some(blake3_file(&stored, &mut Vec::new())?),
            _ => link_target
                .as_deref()
                .map(|t| crate::model::chunk::Hash::of(&crate::model::rel_path::decode(t))),
        };
        let mut e = Entry::on_disk(rel, kind, &meta);
        e.state.hash = hash;
        e.state.link_target = link_target;
        Ok(e)
    };
    match locate(index, target) {
        Ok((row, rel)) => {
            let loc = Location::from_row(row);
            loc.verify_marker()?;
            let _lock = loc.lock()?;
            make_parents(&loc, &rel)?;
            let abs = rel.under(&loc.root);
            let current = current_entry(&loc, &rel)?;
            let entry = source_entry(rel.clone())?;
            let src = match entry.state.kind {
                EntryKind::Symlink => Source::Symlink,
                _ => {
                    let store = crate::replica::beneath::RootDir::open(&version.location)?;
                    let (dir, name) = store.parent(&stored_rel)?;
                    Source::File(dir.open_file(&name)?)
                }
            };
            replace_file(index, &loc, &rel, src, &entry, current.as_ref())?;
            Ok(RestoreOutcome {
                version: id,
                restored_to: abs,
                replaced_kept: current.is_some(),
                in_synced_folder: true,
            })
        }
        Err(_) if to.is_some() => {
            // Outside every location: only onto a free path, since nothing could keep
            // what it would replace.
            let abs = absolute(target)?;
            if std::fs::symlink_metadata(&abs).is_ok() {
                return Err(Error::Refused(format!(
                    "{} exists and is outside the folders ferry syncs; choose a free path",
                    crate::model::rel_path::escape_os(&abs)
                )));
            }
            let dir = abs
                .parent()
                .ok_or_else(|| Error::Other("restore target has no parent".into()))?;
            std::fs::create_dir_all(dir).ctx("create folder", dir)?;
            let tmp = abs.with_file_name(crate::replica::fs_ops::random_temp_name("ferry-restore"));
            let copied = std::fs::copy(&stored, &tmp).ctx("copy version", &tmp);
            let verified = copied.and_then(|_| {
                let got = blake3_file(&tmp, &mut Vec::new())?;
                if version.row.hash.is_some_and(|h| h != got) {
                    return Err(Error::Corrupt(format!(
                        "version {id} does not match its recorded hash"
                    )));
                }
                std::fs::File::open(&tmp)
                    .and_then(|f| f.sync_all())
                    .ctx("fsync", &tmp)?;
                std::fs::rename(&tmp, &abs).ctx("install", &abs)
            });
            if let Err(e) = verified {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            Ok(RestoreOutcome {
                version: id,
                restored_to: abs,
                replaced_kept: false,
                in_synced_folder: false,
            })
        }
        Err(e) => Err(e),
    }
}

/// Creates the missing folders above `rel` (a restore into a deleted folder), never
/// through a symlink.
fn make_parents(loc: &Location, rel: &RelPath) -> Result<()> {
    let mut dir = loc.dir()?.top()?;
    if let Some(parent) = rel.parent() {
        for comp in parent.as_str().split('/') {
            let name = crate::model::rel_path::decode_os(comp);
            dir = dir.subdir_or_create(&name, 0o755)?;
        }
    }
    Ok(())
}

/// What is at `rel` now, as an entry the version store can keep (`None` if nothing).
fn current_entry(loc: &Location, rel: &RelPath) -> Result<Option<Entry>> {
    let (dir, name) = loc.dir()?.parent(rel)?;
    let Some(found) = dir.lstat(&name)? else {
        return Ok(None);
    };
    let kind = match found.kind {
        Some(EntryKind::Dir) | None => {
            return Err(Error::Refused(format!(
                "{} is a folder or special file; not replacing it",
                crate::model::rel_path::escape_os(dir.show(&name))
            )))
        }
        Some(k) => k,
    };
    let hash = match kind {
        EntryKind::File => Some(crate::replica::fs_ops::blake3_of(
            &dir.open_file(&name)?,
            &dir.show(&name),
            &mut Vec::new(),
        )?),
        _ => None,
    };
    let mut e = Entry::at(rel.clone(), kind, found.stat);
    e.state.hash = hash;
    Ok(Some(e))
}
