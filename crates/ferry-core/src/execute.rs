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

use crate::dir_rename::{self, Applied, DirRename};
use crate::entry::{kind_of, Entry, EntryKind, StatInfo};
use crate::error::{Error, IoContext, Result};
use crate::fs_ops::{
    blake3_file, check_parents, clone_or_copy, sync_filesystem, temp_sibling, throttled_copy,
};
use crate::ignore_rules::IndexRules;
use crate::index::{GenerationStats, Index};
use crate::location::Location;
use crate::parallel::parallel_map;
use crate::plan::{Action, Plan, Side};
use crate::progress::Progress;
use crate::rel_path::RelPath;
use crate::throttle::RateLimiter;
use crate::version_store;
use crate::version_vector::VersionVector;
use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Files staged before one durability point.
const COPY_BATCH_FILES: usize = 1024;
/// Bytes staged before one durability point.
const COPY_BATCH_BYTES: u64 = 512 * 1024 * 1024;

/// What an execution did.
#[derive(Debug, Clone, Default)]
pub struct ExecReport {
    pub stats: GenerationStats,
    /// Per-action problems; the action was skipped and nothing was lost.
    pub errors: Vec<String>,
    /// Actions skipped on purpose, e.g. onto a path the target side ignores.
    pub notes: Vec<String>,
}

/// Test hook: a failure injected at a named point of the executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultPoint {
    #[default]
    None,
    /// Corrupt the temp file after copying, so verification must catch it.
    CorruptTempAfterCopy,
    /// Stop (as if the process died) after staging temp files, before any rename.
    StopAfterStaging,
    /// Archive: corrupt the installed copy on B before it is re-read for verification.
    CorruptArchivedCopy,
    /// Archive: stop (as if the process died) after the copies, before any removal from A.
    StopBeforeArchiveRemoval,
    /// Stop (as if the process died) after directories were renamed on disk, before the
    /// index records their new paths.
    StopAfterDirRenames,
}

/// The two locations a plan runs against.
pub struct Executor<'a> {
    pub index: &'a mut Index,
    pub a: &'a Location,
    pub b: &'a Location,
    pub progress: &'a dyn Progress,
    pub fault: FaultPoint,
    /// Copies staged at once; 0 = one per core (up to 8).
    pub workers: usize,
    /// Bandwidth limit shared by all copies of the run.
    pub limiter: Option<&'a RateLimiter>,
    /// The generation whose counters are persisted after each durable batch.
    pub generation: Option<i64>,
}

struct Pending {
    side: Side,
    entries: Vec<Entry>,
}

/// Where an action stands with respect to the directory renames that may carry it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Runs in its phase.
    Open,
    /// Waits for its directory rename.
    Held,
    /// Carried out by its directory rename.
    Done,
    /// Its directory rename was refused; left alone this run.
    Refused,
}

/// One step of the directory phase.
enum Step<'p> {
    RenameDir(&'p DirRename),
    Mkdir(usize, &'p Action),
}

/// The plan's actions that `f` selects and that are not held by a directory rename.
fn phase<'p>(plan: &'p Plan, held: &[Hold], f: fn(&Action) -> bool) -> Vec<&'p Action> {
    (plan.actions.iter().enumerate())
        .filter(|(i, a)| held[*i] == Hold::Open && f(a))
        .map(|(_, a)| a)
        .collect()
}

impl Executor<'_> {
    fn loc(&self, side: Side) -> &Location {
        match side {
            Side::A => self.a,
            Side::B => self.b,
        }
    }

    /// Runs the plan. Per-action failures are collected in the report; only index
    /// failures abort.
    pub fn run(&mut self, plan: &Plan) -> Result<ExecReport> {
        let mut report = ExecReport::default();
        let mut verified: [HashSet<String>; 2] = [HashSet::new(), HashSet::new()];
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
        // Directory renames carry out groups of the plan's per-file actions; those are
        // held back until their group has run, then done or refused with it, or run one
        // by one after all.
        let groups = dir_rename::find(&plan.actions);
        let mut held = vec![Hold::Open; plan.actions.len()];
        for g in &groups {
            for &i in &g.covers {
                held[i] = Hold::Held;
            }
        }

        for a in phase(plan, &held, |a| matches!(a, Action::Record { .. })) {
            if let Action::Record { side, entry } = a {
                pending[*side as usize].entries.push(entry.clone());
            }
        }
        self.flush(&mut pending, false)?;

        for a in phase(plan, &held, |a| matches!(a, Action::MoveAside { .. })) {
            self.attempt(a, &mut report, &mut pending, &mut verified);
        }
        self.flush(&mut pending, true)?;
        for a in phase(
            plan,
            &held,
            |a| matches!(a, Action::Delete { expected, .. } if expected.kind != EntryKind::Dir),
        ) {
            self.attempt(a, &mut report, &mut pending, &mut verified);
        }
        self.flush(&mut pending, true)?;
        // Directories shallowest first. A directory rename stands where its target's
        // mkdir would: after the target's parents, before anything added inside it.
        let mut mkdirs: Vec<(usize, &Action)> = (plan.actions.iter().enumerate())
            .filter(|(_, a)| matches!(a, Action::Mkdir { .. }))
            .collect();
        mkdirs.sort_by_key(|(_, a)| a.path().depth());
        let mut steps: Vec<Step> = groups.iter().map(Step::RenameDir).collect();
        steps.extend(mkdirs.iter().map(|&(i, a)| Step::Mkdir(i, a)));
        steps.sort_by_key(|s| match s {
            Step::RenameDir(g) => (g.to.depth(), 0),
            Step::Mkdir(_, a) => (a.path().depth(), 1),
        });
        for step in steps {
            match step {
                Step::RenameDir(g) => {
                    self.rename_dir(g, plan, &mut held, &mut report, &mut pending, &mut verified)?
                }
                Step::Mkdir(i, a) if held[i] == Hold::Open => {
                    self.attempt(a, &mut report, &mut pending, &mut verified)
                }
                Step::Mkdir(..) => {}
            }
        }
        if self.fault == FaultPoint::StopAfterDirRenames && report.stats.dirs_renamed > 0 {
            return Err(Error::Other("injected stop after directory renames".into()));
        }
        self.flush(&mut pending, true)?;
        for a in phase(plan, &held, |a| matches!(a, Action::Rename { .. })) {
            self.attempt(a, &mut report, &mut pending, &mut verified);
        }
        self.flush(&mut pending, true)?;
        let mut rmdirs: Vec<&Action> = phase(
            plan,
            &held,
            |a| matches!(a, Action::Delete { expected, .. } if expected.kind == EntryKind::Dir),
        );
        rmdirs.sort_by_key(|a| std::cmp::Reverse(a.path().depth()));
        for a in rmdirs {
            self.attempt(a, &mut report, &mut pending, &mut verified);
        }
        self.flush(&mut pending, true)?;
        self.persist_progress(&report)?;

        let copies = phase(plan, &held, |a| matches!(a, Action::Copy { .. }));
        self.copy_all(&copies, &mut report, &mut pending, &mut verified)?;

        // Archive removals last, once every copy is installed and durable.
        let archives = phase(plan, &held, |a| matches!(a, Action::Archive { .. }));
        if !archives.is_empty() {
            if self.fault == FaultPoint::StopBeforeArchiveRemoval {
                return Err(Error::Other("injected stop before archive removal".into()));
            }
            sync_filesystem(&self.b.root)?;
        }
        for a in archives {
            let Action::Archive {
                path,
                expected,
                archived_as,
            } = a
            else {
                continue;
            };
            match crate::archive::remove_archived(
                self.index,
                self.a,
                self.b,
                path,
                expected,
                archived_as,
                self.fault,
            ) {
                Ok(freed) => {
                    report.stats.files_archived += 1;
                    report.stats.bytes_freed += freed;
                }
                Err(e) => report.errors.push(format!("{}: {e}", describe(a))),
            }
        }

        // Directory mtimes last, deepest first, once their children are written.
        for (i, a) in mkdirs.iter().rev() {
            if held[*i] == Hold::Refused {
                continue;
            }
            if let Action::Mkdir {
                side, path, source, ..
            } = a
            {
                let abs = path.under(&self.loc(*side).root);
                let _ = filetime::set_file_mtime(&abs, mtime_of(&source.stat));
            }
        }
        report.stats.errors = report.errors.len() as u64;
        Ok(report)
    }

    /// Persists the generation's counters so far (the index already holds every
    /// completed action, so a run that dies here resumes from this point).
    fn persist_progress(&self, report: &ExecReport) -> Result<()> {
        if let Some(g) = self.generation {
            self.index.record_generation_progress(g, &report.stats)?;
        }
        Ok(())
    }

    /// Makes pending changes durable, then records them in the index.
    fn flush(&mut self, pending: &mut [Pending; 2], sync: bool) -> Result<()> {
        for p in pending.iter_mut() {
            if p.entries.is_empty() {
                continue;
            }
            let loc = match p.side {
                Side::A => self.a,
                Side::B => self.b,
            };
            if sync {
                sync_filesystem(&loc.root)?;
            }
            let first = self
                .index
                .reserve_sequence(loc.id(), p.entries.len() as u64)?;
            for (seq, e) in (first..).zip(p.entries.iter_mut()) {
                e.sequence = seq;
            }
            self.index.put_entries(loc.id(), &p.entries)?;
            p.entries.clear();
        }
        Ok(())
    }

    fn attempt(
        &mut self,
        action: &Action,
        report: &mut ExecReport,
        pending: &mut [Pending; 2],
        verified: &mut [HashSet<String>; 2],
    ) {
        let side = action.side();
        match self.apply(action, &mut verified[side as usize], &mut report.stats) {
            Ok(entries) => pending[side as usize].entries.extend(entries),
            Err(e) => report.errors.push(format!("{}: {e}", describe(action))),
        }
    }

    /// Applies one directory rename. If the side is no longer as planned, the group's
    /// actions run one by one instead (the removals of symlinks, whose phase has passed,
    /// right away); if the rename is refused, they are all left alone this run. Only
    /// index failures are returned.
    fn rename_dir(
        &mut self,
        g: &DirRename,
        plan: &Plan,
        held: &mut [Hold],
        report: &mut ExecReport,
        pending: &mut [Pending; 2],
        verified: &mut [HashSet<String>; 2],
    ) -> Result<()> {
        let describe = || {
            format!(
                "rename directory {}:{} -> {}",
                g.side.letter(),
                g.from,
                g.to
            )
        };
        let loc = self.loc(g.side);
        let mark = |held: &mut [Hold], h| g.covers.iter().for_each(|&i| held[i] = h);
        match dir_rename::apply(self.index, loc, g, &mut verified[g.side as usize]) {
            Ok(Applied::Renamed { entries, errors }) => {
                mark(held, Hold::Done);
                report.stats.files_renamed += g.entries_moved();
                report.stats.dirs_renamed += 1;
                pending[g.side as usize].entries.extend(entries);
                let errors = errors.into_iter().map(|e| format!("{}: {e}", describe()));
                report.errors.extend(errors);
            }
            Ok(Applied::FallBack(why)) => {
                tracing::debug!(rename = describe(), why, "renaming entry by entry");
                mark(held, Hold::Open);
                for &i in &g.covers {
                    let a = &plan.actions[i];
                    if matches!(a, Action::Delete { expected, .. } if expected.kind != EntryKind::Dir)
                    {
                        self.attempt(a, report, pending, verified);
                    }
                }
            }
            Err(e @ Error::Db(_)) => return Err(e),
            Err(e) => {
                mark(held, Hold::Refused);
                report.errors.push(format!("{}: {e}", describe()));
            }
        }
        Ok(())
    }

    /// Carries out one non-copy action; returns the index entries it changed.
    fn apply(
        &self,
        action: &Action,
        verified: &mut HashSet<String>,
        stats: &mut GenerationStats,
    ) -> Result<Vec<Entry>> {
        let loc = self.loc(action.side());
        match action {
            Action::MoveAside {
                path, to, expected, ..
            } => {
                check_parents(&loc.root, path, verified)?;
                check_parents(&loc.root, to, verified)?;
                ensure_disk_matches(&path.under(&loc.root), Some(expected))?;
                ensure_disk_matches(&to.under(&loc.root), None)?;
                std::fs::rename(path.under(&loc.root), to.under(&loc.root))
                    .ctx("move conflict loser aside", to.under(&loc.root))?;
                let stat = lstat_info(&to.under(&loc.root))?;
                let moved = Entry {
                    path: to.clone(),
                    stat,
                    racy: false,
                    ..expected.clone()
                };
                let gone = Entry {
                    deleted: true,
                    ..expected.clone()
                };
                Ok(vec![moved, gone])
            }
            Action::Delete {
                path,
                expected,
                version,
                ..
            } => {
                check_parents(&loc.root, path, verified)?;
                let abs = path.under(&loc.root);
                ensure_disk_matches(&abs, Some(expected))?;
                if expected.kind == EntryKind::Dir {
                    remove_dir_if_empty(self.index, loc, path)?;
                } else {
                    version_store::preserve(self.index, loc, path, expected, "deleted")?;
                    std::fs::remove_file(&abs).ctx("delete", &abs)?;
                    stats.files_deleted += 1;
                }
                Ok(vec![tombstone(expected, version)])
            }
            Action::Mkdir {
                path,
                source,
                expected,
                version,
                ..
            } => {
                check_parents(&loc.root, path, verified)?;
                let abs = path.under(&loc.root);
                ensure_disk_matches(&abs, expected.as_ref())?;
                if expected.is_none() {
                    std::fs::create_dir(&abs).ctx("create directory", &abs)?;
                    stats.dirs_created += 1;
                }
                std::fs::set_permissions(&abs, std::fs::Permissions::from_mode(source.stat.mode))
                    .ctx("set permissions", &abs)?;
                verified.insert(path.as_str().to_string());
                let stat = lstat_info(&abs)?;
                Ok(vec![Entry {
                    path: path.clone(),
                    kind: EntryKind::Dir,
                    stat,
                    hash: None,
                    chunks: Vec::new(),
                    link_target: None,
                    version: version.clone(),
                    deleted: false,
                    sequence: 0,
                    racy: false,
                }])
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
                check_parents(&loc.root, from, verified)?;
                check_parents(&loc.root, to, verified)?;
                let (src, dst) = (from.under(&loc.root), to.under(&loc.root));
                ensure_disk_matches(&src, Some(expected))?;
                ensure_disk_matches(&dst, None)?;
                std::fs::rename(&src, &dst).ctx("rename", &dst)?;
                filetime::set_symlink_file_times(
                    &dst,
                    mtime_of(&source.stat),
                    mtime_of(&source.stat),
                )
                .ctx("set mtime", &dst)?;
                stats.files_renamed += 1;
                let stat = lstat_info(&dst)?;
                Ok(vec![
                    landed(to, source, stat, version),
                    tombstone(expected, from_version),
                ])
            }
            Action::Copy { .. } => Err(Error::Other("copies run in batches".into())),
            Action::Archive { .. } => Err(Error::Other("archive removals run last".into())),
            Action::Record { entry, .. } => Ok(vec![entry.clone()]),
        }
    }

    /// Copies in batches: stage temp files, one durability point, renames, another.
    fn copy_all(
        &mut self,
        copies: &[&Action],
        report: &mut ExecReport,
        pending: &mut [Pending; 2],
        verified: &mut [HashSet<String>; 2],
    ) -> Result<()> {
        let total: u64 = copies.iter().map(|a| copy_size(a)).sum();
        self.progress.phase("copy", Some(total));
        self.progress.items_total(copies.len() as u64);
        let reuse_local = [
            self.index.has_live_file(self.a.id())?,
            self.index.has_live_file(self.b.id())?,
        ];
        let mut i = 0;
        while i < copies.len() {
            let mut bytes = 0;
            let mut j = i;
            while j < copies.len()
                && j - i < COPY_BATCH_FILES
                && (bytes < COPY_BATCH_BYTES || j == i)
            {
                bytes += copy_size(copies[j]);
                j += 1;
            }
            // Checks and index look-ups stay on this thread; the byte work runs on all cores.
            let mut jobs = Vec::new();
            for a in &copies[i..j] {
                let Action::Copy {
                    to,
                    path,
                    source,
                    expected,
                    ..
                } = a
                else {
                    continue;
                };
                let dst_loc = self.loc(*to);
                if self.unindexed_on_target(*to, path, expected.as_ref())? {
                    report.notes.push(format!(
                        "{}: left alone, it exists there but is not indexed (ignored on that side?)",
                        describe(a)
                    ));
                    continue;
                }
                let res = check_parents(&dst_loc.root, path, &mut verified[*to as usize])
                    .and_then(|_| {
                        check_parents(
                            &self.loc(to.other()).root,
                            &source.path,
                            &mut verified[to.other() as usize],
                        )
                    })
                    .and_then(|_| self.local_source(*to, source, reuse_local[*to as usize]));
                match res {
                    Ok((src, src_stat)) => {
                        jobs.push((*a, src, src_stat, path.under(&dst_loc.root), source))
                    }
                    Err(e) => report.errors.push(format!("{}: {e}", describe(a))),
                }
            }
            let limiter = self.limiter;
            let t_stage = std::time::Instant::now();
            let results = parallel_map(
                &jobs,
                self.workers,
                |(_, src, src_stat, dst, source), buf| {
                    let r = stage(src, src_stat, dst, source, self.fault, limiter, buf);
                    self.progress.bytes(if source.kind == EntryKind::File {
                        source.stat.size
                    } else {
                        0
                    });
                    self.progress.item();
                    r
                },
            );
            let mut staged = Vec::new();
            for ((a, ..), r) in jobs.iter().zip(results) {
                match r {
                    Some(Ok(tmp)) => staged.push((*a, tmp)),
                    Some(Err(e)) => report.errors.push(format!("{}: {e}", describe(a))),
                    None => report
                        .errors
                        .push(format!("{}: the copy worker stopped", describe(a))),
                }
            }
            if self.fault == FaultPoint::StopAfterStaging {
                return Err(Error::Other("injected stop after staging".into()));
            }
            // One durability point per batch serves twice: it makes this batch's temp
            // files durable before they are renamed, and the previous batch's renames
            // durable before the index records them.
            for side in [Side::A, Side::B] {
                let staged_here = staged.iter().any(|(a, _)| a.side() == side);
                if staged_here || !pending[side as usize].entries.is_empty() {
                    let t = std::time::Instant::now();
                    sync_filesystem(&self.loc(side).root)?;
                    tracing::debug!(ms = t.elapsed().as_millis() as u64, "batch durable");
                }
            }
            self.flush(pending, false)?;
            self.persist_progress(report)?;
            tracing::debug!(
                ms = t_stage.elapsed().as_millis() as u64,
                files = staged.len(),
                "staged batch"
            );
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
                let loc = self.loc(*to);
                match install(self.index, loc, path, &tmp, source, expected.as_ref()) {
                    Ok(stat) => {
                        report.stats.files_copied += 1;
                        if source.kind == EntryKind::File {
                            report.stats.bytes_transferred += source.stat.size;
                        }
                        pending[*to as usize]
                            .entries
                            .push(landed(path, source, stat, version));
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        report.errors.push(format!("{}: {e}", describe(a)));
                    }
                }
            }
            tracing::debug!(
                ms = t_install.elapsed().as_millis() as u64,
                "installed batch"
            );
            i = j;
        }
        // The last batch's renames: durable, then recorded.
        self.flush(pending, true)?;
        self.persist_progress(report)?;
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
        let loc = self.loc(to);
        if std::fs::symlink_metadata(path.under(&loc.root)).is_err() {
            return Ok(false);
        }
        Ok(self.index.entry(loc.id(), path)?.is_none())
    }

    /// Where to read a file's bytes, and the stat that file must still have: a copy
    /// already in the destination location when the index knows one whose disk state
    /// still matches (its own stat: same content, but its own mtime), else the other side.
    fn local_source(&self, to: Side, source: &Entry, enabled: bool) -> Result<(PathBuf, StatInfo)> {
        let remote = (source.path.under(&self.loc(to.other()).root), source.stat);
        if !enabled || source.kind != EntryKind::File || source.stat.size == 0 {
            return Ok(remote);
        }
        let Some(hash) = source.hash else {
            return Ok(remote);
        };
        let dst = self.loc(to);
        if let Some(p) = self.index.find_file_by_hash(dst.id(), &hash)? {
            if let Some(e) = self.index.entry(dst.id(), &p)? {
                let abs = p.under(&dst.root);
                if ensure_disk_matches(&abs, Some(&e)).is_ok() {
                    return Ok((abs, e.stat));
                }
            }
        }
        Ok(remote)
    }
}

fn copy_size(a: &Action) -> u64 {
    match a {
        Action::Copy { source, .. } if source.kind == EntryKind::File => source.stat.size,
        _ => 0,
    }
}

/// Writes `source` (read from `src`, which must still have size and mtime of
/// `src_stat`) to a verified temp file beside `dst`.
fn stage(
    src: &std::path::Path,
    src_stat: &StatInfo,
    dst: &std::path::Path,
    source: &Entry,
    fault: FaultPoint,
    limiter: Option<&RateLimiter>,
    buf: &mut Vec<u8>,
) -> Result<PathBuf> {
    let tmp = temp_sibling(dst);
    if source.kind == EntryKind::Symlink {
        let target = source
            .link_target
            .as_deref()
            .ok_or_else(|| Error::Corrupt("symlink entry without target".into()))?;
        let target = crate::rel_path::decode_os(target); // stored as its key
        std::os::unix::fs::symlink(target, &tmp).ctx("create symlink", &tmp)?;
        return Ok(tmp);
    }
    let expected_hash = source
        .hash
        .ok_or_else(|| Error::Corrupt("file entry without hash".into()))?;
    let input = std::fs::File::open(src).ctx("open source", src)?;
    let meta = input.metadata().ctx("stat source", src)?;
    let now = StatInfo::from_metadata(&meta);
    if now.size != src_stat.size || now.mtime_ns != src_stat.mtime_ns {
        return Err(Error::Refused(format!(
            "{} changed since the scan; will sync after the next scan",
            crate::rel_path::escape_os(src)
        )));
    }
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .ctx("create temp file", &tmp)?;
    let result = (|| {
        match limiter {
            Some(l) => throttled_copy(&input, &out, src, l, buf)?,
            None => clone_or_copy(&input, &out, src)?,
        };
        drop(out);
        if fault == FaultPoint::CorruptTempAfterCopy {
            std::fs::write(&tmp, b"corrupted by fault injection").ctx("inject fault", &tmp)?;
        }
        let got = blake3_file(&tmp, buf)?;
        if got != expected_hash {
            return Err(Error::Refused(format!(
                "copy of {} does not match the indexed hash (changed while copying?); not installed",
                crate::rel_path::escape_os(src)
            )));
        }
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(source.stat.mode))
            .ctx("set permissions", &tmp)?;
        filetime::set_file_mtime(&tmp, mtime_of(&source.stat)).ctx("set mtime", &tmp)?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// Atomically replaces `path` with the staged temp file, after re-checking the disk and
/// keeping whatever is replaced. Returns the installed file's stat.
fn install(
    index: &Index,
    loc: &Location,
    path: &RelPath,
    tmp: &std::path::Path,
    source: &Entry,
    expected: Option<&Entry>,
) -> Result<StatInfo> {
    let abs = path.under(&loc.root);
    ensure_disk_matches(&abs, expected)?;
    if let Some(old) = expected {
        version_store::preserve(index, loc, path, old, "replaced")?;
    }
    std::fs::rename(tmp, &abs).ctx("install", &abs)?;
    if source.kind == EntryKind::Symlink {
        let t = mtime_of(&source.stat);
        let _ = filetime::set_symlink_file_times(&abs, t, t);
    }
    lstat_info(&abs)
}

/// Writes `source` (its bytes read from `src`) to `path` of `loc` through the same safe
/// path as a sync: verified temp file, durable, disk re-checked against `expected`, old
/// content versioned, atomic rename, durable. Used by restore and resolve.
pub(crate) fn replace_file(
    index: &Index,
    loc: &Location,
    path: &RelPath,
    src: &std::path::Path,
    source: &Entry,
    expected: Option<&Entry>,
) -> Result<StatInfo> {
    check_parents(&loc.root, path, &mut HashSet::new())?;
    let tmp = stage(
        src,
        &source.stat,
        &path.under(&loc.root),
        source,
        FaultPoint::None,
        None,
        &mut Vec::new(),
    )?;
    let installed =
        sync_filesystem(&loc.root).and_then(|_| install(index, loc, path, &tmp, source, expected));
    match installed {
        Ok(stat) => {
            sync_filesystem(&loc.root)?;
            Ok(stat)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn remove_dir_if_empty(index: &Index, loc: &Location, path: &RelPath) -> Result<()> {
    let abs = path.under(&loc.root);
    let mut kept = Vec::new();
    for item in std::fs::read_dir(&abs).ctx("list", &abs)? {
        let item = item.ctx("list", &abs)?;
        let name = item.file_name().to_string_lossy().into_owned();
        if IndexRules::is_junk(&name) {
            let child = path.join(&name)?;
            let meta = std::fs::symlink_metadata(item.path()).ctx("stat", item.path())?;
            if meta.is_file() {
                let e = Entry::on_disk(child.clone(), EntryKind::File, &meta);
                version_store::preserve(index, loc, &child, &e, "deleted with its folder")?;
                std::fs::remove_file(item.path()).ctx("delete", item.path())?;
                continue;
            }
        }
        kept.push(name);
    }
    if !kept.is_empty() {
        return Err(Error::Refused(format!(
            "folder still holds {} item(s) that are not synced (ignored or unreadable), e.g. {:?}; kept",
            kept.len(),
            kept[0]
        )));
    }
    std::fs::remove_dir(&abs).ctx("remove directory", &abs)
}

/// Safety rule 2: the disk must still be what the plan was made from.
pub(crate) fn ensure_disk_matches(abs: &std::path::Path, expected: Option<&Entry>) -> Result<()> {
    let ok = match (std::fs::symlink_metadata(abs), expected) {
        (Err(e), None) if crate::fs_ops::is_absent(&e) => true,
        (Err(e), Some(_)) if crate::fs_ops::is_absent(&e) => false,
        (Err(e), _) => return Err(e).ctx("check", abs),
        (Ok(_), None) => false,
        (Ok(m), Some(e)) => {
            kind_of(&m) == Some(e.kind)
                && (e.kind == EntryKind::Dir || StatInfo::from_metadata(&m) == e.stat)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Refused(format!(
            "{} changed since the scan; left alone, will sync after the next scan",
            crate::rel_path::escape_os(abs)
        )))
    }
}

pub(crate) fn lstat_info(abs: &std::path::Path) -> Result<StatInfo> {
    Ok(StatInfo::from_metadata(
        &std::fs::symlink_metadata(abs).ctx("stat", abs)?,
    ))
}

pub(crate) fn landed(
    path: &RelPath,
    source: &Entry,
    stat: StatInfo,
    version: &VersionVector,
) -> Entry {
    Entry {
        path: path.clone(),
        kind: source.kind,
        stat,
        hash: source.hash,
        chunks: source.chunks.clone(),
        link_target: source.link_target.clone(),
        version: version.clone(),
        deleted: false,
        sequence: 0,
        racy: false,
    }
}

pub(crate) fn tombstone(expected: &Entry, version: &VersionVector) -> Entry {
    Entry {
        deleted: true,
        version: version.clone(),
        racy: false,
        ..expected.clone()
    }
}

pub(crate) fn mtime_of(stat: &StatInfo) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(
        stat.mtime_ns.div_euclid(1_000_000_000),
        stat.mtime_ns.rem_euclid(1_000_000_000) as u32,
    )
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
