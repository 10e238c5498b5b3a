//! Helpers shared by ferry-core's integration tests: folder fixtures and tree snapshots.
//!
//! Every test binary compiles its own copy of this module (`mod common;`) and uses only
//! part of it. The snapshots differ on purpose (what they record, whether `.ferry/` is in
//! them); each one says so, and a test picks the one whose meaning it relies on.

#![allow(dead_code)]

use ferry_core::index::Index;
use ferry_core::plan::{reconcile, ReconcileInput};
use ferry_core::plan::{ConflictPolicy, Plan, SyncMode};
use ferry_core::replica::scan_location;
use ferry_core::replica::IndexRules;
use ferry_core::replica::{open_location, Location};
use ferry_core::NoProgress;
use ferry_core::{ExecReport, Executor, FaultPoint};
#[allow(unused_imports)]
pub use ferry_testkit::{bind_mount, BindMount};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
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

    /// Scans both sides and plans without executing, so the disk can change behind
    /// the plan's back.
    pub fn plan(&mut self) -> (Location, Location, Plan) {
        let la = open_location(&mut self.index, &self.a, false).unwrap();
        let lb = open_location(&mut self.index, &self.b, false).unwrap();
        for l in [&la, &lb] {
            let lock = l.lock().unwrap();
            scan_location(
                &mut self.index,
                l,
                &lock,
                IndexRules::default(),
                &NoProgress,
            )
            .unwrap();
        }
        let plan = self.reconcile(&la, &lb);
        (la, lb, plan)
    }

    /// Reconciles the index as it is (bidirectional, newest wins; no scan, no
    /// unchanged-conduit short cut).
    pub fn reconcile(&self, la: &Location, lb: &Location) -> Plan {
        let (ea, eb) = (
            self.index.entries(la.id()).unwrap(),
            self.index.entries(lb.id()).unwrap(),
        );
        reconcile(ReconcileInput {
            a: &ea,
            b: &eb,
            mode: SyncMode::Bidirectional,
            policy: ConflictPolicy::Newest,
            now: 0,
            occupied: &|_| false,
        })
        .unwrap()
    }

    /// Runs `plan` with no injected fault.
    pub fn execute(&mut self, la: &Location, lb: &Location, plan: &Plan) -> ExecReport {
        Executor {
            index: &mut self.index,
            a: Some(la),
            b: Some(lb),
            peer_b: None,
            pull: None,
            progress: &NoProgress,
            fault: FaultPoint::None,
            workers: 0,
            limiter: None,
            generation: None,
            cancel: None,
        }
        .run(plan)
        .unwrap()
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

/// Every path below `root`, `.ferry/` included, as sorted `path size mtime` lines: any
/// write anywhere under the root (a marker, a lock file, a temp file) changes it.
pub fn stat_listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            out.push(format!(
                "{} {} {:?}",
                p.strip_prefix(root).unwrap().display(),
                meta.len(),
                meta.modified().unwrap()
            ));
            if meta.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// What [`tree_without_ferry`] records about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Content and permission bits.
    File(Vec<u8>, u32),
    Dir,
    /// The link's target.
    Link(PathBuf),
}

/// Snapshot of a tree without the top-level `.ferry/`: path → kind, content, permission
/// bits, symlink target. Keyed by the paths' bytes (names need not be UTF-8). Never
/// follows symlinks.
pub fn tree_without_ferry(root: &Path) -> BTreeMap<PathBuf, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new(".ferry") {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                out.insert(rel, Node::Link(std::fs::read_link(&p).unwrap()));
            } else if m.is_dir() {
                out.insert(rel, Node::Dir);
                walk(root, &p, out);
            } else {
                let mode = m.permissions().mode() & 0o7777;
                out.insert(rel, Node::File(std::fs::read(&p).unwrap(), mode));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Contents of a tree without the top-level `.ferry/`: path → file content, `None` for a
/// folder. Follows symlinks and ignores permission bits.
pub fn contents_without_ferry(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let r = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
            if r == ".ferry" {
                continue;
            }
            if p.is_dir() {
                out.insert(r, None);
                walk(root, &p, out);
            } else {
                out.insert(r, Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The temp name ferry gives its staged copy of `content` in the location at `root`
/// (the content's hash is in the name, so a sweep after a crash knows it for ferry's).
#[allow(dead_code)]
pub fn staged_copy_name(root: &Path, content: &[u8]) -> String {
    let generic = leftover_temp_name(root);
    let h = blake3::hash(content).to_hex()[..8].to_string();
    generic.replace("0123456789abcdef", &format!("{h}abcd1234"))
}

/// The name a temp file of the location at `root` carries (as `fs_ops::temp_name`
/// makes it from the location's ID in its marker): a leftover of a run that died.
#[allow(dead_code)]
pub fn leftover_temp_name(root: &Path) -> String {
    let uuid = std::fs::read_to_string(root.join(".ferry/location")).unwrap();
    let tag = blake3::hash(format!("temp:{}", uuid.trim()).as_bytes()).to_hex()[..16].to_string();
    format!(".ferry.tmp.{tag}.0123456789abcdef")
}

// ---------------------------------------------------------------- bind mounts
