//! Bandwidth limits between devices: token buckets that every transfer under one limit
//! takes from (a share's pulls, a share's answers, everything with one device), so
//! concurrent transfers share it. Takers wait in turn (a first-come, first-served
//! lock), each for its own bytes, so no transfer starves another. A limit may be a
//! schedule (`10M 09:00-18:00`): every take asks the schedule for the rate at the
//! clock's minute, so a window's start or end applies to the next piece.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::bandwidth::{local_minute, BandwidthLimit};
use tokio::time::Instant;

/// The minute of the day a bucket reads its schedule at (the local clock; tests give
/// their own).
pub type Clock = Arc<dyn Fn() -> u16 + Send + Sync>;

/// A token bucket whose rate (bytes per second, 0: unlimited) comes from a
/// [`BandwidthLimit`] at the clock's minute, holding at most a quarter second of
/// burst (at least 64 KiB, a chunk on average).
pub struct RateLimit {
    limit: Mutex<BandwidthLimit>,
    clock: Clock,
    state: tokio::sync::Mutex<Bucket>,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("limit", &self.limit())
            .finish()
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// One rate at all times.
    pub fn new(bytes_per_sec: u64) -> RateLimit {
        RateLimit::scheduled(BandwidthLimit::fixed(bytes_per_sec))
    }

    /// A limit that may follow a schedule, on the local clock.
    pub fn scheduled(limit: BandwidthLimit) -> RateLimit {
        RateLimit::with_clock(limit, Arc::new(local_minute))
    }

    /// A limit read at the minutes `clock` says.
    pub fn with_clock(limit: BandwidthLimit, clock: Clock) -> RateLimit {
        RateLimit {
            limit: Mutex::new(limit),
            clock,
            state: tokio::sync::Mutex::new(Bucket {
                tokens: 0.0,
                last: Instant::now(),
            }),
        }
    }

    /// The rate now (bytes per second, 0: unlimited).
    pub fn rate(&self) -> u64 {
        let minute = (self.clock)();
        self.limit().rate_at(minute)
    }

    /// The limit (rate or schedule).
    pub fn limit(&self) -> BandwidthLimit {
        self.limit
            .lock()
            .map(|l| l.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Changes the rate (0: unlimited) at all times; takers waiting finish their
    /// current wait.
    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.set_limit(BandwidthLimit::fixed(bytes_per_sec));
    }

    /// Changes the limit; takers waiting finish their current wait.
    pub fn set_limit(&self, limit: BandwidthLimit) {
        match self.limit.lock() {
            Ok(mut l) => *l = limit,
            Err(p) => *p.into_inner() = limit,
        }
    }

    /// Takes `n` bytes' worth of tokens, waiting (in turn) until they are there.
    pub async fn take(&self, n: u64) {
        if self.rate() == 0 {
            return;
        }
        let mut b = self.state.lock().await;
        // Read again: the clock may have left the window while this taker queued.
        let rate = self.rate() as f64;
        let now = Instant::now();
        if rate <= 0.0 {
            b.last = now;
            return;
        }
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.last = now;
        let (tokens, wait) = debit(b.tokens, elapsed, rate, n);
        b.tokens = tokens;
        if !wait.is_zero() {
            // Held while waiting: the next taker queues behind this one.
            tokio::time::sleep(wait).await;
        }
    }
}

/// The bucket after taking `n` bytes `elapsed` seconds after the last take, and how
/// long the taker waits for tokens it took on credit.
fn debit(tokens: f64, elapsed: f64, rate: f64, n: u64) -> (f64, Duration) {
    let burst = (rate / 4.0).max(65536.0);
    let tokens = (tokens + elapsed * rate).min(burst) - n as f64;
    let wait = if tokens < 0.0 {
        Duration::from_secs_f64(-tokens / rate)
    } else {
        Duration::ZERO
    };
    (tokens, wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takers_wait_for_what_they_take_and_a_burst_is_capped() {
        // 1 MiB at 1 MiB/s, taken at once in 16 pieces: the waits add up to a second.
        let (mut tokens, mut waited) = (0.0, Duration::ZERO);
        for _ in 0..16 {
            let (t, w) = debit(tokens, 0.0, 1048576.0, 65536);
            // Each taker waits out the debt so far (the waits overlap in time: the
            // last one's is the total).
            waited = w;
            tokens = t;
        }
        assert_eq!(waited, Duration::from_secs(1));
        // An idle hour earns a quarter second, not an hour.
        let (t, w) = debit(0.0, 3600.0, 1048576.0, 0);
        assert_eq!((t, w), (262144.0, Duration::ZERO));
    }

    /// A bucket on a clock the test sets (minute of the day).
    fn on_clock(text: &str, minute: &Arc<std::sync::atomic::AtomicU16>) -> RateLimit {
        let m = minute.clone();
        let clock: Clock = Arc::new(move || m.load(std::sync::atomic::Ordering::SeqCst));
        RateLimit::with_clock(BandwidthLimit::parse(text).unwrap(), clock)
    }

    #[tokio::test]
    async fn a_schedule_is_read_again_as_the_clock_crosses_its_windows() {
        use std::sync::atomic::{AtomicU16, Ordering};
        let minute = Arc::new(AtomicU16::new(8 * 60 + 59));
        let l = on_clock("1M 09:00-18:00, 4M 18:00-23:00", &minute);
        // 08:59: outside every window, unlimited: a terabyte is taken at once.
        assert_eq!(l.rate(), 0);
        l.take(1 << 40).await;
        // 09:00: the window starts; the same take now waits (for days).
        minute.store(9 * 60, Ordering::SeqCst);
        assert_eq!(l.rate(), 1 << 20);
        let waited = tokio::time::timeout(Duration::from_millis(50), l.take(1 << 40)).await;
        assert!(
            waited.is_err(),
            "a terabyte went through a 1M window at once"
        );
        minute.store(18 * 60, Ordering::SeqCst);
        assert_eq!(l.rate(), 4 << 20, "the next window's rate");
        // 23:00: unlimited again, even for a bucket deep in debt.
        minute.store(23 * 60, Ordering::SeqCst);
        assert_eq!(l.rate(), 0);
        l.take(1 << 40).await;
        // A new limit replaces the schedule for the next take.
        l.set_limit(BandwidthLimit::parse("2M 22:00-24:00").unwrap());
        assert_eq!(l.rate(), 2 << 20);
        assert_eq!(l.limit().to_string(), "2M 22:00-24:00");
    }

    #[tokio::test]
    async fn zero_is_unlimited() {
        let l = RateLimit::new(0);
        l.take(1 << 40).await; // returns at once (a limit would wait for ages)
        l.set_rate(5);
        assert_eq!(l.rate(), 5);
    }
}
