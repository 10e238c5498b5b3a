//! The first exchange on every connection: each side sends a `Hello` (protocol version,
//! features, name) on the first stream the dialer opens. A peer speaking another
//! protocol version, or garbage, is closed with a code and a reason it can show.

use crate::connection::{CloseCode, Connection, FramedStream};
use crate::error::{NetError, WireError};
use crate::identity::DeviceId;
use crate::wire::{Body, Close, Envelope, Hello, PROTOCOL_VERSION};
use iroh::endpoint::ConnectionError;
use std::time::Duration;

/// How long a side waits for the other's `Hello`.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Dialer side: send our hello, read theirs.
pub async fn as_dialer(
    conn: iroh::endpoint::Connection,
    ours: &Hello,
) -> Result<Connection, NetError> {
    let device = DeviceId::from_public_key(conn.remote_id());
    let exchange = async {
        let (send, recv) = conn.open_bi().await.map_err(|e| lost(&device, e))?;
        let mut stream = FramedStream::new(send, recv);
        stream.send(&ours.clone().into()).await?;
        let reply = stream.recv().await?;
        stream.finish();
        Ok::<_, NetError>(reply)
    };
    let reply = match tokio::time::timeout(HELLO_TIMEOUT, exchange).await {
        Err(_) => Err(NetError::Timeout {
            device: device.to_string(),
        }),
        Ok(r) => r,
    };
    // A refusal shows up as a failed read; the close frame says why.
    if let Some(refusal) = refused(&conn, &device) {
        return Err(refusal);
    }
    match reply? {
        Some(Envelope {
            body: Some(Body::Hello(theirs)),
        }) => {
            if let Err(e) = check_version(&device, &theirs) {
                close(&conn, CloseCode::Incompatible, &e.to_string());
                return Err(e);
            }
            Ok(Connection::new(conn, theirs))
        }
        Some(Envelope {
            body: Some(Body::Close(c)),
        }) => Err(NetError::Refused {
            device: device.to_string(),
            code: c.code.into(),
            reason: c.reason,
        }),
        other => {
            let e = unexpected(other);
            close(&conn, CloseCode::Protocol, &e.to_string());
            Err(e.into())
        }
    }
}

/// Accepting side (the remote is already known): read their hello, answer with ours.
pub async fn as_acceptor(
    conn: iroh::endpoint::Connection,
    ours: &Hello,
) -> Result<Connection, NetError> {
    let device = DeviceId::from_public_key(conn.remote_id());
    let exchange = async {
        let (send, recv) = conn
            .accept_bi()
            .await
            .map_err(|e| (lost(&device, e), None))?;
        let mut stream = FramedStream::new(send, recv);
        let theirs = match stream.recv().await {
            Ok(Some(Envelope {
                body: Some(Body::Hello(h)),
            })) => h,
            Ok(other) => return Err((unexpected(other).into(), Some(stream))),
            Err(e) => return Err((e.into(), Some(stream))),
        };
        if let Err(e) = check_version(&device, &theirs) {
            return Err((e, Some(stream)));
        }
        if let Err(e) = stream.send(&ours.clone().into()).await {
            return Err((e.into(), None));
        }
        stream.finish();
        Ok(theirs)
    };
    match tokio::time::timeout(HELLO_TIMEOUT, exchange).await {
        Ok(Ok(theirs)) => Ok(Connection::new(conn, theirs)),
        Ok(Err((e, stream))) => {
            let code = match e {
                NetError::Incompatible { .. } => CloseCode::Incompatible,
                _ => CloseCode::Protocol,
            };
            if let Some(mut stream) = stream {
                // Best effort: the QUIC close below carries the same code and reason.
                let close: Envelope = Close {
                    code: code as u32,
                    reason: e.to_string(),
                }
                .into();
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.send(&close)).await;
            }
            close(&conn, code, &e.to_string());
            Err(e)
        }
        Err(_) => {
            let e = NetError::Timeout {
                device: device.to_string(),
            };
            close(&conn, CloseCode::Protocol, &e.to_string());
            Err(e)
        }
    }
}

fn check_version(device: &DeviceId, theirs: &Hello) -> Result<(), NetError> {
    if theirs.protocol_version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(NetError::Incompatible {
            device: device.to_string(),
            theirs: theirs.protocol_version,
            ours: PROTOCOL_VERSION,
        })
    }
}

fn unexpected(got: Option<Envelope>) -> WireError {
    match got {
        None => WireError::Truncated,
        Some(Envelope { body: None }) => WireError::Empty,
        Some(Envelope { body: Some(b) }) => WireError::Unexpected {
            expected: "Hello",
            got: b.name(),
        },
    }
}

/// The remote's application close, as a typed refusal.
fn refused(conn: &iroh::endpoint::Connection, device: &DeviceId) -> Option<NetError> {
    match conn.close_reason()? {
        ConnectionError::ApplicationClosed(c) => Some(NetError::Refused {
            device: device.to_string(),
            code: c.error_code.into_inner(),
            reason: String::from_utf8_lossy(&c.reason).into_owned(),
        }),
        ConnectionError::LocallyClosed => None,
        other => Some(lost(device, other)),
    }
}

fn lost(device: &DeviceId, e: ConnectionError) -> NetError {
    NetError::Connection {
        device: device.to_string(),
        message: e.to_string(),
    }
}

pub(crate) fn close(conn: &iroh::endpoint::Connection, code: CloseCode, reason: &str) {
    conn.close(
        iroh::endpoint::VarInt::from_u32(code as u32),
        reason.as_bytes(),
    );
}
