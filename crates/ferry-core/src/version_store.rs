//! The version store: before ferry overwrites or deletes anything, the old content is
//! kept under `.ferry/versions/` (safety rule 3), recorded in the index, restorable.
//!
//! Keeping a version is a hard link when the file system allows (no bytes copied, and
//! the path itself is untouched until the atomic rename or unlink that follows).

use crate::entry::{Entry, EntryKind};
use crate::error::{IoContext, Result};
use crate::ignore_rules::FERRY_DIR;
use crate::index::Index;
use crate::location::Location;
use crate::rel_path::{key_under, shorten_name, RelPath, NAME_MAX};
use std::path::Path;

/// Keeps the current disk content of `rel` (described by `entry`) as a version.
/// Returns the stored path, relative to the location root.
pub fn preserve(
    index: &Index,
    loc: &Location,
    rel: &RelPath,
    entry: &Entry,
    reason: &str,
) -> Result<String> {
    let abs = rel.under(&loc.root);
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S-%9f").to_string();
    // Room for "~stamp" and a "-N" counter within the file-name limit. The stored
    // path is a key like `rel`'s (a name that is not UTF-8 keeps its bytes on disk).
    let name = shorten_name(rel.file_name(), NAME_MAX - stamp.len() - 6);
    let dir = rel
        .parent()
        .map(|p| format!("{}/", p.as_str()))
        .unwrap_or_default();
    let base = format!("{FERRY_DIR}/versions/{dir}{name}~{stamp}");
    let mut stored = base.clone();
    let mut n = 1;
    while std::fs::symlink_metadata(key_under(&loc.root, &stored)).is_ok() {
        n += 1;
        stored = format!("{base}-{n}");
    }
    let dest = key_under(&loc.root, &stored);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).ctx("create version folder", parent)?;
    }
    keep(&abs, &dest, entry.kind)?;
    index.insert_version(
        loc.id(),
        rel,
        &stored,
        entry.stat.size,
        entry.hash.as_ref(),
        entry.stat.mtime_ns,
        reason,
    )?;
    Ok(stored)
}

fn keep(src: &Path, dest: &Path, kind: EntryKind) -> Result<()> {
    if std::fs::hard_link(src, dest).is_ok() {
        return Ok(());
    }
    match kind {
        EntryKind::Symlink => {
            let target = std::fs::read_link(src).ctx("read symlink", src)?;
            std::os::unix::fs::symlink(target, dest).ctx("keep symlink version", dest)
        }
        _ => std::fs::copy(src, dest)
            .map(|_| ())
            .ctx("keep version copy", dest),
    }
}
