//! Files on demand (selective mode): side A of a selective conduit is the hot, local
//! side, side B the secondary that keeps everything of A. A file of A can be
//! *dehydrated* (its content removed from A, its entry kept with presence
//! `Dehydrated`) and *hydrated* again (its content copied back from B).
//!
//! The safety argument:
//! - **Dehydration** needs a fully synced file: A's entry and B's entry have the same
//!   content, A's disk still matches A's entry (no unscanned edit), B's file re-read
//!   from disk has the indexed BLAKE3, and no process has A's file open. The index
//!   takes the dehydrated state *before* the file goes, so a crash in between leaves a
//!   file at a dehydrated path, which the next scan takes back as live (same content,
//!   same version): never a deletion. The file is then renamed to a temp name, checked
//!   to be the indexed one, and unlinked; a save that landed meanwhile is put back and
//!   the entry made live again.
//! - **Hydration** copies B's file into a verified temp file beside the path, makes it
//!   durable, and renames it into place without replacing anything (the path of a
//!   dehydrated file is empty): the path is empty or holds the whole content at every
//!   instant. A crash leaves a staged temp file, which the next scan removes.
//! - **Eviction** dehydrates the least recently accessed files (the later of the
//!   file's atime and the accesses the mount recorded) that are not pinned, not open
//!   and fully synced, until A is under its quota and above its free-space floor.
//! - The reconciler never takes a dehydrated entry for a deletion or an edit
//!   (`plan/reconcile.rs`), the scan never takes its absence for a deletion
//!   (`replica/scan.rs`), and no copy reads content from it.

use crate::error::{Error, Result};
use crate::fault::FaultPoint;
use crate::index::{ConduitRow, Index, SelectiveSettings};
use crate::model::entry::{Entry, EntryKind, Presence};
use crate::model::rel_path::RelPath;
use crate::parallel::Scratch;
use crate::plan::SyncMode;
use crate::replica::disk::{self, Source};
use crate::replica::fs_ops::{blake3_of, sync_filesystem};
use crate::replica::location::Location;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A selective conduit with both folders opened: A the hot side, B the secondary.
pub struct SelectivePair {
    /// The conduit.
    pub conduit: ConduitRow,
    /// The hot, local side.
    pub a: Location,
    /// The secondary side, which holds everything of A.
    pub b: Location,
}

impl SelectivePair {
    /// Opens the folders of selective conduit `conduit` (both markers checked).
    pub fn open(index: &Index, conduit: &ConduitRow) -> Result<SelectivePair> {
        if conduit.mode != SyncMode::Selective {
            return Err(Error::Refused(format!(
                "conduit {} is a {} conduit, not a selective one",
                conduit.id, conduit.mode
            )));
        }
        let a = Location::from_row(index.location(conduit.location_a)?);
        let b = Location::from_row(index.location(conduit.location_b)?);
        a.verify_marker()?;
        b.verify_marker()?;
        Ok(SelectivePair {
            conduit: conduit.clone(),
            a,
            b,
        })
    }

    /// The selective conduit whose hot side is `path` (`None`) or holds it (the path
    /// inside it; it need not exist).
    pub fn locate_or_root(index: &Index, path: &Path) -> Result<(SelectivePair, Option<RelPath>)> {
        if let Ok(root) = std::fs::canonicalize(path) {
            for c in index.conduits()? {
                if c.mode == SyncMode::Selective && index.location(c.location_a)?.root == root {
                    return Ok((SelectivePair::open(index, &c)?, None));
                }
            }
        }
        let (pair, rel) = SelectivePair::locate(index, path)?;
        Ok((pair, Some(rel)))
    }

    /// The selective conduit whose hot side holds `path` (which need not exist), and
    /// the path inside it.
    pub fn locate(index: &Index, path: &Path) -> Result<(SelectivePair, RelPath)> {
        let (loc, rel) = crate::restore::locate(index, path)?;
        let conduit = index
            .conduits()?
            .into_iter()
            .find(|c| c.location_a == loc.id && c.mode == SyncMode::Selective)
            .ok_or_else(|| {
                Error::Refused(format!(
                    "{} is not the local side of a selective conduit \
                     (`ferry conduit add LOCAL SECONDARY --mode selective`)",
                    loc.root.display()
                ))
            })?;
        Ok((SelectivePair::open(index, &conduit)?, rel))
    }

    /// A's entry at `path`, if the path exists there.
    fn live_a(&self, index: &Index, path: &RelPath) -> Result<Entry> {
        match index.entry(self.a.id(), path)? {
            Some(e) if e.is_live() => Ok(e),
            _ => Err(Error::Refused(format!(
                "{} is not indexed in {} (sync first)",
                path,
                self.a.root.display()
            ))),
        }
    }
}

/// The state of one path of the hot side, as `ferry ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PathState {
    /// The path, relative to the hot side's root.
    pub path: String,
    /// `file`, `dir` or `symlink`.
    pub kind: EntryKind,
    /// Bytes of a file.
    pub size: u64,
    /// The content is on this disk (`false`: online-only, on the secondary).
    pub local: bool,
    /// Kept local whatever the quota (the path or a folder above it is pinned).
    pub pinned: bool,
    /// Not yet the same on both sides (a change waits for the next sync run), or being
    /// hydrated now.
    pub syncing: bool,
}

/// How the hot side of a selective conduit uses its disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Bytes of file content on the hot side's disk.
    pub bytes_local: u64,
    /// Bytes of dehydrated files (on the secondary only).
    pub bytes_online_only: u64,
    /// Files whose content is local.
    pub files_local: u64,
    /// Dehydrated files.
    pub files_online_only: u64,
    /// Pinned paths (a pinned folder counts once).
    pub pinned: u64,
    /// Hydrations under way (by a live process).
    pub hydrating: u64,
    /// The conduit's quota and free-space floor.
    pub settings: SelectiveSettings,
}

/// What a dehydration or hydration of several files did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct OnDemandReport {
    /// Files whose state changed.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Paths left as they were, and why.
    pub skipped: Vec<(String, String)>,
    /// Files left local because they are pinned (by themselves or a folder above).
    pub pinned: u64,
    /// The paths whose state changed.
    pub paths: Vec<String>,
}

/// Whether `path` or a folder above it is among `pins`.
pub fn is_pinned(pins: &[RelPath], path: &RelPath) -> bool {
    pins.iter().any(|p| p == path || path.is_strictly_under(p))
}

/// Entries of `loc` at `path` and under it (`path` the root when `None`).
fn entries_under(index: &Index, loc: i64, path: Option<&RelPath>) -> Result<Vec<Entry>> {
    let all = index.entries(loc)?;
    Ok(match path {
        None => all,
        Some(p) => all
            .into_iter()
            .filter(|e| &e.path == p || e.path.is_strictly_under(p))
            .collect(),
    })
}

/// Whether B holds A's entry's content at the same path (the file is fully synced).
fn synced(index: &Index, pair: &SelectivePair, ea: &Entry) -> Result<Option<Entry>> {
    Ok(index
        .entry(pair.b.id(), &ea.path)?
        .filter(|eb| eb.state.presence == Presence::Live && eb.same_content(ea)))
}

/// The (device, inode) of every file some process has open, from `/proc/*/fd`.
pub fn open_files() -> HashSet<(u64, u64)> {
    let mut out = HashSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let name = p.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            // Follows the descriptor's link to the open file itself.
            if let Ok(m) = std::fs::metadata(fd.path()) {
                if m.is_file() {
                    out.insert((m.dev(), m.ino()));
                }
            }
        }
    }
    out
}

/// Dehydrates the file `path` of the hot side (see the module text). `open` is the set
/// of open files ([`open_files`]). The caller holds A's lock.
pub fn dehydrate(
    index: &mut Index,
    pair: &SelectivePair,
    path: &RelPath,
    open: &HashSet<(u64, u64)>,
) -> Result<u64> {
    let ea = pair.live_a(index, path)?;
    if ea.state.kind != EntryKind::File {
        return Err(Error::Refused(format!("{path} is not a file")));
    }
    if ea.state.presence == Presence::Dehydrated {
        return Ok(0);
    }
    let Some(eb) = synced(index, pair, &ea)? else {
        return Err(Error::Refused(format!(
            "{path} is not fully synced to {} yet; kept local",
            pair.b.root.display()
        )));
    };
    // A's disk must still be the indexed file: an edit not scanned yet stays.
    disk::ensure_matches(&pair.a, path, Some(&ea))?;
    let (dir, name) = pair.a.dir()?.parent(path)?;
    if let Some(found) = dir.lstat(&name)? {
        if open.contains(&(found.dev, found.stat.inode)) {
            return Err(Error::Refused(format!("{path} is open; kept local")));
        }
    }
    // Re-read B's copy: it must be there, whole, with A's content.
    let (f, _) = disk::open_source(&pair.b, path, &eb.stat())?;
    let shown = path.under(&pair.b.root);
    let got = blake3_of(&f, &shown, &mut Vec::new())?;
    if Some(got) != ea.state.hash {
        return Err(Error::Refused(format!(
            "{}: the secondary's copy does not match its index (changed or damaged); kept local",
            shown.display()
        )));
    }
    let mut d = ea.clone();
    d.state.presence = Presence::Dehydrated;
    index.put_entries(pair.a.id(), std::slice::from_ref(&d))?;
    if let Err(e) = disk::remove_unkept(&pair.a, path, &ea) {
        index.put_entries(pair.a.id(), std::slice::from_ref(&ea))?;
        return Err(e);
    }
    Ok(ea.state.size)
}

/// What a hydration reports as it goes (the daemon's event stream shows these).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HydrationEvent {
    /// An online-only file is being brought back from the secondary.
    HydrationStarted {
        /// The path, relative to the hot side's root.
        path: String,
        /// Its bytes.
        bytes: u64,
    },
    /// It is local now, verified.
    HydrationFinished {
        /// The path.
        path: String,
        /// Its bytes.
        bytes: u64,
    },
    /// It could not be brought back; it stays online-only.
    HydrationFailed {
        /// The path.
        path: String,
        /// Why.
        error: String,
    },
}

/// [`hydrate`], reporting its start and its end to `on` when `path` was online-only
/// (nothing is reported for a file that is local already). The caller holds A's lock.
pub fn hydrate_reporting(
    index: &mut Index,
    pair: &SelectivePair,
    path: &RelPath,
    on: &dyn Fn(HydrationEvent),
) -> Result<u64> {
    let ea = pair.live_a(index, path)?;
    if ea.state.presence != Presence::Dehydrated {
        return Ok(0);
    }
    on(HydrationEvent::HydrationStarted {
        path: path.to_string(),
        bytes: ea.state.size,
    });
    let r = hydrate(index, pair, path);
    on(match &r {
        Ok(n) => HydrationEvent::HydrationFinished {
            path: path.to_string(),
            bytes: *n,
        },
        Err(e) => HydrationEvent::HydrationFailed {
            path: path.to_string(),
            error: e.to_string(),
        },
    });
    r
}

/// Hydrates the dehydrated file `path` of the hot side from the secondary (see the
/// module text). The caller holds A's lock. Returns its bytes (0 if it was local).
pub fn hydrate(index: &mut Index, pair: &SelectivePair, path: &RelPath) -> Result<u64> {
    let ea = pair.live_a(index, path)?;
    if ea.state.presence != Presence::Dehydrated {
        return Ok(0);
    }
    index.begin_hydration(pair.a.id(), path, std::process::id())?;
    let r = hydrate_from_b(index, pair, &ea);
    index.end_hydration(pair.a.id(), path)?;
    r.map(|_| ea.state.size)
}

fn hydrate_from_b(index: &mut Index, pair: &SelectivePair, ea: &Entry) -> Result<()> {
    let path = &ea.path;
    let hash = ea
        .state
        .hash
        .ok_or_else(|| Error::Corrupt(format!("{path}: dehydrated without a hash")))?;
    // B's file at the same path, else any file of B with this content.
    let at_b = match synced(index, pair, ea)? {
        Some(eb) => Some(eb),
        None => match index.find_file_by_hash(pair.b.id(), &hash)? {
            Some(p) => index.entry(pair.b.id(), &p)?,
            None => None,
        },
    };
    let Some(eb) = at_b else {
        return Err(Error::Unavailable(format!(
            "{path}: the secondary {} no longer has its content",
            pair.b.root.display()
        )));
    };
    let (f, found) = disk::open_source(&pair.b, &eb.path, &eb.stat())?;
    let staged = disk::stage(
        &pair.a,
        path,
        Source::File(f),
        ea,
        Some((found.uid, found.gid)),
        FaultPoint::None,
        None,
        &mut Scratch::default(),
        &|_| {},
    )?;
    let installed = sync_filesystem(&pair.a.root).and_then(|_| {
        disk::install(
            index,
            &disk::Place::of(&pair.a, &*pair.a.dir()?),
            path,
            &staged,
            ea,
            Some(ea),
            FaultPoint::None,
        )
    });
    let installed = match installed {
        Ok(i) => i,
        Err(e) => {
            disk::discard(&pair.a, path, &staged);
            return Err(e);
        }
    };
    sync_filesystem(&pair.a.root)?;
    let mut e = Entry::landed(path, ea, installed.stat, &ea.state.version);
    e.cache.sequence = ea.cache.sequence;
    e.cache.racy = installed.replaced_since;
    index.put_entries(pair.a.id(), &[e])?;
    Ok(())
}

/// Dehydrates every file at or under `path` (the whole hot side when `None`) that can
/// be; unpins them first (`ferry free-up`).
pub fn free_up(
    index: &mut Index,
    pair: &SelectivePair,
    path: Option<&RelPath>,
) -> Result<OnDemandReport> {
    let _lock = pair.a.lock()?;
    if let Some(p) = path {
        index.unpin(pair.a.id(), p)?;
    }
    let pins = index.pins(pair.a.id())?;
    let open = open_files();
    let mut report = OnDemandReport::default();
    for e in entries_under(index, pair.a.id(), path)? {
        if e.state.kind != EntryKind::File || e.state.presence != Presence::Live {
            continue;
        }
        if is_pinned(&pins, &e.path) {
            report.pinned += 1;
            continue;
        }
        match dehydrate(index, pair, &e.path, &open) {
            Ok(n) => {
                report.files += 1;
                report.bytes += n;
                report.paths.push(e.path.to_string());
            }
            Err(err) => report.skipped.push((e.path.to_string(), err.to_string())),
        }
    }
    Ok(report)
}

/// Pins `path` and hydrates every dehydrated file at or under it (`ferry keep-offline`).
pub fn keep_offline(
    index: &mut Index,
    pair: &SelectivePair,
    path: Option<&RelPath>,
) -> Result<OnDemandReport> {
    keep_offline_reporting(index, pair, path, &|_| {})
}

/// [`keep_offline`], reporting each file's hydration to `on`.
pub fn keep_offline_reporting(
    index: &mut Index,
    pair: &SelectivePair,
    path: Option<&RelPath>,
    on: &dyn Fn(HydrationEvent),
) -> Result<OnDemandReport> {
    let _lock = pair.a.lock()?;
    if let Some(p) = path {
        index.pin(pair.a.id(), p)?;
    }
    let mut report = OnDemandReport::default();
    for e in entries_under(index, pair.a.id(), path)? {
        if e.state.presence != Presence::Dehydrated {
            continue;
        }
        match hydrate_reporting(index, pair, &e.path, on) {
            Ok(n) => {
                report.files += 1;
                report.bytes += n;
                report.paths.push(e.path.to_string());
            }
            Err(err) => report.skipped.push((e.path.to_string(), err.to_string())),
        }
    }
    Ok(report)
}

/// The state of every path at or under `path` of the hot side.
pub fn list(index: &Index, pair: &SelectivePair, path: Option<&RelPath>) -> Result<Vec<PathState>> {
    let pins = index.pins(pair.a.id())?;
    let hydrating = index.hydrations(pair.a.id())?;
    let mut out = Vec::new();
    for e in entries_under(index, pair.a.id(), path)? {
        if !e.is_live() {
            continue;
        }
        let in_step = match index.entry(pair.b.id(), &e.path)? {
            Some(eb) => eb.is_live() && eb.same_content(&e),
            None => false,
        };
        out.push(PathState {
            path: e.path.to_string(),
            kind: e.state.kind,
            size: if e.state.kind == EntryKind::File {
                e.state.size
            } else {
                0
            },
            local: e.state.presence == Presence::Live,
            pinned: is_pinned(&pins, &e.path),
            syncing: !in_step || hydrating.contains(&e.path),
        });
    }
    Ok(out)
}

/// How the hot side uses its disk.
pub fn usage(index: &Index, pair: &SelectivePair) -> Result<Usage> {
    usage_of(index, &pair.conduit)
}

/// How the hot side of selective conduit `conduit` uses its disk, from the index only
/// (its folders need not be plugged in).
pub fn usage_of(index: &Index, conduit: &ConduitRow) -> Result<Usage> {
    let a = conduit.location_a;
    let ((files_local, bytes_local), (files_online_only, bytes_online_only)) =
        index.presence_totals(a)?;
    Ok(Usage {
        bytes_local,
        bytes_online_only,
        files_local,
        files_online_only,
        settings: index.selective_settings(conduit.id)?,
        pinned: index.pins(a)?.len() as u64,
        hydrating: index.hydrations(a)?.len() as u64,
    })
}

/// Bytes to free on the hot side to meet its quota and free-space floor (0: none).
fn bytes_over(settings: &SelectiveSettings, local: u64, root: &Path) -> Result<u64> {
    let mut need = settings
        .local_quota
        .map(|q| local.saturating_sub(q))
        .unwrap_or(0);
    if let Some(pct) = settings.min_free_percent {
        let st = rustix::fs::statvfs(root).map_err(|e| Error::Io {
            action: "statvfs",
            path: root.to_path_buf(),
            source: e.into(),
        })?;
        let total = st.f_blocks.saturating_mul(st.f_frsize);
        let avail = st.f_bavail.saturating_mul(st.f_frsize);
        let want = total / 100 * u64::from(pct);
        need = need.max(want.saturating_sub(avail));
    }
    Ok(need)
}

/// When a file was last read: the later of its atime and the reads the mount recorded.
fn last_access(pair: &SelectivePair, e: &Entry, recorded: Option<i64>) -> i64 {
    // Only an ordering hint, never a decision about content: the dehydration re-checks
    // the file through the root's handle.
    let atime = std::fs::symlink_metadata(e.path.under(&pair.a.root))
        .map(|m| m.atime() * 1_000_000_000 + m.atime_nsec())
        .unwrap_or(0);
    atime.max(recorded.unwrap_or(0))
}

/// What an eviction did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Eviction {
    /// Bytes the quota or floor asked to free.
    pub needed: u64,
    /// Files dehydrated, oldest access first.
    pub dehydrated: Vec<String>,
    /// Their bytes.
    pub bytes: u64,
    /// Files passed over (open, changed, secondary copy damaged), and why.
    pub skipped: Vec<(String, String)>,
}

/// Dehydrates the least recently accessed files of the hot side that are not pinned,
/// not open and fully synced, until it is under its quota and above its free-space
/// floor. The caller holds A's lock (a sync run does).
pub fn evict(index: &mut Index, pair: &SelectivePair) -> Result<Eviction> {
    let settings = index.selective_settings(pair.conduit.id)?;
    if settings.local_quota.is_none() && settings.min_free_percent.is_none() {
        return Ok(Eviction::default());
    }
    let local = usage(index, pair)?.bytes_local;
    evict_over(index, pair, &settings, local)
}

/// The bytes of file content on the hot side's disk now, as a walk of it sees them
/// (ferry's own files and ignored paths left out): files written since the last run
/// count too, dehydrated ones (absent) do not.
pub fn bytes_on_disk(pair: &SelectivePair) -> Result<u64> {
    use crate::replica::ignore_rules::IndexRules;
    use crate::replica::overlap::Fence;
    let fence = Fence::around(&[&pair.a.root, &pair.b.root])?;
    let rules = IndexRules {
        index_everything: pair.conduit.index_everything,
    };
    let root = pair.a.dir()?;
    // Streamed: the sizes are summed as the walk hands paths out, so memory does not
    // grow with the tree.
    Ok(crate::replica::ordered_walk::walk_in_order(
        &root,
        rules,
        &fence,
        |w| {
            let mut bytes = 0;
            while let Some(s) = w.next_seen() {
                if s.kind == EntryKind::File {
                    bytes += s.stat.size;
                }
            }
            bytes
        },
    ))
}

/// Eviction between runs (the daemon checks each selective conduit this way, so A
/// meets its quota and free-space floor as files are written, without waiting for a
/// run): measures A's usage on its disk ([`bytes_on_disk`], so files not scanned yet
/// count) and, only when A is over, takes A's and B's locks (`Error::Busy` when a run
/// or another process holds one: the run evicts itself, or the next check does),
/// measures again and dehydrates as [`evict`] does, with the same checks per file.
/// Without a quota or floor, does nothing.
pub fn evict_now(index: &mut Index, pair: &SelectivePair) -> Result<Eviction> {
    let settings = index.selective_settings(pair.conduit.id)?;
    if settings.local_quota.is_none() && settings.min_free_percent.is_none() {
        return Ok(Eviction::default());
    }
    pair.a.verify_marker()?;
    let local = match settings.local_quota {
        Some(_) => bytes_on_disk(pair)?,
        None => 0,
    };
    // Measured without the locks: they are taken (and other ferry processes kept
    // out) only when there is something to do.
    if bytes_over(&settings, local, &pair.a.root)? == 0 {
        return Ok(Eviction::default());
    }
    let _lock_a = pair.a.lock()?;
    let _lock_b = pair.b.lock()?;
    pair.a.verify_marker()?;
    pair.b.verify_marker()?;
    let local = match settings.local_quota {
        Some(_) => bytes_on_disk(pair)?,
        None => 0,
    };
    evict_over(index, pair, &settings, local)
}

/// Dehydrates the coldest candidates until `local` bytes (A's usage) meet the quota
/// and A's file system meets the floor. The caller holds A's lock.
fn evict_over(
    index: &mut Index,
    pair: &SelectivePair,
    settings: &SelectiveSettings,
    local: u64,
) -> Result<Eviction> {
    let mut out = Eviction {
        needed: bytes_over(settings, local, &pair.a.root)?,
        ..Eviction::default()
    };
    if out.needed == 0 {
        return Ok(out);
    }
    let pins = index.pins(pair.a.id())?;
    let recorded = index.accesses(pair.a.id())?;
    let mut candidates = Vec::new();
    for e in index.entries(pair.a.id())? {
        if e.state.kind != EntryKind::File
            || e.state.presence != Presence::Live
            || e.state.size == 0
            || is_pinned(&pins, &e.path)
            || synced(index, pair, &e)?.is_none()
        {
            continue;
        }
        let at = last_access(pair, &e, recorded.get(e.path.as_str()).copied());
        candidates.push((at, e));
    }
    candidates.sort_by(|x, y| x.0.cmp(&y.0).then_with(|| x.1.path.cmp(&y.1.path)));
    let open = open_files();
    for (_, e) in candidates {
        if out.bytes >= out.needed {
            break;
        }
        match dehydrate(index, pair, &e.path, &open) {
            Ok(n) => {
                out.bytes += n;
                out.dehydrated.push(e.path.to_string());
            }
            Err(err) => out.skipped.push((e.path.to_string(), err.to_string())),
        }
    }
    if out.bytes < out.needed {
        tracing::debug!(
            needed = out.needed,
            freed = out.bytes,
            "selective conduit {}: not enough cold, unpinned, synced files to meet its quota",
            pair.conduit.id
        );
    }
    Ok(out)
}

/// Reads `len` bytes at `offset` of the dehydrated file `entry` of the hot side from
/// the secondary, piece by piece (each checked against its BLAKE3): what a read
/// through the mount needs. Returns the bytes (fewer at the end of the file).
pub fn read_online(
    index: &Index,
    pair: &SelectivePair,
    entry: &Entry,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>> {
    use crate::replica::chunk_source::{pieces_of, ChunkSource, LocalContent};
    let src = LocalContent::new(index, &pair.b);
    let end = offset.saturating_add(len).min(entry.state.size);
    let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
    let mut buf = Vec::new();
    for piece in pieces_of(&entry.state) {
        let (p_start, p_end) = (piece.offset, piece.offset + u64::from(piece.len));
        if p_end <= offset || p_start >= end {
            continue;
        }
        if !src.read(&piece, &mut buf)? {
            return Err(Error::Unavailable(format!(
                "{}: the secondary {} does not have this content",
                entry.path,
                pair.b.root.display()
            )));
        }
        let from = offset.max(p_start) - p_start;
        let to = end.min(p_end) - p_start;
        out.extend_from_slice(&buf[from as usize..to as usize]);
    }
    Ok(out)
}
