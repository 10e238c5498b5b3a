//! Scan: walk a location, compare each path's stat with the index, hash only what
//! changed, and record changes (with version-vector bumps) and deletions.

use crate::chunk::{digest_file, Digest, Hash};
use crate::entry::{kind_of, Entry, EntryKind, StatInfo};
use crate::error::Result;
use crate::ignore_rules::{IndexRules, IGNORE_FILE, TEMP_PREFIX};
use crate::index::Index;
use crate::location::{Location, LocationLock};
use crate::progress::Progress;
use crate::rel_path::RelPath;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// An mtime this close to the scan (or later) is not trusted: the file may still be
/// changing within the timestamp's granularity, so the next scan hashes it again.
const RACY_WINDOW_NS: i64 = 2_000_000_000;

/// What a scan found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ScanReport {
    pub entries: u64,
    pub hashed_files: u64,
    pub hashed_bytes: u64,
    pub changed: u64,
    pub deleted: u64,
    pub forgotten: u64,
    /// Per-path problems; the rest of the scan went on.
    pub errors: Vec<String>,
}

struct Seen {
    rel: RelPath,
    abs: PathBuf,
    kind: EntryKind,
    stat: StatInfo,
}

/// Scans `loc` and brings its index entries up to date. The caller holds the
/// location's lock (`_held`), so stale temp files found can be removed.
pub fn scan_location(
    index: &mut Index,
    loc: &Location,
    _held: &LocationLock,
    rules: IndexRules,
    progress: &dyn Progress,
) -> Result<ScanReport> {
    loc.verify_marker()?;
    let mut report = ScanReport::default();
    let old: HashMap<RelPath, Entry> = index
        .entries(loc.id())?
        .into_iter()
        .map(|e| (e.path.clone(), e))
        .collect();
    let scan_start_ns = now_ns();
    let (seen, unreadable) = walk(&loc.root, rules, &mut report);
    report.entries = seen.len() as u64;

    // Decide what needs reading.
    let mut unchanged: HashSet<&RelPath> = HashSet::new();
    let mut candidates: Vec<&Seen> = Vec::new();
    for s in &seen {
        match old.get(&s.rel) {
            Some(e) if e.is_live() && e.kind == s.kind && !e.racy && stat_unchanged(e, s) => {
                unchanged.insert(&s.rel);
            }
            _ => candidates.push(s),
        }
    }
    let to_hash: Vec<&Seen> = candidates
        .iter()
        .copied()
        .filter(|s| s.kind == EntryKind::File)
        .collect();
    progress.phase(
        &format!("scan {}", loc.root.display()),
        Some(to_hash.iter().map(|s| s.stat.size).sum()),
    );
    let digests = hash_all(&to_hash, progress);
    let mut digest_of: HashMap<&RelPath, std::result::Result<(Digest, StatInfo), String>> =
        to_hash.iter().map(|s| &s.rel).zip(digests).collect();

    // Build changed entries.
    let mut updates: Vec<Entry> = Vec::new();
    let mut bumps = 0u64;
    for s in candidates {
        let (hash, chunks, link_target, stat, racy) = match s.kind {
            EntryKind::File => match digest_of.remove(&s.rel) {
                Some(Ok((d, after))) => {
                    report.hashed_files += 1;
                    report.hashed_bytes += d.size;
                    let moved = after != s.stat;
                    let racy = moved || after.mtime_ns > scan_start_ns - RACY_WINDOW_NS;
                    (
                        Some(d.hash),
                        d.chunks,
                        None,
                        StatInfo {
                            size: d.size,
                            ..after
                        },
                        racy,
                    )
                }
                Some(Err(msg)) => {
                    report.errors.push(msg);
                    continue;
                }
                None => continue,
            },
            EntryKind::Symlink => match std::fs::read_link(&s.abs) {
                Ok(t) => match t.to_str() {
                    Some(t) => (
                        Some(Hash::of(t.as_bytes())),
                        Vec::new(),
                        Some(t.to_string()),
                        s.stat,
                        false,
                    ),
                    None => {
                        report.errors.push(format!(
                            "{}: symlink target is not valid UTF-8; skipped",
                            s.abs.display()
                        ));
                        continue;
                    }
                },
                Err(e) => {
                    report
                        .errors
                        .push(format!("{}: cannot read symlink: {e}", s.abs.display()));
                    continue;
                }
            },
            EntryKind::Dir => (None, Vec::new(), None, s.stat, false),
        };
        let mut e = Entry {
            path: s.rel.clone(),
            kind: s.kind,
            stat,
            hash,
            chunks,
            link_target,
            version: Default::default(),
            deleted: false,
            sequence: 0,
            racy,
        };
        match old.get(&s.rel) {
            Some(prev) if prev.same_content(&e) => {
                e.version = prev.version.clone();
                e.sequence = prev.sequence;
                if *prev == e {
                    continue;
                }
            }
            prev => {
                e.version = prev.map(|p| p.version.clone()).unwrap_or_default();
                e.sequence = u64::MAX; // assigned below
                bumps += 1;
            }
        }
        updates.push(e);
    }

    // Deletions: indexed live paths the walk did not see.
    let seen_set: HashSet<&RelPath> = seen.iter().map(|s| &s.rel).collect();
    let mut forget = Vec::new();
    for (path, e) in &old {
        if !e.is_live() || seen_set.contains(path) {
            continue;
        }
        if unreadable
            .iter()
            .any(|u| path == u || path.is_strictly_under(u))
        {
            continue; // could not look: keep what we knew
        }
        match std::fs::symlink_metadata(path.under(&loc.root)) {
            Err(err) if crate::fs_ops::is_absent(&err) => {
                let mut t = e.clone();
                t.deleted = true;
                t.sequence = u64::MAX;
                updates.push(t);
                bumps += 1;
                report.deleted += 1;
            }
            // Still on disk but no longer walked: ignored now, so it leaves the index
            // (and sync) without counting as a deletion.
            Ok(_) => forget.push(path.clone()),
            Err(err) => report
                .errors
                .push(format!("{}: {err}", path.under(&loc.root).display())),
        }
    }

    if bumps > 0 {
        let first = index.reserve_sequence(loc.id(), bumps)?;
        let fresh = updates.iter_mut().filter(|e| e.sequence == u64::MAX);
        for (seq, e) in (first..).zip(fresh) {
            e.sequence = seq;
            e.version = e.version.bumped(loc.row.replica_id, seq);
        }
    }
    report.changed = bumps - report.deleted;
    report.forgotten = forget.len() as u64;
    index.put_entries(loc.id(), &updates)?;
    index.forget_entries(loc.id(), &forget)?;
    Ok(report)
}

fn stat_unchanged(e: &Entry, s: &Seen) -> bool {
    match s.kind {
        // A directory's own content is its mode; its mtime moves with its children.
        EntryKind::Dir => e.stat.mode == s.stat.mode,
        _ => e.stat == s.stat,
    }
}

/// Walks the root with the built-in and `.ferryignore` rules. Returns what was seen and
/// the paths that could not be read (whose old entries must be kept, not deleted).
fn walk(root: &Path, rules: IndexRules, report: &mut ScanReport) -> (Vec<Seen>, Vec<RelPath>) {
    let leftovers = std::sync::Arc::new(std::sync::Mutex::new(Vec::<PathBuf>::new()));
    let found = leftovers.clone();
    let mut wb = ignore::WalkBuilder::new(root);
    wb.standard_filters(false)
        .hidden(false)
        .follow_links(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .filter_entry(move |d| {
            if d.depth() == 0 {
                return true;
            }
            let is_dir = d.file_type().is_some_and(|t| t.is_dir());
            let name = d.file_name().to_string_lossy();
            if !is_dir && name.starts_with(TEMP_PREFIX) {
                if let Ok(mut v) = found.lock() {
                    v.push(d.path().to_path_buf());
                }
            }
            !rules.builtin_excluded(&name, d.depth(), is_dir)
        });
    let mut seen = Vec::new();
    let mut unreadable = Vec::new();
    for item in wb.build() {
        let dent = match item {
            Ok(d) => d,
            Err(err) => {
                if let Some(p) = error_path(&err) {
                    if let Ok(rel) = p.strip_prefix(root) {
                        if let Ok(rel) = RelPath::from_path(rel) {
                            unreadable.push(rel);
                        }
                    }
                }
                report.errors.push(format!("walk: {err}"));
                continue;
            }
        };
        if dent.depth() == 0 {
            continue;
        }
        let abs = dent.path().to_path_buf();
        let rel = match abs
            .strip_prefix(root)
            .map_err(|_| ())
            .and_then(|r| RelPath::from_path(r).map_err(|_| ()))
        {
            Ok(r) => r,
            Err(()) => {
                report.errors.push(format!(
                    "{}: name is not valid UTF-8; not synced",
                    abs.display()
                ));
                continue;
            }
        };
        let meta = match std::fs::symlink_metadata(&abs) {
            Ok(m) => m,
            Err(e) => {
                report.errors.push(format!("{}: {e}", abs.display()));
                unreadable.push(rel);
                continue;
            }
        };
        let Some(kind) = kind_of(&meta) else {
            continue; // sockets, fifos, devices are never synced
        };
        seen.push(Seen {
            rel,
            abs,
            kind,
            stat: StatInfo::from_metadata(&meta),
        });
    }
    // Temp files of a run that died before installing them (the caller holds the
    // location lock, so no live run owns them).
    if let Ok(v) = leftovers.lock() {
        for p in v.iter() {
            if let Err(e) = std::fs::remove_file(p) {
                report.errors.push(format!(
                    "{}: cannot remove stale temp file: {e}",
                    p.display()
                ));
            }
        }
    }
    (seen, unreadable)
}

fn error_path(err: &ignore::Error) -> Option<&Path> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Partial(errs) => errs.iter().find_map(error_path),
        _ => None,
    }
}

/// Hashes files on all cores; each result carries the stat taken after reading.
fn hash_all(
    files: &[&Seen],
    progress: &dyn Progress,
) -> Vec<std::result::Result<(Digest, StatInfo), String>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<std::result::Result<(Digest, StatInfo), String>>> =
        (0..files.len()).map(|_| None).collect();
    let slots: Vec<std::sync::Mutex<&mut Option<_>>> =
        results.iter_mut().map(std::sync::Mutex::new).collect();
    std::thread::scope(|sc| {
        for _ in 0..threads.min(files.len().max(1)) {
            sc.spawn(|| {
                let mut buf = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(s) = files.get(i) else { break };
                    let r = digest_file(&s.abs, &mut buf)
                        .map_err(|e| format!("{e}; kept its previous state"))
                        .and_then(|d| {
                            std::fs::symlink_metadata(&s.abs)
                                .map(|m| (d, StatInfo::from_metadata(&m)))
                                .map_err(|e| format!("{}: {e}", s.abs.display()))
                        });
                    progress.bytes(s.stat.size);
                    progress.item();
                    if let Ok(mut slot) = slots[i].lock() {
                        **slot = Some(r);
                    }
                }
            });
        }
    });
    drop(slots);
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("hashing did not run".into())))
        .collect()
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
