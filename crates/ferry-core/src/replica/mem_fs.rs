//! An in-memory file system behind the [`Root`]/[`Dir`]/[`FileOps`] seam, for fast,
//! deterministic tests of the disk steps (as Syncthing's `fs` package has a fake).
//!
//! It keeps the real disk's semantics where the safety rules depend on them: inodes
//! (a save by rename makes a new one, an in-place write keeps it), handles that stay
//! on their directory when it moves, `RENAME_NOREPLACE` and `RENAME_EXCHANGE`, no
//! symlink followed on the way to a directory. A test can make the next operation of
//! a kind fail with an errno ([`MemFs::fail_next`]) or run a "user" action just
//! before it ([`MemFs::before_next`]), e.g. a save landing between a check and a
//! rename.

use crate::error::{Error, IoContext, Result};
use crate::model::entry::{EntryKind, StatInfo};
use crate::replica::beneath::Found;
use crate::replica::fs::{Dir, FileOps, Rename, Root};
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The operations a fault or a hook can be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Lstat,
    OpenDir,
    OpenFile,
    Create,
    Rename(Rename),
    Unlink,
    Rmdir,
    Mkdir,
    SetAttr,
    Copy,
    List,
}

type Hook = Box<dyn FnOnce(&MemFs) + Send>;

/// The fake file system (cheap to clone: clones share it).
#[derive(Clone)]
pub(crate) struct MemFs {
    state: Arc<Mutex<State>>,
}

struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    clock: i64,
    faults: Vec<(Op, i32)>,
    hooks: Vec<(Op, Hook)>,
}

#[derive(Clone)]
enum Body {
    File(Vec<u8>),
    Dir(BTreeMap<OsString, u64>),
    Symlink(OsString),
}

#[derive(Clone)]
struct Node {
    body: Body,
    mode: u32,
    mtime_ns: i64,
    ctime_ns: i64,
    uid: u32,
    nlink: u64,
}

const ROOT: u64 = 1;

fn errno(e: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(e)
}

impl State {
    fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    fn node(&self, ino: u64) -> std::io::Result<&Node> {
        self.nodes.get(&ino).ok_or_else(|| errno(libc::ENOENT))
    }

    fn entries(&self, dir: u64) -> std::io::Result<&BTreeMap<OsString, u64>> {
        match &self.node(dir)?.body {
            Body::Dir(m) => Ok(m),
            _ => Err(errno(libc::ENOTDIR)),
        }
    }

    fn entries_mut(&mut self, dir: u64) -> std::io::Result<&mut BTreeMap<OsString, u64>> {
        match self.nodes.get_mut(&dir).map(|n| &mut n.body) {
            Some(Body::Dir(m)) => Ok(m),
            Some(_) => Err(errno(libc::ENOTDIR)),
            None => Err(errno(libc::ENOENT)),
        }
    }

    fn lookup(&self, dir: u64, name: &OsStr) -> std::io::Result<Option<u64>> {
        Ok(self.entries(dir)?.get(name).copied())
    }

    fn add(&mut self, dir: u64, name: &OsStr, body: Body, mode: u32) -> std::io::Result<u64> {
        if self.lookup(dir, name)?.is_some() {
            return Err(errno(libc::EEXIST));
        }
        let now = self.tick();
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                body,
                mode,
                mtime_ns: now,
                ctime_ns: now,
                uid: crate::replica::fs_ops::euid(),
                nlink: 1,
            },
        );
        self.entries_mut(dir)?.insert(name.to_os_string(), ino);
        Ok(ino)
    }

    /// Takes `name` out of `dir` (the node itself stays for open handles).
    fn detach(&mut self, dir: u64, name: &OsStr) -> std::io::Result<u64> {
        let ino = self
            .entries_mut(dir)?
            .remove(name)
            .ok_or_else(|| errno(libc::ENOENT))?;
        let now = self.tick();
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.nlink = n.nlink.saturating_sub(1);
            n.ctime_ns = now;
        }
        Ok(ino)
    }

    fn attach(&mut self, dir: u64, name: &OsStr, ino: u64) -> std::io::Result<()> {
        self.entries_mut(dir)?.insert(name.to_os_string(), ino);
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.nlink += 1;
        }
        Ok(())
    }

    fn found(&self, ino: u64) -> std::io::Result<Found> {
        let n = self.node(ino)?;
        let (kind, size) = match &n.body {
            Body::File(b) => (EntryKind::File, b.len() as u64),
            Body::Dir(_) => (EntryKind::Dir, 4096),
            Body::Symlink(t) => (EntryKind::Symlink, t.len() as u64),
        };
        Ok(Found {
            kind: Some(kind),
            stat: StatInfo {
                size,
                mtime_ns: n.mtime_ns,
                ctime_ns: n.ctime_ns,
                inode: ino,
                mode: n.mode,
            },
            nlink: n.nlink,
            uid: n.uid,
            gid: 0,
            dev: 1,
        })
    }

    /// The directory at `rel` from the root, refusing symlinks and files on the way.
    fn walk(&self, rel: &str) -> std::io::Result<u64> {
        let mut cur = ROOT;
        for comp in rel.split('/').filter(|c| !c.is_empty()) {
            if comp == ".." || comp == "." {
                return Err(errno(libc::EXDEV));
            }
            let next = self
                .lookup(cur, OsStr::new(comp))?
                .ok_or_else(|| errno(libc::ENOENT))?;
            match self.node(next)?.body {
                Body::Dir(_) => cur = next,
                Body::Symlink(_) => return Err(errno(libc::ELOOP)),
                Body::File(_) => return Err(errno(libc::ENOTDIR)),
            }
        }
        Ok(cur)
    }
}

impl MemFs {
    /// An empty file system: only its root, mode 0755.
    pub(crate) fn new() -> MemFs {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                body: Body::Dir(BTreeMap::new()),
                mode: 0o755,
                mtime_ns: 0,
                ctime_ns: 0,
                uid: crate::replica::fs_ops::euid(),
                nlink: 2,
            },
        );
        MemFs {
            state: Arc::new(Mutex::new(State {
                nodes,
                next_ino: ROOT + 1,
                clock: 1_000,
                faults: Vec::new(),
                hooks: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding it has failed already.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the next `op` fail with `errno`.
    pub(crate) fn fail_next(&self, op: Op, errno: i32) {
        self.lock().faults.push((op, errno));
    }

    /// Runs `hook` (a user acting on the tree) just before the next `op`.
    pub(crate) fn before_next(&self, op: Op, hook: impl FnOnce(&MemFs) + Send + 'static) {
        self.lock().hooks.push((op, Box::new(hook)));
    }

    /// The start of every operation: its hook, then its fault.
    fn enter(&self, op: Op) -> std::io::Result<()> {
        let hook = {
            let mut s = self.lock();
            s.hooks
                .iter()
                .position(|(o, _)| *o == op)
                .map(|i| s.hooks.remove(i).1)
        };
        if let Some(h) = hook {
            h(self);
        }
        let mut s = self.lock();
        match s.faults.iter().position(|(o, _)| *o == op) {
            Some(i) => Err(errno(s.faults.remove(i).1)),
            None => Ok(()),
        }
    }

    fn split(rel: &str) -> (&str, &OsStr) {
        match rel.rsplit_once('/') {
            Some((p, n)) => (p, OsStr::new(n)),
            None => ("", OsStr::new(rel)),
        }
    }

    /// The parent of `rel`, its folders created (0755) where missing.
    fn parent_made(s: &mut State, rel: &str) -> u64 {
        let (parent, _) = Self::split(rel);
        let mut cur = ROOT;
        for comp in parent.split('/').filter(|c| !c.is_empty()) {
            cur = match s.lookup(cur, OsStr::new(comp)) {
                Ok(Some(i)) => i,
                _ => s
                    .add(cur, OsStr::new(comp), Body::Dir(BTreeMap::new()), 0o755)
                    .expect("test tree: folder"),
            };
        }
        cur
    }

    /// A user's save of `rel` by rename: a new inode with `bytes` and `mtime_ns`.
    pub(crate) fn save(&self, rel: &str, bytes: &[u8], mtime_ns: i64) {
        let mut s = self.lock();
        let dir = Self::parent_made(&mut s, rel);
        let name = Self::split(rel).1;
        if let Ok(Some(_)) = s.lookup(dir, name) {
            let _ = s.detach(dir, name);
        }
        let ino = s
            .add(dir, name, Body::File(bytes.to_vec()), 0o644)
            .expect("test tree: file");
        if let Some(n) = s.nodes.get_mut(&ino) {
            n.mtime_ns = mtime_ns;
        }
    }

    /// A user's write into the existing file `rel` (same inode).
    pub(crate) fn write_in_place(&self, rel: &str, bytes: &[u8], mtime_ns: i64) {
        let mut s = self.lock();
        let dir = Self::parent_made(&mut s, rel);
        let ino = s
            .lookup(dir, Self::split(rel).1)
            .ok()
            .flatten()
            .expect("test tree: no such file");
        let now = s.tick();
        if let Some(n) = s.nodes.get_mut(&ino) {
            n.body = Body::File(bytes.to_vec());
            n.mtime_ns = mtime_ns;
            n.ctime_ns = now;
        }
    }

    /// A user's symlink at `rel`.
    pub(crate) fn symlink_at(&self, rel: &str, target: &str) {
        let mut s = self.lock();
        let dir = Self::parent_made(&mut s, rel);
        s.add(
            dir,
            Self::split(rel).1,
            Body::Symlink(OsString::from(target)),
            0o777,
        )
        .expect("test tree: symlink");
    }

    fn at(&self, rel: &str) -> Option<u64> {
        let s = self.lock();
        let (parent, name) = Self::split(rel);
        let dir = s.walk(parent).ok()?;
        s.lookup(dir, name).ok().flatten()
    }

    /// The bytes of the file at `rel` (`None`: no file there).
    pub(crate) fn read(&self, rel: &str) -> Option<Vec<u8>> {
        let ino = self.at(rel)?;
        match &self.lock().node(ino).ok()?.body {
            Body::File(b) => Some(b.clone()),
            _ => None,
        }
    }

    /// What `lstat` finds at `rel`.
    pub(crate) fn found(&self, rel: &str) -> Option<Found> {
        let ino = self.at(rel)?;
        self.lock().found(ino).ok()
    }

    /// The names in the folder `rel`, sorted (empty when there is none).
    pub(crate) fn list(&self, rel: &str) -> Vec<String> {
        let s = self.lock();
        s.walk(rel)
            .and_then(|d| s.entries(d).cloned())
            .map(|m| m.keys().map(|k| k.to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    }

    /// Every file under `rel` (recursively), as (path, bytes), sorted.
    pub(crate) fn files_under(&self, rel: &str) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for name in self.list(rel) {
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            match self.read(&path) {
                Some(b) => out.push((path, b)),
                None => out.extend(self.files_under(&path)),
            }
        }
        out
    }
}

/// A directory of the fake, by inode (it stays on the folder when that moves).
pub(crate) struct MemDir {
    fs: MemFs,
    ino: u64,
    path: PathBuf,
}

/// An open file of the fake, by inode.
pub(crate) struct MemFile {
    fs: MemFs,
    ino: u64,
}

impl Root for MemFs {
    type Dir = MemDir;

    fn top(&self) -> Result<MemDir> {
        Ok(MemDir {
            fs: self.clone(),
            ino: ROOT,
            path: PathBuf::from("/mem"),
        })
    }

    fn dir(&self, rel: &str) -> Result<MemDir> {
        let path = Path::new("/mem").join(rel);
        self.enter(Op::OpenDir)
            .and_then(|()| self.lock().walk(rel))
            .map(|ino| MemDir {
                fs: self.clone(),
                ino,
                path: path.clone(),
            })
            .map_err(|e| crate::replica::beneath::refusal(e, &path))
    }
}

impl MemDir {
    fn run<T>(
        &self,
        op: Op,
        action: &'static str,
        name: &OsStr,
        f: impl FnOnce(&mut State) -> std::io::Result<T>,
    ) -> Result<T> {
        self.fs
            .enter(op)
            .and_then(|()| f(&mut self.fs.lock()))
            .ctx(action, self.show(name))
    }

    fn child(&self, s: &State, name: &OsStr) -> std::io::Result<u64> {
        s.lookup(self.ino, name)?.ok_or_else(|| errno(libc::ENOENT))
    }

    fn set(&self, name: &OsStr, action: &'static str, f: impl FnOnce(&mut Node)) -> Result<()> {
        self.run(Op::SetAttr, action, name, |s| {
            let ino = self.child(s, name)?;
            let now = s.tick();
            let n = s.nodes.get_mut(&ino).ok_or_else(|| errno(libc::ENOENT))?;
            f(n);
            n.ctime_ns = now;
            Ok(())
        })
    }
}

impl Dir for MemDir {
    type File = MemFile;

    fn show(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn lstat(&self, name: &OsStr) -> Result<Option<Found>> {
        self.run(Op::Lstat, "stat", name, |s| {
            match s.lookup(self.ino, name)? {
                Some(ino) => s.found(ino).map(Some),
                None => Ok(None),
            }
        })
    }
    fn subdir(&self, name: &OsStr) -> Result<MemDir> {
        let path = self.show(name);
        self.fs
            .enter(Op::OpenDir)
            .and_then(|()| {
                let s = self.fs.lock();
                let ino = self.child(&s, name)?;
                match s.node(ino)?.body {
                    Body::Dir(_) => Ok(ino),
                    Body::Symlink(_) => Err(errno(libc::ELOOP)),
                    Body::File(_) => Err(errno(libc::ENOTDIR)),
                }
            })
            .map(|ino| MemDir {
                fs: self.fs.clone(),
                ino,
                path: path.clone(),
            })
            .map_err(|e| crate::replica::beneath::refusal(e, &path))
    }
    fn subdir_or_create(&self, name: &OsStr, mode: u32) -> Result<MemDir> {
        match self.mkdir(name, mode) {
            Ok(()) => {}
            Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e),
        }
        self.subdir(name)
    }
    fn open_file(&self, name: &OsStr) -> Result<MemFile> {
        let ino = self.run(Op::OpenFile, "open", name, |s| {
            let ino = self.child(s, name)?;
            match s.node(ino)?.body {
                Body::Symlink(_) => Err(errno(libc::ELOOP)),
                _ => Ok(ino),
            }
        })?;
        if self.fs.lock().found(ino).ok().and_then(|f| f.kind) != Some(EntryKind::File) {
            return Err(Error::Refused(format!(
                "{} is not a regular file (any more); not read",
                self.show(name).display()
            )));
        }
        Ok(MemFile {
            fs: self.fs.clone(),
            ino,
        })
    }
    fn create_new(&self, name: &OsStr) -> Result<MemFile> {
        let ino = self.run(Op::Create, "create", name, |s| {
            s.add(self.ino, name, Body::File(Vec::new()), 0o600)
        })?;
        Ok(MemFile {
            fs: self.fs.clone(),
            ino,
        })
    }
    fn rename_at(
        &self,
        from: &OsStr,
        dest: &MemDir,
        to: &OsStr,
        how: Rename,
    ) -> std::io::Result<()> {
        self.fs.enter(Op::Rename(how))?;
        let mut s = self.fs.lock();
        let src = self.child(&s, from)?;
        let target = s.lookup(dest.ino, to)?;
        match (how, target) {
            (Rename::NoReplace, Some(_)) => Err(errno(libc::EEXIST)),
            (Rename::Exchange, None) => Err(errno(libc::ENOENT)),
            (Rename::Exchange, Some(t)) => {
                s.entries_mut(self.ino)?.insert(from.to_os_string(), t);
                s.entries_mut(dest.ino)?.insert(to.to_os_string(), src);
                let now = s.tick();
                for i in [src, t] {
                    if let Some(n) = s.nodes.get_mut(&i) {
                        n.ctime_ns = now;
                    }
                }
                Ok(())
            }
            (_, target) => {
                if let Some(t) = target {
                    if matches!(s.node(t)?.body, Body::Dir(_)) {
                        return Err(errno(libc::EISDIR));
                    }
                    s.detach(dest.ino, to)?;
                }
                s.detach(self.ino, from)?;
                s.attach(dest.ino, to, src)
            }
        }
    }
    fn unlink(&self, name: &OsStr) -> Result<()> {
        self.run(Op::Unlink, "delete", name, |s| {
            let ino = self.child(s, name)?;
            if matches!(s.node(ino)?.body, Body::Dir(_)) {
                return Err(errno(libc::EISDIR));
            }
            s.detach(self.ino, name).map(|_| ())
        })
    }
    fn rmdir(&self, name: &OsStr) -> Result<()> {
        self.run(Op::Rmdir, "remove directory", name, |s| {
            let ino = self.child(s, name)?;
            if !s.entries(ino)?.is_empty() {
                return Err(errno(libc::ENOTEMPTY));
            }
            s.detach(self.ino, name).map(|_| ())
        })
    }
    fn mkdir(&self, name: &OsStr, mode: u32) -> Result<()> {
        self.run(Op::Mkdir, "create directory", name, |s| {
            s.add(self.ino, name, Body::Dir(BTreeMap::new()), mode)
                .map(|_| ())
        })
    }
    fn set_mtime(&self, name: &OsStr, mtime_ns: i64) -> Result<()> {
        self.set(name, "set mtime", |n| n.mtime_ns = mtime_ns)
    }
    fn chmod(&self, name: &OsStr, mode: u32) -> Result<()> {
        if self.lstat(name)?.and_then(|f| f.kind) == Some(EntryKind::Symlink) {
            return Err(Error::Refused(format!(
                "{} is a symlink; permissions not set",
                self.show(name).display()
            )));
        }
        self.set(name, "set permissions", |n| n.mode = mode)
    }
    fn chown(&self, name: &OsStr, uid: u32, _gid: u32) -> Result<()> {
        self.set(name, "set owner", |n| n.uid = uid)
    }
    fn names(&self) -> Result<Vec<OsString>> {
        self.run(Op::List, "list", OsStr::new(""), |s| {
            Ok(s.entries(self.ino)?.keys().cloned().collect())
        })
    }
    fn owner(&self) -> Result<u32> {
        Ok(self.fs.lock().found(self.ino).ctx("stat", &self.path)?.uid)
    }
    fn is_trusted(&self, also: u32) -> Result<bool> {
        let f = self.fs.lock().found(self.ino).ctx("stat", &self.path)?;
        let me = crate::replica::fs_ops::euid();
        Ok((f.uid == me || f.uid == also) && f.stat.mode & 0o022 == 0)
    }
}

impl MemFile {
    fn set(&self, shown: &Path, action: &'static str, f: impl FnOnce(&mut Node)) -> Result<()> {
        self.fs
            .enter(Op::SetAttr)
            .and_then(|()| {
                let mut s = self.fs.lock();
                let now = s.tick();
                let n = s
                    .nodes
                    .get_mut(&self.ino)
                    .ok_or_else(|| errno(libc::ENOENT))?;
                f(n);
                n.ctime_ns = now;
                Ok(())
            })
            .ctx(action, shown)
    }
}

impl FileOps for MemFile {
    fn set_mode(&self, mode: u32, shown: &Path) -> Result<()> {
        self.set(shown, "set permissions", |n| n.mode = mode)
    }
    fn set_mtime(&self, mtime_ns: i64, shown: &Path) -> Result<()> {
        self.set(shown, "set mtime", |n| n.mtime_ns = mtime_ns)
    }
    fn set_owner(&self, uid: u32, _gid: u32, shown: &Path) -> Result<()> {
        self.set(shown, "set owner", |n| n.uid = uid)
    }
    fn copy_from(&self, src: &MemFile, shown: &Path, moved: &dyn Fn(u64)) -> Result<u64> {
        let n = self
            .fs
            .enter(Op::Copy)
            .and_then(|()| {
                let mut s = self.fs.lock();
                let bytes = match &s.node(src.ino)?.body {
                    Body::File(b) => b.clone(),
                    _ => return Err(errno(libc::EINVAL)),
                };
                let n = bytes.len() as u64;
                let now = s.tick();
                let node = s
                    .nodes
                    .get_mut(&self.ino)
                    .ok_or_else(|| errno(libc::ENOENT))?;
                node.body = Body::File(bytes);
                node.mtime_ns = now;
                node.ctime_ns = now;
                Ok(n)
            })
            .ctx("copy from", shown)?;
        moved(n);
        Ok(n)
    }
}
