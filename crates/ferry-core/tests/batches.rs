//! Large runs planned and run a batch of paths at a time (issue 17): the result is the
//! whole run's, batch boundaries anywhere (a folder and its files, a rename's two ends,
//! the mass-deletion count), and a run that needs the whole tree is planned whole.

use ferry_core::{sync, Error, NoProgress, SyncOptions, SyncOutcome};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

mod common;
use common::Pair;

fn run(pair: &mut Pair, batch: Option<usize>) -> SyncOutcome {
    let opts = SyncOptions {
        batch_paths: batch,
        ..Default::default()
    };
    let out = sync(&mut pair.index, &pair.a, &pair.b, &opts, &NoProgress).unwrap();
    assert!(out.problems.is_empty(), "problems: {:?}", out.problems);
    out
}

/// Every path below `root` but `.ferry/`: kind, permission bits, size, mtime, content.
fn listing(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if rel == ".ferry" {
                continue;
            }
            let m = fs::symlink_metadata(&p).unwrap();
            let what = if m.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if m.file_type().is_symlink() {
                // A link's own time is left out: set when this test made it.
                let line = format!("link {}", fs::read_link(&p).unwrap().display());
                out.insert(rel, line);
                continue;
            } else {
                format!("file {:?}", String::from_utf8_lossy(&fs::read(&p).unwrap()))
            };
            let line = format!("{what} {:o} {} {}", m.mode() & 0o7777, m.size(), m.mtime());
            out.insert(rel, line);
        }
    }
    out
}

/// A tree of `dirs` folders (one nested a level deeper) of `files` files each, some
/// with other modes, a symlink and an empty folder; folder times set in the past.
/// [`listing`] without folders' mtimes: a run carries a folder's time when it makes the
/// folder, not when files come and go in it.
fn shape(root: &Path) -> BTreeMap<String, String> {
    listing(root)
        .into_iter()
        .map(|(k, v)| match v.strip_prefix("dir ") {
            Some(rest) => (
                k,
                format!("dir {}", rest.rsplit_once(' ').map_or(rest, |r| r.0)),
            ),
            None => (k, v),
        })
        .collect()
}

/// Asserts two listings equal, naming only the paths that differ.
#[track_caller]
fn assert_same(left: &BTreeMap<String, String>, right: &BTreeMap<String, String>) {
    let keys: std::collections::BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    let differ: Vec<String> = keys
        .into_iter()
        .filter(|k| left.get(*k) != right.get(*k))
        .map(|k| format!("{k}: {:?} vs {:?}", left.get(k), right.get(k)))
        .collect();
    assert!(differ.is_empty(), "trees differ:\n{}", differ.join("\n"));
}

fn make_tree(root: &Path, dirs: usize, files: usize) {
    for d in 0..dirs {
        let dir = if d % 3 == 0 {
            root.join(format!("d{d:02}/inner"))
        } else {
            root.join(format!("d{d:02}"))
        };
        fs::create_dir_all(&dir).unwrap();
        for f in 0..files {
            let p = dir.join(format!("f{f:03}.txt"));
            fs::write(&p, format!("folder {d} file {f}")).unwrap();
            set_mtime(&p, 1_500_000_000 + f as i64);
            if f % 7 == 0 {
                fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
    }
    symlink("d01/f000.txt", root.join("link")).unwrap();
    fs::create_dir(root.join("empty")).unwrap();
    set_mtime(&root.join("empty"), 1_550_000_000);
    // Folder mtimes a run must carry over, set after everything in them is written: a
    // folder finished before a later batch writes into it would get a new one.
    for d in 0..dirs {
        for dir in [
            root.join(format!("d{d:02}")),
            root.join(format!("d{d:02}/inner")),
        ] {
            if dir.exists() {
                let t = filetime_in_past(d);
                set_mtime(&dir, t);
            }
        }
    }
    fs::set_permissions(root.join("d02"), fs::Permissions::from_mode(0o750)).unwrap();
}

fn filetime_in_past(d: usize) -> i64 {
    1_600_000_000 + d as i64 * 1000
}

fn set_mtime(p: &Path, secs: i64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
    fs::File::open(p).unwrap().set_modified(t).unwrap();
}

#[test]
fn a_tree_much_larger_than_a_batch_syncs_in_batches_as_a_whole_run_would() {
    let (mut batched, mut whole) = (Pair::new(), Pair::new());
    make_tree(&batched.a, 12, 40);
    make_tree(&whole.a, 12, 40);

    let x = run(&mut batched, Some(7));
    let y = run(&mut whole, None);
    // The batched run kept no plan, only its counts; the whole run kept its plan.
    assert!(x.plan.actions.is_empty(), "the run was not batched");
    assert!(!y.plan.actions.is_empty());
    assert_eq!(x.planned, y.planned);
    assert_eq!(x.planned.copy, 12 * 40 + 1);
    assert_eq!(x.stats, y.stats);
    // Same trees, modes and times, folder times included (set last, after every batch).
    assert_same(&listing(&batched.a), &listing(&batched.b));
    assert_same(&listing(&batched.b), &listing(&whole.b));
    // What it did is all recorded with its generation.
    assert_eq!(x.done.len(), y.done.len());
    assert_eq!(x.done_omitted, 0);

    // Converged: the next run has nothing to do, batched or not.
    assert_eq!(run(&mut batched, Some(7)).planned.total(), 0);
    assert_eq!(run(&mut batched, None).planned.total(), 0);
}

#[test]
fn many_edits_after_convergence_run_in_batches() {
    let mut pair = Pair::new();
    make_tree(&pair.a, 6, 30);
    run(&mut pair, None);
    // Edits on both sides, far more paths than a batch: only the changed ones run.
    for d in 1..6 {
        if d % 3 == 0 {
            continue;
        }
        for f in (0..30).step_by(2) {
            let side = if f % 4 == 0 { &pair.a } else { &pair.b };
            fs::write(
                side.join(format!("d{d:02}/f{f:03}.txt")),
                format!("edited {d} {f}"),
            )
            .unwrap();
        }
    }
    fs::write(pair.b.join("d01/new.txt"), "new on b").unwrap();
    let out = run(&mut pair, Some(5));
    assert!(out.plan.actions.is_empty(), "the run was not batched");
    assert_eq!(out.stats.files_copied, 4 * 15 + 1);
    assert_same(&shape(&pair.a), &shape(&pair.b));
    assert_eq!(run(&mut pair, Some(5)).planned.total(), 0);
}

#[test]
fn renames_across_batches_stay_renames() {
    let mut pair = Pair::new();
    make_tree(&pair.a, 4, 25);
    run(&mut pair, None);
    // One folder renamed, one file moved to a folder that sorts far from it.
    fs::rename(pair.a.join("d01"), pair.a.join("zz-moved")).unwrap();
    fs::rename(pair.a.join("d02/f003.txt"), pair.a.join("d03/f003.txt")).unwrap();
    let out = run(&mut pair, Some(2));
    // Deletions need the whole tree: planned whole, renames paired across it.
    assert!(!out.plan.actions.is_empty(), "planned in batches");
    assert_eq!(out.stats.files_copied, 0, "renames became copies");
    assert_eq!(out.stats.files_deleted, 0);
    assert_eq!(out.stats.files_renamed, 26);
    assert_same(&shape(&pair.a), &shape(&pair.b));
}

#[test]
fn a_mass_deletion_across_batches_is_refused_before_anything_is_copied() {
    let mut pair = Pair::new();
    make_tree(&pair.a, 4, 25);
    run(&mut pair, None);
    let b_before = shape(&pair.b);
    // Most files deleted, and many new ones that sort before the deletions.
    for d in 0..4 {
        let dir = if d % 3 == 0 {
            format!("d{d:02}/inner")
        } else {
            format!("d{d:02}")
        };
        for f in 0..25 {
            if f % 5 != 0 {
                fs::remove_file(pair.a.join(format!("{dir}/f{f:03}.txt"))).unwrap();
            }
        }
    }
    fs::create_dir(pair.a.join("a-new")).unwrap();
    for f in 0..40 {
        fs::write(pair.a.join(format!("a-new/{f}")), format!("new {f}")).unwrap();
    }
    refused_then_forced(&mut pair, &b_before);
}

/// A run in batches of 3 paths is refused by the mass-deletion stop with B untouched;
/// with `--yes` it goes through cleanly and the trees end equal.
fn refused_then_forced(pair: &mut Pair, b_before: &BTreeMap<String, String>) -> SyncOutcome {
    let opts = SyncOptions {
        batch_paths: Some(3),
        ..Default::default()
    };
    let refused = sync(&mut pair.index, &pair.a, &pair.b, &opts, &NoProgress);
    assert!(matches!(refused, Err(Error::Refused(_))), "{refused:?}");
    assert_same(&shape(&pair.b), b_before);
    let opts = SyncOptions {
        batch_paths: Some(3),
        yes: true,
        ..Default::default()
    };
    let out = sync(&mut pair.index, &pair.a, &pair.b, &opts, &NoProgress).unwrap();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_same(&shape(&pair.a), &shape(&pair.b));
    out
}

#[test]
fn a_folder_deleted_on_one_side_while_edited_below_on_the_other_survives() {
    let mut pair = Pair::new();
    make_tree(&pair.a, 3, 10);
    run(&mut pair, None);
    // A deletes d01; B edits a file deep inside it, after more files than a batch.
    fs::remove_dir_all(pair.a.join("d01")).unwrap();
    fs::write(pair.b.join("d01/f009.txt"), "edited on b").unwrap();
    let out = run(&mut pair, Some(2));
    assert_eq!(
        fs::read(pair.a.join("d01/f009.txt")).unwrap(),
        b"edited on b"
    );
    assert!(!pair.b.join("d01/f000.txt").exists());
    assert!(out.problems.is_empty());
    assert_same(&shape(&pair.a), &shape(&pair.b));
}

/// Deleting files that nothing else could be renamed to runs in batches (the plan is
/// not held whole), and the mass-deletion stop still counts every batch's deletions
/// before the first one runs.
#[test]
fn file_deletions_run_in_batches_and_the_stop_counts_them_all_first() {
    let mut pair = Pair::new();
    make_tree(&pair.a, 4, 25);
    run(&mut pair, None);
    let b_before = shape(&pair.b);
    // 60 of the 100 files, spread over every folder (the folders stay).
    let mut gone = Vec::new();
    for d in 0..4 {
        let dir = if d % 3 == 0 {
            format!("d{d:02}/inner")
        } else {
            format!("d{d:02}")
        };
        for f in (0..25).filter(|f| f % 5 != 0) {
            if gone.len() < 60 {
                let p = format!("{dir}/f{f:03}.txt");
                fs::remove_file(pair.a.join(&p)).unwrap();
                gone.push(p);
            }
        }
    }
    let out = refused_then_forced(&mut pair, &b_before);
    assert!(
        out.plan.actions.is_empty(),
        "planned whole: {:?}",
        out.planned
    );
    assert_eq!(out.stats.files_deleted, 60);
    assert_eq!(out.planned.delete, 60);
    // Each deleted file is kept in B's version store.
    let kept = ferry_testkit::kept_versions(&pair.b, &gone[0]);
    assert_eq!(kept.len(), 1, "{}", gone[0]);
    assert_eq!(run(&mut pair, Some(3)).planned.total(), 0);
}
