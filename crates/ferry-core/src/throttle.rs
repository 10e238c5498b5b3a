//! Bandwidth limiting: a token bucket shared by all copy workers of one run.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket of `rate` bytes per second holding at most one second of burst.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(bytes_per_sec: u64) -> RateLimiter {
        RateLimiter {
            rate: bytes_per_sec.max(1) as f64,
            state: Mutex::new(Bucket {
                tokens: 0.0,
                last: Instant::now(),
            }),
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate as u64
    }

    /// Takes `n` bytes' worth of tokens, sleeping until they are available.
    pub(crate) fn acquire(&self, n: u64) {
        let wait = {
            let Ok(mut b) = self.state.lock() else { return };
            let now = Instant::now();
            let refill = now.duration_since(b.last).as_secs_f64() * self.rate;
            b.tokens = (b.tokens + refill).min(self.rate);
            b.last = now;
            b.tokens -= n as f64;
            if b.tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-b.tokens / self.rate)
            }
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_throughput() {
        let l = RateLimiter::new(1 << 20);
        let start = Instant::now();
        for _ in 0..8 {
            l.acquire(64 << 10); // 512 KiB at 1 MiB/s: about half a second
        }
        assert!(start.elapsed() >= Duration::from_millis(400));
    }
}
