//! Adding and changing saved conduits: the one code path behind `ferry conduit add`
//! and the daemon's API and dashboard, so every front end gives the same answers.
//!
//! - [`add_conduit`] opens the pair as [`open_conduit`] does (folders must exist, a
//!   missing second folder is created when its parent exists, overlapping folders are
//!   refused, an archive conduit stays one) and settles its schedule: a new conduit gets
//!   the one asked for, else the configured default, else `instant`; a pair that
//!   `ferry sync` made (`manual`) becomes continuous unless a schedule is given.
//! - [`change_conduit`] changes the settings of a saved conduit by its ID, with the same
//!   checks: a mode change goes through [`crate::plan::archive::check_mode_change`].
//! - The text forms shared by the front ends: [`parse_mode`], [`parse_bandwidth`],
//!   [`parse_parallel`], and [`Schedule::parse`].

use crate::conduit::{parse_rate, Schedule};
use crate::error::{Error, Result};
use crate::index::{ConduitRow, Index};
use crate::plan::{ConflictPolicy, SyncMode};
use crate::sync::{open_conduit, NewConduitDefaults, SyncOptions};
use std::path::Path;

/// Most copies a conduit may run at once.
pub const MAX_PARALLEL: u32 = 64;

/// A mode a conduit can be given: mirror, bidirectional (or two-way), archive or
/// selective.
pub fn parse_mode(s: &str) -> Result<SyncMode> {
    SyncMode::parse(s).map_err(|_| {
        Error::Other(format!(
            "unknown mode {s:?}; expected mirror, bidirectional, archive or selective"
        ))
    })
}

/// A size in bytes (`500K`, `10M`, `2G`, or bytes): a selective conduit's local quota.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    if t == "0" {
        return Ok(0);
    }
    parse_rate(t).map_err(|_| Error::Other(format!("bad size {s:?}; use e.g. 500M, 20G")))
}

/// A free-space floor in percent of the file system (`10`, `10%`): 0 to 99.
pub fn parse_percent(s: &str) -> Result<u8> {
    let t = s.trim();
    let t = t.strip_suffix('%').unwrap_or(t);
    match t.trim().parse::<u8>() {
        Ok(n) if n < 100 => Ok(n),
        _ => Err(Error::Other(format!(
            "bad percentage {s:?}; expected 0 to 99 (percent of the disk to keep free)"
        ))),
    }
}

/// A conflict policy by name, with the names it may be given as in the error.
pub fn parse_policy(s: &str) -> Result<ConflictPolicy> {
    ConflictPolicy::parse(s).map_err(|_| {
        Error::Other(format!(
            "unknown conflict policy {s:?}; expected newest, keep-both, source, target or manual"
        ))
    })
}

/// A bandwidth limit in bytes per second (`500K`, `10M`, …); `0`, `none` or
/// `unlimited` for no limit (stored as 0).
pub fn parse_bandwidth(s: &str) -> Result<u64> {
    match s.trim() {
        "0" | "none" | "unlimited" => Ok(0),
        r => parse_rate(r),
    }
}

/// Copies at once: 1 to [`MAX_PARALLEL`], or `auto` / `0` (one per core, stored as 0).
pub fn parse_parallel(s: &str) -> Result<u32> {
    if s == "auto" {
        return Ok(0);
    }
    match s.parse::<u32>() {
        Ok(n) if n <= MAX_PARALLEL => Ok(n),
        _ => Err(Error::Other(format!(
            "parallel copies {s:?}: expected 1 to {MAX_PARALLEL}, or auto (or 0) for one per core"
        ))),
    }
}

/// A bandwidth limit as text [`parse_bandwidth`] reads back: `unlimited`, `10M`,
/// `500K`, or bytes.
pub fn format_bandwidth(bytes_per_sec: u64) -> String {
    match bytes_per_sec {
        0 => "unlimited".into(),
        n if n % (1 << 30) == 0 => format!("{}G", n >> 30),
        n if n % (1 << 20) == 0 => format!("{}M", n >> 20),
        n if n % (1 << 10) == 0 => format!("{}K", n >> 10),
        n => n.to_string(),
    }
}

/// What a new (or re-added) conduit should get; `None` keeps what it has, or for a new
/// one takes the defaults.
#[derive(Debug, Clone, Default)]
pub struct ConduitSettings {
    /// The mode (default bidirectional for a new conduit).
    pub mode: Option<SyncMode>,
    /// The conflict policy (default: the configured one, else newest).
    pub policy: Option<ConflictPolicy>,
    /// When the daemon runs it (default: the configured one, else instant).
    pub schedule: Option<Schedule>,
    /// Copies at once (0: one per core).
    pub parallel: Option<u32>,
    /// Bytes per second for copies (0: unlimited).
    pub bandwidth_limit: Option<u64>,
    /// Index node_modules and OS clutter too.
    pub index_everything: Option<bool>,
    /// A version retention spec (`Retention::parse`).
    pub retention: Option<String>,
    /// A selective conduit's local quota and free-space floor.
    pub selective: Option<crate::index::SelectiveSettings>,
}

/// Settings new conduits get when none is asked for (the config file's).
#[derive(Debug, Clone, Default)]
pub struct ConduitDefaults {
    /// Conflict policy of a new conduit.
    pub policy: Option<ConflictPolicy>,
    /// Version retention of a new conduit (a `Retention` spec).
    pub retention: Option<String>,
    /// Schedule of a new conduit (`instant` when none).
    pub schedule: Option<Schedule>,
}

/// What [`add_conduit`] did.
#[derive(Debug)]
pub struct Added {
    /// The conduit as saved.
    pub conduit: ConduitRow,
    /// The pair was a conduit already (its settings were updated).
    pub existed: bool,
    /// What to tell the user: a folder created, a moved folder followed, a pair named
    /// the other way round, a manual conduit made continuous.
    pub notes: Vec<String>,
}

/// Saves the conduit between folders `a` and `b` (see the module's text).
pub fn add_conduit(
    index: &mut Index,
    a: &Path,
    b: &Path,
    settings: &ConduitSettings,
    defaults: &ConduitDefaults,
) -> Result<Added> {
    if settings.selective.is_some() && settings.mode != Some(SyncMode::Selective) {
        return Err(Error::Other(
            "--local-quota and --min-free are for selective conduits (--mode selective)".into(),
        ));
    }
    let known: Vec<i64> = index.conduits()?.iter().map(|c| c.id).collect();
    let opts = SyncOptions {
        mode: settings.mode,
        policy: settings.policy,
        index_everything: settings.index_everything,
        parallel: settings.parallel,
        bandwidth_limit: settings.bandwidth_limit,
        retention: settings.retention.clone(),
        new_conduit: NewConduitDefaults {
            policy: defaults.policy,
            retention: defaults.retention.clone(),
        },
        ..Default::default()
    };
    let opened = open_conduit(index, a, b, &opts)?;
    let c = opened.conduit;
    let mut notes: Vec<String> = [&opened.a, &opened.b]
        .iter()
        .filter_map(|l| l.moved_note())
        .collect();
    notes.extend(opened.info);
    let existed = known.contains(&c.id);
    // Adding is how a pair gets continuous sync: one that `ferry sync` made (manual)
    // becomes instant (or the configured schedule) unless one is given.
    let default = defaults.schedule.unwrap_or(Schedule::Instant);
    let schedule = match settings.schedule {
        Some(s) => s,
        None if existed && c.schedule == Schedule::Manual && default != Schedule::Manual => {
            notes.push(format!(
                "conduit {} was manual (made by `ferry sync`); it is now {default}, \
                 so a running daemon runs it (--schedule manual keeps it manual)",
                c.id
            ));
            default
        }
        None if existed => c.schedule,
        None => default,
    };
    index.update_conduit_schedule(c.id, schedule, c.parallel, c.bandwidth_limit)?;
    if let Some(sel) = &settings.selective {
        index.set_selective_settings(c.id, sel)?;
    }
    let conduit = index
        .conduit(c.id)?
        .ok_or_else(|| Error::Corrupt(format!("conduit {} vanished after saving it", c.id)))?;
    Ok(Added {
        conduit,
        existed,
        notes,
    })
}

/// A change of a saved conduit's settings; `None` leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct SettingsChange {
    /// A new mode (an archive conduit keeps its own).
    pub mode: Option<SyncMode>,
    /// A new conflict policy.
    pub policy: Option<ConflictPolicy>,
    /// A new schedule.
    pub schedule: Option<Schedule>,
    /// A new number of copies at once (0: one per core).
    pub parallel: Option<u32>,
    /// A new bandwidth limit in bytes per second (0: unlimited).
    pub bandwidth_limit: Option<u64>,
}

/// Changes conduit `id`'s settings; `Ok(None)` when there is no such conduit. A mode
/// change that would undo an archive is refused (`plan::archive::check_mode_change`)
/// and nothing is changed. A new mode or policy makes the next run plan from a full
/// comparison (the conduit's clean point is cleared), as a changed mode on the
/// command line does.
pub fn change_conduit(
    index: &mut Index,
    id: i64,
    change: &SettingsChange,
) -> Result<Option<ConduitRow>> {
    let Some(c) = index.conduit(id)? else {
        return Ok(None);
    };
    if let Some(mode) = change.mode {
        let (la, lb) = (index.location(c.location_a)?, index.location(c.location_b)?);
        crate::plan::archive::check_mode_change(c.id, c.mode, mode, &la.root, &lb.root)?;
    }
    let mode = change.mode.unwrap_or(c.mode);
    let policy = change.policy.unwrap_or(c.conflict_policy);
    if mode != c.mode || policy != c.conflict_policy {
        index.update_conduit_settings(id, mode, policy, c.index_everything)?;
    }
    let schedule = change.schedule.unwrap_or(c.schedule);
    let parallel = change.parallel.unwrap_or(c.parallel);
    let bandwidth_limit = change.bandwidth_limit.unwrap_or(c.bandwidth_limit);
    if schedule != c.schedule || parallel != c.parallel || bandwidth_limit != c.bandwidth_limit {
        index.update_conduit_schedule(id, schedule, parallel, bandwidth_limit)?;
    }
    index.conduit(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        (t, a, b)
    }

    #[test]
    fn texts_parse_and_print() {
        assert_eq!(parse_mode("two-way").unwrap(), SyncMode::Bidirectional);
        assert_eq!(parse_mode("selective").unwrap(), SyncMode::Selective);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_percent("10%").unwrap(), 10);
        assert!(parse_percent("100").is_err());
        assert!(parse_mode("sideways").is_err());
        assert!(parse_policy("keep-both").is_ok());
        assert!(parse_policy("loudest").is_err());
        assert_eq!(parse_bandwidth("unlimited").unwrap(), 0);
        assert_eq!(parse_bandwidth("256K").unwrap(), 256 << 10);
        assert!(parse_bandwidth("fast").is_err());
        assert_eq!(parse_parallel("auto").unwrap(), 0);
        assert!(parse_parallel("65").is_err());
        for n in [0, 256 << 10, 10 << 20, 3 << 30, 1000] {
            assert_eq!(parse_bandwidth(&format_bandwidth(n)).unwrap(), n);
        }
    }

    #[test]
    fn add_then_change_and_archive_stays_archive() {
        let (_t, a, b) = pair();
        let mut index = Index::open_in_memory().unwrap();
        let added = add_conduit(
            &mut index,
            &a,
            &b,
            &ConduitSettings {
                mode: Some(SyncMode::Archive),
                ..Default::default()
            },
            &ConduitDefaults::default(),
        )
        .unwrap();
        assert!(!added.existed);
        assert_eq!(added.conduit.schedule, Schedule::Instant);
        assert_eq!(added.conduit.mode, SyncMode::Archive);
        let id = added.conduit.id;
        let refused = change_conduit(
            &mut index,
            id,
            &SettingsChange {
                mode: Some(SyncMode::Mirror),
                bandwidth_limit: Some(1 << 20),
                ..Default::default()
            },
        );
        assert!(matches!(refused, Err(Error::Refused(_))), "{refused:?}");
        let c = index.conduit(id).unwrap().unwrap();
        assert_eq!((c.mode.as_str(), c.bandwidth_limit), ("archive", 0));
        let c = change_conduit(
            &mut index,
            id,
            &SettingsChange {
                policy: Some(ConflictPolicy::Manual),
                schedule: Some(Schedule::Manual),
                bandwidth_limit: Some(1 << 20),
                ..Default::default()
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.conflict_policy, ConflictPolicy::Manual);
        assert_eq!(c.schedule, Schedule::Manual);
        assert_eq!(c.bandwidth_limit, 1 << 20);
        assert!(
            change_conduit(&mut index, id + 1, &SettingsChange::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn same_or_nested_folders_are_refused_and_add_nothing() {
        let (_t, a, _b) = pair();
        let sub = a.join("sub");
        std::fs::create_dir(&sub).unwrap();
        let mut index = Index::open_in_memory().unwrap();
        for other in [&a, &sub] {
            let e = add_conduit(
                &mut index,
                &a,
                other,
                &ConduitSettings::default(),
                &ConduitDefaults::default(),
            )
            .unwrap_err();
            assert!(matches!(e, Error::Refused(_)), "{e}");
        }
        assert!(index.conduits().unwrap().is_empty());
    }
}
