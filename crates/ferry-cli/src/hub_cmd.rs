//! `ferry hub serve|id|add|list`: run a hub, or tell this device about one.

use crate::cli::HubCommand;
use crate::commands::EXIT_OK;
use crate::output;
use anyhow::{Context, Result};
use ferry_hub::client::HubBook;
use ferry_hub::server::{collect_garbage, hub_id, serve, HubConfig};
use serde_json::json;
use std::path::PathBuf;

pub fn run(cmd: &HubCommand, json_out: bool) -> Result<u8> {
    match cmd {
        HubCommand::Serve {
            home,
            listen,
            store,
            db,
            allow,
            quota_per_share,
            gc_every,
            gc_grace,
        } => {
            let home = hub_home(home.as_ref())?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            rt.block_on(async {
                let hub = serve(HubConfig {
                    home: home.clone(),
                    listen: *listen,
                    store: store.clone(),
                    db: db.clone(),
                    allow: allow.iter().map(|d| d.to_string()).collect(),
                    quota_per_share: quota_per_share.filter(|&q| q > 0),
                    gc_every: Some(*gc_every).filter(|d| !d.is_zero()),
                    gc_grace: *gc_grace,
                })
                .await?;
                let addrs: Vec<String> = hub.local_addrs().iter().map(|a| a.to_string()).collect();
                eprintln!(
                    "ferry hub: {} listening on UDP {} (home {})",
                    hub.id(),
                    addrs.join(", "),
                    home.display()
                );
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                hub.shutdown().await;
                anyhow::Ok(())
            })?;
            Ok(EXIT_OK)
        }
        HubCommand::Gc {
            home,
            store,
            db,
            grace,
        } => {
            let home = hub_home(home.as_ref())?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            let mut config = HubConfig::new(home, "127.0.0.1:0".parse()?);
            config.store = store.clone();
            config.db = db.clone();
            config.gc_grace = *grace;
            let r = rt.block_on(collect_garbage(&config))?;
            let blocked: Vec<_> = (r.blocked.iter())
                .map(|(s, d)| json!({"share": s.as_str(), "devices": d}))
                .collect();
            if json_out {
                output::print(json!({
                    "shares": r.shares,
                    "objects_deleted": r.objects_deleted,
                    "bytes_freed": r.bytes_freed,
                    "millis": r.millis,
                    "blocked": blocked,
                }))?;
            } else {
                println!(
                    "{} objects deleted, {} bytes freed over {} shares in {} ms",
                    r.objects_deleted, r.bytes_freed, r.shares, r.millis
                );
                for (s, d) in &r.blocked {
                    println!(
                        "share {s} not collected: waiting for {} to say what its log references",
                        d.join(", ")
                    );
                }
            }
            Ok(EXIT_OK)
        }
        HubCommand::Id { home } => {
            let id = hub_id(&hub_home(home.as_ref())?)?;
            if json_out {
                output::print(json!({"id": id.to_string()}))?;
            } else {
                println!("{id}");
            }
            Ok(EXIT_OK)
        }
        HubCommand::Add { addr, id } => {
            let book = HubBook::open(&ferry_core::library::library_dir()?)?;
            book.add_hub(&id.to_string(), &addr.to_string())?;
            if json_out {
                output::print(json!({"id": id.to_string(), "addr": addr.to_string()}))?;
            } else {
                println!("hub {} at {addr}; share a folder through it with `ferry share DIR --with DEVICE --hub {id}`", id.short());
            }
            Ok(EXIT_OK)
        }
        HubCommand::SetPassphrase {
            share,
            passphrase_file,
        } => {
            let home = ferry_core::library::library_dir()?;
            let book = HubBook::open(&home)?;
            let Some(hub) = book.share_hub(share)? else {
                return Err(crate::output::NotFound(format!(
                    "share {share} does not go through a hub here; see `ferry share list`"
                ))
                .into());
            };
            let text = passphrase(passphrase_file.as_deref(), true)?;
            ferry_hub::client::set_passphrase(&home, share, &text)?;
            if json_out {
                output::print(json!({"share": share, "hub": hub, "passphrase": "pending"}))?;
            } else {
                println!("the daemon wraps share {share}'s keys for the passphrase at its next sync with the hub");
            }
            Ok(EXIT_OK)
        }
        HubCommand::Restore {
            share,
            hub,
            passphrase_file,
        } => {
            let home = ferry_core::library::library_dir()?;
            known_hub(hub)?;
            let text = passphrase(passphrase_file.as_deref(), false)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            let epochs = rt.block_on(ferry_hub::client::restore(&home, hub, share, &text))?;
            if json_out {
                output::print(json!({"share": share, "hub": hub.to_string(), "epochs": epochs}))?;
            } else {
                println!("this device is a member of share {share} again; the daemon lists its offer (`ferry share list`), then `ferry accept {share} DIR`");
            }
            Ok(EXIT_OK)
        }
        HubCommand::List => {
            let book = HubBook::open(&ferry_core::library::library_dir()?)?;
            let hubs = book.hubs()?;
            if json_out {
                let rows: Vec<_> = (hubs.iter())
                    .map(|h| json!({"id": h.id, "addr": h.addr, "addrs": h.addrs()}))
                    .collect();
                output::print(json!({ "hubs": rows }))?;
            } else if hubs.is_empty() {
                println!("no hubs; add one with `ferry hub add HOST:PORT --id HUB_ID`");
            } else {
                for h in hubs {
                    println!("{}  {}", h.id, h.addr);
                }
            }
            Ok(EXIT_OK)
        }
    }
}

fn hub_home(home: Option<&PathBuf>) -> Result<PathBuf> {
    match home {
        Some(h) => Ok(h.clone()),
        None => Ok(ferry_core::library::library_dir()?.join("hub")),
    }
}

/// This device's hub book, checking that `hub` is in it.
pub fn known_hub(hub: &ferry_net::DeviceId) -> Result<HubBook> {
    let book = HubBook::open(&ferry_core::library::library_dir()?)?;
    let id = hub.to_string();
    if !book.hubs()?.iter().any(|h| h.id == id) {
        anyhow::bail!("no hub {id} here; add it with `ferry hub add HOST:PORT --id {id}` first");
    }
    Ok(book)
}

/// The passphrase: from `file`, else asked on the terminal without echo (twice when
/// `confirm`), else one line of standard input (not a terminal: a pipe or a file).
fn passphrase(file: Option<&std::path::Path>, confirm: bool) -> Result<String> {
    use std::io::{BufRead, IsTerminal};
    if let Some(f) = file {
        return std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()));
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the passphrase from standard input")?;
        return Ok(line);
    }
    let first = prompt_hidden("passphrase: ")?;
    if confirm {
        let again = prompt_hidden("the same passphrase again: ")?;
        if again != first {
            anyhow::bail!("the two passphrases differ; nothing was set");
        }
    }
    Ok(first)
}

/// Reads one line from the terminal on standard input with echo off (restored after,
/// also when reading fails).
fn prompt_hidden(prompt: &str) -> Result<String> {
    use std::io::{BufRead, Write};
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    // SAFETY: termios is plain data; tcgetattr fills it for fd 0, a terminal here.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd 0 and a valid pointer to a termios.
    if unsafe { libc::tcgetattr(0, &mut saved) } != 0 {
        anyhow::bail!(
            "reading the terminal's settings: {}",
            std::io::Error::last_os_error()
        );
    }
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    // SAFETY: as above, with settings derived from the terminal's own.
    if unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) } != 0 {
        anyhow::bail!("turning echo off: {}", std::io::Error::last_os_error());
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    // SAFETY: restores the settings read above.
    unsafe { libc::tcsetattr(0, libc::TCSANOW, &saved) };
    read.context("reading the passphrase")?;
    Ok(line)
}
