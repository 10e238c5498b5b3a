//! Bandwidth limits between devices: token buckets that every transfer under one limit
//! takes from (a share's pulls, a share's answers, everything with one device), so
//! concurrent transfers share it. Takers wait in turn (a first-come, first-served
//! lock), each for its own bytes, so no transfer starves another.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A token bucket of `rate` bytes per second (0: unlimited) holding at most a quarter
/// second of burst (at least 64 KiB, a chunk on average).
#[derive(Debug)]
pub struct RateLimit {
    rate: AtomicU64,
    state: tokio::sync::Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    pub fn new(bytes_per_sec: u64) -> RateLimit {
        RateLimit {
            rate: AtomicU64::new(bytes_per_sec),
            state: tokio::sync::Mutex::new(Bucket {
                tokens: 0.0,
                last: Instant::now(),
            }),
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// Changes the rate (0: unlimited); takers waiting finish their current wait.
    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.rate.store(bytes_per_sec, Ordering::Relaxed);
    }

    /// Takes `n` bytes' worth of tokens, waiting (in turn) until they are there.
    pub async fn take(&self, n: u64) {
        if self.rate() == 0 {
            return;
        }
        let mut b = self.state.lock().await;
        let rate = self.rate() as f64;
        if rate <= 0.0 {
            return;
        }
        let now = Instant::now();
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

    #[tokio::test]
    async fn zero_is_unlimited() {
        let l = RateLimit::new(0);
        l.take(1 << 40).await; // returns at once (a limit would wait for ages)
        l.set_rate(5);
        assert_eq!(l.rate(), 5);
    }
}
