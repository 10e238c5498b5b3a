//! Helpers shared by ferry-core's integration tests: folder fixtures and tree snapshots.
//!
//! Every test binary compiles its own copy of this module (`mod common;`) and uses only
//! part of it. The snapshots differ on purpose (what they record, whether `.ferry/` is in
//! them); each one says so, and a test picks the one whose meaning it relies on.

#![allow(dead_code)]

use ferry_core::index::Index;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

// ---------------------------------------------------------------- folder fixtures

/// A fresh temp dir holding one empty folder per name and an index at `index.db`.
/// Everything goes when the returned `TempDir` is dropped, so bind it to a name (`_tmp`,
/// not `_`).
pub fn folders<const N: usize>(names: [&str; N]) -> (TempDir, [PathBuf; N], Index) {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = names.map(|n| tmp.path().join(n));
    for d in &dirs {
        std::fs::create_dir(d).unwrap();
    }
    let index = Index::open(&tmp.path().join("index.db")).unwrap();
    (tmp, dirs, index)
}

/// Two empty folders `A` and `B` with their index, in one temp dir that lives as long as
/// the pair. Test files add the runs they need with their own `impl Pair { … }`.
pub struct Pair {
    pub tmp: TempDir,
    pub a: PathBuf,
    pub b: PathBuf,
    pub index: Index,
}

impl Pair {
    pub fn new() -> Pair {
        let (tmp, [a, b], index) = folders(["A", "B"]);
        Pair { tmp, a, b, index }
    }
}

// ---------------------------------------------------------------- tree snapshots

/// Every path below `dir` (files, folders, symlinks; `.ferry/` and ferry's temp files
/// included), each folder's contents listed before the folder. Never follows symlinks.
pub fn paths_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(paths_below(&p));
        }
        out.push(p);
    }
    out
}
