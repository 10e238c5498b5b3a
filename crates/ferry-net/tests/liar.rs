//! A trusted member of a share that lies, played by a raw endpoint speaking the wire
//! protocol: entries with a path that escapes the folder, then content that is not
//! what its entry says. Nothing is stored or written; entries that cannot be true close
//! the connection, and the node carries on.

use ferry_core::index::Index;
use ferry_core::model::{Hash, RelPath};
use ferry_core::{ConflictPolicy, NoProgress, PullSource, SyncMode, SyncOptions};
use ferry_net::node::bind_endpoint;
use ferry_net::wire::share::{IndexBatch, PieceReply, ShareInfo, ShareList, WireEntry};
use ferry_net::wire::{Body, Envelope, Hello};
use ferry_net::{handshake, DeviceStore, Identity, Node, NodeConfig, ALPN};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);

fn entry(path: &str, content: &[u8]) -> WireEntry {
    WireEntry {
        path: path.into(),
        kind: 1,
        size: content.len() as u64,
        mtime_ns: 1_700_000_000_000_000_000,
        mode: 0o644,
        hash: Hash::of(content).0.to_vec(),
        chunks: vec![],
        link_target: None,
        version: vec![ferry_net::wire::share::WireCounter {
            replica: 99,
            counter: 1,
        }],
        presence: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_lies_gets_nothing_stored_or_written() {
    let (ha, hr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let folder = ha.path().join("shared");
    std::fs::create_dir(&folder).unwrap();
    let liar = Identity::load_or_create(hr.path()).unwrap();
    DeviceStore::open(ha.path())
        .unwrap()
        .add(liar.id(), None, &[], 1)
        .unwrap();
    let share = {
        let mut index = Index::open(&ha.path().join("index.db")).unwrap();
        ferry_core::share::create_share(
            &mut index,
            &folder,
            &[liar.id().to_string()],
            SyncMode::Bidirectional,
            ConflictPolicy::Newest,
        )
        .unwrap()
    };
    let (tx, mut runs) = tokio::sync::mpsc::unbounded_channel();
    let node = Node::start(NodeConfig {
        home: ha.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        relay: None,
        device_name: "honest".into(),
        changes: Some(tx),
        local_discovery: false,
    })
    .await
    .unwrap();

    // The liar connects and says hello like any device.
    let ep = bind_endpoint(&liar, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let target = ferry_net::iroh::EndpointAddr::new(node.id().public_key())
        .with_ip_addr(node.local_addrs()[0]);
    let dial = || async {
        let raw = ep.connect(target.clone(), ALPN).await.unwrap();
        handshake::as_dialer(raw, &Hello::ours("liar"))
            .await
            .unwrap()
    };
    let conn = dial().await;

    // It claims a folder of its own in the share, then answers the node's requests:
    // first with an entry that escapes the folder, later with a plausible entry whose
    // content it then lies about.
    let plausible = Arc::new(AtomicBool::new(false));
    let asked = Arc::new(AtomicUsize::new(0));
    let answer = |conn: ferry_net::Connection| {
        let (plausible, asked) = (plausible.clone(), asked.clone());
        tokio::spawn(async move {
            while let Ok(mut s) = conn.accept_bi().await {
                let Ok(Some(msg)) = s.recv().await else {
                    continue;
                };
                let reply: Option<Envelope> = match msg.body {
                    Some(Body::IndexRequest(r)) => {
                        asked.fetch_add(1, Ordering::SeqCst);
                        let e = if plausible.load(Ordering::Relaxed) {
                            entry("notes.txt", b"the truth")
                        } else {
                            entry("../outside.txt", b"escaped")
                        };
                        Some(
                            IndexBatch {
                                share_id: r.share_id,
                                entries: vec![e],
                                upto: 5,
                                done: true,
                            }
                            .into(),
                        )
                    }
                    Some(Body::PieceRequest(r)) => Some(
                        PieceReply {
                            found: true,
                            data: vec![b'x'; r.len as usize],
                            encoding: 0,
                        }
                        .into(),
                    ),
                    _ => None,
                };
                if let Some(reply) = reply {
                    let _ = s.send(&reply).await;
                    s.finish();
                }
            }
        })
    };
    let answering = answer(conn.clone());
    let list: Envelope = ShareList {
        shares: vec![ShareInfo {
            share_id: share.id.clone(),
            folder_name: "shared".into(),
            mode: "bidirectional".into(),
            conflict_policy: "newest".into(),
            folder_id: "4f1b2c3d-0000-4000-8000-00000000beef".into(),
        }],
    }
    .into();
    let mut s = conn.open_bi().await.unwrap();
    s.send(&list).await.unwrap();
    s.finish();

    // The node ties the liar's folder, pulls, and stores nothing of the escaping entry.
    let held = |index: &Index| {
        let m = index
            .share_member(&share.id, &liar.id().to_string())
            .unwrap()
            .unwrap();
        let entries = match m.remote_location {
            Some(l) => index.entries(l).unwrap(),
            None => Vec::new(),
        };
        (m.conduit_id, m.received_seq, entries.len())
    };
    let index = Index::open(&ha.path().join("index.db")).unwrap();
    let start = std::time::Instant::now();
    while asked.load(Ordering::SeqCst) == 0 {
        assert!(
            start.elapsed() < PATIENCE,
            "the node never asked for entries"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The answer was refused as a whole (a run is not even asked for), and the node
    // closed the connection on the liar.
    let why = tokio::time::timeout(PATIENCE, conn.closed()).await.unwrap();
    assert!(why.contains("cannot be true"), "{why}");
    answering.abort();
    let (tied, seq, n) = held(&index);
    let conduit = tied.expect("the liar's folder tied");
    assert_eq!((seq, n), (0, 0), "stored a batch with an escaping path");
    assert!(!ha.path().join("outside.txt").exists());

    // It comes back (a known device may) with a plausible entry: stored; but its
    // content is a lie, so nothing is written.
    plausible.store(true, Ordering::Relaxed);
    let conn = dial().await;
    let answering = answer(conn.clone());
    let changed: Envelope = ferry_net::wire::share::Changed {
        share_id: share.id.clone(),
    }
    .into();
    let mut s = conn.open_bi().await.unwrap();
    s.send(&changed).await.unwrap();
    s.finish();
    let again = tokio::time::timeout(PATIENCE, runs.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, conduit);
    assert_eq!(held(&index).2, 1);
    let pull = node.content_for(conduit).await.expect("connected");
    let home = ha.path().to_path_buf();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut index = Index::open(&home.join("index.db")).unwrap();
        let opts = SyncOptions {
            pull: Some(PullSource(Arc::new(pull))),
            ..Default::default()
        };
        ferry_core::sync_conduit(&mut index, conduit, &opts, &NoProgress).unwrap()
    })
    .await
    .unwrap();
    assert!(!outcome.problems.is_empty(), "a lie went unnoticed");
    assert!(!folder.join("notes.txt").exists());
    let names: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from(".ferry")], "{names:?}");
    assert!(RelPath::new("../outside.txt").is_err());
    answering.abort();
    node.shutdown().await;
}
