//! A renamed directory, applied as one `rename(2)` of the directory.
//!
//! The reconciler plans a directory renamed on one side file by file for the other
//! side: create the new directory and its subdirectories, rename each file into place,
//! recreate each symlink, remove the old directories. That plan stays the truth and the
//! fallback. [`find`] picks out the groups of such actions that together move a whole
//! subtree `from` → `to` on one side; the executor carries a group out as one rename of
//! the directory ([`apply`]): one system call and one index transaction instead of one
//! of each per entry, and every inode below it is kept.
//!
//! A group is taken only when, on the side it changes:
//! - `from` is a directory the plan removes and `to` one it creates (absent there), and
//!   nothing else happens at either path;
//! - every entry below `from` goes to the same name below `to` with the same content:
//!   subdirectories (a removal and a mkdir), files (renames, in whatever pairing of
//!   equal contents the reconciler chose), symlinks (a removal and a copy of the same
//!   target);
//! - everything else the plan writes below `to` is new there (a file or folder added,
//!   or moved in from elsewhere) and simply runs after the rename.
//!
//! Anything else below `from` (a file edited, deleted or moved out of the directory)
//! leaves the whole group to the per-file actions: they still move no bytes for the
//! unchanged files, and each keeps its own re-check.
//!
//! Right before the rename, [`apply`] re-checks the side (safety rule 2): the index must
//! hold exactly the group's live entries below `from`, and the disk exactly those
//! entries with their indexed stat, nothing more. Any difference falls back to the
//! per-file actions, which skip only what changed. The rename never replaces anything
//! (`RENAME_NOREPLACE`): a `to` that appeared since the scan stops the group with an
//! error and leaves both directories alone until the next run has scanned it.

use crate::model::entry::{Entry, EntryKind};
use crate::model::rel_path::RelPath;
use crate::model::version_vector::VersionVector;
use crate::plan::{Action, Side};
use std::collections::HashSet;

/// One entry a directory rename carries: what the side holds at the old path, and what
/// the new path becomes (the other side's entry there, with the plan's vectors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The entry at the old path, as the plan expects to find it.
    pub expected: Entry,
    /// The vector of the old path's tombstone.
    pub from_version: VersionVector,
    pub to: RelPath,
    /// The other side's entry at `to`.
    pub source: Entry,
    pub version: VersionVector,
}

/// A subtree `from` → `to` that moves on `side` as one directory rename.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirRename {
    pub side: Side,
    pub from: RelPath,
    pub to: RelPath,
    /// Indices (in the plan's actions) of the per-file actions the rename carries out.
    pub covers: Vec<usize>,
    /// The directory itself first, then every entry below it.
    pub moves: Vec<Move>,
}

impl DirRename {
    /// Files and symlinks the rename moves (the directories aside).
    pub fn entries_moved(&self) -> u64 {
        self.moves
            .iter()
            .filter(|m| m.expected.state.kind != EntryKind::Dir)
            .count() as u64
    }
}

/// The plan's directory renames, shallowest first; no two cover the same action. Pure.
pub fn find(actions: &[Action]) -> Vec<DirRename> {
    let plan = PlanPaths::new(actions);
    // A file renamed from `x/…/p/name` to `y/…/q/other` suggests its folders `p` → `q`
    // (the file's own name may differ: equal contents pair freely), and each level
    // above while the folder names agree: `x/…` → `y/…`; each only if the plan
    // removes the one and creates the other. `group` then checks the whole subtree.
    let mut candidates: Vec<(usize, Side, &str, &str)> = Vec::new();
    for a in actions {
        let Action::Rename { side, from, to, .. } = a else {
            continue;
        };
        let (mut f, mut t) = (from.as_str(), to.as_str());
        let mut file_level = true;
        while let (Some((fp, fname)), Some((tp, tname))) = (f.rsplit_once('/'), t.rsplit_once('/'))
        {
            if fname != tname && !file_level {
                break;
            }
            file_level = false;
            (f, t) = (fp, tp);
            if plan.dir_removal(*side, f).is_some() && plan.new_dir(*side, t).is_some() {
                candidates.push((f.matches('/').count(), *side, f, t));
            }
        }
    }
    candidates.sort_unstable();
    candidates.dedup();
    let mut covered = vec![false; actions.len()];
    let mut out = Vec::new();
    for (_, side, from, to) in candidates {
        // Below a directory already taken, everything is covered.
        if plan.dir_removal(side, from).is_some_and(|i| covered[i]) {
            continue;
        }
        let Some(group) = plan.group(side, from, to) else {
            continue;
        };
        if group.covers.iter().any(|&i| covered[i]) {
            continue;
        }
        for &i in &group.covers {
            covered[i] = true;
        }
        out.push(group);
    }
    out
}

/// The plan's actions by the paths they touch, per side.
struct PlanPaths<'a> {
    actions: &'a [Action],
    /// (side, path, action), sorted: the actions at a path, or below a directory, are
    /// a run of neighbours.
    touches: Vec<(Side, &'a str, usize)>,
}

/// Actions that only change the index and leave the path gone (a tombstone's vector).
fn index_only(a: &Action) -> bool {
    matches!(a, Action::Record { entry, .. } if !entry.is_live())
}

/// The part of `path` below `dir`, if it is below.
fn rest_below<'p>(path: &'p str, dir: &str) -> Option<&'p str> {
    path.strip_prefix(dir)?.strip_prefix('/')
}

impl<'a> PlanPaths<'a> {
    fn new(actions: &'a [Action]) -> Self {
        let mut touches = Vec::with_capacity(actions.len());
        for (i, a) in actions.iter().enumerate() {
            let side = a.side();
            let (first, second) = match a {
                Action::Rename { from, to, .. } => (from, Some(to)),
                Action::MoveAside { path, to, .. } => (path, Some(to)),
                Action::Record { entry, .. } => (&entry.path, None),
                Action::Delete { path, .. }
                | Action::Mkdir { path, .. }
                | Action::Copy { path, .. }
                | Action::Archive { path, .. } => (path, None),
            };
            for p in std::iter::once(first).chain(second) {
                touches.push((side, p.as_str(), i));
            }
        }
        touches.sort_unstable();
        PlanPaths { actions, touches }
    }

    /// `(path, action)` for each action touching a path `p` on `side` with
    /// `lo <= p < hi`, in path order.
    fn range<'s>(
        &'s self,
        side: Side,
        lo: &str,
        hi: &'s str,
    ) -> impl Iterator<Item = (&'a str, usize)> + 's {
        let start = self
            .touches
            .partition_point(|&(s, p, _)| (s, p) < (side, lo));
        self.touches[start..]
            .iter()
            .take_while(move |&&(s, p, _)| s == side && p < hi)
            .map(|&(_, p, i)| (p, i))
    }

    /// The actions touching exactly `path` on `side`.
    fn at<'s>(&'s self, side: Side, path: &'s str) -> impl Iterator<Item = usize> + 's {
        let start = self
            .touches
            .partition_point(|&(s, p, _)| (s, p) < (side, path));
        self.touches[start..]
            .iter()
            .take_while(move |&&(s, p, _)| s == side && p == path)
            .map(|&(_, _, i)| i)
    }

    fn find_at(&self, side: Side, path: &str, f: impl Fn(&Action) -> bool) -> Option<usize> {
        self.at(side, path).find(|&i| f(&self.actions[i]))
    }

    /// The removal of directory `path` on `side`.
    fn dir_removal(&self, side: Side, path: &str) -> Option<usize> {
        self.find_at(
            side,
            path,
            |a| matches!(a, Action::Delete { expected, .. } if expected.state.kind == EntryKind::Dir),
        )
    }

    /// The creation of directory `path` on `side` (nothing there yet).
    fn new_dir(&self, side: Side, path: &str) -> Option<usize> {
        self.find_at(side, path, |a| {
            matches!(a, Action::Mkdir { expected: None, .. })
        })
    }

    /// `(path, action)` for every action touching a path strictly below `dir` on `side`,
    /// in path order (`dir/` up to `dir0`, `0` being the byte after `/`).
    fn below(&self, side: Side, dir: &str) -> Vec<(&'a str, usize)> {
        self.range(side, &format!("{dir}/"), &format!("{dir}0"))
            .collect()
    }

    /// The group moving `from` to `to` on `side`, if the plan does exactly that there.
    fn group(&self, side: Side, from: &str, to: &str) -> Option<DirRename> {
        if rest_below(to, from).is_some() || rest_below(from, to).is_some() {
            return None;
        }
        let root_removal = self.dir_removal(side, from)?;
        let root_mkdir = self.new_dir(side, to)?;
        let others_at = |p| {
            self.at(side, p)
                .any(|i| i != root_removal && i != root_mkdir && !index_only(&self.actions[i]))
        };
        if others_at(from) || others_at(to) {
            return None;
        }
        let mut covers = vec![root_removal, root_mkdir];
        let mut moves = vec![self.paired(root_removal, root_mkdir)?];
        // Suffixes below `from` that move, and the renames that move files out of it.
        let mut moved: HashSet<&str> = HashSet::new();
        let mut files: Vec<(&str, usize)> = Vec::new();
        for (path, i) in self.below(side, from) {
            let suffix = rest_below(path, from)?;
            let target = format!("{to}/{suffix}");
            match &self.actions[i] {
                a if index_only(a) => continue,
                Action::Delete { expected, .. } if expected.state.kind == EntryKind::Dir => {
                    let mkdir = self.new_dir(side, &target)?;
                    covers.extend([i, mkdir]);
                    moves.push(self.paired(i, mkdir)?);
                }
                Action::Delete { expected, .. } if expected.state.kind == EntryKind::Symlink => {
                    let copy = self.find_at(side, &target, |a| {
                        matches!(a, Action::Copy { expected: None, source, .. }
                            if source.same_content(expected))
                    })?;
                    covers.extend([i, copy]);
                    moves.push(self.paired(i, copy)?);
                }
                Action::Rename { from: f, .. } if f.as_str() == path => files.push((suffix, i)),
                _ => return None,
            }
            moved.insert(suffix);
        }
        // Each file moving out of `from` needs a rename landing at its own name below
        // `to` with its content, itself one of the renames out of `from`: together they
        // are a one-to-one pairing, whichever way equal contents were paired.
        for &(suffix, i) in &files {
            let target = format!("{to}/{suffix}");
            let Action::Rename { expected, .. } = &self.actions[i] else {
                return None;
            };
            let landing = self.find_at(side, &target, |a| {
                matches!(a, Action::Rename { from: f, to: t, source, .. }
                    if t.as_str() == target
                        && rest_below(f.as_str(), from).is_some()
                        && source.same_content(expected))
            })?;
            covers.push(i);
            moves.push(self.paired(i, landing)?);
        }
        // Everything else below `to` must be new there, so it can run after the rename.
        let covered: HashSet<usize> = covers.iter().copied().collect();
        for (path, i) in self.below(side, to) {
            if covered.contains(&i) || index_only(&self.actions[i]) {
                continue;
            }
            if moved.contains(rest_below(path, to)?) {
                return None;
            }
            match &self.actions[i] {
                Action::Mkdir { expected: None, .. } | Action::Copy { expected: None, .. } => {}
                Action::Rename { to: t, .. } if t.as_str() == path => {}
                _ => return None,
            }
        }
        Some(DirRename {
            side,
            from: RelPath::new(from).ok()?,
            to: RelPath::new(to).ok()?,
            covers,
            moves,
        })
    }

    /// The move made of the action leaving the old path (`out`) and the one filling
    /// the new path (`into`).
    fn paired(&self, out: usize, into: usize) -> Option<Move> {
        let (expected, from_version) = match &self.actions[out] {
            Action::Delete {
                expected, version, ..
            } => (expected, version),
            Action::Rename {
                expected,
                from_version,
                ..
            } => (expected, from_version),
            _ => return None,
        };
        let (to, source, version) = match &self.actions[into] {
            Action::Mkdir {
                path,
                source,
                version,
                ..
            }
            | Action::Copy {
                path,
                source,
                version,
                ..
            } => (path, source, version),
            Action::Rename {
                to,
                source,
                version,
                ..
            } => (to, source, version),
            _ => return None,
        };
        Some(Move {
            expected: *expected.clone(),
            from_version: from_version.clone(),
            to: to.clone(),
            source: *source.clone(),
            version: version.clone(),
        })
    }
}
