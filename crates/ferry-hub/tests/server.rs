//! The hub server in one process, spoken to through its protocol by hand: admission
//! (an unknown device is closed at once; a device not a member of a share is refused
//! for it), and uploads checked (garbage, oversized, bad IDs, unknown epochs rejected
//! and not stored) while a well-formed sealed object is stored once.

use ferry_hub::client::{call, ClientError};
use ferry_hub::protocol::*;
use ferry_hub::server::{serve, HubConfig, RunningHub};
use ferry_hub::{DeviceIdentity, Epoch, KeySlot, ShareId, ShareKeys};
use ferry_net::iroh::endpoint::{presets, Connection};
use ferry_net::iroh::{Endpoint, EndpointAddr};
use ferry_net::Identity;
use std::path::Path;

async fn device(dir: &Path) -> (Identity, Endpoint) {
    let id = Identity::load_or_create(dir).unwrap();
    let ep = Endpoint::builder(presets::Minimal)
        .secret_key(id.secret_key().clone())
        .clear_ip_transports()
        .bind_addr(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .unwrap()
        .bind()
        .await
        .unwrap();
    (id, ep)
}

async fn connect(ep: &Endpoint, hub: &RunningHub) -> Connection {
    let addr = EndpointAddr::new(hub.id().public_key()).with_ip_addr(hub.local_addrs()[0]);
    ep.connect(addr, HUB_ALPN).await.unwrap()
}

fn code(r: Result<Rep, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Hub { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn blobs(home: &Path) -> usize {
    ferry_testkit_files(&home.join("blobs"))
}

fn ferry_testkit_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_admits_members_only_and_stores_only_well_formed_uploads() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("hub");
    let (alice, alice_ep) = device(&tmp.path().join("alice")).await;
    let (_bob, bob_ep) = device(&tmp.path().join("bob")).await;
    let (mallory, mallory_ep) = device(&tmp.path().join("mallory")).await;
    let hub = serve(HubConfig {
        home: home.clone(),
        listen: ([127, 0, 0, 1], 0).into(),
        store: None,
        db: None,
        allow: vec![alice.id().to_string()],
        quota_per_share: None,
        gc_every: None,
        gc_grace: ferry_hub::server::DEFAULT_GC_GRACE,
    })
    .await
    .unwrap();

    // Bob is allowed nothing and a member of nothing: closed before any request.
    let addr = EndpointAddr::new(hub.id().public_key()).with_ip_addr(hub.local_addrs()[0]);
    if let Ok(bob) = bob_ep.connect(addr, HUB_ALPN).await {
        let refused = call(&bob, Req::ListShares(ListShares {})).await;
        assert!(
            matches!(
                refused,
                Err(ClientError::Connection { .. }) | Err(ClientError::Frame(_))
            ),
            "{refused:?}"
        );
    }

    let conn = connect(&alice_ep, &hub).await;
    let share = "s1".to_string();
    let create = CreateShare {
        share_id: share.clone(),
        members: vec![mallory.id().to_string()],
    };
    call(&conn, Req::CreateShare(create)).await.unwrap();
    let sid: ShareId = share.parse().unwrap();
    let keys = ShareKeys::generate(&sid, Epoch::FIRST).unwrap();
    let me = DeviceIdentity::generate();
    let slots = PutSlots {
        share_id: share.clone(),
        epoch: 1,
        slots: vec![SlotMsg {
            label: alice.id().to_string(),
            slot: keys.slot_for_device(&me.recipient()).unwrap().to_bytes(),
        }],
        new_epoch: true,
    };
    call(&conn, Req::PutSlots(slots)).await.unwrap();

    // A well-formed sealed object is stored, once.
    let chunk = b"some chunk of a file".repeat(100);
    let id = keys.object_id(&chunk);
    let sealed = keys.seal_object(&id, &chunk).unwrap();
    let put = |id: Vec<u8>, data: Vec<u8>| {
        Req::PutObject(PutObject {
            share_id: share.clone(),
            id,
            data,
        })
    };
    call(&conn, put(id.as_bytes().to_vec(), sealed.clone()))
        .await
        .unwrap();
    call(&conn, put(id.as_bytes().to_vec(), sealed.clone()))
        .await
        .unwrap();
    assert_eq!(blobs(&home), 1);
    let got = call(
        &conn,
        Req::GetObject(GetObject {
            share_id: share.clone(),
            id: id.as_bytes().to_vec(),
        }),
    )
    .await
    .unwrap();
    let Rep::Object(obj) = got else { panic!() };
    assert_eq!(keys.open_object(&id, &obj.data).unwrap(), chunk);

    // Garbage of every kind is refused and not stored.
    let other = [7u8; 32].to_vec();
    let noise: Vec<u8> = (0..sealed.len()).map(|i| (i * 31 % 251) as u8).collect();
    assert_eq!(
        code(call(&conn, put(other.clone(), noise)).await),
        ErrorCode::Invalid
    );
    let mut short = sealed.clone();
    short.truncate(sealed.len() - 1);
    assert_eq!(
        code(call(&conn, put(other.clone(), short)).await),
        ErrorCode::Invalid
    );
    let mut bad_flags = sealed.clone();
    bad_flags[5] = 0x80;
    assert_eq!(
        code(call(&conn, put(other.clone(), bad_flags)).await),
        ErrorCode::Invalid
    );
    let mut future_epoch = sealed.clone();
    future_epoch[1..5].copy_from_slice(&9u32.to_be_bytes());
    assert_eq!(
        code(call(&conn, put(other.clone(), future_epoch)).await),
        ErrorCode::Invalid
    );
    assert_eq!(
        code(call(&conn, put(vec![1; 31], sealed.clone())).await),
        ErrorCode::Invalid,
        "an ID of 31 bytes"
    );
    let mut huge = vec![0u8; MAX_OBJECT + 1];
    huge[0] = 1;
    assert_eq!(
        code(call(&conn, put(other.clone(), huge)).await),
        ErrorCode::TooLarge
    );
    let append = Append {
        share_id: share.clone(),
        after: 0,
        upto: 5,
        batch: b"not sealed at all".to_vec(),
    };
    assert_eq!(
        code(call(&conn, Req::Append(append)).await),
        ErrorCode::Invalid
    );
    // A frame over the cap is not read at all: the stream fails, the hub keeps going.
    let over = put(other.clone(), vec![1u8; MAX_FRAME as usize + 10]);
    assert!(call(&conn, over).await.is_err());
    assert_eq!(blobs(&home), 1, "nothing but the one good object is stored");

    // Mallory is a member of s1 (so admitted) but not of s2, which it cannot create.
    let m = connect(&mallory_ep, &hub).await;
    let Rep::Shares(list) = call(&m, Req::ListShares(ListShares {})).await.unwrap() else {
        panic!()
    };
    assert_eq!(list.shares.len(), 1);
    let create = CreateShare {
        share_id: "s2".into(),
        members: vec![],
    };
    assert_eq!(
        code(call(&m, Req::CreateShare(create)).await),
        ErrorCode::Refused
    );
    let foreign = Req::GetObject(GetObject {
        share_id: "s2".into(),
        id: id.as_bytes().to_vec(),
    });
    assert_eq!(code(call(&m, foreign).await), ErrorCode::Refused);
    // Mallory may append to its own log only; a batch it has no keys for still looks
    // sealed to the hub, so the members reject it on opening (see the client).
    let read = ReadLog {
        share_id: share.clone(),
        device_id: alice.id().to_string(),
        after: 0,
    };
    let Rep::Log(l) = call(&m, Req::ReadLog(read)).await.unwrap() else {
        panic!()
    };
    assert!(l.records.is_empty());
    hub.shutdown().await;
}

fn listed(r: Result<Rep, ClientError>) -> HubShare {
    let Ok(Rep::Shares(mut l)) = r else {
        panic!("expected shares, got {r:?}")
    };
    assert_eq!(l.shares.len(), 1);
    l.shares.remove(0)
}

/// Removing a member: the hub stops serving it (its connection is closed when it is
/// a member of nothing else, and a new one refused), no member can add it back, a new
/// epoch starts once (a second start of the same epoch is a conflict), and from then
/// on uploads sealed under the old epoch are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_is_no_longer_served_and_the_old_epoch_is_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("hub");
    let (alice, alice_ep) = device(&tmp.path().join("alice")).await;
    let (bob, bob_ep) = device(&tmp.path().join("bob")).await;
    let (carol, carol_ep) = device(&tmp.path().join("carol")).await;
    let hub = serve(HubConfig {
        home: home.clone(),
        listen: ([127, 0, 0, 1], 0).into(),
        store: None,
        db: None,
        allow: vec![alice.id().to_string()],
        quota_per_share: None,
        gc_every: None,
        gc_grace: ferry_hub::server::DEFAULT_GC_GRACE,
    })
    .await
    .unwrap();
    let a = connect(&alice_ep, &hub).await;
    let share = "s1".to_string();
    let (b_id, c_id) = (bob.id().to_string(), carol.id().to_string());
    let create = CreateShare {
        share_id: share.clone(),
        members: vec![b_id.clone(), c_id.clone()],
    };
    call(&a, Req::CreateShare(create.clone())).await.unwrap();
    let sid: ShareId = share.parse().unwrap();
    let one = ShareKeys::generate(&sid, Epoch::FIRST).unwrap();
    let age = DeviceIdentity::generate();
    let slots = |keys: &ShareKeys, labels: &[&String], epoch: u32, new_epoch: bool| {
        Req::PutSlots(PutSlots {
            share_id: share.clone(),
            epoch,
            slots: (labels.iter())
                .map(|l| SlotMsg {
                    label: l.to_string(),
                    slot: keys.slot_for_device(&age.recipient()).unwrap().to_bytes(),
                })
                .collect(),
            new_epoch,
        })
    };
    let a_id = alice.id().to_string();
    call(&a, slots(&one, &[&a_id, &b_id, &c_id], 1, true))
        .await
        .unwrap();
    let c = connect(&carol_ep, &hub).await;
    let b = connect(&bob_ep, &hub).await;
    assert_eq!(
        listed(call(&c, Req::ListShares(ListShares {})).await).epoch,
        1
    );

    // Bob removes Carol.
    let remove = RemoveMember {
        share_id: share.clone(),
        device_id: c_id.clone(),
    };
    call(&b, Req::RemoveMember(remove)).await.unwrap();
    let closed = c.closed().await;
    assert!(
        format!("{closed:?}").contains("does not serve"),
        "{closed:?}"
    );
    if let Ok(again) = carol_ep
        .connect(
            EndpointAddr::new(hub.id().public_key()).with_ip_addr(hub.local_addrs()[0]),
            HUB_ALPN,
        )
        .await
    {
        assert!(call(&again, Req::ListShares(ListShares {})).await.is_err());
    }
    // Alice has not heard of it: her CreateShare still lists Carol, who stays out.
    call(&a, Req::CreateShare(create)).await.unwrap();
    let hs = listed(call(&a, Req::ListShares(ListShares {})).await);
    let members: Vec<&str> = hs.members.iter().map(|m| m.device_id.as_str()).collect();
    assert!(!members.contains(&c_id.as_str()), "{members:?}");
    assert_eq!(hs.removed, vec![c_id.clone()]);
    assert!(
        hs.slot_holders.contains(&c_id),
        "epoch 1 still has Carol's slot"
    );

    // A new epoch starts once.
    let two = ShareKeys::generate(&sid, Epoch(2)).unwrap();
    call(&a, slots(&two, &[&a_id, &b_id], 2, true))
        .await
        .unwrap();
    let rival = ShareKeys::generate(&sid, Epoch(2)).unwrap();
    assert_eq!(
        code(call(&b, slots(&rival, &[&a_id, &b_id], 2, true)).await),
        ErrorCode::Conflict
    );
    assert_eq!(
        code(call(&b, slots(&rival, &[&a_id], 4, false)).await),
        ErrorCode::Invalid,
        "slots for an epoch the share does not have"
    );
    let hs = listed(call(&b, Req::ListShares(ListShares {})).await);
    assert_eq!(hs.epoch, 2);
    assert!(!hs.slot_holders.contains(&c_id));
    assert_eq!(hs.older_slots.len(), 1);
    assert_eq!(hs.older_slots[0].epoch, 1);
    let mine = KeySlot::from_bytes(&hs.my_slot).unwrap();
    let opened = mine.open_with_device(&sid, Epoch(2), &age).unwrap();
    assert_eq!(
        opened.object_id(b"x"),
        two.object_id(b"x"),
        "the winner's keys"
    );

    // Uploads under epoch 1 are refused now; under epoch 2 they are stored.
    let chunk = b"after the removal".repeat(50);
    let put = |keys: &ShareKeys| {
        let id = keys.object_id(&chunk);
        Req::PutObject(PutObject {
            share_id: share.clone(),
            id: id.as_bytes().to_vec(),
            data: keys.seal_object(&id, &chunk).unwrap(),
        })
    };
    assert_eq!(code(call(&b, put(&one)).await), ErrorCode::Invalid);
    call(&b, put(&two)).await.unwrap();
    assert_eq!(blobs(&home), 1);
    hub.shutdown().await;
}

/// A hub with a quota per share: uploads are counted (an object already stored is not
/// counted twice); the one that would pass the quota is refused with `OverQuota` and
/// not stored, and so is a log record; another share has its own quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_past_the_share_quota_is_refused_and_not_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("hub");
    let (alice, alice_ep) = device(&tmp.path().join("alice")).await;
    let quota = 5000;
    let hub = serve(HubConfig {
        home: home.clone(),
        listen: ([127, 0, 0, 1], 0).into(),
        store: None,
        db: None,
        allow: vec![alice.id().to_string()],
        quota_per_share: Some(quota),
        gc_every: None,
        gc_grace: ferry_hub::server::DEFAULT_GC_GRACE,
    })
    .await
    .unwrap();
    let a = connect(&alice_ep, &hub).await;
    let age = DeviceIdentity::generate();
    let mut keys = Vec::new();
    for share in ["s1", "s2"] {
        let create = CreateShare {
            share_id: share.into(),
            members: vec![],
        };
        call(&a, Req::CreateShare(create)).await.unwrap();
        let sid: ShareId = share.parse().unwrap();
        let k = ShareKeys::generate(&sid, Epoch::FIRST).unwrap();
        let slots = PutSlots {
            share_id: share.into(),
            epoch: 1,
            slots: vec![SlotMsg {
                label: alice.id().to_string(),
                slot: k.slot_for_device(&age.recipient()).unwrap().to_bytes(),
            }],
            new_epoch: true,
        };
        call(&a, Req::PutSlots(slots)).await.unwrap();
        keys.push(k);
    }
    let put = |keys: &ShareKeys, n: u32| {
        let chunk = format!("chunk number {n} ").repeat(60).into_bytes();
        let id = keys.object_id(&chunk);
        let data = keys.seal_object(&id, &chunk).unwrap();
        (
            id,
            Req::PutObject(PutObject {
                share_id: keys.share().to_string(),
                id: id.as_bytes().to_vec(),
                data,
            }),
        )
    };
    // Each sealed object is 1142 bytes (1 KiB padded body + 118): four fit in 5000.
    let mut stored = 0;
    for n in 0..4 {
        let (_, req) = put(&keys[0], n);
        let Req::PutObject(p) = &req else { panic!() };
        stored += p.data.len() as u64;
        call(&a, req).await.unwrap();
    }
    assert!(stored <= quota);
    let (_, again) = put(&keys[0], 0);
    call(&a, again).await.unwrap();
    assert_eq!(
        blobs(&home),
        4,
        "an object stored already is not stored or counted twice"
    );
    let (id, over) = put(&keys[0], 99);
    let refused = call(&a, over).await;
    assert_eq!(code(refused), ErrorCode::OverQuota);
    let Err(ClientError::Hub { message, .. }) = call(&a, put(&keys[0], 99).1).await else {
        panic!()
    };
    assert!(
        message.contains("quota") && message.contains("nothing was stored"),
        "{message}"
    );
    assert_eq!(blobs(&home), 4, "the refused object is not stored");
    let got = call(
        &a,
        Req::GetObject(GetObject {
            share_id: "s1".into(),
            id: id.as_bytes().to_vec(),
        }),
    )
    .await
    .unwrap();
    let Rep::Object(obj) = got else { panic!() };
    assert!(!obj.found);
    // A log record past the quota is refused too, and the log stays empty.
    let batch = keys[0].seal_manifest((1 << 63) | 3, b"entries").unwrap();
    let append = Append {
        share_id: "s1".into(),
        after: 0,
        upto: 3,
        batch,
    };
    assert_eq!(
        code(call(&a, Req::Append(append)).await),
        ErrorCode::OverQuota
    );
    let read = ReadLog {
        share_id: "s1".into(),
        device_id: alice.id().to_string(),
        after: 0,
    };
    let Rep::Log(l) = call(&a, Req::ReadLog(read)).await.unwrap() else {
        panic!()
    };
    assert!(l.records.is_empty());
    // The other share has a quota of its own.
    call(&a, put(&keys[1], 99).1).await.unwrap();
    assert_eq!(blobs(&home), 5);

    // An object being garbage-collected (doomed) is reported missing, and an upload of
    // it is refused (`Busy`) rather than counted on: the collector deletes it next.
    let (doomed_id, doomed_put) = put(&keys[0], 0);
    let db = rusqlite::Connection::open(home.join("hub.db")).unwrap();
    let mark = |v: i64| {
        db.execute(
            "UPDATE objects SET doomed = ?1 WHERE id = ?2",
            rusqlite::params![v, &doomed_id.as_bytes()[..]],
        )
        .unwrap()
    };
    assert_eq!(mark(1), 1);
    let ask = Missing {
        share_id: "s1".into(),
        ids: vec![doomed_id.as_bytes().to_vec()],
    };
    let Rep::Missing(m) = call(&a, Req::Missing(ask)).await.unwrap() else {
        panic!()
    };
    assert_eq!(m.ids.len(), 1, "a doomed object is reported missing");
    assert_eq!(code(call(&a, doomed_put).await), ErrorCode::Busy);
    assert_eq!(mark(0), 1);
    hub.shutdown().await;

    // A hub from before objects and bytes were counted: no rows, usage 0. At its next
    // start it counts what its blobs and logs hold, so the quota is full again.
    db.execute_batch("DELETE FROM objects; DELETE FROM share_usage; DELETE FROM hub_facts;")
        .unwrap();
    let hub = serve(HubConfig {
        home: home.clone(),
        listen: ([127, 0, 0, 1], 0).into(),
        store: None,
        db: None,
        allow: vec![alice.id().to_string()],
        quota_per_share: Some(quota),
        gc_every: None,
        gc_grace: ferry_hub::server::DEFAULT_GC_GRACE,
    })
    .await
    .unwrap();
    let used: i64 = db
        .query_row(
            "SELECT bytes FROM share_usage WHERE share = 's1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        used as u64, stored,
        "the four objects stored before are counted"
    );
    let a = connect(&alice_ep, &hub).await;
    assert_eq!(
        code(call(&a, put(&keys[0], 98).1).await),
        ErrorCode::OverQuota,
        "the recounted bytes fill the quota"
    );
    assert_eq!(blobs(&home), 5);
    hub.shutdown().await;
}

/// Restoring with a passphrase, by hand: only on the restore ALPN; a wrong token is
/// refused and makes no member; the right one makes the device a member and returns
/// the passphrase slots; a removed device is refused; a new epoch drops the verifier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_with_a_passphrase_makes_a_member_until_the_next_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("hub");
    let (alice, alice_ep) = device(&tmp.path().join("alice")).await;
    let (dave, dave_ep) = device(&tmp.path().join("dave")).await;
    let (_eve, eve_ep) = device(&tmp.path().join("eve")).await;
    let hub = serve(HubConfig {
        home: home.clone(),
        listen: ([127, 0, 0, 1], 0).into(),
        store: None,
        db: None,
        allow: vec![alice.id().to_string()],
        quota_per_share: None,
        gc_every: None,
        gc_grace: ferry_hub::server::DEFAULT_GC_GRACE,
    })
    .await
    .unwrap();
    let a = connect(&alice_ep, &hub).await;
    let share = "s1".to_string();
    let sid: ShareId = share.parse().unwrap();
    let create = CreateShare {
        share_id: share.clone(),
        members: vec![],
    };
    call(&a, Req::CreateShare(create)).await.unwrap();
    let keys = ShareKeys::generate(&sid, Epoch::FIRST).unwrap();
    let pass = "a long enough passphrase";
    let params = ferry_hub::PassphraseParams {
        memory_kib: 1024,
        passes: 1,
        lanes: 1,
    };
    let slot = keys.slot_for_passphrase(pass, params).unwrap().to_bytes();
    let put = PutSlots {
        share_id: share.clone(),
        epoch: 1,
        slots: vec![SlotMsg {
            label: "passphrase".into(),
            slot,
        }],
        new_epoch: true,
    };
    call(&a, Req::PutSlots(put)).await.unwrap();
    let token = ferry_hub::restore_token(&sid, pass).unwrap();
    let set = SetRestore {
        share_id: share.clone(),
        verifier: ferry_hub::restore_verifier(token.as_ref()).to_vec(),
    };
    call(&a, Req::SetRestore(set)).await.unwrap();
    let addr = EndpointAddr::new(hub.id().public_key()).with_ip_addr(hub.local_addrs()[0]);
    let restore = |token: &[u8]| {
        Req::Restore(Restore {
            share_id: share.clone(),
            token: token.to_vec(),
        })
    };
    assert_eq!(
        code(call(&a, restore(token.as_ref())).await),
        ErrorCode::Invalid,
        "not on the main connection"
    );
    let d = dave_ep
        .connect(addr.clone(), HUB_RESTORE_ALPN)
        .await
        .unwrap();
    assert_eq!(code(call(&d, restore(&[0; 32])).await), ErrorCode::Refused);
    let members = |c: Connection| async move {
        let Rep::Shares(l) = call(&c, Req::ListShares(ListShares {})).await.unwrap() else {
            panic!()
        };
        (l.shares[0].members.iter())
            .map(|m| m.device_id.clone())
            .collect::<Vec<_>>()
    };
    let dave_id = dave.id().to_string();
    assert!(!members(a.clone()).await.contains(&dave_id));
    let Rep::Restore(r) = call(&d, restore(token.as_ref())).await.unwrap() else {
        panic!()
    };
    assert_eq!(r.slots.len(), 1);
    let opened = KeySlot::from_bytes(&r.slots[0].slot)
        .unwrap()
        .open_with_passphrase(&sid, Epoch(1), pass)
        .unwrap();
    assert_eq!(opened.object_id(b"x"), keys.object_id(b"x"));
    assert!(members(a.clone()).await.contains(&dave_id));
    assert_eq!(
        code(call(&d, Req::ListShares(ListShares {})).await),
        ErrorCode::Invalid,
        "the restore connection serves Restore only"
    );
    // Dave is removed: his token no longer lets him in. A new epoch drops the verifier.
    let remove = RemoveMember {
        share_id: share.clone(),
        device_id: dave_id.clone(),
    };
    call(&a, Req::RemoveMember(remove)).await.unwrap();
    assert_eq!(
        code(call(&d, restore(token.as_ref())).await),
        ErrorCode::Refused
    );
    let two = ShareKeys::generate(&sid, Epoch(2)).unwrap();
    let put = PutSlots {
        share_id: share.clone(),
        epoch: 2,
        slots: vec![SlotMsg {
            label: alice.id().to_string(),
            slot: two
                .slot_for_device(&DeviceIdentity::generate().recipient())
                .unwrap()
                .to_bytes(),
        }],
        new_epoch: true,
    };
    call(&a, Req::PutSlots(put)).await.unwrap();
    let e = eve_ep.connect(addr, HUB_RESTORE_ALPN).await.unwrap();
    assert_eq!(
        code(call(&e, restore(token.as_ref())).await),
        ErrorCode::Refused
    );
    hub.shutdown().await;
}
