//! Progress reporting hooks, so the library stays silent and the CLI draws bars.

use crate::model::RelPath;

/// Receives progress events from scans and executions. All methods default to no-ops.
pub trait Progress: Sync {
    /// A phase starts (`"scan A"`, `"copy"`…) with a total of work units if known.
    fn phase(&self, _name: &str, _total_bytes: Option<u64>) {}
    /// How many items (files) the current phase has, when known.
    fn items_total(&self, _total: u64) {}
    /// The current phase found more work: `files` more files and `bytes` more bytes
    /// (a scan learns its total as its walk goes).
    fn more_work(&self, _files: u64, _bytes: u64) {}
    /// Some bytes of the current phase are done.
    fn bytes(&self, _n: u64) {}
    /// One item (file) of the current phase is done.
    fn item(&self) {}
    /// A file's copy has written `done` of its `size` bytes (0 when it starts). Copies
    /// run on several workers at once, so several files can be in flight.
    fn file_progress(&self, _path: &RelPath, _done: u64, _size: u64) {}
    /// A file's copy ended, installed or not.
    fn file_finished(&self, _path: &RelPath) {}
    /// Whether the caller asked the work to stop: a scan checks it between batches and
    /// files and stops with `Error::Interrupted`, leaving what it recorded (true
    /// observations) in the index.
    fn cancelled(&self) -> bool {
        false
    }
}

/// Progress sink that ignores everything.
pub struct NoProgress;
impl Progress for NoProgress {}

/// What one file counts for, in bytes, when estimating the work of a phase: the cost of
/// opening, creating, verifying and renaming a file is about that of moving this many
/// bytes, so 50,000 tiny files are not taken for a few kilobytes of work, nor one big
/// file for a single step.
pub const FILE_COST_BYTES: u64 = 128 * 1024;

/// How far a phase has got, in files and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// Files done in this phase.
    pub files_done: u64,
    /// Files this phase has to do.
    pub files_total: u64,
    /// Bytes done in this phase.
    pub bytes_done: u64,
    /// Bytes this phase has to do.
    pub bytes_total: u64,
}

impl Work {
    fn units(files: u64, bytes: u64) -> f64 {
        files as f64 * FILE_COST_BYTES as f64 + bytes as f64
    }

    /// The share done, 0 to 1, weighing files and bytes (see `FILE_COST_BYTES`, 128 KiB).
    pub fn fraction(&self) -> f64 {
        let total = Self::units(self.files_total, self.bytes_total);
        if total <= 0.0 {
            return 0.0;
        }
        (Self::units(
            self.files_done.min(self.files_total),
            self.bytes_done.min(self.bytes_total),
        ) / total)
            .clamp(0.0, 1.0)
    }

    /// Time left at the pace so far (`elapsed` since the phase began), or `None` while
    /// there is too little to go by: under a second, or nothing done yet.
    pub fn eta(&self, elapsed: std::time::Duration) -> Option<std::time::Duration> {
        let f = self.fraction();
        if elapsed < std::time::Duration::from_secs(1) || f <= 0.0 {
            return None;
        }
        let left = elapsed.as_secs_f64() * (1.0 - f) / f;
        Some(std::time::Duration::from_secs_f64(left.min(1e9)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn many_tiny_files_are_estimated_by_their_count() {
        // 50,000 files of 100 bytes, 1,000 done in 1 s: about 49 s left, not hours.
        let w = Work {
            files_done: 1_000,
            files_total: 50_000,
            bytes_done: 100_000,
            bytes_total: 5_000_000,
        };
        let eta = w.eta(Duration::from_secs(1)).unwrap().as_secs_f64();
        assert!((45.0..55.0).contains(&eta), "{eta}");
    }

    #[test]
    fn big_files_are_estimated_by_their_bytes() {
        // Two 1 GiB files, half of the first done in 2 s: about 6 s left.
        let w = Work {
            files_done: 0,
            files_total: 2,
            bytes_done: 512 << 20,
            bytes_total: 2 << 30,
        };
        let eta = w.eta(Duration::from_secs(2)).unwrap().as_secs_f64();
        assert!((5.5..6.5).contains(&eta), "{eta}");
    }

    #[test]
    fn no_estimate_from_too_little() {
        let w = Work {
            files_done: 0,
            files_total: 10,
            bytes_done: 0,
            bytes_total: 10,
        };
        assert_eq!(w.eta(Duration::from_secs(5)), None);
        let w = Work { files_done: 5, ..w };
        assert_eq!(w.eta(Duration::from_millis(500)), None);
        assert_eq!(Work::default().fraction(), 0.0);
    }
}
