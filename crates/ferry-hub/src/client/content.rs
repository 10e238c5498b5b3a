//! Content read back from a hub: a piece the engine asks for (a range of a content,
//! by the content's BLAKE3) is found in the objects the content was cut into (the list
//! came with the entry, sealed), fetched, opened (the object ID is bound into the
//! seal) and checked against the piece's BLAKE3 before it is used.

use super::book::HubBook;
use super::call;
use crate::protocol::{GetObject, Rep, Req};
use crate::{KeyRing, ObjectId};
use ferry_core::model::Hash;
use ferry_core::replica::{ChunkSource, Piece};
use ferry_net::iroh::endpoint::Connection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Objects kept in memory between reads (a piece may span two, and the next piece
/// often starts in the last one).
const CACHE: usize = 32;
const OBJECT_TIMEOUT: Duration = Duration::from_secs(60);

pub struct HubContent {
    conn: Connection,
    keys: KeyRing,
    book: Mutex<HubBook>,
    rt: tokio::runtime::Handle,
    cache: Mutex<HashMap<[u8; 32], Arc<Vec<u8>>>>,
}

impl HubContent {
    pub(crate) fn new(conn: Connection, keys: KeyRing, book: HubBook) -> HubContent {
        HubContent {
            conn,
            keys,
            book: Mutex::new(book),
            rt: tokio::runtime::Handle::current(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The plaintext of object `id`, fetched and opened (`None`: the hub lacks it).
    fn object(&self, id: &[u8]) -> ferry_core::Result<Option<Arc<Vec<u8>>>> {
        let Ok(raw) = <[u8; 32]>::try_from(id) else {
            return Ok(None);
        };
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(&raw).cloned()) {
            return Ok(Some(hit));
        }
        let req = Req::GetObject(GetObject {
            share_id: self.keys.share().to_string(),
            id: raw.to_vec(),
        });
        let unavailable =
            |e: String| ferry_core::Error::Unavailable(format!("object from the hub: {e}"));
        // Run on the runtime and handed over by a plain channel: `block_on` would panic
        // here if the daemon is shutting its runtime down.
        let (done, got) = std::sync::mpsc::sync_channel(1);
        let conn = self.conn.clone();
        self.rt.spawn(async move {
            let _ = done.send(tokio::time::timeout(OBJECT_TIMEOUT, call(&conn, req)).await);
        });
        let reply = got
            .recv()
            .map_err(|_| unavailable("this device is stopping".into()))?
            .map_err(|_| unavailable("no answer in time".into()))?
            .map_err(|e| unavailable(e.to_string()))?;
        let Rep::Object(obj) = reply else {
            return Err(unavailable("an unexpected reply".into()));
        };
        if !obj.found {
            return Ok(None);
        }
        let plain = match self.keys.open_object(&ObjectId::from_bytes(raw), &obj.data) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                tracing::warn!("an object from the hub does not open: {e}; not used");
                return Ok(None);
            }
        };
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= CACHE {
                c.clear();
            }
            c.insert(raw, plain.clone());
        }
        Ok(Some(plain))
    }
}

impl ChunkSource for HubContent {
    fn read(&self, piece: &Piece, buf: &mut Vec<u8>) -> ferry_core::Result<bool> {
        let list = {
            let book = self.book.lock().unwrap_or_else(|p| p.into_inner());
            book.objects(self.keys.share().as_str(), &piece.content.0)
                .map_err(|e| ferry_core::Error::Other(e.to_string()))?
        };
        let Some(list) = list else {
            return Ok(false);
        };
        let (start, end) = (piece.offset, piece.offset + u64::from(piece.len));
        let mut out = Vec::with_capacity(piece.len as usize);
        let mut off = 0u64;
        for o in &list.objects {
            let o_end = off + u64::from(o.len);
            if o_end > start && off < end {
                let Some(data) = self.object(&o.id)? else {
                    return Ok(false);
                };
                let (from, to) = (
                    (start.max(off) - off) as usize,
                    (end.min(o_end) - off) as usize,
                );
                let Some(part) = data.get(from..to) else {
                    return Ok(false);
                };
                out.extend_from_slice(part);
            }
            off = o_end;
            if off >= end {
                break;
            }
        }
        if out.len() != piece.len as usize || Hash::of(&out) != piece.hash {
            return Ok(false);
        }
        *buf = out;
        Ok(true)
    }
}
