//! Files on demand: `ferry pin|unpin|free-up|keep-offline|ls` and, with the `fuse`
//! feature, `ferry mount|unmount`. The work is in ferry-core's `on_demand` (and
//! ferry-fuse for the mount).

use crate::commands::{human_bytes, EXIT_ERROR, EXIT_OK};
use crate::output;
use anyhow::{bail, Context, Result};
use ferry_core::index::Index;
use ferry_core::model::{escape_os, RelPath};
use ferry_core::on_demand::{self, OnDemandReport, SelectivePair};
use serde_json::json;
use std::path::Path;

fn locate(index: &Index, path: &Path) -> Result<(SelectivePair, Option<RelPath>)> {
    SelectivePair::locate_or_root(index, path)
        .with_context(|| format!("looking up {}", escape_os(path)))
}

/// `ferry pin PATH` / `ferry unpin PATH`.
pub fn pin(index: &Index, path: &Path, pin: bool, json_out: bool) -> Result<u8> {
    let (pair, rel) = locate(index, path)?;
    let Some(rel) = rel else {
        bail!(
            "{} is the whole folder; pin the files or folders inside it",
            escape_os(path)
        );
    };
    if pin {
        index.pin(pair.a.id(), &rel)?;
    } else {
        index.unpin(pair.a.id(), &rel)?;
    }
    let pinned = on_demand::is_pinned(&index.pins(pair.a.id())?, &rel);
    if json_out {
        output::print(json!({ "path": rel.as_str(), "pinned": pinned }))?;
    } else if !pin && pinned {
        println!("{rel}: still pinned (a folder above it is pinned)");
    } else {
        println!("{rel}: {}", if pinned { "pinned" } else { "not pinned" });
    }
    Ok(EXIT_OK)
}

fn report(verb: &str, r: &OnDemandReport, json_out: bool) -> Result<u8> {
    if json_out {
        let skipped: Vec<_> = (r.skipped.iter())
            .map(|(p, why)| json!({ "path": p, "reason": why }))
            .collect();
        output::print(json!({
            "files": r.files, "bytes": r.bytes, "skipped": skipped, "pinned": r.pinned,
        }))?;
    } else {
        println!("{verb} {} file(s), {}", r.files, human_bytes(r.bytes));
        if r.pinned > 0 {
            println!("{} pinned file(s) kept local (ferry unpin PATH)", r.pinned);
        }
        for (p, why) in &r.skipped {
            eprintln!("ferry: {p}: {why}");
        }
    }
    Ok(if r.skipped.is_empty() {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}

/// Tells a running daemon of this library about a hydration or dehydration, for its
/// event stream (`POST /api/ondemand/events`). Best effort: no daemon, nothing to do.
fn tell_daemon(conduit: i64, by: &str, event: serde_json::Value) {
    let Ok(library) = ferry_core::library::library_dir() else {
        return;
    };
    let mut body = event;
    body["conduit"] = json!(conduit);
    body["by"] = json!(by);
    if let Err(e) = crate::api_client::post_json(&library, "/api/ondemand/events", &body) {
        tracing::debug!("could not tell the daemon: {e:#}");
    }
}

fn tell_hydration(conduit: i64, by: &str, ev: &on_demand::HydrationEvent) {
    if let Ok(v) = serde_json::to_value(ev) {
        tell_daemon(conduit, by, v);
    }
}

/// `ferry free-up PATH`.
pub fn free_up(index: &mut Index, path: &Path, json_out: bool) -> Result<u8> {
    let (pair, rel) = locate(index, path)?;
    let r = on_demand::free_up(index, &pair, rel.as_ref())?;
    if !r.paths.is_empty() {
        let ev = json!({"type": "files_dehydrated", "bytes": r.bytes, "paths": r.paths});
        tell_daemon(pair.conduit.id, "free-up", ev);
    }
    report("freed up", &r, json_out)
}

/// `ferry keep-offline PATH`.
pub fn keep_offline(index: &mut Index, path: &Path, json_out: bool) -> Result<u8> {
    let (pair, rel) = locate(index, path)?;
    let id = pair.conduit.id;
    let r = on_demand::keep_offline_reporting(index, &pair, rel.as_ref(), &|ev| {
        tell_hydration(id, "keep-offline", &ev)
    })?;
    report("made available offline", &r, json_out)
}

/// `ferry ls [PATH]`.
pub fn ls(index: &Index, path: Option<&Path>, json_out: bool) -> Result<u8> {
    let here = std::env::current_dir().context("reading the current folder")?;
    let (pair, rel) = locate(index, path.unwrap_or(&here))?;
    let rows = on_demand::list(index, &pair, rel.as_ref())?;
    if json_out {
        let rows: Vec<_> = (rows.iter())
            .map(|s| {
                json!({
                    "path": s.path, "kind": s.kind, "size": s.size, "local": s.local,
                    "online_only": !s.local, "pinned": s.pinned, "syncing": s.syncing,
                    "state": state_words(s),
                })
            })
            .collect();
        return output::print(json!({ "root": pair.a.root, "entries": rows })).map(|_| EXIT_OK);
    }
    for s in &rows {
        let size = match s.kind {
            ferry_core::model::EntryKind::File => human_bytes(s.size),
            _ => String::new(),
        };
        println!("{:<28} {:>10}  {}", state_words(s), size, s.path);
    }
    Ok(EXIT_OK)
}

/// `local`, `online-only`, plus `pinned` and `syncing` where they apply.
fn state_words(s: &on_demand::PathState) -> String {
    let mut w = vec![if s.kind != ferry_core::model::EntryKind::File || s.local {
        "local"
    } else {
        "online-only"
    }];
    if s.pinned {
        w.push("pinned");
    }
    if s.syncing {
        w.push("syncing");
    }
    w.join(",")
}

/// `ferry mount DIR MOUNTPOINT`: runs until unmounted (or SIGINT/SIGTERM).
#[cfg(feature = "fuse")]
pub fn mount(index: Index, args: &crate::cli::MountArgs) -> Result<u8> {
    let (pair, rel) = locate(&index, &args.dir)?;
    if rel.is_some() {
        bail!(
            "{} is inside a selective folder; mount the folder itself ({})",
            escape_os(&args.dir),
            escape_os(&pair.a.root)
        );
    }
    drop(index);
    // Hydrations are told to a running daemon from a thread of their own, so the
    // mount's threads never wait on it.
    let (tx, rx) = std::sync::mpsc::channel::<on_demand::HydrationEvent>();
    let id = pair.conduit.id;
    std::thread::spawn(move || {
        for ev in rx {
            tell_hydration(id, "mount", &ev);
        }
    });
    let opts = ferry_fuse::MountOptions {
        read_timeout: args.read_timeout,
        events: Some(std::sync::Arc::new(move |ev| {
            let _ = tx.send(ev);
        })),
    };
    let index_path = ferry_core::library::library_dir()?.join("index.db");
    ferry_fuse::mount_foreground(&index_path, &pair.conduit, &args.mountpoint, opts)?;
    Ok(EXIT_OK)
}

/// `ferry unmount MOUNTPOINT`.
#[cfg(feature = "fuse")]
pub fn unmount(mountpoint: &Path) -> Result<u8> {
    ferry_fuse::unmount(mountpoint)?;
    Ok(EXIT_OK)
}
