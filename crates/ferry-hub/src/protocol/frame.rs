//! u32 big-endian length, then a prost message; the length is checked against
//! [`super::MAX_FRAME`] before anything is allocated.

use super::MAX_FRAME;
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("a frame of {0} bytes is over the {MAX_FRAME}-byte cap")]
    TooLarge(u64),
    #[error("the stream ended inside a frame")]
    Truncated,
    #[error("not a valid message: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes one frame.
pub async fn write_msg<W: AsyncWrite + Unpin, M: Message>(
    w: &mut W,
    msg: &M,
) -> Result<(), FrameError> {
    let len = msg.encoded_len();
    if len > MAX_FRAME as usize {
        return Err(FrameError::TooLarge(len as u64));
    }
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    msg.encode(&mut out)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    w.write_all(&out).await?;
    Ok(())
}

/// Reads one frame; `Ok(None)` when the stream ends cleanly before a frame starts.
pub async fn read_msg<R: AsyncRead + Unpin, M: Message + Default>(
    r: &mut R,
) -> Result<Option<M>, FrameError> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut head[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(head);
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len.into()));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(e)
        }
    })?;
    Ok(Some(M::decode(body.as_slice())?))
}
