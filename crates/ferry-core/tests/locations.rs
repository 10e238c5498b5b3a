//! Roots are told apart by directory identity (device, inode), not by path: folders
//! that overlap through a symlink or a bind mount are refused, before anything is
//! written, and a walk that meets a root (or an ancestor of one) mounted inside the
//! other stops the run. A folder that was moved is followed to its new root with its
//! entries and conduits; a copy of a synced folder is refused with what to do.
//!
//! The bind-mount tests need root (`mount --bind`); they skip, saying so, when mounting
//! is not permitted.

mod common;

use common::{bind_mount, folders, stat_listing};
use ferry_core::index::{ConduitRow, Index, LocationRow};
use ferry_core::model::Entry;
use ferry_core::model::RelPath;
use ferry_core::plan::Action;
use ferry_core::replica::open_location;
use ferry_core::replica::IndexRules;
use ferry_core::replica::{scan_pair, scan_pair_scoped, Scope};
use ferry_core::Error;
use ferry_core::NoProgress;
use ferry_core::{sync, SyncOptions};
use std::path::{Path, PathBuf};

fn canon(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap()
}

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// Every location, entry and conduit the index holds.
fn index_state(index: &Index) -> (Vec<LocationRow>, Vec<Vec<Entry>>, Vec<ConduitRow>) {
    let locations = index.locations().unwrap();
    let entries = locations
        .iter()
        .map(|l| index.entries(l.id).unwrap())
        .collect();
    (locations, entries, index.conduits().unwrap())
}

fn dry() -> SyncOptions {
    SyncOptions {
        dry_run: true,
        ..Default::default()
    }
}

fn refusal(r: ferry_core::Result<ferry_core::SyncOutcome>) -> String {
    match r {
        Err(Error::Refused(msg)) => msg,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// `mount --bind H A2/sub; sync H A2`: no path of H starts with A2, yet A2 holds H.
/// Refused (either way round, as a dry run too), naming the mount point; nothing is
/// written (no marker, no index row). Today's path check let every run nest H once more.
#[test]
fn bind_mount_of_one_root_inside_the_other_is_refused_before_anything_is_written() {
    let (_tmp, [h, a2], mut index) = folders(["H", "A2"]);
    write(&h, "f.txt", "only in H");
    std::fs::create_dir(a2.join("sub")).unwrap();
    let Some(_mount) = bind_mount(&h, &a2.join("sub")) else {
        return;
    };
    let before = (stat_listing(&h), stat_listing(&a2), index_state(&index));
    for (x, y, opts) in [
        (&h, &a2, SyncOptions::default()),
        (&a2, &h, SyncOptions::default()),
        (&h, &a2, dry()),
    ] {
        let msg = refusal(sync(&mut index, x, y, &opts, &NoProgress));
        let at = canon(&a2).join("sub");
        assert!(msg.contains(&at.display().to_string()), "{msg}");
        assert!(msg.contains("overlap"), "{msg}");
    }
    assert_eq!(
        (stat_listing(&h), stat_listing(&a2), index_state(&index)),
        before
    );
    assert!(!h.join(".ferry").exists() && !a2.join(".ferry").exists());
}

/// The walk's own check, for mounts the up-front check cannot see (made after it, or
/// not in this mount namespace's table): locations opened without it, then a root —
/// or an ancestor of one — mounted inside the other. A full scan and targeted scans (a
/// touched path at the mount, and one below it) stop with an error naming the mount
/// point, and nothing is recorded from beyond it: a walk never enters the mount, so
/// what a streamed scan recorded before meeting it is only each folder's own files
/// (and a targeted scope's hit stops both sides before either records anything).
#[test]
fn walk_stops_at_a_mount_of_the_other_root_or_its_ancestor() {
    let (tmp, [h, a2], mut index) = folders(["H", "A2"]);
    write(&h, "f.txt", "only in H");
    write(&a2, "own.txt", "a2's own");
    std::fs::create_dir(a2.join("sub")).unwrap();
    let la = open_location(&mut index, &h, false).unwrap();
    let lb = open_location(&mut index, &a2, false).unwrap();
    let (lock_a, lock_b) = (la.lock().unwrap(), lb.lock().unwrap());
    let at = canon(&a2).join("sub");
    // H itself, then the temp dir holding both roots.
    for (src, what) in [
        (canon(&h), "a folder of this run"),
        (canon(tmp.path()), "which holds"),
    ] {
        let Some(_mount) = bind_mount(&src, &at) else {
            return;
        };
        let touched = |p: &str| Scope::paths(&[RelPath::new(p).unwrap()]);
        let scopes = [
            (Scope::All, Scope::All),
            (Scope::All, touched("sub")),
            (Scope::All, touched("sub/f.txt")),
        ];
        for (sa, sb) in &scopes {
            let r = scan_pair_scoped(
                &mut index,
                [(&la, &lock_a), (&lb, &lock_b)],
                IndexRules::default(),
                [sa, sb],
                &NoProgress,
            );
            let msg = match r {
                Err(Error::Refused(msg)) => msg,
                Err(e) => panic!("{sb:?}: expected a refusal, got {e}"),
                Ok(_) => panic!("{sb:?}: the scan went through a mount of {}", src.display()),
            };
            assert!(msg.contains(&at.display().to_string()), "{msg}");
            assert!(msg.contains(what), "{msg}");
        }
        let r = scan_pair(
            &mut index,
            [(&lb, &lock_b), (&la, &lock_a)],
            IndexRules::default(),
            &NoProgress,
        );
        assert!(matches!(r, Err(Error::Refused(_))), "{r:?}");
        let paths = |id| -> Vec<String> {
            let entries = index.entries(id).unwrap();
            entries
                .iter()
                .map(|e| e.path.as_str().to_string())
                .collect()
        };
        // H's own file at most; A2's own file and its folder at most; nothing through
        // the mount (`sub/f.txt`, or the temp dir's `H`/`A2` below `sub`), no deletion.
        assert!(
            paths(la.id()).iter().all(|p| p == "f.txt"),
            "{:?}",
            paths(la.id())
        );
        assert!(
            paths(lb.id()).iter().all(|p| p == "own.txt"),
            "{:?}",
            paths(lb.id())
        );
        for id in [la.id(), lb.id()] {
            assert!(index.entries(id).unwrap().iter().all(|e| !e.is_tombstone()));
        }
    }
}

/// The same folder, or one inside the other, reached through a symlink or a bind mount
/// (of a root, or of a root's ancestor) is refused, and nothing is written.
#[test]
fn overlap_through_a_symlink_or_a_bind_mount_is_refused() {
    let (tmp, [a, p, m, m2], mut index) = folders(["A", "P", "M", "M2"]);
    write(&a, "sub/x.txt", "x");
    std::fs::create_dir(p.join("q")).unwrap();
    let link = tmp.path().join("L");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let sub_link = tmp.path().join("L2");
    std::os::unix::fs::symlink(a.join("sub"), &sub_link).unwrap();
    let opts = SyncOptions::default();
    for (x, y) in [(&a, &link), (&link, &a), (&a, &sub_link), (&sub_link, &a)] {
        let msg = refusal(sync(&mut index, x, y, &opts, &NoProgress));
        assert!(msg.contains("overlap"), "{msg}");
    }
    // A at M: the same folder at two paths, neither a symlink.
    let Some(_m) = bind_mount(&a, &m) else {
        return;
    };
    // P at M2, while P/q is synced with M2: M2 holds P/q.
    let Some(_m2) = bind_mount(&p, &m2) else {
        return;
    };
    let q = p.join("q");
    for (x, y, needle) in [
        (&a, &m, "are the same folder"),
        (&m, &a, "are the same folder"),
        (&q, &m2, "lies inside"),
        (&m2, &q, "lies inside"),
        (&m, &a.join("sub"), "lies inside"),
    ] {
        let msg = refusal(sync(&mut index, x, y, &opts, &NoProgress));
        assert!(msg.contains(needle), "{x:?} {y:?}: {msg}");
    }
    let msg = refusal(sync(&mut index, &q, &m2, &dry(), &NoProgress));
    assert!(msg.contains("bind mount"), "{msg}");
    assert!(index.locations().unwrap().is_empty());
    for d in [&a, &p, &q] {
        assert!(!d.join(".ferry").exists(), "{d:?}");
    }
}

/// `sync A B`, `mv A A2`, `sync A2 B`: A2's marker names a location the index has at
/// A, which is gone. The location follows the folder: same location and conduit, its
/// entries kept, so nothing is copied or deleted, and the run says so. A dry run first
/// reports it and writes nothing. (Today: a raw `UNIQUE constraint failed`.)
#[test]
fn moved_folder_is_followed_with_its_entries_and_conduit() {
    let (tmp, [a, b], mut index) = folders(["A", "B"]);
    write(&a, "x.txt", "x");
    write(&a, "d/y.txt", "y");
    let opts = SyncOptions::default();
    let first = sync(&mut index, &a, &b, &opts, &NoProgress).unwrap();
    assert_eq!(first.stats.files_copied, 2);
    let loc = index.location_by_root(&canon(&a)).unwrap().unwrap();
    // What a sync decides on (a rescan may refresh a racy file's stat and flag).
    let synced_state = |index: &Index| -> Vec<_> {
        index
            .entries(loc.id)
            .unwrap()
            .into_iter()
            .map(|e| {
                (
                    e.is_tombstone(),
                    e.path,
                    e.state.hash,
                    e.state.version,
                    e.cache.sequence,
                )
            })
            .collect()
    };
    let entries = synced_state(&index);

    let a2 = tmp.path().join("A2");
    std::fs::rename(&a, &a2).unwrap();
    let before = (index_state(&index), stat_listing(&a2), stat_listing(&b));
    let d = sync(&mut index, &a2, &b, &dry(), &NoProgress).unwrap();
    assert_eq!(d.conduit_id, first.conduit_id);
    assert!(
        d.plan
            .actions
            .iter()
            .all(|a| matches!(a, Action::Record { .. })),
        "{:?}",
        d.plan
    );
    assert_eq!(d.info.len(), 1, "{:?}", d.info);
    assert!(d.info[0].contains("moved from"), "{:?}", d.info);
    assert_eq!(
        (index_state(&index), stat_listing(&a2), stat_listing(&b)),
        before,
        "the dry run wrote something"
    );

    let second = sync(&mut index, &a2, &b, &opts, &NoProgress).unwrap();
    assert!(second.problems.is_empty(), "{:?}", second.problems);
    assert_eq!(second.conduit_id, first.conduit_id);
    assert_eq!(
        (second.stats.files_copied, second.stats.files_deleted),
        (0, 0)
    );
    assert_eq!(second.info.len(), 1, "{:?}", second.info);
    let note = &second.info[0];
    for p in [canon(&a2), canon(tmp.path()).join("A")] {
        assert!(note.contains(&p.display().to_string()), "{note}");
    }
    let moved = index.location(loc.id).unwrap();
    assert_eq!(moved.root, canon(&a2));
    assert_eq!((&moved.uuid, moved.replica_id), (&loc.uuid, loc.replica_id));
    assert_eq!(synced_state(&index), entries);
    assert_eq!(index.locations().unwrap().len(), 2);
    assert_eq!(index.conduits().unwrap().len(), 1);

    // From now on an ordinary conduit: edits flow, nothing more is said.
    write(&a2, "x.txt", "x, edited after the move");
    let third = sync(&mut index, &a2, &b, &opts, &NoProgress).unwrap();
    assert!(third.info.is_empty(), "{:?}", third.info);
    assert_eq!(third.stats.files_copied, 1);
    assert_eq!(
        std::fs::read_to_string(b.join("x.txt")).unwrap(),
        "x, edited after the move"
    );
}

/// The old path may hold something else now (a new empty folder, or a symlink to the
/// new place): it no longer has the marker, so the location still follows the folder.
#[test]
fn moved_folder_is_followed_when_its_old_path_holds_something_else() {
    for leave_behind in ["empty folder", "symlink to the new place"] {
        let (tmp, [a, b], mut index) = folders(["A", "B"]);
        write(&a, "x.txt", "x");
        let opts = SyncOptions::default();
        let first = sync(&mut index, &a, &b, &opts, &NoProgress).unwrap();
        let a2 = tmp.path().join("A2");
        std::fs::rename(&a, &a2).unwrap();
        match leave_behind {
            "empty folder" => std::fs::create_dir(&a).unwrap(),
            _ => std::os::unix::fs::symlink(&a2, &a).unwrap(),
        }
        let second = sync(&mut index, &a2, &b, &opts, &NoProgress).unwrap();
        assert_eq!(second.conduit_id, first.conduit_id, "{leave_behind}");
        assert_eq!(
            (second.stats.files_copied, second.stats.files_deleted),
            (0, 0),
            "{leave_behind}"
        );
        assert_eq!(second.info.len(), 1, "{leave_behind}: {:?}", second.info);
    }
}

/// `cp -a A A2`, then `sync A2 B`: A still holds the marker A2 copied, so A2 is a copy,
/// not a move. Refused (as a dry run too) with a `Location` error that says to delete
/// A2/.ferry; nothing is written. Doing that makes A2 a folder of its own.
#[test]
fn copied_folder_is_refused_with_what_to_do() {
    let (tmp, [a, b], mut index) = folders(["A", "B"]);
    write(&a, "x.txt", "x");
    let opts = SyncOptions::default();
    sync(&mut index, &a, &b, &opts, &NoProgress).unwrap();
    let a2 = tmp.path().join("A2");
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(&a)
        .arg(&a2)
        .status()
        .unwrap();
    assert!(cp.success());
    let before = (
        index_state(&index),
        stat_listing(&a),
        stat_listing(&a2),
        stat_listing(&b),
    );
    for o in [dry(), opts.clone()] {
        match sync(&mut index, &a2, &b, &o, &NoProgress) {
            Err(Error::Location { root, reason }) => {
                assert_eq!(root, canon(&a2));
                assert!(reason.contains("copy"), "{reason}");
                let ferry_dir = canon(&a2).join(".ferry");
                assert!(
                    reason.contains(&format!("delete {}", ferry_dir.display())),
                    "{reason}"
                );
            }
            other => panic!("expected a Location error, got {other:?}"),
        }
    }
    assert_eq!(
        (
            index_state(&index),
            stat_listing(&a),
            stat_listing(&a2),
            stat_listing(&b)
        ),
        before,
        "a refused run wrote something"
    );

    std::fs::remove_dir_all(a2.join(".ferry")).unwrap();
    let out = sync(&mut index, &a2, &b, &opts, &NoProgress).unwrap();
    assert_eq!(
        (out.stats.files_copied, out.stats.files_deleted),
        (0, 0),
        "same content on both sides"
    );
    assert_eq!(index.locations().unwrap().len(), 3);
}

/// A synced folder reached by another path (a bind mount of it) carries its marker but
/// is no move and no copy: the index's own path still leads to the same directory.
/// Refused, naming the path to use.
#[test]
fn synced_folder_through_a_bind_mount_is_refused_naming_its_path() {
    let (_tmp, [a, b, c, m], mut index) = folders(["A", "B", "C", "M"]);
    write(&a, "x.txt", "x");
    let opts = SyncOptions::default();
    sync(&mut index, &a, &b, &opts, &NoProgress).unwrap();
    let Some(_mount) = bind_mount(&a, &m) else {
        return;
    };
    let before = index_state(&index);
    match sync(&mut index, &m, &c, &opts, &NoProgress) {
        Err(Error::Location { reason, .. }) => {
            assert!(
                reason.contains(&format!("sync it as {}", canon(&a).display())),
                "{reason}"
            );
        }
        other => panic!("expected a Location error, got {other:?}"),
    }
    assert_eq!(index_state(&index), before);
    assert!(!c.join(".ferry").exists());
}
