//! The local HTTP API on 127.0.0.1, every request authenticated with the library's
//! token (`Authorization: Bearer TOKEN`). JSON endpoints:
//!
//! | method, path | what |
//! |---|---|
//! | GET /api/status | daemon, conduits with their state, running jobs, queue depth |
//! | GET /api/conduits, /api/conduits/{id} | settings, state, last run |
//! | POST /api/conduits/{id}/pause, /resume | pause (a running job stops at its next safe point), resume; at once |
//! | POST /api/conduits/{id}/sync | run now; 409 when the conduit is paused |
//! | POST /api/reload | re-read saved conduits and settings now (answered once done) |
//! | GET /api/jobs | running jobs with progress (files, bytes, rate, ETA, queue) |
//! | GET /api/conflicts[?all=true] | open (or all) conflicts |
//! | GET /api/history[?limit=N] | past runs, newest first |
//! | GET /api/history/{generation} | one run with its per-file `actions` |
//! | GET /api/locations | locations with free space |
//! | GET /api/devices | the device node's devices with live state (404 without `--listen`) |
//! | GET /api/events | server-sent events: changes, jobs, pauses (see `events.rs`) |
//!
//! Every answer is an object with `schema_version` (listings wrap their array:
//! `{"jobs": [...]}`). Errors are JSON too, `{"error": {"kind", "message"}}`: 401 without the token, 404 for an unknown
//! conduit or route, 405 for a known route with another method, 409 for a paused
//! conduit asked to sync.

use crate::events::DaemonEvent;
use crate::scheduler::{send, Wake};
use crate::service::{ConduitState, Shared};
use crate::views;
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
        .route("/api/conduits", get(conduits))
        .route("/api/conduits/{id}", get(conduit))
        .route("/api/conduits/{id}/pause", post(pause))
        .route("/api/conduits/{id}/resume", post(resume))
        .route("/api/conduits/{id}/sync", post(sync_now))
        .route("/api/jobs", get(jobs))
        .route("/api/conflicts", get(conflicts))
        .route("/api/history", get(history))
        .route("/api/history/{id}", get(generation))
        .route("/api/locations", get(locations))
        .route("/api/devices", get(devices))
        .route("/api/events", get(events))
        .route("/api/reload", post(reload))
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
                .into(),
        )
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
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}", uri.path()),
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error answer: status code and, as the CLI's `--json` errors,
/// `{"schema_version": V, "error": {"kind": ..., "message": "..."}}`.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = match self.0 {
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::CONFLICT => "conflict",
            StatusCode::BAD_REQUEST => "usage",
            _ => "internal",
        };
        let body = json!({
            "schema_version": ferry_core::JSON_SCHEMA_VERSION,
            "error": {"kind": kind, "message": self.1},
        });
        (self.0, Json(body)).into_response()
    }
}

/// A listing as one document: `{"schema_version": V, name: [...]}` (as the CLI's).
fn listing(name: &str, items: Value) -> Json<Value> {
    let mut doc = json!({"schema_version": ferry_core::JSON_SCHEMA_VERSION});
    doc[name] = items;
    Json(doc)
}

impl From<crate::DaemonError> for ApiError {
    fn from(e: crate::DaemonError) -> ApiError {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn states(s: &Shared) -> std::collections::HashMap<i64, ConduitState> {
    s.states.lock().map(|m| m.clone()).unwrap_or_default()
}

async fn status(State(s): State<Arc<Shared>>) -> ApiResult {
    let st = states(&s);
    let conduits = s.with_index(|i| views::conduits(i, Some(&st)))?;
    let queued = st
        .values()
        .filter(|c| c.state == "queued" || c.state == "waiting")
        .count();
    let port = s.port.lock().map(|p| *p).unwrap_or(0);
    Ok(Json(json!({
        "daemon": {
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "port": port,
            "started_at": s.started_at,
            "uptime_seconds": ferry_core::index::unix_now() - s.started_at,
        },
        "conduits": conduits,
        "jobs": s.jobs.snapshot(),
        "queue_depth": queued,
        "schema_version": ferry_core::JSON_SCHEMA_VERSION,
    })))
}

async fn devices(State(s): State<Arc<Shared>>) -> ApiResult {
    match crate::devices::listing(&s)? {
        Some(mut doc) => {
            doc["schema_version"] = json!(ferry_core::JSON_SCHEMA_VERSION);
            Ok(Json(doc))
        }
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            "this daemon runs no device node (start it with `ferry daemon --listen`)".into(),
        )),
    }
}

async fn conduits(State(s): State<Arc<Shared>>) -> ApiResult {
    let st = states(&s);
    Ok(listing(
        "conduits",
        Value::Array(s.with_index(|i| views::conduits(i, Some(&st)))?),
    ))
}

/// A conduit ID from the path; anything else is an unknown conduit (404, in JSON).
fn conduit_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError(StatusCode::NOT_FOUND, format!("no conduit {raw:?}")))
}

async fn conduit(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = conduit_id(&id)?;
    let st = states(&s);
    s.with_index(|i| views::conduits(i, Some(&st)))?
        .into_iter()
        .find(|c| c["conduit"] == id)
        .map(|mut c| {
            c["schema_version"] = json!(ferry_core::JSON_SCHEMA_VERSION);
            Json(c)
        })
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no conduit {id}")))
}

/// Pauses or resumes at once: the index row, the state the API shows, the conduit's
/// task, and (pausing) its running job, which stops at its next safe point.
async fn set_paused(s: &Shared, id: i64, paused: bool) -> ApiResult {
    if !s.with_index(|i| i.set_conduit_paused(id, paused))? {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no conduit {id}")));
    }
    if paused {
        s.jobs.cancel(id); // a running job stops at its next safe point
    }
    if let Some(row) = s.with_index(|i| i.conduit(id))? {
        send(s, id, Wake::Settings(row));
    }
    Ok(Json(
        json!({"schema_version": ferry_core::JSON_SCHEMA_VERSION, "conduit": id, "paused": paused}),
    ))
}

async fn pause(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    set_paused(&s, conduit_id(&id)?, true).await
}

async fn resume(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    set_paused(&s, conduit_id(&id)?, false).await
}

async fn sync_now(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = conduit_id(&id)?;
    match s.with_index(|i| i.conduit(id))? {
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no conduit {id}"))),
        Some(c) if c.paused => Err(ApiError(
            StatusCode::CONFLICT,
            format!("conduit {id} is paused; resume it first (ferry conduit resume {id})"),
        )),
        Some(_) if send(&s, id, Wake::RunNow) => Ok(Json(
            json!({"schema_version": ferry_core::JSON_SCHEMA_VERSION, "conduit": id, "queued": true}),
        )),
        // Saved but not picked up by the scheduler yet: re-read, then ask.
        Some(_) => {
            reload_now(&s).await;
            if send(&s, id, Wake::RunNow) {
                Ok(Json(
                    json!({"schema_version": ferry_core::JSON_SCHEMA_VERSION, "conduit": id, "queued": true}),
                ))
            } else {
                Err(ApiError(StatusCode::NOT_FOUND, format!("no conduit {id}")))
            }
        }
    }
}

/// Has the supervisor re-read the saved conduits; returns once it has.
async fn reload_now(s: &Shared) {
    let (done, wait) = tokio::sync::oneshot::channel();
    if s.reload.send(done).is_ok() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), wait).await;
    }
}

async fn reload(State(s): State<Arc<Shared>>) -> ApiResult {
    reload_now(&s).await;
    Ok(Json(
        json!({"schema_version": ferry_core::JSON_SCHEMA_VERSION, "reloaded": true}),
    ))
}

async fn jobs(State(s): State<Arc<Shared>>) -> ApiResult {
    Ok(listing("jobs", Value::Array(s.jobs.snapshot())))
}

#[derive(serde::Deserialize)]
struct ConflictQuery {
    #[serde(default)]
    all: bool,
}

async fn conflicts(State(s): State<Arc<Shared>>, Query(q): Query<ConflictQuery>) -> ApiResult {
    let rows = s.with_index(|i| i.conflicts(!q.all))?;
    Ok(listing("conflicts", json!(rows)))
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
}

async fn history(State(s): State<Arc<Shared>>, Query(q): Query<HistoryQuery>) -> ApiResult {
    let rows = s.with_index(|i| i.generations(q.limit.unwrap_or(50)))?;
    Ok(listing("history", json!(rows)))
}

async fn generation(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError(StatusCode::NOT_FOUND, format!("no run {id:?}")))?;
    let found = s.with_index(|i| {
        Ok(match i.generation(id)? {
            Some(g) => Some((g, i.generation_actions(id)?)),
            None => None,
        })
    })?;
    let (g, actions) =
        found.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no run #{id}")))?;
    let mut v = serde_json::to_value(&g)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    v["actions"] = json!(actions);
    v["schema_version"] = json!(ferry_core::JSON_SCHEMA_VERSION);
    Ok(Json(v))
}

async fn locations(State(s): State<Arc<Shared>>) -> ApiResult {
    Ok(listing(
        "locations",
        Value::Array(s.with_index(|i| views::locations(i))?),
    ))
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
