//! The paths a batch of file-system events touched, per root: what a targeted rescan
//! looks at instead of both whole locations.
//!
//! An event's kind is only a hint: the scan lstat's every touched path and judges it by
//! what is on disk, so a rename's old and new paths, a create and a remove are all just
//! "look here". Where an event does not say which paths changed (an unclear kind, no
//! paths, the root itself) the batch widens to a full rescan. Names need not be UTF-8
//! (`RelPath::from_path` takes their bytes).

use ferry_core::model::RelPath;
use ferry_core::replica::{FERRY_DIR, TEMP_PREFIX};
use notify::event::{ModifyKind, RenameMode};
use notify::{Event, EventKind};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// More touched paths than this and a full rescan is cheaper than the path list.
pub const MAX_TOUCHED: usize = 10_000;

/// Touched paths, relative to each root (in the order the roots were watched).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Touched {
    pub sides: Vec<BTreeSet<RelPath>>,
}

/// What a batch of events asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Batch {
    /// Nothing ferry indexes changed (only its own files, or access events).
    Nothing,
    /// Rescan these paths.
    Paths(Touched),
    /// Rescan everything: the events could not be narrowed to paths.
    Full,
}

impl Touched {
    /// Total number of touched paths.
    pub fn len(&self) -> usize {
        self.sides.iter().map(|s| s.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds another batch's paths.
    pub fn merge(&mut self, other: Touched) {
        if self.sides.len() < other.sides.len() {
            self.sides.resize(other.sides.len(), BTreeSet::new());
        }
        for (mine, theirs) in self.sides.iter_mut().zip(other.sides) {
            mine.extend(theirs);
        }
    }

    /// The paths of two sides, as `SyncOptions::only` takes them.
    pub fn into_pair(self) -> [Vec<RelPath>; 2] {
        let mut it = self.sides.into_iter().map(|s| s.into_iter().collect());
        [it.next().unwrap_or_default(), it.next().unwrap_or_default()]
    }

    /// Reads a debounced batch of events on `roots`.
    pub fn from_events<'a>(
        roots: &[PathBuf],
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Batch {
        let mut t = Touched {
            sides: vec![BTreeSet::new(); roots.len()],
        };
        for e in events {
            if e.need_rescan() {
                return Batch::Full;
            }
            if matches!(e.kind, EventKind::Access(_)) {
                continue;
            }
            let paths: Vec<&PathBuf> = e.paths.iter().filter(|p| !is_own_path(roots, p)).collect();
            if paths.is_empty() {
                if e.paths.is_empty() {
                    return Batch::Full; // an event that names nothing
                }
                continue;
            }
            for p in paths {
                let Some((side, rel)) = relative(roots, p) else {
                    continue; // not under a root: nothing of ours
                };
                let rel = if unclear(&e.kind) {
                    rel.parent().map(Path::to_path_buf).unwrap_or_default()
                } else {
                    rel
                };
                if rel.as_os_str().is_empty() {
                    return Batch::Full; // the root itself
                }
                match RelPath::from_path(&rel) {
                    Ok(r) => {
                        t.sides[side].insert(r);
                    }
                    Err(_) => return Batch::Full,
                }
            }
        }
        if t.is_empty() {
            Batch::Nothing
        } else if t.len() > MAX_TOUCHED {
            Batch::Full
        } else {
            Batch::Paths(t)
        }
    }
}

/// Kinds that do not say the event's paths are the ones that changed: look at their
/// parent directories instead.
fn unclear(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Any
            | EventKind::Other
            | EventKind::Modify(ModifyKind::Any | ModifyKind::Other)
            | EventKind::Modify(ModifyKind::Name(RenameMode::Any | RenameMode::Other))
    )
}

/// Which root `p` is under, and the path relative to it.
fn relative(roots: &[PathBuf], p: &Path) -> Option<(usize, PathBuf)> {
    roots
        .iter()
        .enumerate()
        .find_map(|(i, r)| p.strip_prefix(r).ok().map(|rel| (i, rel.to_path_buf())))
}

/// Paths ferry writes for itself: `.ferry/` at a root and temp files anywhere.
pub fn is_own_path(roots: &[PathBuf], p: &Path) -> bool {
    if p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(TEMP_PREFIX))
    {
        return true;
    }
    roots.iter().any(|r| {
        p.strip_prefix(r)
            .ok()
            .and_then(|rel| rel.components().next())
            .is_some_and(|c| c.as_os_str() == FERRY_DIR)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, CreateKind, DataChange, RemoveKind};

    fn ev(kind: EventKind, paths: &[&str]) -> Event {
        let mut e = Event::new(kind);
        for p in paths {
            e = e.add_path(PathBuf::from(p));
        }
        e
    }

    fn roots() -> Vec<PathBuf> {
        vec![PathBuf::from("/r/a"), PathBuf::from("/r/b")]
    }

    fn paths(side_a: &[&str], side_b: &[&str]) -> Batch {
        let set = |v: &[&str]| v.iter().map(|s| RelPath::new(s).unwrap()).collect();
        Batch::Paths(Touched {
            sides: vec![set(side_a), set(side_b)],
        })
    }

    #[test]
    fn own_paths_are_ignored() {
        let roots = roots();
        assert!(is_own_path(&roots, Path::new("/r/a/.ferry/lock")));
        assert!(is_own_path(&roots, Path::new("/r/b/x/.ferry.tmp.f.1")));
        assert!(!is_own_path(&roots, Path::new("/r/a/x/.ferry")));
        assert!(!is_own_path(&roots, Path::new("/r/a/notes.txt")));
    }

    #[test]
    fn events_become_paths_per_root() {
        let events = [
            ev(
                EventKind::Modify(ModifyKind::Data(DataChange::Content)),
                &["/r/a/x/f.txt"],
            ),
            ev(EventKind::Create(CreateKind::Folder), &["/r/b/new"]),
            ev(
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                &["/r/a/old", "/r/a/sub/new"],
            ),
            ev(EventKind::Remove(RemoveKind::File), &["/r/b/gone"]),
            ev(EventKind::Create(CreateKind::File), &["/r/a/.ferry/x"]),
            ev(
                EventKind::Create(CreateKind::File),
                &["/r/a/d/.ferry.tmp.q"],
            ),
            ev(EventKind::Access(AccessKind::Any), &["/r/a/read"]),
            ev(EventKind::Other, &["/r/b/deep/er/thing"]),
        ];
        assert_eq!(
            Touched::from_events(&roots(), &events),
            paths(&["old", "sub/new", "x/f.txt"], &["deep/er", "gone", "new"])
        );
    }

    #[test]
    fn what_cannot_be_narrowed_is_a_full_rescan() {
        let r = roots();
        let unclear_top = ev(EventKind::Any, &["/r/a/top"]);
        assert_eq!(Touched::from_events(&r, [&unclear_top]), Batch::Full);
        let root = ev(EventKind::Remove(RemoveKind::Folder), &["/r/b"]);
        assert_eq!(Touched::from_events(&r, [&root]), Batch::Full);
        let nameless = ev(EventKind::Other, &[]);
        assert_eq!(Touched::from_events(&r, [&nameless]), Batch::Full);
        let lost = ev(EventKind::Other, &[]).set_flag(notify::event::Flag::Rescan);
        assert_eq!(Touched::from_events(&r, [&lost]), Batch::Full);
        let own = ev(EventKind::Create(CreateKind::File), &["/r/a/.ferry/lock"]);
        assert_eq!(Touched::from_events(&r, [&own]), Batch::Nothing);
    }

    #[test]
    fn names_that_are_not_utf8_are_narrowed_too() {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"/r/a/caf\xe9/n\xff.txt");
        let e = Event::new(EventKind::Create(CreateKind::File)).add_path(PathBuf::from(name));
        let want = RelPath::from_bytes(b"caf\xe9/n\xff.txt").unwrap();
        assert_eq!(
            Touched::from_events(&roots(), [&e]),
            Batch::Paths(Touched {
                sides: vec![[want].into(), BTreeSet::new()],
            })
        );
    }
}
