//! Locations: indexed directory roots, each marked by `.ferry/location` holding its ID.
//!
//! A root without its marker is never synced (safety rule 6): an unmounted disk or a
//! wiped folder must not look like "everything was deleted".

use crate::error::{Error, IoContext, Result};
use crate::ignore_rules::FERRY_DIR;
use crate::index::{Index, LocationRow};
use std::path::{Path, PathBuf};

const MARKER: &str = "location";

/// An opened location: its index row and canonical root.
#[derive(Debug, Clone)]
pub struct Location {
    pub row: LocationRow,
    pub root: PathBuf,
}

impl Location {
    pub fn id(&self) -> i64 {
        self.row.id
    }

    pub fn ferry_dir(&self) -> PathBuf {
        self.root.join(FERRY_DIR)
    }

    /// Takes this location's lock, so no two ferry processes work on it at once (and
    /// leftover temp files can only be from a run that died). Released on drop.
    pub fn lock(&self) -> Result<LocationLock> {
        let p = self.ferry_dir().join("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx("open lock", &p)?;
        // SAFETY: the descriptor is valid for the call.
        let rc = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        if rc != 0 {
            return Err(Error::Busy(self.root.clone()));
        }
        Ok(LocationLock { _file: file })
    }

    /// Checks that the root and its marker are still there and name this location.
    pub fn verify_marker(&self) -> Result<()> {
        match read_marker(&self.root)? {
            Some(uuid) if uuid == self.row.uuid => Ok(()),
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
    _file: std::fs::File,
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
    let p = root.join(FERRY_DIR).join(MARKER);
    match std::fs::read_to_string(&p) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx("read marker", p),
    }
}

fn write_marker(root: &Path, uuid: &str) -> Result<()> {
    let dir = root.join(FERRY_DIR);
    std::fs::create_dir_all(&dir).ctx("create", &dir)?;
    let p = dir.join(MARKER);
    let tmp = dir.join(format!("{MARKER}.tmp"));
    std::fs::write(&tmp, format!("{uuid}\n")).ctx("write marker", &tmp)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .ctx("fsync marker", &tmp)?;
    std::fs::rename(&tmp, &p).ctx("install marker", &p)?;
    Ok(())
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
    let root = canonical_root(root)?;
    let marker = read_marker(&root)?;
    if let Some(row) = index.location_by_root(&root)? {
        match marker {
            Some(m) if m == row.uuid => return Ok(Location { row, root }),
            Some(m) => {
                return Err(Error::Location {
                    root,
                    reason: format!("marker names location {m}, the index expects {}", row.uuid),
                })
            }
            None if reinit => {
                let paths: Vec<_> = index.entries(row.id)?.into_iter().map(|e| e.path).collect();
                index.forget_entries(row.id, &paths)?;
                write_marker(&root, &row.uuid)?;
                return Ok(Location { row, root });
            }
            None => return Err(missing_marker(&root)),
        }
    }
    let uuid = match marker {
        Some(m) => m,
        None => {
            let u = uuid::Uuid::new_v4().to_string();
            write_marker(&root, &u)?;
            u
        }
    };
    let replica_id = replica_id_of(&uuid);
    let row = index.insert_location(&uuid, &root, replica_id)?;
    Ok(Location { row, root })
}

/// Replica ID used in version vectors: the first 8 bytes of BLAKE3(location ID).
fn replica_id_of(uuid: &str) -> u64 {
    let h = blake3::hash(uuid.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(b) & (i64::MAX as u64)
}
