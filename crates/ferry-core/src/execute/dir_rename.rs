//! Carrying out a directory rename found by `plan::dir_renames`: re-check the side
//! (index and disk hold exactly the group), one `rename(2)` without replacing anything,
//! then modes and times. See `plan::dir_renames` for which groups are taken and why.

use crate::error::{Error, IoContext, Result};
use crate::index::Index;
use crate::model::entry::{Entry, EntryKind};
use crate::model::rel_path::RelPath;
use crate::plan::dir_renames::DirRename;
use crate::replica::disk;
use crate::replica::location::Location;
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;

/// What became of a directory rename.
#[derive(Debug)]
pub(crate) enum Applied {
    /// Renamed. `entries` are the index rows to record once the rename is durable (each
    /// new path, each old path's tombstone); `errors` are problems met afterwards (a
    /// time or mode that could not be set), which lost nothing.
    Renamed {
        entries: Vec<Entry>,
        errors: Vec<Error>,
    },
    /// The side is not as planned any more, or cannot rename without replacing: the
    /// per-file actions run instead. Nothing was changed.
    FallBack(String),
}

/// Carries out `g` on its side: re-checks index and disk, renames the directory without
/// replacing anything, then brings modes and times to the other side's. An error means
/// the group was not applied and must not be retried file by file this run (an index
/// error, `Error::Db`, stops the run as everywhere in the executor).
pub(crate) fn apply(index: &Index, loc: &Location, g: &DirRename) -> Result<Applied> {
    let want: HashMap<&str, &Entry> = g
        .moves
        .iter()
        .map(|m| (m.expected.path.as_str(), &m.expected))
        .collect();
    if let Err(why) = index_holds(index, loc, &g.from, &want)? {
        return Ok(Applied::FallBack(why));
    }
    let (src, dst) = (g.from.under(&loc.root), g.to.under(&loc.root));
    let root = loc.dir()?;
    let (from_dir, from_name) = root.parent(&g.from)?;
    let (to_dir, to_name) = root.parent(&g.to)?;
    let mut seen = 0;
    if let Err(why) = disk_holds(loc, &g.from, &want, &mut seen) {
        return Ok(Applied::FallBack(why));
    }
    if seen != want.len() {
        return Ok(Applied::FallBack(format!(
            "{} entries of {} are missing on disk",
            want.len() - seen,
            g.from
        )));
    }
    if let Err(e) = from_dir.rename_raw(
        &from_name,
        &to_dir,
        &to_name,
        rustix::fs::RenameFlags::NOREPLACE,
    ) {
        return match e.raw_os_error() {
            Some(libc::EEXIST | libc::ENOTEMPTY) => Err(Error::Changed(format!(
                "{} appeared since the scan; {} left alone, will sync after the next scan",
                dst.display(),
                src.display()
            ))),
            // No RENAME_NOREPLACE on this file system, or a mount point in between.
            Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EXDEV) => Ok(
                Applied::FallBack(format!("cannot rename {} as a whole: {e}", src.display())),
            ),
            _ => Err(e).ctx("rename directory", &dst),
        };
    }
    let mut entries = Vec::with_capacity(2 * g.moves.len());
    let mut errors = Vec::new();
    for m in &g.moves {
        let dir = m.expected.state.kind == EntryKind::Dir;
        // The rename changed nothing below the directory. What differs from the other
        // side is set, as a per-file mkdir (mode) or rename (mtime) would set it.
        let set = if dir && m.expected.state.mode != m.source.state.mode {
            Some(disk::chmod(loc, &m.to, m.source.state.mode))
        } else if !dir && m.expected.state.mtime_ns != m.source.state.mtime_ns {
            Some(disk::set_mtime(loc, &m.to, m.source.state.mtime_ns))
        } else {
            None
        };
        let was_set = set.is_some();
        if let Some(Err(e)) = set {
            errors.push(e);
        }
        // Directories are read again (the renamed one's ctime moved), and what was set.
        let stat = if dir || was_set {
            disk::lstat(loc, &m.to).unwrap_or_else(|e| {
                errors.push(e);
                m.expected.stat()
            })
        } else {
            m.expected.stat()
        };
        let mut moved = Entry::landed(&m.to, &m.source, stat, &m.version);
        // Not read since it was racy: the next scan must still hash it.
        moved.cache.racy = m.expected.cache.racy;
        entries.push(moved);
        entries.push(m.expected.tombstone(&m.from_version));
    }
    Ok(Applied::Renamed { entries, errors })
}

/// Whether the index of `loc` holds, at and below `from`, exactly the live entries of
/// `want` with their planned stat (else why not).
fn index_holds(
    index: &Index,
    loc: &Location,
    from: &RelPath,
    want: &HashMap<&str, &Entry>,
) -> Result<std::result::Result<(), String>> {
    let mut live = 0;
    for r in index.stat_rows_under(loc.id(), from)? {
        if r.deleted {
            continue;
        }
        match want.get(r.path.as_str()) {
            Some(e)
                if e.state.kind == r.kind
                    && (e.state.kind == EntryKind::Dir || e.stat() == r.stat) =>
            {
                live += 1
            }
            _ => {
                return Ok(Err(format!(
                    "the index holds {} otherwise than planned",
                    r.path
                )))
            }
        }
    }
    if live != want.len() {
        return Ok(Err(format!("the index no longer holds all of {from}")));
    }
    Ok(Ok(()))
}

/// The disk of `loc` holds, at and below `dir`, only entries of `want`, each as
/// indexed (`ensure_disk_matches`); counts them in `seen`. Else why not.
fn disk_holds(
    loc: &Location,
    dir: &RelPath,
    want: &HashMap<&str, &Entry>,
    seen: &mut usize,
) -> std::result::Result<(), String> {
    let expected = want
        .get(dir.as_str())
        .ok_or_else(|| format!("{dir} is not part of the move"))?;
    disk::ensure_matches(loc, dir, Some(expected)).map_err(|e| e.to_string())?;
    *seen += 1;
    if expected.state.kind != EntryKind::Dir {
        return Ok(());
    }
    let items = loc
        .dir()
        .and_then(|r| r.dir(dir.as_str()))
        .and_then(|d| d.names())
        .map_err(|e| e.to_string())?;
    for name in items {
        let key = crate::model::rel_path::encode(name.as_bytes());
        let child = dir.join(&key).map_err(|e| e.to_string())?;
        disk_holds(loc, &child, want, seen)?;
    }
    Ok(())
}
