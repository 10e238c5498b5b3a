//! The device node beside the sync service: started by `ferry daemon --listen` when
//! built with the `net` feature, stopped with the daemon. The API's `GET /api/devices`
//! shows its live view (connected, path, RTT); without a node it answers 404 and the
//! CLI falls back to the stored list.

use crate::error::{DaemonError, Result};
use crate::service::NetOptions;
use crate::shared::Shared;
use serde_json::Value;
use std::sync::Arc;

/// Starts the node if asked for. A member device's changed entries queue a run of the
/// share's conduit.
#[cfg(feature = "net")]
pub async fn start(shared: &Arc<Shared>, opts: Option<&NetOptions>) -> Result<()> {
    let Some(opts) = opts else {
        return Ok(());
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let s = shared.clone();
    tokio::spawn(async move {
        while let Some(conduit) = rx.recv().await {
            if let Err(e) = crate::control::sync_now(&s, conduit).await {
                tracing::info!("conduit {conduit}: a device's changes arrived; not run: {e}");
            }
        }
    });
    let node = ferry_net::Node::start(ferry_net::NodeConfig {
        home: shared.library.clone(),
        listen: opts.listen,
        relay: opts.relay.clone(),
        device_name: ferry_net::host_name(),
        changes: Some(tx),
    })
    .await
    .map_err(|e| DaemonError::Other(format!("starting the device node: {e}")))?;
    let addrs: Vec<String> = node.local_addrs().iter().map(|a| a.to_string()).collect();
    eprintln!(
        "ferry daemon: device {} listening on UDP {}",
        node.id(),
        addrs.join(", ")
    );
    let _ = shared.node.set(node);
    Ok(())
}

#[cfg(not(feature = "net"))]
pub async fn start(_shared: &Arc<Shared>, opts: Option<&NetOptions>) -> Result<()> {
    match opts {
        None => Ok(()),
        Some(_) => Err(DaemonError::Other(
            "this ferry was built without devices (the `net` feature); --listen is not available"
                .into(),
        )),
    }
}

/// Where a run of `conduit` reads another device's content, when the conduit is a
/// share's and that device is connected.
pub async fn pull_source(shared: &Shared, conduit: i64) -> Option<ferry_core::PullSource> {
    #[cfg(feature = "net")]
    if let Some(node) = shared.node.get() {
        let content = node.content_for(conduit).await?;
        return Some(ferry_core::PullSource(Arc::new(content)));
    }
    #[cfg(not(feature = "net"))]
    let _ = (shared, conduit);
    None
}

/// Closes the node's connections politely.
pub async fn stop(shared: &Shared) {
    #[cfg(feature = "net")]
    if let Some(node) = shared.node.get() {
        node.shutdown().await;
    }
    #[cfg(not(feature = "net"))]
    let _ = shared;
}

/// `{"node": {"device_id", "listen"}, "devices": [...]}`, or `None` without a node.
pub fn listing(shared: &Shared) -> Result<Option<Value>> {
    #[cfg(feature = "net")]
    if let Some(node) = shared.node.get() {
        let rows = node
            .statuses()
            .map_err(|e| DaemonError::Other(e.to_string()))?;
        let listen: Vec<String> = node.local_addrs().iter().map(|a| a.to_string()).collect();
        return Ok(Some(serde_json::json!({
            "node": {"device_id": node.id(), "listen": listen},
            "devices": rows,
        })));
    }
    #[cfg(not(feature = "net"))]
    let _ = shared;
    Ok(None)
}
