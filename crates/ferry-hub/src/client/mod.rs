//! A device's side of the hub, run by its daemon: keeps a connection to each known hub,
//! pushes this device's folder changes into its log there (entries and the content the
//! hub lacks, sealed), pulls the other members' logs when the hub says a share changed,
//! and serves the engine content from the hub ([`HubContent`]).
//!
//! Entries pulled from a member's log are stored exactly as entries pulled from the
//! member directly (`share::incoming` into its peer location, at the member's own
//! sequence numbers), so the engine syncs the same way whichever path they came by,
//! and the two paths share one cursor.

mod book;
mod content;
mod session;

pub use book::{age_identity, BookError, HubBook, KnownHub};
pub use content::HubContent;

use crate::protocol::*;
use ferry_core::index::Index;
use ferry_net::iroh::endpoint::{presets, Connection};
use ferry_net::iroh::{Endpoint, EndpointAddr};
use ferry_net::{DeviceId, Identity};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// How often this device's shares are checked for changes to push (a local read of
/// the index; the hub is not asked).
const TICK: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A connection that lasted this long resets the backoff.
const STABLE: Duration = Duration::from_secs(10);

/// The wait before the next dial after `failures` failures in a row: 2 s doubling to
/// [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1 << failures.min(4)).min(MAX_BACKOFF)
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Book(#[from] BookError),
    #[error("device key: {0}")]
    Identity(#[from] ferry_net::IdentityError),
    #[error("index: {0}")]
    Core(#[from] ferry_core::Error),
    #[error("binding the hub client's endpoint: {0}")]
    Bind(String),
    #[error("hub {hub}: {message}")]
    Connection { hub: String, message: String },
    #[error("hub said: {message} ({code:?})")]
    Hub {
        code: ErrorCode,
        message: String,
        head: u64,
    },
    #[error("hub protocol: {0}")]
    Frame(#[from] FrameError),
    #[error("hub protocol: {0}")]
    Protocol(String),
    #[error("{0}")]
    Crypto(#[from] crate::CryptoError),
    #[error("{0}")]
    Other(String),
}

type Res<T> = Result<T, ClientError>;

/// The hub side of a device, started by the daemon.
pub struct HubClient {
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

struct Inner {
    me: DeviceId,
    identity: Identity,
    age: crate::DeviceIdentity,
    endpoint: Endpoint,
    home: PathBuf,
    book: Mutex<HubBook>,
    index: Mutex<Index>,
    changes: Option<UnboundedSender<i64>>,
    hubs: Mutex<HashMap<DeviceId, HubState>>,
    /// Opened share keys, every epoch, by share.
    keys: Mutex<HashMap<String, crate::KeyRing>>,
}

#[derive(Default)]
struct HubState {
    conn: Option<Connection>,
    dialing: bool,
    failures: u32,
    next_dial: Option<Instant>,
    /// A sync is due (connected, notified, or local changes).
    due: bool,
    /// Which of the hub's addresses the next dial tries first.
    next_addr: usize,
    running: bool,
    /// What the local shares looked like at the last sync.
    seen: Vec<(String, u64, usize)>,
    /// The address of the live connection.
    address: Option<SocketAddr>,
    /// When the hub last answered a listing (Unix seconds).
    last_contact: Option<i64>,
    /// Bytes sent and received on connections that have closed.
    closed_up: u64,
    closed_down: u64,
    /// Per share at the last listing: bytes the hub stores for it, and its quota.
    usage: Vec<(String, u64, Option<u64>)>,
}

/// What the daemon shows of one hub (`ferry status --json`, `/api/status`, the
/// dashboard's devices page).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubStatus {
    pub id: String,
    /// Every address (node) this device knows for it.
    pub addrs: Vec<String>,
    pub connected: bool,
    /// The address of the live connection.
    pub address: Option<String>,
    /// When the hub last answered (Unix seconds).
    pub last_contact: Option<i64>,
    /// This device's shares through it, with the bytes the hub stores for each and the
    /// hub's quota (when the hub has said).
    pub shares: Vec<HubShareStatus>,
    /// UDP bytes sent to and received from it since the daemon started.
    pub bytes_up: u64,
    pub bytes_down: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubShareStatus {
    pub share: String,
    pub stored_bytes: Option<u64>,
    pub quota: Option<u64>,
}

impl HubClient {
    /// Starts the client: one connection per hub in `hubs.db`, re-read every second.
    /// `changes` receives a conduit ID whenever a member's entries arrived from a hub.
    pub async fn start(home: &Path, changes: Option<UnboundedSender<i64>>) -> Res<HubClient> {
        let identity = Identity::load_or_create(home)?;
        let age = age_identity(home)?;
        let book = HubBook::open(home)?;
        let index = Index::open(&home.join("index.db"))?;
        let unspecified: SocketAddr = ([0, 0, 0, 0], 0).into();
        let endpoint = Endpoint::builder(presets::Minimal)
            .secret_key(identity.secret_key().clone())
            .transport_config(hub_transport())
            .clear_ip_transports()
            .bind_addr(unspecified)
            .map_err(|e| ClientError::Bind(e.to_string()))?
            .bind()
            .await
            .map_err(|e| ClientError::Bind(e.to_string()))?;
        let inner = Arc::new(Inner {
            me: identity.id(),
            identity,
            age,
            endpoint,
            home: home.to_path_buf(),
            book: Mutex::new(book),
            index: Mutex::new(index),
            changes,
            hubs: Mutex::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
        });
        let task = tokio::spawn(run(inner.clone()));
        Ok(HubClient { inner, task })
    }

    /// Where a run of `conduit` (a share's) can read the member's content from a hub:
    /// `None` when the share goes through no hub or the hub is not connected.
    pub async fn content_for(&self, conduit: i64) -> Option<HubContent> {
        let inner = self.inner.clone();
        let share = tokio::task::spawn_blocking(move || {
            let index = inner.index.lock().ok()?;
            let (share, _) = index.share_of_conduit(conduit).ok()??;
            Some(share.id)
        })
        .await
        .ok()??;
        let hub = self.inner.with_book(|b| b.share_hub(&share)).ok()??;
        let hub: DeviceId = hub.parse().ok()?;
        let conn = self.inner.connection(&hub)?;
        let keys = self.inner.keys.lock().ok()?.get(&share).cloned()?;
        Some(HubContent::new(
            conn,
            keys,
            HubBook::open(&self.inner.home).ok()?,
        ))
    }

    /// Whether a hub is connected now.
    pub fn connected(&self, hub: &DeviceId) -> bool {
        self.inner.connection(hub).is_some()
    }

    /// Every hub this device knows, as the daemon shows them.
    pub fn status(&self) -> Res<Vec<HubStatus>> {
        let known = self.inner.with_book(|b| b.hubs())?;
        let mut out = Vec::new();
        for hub in known {
            let shares = self.inner.with_book(|b| b.shares_of(&hub.id))?;
            let id: Option<DeviceId> = hub.id.parse().ok();
            let conn = id.as_ref().and_then(|i| self.inner.connection(i));
            let hubs = self.inner.hubs.lock().unwrap_or_else(|p| p.into_inner());
            let st = id.as_ref().and_then(|i| hubs.get(i));
            let (live_up, live_down) = conn.as_ref().map_or((0, 0), |c| {
                let s = c.stats();
                (s.udp_tx.bytes, s.udp_rx.bytes)
            });
            out.push(HubStatus {
                addrs: hub.addrs().into_iter().map(str::to_string).collect(),
                id: hub.id.clone(),
                connected: conn.is_some(),
                address: (st.and_then(|s| s.address))
                    .filter(|_| conn.is_some())
                    .map(|a| a.to_string()),
                last_contact: st.and_then(|s| s.last_contact),
                shares: (shares.into_iter())
                    .map(|share| {
                        let u = st.and_then(|s| s.usage.iter().find(|u| u.0 == share));
                        HubShareStatus {
                            stored_bytes: u.map(|u| u.1),
                            quota: u.and_then(|u| u.2),
                            share,
                        }
                    })
                    .collect(),
                bytes_up: st.map_or(0, |s| s.closed_up) + live_up,
                bytes_down: st.map_or(0, |s| s.closed_down) + live_down,
            });
        }
        Ok(out)
    }

    pub async fn shutdown(&self) {
        self.task.abort();
        let conns: Vec<Connection> = match self.inner.hubs.lock() {
            Ok(mut h) => h.drain().filter_map(|(_, s)| s.conn).collect(),
            Err(_) => Vec::new(),
        };
        for c in conns {
            c.close(0u32.into(), b"shutting down");
        }
        self.inner.endpoint.close().await;
    }
}

impl Drop for HubClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Inner {
    fn with_book<T>(&self, f: impl FnOnce(&HubBook) -> Result<T, BookError>) -> Res<T> {
        let book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&book)?)
    }

    /// Runs `f` with the index on a blocking thread.
    async fn with_index<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Index) -> ferry_core::Result<T> + Send + 'static,
    ) -> Res<T> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut index = me.index.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut index)
        })
        .await
        .map_err(|e| ClientError::Other(format!("index task failed: {e}")))?
        .map_err(ClientError::Core)
    }

    fn connection(&self, hub: &DeviceId) -> Option<Connection> {
        let hubs = self.hubs.lock().ok()?;
        hubs.get(hub)?
            .conn
            .clone()
            .filter(|c| c.close_reason().is_none())
    }

    fn mark_due(&self, hub: &DeviceId) {
        if let Ok(mut hubs) = self.hubs.lock() {
            hubs.entry(*hub).or_default().due = true;
        }
    }
}

/// Once a tick: dial hubs not connected (with backoff), start a sync of every hub that
/// is due (notified, just connected, or this device's shares changed).
async fn run(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        let known = match inner.with_book(|b| b.hubs()) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!("reading hubs: {e}");
                continue;
            }
        };
        for hub in known {
            let Ok(id) = hub.id.parse::<DeviceId>() else {
                continue;
            };
            let Ok(addrs) = (hub.addrs().into_iter())
                .map(str::parse::<SocketAddr>)
                .collect::<Result<Vec<_>, _>>()
            else {
                tracing::warn!("hub {}: bad address {:?}", id.short(), hub.addr);
                continue;
            };
            if addrs.is_empty() {
                continue;
            }
            let seen = match local_state(&inner, &hub.id).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("reading shares: {e}");
                    continue;
                }
            };
            let (dial, sync) = {
                let Ok(mut hubs) = inner.hubs.lock() else {
                    return;
                };
                let st = hubs.entry(id).or_default();
                let live = st.conn.as_ref().is_some_and(|c| c.close_reason().is_none());
                if !live {
                    st.conn = None;
                }
                let dial = !live && !st.dialing && st.next_dial.is_none_or(|t| Instant::now() >= t);
                if dial {
                    st.dialing = true;
                }
                if live && st.seen != seen {
                    st.due = true;
                }
                let sync = live && st.due && !st.running;
                if sync {
                    st.due = false;
                    st.running = true;
                    st.seen = seen;
                }
                (dial, sync)
            };
            if dial {
                tokio::spawn(connect(inner.clone(), id, addrs));
            }
            if sync {
                let inner = inner.clone();
                tokio::spawn(async move {
                    if let Err(e) = session::sync_hub(&inner, &id).await {
                        tracing::info!("hub {}: {e}", id.short());
                        inner.mark_due_later(&id);
                    }
                    if let Ok(mut hubs) = inner.hubs.lock() {
                        hubs.entry(id).or_default().running = false;
                    }
                });
            }
        }
    }
}

impl Inner {
    /// A sync that failed is tried again at a later tick.
    fn mark_due_later(self: &Arc<Self>, hub: &DeviceId) {
        let (me, hub) = (self.clone(), *hub);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            me.mark_due(&hub);
        });
    }
}

/// This device's shares through `hub`: (share, folder sequence, members).
async fn local_state(inner: &Arc<Inner>, hub: &str) -> Res<Vec<(String, u64, usize)>> {
    let shares = inner.with_book(|b| b.shares_of(hub))?;
    inner
        .with_index(move |index| {
            let mut out = Vec::new();
            for id in shares {
                let Some(s) = index.share(&id)? else {
                    out.push((id, 0, 0));
                    continue;
                };
                let seq = index.location_sequence(s.location_id)?;
                let members = index.share_members(&id)?;
                let tied = members.iter().filter(|m| m.conduit_id.is_some()).count();
                out.push((id, seq, members.len() * 1000 + tied));
            }
            Ok(out)
        })
        .await
}

/// A hub that stops answering (a node killed, a link cut) is noticed within
/// [`HUB_IDLE_TIMEOUT`] (pings every 2 s), so the client dials the hub's next address
/// soon instead of after QUIC's default 30 s.
const HUB_IDLE_TIMEOUT: Duration = Duration::from_secs(8);

fn hub_transport() -> ferry_net::iroh::endpoint::QuicTransportConfig {
    use ferry_net::iroh::endpoint::{IdleTimeout, QuicTransportConfig};
    let builder = QuicTransportConfig::builder().keep_alive_interval(Duration::from_secs(2));
    match IdleTimeout::try_from(HUB_IDLE_TIMEOUT) {
        Ok(t) => builder.max_idle_timeout(Some(t)).build(),
        Err(_) => builder.build(),
    }
}

/// How long one address of a hub is tried before the next.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Dials `hub` at each of its addresses in turn (nodes of one hub), starting with the
/// one after the last that failed or lost its connection.
async fn connect(inner: Arc<Inner>, hub: DeviceId, addrs: Vec<SocketAddr>) {
    let first = (inner.hubs.lock().ok())
        .and_then(|h| h.get(&hub).map(|s| s.next_addr))
        .unwrap_or(0);
    let mut result = Err(String::from("no address"));
    let mut used = first;
    for k in 0..addrs.len() {
        let i = (first + k) % addrs.len();
        let addr = addrs[i];
        let dial = inner.endpoint.connect(
            EndpointAddr::new(hub.public_key()).with_ip_addr(addr),
            HUB_ALPN,
        );
        result = match tokio::time::timeout(DIAL_TIMEOUT, dial).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(format!("{addr}: {e}")),
            Err(_) => Err(format!("{addr}: no answer in {DIAL_TIMEOUT:?}")),
        };
        used = i;
        if result.is_ok() {
            break;
        }
        tracing::info!("hub {} at {addr}: {:?}", hub.short(), result.as_ref().err());
    }
    let n = addrs.len();
    let Ok(mut hubs) = inner.hubs.lock() else {
        return;
    };
    let st = hubs.entry(hub).or_default();
    st.dialing = false;
    match result {
        Ok(conn) => {
            tracing::info!("connected to hub {} at {}", hub.short(), addrs[used]);
            st.next_addr = used;
            st.next_dial = None;
            st.conn = Some(conn.clone());
            st.address = Some(addrs[used]);
            let since = Instant::now();
            st.due = true;
            drop(hubs);
            // The hub's notifications: a stream each.
            let inner = inner.clone();
            tokio::spawn(async move {
                while let Ok((_send, mut recv)) = conn.accept_bi().await {
                    if let Ok(Some(Changed { share_id })) = read_msg::<_, Changed>(&mut recv).await
                    {
                        tracing::debug!("hub {}: share {share_id} changed", hub.short());
                        inner.mark_due(&hub);
                    }
                }
                let why = conn.closed().await;
                tracing::info!("disconnected from hub {}: {why}", hub.short());
                // A connection closed soon after it opened (a hub that refuses this
                // device, or one going up and down) counts as a failed dial. The next
                // dial starts at the hub's next address (another node, if any).
                let stats = conn.stats();
                if let Ok(mut hubs) = inner.hubs.lock() {
                    let st = hubs.entry(hub).or_default();
                    st.closed_up += stats.udp_tx.bytes;
                    st.closed_down += stats.udp_rx.bytes;
                    st.address = None;
                    st.next_addr = (used + 1) % n;
                    if since.elapsed() < STABLE {
                        st.failures += 1;
                        st.next_dial = Some(Instant::now() + backoff(st.failures));
                    } else {
                        st.failures = 0;
                    }
                }
            });
        }
        Err(e) => {
            st.failures += 1;
            st.next_dial = Some(Instant::now() + backoff(st.failures));
            st.next_addr = (used + 1) % n;
            tracing::info!("hub {}: {e}", hub.short());
        }
    }
}

/// One request and its reply (a hub error is `ClientError::Hub`).
pub async fn call(conn: &Connection, req: Req) -> Res<Rep> {
    let lost = |e: String| ClientError::Connection {
        hub: DeviceId::from_public_key(conn.remote_id()).short(),
        message: e,
    };
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| lost(e.to_string()))?;
    write_msg(&mut send, &Request { req: Some(req) }).await?;
    let _ = send.finish();
    let reply: Reply = read_msg(&mut recv)
        .await?
        .ok_or_else(|| lost("no reply".into()))?;
    match reply.rep {
        Some(Rep::Error(e)) => Err(ClientError::Hub {
            code: ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unspecified),
            message: e.message,
            head: e.head,
        }),
        Some(r) => Ok(r),
        None => Err(ClientError::Protocol("an empty reply".into())),
    }
}

/// Passphrases shorter than this are refused.
pub const MIN_PASSPHRASE: usize = 8;

/// A passphrase as read from a file: the text without its line ending.
pub fn passphrase_from_text(text: &str) -> Res<String> {
    let pass = text.trim_end_matches(['\n', '\r']);
    if pass.chars().count() < MIN_PASSPHRASE {
        return Err(ClientError::Other(format!(
            "a passphrase needs at least {MIN_PASSPHRASE} characters"
        )));
    }
    Ok(pass.to_string())
}

fn pending_passphrase_path(home: &Path, share: &str) -> PathBuf {
    home.join(format!("hub-passphrase-{share}"))
}

/// Hands `passphrase` to the daemon's hub client for `share` (a file readable by this
/// user only, removed once the slot is on the hub).
pub fn set_passphrase(home: &Path, share: &str, passphrase: &str) -> Res<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let pass = passphrase_from_text(passphrase)?;
    let _: crate::ShareId =
        (share.parse()).map_err(|_| ClientError::Other(format!("{share:?} is not a share ID")))?;
    let path = pending_passphrase_path(home, share);
    let tmp = home.join(format!("hub-passphrase-{share}.{}.tmp", std::process::id()));
    let io = |e: std::io::Error| ClientError::Other(format!("{}: {e}", tmp.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(pass.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(())
}

/// Restores access to `share` on this device with its passphrase, through `hub` (no
/// other member need be online): proves the passphrase to the hub (which makes this
/// device a member), opens the passphrase slots and wraps every epoch for this
/// device. The daemon then offers the share (`ferry accept`). Returns the epochs.
pub async fn restore(home: &Path, hub: &DeviceId, share: &str, passphrase: &str) -> Res<usize> {
    let pass = passphrase_from_text(passphrase)?;
    let sid: crate::ShareId =
        (share.parse()).map_err(|_| ClientError::Other(format!("{share:?} is not a share ID")))?;
    let identity = Identity::load_or_create(home)?;
    let age = age_identity(home)?;
    let book = HubBook::open(home)?;
    let hub_s = hub.to_string();
    let known = (book.hubs()?.into_iter())
        .find(|h| h.id == hub_s)
        .ok_or_else(|| {
            ClientError::Other(format!("no hub {hub_s} here; `ferry hub add` it first"))
        })?;
    let addr: SocketAddr = (known.addrs().first())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| ClientError::Other(format!("hub address {:?}", known.addr)))?;
    let (s2, p2) = (sid.clone(), pass.clone());
    let token = tokio::task::spawn_blocking(move || crate::restore_token(&s2, &p2))
        .await
        .map_err(|e| ClientError::Other(e.to_string()))??;
    let unspecified: SocketAddr = ([0, 0, 0, 0], 0).into();
    let endpoint = Endpoint::builder(presets::Minimal)
        .secret_key(identity.secret_key().clone())
        .clear_ip_transports()
        .bind_addr(unspecified)
        .map_err(|e| ClientError::Bind(e.to_string()))?
        .bind()
        .await
        .map_err(|e| ClientError::Bind(e.to_string()))?;
    let dial = |alpn: &'static [u8]| {
        let ep = endpoint.clone();
        async move {
            ep.connect(EndpointAddr::new(hub.public_key()).with_ip_addr(addr), alpn)
                .await
                .map_err(|e| ClientError::Connection {
                    hub: hub.short(),
                    message: e.to_string(),
                })
        }
    };
    let result = async {
        let conn = dial(HUB_RESTORE_ALPN).await?;
        let req = Restore {
            share_id: share.to_string(),
            token: token.to_vec(),
        };
        let Rep::Restore(r) = call(&conn, Req::Restore(req)).await? else {
            return Err(ClientError::Protocol(
                "an unexpected reply to Restore".into(),
            ));
        };
        conn.close(0u32.into(), b"done");
        if r.slots.is_empty() {
            return Err(ClientError::Other(
                "the hub has no passphrase slot for this share".into(),
            ));
        }
        let (s3, p3) = (sid.clone(), pass.clone());
        let keys = tokio::task::spawn_blocking(move || -> Res<Vec<crate::ShareKeys>> {
            (r.slots.iter())
                .map(|s| {
                    Ok(crate::KeySlot::from_bytes(&s.slot)?.open_with_passphrase(
                        &s3,
                        crate::Epoch(s.epoch),
                        &p3,
                    )?)
                })
                .collect()
        })
        .await
        .map_err(|e| ClientError::Other(e.to_string()))??;
        let conn = dial(HUB_ALPN).await?;
        let req = Register {
            share_id: share.to_string(),
            recipient: session::signed_recipient_of(&identity, &age, share),
        };
        call(&conn, Req::Register(req)).await?;
        for k in &keys {
            let req = PutSlots {
                share_id: share.to_string(),
                epoch: k.epoch().0,
                slots: vec![SlotMsg {
                    label: identity.id().to_string(),
                    slot: k.slot_for_device(&age.recipient())?.to_bytes(),
                }],
                new_epoch: false,
            };
            call(&conn, Req::PutSlots(req)).await?;
        }
        conn.close(0u32.into(), b"done");
        book.set_share_hub(share, &hub_s)?;
        Ok(keys.len())
    }
    .await;
    endpoint.close().await;
    result
}
