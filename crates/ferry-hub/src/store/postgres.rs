//! Metadata in PostgreSQL, for several stateless hub nodes sharing one database.
//!
//! A compare-and-swap is a single conditional `UPDATE ... WHERE version = expected`
//! (or `INSERT ... ON CONFLICT DO NOTHING` for the first head): under PostgreSQL's row
//! locks, of two nodes racing from the same version the second sees the first's row
//! and matches nothing. The connection is plain TCP or a Unix socket (no TLS yet): keep
//! the database on loopback or a private network.

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, Transaction};

use super::meta::{to_epoch, to_i64, to_u64};
use super::sqlite::chain_problem;
use super::{
    AppendOutcome, CasOutcome, CompactOutcome, DeviceRecord, GcPlan, LogRecord, ManifestHead,
    MetaStore, ObjectState, SlotRecord, StoreError,
};
use crate::{Epoch, ObjectId, ShareId};

fn object_id(raw: &[u8]) -> Result<ObjectId, StoreError> {
    <[u8; 32]>::try_from(raw)
        .map(ObjectId::from_bytes)
        .map_err(|_| StoreError::OutOfRange("object ID"))
}

async fn uncount(tx: &Transaction<'_>, share: &str, bytes: i64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE share_usage SET bytes = GREATEST(0, bytes - $2) WHERE share = $1",
        &[&share, &bytes],
    )
    .await?;
    Ok(())
}

/// Serialises writers of one (share, device) log across nodes, for this transaction.
async fn lock_log(tx: &Transaction<'_>, share: &str, device: &str) -> Result<(), StoreError> {
    let key = format!("{share}/{device}");
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&key],
    )
    .await?;
    Ok(())
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS share_changes (
    share TEXT PRIMARY KEY,
    changes BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    share TEXT NOT NULL,
    device_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    PRIMARY KEY (share, device_id)
);
CREATE TABLE IF NOT EXISTS key_slots (
    share TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    label TEXT NOT NULL,
    slot BYTEA NOT NULL,
    PRIMARY KEY (share, epoch, label)
);
CREATE TABLE IF NOT EXISTS manifest_heads (
    share TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    manifest BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS restore_verifiers (
    share TEXT PRIMARY KEY,
    verifier BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS share_usage (
    share TEXT PRIMARY KEY,
    bytes BIGINT NOT NULL
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
    after BIGINT NOT NULL,
    upto BIGINT NOT NULL,
    batch BYTEA NOT NULL,
    PRIMARY KEY (share, device_id, upto)
);
CREATE TABLE IF NOT EXISTS objects (
    share TEXT NOT NULL,
    id BYTEA NOT NULL,
    bytes BIGINT NOT NULL,
    touched BIGINT NOT NULL,
    doomed BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (share, id)
);
CREATE TABLE IF NOT EXISTS log_refs (
    share TEXT NOT NULL,
    device_id TEXT NOT NULL,
    id BYTEA NOT NULL,
    PRIMARY KEY (share, id, device_id)
);
CREATE INDEX IF NOT EXISTS log_refs_by_device ON log_refs (share, device_id);
CREATE TABLE IF NOT EXISTS log_refs_at (
    share TEXT NOT NULL,
    device_id TEXT NOT NULL,
    upto BIGINT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (share, device_id)
);
CREATE TABLE IF NOT EXISTS staged_records (
    share TEXT NOT NULL,
    device_id TEXT NOT NULL,
    after BIGINT NOT NULL,
    upto BIGINT NOT NULL,
    batch BYTEA NOT NULL,
    PRIMARY KEY (share, device_id, upto)
);
CREATE TABLE IF NOT EXISTS staged_refs (
    share TEXT NOT NULL,
    device_id TEXT NOT NULL,
    id BYTEA NOT NULL,
    PRIMARY KEY (share, device_id, id)
);
CREATE TABLE IF NOT EXISTS hub_facts (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
";

/// Any fixed number: nodes starting together take this advisory lock so their
/// `CREATE TABLE IF NOT EXISTS` do not collide.
const SCHEMA_LOCK: i64 = 0x6665_7272_7968_7562; // "ferryhub"

/// One connection to PostgreSQL. Transactions need the client exclusively, hence the
/// mutex; a hub node that needs more parallelism opens several.
pub struct PostgresMeta {
    client: Mutex<Client>,
    /// For the notification listener's own connection.
    config: String,
}

impl std::fmt::Debug for PostgresMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresMeta")
    }
}

async fn bump(tx: &Transaction<'_>, share: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO share_changes (share, changes) VALUES ($1, 1)
         ON CONFLICT (share) DO UPDATE SET changes = share_changes.changes + 1",
        &[&share],
    )
    .await?;
    // Delivered on commit to every node listening: "this share changed".
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &share])
        .await?;
    Ok(())
}

/// The PostgreSQL channel every change of a share is announced on (payload: share ID).
const CHANNEL: &str = "ferry_hub_changes";

impl PostgresMeta {
    /// Connects with a libpq-style URL or key/value string
    /// (`postgres://user@host:port/db`, `host=/run/postgresql user=ferry`) and creates
    /// the tables if missing.
    pub async fn connect(config: &str) -> Result<Self, StoreError> {
        let (mut client, connection) = tokio_postgres::connect(config, NoTls).await?;
        // The connection task ends when the client is dropped or the server goes away;
        // either way the next query reports the error.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        tx.batch_execute(SCHEMA).await?;
        tx.commit().await?;
        Ok(PostgresMeta {
            client: Mutex::new(client),
            config: config.to_owned(),
        })
    }

    /// Changes made by any node (this one included), as they commit: a second
    /// connection that `LISTEN`s on the changes channel. The stream ends when that
    /// connection is lost.
    pub async fn changes(
        &self,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<ShareId>, StoreError> {
        use futures_util::StreamExt;
        let (client, mut connection) = tokio_postgres::connect(&self.config, NoTls).await?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(msg) = messages.next().await {
                match msg {
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                        if let Ok(share) = n.payload().parse() {
                            if tx.send(share).is_err() {
                                return;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("PostgreSQL notifications: {e}");
                        return;
                    }
                }
            }
        });
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        // The client lives as long as the listener: dropping it would end the session.
        tokio::spawn(async move {
            let _client = client;
            let _ = task.await;
        });
        Ok(rx)
    }
}

impl MetaStore for PostgresMeta {
    async fn add_device(&self, share: &ShareId, device: &DeviceRecord) -> Result<(), StoreError> {
        let mut client = self.client.lock().await;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO devices (share, device_id, recipient) VALUES ($1, $2, $3)
             ON CONFLICT (share, device_id) DO UPDATE SET recipient = excluded.recipient",
            &[&share.as_str(), &device.device_id, &device.recipient],
        )
        .await?;
        bump(&tx, share.as_str()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_device(&self, share: &ShareId, device_id: &str) -> Result<bool, StoreError> {
        let mut client = self.client.lock().await;
        let tx = client.transaction().await?;
        let removed = tx
            .execute(
                "DELETE FROM devices WHERE share = $1 AND device_id = $2",
                &[&share.as_str(), &device_id],
            )
            .await?
            > 0;
        tx.execute(
            "INSERT INTO removed_devices (share, device_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
            &[&share.as_str(), &device_id],
        )
        .await?;
        if removed {
            bump(&tx, share.as_str()).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn reserve_bytes(
        &self,
        share: &ShareId,
        bytes: u64,
        limit: Option<u64>,
    ) -> Result<bool, StoreError> {
        let (bytes, limit) = (to_i64(bytes)?, to_i64(limit.unwrap_or(i64::MAX as u64))?);
        let client = self.client.lock().await;
        Ok(client
            .execute(
                "INSERT INTO share_usage (share, bytes) SELECT $1, $2::BIGINT WHERE $2::BIGINT <= $3::BIGINT
                 ON CONFLICT (share) DO UPDATE SET bytes = share_usage.bytes + excluded.bytes
                 WHERE share_usage.bytes + excluded.bytes <= $3::BIGINT",
                &[&share.as_str(), &bytes, &limit],
            )
            .await?
            > 0)
    }

    async fn release_bytes(&self, share: &ShareId, bytes: u64) -> Result<(), StoreError> {
        let bytes = to_i64(bytes)?;
        let client = self.client.lock().await;
        client
            .execute(
                "UPDATE share_usage SET bytes = GREATEST(0, bytes - $2) WHERE share = $1",
                &[&share.as_str(), &bytes],
            )
            .await?;
        Ok(())
    }

    async fn stored_bytes(&self, share: &ShareId) -> Result<u64, StoreError> {
        let client = self.client.lock().await;
        let row = client
            .query_opt(
                "SELECT bytes FROM share_usage WHERE share = $1",
                &[&share.as_str()],
            )
            .await?;
        match row {
            Some(row) => to_u64(row.try_get(0)?),
            None => Ok(0),
        }
    }

    async fn set_restore_verifier(
        &self,
        share: &ShareId,
        verifier: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let mut client = self.client.lock().await;
        let tx = client.transaction().await?;
        match verifier {
            Some(v) => {
                tx.execute(
                    "INSERT INTO restore_verifiers (share, verifier) VALUES ($1, $2)
                     ON CONFLICT (share) DO UPDATE SET verifier = excluded.verifier",
                    &[&share.as_str(), &v],
                )
                .await?
            }
            None => {
                tx.execute(
                    "DELETE FROM restore_verifiers WHERE share = $1",
                    &[&share.as_str()],
                )
                .await?
            }
        };
        bump(&tx, share.as_str()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn restore_verifier(&self, share: &ShareId) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client.lock().await;
        let row = client
            .query_opt(
                "SELECT verifier FROM restore_verifiers WHERE share = $1",
                &[&share.as_str()],
            )
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get(0)?),
            None => None,
        })
    }

    async fn removed_devices(&self, share: &ShareId) -> Result<Vec<String>, StoreError> {
        let client = self.client.lock().await;
        let rows = client
            .query(
                "SELECT device_id FROM removed_devices WHERE share = $1 ORDER BY device_id",
                &[&share.as_str()],
            )
            .await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    async fn create_epoch(
        &self,
        share: &ShareId,
        epoch: Epoch,
        slots: &[SlotRecord],
    ) -> Result<bool, StoreError> {
        let mut client = self.client.lock().await;
        let tx = client.transaction().await?;
        // One rotation of a share at a time, across nodes.
        let lock = format!("epoch {share}");
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&lock],
        )
        .await?;
        let row = tx
            .query_one(
                "SELECT MAX(epoch) FROM key_slots WHERE share = $1",
                &[&share.as_str()],
            )
            .await?;
        let latest: Option<i64> = row.try_get(0)?;
        if latest.unwrap_or(0) + 1 != i64::from(epoch.0) {
            return Ok(false);
        }
        for slot in slots {
            tx.execute(
                "INSERT INTO key_slots (share, epoch, label, slot) VALUES ($1, $2, $3, $4)",
                &[
                    &share.as_str(),
                    &i64::from(epoch.0),
                    &slot.label,
                    &slot.slot,
                ],
            )
            .await?;
        }
        bump(&tx, share.as_str()).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn devices(&self, share: &ShareId) -> Result<Vec<DeviceRecord>, StoreError> {
        let client = self.client.lock().await;
        let rows = client
            .query(
                "SELECT device_id, recipient FROM devices WHERE share = $1 ORDER BY device_id",
                &[&share.as_str()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(DeviceRecord {
                    device_id: row.try_get(0)?,
                    recipient: row.try_get(1)?,
                })
            })
            .collect()
    }

    async fn put_key_slots(
        &self,
        share: &ShareId,
        epoch: Epoch,
        slots: &[SlotRecord],
    ) -> Result<(), StoreError> {
        let mut client = self.client.lock().await;
        let tx = client.transaction().await?;
        for slot in slots {
            tx.execute(
                "INSERT INTO key_slots (share, epoch, label, slot) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (share, epoch, label) DO UPDATE SET slot = excluded.slot",
                &[
                    &share.as_str(),
                    &i64::from(epoch.0),
                    &slot.label,
                    &slot.slot,
                ],
            )
            .await?;
        }
        bump(&tx, share.as_str()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn key_slots(
        &self,
        share: &ShareId,
        epoch: Epoch,
    ) -> Result<Vec<SlotRecord>, StoreError> {
        let client = self.client.lock().await;
        let rows = client
            .query(
                "SELECT label, slot FROM key_slots WHERE share = $1 AND epoch = $2 ORDER BY label",
                &[&share.as_str(), &i64::from(epoch.0)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SlotRecord {
                    label: row.try_get(0)?,
                    slot: row.try_get(1)?,
                })
            })
            .collect()
    }

    async fn latest_epoch(&self, share: &ShareId) -> Result<Option<Epoch>, StoreError> {
        let client = self.client.lock().await;
        let row = client
            .query_one(
                "SELECT MAX(epoch) FROM key_slots WHERE share = $1",
                &[&share.as_str()],
            )
            .await?;
        let epoch: Option<i64> = row.try_get(0)?;
        epoch.map(to_epoch).transpose()
    }

    async fn manifest_head(&self, share: &ShareId) -> Result<Option<ManifestHead>, StoreError> {
        let client = self.client.lock().await;
        let row = client
            .query_opt(
                "SELECT version, manifest FROM manifest_heads WHERE share = $1",
                &[&share.as_str()],
            )
            .await?;
        row.map(|row| {
            Ok(ManifestHead {
                version: to_u64(row.try_get(0)?)?,
                manifest: row.try_get(1)?,
            })
        })
        .transpose()
    }

    async fn swap_manifest_head(
        &self,
        share: &ShareId,
        expected: u64,
        manifest: &[u8],
    ) -> Result<CasOutcome, StoreError> {
        let expected_i = to_i64(expected)?;
        let next = expected_i
            .checked_add(1)
            .ok_or(StoreError::OutOfRange("manifest version"))?;
        let mut client = self.client.lock().await;
        let tx = client.transaction().await?;
        let moved = if expected == 0 {
            tx.execute(
                "INSERT INTO manifest_heads (share, version, manifest) VALUES ($1, 1, $2)
                 ON CONFLICT (share) DO NOTHING",
                &[&share.as_str(), &manifest],
            )
            .await?
        } else {
            tx.execute(
                "UPDATE manifest_heads SET version = $3, manifest = $4
                 WHERE share = $1 AND version = $2",
                &[&share.as_str(), &expected_i, &next, &manifest],
            )
            .await?
        };
        if moved == 0 {
            let row = tx
                .query_opt(
                    "SELECT version FROM manifest_heads WHERE share = $1",
                    &[&share.as_str()],
                )
                .await?;
            let current = match row {
                Some(row) => to_u64(row.try_get(0)?)?,
                None => 0,
            };
            tx.rollback().await?;
            return Ok(CasOutcome::Conflict { current });
        }
        bump(&tx, share.as_str()).await?;
        tx.commit().await?;
        Ok(CasOutcome::Swapped {
            version: to_u64(next)?,
        })
    }

    async fn change_counter(&self, share: &ShareId) -> Result<u64, StoreError> {
        let client = self.client.lock().await;
        let row = client
            .query_opt(
                "SELECT changes FROM share_changes WHERE share = $1",
                &[&share.as_str()],
            )
            .await?;
        match row {
            Some(row) => to_u64(row.try_get(0)?),
            None => Ok(0),
        }
    }

    async fn member_shares(&self, device_id: &str) -> Result<Vec<ShareId>, StoreError> {
        let client = self.client.lock().await;
        let rows = client
            .query(
                "SELECT share FROM devices WHERE device_id = $1 ORDER BY share",
                &[&device_id],
            )
            .await?;
        let mut out = Vec::new();
        for row in rows {
            let s: String = row.try_get(0)?;
            out.push(s.parse().map_err(|_| StoreError::OutOfRange("share ID"))?);
        }
        Ok(out)
    }

    async fn allow_device(&self, device_id: &str) -> Result<(), StoreError> {
        let client = self.client.lock().await;
        client
            .execute(
                "INSERT INTO allowed_devices (device_id) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&device_id],
            )
            .await?;
        Ok(())
    }

    async fn is_allowed(&self, device_id: &str) -> Result<bool, StoreError> {
        let client = self.client.lock().await;
        let row = client
            .query_opt(
                "SELECT 1 FROM allowed_devices WHERE device_id = $1",
                &[&device_id],
            )
            .await?;
        Ok(row.is_some())
    }

    async fn append_log(
        &self,
        share: &ShareId,
        device_id: &str,
        after: u64,
        upto: u64,
        batch: &[u8],
    ) -> Result<AppendOutcome, StoreError> {
        let (after_i, upto_i) = (to_i64(after)?, to_i64(upto)?);
        let mut client = self.client.lock().await;
        let tx = client.transaction().await?;
        // One writer per (share, device) log at a time, across nodes.
        let key = format!("{share}/{device_id}");
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .await?;
        let row = tx
            .query_one(
                "SELECT MAX(upto) FROM logs WHERE share = $1 AND device_id = $2",
                &[&share.as_str(), &device_id],
            )
            .await?;
        let head: Option<i64> = row.try_get(0)?;
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
            "INSERT INTO logs (share, device_id, after, upto, batch) VALUES ($1, $2, $3, $4, $5)",
            &[&share.as_str(), &device_id, &after_i, &upto_i, &batch],
        )
        .await?;
        bump(&tx, share.as_str()).await?;
        tx.commit().await?;
        Ok(AppendOutcome::Appended)
    }

    async fn log_after(
        &self,
        share: &ShareId,
        device_id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let after = to_i64(after)?;
        let client = self.client.lock().await;
        let rows = client
            .query(
                "SELECT after, upto, batch FROM logs WHERE share = $1 AND device_id = $2
                 AND (upto > $3 OR (upto = 0 AND $3 = 0)) ORDER BY upto LIMIT $4",
                &[&share.as_str(), &device_id, &after, &i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(LogRecord {
                    after: to_u64(row.try_get(0)?)?,
                    upto: to_u64(row.try_get(1)?)?,
                    batch: row.try_get(2)?,
                })
            })
            .collect()
    }

    async fn log_heads(&self, share: &ShareId) -> Result<Vec<(String, u64)>, StoreError> {
        let client = self.client.lock().await;
        let rows = client
            .query(
                "SELECT device_id, MAX(upto) FROM logs WHERE share = $1
                 GROUP BY device_id ORDER BY device_id",
                &[&share.as_str()],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, to_u64(row.try_get(1)?)?)))
            .collect()
    }

    async fn touch_objects(
        &self,
        share: &ShareId,
        ids: &[ObjectId],
        now_ms: i64,
    ) -> Result<Vec<ObjectState>, StoreError> {
        let client = self.client.lock().await;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let raw = &id.as_bytes()[..];
            // One statement per object: a row doomed concurrently is re-checked by
            // PostgreSQL before this update touches it.
            let touched = client
                .execute(
                    "UPDATE objects SET touched = GREATEST(touched, $3)
                     WHERE share = $1 AND id = $2 AND NOT doomed",
                    &[&share.as_str(), &raw, &now_ms],
                )
                .await?;
            if touched > 0 {
                out.push(ObjectState::Present);
                continue;
            }
            let row = client
                .query_opt(
                    "SELECT doomed FROM objects WHERE share = $1 AND id = $2",
                    &[&share.as_str(), &raw],
                )
                .await?;
            out.push(if row.is_some() {
                ObjectState::Doomed
            } else {
                ObjectState::Absent
            });
        }
        Ok(out)
    }

    async fn record_object(
        &self,
        share: &ShareId,
        id: &ObjectId,
        bytes: u64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let bytes = to_i64(bytes)?;
        let raw = &id.as_bytes()[..];
        let client = self.client.lock().await;
        let new = client
            .execute(
                "INSERT INTO objects (share, id, bytes, touched) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&share.as_str(), &raw, &bytes, &now_ms],
            )
            .await?
            == 1;
        if !new {
            client
                .execute(
                    "UPDATE objects SET touched = GREATEST(touched, $3)
                     WHERE share = $1 AND id = $2 AND NOT doomed",
                    &[&share.as_str(), &raw, &now_ms],
                )
                .await?;
        }
        Ok(new)
    }

    async fn stage_compaction(
        &self,
        share: &ShareId,
        device_id: &str,
        begin: bool,
        records: &[LogRecord],
        refs: &[ObjectId],
    ) -> Result<u64, StoreError> {
        let mut client = self.client.lock().await;
        let tx = client.transaction().await?;
        lock_log(&tx, share.as_str(), device_id).await?;
        let mut dropped = 0i64;
        if begin {
            let row = tx
                .query_one(
                    "SELECT COALESCE(SUM(octet_length(batch)), 0)::BIGINT FROM staged_records
                     WHERE share = $1 AND device_id = $2",
                    &[&share.as_str(), &device_id],
                )
                .await?;
            dropped = row.try_get(0)?;
            tx.execute(
                "DELETE FROM staged_records WHERE share = $1 AND device_id = $2",
                &[&share.as_str(), &device_id],
            )
            .await?;
            tx.execute(
                "DELETE FROM staged_refs WHERE share = $1 AND device_id = $2",
                &[&share.as_str(), &device_id],
            )
            .await?;
            uncount(&tx, share.as_str(), dropped).await?;
        }
        for r in records {
            let upto = to_i64(r.upto)?;
            let row = tx
                .query_one(
                    "SELECT COALESCE(SUM(octet_length(batch)), 0)::BIGINT FROM staged_records
                     WHERE share = $1 AND device_id = $2 AND upto = $3",
                    &[&share.as_str(), &device_id, &upto],
                )
                .await?;
            let replaced: i64 = row.try_get(0)?;
            tx.execute(
                "INSERT INTO staged_records (share, device_id, after, upto, batch)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (share, device_id, upto)
                 DO UPDATE SET after = excluded.after, batch = excluded.batch",
                &[
                    &share.as_str(),
                    &device_id,
                    &to_i64(r.after)?,
                    &upto,
                    &r.batch,
                ],
            )
            .await?;
            uncount(&tx, share.as_str(), replaced).await?;
            dropped += replaced;
        }
        for id in refs {
            tx.execute(
                "INSERT INTO staged_refs (share, device_id, id) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&share.as_str(), &device_id, &&id.as_bytes()[..]],
            )
            .await?;
        }
        tx.commit().await?;
        to_u64(dropped)
    }

    async fn commit_compaction(
        &self,
        share: &ShareId,
        device_id: &str,
        upto: u64,
        now_ms: i64,
    ) -> Result<CompactOutcome, StoreError> {
        let upto_i = to_i64(upto)?;
        let s = share.as_str();
        let mut client = self.client.lock().await;
        let tx = client.transaction().await?;
        lock_log(&tx, s, device_id).await?;
        let staged: Vec<(i64, i64)> = tx
            .query(
                "SELECT after, upto FROM staged_records WHERE share = $1 AND device_id = $2
                 ORDER BY upto",
                &[&s, &device_id],
            )
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, StoreError>>()?;
        if let Some(why) = chain_problem(&staged, upto_i) {
            return Ok(CompactOutcome::Refused(why));
        }
        let boundary = tx
            .query_opt(
                "SELECT upto FROM logs WHERE share = $1 AND device_id = $2 AND upto = $3",
                &[&s, &device_id, &upto_i],
            )
            .await?;
        if boundary.is_none() {
            return Ok(CompactOutcome::Refused("not a record boundary of the log"));
        }
        let freed: i64 = tx
            .query_one(
                "SELECT COALESCE(SUM(octet_length(batch)), 0)::BIGINT FROM logs
                 WHERE share = $1 AND device_id = $2 AND upto <= $3",
                &[&s, &device_id, &upto_i],
            )
            .await?
            .try_get(0)?;
        for sql in [
            "DELETE FROM logs WHERE share = $1 AND device_id = $2 AND upto <= $3",
            "INSERT INTO logs (share, device_id, after, upto, batch)
             SELECT share, device_id, after, upto, batch FROM staged_records
             WHERE share = $1 AND device_id = $2 AND $3::BIGINT >= 0",
            "DELETE FROM staged_records WHERE share = $1 AND device_id = $2 AND $3::BIGINT >= 0",
            "DELETE FROM log_refs WHERE share = $1 AND device_id = $2 AND $3::BIGINT >= 0",
            "INSERT INTO log_refs (share, device_id, id)
             SELECT share, device_id, id FROM staged_refs
             WHERE share = $1 AND device_id = $2 AND $3::BIGINT >= 0",
            "DELETE FROM staged_refs WHERE share = $1 AND device_id = $2 AND $3::BIGINT >= 0",
        ] {
            tx.execute(sql, &[&s, &device_id, &upto_i]).await?;
        }
        tx.execute(
            "INSERT INTO log_refs_at (share, device_id, upto, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (share, device_id) DO UPDATE SET upto = excluded.upto, at = excluded.at",
            &[&s, &device_id, &upto_i, &now_ms],
        )
        .await?;
        uncount(&tx, s, freed).await?;
        bump(&tx, s).await?;
        tx.commit().await?;
        Ok(CompactOutcome::Compacted {
            freed: to_u64(freed)?,
        })
    }

    async fn doom_unreferenced(
        &self,
        share: &ShareId,
        cutoff_ms: i64,
    ) -> Result<GcPlan, StoreError> {
        let s = share.as_str();
        let mut client = self.client.lock().await;
        let tx = client.transaction().await?;
        let blocked_by: Vec<String> = tx
            .query(
                "SELECT DISTINCT l.device_id FROM logs l
                 JOIN devices d ON d.share = l.share AND d.device_id = l.device_id
                 WHERE l.share = $1 AND NOT EXISTS (SELECT 1 FROM log_refs_at r
                     WHERE r.share = l.share AND r.device_id = l.device_id)
                 ORDER BY l.device_id",
                &[&s],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        if blocked_by.is_empty() {
            let oldest: Option<i64> = tx
                .query_one(
                    "SELECT MIN(r.at) FROM log_refs_at r
                     JOIN devices d ON d.share = r.share AND d.device_id = r.device_id
                     WHERE r.share = $1",
                    &[&s],
                )
                .await?
                .try_get(0)?;
            let before = oldest.map_or(cutoff_ms, |o| o.min(cutoff_ms));
            tx.execute(
                "UPDATE objects SET doomed = TRUE
                 WHERE share = $1 AND NOT doomed AND touched < $2
                 AND NOT EXISTS (SELECT 1 FROM log_refs r
                     JOIN devices d ON d.share = r.share AND d.device_id = r.device_id
                     WHERE r.share = objects.share AND r.id = objects.id)",
                &[&s, &before],
            )
            .await?;
        }
        let rows = tx
            .query(
                "SELECT id, bytes FROM objects WHERE share = $1 AND doomed ORDER BY id",
                &[&s],
            )
            .await?;
        let mut doomed = Vec::new();
        for r in rows {
            let id: &[u8] = r.try_get(0)?;
            doomed.push((object_id(id)?, to_u64(r.try_get(1)?)?));
        }
        tx.commit().await?;
        Ok(GcPlan { blocked_by, doomed })
    }

    async fn forget_objects(&self, share: &ShareId, ids: &[ObjectId]) -> Result<u64, StoreError> {
        let s = share.as_str();
        let mut client = self.client.lock().await;
        let tx = client.transaction().await?;
        let mut freed = 0i64;
        for id in ids {
            let row = tx
                .query_opt(
                    "DELETE FROM objects WHERE share = $1 AND id = $2 AND doomed RETURNING bytes",
                    &[&s, &&id.as_bytes()[..]],
                )
                .await?;
            if let Some(row) = row {
                freed += row.try_get::<_, i64>(0)?;
            }
        }
        uncount(&tx, s, freed).await?;
        tx.commit().await?;
        to_u64(freed)
    }

    async fn shares(&self) -> Result<Vec<ShareId>, StoreError> {
        let client = self.client.lock().await;
        let rows = client
            .query("SELECT share FROM share_changes ORDER BY share", &[])
            .await?;
        let mut out = Vec::new();
        for r in rows {
            if let Ok(s) = r.try_get::<_, String>(0)?.parse() {
                out.push(s);
            }
        }
        Ok(out)
    }

    async fn objects_indexed(&self) -> Result<bool, StoreError> {
        let client = self.client.lock().await;
        let row = client
            .query_opt(
                "SELECT value FROM hub_facts WHERE name = 'objects_indexed'",
                &[],
            )
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<_, i64>(0)? != 0,
            None => false,
        })
    }

    async fn index_objects(
        &self,
        share: &ShareId,
        found: &[(ObjectId, u64)],
        now_ms: i64,
        done: bool,
    ) -> Result<(), StoreError> {
        let s = share.as_str();
        let mut client = self.client.lock().await;
        let tx = client.transaction().await?;
        for (id, bytes) in found {
            tx.execute(
                "INSERT INTO objects (share, id, bytes, touched) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&s, &&id.as_bytes()[..], &to_i64(*bytes)?, &now_ms],
            )
            .await?;
        }
        tx.execute(
            "INSERT INTO share_usage (share, bytes) VALUES ($1,
                 (SELECT COALESCE(SUM(bytes), 0) FROM objects WHERE share = $1)::BIGINT
               + (SELECT COALESCE(SUM(octet_length(batch)), 0) FROM logs WHERE share = $1)::BIGINT
               + (SELECT COALESCE(SUM(octet_length(batch)), 0) FROM staged_records
                  WHERE share = $1)::BIGINT)
             ON CONFLICT (share) DO UPDATE SET bytes = excluded.bytes",
            &[&s],
        )
        .await?;
        if done {
            tx.execute(
                "INSERT INTO hub_facts (name, value) VALUES ('objects_indexed', 1)
                 ON CONFLICT (name) DO UPDATE SET value = 1",
                &[],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
