//! The version store: what ferry overwrites or deletes is kept under
//! `.ferry/versions/` (safety rule 3), recorded in the index, restorable.
//!
//! A version is the displaced file itself, *moved* into the store (a rename inside the
//! location: no bytes copied, and the path never holds anything but the old or the new
//! content). The move is then checked: the inode that arrived must be the one the index
//! describes, or the caller puts it back (a save that landed at the last moment is
//! never taken for the old content). A file with other hard links is copied instead of
//! kept as one more link, so no outside link can rewrite a kept version. The store's
//! folders are private (0700): nobody reads a version who could not read the original.

use crate::beneath::{DirHandle, Found, RootDir};
use crate::entry::{Entry, EntryKind};
use crate::error::{Error, IoContext, Result};
use crate::ignore_rules::FERRY_DIR;
use crate::index::Index;
use crate::location::Location;
use crate::rel_path::{shorten_name, RelPath, NAME_MAX};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;

/// Mode of the store's folders.
const PRIVATE: u32 = 0o700;

/// The version folder for `rel`'s parent, open (created private where missing), and
/// the stored key prefix (`.ferry/versions/<parent>/`). `.ferry` or any folder of the
/// store that is a symlink is refused.
pub(crate) fn version_dir(root: &RootDir, rel: &RelPath) -> Result<(DirHandle, String)> {
    let top = root.top()?;
    let ferry = top.subdir_or_create(OsStr::new(FERRY_DIR), 0o755)?;
    let mut dir = ferry.subdir_or_create(OsStr::new("versions"), PRIVATE)?;
    // Older stores were made 0755: the top of the store is what keeps it private.
    let st = top_mode(&ferry)?;
    if st & 0o077 != 0 {
        ferry.chmod(OsStr::new("versions"), PRIVATE)?;
    }
    let mut key = format!("{FERRY_DIR}/versions/");
    if let Some(parent) = rel.parent() {
        for comp in parent.as_str().split('/') {
            let name = OsString::from_vec(crate::rel_path::decode(comp).into_owned());
            dir = dir.subdir_or_create(&name, PRIVATE)?;
            key.push_str(comp);
            key.push('/');
        }
    }
    Ok((dir, key))
}

fn top_mode(ferry: &DirHandle) -> Result<u32> {
    Ok(ferry
        .lstat(OsStr::new("versions"))?
        .map(|f| f.stat.mode)
        .unwrap_or(PRIVATE))
}

/// A free name in `dir` for a version of `rel` taken now (stored key and name).
fn free_name(dir: &DirHandle, key_prefix: &str, rel: &RelPath) -> Result<(String, OsString)> {
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S-%9f").to_string();
    // Room for "~stamp" and a "-N" counter within the file-name limit.
    let name = shorten_name(rel.file_name(), NAME_MAX - stamp.len() - 6);
    let base = format!("{name}~{stamp}");
    let mut key = base.clone();
    let mut n = 1;
    loop {
        let os = OsString::from_vec(crate::rel_path::decode(&key).into_owned());
        if dir.lstat(&os)?.is_none() {
            return Ok((format!("{key_prefix}{key}"), os));
        }
        n += 1;
        key = format!("{base}-{n}");
    }
}

/// Whether what lstat found is the thing `expected` describes: same kind and inode,
/// same size, mtime and mode (a rename changes only the ctime).
pub fn is_same(found: &Found, expected: &Entry) -> bool {
    found.kind == Some(expected.kind)
        && found.stat.inode == expected.stat.inode
        && found.stat.size == expected.stat.size
        && found.stat.mtime_ns == expected.stat.mtime_ns
        && found.stat.mode == expected.stat.mode
}

/// A version just moved into the store, not yet recorded.
pub struct Taken {
    dir: DirHandle,
    name: OsString,
    /// Stored key, relative to the root.
    pub stored: String,
    /// What arrived, read after the move.
    pub found: Found,
}

/// A free name for a new version of `rel`, in its version folder (open).
pub struct Slot {
    pub dir: DirHandle,
    pub name: OsString,
    /// Stored key, relative to the root.
    pub stored: String,
}

/// A free slot for a version of `rel` taken now (its folder created private where
/// missing).
pub fn slot(root: &RootDir, rel: &RelPath) -> Result<Slot> {
    let (dir, prefix) = version_dir(root, rel)?;
    let (stored, name) = free_name(&dir, &prefix, rel)?;
    Ok(Slot { dir, name, stored })
}

impl Slot {
    /// What is in the slot now, as a version to record or put back.
    pub fn arrived(self) -> Result<Taken> {
        let found = self.dir.lstat(&self.name)?.ok_or_else(|| {
            Error::Other(format!(
                "version {} vanished right after it was kept",
                crate::rel_path::display_key(&self.stored)
            ))
        })?;
        Ok(Taken {
            dir: self.dir,
            name: self.name,
            stored: self.stored,
            found,
        })
    }
}

/// Moves `name` of `from` (the parent of `rel`) into `rel`'s version folder. Returns
/// what arrived there; the caller checks it and either records it ([`Taken::record`])
/// or puts it back ([`Taken::put_back`]).
pub fn take(root: &RootDir, from: &DirHandle, name: &OsStr, rel: &RelPath) -> Result<Taken> {
    let slot = slot(root, rel)?;
    from.rename_raw(
        name,
        &slot.dir,
        &slot.name,
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .ctx("keep version of", from.show(name))?;
    slot.arrived()
}

impl Taken {
    /// Records the version in the index. A file that has other hard links is first
    /// replaced in the store by a copy of its own, so no outside link can change it.
    /// `hash` is the content's BLAKE3 where known (the index entry it was checked
    /// against); size and mtime are what arrived.
    pub fn record(
        self,
        index: &Index,
        loc: &Location,
        rel: &RelPath,
        hash: Option<&crate::chunk::Hash>,
        reason: &str,
    ) -> Result<String> {
        if self.found.kind == Some(EntryKind::File) && self.found.nlink > 1 {
            self.make_private_copy()?;
        }
        index.insert_version(
            loc.id(),
            rel,
            &self.stored,
            self.found.stat.size,
            hash,
            self.found.stat.mtime_ns,
            reason,
        )?;
        Ok(self.stored)
    }

    /// Moves the taken file back to `name` of `to`, only while that name is free.
    /// Returns `false` (and leaves it in the store, unrecorded) when something else
    /// took the name meanwhile.
    pub fn put_back(&self, to: &DirHandle, name: &OsStr) -> Result<bool> {
        match self
            .dir
            .rename_raw(&self.name, to, name, rustix::fs::RenameFlags::NOREPLACE)
        {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e).ctx("put back", to.show(name)),
        }
    }

    /// Swaps the taken file with `name` of `to` (undoing an exchange).
    pub fn exchange_with(&self, to: &DirHandle, name: &OsStr) -> Result<()> {
        self.dir
            .rename_raw(&self.name, to, name, rustix::fs::RenameFlags::EXCHANGE)
            .ctx("put back", to.show(name))
    }

    /// The same slot, read again (after an exchange changed what is in it).
    pub fn refresh(self) -> Result<Taken> {
        Slot {
            dir: self.dir,
            name: self.name,
            stored: self.stored,
        }
        .arrived()
    }

    /// Removes what is in the slot without recording it (ferry's own staged copy).
    pub fn discard(self) -> Result<()> {
        self.dir.unlink(&self.name)
    }

    fn make_private_copy(&self) -> Result<()> {
        let shown = self.dir.show(&self.name);
        let src = self.dir.open_file(&self.name)?;
        let tmp = crate::fs_ops::random_temp_name("version");
        let dst = self.dir.create_new(&tmp)?;
        let copied = crate::fs_ops::clone_or_copy(&src, &dst, &shown)
            .and_then(|_| crate::beneath::set_file_mode(&dst, self.found.stat.mode, &shown))
            .and_then(|_| crate::beneath::set_file_mtime(&dst, self.found.stat.mtime_ns, &shown))
            .and_then(|_| {
                self.dir
                    .rename_raw(
                        &tmp,
                        &self.dir,
                        &self.name,
                        rustix::fs::RenameFlags::empty(),
                    )
                    .ctx("keep version copy", &shown)
            });
        if copied.is_err() {
            let _ = self.dir.unlink(&tmp);
        }
        copied
    }
}

/// What arrived in the store is not what the plan expected: put it back, or keep it
/// recorded as a version when its name was taken again. Always an error.
pub(crate) fn keep_or_put_back(
    index: &Index,
    loc: &Location,
    rel: &RelPath,
    parent: &DirHandle,
    name: &OsStr,
    taken: Taken,
) -> Result<String> {
    if taken.put_back(parent, name)? {
        return Err(changed(parent, name));
    }
    let shown = parent.show(name);
    let stored = taken.record(index, loc, rel, None, "saved during a sync")?;
    Err(Error::Refused(format!(
        "{} changed twice while ferry replaced it; the earlier save is kept as version {}",
        crate::rel_path::escape_os(shown),
        crate::rel_path::display_key(&stored)
    )))
}

pub(crate) fn changed(parent: &DirHandle, name: &OsStr) -> Error {
    Error::Refused(format!(
        "{} changed since the scan; left alone, will sync after the next scan",
        crate::rel_path::escape_os(parent.show(name))
    ))
}

/// Deals with a leftover temp file of a run that died (the caller knows it carries
/// this location's tag). A replacement interrupted between its exchange and the move
/// into the store leaves the *old* content under a temp name; that content is what
/// the index still holds for the path, so a leftover whose bytes the index knows here
/// is kept as a version. Any other leftover is a staged copy of the other side's
/// content (still there): it is removed.
pub fn keep_leftover(index: &Index, loc: &Location, rel: &RelPath) -> Result<()> {
    let root = loc.dir()?;
    let (parent, name) = root.parent(rel)?;
    keep_if_indexed(index, loc, &parent, &name)
}

/// Keeps `name` of `dir` as a version of the path whose indexed content it holds, or
/// removes it when the index knows its bytes nowhere in this location.
fn keep_if_indexed(index: &Index, loc: &Location, dir: &DirHandle, name: &OsStr) -> Result<()> {
    let Some(found) = dir.lstat(name)? else {
        return Ok(());
    };
    if found.kind != Some(EntryKind::File) {
        return Ok(());
    }
    let file = dir.open_file(name)?;
    let hash = crate::fs_ops::blake3_of(&file, &dir.show(name), &mut Vec::new())?;
    drop(file);
    let owner = match index.find_file_by_hash(loc.id(), &hash)? {
        Some(p) if found.stat.size > 0 => p,
        _ => return dir.unlink(name),
    };
    let taken = take(&*loc.dir()?, dir, name, &owner)?;
    taken.record(
        index,
        loc,
        &owner,
        Some(&hash),
        "left by an interrupted run",
    )?;
    Ok(())
}

/// The store's staging folder, where a replacement's verified copy waits for the
/// exchange with its target (see `disk::replace`), created private where missing. Its
/// name has the shape of this location's temp files, so no synced folder can have it.
pub(crate) fn staging_dir(root: &RootDir, loc: &Location) -> Result<DirHandle> {
    let top = root.top()?;
    let ferry = top.subdir_or_create(OsStr::new(FERRY_DIR), 0o755)?;
    let versions = ferry.subdir_or_create(OsStr::new("versions"), PRIVATE)?;
    versions.subdir_or_create(&staging_name(loc), PRIVATE)
}

fn staging_name(loc: &Location) -> OsString {
    OsString::from(format!(
        "{}{}.0000000000000000",
        crate::ignore_rules::TEMP_PREFIX,
        loc.temp_tag()
    ))
}

/// After a run that died: what waits in the staging folder is either a staged copy
/// (the exchange never happened: removed) or the old content of a replaced file (the
/// exchange happened, the move to its version name did not: kept as its version).
/// Returns the problems met; the rest goes on.
pub fn sweep_staging(index: &Index, loc: &Location) -> Vec<String> {
    let mut problems = Vec::new();
    let dir = loc.dir().and_then(|r| {
        r.dir(&format!(
            "{FERRY_DIR}/versions/{}",
            staging_name(loc).to_string_lossy()
        ))
    });
    let Ok(dir) = dir else {
        return problems; // none yet (or unreadable: the next replacement will say so)
    };
    match dir.names() {
        Ok(names) => {
            for n in names {
                if let Err(e) = keep_if_indexed(index, loc, &dir, &n) {
                    problems.push(format!("{}: {e}", crate::rel_path::escape_os(dir.show(&n))));
                }
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    problems
}
