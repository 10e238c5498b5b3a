//! Entries: what each location holds, path by path.

use super::Index;
use crate::error::{Error, Result};
use crate::model::chunk::{decode_chunks, encode_chunks, Hash};
use crate::model::entry::{Entry, EntryKind, Presence, StatInfo};
use crate::model::rel_path::RelPath;
use crate::model::version_vector::VersionVector;
use rusqlite::{params, OptionalExtension, Row};

/// The stat part of an entry (see [`Index::stat_rows`]).
#[derive(Debug, Clone)]
pub struct StatRow {
    /// The entry's path.
    pub path: RelPath,
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// The stat the row was recorded with.
    pub stat: StatInfo,
    /// A tombstone: the path was deleted.
    pub deleted: bool,
    /// The mtime was too close to the scan to trust: hash again.
    pub racy: bool,
    /// Files on demand: the path exists but its content is on the secondary replica,
    /// so its absence on disk is not a deletion.
    pub dehydrated: bool,
}

/// Decodes `SELECT path, kind, size, mtime_ns, ctime_ns, inode, mode, deleted, racy,
/// dehydrated` rows.
fn read_stat_rows(mut rows: rusqlite::Rows<'_>, out: &mut Vec<StatRow>) -> Result<()> {
    while let Some(r) = rows.next()? {
        let path: String = r.get(0)?;
        let kind: String = r.get(1)?;
        out.push(StatRow {
            kind: EntryKind::parse(&kind)
                .ok_or_else(|| Error::Corrupt(format!("entry {path:?} has kind {kind:?}")))?,
            path: RelPath::new(&path)?,
            stat: stat_from_row(r)?,
            deleted: r.get(7)?,
            racy: r.get(8)?,
            dehydrated: r.get(9)?,
        });
    }
    Ok(())
}

/// See [`Index::stat_rows_under`].
pub(crate) const STAT_ROWS_UNDER: &str =
    "SELECT path, kind, size, mtime_ns, ctime_ns, inode, mode, deleted, racy, dehydrated
       FROM entries WHERE location_id = ?1 AND path = ?2
     UNION ALL
     SELECT path, kind, size, mtime_ns, ctime_ns, inode, mode, deleted, racy, dehydrated
       FROM entries WHERE location_id = ?1 AND path >= ?3 AND path < ?4
     ORDER BY path";

impl Index {
    /// All entries of a location (live and deleted), sorted by path.
    pub fn entries(&self, location: i64) -> Result<Vec<Entry>> {
        let mut st = self.conn.prepare_cached(
            "SELECT path, kind, size, mtime_ns, ctime_ns, inode, mode, hash, chunks, link_target,
                    version, deleted, sequence, racy, dehydrated
             FROM entries WHERE location_id = ?1 ORDER BY path",
        )?;
        let mut rows = st.query([location])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(entry_from_row(row)?);
        }
        Ok(out)
    }

    /// The dehydrated entries of a location (files on demand), sorted by path.
    pub fn dehydrated_entries(&self, location: i64) -> Result<Vec<Entry>> {
        let mut st = self.conn.prepare_cached(
            "SELECT path, kind, size, mtime_ns, ctime_ns, inode, mode, hash, chunks, link_target,
                    version, deleted, sequence, racy, dehydrated
             FROM entries WHERE location_id = ?1 AND dehydrated = 1 AND deleted = 0 ORDER BY path",
        )?;
        let mut rows = st.query([location])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(entry_from_row(row)?);
        }
        Ok(out)
    }

    /// The stat part of every entry of a location, sorted by path: what a scan needs
    /// to tell whether the disk changed, without decoding hashes and vectors.
    pub fn stat_rows(&self, location: i64) -> Result<Vec<StatRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT path, kind, size, mtime_ns, ctime_ns, inode, mode, deleted, racy, dehydrated
             FROM entries WHERE location_id = ?1 ORDER BY path",
        )?;
        let mut out = Vec::new();
        read_stat_rows(st.query([location])?, &mut out)?;
        Ok(out)
    }

    /// Up to `limit` stat rows of a location whose paths sort after `after` (from the
    /// first with `None`), sorted by path: a whole-location scan reads them a page at a
    /// time instead of all at once.
    pub(crate) fn stat_rows_page(
        &self,
        location: i64,
        after: Option<&RelPath>,
        limit: usize,
    ) -> Result<Vec<StatRow>> {
        self.page(
            "path, kind, size, mtime_ns, ctime_ns, inode, mode, deleted, racy, dehydrated",
            (location, after, limit),
            read_stat_rows,
        )
    }

    /// Up to `limit` rows (`columns`) of a location whose paths sort after `after`, by
    /// path, decoded by `read`. With `None` the page starts at the first row: every
    /// stored key is a valid, so non-empty, path and sorts after `''`.
    fn page<T>(
        &self,
        columns: &str,
        (location, after, limit): (i64, Option<&RelPath>, usize),
        read: impl FnOnce(rusqlite::Rows<'_>, &mut Vec<T>) -> Result<()>,
    ) -> Result<Vec<T>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {columns} FROM entries
             WHERE location_id = ?1 AND path > ?2 ORDER BY path LIMIT ?3"
        ))?;
        let after = after.map_or("", RelPath::as_str);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut out = Vec::new();
        read(st.query(params![location, after, limit])?, &mut out)?;
        Ok(out)
    }

    /// The stat rows of `path` and of everything below it, sorted by path: what a
    /// targeted scan of that path compares the disk with. A range over the primary key
    /// (`path/` up to `path0`, `0` being the byte after `/`), so no other row is read.
    /// The bounds are made here, not with SQL's `||`: a key may hold NULs (`rel_path`),
    /// which SQLite compares in full but whose handling in expressions it leaves open.
    /// The path itself and the range are two searches of the primary key joined by a
    /// merge: written as `path = ?2 OR (range)`, SQLite's plan read every row of the
    /// location for each call, and the daemon calls this once per path its own run
    /// wrote (`known::in_step`) — quadratic: ~80 s of silence after an initial copy of
    /// 20,000 files between devices.
    pub fn stat_rows_under(&self, location: i64, path: &RelPath) -> Result<Vec<StatRow>> {
        let mut st = self.conn.prepare_cached(STAT_ROWS_UNDER)?;
        let key = path.as_str();
        let (from, to) = (format!("{key}/"), format!("{key}0"));
        let mut out = Vec::new();
        read_stat_rows(st.query(params![location, key, from, to])?, &mut out)?;
        Ok(out)
    }

    /// The entry of `path` in `location`, live or tombstone.
    pub fn entry(&self, location: i64, path: &RelPath) -> Result<Option<Entry>> {
        let mut st = self.conn.prepare_cached(
            "SELECT path, kind, size, mtime_ns, ctime_ns, inode, mode, hash, chunks, link_target,
                    version, deleted, sequence, racy, dehydrated
             FROM entries WHERE location_id = ?1 AND path = ?2",
        )?;
        let mut rows = st.query(params![location, path.as_str()])?;
        match rows.next()? {
            Some(row) => Ok(Some(entry_from_row(row)?)),
            None => Ok(None),
        }
    }

    /// Up to `limit` entries of a location (live and deleted) whose paths sort after
    /// `after` (from the first with `None`), sorted by path: one page of a walk over
    /// the whole location that holds no more than a page in memory.
    pub fn entries_page(
        &self,
        location: i64,
        after: Option<&RelPath>,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        self.page(
            "path, kind, size, mtime_ns, ctime_ns, inode, mode, hash, chunks, link_target,
             version, deleted, sequence, racy, dehydrated",
            (location, after, limit),
            |mut rows, out| {
                while let Some(row) = rows.next()? {
                    out.push(entry_from_row(row)?);
                }
                Ok(())
            },
        )
    }

    /// How many rows (live and deleted, directories included) of a location changed
    /// after sequence number `after`, or all of them with `None`.
    pub(crate) fn row_count(&self, location: i64, after: Option<u64>) -> Result<u64> {
        let n: i64 = match after {
            Some(after) => self.conn.query_row(
                "SELECT count(*) FROM entries WHERE location_id = ?1 AND sequence > ?2",
                params![location, after as i64],
                |r| r.get(0),
            )?,
            None => self.conn.query_row(
                "SELECT count(*) FROM entries WHERE location_id = ?1",
                params![location],
                |r| r.get(0),
            )?,
        };
        Ok(n as u64)
    }

    /// Paths of a location whose rows changed after sequence number `after`.
    pub(crate) fn paths_changed_since(&self, location: i64, after: u64) -> Result<Vec<RelPath>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT path FROM entries WHERE location_id = ?1 AND sequence > ?2")?;
        let rows = st.query_map(params![location, after as i64], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for p in rows {
            out.push(RelPath::new(&p?)?);
        }
        Ok(out)
    }

    /// Whether a partial copy of `hash` in `location` is still wanted: a live file of
    /// that content is on the other side of one of the location's conduits and not
    /// here already.
    pub fn content_wanted(&self, location: i64, hash: &Hash) -> Result<bool> {
        if self.find_file_by_hash(location, hash)?.is_some() {
            return Ok(false);
        }
        let others: Vec<i64> = {
            let mut st = self.conn.prepare_cached(
                "SELECT CASE WHEN location_a = ?1 THEN location_b ELSE location_a END
                 FROM conduits WHERE location_a = ?1 OR location_b = ?1",
            )?;
            let rows = st.query_map(params![location], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for other in others {
            if self.find_file_by_hash(other, hash)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A live file of the location with this content hash, if any.
    pub(crate) fn find_file_by_hash(&self, location: i64, hash: &Hash) -> Result<Option<RelPath>> {
        let p: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT path FROM entries INDEXED BY entries_by_hash
                 WHERE location_id = ?1 AND hash = ?2 AND deleted = 0
                 AND dehydrated = 0 AND kind = 'file' LIMIT 1",
            )?
            .query_row(params![location, &hash.0[..]], |r| r.get(0))
            .optional()?;
        p.map(|s| RelPath::new(&s)).transpose()
    }

    /// Whether `location` has any entry that is not a tombstone with content `hash`
    /// (a file, a symlink, a dehydrated file: anything a rename could pair with).
    pub(crate) fn holds_hash(&self, location: i64, hash: &Hash) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT 1 FROM entries INDEXED BY entries_by_hash
                 WHERE location_id = ?1 AND hash = ?2 AND deleted = 0 LIMIT 1",
            )?
            .query_row(params![location, &hash.0[..]], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Writes entries (insert or replace) in one transaction.
    pub fn put_entries(&mut self, location: i64, entries: &[Entry]) -> Result<()> {
        // A savepoint, not a transaction, so this also works inside `discarding`.
        let tx = self.write_batch()?;
        put_entries_in(&tx, location, entries)?;
        tx.commit()?;
        Ok(())
    }

    /// Writes entries like [`Index::put_entries`], first giving those `fresh` picks (by
    /// position) the
    /// location's next sequence numbers, in order (`number` hears each with its number,
    /// e.g. to bump its version with it). Numbers are taken and rows stored in one write
    /// transaction, so rows become visible in the order of their numbers: a reader whose
    /// cursor moved past a number (the index exchange, a hub log) never meets a lower
    /// one stored later by another writer.
    pub fn put_entries_numbered(
        &mut self,
        location: i64,
        entries: &mut [Entry],
        fresh: impl Fn(usize) -> bool,
        mut number: impl FnMut(&mut Entry, u64),
    ) -> Result<()> {
        let tx = self.write_batch()?;
        let n = (0..entries.len()).filter(|&i| fresh(i)).count() as u64;
        if n > 0 {
            let last: i64 = tx.query_row(
                "UPDATE locations SET sequence = sequence + ?2 WHERE id = ?1 RETURNING sequence",
                params![location, n as i64],
                |r| r.get(0),
            )?;
            let mut next = last as u64 - n + 1;
            for (i, e) in entries.iter_mut().enumerate() {
                if fresh(i) {
                    number(e, next);
                    next += 1;
                }
            }
        }
        put_entries_in(&tx, location, entries)?;
        tx.commit()?;
        Ok(())
    }

    /// Up to `limit` entries of a location whose sequence number is above `after`, in
    /// sequence order: what a device sends a peer that holds its entries up to `after`.
    pub fn entries_after(&self, location: i64, after: u64, limit: usize) -> Result<Vec<Entry>> {
        let mut st = self.conn.prepare_cached(
            "SELECT path, kind, size, mtime_ns, ctime_ns, inode, mode, hash, chunks, link_target,
                    version, deleted, sequence, racy, dehydrated
             FROM entries INDEXED BY entries_by_sequence
             WHERE location_id = ?1 AND sequence > ?2 ORDER BY sequence LIMIT ?3",
        )?;
        let mut rows = st.query(params![location, after as i64, limit as i64])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(entry_from_row(row)?);
        }
        Ok(out)
    }

    /// Forgets entries (used when a path becomes ignored: it leaves the index, not the
    /// disk). Moves the location's sequence on, as every change of its rows does, and
    /// clears its conduits' convergence points.
    pub fn forget_entries(&mut self, location: i64, paths: &[RelPath]) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        let tx = self.write_batch()?;
        tx.execute(
            "UPDATE locations SET sequence = sequence + 1 WHERE id = ?1",
            [location],
        )?;
        // A forgotten row leaves no newer row behind to say the path changed, so the
        // conduits of this location can no longer plan from what changed since they
        // converged: they reconcile everything next time.
        tx.execute(
            "UPDATE conduits SET clean_seq_a = NULL, clean_seq_b = NULL
             WHERE location_a = ?1 OR location_b = ?1",
            [location],
        )?;
        {
            let mut st =
                tx.prepare_cached("DELETE FROM entries WHERE location_id = ?1 AND path = ?2")?;
            for p in paths {
                st.execute(params![location, p.as_str()])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Whether the location has any live file (cheaper than counting them).
    pub(crate) fn has_live_file(&self, location: i64) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT 1 FROM entries WHERE location_id = ?1 AND deleted = 0 AND kind = 'file' LIMIT 1",
            )?
            .query_row([location], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Live files of a location (for status and the mass-deletion stop).
    pub fn live_file_count(&self, location: i64) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM entries WHERE location_id = ?1 AND deleted = 0 AND kind != 'dir'",
            [location],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Files and symlinks changed (or deleted) on a location since sequence `after`
    /// (what a conduit that converged there has not synced yet), and the bytes of the
    /// live files among them.
    pub fn changed_since(&self, location: i64, after: u64) -> Result<(u64, u64)> {
        let (n, bytes): (i64, i64) = self.conn.query_row(
            "SELECT count(*), coalesce(sum(CASE WHEN deleted = 0 AND kind = 'file' THEN size END), 0)
             FROM entries WHERE location_id = ?1 AND sequence > ?2 AND kind != 'dir'",
            params![location, after as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((n as u64, bytes as u64))
    }
}

/// The stat columns (2 to 6: size, mtime, ctime, inode, mode) every entry query selects.
fn stat_from_row(r: &Row<'_>) -> rusqlite::Result<StatInfo> {
    Ok(StatInfo {
        size: r.get::<_, i64>(2)? as u64,
        mtime_ns: r.get(3)?,
        ctime_ns: r.get(4)?,
        inode: r.get::<_, i64>(5)? as u64,
        mode: r.get(6)?,
    })
}

pub(super) fn entry_from_row(r: &Row<'_>) -> Result<Entry> {
    let path: String = r.get(0)?;
    let kind: String = r.get(1)?;
    let hash: Option<Vec<u8>> = r.get(7)?;
    let chunks: Option<Vec<u8>> = r.get(8)?;
    let version: Vec<u8> = r.get(10)?;
    let path = RelPath::new(&path)?;
    let kind = EntryKind::parse(&kind)
        .ok_or_else(|| Error::Corrupt(format!("entry {path:?} has kind {kind:?}")))?;
    let mut e = Entry::at(path, kind, stat_from_row(r)?);
    e.state.hash = match hash {
        Some(h) => Some(
            Hash::from_slice(&h)
                .ok_or_else(|| Error::Corrupt(format!("entry {:?} has a bad hash", e.path)))?,
        ),
        None => None,
    };
    e.state.chunks = match chunks {
        Some(c) => decode_chunks(&c)
            .ok_or_else(|| Error::Corrupt(format!("entry {:?} has a bad chunk list", e.path)))?,
        None => Vec::new(),
    };
    e.state.link_target = r.get(9)?;
    e.state.version = VersionVector::from_bytes(&version)?;
    if r.get::<_, bool>(11)? {
        e.state.presence = Presence::Tombstone;
    } else if r.get::<_, bool>(14)? {
        e.state.presence = Presence::Dehydrated;
    }
    e.cache.sequence = r.get::<_, i64>(12)? as u64;
    e.cache.racy = r.get(13)?;
    Ok(e)
}

/// Inserts or replaces `entries` of `location` on `conn` (inside the caller's
/// transaction).
pub(super) fn put_entries_in(
    conn: &rusqlite::Connection,
    location: i64,
    entries: &[Entry],
) -> Result<()> {
    let mut st = conn.prepare_cached(
        "INSERT OR REPLACE INTO entries (location_id, path, kind, size, mtime_ns, ctime_ns,
            inode, mode, hash, chunks, link_target, version, deleted, sequence, racy, dehydrated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?;
    for e in entries {
        st.execute(params![
            location,
            e.path.as_str(),
            e.state.kind.as_str(),
            e.state.size as i64,
            e.state.mtime_ns,
            e.cache.ctime_ns,
            e.cache.inode as i64,
            e.state.mode,
            e.state.hash.as_ref().map(|h| &h.0[..]),
            if e.state.chunks.is_empty() {
                None
            } else {
                Some(encode_chunks(&e.state.chunks))
            },
            e.state.link_target,
            e.state.version.to_bytes(),
            e.is_tombstone(),
            e.cache.sequence as i64,
            e.cache.racy,
            e.state.presence == Presence::Dehydrated,
        ])?;
    }
    Ok(())
}
