//! Content between devices: pieces pulled by hash, many in flight at once.
//!
//! - **Pipelined lanes.** A [`PeerContent`] keeps up to [`LANES`] QUIC streams open
//!   to the member ("lanes"); each carries `PieceRequest`s one after another and the
//!   member answers each in the order asked, so a request costs no stream set-up and
//!   no round trip of its own. Several lanes, so one lost packet stalls one lane, not
//!   every piece in flight (QUIC orders bytes per stream). A member that does not
//!   announce [`PIPELINED`] gets one stream per piece (still several at once).
//! - **Fetched ahead, bounded.** The engine announces the pieces it will read
//!   ([`ChunkSource::prefetch`]); a dispatcher sends them in that order while the
//!   bytes asked for and not yet read stay under [`AHEAD_BYTES`] (a bandwidth × delay
//!   of 1 Gbit/s × 65 ms, or 100 Mbit/s × 650 ms). A read of a piece not sent yet is sent at once, outside
//!   the budget, so a reader never waits behind pieces others asked for.
//! - **Compressed where it pays.** A device announcing [`ZSTD`] may get a piece as one
//!   zstd frame: the sender compresses only a piece whose first 4 KiB shrink by an
//!   eighth at level 1 (a cheap look that skips media and archives), and sends the
//!   frame only if it saves at least a sixteenth. The receiver decompresses into at
//!   most the piece's length, then checks the BLAKE3 as for any piece.
//!
//! - **Rate-limited.** Each request waits for its bytes in the buckets it is under (the
//!   share's, the device's: `limit.rs`) before it goes out, so the pulls stay under
//!   the limit and concurrent transfers share it.
//!
//! Every piece is checked against its BLAKE3 before it is used; bytes that are not the
//! piece asked for are never used.

use crate::connection::Connection;
use crate::error::{NetError, WireError};
use crate::limit::RateLimit;
use crate::wire::share::{PieceReply, PieceRequest, ENCODING_RAW, ENCODING_ZSTD};
use crate::wire::{Body, Envelope, PIPELINED, ZSTD};
use ferry_core::model::Hash;
use ferry_core::replica::{ChunkSource, Piece};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};

/// Streams kept open per peer content for pipelined requests.
pub const LANES: usize = 8;
/// Bytes of pieces asked for ahead and not read yet, at most.
pub const AHEAD_BYTES: usize = 8 << 20;
/// Pieces remembered as asked for ahead, at most (beyond, prefetch hints are dropped).
const AHEAD_PIECES: usize = 4096;
/// Longest wait for one piece.
pub const PIECE_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes a peer content moved, for status.
#[derive(Debug, Default)]
pub struct TransferStats {
    /// Pieces received and verified.
    pub pieces: AtomicU64,
    /// Their bytes as used (after decompression).
    pub bytes: AtomicU64,
    /// Their bytes as they crossed the link (piece data only, no framing).
    pub wire_bytes: AtomicU64,
}

impl TransferStats {
    /// Bytes compression saved.
    pub fn saved_by_compression(&self) -> u64 {
        (self.bytes.load(Ordering::Relaxed)).saturating_sub(self.wire_bytes.load(Ordering::Relaxed))
    }
}

/// What a request resolves to: the checked bytes (`None`: the member does not have
/// the piece, or sent something else), or why the transfer failed; with the share of
/// the ahead budget the bytes hold until read.
type Fetched = (
    Result<Option<Vec<u8>>, String>,
    Option<OwnedSemaphorePermit>,
);

struct Req {
    piece: Piece,
    tx: oneshot::Sender<Fetched>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Req {
    fn resolve(self, r: Result<Option<Vec<u8>>, String>) {
        let _ = self.tx.send((r, self.permit));
    }
}

enum Slot {
    /// Announced, waiting for budget.
    Queued { content: Hash },
    /// Sent; the answer arrives here.
    Sent {
        content: Hash,
        rx: oneshot::Receiver<Fetched>,
    },
}

impl Slot {
    fn content(&self) -> &Hash {
        match self {
            Slot::Queued { content } | Slot::Sent { content, .. } => content,
        }
    }
}

#[derive(Default)]
struct Ahead {
    slots: HashMap<Hash, Slot>,
    queue: VecDeque<Piece>,
}

struct Lane {
    tx: mpsc::UnboundedSender<Req>,
    /// Bytes asked on this lane and not answered yet.
    load: Arc<AtomicU64>,
}

struct Inner {
    conn: Connection,
    share_id: String,
    rt: tokio::runtime::Handle,
    pipelined: bool,
    zstd: bool,
    budget: Arc<Semaphore>,
    ahead: Mutex<Ahead>,
    wake: Arc<Notify>,
    lanes: Mutex<Vec<Lane>>,
    stats: Arc<TransferStats>,
    /// Bandwidth limits every request takes from before it goes out (the bytes asked
    /// for: a share's, a device's).
    limits: Vec<Arc<RateLimit>>,
    /// The content was dropped: no new lanes (they would keep it alive).
    closed: std::sync::atomic::AtomicBool,
}

/// Content of a member device's folder, pulled piece by piece over a connection. Used
/// from the engine's copy workers (plain threads): each read blocks on the runtime.
pub struct PeerContent {
    inner: Arc<Inner>,
}

impl PeerContent {
    /// Content of share `share_id` on `conn`'s device. Must be called inside a tokio
    /// runtime (its tasks run there).
    pub fn new(
        conn: Connection,
        share_id: String,
        stats: Arc<TransferStats>,
        limits: Vec<Arc<RateLimit>>,
    ) -> PeerContent {
        // Pipelining needs the member to know it; zstd replies come only to a device
        // that announced it (this build does), so they are taken whoever sends them.
        let pipelined = conn.hello().has(PIPELINED);
        let zstd = crate::wire::FEATURES.contains(&ZSTD);
        let inner = Arc::new(Inner {
            conn,
            share_id,
            rt: tokio::runtime::Handle::current(),
            pipelined,
            zstd,
            budget: Arc::new(Semaphore::new(AHEAD_BYTES)),
            ahead: Mutex::new(Ahead::default()),
            wake: Arc::new(Notify::new()),
            lanes: Mutex::new(Vec::new()),
            stats,
            limits,
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        let (weak, wake, budget) = (
            Arc::downgrade(&inner),
            inner.wake.clone(),
            inner.budget.clone(),
        );
        inner.rt.spawn(dispatch(weak, wake, budget));
        PeerContent { inner }
    }

    /// What this content moved so far.
    pub fn stats(&self) -> Arc<TransferStats> {
        self.inner.stats.clone()
    }
}

impl Drop for PeerContent {
    fn drop(&mut self) {
        // The lanes finish their streams once their replies are in (they hold the
        // content until then); the dispatcher notices the content is gone.
        self.inner.closed.store(true, Ordering::Relaxed);
        if let Ok(mut lanes) = self.inner.lanes.lock() {
            lanes.clear();
        }
        self.inner.wake.notify_one();
    }
}

/// Sends announced pieces in order while the budget allows; ends with the content.
async fn dispatch(inner: Weak<Inner>, wake: Arc<Notify>, budget: Arc<Semaphore>) {
    loop {
        let next = {
            let Some(inner) = inner.upgrade() else { return };
            let Ok(mut ahead) = inner.ahead.lock() else {
                return;
            };
            let mut next = None;
            while let Some(p) = ahead.queue.pop_front() {
                if matches!(ahead.slots.get(&p.hash), Some(Slot::Queued { .. })) {
                    next = Some(p);
                    break;
                }
            }
            next
        };
        let Some(piece) = next else {
            wake.notified().await;
            continue;
        };
        let want = (piece.len as usize).clamp(1, AHEAD_BYTES) as u32;
        let Ok(permit) = budget.clone().acquire_many_owned(want).await else {
            return;
        };
        let Some(inner) = inner.upgrade() else { return };
        if inner.closed.load(Ordering::Relaxed) {
            return;
        }
        let (tx, rx) = oneshot::channel();
        {
            let Ok(mut ahead) = inner.ahead.lock() else {
                return;
            };
            match ahead.slots.get_mut(&piece.hash) {
                Some(slot @ Slot::Queued { .. }) => {
                    let content = *slot.content();
                    *slot = Slot::Sent { content, rx };
                }
                _ => continue, // read meanwhile, or forgotten
            }
        }
        inner.send(Req {
            piece,
            tx,
            permit: Some(permit),
        });
    }
}

impl Inner {
    /// Puts a request on the least loaded lane, opening lanes as needed.
    fn send(self: &Arc<Self>, req: Req) {
        let Ok(mut lanes) = self.lanes.lock() else {
            req.resolve(Err("lanes poisoned".into()));
            return;
        };
        if self.closed.load(Ordering::Relaxed) {
            lanes.clear();
            req.resolve(Err("the transfer ended".into()));
            return;
        }
        lanes.retain(|l| !l.tx.is_closed());
        let idle = lanes.iter().any(|l| l.load.load(Ordering::Relaxed) == 0);
        if lanes.is_empty() || (!idle && lanes.len() < LANES) {
            let (tx, rx) = mpsc::unbounded_channel();
            let load = Arc::new(AtomicU64::new(0));
            self.rt.spawn(lane(self.clone(), rx, load.clone()));
            lanes.push(Lane { tx, load });
        }
        let Some(best) = lanes.iter().min_by_key(|l| l.load.load(Ordering::Relaxed)) else {
            req.resolve(Err("no lane".into()));
            return;
        };
        best.load
            .fetch_add(u64::from(req.piece.len), Ordering::Relaxed);
        if let Err(mpsc::error::SendError(req)) = best.tx.send(req) {
            req.resolve(Err("the stream to the device closed".into()));
        }
    }

    /// Checks a reply against the piece asked for: its bytes, or `None` (not there,
    /// or not the piece: logged, never used).
    fn check(&self, piece: &Piece, reply: PieceReply) -> Option<Vec<u8>> {
        if !reply.found {
            return None;
        }
        let wire = reply.data.len() as u64;
        let data = match reply.encoding {
            ENCODING_RAW => reply.data,
            ENCODING_ZSTD if self.zstd => {
                match zstd::bulk::decompress(&reply.data, piece.len as usize) {
                    Ok(d) => d,
                    Err(e) => {
                        self.lie(&format!("a zstd frame that does not decompress: {e}"));
                        return None;
                    }
                }
            }
            other => {
                self.lie(&format!(
                    "encoding {other}, which this device did not ask for"
                ));
                return None;
            }
        };
        if data.len() != piece.len as usize || Hash::of(&data) != piece.hash {
            self.lie("bytes that are not the piece asked for");
            return None;
        }
        self.stats.pieces.fetch_add(1, Ordering::Relaxed);
        (self.stats.bytes).fetch_add(data.len() as u64, Ordering::Relaxed);
        self.stats.wire_bytes.fetch_add(wire, Ordering::Relaxed);
        Some(data)
    }

    fn lie(&self, what: &str) {
        tracing::warn!("{} sent {what}; not used", self.conn.remote().short());
    }
}

/// One lane: a stream carrying requests in order and their replies in the same order
/// (or, to a member without pipelining, one stream per request).
async fn lane(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Req>, load: Arc<AtomicU64>) {
    if !inner.pipelined {
        while let Some(req) = rx.recv().await {
            for l in &inner.limits {
                l.take(u64::from(req.piece.len)).await;
            }
            let (inner, load) = (inner.clone(), load.clone());
            tokio::spawn(async move {
                let len = u64::from(req.piece.len);
                let r = single(&inner, &req.piece).await;
                load.fetch_sub(len, Ordering::Relaxed);
                req.resolve(r);
            });
        }
        return;
    }
    let stream = match inner.conn.open_bi().await {
        Ok(s) => s,
        Err(e) => {
            rx.close();
            while let Ok(req) = rx.try_recv() {
                req.resolve(Err(e.to_string()));
            }
            return;
        }
    };
    let (mut w, mut r) = stream.split();
    let (ptx, mut prx) = mpsc::unbounded_channel::<Req>();
    let (share_id, limits) = (inner.share_id.clone(), inner.limits.clone());
    let writer = async move {
        while let Some(req) = rx.recv().await {
            for l in &limits {
                l.take(u64::from(req.piece.len)).await;
            }
            let msg: Envelope = PieceRequest::of(&share_id, &req.piece).into();
            if ptx.send(req).is_err() {
                break; // the reader stopped: so does the lane
            }
            if w.send(&msg).await.is_err() {
                break;
            }
        }
        w.finish();
    };
    let reader = async {
        while let Some(req) = prx.recv().await {
            let got = match r.recv().await {
                Ok(Some(Envelope {
                    body: Some(Body::PieceReply(reply)),
                })) => Ok(reply),
                Ok(Some(Envelope { body: Some(other) })) => Err(WireError::Unexpected {
                    expected: "PieceReply",
                    got: other.name(),
                }
                .to_string()),
                Ok(_) => Err(WireError::Truncated.to_string()),
                Err(e) => Err(e.to_string()),
            };
            load.fetch_sub(u64::from(req.piece.len), Ordering::Relaxed);
            match got {
                Ok(reply) => {
                    let checked = inner.check(&req.piece, reply);
                    req.resolve(Ok(checked));
                }
                Err(e) => {
                    req.resolve(Err(e.clone()));
                    prx.close();
                    while let Ok(req) = prx.try_recv() {
                        req.resolve(Err(e.clone()));
                    }
                    return;
                }
            }
        }
    };
    tokio::join!(writer, reader);
}

/// One piece on a stream of its own (a member without pipelining).
async fn single(inner: &Inner, piece: &Piece) -> Result<Option<Vec<u8>>, String> {
    let fetch = async {
        let mut s = inner.conn.open_bi().await?;
        s.send(&PieceRequest::of(&inner.share_id, piece).into())
            .await?;
        s.finish();
        match s.recv().await? {
            Some(Envelope {
                body: Some(Body::PieceReply(r)),
            }) => Ok::<_, NetError>(r),
            Some(Envelope { body: Some(other) }) => Err(WireError::Unexpected {
                expected: "PieceReply",
                got: other.name(),
            }
            .into()),
            _ => Err(WireError::Truncated.into()),
        }
    };
    match fetch.await {
        Ok(reply) => Ok(inner.check(piece, reply)),
        Err(e) => Err(e.to_string()),
    }
}

impl ChunkSource for PeerContent {
    fn prefetch(&self, upcoming: &[Piece]) {
        let Ok(mut ahead) = self.inner.ahead.lock() else {
            return;
        };
        let mut added = false;
        for piece in upcoming {
            if ahead.slots.len() >= AHEAD_PIECES {
                break;
            }
            if ahead.slots.contains_key(&piece.hash) {
                continue;
            }
            ahead.slots.insert(
                piece.hash,
                Slot::Queued {
                    content: piece.content,
                },
            );
            ahead.queue.push_back(*piece);
            added = true;
        }
        drop(ahead);
        if added {
            self.inner.wake.notify_one();
        }
    }

    fn forget(&self, content: &Hash) {
        if let Ok(mut ahead) = self.inner.ahead.lock() {
            ahead.slots.retain(|_, s| s.content() != content);
        }
    }

    fn read(&self, piece: &Piece, buf: &mut Vec<u8>) -> ferry_core::Result<bool> {
        let inner = &self.inner;
        let sent = match inner.ahead.lock() {
            Ok(mut ahead) => match ahead.slots.remove(&piece.hash) {
                Some(Slot::Sent { rx, .. }) => Some(rx),
                _ => None, // a queued one is sent now instead (the dispatcher skips it)
            },
            Err(_) => None,
        };
        let rx = match sent {
            Some(rx) => rx,
            None => {
                let (tx, rx) = oneshot::channel();
                inner.send(Req {
                    piece: *piece,
                    tx,
                    permit: None,
                });
                rx
            }
        };
        let failed = |why: String| {
            ferry_core::Error::Unavailable(format!(
                "{} bytes of content {} from {}: {why}",
                piece.len,
                piece.content,
                inner.conn.remote().short()
            ))
        };
        // Waited for on the runtime (the timer lives there) and handed over by a plain
        // channel: `block_on` would panic here if the daemon is shutting its runtime
        // down, while a dropped task just closes the channel.
        let (done, got) = std::sync::mpsc::sync_channel(1);
        inner.rt.spawn(async move {
            let _ = done.send(tokio::time::timeout(PIECE_TIMEOUT, rx).await);
        });
        let Ok(got) = got.recv() else {
            return Err(failed("this device is stopping".into()));
        };
        match got {
            Ok(Ok((Ok(Some(bytes)), _permit))) => {
                *buf = bytes;
                Ok(true)
            }
            Ok(Ok((Ok(None), _))) => Ok(false),
            Ok(Ok((Err(e), _))) => Err(failed(e)),
            Ok(Err(_)) => Err(failed("the connection was lost".into())),
            Err(_) => Err(failed("no answer in time".into())),
        }
    }
}

thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// The piece as one zstd frame when that pays: `None` for a small piece, one whose
/// first 4 KiB do not shrink by an eighth (already compressed), or one whose frame
/// would not save a sixteenth.
pub(crate) fn compress_piece(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() < 512 {
        return None;
    }
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(1).ok();
        }
        let c = c.as_mut()?;
        let sample = &raw[..raw.len().min(4096)];
        let s = c.compress(sample).ok()?;
        if s.len() * 8 > sample.len() * 7 {
            return None;
        }
        let whole = c.compress(raw).ok()?;
        (whole.len() * 16 <= raw.len() * 15).then_some(whole)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_compresses_and_random_bytes_do_not() {
        let text: Vec<u8> = (0..65536u32)
            .flat_map(|i| format!("line {} of a log\n", i % 97).into_bytes())
            .take(65536)
            .collect();
        let c = compress_piece(&text).expect("text shrinks");
        assert!(c.len() < text.len() / 4);
        assert_eq!(zstd::bulk::decompress(&c, text.len()).unwrap(), text);
        // Pseudo-random bytes (xorshift): incompressible, sent raw.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..65536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(compress_piece(&noise).is_none());
        assert!(compress_piece(b"tiny").is_none());
    }

    #[test]
    fn a_frame_larger_than_the_piece_is_refused() {
        let big = vec![0u8; 1 << 20];
        let frame = zstd::bulk::compress(&big, 1).unwrap();
        // Decompressing into at most 64 KiB fails instead of growing.
        assert!(zstd::bulk::decompress(&frame, 65536).is_err());
    }
}
