//! Helpers shared by the ferry-cli integration tests that start the real binary as a
//! process of their own (`crash.rs`, `daemon.rs`).
//!
//! Every test binary compiles its own copy of this module (`mod common;`) and uses only
//! part of it.

#![allow(dead_code)]

#[cfg(feature = "net")]
pub mod device;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// A fresh temp dir holding one empty folder per name. Everything goes when the returned
/// `TempDir` is dropped, so keep it alive as long as the folders are used.
pub fn folders<const N: usize>(names: [&str; N]) -> (TempDir, [PathBuf; N]) {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = names.map(|n| tmp.path().join(n));
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
    }
    (tmp, dirs)
}

/// The `ferry` binary under test, with its library (`FERRY_HOME`) at `home` and no
/// config file (the user's own `~/.config/ferry/config.toml` must not steer tests).
pub fn ferry_cmd(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.env("FERRY_HOME", home)
        .env("FERRY_CONFIG", home.join("no-config.toml"));
    c
}

/// Every file below `root` with its bytes, without the top-level `.ferry/` and without
/// ferry's temp files (`.ferry.tmp.*`). Panics on a file it cannot read: for trees that
/// nothing is writing to while they are read.
pub fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    files_below(root, false)
}

/// Like [`files`], but a file that cannot be read (a running daemon may be replacing or
/// removing it right then) is left out instead of failing the test.
pub fn readable_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    files_below(root, true)
}

fn files_below(root: &Path, skip_unreadable: bool) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel == ".ferry" || rel.contains(".ferry.tmp.") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if skip_unreadable {
                if let Ok(bytes) = std::fs::read(&p) {
                    out.insert(rel, bytes);
                }
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}
