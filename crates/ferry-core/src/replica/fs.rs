//! The file-system seam under a local replica's disk steps (`disk`, `version_store`):
//! the operations they need, openat-style, so the same steps run on the real disk
//! ([`RootDir`], [`DirHandle`], [`File`]) and on an in-memory fake in tests
//! (`mem_fs`), where faults and racing saves can be injected at any operation.
//!
//! The traits carry the safety guarantees, they do not leave them to the caller:
//! - everything is reached from a root through directory handles ([`Root::dir`]
//!   never follows a symlink: one in the way is refused, rule 4);
//! - a name is only ever looked at with `lstat` and opened without following it;
//! - a rename never silently replaces a synced path: it is [`Rename::NoReplace`] or an
//!   atomic [`Rename::Exchange`] (rules 2 and 3); only ferry's own files inside the
//!   version store may be replaced ([`Rename::StoreOnly`]).

use crate::error::Result;
use crate::model::rel_path::RelPath;
use crate::replica::beneath::{DirHandle, Found, RootDir};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::path::{Path, PathBuf};

/// How a rename treats its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rename {
    /// Only while nothing is at the target (`RENAME_NOREPLACE`): `EEXIST` otherwise.
    NoReplace,
    /// Swaps source and target atomically (`RENAME_EXCHANGE`): both must exist.
    Exchange,
    /// Replaces the target: only for ferry's own files inside the version store.
    StoreOnly,
}

/// A location's root, open: every directory of a run is opened from it.
pub(crate) trait Root {
    /// An open directory below the root.
    type Dir: Dir;

    /// The root itself, as a directory handle.
    fn top(&self) -> Result<Self::Dir>;

    /// Opens the directory `rel` (an index key) beneath the root, following no
    /// symlink; one in the way is `Error::Refused`.
    fn dir(&self, rel: &str) -> Result<Self::Dir>;

    /// The parent directory of `rel`, open, and `rel`'s last component.
    fn parent(&self, rel: &RelPath) -> Result<(Self::Dir, OsString)> {
        let dir = match rel.parent() {
            Some(p) => self.dir(p.as_str())?,
            None => self.top()?,
        };
        let name = std::os::unix::ffi::OsStringExt::from_vec(
            crate::model::rel_path::decode(rel.file_name()).into_owned(),
        );
        Ok((dir, name))
    }
}

/// An open directory: operations on the names in it, none following a symlink at
/// the name.
pub(crate) trait Dir: Sized {
    /// An open regular file of this file system.
    type File: FileOps;

    /// The path of `name` in this directory, for messages.
    fn show(&self, name: &OsStr) -> PathBuf;
    /// This directory's path, for messages.
    fn path(&self) -> &Path;
    /// `lstat` of `name`; `None` when nothing is there.
    fn lstat(&self, name: &OsStr) -> Result<Option<Found>>;
    /// Opens the subdirectory `name` (a symlink there is refused).
    fn subdir(&self, name: &OsStr) -> Result<Self>;
    /// Opens the subdirectory `name`, creating it (with `mode`) when absent.
    fn subdir_or_create(&self, name: &OsStr, mode: u32) -> Result<Self>;
    /// Opens the regular file `name` for reading (anything else is refused).
    fn open_file(&self, name: &OsStr) -> Result<Self::File>;
    /// Creates a new file `name` (never an existing one), owner-only until its mode
    /// is set.
    fn create_new(&self, name: &OsStr) -> Result<Self::File>;
    /// Renames `from` here to `to` in `dest` (which may be this directory). The raw
    /// error is returned so callers can tell `EEXIST`, `EXDEV` and `EINVAL` apart.
    fn rename_at(&self, from: &OsStr, dest: &Self, to: &OsStr, how: Rename) -> std::io::Result<()>;
    /// Removes the file or symlink `name`.
    fn unlink(&self, name: &OsStr) -> Result<()>;
    /// Removes the empty directory `name`.
    fn rmdir(&self, name: &OsStr) -> Result<()>;
    /// Creates the directory `name`.
    fn mkdir(&self, name: &OsStr, mode: u32) -> Result<()>;
    /// Sets the mtime of `name` (a symlink's own).
    fn set_mtime(&self, name: &OsStr, mtime_ns: i64) -> Result<()>;
    /// Sets the permission bits of `name`, which must not be a symlink.
    fn chmod(&self, name: &OsStr, mode: u32) -> Result<()>;
    /// Sets the owner of `name` (a symlink's own).
    fn chown(&self, name: &OsStr, uid: u32, gid: u32) -> Result<()>;
    /// The names in this directory.
    fn names(&self) -> Result<Vec<OsString>>;
    /// The owner of this directory.
    fn owner(&self) -> Result<u32>;
    /// Whether this directory may hold what ferry keeps (see `DirHandle::is_trusted`).
    fn is_trusted(&self, also: u32) -> Result<bool>;
}

/// An open regular file. `shown` names it in errors.
pub(crate) trait FileOps {
    /// Sets its permission bits.
    fn set_mode(&self, mode: u32, shown: &Path) -> Result<()>;
    /// Sets its mtime.
    fn set_mtime(&self, mtime_ns: i64, shown: &Path) -> Result<()>;
    /// Sets its owner.
    fn set_owner(&self, uid: u32, gid: u32, shown: &Path) -> Result<()>;
    /// Copies all of `src` into this empty file (reflink or kernel copy on a real
    /// disk); `moved` hears the bytes as they go.
    fn copy_from(&self, src: &Self, shown: &Path, moved: &dyn Fn(u64)) -> Result<u64>;
}

impl Root for RootDir {
    type Dir = DirHandle;

    fn top(&self) -> Result<DirHandle> {
        RootDir::top(self)
    }
    fn dir(&self, rel: &str) -> Result<DirHandle> {
        RootDir::dir(self, rel)
    }
    fn parent(&self, rel: &RelPath) -> Result<(DirHandle, OsString)> {
        RootDir::parent(self, rel)
    }
}

impl Dir for DirHandle {
    type File = File;

    fn show(&self, name: &OsStr) -> PathBuf {
        DirHandle::show(self, name)
    }
    fn path(&self) -> &Path {
        DirHandle::path(self)
    }
    fn lstat(&self, name: &OsStr) -> Result<Option<Found>> {
        DirHandle::lstat(self, name)
    }
    fn subdir(&self, name: &OsStr) -> Result<Self> {
        DirHandle::subdir(self, name)
    }
    fn subdir_or_create(&self, name: &OsStr, mode: u32) -> Result<Self> {
        DirHandle::subdir_or_create(self, name, mode)
    }
    fn open_file(&self, name: &OsStr) -> Result<File> {
        DirHandle::open_file(self, name)
    }
    fn create_new(&self, name: &OsStr) -> Result<File> {
        DirHandle::create_new(self, name)
    }
    fn rename_at(&self, from: &OsStr, dest: &Self, to: &OsStr, how: Rename) -> std::io::Result<()> {
        use rustix::fs::RenameFlags;
        let flags = match how {
            Rename::NoReplace => RenameFlags::NOREPLACE,
            Rename::Exchange => RenameFlags::EXCHANGE,
            Rename::StoreOnly => RenameFlags::empty(),
        };
        self.rename_raw(from, dest, to, flags)
    }
    fn unlink(&self, name: &OsStr) -> Result<()> {
        DirHandle::unlink(self, name)
    }
    fn rmdir(&self, name: &OsStr) -> Result<()> {
        DirHandle::rmdir(self, name)
    }
    fn mkdir(&self, name: &OsStr, mode: u32) -> Result<()> {
        DirHandle::mkdir(self, name, mode)
    }
    fn set_mtime(&self, name: &OsStr, mtime_ns: i64) -> Result<()> {
        DirHandle::set_mtime(self, name, mtime_ns)
    }
    fn chmod(&self, name: &OsStr, mode: u32) -> Result<()> {
        DirHandle::chmod(self, name, mode)
    }
    fn chown(&self, name: &OsStr, uid: u32, gid: u32) -> Result<()> {
        DirHandle::chown(self, name, uid, gid)
    }
    fn names(&self) -> Result<Vec<OsString>> {
        DirHandle::names(self)
    }
    fn owner(&self) -> Result<u32> {
        DirHandle::owner(self)
    }
    fn is_trusted(&self, also: u32) -> Result<bool> {
        DirHandle::is_trusted(self, also)
    }
}

impl FileOps for File {
    fn set_mode(&self, mode: u32, shown: &Path) -> Result<()> {
        crate::replica::beneath::set_file_mode(self, mode, shown)
    }
    fn set_mtime(&self, mtime_ns: i64, shown: &Path) -> Result<()> {
        crate::replica::beneath::set_file_mtime(self, mtime_ns, shown)
    }
    fn set_owner(&self, uid: u32, gid: u32, shown: &Path) -> Result<()> {
        crate::replica::beneath::set_file_owner(self, uid, gid, shown)
    }
    fn copy_from(&self, src: &Self, shown: &Path, moved: &dyn Fn(u64)) -> Result<u64> {
        crate::replica::fs_ops::clone_or_copy(src, self, shown, moved)
    }
}
