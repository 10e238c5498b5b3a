//! What a replica does with a plan: it applies its own side, and only that side, to
//! its own disk. Content for its copies is asked for by hash from a [`ChunkSource`]
//! (the other replica, however far it is), never read by the other side's path.
//!
//! [`LocalFolder`] is the writer of a folder on this device: the executor with only
//! that side here (its steps in the plan's order, every safety rule of
//! `replica/disk.rs`). A device applying its side of a shared folder's plan goes
//! through it, whether the plan is whole or made a batch of paths at a time. A local `ferry sync A B`, with both folders here, runs one executor
//! over both sides instead (one copy pipeline and shared durability points for the
//! two; see docs/ARCHITECTURE.md, *Seams*).

use crate::batched::{BatchedRun, Batching, Survey};
use crate::cancel::Cancel;
use crate::error::Result;
#[cfg(feature = "fault-injection")]
use crate::execute::FaultPoint;
use crate::execute::{ExecReport, Executor};
use crate::index::Index;
use crate::plan::{Plan, Side};
use crate::progress::Progress;
use crate::replica::chunk_source::ChunkSource;
use crate::replica::location::Location;
use crate::throttle::RateLimiter;

/// A replica that applies its side of a plan to its own disk.
pub trait ReplicaWriter {
    /// The side of the plan this replica is.
    fn side(&self) -> Side;

    /// Applies this replica's steps of `plan`, in the plan's order, taking the content
    /// of its copies by hash from `content` (the other replica; `None` when it cannot
    /// be reached — copies then fail as unavailable and the next run retries) and
    /// reporting to `progress`. What could not be done is a typed problem per path in
    /// the report (nothing lost); only a failure of the index is an error. The index
    /// advances for every step that completed.
    fn apply(
        &mut self,
        plan: &Plan,
        content: Option<&(dyn ChunkSource + Sync)>,
        progress: &dyn Progress,
    ) -> Result<ExecReport>;
}

/// A folder on this device as a replica writer.
pub struct LocalFolder<'a> {
    /// The index its entries are recorded in.
    pub index: &'a mut Index,
    /// The folder.
    pub location: &'a Location,
    /// Which side of the conduit it is.
    pub side: Side,
    /// The other side's location ID (its entries are what that replica reported, e.g.
    /// an archive's confirmations).
    pub other: i64,
    /// Copies staged at once; 0 = the executor's default.
    pub workers: usize,
    /// Bandwidth limit shared by the run's copies.
    pub limiter: Option<&'a RateLimiter>,
    /// The generation whose counters and actions are persisted as the run goes.
    pub generation: Option<i64>,
    /// Set from outside to stop at the next safe point.
    pub cancel: Option<&'a Cancel>,
    /// Test hook: a failure injected at a named point (the `fault-injection` feature).
    #[cfg(feature = "fault-injection")]
    pub fault: FaultPoint,
}

impl<'a> LocalFolder<'a> {
    /// The executor with only this folder's side here.
    fn executor<'s>(
        &'s mut self,
        content: Option<&'s (dyn ChunkSource + Sync)>,
        progress: &'s dyn Progress,
    ) -> Executor<'s> {
        let here = Some(self.location);
        let (a, b) = match self.side {
            Side::A => (here, None),
            Side::B => (None, here),
        };
        Executor {
            index: &mut *self.index,
            a,
            b,
            peer_b: (self.side == Side::A).then_some(self.other),
            pull: content,
            progress,
            #[cfg(feature = "fault-injection")]
            fault: self.fault,
            workers: self.workers,
            limiter: self.limiter,
            generation: self.generation,
            cancel: self.cancel,
        }
    }

    /// Applies this folder's side of a run planned a batch of paths at a time (a large
    /// run; see `batched.rs`), as [`ReplicaWriter::apply`] does for a whole plan.
    pub(crate) fn apply_in_batches(
        &mut self,
        batching: &Batching,
        survey: &Survey,
        plan_rest: &dyn Fn(&Index) -> Result<Plan>,
        content: Option<&(dyn ChunkSource + Sync)>,
        progress: &dyn Progress,
    ) -> Result<BatchedRun> {
        batching.run(&mut self.executor(content, progress), survey, plan_rest)
    }
}

impl ReplicaWriter for LocalFolder<'_> {
    fn side(&self) -> Side {
        self.side
    }

    fn apply(
        &mut self,
        plan: &Plan,
        content: Option<&(dyn ChunkSource + Sync)>,
        progress: &dyn Progress,
    ) -> Result<ExecReport> {
        self.executor(content, progress).run(plan)
    }
}
