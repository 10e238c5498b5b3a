//! The library: one device's ferry home (`$FERRY_HOME`, else `$XDG_DATA_HOME/ferry`,
//! else `~/.local/share/ferry`) holding `index.db`.

use crate::error::{Error, IoContext, Result};
use crate::index::Index;
use std::path::PathBuf;

/// Where this device's library lives.
pub fn library_dir() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("FERRY_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("ferry"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/ferry")),
        None => Err(Error::Other(
            "cannot find a library folder: set FERRY_HOME or HOME".into(),
        )),
    }
}

/// Opens (creating if needed) the library's index.
pub fn open_index() -> Result<Index> {
    let dir = library_dir()?;
    std::fs::create_dir_all(&dir).ctx("create library folder", &dir)?;
    Index::open(&dir.join("index.db"))
}

/// Opens the library's index for a dry run, which must not create anything: the index
/// if it exists, else an empty one in memory (no library folder, no file).
pub fn open_index_for_dry_run() -> Result<Index> {
    let path = library_dir()?.join("index.db");
    if path.try_exists().ctx("look for the index", &path)? {
        Index::open(&path)
    } else {
        Index::open_in_memory()
    }
}
