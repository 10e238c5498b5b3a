//! Conduits: sync relationships between two locations, and their settings.

use super::{unix_now, Index};
use crate::conduit::Schedule;
use crate::error::{Error, Result};
use crate::plan::{ConflictPolicy, SyncMode};
use rusqlite::{params, OptionalExtension, Row};

/// A conduit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConduitRow {
    /// The conduit's ID.
    pub id: i64,
    /// Location ID of side A (the source in mirror and archive mode).
    pub location_a: i64,
    /// Location ID of side B.
    pub location_b: i64,
    /// How the two sides are kept in step.
    pub mode: SyncMode,
    /// Who wins when both sides changed a path.
    pub conflict_policy: ConflictPolicy,
    /// Whether node_modules and OS clutter are indexed too.
    pub index_everything: bool,
    /// Runs so far (the number of the last generation).
    pub generation: i64,
    /// Version retention for both locations (`None`: the default, staggered).
    pub retention: Option<String>,
    /// When the daemon runs it (stored as `instant`, `every:DURATION` or `manual`).
    pub schedule: Schedule,
    /// Copies at once; 0 = one per core (up to 8).
    pub parallel: u32,
    /// Bytes per second; 0 = unlimited.
    pub bandwidth_limit: u64,
    /// A paused conduit is not run by the daemon.
    pub paused: bool,
}

impl Index {
    /// The conduit from location `a` to location `b`, if there is one.
    pub fn conduit_between(&self, a: i64, b: i64) -> Result<Option<ConduitRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, location_a, location_b, mode, conflict_policy, index_everything, generation,
                        retention, schedule, parallel, bandwidth_limit, paused
                 FROM conduits WHERE location_a = ?1 AND location_b = ?2",
                params![a, b],
                conduit_from_row,
            )
            .optional()?)
    }

    /// Every conduit, by ID.
    pub fn conduits(&self) -> Result<Vec<ConduitRow>> {
        let mut st = self.conn.prepare(
            "SELECT id, location_a, location_b, mode, conflict_policy, index_everything, generation,
                        retention, schedule, parallel, bandwidth_limit, paused
             FROM conduits ORDER BY id",
        )?;
        let rows = st.query_map([], conduit_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Saves a new conduit from `a` to `b` with default continuous-sync settings.
    pub(crate) fn insert_conduit(
        &self,
        a: i64,
        b: i64,
        mode: SyncMode,
        policy: ConflictPolicy,
        index_everything: bool,
    ) -> Result<ConduitRow> {
        self.conn.execute(
            "INSERT INTO conduits (location_a, location_b, mode, conflict_policy, index_everything, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![a, b, mode, policy, index_everything, unix_now()],
        )?;
        self.conduit_between(a, b)?
            .ok_or_else(|| Error::Corrupt("conduit vanished after insert".into()))
    }

    /// The locations' sequence numbers when the conduit last converged, if it did.
    pub fn conduit_clean_point(&self, id: i64) -> Result<Option<(u64, u64)>> {
        let (a, b): (Option<i64>, Option<i64>) = self.conn.query_row(
            "SELECT clean_seq_a, clean_seq_b FROM conduits WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(a.zip(b).map(|(a, b)| (a as u64, b as u64)))
    }

    /// Records (or, with `None`, clears) the point where the conduit converged.
    pub(crate) fn set_conduit_clean_point(&self, id: i64, point: Option<(u64, u64)>) -> Result<()> {
        self.conn.execute(
            "UPDATE conduits SET clean_seq_a = ?2, clean_seq_b = ?3 WHERE id = ?1",
            params![id, point.map(|p| p.0 as i64), point.map(|p| p.1 as i64)],
        )?;
        Ok(())
    }

    /// Stores a conduit's mode, policy and indexing; the next run compares everything.
    pub(crate) fn update_conduit_settings(
        &self,
        id: i64,
        mode: SyncMode,
        policy: ConflictPolicy,
        index_everything: bool,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE conduits SET mode = ?2, conflict_policy = ?3, index_everything = ?4,
                clean_seq_a = NULL, clean_seq_b = NULL WHERE id = ?1",
            params![id, mode, policy, index_everything],
        )?;
        Ok(())
    }

    /// The conduit with ID `id`, if there is one.
    pub fn conduit(&self, id: i64) -> Result<Option<ConduitRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, location_a, location_b, mode, conflict_policy, index_everything, generation,
                        retention, schedule, parallel, bandwidth_limit, paused
                 FROM conduits WHERE id = ?1",
                [id],
                conduit_from_row,
            )
            .optional()?)
    }

    /// Stores the continuous-sync settings of a conduit.
    pub(crate) fn update_conduit_schedule(
        &self,
        id: i64,
        schedule: Schedule,
        parallel: u32,
        bandwidth_limit: u64,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE conduits SET schedule = ?2, parallel = ?3, bandwidth_limit = ?4 WHERE id = ?1",
            params![id, schedule, parallel as i64, bandwidth_limit as i64],
        )?;
        Ok(())
    }

    /// Stores how many copies a conduit runs at once and its bandwidth limit.
    pub(crate) fn set_conduit_transfer(
        &self,
        id: i64,
        parallel: u32,
        bandwidth_limit: u64,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE conduits SET parallel = ?2, bandwidth_limit = ?3 WHERE id = ?1",
            params![id, parallel as i64, bandwidth_limit as i64],
        )?;
        Ok(())
    }

    /// Pauses or resumes a conduit; false if there is no such conduit.
    pub fn set_conduit_paused(&self, id: i64, paused: bool) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE conduits SET paused = ?2 WHERE id = ?1",
            params![id, paused],
        )?;
        Ok(n > 0)
    }

    /// Removes a conduit with its run history and conflict records. Its locations, their
    /// entries and version stores stay. False if there is no such conduit.
    pub fn remove_conduit(&mut self, id: i64) -> Result<bool> {
        let tx = self.write_batch()?;
        tx.execute("DELETE FROM conflicts WHERE conduit_id = ?1", [id])?;
        tx.execute(
            "DELETE FROM generation_actions WHERE generation_id IN
                (SELECT id FROM generations WHERE conduit_id = ?1)",
            [id],
        )?;
        tx.execute(
            "DELETE FROM generation_problems WHERE generation_id IN
                (SELECT id FROM generations WHERE conduit_id = ?1)",
            [id],
        )?;
        tx.execute(
            "UPDATE generations SET resumes = NULL WHERE resumes IN
                (SELECT id FROM generations WHERE conduit_id = ?1)",
            [id],
        )?;
        tx.execute("DELETE FROM generations WHERE conduit_id = ?1", [id])?;
        let n = tx.execute("DELETE FROM conduits WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(n > 0)
    }

    // ---- retention settings ----

    /// Sets (or, with `None`, clears) a conduit's version retention.
    pub(crate) fn set_conduit_retention(&self, conduit: i64, spec: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE conduits SET retention = ?2 WHERE id = ?1",
            params![conduit, spec],
        )?;
        Ok(())
    }

    /// Sets (or, with `None`, clears) a location's own version retention.
    pub fn set_location_retention(&self, location: i64, spec: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE locations SET retention = ?2 WHERE id = ?1",
            params![location, spec],
        )?;
        Ok(())
    }

    /// The retention a location uses: its own setting, else that of its first conduit
    /// that has one, else `None` (the default).
    pub(crate) fn retention_for_location(&self, location: i64) -> Result<Option<String>> {
        let own: Option<String> = self.conn.query_row(
            "SELECT retention FROM locations WHERE id = ?1",
            [location],
            |r| r.get(0),
        )?;
        if own.is_some() {
            return Ok(own);
        }
        Ok(self
            .conn
            .query_row(
                "SELECT retention FROM conduits WHERE (location_a = ?1 OR location_b = ?1)
                 AND retention IS NOT NULL ORDER BY id LIMIT 1",
                [location],
                |r| r.get(0),
            )
            .optional()?)
    }
}

fn conduit_from_row(r: &Row<'_>) -> rusqlite::Result<ConduitRow> {
    Ok(ConduitRow {
        id: r.get(0)?,
        location_a: r.get(1)?,
        location_b: r.get(2)?,
        mode: r.get(3)?,
        conflict_policy: r.get(4)?,
        index_everything: r.get(5)?,
        generation: r.get(6)?,
        retention: r.get(7)?,
        schedule: r.get(8)?,
        parallel: r.get::<_, i64>(9)? as u32,
        bandwidth_limit: r.get::<_, i64>(10)? as u64,
        paused: r.get(11)?,
    })
}
