//! The local HTTP API on 127.0.0.1, every request authenticated with the library's
//! token (`Authorization: Bearer TOKEN`). JSON endpoints:
//!
//! | method, path | what |
//! |---|---|
//! | GET /api/status | daemon, conduits with their state, running jobs, queue depth |
//! | GET /api/conduits, /api/conduits/{id} | settings, state, last run, its `problems` by kind |
//! | POST /api/conduits | add a conduit: `{"a", "b", "mode", "conflict_policy", "schedule", "bandwidth_limit", "parallel"}` (folders absolute; the rest optional); 201, or 200 with `"added": false` for a pair that is one already |
//! | PATCH /api/conduits/{id}, POST /api/conduits/{id}/settings | change `mode`, `conflict_policy`, `schedule`, `bandwidth_limit`, `parallel` (those given); the conduit as it is now |
//! | DELETE /api/conduits/{id} | remove a conduit (its folders, files and versions stay) |
//! | POST /api/conduits/{id}/pause, /resume | pause (a running job stops at its next safe point), resume; at once |
//! | POST /api/conduits/{id}/sync | run now; 409 when the conduit is paused |
//! | POST /api/reload | re-read saved conduits and settings now (answered once done) |
//! | GET /api/jobs | running jobs with progress (files, bytes, rate, ETA, queue) |
//! | GET /api/conflicts[?all=true] | open (or all) conflicts |
//! | GET /api/history[?limit=N] | past runs, newest first |
//! | GET /api/history/{generation} | one run with its per-file `actions` and `problems` (side, path, kind, detail, label, retried; runs of this daemon) |
//! | GET /api/locations | locations with free space |
//! | GET /api/devices | the device node's devices with live state (404 without `--listen`) |
//! | POST /api/devices | trust a device: `{"id", "name", "addresses": ["HOST:PORT"]}` (name and addresses optional); accepts a pending one; 201 (`net` feature) |
//! | DELETE /api/devices/{id} | stop trusting a device, or forget a pending one (ID or name) |
//! | GET /api/shares | this device's shares with their members (name, connected, joined) and the offers waiting |
//! | POST /api/shares/{id}/decline | decline an offered share (as `ferry share decline`); 200 `{"declined": id}` |
//! | POST /api/shares/{id}/accept | accept an offered share into `{"folder": "/abs/path"}` (as `ferry accept`); 201 with the share |
//! | GET /api/events | server-sent events: changes, jobs, pauses, device connections, hydrations and dehydrations (see `events.rs`) |
//! | POST /api/ondemand/events | another ferry process of this library (`ferry mount`, `keep-offline`, `free-up`) reports a hydration or dehydration: `{"conduit", "by", "type": "hydration_started"\|"hydration_finished"\|"hydration_failed"\|"files_dehydrated", "path", "bytes", "error", "paths"}`; put on the event stream |
//!
//! Every answer is an object with `schema_version` (listings wrap their array:
//! `{"jobs": [...]}`). Errors are JSON too, `{"error": {"kind", "message"}}`: 401 without the token, 404 for an unknown
//! conduit or route, 405 for a known route with another method, 409 for a paused
//! conduit asked to sync, 400 for an add or change refused (kind `usage` for a bad
//! field, else ferry-core's kind as the CLI's `--json` errors: `refused` for
//! overlapping folders or a mode change that would undo an archive, `location` for a
//! missing folder, …). Adds, changes and removals reach the scheduler at once.

use crate::control::{self, ConduitFields, ControlError};
use crate::events::DaemonEvent;
use crate::shared::{ConduitState, Shared};
use crate::views;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::Method;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

pub fn router(shared: Arc<Shared>, token: String) -> Router {
    let dashboard = crate::dashboard::router(shared.clone(), token.clone());
    Router::new()
        .route("/api/status", get(status))
        .route("/api/hubs", get(hubs))
        .route("/api/conduits", get(conduits).post(add_conduit))
        .route(
            "/api/conduits/{id}",
            get(conduit).patch(change_conduit).delete(remove_conduit),
        )
        .route("/api/conduits/{id}/settings", post(change_conduit))
        .route("/api/conduits/{id}/pause", post(pause))
        .route("/api/conduits/{id}/resume", post(resume))
        .route("/api/conduits/{id}/sync", post(sync_now))
        .route("/api/jobs", get(jobs))
        .route("/api/conflicts", get(conflicts))
        .route("/api/history", get(history))
        .route("/api/history/{id}", get(generation))
        .route("/api/locations", get(locations))
        .route("/api/devices", get(devices).post(trust_device))
        .route("/api/devices/{id}", axum::routing::delete(untrust_device))
        .route("/api/shares", get(shares))
        .route("/api/shares/{id}/accept", post(accept_share))
        .route("/api/shares/{id}/decline", post(decline_share))
        .route("/api/events", get(events))
        .route("/api/reload", post(reload))
        .route("/api/ondemand/events", post(ondemand_event))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::new(token), auth))
        .with_state(shared)
        .merge(dashboard)
}

async fn auth(State(token): State<Arc<String>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        next.run(req).await
    } else {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send `Authorization: Bearer <token from $FERRY_HOME/api-token>`"
                .into(), None)
        .into_response()
    }
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!(
            "no such endpoint: {method} {}; see the list of endpoints in ferry's README",
            uri.path()
        ),
        None,
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}", uri.path()),
        None,
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error answer: status code and, as the CLI's `--json` errors,
/// `{"schema_version": V, "error": {"kind": ..., "message": "..."}}`.
pub struct ApiError(StatusCode, String, Option<&'static str>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = self.2.unwrap_or(match self.0 {
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::CONFLICT => "conflict",
            StatusCode::BAD_REQUEST => "usage",
            _ => "internal",
        });
        let body = json!({
            "schema_version": ferry_core::JSON_SCHEMA_VERSION,
            "error": {"kind": kind, "message": self.1},
        });
        (self.0, Json(body)).into_response()
    }
}

/// A listing as one document: `{"schema_version": V, name: [...]}` (as the CLI's).
fn listing<T: serde::Serialize>(name: &str, items: &[T]) -> ApiResult {
    let mut doc = json!({"schema_version": ferry_core::JSON_SCHEMA_VERSION});
    doc[name] = serde_json::to_value(items).map_err(internal)?;
    Ok(Json(doc))
}

/// A value that would not serialize (a root that is not UTF-8): an internal error.
fn internal(e: serde_json::Error) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None)
}

impl From<crate::DaemonError> for ApiError {
    fn from(e: crate::DaemonError) -> ApiError {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None)
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn states(s: &Shared) -> std::collections::HashMap<i64, ConduitState> {
    s.states.lock().map(|m| m.clone()).unwrap_or_default()
}

/// `/api/status`: the daemon, every conduit, the running jobs.
#[derive(serde::Serialize)]
struct StatusDoc {
    daemon: DaemonInfo,
    conduits: Vec<views::ConduitView>,
    /// The hubs this device uses (see `devices::hubs`).
    hubs: Vec<Value>,
    jobs: Vec<crate::jobs::JobView>,
    queue_depth: usize,
}

/// This daemon, as `/api/status` shows it.
#[derive(serde::Serialize)]
struct DaemonInfo {
    pid: u32,
    version: &'static str,
    port: u16,
    started_at: i64,
    uptime_seconds: i64,
}

async fn status(State(s): State<Arc<Shared>>) -> ApiResult {
    let st = states(&s);
    let conduits = s.with_index(|i| views::conduits(i, Some(&st)))?;
    let queue_depth = st
        .values()
        .filter(|c| c.state == "queued" || c.state == "waiting")
        .count();
    let port = s.port.lock().map(|p| *p).unwrap_or(0);
    document(&StatusDoc {
        daemon: DaemonInfo {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION"),
            port,
            started_at: s.started_at,
            uptime_seconds: ferry_core::index::unix_now() - s.started_at,
        },
        conduits,
        hubs: hubs_of(&s),
        jobs: s.jobs.snapshot(),
        queue_depth,
    })
}

fn hubs_of(s: &Shared) -> Vec<Value> {
    #[cfg(feature = "net")]
    {
        crate::devices::hubs(s)
    }
    #[cfg(not(feature = "net"))]
    {
        let _ = s;
        Vec::new()
    }
}

/// `GET /api/hubs`: the hubs this device knows, as in `/api/status`.
async fn hubs(State(s): State<Arc<Shared>>) -> ApiResult {
    Ok(Json(json!({
        "hubs": hubs_of(&s),
        "schema_version": ferry_core::JSON_SCHEMA_VERSION,
    })))
}

async fn devices(State(s): State<Arc<Shared>>) -> ApiResult {
    #[cfg(feature = "net")]
    if let Some(view) = crate::devices::listing(&s)? {
        return document(&view);
    }
    #[cfg(not(feature = "net"))]
    let _ = s;
    Err(ApiError(
        StatusCode::NOT_FOUND,
        "this daemon runs no device node (start it with `ferry daemon --listen`)".into(),
        None,
    ))
}

/// A typed answer as a JSON object with `schema_version`. It goes through a
/// `serde_json::Value`, so its keys come out sorted, as every answer's always did.
fn document<T: serde::Serialize>(v: &T) -> ApiResult {
    let mut doc = serde_json::to_value(v).map_err(internal)?;
    doc["schema_version"] = json!(ferry_core::JSON_SCHEMA_VERSION);
    Ok(Json(doc))
}

/// `POST /api/devices`: what trusting a device takes.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(feature = "net"), allow(dead_code))]
struct TrustRequest {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    addresses: Vec<String>,
}

impl From<crate::devices::DeviceError> for ApiError {
    fn from(e: crate::devices::DeviceError) -> ApiError {
        use crate::devices::DeviceError as D;
        let code = match e {
            D::Invalid(_) => StatusCode::BAD_REQUEST,
            D::NotFound(_) => StatusCode::NOT_FOUND,
            D::Other(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string(), None)
    }
}

#[cfg(not(feature = "net"))]
fn no_devices() -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "this ferry was built without devices (the `net` feature)".into(),
        None,
    )
}

/// Trusts a device (adds it, or accepts a pending one): 201 with the device.
async fn trust_device(State(s): State<Arc<Shared>>, body: Bytes) -> Result<Response, ApiError> {
    let req: TrustRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("the request body must be {{\"id\", \"name\", \"addresses\"}}: {e}"),
            Some("usage"),
        )
    })?;
    #[cfg(feature = "net")]
    {
        let library = s.library.clone();
        let trusted = tokio::task::spawn_blocking(move || {
            crate::devices::trust(&library, &req.id, req.name.as_deref(), &req.addresses)
        })
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))??;
        Ok((StatusCode::CREATED, document(&trusted)?).into_response())
    }
    #[cfg(not(feature = "net"))]
    {
        let _ = (s, req);
        Err(no_devices())
    }
}

/// Stops trusting a device (known or pending, by ID or name).
async fn untrust_device(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    #[cfg(feature = "net")]
    {
        let library = s.library.clone();
        let removed = tokio::task::spawn_blocking(move || crate::devices::untrust(&library, &id))
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))??;
        #[derive(serde::Serialize)]
        struct Answer {
            removed: crate::devices::Untrusted,
        }
        document(&Answer { removed })
    }
    #[cfg(not(feature = "net"))]
    {
        let _ = (s, id);
        Err(no_devices())
    }
}

async fn shares(State(s): State<Arc<Shared>>) -> ApiResult {
    let view = tokio::task::spawn_blocking(move || crate::devices::shares(&s))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))??;
    document(&view)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptRequest {
    folder: String,
}

/// Accepts an offered share into a folder: 201 with the share as `GET /api/shares`
/// lists it.
async fn accept_share(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: AcceptRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("the request body must be {{\"folder\": \"/absolute/path\"}}: {e}"),
            Some("usage"),
        )
    })?;
    let share = crate::devices::accept_share(&s, &id, &req.folder).await?;
    #[derive(serde::Serialize)]
    struct Answer {
        share: crate::devices::ShareView,
    }
    Ok((StatusCode::CREATED, document(&Answer { share })?).into_response())
}

/// Declines an offered share: 200, or 404 when no open offer has that ID.
async fn decline_share(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    crate::devices::decline_share(&s, &id).await?;
    Ok(Json(json!({ "declined": id })))
}

async fn conduits(State(s): State<Arc<Shared>>) -> ApiResult {
    let st = states(&s);
    listing(
        "conduits",
        &s.with_index(|i| views::conduits(i, Some(&st)))?,
    )
}

/// A conduit ID from the path; anything else is an unknown conduit (404, in JSON).
fn conduit_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError(StatusCode::NOT_FOUND, format!("no conduit {raw:?}"), None))
}

async fn conduit(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = conduit_id(&id)?;
    Ok(Json(conduit_view(&s, id)?))
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        ApiError(e.status(), e.to_string(), Some(e.kind()))
    }
}

fn paused_answer(id: i64, paused: bool) -> Json<Value> {
    Json(
        json!({"schema_version": ferry_core::JSON_SCHEMA_VERSION, "conduit": id, "paused": paused}),
    )
}

async fn pause(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = conduit_id(&id)?;
    control::set_paused(&s, id, true).await?;
    Ok(paused_answer(id, true))
}

async fn resume(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = conduit_id(&id)?;
    control::set_paused(&s, id, false).await?;
    Ok(paused_answer(id, false))
}

async fn sync_now(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = conduit_id(&id)?;
    control::sync_now(&s, id).await?;
    Ok(Json(
        json!({"schema_version": ferry_core::JSON_SCHEMA_VERSION, "conduit": id, "queued": true}),
    ))
}

async fn reload(State(s): State<Arc<Shared>>) -> ApiResult {
    control::reload_now(&s).await;
    Ok(Json(
        json!({"schema_version": ferry_core::JSON_SCHEMA_VERSION, "reloaded": true}),
    ))
}

/// What another ferry process reports about files on demand.
#[derive(serde::Deserialize)]
struct Reported {
    conduit: i64,
    by: String,
    #[serde(flatten)]
    what: ReportedKind,
}

#[derive(serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ReportedKind {
    HydrationStarted { path: String, bytes: u64 },
    HydrationFinished { path: String, bytes: u64 },
    HydrationFailed { path: String, error: String },
    FilesDehydrated { bytes: u64, paths: Vec<String> },
}

/// `POST /api/ondemand/events`: a hydration or dehydration done by another ferry
/// process of this library (the mount, `ferry keep-offline`, `ferry free-up`), put on
/// the event stream. 400 for a body that is not one; 404 for an unknown conduit.
async fn ondemand_event(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let r: Reported = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("not a files-on-demand event: {e}"),
            Some("usage"),
        )
    })?;
    let known = s.with_index(|i| Ok(i.conduit(r.conduit)?.is_some()))?;
    if !known {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no conduit {}", r.conduit),
            Some("not_found"),
        ));
    }
    let (conduit, by) = (r.conduit, r.by);
    s.emit(match r.what {
        ReportedKind::HydrationStarted { path, bytes } => DaemonEvent::HydrationStarted {
            conduit,
            path,
            bytes,
            by,
        },
        ReportedKind::HydrationFinished { path, bytes } => DaemonEvent::HydrationFinished {
            conduit,
            path,
            bytes,
            by,
        },
        ReportedKind::HydrationFailed { path, error } => DaemonEvent::HydrationFailed {
            conduit,
            path,
            error,
            by,
        },
        ReportedKind::FilesDehydrated { bytes, paths } => DaemonEvent::FilesDehydrated {
            conduit,
            files: paths.len() as u64,
            bytes,
            paths,
            by,
        },
    });
    Ok(Json(
        json!({"schema_version": ferry_core::JSON_SCHEMA_VERSION, "emitted": true}),
    ))
}

/// A JSON request body as the fields of an add or a change (400 when it is not a JSON
/// object of strings and numbers).
fn fields_of(body: &[u8]) -> Result<ConduitFields, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("the request body must be a JSON object of settings: {e}"),
            Some("usage"),
        )
    })
}

/// One conduit's view (as `GET /api/conduits/{id}`), with `schema_version`.
fn conduit_view(s: &Shared, id: i64) -> Result<Value, ApiError> {
    let st = states(s);
    let found = s
        .with_index(|i| views::conduits(i, Some(&st)))?
        .into_iter()
        .find(|c| c.conduit == id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no conduit {id}"), None))?;
    Ok(document(&found)?.0)
}

/// `POST /api/conduits`: adds a conduit (201), or updates the settings of a pair that
/// is one already (200); `added` says which. `notes` are what `ferry conduit add` prints.
async fn add_conduit(State(s): State<Arc<Shared>>, body: Bytes) -> Result<Response, ApiError> {
    let fields = fields_of(&body)?;
    let added = control::add(&s, &fields).await?;
    let mut v = conduit_view(&s, added.conduit.id)?;
    v["added"] = json!(!added.existed);
    v["notes"] = json!(added.notes);
    let code = if added.existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((code, Json(v)).into_response())
}

/// `PATCH /api/conduits/{id}` or `POST /api/conduits/{id}/settings`: changes the
/// settings given; answers the conduit as it is now.
async fn change_conduit(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let id = conduit_id(&id)?;
    let fields = fields_of(&body)?;
    control::change(&s, id, &fields).await?;
    Ok(Json(conduit_view(&s, id)?))
}

/// `DELETE /api/conduits/{id}`: removes the conduit; its folders and files stay.
async fn remove_conduit(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = conduit_id(&id)?;
    control::remove(&s, id).await?;
    Ok(Json(
        json!({"schema_version": ferry_core::JSON_SCHEMA_VERSION, "conduit": id, "removed": true}),
    ))
}

async fn jobs(State(s): State<Arc<Shared>>) -> ApiResult {
    listing("jobs", &s.jobs.snapshot())
}

#[derive(serde::Deserialize)]
struct ConflictQuery {
    #[serde(default)]
    all: bool,
}

async fn conflicts(State(s): State<Arc<Shared>>, Query(q): Query<ConflictQuery>) -> ApiResult {
    let rows = s.with_index(|i| i.conflicts(!q.all))?;
    listing("conflicts", &rows)
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
}

async fn history(State(s): State<Arc<Shared>>, Query(q): Query<HistoryQuery>) -> ApiResult {
    let rows = s.with_index(|i| i.generations(q.limit.unwrap_or(50)))?;
    listing("history", &rows)
}

/// `/api/history/{id}`: one run, with what it did and what went wrong.
#[derive(serde::Serialize)]
struct RunDoc {
    #[serde(flatten)]
    generation: ferry_core::index::GenerationRow,
    actions: Vec<ferry_core::plan::Item>,
    problems: Vec<crate::problems::ProblemView>,
}

async fn generation(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError(StatusCode::NOT_FOUND, format!("no run {id:?}"), None))?;
    let found = s.with_index(|i| {
        Ok(match i.generation(id)? {
            Some(g) => Some((g, i.generation_actions(id)?, i.generation_problems(id)?)),
            None => None,
        })
    })?;
    let (g, actions, problems) =
        found.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no run #{id}"), None))?;
    document(&RunDoc {
        generation: g,
        actions,
        // What went wrong, by kind (the index keeps the first PROBLEMS_KEPT of each run).
        problems: crate::problems::of_run(&problems),
    })
}

async fn locations(State(s): State<Arc<Shared>>) -> ApiResult {
    listing("locations", &s.with_index(|i| views::locations(i))?)
}

async fn events(
    State(s): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(s.events.subscribe()).filter_map(|r| {
        let e: DaemonEvent = r.ok()?;
        Event::default().event(e.name()).json_data(&e).ok().map(Ok)
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
