//! ferry-core: ferry's sync engine. It keeps two folders in step: it scans each into an
//! index (SQLite), reconciles what changed on either side into a plan (a pure
//! function), and applies the plan safely — every write goes through a verified temp
//! file and an atomic rename relative to the folder's handle, and whatever is
//! overwritten or deleted is kept in the folder's version store first. No network here.
//!
//! The everyday entry point is [`sync`]: two folders, an [`Index`] and
//! [`SyncOptions`] in, a [`SyncOutcome`] (counters, conflicts, typed [`Problem`]s) out.
//! The pair becomes a *conduit* that remembers its mode ([`SyncMode`]), conflict policy
//! ([`ConflictPolicy`]) and schedule ([`Schedule`]); [`sync_conduit`] runs a saved one.
//!
//! ```
//! use ferry_core::{sync, Index, NoProgress, SyncOptions};
//!
//! let tmp = tempfile::tempdir()?;
//! let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
//! std::fs::create_dir(&a)?;
//! std::fs::write(a.join("hello.txt"), "hello")?;
//!
//! let mut index = Index::open(&tmp.path().join("index.db"))?;
//! let outcome = sync(&mut index, &a, &b, &SyncOptions::default(), &NoProgress)?;
//! assert_eq!(outcome.stats.files_copied, 1);
//! assert!(outcome.problems.is_empty());
//! assert_eq!(std::fs::read_to_string(b.join("hello.txt"))?, "hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The modules below the root are for the daemon, the CLI and tests that need more than
//! a run: [`index`] (rows of the index), [`model`] (entries, paths, hashes), [`plan`]
//! (the reconciler and its plan), [`replica`] (a local folder: locations, scans, content
//! by hash), [`conduit`] (settings and their text forms), [`versions`] (restore and
//! retention), [`resolve`] (settling conflicts) and [`library`] (where the index lives).

#![deny(missing_docs)]

pub mod bandwidth;
mod batched;
mod cancel;
pub mod conduit;
mod conduit_edit;
mod error;
mod execute;
mod fault;
pub mod index;
pub mod library;
pub mod model;
mod parallel;
pub mod plan;
mod problem;
mod progress;
pub mod replica;
pub mod resolve;
mod restore;
mod retention;
mod selective;
pub mod share;
mod sync;
mod throttle;

pub use cancel::Cancel;
pub use conduit::Schedule;
pub use error::{Error, Result};
pub use execute::{ExecReport, Executor, FaultPoint};
pub use index::Index;
pub use plan::{ConflictPolicy, Side, SyncMode};
pub use problem::{Problem, ProblemKind};
pub use progress::{NoProgress, Progress, Work};
pub use sync::{sync, sync_conduit, NewConduitDefaults, PullSource, SyncOptions, SyncOutcome};

/// Versions a run kept of what it replaced or deleted: finding and restoring them, and
/// pruning them by a retention policy.
pub mod versions {
    pub use crate::restore::{restore, versions_of_path};
    pub use crate::retention::{prune_location, Retention};
}

/// Files on demand (selective mode): dehydrating, hydrating, pinning, eviction by
/// quota and free space, and reading online-only files piece by piece.
pub mod on_demand {
    pub use crate::index::SelectiveSettings;
    pub use crate::selective::{
        bytes_on_disk, dehydrate, evict, evict_now, free_up, hydrate, hydrate_reporting, is_pinned,
        keep_offline, keep_offline_reporting, list, open_files, read_online, usage, usage_of,
        Eviction, HydrationEvent, OnDemandReport, PathState, SelectivePair, Usage,
    };
}

/// Version of the shape of ferry's JSON documents (CLI `--json` output and the local
/// API): raised when a field changes meaning or goes away, not when one is added.
pub const JSON_SCHEMA_VERSION: u64 = 1;
