//! Two folders synced through the replica writer seam: each applies only its own side
//! of the plan (`LocalFolder`, a `ReplicaWriter`), the content of its copies pulled by
//! hash from the other folder (`FolderContent`, a `ChunkSource`), as two devices do.

use ferry_core::index::Index;
use ferry_core::plan::{Plan, Side};
use ferry_core::replica::{open_location, FolderContent, LocalFolder, Location, ReplicaWriter};
use ferry_core::{ExecReport, FaultPoint, NoProgress};
use ferry_testkit::{kept_versions, noise, read, snapshot, write};
use std::path::Path;

mod common;
use common::Pair;

/// What the other side's device would read this folder's content from: its own index
/// connection and location.
fn content_of(pair: &Pair, dir: &Path) -> FolderContent {
    let mut index = Index::open(&pair.tmp.path().join("index.db")).unwrap();
    let loc = open_location(&mut index, dir, false).unwrap();
    FolderContent::new(index, loc)
}

/// `side`'s folder (`here`) applies its side of `plan`, pulling from `there`.
fn apply(
    pair: &mut Pair,
    here: &Location,
    other: &Location,
    side: Side,
    plan: &Plan,
    there: &Path,
) -> ExecReport {
    let content = content_of(pair, there);
    let mut writer = LocalFolder {
        index: &mut pair.index,
        location: here,
        side,
        other: other.id(),
        workers: 0,
        limiter: None,
        generation: None,
        cancel: None,
        fault: FaultPoint::None,
    };
    assert_eq!(writer.side(), side);
    let report = writer.apply(plan, Some(&content), &NoProgress).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    report
}

/// Scans, plans, and lets A then B apply their sides; each apply leaves the other
/// folder exactly as it was. Returns what each side did.
fn round(pair: &mut Pair) -> (ExecReport, ExecReport) {
    let (la, lb, plan) = pair.plan();
    let (a, b) = (pair.a.clone(), pair.b.clone());
    let b_before = snapshot(&b);
    let by_a = apply(pair, &la, &lb, Side::A, &plan, &b);
    assert_eq!(snapshot(&b), b_before, "A's writer touched B");
    let a_before = snapshot(&a);
    let by_b = apply(pair, &lb, &la, Side::B, &plan, &a);
    assert_eq!(snapshot(&a), a_before, "B's writer touched A");
    (by_a, by_b)
}

#[test]
fn each_folder_applies_only_its_own_side_and_they_converge() {
    let mut f = Pair::new();
    let big = noise(1 << 20, 3);
    write(&f.a, "big.bin", &big);
    write(&f.a, "docs/a.txt", "from a");
    write(&f.b, "b.txt", "from b");

    let (by_a, by_b) = round(&mut f);
    assert_eq!((by_a.stats.files_copied, by_b.stats.files_copied), (1, 2));
    assert_eq!(snapshot(&f.a), snapshot(&f.b));
    assert_eq!(read(&f.b, "big.bin"), big);

    // A inserts 100 bytes near the start of big.bin; B deletes b.txt.
    let mut edited = big.clone();
    edited.splice(1000..1000, noise(100, 4));
    write(&f.a, "big.bin", &edited);
    std::fs::remove_file(f.b.join("b.txt")).unwrap();

    let (by_a, by_b) = round(&mut f);
    assert_eq!((by_a.stats.files_deleted, by_b.stats.files_copied), (1, 1));
    assert_eq!(snapshot(&f.a), snapshot(&f.b));
    assert_eq!(read(&f.b, "big.bin"), edited);
    // What each side replaced or deleted is in its own version store.
    assert_eq!(kept_versions(&f.b, "big.bin"), vec![big]);
    assert_eq!(kept_versions(&f.a, "b.txt"), vec![b"from b".to_vec()]);

    // Nothing left to do on either side.
    let (by_a, by_b) = round(&mut f);
    assert!(by_a.done.is_empty() && by_b.done.is_empty());
}
