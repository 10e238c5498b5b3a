//! A directory renamed on one side is applied on the other as one rename of the
//! directory (`dir_rename.rs`): observable as `dirs_renamed` in the run's counters and
//! as inodes kept on the other side, which a file-by-file move cannot do. Where the
//! other side is not exactly the old directory (an edit inside it, something unindexed,
//! a destination that exists or appears), the run falls back to per-file actions or
//! leaves the directory alone, and nothing is lost.

use ferry_core::plan::find_dir_renames;
use ferry_core::plan::SyncMode;
use ferry_core::replica::open_location;
use ferry_core::FaultPoint;
use ferry_core::NoProgress;
use ferry_core::{sync, SyncOptions, SyncOutcome};
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

mod common;
use common::{tree_without_ferry as tree, Pair};

impl Pair {
    fn sync_mode(&mut self, mode: SyncMode) -> SyncOutcome {
        let opts = SyncOptions {
            mode: Some(mode),
            ..Default::default()
        };
        sync(&mut self.index, &self.a, &self.b, &opts, &NoProgress).unwrap()
    }

    fn sync(&mut self) -> SyncOutcome {
        self.sync_mode(SyncMode::Bidirectional)
    }

    /// After a clean run: both trees equal, the index reconciles to nothing, and the
    /// next run does nothing.
    fn assert_converged(&mut self) {
        assert_eq!(tree(&self.a), tree(&self.b));
        let la = open_location(&mut self.index, &self.a, false).unwrap();
        let lb = open_location(&mut self.index, &self.b, false).unwrap();
        let fresh = self.reconcile(&la, &lb);
        assert!(fresh.actions.is_empty(), "{:#?}", fresh.actions);
        let again = self.sync();
        assert!(again.problems.is_empty(), "{:?}", again.problems);
        assert!(again.plan.actions.is_empty(), "{:#?}", again.plan.actions);
    }
}

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap()
}

fn ino(p: &Path) -> u64 {
    std::fs::symlink_metadata(p).unwrap().ino()
}

/// Every file content under `root`, its version store included.
fn contents(root: &Path) -> BTreeSet<Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeSet<Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                walk(&p, out);
            } else if m.is_file() && p.file_name().unwrap() != "location" {
                out.insert(std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, &mut out);
    out
}

/// `n` files in `dir`, a nested folder with two more, and a symlink.
fn populate(root: &Path, dir: &str, n: usize) {
    for i in 0..n {
        write(
            root,
            &format!("{dir}/f{i:04}.txt"),
            &format!("file {i} of {dir}"),
        );
    }
    write(root, &format!("{dir}/sub/deep/x.txt"), "nested x");
    write(root, &format!("{dir}/sub/y.txt"), "nested y");
    std::os::unix::fs::symlink("f0000.txt", root.join(dir).join("link")).unwrap();
}

/// The headline case: a folder of many files renamed on A becomes one directory rename
/// on B. The folder and everything in it keep their inodes on B (a per-file move would
/// create a new folder), no byte is copied, and the index follows.
#[test]
fn many_files_renamed_on_a_are_one_directory_rename_on_b() {
    let mut f = Pair::new();
    populate(&f.a, "photos", 500);
    let first = f.sync();
    assert!(first.problems.is_empty(), "{:?}", first.problems);
    let dir_ino = ino(&f.b.join("photos"));
    let sub_ino = ino(&f.b.join("photos/sub/deep"));
    let file_ino = ino(&f.b.join("photos/f0123.txt"));

    std::fs::rename(f.a.join("photos"), f.a.join("pictures")).unwrap();
    let out = f.sync();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(out.stats.dirs_renamed, 1);
    // 500 files, 2 nested files, 1 symlink; nothing copied, deleted or created.
    assert_eq!(out.stats.files_renamed, 503);
    assert_eq!(
        (
            out.stats.files_copied,
            out.stats.files_deleted,
            out.stats.dirs_created,
            out.stats.bytes_transferred
        ),
        (0, 0, 0, 0)
    );
    assert!(!f.b.join("photos").exists());
    assert_eq!(ino(&f.b.join("pictures")), dir_ino);
    assert_eq!(ino(&f.b.join("pictures/sub/deep")), sub_ino);
    assert_eq!(ino(&f.b.join("pictures/f0123.txt")), file_ino);
    assert_eq!(read(&f.b, "pictures/sub/deep/x.txt"), "nested x");
    f.assert_converged();

    // And back, renamed on B this time, in one rename on A.
    let a_ino = ino(&f.a.join("pictures"));
    std::fs::rename(f.b.join("pictures"), f.b.join("photos")).unwrap();
    let out = f.sync();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!((out.stats.dirs_renamed, out.stats.files_renamed), (1, 503));
    assert_eq!(ino(&f.a.join("photos")), a_ino);
    f.assert_converged();
}

/// The schedule runs every action of the plan once, on its own side, in stage order;
/// the group's rename stands before the mkdirs it covers, and its covered actions are
/// marked so they run only if it falls back.
#[test]
fn the_schedule_orders_each_side_and_marks_the_covered_actions() {
    use ferry_core::plan::{schedule, Stage, Step};
    let mut f = Pair::new();
    populate(&f.a, "d", 5);
    write(&f.a, "top.txt", "t");
    f.sync();
    std::fs::rename(f.a.join("d"), f.a.join("e")).unwrap();
    write(&f.a, "e/new/added.txt", "new");
    write(&f.a, "top.txt", "edited");
    let (_, _, plan) = f.plan();
    let order = schedule(&plan);
    assert_eq!(order.groups.len(), 1);
    let mut seen = vec![0; plan.actions.len()];
    for side_plan in &order.sides {
        let mut last_stage = None;
        for (stage, steps) in &side_plan.stages {
            assert!(last_stage < Some(*stage), "stages in order");
            last_stage = Some(*stage);
            for step in steps {
                if let Step::Act { action, group } = step {
                    seen[*action] += 1;
                    let a = &plan.actions[*action];
                    assert_eq!(a.side(), side_plan.side, "{a:?}");
                    let covered = order.groups[0].covers.contains(action);
                    assert_eq!(group.is_some(), covered, "{a:?}");
                }
            }
        }
    }
    assert!(seen.iter().all(|&n| n == 1), "each action once: {seen:?}");
    let b = &order.sides[1];
    let dirs = b.steps(Stage::Directories);
    assert!(matches!(dirs[0], Step::RenameDir { group: 0 }), "{dirs:?}");
    // The new folder inside the renamed one is made after the rename, uncovered.
    let made_new = dirs.iter().any(|s| {
        matches!(s, Step::Act { action, group: None }
        if plan.actions[*action].path().as_str() == "e/new")
    });
    assert!(made_new, "{dirs:?}");
    // The edited file outside the group is an ordinary copy.
    let copies = b.steps(Stage::Copies);
    assert!(copies
        .iter()
        .any(|s| matches!(s, Step::Act { action, group: None }
        if plan.actions[*action].path().as_str() == "top.txt")));
    f.sync();
    f.assert_converged();
}

/// The plan keeps its per-file actions; `find` sees them as one group.
#[test]
fn the_plan_of_a_renamed_dir_forms_one_group() {
    let mut f = Pair::new();
    populate(&f.a, "d", 20);
    f.sync();
    std::fs::rename(f.a.join("d"), f.a.join("e")).unwrap();
    let (_, _, plan) = f.plan();
    let groups = find_dir_renames(&plan.actions);
    assert_eq!(groups.len(), 1, "{groups:#?}");
    let g = &groups[0];
    assert_eq!((g.from.as_str(), g.to.as_str()), ("d", "e"));
    assert_eq!(g.entries_moved(), 23);
    // d, d/sub, d/sub/deep and 23 entries; every rename, mkdir and removal of the plan.
    assert_eq!(g.moves.len(), 26);
    let touching_disk = plan
        .actions
        .iter()
        .filter(|a| !matches!(a, ferry_core::plan::Action::Record { .. }))
        .count();
    assert_eq!(g.covers.len(), touching_disk);
}

#[test]
fn mirror_applies_a_directory_rename_in_one_rename() {
    let mut f = Pair::new();
    populate(&f.a, "d", 30);
    f.sync_mode(SyncMode::Mirror);
    let dir_ino = ino(&f.b.join("d"));
    std::fs::rename(f.a.join("d"), f.a.join("e")).unwrap();
    let out = f.sync_mode(SyncMode::Mirror);
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(out.stats.dirs_renamed, 1);
    assert_eq!(ino(&f.b.join("e")), dir_ino);
    assert_eq!(tree(&f.a), tree(&f.b));
}

/// Files added to the renamed folder (and a folder added inside it) are copied after
/// the one rename; they do not stop it.
#[test]
fn additions_inside_the_renamed_dir_follow_the_rename() {
    let mut f = Pair::new();
    populate(&f.a, "d", 10);
    write(&f.a, "elsewhere.txt", "moved in from outside");
    f.sync();
    let dir_ino = ino(&f.b.join("d"));
    std::fs::rename(f.a.join("d"), f.a.join("e")).unwrap();
    write(&f.a, "e/added.txt", "new in the renamed folder");
    write(&f.a, "e/sub/newdir/z.txt", "new nested");
    std::fs::rename(f.a.join("elsewhere.txt"), f.a.join("e/moved-in.txt")).unwrap();
    let out = f.sync();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(out.stats.dirs_renamed, 1);
    assert_eq!(ino(&f.b.join("e")), dir_ino);
    assert_eq!(out.stats.files_copied, 2);
    // 10 files + 2 nested + the symlink with the folder, and moved-in.txt on its own.
    assert_eq!(out.stats.files_renamed, 14);
    assert_eq!(read(&f.b, "e/sub/newdir/z.txt"), "new nested");
    assert_eq!(read(&f.b, "e/moved-in.txt"), "moved in from outside");
    f.assert_converged();
}

/// Identical files in the renamed folder: the reconciler may pair `d/a` with `e/b`;
/// the group still forms and every name ends with its content.
#[test]
fn equal_contents_in_the_renamed_dir_still_rename_once() {
    let mut f = Pair::new();
    for name in ["a", "b", "c"] {
        write(&f.a, &format!("d/{name}"), "same bytes");
    }
    write(&f.a, "d/other", "other bytes");
    f.sync();
    std::fs::rename(f.a.join("d"), f.a.join("e")).unwrap();
    let out = f.sync();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!((out.stats.dirs_renamed, out.stats.files_renamed), (1, 4));
    f.assert_converged();
}

/// A folder holding renamed folders: one rename carries the whole tree. A folder
/// renamed inside a folder that was renamed too (its files no longer keep their
/// relative names) is renamed on its own, and the rest moves file by file.
#[test]
fn nested_renamed_dirs() {
    let mut f = Pair::new();
    write(&f.a, "top/mid/low/deep.txt", "deep");
    write(&f.a, "top/mid/m.txt", "m");
    write(&f.a, "top/t.txt", "t");
    write(&f.a, "other/inner/i1.txt", "i1");
    write(&f.a, "other/inner/i2.txt", "i2");
    write(&f.a, "other/o.txt", "o");
    f.sync();
    let low_ino = ino(&f.b.join("top/mid/low"));
    let inner_ino = ino(&f.b.join("other/inner"));
    let other_ino = ino(&f.b.join("other"));

    // top → top2 (with everything nested in it);
    // other → other2 and, inside it, inner → inner2.
    std::fs::rename(f.a.join("top"), f.a.join("top2")).unwrap();
    std::fs::rename(f.a.join("other"), f.a.join("other2")).unwrap();
    std::fs::rename(f.a.join("other2/inner"), f.a.join("other2/inner2")).unwrap();
    let out = f.sync();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(out.stats.dirs_renamed, 2, "top and other/inner");
    assert_eq!(ino(&f.b.join("top2/mid/low")), low_ino);
    assert_eq!(ino(&f.b.join("other2/inner2")), inner_ino);
    assert_ne!(ino(&f.b.join("other2")), other_ino, "other2 was created");
    assert!(!f.b.join("other").exists());
    assert_eq!(read(&f.b, "other2/inner2/i2.txt"), "i2");
    f.assert_converged();
}

/// A directory renamed into a folder that does not exist yet on B: the parent is
/// created first, then the directory renamed into it.
#[test]
fn renamed_into_a_new_parent() {
    let mut f = Pair::new();
    populate(&f.a, "d", 5);
    f.sync();
    let dir_ino = ino(&f.b.join("d"));
    std::fs::create_dir_all(f.a.join("p/q")).unwrap();
    std::fs::rename(f.a.join("d"), f.a.join("p/q/d")).unwrap();
    let out = f.sync();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(out.stats.dirs_renamed, 1);
    assert_eq!(ino(&f.b.join("p/q/d")), dir_ino);
    f.assert_converged();
}

/// A renamed on A while B edited a file in the old folder (both seen by the scan):
/// the edit beats the deletion, so the old folder stays and its files move one by one
/// (its untouched subfolder as a whole); the edited content survives on both sides,
/// nothing is lost.
#[test]
fn edit_on_b_inside_the_dir_renamed_on_a_is_kept() {
    let mut f = Pair::new();
    populate(&f.a, "d", 20);
    f.sync();
    std::fs::rename(f.a.join("d"), f.a.join("e")).unwrap();
    write(&f.b, "d/f0007.txt", "edited on b");
    let sub_ino = ino(&f.b.join("d/sub"));
    let before: BTreeSet<_> = contents(&f.a).union(&contents(&f.b)).cloned().collect();
    let out = f.sync();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    // d stays for the edit; its untouched subfolder still moves as a whole.
    assert_eq!(out.stats.dirs_renamed, 1);
    assert_eq!(ino(&f.b.join("e/sub")), sub_ino);
    assert_eq!(read(&f.b, "d/f0007.txt"), "edited on b");
    assert_eq!(read(&f.a, "d/f0007.txt"), "edited on b");
    assert_eq!(read(&f.b, "e/f0007.txt"), "file 7 of d");
    let after: BTreeSet<_> = contents(&f.a).union(&contents(&f.b)).cloned().collect();
    assert!(before.is_subset(&after), "content lost");
    f.assert_converged();
}

/// The same edit made after the scan, between plan and execution: the re-check before
/// the rename sees it and falls back to per-file actions, which skip only the edited
/// file. The edit survives in place; the next run converges without loss.
#[test]
fn edit_on_b_after_the_scan_falls_back_and_keeps_the_edit() {
    let mut f = Pair::new();
    populate(&f.a, "d", 20);
    f.sync();
    std::fs::rename(f.a.join("d"), f.a.join("e")).unwrap();
    let (la, lb, plan) = f.plan();
    assert_eq!(find_dir_renames(&plan.actions).len(), 1);
    write(&f.b, "d/f0007.txt", "edited on b after the scan");
    let report = f.execute(&la, &lb, &plan);
    assert_eq!(report.stats.dirs_renamed, 0);
    // 20 + 2 nested files, all but the edited one (the symlink is recreated).
    assert_eq!(report.stats.files_renamed, 21);
    assert!(
        report
            .problems
            .iter()
            .any(|e| e.detail.contains("f0007.txt")),
        "{:?}",
        report.problems
    );
    assert_eq!(read(&f.b, "d/f0007.txt"), "edited on b after the scan");
    assert_eq!(read(&f.b, "e/f0003.txt"), "file 3 of d");

    let out = f.sync();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    for side in [&f.a, &f.b] {
        assert_eq!(read(side, "d/f0007.txt"), "edited on b after the scan");
        assert_eq!(read(side, "e/f0007.txt"), "file 7 of d");
    }
    f.assert_converged();
}

/// An unindexed item in the old folder on B (OS junk) is not what the index says:
/// per-file fallback, whose folder removal keeps the junk in the version store.
#[test]
fn unindexed_item_in_the_old_dir_falls_back() {
    let mut f = Pair::new();
    populate(&f.a, "d", 5);
    f.sync();
    write(&f.b, "d/.DS_Store", "finder junk");
    std::fs::rename(f.a.join("d"), f.a.join("e")).unwrap();
    let out = f.sync();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(out.stats.dirs_renamed, 0);
    assert_eq!(out.stats.files_renamed, 7);
    assert!(contents(&f.b).contains(b"finder junk".as_slice()));
    f.assert_converged();
}

/// A file deleted from the renamed folder on A: the move is no longer the whole
/// folder, so it goes file by file, except for its untouched subfolder, which is
/// renamed as a whole; the deleted file is versioned on B.
#[test]
fn deletion_inside_the_renamed_dir_falls_back() {
    let mut f = Pair::new();
    populate(&f.a, "d", 5);
    f.sync();
    let sub_ino = ino(&f.b.join("d/sub"));
    std::fs::rename(f.a.join("d"), f.a.join("e")).unwrap();
    std::fs::remove_file(f.a.join("e/f0002.txt")).unwrap();
    let out = f.sync();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    // Only the untouched subfolder moves as a whole.
    assert_eq!(out.stats.dirs_renamed, 1);
    assert_eq!(ino(&f.b.join("e/sub")), sub_ino);
    // f0002.txt, and the symlink (one by one, a symlink is removed and recreated).
    assert_eq!(out.stats.files_deleted, 2);
    assert!(contents(&f.b).contains(b"file 2 of d".as_slice()));
    f.assert_converged();
}

/// B already has a different folder under the new name: both folders' contents meet
/// there (file by file, and the subfolder B's folder lacks as a whole); nothing of B's
/// folder is replaced.
#[test]
fn existing_destination_on_b_is_not_overwritten() {
    let mut f = Pair::new();
    populate(&f.a, "d", 5);
    f.sync();
    write(&f.b, "e/mine.txt", "b's own folder");
    write(&f.b, "e/f0001.txt", "b's own f0001");
    let e_ino = ino(&f.b.join("e"));
    let sub_ino = ino(&f.b.join("d/sub"));
    std::fs::rename(f.a.join("d"), f.a.join("e")).unwrap();
    let before: BTreeSet<_> = contents(&f.a).union(&contents(&f.b)).cloned().collect();
    let out = f.sync();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    // Only d/sub, absent from B's e, moves into it as a whole.
    assert_eq!(out.stats.dirs_renamed, 1);
    assert_eq!(ino(&f.b.join("e/sub")), sub_ino);
    assert_eq!(ino(&f.b.join("e")), e_ino, "b's folder stays");
    assert_eq!(read(&f.b, "e/mine.txt"), "b's own folder");
    assert_eq!(read(&f.a, "e/mine.txt"), "b's own folder");
    let after: BTreeSet<_> = contents(&f.a).union(&contents(&f.b)).cloned().collect();
    assert!(before.is_subset(&after), "content lost");
    f.assert_converged();
}

/// The new name appears on B after the scan: the rename never replaces it (not even
/// merged into file by file); the old folder stays whole, with an error, and the next
/// run (which scans the new folder) brings both together without loss.
#[test]
fn destination_appearing_on_b_after_the_scan_is_never_replaced() {
    let mut f = Pair::new();
    populate(&f.a, "d", 5);
    f.sync();
    std::fs::rename(f.a.join("d"), f.a.join("e")).unwrap();
    let (la, lb, plan) = f.plan();
    assert_eq!(find_dir_renames(&plan.actions).len(), 1);
    write(&f.b, "e/late.txt", "appeared after the scan");
    let report = f.execute(&la, &lb, &plan);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0]
            .detail
            .contains("appeared since the scan"),
        "{:?}",
        report.problems
    );
    assert_eq!(report.stats.files_renamed, 0);
    let in_e: Vec<_> = std::fs::read_dir(f.b.join("e")).unwrap().collect();
    assert_eq!(in_e.len(), 1, "nothing moved into the new folder");
    assert_eq!(read(&f.b, "e/late.txt"), "appeared after the scan");
    assert_eq!(read(&f.b, "d/f0004.txt"), "file 4 of d");

    let out = f.sync();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(read(&f.a, "e/late.txt"), "appeared after the scan");
    assert_eq!(read(&f.b, "e/f0004.txt"), "file 4 of d");
    f.assert_converged();
}

/// An empty folder renamed has no file to suggest a group: it is created and removed.
#[test]
fn empty_dir_rename_is_mkdir_and_rmdir() {
    let mut f = Pair::new();
    std::fs::create_dir(f.a.join("empty")).unwrap();
    f.sync();
    std::fs::rename(f.a.join("empty"), f.a.join("still-empty")).unwrap();
    let out = f.sync();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!((out.stats.dirs_renamed, out.stats.dirs_created), (0, 1));
    f.assert_converged();
}

/// Rule 4: the new name's parent swapped for a symlink out of the root after the scan:
/// the directory is not renamed through it, and stays where it was.
#[test]
fn dir_rename_never_goes_through_a_symlinked_parent() {
    let mut f = Pair::new();
    populate(&f.a, "d", 5);
    write(&f.a, "p/keep.txt", "p's own file");
    f.sync();
    std::fs::rename(f.a.join("d"), f.a.join("p/d")).unwrap();
    let (la, lb, plan) = f.plan();
    assert_eq!(find_dir_renames(&plan.actions).len(), 1);
    let outside = f.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::rename(f.b.join("p"), f.tmp.path().join("p-moved-away")).unwrap();
    std::os::unix::fs::symlink(&outside, f.b.join("p")).unwrap();
    let report = f.execute(&la, &lb, &plan);
    assert!(
        report
            .problems
            .iter()
            .any(|e| e.detail.contains("not a real directory")),
        "{:?}",
        report.problems
    );
    assert_eq!(report.stats.dirs_renamed, 0);
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "wrote outside the root"
    );
    assert_eq!(read(&f.b, "d/f0001.txt"), "file 1 of d");
}

// ---------------------------------------------------------------------------------------
// Property: a folder renamed on A, with random changes inside it on either side.
// ---------------------------------------------------------------------------------------

use proptest::prelude::*;

/// Places inside the folder (few names and contents, so equal contents are common).
const SLOTS: [&str; 7] = ["a", "b", "s/a", "s/c", "s/t/a", "s/t/b", "x"];

#[derive(Debug, Clone)]
enum Item {
    File(u8),
    Link(u8),
}

#[derive(Debug, Clone)]
enum Change {
    Write(usize, u8),
    Delete(usize),
    /// Moves the slot's file out of the folder (to the top level).
    MoveOut(usize),
}

fn item() -> impl Strategy<Value = Option<Item>> {
    prop_oneof![
        2 => Just(None),
        4 => (0u8..3).prop_map(|c| Some(Item::File(c))),
        1 => (0u8..2).prop_map(|t| Some(Item::Link(t))),
    ]
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0..SLOTS.len(), 0u8..3).prop_map(|(s, c)| Change::Write(s, c)),
        (0..SLOTS.len()).prop_map(Change::Delete),
        (0..SLOTS.len()).prop_map(Change::MoveOut),
    ]
}

fn apply_change(root: &Path, dir: &str, c: &Change, salt: &str) {
    let at = |s: usize| root.join(dir).join(SLOTS[s]);
    match c {
        Change::Write(s, n) => {
            let p = at(*s);
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                return;
            }
            let _ = std::fs::remove_file(&p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, format!("content {n} {salt}")).unwrap();
        }
        Change::Delete(s) => {
            let _ = std::fs::remove_file(at(*s));
        }
        Change::MoveOut(s) => {
            let out = root.join(format!("out-{s}-{salt}"));
            if std::fs::symlink_metadata(at(*s)).is_ok_and(|m| !m.is_dir()) && !out.exists() {
                std::fs::rename(at(*s), out).unwrap();
            }
        }
    }
}

fn all_contents(f: &Pair) -> BTreeSet<Vec<u8>> {
    contents(&f.a).union(&contents(&f.b)).cloned().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 200, ..ProptestConfig::default() })]

    /// Whatever else changed inside the renamed folder on either side, the run ends
    /// without errors, with equal trees (mirror: B equal to A), nothing lost, and a
    /// no-op next run; an untouched folder with a file in it is exactly one rename.
    #[test]
    fn renamed_dir_with_changes_converges_and_loses_nothing(
        items in prop::collection::vec(item(), SLOTS.len()),
        target in prop::sample::select(vec!["e", "d2", "p/e", "p/q/d"]),
        changes_a in prop::collection::vec(change(), 0..3),
        changes_b in prop::collection::vec(change(), 0..3),
        mirror in any::<bool>(),
    ) {
        let mut f = Pair::new();
        let mode = if mirror { SyncMode::Mirror } else { SyncMode::Bidirectional };
        std::fs::create_dir(f.a.join("d")).unwrap();
        for (slot, it) in SLOTS.iter().zip(&items) {
            let p = f.a.join("d").join(slot);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            match it {
                Some(Item::File(c)) => std::fs::write(&p, format!("content {c}")).unwrap(),
                Some(Item::Link(t)) => std::os::unix::fs::symlink(format!("target-{t}"), &p).unwrap(),
                None => {}
            }
        }
        let first = f.sync_mode(mode);
        prop_assert!(first.problems.is_empty(), "{:?}", first.problems);

        if let Some(parent) = Path::new(target).parent() {
            std::fs::create_dir_all(f.a.join(parent)).unwrap();
        }
        std::fs::rename(f.a.join("d"), f.a.join(target)).unwrap();
        for c in &changes_a { apply_change(&f.a, target, c, "from a"); }
        for c in &changes_b { apply_change(&f.b, "d", c, "from b"); }
        let a_before = tree(&f.a);
        let before = all_contents(&f);
        let out = f.sync_mode(mode);
        prop_assert!(out.problems.is_empty(), "{:?}", out.problems);
        let after = all_contents(&f);
        let lost: Vec<_> = before.difference(&after).collect();
        prop_assert!(lost.is_empty(), "lost {:?}", lost);
        prop_assert_eq!(tree(&f.a), tree(&f.b), "plan: {:#?}", out.plan.actions);
        if mirror {
            prop_assert_eq!(&a_before, &tree(&f.a), "mirror changed its source");
        }
        let has_file = items.iter().any(|i| matches!(i, Some(Item::File(_))));
        if changes_a.is_empty() && changes_b.is_empty() && has_file {
            prop_assert_eq!(out.stats.dirs_renamed, 1);
        }
        let again = f.sync_mode(mode);
        prop_assert!(again.problems.is_empty(), "{:?}", again.problems);
        prop_assert!(again.plan.actions.is_empty(), "{:#?}", again.plan.actions);
    }
}

/// A run that dies after renaming the directory but before the index records it
/// (rule 5: the index advances only for completed actions): the next run finds the
/// folder at its new name with the content it expects, records it, copies nothing and
/// loses nothing.
#[test]
fn death_after_the_directory_rename_resumes_without_copies() {
    let mut f = Pair::new();
    populate(&f.a, "photos", 200);
    assert!(f.sync().problems.is_empty());
    let before = tree(&f.b);

    std::fs::rename(f.a.join("photos"), f.a.join("pictures")).unwrap();
    let opts = SyncOptions {
        fault: FaultPoint::StopAfterDirRenames,
        ..Default::default()
    };
    let died = sync(&mut f.index, &f.a, &f.b, &opts, &NoProgress);
    assert!(died.is_err(), "the injected stop did not fire");
    assert!(!f.b.join("photos").exists());
    let moved: std::collections::BTreeMap<_, _> = before
        .into_iter()
        .map(|(p, n)| match p.strip_prefix("photos") {
            Ok(rest) => (Path::new("pictures").join(rest), n),
            Err(_) => (p, n),
        })
        .collect();
    assert_eq!(tree(&f.b), moved, "B holds the renamed folder, untouched");

    let out = f.sync();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(
        (out.stats.files_copied, out.stats.bytes_transferred),
        (0, 0)
    );
    f.assert_converged();
}
