//! Telling the daemon's own writes from changes.
//!
//! A run's writes (files installed, folders made, files moved into the version store)
//! come back as file-system events once the run is over. A path an event names whose
//! disk state is exactly what the index holds for it — the state that run recorded —
//! has nothing new to sync, so it queues no run. Only an exact match counts: same kind
//! and stat (size, mtime, ctime and inode for files and links, which any write
//! changes; mode for folders) for the path and everything below it, no row marked racy,
//! nothing on disk the index does not know (an ignored file counts as unknown) and
//! nothing indexed missing. Any doubt keeps the path, and its targeted run decides as
//! before.

use ferry_core::index::{Index, StatRow};
use ferry_core::model::{encode, RelPath};
use ferry_core::model::{kind_of, EntryKind, StatInfo};
use ferry_core::replica::TEMP_PREFIX;
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Beyond this many entries below one touched path, the check gives up (keeps it).
const MAX_ENTRIES: usize = 10_000;

/// Whether the disk at `path` of the location rooted at `root`, and everything below
/// it, is what the index holds.
pub fn in_step(index: &Index, location: i64, root: &Path, path: &RelPath) -> bool {
    let Ok(rows) = index.stat_rows_under(location, path) else {
        return false;
    };
    if rows.len() > MAX_ENTRIES || rows.iter().any(|r| r.racy && !r.deleted) {
        return false;
    }
    // A dehydrated file is absent on disk by design (files on demand).
    let live: HashMap<&str, &StatRow> = (rows.iter())
        .filter(|r| !r.deleted && !r.dehydrated)
        .map(|r| (r.path.as_str(), r))
        .collect();
    let meta = match std::fs::symlink_metadata(path.under(root)) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return live.is_empty(),
        Err(_) => return false,
    };
    let mut seen = 0;
    let mut stack = vec![(path.clone(), meta)];
    while let Some((rel, meta)) = stack.pop() {
        let Some(row) = live.get(rel.as_str()) else {
            return false; // not indexed (new, or ignored on this side)
        };
        let Some(kind) = kind_of(&meta) else {
            return false;
        };
        if row.kind != kind || !same_stat(kind, &row.stat, &StatInfo::from_metadata(&meta)) {
            return false;
        }
        seen += 1;
        if kind != EntryKind::Dir {
            continue;
        }
        let Ok(items) = std::fs::read_dir(rel.under(root)) else {
            return false;
        };
        for item in items {
            let Ok(item) = item else {
                return false;
            };
            let name = item.file_name();
            if name.as_bytes().starts_with(TEMP_PREFIX.as_bytes()) {
                continue; // ferry's own temp files are never indexed
            }
            let (Ok(child), Ok(meta)) = (rel.join(&encode(name.as_bytes())), item.metadata())
            else {
                return false;
            };
            stack.push((child, meta));
            if stack.len() + seen > MAX_ENTRIES {
                return false;
            }
        }
    }
    seen == live.len()
}

/// The stat a scan would compare (see ferry-core's scan): a folder's own content is its
/// mode; its mtime moves with its children.
fn same_stat(kind: EntryKind, indexed: &StatInfo, now: &StatInfo) -> bool {
    match kind {
        EntryKind::Dir => indexed.mode == now.mode,
        _ => indexed == now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::model::Entry;

    fn entry(root: &Path, rel: &str) -> Entry {
        let meta = std::fs::symlink_metadata(root.join(rel)).unwrap();
        let kind = kind_of(&meta).unwrap();
        Entry::on_disk(RelPath::new(rel).unwrap(), kind, &meta)
    }

    #[test]
    fn recorded_state_is_in_step_and_any_change_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("d/e")).unwrap();
        std::fs::write(root.join("d/e/f.txt"), "one").unwrap();
        std::fs::write(root.join("g.txt"), "two").unwrap();
        let mut index = Index::open_in_memory().unwrap();
        let loc = index.insert_location("u", root, 1).unwrap();
        let rows: Vec<Entry> = ["d", "d/e", "d/e/f.txt", "g.txt"]
            .iter()
            .map(|p| entry(root, p))
            .collect();
        index.put_entries(loc.id, &rows).unwrap();
        let p = |s: &str| RelPath::new(s).unwrap();
        let check = |index: &Index, s: &str| in_step(index, loc.id, root, &p(s));
        assert!(check(&index, "d"));
        assert!(check(&index, "d/e/f.txt"));
        assert!(check(&index, "g.txt"));
        assert!(
            check(&index, "never-there"),
            "absent on disk and in the index"
        );

        // A new file below a folder: the folder is not in step.
        std::fs::write(root.join("d/e/new.txt"), "x").unwrap();
        assert!(!check(&index, "d"));
        assert!(!check(&index, "d/e/new.txt"));
        std::fs::remove_file(root.join("d/e/new.txt")).unwrap();
        assert!(check(&index, "d"));
        // ferry's temp files do not count.
        std::fs::write(root.join(format!("d/{TEMP_PREFIX}x.1")), "t").unwrap();
        assert!(check(&index, "d"));

        // A rewrite (even of the same bytes) changes the ctime.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(root.join("g.txt"), "two").unwrap();
        assert!(!check(&index, "g.txt"));
        // A file gone that the index holds live.
        std::fs::remove_file(root.join("d/e/f.txt")).unwrap();
        assert!(!check(&index, "d/e/f.txt"));
        assert!(!check(&index, "d"));
        // Once recorded as deleted, its absence is in step.
        let mut gone = rows[2].clone();
        gone.state.presence = ferry_core::model::Presence::Tombstone;
        index.put_entries(loc.id, &[gone]).unwrap();
        assert!(check(&index, "d/e/f.txt"));
        assert!(check(&index, "d"));
        // A racy row is never taken as in step.
        let mut racy = entry(root, "g.txt");
        racy.cache.racy = true;
        index.put_entries(loc.id, &[racy]).unwrap();
        assert!(!check(&index, "g.txt"));
    }
}
