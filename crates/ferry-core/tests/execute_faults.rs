//! Fault tests of the executor and the safety rules: injected corruption, a run that
//! dies mid-way, a disk that changes between scan and execute, a parent swapped for a
//! symlink that leads out of the root.

use ferry_core::plan::Action;
use ferry_core::replica::open_location;
use ferry_core::FaultPoint;
use ferry_core::NoProgress;
use ferry_core::{sync, SyncOptions};
use ferry_core::{ProblemKind, Side};
use ferry_testkit::{kept_versions, read, snapshot};
use std::path::Path;

mod common;
use common::{paths_below, Pair};

impl Pair {
    fn sync_with(&mut self, fault: FaultPoint) -> ferry_core::Result<ferry_core::SyncOutcome> {
        let opts = SyncOptions {
            fault,
            ..Default::default()
        };
        sync(&mut self.index, &self.a, &self.b, &opts, &NoProgress)
    }
}

fn temp_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in paths_below(dir) {
        let name = e.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(".ferry.tmp.") && !e.starts_with(dir.join(".ferry")) {
            out.push(name);
        }
    }
    out
}

/// A copy whose bytes do not match the indexed hash is never installed; the old content
/// stays, the temp file goes, and the next clean run succeeds.
#[test]
fn corrupt_copy_is_not_installed() {
    let mut f = Pair::new();
    std::fs::write(f.a.join("doc.txt"), "first").unwrap();
    f.sync_with(FaultPoint::None).unwrap();
    std::fs::write(f.a.join("doc.txt"), "second version").unwrap();
    std::fs::write(f.a.join("new.txt"), "brand new").unwrap();

    let out = f.sync_with(FaultPoint::CorruptTempAfterCopy).unwrap();
    assert_eq!(out.problems.len(), 2, "{:?}", out.problems);
    assert!(
        out.problems
            .iter()
            .all(|e| e.detail.contains("does not match")),
        "{:?}",
        out.problems
    );
    assert_eq!(
        std::fs::read_to_string(f.b.join("doc.txt")).unwrap(),
        "first"
    );
    assert!(!f.b.join("new.txt").exists());
    assert!(temp_files(&f.b).is_empty());

    let out = f.sync_with(FaultPoint::None).unwrap();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(
        std::fs::read_to_string(f.b.join("doc.txt")).unwrap(),
        "second version"
    );
    assert_eq!(
        std::fs::read_to_string(f.b.join("new.txt")).unwrap(),
        "brand new"
    );
}

/// A run that dies after staging but before installing leaves every path with its old
/// content; the next run removes the stale temp files and converges.
#[test]
fn run_dying_before_install_loses_nothing_and_resumes() {
    let mut f = Pair::new();
    std::fs::write(f.a.join("keep.txt"), "old a").unwrap();
    f.sync_with(FaultPoint::None).unwrap();
    std::fs::write(f.a.join("keep.txt"), "new a!").unwrap();
    for i in 0..20 {
        std::fs::write(f.a.join(format!("f{i}")), format!("file {i}")).unwrap();
    }
    assert!(f.sync_with(FaultPoint::StopAfterStaging).is_err());
    assert_eq!(
        std::fs::read_to_string(f.b.join("keep.txt")).unwrap(),
        "old a"
    );
    assert!(
        !temp_files(&f.b).is_empty(),
        "the simulated crash should leave temp files"
    );

    let out = f.sync_with(FaultPoint::None).unwrap();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert!(temp_files(&f.b).is_empty());
    assert_eq!(
        std::fs::read_to_string(f.b.join("keep.txt")).unwrap(),
        "new a!"
    );
    for i in 0..20 {
        assert_eq!(
            std::fs::read_to_string(f.b.join(format!("f{i}"))).unwrap(),
            format!("file {i}")
        );
    }
}

/// A copy whose content the target side already holds under another name reads that
/// local file. Its re-check before reading compares the local file with its own index
/// entry (its own mtime), not with the other side's file, which has another mtime.
#[test]
fn copy_reads_a_local_file_of_the_same_content() {
    let mut f = Pair::new();
    std::fs::write(f.a.join("x.txt"), "same bytes").unwrap();
    f.sync_with(FaultPoint::None).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(f.a.join("y.txt"), "same bytes").unwrap();
    let out = f.sync_with(FaultPoint::None).unwrap();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(out.stats.files_copied, 1);
    assert_eq!(
        std::fs::read_to_string(f.b.join("y.txt")).unwrap(),
        "same bytes"
    );
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    assert_eq!(mtime(&f.b.join("y.txt")), mtime(&f.a.join("y.txt")));
    let again = f.sync_with(FaultPoint::None).unwrap();
    assert!(again.plan.actions.is_empty(), "{:#?}", again.plan.actions);
}

/// Rule 2: an edit made after the scan is never clobbered; the action is skipped.
#[test]
fn fresh_edit_after_scan_is_not_overwritten() {
    let mut f = Pair::new();
    std::fs::write(f.a.join("x.txt"), "v1").unwrap();
    f.sync_with(FaultPoint::None).unwrap();
    std::fs::write(f.a.join("x.txt"), "v2 from a").unwrap();
    let (la, lb, plan) = f.plan();
    assert!(plan
        .actions
        .iter()
        .any(|a| matches!(a, Action::Copy { .. })));
    // The user edits B between scan and execute.
    std::fs::write(f.b.join("x.txt"), "fresh edit on b, longer").unwrap();
    let report = f.execute(&la, &lb, &plan);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].detail.contains("changed since the scan"));
    let kind = report.problems[0].kind;
    assert_eq!(kind, ferry_core::ProblemKind::Changed);
    assert!(kind.retries_by_itself());
    assert_eq!(
        std::fs::read_to_string(f.b.join("x.txt")).unwrap(),
        "fresh edit on b, longer"
    );
    // The next run sees both edits as a conflict; nothing is lost either way.
    let out = f.sync_with(FaultPoint::None).unwrap();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(out.plan.conflicts.len(), 1);
}

/// Rule 2 for deletions: a file edited after the scan is not deleted.
#[test]
fn deletion_skips_a_file_edited_after_scan() {
    let mut f = Pair::new();
    std::fs::write(f.a.join("x.txt"), "v1").unwrap();
    f.sync_with(FaultPoint::None).unwrap();
    std::fs::remove_file(f.a.join("x.txt")).unwrap();
    let (la, lb, plan) = f.plan();
    assert!(plan
        .actions
        .iter()
        .any(|a| matches!(a, Action::Delete { .. })));
    std::fs::write(f.b.join("x.txt"), "edited on b after the scan").unwrap();
    let report = f.execute(&la, &lb, &plan);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(
        std::fs::read_to_string(f.b.join("x.txt")).unwrap(),
        "edited on b after the scan"
    );
}

/// Rule 4: a parent directory swapped for a symlink leading out of the root is never
/// written through.
#[test]
fn never_writes_through_a_symlinked_parent() {
    let mut f = Pair::new();
    std::fs::create_dir(f.a.join("d")).unwrap();
    std::fs::write(f.a.join("d/one"), "1").unwrap();
    f.sync_with(FaultPoint::None).unwrap();
    std::fs::write(f.a.join("d/two"), "2").unwrap();
    let (la, lb, plan) = f.plan();
    let outside = f.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::rename(f.b.join("d"), f.tmp.path().join("moved-away")).unwrap();
    std::os::unix::fs::symlink(&outside, f.b.join("d")).unwrap();
    let report = f.execute(&la, &lb, &plan);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].detail.contains("not a real directory"),
        "{:?}",
        report.problems
    );
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "wrote outside the root"
    );
}

/// Rule 6: a location whose marker vanished is not synced.
#[test]
fn missing_marker_stops_the_run() {
    let mut f = Pair::new();
    std::fs::write(f.a.join("x"), "x").unwrap();
    f.sync_with(FaultPoint::None).unwrap();
    std::fs::remove_dir_all(&f.b).unwrap();
    std::fs::create_dir(&f.b).unwrap();
    let err = f.sync_with(FaultPoint::None).unwrap_err().to_string();
    assert!(err.contains("marker"), "{err}");
    assert!(f.a.join("x").exists());
}

/// Rule 6: a run that would delete most of a side stops unless told otherwise.
#[test]
fn mass_deletion_stops_without_yes() {
    let mut f = Pair::new();
    for i in 0..12 {
        std::fs::write(f.a.join(format!("f{i}")), "x").unwrap();
    }
    f.sync_with(FaultPoint::None).unwrap();
    for i in 0..11 {
        std::fs::remove_file(f.a.join(format!("f{i}"))).unwrap();
    }
    let err = f.sync_with(FaultPoint::None).unwrap_err().to_string();
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(
        std::fs::read_dir(&f.b).unwrap().count(),
        13,
        "nothing deleted on b (12 files + .ferry)"
    );
    let opts = SyncOptions {
        yes: true,
        ..Default::default()
    };
    let out = sync(&mut f.index, &f.a, &f.b, &opts, &NoProgress).unwrap();
    assert_eq!(out.stats.files_deleted, 11);
}

/// Rule 3: what a run overwrites or deletes is in the version store, and the index
/// knows where.
#[test]
fn replaced_and_deleted_content_is_versioned() {
    let mut f = Pair::new();
    std::fs::write(f.a.join("x"), "original").unwrap();
    std::fs::write(f.a.join("y"), "to be deleted").unwrap();
    f.sync_with(FaultPoint::None).unwrap();
    std::fs::write(f.a.join("x"), "changed").unwrap();
    std::fs::remove_file(f.a.join("y")).unwrap();
    let out = f.sync_with(FaultPoint::None).unwrap();
    assert!(out.problems.is_empty());
    let lb = open_location(&mut f.index, &f.b, false).unwrap();
    for (name, content) in [("x", "original"), ("y", "to be deleted")] {
        let versions = f
            .index
            .versions_of(lb.id(), &ferry_core::model::RelPath::new(name).unwrap())
            .unwrap();
        assert_eq!(versions.len(), 1, "{name}");
        let stored = lb.root.join(&versions[0].stored_path);
        assert_eq!(std::fs::read_to_string(stored).unwrap(), content);
    }
}

/// Every ferry temp file anywhere below `dir`, the version store's staging folder
/// (itself a folder with a temp name, kept) included.
fn temp_files_anywhere(dir: &Path) -> Vec<std::path::PathBuf> {
    (paths_below(dir).into_iter())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(".ferry.tmp.") && !p.symlink_metadata().unwrap().is_dir()
        })
        .collect()
}

/// B holds `doc.txt` ("first") in step with A; then A edits it and adds `new.txt`, and
/// a run meets `fault`. Returns the pair and that run's outcome.
fn edit_then_sync_with(fault: FaultPoint) -> (Pair, ferry_core::SyncOutcome) {
    let mut f = Pair::new();
    std::fs::write(f.a.join("doc.txt"), "first").unwrap();
    f.sync_with(FaultPoint::None).unwrap();
    std::fs::write(f.a.join("doc.txt"), "second version, longer").unwrap();
    std::fs::write(f.a.join("new.txt"), "brand new").unwrap();
    let out = f.sync_with(fault).unwrap();
    (f, out)
}

/// After a faulty run: B's `doc.txt` still holds "first" and nothing of it went to the
/// version store, no temp file is left anywhere in B, and the next run completes,
/// keeping "first" as a version.
fn nothing_lost_and_the_next_run_completes(mut f: Pair) {
    assert_eq!(read(&f.b, "doc.txt"), b"first");
    assert!(kept_versions(&f.b, "doc.txt").is_empty());
    assert_eq!(temp_files_anywhere(&f.b), Vec::<std::path::PathBuf>::new());
    let out = f.sync_with(FaultPoint::None).unwrap();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(snapshot(&f.a), snapshot(&f.b));
    assert_eq!(kept_versions(&f.b, "doc.txt"), vec![b"first".to_vec()]);
    assert_eq!(temp_files_anywhere(&f.b), Vec::<std::path::PathBuf>::new());
}

/// A run meeting `fault` on every copy: each copy (`doc.txt`, `new.txt`) is a problem of
/// kind `kind` on B, nothing is written there, and nothing is lost.
fn every_copy_fails_and_nothing_is_lost(fault: FaultPoint, kind: ProblemKind) {
    let (f, out) = edit_then_sync_with(fault);
    assert_eq!(out.problems.len(), 2, "{:?}", out.problems);
    for p in &out.problems {
        assert_eq!((p.kind, p.side), (kind, Some(Side::B)), "{p:?}");
    }
    assert!(!f.b.join("new.txt").exists());
    nothing_lost_and_the_next_run_completes(f);
}

/// The disk fills up half-way through each copy (ENOSPC, injected: a real full disk
/// is `safety.rs`'s tmpfs test): each copy is a `no_space` problem naming B, its
/// half-written temp file is removed, the old content stays.
#[test]
fn a_disk_full_mid_copy_loses_nothing() {
    every_copy_fails_and_nothing_is_lost(FaultPoint::NoSpaceMidCopy, ProblemKind::NoSpace);
}

/// A source that cannot be opened (EACCES, which root never meets on a real disk):
/// each copy is a `permission_denied` problem, nothing is written to B.
#[test]
fn a_source_denied_on_open_loses_nothing() {
    let denied = ProblemKind::PermissionDenied;
    every_copy_fails_and_nothing_is_lost(FaultPoint::DeniedOpeningSource, denied);
}

/// The exchange that replaces `doc.txt` fails after the staged copy moved into the
/// version store's staging folder: the copy comes back out and is discarded, the old
/// content never left its path and is not versioned; `new.txt` (a plain rename, no
/// exchange) is installed.
#[test]
fn a_failed_exchange_loses_nothing() {
    let (f, out) = edit_then_sync_with(FaultPoint::ExchangeFails);
    assert_eq!(out.problems.len(), 1, "{:?}", out.problems);
    let p = &out.problems[0];
    assert_eq!(
        (p.kind, p.path.as_deref()),
        (ProblemKind::Io, Some("doc.txt")),
        "{p:?}"
    );
    assert_eq!(read(&f.b, "new.txt"), b"brand new");
    nothing_lost_and_the_next_run_completes(f);
}
