//! Records of the version store: what was kept, where, and why.

use super::{unix_now, Index};
use crate::error::Result;
use crate::model::chunk::Hash;
use crate::model::rel_path::RelPath;
use rusqlite::params;

/// A version-store record.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionRow {
    /// The version's ID (`ferry restore --id`).
    pub id: i64,
    /// The location whose store keeps it.
    pub location_id: i64,
    /// Path keys (`rel_path`), serialized for people.
    #[serde(serialize_with = "crate::model::rel_path::serialize_key")]
    pub path: String,
    /// Where it is, relative to the location's root (below `.ferry/versions/`).
    #[serde(serialize_with = "crate::model::rel_path::serialize_key")]
    pub stored_path: String,
    /// Its size in bytes.
    pub size: u64,
    /// The file's mtime when it was kept (ns since the epoch).
    pub mtime_ns: i64,
    /// When it was kept (seconds since the epoch).
    pub created_at: i64,
    /// Why: `replaced`, `deleted`, `recovered`….
    pub reason: String,
    /// BLAKE3 of the kept content, checked again before a restore.
    #[serde(skip)]
    pub hash: Option<Hash>,
}

impl Index {
    #[allow(clippy::too_many_arguments)]
    /// Records a version the store now keeps.
    pub(crate) fn insert_version(
        &self,
        location: i64,
        path: &RelPath,
        stored_path: &str,
        size: u64,
        hash: Option<&Hash>,
        mtime_ns: i64,
        reason: &str,
    ) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO versions (location_id, path, stored_path, size, hash, mtime_ns, created_at, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                location,
                path.as_str(),
                stored_path,
                size as i64,
                hash.map(|h| &h.0[..]),
                mtime_ns,
                unix_now(),
                reason
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Versions of one path of a location, newest first.
    pub fn versions_of(&self, location: i64, path: &RelPath) -> Result<Vec<VersionRow>> {
        self.query_versions(
            "WHERE location_id = ?1 AND path = ?2 ORDER BY id DESC",
            params![location, path.as_str()],
        )
    }

    /// Every version kept in a location, newest first.
    pub fn versions_in(&self, location: i64) -> Result<Vec<VersionRow>> {
        self.query_versions("WHERE location_id = ?1 ORDER BY id DESC", params![location])
    }

    /// The version with ID `id`, if there is one.
    pub fn version(&self, id: i64) -> Result<Option<VersionRow>> {
        Ok(self
            .query_versions("WHERE id = ?1", params![id])?
            .into_iter()
            .next())
    }

    /// Forgets a version record (its stored file is removed by the caller first).
    pub(crate) fn delete_version(&self, id: i64) -> Result<()> {
        self.conn
            .execute("DELETE FROM versions WHERE id = ?1", params![id])?;
        Ok(())
    }

    fn query_versions(&self, tail: &str, args: impl rusqlite::Params) -> Result<Vec<VersionRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT id, location_id, path, stored_path, size, mtime_ns, created_at, reason, hash
             FROM versions {tail}"
        ))?;
        let mut rows = st.query(args)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let hash: Option<Vec<u8>> = r.get(8)?;
            out.push(VersionRow {
                id: r.get(0)?,
                location_id: r.get(1)?,
                path: r.get(2)?,
                stored_path: r.get(3)?,
                size: r.get::<_, i64>(4)? as u64,
                mtime_ns: r.get(5)?,
                created_at: r.get(6)?,
                reason: r.get(7)?,
                hash: hash.as_deref().and_then(Hash::from_slice),
            });
        }
        Ok(out)
    }
}
