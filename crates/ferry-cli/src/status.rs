//! `ferry status`: asks the running daemon (live state, jobs) and falls back to the
//! index when none runs.

use crate::commands::{human_bytes, EXIT_OK};
use anyhow::Result;
use ferry_core::index::Index;
use serde_json::{json, Value};

pub fn cmd_status(index: &Index, json_out: bool) -> Result<u8> {
    let library = ferry_core::library::library_dir()?;
    let mut status = match crate::api_client::get(&library, "/api/status") {
        Ok(Some(v)) => v,
        Ok(None) => offline(index)?,
        Err(e) => {
            eprintln!("ferry: warning: daemon did not answer ({e:#}); showing the index");
            offline(index)?
        }
    };
    let running = !status["daemon"].is_null();
    let (devices, live) = devices(&library, running)?;
    let shares = shares(&library, index, running)?;
    status["devices"] = devices;
    status["devices_live"] = json!(live);
    status["shares"] = shares["shares"].clone();
    status["offers"] = shares["offers"].clone();
    if json_out {
        crate::output::print(status)?;
        return Ok(EXIT_OK);
    }
    let d = &status["daemon"];
    if d.is_null() {
        println!("daemon: not running");
    } else {
        println!(
            "daemon: running (pid {}, API 127.0.0.1:{}, up {}s, {} queued)",
            d["pid"], d["port"], d["uptime_seconds"], status["queue_depth"]
        );
    }
    let rows = status["conduits"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("no conduits yet; run `ferry sync A B` or `ferry conduit add A B`");
    }
    for r in &rows {
        let live = match (r["state"].as_str(), r["watch"].as_str()) {
            (Some(s), Some(w)) => format!(" [{s}, {w}]"),
            _ => String::new(),
        };
        let pending = match (
            r["pending"]["files"].as_u64(),
            r["pending"]["bytes"].as_u64(),
        ) {
            (Some(0), _) => "nothing".to_string(),
            (Some(n), Some(b)) => format!("{n} files ({})", human_bytes(b)),
            _ => "unknown (`ferry sync --dry-run` shows it)".to_string(),
        };
        println!(
            "{}: files {}/{}, {} runs, last: {}, open conflicts: {}, pending: {pending}{live}",
            crate::conduit_cmd::conduit_line(r),
            r["files"]["a"],
            r["files"]["b"],
            r["runs"],
            r["last_run"]["status"].as_str().unwrap_or("never"),
            r["open_conflicts"]
        );
        let fod = &r["files_on_demand"];
        if !fod.is_null() {
            println!(
                "  files on demand: {} local, {} online-only, {} pinned, {} hydrating",
                human_bytes(fod["bytes_local"].as_u64().unwrap_or(0)),
                human_bytes(fod["bytes_online_only"].as_u64().unwrap_or(0)),
                fod["pinned"],
                fod["hydrations_in_progress"]
            );
        }
        if let Some(e) = r["last_error"].as_str() {
            println!("  last error: {e}");
        }
    }
    for h in status["hubs"].as_array().into_iter().flatten() {
        let state = if h["connected"] == true {
            format!("connected at {}", h["address"].as_str().unwrap_or("?"))
        } else {
            "not connected".to_string()
        };
        println!(
            "hub {}: {state}, {} shares, {} stored there, {} sent, {} received",
            h["id"].as_str().unwrap_or("?"),
            h["shares"].as_array().map_or(0, Vec::len),
            human_bytes(h["quota_used"].as_u64().unwrap_or(0)),
            human_bytes(h["bytes_up"].as_u64().unwrap_or(0)),
            human_bytes(h["bytes_down"].as_u64().unwrap_or(0)),
        );
    }
    for j in status["jobs"].as_array().into_iter().flatten() {
        println!(
            "  running conduit {} ({}): {} — {} files, {} done, {}/s, ETA {}",
            j["conduit"],
            j["trigger"].as_str().unwrap_or("?"),
            j["phase"].as_str().unwrap_or("?"),
            j["files_done"],
            human_bytes(j["bytes_done"].as_u64().unwrap_or(0)),
            human_bytes(j["rate_bytes_per_sec"].as_u64().unwrap_or(0)),
            j["eta_seconds"]
                .as_f64()
                .map(|s| format!("{s:.0}s"))
                .unwrap_or_else(|| "-".into())
        );
    }
    print_devices_and_shares(&status);
    Ok(EXIT_OK)
}

/// Devices: live from the daemon's node when it runs one, else the stored list (not
/// connected, as far as anyone knows). Whether the list is live.
#[cfg(feature = "net")]
fn devices(library: &std::path::Path, running: bool) -> Result<(Value, bool)> {
    if running {
        match crate::api_client::get(library, "/api/devices") {
            Ok(Some(v)) if v["devices"].is_array() => return Ok((v["devices"].clone(), true)),
            Ok(_) => {}
            Err(e) => tracing::debug!("no live device list from the daemon: {e:#}"),
        }
    }
    Ok((
        serde_json::to_value(ferry_net::status::offline(library)?)?,
        false,
    ))
}

#[cfg(not(feature = "net"))]
fn devices(_library: &std::path::Path, _running: bool) -> Result<(Value, bool)> {
    Ok((json!([]), false))
}

/// Shares with their members and offers: the daemon's view when it runs (members
/// connected or not), else the index's.
fn shares(library: &std::path::Path, index: &Index, running: bool) -> Result<Value> {
    if running {
        match crate::api_client::get(library, "/api/shares") {
            Ok(Some(v)) if v["shares"].is_array() => return Ok(v),
            Ok(_) => {}
            Err(e) => tracing::debug!("no share list from the daemon: {e:#}"),
        }
    }
    let facts = ferry_daemon::devices::device_facts(None, library);
    let lookup = |d: &str| facts.get(d).cloned().unwrap_or_default();
    Ok(serde_json::to_value(ferry_daemon::devices::shares_view(
        index, &lookup,
    )?)?)
}

/// A device's name, else the first group of its ID.
fn device_label(name: &Value, id: &str) -> String {
    match name.as_str() {
        Some(n) => n.to_string(),
        None => id.split('-').next().unwrap_or(id).to_string(),
    }
}

/// The devices and shares section, when the library has any.
fn print_devices_and_shares(status: &Value) {
    let empty = Vec::new();
    let devices = status["devices"].as_array().unwrap_or(&empty);
    let shares = status["shares"].as_array().unwrap_or(&empty);
    let offers = status["offers"].as_array().unwrap_or(&empty);
    let live = status["devices_live"] == true;
    if !devices.is_empty() {
        println!("devices:");
    }
    for d in devices {
        let id = d["id"].as_str().unwrap_or_default();
        let state = if d["state"] == "pending" {
            "pending: refused, accept with `ferry device add ID`".to_string()
        } else if d["connected"] == true {
            let mut s = format!(
                "connected, {}",
                d["path"].as_str().unwrap_or("path unknown")
            );
            if let Some(a) = d["address"].as_str() {
                s.push_str(&format!(", {a}"));
            }
            if let Some(ms) = d["rtt_ms"].as_f64() {
                s.push_str(&format!(", rtt {ms:.1} ms"));
            }
            s
        } else if live {
            "not connected".to_string()
        } else {
            "known (no daemon with --listen: connection unknown)".to_string()
        };
        println!("  {}: {state}  {id}", device_label(&d["name"], id));
    }
    if !shares.is_empty() {
        println!("shares:");
    }
    for s in shares {
        println!(
            "  {} ({}, share {})",
            s["folder"].as_str().unwrap_or_default(),
            s["mode"].as_str().unwrap_or_default(),
            s["id"].as_str().unwrap_or_default()
        );
        for m in s["members"].as_array().unwrap_or(&empty) {
            let id = m["device"].as_str().unwrap_or_default();
            let joined = if m["joined"] == true {
                "joined"
            } else {
                "offered, not accepted yet"
            };
            let connected = if m["connected"] == true {
                ", connected"
            } else {
                ""
            };
            println!("    {}: {joined}{connected}", device_label(&m["name"], id));
        }
    }
    for o in offers {
        let share = o["share"].as_str().unwrap_or_default();
        println!(
            "offer {share} from {}: folder {:?} ({}); accept with `ferry accept {share} DIR`",
            device_label(&o["name"], o["device"].as_str().unwrap_or_default()),
            o["folder_name"].as_str().unwrap_or_default(),
            o["mode"].as_str().unwrap_or_default(),
        );
    }
}

fn offline(index: &Index) -> Result<Value> {
    Ok(json!({
        "daemon": null,
        "conduits": ferry_daemon::views::conduits(index, None)?,
        "jobs": [],
        "queue_depth": 0,
    }))
}
