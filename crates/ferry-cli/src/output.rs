//! What the CLI prints for scripts and people: JSON documents (each an object carrying
//! `schema_version`), `{"error": …}` objects, itemized per-path lines; log verbosity and
//! colour; errors said once with a hint.

use crate::commands::human_bytes;
use anyhow::Result;
use ferry_core::model::display_key;
use ferry_core::plan::Item;
use serde_json::{json, Value};
use std::io::IsTerminal;

use ferry_core::JSON_SCHEMA_VERSION as SCHEMA_VERSION;

/// Prints one JSON document on stdout: an object, with `schema_version` added.
pub fn print(mut v: Value) -> Result<()> {
    if let Value::Object(m) = &mut v {
        m.insert("schema_version".into(), json!(SCHEMA_VERSION));
    }
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// Prints a listing as `{"schema_version": 1, "<key>": [...]}`.
pub fn print_list(key: &str, rows: impl serde::Serialize) -> Result<()> {
    print(json!({ key: rows }))
}

/// Something the user asked about does not exist (a conduit, a generation).
#[derive(Debug)]
pub struct NotFound(pub String);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotFound {}

/// The `kind` of a `--json` error object: ferry-core's error kinds (`refused` and
/// `location` are the safety stops), `not_found`, `usage`, or `other`.
pub fn error_kind(e: &anyhow::Error) -> &'static str {
    for cause in e.chain() {
        if let Some(fe) = cause.downcast_ref::<ferry_core::Error>() {
            return fe.kind();
        }
        if cause.downcast_ref::<NotFound>().is_some() {
            return "not_found";
        }
    }
    "other"
}

/// Prints `{"error": {"kind": …, "message": …}}` on stdout (the text goes to stderr).
pub fn print_error(kind: &str, message: &str) {
    let _ = print(json!({"error": {"kind": kind, "message": message}}));
}

/// Prints an error of a command on stdout as JSON: its kind, its message (each cause
/// once) and, where ferry knows what to do about it, a `hint`.
pub fn print_command_error(e: &anyhow::Error) {
    let mut err = json!({"kind": error_kind(e), "message": error_text(e)});
    if let Some(h) = hint(e) {
        err["hint"] = json!(h);
    }
    let _ = print(json!({ "error": err }));
}

/// Whether the command line asks for JSON (for errors met before it is parsed).
pub fn json_requested() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// One itemized line, like `rsync -i`:
/// `copy       a→b  notes/todo.md  (47 B)`.
pub fn item_line(it: &Item) -> String {
    let action = it.action.as_str().replace('_', "-");
    let way = match (it.direction(), it.side) {
        (Some((from, to)), _) => format!("{}→{}", from.letter(), to.letter()),
        (None, Some(side)) => side.letter().to_string(),
        (None, None) => "a⇄b".to_string(),
    };
    let dir_mark = |p: &str| {
        if it.kind == Some(ferry_core::model::EntryKind::Dir) {
            format!("{p}/")
        } else {
            p.to_string()
        }
    };
    let mut what = dir_mark(&display_key(it.path.as_str()));
    if let Some(to) = &it.to {
        what.push_str(" → ");
        what.push_str(&dir_mark(&display_key(to.as_str())));
    }
    let extra: Vec<String> = (it.size.map(human_bytes).into_iter())
        .chain(it.detail.clone())
        .collect();
    if extra.is_empty() {
        format!("{action:<10} {way:<4} {what}")
    } else {
        format!("{action:<10} {way:<4} {what}  ({})", extra.join(", "))
    }
}

/// Colour only on a terminal, and never with `NO_COLOR` set (to anything but empty)
/// or `TERM=dumb`: logs written to files or the journal carry no escape codes.
pub fn colour(stream: &impl IsTerminal) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    stream.is_terminal() && !no_color && !dumb
}

/// Logs to stderr at `-q` error, default warn, `-v` info, `-vv` debug, `-vvv` trace;
/// `RUST_LOG` overrides.
pub fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour(&std::io::stderr()))
        .init();
}

/// An error's chain as one line, each cause said once: a message that already ends
/// with (or holds) its cause's text — ferry-core's I/O errors name their cause — does
/// not repeat it.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// What the user can do about an error, where ferry knows.
pub fn hint(e: &anyhow::Error) -> Option<String> {
    for cause in e.chain() {
        if let Some(core) = cause.downcast_ref::<ferry_core::Error>() {
            match core {
                // Its reason says what to do already.
                ferry_core::Error::Library { .. } => return None,
                e if e.is_corrupt_index() => {
                    let db = ferry_core::library::library_dir().ok()?.join("index.db");
                    return Some(ferry_core::library::corrupt_index_advice(&db));
                }
                ferry_core::Error::Db(db) if is_locked(db) => {
                    return Some(
                        "another ferry process (a long dry run?) is writing the index; try \
                         again when it is done"
                            .into(),
                    )
                }
                _ => {}
            }
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::PermissionDenied {
                return Some(
                    "ferry runs as your user: check the permissions of the path named above \
                     (ls -ld), or sync folders you own"
                        .into(),
                );
            }
        }
    }
    None
}

fn is_locked(e: &dyn std::error::Error) -> bool {
    let text = e.to_string();
    text.contains("database is locked") || text.contains("database is busy")
}

/// Prints an error (and its hint) on stderr.
pub fn report_error(e: &anyhow::Error) {
    eprintln!("ferry: error: {}", error_text(e));
    if let Some(h) = hint(e) {
        eprintln!("ferry: hint: {h}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::from_raw_os_error(13);
        let core = ferry_core::Error::Io {
            action: "open",
            path: "/x/a".into(),
            source: io,
        };
        let e = Err::<(), _>(core).context("syncing /x and /y").unwrap_err();
        let text = error_text(&e);
        assert_eq!(
            text,
            "syncing /x and /y: open /x/a: Permission denied (os error 13)"
        );
        assert!(hint(&e).unwrap().contains("permissions"));
    }
}
