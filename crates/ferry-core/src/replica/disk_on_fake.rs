//! The disk steps' safety rules, run against the in-memory file system (`mem_fs`):
//! saves that land at each point of an install or removal, and faults at each
//! operation, deterministically and without touching a disk.

use crate::error::Error;
use crate::fault::FaultPoint;
use crate::index::Index;
use crate::model::chunk::Hash;
use crate::model::entry::Entry;
use crate::model::rel_path::RelPath;
use crate::replica::disk::{self, Place, Staged};
use crate::replica::fs::Rename;
use crate::replica::mem_fs::{MemFs, Op};
use std::ffi::OsString;

const TAG: &str = "0123456789abcdef";
const STORE: &str = ".ferry/versions";

struct World {
    fs: MemFs,
    index: Index,
    id: i64,
}

fn world() -> World {
    let index = Index::open_in_memory().unwrap();
    let id = index
        .insert_location("fake", std::path::Path::new("/mem"), 1)
        .unwrap()
        .id;
    World {
        fs: MemFs::new(),
        index,
        id,
    }
}

fn rel(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

impl World {
    fn place(&self) -> Place<'_, MemFs> {
        Place {
            root: &self.fs,
            id: self.id,
            tag: TAG,
        }
    }

    /// The entry a scan would record for what is at `path` now.
    fn entry(&self, path: &str) -> Entry {
        let f = self.fs.found(path).unwrap();
        let mut e = Entry::at(rel(path), f.kind.unwrap(), f.stat);
        e.state.hash = self.fs.read(path).map(|b| Hash::of(&b));
        e
    }

    /// A verified temp file beside `path` with `bytes`, as `disk::stage` leaves it,
    /// and the source entry it copies.
    fn staged(&self, path: &str, bytes: &[u8]) -> (Staged, Entry) {
        let tmp = format!(".ferry.tmp.{TAG}.{:016x}", bytes.len());
        let at = match path.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/{tmp}"),
            None => tmp.clone(),
        };
        self.fs.save(&at, bytes, 7_000);
        let mut source = self.entry(&at);
        source.path = rel(path);
        let staged = Staged {
            tmp: OsString::from(tmp),
            inode: self.fs.found(&at).unwrap().stat.inode,
            note: None,
        };
        (staged, source)
    }

    /// `a/f` holding "old" as the scan saw it, and "new" staged to replace it.
    fn old_and_new(&self) -> (Entry, Staged, Entry) {
        self.fs.save("a/f", b"old", 5);
        let old = self.entry("a/f");
        let (staged, source) = self.staged("a/f", b"new");
        (old, staged, source)
    }

    fn install(
        &self,
        path: &str,
        staged: &Staged,
        source: &Entry,
        expected: Option<&Entry>,
    ) -> crate::error::Result<disk::Installed> {
        disk::install(
            &self.index,
            &self.place(),
            &rel(path),
            staged,
            source,
            expected,
            FaultPoint::None,
        )
    }

    fn versions(&self) -> Vec<(String, String)> {
        self.index
            .versions_in(self.id)
            .unwrap()
            .into_iter()
            .map(|v| (v.path, v.reason))
            .collect()
    }

    /// The contents kept in the version store (not its staging folder).
    fn kept(&self) -> Vec<Vec<u8>> {
        self.fs
            .files_under(STORE)
            .into_iter()
            .filter(|(p, _)| !p.contains(".ferry.tmp."))
            .map(|(_, b)| b)
            .collect()
    }
}

fn is_changed(e: &Error) -> bool {
    matches!(e, Error::Changed(_))
}

#[test]
fn a_new_file_lands_and_its_temp_is_gone() {
    let w = world();
    let (staged, source) = w.staged("a/f", b"new");
    let done = w.install("a/f", &staged, &source, None).unwrap();
    assert_eq!(w.fs.read("a/f").unwrap(), b"new");
    assert_eq!(w.fs.list("a"), vec!["f"]);
    assert!(!done.replaced_since);
}

/// Whether it appeared before the install began or between its check and its rename.
#[test]
fn a_file_that_appeared_since_the_plan_is_not_overwritten() {
    for at_the_rename in [false, true] {
        let w = world();
        let (staged, source) = w.staged("a/f", b"new");
        let user = |fs: &MemFs| fs.save("a/f", b"mine", 5);
        match at_the_rename {
            true => w.fs.before_next(Op::Rename(Rename::NoReplace), user),
            false => user(&w.fs),
        }
        let e = w.install("a/f", &staged, &source, None).unwrap_err();
        assert!(is_changed(&e), "{e}");
        assert_eq!(w.fs.read("a/f").unwrap(), b"mine");
    }
}

#[test]
fn a_replaced_file_is_kept_as_a_version() {
    let w = world();
    let (old, staged, source) = w.old_and_new();
    w.install("a/f", &staged, &source, Some(&old)).unwrap();
    assert_eq!(w.fs.read("a/f").unwrap(), b"new");
    assert_eq!(w.kept(), vec![b"old".to_vec()]);
    assert_eq!(w.versions(), vec![("a/f".into(), "replaced".into())]);
    assert_eq!(w.fs.list("a"), vec!["f"]);
}

#[test]
fn a_file_changed_between_plan_and_install_is_not_overwritten() {
    let w = world();
    let (old, staged, source) = w.old_and_new();
    w.fs.write_in_place("a/f", b"edited", 6);
    let e = w.install("a/f", &staged, &source, Some(&old)).unwrap_err();
    assert!(is_changed(&e), "{e}");
    assert_eq!(w.fs.read("a/f").unwrap(), b"edited");
    assert!(w.versions().is_empty());
}

#[test]
fn a_save_landing_just_before_the_exchange_keeps_its_path() {
    let w = world();
    let (old, staged, source) = w.old_and_new();
    w.fs.before_next(Op::Rename(Rename::Exchange), |fs| {
        fs.save("a/f", b"save", 6)
    });
    let e = w.install("a/f", &staged, &source, Some(&old)).unwrap_err();
    assert!(is_changed(&e), "{e}");
    assert_eq!(w.fs.read("a/f").unwrap(), b"save");
    // The staged copy was removed, nothing was recorded as a version.
    assert!(w.fs.files_under(STORE).is_empty());
    assert!(w.versions().is_empty());
}

#[test]
fn a_failed_exchange_leaves_the_old_content() {
    let w = world();
    let (old, staged, source) = w.old_and_new();
    w.fs.fail_next(Op::Rename(Rename::Exchange), libc::EIO);
    let e = w.install("a/f", &staged, &source, Some(&old)).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert_eq!(w.fs.read("a/f").unwrap(), b"old");
    // The staged copy went back beside its target, where the caller discards it.
    disk::discard_in(&w.fs, &rel("a/f"), &staged);
    assert_eq!(w.fs.list("a"), vec!["f"]);
    assert!(w.versions().is_empty());
}

#[test]
fn a_version_that_cannot_be_kept_puts_the_old_content_back() {
    let w = world();
    let (old, staged, source) = w.old_and_new();
    // Right after the exchange, the move into the store fails (disk full).
    w.fs.before_next(Op::Rename(Rename::Exchange), |fs| {
        fs.fail_next(Op::Rename(Rename::NoReplace), libc::ENOSPC)
    });
    let e = w.install("a/f", &staged, &source, Some(&old)).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert_eq!(w.fs.read("a/f").unwrap(), b"old");
    assert!(w.kept().is_empty());
    assert!(w.versions().is_empty());
}

#[test]
fn a_store_on_another_file_system_is_swapped_beside_the_target() {
    let w = world();
    let (old, staged, source) = w.old_and_new();
    w.fs.fail_next(Op::Rename(Rename::NoReplace), libc::EXDEV);
    w.install("a/f", &staged, &source, Some(&old)).unwrap();
    assert_eq!(w.fs.read("a/f").unwrap(), b"new");
    assert_eq!(w.kept(), vec![b"old".to_vec()]);
    assert_eq!(w.fs.list("a"), vec!["f"]);
}

#[test]
fn a_deleted_file_is_kept_and_a_changed_one_is_not_deleted() {
    let w = world();
    w.fs.save("d/gone", b"bye", 5);
    w.fs.save("d/edited", b"v1", 5);
    let gone = w.entry("d/gone");
    let edited = w.entry("d/edited");
    w.fs.write_in_place("d/edited", b"v2", 6);
    disk::remove_file_in(&w.index, &w.place(), &rel("d/gone"), &gone, "deleted").unwrap();
    let e = disk::remove_file_in(&w.index, &w.place(), &rel("d/edited"), &edited, "deleted")
        .unwrap_err();
    assert!(is_changed(&e), "{e}");
    assert_eq!(w.fs.list("d"), vec!["edited"]);
    assert_eq!(w.fs.read("d/edited").unwrap(), b"v2");
    assert_eq!(w.kept(), vec![b"bye".to_vec()]);
}

#[test]
fn a_save_racing_a_delete_is_put_back() {
    let w = world();
    w.fs.save("d/f", b"v1", 5);
    let e1 = w.entry("d/f");
    w.fs.before_next(Op::Rename(Rename::NoReplace), |fs| {
        fs.save("d/f", b"save", 6)
    });
    let e = disk::remove_file_in(&w.index, &w.place(), &rel("d/f"), &e1, "deleted").unwrap_err();
    assert!(is_changed(&e), "{e}");
    assert_eq!(w.fs.read("d/f").unwrap(), b"save");
    assert!(w.versions().is_empty());
}

#[test]
fn an_unkept_removal_puts_back_a_racing_save() {
    let w = world();
    w.fs.save("f", b"v1", 5);
    w.fs.save("g", b"v1", 5);
    let (f, g) = (w.entry("f"), w.entry("g"));
    disk::remove_unkept_in(&w.place(), &rel("f"), &f).unwrap();
    assert!(w.fs.read("f").is_none());
    w.fs.before_next(Op::Rename(Rename::NoReplace), |fs| fs.save("g", b"save", 6));
    let e = disk::remove_unkept_in(&w.place(), &rel("g"), &g).unwrap_err();
    assert!(is_changed(&e), "{e}");
    assert_eq!(w.fs.read("g").unwrap(), b"save");
    assert_eq!(w.fs.list(""), vec!["g"]);
}

#[test]
fn a_move_of_a_file_replaced_meanwhile_is_undone() {
    let w = world();
    w.fs.save("a", b"v1", 5);
    let a = w.entry("a");
    w.fs.before_next(Op::Rename(Rename::NoReplace), |fs| fs.save("a", b"save", 6));
    let e = disk::move_checked_in(&w.fs, &rel("a"), &a, &rel("b")).unwrap_err();
    assert!(is_changed(&e), "{e}");
    assert_eq!(w.fs.read("a").unwrap(), b"save");
    assert!(w.fs.read("b").is_none());
    // Unraced, it moves.
    let a = w.entry("a");
    disk::move_checked_in(&w.fs, &rel("a"), &a, &rel("b")).unwrap();
    assert_eq!(w.fs.read("b").unwrap(), b"save");
}

#[test]
fn a_symlink_in_the_way_is_refused() {
    let w = world();
    w.fs.symlink_at("link", "/elsewhere");
    let (staged, source) = w.staged("f", b"new");
    let e = w.install("link/f", &staged, &source, None).unwrap_err();
    assert!(matches!(e, Error::Refused(_)), "{e}");
    let e = disk::mkdir_in(&w.fs, &rel("link/d"), 0o755, None).unwrap_err();
    assert!(matches!(e, Error::Refused(_)), "{e}");
    // A symlinked version store is refused too.
    w.fs.symlink_at(".ferry", "/elsewhere");
    w.fs.save("a", b"old", 5);
    let old = w.entry("a");
    let (staged, source) = w.staged("a", b"new");
    let e = w.install("a", &staged, &source, Some(&old)).unwrap_err();
    assert!(matches!(e, Error::Refused(_)), "{e}");
    assert_eq!(w.fs.read("a").unwrap(), b"old");
}

#[test]
fn a_folder_holding_only_clutter_is_removed_and_its_clutter_kept() {
    let w = world();
    w.fs.save("d/.DS_Store", b"junk", 5);
    w.fs.save("e/.DS_Store", b"junk", 5);
    w.fs.save("e/note", b"mine", 5);
    disk::remove_dir_if_empty_in(&w.index, &w.place(), &rel("d")).unwrap();
    assert!(!w.fs.list("").contains(&"d".to_string()));
    assert_eq!(w.kept(), vec![b"junk".to_vec()]);
    let e = disk::remove_dir_if_empty_in(&w.index, &w.place(), &rel("e")).unwrap_err();
    assert!(matches!(e, Error::Refused(_)), "{e}");
    assert_eq!(w.fs.read("e/note").unwrap(), b"mine");
}

#[test]
fn a_new_folder_gets_its_mode() {
    let w = world();
    disk::mkdir_in(&w.fs, &rel("d"), 0o750, None).unwrap();
    assert_eq!(w.fs.found("d").unwrap().stat.mode, 0o750 | 0o700);
    let e = disk::mkdir_in(&w.fs, &rel("d"), 0o750, None).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
}
