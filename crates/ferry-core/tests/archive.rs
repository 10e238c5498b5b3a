//! Archive mode against real folders: a copy that fails verification keeps its source,
//! an interrupted run resumes without loss, archive removals never travel as
//! deletions, and an archive conduit cannot be switched to a mode that would undo it.

use ferry_core::model::RelPath;
use ferry_core::plan::SyncMode;
use ferry_core::replica::open_location;
use ferry_core::Error;
use ferry_core::FaultPoint;
use ferry_core::NoProgress;
use ferry_core::{sync, SyncOptions, SyncOutcome};
use std::path::Path;

mod common;
use common::{paths_below, Pair};

/// A with `one.txt`, `sub/two.bin` and an empty B.
fn fixture() -> Pair {
    let f = Pair::new();
    std::fs::create_dir(f.a.join("sub")).unwrap();
    std::fs::write(f.a.join("one.txt"), "first piece of work").unwrap();
    std::fs::write(f.a.join("sub/two.bin"), vec![7u8; 300_000]).unwrap();
    f
}

impl Pair {
    fn run(&mut self, mode: SyncMode, fault: FaultPoint) -> ferry_core::Result<SyncOutcome> {
        let opts = SyncOptions {
            mode: Some(mode),
            fault,
            ..Default::default()
        };
        sync(&mut self.index, &self.a, &self.b, &opts, &NoProgress)
    }

    /// A run with `opts` (no fault), A to B.
    fn run_with(&mut self, opts: SyncOptions) -> ferry_core::Result<SyncOutcome> {
        sync(&mut self.index, &self.a, &self.b, &opts, &NoProgress)
    }

    /// The stored mode of the conduit A → B.
    fn stored_mode(&mut self) -> SyncMode {
        let la = open_location(&mut self.index, &self.a, false).unwrap();
        let lb = open_location(&mut self.index, &self.b, false).unwrap();
        self.index
            .conduit_between(la.id(), lb.id())
            .unwrap()
            .expect("conduit A → B")
            .mode
    }

    fn archive(&mut self, fault: FaultPoint) -> ferry_core::Result<SyncOutcome> {
        self.run(SyncMode::Archive, fault)
    }
}

fn exists(root: &Path, rel: &str) -> bool {
    std::fs::symlink_metadata(root.join(rel)).is_ok()
}

fn originals_on(root: &Path) {
    assert_eq!(
        std::fs::read(root.join("one.txt")).unwrap(),
        b"first piece of work"
    );
    assert_eq!(
        std::fs::read(root.join("sub/two.bin")).unwrap(),
        vec![7u8; 300_000]
    );
}

/// Only temp files of ferry's own are allowed to be left behind by a dying run.
fn user_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in paths_below(root) {
        let rel = e.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let name = e.file_name().unwrap().to_string_lossy().into_owned();
        if !rel.starts_with(".ferry") && !name.starts_with(".ferry.tmp.") && e.is_file() {
            out.push(rel);
        }
    }
    out.sort();
    out
}

#[test]
fn archive_moves_verified_files_and_reports_bytes_freed() {
    let mut f = fixture();
    let o = f.archive(FaultPoint::None).unwrap();
    assert!(o.problems.is_empty(), "{:?}", o.problems);
    assert_eq!(o.stats.files_archived, 2);
    assert_eq!(o.stats.bytes_freed, 19 + 300_000);
    originals_on(&f.b);
    assert_eq!(user_files(&f.a), Vec::<String>::new());
    // Folders stay on A: that is where new work lands.
    assert!(f.a.join("sub").is_dir());

    // Idempotent: nothing to do on a re-run.
    let again = f.archive(FaultPoint::None).unwrap();
    assert_eq!(
        (again.stats.files_copied, again.stats.files_archived),
        (0, 0)
    );
    assert!(!again.plan.touches_disk(), "{:?}", again.plan);
}

/// A copy whose bytes do not verify (corrupted while staged) is never installed, and
/// its source stays on A with an error; a clean re-run archives it.
#[test]
fn copy_failing_verification_keeps_the_source() {
    let mut f = fixture();
    let o = f.archive(FaultPoint::CorruptTempAfterCopy).unwrap();
    assert_eq!(o.stats.files_archived, 0);
    assert!(!o.problems.is_empty());
    originals_on(&f.a);
    assert_eq!(user_files(&f.b), Vec::<String>::new());

    let o = f.archive(FaultPoint::None).unwrap();
    assert!(o.problems.is_empty(), "{:?}", o.problems);
    assert_eq!(o.stats.files_archived, 2);
    originals_on(&f.b);
}

/// The installed copy on B is re-read before A's file goes: a copy that is wrong on
/// disk after installation (a lying disk, a concurrent writer) keeps A's file.
#[test]
fn installed_copy_that_reads_back_wrong_keeps_the_source() {
    let mut f = fixture();
    let o = f.archive(FaultPoint::CorruptArchivedCopy).unwrap();
    assert_eq!(o.stats.files_archived, 0);
    assert_eq!(o.problems.len(), 2, "{:?}", o.problems);
    assert!(
        o.problems
            .iter()
            .all(|e| e.detail.contains("does not match")),
        "{:?}",
        o.problems
    );
    originals_on(&f.a);
}

/// A run that dies after staging, or after installing copies but before removing
/// anything, loses nothing; the next run finishes the job without copying twice.
#[test]
fn interrupted_archive_resumes_without_loss() {
    let mut f = fixture();
    assert!(f.archive(FaultPoint::StopAfterStaging).is_err());
    originals_on(&f.a);

    let mut g = fixture();
    assert!(g.archive(FaultPoint::StopBeforeArchiveRemoval).is_err());
    originals_on(&g.a);
    originals_on(&g.b);
    let o = g.archive(FaultPoint::None).unwrap();
    assert!(o.problems.is_empty(), "{:?}", o.problems);
    assert_eq!(
        o.stats.files_copied, 0,
        "already on B, verified, not copied again"
    );
    assert_eq!(o.stats.files_archived, 2);
    originals_on(&g.b);
    assert_eq!(user_files(&g.a), Vec::<String>::new());

    let o = f.archive(FaultPoint::None).unwrap();
    assert!(o.problems.is_empty(), "{:?}", o.problems);
    assert_eq!(o.stats.files_archived, 2);
    originals_on(&f.b);
}

/// An archived path is forgotten on A, not tombstoned: a later two-way run deletes
/// nothing on B, and new work on A at an archived path is archived again (replacing
/// B's older copy, which is versioned).
#[test]
fn archive_removals_never_propagate_as_deletions() {
    let mut f = fixture();
    f.archive(FaultPoint::None).unwrap();
    let la = open_location(&mut f.index, &f.a, false).unwrap();
    let one = RelPath::new("one.txt").unwrap();
    assert_eq!(f.index.entry(la.id(), &one).unwrap(), None);

    std::fs::write(f.a.join("one.txt"), "second version of the work").unwrap();
    let o = f.archive(FaultPoint::None).unwrap();
    assert!(o.problems.is_empty(), "{:?}", o.problems);
    assert_eq!(o.stats.files_archived, 1);
    assert_eq!(
        std::fs::read(f.b.join("one.txt")).unwrap(),
        b"second version of the work"
    );
    let lb = open_location(&mut f.index, &f.b, false).unwrap();
    assert_eq!(f.index.versions_of(lb.id(), &one).unwrap().len(), 1);

    // The archive conduit itself refuses to turn two-way; a new conduit between the same
    // folders (after removing the archive one) sees A with no opinion on the archived
    // paths, so it deletes nothing on B.
    assert!(matches!(
        f.run(SyncMode::Bidirectional, FaultPoint::None),
        Err(Error::Refused(_))
    ));
    let conduit = f.index.conduits().unwrap()[0].id;
    assert!(f.index.remove_conduit(conduit).unwrap());
    let o = f.run(SyncMode::Bidirectional, FaultPoint::None).unwrap();
    assert!(o.problems.is_empty(), "{:?}", o.problems);
    assert_eq!(o.stats.files_deleted, 0);
    assert!(exists(&f.b, "one.txt") && exists(&f.b, "sub/two.bin"));
}

/// An unrelated file of the same name already on B is never replaced: A's content lands
/// beside it as a conflict copy, then leaves A.
#[test]
fn unrelated_file_on_b_is_kept_and_a_copy_lands_beside_it() {
    let mut f = fixture();
    std::fs::write(f.b.join("one.txt"), "B's own file").unwrap();
    let o = f.archive(FaultPoint::None).unwrap();
    assert!(o.problems.is_empty(), "{:?}", o.problems);
    assert_eq!(o.stats.files_archived, 2);
    assert_eq!(std::fs::read(f.b.join("one.txt")).unwrap(), b"B's own file");
    let aside: Vec<String> = user_files(&f.b)
        .into_iter()
        .filter(|p| p.starts_with("one.conflict-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(f.b.join(&aside[0])).unwrap(),
        b"first piece of work"
    );
    assert_eq!(user_files(&f.a), Vec::<String>::new());
}

/// The refusal a switch of an archive conduit to `mode` meets, real or dry run alike;
/// nothing changes on disk or in the conduit, and plain archive runs go on.
fn assert_switch_refused(mode: SyncMode, says: &str) {
    let mut f = fixture();
    f.archive(FaultPoint::None).unwrap();
    std::fs::write(f.a.join("new.txt"), "new work, not archived yet").unwrap();
    let (a_before, b_before) = (user_files(&f.a), user_files(&f.b));
    for dry_run in [false, true] {
        let err = f
            .run_with(SyncOptions {
                mode: Some(mode),
                dry_run,
                yes: true, // not even past the mass-deletion stop
                ..Default::default()
            })
            .expect_err("switching an archive conduit must be refused");
        let Error::Refused(msg) = &err else {
            panic!("expected a refusal, got {err:?}");
        };
        for part in ["archive", says, "different folder", "new conduit"] {
            assert!(msg.contains(part), "{part:?} missing in: {msg}");
        }
        assert_eq!(f.stored_mode(), SyncMode::Archive, "dry run {dry_run}");
        assert_eq!(user_files(&f.a), a_before, "dry run {dry_run}");
        assert_eq!(user_files(&f.b), b_before, "dry run {dry_run}");
        originals_on(&f.b);
    }
    // Without a mode the conduit keeps archiving; `--mode archive` is no switch.
    let o = f.run_with(SyncOptions::default()).unwrap();
    assert_eq!(o.mode, SyncMode::Archive);
    assert_eq!(o.stats.files_archived, 1);
    assert!(f.archive(FaultPoint::None).is_ok());
    assert_eq!(user_files(&f.a), Vec::<String>::new());
    originals_on(&f.b);
}

/// Mirror would make B an exact copy of A: every archived file would be deleted.
#[test]
fn archive_conduit_refuses_to_become_mirror() {
    assert_switch_refused(SyncMode::Mirror, "deleting from");
}

/// Bidirectional would copy the archive back into A, after which A's deletions would
/// reach the archive: refused as well.
#[test]
fn archive_conduit_refuses_to_become_bidirectional() {
    assert_switch_refused(SyncMode::Bidirectional, "back into");
}

/// A second conduit between the same folders in the other direction is refused while
/// either one archives: it would undo the archive from the side.
#[test]
fn reverse_conduit_beside_an_archive_is_refused() {
    let mut f = fixture();
    f.archive(FaultPoint::None).unwrap();
    for mode in [None, Some(SyncMode::Mirror), Some(SyncMode::Archive)] {
        for dry_run in [false, true] {
            let opts = SyncOptions {
                mode,
                dry_run,
                ..Default::default()
            };
            let r = sync(&mut f.index, &f.b, &f.a, &opts, &NoProgress);
            assert!(
                matches!(&r, Err(Error::Refused(m)) if m.contains("archive")),
                "{mode:?} dry run {dry_run}: {r:?}"
            );
        }
    }
    assert_eq!(f.index.conduits().unwrap().len(), 1);
    originals_on(&f.b);
    assert_eq!(user_files(&f.a), Vec::<String>::new());

    // And the other way round: no archive conduit beside a two-way one.
    let mut g = fixture();
    g.run(SyncMode::Bidirectional, FaultPoint::None).unwrap();
    let opts = SyncOptions {
        mode: Some(SyncMode::Archive),
        ..Default::default()
    };
    let r = sync(&mut g.index, &g.b, &g.a, &opts, &NoProgress);
    assert!(matches!(r, Err(Error::Refused(_))), "{r:?}");
    originals_on(&g.a);
    originals_on(&g.b);
}

/// Switching into archive mode stays possible; only leaving it is refused.
#[test]
fn two_way_conduit_may_become_an_archive() {
    let mut f = fixture();
    f.run(SyncMode::Bidirectional, FaultPoint::None).unwrap();
    let o = f.archive(FaultPoint::None).unwrap();
    assert!(o.problems.is_empty(), "{:?}", o.problems);
    assert_eq!(o.stats.files_archived, 2);
    assert_eq!(f.stored_mode(), SyncMode::Archive);
    originals_on(&f.b);
}
