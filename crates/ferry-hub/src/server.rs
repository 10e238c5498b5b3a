//! The hub server (`ferry hub serve`): an iroh endpoint (ALPN `ferry-hub/1`) in front of
//! a [`BlobStore`] and a [`MetaStore`].
//!
//! - **Admission.** A connecting device is served only if it is allowed to create
//!   shares (`--allow`) or is a member of a share here; any other is closed at once
//!   with [`CLOSE_UNKNOWN_DEVICE`]. Every request naming a share is answered only for
//!   its members; a device appends only to its own log.
//! - **Checks on upload.** Share IDs, object IDs (32 bytes), sizes under the caps,
//!   sealed objects and batches of a length sealing can produce, with format 1 and an
//!   epoch the share has: anything else gets an error and is not stored.
//! - **Notifications.** The hub keeps each device's connection and, after a change to
//!   a share (log append, key slots, descriptor, a member registering), opens a stream
//!   to every other connected member with [`Changed`]: devices do not poll.

use crate::gc::now_ms;
use crate::protocol::*;
use crate::{
    plausible_sealed_len, AppendOutcome, BlobStore, CasOutcome, CompactOutcome, DeviceRecord,
    Epoch, LogRecord, MetaStore, ObjectId, ObjectState, PostgresMeta, PutOutcome, ShareId,
    SlotRecord, SqliteMeta, StoreError,
};
use ferry_net::iroh::endpoint::{presets, Connection, VarInt};
use ferry_net::iroh::Endpoint;
use ferry_net::{DeviceId, Identity};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The label of a share's passphrase slot.
pub const PASSPHRASE_LABEL: &str = "passphrase";
/// Log records per `ReadLog` reply (each at most [`MAX_BATCH`]; the frame cap bounds
/// the sum, so replies stop early when they would not fit).
const LOG_RECORDS_PER_REPLY: u32 = 16;
/// Object IDs per `Missing` request.
pub const MISSING_MAX: usize = 4096;

/// How to start a hub.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The hub's home: its key (`device.key`), and by default `hub.db` and `blobs/`.
    pub home: PathBuf,
    pub listen: SocketAddr,
    /// Blob store location (a directory, `file://…` or `s3://…`); default `home/blobs`.
    pub store: Option<String>,
    /// PostgreSQL (`postgres://…` or `host=… user=…`) for metadata; default SQLite at
    /// `home/hub.db`.
    pub db: Option<String>,
    /// Devices allowed to create shares.
    pub allow: Vec<String>,
    /// Bytes each share may store (sealed objects and log records), if limited.
    pub quota_per_share: Option<u64>,
    /// How often to collect garbage (objects no member's log references); none: never
    /// (`ferry hub gc` runs one collection).
    pub gc_every: Option<std::time::Duration>,
    /// How long an object stays after it was last stored or reported present, however
    /// unreferenced (readers part-way through an older log may still fetch it).
    pub gc_grace: std::time::Duration,
}

impl HubConfig {
    /// A hub at `home` listening on `listen` with the defaults: blobs and SQLite in its
    /// home, no allowed device, no quota, garbage collected hourly after a day's grace.
    pub fn new(home: PathBuf, listen: SocketAddr) -> HubConfig {
        HubConfig {
            home,
            listen,
            store: None,
            db: None,
            allow: Vec::new(),
            quota_per_share: None,
            gc_every: Some(std::time::Duration::from_secs(3600)),
            gc_grace: DEFAULT_GC_GRACE,
        }
    }
}

/// Objects stay this long after they were last stored or reported present.
pub const DEFAULT_GC_GRACE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("hub key: {0}")]
    Identity(#[from] ferry_net::IdentityError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("binding {addr}: {message}")]
    Bind { addr: String, message: String },
    #[error("{0} is not a device ID: {1}")]
    BadDevice(String, String),
    #[error("creating {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A running hub.
pub struct RunningHub {
    endpoint: Endpoint,
    id: DeviceId,
    task: tokio::task::JoinHandle<()>,
}

impl RunningHub {
    /// The hub's ID (devices name it with `ferry hub add ADDR --id HUB_ID`).
    pub fn id(&self) -> DeviceId {
        self.id
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.endpoint.bound_sockets()
    }

    pub async fn shutdown(self) {
        self.task.abort();
        self.endpoint.close().await;
    }
}

/// The hub's ID from its home (created on first use).
pub fn hub_id(home: &std::path::Path) -> Result<DeviceId, ServeError> {
    Ok(Identity::load_or_create(home)?.id())
}

/// Opens the stores and starts serving. Must run inside a tokio runtime.
pub async fn serve(config: HubConfig) -> Result<RunningHub, ServeError> {
    let identity = Identity::load_or_create(&config.home)?;
    let blobs = open_blobs(&config)?;
    for d in &config.allow {
        d.parse::<DeviceId>()
            .map_err(|e| ServeError::BadDevice(d.clone(), e.to_string()))?;
    }
    let endpoint = bind(&identity, config.listen).await?;
    let id = identity.id();
    let task = match &config.db {
        Some(url) if !url.trim().is_empty() => {
            let meta = PostgresMeta::connect(url).await?;
            // Several nodes may serve the same shares: changes reach every node's
            // devices through PostgreSQL's LISTEN/NOTIFY.
            let changes = meta.changes().await?;
            start(meta, blobs, endpoint.clone(), &config, Some(changes)).await?
        }
        Some(_) | None => {
            let meta = SqliteMeta::open(&config.home.join("hub.db"))?;
            start(meta, blobs, endpoint.clone(), &config, None).await?
        }
    };
    tracing::info!("hub {id} listening on {:?}", endpoint.bound_sockets());
    Ok(RunningHub { endpoint, id, task })
}

fn open_blobs(config: &HubConfig) -> Result<BlobStore, ServeError> {
    Ok(match &config.store {
        Some(s) => BlobStore::open(s)?,
        None => {
            let dir = config.home.join("blobs");
            std::fs::create_dir_all(&dir).map_err(|source| ServeError::Io {
                path: dir.clone(),
                source,
            })?;
            BlobStore::local(&dir)?
        }
    })
}

/// One garbage collection over the hub's stores (`ferry hub gc`; a running hub on the
/// same stores may keep serving meanwhile).
pub async fn collect_garbage(config: &HubConfig) -> Result<crate::gc::GcReport, ServeError> {
    let blobs = open_blobs(config)?;
    Ok(match &config.db {
        Some(url) if !url.trim().is_empty() => {
            let meta = PostgresMeta::connect(url).await?;
            crate::gc::index_stored_objects(&meta, &blobs).await?;
            crate::gc::collect(&meta, &blobs, config.gc_grace).await?
        }
        Some(_) | None => {
            let meta = SqliteMeta::open(&config.home.join("hub.db"))?;
            crate::gc::index_stored_objects(&meta, &blobs).await?;
            crate::gc::collect(&meta, &blobs, config.gc_grace).await?
        }
    })
}

async fn bind(identity: &Identity, listen: SocketAddr) -> Result<Endpoint, ServeError> {
    let err = |message: String| ServeError::Bind {
        addr: listen.to_string(),
        message,
    };
    Endpoint::builder(presets::Minimal)
        .secret_key(identity.secret_key().clone())
        .alpns(vec![HUB_ALPN.to_vec(), HUB_RESTORE_ALPN.to_vec()])
        .clear_ip_transports()
        .bind_addr(listen)
        .map_err(|e| err(e.to_string()))?
        .bind()
        .await
        .map_err(|e| err(e.to_string()))
}

async fn start<M: MetaStore + 'static>(
    meta: M,
    blobs: BlobStore,
    endpoint: Endpoint,
    config: &HubConfig,
    changes: Option<tokio::sync::mpsc::UnboundedReceiver<ShareId>>,
) -> Result<tokio::task::JoinHandle<()>, ServeError> {
    for d in &config.allow {
        meta.allow_device(d).await?;
    }
    // Objects stored before the hub kept a row per object, and bytes stored before
    // quotas: counted once, before serving.
    crate::gc::index_stored_objects(&meta, &blobs).await?;
    let hub = Arc::new(Hub {
        meta,
        blobs,
        conns: Mutex::new(HashMap::new()),
        cluster: AtomicBool::new(changes.is_some()),
        quota: config.quota_per_share,
    });
    if let Some(mut changes) = changes {
        let hub = hub.clone();
        tokio::spawn(async move {
            while let Some(share) = changes.recv().await {
                hub.notify(&share, None).await;
            }
            tracing::warn!(
                "lost the database's change notifications; telling this node's devices only"
            );
            hub.cluster.store(false, Ordering::Relaxed);
        });
    }
    if let Some(every) = config.gc_every.filter(|d| !d.is_zero()) {
        let (hub, grace) = (hub.clone(), config.gc_grace);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match crate::gc::collect(&hub.meta, &hub.blobs, grace).await {
                    Ok(r) => tracing::info!(
                        "garbage collection: {} objects, {} bytes freed in {} ms",
                        r.objects_deleted,
                        r.bytes_freed,
                        r.millis
                    ),
                    Err(e) => tracing::warn!("garbage collection: {e}"),
                }
            }
        });
    }
    Ok(tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let hub = hub.clone();
            tokio::spawn(async move {
                let conn = match incoming.await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::info!("incoming connection: {e}");
                        return;
                    }
                };
                hub.connected(conn).await;
            });
        }
    }))
}

struct Hub<M> {
    meta: M,
    blobs: BlobStore,
    /// Each device's live connections (a device may reconnect before the old one ends).
    conns: Mutex<HashMap<DeviceId, Vec<Connection>>>,
    /// Changes are announced by the database to every node (this one included), so
    /// this node does not tell its devices itself.
    cluster: AtomicBool,
    /// Bytes each share may store, if limited.
    quota: Option<u64>,
}

type Res<T> = Result<T, Reply>;

fn internal(e: StoreError) -> Reply {
    tracing::warn!("store: {e}");
    Reply::error(ErrorCode::Internal, "the hub's store failed")
}

fn invalid(why: impl Into<String>) -> Reply {
    Reply::error(ErrorCode::Invalid, why)
}

impl<M: MetaStore + 'static> Hub<M> {
    async fn connected(self: Arc<Self>, conn: Connection) {
        let device = DeviceId::from_public_key(conn.remote_id());
        let d = device.to_string();
        if conn.alpn() == HUB_RESTORE_ALPN {
            return self.restore_connection(device, conn).await;
        }
        let admitted = match self.meta.is_allowed(&d).await {
            Ok(true) => true,
            Ok(false) => match self.meta.member_shares(&d).await {
                Ok(s) => !s.is_empty(),
                Err(e) => {
                    tracing::warn!("store: {e}");
                    false
                }
            },
            Err(e) => {
                tracing::warn!("store: {e}");
                false
            }
        };
        if !admitted {
            tracing::info!("refused device {d}: not admitted and a member of no share here");
            conn.close(
                VarInt::from_u32(CLOSE_UNKNOWN_DEVICE),
                b"this hub does not serve this device",
            );
            return;
        }
        tracing::info!("device {} connected", device.short());
        if let Ok(mut conns) = self.conns.lock() {
            conns.entry(device).or_default().push(conn.clone());
        }
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            let hub = self.clone();
            tokio::spawn(async move {
                let reply = match read_msg::<_, Request>(&mut recv).await {
                    Ok(Some(req)) => hub.answer(device, req).await,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::info!("request from {}: {e}", device.short());
                        Err(Reply::error(ErrorCode::Invalid, e.to_string()))
                    }
                };
                let reply = reply.unwrap_or_else(|e| e);
                if let Err(e) = write_msg(&mut send, &reply).await {
                    tracing::debug!("reply to {}: {e}", device.short());
                }
                let _ = send.finish();
            });
        }
        if let Ok(mut conns) = self.conns.lock() {
            if let Some(list) = conns.get_mut(&device) {
                list.retain(|c| c.stable_id() != conn.stable_id() && c.close_reason().is_none());
                if list.is_empty() {
                    conns.remove(&device);
                }
            }
        }
        tracing::info!("device {} disconnected", device.short());
    }

    /// A connection for `Restore` only: one request per stream, from any device.
    async fn restore_connection(self: Arc<Self>, device: DeviceId, conn: Connection) {
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            let reply = match read_msg::<_, Request>(&mut recv).await {
                Ok(Some(Request {
                    req: Some(Req::Restore(r)),
                })) => self.restore(&device, r).await,
                Ok(Some(_)) => Err(invalid("only Restore on this connection")),
                Ok(None) => return,
                Err(e) => Err(invalid(e.to_string())),
            };
            let _ = write_msg(&mut send, &reply.unwrap_or_else(|e| e)).await;
            let _ = send.finish();
        }
    }

    async fn restore(&self, device: &DeviceId, r: Restore) -> Res<Reply> {
        let d = device.to_string();
        let share: ShareId = r.share_id.parse().map_err(|_| invalid("not a share ID"))?;
        let refused = || {
            Reply::error(
                ErrorCode::Refused,
                "no such share with that passphrase on this hub",
            )
        };
        let Some(verifier) = self.meta.restore_verifier(&share).await.map_err(internal)? else {
            return Err(refused());
        };
        let given = crate::restore_verifier(&r.token);
        // Compared as BLAKE3 hashes of both (constant time).
        if blake3::hash(&given) != blake3::hash(&verifier) {
            tracing::info!(
                "share {share}: a wrong restore token from {}",
                device.short()
            );
            return Err(refused());
        }
        if (self.meta.removed_devices(&share).await.map_err(internal)?).contains(&d) {
            return Err(Reply::error(
                ErrorCode::Refused,
                "this device was removed from that share",
            ));
        }
        let members = self.meta.devices(&share).await.map_err(internal)?;
        if !members.iter().any(|m| m.device_id == d) {
            let rec = DeviceRecord {
                device_id: d.clone(),
                recipient: String::new(),
            };
            self.meta.add_device(&share, &rec).await.map_err(internal)?;
            tracing::info!(
                "share {share}: device {} joined with the passphrase",
                device.short()
            );
        }
        let latest = self.meta.latest_epoch(&share).await.map_err(internal)?;
        let mut slots = Vec::new();
        for e in 1..=latest.map_or(0, |e| e.0) {
            let slot = (self.meta.key_slots(&share, Epoch(e)).await)
                .map_err(internal)?
                .into_iter()
                .find(|s| s.label == PASSPHRASE_LABEL);
            if let Some(s) = slot {
                slots.push(EpochSlot {
                    epoch: e,
                    slot: s.slot,
                });
            }
        }
        self.changed(&share, device).await;
        Ok(Reply {
            rep: Some(Rep::Restore(RestoreReply { slots })),
        })
    }

    async fn answer(&self, device: DeviceId, req: Request) -> Res<Reply> {
        let d = device.to_string();
        match req.req {
            Some(Req::ListShares(_)) => self.list(&d).await,
            Some(Req::CreateShare(r)) => self.create(&d, r).await,
            Some(Req::Register(r)) => {
                let share = self.member(&d, &r.share_id).await?;
                if r.recipient.len() > 512 || !r.recipient.starts_with("age1") {
                    return Err(invalid("not an age recipient"));
                }
                let rec = DeviceRecord {
                    device_id: d.clone(),
                    recipient: r.recipient,
                };
                self.meta.add_device(&share, &rec).await.map_err(internal)?;
                self.changed(&share, &device).await;
                Ok(Reply::ok())
            }
            Some(Req::PutSlots(r)) => {
                let share = self.member(&d, &r.share_id).await?;
                if r.epoch == 0 || r.slots.is_empty() || r.slots.len() > 1024 {
                    return Err(invalid("an epoch from 1 and 1 to 1024 slots"));
                }
                let latest = self.meta.latest_epoch(&share).await.map_err(internal)?;
                let next = latest.map_or(1, |e| e.0 + 1);
                if r.new_epoch && r.epoch != next {
                    return Err(conflict(u64::from(next - 1)));
                }
                // Slots are added to an epoch the share has (a member joining gets
                // every epoch's keys, to read the history), or start the first.
                if !r.new_epoch && r.epoch > latest.map_or(1, |e| e.0) {
                    return Err(invalid("slots for an epoch the share does not have"));
                }
                let mut slots = Vec::new();
                for s in r.slots {
                    if s.slot.len() > 4096 || s.label.len() > 128 || s.slot.is_empty() {
                        return Err(Reply::error(ErrorCode::TooLarge, "a key slot over 4 KiB"));
                    }
                    slots.push(SlotRecord {
                        label: s.label,
                        slot: s.slot,
                    });
                }
                if r.new_epoch || latest.is_none() {
                    let created = (self.meta.create_epoch(&share, Epoch(r.epoch), &slots).await)
                        .map_err(internal)?;
                    if !created {
                        return Err(conflict(u64::from(r.epoch - 1)));
                    }
                    if r.epoch > 1 {
                        // A rotation: the passphrase may be known to the removed device;
                        // it lets no one in until a member sets one again.
                        (self.meta.set_restore_verifier(&share, None).await).map_err(internal)?;
                    }
                } else {
                    (self
                        .meta
                        .put_key_slots(&share, Epoch(r.epoch), &slots)
                        .await)
                        .map_err(internal)?;
                }
                self.changed(&share, &device).await;
                Ok(Reply::ok())
            }
            Some(Req::SetRestore(r)) => {
                let share = self.member(&d, &r.share_id).await?;
                if r.verifier.len() != 32 {
                    return Err(invalid("a restore verifier is 32 bytes"));
                }
                (self
                    .meta
                    .set_restore_verifier(&share, Some(&r.verifier))
                    .await)
                    .map_err(internal)?;
                Ok(Reply::ok())
            }
            Some(Req::Restore(_)) => Err(invalid("Restore goes on its own connection")),
            Some(Req::RemoveMember(r)) => {
                let share = self.member(&d, &r.share_id).await?;
                let gone: DeviceId = (r.device_id.parse())
                    .map_err(|_| invalid(format!("{:?} is not a device ID", r.device_id)))?;
                let g = gone.to_string();
                self.meta
                    .remove_device(&share, &g)
                    .await
                    .map_err(internal)?;
                tracing::info!(
                    "share {share}: device {} removed by {}",
                    gone.short(),
                    device.short()
                );
                self.changed(&share, &device).await;
                self.close_if_unserved(&gone).await;
                Ok(Reply::ok())
            }
            Some(Req::PutHead(r)) => {
                let share = self.member(&d, &r.share_id).await?;
                check_sealed(&r.manifest, 64 * 1024)?;
                match (self
                    .meta
                    .swap_manifest_head(&share, r.expected, &r.manifest)
                    .await)
                    .map_err(internal)?
                {
                    CasOutcome::Swapped { .. } => {
                        self.changed(&share, &device).await;
                        Ok(Reply::ok())
                    }
                    CasOutcome::Conflict { current } => Err(conflict(current)),
                }
            }
            Some(Req::Missing(r)) => {
                let share = self.member(&d, &r.share_id).await?;
                if r.ids.len() > MISSING_MAX {
                    return Err(Reply::error(ErrorCode::TooLarge, "too many IDs at once"));
                }
                let ids = (r.ids.iter())
                    .map(|raw| object_id(raw))
                    .collect::<Res<Vec<_>>>()?;
                // Present objects are touched: garbage collection leaves them to the
                // record the asking device is about to append.
                let states =
                    (self.meta.touch_objects(&share, &ids, now_ms()).await).map_err(internal)?;
                let missing = (r.ids.into_iter().zip(states))
                    .filter(|(_, st)| *st != ObjectState::Present)
                    .map(|(raw, _)| raw)
                    .collect();
                Ok(Reply {
                    rep: Some(Rep::Missing(Missing {
                        share_id: r.share_id,
                        ids: missing,
                    })),
                })
            }
            Some(Req::PutObject(r)) => {
                let share = self.member(&d, &r.share_id).await?;
                let id = object_id(&r.id)?;
                check_sealed(&r.data, MAX_OBJECT)?;
                self.check_epoch(&share, &r.data).await?;
                let state =
                    (self.meta.touch_objects(&share, &[id], now_ms()).await).map_err(internal)?;
                match state.first() {
                    // Stored already (and now touched): nothing to count or store.
                    Some(ObjectState::Present) => return Ok(Reply::ok()),
                    Some(ObjectState::Doomed) => {
                        return Err(Reply::error(
                            ErrorCode::Busy,
                            "that object is being garbage-collected; try again shortly",
                        ))
                    }
                    _ => {}
                }
                let len = r.data.len() as u64;
                self.reserve(&share, len).await?;
                let stored = match self.blobs.put(&share, &id, r.data).await {
                    Ok(PutOutcome::Stored) => true,
                    Ok(PutOutcome::AlreadyPresent) => false,
                    Err(e) => {
                        self.release(&share, len).await;
                        return Err(internal(e));
                    }
                };
                match self.meta.record_object(&share, &id, len, now_ms()).await {
                    // A blob without a row (a put whose row was lost) was not counted:
                    // keep the reservation for it; a racing put's row counts it once.
                    Ok(new) => {
                        if !new && !stored {
                            self.release(&share, len).await;
                        }
                        Ok(Reply::ok())
                    }
                    Err(e) => {
                        if !stored {
                            self.release(&share, len).await;
                        }
                        Err(internal(e))
                    }
                }
            }
            Some(Req::GetObject(r)) => {
                let share = self.member(&d, &r.share_id).await?;
                let id = object_id(&r.id)?;
                let data = self.blobs.get(&share, &id).await.map_err(internal)?;
                Ok(Reply {
                    rep: Some(Rep::Object(ObjectReply {
                        found: data.is_some(),
                        data: data.unwrap_or_default(),
                    })),
                })
            }
            Some(Req::Append(r)) => {
                let share = self.member(&d, &r.share_id).await?;
                check_sealed(&r.batch, MAX_BATCH)?;
                self.check_epoch(&share, &r.batch).await?;
                let len = r.batch.len() as u64;
                self.reserve(&share, len).await?;
                match (self.meta)
                    .append_log(&share, &d, r.after, r.upto, &r.batch)
                    .await
                {
                    Ok(AppendOutcome::Appended) => {
                        self.changed(&share, &device).await;
                        Ok(Reply::ok())
                    }
                    Ok(AppendOutcome::Conflict { head }) => {
                        self.release(&share, len).await;
                        Err(conflict(head))
                    }
                    Err(e) => {
                        self.release(&share, len).await;
                        Err(internal(e))
                    }
                }
            }
            Some(Req::ReadLog(r)) => {
                let share = self.member(&d, &r.share_id).await?;
                let records = (self
                    .meta
                    .log_after(&share, &r.device_id, r.after, LOG_RECORDS_PER_REPLY)
                    .await)
                    .map_err(internal)?;
                let mut out = Vec::new();
                let mut size = 0;
                for rec in records {
                    size += rec.batch.len() + 32;
                    if size > MAX_FRAME as usize - 4096 && !out.is_empty() {
                        break;
                    }
                    out.push(LogRecordMsg {
                        after: rec.after,
                        upto: rec.upto,
                        batch: rec.batch,
                    });
                }
                Ok(Reply {
                    rep: Some(Rep::Log(LogReply { records: out })),
                })
            }
            Some(Req::StageCompaction(r)) => {
                let share = self.member(&d, &r.share_id).await?;
                if r.records.len() > 1 || r.refs.len() > MISSING_MAX {
                    return Err(Reply::error(
                        ErrorCode::TooLarge,
                        "at most one record and 4096 object IDs per message",
                    ));
                }
                let refs = (r.refs.iter())
                    .map(|raw| object_id(raw))
                    .collect::<Res<Vec<_>>>()?;
                let mut records = Vec::new();
                let mut len = 0;
                for rec in r.records {
                    check_sealed(&rec.batch, MAX_BATCH)?;
                    self.check_epoch(&share, &rec.batch).await?;
                    if rec.upto < rec.after {
                        return Err(invalid("a record that ends before it starts"));
                    }
                    len += rec.batch.len() as u64;
                    records.push(LogRecord {
                        after: rec.after,
                        upto: rec.upto,
                        batch: rec.batch,
                    });
                }
                self.reserve(&share, len).await?;
                match (self.meta)
                    .stage_compaction(&share, &d, r.begin, &records, &refs)
                    .await
                {
                    Ok(_) => Ok(Reply::ok()),
                    Err(e) => {
                        self.release(&share, len).await;
                        Err(internal(e))
                    }
                }
            }
            Some(Req::CommitCompaction(r)) => {
                let share = self.member(&d, &r.share_id).await?;
                match (self.meta)
                    .commit_compaction(&share, &d, r.upto, now_ms())
                    .await
                    .map_err(internal)?
                {
                    CompactOutcome::Compacted { freed } => {
                        tracing::info!(
                            "share {share}: {} compacted its log up to {} ({freed} bytes of \
                             records replaced)",
                            device.short(),
                            r.upto
                        );
                        self.changed(&share, &device).await;
                        Ok(Reply::ok())
                    }
                    CompactOutcome::Refused(why) => Err(invalid(why)),
                }
            }
            None => Err(invalid("an empty request")),
        }
    }

    /// The share if `device` is one of its members.
    async fn member(&self, device: &str, share: &str) -> Res<ShareId> {
        let share: ShareId = share.parse().map_err(|_| invalid("not a share ID"))?;
        let members = self.meta.devices(&share).await.map_err(internal)?;
        if members.iter().any(|m| m.device_id == device) {
            Ok(share)
        } else {
            Err(Reply::error(
                ErrorCode::Refused,
                "not a member of that share",
            ))
        }
    }

    /// Counts `len` bytes more for `share`, or refuses the upload past its quota.
    async fn reserve(&self, share: &ShareId, len: u64) -> Res<()> {
        if (self.meta.reserve_bytes(share, len, self.quota).await).map_err(internal)? {
            return Ok(());
        }
        let used = self.meta.stored_bytes(share).await.map_err(internal)?;
        let quota = self.quota.unwrap_or(u64::MAX);
        tracing::info!("share {share}: an upload of {len} bytes refused (quota)");
        Err(Reply::error(
            ErrorCode::OverQuota,
            format!(
                "share {share} is over its quota on this hub: {used} of {quota} bytes stored, \
                 this upload is {len} bytes; nothing was stored"
            ),
        ))
    }

    /// Takes back bytes counted for an upload that stored nothing.
    async fn release(&self, share: &ShareId, len: u64) {
        if let Err(e) = self.meta.release_bytes(share, len).await {
            tracing::warn!("store: {e}");
        }
    }

    /// A sealed blob's epoch must be one the share has key slots for.
    async fn check_epoch(&self, share: &ShareId, sealed: &[u8]) -> Res<()> {
        let epoch = sealed
            .get(1..5)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| invalid("truncated"))?;
        let latest = self.meta.latest_epoch(share).await.map_err(internal)?;
        match latest {
            Some(l) if epoch == l.0 => Ok(()),
            Some(l) if epoch >= 1 && epoch < l.0 => Err(invalid(format!(
                "sealed under epoch {epoch}; the share is at epoch {} (a device was removed)",
                l.0
            ))),
            _ => Err(invalid("sealed under an epoch this share does not have")),
        }
    }

    /// Closes `device`'s connections if this hub no longer serves it (removed from its
    /// last share and not allowed to create shares).
    async fn close_if_unserved(&self, device: &DeviceId) {
        let d = device.to_string();
        let served = match (
            self.meta.is_allowed(&d).await,
            self.meta.member_shares(&d).await,
        ) {
            (Ok(allowed), Ok(shares)) => allowed || !shares.is_empty(),
            _ => return,
        };
        if served {
            return;
        }
        let conns = match self.conns.lock() {
            Ok(mut c) => c.remove(device).unwrap_or_default(),
            Err(_) => return,
        };
        for c in conns {
            c.close(
                VarInt::from_u32(CLOSE_UNKNOWN_DEVICE),
                b"this hub does not serve this device",
            );
        }
    }

    async fn list(&self, device: &str) -> Res<Reply> {
        let mut shares = Vec::new();
        for share in self.meta.member_shares(device).await.map_err(internal)? {
            let epoch = self.meta.latest_epoch(&share).await.map_err(internal)?;
            let slots = match epoch {
                Some(e) => self.meta.key_slots(&share, e).await.map_err(internal)?,
                None => Vec::new(),
            };
            let mut older_slots = Vec::new();
            for e in 1..epoch.map_or(1, |e| e.0) {
                let mine = (self.meta.key_slots(&share, Epoch(e)).await)
                    .map_err(internal)?
                    .into_iter()
                    .find(|s| s.label == device);
                if let Some(s) = mine {
                    older_slots.push(EpochSlot {
                        epoch: e,
                        slot: s.slot,
                    });
                }
            }
            let removed = self.meta.removed_devices(&share).await.map_err(internal)?;
            let slot_holders = slots.iter().map(|s| s.label.clone()).collect();
            let members = (self
                .meta
                .devices(&share)
                .await
                .map_err(internal)?
                .into_iter())
            .map(|m| Member {
                has_slot: slots.iter().any(|s| s.label == m.device_id),
                device_id: m.device_id,
                recipient: m.recipient,
            })
            .collect();
            let head = self.meta.manifest_head(&share).await.map_err(internal)?;
            let logs = (self
                .meta
                .log_heads(&share)
                .await
                .map_err(internal)?
                .into_iter())
            .map(|(device_id, upto)| LogHead { device_id, upto })
            .collect();
            shares.push(HubShare {
                share_id: share.to_string(),
                members,
                epoch: epoch.map_or(0, |e| e.0),
                my_slot: (slots.into_iter())
                    .find(|s| s.label == device)
                    .map(|s| s.slot)
                    .unwrap_or_default(),
                head_version: head.as_ref().map_or(0, |h| h.version),
                head: head.map(|h| h.manifest).unwrap_or_default(),
                logs,
                slot_holders,
                older_slots,
                removed,
                stored_bytes: (self.meta.stored_bytes(&share).await).map_err(internal)?,
                quota: self.quota.unwrap_or(0),
            });
        }
        Ok(Reply {
            rep: Some(Rep::Shares(SharesReply { shares })),
        })
    }

    async fn create(&self, device: &str, r: CreateShare) -> Res<Reply> {
        let share: ShareId = r.share_id.parse().map_err(|_| invalid("not a share ID"))?;
        if r.members.len() > 256 {
            return Err(Reply::error(ErrorCode::TooLarge, "too many members"));
        }
        for m in &r.members {
            m.parse::<DeviceId>()
                .map_err(|_| invalid(format!("{m:?} is not a device ID")))?;
        }
        let existing = self.meta.devices(&share).await.map_err(internal)?;
        if existing.is_empty() {
            if !self.meta.is_allowed(device).await.map_err(internal)? {
                return Err(Reply::error(
                    ErrorCode::Refused,
                    "this device may not create shares on this hub",
                ));
            }
        } else if !existing.iter().any(|m| m.device_id == device) {
            return Err(Reply::error(
                ErrorCode::Refused,
                "not a member of that share",
            ));
        }
        let removed = self.meta.removed_devices(&share).await.map_err(internal)?;
        let mut all = r.members;
        all.push(device.to_string());
        for m in all {
            // A removed device is not added back (a member that has not heard of the
            // removal yet still lists it).
            if existing.iter().any(|e| e.device_id == m) || removed.contains(&m) {
                continue;
            }
            let rec = DeviceRecord {
                device_id: m,
                recipient: String::new(),
            };
            self.meta.add_device(&share, &rec).await.map_err(internal)?;
        }
        Ok(Reply::ok())
    }

    /// A change to `share` by `by`: its other connected members are told, by this node
    /// or (several nodes on one database) by every node once the database announces it.
    async fn changed(&self, share: &ShareId, by: &DeviceId) {
        if !self.cluster.load(Ordering::Relaxed) {
            self.notify(share, Some(by)).await;
        }
    }

    /// Tells every connected member of `share` (but `by`) that it changed.
    async fn notify(&self, share: &ShareId, by: Option<&DeviceId>) {
        let members = match self.meta.devices(share).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("store: {e}");
                return;
            }
        };
        let targets: Vec<Connection> = match self.conns.lock() {
            Ok(conns) => (conns.iter())
                .filter(|(d, _)| {
                    Some(*d) != by && members.iter().any(|m| m.device_id == d.to_string())
                })
                .flat_map(|(_, c)| c.iter().filter(|c| c.close_reason().is_none()).cloned())
                .collect(),
            Err(_) => return,
        };
        for conn in targets {
            let msg = Changed {
                share_id: share.to_string(),
            };
            tokio::spawn(async move {
                let Ok((mut send, _recv)) = conn.open_bi().await else {
                    return;
                };
                if write_msg(&mut send, &msg).await.is_ok() {
                    let _ = send.finish();
                }
            });
        }
    }
}

fn conflict(head: u64) -> Reply {
    Reply {
        rep: Some(Rep::Error(HubError {
            code: ErrorCode::Conflict as i32,
            message: "the log or head moved".into(),
            head,
        })),
    }
}

fn object_id(raw: &[u8]) -> Res<ObjectId> {
    <[u8; 32]>::try_from(raw)
        .map(ObjectId::from_bytes)
        .map_err(|_| invalid("an object ID is 32 bytes"))
}

/// A blob a device sealed must be within `cap`, start with format 1 and known flags,
/// and have a length sealing produces.
fn check_sealed(data: &[u8], cap: usize) -> Res<()> {
    if data.len() > cap {
        return Err(Reply::error(
            ErrorCode::TooLarge,
            format!("{} bytes is over the {cap}-byte cap", data.len()),
        ));
    }
    if data.first() != Some(&1) || data.get(5).is_none_or(|f| f & !1 != 0) {
        return Err(invalid("not a sealed object"));
    }
    if !plausible_sealed_len(data.len()) {
        return Err(invalid("not a length a sealed object has"));
    }
    Ok(())
}
