use super::share_keys::Epoch;

/// Why a key, slot, object or manifest could not be made or opened.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the operating system's random source failed")]
    Random,
    #[error("sealed data is truncated")]
    Truncated,
    #[error("unknown sealed format {0} (written by a newer ferry?)")]
    UnknownFormat(u8),
    #[error("unknown flags {0:#04x} in a sealed header")]
    UnknownFlags(u8),
    #[error("sealed under key epoch {sealed}, but the keys given are for epoch {keys}")]
    EpochMismatch { sealed: Epoch, keys: Epoch },
    #[error("keys of share {sealed:?} offered for share {keys:?}")]
    ShareMismatch { sealed: String, keys: String },
    #[error("no keys for epoch {0} in this key ring")]
    UnknownEpoch(Epoch),
    /// The data key does not unwrap: the object was sealed under other keys (another
    /// share), or header bytes 0..78 (format, epoch, flags, key nonce, wrapped key) were
    /// altered.
    #[error("the object's data key does not unwrap with these keys (another share's object, or an altered header)")]
    WrongKey,
    /// The body does not authenticate: an altered body or body nonce, or an object
    /// stored under another object's ID (or a manifest under another version).
    #[error("sealed data failed authentication (altered, or swapped for another object)")]
    Tampered,
    #[error("sealed data authenticated but its padding is malformed")]
    BadPadding,
    #[error("sealed data authenticated but does not decompress")]
    Decompress,
    #[error("plaintext larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("compression failed")]
    Compress,
    #[error("this key slot is not for this device")]
    NotForThisDevice,
    #[error("wrong passphrase")]
    WrongPassphrase,
    #[error("this key slot is a {actual} slot, not a {wanted} slot")]
    WrongSlotKind {
        wanted: &'static str,
        actual: &'static str,
    },
    #[error("malformed key slot: {0}")]
    MalformedSlot(&'static str),
    #[error("invalid passphrase parameters: {0}")]
    BadParams(String),
    #[error("invalid device key: {0}")]
    BadDeviceKey(&'static str),
    #[error("malformed object ID")]
    BadObjectId,
    #[error("key epoch counter exhausted")]
    EpochOverflow,
}
