//! Scan: walk a location, compare each path's stat with the index, hash only what
//! changed, and record changes (with version-vector bumps) and deletions.

use crate::chunk::{digest_file, Digest, Hash};
use crate::entry::{Entry, EntryKind, StatInfo};
use crate::error::Result;
use crate::ignore_rules::IndexRules;
use crate::index::{Index, StatRow};
use crate::location::{Location, LocationLock};
use crate::progress::Progress;
use crate::rel_path::RelPath;
use crate::walk::{walk, Seen, WalkOut};
use std::collections::HashMap;
use std::path::Path;
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

/// Fresh facts about a path whose stat no longer matches its index row.
struct Fresh {
    rel: RelPath,
    kind: EntryKind,
    stat: StatInfo,
    hash: Option<Hash>,
    chunks: Vec<crate::chunk::Chunk>,
    link_target: Option<String>,
    racy: bool,
}

/// What observing a location's disk found, before anything is written to the index.
struct Observed {
    report: ScanReport,
    /// Paths that are new or whose stat changed, with their content read.
    fresh: Vec<Fresh>,
    /// Indexed live paths that are gone from disk: they become tombstones.
    gone: Vec<RelPath>,
    /// Indexed paths still on disk but no longer walked (ignored now): they leave the
    /// index without counting as deletions.
    forget: Vec<RelPath>,
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
    let rows = index.stat_rows(loc.id())?;
    let observed = observe(loc, &rows, rules, progress)?;
    commit(index, loc, rows.is_empty(), observed)
}

/// Scans both locations of a conduit, walking and hashing them at the same time.
pub fn scan_pair(
    index: &mut Index,
    locs: [(&Location, &LocationLock); 2],
    rules: IndexRules,
    progress: &dyn Progress,
) -> Result<[ScanReport; 2]> {
    let [(la, _), (lb, _)] = locs;
    let (rows_a, rows_b) = (index.stat_rows(la.id())?, index.stat_rows(lb.id())?);
    let (obs_a, obs_b) = std::thread::scope(|sc| {
        let a = sc.spawn(|| observe(la, &rows_a, rules, progress));
        let obs_b = observe(lb, &rows_b, rules, progress);
        let obs_a = a
            .join()
            .unwrap_or_else(|_| Err(crate::error::Error::Other("scan thread panicked".into())));
        (obs_a, obs_b)
    });
    let (obs_a, obs_b) = (obs_a?, obs_b?);
    Ok([
        commit(index, la, rows_a.is_empty(), obs_a)?,
        commit(index, lb, rows_b.is_empty(), obs_b)?,
    ])
}

/// Above this many changed paths, the old entries are loaded in one query instead of
/// one look-up each.
const BULK_LOAD_THRESHOLD: usize = 2000;

/// Writes an observation to the index. Every changed row gets a fresh sequence number;
/// a content change also bumps the version vector with it.
fn commit(
    index: &mut Index,
    loc: &Location,
    index_was_empty: bool,
    obs: Observed,
) -> Result<ScanReport> {
    let Observed {
        mut report,
        fresh,
        gone,
        forget,
    } = obs;
    let bulk: Option<HashMap<RelPath, Entry>> =
        if !index_was_empty && fresh.len() + gone.len() > BULK_LOAD_THRESHOLD {
            Some(
                index
                    .entries(loc.id())?
                    .into_iter()
                    .map(|e| (e.path.clone(), e))
                    .collect(),
            )
        } else {
            None
        };
    let old_entry = |index: &Index, p: &RelPath| -> Result<Option<Entry>> {
        if index_was_empty {
            return Ok(None);
        }
        match &bulk {
            Some(m) => Ok(m.get(p).cloned()),
            None => index.entry(loc.id(), p),
        }
    };
    // (entry, whether its content changed)
    let mut updates: Vec<(Entry, bool)> = Vec::with_capacity(fresh.len() + gone.len());
    for f in fresh {
        let mut e = Entry {
            path: f.rel,
            kind: f.kind,
            stat: f.stat,
            hash: f.hash,
            chunks: f.chunks,
            link_target: f.link_target,
            version: Default::default(),
            deleted: false,
            sequence: 0,
            racy: f.racy,
        };
        let prev = old_entry(index, &e.path)?;
        let changed = match &prev {
            Some(p) if p.same_content(&e) => {
                e.version = p.version.clone();
                e.sequence = p.sequence;
                if *p == e {
                    continue;
                }
                false
            }
            p => {
                e.version = p.as_ref().map(|p| p.version.clone()).unwrap_or_default();
                true
            }
        };
        updates.push((e, changed));
    }
    for p in gone {
        if let Some(mut t) = old_entry(index, &p)? {
            t.deleted = true;
            updates.push((t, true));
        }
    }
    let n = updates.len() as u64;
    if n > 0 {
        let first = index.reserve_sequence(loc.id(), n)?;
        for (seq, (e, changed)) in (first..).zip(updates.iter_mut()) {
            e.sequence = seq;
            if *changed {
                e.version = e.version.bumped(loc.row.replica_id, seq);
            }
        }
    }
    report.deleted = updates.iter().filter(|(e, _)| e.deleted).count() as u64;
    report.changed = updates.iter().filter(|(e, c)| *c && !e.deleted).count() as u64;
    report.forgotten = forget.len() as u64;
    let entries: Vec<Entry> = updates.into_iter().map(|(e, _)| e).collect();
    index.put_entries(loc.id(), &entries)?;
    index.forget_entries(loc.id(), &forget)?;
    Ok(report)
}

/// Walks and hashes a location and compares it with its index rows (sorted by path).
/// Touches the disk only, never the index, so two locations can be observed at once.
fn observe(
    loc: &Location,
    rows: &[StatRow],
    rules: IndexRules,
    progress: &dyn Progress,
) -> Result<Observed> {
    loc.verify_marker()?;
    let mut report = ScanReport::default();
    let scan_start_ns = now_ns();
    let WalkOut {
        mut seen,
        unreadable,
        temp_files,
        errors,
    } = walk(&loc.root, rules);
    report.errors.extend(errors);
    // Temp files of a run that died before installing them (the caller holds the
    // location lock, so no live run owns them).
    for p in temp_files {
        if let Err(e) = std::fs::remove_file(&p) {
            report.errors.push(format!(
                "{}: cannot remove stale temp file: {e}",
                p.display()
            ));
        }
    }
    report.entries = seen.len() as u64;
    seen.sort_unstable_by(|x, y| x.rel.cmp(&y.rel));

    // Merge-join the walk with the index rows, both sorted by path.
    let mut candidates: Vec<&Seen> = Vec::new();
    let mut missing: Vec<&RelPath> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < seen.len() || j < rows.len() {
        let order = match (seen.get(i), rows.get(j)) {
            (Some(s), Some(r)) => s.rel.cmp(&r.path),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                candidates.push(&seen[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                if !rows[j].deleted {
                    missing.push(&rows[j].path);
                }
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (s, r) = (&seen[i], &rows[j]);
                if r.deleted || r.kind != s.kind || r.racy || !stat_unchanged(r, s) {
                    candidates.push(s);
                }
                i += 1;
                j += 1;
            }
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
    let digests = hash_all(&loc.root, &to_hash, progress);
    let mut digest_of: HashMap<&RelPath, std::result::Result<(Digest, StatInfo), String>> =
        to_hash.iter().map(|s| &s.rel).zip(digests).collect();

    let mut fresh = Vec::with_capacity(candidates.len());
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
            EntryKind::Symlink => match std::fs::read_link(s.rel.under(&loc.root)) {
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
                            s.rel.under(&loc.root).display()
                        ));
                        continue;
                    }
                },
                Err(e) => {
                    report.errors.push(format!(
                        "{}: cannot read symlink: {e}",
                        s.rel.under(&loc.root).display()
                    ));
                    continue;
                }
            },
            EntryKind::Dir => (None, Vec::new(), None, s.stat, false),
        };
        fresh.push(Fresh {
            rel: s.rel.clone(),
            kind: s.kind,
            stat,
            hash,
            chunks,
            link_target,
            racy,
        });
    }

    // Indexed live paths the walk did not see: deleted, ignored now, or unreadable.
    let mut gone = Vec::new();
    let mut forget = Vec::new();
    for path in missing {
        if unreadable
            .iter()
            .any(|u| path == u || path.is_strictly_under(u))
        {
            continue; // could not look: keep what we knew
        }
        match std::fs::symlink_metadata(path.under(&loc.root)) {
            Err(err) if crate::fs_ops::is_absent(&err) => gone.push(path.clone()),
            Ok(_) => forget.push(path.clone()),
            Err(err) => report
                .errors
                .push(format!("{}: {err}", path.under(&loc.root).display())),
        }
    }
    Ok(Observed {
        report,
        fresh,
        gone,
        forget,
    })
}

fn stat_unchanged(r: &StatRow, s: &Seen) -> bool {
    match s.kind {
        // A directory's own content is its mode; its mtime moves with its children.
        EntryKind::Dir => r.stat.mode == s.stat.mode,
        _ => r.stat == s.stat,
    }
}

/// Hashes files on all cores; each result carries the stat taken after reading.
fn hash_all(
    root: &Path,
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
                    let abs = s.rel.under(root);
                    let r = digest_file(&abs, &mut buf)
                        .map_err(|e| format!("{e}; kept its previous state"))
                        .and_then(|d| {
                            std::fs::symlink_metadata(&abs)
                                .map(|m| (d, StatInfo::from_metadata(&m)))
                                .map_err(|e| format!("{}: {e}", abs.display()))
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
