//! The hub server in one process, spoken to through its protocol by hand: admission
//! (an unknown device is closed at once; a device not a member of a share is refused
//! for it), and uploads checked (garbage, oversized, bad IDs, unknown epochs rejected
//! and not stored) while a well-formed sealed object is stored once.

use ferry_hub::client::{call, ClientError};
use ferry_hub::protocol::*;
use ferry_hub::server::{serve, HubConfig, RunningHub};
use ferry_hub::{DeviceIdentity, Epoch, ShareId, ShareKeys};
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
