//! The dashboard's pages, rendered from the same views as the JSON API.

use super::auth::Viewer;
use super::html::{bytes, duration, esc, time_el};
use crate::shared::Shared;
use ferry_core::index::{ConflictStatus, Index};
use ferry_core::model::{display_key, EntryKind};
use serde_json::Value;
use std::collections::HashMap;

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Problems (JSON, as `problems::ProblemView`) as a labelled list: the kind's label
/// first, then the side and path, then the engine's sentence; at most `max`, then how
/// many more.
pub fn problem_list(list: &[Value], max: usize) -> String {
    let mut out = String::from(r#"<ul class="problems" aria-label="Problems">"#);
    for p in list.iter().take(max) {
        let class = if p["retried"] == true {
            "warn"
        } else {
            "problem"
        };
        let at = match (p["side"].as_str(), p["path"].as_str()) {
            (Some(side), Some(path)) => format!(
                " <code>{}:{}</code>",
                esc(&side.to_ascii_lowercase()),
                esc(path)
            ),
            (None, Some(path)) => format!(" <code>{}</code>", esc(path)),
            _ => String::new(),
        };
        out.push_str(&format!(
            r#"<li class="{class}" data-kind="{kind}"><span class="problem-label">{label}</span>{at}: {detail}</li>"#,
            kind = esc(&s(&p["kind"])),
            label = esc(&s(&p["label"])),
            detail = esc(&s(&p["detail"])),
        ));
    }
    if list.len() > max {
        out.push_str(&format!("<li>and {} more</li>", list.len() - max));
    }
    out.push_str("</ul>");
    out
}

/// Every problem is one the next run retries by itself (not an error state).
fn only_retried(problems: &Value) -> bool {
    problems
        .as_array()
        .is_some_and(|l| !l.is_empty() && l.iter().all(|p| p["retried"] == true))
}

/// A view as the JSON document the API serves (one that would not serialize, e.g. a
/// root that is not UTF-8, is left out).
pub(crate) fn as_value<T: serde::Serialize>(v: &T) -> Option<Value> {
    serde_json::to_value(v).ok()
}

/// The overview's live part: one row per conduit. Re-fetched by the page on every
/// daemon event (`/fragment/overview`).
pub fn overview_table(shared: &Shared) -> crate::Result<String> {
    let states = shared.states.lock().map(|m| m.clone()).unwrap_or_default();
    let (conduits, locations) = shared.with_index(|i| {
        Ok((
            crate::views::conduits(i, Some(&states))?,
            crate::views::locations(i)?,
        ))
    })?;
    // The page reads the same documents the API serves.
    let conduits: Vec<Value> = conduits.iter().filter_map(as_value).collect();
    let names = crate::devices::device_facts(Some(shared), &shared.library);
    let free: HashMap<String, Value> = locations
        .into_iter()
        .map(|l| (l.root.to_string_lossy().into_owned(), l.free_bytes.into()))
        .collect();
    let jobs: HashMap<i64, Value> = shared
        .jobs
        .snapshot()
        .into_iter()
        .filter_map(|j| Some((j.conduit, as_value(&j)?)))
        .collect();
    if conduits.is_empty() {
        return Ok(
            "<p>No conduits yet. Add one on the <a href=\"/settings#add-conduit\">Settings</a> page or with <code>ferry conduit add A B</code>.</p>".into(),
        );
    }
    let mut rows = String::new();
    for c in &conduits {
        let id = c["conduit"].as_i64().unwrap_or(0);
        let job = jobs.get(&id);
        let state = if c["paused"] == true {
            "paused".to_string()
        } else if let Some(j) = job {
            match s(&j["phase"]).as_str() {
                p if p.starts_with("scan") => format!("scanning ({})", esc(p)),
                "" => "syncing".into(),
                p => format!("syncing ({})", esc(p)),
            }
        } else if !c["last_error"].is_null() && !only_retried(&c["problems"]) {
            "error".into()
        } else {
            match s(&c["state"]).as_str() {
                "" => "idle".into(),
                st => esc(st),
            }
        };
        let error = match c["problems"].as_array() {
            Some(list) if !list.is_empty() => problem_list(list, 5),
            _ if c["last_error"].is_null() => String::new(),
            _ => format!(
                r#"<div class="problem">{}</div>"#,
                esc(&s(&c["last_error"]))
            ),
        };
        let last = match &c["last_run"] {
            Value::Null => "never".to_string(),
            r => format!(
                r#"<a href="/history/{}">{}</a> <span class="status-{}">{}</span>"#,
                r["generation"],
                time_el(
                    r["completed_at"]
                        .as_i64()
                        .or(r["started_at"].as_i64())
                        .unwrap_or(0)
                ),
                esc(&s(&r["status"])),
                esc(&s(&r["status"])),
            ),
        };
        let (rate, eta) = match job {
            Some(j) => (
                format!("{}/s", bytes(j["rate_bytes_per_sec"].as_u64().unwrap_or(0))),
                j["eta_seconds"]
                    .as_f64()
                    .map(duration)
                    .unwrap_or_else(|| "—".into()),
            ),
            None => ("—".into(), "—".into()),
        };
        let queue = match (job, &c["pending"]) {
            (Some(j), _) => format!("{} files", j["queue_depth"].as_u64().unwrap_or(0)),
            (None, Value::Null) => "unknown".into(),
            (None, p) => format!(
                "{} files, {}",
                p["files"].as_u64().unwrap_or(0),
                bytes(p["bytes"].as_u64().unwrap_or(0))
            ),
        };
        let conflicts = c["open_conflicts"].as_u64().unwrap_or(0);
        let conflicts = if conflicts > 0 {
            format!(r#"<a href="/conflicts" class="warn">{conflicts} open</a>"#)
        } else {
            "none".into()
        };
        let space = |root: &Value, peer: &Value| {
            if !peer.is_null() {
                return "on that device".to_string();
            }
            free.get(&s(root))
                .and_then(|v| v.as_u64())
                .map(|b| format!("{} free", bytes(b)))
                .unwrap_or_else(|| "unknown".into())
        };
        // Another device's copy of a shared folder reads as that device and the share.
        let side = |root: &Value, peer: &Value| match peer.as_str() {
            Some(d) => format!(
                r#"device {} <span class="roots">(share {})</span>"#,
                esc(&names
                    .get(d)
                    .and_then(|f| f.name.clone())
                    .unwrap_or_else(|| d.split('-').next().unwrap_or(d).to_string())),
                esc(&s(&c["share"])),
            ),
            None => esc(&s(root)),
        };
        rows.push_str(&format!(
            r#"<tr id="conduit-{id}" data-state="{state_attr}">
<th scope="row">#{id}<div class="roots"><span title="A">A: {a}</span><br><span title="B">B: {b}</span></div>{error}</th>
<td>{mode}</td><td>{schedule}</td><td class="state">{state}</td><td class="last">{last}</td>
<td>{rate}</td><td>{eta}</td><td>{queue}</td><td>{conflicts}</td>
<td>A: {fa}<br>B: {fb}</td>
</tr>
"#,
            state_attr = esc(state.split(' ').next().unwrap_or("")),
            a = side(&c["a"], &c["peer_a"]),
            b = side(&c["b"], &c["peer_b"]),
            mode = esc(&s(&c["mode"])),
            schedule = esc(&s(&c["schedule"])),
            fa = space(&c["a"], &c["peer_a"]),
            fb = space(&c["b"], &c["peer_b"]),
        ));
    }
    Ok(format!(
        r#"<table class="conduits">
<caption>Conduits: folder pairs the daemon keeps in step</caption>
<thead><tr><th scope="col">Conduit</th><th scope="col">Mode</th><th scope="col">Schedule</th><th scope="col">State</th><th scope="col">Last sync</th><th scope="col">Rate</th><th scope="col">ETA</th><th scope="col">Queue</th><th scope="col">Conflicts</th><th scope="col">Free space</th></tr></thead>
<tbody>
{rows}</tbody>
</table>"#
    ))
}

pub fn overview(shared: &Shared) -> crate::Result<String> {
    Ok(format!(
        r#"<section id="overview" aria-label="Conduits, updated live" hx-get="/fragment/overview" hx-trigger="ferry-event from:body delay:150ms" hx-sync="this:queue last" hx-swap="innerHTML">
{}
</section>"#,
        overview_table(shared)?
    ))
}

fn mtime(ns: Option<i64>) -> String {
    ns.map(|n| time_el(n.div_euclid(1_000_000_000)))
        .unwrap_or_else(|| "—".into())
}

fn side(kind: Option<EntryKind>, size: Option<i64>, mtime_ns: Option<i64>) -> String {
    match kind {
        None => "absent (deleted)".into(),
        Some(EntryKind::File) => format!(
            "{}, {}",
            bytes(size.unwrap_or(0).max(0) as u64),
            mtime(mtime_ns)
        ),
        Some(k) => format!("{}, {}", esc(k.as_str()), mtime(mtime_ns)),
    }
}

pub fn conflicts(index: &Index, viewer: &Viewer, message: Option<&str>) -> crate::Result<String> {
    let all = index.conflicts(false)?;
    // A conflict a later run met again is `superseded` by the new row: not shown.
    let (open, settled): (Vec<_>, Vec<_>) = all
        .into_iter()
        .filter(|c| c.status != ConflictStatus::Superseded)
        .partition(|c| c.status == ConflictStatus::Open);
    let mut out = String::new();
    if let Some(m) = message {
        out.push_str(&format!(
            r#"<p role="status" class="notice">{}</p>"#,
            esc(m)
        ));
    }
    if open.is_empty() {
        out.push_str("<p>No open conflicts.</p>");
    } else {
        out.push_str(r#"<table class="conflicts"><caption>Open conflicts: choose which content survives (the other is kept as a version, or beside it with “keep both”)</caption>
<thead><tr><th scope="col">Select</th><th scope="col">Path</th><th scope="col">A</th><th scope="col">B</th><th scope="col">Policy</th><th scope="col">Since</th><th scope="col">Resolve</th></tr></thead><tbody>"#);
        for c in &open {
            let path = esc(&display_key(&c.path));
            out.push_str(&format!(
                r#"<tr id="conflict-{id}"><td><input type="checkbox" name="id" value="{id}" form="bulk" id="select-{id}" aria-label="Select {path}"></td><th scope="row"><code>{path}</code><div class="roots">#{conduit}: {ar} ⇄ {br}</div></th><td>{a}</td><td>{b}</td><td>{policy}</td><td>{since}</td>
<td><form method="post" action="/conflicts/{id}/resolve" class="actions">{csrf}
<button name="keep" value="a" aria-label="Keep A's {path}">Keep A</button>
<button name="keep" value="b" aria-label="Keep B's {path}">Keep B</button>
<button name="keep" value="both" aria-label="Keep both versions of {path}">Keep both</button>
</form></td></tr>
"#,
                id = c.id,
                conduit = c.conduit_id,
                ar = esc(&c.a_root),
                br = esc(&c.b_root),
                a = side(c.a_kind, c.a_size, c.a_mtime_ns),
                b = side(c.b_kind, c.b_size, c.b_mtime_ns),
                policy = esc(c.policy.as_str()),
                since = time_el(c.created_at),
                csrf = viewer.csrf_field(),
            ));
        }
        out.push_str(&format!(
            r#"</tbody></table>
<form method="post" action="/conflicts/resolve" id="bulk" class="actions" aria-label="Settle the selected conflicts">{csrf}
<button name="keep" value="a">Keep A for selected</button>
<button name="keep" value="b">Keep B for selected</button>
<button name="keep" value="both">Keep both for selected</button>
</form>"#,
            csrf = viewer.csrf_field()
        ));
    }
    if !settled.is_empty() {
        out.push_str(r#"<h2>Recently settled</h2><table class="conflicts"><thead><tr><th scope="col">Path</th><th scope="col">Policy</th><th scope="col">Outcome</th><th scope="col">Loser kept at</th><th scope="col">Settled</th></tr></thead><tbody>"#);
        for c in settled.iter().take(50) {
            let outcome = match (c.resolution, c.winner) {
                (Some(r), _) => format!("you kept {}", esc(r.as_str())),
                (None, Some(w)) => format!("{} won", esc(w.letter())),
                (None, None) => esc(c.status.as_str()),
            };
            out.push_str(&format!(
                "<tr><th scope=\"row\"><code>{}</code></th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&display_key(&c.path)),
                esc(c.policy.as_str()),
                outcome,
                c.loser_kept_at
                    .as_deref()
                    .map(|p| format!("<code>{}</code>", esc(&display_key(p))))
                    .unwrap_or_else(|| "—".into()),
                c.settled_at.map(time_el).unwrap_or_else(|| "—".into()),
            ));
        }
        out.push_str("</tbody></table>");
    }
    Ok(out)
}

pub fn history(index: &Index) -> crate::Result<String> {
    let rows = index.generations(200)?;
    if rows.is_empty() {
        return Ok("<p>No runs yet.</p>".into());
    }
    let mut out = String::from(
        r#"<table class="history"><caption>Runs (generations), newest first</caption>
<thead><tr><th scope="col">Run</th><th scope="col">Conduit</th><th scope="col">Started</th><th scope="col">Took</th><th scope="col">Trigger</th><th scope="col">Status</th><th scope="col">Copied</th><th scope="col">Deleted</th><th scope="col">Renamed</th><th scope="col">Conflicts</th><th scope="col">Bytes</th><th scope="col">Errors</th></tr></thead><tbody>"#,
    );
    for g in rows {
        let took = g
            .completed_at
            .map(|c| duration((c - g.started_at).max(0) as f64))
            .unwrap_or_else(|| "—".into());
        out.push_str(&format!(
            r#"<tr id="run-{id}"><th scope="row"><a href="/history/{id}">#{id}</a></th><td>#{conduit} run {number}</td><td>{started}</td><td>{took}</td><td>{trigger}</td><td class="status-{status}">{status}</td><td>{copied}</td><td>{deleted}</td><td>{renamed}</td><td>{conflicts}</td><td>{bytes}</td><td>{errors}</td></tr>
"#,
            id = g.id,
            conduit = g.conduit_id,
            number = g.number,
            started = time_el(g.started_at),
            trigger = esc(&g.trigger),
            status = g.status.as_str(),
            copied = g.stats.files_copied,
            deleted = g.stats.files_deleted,
            renamed = g.stats.files_renamed + g.stats.dirs_renamed,
            conflicts = g.stats.conflicts,
            bytes = bytes(g.stats.bytes_transferred),
            errors = g.stats.errors,
        ));
    }
    out.push_str("</tbody></table>");
    Ok(out)
}

/// One run with its per-file actions; `None` when there is no such run.
pub fn run(index: &Index, id: i64) -> crate::Result<Option<String>> {
    let Some(g) = index.generation(id)? else {
        return Ok(None);
    };
    let problems = crate::problems::of_run(&index.generation_problems(id)?);
    let actions = index.generation_actions(id)?;
    let mut out = format!(
        r#"<p><a href="/history">← all runs</a></p>
<dl class="facts"><dt>Conduit</dt><dd>#{}</dd><dt>Started</dt><dd>{}</dd><dt>Status</dt><dd>{}</dd><dt>Trigger</dt><dd>{}</dd><dt>Copied</dt><dd>{} files, {}</dd><dt>Deleted</dt><dd>{}</dd><dt>Conflicts</dt><dd>{} ({} settled by policy)</dd><dt>Errors</dt><dd>{}</dd></dl>"#,
        g.conduit_id,
        time_el(g.started_at),
        g.status.as_str(),
        esc(&g.trigger),
        g.stats.files_copied,
        bytes(g.stats.bytes_transferred),
        g.stats.files_deleted,
        g.stats.conflicts,
        g.stats.conflicts_resolved,
        g.stats.errors,
    );
    if !problems.is_empty() {
        let list: Vec<Value> = problems
            .iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect();
        out.push_str(&format!(
            r#"<h2 id="problems">Problems</h2>{}"#,
            problem_list(&list, crate::problems::MAX_KEPT)
        ));
    } else if g.stats.errors > 0 {
        out.push_str("<p>This run's problems were dropped with old history; <code>ferry</code>'s log has them.</p>");
    }
    if actions.is_empty() {
        out.push_str(if g.actions_pruned {
            "<p>The per-file actions of this run were dropped with old history.</p>"
        } else {
            "<p>No per-file actions recorded.</p>"
        });
    } else {
        out.push_str(r#"<table class="actions"><caption>Per-file actions</caption><thead><tr><th scope="col">Action</th><th scope="col">Side</th><th scope="col">Path</th><th scope="col">Detail</th></tr></thead><tbody>"#);
        for a in &actions {
            let side = match a.side {
                Some(ferry_core::plan::Side::A) => "A",
                Some(ferry_core::plan::Side::B) => "B",
                None => "both",
            };
            let to =
                a.to.as_ref()
                    .map(|t| format!(" → <code>{}</code>", esc(&t.to_string())))
                    .unwrap_or_default();
            out.push_str(&format!(
                "<tr><td>{}</td><td>{side}</td><td><code>{}</code>{to}</td><td>{}{}</td></tr>",
                a.action.as_str(),
                esc(&a.path.to_string()),
                a.size.map(bytes).unwrap_or_default(),
                a.detail
                    .as_deref()
                    .map(|d| format!(" {}", esc(d)))
                    .unwrap_or_default(),
            ));
        }
        out.push_str("</tbody></table>");
        if g.actions_omitted > 0 {
            out.push_str(&format!(
                "<p>{} more actions were counted but not kept.</p>",
                g.actions_omitted
            ));
        }
    }
    Ok(Some(out))
}

/// What went wrong with the last settings form, shown above the forms (and, for an
/// add, the values typed, so nothing has to be typed again).
pub struct SettingsProblem {
    pub message: String,
    /// The add form's values when the add was refused.
    pub add: Option<crate::control::ConduitFields>,
}

const MODES: [(&str, &str); 3] = [
    ("bidirectional", "bidirectional: changes flow both ways"),
    ("mirror", "mirror: B becomes an exact copy of A"),
    (
        "archive",
        "archive: copy A to B, verify, then remove from A",
    ),
];

const POLICIES: [(&str, &str); 5] = [
    (
        "newest",
        "newest: the later edit wins, the other is kept as a version",
    ),
    (
        "keep-both",
        "keep-both: as newest, and the loser stays beside it",
    ),
    ("source", "source: A wins"),
    ("target", "target: B wins"),
    ("manual", "manual: touch nothing, ask me"),
];

/// `<option>`s of `choices`, `current` selected; with `blank`, a first option of value
/// "" (not given) with that label.
fn options(choices: &[(&str, &str)], current: &str, blank: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(label) = blank {
        let sel = if current.is_empty() { " selected" } else { "" };
        out.push_str(&format!(r#"<option value=""{sel}>{}</option>"#, esc(label)));
    }
    for (value, label) in choices {
        let sel = if *value == current { " selected" } else { "" };
        out.push_str(&format!(
            r#"<option value="{value}"{sel}>{}</option>"#,
            esc(label)
        ));
    }
    out
}

const SCHEDULE_HELP: &str =
    "instant (watch for changes), every:DURATION (e.g. every:10m) or manual";
const BANDWIDTH_HELP: &str = "bytes per second, e.g. 500K or 10M; unlimited (or 0) for none";

fn add_form(viewer: &Viewer, values: Option<&crate::control::ConduitFields>) -> String {
    let empty = crate::control::ConduitFields::default();
    let v = values.unwrap_or(&empty);
    format!(
        r#"<section class="card" id="add-conduit" aria-labelledby="add-conduit-h">
<h2 id="add-conduit-h">Add a conduit</h2>
<form method="post" action="/conduits" class="settings-form">{csrf}
<label for="add-a">Folder A</label>
<input type="text" id="add-a" name="a" value="{a}" required placeholder="/absolute/path" aria-describedby="add-a-help"><span class="help" id="add-a-help">An existing folder; the source in mirror and archive mode.</span>
<label for="add-b">Folder B</label>
<input type="text" id="add-b" name="b" value="{b}" required placeholder="/absolute/path" aria-describedby="add-b-help"><span class="help" id="add-b-help">Created if missing (its parent must exist); the target in mirror and archive mode.</span>
<label for="add-mode">Mode</label>
<select id="add-mode" name="mode">{modes}</select><span></span>
<label for="add-policy">Conflict policy</label>
<select id="add-policy" name="conflict_policy">{policies}</select><span></span>
<label for="add-schedule">Schedule</label>
<input type="text" id="add-schedule" name="schedule" value="{schedule}" placeholder="instant" aria-describedby="add-schedule-help"><span class="help" id="add-schedule-help">{schedule_help}</span>
<label for="add-bandwidth">Bandwidth limit</label>
<input type="text" id="add-bandwidth" name="bandwidth_limit" value="{bandwidth}" placeholder="unlimited" aria-describedby="add-bandwidth-help"><span class="help" id="add-bandwidth-help">{bandwidth_help}</span>
<span></span><div class="actions"><button type="submit">Add conduit</button></div>
</form>
</section>
"#,
        csrf = viewer.csrf_field(),
        a = esc(&v.a),
        b = esc(&v.b),
        modes = options(&MODES, &v.mode, Some("bidirectional (the default)")),
        policies = options(
            &POLICIES,
            &v.conflict_policy,
            Some("the default (newest, or the config file's)")
        ),
        schedule = esc(&v.schedule),
        bandwidth = esc(&v.bandwidth_limit),
        schedule_help = SCHEDULE_HELP,
        bandwidth_help = BANDWIDTH_HELP,
    )
}

pub fn settings(
    index: &Index,
    viewer: &Viewer,
    message: Option<&str>,
    problem: Option<&SettingsProblem>,
) -> crate::Result<String> {
    let mut out = String::new();
    if let Some(p) = problem {
        out.push_str(&format!(
            r#"<p role="alert" class="problem notice" id="settings-problem">{}</p>"#,
            esc(&p.message)
        ));
    }
    if let Some(m) = message {
        out.push_str(&format!(
            r#"<p role="status" class="notice">{}</p>"#,
            esc(m)
        ));
    }
    let conduits = index.conduits()?;
    if conduits.is_empty() {
        out.push_str(
            "<p>No conduits yet: add one below (or with <code>ferry conduit add A B</code>).</p>",
        );
    }
    for c in conduits {
        let (a, b) = (index.location(c.location_a)?, index.location(c.location_b)?);
        let limit = if c.bandwidth_limit == 0 {
            "unlimited".to_string()
        } else {
            format!("{}/s", bytes(c.bandwidth_limit))
        };
        let toggle = if c.paused {
            format!(
                r#"<button formaction="/conduits/{}/resume" aria-label="Resume conduit {}">Resume</button>"#,
                c.id, c.id
            )
        } else {
            format!(
                r#"<button formaction="/conduits/{}/pause" aria-label="Pause conduit {}">Pause</button>"#,
                c.id, c.id
            )
        };
        out.push_str(&format!(
            r#"<section class="card" id="settings-{id}" aria-labelledby="settings-{id}-h">
<h2 id="settings-{id}-h">Conduit #{id} <span class="state">{paused}</span></h2>
<p class="roots">A: {a}<br>B: {b}</p>
<dl class="facts"><dt>Mode</dt><dd class="mode">{mode}</dd><dt>Schedule</dt><dd class="schedule">{schedule}</dd><dt>Conflict policy</dt><dd class="policy">{policy}</dd><dt>Parallel copies</dt><dd>{parallel}</dd><dt>Bandwidth limit</dt><dd class="bandwidth">{limit}</dd></dl>
<form method="post" action="/conduits/{id}/sync" class="actions">{csrf}
{toggle}
<button formaction="/conduits/{id}/sync" aria-label="Sync conduit {id} now">Sync now</button>
<a class="button" href="/conduits/{id}/remove" aria-label="Remove conduit {id}…">Remove…</a>
</form>
<details class="change"><summary>Change settings</summary>
<form method="post" action="/conduits/{id}/settings" class="settings-form" aria-label="Settings of conduit {id}">{csrf}
<label for="mode-{id}">Mode</label>
<select id="mode-{id}" name="mode">{modes}</select><span></span>
<label for="policy-{id}">Conflict policy</label>
<select id="policy-{id}" name="conflict_policy">{policies}</select><span></span>
<label for="schedule-{id}">Schedule</label>
<input type="text" id="schedule-{id}" name="schedule" value="{schedule}" aria-describedby="schedule-{id}-help"><span class="help" id="schedule-{id}-help">{schedule_help}</span>
<label for="bandwidth-{id}">Bandwidth limit</label>
<input type="text" id="bandwidth-{id}" name="bandwidth_limit" value="{bandwidth}" aria-describedby="bandwidth-{id}-help"><span class="help" id="bandwidth-{id}-help">{bandwidth_help}</span>
<span></span><div class="actions"><button type="submit" aria-label="Save the settings of conduit {id}">Save settings</button></div>
</form>
</details>
</section>
"#,
            id = c.id,
            paused = if c.paused { "paused" } else { "active" },
            a = esc(&a.root.to_string_lossy()),
            b = esc(&b.root.to_string_lossy()),
            mode = c.mode.as_str(),
            schedule = esc(&c.schedule.to_string()),
            policy = c.conflict_policy.as_str(),
            parallel = if c.parallel == 0 {
                "one per core".to_string()
            } else {
                c.parallel.to_string()
            },
            csrf = viewer.csrf_field(),
            modes = options(&MODES, c.mode.as_str(), None),
            policies = options(&POLICIES, c.conflict_policy.as_str(), None),
            bandwidth = esc(&ferry_core::conduit::format_bandwidth(c.bandwidth_limit)),
            schedule_help = SCHEDULE_HELP,
            bandwidth_help = BANDWIDTH_HELP,
        ));
    }
    out.push_str(&add_form(viewer, problem.and_then(|p| p.add.as_ref())));
    Ok(out)
}

/// The confirmation step before removing conduit `id`; `None` when there is none.
pub fn remove_confirm(index: &Index, viewer: &Viewer, id: i64) -> crate::Result<Option<String>> {
    let Some(c) = index.conduit(id)? else {
        return Ok(None);
    };
    let (a, b) = (index.location(c.location_a)?, index.location(c.location_b)?);
    Ok(Some(format!(
        r#"<section class="card" id="remove-{id}" aria-labelledby="remove-{id}-h">
<h2 id="remove-{id}-h">Remove conduit #{id}?</h2>
<p class="roots">A: {a}<br>B: {b}</p>
<p>The daemon stops syncing these folders. <strong>No file is deleted</strong>: both folders, their files and their kept versions stay as they are. The conduit's run history and conflict records go.</p>
<form method="post" action="/conduits/{id}/remove" class="actions">{csrf}
<button type="submit" class="danger">Remove conduit #{id}</button>
<a class="button" href="/settings">Cancel</a>
</form>
</section>"#,
        a = esc(&a.root.to_string_lossy()),
        b = esc(&b.root.to_string_lossy()),
        csrf = viewer.csrf_field(),
    )))
}
