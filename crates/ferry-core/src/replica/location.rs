//! Locations: indexed directory roots, each marked by `.ferry/location` holding its ID.
//!
//! A root without its marker is never synced (safety rule 6): an unmounted disk or a
//! wiped folder must not look like "everything was deleted".
//!
//! A folder that was moved keeps its marker, so its new root is recognised and the
//! location follows it (its index row takes the new root); a copy of a folder, whose
//! original still holds the same marker, is refused with what to do instead.
//!
//! A dry run opens locations with [`open_location_dry`]: it writes nothing under the
//! root (no marker, no lock file), and the index rows it needs for a folder new to the
//! index live only in the dry run's discarded transaction.

use crate::error::{Error, IoContext, Result};
use crate::index::{Index, LocationRow};
use crate::replica::beneath::RootDir;
use crate::replica::ignore_rules::FERRY_DIR;
use crate::replica::overlap::DirId;
use std::path::{Path, PathBuf};

const MARKER: &str = "location";

/// An opened location: its index row and canonical root.
#[derive(Debug, Clone)]
pub struct Location {
    /// The location's index row.
    pub row: LocationRow,
    /// Its root, canonical.
    pub root: PathBuf,
    /// Opened for a dry run: nothing is written under the root.
    dry_run: bool,
    /// A dry run's location whose marker is not on disk (a folder new to the index, or
    /// one `--yes` would start over): its marker is expected to be absent.
    marker_pending: bool,
    /// The root, open: every write of a run goes through it (see `beneath`).
    handle: std::sync::OnceLock<std::sync::Arc<RootDir>>,
    /// [`Location::temp_tag`], made once: every copy and every scanned directory
    /// with leftovers asks for it.
    temp_tag: std::sync::OnceLock<String>,
    /// The root the index had for this location when it was opened at a new one (the
    /// folder was moved; a dry run only pretends to follow it).
    moved_from: Option<PathBuf>,
}

impl Location {
    /// The location of an index row, at the root the row records (nothing is checked).
    pub(crate) fn from_row(row: LocationRow) -> Location {
        Location {
            root: row.root.clone(),
            row,
            dry_run: false,
            marker_pending: false,
            handle: std::sync::OnceLock::new(),
            temp_tag: std::sync::OnceLock::new(),
            moved_from: None,
        }
    }

    /// The location's ID in the index.
    pub fn id(&self) -> i64 {
        self.row.id
    }

    /// Opened by a dry run: scans must not write under the root (stale temp files stay).
    pub(crate) fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// The root's directory handle, opened on first use and kept for the location's
    /// life, so a root swapped for a symlink later is not followed.
    pub fn dir(&self) -> Result<std::sync::Arc<RootDir>> {
        if let Some(h) = self.handle.get() {
            return Ok(h.clone());
        }
        let h = std::sync::Arc::new(RootDir::open(&self.root)?);
        Ok(self.handle.get_or_init(|| h).clone())
    }

    /// A tag that names this location's temp files (derived from its ID, so the index
    /// records it): only files carrying it are ferry's own leftovers.
    pub(crate) fn temp_tag(&self) -> &str {
        self.temp_tag.get_or_init(|| {
            let h = blake3::hash(format!("temp:{}", self.row.uuid).as_bytes());
            h.to_hex()[..16].to_string()
        })
    }

    /// What to tell the user when opening this location followed a moved folder.
    pub fn moved_note(&self) -> Option<String> {
        let old = self.moved_from.as_ref()?;
        Some(if self.dry_run {
            format!(
                "{} was moved from {}: a real run will sync it at its new place, keeping its index and conduits",
                self.root.display(),
                old.display()
            )
        } else {
            format!(
                "{} was moved from {}: ferry now syncs it at its new place, with its index and conduits",
                self.root.display(),
                old.display()
            )
        })
    }

    /// Its `.ferry/` folder (marker, lock, version store).
    pub fn ferry_dir(&self) -> PathBuf {
        self.root.join(FERRY_DIR)
    }

    /// Takes this location's lock, so no two ferry processes work on it at once (and
    /// leftover temp files can only be from a run that died). Released on drop.
    ///
    /// A dry run creates no lock file: where there is none yet (a folder ferry has not
    /// marked), no process can hold it, and the dry run goes ahead unlocked.
    pub fn lock(&self) -> Result<LocationLock> {
        // Through the root's handle, never following a symlink at `.ferry` or `lock`.
        let lock = std::ffi::OsStr::new("lock");
        let file = if self.dry_run {
            let ferry = match self.dir()?.dir(FERRY_DIR) {
                Ok(d) => d,
                Err(Error::Io { source, .. }) if crate::replica::fs_ops::is_absent(&source) => {
                    return Ok(LocationLock { _file: None })
                }
                Err(e) => return Err(e),
            };
            match ferry.lstat(lock)? {
                None => return Ok(LocationLock { _file: None }),
                Some(_) => ferry.open_file(lock)?,
            }
        } else {
            let top = self.dir()?.top()?;
            top.subdir_or_create(std::ffi::OsStr::new(FERRY_DIR), 0o755)?
                .open_or_create(lock)?
        };
        // A few short tries: a lock released by this process can still be held for a
        // moment by a child forked in between (the lock belongs to the open file, which
        // the child shares until it execs).
        for attempt in 0..10 {
            // SAFETY: the descriptor is valid for the call.
            let rc = unsafe {
                libc::flock(
                    std::os::fd::AsRawFd::as_raw_fd(&file),
                    libc::LOCK_EX | libc::LOCK_NB,
                )
            };
            if rc == 0 {
                return Ok(LocationLock { _file: Some(file) });
            }
            if attempt < 9 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        Err(Error::Busy(self.root.clone()))
    }

    /// Checks that the root and its marker are still there and name this location.
    pub(crate) fn verify_marker(&self) -> Result<()> {
        match read_marker(&self.root)? {
            Some(uuid) if uuid == self.row.uuid => Ok(()),
            None if self.marker_pending => Ok(()),
            Some(other) => Err(Error::Location {
                root: self.root.clone(),
                reason: format!(
                    "marker names location {other}, the index expects {}",
                    self.row.uuid
                ),
            }),
            None => Err(missing_marker(&self.root)),
        }
    }
}

/// Held while a process works on a location.
pub struct LocationLock {
    _file: Option<std::fs::File>,
}

fn missing_marker(root: &Path) -> Error {
    Error::Location {
        root: root.to_path_buf(),
        reason: format!(
            "was synced before but its marker {FERRY_DIR}/{MARKER} is gone (unmounted disk? wiped folder?); \
             not syncing. If the folder is meant to start over, run again with --yes"
        ),
    }
}

fn read_marker(root: &Path) -> Result<Option<String>> {
    check_ferry_dir(root)?;
    let p = root.join(FERRY_DIR).join(MARKER);
    let ferry = match RootDir::open(root)?.dir(FERRY_DIR) {
        Ok(d) => d,
        Err(Error::Io { source, .. }) if crate::replica::fs_ops::is_absent(&source) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let name = std::ffi::OsStr::new(MARKER);
    if ferry.lstat(name)?.is_none() {
        return Ok(None);
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut ferry.open_file(name)?, &mut text).ctx("read marker", &p)?;
    Ok(Some(text.trim().to_string()))
}

/// `.ferry` must be a real folder of the root (or absent): a symlink there could lead
/// the marker, the lock and the version store out of the location.
fn check_ferry_dir(root: &Path) -> Result<()> {
    let p = root.join(FERRY_DIR);
    match std::fs::symlink_metadata(&p) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Location {
            root: root.to_path_buf(),
            reason: format!("{FERRY_DIR} is a symlink or a file, not a folder; refusing to use it"),
        }),
        Err(e) if crate::replica::fs_ops::is_absent(&e) => Ok(()),
        Err(e) => Err(e).ctx("check", p),
    }
}

/// Writes the marker through the root's handle: a new temp file (never through a
/// symlink), made durable, renamed over the marker.
fn write_marker(root: &Path, uuid: &str) -> Result<()> {
    let top = RootDir::open(root)?.top()?;
    let ferry = top.subdir_or_create(std::ffi::OsStr::new(FERRY_DIR), 0o755)?;
    let tmp = crate::replica::fs_ops::random_temp_name(MARKER);
    let shown = ferry.show(&tmp);
    let written = (|| {
        let mut f = ferry.create_new(&tmp)?;
        std::io::Write::write_all(&mut f, format!("{uuid}\n").as_bytes())
            .ctx("write marker", &shown)?;
        crate::replica::beneath::set_file_mode(&f, 0o644, &shown)?;
        f.sync_all().ctx("fsync marker", &shown)?;
        ferry
            .rename_raw(
                &tmp,
                &ferry,
                std::ffi::OsStr::new(MARKER),
                rustix::fs::RenameFlags::empty(),
            )
            .ctx("install marker", ferry.show(std::ffi::OsStr::new(MARKER)))
    })();
    if written.is_err() {
        let _ = ferry.unlink(&tmp);
    }
    written
}

/// Canonical absolute form of a root that must exist and be a directory.
pub fn canonical_root(root: &Path) -> Result<PathBuf> {
    let canon = std::fs::canonicalize(root).map_err(|e| Error::Location {
        root: root.to_path_buf(),
        reason: format!("root is not reachable: {e}"),
    })?;
    if !canon.is_dir() {
        return Err(Error::Location {
            root: root.to_path_buf(),
            reason: "root is not a directory".into(),
        });
    }
    Ok(canon)
}

/// Opens the location at `root`, creating it (index row and marker) on first use.
/// `reinit` accepts a known location whose marker is gone: it starts over as new,
/// forgetting its old entries so nothing there is taken for a deletion.
pub fn open_location(index: &mut Index, root: &Path, reinit: bool) -> Result<Location> {
    open(index, root, reinit, false)
}

/// Opens the location at `root` for a dry run: decides as [`open_location`] does, but
/// writes no marker (and the location's lock and scans write nothing under the root).
/// The index rows a new location needs, and the entries `reinit` forgets, are written
/// only inside [`Index::discarding`], which the caller must be in.
pub(crate) fn open_location_dry(index: &mut Index, root: &Path, reinit: bool) -> Result<Location> {
    if !index.is_discarding() {
        return Err(Error::Other(
            "internal error: a dry run opened a location outside a discarded transaction".into(),
        ));
    }
    open(index, root, reinit, true)
}

fn open(index: &mut Index, root: &Path, reinit: bool, dry_run: bool) -> Result<Location> {
    let root = canonical_root(root)?;
    let marker = read_marker(&root)?;
    let opened = |row, marker_pending| Location {
        row,
        root: root.clone(),
        dry_run,
        marker_pending,
        handle: std::sync::OnceLock::new(),
        temp_tag: std::sync::OnceLock::new(),
        moved_from: None,
    };
    if let Some(row) = index.location_by_root(&root)? {
        match marker {
            Some(m) if m == row.uuid => return Ok(opened(row, false)),
            Some(m) => {
                return Err(Error::Location {
                    root,
                    reason: format!("marker names location {m}, the index expects {}", row.uuid),
                })
            }
            None if reinit => {
                let paths: Vec<_> = index.entries(row.id)?.into_iter().map(|e| e.path).collect();
                index.forget_entries(row.id, &paths)?;
                if !dry_run {
                    write_marker(&root, &row.uuid)?;
                }
                return Ok(opened(row, dry_run));
            }
            None => return Err(missing_marker(&root)),
        }
    }
    if let Some(known) = marker
        .as_deref()
        .map(|m| index.location_by_uuid(m))
        .transpose()?
        .flatten()
    {
        let old = known.root.clone();
        let row = follow_move(index, known, &root)?;
        tracing::info!(
            "location {} was moved from {}; following it",
            root.display(),
            old.display()
        );
        return Ok(Location {
            moved_from: Some(old),
            ..opened(row, false)
        });
    }
    let (uuid, pending) = match marker {
        Some(m) => (m, false),
        None => {
            let u = uuid::Uuid::new_v4().to_string();
            if !dry_run {
                write_marker(&root, &u)?;
            }
            (u, dry_run)
        }
    };
    let replica_id = replica_id_of(&uuid);
    let row = index.insert_location(&uuid, &root, replica_id)?;
    Ok(opened(row, pending))
}

/// `root` holds the marker of location `known`, which the index has at another root.
/// If that root is gone or no longer holds the marker (or its path now leads here, e.g.
/// a symlink left behind), the folder was moved: the location's row takes the new root
/// and keeps its ID, so its entries, versions and conduits stay with it. If the old
/// root still holds the same marker, `root` is a copy (or the same directory reached by
/// another path, e.g. a bind mount): refused, saying what to do.
fn follow_move(index: &Index, known: LocationRow, root: &Path) -> Result<LocationRow> {
    let old = &known.root;
    let old_now = std::fs::canonicalize(old).ok().filter(|p| p.is_dir());
    if let Some(old_now) = old_now.filter(|p| p != root) {
        if read_marker(&old_now)?.as_deref() == Some(known.uuid.as_str()) {
            let reason = if DirId::at(&old_now)? == DirId::at(root)? {
                format!(
                    "is the folder ferry syncs as {} (the same directory, reached through a bind \
                     mount or another path); sync it as {}",
                    old.display(),
                    old.display()
                )
            } else {
                format!(
                    "its marker {FERRY_DIR}/{MARKER} names the folder ferry syncs at {}, which \
                     still has it: this looks like a copy of that folder. To sync the copy as a \
                     folder of its own, delete {} and run again",
                    old.display(),
                    root.join(FERRY_DIR).display()
                )
            };
            return Err(Error::Location {
                root: root.to_path_buf(),
                reason,
            });
        }
    }
    index.set_location_root(known.id, root)
}

/// Replica ID used in version vectors: the first 8 bytes of BLAKE3(location ID).
pub(crate) fn replica_id_of(uuid: &str) -> u64 {
    let h = blake3::hash(uuid.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(b) & (i64::MAX as u64)
}
