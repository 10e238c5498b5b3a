//! Targeted scans on real folders: only the touched paths (and the subtrees of touched
//! directories) are looked at, judged exactly as a full scan would judge them; every
//! other entry keeps its row until a full scan.

use ferry_core::index::Index;
use ferry_core::model::RelPath;
use ferry_core::replica::IndexRules;
use ferry_core::replica::{open_location, Location};
use ferry_core::replica::{scan_location, scan_paths, ScanReport, Scope};
use ferry_core::NoProgress;
use ferry_core::{sync, SyncOptions};
use std::path::Path;

mod common;
use common::contents_without_ferry;

fn rel(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

fn rels(v: &[&str]) -> Vec<RelPath> {
    v.iter().map(|s| rel(s)).collect()
}

fn write(root: &Path, p: &str, content: &str) {
    let abs = root.join(p);
    std::fs::create_dir_all(abs.parent().unwrap()).unwrap();
    std::fs::write(abs, content).unwrap();
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    index: Index,
    loc: Location,
}

impl Fixture {
    fn new(files: &[(&str, &str)]) -> Fixture {
        let (tmp, [root], mut index) = common::folders(["R"]);
        for (p, c) in files {
            write(&root, p, c);
        }
        let loc = open_location(&mut index, &root, false).unwrap();
        let mut f = Fixture {
            _tmp: tmp,
            root,
            index,
            loc,
        };
        f.full(IndexRules::default());
        f
    }

    fn full(&mut self, rules: IndexRules) -> ScanReport {
        let lock = self.loc.lock().unwrap();
        scan_location(&mut self.index, &self.loc, &lock, rules, &NoProgress).unwrap()
    }

    fn targeted(&mut self, paths: &[&str]) -> ScanReport {
        let lock = self.loc.lock().unwrap();
        let r = scan_paths(
            &mut self.index,
            &self.loc,
            &lock,
            IndexRules::default(),
            &rels(paths),
            &NoProgress,
        )
        .unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        r
    }

    /// What the index says of `p`: `absent`, `deleted`, `dir`, or `live <size>`.
    fn state(&self, p: &str) -> String {
        match self.index.entry(self.loc.id(), &rel(p)).unwrap() {
            None => "absent".into(),
            Some(e) if e.is_tombstone() => "deleted".into(),
            Some(e) if e.state.kind == ferry_core::model::EntryKind::Dir => "dir".into(),
            Some(e) => format!("live {}", e.state.size),
        }
    }
}

#[test]
fn scope_collapses_paths_below_others_and_widens_on_ignore_files() {
    assert_eq!(
        Scope::paths(&rels(&["a/c", "a-b", "a", "b/x", "a", "b/xy"])),
        Scope::Paths(rels(&["a", "a-b", "b/x", "b/xy"]))
    );
    assert_eq!(Scope::paths(&rels(&["a", "d/.ferryignore"])), Scope::All);
}

#[test]
fn targeted_scan_sees_touched_paths_only() {
    let mut f = Fixture::new(&[
        (".ferryignore", "*.log\n"),
        ("sub/.ferryignore", "*.tmpx\n"),
        ("sub/kept.txt", "k"),
        ("edit.txt", "before"),
        ("gone.txt", "g"),
        ("olddir/x", "x"),
        ("olddir/y/z", "z"),
        ("ren_from.txt", "moving"),
        ("untouched.txt", "u"),
    ]);
    assert_eq!(f.state("olddir/y/z"), "live 1");

    write(&f.root, "edit.txt", "after the edit");
    write(&f.root, "new.txt", "new");
    write(&f.root, "newdir/a", "aa");
    write(&f.root, "newdir/b/c", "ccc");
    std::fs::remove_file(f.root.join("gone.txt")).unwrap();
    std::fs::remove_dir_all(f.root.join("olddir")).unwrap();
    std::fs::rename(f.root.join("ren_from.txt"), f.root.join("ren_to.txt")).unwrap();
    write(
        &f.root,
        "untouched.txt",
        "changed behind the watcher's back",
    );
    write(&f.root, ".DS_Store", "junk");
    write(&f.root, "ignored.log", "log");
    write(&f.root, "sub/skip.tmpx", "tmp");
    write(&f.root, "node_modules/pkg/x.js", "js");

    let r = f.targeted(&[
        "edit.txt",
        "new.txt",
        "newdir",
        "newdir/a", // below a touched directory: covered once
        "gone.txt",
        "olddir",
        "ren_from.txt",
        "ren_to.txt",
        ".DS_Store",
        "ignored.log",
        "sub/skip.tmpx",
        "node_modules/pkg/x.js",
        "never/existed",
    ]);
    assert_eq!(f.state("edit.txt"), "live 14");
    assert_eq!(f.state("new.txt"), "live 3");
    assert_eq!(f.state("newdir"), "dir");
    assert_eq!(f.state("newdir/a"), "live 2");
    assert_eq!(f.state("newdir/b/c"), "live 3");
    assert_eq!(f.state("gone.txt"), "deleted");
    for p in ["olddir", "olddir/x", "olddir/y", "olddir/y/z"] {
        assert_eq!(f.state(p), "deleted", "{p}");
    }
    assert_eq!(f.state("ren_from.txt"), "deleted");
    assert_eq!(f.state("ren_to.txt"), "live 6");
    for p in [
        ".DS_Store",
        "ignored.log",
        "sub/skip.tmpx",
        "node_modules",
        "node_modules/pkg/x.js",
        "never/existed",
    ] {
        assert_eq!(f.state(p), "absent", "{p}");
    }
    assert_eq!(r.deleted, 6);
    assert_eq!(r.forgotten, 0);
    // Not touched, so not looked at: the row is the one from the first scan…
    assert_eq!(f.state("untouched.txt"), "live 1");
    assert_eq!(f.state("sub/kept.txt"), "live 1");
    // …until the next full scan finds it.
    let full = f.full(IndexRules::default());
    assert_eq!(f.state("untouched.txt"), "live 33");
    assert_eq!(full.changed, 1, "only the untouched edit was left to find");
}

#[test]
fn touched_path_now_excluded_is_forgotten_not_deleted() {
    let mut f = Fixture::new(&[("node_modules/m.js", "m"), ("a.txt", "a")]);
    f.full(IndexRules {
        index_everything: true,
    });
    assert_eq!(f.state("node_modules/m.js"), "live 1");
    let r = f.targeted(&["node_modules/m.js"]);
    assert_eq!(f.state("node_modules/m.js"), "absent");
    assert_eq!((r.forgotten, r.deleted), (1, 0));
    assert_eq!(f.state("node_modules"), "dir", "not touched: left alone");
}

#[test]
fn a_touched_ignore_file_widens_to_a_full_scan() {
    let mut f = Fixture::new(&[("a.log", "a"), ("b.txt", "b")]);
    write(&f.root, "b.txt", "edited elsewhere");
    write(&f.root, ".ferryignore", "*.log\n");
    f.targeted(&[".ferryignore"]);
    assert_eq!(f.state("b.txt"), "live 16", "a full scan ran");
    assert_eq!(f.state("a.log"), "absent", "newly ignored: forgotten");
    assert_eq!(f.state(".ferryignore"), "live 6");
}

#[test]
fn targeted_sync_converges_the_touched_paths() {
    let (_tmp, [a, b], mut index) = common::folders(["A", "B"]);
    for (p, c) in [
        ("edit.txt", "one"),
        ("gone.txt", "g"),
        ("dir/x", "x"),
        ("dir/y/z", "z"),
        ("ren_from.txt", "r"),
        ("untouched.txt", "u"),
    ] {
        write(&a, p, c);
    }
    let full = SyncOptions::default();
    sync(&mut index, &a, &b, &full, &NoProgress).unwrap();
    assert_eq!(contents_without_ferry(&a), contents_without_ferry(&b));

    write(&a, "edit.txt", "edited on A");
    write(&a, "newdir/deep/file", "new on A");
    std::fs::remove_file(a.join("gone.txt")).unwrap();
    std::fs::remove_dir_all(a.join("dir")).unwrap();
    std::fs::rename(a.join("ren_from.txt"), a.join("ren_to.txt")).unwrap();
    write(&b, "from_b.txt", "new on B");
    write(&a, "untouched.txt", "not seen by a targeted run");

    let only = SyncOptions {
        only: Some([
            rels(&[
                "edit.txt",
                "newdir",
                "gone.txt",
                "dir",
                "ren_from.txt",
                "ren_to.txt",
            ]),
            rels(&["from_b.txt"]),
        ]),
        ..Default::default()
    };
    let o = sync(&mut index, &a, &b, &only, &NoProgress).unwrap();
    assert!(o.problems.is_empty(), "{:?}", o.problems);
    let (ta, tb) = (contents_without_ferry(&a), contents_without_ferry(&b));
    assert_eq!(tb["edit.txt"], Some(b"edited on A".to_vec()));
    assert_eq!(
        tb["untouched.txt"],
        Some(b"u".to_vec()),
        "targeted: not seen"
    );
    assert!(!tb.contains_key("dir") && !tb.contains_key("gone.txt"));
    let mut ta_but_untouched = ta.clone();
    ta_but_untouched.insert("untouched.txt".into(), Some(b"u".to_vec()));
    assert_eq!(ta_but_untouched, tb);

    // A full run (the daemon's backstop) picks up the rest; then both trees match.
    sync(&mut index, &a, &b, &full, &NoProgress).unwrap();
    assert_eq!(contents_without_ferry(&a), contents_without_ferry(&b));
    let again = sync(&mut index, &a, &b, &only, &NoProgress).unwrap();
    assert!(again.plan.actions.is_empty(), "{:?}", again.plan.actions);
}

#[test]
fn a_stat_only_refresh_keeps_the_location_sequence() {
    let mut f = Fixture::new(&[("a.txt", "one")]);
    let before = f.index.entry(f.loc.id(), &rel("a.txt")).unwrap().unwrap();
    assert!(before.cache.racy, "a file written just now is racy");
    let seq = f.index.location_sequence(f.loc.id()).unwrap();

    // Same content, older mtime: the stat is refreshed, nothing a sync decides on moved.
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let file = std::fs::File::options()
        .write(true)
        .open(f.root.join("a.txt"))
        .unwrap();
    file.set_modified(an_hour_ago).unwrap();
    drop(file);
    f.full(IndexRules::default());
    let after = f.index.entry(f.loc.id(), &rel("a.txt")).unwrap().unwrap();
    assert!(!after.cache.racy);
    assert_ne!(
        after.state.mtime_ns, before.state.mtime_ns,
        "stat refreshed"
    );
    assert_eq!(after.state.version, before.state.version);
    assert_eq!(after.cache.sequence, before.cache.sequence);
    assert_eq!(f.index.location_sequence(f.loc.id()).unwrap(), seq);

    // New content moves both.
    write(&f.root, "a.txt", "two");
    f.full(IndexRules::default());
    let changed = f.index.entry(f.loc.id(), &rel("a.txt")).unwrap().unwrap();
    assert!(changed.cache.sequence > seq);
    assert!(f.index.location_sequence(f.loc.id()).unwrap() > seq);
    assert_ne!(changed.state.version, before.state.version);
}
