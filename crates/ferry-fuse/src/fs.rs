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
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
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

/// Counters the mount writes to `.ferry/mount.json` of the local side.
#[derive(Default)]
struct Stats {
    fetched_bytes: AtomicU64,
    fetches: AtomicU64,
    hydrated: AtomicU64,
    failed_reads: AtomicU64,
}

pub(crate) struct Fs {
    root: PathBuf,
    a_id: i64,
    uid: u32,
    gid: u32,
    index: Mutex<Index>,
    nodes: Mutex<Nodes>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
    fetch: Arc<Fetcher>,
    stats: Arc<Stats>,
    status_file: PathBuf,
    mountpoint: PathBuf,
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

fn kind_of(m: &std::fs::Metadata) -> FileType {
    let t = m.file_type();
    if t.is_dir() {
        FileType::Directory
    } else if t.is_symlink() {
        FileType::Symlink
    } else {
        FileType::RegularFile
    }
}

fn attr_of_meta(ino: u64, m: &std::fs::Metadata) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: m.len(),
        blocks: m.blocks(),
        atime: meta_time(m.atime(), m.atime_nsec()),
        mtime: meta_time(m.mtime(), m.mtime_nsec()),
        ctime: meta_time(m.ctime(), m.ctime_nsec()),
        crtime: meta_time(m.mtime(), m.mtime_nsec()),
        kind: kind_of(m),
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
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
        let fs = Fs {
            status_file: pair.a.ferry_dir().join("mount.json"),
            root: a.root.clone(),
            a_id: a.id,
            uid: root_meta.uid(),
            gid: root_meta.gid(),
            index: Mutex::new(index),
            nodes: Mutex::new(nodes),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            fetch: Arc::new(Fetcher::new(
                index_path.to_path_buf(),
                conduit.clone(),
                opts.read_timeout,
            )),
            stats: Arc::new(Stats::default()),
            mountpoint: mountpoint.to_path_buf(),
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

    fn full(&self, path: &str) -> PathBuf {
        if path.is_empty() {
            self.root.clone()
        } else {
            self.root.join(path)
        }
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
        match std::fs::symlink_metadata(self.full(path)) {
            Ok(m) => Ok(attr_of_meta(ino, &m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match self.online(path) {
                Some(entry) => Ok(self.attr_of_entry(ino, &entry)),
                None => Err(Errno::ENOENT),
            },
            Err(e) => Err(errno(&e)),
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
        let r = self.fetch.call(move |index, pair| {
            let _lock = pair.a.lock()?;
            on_demand::hydrate(index, pair, &rel)
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
        let (fetch, stats, status, mp) = (
            self.fetch.clone(),
            self.stats.clone(),
            self.status_file.clone(),
            self.mountpoint.clone(),
        );
        let path = path.to_string();
        std::thread::spawn(move || {
            let r = fetch.call(move |index, pair| {
                let _lock = pair.a.lock()?;
                on_demand::hydrate(index, pair, &rel)
            });
            match r {
                Ok(_) => {
                    stats.hydrated.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("mount: {path} read to the end: now local");
                }
                Err(Failed::TimedOut) => {
                    tracing::info!(
                        "mount: {path}: hydration did not finish in time; it stays online-only"
                    )
                }
                Err(Failed::Error(e)) => {
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
        for d in std::fs::read_dir(self.full(&path)).map_err(|e| errno(&e))? {
            let d = d.map_err(|e| errno(&e))?;
            let name = d.file_name();
            if path.is_empty() && name == ferry_core::replica::FERRY_DIR {
                continue;
            }
            let Some(n) = name.to_str() else { continue };
            let kind = match d.file_type() {
                Ok(t) if t.is_dir() => FileType::Directory,
                Ok(t) if t.is_symlink() => FileType::Symlink,
                _ => FileType::RegularFile,
            };
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
        let mut o = std::fs::OpenOptions::new();
        match flags & libc::O_ACCMODE {
            libc::O_WRONLY => o.write(true),
            libc::O_RDWR => o.read(true).write(true),
            _ => o.read(true),
        };
        if flags & libc::O_APPEND != 0 {
            o.append(true);
        }
        if flags & libc::O_TRUNC != 0 {
            o.truncate(true);
        }
        o.custom_flags(libc::O_NOFOLLOW);
        o.open(self.full(path)).map_err(|e| errno(&e))
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
            let full = self.full(&path);
            if std::fs::symlink_metadata(&full).is_err() && self.online(&path).is_some() {
                self.hydrate_now(&path)?;
            }
            if let Some(size) = size {
                let local = fh.and_then(|fh| self.handle(fh).ok());
                match local.as_deref() {
                    Some(Handle::Local(f)) => f.set_len(size).map_err(|e| errno(&e))?,
                    _ => std::fs::OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(&full)
                        .and_then(|f| f.set_len(size))
                        .map_err(|e| errno(&e))?,
                }
            }
            if let Some(mode) = mode {
                std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(|e| errno(&e))?;
            }
            if atime.is_some() || mtime.is_some() {
                let f = std::fs::File::options()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&full)
                    .or_else(|_| std::fs::File::open(&full))
                    .map_err(|e| errno(&e))?;
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
        match self
            .path_of(ino)
            .and_then(|p| std::fs::read_link(self.full(&p)).map_err(|e| errno(&e)))
        {
            Ok(t) => reply.data(t.as_os_str().as_bytes()),
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
            std::fs::DirBuilder::new()
                .mode(mode & !umask & 0o7777)
                .create(self.full(&p))
                .map_err(|e| errno(&e))?;
            self.attr(&p)
        });
        match r {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self.child(parent, name).and_then(|p| {
            match std::fs::remove_file(self.full(&p)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
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
                Err(e) => Err(errno(&e)),
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
            std::fs::remove_dir(self.full(&p)).map_err(|e| errno(&e))
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
            std::os::unix::fs::symlink(target, self.full(&p)).map_err(|e| errno(&e))?;
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
            let (f, t) = (self.full(&from), self.full(&to));
            if std::fs::symlink_metadata(&f).is_err() && self.online(&from).is_some() {
                self.hydrate_now(&from)?;
            }
            if flags.contains(RenameFlags::RENAME_NOREPLACE)
                && std::fs::symlink_metadata(&t).is_ok()
            {
                return Err(Errno::EEXIST);
            }
            std::fs::rename(&f, &t).map_err(|e| errno(&e))?;
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
            let mut o = std::fs::OpenOptions::new();
            o.read(true)
                .write(true)
                .create_new(flags & libc::O_EXCL != 0)
                .create(true)
                .mode(mode & !umask & 0o7777)
                .custom_flags(libc::O_NOFOLLOW);
            if flags & libc::O_TRUNC != 0 {
                o.truncate(true);
            }
            let f = o.open(self.full(&p)).map_err(|e| errno(&e))?;
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
