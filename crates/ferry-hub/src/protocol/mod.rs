//! What devices and the hub say to each other over iroh (ALPN `ferry-hub/1`): one
//! request and one reply per QUIC stream, each a prost message in a length-prefixed
//! frame with a size cap checked before anything is allocated. The hub opens streams
//! of its own to push [`Changed`] notifications.
//!
//! Everything a device sends about a share's folder is sealed with the share's keys
//! before it is put in a message: the hub handles opaque bytes, IDs and sequence ranges.

mod frame;
mod messages;

pub use frame::{read_msg, write_msg, FrameError};
pub use messages::*;

/// The protocol name negotiated in the TLS handshake.
pub const HUB_ALPN: &[u8] = b"ferry-hub/1";
/// A connection for `Restore` only, accepted from any device.
pub const HUB_RESTORE_ALPN: &[u8] = b"ferry-hub-restore/1";

/// Largest frame either side accepts: a log batch or an object fits; a lie does not.
pub const MAX_FRAME: u32 = 8 * 1024 * 1024;

/// Largest sealed object the hub stores: a keyed chunk is at most 256 KiB, zstd may
/// add a little, padding at most 12 %, the header 118 bytes.
pub const MAX_OBJECT: usize = 320 * 1024;

/// Largest sealed log batch the hub stores.
pub const MAX_BATCH: usize = 6 * 1024 * 1024;

/// QUIC close code the hub uses for a device it does not serve.
pub const CLOSE_UNKNOWN_DEVICE: u32 = 4;
