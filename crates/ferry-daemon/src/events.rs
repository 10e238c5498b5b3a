//! Changes the daemon announces on its server-sent-events stream.

use serde::Serialize;

/// One announcement; serialised as `{"type": "...", ...}`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DaemonEvent {
    /// Files changed under a watched root; a run is queued.
    ChangeDetected {
        conduit: i64,
    },
    JobStarted {
        conduit: i64,
        trigger: String,
    },
    JobProgress {
        conduit: i64,
        progress: serde_json::Value,
    },
    JobFinished {
        conduit: i64,
        generation: Option<i64>,
        status: String,
        stats: ferry_core::index::GenerationStats,
    },
    JobFailed {
        conduit: i64,
        error: String,
    },
    ConduitPaused {
        conduit: i64,
    },
    ConduitResumed {
        conduit: i64,
    },
    ConduitAdded {
        conduit: i64,
    },
    ConduitRemoved {
        conduit: i64,
    },
    /// A conduit's settings changed (mode, policy, schedule, bandwidth limit…).
    ConduitChanged {
        conduit: i64,
    },
    /// Selective mode: cold files of the local side were made online-only (`by`:
    /// `run` after a run, `quota` by the daemon's check between runs to meet the quota
    /// or free-space floor, `free-up` by `ferry free-up`).
    FilesDehydrated {
        conduit: i64,
        files: u64,
        bytes: u64,
        paths: Vec<String>,
        by: String,
    },
    /// Selective mode: an online-only file is being brought back (`by`: `mount` for a
    /// file read to its end or opened for writing through `ferry mount`,
    /// `keep-offline`).
    HydrationStarted {
        conduit: i64,
        path: String,
        bytes: u64,
        by: String,
    },
    /// The hydration finished: the file is local, verified.
    HydrationFinished {
        conduit: i64,
        path: String,
        bytes: u64,
        by: String,
    },
    /// The hydration failed; the file stays online-only.
    HydrationFailed {
        conduit: i64,
        path: String,
        error: String,
        by: String,
    },
    /// A conduit could not be watched (OS watch limit); it is scanned periodically.
    WatchFallback {
        conduit: i64,
        reason: String,
    },
    /// A known device connected (`path`: direct or relayed).
    DeviceConnected {
        device: String,
        path: Option<String>,
    },
    /// A known device's connection ended.
    DeviceDisconnected {
        device: String,
    },
    /// A device that is not trusted tried to connect and was refused (its first
    /// attempt, and each further one).
    DevicePending {
        device: String,
    },
}

impl DaemonEvent {
    pub fn name(&self) -> &'static str {
        match self {
            DaemonEvent::ChangeDetected { .. } => "change_detected",
            DaemonEvent::JobStarted { .. } => "job_started",
            DaemonEvent::JobProgress { .. } => "job_progress",
            DaemonEvent::JobFinished { .. } => "job_finished",
            DaemonEvent::JobFailed { .. } => "job_failed",
            DaemonEvent::ConduitPaused { .. } => "conduit_paused",
            DaemonEvent::ConduitResumed { .. } => "conduit_resumed",
            DaemonEvent::ConduitAdded { .. } => "conduit_added",
            DaemonEvent::ConduitRemoved { .. } => "conduit_removed",
            DaemonEvent::ConduitChanged { .. } => "conduit_changed",
            DaemonEvent::WatchFallback { .. } => "watch_fallback",
            DaemonEvent::DeviceConnected { .. } => "device_connected",
            DaemonEvent::DeviceDisconnected { .. } => "device_disconnected",
            DaemonEvent::DevicePending { .. } => "device_pending",
            DaemonEvent::FilesDehydrated { .. } => "files_dehydrated",
            DaemonEvent::HydrationStarted { .. } => "hydration_started",
            DaemonEvent::HydrationFinished { .. } => "hydration_finished",
            DaemonEvent::HydrationFailed { .. } => "hydration_failed",
        }
    }
}

pub type EventSender = tokio::sync::broadcast::Sender<DaemonEvent>;
