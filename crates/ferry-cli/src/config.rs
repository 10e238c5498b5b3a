//! The optional config file: defaults for new conduits and the daemon, in TOML at
//! `$FERRY_CONFIG`, else `$XDG_CONFIG_HOME/ferry/config.toml`, else
//! `~/.config/ferry/config.toml`. A missing file is no config, and so is one in a
//! folder this user may not enter (another user's `$HOME`, e.g. under `setpriv` or
//! `sudo -u`) unless `FERRY_CONFIG` names it; an unreadable or invalid file is an error
//! naming it (unknown keys included, so a typo is not ignored).
//!
//! ```toml
//! conflict = "keep-both"   # conflict policy of new conduits
//! retention = "simple:10"  # version retention of new conduits
//! schedule = "every:10m"   # schedule of conduits made by `ferry conduit add`
//!
//! [daemon]
//! port = 7700              # API port of `ferry daemon` without --port
//! ```
//!
//! Flags win over the file; a conduit's stored settings win over it too (the file only
//! seeds new conduits).

use anyhow::{Context, Result};
use ferry_core::conduit::Schedule;
use ferry_core::plan::ConflictPolicy;
use ferry_core::versions::Retention;
use serde::Deserialize;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The settings the file may hold, checked.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Where it was read from, if a file was there.
    pub path: Option<PathBuf>,
    pub conflict: Option<ConflictPolicy>,
    pub retention: Option<String>,
    pub schedule: Option<Schedule>,
    pub daemon_port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    conflict: Option<String>,
    retention: Option<String>,
    schedule: Option<String>,
    #[serde(default)]
    daemon: DaemonSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DaemonSection {
    port: Option<u16>,
}

/// Where the config file is looked for.
pub fn config_path() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(p) = var("FERRY_CONFIG") {
        return Some(PathBuf::from(p));
    }
    if let Some(xdg) = var("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(xdg).join("ferry/config.toml"));
    }
    var("HOME").map(|h| PathBuf::from(h).join(".config/ferry/config.toml"))
}

impl Config {
    /// What new conduits get when no flag says otherwise (also handed to the daemon,
    /// whose dashboard and API add conduits too).
    pub fn conduit_defaults(&self) -> ferry_core::conduit::ConduitDefaults {
        ferry_core::conduit::ConduitDefaults {
            policy: self.conflict,
            retention: self.retention.clone(),
            schedule: self.schedule,
        }
    }
}

/// Reads the config file, if there is one.
pub fn load() -> Result<Config> {
    let explicit = std::env::var_os("FERRY_CONFIG").is_some_and(|v| !v.is_empty());
    match config_path() {
        Some(p) if !explicit && !may_look(&p) => {
            tracing::debug!("cannot look for a config file at {}", p.display());
            Ok(Config::default())
        }
        Some(p) => load_from(&p),
        None => Ok(Config::default()),
    }
}

/// Whether this user may look into the folder that would hold `path` (a file there
/// that it cannot read is still an error).
fn may_look(path: &Path) -> bool {
    match path.parent().map(std::fs::metadata) {
        Some(Err(e)) => e.kind() != ErrorKind::PermissionDenied,
        _ => true,
    }
}

fn load_from(path: &Path) -> Result<Config> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Ok(Config::default())
        }
        Err(e) => {
            return Err(e).with_context(|| format!("reading the config file {}", path.display()))
        }
    };
    let shown = path.display();
    let file: File =
        toml::from_str(&text).with_context(|| format!("config file {shown} is not valid"))?;
    let conflict = file
        .conflict
        .as_deref()
        .map(|c| {
            ConflictPolicy::parse(c).with_context(|| {
                format!("config file {shown}: conflict: use newest, keep-both, source, target or manual")
            })
        })
        .transpose()?;
    if let Some(r) = &file.retention {
        Retention::parse(r).with_context(|| format!("config file {shown}: retention"))?;
    }
    let schedule = file
        .schedule
        .as_deref()
        .map(|s| Schedule::parse(s).with_context(|| format!("config file {shown}: schedule")))
        .transpose()?;
    Ok(Config {
        path: Some(path.to_path_buf()),
        conflict,
        retention: file.retention,
        schedule,
        daemon_port: file.daemon.port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("config.toml");
        std::fs::write(&p, text)?;
        load_from(&p)
    }

    #[test]
    fn reads_every_setting() {
        let c = parse(
            "conflict = \"keep-both\"\nretention = \"simple:3\"\nschedule = \"every:10m\"\n[daemon]\nport = 7700\n",
        )
        .unwrap();
        assert_eq!(c.conflict, Some(ConflictPolicy::KeepBoth));
        assert_eq!(c.retention.as_deref(), Some("simple:3"));
        assert_eq!(
            c.schedule.map(|s| s.to_string()).as_deref(),
            Some("every:10m")
        );
        assert_eq!(c.daemon_port, Some(7700));
    }

    #[test]
    fn missing_file_is_no_config() {
        let c = load_from(Path::new("/nonexistent/ferry/config.toml")).unwrap();
        assert!(c.path.is_none() && c.conflict.is_none() && c.daemon_port.is_none());
    }

    #[test]
    fn typos_and_bad_values_are_errors_naming_the_file() {
        for bad in [
            "conflcit = \"newest\"\n",
            "conflict = \"sometimes\"\n",
            "retention = \"forever\"\n",
            "schedule = \"hourly\"\n",
            "[daemon]\nport = 70000\n",
            "not toml",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(format!("{e:#}").contains("config.toml"), "{bad}: {e:#}");
        }
    }
}
