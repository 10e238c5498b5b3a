//! A minimal client of the daemon's local API (HTTP/1.1 over 127.0.0.1), enough for
//! `ferry status` to ask a running daemon; no HTTP crate needed for a few GETs.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// GETs `path` from the library's daemon. `Ok(None)` when no daemon answers.
pub fn get(library: &Path, path: &str) -> Result<Option<serde_json::Value>> {
    let Some(info) = ferry_daemon::discovery::read_info(library) else {
        return Ok(None);
    };
    let Some(token) = ferry_daemon::discovery::read_token(library)? else {
        return Ok(None);
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], info.port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return Ok(None); // stale daemon.json: the daemon is gone
    };
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .context("reading the daemon's answer")?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("malformed answer from the daemon")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    if status != "200" {
        bail!(
            "daemon answered {status} for {path}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(Some(
        serde_json::from_slice(&body).context("daemon's answer is not JSON")?,
    ))
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunk")?;
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16)?;
        b = &b[eol + 2..];
        if size == 0 || b.len() < size {
            break;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[(size + 2).min(b.len())..];
    }
    Ok(out)
}
