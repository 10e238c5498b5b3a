//! Engine behaviour end to end through the library: first runs, names and shapes,
//! metadata, symlinks, two-way propagation, conflict policies, mirror mode and ignore
//! rules. Each test syncs real folders with [`sync`] and checks the trees, the version
//! stores, the run's counters and the index's conflict rows. (These ran through the
//! `ferry` binary in `ferry-cli/tests/cli.rs` before; what is about the binary's
//! arguments, output and exit codes stays there.)

use ferry_core::index::ConflictStatus;
use ferry_core::plan::{ConflictPolicy, Side, SyncMode};
use ferry_core::NoProgress;
use ferry_core::{sync, SyncOptions, SyncOutcome};
use ferry_testkit::{
    ago, kept_versions, names_starting_with, read, same_bytes, set_mode, set_mtime, snapshot, write,
};
use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

mod common;
use common::Pair;

impl Pair {
    /// One run A ⇄ B with `opts`.
    fn run(&mut self, opts: SyncOptions) -> SyncOutcome {
        sync(&mut self.index, &self.a, &self.b, &opts, &NoProgress).unwrap()
    }

    /// One run with the conduit's stored settings, which must end clean: no problem and
    /// no open conflict (the CLI's exit code 0).
    fn clean_run(&mut self) -> SyncOutcome {
        self.clean_run_with(SyncOptions::default())
    }

    /// As [`Pair::clean_run`], with `opts`.
    fn clean_run_with(&mut self, opts: SyncOptions) -> SyncOutcome {
        let o = self.run(opts);
        assert!(o.problems.is_empty(), "problems: {:?}", o.problems);
        assert_eq!(
            o.open_conflicts(),
            0,
            "open conflicts: {:?}",
            o.plan.conflicts
        );
        o
    }

    /// A path in the temp dir, outside both synced folders.
    fn outside(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
}

fn with_policy(policy: ConflictPolicy) -> SyncOptions {
    SyncOptions {
        policy: Some(policy),
        ..Default::default()
    }
}

/// Asserts the run's counters: files copied, deleted, renamed, and conflicts met.
fn assert_counts(o: &SyncOutcome, copied: u64, deleted: u64, renamed: u64, conflicts: u64) {
    let s = &o.stats;
    assert_eq!(
        (
            s.files_copied,
            s.files_deleted,
            s.files_renamed,
            s.conflicts
        ),
        (copied, deleted, renamed, conflicts),
        "copied, deleted, renamed, conflicts: {s:?}"
    );
}

/// A synced pair holding `f.txt` = "base", then edited on both sides: A's edit older,
/// B's newer.
fn conflicting_pair() -> Pair {
    let mut f = Pair::new();
    write(&f.a, "f.txt", "base");
    write(&f.a, "other.txt", "unrelated");
    f.clean_run();
    write(&f.a, "f.txt", "edited on a");
    set_mtime(&f.a.join("f.txt"), ago(20));
    write(&f.b, "f.txt", "edited on b, later");
    set_mtime(&f.b.join("f.txt"), ago(10));
    f
}

/// A first run with content only in B fills the empty A.
#[test]
fn initial_sync_fills_empty_a_from_b() {
    let mut f = Pair::new();
    write(&f.b, "from-b.txt", "b was here");
    write(&f.b, "nested/x/y.txt", "deep");
    let before = snapshot(&f.b);

    let s = f.clean_run();
    assert_counts(&s, 2, 0, 0, 0);
    assert_eq!(s.stats.bytes_transferred, 10 + 4);
    assert_eq!(snapshot(&f.a), before);
    assert_eq!(snapshot(&f.b), before);

    assert_counts(&f.clean_run(), 0, 0, 0, 0);
}

/// Odd names (spaces, a leading dash, a newline, emoji, 200 bytes), empty files, empty
/// and nested directories all arrive intact, and deletions of odd names propagate back.
#[test]
fn odd_names_empty_files_and_directories_sync() {
    let mut f = Pair::new();
    let long = format!("{}.txt", "l".repeat(196));
    assert_eq!(long.len(), 200);
    let long_utf8 = "é".repeat(100); // 200 bytes, 100 characters
    let names = [
        "with space.txt",
        "  leading and trailing  ",
        "-rf",
        "--help",
        "new\nline.txt",
        "emoji 🚀🦀.md",
        "ünïcødé/ファイル.txt",
        long.as_str(),
        long_utf8.as_str(),
        "a/b/c/d/e/deep.txt",
    ];
    for (i, n) in names.iter().enumerate() {
        write(&f.a, n, format!("content {i}\n"));
    }
    write(&f.a, "empty", "");
    write(&f.a, "nested/empty-too", "");
    fs::create_dir_all(f.a.join("empty-dir")).unwrap();
    fs::create_dir_all(f.a.join("x/y/z")).unwrap();

    let s = f.clean_run();
    assert_counts(&s, names.len() as u64 + 2, 0, 0, 0);
    assert_eq!(snapshot(&f.a), snapshot(&f.b));
    assert!(f.b.join("empty-dir").is_dir());
    assert!(f.b.join("x/y/z").is_dir());
    assert_eq!(read(&f.b, "empty"), b"");
    assert_eq!(read(&f.b, "-rf"), b"content 2\n");

    assert_counts(&f.clean_run(), 0, 0, 0, 0);

    // Deleting odd names on B removes them from A (and A keeps them as versions).
    for n in ["-rf", "new\nline.txt", long.as_str()] {
        fs::remove_file(f.b.join(n)).unwrap();
    }
    let s = f.clean_run();
    assert_counts(&s, 0, 3, 0, 0);
    assert_eq!(snapshot(&f.a), snapshot(&f.b));
    assert!(!f.a.join("-rf").exists());
    assert_eq!(kept_versions(&f.a, "-rf"), vec![b"content 2\n".to_vec()]);
    assert_eq!(kept_versions(&f.a, &long), vec![b"content 7\n".to_vec()]);
}

/// A file whose name is close to the 255-byte limit (here 250 bytes) syncs, and later
/// edits and deletions of it propagate too.
#[test]
fn name_near_the_length_limit_can_be_updated_and_deleted() {
    let mut f = Pair::new();
    let name = "n".repeat(250);
    write(&f.a, &name, "first");
    f.clean_run();
    assert_eq!(read(&f.b, &name), b"first");

    write(&f.b, &name, "second, longer");
    f.clean_run();
    assert_eq!(read(&f.a, &name), b"second, longer");

    fs::remove_file(f.b.join(&name)).unwrap();
    f.clean_run();
    assert!(!f.a.join(&name).exists());
}

/// A ~300 MiB sparse file with a few bytes written at offsets syncs byte for byte.
#[test]
fn large_sparse_file_syncs_identically() {
    const LEN: u64 = 300 << 20;
    let mut f = Pair::new();
    let src = f.a.join("sparse.img");
    let mut img = File::create(&src).unwrap();
    img.set_len(LEN).unwrap();
    for (offset, bytes) in [
        (0, &b"start"[..]),
        (LEN / 3 + 12_345, b"one third"),
        (LEN / 2, b"middle"),
        (LEN - 3, b"end"),
    ] {
        img.seek(SeekFrom::Start(offset)).unwrap();
        img.write_all(bytes).unwrap();
    }
    drop(img);
    write(&f.a, "small.txt", "small");

    let s = f.clean_run();
    assert_counts(&s, 2, 0, 0, 0);
    assert_eq!(s.stats.bytes_transferred, LEN + 5);
    let dst = f.b.join("sparse.img");
    assert_eq!(fs::metadata(&dst).unwrap().len(), LEN);
    assert!(same_bytes(&src, &dst), "the copy's bytes differ");
    assert_eq!(snapshot(&f.a), snapshot(&f.b));
    // Holes stay holes: the copy allocates about what the source does, not 300 MiB.
    let allocated =
        |p: &Path| std::os::unix::fs::MetadataExt::blocks(&fs::metadata(p).unwrap()) * 512;
    if allocated(&src) < LEN / 10 {
        assert!(
            allocated(&dst) < LEN / 10,
            "the copy of a sparse file was filled in: {} bytes",
            allocated(&dst)
        );
    }

    assert_counts(&f.clean_run(), 0, 0, 0, 0);
}

/// Permission bits (0o600, 0o755, 0o640, a 0o700 folder) and mtimes (to the nanosecond
/// where the file system keeps them) arrive with the content; a chmod alone propagates.
#[test]
fn permissions_and_mtimes_are_preserved() {
    let mut f = Pair::new();
    let files = [
        ("private.txt", 0o600),
        ("tool.sh", 0o755),
        ("group.txt", 0o640),
    ];
    let t = UNIX_EPOCH + Duration::new(1_600_000_000, 123_456_789);
    for (i, (name, mode)) in files.iter().enumerate() {
        write(&f.a, name, format!("file {i}"));
        set_mode(&f.a.join(name), *mode);
        set_mtime(&f.a.join(name), t + Duration::from_secs(i as u64));
    }
    write(&f.a, "secret-dir/inside.txt", "inside");
    set_mode(&f.a.join("secret-dir"), 0o700);
    set_mtime(&f.a.join("secret-dir"), t);

    f.clean_run();
    for (name, mode) in files {
        let (ma, mb) = (
            fs::metadata(f.a.join(name)).unwrap(),
            fs::metadata(f.b.join(name)).unwrap(),
        );
        assert_eq!(mb.mode() & 0o7777, mode, "mode of {name}");
        assert_eq!(
            mb.modified().unwrap(),
            ma.modified().unwrap(),
            "mtime of {name}"
        );
    }
    let exe = fs::metadata(f.b.join("tool.sh")).unwrap();
    assert!(exe.mode() & 0o111 != 0, "tool.sh stays executable");
    let dir_b = fs::metadata(f.b.join("secret-dir")).unwrap();
    assert_eq!(dir_b.mode() & 0o7777, 0o700);
    assert_eq!(
        dir_b.modified().unwrap(),
        fs::metadata(f.a.join("secret-dir"))
            .unwrap()
            .modified()
            .unwrap(),
        "mtime of secret-dir"
    );
    assert_eq!(snapshot(&f.a), snapshot(&f.b));

    // A chmod with no content change still reaches the other side.
    set_mode(&f.a.join("group.txt"), 0o644);
    f.clean_run();
    assert_eq!(
        fs::metadata(f.b.join("group.txt")).unwrap().mode() & 0o7777,
        0o644
    );
}

/// Symlinks (relative, absolute, dangling, to a folder inside or outside the tree) are
/// synced as links with their targets unchanged and never followed: the contents of a
/// linked folder outside the tree are not copied.
#[test]
fn symlinks_are_synced_as_links_and_never_followed() {
    let mut f = Pair::new();
    let outside = f.outside("outside");
    write(&outside, "secret.txt", "outside the tree");
    let outside_before = snapshot(&outside);

    write(&f.a, "real/file.txt", "real");
    symlink("real/file.txt", f.a.join("relative")).unwrap();
    symlink(outside.join("secret.txt"), f.a.join("absolute")).unwrap();
    symlink("no/such/target", f.a.join("dangling")).unwrap();
    symlink(&outside, f.a.join("outdir")).unwrap();
    symlink("real", f.a.join("indir")).unwrap();

    let s = f.clean_run();
    assert_counts(&s, 6, 0, 0, 0);
    assert_eq!(snapshot(&f.a), snapshot(&f.b));
    for (name, target) in [
        ("relative", PathBuf::from("real/file.txt")),
        ("absolute", outside.join("secret.txt")),
        ("dangling", PathBuf::from("no/such/target")),
        ("outdir", outside.clone()),
        ("indir", PathBuf::from("real")),
    ] {
        let p = f.b.join(name);
        assert!(
            fs::symlink_metadata(&p).unwrap().file_type().is_symlink(),
            "{name} is a symlink on B"
        );
        assert_eq!(fs::read_link(&p).unwrap(), target, "target of {name}");
    }
    let b_paths: Vec<PathBuf> = snapshot(&f.b).into_keys().collect();
    assert!(
        !b_paths
            .iter()
            .any(|p| p.starts_with("outdir") && p != Path::new("outdir")),
        "nothing copied through outdir: {b_paths:?}"
    );
    assert_eq!(snapshot(&outside), outside_before, "outside tree untouched");

    assert_counts(&f.clean_run(), 0, 0, 0, 0);
}

/// When B replaces a synced folder by a symlink to a folder outside the tree, changes
/// to that folder's files on A are never written through the link: the outside folder
/// stays untouched and the link is kept aside as a conflict copy.
#[test]
fn symlink_replacing_a_synced_directory_is_never_written_through() {
    let mut f = Pair::new();
    let outside = f.outside("outside");
    write(&outside, "x.txt", "outside, must stay");
    let outside_before = snapshot(&outside);
    write(&f.a, "d/x.txt", "inside");
    f.clean_run();

    fs::remove_dir_all(f.b.join("d")).unwrap();
    symlink(&outside, f.b.join("d")).unwrap();
    write(&f.a, "d/x.txt", "edited on a");
    write(&f.a, "d/new.txt", "new on a");
    f.clean_run();

    assert_eq!(
        snapshot(&outside),
        outside_before,
        "nothing written through the link"
    );
    assert_eq!(read(&f.a, "d/x.txt"), b"edited on a");
    assert!(fs::symlink_metadata(f.b.join("d")).unwrap().is_dir());
    assert_eq!(read(&f.b, "d/new.txt"), b"new on a");
    let aside = names_starting_with(&f.b, "d.conflict-");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(fs::read_link(f.b.join(&aside[0])).unwrap(), outside);
    assert_eq!(snapshot(&f.a), snapshot(&f.b));
}

/// An edit on B reaches A (A's old content is kept as a version); a deletion on A
/// reaches B, and B keeps the deleted file in its version store.
#[test]
fn bidirectional_edits_and_deletes_propagate_and_are_versioned() {
    let mut f = Pair::new();
    write(&f.a, "doc.txt", "first draft");
    write(&f.a, "gone.txt", "soon deleted");
    write(&f.a, "dir/keep.txt", "kept");
    f.clean_run();

    write(&f.b, "doc.txt", "second draft, written on b");
    let s = f.clean_run();
    assert_counts(&s, 1, 0, 0, 0);
    assert_eq!(read(&f.a, "doc.txt"), b"second draft, written on b");
    assert_eq!(
        kept_versions(&f.a, "doc.txt"),
        vec![b"first draft".to_vec()]
    );

    fs::remove_file(f.a.join("gone.txt")).unwrap();
    let s = f.clean_run();
    assert_counts(&s, 0, 1, 0, 0);
    assert!(!f.b.join("gone.txt").exists());
    assert_eq!(
        kept_versions(&f.b, "gone.txt"),
        vec![b"soon deleted".to_vec()]
    );
    assert_eq!(snapshot(&f.a), snapshot(&f.b));
}

/// Both sides edit a file: by default the newer edit wins on both sides and the loser is
/// kept in the loser's version store; the conflict is recorded as settled.
#[test]
fn conflict_newest_wins_and_loser_is_versioned() {
    let mut f = conflicting_pair();
    let s = f.clean_run();
    assert_eq!(s.stats.conflicts, 1, "{:?}", s.stats);
    assert_eq!(s.open_conflicts(), 0);
    assert_eq!(read(&f.a, "f.txt"), b"edited on b, later");
    assert_eq!(read(&f.b, "f.txt"), b"edited on b, later");
    assert_eq!(kept_versions(&f.a, "f.txt"), vec![b"edited on a".to_vec()]);
    assert_eq!(snapshot(&f.a), snapshot(&f.b));

    // The conflict is recorded, settled, with the side that won.
    let rows = f.index.conflicts(false).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].path, "f.txt");
    assert_eq!(rows[0].status, ConflictStatus::Settled);
    assert_eq!(rows[0].winner, Some(Side::B));
    assert_eq!(rows[0].policy, ConflictPolicy::Newest);
}

/// With `--conflict keep-both` the loser also stays visible, on both sides, as
/// `name.conflict-YYYYMMDD-HHMMSS-<side>.ext`.
#[test]
fn conflict_keep_both_leaves_a_visible_sibling_on_both_sides() {
    let mut f = conflicting_pair();
    let s = f.clean_run_with(with_policy(ConflictPolicy::KeepBoth));
    assert_eq!(s.stats.conflicts, 1, "{:?}", s.stats);
    assert_eq!(s.policy, ConflictPolicy::KeepBoth);
    assert_eq!(read(&f.a, "f.txt"), b"edited on b, later");
    assert_eq!(read(&f.b, "f.txt"), b"edited on b, later");
    for root in [&f.a, &f.b] {
        let siblings = names_starting_with(root, "f.conflict-");
        assert_eq!(
            siblings.len(),
            1,
            "one conflict copy in {}: {siblings:?}",
            root.display()
        );
        let name = &siblings[0];
        let stamp = name
            .strip_prefix("f.conflict-")
            .and_then(|r| r.strip_suffix("-a.txt"))
            .unwrap_or_else(|| panic!("{name:?} is not f.conflict-…-a.txt"));
        let digits: Vec<&str> = stamp.split('-').collect();
        assert!(
            digits.len() == 2
                && digits[0].len() == 8
                && digits[1].len() == 6
                && stamp.chars().all(|c| c.is_ascii_digit() || c == '-'),
            "stamp {stamp:?} is YYYYMMDD-HHMMSS"
        );
        assert_eq!(read(root, name), b"edited on a");
    }
    assert_eq!(snapshot(&f.a), snapshot(&f.b));
    assert_counts(&f.clean_run(), 0, 0, 0, 0);
}

/// `--conflict source` makes A win and `--conflict target` makes B win; the loser is
/// kept in its side's version store either way.
#[test]
fn conflict_source_and_target_policies_pick_a_side() {
    let mut f = conflicting_pair();
    let s = f.clean_run_with(with_policy(ConflictPolicy::Source));
    assert_eq!(s.stats.conflicts, 1, "{:?}", s.stats);
    assert_eq!(read(&f.b, "f.txt"), b"edited on a");
    assert_eq!(
        kept_versions(&f.b, "f.txt"),
        vec![b"edited on b, later".to_vec()]
    );

    write(&f.a, "f.txt", "a again");
    write(&f.b, "f.txt", "b again, different");
    let s = f.clean_run_with(with_policy(ConflictPolicy::Target));
    assert_eq!(s.stats.conflicts, 1, "{:?}", s.stats);
    assert_eq!(read(&f.a, "f.txt"), b"b again, different");
    assert_eq!(kept_versions(&f.a, "f.txt"), vec![b"a again".to_vec()]);
    assert_eq!(snapshot(&f.a), snapshot(&f.b));
}

/// A deletion on one side and an edit on the other: the edit wins and comes back.
#[test]
fn modification_beats_deletion() {
    let mut f = Pair::new();
    write(&f.a, "f.txt", "base");
    write(&f.a, "g.txt", "other");
    f.clean_run();

    fs::remove_file(f.a.join("f.txt")).unwrap();
    write(&f.b, "f.txt", "edited on b");
    f.clean_run();
    assert_eq!(read(&f.a, "f.txt"), b"edited on b");
    assert_eq!(read(&f.b, "f.txt"), b"edited on b");
    assert_eq!(snapshot(&f.a), snapshot(&f.b));
}

/// In mirror mode B's own edits are overwritten (after being versioned), B-only files
/// are deleted (and versioned), and A is never touched.
#[test]
fn mirror_overwrites_target_edits_and_deletes_target_only_files() {
    let mut f = Pair::new();
    write(&f.a, "f.txt", "source of truth");
    write(&f.a, "dir/g.txt", "also from a");
    f.clean_run_with(SyncOptions {
        mode: Some(SyncMode::Mirror),
        ..Default::default()
    });
    assert_eq!(snapshot(&f.a), snapshot(&f.b));

    write(&f.b, "f.txt", "edited on the target");
    write(&f.b, "only-b.txt", "target only");
    write(&f.b, "dir/extra.txt", "target only, nested");
    write(&f.b, "b-dir/inner/z.txt", "target only, deep");
    fs::create_dir(f.b.join("b-empty-dir")).unwrap();
    symlink("nowhere", f.b.join("b-link")).unwrap();
    let a_before = snapshot(&f.a);

    let s = f.clean_run(); // the mode is remembered
    assert_eq!(s.mode, SyncMode::Mirror);
    assert_counts(&s, 1, 4, 0, 0);
    assert_eq!(snapshot(&f.a), a_before, "the source is untouched");
    assert_eq!(snapshot(&f.b), a_before, "the target is an exact copy");
    assert_eq!(
        kept_versions(&f.b, "f.txt"),
        vec![b"edited on the target".to_vec()]
    );
    assert_eq!(
        kept_versions(&f.b, "only-b.txt"),
        vec![b"target only".to_vec()]
    );
    assert_eq!(
        kept_versions(&f.b, "dir/extra.txt"),
        vec![b"target only, nested".to_vec()]
    );
}

/// `.ferryignore` patterns keep files out of sync while the `.ferryignore` itself syncs;
/// `node_modules` and OS clutter stay out unless `--index-everything`.
#[test]
fn ignore_rules_and_index_everything() {
    let mut f = Pair::new();
    write(&f.a, ".ferryignore", "*.log\nbuild/\n");
    write(&f.a, "keep.txt", "keep");
    write(&f.a, "debug.log", "noise");
    write(&f.a, "sub/trace.log", "more noise");
    write(&f.a, "build/out.o", "object");
    write(&f.a, "node_modules/pkg/index.js", "module.exports = 1;");
    write(&f.a, ".DS_Store", "clutter");

    f.clean_run();
    assert_eq!(read(&f.b, ".ferryignore"), b"*.log\nbuild/\n");
    assert_eq!(read(&f.b, "keep.txt"), b"keep");
    for ignored in [
        "debug.log",
        "sub/trace.log",
        "build",
        "node_modules",
        ".DS_Store",
    ] {
        assert!(!f.b.join(ignored).exists(), "{ignored} must not sync");
    }

    f.clean_run_with(SyncOptions {
        index_everything: Some(true),
        ..Default::default()
    });
    assert_eq!(
        read(&f.b, "node_modules/pkg/index.js"),
        b"module.exports = 1;"
    );
    assert_eq!(read(&f.b, ".DS_Store"), b"clutter");
    for ignored in ["debug.log", "sub/trace.log", "build"] {
        assert!(!f.b.join(ignored).exists(), "{ignored} is still ignored");
    }
}

/// Adding an ignore pattern for a file that was already synced just stops syncing it:
/// both copies stay, and the run is clean.
#[test]
fn ignoring_an_already_synced_file_is_not_an_error() {
    let mut f = Pair::new();
    write(&f.a, "keep.txt", "keep");
    write(&f.a, "x.log", "log line");
    f.clean_run();

    write(&f.a, ".ferryignore", "*.log\n");
    f.clean_run();
    assert_eq!(read(&f.b, ".ferryignore"), b"*.log\n");
    assert_eq!(read(&f.a, "x.log"), b"log line");
    assert_eq!(read(&f.b, "x.log"), b"log line");
    f.clean_run();
}

/// A file that one side ignores but holds is never replaced by the other side's file
/// of that name: the run leaves it, says so in a note, and reports no problem (the
/// target is looked at only when the install finds something there).
#[test]
fn a_file_the_target_ignores_but_holds_is_left_alone_with_a_note() {
    let mut f = Pair::new();
    write(&f.b, ".ferryignore", "*.log\n");
    write(&f.b, "sub/x.log", "B's own log");
    write(&f.a, "sub/x.log", "A's log");
    write(&f.a, "sub/y.txt", "synced");

    let o = f.clean_run();
    assert_eq!(read(&f.b, "sub/x.log"), b"B's own log");
    assert_eq!(read(&f.b, "sub/y.txt"), b"synced");
    assert!(
        o.notes
            .iter()
            .any(|n| n.contains("x.log") && n.contains("not indexed")),
        "notes: {:?}",
        o.notes
    );
    assert!(
        names_starting_with(&f.b.join("sub"), ".ferry.tmp").is_empty(),
        "no temp file is left beside it"
    );
}

/// Records what the copy workers report per file.
#[derive(Default)]
struct FileReports {
    seen: std::sync::Mutex<Vec<(String, u64, u64)>>,
    finished: std::sync::Mutex<Vec<String>>,
    in_copy: std::sync::atomic::AtomicBool,
    copy_bytes: std::sync::atomic::AtomicU64,
}

impl ferry_core::Progress for FileReports {
    fn phase(&self, name: &str, _total: Option<u64>) {
        self.in_copy
            .store(name == "copy", std::sync::atomic::Ordering::Relaxed);
    }
    fn bytes(&self, n: u64) {
        if self.in_copy.load(std::sync::atomic::Ordering::Relaxed) {
            self.copy_bytes
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    }
    fn file_progress(&self, path: &ferry_core::model::RelPath, done: u64, size: u64) {
        self.seen
            .lock()
            .unwrap()
            .push((path.to_string(), done, size));
    }
    fn file_finished(&self, path: &ferry_core::model::RelPath) {
        self.finished.lock().unwrap().push(path.to_string());
    }
}

#[test]
fn a_big_copy_reports_its_bytes_as_they_are_written() {
    let mut p = Pair::new();
    // 40 MiB: more than two copy steps, unless the file system clones it in one.
    let size = 40u64 << 20;
    let big: Vec<u8> = (0..size).map(|i| (i * 31 % 253) as u8).collect();
    write(&p.a, "big.bin", &big);
    write(&p.a, "small.txt", b"small");
    let reports = FileReports::default();
    let o = sync(&mut p.index, &p.a, &p.b, &SyncOptions::default(), &reports).unwrap();
    assert!(o.problems.is_empty(), "{:?}", o.problems);
    assert!(same_bytes(&p.a.join("big.bin"), &p.b.join("big.bin")));
    let seen = reports.seen.lock().unwrap();
    let of_big: Vec<_> = seen.iter().filter(|(p, ..)| p == "big.bin").collect();
    assert_eq!(
        of_big.first().map(|r| (r.1, r.2)),
        Some((0, size)),
        "{of_big:?}"
    );
    assert_eq!(
        of_big.last().map(|r| (r.1, r.2)),
        Some((size, size)),
        "{of_big:?}"
    );
    assert!(of_big.len() >= 2, "{of_big:?}");
    assert!(of_big.windows(2).all(|w| w[0].1 <= w[1].1), "{of_big:?}");
    assert!(seen
        .iter()
        .any(|(p, d, s)| p == "small.txt" && *d == 5 && *s == 5));
    let mut finished = reports.finished.lock().unwrap().clone();
    finished.sort();
    assert_eq!(
        finished,
        vec!["big.bin".to_string(), "small.txt".to_string()]
    );
    assert_eq!(
        reports
            .copy_bytes
            .load(std::sync::atomic::Ordering::Relaxed),
        size + 5
    );
}
