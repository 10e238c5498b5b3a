//! What `ferry device list` and the daemon's `/api/devices` show about a device: the
//! stored facts, plus the live ones (connected, path, RTT) when a node runs.

use crate::connection::PathKind;
use crate::devices::{DeviceStore, KnownDevice, PendingDevice};
use crate::error::StoreError;
use crate::identity::DeviceId;
use std::path::Path;

/// Whether the user accepted the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceState {
    Known,
    /// It tried to connect and was refused: `ferry device add` accepts it.
    Pending,
}

/// One row of the device list.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeviceStatus {
    pub id: DeviceId,
    pub name: Option<String>,
    pub state: DeviceState,
    pub connected: bool,
    /// Direct or relayed, while connected.
    pub path: Option<PathKind>,
    /// The remote address in use while connected; for a pending device, where it came from.
    pub address: Option<String>,
    /// Addresses this device dials it at.
    pub addresses: Vec<String>,
    pub rtt_ms: Option<f64>,
    /// Unix seconds (now, while connected).
    pub last_seen: Option<i64>,
    /// Why the last dial failed, while not connected.
    pub last_error: Option<String>,
    /// Refused attempts (pending devices).
    pub attempts: Option<u64>,
    /// Content moved with it since this node started (only from a running node).
    pub transfer: Option<TransferView>,
    /// Its bandwidth limit, bytes per second each way (`ferry device add
    /// --bandwidth-limit`), when one applies now.
    pub bandwidth_limit: Option<u64>,
    /// Its bandwidth schedule (`10M 09:00-18:00, 1M`), when the limit has one.
    pub bandwidth_schedule: Option<String>,
}

/// Content moved with one device since the node started, and how fast now.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct TransferView {
    /// Bytes of pieces received from it (after decompression) and verified.
    pub received_bytes: u64,
    /// The same pieces' bytes as they crossed the link.
    pub received_wire_bytes: u64,
    /// Bytes of pieces sent to it (before compression).
    pub sent_bytes: u64,
    /// The same pieces' bytes as they crossed the link.
    pub sent_wire_bytes: u64,
    /// Bytes compression saved, both directions.
    pub saved_by_compression: u64,
    /// Piece bytes received per second, over the last second or so.
    pub receive_rate: f64,
    /// Piece bytes sent per second, over the last second or so.
    pub send_rate: f64,
    /// Whether pieces sent to it are compressed now (only while the link is slower
    /// than zstd here); `None` before any was sent.
    pub compressing: Option<bool>,
}

impl DeviceStatus {
    /// Shows `limit`: the rate that applies now, and the schedule if it has one.
    pub fn show_limit(&mut self, limit: Option<&ferry_core::bandwidth::BandwidthLimit>) {
        let Some(limit) = limit else {
            return;
        };
        let now = limit.rate_at(ferry_core::bandwidth::local_minute());
        self.bandwidth_limit = (now != 0).then_some(now);
        self.bandwidth_schedule = limit.is_scheduled().then(|| limit.to_string());
    }

    pub fn known(k: &KnownDevice) -> DeviceStatus {
        DeviceStatus {
            id: k.id,
            name: k.name.clone(),
            state: DeviceState::Known,
            connected: false,
            path: None,
            address: None,
            addresses: k.addresses.clone(),
            rtt_ms: None,
            last_seen: k.last_seen,
            last_error: None,
            attempts: None,
            transfer: None,
            bandwidth_limit: None,
            bandwidth_schedule: None,
        }
    }

    pub fn pending(p: &PendingDevice) -> DeviceStatus {
        DeviceStatus {
            id: p.id,
            name: p.name.clone(),
            state: DeviceState::Pending,
            connected: false,
            path: None,
            address: p.address.clone(),
            addresses: Vec::new(),
            rtt_ms: None,
            last_seen: Some(p.last_seen),
            last_error: None,
            attempts: Some(p.attempts),
            transfer: None,
            bandwidth_limit: None,
            bandwidth_schedule: None,
        }
    }
}

/// The list from the store alone (no node running): nothing is connected.
pub fn offline(home: &Path) -> Result<Vec<DeviceStatus>, StoreError> {
    let Some(store) = DeviceStore::open_existing(home)? else {
        return Ok(Vec::new());
    };
    let limits = store.bandwidth_limits()?;
    let mut out: Vec<DeviceStatus> = store.known()?.iter().map(DeviceStatus::known).collect();
    for s in &mut out {
        s.show_limit(limits.get(&s.id));
    }
    out.extend(store.pending()?.iter().map(DeviceStatus::pending));
    Ok(out)
}
