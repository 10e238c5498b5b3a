//! The web dashboard: HTML pages rendered on the server, served by the daemon next to
//! the JSON API, with htmx (vendored, embedded) for live updates and form posts without
//! reloads. Every page reads without JavaScript.
//!
//! | method, path | what |
//! |---|---|
//! | GET /login?code=… | one-time login link from `ferry dashboard`; sets the session cookie |
//! | GET / | overview: every conduit, live over `/events` |
//! | GET /fragment/overview | the overview's table alone (what the page re-fetches) |
//! | GET /transfers, /fragment/transfers | running jobs with progress and a rate chart (live) |
//! | GET /conflicts, POST /conflicts/{id}/resolve | open and settled conflicts; keep a, b or both |
//! | POST /conflicts/resolve | the same for every selected conflict (`id=…&id=…`) |
//! | GET /versions[?location=ID], POST /versions/{id}/restore | a folder's kept versions; restore (`to`: elsewhere) |
//! | GET /history, /history/{id} | runs, and one run's per-file actions |
//! | GET /settings, POST /conduits/{id}/pause, /resume, /sync | conduit settings and actions (the API's code: `control.rs`) |
//! | POST /conduits | add a conduit (as `ferry conduit add`; a refusal re-shows the form, 422) |
//! | POST /conduits/{id}/settings | change mode, policy, schedule, bandwidth limit |
//! | GET, POST /conduits/{id}/remove | confirm, then remove a conduit (files stay) |
//! | GET /devices, /fragment/devices | devices (live), shares with their members, offers (live: on events, polled every 5 s for round trips) |
//! | POST /devices | trust a device (`id`, `name`, `addr`), or accept a pending one (`id`) |
//! | GET /devices/{id}/remove | confirm removing a known device |
//! | POST /devices/{id}/remove | stop trusting a device (or forget a pending one) |
//! | POST /shares/{id}/decline | decline an offered share |
//! | POST /shares/{id}/accept | accept an offered share into `folder` (as `ferry accept`) |
//! | GET /events | the daemon's server-sent events (as `/api/events`) |
//! | GET /assets/… | style sheet, htmx, the page script (public) |
//!
//! Access (`auth.rs`): a session cookie or the API's bearer token; without either a page
//! redirects to `/login` (401 for anything else). POSTs need the session's CSRF token
//! and are refused from another origin; `Host` must be the daemon's loopback address.

pub mod auth;
mod devices;
mod html;
mod pages;
mod transfers;
mod versions;

use crate::control::{self, ControlError};
use crate::events::DaemonEvent;
use crate::shared::Shared;
use auth::{LinkKey, Sessions, Viewer, COOKIE};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use ferry_core::index::unix_now;
use ferry_core::resolve::{resolve_id, Keep};
use std::convert::Infallible;
use std::sync::Arc;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

/// What the dashboard's handlers share.
pub struct Dash {
    shared: Arc<Shared>,
    token: String,
    key: LinkKey,
    sessions: Sessions,
    rates: Arc<transfers::RateLog>,
}

/// The dashboard's routes, to be merged with the API router.
pub fn router(shared: Arc<Shared>, token: String) -> Router {
    let key = LinkKey::new(&token, std::process::id(), shared.started_at);
    let rates = Arc::new(transfers::RateLog::default());
    rates.follow(&shared);
    let dash = Arc::new(Dash {
        shared,
        token,
        key,
        sessions: Sessions::default(),
        rates,
    });
    let guarded = Router::new()
        .route("/", get(overview))
        .route("/fragment/overview", get(overview_fragment))
        .route("/transfers", get(transfers_page))
        .route("/fragment/transfers", get(transfers_fragment))
        .route("/conflicts", get(conflicts))
        .route("/conflicts/{id}/resolve", post(resolve))
        .route("/conflicts/resolve", post(resolve_selected))
        .route("/versions", get(versions_page))
        .route("/versions/{id}/restore", post(restore_version))
        .route("/history", get(history))
        .route("/history/{id}", get(run))
        .route("/settings", get(settings))
        .route("/conduits/{id}/pause", post(pause))
        .route("/conduits/{id}/resume", post(resume))
        .route("/conduits/{id}/sync", post(sync_now))
        .route("/conduits", post(add_conduit))
        .route("/conduits/{id}/settings", post(change_conduit))
        .route(
            "/conduits/{id}/remove",
            get(remove_confirm).post(remove_conduit),
        )
        .route("/devices", get(devices_page).post(trust_device))
        .route("/fragment/devices", get(devices_fragment))
        .route(
            "/devices/{id}/remove",
            get(untrust_confirm).post(untrust_device),
        )
        .route("/shares/{id}/accept", post(accept_share))
        .route("/shares/{id}/decline", post(decline_share))
        .route("/events", get(events))
        .layer(middleware::from_fn_with_state(dash.clone(), guard));
    Router::new()
        .route("/login", get(login))
        .route("/assets/{name}", get(asset))
        .merge(guarded)
        .layer(middleware::from_fn_with_state(dash.clone(), host_check))
        .layer(middleware::from_fn(security_headers))
        .with_state(dash)
}

/// The login link for the daemon described by `info` (what `ferry dashboard` prints).
pub fn login_link(api_token: &str, info: &crate::discovery::DaemonInfo) -> String {
    let key = LinkKey::new(api_token, info.pid, info.started_at);
    format!(
        "http://127.0.0.1:{}/login?code={}",
        info.port,
        key.mint(unix_now())
    )
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// `Host` must name the daemon on loopback (a page on another site that resolves its
/// own name to 127.0.0.1 cannot talk to the dashboard).
async fn host_check(State(d): State<Arc<Dash>>, req: Request, next: Next) -> Response {
    let port = d.shared.port.lock().map(|p| *p).unwrap_or(0);
    match header_str(req.headers(), header::HOST) {
        Some(h) if auth::host_ok(h, port) => next.run(req).await,
        _ => (StatusCode::FORBIDDEN, "unexpected Host").into_response(),
    }
}

/// Session or bearer token; same origin and (in the handlers) CSRF for POSTs.
async fn guard(State(d): State<Arc<Dash>>, mut req: Request, next: Next) -> Response {
    let h = req.headers();
    let host = header_str(h, header::HOST).unwrap_or("");
    let reading = matches!(*req.method(), Method::GET | Method::HEAD);
    if !reading
        && !auth::same_origin(
            header_str(h, header::ORIGIN),
            h.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
            host,
        )
    {
        return (StatusCode::FORBIDDEN, "cross-origin request refused").into_response();
    }
    let bearer = header_str(h, header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| auth::constant_time_eq(t.as_bytes(), d.token.as_bytes()));
    let viewer = if bearer {
        Some(Viewer { csrf: None })
    } else {
        header_str(h, header::COOKIE)
            .and_then(|c| auth::cookie_value(c, COOKIE))
            .and_then(|c| d.sessions.viewer(c, unix_now()))
    };
    match viewer {
        Some(v) => {
            req.extensions_mut().insert(v);
            next.run(req).await
        }
        None if reading && req.uri().path() != "/events" => Redirect::to("/login").into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            "log in first: run `ferry dashboard` for a link",
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    code: Option<String>,
}

async fn login(State(d): State<Arc<Dash>>, Query(q): Query<LoginQuery>) -> Response {
    if let Some(cookie) = q
        .code
        .as_deref()
        .and_then(|c| d.sessions.login(&d.key, c, unix_now()))
    {
        let set = format!(
            "{COOKIE}={cookie}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            auth::SESSION_LIFETIME_SECS
        );
        let mut res = Redirect::to("/").into_response();
        if let Ok(v) = HeaderValue::from_str(&set) {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
        return res;
    }
    let why = if q.code.is_some() {
        "<p class=\"problem\">This login link is not valid: it was used already, it expired, or the daemon restarted since.</p>"
    } else {
        ""
    };
    (
        StatusCode::UNAUTHORIZED,
        Html(html::page(
            "Log in",
            "",
            None,
            &format!(
                "{why}<p>Run <code>ferry dashboard</code> on this machine and open the link it prints. Each link works once, for {} minutes.</p>",
                auth::LINK_LIFETIME_SECS / 60
            ),
        )),
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    let (body, ty): (&'static str, &str) = match name.as_str() {
        "htmx.min.js" => (
            include_str!("assets/htmx.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "app.js" => (
            include_str!("assets/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "style.css" => (include_str!("assets/style.css"), "text/css; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, ty),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// A page, or a readable error page.
fn respond(title: &str, current: &str, viewer: &Viewer, body: crate::Result<String>) -> Response {
    match body {
        Ok(b) => Html(html::page(title, current, Some(viewer), &b)).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Html(html::page(
                title,
                current,
                Some(viewer),
                &format!("<p class=\"problem\">{}</p>", html::esc(&e.to_string())),
            )),
        )
            .into_response(),
    }
}

async fn overview(State(d): State<Arc<Dash>>, Extension(v): Extension<Viewer>) -> Response {
    respond("Overview", "/", &v, pages::overview(&d.shared))
}

async fn overview_fragment(State(d): State<Arc<Dash>>) -> Response {
    match pages::overview_table(&d.shared) {
        Ok(t) => Html(t).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn transfers_page(State(d): State<Arc<Dash>>, Extension(v): Extension<Viewer>) -> Response {
    respond(
        "Transfers",
        "/transfers",
        &v,
        Ok(transfers::page(&d.shared, &d.rates)),
    )
}

async fn transfers_fragment(State(d): State<Arc<Dash>>) -> Response {
    Html(transfers::fragment(&d.shared, &d.rates)).into_response()
}

#[derive(serde::Deserialize)]
struct MessageQuery {
    msg: Option<String>,
}

async fn conflicts(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Query(q): Query<MessageQuery>,
) -> Response {
    let body = d
        .shared
        .with_index(|i| Ok(pages::conflicts(i, &v, q.msg.as_deref())));
    respond("Conflicts", "/conflicts", &v, body.and_then(|r| r))
}

#[derive(serde::Deserialize)]
struct VersionsQuery {
    location: Option<i64>,
    msg: Option<String>,
}

async fn versions_page(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Query(q): Query<VersionsQuery>,
) -> Response {
    let body = d
        .shared
        .with_index(|i| Ok(versions::page(i, &v, q.location, q.msg.as_deref())));
    respond("Versions", "/versions", &v, body.and_then(|r| r))
}

#[derive(serde::Deserialize)]
struct RestoreForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    to: String,
}

async fn restore_version(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<i64>,
    Form(f): Form<RestoreForm>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return csrf_refused();
    }
    let shared = d.shared.clone();
    let done = tokio::task::spawn_blocking(move || {
        shared.with_index(|i| Ok(versions::restore(i, id, &f.to)))
    })
    .await;
    let (msg, location) = match done {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => (format!("Version #{id} not restored: {e}"), None),
        Err(e) => (format!("Version #{id} not restored: {e}"), None),
    };
    let target = match location {
        Some(l) => format!("/versions?location={l}&"),
        None => "/versions?".to_string(),
    };
    back_to(&target, &msg)
}

#[derive(serde::Deserialize)]
struct ResolveForm {
    #[serde(default)]
    csrf: String,
    keep: String,
}

fn csrf_refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        "missing or wrong CSRF token: reload the page and try again",
    )
        .into_response()
}

/// `target?msg=…` after a POST (303, so a reload does not post again).
fn back(target: &str, msg: &str) -> Response {
    back_to(&format!("{target}?"), msg)
}

/// `prefix` (ending in `?` or `&`) followed by `msg=…`.
fn back_to(prefix: &str, msg: &str) -> Response {
    let enc: String = msg
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    Redirect::to(&format!("{prefix}msg={enc}")).into_response()
}

fn keep_of(s: &str) -> Option<Keep> {
    match s {
        "a" => Some(Keep::A),
        "b" => Some(Keep::B),
        "both" => Some(Keep::Both),
        "mine" => Some(Keep::Mine),
        "theirs" => Some(Keep::Theirs),
        _ => None,
    }
}

/// Queues a run of each conduit that carries out a resolution between devices.
async fn run_resolved<'a>(
    shared: &Arc<crate::shared::Shared>,
    done: impl Iterator<Item = &'a ferry_core::resolve::Resolved>,
) {
    let mut conduits: Vec<i64> = done.filter_map(|r| r.run_conduit).collect();
    conduits.dedup();
    for c in conduits {
        if let Err(e) = crate::control::sync_now(shared, c).await {
            tracing::info!("conduit {c}: a resolution is to be carried out; not run: {e}");
        }
    }
}

/// The fields of a form body whose values are plain tokens (IDs, hex, words): `+` and
/// `%XX` are not expected and make the value not match.
fn form_fields(body: &str) -> Vec<(&str, &str)> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

/// Settles the selected conflicts (checkboxes `id`, possibly several) with one choice.
async fn resolve_selected(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    body: String,
) -> Response {
    let fields = form_fields(&body);
    let field = |name: &str| fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    if !v.csrf_ok(field("csrf").unwrap_or("")) {
        return csrf_refused();
    }
    let Some(keep) = field("keep").and_then(keep_of) else {
        return (StatusCode::BAD_REQUEST, "keep must be a, b or both").into_response();
    };
    let ids: Vec<i64> = fields
        .iter()
        .filter(|(k, _)| *k == "id")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    if ids.is_empty() {
        return back(
            "/conflicts",
            "Select conflicts first (the boxes in the first column).",
        );
    }
    let shared = d.shared.clone();
    let done = tokio::task::spawn_blocking(move || {
        ids.into_iter()
            .map(|id| (id, shared.with_index(|i| resolve_id(i, id, keep))))
            .collect::<Vec<_>>()
    })
    .await;
    if let Ok(results) = &done {
        run_resolved(
            &d.shared,
            results.iter().filter_map(|(_, r)| r.as_ref().ok()),
        )
        .await;
    }
    let msg = match done {
        Ok(results) => {
            let settled = results.iter().filter(|(_, r)| r.is_ok()).count();
            let failed: Vec<String> = results
                .iter()
                .filter_map(|(id, r)| r.as_ref().err().map(|e| format!("#{id}: {e}")))
                .collect();
            if failed.is_empty() {
                format!("{settled} conflicts settled.")
            } else {
                format!(
                    "{settled} conflicts settled; {} not settled: {}",
                    failed.len(),
                    failed.join("; ")
                )
            }
        }
        Err(e) => format!("Conflicts not settled: {e}"),
    };
    back("/conflicts", &msg)
}

async fn resolve(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<i64>,
    Form(f): Form<ResolveForm>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return csrf_refused();
    }
    let Some(keep) = keep_of(&f.keep) else {
        return (StatusCode::BAD_REQUEST, "keep must be a, b or both").into_response();
    };
    let shared = d.shared.clone();
    let done =
        tokio::task::spawn_blocking(move || shared.with_index(|i| resolve_id(i, id, keep))).await;
    if let Ok(Ok(r)) = &done {
        run_resolved(&d.shared, std::iter::once(r)).await;
    }
    let msg = match done {
        Ok(Ok(r)) => match r.loser_kept_at.as_deref() {
            Some(at) => format!(
                "Conflict #{id} settled: kept {} for {}; the other content is at {}.",
                r.kept,
                ferry_core::model::display_key(&r.path),
                ferry_core::model::display_key(at)
            ),
            None => format!(
                "Conflict #{id} settled: kept {} for {}; the other content is in the version store.",
                r.kept,
                ferry_core::model::display_key(&r.path)
            ),
        },
        Ok(Err(e)) => format!("Conflict #{id} not settled: {e}"),
        Err(e) => format!("Conflict #{id} not settled: {e}"),
    };
    back("/conflicts", &msg)
}

async fn history(State(d): State<Arc<Dash>>, Extension(v): Extension<Viewer>) -> Response {
    respond(
        "History",
        "/history",
        &v,
        d.shared
            .with_index(|i| Ok(pages::history(i)))
            .and_then(|r| r),
    )
}

async fn run(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<i64>,
) -> Response {
    match d
        .shared
        .with_index(|i| Ok(pages::run(i, id)))
        .and_then(|r| r)
    {
        Ok(Some(body)) => respond(&format!("Run #{id}"), "/history", &v, Ok(body)),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Html(html::page(
                "No such run",
                "/history",
                Some(&v),
                &format!("<p>There is no run #{id}. <a href=\"/history\">All runs</a></p>"),
            )),
        )
            .into_response(),
        Err(e) => respond(&format!("Run #{id}"), "/history", &v, Err(e)),
    }
}

async fn settings(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Query(q): Query<MessageQuery>,
) -> Response {
    let body = d
        .shared
        .with_index(|i| Ok(pages::settings(i, &v, q.msg.as_deref(), None)));
    respond("Settings", "/settings", &v, body.and_then(|r| r))
}

/// The settings page again with what went wrong (422: htmx swaps it in too; a browser
/// without JavaScript shows it as well).
fn settings_problem(d: &Dash, v: &Viewer, problem: pages::SettingsProblem) -> Response {
    let body = d
        .shared
        .with_index(|i| Ok(pages::settings(i, v, None, Some(&problem))));
    let mut res = respond("Settings", "/settings", v, body.and_then(|r| r));
    if res.status() == StatusCode::OK {
        *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    res
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn toggle(d: &Dash, v: &Viewer, id: i64, f: &CsrfForm, paused: bool) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return csrf_refused();
    }
    let verb = if paused { "paused" } else { "resumed" };
    // The API's path: pausing stops a running job at its next safe point.
    match control::set_paused(&d.shared, id, paused).await {
        Ok(()) => back("/settings", &format!("Conduit #{id} {verb}.")),
        Err(ControlError::NotFound(_)) => back("/settings", &format!("There is no conduit #{id}.")),
        Err(e) => back("/settings", &format!("Conduit #{id} not {verb}: {e}")),
    }
}

async fn pause(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    toggle(&d, &v, id, &f, true).await
}

async fn resume(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    toggle(&d, &v, id, &f, false).await
}

async fn sync_now(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return csrf_refused();
    }
    match control::sync_now(&d.shared, id).await {
        Ok(()) => back("/settings", &format!("Conduit #{id}: a run is queued.")),
        Err(e) => back("/settings", &format!("Conduit #{id} not synced: {e}.")),
    }
}

/// A conduit's folders and settings in one line, for notices.
fn conduit_summary(d: &Dash, c: &ferry_core::index::ConduitRow) -> String {
    let roots = d.shared.with_index(|i| {
        Ok((
            i.location(c.location_a)?.root,
            i.location(c.location_b)?.root,
        ))
    });
    match roots {
        Ok((a, b)) => format!(
            "{} {} {} ({}, {}, conflicts: {})",
            a.display(),
            if c.mode == ferry_core::plan::SyncMode::Bidirectional {
                "⇄"
            } else {
                "→"
            },
            b.display(),
            c.mode,
            c.schedule,
            c.conflict_policy
        ),
        Err(_) => format!("({}, {})", c.mode, c.schedule),
    }
}

/// Adds a conduit from the settings page's form (as `ferry conduit add`).
async fn add_conduit(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Form(f): Form<control::ConduitFields>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return csrf_refused();
    }
    match control::add(&d.shared, &f).await {
        Ok(added) => {
            let id = added.conduit.id;
            let mut msg = format!(
                "Conduit #{id} {}: {}.",
                if added.existed { "updated" } else { "added" },
                conduit_summary(&d, &added.conduit)
            );
            for n in &added.notes {
                msg.push_str(&format!(" Note: {n}."));
            }
            back("/settings", &msg)
        }
        Err(e) => settings_problem(
            &d,
            &v,
            pages::SettingsProblem {
                message: format!("No conduit added: {e}"),
                add: Some(control::ConduitFields {
                    csrf: String::new(),
                    ..f
                }),
            },
        ),
    }
}

/// Changes a conduit's mode, policy, schedule or bandwidth limit.
async fn change_conduit(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<i64>,
    Form(f): Form<control::ConduitFields>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return csrf_refused();
    }
    match control::change(&d.shared, id, &f).await {
        Ok(c) => back(
            "/settings",
            &format!("Conduit #{id} changed: {}.", conduit_summary(&d, &c)),
        ),
        Err(e) => settings_problem(
            &d,
            &v,
            pages::SettingsProblem {
                message: format!("Conduit #{id} not changed: {e}"),
                add: None,
            },
        ),
    }
}

/// The confirmation step before a removal (a page of its own: works without JS).
async fn remove_confirm(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<i64>,
) -> Response {
    match d
        .shared
        .with_index(|i| Ok(pages::remove_confirm(i, &v, id)))
        .and_then(|r| r)
    {
        Ok(Some(body)) => respond(&format!("Remove conduit #{id}"), "/settings", &v, Ok(body)),
        Ok(None) => back("/settings", &format!("There is no conduit #{id}.")),
        Err(e) => respond("Remove conduit", "/settings", &v, Err(e)),
    }
}

async fn remove_conduit(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return csrf_refused();
    }
    match control::remove(&d.shared, id).await {
        Ok(()) => back(
            "/settings",
            &format!("Conduit #{id} removed; its folders and files are untouched."),
        ),
        Err(e) => settings_problem(
            &d,
            &v,
            pages::SettingsProblem {
                message: format!("Conduit #{id} not removed: {e}"),
                add: None,
            },
        ),
    }
}

async fn events(State(d): State<Arc<Dash>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(d.shared.events.subscribe()).filter_map(|r| {
        let e: DaemonEvent = r.ok()?;
        Event::default().event(e.name()).json_data(&e).ok().map(Ok)
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn devices_page(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Query(q): Query<MessageQuery>,
) -> Response {
    let shared = d.shared.clone();
    let viewer = v.clone();
    let body =
        tokio::task::spawn_blocking(move || devices::page(&shared, &viewer, q.msg.as_deref()))
            .await
            .unwrap_or_else(|e| Err(crate::DaemonError::Other(e.to_string())));
    respond("Devices", "/devices", &v, body)
}

async fn devices_fragment(State(d): State<Arc<Dash>>, Extension(v): Extension<Viewer>) -> Response {
    let shared = d.shared.clone();
    let body = tokio::task::spawn_blocking(move || devices::fragment(&shared, &v))
        .await
        .unwrap_or_else(|e| Err(crate::DaemonError::Other(e.to_string())));
    match body {
        Ok(t) => Html(t).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(serde::Deserialize)]
#[cfg_attr(not(feature = "net"), allow(dead_code))]
struct TrustForm {
    #[serde(default)]
    csrf: String,
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    addr: String,
}

/// Trusts a device from the form, or accepts a pending one (its row's button).
async fn trust_device(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Form(f): Form<TrustForm>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return csrf_refused();
    }
    #[cfg(feature = "net")]
    {
        let library = d.shared.library.clone();
        let addrs: Vec<String> = f
            .addr
            .split([',', ' '])
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        let done = tokio::task::spawn_blocking(move || {
            crate::devices::trust(&library, &f.id, Some(&f.name), &addrs)
        })
        .await;
        let msg = match done {
            Ok(Ok(t)) => {
                let id = t.device.id.to_string();
                let name = t.device.name.clone().unwrap_or_else(|| id.clone());
                if t.accepted_pending {
                    format!("Accepted device {name}: it can connect now.")
                } else {
                    format!("Device {name} is trusted.")
                }
            }
            Ok(Err(e)) => format!("No device trusted: {e}"),
            Err(e) => format!("No device trusted: {e}"),
        };
        back("/devices", &msg)
    }
    #[cfg(not(feature = "net"))]
    {
        let _ = (d, f);
        back(
            "/devices",
            "This ferry was built without devices (the net feature).",
        )
    }
}

/// Asks before removing a known device.
async fn untrust_confirm(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<String>,
) -> Response {
    let shared = d.shared.clone();
    let viewer = v.clone();
    let wanted = id.clone();
    let body =
        tokio::task::spawn_blocking(move || devices::remove_confirm(&shared, &viewer, &wanted))
            .await
            .unwrap_or_else(|e| Err(crate::DaemonError::Other(e.to_string())));
    match body {
        Ok(Some(body)) => respond("Remove device", "/devices", &v, Ok(body)),
        Ok(None) => back("/devices", &format!("There is no device {id}.")),
        Err(e) => respond("Remove device", "/devices", &v, Err(e)),
    }
}

/// Stops trusting a device (the confirmation's button, or a pending row's Reject).
async fn untrust_device(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return csrf_refused();
    }
    #[cfg(feature = "net")]
    {
        let library = d.shared.library.clone();
        let done =
            tokio::task::spawn_blocking(move || crate::devices::untrust(&library, &id)).await;
        let msg = match done {
            Ok(Ok(r)) => format!(
                "Removed device {}: it is no longer trusted.",
                r.name.unwrap_or_else(|| r.id.to_string())
            ),
            Ok(Err(e)) => format!("No device removed: {e}"),
            Err(e) => format!("No device removed: {e}"),
        };
        back("/devices", &msg)
    }
    #[cfg(not(feature = "net"))]
    {
        let _ = (d, id);
        back(
            "/devices",
            "This ferry was built without devices (the net feature).",
        )
    }
}

#[derive(serde::Deserialize)]
struct AcceptForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    folder: String,
}

/// Accepts an offered share into the folder typed in its form.
async fn accept_share(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<String>,
    Form(f): Form<AcceptForm>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return csrf_refused();
    }
    let msg = match crate::devices::accept_share(&d.shared, &id, &f.folder).await {
        Ok(s) => format!(
            "Accepted share {} into {} ({}); its files arrive while the devices are connected.",
            s.id,
            s.folder.display(),
            s.mode
        ),
        Err(e) => format!("Share {id} not accepted: {e}"),
    };
    back("/devices", &msg)
}

/// Declines an offered share (its card's Decline button).
async fn decline_share(
    State(d): State<Arc<Dash>>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return csrf_refused();
    }
    let msg = match crate::devices::decline_share(&d.shared, &id).await {
        Ok(()) => format!(
            "Declined share {id}; it is no longer offered here (`ferry accept {id} DIR` still takes it)."
        ),
        Err(e) => format!("Share {id} not declined: {e}"),
    };
    back("/devices", &msg)
}
