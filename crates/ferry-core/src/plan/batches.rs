//! Planning a large run a bounded number of paths at a time, so memory does not grow
//! with the tree (issue 17).
//!
//! Both replicas are read in path order, one page of paths at a time
//! ([`PathBatches`]); each page is reconciled on its own. That gives the plan the whole
//! run would get only while nothing in it needs a fact about paths outside the page:
//! renames pair a deletion with a creation anywhere in the tree, whole-directory renames
//! and the mass-deletion stop count deletions, and a directory that is deleted (or
//! turned into a file) on one side depends on what survives below it. So a page is
//! *admitted* ([`BatchCheck`]) only when its plan copies, makes directories, records and
//! deletes files none of which could pair with a file elsewhere into a rename (an index
//! look-up by content), nothing else, and no path in it lies below a directory an
//! earlier page left in doubt. The mass-deletion stop counts the deletions of every
//! page before the first one runs.
//! A run with a page that is not admitted is planned whole, as before: memory then
//! grows with what changed, the behaviour is the same.
//!
//! Paths sort so that a directory comes before everything below it (`a` < `a/b`), and
//! everything below it is one contiguous range (`a/` … `a/\u{10ffff}`); so a page never
//! needs a directory made by a later page.

use crate::error::Result;
use crate::model::entry::{Entry, EntryKind};
use crate::model::rel_path::RelPath;
use crate::plan::{Action, Plan};
use crate::replica::view::ReplicaView;
use std::collections::HashSet;

/// Paths planned and run per batch unless a run asks for another number.
pub(crate) const DEFAULT_BATCH_PATHS: usize = 20_000;

/// Directories left in doubt before a run is planned whole instead (see [`BatchCheck`]).
const IN_DOUBT_LIMIT: usize = 50_000;

/// Walks two replicas in path order, a page of paths at a time.
pub(crate) struct PathBatches {
    size: usize,
    /// Only paths whose row changed on either side after these sequences (the
    /// conduit's convergence point); every path without one.
    point: Option<(u64, u64)>,
    /// The last path of the previous page.
    after: Option<RelPath>,
    finished: bool,
}

impl PathBatches {
    pub(crate) fn new(size: usize, point: Option<(u64, u64)>) -> PathBatches {
        PathBatches {
            size: size.max(1),
            point,
            after: None,
            finished: false,
        }
    }

    /// Both sides' entries at the next page of paths (each sorted by path), or `None`
    /// when every path was given. A page holds at most `size` paths of each side.
    pub(crate) fn next_batch(
        &mut self,
        [va, vb]: [&dyn ReplicaView; 2],
    ) -> Result<Option<(Vec<Entry>, Vec<Entry>)>> {
        loop {
            if self.finished {
                return Ok(None);
            }
            let mut ea = va.entries_page(self.after.as_ref(), self.size)?;
            let mut eb = vb.entries_page(self.after.as_ref(), self.size)?;
            // A full page may have more rows after it: the batch ends where the first
            // full page ends, and the other side's rows beyond that wait for the next.
            let end = [&ea, &eb]
                .into_iter()
                .filter(|page| page.len() >= self.size)
                .filter_map(|page| page.last())
                .map(|e| e.path.clone())
                .min();
            match end {
                Some(end) => {
                    ea.retain(|e| e.path <= end);
                    eb.retain(|e| e.path <= end);
                    self.after = Some(end);
                }
                None => self.finished = true,
            }
            if let Some((pa, pb)) = self.point {
                keep_changed(&mut ea, &mut eb, pa, pb);
            }
            if !ea.is_empty() || !eb.is_empty() {
                return Ok(Some((ea, eb)));
            }
        }
    }
}

/// Keeps the paths whose row changed after `pa` on A or after `pb` on B, on both sides.
fn keep_changed(ea: &mut Vec<Entry>, eb: &mut Vec<Entry>, pa: u64, pb: u64) {
    let changed: HashSet<RelPath> = (ea.iter().filter(|e| e.cache.sequence > pa))
        .chain(eb.iter().filter(|e| e.cache.sequence > pb))
        .map(|e| e.path.clone())
        .collect();
    ea.retain(|e| changed.contains(&e.path));
    eb.retain(|e| changed.contains(&e.path));
}

/// Decides, page by page, whether a run can be planned and run in batches.
#[derive(Debug, Default)]
pub(crate) struct BatchCheck {
    /// Directories whose fate may depend on what lies below them in later pages: a
    /// directory that is not a live directory on every side that has the path.
    in_doubt: HashSet<String>,
}

impl BatchCheck {
    /// Whether the plan of the page `ea`/`eb` is what planning the whole run would
    /// give for those paths, so it may run before the rest is planned. `false` means
    /// the run must be planned whole.
    ///
    /// A file's deletion is admitted when `renamable` says no file elsewhere could be
    /// its new name (the whole plan would pair the two into a rename); the mass-deletion
    /// stop counts deletions over all pages (`batched.rs`).
    pub(crate) fn admits(
        &mut self,
        ea: &[Entry],
        eb: &[Entry],
        plan: &Plan,
        renamable: &dyn Fn(&Entry, crate::plan::Side) -> Result<bool>,
    ) -> Result<bool> {
        let simple = plan.actions.iter().all(|a| match a {
            Action::Copy { .. } | Action::Mkdir { .. } | Action::Record { .. } => true,
            Action::Delete { expected, .. } => expected.state.kind == EntryKind::File,
            _ => false,
        });
        if !simple {
            return Ok(false);
        }
        for a in &plan.actions {
            if let Action::Delete { side, expected, .. } = a {
                if renamable(expected, *side)? {
                    return Ok(false);
                }
            }
        }
        // Something alive below a directory in doubt decides that directory's fate,
        // which an earlier page already planned without it.
        if !self.in_doubt.is_empty() {
            let below_doubt =
                |e: &Entry| e.is_live() && e.path.ancestors().any(|a| self.in_doubt.contains(a));
            if ea.iter().chain(eb).any(below_doubt) {
                return Ok(false);
            }
        }
        let settled_dir =
            |e: Option<&Entry>| e.is_none_or(|e| e.is_live() && e.state.kind == EntryKind::Dir);
        let (mut i, mut j) = (0, 0);
        while i < ea.len() || j < eb.len() {
            let (a, b) = match (ea.get(i), eb.get(j)) {
                (Some(a), Some(b)) if a.path == b.path => (Some(a), Some(b)),
                (Some(a), Some(b)) if a.path < b.path => (Some(a), None),
                (Some(_), Some(b)) => (None, Some(b)),
                (a, b) => (a, b),
            };
            i += usize::from(a.is_some());
            j += usize::from(b.is_some());
            let any_dir = [a, b]
                .into_iter()
                .flatten()
                .any(|e| e.state.kind == EntryKind::Dir);
            if any_dir && !(settled_dir(a) && settled_dir(b)) {
                let path = a.or(b).map(|e| e.path.as_str().to_string());
                self.in_doubt.extend(path);
            }
        }
        Ok(self.in_doubt.len() <= IN_DOUBT_LIMIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Index;
    use crate::model::entry::StatInfo;
    use crate::replica::view::IndexedReplica;

    fn file(path: &str, seq: u64) -> Entry {
        let mut e = Entry::at(
            RelPath::new(path).unwrap(),
            EntryKind::File,
            StatInfo::default(),
        );
        e.cache.sequence = seq;
        e
    }

    fn dir(path: &str) -> Entry {
        Entry::at(
            RelPath::new(path).unwrap(),
            EntryKind::Dir,
            StatInfo::default(),
        )
    }

    fn paths(v: &[Entry]) -> Vec<&str> {
        v.iter().map(|e| e.path.as_str()).collect()
    }

    /// Every page of two replicas, with page size `size`.
    fn pages(a: &[&str], b: &[&str], size: usize) -> Vec<(Vec<String>, Vec<String>)> {
        let mut index = Index::open_in_memory().unwrap();
        let la = index
            .insert_location("ua", std::path::Path::new("/a"), 1)
            .unwrap()
            .id;
        let lb = index
            .insert_location("ub", std::path::Path::new("/b"), 2)
            .unwrap()
            .id;
        let ea: Vec<Entry> = a.iter().map(|p| file(p, 1)).collect();
        let eb: Vec<Entry> = b.iter().map(|p| file(p, 1)).collect();
        index.put_entries(la, &ea).unwrap();
        index.put_entries(lb, &eb).unwrap();
        let (va, vb) = (
            IndexedReplica::new(&index, la),
            IndexedReplica::new(&index, lb),
        );
        let mut batches = PathBatches::new(size, None);
        let mut out = Vec::new();
        while let Some((x, y)) = batches.next_batch([&va, &vb]).unwrap() {
            assert!(x.len() <= size && y.len() <= size, "page over its size");
            out.push((
                paths(&x).into_iter().map(String::from).collect(),
                paths(&y).into_iter().map(String::from).collect(),
            ));
        }
        out
    }

    #[test]
    fn pages_cover_every_path_once_in_order_whatever_the_size() {
        let a = ["a", "a-x", "a/b", "a/c", "d", "e/f"];
        let b = ["a", "a/b", "b", "c", "e", "e/f", "e/g", "z"];
        for size in 1..=10 {
            let got = pages(&a, &b, size);
            let all_a: Vec<String> = got.iter().flat_map(|p| p.0.clone()).collect();
            let all_b: Vec<String> = got.iter().flat_map(|p| p.1.clone()).collect();
            assert_eq!(all_a, a, "side A with pages of {size}");
            assert_eq!(all_b, b, "side B with pages of {size}");
            // A path present on both sides is in the same page on both.
            for (x, y) in &got {
                for p in x {
                    if b.contains(&p.as_str()) {
                        assert!(y.contains(p), "{p} split across pages (size {size})");
                    }
                }
            }
        }
    }

    #[test]
    fn with_a_point_only_paths_changed_on_either_side_are_given() {
        let mut index = Index::open_in_memory().unwrap();
        let la = index
            .insert_location("ua", std::path::Path::new("/a"), 1)
            .unwrap()
            .id;
        let lb = index
            .insert_location("ub", std::path::Path::new("/b"), 2)
            .unwrap()
            .id;
        index
            .put_entries(la, &[file("a", 5), file("b", 1), file("c", 1)])
            .unwrap();
        index
            .put_entries(lb, &[file("a", 1), file("b", 1), file("c", 9)])
            .unwrap();
        let (va, vb) = (
            IndexedReplica::new(&index, la),
            IndexedReplica::new(&index, lb),
        );
        for size in 1..=4 {
            let mut batches = PathBatches::new(size, Some((2, 2)));
            let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
            while let Some((x, y)) = batches.next_batch([&va, &vb]).unwrap() {
                got_a.extend(paths(&x).into_iter().map(String::from));
                got_b.extend(paths(&y).into_iter().map(String::from));
            }
            assert_eq!(got_a, ["a", "c"], "size {size}");
            assert_eq!(got_b, ["a", "c"], "size {size}");
        }
    }

    fn copy(e: &Entry) -> Action {
        Action::Copy {
            to: crate::plan::Side::B,
            path: e.path.clone(),
            source: Box::new(e.clone()),
            expected: None,
            version: Default::default(),
        }
    }

    /// No rename candidate anywhere.
    fn never(_: &Entry, _: crate::plan::Side) -> Result<bool> {
        Ok(false)
    }

    fn deleting(e: &Entry) -> Plan {
        Plan {
            actions: vec![Action::Delete {
                side: crate::plan::Side::B,
                path: e.path.clone(),
                expected: Box::new(e.clone()),
                version: Default::default(),
            }],
            conflicts: vec![],
        }
    }

    #[test]
    fn copies_mkdirs_records_and_unpairable_file_deletions_run_in_batches() {
        let f = file("x", 1);
        let mut check = BatchCheck::default();
        let plan = Plan {
            actions: vec![copy(&f)],
            conflicts: vec![],
        };
        assert!(check
            .admits(std::slice::from_ref(&f), &[], &plan, &never)
            .unwrap());
        // A file's deletion: only when nothing could be its new name.
        let delete = deleting(&f);
        let one = std::slice::from_ref(&f);
        assert!(BatchCheck::default()
            .admits(&[], one, &delete, &never)
            .unwrap());
        let asked = std::cell::Cell::new(0);
        let pairs = |e: &Entry, side: crate::plan::Side| {
            asked.set(asked.get() + 1);
            assert_eq!((e.path.as_str(), side), ("x", crate::plan::Side::B));
            Ok(true)
        };
        assert!(!BatchCheck::default()
            .admits(&[], one, &delete, &pairs)
            .unwrap());
        assert_eq!(asked.get(), 1);
        // A directory's deletion depends on what is below it: never.
        let d = dir("d");
        let one = std::slice::from_ref(&d);
        assert!(!BatchCheck::default()
            .admits(&[], one, &deleting(&d), &never)
            .unwrap());
    }

    #[test]
    fn a_live_path_below_a_directory_in_doubt_stops_batching() {
        let mut check = BatchCheck::default();
        // Page 1: `d` is a directory on A and deleted on B.
        let d = dir("d");
        let mut gone = dir("d");
        gone.state.presence = crate::model::entry::Presence::Tombstone;
        assert!(check
            .admits(
                std::slice::from_ref(&d),
                std::slice::from_ref(&gone),
                &Plan::default(),
                &never
            )
            .unwrap());
        // Page 2: a sibling that only sorts between them is no concern …
        let sibling = file("d-x", 1);
        assert!(check
            .admits(
                std::slice::from_ref(&sibling),
                &[],
                &Plan::default(),
                &never
            )
            .unwrap());
        // … a live file below `d` is.
        let below = file("d/f", 1);
        assert!(!check
            .admits(std::slice::from_ref(&below), &[], &Plan::default(), &never)
            .unwrap());
        // A directory live on both sides leaves nothing in doubt.
        let mut check = BatchCheck::default();
        assert!(check
            .admits(
                std::slice::from_ref(&d),
                std::slice::from_ref(&d),
                &Plan::default(),
                &never
            )
            .unwrap());
        assert!(check
            .admits(std::slice::from_ref(&below), &[], &Plan::default(), &never)
            .unwrap());
    }
}
