//! Known and pending devices, in `$FERRY_HOME/devices.db` (SQLite, WAL).
//!
//! A device talks only to the devices it was told about; one that knocks without
//! being known is refused and recorded here as pending, so the user can see it and
//! accept it with `ferry device add`. SQLite rather than a JSON file because the CLI
//! (add, remove) and the daemon (last seen, pending) write at the same time.

use crate::error::StoreError;
use crate::identity::DeviceId;
use ferry_core::bandwidth::BandwidthLimit;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the store under the ferry home.
pub const STORE_FILE: &str = "devices.db";

/// Most pending devices kept (the least recently seen go first): anyone can knock with
/// a fresh key, and must not be able to grow the store without bound.
pub const MAX_PENDING: usize = 100;

/// A device this one talks to.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KnownDevice {
    pub id: DeviceId,
    pub name: Option<String>,
    /// `HOST:PORT` addresses to dial it at.
    pub addresses: Vec<String>,
    /// Unix seconds.
    pub added_at: i64,
    pub last_seen: Option<i64>,
}

/// A device that tried to connect but is not known.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PendingDevice {
    pub id: DeviceId,
    /// Where its last attempt came from.
    pub address: Option<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub attempts: u64,
    /// The name it gave, if it got as far as saying one.
    pub name: Option<String>,
}

/// What `remove` took away.
#[derive(Debug, Clone, PartialEq)]
pub enum Removed {
    Known(KnownDevice),
    Pending(PendingDevice),
}

/// An open devices store.
pub struct DeviceStore {
    conn: Connection,
    path: PathBuf,
}

impl DeviceStore {
    /// Opens the store under `home`, creating `home` and the store if needed.
    pub fn open(home: &Path) -> Result<DeviceStore, StoreError> {
        std::fs::create_dir_all(home).map_err(|source| StoreError::Io {
            path: home.to_path_buf(),
            source,
        })?;
        let path = home.join(STORE_FILE);
        let conn = Connection::open(&path).map_err(sql(&path))?;
        let store = DeviceStore { conn, path };
        store.init()?;
        Ok(store)
    }

    /// Opens the store if it exists; `Ok(None)` otherwise (read-only commands create
    /// nothing).
    pub fn open_existing(home: &Path) -> Result<Option<DeviceStore>, StoreError> {
        if !home.join(STORE_FILE).exists() {
            return Ok(None);
        }
        DeviceStore::open(home).map(Some)
    }

    fn init(&self) -> Result<(), StoreError> {
        self.conn
            .busy_timeout(Duration::from_secs(10))
            .map_err(sql(&self.path))?;
        self.conn
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 CREATE TABLE IF NOT EXISTS known_devices (
                     id TEXT PRIMARY KEY,
                     name TEXT,
                     addresses TEXT NOT NULL DEFAULT '[]',
                     added_at INTEGER NOT NULL,
                     last_seen INTEGER
                 );
                 CREATE TABLE IF NOT EXISTS pending_devices (
                     id TEXT PRIMARY KEY,
                     address TEXT,
                     first_seen INTEGER NOT NULL,
                     last_seen INTEGER NOT NULL,
                     attempts INTEGER NOT NULL DEFAULT 1,
                     name TEXT
                 );
                 CREATE TABLE IF NOT EXISTS device_limits (
                     id TEXT PRIMARY KEY,
                     bandwidth_limit INTEGER NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS device_limit_schedules (
                     id TEXT PRIMARY KEY,
                     schedule TEXT NOT NULL
                 );",
            )
            .map_err(sql(&self.path))
    }

    /// Adds a device (or updates a known one: a given name replaces its name, given
    /// addresses are added to its own). A pending device of that ID is accepted: it
    /// leaves the pending list, and its last address is kept when none is given.
    pub fn add(
        &mut self,
        id: DeviceId,
        name: Option<&str>,
        addresses: &[String],
        now: i64,
    ) -> Result<KnownDevice, StoreError> {
        let path = self.path.clone();
        let tx = self.write().map_err(sql(&path))?;
        if let Some(name) = name {
            let other: Option<String> = tx
                .query_row(
                    "SELECT id FROM known_devices WHERE name = ?1 AND id != ?2",
                    params![name, id.to_string()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql(&path))?;
            if other.is_some() {
                return Err(StoreError::NameTaken(name.to_string()));
            }
        }
        let pending = query_pending(&tx, Some(&id), &path)?.into_iter().next();
        let existing = query_known(&tx, Some(&id), &path)?.into_iter().next();
        let mut addrs = existing
            .as_ref()
            .map(|k| k.addresses.clone())
            .unwrap_or_default();
        for a in addresses {
            if !addrs.contains(a) {
                addrs.push(a.clone());
            }
        }
        if addrs.is_empty() {
            if let Some(a) = pending.as_ref().and_then(|p| p.address.clone()) {
                addrs.push(a);
            }
        }
        let name = name
            .map(str::to_string)
            .or_else(|| existing.as_ref().and_then(|k| k.name.clone()))
            .or_else(|| pending.as_ref().and_then(|p| p.name.clone()));
        let addrs_json = serde_json::to_string(&addrs).unwrap_or_else(|_| "[]".into());
        tx.execute(
            "INSERT INTO known_devices (id, name, addresses, added_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET name = ?2, addresses = ?3",
            params![id.to_string(), name, addrs_json, now],
        )
        .map_err(sql(&path))?;
        tx.execute(
            "DELETE FROM pending_devices WHERE id = ?1",
            params![id.to_string()],
        )
        .map_err(sql(&path))?;
        let added = query_known(&tx, Some(&id), &path)?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        tx.commit().map_err(sql(&path))?;
        Ok(added)
    }

    /// Sets the bandwidth limit of everything exchanged with a device (bytes per
    /// second each way; 0: none).
    pub fn set_bandwidth_limit(&mut self, id: &DeviceId, limit: u64) -> Result<(), StoreError> {
        self.set_bandwidth(id, &BandwidthLimit::fixed(limit))
    }

    /// Sets the bandwidth limit of everything exchanged with a device, one rate or a
    /// schedule (`device_limits` holds the rate outside its windows,
    /// `device_limit_schedules` the schedule's text).
    pub fn set_bandwidth(
        &mut self,
        id: &DeviceId,
        limit: &BandwidthLimit,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self.write().map_err(sql(&path))?;
        let key = id.to_string();
        tx.execute("DELETE FROM device_limits WHERE id = ?1", [&key])
            .map_err(sql(&path))?;
        tx.execute("DELETE FROM device_limit_schedules WHERE id = ?1", [&key])
            .map_err(sql(&path))?;
        if !limit.is_unlimited() {
            tx.execute(
                "INSERT INTO device_limits (id, bandwidth_limit) VALUES (?1, ?2)",
                params![key, limit.base as i64],
            )
            .map_err(sql(&path))?;
        }
        if limit.is_scheduled() && !limit.is_unlimited() {
            tx.execute(
                "INSERT INTO device_limit_schedules (id, schedule) VALUES (?1, ?2)",
                params![key, limit.to_string()],
            )
            .map_err(sql(&path))?;
        }
        tx.commit().map_err(sql(&path))?;
        Ok(())
    }

    /// Every device's bandwidth limit that is set.
    pub fn bandwidth_limits(
        &self,
    ) -> Result<std::collections::HashMap<DeviceId, BandwidthLimit>, StoreError> {
        let path = self.path.clone();
        let mut st = self
            .conn
            .prepare(
                "SELECT l.id, l.bandwidth_limit, s.schedule FROM device_limits l
                 LEFT JOIN device_limit_schedules s ON s.id = l.id",
            )
            .map_err(sql(&path))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .map_err(sql(&path))?;
        let mut out = std::collections::HashMap::new();
        for row in rows {
            let (id, limit, schedule) = row.map_err(sql(&path))?;
            let Ok(id) = id.parse::<DeviceId>() else {
                continue;
            };
            let limit = match schedule {
                Some(text) => {
                    BandwidthLimit::parse(&text).map_err(|source| StoreError::BadLimit {
                        id: id.to_string(),
                        source,
                    })?
                }
                None => BandwidthLimit::fixed(limit.max(0) as u64),
            };
            out.insert(id, limit);
        }
        Ok(out)
    }

    /// A write transaction that takes the write lock at once (`IMMEDIATE`): one that
    /// read first would fail with "database is locked" (`SQLITE_BUSY_SNAPSHOT`, no busy
    /// wait) when the daemon's node wrote in between, as `ferry device add` and a
    /// running daemon do.
    fn write(&mut self) -> rusqlite::Result<rusqlite::Transaction<'_>> {
        self.conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
    }

    /// Removes a known or pending device, named by ID or by its (unique) name.
    pub fn remove(&mut self, id_or_name: &str) -> Result<Removed, StoreError> {
        let path = self.path.clone();
        let target = self.resolve(id_or_name)?;
        let tx = self.write().map_err(sql(&path))?;
        let removed = if let Some(k) = query_known(&tx, Some(&target), &path)?.pop() {
            Removed::Known(k)
        } else if let Some(p) = query_pending(&tx, Some(&target), &path)?.pop() {
            Removed::Pending(p)
        } else {
            return Err(StoreError::NotFound(id_or_name.to_string()));
        };
        for table in ["known_devices", "pending_devices"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE id = ?1"),
                params![target.to_string()],
            )
            .map_err(sql(&path))?;
        }
        tx.commit().map_err(sql(&path))?;
        Ok(removed)
    }

    /// The device an ID or a name stands for (an ID need not be known yet).
    pub fn resolve(&self, id_or_name: &str) -> Result<DeviceId, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM known_devices WHERE name = ?1")
            .map_err(sql(&self.path))?;
        let ids: Vec<String> = stmt
            .query_map(params![id_or_name], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(sql(&self.path))?;
        match ids.len() {
            0 => id_or_name
                .parse()
                .map_err(|_| StoreError::NotFound(id_or_name.to_string())),
            1 => ids[0]
                .parse()
                .map_err(|_| StoreError::BadId(ids[0].clone())),
            count => Err(StoreError::Ambiguous {
                name: id_or_name.to_string(),
                count,
            }),
        }
    }

    pub fn known(&self) -> Result<Vec<KnownDevice>, StoreError> {
        query_known(&self.conn, None, &self.path)
    }

    pub fn get(&self, id: &DeviceId) -> Result<Option<KnownDevice>, StoreError> {
        Ok(query_known(&self.conn, Some(id), &self.path)?.pop())
    }

    pub fn pending(&self) -> Result<Vec<PendingDevice>, StoreError> {
        query_pending(&self.conn, None, &self.path)
    }

    /// Records an attempt by an unknown device (a known one is left alone).
    pub fn record_pending(
        &self,
        id: DeviceId,
        address: Option<&str>,
        name: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO pending_devices (id, address, first_seen, last_seen, attempts, name)
                 SELECT ?1, ?2, ?3, ?3, 1, ?4
                 WHERE NOT EXISTS (SELECT 1 FROM known_devices WHERE id = ?1)
                 ON CONFLICT(id) DO UPDATE SET address = COALESCE(?2, address),
                     last_seen = ?3, attempts = attempts + 1, name = COALESCE(?4, name)",
                params![id.to_string(), address, now, name],
            )
            .map_err(sql(&self.path))?;
        self.conn
            .execute(
                "DELETE FROM pending_devices WHERE id NOT IN
                     (SELECT id FROM pending_devices ORDER BY last_seen DESC, id LIMIT ?1)",
                params![MAX_PENDING as i64],
            )
            .map_err(sql(&self.path))?;
        Ok(())
    }

    /// Notes that a known device was connected at `now`; fills in its name from its
    /// hello when the user gave none.
    pub fn seen(&self, id: &DeviceId, name: Option<&str>, now: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE known_devices SET last_seen = ?2,
                     name = COALESCE(name, (SELECT ?3 WHERE NOT EXISTS
                         (SELECT 1 FROM known_devices WHERE name = ?3)))
                 WHERE id = ?1",
                params![id.to_string(), now, name.filter(|n| !n.is_empty())],
            )
            .map_err(sql(&self.path))?;
        Ok(())
    }
}

/// id, name, addresses (JSON), added_at, last_seen.
type KnownRow = (String, Option<String>, String, i64, Option<i64>);
/// id, address, first_seen, last_seen, attempts, name.
type PendingRow = (String, Option<String>, i64, i64, i64, Option<String>);

fn query_known(
    conn: &Connection,
    id: Option<&DeviceId>,
    path: &Path,
) -> Result<Vec<KnownDevice>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT id, name, addresses, added_at, last_seen FROM known_devices
             WHERE ?1 IS NULL OR id = ?1 ORDER BY added_at, id",
        )
        .map_err(sql(path))?;
    let rows: Vec<KnownRow> = stmt
        .query_map(params![id.map(|i| i.to_string())], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .and_then(|rows| rows.collect())
        .map_err(sql(path))?;
    rows.into_iter()
        .map(|(id, name, addrs, added_at, last_seen)| {
            Ok(KnownDevice {
                id: id.parse().map_err(|_| StoreError::BadId(id.clone()))?,
                name,
                addresses: serde_json::from_str(&addrs).unwrap_or_default(),
                added_at,
                last_seen,
            })
        })
        .collect()
}

fn query_pending(
    conn: &Connection,
    id: Option<&DeviceId>,
    path: &Path,
) -> Result<Vec<PendingDevice>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT id, address, first_seen, last_seen, attempts, name FROM pending_devices
             WHERE ?1 IS NULL OR id = ?1 ORDER BY first_seen, id",
        )
        .map_err(sql(path))?;
    let rows: Vec<PendingRow> = stmt
        .query_map(params![id.map(|i| i.to_string())], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .and_then(|rows| rows.collect())
        .map_err(sql(path))?;
    rows.into_iter()
        .map(|(id, address, first_seen, last_seen, attempts, name)| {
            Ok(PendingDevice {
                id: id.parse().map_err(|_| StoreError::BadId(id.clone()))?,
                address,
                first_seen,
                last_seen,
                attempts: attempts.max(0) as u64,
                name,
            })
        })
        .collect()
}

fn sql(path: &Path) -> impl FnOnce(rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Sql { path, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iroh::SecretKey;

    fn dev(n: u8) -> DeviceId {
        DeviceId::from_public_key(SecretKey::from_bytes(&[n; 32]).public())
    }

    /// The CLI adding devices while the daemon records attempts and sightings, in two
    /// processes' worth of connections: every write lands, none fails as locked.
    #[test]
    fn concurrent_writers_wait_instead_of_failing() {
        let home = tempfile::tempdir().unwrap();
        DeviceStore::open(home.path()).unwrap();
        let daemon = {
            let home = home.path().to_path_buf();
            std::thread::spawn(move || {
                let s = DeviceStore::open(&home).unwrap();
                for i in 0..200u8 {
                    s.record_pending(dev(100 + (i % 50)), Some("10.0.0.9:1"), None, i64::from(i))
                        .unwrap();
                    s.seen(&dev(i % 50), None, i64::from(i)).unwrap();
                }
            })
        };
        let mut cli = DeviceStore::open(home.path()).unwrap();
        for i in 0..50u8 {
            cli.add(dev(i), None, &[], i64::from(i)).unwrap();
            let _ = cli.known().unwrap();
        }
        daemon.join().unwrap();
        assert_eq!(cli.known().unwrap().len(), 50);
    }

    #[test]
    fn add_list_and_remove_by_name_or_id() {
        let home = tempfile::tempdir().unwrap();
        let mut s = DeviceStore::open(home.path()).unwrap();
        s.add(dev(1), Some("laptop"), &["10.0.0.1:22100".into()], 100)
            .unwrap();
        s.add(dev(2), None, &[], 101).unwrap();
        let known = s.known().unwrap();
        assert_eq!(known.len(), 2);
        assert_eq!(known[0].name.as_deref(), Some("laptop"));
        assert_eq!(known[0].addresses, vec!["10.0.0.1:22100".to_string()]);
        assert!(matches!(s.remove("laptop").unwrap(), Removed::Known(k) if k.id == dev(1)));
        assert!(matches!(
            s.remove(&dev(2).to_string()).unwrap(),
            Removed::Known(_)
        ));
        assert!(matches!(s.remove("laptop"), Err(StoreError::NotFound(_))));
        assert!(s.known().unwrap().is_empty());
    }

    #[test]
    fn adding_again_merges_addresses_and_keeps_the_name() {
        let home = tempfile::tempdir().unwrap();
        let mut s = DeviceStore::open(home.path()).unwrap();
        s.add(dev(1), Some("nas"), &["a:1".into()], 1).unwrap();
        let k = s
            .add(dev(1), None, &["b:2".into(), "a:1".into()], 2)
            .unwrap();
        assert_eq!(k.name.as_deref(), Some("nas"));
        assert_eq!(k.addresses, vec!["a:1".to_string(), "b:2".to_string()]);
        assert_eq!(k.added_at, 1);
    }

    #[test]
    fn a_name_is_unique() {
        let home = tempfile::tempdir().unwrap();
        let mut s = DeviceStore::open(home.path()).unwrap();
        s.add(dev(1), Some("nas"), &[], 1).unwrap();
        assert!(matches!(
            s.add(dev(2), Some("nas"), &[], 1),
            Err(StoreError::NameTaken(_))
        ));
    }

    #[test]
    fn pending_counts_attempts_and_adding_accepts_it() {
        let home = tempfile::tempdir().unwrap();
        let mut s = DeviceStore::open(home.path()).unwrap();
        s.record_pending(dev(3), Some("1.2.3.4:5"), None, 10)
            .unwrap();
        s.record_pending(dev(3), None, Some("phone"), 20).unwrap();
        let p = s.pending().unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].first_seen, p[0].last_seen, p[0].attempts),
            (10, 20, 2)
        );
        assert_eq!(p[0].address.as_deref(), Some("1.2.3.4:5"));
        let k = s.add(dev(3), None, &[], 30).unwrap();
        assert_eq!(k.addresses, vec!["1.2.3.4:5".to_string()]);
        assert_eq!(k.name.as_deref(), Some("phone"));
        assert!(s.pending().unwrap().is_empty());
        // A known device is never recorded as pending.
        s.record_pending(dev(3), None, None, 40).unwrap();
        assert!(s.pending().unwrap().is_empty());
    }

    #[test]
    fn pending_devices_are_capped_keeping_the_latest() {
        let home = tempfile::tempdir().unwrap();
        let s = DeviceStore::open(home.path()).unwrap();
        for n in 0..(MAX_PENDING as u8 + 5) {
            s.record_pending(dev(n), None, None, i64::from(n)).unwrap();
        }
        let p = s.pending().unwrap();
        assert_eq!(p.len(), MAX_PENDING);
        assert!(p.iter().all(|d| d.last_seen >= 5));
    }

    #[test]
    fn seen_sets_last_seen_and_a_missing_name() {
        let home = tempfile::tempdir().unwrap();
        let mut s = DeviceStore::open(home.path()).unwrap();
        s.add(dev(1), None, &[], 1).unwrap();
        s.seen(&dev(1), Some("desk"), 50).unwrap();
        let k = s.get(&dev(1)).unwrap().unwrap();
        assert_eq!((k.last_seen, k.name.as_deref()), (Some(50), Some("desk")));
        s.seen(&dev(1), Some("other"), 60).unwrap();
        let k = s.get(&dev(1)).unwrap().unwrap();
        assert_eq!((k.last_seen, k.name.as_deref()), (Some(60), Some("desk")));
    }

    #[test]
    fn open_existing_creates_nothing() {
        let home = tempfile::tempdir().unwrap();
        assert!(DeviceStore::open_existing(home.path()).unwrap().is_none());
        assert!(!home.path().join(STORE_FILE).exists());
    }
}
