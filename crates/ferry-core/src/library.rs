//! The library: one device's ferry home (`$FERRY_HOME`, else `$XDG_DATA_HOME/ferry`,
//! else `~/.local/share/ferry`) holding `index.db`.
//!
//! The path is always absolute: a relative `FERRY_HOME` would name a different library
//! in every working directory, so it is taken from the current directory once and the
//! CLI says which folder that is ([`relative_home`]). Commands that only read open the
//! index with [`open_existing_index`], which creates nothing where there is no library.

use crate::error::{Error, IoContext, Result};
use crate::index::Index;
use std::path::{Path, PathBuf};

/// Where this device's library lives (absolute).
pub fn library_dir() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("FERRY_HOME").filter(|v| !v.is_empty()) {
        return absolute(PathBuf::from(home));
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return absolute(PathBuf::from(xdg).join("ferry"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => absolute(PathBuf::from(home).join(".local/share/ferry")),
        None => Err(Error::Other(
            "cannot find a library folder: set FERRY_HOME or HOME".into(),
        )),
    }
}

/// `$FERRY_HOME` when it is set to a relative path, with the absolute folder it stands
/// for: worth telling the user, since another working directory would mean another
/// library.
pub fn relative_home() -> Option<(PathBuf, PathBuf)> {
    let home = PathBuf::from(std::env::var_os("FERRY_HOME").filter(|v| !v.is_empty())?);
    if home.is_absolute() {
        return None;
    }
    let abs = absolute(home.clone()).ok()?;
    Some((home, abs))
}

fn absolute(p: PathBuf) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p);
    }
    std::path::absolute(&p).ctx("make absolute", &p)
}

/// Opens (creating if needed) the library's index.
pub fn open_index() -> Result<Index> {
    let dir = library_dir()?;
    check_folder(&dir)?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::Library {
        path: dir.clone(),
        reason: format!("cannot create the library folder: {e}{}", set_by()),
    })?;
    open_at(&dir.join("index.db"))
}

/// Opens the library's index where it exists, creating nothing: the index if there is
/// one, else an empty one in memory (no library folder, no file). For commands that
/// only read (`status`, `history`, listings) and for dry runs.
pub fn open_existing_index() -> Result<Index> {
    let dir = library_dir()?;
    check_folder(&dir)?;
    let path = dir.join("index.db");
    if path.try_exists().ctx("look for the index", &path)? {
        open_at(&path)
    } else {
        Index::open_in_memory()
    }
}

/// Where the library folder is taken from, for messages.
fn set_by() -> &'static str {
    if std::env::var_os("FERRY_HOME").is_some_and(|v| !v.is_empty()) {
        " (set by FERRY_HOME)"
    } else {
        ""
    }
}

/// The library folder must be a folder (or not exist yet): a file there is named as
/// such instead of surfacing as "File exists" from a failed create.
fn check_folder(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(Error::Library {
            path: dir.to_path_buf(),
            reason: format!(
                "is a file, not a folder{}; point it at a folder (ferry creates it)",
                set_by()
            ),
        }),
        _ => Ok(()),
    }
}

/// Opens an existing or new index file; a damaged one is named with what to do.
fn open_at(path: &Path) -> Result<Index> {
    Index::open(path).map_err(|e| {
        if e.is_corrupt_index() {
            Error::Library {
                path: path.to_path_buf(),
                reason: format!("{e}; {}", corrupt_index_advice(path)),
            }
        } else {
            e
        }
    })
}

/// What to do with an index that SQLite cannot read.
pub fn corrupt_index_advice(path: &Path) -> String {
    format!(
        "the index is damaged. Your folders are not touched by this. To start a fresh \
         index, move it aside (mv {p} {p}.broken) and run `ferry sync A B` again for \
         each pair: each folder keeps its .ferry marker and version store; files equal on \
         both sides are matched, files that differ are handled as conflicts (newest wins, \
         the other is kept as a version), a file deleted on one side since the last sync \
         comes back, and conduit settings and history start over",
        p = crate::model::rel_path::escape_os(path)
    )
}
