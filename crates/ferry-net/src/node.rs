//! The node: an iroh endpoint (ALPN `ferry/1`) that accepts known devices, refuses and
//! records unknown ones, dials known devices with backoff and keeps one connection to
//! each.
//!
//! No n0 services: no pkarr/DNS address lookup and no relay unless one is configured
//! (`presets::Minimal`), so a device is reached only at the addresses the user gave
//! (or, with a relay, through the relay the user runs).

use crate::connection::{describe, CloseCode, Connection, PathKind};
use crate::devices::DeviceStore;
use crate::error::NetError;
use crate::handshake;
use crate::identity::{DeviceId, Identity};
use crate::sharing::{PeerContent, Sharing};
use crate::status::DeviceStatus;
use crate::wire::Hello;
use iroh::endpoint::presets;
use iroh::{Endpoint, EndpointAddr, RelayMap, RelayMode, RelayUrl};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The protocol name negotiated in the TLS handshake.
pub const ALPN: &[u8] = b"ferry/1";

/// Default UDP port of `ferry daemon --listen` (Syncthing uses 22000 and 21027).
pub const DEFAULT_PORT: u16 = 22100;

/// How often the dialer looks at the known devices (picking up `ferry device add`).
const TICK: Duration = Duration::from_secs(1);
/// Longest wait between two dials of an unreachable device.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often a connected device's `last_seen` is written.
const SEEN_EVERY: Duration = Duration::from_secs(30);
/// Two connections to one device younger than this are a simultaneous dial, settled by
/// a tie-break both sides agree on; an older one was lost by the remote (it dialed
/// again), so the new one replaces it.
const SIMULTANEOUS: Duration = Duration::from_secs(10);

/// How to start a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The ferry home: key and devices store.
    pub home: PathBuf,
    /// UDP address to bind, e.g. `0.0.0.0:22100` (port 0: any free port).
    pub listen: SocketAddr,
    /// A relay server (self-hosted `iroh-relay`) to use besides direct addresses.
    pub relay: Option<String>,
    /// This device's name, sent in its `Hello`.
    pub device_name: String,
    /// Receives the ID of a conduit whose member device's entries changed (a run of it
    /// is due).
    pub changes: Option<tokio::sync::mpsc::UnboundedSender<i64>>,
    /// Find known devices on the local network by mDNS (service `_ferry._udp.local`),
    /// so they need no address; this device is announced the same way.
    pub local_discovery: bool,
}

/// A running node. Dropping it stops its tasks; [`Node::shutdown`] also closes the
/// connections politely.
pub struct Node {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

struct Shared {
    endpoint: Endpoint,
    me: DeviceId,
    relay: Option<RelayUrl>,
    /// Devices are looked up by mDNS: one with no address is dialed by ID alone.
    local_discovery: bool,
    hello: Hello,
    store: Mutex<DeviceStore>,
    peers: Mutex<HashMap<DeviceId, Peer>>,
    dials: Mutex<HashMap<DeviceId, DialState>>,
    sharing: Arc<Sharing>,
    events: tokio::sync::broadcast::Sender<NodeEvent>,
    /// A local run changed a folder: the next round (announcing it) starts at once.
    nudge: tokio::sync::Notify,
}

/// A change of a device's connection, as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A known device is connected (this connection is the one kept).
    Connected { device: DeviceId, relayed: bool },
    /// The connection to a known device ended (and no other replaced it).
    Disconnected { device: DeviceId },
    /// A device that is not known tried to connect and was refused (now pending).
    Refused { device: DeviceId },
}

struct Peer {
    conn: Connection,
    dialer: DeviceId,
    since: Instant,
}

#[derive(Default)]
struct DialState {
    in_flight: bool,
    failures: u32,
    next: Option<Instant>,
    last_error: Option<String>,
}

impl Node {
    /// Loads (or creates) the identity, binds the endpoint and starts accepting and
    /// dialing. Must run inside a tokio runtime.
    pub async fn start(config: NodeConfig) -> Result<Node, NetError> {
        let identity = Identity::load_or_create(&config.home)?;
        let store = DeviceStore::open(&config.home)?;
        let relay = match &config.relay {
            Some(url) => Some(url.parse::<RelayUrl>().map_err(|e| NetError::Relay {
                url: url.clone(),
                message: e.to_string(),
            })?),
            None => None,
        };
        let sharing = Sharing::open(&config.home, config.changes.clone())?;
        let (endpoint, local_discovery) = bind_endpoint_with(
            &identity,
            config.listen,
            relay.clone(),
            config.local_discovery,
        )
        .await?;
        let shared = Arc::new(Shared {
            endpoint,
            me: identity.id(),
            relay,
            local_discovery,
            hello: Hello::ours(&config.device_name),
            store: Mutex::new(store),
            peers: Mutex::new(HashMap::new()),
            dials: Mutex::new(HashMap::new()),
            sharing,
            events: tokio::sync::broadcast::channel(256).0,
            nudge: tokio::sync::Notify::new(),
        });
        let tasks = vec![
            tokio::spawn(accept_loop(shared.clone())),
            tokio::spawn(dial_loop(shared.clone())),
        ];
        tracing::info!(
            "device {} listening on {:?}",
            shared.me,
            shared.endpoint.bound_sockets()
        );
        Ok(Node { shared, tasks })
    }

    pub fn id(&self) -> DeviceId {
        self.shared.me
    }

    /// The UDP addresses the endpoint is bound to (with the real port when 0 was asked).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.shared.endpoint.bound_sockets()
    }

    /// The live connection to a device, if any.
    pub fn connection(&self, id: &DeviceId) -> Option<Connection> {
        self.shared.connection(id)
    }

    /// A run here may have changed a shared folder: announce it to the members now,
    /// not at the next tick (a change waited up to a second for it).
    pub fn local_change(&self) {
        self.shared.nudge.notify_one();
    }

    /// Connection changes from now on (a receiver that lags loses the oldest).
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<NodeEvent> {
        self.shared.events.subscribe()
    }

    /// Every known and pending device with its live state.
    pub fn statuses(&self) -> Result<Vec<DeviceStatus>, NetError> {
        let (known, pending, limits) = {
            let store = self.shared.lock_store();
            (store.known()?, store.pending()?, store.bandwidth_limits()?)
        };
        let now = unix_now();
        let mut out = Vec::with_capacity(known.len() + pending.len());
        for k in known {
            let mut s = DeviceStatus::known(&k);
            s.show_limit(limits.get(&k.id));
            if let Some(conn) = self.shared.connection(&k.id) {
                s.connected = true;
                s.path = conn.path_kind();
                s.address = conn.remote_addr();
                s.rtt_ms = conn.rtt().map(|d| d.as_secs_f64() * 1000.0);
                s.last_seen = Some(now);
                s.transfer = Some(self.shared.sharing.transfer_view(&k.id));
            } else if let Ok(dials) = self.shared.dials.lock() {
                s.last_error = dials.get(&k.id).and_then(|d| d.last_error.clone());
            }
            out.push(s);
        }
        out.extend(pending.iter().map(DeviceStatus::pending));
        Ok(out)
    }

    /// Dials a known device at the given addresses now (the dial loop also does, with
    /// backoff) and keeps the connection.
    pub async fn dial(&self, id: DeviceId, addrs: &[SocketAddr]) -> Result<Connection, NetError> {
        dial(&self.shared, id, addrs).await
    }

    /// Where a run of `conduit` (a share's) reads the member device's content: `None`
    /// when the conduit is not a share's or the device is not connected.
    pub async fn content_for(&self, conduit: i64) -> Option<PeerContent> {
        let shared = self.shared.clone();
        (self.shared.sharing)
            .content_for(conduit, move |id| shared.connection(id))
            .await
    }

    /// Closes every connection and the endpoint.
    pub async fn shutdown(&self) {
        for t in &self.tasks {
            t.abort();
        }
        let peers: Vec<Peer> = match self.shared.peers.lock() {
            Ok(mut p) => p.drain().map(|(_, v)| v).collect(),
            Err(_) => Vec::new(),
        };
        for p in peers {
            p.conn.close(CloseCode::Done, "shutting down");
        }
        self.shared.endpoint.close().await;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Binds an endpoint with ferry's settings: this device's key, ALPN `ferry/1`, the given
/// UDP address only, no address lookup, and a relay only when one is given. Public so
/// tests can play a misbehaving device.
pub async fn bind_endpoint(
    identity: &Identity,
    listen: SocketAddr,
    relay: Option<RelayUrl>,
) -> Result<Endpoint, NetError> {
    Ok(bind_endpoint_with(identity, listen, relay, false).await?.0)
}

/// The mDNS service name ferry devices announce and look for (`_ferry._udp.local`),
/// so other iroh programs on the network are not looked at.
const MDNS_SERVICE: &str = "ferry";

/// [`bind_endpoint`], with local discovery (mDNS) when `local_discovery`; says whether
/// local discovery is on (the network may not allow it).
async fn bind_endpoint_with(
    identity: &Identity,
    listen: SocketAddr,
    relay: Option<RelayUrl>,
    local_discovery: bool,
) -> Result<(Endpoint, bool), NetError> {
    let bind_err = |message: String| NetError::Bind {
        addr: listen.to_string(),
        message,
    };
    let builder = || -> Result<iroh::endpoint::Builder, NetError> {
        let mut builder = Endpoint::builder(presets::Minimal)
            .transport_config(transport_config())
            .secret_key(identity.secret_key().clone())
            .alpns(vec![ALPN.to_vec()])
            .clear_ip_transports()
            .bind_addr(listen)
            .map_err(|e| bind_err(e.to_string()))?;
        if let Some(url) = relay.clone() {
            builder = builder.relay_mode(RelayMode::Custom(RelayMap::from(url)));
        }
        Ok(builder)
    };
    if local_discovery {
        let with_mdns = builder()?.address_lookup(
            iroh_mdns_address_lookup::MdnsAddressLookup::builder().service_name(MDNS_SERVICE),
        );
        match with_mdns.bind().await {
            Ok(ep) => return Ok((ep, true)),
            // A network without multicast must not keep devices from syncing at their
            // addresses.
            Err(e) => tracing::warn!("local discovery (mDNS) is off: {e}"),
        }
    }
    let ep = builder()?
        .bind()
        .await
        .map_err(|e| bind_err(e.to_string()))?;
    Ok((ep, false))
}

/// Flow-control windows sized from bandwidth × round trip (quinn's defaults allow one
/// stream 1.25 MB unacknowledged, about 100 Mbit/s at 100 ms: quinn#2153): a stream
/// may have [`STREAM_WINDOW`] in flight (1 Gbit/s at 64 ms, or 100 Mbit/s at 640 ms),
/// a connection [`CONNECTION_WINDOW`] over all its streams, which bounds the memory a
/// peer can make us buffer.
fn transport_config() -> iroh::endpoint::QuicTransportConfig {
    use iroh::endpoint::{ControllerFactory, QuicTransportConfig, VarInt};
    use noq_proto::congestion::{Bbr3Config, CubicConfig, NewRenoConfig};
    let cc: Arc<dyn ControllerFactory + Send + Sync> =
        match std::env::var("FERRY_CONGESTION").as_deref() {
            Ok("cubic") => Arc::new(CubicConfig::default()),
            Ok("newreno") => Arc::new(NewRenoConfig::default()),
            _ => Arc::new(Bbr3Config::default()),
        };
    QuicTransportConfig::builder()
        .stream_receive_window(VarInt::from_u32(STREAM_WINDOW))
        .receive_window(VarInt::from_u32(CONNECTION_WINDOW))
        .send_window(u64::from(CONNECTION_WINDOW))
        .max_concurrent_bidi_streams(VarInt::from_u32(256))
        .congestion_controller_factory(cc)
        .build()
}

/// Bytes one stream may have in flight (see [`transport_config`]).
pub const STREAM_WINDOW: u32 = 8 << 20;
/// Bytes one connection may have in flight over all its streams.
pub const CONNECTION_WINDOW: u32 = 24 << 20;

impl Shared {
    fn lock_store(&self) -> std::sync::MutexGuard<'_, DeviceStore> {
        // A panic while holding the store cannot leave SQLite half-written.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn connection(&self, id: &DeviceId) -> Option<Connection> {
        let peers = self.peers.lock().ok()?;
        peers
            .get(id)
            .filter(|p| !p.conn.is_closed())
            .map(|p| p.conn.clone())
    }

    /// Keeps `conn` as the connection to its device unless a live one should win (see
    /// [`SIMULTANEOUS`]); the loser is closed. Returns whether `conn` was kept.
    fn register(self: &Arc<Self>, conn: Connection, dialer: DeviceId) -> bool {
        let id = conn.remote();
        let lower = self.me.min(id);
        let (kept, loser) = {
            let Ok(mut peers) = self.peers.lock() else {
                return false;
            };
            let keep_new = match peers.get(&id) {
                None => true,
                Some(old) if old.conn.is_closed() => true,
                Some(old) => {
                    old.dialer == dialer || old.since.elapsed() > SIMULTANEOUS || dialer == lower
                }
            };
            if keep_new {
                let old = peers.insert(
                    id,
                    Peer {
                        conn: conn.clone(),
                        dialer,
                        since: Instant::now(),
                    },
                );
                (true, old.map(|p| p.conn))
            } else {
                (false, Some(conn.clone()))
            }
        };
        if let Some(loser) = loser {
            loser.close(
                CloseCode::Duplicate,
                "another connection to this device won",
            );
        }
        if kept {
            tracing::info!(
                "connected to {} ({:?})",
                id.short(),
                conn.hello().device_name
            );
            self.seen(&id, Some(&conn.hello().device_name));
            if let Ok(mut d) = self.dials.lock() {
                d.remove(&id);
            }
            self.sharing.connected(conn.clone());
            let _ = self.events.send(NodeEvent::Connected {
                device: id,
                relayed: conn.path_kind() == Some(PathKind::Relayed),
            });
            let shared = self.clone();
            tokio::spawn(async move {
                let why = conn.closed().await;
                tracing::info!("disconnected from {}: {why}", id.short());
                let replaced = match shared.peers.lock() {
                    Ok(mut peers) => match peers.get(&id).map(|p| p.conn.stable_id()) {
                        Some(s) if s == conn.stable_id() => {
                            peers.remove(&id);
                            false
                        }
                        Some(_) => true,
                        None => false,
                    },
                    Err(_) => false,
                };
                if !replaced {
                    let _ = shared.events.send(NodeEvent::Disconnected { device: id });
                }
                shared.seen(&id, None);
            });
        }
        kept
    }

    fn seen(&self, id: &DeviceId, name: Option<&str>) {
        if let Err(e) = self.lock_store().seen(id, name, unix_now()) {
            tracing::warn!("recording that {} was seen: {e}", id.short());
        }
    }

    fn dial_addr(&self, id: DeviceId, addrs: &[SocketAddr]) -> EndpointAddr {
        let mut addr = EndpointAddr::new(id.public_key());
        for a in addrs {
            addr = addr.with_ip_addr(*a);
        }
        if let Some(relay) = &self.relay {
            addr = addr.with_relay_url(relay.clone());
        }
        addr
    }
}

async fn accept_loop(shared: Arc<Shared>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = accept_one(&shared, incoming).await {
                tracing::info!("incoming connection: {e}");
            }
        });
    }
}

async fn accept_one(
    shared: &Arc<Shared>,
    incoming: iroh::endpoint::Incoming,
) -> Result<(), NetError> {
    let from = match incoming.remote_addr() {
        iroh::endpoint::IncomingAddr::Ip(sa) => Some(sa.to_string()),
        iroh::endpoint::IncomingAddr::Relay { url, .. } => Some(url.to_string()),
        _ => None,
    };
    let conn = incoming.await.map_err(|e| NetError::Connection {
        device: from.clone().unwrap_or_default(),
        message: e.to_string(),
    })?;
    let id = DeviceId::from_public_key(conn.remote_id());
    let known = shared.lock_store().get(&id)?.is_some();
    if !known {
        let address = conn
            .paths()
            .iter()
            .find(|p| p.is_selected())
            .and_then(|p| describe(p.remote_addr()))
            .or(from);
        shared
            .lock_store()
            .record_pending(id, address.as_deref(), None, unix_now())?;
        let reason = format!(
            "device {id} is not known here; it is listed as pending: accept it with `ferry device add {id}`"
        );
        handshake::close(&conn, CloseCode::UnknownDevice, &reason);
        tracing::info!("refused unknown device {id} from {address:?}");
        let _ = shared.events.send(NodeEvent::Refused { device: id });
        return Ok(());
    }
    let conn = handshake::as_acceptor(conn, &shared.hello).await?;
    shared.register(conn, id);
    Ok(())
}

async fn dial(
    shared: &Arc<Shared>,
    id: DeviceId,
    addrs: &[SocketAddr],
) -> Result<Connection, NetError> {
    if addrs.is_empty() && shared.relay.is_none() && !shared.local_discovery {
        return Err(NetError::NoAddress(id.to_string()));
    }
    let conn = shared
        .endpoint
        .connect(shared.dial_addr(id, addrs), ALPN)
        .await
        .map_err(|e| NetError::Connect {
            device: id.to_string(),
            message: e.to_string(),
        })?;
    let conn = handshake::as_dialer(conn, &shared.hello).await?;
    if shared.register(conn.clone(), shared.me) {
        Ok(conn)
    } else {
        shared.connection(&id).ok_or(NetError::Connection {
            device: id.to_string(),
            message: "lost while settling a simultaneous dial".into(),
        })
    }
}

/// Why a round of the dial loop starts.
#[derive(Debug, PartialEq, Eq)]
enum Round {
    Tick,
    Nudged,
}

/// Waits for the next tick, or a nudge (a local change to announce), whichever first.
async fn next_round(tick: &mut tokio::time::Interval, nudge: &tokio::sync::Notify) -> Round {
    tokio::select! {
        _ = tick.tick() => Round::Tick,
        _ = nudge.notified() => Round::Nudged,
    }
}

/// Once a tick (or when nudged): close connections to devices no longer known, dial known devices that
/// are not connected (with exponential backoff per device), write `last_seen`.
async fn dial_loop(shared: Arc<Shared>) {
    let mut last_seen_write = Instant::now();
    let mut tick = tokio::time::interval(TICK);
    loop {
        next_round(&mut tick, &shared.nudge).await;
        let known = match shared.lock_store().known() {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!("reading known devices: {e}");
                continue;
            }
        };
        match shared.lock_store().bandwidth_limits() {
            Ok(l) => shared.sharing.set_device_limits(l),
            Err(e) => tracing::warn!("reading bandwidth limits: {e}"),
        }
        let removed: Vec<Peer> = match shared.peers.lock() {
            Ok(mut peers) => {
                let gone: Vec<DeviceId> = peers
                    .keys()
                    .filter(|id| !known.iter().any(|k| k.id == **id))
                    .copied()
                    .collect();
                gone.iter().filter_map(|id| peers.remove(id)).collect()
            }
            Err(_) => Vec::new(),
        };
        for p in removed {
            p.conn.close(CloseCode::Done, "device removed");
        }
        let now = Instant::now();
        for k in known {
            if k.id == shared.me || shared.connection(&k.id).is_some() {
                continue;
            }
            if k.addresses.is_empty() && shared.relay.is_none() && !shared.local_discovery {
                continue;
            }
            {
                let Ok(mut dials) = shared.dials.lock() else {
                    continue;
                };
                let d = dials.entry(k.id).or_default();
                if d.in_flight || d.next.is_some_and(|n| n > now) {
                    continue;
                }
                d.in_flight = true;
            }
            let shared = shared.clone();
            tokio::spawn(async move {
                let addrs = resolve(&k.addresses).await;
                let result = dial(&shared, k.id, &addrs).await;
                if let Ok(mut dials) = shared.dials.lock() {
                    let d = dials.entry(k.id).or_default();
                    d.in_flight = false;
                    match result {
                        Ok(_) => {
                            *d = DialState::default();
                        }
                        Err(e) => {
                            tracing::debug!("dialing {}: {e}", k.id.short());
                            d.failures = d.failures.saturating_add(1);
                            d.next = Some(Instant::now() + backoff(d.failures));
                            d.last_error = Some(e.to_string());
                        }
                    }
                }
            });
        }
        let conns: Vec<Connection> = shared
            .peers
            .lock()
            .map(|p| {
                p.values()
                    .filter(|p| !p.conn.is_closed())
                    .map(|p| p.conn.clone())
                    .collect()
            })
            .unwrap_or_default();
        shared.sharing.tick(conns).await;
        if last_seen_write.elapsed() >= SEEN_EVERY {
            last_seen_write = Instant::now();
            let ids: Vec<DeviceId> = shared
                .peers
                .lock()
                .map(|p| p.keys().copied().collect())
                .unwrap_or_default();
            for id in ids {
                shared.seen(&id, None);
            }
        }
    }
}

/// 1 s after the first failure, doubling, at most [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let secs = 1u64 << failures.saturating_sub(1).min(16);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

/// `HOST:PORT` strings to socket addresses (host names resolved; bad ones skipped).
async fn resolve(addresses: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for a in addresses {
        match tokio::net::lookup_host(a.as_str()).await {
            Ok(found) => out.extend(found),
            Err(e) => tracing::debug!("address {a:?}: {e}"),
        }
    }
    out
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::DeviceState;

    #[tokio::test(start_paused = true)]
    async fn a_nudge_starts_the_next_round_before_the_tick() {
        let nudge = tokio::sync::Notify::new();
        let mut tick = tokio::time::interval(TICK);
        assert_eq!(next_round(&mut tick, &nudge).await, Round::Tick); // the first, at once
        let start = tokio::time::Instant::now();
        nudge.notify_one();
        assert_eq!(next_round(&mut tick, &nudge).await, Round::Nudged);
        // On the paused clock no time passed: the announcement did not wait for a tick.
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(next_round(&mut tick, &nudge).await, Round::Tick);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn status_state_names() {
        assert_eq!(
            serde_json::to_value(DeviceState::Pending).unwrap(),
            "pending"
        );
    }
}
