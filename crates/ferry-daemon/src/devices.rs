//! The device node beside the sync service: started by `ferry daemon --listen` when
//! built with the `net` feature, stopped with the daemon. The API's `GET /api/devices`
//! shows its live view (connected, path, RTT); without a node it answers 404 and the
//! CLI falls back to the stored list.

use crate::error::{DaemonError, Result};
use crate::service::NetOptions;
use crate::shared::Shared;
use std::sync::Arc;

/// Starts the node if asked for. A member device's changed entries queue a run of the
/// share's conduit.
#[cfg(feature = "net")]
pub async fn start(shared: &Arc<Shared>, opts: Option<&NetOptions>) -> Result<()> {
    let Some(opts) = opts else {
        return Ok(());
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let s = shared.clone();
    tokio::spawn(async move {
        while let Some(conduit) = rx.recv().await {
            if let Err(e) = crate::control::sync_now(&s, conduit).await {
                tracing::info!("conduit {conduit}: a device's changes arrived; not run: {e}");
            }
        }
    });
    #[cfg(feature = "hub")]
    {
        let hub = ferry_hub::client::HubClient::start(&shared.library, Some(tx.clone()))
            .await
            .map_err(|e| DaemonError::Other(format!("starting the hub client: {e}")))?;
        let _ = shared.hub.set(hub);
    }
    let node = ferry_net::Node::start(ferry_net::NodeConfig {
        home: shared.library.clone(),
        listen: opts.listen,
        relay: opts.relay.clone(),
        device_name: ferry_net::host_name(),
        changes: Some(tx),
        local_discovery: opts.local_discovery,
    })
    .await
    .map_err(|e| DaemonError::Other(format!("starting the device node: {e}")))?;
    let addrs: Vec<String> = node.local_addrs().iter().map(|a| a.to_string()).collect();
    eprintln!(
        "ferry daemon: device {} listening on UDP {}",
        node.id(),
        addrs.join(", ")
    );
    let _ = shared.node.set(node);
    announce_connections(shared.clone());
    Ok(())
}

/// Puts the node's connection changes on the daemon's event stream.
#[cfg(feature = "net")]
fn announce_connections(shared: Arc<Shared>) {
    use crate::events::DaemonEvent;
    use ferry_net::NodeEvent;
    use tokio::sync::broadcast::error::RecvError;
    let Some(mut rx) = shared.node.get().map(|n| n.events()) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            let e = match rx.recv().await {
                Ok(e) => e,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            };
            shared.emit(match e {
                NodeEvent::Connected { device, relayed } => DaemonEvent::DeviceConnected {
                    device: device.to_string(),
                    path: Some(if relayed { "relayed" } else { "direct" }.to_string()),
                },
                NodeEvent::Disconnected { device } => DaemonEvent::DeviceDisconnected {
                    device: device.to_string(),
                },
                NodeEvent::Refused { device } => DaemonEvent::DevicePending {
                    device: device.to_string(),
                },
            });
        }
    });
}

#[cfg(not(feature = "net"))]
pub async fn start(_shared: &Arc<Shared>, opts: Option<&NetOptions>) -> Result<()> {
    match opts {
        None => Ok(()),
        Some(_) => Err(DaemonError::Other(
            "this ferry was built without devices (the `net` feature); --listen is not available"
                .into(),
        )),
    }
}

/// Where a run of `conduit` reads another device's content, when the conduit is a
/// share's: that device when it is connected, else the share's hub when connected.
pub async fn pull_source(shared: &Shared, conduit: i64) -> Option<ferry_core::PullSource> {
    #[cfg(feature = "net")]
    if let Some(node) = shared.node.get() {
        if let Some(content) = node.content_for(conduit).await {
            return Some(ferry_core::PullSource(Arc::new(content)));
        }
    }
    #[cfg(feature = "hub")]
    if let Some(hub) = shared.hub.get() {
        let content = hub.content_for(conduit).await?;
        return Some(ferry_core::PullSource(Arc::new(content)));
    }
    #[cfg(not(feature = "net"))]
    let _ = (shared, conduit);
    None
}

/// A run ended: what it changed in a shared folder is announced to the other devices
/// now, not at the node's next tick.
pub fn run_ended(shared: &Shared) {
    #[cfg(feature = "net")]
    if let Some(node) = shared.node.get() {
        node.local_change();
    }
    #[cfg(not(feature = "net"))]
    let _ = shared;
}

/// Closes the node's connections politely.
pub async fn stop(shared: &Shared) {
    #[cfg(feature = "hub")]
    if let Some(hub) = shared.hub.get() {
        hub.shutdown().await;
    }
    #[cfg(feature = "net")]
    if let Some(node) = shared.node.get() {
        node.shutdown().await;
    }
    #[cfg(not(feature = "net"))]
    let _ = shared;
}

/// This device's node as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeView {
    pub device_id: String,
    /// The UDP addresses it is bound to.
    pub listen: Vec<String>,
}

/// `GET /api/devices`: the node and every known and pending device with live state.
#[cfg(feature = "net")]
#[derive(Debug, Clone, serde::Serialize)]
pub struct DevicesView {
    pub node: NodeView,
    pub devices: Vec<ferry_net::DeviceStatus>,
}

/// The live device list, or `None` without a node.
#[cfg(feature = "net")]
pub fn listing(shared: &Shared) -> Result<Option<DevicesView>> {
    let Some(node) = shared.node.get() else {
        return Ok(None);
    };
    let devices = node
        .statuses()
        .map_err(|e| DaemonError::Other(e.to_string()))?;
    Ok(Some(DevicesView {
        node: NodeView {
            device_id: node.id().to_string(),
            listen: node.local_addrs().iter().map(|a| a.to_string()).collect(),
        },
        devices,
    }))
}

/// The device list: live from the node when one runs, else the stored one (nothing
/// connected). The node's view is `None` without one.
#[cfg(feature = "net")]
pub fn any_listing(shared: &Shared) -> Result<(Option<NodeView>, Vec<ferry_net::DeviceStatus>)> {
    if let Some(v) = listing(shared)? {
        return Ok((Some(v.node), v.devices));
    }
    let rows = ferry_net::status::offline(&shared.library)
        .map_err(|e| DaemonError::Other(e.to_string()))?;
    Ok((None, rows))
}

/// What a device is in a share listing: its name (from the devices store) and whether
/// it is connected now.
#[derive(Debug, Clone, Default)]
pub struct DeviceFacts {
    pub name: Option<String>,
    pub connected: bool,
}

/// A share's member device.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemberView {
    pub device: String,
    pub name: Option<String>,
    /// Connected to this device now (always `false` without a running node).
    pub connected: bool,
    /// It accepted the share and said which folder holds it.
    pub joined: bool,
    /// The conduit between this device's folder and its copy, once joined.
    pub conduit: Option<i64>,
}

/// One of this device's shares.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShareView {
    pub id: String,
    pub folder: std::path::PathBuf,
    pub mode: ferry_core::plan::SyncMode,
    pub conflict_policy: ferry_core::plan::ConflictPolicy,
    /// The device that offered it (`None`: this device made it).
    pub offered_by: Option<String>,
    pub offered_by_name: Option<String>,
    pub members: Vec<MemberView>,
}

/// A share another device offered to this one, waiting to be accepted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OfferView {
    pub share: String,
    pub device: String,
    pub name: Option<String>,
    /// The folder's name on the offering device (a suggestion).
    pub folder_name: String,
    pub mode: ferry_core::plan::SyncMode,
    pub conflict_policy: ferry_core::plan::ConflictPolicy,
    pub received_at: i64,
}

/// `GET /api/shares` and `ferry status`: shares with their members, and offers.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SharesView {
    pub shares: Vec<ShareView>,
    pub offers: Vec<OfferView>,
}

impl SharesView {
    pub fn is_empty(&self) -> bool {
        self.shares.is_empty() && self.offers.is_empty()
    }
}

/// The shares in `index`, each device described by `facts`.
pub fn shares_view(
    index: &ferry_core::index::Index,
    facts: &dyn Fn(&str) -> DeviceFacts,
) -> ferry_core::Result<SharesView> {
    let mut shares = Vec::new();
    for s in index.shares()? {
        let folder = index.location(s.location_id)?.root;
        let members = (index.share_members(&s.id)?.into_iter())
            .map(|m| {
                let f = facts(&m.device);
                MemberView {
                    name: f.name,
                    connected: f.connected,
                    joined: m.remote_location.is_some(),
                    conduit: m.conduit_id,
                    device: m.device,
                }
            })
            .collect();
        shares.push(ShareView {
            offered_by_name: s.offered_by.as_deref().and_then(|d| facts(d).name),
            id: s.id,
            folder,
            mode: s.mode,
            conflict_policy: s.conflict_policy,
            offered_by: s.offered_by,
            members,
        });
    }
    let offers = (index.offers()?.into_iter())
        .map(|o| OfferView {
            name: facts(&o.device).name,
            share: o.share_id,
            device: o.device,
            folder_name: o.folder_name,
            mode: o.mode,
            conflict_policy: o.conflict_policy,
            received_at: o.received_at,
        })
        .collect();
    Ok(SharesView { shares, offers })
}

/// Names and connection state of devices, from the running node (or the devices store
/// of `library` without one); empty without the `net` feature.
pub fn device_facts(
    shared: Option<&Shared>,
    library: &std::path::Path,
) -> std::collections::HashMap<String, DeviceFacts> {
    #[cfg_attr(not(feature = "net"), allow(unused_mut))]
    let mut out = std::collections::HashMap::new();
    #[cfg(feature = "net")]
    {
        let rows = match shared.and_then(|s| s.node.get()) {
            Some(node) => node.statuses().map_err(|e| e.to_string()),
            None => ferry_net::status::offline(library).map_err(|e| e.to_string()),
        };
        match rows {
            Ok(rows) => {
                for r in rows {
                    out.insert(
                        r.id.to_string(),
                        DeviceFacts {
                            name: r.name,
                            connected: r.connected,
                        },
                    );
                }
            }
            Err(e) => tracing::warn!("reading devices: {e}"),
        }
    }
    #[cfg(not(feature = "net"))]
    let _ = (shared, library);
    out
}

/// The daemon's view of its shares (live connection state when a node runs).
pub fn shares(shared: &Shared) -> Result<SharesView> {
    let facts = device_facts(Some(shared), &shared.library);
    let lookup = |d: &str| facts.get(d).cloned().unwrap_or_default();
    shared.with_index(|i| shares_view(i, &lookup))
}

/// Why a device could not be trusted or removed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// A malformed ID, this device's own ID, a name taken.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Other(String),
}

/// A device that was trusted: it, and whether it was pending (asked to connect).
#[cfg(feature = "net")]
#[derive(Debug, Clone, serde::Serialize)]
pub struct Trusted {
    pub device: ferry_net::DeviceStatus,
    pub accepted_pending: bool,
}

/// Trusts device `id` (as `ferry device add`): adds it, or accepts it when pending.
/// The node dials it (or lets it in) within a second.
#[cfg(feature = "net")]
pub fn trust(
    library: &std::path::Path,
    id: &str,
    name: Option<&str>,
    addresses: &[String],
) -> std::result::Result<Trusted, DeviceError> {
    let id: ferry_net::DeviceId = id
        .trim()
        .parse()
        .map_err(|e| DeviceError::Invalid(format!("{:?} is not a device ID: {e}", id.trim())))?;
    for a in addresses {
        if a.parse::<std::net::SocketAddr>().is_err() {
            return Err(DeviceError::Invalid(format!(
                "{a:?} is not an address: give HOST:PORT with an IP address, e.g. 192.168.1.20:22100"
            )));
        }
    }
    let me = ferry_net::Identity::load_or_create(library)
        .map_err(|e| DeviceError::Other(format!("this device's key: {e}")))?;
    if id == me.id() {
        return Err(DeviceError::Invalid(format!(
            "{id} is this device's own ID; add the ID of another device"
        )));
    }
    let mut store =
        ferry_net::DeviceStore::open(library).map_err(|e| DeviceError::Other(e.to_string()))?;
    let pending = store
        .pending()
        .map_err(|e| DeviceError::Other(e.to_string()))?;
    let accepted_pending = pending.iter().any(|p| p.id == id);
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    let added = store
        .add(id, name, addresses, ferry_core::index::unix_now())
        .map_err(|e| match e {
            ferry_net::StoreError::NameTaken(_) => DeviceError::Invalid(e.to_string()),
            e => DeviceError::Other(e.to_string()),
        })?;
    Ok(Trusted {
        device: ferry_net::DeviceStatus::known(&added),
        accepted_pending,
    })
}

/// A device no longer trusted: its ID, name, and whether it was known or pending.
#[cfg(feature = "net")]
#[derive(Debug, Clone, serde::Serialize)]
pub struct Untrusted {
    pub id: ferry_net::DeviceId,
    pub name: Option<String>,
    pub state: ferry_net::DeviceState,
}

/// Stops trusting a known device, or forgets a pending one (by ID or name). The node
/// disconnects it within a second.
#[cfg(feature = "net")]
pub fn untrust(
    library: &std::path::Path,
    id_or_name: &str,
) -> std::result::Result<Untrusted, DeviceError> {
    let not_found = || DeviceError::NotFound(format!("no device {id_or_name:?}"));
    let Some(mut store) = ferry_net::DeviceStore::open_existing(library)
        .map_err(|e| DeviceError::Other(e.to_string()))?
    else {
        return Err(not_found());
    };
    match store.remove(id_or_name) {
        Ok(ferry_net::Removed::Known(k)) => Ok(Untrusted {
            id: k.id,
            name: k.name,
            state: ferry_net::DeviceState::Known,
        }),
        Ok(ferry_net::Removed::Pending(p)) => Ok(Untrusted {
            id: p.id,
            name: p.name,
            state: ferry_net::DeviceState::Pending,
        }),
        Err(ferry_net::StoreError::NotFound(_)) => Err(not_found()),
        Err(e @ ferry_net::StoreError::Ambiguous { .. }) => {
            Err(DeviceError::Invalid(e.to_string()))
        }
        Err(e) => Err(DeviceError::Other(e.to_string())),
    }
}

/// Declines the open offers of a share (as `ferry share decline`).
pub async fn decline_share(
    shared: &Arc<Shared>,
    share_id: &str,
) -> std::result::Result<(), crate::control::ControlError> {
    use crate::control::ControlError;
    let (id, s) = (share_id.to_string(), shared.clone());
    let declined = tokio::task::spawn_blocking(move || s.with_index(|i| i.decline_offers(&id)))
        .await
        .map_err(|e| ControlError::Daemon(format!("the request's task failed: {e}")))??;
    if !declined {
        return Err(ControlError::Missing(format!(
            "no open offer of share {share_id}"
        )));
    }
    Ok(())
}

/// Accepts share `share_id`'s offer into `folder` (absolute; created if missing, its
/// parent must exist), as `ferry accept`; the supervisor starts its conduit at once.
pub async fn accept_share(
    shared: &Arc<Shared>,
    share_id: &str,
    folder: &str,
) -> std::result::Result<ShareView, crate::control::ControlError> {
    use crate::control::ControlError;
    let folder = folder.trim();
    if folder.is_empty() || !std::path::Path::new(folder).is_absolute() {
        return Err(ControlError::Invalid(format!(
            "give the folder to accept the share into as an absolute path (got {folder:?})"
        )));
    }
    let (id, dir) = (share_id.to_string(), std::path::PathBuf::from(folder));
    let s = shared.clone();
    let accepted = tokio::task::spawn_blocking(move || {
        s.with_index(|i| {
            if i.share(&id)?.is_none() && !i.offers()?.iter().any(|o| o.share_id == id) {
                return Ok(None);
            }
            ferry_core::share::accept_offer(i, &id, &dir).map(Some)
        })
    })
    .await
    .map_err(|e| ControlError::Daemon(format!("the request's task failed: {e}")))?;
    let accepted = accepted?;
    let Some(row) = accepted else {
        return Err(ControlError::Missing(format!(
            "no device has offered share {share_id}"
        )));
    };
    crate::control::reload_now(shared).await;
    let view = shares(shared).map_err(|e| ControlError::Daemon(e.to_string()))?;
    view.shares
        .into_iter()
        .find(|s| s.id == row.id)
        .ok_or_else(|| ControlError::Daemon("the accepted share vanished".into()))
}

/// Every hub this device knows (`ferry hub add`): connected or not, where, last contact,
/// its shares through it with the bytes the hub stores for each and the hub's quota,
/// bytes sent and received. Empty without the `hub` feature.
pub fn hubs(shared: &Shared) -> Vec<serde_json::Value> {
    #[cfg(feature = "hub")]
    {
        let rows = match shared.hub.get() {
            Some(client) => client.status().unwrap_or_default(),
            // No device node, so no hub client: the known hubs, none connected.
            None => ferry_hub::client::HubBook::open(&shared.library)
                .and_then(|b| {
                    let hubs = b.hubs()?;
                    let mut out = Vec::new();
                    for h in hubs {
                        let shares = b.shares_of(&h.id)?;
                        out.push(ferry_hub::client::HubStatus {
                            addrs: h.addrs().into_iter().map(str::to_string).collect(),
                            id: h.id,
                            connected: false,
                            address: None,
                            last_contact: None,
                            shares: (shares.into_iter())
                                .map(|share| ferry_hub::client::HubShareStatus {
                                    share,
                                    stored_bytes: None,
                                    quota: None,
                                })
                                .collect(),
                            bytes_up: 0,
                            bytes_down: 0,
                        });
                    }
                    Ok(out)
                })
                .unwrap_or_default(),
        };
        rows.into_iter()
            .map(|h| {
                serde_json::json!({
                    "id": h.id,
                    "addrs": h.addrs,
                    "connected": h.connected,
                    "address": h.address,
                    "last_contact": h.last_contact,
                    "shares": h.shares.iter().map(|s| serde_json::json!({
                        "share": s.share,
                        "stored_bytes": s.stored_bytes,
                        "quota": s.quota,
                    })).collect::<Vec<_>>(),
                    "quota_used": h.shares.iter().filter_map(|s| s.stored_bytes).sum::<u64>(),
                    "bytes_up": h.bytes_up,
                    "bytes_down": h.bytes_down,
                })
            })
            .collect()
    }
    #[cfg(not(feature = "hub"))]
    {
        let _ = shared;
        Vec::new()
    }
}
