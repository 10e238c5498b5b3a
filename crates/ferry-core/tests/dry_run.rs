//! A dry run plans like a real run but writes nothing: no file or marker under either
//! root, and no row in the index (locations, conduits, entries, generations).

use ferry_core::plan::{Action, SyncMode};
use ferry_core::replica::open_location;
use ferry_core::NoProgress;
use ferry_core::{sync, SyncOptions, SyncOutcome};

mod common;
use common::{stat_listing, Pair};

/// A with `one.txt` and `sub/two.txt`, B with `mine.txt`, both new to the index.
fn fixture() -> Pair {
    let f = Pair::new();
    std::fs::create_dir(f.a.join("sub")).unwrap();
    std::fs::write(f.a.join("one.txt"), "one").unwrap();
    std::fs::write(f.a.join("sub/two.txt"), "two").unwrap();
    std::fs::write(f.b.join("mine.txt"), "b's own").unwrap();
    f
}

impl Pair {
    fn run(&mut self, opts: &SyncOptions) -> ferry_core::Result<SyncOutcome> {
        sync(&mut self.index, &self.a, &self.b, opts, &NoProgress)
    }

    fn dry(&mut self) -> SyncOutcome {
        self.run(&SyncOptions {
            dry_run: true,
            ..Default::default()
        })
        .unwrap()
    }

    /// Everything the index holds about both folders and their conduits, as text.
    fn index_state(&mut self) -> String {
        let mut out = format!(
            "{:?}\n{:?}\n",
            self.index.locations(),
            self.index.conduits()
        );
        for loc in self.index.locations().unwrap() {
            let seq = self.index.location_sequence(loc.id).unwrap();
            out += &format!("{seq} {:?}\n", self.index.entries(loc.id).unwrap());
        }
        for c in self.index.conduits().unwrap() {
            out += &format!("{:?}\n", self.index.conduit_clean_point(c.id).unwrap());
        }
        out + &format!("{:?}", self.index.generations(1000).unwrap())
    }
}

fn copies(o: &SyncOutcome) -> usize {
    o.plan
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Copy { .. }))
        .count()
}

/// On folders new to the index, a dry run shows the copies and leaves no marker, no
/// location or conduit row; the real run afterwards does what it showed.
#[test]
fn dry_run_on_new_folders_stores_nothing() {
    let mut f = fixture();
    let (a_before, b_before) = (stat_listing(&f.a), stat_listing(&f.b));
    let o = f.dry();
    assert!(o.dry_run && o.problems.is_empty(), "{:?}", o.problems);
    assert_eq!(copies(&o), 3, "{:?}", o.plan);
    assert_eq!(o.generation_id, None);
    assert!(!f.a.join(".ferry").exists() && !f.b.join(".ferry").exists());
    assert_eq!(
        (stat_listing(&f.a), stat_listing(&f.b)),
        (a_before, b_before)
    );
    assert!(f.index.locations().unwrap().is_empty());
    assert!(f.index.conduits().unwrap().is_empty());

    let o = f.run(&SyncOptions::default()).unwrap();
    assert!(o.problems.is_empty(), "{:?}", o.problems);
    assert_eq!(o.stats.files_copied, 3);
    assert_eq!(std::fs::read(f.b.join("sub/two.txt")).unwrap(), b"two");
    assert_eq!(std::fs::read(f.a.join("mine.txt")).unwrap(), b"b's own");
}

/// On a synced conduit with edits on both sides, a dry run (even previewing another
/// mode) plans the changes but leaves the index rows and both trees as they were.
#[test]
fn dry_run_after_edits_leaves_the_index_unchanged() {
    let mut f = fixture();
    f.run(&SyncOptions::default()).unwrap();
    std::fs::write(f.a.join("one.txt"), "one, edited").unwrap();
    std::fs::write(f.a.join("sub/three.txt"), "three").unwrap();
    std::fs::remove_file(f.b.join("mine.txt")).unwrap();
    // A leftover temp file of a dead run is cleaned by real scans only.
    std::fs::write(f.b.join(common::leftover_temp_name(&f.b)), "partial").unwrap();
    let state = f.index_state();
    let (a_before, b_before) = (stat_listing(&f.a), stat_listing(&f.b));

    // Two-way: the edit and the new file go to B (and the deletion to A); mirror also
    // brings back B's deleted file.
    for (mode, copied) in [(None, 2), (Some(SyncMode::Mirror), 3)] {
        let o = f
            .run(&SyncOptions {
                mode,
                dry_run: true,
                yes: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(copies(&o), copied, "{mode:?} {:?}", o.plan);
        assert_eq!(f.index_state(), state, "{mode:?}");
        assert_eq!(
            (stat_listing(&f.a), stat_listing(&f.b)),
            (a_before.clone(), b_before.clone())
        );
    }

    let o = f.run(&SyncOptions::default()).unwrap();
    assert!(o.problems.is_empty(), "{:?}", o.problems);
    assert_eq!((o.stats.files_copied, o.stats.files_deleted), (2, 1));
    assert!(!f.b.join(".ferry.tmp.x.1").exists());
}

/// A dry run with `--yes` on a folder whose marker is gone previews starting it over
/// without doing it: no marker is written and its entries stay, so the next real run
/// still stops.
#[test]
fn dry_run_does_not_reinitialise_a_folder_missing_its_marker() {
    let mut f = fixture();
    f.run(&SyncOptions::default()).unwrap();
    std::fs::remove_dir_all(f.b.join(".ferry")).unwrap();
    let state = f.index_state();

    let o = f
        .run(&SyncOptions {
            dry_run: true,
            yes: true,
            ..Default::default()
        })
        .unwrap();
    assert!(o.problems.is_empty(), "{:?}", o.problems);
    assert!(!f.b.join(".ferry").exists());
    assert_eq!(f.index_state(), state);
    assert!(f.run(&SyncOptions::default()).is_err(), "still refused");
    assert!(open_location(&mut f.index, &f.b, false).is_err());
}
