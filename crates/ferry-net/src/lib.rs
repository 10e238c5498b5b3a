//! ferry-net: devices and how they talk.
//!
//! - `identity`: this device's key pair (`$FERRY_HOME/device.key`, 0600) and the
//!   [`DeviceId`] people read aloud (Syncthing-style groups with check characters).
//! - `devices`: known and pending devices (`$FERRY_HOME/devices.db`).
//! - `wire`: prost messages in length-prefixed frames with a size cap.
//! - `handshake`: the `Hello` exchange that opens every connection.
//! - `connection`: a connection to a trusted device (RTT, direct or relayed, framed
//!   streams).
//! - `node`: the iroh endpoint (ALPN `ferry/1`, no n0 services) that accepts known
//!   devices, refuses unknown ones (recording them as pending) and keeps connections
//!   to known devices.
//! - `sharing`: shared folders: share lists and offers, index exchange (pulled in
//!   batches, announced by push), content pulled by hash ([`PeerContent`]).
//! - `transfer`: content pulled from a member: pipelined piece requests, fetched ahead
//!   within a byte budget, zstd where it pays.
//! - `status`: the device list as the CLI and the daemon's API show it.
//!
//! The engine (`ferry-core`) decides and writes; this crate carries its entries and
//! content between devices.

pub mod compress;
pub mod connection;
pub mod devices;
pub mod error;
pub mod handshake;
pub mod identity;
pub mod limit;
pub mod node;
pub mod sharing;
pub mod status;
pub mod transfer;
pub mod wire;

pub use connection::{CloseCode, Connection, FramedStream, PathKind};
pub use devices::{DeviceStore, KnownDevice, PendingDevice, Removed};
pub use error::{IdentityError, NetError, StoreError, WireError};
pub use identity::{DeviceId, Identity};
pub use node::{Node, NodeConfig, NodeEvent, ALPN, DEFAULT_PORT};
pub use status::{DeviceState, DeviceStatus, TransferView};
pub use transfer::{PeerContent, TransferStats};

/// iroh, re-exported for tests that need a raw endpoint (e.g. a misbehaving peer).
pub use iroh;

/// This machine's host name, the default device name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "ferry".to_string())
}
