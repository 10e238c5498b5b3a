//! Jobs: one run of a conduit on a blocking thread, with live progress for the API.
//!
//! Each run is a generation in the index. The executor records every durable batch (and
//! the generation's counters) as it goes, so a daemon killed mid-run resumes on restart
//! from the last batch: the next generation notes which one it resumes, files already
//! installed are found by the scan with the right content and only recorded, and staged
//! temp files are cleaned up.
//!
//! A run can also be asked to stop (its conduit paused, the daemon stopping): it stops
//! at the executor's next safe point, its generation is recorded `interrupted`, and the
//! next run resumes it the same way.

use crate::error::{DaemonError, Result};
use ferry_core::index::Index;
use ferry_core::model::RelPath;
use ferry_core::Cancel;
use ferry_core::Progress;
use ferry_core::{sync_conduit, SyncOptions, SyncOutcome};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// At most this many files in flight are listed in a job's snapshot (copies run on a few
/// workers, so there are rarely more).
const MAX_IN_FLIGHT_SHOWN: usize = 32;

/// A running job as `/api/jobs` and `/api/status` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobView {
    /// The conduit that runs.
    pub conduit: i64,
    /// What started the run.
    pub trigger: String,
    /// When it started (seconds since the epoch).
    pub started_at: i64,
    /// Seconds since it started.
    pub elapsed_seconds: f64,
    /// The phase it is in (`scan a`, `copy`, …).
    pub phase: String,
    /// Bytes of the phase done.
    pub phase_bytes_done: u64,
    /// Bytes of the phase in all.
    pub phase_bytes_total: u64,
    /// Files of the phase done.
    pub phase_files_done: u64,
    /// Files of the phase in all.
    pub phase_files_total: u64,
    /// Files copied by the run.
    pub files_done: u64,
    /// Bytes copied by the run.
    pub bytes_done: u64,
    /// The phase's rate.
    pub rate_bytes_per_sec: u64,
    /// Seconds left in the phase, if known.
    pub eta_seconds: Option<f64>,
    /// Files of the phase still to do.
    pub queue_depth: u64,
    /// Files being copied now (at most 32).
    pub in_flight: Vec<InFlight>,
}

/// A file being copied now.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InFlight {
    /// Its path key.
    pub path: String,
    /// Bytes written so far.
    pub bytes_done: u64,
    /// Its size.
    pub size: u64,
}

/// Live progress of one run, fed by the engine's progress hooks.
#[derive(Debug)]
pub struct JobProgress {
    pub conduit: i64,
    pub trigger: String,
    started: Instant,
    started_unix: i64,
    phase: Mutex<(String, Instant)>,
    phase_bytes_total: AtomicU64,
    phase_bytes_done: AtomicU64,
    phase_items_total: AtomicU64,
    phase_items_done: AtomicU64,
    copied_files: AtomicU64,
    copied_bytes: AtomicU64,
    /// Times this run handed freed heap back while copying (see [`TRIM_EVERY`]).
    trims: AtomicU64,
    /// Files being copied now: path → (bytes written, size).
    in_flight: Mutex<BTreeMap<String, (u64, u64)>>,
    /// Set to stop this run at its next safe point.
    pub cancel: Cancel,
}

/// Files copied between two hand-backs of freed heap during a run. A pull of many
/// small files frees per file on 16 workers and the two malloc arenas fragment: the
/// receiving daemon's RSS climbed to ~85 MiB with ~29 MiB live (heaptrack, benchmark
/// tree) when freed memory went back only after the run.
const TRIM_EVERY: u64 = 512;

impl JobProgress {
    pub fn new(conduit: i64, trigger: &str) -> JobProgress {
        let now = Instant::now();
        JobProgress {
            conduit,
            trigger: trigger.to_string(),
            started: now,
            started_unix: ferry_core::index::unix_now(),
            phase: Mutex::new(("start".into(), now)),
            phase_bytes_total: AtomicU64::new(0),
            phase_bytes_done: AtomicU64::new(0),
            phase_items_total: AtomicU64::new(0),
            phase_items_done: AtomicU64::new(0),
            copied_files: AtomicU64::new(0),
            copied_bytes: AtomicU64::new(0),
            trims: AtomicU64::new(0),
            in_flight: Mutex::new(BTreeMap::new()),
            cancel: Cancel::new(),
        }
    }

    fn in_copy(&self) -> bool {
        self.phase.lock().map(|p| p.0 == "copy").unwrap_or(false)
    }

    /// Files and bytes done, rate, ETA and files still queued, as the API shows them.
    pub fn snapshot(&self) -> JobView {
        let (phase, since) = self
            .phase
            .lock()
            .map(|p| (p.0.clone(), p.1))
            .unwrap_or_else(|_| ("?".into(), self.started));
        let total = self.phase_bytes_total.load(Ordering::Relaxed);
        let done = self.phase_bytes_done.load(Ordering::Relaxed);
        let items_total = self.phase_items_total.load(Ordering::Relaxed);
        let items_done = self.phase_items_done.load(Ordering::Relaxed);
        let elapsed = since.elapsed();
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let work = ferry_core::Work {
            files_done: items_done,
            files_total: items_total,
            bytes_done: done,
            bytes_total: total,
        };
        let eta = work.eta(elapsed).map(|d| d.as_secs_f64());
        let in_flight: Vec<InFlight> = self
            .in_flight
            .lock()
            .map(|m| {
                m.iter()
                    .take(MAX_IN_FLIGHT_SHOWN)
                    .map(|(path, (done, size))| InFlight {
                        path: path.clone(),
                        bytes_done: *done,
                        size: *size,
                    })
                    .collect()
            })
            .unwrap_or_default();
        JobView {
            conduit: self.conduit,
            trigger: self.trigger.clone(),
            started_at: self.started_unix,
            elapsed_seconds: self.started.elapsed().as_secs_f64(),
            phase,
            phase_bytes_done: done,
            phase_bytes_total: total,
            phase_files_done: items_done,
            phase_files_total: items_total,
            files_done: self.copied_files.load(Ordering::Relaxed),
            bytes_done: self.copied_bytes.load(Ordering::Relaxed),
            rate_bytes_per_sec: rate.round() as u64,
            eta_seconds: eta,
            queue_depth: items_total.saturating_sub(items_done),
            in_flight,
        }
    }
}

impl Progress for JobProgress {
    fn phase(&self, name: &str, total_bytes: Option<u64>) {
        if let Ok(mut p) = self.phase.lock() {
            *p = (name.to_string(), Instant::now());
        }
        self.phase_bytes_total
            .store(total_bytes.unwrap_or(0), Ordering::Relaxed);
        self.phase_bytes_done.store(0, Ordering::Relaxed);
        self.phase_items_total.store(0, Ordering::Relaxed);
        self.phase_items_done.store(0, Ordering::Relaxed);
    }
    fn items_total(&self, total: u64) {
        self.phase_items_total.store(total, Ordering::Relaxed);
    }
    fn more_work(&self, files: u64, bytes: u64) {
        self.phase_items_total.fetch_add(files, Ordering::Relaxed);
        self.phase_bytes_total.fetch_add(bytes, Ordering::Relaxed);
    }
    fn bytes(&self, n: u64) {
        self.phase_bytes_done.fetch_add(n, Ordering::Relaxed);
        if self.in_copy() {
            self.copied_bytes.fetch_add(n, Ordering::Relaxed);
        }
    }
    fn file_progress(&self, path: &RelPath, done: u64, size: u64) {
        if let Ok(mut m) = self.in_flight.lock() {
            m.insert(path.to_string(), (done, size));
        }
    }
    fn file_finished(&self, path: &RelPath) {
        if let Ok(mut m) = self.in_flight.lock() {
            m.remove(&path.to_string());
        }
    }
    fn item(&self) {
        self.phase_items_done.fetch_add(1, Ordering::Relaxed);
        if self.in_copy() {
            let n = self.copied_files.fetch_add(1, Ordering::Relaxed) + 1;
            if n % TRIM_EVERY == 0 {
                crate::memory::release_freed();
                self.trims.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The runs in progress, by conduit.
#[derive(Debug, Default)]
pub struct JobBoard {
    running: Mutex<HashMap<i64, Arc<JobProgress>>>,
    /// The daemon is stopping: every run is asked to stop, new ones included.
    stopping: AtomicBool,
}

impl JobBoard {
    pub fn start(&self, conduit: i64, trigger: &str) -> Arc<JobProgress> {
        let p = Arc::new(JobProgress::new(conduit, trigger));
        if let Ok(mut m) = self.running.lock() {
            if self.stopping() {
                p.cancel.cancel();
            }
            m.insert(conduit, p.clone());
        }
        p
    }

    /// Asks conduit `conduit`'s running job, if any, to stop at its next safe point.
    pub fn cancel(&self, conduit: i64) -> bool {
        match self.get(conduit) {
            Some(p) => {
                p.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Asks every running job, and any started from now on, to stop.
    pub fn stop_all(&self) {
        if let Ok(m) = self.running.lock() {
            self.stopping.store(true, Ordering::SeqCst);
            for p in m.values() {
                p.cancel.cancel();
            }
        }
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub fn is_empty(&self) -> bool {
        self.running.lock().map(|m| m.is_empty()).unwrap_or(true)
    }

    pub fn finish(&self, conduit: i64) {
        if let Ok(mut m) = self.running.lock() {
            m.remove(&conduit);
        }
    }

    pub fn snapshot(&self) -> Vec<JobView> {
        let mut v: Vec<_> = self
            .running
            .lock()
            .map(|m| m.values().map(|p| p.snapshot()).collect())
            .unwrap_or_default();
        v.sort_by_key(|j| j.conduit);
        v
    }

    pub fn get(&self, conduit: i64) -> Option<Arc<JobProgress>> {
        self.running.lock().ok()?.get(&conduit).cloned()
    }
}

/// How a run ended.
pub enum JobResult {
    Done(Box<SyncOutcome>),
    /// Another process holds one of the locations; try again later.
    Busy(String),
    /// A folder is not there as the index knows it (root or marker missing, e.g. an
    /// unplugged disk; another folder's marker; a copy): refused, nothing was done.
    Unplugged(String),
    Failed(String),
}

/// Runs conduit `id` once (blocking). Opens its own index connection. With `only`,
/// scans just those paths of locations A and B (a targeted rescan after events).
///
/// A run allocates per path (walks, index rows) on several threads; afterwards the
/// freed heap is handed back to the system, so a long-lived daemon does not keep the
/// high-water mark of its largest rescan.
pub fn run_once(
    library: &Path,
    id: i64,
    trigger: &'static str,
    only: Option<[Vec<RelPath>; 2]>,
    pull: Option<ferry_core::PullSource>,
    progress: &JobProgress,
) -> JobResult {
    let result: Result<SyncOutcome> = (|| {
        let mut index = Index::open(&library.join("index.db"))?;
        let opts = SyncOptions {
            trigger: Some(trigger),
            skip_empty: true,
            only,
            cancel: Some(progress.cancel.clone()),
            pull,
            ..Default::default()
        };
        Ok(sync_conduit(&mut index, id, &opts, progress)?)
    })();
    crate::memory::release_freed();
    match result {
        Ok(o) => {
            // What the run left alone on purpose (ignore-file warnings, special files,
            // paths ignored on one side) reaches the daemon's log, as the CLI prints it.
            for note in &o.notes {
                tracing::info!(conduit = id, "note: {note}");
            }
            JobResult::Done(Box::new(o))
        }
        Err(DaemonError::Core(e @ ferry_core::Error::Busy(_))) => JobResult::Busy(e.to_string()),
        Err(DaemonError::Core(e @ ferry_core::Error::Location { .. })) => {
            JobResult::Unplugged(e.to_string())
        }
        Err(e) => JobResult::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_copy_hands_freed_memory_back_as_it_goes() {
        let p = JobProgress::new(1, "test");
        p.phase("scan", None);
        (0..3 * TRIM_EVERY).for_each(|_| p.item());
        assert_eq!(p.trims.load(Ordering::Relaxed), 0, "only while copying");
        p.phase("copy", Some(0));
        (0..3 * TRIM_EVERY + 1).for_each(|_| p.item());
        assert_eq!(p.trims.load(Ordering::Relaxed), 3);
    }
}
