//! The safety holes an attacker's tour found (issue 9), each closed and kept closed:
//! no write or delete through a folder swapped for a symlink, no user file taken for a
//! temp file, versions that are private and immutable, ownership and special bits,
//! read-only folders, paths longer than `PATH_MAX`.

mod common;
use common::Pair;
use ferry_core::ExecReport;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

impl Pair {
    /// Scans, plans and executes once; returns the report.
    fn run(&mut self) -> ExecReport {
        let (la, lb, plan) = self.plan();
        self.execute(&la, &lb, &plan)
    }
}

fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

/// A folder of B swapped for a symlink to an outside folder after the plan was made:
/// the copies meant for it are refused, nothing lands outside.
#[test]
fn copies_never_land_through_a_swapped_folder() {
    let mut f = Pair::new();
    std::fs::create_dir(f.a.join("sub")).unwrap();
    f.run();
    for i in 0..50 {
        std::fs::write(f.a.join(format!("sub/f{i}")), vec![i as u8; 4096]).unwrap();
    }
    let (la, lb, plan) = f.plan();
    let outside = f.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::rename(f.b.join("sub"), f.tmp.path().join("sub.real")).unwrap();
    std::os::unix::fs::symlink(&outside, f.b.join("sub")).unwrap();
    let report = f.execute(&la, &lb, &plan);
    assert_eq!(report.problems.len(), 50, "{:?}", report.problems);
    assert!(files_in(&outside).is_empty(), "{:?}", files_in(&outside));
}

/// The delete variant: B's folder whose files A deleted is swapped for a symlink to an
/// outside folder holding files of the same names and content: none of them is deleted.
#[test]
fn deletes_never_reach_through_a_swapped_folder() {
    let mut f = Pair::new();
    std::fs::create_dir(f.a.join("sub")).unwrap();
    for i in 0..20 {
        std::fs::write(f.a.join(format!("sub/f{i}")), format!("file {i}")).unwrap();
    }
    f.run();
    for i in 0..20 {
        std::fs::remove_file(f.a.join(format!("sub/f{i}"))).unwrap();
    }
    let (la, lb, plan) = f.plan();
    let outside = f.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    for i in 0..20 {
        let p = outside.join(format!("f{i}"));
        std::fs::write(&p, format!("file {i}")).unwrap();
    }
    // Same names, same content, and (by moving B's own files out) the same inodes.
    std::fs::rename(f.b.join("sub"), f.tmp.path().join("sub.real")).unwrap();
    for i in 0..20 {
        std::fs::rename(
            f.tmp.path().join(format!("sub.real/f{i}")),
            outside.join(format!("f{i}")),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink(&outside, f.b.join("sub")).unwrap();
    let report = f.execute(&la, &lb, &plan);
    assert!(!report.problems.is_empty());
    assert_eq!(files_in(&outside).len(), 20);
}

/// `.ferry/versions` swapped for a symlink: the version store is refused, nothing is
/// placed outside, and the file it would have replaced stays.
#[test]
fn a_symlinked_version_store_is_refused() {
    let mut f = Pair::new();
    std::fs::write(f.a.join("doc"), "one").unwrap();
    f.run();
    std::fs::write(f.a.join("doc"), "two, longer").unwrap();
    let outside = f.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let store = f.b.join(".ferry/versions");
    if store.exists() {
        std::fs::remove_dir_all(&store).unwrap();
    }
    std::os::unix::fs::symlink(&outside, &store).unwrap();
    let report = f.run();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(files_in(&outside).is_empty());
    assert_eq!(std::fs::read_to_string(f.b.join("doc")).unwrap(), "one");
}

/// A user's file whose name merely starts like ferry's temp files is an ordinary file:
/// scanned, synced, never deleted.
#[test]
fn a_user_file_named_like_a_temp_file_is_synced_not_deleted() {
    let mut f = Pair::new();
    std::fs::create_dir(f.a.join("docs")).unwrap();
    let name = "docs/.ferry.tmp.thesis-draft";
    std::fs::write(f.a.join(name), "only copy").unwrap();
    let report = f.run();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        std::fs::read_to_string(f.a.join(name)).unwrap(),
        "only copy"
    );
    assert_eq!(
        std::fs::read_to_string(f.b.join(name)).unwrap(),
        "only copy"
    );
}

/// The version store is private (0700), and a version is a file of its own: editing
/// a hard link to the replaced file, outside the tree, does not change the version.
#[test]
fn versions_are_private_and_immutable() {
    let mut f = Pair::new();
    std::fs::write(f.a.join("doc"), "old").unwrap();
    f.run();
    let outside_link = f.tmp.path().join("outside-link");
    std::fs::hard_link(f.b.join("doc"), &outside_link).unwrap();
    std::fs::write(f.a.join("doc"), "new content").unwrap();
    let report = f.run();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        std::fs::read_to_string(f.b.join("doc")).unwrap(),
        "new content"
    );
    let store = f.b.join(".ferry/versions");
    assert_eq!(
        std::fs::metadata(&store).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // (The store's staging folder, empty, sits beside the versions.)
    let kept: Vec<_> = files_in(&store)
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    // Rewrite the outside link in place: the version must not follow.
    std::fs::write(&outside_link, "tampered").unwrap();
    assert_eq!(std::fs::read_to_string(&kept[0]).unwrap(), "old");
    assert_eq!(std::fs::metadata(&kept[0]).unwrap().nlink(), 1);
}

/// A leftover of a run that died holding content the index knows (the old content of
/// a file whose replacement was interrupted) is kept as a version, not deleted; one
/// that is ferry's own staged copy (its hash is in its name) is removed.
#[test]
fn leftover_temp_files_with_indexed_content_are_kept_as_versions() {
    let mut f = Pair::new();
    std::fs::write(f.a.join("x"), "displaced old content").unwrap();
    f.run();
    // The interrupted replacement: x already holds the new content, its old one sits
    // under a temp name; a staged copy that was never installed lies beside it.
    std::fs::write(f.b.join("x"), "new").unwrap();
    let leftover = f.b.join(common::leftover_temp_name(&f.b));
    std::fs::write(&leftover, "displaced old content").unwrap();
    let staged = f.b.join(common::staged_copy_name(&f.b, b"a staged copy"));
    std::fs::write(&staged, "a staged copy").unwrap();
    let report = f.run();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(!leftover.exists() && !staged.exists());
    assert!(!f.a.join(leftover.file_name().unwrap()).exists());
    let kept: Vec<String> = files_in(&f.b.join(".ferry/versions"))
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(kept, vec!["displaced old content".to_string()]);
}

/// Run as root, ownership is kept (as `rsync -a` does), and with it setuid bits: a
/// setuid file of `nobody` arrives owned by `nobody`, never as a root-owned setuid file.
#[test]
fn as_root_ownership_is_kept_with_special_bits() {
    if !rustix_is_root() {
        eprintln!("not root: ownership cannot be given away; covered by the CLI test");
        return;
    }
    let mut f = Pair::new();
    let p = f.a.join("tool");
    std::fs::write(&p, "#!/bin/sh\nid -u\n").unwrap();
    std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::create_dir(f.a.join("shared")).unwrap();
    std::os::unix::fs::chown(f.a.join("shared"), Some(65534), Some(65534)).unwrap();
    let report = f.run();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let m = std::fs::metadata(f.b.join("tool")).unwrap();
    assert_eq!((m.uid(), m.gid()), (65534, 65534));
    assert_eq!(m.mode() & 0o7777, 0o4755);
    let d = std::fs::metadata(f.b.join("shared")).unwrap();
    assert_eq!((d.uid(), d.gid()), (65534, 65534));
}

fn rustix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A path of about 4,000 bytes (deeper than a single `openat2` accepts near
/// `PATH_MAX`) syncs, then is updated and deleted like any other.
#[test]
fn a_path_near_path_max_is_created_updated_and_deleted() {
    let mut f = Pair::new();
    let comp = "d".repeat(200);
    let mut rel = std::path::PathBuf::new();
    for _ in 0..19 {
        rel.push(&comp);
    }
    std::fs::create_dir_all(f.a.join(&rel)).unwrap();
    let file = rel.join("f".repeat(200));
    assert!(file.as_os_str().len() > 4000);
    std::fs::write(f.a.join(&file), "one").unwrap();
    let report = f.run();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(std::fs::read_to_string(f.b.join(&file)).unwrap(), "one");
    std::fs::write(f.a.join(&file), "two, updated").unwrap();
    let report = f.run();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        std::fs::read_to_string(f.b.join(&file)).unwrap(),
        "two, updated"
    );
    std::fs::remove_file(f.a.join(&file)).unwrap();
    let report = f.run();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(!f.b.join(&file).exists());
}

/// A read-only folder (0555) gets its contents before its mode, so the first run
/// converges. (Root ignores permission bits; the CLI test runs this as `nobody`.)
#[test]
fn a_read_only_folder_is_filled_before_it_becomes_read_only() {
    let mut f = Pair::new();
    std::fs::create_dir(f.a.join("ro")).unwrap();
    std::fs::write(f.a.join("ro/inside"), "x").unwrap();
    std::fs::set_permissions(f.a.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
    let report = f.run();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(std::fs::read_to_string(f.b.join("ro/inside")).unwrap(), "x");
    let m = std::fs::metadata(f.b.join("ro")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o555);
    // And the next run has nothing to do.
    let (_, _, plan) = f.plan();
    assert!(
        plan.actions
            .iter()
            .all(|a| matches!(a, ferry_core::plan::Action::Record { .. })),
        "{:?}",
        plan.actions
    );
    for d in [&f.a, &f.b] {
        std::fs::set_permissions(d.join("ro"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Fifos (like sockets and devices) are never synced, and each is named in a note of
/// the run instead of being dropped silently.
#[test]
fn a_fifo_is_named_in_a_note_not_dropped_silently() {
    let mut f = Pair::new();
    std::fs::write(f.a.join("plain"), "x").unwrap();
    let fifo = f.a.join("pipe");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let opts = ferry_core::SyncOptions::default();
    let out = ferry_core::sync(&mut f.index, &f.a, &f.b, &opts, &ferry_core::NoProgress).unwrap();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert!(
        out.notes
            .iter()
            .any(|n| n.contains("pipe") && n.contains("fifo")),
        "{:?}",
        out.notes
    );
    assert!(f.b.join("plain").exists());
    assert!(!f.b.join("pipe").exists());
}

/// A tree deeper than `PATH_MAX` (about 6,000 bytes of path) is walked, hashed, synced,
/// updated and deleted: every access is relative to an open folder.
#[test]
fn a_tree_deeper_than_path_max_syncs() {
    let mut f = Pair::new();
    let comp = std::ffi::OsString::from("d".repeat(240));
    // Build it relative to open folders: the path itself is too long for the kernel.
    let mk = |root: &Path| {
        let mut dir = std::fs::File::open(root).unwrap();
        for _ in 0..25 {
            let c = std::ffi::CString::new(comp.as_encoded_bytes()).unwrap();
            use std::os::fd::AsRawFd;
            // SAFETY: valid descriptor and NUL-terminated name.
            unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) };
            let fd = unsafe {
                libc::openat(
                    dir.as_raw_fd(),
                    c.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY,
                )
            };
            assert!(fd >= 0);
            // SAFETY: a fresh descriptor we own.
            dir = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        }
        dir
    };
    let write_deep = |dir: &std::fs::File, content: &str| {
        use std::os::fd::AsRawFd;
        let name = std::ffi::CString::new("leaf").unwrap();
        // SAFETY: valid descriptor and NUL-terminated name.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
                0o644,
            )
        };
        assert!(fd >= 0);
        // SAFETY: a fresh descriptor we own.
        let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        std::io::Write::write_all(&mut file, content.as_bytes()).unwrap();
    };
    let read_deep = |dir: &std::fs::File| -> Option<String> {
        use std::os::fd::AsRawFd;
        let name = std::ffi::CString::new("leaf").unwrap();
        // SAFETY: valid descriptor and NUL-terminated name.
        let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), libc::O_RDONLY) };
        if fd < 0 {
            return None;
        }
        // SAFETY: a fresh descriptor we own.
        let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let mut s = String::new();
        std::io::Read::read_to_string(&mut file, &mut s).unwrap();
        Some(s)
    };
    let deep_a = mk(&f.a);
    write_deep(&deep_a, "one");
    let report = f.run();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let deep_b = mk(&f.b); // opens B's copies (mkdirat finds them there)
    assert_eq!(read_deep(&deep_b).as_deref(), Some("one"));
    write_deep(&deep_a, "two, updated");
    let report = f.run();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(read_deep(&deep_b).as_deref(), Some("two, updated"));
    use std::os::fd::AsRawFd;
    let leaf = std::ffi::CString::new("leaf").unwrap();
    // SAFETY: valid descriptor and NUL-terminated name.
    assert_eq!(
        unsafe { libc::unlinkat(deep_a.as_raw_fd(), leaf.as_ptr(), 0) },
        0
    );
    let report = f.run();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(read_deep(&deep_b), None);
}

/// A file's `user.` extended attributes travel with its content.
#[test]
fn user_xattrs_are_copied() {
    use std::os::unix::ffi::OsStrExt;
    let mut f = Pair::new();
    let p = f.a.join("tagged");
    std::fs::write(&p, "x").unwrap();
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let name = std::ffi::CString::new("user.ferry-test").unwrap();
    // SAFETY: valid NUL-terminated strings and a valid value buffer.
    let rc = unsafe { libc::setxattr(c.as_ptr(), name.as_ptr(), b"blue".as_ptr().cast(), 4, 0) };
    if rc != 0 {
        eprintln!(
            "no user xattrs on this file system: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    let report = f.run();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let cb = std::ffi::CString::new(f.b.join("tagged").as_os_str().as_bytes()).unwrap();
    let mut buf = [0u8; 16];
    // SAFETY: valid strings and buffer of the given length.
    let n = unsafe { libc::getxattr(cb.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), 16) };
    assert_eq!(n, 4);
    assert_eq!(&buf[..4], b"blue");
}

/// A full disk names the destination, not the source, and leaves nothing half-written
/// behind: no temp file, and the old content stays.
#[test]
fn a_full_disk_names_the_destination_and_leaves_no_partial_file() {
    let mut f = Pair::new();
    // B on a tiny file system of its own (needs root; skipped with a message if not).
    let c = std::ffi::CString::new(f.b.as_os_str().as_encoded_bytes()).unwrap();
    let (src, fs, opts) = (c"tmpfs", c"tmpfs", c"size=256k");
    // SAFETY: valid NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            c.as_ptr(),
            fs.as_ptr(),
            0,
            opts.as_ptr().cast(),
        )
    };
    if rc != 0 {
        eprintln!(
            "cannot mount a tmpfs here: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    struct Unmount(std::ffi::CString);
    impl Drop for Unmount {
        fn drop(&mut self) {
            // SAFETY: a valid NUL-terminated path.
            unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
        }
    }
    let _guard = Unmount(c.clone());
    std::fs::write(f.a.join("small"), "fits").unwrap();
    f.run();
    std::fs::write(f.a.join("big"), vec![7u8; 1 << 20]).unwrap();
    let report = f.run();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let e = &report.problems[0];
    assert!(e.detail.contains("no space"), "{e}");
    assert_eq!(e.kind, ferry_core::ProblemKind::NoSpace, "{e:?}");
    assert_eq!(e.side, Some(ferry_core::plan::Side::B), "{e:?}");
    assert_eq!(e.path.as_deref(), Some("big"), "{e:?}");
    assert!(
        e.detail.contains(f.b.to_str().unwrap()),
        "names the destination: {e}"
    );
    assert!(
        !e.detail.contains(f.a.to_str().unwrap()),
        "not the source: {e}"
    );
    let left: Vec<_> = std::fs::read_dir(&f.b)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ferry.tmp."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!f.b.join("big").exists());
    assert_eq!(std::fs::read_to_string(f.b.join("small")).unwrap(), "fits");
}

/// A `.ferry` folder replaced by a symlink is refused with a clear error; nothing is
/// written where it points.
#[test]
fn a_symlinked_ferry_folder_is_refused() {
    let mut f = Pair::new();
    std::fs::write(f.a.join("x"), "x").unwrap();
    f.run();
    let outside = f.tmp.path().join("outside");
    std::fs::rename(f.b.join(".ferry"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, f.b.join(".ferry")).unwrap();
    let before: Vec<_> = files_in(&outside);
    std::fs::write(f.a.join("x"), "changed").unwrap();
    let e = ferry_core::replica::open_location(&mut f.index, &f.b, false).unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    assert_eq!(files_in(&outside), before);
    assert_eq!(std::fs::read_to_string(f.b.join("x")).unwrap(), "x");
}

/// A version of a file hidden in a 0700 folder is no more readable than the file was:
/// another user (here `nobody`, when run as root) cannot read it.
#[test]
fn versions_are_not_readable_by_other_users() {
    if !rustix_is_root() {
        eprintln!("not root: no other user to try as; the store's 0700 mode is checked elsewhere");
        return;
    }
    let mut f = Pair::new();
    std::fs::create_dir(f.a.join("secret")).unwrap();
    std::fs::write(f.a.join("secret/diary"), "dear diary").unwrap();
    std::fs::set_permissions(f.a.join("secret"), std::fs::Permissions::from_mode(0o700)).unwrap();
    f.run();
    std::fs::write(f.a.join("secret/diary"), "dear diary, again").unwrap();
    let report = f.run();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let kept = files_in(&f.b.join(".ferry/versions/secret"));
    assert_eq!(kept.len(), 1);
    // The tree up to the temp dir must be passable for nobody, as a user's home is.
    for d in [f.tmp.path(), &f.b, &f.b.join(".ferry")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let as_nobody = |p: &Path| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
            .arg(p)
            .output()
            .expect("setpriv runs")
    };
    // The probe works: nobody can read a world-readable file here...
    std::fs::write(f.b.join("public"), "hello").unwrap();
    assert!(as_nobody(&f.b.join("public")).status.success());
    // ...but neither the original nor its version.
    assert!(!as_nobody(&f.b.join("secret/diary")).status.success());
    let out = as_nobody(&kept[0]);
    assert!(!out.status.success(), "nobody read the version");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("dear diary"));
}

/// Pruning goes through the root's handle: a folder of the store swapped for a symlink
/// is refused, and nothing outside is removed.
#[test]
fn pruning_never_removes_through_a_symlinked_store() {
    let mut f = Pair::new();
    std::fs::create_dir(f.a.join("d")).unwrap();
    std::fs::write(f.a.join("d/x"), "one").unwrap();
    f.run();
    std::fs::write(f.a.join("d/x"), "two, longer").unwrap();
    f.run();
    let store = f.b.join(".ferry/versions/d");
    let kept = files_in(&store);
    assert_eq!(kept.len(), 1);
    let outside = f.tmp.path().join("outside");
    std::fs::rename(&store, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &store).unwrap();
    let row = f
        .index
        .location_by_root(&f.b.canonicalize().unwrap())
        .unwrap()
        .unwrap();
    let r = ferry_core::versions::prune_location(
        &f.index,
        &row,
        ferry_core::versions::Retention::None,
        i64::MAX / 2,
    );
    assert!(r.is_err(), "{r:?}");
    assert_eq!(files_in(&outside).len(), 1);
}

/// A replacement killed between its steps leaves the store's staging folder holding
/// either the staged copy (removed by the next scan) or the old content of the file
/// (kept by the next scan as that file's version): nothing lost, nothing left over.
#[test]
fn the_staging_folder_is_swept_after_a_crash() {
    let mut f = Pair::new();
    std::fs::write(f.a.join("x"), "old content of x").unwrap();
    f.run();
    let staging =
        f.b.join(".ferry/versions")
            .join(common::leftover_temp_name(&f.b).replace("0123456789abcdef", "0000000000000000"));
    std::fs::create_dir_all(&staging).unwrap();
    // The exchange happened for x (B's x already new, its old content in staging)...
    std::fs::write(f.b.join("x"), "new content of x").unwrap();
    std::fs::write(staging.join("a"), "old content of x").unwrap();
    // ...and another replacement died before its exchange (a staged copy, its hash in
    // its name)...
    let copy_name = common::staged_copy_name(&f.b, b"a staged copy");
    std::fs::write(staging.join(&copy_name), "a staged copy").unwrap();
    // ...and a third displaced a save it could not put back (bytes nobody indexed).
    std::fs::write(
        staging.join(common::leftover_temp_name(&f.b)),
        "a user's save",
    )
    .unwrap();
    let report = f.run();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(files_in(&staging).is_empty(), "{:?}", files_in(&staging));
    // The save is never deleted: it is a version, filed under ferry-recovered/.
    let recovered = files_in(&f.b.join(".ferry/versions/ferry-recovered"));
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert_eq!(
        std::fs::read_to_string(&recovered[0]).unwrap(),
        "a user's save"
    );
    let kept: Vec<String> = files_in(&f.b.join(".ferry/versions"))
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            assert!(p.file_name().unwrap().to_string_lossy().starts_with("x~"));
            std::fs::read_to_string(p).unwrap()
        })
        .collect();
    assert_eq!(kept, vec!["old content of x".to_string()]);
}
