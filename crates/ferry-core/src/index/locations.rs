//! Locations: the folders this library indexes.

use super::{path_str, unix_now, Index};
use crate::error::Result;
use rusqlite::{params, OptionalExtension, Row};
use std::path::{Path, PathBuf};

/// A location row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationRow {
    /// The row's ID (what entries, versions and conduits refer to).
    pub id: i64,
    /// The location's UUID, as its marker `.ferry/location` holds it.
    pub uuid: String,
    /// Its root folder (canonical); for a peer location, a label (`ferry-peer:…`).
    pub root: PathBuf,
    /// The replica ID its version vectors use, derived from the UUID.
    pub replica_id: u64,
    /// For a peer device's copy of a shared folder: that device's ID. Such a location
    /// has no folder here; its entries are what the device sent.
    pub peer: Option<String>,
}

impl Index {
    /// The location whose root is `root`, if any.
    pub fn location_by_root(&self, root: &Path) -> Result<Option<LocationRow>> {
        let root_s = path_str(root)?;
        Ok(self
            .conn
            .query_row(
                "SELECT id, uuid, root, replica_id, peer FROM locations WHERE root = ?1",
                [root_s],
                location_from_row,
            )
            .optional()?)
    }

    /// The location with this UUID, if any.
    pub fn location_by_uuid(&self, uuid: &str) -> Result<Option<LocationRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, uuid, root, replica_id, peer FROM locations WHERE uuid = ?1",
                [uuid],
                location_from_row,
            )
            .optional()?)
    }

    /// Moves a location to a new root (the folder was moved): its entries, versions and
    /// conduits follow it, as they refer to its ID.
    pub fn set_location_root(&self, id: i64, root: &Path) -> Result<LocationRow> {
        self.conn.execute(
            "UPDATE locations SET root = ?2 WHERE id = ?1",
            params![id, path_str(root)?],
        )?;
        self.location(id)
    }

    /// The location with this ID (an error if there is none).
    pub fn location(&self, id: i64) -> Result<LocationRow> {
        Ok(self.conn.query_row(
            "SELECT id, uuid, root, replica_id, peer FROM locations WHERE id = ?1",
            [id],
            location_from_row,
        )?)
    }

    /// Every location, by ID.
    pub fn locations(&self) -> Result<Vec<LocationRow>> {
        let mut st = self
            .conn
            .prepare("SELECT id, uuid, root, replica_id, peer FROM locations ORDER BY id")?;
        let rows = st.query_map([], location_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Adds a local folder's location: its marker's `uuid`, its canonical `root` and
    /// the replica ID derived from the UUID.
    pub fn insert_location(&self, uuid: &str, root: &Path, replica_id: u64) -> Result<LocationRow> {
        self.conn.execute(
            "INSERT INTO locations (uuid, root, replica_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![uuid, path_str(root)?, replica_id as i64, unix_now()],
        )?;
        self.location(self.conn.last_insert_rowid())
    }

    /// Adds a peer device's copy of a shared folder: `uuid` is that folder's location ID
    /// on the peer (its version vectors use the replica ID derived from it), `label` a
    /// name for it shown where a root would be (`ferry-peer:DEVICE/SHARE`).
    pub fn insert_peer_location(&self, uuid: &str, label: &str, peer: &str) -> Result<LocationRow> {
        self.conn.execute(
            "INSERT INTO locations (uuid, root, replica_id, created_at, peer) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                uuid,
                label,
                crate::replica::location::replica_id_of(uuid) as i64,
                unix_now(),
                peer
            ],
        )?;
        self.location(self.conn.last_insert_rowid())
    }

    /// The last sequence number handed out by a location: it changes whenever the
    /// content, version or presence of any of the location's entries changes (a stat
    /// refresh alone keeps the row's number).
    pub fn location_sequence(&self, location: i64) -> Result<u64> {
        let s: i64 = self.conn.query_row(
            "SELECT sequence FROM locations WHERE id = ?1",
            [location],
            |r| r.get(0),
        )?;
        Ok(s as u64)
    }

    /// Reserves `n` sequence numbers of a location; returns the first.
    pub fn reserve_sequence(&self, location: i64, n: u64) -> Result<u64> {
        let last: i64 = self.conn.query_row(
            "UPDATE locations SET sequence = sequence + ?2 WHERE id = ?1 RETURNING sequence",
            params![location, n as i64],
            |r| r.get(0),
        )?;
        Ok(last as u64 - n + 1)
    }
}

fn location_from_row(r: &Row<'_>) -> rusqlite::Result<LocationRow> {
    Ok(LocationRow {
        id: r.get(0)?,
        uuid: r.get(1)?,
        root: PathBuf::from(r.get::<_, String>(2)?),
        replica_id: r.get::<_, i64>(3)? as u64,
        peer: r.get(4)?,
    })
}
