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
