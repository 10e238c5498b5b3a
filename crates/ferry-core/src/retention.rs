//! Version retention: how many earlier contents a location keeps, and pruning the rest.
//!
//! Versions are always kept when ferry replaces or deletes something (safety rule 3);
//! retention only decides what `ferry versions --prune` may drop later. A location uses
//! its own setting, else its conduit's, else the default, `staggered`.

use crate::error::{Error, Result};
use crate::index::{Index, LocationRow, VersionRow};
use crate::model::rel_path::RelPath;
use crate::replica::ignore_rules::FERRY_DIR;
use std::collections::HashMap;

const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Staggered tiers: (versions younger than this, keep one per this interval).
const STAGGERED: [(i64, i64); 4] = [
    (HOUR, 30),
    (DAY, HOUR),
    (30 * DAY, DAY),
    (STAGGERED_MAX_AGE, 7 * DAY),
];
/// Staggered drops versions older than a year.
const STAGGERED_MAX_AGE: i64 = 365 * DAY;

/// A retention policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// `simple:N`: the N newest versions of each path.
    Simple(usize),
    /// `staggered`: all versions of the last 30 s, then one per 30 s for an hour, one
    /// per hour for a day, one per day for 30 days, one per week for a year; none older.
    Staggered,
    /// `trashcan:DAYS`: every version younger than DAYS days.
    Trashcan(u32),
    /// `none`: no history; a prune drops every version (the safety copies made between
    /// prunes still exist until then).
    None,
}

impl Retention {
    /// Reads `simple:N`, `staggered`, `trashcan:DAYS` or `none`.
    pub fn parse(spec: &str) -> Result<Retention> {
        let bad = || {
            Error::Other(format!(
                "unknown retention {spec:?}; use simple:N, staggered, trashcan:DAYS or none"
            ))
        };
        Ok(match spec.split_once(':') {
            None if spec == "staggered" => Retention::Staggered,
            None if spec == "none" => Retention::None,
            Some(("simple", n)) => Retention::Simple(n.parse().map_err(|_| bad())?),
            Some(("trashcan", d)) => Retention::Trashcan(d.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        })
    }

    /// The spec form `parse` reads back.
    pub fn spec(&self) -> String {
        match self {
            Retention::Simple(n) => format!("simple:{n}"),
            Retention::Staggered => "staggered".into(),
            Retention::Trashcan(d) => format!("trashcan:{d}"),
            Retention::None => "none".into(),
        }
    }

    /// The policy a location uses (its own, its conduit's, or the default).
    pub fn for_location(index: &Index, location: i64) -> Result<Retention> {
        match index.retention_for_location(location)? {
            Some(spec) => Retention::parse(&spec),
            None => Ok(Retention::Staggered),
        }
    }

    /// IDs of the versions this policy drops, given all versions of one location.
    /// Pure: `now` is seconds since the epoch.
    pub(crate) fn prunable(&self, versions: &[VersionRow], now: i64) -> Vec<i64> {
        let mut by_path: HashMap<&str, Vec<&VersionRow>> = HashMap::new();
        for v in versions {
            by_path.entry(&v.path).or_default().push(v);
        }
        let mut out = Vec::new();
        for list in by_path.values_mut() {
            // Newest first; ties by ID so the order is total.
            list.sort_by_key(|v| std::cmp::Reverse((v.created_at, v.id)));
            match *self {
                Retention::None => out.extend(list.iter().map(|v| v.id)),
                Retention::Simple(n) => out.extend(list.iter().skip(n).map(|v| v.id)),
                Retention::Trashcan(days) => out.extend(
                    list.iter()
                        .filter(|v| now - v.created_at > i64::from(days) * DAY)
                        .map(|v| v.id),
                ),
                Retention::Staggered => {
                    let mut last_bucket = None;
                    for v in list.iter() {
                        let age = now - v.created_at;
                        if age < 30 {
                            continue; // the last 30 s: every version stays
                        }
                        match staggered_bucket(age) {
                            None => out.push(v.id),
                            Some(b) if Some(b) == last_bucket => out.push(v.id),
                            Some(b) => last_bucket = Some(b),
                        }
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }
}

/// The staggered interval a version of this age falls in: (tier, slot), or `None` when
/// it is past the maximum age.
fn staggered_bucket(age: i64) -> Option<(usize, i64)> {
    STAGGERED
        .iter()
        .enumerate()
        .find(|(_, (until, _))| age < *until)
        .map(|(tier, (_, every))| (tier, age / every))
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub versions_removed: u64,
    pub bytes_freed: u64,
}

/// Applies `policy` to the versions of one location: removes the stored files and their
/// records. A stored path outside `.ferry/versions/` is refused (safety rule 4).
pub fn prune_location(
    index: &Index,
    loc: &LocationRow,
    policy: Retention,
    now: i64,
) -> Result<PruneReport> {
    let versions = index.versions_in(loc.id)?;
    let drop = policy.prunable(&versions, now);
    let mut report = PruneReport::default();
    let prefix = format!("{FERRY_DIR}/versions/");
    for v in versions
        .iter()
        .filter(|v| drop.binary_search(&v.id).is_ok())
    {
        let rel = RelPath::new(&v.stored_path)?;
        if !rel.as_str().starts_with(&prefix) {
            return Err(Error::Refused(format!(
                "version {} is stored outside the version store ({}); not removing it",
                v.id, v.stored_path
            )));
        }
        // Through the root's handle: a store (or a folder of it) that is a symlink is
        // refused, never followed.
        let root = crate::replica::beneath::RootDir::open(&loc.root)?;
        let (dir, name) = root.parent(&rel)?;
        match dir.unlink(&name) {
            Ok(()) => {}
            Err(Error::Io { source, .. }) if crate::replica::fs_ops::is_absent(&source) => {}
            Err(e) => return Err(e),
        }
        index.delete_version(v.id)?;
        report.versions_removed += 1;
        report.bytes_freed += v.size;
        // Tidy now-empty folders of the store, best effort.
        let mut folder = rel.parent();
        while let Some(d) = folder {
            if !d.as_str().starts_with(&prefix) {
                break;
            }
            let Ok((parent, name)) = root.parent(&d) else {
                break;
            };
            if parent.rmdir(&name).is_err() {
                break;
            }
            folder = d.parent();
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: i64, path: &str, created_at: i64) -> VersionRow {
        VersionRow {
            id,
            location_id: 1,
            path: path.into(),
            stored_path: format!(".ferry/versions/{path}~{id}"),
            size: 1,
            mtime_ns: 0,
            created_at,
            reason: "replaced".into(),
            hash: None,
        }
    }

    const NOW: i64 = 1_000_000_000;

    #[test]
    fn parses_every_spec_and_refuses_others() {
        assert_eq!(Retention::parse("simple:3").unwrap(), Retention::Simple(3));
        assert_eq!(Retention::parse("staggered").unwrap(), Retention::Staggered);
        assert_eq!(
            Retention::parse("trashcan:30").unwrap(),
            Retention::Trashcan(30)
        );
        assert_eq!(Retention::parse("none").unwrap(), Retention::None);
        for bad in ["simple", "simple:x", "trashcan:-1", "forever", ""] {
            assert!(Retention::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn simple_keeps_the_n_newest_of_each_path() {
        let vs: Vec<_> = (1..=5)
            .map(|i| v(i, "f", NOW - 100 + i))
            .chain([v(6, "g", NOW - 1)])
            .collect();
        assert_eq!(Retention::Simple(2).prunable(&vs, NOW), vec![1, 2, 3]);
        assert_eq!(Retention::Simple(0).prunable(&vs, NOW).len(), 6);
    }

    #[test]
    fn trashcan_drops_only_what_is_older_than_the_limit() {
        let vs = vec![
            v(1, "f", NOW - 3 * DAY),
            v(2, "f", NOW - DAY - 1),
            v(3, "f", NOW - DAY + 1),
            v(4, "g", NOW),
        ];
        assert_eq!(Retention::Trashcan(1).prunable(&vs, NOW), vec![1, 2]);
    }

    #[test]
    fn none_drops_everything() {
        let vs = vec![v(1, "f", NOW), v(2, "g", NOW - DAY)];
        assert_eq!(Retention::None.prunable(&vs, NOW), vec![1, 2]);
    }

    #[test]
    fn staggered_is_dense_for_recent_and_sparse_for_old_versions() {
        let mut vs = Vec::new();
        let mut id = 0;
        let mut add = |age: i64| {
            id += 1;
            vs.push(v(id, "f", NOW - age));
            id
        };
        // Recent: every version of the last 30 s is kept.
        let recent: Vec<i64> = (0..5).map(|s| add(s * 5)).collect();
        // Within the first hour, one per 30 s slot: two in the same slot → one goes.
        let slot_a = add(121);
        let slot_a2 = add(125);
        // Within the first day, one per hour: three in one hour → two go.
        let hour = [add(5 * HOUR + 10), add(5 * HOUR + 20), add(5 * HOUR + 30)];
        // Within 30 days, one per day.
        let day = [add(10 * DAY + 1), add(10 * DAY + 2)];
        // Within a year, one per week.
        let week = [add(100 * DAY), add(100 * DAY + 1)];
        // Past a year: dropped.
        let ancient = add(400 * DAY);
        let dropped = Retention::Staggered.prunable(&vs, NOW);
        for r in &recent {
            assert!(!dropped.contains(r), "recent version {r} dropped");
        }
        // The newest of each slot is kept.
        assert!(!dropped.contains(&slot_a) && dropped.contains(&slot_a2));
        assert!(!dropped.contains(&hour[0]));
        assert!(dropped.contains(&hour[1]) && dropped.contains(&hour[2]));
        assert!(!dropped.contains(&day[0]) && dropped.contains(&day[1]));
        assert!(!dropped.contains(&week[0]) && dropped.contains(&week[1]));
        assert!(dropped.contains(&ancient));
        assert_eq!(dropped.len(), 1 + 2 + 1 + 1 + 1);
    }
}
