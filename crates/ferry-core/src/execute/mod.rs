//! The executor: carries out a plan on disk, following the safety rules.
//!
//! - Every write goes to a temp file next to its target, is verified against the
//!   expected BLAKE3, made durable, then renamed into place (rule 1).
//! - Right before overwriting, deleting or renaming, the disk is compared with the
//!   entry the plan was made from; a path that changed since the scan is skipped (rule 2).
//! - What is overwritten or deleted goes to the version store first (rule 3).
//! - No write passes through a symlinked parent (rule 4).
//! - The index is updated only for actions that completed and are durable (rule 5).
//!
//! Durability is batched: a batch of temp files is written, then one `syncfs` makes them
//! durable together, then they are renamed, then a second `syncfs` makes the renames
//! durable before the index records them.
//!
//! A run asked to stop (a [`Cancel`]) stops at the next safe point: between actions,
//! after a phase's flush, or between copy batches (staging stops; what was staged is
//! still made durable, installed and recorded). Its report says `interrupted`.

pub(crate) mod archive;
pub mod assemble;
pub(crate) mod dir_rename;

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::index::{GenerationStats, Index, LocationRow};
use crate::model::entry::{Entry, EntryKind, FileState, Presence, StatInfo};
use crate::model::rel_path::RelPath;
use crate::parallel::parallel_map_runs;
use crate::parallel::Scratch;
use crate::plan::dir_renames::DirRename;
use crate::plan::itemize::Item;
use crate::plan::schedule::{schedule, Stage, Step};
use crate::plan::{Action, Plan, Side};
use crate::problem::{Problem, ProblemKind};
use crate::progress::Progress;
use crate::replica::beneath::ParentMemo;
use crate::replica::chunk_source::{ChunkSource, OpenContent};
use crate::replica::disk::{self, Source, Staged};
use crate::replica::fs_ops::sync_filesystem;
use crate::replica::location::Location;
use crate::throttle::RateLimiter;
use dir_rename::Applied;
use std::collections::HashMap;

/// Files staged before one durability point.
const COPY_BATCH_FILES: usize = 1024;
/// Bytes staged before one durability point.
const COPY_BATCH_BYTES: u64 = 512 * 1024 * 1024;
/// Copy workers of a run that pulls from another device, unless the conduit sets its
/// own number: they wait on the network, not on a disk, so many files are in flight
/// at once (each with its own pieces fetched ahead).
const PULL_WORKERS: usize = 16;

/// What an execution did.
#[derive(Debug, Clone, Default)]
pub struct ExecReport {
    /// Counters of what was carried out.
    pub stats: GenerationStats,
    /// Per-action problems; the action was skipped and nothing was lost.
    pub problems: Vec<Problem>,
    /// Actions skipped on purpose, e.g. onto a path the target side ignores.
    pub notes: Vec<String>,
    /// The run was asked to stop and did, at a safe point: the index holds every action
    /// that completed, the rest of the plan was not attempted.
    pub interrupted: bool,
    /// What was carried out, one item per path, in the order it was done.
    pub done: Vec<Item>,
    /// How many of `done` the generation's record holds already.
    recorded: usize,
    /// Items of `done` kept in memory once recorded (`None`: all). A run planned in
    /// batches keeps only the first ones: the generation's record holds every item.
    pub(crate) keep_done: Option<usize>,
    /// Items carried out and recorded but not kept in `done` (see `keep_done`).
    pub done_omitted: u64,
}

/// What a run carries from one batch of its plan to the next (a run planned whole is
/// one batch).
#[derive(Debug, Default)]
pub(crate) struct RunState {
    /// Directories the run made or prepared, each with its inode: they get their final
    /// mode and mtime once everything below them is written, at the end of the run.
    made_dirs: Vec<(Action, u64)>,
    /// Per side, whether it held a live file when the run's first copies began: only
    /// then is it searched for content to reuse (an initial copy into an empty folder
    /// skips a look-up per file, in every batch).
    reuse_local: Option<[bool; 2]>,
}

impl ExecReport {
    /// An empty report that keeps only the first `n` items of what is done in memory.
    pub(crate) fn keeping(n: usize) -> ExecReport {
        ExecReport {
            keep_done: Some(n),
            ..ExecReport::default()
        }
    }

    /// Adds what another execution of the same run did.
    pub(crate) fn absorb(&mut self, other: ExecReport) {
        self.stats.add(&other.stats);
        self.problems.extend(other.problems);
        self.notes.extend(other.notes);
        self.interrupted |= other.interrupted;
        self.done_omitted += other.done_omitted;
        let room = match self.keep_done {
            Some(cap) => cap.saturating_sub(self.done.len()),
            None => usize::MAX,
        };
        let n = other.done.len();
        self.done.extend(other.done.into_iter().take(room));
        self.done_omitted += n.saturating_sub(room) as u64;
        self.recorded = self.done.len();
    }

    /// `action` failed with `e`: skipped, nothing lost.
    fn failed(&mut self, action: &Action, e: &Error) {
        let at = Some(action.path().to_string());
        let p = Problem::from_error(Some(action.side()), at, &describe(action), e);
        self.problems.push(p);
    }
}

pub use crate::fault::FaultPoint;

/// The two replicas a plan runs against. A side whose folder is on this device is
/// written here; a side that is another device's copy (`None`) is left to that device,
/// which runs its own plan, and copies from it pull their content from `pull`.
pub struct Executor<'a> {
    /// The index: read for the disk-versus-index checks, written for each action done.
    pub index: &'a mut Index,
    /// Side A's folder, if it is on this device.
    pub a: Option<&'a Location>,
    /// Side B's folder, if it is on this device.
    pub b: Option<&'a Location>,
    /// The location ID of side B when it is another device's copy (`b` is `None`): its
    /// entries in the index are what that device reported, e.g. the archived copies
    /// it holds.
    pub peer_b: Option<i64>,
    /// Content of another device's files, by hash (with a side that is `None`).
    pub pull: Option<&'a (dyn ChunkSource + Sync)>,
    /// Where progress (phases, bytes, files in flight) is reported.
    pub progress: &'a dyn Progress,
    /// Test hook: a failure injected at a named point (the `fault-injection` feature).
    #[cfg(feature = "fault-injection")]
    pub fault: FaultPoint,
    /// Copies staged at once; 0 = one per core (up to 8).
    pub workers: usize,
    /// Bandwidth limit shared by all copies of the run.
    pub limiter: Option<&'a RateLimiter>,
    /// The generation whose counters are persisted after each durable batch.
    pub generation: Option<i64>,
    /// Set from outside to stop the run at its next safe point.
    pub cancel: Option<&'a Cancel>,
}

struct Pending {
    side: Side,
    entries: Vec<Entry>,
}

/// What became of a directory rename, for the actions it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    /// Not run yet.
    Waiting,
    /// Carried out: its actions are done.
    Done,
    /// The side was not as planned: its actions run one by one.
    FellBack,
    /// Refused (e.g. the target appeared): its actions are left alone this run.
    Refused,
}

/// The action a step runs, unless a directory rename carried it out or was refused.
fn runnable<'p>(step: &Step, groups: &[Group], plan: &'p Plan) -> Option<(usize, &'p Action)> {
    match step {
        Step::Act { action, group } => match group {
            Some(g) if groups[*g] != Group::FellBack => None,
            _ => Some((*action, &plan.actions[*action])),
        },
        Step::RenameDir { .. } => None,
    }
}

impl Executor<'_> {
    /// The folder of `side`, if it is on this device.
    fn local(&self, side: Side) -> Option<&Location> {
        match side {
            Side::A => self.a,
            Side::B => self.b,
        }
    }

    /// The folder of `side`; an error for another device's copy (whose steps this
    /// device never runs).
    fn loc(&self, side: Side) -> Result<&Location> {
        self.local(side).ok_or_else(|| {
            Error::Other(format!(
                "side {} is another device's copy; it applies its own plan",
                side.letter()
            ))
        })
    }

    /// The failure to inject (tests only; none in a build without `fault-injection`).
    fn fault(&self) -> FaultPoint {
        #[cfg(feature = "fault-injection")]
        return self.fault;
        #[cfg(not(feature = "fault-injection"))]
        FaultPoint::None
    }

    /// Whether the run was asked to stop.
    fn stopping(&self) -> bool {
        crate::cancel::is_cancelled(self.cancel)
    }

    /// Runs the plan, stage by stage (see [`schedule`]): in each stage side A's steps,
    /// then side B's, then one durability point. Per-action failures are collected in
    /// the report; only index failures abort.
    pub fn run(&mut self, plan: &Plan) -> Result<ExecReport> {
        let mut report = ExecReport::default();
        let mut state = RunState::default();
        self.run_batch(plan, &mut report, &mut state)?;
        self.finish(report, state)
    }

    /// Runs one plan (the whole run's, or one batch of a run planned in batches) into
    /// `report`; what it carries to the next batch joins `state` (see [`Executor::finish`]).
    /// Stops at a safe point when asked to (`report.interrupted`).
    pub(crate) fn run_batch(
        &mut self,
        plan: &Plan,
        report: &mut ExecReport,
        state: &mut RunState,
    ) -> Result<()> {
        let report = &mut *report;
        let mut pending = [
            Pending {
                side: Side::A,
                entries: Vec::new(),
            },
            Pending {
                side: Side::B,
                entries: Vec::new(),
            },
        ];
        let order = schedule(plan);
        let mut groups = vec![Group::Waiting; order.groups.len()];
        // The directories this run made or prepared, by action, with their inodes: only
        // those get their final mode and mtime at the end (or when interrupted), and
        // only while still there.
        let mut made: HashMap<usize, u64> = HashMap::new();
        let mut mkdirs: Vec<(usize, &Action)> = (plan.actions.iter().enumerate())
            .filter(|(_, a)| matches!(a, Action::Mkdir { .. }))
            .collect();
        mkdirs.sort_by_key(|(_, a)| a.path().depth());

        for stage in Stage::ALL {
            if stage == Stage::Archive && order.sides.iter().any(|s| !s.steps(stage).is_empty()) {
                if self.fault() == FaultPoint::StopBeforeArchiveRemoval {
                    return Err(Error::Other("injected stop before archive removal".into()));
                }
                // Every copy on B is installed; make them durable before A loses anything.
                // (Another device's B made its copies durable before reporting them.)
                if let Some(b) = self.b {
                    sync_filesystem(&b.root)?;
                }
            }
            if stage == Stage::Copies {
                // Both sides' copies in one pipeline: one phase for the progress shown,
                // batches and durability points shared.
                let copies: Vec<&Action> = (order.sides.iter())
                    .filter(|s| self.local(s.side).is_some())
                    .flat_map(|s| s.steps(stage))
                    .filter_map(|s| runnable(s, &groups, plan))
                    .map(|(_, a)| a)
                    .collect();
                self.copy_all(&copies, report, &mut pending, state)?;
            } else {
                for side_plan in &order.sides {
                    if self.local(side_plan.side).is_none() {
                        continue; // another device's copy: it runs its own plan
                    }
                    for step in side_plan.steps(stage) {
                        if self.stopping() {
                            break;
                        }
                        if let Step::RenameDir { group } = step {
                            let g = &order.groups[*group];
                            groups[*group] = self.rename_dir(g, plan, report, &mut pending)?;
                            continue;
                        }
                        let Some((i, a)) = runnable(step, &groups, plan) else {
                            continue;
                        };
                        match a {
                            Action::Archive { .. } => self.archive(a, report),
                            Action::Mkdir { .. } => {
                                let side = a.side() as usize;
                                let before = pending[side].entries.len();
                                self.attempt(a, report, &mut pending);
                                if let Some(e) = pending[side].entries.get(before) {
                                    made.insert(i, e.cache.inode);
                                }
                            }
                            _ => self.attempt(a, report, &mut pending),
                        }
                    }
                }
            }
            if stage == Stage::Directories
                && self.fault() == FaultPoint::StopAfterDirRenames
                && report.stats.dirs_renamed > 0
            {
                return Err(Error::Other("injected stop after directory renames".into()));
            }
            // Copies made themselves durable batch by batch; records need no sync.
            if !matches!(stage, Stage::Copies | Stage::Archive) {
                self.flush(&mut pending, stage != Stage::Records)?;
            }
            if stage == Stage::DirRemovals {
                self.persist_progress(report)?;
            }
            if stage != Stage::Records && self.stopping() {
                report.interrupted = true;
                break;
            }
        }
        for (i, a) in mkdirs {
            if let Some(&inode) = made.get(&i) {
                state.made_dirs.push((a.clone(), inode));
            }
        }
        self.persist_progress(report)
    }

    /// Ends a run: the directories it made get their final modes and mtimes, the
    /// generation its counters and the items not recorded yet.
    pub(crate) fn finish(&mut self, mut report: ExecReport, state: RunState) -> Result<ExecReport> {
        let mut made = state.made_dirs;
        // Stable: within one depth, the order they were made in.
        made.sort_by_key(|(a, _)| a.path().depth());
        self.finish_dirs(&mut report, &made)?;
        report.stats.errors = report.problems.len() as u64;
        self.persist_progress(&mut report)?;
        Ok(report)
    }

    /// Removes an archived file from side A once its copy on B verifies.
    fn archive(&mut self, a: &Action, report: &mut ExecReport) {
        let Action::Archive {
            path,
            expected,
            archived_as,
        } = a
        else {
            return;
        };
        let removed = match (self.a, self.b, self.peer_b) {
            (Some(la), Some(lb), _) => crate::execute::archive::remove_archived(
                self.index,
                la,
                lb,
                path,
                expected,
                archived_as,
                self.fault(),
            ),
            (Some(la), None, Some(peer)) => {
                match crate::execute::archive::remove_confirmed(
                    self.index,
                    la,
                    peer,
                    path,
                    expected,
                    archived_as,
                ) {
                    // The other device has not reported the copy yet: its entry brings
                    // the path back into a later run.
                    Ok(None) => return,
                    Ok(Some(freed)) => Ok(freed),
                    Err(e) => Err(e),
                }
            }
            _ => Err(Error::Refused(
                "archive removals run on the device that holds the source".into(),
            )),
        };
        match removed {
            Ok(freed) => {
                report.stats.files_archived += 1;
                report.stats.bytes_freed += freed;
                Self::done(report, a);
            }
            Err(e) => report.failed(a, &e),
        }
    }

    /// Directory modes and mtimes last, deepest first, once their children are written
    /// (so a read-only folder is filled before it becomes read-only). Only on the
    /// directories this run made or prepared (`made`: by action, with the inode), and
    /// only while each is still that directory (a file saved in the place of a refused
    /// mkdir is never touched).
    fn finish_dirs(&self, report: &mut ExecReport, made: &[(Action, u64)]) -> Result<()> {
        for (a, inode) in made.iter().rev() {
            let inode = *inode;
            if let Action::Mkdir {
                side, path, source, ..
            } = a
            {
                let loc = self.loc(*side)?;
                match disk::lstat(loc, path) {
                    Ok(now) if now.inode == inode => {
                        let mode = self.dir_mode(a, &mut Vec::new())?;
                        if now.mode != mode {
                            if let Err(e) = disk::chmod(loc, path, mode) {
                                report.failed(a, &e);
                            }
                        }
                        let _ = disk::set_mtime(loc, path, source.state.mtime_ns);
                    }
                    _ => report.problems.push(Problem::described(
                        Some(*side),
                        ProblemKind::Changed,
                        format!(
                            "{}: the folder changed before its mode was set; left alone",
                            describe(a)
                        ),
                    )),
                }
            }
        }
        Ok(())
    }

    /// Persists the generation's counters so far and the per-file actions done since
    /// the last call (the index already holds every completed action, so a run that
    /// dies here resumes from this point).
    fn persist_progress(&mut self, report: &mut ExecReport) -> Result<()> {
        if let Some(g) = self.generation {
            self.index.record_generation_progress(g, &report.stats)?;
            self.index
                .record_generation_actions(g, &report.done[report.recorded..])?;
            if let Some(cap) = report.keep_done {
                if report.done.len() > cap {
                    report.done_omitted += (report.done.len() - cap) as u64;
                    report.done.truncate(cap);
                }
            }
            report.recorded = report.done.len();
        }
        Ok(())
    }

    /// Notes that `action` was carried out.
    fn done(report: &mut ExecReport, action: &Action) {
        report.done.extend(Item::of_action(action));
    }

    /// Makes pending changes durable, then records them in the index.
    fn flush(&mut self, pending: &mut [Pending; 2], sync: bool) -> Result<()> {
        for p in pending.iter_mut() {
            if p.entries.is_empty() {
                continue;
            }
            let loc = self.loc(p.side)?;
            if sync {
                sync_filesystem(&loc.root)?;
            }
            let id = loc.id();
            self.index.put_entries_numbered(
                id,
                &mut p.entries,
                |_| true,
                |e, seq| e.cache.sequence = seq,
            )?;
            p.entries.clear();
        }
        Ok(())
    }

    fn attempt(&mut self, action: &Action, report: &mut ExecReport, pending: &mut [Pending; 2]) {
        let side = action.side();
        match self.apply(action, &mut report.stats, &mut report.notes) {
            Ok(entries) => {
                pending[side as usize].entries.extend(entries);
                Self::done(report, action);
            }
            Err(e) => report.failed(action, &e),
        }
    }

    /// Applies one directory rename. If the side is no longer as planned, the group's
    /// actions run one by one instead (their steps follow in the side plan); if the
    /// rename is refused, they are all left alone this run. Only index failures are
    /// returned.
    fn rename_dir(
        &mut self,
        g: &DirRename,
        plan: &Plan,
        report: &mut ExecReport,
        pending: &mut [Pending; 2],
    ) -> Result<Group> {
        let describe = || {
            format!(
                "rename directory {}:{} -> {}",
                g.side.letter(),
                g.from,
                g.to
            )
        };
        let loc = self.loc(g.side)?;
        match dir_rename::apply(self.index, loc, g) {
            Ok(Applied::Renamed { entries, errors }) => {
                for &i in &g.covers {
                    Self::done(report, &plan.actions[i]);
                }
                report.stats.files_renamed += g.entries_moved();
                report.stats.dirs_renamed += 1;
                pending[g.side as usize].entries.extend(entries);
                report.problems.extend(errors.iter().map(|e| {
                    Problem::from_error(Some(g.side), Some(g.to.to_string()), &describe(), e)
                }));
                Ok(Group::Done)
            }
            Ok(Applied::FallBack(why)) => {
                tracing::debug!(rename = describe(), why, "renaming entry by entry");
                Ok(Group::FellBack)
            }
            Err(e @ Error::Db(_)) => Err(e),
            Err(e) => {
                let at = Some(g.from.to_string());
                report
                    .problems
                    .push(Problem::from_error(Some(g.side), at, &describe(), &e));
                Ok(Group::Refused)
            }
        }
    }

    /// Carries out one non-copy action; returns the index entries it changed.
    fn apply(
        &self,
        action: &Action,
        stats: &mut GenerationStats,
        notes: &mut Vec<String>,
    ) -> Result<Vec<Entry>> {
        let loc = self.loc(action.side())?;
        match action {
            Action::MoveAside {
                path, to, expected, ..
            } => {
                let stat = disk::move_checked(loc, path, expected, to)?;
                let mut moved = expected.clone();
                moved.path = to.clone();
                moved.set_stat(stat);
                moved.cache.racy = false;
                let gone = expected.tombstone(&expected.state.version);
                Ok(vec![*moved, gone])
            }
            Action::Delete {
                path,
                expected,
                version,
                ..
            } => {
                if expected.state.kind == EntryKind::Dir {
                    disk::ensure_matches(loc, path, Some(expected))?;
                    disk::remove_dir_if_empty(self.index, loc, path)?;
                } else if expected.state.presence == Presence::Dehydrated {
                    // Its content is not here (files on demand): nothing on disk to
                    // remove, but nothing may have appeared there either.
                    disk::ensure_matches(loc, path, Some(expected))?;
                } else {
                    disk::remove_file(self.index, loc, path, expected, "deleted")?;
                    stats.files_deleted += 1;
                }
                Ok(vec![expected.tombstone(version)])
            }
            Action::Mkdir {
                path,
                source,
                expected,
                version,
                ..
            } => {
                disk::ensure_matches(loc, path, expected.as_deref())?;
                let mode = self.dir_mode(action, notes)?;
                if expected.is_none() {
                    let owner = self.owner_on(action.side().other(), &source.path)?;
                    disk::mkdir(loc, path, mode, owner)?;
                    stats.dirs_created += 1;
                } else {
                    disk::open_up_dir(loc, path, mode)?;
                }
                // Recorded with the mode it gets once its contents are written.
                let mut stat = disk::lstat(loc, path)?;
                stat.mode = mode;
                let mut made = Entry::at(path.clone(), EntryKind::Dir, stat);
                made.state.version = version.clone();
                Ok(vec![made])
            }
            Action::Rename {
                from,
                expected,
                from_version,
                to,
                source,
                version,
                ..
            } => {
                let moved = disk::move_checked(loc, from, expected, to)?;
                disk::set_mtime(loc, to, source.state.mtime_ns)?;
                stats.files_renamed += 1;
                let stat = disk::lstat(loc, to)?;
                Ok(vec![
                    {
                        let mut e = Entry::landed(to, source, stat, version);
                        // Replaced by a save since the move: hash it again next scan.
                        e.cache.racy = stat.inode != moved.inode;
                        e
                    },
                    expected.tombstone(from_version),
                ])
            }
            Action::Copy { .. } => Err(Error::Other("copies run in batches".into())),
            Action::Archive { .. } => Err(Error::Other("archive removals run last".into())),
            Action::Record { entry, .. } => Ok(vec![(**entry).clone()]),
        }
    }

    /// The owner a new file or folder gets: the source's, when this process can give
    /// files away (root); else `None`.
    fn owner_on(&self, side: Side, rel: &RelPath) -> Result<Option<(u32, u32)>> {
        match self.local(side) {
            Some(loc) if disk::can_chown() => disk::owner_of(loc, rel),
            // Another device's owner means nothing here.
            _ => Ok(None),
        }
    }

    /// The final mode of a planned directory: the source's, without setuid/setgid
    /// where its owner is not kept (said in a note).
    fn dir_mode(&self, action: &Action, notes: &mut Vec<String>) -> Result<u32> {
        let Action::Mkdir {
            side, path, source, ..
        } = action
        else {
            return Err(Error::Other("not a directory action".into()));
        };
        let mode = source.state.mode;
        // Another device's folder: its owner is not kept, so neither are these bits.
        let from = self.local(side.other());
        if mode & 0o6000 == 0 || (disk::can_chown() && from.is_some()) {
            return Ok(mode);
        }
        let me = crate::replica::fs_ops::euid();
        if let Some(from) = from {
            if disk::owner_of(from, &source.path)?.is_some_and(|(u, _)| u == me) {
                return Ok(mode);
            }
        }
        notes.push(format!(
            "{}: setuid/setgid bits not kept on {} (the folder's owner is not kept)",
            path,
            side.letter()
        ));
        Ok(mode & !0o6000)
    }

    /// Copies in batches: stage temp files, one durability point, renames, another.
    fn copy_all(
        &mut self,
        copies: &[&Action],
        report: &mut ExecReport,
        pending: &mut [Pending; 2],
        state: &mut RunState,
    ) -> Result<()> {
        let total: u64 = copies.iter().map(|a| copy_size(a)).sum();
        self.progress.phase("copy", Some(total));
        self.progress.items_total(copies.len() as u64);
        let reuse_local = match state.reuse_local {
            Some(r) => r,
            None => {
                let mut r = [false; 2];
                for side in [Side::A, Side::B] {
                    if let Some(l) = self.local(side) {
                        r[side as usize] = self.index.has_live_file(l.id())?;
                    }
                }
                state.reuse_local = Some(r);
                r
            }
        };
        // Content pulled from another device is looked for first in every other folder
        // of this device (dedup across folders); a local copy reads the other side.
        let elsewhere: Vec<LocationRow> = if self.pull.is_some() {
            let mine = [self.a.map(|l| l.id()), self.b.map(|l| l.id())];
            (self.index.locations()?.into_iter())
                .filter(|l| l.peer.is_none() && !mine.contains(&Some(l.id)))
                .collect()
        } else {
            Vec::new()
        };
        // Batch k's staged copies are installed (after a durability point, with the
        // index writes of batch k-1) on this thread while the workers stage batch k+1,
        // so the renames, the `syncfs` and the index do not leave the workers idle.
        let mut waiting: Vec<(&Action, Staged)> = Vec::new();
        let mut i = 0;
        loop {
            let more = i < copies.len() && !self.stopping();
            if !more && waiting.is_empty() {
                break;
            }
            let mut j = i;
            let mut jobs = Vec::new();
            if more {
                let mut bytes = 0;
                while j < copies.len()
                    && j - i < COPY_BATCH_FILES
                    && (bytes < COPY_BATCH_BYTES || j == i)
                {
                    bytes += copy_size(copies[j]);
                    j += 1;
                }
                // Checks and index look-ups stay on this thread; the byte work runs on
                // all cores.
                for a in &copies[i..j] {
                    let Action::Copy {
                        to,
                        source,
                        expected,
                        ..
                    } = a
                    else {
                        continue;
                    };
                    match self.copy_source(
                        *to,
                        source,
                        expected.as_deref(),
                        reuse_local[*to as usize],
                        &elsewhere,
                    ) {
                        Ok(from) => jobs.push((*a, from)),
                        Err(e) => report.failed(a, &e),
                    }
                }
            }
            let limiter = self.limiter;
            let cancel = self.cancel;
            let locs = [self.a, self.b];
            let pull = self.pull;
            let progress = self.progress;
            let t_stage = std::time::Instant::now();
            let fault = self.fault();
            let (workers, run) = match self.pull {
                Some(_) if self.workers == 0 => (PULL_WORKERS, 1),
                _ => (self.workers, 32),
            };
            let stage = |(a, from): &(&Action, CopyFrom), scratch: &mut Scratch| {
                let Action::Copy {
                    to, path, source, ..
                } = a
                else {
                    return Err(Error::Other("not a copy".into()));
                };
                if crate::cancel::is_cancelled(cancel) {
                    return Ok(None); // not staged: left for the next run
                }
                // Opened here, on the worker, one at a time: a batch never holds more
                // open files than there are workers.
                let Some(dst) = locs[*to as usize] else {
                    return Err(Error::Other("a copy onto another device's copy".into()));
                };
                let size = if source.state.kind == EntryKind::File {
                    source.state.size
                } else {
                    0
                };
                progress.file_progress(path, 0, size);
                let done = std::sync::atomic::AtomicU64::new(0);
                let moved = |n: u64| {
                    progress.bytes(n);
                    let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
                    progress.file_progress(path, d, size);
                };
                let opened = match fault {
                    FaultPoint::DeniedOpeningSource => Err(Error::Io {
                        action: "open",
                        path: (locs[to.other() as usize])
                            .map(|l| source.path.under(&l.root))
                            .unwrap_or_default(),
                        source: std::io::Error::from_raw_os_error(libc::EACCES),
                    }),
                    _ => from.open(&locs, pull, source, &mut scratch.read_dir),
                };
                let r = opened.and_then(|(src, owner)| {
                    disk::stage(
                        dst, path, src, source, owner, fault, limiter, scratch, &moved,
                    )
                });
                progress.file_finished(path);
                progress.item();
                r.map(Some)
            };
            let installing = std::mem::take(&mut waiting);
            let results = std::thread::scope(|sc| {
                let staging = (!jobs.is_empty())
                    .then(|| sc.spawn(|| parallel_map_runs(&jobs, workers, run, stage)));
                let installed = self.install_batch(installing, report, pending);
                let results = match staging {
                    Some(h) => h
                        .join()
                        .map_err(|_| Error::Other("the copy workers stopped".into()))?,
                    None => Vec::new(),
                };
                installed.map(|_| results)
            })?;
            for ((a, ..), r) in jobs.iter().zip(results) {
                match r {
                    Some(Ok(None)) => {} // the run is stopping
                    Some(Ok(Some(tmp))) => {
                        if let Some(n) = &tmp.note {
                            report.notes.push(n.clone());
                        }
                        waiting.push((*a, tmp))
                    }
                    Some(Err(e)) => report.failed(a, &e),
                    None => report.problems.push(Problem::described(
                        Some(a.side()),
                        ProblemKind::Other,
                        format!("{}: the copy worker stopped", describe(a)),
                    )),
                }
            }
            tracing::debug!(
                ms = t_stage.elapsed().as_millis() as u64,
                files = waiting.len(),
                "staged batch"
            );
            if self.fault() == FaultPoint::StopAfterStaging {
                return Err(Error::Other("injected stop after staging".into()));
            }
            i = j;
        }
        // The last batch's renames: durable, then recorded.
        self.flush(pending, true)?;
        self.persist_progress(report)?;
        Ok(())
    }

    /// Installs a batch of staged copies. One durability point first serves twice: it
    /// makes the batch's temp files durable before they are renamed, and the previous
    /// batch's renames durable before the index records them.
    fn install_batch(
        &mut self,
        staged: Vec<(&Action, Staged)>,
        report: &mut ExecReport,
        pending: &mut [Pending; 2],
    ) -> Result<()> {
        if staged.is_empty() {
            return Ok(());
        }
        for side in [Side::A, Side::B] {
            let staged_here = staged.iter().any(|(a, _)| a.side() == side);
            if staged_here || !pending[side as usize].entries.is_empty() {
                let t = std::time::Instant::now();
                sync_filesystem(&self.loc(side)?.root)?;
                tracing::debug!(ms = t.elapsed().as_millis() as u64, "batch durable");
            }
        }
        self.flush(pending, false)?;
        self.persist_progress(report)?;
        let t_install = std::time::Instant::now();
        for (a, tmp) in staged {
            let Action::Copy {
                to,
                path,
                source,
                expected,
                version,
            } = a
            else {
                continue;
            };
            let loc = self.loc(*to)?;
            let fault = self.fault();
            let expected = expected.as_deref();
            let installed = loc.dir().and_then(|root| {
                let place = disk::Place::of(loc, &root);
                disk::install(self.index, &place, path, &tmp, source, expected, fault)
            });
            match installed {
                Ok(installed) => {
                    Self::done(report, a);
                    report.stats.files_copied += 1;
                    if source.state.kind == EntryKind::File {
                        report.stats.bytes_transferred += source.state.size;
                    }
                    let mut e = Entry::landed(path, source, installed.stat, version);
                    e.cache.racy = installed.replaced_since;
                    pending[*to as usize].entries.push(e);
                }
                Err(e) => {
                    disk::discard(loc, path, &tmp);
                    // Checked only now (the install refused to replace it), so a run
                    // does not look at every target twice.
                    if matches!(e, Error::Changed(_))
                        && self.unindexed_on_target(*to, path, expected)?
                    {
                        report.notes.push(format!(
                            "{}: left alone, it exists there but is not indexed (ignored on that side?)",
                            describe(a)
                        ));
                    } else {
                        report.failed(a, &e);
                    }
                }
            }
        }
        tracing::debug!(
            ms = t_install.elapsed().as_millis() as u64,
            "installed batch"
        );
        Ok(())
    }

    /// A copy onto a path that exists on disk but has no index row on that side: the
    /// side ignores it (or it appeared after the scan), so it is not ferry's to replace.
    fn unindexed_on_target(
        &self,
        to: Side,
        path: &RelPath,
        expected: Option<&Entry>,
    ) -> Result<bool> {
        if expected.is_some() {
            return Ok(false);
        }
        let loc = self.loc(to)?;
        // Where the parent cannot be opened, staging fails and says why.
        if !disk::exists(loc, path).unwrap_or(false) {
            return Ok(false);
        }
        Ok(self.index.entry(loc.id(), path)?.is_none())
    }

    /// Where a copy's bytes come from, and the owner the copy gets: a file already in
    /// the destination location when the index knows one with the same content (the
    /// other side's file if that one changed meanwhile), else the source on the other
    /// side; when that side is another device's copy, pieces pulled by hash (chunks
    /// this device has — the same content elsewhere, the file's old version — first).
    /// Nothing is opened here (see [`CopyFrom::open`]).
    /// A file with `source`'s content in another folder of this device, if any.
    fn same_elsewhere(&self, source: &Entry, elsewhere: &[LocationRow]) -> Result<Option<Known>> {
        let Some(hash) = source.state.hash.filter(|_| source.state.size > 0) else {
            return Ok(None);
        };
        for row in elsewhere {
            let Some(path) = self.index.find_file_by_hash(row.id, &hash)? else {
                continue;
            };
            // A dehydrated file holds no content here.
            let here = |e: &Entry| e.state.presence == Presence::Live;
            if let Some(e) = self.index.entry(row.id, &path)?.filter(here) {
                return Ok(Some(Known {
                    elsewhere: Some(row.clone()),
                    path,
                    stat: e.stat(),
                    state: e.state,
                }));
            }
        }
        Ok(None)
    }

    fn copy_source(
        &self,
        to: Side,
        source: &Entry,
        expected: Option<&Entry>,
        reuse_local: bool,
        elsewhere: &[LocationRow],
    ) -> Result<CopyFrom> {
        let other = (to.other(), source.path.clone(), source.stat());
        if source.state.kind == EntryKind::Symlink {
            return Ok(CopyFrom::Symlink(self.owner_on(to.other(), &source.path)?));
        }
        let dst = self.loc(to)?;
        let same_here = match source.state.hash {
            Some(hash) if reuse_local && source.state.size > 0 => {
                match self.index.find_file_by_hash(dst.id(), &hash)? {
                    Some(p) => self.index.entry(dst.id(), &p)?,
                    None => None,
                }
            }
            _ => None,
        };
        if self.local(to.other()).is_none() {
            let old = expected
                .filter(|e| e.state.presence == Presence::Live && e.state.kind == EntryKind::File);
            let mut known: Vec<Known> = (same_here.iter().chain(old))
                .map(|e| Known {
                    elsewhere: None,
                    path: e.path.clone(),
                    stat: e.stat(),
                    state: e.state.clone(),
                })
                .collect();
            if same_here.is_none() {
                if let Some(found) = self.same_elsewhere(source, elsewhere)? {
                    known.insert(0, found);
                }
            }
            return Ok(CopyFrom::Pull { to, known });
        }
        if let Some(e) = same_here {
            let owner = disk::owner_of(self.loc(to.other())?, &source.path)?;
            return Ok(CopyFrom::File {
                first: (to, e.path.clone(), e.stat()),
                then: Some(other),
                owner,
            });
        }
        Ok(CopyFrom::File {
            first: other,
            then: None,
            owner: None,
        })
    }
}

/// Where a copy's bytes are to be read: a file of one side (and one to fall back on),
/// with the owner the copy gets when it is not the file's own; or pieces pulled by
/// hash, from files of side `to` holding some of them (`known`) and then the device
/// that has the file.
enum CopyFrom {
    Symlink(Option<(u32, u32)>),
    File {
        first: (Side, RelPath, StatInfo),
        then: Option<(Side, RelPath, StatInfo)>,
        owner: Option<(u32, u32)>,
    },
    Pull {
        to: Side,
        known: Vec<Known>,
    },
}

/// A file of this device known to hold some of a pulled file's pieces: in side `to`'s
/// folder, or in another folder (`elsewhere`). Used only while it still has the
/// indexed size and mtime; every piece read from it is checked anyway.
struct Known {
    elsewhere: Option<LocationRow>,
    path: RelPath,
    stat: StatInfo,
    state: FileState,
}

impl CopyFrom {
    /// Opens the source (through its root's handle; it must still have the indexed
    /// size and mtime) and says whose the copy is.
    fn open<'s>(
        &self,
        locs: &[Option<&Location>; 2],
        pull: Option<&'s (dyn ChunkSource + Sync)>,
        source: &Entry,
        memo: &mut ParentMemo,
    ) -> Result<(Source<'s>, Option<(u32, u32)>)> {
        match self {
            CopyFrom::Symlink(owner) => Ok((Source::Symlink, *owner)),
            CopyFrom::File { first, then, owner } => {
                let mut open =
                    |(side, rel, stat): &(Side, RelPath, StatInfo)| match locs[*side as usize] {
                        Some(loc) => disk::open_source_in(loc, rel, stat, memo),
                        None => Err(Error::Other("a local copy from another device".into())),
                    };
                let (f, found) = match (open(first), then) {
                    (Ok(x), _) => x,
                    (Err(_), Some(t)) => open(t)?,
                    (Err(e), None) => return Err(e),
                };
                Ok((Source::File(f), owner.or(Some((found.uid, found.gid)))))
            }
            CopyFrom::Pull { to, known } => {
                let pull = pull.ok_or_else(|| {
                    Error::Unavailable(format!(
                        "{}: the device that has it is not connected",
                        source.path
                    ))
                })?;
                // Files here that stopped matching their entries are simply not used.
                let files: Vec<OpenContent> = (known.iter())
                    .filter_map(|k| {
                        let (f, _) = match &k.elsewhere {
                            None => disk::open_source(locs[*to as usize]?, &k.path, &k.stat),
                            Some(row) => {
                                let loc = Location::from_row(row.clone());
                                disk::open_source(&loc, &k.path, &k.stat)
                            }
                        }
                        .ok()?;
                        OpenContent::new(f, &k.state)
                    })
                    .collect();
                let want = source.state.clone();
                let fill = move |sink: &mut dyn assemble::PieceSink| -> Result<()> {
                    let known: Vec<&FileState> = known_states(&files);
                    let mut sources: Vec<&dyn ChunkSource> =
                        files.iter().map(|f| f as &dyn ChunkSource).collect();
                    sources.push(pull);
                    assemble::assemble_into(&want, &known, &sources, sink).map(|_| ())
                };
                Ok((Source::Pieces(Box::new(fill)), None))
            }
        }
    }
}

fn known_states(files: &[OpenContent]) -> Vec<&FileState> {
    files.iter().map(|f| f.state()).collect()
}

pub(crate) fn copy_size(a: &Action) -> u64 {
    match a {
        Action::Copy { source, .. } if source.state.kind == EntryKind::File => source.state.size,
        _ => 0,
    }
}

/// Writes `source` (its bytes from `src`) to `path` of `loc` through the same safe
/// steps as a sync: verified temp file, durable, disk re-checked against `expected`,
/// old content versioned, atomic exchange, durable. Used by restore and resolve.
pub(crate) fn replace_file(
    index: &Index,
    loc: &Location,
    path: &RelPath,
    src: Source,
    source: &Entry,
    expected: Option<&Entry>,
) -> Result<StatInfo> {
    let owner = match &src {
        Source::File(f) => {
            let found = crate::replica::beneath::fstat(f, &path.under(&loc.root))?;
            Some((found.uid, found.gid))
        }
        Source::Symlink | Source::Pieces(_) => None,
    };
    let staged: Staged = disk::stage(
        loc,
        path,
        src,
        source,
        owner,
        FaultPoint::None,
        None,
        &mut Scratch::default(),
        &|_| {},
    )?;
    let root = loc.dir()?;
    let installed = root.sync_all().and_then(|_| {
        disk::install(
            index,
            &disk::Place::of(loc, &root),
            path,
            &staged,
            source,
            expected,
            FaultPoint::None,
        )
    });
    match installed {
        Ok(installed) => {
            root.sync_all()?;
            Ok(installed.stat)
        }
        Err(e) => {
            disk::discard(loc, path, &staged);
            Err(e)
        }
    }
}

fn describe(a: &Action) -> String {
    let side = a.side().letter();
    match a {
        Action::MoveAside { path, to, .. } => format!("move aside {side}:{path} -> {to}"),
        Action::Delete { path, .. } => format!("delete {side}:{path}"),
        Action::Mkdir { path, .. } => format!("mkdir {side}:{path}"),
        Action::Rename { from, to, .. } => format!("rename {side}:{from} -> {to}"),
        Action::Copy { path, .. } => format!("copy to {side}:{path}"),
        Action::Record { entry, .. } => format!("record {side}:{}", entry.path),
        Action::Archive {
            path, archived_as, ..
        } => format!("archive {side}:{path} -> b:{archived_as}"),
    }
}
