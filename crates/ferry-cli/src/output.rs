//! How the binary talks: log verbosity and colour, and errors said once with a hint.

use std::io::IsTerminal;

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
