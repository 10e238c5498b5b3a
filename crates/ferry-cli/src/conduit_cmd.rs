//! `ferry conduit add|set|list|show|pause|resume|remove`: saved conduits in the index.
//! A running daemon hears of every change at once: pause and resume go through its API
//! (which also stops a running job at its next safe point), and after an add or a
//! remove it is asked to re-read the conduits.

use crate::cli::{ConduitAddArgs, ConduitCommand, ConduitSetArgs};
use crate::commands::{human_bytes, EXIT_OK};
use crate::config::Config;
use crate::output::{self, NotFound};
use anyhow::{Context, Result};
use ferry_core::conduit::format_rate;
use ferry_core::conduit::{add_conduit, change_conduit, ConduitSettings, SettingsChange};
use ferry_core::index::{ConduitRow, Index};
use serde_json::json;

pub fn run(index: &mut Index, cmd: &ConduitCommand, config: &Config, json_out: bool) -> Result<u8> {
    match cmd {
        ConduitCommand::Add(args) => add(index, args, config, json_out),
        ConduitCommand::Set(args) => set(index, args, json_out),
        ConduitCommand::List => {
            let rows = index
                .conduits()?
                .iter()
                .map(|c| conduit_json(index, c))
                .collect::<Result<Vec<_>>>()?;
            if json_out {
                output::print_list("conduits", &rows)?;
            } else if rows.is_empty() {
                println!("no conduits yet; add one with `ferry conduit add A B`");
            } else {
                for r in &rows {
                    println!("{}", conduit_line(r));
                }
            }
            Ok(EXIT_OK)
        }
        ConduitCommand::Show { id } => {
            let c = get(index, *id)?;
            let mut v = conduit_json(index, &c)?;
            let runs: Vec<_> = index
                .generations(10_000)?
                .into_iter()
                .filter(|g| g.conduit_id == c.id)
                .take(5)
                .collect();
            v["recent_runs"] = serde_json::to_value(&runs)?;
            if json_out {
                output::print(v)?;
            } else {
                println!("{}", conduit_line(&v));
                for g in &runs {
                    println!(
                        "  run {} [{}, {}]: {} copied, {} deleted, {} moved",
                        g.number,
                        g.status,
                        g.trigger,
                        g.stats.files_copied,
                        g.stats.files_deleted,
                        human_bytes(g.stats.bytes_transferred)
                    );
                }
            }
            Ok(EXIT_OK)
        }
        ConduitCommand::Pause { id } => set_paused(index, *id, true, json_out),
        ConduitCommand::Resume { id } => set_paused(index, *id, false, json_out),
        ConduitCommand::Remove { id } => {
            if !index.remove_conduit(*id)? {
                return Err(NotFound(format!("no conduit {id}; see `ferry conduit list`")).into());
            }
            crate::api_client::reload(&ferry_core::library::library_dir()?);
            if json_out {
                output::print(json!({"conduit": id, "removed": true}))?;
            } else {
                println!("conduit {id} removed (its folders and files are untouched)");
            }
            Ok(EXIT_OK)
        }
    }
}

fn get(index: &Index, id: i64) -> Result<ConduitRow> {
    index
        .conduit(id)?
        .ok_or_else(|| NotFound(format!("no conduit {id}; see `ferry conduit list`")).into())
}

fn add(index: &mut Index, args: &ConduitAddArgs, config: &Config, json_out: bool) -> Result<u8> {
    // The same code path as the daemon's API and dashboard (ferry-core's conduit_edit).
    let settings = ConduitSettings {
        mode: args.mode.map(|m| m.mode()),
        policy: args.conflict.map(|p| p.policy()),
        schedule: args.schedule,
        parallel: args.transfer.parallel,
        bandwidth_limit: args.transfer.bandwidth_limit,
        index_everything: args.indexing.index_everything(),
        retention: args.retention.clone(),
        selective: (args.local_quota.is_some() || args.min_free.is_some()).then_some(
            ferry_core::on_demand::SelectiveSettings {
                local_quota: args.local_quota,
                min_free_percent: args.min_free,
            },
        ),
    };
    let added = add_conduit(
        index,
        &args.a,
        &args.b,
        &settings,
        &config.conduit_defaults(),
    )
    .with_context(|| format!("adding {} ⇄ {}", args.a.display(), args.b.display()))?;
    for m in &added.notes {
        eprintln!("ferry: note: {m}");
    }
    crate::api_client::reload(&ferry_core::library::library_dir()?);
    let v = conduit_json(index, &added.conduit)?;
    if json_out {
        let mut v = v;
        v["added"] = json!(!added.existed);
        output::print(v)?;
    } else {
        println!(
            "{} {}",
            if added.existed { "updated" } else { "added" },
            conduit_line(&v)
        );
    }
    Ok(EXIT_OK)
}

/// `ferry conduit set`: the daemon's settings change (`conduit_edit::change_conduit`),
/// then a running daemon re-reads it.
fn set(index: &mut Index, args: &ConduitSetArgs, json_out: bool) -> Result<u8> {
    let change = SettingsChange {
        mode: args.mode.map(|m| m.mode()),
        policy: args.conflict.map(|p| p.policy()),
        schedule: args.schedule,
        parallel: args.transfer.parallel,
        bandwidth_limit: args.transfer.bandwidth_limit,
    };
    let c = change_conduit(index, args.id, &change)
        .with_context(|| format!("changing conduit {}", args.id))?
        .ok_or_else(|| NotFound(format!("no conduit {}; see `ferry conduit list`", args.id)))?;
    crate::api_client::reload(&ferry_core::library::library_dir()?);
    let v = conduit_json(index, &c)?;
    if json_out {
        output::print(v)?;
    } else {
        println!("updated {}", conduit_line(&v));
    }
    Ok(EXIT_OK)
}

fn set_paused(index: &Index, id: i64, paused: bool, json_out: bool) -> Result<u8> {
    if index.conduit(id)?.is_none() {
        return Err(NotFound(format!("no conduit {id}; see `ferry conduit list`")).into());
    }
    // Through a running daemon, so it acts at once; else in the index, where a daemon
    // started later finds it.
    let library = ferry_core::library::library_dir()?;
    let verb = if paused { "pause" } else { "resume" };
    let told = match crate::api_client::post(&library, &format!("/api/conduits/{id}/{verb}")) {
        Ok(answer) => answer.is_some(),
        Err(e) => {
            eprintln!("ferry: warning: the daemon did not take it ({e:#}); saving it in the index");
            false
        }
    };
    if !told && !index.set_conduit_paused(id, paused)? {
        return Err(NotFound(format!("no conduit {id}; see `ferry conduit list`")).into());
    }
    if json_out {
        output::print(json!({"conduit": id, "paused": paused}))?;
    } else if paused {
        println!("conduit {id} paused");
    } else {
        println!("conduit {id} resumed");
    }
    Ok(EXIT_OK)
}

/// A conduit's settings as JSON (the shape `conduit list --json` and `status --json` use).
pub fn conduit_json(index: &Index, c: &ConduitRow) -> Result<serde_json::Value> {
    let (la, lb) = (index.location(c.location_a)?, index.location(c.location_b)?);
    Ok(json!({
        "conduit": c.id,
        "a": la.root, "b": lb.root,
        "mode": c.mode,
        "conflict_policy": c.conflict_policy,
        "schedule": c.schedule,
        "parallel": c.parallel,
        "bandwidth_limit": c.bandwidth_limit,
        "paused": c.paused,
        "index_everything": c.index_everything,
        "retention": c.retention,
        "runs": c.generation,
    }))
}

pub fn conduit_line(v: &serde_json::Value) -> String {
    let bw = v["bandwidth_limit"].as_u64().unwrap_or(0);
    format!(
        "conduit {}: {} {} {} ({}, {}, conflicts: {}{}{}){}",
        v["conduit"],
        ferry_core::model::display_key(v["a"].as_str().unwrap_or("?")),
        if v["mode"] == "mirror" { "→" } else { "⇄" },
        ferry_core::model::display_key(v["b"].as_str().unwrap_or("?")),
        v["mode"].as_str().unwrap_or("?"),
        v["schedule"].as_str().unwrap_or("?"),
        v["conflict_policy"].as_str().unwrap_or("?"),
        match v["parallel"].as_u64() {
            Some(n) if n > 0 => format!(", {n} at once"),
            _ => String::new(),
        },
        if bw > 0 {
            format!(", limit {}", format_rate(bw))
        } else {
            String::new()
        },
        if v["paused"] == true { " [paused]" } else { "" }
    )
}
