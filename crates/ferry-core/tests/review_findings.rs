//! Review of the disk layer (beneath / disk / version_store / execute), 2026-12-01.
//! Each test states one finding; a failing test is a confirmed bug (see the review
//! report for severity and suggested fix). Tests that need root skip without it.

use ferry_core::replica::open_location;
use ferry_core::FaultPoint;
use ferry_core::NoProgress;
use ferry_core::{sync, SyncOptions, SyncOutcome};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
use common::{leftover_temp_name, paths_below, Pair};

impl Pair {
    fn run(&mut self, fault: FaultPoint) -> ferry_core::Result<SyncOutcome> {
        let opts = SyncOptions {
            fault,
            ..Default::default()
        };
        sync(&mut self.index, &self.a, &self.b, &opts, &NoProgress)
    }
}

fn set_mtime(p: &Path, secs: i64) {
    let t = std::fs::FileTimes::new()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(secs as u64));
    std::fs::File::options()
        .write(true)
        .open(p)
        .or_else(|_| std::fs::File::open(p))
        .unwrap()
        .set_times(t)
        .unwrap();
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// Every file below `root` (versions included) whose content is `bytes`.
fn holding(root: &Path, bytes: &[u8]) -> Vec<PathBuf> {
    paths_below(root)
        .into_iter()
        .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
        .filter(|p| std::fs::read(p).is_ok_and(|c| c == bytes))
        .collect()
}

fn staging_dir(root: &Path) -> PathBuf {
    // `.ferry.tmp.<tag>.0000000000000000` inside `.ferry/versions/`.
    let tmp = leftover_temp_name(root);
    let tag = tmp.split('.').nth(3).unwrap().to_string();
    root.join(".ferry/versions")
        .join(format!(".ferry.tmp.{tag}.0000000000000000"))
}

// ------------------------------------------------------------------------------------
// F1. A user's save displaced into the staging folder by the RENAME_EXCHANGE (a save
// that landed between `ensure_at` and the exchange in `disk::replace`) is deleted by
// the next scan when the run dies before it is exchanged back: `sweep_staging` keeps
// only content whose hash the index knows and unlinks everything else.
//
// The state is built by hand exactly as a kill -9 between disk.rs:489 (exchange) and
// disk.rs:502 (exchange back) leaves it: the path holds ferry's copy (A's content), the
// staging folder holds the user's save under the staged temp name.
#[test]
fn f1_save_displaced_into_staging_survives_a_crash() {
    let mut f = Pair::new();
    std::fs::write(f.a.join("doc.txt"), "v1").unwrap();
    f.run(FaultPoint::None).unwrap();
    // A edits; B's editor saves at the same moment the run replaces B's file.
    std::fs::write(f.a.join("doc.txt"), "A's edit").unwrap();
    set_mtime(&f.a.join("doc.txt"), 2_000_000_000);
    let stage = staging_dir(&f.b);
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::set_permissions(&stage, std::fs::Permissions::from_mode(0o700)).unwrap();
    let save = b"B's unsaved-elsewhere work, saved during the exchange";
    // After the exchange: path = our staged copy, staging = the user's save.
    std::fs::write(f.b.join("doc.txt"), "A's edit").unwrap();
    std::fs::write(stage.join(leftover_temp_name(&f.b)), save).unwrap();

    let staged = stage.join(leftover_temp_name(&f.b));
    assert!(staged.exists());
    let out = f.run(FaultPoint::None);
    eprintln!("run: {:?}", out.as_ref().map(|o| (&o.problems, &o.notes)));
    assert!(
        !staged.exists(),
        "the scan should have swept the staging folder"
    );
    assert!(
        !holding(&f.b, save).is_empty() || !holding(&f.a, save).is_empty(),
        "the user's save is gone from both sides and from the version store"
    );
}

// ------------------------------------------------------------------------------------
// F2. The end-of-run directory pass (execute.rs:232-251) chmods and sets the mtime of
// whatever is at a planned directory's path, even when that directory's `Mkdir` failed
// because the user put something else there after the scan. A private file (0600) the
// user created at that path becomes world-readable and executable (the folder's mode).
#[test]
fn f2_failed_mkdir_does_not_chmod_what_the_user_put_there() {
    let mut f = Pair::new();
    std::fs::write(f.a.join("seed"), "x").unwrap();
    f.run(FaultPoint::None).unwrap();
    std::fs::create_dir(f.a.join("d")).unwrap();
    std::fs::set_permissions(f.a.join("d"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(f.a.join("d/inner"), "inner").unwrap();
    let (la, lb, plan) = f.plan();
    // After the scan, the user saves a private file named `d` on B.
    let secret = f.b.join("d");
    std::fs::write(&secret, "private key").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    set_mtime(&secret, 1_900_000_000);
    let report = f.execute(&la, &lb, &plan);
    assert!(
        !report.problems.is_empty(),
        "the mkdir should have been refused"
    );
    let m = std::fs::symlink_metadata(&secret).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o600, "user's private file was chmodded");
    assert_eq!(m.mtime(), 1_900_000_000, "user's file mtime was changed");
}

// ------------------------------------------------------------------------------------
// F3. A folder whose mode is tightened on A (0755 -> 0700) gets its new mode on B only
// at the very end of the run, after the copies; the `Mkdir` entry is recorded with the
// final mode right after the directory phase. A run that dies in between (here: the
// StopAfterStaging hook, any kill -9 does the same) leaves B's folder 0755 while the
// index says 0700: the next scan takes that for a *change on B* back to 0755 and
// propagates it to A. The user's chmod 700 is undone on both sides.
#[test]
fn f3_crash_before_final_dir_modes_does_not_undo_a_tightening() {
    let mut f = Pair::new();
    std::fs::create_dir(f.a.join("d")).unwrap();
    std::fs::set_permissions(f.a.join("d"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(f.a.join("d/old"), "old").unwrap();
    f.run(FaultPoint::None).unwrap();
    assert_eq!(mode(&f.b.join("d")), 0o755);

    std::fs::set_permissions(f.a.join("d"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(f.a.join("d/secret"), "secret").unwrap();
    assert!(f.run(FaultPoint::StopAfterStaging).is_err());
    let out = f.run(FaultPoint::None).unwrap();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(
        mode(&f.a.join("d")),
        0o700,
        "A's tightened folder was loosened again"
    );
    assert_eq!(mode(&f.b.join("d")), 0o700, "B's folder not tightened");
}

// ------------------------------------------------------------------------------------
// F4. (root) A version of a file with other hard links is replaced in the store by a
// private copy (`Taken::make_private_copy`): that copy is created by ferry (owner root)
// and given the original's full mode, setuid included. A setuid file belonging to an
// unprivileged user thus becomes a *root-owned setuid* file holding that user's bytes;
// `ferry restore` then installs it with the version file's owner (execute.rs:730-733,
// `replace_file` takes the owner from the version file) — a root shell for the user.
#[test]
fn f4_private_copy_of_a_version_does_not_grant_root_setuid() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let mut f = Pair::new();
    let nobody = 65534;
    let a = f.a.join("tool");
    std::fs::write(&a, "#!/bin/sh\nid\n").unwrap();
    std::os::unix::fs::chown(&a, Some(nobody), Some(nobody)).unwrap();
    std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o4755)).unwrap();
    f.run(FaultPoint::None).unwrap();
    let b = f.b.join("tool");
    assert_eq!(std::fs::metadata(&b).unwrap().uid(), nobody);
    // The user keeps a second link to B's file (same file system, outside the root).
    std::fs::hard_link(&b, f.tmp.path().join("my-link")).unwrap();
    // A's file changes: B's is replaced and its old inode (nlink 2) is versioned.
    std::fs::write(&a, "#!/bin/sh\necho v2\n").unwrap();
    set_mtime(&a, 2_000_000_000);
    f.run(FaultPoint::None).unwrap();
    let versions: Vec<_> = paths_below(&f.b.join(".ferry/versions"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("tool~")
        })
        .collect();
    assert_eq!(versions.len(), 1, "{versions:?}");
    let m = std::fs::symlink_metadata(&versions[0]).unwrap();
    assert!(
        !(m.uid() == 0 && m.mode() & 0o6000 != 0),
        "version {} is root-owned with mode {:o} (was nobody's)",
        versions[0].display(),
        m.mode() & 0o7777
    );
}

// ------------------------------------------------------------------------------------
// F5. A copy source swapped for a FIFO after the scan: `disk::open_source` opens it with
// a blocking `O_RDONLY` (no `O_NONBLOCK`, kind checked only after the open), so the run
// hangs for ever holding both location locks (the daemon's conduit is stuck). Any user
// who can write into a synced folder can do this to a root-run ferry.
#[test]
fn f5_a_fifo_swapped_in_after_the_scan_does_not_hang_the_run() {
    let mut f = Pair::new();
    std::fs::write(f.a.join("f"), "content").unwrap();
    let (la, lb, plan) = f.plan();
    std::fs::remove_file(f.a.join("f")).unwrap();
    let c = std::ffi::CString::new(f.a.join("f").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut index = ferry_core::index::Index::open(&f.tmp.path().join("index.db")).unwrap();
    std::thread::spawn(move || {
        let r = ferry_core::Executor {
            index: &mut index,
            a: Some(&la),
            b: Some(&lb),
            peer_b: None,
            pull: None,
            progress: &NoProgress,
            fault: FaultPoint::None,
            workers: 1,
            limiter: None,
            generation: None,
            cancel: None,
        }
        .run(&plan);
        let _ = tx.send(r.is_ok());
    });
    let done = rx.recv_timeout(Duration::from_secs(10));
    if done.is_err() {
        // Unblock the stuck open so the process can exit cleanly.
        let _ = std::fs::OpenOptions::new().write(true).open(f.a.join("f"));
    }
    assert!(done.is_ok(), "the run hangs opening a FIFO");
}

// ------------------------------------------------------------------------------------
// F6. The marker is written by path (`location::write_marker`: `std::fs::write` of
// `.ferry/location.tmp`), following a symlink planted there. Adding a folder someone
// else can write to (or `--yes` starting one over) makes ferry truncate and overwrite
// any file that symlink names — as root, e.g. /etc/shadow. `create_dir_all(.ferry)`
// follows a symlinked `.ferry` the same way, and `Location::lock` opens
// `.ferry/lock` with O_CREAT by path.
#[test]
fn f6_marker_write_does_not_follow_a_planted_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("shared");
    std::fs::create_dir_all(root.join(".ferry")).unwrap();
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, root.join(".ferry/location.tmp")).unwrap();
    let mut index = ferry_core::index::Index::open(&tmp.path().join("index.db")).unwrap();
    let _ = open_location(&mut index, &root, false);
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "precious",
        "a file outside the root was overwritten through .ferry/location.tmp"
    );
}

// ------------------------------------------------------------------------------------
// F8. (root) The version store is used whoever owns it: `version_store::version_dir`
// only refuses symlinks and tightens `versions` to 0700, never checks the owner. In a
// root-run sync of a shared folder, a user who can write the root renames `.ferry`
// away and puts their own `.ferry/` (marker copied: it is 0644) in its place; every
// file ferry then displaces — other users' 0600 files included — is moved into a
// folder that user owns (rule 3: readable by no one the original was hidden from).
// The store mirrors the parent folders, so a 0644 file that only its 0700 folder
// protected lands, readable, in `versions/<folder>/` — which the attacker pre-made.
// The attacker can also delete or rename any version there.
#[test]
fn f8_versions_are_not_kept_in_a_store_someone_else_owns() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let mut f = Pair::new();
    // A 0644 file protected by its 0700 folder (the usual way: a private home dir).
    std::fs::create_dir(f.a.join("private")).unwrap();
    std::fs::set_permissions(f.a.join("private"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let a = f.a.join("private/payroll.txt");
    std::fs::write(&a, "salaries v1").unwrap();
    std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o644)).unwrap();
    f.run(FaultPoint::None).unwrap();
    // The attacker (uid 65534) now owns B's .ferry and everything in it.
    let nobody = 65534;
    for p in paths_below(&f.b.join(".ferry"))
        .into_iter()
        .chain([f.b.join(".ferry")])
    {
        std::os::unix::fs::lchown(&p, Some(nobody), Some(nobody)).unwrap();
    }
    std::fs::write(&a, "salaries v2").unwrap();
    set_mtime(&a, 2_000_000_000);
    let _ = f.run(FaultPoint::None);
    let leaked: Vec<_> = holding(&f.b.join(".ferry"), b"salaries v1")
        .into_iter()
        .filter(|p| {
            p.ancestors()
                .skip(1)
                .take_while(|d| d.starts_with(&f.b))
                .any(|d| std::fs::symlink_metadata(d).unwrap().uid() == nobody)
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "root-only content kept in folders another user owns: {leaked:?}"
    );
}

// ------------------------------------------------------------------------------------
// F9. A run that dies after staging a *symlink* copy leaves a temp symlink
// (`.ferry.tmp.<tag>.<hex>`) beside the target. The next scan hands it to
// `keep_leftover`, whose `keep_if_indexed` returns early for anything that is not a
// regular file: the temp symlink stays in the user's folder for ever (and a displaced
// old symlink in the staging folder is neither kept as a version nor removed).
#[test]
fn f9_a_leftover_temp_symlink_is_cleaned_up() {
    let mut f = Pair::new();
    std::fs::write(f.a.join("seed"), "x").unwrap();
    f.run(FaultPoint::None).unwrap();
    std::os::unix::fs::symlink("seed", f.a.join("link")).unwrap();
    assert!(f.run(FaultPoint::StopAfterStaging).is_err());
    let out = f.run(FaultPoint::None).unwrap();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let left: Vec<_> = std::fs::read_dir(&f.b)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ferry.tmp."))
        .collect();
    assert!(left.is_empty(), "temp symlink left behind: {left:?}");
}

// ------------------------------------------------------------------------------------
// F6b. `Location::lock` opens `.ferry/lock` by path with O_CREAT, following a symlink
// planted there: as root, any file can be created (e.g. /etc/nologin, which locks every
// non-root user out). `check_ferry_dir` checks `.ferry` only, not what is inside it.
#[test]
fn f6b_lock_does_not_follow_a_planted_symlink() {
    let mut f = Pair::new();
    std::fs::write(f.a.join("x"), "x").unwrap();
    f.run(FaultPoint::None).unwrap();
    let elsewhere = f.tmp.path().join("etc-nologin");
    std::fs::remove_file(f.b.join(".ferry/lock")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, f.b.join(".ferry/lock")).unwrap();
    let _ = f.run(FaultPoint::None);
    assert!(
        !elsewhere.exists(),
        "the lock created a file outside the root through .ferry/lock"
    );
}
