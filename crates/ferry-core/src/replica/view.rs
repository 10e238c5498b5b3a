//! What the planner reads of a replica: its entries, all of them, by path, or changed
//! since a sequence. Reconcile never touches a disk; it sees replicas through this
//! seam, so a replica that lives on another device (its entries received into the local
//! index) plans exactly as a local folder does.

use crate::error::Result;
use crate::index::Index;
use crate::model::entry::Entry;
use crate::model::rel_path::RelPath;

/// A replica's entries as the planner needs them.
pub trait ReplicaView {
    /// Every entry, live ones and tombstones.
    fn entries(&self) -> Result<Vec<Entry>>;
    /// The paths whose entries changed after local sequence `after`.
    fn changed_since(&self, after: u64) -> Result<Vec<RelPath>>;
    /// The entry at `path`, if the replica has one.
    fn entry(&self, path: &RelPath) -> Result<Option<Entry>>;
    /// Live files and symlinks: what the mass-deletion stop compares a plan against.
    fn live_files(&self) -> Result<u64>;
    /// Up to `limit` entries whose paths sort after `after` (from the first with
    /// `None`), sorted by path: the planner's bounded walk over a large replica.
    fn entries_page(&self, after: Option<&RelPath>, limit: usize) -> Result<Vec<Entry>>;
    /// How many entries changed after local sequence `after`, or all with `None`.
    fn count(&self, after: Option<u64>) -> Result<u64>;
}

/// A replica whose entries are in this device's index: a local folder, or (once
/// received) another device's folder.
pub struct IndexedReplica<'a> {
    index: &'a Index,
    location: i64,
}

impl<'a> IndexedReplica<'a> {
    pub fn new(index: &'a Index, location: i64) -> Self {
        IndexedReplica { index, location }
    }
}

impl ReplicaView for IndexedReplica<'_> {
    fn entries(&self) -> Result<Vec<Entry>> {
        self.index.entries(self.location)
    }

    fn changed_since(&self, after: u64) -> Result<Vec<RelPath>> {
        self.index.paths_changed_since(self.location, after)
    }

    fn entry(&self, path: &RelPath) -> Result<Option<Entry>> {
        self.index.entry(self.location, path)
    }

    fn live_files(&self) -> Result<u64> {
        self.index.live_file_count(self.location)
    }

    fn entries_page(&self, after: Option<&RelPath>, limit: usize) -> Result<Vec<Entry>> {
        self.index.entries_page(self.location, after, limit)
    }

    fn count(&self, after: Option<u64>) -> Result<u64> {
        self.index.row_count(self.location, after)
    }
}
