//! Files on demand (selective mode): pins, recorded accesses, quota settings and
//! hydrations under way.

use super::Index;
use crate::error::Result;
use crate::model::rel_path::RelPath;
use rusqlite::{params, OptionalExtension};
use std::collections::HashMap;

/// How much of its hot side a selective conduit keeps local.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SelectiveSettings {
    /// Most bytes of file content side A may hold; beyond, cold files dehydrate.
    pub local_quota: Option<u64>,
    /// Least free space (percent of A's file system) to keep; below, cold files
    /// dehydrate.
    pub min_free_percent: Option<u8>,
}

/// The bounds of the primary-key range of everything strictly below `path` (see
/// `Index::stat_rows_under`).
fn below(path: &RelPath) -> (String, String) {
    let key = path.as_str();
    (format!("{key}/"), format!("{key}0"))
}

impl Index {
    /// The quota and free-space floor of selective conduit `conduit` (none set: both `None`).
    pub fn selective_settings(&self, conduit: i64) -> Result<SelectiveSettings> {
        let row: Option<(Option<i64>, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT local_quota, min_free_percent FROM selective WHERE conduit_id = ?1",
                [conduit],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            Some((q, f)) => SelectiveSettings {
                local_quota: q.map(|q| q as u64),
                min_free_percent: f.map(|f| f.clamp(0, 100) as u8),
            },
            None => SelectiveSettings::default(),
        })
    }

    /// Stores a selective conduit's quota and free-space floor.
    pub fn set_selective_settings(&self, conduit: i64, s: &SelectiveSettings) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO selective (conduit_id, local_quota, min_free_percent)
             VALUES (?1, ?2, ?3)",
            params![
                conduit,
                s.local_quota.map(|q| q as i64),
                s.min_free_percent.map(i64::from)
            ],
        )?;
        Ok(())
    }

    /// Pins `path` of `location` (a folder: everything under it, now and later).
    pub fn pin(&self, location: i64, path: &RelPath) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO pins (location_id, path) VALUES (?1, ?2)",
            params![location, path.as_str()],
        )?;
        Ok(())
    }

    /// Removes the pins of `path` and of everything under it. Returns how many went.
    pub fn unpin(&self, location: i64, path: &RelPath) -> Result<usize> {
        let (from, to) = below(path);
        Ok(self.conn.execute(
            "DELETE FROM pins WHERE location_id = ?1
               AND (path = ?2 OR (path >= ?3 AND path < ?4))",
            params![location, path.as_str(), from, to],
        )?)
    }

    /// Every pinned path of a location.
    pub fn pins(&self, location: i64) -> Result<Vec<RelPath>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT path FROM pins WHERE location_id = ?1 ORDER BY path")?;
        let rows = st.query_map([location], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for p in rows {
            out.push(RelPath::new(&p?)?);
        }
        Ok(out)
    }

    /// Records that `path` of `location` was read at `at_ns` (ns since the epoch).
    pub fn record_access(&self, location: i64, path: &RelPath, at_ns: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO accesses (location_id, path, accessed_ns) VALUES (?1, ?2, ?3)
             ON CONFLICT (location_id, path) DO UPDATE SET accessed_ns = max(accessed_ns, ?3)",
            params![location, path.as_str(), at_ns],
        )?;
        Ok(())
    }

    /// Recorded accesses of a location's paths (ns since the epoch).
    pub fn accesses(&self, location: i64) -> Result<HashMap<String, i64>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT path, accessed_ns FROM accesses WHERE location_id = ?1")?;
        let rows = st.query_map([location], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let mut out = HashMap::new();
        for r in rows {
            let (p, t) = r?;
            out.insert(p, t);
        }
        Ok(out)
    }

    /// Files of a location whose content is here and dehydrated ones, with their bytes:
    /// `((local files, local bytes), (online-only files, online-only bytes))`.
    pub fn presence_totals(&self, location: i64) -> Result<((u64, u64), (u64, u64))> {
        let r: (i64, i64, i64, i64) = self.conn.query_row(
            "SELECT count(CASE WHEN dehydrated = 0 THEN 1 END),
                    coalesce(sum(CASE WHEN dehydrated = 0 THEN size END), 0),
                    count(CASE WHEN dehydrated = 1 THEN 1 END),
                    coalesce(sum(CASE WHEN dehydrated = 1 THEN size END), 0)
             FROM entries WHERE location_id = ?1 AND deleted = 0 AND kind = 'file'",
            [location],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        Ok(((r.0 as u64, r.1 as u64), (r.2 as u64, r.3 as u64)))
    }

    /// Notes that process `pid` is hydrating `path` of `location`.
    pub fn begin_hydration(&self, location: i64, path: &RelPath, pid: u32) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO hydrations (location_id, path, started_at, pid)
             VALUES (?1, ?2, ?3, ?4)",
            params![location, path.as_str(), super::unix_now(), pid],
        )?;
        Ok(())
    }

    /// Notes that a hydration of `path` of `location` ended (done or failed).
    pub fn end_hydration(&self, location: i64, path: &RelPath) -> Result<()> {
        self.conn.execute(
            "DELETE FROM hydrations WHERE location_id = ?1 AND path = ?2",
            params![location, path.as_str()],
        )?;
        Ok(())
    }

    /// Hydrations under way in a location: those whose process is still alive (a
    /// process killed mid-hydration leaves a row; it is not counted, and the path is
    /// still either dehydrated or whole).
    pub fn hydrations(&self, location: i64) -> Result<Vec<RelPath>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT path, pid FROM hydrations WHERE location_id = ?1")?;
        let rows = st.query_map([location], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (p, pid) = r?;
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                out.push(RelPath::new(&p)?);
            }
        }
        Ok(out)
    }
}
