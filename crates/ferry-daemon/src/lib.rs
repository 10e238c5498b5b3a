//! ferry-daemon: the continuous-sync service behind `ferry daemon`.
//!
//! - `watcher`: notify (debounced) on both roots of an `instant` conduit, falling back
//!   to periodic scans when the OS watch limit is hit.
//! - `touched`: the paths a batch of events touched, for a targeted rescan.
//! - `scheduler`: one task per conduit deciding when it runs (change, timer, backstop,
//!   start-up, API request), retrying when another process holds a location.
//! - `jobs`: runs of a conduit on a blocking thread, with live progress; a run can be
//!   stopped at a safe point (pause, shutdown).
//! - `known`: events on paths whose disk state the index already holds (the daemon's own
//!   writes) queue no run.
//! - `problems`: a run's errors as typed problems (changed during sync, permission
//!   denied, disk full, …) for the API and the dashboard.
//! - `memory`: malloc arena cap and trimming that keep the idle daemon's RSS flat.
//! - `control`: pause, resume, sync now, add, change and remove conduits (the API's
//!   and the dashboard's one implementation).
//! - `api`: the local HTTP API (axum) on 127.0.0.1 with a bearer token, and its SSE stream.
//! - `dashboard`: the web dashboard (HTML pages, login links, sessions) beside the API.
//! - `devices`: the device node (ferry-net, with the `net` feature) started by
//!   `--listen`, and its listing for the API.
//! - `discovery`: the token file and `daemon.json` that let `ferry status` find the daemon.

pub mod api;
pub mod config;
pub mod control;
pub mod dashboard;
pub mod devices;
pub mod discovery;
pub mod error;
pub mod events;
pub mod jobs;
pub mod known;
pub mod memory;
#[cfg(feature = "net")]
pub mod oneshot;
pub mod problems;
pub mod scheduler;
pub mod service;
pub mod shared;
pub mod touched;
pub mod views;
pub mod watcher;

pub use error::{DaemonError, Result};
pub use service::{run, DaemonOptions, NetOptions};
