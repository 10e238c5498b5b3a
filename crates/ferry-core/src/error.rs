//! The library's error type: every failure names what was being done and to which path.

use std::path::PathBuf;

/// Errors from ferry-core. Each I/O failure carries the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure. The path is shown with bytes that are not UTF-8 as `\xNN`
    /// (`rel_path::escape_os`).
    #[error("{action} {}: {source}", crate::model::rel_path::escape_os(path))]
    Io {
        /// What was being done (`open`, `read`, `rename`…).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The index database failed (SQLite).
    #[error("index database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A path from outside (a peer, a row, the user) that is not a valid relative path.
    #[error("invalid path \"{path}\": {reason}")]
    InvalidPath {
        /// The path, for people (bytes that are not UTF-8 shown as `\xNN`).
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A location cannot be used as it is (root or marker missing, a copied folder…).
    #[error("location {root}: {reason}")]
    Location {
        /// The location's root.
        root: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// Another ferry process holds a location's lock; try again later.
    #[error("another ferry process is working on {}; try again when it is done", .0.display())]
    Busy(PathBuf),
    /// A safety stop: the run would do something ferry does not do unasked.
    #[error("refusing to run: {0}")]
    Refused(String),
    /// The disk changed since the scan (a racing edit, a file that vanished): the path
    /// was left alone and syncs after the next scan.
    #[error("{0}")]
    Changed(String),
    /// Content needed for a copy is on no source that could be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Asked for something not built yet (selective mode).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An index row ferry cannot read (an unknown name, a broken value).
    #[error("corrupt index data: {0}")]
    Corrupt(String),
    /// The library folder or its index cannot be used as it is.
    #[error("library {}: {reason}", crate::model::rel_path::escape_os(path))]
    Library {
        /// The library folder or index file.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// The caller asked the work to stop (see `cancel`), and it did at a safe point.
    #[error("interrupted")]
    Interrupted,
    /// Anything else, said in words.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// SQLite found the index file not to be a database, or damaged.
    pub fn is_corrupt_index(&self) -> bool {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        match self {
            Error::Db(e) => matches!(
                e.sqlite_error_code(),
                Some(DatabaseCorrupt) | Some(NotADatabase)
            ),
            _ => false,
        }
    }

    /// A stable, machine-readable name for the kind of failure (the `kind` of a
    /// `--json` error object).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Db(_) => "index",
            Error::InvalidPath { .. } => "invalid_path",
            Error::Location { .. } => "location",
            Error::Busy(_) => "busy",
            Error::Refused(_) => "refused",
            Error::Changed(_) => "changed",
            Error::Unavailable(_) => "unavailable",
            Error::Unsupported(_) => "unsupported",
            Error::Corrupt(_) => "corrupt_index",
            Error::Library { .. } => "library",
            Error::Interrupted => "interrupted",
            Error::Other(_) => "other",
        }
    }
}

/// Result alias used across ferry-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Extension to attach an action and a path to an `io::Result`.
pub trait IoContext<T> {
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            action,
            path: path.into(),
            source,
        })
    }
}
