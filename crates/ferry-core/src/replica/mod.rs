//! A local folder as a replica: its identity and lock (`location`), safe access beneath
//! its root (`beneath`, `disk`), the walk and scan that index it, ignore rules, the
//! version store.

pub(crate) mod beneath;
pub(crate) mod chunk_source;
pub(crate) mod disk;
#[cfg(test)]
mod disk_on_fake;
pub(crate) mod fs;
pub(crate) mod fs_ops;
pub(crate) mod ignore_rules;
pub(crate) mod location;
#[cfg(test)]
pub(crate) mod mem_fs;
pub(crate) mod ordered_walk;
pub(crate) mod overlap;
pub(crate) mod partial;
pub(crate) mod scan;
pub(crate) mod version_store;
pub(crate) mod view;
pub(crate) mod walk;
pub(crate) mod writer;

pub use crate::execute::assemble::assemble;
pub use chunk_source::{ChunkSource, FolderContent, LocalContent, OpenContent, Piece};
pub use fs_ops::free_space;
pub use ignore_rules::{IndexRules, FERRY_DIR, TEMP_PREFIX};
pub use location::{canonical_root, open_location, Location};
pub use partial::{sweep_partials, PARTIAL_DIR, PARTIAL_GRACE, PARTIAL_MIN};
pub use scan::{
    scan_location, scan_one, scan_pair, scan_pair_scoped, scan_paths, ScanReport, Scope,
};
pub use writer::{LocalFolder, ReplicaWriter};
