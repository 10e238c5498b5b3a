//! The daemon's error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Core(#[from] ferry_core::Error),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a ferry daemon is already running for this library ({0})")]
    AlreadyRunning(PathBuf),
    #[error("no share {0} on this device; see `ferry share list`")]
    NoShare(String),
    #[error("share {0} has no member that accepted it yet")]
    NoMembers(String),
    #[cfg(feature = "net")]
    #[error("device node: {0}")]
    Net(#[from] ferry_net::NetError),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = DaemonError> = std::result::Result<T, E>;

pub(crate) fn io_err(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> DaemonError {
    let path = path.into();
    move |source| DaemonError::Io {
        action,
        path,
        source,
    }
}
