//! A terminal progress bar fed by the library's progress events: files and bytes of
//! the current phase, rate, and an ETA that weighs both (`ferry_core::Work`),
//! so 50,000 tiny files are not estimated by their few bytes.

use crate::commands::human_bytes;
use ferry_core::{Progress, Work};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Steps of the bar: its position is the phase's share done, in thousandths.
const STEPS: u64 = 1000;

/// Counters of the current phase.
#[derive(Debug)]
struct Counters {
    files_done: AtomicU64,
    files_total: AtomicU64,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    started: Mutex<Instant>,
}

impl Counters {
    fn work(&self) -> Work {
        Work {
            files_done: self.files_done.load(Ordering::Relaxed),
            files_total: self.files_total.load(Ordering::Relaxed),
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
        }
    }

    fn elapsed(&self) -> Duration {
        self.started.lock().map(|s| s.elapsed()).unwrap_or_default()
    }

    /// `1,200/50,000 files, 3.1 MiB/12.0 MiB, 2.0 MiB/s, ETA 12s`
    fn line(&self) -> String {
        let w = self.work();
        let secs = self.elapsed().as_secs_f64();
        let rate = if secs >= 0.5 {
            format!(", {}/s", human_bytes((w.bytes_done as f64 / secs) as u64))
        } else {
            String::new()
        };
        let eta = match w.eta(self.elapsed()) {
            Some(d) => format!("ETA {}", short_duration(d)),
            None => "ETA -".to_string(),
        };
        format!(
            "{}/{} files, {}/{}{rate}, {eta}",
            w.files_done,
            w.files_total,
            human_bytes(w.bytes_done),
            human_bytes(w.bytes_total)
        )
    }
}

/// `45s`, `3m05s`, `2h10m`.
fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Draws on stderr when it is a terminal; stays hidden otherwise.
pub struct Bar {
    bar: ProgressBar,
    counters: Arc<Counters>,
}

impl Bar {
    pub fn new(enabled: bool) -> Bar {
        let counters = Arc::new(Counters {
            files_done: AtomicU64::new(0),
            files_total: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            started: Mutex::new(Instant::now()),
        });
        let bar = if enabled && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            ProgressBar::with_draw_target(Some(STEPS), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        let c = counters.clone();
        let style = ProgressStyle::with_template("{msg:>12} [{bar:30}] {work}")
            .map(|s| {
                s.with_key(
                    "work",
                    move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&c.line());
                    },
                )
            })
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        Bar { bar, counters }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn advance(&self) {
        let f = self.counters.work().fraction();
        self.bar.set_position((f * STEPS as f64) as u64);
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: Option<u64>) {
        let short: String = name
            .chars()
            .rev()
            .take(24)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let c = &self.counters;
        c.files_done.store(0, Ordering::Relaxed);
        c.files_total.store(0, Ordering::Relaxed);
        c.bytes_done.store(0, Ordering::Relaxed);
        c.bytes_total.store(total.unwrap_or(0), Ordering::Relaxed);
        if let Ok(mut s) = c.started.lock() {
            *s = Instant::now();
        }
        self.bar.set_message(short);
        self.bar.set_position(0);
    }

    fn items_total(&self, total: u64) {
        self.counters.files_total.store(total, Ordering::Relaxed);
    }

    fn more_work(&self, files: u64, bytes: u64) {
        let c = &self.counters;
        c.files_total.fetch_add(files, Ordering::Relaxed);
        c.bytes_total.fetch_add(bytes, Ordering::Relaxed);
        self.advance();
    }

    fn bytes(&self, n: u64) {
        self.counters.bytes_done.fetch_add(n, Ordering::Relaxed);
        self.advance();
    }

    fn item(&self) {
        self.counters.files_done.fetch_add(1, Ordering::Relaxed);
        self.advance();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_counts_files_and_bytes() {
        let b = Bar::new(false);
        b.phase("copy", Some(5_000_000));
        b.items_total(50_000);
        for _ in 0..1_000 {
            b.bytes(100);
            b.item();
        }
        let line = b.counters.line();
        assert!(
            line.starts_with("1000/50000 files, 97.7 KiB/4.8 MiB"),
            "{line}"
        );
        assert!(
            line.ends_with("ETA -"),
            "no estimate within the first second: {line}"
        );
        assert_eq!(short_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(short_duration(Duration::from_secs(7800)), "2h10m");
    }
}
