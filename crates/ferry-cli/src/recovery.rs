//! Getting content back and settling conflicts: `versions`, `restore`, `resolve`,
//! `retention`. The work is in ferry-core; this prints and picks exit codes.

use crate::cli::KeepArg;
use crate::commands::{human_bytes, EXIT_CONFLICTS, EXIT_ERROR, EXIT_OK};
use crate::output;
use anyhow::{bail, Context, Result};
use ferry_core::index::{unix_now, Index};
use ferry_core::model::{display_key, escape_os, key_under};
use ferry_core::resolve::{resolve_all, resolve_path, Keep};
use ferry_core::versions::{prune_location, Retention};
use ferry_core::versions::{restore, versions_of_path};
use serde_json::json;
use std::path::Path;

fn when(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

pub fn cmd_versions(index: &Index, path: Option<&Path>, prune: bool, json_out: bool) -> Result<u8> {
    if prune {
        return cmd_prune(index, json_out);
    }
    let Some(path) = path else {
        bail!("name a file, or use --prune");
    };
    let versions = versions_of_path(index, path)
        .with_context(|| format!("listing versions of {}", path.display()))?;
    if json_out {
        let rows: Vec<_> = versions
            .iter()
            .map(|v| {
                json!({
                    "id": v.row.id,
                    "time": v.row.created_at,
                    "size": v.row.size,
                    "mtime_ns": v.row.mtime_ns,
                    "reason": v.row.reason,
                    "path": display_key(&v.row.path),
                    "location": v.location,
                    "stored_path": escape_os(key_under(&v.location, &v.row.stored_path)),
                })
            })
            .collect();
        output::print_list("versions", &rows)?;
    } else if versions.is_empty() {
        println!("no earlier versions of {}", path.display());
    } else {
        for v in &versions {
            println!(
                "{:>6}  {}  {:>10}  {} (in {})",
                v.row.id,
                when(v.row.created_at),
                human_bytes(v.row.size),
                v.row.reason,
                v.location.display()
            );
        }
    }
    Ok(EXIT_OK)
}

fn cmd_prune(index: &Index, json_out: bool) -> Result<u8> {
    let now = unix_now();
    let mut rows = Vec::new();
    for loc in index.locations()? {
        let policy = Retention::for_location(index, loc.id)?;
        let report = prune_location(index, &loc, policy, now)
            .with_context(|| format!("pruning versions in {}", loc.root.display()))?;
        rows.push(json!({
            "location": loc.root,
            "retention": policy.spec(),
            "versions_removed": report.versions_removed,
            "bytes_freed": report.bytes_freed,
        }));
        if !json_out {
            println!(
                "{}: {} versions removed, {} freed ({})",
                loc.root.display(),
                report.versions_removed,
                human_bytes(report.bytes_freed),
                policy.spec()
            );
        }
    }
    if json_out {
        output::print_list("locations", &rows)?;
    }
    Ok(EXIT_OK)
}

pub fn cmd_restore(
    index: &Index,
    path: &Path,
    version: i64,
    to: Option<&Path>,
    json_out: bool,
) -> Result<u8> {
    let out = restore(index, path, version, to)
        .with_context(|| format!("restoring version {version} of {}", path.display()))?;
    if json_out {
        output::print(serde_json::to_value(&out)?)?;
    } else {
        println!(
            "restored version {} to {}{}{}",
            out.version,
            escape_os(&out.restored_to),
            if out.replaced_kept {
                " (what it replaced is kept as a version)"
            } else {
                ""
            },
            if out.in_synced_folder {
                "; the next sync carries it over"
            } else {
                ""
            }
        );
    }
    Ok(EXIT_OK)
}

pub fn cmd_resolve(
    index: &mut Index,
    path: Option<&Path>,
    all: bool,
    keep: KeepArg,
    json_out: bool,
) -> Result<u8> {
    let keep = match keep {
        KeepArg::A => Keep::A,
        KeepArg::B => Keep::B,
        KeepArg::Both => Keep::Both,
        KeepArg::Newest => Keep::Newest,
        KeepArg::Mine => Keep::Mine,
        KeepArg::Theirs => Keep::Theirs,
    };
    let (done, errors) = match (path, all) {
        (Some(p), false) => (
            resolve_path(index, p, keep).with_context(|| format!("resolving {}", p.display()))?,
            Vec::new(),
        ),
        _ => resolve_all(index, keep)?,
    };
    for e in &errors {
        eprintln!("ferry: warning: {e}");
    }
    // A conflict with another device is carried out by runs of the share's conduit:
    // ask a running daemon for one now (it also announces this device's new entry).
    let mut with_devices: Vec<i64> = done.iter().filter_map(|r| r.run_conduit).collect();
    with_devices.sort_unstable();
    with_devices.dedup();
    let mut daemon_runs = !with_devices.is_empty();
    if !with_devices.is_empty() {
        let library = ferry_core::library::library_dir()?;
        for id in &with_devices {
            match crate::api_client::post(&library, &format!("/api/conduits/{id}/sync")) {
                Ok(Some(_)) => {}
                Ok(None) => daemon_runs = false,
                Err(e) => {
                    eprintln!("ferry: warning: the daemon did not take the run ({e:#})");
                    daemon_runs = false;
                }
            }
        }
    }
    if json_out {
        output::print(json!({"resolved": done, "errors": errors}))?;
    } else {
        for r in &done {
            println!(
                "{}: kept {}{}",
                display_key(&r.path),
                r.kept,
                r.loser_kept_at
                    .as_deref()
                    .map(|k| format!(", the other is kept at {}", display_key(k)))
                    .unwrap_or_default()
            );
        }
        if done.is_empty() && errors.is_empty() {
            println!("no open conflicts");
        } else if !with_devices.is_empty() {
            if daemon_runs {
                println!("the daemon carries the decision to both devices now");
            } else {
                println!("the decision reaches the other device when both run `ferry daemon`");
            }
        } else {
            println!("run `ferry sync` to carry the decision to both folders");
        }
    }
    Ok(if !errors.is_empty() {
        EXIT_ERROR
    } else if index.conflicts(true)?.is_empty() {
        EXIT_OK
    } else {
        EXIT_CONFLICTS
    })
}

pub fn cmd_retention(index: &Index, dir: &Path, spec: Option<&str>, json_out: bool) -> Result<u8> {
    let root = ferry_core::replica::canonical_root(dir)?;
    let loc = index
        .location_by_root(&root)?
        .with_context(|| format!("{} is not a folder ferry syncs", root.display()))?;
    if let Some(spec) = spec {
        index.set_location_retention(loc.id, Some(spec))?;
    }
    let policy = Retention::for_location(index, loc.id)?;
    if json_out {
        output::print(json!({"location": loc.root, "retention": policy.spec()}))?;
    } else {
        println!("{}: {}", loc.root.display(), policy.spec());
    }
    Ok(EXIT_OK)
}
