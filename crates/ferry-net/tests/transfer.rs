//! Content pulled from a member, against a member played by a raw endpoint that
//! counts what it is asked: pipelined requests share a few streams, a member without
//! pipelining gets one stream per piece, compressed replies are decompressed and
//! counted, and a zstd frame that grows beyond its piece is never used.

use ferry_core::index::Index;
use ferry_core::model::{digest_reader, Hash};
use ferry_core::{ConflictPolicy, NoProgress, PullSource, SyncMode, SyncOptions};
use ferry_net::node::bind_endpoint;
use ferry_net::transfer::LANES;
use ferry_net::wire::share::{
    IndexBatch, PieceReply, ShareInfo, ShareList, WireChunk, WireCounter, WireEntry,
};
use ferry_net::wire::{Body, Envelope, Hello, PIPELINED, ZSTD};
use ferry_net::{handshake, Connection, DeviceStore, Identity, Node, NodeConfig, ALPN};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(120);

fn entry(path: &str, content: &[u8]) -> WireEntry {
    let d = digest_reader(content).unwrap();
    WireEntry {
        path: path.into(),
        kind: 1,
        size: content.len() as u64,
        mtime_ns: 1_700_000_000_000_000_000,
        mode: 0o644,
        hash: d.hash.0.to_vec(),
        chunks: (d.chunks.iter())
            .map(|c| WireChunk {
                len: c.len,
                hash: c.hash.0.to_vec(),
            })
            .collect(),
        link_target: None,
        version: vec![WireCounter {
            replica: 99,
            counter: 1,
        }],
        presence: 0,
    }
}

/// Text that zstd shrinks a lot.
fn text(n: usize) -> Vec<u8> {
    (0u32..)
        .flat_map(|i| format!("line {i} of a log that repeats itself\n").into_bytes())
        .take(n)
        .collect()
}

/// Bytes zstd cannot shrink (xorshift).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// How the member answers piece requests.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Honest,
    /// A zstd frame of a megabyte of zeros for every piece.
    Bomb,
}

#[derive(Default)]
struct Counts {
    piece_streams: AtomicUsize,
    piece_requests: AtomicUsize,
    compressed: AtomicUsize,
}

struct Setup {
    _homes: (tempfile::TempDir, tempfile::TempDir),
    home: PathBuf,
    folder: PathBuf,
    node: Node,
    conduit: i64,
    counts: Arc<Counts>,
    member: ferry_net::DeviceId,
    _answering: tokio::task::JoinHandle<()>,
}

/// A node sharing an empty folder with a member (a raw endpoint announcing
/// `features`) whose folder holds `files`; the member's folder is tied and its entries
/// pulled, so a run of `conduit` pulls the files.
async fn setup(features: &[&str], files: Vec<(&'static str, Vec<u8>)>, answer: Answer) -> Setup {
    let (ha, hr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let folder = ha.path().join("shared");
    std::fs::create_dir(&folder).unwrap();
    let member = Identity::load_or_create(hr.path()).unwrap();
    DeviceStore::open(ha.path())
        .unwrap()
        .add(member.id(), None, &[], 1)
        .unwrap();
    let share = {
        let mut index = Index::open(&ha.path().join("index.db")).unwrap();
        ferry_core::share::create_share(
            &mut index,
            &folder,
            &[member.id().to_string()],
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
        device_name: "puller".into(),
        changes: Some(tx),
        local_discovery: false,
    })
    .await
    .unwrap();
    let ep = bind_endpoint(&member, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let target = ferry_net::iroh::EndpointAddr::new(node.id().public_key())
        .with_ip_addr(node.local_addrs()[0]);
    let raw = ep.connect(target, ALPN).await.unwrap();
    let hello = Hello {
        features: features.iter().map(|f| f.to_string()).collect(),
        ..Hello::ours("member")
    };
    let conn = handshake::as_dialer(raw, &hello).await.unwrap();
    let counts = Arc::new(Counts::default());
    let contents: Arc<HashMap<Hash, Vec<u8>>> = Arc::new(
        files
            .iter()
            .map(|(_, c)| (Hash::of(c), c.clone()))
            .collect(),
    );
    let entries: Vec<WireEntry> = files.iter().map(|(p, c)| entry(p, c)).collect();
    let pipelined = features.contains(&PIPELINED);
    // A member compresses only if it knows zstd itself.
    let knows_zstd = features.contains(&ZSTD);
    let answering = {
        let (conn, counts) = (conn.clone(), counts.clone());
        tokio::spawn(async move {
            // Keeps the endpoint alive as long as the member answers.
            let _ep = ep;
            while let Ok(s) = conn.accept_bi().await {
                let (conn, counts, contents, entries) = (
                    conn.clone(),
                    counts.clone(),
                    contents.clone(),
                    entries.clone(),
                );
                tokio::spawn(async move {
                    let how = (pipelined, knows_zstd, answer);
                    serve(conn, s, counts, contents, entries, how).await
                });
            }
        })
    };
    let list: Envelope = ShareList {
        shares: vec![ShareInfo {
            share_id: share.id.clone(),
            folder_name: "shared".into(),
            mode: "bidirectional".into(),
            conflict_policy: "newest".into(),
            folder_id: "4f1b2c3d-0000-4000-8000-00000000cafe".into(),
        }],
    }
    .into();
    let mut s = conn.open_bi().await.unwrap();
    s.send(&list).await.unwrap();
    s.finish();
    // Tied and pulled: the node asks for a run.
    let conduit = tokio::time::timeout(PATIENCE, runs.recv())
        .await
        .expect("a run asked for")
        .unwrap();
    Setup {
        home: ha.path().to_path_buf(),
        _homes: (ha, hr),
        folder,
        node,
        conduit,
        counts,
        member: member.id(),
        _answering: answering,
    }
}

async fn serve(
    conn: Connection,
    s: ferry_net::FramedStream,
    counts: Arc<Counts>,
    contents: Arc<HashMap<Hash, Vec<u8>>>,
    entries: Vec<WireEntry>,
    (pipelined, knows_zstd, answer): (bool, bool, Answer),
) {
    let zstd = knows_zstd && conn.hello().has(ZSTD);
    let (mut w, mut r) = s.split();
    let mut first = true;
    while let Ok(Some(msg)) = r.recv().await {
        let reply: Envelope = match msg.body {
            Some(Body::IndexRequest(req)) => IndexBatch {
                share_id: req.share_id,
                entries: entries.clone(),
                upto: 5,
                done: true,
            }
            .into(),
            Some(Body::PieceRequest(req)) => {
                if first {
                    counts.piece_streams.fetch_add(1, Ordering::SeqCst);
                }
                counts.piece_requests.fetch_add(1, Ordering::SeqCst);
                let piece = req.piece().unwrap();
                let bytes = contents.get(&piece.content).map(|c| {
                    c[piece.offset as usize..piece.offset as usize + piece.len as usize].to_vec()
                });
                match (bytes, answer) {
                    (None, _) => PieceReply::default().into(),
                    (Some(_), Answer::Bomb) => PieceReply {
                        found: true,
                        data: zstd::bulk::compress(&vec![0u8; 1 << 20], 1).unwrap(),
                        encoding: 1,
                    }
                    .into(),
                    (Some(b), Answer::Honest) if zstd => {
                        let c = zstd::bulk::compress(&b, 1).unwrap();
                        if c.len() < b.len() {
                            counts.compressed.fetch_add(1, Ordering::SeqCst);
                            PieceReply {
                                found: true,
                                data: c,
                                encoding: 1,
                            }
                        } else {
                            PieceReply {
                                found: true,
                                data: b,
                                encoding: 0,
                            }
                        }
                        .into()
                    }
                    (Some(b), Answer::Honest) => PieceReply {
                        found: true,
                        data: b,
                        encoding: 0,
                    }
                    .into(),
                }
            }
            _ => return,
        };
        first = false;
        if w.send(&reply).await.is_err() {
            return;
        }
        if !pipelined {
            break; // one request per stream, as a member without pipelining does
        }
    }
    w.finish();
}

/// Runs the share's conduit once, pulling from the member.
async fn run(s: &Setup) -> ferry_core::SyncOutcome {
    let pull = s.node.content_for(s.conduit).await.expect("connected");
    let (home, conduit) = (s.home.clone(), s.conduit);
    tokio::task::spawn_blocking(move || {
        let mut index = Index::open(&home.join("index.db")).unwrap();
        let opts = SyncOptions {
            pull: Some(PullSource(Arc::new(pull))),
            ..Default::default()
        };
        ferry_core::sync_conduit(&mut index, conduit, &opts, &NoProgress).unwrap()
    })
    .await
    .unwrap()
}

fn files() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = vec![("log.txt", text(3 << 20)), ("photo.raw", noise(2 << 20, 7))];
    for (i, name) in ["a", "b", "c", "d", "e", "f", "g", "h"].iter().enumerate() {
        v.push((name, noise(20_000 + i * 1000, i as u64 + 100)));
    }
    v
}

fn chunk_count(files: &[(&str, Vec<u8>)]) -> usize {
    files
        .iter()
        .map(|(_, c)| digest_reader(c.as_slice()).unwrap().chunks.len().max(1))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_share_a_few_streams_and_compressed_pieces_are_counted() {
    let files = files();
    let s = setup(&[PIPELINED, ZSTD], files.clone(), Answer::Honest).await;
    let outcome = run(&s).await;
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    for (p, c) in &files {
        assert_eq!(&std::fs::read(s.folder.join(p)).unwrap(), c, "{p}");
    }
    let requests = s.counts.piece_requests.load(Ordering::SeqCst);
    let streams = s.counts.piece_streams.load(Ordering::SeqCst);
    assert_eq!(requests, chunk_count(&files), "each piece asked for once");
    assert!(
        streams <= LANES,
        "{requests} pieces took {streams} streams (at most {LANES} lanes)"
    );
    assert!(s.counts.compressed.load(Ordering::SeqCst) > 0);
    let row = s.node.statuses().unwrap();
    let t = (row.iter().find(|r| r.id == s.member))
        .and_then(|r| r.transfer.clone())
        .expect("the member's transfer counts");
    let total: u64 = files.iter().map(|(_, c)| c.len() as u64).sum();
    assert_eq!(t.received_bytes, total);
    assert!(t.received_wire_bytes < total);
    assert_eq!(t.saved_by_compression, total - t.received_wire_bytes);
    // The text alone shrinks to a fraction: most of its 3 MiB never crossed.
    assert!(t.saved_by_compression > 2 << 20, "{t:?}");
    s.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_without_pipelining_or_zstd_gets_one_stream_per_piece() {
    let files = files();
    let s = setup(&[], files.clone(), Answer::Honest).await;
    let outcome = run(&s).await;
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    for (p, c) in &files {
        assert_eq!(&std::fs::read(s.folder.join(p)).unwrap(), c, "{p}");
    }
    let requests = s.counts.piece_requests.load(Ordering::SeqCst);
    assert_eq!(requests, chunk_count(&files));
    assert_eq!(s.counts.piece_streams.load(Ordering::SeqCst), requests);
    assert_eq!(
        s.counts.compressed.load(Ordering::SeqCst),
        0,
        "zstd not announced"
    );
    s.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zstd_frame_larger_than_its_piece_is_never_used() {
    let files = vec![("log.txt", text(300_000))];
    let s = setup(&[PIPELINED, ZSTD], files, Answer::Bomb).await;
    let outcome = run(&s).await;
    assert!(!outcome.problems.is_empty(), "a bomb went unnoticed");
    assert!(!s.folder.join("log.txt").exists());
    s.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_under_a_share_limit_and_a_device_limit_completes_and_the_limits_show() {
    let files = vec![("log.txt", text(1 << 20)), ("photo.raw", noise(1 << 20, 3))];
    let s = setup(&[PIPELINED, ZSTD], files.clone(), Answer::Honest).await;
    {
        let index = Index::open(&s.home.join("index.db")).unwrap();
        let (share, _) = index.share_of_conduit(s.conduit).unwrap().unwrap();
        index.set_share_bandwidth_limit(&share.id, 8 << 20).unwrap();
        assert_eq!(
            index.conduit(s.conduit).unwrap().unwrap().bandwidth_limit,
            8 << 20,
            "the share's conduit takes the share's limit"
        );
    }
    DeviceStore::open(&s.home)
        .unwrap()
        .set_bandwidth_limit(&s.member, 16 << 20)
        .unwrap();
    let limit = || {
        (s.node.statuses().unwrap().iter())
            .find(|r| r.id == s.member)
            .and_then(|r| r.bandwidth_limit)
    };
    assert_eq!(limit(), Some(16 << 20));
    let outcome = run(&s).await;
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    for (p, c) in &files {
        assert_eq!(&std::fs::read(s.folder.join(p)).unwrap(), c, "{p}");
    }
    DeviceStore::open(&s.home)
        .unwrap()
        .set_bandwidth_limit(&s.member, 0)
        .unwrap();
    assert_eq!(limit(), None);
    s.node.shutdown().await;
}

/// `HH:MM` of a minute of the day.
fn hhmm(minute: u32) -> String {
    let m = minute % (24 * 60);
    format!("{:02}:{:02}", m / 60, m % 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_limit_is_honoured_in_its_window_and_shown() {
    use ferry_core::bandwidth::{local_minute, BandwidthLimit};
    // 2 MiB of noise (nothing to compress) under a share schedule whose window holds
    // the present minute at 512 KiB/s: the pull cannot take less than (2 MiB − the
    // bucket's burst of 128 KiB) / 512 KiB/s ≈ 3.7 s (unlimited, it takes a few ms
    // here). The device's schedule limits to 1 KiB/s in a window twelve hours away:
    // were it applied now, the copy would take half an hour.
    let files = vec![("photo.raw", noise(2 << 20, 11))];
    let s = setup(&[PIPELINED, ZSTD], files.clone(), Answer::Honest).await;
    let now = u32::from(local_minute());
    let share_text = format!(
        "512K {}-{}, 50M {}-{}",
        hhmm(now),
        hhmm(now + 10),
        hhmm(now + 600),
        hhmm(now + 660)
    );
    let share_limit = BandwidthLimit::parse(&share_text).unwrap();
    let device_text = format!("1K {}-{}", hhmm(now + 720), hhmm(now + 730));
    {
        let index = Index::open(&s.home.join("index.db")).unwrap();
        let (share, _) = index.share_of_conduit(s.conduit).unwrap().unwrap();
        index.set_share_bandwidth(&share.id, &share_limit).unwrap();
        assert_eq!(
            index.share_bandwidth(&share.id).unwrap(),
            share_limit,
            "stored"
        );
    }
    DeviceStore::open(&s.home)
        .unwrap()
        .set_bandwidth(&s.member, &BandwidthLimit::parse(&device_text).unwrap())
        .unwrap();
    let status = (s.node.statuses().unwrap().into_iter())
        .find(|r| r.id == s.member)
        .unwrap();
    assert_eq!(
        status.bandwidth_schedule.as_deref(),
        Some(device_text.as_str())
    );
    assert_eq!(
        status.bandwidth_limit, None,
        "outside its window: no limit now"
    );
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(PATIENCE, run(&s))
        .await
        .expect("the device's window far away limited the copy");
    let took = started.elapsed();
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    for (p, c) in &files {
        assert_eq!(&std::fs::read(s.folder.join(p)).unwrap(), c, "{p}");
    }
    assert!(
        took >= Duration::from_secs(3),
        "2 MiB in {took:?}: faster than the window's 512 KiB/s"
    );
    s.node.shutdown().await;
}
