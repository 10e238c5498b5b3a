//! Framing: a u32 big-endian length, then that many bytes of an [`Envelope`]. The
//! length is checked against [`MAX_FRAME`] before anything is allocated, so a peer
//! cannot make us reserve 4 GiB by sending four bytes.

use super::Envelope;
use crate::error::WireError;
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest message body accepted or sent: 16 MiB (a chunk batch fits; a lie does not).
pub const MAX_FRAME: u32 = 16 * 1024 * 1024;

/// The frame for `msg`: length prefix and body.
pub fn encode_frame(msg: &Envelope) -> Result<Vec<u8>, WireError> {
    let len = msg.encoded_len();
    if len > MAX_FRAME as usize {
        return Err(WireError::TooLarge {
            len: len as u64,
            max: MAX_FRAME,
        });
    }
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    msg.encode(&mut out)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(out)
}

/// Decodes the first frame of `buf`: `Ok(None)` while more bytes are needed, else the
/// message and how many bytes it took.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Envelope, usize)>, WireError> {
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    check_len(len)?;
    let end = 4 + len as usize;
    let Some(body) = buf.get(4..end) else {
        return Ok(None);
    };
    Ok(Some((Envelope::decode(body)?, end)))
}

/// Reads one frame. `Ok(None)` when the stream ends cleanly before a frame starts.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Envelope>, WireError> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut head[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(WireError::Truncated)
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(head);
    check_len(len)?;
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            WireError::Truncated
        } else {
            WireError::Io(e)
        }
    })?;
    Ok(Some(Envelope::decode(body.as_slice())?))
}

/// Writes one frame (not flushed beyond what the writer does itself).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    msg: &Envelope,
) -> Result<(), WireError> {
    let frame = encode_frame(msg)?;
    w.write_all(&frame).await?;
    Ok(())
}

fn check_len(len: u32) -> Result<(), WireError> {
    if len > MAX_FRAME {
        return Err(WireError::TooLarge {
            len: len.into(),
            max: MAX_FRAME,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Body, Close, Hello};
    use proptest::prelude::*;

    fn hello() -> Envelope {
        Hello {
            protocol_version: 1,
            features: vec!["x".into()],
            device_name: "laptop".into(),
        }
        .into()
    }

    #[test]
    fn a_frame_round_trips_through_both_decoders() {
        let frame = encode_frame(&hello()).unwrap();
        let (msg, used) = decode_frame(&frame).unwrap().unwrap();
        assert_eq!((msg, used), (hello(), frame.len()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let msg = rt.block_on(read_frame(&mut frame.as_slice())).unwrap();
        assert_eq!(msg, Some(hello()));
    }

    #[test]
    fn partial_frames_ask_for_more() {
        let frame = encode_frame(&hello()).unwrap();
        for cut in 0..frame.len() {
            assert!(decode_frame(&frame[..cut]).unwrap().is_none(), "cut {cut}");
        }
    }

    #[test]
    fn an_oversized_length_is_refused_before_reading_the_body() {
        let head = (MAX_FRAME + 1).to_be_bytes();
        assert!(matches!(
            decode_frame(&head),
            Err(WireError::TooLarge { .. })
        ));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt.block_on(read_frame(&mut &head[..])).unwrap_err();
        assert!(matches!(err, WireError::TooLarge { len, .. } if len == u64::from(MAX_FRAME) + 1));
    }

    #[test]
    fn a_cut_stream_is_truncated_and_an_empty_one_ends() {
        let frame = encode_frame(&hello()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt.block_on(read_frame(&mut &frame[..6])).unwrap_err();
        assert!(matches!(err, WireError::Truncated), "{err:?}");
        assert!(rt.block_on(read_frame(&mut &[][..])).unwrap().is_none());
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let mut frame = vec![0, 0, 0, 3];
        frame.extend_from_slice(&[0xff, 0xff, 0xff]);
        assert!(matches!(decode_frame(&frame), Err(WireError::Decode(_))));
    }

    #[test]
    fn close_round_trips() {
        let msg: Envelope = Close {
            code: 3,
            reason: "version".into(),
        }
        .into();
        let (back, _) = decode_frame(&encode_frame(&msg).unwrap()).unwrap().unwrap();
        assert!(matches!(
            back.body,
            Some(Body::Close(Close { code: 3, .. }))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_frame(&bytes);
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let _ = rt.block_on(read_frame(&mut bytes.as_slice()));
        }

        #[test]
        fn arbitrary_bodies_behind_a_valid_length_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut frame = (body.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&body);
            let _ = decode_frame(&frame);
        }
    }
}
