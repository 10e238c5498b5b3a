//! Devices with real `ferry daemon --listen` processes on loopback, each with its own
//! library: trust by ID, refusal and pending, acceptance, and hostile peers. Every
//! daemon binds UDP port 0 and tells its port through `ferry device list --json`, so
//! tests run in parallel; conditions are polled with a generous deadline, and nothing
//! asserts on timing.

#![cfg(feature = "net")]

use ferry_net::iroh::endpoint::ConnectionError;
use ferry_net::iroh::EndpointAddr;
use ferry_net::{CloseCode, DeviceId, Identity, ALPN};
use serde_json::Value;
use std::path::Path;

mod common;
use common::ferry_cmd;

use common::device::{wait_for, Device, Lan, DEADLINE};

#[test]
fn trusted_devices_connect_and_a_stranger_waits_as_pending_until_added() {
    let (mut a, mut b, mut c) = (Device::new(), Device::new(), Device::new());
    let (ida, idb, idc) = (a.id(), b.id(), c.id());
    let (addr_a, addr_b, addr_c) = (a.start(), b.start(), c.start());
    assert_eq!(a.list()["node"]["device_id"], ida.as_str());
    let mut events = Events::subscribe(&a.home);

    a.json(&["device", "add", &idb, "--name", "bee", "--addr", &addr_b]);
    b.json(&["device", "add", &ida, "--addr", &addr_a]);
    wait_for("a and b connected", || {
        a.connected_to(&idb) && b.connected_to(&ida)
    });
    let row = a.row(&idb).unwrap();
    assert_eq!(row["name"], "bee");
    assert_eq!(row["path"], "direct");
    assert_eq!(row["address"], addr_b.as_str());
    assert!(row["rtt_ms"].as_f64().is_some(), "{row}");
    assert!(row["last_seen"].as_i64().is_some(), "{row}");
    // b's user gave no name: the one a sent in its hello fills in.
    wait_for("a's name on b", || {
        b.row(&ida).is_some_and(|r| r["name"].is_string())
    });

    // c trusts a, but a does not know c: refused, and pending on a.
    c.json(&["device", "add", &ida, "--addr", &addr_a]);
    wait_for("c pending on a", || {
        a.row(&idc).is_some_and(|r| r["state"] == "pending")
    });
    let pending = a.row(&idc).unwrap();
    assert_eq!(pending["connected"], false);
    assert_eq!(pending["address"], addr_c.as_str());
    assert!(!c.connected_to(&ida));
    let text = ferry_cmd(&a.home)
        .args(["device", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("pending"), "{text}");
    assert!(text.contains("bee  connected, direct"), "{text}");

    // Accepting it (no address given: the one it came from is kept).
    let added = a.json(&["device", "add", &idc]);
    assert_eq!(added["accepted_pending"], true);
    wait_for("a and c connected", || {
        a.connected_to(&idc) && c.connected_to(&ida)
    });
    assert_eq!(a.row(&idc).unwrap()["state"], "known");

    // Removing b by name drops the connection on both sides.
    a.json(&["device", "remove", "bee"]);
    assert!(a.row(&idb).is_none());
    wait_for("b sees a gone", || !b.connected_to(&ida));

    // Each of those showed on a's event stream as it happened.
    let said = |name: &str, id: &str| {
        format!("event: {name}\ndata: {{\"type\":\"{name}\",\"device\":\"{id}\"")
    };
    for (name, id) in [
        ("device_connected", &idb),
        ("device_pending", &idc),
        ("device_connected", &idc),
        ("device_disconnected", &idb),
    ] {
        wait_for(&format!("{name} {id} on the event stream"), || {
            events.read();
            events.text.contains(&said(name, id))
        });
    }

    a.stop();
    b.stop();
    c.stop();
    // Without a daemon the stored list is shown, last seen kept.
    let offline = a.list();
    assert_eq!(offline["live"], false);
    let row = offline["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == idc.as_str())
        .cloned()
        .unwrap();
    assert_eq!(row["connected"], false);
    assert!(row["last_seen"].as_i64().is_some(), "{row}");
}

/// A device a has been told about, played by a raw endpoint so it can misbehave.
async fn rogue(
    a: &Device,
    addr_a: &str,
    home: &Path,
) -> (
    ferry_net::iroh::endpoint::Connection,
    ferry_net::iroh::Endpoint,
) {
    let me = Identity::load_or_create(home).unwrap();
    a.json(&["device", "add", &me.id().to_string()]);
    let ep = ferry_net::node::bind_endpoint(&me, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let id_a: DeviceId = a.id().parse().unwrap();
    let target = EndpointAddr::new(id_a.public_key()).with_ip_addr(addr_a.parse().unwrap());
    let conn = ep.connect(target, ALPN).await.unwrap();
    (conn, ep)
}

async fn close_code(conn: &ferry_net::iroh::endpoint::Connection) -> u64 {
    match tokio::time::timeout(DEADLINE, conn.closed()).await.unwrap() {
        ConnectionError::ApplicationClosed(c) => c.error_code.into_inner(),
        other => panic!("expected an application close, got {other}"),
    }
}

#[test]
fn hostile_peers_are_disconnected_and_the_daemon_carries_on() {
    let mut a = Device::new();
    let addr_a = a.start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let homes = tempfile::tempdir().unwrap();
    rt.block_on(async {
        // A length prefix of 4 GiB: refused before anything is allocated.
        let (conn, _ep) = rogue(&a, &addr_a, &homes.path().join("r1")).await;
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        assert_eq!(close_code(&conn).await, CloseCode::Protocol as u64);

        // A hello that is garbage.
        let (conn, _ep) = rogue(&a, &addr_a, &homes.path().join("r2")).await;
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(&[0, 0, 0, 5, 0x0a, 0xff, 0xff, 0xff, 0xff])
            .await
            .unwrap();
        assert_eq!(close_code(&conn).await, CloseCode::Protocol as u64);

        // An unknown device sending garbage is refused before it is read.
        let me = Identity::load_or_create(&homes.path().join("r3")).unwrap();
        let ep = ferry_net::node::bind_endpoint(&me, "127.0.0.1:0".parse().unwrap(), None)
            .await
            .unwrap();
        let id_a: DeviceId = a.id().parse().unwrap();
        let target = EndpointAddr::new(id_a.public_key()).with_ip_addr(addr_a.parse().unwrap());
        let conn = ep.connect(target, ALPN).await.unwrap();
        if let Ok((mut send, _)) = conn.open_bi().await {
            let _ = send.write_all(b"garbage garbage").await;
        }
        assert_eq!(close_code(&conn).await, CloseCode::UnknownDevice as u64);
    });
    // Still serving, and a real device still connects.
    let mut b = Device::new();
    let idb = b.id();
    b.start();
    a.json(&["device", "add", &idb]);
    b.json(&["device", "add", &a.id(), "--addr", &addr_a]);
    wait_for("a and b connected", || a.connected_to(&idb));
    a.stop();
    b.stop();
}

#[test]
fn device_ids_are_checked_and_own_id_is_refused() {
    let a = Device::new();
    let id = a.id();
    // One character changed: its group's check character catches it (usage error).
    let mut bad: Vec<char> = id.chars().collect();
    bad[2] = if bad[2] == 'A' { 'B' } else { 'A' };
    let bad: String = bad.into_iter().collect();
    let out = ferry_cmd(&a.home)
        .args(["device", "add", &bad])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("check character"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Lower case without dashes is the same ID.
    let plain = id.replace('-', "").to_lowercase();
    let out = ferry_cmd(&a.home)
        .args(["device", "add", &plain])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("own ID"));
    let out = ferry_cmd(&a.home)
        .args(["device", "remove", "nobody", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "not_found");
}

/// The daemon's event stream (`GET /api/events`), read as text.
struct Events {
    stream: std::net::TcpStream,
    text: String,
}

impl Events {
    fn subscribe(home: &Path) -> Events {
        use std::io::Write;
        let info: Value =
            serde_json::from_str(&std::fs::read_to_string(home.join("daemon.json")).unwrap())
                .unwrap();
        let token = std::fs::read_to_string(home.join("api-token")).unwrap();
        let port = info["port"].as_u64().unwrap() as u16;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\r\n",
            token.trim()
        )
        .unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        let mut e = Events {
            stream,
            text: String::new(),
        };
        wait_for("the event stream's response", || {
            e.read();
            e.text.starts_with("HTTP/1.1 200")
        });
        e
    }

    fn read(&mut self) {
        use std::io::Read;
        let mut buf = [0u8; 8192];
        while let Ok(n) = self.stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            self.text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
}

/// Two machines on one network: each is told only the other's ID, and they find each
/// other by mDNS and connect.
#[test]
fn devices_on_one_network_find_each_other_by_id_alone() {
    let lan = Lan::new();
    let mut a = Device::in_netns(&lan.ns[0], &lan.ip[0]);
    let mut b = Device::in_netns(&lan.ns[1], &lan.ip[1]);
    let (ida, idb) = (a.id(), b.id());
    a.local_discovery = true;
    b.local_discovery = true;
    a.start();
    b.start();
    a.json(&["device", "add", &idb, "--name", "bee"]);
    b.json(&["device", "add", &ida, "--name", "ay"]);
    wait_for("a and b connected with no address given", || {
        a.connected_to(&idb) && b.connected_to(&ida)
    });
    let row = a.row(&idb).unwrap();
    assert_eq!(row["path"], "direct", "{row}");
    assert!(
        row["address"]
            .as_str()
            .is_some_and(|s| s.starts_with(&format!("{}:", lan.ip[1]))),
        "{row}"
    );
    a.stop();
    b.stop();
}

/// Runs `ferry ARGS` on device `d`; its exit code and stderr.
fn fails(d: &Device, args: &[&str]) -> (Option<i32>, String) {
    let out = d.cmd().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn bandwidth_schedules_are_checked_stored_and_shown() {
    let a = Device::new();
    let b = Device::new();
    let bid = b.id();
    a.id();
    // Mistakes are usage errors that say what is wrong; nothing is stored.
    for (text, says) in [
        (
            "10M 09:00-18:00, 5M 17:00-19:00",
            "09:00-18:00 and 17:00-19:00 overlap",
        ),
        ("10M 9-18", "bad time window \"9-18\""),
        ("10M 09:00-18:00 weekdays", "cannot read"),
        ("fast 09:00-18:00", "bad rate \"fast\""),
        ("10M, 1M", "more than one rate"),
    ] {
        let (code, err) = fails(&a, &["device", "add", &bid, "--bandwidth-limit", text]);
        assert_eq!(code, Some(2), "{text}: {err}");
        assert!(err.contains(says), "{text}: {err}");
    }
    assert!(a.row(&bid).is_none(), "a refused limit added the device");
    // A schedule: stored, and shown with the rate that applies now.
    let text = "10M 09:00-18:00, 50M 18:00-23:00, 1M";
    let added = a.json(&["device", "add", &bid, "--bandwidth-limit", text]);
    assert_eq!(added["device"]["bandwidth_schedule"], text);
    let row = a.row(&bid).unwrap();
    assert_eq!(row["bandwidth_schedule"], text);
    let now = row["bandwidth_limit"].as_u64().unwrap();
    assert!([10 << 20, 50 << 20, 1 << 20].contains(&now), "{now}");
    // One rate again: no schedule left.
    a.json(&["device", "add", &bid, "--bandwidth-limit", "2M"]);
    let row = a.row(&bid).unwrap();
    assert_eq!(
        (
            row["bandwidth_limit"].as_u64(),
            row["bandwidth_schedule"].is_null()
        ),
        (Some(2 << 20), true)
    );
    // A share's schedule, set when sharing and changed later.
    let dir = a.tmp.path().join("shared");
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let out = a.json(&[
        "share",
        d,
        "--with",
        &bid,
        "--bandwidth-limit",
        "4M 22:00-06:00",
    ]);
    assert_eq!(out["bandwidth_schedule"], "4M 22:00-06:00");
    let out = a.json(&["share", d, "--bandwidth-limit", "1M 08:00-12:00, 256K"]);
    assert_eq!(
        (
            out["bandwidth_schedule"].as_str(),
            out["bandwidth_limit"].as_u64()
        ),
        (Some("1M 08:00-12:00, 256K"), Some(256 << 10))
    );
    let (code, err) = fails(
        &a,
        &[
            "share",
            d,
            "--bandwidth-limit",
            "1M 12:00-08:00, 2M 07:00-09:00",
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    // A conduit's limit is one rate: a schedule there says where schedules go.
    let (x, y) = (a.tmp.path().join("x"), a.tmp.path().join("y"));
    std::fs::create_dir_all(&x).unwrap();
    let (code, err) = fails(
        &a,
        &[
            "sync",
            x.to_str().unwrap(),
            y.to_str().unwrap(),
            "--bandwidth-limit",
            "1M 09:00-10:00",
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("set on a share or a device"), "{err}");
}
