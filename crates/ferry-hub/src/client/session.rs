//! One sync with a hub: make sure the hub has this device's shares and members, the
//! keys and the descriptor; push this device's new entries (and content the hub lacks);
//! pull the other members' new entries.

use super::{call, ClientError, Inner, Res};
use crate::protocol::*;
use crate::{DeviceRecipient, Epoch, KeyRing, KeySlot, KeyedChunker, ObjectId, ShareId, ShareKeys};
use ferry_core::index::{Index, ShareOffer, ShareRow};
use ferry_core::model::Hash;
use ferry_core::plan::{ConflictPolicy, SyncMode};
use ferry_core::replica::{open_location, ChunkSource, FolderContent, Piece};
use ferry_core::share;
use ferry_net::iroh::endpoint::Connection;
use ferry_net::iroh::Signature;
use ferry_net::wire::share::WireEntry;
use ferry_net::DeviceId;
use prost::Message;
use std::collections::HashSet;
use std::sync::Arc;

/// Entries per log record.
const BATCH: usize = 256;
/// Objects asked about (and uploaded) together: 32 chunks, 2 MiB on average.
const UPLOAD_GROUP: usize = 32;
/// Log batches are sealed as manifests with this bit set in the version, so a batch
/// can never be taken for the share's descriptor (version 1, 2, ...).
const BATCH_VERSION: u64 = 1 << 63;
const RECIPIENT_CONTEXT: &[u8] = b"ferry-hub recipient 1\0";
/// A device compacts its log on the hub once its head moved this many sequence numbers
/// past the last compaction (and once after its first push, so the hub learns what
/// the log references). `FERRY_HUB_COMPACT_EVERY` overrides it (tests use 1).
const COMPACT_EVERY: u64 = 1024;

fn compact_every() -> u64 {
    std::env::var("FERRY_HUB_COMPACT_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(COMPACT_EVERY)
}

pub(super) async fn sync_hub(inner: &Arc<Inner>, hub: &DeviceId) -> Res<()> {
    let conn = inner
        .connection(hub)
        .ok_or_else(|| ClientError::Connection {
            hub: hub.short(),
            message: "not connected".into(),
        })?;
    let hub_s = hub.to_string();
    let mine = inner.with_book(|b| b.shares_of(&hub_s))?;
    // Members removed on this device: the hub is told first (it stops serving them the
    // share); the new key epoch follows below, from the listing.
    for share_id in &mine {
        for device in inner.with_book(|b| b.removals(share_id))? {
            let req = RemoveMember {
                share_id: share_id.clone(),
                device_id: device.clone(),
            };
            match call(&conn, Req::RemoveMember(req)).await {
                Ok(_) => {
                    tracing::info!(
                        "share {share_id}: hub {} no longer serves {device}",
                        hub.short()
                    );
                    inner.with_book(|b| b.removal_done(share_id, &device))?;
                }
                Err(e) => tracing::warn!("share {share_id}: removing {device} at the hub: {e}"),
            }
        }
    }
    let mut listed = list(&conn).await?;
    // The hub must know each of this device's shares and all its members.
    let mut created = false;
    for share_id in mine {
        let sid = share_id.clone();
        let members = inner
            .with_index(move |i| {
                Ok(match i.share(&sid)? {
                    Some(_) => Some(i.share_members(&sid)?),
                    None => None,
                })
            })
            .await?;
        let Some(members) = members else { continue };
        let on_hub = listed.iter().find(|s| s.share_id == share_id);
        let missing = members.iter().any(|m| {
            !on_hub.is_some_and(|s| {
                s.members.iter().any(|hm| hm.device_id == m.device) || s.removed.contains(&m.device)
            })
        });
        if on_hub.is_none() || missing {
            let req = CreateShare {
                share_id: share_id.clone(),
                members: members.into_iter().map(|m| m.device).collect(),
            };
            call(&conn, Req::CreateShare(req)).await?;
            created = true;
        }
    }
    if created {
        listed = list(&conn).await?;
    }
    if let Ok(mut hubs) = inner.hubs.lock() {
        let st = hubs.entry(*hub).or_default();
        st.last_contact = Some(now());
        st.usage = (listed.iter())
            .map(|s| {
                let quota = Some(s.quota).filter(|&q| q > 0);
                (s.share_id.clone(), s.stored_bytes, quota)
            })
            .collect();
    }
    for hs in listed {
        let id = hs.share_id.clone();
        match share_sync(inner, &conn, hub, hs).await {
            Ok(()) => {}
            Err(
                e @ ClientError::Hub {
                    code: ErrorCode::OverQuota,
                    ..
                },
            ) => {
                tracing::warn!("share {id} through hub {}: {e}", hub.short());
                inner.mark_due_later(hub);
            }
            Err(e) => {
                tracing::info!("share {id} through hub {}: {e}", hub.short());
                inner.mark_due_later(hub);
            }
        }
    }
    Ok(())
}

async fn list(conn: &Connection) -> Res<Vec<HubShare>> {
    match call(conn, Req::ListShares(ListShares {})).await? {
        Rep::Shares(s) => Ok(s.shares),
        _ => Err(ClientError::Protocol(
            "an unexpected reply to ListShares".into(),
        )),
    }
}

/// This device's age recipient for `share`, signed with its device key: what it
/// registers, so members can check a hub did not substitute its own recipient.
fn signed_recipient(inner: &Inner, share: &str) -> String {
    signed_recipient_of(&inner.identity, &inner.age, share)
}

pub(super) fn signed_recipient_of(
    identity: &ferry_net::Identity,
    age: &crate::DeviceIdentity,
    share: &str,
) -> String {
    let recipient = age.recipient().to_string();
    let sig = identity
        .secret_key()
        .sign(&recipient_message(share, &recipient));
    format!("{recipient} {}", hex(&sig.to_bytes()))
}

fn recipient_message(share: &str, recipient: &str) -> Vec<u8> {
    let mut m = RECIPIENT_CONTEXT.to_vec();
    m.extend_from_slice(share.as_bytes());
    m.push(0);
    m.extend_from_slice(recipient.as_bytes());
    m
}

/// The recipient `device` registered for `share`, if its signature is the device's.
fn verified_recipient(device: &str, share: &str, field: &str) -> Option<DeviceRecipient> {
    let (recipient, sig) = field.split_once(' ')?;
    let sig: [u8; 64] = unhex(sig)?.try_into().ok()?;
    let id: DeviceId = device.parse().ok()?;
    id.public_key()
        .verify(
            &recipient_message(share, recipient),
            &Signature::from_bytes(&sig),
        )
        .ok()?;
    recipient.parse().ok()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}

async fn share_sync(
    inner: &Arc<Inner>,
    conn: &Connection,
    hub: &DeviceId,
    hs: HubShare,
) -> Res<()> {
    let me = inner.me.to_string();
    let sid: ShareId = (hs.share_id.parse())
        .map_err(|_| ClientError::Protocol(format!("share ID {:?}", hs.share_id)))?;
    let id = hs.share_id.clone();
    // Register this device's recipient so a member holding the keys can wrap them for it.
    let signed = signed_recipient(inner, &id);
    let registered = hs
        .members
        .iter()
        .any(|m| m.device_id == me && m.recipient == signed);
    if !registered {
        let req = Register {
            share_id: id.clone(),
            recipient: signed,
        };
        call(conn, Req::Register(req)).await?;
    }
    let (sid2, id2) = (sid.clone(), id.clone());
    let local = inner
        .with_index(move |i| {
            let Some(s) = i.share(&id2)? else {
                return Ok(None);
            };
            let loc = i.location(s.location_id)?;
            let members: Vec<String> = (i.share_members(&id2)?.into_iter())
                .map(|m| m.device)
                .collect();
            Ok(Some((s, loc.uuid, loc.root, members)))
        })
        .await?;
    let _ = sid2;
    // The share's keys: every epoch this device has a slot in (older epochs open the
    // history), or fresh ones when it made the share.
    let mut ring = (inner.keys.lock().ok())
        .and_then(|k| k.get(&id).cloned())
        .unwrap_or_else(|| KeyRing::new(sid.clone()));
    let mut slots_held: Vec<(u32, &[u8])> = (hs.older_slots.iter())
        .map(|s| (s.epoch, s.slot.as_slice()))
        .collect();
    if !hs.my_slot.is_empty() {
        slots_held.push((hs.epoch, &hs.my_slot));
    }
    for (epoch, bytes) in slots_held {
        if ring.get(Epoch(epoch)).is_some() {
            continue;
        }
        match KeySlot::from_bytes(bytes)
            .and_then(|s| s.open_with_device(&sid, Epoch(epoch), &inner.age))
        {
            Ok(k) => ring.insert(k)?,
            Err(e) => {
                tracing::warn!("share {id}: this device's slot of epoch {epoch} does not open: {e}")
            }
        }
    }
    let keys = if let Some(k) = ring.get(Epoch(hs.epoch)) {
        Some(k.clone())
    } else if hs.epoch == 0 && local.as_ref().is_some_and(|(s, ..)| s.offered_by.is_none()) {
        let keys = ShareKeys::generate(&sid, Epoch::FIRST)?;
        let slot = keys.slot_for_device(&inner.age.recipient())?;
        let req = PutSlots {
            share_id: id.clone(),
            epoch: Epoch::FIRST.0,
            slots: vec![SlotMsg {
                label: me.clone(),
                slot: slot.to_bytes(),
            }],
            new_epoch: true,
        };
        call(conn, Req::PutSlots(req)).await?;
        Some(keys)
    } else {
        None
    };
    let Some(keys) = keys else {
        return Ok(()); // waiting for a member to wrap the latest keys for this device
    };
    ring.insert(keys.clone())?;
    if let Ok(mut k) = inner.keys.lock() {
        k.insert(id.clone(), ring.clone());
    }
    let Some((share, folder_id, root, mut members)) = local else {
        return offer(inner, hub, &ring, &hs).await;
    };
    // A member removed from the share (by another member, through the hub) is removed
    // here too, with its conduit: this device stops syncing with it directly as well.
    let gone: Vec<String> = (members.iter())
        .filter(|m| hs.removed.contains(m))
        .cloned()
        .collect();
    if !gone.is_empty() {
        let (sid3, gone3) = (id.clone(), gone.clone());
        inner
            .with_index(move |i| {
                for d in &gone3 {
                    if let Some(m) = i.remove_share_member(&sid3, d)? {
                        if let Some(c) = m.conduit_id {
                            i.remove_conduit(c)?;
                        }
                    }
                }
                Ok(())
            })
            .await?;
        for d in &gone {
            tracing::info!("share {id}: {d} was removed from the share; removed here too");
        }
        members.retain(|m| !gone.contains(m));
    }
    // A slot of the latest epoch held by a device that is no longer a member: start a
    // new epoch for the members left (any member may; the hub lets one win).
    let stale = hs
        .slot_holders
        .iter()
        .any(|l| l.parse::<DeviceId>().is_ok() && !hs.members.iter().any(|m| &m.device_id == l));
    if stale {
        rotate(inner, conn, &ring, &keys, &hs, &members).await?;
        inner.mark_due(hub);
        return Ok(());
    }
    // The maker of the share writes its descriptor, for devices offered it here.
    if share.offered_by.is_none() && hs.head_version == 0 {
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let d = Descriptor {
            share_id: id.clone(),
            creator: me.clone(),
            folder_id: folder_id.clone(),
            folder_name: name,
            mode: share.mode.as_str().to_string(),
            conflict_policy: share.conflict_policy.as_str().to_string(),
        };
        let req = PutHead {
            share_id: id.clone(),
            expected: 0,
            manifest: keys.seal_manifest(1, &d.encode_to_vec())?,
        };
        call(conn, Req::PutHead(req)).await?;
    }
    // Wrap the keys for members that registered and have no slot yet.
    let mut slots = Vec::new();
    for m in &hs.members {
        if m.has_slot
            || m.recipient.is_empty()
            || m.device_id == me
            || !members.contains(&m.device_id)
        {
            continue;
        }
        match verified_recipient(&m.device_id, &id, &m.recipient) {
            Some(r) => slots.push(SlotMsg {
                label: m.device_id.clone(),
                slot: keys.slot_for_device(&r)?.to_bytes(),
            }),
            None => tracing::warn!(
                "share {id}: the recipient the hub lists for {} is not signed by that device; not used",
                m.device_id
            ),
        }
    }
    if !slots.is_empty() {
        // Every epoch this device holds (older first): the history is sealed under them.
        for k in ring.epochs() {
            let slots = (slots.iter())
                .map(|s| -> Res<SlotMsg> {
                    let r = verified_recipient(&s.label, &id, recipient_of(&hs, &s.label))
                        .ok_or_else(|| ClientError::Other("recipient vanished".into()))?;
                    Ok(SlotMsg {
                        label: s.label.clone(),
                        slot: k.slot_for_device(&r)?.to_bytes(),
                    })
                })
                .collect::<Res<Vec<_>>>()?;
            let req = PutSlots {
                share_id: id.clone(),
                epoch: k.epoch().0,
                slots,
                new_epoch: false,
            };
            call(conn, Req::PutSlots(req)).await?;
        }
    }
    // A passphrase set on this device (`ferry share set-passphrase`): wrap every epoch
    // for it and give the hub the restore token's hash.
    let pending = super::pending_passphrase_path(&inner.home, &id);
    if let Ok(text) = std::fs::read_to_string(&pending) {
        set_passphrase(conn, &ring, &id, text).await?;
        if let Err(e) = std::fs::remove_file(&pending) {
            tracing::warn!("{}: {e}", pending.display());
        }
        tracing::info!("share {id}: passphrase slot set on hub {}", hub.short());
    }
    let my_head = hs.logs.iter().find(|l| l.device_id == me).map(|l| l.upto);
    let head = push(inner, conn, &keys, &share, &folder_id, my_head).await?;
    let compacted = inner.with_book(|b| b.compacted(&id))?;
    let due = match (head, compacted) {
        (None, _) => false,
        (Some(h), None) => h > 0,
        (Some(h), Some(c)) => h >= c.saturating_add(compact_every()),
    };
    if let (true, Some(h)) = (due, head) {
        match compact(inner, conn, &keys, &share, &folder_id, h).await {
            Ok(()) => inner.with_book(|b| b.set_compacted(&id, h))?,
            Err(e) => tracing::info!("share {id}: compacting this device's log: {e}"),
        }
    }
    if my_head.is_none() {
        // The share is new here (made or just accepted): run its conduits once, so the
        // folder is scanned and its entries pushed even before a member's change.
        let sid = share.id.clone();
        let conduits = inner
            .with_index(move |i| {
                Ok((i.share_members(&sid)?.into_iter())
                    .filter_map(|m| m.conduit_id)
                    .collect::<Vec<_>>())
            })
            .await?;
        if let Some(tx) = &inner.changes {
            for c in conduits {
                let _ = tx.send(c);
            }
        }
    }
    for lh in hs.logs.iter().filter(|l| l.device_id != me) {
        let in_hub = hs.members.iter().any(|m| m.device_id == lh.device_id);
        if !in_hub {
            continue;
        }
        match pull(inner, conn, &ring, &share, lh).await {
            Ok(Some(conduit)) => {
                if let Some(tx) = &inner.changes {
                    let _ = tx.send(conduit);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::info!("share {id}: entries of {} from the hub: {e}", lh.device_id),
        }
    }
    Ok(())
}

/// A share this device was made a member of and can open: record it as an offer
/// (`ferry share list`, `ferry accept SHARE DIR`), through this hub.
async fn offer(inner: &Arc<Inner>, hub: &DeviceId, keys: &KeyRing, hs: &HubShare) -> Res<()> {
    if hs.head_version == 0 {
        return Ok(());
    }
    let plain = keys.open_manifest(hs.head_version, &hs.head)?;
    let d = Descriptor::decode(plain.as_slice())
        .map_err(|e| ClientError::Protocol(format!("share descriptor: {e}")))?;
    if d.share_id != hs.share_id || d.creator.parse::<DeviceId>().is_err() {
        return Err(ClientError::Protocol(
            "a descriptor of another share".into(),
        ));
    }
    let (Ok(mode), Ok(policy)) = (
        SyncMode::parse(&d.mode),
        ConflictPolicy::parse(&d.conflict_policy),
    ) else {
        return Err(ClientError::Protocol("an unknown mode or policy".into()));
    };
    let offer = ShareOffer {
        share_id: d.share_id.clone(),
        device: d.creator.clone(),
        folder_name: d.folder_name,
        folder_id: d.folder_id,
        mode,
        conflict_policy: policy,
        received_at: now(),
    };
    let hub_s = hub.to_string();
    inner.with_book(|b| b.set_share_hub(&d.share_id, &hub_s))?;
    let known = inner
        .with_index(move |i| {
            let known = i.offers()?.iter().any(|o| o.share_id == offer.share_id);
            if !known {
                i.record_offer(&offer)?;
            }
            Ok(known)
        })
        .await?;
    if !known {
        tracing::info!(
            "hub {} offers share {}: accept it with `ferry accept {} DIR`",
            hub.short(),
            d.share_id,
            d.share_id
        );
    }
    Ok(())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Appends this device's entries after `head` (its log's head on the hub) to its log,
/// uploading first the objects of their content the hub lacks.
async fn push(
    inner: &Arc<Inner>,
    conn: &Connection,
    keys: &ShareKeys,
    share: &ShareRow,
    folder_id: &str,
    head: Option<u64>,
) -> Res<Option<u64>> {
    let mut after = head.unwrap_or(0);
    let mut open_log = head.is_none();
    loop {
        let s = share.clone();
        let entries = inner
            .with_index(move |i| share::outgoing(i, &s, after, BATCH))
            .await?;
        if entries.is_empty() && !open_log {
            return Ok(head.map(|_| after));
        }
        let upto = entries
            .iter()
            .map(|e| e.cache.sequence)
            .max()
            .unwrap_or(after);
        let mut contents = Vec::new();
        let mut seen = HashSet::new();
        for e in &entries {
            let st = &e.state;
            let live_file = st.kind == ferry_core::model::EntryKind::File
                && st.presence == ferry_core::model::Presence::Live
                && st.size > 0;
            let Some(hash) = st.hash.filter(|_| live_file) else {
                continue;
            };
            if seen.insert(hash) {
                contents.push(objects_for(inner, conn, keys, share, st).await?);
            }
        }
        let batch = Batch {
            device_id: inner.me.to_string(),
            folder_id: folder_id.to_string(),
            after,
            upto,
            entries: (entries.iter())
                .map(|e| BatchEntry {
                    entry: Some(WireEntry::from_state(&e.path, &e.state)),
                    seq: e.cache.sequence,
                })
                .collect(),
            contents,
        };
        let sealed = keys.seal_manifest(BATCH_VERSION | upto, &batch.encode_to_vec())?;
        let req = Append {
            share_id: share.id.clone(),
            after,
            upto,
            batch: sealed,
        };
        call(conn, Req::Append(req)).await?;
        tracing::debug!(share = share.id, after, upto, "pushed entries to the hub");
        if entries.len() < BATCH {
            return Ok(Some(upto));
        }
        after = upto;
        open_log = false;
    }
}

/// Rewrites this device's log on the hub up to `head` as the entries its folder holds
/// now (each path's latest entry, tombstones included, at its own sequence number), so
/// superseded entries go; and tells the hub every object those entries reference (what
/// garbage collection must keep). A member behind reads the new records like the old:
/// it applies the entries above its cursor, which are exactly the changes it missed.
async fn compact(
    inner: &Arc<Inner>,
    conn: &Connection,
    keys: &ShareKeys,
    share: &ShareRow,
    folder_id: &str,
    head: u64,
) -> Res<()> {
    let mut after = 0;
    let mut refs: Vec<Vec<u8>> = Vec::new();
    let mut seen_refs = HashSet::new();
    let mut first = true;
    loop {
        let s = share.clone();
        let page = inner
            .with_index(move |i| share::outgoing(i, &s, after, BATCH))
            .await?;
        let more = page.len() == BATCH && page.iter().all(|e| e.cache.sequence < head);
        let entries: Vec<_> = (page.into_iter())
            .filter(|e| e.cache.sequence <= head)
            .collect();
        let upto = if more {
            entries
                .iter()
                .map(|e| e.cache.sequence)
                .max()
                .unwrap_or(head)
        } else {
            head
        };
        let mut contents = Vec::new();
        let mut seen = HashSet::new();
        for e in &entries {
            let st = &e.state;
            let live_file = st.kind == ferry_core::model::EntryKind::File
                && st.presence == ferry_core::model::Presence::Live
                && st.size > 0;
            let Some(hash) = st.hash.filter(|_| live_file) else {
                continue;
            };
            if seen.insert(hash) {
                let list = objects_for(inner, conn, keys, share, st).await?;
                for o in &list.objects {
                    if seen_refs.insert(o.id.clone()) {
                        refs.push(o.id.clone());
                    }
                }
                contents.push(list);
            }
        }
        let batch = Batch {
            device_id: inner.me.to_string(),
            folder_id: folder_id.to_string(),
            after,
            upto,
            entries: (entries.iter())
                .map(|e| BatchEntry {
                    entry: Some(WireEntry::from_state(&e.path, &e.state)),
                    seq: e.cache.sequence,
                })
                .collect(),
            contents,
        };
        let sealed = keys.seal_manifest(BATCH_VERSION | upto, &batch.encode_to_vec())?;
        let req = StageCompaction {
            share_id: share.id.clone(),
            begin: first,
            records: vec![LogRecordMsg {
                after,
                upto,
                batch: sealed,
            }],
            refs: Vec::new(),
        };
        call(conn, Req::StageCompaction(req)).await?;
        first = false;
        after = upto;
        if !more {
            break;
        }
    }
    for part in refs.chunks(crate::server::MISSING_MAX) {
        let req = StageCompaction {
            share_id: share.id.clone(),
            begin: false,
            records: Vec::new(),
            refs: part.to_vec(),
        };
        call(conn, Req::StageCompaction(req)).await?;
    }
    let req = CommitCompaction {
        share_id: share.id.clone(),
        upto: head,
    };
    call(conn, Req::CommitCompaction(req)).await?;
    tracing::debug!(
        share = share.id,
        head,
        objects = refs.len(),
        "compacted this device's log on the hub"
    );
    Ok(())
}

/// The objects `state`'s content is cut into by the share's keyed chunker, uploading
/// those the hub lacks. The content is read through the folder's index (by hash,
/// through the root's handle) and checked against its hash first.
async fn objects_for(
    inner: &Arc<Inner>,
    conn: &Connection,
    keys: &ShareKeys,
    share: &ShareRow,
    state: &ferry_core::model::FileState,
) -> Res<ContentObjects> {
    let Some(hash) = state.hash else {
        return Err(ClientError::Other("a file without a hash".into()));
    };
    // Objects this device cut under this epoch (an older epoch's are not reused: what
    // is pushed after a rotation is sealed under the new keys only).
    let cache = format!("{}#{}", share.id, keys.epoch().0);
    if let Some(known) = inner.with_book(|b| b.objects(&cache, &hash.0))? {
        // Ask the hub anyway: it touches what it has (so garbage collection keeps it
        // for the record about to reference it), and what it collected is cut and
        // uploaded again below.
        if all_present(conn, share, &known).await? {
            return Ok(known);
        }
    }
    // The content streams from a reader thread, cut as it comes: a few chunks in
    // memory at a time, whatever the file's size.
    let pieces = pieces_of(state);
    let (db, loc_id) = (inner.home.join("index.db"), share.location_id);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    let chunker = KeyedChunker::new(keys);
    let reader = tokio::task::spawn_blocking(move || -> ferry_core::Result<Option<Hash>> {
        let mut index = Index::open(&db)?;
        let root = index.location(loc_id)?.root;
        let loc = open_location(&mut index, &root, false)?;
        let folder = FolderContent::new(index, loc);
        let mut whole = blake3::Hasher::new();
        let (mut pending, mut buf) = (Vec::new(), Vec::new());
        let send = |pending: &mut Vec<u8>, all: bool| -> bool {
            while pending.len() >= KeyedChunker::MAX_CHUNK || (all && !pending.is_empty()) {
                let rest = pending.split_off(chunker.cut(pending));
                if tx.blocking_send(std::mem::replace(pending, rest)).is_err() {
                    return false;
                }
            }
            true
        };
        for p in &pieces {
            if !folder.read(p, &mut buf)? {
                return Ok(None);
            }
            whole.update(&buf);
            pending.extend_from_slice(&buf);
            if !send(&mut pending, false) {
                return Ok(None);
            }
        }
        if !send(&mut pending, true) {
            return Ok(None);
        }
        Ok(Some(Hash(*whole.finalize().as_bytes())))
    });
    let mut objects = Vec::new();
    let mut group = Vec::new();
    loop {
        let next = rx.recv().await;
        let done = next.is_none();
        if let Some(chunk) = next {
            let id = keys.object_id(&chunk);
            objects.push(ObjectRef {
                id: id.as_bytes().to_vec(),
                len: chunk.len() as u32,
            });
            group.push((id, chunk));
        }
        if group.len() >= UPLOAD_GROUP || (done && !group.is_empty()) {
            upload(conn, keys, share, std::mem::take(&mut group)).await?;
        }
        if done {
            break;
        }
    }
    let read = reader
        .await
        .map_err(|e| ClientError::Other(format!("read task failed: {e}")))??;
    if read != Some(hash) {
        return Err(ClientError::Other(
            "a file changed since it was indexed; pushed after the next scan".into(),
        ));
    }
    let list = ContentObjects {
        content: hash.0.to_vec(),
        objects,
    };
    inner.with_book(|b| {
        b.put_objects(&cache, &list)?;
        b.put_objects(&share.id, &list)
    })?;
    Ok(list)
}

/// Whether the hub has every object of `list` (each one it has is touched).
async fn all_present(conn: &Connection, share: &ShareRow, list: &ContentObjects) -> Res<bool> {
    for part in list.objects.chunks(crate::server::MISSING_MAX) {
        let req = Missing {
            share_id: share.id.clone(),
            ids: part.iter().map(|o| o.id.clone()).collect(),
        };
        match call(conn, Req::Missing(req)).await? {
            Rep::Missing(m) if m.ids.is_empty() => {}
            Rep::Missing(_) => return Ok(false),
            _ => {
                return Err(ClientError::Protocol(
                    "an unexpected reply to Missing".into(),
                ))
            }
        }
    }
    Ok(true)
}

/// Uploads those of `group`'s objects the hub lacks.
async fn upload(
    conn: &Connection,
    keys: &ShareKeys,
    share: &ShareRow,
    group: Vec<(ObjectId, Vec<u8>)>,
) -> Res<()> {
    let req = Missing {
        share_id: share.id.clone(),
        ids: group.iter().map(|(id, _)| id.as_bytes().to_vec()).collect(),
    };
    let mut missing: HashSet<Vec<u8>> = match call(conn, Req::Missing(req)).await? {
        Rep::Missing(m) => m.ids.into_iter().collect(),
        _ => {
            return Err(ClientError::Protocol(
                "an unexpected reply to Missing".into(),
            ))
        }
    };
    for (id, chunk) in group {
        if !missing.remove(id.as_bytes().as_slice()) {
            continue;
        }
        let req = PutObject {
            share_id: share.id.clone(),
            id: id.as_bytes().to_vec(),
            data: keys.seal_object(&id, &chunk)?,
        };
        call(conn, Req::PutObject(req)).await?;
    }
    Ok(())
}

/// The engine's pieces of `state` (as ferry-core cuts them): one per chunk, or the
/// whole file as one piece.
fn pieces_of(state: &ferry_core::model::FileState) -> Vec<Piece> {
    let Some(content) = state.hash else {
        return Vec::new();
    };
    if state.chunks.is_empty() {
        return match u32::try_from(state.size) {
            Ok(len) if len > 0 => vec![Piece {
                content,
                offset: 0,
                len,
                hash: content,
            }],
            _ => Vec::new(),
        };
    }
    let mut offset = 0;
    (state.chunks.iter())
        .map(|c| {
            let p = Piece {
                content,
                offset,
                len: c.len,
                hash: c.hash,
            };
            offset += u64::from(c.len);
            p
        })
        .collect()
}

/// Pulls `lh`'s device's log records this device has not stored yet; ties the device's
/// copy first if needed. Returns the conduit to run when entries changed or the member
/// was just tied.
async fn pull(
    inner: &Arc<Inner>,
    conn: &Connection,
    keys: &KeyRing,
    share: &ShareRow,
    lh: &LogHead,
) -> Res<Option<i64>> {
    let dev = lh.device_id.clone();
    // A member removed here since the hub's listing was read (the hub is told at the
    // next sync): not pulled, so it is not added back.
    if inner.with_book(|b| b.removals(&share.id))?.contains(&dev) {
        return Ok(None);
    }
    let (sid, d) = (share.id.clone(), dev.clone());
    let member = inner.with_index(move |i| i.share_member(&sid, &d)).await?;
    let tied = member.as_ref().is_some_and(|m| m.remote_location.is_some());
    let mut after = member
        .as_ref()
        .filter(|_| tied)
        .map_or(0, |m| m.received_seq);
    if tied && lh.upto <= after {
        return Ok(None);
    }
    let mut conduit = member.as_ref().and_then(|m| m.conduit_id).filter(|_| tied);
    let mut run = !tied;
    let mut changed = 0;
    loop {
        let req = ReadLog {
            share_id: share.id.clone(),
            device_id: dev.clone(),
            after,
        };
        let records = match call(conn, Req::ReadLog(req)).await? {
            Rep::Log(l) => l.records,
            _ => {
                return Err(ClientError::Protocol(
                    "an unexpected reply to ReadLog".into(),
                ))
            }
        };
        let before = after;
        let mut progressed = false;
        for rec in records {
            if rec.upto < after || (rec.upto == after && progressed) {
                continue;
            }
            let plain = keys.open_manifest(BATCH_VERSION | rec.upto, &rec.batch)?;
            let b = Batch::decode(plain.as_slice())
                .map_err(|e| ClientError::Protocol(format!("a log batch: {e}")))?;
            if b.device_id != dev || b.after != rec.after || b.upto != rec.upto {
                return Err(ClientError::Protocol(
                    "a log record that is not what it says (device or range)".into(),
                ));
            }
            if conduit.is_none() {
                let (s, d, folder) = (share.clone(), dev.clone(), b.folder_id.clone());
                let m = inner
                    .with_index(move |i| {
                        if i.share_member(&s.id, &d)?.is_none() {
                            i.add_share_member(&s.id, &d)?;
                        }
                        share::attach_member(i, &s, &d, &folder)
                    })
                    .await?;
                conduit = m.conduit_id;
                run = true;
            }
            for c in &b.contents {
                inner.with_book(|book| book.put_objects(&share.id, c))?;
            }
            let cursor = after;
            let entries = (b.entries.iter())
                .filter(|e| e.seq > cursor)
                .filter_map(|e| e.entry.as_ref())
                .map(WireEntry::to_state)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ClientError::Protocol(format!("an entry: {e}")))?;
            let (s, d, upto) = (share.clone(), dev.clone(), rec.upto);
            changed += inner
                .with_index(move |i| share::incoming(i, &s, &d, &entries, upto))
                .await?;
            after = rec.upto;
            progressed = true;
        }
        if !progressed || after == before {
            break;
        }
    }
    tracing::debug!(
        share = share.id,
        changed,
        "pulled entries of {dev} from the hub"
    );
    Ok(conduit.filter(|_| changed > 0 || run))
}

fn recipient_of<'a>(hs: &'a HubShare, device: &str) -> &'a str {
    (hs.members.iter())
        .find(|m| m.device_id == device)
        .map_or("", |m| m.recipient.as_str())
}

/// Starts the epoch after `current` for the members left: a new root key wrapped for
/// this device and each member that registered a recipient signed by its device key
/// and is a member here too; they also get every older epoch this device holds (to
/// read the history). A member that registers later is wrapped in as usual.
async fn rotate(
    inner: &Arc<Inner>,
    conn: &Connection,
    ring: &KeyRing,
    current: &ShareKeys,
    hs: &HubShare,
    members: &[String],
) -> Res<()> {
    let me = inner.me.to_string();
    let next = ShareKeys::generate(current.share(), current.epoch().next()?)?;
    let mut recipients = vec![(me.clone(), inner.age.recipient())];
    for m in &hs.members {
        if m.device_id == me || m.recipient.is_empty() || !members.contains(&m.device_id) {
            continue;
        }
        if let Some(r) = verified_recipient(&m.device_id, &hs.share_id, &m.recipient) {
            recipients.push((m.device_id.clone(), r));
        }
    }
    let slots_of = |k: &ShareKeys, skip_me: bool| -> Res<Vec<SlotMsg>> {
        (recipients.iter())
            .filter(|(d, _)| !(skip_me && *d == me))
            .map(|(d, r)| {
                Ok(SlotMsg {
                    label: d.clone(),
                    slot: k.slot_for_device(r)?.to_bytes(),
                })
            })
            .collect()
    };
    let req = PutSlots {
        share_id: hs.share_id.clone(),
        epoch: next.epoch().0,
        slots: slots_of(&next, false)?,
        new_epoch: true,
    };
    match call(conn, Req::PutSlots(req)).await {
        Ok(_) => {}
        Err(ClientError::Hub {
            code: ErrorCode::Conflict,
            ..
        }) => return Ok(()), // another member started it; the next listing has it
        Err(e) => return Err(e),
    }
    tracing::info!(
        "share {}: key epoch {} started for {} devices",
        hs.share_id,
        next.epoch(),
        recipients.len()
    );
    for k in ring.epochs() {
        let slots = slots_of(k, true)?;
        if slots.is_empty() {
            continue;
        }
        let req = PutSlots {
            share_id: hs.share_id.clone(),
            epoch: k.epoch().0,
            slots,
            new_epoch: false,
        };
        call(conn, Req::PutSlots(req)).await?;
    }
    if let Ok(mut k) = inner.keys.lock() {
        if let Some(r) = k.get_mut(&hs.share_id) {
            r.insert(next)?;
        }
    }
    Ok(())
}

/// Wraps every epoch of `ring` for `passphrase` and sets the share's restore verifier.
async fn set_passphrase(conn: &Connection, ring: &KeyRing, id: &str, text: String) -> Res<()> {
    let epochs: Vec<ShareKeys> = ring.epochs().cloned().collect();
    let share = ring.share().clone();
    let (slots, verifier) = tokio::task::spawn_blocking(move || -> Res<_> {
        let pass = super::passphrase_from_text(&text)?;
        let mut slots = Vec::new();
        for k in &epochs {
            let slot = k.slot_for_passphrase(&pass, crate::PassphraseParams::default())?;
            slots.push((k.epoch(), slot.to_bytes()));
        }
        let token = crate::restore_token(&share, &pass)?;
        Ok((slots, crate::restore_verifier(token.as_ref())))
    })
    .await
    .map_err(|e| ClientError::Other(format!("passphrase task failed: {e}")))??;
    for (epoch, slot) in slots {
        let req = PutSlots {
            share_id: id.to_string(),
            epoch: epoch.0,
            slots: vec![SlotMsg {
                label: crate::server::PASSPHRASE_LABEL.to_string(),
                slot,
            }],
            new_epoch: false,
        };
        call(conn, Req::PutSlots(req)).await?;
    }
    let req = SetRestore {
        share_id: id.to_string(),
        verifier: verifier.to_vec(),
    };
    call(conn, Req::SetRestore(req)).await?;
    Ok(())
}
