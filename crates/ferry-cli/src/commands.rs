//! What each subcommand does: call ferry-core, print text or JSON, pick the exit code.

use crate::cli::{Cli, Command, ConduitCommand, HistoryArgs, HistoryCommand, SyncArgs};
use crate::config::Config;
use crate::output::{self, item_line, NotFound};
use crate::progress_bar::Bar;
use crate::signals::Interrupt;
use anyhow::{Context, Result};
use ferry_core::index::Index;
use ferry_core::model::{display_key, escape_os};
use ferry_core::plan::plan_items;
use ferry_core::plan::SyncMode;
use ferry_core::{sync, sync_conduit, NewConduitDefaults, SyncOptions, SyncOutcome};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

pub use crate::exit::{EXIT_CONFLICTS, EXIT_ERROR, EXIT_OK};

pub fn run(cli: &Cli) -> Result<u8> {
    // These need no library.
    match &cli.command {
        Command::Completions { shell } => return crate::install::completions(*shell),
        Command::Man { dir } => return crate::install::man(dir.as_deref(), cli.quiet),
        _ => {}
    }
    let config = crate::config::load()?;
    if let Some(p) = &config.path {
        tracing::info!("config file {}", escape_os(p));
    }
    if let Some((given, abs)) = ferry_core::library::relative_home() {
        if !cli.quiet {
            eprintln!(
                "ferry: note: FERRY_HOME={} is relative; using {} (set an absolute path to use one library from everywhere)",
                escape_os(given),
                escape_os(abs)
            );
        }
    }
    #[cfg(feature = "net")]
    if let Command::Device(cmd) = &cli.command {
        return crate::device_cmd::run(cmd, cli.json);
    }
    #[cfg(feature = "net")]
    if let Command::Share(args) = &cli.command {
        return crate::share_cmd::share(args, cli.json);
    }
    #[cfg(feature = "hub")]
    if let Command::Hub(cmd) = &cli.command {
        return crate::hub_cmd::run(cmd, cli.json);
    }
    #[cfg(feature = "net")]
    if let Command::Accept { share, dir } = &cli.command {
        return crate::share_cmd::accept(share, dir, cli.json);
    }
    // Only commands that write create a library; reading ones (and dry runs) plan
    // against an empty index where there is none.
    let creates = match &cli.command {
        Command::Sync(args) => !args.dry_run,
        Command::Demo { .. } | Command::Scan { .. } | Command::Daemon(_) => true,
        Command::Conduit(ConduitCommand::Add(_)) => true,
        _ => false,
    };
    let mut index = if creates {
        ferry_core::library::open_index()
    } else {
        ferry_core::library::open_existing_index()
    }
    .context("opening the library")?;
    match &cli.command {
        Command::Sync(args) => cmd_sync(&mut index, args, &config, cli),
        Command::Demo { dir, yes } => cmd_demo(&mut index, dir, *yes, &config, cli),
        Command::Scan {
            dir,
            index_everything,
        } => cmd_scan(&mut index, dir, *index_everything, cli),
        Command::Status => crate::status::cmd_status(&index, cli.json),
        Command::Conduit(c) => crate::conduit_cmd::run(&mut index, c, &config, cli.json),
        Command::Daemon(args) => crate::daemon_cmd::run(index, args, &config),
        Command::Conflicts { all } => cmd_conflicts(&index, *all, cli.json),
        Command::Resolve { path, all, keep } => {
            crate::recovery::cmd_resolve(&mut index, path.as_deref(), *all, *keep, cli.json)
        }
        Command::Versions { path, prune } => {
            crate::recovery::cmd_versions(&index, path.as_deref(), *prune, cli.json)
        }
        Command::Restore { path, version, to } => {
            crate::recovery::cmd_restore(&index, path, *version, to.as_deref(), cli.json)
        }
        Command::Retention { dir, spec } => {
            crate::recovery::cmd_retention(&index, dir, spec.as_deref(), cli.json)
        }
        Command::History(args) => cmd_history(&index, args, cli.json),
        Command::Completions { .. } | Command::Man { .. } => Ok(EXIT_OK),
        Command::Dashboard => crate::dashboard_cmd::run(cli.json),
        Command::Pin { path } => crate::ondemand_cmd::pin(&index, path, true, cli.json),
        Command::Unpin { path } => crate::ondemand_cmd::pin(&index, path, false, cli.json),
        Command::FreeUp { path } => crate::ondemand_cmd::free_up(&mut index, path, cli.json),
        Command::KeepOffline { path } => {
            crate::ondemand_cmd::keep_offline(&mut index, path, cli.json)
        }
        Command::Ls { path } => crate::ondemand_cmd::ls(&index, path.as_deref(), cli.json),
        #[cfg(feature = "fuse")]
        Command::Mount(args) => crate::ondemand_cmd::mount(index, args),
        #[cfg(feature = "fuse")]
        Command::Unmount { mountpoint } => crate::ondemand_cmd::unmount(mountpoint),
        #[cfg(feature = "net")]
        Command::Device(_) => Ok(EXIT_OK), // handled above
        #[cfg(feature = "net")]
        Command::Share(_) | Command::Accept { .. } => Ok(EXIT_OK), // handled above
        #[cfg(feature = "hub")]
        Command::Hub(_) => Ok(EXIT_OK), // handled above
    }
}

/// Defaults the config file gives conduits a run creates.
fn new_conduit_defaults(config: &Config) -> NewConduitDefaults {
    NewConduitDefaults {
        policy: config.conflict,
        retention: config.retention.clone(),
    }
}

fn cmd_sync(index: &mut Index, args: &SyncArgs, config: &Config, cli: &Cli) -> Result<u8> {
    if let Some(share) = &args.share {
        #[cfg(feature = "net")]
        return crate::share_cmd::sync_share(index, share, args, cli.json);
        #[cfg(not(feature = "net"))]
        anyhow::bail!("sync --share {share}: this ferry was built without devices (feature `net`)");
    }
    let opts = SyncOptions {
        mode: args.mode.map(|m| m.mode()),
        policy: args.conflict.map(|p| p.policy()),
        index_everything: args.indexing.index_everything(),
        parallel: args.transfer.parallel,
        bandwidth_limit: args.transfer.bandwidth_limit,
        retention: args.retention.clone(),
        dry_run: args.dry_run,
        yes: args.yes,
        new_conduit: new_conduit_defaults(config),
        // Paths per batch of a large run (benchmarks compare batch sizes with it).
        batch_paths: std::env::var("FERRY_PLAN_BATCH")
            .ok()
            .and_then(|v| v.parse().ok()),
        ..Default::default()
    };
    match (args.conduit, &args.a, &args.b) {
        (Some(id), ..) => {
            let c = index
                .conduit(id)?
                .ok_or_else(|| NotFound(format!("no conduit {id}; see `ferry conduit list`")))?;
            let a = index.location(c.location_a)?.root;
            let b = index.location(c.location_b)?.root;
            run_sync(index, &a, &b, Some(id), opts, cli)
        }
        (None, Some(a), Some(b)) => run_sync(index, a, b, None, opts, cli),
        _ => anyhow::bail!("name two folders, or a conduit with --conduit ID"),
    }
}

/// Runs a sync that SIGINT/SIGTERM stop at a safe point, and reports it.
fn run_sync(
    index: &mut Index,
    a: &Path,
    b: &Path,
    conduit: Option<i64>,
    mut opts: SyncOptions,
    cli: &Cli,
) -> Result<u8> {
    let json_out = cli.json;
    let interrupt = Interrupt::install()?;
    opts.cancel = Some(interrupt.cancel.clone());
    let opts = &opts;
    let started = Instant::now();
    let bar = Bar::new(!json_out && !cli.quiet);
    let result = match conduit {
        Some(id) => sync_conduit(index, id, opts, &bar),
        None => sync(index, a, b, opts, &bar),
    };
    bar.finish();
    let outcome =
        result.with_context(|| format!("syncing {} and {}", escape_os(a), escape_os(b)))?;
    let seconds = started.elapsed().as_secs_f64();
    if !opts.dry_run {
        // A running daemon picks up new conduits, settings and moved roots now.
        crate::api_client::reload(&ferry_core::library::library_dir()?);
    }
    for e in &outcome.problems {
        eprintln!("ferry: warning: {e}");
    }
    if !cli.quiet {
        for m in outcome.info.iter().chain(&outcome.notes) {
            eprintln!("ferry: note: {m}");
        }
    }
    if outcome.interrupted {
        eprintln!(
            "ferry: interrupted{}",
            if opts.dry_run {
                ""
            } else {
                " — run again to resume"
            }
        );
        if json_out {
            output::print(sync_json(&outcome, seconds, cli.verbose > 0))?;
        }
        return Ok(interrupt.exit_code());
    }
    if cli.quiet && !json_out {
        return Ok(exit_code_of(&outcome));
    }
    let verbose = cli.verbose > 0;
    if json_out {
        output::print(sync_json(&outcome, seconds, verbose))?;
    } else {
        if outcome.dry_run {
            for it in plan_items(&outcome.plan) {
                println!("{}", item_line(&it));
            }
        } else if verbose {
            for it in &outcome.done {
                println!("{}", item_line(it));
            }
            if outcome.done_omitted > 0 {
                println!(
                    "… and {} more (all of them: ferry history show {})",
                    outcome.done_omitted,
                    outcome.generation_id.unwrap_or_default()
                );
            }
        }
        println!("{}", sync_line(&outcome, seconds));
        for c in outcome.plan.conflicts.iter().filter(|c| c.winner.is_none()) {
            println!(
                "conflict: {} (left untouched; see `ferry conflicts`)",
                c.path
            );
        }
    }
    Ok(exit_code_of(&outcome))
}

fn exit_code_of(outcome: &SyncOutcome) -> u8 {
    if !outcome.problems.is_empty() {
        EXIT_ERROR
    } else if outcome.open_conflicts() > 0 {
        EXIT_CONFLICTS
    } else {
        EXIT_OK
    }
}

fn planned_counts(o: &SyncOutcome) -> serde_json::Value {
    let c = &o.planned;
    json!({"copy": c.copy, "delete": c.delete, "rename": c.rename, "mkdir": c.mkdir, "move_aside": c.move_aside, "archive": c.archive})
}

/// The `--json` document of a run. Counters carry the names history and the daemon's
/// events use (`files_copied`, `bytes_transferred`, `error_count`, …); `actions` lists
/// every action of a dry run's plan, or with `-v` what the run did.
fn sync_json(o: &SyncOutcome, seconds: f64, verbose: bool) -> serde_json::Value {
    let mut v = json!({
        "a": o.roots[0], "b": o.roots[1],
        "conduit": o.conduit_id,
        "generation": o.generation_id,
        "mode": o.mode.as_str(),
        "conflict_policy": o.policy.as_str(),
        "dry_run": o.dry_run,
        "planned": planned_counts(o),
        "open_conflicts": o.open_conflicts(),
        "scanned": {"a": o.scan_a.entries, "b": o.scan_b.entries},
        "hashed_bytes": o.scan_a.hashed_bytes + o.scan_b.hashed_bytes,
        "errors": o.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "problems": o.problems,
        "notes": o.notes,
        "info": o.info,
        "seconds": seconds,
        "interrupted": o.interrupted,
        "dehydrated": o.dehydrated,
        "bytes_dehydrated": o.bytes_dehydrated,
        "in_sync": o.problems.is_empty() && o.open_conflicts() == 0 && !o.dry_run && !o.interrupted,
    });
    if let (Some(m), Ok(serde_json::Value::Object(stats))) =
        (v.as_object_mut(), serde_json::to_value(&o.stats))
    {
        m.extend(stats);
        m.insert("conflicts".into(), json!(o.plan.conflicts.len()));
        m.insert("error_count".into(), json!(o.problems.len()));
    }
    if o.dry_run {
        v["actions"] = json!(plan_items(&o.plan));
    } else if verbose {
        v["actions"] = json!(o.done);
        v["actions_omitted"] = json!(o.done_omitted);
    }
    v
}

fn arrow(mode: SyncMode) -> &'static str {
    match mode {
        SyncMode::Mirror | SyncMode::Archive => "→",
        _ => "⇄",
    }
}

fn sync_line(o: &SyncOutcome, seconds: f64) -> String {
    let (a, b) = (&o.roots[0], &o.roots[1]);
    if o.mode == SyncMode::Archive && !o.dry_run {
        return format!(
            "archived {} → {}: {} copied, {} archived, {} freed on {}, {} moved in {:.2}s{}",
            escape_os(a),
            escape_os(b),
            o.stats.files_copied,
            o.stats.files_archived,
            human_bytes(o.stats.bytes_freed),
            escape_os(a),
            human_bytes(o.stats.bytes_transferred),
            seconds,
            if o.problems.is_empty() {
                String::new()
            } else {
                format!(
                    ", {} not archived (kept on {})",
                    o.problems.len(),
                    escape_os(a)
                )
            }
        );
    }
    if o.dry_run {
        let counts = planned_counts(o);
        let would: Vec<String> = counts
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, n)| n.as_u64() != Some(0))
            .map(|(what, n)| format!("{} {n}", what.replace('_', " ")))
            .collect();
        return format!(
            "dry run {} {} {}: would {}",
            escape_os(a),
            arrow(o.mode),
            escape_os(b),
            if would.is_empty() {
                "do nothing".to_string()
            } else {
                would.join(", ")
            }
        );
    }
    format!(
        "synced {} {} {} ({}): {} copied, {} deleted, {} renamed{}, {} dirs created, {} conflicts, {} moved in {:.2}s{}",
        escape_os(a),
        arrow(o.mode),
        escape_os(b),
        o.mode.as_str(),
        o.stats.files_copied,
        o.stats.files_deleted,
        o.stats.files_renamed,
        match o.stats.dirs_renamed {
            0 => String::new(),
            1 => " (in 1 folder rename)".to_string(),
            n => format!(" (in {n} folder renames)"),
        },
        o.stats.dirs_created,
        o.plan.conflicts.len(),
        human_bytes(o.stats.bytes_transferred),
        seconds,
        if o.problems.is_empty() { String::new() } else { format!(", {} errors", o.problems.len()) }
    )
}

pub use ferry_core::conduit::format_bytes as human_bytes;

fn cmd_demo(index: &mut Index, dir: &Path, yes: bool, config: &Config, cli: &Cli) -> Result<u8> {
    let (a, b) = (dir.join("a"), dir.join("b"));
    // A demo folder made afresh (the first time, or after it was deleted) holds nothing
    // of the user's: its old index rows, if any, must not stop the demo, so the run
    // starts it over (`--yes`) instead of asking for it.
    let fresh = !a.exists() || !b.exists();
    if !a.exists() {
        std::fs::create_dir_all(a.join("notes"))
            .with_context(|| format!("creating {}", a.display()))?;
        std::fs::write(a.join("README.txt"), "These files were synced by ferry.\n")?;
        std::fs::write(
            a.join("notes/todo.md"),
            "- edit a file in a or b\n- run `ferry demo` again\n",
        )?;
        std::fs::write(
            a.join("notes/data.bin"),
            (0..65536u32)
                .map(|i| (i * 31 % 251) as u8)
                .collect::<Vec<_>>(),
        )?;
    }
    std::fs::create_dir_all(&b).with_context(|| format!("creating {}", b.display()))?;
    let opts = SyncOptions {
        yes: fresh || yes,
        new_conduit: new_conduit_defaults(config),
        ..Default::default()
    };
    run_sync(index, &a, &b, None, opts, cli)
}

fn cmd_scan(index: &mut Index, dir: &Path, everything: bool, cli: &Cli) -> Result<u8> {
    let json_out = cli.json;
    let started = Instant::now();
    let loc = ferry_core::replica::open_location(index, dir, false)?;
    if let Some(m) = loc.moved_note().filter(|_| !cli.quiet) {
        eprintln!("ferry: note: {m}");
    }
    let bar = Bar::new(!json_out && !cli.quiet);
    let rules = ferry_core::replica::IndexRules {
        index_everything: everything,
    };
    let lock = loc.lock()?;
    let report = ferry_core::replica::scan_location(index, &loc, &lock, rules, &bar);
    bar.finish();
    let report = report?;
    for e in &report.errors {
        eprintln!("ferry: warning: {e}");
    }
    for n in report.notes.iter().filter(|_| !cli.quiet) {
        eprintln!("ferry: note: {n}");
    }
    let seconds = started.elapsed().as_secs_f64();
    if json_out {
        let mut v = serde_json::to_value(&report)?;
        v["root"] = json!(loc.root);
        v["seconds"] = json!(seconds);
        output::print(v)?;
    } else if !cli.quiet {
        println!(
            "scanned {}: {} entries, {} changed, {} deleted, {} hashed ({}) in {:.2}s",
            escape_os(&loc.root),
            report.entries,
            report.changed,
            report.deleted,
            report.hashed_files,
            human_bytes(report.hashed_bytes),
            seconds
        );
    }
    Ok(if report.errors.is_empty() {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}

/// Settled conflicts stay listed this long without --all.
const RECENT_CONFLICT_SECS: i64 = 7 * 24 * 3600;

/// A listing: exits 0 whether or not conflicts are open (`ferry sync` exits 3 for those).
fn cmd_conflicts(index: &Index, all: bool, json_out: bool) -> Result<u8> {
    let rows = if all {
        index.conflicts(false)?
    } else {
        index.recent_conflicts(ferry_core::index::unix_now() - RECENT_CONFLICT_SECS)?
    };
    if json_out {
        output::print_list("conflicts", &rows)?;
    } else if rows.is_empty() {
        println!("no {}conflicts", if all { "" } else { "open or recent " });
    } else {
        for c in &rows {
            println!(
                "{} [{}{}] policy {}, winner {}, loser kept at {} (a: {} {}, b: {} {})",
                display_key(&c.path),
                c.status,
                c.resolution
                    .map(|r| format!(", resolved: keep {r}"))
                    .unwrap_or_default(),
                c.policy,
                c.winner.map_or("-", |w| w.letter()),
                c.loser_kept_at.as_deref().map_or("-".into(), display_key),
                c.a_kind.map_or("missing", |k| k.as_str()),
                c.a_size.map(|s| human_bytes(s as u64)).unwrap_or_default(),
                c.b_kind.map_or("missing", |k| k.as_str()),
                c.b_size.map(|s| human_bytes(s as u64)).unwrap_or_default(),
            );
        }
    }
    Ok(EXIT_OK)
}

fn when(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn cmd_history(index: &Index, args: &HistoryArgs, json_out: bool) -> Result<u8> {
    if let Some(HistoryCommand::Show { generation }) = &args.command {
        return cmd_history_show(index, *generation, json_out);
    }
    let rows = index.generations(args.limit)?;
    if json_out {
        output::print_list("generations", &rows)?;
    } else if rows.is_empty() {
        println!("no runs yet");
    } else {
        for g in &rows {
            println!(
                "#{} conduit {} run {} at {} UTC [{}]: {} copied, {} deleted, {} renamed, {} conflicts ({} resolved), {} archived ({} freed), {} moved, {} errors",
                g.id,
                g.conduit_id,
                g.number,
                when(g.started_at),
                g.status,
                g.stats.files_copied,
                g.stats.files_deleted,
                g.stats.files_renamed,
                g.stats.conflicts,
                g.stats.conflicts_resolved,
                g.stats.files_archived,
                human_bytes(g.stats.bytes_freed),
                human_bytes(g.stats.bytes_transferred),
                g.stats.errors
            );
        }
        println!("(`ferry history show N` lists what run #N did)");
    }
    Ok(EXIT_OK)
}

/// `ferry history show GEN`: one run's counters and its per-file actions.
fn cmd_history_show(index: &Index, id: i64, json_out: bool) -> Result<u8> {
    let g = index
        .generation(id)?
        .ok_or_else(|| NotFound(format!("no run #{id}; see `ferry history`")))?;
    let items = index.generation_actions(id)?;
    let problems = index.generation_problems(id)?;
    if json_out {
        let mut v = serde_json::to_value(&g)?;
        v["actions"] = json!(items);
        v["problems"] = json!(problems);
        return output::print(v).map(|_| EXIT_OK);
    }
    println!(
        "#{} conduit {} run {} at {} UTC [{}, {}]: {} copied, {} deleted, {} renamed, {} conflicts, {} moved, {} errors",
        g.id,
        g.conduit_id,
        g.number,
        when(g.started_at),
        g.status,
        g.trigger,
        g.stats.files_copied,
        g.stats.files_deleted,
        g.stats.files_renamed,
        g.stats.conflicts,
        human_bytes(g.stats.bytes_transferred),
        g.stats.errors
    );
    for it in &items {
        println!("{}", item_line(it));
    }
    if g.actions_omitted > 0 {
        println!(
            "… and {} more (only the first {} of a run are kept)",
            g.actions_omitted,
            ferry_core::index::MAX_ACTIONS_PER_GENERATION
        );
    }
    if g.actions_pruned {
        println!(
            "(per-file actions are kept for the newest {} runs of a conduit; this one's were dropped)",
            ferry_core::index::ACTION_HISTORY_GENERATIONS
        );
    } else if items.is_empty() && g.actions_omitted == 0 {
        println!("(no per-file actions recorded)");
    }
    if !problems.is_empty() {
        println!("problems:");
        for p in &problems {
            println!("  {}: {p}", p.kind.label());
        }
        let more = g.stats.errors.saturating_sub(problems.len() as u64);
        if more > 0 {
            println!(
                "  … and {more} more (the first {} of a run are kept)",
                ferry_core::index::PROBLEMS_KEPT
            );
        }
    }
    Ok(EXIT_OK)
}
