//! Archive mode: copy side A to side B, verify what landed on B, and only then remove it
//! from A. Nothing on B is ever deleted, and A's removals never travel as deletions.
//!
//! Planning (`plan_archive`, pure like the reconciler) per path of A:
//! - a live file or symlink that B already holds with the same content → remove from A;
//! - one B lacks (or deleted before it knew A's version) → copy to B, then remove from A;
//! - one B deleted after it held A's version (B's tombstone's version vector is at
//!   least A's) → nothing: the archive's deletion is a deletion. A keeps its file if it
//!   still has one (the archive never removes a file it no longer holds from the
//!   source); between devices the source has usually forgotten it already, and copying
//!   it again would ask the source for content it no longer has, on every run;
//! - one B holds with other content: if A's version vector dominates (A's is a later
//!   edit of what B has) B's copy is replaced (and versioned on B first); otherwise both
//!   are kept: A's content goes to B as `name.conflict-…-a.ext`, then leaves A;
//! - a directory is created on B when missing and never removed from A (it is where new
//!   work lands); a file where B has a directory is left for the user as a conflict;
//! - tombstones of A, dehydrated files of A (files on demand: their content is on
//!   their secondary replica) and everything only on B are ignored.
//!
//! Removal (`remove_archived`) happens after the copies are installed and durable, and
//! only when B's file, re-read from disk, has A's indexed BLAKE3 and A's file still
//! matches its index entry (safety rule 2).
//!
//! **Why A's entry is forgotten, not tombstoned.** A tombstone says "the user deleted
//! this"; a later bidirectional or mirror run would carry it to B and delete the archived
//! copy. Forgetting the entry leaves A with no opinion on the path: bidirectional then
//! sees only B's entry (B's content may flow back to A, nothing is lost), archive sees
//! nothing to do (re-runs are idempotent), and a new file appearing on A at that path is
//! simply new work, archived on the next run. The entry is forgotten *before* the unlink:
//! a crash in between leaves a file on A with no entry, which the next scan indexes as
//! new and the next archive run removes again after re-verifying B's copy.
//!
//! **An archive conduit stays an archive conduit** (`check_mode_change`, called by
//! `open_conduit` for real and dry runs alike). Mirror would make B an exact copy of A,
//! i.e. delete from B everything archived (it is no longer on A). Bidirectional would
//! lose nothing at once, but it copies the whole archive back into A (which archiving
//! emptied, perhaps to free its disk), and from then on deleting one of those files on
//! A deletes the archived copy: the first step to the same loss, so it is refused too.
//! The same two folders named the other way round are the same conduit
//! (`sync::open_conduit`), which refuses to run it in reverse unless it is
//! bidirectional and stays so; no second conduit can work against an archive. To mirror or sync the source elsewhere, or
//! to get archived files back, use a different folder (a new conduit).

use crate::error::{Error, Result};
use crate::model::entry::{Entry, EntryKind, Presence};
use crate::model::rel_path::RelPath;
use crate::model::version_vector::Causality;
use crate::plan::conflict_name::conflict_name;
use crate::plan::ReconcileInput;
use crate::plan::{Action, ConflictRecord, Plan, Side, SyncMode};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// Refuses to take conduit `id` (between roots `a` and `b`) out of archive mode: `from`
/// is its mode now, `to` the mode asked for. Any other change of mode is left alone.
pub(crate) fn check_mode_change(
    id: i64,
    from: SyncMode,
    to: SyncMode,
    a: &Path,
    b: &Path,
) -> Result<()> {
    if from != SyncMode::Archive || to == SyncMode::Archive {
        return Ok(());
    }
    let (a, b) = (a.display(), b.display());
    let (effect, instead) = match to {
        SyncMode::Mirror => (
            format!(
                "mirror would make {b} an exact copy of {a}, deleting from {b} every file \
                 archived there (they are no longer in {a})"
            ),
            format!(
                "To mirror {a}, sync it into a different folder (a new conduit): \
                 `ferry sync {a} OTHER-FOLDER --mode mirror`."
            ),
        ),
        SyncMode::Bidirectional => (
            format!(
                "bidirectional would copy everything archived in {b} back into {a}, and \
                 from then on deleting one of those files in {a} would delete its archived copy"
            ),
            format!(
                "To get archived files back, copy them from {b}, or sync {b} into a \
                 different folder (a new conduit): `ferry sync {b} OTHER-FOLDER --mode mirror`."
            ),
        ),
        _ => (
            format!("{} mode cannot take over an archive", to.as_str()),
            "Sync into a different folder instead (a new conduit).".to_string(),
        ),
    };
    Err(Error::Refused(format!(
        "conduit {} archives {a} → {b} and stays an archive: {effect}. {instead} \
         Without --mode, the conduit keeps archiving.",
        id
    )))
}

/// The plan of one archive run (A → B).
pub(crate) fn plan_archive(input: ReconcileInput<'_>) -> Plan {
    let b: BTreeMap<&RelPath, &Entry> = input.b.iter().map(|e| (&e.path, e)).collect();
    let mut taken: HashSet<String> = input
        .a
        .iter()
        .chain(input.b)
        .map(|e| e.path.as_str().to_string())
        .collect();
    let mut plan = Plan::default();
    // A dehydrated file's content is on its secondary replica already (files on
    // demand): nothing of it is here to copy or remove.
    for ea in (input.a.iter()).filter(|e| e.is_live() && e.state.presence != Presence::Dehydrated) {
        let path = &ea.path;
        let eb = b.get(path).copied();
        let lb = eb.filter(|e| e.is_live());
        let merged = ea
            .state
            .version
            .merged(&eb.map(|e| e.state.version.clone()).unwrap_or_default());
        if ea.state.kind == EntryKind::Dir {
            match lb {
                None => plan.actions.push(Action::Mkdir {
                    side: Side::B,
                    path: path.clone(),
                    source: Box::new(ea.clone()),
                    expected: None,
                    version: merged,
                }),
                Some(d) if d.state.kind == EntryKind::Dir => {}
                // B's file stays; A's folder stays; files below fail to copy and stay.
                Some(_) => plan.conflicts.push(open_conflict(ea, eb)),
            }
            continue;
        }
        if eb.is_some_and(|t| {
            t.is_tombstone()
                && matches!(
                    ea.state.version.compare(&t.state.version),
                    Causality::Older | Causality::Equal
                )
        }) {
            // Deleted on B after B held this version of A's: settled.
            continue;
        }
        let archived_as = match lb {
            Some(l) if l.same_content(ea) => path.clone(),
            Some(l) if l.state.kind == EntryKind::Dir => {
                plan.conflicts.push(open_conflict(ea, eb));
                continue;
            }
            Some(l) if ea.state.version.compare(&l.state.version) == Causality::Newer => {
                plan.actions.push(Action::Copy {
                    to: Side::B,
                    path: path.clone(),
                    source: Box::new(ea.clone()),
                    expected: Some(Box::new(l.clone())),
                    version: merged,
                });
                path.clone()
            }
            Some(_) => {
                let aside = conflict_name(&mut taken, input.occupied, input.now, path, Side::A);
                // The source stays at its own path on A; only B's name differs.
                plan.actions.push(Action::Copy {
                    to: Side::B,
                    path: aside.clone(),
                    source: Box::new(ea.clone()),
                    expected: None,
                    version: ea.state.version.clone(),
                });
                plan.conflicts.push(ConflictRecord {
                    path: path.clone(),
                    a: Some(ea.clone()),
                    b: eb.cloned(),
                    policy: input.policy,
                    winner: Some(Side::B),
                    loser_kept_at: Some(format!("{aside} (on b)")),
                });
                aside
            }
            None => {
                plan.actions.push(Action::Copy {
                    to: Side::B,
                    path: path.clone(),
                    source: Box::new(ea.clone()),
                    expected: None,
                    version: merged,
                });
                path.clone()
            }
        };
        plan.actions.push(Action::Archive {
            path: path.clone(),
            expected: Box::new(ea.clone()),
            archived_as,
        });
    }
    plan
}

fn open_conflict(ea: &Entry, eb: Option<&Entry>) -> ConflictRecord {
    ConflictRecord {
        path: ea.path.clone(),
        a: Some(ea.clone()),
        b: eb.cloned(),
        policy: crate::plan::ConflictPolicy::Manual,
        winner: None,
        loser_kept_at: None,
    }
}
