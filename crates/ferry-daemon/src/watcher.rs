//! File-system watching of an `instant` conduit's two roots (notify, debounced).
//!
//! Events become a [`WatchSignal::Changed`] for the conduit's scheduler, carrying the
//! paths they touched (see `touched.rs`) for a targeted rescan; events on ferry's own
//! `.ferry/` folder and temp files are dropped, so a run's own bookkeeping does not wake
//! it again. An event-queue overflow, a watcher error or a batch that cannot be narrowed
//! to paths asks for a full rescan instead. When the OS watch limit is hit (or the configured cap,
//! `FERRY_MAX_WATCHES`), the watcher reports [`WatchSignal::LimitHit`] and the scheduler
//! falls back to periodic scans.

use crate::touched::{Batch, Touched};
use notify::{ErrorKind, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the watcher tells the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchSignal {
    /// Something under a root changed: rescan the `touched` paths, or everything when
    /// `None` (`rescan`: because events were lost).
    Changed {
        rescan: bool,
        touched: Option<Touched>,
    },
    /// The watch limit was reached; watching is off for this conduit.
    LimitHit(String),
}

/// A running watch on both roots of a conduit; stops when dropped.
pub struct ConduitWatcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

/// Why a conduit is not watched.
#[derive(Debug)]
pub enum WatchError {
    LimitHit(String),
    Other(String),
}

impl ConduitWatcher {
    /// Watches `roots` recursively; `send` receives signals from the watcher thread.
    pub fn start(
        roots: &[PathBuf],
        debounce: Duration,
        max_watches: Option<usize>,
        send: impl Fn(WatchSignal) + Send + 'static,
    ) -> Result<ConduitWatcher, WatchError> {
        if let Some(cap) = max_watches {
            let dirs: usize = (roots.iter())
                .filter(|r| r.is_absolute())
                .map(|r| count_dirs(r, cap + 1))
                .sum();
            if dirs > cap {
                return Err(WatchError::LimitHit(format!(
                    "{dirs} folders to watch, more than the watch limit {cap} (FERRY_MAX_WATCHES)"
                )));
            }
        }
        let roots_owned: Vec<PathBuf> = roots.to_vec();
        let handler = move |res: DebounceEventResult| match res {
            Ok(events) => {
                let rescan = events.iter().any(|e| e.need_rescan());
                match Touched::from_events(&roots_owned, events.iter().map(|e| &e.event)) {
                    Batch::Nothing => {}
                    Batch::Paths(t) => send(WatchSignal::Changed {
                        rescan: false,
                        touched: Some(t),
                    }),
                    Batch::Full => send(WatchSignal::Changed {
                        rescan,
                        touched: None,
                    }),
                }
            }
            Err(errors) => {
                if let Some(e) = errors
                    .iter()
                    .find(|e| matches!(e.kind, ErrorKind::MaxFilesWatch))
                {
                    send(WatchSignal::LimitHit(e.to_string()));
                } else {
                    for e in &errors {
                        tracing::warn!("watcher: {e}");
                    }
                    send(WatchSignal::Changed {
                        rescan: true,
                        touched: None,
                    });
                }
            }
        };
        let tick = (debounce / 2).max(Duration::from_millis(10));
        let mut debouncer = new_debouncer(debounce, Some(tick), handler)
            .map_err(|e| WatchError::Other(e.to_string()))?;
        // Another device's copy of a shared folder has no folder here to watch.
        for r in roots.iter().filter(|r| r.is_absolute()) {
            if let Err(e) = debouncer.watch(r, RecursiveMode::Recursive) {
                return Err(match e.kind {
                    ErrorKind::MaxFilesWatch => WatchError::LimitHit(format!(
                        "{e} (raise fs.inotify.max_user_watches to watch {})",
                        r.display()
                    )),
                    _ => WatchError::Other(format!("watch {}: {e}", r.display())),
                });
            }
        }
        Ok(ConduitWatcher {
            _debouncer: debouncer,
        })
    }
}

/// Directories under `root` (itself included), counting up to `stop`.
fn count_dirs(root: &Path, stop: usize) -> usize {
    let mut n = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        n += 1;
        if n >= stop {
            break;
        }
        let Ok(items) = std::fs::read_dir(&d) else {
            continue;
        };
        for it in items.flatten() {
            if it.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(it.path());
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_directories() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("x/y")).unwrap();
        std::fs::create_dir_all(d.path().join("z")).unwrap();
        assert_eq!(count_dirs(d.path(), 100), 4);
        assert_eq!(count_dirs(d.path(), 2), 2);
    }
}
