//! ferry-core: the sync engine. Index (SQLite), scan, reconcile (pure), execute (safe),
//! versions. No network here.

pub mod archive;
pub mod beneath;
pub mod cancel;
pub mod chunk;
pub mod conduit;
pub mod conduit_edit;
pub mod conflict_name;
pub mod dir_rename;
mod disk;
pub mod entry;
pub mod error;
pub mod execute;
pub mod fault;
pub mod fs_ops;
pub mod ignore_rules;
pub mod index;
pub mod itemize;
pub mod library;
pub mod location;
pub mod overlap;
pub mod parallel;
pub mod plan;
pub mod progress;
pub mod reconcile;
pub mod rel_path;
pub mod resolve;
pub mod restore;
pub mod retention;
pub mod scan;
pub mod sync;
pub mod throttle;
pub mod version_store;
pub mod version_vector;
pub mod walk;

pub use error::{Error, Result};

/// Version of the shape of ferry's JSON documents (CLI `--json` output and the local
/// API): raised when a field changes meaning or goes away, not when one is added.
pub const JSON_SCHEMA_VERSION: u64 = 1;
