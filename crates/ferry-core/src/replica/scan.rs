//! Scan: walk a location, compare each path's stat with the index, hash only what
//! changed, and record changes (with version-vector bumps) and deletions.
//!
//! A scan covers a [`Scope`]: the whole location, or only some paths and their
//! subtrees (the daemon's targeted rescans of what file-system events touched).
//! Either way the same join and absorb code compares and records, so a targeted scan
//! judges each path exactly as a full scan would.
//!
//! One pass, streamed: the walk hands out paths in path order (a whole location's
//! through `ordered_walk`, reading directories ahead on other threads), the join
//! merges them with the index's stat rows (read a page at a time), and what is new or
//! changed is read and recorded a batch at a time. So a scan of millions of paths
//! holds a window of the tree, a page of rows and a batch, never the whole tree.
//! What is gone is settled at the end, once every path has been seen.

use crate::error::Result;
use crate::index::{Index, StatRow};
use crate::model::chunk::{digest_file, Digest, Hash};
use crate::model::entry::{Entry, EntryKind, StatInfo};
use crate::model::rel_path::{encode, escape_os, RelPath};
use crate::parallel::{parallel_map, Scratch};
use crate::problem::{Problem, ProblemKind};
use crate::progress::Progress;
use crate::replica::beneath::RootDir;
use crate::replica::ignore_rules::{IndexRules, IGNORE_FILE};
use crate::replica::location::{Location, LocationLock};
use crate::replica::ordered_walk::{walk_in_order, OrderedWalk};
use crate::replica::overlap::Fence;
use crate::replica::walk::{walk_paths, Seen, WalkOut};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// An mtime this close to the scan (or later) is not trusted: the file may still be
/// changing within the timestamp's granularity, so the next scan hashes it again.
const RACY_WINDOW_NS: i64 = 2_000_000_000;

/// A file's digest and its stat after reading, or why it could not be read.
type HashResult = std::result::Result<(Digest, StatInfo), Problem>;

/// Changed paths read and written to the index together (a few in the unit tests, so
/// their scans run many batches and pages).
const ABSORB_BATCH: usize = if cfg!(test) { 7 } else { 16 * 1024 };

/// What a scan found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ScanReport {
    /// Paths walked.
    pub entries: u64,
    /// Files read and hashed.
    pub hashed_files: u64,
    /// Bytes read and hashed.
    pub hashed_bytes: u64,
    /// Entries whose content or metadata changed.
    pub changed: u64,
    /// Paths gone since the last scan (now tombstones).
    pub deleted: u64,
    /// Paths no longer indexed (newly ignored); forgotten, not deleted.
    pub forgotten: u64,
    /// Per-path problems; the rest of the scan went on.
    #[serde(serialize_with = "crate::problem::as_sentences")]
    pub errors: Vec<Problem>,
    /// Paths left out on purpose and said so (fifos, sockets, devices).
    pub notes: Vec<String>,
}

/// Which paths of a location a scan looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything.
    All,
    /// Only these paths and, for directories, their subtrees; no path lies below
    /// another. Build with [`Scope::paths`].
    Paths(Vec<RelPath>),
}

impl Scope {
    /// A scope of the given paths: sorted, deduplicated, and with paths below another
    /// one dropped (scanning a directory covers its subtree). A touched `.ferryignore`
    /// changes which paths are indexed anywhere below it, so it widens to `All`.
    pub fn paths(paths: &[RelPath]) -> Scope {
        if paths.iter().any(|p| p.file_name() == IGNORE_FILE) {
            return Scope::All;
        }
        let mut sorted: Vec<RelPath> = paths.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut out: Vec<RelPath> = Vec::with_capacity(sorted.len());
        for p in sorted {
            // Sorted order puts an ancestor before its descendants, but not always
            // directly before (`a`, `a-b`, `a/c`): check every kept ancestor's name.
            if !p
                .ancestors()
                .any(|a| out.binary_search_by(|k| k.as_str().cmp(a)).is_ok())
            {
                out.push(p);
            }
        }
        Scope::Paths(out)
    }
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
    scan_scoped(index, loc, rules, &Scope::All, progress)
}

/// Scans only `paths` of `loc` (and the subtrees of those that are directories) and
/// brings their index entries up to date; every other entry is left alone. A touched
/// `.ferryignore` makes it a full scan. The caller holds the location's lock.
pub fn scan_paths(
    index: &mut Index,
    loc: &Location,
    _held: &LocationLock,
    rules: IndexRules,
    paths: &[RelPath],
    progress: &dyn Progress,
) -> Result<ScanReport> {
    scan_scoped(index, loc, rules, &Scope::paths(paths), progress)
}

/// Scans `scope` of one location (a conduit whose other side is another device's).
/// The caller holds the location's lock.
pub fn scan_one(
    index: &mut Index,
    loc: &Location,
    _held: &LocationLock,
    rules: IndexRules,
    scope: &Scope,
    progress: &dyn Progress,
) -> Result<ScanReport> {
    scan_scoped(index, loc, rules, scope, progress)
}

fn scan_scoped(
    index: &mut Index,
    loc: &Location,
    rules: IndexRules,
    scope: &Scope,
    progress: &dyn Progress,
) -> Result<ScanReport> {
    let fence = Fence::around(&[&loc.root])?;
    let (root, started) = prepare(loc)?;
    with_walk(&root, rules, scope, &fence, |walk| {
        refuse_fenced(walk, &fence)?;
        scan_walked(index, loc, scope, walk, &fence, started, progress)
    })
}

/// Stat rows a whole-location scan reads at once.
const ROW_PAGE: usize = if cfg!(test) { 5 } else { 20_000 };

/// The index rows a scan of `scope` compares the disk with, in path order: a targeted
/// scope's loaded at once (they are few), a whole location's a page at a time, so a
/// scan does not hold every row of a large tree.
struct ScopeRows {
    location: i64,
    /// Rows read and not taken yet.
    buf: std::collections::VecDeque<StatRow>,
    /// The last path read, where the next page starts.
    after: Option<RelPath>,
    /// Every row is read.
    exhausted: bool,
    page: usize,
}

impl ScopeRows {
    fn new(index: &Index, location: i64, scope: &Scope) -> Result<ScopeRows> {
        let mut rows = ScopeRows {
            location,
            buf: Default::default(),
            after: None,
            exhausted: false,
            page: ROW_PAGE,
        };
        if let Scope::Paths(paths) = scope {
            let mut loaded = Vec::new();
            for p in paths {
                loaded.extend(index.stat_rows_under(location, p)?);
            }
            // Subtrees of neighbours interleave in byte order (`a`, `a-b`, `a/c`).
            loaded.sort_unstable_by(|x, y| x.path.cmp(&y.path));
            rows.buf = loaded.into();
            rows.exhausted = true;
        }
        Ok(rows)
    }

    /// Whether the scope has no row at all (a first scan).
    fn is_empty(&mut self, index: &Index) -> Result<bool> {
        Ok(self.next_if(index, |_| false)?.is_none() && self.buf.is_empty())
    }

    /// The next row, if `pred` accepts it.
    fn next_if(
        &mut self,
        index: &Index,
        pred: impl FnOnce(&StatRow) -> bool,
    ) -> Result<Option<StatRow>> {
        if self.buf.is_empty() && !self.exhausted {
            let page = index.stat_rows_page(self.location, self.after.as_ref(), self.page)?;
            self.exhausted = page.len() < self.page;
            if let Some(last) = page.last() {
                self.after = Some(last.path.clone());
            }
            self.buf.extend(page);
        }
        match self.buf.front() {
            Some(r) if pred(r) => Ok(self.buf.pop_front()),
            _ => Ok(None),
        }
    }
}

/// Scans both locations of a conduit: while one is compared and recorded, the other's
/// walk reads ahead.
pub fn scan_pair(
    index: &mut Index,
    locs: [(&Location, &LocationLock); 2],
    rules: IndexRules,
    progress: &dyn Progress,
) -> Result<[ScanReport; 2]> {
    scan_pair_scoped(index, locs, rules, [&Scope::All, &Scope::All], progress)
}

/// Scans `scopes[i]` of each location of a conduit, like [`scan_pair`].
pub fn scan_pair_scoped(
    index: &mut Index,
    locs: [(&Location, &LocationLock); 2],
    rules: IndexRules,
    scopes: [&Scope; 2],
    progress: &dyn Progress,
) -> Result<[ScanReport; 2]> {
    let [(la, _), (lb, _)] = locs;
    let [sa, sb] = scopes;
    // Neither walk may enter either root, nor an ancestor of one (through a mount).
    let fence = Fence::around(&[&la.root, &lb.root])?;
    let (root_a, started_a) = prepare(la)?;
    let (root_b, started_b) = prepare(lb)?;
    with_walk(&root_a, rules, sa, &fence, |wa| {
        with_walk(&root_b, rules, sb, &fence, |wb| {
            // A targeted walk is done already: its fence hits stop both before either
            // records anything.
            refuse_fenced(wa, &fence)?;
            refuse_fenced(wb, &fence)?;
            Ok([
                scan_walked(index, la, sa, wa, &fence, started_a, progress)?,
                scan_walked(index, lb, sb, wb, &fence, started_b, progress)?,
            ])
        })
    })
}

/// Checks the marker and opens the root; the time it returns is when the scan started
/// (for the racy-timestamp rule).
fn prepare(loc: &Location) -> Result<(std::sync::Arc<RootDir>, i64)> {
    loc.verify_marker()?;
    let started = now_ns();
    Ok((loc.dir()?, started))
}

/// A walk's paths in path order, and what else it has found so far.
enum Walking<'w, 'a, 'b> {
    /// A targeted walk, read whole and sorted (its paths are few).
    Listed(std::vec::IntoIter<Seen>, WalkOut),
    /// A whole location's, read as it is taken (see `ordered_walk`).
    Ordered(&'w mut OrderedWalk<'a, 'b>),
}

impl Walking<'_, '_, '_> {
    fn next_seen(&mut self) -> Option<Seen> {
        match self {
            Walking::Listed(seen, _) => seen.next(),
            Walking::Ordered(w) => w.next_seen(),
        }
    }

    fn side(&mut self) -> &mut WalkOut {
        match self {
            Walking::Listed(_, out) => out,
            Walking::Ordered(w) => w.side(),
        }
    }
}

/// Runs `f` over the walk of `scope` of `root`.
fn with_walk<R>(
    root: &RootDir,
    rules: IndexRules,
    scope: &Scope,
    fence: &Fence,
    f: impl FnOnce(&mut Walking<'_, '_, '_>) -> R,
) -> R {
    match scope {
        Scope::All => walk_in_order(root, rules, fence, |w| f(&mut Walking::Ordered(w))),
        Scope::Paths(paths) => {
            let mut out = walk_paths(root, rules, paths, fence);
            let mut seen = std::mem::take(&mut out.seen);
            seen.sort_unstable_by(|x, y| x.rel.cmp(&y.rel));
            f(&mut Walking::Listed(seen.into_iter(), out))
        }
    }
}

/// A directory inside the fence (a root of the run or an ancestor of one, mounted
/// inside the walked root) stops the scan with an error. A walk never enters one, so
/// what it recorded before meeting it is true of its own disk.
fn refuse_fenced(walk: &mut Walking, fence: &Fence) -> Result<()> {
    match walk.side().fenced.first() {
        Some((at, is)) => Err(fence.refusal(at, is)),
        None => Ok(()),
    }
}

/// Keeps this location's leftover temp files in its version store (one may hold the
/// old content of a file whose replacement a crash interrupted, found by its hash
/// under the path the index still knows: so a directory's leftovers are kept before
/// any of its paths is recorded). Only this location's own count (the caller holds
/// its lock, so no live run owns them); a dry run leaves them. Failures are noted.
/// `found` is drained.
fn keep_leftovers(
    index: &Index,
    loc: &Location,
    found: &mut Vec<PathBuf>,
    report: &mut ScanReport,
) {
    let tag = loc.temp_tag();
    for p in found.drain(..) {
        let own = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(crate::replica::ignore_rules::temp_tag_of)
            == Some(tag);
        if loc.is_dry_run() || !own {
            continue;
        }
        let kept = p
            .strip_prefix(&loc.root)
            .map_err(|_| crate::error::Error::Other("outside the root".into()))
            .and_then(RelPath::from_path)
            .and_then(|rel| crate::replica::version_store::keep_leftover(index, loc, &rel));
        match kept {
            Ok(Some(note)) => report.notes.push(note),
            Ok(None) => {}
            Err(e) => {
                let doing = format!("{}: cannot keep leftover temp file", escape_os(&p));
                report
                    .errors
                    .push(Problem::from_error(None, None, &doing, &e))
            }
        }
    }
}

/// Merge-joins a walk with the index rows of the same scope (both in path order) and
/// records what is new or changed as it goes, a batch at a time, so a scan of millions
/// of paths holds a batch, not the tree. Then what is gone becomes tombstones and what
/// is no longer walked (ignored now) is forgotten.
fn scan_walked(
    index: &mut Index,
    loc: &Location,
    scope: &Scope,
    walk: &mut Walking,
    fence: &Fence,
    scan_start_ns: i64,
    progress: &dyn Progress,
) -> Result<ScanReport> {
    let mut rows = ScopeRows::new(index, loc.id(), scope)?;
    let index_was_empty = rows.is_empty(index)?;
    let mut report = ScanReport::default();
    if !loc.is_dry_run() {
        let (notes, problems) = crate::replica::version_store::sweep_staging(index, loc);
        report.notes.extend(notes);
        report.errors.extend(problems);
    }
    // The phase's total grows as the walk finds work (`Progress::more_work`).
    progress.phase(&format!("scan {}", loc.root.display()), Some(0));
    let absorbing = Absorbing {
        loc,
        index_was_empty,
        scan_start_ns,
        progress,
    };
    let mut batch: Vec<Seen> = Vec::new();
    let mut missing = Vec::new();
    loop {
        let next = walk.next_seen();
        refuse_fenced(walk, fence)?;
        keep_leftovers(index, loc, &mut walk.side().temp_files, &mut report);
        let Some(s) = next else { break };
        report.entries += 1;
        // Index rows before this path were not seen on disk.
        // A dehydrated path is absent on disk by design (its content is on the
        // secondary replica): never missing, so never a deletion (safety rule 7).
        while let Some(r) = rows.next_if(index, |r| r.path < s.rel)? {
            if !r.deleted && !r.dehydrated {
                missing.push(r.path);
            }
        }
        match rows.next_if(index, |r| r.path == s.rel)? {
            Some(r)
                if !r.deleted
                    && !r.dehydrated
                    && r.kind == s.kind
                    && !r.racy
                    && stat_unchanged(&r, &s) => {}
            // A file at a dehydrated path is read: the same content hydrates the entry
            // (same version), other content is an edit.
            _ => batch.push(s),
        }
        if batch.len() >= ABSORB_BATCH {
            absorbing.batch(index, std::mem::take(&mut batch), &mut report)?;
        }
    }
    while let Some(r) = rows.next_if(index, |_| true)? {
        if !r.deleted && !r.dehydrated {
            missing.push(r.path);
        }
    }
    absorbing.batch(index, batch, &mut report)?;
    let side = walk.side();
    report.errors.append(&mut side.errors);
    report.notes.append(&mut side.notes);
    let (gone, forget) = sort_missing(loc, missing, &side.unreadable, &mut report);
    let mut tombstones = Vec::with_capacity(gone.len());
    for p in gone {
        if let Some(mut t) = index.entry(loc.id(), &p)? {
            t.state.presence = crate::model::entry::Presence::Tombstone;
            tombstones.push((t, true));
        }
    }
    record(index, loc, tombstones, &mut report)?;
    report.forgotten = forget.len() as u64;
    index.forget_entries(loc.id(), &forget)?;
    Ok(report)
}

/// Indexed live paths the walk did not see: deleted (`gone`), ignored now or behind a
/// symlink (`forget`), or below an unreadable path (kept: we could not look).
fn sort_missing(
    loc: &Location,
    missing: Vec<RelPath>,
    unreadable: &[RelPath],
    report: &mut ScanReport,
) -> (Vec<RelPath>, Vec<RelPath>) {
    let mut gone = Vec::new();
    let mut forget = Vec::new();
    for path in missing {
        if unreadable
            .iter()
            .any(|u| &path == u || path.is_strictly_under(u))
        {
            continue; // could not look: keep what we knew
        }
        // Looked up beneath the root. A parent that is gone means the path is gone; one
        // that is now a symlink or a file is not taken for deletions (as when a folder
        // is moved elsewhere and a link left in its place): forgotten, not tombstoned.
        let found = loc.dir().and_then(|r| r.parent(&path));
        match found.and_then(|(dir, name)| dir.lstat(&name)) {
            Ok(None) => gone.push(path),
            Ok(Some(_)) => forget.push(path),
            Err(crate::error::Error::Io { source, .. })
                if crate::replica::fs_ops::is_absent(&source) =>
            {
                gone.push(path)
            }
            Err(crate::error::Error::Refused(_)) => forget.push(path),
            Err(err) => report
                .errors
                .push(Problem::from_error(None, None, "", &err)),
        }
    }
    (gone, forget)
}

fn stat_unchanged(r: &StatRow, s: &Seen) -> bool {
    match s.kind {
        // A directory's own content is its mode; its mtime moves with its children.
        EntryKind::Dir => r.stat.mode == s.stat.mode,
        _ => r.stat == s.stat,
    }
}

/// What reading and recording a batch of changed paths needs.
struct Absorbing<'a> {
    loc: &'a Location,
    index_was_empty: bool,
    scan_start_ns: i64,
    progress: &'a dyn Progress,
}

impl Absorbing<'_> {
    /// Reads a batch of new or changed paths (in path order) and records it: a content
    /// change gets a fresh sequence number and bumps the version vector with it.
    fn batch(&self, index: &mut Index, batch: Vec<Seen>, report: &mut ScanReport) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // Rows this batch writes lie at or before its last path. The join read the
        // rows up to that path already, and `next_if` reads the next page before it
        // compares, so the page cursor is at or past it: a later page never offers a
        // row written here as one the walk did not see (test below).
        let (progress, loc) = (self.progress, self.loc);
        if progress.cancelled() {
            return Err(crate::error::Error::Interrupted);
        }
        let files: Vec<&Seen> = batch.iter().filter(|s| s.kind == EntryKind::File).collect();
        progress.more_work(files.len() as u64, files.iter().map(|s| s.stat.size).sum());
        let digests = hash_all(&*loc.dir()?, &files, progress);
        if progress.cancelled() {
            // The batch is left for the next scan; earlier ones are recorded.
            return Err(crate::error::Error::Interrupted);
        }
        let mut digests = digests.into_iter();
        let mut updates = Vec::with_capacity(batch.len());
        for s in &batch {
            let digest = if s.kind == EntryKind::File {
                digests.next()
            } else {
                None
            };
            let Some(fresh) = read_fresh(loc, s, digest, self.scan_start_ns, report) else {
                continue;
            };
            let prev = if self.index_was_empty {
                None
            } else {
                index.entry(loc.id(), &fresh.path)?
            };
            if let Some(u) = settle(fresh, prev) {
                updates.push(u);
            }
        }
        record(index, loc, updates, report)
    }
}

/// The entry a changed path has now, from its walk stat and what reading it found.
fn read_fresh(
    loc: &Location,
    s: &Seen,
    digest: Option<HashResult>,
    scan_start_ns: i64,
    report: &mut ScanReport,
) -> Option<Entry> {
    let (hash, chunks, link_target, stat, racy) = match s.kind {
        EntryKind::File => match digest? {
            Ok((d, after)) => {
                report.hashed_files += 1;
                report.hashed_bytes += d.size;
                let moved = after != s.stat;
                let racy = moved || after.mtime_ns > scan_start_ns - RACY_WINDOW_NS;
                let stat = StatInfo {
                    size: d.size,
                    ..after
                };
                (Some(d.hash), d.chunks, None, stat, racy)
            }
            Err(msg) => {
                report.errors.push(msg);
                return None;
            }
        },
        EntryKind::Symlink => {
            let link = loc
                .dir()
                .and_then(|r| r.parent(&s.rel))
                .and_then(|(dir, name)| dir.read_link(&name));
            match link {
                // The target's bytes are its content; it is stored as their key
                // (`rel_path::encode`: itself when valid UTF-8).
                Ok(t) => {
                    let bytes = t.as_os_str().as_bytes();
                    (
                        Some(Hash::of(bytes)),
                        Vec::new(),
                        Some(encode(bytes).into_owned()),
                        s.stat,
                        false,
                    )
                }
                Err(e) => {
                    let kind = ProblemKind::of(&e);
                    let detail = format!("{e}; kept its previous state");
                    report.errors.push(Problem::described(None, kind, detail));
                    return None;
                }
            }
        }
        EntryKind::Dir => (None, Vec::new(), None, s.stat, false),
    };
    let mut e = Entry::at(s.rel.clone(), s.kind, stat);
    e.state.hash = hash;
    e.state.chunks = chunks;
    e.state.link_target = link_target;
    e.cache.racy = racy;
    Some(e)
}

/// Compares a fresh entry with the indexed one: same content keeps the version (only
/// the stat is refreshed), new content continues the old history with a bump.
/// Returns the row to write and whether its content changed, or `None` if nothing did.
fn settle(mut e: Entry, prev: Option<Entry>) -> Option<(Entry, bool)> {
    match prev {
        Some(p) if p.same_content(&e) => {
            e.state.version = p.state.version.clone();
            e.cache.sequence = p.cache.sequence;
            (p != e).then_some((e, false))
        }
        p => {
            e.state.version = p.map(|p| p.state.version).unwrap_or_default();
            Some((e, true))
        }
    }
}

/// Writes rows; changed content gets a fresh sequence number and a version bump.
/// A refreshed stat alone (same content, e.g. a racy timestamp settled or a file
/// touched) keeps its sequence number: nothing a sync decides on moved, so the
/// conduit's convergence point still holds.
fn record(
    index: &mut Index,
    loc: &Location,
    updates: Vec<(Entry, bool)>,
    report: &mut ScanReport,
) -> Result<()> {
    if updates.is_empty() {
        return Ok(());
    }
    report.deleted += updates.iter().filter(|(e, _)| e.is_tombstone()).count() as u64;
    report.changed += updates
        .iter()
        .filter(|(e, c)| *c && !e.is_tombstone())
        .count() as u64;
    // A changed content gets a fresh sequence number and a version bump with it.
    let (mut entries, fresh): (Vec<Entry>, Vec<bool>) = updates.into_iter().unzip();
    let replica = loc.row.replica_id;
    index.put_entries_numbered(
        loc.id(),
        &mut entries,
        |i| fresh[i],
        |e, seq| {
            e.cache.sequence = seq;
            e.state.version = e.state.version.bumped(replica, seq);
        },
    )
}

/// Hashes files on all cores; each result carries the stat of the open file taken
/// after reading it, to notice a file that changed while it was read.
fn hash_all(root: &RootDir, files: &[&Seen], progress: &dyn Progress) -> Vec<HashResult> {
    parallel_map(files, 0, |s, scratch| {
        if progress.cancelled() {
            // The caller drops the batch.
            return Err(Problem::described(
                None,
                ProblemKind::Other,
                "stopped".into(),
            ));
        }
        let r = hash_one(root, &s.rel, scratch);
        progress.bytes(s.stat.size);
        progress.item();
        r
    })
    .into_iter()
    .map(|r| {
        r.unwrap_or_else(|| {
            let why = "hashing did not run".to_string();
            Err(Problem::described(None, ProblemKind::Other, why))
        })
    })
    .collect()
}

/// Reads one file through the root's handle (never through a symlink); its folder is
/// opened once for the run of neighbouring files the worker has.
fn hash_one(root: &RootDir, rel: &RelPath, scratch: &mut Scratch) -> HashResult {
    let abs = rel.under(root.path());
    let fail = |what: &str, kind: ProblemKind, e: &dyn std::fmt::Display| {
        let detail = format!(
            "{}: cannot {what}: {e}; kept its previous state",
            escape_os(&abs)
        );
        Problem::described(None, kind, detail)
    };
    let f = root
        .parent_in(rel, &mut scratch.read_dir)
        .and_then(|(dir, name)| dir.open_file(&name))
        .map_err(|e| fail("open", ProblemKind::of(&e), &e))?;
    let d =
        digest_file(&f, &mut scratch.buf).map_err(|e| fail("read", ProblemKind::of_io(&e), &e))?;
    let m = f
        .metadata()
        .map_err(|e| fail("stat", ProblemKind::of_io(&e), &e))?;
    Ok((d, StatInfo::from_metadata(&m)))
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::entry::{Entry, StatInfo};

    /// Every row of a location, taken through `ScopeRows` pages of `page` rows.
    fn all_rows(index: &Index, location: i64, page: usize) -> Vec<String> {
        let mut rows = ScopeRows::new(index, location, &Scope::All).unwrap();
        rows.page = page;
        let mut out = Vec::new();
        // Interleave refusals and takes, as the join does.
        while rows.next_if(index, |_| false).unwrap().is_none() {
            match rows.next_if(index, |_| true).unwrap() {
                Some(r) => out.push(r.path.as_str().to_string()),
                None => break,
            }
        }
        out
    }

    #[test]
    fn a_whole_location_is_read_in_pages_every_row_once_in_path_order() {
        let mut index = Index::open_in_memory().unwrap();
        let loc = index
            .insert_location("u", std::path::Path::new("/x"), 1)
            .unwrap()
            .id;
        let other = index
            .insert_location("v", std::path::Path::new("/y"), 2)
            .unwrap()
            .id;
        let names = ["a", "a-b", "a/c", "a/c/d", "b", "c\u{e9}", "z"];
        let entries: Vec<Entry> = names
            .iter()
            .map(|n| {
                Entry::at(
                    RelPath::new(n).unwrap(),
                    EntryKind::File,
                    StatInfo::default(),
                )
            })
            .collect();
        index.put_entries(loc, &entries).unwrap();
        index.put_entries(other, &entries[..2]).unwrap();
        let expected: Vec<String> = (index.stat_rows(loc).unwrap().into_iter())
            .map(|r| r.path.as_str().to_string())
            .collect();
        assert_eq!(expected.len(), names.len());
        for page in 1..=8 {
            assert_eq!(all_rows(&index, loc, page), expected, "pages of {page}");
        }
        let empty = index
            .insert_location("w", std::path::Path::new("/z"), 3)
            .unwrap()
            .id;
        let mut rows = ScopeRows::new(&index, empty, &Scope::All).unwrap();
        assert!(rows.is_empty(&index).unwrap());
        let mut rows = ScopeRows::new(&index, loc, &Scope::All).unwrap();
        rows.page = 1;
        assert!(!rows.is_empty(&index).unwrap());
        assert_eq!(
            rows.next_if(&index, |_| true).unwrap().map(|r| r.path),
            Some(RelPath::new("a").unwrap())
        );
    }

    /// New paths between indexed ones, recorded in batches while the join pages
    /// through the rows: a row a batch has just written is never taken for an indexed
    /// path the walk did not see (it would be forgotten, or become a tombstone).
    #[test]
    fn rows_recorded_mid_scan_are_not_taken_for_missing_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("r");
        std::fs::create_dir(&root).unwrap();
        let mut index = Index::open_in_memory().unwrap();
        let loc = crate::replica::location::open_location(&mut index, &root, false).unwrap();
        let lock = loc.lock().unwrap();
        let scan = |index: &mut Index| {
            scan_location(
                index,
                &loc,
                &lock,
                IndexRules::default(),
                &crate::NoProgress,
            )
            .unwrap()
        };
        for i in 0..40 {
            std::fs::write(root.join(format!("f{i:02}")), "old").unwrap();
        }
        let first = scan(&mut index);
        assert_eq!((first.changed, first.deleted, first.forgotten), (40, 0, 0));
        // One new path after each indexed one (pages of 5 rows, batches of 7 paths).
        for i in 0..40 {
            std::fs::write(root.join(format!("f{i:02}a")), "new").unwrap();
        }
        let second = scan(&mut index);
        assert_eq!(
            (second.changed, second.deleted, second.forgotten),
            (40, 0, 0),
            "{second:?}"
        );
        let live = index.entries(loc.id()).unwrap();
        assert_eq!(live.iter().filter(|e| !e.is_tombstone()).count(), 80);
        // And a no-op finds nothing.
        let third = scan(&mut index);
        assert_eq!((third.changed, third.deleted, third.forgotten), (0, 0, 0));
    }
}
