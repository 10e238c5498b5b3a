//! A large run planned and carried out a batch of paths at a time, so its memory does
//! not grow with the tree (issue 17; which runs qualify: `plan/batches.rs`).
//!
//! First a survey walks every page and reconciles it without keeping anything but
//! counts: it decides whether the run can go in batches at all (a run that cannot is
//! planned whole, before anything is touched, exactly as a small run), and gives the
//! progress its totals. Then each page is reconciled again and run at once. Directory
//! modes and times are set at the very end, as in a whole run, once everything below
//! them is written.

use crate::error::Result;
use crate::execute::{copy_size, ExecReport, Executor, RunState};
use crate::index::{unix_now, Index};
use crate::model::entry::Entry;
use crate::model::RelPath;
use crate::plan::batches::{BatchCheck, PathBatches};
use crate::plan::reconcile::{reconcile, ReconcileInput};
use crate::plan::{ConflictPolicy, ConflictRecord, Plan, PlanCounts, Side, SyncMode};
use crate::progress::Progress;
use crate::replica::view::{IndexedReplica, ReplicaView};
use std::collections::HashSet;

/// Items of what a batched run did that its outcome keeps in memory; the generation's
/// record in the index keeps all of them.
const DONE_KEPT: usize = 10_000;

/// What a run in batches is about to do.
#[derive(Debug, Default)]
pub(crate) struct Survey {
    /// Its actions, by kind.
    pub counts: PlanCounts,
    /// Bytes its copies write.
    pub copy_bytes: u64,
    /// Whether it meets any conflict.
    pub conflicts: bool,
    /// Files it deletes on side A and on side B (for the mass-deletion stop).
    pub file_deletions: [usize; 2],
}

/// The run's shape: which two locations, how they are kept in step, how many paths a
/// batch holds, and since when (the conduit's convergence point) paths count as changed.
#[derive(Clone, Copy)]
pub(crate) struct Batching {
    pub locations: [i64; 2],
    pub mode: SyncMode,
    pub policy: ConflictPolicy,
    pub size: usize,
    pub point: Option<(u64, u64)>,
}

impl Batching {
    /// Whether the run is large enough to go in batches: more changed rows than a batch.
    pub(crate) fn worth_it(&self, index: &Index) -> Result<bool> {
        if self.mode == SyncMode::Archive {
            return Ok(false);
        }
        let [va, vb] = self.views(index);
        let rows = va.count(self.point.map(|p| p.0))? + vb.count(self.point.map(|p| p.1))?;
        Ok(rows > self.size as u64)
    }

    fn views<'i>(&self, index: &'i Index) -> [IndexedReplica<'i>; 2] {
        self.locations.map(|l| IndexedReplica::new(index, l))
    }

    /// Whether the whole plan could pair the deletion of `gone` on `side` with a new
    /// file elsewhere into a rename: the other side (whose deletion it follows) holds
    /// any entry of that content that is not a tombstone (a dehydrated one too). Asked
    /// of the index, not of a set of every entry.
    fn renamable(&self, index: &Index, gone: &Entry, side: Side) -> Result<bool> {
        match gone.state.hash {
            Some(hash) => index.holds_hash(self.locations[side.other() as usize], &hash),
            None => Ok(true),
        }
    }

    /// Reconciles one page, as the whole run's reconcile would.
    fn page(&self, index: &Index, pages: &mut PathBatches, now: i64) -> Result<Option<Page>> {
        let [va, vb] = self.views(index);
        let Some((ea, eb)) = pages.next_batch([&va, &vb])? else {
            return Ok(None);
        };
        let views = [&va, &vb];
        let plan = reconcile(ReconcileInput {
            a: &ea,
            b: &eb,
            mode: self.mode,
            policy: self.policy,
            now,
            occupied: &|p| views.iter().any(|v| !matches!(v.entry(p), Ok(None))),
        })?;
        Ok(Some(Page { ea, eb, plan }))
    }

    /// Plans the run page by page, keeping only counts. `None` when some page cannot
    /// run on its own: the run is then planned whole.
    pub(crate) fn survey(&self, index: &Index) -> Result<Option<Survey>> {
        let mut pages = PathBatches::new(self.size, self.point);
        let mut check = BatchCheck::default();
        let mut survey = Survey::default();
        let now = unix_now();
        let renamable = |e: &Entry, side: Side| self.renamable(index, e, side);
        while let Some(page) = self.page(index, &mut pages, now)? {
            if !check.admits(&page.ea, &page.eb, &page.plan, &renamable)? {
                return Ok(None);
            }
            let deleting = page.plan.file_deletions_per_side();
            (survey.file_deletions.iter_mut().zip(deleting)).for_each(|(n, d)| *n += d);
            survey.counts.add(&page.plan);
            survey.copy_bytes += page.plan.actions.iter().map(copy_size).sum::<u64>();
            survey.conflicts |= !page.plan.conflicts.is_empty();
        }
        Ok(Some(survey))
    }

    /// Runs the run page by page. When a page is no longer admitted (another device's
    /// entries arrived since the survey), or would take the deletions past what the
    /// survey counted (and the mass-deletion stop let through), what is left is planned
    /// whole by `plan_rest` (which applies the stop again) and run after the batches.
    pub(crate) fn run(
        &self,
        exec: &mut Executor<'_>,
        survey: &Survey,
        plan_rest: &dyn Fn(&Index) -> Result<Plan>,
    ) -> Result<BatchedRun> {
        let mut report = ExecReport::keeping(DONE_KEPT);
        let mut state = RunState::default();
        let mut done = BatchedRun::default();
        let mut pages = PathBatches::new(self.size, self.point);
        let mut check = BatchCheck::default();
        let now = unix_now();
        let mut whole_rest = false;
        let mut deleted = [0usize; 2];
        while let Some(Page { ea, eb, plan }) = self.page(exec.index, &mut pages, now)? {
            let index: &Index = exec.index;
            let renamable = |e: &Entry, side: Side| self.renamable(index, e, side);
            if !check.admits(&ea, &eb, &plan, &renamable)? {
                whole_rest = true;
                break;
            }
            let deleting = plan.file_deletions_per_side();
            (deleted.iter_mut().zip(deleting)).for_each(|(n, d)| *n += d);
            if (deleted.iter().zip(survey.file_deletions)).any(|(d, surveyed)| *d > surveyed) {
                whole_rest = true;
                break;
            }
            drop((ea, eb));
            exec.run_batch(&plan, &mut report, &mut state)?;
            done.counts.add(&plan);
            done.conflicts.extend(plan.conflicts);
            if report.interrupted {
                break;
            }
        }
        let mut report = exec.finish(report, state)?;
        if whole_rest && !report.interrupted {
            tracing::info!("entries changed during a run in batches; planning the rest whole");
            let plan = plan_rest(exec.index)?;
            let rest = exec.run(&plan)?;
            report.absorb(rest);
            done.counts.add(&plan);
            // A conflict left open in a batch is met again by the whole plan.
            let again: HashSet<&RelPath> = plan.conflicts.iter().map(|c| &c.path).collect();
            done.conflicts.retain(|c| !again.contains(&c.path));
            done.conflicts.extend(plan.conflicts);
        }
        done.report = report;
        Ok(done)
    }
}

/// One page of a run: both sides' entries and their plan.
struct Page {
    ea: Vec<crate::model::entry::Entry>,
    eb: Vec<crate::model::entry::Entry>,
    plan: Plan,
}

/// What a run in batches did.
#[derive(Debug, Default)]
pub(crate) struct BatchedRun {
    pub report: ExecReport,
    /// Its actions, by kind.
    pub counts: PlanCounts,
    /// The conflicts it met, settled or left open.
    pub conflicts: Vec<ConflictRecord>,
}

/// Passes progress on but the phase announcements: a run in batches makes one.
pub(crate) struct OnePhase<'a>(pub &'a dyn Progress);

impl Progress for OnePhase<'_> {
    fn more_work(&self, files: u64, bytes: u64) {
        self.0.more_work(files, bytes)
    }
    fn bytes(&self, n: u64) {
        self.0.bytes(n)
    }
    fn item(&self) {
        self.0.item()
    }
    fn file_progress(&self, path: &RelPath, done: u64, size: u64) {
        self.0.file_progress(path, done, size)
    }
    fn file_finished(&self, path: &RelPath) {
        self.0.file_finished(path)
    }
    fn cancelled(&self) -> bool {
        self.0.cancelled()
    }
}
