//! Nodes on loopback in one process: trust, refusal, pending, the hello, and peers
//! that misbehave. Ports are picked by the OS (port 0), so tests run in parallel.

use ferry_net::iroh::endpoint::{ConnectionError, VarInt};
use ferry_net::iroh::EndpointAddr;
use ferry_net::node::bind_endpoint;
use ferry_net::wire::{encode_frame, Envelope, Hello};
use ferry_net::{
    CloseCode, DeviceId, DeviceState, DeviceStore, Identity, NetError, Node, NodeConfig, ALPN,
};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(60);

async fn start(home: &Path, name: &str) -> Node {
    Node::start(NodeConfig {
        home: home.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        relay: None,
        device_name: name.into(),
        changes: None,
        local_discovery: false,
    })
    .await
    .unwrap()
}

fn addr(node: &Node) -> SocketAddr {
    node.local_addrs()[0]
}

fn add(home: &Path, id: DeviceId, addr: Option<SocketAddr>) {
    let addrs: Vec<String> = addr.iter().map(|a| a.to_string()).collect();
    DeviceStore::open(home)
        .unwrap()
        .add(id, None, &addrs, 1)
        .unwrap();
}

/// Polls `check` until it holds or PATIENCE runs out (no timing is asserted).
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < PATIENCE, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn connected(node: &Node, id: DeviceId) -> bool {
    node.statuses()
        .unwrap()
        .iter()
        .any(|s| s.id == id && s.connected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_that_know_each_other_connect() {
    let (ha, hb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(ha.path(), "a").await;
    let b = start(hb.path(), "b").await;
    add(ha.path(), b.id(), Some(addr(&b)));
    add(hb.path(), a.id(), Some(addr(&a)));
    until("a and b connected", || {
        connected(&a, b.id()) && connected(&b, a.id())
    })
    .await;
    let s = a.statuses().unwrap();
    let row = s.iter().find(|s| s.id == b.id()).unwrap();
    assert_eq!(row.path, Some(ferry_net::PathKind::Direct));
    assert_eq!(row.address.as_deref(), Some(addr(&b).to_string().as_str()));
    // The name from b's hello fills in the name a's user did not give.
    until("b's name stored", || {
        DeviceStore::open(ha.path())
            .unwrap()
            .get(&b.id())
            .unwrap()
            .unwrap()
            .name
            == Some("b".into())
    })
    .await;
    // The node answers requests on the connection itself: one for content of a share
    // b does not have with a gets no bytes back, and the connection carries on.
    let conn = a.connection(&b.id()).unwrap();
    assert_eq!(conn.hello().device_name, "b");
    let mut out = conn.open_bi().await.unwrap();
    let ask = ferry_net::wire::share::PieceRequest {
        share_id: "not-shared".into(),
        content: vec![0; 32],
        offset: 0,
        len: 1,
        hash: vec![0; 32],
    };
    out.send(&ask.into()).await.unwrap();
    out.finish();
    let got = tokio::time::timeout(PATIENCE, out.recv()).await.unwrap();
    assert!(
        !matches!(got, Ok(Some(_))),
        "answered a stranger's share: {got:?}"
    );
    assert!(connected(&a, b.id()) && connected(&b, a.id()));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_device_is_refused_and_pending_until_added() {
    let (ha, hc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(ha.path(), "a").await;
    let c = start(hc.path(), "c").await;
    add(hc.path(), a.id(), Some(addr(&a)));
    let err = c.dial(a.id(), &[addr(&a)]).await.unwrap_err();
    match &err {
        NetError::Refused { code, reason, .. } => {
            assert_eq!(*code, CloseCode::UnknownDevice as u64);
            assert!(reason.contains("ferry device add"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let pending = a.statuses().unwrap();
    let row = pending.iter().find(|s| s.id == c.id()).expect("c pending");
    assert_eq!(row.state, DeviceState::Pending);
    assert_eq!(row.address.as_deref(), Some(addr(&c).to_string().as_str()));
    // Accepting it: a dials it back at the address it came from.
    add(ha.path(), c.id(), None);
    until("a and c connected", || {
        connected(&a, c.id()) && connected(&c, a.id())
    })
    .await;
    assert!(a
        .statuses()
        .unwrap()
        .iter()
        .all(|s| s.state == DeviceState::Known));
    a.shutdown().await;
    c.shutdown().await;
}

/// A raw endpoint that a has been told about, to send what a real node would not.
async fn rogue(ha: &Path, a: &Node) -> (ferry_net::iroh::endpoint::Connection, Rogue) {
    let hr = tempfile::tempdir().unwrap();
    let me = Identity::load_or_create(hr.path()).unwrap();
    add(ha, me.id(), None);
    let ep = bind_endpoint(&me, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let target = EndpointAddr::new(a.id().public_key()).with_ip_addr(addr(a));
    let conn = ep.connect(target, ALPN).await.unwrap();
    (conn, (ep, hr))
}

/// What must outlive a rogue connection: its endpoint (dropping it stops the
/// connection) and its home.
type Rogue = (ferry_net::iroh::Endpoint, tempfile::TempDir);

async fn close_code(conn: &ferry_net::iroh::endpoint::Connection) -> (u64, String) {
    match tokio::time::timeout(PATIENCE, conn.closed()).await.unwrap() {
        ConnectionError::ApplicationClosed(c) => (
            c.error_code.into_inner(),
            String::from_utf8_lossy(&c.reason).into_owned(),
        ),
        other => panic!("expected an application close, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_hellos_are_closed_and_the_node_carries_on() {
    let (ha, hb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(ha.path(), "a").await;

    // A length prefix far over the cap, and nothing behind it.
    let (conn, _h1) = rogue(ha.path(), &a).await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let (code, reason) = close_code(&conn).await;
    assert_eq!(code, CloseCode::Protocol as u64);
    assert!(reason.contains("over the"), "{reason}");

    // A frame of garbage.
    let (conn, _h2) = rogue(ha.path(), &a).await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    let (code, _) = close_code(&conn).await;
    assert_eq!(code, CloseCode::Protocol as u64);

    // A well-formed hello from another protocol version.
    let (conn, _h3) = rogue(ha.path(), &a).await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    let hello: Envelope = Hello {
        protocol_version: 99,
        features: vec![],
        device_name: "future".into(),
    }
    .into();
    send.write_all(&encode_frame(&hello).unwrap())
        .await
        .unwrap();
    let (code, reason) = close_code(&conn).await;
    assert_eq!(code, CloseCode::Incompatible as u64);
    assert!(reason.contains("version 99"), "{reason}");

    // A stream closed before any hello.
    let (conn, _h4) = rogue(ha.path(), &a).await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&[0, 0]).await.unwrap();
    send.finish().unwrap();
    let (code, _) = close_code(&conn).await;
    assert_eq!(code, CloseCode::Protocol as u64);
    conn.close(VarInt::from_u32(0), b"");

    // And a real device still gets in.
    let b = start(hb.path(), "b").await;
    add(ha.path(), b.id(), None);
    add(hb.path(), a.id(), Some(addr(&a)));
    until("a and b connected", || connected(&a, b.id())).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_device_closes_its_connection() {
    let (ha, hb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(ha.path(), "a").await;
    let b = start(hb.path(), "b").await;
    add(ha.path(), b.id(), Some(addr(&b)));
    add(hb.path(), a.id(), None);
    until("a and b connected", || connected(&b, a.id())).await;
    DeviceStore::open(ha.path())
        .unwrap()
        .remove(&b.id().to_string())
        .unwrap();
    until("b sees a gone", || !connected(&b, a.id())).await;
    a.shutdown().await;
    b.shutdown().await;
}
