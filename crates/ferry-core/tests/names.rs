//! File names that are not valid UTF-8 (legacy Latin-1 names like `caf\xe9.txt`): they
//! are indexed under escaped keys (`rel_path`), kept intact in SQLite, and synced with
//! their bytes: files, folders, symlink targets, renames, deletions, conflict copies.

use ferry_core::index::Index;
use ferry_core::model::RelPath;
use ferry_core::model::{Entry, EntryKind, StatInfo};
use ferry_core::plan::{ConflictPolicy, SyncMode};
use ferry_core::versions::versions_of_path;
use ferry_core::NoProgress;
use ferry_core::{sync, SyncOptions, SyncOutcome};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

mod common;
use common::{tree_without_ferry, Pair};

fn os(b: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(b))
}

fn rel(b: &[u8]) -> RelPath {
    RelPath::from_bytes(b).unwrap()
}

fn entry(path: RelPath, kind: EntryKind, link: Option<&str>) -> Entry {
    let stat = StatInfo {
        size: 1,
        mtime_ns: 2,
        ctime_ns: 3,
        inode: 4,
        mode: 0o644,
    };
    let mut e = Entry::at(path, kind, stat);
    e.state.link_target = link.map(str::to_string);
    e.cache.sequence = 1;
    e
}

/// Keys with NULs in them go into SQLite and come back whole, sort in the same order
/// as in Rust, and bound the primary-key range of a subtree.
#[test]
fn sqlite_keeps_keys_with_nuls_whole_and_in_order() {
    // rusqlite binds a `&str` with its length and reads back every byte.
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    let key = "caf\0e9.txt";
    let (back, bytes): (String, Vec<u8>) = conn
        .query_row("SELECT ?1, CAST(?1 AS BLOB)", [key], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(back, key);
    assert_eq!(bytes, key.as_bytes());

    let mut index = Index::open_in_memory().unwrap();
    let loc = index.insert_location("u", Path::new("/r"), 1).unwrap();
    let paths: Vec<RelPath> = [
        &b"d"[..],
        b"d\xe9",
        b"d\xe9/x",
        b"d/x",
        b"d/\xff",
        b"d/\xff/y",
        b"d-x",
        b"\xe9",
        b"e",
        b"caf\xe9.txt",
    ]
    .iter()
    .map(|b| rel(b))
    .collect();
    let entries: Vec<Entry> = paths
        .iter()
        .map(|p| entry(p.clone(), EntryKind::File, Some("t\0ff")))
        .collect();
    index.put_entries(loc.id, &entries).unwrap();

    let mut sorted = paths.clone();
    sorted.sort();
    let back = index.entries(loc.id).unwrap();
    assert_eq!(
        back.iter().map(|e| e.path.clone()).collect::<Vec<_>>(),
        sorted,
        "SQLite's ORDER BY path is the keys' order in Rust"
    );
    assert!(back
        .iter()
        .all(|e| e.state.link_target.as_deref() == Some("t\0ff")));
    let stat: Vec<RelPath> = index
        .stat_rows(loc.id)
        .unwrap()
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(stat, sorted);

    let got = index.entry(loc.id, &rel(b"caf\xe9.txt")).unwrap().unwrap();
    assert_eq!(&got.path.to_bytes()[..], b"caf\xe9.txt");
    assert!(index.entry(loc.id, &rel(b"caf")).unwrap().is_none());

    let under = |index: &Index, p: &[u8]| -> Vec<Vec<u8>> {
        index
            .stat_rows_under(loc.id, &rel(p))
            .unwrap()
            .into_iter()
            .map(|r| r.path.to_bytes().into_owned())
            .collect()
    };
    // In key order: an escaped byte (NUL) sorts before every character.
    assert_eq!(
        under(&index, b"d"),
        vec![
            b"d".to_vec(),
            b"d/\xff".to_vec(),
            b"d/\xff/y".to_vec(),
            b"d/x".to_vec()
        ]
    );
    assert_eq!(
        under(&index, b"d\xe9"),
        vec![b"d\xe9".to_vec(), b"d\xe9/x".to_vec()]
    );
    assert_eq!(
        under(&index, b"d/\xff"),
        vec![b"d/\xff".to_vec(), b"d/\xff/y".to_vec()]
    );

    index.forget_entries(loc.id, &[rel(b"d\xe9/x")]).unwrap();
    assert_eq!(under(&index, b"d\xe9"), vec![b"d\xe9".to_vec()]);
}

impl Pair {
    fn run(&mut self, policy: ConflictPolicy) -> SyncOutcome {
        let opts = SyncOptions {
            mode: Some(SyncMode::Bidirectional),
            policy: Some(policy),
            ..Default::default()
        };
        let out = sync(&mut self.index, &self.a, &self.b, &opts, &NoProgress).unwrap();
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert!(out.scan_a.errors.is_empty(), "{:?}", out.scan_a.errors);
        assert!(out.scan_b.errors.is_empty(), "{:?}", out.scan_b.errors);
        out
    }

    fn converged(&mut self) {
        assert_eq!(tree_without_ferry(&self.a), tree_without_ferry(&self.b));
        let again = self.run(ConflictPolicy::KeepBoth);
        assert!(again.plan.actions.is_empty(), "{:?}", again.plan.actions);
    }
}

/// Names in `dir` (bytes) that start with `prefix`.
fn names_starting(dir: &Path, prefix: &[u8]) -> Vec<Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn latin1_names_sync_rename_delete_and_conflict_with_their_bytes() {
    let mut p = Pair::new();
    let a = p.a.clone();
    let b = p.b.clone();
    std::fs::write(a.join(os(b"caf\xe9.txt")), "café in Latin-1").unwrap();
    std::fs::create_dir(a.join(os(b"r\xe9sum\xe9"))).unwrap();
    std::fs::write(a.join(os(b"r\xe9sum\xe9/cv.txt")), "cv").unwrap();
    std::fs::write(a.join(os(b"r\xe9sum\xe9/\xff.bin")), "ff").unwrap();
    std::os::unix::fs::symlink(os(b"cible\xe9"), a.join(os(b"lien\xe9"))).unwrap();
    // Neighbours whose keys sort around the escaped ones (`d` < `d\0e9` < `d-x` < `d/x`).
    std::fs::create_dir(a.join("d")).unwrap();
    std::fs::write(a.join("d/x"), "dx").unwrap();
    std::fs::write(a.join(os(b"d\xe9")), "d-e9").unwrap();
    std::fs::write(a.join("d-x"), "d-x").unwrap();
    // A valid UTF-8 name that reads like an escape stays a different file.
    std::fs::write(a.join("caf\\xe9.txt"), "literal backslash").unwrap();

    let first = p.run(ConflictPolicy::KeepBoth);
    assert_eq!(first.stats.files_copied, 8, "{:?}", first.plan.actions);
    p.converged();
    assert_eq!(
        std::fs::read_link(b.join(os(b"lien\xe9"))).unwrap(),
        PathBuf::from(OsStr::from_bytes(b"cible\xe9"))
    );
    assert_eq!(
        std::fs::read(b.join(os(b"r\xe9sum\xe9/\xff.bin"))).unwrap(),
        b"ff"
    );

    // A rename moves no bytes: delete + create of the same content become a rename.
    std::fs::rename(a.join(os(b"caf\xe9.txt")), a.join(os(b"caf\xe8.txt"))).unwrap();
    let renamed = p.run(ConflictPolicy::KeepBoth);
    assert_eq!(renamed.stats.files_renamed, 1, "{:?}", renamed.plan.actions);
    assert_eq!(renamed.stats.files_copied, 0);
    assert!(!b.join(os(b"caf\xe9.txt")).exists());
    p.converged();

    // A deletion of a file in a non-UTF-8 folder; the deleted content is versioned
    // under its own bytes.
    std::fs::remove_file(b.join(os(b"r\xe9sum\xe9/\xff.bin"))).unwrap();
    let deleted = p.run(ConflictPolicy::KeepBoth);
    assert_eq!(deleted.stats.files_deleted, 1);
    assert!(!a.join(os(b"r\xe9sum\xe9/\xff.bin")).exists());
    p.converged();
    let kept = names_starting(&a.join(os(b".ferry/versions/r\xe9sum\xe9")), b"\xff.bin~");
    assert_eq!(kept.len(), 1, "{kept:?}");
    let versions = versions_of_path(&p.index, &a.join(os(b"r\xe9sum\xe9/\xff.bin"))).unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].row.reason, "deleted");

    // Both sides edit the same Latin-1 name: keep-both puts the loser beside it under
    // `caf\xe8.conflict-…-<side>.txt`, bytes intact, on both sides.
    std::fs::write(a.join(os(b"caf\xe8.txt")), "edited on A").unwrap();
    std::fs::write(b.join(os(b"caf\xe8.txt")), "edited on B, later").unwrap();
    let t = filetime::FileTime::from_unix_time(2_000_000_000, 0);
    filetime::set_file_mtime(b.join(os(b"caf\xe8.txt")), t).unwrap();
    let conflict = p.run(ConflictPolicy::KeepBoth);
    assert_eq!(conflict.plan.conflicts.len(), 1);
    assert_eq!(
        &conflict.plan.conflicts[0].path.to_bytes()[..],
        b"caf\xe8.txt"
    );
    assert_eq!(
        conflict.plan.conflicts[0].path.to_string(),
        r"caf\xe8.txt",
        "shown escaped"
    );
    p.converged();
    for side in [&a, &b] {
        let copies = names_starting(side, b"caf\xe8.conflict-");
        assert_eq!(copies.len(), 1, "{copies:?}");
        assert!(
            copies[0].ends_with(b"-a.txt"),
            "{:?}",
            OsStr::from_bytes(&copies[0])
        );
        assert_eq!(
            std::fs::read(side.join(os(&copies[0]))).unwrap(),
            b"edited on A"
        );
        assert_eq!(
            std::fs::read(side.join(os(b"caf\xe8.txt"))).unwrap(),
            b"edited on B, later"
        );
    }

    // A targeted run (the daemon's) on a non-UTF-8 folder sees the change.
    std::fs::write(a.join(os(b"r\xe9sum\xe9/cv.txt")), "cv, longer").unwrap();
    let opts = SyncOptions {
        only: Some([vec![rel(b"r\xe9sum\xe9")], vec![]]),
        ..Default::default()
    };
    let targeted = sync(&mut p.index, &a, &b, &opts, &NoProgress).unwrap();
    assert!(targeted.problems.is_empty(), "{:?}", targeted.problems);
    assert_eq!(targeted.stats.files_copied, 1);
    assert_eq!(
        std::fs::read(b.join(os(b"r\xe9sum\xe9/cv.txt"))).unwrap(),
        b"cv, longer"
    );
    p.converged();
}

/// A Latin-1 name near the file-name limit: its key is three times as long as its
/// bytes, but conflict copies and versions are shortened by the bytes on disk.
#[test]
fn long_latin1_names_fit_the_name_limit_on_disk() {
    let mut p = Pair::new();
    let (a, b) = (p.a.clone(), p.b.clone());
    let name = [&[0xe9u8; 246][..], b".txt"].concat(); // 250 bytes, a 742-byte key
    std::fs::write(a.join(os(&name)), "first").unwrap();
    p.run(ConflictPolicy::KeepBoth);
    p.converged();

    std::fs::write(a.join(os(&name)), "edited on A").unwrap();
    std::fs::write(b.join(os(&name)), "edited on B").unwrap();
    let out = p.run(ConflictPolicy::KeepBoth);
    assert_eq!(out.plan.conflicts.len(), 1);
    p.converged();
    let copies = names_starting(&a, &[0xe9; 20]);
    assert_eq!(copies.len(), 2, "the file and its conflict copy");
    for c in &copies {
        assert!(c.len() <= 255 && c.ends_with(b".txt"), "{}", c.len());
    }

    std::fs::remove_file(b.join(os(&name))).unwrap();
    p.run(ConflictPolicy::KeepBoth);
    let kept = names_starting(&a.join(".ferry/versions"), &[0xe9; 20]);
    assert!(!kept.is_empty());
    assert!(kept.iter().all(|k| k.len() <= 255));
}

/// A renamed folder whose name and contents are not UTF-8 still moves as one rename on
/// the other side (the pre-rename check walks its Latin-1 children by their bytes).
#[test]
fn latin1_folder_rename_is_one_directory_rename() {
    use std::os::unix::fs::MetadataExt;
    let mut p = Pair::new();
    let a = p.a.clone();
    let b = p.b.clone();
    std::fs::create_dir(a.join(os(b"d\xe9"))).unwrap();
    for i in 0..5u8 {
        let name = [b"f\xe8".as_slice(), &[b'0' + i]].concat();
        std::fs::write(a.join(os(b"d\xe9")).join(os(&name)), [i; 3]).unwrap();
    }
    p.run(ConflictPolicy::KeepBoth);
    let inode = std::fs::metadata(b.join(os(b"d\xe9"))).unwrap().ino();

    std::fs::rename(a.join(os(b"d\xe9")), a.join(os(b"e\xe9"))).unwrap();
    let out = p.run(ConflictPolicy::KeepBoth);
    assert_eq!(out.stats.dirs_renamed, 1, "{:#?}", out.plan.actions);
    assert_eq!(
        std::fs::metadata(b.join(os(b"e\xe9"))).unwrap().ino(),
        inode
    );
    p.converged();
}
