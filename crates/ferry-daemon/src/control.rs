//! Steering conduits from the API and the dashboard: pause, resume, sync now, add,
//! change settings, remove. Both front ends call these functions, so a pause from the
//! dashboard is the API's pause (a running job stops at its next safe point), and
//! adding or changing a conduit goes through ferry-core's `conduit_edit`, the code path
//! of `ferry conduit add` (same checks, same messages).
//!
//! Every change reaches the scheduler at once: a changed conduit's task gets its new
//! row (`Wake::Settings`), an added or removed one is started or stopped by a re-read
//! of the saved conduits (what `POST /api/reload` does).

use crate::events::DaemonEvent;
use crate::scheduler::{send, Wake};
use crate::shared::Shared;
use ferry_core::conduit::Schedule;
use ferry_core::conduit::{
    add_conduit, change_conduit, parse_bandwidth, parse_mode, parse_parallel, parse_policy, Added,
    ConduitSettings, SettingsChange,
};
use ferry_core::index::ConduitRow;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long removing a conduit waits for its running job to reach a safe point.
const REMOVE_WAIT: Duration = Duration::from_secs(30);

/// Why a request to steer a conduit was not carried out.
#[derive(Debug)]
pub enum ControlError {
    /// No conduit with this ID.
    NotFound(i64),
    /// Something else named is not there (a share offer); the message says what.
    Missing(String),
    /// A field is missing or malformed; nothing was changed.
    Invalid(String),
    /// The conduit is paused (asked to sync).
    Paused(i64),
    /// The engine refused or failed (overlapping folders, a missing folder, a mode
    /// change that would undo an archive, …); nothing was changed.
    Core(ferry_core::Error),
    /// The daemon could not do it (index lock, a task that did not finish).
    Daemon(String),
}

impl ControlError {
    /// The `kind` of the JSON error (ferry-core's kinds for engine errors, as the CLI's
    /// `--json` errors).
    pub fn kind(&self) -> &'static str {
        match self {
            ControlError::NotFound(_) | ControlError::Missing(_) => "not_found",
            ControlError::Invalid(_) => "usage",
            ControlError::Paused(_) => "conflict",
            ControlError::Core(e) => e.kind(),
            ControlError::Daemon(_) => "internal",
        }
    }

    /// The HTTP status that goes with it.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode as S;
        use ferry_core::Error as E;
        match self {
            ControlError::NotFound(_) | ControlError::Missing(_) => S::NOT_FOUND,
            ControlError::Invalid(_) => S::BAD_REQUEST,
            ControlError::Paused(_) => S::CONFLICT,
            ControlError::Core(E::Busy(_)) => S::CONFLICT,
            ControlError::Core(
                E::Location { .. }
                | E::Refused(_)
                | E::InvalidPath { .. }
                | E::Unsupported(_)
                | E::Io { .. }
                | E::Other(_),
            ) => S::BAD_REQUEST,
            ControlError::Core(_) | ControlError::Daemon(_) => S::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::NotFound(id) => write!(f, "no conduit {id}"),
            ControlError::Invalid(m) | ControlError::Missing(m) | ControlError::Daemon(m) => {
                f.write_str(m)
            }
            ControlError::Paused(id) => write!(
                f,
                "conduit {id} is paused; resume it first (ferry conduit resume {id})"
            ),
            ControlError::Core(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ControlError {}

impl From<crate::DaemonError> for ControlError {
    fn from(e: crate::DaemonError) -> ControlError {
        match e {
            crate::DaemonError::Core(e) => ControlError::Core(e),
            e => ControlError::Daemon(e.to_string()),
        }
    }
}

pub type ControlResult<T> = Result<T, ControlError>;

/// The fields of an add or a settings change, as a form or a JSON object sends them:
/// all text (a JSON number is taken as its text), an empty one means "not given".
/// An unknown field is refused (a misspelt setting is not silently ignored).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConduitFields {
    #[serde(default, deserialize_with = "text")]
    pub a: String,
    #[serde(default, deserialize_with = "text")]
    pub b: String,
    #[serde(default, deserialize_with = "text")]
    pub mode: String,
    #[serde(default, deserialize_with = "text")]
    pub conflict_policy: String,
    #[serde(default, deserialize_with = "text")]
    pub schedule: String,
    #[serde(default, deserialize_with = "text")]
    pub bandwidth_limit: String,
    #[serde(default, deserialize_with = "text")]
    pub parallel: String,
    /// The dashboard's CSRF token (the API does not use it).
    #[serde(default, deserialize_with = "text")]
    pub csrf: String,
}

/// A string, a number or null, as text.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or a number")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
    }
    d.deserialize_any(V)
}

/// A field that may be left empty, parsed with `parse`; a bad value names the field.
fn field<T>(
    label: &str,
    value: &str,
    parse: impl Fn(&str) -> ferry_core::Result<T>,
) -> ControlResult<Option<T>> {
    match value.trim() {
        "" => Ok(None),
        v => parse(v)
            .map(Some)
            .map_err(|e| ControlError::Invalid(format!("{label}: {e}"))),
    }
}

/// A folder field: required, and absolute (the daemon does not share the browser
/// user's working directory).
fn folder(label: &str, value: &str) -> ControlResult<PathBuf> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ControlError::Invalid(format!("{label} is required")));
    }
    let p = PathBuf::from(v);
    if !p.is_absolute() {
        return Err(ControlError::Invalid(format!(
            "{label} must be an absolute path (it is read by the daemon, not in your shell): {v}"
        )));
    }
    Ok(p)
}

impl ConduitFields {
    fn change(&self) -> ControlResult<SettingsChange> {
        Ok(SettingsChange {
            mode: field("mode", &self.mode, parse_mode)?,
            policy: field("conflict policy", &self.conflict_policy, parse_policy)?,
            schedule: field("schedule", &self.schedule, Schedule::parse)?,
            parallel: field("parallel copies", &self.parallel, parse_parallel)?,
            bandwidth_limit: field("bandwidth limit", &self.bandwidth_limit, parse_bandwidth)?,
        })
    }
}

/// Runs `f` with the daemon's index on a blocking thread.
async fn blocking<T: Send + 'static>(
    s: &Arc<Shared>,
    f: impl FnOnce(&mut ferry_core::index::Index) -> ferry_core::Result<T> + Send + 'static,
) -> ControlResult<T> {
    let shared = s.clone();
    match tokio::task::spawn_blocking(move || shared.with_index(f)).await {
        Ok(r) => Ok(r?),
        Err(e) => Err(ControlError::Daemon(format!(
            "the request's task failed: {e}"
        ))),
    }
}

/// Has the supervisor re-read the saved conduits; returns once it has.
pub async fn reload_now(s: &Shared) {
    let (done, wait) = tokio::sync::oneshot::channel();
    if s.reload.send(done).is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(10), wait).await;
    }
}

/// Pauses or resumes at once: the index row, the state the API shows, the conduit's
/// task, and (pausing) its running job, which stops at its next safe point.
pub async fn set_paused(s: &Arc<Shared>, id: i64, paused: bool) -> ControlResult<()> {
    if !blocking(s, move |i| i.set_conduit_paused(id, paused)).await? {
        return Err(ControlError::NotFound(id));
    }
    if paused {
        s.jobs.cancel(id); // a running job stops at its next safe point
    }
    if let Some(row) = blocking(s, move |i| i.conduit(id)).await? {
        send(s, id, Wake::Settings(row));
    }
    Ok(())
}

/// Queues a run of conduit `id` now; refused for a paused conduit.
pub async fn sync_now(s: &Arc<Shared>, id: i64) -> ControlResult<()> {
    match blocking(s, move |i| i.conduit(id)).await? {
        None => Err(ControlError::NotFound(id)),
        Some(c) if c.paused => Err(ControlError::Paused(id)),
        Some(_) if send(s, id, Wake::RunNow) => Ok(()),
        // Saved but not picked up by the scheduler yet: re-read, then ask.
        Some(_) => {
            reload_now(s).await;
            if send(s, id, Wake::RunNow) {
                Ok(())
            } else {
                Err(ControlError::NotFound(id))
            }
        }
    }
}

/// Adds the conduit between `fields.a` and `fields.b` (or updates the pair's settings
/// if it is one already), as `ferry conduit add` does; the scheduler starts it at once.
pub async fn add(s: &Arc<Shared>, fields: &ConduitFields) -> ControlResult<Added> {
    let a = folder("folder A", &fields.a)?;
    let b = folder("folder B", &fields.b)?;
    let change = fields.change()?;
    let settings = ConduitSettings {
        mode: change.mode,
        policy: change.policy,
        schedule: change.schedule,
        parallel: change.parallel,
        bandwidth_limit: change.bandwidth_limit,
        index_everything: None,
        retention: None,
        selective: None,
    };
    let defaults = s.conduit_defaults.clone();
    let added = blocking(s, move |i| add_conduit(i, &a, &b, &settings, &defaults)).await?;
    for note in &added.notes {
        tracing::info!(conduit = added.conduit.id, "note: {note}");
    }
    reload_now(s).await;
    if added.existed {
        send(s, added.conduit.id, Wake::Settings(added.conduit.clone()));
        s.emit(DaemonEvent::ConduitChanged {
            conduit: added.conduit.id,
        });
    }
    Ok(added)
}

/// Changes conduit `id`'s mode, policy, schedule, parallel copies or bandwidth limit
/// (the fields given); its task hears at once. A running job keeps the settings it
/// started with; the next run uses the new ones.
pub async fn change(s: &Arc<Shared>, id: i64, fields: &ConduitFields) -> ControlResult<ConduitRow> {
    if !fields.a.trim().is_empty() || !fields.b.trim().is_empty() {
        return Err(ControlError::Invalid(
            "a conduit's folders cannot be changed; add a new conduit instead".into(),
        ));
    }
    let change = fields.change()?;
    let row = blocking(s, move |i| change_conduit(i, id, &change))
        .await?
        .ok_or(ControlError::NotFound(id))?;
    send(s, id, Wake::Settings(row.clone()));
    s.emit(DaemonEvent::ConduitChanged { conduit: id });
    Ok(row)
}

/// Removes conduit `id`: paused first (so no new run starts), its running job stopped
/// at a safe point and awaited, then its row, run history and conflict records go.
/// Its folders, files and version stores stay.
pub async fn remove(s: &Arc<Shared>, id: i64) -> ControlResult<()> {
    set_paused(s, id, true).await?;
    let deadline = tokio::time::Instant::now() + REMOVE_WAIT;
    while s.jobs.get(id).is_some() {
        if tokio::time::Instant::now() >= deadline {
            return Err(ControlError::Daemon(format!(
                "conduit {id}'s running job did not stop in time; it is paused, try removing it again"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !blocking(s, move |i| i.remove_conduit(id)).await? {
        return Err(ControlError::NotFound(id));
    }
    reload_now(s).await;
    Ok(())
}
