//! Whether answering a device compresses its pieces: zstd pays only while the link is
//! the bottleneck. The gate compares how fast this device compresses (measured on the
//! pieces it compressed, per thread, times the threads answering) with how fast the
//! link carries bytes (the congestion controller's bandwidth estimate, or a
//! bandwidth limit if lower). Compressing when the compressor cannot keep ahead of
//! the link by [`MARGIN`] would make the sender CPU-bound: loopback or a LAN of a
//! gigabit and more then goes raw. While raw, one piece in [`PROBE_EVERY`] is still
//! compressed, so a compressor that got faster (or a link that got slower) is seen.
//! Incompressible pieces are skipped either way (`compress_piece`'s cheap check).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The compressor must beat the link by this factor (it shares the CPU with reading,
/// hashing and the QUIC stack).
pub const MARGIN: u64 = 2;
/// While not compressing, every this many pieces one is compressed anyway (a probe).
pub const PROBE_EVERY: u64 = 32;
/// How often the gate looks at the link again.
pub const RECHECK: Duration = Duration::from_millis(100);

/// Whether compressing pays on a link carrying `link` bytes per second (`None`: not
/// known yet) under a bandwidth limit of `limit` bytes per second now (0: none), for a
/// compressor doing `speed` bytes per second per thread (0: not measured yet) on
/// `threads` threads. Unknowns say yes: compression is what measures its speed, and a
/// link not measured yet is likely in slow start.
pub fn pays(link: Option<u64>, limit: u64, speed: u64, threads: u64) -> bool {
    let link = match (link, limit) {
        (Some(l), 0) => l,
        (Some(l), r) => l.min(r),
        (None, 0) => return true,
        (None, r) => r,
    };
    if speed == 0 {
        return true;
    }
    speed.saturating_mul(threads.max(1)) > link.saturating_mul(MARGIN)
}

/// One device's gate (shared by every stream answering it).
#[derive(Debug)]
pub struct CompressionGate {
    /// Compression speed on one thread, bytes per second (a moving average; 0: none).
    speed: AtomicU64,
    /// The decision in force.
    on: AtomicBool,
    /// Pieces answered raw since the last probe.
    raw: AtomicU64,
    /// When the decision was last made.
    checked: Mutex<Option<Instant>>,
    threads: u64,
}

impl Default for CompressionGate {
    fn default() -> Self {
        CompressionGate::new(
            std::thread::available_parallelism()
                .map(|n| n.get() as u64)
                .unwrap_or(1),
        )
    }
}

impl CompressionGate {
    /// A gate for a compressor on `threads` threads.
    pub fn new(threads: u64) -> CompressionGate {
        CompressionGate {
            speed: AtomicU64::new(0),
            on: AtomicBool::new(true),
            raw: AtomicU64::new(0),
            checked: Mutex::new(None),
            threads,
        }
    }

    /// Whether to try compressing the next piece. `link` and `limit` are asked only
    /// when the decision is [`RECHECK`] old.
    pub fn should_compress(&self, now: Instant, link: impl FnOnce() -> (Option<u64>, u64)) -> bool {
        let due = match self.checked.lock() {
            Ok(mut c) => {
                let due = c.is_none_or(|t| now.duration_since(t) >= RECHECK);
                if due {
                    *c = Some(now);
                }
                due
            }
            Err(_) => false,
        };
        if due {
            let (link, limit) = link();
            let on = pays(link, limit, self.speed(), self.threads);
            if self.on.swap(on, Ordering::Relaxed) != on {
                tracing::debug!(
                    on,
                    link,
                    limit,
                    speed = self.speed(),
                    threads = self.threads,
                    "compression turned {}",
                    if on { "on" } else { "off" }
                );
            }
        }
        if self.on.load(Ordering::Relaxed) {
            return true;
        }
        // A probe now and then keeps the speed measured.
        self.raw.fetch_add(1, Ordering::Relaxed) % PROBE_EVERY == PROBE_EVERY - 1
    }

    /// Whether compression is on now.
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Records that compressing `bytes` took `took` on one thread.
    pub fn record(&self, bytes: u64, took: Duration) {
        let secs = took.as_secs_f64().max(1e-6);
        let sample = (bytes as f64 / secs) as u64;
        let old = self.speed.load(Ordering::Relaxed);
        // A moving average, an eighth per sample.
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.speed.store(new.max(1), Ordering::Relaxed);
    }

    /// The measured speed per thread, bytes per second (0: not measured).
    pub fn speed(&self) -> u64 {
        self.speed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn compression_pays_only_where_the_link_is_slower_than_the_compressor() {
        // A 100 Mbit/s link (12 MB/s) and zstd at 300 MB/s on 2 threads: compress.
        assert!(pays(Some(12 * MB), 0, 300 * MB, 2));
        // Loopback, ~2 GB/s: the compressor would be the bottleneck.
        assert!(!pays(Some(2000 * MB), 0, 300 * MB, 2));
        // Just under the margin (the compressor at 2 × 300 = 600 ≤ 2 × 300): raw.
        assert!(!pays(Some(300 * MB), 0, 300 * MB, 2));
        // A fast link under a 10M limit: the limit is the bottleneck, compress.
        assert!(pays(Some(2000 * MB), 10 * MB, 300 * MB, 2));
        // Unknowns: compress (that measures the speed; the link is in slow start).
        assert!(pays(None, 0, 300 * MB, 2));
        assert!(pays(Some(2000 * MB), 0, 0, 2));
        // A slow CPU on a LAN: raw.
        assert!(!pays(Some(110 * MB), 0, 80 * MB, 2));
    }

    #[test]
    fn the_gate_turns_off_on_a_fast_link_probes_and_turns_on_when_the_link_slows() {
        let g = CompressionGate::new(2);
        let t0 = Instant::now();
        // Nothing measured: it compresses, which measures (300 MB/s per thread).
        assert!(g.should_compress(t0, || (Some(2000 * MB), 0)));
        g.record(300 * MB, Duration::from_secs(1));
        assert_eq!(g.speed(), 300 * MB);
        // Within RECHECK the decision stands; the link is not even asked.
        assert!(g.should_compress(t0 + Duration::from_millis(50), || unreachable!()));
        // Looked at again: a 2 GB/s link is faster than 600 MB/s of zstd. Raw, but
        // one piece in PROBE_EVERY is still compressed.
        let t1 = t0 + RECHECK;
        assert!(!g.should_compress(t1, || (Some(2000 * MB), 0)));
        assert!(!g.is_on());
        let probes = (1..PROBE_EVERY * 4)
            .filter(|_| g.should_compress(t1, || unreachable!()))
            .count();
        assert_eq!(probes, 4);
        // The link slows to 100 Mbit/s: on again at the next check.
        assert!(g.should_compress(t1 + RECHECK, || (Some(12 * MB), 0)));
        assert!(g.is_on());
        // A bandwidth limit on a fast link: on.
        assert!(g.should_compress(t1 + RECHECK * 2, || (Some(2000 * MB), 5 * MB)));
    }

    #[test]
    fn the_speed_is_a_moving_average() {
        let g = CompressionGate::new(1);
        g.record(800 * MB, Duration::from_secs(1));
        g.record(0, Duration::from_secs(1));
        assert_eq!(g.speed(), 700 * MB);
    }
}
