//! Conflicts met by runs, open or settled.

use super::{unix_now, Index};
use crate::error::Result;
use crate::model::entry::{Entry, EntryKind};
use crate::model::rel_path::RelPath;
use crate::plan::{ConflictPolicy, Side};
use rusqlite::params;

/// Where a recorded conflict stands (stored as its name; an unknown name makes the row
/// corrupt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConflictStatus {
    /// Waiting for the user (`manual` policy, or a file facing a directory).
    Open,
    /// Decided, by the policy during the run or by the user with `ferry resolve`.
    Settled,
    /// An open conflict that a later run met again and recorded afresh.
    Superseded,
}

stored_names!(ConflictStatus {
    Open => "open",
    Settled => "settled",
    Superseded => "superseded",
});

/// How the user settled a conflict with `ferry resolve` (stored as its name; an unknown
/// name makes the row corrupt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    /// Side A's content was kept.
    A,
    /// Side B's content was kept.
    B,
    /// Both were kept: B's at the path, the loser beside it.
    Both,
}

stored_names!(Resolution {
    A => "a",
    B => "b",
    Both => "both",
});

impl Resolution {
    /// The side whose content won, if one did.
    pub fn winner(self) -> Option<Side> {
        match self {
            Resolution::A => Some(Side::A),
            Resolution::B => Some(Side::B),
            Resolution::Both => None,
        }
    }
}

/// A side as stored and shown in a conflict row: its letter (`a`, `b`).
fn serialize_opt_side<S: serde::Serializer>(
    side: &Option<Side>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match side {
        Some(side) => s.serialize_some(side.letter()),
        None => s.serialize_none(),
    }
}

/// A conflict row, as `ferry conflicts` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConflictRow {
    /// The conflict's ID (`ferry resolve --id`).
    pub id: i64,
    /// The conduit whose run met it.
    #[serde(rename = "conduit")]
    pub conduit_id: i64,
    /// A path key (`rel_path`), serialized for people.
    #[serde(serialize_with = "crate::model::rel_path::serialize_key")]
    pub path: String,
    /// Side A's kind then (`file`, `dir`, `symlink`); `None` if deleted there.
    pub a_kind: Option<EntryKind>,
    /// Side A's size then.
    pub a_size: Option<i64>,
    /// Side A's mtime then (ns since the epoch).
    pub a_mtime_ns: Option<i64>,
    /// Side B's kind then; `None` if deleted there.
    pub b_kind: Option<EntryKind>,
    /// Side B's size then.
    pub b_size: Option<i64>,
    /// Side B's mtime then (ns since the epoch).
    pub b_mtime_ns: Option<i64>,
    /// The policy in force when it was met.
    #[serde(rename = "conflict_policy")]
    pub policy: ConflictPolicy,
    /// The side whose content won (shown as `a`, `b`), if one did.
    #[serde(serialize_with = "serialize_opt_side")]
    pub winner: Option<Side>,
    /// Where the losing content stays visible (`keep-both`), as a path key.
    #[serde(serialize_with = "crate::model::rel_path::serialize_opt_key")]
    pub loser_kept_at: Option<String>,
    /// Open, settled or superseded.
    pub status: ConflictStatus,
    /// When it was met (seconds since the epoch).
    pub created_at: i64,
    /// How the user settled it with `ferry resolve` (`a`, `b`, `both`), if they did.
    pub resolution: Option<Resolution>,
    /// When it was settled by the user (seconds since the epoch).
    pub settled_at: Option<i64>,
    /// Root of side A.
    pub a_root: String,
    /// Root of side B.
    pub b_root: String,
}

impl Index {
    #[allow(clippy::too_many_arguments)]
    /// Records a conflict a run met at `path`, with both sides' state then.
    pub(crate) fn insert_conflict(
        &self,
        conduit: i64,
        generation: i64,
        path: &RelPath,
        a: Option<&Entry>,
        b: Option<&Entry>,
        policy: ConflictPolicy,
        winner: Option<Side>,
        loser_kept_at: Option<&str>,
        status: ConflictStatus,
    ) -> Result<()> {
        let live = |e: Option<&Entry>| e.filter(|e| e.is_live()).cloned();
        let (a, b) = (live(a), live(b));
        self.conn.execute(
            "INSERT INTO conflicts (conduit_id, generation_id, path, a_kind, a_size, a_mtime_ns,
                b_kind, b_size, b_mtime_ns, policy, winner, loser_kept_at, status, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                conduit,
                generation,
                path.as_str(),
                a.as_ref().map(|e| e.state.kind),
                a.as_ref().map(|e| e.state.size as i64),
                a.as_ref().map(|e| e.state.mtime_ns),
                b.as_ref().map(|e| e.state.kind),
                b.as_ref().map(|e| e.state.size as i64),
                b.as_ref().map(|e| e.state.mtime_ns),
                policy,
                winner,
                loser_kept_at,
                status,
                unix_now()
            ],
        )?;
        Ok(())
    }

    /// Conflicts, newest first: all of them, or only open ones.
    pub fn conflicts(&self, only_open: bool) -> Result<Vec<ConflictRow>> {
        self.query_conflicts(
            "WHERE (?1 = 0 OR c.status = ?2) ORDER BY c.id DESC",
            params![only_open, ConflictStatus::Open],
        )
    }

    /// Open conflicts, and those settled (by policy or by the user) at or after `since`,
    /// newest first. Superseded rows (an open conflict recorded again by a later run) are
    /// left out.
    pub fn recent_conflicts(&self, since: i64) -> Result<Vec<ConflictRow>> {
        self.query_conflicts(
            "WHERE c.status = ?2
                OR (c.status = ?3 AND coalesce(c.settled_at, c.created_at) >= ?1)
             ORDER BY c.id DESC",
            params![since, ConflictStatus::Open, ConflictStatus::Settled],
        )
    }

    /// Open conflicts at `path` of a conduit.
    pub(crate) fn open_conflicts_at(
        &self,
        conduit: i64,
        path: &RelPath,
    ) -> Result<Vec<ConflictRow>> {
        self.query_conflicts(
            "WHERE c.conduit_id = ?1 AND c.path = ?2 AND c.status = ?3 ORDER BY c.id DESC",
            params![conduit, path.as_str(), ConflictStatus::Open],
        )
    }

    fn query_conflicts(&self, tail: &str, args: impl rusqlite::Params) -> Result<Vec<ConflictRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT c.id, c.conduit_id, c.path, c.a_kind, c.a_size, c.a_mtime_ns, c.b_kind,
                    c.b_size, c.b_mtime_ns, c.policy, c.winner, c.loser_kept_at, c.status,
                    c.created_at, c.resolution, c.settled_at, la.root, lb.root
             FROM conflicts c JOIN conduits d ON d.id = c.conduit_id
             JOIN locations la ON la.id = d.location_a JOIN locations lb ON lb.id = d.location_b
             {tail}"
        ))?;
        let rows = st.query_map(args, |r| {
            Ok(ConflictRow {
                id: r.get(0)?,
                conduit_id: r.get(1)?,
                path: r.get(2)?,
                a_kind: r.get(3)?,
                a_size: r.get(4)?,
                a_mtime_ns: r.get(5)?,
                b_kind: r.get(6)?,
                b_size: r.get(7)?,
                b_mtime_ns: r.get(8)?,
                policy: r.get(9)?,
                winner: r.get(10)?,
                loser_kept_at: r.get(11)?,
                status: r.get(12)?,
                created_at: r.get(13)?,
                resolution: r.get(14)?,
                settled_at: r.get(15)?,
                a_root: r.get(16)?,
                b_root: r.get(17)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records the user's decision on an open conflict.
    pub(crate) fn settle_conflict(
        &self,
        id: i64,
        resolution: Resolution,
        loser_kept_at: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE conflicts SET status = ?6, resolution = ?2, winner = ?3,
                loser_kept_at = ?4, settled_at = ?5 WHERE id = ?1",
            params![
                id,
                resolution,
                resolution.winner(),
                loser_kept_at,
                unix_now(),
                ConflictStatus::Settled
            ],
        )?;
        Ok(())
    }

    /// Marks open conflicts of a conduit as superseded before a run records fresh ones.
    pub(crate) fn close_open_conflicts(&self, conduit: i64, status: ConflictStatus) -> Result<()> {
        self.conn.execute(
            "UPDATE conflicts SET status = ?2 WHERE conduit_id = ?1 AND status = ?3",
            params![conduit, status, ConflictStatus::Open],
        )?;
        Ok(())
    }
}
