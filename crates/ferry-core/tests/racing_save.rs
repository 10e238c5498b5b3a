//! An editor saving files on B while a run replaces or deletes them there (safety rule
//! 2: a fresh edit is never clobbered, including one that lands *during* the
//! replacement or deletion).
//!
//! 300 files exist on both sides; A edits (or deletes) all of them, so the run replaces
//! (or deletes) every one on B. While it runs, a racing thread saves B's files the way
//! editors do: write `dir/.name.swp`, then atomically put it in place of `dir/name`.
//! It saves a file as soon as the run kept a version of it — the version store is
//! watched, and a version is identified by its bytes (the header of its content), not
//! by where it is stored — because that is when the run is about to replace or delete
//! it; then it keeps re-saving every file the run has reached, as fast as it can.
//!
//! The racer puts each save in place with `renameat2(RENAME_EXCHANGE)` and looks at
//! what it displaced: its own previous save of that path, or something else — then the
//! run displaced that previous save. So it knows exactly which of its saves it replaced
//! itself; every other save is the user's work and must survive the run:
//!
//! - each one still exists, at its path on B, elsewhere on B (a conflict copy) or in
//!   B's version store;
//! - wherever the run displaced a save, the run's report names that path (an error, a
//!   note or a conflict): a save is never replaced or deleted silently;
//! - a later run with nothing racing exits clean, converges and loses none of them: a
//!   save that landed right after the run put its copy in place is not mistaken for
//!   that copy (its stat recorded as the copy's), so it is carried over to A.
//!
//! Every other round, another writer holds the library's index now and then, as a
//! second ferry process (a daemon job, a `ferry sync` of another pair) would, so the
//! run's index writes sometimes wait.
//!
//! On code that keeps a version (a hard link, an index row) and *then* renames over or
//! unlinks the path, a save landing in between is lost without a word; the waits for
//! the index make that window wider, and these tests catch it. On code that takes the
//! installed file's stat by path after the rename, a save landing right after it is
//! recorded as the copy and never synced; the replacement test catches that too.

use ferry_core::plan::{ConflictPolicy, SyncMode};
use ferry_core::replica::{FERRY_DIR, TEMP_PREFIX};
use ferry_core::NoProgress;
use ferry_core::{sync, SyncOptions, SyncOutcome};
use ferry_testkit::{exchange, files_below};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{tree_without_ferry, Node, Pair};

const FILES: usize = 300;
const DIRS: usize = 10;
const ROUNDS: usize = 8;

fn rel(i: usize) -> String {
    format!("d{}/f{i:03}", i % DIRS)
}

/// A unique content: a header line naming it, then filler.
fn content(header: &str, n: usize) -> Vec<u8> {
    let mut v = format!("{header}\n").into_bytes();
    let len = 1000 + (n * 7919) % 3000;
    let mut x = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    v.extend((0..len).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    v
}

fn header_of(c: &[u8]) -> String {
    let end = c
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(c.len().min(60));
    String::from_utf8_lossy(&c[..end]).into_owned()
}

fn sync_newest(pair: &mut Pair) -> SyncOutcome {
    let opts = SyncOptions {
        mode: Some(SyncMode::Bidirectional),
        policy: Some(ConflictPolicy::Newest),
        yes: true, // the deletion variant deletes every file of B
        ..Default::default()
    };
    sync(&mut pair.index, &pair.a, &pair.b, &opts, &NoProgress).unwrap()
}

/// Every content a side keeps: its files (not ferry's temp files) and its version store.
fn kept_on(root: &Path) -> HashSet<Vec<u8>> {
    let ferry_dir = root.join(FERRY_DIR);
    (files_below(root).into_iter())
        .filter(|p| !p.starts_with(&ferry_dir))
        .filter(|p| !(p.file_name().unwrap().to_string_lossy()).starts_with(TEMP_PREFIX))
        .chain(files_below(&ferry_dir.join("versions")))
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

/// What the racing editor did.
#[derive(Default)]
struct Saves {
    total: usize,
    /// Per path, its latest save not (yet) known to be displaced by the run.
    last: HashMap<String, Vec<u8>>,
    /// Saves the run displaced (seen when the racer put its next save in place).
    displaced: Vec<(String, Vec<u8>)>,
}

impl Saves {
    /// Every save that must survive: all but those the racer replaced itself.
    fn must_survive(&self) -> Vec<(&String, &Vec<u8>)> {
        (self.displaced.iter().map(|(p, c)| (p, c)))
            .chain(self.last.iter())
            .collect()
    }
}

/// The racing editor: saves each file of B as soon as the run has kept a version of it
/// (the newest version first: the run is at that file now), then keeps re-saving the
/// files reached so far, until `stop`.
fn race(b: PathBuf, stop: Arc<AtomicBool>, n: usize, original: &str) -> Saves {
    let store = b.join(FERRY_DIR).join("versions");
    let mut seen_versions: HashSet<PathBuf> = HashSet::new();
    // Files the run has kept a version of and the racer has not saved yet, newest last.
    let mut backlog: Vec<String> = Vec::new();
    let mut reached: Vec<String> = Vec::new();
    let mut saves = Saves::default();
    let mut next = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut fresh = Vec::new();
        for v in files_below(&store) {
            if seen_versions.contains(&v) {
                continue;
            }
            let (Some(header), Ok(meta)) = (header_line(&v), std::fs::symlink_metadata(&v)) else {
                continue; // not written completely yet: look again next time
            };
            seen_versions.insert(v);
            // A version of this round's content of a path: `<original> <path>`.
            if let Some(rel) = header
                .strip_prefix(original)
                .and_then(|r| r.strip_prefix(' '))
            {
                // Linking or writing the version set its ctime: the newest is the
                // file the run is at.
                fresh.push(((meta.ctime(), meta.ctime_nsec()), rel.to_string()));
            }
        }
        fresh.sort();
        backlog.extend(fresh.into_iter().map(|(_, rel)| rel));
        if let Some(rel) = backlog.pop() {
            if !reached.contains(&rel) {
                save(&b, n, &rel, &mut saves);
                reached.push(rel);
            }
        } else if !reached.is_empty() {
            // Nothing new: one more save of a file the run has reached, round robin.
            let rel = reached[next % reached.len()].clone();
            save(&b, n, &rel, &mut saves);
            next += 1;
        }
    }
    saves
}

/// The header line of a content; `None` while it is not complete.
fn header_line(version: &Path) -> Option<String> {
    let mut head = [0u8; 64];
    let mut f = std::fs::File::open(version).ok()?;
    let n = f.read(&mut head).ok()?;
    let end = head[..n].iter().position(|&b| b == b'\n')?;
    Some(String::from_utf8_lossy(&head[..end]).into_owned())
}

/// One editor-style save of `rel` on `b`: write `.name.swp`, swap it into place, drop
/// what it displaced (after noting whose it was).
fn save(b: &Path, n: usize, rel: &str, saves: &mut Saves) {
    let path = b.join(rel);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let swp = path.with_file_name(format!(".{name}.swp"));
    saves.total += 1;
    let c = content(&format!("save r{n} {rel} #{}", saves.total), saves.total);
    std::fs::write(&swp, &c).unwrap();
    let displaced = match exchange(&swp, &path) {
        Ok(()) => Some(std::fs::read(&swp).unwrap()),
        // Nothing there (deleted): the save creates the file.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            std::fs::rename(&swp, &path).unwrap();
            None
        }
        Err(e) => panic!("save {rel}: {e}"),
    };
    let _ = std::fs::remove_file(&swp);
    if !saves.last.contains_key(rel) {
        eprintln!(
            "FIRST r{n} {}",
            displaced
                .as_ref()
                .map(|d| header_of(d).split(' ').next().unwrap().to_string())
                .unwrap_or("none".into())
        );
    }
    if let Some(prev) = saves.last.insert(rel.to_string(), c) {
        if displaced.as_ref() != Some(&prev) {
            // Not the racer's own previous save that left: the run had displaced it.
            saves.displaced.push((rel.to_string(), prev));
        }
    }
}

/// Another writer of the same index: takes the write lock for 4 ms every 8 ms.
fn other_writer(db: &Path, stop: &AtomicBool) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    while !stop.load(Ordering::Relaxed) {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        std::thread::sleep(Duration::from_millis(4));
        conn.execute_batch("COMMIT").unwrap();
        std::thread::sleep(Duration::from_millis(4));
    }
}

/// Where the trees of A and B differ, each path with what each side holds.
fn differences(a: &Path, b: &Path) -> Vec<String> {
    let (ta, tb) = (tree_without_ferry(a), tree_without_ferry(b));
    let show = |n: Option<&Node>| match n {
        None => "nothing".to_string(),
        Some(Node::File(c, mode)) => {
            format!("{:?} ({} bytes, mode {mode:o})", header_of(c), c.len())
        }
        Some(other) => format!("{other:?}"),
    };
    (ta.keys().chain(tb.keys()).collect::<BTreeSet<_>>())
        .into_iter()
        .filter(|p| ta.get(*p) != tb.get(*p))
        .map(|p| {
            format!(
                "{}: a {}, b {}",
                p.display(),
                show(ta.get(p)),
                show(tb.get(p))
            )
        })
        .collect()
}

/// Whether the run's report names `rel`: an error, a note or a conflict.
fn reported(out: &SyncOutcome, rel: &str) -> bool {
    out.problems
        .iter()
        .map(|p| &p.detail)
        .chain(&out.notes)
        .any(|m| m.contains(rel))
        || out.plan.conflicts.iter().any(|c| c.path.as_str() == rel)
}

/// What one round found.
#[derive(Debug, Default)]
struct Tally {
    saves: usize,
    displaced_by_run: usize,
    /// Saves found nowhere on B after the racing run.
    lost: Vec<String>,
    /// Paths where the racing run displaced a save without a word.
    unreported: Vec<String>,
    /// Errors of the run after the race (nothing racing then).
    later_errors: Vec<String>,
    /// Where A and B still differ after that run.
    not_converged: Vec<String>,
    /// Saves that survived the racing run and not the one after it.
    lost_later: Vec<String>,
}

/// One round: every file gets a fresh content on A, synced to B; then `change_a` edits
/// or deletes every file on A and a run carries that to B while the racer saves B's
/// files.
fn round(pair: &mut Pair, n: usize, change_a: fn(&Path, usize, usize)) -> Tally {
    let base = format!("base r{n}");
    for i in 0..FILES {
        let p = pair.a.join(rel(i));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content(&format!("{base} {}", rel(i)), i + n)).unwrap();
    }
    let first = sync_newest(pair);
    assert!(first.problems.is_empty(), "round {n}: {:?}", first.problems);
    for i in 0..FILES {
        change_a(&pair.a, i, n);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let (b, stop) = (pair.b.clone(), stop.clone());
        std::thread::spawn(move || race(b, stop, n, &base))
    };
    // Every other round, another writer shares the library (as a daemon job or a second
    // `ferry sync` of another pair would), so the run now and then waits for the index.
    let other_writer = (n % 2 == 1).then(|| {
        let (db, stop) = (pair.tmp.path().join("index.db"), stop.clone());
        std::thread::spawn(move || other_writer(&db, &stop))
    });
    let out = sync_newest(pair);
    stop.store(true, Ordering::Relaxed);
    let saves = racer.join().unwrap();
    if let Some(w) = other_writer {
        w.join().unwrap();
    }

    let on_b = kept_on(&pair.b);
    // Paths whose latest save is not in place: the run displaced it.
    let not_in_place: Vec<&String> = (saves.last.iter())
        .filter(|(p, c)| std::fs::read(pair.b.join(p)).ok().as_ref() != Some(*c))
        .map(|(p, _)| p)
        .collect();
    let mut t = Tally {
        saves: saves.total,
        displaced_by_run: saves.displaced.len() + not_in_place.len(),
        ..Default::default()
    };
    let displaced_paths: BTreeSet<&String> = (saves.displaced.iter().map(|(p, _)| p))
        .chain(not_in_place)
        .collect();
    for (p, c) in saves.must_survive() {
        if !on_b.contains(c) {
            t.lost.push(format!("{p}: {}", header_of(c)));
        }
    }
    for p in displaced_paths {
        if !reported(&out, p) {
            t.unreported.push(p.clone());
        }
    }

    // Nothing racing now: the next run converges and keeps every save.
    let again = sync_newest(pair);
    t.later_errors = again.problems.iter().map(|p| p.to_string()).collect();
    t.not_converged = differences(&pair.a, &pair.b);
    let mut everywhere = kept_on(&pair.a);
    everywhere.extend(kept_on(&pair.b));
    t.lost_later = (saves.must_survive().into_iter())
        .filter(|(_, c)| on_b.contains(*c) && !everywhere.contains(*c))
        .map(|(p, c)| format!("{p}: {}", header_of(c)))
        .collect();

    // The next round's racer looks through B's version store on every turn: move this
    // round's versions aside (out of both roots), as pruning them would, so its turns
    // stay short.
    let store = pair.b.join(FERRY_DIR).join("versions");
    let aside = pair.tmp.path().join(format!("versions-r{n}"));
    std::fs::create_dir(&aside).unwrap();
    for e in std::fs::read_dir(&store).unwrap() {
        let e = e.unwrap();
        std::fs::rename(e.path(), aside.join(e.file_name())).unwrap();
    }
    t
}

fn check(what: &str, change_a: fn(&Path, usize, usize)) {
    let mut pair = Pair::new();
    let tallies: BTreeMap<usize, Tally> = (0..ROUNDS)
        .map(|n| (n, round(&mut pair, n, change_a)))
        .collect();
    let total = |f: fn(&Tally) -> usize| tallies.values().map(f).sum::<usize>();
    eprintln!(
        "{what}: {ROUNDS} rounds, {} saves, {} displaced by the run, {} lost, {} displaced \
         without a report; after the race: {} errors, {} paths not converged, {} saves lost",
        total(|t| t.saves),
        total(|t| t.displaced_by_run),
        total(|t| t.lost.len()),
        total(|t| t.unreported.len()),
        total(|t| t.later_errors.len()),
        total(|t| t.not_converged.len()),
        total(|t| t.lost_later.len()),
    );
    let by_round = |f: fn(&Tally) -> &Vec<String>| -> BTreeMap<usize, &Vec<String>> {
        (tallies.iter())
            .filter(|(_, t)| !f(t).is_empty())
            .map(|(n, t)| (*n, f(t)))
            .collect()
    };
    let lost = by_round(|t| &t.lost);
    assert!(
        lost.is_empty(),
        "{what}: saves lost (on no path of B, not in its version store), by round: {lost:#?}"
    );
    let unreported = by_round(|t| &t.unreported);
    assert!(
        unreported.is_empty(),
        "{what}: saves displaced with no error, note or conflict for their path, by round: \
         {unreported:#?}"
    );
    let later_errors = by_round(|t| &t.later_errors);
    assert!(
        later_errors.is_empty(),
        "{what}: the run after the race failed, by round: {later_errors:#?}"
    );
    // A save that landed right after the run installed its copy must not be taken for
    // that copy: the run after the race sees it and carries it over.
    let not_converged = by_round(|t| &t.not_converged);
    assert!(
        not_converged.is_empty(),
        "{what}: the run after the race did not converge, by round: {not_converged:#?}"
    );
    let lost_later = by_round(|t| &t.lost_later);
    assert!(
        lost_later.is_empty(),
        "{what}: saves lost by the run after the race, by round: {lost_later:#?}"
    );
    assert!(
        total(|t| t.saves) >= ROUNDS,
        "{what}: the racer hardly saved anything; did it see the versions?"
    );
}

#[test]
fn racing_saves_during_replacements_are_never_lost() {
    check("replacements", |a, i, n| {
        std::fs::write(
            a.join(rel(i)),
            content(&format!("new r{n} {}", rel(i)), i + 1),
        )
        .unwrap()
    });
}

#[test]
fn racing_saves_during_deletions_are_never_lost() {
    check("deletions", |a, i, _| {
        std::fs::remove_file(a.join(rel(i))).unwrap()
    });
}
