//! The reconciler: a pure function from both sides' index entries (plus mode, policy and
//! the time used to name conflict copies) to a plan. No I/O, no clock, no randomness.
//!
//! Invariants, checked by the unit and property tests:
//! - a path whose content is the same on both sides moves no bytes (vectors merge);
//! - a side whose version vector dominates propagates, deletions included;
//! - concurrent changes go to the conflict policy, and the loser is always kept
//!   (version store, or a visible sibling with `keep-both`);
//! - a modification beats a deletion, also for directories: a directory that still
//!   has a surviving descendant on either side survives on both sides;
//! - a file that disappears on one path and appears with the same content on another
//!   is applied as a rename on the other side (paths that end alike pair first);
//! - a dehydrated entry (files on demand: the path exists, its content is on the
//!   secondary replica) is never taken for a deletion or an edit (safety rule 7): it
//!   agrees with the same content on the other side; it is never the source of a copy
//!   (a decision that would need its bytes is left to the user as a conflict, nothing
//!   moves); deleting it touches only the index. In selective mode a newer file on B
//!   over A's dehydrated entry stays online-only: A records B's state, still
//!   dehydrated, and no bytes move.
//!
//! Selective mode (A the hot, local side, B the secondary) reconciles as bidirectional
//! with the rules above; dehydration and hydration are not plan actions
//! (`selective.rs`).

use crate::error::Result;
use crate::model::entry::{Entry, EntryKind, Presence, StatInfo};
use crate::model::rel_path::RelPath;
use crate::model::version_vector::{Causality, VersionVector};
use crate::plan::conflict_name::conflict_name;
use crate::plan::{Action, ConflictPolicy, ConflictRecord, Plan, Side, SyncMode};
use std::collections::{BTreeMap, HashSet};

pub use crate::plan::ReconcileInput;

/// What happens at one path before the directory rule is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Same content (or both gone): only the vectors merge.
    Agree,
    /// This side's state, present or deleted, goes to the other side.
    Win(Side),
    /// A true conflict the policy settles with a winner.
    Conflict(Side),
    /// A true conflict left for the user.
    Manual,
}

/// Computes the plan for one run.
pub fn reconcile(input: ReconcileInput<'_>) -> Result<Plan> {
    if input.mode == SyncMode::Archive {
        return Ok(crate::plan::archive::plan_archive(input));
    }
    let mut paths: BTreeMap<&RelPath, (Option<&Entry>, Option<&Entry>)> = BTreeMap::new();
    for e in input.a {
        paths.entry(&e.path).or_default().0 = Some(e);
    }
    for e in input.b {
        paths.entry(&e.path).or_default().1 = Some(e);
    }
    let mut r = Reconciler {
        input,
        plan: Plan::default(),
        taken: paths.keys().map(|p| p.as_str().to_string()).collect(),
        has_survivor: HashSet::new(),
    };
    // Reverse order visits every descendant before its ancestor ("a/b" sorts after "a").
    for (path, (ea, eb)) in paths.iter().rev() {
        r.visit(path, *ea, *eb);
    }
    hold_subtrees_of_manual_conflicts(&mut r.plan);
    crate::plan::renames::pair_renames(&mut r.plan);
    Ok(r.plan)
}

struct Reconciler<'a> {
    input: ReconcileInput<'a>,
    plan: Plan,
    /// Every path name in use, so conflict copies get fresh names.
    taken: HashSet<String>,
    /// Paths below which something stays alive after this plan.
    has_survivor: HashSet<String>,
}

fn live(e: Option<&Entry>) -> Option<&Entry> {
    e.filter(|e| e.is_live())
}

fn version(e: Option<&Entry>) -> VersionVector {
    e.map(|e| e.state.version.clone()).unwrap_or_default()
}

impl Reconciler<'_> {
    fn visit(&mut self, path: &RelPath, ea: Option<&Entry>, eb: Option<&Entry>) {
        let decision = match self.input.mode {
            SyncMode::Mirror => decide_mirror(ea, eb),
            _ => decide_bidirectional(ea, eb, self.input.policy),
        };
        let decision = hold_dehydrated(decision, ea, eb);
        let merged = version(ea).merged(&version(eb));
        let final_kind = match decision {
            Decision::Agree => live(ea).map(|e| e.state.kind),
            Decision::Win(s) | Decision::Conflict(s) => live(pick(s, ea, eb)).map(|e| e.state.kind),
            Decision::Manual => None,
        };
        let survivors_below = self.has_survivor.contains(path.as_str());
        let stays_live = if decision == Decision::Manual {
            true
        } else if survivors_below && final_kind != Some(EntryKind::Dir) {
            self.force_dir(path, ea, eb, &merged);
            true
        } else {
            match decision {
                Decision::Agree => self.agree(ea, eb, &merged),
                Decision::Win(s) => self.win(path, s, ea, eb, &merged),
                Decision::Conflict(s) => self.conflict(path, s, ea, eb, &merged),
                Decision::Manual => unreachable!("handled above"),
            }
            final_kind.is_some()
        };
        if decision == Decision::Manual {
            self.plan.conflicts.push(ConflictRecord {
                path: path.clone(),
                a: ea.cloned(),
                b: eb.cloned(),
                policy: ConflictPolicy::Manual,
                winner: None,
                loser_kept_at: None,
            });
        }
        if stays_live {
            for anc in path.ancestors() {
                if !self.has_survivor.insert(anc.to_string()) {
                    break;
                }
            }
        }
    }

    /// Same content on both sides (or gone on both): merge vectors in the index only.
    fn agree(&mut self, ea: Option<&Entry>, eb: Option<&Entry>, merged: &VersionVector) {
        for (side, e) in [(Side::A, ea), (Side::B, eb)] {
            if let Some(e) = e {
                if &e.state.version != merged {
                    let mut e = e.clone();
                    e.state.version = merged.clone();
                    self.plan.actions.push(Action::Record {
                        side,
                        entry: Box::new(e),
                    });
                }
            }
        }
    }

    /// Makes the loser side `w.other()` match the winner `w`.
    fn win(
        &mut self,
        path: &RelPath,
        w: Side,
        ea: Option<&Entry>,
        eb: Option<&Entry>,
        merged: &VersionVector,
    ) {
        let l = w.other();
        let (we, le) = (pick(w, ea, eb), pick(l, ea, eb));
        // The winner's own entry takes the merged vector too, so both sides end equal.
        if let Some(e) = we {
            if &e.state.version != merged {
                let mut e = e.clone();
                e.state.version = merged.clone();
                self.plan.actions.push(Action::Record {
                    side: w,
                    entry: Box::new(e),
                });
            }
        }
        self.apply_to(path, l, live(we), live(le), le, merged);
    }

    /// Brings side `to` (whose current entry is `cur`, live or not) to the winner's state.
    fn apply_to(
        &mut self,
        path: &RelPath,
        to: Side,
        winner: Option<&Entry>,
        cur: Option<&Entry>,
        raw_cur: Option<&Entry>,
        version: &VersionVector,
    ) {
        let record = |e: &Entry| Action::Record {
            side: to,
            entry: Box::new(e.with_version(version)),
        };
        match (winner, cur) {
            (None, None) => {
                if let Some(e) = raw_cur {
                    if &e.state.version != version {
                        self.plan.actions.push(record(e));
                    }
                }
            }
            (None, Some(c)) => self.plan.actions.push(Action::Delete {
                side: to,
                path: path.clone(),
                expected: Box::new(c.clone()),
                version: version.clone(),
            }),
            (Some(w), Some(c)) if w.same_content(c) => {
                if &c.state.version != version {
                    self.plan.actions.push(record(c));
                }
            }
            // Selective mode: a newer file of B over A's online-only copy stays online
            // only; A takes B's state in its index, no bytes move.
            (Some(w), Some(c))
                if self.input.mode == SyncMode::Selective
                    && to == Side::A
                    && dehydrated(c)
                    && w.state.kind == EntryKind::File
                    && c.state.kind == EntryKind::File =>
            {
                let mut e = w.with_version(version);
                e.state.presence = Presence::Dehydrated;
                e.cache = c.cache;
                self.plan.actions.push(Action::Record {
                    side: to,
                    entry: Box::new(e),
                });
            }
            (Some(w), cur) => {
                let mut expected = cur.cloned();
                let replace_kind = cur.is_some_and(|c| {
                    (c.state.kind == EntryKind::Dir) != (w.state.kind == EntryKind::Dir)
                });
                if replace_kind {
                    if let Some(c) = cur {
                        self.plan.actions.push(Action::Delete {
                            side: to,
                            path: path.clone(),
                            expected: Box::new(c.clone()),
                            version: version.clone(),
                        });
                    }
                    expected = None;
                }
                if w.state.kind == EntryKind::Dir {
                    self.plan.actions.push(Action::Mkdir {
                        side: to,
                        path: path.clone(),
                        source: Box::new(w.clone()),
                        expected: expected.map(Box::new),
                        version: version.clone(),
                    });
                } else {
                    self.plan.actions.push(Action::Copy {
                        to,
                        path: path.clone(),
                        source: Box::new(w.clone()),
                        expected: expected.map(Box::new),
                        version: version.clone(),
                    });
                }
            }
        }
    }

    /// Both sides changed `path` differently; the policy picked `w`.
    fn conflict(
        &mut self,
        path: &RelPath,
        w: Side,
        ea: Option<&Entry>,
        eb: Option<&Entry>,
        merged: &VersionVector,
    ) {
        let l = w.other();
        let le = pick(l, ea, eb);
        let loser = live(le);
        let both_dirs = live(ea).is_some_and(|e| e.state.kind == EntryKind::Dir)
            && live(eb).is_some_and(|e| e.state.kind == EntryKind::Dir);
        if both_dirs {
            // Only the permission bits differ; nothing to keep.
            self.win(path, w, ea, eb, merged);
            return;
        }
        let keep_aside = self.input.policy == ConflictPolicy::KeepBoth
            && loser.is_some_and(|e| e.state.kind != EntryKind::Dir);
        let loser_kept_at = match loser {
            Some(le) if keep_aside => {
                let aside = self.move_aside(path, l, le);
                Some(aside.as_str().to_string())
            }
            Some(le) if le.state.kind != EntryKind::Dir => {
                Some(format!("version store of side {}", l.letter()))
            }
            _ => None,
        };
        self.plan.conflicts.push(ConflictRecord {
            path: path.clone(),
            a: ea.cloned(),
            b: eb.cloned(),
            policy: self.input.policy,
            winner: Some(w),
            loser_kept_at,
        });
        if keep_aside {
            let we = pick(w, ea, eb);
            if let Some(e) = we {
                if &e.state.version != merged {
                    self.plan.actions.push(Action::Record {
                        side: w,
                        entry: Box::new(e.with_version(merged)),
                    });
                }
            }
            self.apply_to(path, l, live(we), None, None, merged);
        } else {
            self.win(path, w, ea, eb, merged);
        }
    }

    /// Moves side `side`'s `entry` at `path` to a fresh conflict name on that side, and
    /// copies it under that name to the other side. Returns the new name.
    fn move_aside(&mut self, path: &RelPath, side: Side, entry: &Entry) -> RelPath {
        let aside = self.conflict_name(path, side);
        self.plan.actions.push(Action::MoveAside {
            side,
            path: path.clone(),
            to: aside.clone(),
            expected: Box::new(entry.clone()),
        });
        self.plan.actions.push(Action::Copy {
            to: side.other(),
            path: aside.clone(),
            source: Box::new(Entry {
                path: aside.clone(),
                ..entry.clone()
            }),
            expected: None,
            version: entry.state.version.clone(),
        });
        aside
    }

    /// Something below `path` stays alive, so `path` must be a directory on both sides.
    fn force_dir(
        &mut self,
        path: &RelPath,
        ea: Option<&Entry>,
        eb: Option<&Entry>,
        merged: &VersionVector,
    ) {
        let is_dir =
            |e: Option<&Entry>| live(e).filter(|e| e.state.kind == EntryKind::Dir).cloned();
        let source = is_dir(ea).or_else(|| is_dir(eb)).unwrap_or_else(|| {
            let stat = StatInfo {
                mode: 0o755,
                ..StatInfo::default()
            };
            Entry::at(path.clone(), EntryKind::Dir, stat).with_version(merged)
        });
        for (side, e) in [(Side::A, ea), (Side::B, eb)] {
            match live(e) {
                Some(e) if e.state.kind == EntryKind::Dir => {
                    if e.state.mode != source.state.mode {
                        self.plan.actions.push(Action::Mkdir {
                            side,
                            path: path.clone(),
                            source: Box::new(source.clone()),
                            expected: Some(Box::new(e.clone())),
                            version: merged.clone(),
                        });
                    } else if &e.state.version != merged {
                        self.plan.actions.push(Action::Record {
                            side,
                            entry: Box::new(e.with_version(merged)),
                        });
                    }
                }
                // A dehydrated file in the way: its content is not on this side to
                // move aside; the entry goes (index only) and the user is told.
                Some(e) if dehydrated(e) => {
                    self.plan.actions.push(Action::Delete {
                        side,
                        path: path.clone(),
                        expected: Box::new(e.clone()),
                        version: merged.clone(),
                    });
                    self.plan.conflicts.push(ConflictRecord {
                        path: path.clone(),
                        a: ea.cloned(),
                        b: eb.cloned(),
                        policy: self.input.policy,
                        winner: Some(side.other()),
                        loser_kept_at: None,
                    });
                    self.push_mkdir(side, path, &source, merged);
                }
                Some(e) => {
                    let aside = self.move_aside(path, side, e);
                    self.plan.conflicts.push(ConflictRecord {
                        path: path.clone(),
                        a: ea.cloned(),
                        b: eb.cloned(),
                        policy: self.input.policy,
                        winner: Some(side.other()),
                        loser_kept_at: Some(aside.as_str().to_string()),
                    });
                    self.push_mkdir(side, path, &source, merged);
                }
                None => self.push_mkdir(side, path, &source, merged),
            }
        }
    }

    fn push_mkdir(&mut self, side: Side, path: &RelPath, source: &Entry, version: &VersionVector) {
        self.plan.actions.push(Action::Mkdir {
            side,
            path: path.clone(),
            source: Box::new(source.clone()),
            expected: None,
            version: version.clone(),
        });
    }

    fn conflict_name(&mut self, path: &RelPath, side: Side) -> RelPath {
        conflict_name(
            &mut self.taken,
            self.input.occupied,
            self.input.now,
            path,
            side,
        )
    }
}

fn pick<'e>(side: Side, a: Option<&'e Entry>, b: Option<&'e Entry>) -> Option<&'e Entry> {
    match side {
        Side::A => a,
        Side::B => b,
    }
}

fn dehydrated(e: &Entry) -> bool {
    e.state.presence == Presence::Dehydrated
}

/// Safety rule 7 on a decision: a dehydrated entry's content is not on its side, so it
/// can never be copied from there, moved aside or kept as a conflict loser there. A
/// decision that would need that (the dehydrated side wins over different content, or
/// a true conflict involves a dehydrated side) becomes a conflict left to the user:
/// nothing moves on either side.
fn hold_dehydrated(decision: Decision, ea: Option<&Entry>, eb: Option<&Entry>) -> Decision {
    let is_dehydrated = |e: Option<&Entry>| e.is_some_and(dehydrated);
    match decision {
        Decision::Win(s) if is_dehydrated(pick(s, ea, eb)) => {
            // Its content agrees with the other side's: nothing to copy (`agree`
            // merges the vectors).
            match (live(ea), live(eb)) {
                (Some(a), Some(b)) if a.same_content(b) => Decision::Agree,
                _ => Decision::Manual,
            }
        }
        Decision::Conflict(_) if is_dehydrated(ea) || is_dehydrated(eb) => Decision::Manual,
        d => d,
    }
}

fn decide_mirror(ea: Option<&Entry>, eb: Option<&Entry>) -> Decision {
    match (live(ea), live(eb)) {
        (None, None) => Decision::Agree,
        (Some(a), Some(b)) if a.same_content(b) => Decision::Agree,
        _ => Decision::Win(Side::A),
    }
}

fn decide_bidirectional(
    ea: Option<&Entry>,
    eb: Option<&Entry>,
    policy: ConflictPolicy,
) -> Decision {
    let (la, lb) = (live(ea), live(eb));
    match (la, lb) {
        (None, None) => return Decision::Agree,
        (Some(a), Some(b)) if a.same_content(b) => return Decision::Agree,
        _ => {}
    }
    match version(ea).compare(&version(eb)) {
        Causality::Newer => Decision::Win(Side::A),
        Causality::Older => Decision::Win(Side::B),
        Causality::Equal | Causality::Concurrent => match (la, lb) {
            // A modification beats a deletion.
            (Some(_), None) => Decision::Win(Side::A),
            (None, Some(_)) => Decision::Win(Side::B),
            (Some(a), Some(b)) => match policy {
                ConflictPolicy::Manual => Decision::Manual,
                ConflictPolicy::Source => Decision::Conflict(Side::A),
                ConflictPolicy::Target => Decision::Conflict(Side::B),
                ConflictPolicy::Newest | ConflictPolicy::KeepBoth => {
                    Decision::Conflict(newest(a, b))
                }
            },
            (None, None) => Decision::Agree,
        },
    }
}

/// The later mtime wins; ties go to the larger content hash, then to side A.
fn newest(a: &Entry, b: &Entry) -> Side {
    match a.state.mtime_ns.cmp(&b.state.mtime_ns) {
        std::cmp::Ordering::Greater => Side::A,
        std::cmp::Ordering::Less => Side::B,
        std::cmp::Ordering::Equal => {
            if b.state.hash > a.state.hash {
                Side::B
            } else {
                Side::A
            }
        }
    }
}

/// A path left to the user where one side has a file (or symlink) and the other a
/// directory: nothing below it moves on either side until the user decides.
fn hold_subtrees_of_manual_conflicts(plan: &mut Plan) {
    let held: Vec<RelPath> = plan
        .conflicts
        .iter()
        .filter(|c| c.winner.is_none())
        .filter(|c| {
            let dir = |e: &Option<Entry>| {
                e.as_ref()
                    .is_some_and(|e| e.is_live() && e.state.kind == EntryKind::Dir)
            };
            dir(&c.a) != dir(&c.b)
        })
        .map(|c| c.path.clone())
        .collect();
    if held.is_empty() {
        return;
    }
    let below = |p: &RelPath| held.iter().any(|h| p.is_strictly_under(h));
    plan.actions.retain(|a| match a {
        Action::Record { .. } => true,
        Action::Rename { from, to, .. } => !below(from) && !below(to),
        Action::MoveAside { path, to, .. } => !below(path) && !below(to),
        Action::Delete { path, .. }
        | Action::Mkdir { path, .. }
        | Action::Copy { path, .. }
        | Action::Archive { path, .. } => !below(path),
    });
}
