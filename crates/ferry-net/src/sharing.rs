//! Shared folders between devices: what a node says and answers about them.
//!
//! - When a connection opens, and whenever they change, each side sends the
//!   [`ShareList`] of shares it has with the other; a share the receiver does not have
//!   is recorded as an offer (`ferry share list`), one it has ties the sender's folder
//!   to its own (`share::attach_member`).
//! - Index exchange is pulled: a device asks for a member's entries changed after the
//!   sequence it holds them to, in batches, each stored in one transaction (a cut
//!   exchange resumes there). A device whose folder changed sends [`Changed`] to its
//!   connected members, who pull at once: no polling between devices.
//! - Content is pulled by hash, piece by piece ([`PeerContent`], `transfer.rs`: many
//!   requests in flight on a few pipelined streams, zstd where it pays), and every
//!   piece is checked against its BLAKE3 before it is used. A member answers the
//!   requests of one stream in the order asked.
//!
//! Every request names a share and is answered only if the asking device is a member.

use crate::compress::CompressionGate;
use crate::connection::{CloseCode, Connection, FramedStream};
use crate::error::{NetError, WireError};
use crate::identity::DeviceId;
use crate::limit::RateLimit;
use crate::transfer::{compress_piece, TransferStats};
use crate::wire::share::{
    Changed, IndexBatch, IndexRequest, PieceReply, PieceRequest, ShareInfo, ShareList, WireEntry,
    ENCODING_RAW, ENCODING_ZSTD,
};
use crate::wire::{Body, Envelope, ZSTD};
use ferry_core::bandwidth::BandwidthLimit;
use ferry_core::index::{Index, ShareOffer, ShareRow};
use ferry_core::plan::{ConflictPolicy, SyncMode};
use ferry_core::replica::open_location;
use ferry_core::replica::{ChunkSource, FolderContent};
use ferry_core::share;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

pub use crate::transfer::PeerContent;
use tokio::sync::mpsc::UnboundedSender;

/// Entries per index batch (a batch of 1,000 entries is well under the frame cap).
const BATCH: usize = 1000;
/// Piece requests of one stream read and answered concurrently (replies still go
/// out in the order asked).
const SERVE_AHEAD: usize = 16;

/// A node's shared-folder state.
pub(crate) struct Sharing {
    index: Mutex<Index>,
    /// The index's file, for the connections of the folders answering piece requests.
    db: std::path::PathBuf,
    /// Conduits whose member's entries changed (a run is due).
    changes: Option<UnboundedSender<i64>>,
    /// The list last sent to each device.
    sent: Mutex<HashMap<DeviceId, ShareList>>,
    /// Each share's folder sequence last announced with `Changed`.
    announced: Mutex<HashMap<String, u64>>,
    /// Index pulls running (share, device) and whether another was asked meanwhile.
    pulling: Mutex<HashMap<(String, DeviceId), bool>>,
    /// Each share's folder, opened once, answering piece requests (with an index
    /// connection of its own, so reads do not wait behind index exchange).
    folders: Mutex<HashMap<String, Arc<FolderContent>>>,
    /// (share, device) pulled at least once since the device connected.
    pulled: Mutex<HashSet<(String, DeviceId)>>,
    /// Content received from each device since the node started.
    received: Mutex<HashMap<DeviceId, Arc<TransferStats>>>,
    /// Content sent to each device since the node started.
    served: Mutex<HashMap<DeviceId, Arc<TransferStats>>>,
    /// Per device, the byte counts at the last tick and the rates since the one before
    /// ((received, sent) bytes, (received, sent) bytes per second, when).
    rates: Mutex<HashMap<DeviceId, RateSample>>,
    /// Bandwidth limits by what they limit (`share-rx:ID`, `share-tx:ID`, `dev-rx:ID`,
    /// `dev-tx:ID`): one bucket each, shared by the transfers under it.
    limits: Mutex<HashMap<String, Arc<RateLimit>>>,
    /// Per device, whether answering it compresses (zstd only while the link is the
    /// bottleneck).
    gates: Mutex<HashMap<DeviceId, Arc<CompressionGate>>>,
    /// Each device's bandwidth limit (a rate or a schedule), as the store says.
    device_limits: Mutex<HashMap<DeviceId, BandwidthLimit>>,
}

#[derive(Clone, Copy)]
struct RateSample {
    bytes: (u64, u64),
    rate: (f64, f64),
    at: std::time::Instant,
}

type Res<T> = Result<T, NetError>;

fn core(e: ferry_core::Error) -> NetError {
    NetError::Share(e.to_string())
}

impl Sharing {
    pub(crate) fn open(home: &Path, changes: Option<UnboundedSender<i64>>) -> Res<Arc<Sharing>> {
        let db = home.join("index.db");
        let index = Index::open(&db).map_err(core)?;
        Ok(Arc::new(Sharing {
            index: Mutex::new(index),
            db,
            changes,
            sent: Mutex::new(HashMap::new()),
            announced: Mutex::new(HashMap::new()),
            pulling: Mutex::new(HashMap::new()),
            folders: Mutex::new(HashMap::new()),
            pulled: Mutex::new(HashSet::new()),
            received: Mutex::new(HashMap::new()),
            served: Mutex::new(HashMap::new()),
            rates: Mutex::new(HashMap::new()),
            limits: Mutex::new(HashMap::new()),
            device_limits: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
        }))
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
        .map_err(|e| NetError::Share(format!("index task failed: {e}")))?
        .map_err(core)
    }

    /// The shares this device has with `device`, as it tells that device.
    fn list_for(index: &Index, device: &DeviceId) -> ferry_core::Result<ShareList> {
        let mut shares = Vec::new();
        for (s, _) in index.shares_with(&device.to_string())? {
            let loc = index.location(s.location_id)?;
            shares.push(ShareInfo {
                share_id: s.id.clone(),
                folder_name: (loc.root.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                mode: s.mode.as_str().to_string(),
                conflict_policy: s.conflict_policy.as_str().to_string(),
                folder_id: loc.uuid,
            });
        }
        Ok(ShareList { shares })
    }

    /// A connection to `conn`'s device is up: answer its requests, tell it our shares.
    pub(crate) fn connected(self: &Arc<Self>, conn: Connection) {
        let me = self.clone();
        let c = conn.clone();
        tokio::spawn(async move {
            // Until the connection is gone.
            while let Ok(stream) = c.accept_bi().await {
                let (me, c) = (me.clone(), c.clone());
                tokio::spawn(async move {
                    if let Err(e) = me.answer(&c, stream).await {
                        tracing::info!("request from {}: {e}", c.remote().short());
                    }
                });
            }
        });
        if let Ok(mut sent) = self.sent.lock() {
            sent.remove(&conn.remote());
        }
        if let Ok(mut pulled) = self.pulled.lock() {
            pulled.retain(|(_, d)| *d != conn.remote());
        }
        let me = self.clone();
        tokio::spawn(async move { me.tell_shares(&conn).await });
    }

    /// Once a tick: resend share lists that changed, announce folders that changed.
    pub(crate) async fn tick(self: &Arc<Self>, conns: Vec<Connection>) {
        self.sample_rates();
        for conn in &conns {
            self.tell_shares(conn).await;
        }
        let changed = self
            .with_index(|index| {
                let mut out = Vec::new();
                for s in index.shares()? {
                    let seq = index.location_sequence(s.location_id)?;
                    let members: Vec<(String, bool)> = (index.share_members(&s.id)?.into_iter())
                        .map(|m| (m.device, m.conduit_id.is_some()))
                        .collect();
                    out.push((s.id, seq, members));
                }
                Ok(out)
            })
            .await;
        let changed = match changed {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("reading shares: {e}");
                return;
            }
        };
        for (share_id, seq, members) in changed {
            // A member tied but not pulled since it connected: pull its entries now.
            for conn in &conns {
                let tied = members
                    .iter()
                    .any(|(d, t)| *t && *d == conn.remote().to_string());
                let first = tied
                    && (self.pulled.lock())
                        .map(|mut p| p.insert((share_id.clone(), conn.remote())))
                        .unwrap_or(false);
                if first {
                    self.pull(conn.clone(), share_id.clone(), true);
                }
            }
            let moved = {
                let Ok(mut a) = self.announced.lock() else {
                    continue;
                };
                a.insert(share_id.clone(), seq) != Some(seq)
            };
            if !moved {
                continue;
            }
            let is_member =
                |c: &&Connection| members.iter().any(|(d, _)| *d == c.remote().to_string());
            for conn in conns.iter().filter(is_member) {
                let conn = conn.clone();
                let msg: Envelope = Changed {
                    share_id: share_id.clone(),
                }
                .into();
                tokio::spawn(async move {
                    if let Err(e) = send_one(&conn, &msg).await {
                        tracing::debug!("telling {} of a change: {e}", conn.remote().short());
                    }
                });
            }
        }
    }

    /// Sends `conn`'s device our list of shares with it, if it changed since last sent.
    async fn tell_shares(self: &Arc<Self>, conn: &Connection) {
        let device = conn.remote();
        let list = match self.with_index(move |i| Self::list_for(i, &device)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("listing shares for {}: {e}", device.short());
                return;
            }
        };
        {
            let Ok(sent) = self.sent.lock() else { return };
            if sent.get(&device) == Some(&list) {
                return;
            }
        }
        match send_one(conn, &list.clone().into()).await {
            Ok(()) => {
                if let Ok(mut sent) = self.sent.lock() {
                    sent.insert(device, list);
                }
            }
            Err(e) => tracing::debug!("sending shares to {}: {e}", device.short()),
        }
    }

    /// Answers one stream the remote opened.
    async fn answer(self: &Arc<Self>, conn: &Connection, mut stream: FramedStream) -> Res<()> {
        let device = conn.remote();
        let Some(msg) = stream.recv().await? else {
            return Ok(());
        };
        match msg.body {
            Some(Body::ShareList(list)) => {
                let attached = self
                    .with_index(move |i| apply_list(i, &device, list))
                    .await?;
                // Tied (perhaps just now): the conduit runs once whatever the pull
                // brings, so a daemon that just got it starts watching the folder.
                for share_id in attached {
                    self.pull(conn.clone(), share_id, true);
                }
                Ok(())
            }
            Some(Body::Changed(c)) => {
                self.pull(conn.clone(), c.share_id, false);
                Ok(())
            }
            Some(Body::IndexRequest(r)) => self.serve_index(&device, r, &mut stream).await,
            Some(Body::PieceRequest(r)) => self.serve_pieces(conn, r, stream).await,
            Some(other) => Err(WireError::Unexpected {
                expected: "a request",
                got: other.name(),
            }
            .into()),
            None => Err(WireError::Empty.into()),
        }
    }

    /// The share `share_id` if `device` is one of its members.
    async fn member_share(self: &Arc<Self>, device: &DeviceId, share_id: String) -> Res<ShareRow> {
        let d = device.to_string();
        let found = self
            .with_index(move |i| {
                let s = i.share(&share_id)?;
                let m = i.share_member(&share_id, &d)?;
                Ok(s.filter(|_| m.is_some()))
            })
            .await?;
        found.ok_or_else(|| {
            NetError::Share(format!("{} is not a member of that share", device.short()))
        })
    }

    async fn serve_index(
        self: &Arc<Self>,
        device: &DeviceId,
        req: IndexRequest,
        stream: &mut FramedStream,
    ) -> Res<()> {
        let share = self.member_share(device, req.share_id.clone()).await?;
        let mut after = req.after;
        loop {
            let s = share.clone();
            let entries = self
                .with_index(move |i| share::outgoing(i, &s, after, BATCH))
                .await?;
            let done = entries.len() < BATCH;
            let upto = entries
                .iter()
                .map(|e| e.cache.sequence)
                .max()
                .unwrap_or(after);
            let batch = IndexBatch {
                share_id: share.id.clone(),
                entries: (entries.iter())
                    .map(|e| WireEntry::from_state(&e.path, &e.state))
                    .collect(),
                upto,
                done,
            };
            stream.send(&batch.into()).await?;
            if done {
                stream.finish();
                return Ok(());
            }
            after = upto;
        }
    }

    /// Answers piece requests on one stream, `first` and any that follow, each in
    /// the order asked; up to [`SERVE_AHEAD`] are read (and compressed) at once.
    async fn serve_pieces(
        self: &Arc<Self>,
        conn: &Connection,
        first: PieceRequest,
        stream: FramedStream,
    ) -> Res<()> {
        // FERRY_NO_ZSTD (measurements only): answer every piece raw.
        let zstd = conn.hello().has(ZSTD) && std::env::var_os("FERRY_NO_ZSTD").is_none();
        // FERRY_ZSTD=always (measurements only): compress whatever the link.
        let always = std::env::var("FERRY_ZSTD").is_ok_and(|v| v == "always");
        let device = conn.remote();
        let stats = self.served_to(&device);
        // A device answered raw has no gate to show.
        let gate = if zstd {
            self.gate_of(&device)
        } else {
            Arc::default()
        };
        let link = conn.clone();
        let (mut w, mut r) = stream.split();
        let (tx, mut rx) = tokio::sync::mpsc::channel(SERVE_AHEAD);
        let me = self.clone();
        let reader = async move {
            // Folders of the shares asked for on this stream (membership checked once).
            type Serving = (Arc<FolderContent>, Vec<Arc<RateLimit>>);
            let mut folders: HashMap<String, Serving> = HashMap::new();
            let mut next = Some(first);
            loop {
                let req = match next.take() {
                    Some(r) => r,
                    None => match r.recv().await? {
                        None => return Ok::<_, NetError>(()),
                        Some(Envelope {
                            body: Some(Body::PieceRequest(r)),
                        }) => r,
                        Some(Envelope { body: Some(other) }) => {
                            return Err(WireError::Unexpected {
                                expected: "PieceRequest",
                                got: other.name(),
                            }
                            .into())
                        }
                        Some(Envelope { body: None }) => return Err(WireError::Empty.into()),
                    },
                };
                let (folder, limits) = match folders.get(&req.share_id) {
                    Some(f) => f.clone(),
                    None => {
                        let share = me.member_share(&device, req.share_id.clone()).await?;
                        let f = me.folder(&share).await?;
                        let (sid, d) = (share.id.clone(), device.to_string());
                        let rate = me
                            .with_index(move |i| {
                                let m = i.share_member(&sid, &d)?;
                                let c = match m.and_then(|m| m.conduit_id) {
                                    Some(c) => i.conduit(c)?,
                                    None => None,
                                };
                                let rate = c.map(|c| c.bandwidth_limit).unwrap_or(0);
                                share_limit(i, &sid, rate)
                            })
                            .await?;
                        let limits = me.limits_for("tx", &share.id, rate, &device);
                        folders.insert(req.share_id.clone(), (f.clone(), limits.clone()));
                        (f, limits)
                    }
                };
                let piece = req.piece()?;
                if piece.len as usize > ferry_core::model::CHUNK_MAX {
                    return Err(
                        WireError::Invalid(format!("a piece of {} bytes", piece.len)).into(),
                    );
                }
                // Compress only while the link (or a limit) is slower than zstd here.
                let compress = zstd
                    && (always
                        || gate.should_compress(std::time::Instant::now(), || {
                            let limit = limits.iter().map(|l| l.rate()).filter(|r| *r > 0).min();
                            (link.bandwidth_estimate(), limit.unwrap_or(0))
                        }));
                let g = gate.clone();
                let job = tokio::task::spawn_blocking(move || {
                    answer_piece(&folder, &piece, compress.then_some(&*g))
                });
                if tx.send((job, limits)).await.is_err() {
                    return Ok(()); // the writer stopped
                }
            }
        };
        let writer = async move {
            while let Some((job, limits)) = rx.recv().await {
                let reply = job
                    .await
                    .map_err(|e| NetError::Share(format!("piece task failed: {e}")))?
                    .map_err(core)?;
                stats.pieces.fetch_add(1, Ordering::Relaxed);
                stats
                    .wire_bytes
                    .fetch_add(reply.0.data.len() as u64, Ordering::Relaxed);
                stats.bytes.fetch_add(reply.1, Ordering::Relaxed);
                for l in &limits {
                    l.take(reply.0.data.len() as u64).await;
                }
                w.send(&reply.0.into()).await?;
            }
            w.finish();
            Ok::<_, NetError>(())
        };
        let (read, wrote) = tokio::join!(reader, writer);
        read.and(wrote)
    }

    fn stats_of(&self, device: &DeviceId) -> Arc<TransferStats> {
        let Ok(mut m) = self.received.lock() else {
            return Arc::default();
        };
        m.entry(*device).or_default().clone()
    }

    fn gate_of(&self, device: &DeviceId) -> Arc<CompressionGate> {
        let Ok(mut m) = self.gates.lock() else {
            return Arc::default();
        };
        m.entry(*device).or_default().clone()
    }

    /// Whether answering `device` compresses now (`None`: it was never answered).
    pub(crate) fn compressing(&self, device: &DeviceId) -> Option<bool> {
        let m = self.gates.lock().ok()?;
        m.get(device).map(|g| g.is_on())
    }

    fn served_to(&self, device: &DeviceId) -> Arc<TransferStats> {
        let Ok(mut m) = self.served.lock() else {
            return Arc::default();
        };
        m.entry(*device).or_default().clone()
    }

    /// Content moved with `device` since the node started, and the current rates.
    pub(crate) fn transfer_view(&self, device: &DeviceId) -> crate::status::TransferView {
        let (rx, tx) = (self.stats_of(device), self.served_to(device));
        let rate = (self.rates.lock().ok())
            .and_then(|r| r.get(device).map(|s| s.rate))
            .unwrap_or_default();
        crate::status::TransferView {
            received_bytes: rx.bytes.load(Ordering::Relaxed),
            received_wire_bytes: rx.wire_bytes.load(Ordering::Relaxed),
            sent_bytes: tx.bytes.load(Ordering::Relaxed),
            sent_wire_bytes: tx.wire_bytes.load(Ordering::Relaxed),
            saved_by_compression: rx.saved_by_compression() + tx.saved_by_compression(),
            receive_rate: rate.0,
            send_rate: rate.1,
            compressing: self.compressing(device),
        }
    }

    /// Samples each device's byte counts (once a tick) for its current rates.
    fn sample_rates(&self) {
        let now = std::time::Instant::now();
        let mut devices: HashSet<DeviceId> = HashSet::new();
        for m in [&self.received, &self.served] {
            if let Ok(m) = m.lock() {
                devices.extend(m.keys().copied());
            }
        }
        let Ok(mut rates) = self.rates.lock() else {
            return;
        };
        for d in devices {
            let bytes = (
                self.stats_of(&d).bytes.load(Ordering::Relaxed),
                self.served_to(&d).bytes.load(Ordering::Relaxed),
            );
            let sample = match rates.get(&d) {
                Some(prev) => {
                    let secs = now.duration_since(prev.at).as_secs_f64().max(1e-3);
                    RateSample {
                        bytes,
                        rate: (
                            bytes.0.saturating_sub(prev.bytes.0) as f64 / secs,
                            bytes.1.saturating_sub(prev.bytes.1) as f64 / secs,
                        ),
                        at: now,
                    }
                }
                None => RateSample {
                    bytes,
                    rate: (0.0, 0.0),
                    at: now,
                },
            };
            rates.insert(d, sample);
        }
    }

    /// This device's folder of `share`, opened once.
    async fn folder(self: &Arc<Self>, share: &ShareRow) -> Res<Arc<FolderContent>> {
        if let Some(f) = self
            .folders
            .lock()
            .ok()
            .and_then(|f| f.get(&share.id).cloned())
        {
            return Ok(f);
        }
        let (loc_id, db) = (share.location_id, self.db.clone());
        let loc = self
            .with_index(move |i| {
                let root = i.location(loc_id)?.root;
                let loc = open_location(i, &root, false)?;
                Ok(FolderContent::new(Index::open(&db)?, loc))
            })
            .await?;
        let loc = Arc::new(loc);
        if let Ok(mut f) = self.folders.lock() {
            f.insert(share.id.clone(), loc.clone());
        }
        Ok(loc)
    }

    /// Pulls `conn`'s device's entries of `share_id` (once at a time per share and
    /// device; a request meanwhile runs it again after), and asks for a run of the
    /// share's conduit when entries changed, or in any case with `run`.
    fn pull(self: &Arc<Self>, conn: Connection, share_id: String, mut run: bool) {
        let key = (share_id.clone(), conn.remote());
        {
            let Ok(mut p) = self.pulling.lock() else {
                return;
            };
            if let Some(again) = p.get_mut(&key) {
                *again = true;
                return;
            }
            p.insert(key.clone(), false);
        }
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match me.pull_once(&conn, &share_id).await {
                    Ok(Some((conduit, changed))) if changed || run => {
                        if let Some(tx) = &me.changes {
                            let _ = tx.send(conduit);
                        }
                    }
                    Ok(_) => {}
                    Err(NetError::Lie(why)) => {
                        tracing::warn!(
                            "entries of share {share_id} from {}: {why}; closing the connection",
                            conn.remote().short()
                        );
                        conn.close(CloseCode::Protocol, "sent entries that cannot be true");
                    }
                    Err(e) => tracing::info!(
                        "entries of share {share_id} from {}: {e}",
                        conn.remote().short()
                    ),
                }
                run = false;
                let Ok(mut p) = me.pulling.lock() else { return };
                match p.get_mut(&key) {
                    Some(again) if *again => *again = false,
                    _ => {
                        p.remove(&key);
                        return;
                    }
                }
            }
        });
    }

    /// One index pull: the share's conduit and whether entries changed (`None` when
    /// the member is not tied yet).
    async fn pull_once(
        self: &Arc<Self>,
        conn: &Connection,
        share_id: &str,
    ) -> Res<Option<(i64, bool)>> {
        let device = conn.remote().to_string();
        let (sid, d) = (share_id.to_string(), device.clone());
        let found = self
            .with_index(move |i| Ok(i.share(&sid)?.zip(i.share_member(&sid, &d)?)))
            .await?;
        let Some((share, member)) = found else {
            return Ok(None);
        };
        let Some(conduit) = member.conduit_id else {
            return Ok(None); // not tied yet: its share list comes first
        };
        let mut stream = conn.open_bi().await?;
        let req = IndexRequest {
            share_id: share_id.to_string(),
            after: member.received_seq,
        };
        stream.send(&req.into()).await?;
        stream.finish();
        let mut changed = 0;
        loop {
            let Some(msg) = stream.recv().await? else {
                return Err(WireError::Truncated.into());
            };
            let batch = match msg.body {
                Some(Body::IndexBatch(b)) if b.share_id == share_id => b,
                Some(other) => {
                    return Err(WireError::Unexpected {
                        expected: "IndexBatch",
                        got: other.name(),
                    }
                    .into())
                }
                None => return Err(WireError::Empty.into()),
            };
            let entries = (batch.entries.iter())
                .map(WireEntry::to_state)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| NetError::Lie(e.to_string()))?;
            let (s, d, upto) = (share.clone(), device.clone(), batch.upto);
            changed += match self
                .with_index(move |i| Ok(share::incoming(i, &s, &d, &entries, upto)))
                .await?
            {
                Ok(n) => n,
                Err(ferry_core::Error::Refused(why)) => return Err(NetError::Lie(why)),
                Err(e) => return Err(core(e)),
            };
            if batch.done {
                break;
            }
        }
        tracing::debug!(
            share = share_id,
            changed,
            "pulled entries from {}",
            conn.remote().short()
        );
        Ok(Some((conduit, changed > 0)))
    }

    /// Where a run of `conduit` reads the member device's content: a connection to it.
    pub(crate) async fn content_for(
        self: &Arc<Self>,
        conduit: i64,
        connection: impl Fn(&DeviceId) -> Option<Connection>,
    ) -> Option<PeerContent> {
        let found = self
            .with_index(move |i| {
                let rate = i.conduit(conduit)?.map(|c| c.bandwidth_limit).unwrap_or(0);
                match i.share_of_conduit(conduit)? {
                    Some(f) => {
                        let limit = share_limit(i, &f.0.id, rate)?;
                        Ok(Some((f, limit)))
                    }
                    None => Ok(None),
                }
            })
            .await
            .ok()??;
        let ((share, member), rate) = found;
        let device: DeviceId = member.device.parse().ok()?;
        let conn = connection(&device)?;
        let stats = self.stats_of(&device);
        let limits = self.limits_for("rx", &share.id, rate, &device);
        Some(PeerContent::new(conn, share.id, stats, limits))
    }

    /// The buckets a transfer of `share` with `device` takes from, in direction `dir`
    /// (`rx`: pulling, `tx`: answering): the share's (`rate`: its schedule, else its
    /// conduit's limit) and the device's, where set.
    fn limits_for(
        &self,
        dir: &str,
        share: &str,
        rate: BandwidthLimit,
        device: &DeviceId,
    ) -> Vec<Arc<RateLimit>> {
        let device_rate = (self.device_limits.lock().ok())
            .and_then(|m| m.get(device).cloned())
            .unwrap_or_default();
        [
            (format!("share-{dir}:{share}"), rate),
            (format!("dev-{dir}:{device}"), device_rate),
        ]
        .into_iter()
        .filter_map(|(key, rate)| self.limit(key, rate))
        .collect()
    }

    /// The bucket `key` at `rate` (`None` when it never limits), made or re-rated. A
    /// schedule's bucket reads the schedule at every take, so it is kept even while
    /// the clock is outside its windows.
    fn limit(&self, key: String, rate: BandwidthLimit) -> Option<Arc<RateLimit>> {
        let mut limits = self.limits.lock().ok()?;
        if rate.is_unlimited() {
            if let Some(l) = limits.get(&key) {
                l.set_rate(0);
            }
            return None;
        }
        let l = limits
            .entry(key)
            .or_insert_with(|| Arc::new(RateLimit::scheduled(rate.clone())));
        l.set_limit(rate);
        Some(l.clone())
    }

    /// The devices' bandwidth limits, as the store says now (read once a tick).
    pub(crate) fn set_device_limits(&self, limits: HashMap<DeviceId, BandwidthLimit>) {
        if let Ok(mut m) = self.device_limits.lock() {
            *m = limits;
        }
    }
}

/// The limit a share's transfers with one member take: the share's schedule when it
/// has one, else `rate` (its member conduit's limit, which `ferry conduit` edits).
fn share_limit(index: &Index, share: &str, rate: u64) -> ferry_core::Result<BandwidthLimit> {
    let limit = index.share_bandwidth(share)?;
    Ok(if limit.is_scheduled() {
        limit
    } else {
        BandwidthLimit::fixed(rate)
    })
}

/// Applies a device's share list: ties the shares this device has with it, records
/// the others as offers. Returns the shares tied (their entries can be pulled).
fn apply_list(
    index: &mut Index,
    device: &DeviceId,
    list: ShareList,
) -> ferry_core::Result<Vec<String>> {
    let d = device.to_string();
    let mut tied = Vec::new();
    let mut seen = HashSet::new();
    for info in list.shares {
        if !seen.insert(info.share_id.clone()) {
            continue;
        }
        match index.share(&info.share_id)? {
            Some(s) => {
                if index.share_member(&s.id, &d)?.is_none() {
                    tracing::info!(
                        "{} lists share {} without being a member here",
                        device.short(),
                        s.id
                    );
                    continue;
                }
                match share::attach_member(index, &s, &d, &info.folder_id) {
                    Ok(_) => tied.push(s.id),
                    Err(e) => tracing::warn!("share {} with {}: {e}", s.id, device.short()),
                }
            }
            None => {
                let (Ok(mode), Ok(policy)) = (
                    SyncMode::parse(&info.mode),
                    ConflictPolicy::parse(&info.conflict_policy),
                ) else {
                    tracing::info!(
                        "{} offers share {} with an unknown mode or policy",
                        device.short(),
                        info.share_id
                    );
                    continue;
                };
                let offer = ShareOffer {
                    share_id: info.share_id,
                    device: d.clone(),
                    folder_name: info.folder_name,
                    folder_id: info.folder_id,
                    mode,
                    conflict_policy: policy,
                    received_at: crate::node::unix_now(),
                };
                let known = index
                    .offers_of(&offer.share_id)?
                    .iter()
                    .any(|o| o.device == d);
                if !known {
                    tracing::info!(
                        "{} offers share {} (folder {:?}): accept it with `ferry accept {} DIR`",
                        device.short(),
                        offer.share_id,
                        offer.folder_name,
                        offer.share_id
                    );
                }
                index.record_offer(&offer)?;
            }
        }
    }
    Ok(tied)
}

/// The reply to one piece request read from `folder` (compressed when the asking
/// device takes zstd and it pays), with the piece's length when found.
fn answer_piece(
    folder: &FolderContent,
    piece: &ferry_core::replica::Piece,
    gate: Option<&CompressionGate>,
) -> ferry_core::Result<(PieceReply, u64)> {
    let mut buf = Vec::new();
    if !folder.read(piece, &mut buf)? {
        return Ok((PieceReply::default(), 0));
    }
    let len = buf.len() as u64;
    let compressed = gate.and_then(|g| {
        let start = std::time::Instant::now();
        let c = compress_piece(&buf);
        // Only whole compressions measure the speed (a skipped piece cost a 4 KiB try).
        if c.is_some() {
            g.record(len, start.elapsed());
        }
        c
    });
    let reply = match compressed {
        Some(c) => PieceReply {
            found: true,
            data: c,
            encoding: ENCODING_ZSTD,
        },
        None => PieceReply {
            found: true,
            data: buf,
            encoding: ENCODING_RAW,
        },
    };
    Ok((reply, len))
}

/// Opens a stream, sends one message, and closes our side.
async fn send_one(conn: &Connection, msg: &Envelope) -> Res<()> {
    let mut s = conn.open_bi().await?;
    s.send(msg).await?;
    s.finish();
    Ok(())
}
