//! Partial copies of content pulled from another device, kept across a cut link, a
//! `kill -9` of either side or a reboot, so a transfer resumes where it stopped.
//!
//! A copy of content `H` of at least [`PARTIAL_MIN`] bytes is assembled in
//! `.ferry/partial/<H>` (a sparse file of the content's size, written piece by piece
//! at each piece's offset) with a record `.ferry/partial/<H>.have`: a header naming the
//! content, its size and piece count, then one bit per piece, set once the piece's
//! verified bytes are written. The next attempt opens both and asks only for the
//! pieces whose bit is clear. Memory stays bounded whatever the size: the record is
//! one bit per piece; the bytes go straight to disk.
//!
//! Bits are written right after their piece (so a killed process loses at most the
//! pieces it was writing); the data and then the record are made durable every
//! [`SYNC_EVERY`] bytes and when the attempt ends (so after a power cut the record
//! trails the data). A record that does not match (another content, size or piece
//! count, a torn header) starts the copy over. Trust in the record is never trust in
//! the bytes: the whole file is hashed before it is installed, and a copy that does
//! not hash right is thrown away, record and all.
//!
//! One writer per content: the partial file is locked (`flock`), and a second copy of
//! the same content at the same time is assembled the plain way.

use crate::error::{Error, IoContext, Result};
use crate::execute::assemble::PieceSink;
use crate::model::chunk::Hash;
use crate::replica::beneath::DirHandle;
use crate::replica::chunk_source::Piece;
use crate::replica::ignore_rules::FERRY_DIR;
use crate::replica::location::Location;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Copies smaller than this are assembled in a plain temp file (a cut costs at most
/// this much again).
pub const PARTIAL_MIN: u64 = 1 << 20;
/// Bytes written between two durability points of a partial copy.
const SYNC_EVERY: u64 = 64 << 20;
/// Folder of `.ferry/` holding partial copies.
pub const PARTIAL_DIR: &str = "partial";

const MAGIC: &[u8; 16] = b"ferry-partial-1\n";
/// Magic, content hash, size, piece count.
const HEADER: usize = 16 + 32 + 8 + 8;

/// One content being assembled in `.ferry/partial/`.
pub(crate) struct Partial {
    dir: DirHandle,
    name: OsString,
    record_name: OsString,
    file: File,
    record: File,
    have: Vec<u8>,
    count: usize,
    unsynced: u64,
    /// Pieces already there when it was opened.
    pub(crate) resumed: usize,
}

fn header(content: &Hash, size: u64, count: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&content.0);
    h.extend_from_slice(&size.to_le_bytes());
    h.extend_from_slice(&(count as u64).to_le_bytes());
    h
}

impl Partial {
    /// Opens (or starts) the partial copy of `content` (`size` bytes in `count`
    /// pieces) in `loc`. `None` when another copy of the same content holds it now.
    pub(crate) fn open(
        loc: &Location,
        content: &Hash,
        size: u64,
        count: usize,
    ) -> Result<Option<Partial>> {
        let ferry = loc.dir()?.dir(FERRY_DIR)?;
        let dir = ferry.subdir_or_create(OsStr::new(PARTIAL_DIR), 0o700)?;
        let hex = content.to_hex();
        let name = OsString::from(&hex);
        let record_name = OsString::from(format!("{hex}.have"));
        let file = dir.open_rw(&name)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
            Err(e) => return Err(std::io::Error::from(e)).ctx("lock", dir.show(&name)),
        }
        let record = dir.open_rw(&record_name)?;
        let bits = count.div_ceil(8);
        let want = header(content, size, count);
        let mut got = vec![0u8; HEADER + bits];
        let whole = record.metadata().is_ok_and(|m| m.len() == got.len() as u64)
            && record.read_exact_at(&mut got, 0).is_ok()
            && got[..HEADER] == want[..]
            && file.metadata().is_ok_and(|m| m.len() == size);
        let have = if whole {
            got.split_off(HEADER)
        } else {
            // Nothing to resume: a sparse file of the content's size, an empty record.
            let shown = dir.show(&name);
            file.set_len(0).ctx("truncate", &shown)?;
            file.set_len(size).ctx("size", &shown)?;
            let shown = dir.show(&record_name);
            record.set_len(0).ctx("truncate", &shown)?;
            let mut fresh = want;
            fresh.resize(HEADER + bits, 0);
            record.write_all_at(&fresh, 0).ctx("write", &shown)?;
            vec![0u8; bits]
        };
        // Bits past the last piece are never set.
        let resumed = (0..count)
            .filter(|i| have[i / 8] & (1 << (i % 8)) != 0)
            .count();
        Ok(Some(Partial {
            dir,
            name,
            record_name,
            file,
            record,
            have,
            count,
            unsynced: 0,
            resumed,
        }))
    }

    /// Makes the data, then the record, durable.
    fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .ctx("sync", self.dir.show(&self.name))?;
        self.record
            .sync_data()
            .ctx("sync", self.dir.show(&self.record_name))?;
        self.unsynced = 0;
        Ok(())
    }

    /// The assembled file, moved beside its target as `tmp` (a name not taken there:
    /// `retry` makes another), its record gone. The file is still to be verified.
    pub(crate) fn move_into(
        self,
        dest: &DirHandle,
        tmp: &mut OsString,
        retry: impl Fn() -> OsString,
    ) -> Result<File> {
        let mut moved =
            self.dir
                .rename_raw(&self.name, dest, tmp, rustix::fs::RenameFlags::NOREPLACE);
        for _ in 0..16 {
            match &moved {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    *tmp = retry();
                    moved = self.dir.rename_raw(
                        &self.name,
                        dest,
                        tmp,
                        rustix::fs::RenameFlags::NOREPLACE,
                    );
                }
                _ => break,
            }
        }
        moved.ctx("move", dest.show(tmp))?;
        let _ = self.dir.unlink(&self.record_name);
        Ok(self.file)
    }

    /// How many pieces are in.
    #[cfg(test)]
    fn count_in(&self) -> usize {
        (0..self.count).filter(|i| self.has(*i)).count()
    }
}

impl PieceSink for Partial {
    fn resumable(&self) -> bool {
        true
    }

    fn has(&self, i: usize) -> bool {
        i < self.count && self.have[i / 8] & (1 << (i % 8)) != 0
    }

    fn put(&mut self, i: usize, piece: &Piece, bytes: &[u8]) -> Result<()> {
        if i >= self.count {
            return Err(Error::Other(format!("piece {i} of {}", self.count)));
        }
        self.file
            .write_all_at(bytes, piece.offset)
            .ctx("write", self.dir.show(&self.name))?;
        self.have[i / 8] |= 1 << (i % 8);
        self.record
            .write_all_at(&self.have[i / 8..i / 8 + 1], (HEADER + i / 8) as u64)
            .ctx("write", self.dir.show(&self.record_name))?;
        self.unsynced += bytes.len() as u64;
        if self.unsynced >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        self.sync()
    }
}

/// How long a partial copy no one wants any more is kept after it was last written
/// (the content may come back: a file deleted by mistake and restored, a share
/// accepted again).
pub const PARTIAL_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes the partial copies under `loc` whose content `wanted` says is no longer
/// wanted and that were last written more than `grace` before `now` (data and record);
/// returns the contents removed. Never one being written: each is locked (`flock`, as
/// a writer holds it) before it is removed, and one held is kept. Names that are not a
/// content hash (with or without `.have`) are left alone.
pub fn sweep_partials(
    loc: &Location,
    grace: std::time::Duration,
    now: std::time::SystemTime,
    wanted: &mut dyn FnMut(&Hash) -> Result<bool>,
) -> Result<Vec<Hash>> {
    let Ok(ferry) = loc.dir()?.dir(FERRY_DIR) else {
        return Ok(Vec::new());
    };
    let dir = match ferry.lstat(OsStr::new(PARTIAL_DIR))? {
        Some(f) if f.kind == Some(crate::model::EntryKind::Dir) => {
            ferry.subdir(OsStr::new(PARTIAL_DIR))?
        }
        _ => return Ok(Vec::new()),
    };
    let mut contents = std::collections::BTreeSet::new();
    for name in dir.names()? {
        let Some(n) = name.to_str() else { continue };
        if let Some(h) = Hash::from_hex(n.strip_suffix(".have").unwrap_or(n)) {
            contents.insert(h.to_hex());
        }
    }
    let cutoff = now
        .checked_sub(grace)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(i64::MIN, |d| d.as_nanos() as i64);
    let mut removed = Vec::new();
    for hex in contents {
        let Some(h) = Hash::from_hex(&hex) else {
            continue;
        };
        let name = OsString::from(&hex);
        let record_name = OsString::from(format!("{hex}.have"));
        // Written within the grace period (either file): kept.
        let mut recent = false;
        for n in [&name, &record_name] {
            if let Some(f) = dir.lstat(n)? {
                recent |= f.stat.mtime_ns > cutoff;
            }
        }
        if recent || wanted(&h)? {
            continue;
        }
        // Held by a writer: kept. The lock is held while both names go.
        let data = match dir.lstat(&name)? {
            Some(_) => {
                let f = dir.open_file(&name)?;
                match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                    Ok(()) => Some(f),
                    Err(rustix::io::Errno::WOULDBLOCK) => continue,
                    Err(e) => return Err(std::io::Error::from(e)).ctx("lock", dir.show(&name)),
                }
            }
            None => None,
        };
        for n in [&record_name, &name] {
            match dir.unlink(n) {
                Ok(()) => {}
                Err(_) if dir.lstat(n)?.is_none() => {}
                Err(e) => return Err(e),
            }
        }
        drop(data);
        removed.push(h);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwanted_partials_go_after_the_grace_period_but_never_one_being_written() {
        use std::time::{Duration, SystemTime};
        let tmp = tempfile::tempdir().unwrap();
        let mut index = crate::index::Index::open(&tmp.path().join("i.db")).unwrap();
        let root = tmp.path().join("f");
        std::fs::create_dir(&root).unwrap();
        let loc = crate::replica::location::open_location(&mut index, &root, false).unwrap();
        let (old, held, kept) = (Hash::of(b"old"), Hash::of(b"held"), Hash::of(b"kept"));
        for h in [&old, &held, &kept] {
            let mut p = Partial::open(&loc, h, 2 << 20, 2).unwrap().unwrap();
            p.end().unwrap();
        }
        let dir = root.join(".ferry/partial");
        std::fs::write(dir.join("notes.txt"), b"not ours").unwrap();
        let names = || {
            let mut v: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names().len(), 7);
        let unwanted = |h: &Hash| Ok(*h == kept);
        // Within the grace period nothing goes, wanted or not.
        let now = SystemTime::now();
        let gone = sweep_partials(&loc, PARTIAL_GRACE, now, &mut { unwanted }).unwrap();
        assert!(gone.is_empty());
        assert_eq!(names().len(), 7);
        // Past it: the unwanted ones go, except one a writer holds; the wanted one and
        // a name that is not ours stay.
        let writer = Partial::open(&loc, &held, 2 << 20, 2).unwrap().unwrap();
        let later = now + PARTIAL_GRACE + Duration::from_secs(1);
        let gone = sweep_partials(&loc, PARTIAL_GRACE, later, &mut { unwanted }).unwrap();
        assert_eq!(gone, vec![old]);
        let mut want = vec![
            held.to_hex(),
            format!("{}.have", held.to_hex()),
            kept.to_hex(),
            format!("{}.have", kept.to_hex()),
            "notes.txt".to_string(),
        ];
        want.sort();
        assert_eq!(names(), want);
        // Its writer done (and it still unwanted), it goes too.
        drop(writer);
        let gone = sweep_partials(&loc, PARTIAL_GRACE, later, &mut { unwanted }).unwrap();
        assert_eq!(gone, vec![held]);
        // An error from the question stops the sweep (nothing removed on a guess).
        let mut failing = |_: &Hash| Err(Error::Other("index".into()));
        assert!(sweep_partials(&loc, Duration::ZERO, later, &mut failing).is_err());
        assert!(dir.join(kept.to_hex()).exists());
    }

    #[test]
    fn a_record_of_another_content_starts_over() {
        let tmp = tempfile::tempdir().unwrap();
        let mut index = crate::index::Index::open(&tmp.path().join("i.db")).unwrap();
        let root = tmp.path().join("f");
        std::fs::create_dir(&root).unwrap();
        let loc = crate::replica::location::open_location(&mut index, &root, false).unwrap();
        let (h, size) = (Hash::of(b"content"), 3 << 20);
        let piece = |i: u64| Piece {
            content: h,
            offset: i << 20,
            len: 1 << 20,
            hash: Hash::of(b"x"),
        };
        {
            let mut p = Partial::open(&loc, &h, size, 3).unwrap().unwrap();
            assert_eq!(p.resumed, 0);
            // Held: a second writer of the same content gets none.
            assert!(Partial::open(&loc, &h, size, 3).unwrap().is_none());
            p.put(1, &piece(1), &vec![7u8; 1 << 20]).unwrap();
            p.end().unwrap();
        }
        let p = Partial::open(&loc, &h, size, 3).unwrap().unwrap();
        assert_eq!((p.resumed, p.count_in()), (1, 1));
        assert!(p.has(1) && !p.has(0) && !p.has(2) && !p.has(3));
        drop(p);
        // Another piece count for the same content: nothing is trusted.
        let p = Partial::open(&loc, &h, size, 4).unwrap().unwrap();
        assert_eq!(p.resumed, 0);
        // Nor a record cut short.
        drop(p);
        let rec = root
            .join(".ferry/partial")
            .join(format!("{}.have", h.to_hex()));
        let f = std::fs::OpenOptions::new().write(true).open(&rec).unwrap();
        f.set_len(10).unwrap();
        let p = Partial::open(&loc, &h, size, 4).unwrap().unwrap();
        assert_eq!(p.resumed, 0);
    }
}
