//! Archive mode's removal: A's file goes only once B's copy, re-read from disk, has A's
//! indexed BLAKE3 and A's file still matches its index entry (safety rule 2). Planning
//! and the reasons behind it are in `plan::archive`.

use crate::error::{Error, IoContext, Result};
use crate::fault::FaultPoint;
use crate::index::Index;
use crate::model::entry::{Entry, EntryKind};
use crate::model::rel_path::{encode, RelPath};
use crate::replica::disk;
use crate::replica::fs_ops::blake3_of;
use crate::replica::location::Location;
use std::os::unix::ffi::OsStrExt;

/// Removes A's `path` once B's `archived_as` re-reads with A's indexed content. Returns
/// the bytes freed on A. Any doubt leaves the file on A with an error.
pub(crate) fn remove_archived(
    index: &mut Index,
    a: &Location,
    b: &Location,
    path: &RelPath,
    expected: &Entry,
    archived_as: &RelPath,
    fault: FaultPoint,
) -> Result<u64> {
    let root_b = b.dir()?;
    let (dir_b, name_b) = root_b.parent(archived_as)?;
    if fault == FaultPoint::CorruptArchivedCopy && expected.state.kind == EntryKind::File {
        let on_b = archived_as.under(&b.root);
        std::fs::write(&on_b, b"corrupted by fault injection").ctx("inject fault", &on_b)?;
    }
    verify_copy(&dir_b, &name_b, expected)?;
    remove_source(index, a, path, expected)
}

/// Removes A's `path` once another device (B's location `peer` in the index) has
/// reported `archived_as` with A's content: that device installed it only after its
/// bytes verified against the hash, and made it durable before recording it. `None`
/// (nothing removed) while it has not reported the copy yet. The report is the trusted
/// device's word: ferry cannot read another device's disk.
pub(crate) fn remove_confirmed(
    index: &mut Index,
    a: &Location,
    peer: i64,
    path: &RelPath,
    expected: &Entry,
    archived_as: &RelPath,
) -> Result<Option<u64>> {
    let held = index.entry(peer, archived_as)?;
    // Held there, content and all: a dehydrated copy's bytes are elsewhere.
    let held_here = |e: &Entry| e.state.presence == crate::model::entry::Presence::Live;
    if !held.is_some_and(|e| held_here(&e) && e.same_content(expected)) {
        return Ok(None);
    }
    remove_source(index, a, path, expected).map(Some)
}

/// A's part of an archive removal, once B's copy is known good.
fn remove_source(index: &mut Index, a: &Location, path: &RelPath, expected: &Entry) -> Result<u64> {
    disk::ensure_matches(a, path, Some(expected))?;
    // Forget first: a crash before the removal leaves an unindexed file, never a tombstone.
    index.forget_entries(a.id(), std::slice::from_ref(path))?;
    disk::remove_unkept(a, path, expected)?;
    Ok(if expected.state.kind == EntryKind::File {
        expected.state.size
    } else {
        0
    })
}

/// The copy on B, read back from disk, must carry exactly A's indexed content.
fn verify_copy(
    dir: &crate::replica::beneath::DirHandle,
    name: &std::ffi::OsStr,
    expected: &Entry,
) -> Result<()> {
    let on_b = dir.show(name);
    let found = dir.lstat(name)?;
    let ok = match (expected.state.kind, found) {
        (EntryKind::File, Some(f)) if f.kind == Some(EntryKind::File) => {
            let file = dir.open_file(name)?;
            f.stat.size == expected.state.size
                && Some(blake3_of(&file, &on_b, &mut Vec::new())?) == expected.state.hash
        }
        (EntryKind::Symlink, Some(f)) if f.kind == Some(EntryKind::Symlink) => {
            Some(encode(dir.read_link(name)?.as_bytes())).as_deref()
                == expected.state.link_target.as_deref()
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Refused(format!(
            "the copy at {} does not match the source's content; source kept",
            crate::model::rel_path::escape_os(&on_b)
        )))
    }
}
