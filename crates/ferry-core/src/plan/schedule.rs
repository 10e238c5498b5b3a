//! The order a plan runs in: one side plan per side, its actions in stages that run one
//! after another with a durability point between them. Pure, like the reconciler; the
//! executor runs the steps as given and re-sorts nothing.
//!
//! Stages, in order: index-only records; conflict losers moved aside; file deletions;
//! directories (made shallowest first, whole-directory renames where their target's
//! mkdir would stand); file renames; directory removals (deepest first); copies;
//! archive removals (after every copy is durable).
//!
//! A directory rename ([`dir_renames`]) carries out a group of per-file actions with
//! one `rename(2)`. Those actions stay in the side plan, each in its own stage, marked
//! with their group: they run only if the rename falls back (the side was no longer as
//! planned). A covered file deletion (a symlink moving with its folder) stands right
//! after its rename, since the deletion stage has passed by then.

use crate::model::entry::EntryKind;
use crate::plan::dir_renames::{self, DirRename};
use crate::plan::{Action, Plan, Side};

/// A stage of a side plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Index-only records.
    Records,
    /// Conflict losers moved aside.
    Aside,
    /// Files and symlinks deleted.
    Deletes,
    /// Directories created, and whole directories renamed.
    Directories,
    /// Files and symlinks renamed.
    Renames,
    /// Directories removed, deepest first.
    DirRemovals,
    /// Files and symlinks copied.
    Copies,
    /// Archive mode's verified removals from side A.
    Archive,
}

impl Stage {
    /// Every stage, in the order they run.
    pub const ALL: [Stage; 8] = [
        Stage::Records,
        Stage::Aside,
        Stage::Deletes,
        Stage::Directories,
        Stage::Renames,
        Stage::DirRemovals,
        Stage::Copies,
        Stage::Archive,
    ];

    /// The stage an action runs in.
    fn of(a: &Action) -> Stage {
        match a {
            Action::Record { .. } => Stage::Records,
            Action::MoveAside { .. } => Stage::Aside,
            Action::Delete { expected, .. } if expected.state.kind == EntryKind::Dir => {
                Stage::DirRemovals
            }
            Action::Delete { .. } => Stage::Deletes,
            Action::Mkdir { .. } => Stage::Directories,
            Action::Rename { .. } => Stage::Renames,
            Action::Copy { .. } => Stage::Copies,
            Action::Archive { .. } => Stage::Archive,
        }
    }
}

/// One step of a side plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The plan's action at index `action`. With a `group`, the directory rename that
    /// carries it out: the action runs only if that rename falls back.
    Act {
        /// Index of the action in the plan.
        action: usize,
        /// Index of the directory rename that covers it, if one does.
        group: Option<usize>,
    },
    /// The directory rename at index `group` of the schedule's `groups`.
    RenameDir {
        /// Index of the rename in the schedule's groups.
        group: usize,
    },
}

/// What one side does, stage by stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidePlan {
    pub side: Side,
    /// Every stage of [`Stage::ALL`], in order, with its steps (perhaps none).
    pub stages: Vec<(Stage, Vec<Step>)>,
}

impl SidePlan {
    /// The steps of `stage`.
    pub fn steps(&self, stage: Stage) -> &[Step] {
        self.stages
            .iter()
            .find(|(s, _)| *s == stage)
            .map_or(&[], |(_, steps)| steps.as_slice())
    }
}

/// A plan in running order: the directory renames found in it and each side's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub groups: Vec<DirRename>,
    pub sides: [SidePlan; 2],
}

/// Orders `plan` for running.
pub fn schedule(plan: &Plan) -> Schedule {
    let groups = dir_renames::find(&plan.actions);
    let mut group_of: Vec<Option<usize>> = vec![None; plan.actions.len()];
    for (g, group) in groups.iter().enumerate() {
        for &i in &group.covers {
            group_of[i] = Some(g);
        }
    }
    let sides = [Side::A, Side::B].map(|side| {
        let mut stages: Vec<(Stage, Vec<Step>)> =
            Stage::ALL.iter().map(|&s| (s, Vec::new())).collect();
        // Directories are sorted below; every other stage keeps the plan's order.
        let mut dirs: Vec<(usize, u8, Vec<Step>)> = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            if group.side != side {
                continue;
            }
            let mut steps = vec![Step::RenameDir { group: g }];
            steps.extend(group.covers.iter().copied().filter_map(|i| {
                let covered_delete = Stage::of(&plan.actions[i]) == Stage::Deletes;
                covered_delete.then_some(Step::Act {
                    action: i,
                    group: Some(g),
                })
            }));
            dirs.push((group.to.depth(), 0, steps));
        }
        for (i, a) in plan.actions.iter().enumerate() {
            if a.side() != side {
                continue;
            }
            let stage = Stage::of(a);
            let step = Step::Act {
                action: i,
                group: group_of[i],
            };
            match stage {
                // A covered deletion stands after its rename (above).
                Stage::Deletes if group_of[i].is_some() => {}
                Stage::Directories => dirs.push((a.path().depth(), 1, vec![step])),
                _ => stages[stage as usize].1.push(step),
            }
        }
        // Shallowest first; a rename stands before the mkdirs at its depth.
        dirs.sort_by_key(|(depth, order, _)| (*depth, *order));
        stages[Stage::Directories as usize].1 = dirs.into_iter().flat_map(|d| d.2).collect();
        // Deepest first, so a folder is empty when its turn comes.
        let removals = &mut stages[Stage::DirRemovals as usize].1;
        removals.sort_by_key(|s| match s {
            Step::Act { action, .. } => std::cmp::Reverse(plan.actions[*action].path().depth()),
            Step::RenameDir { .. } => std::cmp::Reverse(0),
        });
        SidePlan { side, stages }
    });
    Schedule { groups, sides }
}
