//! The reconciler's output: a plan of actions for the executor, and the modes and
//! policies that shape it.

pub mod archive;
pub mod conflict_name;
pub mod dir_renames;
pub mod itemize;
pub mod reconcile;
pub(crate) mod renames;
pub mod schedule;

use crate::error::{Error, Result};
use crate::model::entry::Entry;
use crate::model::rel_path::RelPath;
use crate::model::version_vector::VersionVector;

/// One side of a conduit: `A` is the first folder, `B` the second.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

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
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Mirror => "mirror",
            SyncMode::Bidirectional => "bidirectional",
            SyncMode::Archive => "archive",
            SyncMode::Selective => "selective",
        }
    }

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
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::Newest => "newest",
            ConflictPolicy::KeepBoth => "keep-both",
            ConflictPolicy::Source => "source",
            ConflictPolicy::Target => "target",
            ConflictPolicy::Manual => "manual",
        }
    }

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
        side: Side,
        path: RelPath,
        to: RelPath,
        expected: Box<Entry>,
    },
    /// Remove a file, symlink or (empty) directory.
    Delete {
        side: Side,
        path: RelPath,
        expected: Box<Entry>,
        version: VersionVector,
    },
    /// Create a directory, or fix the mode of an existing one (`expected` = that dir).
    Mkdir {
        side: Side,
        path: RelPath,
        source: Box<Entry>,
        expected: Option<Box<Entry>>,
        version: VersionVector,
    },
    /// Rename a file on `side` whose content the other side now has under a new name.
    Rename {
        side: Side,
        from: RelPath,
        expected: Box<Entry>,
        from_version: VersionVector,
        to: RelPath,
        source: Box<Entry>,
        version: VersionVector,
    },
    /// Write the other side's `source` (a file or symlink) to `path` on `to`.
    Copy {
        to: Side,
        path: RelPath,
        source: Box<Entry>,
        expected: Option<Box<Entry>>,
        version: VersionVector,
    },
    /// Index-only update: the disk already agrees, only the entry changes.
    Record { side: Side, entry: Box<Entry> },
    /// Archive mode: remove `path` from side A, but only once the copy on B at
    /// `archived_as` re-reads with `expected`'s content (see `archive.rs`).
    Archive {
        path: RelPath,
        expected: Box<Entry>,
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
    pub path: RelPath,
    pub a: Option<Entry>,
    pub b: Option<Entry>,
    pub policy: ConflictPolicy,
    /// `None` when left for the user.
    pub winner: Option<Side>,
    /// Where the losing content stays: a sibling path, or the version store.
    pub loser_kept_at: Option<String>,
}

/// Everything one run will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
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

    /// Whether the plan changes anything on disk.
    pub fn touches_disk(&self) -> bool {
        self.actions
            .iter()
            .any(|a| !matches!(a, Action::Record { .. }))
    }
}

/// Whether a path is already known on either side, beyond the entries given (a run
/// may reconcile only what changed): a pure look-up, used to name conflict copies.
pub type Occupied<'a> = &'a dyn Fn(&RelPath) -> bool;

/// What the reconciler needs to know.
#[derive(Clone, Copy)]
pub struct ReconcileInput<'a> {
    pub a: &'a [Entry],
    pub b: &'a [Entry],
    pub mode: SyncMode,
    pub policy: ConflictPolicy,
    /// Seconds since the epoch, used only to name conflict copies.
    pub now: i64,
    pub occupied: Occupied<'a>,
}
