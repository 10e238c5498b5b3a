//! File-system watching of an `instant` conduit's two roots (notify, debounced).
//!
//! Events become a [`WatchSignal::Changed`] for the conduit's scheduler (events on
//! ferry's own `.ferry/` folder and temp files are dropped, so a run's own bookkeeping
//! does not wake it again). An event-queue overflow says `Rescan`; the scheduler runs a
//! full rescan either way. When the OS watch limit is hit (or the configured cap,
//! `FERRY_MAX_WATCHES`), the watcher reports [`WatchSignal::LimitHit`] and the scheduler
//! falls back to periodic scans.

use ferry_core::ignore_rules::{FERRY_DIR, TEMP_PREFIX};
use notify::{ErrorKind, EventKind, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the watcher tells the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchSignal {
    /// Something under a root changed (or events were lost: rescan everything).
    Changed { rescan: bool },
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
            let dirs: usize = roots.iter().map(|r| count_dirs(r, cap + 1)).sum();
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
                let relevant = events.iter().any(|e| {
                    !matches!(e.kind, EventKind::Access(_))
                        && e.paths.iter().any(|p| !is_own_path(&roots_owned, p))
                });
                if rescan || relevant {
                    send(WatchSignal::Changed { rescan });
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
                    send(WatchSignal::Changed { rescan: true });
                }
            }
        };
        let tick = (debounce / 2).max(Duration::from_millis(10));
        let mut debouncer = new_debouncer(debounce, Some(tick), handler)
            .map_err(|e| WatchError::Other(e.to_string()))?;
        for r in roots {
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

/// Paths ferry writes for itself: `.ferry/` at a root and temp files anywhere.
fn is_own_path(roots: &[PathBuf], p: &Path) -> bool {
    if p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(TEMP_PREFIX))
    {
        return true;
    }
    roots.iter().any(|r| {
        p.strip_prefix(r)
            .ok()
            .and_then(|rel| rel.components().next())
            .is_some_and(|c| c.as_os_str() == FERRY_DIR)
    })
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
    fn own_paths_are_ignored() {
        let roots = vec![PathBuf::from("/r/a"), PathBuf::from("/r/b")];
        assert!(is_own_path(&roots, Path::new("/r/a/.ferry/lock")));
        assert!(is_own_path(&roots, Path::new("/r/b/x/.ferry.tmp.f.1")));
        assert!(!is_own_path(&roots, Path::new("/r/a/x/.ferry")));
        assert!(!is_own_path(&roots, Path::new("/r/a/notes.txt")));
    }

    #[test]
    fn counts_directories() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("x/y")).unwrap();
        std::fs::create_dir_all(d.path().join("z")).unwrap();
        assert_eq!(count_dirs(d.path(), 100), 4);
        assert_eq!(count_dirs(d.path(), 2), 2);
    }
}
