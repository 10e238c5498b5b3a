//! The daemon process: one per library. Binds the API, writes `daemon.json`, starts the
//! scheduler, and stops cleanly on SIGINT/SIGTERM: running jobs are asked to stop at
//! their next safe point (their generations are recorded `interrupted` and resumed at
//! the next start) and awaited for a while. A `kill -9` is safe too: every run resumes
//! from its last durable batch.

use crate::config::Tunables;
use crate::discovery::{self, DaemonInfo};
use crate::error::{io_err, DaemonError, Result};
use crate::jobs::JobBoard;
use crate::scheduler::{supervise, ReloadRequest};
use crate::shared::Shared;
use ferry_core::conduit::ConduitDefaults;
use ferry_core::index::Index;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::unbounded_channel;

/// How long a stopping daemon waits for its running jobs to reach a safe point.
const STOP_WAIT: Duration = Duration::from_secs(20);

/// How `ferry daemon` was started.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub library: PathBuf,
    /// API port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Start the device node (`--listen`); needs the `net` feature.
    pub net: Option<NetOptions>,
    /// What conduits added through the API or the dashboard get when the request does
    /// not say (the config file's defaults, as `ferry conduit add` uses).
    pub conduit_defaults: ConduitDefaults,
}

/// How the device node listens (see ferry-net).
#[derive(Debug, Clone)]
pub struct NetOptions {
    /// UDP address; port 0 picks a free one (shown by `GET /api/devices`).
    pub listen: std::net::SocketAddr,
    /// A self-hosted relay's URL.
    pub relay: Option<String>,
    /// Find known devices on the local network by mDNS (and be found).
    pub local_discovery: bool,
}

/// Runs the daemon in the foreground until SIGINT or SIGTERM.
pub fn run(opts: DaemonOptions) -> Result<()> {
    crate::memory::limit_arenas();
    std::fs::create_dir_all(&opts.library).map_err(io_err("create", &opts.library))?;
    let _lock = discovery::lock_library(&opts.library)?;
    let token = discovery::load_or_create_token(&opts.library)?;
    let index = Index::open(&opts.library.join("index.db"))?;
    let (events, _) = tokio::sync::broadcast::channel(256);
    let (reload, reload_rx) = unbounded_channel();
    let shared = Arc::new(Shared {
        library: opts.library.clone(),
        tunables: Tunables::from_env(),
        jobs: JobBoard::default(),
        events,
        index: Mutex::new(index),
        states: Mutex::new(HashMap::new()),
        wakers: Mutex::new(HashMap::new()),
        started_at: ferry_core::index::unix_now(),
        port: Mutex::new(0),
        reload,
        #[cfg(feature = "net")]
        node: std::sync::OnceLock::new(),
        #[cfg(feature = "hub")]
        hub: std::sync::OnceLock::new(),
        conduit_defaults: opts.conduit_defaults.clone(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| DaemonError::Other(format!("start runtime: {e}")))?;
    let result = rt.block_on(async {
        crate::devices::start(&shared, opts.net.as_ref()).await?;
        serve(shared.clone(), token, opts.port, reload_rx).await
    });
    discovery::remove_info(&opts.library);
    rt.shutdown_timeout(Duration::from_secs(5));
    result
}

async fn serve(
    shared: Arc<Shared>,
    token: String,
    port: u16,
    reload: tokio::sync::mpsc::UnboundedReceiver<ReloadRequest>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| DaemonError::Other(format!("bind 127.0.0.1:{port}: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| DaemonError::Other(e.to_string()))?
        .port();
    if let Ok(mut p) = shared.port.lock() {
        *p = port;
    }
    discovery::write_info(
        &shared.library,
        &DaemonInfo {
            pid: std::process::id(),
            port,
            started_at: shared.started_at,
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
    )?;
    tracing::info!("API on 127.0.0.1:{port}");
    eprintln!("ferry daemon: API on 127.0.0.1:{port}; stop with Ctrl-C");
    let app = crate::api::router(shared.clone(), token);
    let scheduler = tokio::spawn(supervise(shared.clone(), reload));
    let server = axum::serve(listener, app);
    let result = tokio::select! {
        r = server => r.map_err(|e| DaemonError::Other(format!("API server: {e}"))),
        _ = shutdown_signal() => Ok(()),
    };
    scheduler.abort();
    crate::devices::stop(&shared).await;
    stop_jobs(&shared).await;
    eprintln!("ferry daemon: stopped");
    result
}

/// Asks running jobs to stop at their next safe point and waits for them (a while).
async fn stop_jobs(shared: &Shared) {
    shared.jobs.stop_all();
    if shared.jobs.is_empty() {
        return;
    }
    eprintln!("ferry daemon: stopping running jobs at a safe point");
    let deadline = tokio::time::Instant::now() + STOP_WAIT;
    while !shared.jobs.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
