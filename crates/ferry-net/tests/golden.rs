//! Golden bytes: the wire format, pinned. If one of these fails, the format changed:
//! make sure that was deliberate (new tags only, never a reused one) and bump
//! `PROTOCOL_VERSION` if old devices cannot read the new bytes.

use ferry_net::wire::{decode_frame, encode_frame, Close, Envelope, Hello, MAX_FRAME};

const HELLO: &[u8] = &[
    0x00, 0x00, 0x00, 0x0f, // length 15
    0x0a, 0x0d, // Envelope.body = Hello (tag 1), 13 bytes
    0x08, 0x01, // protocol_version = 1
    0x12, 0x01, b'x', // features = ["x"]
    0x1a, 0x06, b'l', b'a', b'p', b't', b'o', b'p', // device_name = "laptop"
];

const CLOSE: &[u8] = &[
    0x00, 0x00, 0x00, 0x0d, // length 13
    0x12, 0x0b, // Envelope.body = Close (tag 2), 11 bytes
    0x08, 0x03, // code = 3
    0x12, 0x07, b'v', b'e', b'r', b's', b'i', b'o', b'n', // reason = "version"
];

#[test]
fn hello_bytes_are_pinned() {
    let msg: Envelope = Hello {
        protocol_version: 1,
        features: vec!["x".into()],
        device_name: "laptop".into(),
    }
    .into();
    assert_eq!(encode_frame(&msg).unwrap(), HELLO);
    assert_eq!(decode_frame(HELLO).unwrap(), Some((msg, HELLO.len())));
}

#[test]
fn close_bytes_are_pinned() {
    let msg: Envelope = Close {
        code: 3,
        reason: "version".into(),
    }
    .into();
    assert_eq!(encode_frame(&msg).unwrap(), CLOSE);
    assert_eq!(decode_frame(CLOSE).unwrap(), Some((msg, CLOSE.len())));
}

#[test]
fn an_unknown_field_from_a_newer_device_is_skipped() {
    // The Hello above plus field 9 (varint 5), as a newer build might send.
    let mut body = HELLO[6..].to_vec();
    body.extend_from_slice(&[0x48, 0x05]);
    let mut frame = vec![0, 0, 0, (body.len() + 2) as u8, 0x0a, body.len() as u8];
    frame.extend_from_slice(&body);
    let (msg, _) = decode_frame(&frame).unwrap().unwrap();
    let (want, _) = decode_frame(HELLO).unwrap().unwrap();
    assert_eq!(msg, want);
}

#[test]
fn the_cap_is_16_mib() {
    assert_eq!(MAX_FRAME, 16 * 1024 * 1024);
}

/// An index batch with one file entry: path, kind, size, mtime, mode, hash, one chunk,
/// a version counter. The hex below was produced by this build and read field by field
/// against the tags in `wire/share.rs`; a change here is a change of the format.
#[test]
fn index_batch_bytes_are_pinned() {
    use ferry_net::wire::share::{IndexBatch, WireChunk, WireCounter, WireEntry};
    let msg: Envelope = IndexBatch {
        share_id: "s1".into(),
        entries: vec![WireEntry {
            path: "a/b.txt".into(),
            kind: 1,
            size: 3,
            mtime_ns: -1,
            mode: 0o644,
            hash: vec![0xaa; 32],
            chunks: vec![WireChunk {
                len: 3,
                hash: vec![0xbb; 32],
            }],
            link_target: None,
            version: vec![WireCounter {
                replica: 7,
                counter: 2,
            }],
            presence: 0,
        }],
        upto: 9,
        done: true,
    }
    .into();
    let frame = encode_frame(&msg).unwrap();
    assert_eq!(hex(&frame), GOLDEN_INDEX_BATCH);
    assert_eq!(decode_frame(&frame).unwrap(), Some((msg, frame.len())));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// 0000006c length · 2a 6a Envelope.body = IndexBatch (tag 5) · 0a 02 "s1" share ·
/// 12 60 entry: 0a 07 "a/b.txt", 10 01 kind, 18 03 size, 20 01 mtime -1 (zigzag),
/// 28 a4 03 mode 0644, 32 20 hash, 3a 24 chunk (08 03 len, 12 20 hash), 4a 04 counter
/// (08 07 replica, 10 02 counter) · 18 09 upto · 20 01 done.
const GOLDEN_INDEX_BATCH: &str = "0000006c2a6a0a02733112600a07612f622e74787410011803200128a4033220aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa3a2408031220bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb4a040807100218092001";
