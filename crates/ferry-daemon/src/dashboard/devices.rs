//! The Devices page: known and pending devices with their connection (live from the
//! node when the daemon runs one), trusting and removing a device, this device's
//! shares with their members, and offers from other devices with an "accept into
//! folder" form. The live part is re-fetched on every daemon event (device connections,
//! disconnections and refusals are events) and every 5 s for round-trip times
//! (`/fragment/devices`). Its forms carry their own
//! `hx-sync`: inheriting the live part's `queue last`, a click could be dropped in
//! favour of the next poll.

use super::auth::Viewer;
use super::html::{esc, time_el};
use crate::devices::{ShareView, SharesView};
use crate::shared::Shared;

/// The whole page: notice, this device, the live part, the "trust a device" form.
pub fn page(shared: &Shared, viewer: &Viewer, message: Option<&str>) -> crate::Result<String> {
    let mut out = String::new();
    if let Some(m) = message {
        out.push_str(&format!(
            r#"<p role="status" class="notice">{}</p>"#,
            esc(m)
        ));
    }
    out.push_str(&format!(
        r#"<section id="devices-live" aria-label="Devices and shares, updated live" hx-get="/fragment/devices" hx-trigger="every 5s, ferry-event from:body delay:150ms" hx-sync="this:queue last" hx-swap="innerHTML" data-live-poll>
{}
</section>
"#,
        fragment(shared, viewer)?
    ));
    out.push_str(&add_form(viewer));
    Ok(out)
}

/// The live part: devices, shares, offers.
pub fn fragment(shared: &Shared, viewer: &Viewer) -> crate::Result<String> {
    let mut out = devices_part(shared, viewer)?;
    let shares = crate::devices::shares(shared)?;
    out.push_str(&shares_part(&shares, viewer));
    Ok(out)
}

#[cfg(feature = "net")]
fn devices_part(shared: &Shared, viewer: &Viewer) -> crate::Result<String> {
    let (node, rows) = crate::devices::any_listing(shared)?;
    let mut out = String::new();
    match &node {
        Some(n) => out.push_str(&format!(
            r#"<dl class="facts" id="this-device"><dt>This device</dt><dd><code>{}</code></dd><dt>Listening on</dt><dd>UDP {}</dd></dl>"#,
            esc(&n.device_id),
            esc(&n.listen.join(", "))
        )),
        None => out.push_str(
            r#"<p class="warn" id="no-node">This daemon runs no device node: connection states are unknown. Start it with <code>ferry daemon --listen</code>.</p>"#,
        ),
    }
    out.push_str(r#"<h2 id="devices-h">Devices</h2>"#);
    if rows.is_empty() {
        out.push_str("<p>No devices yet. Trust one with the form below (its ID comes from <code>ferry device id</code> on it).</p>");
        return Ok(out);
    }
    out.push_str(
        r#"<table aria-labelledby="devices-h"><thead><tr><th scope="col">Device</th><th scope="col">State</th><th scope="col">Connection</th><th scope="col">Address</th><th scope="col">Round trip</th><th scope="col">Last seen</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead><tbody>"#,
    );
    for r in &rows {
        let id = r.id.to_string();
        let label = r
            .name
            .clone()
            .unwrap_or_else(|| id.split('-').next().unwrap_or(&id).to_string());
        let pending = r.state == ferry_net::DeviceState::Pending;
        let state = if pending {
            r#"<span class="warn">pending</span>"#.to_string()
        } else {
            "known".to_string()
        };
        let connection = if pending {
            format!(
                "refused ({} attempts)",
                r.attempts.map(|a| a.to_string()).unwrap_or_default()
            )
        } else if r.connected {
            let path = match r.path {
                Some(ferry_net::PathKind::Direct) => "direct",
                Some(ferry_net::PathKind::Relayed) => "relayed",
                None => "path unknown",
            };
            format!(r#"<span class="status-ok">connected</span>, {path}"#)
        } else if node.is_none() {
            "unknown".to_string()
        } else {
            match &r.last_error {
                Some(e) => format!(r#"not connected <span class="roots">({})</span>"#, esc(e)),
                None => "not connected".to_string(),
            }
        };
        let address = match (&r.address, r.addresses.is_empty()) {
            (Some(a), _) => esc(a),
            (None, false) => esc(&r.addresses.join(", ")),
            (None, true) => "—".to_string(),
        };
        let rtt = r
            .rtt_ms
            .map(|ms| format!("{ms:.1} ms"))
            .unwrap_or_else(|| "—".into());
        let seen = r.last_seen.map(time_el).unwrap_or_else(|| "never".into());
        let accept = if pending {
            format!(
                r#"<form method="post" action="/devices" class="actions" hx-sync="this:drop">{csrf}<input type="hidden" name="id" value="{id}"><button type="submit" class="accept" aria-label="Accept device {name}">Accept</button></form>"#,
                csrf = viewer.csrf_field(),
                id = esc(&id),
                name = esc(&label),
            )
        } else {
            String::new()
        };
        // A pending device is only forgotten (it can ask again): no confirmation. A
        // known one is confirmed on its own page first.
        let remove = if pending {
            format!(
                r#"<form method="post" action="/devices/{id}/remove" class="actions" hx-sync="this:drop">{csrf}<button type="submit" class="danger remove" aria-label="Reject device {name}">Reject</button></form>"#,
                csrf = viewer.csrf_field(),
                id = esc(&id),
                name = esc(&label),
            )
        } else {
            format!(
                r#"<a class="button danger remove" href="/devices/{id}/remove" aria-label="Remove device {name}">Remove…</a>"#,
                id = esc(&id),
                name = esc(&label),
            )
        };
        out.push_str(&format!(
            r#"<tr id="device-{id}" data-state="{st}" data-connected="{connected}"><th scope="row">{name}<div class="roots"><code>{id}</code></div></th><td class="state">{state}</td><td class="connection">{connection}</td><td class="address">{address}</td><td class="rtt">{rtt}</td><td>{seen}</td><td><div class="actions">{accept}{remove}</div></td></tr>"#,
            id = esc(&id),
            st = if pending { "pending" } else { "known" },
            connected = r.connected,
            name = esc(&label),
        ));
    }
    out.push_str("</tbody></table>");
    out.push_str(&hubs_part(shared));
    Ok(out)
}

/// The hubs this device knows, after the devices.
#[cfg(feature = "net")]
fn hubs_part(shared: &Shared) -> String {
    let hubs = crate::devices::hubs(shared);
    if hubs.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        r#"<h2 id="hubs-h">Hubs</h2><table aria-labelledby="hubs-h"><thead><tr><th scope="col">Hub</th><th scope="col">Connection</th><th scope="col">Address</th><th scope="col">Last contact</th><th scope="col">Shares</th><th scope="col">Stored there</th><th scope="col">Sent / received</th></tr></thead><tbody>"#,
    );
    for h in &hubs {
        let id = h["id"].as_str().unwrap_or_default();
        let connected = h["connected"].as_bool().unwrap_or(false);
        let address = (h["address"].as_str().map(str::to_string))
            .or_else(|| {
                let a: Vec<&str> = (h["addrs"].as_array().into_iter().flatten())
                    .filter_map(|v| v.as_str())
                    .collect();
                (!a.is_empty()).then(|| a.join(", "))
            })
            .unwrap_or_else(|| "—".into());
        let contact = h["last_contact"]
            .as_i64()
            .map(time_el)
            .unwrap_or_else(|| "never".into());
        let shares = h["shares"].as_array().cloned().unwrap_or_default();
        let stored: Vec<String> = (shares.iter())
            .filter_map(|s| {
                let used = s["stored_bytes"].as_u64()?;
                Some(match s["quota"].as_u64() {
                    Some(q) => format!("{} of {}", human(used), human(q)),
                    None => human(used),
                })
            })
            .collect();
        out.push_str(&format!(
            r#"<tr id="hub-{id}" data-connected="{connected}"><th scope="row"><code>{id}</code></th><td class="connection">{conn}</td><td class="address">{address}</td><td>{contact}</td><td class="shares">{n}</td><td class="stored">{stored}</td><td class="traffic">{up} / {down}</td></tr>"#,
            id = esc(id),
            conn = if connected {
                r#"<span class="status-ok">connected</span>"#
            } else {
                "not connected"
            },
            address = esc(&address),
            n = shares.len(),
            stored = if stored.is_empty() {
                "—".to_string()
            } else {
                esc(&stored.join(", "))
            },
            up = human(h["bytes_up"].as_u64().unwrap_or(0)),
            down = human(h["bytes_down"].as_u64().unwrap_or(0)),
        ));
    }
    out.push_str("</tbody></table>");
    out
}

#[cfg(feature = "net")]
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The confirmation before removing a known device; `None` when there is no such device.
#[cfg(feature = "net")]
pub fn remove_confirm(shared: &Shared, viewer: &Viewer, id: &str) -> crate::Result<Option<String>> {
    let (_, rows) = crate::devices::any_listing(shared)?;
    let wanted = id.replace('-', "").to_ascii_uppercase();
    let Some(r) = rows
        .iter()
        .find(|r| r.id.to_string().replace('-', "") == wanted)
    else {
        return Ok(None);
    };
    let id = r.id.to_string();
    let name = r.name.clone().unwrap_or_else(|| id.clone());
    let shares = crate::devices::shares(shared)?;
    let shared_with: Vec<String> = shares
        .shares
        .iter()
        .filter(|s| s.members.iter().any(|m| m.device == id))
        .map(|s| esc(&s.folder.display().to_string()))
        .collect();
    let folders = if shared_with.is_empty() {
        "No folder is shared with it.".to_string()
    } else {
        format!(
            "Folders shared with it stop syncing with it (they stay in step with other members): {}.",
            shared_with.join(", ")
        )
    };
    Ok(Some(format!(
        r#"<section class="card" id="remove-device" aria-labelledby="remove-device-h">
<h2 id="remove-device-h">Remove device {name}?</h2>
<p class="roots"><code>{id}</code></p>
<p>It can no longer connect to this device; if it tries, it shows as pending. {folders} <strong>No file is deleted</strong> on either device.</p>
<form method="post" action="/devices/{id}/remove" class="actions">{csrf}
<button type="submit" class="danger">Remove device {name}</button>
<a class="button" href="/devices">Cancel</a>
</form>
</section>"#,
        name = esc(&name),
        id = esc(&id),
        csrf = viewer.csrf_field(),
    )))
}

#[cfg(not(feature = "net"))]
pub fn remove_confirm(_: &Shared, _: &Viewer, _: &str) -> crate::Result<Option<String>> {
    Ok(None)
}

#[cfg(not(feature = "net"))]
fn devices_part(_shared: &Shared, _viewer: &Viewer) -> crate::Result<String> {
    Ok(r#"<h2 id="devices-h">Devices</h2><p id="no-node">This ferry was built without devices (the <code>net</code> feature).</p>"#.to_string())
}

fn who(device: &str, name: Option<&str>) -> String {
    match name {
        Some(n) => esc(n),
        None => format!(
            "<code>{}</code>",
            esc(device.split('-').next().unwrap_or(device))
        ),
    }
}

fn share_row(s: &ShareView) -> String {
    let members: String = s
        .members
        .iter()
        .map(|m| {
            format!(
                r#"<li data-device="{dev}" data-joined="{joined}">{who}: {j}, {c}</li>"#,
                dev = esc(&m.device),
                joined = m.joined,
                who = who(&m.device, m.name.as_deref()),
                j = if m.joined {
                    "joined"
                } else {
                    "offered, not accepted yet"
                },
                c = if m.connected {
                    r#"<span class="status-ok">connected</span>"#
                } else {
                    "not connected"
                },
            )
        })
        .collect();
    let from = match &s.offered_by {
        None => "this device".to_string(),
        Some(d) => who(d, s.offered_by_name.as_deref()),
    };
    format!(
        r#"<tr id="share-{id}"><th scope="row" class="folder">{folder}<div class="roots">share <code>{id}</code></div></th><td class="mode">{mode}</td><td>{policy}</td><td>{from}</td><td><ul class="members" aria-label="Members of share {id}">{members}</ul></td></tr>"#,
        id = esc(&s.id),
        folder = esc(&s.folder.display().to_string()),
        mode = esc(&s.mode.to_string()),
        policy = esc(&s.conflict_policy.to_string()),
    )
}

fn shares_part(v: &SharesView, viewer: &Viewer) -> String {
    let mut out = String::from(r#"<h2 id="shares-h">Shared folders</h2>"#);
    if v.shares.is_empty() {
        out.push_str("<p>No shared folders yet. Share one with <code>ferry share DIR --with DEVICE</code>.</p>");
    } else {
        out.push_str(r#"<table aria-labelledby="shares-h"><thead><tr><th scope="col">Folder</th><th scope="col">Mode</th><th scope="col">Conflicts</th><th scope="col">Made by</th><th scope="col">Members</th></tr></thead><tbody>"#);
        for s in &v.shares {
            out.push_str(&share_row(s));
        }
        out.push_str("</tbody></table>");
    }
    if v.offers.is_empty() {
        return out;
    }
    out.push_str(r#"<h2 id="offers-h">Offered to this device</h2><ul class="offers" aria-labelledby="offers-h">"#);
    for o in &v.offers {
        out.push_str(&format!(
            r#"<li id="offer-{id}" class="card"><p>{from} offers the folder <strong>{folder}</strong> ({mode}, conflicts: {policy}), share <code>{id}</code>, since {at}.</p>
<form method="post" action="/shares/{id}/accept" class="actions" hx-sync="this:drop">{csrf}<label for="accept-{id}">Accept into folder</label> <input type="text" id="accept-{id}" name="folder" required placeholder="/absolute/path/{folder}" aria-describedby="accept-{id}-help"> <button type="submit">Accept</button> <span class="help roots" id="accept-{id}-help">Created if missing (its parent must exist); files arrive once both devices are connected.</span></form>
<form method="post" action="/shares/{id}/decline" class="actions" hx-sync="this:drop">{csrf}<button type="submit" class="danger decline" aria-label="Decline share {id}">Decline</button></form></li>"#,
            id = esc(&o.share),
            from = who(&o.device, o.name.as_deref()),
            folder = esc(&o.folder_name),
            mode = esc(&o.mode.to_string()),
            policy = esc(&o.conflict_policy.to_string()),
            at = time_el(o.received_at),
            csrf = viewer.csrf_field(),
        ));
    }
    out.push_str("</ul>");
    out
}

fn add_form(viewer: &Viewer) -> String {
    format!(
        r#"<section class="card" id="add-device" aria-labelledby="add-device-h">
<h2 id="add-device-h">Trust a device</h2>
<form method="post" action="/devices" class="settings-form">{csrf}
<label for="device-id">Device ID</label>
<input type="text" id="device-id" name="id" required placeholder="XXXXXXX-XXXXXXX-…" aria-describedby="device-id-help"><span class="help" id="device-id-help">What <code>ferry device id</code> prints on that device.</span>
<label for="device-name">Name</label>
<input type="text" id="device-name" name="name" placeholder="laptop"><span class="help">Optional; the device's own name otherwise.</span>
<label for="device-addr">Address</label>
<input type="text" id="device-addr" name="addr" placeholder="192.168.1.20:22100" aria-describedby="device-addr-help"><span class="help" id="device-addr-help">Optional HOST:PORT (an IP address); without one it is found on the local network (mDNS) or must dial this device.</span>
<span></span><div class="actions"><button type="submit">Trust device</button></div>
</form>
</section>
"#,
        csrf = viewer.csrf_field(),
    )
}
