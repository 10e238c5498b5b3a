//! State shared by the scheduler tasks and the API handlers: the daemon's index
//! connection, each conduit's state, the job board, the event stream.

use crate::config::Tunables;
use crate::error::{DaemonError, Result};
use crate::events::{DaemonEvent, EventSender};
use crate::jobs::JobBoard;
use crate::scheduler::{ReloadRequest, Wake};
use ferry_core::conduit::ConduitDefaults;
use ferry_core::index::Index;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use tokio::sync::mpsc::UnboundedSender;

/// What the scheduler shows about a conduit.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConduitState {
    /// `idle`, `queued`, `running`, `paused`, `waiting` (location busy) or `manual`.
    pub state: String,
    /// `watching`, `periodic (watch limit)`, `timer`, or `off`.
    pub watch: String,
    pub last_error: Option<String>,
    /// The last run's problems (or why it failed), by kind.
    pub problems: Vec<crate::problems::ProblemView>,
    pub last_finished_at: Option<i64>,
}

/// State shared by the scheduler tasks and the API handlers.
pub struct Shared {
    pub library: PathBuf,
    pub tunables: Tunables,
    pub jobs: JobBoard,
    pub events: EventSender,
    /// The daemon's own index connection (API reads, settings reloads).
    pub index: Mutex<Index>,
    pub states: Mutex<HashMap<i64, ConduitState>>,
    pub wakers: Mutex<HashMap<i64, UnboundedSender<Wake>>>,
    pub started_at: i64,
    pub port: Mutex<u16>,
    /// Asks the supervisor to re-read the saved conduits now.
    pub reload: UnboundedSender<ReloadRequest>,
    /// The device node, when started with `--listen`.
    #[cfg(feature = "net")]
    pub node: std::sync::OnceLock<ferry_net::Node>,
    /// The hub client, started with the node (`hub` feature).
    #[cfg(feature = "hub")]
    pub hub: std::sync::OnceLock<ferry_hub::client::HubClient>,
    pub conduit_defaults: ConduitDefaults,
}

impl Shared {
    pub fn emit(&self, e: DaemonEvent) {
        let _ = self.events.send(e);
    }

    pub fn set_state(&self, id: i64, f: impl FnOnce(&mut ConduitState)) {
        if let Ok(mut m) = self.states.lock() {
            f(m.entry(id).or_default());
        }
    }

    pub fn with_index<T>(&self, f: impl FnOnce(&mut Index) -> ferry_core::Result<T>) -> Result<T> {
        let mut idx = self
            .index
            .lock()
            .map_err(|_| DaemonError::Other("index lock poisoned".into()))?;
        Ok(f(&mut idx)?)
    }
}
