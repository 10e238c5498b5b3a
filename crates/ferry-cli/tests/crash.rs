//! Crash tests: `kill -9` of a real `ferry sync` at points of a run chosen by what the
//! run has done so far on disk (never by a delay): while it stages temp files, right
//! after its first install, part-way through the installs, near their end. After every
//! kill each path holds its old content or its complete new content (safety rule 1), and
//! later runs converge without redoing verified work or losing anything (rule 5).

use ferry_testkit::files_below;
use std::collections::{BTreeMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{ferry_cmd, files, folders};

const N: usize = 1000;

/// Distinct for every (file, generation): a version-store entry tells which one it keeps.
fn content(i: usize, generation: u8) -> Vec<u8> {
    let mut v = format!("file {i} generation {generation}\n").into_bytes();
    let len = 2_000 + (i * 7919) % 30_000;
    v.extend((0..len).map(|j| {
        (j as u8)
            .wrapping_mul(31)
            .wrapping_add(i as u8 ^ generation)
    }));
    v
}

fn ferry(home: &Path, a: &Path, b: &Path) -> Command {
    let mut c = ferry_cmd(home);
    c.arg("sync").arg(a).arg(b).arg("--yes");
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// Old contents kept in b's version store: one is added right before each install that
/// replaces a file, so their count says how far the installs have got.
fn versions_kept(b: &Path) -> usize {
    files_below(&b.join(".ferry/versions")).len()
}

/// Whether ferry's temp files are on b (staging has begun).
fn temp_files_on(b: &Path) -> bool {
    files_below(b)
        .iter()
        .any(|p| p.to_string_lossy().contains(".ferry.tmp."))
}

/// The paths where `tree` does not hold `want`, each with what it holds instead, for a
/// failure message that names paths rather than dumping bytes.
fn differences(
    tree: &BTreeMap<String, Vec<u8>>,
    want: &BTreeMap<String, Vec<u8>>,
    old: &BTreeMap<String, Vec<u8>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for path in want
        .keys()
        .chain(tree.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let holds = match tree.get(path) {
            Some(c) if want.get(path) == Some(c) => continue,
            None => "nothing",
            Some(c) if old.get(path) == Some(c) => "its old content",
            Some(_) => "other content",
        };
        out.push(format!("{path}: {holds}"));
    }
    out
}

/// When to kill the run.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// As soon as a temp file is staged on b.
    Staging,
    /// As soon as this many old contents were kept for replacement (so about as many
    /// files installed).
    Installs(usize),
}

/// What one kill found.
struct Kill {
    point: KillPoint,
    /// The process was still running and died of the kill (not exited by itself).
    killed: bool,
    /// Files on b holding their new content when the run started.
    new_before: usize,
    /// Files on b holding their new content once the process was gone.
    new_on_b: usize,
}

impl Kill {
    /// Killed while installing: this run had installed some files and not yet all.
    fn mid_install(&self) -> bool {
        self.killed && self.new_before < self.new_on_b && self.new_on_b < N
    }
}

impl std::fmt::Debug for Kill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = if self.killed { "killed" } else { "had exited" };
        write!(
            f,
            "at {:?}: {how}, {} → {}/{N} new on b",
            self.point, self.new_before, self.new_on_b
        )
    }
}

/// Runs `ferry sync` and kills it with SIGKILL at `point`; checks safety rule 1 on b.
fn kill_at(
    point: KillPoint,
    home: &Path,
    a: &Path,
    b: &Path,
    old: &BTreeMap<String, Vec<u8>>,
    new: &BTreeMap<String, Vec<u8>>,
) -> Kill {
    let kept_before = versions_kept(b);
    let new_before = files(b)
        .iter()
        .filter(|(path, bytes)| new.get(*path) == Some(*bytes))
        .count();
    let mut child = ferry(home, a, b).spawn().unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break; // finished before reaching the point: nothing to kill
        }
        let reached = match point {
            KillPoint::Staging => temp_files_on(b),
            KillPoint::Installs(n) => versions_kept(b) >= kept_before + n,
        };
        if reached {
            let _ = child.kill();
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "ferry sync neither reached {point:?} nor finished"
        );
        std::thread::yield_now();
    }
    let status = child.wait().unwrap();
    // Dead now: b is exactly as the kill left it.
    let on_b = files(b);
    let missing: Vec<_> = old.keys().filter(|p| !on_b.contains_key(*p)).collect();
    let extra: Vec<_> = on_b.keys().filter(|p| !old.contains_key(*p)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "after a kill at {point:?}, b lacks {missing:?} and has extra {extra:?}"
    );
    let mut new_on_b = 0;
    for (path, bytes) in &on_b {
        if new.get(path) == Some(bytes) {
            new_on_b += 1;
        } else {
            assert!(
                old.get(path) == Some(bytes),
                "after a kill at {point:?}, {path} holds neither its old nor its new content"
            );
        }
    }
    Kill {
        point,
        killed: status.signal() == Some(9),
        new_before,
        new_on_b,
    }
}

#[test]
fn kill_9_at_any_point_loses_nothing_and_resumes() {
    let (tmp, [a, b]) = folders(["a", "b"]);
    let home = tmp.path().join("home");
    for i in 0..N {
        let dir = a.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("f{i}")), content(i, 0)).unwrap();
    }
    assert!(ferry(&home, &a, &b).status().unwrap().success());
    let old = files(&b);
    assert_eq!(old.len(), N);
    // A new generation of every file on a; b still has the old one.
    for i in 0..N {
        std::fs::write(a.join(format!("d{}/f{i}", i % 10)), content(i, 1)).unwrap();
    }
    let new = files(&a);

    // Each run resumes the one killed before it. The points are set by the installs
    // still left: staging, the first install, a quarter, a third, half, all but one.
    let mut kills = Vec::new();
    let mut left = N;
    let points: [fn(usize) -> KillPoint; 6] = [
        |_| KillPoint::Staging,
        |_| KillPoint::Installs(1),
        |left| KillPoint::Installs((left / 4).max(1)),
        |left| KillPoint::Installs((left / 3).max(1)),
        |left| KillPoint::Installs((left / 2).max(1)),
        |left| KillPoint::Installs(left.saturating_sub(1).max(1)),
    ];
    for point in points {
        let kill = kill_at(point(left), &home, &a, &b, &old, &new);
        left = N - kill.new_on_b;
        kills.push(kill);
    }
    eprintln!("kills: {kills:#?}");
    assert!(
        kills.iter().any(Kill::mid_install),
        "no kill landed while files were being installed: {kills:#?}"
    );

    let out = ferry_cmd(&home)
        .args(["sync", "--json", "--yes"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let on_b = differences(&files(&b), &new, &old);
    assert!(on_b.is_empty(), "rerun did not converge on b: {on_b:#?}");
    let on_a = differences(&files(&a), &new, &old);
    assert!(on_a.is_empty(), "the source changed: {on_a:#?}");
    // Verified work is not redone: the rerun copies only what b does not hold yet.
    assert!(
        v["files_copied"].as_u64().unwrap() <= left as u64,
        "rerun copied again what b already held ({left} were missing): {v}"
    );
    let out = ferry_cmd(&home)
        .args(["sync", "--json"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["files_copied"], 0,
        "second run after convergence copied again: {v}"
    );
    // Every replaced old content is in b's version store, and nothing else: a new
    // content there would mean an installed file was replaced again (work redone).
    let kept: HashSet<Vec<u8>> = files_below(&b.join(".ferry/versions"))
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let missing = old.values().filter(|c| !kept.contains(*c)).count();
    assert_eq!(
        missing, 0,
        "overwritten old contents missing from the version store"
    );
    let redone = new.values().filter(|c| kept.contains(*c)).count();
    assert_eq!(
        redone, 0,
        "{redone} new contents were replaced again by a later run; kills: {kills:#?}"
    );
}
