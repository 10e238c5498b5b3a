//! ferry-core: the sync engine, grouped by stage: `model` (what a replica holds),
//! `replica` (a local folder: scan, safe disk access, versions), `index` (SQLite),
//! `plan` (reconcile, pure), `execute` (apply a plan safely). No network here.

pub mod cancel;
pub mod conduit;
pub mod conduit_edit;
pub mod error;
pub mod execute;
pub mod fault;
pub mod index;
pub mod library;
pub mod model;
pub mod parallel;
pub mod plan;
pub mod problem;
pub mod progress;
pub mod replica;
pub mod resolve;
pub mod restore;
pub mod retention;
pub mod share;
pub mod sync;
pub mod throttle;

pub use error::{Error, Result};

/// Version of the shape of ferry's JSON documents (CLI `--json` output and the local
/// API): raised when a field changes meaning or goes away, not when one is added.
pub const JSON_SCHEMA_VERSION: u64 = 1;
