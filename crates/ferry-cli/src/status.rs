//! `ferry status`: asks the running daemon (live state, jobs) and falls back to the
//! index when none runs.

use crate::commands::{human_bytes, EXIT_OK};
use anyhow::Result;
use ferry_core::index::Index;
use serde_json::{json, Value};

pub fn cmd_status(index: &Index, json_out: bool) -> Result<u8> {
    let library = ferry_core::library::library_dir()?;
    let status = match crate::api_client::get(&library, "/api/status") {
        Ok(Some(v)) => v,
        Ok(None) => offline(index)?,
        Err(e) => {
            eprintln!("ferry: warning: daemon did not answer ({e:#}); showing the index");
            offline(index)?
        }
    };
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
        if let Some(e) = r["last_error"].as_str() {
            println!("  last error: {e}");
        }
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
    Ok(EXIT_OK)
}

fn offline(index: &Index) -> Result<Value> {
    Ok(json!({
        "daemon": null,
        "conduits": ferry_daemon::views::conduits(index, None)?,
        "jobs": [],
        "queue_depth": 0,
    }))
}
