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

use crate::error::{Error, IoContext, Result};
use crate::index::Index;
use crate::model::entry::{Entry, EntryKind};
use crate::model::rel_path::{shorten_name, RelPath, NAME_MAX};
use crate::problem::Problem;
use crate::replica::beneath::{DirHandle, Found};
use crate::replica::fs::{Dir, FileOps, Rename, Root};
use crate::replica::ignore_rules::FERRY_DIR;
use crate::replica::location::Location;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;

/// Mode of the store's folders.
const PRIVATE: u32 = 0o700;

/// The version folder for `rel`'s parent, open (created private where missing), and
/// the stored key prefix (`.ferry/versions/<parent>/`). `.ferry` or any folder of the
/// store that is a symlink is refused.
pub(crate) fn version_dir<R: Root>(root: &R, rel: &RelPath) -> Result<(R::Dir, String)> {
    let top = root.top()?;
    let owner = top.owner()?;
    let ferry = trusted(top.subdir_or_create(OsStr::new(FERRY_DIR), 0o755)?, owner)?;
    let mut dir = trusted(
        ferry.subdir_or_create(OsStr::new("versions"), PRIVATE)?,
        owner,
    )?;
    // Older stores were made 0755: the top of the store is what keeps it private.
    let st = top_mode(&ferry)?;
    if st & 0o077 != 0 {
        ferry.chmod(OsStr::new("versions"), PRIVATE)?;
    }
    let mut key = format!("{FERRY_DIR}/versions/");
    if let Some(parent) = rel.parent() {
        for comp in parent.as_str().split('/') {
            let name = OsString::from_vec(crate::model::rel_path::decode(comp).into_owned());
            dir = trusted(dir.subdir_or_create(&name, PRIVATE)?, owner)?;
            key.push_str(comp);
            key.push('/');
        }
    }
    Ok((dir, key))
}

/// Refuses a folder of the store that someone else could read into or write: owned
/// by another user than this process's and the root's owner, or group/other-writable
/// (e.g. a `.ferry` planted by another user of a shared folder).
fn trusted<D: Dir>(dir: D, root_owner: u32) -> Result<D> {
    if dir.is_trusted(root_owner)? {
        Ok(dir)
    } else {
        Err(Error::Refused(format!(
            "{} belongs to another user or is writable by others; not keeping versions there",
            crate::model::rel_path::escape_os(dir.path())
        )))
    }
}

fn top_mode<D: Dir>(ferry: &D) -> Result<u32> {
    Ok(ferry
        .lstat(OsStr::new("versions"))?
        .map(|f| f.stat.mode)
        .unwrap_or(PRIVATE))
}

/// A free name in `dir` for a version of `rel` taken now (stored key and name).
fn free_name<D: Dir>(dir: &D, key_prefix: &str, rel: &RelPath) -> Result<(String, OsString)> {
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S-%9f").to_string();
    // Room for "~stamp" and a "-N" counter within the file-name limit.
    let name = shorten_name(rel.file_name(), NAME_MAX - stamp.len() - 6);
    let base = format!("{name}~{stamp}");
    let mut key = base.clone();
    let mut n = 1;
    loop {
        let os = OsString::from_vec(crate::model::rel_path::decode(&key).into_owned());
        if dir.lstat(&os)?.is_none() {
            return Ok((format!("{key_prefix}{key}"), os));
        }
        n += 1;
        key = format!("{base}-{n}");
    }
}

/// Whether what lstat found is the thing `expected` describes: same kind and inode,
/// same size, mtime and mode (a rename changes only the ctime).
pub(crate) fn is_same(found: &Found, expected: &Entry) -> bool {
    found.kind == Some(expected.state.kind)
        && found.stat.inode == expected.cache.inode
        && found.stat.size == expected.state.size
        && found.stat.mtime_ns == expected.state.mtime_ns
        && found.stat.mode == expected.state.mode
}

/// A version just moved into the store, not yet recorded.
pub struct Taken<D = DirHandle> {
    dir: D,
    name: OsString,
    /// Stored key, relative to the root.
    pub stored: String,
    /// What arrived, read after the move.
    pub found: Found,
}

/// A free name for a new version of `rel`, in its version folder (open).
pub struct Slot<D = DirHandle> {
    pub dir: D,
    pub name: OsString,
    /// Stored key, relative to the root.
    pub stored: String,
}

/// A free slot for a version of `rel` taken now (its folder created private where
/// missing).
pub fn slot<R: Root>(root: &R, rel: &RelPath) -> Result<Slot<R::Dir>> {
    let (dir, prefix) = version_dir(root, rel)?;
    let (stored, name) = free_name(&dir, &prefix, rel)?;
    Ok(Slot { dir, name, stored })
}

impl<D: Dir> Slot<D> {
    /// What is in the slot now, as a version to record or put back.
    pub fn arrived(self) -> Result<Taken<D>> {
        let found = self.dir.lstat(&self.name)?.ok_or_else(|| {
            Error::Other(format!(
                "version {} vanished right after it was kept",
                crate::model::rel_path::display_key(&self.stored)
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
pub fn take<R: Root>(
    root: &R,
    from: &R::Dir,
    name: &OsStr,
    rel: &RelPath,
) -> Result<Taken<R::Dir>> {
    let slot = slot(root, rel)?;
    from.rename_at(name, &slot.dir, &slot.name, Rename::NoReplace)
        .ctx("keep version of", from.show(name))?;
    slot.arrived()
}

impl Taken {
    /// [`Taken::record_as`] for `loc`.
    pub fn record(
        self,
        index: &Index,
        loc: &Location,
        rel: &RelPath,
        hash: Option<&crate::model::chunk::Hash>,
        reason: &str,
    ) -> Result<String> {
        self.record_as(index, loc.id(), rel, hash, reason)
    }
}

impl<D: Dir> Taken<D> {
    /// Records the version in the index, for the location `loc_id`. A file that has
    /// other hard links is first replaced in the store by a copy of its own, so no
    /// outside link can change it. `hash` is the content's BLAKE3 where known (the
    /// index entry it was checked against); size and mtime are what arrived.
    pub(crate) fn record_as(
        self,
        index: &Index,
        loc_id: i64,
        rel: &RelPath,
        hash: Option<&crate::model::chunk::Hash>,
        reason: &str,
    ) -> Result<String> {
        if self.found.kind == Some(EntryKind::File) && self.found.nlink > 1 {
            self.make_private_copy()?;
        }
        index.insert_version(
            loc_id,
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
    pub(crate) fn put_back(&self, to: &D, name: &OsStr) -> Result<bool> {
        match self.dir.rename_at(&self.name, to, name, Rename::NoReplace) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e).ctx("put back", to.show(name)),
        }
    }

    fn make_private_copy(&self) -> Result<()> {
        let shown = self.dir.show(&self.name);
        let src = self.dir.open_file(&self.name)?;
        let tmp = crate::replica::fs_ops::random_temp_name("version");
        let dst = self.dir.create_new(&tmp)?;
        // The copy is ferry's file: it gets the original's owner where ferry can give
        // it (root), else no setuid/setgid bits.
        let mut mode = self.found.stat.mode;
        let copied = dst
            .copy_from(&src, &shown, &|_| {})
            .and_then(|_| {
                if crate::replica::disk::can_chown() {
                    dst.set_owner(self.found.uid, self.found.gid, &shown)
                } else {
                    if self.found.uid != crate::replica::fs_ops::euid() {
                        mode &= !0o6000;
                    }
                    Ok(())
                }
            })
            .and_then(|_| dst.set_mode(mode, &shown))
            .and_then(|_| dst.set_mtime(self.found.stat.mtime_ns, &shown))
            .and_then(|_| {
                self.dir
                    .rename_at(&tmp, &self.dir, &self.name, Rename::StoreOnly)
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
pub(crate) fn keep_or_put_back<D: Dir>(
    index: &Index,
    loc_id: i64,
    rel: &RelPath,
    parent: &D,
    name: &OsStr,
    taken: Taken<D>,
) -> Result<String> {
    if taken.put_back(parent, name)? {
        return Err(changed(parent, name));
    }
    let shown = parent.show(name);
    let stored = taken.record_as(index, loc_id, rel, None, "saved during a sync")?;
    Err(Error::Changed(format!(
        "{} changed twice while ferry replaced it; the earlier save is kept as version {}",
        crate::model::rel_path::escape_os(shown),
        crate::model::rel_path::display_key(&stored)
    )))
}

pub(crate) fn changed<D: Dir>(parent: &D, name: &OsStr) -> Error {
    Error::Changed(format!(
        "{} changed since the scan; left alone, will sync after the next scan",
        crate::model::rel_path::escape_os(parent.show(name))
    ))
}

/// Deals with a leftover temp file of a run that died (the caller knows it carries
/// this location's tag), at `rel` in the tree. See [`recover`].
pub fn keep_leftover(index: &Index, loc: &Location, rel: &RelPath) -> Result<Option<String>> {
    let root = loc.dir()?;
    let (parent, name) = root.parent(rel)?;
    recover(index, loc, &parent, &name, rel)
}

/// What a run that died left at `name` of `dir` (a temp name in the tree or in the
/// staging folder): ferry's own staged copy — its bytes have the hash its name
/// carries ([`crate::replica::fs_ops::is_own_copy`]) — is removed; anything else is kept as a
/// version, never deleted: the old content of an interrupted replacement (kept as a
/// version of the path the index knows it at), or a save displaced at the last
/// moment (kept as a version of `fallback`). Returns a note when something was kept.
fn recover(
    index: &Index,
    loc: &Location,
    dir: &DirHandle,
    name: &OsStr,
    fallback: &RelPath,
) -> Result<Option<String>> {
    let Some(found) = dir.lstat(name)? else {
        return Ok(None);
    };
    let hash = match found.kind {
        Some(EntryKind::File) => {
            let file = dir.open_file(name)?;
            crate::replica::fs_ops::blake3_of(&file, &dir.show(name), &mut Vec::new())?
        }
        Some(EntryKind::Symlink) => crate::model::chunk::Hash::of(
            std::os::unix::ffi::OsStrExt::as_bytes(dir.read_link(name)?.as_os_str()),
        ),
        // A folder in ferry's place: not ours to judge; left where it is and said.
        _ => {
            return Ok(Some(format!(
                "{}: found after an interrupted run and left alone (not a file)",
                crate::model::rel_path::escape_os(dir.show(name))
            )))
        }
    };
    if crate::replica::fs_ops::is_own_copy(&name.to_string_lossy(), &hash) {
        dir.unlink(name)?;
        return Ok(None);
    }
    let owner = index
        .find_file_by_hash(loc.id(), &hash)?
        .unwrap_or_else(|| fallback.clone());
    let taken = take(&*loc.dir()?, dir, name, &owner)?;
    let stored = taken.record(
        index,
        loc,
        &owner,
        Some(&hash),
        "found after an interrupted run",
    )?;
    Ok(Some(format!(
        "{}: found after an interrupted run; kept as version {}",
        crate::model::rel_path::escape_os(dir.show(name)),
        crate::model::rel_path::display_key(&stored)
    )))
}

/// The store's staging folder, where a replacement's verified copy waits for the
/// exchange with its target (see `disk::Replacement`), created private where missing. Its
/// name has the shape of this location's temp files, so no synced folder can have it.
pub(crate) fn staging_dir<R: Root>(root: &R, tag: &str) -> Result<R::Dir> {
    let top = root.top()?;
    let owner = top.owner()?;
    let ferry = trusted(top.subdir_or_create(OsStr::new(FERRY_DIR), 0o755)?, owner)?;
    let versions = trusted(
        ferry.subdir_or_create(OsStr::new("versions"), PRIVATE)?,
        owner,
    )?;
    trusted(
        versions.subdir_or_create(&staging_name(tag), PRIVATE)?,
        owner,
    )
}

fn staging_name(tag: &str) -> OsString {
    OsString::from(format!(
        "{}{tag}.0000000000000000",
        crate::replica::ignore_rules::TEMP_PREFIX,
    ))
}

/// After a run that died: what waits in the staging folder is a staged copy (removed)
/// or displaced content (kept as a version; see [`recover`]). Returns notes and
/// problems; the rest goes on.
pub fn sweep_staging(index: &Index, loc: &Location) -> (Vec<String>, Vec<Problem>) {
    let (mut notes, mut problems) = (Vec::new(), Vec::new());
    let staging = staging_name(loc.temp_tag());
    let dir = loc.dir().and_then(|r| {
        r.dir(&format!(
            "{FERRY_DIR}/versions/{}",
            staging.to_string_lossy()
        ))
    });
    let Ok(dir) = dir else {
        return (notes, problems); // none yet (or unreadable: the next replacement says so)
    };
    match dir.names() {
        Ok(names) => {
            for n in names {
                // Displaced content whose path is unknown is filed under this name.
                let fallback = RelPath::new(&format!(
                    "ferry-recovered/{}",
                    crate::model::rel_path::encode(std::os::unix::ffi::OsStrExt::as_bytes(
                        n.as_os_str()
                    ))
                ));
                match fallback.and_then(|f| recover(index, loc, &dir, &n, &f)) {
                    Ok(Some(note)) => notes.push(note),
                    Ok(None) => {}
                    Err(e) => {
                        let at = crate::model::rel_path::escape_os(dir.show(&n)).to_string();
                        problems.push(Problem::from_error(None, None, &at, &e))
                    }
                }
            }
        }
        Err(e) => problems.push(Problem::from_error(None, None, "", &e)),
    }
    (notes, problems)
}
