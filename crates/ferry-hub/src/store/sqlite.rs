//! The embedded metadata store: one SQLite file under the hub's home (WAL).
//!
//! Writes take the write lock at once (`BEGIN IMMEDIATE`), so two connections to the
//! same file serialize instead of failing half way; a compare-and-swap reads and
//! writes the head inside that one transaction.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::meta::{to_epoch, to_i64, to_u64};
use super::{
    AppendOutcome, CasOutcome, CompactOutcome, DeviceRecord, GcPlan, LogRecord, ManifestHead,
    MetaStore, ObjectState, SlotRecord, StoreError,
};
use crate::{Epoch, ObjectId, ShareId};

fn object_id(raw: Vec<u8>) -> Result<ObjectId, StoreError> {
    <[u8; 32]>::try_from(raw.as_slice())
        .map(ObjectId::from_bytes)
        .map_err(|_| StoreError::OutOfRange("object ID"))
}

/// Takes `bytes` off the share's usage (never below 0).
fn uncount(tx: &Transaction, share: &str, bytes: i64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE share_usage SET bytes = MAX(0, bytes - ?2) WHERE share = ?1",
        params![share, bytes],
    )?;
    Ok(())
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS share_changes (
    share TEXT PRIMARY KEY,
    changes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    share TEXT NOT NULL,
    device_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    PRIMARY KEY (share, device_id)
);
CREATE TABLE IF NOT EXISTS key_slots (
    share TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    label TEXT NOT NULL,
    slot BLOB NOT NULL,
    PRIMARY KEY (share, epoch, label)
);
CREATE TABLE IF NOT EXISTS manifest_heads (
    share TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    manifest BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS restore_verifiers (
    share TEXT PRIMARY KEY,
    verifier BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS share_usage (
    share TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS removed_devices (
    share TEXT NOT NULL,
    device_id TEXT NOT NULL,
    PRIMARY KEY (share, device_id)
);
CREATE TABLE IF NOT EXISTS allowed_devices (
    device_id TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS logs (
    share TEXT NOT NULL,
    device_id TEXT NOT NULL,
    after INTEGER NOT NULL,
    upto INTEGER NOT NULL,
    batch BLOB NOT NULL,
    PRIMARY KEY (share, device_id, upto)
);
CREATE TABLE IF NOT EXISTS objects (
    share TEXT NOT NULL,
    id BLOB NOT NULL,
    bytes INTEGER NOT NULL,
    touched INTEGER NOT NULL,
    doomed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (share, id)
);
CREATE TABLE IF NOT EXISTS log_refs (
    share TEXT NOT NULL,
    device_id TEXT NOT NULL,
    id BLOB NOT NULL,
    PRIMARY KEY (share, id, device_id)
);
CREATE INDEX IF NOT EXISTS log_refs_by_device ON log_refs (share, device_id);
CREATE TABLE IF NOT EXISTS log_refs_at (
    share TEXT NOT NULL,
    device_id TEXT NOT NULL,
    upto INTEGER NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (share, device_id)
);
CREATE TABLE IF NOT EXISTS staged_records (
    share TEXT NOT NULL,
    device_id TEXT NOT NULL,
    after INTEGER NOT NULL,
    upto INTEGER NOT NULL,
    batch BLOB NOT NULL,
    PRIMARY KEY (share, device_id, upto)
);
CREATE TABLE IF NOT EXISTS staged_refs (
    share TEXT NOT NULL,
    device_id TEXT NOT NULL,
    id BLOB NOT NULL,
    PRIMARY KEY (share, device_id, id)
);
CREATE TABLE IF NOT EXISTS hub_facts (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// Metadata in a SQLite file. Cheap to clone (one connection behind a mutex); open
/// the same file twice to get two independent writers.
#[derive(Clone)]
pub struct SqliteMeta {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteMeta")
    }
}

fn bump(tx: &Transaction, share: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO share_changes (share, changes) VALUES (?1, 1)
         ON CONFLICT (share) DO UPDATE SET changes = changes + 1",
        params![share],
    )?;
    Ok(())
}

impl SqliteMeta {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteMeta {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection off the async runtime's threads.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| StoreError::Task("SQLite connection lock poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `f` in an immediate (write-locked) transaction and commits.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction) -> Result<T, StoreError> + Send + 'static,
    {
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })
        .await
    }
}

impl MetaStore for SqliteMeta {
    async fn add_device(&self, share: &ShareId, device: &DeviceRecord) -> Result<(), StoreError> {
        let (share, device) = (share.to_string(), device.clone());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO devices (share, device_id, recipient) VALUES (?1, ?2, ?3)
                 ON CONFLICT (share, device_id) DO UPDATE SET recipient = excluded.recipient",
                params![share, device.device_id, device.recipient],
            )?;
            bump(tx, &share)
        })
        .await
    }

    async fn remove_device(&self, share: &ShareId, device_id: &str) -> Result<bool, StoreError> {
        let (share, device_id) = (share.to_string(), device_id.to_owned());
        self.write(move |tx| {
            let removed = tx.execute(
                "DELETE FROM devices WHERE share = ?1 AND device_id = ?2",
                params![share, device_id],
            )? > 0;
            tx.execute(
                "INSERT OR IGNORE INTO removed_devices (share, device_id) VALUES (?1, ?2)",
                params![share, device_id],
            )?;
            if removed {
                bump(tx, &share)?;
            }
            Ok(removed)
        })
        .await
    }

    async fn reserve_bytes(
        &self,
        share: &ShareId,
        bytes: u64,
        limit: Option<u64>,
    ) -> Result<bool, StoreError> {
        let share = share.to_string();
        let (bytes, limit) = (to_i64(bytes)?, to_i64(limit.unwrap_or(i64::MAX as u64))?);
        self.write(move |tx| {
            Ok(tx.execute(
                "INSERT INTO share_usage (share, bytes) SELECT ?1, ?2 WHERE ?2 <= ?3
                 ON CONFLICT (share) DO UPDATE SET bytes = share_usage.bytes + excluded.bytes
                 WHERE share_usage.bytes + excluded.bytes <= ?3",
                params![share, bytes, limit],
            )? > 0)
        })
        .await
    }

    async fn release_bytes(&self, share: &ShareId, bytes: u64) -> Result<(), StoreError> {
        let (share, bytes) = (share.to_string(), to_i64(bytes)?);
        self.write(move |tx| {
            tx.execute(
                "UPDATE share_usage SET bytes = MAX(0, bytes - ?2) WHERE share = ?1",
                params![share, bytes],
            )?;
            Ok(())
        })
        .await
    }

    async fn stored_bytes(&self, share: &ShareId) -> Result<u64, StoreError> {
        let share = share.to_string();
        self.run(move |conn| {
            let b: Option<i64> = conn
                .query_row(
                    "SELECT bytes FROM share_usage WHERE share = ?1",
                    params![share],
                    |r| r.get(0),
                )
                .optional()?;
            to_u64(b.unwrap_or(0))
        })
        .await
    }

    async fn set_restore_verifier(
        &self,
        share: &ShareId,
        verifier: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let (share, verifier) = (share.to_string(), verifier.map(<[u8]>::to_vec));
        self.write(move |tx| {
            match verifier {
                Some(v) => tx.execute(
                    "INSERT INTO restore_verifiers (share, verifier) VALUES (?1, ?2)
                     ON CONFLICT (share) DO UPDATE SET verifier = excluded.verifier",
                    params![share, v],
                )?,
                None => tx.execute(
                    "DELETE FROM restore_verifiers WHERE share = ?1",
                    params![share],
                )?,
            };
            bump(tx, &share)
        })
        .await
    }

    async fn restore_verifier(&self, share: &ShareId) -> Result<Option<Vec<u8>>, StoreError> {
        let share = share.to_string();
        self.run(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT verifier FROM restore_verifiers WHERE share = ?1",
                    params![share],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn removed_devices(&self, share: &ShareId) -> Result<Vec<String>, StoreError> {
        let share = share.to_string();
        self.run(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT device_id FROM removed_devices WHERE share = ?1 ORDER BY device_id",
            )?;
            let rows = stmt.query_map(params![share], |row| row.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn create_epoch(
        &self,
        share: &ShareId,
        epoch: Epoch,
        slots: &[SlotRecord],
    ) -> Result<bool, StoreError> {
        let (share, slots) = (share.to_string(), slots.to_vec());
        self.write(move |tx| {
            let latest: Option<i64> = tx.query_row(
                "SELECT MAX(epoch) FROM key_slots WHERE share = ?1",
                params![share],
                |r| r.get(0),
            )?;
            if latest.unwrap_or(0) + 1 != i64::from(epoch.0) {
                return Ok(false);
            }
            for slot in &slots {
                tx.execute(
                    "INSERT INTO key_slots (share, epoch, label, slot) VALUES (?1, ?2, ?3, ?4)",
                    params![share, epoch.0, slot.label, slot.slot],
                )?;
            }
            bump(tx, &share)?;
            Ok(true)
        })
        .await
    }

    async fn devices(&self, share: &ShareId) -> Result<Vec<DeviceRecord>, StoreError> {
        let share = share.to_string();
        self.run(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT device_id, recipient FROM devices WHERE share = ?1 ORDER BY device_id",
            )?;
            let rows = stmt.query_map(params![share], |row| {
                Ok(DeviceRecord {
                    device_id: row.get(0)?,
                    recipient: row.get(1)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn put_key_slots(
        &self,
        share: &ShareId,
        epoch: Epoch,
        slots: &[SlotRecord],
    ) -> Result<(), StoreError> {
        let (share, slots) = (share.to_string(), slots.to_vec());
        self.write(move |tx| {
            for slot in &slots {
                tx.execute(
                    "INSERT INTO key_slots (share, epoch, label, slot) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (share, epoch, label) DO UPDATE SET slot = excluded.slot",
                    params![share, epoch.0, slot.label, slot.slot],
                )?;
            }
            bump(tx, &share)
        })
        .await
    }

    async fn key_slots(
        &self,
        share: &ShareId,
        epoch: Epoch,
    ) -> Result<Vec<SlotRecord>, StoreError> {
        let share = share.to_string();
        self.run(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT label, slot FROM key_slots WHERE share = ?1 AND epoch = ?2 ORDER BY label",
            )?;
            let rows = stmt.query_map(params![share, epoch.0], |row| {
                Ok(SlotRecord {
                    label: row.get(0)?,
                    slot: row.get(1)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn latest_epoch(&self, share: &ShareId) -> Result<Option<Epoch>, StoreError> {
        let share = share.to_string();
        self.run(move |conn| {
            let epoch: Option<i64> = conn.query_row(
                "SELECT MAX(epoch) FROM key_slots WHERE share = ?1",
                params![share],
                |row| row.get(0),
            )?;
            epoch.map(to_epoch).transpose()
        })
        .await
    }

    async fn manifest_head(&self, share: &ShareId) -> Result<Option<ManifestHead>, StoreError> {
        let share = share.to_string();
        self.run(move |conn| {
            let row: Option<(i64, Vec<u8>)> = conn
                .query_row(
                    "SELECT version, manifest FROM manifest_heads WHERE share = ?1",
                    params![share],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            row.map(|(version, manifest)| {
                Ok(ManifestHead {
                    version: to_u64(version)?,
                    manifest,
                })
            })
            .transpose()
        })
        .await
    }

    async fn swap_manifest_head(
        &self,
        share: &ShareId,
        expected: u64,
        manifest: &[u8],
    ) -> Result<CasOutcome, StoreError> {
        let (share, manifest) = (share.to_string(), manifest.to_vec());
        let next = to_i64(expected)?
            .checked_add(1)
            .ok_or(StoreError::OutOfRange("manifest version"))?;
        self.write(move |tx| {
            let current: Option<i64> = tx
                .query_row(
                    "SELECT version FROM manifest_heads WHERE share = ?1",
                    params![share],
                    |row| row.get(0),
                )
                .optional()?;
            let current = to_u64(current.unwrap_or(0))?;
            if current != expected {
                return Ok(CasOutcome::Conflict { current });
            }
            tx.execute(
                "INSERT INTO manifest_heads (share, version, manifest) VALUES (?1, ?2, ?3)
                 ON CONFLICT (share) DO UPDATE SET version = excluded.version, manifest = excluded.manifest",
                params![share, next, manifest],
            )?;
            bump(tx, &share)?;
            Ok(CasOutcome::Swapped {
                version: to_u64(next)?,
            })
        })
        .await
    }

    async fn change_counter(&self, share: &ShareId) -> Result<u64, StoreError> {
        let share = share.to_string();
        self.run(move |conn| {
            let changes: Option<i64> = conn
                .query_row(
                    "SELECT changes FROM share_changes WHERE share = ?1",
                    params![share],
                    |row| row.get(0),
                )
                .optional()?;
            to_u64(changes.unwrap_or(0))
        })
        .await
    }

    async fn member_shares(&self, device_id: &str) -> Result<Vec<ShareId>, StoreError> {
        let device_id = device_id.to_owned();
        self.run(move |conn| {
            let mut stmt =
                conn.prepare("SELECT share FROM devices WHERE device_id = ?1 ORDER BY share")?;
            let rows = stmt.query_map(params![device_id], |row| row.get::<_, String>(0))?;
            let mut out = Vec::new();
            for r in rows {
                let r = r?;
                out.push(r.parse().map_err(|_| StoreError::OutOfRange("share ID"))?);
            }
            Ok(out)
        })
        .await
    }

    async fn allow_device(&self, device_id: &str) -> Result<(), StoreError> {
        let device_id = device_id.to_owned();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO allowed_devices (device_id) VALUES (?1) ON CONFLICT DO NOTHING",
                params![device_id],
            )?;
            Ok(())
        })
        .await
    }

    async fn is_allowed(&self, device_id: &str) -> Result<bool, StoreError> {
        let device_id = device_id.to_owned();
        self.run(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT 1 FROM allowed_devices WHERE device_id = ?1",
                    params![device_id],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
        .await
    }

    async fn append_log(
        &self,
        share: &ShareId,
        device_id: &str,
        after: u64,
        upto: u64,
        batch: &[u8],
    ) -> Result<AppendOutcome, StoreError> {
        let (share, device_id, batch) = (share.to_string(), device_id.to_owned(), batch.to_vec());
        let (after_i, upto_i) = (to_i64(after)?, to_i64(upto)?);
        self.write(move |tx| {
            let head: Option<i64> = tx.query_row(
                "SELECT MAX(upto) FROM logs WHERE share = ?1 AND device_id = ?2",
                params![share, device_id],
                |row| row.get(0),
            )?;
            let ok = match head {
                None => after == 0 && upto >= after,
                Some(h) => h == after_i && upto > after,
            };
            if !ok {
                return Ok(AppendOutcome::Conflict {
                    head: to_u64(head.unwrap_or(0))?,
                });
            }
            tx.execute(
                "INSERT INTO logs (share, device_id, after, upto, batch) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![share, device_id, after_i, upto_i, batch],
            )?;
            bump(tx, &share)?;
            Ok(AppendOutcome::Appended)
        })
        .await
    }

    async fn log_after(
        &self,
        share: &ShareId,
        device_id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let (share, device_id, after) = (share.to_string(), device_id.to_owned(), to_i64(after)?);
        self.run(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT after, upto, batch FROM logs WHERE share = ?1 AND device_id = ?2
                 AND (upto > ?3 OR (upto = 0 AND ?3 = 0)) ORDER BY upto LIMIT ?4",
            )?;
            let rows = stmt.query_map(params![share, device_id, after, limit], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for r in rows {
                let (a, u, batch) = r?;
                out.push(LogRecord {
                    after: to_u64(a)?,
                    upto: to_u64(u)?,
                    batch,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn log_heads(&self, share: &ShareId) -> Result<Vec<(String, u64)>, StoreError> {
        let share = share.to_string();
        self.run(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT device_id, MAX(upto) FROM logs WHERE share = ?1
                 GROUP BY device_id ORDER BY device_id",
            )?;
            let rows = stmt.query_map(params![share], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            let mut out = Vec::new();
            for r in rows {
                let (d, u) = r?;
                out.push((d, to_u64(u)?));
            }
            Ok(out)
        })
        .await
    }

    async fn touch_objects(
        &self,
        share: &ShareId,
        ids: &[ObjectId],
        now_ms: i64,
    ) -> Result<Vec<ObjectState>, StoreError> {
        let (share, ids) = (share.to_string(), ids.to_vec());
        self.write(move |tx| {
            let mut out = Vec::with_capacity(ids.len());
            for id in &ids {
                let doomed: Option<i64> = tx
                    .query_row(
                        "SELECT doomed FROM objects WHERE share = ?1 AND id = ?2",
                        params![share, &id.as_bytes()[..]],
                        |row| row.get(0),
                    )
                    .optional()?;
                out.push(match doomed {
                    None => ObjectState::Absent,
                    Some(0) => {
                        tx.execute(
                            "UPDATE objects SET touched = MAX(touched, ?3)
                             WHERE share = ?1 AND id = ?2",
                            params![share, &id.as_bytes()[..], now_ms],
                        )?;
                        ObjectState::Present
                    }
                    Some(_) => ObjectState::Doomed,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn record_object(
        &self,
        share: &ShareId,
        id: &ObjectId,
        bytes: u64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (share, id, bytes) = (share.to_string(), *id, to_i64(bytes)?);
        self.write(move |tx| {
            let new = tx.execute(
                "INSERT OR IGNORE INTO objects (share, id, bytes, touched) VALUES (?1, ?2, ?3, ?4)",
                params![share, &id.as_bytes()[..], bytes, now_ms],
            )? == 1;
            if !new {
                tx.execute(
                    "UPDATE objects SET touched = MAX(touched, ?3)
                     WHERE share = ?1 AND id = ?2 AND doomed = 0",
                    params![share, &id.as_bytes()[..], now_ms],
                )?;
            }
            Ok(new)
        })
        .await
    }

    async fn stage_compaction(
        &self,
        share: &ShareId,
        device_id: &str,
        begin: bool,
        records: &[LogRecord],
        refs: &[ObjectId],
    ) -> Result<u64, StoreError> {
        let (share, device) = (share.to_string(), device_id.to_owned());
        let (records, refs) = (records.to_vec(), refs.to_vec());
        self.write(move |tx| {
            let mut dropped = 0i64;
            if begin {
                dropped = tx.query_row(
                    "SELECT COALESCE(SUM(LENGTH(batch)), 0) FROM staged_records
                     WHERE share = ?1 AND device_id = ?2",
                    params![share, device],
                    |row| row.get(0),
                )?;
                tx.execute(
                    "DELETE FROM staged_records WHERE share = ?1 AND device_id = ?2",
                    params![share, device],
                )?;
                tx.execute(
                    "DELETE FROM staged_refs WHERE share = ?1 AND device_id = ?2",
                    params![share, device],
                )?;
                uncount(tx, &share, dropped)?;
            }
            for r in &records {
                let replaced: i64 = tx.query_row(
                    "SELECT COALESCE(SUM(LENGTH(batch)), 0) FROM staged_records
                     WHERE share = ?1 AND device_id = ?2 AND upto = ?3",
                    params![share, device, to_i64(r.upto)?],
                    |row| row.get(0),
                )?;
                tx.execute(
                    "INSERT OR REPLACE INTO staged_records (share, device_id, after, upto, batch)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![share, device, to_i64(r.after)?, to_i64(r.upto)?, r.batch],
                )?;
                uncount(tx, &share, replaced)?;
                dropped += replaced;
            }
            for id in &refs {
                tx.execute(
                    "INSERT OR IGNORE INTO staged_refs (share, device_id, id) VALUES (?1, ?2, ?3)",
                    params![share, device, &id.as_bytes()[..]],
                )?;
            }
            to_u64(dropped)
        })
        .await
    }

    async fn commit_compaction(
        &self,
        share: &ShareId,
        device_id: &str,
        upto: u64,
        now_ms: i64,
    ) -> Result<CompactOutcome, StoreError> {
        let (share, device, upto_i) = (share.to_string(), device_id.to_owned(), to_i64(upto)?);
        self.write(move |tx| {
            let staged: Vec<(i64, i64)> = {
                let mut stmt = tx.prepare(
                    "SELECT after, upto FROM staged_records WHERE share = ?1 AND device_id = ?2
                     ORDER BY upto",
                )?;
                let rows = stmt.query_map(params![share, device], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<Result<_, _>>()?
            };
            if let Some(why) = chain_problem(&staged, upto_i) {
                return Ok(CompactOutcome::Refused(why));
            }
            let boundary: Option<i64> = tx
                .query_row(
                    "SELECT upto FROM logs WHERE share = ?1 AND device_id = ?2 AND upto = ?3",
                    params![share, device, upto_i],
                    |row| row.get(0),
                )
                .optional()?;
            if boundary.is_none() {
                return Ok(CompactOutcome::Refused("not a record boundary of the log"));
            }
            let freed: i64 = tx.query_row(
                "SELECT COALESCE(SUM(LENGTH(batch)), 0) FROM logs
                 WHERE share = ?1 AND device_id = ?2 AND upto <= ?3",
                params![share, device, upto_i],
                |row| row.get(0),
            )?;
            tx.execute(
                "DELETE FROM logs WHERE share = ?1 AND device_id = ?2 AND upto <= ?3",
                params![share, device, upto_i],
            )?;
            tx.execute(
                "INSERT INTO logs (share, device_id, after, upto, batch)
                 SELECT share, device_id, after, upto, batch FROM staged_records
                 WHERE share = ?1 AND device_id = ?2",
                params![share, device],
            )?;
            tx.execute(
                "DELETE FROM staged_records WHERE share = ?1 AND device_id = ?2",
                params![share, device],
            )?;
            tx.execute(
                "DELETE FROM log_refs WHERE share = ?1 AND device_id = ?2",
                params![share, device],
            )?;
            tx.execute(
                "INSERT INTO log_refs (share, device_id, id)
                 SELECT share, device_id, id FROM staged_refs WHERE share = ?1 AND device_id = ?2",
                params![share, device],
            )?;
            tx.execute(
                "DELETE FROM staged_refs WHERE share = ?1 AND device_id = ?2",
                params![share, device],
            )?;
            tx.execute(
                "INSERT INTO log_refs_at (share, device_id, upto, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (share, device_id) DO UPDATE SET upto = excluded.upto, at = excluded.at",
                params![share, device, upto_i, now_ms],
            )?;
            uncount(tx, &share, freed)?;
            bump(tx, &share)?;
            Ok(CompactOutcome::Compacted {
                freed: to_u64(freed)?,
            })
        })
        .await
    }

    async fn doom_unreferenced(
        &self,
        share: &ShareId,
        cutoff_ms: i64,
    ) -> Result<GcPlan, StoreError> {
        let share = share.to_string();
        self.write(move |tx| {
            let blocked_by: Vec<String> = {
                let mut stmt = tx.prepare(
                    "SELECT DISTINCT l.device_id FROM logs l
                     JOIN devices d ON d.share = l.share AND d.device_id = l.device_id
                     WHERE l.share = ?1 AND NOT EXISTS (SELECT 1 FROM log_refs_at r
                         WHERE r.share = l.share AND r.device_id = l.device_id)
                     ORDER BY l.device_id",
                )?;
                let rows = stmt.query_map(params![share], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            if blocked_by.is_empty() {
                let oldest: Option<i64> = tx.query_row(
                    "SELECT MIN(r.at) FROM log_refs_at r
                     JOIN devices d ON d.share = r.share AND d.device_id = r.device_id
                     WHERE r.share = ?1",
                    params![share],
                    |row| row.get(0),
                )?;
                let before = oldest.map_or(cutoff_ms, |o| o.min(cutoff_ms));
                tx.execute(
                    "UPDATE objects SET doomed = 1
                     WHERE share = ?1 AND doomed = 0 AND touched < ?2
                     AND NOT EXISTS (SELECT 1 FROM log_refs r
                         JOIN devices d ON d.share = r.share AND d.device_id = r.device_id
                         WHERE r.share = objects.share AND r.id = objects.id)",
                    params![share, before],
                )?;
            }
            let mut stmt = tx.prepare(
                "SELECT id, bytes FROM objects WHERE share = ?1 AND doomed = 1 ORDER BY id",
            )?;
            let rows = stmt.query_map(params![share], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
            })?;
            let mut doomed = Vec::new();
            for r in rows {
                let (id, bytes) = r?;
                doomed.push((object_id(id)?, to_u64(bytes)?));
            }
            Ok(GcPlan { blocked_by, doomed })
        })
        .await
    }

    async fn forget_objects(&self, share: &ShareId, ids: &[ObjectId]) -> Result<u64, StoreError> {
        let (share, ids) = (share.to_string(), ids.to_vec());
        self.write(move |tx| {
            let mut freed = 0i64;
            let mut stmt = tx.prepare_cached(
                "DELETE FROM objects WHERE share = ?1 AND id = ?2 AND doomed = 1 RETURNING bytes",
            )?;
            for id in &ids {
                let bytes: Option<i64> = stmt
                    .query_row(params![share, &id.as_bytes()[..]], |row| row.get(0))
                    .optional()?;
                freed += bytes.unwrap_or(0);
            }
            drop(stmt);
            uncount(tx, &share, freed)?;
            to_u64(freed)
        })
        .await
    }

    async fn shares(&self) -> Result<Vec<ShareId>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn.prepare("SELECT share FROM share_changes ORDER BY share")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for r in rows {
                if let Ok(s) = r?.parse() {
                    out.push(s);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn objects_indexed(&self) -> Result<bool, StoreError> {
        self.run(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT value FROM hub_facts WHERE name = 'objects_indexed'",
                    [],
                    |row| row.get::<_, i64>(0),
                )
                .optional()?
                .is_some_and(|v| v != 0))
        })
        .await
    }

    async fn index_objects(
        &self,
        share: &ShareId,
        found: &[(ObjectId, u64)],
        now_ms: i64,
        done: bool,
    ) -> Result<(), StoreError> {
        let (share, found) = (share.to_string(), found.to_vec());
        self.write(move |tx| {
            for (id, bytes) in &found {
                tx.execute(
                    "INSERT OR IGNORE INTO objects (share, id, bytes, touched) VALUES (?1, ?2, ?3, ?4)",
                    params![share, &id.as_bytes()[..], to_i64(*bytes)?, now_ms],
                )?;
            }
            tx.execute(
                "INSERT INTO share_usage (share, bytes) VALUES (?1,
                     (SELECT COALESCE(SUM(bytes), 0) FROM objects WHERE share = ?1)
                   + (SELECT COALESCE(SUM(LENGTH(batch)), 0) FROM logs WHERE share = ?1)
                   + (SELECT COALESCE(SUM(LENGTH(batch)), 0) FROM staged_records WHERE share = ?1))
                 ON CONFLICT (share) DO UPDATE SET bytes = excluded.bytes",
                params![share],
            )?;
            if done {
                tx.execute(
                    "INSERT OR REPLACE INTO hub_facts (name, value) VALUES ('objects_indexed', 1)",
                    [],
                )?;
            }
            Ok(())
        })
        .await
    }
}

/// Why staged records `(after, upto)` (sorted by `upto`) do not cover `(0, upto]`.
pub(crate) fn chain_problem(staged: &[(i64, i64)], upto: i64) -> Option<&'static str> {
    let mut at = 0;
    for (i, &(a, u)) in staged.iter().enumerate() {
        if a != at || (u <= a && !(i == 0 && u == 0)) {
            return Some("the staged records leave a gap or overlap");
        }
        at = u;
    }
    if staged.is_empty() || at != upto {
        return Some("the staged records do not end at the compaction's head");
    }
    None
}
