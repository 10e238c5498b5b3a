//! A folder of B swapped for a symlink while a run works in it (safety rule 4: every
//! disk access stays below the root's directory handle and never follows a symlink).
//!
//! - Writes: the run copies 400 files of 64 KiB into `B/sub`; as soon as its first temp
//!   file shows up there, a racing thread does `mv B/sub B/sub.real && ln -s OUTSIDE
//!   B/sub`. Nothing may land in OUTSIDE, and OUTSIDE's mode is not changed.
//! - Deletes: `B/sub` holds 600 files A deleted; OUTSIDE holds the same 600 names, hard
//!   links of B's files, so through the symlink each one looks exactly like the file the
//!   run planned to delete (same inode, same stat): only where the path leads tells them
//!   apart. As soon as the first of B's files is gone, the racer swaps `B/sub` for a
//!   symlink to OUTSIDE in one `renameat2(RENAME_EXCHANGE)` (no instant where `B/sub`
//!   does not resolve). All 600 files of OUTSIDE must still be there afterwards.
//!
//! OUTSIDE is a folder beside the roots, in the test's temp dir.

use ferry_core::plan::{ConflictPolicy, SyncMode};
use ferry_core::replica::TEMP_PREFIX;
use ferry_core::NoProgress;
use ferry_core::{sync, SyncOptions, SyncOutcome};
use ferry_testkit::exchange;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::Pair;

fn run(pair: &mut Pair) -> SyncOutcome {
    let opts = SyncOptions {
        mode: Some(SyncMode::Bidirectional),
        policy: Some(ConflictPolicy::Newest),
        yes: true, // the deletion test deletes most of B
        ..Default::default()
    };
    sync(&mut pair.index, &pair.a, &pair.b, &opts, &NoProgress).unwrap()
}

fn content(i: usize, len: usize) -> Vec<u8> {
    let mut v = format!("file {i}\n").into_bytes();
    let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    v.extend((v.len()..len).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    v
}

/// Every path below `dir` (not following symlinks), relative to it.
fn entries_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            out.push(
                e.path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Runs `sync` while `racer` waits for its moment and swaps; returns the run's outcome
/// and whether the swap happened before the run ended.
fn race(
    pair: &mut Pair,
    racer: impl FnOnce(&AtomicBool) -> bool + Send + 'static,
) -> (SyncOutcome, bool) {
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let stop = stop.clone();
        std::thread::spawn(move || racer(&stop))
    };
    let out = run(pair);
    stop.store(true, Ordering::Relaxed);
    (out, handle.join().unwrap())
}

/// Polls `ready` until it holds (then `swap` and `true`) or until `stop` (then `false`).
fn when(stop: &AtomicBool, ready: impl Fn() -> bool, swap: impl FnOnce()) -> bool {
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if ready() {
            swap();
            return true;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "racer timed out"
        );
        std::thread::yield_now();
    }
    false
}

#[test]
fn folder_swapped_for_a_symlink_during_copies_gets_nothing_written_through_it() {
    const FILES: usize = 400;
    let mut pair = Pair::new();
    let outside = pair.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
    let sub = pair.a.join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
    for i in 0..FILES {
        std::fs::write(sub.join(format!("f{i:03}")), content(i, 64 << 10)).unwrap();
    }

    let b_sub = pair.b.join("sub");
    let (b_sub_real, target) = (pair.b.join("sub.real"), outside.clone());
    let (out, swapped) = race(&mut pair, move |stop| {
        let staging = || {
            std::fs::read_dir(&b_sub).is_ok_and(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            })
        };
        when(stop, staging, || {
            std::fs::rename(&b_sub, &b_sub_real).unwrap();
            std::os::unix::fs::symlink(&target, &b_sub).unwrap();
        })
    });
    assert!(
        swapped,
        "the run ended before a temp file was seen in B/sub: nothing was tested"
    );

    let escaped = entries_below(&outside);
    assert!(
        escaped.is_empty(),
        "{} entries were written through the symlink into OUTSIDE (run: {} copied, {} errors): {:?}",
        escaped.len(),
        out.stats.files_copied,
        out.problems.len(),
        &escaped[..escaped.len().min(10)]
    );
    let mode = std::fs::metadata(&outside).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        mode, 0o700,
        "OUTSIDE's mode was changed through the symlink"
    );
}

#[test]
fn folder_swapped_for_a_symlink_during_deletions_gets_nothing_deleted_through_it() {
    const FILES: usize = 600;
    let mut pair = Pair::new();
    let outside = pair.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let name = |i: usize| format!("f{i:03}");
    std::fs::create_dir(pair.a.join("sub")).unwrap();
    for i in 0..FILES {
        std::fs::write(pair.a.join("sub").join(name(i)), content(i, 1000)).unwrap();
    }
    let first = run(&mut pair);
    assert!(first.problems.is_empty(), "{:?}", first.problems);
    let b_sub = pair.b.join("sub");
    for i in 0..FILES {
        std::fs::hard_link(b_sub.join(name(i)), outside.join(name(i))).unwrap();
        std::fs::remove_file(pair.a.join("sub").join(name(i))).unwrap();
    }

    // The symlink waits beside the roots; one exchange puts it in place of B/sub.
    let link = pair.tmp.path().join("link");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let (out, swapped) = race(&mut pair, move |stop| {
        let deleting = || std::fs::read_dir(&b_sub).is_ok_and(|d| d.count() < FILES);
        when(stop, deleting, || exchange(&link, &b_sub).unwrap())
    });
    assert!(
        swapped,
        "the run ended before a file of B/sub was deleted: nothing was tested"
    );

    let missing: Vec<String> = (0..FILES)
        .map(name)
        .filter(|n| std::fs::read(outside.join(n)).ok() != Some(content_of(n)))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {FILES} files of OUTSIDE were deleted or changed through the symlink (run: {} deleted, {} errors): {:?}",
        missing.len(),
        out.stats.files_deleted,
        out.problems.len(),
        &missing[..missing.len().min(10)]
    );
}

/// The content of OUTSIDE's file `f123`.
fn content_of(name: &str) -> Vec<u8> {
    content(name[1..].parse().unwrap(), 1000)
}
