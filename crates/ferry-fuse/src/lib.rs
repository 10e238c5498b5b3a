//! Files on demand: a FUSE view of the local (hot) side of a selective conduit.
//!
//! The mount shows the whole tree with real sizes and times: what is on the local
//! disk is passed through (reads and writes go to the local files, so an edit through
//! the mount is an ordinary local edit the next sync carries to the secondary), and a
//! dehydrated file — content only on the secondary — is listed from the index. Reading
//! one fetches the pieces (chunks) covering the range asked for from the secondary,
//! each checked against its BLAKE3, and answers as soon as they are there; once every
//! byte of the file has been read, a background thread hydrates it through ferry-core's
//! safe install (temp file, verify, rename).
//!
//! The secondary is only ever touched from a fetch worker with its own index
//! connection; a request waits for it at most [`MountOptions::read_timeout`] and then
//! fails with `EIO` (logged): never a hang, never zero bytes. A worker that did not
//! answer in time is abandoned, and the next request starts a fresh one.

#![deny(missing_docs)]

mod fetch;
mod fs;
mod mounts;

pub use mounts::{is_mounted, unmount};

use ferry_core::index::ConduitRow;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Receives what the mount's hydrations do, as they happen (the CLI forwards them to
/// a running daemon's event stream). Called from the thread that hydrates, never
/// inside a request handler: it must not block for long.
pub type EventHook = std::sync::Arc<dyn Fn(ferry_core::on_demand::HydrationEvent) + Send + Sync>;

/// How a mount behaves.
#[derive(Clone)]
pub struct MountOptions {
    /// Longest wait for the secondary before a read fails with `EIO`.
    pub read_timeout: Duration,
    /// Where hydrations are reported (none: only logged).
    pub events: Option<EventHook>,
}

impl std::fmt::Debug for MountOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountOptions")
            .field("read_timeout", &self.read_timeout)
            .field("events", &self.events.is_some())
            .finish()
    }
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            read_timeout: Duration::from_secs(10),
            events: None,
        }
    }
}

/// What can go wrong mounting or unmounting.
#[derive(Debug, thiserror::Error)]
pub enum FuseError {
    /// The engine refused or failed (the conduit, its folders, the index).
    #[error(transparent)]
    Core(#[from] ferry_core::Error),
    /// The kernel or fusermount3 refused the mount.
    #[error("cannot mount at {path}: {source}")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The mount point is not usable.
    #[error("{path}: {reason}")]
    MountPoint {
        /// The mount point.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Unmounting failed.
    #[error("cannot unmount {path}: {reason}")]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A mount served by background threads; unmounted when dropped.
pub struct Mounted {
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
    /// Watches the local side to invalidate the kernel's caches (`None`: could not
    /// watch; attributes then expire after a second).
    _watcher: Option<notify::RecommendedWatcher>,
}

/// Watches the local side (recursively) and invalidates the kernel's caches of every
/// path that changes there (see `fs::Changes`). A watch that cannot be set up (the
/// OS watch limit) is logged; cached attributes then expire after their one-second
/// lifetime and pages are dropped at each open, as before.
fn watch_changes(
    changes: fs::Changes,
    notifier: fuser::Notifier,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let root = changes.root().to_path_buf();
    let handler = move |ev: notify::Result<notify::Event>| match ev {
        Ok(ev) => {
            if !matches!(ev.kind, notify::EventKind::Access(_)) {
                changes.changed(&notifier, &ev.paths)
            }
        }
        Err(e) => tracing::debug!("mount: watch: {e}"),
    };
    let mut w = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("mount: cannot watch {} for changes: {e}", root.display());
            return None;
        }
    };
    if let Err(e) = w.watch(&root, notify::RecursiveMode::Recursive) {
        tracing::warn!(
            "mount: cannot watch {} for changes ({e}); the kernel's cached attributes \
             expire after a second instead",
            root.display()
        );
        return None;
    }
    Some(w)
}

impl Mounted {
    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Whether the session is still serving (it ends when unmounted from outside).
    pub fn is_serving(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| !s.guard.is_finished())
    }

    /// Unmounts and waits for the session to end.
    pub fn unmount(mut self) -> Result<(), FuseError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), FuseError> {
        let Some(s) = self.session.take() else {
            return Ok(());
        };
        let r = if s.guard.is_finished() {
            s.join()
        } else {
            s.umount_and_join()
        };
        r.map_err(|e| FuseError::Unmount {
            path: self.mountpoint.clone(),
            reason: e.to_string(),
        })
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("{e}");
        }
    }
}

/// Mounts the local side of selective conduit `conduit` (its index at `index_path`)
/// at `mountpoint`, served by background threads.
pub fn spawn(
    index_path: &Path,
    conduit: &ConduitRow,
    mountpoint: &Path,
    opts: MountOptions,
) -> Result<Mounted, FuseError> {
    let mountpoint = std::path::absolute(mountpoint).map_err(|e| FuseError::MountPoint {
        path: mountpoint.to_path_buf(),
        reason: e.to_string(),
    })?;
    match std::fs::metadata(&mountpoint) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(FuseError::MountPoint {
                path: mountpoint,
                reason: "not a folder".into(),
            })
        }
        Err(e) => {
            return Err(FuseError::MountPoint {
                path: mountpoint,
                reason: e.to_string(),
            })
        }
    }
    let fs = fs::Fs::new(index_path, conduit, &mountpoint, opts)?;
    let changes = fs.changes();
    let root = fs.root().to_path_buf();
    if mountpoint.starts_with(&root) {
        return Err(FuseError::MountPoint {
            path: mountpoint,
            reason: format!("inside the folder it would show ({})", root.display()),
        });
    }
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName(format!("ferry:{}", root.display())),
        fuser::MountOption::Subtype("ferry".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
    ];
    // Several request threads, so one read waiting for the secondary does not hold up
    // listings and reads of local files.
    config.n_threads = Some(4);
    let session = fuser::spawn_mount(fs, &mountpoint, &config).map_err(|e| FuseError::Mount {
        path: mountpoint.clone(),
        source: e,
    })?;
    tracing::info!("mounted {} at {}", root.display(), mountpoint.display());
    let watcher = watch_changes(changes, session.notifier());
    Ok(Mounted {
        session: Some(session),
        mountpoint,
        _watcher: watcher,
    })
}

/// Mounts as [`spawn`] and serves until the mount is unmounted (`ferry unmount`,
/// `fusermount3 -u`) or the process gets SIGINT or SIGTERM, which unmount it.
pub fn mount_foreground(
    index_path: &Path,
    conduit: &ConduitRow,
    mountpoint: &Path,
    opts: MountOptions,
) -> Result<(), FuseError> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| FuseError::Mount {
            path: mountpoint.to_path_buf(),
            source: e,
        })?;
    }
    let mounted = spawn(index_path, conduit, mountpoint, opts)?;
    while mounted.is_serving() && !stop.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    mounted.unmount()
}
