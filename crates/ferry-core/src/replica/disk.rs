//! The executor's disk steps, each safe on its own: every one goes through the
//! location's root handle (`beneath`, rule 4), re-checks the disk against the entry
//! the plan was made from (rule 2), and keeps what it displaces (rule 3).
//!
//! - A new file is written to a temp file beside its target, verified, then renamed
//!   into place without replacing anything (`RENAME_NOREPLACE`).
//! - A file is replaced by `RENAME_EXCHANGE`: the new content takes the path in one
//!   step, and what was displaced is checked to be the indexed file before it moves
//!   into the version store. A save that landed at the last moment is exchanged back.
//! - A file is deleted by moving it into the version store and checking what arrived;
//!   anything else is put back.

use crate::error::{Error, IoContext, Result};
use crate::execute::assemble::{InOrder, PieceSink};
use crate::fault::FaultPoint;
use crate::index::Index;
use crate::model::entry::{Entry, EntryKind, Presence, StatInfo};
use crate::model::rel_path::{escape_os, RelPath};
use crate::parallel::Scratch;
use crate::replica::beneath::{self, Found, ParentMemo};
use crate::replica::chunk_source::{pieces_of, Piece};
use crate::replica::fs::{Dir, Rename, Root};
use crate::replica::fs_ops::{
    blake3_of, clone_or_copy, staged_temp_name, temp_name, throttled_copy,
};
use crate::replica::ignore_rules::IndexRules;
use crate::replica::location::Location;
use crate::replica::partial::{Partial, PARTIAL_MIN};
use crate::replica::version_store::{self, is_same};
use crate::throttle::RateLimiter;
use std::ffi::{OsStr, OsString};
use std::fs::File;

/// A location's disk as the steps below see it: its root on some file system (the
/// real one through [`Place::of`], or the test fake), its index ID and its temp tag.
pub(crate) struct Place<'a, R> {
    pub root: &'a R,
    pub id: i64,
    pub tag: &'a str,
}

impl<'a> Place<'a, crate::replica::beneath::RootDir> {
    /// The real disk of `loc`, through `root` (its open root, `loc.dir()`).
    pub(crate) fn of(loc: &'a Location, root: &'a crate::replica::beneath::RootDir) -> Self {
        Place {
            root,
            id: loc.id(),
            tag: loc.temp_tag(),
        }
    }
}

/// Whether this process may give files away (root): then ownership is kept.
pub(crate) fn can_chown() -> bool {
    crate::replica::fs_ops::euid() == 0
}

/// What `found` at a path says about an expected entry (`None`: nothing expected).
/// A dehydrated entry (files on demand) expects nothing on disk: its content is on the
/// secondary replica.
fn matches(found: Option<&Found>, expected: Option<&Entry>) -> bool {
    let expected = expected.filter(|e| e.state.presence != Presence::Dehydrated);
    match (found, expected) {
        (None, None) => true,
        (Some(f), Some(e)) => {
            f.kind == Some(e.state.kind) && (e.state.kind == EntryKind::Dir || f.stat == e.stat())
        }
        _ => false,
    }
}

/// Safety rule 2: the disk at `rel` must still be what the plan was made from.
pub(crate) fn ensure_matches(
    loc: &Location,
    rel: &RelPath,
    expected: Option<&Entry>,
) -> Result<()> {
    let root = loc.dir()?;
    let (dir, name) = match root.parent(rel) {
        Ok(p) => p,
        // A parent that is gone (or is now a file) means nothing is at `rel`.
        Err(Error::Io { source, .. })
            if crate::replica::fs_ops::is_absent(&source)
                && expected.is_none_or(|e| e.state.presence == Presence::Dehydrated) =>
        {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    ensure_at(&dir, &name, expected)
}

fn ensure_at<D: Dir>(dir: &D, name: &OsStr, expected: Option<&Entry>) -> Result<()> {
    if matches(dir.lstat(name)?.as_ref(), expected) {
        Ok(())
    } else {
        Err(version_store::changed(dir, name))
    }
}

/// Whether anything is at `rel`.
pub(crate) fn exists(loc: &Location, rel: &RelPath) -> Result<bool> {
    let (dir, name) = loc.dir()?.parent(rel)?;
    Ok(dir.lstat(&name)?.is_some())
}

/// The stat of `rel` (which must exist).
pub(crate) fn lstat(loc: &Location, rel: &RelPath) -> Result<StatInfo> {
    let (dir, name) = loc.dir()?.parent(rel)?;
    Ok(dir
        .lstat(&name)?
        .ok_or_else(|| version_store::changed(&dir, &name))?
        .stat)
}

/// Moves `from` (which must be `expected`) to the free path `to` of the same location;
/// checks that what moved is `expected`, else moves it back and refuses. Returns the
/// moved entry's stat.
pub(crate) fn move_checked(
    loc: &Location,
    from: &RelPath,
    expected: &Entry,
    to: &RelPath,
) -> Result<StatInfo> {
    move_checked_in(&*loc.dir()?, from, expected, to)
}

/// [`move_checked`] beneath `root`.
pub(crate) fn move_checked_in<R: Root>(
    root: &R,
    from: &RelPath,
    expected: &Entry,
    to: &RelPath,
) -> Result<StatInfo> {
    let (fd, fname) = root.parent(from)?;
    let (td, tname) = root.parent(to)?;
    ensure_at(&fd, &fname, Some(expected))?;
    ensure_at(&td, &tname, None)?;
    fd.rename_at(&fname, &td, &tname, Rename::NoReplace)
        .map_err(|e| not_replaced(e, "rename", &td, &tname))?;
    let moved = td.lstat(&tname)?;
    match moved {
        Some(m) if is_same(&m, expected) => Ok(m.stat),
        _ => {
            // A save landed between the check and the rename: undo.
            let _ = td.rename_at(&tname, &fd, &fname, Rename::NoReplace);
            Err(version_store::changed(&fd, &fname))
        }
    }
}

/// The error of a rename that must not replace: something appeared at the target
/// since the check (`EEXIST`), or an I/O error.
fn not_replaced<D: Dir>(e: std::io::Error, action: &'static str, dir: &D, name: &OsStr) -> Error {
    match e.raw_os_error() {
        Some(libc::EEXIST) => version_store::changed(dir, name),
        _ => Error::Io {
            action,
            path: dir.show(name),
            source: e,
        },
    }
}

/// Sets `rel`'s mtime (a symlink's own).
pub(crate) fn set_mtime(loc: &Location, rel: &RelPath, mtime_ns: i64) -> Result<()> {
    let (dir, name) = loc.dir()?.parent(rel)?;
    dir.set_mtime(&name, mtime_ns)
}

/// Sets the permission bits of the directory `rel`.
pub(crate) fn chmod(loc: &Location, rel: &RelPath, mode: u32) -> Result<()> {
    let (dir, name) = loc.dir()?.parent(rel)?;
    dir.chmod(&name, mode)
}

/// Creates the directory `rel` (absent, as planned) for ferry to fill: owner-writable
/// until [`chmod`] gives it its final mode once its contents are written. As root it
/// gets the owner of `owner`.
pub(crate) fn mkdir(
    loc: &Location,
    rel: &RelPath,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<u64> {
    mkdir_in(&*loc.dir()?, rel, mode, owner)
}

/// [`mkdir`] beneath `root`.
pub(crate) fn mkdir_in<R: Root>(
    root: &R,
    rel: &RelPath,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<u64> {
    let (dir, name) = root.parent(rel)?;
    dir.mkdir(&name, 0o700)?;
    if let Some((u, g)) = owner {
        dir.chown(&name, u, g)?;
    }
    // Its final mode at once (not masked by the umask), but owner-writable until
    // filled: a run that dies before the end leaves at most the owner's bits added.
    dir.chmod(&name, mode | 0o700)?;
    let made = dir
        .lstat(&name)?
        .ok_or_else(|| version_store::changed(&dir, &name))?;
    Ok(made.stat.inode)
}

/// Gives the existing directory `rel` its final `mode`, owner-writable so ferry can
/// write into it; the exact mode is set after its contents. Returns its inode.
pub(crate) fn open_up_dir(loc: &Location, rel: &RelPath, mode: u32) -> Result<u64> {
    let (dir, name) = loc.dir()?.parent(rel)?;
    let f = dir
        .lstat(&name)?
        .filter(|f| f.kind == Some(EntryKind::Dir))
        .ok_or_else(|| version_store::changed(&dir, &name))?;
    // Its final mode at once (a tightening must not wait for the end of the run),
    // plus the owner's bits ferry needs to fill it.
    let want = mode | 0o700;
    if f.stat.mode != want && (can_chown() || f.uid == crate::replica::fs_ops::euid()) {
        dir.chmod(&name, want)?;
    }
    Ok(f.stat.inode)
}

/// The owner of `rel` on disk (for keeping ownership as root).
pub(crate) fn owner_of(loc: &Location, rel: &RelPath) -> Result<Option<(u32, u32)>> {
    let (dir, name) = loc.dir()?.parent(rel)?;
    Ok(dir.lstat(&name)?.map(|f| (f.uid, f.gid)))
}

/// Removes the file or symlink `rel` of `loc`, which must be what `expected`
/// describes, by moving it into the version store. If what arrived there is not it (a
/// save landed since the check), it is put back and the removal refused; if the name
/// was taken again meanwhile too, the arrival stays as a version and that is said.
/// Returns the stored key.
pub(crate) fn remove_file(
    index: &Index,
    loc: &Location,
    rel: &RelPath,
    expected: &Entry,
    reason: &str,
) -> Result<String> {
    let root = loc.dir()?;
    remove_file_in(index, &Place::of(loc, &root), rel, expected, reason)
}

/// [`remove_file`] in `place`.
pub(crate) fn remove_file_in<R: Root>(
    index: &Index,
    place: &Place<'_, R>,
    rel: &RelPath,
    expected: &Entry,
    reason: &str,
) -> Result<String> {
    let (parent, name) = place.root.parent(rel)?;
    ensure_at(&parent, &name, Some(expected))?;
    let taken = version_store::take(place.root, &parent, &name, rel)?;
    if is_same(&taken.found, expected) {
        return taken.record_as(index, place.id, rel, expected.state.hash.as_ref(), reason);
    }
    version_store::keep_or_put_back(index, place.id, rel, &parent, &name, taken)
}

/// Removes the file or symlink `rel` (which must be `expected`) without keeping it
/// (archive: its copy on the other side was verified): it is first renamed to a temp
/// name, checked to be `expected`, and only then unlinked; anything else is put back.
pub(crate) fn remove_unkept(loc: &Location, rel: &RelPath, expected: &Entry) -> Result<()> {
    let root = loc.dir()?;
    remove_unkept_in(&Place::of(loc, &root), rel, expected)
}

/// [`remove_unkept`] in `place`.
pub(crate) fn remove_unkept_in<R: Root>(
    place: &Place<'_, R>,
    rel: &RelPath,
    expected: &Entry,
) -> Result<()> {
    let (dir, name) = place.root.parent(rel)?;
    ensure_at(&dir, &name, Some(expected))?;
    let tmp = temp_name(place.tag);
    dir.rename_at(&name, &dir, &tmp, Rename::NoReplace)
        .ctx("remove", dir.show(&name))?;
    match dir.lstat(&tmp)? {
        Some(f) if is_same(&f, expected) => dir.unlink(&tmp),
        _ => {
            let _ = dir.rename_at(&tmp, &dir, &name, Rename::NoReplace);
            Err(version_store::changed(&dir, &name))
        }
    }
}

/// Removes the directory `rel` if nothing but OS clutter is left in it (the clutter is
/// versioned first).
pub(crate) fn remove_dir_if_empty(index: &Index, loc: &Location, rel: &RelPath) -> Result<()> {
    let root = loc.dir()?;
    remove_dir_if_empty_in(index, &Place::of(loc, &root), rel)
}

/// [`remove_dir_if_empty`] in `place`.
pub(crate) fn remove_dir_if_empty_in<R: Root>(
    index: &Index,
    place: &Place<'_, R>,
    rel: &RelPath,
) -> Result<()> {
    let (parent, name) = place.root.parent(rel)?;
    let dir = parent.subdir(&name)?;
    let mut kept = Vec::new();
    for item in dir.names()? {
        let shown = item.to_string_lossy().into_owned();
        if IndexRules::is_junk(&shown) {
            if let Some(f) = dir.lstat(&item)? {
                if f.kind == Some(EntryKind::File) {
                    let key = crate::model::rel_path::encode(
                        std::os::unix::ffi::OsStrExt::as_bytes(item.as_os_str()),
                    );
                    let child = rel.join(&key)?;
                    let e = Entry::at(child.clone(), EntryKind::File, f.stat);
                    remove_file_in(index, place, &child, &e, "deleted with its folder")?;
                    continue;
                }
            }
        }
        kept.push(shown);
    }
    if !kept.is_empty() {
        return Err(Error::Refused(format!(
            "folder still holds {} item(s) that are not synced (ignored or unreadable), e.g. {:?}; kept",
            kept.len(),
            kept[0]
        )));
    }
    parent.rmdir(&name)
}

/// Where a copy's bytes come from: an open file, the entry itself (symlinks), or a
/// writer that assembles them from pieces pulled by hash (a peer's file).
pub(crate) enum Source<'a> {
    File(File),
    Symlink,
    Pieces(Fill<'a>),
}

/// Writes a copy's bytes to the sink it is given (a temp file written in order, or a
/// partial copy kept across attempts).
pub(crate) type Fill<'a> = Box<dyn FnOnce(&mut dyn PieceSink) -> Result<()> + 'a>;

/// Opens the file `rel` of `loc` to read a copy from; it must still have the size and
/// mtime of `stat`. Returns it with its owner.
pub(crate) fn open_source(loc: &Location, rel: &RelPath, stat: &StatInfo) -> Result<(File, Found)> {
    open_source_in(loc, rel, stat, &mut ParentMemo::default())
}

/// [`open_source`] for a worker's run of neighbouring files: their folder is opened
/// once, through `memo`.
pub(crate) fn open_source_in(
    loc: &Location,
    rel: &RelPath,
    stat: &StatInfo,
    memo: &mut ParentMemo,
) -> Result<(File, Found)> {
    let root = loc.dir()?;
    let (dir, name) = root.parent_in(rel, memo)?;
    let (f, found) = dir.open_file_found(&name)?;
    if found.kind != Some(EntryKind::File)
        || found.stat.size != stat.size
        || found.stat.mtime_ns != stat.mtime_ns
    {
        return Err(Error::Changed(format!(
            "{} changed since the scan; will sync after the next scan",
            escape_os(dir.show(&name))
        )));
    }
    Ok((f, found))
}

/// A verified temp file beside its target, ready to install.
pub(crate) struct Staged {
    pub tmp: OsString,
    /// The temp file's inode, to recognise it after an exchange.
    pub inode: u64,
    /// Said to the user: e.g. special bits not kept.
    pub note: Option<String>,
}

/// A piece sink that tells `moved` how many bytes each piece brings, whichever sink
/// (a temp file written in order, or a partial copy) takes them.
struct Metered<'a> {
    sink: &'a mut dyn PieceSink,
    moved: &'a dyn Fn(u64),
}

impl PieceSink for Metered<'_> {
    fn resumable(&self) -> bool {
        self.sink.resumable()
    }
    fn has(&self, i: usize) -> bool {
        self.sink.has(i)
    }
    fn put(&mut self, i: usize, piece: &Piece, bytes: &[u8]) -> Result<()> {
        self.sink.put(i, piece, bytes)?;
        (self.moved)(bytes.len() as u64);
        Ok(())
    }
    fn end(&mut self) -> Result<()> {
        self.sink.end()
    }
}

/// Writes `source` (its bytes from `src`) to a verified temp file beside `path` of
/// `loc`, with its mode and mtime. As root the file gets `owner` and keeps its
/// setuid/setgid bits; otherwise those bits are kept only when the source belongs to
/// this user, and stripped with a note. `moved` hears the bytes written as they go.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stage(
    loc: &Location,
    path: &RelPath,
    src: Source,
    source: &Entry,
    owner: Option<(u32, u32)>,
    fault: FaultPoint,
    limiter: Option<&RateLimiter>,
    scratch: &mut Scratch,
    moved: &dyn Fn(u64),
) -> Result<Staged> {
    let Scratch { buf, write_dir, .. } = scratch;
    let root = loc.dir()?;
    let (dir, _) = root.parent_in(path, write_dir)?;
    let content = source
        .state
        .hash
        .ok_or_else(|| Error::Corrupt("entry without a content hash".into()))?;
    let mut tmp = staged_temp_name(loc.temp_tag(), &content);
    let mut pieces = None;
    let input = match src {
        Source::Symlink => {
            let target = source
                .state
                .link_target
                .as_deref()
                .ok_or_else(|| Error::Corrupt("symlink entry without target".into()))?;
            let target = crate::model::rel_path::decode_os(target);
            let mut made = dir.symlink(&target, &tmp);
            for _ in 0..16 {
                match &made {
                    Err(Error::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        tmp = staged_temp_name(loc.temp_tag(), &content);
                        made = dir.symlink(&target, &tmp);
                    }
                    _ => break,
                }
            }
            made?;
            let made = (|| {
                if let Some((u, g)) = owner.filter(|_| can_chown()) {
                    dir.chown(&tmp, u, g)?;
                }
                dir.lstat(&tmp)?
                    .ok_or_else(|| Error::Other("temp symlink vanished".into()))
            })();
            return match made {
                Ok(f) => Ok(Staged {
                    tmp,
                    inode: f.stat.inode,
                    note: None,
                }),
                Err(e) => {
                    let _ = dir.unlink(&tmp);
                    Err(e)
                }
            };
        }
        Source::File(f) => Some(f),
        Source::Pieces(fill) => {
            pieces = Some(fill);
            None
        }
    };
    let expected_hash = source
        .state
        .hash
        .ok_or_else(|| Error::Corrupt("file entry without hash".into()))?;
    // A large pull is assembled in a partial copy kept across cut links and kills
    // (`replica/partial.rs`), then moved here; a second copy of the same content at
    // the same time, or a small one, in a plain temp file.
    let partial = match &pieces {
        Some(_) if source.state.size >= PARTIAL_MIN => {
            let count = pieces_of(&source.state).len();
            // Where `.ferry/partial` cannot be used, the copy is still made, plainly.
            Partial::open(loc, &content, source.state.size, count)
                .ok()
                .flatten()
        }
        _ => None,
    };
    let out = match (partial, pieces.take()) {
        (Some(mut p), Some(fill)) => {
            if p.resumed > 0 {
                tracing::info!(
                    "{}: resuming a partial copy ({} pieces in already)",
                    path,
                    p.resumed
                );
            }
            fill(&mut Metered {
                sink: &mut p,
                moved,
            })
            .map_err(|e| name_destination(e, &dir.show(&tmp)))?;
            let tag = loc.temp_tag();
            p.move_into(dir, &mut tmp, || staged_temp_name(tag, &content))?
        }
        (_, fill) => {
            pieces = fill;
            // Copies of one content in one folder share the hash part of their names:
            // a name taken already gets another random part.
            let mut out = dir.create_new(&tmp);
            for _ in 0..16 {
                match &out {
                    Err(Error::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        tmp = staged_temp_name(loc.temp_tag(), &content);
                        out = dir.create_new(&tmp);
                    }
                    _ => break,
                }
            }
            out?
        }
    };
    let shown = dir.show(&tmp);
    let result = (|| {
        match (&input, limiter, pieces) {
            (Some(input), Some(l), _) => {
                throttled_copy(input, &out, &shown, l, buf, moved)?;
            }
            (Some(input), None, _) => {
                clone_or_copy(input, &out, &shown, moved)?;
            }
            (None, _, Some(fill)) => {
                // No bigger than the file: 16 pull workers on small files each held
                // a 256 KiB buffer for a few KiB.
                let cap = (source.state.size as usize).clamp(4 << 10, 256 << 10);
                let mut w = std::io::BufWriter::with_capacity(cap, &out);
                fill(&mut Metered {
                    sink: &mut InOrder::new(&mut w),
                    moved,
                })?;
                std::io::Write::flush(&mut w).ctx("write", &shown)?;
            }
            // Assembled in a partial copy already.
            (None, _, None) => {}
        };
        if fault == FaultPoint::NoSpaceMidCopy {
            // Half the content is in; the next write finds the disk full.
            let len = beneath::fstat(&out, &shown)?.stat.size;
            out.set_len(len / 2).ctx("inject fault", &shown)?;
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC)).ctx("write", &shown);
        }
        if fault == FaultPoint::CorruptTempAfterCopy {
            use std::io::Write;
            out.set_len(0).ctx("inject fault", &shown)?;
            (&out)
                .write_all(b"corrupted by fault injection")
                .ctx("inject fault", &shown)?;
        }
        let got = blake3_of(&out, &shown, buf)?;
        if got != expected_hash {
            return Err(Error::Changed(format!(
                "copy for {} does not match the indexed hash (changed while copying?); not installed",
                escape_os(dir.show(OsStr::new(path.file_name())))
            )));
        }
        let mut mode = source.state.mode;
        let mut note = None;
        let me = crate::replica::fs_ops::euid();
        match owner {
            Some((u, g)) if can_chown() => beneath::set_file_owner(&out, u, g, &shown)?,
            Some((u, _)) if u == me => {}
            _ if mode & 0o6000 != 0 => {
                mode &= !0o6000;
                note = Some(format!(
                    "{}: setuid/setgid bits not kept (the file's owner is not kept)",
                    path
                ));
            }
            _ => {}
        }
        match input.as_ref().map(|i| beneath::copy_user_xattrs(i, &out)) {
            None => {}
            Some(Ok(failed)) if failed.is_empty() => {}
            Some(Ok(failed)) => {
                note = Some(format!(
                    "{path}: extended attributes not kept here: {}",
                    failed.join(", ")
                ))
            }
            Some(Err(e)) => note = Some(format!("{path}: extended attributes not read: {e}")),
        }
        beneath::set_file_mode(&out, mode, &shown)?;
        beneath::set_file_mtime(&out, source.state.mtime_ns, &shown)?;
        let found = beneath::fstat(&out, &shown)?;
        Ok(Staged {
            tmp: tmp.clone(),
            inode: found.stat.inode,
            note,
        })
    })();
    if result.is_err() {
        let _ = dir.unlink(&tmp);
    }
    result.map_err(|e| name_destination(e, &shown))
}

/// A full disk is the destination's problem: say so.
fn name_destination(e: Error, dest: &std::path::Path) -> Error {
    match e {
        Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => Error::Io {
            action: "no space left to write",
            path: dest.parent().map(|p| p.to_path_buf()).unwrap_or_default(),
            source,
        },
        e => e,
    }
}

/// Removes a staged temp file that will not be installed.
pub(crate) fn discard(loc: &Location, path: &RelPath, staged: &Staged) {
    if let Ok(root) = loc.dir() {
        discard_in(&*root, path, staged);
    }
}

/// [`discard`] beneath `root`.
pub(crate) fn discard_in<R: Root>(root: &R, path: &RelPath, staged: &Staged) {
    if let Ok((dir, _)) = root.parent(path) {
        if dir
            .lstat(&staged.tmp)
            .ok()
            .flatten()
            .is_some_and(|f| f.stat.inode == staged.inode)
        {
            let _ = dir.unlink(&staged.tmp);
        }
    }
}

/// Puts the staged file at `path`: with nothing there, a rename that never replaces;
/// over `expected`, an exchange whose displaced side must be `expected` (then kept as
/// a version), else exchanged back and refused.
/// `fault` injects a failure (tests only; `FaultPoint::None` otherwise).
pub(crate) fn install<R: Root>(
    index: &Index,
    place: &Place<'_, R>,
    path: &RelPath,
    staged: &Staged,
    source: &Entry,
    expected: Option<&Entry>,
    fault: FaultPoint,
) -> Result<Installed> {
    let (dir, name) = place.root.parent(path)?;
    ensure_at(&dir, &name, expected)?;
    // Hydrating a dehydrated path: nothing is there to replace.
    match expected.filter(|e| e.state.presence != Presence::Dehydrated) {
        None => {
            dir.rename_at(&staged.tmp, &dir, &name, Rename::NoReplace)
                .map_err(|e| not_replaced(e, "install", &dir, &name))?;
        }
        Some(old) if old.state.kind == EntryKind::Dir => {
            return Err(Error::Refused(format!(
                "{} is a folder; not replacing it with a file",
                escape_os(dir.show(&name))
            )))
        }
        Some(old) => Replacement {
            index,
            place,
            path,
            staged,
            old,
        }
        .run(&dir, &name, fault)?,
    }
    if source.state.kind == EntryKind::Symlink {
        let _ = dir.set_mtime(&name, source.state.mtime_ns);
    }
    let now = dir
        .lstat(&name)?
        .ok_or_else(|| version_store::changed(&dir, &name))?;
    // A save may have replaced our file the moment it landed: then what is there is
    // not what was copied, and the index must not take it for that (see `Installed`).
    // (or written to in place: then size or mtime differ from what was staged).
    let ours = now.stat.inode == staged.inode
        && (source.state.kind != EntryKind::File
            || (now.stat.size == source.state.size && now.stat.mtime_ns == source.state.mtime_ns));
    Ok(Installed {
        stat: now.stat,
        replaced_since: !ours,
    })
}

/// One replacement of `old` at `path` by a staged copy, in `place`.
struct Replacement<'a, R: Root> {
    index: &'a Index,
    place: &'a Place<'a, R>,
    path: &'a RelPath,
    staged: &'a Staged,
    old: &'a Entry,
}

impl<R: Root> Replacement<'_, R> {
    /// Replaces `old` at `name` of `dir` (the parent of `path`) with the staged file, so
    /// that the old content is never anywhere but at its path or in the version store:
    /// the staged file moves into the store's staging folder, then one
    /// `renameat2(RENAME_EXCHANGE)` swaps it with the target — the path gets the new
    /// content, the staging folder the old, which must be `old` (same inode, size, mtime,
    /// mode) and then moves to its version name; else a save landed since the check, and
    /// the swap is undone. A run that dies in between leaves the staging folder to
    /// [`version_store::sweep_staging`]. Where the store is on another file system (a
    /// mount inside the tree), the swap happens beside the target and the old content
    /// moves to the store after.
    fn run(&self, dir: &R::Dir, name: &OsStr, fault: FaultPoint) -> Result<()> {
        let (place, tmp) = (self.place, &self.staged.tmp);
        let staging = version_store::staging_dir(place.root, place.tag)?;
        match dir.rename_at(tmp, &staging, tmp, Rename::NoReplace) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => return self.beside(dir, name),
            Err(e) => return Err(e).ctx("stage in the version store", staging.show(tmp)),
        }
        let exchanged = match fault {
            FaultPoint::ExchangeFails => Err(std::io::Error::from_raw_os_error(libc::EIO)),
            _ => staging.rename_at(tmp, dir, name, Rename::Exchange),
        };
        if let Err(e) = exchanged {
            // Nothing was swapped: the staged file goes back beside its target.
            let _ = staging.rename_at(tmp, dir, tmp, Rename::NoReplace);
            return Err(e).ctx("replace", dir.show(name));
        }
        self.settle(&staging, dir, name)
    }

    /// [`Replacement::run`] for a store on another file system: exchange beside the target, then
    /// move what was displaced into the store (a crash in between leaves it under a temp
    /// name, which the next scan keeps as a version; see `version_store::keep_leftover`).
    fn beside(&self, dir: &R::Dir, name: &OsStr) -> Result<()> {
        dir.rename_at(&self.staged.tmp, dir, name, Rename::Exchange)
            .ctx("replace", dir.show(name))?;
        self.settle(dir, dir, name)
    }

    /// After the exchange of a replacement: `holder` (the store's staging folder, or the
    /// target's own folder) holds, under the staged copy's temp name, what was displaced
    /// from `name` of `dir`. If it is `old` it moves to its version name and is recorded;
    /// if it cannot be kept, the swap is undone. Anything else is a save that landed
    /// since the check: the swap is undone (or, if the path changed again, the save is
    /// kept as a version) and the replacement refused.
    fn settle(&self, holder: &R::Dir, dir: &R::Dir, name: &OsStr) -> Result<()> {
        let Replacement {
            index,
            place,
            path,
            staged,
            old,
        } = *self;
        let root = place.root;
        let tmp = &staged.tmp;
        let swap_back = || holder.rename_at(tmp, dir, name, Rename::Exchange);
        let displaced = holder.lstat(tmp)?;
        if displaced.as_ref().is_some_and(|d| is_same(d, old)) {
            let taken = match version_store::take(root, holder, tmp, path) {
                Ok(t) => t,
                Err(e) => {
                    // Not kept: the old content goes back to its path.
                    swap_back().ctx("put back", dir.show(name))?;
                    return Err(e);
                }
            };
            let hash = is_same(&taken.found, old)
                .then_some(old.state.hash)
                .flatten();
            taken.record_as(index, place.id, path, hash.as_ref(), "replaced")?;
            return Ok(());
        }
        // A save landed since the check: give the path back to it.
        if let Err(e) = swap_back() {
            // It cannot go back (the path changed again): keep it as a version, so the
            // save is never left where a sweep could take it for ferry's own copy.
            let taken = version_store::take(root, holder, tmp, path)?;
            let stored = taken.record_as(index, place.id, path, None, "saved during a sync")?;
            return Err(Error::Changed(format!(
                "{} changed while ferry replaced it ({e}); the save is kept as version {}",
                escape_os(dir.show(name)),
                crate::model::rel_path::display_key(&stored)
            )));
        }
        match holder.lstat(tmp)? {
            Some(f) if f.stat.inode == staged.inode => {
                let _ = holder.unlink(tmp);
            }
            Some(_) => {
                // Yet another save came in between: it stays, as a version.
                let taken = version_store::take(root, holder, tmp, path)?;
                taken.record_as(index, place.id, path, None, "saved during a sync")?;
            }
            None => {}
        }
        Err(version_store::changed(dir, name))
    }
}

/// What [`install`] left at the path.
#[derive(Debug)]
pub(crate) struct Installed {
    pub stat: StatInfo,
    /// Something else took the path right after the install: the entry recorded for
    /// it must be hashed again by the next scan (marked racy), not trusted by its stat.
    pub replaced_since: bool,
}
