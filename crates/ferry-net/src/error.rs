//! Typed errors of ferry-net, one enum per concern so callers can match on what went
//! wrong (a mistyped device ID, an exposed key, a peer speaking garbage).

use std::path::PathBuf;

/// Reading or writing this device's key, or parsing a device ID.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("a device ID has 56 letters and digits (8 groups of 7), not {0}")]
    BadLength(usize),
    #[error("{0:?} cannot be in a device ID (letters A-Z and digits 2-7 only)")]
    BadCharacter(char),
    #[error("device ID group {group} fails its check character: a letter is mistyped")]
    BadCheck { group: usize },
    #[error("that device ID is not a valid public key")]
    NotAKey,
    #[error("{path}: readable by others (mode {mode:o}); run `chmod 600 {path}` if it is yours, or remove it to make a new device ID")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{0}: owned by another user; refusing to use it as this device's key")]
    NotOwned(PathBuf),
    #[error("{0}: not a regular file")]
    NotAFile(PathBuf),
    #[error(
        "{0}: not a device key (64 hex digits expected); move it aside to make a new device ID"
    )]
    Corrupt(PathBuf),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The known and pending devices store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("devices store {path}: {source}")]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("create {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no device {0:?} (give its ID or name; see `ferry device list`)")]
    NotFound(String),
    #[error("{name:?} names {count} devices; give the device ID instead")]
    Ambiguous { name: String, count: usize },
    #[error("the name {0:?} is taken by another device")]
    NameTaken(String),
    #[error("stored device ID {0:?} is invalid")]
    BadId(String),
    #[error("stored bandwidth limit of device {id}: {source}")]
    BadLimit {
        id: String,
        #[source]
        source: ferry_core::bandwidth::BandwidthError,
    },
}

/// Encoding and decoding framed messages.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge { len: u64, max: u32 },
    #[error("malformed message: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("message has no known body (a newer peer?)")]
    Empty,
    #[error("expected {expected}, got {got}")]
    Unexpected {
        expected: &'static str,
        got: &'static str,
    },
    #[error("stream ended inside a frame")]
    Truncated,
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    #[error("a message that cannot be true: {0}")]
    Invalid(String),
}

/// Starting the node, dialing and accepting devices.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("bind {addr}: {message}")]
    Bind { addr: String, message: String },
    #[error("relay URL {url:?}: {message}")]
    Relay { url: String, message: String },
    #[error("connect to {device}: {message}")]
    Connect { device: String, message: String },
    #[error("{device} refused the connection: {reason} (code {code})")]
    Refused {
        device: String,
        code: u64,
        reason: String,
    },
    #[error("connection to {device}: {message}")]
    Connection { device: String, message: String },
    #[error("{device} speaks protocol version {theirs}; this device speaks {ours}")]
    Incompatible {
        device: String,
        theirs: u32,
        ours: u32,
    },
    #[error("{device} did not say hello in time")]
    Timeout { device: String },
    #[error("device {0} has no address to dial")]
    NoAddress(String),
    #[error("shared folder: {0}")]
    Share(String),
    /// The device sent something that cannot be true (an entry escaping the folder, an
    /// impossible state): the connection is closed, nothing of it is stored.
    #[error("the device sent something that cannot be true: {0}")]
    Lie(String),
}
