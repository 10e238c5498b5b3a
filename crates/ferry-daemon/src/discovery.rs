//! How clients find and authenticate to a running daemon: the API token
//! (`$FERRY_HOME/api-token`, mode 0600, created once) and `$FERRY_HOME/daemon.json`
//! (port and pid, written at start, removed at a clean stop).

use crate::error::{io_err, DaemonError, Result};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const TOKEN_FILE: &str = "api-token";
pub const INFO_FILE: &str = "daemon.json";

/// What `daemon.json` holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DaemonInfo {
    pub pid: u32,
    pub port: u16,
    pub started_at: i64,
    pub version: String,
}

/// Reads the library's API token, creating it (random, mode 0600) on first use.
pub fn load_or_create_token(library: &Path) -> Result<String> {
    let p = library.join(TOKEN_FILE);
    if let Some(t) = read_token(library)? {
        return Ok(t);
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let tmp = library.join(format!("{TOKEN_FILE}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    f.write_all(format!("{token}\n").as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io_err("write", &tmp))?;
    std::fs::rename(&tmp, &p).map_err(io_err("install", &p))?;
    Ok(token)
}

/// The library's API token, if one was made.
pub fn read_token(library: &Path) -> Result<Option<String>> {
    let p = library.join(TOKEN_FILE);
    match std::fs::read_to_string(&p) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", &p)(e)),
    }
}

pub fn info_path(library: &Path) -> PathBuf {
    library.join(INFO_FILE)
}

pub fn write_info(library: &Path, info: &DaemonInfo) -> Result<()> {
    let p = info_path(library);
    let tmp = library.join(format!("{INFO_FILE}.tmp"));
    let text = serde_json::to_string_pretty(info).map_err(|e| DaemonError::Other(e.to_string()))?;
    std::fs::write(&tmp, text).map_err(io_err("write", &tmp))?;
    std::fs::rename(&tmp, &p).map_err(io_err("install", &p))
}

/// The daemon's `daemon.json`, if present and readable (it may be stale: a daemon
/// killed with -9 leaves it behind; clients check by connecting).
pub fn read_info(library: &Path) -> Option<DaemonInfo> {
    let text = std::fs::read_to_string(info_path(library)).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn remove_info(library: &Path) {
    let _ = std::fs::remove_file(info_path(library));
}

/// Held while a daemon runs on a library: one daemon per library.
pub struct DaemonLock {
    _file: std::fs::File,
}

pub fn lock_library(library: &Path) -> Result<DaemonLock> {
    let p = library.join("daemon.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(io_err("open", &p))?;
    // SAFETY: the descriptor is valid for the call.
    let rc = unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    };
    if rc != 0 {
        return Err(DaemonError::AlreadyRunning(library.to_path_buf()));
    }
    Ok(DaemonLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn token_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let t = load_or_create_token(dir.path()).unwrap();
        assert_eq!(t.len(), 64);
        assert_eq!(load_or_create_token(dir.path()).unwrap(), t);
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn one_daemon_per_library() {
        let dir = tempfile::tempdir().unwrap();
        let _held = lock_library(dir.path()).unwrap();
        assert!(matches!(
            lock_library(dir.path()),
            Err(DaemonError::AlreadyRunning(_))
        ));
    }
}
