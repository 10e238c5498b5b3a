//! Disk access confined to a location's root (safety rule 4).
//!
//! Every operation of a run is made relative to a directory handle opened from the
//! root's handle, and no step of it follows a symlink: a parent directory is opened
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` (or, where the kernel lacks
//! it or the path is longer than `PATH_MAX`, one `openat(O_NOFOLLOW | O_DIRECTORY)`
//! per component), and the last component is handled by `*at` calls that do not follow
//! it. A directory swapped for a symlink makes the operation fail; one swapped for
//! another real directory is still inside the root. Nothing is cached by path across
//! actions: each action opens its parent afresh, and what it does there goes through
//! that handle. The one exception is a worker's run of neighbouring reads and stagings
//! (at most 32 paths, `parallel.rs`), which opens each folder once ([`ParentMemo`]);
//! what is staged there is installed through a parent opened afresh.

use crate::error::{Error, IoContext, Result};
use crate::model::entry::{EntryKind, StatInfo};
use crate::model::rel_path::RelPath;
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, ResolveFlags};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Relative paths longer than this are opened component by component (`openat2`
/// refuses paths over `PATH_MAX`).
const LONG_PATH: usize = 3_000;

/// Set once `openat2` answered `ENOSYS` (kernels before 5.6): walk by components.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// A location's root, open. Everything below it is reached through this handle.
#[derive(Debug)]
pub struct RootDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// The folder a worker's run opened last (see [`RootDir::parent_in`]): files of one
/// folder come in runs, so their folder is opened once per run, not once per file.
#[derive(Debug, Default)]
pub(crate) struct ParentMemo {
    last: Option<(PathBuf, String, DirHandle)>,
}

impl ParentMemo {
    /// Forgets the open folder (the end of a run).
    pub(crate) fn clear(&mut self) {
        self.last = None;
    }
}

/// An open directory below (or at) a root, with its path for messages.
#[derive(Debug)]
pub struct DirHandle {
    fd: OwnedFd,
    path: PathBuf,
}

/// What `lstat` found at a name: its kind (`None` for fifos, sockets, devices), its
/// stat as the index keeps it, and what else the executor checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub kind: Option<EntryKind>,
    pub stat: StatInfo,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub dev: u64,
}

fn os(e: rustix::io::Errno) -> std::io::Error {
    std::io::Error::from(e)
}

/// Whether an error means "a symlink (or a non-directory) stood where a directory was
/// expected".
fn is_link_refusal(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ELOOP) | Some(libc::EXDEV) | Some(libc::ENOTDIR)
    )
}

impl RootDir {
    /// Opens the directory at `path` (which must not itself be a symlink).
    pub fn open(path: &Path) -> Result<RootDir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(os)
        .ctx("open root", path)?;
        Ok(RootDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root itself, as a directory handle.
    pub fn top(&self) -> Result<DirHandle> {
        let fd = rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)
            .map_err(os)
            .ctx("open", &self.path)?;
        Ok(DirHandle {
            fd,
            path: self.path.clone(),
        })
    }

    /// Opens the directory `rel` (a key of the index, or a path below `.ferry/`)
    /// beneath the root without following any symlink.
    pub fn dir(&self, rel: &str) -> Result<DirHandle> {
        if rel.is_empty() {
            return self.top();
        }
        let bytes = crate::model::rel_path::decode(rel);
        let path = crate::model::rel_path::key_under(&self.path, rel);
        let fd = open_beneath(self.fd.as_fd(), &bytes).map_err(|e| refusal(e, &path))?;
        Ok(DirHandle { fd, path })
    }

    /// The parent directory of `rel`, open, and `rel`'s last component.
    pub fn parent(&self, rel: &RelPath) -> Result<(DirHandle, OsString)> {
        let dir = match rel.parent() {
            Some(p) => self.dir(p.as_str())?,
            None => self.top()?,
        };
        let name = OsString::from_vec(crate::model::rel_path::decode(rel.file_name()).into_owned());
        Ok((dir, name))
    }

    /// [`RootDir::parent`] through `memo`: the parent directory stays open in the memo
    /// and serves the next path of the same folder under the same root. Only for the
    /// neighbouring paths of one worker's run (`parallel.rs` clears the memo between
    /// runs), so a folder is opened once per run rather than once per file; installs
    /// and removals still open their parent afresh.
    pub(crate) fn parent_in<'m>(
        &self,
        rel: &RelPath,
        memo: &'m mut ParentMemo,
    ) -> Result<(&'m DirHandle, OsString)> {
        let whole = rel.as_str();
        let parent = whole.rfind('/').map(|i| &whole[..i]).unwrap_or("");
        let name = OsString::from_vec(crate::model::rel_path::decode(rel.file_name()).into_owned());
        let hit = matches!(&memo.last, Some((root, key, _)) if root == &self.path && key == parent);
        if !hit {
            let dir = self.dir(parent)?;
            memo.last = Some((self.path.clone(), parent.to_string(), dir));
        }
        match &memo.last {
            Some((_, _, dir)) => Ok((dir, name)),
            None => Err(Error::Other("parent memo empty after filling it".into())),
        }
    }

    /// Makes everything written on the root's file system durable (one `syncfs`).
    pub fn sync_all(&self) -> Result<()> {
        rustix::fs::syncfs(&self.fd)
            .map_err(os)
            .ctx("syncfs", &self.path)
    }
}

/// The error of opening a directory: a symlink or file in the way is a refusal.
pub(crate) fn refusal(e: std::io::Error, path: &Path) -> Error {
    if is_link_refusal(&e) {
        Error::Refused(format!(
            "{} is not a real directory inside the location (a symlink or a file): not going through it",
            crate::model::rel_path::escape_os(path)
        ))
    } else {
        Error::Io {
            action: "open folder",
            path: path.to_path_buf(),
            source: e,
        }
    }
}

/// Opens `rel` (raw bytes, relative) beneath `root` as a directory, following no symlink.
fn open_beneath(root: BorrowedFd<'_>, rel: &[u8]) -> std::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if rel.len() < LONG_PATH && !NO_OPENAT2.load(Ordering::Relaxed) {
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        for _ in 0..8 {
            match rustix::fs::openat2(root, OsStr::from_bytes(rel), flags, Mode::empty(), resolve) {
                Ok(fd) => return Ok(fd),
                // A rename elsewhere on the file system raced the lookup: try again.
                Err(rustix::io::Errno::AGAIN) => continue,
                Err(rustix::io::Errno::NOSYS) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    break;
                }
                Err(e) => return Err(os(e)),
            }
        }
    }
    // Component by component, none followed if it is a symlink.
    let mut cur: Option<OwnedFd> = None;
    for comp in rel.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if comp == b".." || comp == b"." {
            return Err(std::io::Error::from_raw_os_error(libc::EXDEV));
        }
        let at = match &cur {
            Some(fd) => fd.as_fd(),
            None => root,
        };
        let next =
            rustix::fs::openat(at, OsStr::from_bytes(comp), flags, Mode::empty()).map_err(os)?;
        cur = Some(next);
    }
    match cur {
        Some(fd) => Ok(fd),
        None => rustix::io::fcntl_dupfd_cloexec(root, 0).map_err(os),
    }
}

#[allow(clippy::unnecessary_cast)]
fn found_of(st: &rustix::fs::Stat) -> Found {
    let mode = st.st_mode as u32;
    let kind = match mode & libc::S_IFMT {
        libc::S_IFREG => Some(EntryKind::File),
        libc::S_IFDIR => Some(EntryKind::Dir),
        libc::S_IFLNK => Some(EntryKind::Symlink),
        _ => None,
    };
    Found {
        kind,
        stat: StatInfo {
            size: st.st_size as u64,
            mtime_ns: st.st_mtime as i64 * 1_000_000_000 + st.st_mtime_nsec as i64,
            ctime_ns: st.st_ctime as i64 * 1_000_000_000 + st.st_ctime_nsec as i64,
            inode: st.st_ino as u64,
            mode: mode & 0o7777,
        },
        nlink: st.st_nlink as u64,
        uid: st.st_uid as u32,
        gid: st.st_gid as u32,
        dev: st.st_dev as u64,
    }
}

/// The stat of an open file.
pub(crate) fn fstat(f: &File, path: &Path) -> Result<Found> {
    let st = rustix::fs::fstat(f).map_err(os).ctx("stat", path)?;
    Ok(found_of(&st))
}

impl DirHandle {
    /// The path of `name` in this directory, for messages.
    pub fn show(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `lstat` of `name`; `None` when nothing is there.
    pub fn lstat(&self, name: &OsStr) -> Result<Option<Found>> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(found_of(&st))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(os(e)).ctx("stat", self.show(name)),
        }
    }

    /// Opens the regular file `name` for reading; a symlink there is refused, and so
    /// is a fifo or device (opened without blocking and checked: a fifo swapped in
    /// must not hang the run).
    ///
    /// Ferry's own reads leave the file's access time alone (`O_NOATIME`, where the
    /// kernel allows it: the file's owner, or root), so atime keeps saying when a user
    /// last read it (selective mode evicts by it).
    pub(crate) fn open_file(&self, name: &OsStr) -> Result<File> {
        self.open_file_found(name).map(|(f, _)| f)
    }

    /// [`DirHandle::open_file`], with what the open file's `fstat` found.
    pub(crate) fn open_file_found(&self, name: &OsStr) -> Result<(File, Found)> {
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        let fd = match rustix::fs::openat(&self.fd, name, flags | OFlags::NOATIME, Mode::empty()) {
            Err(rustix::io::Errno::PERM) => {
                rustix::fs::openat(&self.fd, name, flags, Mode::empty())
            }
            r => r,
        }
        .map_err(os)
        .ctx("open", self.show(name))?;
        let st = rustix::fs::fstat(&fd)
            .map_err(os)
            .ctx("stat", self.show(name))?;
        let found = found_of(&st);
        if found.kind != Some(EntryKind::File) {
            return Err(Error::Refused(format!(
                "{} is not a regular file (any more); not read",
                crate::model::rel_path::escape_os(self.show(name))
            )));
        }
        // O_NONBLOCK changes nothing for a regular file's reads: it stays.
        Ok((File::from(fd), found))
    }

    /// Opens the subdirectory `name` (not following a symlink).
    pub(crate) fn subdir(&self, name: &OsStr) -> Result<DirHandle> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| refusal(os(e), &self.show(name)))?;
        Ok(DirHandle {
            fd,
            path: self.show(name),
        })
    }

    /// Opens the subdirectory `name`, creating it (with `mode`) when absent.
    pub(crate) fn subdir_or_create(&self, name: &OsStr, mode: u32) -> Result<DirHandle> {
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(os(e)).ctx("create folder", self.show(name)),
        }
        self.subdir(name)
    }

    /// Creates a new file `name` (never an existing one) for reading and writing,
    /// readable by the owner only until its mode is set.
    pub fn create_new(&self, name: &OsStr) -> Result<File> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(os)
        .ctx("create", self.show(name))?;
        Ok(File::from(fd))
    }

    /// Opens the regular file `name` for writing, creating it (0644) when absent,
    /// never following a symlink there.
    pub(crate) fn open_or_create(&self, name: &OsStr) -> Result<File> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(os)
        .ctx("open", self.show(name))?;
        Ok(File::from(fd))
    }

    /// Opens the regular file `name` for reading and writing, creating it (0600) when
    /// absent, never following a symlink there.
    pub(crate) fn open_rw(&self, name: &OsStr) -> Result<File> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(os)
        .ctx("open", self.show(name))?;
        Ok(File::from(fd))
    }

    /// Whether this folder may hold what ferry keeps: owned by this process's user or
    /// by `also` (the root's owner), and writable by no one else.
    pub(crate) fn is_trusted(&self, also: u32) -> Result<bool> {
        let st = rustix::fs::fstat(&self.fd)
            .map_err(os)
            .ctx("stat", &self.path)?;
        let f = found_of(&st);
        let me = crate::replica::fs_ops::euid();
        Ok((f.uid == me || f.uid == also) && f.stat.mode & 0o022 == 0)
    }

    /// The owner of this folder.
    pub fn owner(&self) -> Result<u32> {
        let st = rustix::fs::fstat(&self.fd)
            .map_err(os)
            .ctx("stat", &self.path)?;
        Ok(found_of(&st).uid)
    }

    pub fn symlink(&self, target: &OsStr, name: &OsStr) -> Result<()> {
        rustix::fs::symlinkat(target, &self.fd, name)
            .map_err(os)
            .ctx("create symlink", self.show(name))
    }

    pub fn read_link(&self, name: &OsStr) -> Result<OsString> {
        let t = rustix::fs::readlinkat(&self.fd, name, Vec::new())
            .map_err(os)
            .ctx("read symlink", self.show(name))?;
        Ok(OsString::from_vec(t.into_bytes()))
    }

    pub fn mkdir(&self, name: &OsStr, mode: u32) -> Result<()> {
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode))
            .map_err(os)
            .ctx("create directory", self.show(name))
    }

    pub(crate) fn unlink(&self, name: &OsStr) -> Result<()> {
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())
            .map_err(os)
            .ctx("delete", self.show(name))
    }

    pub fn rmdir(&self, name: &OsStr) -> Result<()> {
        rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR)
            .map_err(os)
            .ctx("remove directory", self.show(name))
    }

    /// Renames `from` here to `to` in `dest` (which may be this directory); `flags`
    /// may ask for `RENAME_NOREPLACE` or `RENAME_EXCHANGE`. The raw error is returned
    /// so callers can tell `EEXIST` and `EINVAL` (flag unsupported) apart.
    pub(crate) fn rename_raw(
        &self,
        from: &OsStr,
        dest: &DirHandle,
        to: &OsStr,
        flags: RenameFlags,
    ) -> std::io::Result<()> {
        rustix::fs::renameat_with(&self.fd, from, &dest.fd, to, flags).map_err(os)
    }

    /// Swaps `a` and `b` of this directory atomically (`RENAME_EXCHANGE`).
    pub fn exchange(&self, a: &OsStr, b: &OsStr) -> Result<()> {
        self.rename_raw(a, self, b, RenameFlags::EXCHANGE)
            .ctx("replace", self.show(b))
    }

    /// Sets the mtime (and atime) of `name` without following a symlink there.
    pub fn set_mtime(&self, name: &OsStr, mtime_ns: i64) -> Result<()> {
        let t = timespec(mtime_ns);
        let ts = rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        };
        rustix::fs::utimensat(&self.fd, name, &ts, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(os)
            .ctx("set mtime", self.show(name))
    }

    /// Sets the permission bits of `name`, which must not be a symlink (checked on
    /// an `O_PATH` handle, then changed through it, so a swap in between cannot
    /// redirect the change).
    pub fn chmod(&self, name: &OsStr, mode: u32) -> Result<()> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(os)
        .ctx("set permissions", self.show(name))?;
        let st = rustix::fs::fstat(&fd)
            .map_err(os)
            .ctx("set permissions", self.show(name))?;
        if found_of(&st).kind == Some(EntryKind::Symlink) {
            return Err(Error::Refused(format!(
                "{} is a symlink; permissions not set",
                crate::model::rel_path::escape_os(self.show(name))
            )));
        }
        let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        rustix::fs::chmod(proc.as_str(), Mode::from_raw_mode(mode))
            .map_err(os)
            .ctx("set permissions", self.show(name))
    }

    /// Sets the owner of `name` without following a symlink there.
    pub fn chown(&self, name: &OsStr, uid: u32, gid: u32) -> Result<()> {
        let (u, g) = (
            rustix::fs::Uid::from_raw(uid),
            rustix::fs::Gid::from_raw(gid),
        );
        rustix::fs::chownat(&self.fd, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(os)
            .ctx("set owner", self.show(name))
    }

    /// The names in this directory (not `.` and `..`).
    pub fn names(&self) -> Result<Vec<OsString>> {
        let fd = rustix::fs::openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(os)
        .ctx("list", &self.path)?;
        let mut dir = rustix::fs::Dir::read_from(&fd)
            .map_err(os)
            .ctx("list", &self.path)?;
        let mut out = Vec::new();
        while let Some(item) = dir.read() {
            let item = item.map_err(os).ctx("list", &self.path)?;
            let n = item.file_name().to_bytes();
            if n != b"." && n != b".." {
                out.push(OsString::from_vec(n.to_vec()));
            }
        }
        Ok(out)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn timespec(ns: i64) -> rustix::fs::Timespec {
    rustix::fs::Timespec {
        tv_sec: ns.div_euclid(1_000_000_000),
        tv_nsec: ns.rem_euclid(1_000_000_000) as _,
    }
}

/// Sets a file's mtime through its open handle.
pub fn set_file_mtime(f: &File, mtime_ns: i64, path: &Path) -> Result<()> {
    let t = timespec(mtime_ns);
    let ts = rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::futimens(f, &ts)
        .map_err(os)
        .ctx("set mtime", path)
}

/// Sets a file's permission bits through its open handle.
pub(crate) fn set_file_mode(f: &File, mode: u32, path: &Path) -> Result<()> {
    rustix::fs::fchmod(f, Mode::from_raw_mode(mode))
        .map_err(os)
        .ctx("set permissions", path)
}

/// Sets a file's owner through its open handle.
pub(crate) fn set_file_owner(f: &File, uid: u32, gid: u32, path: &Path) -> Result<()> {
    let (u, g) = (
        rustix::fs::Uid::from_raw(uid),
        rustix::fs::Gid::from_raw(gid),
    );
    rustix::fs::fchown(f, Some(u), Some(g))
        .map_err(os)
        .ctx("set owner", path)
}

/// Copies the `user.` extended attributes of `from` onto `to` (other namespaces are
/// the system's: security labels, ACLs, which a sync does not grant). Returns the
/// names that could not be set there (e.g. a file system without xattrs).
pub(crate) fn copy_user_xattrs(from: &File, to: &File) -> std::io::Result<Vec<String>> {
    let n = match rustix::fs::flistxattr_query(from) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(os(e)),
    };
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut list = vec![0u8; n];
    let len = rustix::fs::flistxattr(from, &mut list[..]).map_err(os)?;
    let mut failed = Vec::new();
    for name in list[..len.min(n)].split(|&b| b == 0) {
        if !name.starts_with(b"user.") {
            continue;
        }
        let name = OsStr::from_bytes(name);
        let size = rustix::fs::fgetxattr_query(from, name).map_err(os)?;
        let mut value = vec![0u8; size];
        let got = rustix::fs::fgetxattr(from, name, &mut value[..]).map_err(os)?;
        if rustix::fs::fsetxattr(
            to,
            name,
            &value[..got.min(size)],
            rustix::fs::XattrFlags::empty(),
        )
        .is_err()
        {
            failed.push(name.to_string_lossy().into_owned());
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlinked_parent_is_refused_and_a_real_one_opens() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("real")).unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("link")).unwrap();
        let root = RootDir::open(t.path()).unwrap();
        assert!(root.dir("real").is_ok());
        let e = root.dir("link").unwrap_err();
        assert!(matches!(e, Error::Refused(_)), "{e}");
        let e = root.parent(&RelPath::new("link/x").unwrap()).unwrap_err();
        assert!(matches!(e, Error::Refused(_)), "{e}");
        // The component walk refuses it too.
        let e = open_beneath(root.fd.as_fd(), b"link/").unwrap_err();
        assert!(is_link_refusal(&e), "{e}");
    }

    /// A memo serves the folder of each path, whatever order the folders come in, and
    /// refuses a symlinked folder as `parent` does.
    #[test]
    fn a_parent_memo_opens_the_right_folder_for_each_path() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        for (dir, file) in [("a", "x"), ("b", "y"), ("a/c", "z")] {
            std::fs::create_dir_all(t.path().join(dir)).unwrap();
            std::fs::write(t.path().join(dir).join(file), file).unwrap();
        }
        std::fs::write(t.path().join("top"), "top").unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("link")).unwrap();
        std::fs::write(outside.path().join("x"), "outside").unwrap();
        let root = RootDir::open(t.path()).unwrap();
        let mut memo = ParentMemo::default();
        for (rel, want) in [
            ("a/x", "x"),
            ("b/y", "y"),
            ("a/x", "x"),
            ("a/c/z", "z"),
            ("top", "top"),
            ("a/x", "x"),
        ] {
            let (dir, name) = root
                .parent_in(&RelPath::new(rel).unwrap(), &mut memo)
                .unwrap();
            assert_eq!(dir.path(), t.path().join(rel).parent().unwrap(), "{rel}");
            let got = std::io::read_to_string(dir.open_file(&name).unwrap()).unwrap();
            assert_eq!(got, want, "{rel}");
        }
        let e = root
            .parent_in(&RelPath::new("link/x").unwrap(), &mut memo)
            .unwrap_err();
        assert!(matches!(e, Error::Refused(_)), "{e}");
        // A second root with a folder of the same name is not served the first's.
        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir(other.path().join("a")).unwrap();
        std::fs::write(other.path().join("a/x"), "other").unwrap();
        let root2 = RootDir::open(other.path()).unwrap();
        let (dir, name) = root2
            .parent_in(&RelPath::new("a/x").unwrap(), &mut memo)
            .unwrap();
        let got = std::io::read_to_string(dir.open_file(&name).unwrap()).unwrap();
        assert_eq!(got, "other");
    }

    #[test]
    fn paths_longer_than_path_max_open_component_by_component() {
        let t = tempfile::tempdir().unwrap();
        let name = "d".repeat(200);
        let mut rel = String::new();
        let root = RootDir::open(t.path()).unwrap();
        let mut dir = root.top().unwrap();
        for _ in 0..25 {
            dir = dir.subdir_or_create(OsStr::new(&name), 0o755).unwrap();
            rel.push_str(&name);
            rel.push('/');
        }
        rel.pop();
        assert!(rel.len() > 4096);
        let d = root.dir(&rel).unwrap();
        let f = d.create_new(OsStr::new("f")).unwrap();
        drop(f);
        assert!(d.lstat(OsStr::new("f")).unwrap().is_some());
    }
}
