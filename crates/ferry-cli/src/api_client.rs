//! A minimal client of the daemon's local API (HTTP/1.1 over 127.0.0.1), enough for the
//! CLI to ask a running daemon (`ferry status`) and to tell it about changes at once
//! (`ferry conduit pause|resume|add|remove`, `ferry sync`); no HTTP crate needed.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// GETs `path` from the library's daemon. `Ok(None)` when no daemon answers.
pub fn get(library: &Path, path: &str) -> Result<Option<serde_json::Value>> {
    call(library, "GET", path, None)
}

/// POSTs to `path` of the library's daemon. `Ok(None)` when no daemon answers.
pub fn post(library: &Path, path: &str) -> Result<Option<serde_json::Value>> {
    call(library, "POST", path, None)
}

/// POSTs `body` (JSON) to `path` of the library's daemon. `Ok(None)` when no daemon
/// answers.
pub fn post_json(
    library: &Path,
    path: &str,
    body: &serde_json::Value,
) -> Result<Option<serde_json::Value>> {
    call(library, "POST", path, Some(body))
}

/// Asks a running daemon to re-read saved conduits and settings now (it would
/// otherwise notice at its next periodic reload). Best effort: no daemon, nothing to do.
pub fn reload(library: &Path) {
    if let Err(e) = post(library, "/api/reload") {
        tracing::warn!("could not tell the daemon to reload its settings: {e:#}");
    }
}

fn call(
    library: &Path,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<Option<serde_json::Value>> {
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
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let kind = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n{kind}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
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
    if !status.starts_with('2') {
        let said = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        bail!("daemon answered {status} for {method} {path}: {said}");
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
