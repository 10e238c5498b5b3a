//! What the CLI prints for scripts and people: JSON documents (each an object carrying
//! `schema_version`), `{"error": …}` objects, and itemized per-path lines.

use crate::commands::human_bytes;
use anyhow::Result;
use ferry_core::itemize::Item;
use ferry_core::rel_path::display_key;
use serde_json::{json, Value};

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
        if it.kind == Some(ferry_core::entry::EntryKind::Dir) {
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
