//! The reconciler's output: a plan of actions for the executor, and the modes and
//! policies that shape it.

pub(crate) mod archive;
pub(crate) mod batches;
pub(crate) mod conflict_name;
pub(crate) mod dir_renames;
pub(crate) mod itemize;
pub(crate) mod reconcile;
pub(crate) mod renames;
pub(crate) mod schedule;

pub use dir_renames::find as find_dir_renames;
pub use itemize::{plan_items, Item};
pub use reconcile::reconcile;
pub use schedule::{schedule, Stage, Step};

use crate::error::{Error, Result};
use crate::model::entry::Entry;
use crate::model::rel_path::RelPath;
use crate::model::version_vector::VersionVector;

/// One side of a conduit: `A` is the first folder, `B` the second.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Side {
    /// The first folder (the source in mirror and archive mode).
    A,
    /// The second folder.
    B,
}

impl Side {
    /// The side across.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// `a` or `b`, as stored and shown.
    pub fn letter(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }
}

/// How a conduit moves changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// One way: B becomes an exact copy of A, deletions included.
    Mirror,
    /// Both ways; concurrent edits go to the conflict policy.
    Bidirectional,
    /// Copy A to B, verify the copy on B, then remove it from A.
    Archive,
    /// Hot files local, cold ones dehydrated to secondary storage (not yet implemented).
    Selective,
}

impl SyncMode {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Mirror => "mirror",
            SyncMode::Bidirectional => "bidirectional",
            SyncMode::Archive => "archive",
            SyncMode::Selective => "selective",
        }
    }

    /// The mode named `s` (`two-way` is bidirectional).
    pub fn parse(s: &str) -> Result<SyncMode> {
        Ok(match s {
            "mirror" => SyncMode::Mirror,
            "bidirectional" | "two-way" => SyncMode::Bidirectional,
            "archive" => SyncMode::Archive,
            "selective" => SyncMode::Selective,
            _ => return Err(Error::Other(format!("unknown mode {s:?}"))),
        })
    }
}

impl std::fmt::Display for SyncMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for ConflictPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who wins when both sides changed a path differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictPolicy {
    /// The later mtime wins (ties broken by content hash, then side A); the loser is versioned.
    Newest,
    /// As `Newest`, and the loser also stays visible as `name.conflict-…-<side>.ext`.
    KeepBoth,
    /// Side A wins.
    Source,
    /// Side B wins.
    Target,
    /// Touch nothing; record the conflict for the user.
    Manual,
}

impl ConflictPolicy {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::Newest => "newest",
            ConflictPolicy::KeepBoth => "keep-both",
            ConflictPolicy::Source => "source",
            ConflictPolicy::Target => "target",
            ConflictPolicy::Manual => "manual",
        }
    }

    /// The policy named `s`.
    pub fn parse(s: &str) -> Result<ConflictPolicy> {
        Ok(match s {
            "newest" => ConflictPolicy::Newest,
            "keep-both" => ConflictPolicy::KeepBoth,
            "source" => ConflictPolicy::Source,
            "target" => ConflictPolicy::Target,
            "manual" => ConflictPolicy::Manual,
            _ => return Err(Error::Other(format!("unknown conflict policy {s:?}"))),
        })
    }
}

/// One step of a plan. Every action names what the executor must find on disk first
/// (`expected`), so a path that changed after the scan is skipped, never clobbered.
/// Entries are boxed: a plan holds one action per changed path, and an action with its
/// entries inline would be ~500 bytes even for the smallest kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Move a conflict loser aside on its own side: `path` → `to`.
    MoveAside {
        /// The side whose disk changes.
        side: Side,
        /// The loser's path.
        path: RelPath,
        /// Its new name (`name.conflict-…-<side>.ext`).
        to: RelPath,
        /// What must be on disk at `path` first.
        expected: Box<Entry>,
    },
    /// Remove a file, symlink or (empty) directory.
    Delete {
        /// The side whose disk changes.
        side: Side,
        /// The path removed.
        path: RelPath,
        /// What must be on disk at `path` first.
        expected: Box<Entry>,
        /// The tombstone's version vector.
        version: VersionVector,
    },
    /// Create a directory, or fix the mode of an existing one (`expected` = that dir).
    Mkdir {
        /// The side whose disk changes.
        side: Side,
        /// The directory's path.
        path: RelPath,
        /// The other side's directory (mode, mtime).
        source: Box<Entry>,
        /// What is there now, if anything (only a directory).
        expected: Option<Box<Entry>>,
        /// The entry's new version vector.
        version: VersionVector,
    },
    /// Rename a file on `side` whose content the other side now has under a new name.
    Rename {
        /// The side whose disk changes.
        side: Side,
        /// The old name.
        from: RelPath,
        /// What must be on disk at `from` first.
        expected: Box<Entry>,
        /// The old name's tombstone version vector.
        from_version: VersionVector,
        /// The new name.
        to: RelPath,
        /// The other side's entry at the new name.
        source: Box<Entry>,
        /// The new name's version vector.
        version: VersionVector,
    },
    /// Write the other side's `source` (a file or symlink) to `path` on `to`.
    Copy {
        /// The side whose disk changes.
        to: Side,
        /// The path written.
        path: RelPath,
        /// The other side's entry: what to write.
        source: Box<Entry>,
        /// What is there now, if anything (replaced, versioned first).
        expected: Option<Box<Entry>>,
        /// The entry's new version vector.
        version: VersionVector,
    },
    /// Index-only update: the disk already agrees, only the entry changes.
    Record {
        /// The side whose index row changes.
        side: Side,
        /// The row to record.
        entry: Box<Entry>,
    },
    /// Archive mode: remove `path` from side A, but only once the copy on B at
    /// `archived_as` re-reads with `expected`'s content (see `archive.rs`).
    Archive {
        /// The path on side A.
        path: RelPath,
        /// What must be on disk at `path` (and, by hash, at `archived_as` on B).
        expected: Box<Entry>,
        /// Where the copy is on B (`path`, or a conflict name beside B's own file).
        archived_as: RelPath,
    },
}

impl Action {
    /// The side whose disk or index this action changes.
    pub fn side(&self) -> Side {
        match self {
            Action::MoveAside { side, .. }
            | Action::Delete { side, .. }
            | Action::Mkdir { side, .. }
            | Action::Rename { side, .. }
            | Action::Record { side, .. } => *side,
            Action::Copy { to, .. } => *to,
            Action::Archive { .. } => Side::A,
        }
    }

    /// The path the action is about: its `path`, a rename's `to`, a record's entry's.
    pub fn path(&self) -> &RelPath {
        match self {
            Action::MoveAside { path, .. }
            | Action::Delete { path, .. }
            | Action::Mkdir { path, .. }
            | Action::Copy { path, .. }
            | Action::Archive { path, .. } => path,
            Action::Rename { to, .. } => to,
            Action::Record { entry, .. } => &entry.path,
        }
    }
}

/// A conflict the reconciler met, and what it did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictRecord {
    /// The path in conflict.
    pub path: RelPath,
    /// Side A's entry, if any.
    pub a: Option<Entry>,
    /// Side B's entry, if any.
    pub b: Option<Entry>,
    /// The policy that decided (or did not: `manual`).
    pub policy: ConflictPolicy,
    /// `None` when left for the user.
    pub winner: Option<Side>,
    /// Where the losing content stays: a sibling path, or the version store.
    pub loser_kept_at: Option<String>,
}

/// Everything one run will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// What to do, in the reconciler's order (the executor orders by stage).
    pub actions: Vec<Action>,
    /// Conflicts met, settled by the policy or left open.
    pub conflicts: Vec<ConflictRecord>,
}

impl Plan {
    /// Files and symlinks (not directories) this plan deletes on `side`.
    pub fn file_deletions(&self, side: Side) -> usize {
        self.actions
            .iter()
            .filter(|a| {
                matches!(a, Action::Delete { side: s, expected, .. }
                    if *s == side && expected.state.kind != crate::model::entry::EntryKind::Dir)
            })
            .count()
    }

    /// [`Plan::file_deletions`] on side A and on side B (the mass-deletion stop's
    /// counts, from a whole plan or summed over a run's pages).
    pub fn file_deletions_per_side(&self) -> [usize; 2] {
        [Side::A, Side::B].map(|side| self.file_deletions(side))
    }

    /// Whether the plan changes anything on disk.
    pub fn touches_disk(&self) -> bool {
        self.actions
            .iter()
            .any(|a| !matches!(a, Action::Record { .. }))
    }
}

/// How many actions of each kind a plan has (a run planned in batches keeps only these).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PlanCounts {
    /// Files and symlinks written.
    pub copy: u64,
    /// Paths removed.
    pub delete: u64,
    /// Files renamed.
    pub rename: u64,
    /// Directories made (or their modes fixed).
    pub mkdir: u64,
    /// Conflict losers moved aside.
    pub move_aside: u64,
    /// Archive removals.
    pub archive: u64,
    /// Index-only updates.
    pub record: u64,
}

impl PlanCounts {
    /// The counts of `plan`.
    pub fn of(plan: &Plan) -> PlanCounts {
        let mut c = PlanCounts::default();
        c.add(plan);
        c
    }

    /// Adds `plan`'s actions.
    pub fn add(&mut self, plan: &Plan) {
        for a in &plan.actions {
            *match a {
                Action::Copy { .. } => &mut self.copy,
                Action::Delete { .. } => &mut self.delete,
                Action::Rename { .. } => &mut self.rename,
                Action::Mkdir { .. } => &mut self.mkdir,
                Action::MoveAside { .. } => &mut self.move_aside,
                Action::Archive { .. } => &mut self.archive,
                Action::Record { .. } => &mut self.record,
            } += 1;
        }
    }

    /// Every action, index-only records included.
    pub fn total(&self) -> u64 {
        self.copy
            + self.delete
            + self.rename
            + self.mkdir
            + self.move_aside
            + self.archive
            + self.record
    }
}

/// Whether a path is already known on either side, beyond the entries given (a run
/// may reconcile only what changed): a pure look-up, used to name conflict copies.
pub type Occupied<'a> = &'a dyn Fn(&RelPath) -> bool;

/// What the reconciler needs to know.
#[derive(Clone, Copy)]
pub struct ReconcileInput<'a> {
    /// Side A's entries, sorted by path.
    pub a: &'a [Entry],
    /// Side B's entries, sorted by path.
    pub b: &'a [Entry],
    /// How the sides are kept in step.
    pub mode: SyncMode,
    /// Who wins a conflict.
    pub policy: ConflictPolicy,
    /// Seconds since the epoch, used only to name conflict copies.
    pub now: i64,
    /// Whether a path is taken anywhere in the index (for conflict-copy names).
    pub occupied: Occupied<'a>,
}
