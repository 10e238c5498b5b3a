//! Generations: one row per run of a conduit, with its counters and per-file actions.

use super::{unix_now, Index};
use crate::error::{Error, Result};
use crate::model::entry::EntryKind;
use crate::model::rel_path::RelPath;
use crate::plan::itemize::{Item, ItemAction};
use crate::plan::Side;
use crate::problem::Problem;
use rusqlite::{params, OptionalExtension, Row};

/// Per-file actions kept for one generation; beyond it only their number is kept.
pub const MAX_ACTIONS_PER_GENERATION: u64 = 10_000;
/// Generations per conduit whose per-file actions are kept (older ones keep their
/// counters only).
pub const ACTION_HISTORY_GENERATIONS: u64 = 100;

/// Problems kept per generation; beyond it only their number (`errors`) is kept.
pub const PROBLEMS_KEPT: usize = 50;

/// How a run (generation) ended, or that it is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Started and not finished (or the process died: see `Interrupted`).
    Running,
    /// Everything planned was done.
    Ok,
    /// Done, with per-path problems (nothing lost; the next run retries).
    Partial,
    /// Stopped at a safe point (asked to, or the process died and a later run saw it).
    Interrupted,
}

stored_names!(RunStatus {
    Running => "running",
    Ok => "ok",
    Partial => "partial",
    Interrupted => "interrupted",
});

/// Counters of one generation (one run of a conduit).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GenerationStats {
    /// Files (and symlinks) written to either side.
    pub files_copied: u64,
    /// Files (and symlinks) deleted on either side.
    pub files_deleted: u64,
    /// Files and symlinks that moved to a new name (no bytes copied), one by one or
    /// with their directory.
    pub files_renamed: u64,
    /// Directories renamed as a whole (one `rename` for everything below them).
    pub dirs_renamed: u64,
    /// Directories created.
    pub dirs_created: u64,
    /// Conflicts met in the run (settled by policy or left open).
    pub conflicts: u64,
    /// Conflicts the policy settled in the run (not the ones left for the user).
    pub conflicts_resolved: u64,
    /// Bytes copied.
    pub bytes_transferred: u64,
    /// Per-file problems (the messages are in the run's `errors`).
    #[serde(rename = "error_count")]
    pub errors: u64,
    /// Archive mode: files removed from side A after their copy on B verified.
    pub files_archived: u64,
    /// Archive mode: bytes those removals freed on side A.
    pub bytes_freed: u64,
}

impl GenerationStats {
    /// Adds another part of the same run's counters.
    pub fn add(&mut self, o: &GenerationStats) {
        self.files_copied += o.files_copied;
        self.files_deleted += o.files_deleted;
        self.files_renamed += o.files_renamed;
        self.dirs_renamed += o.dirs_renamed;
        self.dirs_created += o.dirs_created;
        self.conflicts += o.conflicts;
        self.conflicts_resolved += o.conflicts_resolved;
        self.bytes_transferred += o.bytes_transferred;
        self.errors += o.errors;
        self.files_archived += o.files_archived;
        self.bytes_freed += o.bytes_freed;
    }
}

/// A generation row, as `ferry history` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenerationRow {
    /// The generation's ID.
    #[serde(rename = "generation")]
    pub id: i64,
    /// The conduit it ran.
    #[serde(rename = "conduit")]
    pub conduit_id: i64,
    /// Its number within the conduit (1, 2, …).
    pub number: i64,
    /// When it started (seconds since the epoch).
    pub started_at: i64,
    /// When it ended, if it did.
    pub completed_at: Option<i64>,
    /// How it ended, or that it is running.
    pub status: RunStatus,
    /// What started the run: `cli`, or the daemon's `watch`, `timer`, `start`, `api`.
    pub trigger: String,
    /// The interrupted generation this run picked up from, if any.
    pub resumes: Option<i64>,
    /// What it did.
    #[serde(flatten)]
    pub stats: GenerationStats,
    /// Per-file actions beyond [`MAX_ACTIONS_PER_GENERATION`], counted but not kept.
    pub actions_omitted: u64,
    /// The per-file actions were dropped with old history
    /// ([`ACTION_HISTORY_GENERATIONS`]).
    pub actions_pruned: bool,
}

impl Index {
    /// Starts a generation of a conduit; returns its row ID. `trigger` says what started
    /// it; a generation of the same conduit left `running` by a process that died is
    /// marked `interrupted`. When the conduit's latest generation did not finish (left
    /// running, or stopped at a safe point by a signal or a pause), this one records
    /// that it resumes it.
    pub(crate) fn begin_generation(&self, conduit: i64, trigger: &str) -> Result<i64> {
        let resumes: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM generations WHERE conduit_id = ?1
                   AND id = (SELECT max(id) FROM generations WHERE conduit_id = ?1)
                   AND status IN ('running', 'interrupted')",
                [conduit],
                |r| r.get(0),
            )
            .optional()?;
        self.conn.execute(
            "UPDATE generations SET status = 'interrupted', completed_at = ?2
             WHERE conduit_id = ?1 AND status = 'running'",
            params![conduit, unix_now()],
        )?;
        let number: i64 = self.conn.query_row(
            "UPDATE conduits SET generation = generation + 1 WHERE id = ?1 RETURNING generation",
            [conduit],
            |r| r.get(0),
        )?;
        self.conn.execute(
            "INSERT INTO generations (conduit_id, number, started_at, status, trigger, resumes)
             VALUES (?1, ?2, ?3, 'running', ?4, ?5)",
            params![conduit, number, unix_now(), trigger, resumes],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Conduits whose latest generation did not finish: left `running` by a process
    /// that died mid-run, or `interrupted` (stopped at a safe point by a signal or a
    /// pause) and not run since.
    pub fn conduits_with_interrupted_runs(&self) -> Result<Vec<i64>> {
        let mut st = self.conn.prepare(
            "SELECT conduit_id FROM generations g
             WHERE status IN ('running', 'interrupted')
               AND id = (SELECT max(id) FROM generations WHERE conduit_id = g.conduit_id)
             ORDER BY conduit_id",
        )?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Persists a running generation's counters so far (after each durable batch).
    pub(crate) fn record_generation_progress(&self, id: i64, s: &GenerationStats) -> Result<()> {
        self.conn.execute(
            "UPDATE generations SET files_copied = ?2, files_deleted = ?3, files_renamed = ?4,
                dirs_created = ?5, bytes_transferred = ?6, dirs_renamed = ?7
             WHERE id = ?1 AND status = 'running'",
            params![
                id,
                s.files_copied as i64,
                s.files_deleted as i64,
                s.files_renamed as i64,
                s.dirs_created as i64,
                s.bytes_transferred as i64,
                s.dirs_renamed as i64
            ],
        )?;
        Ok(())
    }

    /// Ends a generation with its status and final counters.
    pub(crate) fn finish_generation(
        &self,
        id: i64,
        status: RunStatus,
        s: &GenerationStats,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE generations SET completed_at = ?2, status = ?3, files_copied = ?4,
                files_deleted = ?5, files_renamed = ?6, dirs_created = ?7, conflicts = ?8,
                bytes_transferred = ?9, errors = ?10, conflicts_resolved = ?11, files_archived = ?12,
                bytes_freed = ?13, dirs_renamed = ?14 WHERE id = ?1",
            params![
                id,
                unix_now(),
                status,
                s.files_copied as i64,
                s.files_deleted as i64,
                s.files_renamed as i64,
                s.dirs_created as i64,
                s.conflicts as i64,
                s.bytes_transferred as i64,
                s.errors as i64,
                s.conflicts_resolved as i64,
                s.files_archived as i64,
                s.bytes_freed as i64,
                s.dirs_renamed as i64
            ],
        )?;
        Ok(())
    }

    /// Generations, newest first.
    pub fn generations(&self, limit: usize) -> Result<Vec<GenerationRow>> {
        let mut st = self.conn.prepare(&format!(
            "{GENERATION_COLUMNS} FROM generations ORDER BY id DESC LIMIT ?1"
        ))?;
        let rows = st.query_map([limit as i64], generation_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One generation by its ID.
    pub fn generation(&self, id: i64) -> Result<Option<GenerationRow>> {
        Ok(self
            .conn
            .query_row(
                &format!("{GENERATION_COLUMNS} FROM generations WHERE id = ?1"),
                [id],
                generation_from_row,
            )
            .optional()?)
    }

    /// Keeps per-file actions of generation `id`: appended after those already kept,
    /// up to [`MAX_ACTIONS_PER_GENERATION`]; the rest are only counted.
    pub(crate) fn record_generation_actions(&mut self, id: i64, items: &[Item]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let tx = self.write_batch()?;
        let kept: i64 = tx.query_row(
            "SELECT count(*) FROM generation_actions WHERE generation_id = ?1",
            [id],
            |r| r.get(0),
        )?;
        let room = (MAX_ACTIONS_PER_GENERATION as usize).saturating_sub(kept as usize);
        {
            let mut st = tx.prepare(
                "INSERT INTO generation_actions
                    (generation_id, seq, action, side, path, to_path, kind, size, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (seq, it) in (kept..).zip(items.iter().take(room)) {
                st.execute(params![
                    id,
                    seq,
                    it.action.as_str(),
                    it.side.map(|s| s.letter()),
                    it.path.as_str(),
                    it.to.as_ref().map(|t| t.as_str()),
                    it.kind.map(|k| k.as_str()),
                    it.size.map(|n| n as i64),
                    it.detail,
                ])?;
            }
        }
        let omitted = items.len().saturating_sub(room);
        if omitted > 0 {
            tx.execute(
                "UPDATE generations SET actions_omitted = actions_omitted + ?2 WHERE id = ?1",
                params![id, omitted as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The per-file actions kept for generation `id`, in the order they were done.
    pub fn generation_actions(&self, id: i64) -> Result<Vec<Item>> {
        let mut st = self.conn.prepare(
            "SELECT action, side, path, to_path, kind, size, detail FROM generation_actions
             WHERE generation_id = ?1 ORDER BY seq",
        )?;
        let mut rows = st.query([id])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let action: String = r.get(0)?;
            let side: Option<String> = r.get(1)?;
            let path: String = r.get(2)?;
            let to: Option<String> = r.get(3)?;
            let kind: Option<String> = r.get(4)?;
            let bad = |what: &str| Error::Corrupt(format!("generation {id}: action {what}"));
            out.push(Item {
                action: ItemAction::parse(&action).ok_or_else(|| bad(&action))?,
                side: match side.as_deref() {
                    None => None,
                    Some("a") => Some(Side::A),
                    Some("b") => Some(Side::B),
                    Some(other) => return Err(bad(other)),
                },
                path: RelPath::new(&path)?,
                to: to.as_deref().map(RelPath::new).transpose()?,
                kind: match kind.as_deref() {
                    None => None,
                    Some(k) => Some(EntryKind::parse(k).ok_or_else(|| bad(k))?),
                },
                size: r.get::<_, Option<i64>>(5)?.map(|n| n as u64),
                detail: r.get(6)?,
            });
        }
        Ok(out)
    }

    /// Keeps a run's problems (the first [`PROBLEMS_KEPT`]; the run's `errors` counter
    /// has how many there were), replacing any kept before for it.
    pub(crate) fn record_generation_problems(
        &mut self,
        id: i64,
        problems: &[Problem],
    ) -> Result<()> {
        let tx = self.write_batch()?;
        tx.execute(
            "DELETE FROM generation_problems WHERE generation_id = ?1",
            params![id],
        )?;
        {
            let mut st = tx.prepare(
                "INSERT INTO generation_problems (generation_id, seq, kind, problem)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (seq, p) in problems.iter().take(PROBLEMS_KEPT).enumerate() {
                let json = serde_json::to_string(p)
                    .map_err(|e| Error::Other(format!("problem to JSON: {e}")))?;
                let kind = serde_json::to_value(p.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                st.execute(params![id, seq as i64, kind, json])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// A run's kept problems, in the order they happened.
    pub fn generation_problems(&self, id: i64) -> Result<Vec<Problem>> {
        let mut st = self.conn.prepare(
            "SELECT problem FROM generation_problems WHERE generation_id = ?1 ORDER BY seq",
        )?;
        let rows = st.query_map(params![id], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for json in rows {
            let json = json?;
            out.push(serde_json::from_str(&json).map_err(|e| {
                Error::Corrupt(format!("problem of run {id} unreadable ({e}): {json}"))
            })?);
        }
        Ok(out)
    }

    /// Drops the per-file actions of all but the newest [`ACTION_HISTORY_GENERATIONS`]
    /// generations of a conduit (their counters stay).
    pub(crate) fn prune_generation_actions(&mut self, conduit: i64) -> Result<()> {
        let tx = self.write_batch()?;
        let old = "SELECT id FROM generations WHERE conduit_id = ?1 AND actions_pruned = 0
                   ORDER BY id DESC LIMIT -1 OFFSET ?2";
        tx.execute(
            &format!("DELETE FROM generation_actions WHERE generation_id IN ({old})"),
            params![conduit, ACTION_HISTORY_GENERATIONS as i64],
        )?;
        tx.execute(
            &format!("DELETE FROM generation_problems WHERE generation_id IN ({old})"),
            params![conduit, ACTION_HISTORY_GENERATIONS as i64],
        )?;
        tx.execute(
            &format!("UPDATE generations SET actions_pruned = 1 WHERE id IN ({old})"),
            params![conduit, ACTION_HISTORY_GENERATIONS as i64],
        )?;
        tx.commit()?;
        Ok(())
    }
}

const GENERATION_COLUMNS: &str =
    "SELECT id, conduit_id, number, started_at, completed_at, status, files_copied,
            files_deleted, files_renamed, dirs_created, conflicts, bytes_transferred, errors,
            conflicts_resolved, files_archived, bytes_freed, trigger, resumes, dirs_renamed,
            actions_omitted, actions_pruned";

fn generation_from_row(r: &Row<'_>) -> rusqlite::Result<GenerationRow> {
    Ok(GenerationRow {
        id: r.get(0)?,
        conduit_id: r.get(1)?,
        number: r.get(2)?,
        started_at: r.get(3)?,
        completed_at: r.get(4)?,
        status: r.get(5)?,
        trigger: r.get(16)?,
        resumes: r.get(17)?,
        stats: GenerationStats {
            files_copied: r.get::<_, i64>(6)? as u64,
            files_deleted: r.get::<_, i64>(7)? as u64,
            files_renamed: r.get::<_, i64>(8)? as u64,
            dirs_renamed: r.get::<_, i64>(18)? as u64,
            dirs_created: r.get::<_, i64>(9)? as u64,
            conflicts: r.get::<_, i64>(10)? as u64,
            bytes_transferred: r.get::<_, i64>(11)? as u64,
            errors: r.get::<_, i64>(12)? as u64,
            conflicts_resolved: r.get::<_, i64>(13)? as u64,
            files_archived: r.get::<_, i64>(14)? as u64,
            bytes_freed: r.get::<_, i64>(15)? as u64,
        },
        actions_omitted: r.get::<_, i64>(19)? as u64,
        actions_pruned: r.get(20)?,
    })
}
