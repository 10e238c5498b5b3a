//! `ferry device id|add|list|remove`: this device's ID and the devices it trusts
//! (ferry-net's store under the library). `list` asks a running daemon for the live
//! view (connected, path, RTT) and falls back to the stored list without one.

use crate::cli::DeviceCommand;
use crate::commands::EXIT_OK;
use crate::output::{self, NotFound};
use anyhow::{Context, Result};
use ferry_net::{DeviceStatus, DeviceStore, Identity, Removed, StoreError};
use serde_json::{json, Value};
use std::path::Path;

pub fn run(cmd: &DeviceCommand, json_out: bool) -> Result<u8> {
    let home = ferry_core::library::library_dir()?;
    match cmd {
        DeviceCommand::Id => {
            let me = Identity::load_or_create(&home).context("this device's key")?;
            if json_out {
                output::print(json!({"device_id": me.id(), "name": ferry_net::host_name()}))?;
            } else {
                println!("{}", me.id());
            }
        }
        DeviceCommand::Add {
            id,
            name,
            addrs,
            bandwidth_limit,
        } => {
            let me = Identity::load_or_create(&home).context("this device's key")?;
            if *id == me.id() {
                anyhow::bail!("{id} is this device's own ID; add the ID of another device");
            }
            let mut store = DeviceStore::open(&home).context("opening the devices store")?;
            let was_pending = store.pending()?.iter().any(|p| p.id == *id);
            let added = store.add(*id, name.as_deref(), addrs, unix_now())?;
            if let Some(limit) = bandwidth_limit {
                store.set_bandwidth(id, limit)?;
            }
            if json_out {
                let mut device = DeviceStatus::known(&added);
                device.show_limit(store.bandwidth_limits()?.get(id));
                output::print(json!({
                    "device": device,
                    "accepted_pending": was_pending,
                }))?;
            } else {
                let what = if was_pending {
                    "accepted pending device"
                } else {
                    "added device"
                };
                println!(
                    "{what} {}",
                    label(added.name.as_deref(), &added.id.to_string())
                );
                if added.addresses.is_empty() {
                    println!(
                        "  no address: found on the local network (mDNS), or it must dial this device (or add one with --addr HOST:PORT)"
                    );
                }
            }
        }
        DeviceCommand::List => list(&home, json_out)?,
        DeviceCommand::Remove { device } => {
            let Some(mut store) = DeviceStore::open_existing(&home)? else {
                return Err(not_found(device).into());
            };
            let removed = store.remove(device).map_err(|e| match e {
                StoreError::NotFound(d) => anyhow::Error::new(not_found(&d)),
                e => e.into(),
            })?;
            let (id, name, state) = match &removed {
                Removed::Known(k) => (k.id, k.name.clone(), "known"),
                Removed::Pending(p) => (p.id, p.name.clone(), "pending"),
            };
            if json_out {
                output::print(json!({"removed": {"id": id, "name": name, "state": state}}))?;
            } else {
                println!(
                    "removed {state} device {}",
                    label(name.as_deref(), &id.to_string())
                );
            }
        }
    }
    Ok(EXIT_OK)
}

fn not_found(device: &str) -> NotFound {
    NotFound(format!("no device {device:?}; see `ferry device list`"))
}

/// The daemon's live listing when it runs a node; else the stored one.
fn list(home: &Path, json_out: bool) -> Result<()> {
    let live = match crate::api_client::get(home, "/api/devices") {
        Ok(Some(v)) if v["devices"].is_array() => Some(v),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!("no live device list from the daemon: {e:#}");
            None
        }
    };
    let (rows, node) = match live {
        Some(v) => (v["devices"].clone(), Some(v["node"].clone())),
        None => (
            serde_json::to_value(ferry_net::status::offline(home)?)?,
            None,
        ),
    };
    if json_out {
        output::print(json!({"devices": rows, "live": node.is_some(), "node": node}))?;
        return Ok(());
    }
    let rows = rows.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!(
            "no devices yet; add one with `ferry device add ID` (this device: `ferry device id`)"
        );
    }
    for r in &rows {
        println!("{}", line(r, node.is_some()));
    }
    if node.is_none() && !rows.is_empty() {
        println!("(no daemon with --listen runs: connection state unknown)");
    }
    Ok(())
}

fn line(r: &Value, live: bool) -> String {
    let id = r["id"].as_str().unwrap_or_default();
    let name = label(r["name"].as_str(), id);
    let state = if r["state"] == "pending" {
        "pending (refused; accept with `ferry device add ID`)".to_string()
    } else if r["connected"] == true {
        let mut s = format!(
            "connected, {}",
            r["path"].as_str().unwrap_or("unknown path")
        );
        if let Some(a) = r["address"].as_str() {
            s.push_str(&format!(", {a}"));
        }
        if let Some(ms) = r["rtt_ms"].as_f64() {
            s.push_str(&format!(", rtt {ms:.1} ms"));
        }
        s
    } else if live {
        "not connected".to_string()
    } else {
        "known".to_string()
    };
    let seen = match r["last_seen"].as_i64() {
        Some(t) => format!("last seen {}", ago(unix_now() - t)),
        None => "never seen".to_string(),
    };
    format!("{name}  {state}  {seen}\n  {id}")
}

fn label(name: Option<&str>, id: &str) -> String {
    match name {
        Some(n) => n.to_string(),
        None => id.split('-').next().unwrap_or(id).to_string(),
    }
}

fn ago(secs: i64) -> String {
    match secs {
        s if s < 5 => "now".into(),
        s if s < 120 => format!("{s} s ago"),
        s if s < 7200 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

fn unix_now() -> i64 {
    ferry_core::index::unix_now()
}
