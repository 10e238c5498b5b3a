//! A whole-location walk that hands out what it sees in path order — the index's key
//! order — so a scan can merge it with the index's rows as it goes and hold a window
//! of the tree, not all of it.
//!
//! Order: a directory's children sorted by name, where a subdirectory's *contents*
//! sort as `name/` (its own entry stays at `name`): `a`, `a-b`, `a.txt`, `a/c`. That is
//! byte order of whole paths, which is how [`RelPath`] and the index compare them.
//!
//! Speed: directories are read ahead on worker threads, depth first in the order the
//! walk will want them, while the caller consumes; read-ahead stops once
//! [`AHEAD_ENTRIES`] entries wait to be taken. A directory the caller needs that no
//! worker has started is read by the caller itself, so the walk never waits on the
//! budget. Each directory is read by [`read_dir`], the same code the unordered walk
//! uses, so both see (and skip, and fence off) exactly the same things.

use crate::model::rel_path::RelPath;
use crate::replica::beneath::RootDir;
use crate::replica::ignore_rules::IndexRules;
use crate::replica::overlap::Fence;
use crate::replica::walk::{read_dir, Job, Rules, Seen, WalkOut};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex};

/// Entries read ahead and not yet taken by the caller, per walk (about 130 bytes each).
pub(crate) const AHEAD_ENTRIES: usize = 32 * 1024;

/// One child of a listed directory, at its place in path order.
enum Item {
    /// A path to hand out.
    Seen(Seen),
    /// A subdirectory whose contents come here (at `name/`).
    Below(Job),
}

impl Item {
    /// The item's sort key as two parts (a subtree sorts at its path plus `/`).
    fn key(&self) -> (&str, &str) {
        match self {
            Item::Seen(s) => (s.rel.as_str(), ""),
            Item::Below(j) => (j.dir.as_ref().map_or("", |d| d.as_str()), "/"),
        }
    }
}

/// One directory read: its children in order, and what else reading it found.
struct Listing {
    items: VecDeque<Item>,
    /// Problems, notes, unreadable paths, temp files and fence hits (never `seen`).
    out: WalkOut,
    /// Entries it holds, counted against the read-ahead budget.
    entries: usize,
}

/// Reads one directory into a [`Listing`] in path order.
fn list(root: &RootDir, rules: IndexRules, fence: &Fence, job: Job) -> Listing {
    let mut out = WalkOut::default();
    let subdirs = read_dir(root, rules, job, fence, &mut out);
    let seen = std::mem::take(&mut out.seen);
    let mut items: Vec<Item> = seen
        .into_iter()
        .map(Item::Seen)
        .chain(subdirs.into_iter().map(Item::Below))
        .collect();
    items.sort_unstable_by(|x, y| {
        let ((xa, xb), (ya, yb)) = (x.key(), y.key());
        xa.bytes()
            .chain(xb.bytes())
            .cmp(ya.bytes().chain(yb.bytes()))
    });
    Listing {
        entries: items.len(),
        items: items.into(),
        out,
    }
}

/// Which directory a job reads (`None`: the root).
type DirKey = Option<RelPath>;

/// The read-ahead shared by the workers and the caller.
#[derive(Default)]
struct AheadState {
    /// Directories to read, the next one wanted on top (last).
    todo: Vec<Job>,
    /// Directories being read by a worker.
    reading: HashSet<DirKey>,
    /// Directories read and not yet taken.
    ready: HashMap<DirKey, Listing>,
    /// Entries in `ready`.
    waiting: usize,
    /// The caller is done: workers leave.
    stop: bool,
}

struct Ahead<'a> {
    /// Entries read ahead at most ([`AHEAD_ENTRIES`]).
    budget: usize,
    root: &'a RootDir,
    rules: IndexRules,
    fence: &'a Fence,
    state: Mutex<AheadState>,
    changed: Condvar,
}

impl Ahead<'_> {
    /// Queues a listing's subdirectories for reading ahead, first wanted on top.
    fn queue_below(state: &mut AheadState, listing: &Listing) {
        let below = listing.items.iter().rev().filter_map(|i| match i {
            Item::Below(j) => Some(j.clone()),
            Item::Seen(_) => None,
        });
        state.todo.extend(below);
    }

    /// A worker: reads the next wanted directory while the budget allows.
    fn work(&self) {
        let Ok(mut s) = self.state.lock() else { return };
        loop {
            if s.stop {
                return;
            }
            if s.waiting < self.budget {
                if let Some(job) = s.todo.pop() {
                    let key = job.dir.clone();
                    s.reading.insert(key.clone());
                    drop(s);
                    let listing = list(self.root, self.rules, self.fence, job);
                    s = match self.state.lock() {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                    s.reading.remove(&key);
                    s.waiting += listing.entries;
                    Self::queue_below(&mut s, &listing);
                    s.ready.insert(key, listing);
                    self.changed.notify_all();
                    continue;
                }
            }
            s = match self.changed.wait(s) {
                Ok(s) => s,
                Err(_) => return,
            };
        }
    }

    /// The listing of `job`'s directory: read ahead, being read (wait for it), or read
    /// now by the caller.
    fn take(&self, job: Job) -> Listing {
        let key = job.dir.clone();
        let read_here = |job| list(self.root, self.rules, self.fence, job);
        let Ok(mut s) = self.state.lock() else {
            return read_here(job);
        };
        loop {
            if let Some(l) = s.ready.remove(&key) {
                s.waiting -= l.entries;
                self.changed.notify_all();
                return l;
            }
            if !s.reading.contains(&key) {
                break;
            }
            s = match self.changed.wait(s) {
                Ok(s) => s,
                Err(_) => return read_here(job),
            };
        }
        // Nobody has it: read it here (it leaves the queue if it was waiting there).
        if let Some(at) = s.todo.iter().rposition(|j| j.dir == key) {
            s.todo.remove(at);
        }
        drop(s);
        let listing = read_here(job);
        if let Ok(mut s) = self.state.lock() {
            Self::queue_below(&mut s, &listing);
            self.changed.notify_all();
        }
        listing
    }

    fn stop(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.stop = true;
        }
        self.changed.notify_all();
    }
}

/// Stops the workers when the caller is done, however it leaves (a panic included).
struct StopOnDrop<'a, 'b>(&'a Ahead<'b>);

impl Drop for StopOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// A walk in path order; see the module docs. Made by [`walk_in_order`].
pub(crate) struct OrderedWalk<'a, 'b> {
    ahead: &'a Ahead<'b>,
    /// The directories being handed out, innermost last.
    stack: Vec<VecDeque<Item>>,
    /// What the directories taken so far found besides paths.
    out: WalkOut,
}

impl OrderedWalk<'_, '_> {
    /// The next path in path order, or `None` when the walk is over.
    pub(crate) fn next_seen(&mut self) -> Option<Seen> {
        loop {
            let frame = self.stack.last_mut()?;
            match frame.pop_front() {
                None => {
                    self.stack.pop();
                }
                Some(Item::Seen(s)) => return Some(s),
                Some(Item::Below(job)) => {
                    let mut l = self.ahead.take(job);
                    append(&mut self.out, &mut l.out);
                    self.stack.push(l.items);
                }
            }
        }
    }

    /// What the directories handed out so far found besides paths (problems, notes,
    /// unreadable paths, temp files, fence hits); the caller may drain it as it goes.
    pub(crate) fn side(&mut self) -> &mut WalkOut {
        &mut self.out
    }
}

/// Moves everything but `seen` from `from` into `to`.
fn append(to: &mut WalkOut, from: &mut WalkOut) {
    to.unreadable.append(&mut from.unreadable);
    to.temp_files.append(&mut from.temp_files);
    to.errors.append(&mut from.errors);
    to.notes.append(&mut from.notes);
    to.fenced.append(&mut from.fenced);
}

/// Walks all of `root` in path order, never entering a directory `fence` holds: `f`
/// takes the paths from the walk while workers read ahead; they stop when `f` returns.
pub(crate) fn walk_in_order<R>(
    root: &RootDir,
    rules: IndexRules,
    fence: &Fence,
    f: impl FnOnce(&mut OrderedWalk<'_, '_>) -> R,
) -> R {
    walk_reading_ahead(AHEAD_ENTRIES, root, rules, fence, f)
}

/// [`walk_in_order`] reading at most `budget` entries ahead.
fn walk_reading_ahead<R>(
    budget: usize,
    root: &RootDir,
    rules: IndexRules,
    fence: &Fence,
    f: impl FnOnce(&mut OrderedWalk<'_, '_>) -> R,
) -> R {
    let ahead = Ahead {
        budget,
        root,
        rules,
        fence,
        state: Mutex::new(AheadState::default()),
        changed: Condvar::new(),
    };
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    std::thread::scope(|sc| {
        let _stop = StopOnDrop(&ahead);
        for _ in 0..workers {
            sc.spawn(|| ahead.work());
        }
        let start = Job {
            dir: None,
            rules: Arc::new(Rules::default()),
        };
        let mut walk = OrderedWalk {
            ahead: &ahead,
            stack: vec![VecDeque::from([Item::Below(start)])],
            out: WalkOut::default(),
        };
        f(&mut walk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::entry::EntryKind;

    fn build(root: &std::path::Path) {
        // Names that sort around the `/` of a folder's contents.
        for d in ["a", "a/c", "a/c/d", "b", "z", "a-b"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in [
            "a.txt", "a!", "a/0", "a/c.x", "a/c/d/e", "a/c-", "a-b/x", "b0", "z/1", "0",
        ] {
            std::fs::write(root.join(f), f).unwrap();
        }
        for i in 0..300 {
            std::fs::create_dir_all(root.join(format!("many/{:03}", i % 17))).unwrap();
            std::fs::write(root.join(format!("many/{:03}/f{i}", i % 17)), "x").unwrap();
        }
    }

    fn ordered(root: &std::path::Path, budget: usize) -> Vec<(String, EntryKind)> {
        let dir = RootDir::open(root).unwrap();
        let fence = Fence::around(&[]).unwrap();
        walk_reading_ahead(budget, &dir, IndexRules::default(), &fence, |w| {
            std::iter::from_fn(|| w.next_seen())
                .map(|s| (s.rel.as_str().to_string(), s.kind))
                .collect()
        })
    }

    #[test]
    fn hands_out_every_path_once_in_byte_order_as_the_unordered_walk_sees_them() {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path());
        let got = ordered(tmp.path(), AHEAD_ENTRIES);
        // No read-ahead, and read-ahead cut short: the same paths in the same order.
        assert_eq!(ordered(tmp.path(), 0), got);
        assert_eq!(ordered(tmp.path(), 5), got);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted, "in byte order, each once");
        let dir = RootDir::open(tmp.path()).unwrap();
        let fence = Fence::around(&[]).unwrap();
        let all = crate::replica::walk::walk(&dir, IndexRules::default(), &fence);
        let mut unordered: Vec<(String, EntryKind)> = all
            .seen
            .iter()
            .map(|s| (s.rel.as_str().to_string(), s.kind))
            .collect();
        unordered.sort_unstable_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(got, unordered);
        assert!(names.contains(&"a/c/d/e") && names.contains(&"a-b/x"));
    }

    #[test]
    fn a_caller_that_stops_early_ends_the_walk() {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path());
        let dir = RootDir::open(tmp.path()).unwrap();
        let fence = Fence::around(&[]).unwrap();
        let first = walk_in_order(&dir, IndexRules::default(), &fence, |w| {
            w.next_seen().map(|s| s.rel.as_str().to_string())
        });
        assert_eq!(first.as_deref(), Some("0"));
    }
}
