//! Randomized crash loop: a bounded number of rounds, each of which changes both sides
//! at random (create, edit in place or by replacement, delete, rename a file or a
//! folder, mkdir, turn a file into a folder or a folder into a file), starts a real
//! `ferry sync A B --yes` (bidirectional with `newest` or `keep-both`, or mirror) and
//! `kill -9`s it at a random point: after a random delay, once k temp files were staged,
//! or once k versions were kept. Then, with the process dead:
//!
//! - **old or new** (safety rule 1): every file on a side holds a content that existed
//!   before the run: its own content there, one from the other side (a copy, a rename,
//!   a conflict copy), or — only under a conflict-copy name — another content of the
//!   same side (a loser moved aside). Contents are unique, so a torn, partial or mixed
//!   file matches none of them;
//! - **nothing lost** (rule 3): every content that existed on either side before the run
//!   is still in one of the trees or in one of the version stores (`.ferry/versions/`):
//!   mirror mode and newest-wins keep what they overwrite or delete there;
//! - mirror mode leaves its source (A) as it was;
//! - then an un-killed run of the same mode converges: exit 0, both trees equal
//!   (folders included), no temp file left, still old-or-new and nothing lost.
//!
//! The seed is printed; `FERRY_CRASH_SEED` replays a sequence of operations (the kill
//! points depend on timing too), `FERRY_CRASH_ITERS` sets the number of rounds.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_core::replica::{FERRY_DIR, TEMP_PREFIX};

mod common;
use common::{ferry_cmd, folders};

const DEFAULT_ITERS: usize = 40;

// ---------------------------------------------------------------- randomness

/// SplitMix64: small, seedable, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.below(items.len())])
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a valid value")),
        Err(_) => default,
    }
}

/// Every content written is unique: a header naming it, then filler of a random size
/// (mostly small, some large enough that a copy takes a while).
struct Writer {
    rng: Rng,
    next: u64,
}

impl Writer {
    fn content(&mut self, label: &str) -> Vec<u8> {
        self.next += 1;
        let n = self.next;
        let len = match self.rng.below(100) {
            0..=59 => self.rng.below(4 << 10),
            60..=94 => (16 << 10) + self.rng.below(240 << 10),
            _ => (1 << 20) + self.rng.below(1 << 20),
        };
        let mut v = format!("content #{n} ({label})\n").into_bytes();
        let mut x = n.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
        v.extend((0..len).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        }));
        v
    }
}

// ---------------------------------------------------------------- trees

fn is_temp(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// A side as a user sees it: its files with their bytes and its folders, without the
/// top-level `.ferry/` and without ferry's temp files. Paths are relative, `/`-separated.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tree {
    files: BTreeMap<String, Vec<u8>>,
    dirs: BTreeSet<String>,
}

fn tree(root: &Path) -> Tree {
    let mut t = Tree::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = rel_of(root, &p);
            let name = e.file_name().to_string_lossy().into_owned();
            if rel == FERRY_DIR || is_temp(&name) {
                continue;
            }
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                t.dirs.insert(rel);
                stack.push(p);
            } else if ft.is_file() {
                t.files.insert(rel, std::fs::read(&p).unwrap());
            } else {
                panic!("{}: neither a file nor a folder", p.display());
            }
        }
    }
    t
}

fn rel_of(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap().to_str().unwrap().to_string()
}

/// Every file below `dir` (recursively), by path.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue; // gone meanwhile, or no version store yet
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => out.push(e.path()),
                Err(_) => {}
            }
        }
    }
    out
}

fn versions_dir(root: &Path) -> PathBuf {
    root.join(FERRY_DIR).join("versions")
}

/// The contents kept in a side's version store.
fn versions(root: &Path) -> Vec<Vec<u8>> {
    files_below(&versions_dir(root))
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// ferry's temp files on a side (anywhere below the root but `.ferry/`).
fn temp_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue; // removed by the run meanwhile
        };
        for e in entries.flatten() {
            let p = e.path();
            if d == root && e.file_name() == FERRY_DIR {
                continue;
            }
            if is_temp(&e.file_name().to_string_lossy()) {
                out.push(rel_of(root, &p));
            } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out
}

// ---------------------------------------------------------------- random operations

const FILE_NAMES: [&str; 8] = ["f0", "f1", "f2", "f3", "f4.txt", "f5.txt", "g", "h.md"];
const DIR_NAMES: [&str; 4] = ["d0", "d1", "d2", "e"];
const MAX_DEPTH: usize = 3;

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn depth(rel: &str) -> usize {
    if rel.is_empty() {
        0
    } else {
        rel.split('/').count()
    }
}

/// What the operations see of a side: its files and folders (names only).
struct Listing {
    files: Vec<String>,
    dirs: Vec<String>,
}

fn listing(root: &Path) -> Listing {
    let t = tree(root);
    Listing {
        files: t.files.into_keys().collect(),
        dirs: t.dirs.into_iter().collect(),
    }
}

impl Listing {
    /// Folders new entries may go into: the root (`""`) and every folder not too deep.
    fn parents(&self) -> Vec<String> {
        std::iter::once(String::new())
            .chain(self.dirs.iter().filter(|d| depth(d) < MAX_DEPTH).cloned())
            .collect()
    }

    fn exists(&self, rel: &str) -> bool {
        self.files.iter().any(|f| f == rel) || self.dirs.iter().any(|d| d == rel)
    }

    /// A free path in some folder, named from `names`; `None` when none was found.
    fn free_path(&self, rng: &mut Rng, names: &[&str], under: Option<&str>) -> Option<String> {
        let parents = self.parents();
        for _ in 0..10 {
            let parent = rng.pick(&parents).unwrap();
            if under.is_some_and(|u| parent == u || parent.starts_with(&format!("{u}/"))) {
                continue; // a folder cannot move into itself
            }
            let p = join(parent, rng.pick(names).unwrap());
            if !self.exists(&p) {
                return Some(p);
            }
        }
        None
    }
}

/// Writes a fresh file at `rel` (a new inode: created, or renamed over like an editor's
/// save), or rewrites an existing one in place.
fn write_file(root: &Path, rel: &str, content: &[u8], in_place: bool) {
    let p = root.join(rel);
    if in_place {
        std::fs::write(&p, content).unwrap();
    } else {
        let tmp = p.with_file_name(format!(".{}.swp", p.file_name().unwrap().to_string_lossy()));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
    }
}

/// Applies one random operation to `root`; returns what it did (for the failure log).
fn random_op(root: &Path, rng: &mut Rng, w: &mut Writer, side: &str) -> String {
    let l = listing(root);
    let few = l.files.len() < 15;
    let many = l.files.len() > 60;
    let roll = rng.below(100);
    let label = |what: &str, rel: &str| format!("{side} {what} {rel}");
    match roll {
        // Create a file (more of them while the tree is small).
        _ if roll < 22 || (few && roll < 50) => {
            let Some(rel) = l.free_path(rng, &FILE_NAMES, None) else {
                return "create: no free name".into();
            };
            write_file(root, &rel, &w.content(&label("create", &rel)), true);
            label("create", &rel)
        }
        // Edit a file, in place or by an editor-style replacement.
        _ if roll < 42 => {
            let Some(rel) = rng.pick(&l.files).cloned() else {
                return "edit: no file".into();
            };
            let in_place = rng.chance(50);
            write_file(root, &rel, &w.content(&label("edit", &rel)), in_place);
            label(if in_place { "edit in place" } else { "replace" }, &rel)
        }
        // Delete a file (more of them while the tree is big).
        _ if roll < 54 || (many && roll < 75) => {
            let Some(rel) = rng.pick(&l.files).cloned() else {
                return "delete: no file".into();
            };
            std::fs::remove_file(root.join(&rel)).unwrap();
            label("delete", &rel)
        }
        // Rename a file, within its folder or into another one.
        _ if roll < 66 => {
            let (Some(from), Some(to)) = (
                rng.pick(&l.files).cloned(),
                l.free_path(rng, &FILE_NAMES, None),
            ) else {
                return "rename: nothing to do".into();
            };
            std::fs::rename(root.join(&from), root.join(&to)).unwrap();
            format!("{side} rename {from} -> {to}")
        }
        // Rename a folder (its whole subtree moves).
        _ if roll < 76 => {
            let Some(from) = rng.pick(&l.dirs).cloned() else {
                return "rename folder: no folder".into();
            };
            let Some(to) = l.free_path(rng, &DIR_NAMES, Some(&from)) else {
                return "rename folder: no free name".into();
            };
            if depth(&to) + subtree_height(&l, &from) > MAX_DEPTH + 1 {
                return "rename folder: would nest too deep".into();
            }
            std::fs::rename(root.join(&from), root.join(&to)).unwrap();
            format!("{side} rename folder {from} -> {to}")
        }
        // Make a folder, sometimes with a file in it.
        _ if roll < 84 => {
            let Some(rel) = l.free_path(rng, &DIR_NAMES, None) else {
                return "mkdir: no free name".into();
            };
            std::fs::create_dir(root.join(&rel)).unwrap();
            if rng.chance(50) {
                let f = join(&rel, rng.pick(&FILE_NAMES).unwrap());
                write_file(root, &f, &w.content(&label("create", &f)), true);
            }
            label("mkdir", &rel)
        }
        // Turn a file into a folder holding a file.
        _ if roll < 90 => {
            let Some(rel) = rng.pick(&l.files).cloned().filter(|f| depth(f) < MAX_DEPTH) else {
                return "file to folder: no file".into();
            };
            std::fs::remove_file(root.join(&rel)).unwrap();
            std::fs::create_dir(root.join(&rel)).unwrap();
            let f = join(&rel, rng.pick(&FILE_NAMES).unwrap());
            write_file(root, &f, &w.content(&label("create", &f)), true);
            label("file to folder", &rel)
        }
        // Turn a folder into a file.
        _ if roll < 95 => {
            let Some(rel) = rng.pick(&l.dirs).cloned() else {
                return "folder to file: no folder".into();
            };
            std::fs::remove_dir_all(root.join(&rel)).unwrap();
            write_file(root, &rel, &w.content(&label("folder to file", &rel)), true);
            label("folder to file", &rel)
        }
        // Delete a folder with everything in it.
        _ => {
            let Some(rel) = rng.pick(&l.dirs).cloned() else {
                return "delete folder: no folder".into();
            };
            std::fs::remove_dir_all(root.join(&rel)).unwrap();
            label("delete folder", &rel)
        }
    }
}

/// How many levels of folders a folder holds below itself plus one (itself).
fn subtree_height(l: &Listing, dir: &str) -> usize {
    let prefix = format!("{dir}/");
    l.files
        .iter()
        .chain(&l.dirs)
        .filter_map(|p| p.strip_prefix(&prefix))
        .map(|rest| rest.split('/').count())
        .max()
        .unwrap_or(0)
        + 1
}

// ---------------------------------------------------------------- the runs

#[derive(Debug, Clone, Copy)]
enum Mode {
    Bidirectional { keep_both: bool },
    Mirror,
}

fn sync_cmd(home: &Path, a: &Path, b: &Path, mode: Mode) -> Command {
    let mut c = ferry_cmd(home);
    c.arg("sync").arg(a).arg(b).arg("--yes");
    match mode {
        Mode::Mirror => c.args(["--mode", "mirror"]),
        Mode::Bidirectional { keep_both } => c.args([
            "--mode",
            "bidirectional",
            "--conflict",
            if keep_both { "keep-both" } else { "newest" },
        ]),
    };
    c
}

/// When to kill the run.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// After this long.
    Delay(Duration),
    /// Once this many temp files are on the two sides together.
    TempFiles(usize),
    /// Once this many more versions were kept on the two sides together.
    Versions(usize),
}

fn versions_kept(a: &Path, b: &Path) -> usize {
    files_below(&versions_dir(a)).len() + files_below(&versions_dir(b)).len()
}

/// Starts the run and kills it at `point`; returns whether the kill found it running.
fn run_and_kill(cmd: &mut Command, point: KillPoint, a: &Path, b: &Path) -> bool {
    let kept_before = versions_kept(a, b);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break; // done before the point: nothing to kill
        }
        let reached = match point {
            KillPoint::Delay(d) => start.elapsed() >= d,
            KillPoint::TempFiles(k) => temp_files(a).len() + temp_files(b).len() >= k,
            KillPoint::Versions(k) => versions_kept(a, b) >= kept_before + k,
        };
        if reached {
            let _ = child.kill(); // SIGKILL
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "ferry sync neither reached {point:?} nor finished"
        );
        if let KillPoint::Delay(_) = point {
            std::thread::sleep(Duration::from_micros(200));
        } else {
            std::thread::yield_now();
        }
    }
    child.wait().unwrap().signal() == Some(9) // SIGKILL
}

// ---------------------------------------------------------------- the checks

/// Before a run: both sides, and every content on either.
struct Before {
    a: Tree,
    b: Tree,
    all: HashSet<Vec<u8>>,
}

impl Before {
    fn take(a: &Path, b: &Path) -> Before {
        let (a, b) = (tree(a), tree(b));
        let all = a.files.values().chain(b.files.values()).cloned().collect();
        Before { a, b, all }
    }
}

fn is_conflict_copy(rel: &str) -> bool {
    rel.rsplit('/').next().unwrap().contains(".conflict-")
}

/// A short name for a content in messages: its header line and its length (a torn copy
/// has the header of the content it was cut from, and fewer bytes).
fn name_of(content: &[u8]) -> String {
    let end = content
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(content.len());
    let head = String::from_utf8_lossy(&content[..end.min(80)]);
    format!("{head:?} ({} bytes)", content.len())
}

/// Old or new: each file of `now` holds its own content of before, one of the other
/// side's contents of before, or (under a conflict-copy name) one of its own side's.
fn old_or_new(side: &str, now: &Tree, own: &Tree, other: &Tree) -> Vec<String> {
    let other_contents: HashSet<&Vec<u8>> = other.files.values().collect();
    let own_contents: HashSet<&Vec<u8>> = own.files.values().collect();
    let mut bad = Vec::new();
    for (rel, c) in &now.files {
        let ok = own.files.get(rel) == Some(c)
            || other_contents.contains(c)
            || (is_conflict_copy(rel) && own_contents.contains(c));
        if !ok {
            let was = own
                .files
                .get(rel)
                .map_or("nothing".to_string(), |c| name_of(c));
            bad.push(format!(
                "{side}:{rel} holds {} (before the run: {was})",
                name_of(c)
            ));
        }
    }
    bad
}

/// Nothing lost: every content of before is in a tree or a version store now.
fn lost(before: &Before, a: &Path, b: &Path, ta: &Tree, tb: &Tree) -> Vec<String> {
    let mut now: HashSet<Vec<u8>> = ta
        .files
        .values()
        .chain(tb.files.values())
        .cloned()
        .collect();
    now.extend(versions(a));
    now.extend(versions(b));
    let mut out: Vec<String> = before
        .all
        .iter()
        .filter(|c| !now.contains(*c))
        .map(|c| name_of(c))
        .collect();
    out.sort();
    out
}

/// Old or new on both sides, and nothing lost; panics with `context` otherwise.
fn check_safe(before: &Before, a: &Path, b: &Path, context: &dyn Fn() -> String) -> (Tree, Tree) {
    let (ta, tb) = (tree(a), tree(b));
    let mut bad = old_or_new("a", &ta, &before.a, &before.b);
    bad.extend(old_or_new("b", &tb, &before.b, &before.a));
    assert!(
        bad.is_empty(),
        "files holding neither their old content nor one from before the run: {bad:#?}\n{}",
        context()
    );
    let gone = lost(before, a, b, &ta, &tb);
    assert!(
        gone.is_empty(),
        "contents lost (in no tree and no version store): {gone:#?}\n{}",
        context()
    );
    (ta, tb)
}

fn differences(ta: &Tree, tb: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for p in ta
        .files
        .keys()
        .chain(tb.files.keys())
        .collect::<BTreeSet<_>>()
    {
        match (ta.files.get(p), tb.files.get(p)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => out.push(format!(
                "{p}: a {}, b {}",
                x.map_or("none".into(), |c| name_of(c)),
                y.map_or("none".into(), |c| name_of(c))
            )),
        }
    }
    for d in ta.dirs.symmetric_difference(&tb.dirs) {
        let on = if ta.dirs.contains(d) { "a" } else { "b" };
        out.push(format!("folder {d} only on {on}"));
    }
    out
}

// ---------------------------------------------------------------- the test

#[test]
fn random_changes_killed_at_random_points_lose_nothing_and_converge() {
    let seed: u64 = env_or(
        "FERRY_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    let iters: usize = env_or("FERRY_CRASH_ITERS", DEFAULT_ITERS);
    eprintln!("crash loop: FERRY_CRASH_SEED={seed} FERRY_CRASH_ITERS={iters}");
    let mut rng = Rng(seed);
    let mut w = Writer {
        rng: Rng(seed ^ 0x5eed),
        next: 0,
    };

    let (tmp, [a, b]) = folders(["a", "b"]);
    let home = tmp.path().join("home");
    // A starting tree on a, synced to b by an ordinary run.
    for _ in 0..40 {
        let l = listing(&a);
        if rng.chance(25) {
            if let Some(d) = l.free_path(&mut rng, &DIR_NAMES, None) {
                std::fs::create_dir(a.join(d)).unwrap();
            }
        } else if let Some(f) = l.free_path(&mut rng, &FILE_NAMES, None) {
            write_file(&a, &f, &w.content(&format!("a initial {f}")), true);
        }
    }
    let mut cmd = sync_cmd(&home, &a, &b, Mode::Bidirectional { keep_both: false });
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tree(&a), tree(&b));

    // How long an un-killed run takes, so delays spread over a whole run.
    let mut run_time = Duration::from_millis(150);
    let (mut killed, mut mid_run_changes) = (0, 0);
    for round in 0..iters {
        let mut log = Vec::new();
        for _ in 0..1 + rng.below(6) {
            log.push(random_op(&a, &mut rng, &mut w, "a"));
        }
        for _ in 0..1 + rng.below(6) {
            log.push(random_op(&b, &mut rng, &mut w, "b"));
        }
        let mode = match rng.below(4) {
            0 => Mode::Mirror,
            1 => Mode::Bidirectional { keep_both: true },
            _ => Mode::Bidirectional { keep_both: false },
        };
        let point = match rng.below(4) {
            0 => KillPoint::TempFiles(1 + rng.below(3)),
            1 => KillPoint::Versions(1 + rng.below(4)),
            _ => KillPoint::Delay(run_time.mul_f64(rng.below(1001) as f64 / 1000.0)),
        };
        let before = Before::take(&a, &b);
        let context = || {
            format!("seed {seed}, round {round}, {mode:?}, kill at {point:?}; operations: {log:#?}")
        };

        let was_killed = run_and_kill(&mut sync_cmd(&home, &a, &b, mode), point, &a, &b);
        let (ta, tb) = check_safe(&before, &a, &b, &context);
        if let Mode::Mirror = mode {
            assert!(ta == before.a, "mirror changed its source\n{}", context());
        }
        if was_killed {
            killed += 1;
            if ta != before.a || tb != before.b {
                mid_run_changes += 1;
            }
        }

        // An ordinary run finishes the job.
        let start = Instant::now();
        let out = sync_cmd(&home, &a, &b, mode).output().unwrap();
        let took = start.elapsed();
        run_time = (run_time * 3 + took) / 4;
        assert!(
            out.status.success(),
            "the run after the kill failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            context()
        );
        let (ta, tb) = check_safe(&before, &a, &b, &context);
        if let Mode::Mirror = mode {
            assert!(ta == before.a, "mirror changed its source\n{}", context());
        }
        let diff = differences(&ta, &tb);
        assert!(
            diff.is_empty(),
            "the run after the kill did not converge: {diff:#?}\n{}",
            context()
        );
        let left: Vec<String> = temp_files(&a).into_iter().chain(temp_files(&b)).collect();
        assert!(left.is_empty(), "temp files left: {left:?}\n{}", context());
    }
    eprintln!(
        "crash loop: {iters} rounds, {killed} runs killed while running, {mid_run_changes} of them \
         after changing a tree; last run took {run_time:?}"
    );
    if iters >= 10 {
        assert!(
            mid_run_changes > 0,
            "no kill landed after a run had changed something (seed {seed})"
        );
    }
}
