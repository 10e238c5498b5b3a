//! Shares: folders kept in step with other devices. A share is one local location
//! and its members (other devices); each member that accepted has a *peer location*
//! (its copy of the folder, as the entries it sent) and a conduit between the two.
//! Offers other devices made to this one wait in `share_offers` until accepted.

use super::{unix_now, Index};
use crate::error::{Error, Result};
use crate::model::entry::{Entry, FileState};
use crate::model::rel_path::RelPath;
use crate::plan::{ConflictPolicy, SyncMode};
use rusqlite::{params, OptionalExtension, Row};

/// A share row: this device's folder in a share.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShareRow {
    /// The share's ID, the same on every member device.
    pub id: String,
    /// This device's folder in the share.
    pub location_id: i64,
    /// How the share syncs (bidirectional or mirror).
    pub mode: SyncMode,
    /// What wins when two devices changed the same file.
    pub conflict_policy: ConflictPolicy,
    /// The device that offered the share (`None`: this device did).
    pub offered_by: Option<String>,
    /// When this device made or accepted the share (seconds since the epoch).
    pub created_at: i64,
}

/// Another device in a share.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShareMember {
    /// The share this membership is of.
    pub share_id: String,
    /// The member's device ID.
    pub device: String,
    /// Its copy of the folder, once it said which one (it accepted).
    pub remote_location: Option<i64>,
    /// The conduit between this device's folder and the member's copy, once tied.
    pub conduit_id: Option<i64>,
    /// The device's own sequence number up to which its entries are held here.
    pub received_seq: u64,
}

/// A share another device offered to this one, not accepted yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShareOffer {
    /// The share offered.
    pub share_id: String,
    /// The device that offered it.
    pub device: String,
    /// The folder's name on the offering device (a suggestion, nothing more).
    pub folder_name: String,
    /// The folder's ID (location UUID) on the offering device.
    pub folder_id: String,
    /// How the share syncs.
    pub mode: SyncMode,
    /// What wins when two devices changed the same file.
    pub conflict_policy: ConflictPolicy,
    /// When the offer was last heard (seconds since the epoch).
    pub received_at: i64,
}

fn share_from_row(r: &Row<'_>) -> rusqlite::Result<ShareRow> {
    Ok(ShareRow {
        id: r.get(0)?,
        location_id: r.get(1)?,
        mode: r.get(2)?,
        conflict_policy: r.get(3)?,
        offered_by: r.get(4)?,
        created_at: r.get(5)?,
    })
}

fn member_from_row(r: &Row<'_>) -> rusqlite::Result<ShareMember> {
    Ok(ShareMember {
        share_id: r.get(0)?,
        device: r.get(1)?,
        remote_location: r.get(2)?,
        conduit_id: r.get(3)?,
        received_seq: r.get::<_, i64>(4)? as u64,
    })
}

const SHARE_COLUMNS: &str = "id, location_id, mode, conflict_policy, offered_by, created_at";
const MEMBER_COLUMNS: &str = "share_id, device, remote_location, conduit_id, received_seq";

impl Index {
    /// Records a share of location `location_id` (`offered_by`: the device that made it, `None` for this one).
    pub fn insert_share(
        &self,
        id: &str,
        location_id: i64,
        mode: SyncMode,
        policy: ConflictPolicy,
        offered_by: Option<&str>,
    ) -> Result<ShareRow> {
        self.conn.execute(
            "INSERT INTO shares (id, location_id, mode, conflict_policy, offered_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, location_id, mode, policy, offered_by, unix_now()],
        )?;
        self.share(id)?
            .ok_or_else(|| Error::Corrupt("share vanished after insert".into()))
    }

    /// The share with this ID, if this device has it.
    pub fn share(&self, id: &str) -> Result<Option<ShareRow>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {SHARE_COLUMNS} FROM shares WHERE id = ?1"),
                [id],
                share_from_row,
            )
            .optional()?)
    }

    /// Every share of this device.
    pub fn shares(&self) -> Result<Vec<ShareRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {SHARE_COLUMNS} FROM shares ORDER BY created_at, id"
        ))?;
        let rows = st.query_map([], share_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Adds `device` to a share (nothing happens if it is a member already).
    pub fn add_share_member(&self, share: &str, device: &str) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO share_members (share_id, device) VALUES (?1, ?2)",
            params![share, device],
        )?;
        Ok(())
    }

    /// Removes `device` from a share; returns its membership (with the conduit tied to
    /// its copy, which the caller removes), or `None` if it was not a member.
    pub fn remove_share_member(&self, share: &str, device: &str) -> Result<Option<ShareMember>> {
        let member = self.share_member(share, device)?;
        if member.is_some() {
            self.conn.execute(
                "DELETE FROM share_members WHERE share_id = ?1 AND device = ?2",
                params![share, device],
            )?;
        }
        Ok(member)
    }

    /// The member devices of a share.
    pub fn share_members(&self, share: &str) -> Result<Vec<ShareMember>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {MEMBER_COLUMNS} FROM share_members WHERE share_id = ?1 ORDER BY device"
        ))?;
        let rows = st.query_map([share], member_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One member of a share, if `device` is one.
    pub fn share_member(&self, share: &str, device: &str) -> Result<Option<ShareMember>> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {MEMBER_COLUMNS} FROM share_members WHERE share_id = ?1 AND device = ?2"
                ),
                params![share, device],
                member_from_row,
            )
            .optional()?)
    }

    /// The shares `device` is a member of, with its membership.
    pub fn shares_with(&self, device: &str) -> Result<Vec<(ShareRow, ShareMember)>> {
        let mut st = self.conn.prepare(
            "SELECT s.id, s.location_id, s.mode, s.conflict_policy, s.offered_by, s.created_at,
                    m.share_id, m.device, m.remote_location, m.conduit_id, m.received_seq
             FROM shares s JOIN share_members m ON m.share_id = s.id
             WHERE m.device = ?1 ORDER BY s.id",
        )?;
        let rows = st.query_map([device], |r| {
            let s = share_from_row(r)?;
            let m = ShareMember {
                share_id: r.get(6)?,
                device: r.get(7)?,
                remote_location: r.get(8)?,
                conduit_id: r.get(9)?,
                received_seq: r.get::<_, i64>(10)? as u64,
            };
            Ok((s, m))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The bandwidth limit a share's member conduits start with (bytes per second, 0:
    /// none).
    pub fn share_bandwidth_limit(&self, id: &str) -> Result<u64> {
        let limit: Option<i64> = self
            .conn
            .query_row(
                "SELECT bandwidth_limit FROM shares WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(limit.unwrap_or(0).max(0) as u64)
    }

    /// A share's bandwidth limit with its schedule, if it has one (a schedule stored
    /// that does not read is an error, not "unlimited").
    pub fn share_bandwidth(&self, id: &str) -> Result<crate::bandwidth::BandwidthLimit> {
        let row: Option<(i64, Option<String>)> = self
            .conn
            .query_row(
                "SELECT bandwidth_limit, bandwidth_schedule FROM shares WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match row {
            None => Ok(crate::bandwidth::BandwidthLimit::default()),
            Some((_, Some(text))) => crate::bandwidth::BandwidthLimit::parse(&text)
                .map_err(|e| crate::Error::Other(format!("share {id}: {e}"))),
            Some((rate, None)) => Ok(crate::bandwidth::BandwidthLimit::fixed(rate.max(0) as u64)),
        }
    }

    /// Sets a share's bandwidth limit, a schedule or one rate; its member conduits
    /// (which pull under the schedule when the share has one) take the rate outside
    /// the windows.
    pub fn set_share_bandwidth(
        &self,
        id: &str,
        limit: &crate::bandwidth::BandwidthLimit,
    ) -> Result<()> {
        let schedule = limit.is_scheduled().then(|| limit.to_string());
        self.conn.execute(
            "UPDATE shares SET bandwidth_schedule = ?2 WHERE id = ?1",
            params![id, schedule],
        )?;
        self.set_share_bandwidth_limit_only(id, limit.base)
    }

    /// Sets a share's bandwidth limit (one rate, no schedule), and that of its member
    /// conduits tied already.
    pub fn set_share_bandwidth_limit(&self, id: &str, limit: u64) -> Result<()> {
        self.set_share_bandwidth(id, &crate::bandwidth::BandwidthLimit::fixed(limit))
    }

    fn set_share_bandwidth_limit_only(&self, id: &str, limit: u64) -> Result<()> {
        self.conn.execute(
            "UPDATE shares SET bandwidth_limit = ?2 WHERE id = ?1",
            params![id, limit as i64],
        )?;
        self.conn.execute(
            "UPDATE conduits SET bandwidth_limit = ?2 WHERE id IN
                 (SELECT conduit_id FROM share_members WHERE share_id = ?1)",
            params![id, limit as i64],
        )?;
        Ok(())
    }

    /// The share a conduit belongs to and the member device at its other end, if the
    /// conduit is one of a share's.
    pub fn share_of_conduit(&self, conduit: i64) -> Result<Option<(ShareRow, ShareMember)>> {
        let found: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT share_id, device FROM share_members WHERE conduit_id = ?1",
                [conduit],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((share, device)) = found else {
            return Ok(None);
        };
        let s = self.share(&share)?;
        let m = self.share_member(&share, &device)?;
        Ok(s.zip(m))
    }

    /// Ties member `device` to its copy of the folder (a peer location) and the conduit.
    pub fn set_member_replica(
        &self,
        share: &str,
        device: &str,
        remote_location: i64,
        conduit: i64,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE share_members SET remote_location = ?3, conduit_id = ?4
             WHERE share_id = ?1 AND device = ?2",
            params![share, device, remote_location, conduit],
        )?;
        Ok(())
    }

    /// Keeps (or refreshes) an offer from another device. A declined offer stays
    /// declined.
    pub fn record_offer(&self, offer: &ShareOffer) -> Result<()> {
        self.conn.execute(
            "INSERT INTO share_offers
               (share_id, device, folder_name, folder_id, mode, conflict_policy, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (share_id, device) DO UPDATE SET
               folder_name = excluded.folder_name, folder_id = excluded.folder_id,
               mode = excluded.mode, conflict_policy = excluded.conflict_policy,
               received_at = excluded.received_at",
            params![
                offer.share_id,
                offer.device,
                offer.folder_name,
                offer.folder_id,
                offer.mode,
                offer.conflict_policy,
                offer.received_at
            ],
        )?;
        Ok(())
    }

    /// Offers other devices made that are neither accepted nor declined.
    pub fn offers(&self) -> Result<Vec<ShareOffer>> {
        self.offers_where("declined_at IS NULL")
    }

    /// The offers of share `share`, declined ones included (`ferry accept` takes a
    /// declined offer too: declining is not final).
    pub fn offers_of(&self, share: &str) -> Result<Vec<ShareOffer>> {
        Ok(self
            .offers_where("1")?
            .into_iter()
            .filter(|o| o.share_id == share)
            .collect())
    }

    fn offers_where(&self, filter: &str) -> Result<Vec<ShareOffer>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT share_id, device, folder_name, folder_id, mode, conflict_policy, received_at
             FROM share_offers WHERE {filter} ORDER BY received_at, share_id"
        ))?;
        let rows = st.query_map([], |r| {
            Ok(ShareOffer {
                share_id: r.get(0)?,
                device: r.get(1)?,
                folder_name: r.get(2)?,
                folder_id: r.get(3)?,
                mode: r.get(4)?,
                conflict_policy: r.get(5)?,
                received_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Declines the open offers of share `share`: they are no longer listed, and the
    /// offering device's share lists do not bring them back. False if there was none.
    pub fn decline_offers(&self, share: &str) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE share_offers SET declined_at = ?2 WHERE share_id = ?1 AND declined_at IS NULL",
            params![share, unix_now()],
        )?;
        Ok(n > 0)
    }

    /// Forgets the offers of a share (it was accepted).
    pub fn remove_offers(&self, share: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM share_offers WHERE share_id = ?1", [share])?;
        Ok(())
    }

    /// Stores entries a member device sent for its copy of a share (`location`, a peer
    /// location) and how far its sequence they reach, in one transaction: a cut
    /// exchange resumes from what was stored. An entry equal to the one held (same
    /// state) is not rewritten, so it does not move the location's sequence. Returns
    /// how many entries changed.
    pub fn put_received(
        &mut self,
        share: &str,
        device: &str,
        location: i64,
        received: &[(RelPath, FileState)],
        received_seq: u64,
    ) -> Result<usize> {
        let tx = self.write_batch()?;
        let mut changed = Vec::new();
        {
            let mut get = tx.prepare_cached(
                "SELECT path, kind, size, mtime_ns, ctime_ns, inode, mode, hash, chunks, link_target,
                        version, deleted, sequence, racy, dehydrated
                 FROM entries WHERE location_id = ?1 AND path = ?2",
            )?;
            for (path, state) in received {
                let held = get
                    .query_row(params![location, path.as_str()], |r| {
                        Ok(super::entries::entry_from_row(r))
                    })
                    .optional()?
                    .transpose()?;
                if held.is_some_and(|h| &h.state == state) {
                    continue;
                }
                let mut e = Entry::at(path.clone(), state.kind, Default::default());
                e.state = state.clone();
                changed.push(e);
            }
        }
        if !changed.is_empty() {
            let last: i64 = tx.query_row(
                "UPDATE locations SET sequence = sequence + ?2 WHERE id = ?1 RETURNING sequence",
                params![location, changed.len() as i64],
                |r| r.get(0),
            )?;
            let first = last as u64 - changed.len() as u64 + 1;
            for (seq, e) in (first..).zip(changed.iter_mut()) {
                e.cache.sequence = seq;
            }
            super::entries::put_entries_in(&tx, location, &changed)?;
        }
        tx.execute(
            "UPDATE share_members SET received_seq = max(received_seq, ?3)
             WHERE share_id = ?1 AND device = ?2",
            params![share, device, received_seq as i64],
        )?;
        tx.commit()?;
        Ok(changed.len())
    }
}
