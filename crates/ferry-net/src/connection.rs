//! A connection to a trusted device after its `Hello`: the iroh connection, who is on
//! the other end and what it said, how the path looks (RTT, direct or relayed), and
//! bi-directional streams carrying framed messages, for the exchanges built later.

use crate::error::{NetError, WireError};
use crate::identity::DeviceId;
use crate::wire::{read_frame, write_frame, Envelope, Hello};
use iroh::endpoint::{ConnectionError, RecvStream, SendStream, VarInt};
use iroh::TransportAddr;
use std::time::Duration;

/// Application close codes (QUIC `CONNECTION_CLOSE` error codes) ferry uses. The reason
/// text says the same for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum CloseCode {
    /// Orderly end (shutdown, device removed).
    Done = 0,
    /// The dialing device is not in the known devices: it is now pending.
    UnknownDevice = 1,
    /// The protocol versions do not match.
    Incompatible = 2,
    /// A frame was oversized, garbled or out of order.
    Protocol = 3,
    /// Both sides dialed at once; this connection lost the tie-break.
    Duplicate = 4,
}

impl CloseCode {
    pub fn from_code(code: u64) -> Option<CloseCode> {
        [
            CloseCode::Done,
            CloseCode::UnknownDevice,
            CloseCode::Incompatible,
            CloseCode::Protocol,
            CloseCode::Duplicate,
        ]
        .into_iter()
        .find(|c| *c as u64 == code)
    }
}

/// How a connection's data travels now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// Straight over UDP between the two devices.
    Direct,
    /// Through a relay server.
    Relayed,
}

/// A live connection to a known device.
#[derive(Debug, Clone)]
pub struct Connection {
    inner: iroh::endpoint::Connection,
    remote: DeviceId,
    hello: Hello,
}

impl Connection {
    pub(crate) fn new(inner: iroh::endpoint::Connection, hello: Hello) -> Connection {
        let remote = DeviceId::from_public_key(inner.remote_id());
        Connection {
            inner,
            remote,
            hello,
        }
    }

    pub fn remote(&self) -> DeviceId {
        self.remote
    }

    /// What the remote said in its `Hello`.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// Round-trip time on the path in use.
    pub fn rtt(&self) -> Option<Duration> {
        let paths = self.inner.paths();
        let rtt = paths.iter().find(|p| p.is_selected()).map(|p| p.rtt());
        rtt
    }

    /// How fast the path in use carries bytes, bytes per second: the congestion
    /// controller's estimate (BBR's), else the window over the round trip.
    pub fn bandwidth_estimate(&self) -> Option<u64> {
        let paths = self.inner.paths();
        let est = paths.iter().find(|p| p.is_selected()).and_then(|p| {
            let st = p.stats();
            st.bandwidth_estimate.map(|bits| bits / 8).or_else(|| {
                let rtt = st.rtt.as_secs_f64();
                (rtt > 0.0 && st.cwnd > 0).then(|| (st.cwnd as f64 / rtt) as u64)
            })
        });
        est
    }

    /// Whether the path in use is direct or through a relay (`None` before one is chosen).
    pub fn path_kind(&self) -> Option<PathKind> {
        let paths = self.inner.paths();
        let kind = paths.iter().find(|p| p.is_selected()).map(|p| {
            if p.is_relay() {
                PathKind::Relayed
            } else {
                PathKind::Direct
            }
        });
        kind
    }

    /// The remote's address on the path in use: `IP:PORT`, or the relay's URL.
    pub fn remote_addr(&self) -> Option<String> {
        let paths = self.inner.paths();
        let addr = paths
            .iter()
            .find(|p| p.is_selected())
            .and_then(|p| describe(p.remote_addr()));
        addr
    }

    /// Opens a stream for one exchange of framed messages.
    pub async fn open_bi(&self) -> Result<FramedStream, NetError> {
        let (send, recv) = self.inner.open_bi().await.map_err(|e| self.lost(e))?;
        Ok(FramedStream { send, recv })
    }

    /// Waits for the remote to open a stream.
    pub async fn accept_bi(&self) -> Result<FramedStream, NetError> {
        let (send, recv) = self.inner.accept_bi().await.map_err(|e| self.lost(e))?;
        Ok(FramedStream { send, recv })
    }

    /// Closes the connection, telling the remote why.
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.inner
            .close(VarInt::from_u32(code as u32), reason.as_bytes());
    }

    /// Waits until the connection is closed (by either side, or by timeout), and says why.
    pub async fn closed(&self) -> String {
        self.inner.closed().await.to_string()
    }

    pub fn is_closed(&self) -> bool {
        self.inner.close_reason().is_some()
    }

    /// Identifies this connection among others to the same device.
    pub fn stable_id(&self) -> usize {
        self.inner.stable_id()
    }

    fn lost(&self, e: ConnectionError) -> NetError {
        NetError::Connection {
            device: self.remote.to_string(),
            message: e.to_string(),
        }
    }
}

/// `IP:PORT` or the relay URL.
pub(crate) fn describe(addr: &TransportAddr) -> Option<String> {
    match addr {
        TransportAddr::Ip(sa) => Some(sa.to_string()),
        TransportAddr::Relay(url) => Some(url.to_string()),
        _ => None,
    }
}

/// A bi-directional stream of framed messages.
#[derive(Debug)]
pub struct FramedStream {
    send: SendStream,
    recv: RecvStream,
}

impl FramedStream {
    pub(crate) fn new(send: SendStream, recv: RecvStream) -> FramedStream {
        FramedStream { send, recv }
    }

    pub async fn send(&mut self, msg: &Envelope) -> Result<(), WireError> {
        write_frame(&mut self.send, msg).await
    }

    /// The next message; `Ok(None)` when the remote finished its side.
    pub async fn recv(&mut self) -> Result<Option<Envelope>, WireError> {
        read_frame(&mut self.recv).await
    }

    /// Tells the remote nothing more will be sent on this stream.
    pub fn finish(&mut self) {
        let _ = self.send.finish();
    }

    /// The two halves, to send and receive at once (pipelined requests).
    pub fn split(self) -> (FrameWriter, FrameReader) {
        (
            FrameWriter { send: self.send },
            FrameReader { recv: self.recv },
        )
    }
}

/// The sending half of a [`FramedStream`].
#[derive(Debug)]
pub struct FrameWriter {
    send: SendStream,
}

impl FrameWriter {
    pub async fn send(&mut self, msg: &Envelope) -> Result<(), WireError> {
        write_frame(&mut self.send, msg).await
    }

    /// Tells the remote nothing more will be sent on this stream.
    pub fn finish(&mut self) {
        let _ = self.send.finish();
    }
}

/// The receiving half of a [`FramedStream`].
#[derive(Debug)]
pub struct FrameReader {
    recv: RecvStream,
}

impl FrameReader {
    /// The next message; `Ok(None)` when the remote finished its side.
    pub async fn recv(&mut self) -> Result<Option<Envelope>, WireError> {
        read_frame(&mut self.recv).await
    }
}
