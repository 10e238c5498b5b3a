//! The scheduler: one task per saved conduit deciding when it runs.
//!
//! A conduit runs when it has a *pending* reason and is not paused: the daemon's start
//! (changes made while it was down), a resumed interrupted run, a watched change, its
//! timer (`every:`), the backstop rescan of a watched conduit, the fallback rescan of one
//! that could not be watched, or an API request. Reasons coalesce: events arriving
//! during a run queue exactly one more run.
//!
//! A run queued only by watched changes is *targeted*: it rescans just the paths the
//! events touched (merged over all batches since the last run). Every other reason, a
//! lost-events signal, and a targeted run that failed queue a full rescan, which covers
//! any targeted paths pending with it. A location held by another ferry process is
//! retried later. A run refused because a folder is not there as the index knows it
//! (an unplugged disk: root or marker missing) is logged as a warning once, not at
//! every retry, and again only when the reason changes; the run that goes through
//! afterwards says so. Until then every run is a full rescan.
//!
//! Events that only name paths whose disk state the index already holds (the daemon's
//! own writes, coming back once its run is over) queue nothing (`known.rs`).
//!
//! The supervisor re-reads saved settings (and the conduits' roots, which follow a
//! moved folder) when asked through the API (`POST /api/reload`, which `ferry conduit`
//! and `ferry sync` send to a running daemon) and otherwise every
//! `FERRY_RELOAD_INTERVAL` (30 s) as a backstop, starting, updating and stopping the
//! per-conduit tasks. Pausing through the API takes effect at once, stopping a running
//! job at its next safe point.

use crate::events::DaemonEvent;
use crate::jobs::{run_once, JobResult};
use crate::shared::Shared;
use crate::touched::{Touched, MAX_TOUCHED};
use crate::watcher::{ConduitWatcher, WatchError, WatchSignal};
use ferry_core::conduit::Schedule;
use ferry_core::index::ConduitRow;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Messages to a conduit's task.
#[derive(Debug)]
pub enum Wake {
    Watch(WatchSignal),
    Settings(ConduitRow),
    /// The conduit's folders are at new roots now (a moved folder was followed).
    Roots(Vec<PathBuf>),
    RunNow,
    Stop,
}

/// A request to re-read the saved conduits now; answered once they were.
pub type ReloadRequest = oneshot::Sender<()>;

/// Keeps one task per saved conduit in step with the index: re-reads it when asked
/// (`reload`) or every reload interval.
pub async fn supervise(shared: Arc<Shared>, mut reload: UnboundedReceiver<ReloadRequest>) {
    let interrupted: HashSet<i64> = shared
        .with_index(|i| i.conduits_with_interrupted_runs())
        .map(|v| v.into_iter().collect())
        .unwrap_or_default();
    let mut tasks: HashMap<i64, (ConduitRow, Vec<PathBuf>)> = HashMap::new();
    let mut first = true;
    let mut waiting: Vec<ReloadRequest> = Vec::new();
    loop {
        match load(&shared) {
            Ok(rows) => {
                let ids: HashSet<i64> = rows.iter().map(|(r, _)| r.id).collect();
                for (row, roots) in rows {
                    match tasks.get(&row.id) {
                        None => {
                            let (tx, rx) = unbounded_channel();
                            if let Ok(mut w) = shared.wakers.lock() {
                                w.insert(row.id, tx.clone());
                            }
                            if !first {
                                shared.emit(DaemonEvent::ConduitAdded { conduit: row.id });
                            }
                            let resume = interrupted.contains(&row.id);
                            if resume {
                                tracing::info!("conduit {}: resuming its interrupted run", row.id);
                            }
                            let task = ConduitTask::new(
                                shared.clone(),
                                row.clone(),
                                roots.clone(),
                                tx,
                                resume,
                            );
                            tokio::spawn(task.run(rx));
                            tasks.insert(row.id, (row, roots));
                        }
                        Some((old_row, old_roots)) => {
                            if *old_row != row {
                                send(&shared, row.id, Wake::Settings(row.clone()));
                            }
                            if *old_roots != roots {
                                send(&shared, row.id, Wake::Roots(roots.clone()));
                            }
                            tasks.insert(row.id, (row, roots));
                        }
                    }
                }
                let gone: Vec<i64> = tasks
                    .keys()
                    .copied()
                    .filter(|id| !ids.contains(id))
                    .collect();
                for id in gone {
                    send(&shared, id, Wake::Stop);
                    tasks.remove(&id);
                    if let Ok(mut w) = shared.wakers.lock() {
                        w.remove(&id);
                    }
                    if let Ok(mut s) = shared.states.lock() {
                        s.remove(&id);
                    }
                    shared.emit(DaemonEvent::ConduitRemoved { conduit: id });
                }
            }
            Err(e) => tracing::warn!("reading conduits: {e}"),
        }
        first = false;
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.tunables.reload_interval) => {}
            asked = reload.recv() => match asked {
                Some(done) => waiting.push(done),
                None => tokio::time::sleep(shared.tunables.reload_interval).await,
            },
        }
        while let Ok(done) = reload.try_recv() {
            waiting.push(done); // one re-read answers every request made meanwhile
        }
    }
}

fn load(shared: &Shared) -> crate::Result<Vec<(ConduitRow, Vec<PathBuf>)>> {
    shared.with_index(|i| {
        let mut out = Vec::new();
        for c in i.conduits()? {
            let roots = vec![
                i.location(c.location_a)?.root,
                i.location(c.location_b)?.root,
            ];
            out.push((c, roots));
        }
        Ok(out)
    })
}

pub fn send(shared: &Shared, id: i64, w: Wake) -> bool {
    shared
        .wakers
        .lock()
        .ok()
        .and_then(|m| m.get(&id).map(|tx| tx.send(w).is_ok()))
        .unwrap_or(false)
}

struct ConduitTask {
    shared: Arc<Shared>,
    row: ConduitRow,
    roots: Vec<PathBuf>,
    tx: UnboundedSender<Wake>,
    watcher: Option<ConduitWatcher>,
    /// The watch limit was hit (said once); periodic scans instead.
    unwatchable: bool,
    pending: Option<&'static str>,
    /// With `pending`: the paths to rescan when only watched changes queued the run;
    /// `None` means a full rescan.
    targets: Option<Touched>,
    retry_at: Option<Instant>,
    next_scan: Instant,
    stop: bool,
    /// Why the last run was refused for a folder that is not there (logged once, when
    /// it starts or changes), until a run goes through again. Meanwhile every run is a
    /// full rescan.
    unplugged: Option<String>,
    /// Selective conduits: when the local side is next checked against its quota and
    /// free-space floor between runs.
    next_evict: Instant,
    /// The shortfall of the last check that could not free enough (said once).
    evict_short: bool,
}

impl ConduitTask {
    fn new(
        shared: Arc<Shared>,
        row: ConduitRow,
        roots: Vec<PathBuf>,
        tx: UnboundedSender<Wake>,
        resume: bool,
    ) -> ConduitTask {
        let schedule = row.schedule;
        let pending = if resume {
            Some("resume")
        } else if schedule != Schedule::Manual {
            Some("start") // changes made while the daemon was down
        } else {
            None
        };
        let mut t = ConduitTask {
            shared,
            row,
            roots,
            tx,
            watcher: None,
            unwatchable: false,
            pending,
            targets: None,
            retry_at: None,
            next_scan: Instant::now(),
            stop: false,
            unplugged: None,
            next_evict: Instant::now(),
            evict_short: false,
        };
        t.next_scan = Instant::now() + t.interval();
        t
    }

    fn id(&self) -> i64 {
        self.row.id
    }

    /// Time between unprompted runs.
    fn interval(&self) -> Duration {
        let t = &self.shared.tunables;
        match self.row.schedule {
            Schedule::Instant if self.unwatchable => t.fallback_interval,
            Schedule::Instant => t.rescan_interval,
            Schedule::Every(d) => d,
            Schedule::Manual => Duration::from_secs(365 * 86400),
        }
    }

    async fn run(mut self, mut rx: UnboundedReceiver<Wake>) {
        while !self.stop {
            while let Ok(w) = rx.try_recv() {
                self.handle(w);
            }
            if self.stop {
                break;
            }
            self.update_watcher();
            let due = self.retry_at.is_none_or(|t| t <= Instant::now());
            if !self.row.paused && due {
                if let Some(trigger) = self.pending.take() {
                    let only = self.targets.take();
                    self.run_job(trigger, only).await;
                    continue;
                }
            }
            self.publish_state(None);
            let mut deadline = match (self.pending.is_some() && !self.row.paused, self.retry_at) {
                (true, Some(t)) => t,
                _ => self.next_scan,
            };
            if self.evicts() {
                deadline = deadline.min(self.next_evict);
            }
            tokio::select! {
                w = rx.recv() => match w {
                    Some(w) => self.handle(w),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    if self.evicts() && Instant::now() >= self.next_evict {
                        self.evict_check().await;
                        self.next_evict = Instant::now() + self.shared.tunables.evict_interval;
                    }
                    if Instant::now() >= self.next_scan {
                        let why = match self.row.schedule {
                            Schedule::Every(_) => "timer",
                            _ => "rescan",
                        };
                        self.want_full(why);
                        self.next_scan = Instant::now() + self.interval();
                    }
                }
            }
        }
        tracing::debug!("conduit {}: task stopped", self.id());
    }

    fn handle(&mut self, w: Wake) {
        match w {
            Wake::Stop => self.stop = true,
            Wake::Roots(roots) => {
                tracing::info!(
                    "conduit {}: its folders are now {}; watching there",
                    self.id(),
                    roots
                        .iter()
                        .map(|r| r.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" and ")
                );
                self.roots = roots;
                self.watcher = None; // `update_watcher` starts one on the new roots
                self.unwatchable = false;
                self.want_full("start");
            }
            Wake::RunNow => {
                self.pending = Some("api");
                self.targets = None;
            }
            Wake::Watch(WatchSignal::Changed { rescan, touched }) => {
                let touched = match touched {
                    Some(t) => match self.drop_known(t) {
                        Some(t) => Some(t),
                        None => return, // only the daemon's own writes (or nothing new)
                    },
                    None => None,
                };
                if rescan {
                    tracing::info!("conduit {}: events were lost; full rescan", self.id());
                }
                if self.pending.is_none() {
                    self.shared
                        .emit(DaemonEvent::ChangeDetected { conduit: self.id() });
                }
                match touched {
                    Some(t) => self.want_paths("watch", t),
                    None => self.want_full("watch"),
                }
            }
            Wake::Watch(WatchSignal::LimitHit(reason)) => {
                self.watcher = None;
                self.fall_back(reason);
                self.want_full("rescan");
            }
            Wake::Settings(new) => {
                let id = new.id;
                if self.row.paused && !new.paused {
                    tracing::info!("conduit {id}: resumed");
                    self.shared
                        .emit(DaemonEvent::ConduitResumed { conduit: id });
                    self.want_full("resume");
                } else if !self.row.paused && new.paused {
                    tracing::info!("conduit {id}: paused");
                    self.shared.emit(DaemonEvent::ConduitPaused { conduit: id });
                }
                let schedule_changed = self.row.schedule != new.schedule;
                self.row = new;
                if schedule_changed {
                    self.next_scan = Instant::now() + self.interval();
                    if self.row.schedule != Schedule::Manual {
                        self.want_full("start");
                    }
                }
            }
        }
    }

    /// The touched paths whose disk state the index does not hold yet (see `known.rs`),
    /// or `None` when every one is in step: the events were this daemon's own writes
    /// (or changes undone since), nothing to run for.
    fn drop_known(&self, touched: Touched) -> Option<Touched> {
        let locations = [self.row.location_a, self.row.location_b];
        let roots = self.roots.clone();
        let kept = tokio::task::block_in_place(|| {
            self.shared.with_index(|index| {
                let mut kept = touched.clone();
                for (side, paths) in kept.sides.iter_mut().enumerate() {
                    let (Some(&loc), Some(root)) = (locations.get(side), roots.get(side)) else {
                        continue;
                    };
                    paths.retain(|p| !crate::known::in_step(index, loc, root, p));
                }
                Ok(kept)
            })
        });
        match kept {
            Ok(k) if k.is_empty() => {
                tracing::debug!(
                    "conduit {}: {} touched paths already in the index (own writes); no run",
                    self.id(),
                    touched.len()
                );
                None
            }
            Ok(k) => Some(k),
            Err(_) => Some(touched),
        }
    }

    /// Queues a full rescan (covering any targeted paths already queued).
    fn want_full(&mut self, why: &'static str) {
        self.pending.get_or_insert(why);
        self.targets = None;
    }

    /// Queues a rescan of `touched`, merged into a targeted run already queued; a full
    /// run already queued covers them.
    fn want_paths(&mut self, why: &'static str, touched: Touched) {
        if self.unplugged.is_some() {
            // Refused last time: what the events touched before was never scanned.
            self.want_full(why);
            return;
        }
        match (&self.pending, &mut self.targets) {
            (None, _) => {
                self.pending = Some(why);
                self.targets = Some(touched);
            }
            (Some(_), Some(queued)) => {
                queued.merge(touched);
                if queued.len() > MAX_TOUCHED {
                    self.targets = None;
                }
            }
            (Some(_), None) => {}
        }
    }

    fn fall_back(&mut self, reason: String) {
        if !self.unwatchable {
            self.unwatchable = true;
            let every = self.shared.tunables.fallback_interval;
            tracing::warn!(
                "conduit {}: cannot watch for changes ({reason}); scanning every {} instead",
                self.id(),
                ferry_core::conduit::format_duration(every)
            );
            self.shared.emit(DaemonEvent::WatchFallback {
                conduit: self.id(),
                reason,
            });
            self.next_scan = Instant::now() + self.interval();
        }
    }

    fn update_watcher(&mut self) {
        let want = self.row.schedule == Schedule::Instant && !self.row.paused && !self.unwatchable;
        if !want {
            self.watcher = None;
            return;
        }
        if self.watcher.is_some() {
            return;
        }
        let tx = self.tx.clone();
        let t = &self.shared.tunables;
        match ConduitWatcher::start(&self.roots, t.debounce, t.max_watches, move |s| {
            let _ = tx.send(Wake::Watch(s));
        }) {
            Ok(w) => self.watcher = Some(w),
            Err(WatchError::LimitHit(r)) => self.fall_back(r),
            Err(WatchError::Other(r)) => self.fall_back(r),
        }
    }

    /// Whether this conduit's local side is checked between runs (selective, not paused).
    fn evicts(&self) -> bool {
        self.row.mode == ferry_core::plan::SyncMode::Selective && !self.row.paused
    }

    /// Checks the local side of this selective conduit against its quota and
    /// free-space floor and dehydrates cold files when it is over
    /// (`selective::evict_now`: same checks as after a run, under both folders' locks).
    /// A folder held by another process (a run, `ferry sync`) is skipped: that run
    /// evicts, or the next check does.
    async fn evict_check(&mut self) {
        let id = self.id();
        let library = self.shared.library.clone();
        let result = tokio::task::spawn_blocking(move || -> crate::Result<_> {
            let mut index = ferry_core::index::Index::open(&library.join("index.db"))?;
            let Some(row) = index.conduit(id)? else {
                return Ok(ferry_core::on_demand::Eviction::default());
            };
            let pair = ferry_core::on_demand::SelectivePair::open(&index, &row)?;
            Ok(ferry_core::on_demand::evict_now(&mut index, &pair)?)
        })
        .await;
        let ev = match result {
            Ok(Ok(ev)) => ev,
            Ok(Err(e)) => {
                tracing::debug!("conduit {id}: eviction check skipped: {e}");
                return;
            }
            Err(e) => {
                tracing::warn!("conduit {id}: eviction check panicked: {e}");
                return;
            }
        };
        for (path, why) in &ev.skipped {
            tracing::debug!("conduit {id}: {path} kept local: {why}");
        }
        if !ev.dehydrated.is_empty() {
            tracing::info!(
                "conduit {id}: over its quota or free-space floor: {} cold file(s) made \
                 online-only ({} bytes)",
                ev.dehydrated.len(),
                ev.bytes
            );
            self.shared.emit(DaemonEvent::FilesDehydrated {
                conduit: id,
                files: ev.dehydrated.len() as u64,
                bytes: ev.bytes,
                paths: ev.dehydrated.clone(),
                by: "quota".into(),
            });
        }
        let short = ev.bytes < ev.needed;
        if short && !self.evict_short {
            tracing::warn!(
                "conduit {id}: still {} bytes over its quota or free-space floor: too few \
                 cold, unpinned, synced, closed files to make online-only",
                ev.needed - ev.bytes
            );
        }
        self.evict_short = short;
    }

    fn publish_state(&self, running: Option<&str>) {
        let schedule = self.row.schedule;
        let state = match running {
            Some(s) => s.to_string(),
            None if self.row.paused => "paused".into(),
            None if self.pending.is_some() && self.retry_at.is_some() => "waiting".into(),
            None if self.pending.is_some() => "queued".into(),
            None if schedule == Schedule::Manual => "manual".into(),
            None => "idle".into(),
        };
        let watch = match schedule {
            _ if self.row.paused => "off",
            Schedule::Instant if self.unwatchable => "periodic (watch limit)",
            Schedule::Instant if self.watcher.is_some() => "watching",
            Schedule::Every(_) => "timer",
            _ => "off",
        };
        self.shared.set_state(self.id(), |s| {
            s.state = state;
            s.watch = watch.to_string();
        });
    }

    async fn run_job(&mut self, trigger: &'static str, only: Option<Touched>) {
        let id = self.id();
        self.publish_state(Some("running"));
        let shared = self.shared.clone();
        let progress = shared.jobs.start(id, trigger);
        shared.emit(DaemonEvent::JobStarted {
            conduit: id,
            trigger: trigger.to_string(),
        });
        let ticker = {
            let (p, s) = (progress.clone(), shared.clone());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                every.tick().await;
                loop {
                    every.tick().await;
                    s.emit(DaemonEvent::JobProgress {
                        conduit: p.conduit,
                        // Through a `Value`: its keys sorted, as the stream always had them.
                        progress: serde_json::to_value(p.snapshot())
                            .unwrap_or(serde_json::Value::Null),
                    });
                }
            })
        };
        let library = shared.library.clone();
        let p = progress.clone();
        let targeted = only.is_some();
        let pair = only.clone().map(Touched::into_pair);
        if let Some(t) = &only {
            tracing::debug!("conduit {id}: targeted rescan of {} paths", t.len());
        }
        let pull = crate::devices::pull_source(&shared, id).await;
        let result =
            tokio::task::spawn_blocking(move || run_once(&library, id, trigger, pair, pull, &p))
                .await
                .unwrap_or_else(|e| JobResult::Failed(format!("run panicked: {e}")));
        ticker.abort();
        shared.jobs.finish(id);
        crate::devices::run_ended(&shared);
        match result {
            JobResult::Done(o) => {
                self.retry_at = None;
                if self.unplugged.take().is_some() {
                    tracing::info!("conduit {id}: its folders are back; syncing again");
                }
                let status = if o.interrupted {
                    tracing::info!(
                        "conduit {id}: run stopped at a safe point ({}); the next run resumes it",
                        if self.shared.jobs.stopping() {
                            "the daemon is stopping"
                        } else {
                            "paused"
                        }
                    );
                    "interrupted"
                } else if o.problems.is_empty() {
                    "ok"
                } else {
                    "partial"
                };
                for e in &o.problems {
                    tracing::warn!("conduit {id}: {e}");
                }
                tracing::info!(
                    "conduit {id} ({trigger}): {} copied, {} deleted, {} renamed, {} conflicts",
                    o.stats.files_copied,
                    o.stats.files_deleted,
                    o.stats.files_renamed,
                    o.stats.conflicts
                );
                let problems = crate::problems::of_run(&o.problems);
                shared.set_state(id, |s| {
                    s.last_error = o.problems.first().map(|p| p.to_string());
                    s.problems = problems;
                    s.last_finished_at = Some(ferry_core::index::unix_now());
                });
                shared.emit(DaemonEvent::JobFinished {
                    conduit: id,
                    generation: o.generation_id,
                    status: status.into(),
                    stats: o.stats.clone(),
                });
                if !o.dehydrated.is_empty() {
                    tracing::info!(
                        "conduit {id}: {} cold file(s) made online-only ({} bytes)",
                        o.dehydrated.len(),
                        o.bytes_dehydrated
                    );
                    shared.emit(DaemonEvent::FilesDehydrated {
                        conduit: id,
                        files: o.dehydrated.len() as u64,
                        bytes: o.bytes_dehydrated,
                        paths: o.dehydrated.clone(),
                        by: "run".into(),
                    });
                }
            }
            JobResult::Busy(msg) => {
                tracing::info!("conduit {id}: {msg}; retrying");
                match only {
                    Some(t) => self.want_paths(trigger, t),
                    None => self.want_full(trigger),
                }
                self.retry_at = Some(Instant::now() + shared.tunables.busy_retry);
            }
            JobResult::Unplugged(msg) => {
                self.retry_at = None;
                // Said once per state, not at every event or rescan that retries it.
                if self.unplugged.as_ref() != Some(&msg) {
                    tracing::warn!("conduit {id}: refused: {msg}");
                } else {
                    tracing::debug!("conduit {id}: still refused: {msg}");
                }
                self.unplugged = Some(msg.clone());
                shared.set_state(id, |s| {
                    s.last_error = Some(msg.clone());
                    s.problems = vec![crate::problems::ProblemView::folder_unavailable(&msg)];
                    s.last_finished_at = Some(ferry_core::index::unix_now());
                });
                shared.emit(DaemonEvent::JobFailed {
                    conduit: id,
                    error: msg,
                });
                // Retrying now would only be refused again; whatever runs next is a
                // full rescan (see `want_paths`), so the paths this run did not scan
                // are looked at once the folder is back.
            }
            JobResult::Failed(msg) => {
                self.retry_at = None;
                self.unplugged = None;
                tracing::warn!("conduit {id}: run failed: {msg}");
                shared.set_state(id, |s| {
                    s.last_error = Some(msg.clone());
                    s.problems = vec![crate::problems::ProblemView::run_failed(&msg)];
                    s.last_finished_at = Some(ferry_core::index::unix_now());
                });
                shared.emit(DaemonEvent::JobFailed {
                    conduit: id,
                    error: msg,
                });
                if targeted {
                    // Whatever went wrong, the whole conduit is looked at again.
                    self.want_full("rescan");
                }
            }
        }
        self.next_scan = Instant::now() + self.interval();
    }
}
