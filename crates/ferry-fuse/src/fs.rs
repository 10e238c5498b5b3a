//! The file system: paths of the local side, local files passed through, dehydrated
//! ones served from the secondary piece by piece.

use crate::fetch::{Failed, Fetcher};
use crate::{FuseError, MountOptions};
use ferry_core::index::{ConduitRow, Index};
use ferry_core::model::{Entry, EntryKind, Presence, RelPath};
use ferry_core::on_demand;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the kernel may keep attributes and names.
const TTL: Duration = Duration::from_secs(1);

/// Most bytes a read of an online-only file asks the secondary for beyond the
/// request (whole pieces are fetched; this bounds the read-ahead).
const FETCH_AHEAD: u64 = 1 << 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Inode numbers of the paths seen so far ("" is the root, inode 1).
struct Nodes {
    by_ino: HashMap<u64, String>,
    by_path: HashMap<String, u64>,
    next: u64,
}

impl Nodes {
    fn ino(&mut self, path: &str) -> u64 {
        if let Some(i) = self.by_path.get(path) {
            return *i;
        }
        let i = self.next;
        self.next += 1;
        self.by_ino.insert(i, path.to_string());
        self.by_path.insert(path.to_string(), i);
        i
    }

    fn rename(&mut self, from: &str, to: &str) {
        let moved: Vec<(String, u64)> = (self.by_path.iter())
            .filter(|(p, _)| *p == from || p.starts_with(&format!("{from}/")))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        if let Some(old) = self.by_path.remove(to) {
            self.by_ino.remove(&old);
        }
        for (p, i) in moved {
            let np = format!("{to}{}", &p[from.len()..]);
            self.by_path.remove(&p);
            self.by_path.insert(np.clone(), i);
            self.by_ino.insert(i, np);
        }
    }
}

/// Tells the kernel that a path of the local side changed behind the mount (a sync
/// installed a new version, a file was hydrated or dehydrated, an edit on the local
/// disk): its cached attributes and pages and its directory entry are dropped, so the
/// next access asks this file system again. Runs on the watcher's thread, never inside
/// a request (notifying from a request handler can deadlock), and never while holding
/// the node table's lock (a request may need it to finish).
pub(crate) struct Changes {
    root: PathBuf,
    nodes: Arc<Mutex<Nodes>>,
    stats: Arc<Stats>,
    status_file: PathBuf,
    mountpoint: PathBuf,
}

impl Changes {
    /// The local side's root, to watch.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// `abs` (a path under the root) changed.
    pub(crate) fn changed(&self, notifier: &fuser::Notifier, abs: &[PathBuf]) {
        let mut told = 0u64;
        for p in abs {
            let Ok(rel) = p.strip_prefix(&self.root) else {
                continue;
            };
            let Some(rel) = rel.to_str() else { continue };
            if rel.is_empty()
                || rel == ferry_core::replica::FERRY_DIR
                || rel.starts_with(&format!("{}/", ferry_core::replica::FERRY_DIR))
            {
                continue;
            }
            let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
            let (ino, parent_ino) = {
                let n = lock(&self.nodes);
                (n.by_path.get(rel).copied(), n.by_path.get(parent).copied())
            };
            // Errors are the kernel not knowing the inode or entry (nothing cached):
            // nothing to drop.
            if let Some(ino) = ino {
                let _ = notifier.inval_inode(INodeNo(ino), 0, -1);
            }
            if let Some(parent_ino) = parent_ino {
                let _ = notifier.inval_entry(INodeNo(parent_ino), OsStr::new(name));
                let _ = notifier.inval_inode(INodeNo(parent_ino), 0, 0);
            }
            // Counted for paths the kernel may have cached (it looked them up): what
            // `invalidations` in mount.json tells a waiting reader.
            if ino.is_some() {
                told += 1;
            }
        }
        if told > 0 {
            self.stats.invalidations.fetch_add(told, Ordering::Relaxed);
            write_status(&self.status_file, &self.mountpoint, &self.stats);
        }
    }
}

/// Byte ranges of a file read so far, merged.
#[derive(Default)]
struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    fn add(&mut self, from: u64, to: u64) {
        self.0.push((from, to));
        self.0.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (a, b) in self.0.drain(..) {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        self.0 = merged;
    }

    fn covers(&self, size: u64) -> bool {
        size == 0 || self.0.first().is_some_and(|&(a, b)| a == 0 && b >= size)
    }
}

/// An open file: a local one, or one whose content is on the secondary; or an open
/// directory with its listing (made once at `opendir`, so reading a large folder in
/// many `readdir` calls costs one listing).
enum Handle {
    Local(File),
    Dir(Vec<(u64, FileType, OsString)>),
    Online {
        entry: Box<Entry>,
        /// The last range fetched: (offset, bytes).
        cache: Mutex<Option<(u64, Arc<Vec<u8>>)>>,
        read: Mutex<Ranges>,
        hydrating: AtomicBool,
    },
}

/// The reporting function of a hydration: to the mount's hook, if any.
fn report_to(hook: Option<crate::EventHook>) -> impl Fn(on_demand::HydrationEvent) {
    move |ev| {
        if let Some(h) = &hook {
            h(ev)
        }
    }
}

/// Counters the mount writes to `.ferry/mount.json` of the local side.
#[derive(Default)]
struct Stats {
    fetched_bytes: AtomicU64,
    fetches: AtomicU64,
    hydrated: AtomicU64,
    failed_reads: AtomicU64,
    /// Hydrations of files read to their end that failed (the file stays online-only).
    hydrations_failed: AtomicU64,
    /// Changes of the local side told to the kernel (its cached attributes, entries
    /// and pages of the path dropped).
    invalidations: AtomicU64,
}

pub(crate) struct Fs {
    /// The local side, opened: every access below its root goes through the root's
    /// handle, never through a symlink (safety rule 4).
    a: ferry_core::replica::Location,
    root: PathBuf,
    a_id: i64,
    uid: u32,
    gid: u32,
    index: Mutex<Index>,
    nodes: Arc<Mutex<Nodes>>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
    fetch: Arc<Fetcher>,
    stats: Arc<Stats>,
    status_file: PathBuf,
    mountpoint: PathBuf,
    /// Where hydrations are reported.
    events: Option<crate::EventHook>,
    /// The kernel passes reads and writes of local files straight to them (FUSE
    /// passthrough, Linux 6.9+): no round trip through this process.
    passthrough: AtomicBool,
    /// Passthrough backing files by inode (the kernel wants one per inode for all its
    /// open handles), with how many handles use each.
    backing: Mutex<HashMap<u64, (Arc<fuser::BackingId>, usize)>>,
    /// The inode of each handle opened with passthrough.
    backed_handles: Mutex<HashMap<u64, u64>>,
}

/// The errno of an I/O error.
fn errno(e: &std::io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn rx(e: rustix::io::Errno) -> Errno {
    Errno::from_i32(e.raw_os_error())
}

/// The errno of an engine error met while opening a folder beneath the root.
fn core_errno(e: ferry_core::Error) -> Errno {
    match e {
        ferry_core::Error::Io { source, .. } => errno(&source),
        // A symlink (or a file) where a folder should be: not followed.
        ferry_core::Error::Refused(_) => Errno::from_i32(libc::ELOOP),
        _ => Errno::EIO,
    }
}

fn time_of(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH
    }
}

fn meta_time(s: i64, ns: i64) -> SystemTime {
    time_of(s.saturating_mul(1_000_000_000).saturating_add(ns))
}

#[allow(clippy::unnecessary_cast)]
fn kind_of_stat(st: &rustix::fs::Stat) -> FileType {
    match st.st_mode as u32 & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        _ => FileType::RegularFile,
    }
}

// `stat` field types differ between architectures: the casts are needed elsewhere.
#[allow(clippy::unnecessary_cast)]
fn attr_of_stat(ino: u64, st: &rustix::fs::Stat) -> FileAttr {
    let t = |s: i64, ns: i64| meta_time(s, ns);
    FileAttr {
        ino: INodeNo(ino),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: t(st.st_atime as i64, st.st_atime_nsec as i64),
        mtime: t(st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime: t(st.st_ctime as i64, st.st_ctime_nsec as i64),
        crtime: t(st.st_mtime as i64, st.st_mtime_nsec as i64),
        kind: kind_of_stat(st),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: 0,
        flags: 0,
        blksize: 4096,
    }
}

impl Fs {
    pub(crate) fn new(
        index_path: &Path,
        conduit: &ConduitRow,
        mountpoint: &Path,
        opts: MountOptions,
    ) -> Result<Fs, FuseError> {
        let index = Index::open(index_path)?;
        let a = index.location(conduit.location_a)?;
        // Opening the pair checks the conduit's mode and both markers now, so a
        // mistake is said at once; the secondary is not touched again on this thread.
        let pair = on_demand::SelectivePair::open(&index, conduit)?;
        let root_meta = std::fs::metadata(&a.root).map_err(|e| FuseError::MountPoint {
            path: a.root.clone(),
            reason: e.to_string(),
        })?;
        let mut nodes = Nodes {
            by_ino: HashMap::new(),
            by_path: HashMap::new(),
            next: 2,
        };
        nodes.by_ino.insert(1, String::new());
        nodes.by_path.insert(String::new(), 1);
        let status_file = pair.a.ferry_dir().join("mount.json");
        let fs = Fs {
            a: pair.a,
            status_file,
            root: a.root.clone(),
            a_id: a.id,
            uid: root_meta.uid(),
            gid: root_meta.gid(),
            index: Mutex::new(index),
            nodes: Arc::new(Mutex::new(nodes)),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            fetch: Arc::new(Fetcher::new(
                index_path.to_path_buf(),
                conduit.clone(),
                opts.read_timeout,
            )),
            stats: Arc::new(Stats::default()),
            mountpoint: mountpoint.to_path_buf(),
            events: opts.events.clone(),
            passthrough: AtomicBool::new(false),
            backing: Mutex::new(HashMap::new()),
            backed_handles: Mutex::new(HashMap::new()),
        };
        fs.write_status();
        Ok(fs)
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// What the invalidation watcher needs of this file system (it outlives the move
    /// of `self` into the session).
    pub(crate) fn changes(&self) -> Changes {
        Changes {
            root: self.root.clone(),
            nodes: self.nodes.clone(),
            stats: self.stats.clone(),
            status_file: self.status_file.clone(),
            mountpoint: self.mountpoint.clone(),
        }
    }

    /// Writes `.ferry/mount.json` (pid, mount point, counters): for `ferry status` and
    /// tests. Best effort.
    fn write_status(&self) {
        write_status(&self.status_file, &self.mountpoint, &self.stats);
    }

    fn path_of(&self, ino: INodeNo) -> Result<String, Errno> {
        lock(&self.nodes)
            .by_ino
            .get(&ino.0)
            .cloned()
            .ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<String, Errno> {
        let p = self.path_of(parent)?;
        let name = name.to_str().ok_or(Errno::EINVAL)?;
        if p.is_empty() && name == ferry_core::replica::FERRY_DIR {
            return Err(Errno::ENOENT); // ferry's own folder is not shown
        }
        Ok(if p.is_empty() {
            name.to_string()
        } else {
            format!("{p}/{name}")
        })
    }

    /// Runs `f` with `path`'s parent folder opened beneath A's root (no symlink
    /// followed on the way) and its last component.
    fn with_parent<T>(
        &self,
        path: &str,
        f: impl FnOnce(std::os::fd::BorrowedFd<'_>, &OsStr) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        let rel = RelPath::new(path).map_err(|_| Errno::EINVAL)?;
        let root = self.a.dir().map_err(core_errno)?;
        let (dir, name) = root.parent(&rel).map_err(core_errno)?;
        f(dir.fd(), &name)
    }

    /// Runs `f` with the folder `path` ("" the root) opened beneath A's root.
    fn with_dir<T>(
        &self,
        path: &str,
        f: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        let root = self.a.dir().map_err(core_errno)?;
        let dir = root.dir(path).map_err(core_errno)?;
        f(dir.fd())
    }

    /// `lstat` of `path` beneath the root.
    fn stat(&self, path: &str) -> Result<rustix::fs::Stat, Errno> {
        if path.is_empty() {
            return self.with_dir("", |d| rustix::fs::fstat(d).map_err(rx));
        }
        self.with_parent(path, |d, n| {
            rustix::fs::statat(d, n, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).map_err(rx)
        })
    }

    /// Opens `path` beneath the root with `flags` (never following a symlink).
    fn open_at(&self, path: &str, flags: rustix::fs::OFlags, mode: u32) -> Result<File, Errno> {
        use rustix::fs::OFlags;
        if path.is_empty() {
            return Err(Errno::EISDIR);
        }
        self.with_parent(path, |d, n| {
            rustix::fs::openat(
                d,
                n,
                flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                rustix::fs::Mode::from_raw_mode(mode),
            )
            .map(File::from)
            .map_err(rx)
        })
    }

    /// The dehydrated entry at `path`, if that is what it is.
    fn online(&self, path: &str) -> Option<Entry> {
        let rel = RelPath::new(path).ok()?;
        let e = lock(&self.index).entry(self.a_id, &rel).ok()??;
        (e.state.presence == Presence::Dehydrated && e.state.kind == EntryKind::File).then_some(e)
    }

    fn attr_of_entry(&self, ino: u64, e: &Entry) -> FileAttr {
        let t = time_of(e.state.mtime_ns);
        FileAttr {
            ino: INodeNo(ino),
            size: e.state.size,
            blocks: 0, // nothing on this disk
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind: FileType::RegularFile,
            perm: (e.state.mode & 0o7777) as u16,
            nlink: 1,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        }
    }

    fn attr(&self, path: &str) -> Result<FileAttr, Errno> {
        let ino = lock(&self.nodes).ino(path);
        match self.stat(path) {
            Ok(st) => Ok(attr_of_stat(ino, &st)),
            Err(e) if e == Errno::ENOENT => match self.online(path) {
                Some(entry) => Ok(self.attr_of_entry(ino, &entry)),
                None => Err(Errno::ENOENT),
            },
            Err(e) => Err(e),
        }
    }

    fn record_access(&self, path: &str) {
        if let Ok(rel) = RelPath::new(path) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0);
            if let Err(e) = lock(&self.index).record_access(self.a_id, &rel, now) {
                tracing::debug!("mount: recording a read of {path}: {e}");
            }
        }
    }

    fn add_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, Arc::new(h));
        fh
    }

    fn handle(&self, fh: FileHandle) -> Result<Arc<Handle>, Errno> {
        lock(&self.handles).get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    /// Brings a dehydrated file's content here (for a write, a rename, a change of its
    /// attributes), waiting at most the read timeout.
    fn hydrate_now(&self, path: &str) -> Result<(), Errno> {
        let rel = RelPath::new(path).map_err(|_| Errno::EINVAL)?;
        let hook = self.events.clone();
        let r = self.fetch.call(move |index, pair| {
            let _lock = pair.a.lock()?;
            on_demand::hydrate_reporting(index, pair, &rel, &report_to(hook))
        });
        match r {
            Ok(_) => {
                self.stats.hydrated.fetch_add(1, Ordering::Relaxed);
                self.write_status();
                Ok(())
            }
            Err(f) => Err(self.failed(path, f)),
        }
    }

    fn failed(&self, path: &str, f: Failed) -> Errno {
        self.stats.failed_reads.fetch_add(1, Ordering::Relaxed);
        self.write_status();
        match f {
            Failed::TimedOut => {
                tracing::warn!("mount: {path}: the secondary did not answer in time (EIO)")
            }
            Failed::Error(e) => tracing::warn!("mount: {path}: {e} (EIO)"),
        }
        Errno::EIO
    }

    /// Reads `size` bytes at `offset` of an online-only file: whole pieces covering the
    /// range (and a little beyond, for the next read) from the secondary, each checked.
    fn read_online(
        &self,
        path: &str,
        h: &Handle,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>, Errno> {
        let Handle::Online {
            entry,
            cache,
            read,
            hydrating,
        } = h
        else {
            return Err(Errno::EBADF);
        };
        let file_size = entry.state.size;
        let end = offset.saturating_add(size).min(file_size);
        if offset >= end {
            return Ok(Vec::new());
        }
        if let Some((at, bytes)) = lock(cache).as_ref() {
            if *at <= offset && end <= at + bytes.len() as u64 {
                let s = (offset - at) as usize;
                return Ok(bytes[s..s + (end - offset) as usize].to_vec());
            }
        }
        // Whole pieces: from the start of the one holding `offset` to the end of the
        // one holding the last byte wanted, plus what fits in FETCH_AHEAD.
        let (from, to) = piece_span(entry, offset, end);
        let e = entry.clone();
        let got = self
            .fetch
            .call(move |index, pair| on_demand::read_online(index, pair, &e, from, to - from));
        let bytes = match got {
            Ok(b) if b.len() as u64 == to - from => Arc::new(b),
            Ok(_) => {
                return Err(self.failed(
                    path,
                    Failed::Error(ferry_core::Error::Unavailable("short read".into())),
                ))
            }
            Err(f) => return Err(self.failed(path, f)),
        };
        self.stats
            .fetched_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.stats.fetches.fetch_add(1, Ordering::Relaxed);
        let out = bytes[(offset - from) as usize..(end - from) as usize].to_vec();
        *lock(cache) = Some((from, bytes));
        let whole = {
            let mut r = lock(read);
            r.add(from, to);
            r.covers(file_size)
        };
        self.write_status();
        if whole && !hydrating.swap(true, Ordering::SeqCst) {
            self.hydrate_in_background(path);
        }
        Ok(out)
    }

    /// Every byte was read: install the file locally through the safe path, on a
    /// thread of its own (never inside a request).
    fn hydrate_in_background(&self, path: &str) {
        let Ok(rel) = RelPath::new(path) else { return };
        let (fetch, stats, status, mp, hook) = (
            self.fetch.clone(),
            self.stats.clone(),
            self.status_file.clone(),
            self.mountpoint.clone(),
            self.events.clone(),
        );
        let path = path.to_string();
        std::thread::spawn(move || {
            let r = fetch.call(move |index, pair| {
                let _lock = pair.a.lock()?;
                on_demand::hydrate_reporting(index, pair, &rel, &report_to(hook))
            });
            match r {
                Ok(_) => {
                    stats.hydrated.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("mount: {path} read to the end: now local");
                }
                Err(Failed::TimedOut) => {
                    stats.hydrations_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        "mount: {path}: hydration did not finish in time; it stays online-only"
                    )
                }
                Err(Failed::Error(e)) => {
                    stats.hydrations_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("mount: {path}: not hydrated ({e}); it stays online-only")
                }
            }
            write_status(&status, &mp, &stats);
        });
    }

    /// A directory's entries: what is on the local disk, and the dehydrated files the
    /// index has in it.
    fn listing(&self, ino: INodeNo) -> Result<Vec<(u64, FileType, OsString)>, Errno> {
        let path = self.path_of(ino)?;
        let mut out: Vec<(u64, FileType, OsString)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (ino.0, FileType::Directory, "..".into()),
        ];
        let mut names = std::collections::HashSet::new();
        let listed = self.with_dir(&path, |d| {
            let fd = rustix::fs::openat(
                d,
                ".",
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(rx)?;
            let mut dir = rustix::fs::Dir::read_from(&fd).map_err(rx)?;
            let mut out = Vec::new();
            while let Some(item) = dir.read() {
                let item = item.map_err(rx)?;
                let n = item.file_name().to_bytes();
                if n == b"." || n == b".." {
                    continue;
                }
                let name = OsStr::from_bytes(n).to_os_string();
                let kind = match item.file_type() {
                    rustix::fs::FileType::Directory => FileType::Directory,
                    rustix::fs::FileType::Symlink => FileType::Symlink,
                    rustix::fs::FileType::Unknown => {
                        match rustix::fs::statat(&fd, &name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                        {
                            Ok(st) => kind_of_stat(&st),
                            Err(_) => FileType::RegularFile,
                        }
                    }
                    _ => FileType::RegularFile,
                };
                out.push((name, kind));
            }
            Ok(out)
        })?;
        for (name, kind) in listed {
            if path.is_empty() && name == ferry_core::replica::FERRY_DIR {
                continue;
            }
            let Some(n) = name.to_str() else { continue };
            let child = if path.is_empty() {
                n.to_string()
            } else {
                format!("{path}/{n}")
            };
            let ino = lock(&self.nodes).ino(&child);
            names.insert(n.to_string());
            out.push((ino, kind, name));
        }
        let online = lock(&self.index)
            .dehydrated_entries(self.a_id)
            .map_err(|_| Errno::EIO)?;
        for e in online {
            let here = match e.path.parent() {
                None => path.is_empty(),
                Some(par) => par.as_str() == path,
            };
            if !here || e.state.kind != EntryKind::File {
                continue;
            }
            let name = e.path.file_name().to_string();
            if names.contains(&name) {
                continue;
            }
            let ino = lock(&self.nodes).ino(e.path.as_str());
            out.push((ino, FileType::RegularFile, name.into()));
        }
        Ok(out)
    }

    fn open_local(&self, path: &str, flags: i32) -> Result<File, Errno> {
        use rustix::fs::OFlags;
        let keep = libc::O_ACCMODE | libc::O_APPEND | libc::O_TRUNC;
        self.open_at(path, OFlags::from_bits_retain((flags & keep) as u32), 0)
    }
}

/// The span of whole pieces of `e` covering `[offset, end)`, extended by whole pieces
/// up to `FETCH_AHEAD` bytes past `end`.
fn piece_span(e: &Entry, offset: u64, end: u64) -> (u64, u64) {
    let size = e.state.size;
    if e.state.chunks.is_empty() {
        return (0, size);
    }
    let (mut from, mut to, mut at) = (0, size, 0u64);
    let mut started = false;
    for c in &e.state.chunks {
        let next = at + u64::from(c.len);
        if !started && next > offset {
            from = at;
            started = true;
        }
        if started && next >= end {
            to = next;
            if next >= end + FETCH_AHEAD.min(size) || next - from >= FETCH_AHEAD {
                break;
            }
        }
        at = next;
    }
    (from, to.min(size).max(end))
}

fn write_status(file: &Path, mountpoint: &Path, s: &Stats) {
    let doc = serde_json::json!({
        "pid": std::process::id(),
        "mountpoint": mountpoint,
        "fetched_bytes": s.fetched_bytes.load(Ordering::Relaxed),
        "fetches": s.fetches.load(Ordering::Relaxed),
        "hydrated": s.hydrated.load(Ordering::Relaxed),
        "failed_reads": s.failed_reads.load(Ordering::Relaxed),
        "invalidations": s.invalidations.load(Ordering::Relaxed),
        "hydrations_failed": s.hydrations_failed.load(Ordering::Relaxed),
    });
    let tmp = file.with_extension(format!("json.{}", std::process::id()));
    if std::fs::write(&tmp, doc.to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, file);
    }
}

fn time_or_now(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl Filesystem for Fs {
    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> std::io::Result<()> {
        if std::env::var_os("FERRY_FUSE_NO_PASSTHROUGH").is_none()
            && config
                .add_capabilities(fuser::InitFlags::FUSE_PASSTHROUGH)
                .is_ok()
        {
            // The local side may itself be on a stacked file system (overlayfs).
            let _ = config.set_max_stack_depth(2);
            self.passthrough.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name).and_then(|p| self.attr(&p)) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.path_of(ino).and_then(|p| self.attr(&p)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let r = (|| -> Result<FileAttr, Errno> {
            let path = self.path_of(ino)?;
            if matches!(self.stat(&path), Err(e) if e == Errno::ENOENT)
                && self.online(&path).is_some()
            {
                self.hydrate_now(&path)?;
            }
            // The file or folder itself, opened beneath the root (a symlink is refused).
            let open = |write: bool| -> Result<File, Errno> {
                use rustix::fs::OFlags;
                if path.is_empty() {
                    return self.with_dir("", |d| {
                        rustix::fs::openat(
                            d,
                            ".",
                            OFlags::RDONLY | OFlags::CLOEXEC,
                            rustix::fs::Mode::empty(),
                        )
                        .map(File::from)
                        .map_err(rx)
                    });
                }
                match self.open_at(
                    &path,
                    if write {
                        OFlags::WRONLY
                    } else {
                        OFlags::RDONLY
                    },
                    0,
                ) {
                    Err(e) if e == Errno::EISDIR && write => self.open_at(&path, OFlags::RDONLY, 0),
                    r => r,
                }
            };
            if let Some(size) = size {
                let local = fh.and_then(|fh| self.handle(fh).ok());
                match local.as_deref() {
                    Some(Handle::Local(f)) => f.set_len(size).map_err(|e| errno(&e))?,
                    _ => open(true)?.set_len(size).map_err(|e| errno(&e))?,
                }
            }
            if let Some(mode) = mode {
                let f = open(false)?;
                rustix::fs::fchmod(&f, rustix::fs::Mode::from_raw_mode(mode & 0o7777))
                    .map_err(rx)?;
            }
            if atime.is_some() || mtime.is_some() {
                let f = open(true)?;
                let mut times = std::fs::FileTimes::new();
                if let Some(a) = atime {
                    times = times.set_accessed(time_or_now(a));
                }
                if let Some(m) = mtime {
                    times = times.set_modified(time_or_now(m));
                }
                f.set_times(times).map_err(|e| errno(&e))?;
            }
            self.attr(&path)
        })();
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.path_of(ino).and_then(|p| {
            self.with_parent(&p, |d, n| {
                rustix::fs::readlinkat(d, n, Vec::new()).map_err(rx)
            })
        }) {
            Ok(t) => reply.data(t.as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let r = self.child(parent, name).and_then(|p| {
            self.with_parent(&p, |d, n| {
                rustix::fs::mkdirat(
                    d,
                    n,
                    rustix::fs::Mode::from_raw_mode(mode & !umask & 0o7777),
                )
                .map_err(rx)
            })?;
            self.attr(&p)
        });
        match r {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self.child(parent, name).and_then(|p| {
            match self.with_parent(&p, |d, n| {
                rustix::fs::unlinkat(d, n, rustix::fs::AtFlags::empty()).map_err(rx)
            }) {
                Ok(()) => Ok(()),
                Err(e) if e == Errno::ENOENT => {
                    // An online-only file: deleting it is a deletion like any other.
                    // Its entry becomes an ordinary live one with nothing on disk,
                    // which the next scan records as deleted (a new version), and
                    // the sync carries that to the secondary.
                    let Some(mut e) = self.online(&p) else {
                        return Err(Errno::ENOENT);
                    };
                    e.state.presence = Presence::Live;
                    lock(&self.index)
                        .put_entries(self.a_id, &[e])
                        .map_err(|_| Errno::EIO)
                }
                Err(e) => Err(e),
            }
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self.child(parent, name).and_then(|p| {
            let prefix = format!("{p}/");
            let has_online = lock(&self.index)
                .dehydrated_entries(self.a_id)
                .map(|v| v.iter().any(|e| e.path.as_str().starts_with(&prefix)))
                .unwrap_or(true);
            if has_online {
                return Err(Errno::ENOTEMPTY);
            }
            self.with_parent(&p, |d, n| {
                rustix::fs::unlinkat(d, n, rustix::fs::AtFlags::REMOVEDIR).map_err(rx)
            })
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let r = self.child(parent, link_name).and_then(|p| {
            self.with_parent(&p, |d, n| rustix::fs::symlinkat(target, d, n).map_err(rx))?;
            self.attr(&p)
        });
        match r {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = (|| -> Result<(), Errno> {
            let from = self.child(parent, name)?;
            let to = self.child(newparent, newname)?;
            if matches!(self.stat(&from), Err(e) if e == Errno::ENOENT)
                && self.online(&from).is_some()
            {
                self.hydrate_now(&from)?;
            }
            let mut how = rustix::fs::RenameFlags::empty();
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                how |= rustix::fs::RenameFlags::NOREPLACE;
            }
            if to.is_empty() || from.is_empty() {
                return Err(Errno::EBUSY);
            }
            self.with_parent(&from, |d1, n1| {
                self.with_parent(&to, |d2, n2| {
                    rustix::fs::renameat_with(d1, n1, d2, n2, how).map_err(rx)
                })
            })?;
            lock(&self.nodes).rename(&from, &to);
            Ok(())
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let r = (|| -> Result<u64, Errno> {
            let path = self.path_of(ino)?;
            let writes = flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & libc::O_TRUNC != 0;
            self.record_access(&path);
            match self.open_local(&path, flags.0) {
                Ok(f) => Ok(self.add_handle(Handle::Local(f))),
                Err(e) if e == Errno::ENOENT => {
                    let entry = self.online(&path).ok_or(Errno::ENOENT)?;
                    if writes {
                        // A write needs the content here first.
                        self.hydrate_now(&path)?;
                        let f = self.open_local(&path, flags.0)?;
                        return Ok(self.add_handle(Handle::Local(f)));
                    }
                    Ok(self.add_handle(Handle::Online {
                        entry: Box::new(entry),
                        cache: Mutex::new(None),
                        read: Mutex::new(Ranges::default()),
                        hydrating: AtomicBool::new(false),
                    }))
                }
                Err(e) => Err(e),
            }
        })();
        let fh = match r {
            Ok(fh) => fh,
            Err(e) => return reply.error(e),
        };
        if self.passthrough.load(Ordering::Relaxed) {
            if let Ok(h) = self.handle(FileHandle(fh)) {
                if let Handle::Local(f) = &*h {
                    let mut backing = lock(&self.backing);
                    let id = match backing.get_mut(&ino.0) {
                        Some((id, n)) => {
                            *n += 1;
                            Some(id.clone())
                        }
                        None => match reply.open_backing(f) {
                            Ok(id) => {
                                let id = Arc::new(id);
                                backing.insert(ino.0, (id.clone(), 1));
                                Some(id)
                            }
                            Err(e) => {
                                tracing::debug!("mount: no passthrough for {ino:?}: {e}");
                                None
                            }
                        },
                    };
                    if let Some(id) = id {
                        lock(&self.backed_handles).insert(fh, ino.0);
                        return reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), &id);
                    }
                }
            }
        }
        reply.opened(FileHandle(fh), FopenFlags::empty())
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let r = (|| -> Result<Vec<u8>, Errno> {
            let h = self.handle(fh)?;
            match &*h {
                Handle::Local(f) => {
                    let mut buf = vec![0u8; size as usize];
                    let mut done = 0;
                    while done < buf.len() {
                        match f.read_at(&mut buf[done..], offset + done as u64) {
                            Ok(0) => break,
                            Ok(n) => done += n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(errno(&e)),
                        }
                    }
                    buf.truncate(done);
                    Ok(buf)
                }
                Handle::Online { .. } => {
                    let path = self.path_of(ino)?;
                    self.read_online(&path, &h, offset, u64::from(size))
                }
                Handle::Dir(_) => Err(Errno::EISDIR),
            }
        })();
        match r {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let r = self.handle(fh).and_then(|h| match &*h {
            Handle::Local(f) => f.write_all_at(data, offset).map_err(|e| errno(&e)),
            Handle::Online { .. } | Handle::Dir(_) => Err(Errno::EBADF),
        });
        match r {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.handles).remove(&fh.0);
        if let Some(ino) = lock(&self.backed_handles).remove(&fh.0) {
            let mut backing = lock(&self.backing);
            if let Some((_, n)) = backing.get_mut(&ino) {
                *n -= 1;
                if *n == 0 {
                    backing.remove(&ino);
                }
            }
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = self.handle(fh).and_then(|h| match &*h {
            Handle::Local(f) => if datasync {
                f.sync_data()
            } else {
                f.sync_all()
            }
            .map_err(|e| errno(&e)),
            Handle::Online { .. } | Handle::Dir(_) => Ok(()),
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.listing(ino) {
            Ok(entries) => {
                let fh = self.add_handle(Handle::Dir(entries));
                reply.opened(FileHandle(fh), FopenFlags::empty())
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let h = match self.handle(fh) {
            Ok(h) => h,
            Err(e) => return reply.error(e),
        };
        let Handle::Dir(entries) = &*h else {
            return reply.error(Errno::EBADF);
        };
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.handles).remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match rustix_statvfs(&self.root) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                255,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let r = (|| -> Result<(FileAttr, u64), Errno> {
            let p = self.child(parent, name)?;
            if self.online(&p).is_some() {
                return Err(Errno::EEXIST);
            }
            use rustix::fs::OFlags;
            let mut how = OFlags::RDWR | OFlags::CREATE;
            if flags & libc::O_EXCL != 0 {
                how |= OFlags::EXCL;
            }
            if flags & libc::O_TRUNC != 0 {
                how |= OFlags::TRUNC;
            }
            let f = self.open_at(&p, how, mode & !umask & 0o7777)?;
            let fh = self.add_handle(Handle::Local(f));
            Ok((self.attr(&p)?, fh))
        })();
        match r {
            Ok((a, fh)) => {
                reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty())
            }
            Err(e) => reply.error(e),
        }
    }
}

fn rustix_statvfs(p: &Path) -> std::io::Result<libc::statvfs> {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid C string and `st` a valid out-pointer for the call.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    Ok(unsafe { st.assume_init() })
}
