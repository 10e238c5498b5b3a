//! The index: one SQLite database per library holding locations, entries, conduits,
//! generations, conflicts and versions. Every sync decision is a query over it.

use crate::chunk::{decode_chunks, encode_chunks, Hash, CHUNKER_ID};
use crate::entry::{Entry, EntryKind, StatInfo};
use crate::error::{Error, Result};
use crate::itemize::{Item, ItemAction};
use crate::plan::Side;
use crate::rel_path::RelPath;
use crate::version_vector::VersionVector;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::{Path, PathBuf};

/// Schema migrations; entry N brings the schema from version N to N+1. Append only.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE locations (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    root TEXT NOT NULL UNIQUE,
    replica_id INTEGER NOT NULL,
    sequence INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE entries (
    location_id INTEGER NOT NULL REFERENCES locations(id),
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    hash BLOB,
    chunks BLOB,
    link_target TEXT,
    version BLOB NOT NULL,
    deleted INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    racy INTEGER NOT NULL,
    PRIMARY KEY (location_id, path)
) WITHOUT ROWID;
CREATE INDEX entries_by_hash ON entries(location_id, hash) WHERE deleted = 0;
CREATE TABLE conduits (
    id INTEGER PRIMARY KEY,
    location_a INTEGER NOT NULL REFERENCES locations(id),
    location_b INTEGER NOT NULL REFERENCES locations(id),
    mode TEXT NOT NULL,
    conflict_policy TEXT NOT NULL,
    index_everything INTEGER NOT NULL DEFAULT 0,
    generation INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    UNIQUE (location_a, location_b)
);
CREATE TABLE generations (
    id INTEGER PRIMARY KEY,
    conduit_id INTEGER NOT NULL REFERENCES conduits(id),
    number INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    completed_at INTEGER,
    status TEXT NOT NULL,
    files_copied INTEGER NOT NULL DEFAULT 0,
    files_deleted INTEGER NOT NULL DEFAULT 0,
    files_renamed INTEGER NOT NULL DEFAULT 0,
    dirs_created INTEGER NOT NULL DEFAULT 0,
    conflicts INTEGER NOT NULL DEFAULT 0,
    bytes_transferred INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE conflicts (
    id INTEGER PRIMARY KEY,
    conduit_id INTEGER NOT NULL REFERENCES conduits(id),
    generation_id INTEGER REFERENCES generations(id),
    path TEXT NOT NULL,
    a_kind TEXT, a_size INTEGER, a_mtime_ns INTEGER,
    b_kind TEXT, b_size INTEGER, b_mtime_ns INTEGER,
    policy TEXT NOT NULL,
    winner TEXT,
    loser_kept_at TEXT,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE versions (
    id INTEGER PRIMARY KEY,
    location_id INTEGER NOT NULL REFERENCES locations(id),
    path TEXT NOT NULL,
    stored_path TEXT NOT NULL,
    size INTEGER NOT NULL,
    hash BLOB,
    mtime_ns INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX versions_by_path ON versions(location_id, path);
"#,
    // 2: where each conduit last converged (both locations' sequence numbers then).
    r#"
ALTER TABLE conduits ADD COLUMN clean_seq_a INTEGER;
ALTER TABLE conduits ADD COLUMN clean_seq_b INTEGER;
"#,
    // 3: finding what changed since a conduit converged.
    r#"
CREATE INDEX entries_by_sequence ON entries(location_id, sequence);
"#,
    // 4: archive, retention, conflict resolution, history counters.
    r#"
ALTER TABLE generations ADD COLUMN conflicts_resolved INTEGER NOT NULL DEFAULT 0;
ALTER TABLE generations ADD COLUMN files_archived INTEGER NOT NULL DEFAULT 0;
ALTER TABLE generations ADD COLUMN bytes_freed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conduits ADD COLUMN retention TEXT;
ALTER TABLE locations ADD COLUMN retention TEXT;
ALTER TABLE conflicts ADD COLUMN resolution TEXT;
ALTER TABLE conflicts ADD COLUMN settled_at INTEGER;
"#,
    // 5: daemon: schedules, parallelism, bandwidth, pause; run triggers and resumes.
    r#"
ALTER TABLE conduits ADD COLUMN schedule TEXT NOT NULL DEFAULT 'manual';
ALTER TABLE conduits ADD COLUMN parallel INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conduits ADD COLUMN bandwidth_limit INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conduits ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
ALTER TABLE generations ADD COLUMN trigger TEXT NOT NULL DEFAULT 'cli';
ALTER TABLE generations ADD COLUMN resumes INTEGER REFERENCES generations(id);
"#,
    // 6: directories renamed as a whole.
    r#"
ALTER TABLE generations ADD COLUMN dirs_renamed INTEGER NOT NULL DEFAULT 0;
"#,
    // 7: each generation's per-file actions (bounded; see `MAX_ACTIONS_PER_GENERATION`).
    r#"
CREATE TABLE generation_actions (
    generation_id INTEGER NOT NULL REFERENCES generations(id),
    seq INTEGER NOT NULL,
    action TEXT NOT NULL,
    side TEXT,
    path TEXT NOT NULL,
    to_path TEXT,
    kind TEXT,
    size INTEGER,
    detail TEXT,
    PRIMARY KEY (generation_id, seq)
) WITHOUT ROWID;
ALTER TABLE generations ADD COLUMN actions_omitted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE generations ADD COLUMN actions_pruned INTEGER NOT NULL DEFAULT 0;
"#,
];

/// Per-file actions kept for one generation; beyond it only their number is kept.
pub const MAX_ACTIONS_PER_GENERATION: u64 = 10_000;
/// Generations per conduit whose per-file actions are kept (older ones keep their
/// counters only).
pub const ACTION_HISTORY_GENERATIONS: u64 = 100;

/// The stat part of an entry (see [`Index::stat_rows`]).
#[derive(Debug, Clone)]
pub struct StatRow {
    pub path: RelPath,
    pub kind: EntryKind,
    pub stat: StatInfo,
    pub deleted: bool,
    pub racy: bool,
}

/// A location row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationRow {
    pub id: i64,
    pub uuid: String,
    pub root: PathBuf,
    pub replica_id: u64,
}

/// A conduit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConduitRow {
    pub id: i64,
    pub location_a: i64,
    pub location_b: i64,
    pub mode: String,
    pub conflict_policy: String,
    pub index_everything: bool,
    pub generation: i64,
    /// Version retention for both locations (`None`: the default, staggered).
    pub retention: Option<String>,
    /// `instant`, `every:DURATION` or `manual` (see `conduit::Schedule`).
    pub schedule: String,
    /// Copies at once; 0 = one per core (up to 8).
    pub parallel: u32,
    /// Bytes per second; 0 = unlimited.
    pub bandwidth_limit: u64,
    /// A paused conduit is not run by the daemon.
    pub paused: bool,
}

/// Counters of one generation (one run of a conduit).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GenerationStats {
    pub files_copied: u64,
    pub files_deleted: u64,
    /// Files and symlinks that moved to a new name (no bytes copied), one by one or
    /// with their directory.
    pub files_renamed: u64,
    /// Directories renamed as a whole (one `rename` for everything below them).
    pub dirs_renamed: u64,
    pub dirs_created: u64,
    /// Conflicts met in the run (settled by policy or left open).
    pub conflicts: u64,
    /// Conflicts the policy settled in the run (not the ones left for the user).
    pub conflicts_resolved: u64,
    pub bytes_transferred: u64,
    /// Per-file problems (the messages are in the run's `errors`).
    #[serde(rename = "error_count")]
    pub errors: u64,
    /// Archive mode: files removed from side A after their copy on B verified.
    pub files_archived: u64,
    /// Archive mode: bytes those removals freed on side A.
    pub bytes_freed: u64,
}

/// A generation row, as `ferry history` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenerationRow {
    #[serde(rename = "generation")]
    pub id: i64,
    #[serde(rename = "conduit")]
    pub conduit_id: i64,
    pub number: i64,
    pub started_at: i64,
    pub completed_at: Option<i64>,
    pub status: String,
    /// What started the run: `cli`, or the daemon's `watch`, `timer`, `start`, `api`.
    pub trigger: String,
    /// The interrupted generation this run picked up from, if any.
    pub resumes: Option<i64>,
    #[serde(flatten)]
    pub stats: GenerationStats,
    /// Per-file actions beyond [`MAX_ACTIONS_PER_GENERATION`], counted but not kept.
    pub actions_omitted: u64,
    /// The per-file actions were dropped with old history
    /// ([`ACTION_HISTORY_GENERATIONS`]).
    pub actions_pruned: bool,
}

/// A conflict row, as `ferry conflicts` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConflictRow {
    pub id: i64,
    #[serde(rename = "conduit")]
    pub conduit_id: i64,
    /// A path key (`rel_path`), serialized for people.
    #[serde(serialize_with = "crate::rel_path::serialize_key")]
    pub path: String,
    pub a_kind: Option<String>,
    pub a_size: Option<i64>,
    pub a_mtime_ns: Option<i64>,
    pub b_kind: Option<String>,
    pub b_size: Option<i64>,
    pub b_mtime_ns: Option<i64>,
    #[serde(rename = "conflict_policy")]
    pub policy: String,
    pub winner: Option<String>,
    #[serde(serialize_with = "crate::rel_path::serialize_opt_key")]
    pub loser_kept_at: Option<String>,
    pub status: String,
    pub created_at: i64,
    /// How the user settled it with `ferry resolve` (`a`, `b`, `both`), if they did.
    pub resolution: Option<String>,
    pub settled_at: Option<i64>,
    pub a_root: String,
    pub b_root: String,
}

/// A version-store record.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionRow {
    pub id: i64,
    pub location_id: i64,
    /// Path keys (`rel_path`), serialized for people.
    #[serde(serialize_with = "crate::rel_path::serialize_key")]
    pub path: String,
    #[serde(serialize_with = "crate::rel_path::serialize_key")]
    pub stored_path: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub created_at: i64,
    pub reason: String,
    /// BLAKE3 of the kept content, checked again before a restore.
    #[serde(skip)]
    pub hash: Option<Hash>,
}

/// Decodes `SELECT path, kind, size, mtime_ns, ctime_ns, inode, mode, deleted, racy` rows.
fn read_stat_rows(mut rows: rusqlite::Rows<'_>, out: &mut Vec<StatRow>) -> Result<()> {
    while let Some(r) = rows.next()? {
        let path: String = r.get(0)?;
        let kind: String = r.get(1)?;
        out.push(StatRow {
            kind: EntryKind::parse(&kind)
                .ok_or_else(|| Error::Corrupt(format!("entry {path:?} has kind {kind:?}")))?,
            path: RelPath::new(&path)?,
            stat: stat_from_row(r)?,
            deleted: r.get(7)?,
            racy: r.get(8)?,
        });
    }
    Ok(())
}

/// Seconds since the Unix epoch, for timestamps kept in the index.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An open index database.
pub struct Index {
    conn: Connection,
    /// Inside [`Index::discarding`]: every write is rolled back at its end.
    discarding: bool,
}

impl Index {
    /// Opens (creating and migrating as needed) the index at `path`.
    pub fn open(path: &Path) -> Result<Index> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        Self::setup(conn)
    }

    /// An empty index in memory, gone when dropped (a dry run on a device with no
    /// library yet plans against it, so it creates no library).
    pub fn open_in_memory() -> Result<Index> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(conn: Connection) -> Result<Index> {
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut index = Index {
            conn,
            discarding: false,
        };
        index.migrate()?;
        Ok(index)
    }

    /// Runs `f` inside a transaction that is always rolled back, whatever `f` returns:
    /// `f` reads its own writes, and afterwards the database is as it was. Dry runs
    /// plan inside one. Nested calls share the outermost transaction.
    ///
    /// The transaction is `IMMEDIATE`: it takes the write lock at once (waiting up to
    /// the busy timeout) and holds it until `f` returns, so other processes' writes
    /// wait meanwhile. A deferred one would lock only from `f`'s first write, but then
    /// fail outright (`SQLITE_BUSY_SNAPSHOT`) whenever another process had committed
    /// since `f`'s first read, e.g. a daemon syncing another conduit.
    pub fn discarding<T>(&mut self, f: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        if self.discarding {
            return f(self);
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.discarding = true;
        let out = f(self);
        self.discarding = false;
        // An error may already have ended the transaction (SQLite rolls back on some).
        let rolled_back = if self.conn.is_autocommit() {
            Ok(())
        } else {
            self.conn.execute_batch("ROLLBACK")
        };
        let out = out?;
        rolled_back?;
        Ok(out)
    }

    /// Whether the caller runs inside [`Index::discarding`].
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// A write batch: a transaction that takes the write lock at once (`IMMEDIATE`), or a
    /// savepoint inside the transaction already open (`discarding`). Immediate, because
    /// a batch that reads before it writes would otherwise start as a reader and fail
    /// with "database is locked" at once (no busy wait) when another process wrote
    /// meanwhile.
    fn write_batch(&mut self) -> Result<WriteBatch<'_>> {
        Ok(if self.conn.is_autocommit() {
            WriteBatch::Tx(
                self.conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?,
            )
        } else {
            WriteBatch::Nested(self.conn.savepoint()?)
        })
    }

    fn migrate(&mut self) -> Result<()> {
        let current: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if current as usize > MIGRATIONS.len() {
            return Err(Error::Corrupt(format!(
                "index schema version {current} is newer than this ferry understands ({})",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        let chunker: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'chunker'", [], |r| {
                r.get(0)
            })
            .optional()?;
        match chunker {
            None => {
                self.conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('chunker', ?1)",
                    [CHUNKER_ID],
                )?;
            }
            Some(c) if c != CHUNKER_ID => {
                return Err(Error::Corrupt(format!(
                    "index was built with chunker {c}, this ferry uses {CHUNKER_ID}"
                )))
            }
            Some(_) => {}
        }
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    // ---- locations ----

    pub fn location_by_root(&self, root: &Path) -> Result<Option<LocationRow>> {
        let root_s = path_str(root)?;
        Ok(self
            .conn
            .query_row(
                "SELECT id, uuid, root, replica_id FROM locations WHERE root = ?1",
                [root_s],
                location_from_row,
            )
            .optional()?)
    }

    pub fn location_by_uuid(&self, uuid: &str) -> Result<Option<LocationRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, uuid, root, replica_id FROM locations WHERE uuid = ?1",
                [uuid],
                location_from_row,
            )
            .optional()?)
    }

    /// Moves a location to a new root (the folder was moved): its entries, versions and
    /// conduits follow it, as they refer to its ID.
    pub fn set_location_root(&self, id: i64, root: &Path) -> Result<LocationRow> {
        self.conn.execute(
            "UPDATE locations SET root = ?2 WHERE id = ?1",
            params![id, path_str(root)?],
        )?;
        self.location(id)
    }

    pub fn location(&self, id: i64) -> Result<LocationRow> {
        Ok(self.conn.query_row(
            "SELECT id, uuid, root, replica_id FROM locations WHERE id = ?1",
            [id],
            location_from_row,
        )?)
    }

    pub fn locations(&self) -> Result<Vec<LocationRow>> {
        let mut st = self
            .conn
            .prepare("SELECT id, uuid, root, replica_id FROM locations ORDER BY id")?;
        let rows = st.query_map([], location_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn insert_location(&self, uuid: &str, root: &Path, replica_id: u64) -> Result<LocationRow> {
        self.conn.execute(
            "INSERT INTO locations (uuid, root, replica_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![uuid, path_str(root)?, replica_id as i64, unix_now()],
        )?;
        self.location(self.conn.last_insert_rowid())
    }

    /// The last sequence number handed out by a location: it changes whenever the
    /// content, version or presence of any of the location's entries changes (a stat
    /// refresh alone keeps the row's number).
    pub fn location_sequence(&self, location: i64) -> Result<u64> {
        let s: i64 = self.conn.query_row(
            "SELECT sequence FROM locations WHERE id = ?1",
            [location],
            |r| r.get(0),
        )?;
        Ok(s as u64)
    }

    /// Reserves `n` sequence numbers of a location; returns the first.
    pub fn reserve_sequence(&self, location: i64, n: u64) -> Result<u64> {
        let last: i64 = self.conn.query_row(
            "UPDATE locations SET sequence = sequence + ?2 WHERE id = ?1 RETURNING sequence",
            params![location, n as i64],
            |r| r.get(0),
        )?;
        Ok(last as u64 - n + 1)
    }

    // ---- entries ----

    /// All entries of a location (live and deleted), sorted by path.
    pub fn entries(&self, location: i64) -> Result<Vec<Entry>> {
        let mut st = self.conn.prepare_cached(
            "SELECT path, kind, size, mtime_ns, ctime_ns, inode, mode, hash, chunks, link_target,
                    version, deleted, sequence, racy
             FROM entries WHERE location_id = ?1 ORDER BY path",
        )?;
        let mut rows = st.query([location])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(entry_from_row(row)?);
        }
        Ok(out)
    }

    /// The stat part of every entry of a location, sorted by path: what a scan needs
    /// to tell whether the disk changed, without decoding hashes and vectors.
    pub fn stat_rows(&self, location: i64) -> Result<Vec<StatRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT path, kind, size, mtime_ns, ctime_ns, inode, mode, deleted, racy
             FROM entries WHERE location_id = ?1 ORDER BY path",
        )?;
        let mut out = Vec::new();
        read_stat_rows(st.query([location])?, &mut out)?;
        Ok(out)
    }

    /// The stat rows of `path` and of everything below it, sorted by path: what a
    /// targeted scan of that path compares the disk with. A range over the primary key
    /// (`path/` up to `path0`, `0` being the byte after `/`), so no other row is read.
    /// The bounds are made here, not with SQL's `||`: a key may hold NULs (`rel_path`),
    /// which SQLite compares in full but whose handling in expressions it leaves open.
    pub fn stat_rows_under(&self, location: i64, path: &RelPath) -> Result<Vec<StatRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT path, kind, size, mtime_ns, ctime_ns, inode, mode, deleted, racy
             FROM entries WHERE location_id = ?1
               AND (path = ?2 OR (path >= ?3 AND path < ?4))
             ORDER BY path",
        )?;
        let key = path.as_str();
        let (from, to) = (format!("{key}/"), format!("{key}0"));
        let mut out = Vec::new();
        read_stat_rows(st.query(params![location, key, from, to])?, &mut out)?;
        Ok(out)
    }

    pub fn entry(&self, location: i64, path: &RelPath) -> Result<Option<Entry>> {
        let mut st = self.conn.prepare_cached(
            "SELECT path, kind, size, mtime_ns, ctime_ns, inode, mode, hash, chunks, link_target,
                    version, deleted, sequence, racy
             FROM entries WHERE location_id = ?1 AND path = ?2",
        )?;
        let mut rows = st.query(params![location, path.as_str()])?;
        match rows.next()? {
            Some(row) => Ok(Some(entry_from_row(row)?)),
            None => Ok(None),
        }
    }

    /// Paths of a location whose rows changed after sequence number `after`.
    pub fn paths_changed_since(&self, location: i64, after: u64) -> Result<Vec<RelPath>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT path FROM entries WHERE location_id = ?1 AND sequence > ?2")?;
        let rows = st.query_map(params![location, after as i64], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for p in rows {
            out.push(RelPath::new(&p?)?);
        }
        Ok(out)
    }

    /// A live file of the location with this content hash, if any.
    pub fn find_file_by_hash(&self, location: i64, hash: &Hash) -> Result<Option<RelPath>> {
        let p: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT path FROM entries INDEXED BY entries_by_hash
                 WHERE location_id = ?1 AND hash = ?2 AND deleted = 0
                 AND kind = 'file' LIMIT 1",
            )?
            .query_row(params![location, &hash.0[..]], |r| r.get(0))
            .optional()?;
        p.map(|s| RelPath::new(&s)).transpose()
    }

    /// Writes entries (insert or replace) in one transaction.
    pub fn put_entries(&mut self, location: i64, entries: &[Entry]) -> Result<()> {
        // A savepoint, not a transaction, so this also works inside `discarding`.
        let tx = self.write_batch()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO entries (location_id, path, kind, size, mtime_ns, ctime_ns,
                    inode, mode, hash, chunks, link_target, version, deleted, sequence, racy)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?;
            for e in entries {
                st.execute(params![
                    location,
                    e.path.as_str(),
                    e.kind.as_str(),
                    e.stat.size as i64,
                    e.stat.mtime_ns,
                    e.stat.ctime_ns,
                    e.stat.inode as i64,
                    e.stat.mode,
                    e.hash.as_ref().map(|h| &h.0[..]),
                    if e.chunks.is_empty() {
                        None
                    } else {
                        Some(encode_chunks(&e.chunks))
                    },
                    e.link_target,
                    e.version.to_bytes(),
                    e.deleted,
                    e.sequence as i64,
                    e.racy,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets entries (used when a path becomes ignored: it leaves the index, not the
    /// disk). Moves the location's sequence on, as every change of its rows does, and
    /// clears its conduits' convergence points.
    pub fn forget_entries(&mut self, location: i64, paths: &[RelPath]) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        let tx = self.write_batch()?;
        tx.execute(
            "UPDATE locations SET sequence = sequence + 1 WHERE id = ?1",
            [location],
        )?;
        // A forgotten row leaves no newer row behind to say the path changed, so the
        // conduits of this location can no longer plan from what changed since they
        // converged: they reconcile everything next time.
        tx.execute(
            "UPDATE conduits SET clean_seq_a = NULL, clean_seq_b = NULL
             WHERE location_a = ?1 OR location_b = ?1",
            [location],
        )?;
        {
            let mut st =
                tx.prepare_cached("DELETE FROM entries WHERE location_id = ?1 AND path = ?2")?;
            for p in paths {
                st.execute(params![location, p.as_str()])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Whether the location has any live file (cheaper than counting them).
    pub fn has_live_file(&self, location: i64) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT 1 FROM entries WHERE location_id = ?1 AND deleted = 0 AND kind = 'file' LIMIT 1",
            )?
            .query_row([location], |_| Ok(()))
            .optional()?
            .is_some())
    }

    pub fn live_file_count(&self, location: i64) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM entries WHERE location_id = ?1 AND deleted = 0 AND kind != 'dir'",
            [location],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    // ---- conduits ----

    pub fn conduit_between(&self, a: i64, b: i64) -> Result<Option<ConduitRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, location_a, location_b, mode, conflict_policy, index_everything, generation,
                        retention, schedule, parallel, bandwidth_limit, paused
                 FROM conduits WHERE location_a = ?1 AND location_b = ?2",
                params![a, b],
                conduit_from_row,
            )
            .optional()?)
    }

    pub fn conduits(&self) -> Result<Vec<ConduitRow>> {
        let mut st = self.conn.prepare(
            "SELECT id, location_a, location_b, mode, conflict_policy, index_everything, generation,
                        retention, schedule, parallel, bandwidth_limit, paused
             FROM conduits ORDER BY id",
        )?;
        let rows = st.query_map([], conduit_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn insert_conduit(
        &self,
        a: i64,
        b: i64,
        mode: &str,
        policy: &str,
        index_everything: bool,
    ) -> Result<ConduitRow> {
        self.conn.execute(
            "INSERT INTO conduits (location_a, location_b, mode, conflict_policy, index_everything, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![a, b, mode, policy, index_everything, unix_now()],
        )?;
        self.conduit_between(a, b)?
            .ok_or_else(|| Error::Corrupt("conduit vanished after insert".into()))
    }

    /// The locations' sequence numbers when the conduit last converged, if it did.
    pub fn conduit_clean_point(&self, id: i64) -> Result<Option<(u64, u64)>> {
        let (a, b): (Option<i64>, Option<i64>) = self.conn.query_row(
            "SELECT clean_seq_a, clean_seq_b FROM conduits WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(a.zip(b).map(|(a, b)| (a as u64, b as u64)))
    }

    /// Records (or, with `None`, clears) the point where the conduit converged.
    pub fn set_conduit_clean_point(&self, id: i64, point: Option<(u64, u64)>) -> Result<()> {
        self.conn.execute(
            "UPDATE conduits SET clean_seq_a = ?2, clean_seq_b = ?3 WHERE id = ?1",
            params![id, point.map(|p| p.0 as i64), point.map(|p| p.1 as i64)],
        )?;
        Ok(())
    }

    pub fn update_conduit_settings(
        &self,
        id: i64,
        mode: &str,
        policy: &str,
        index_everything: bool,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE conduits SET mode = ?2, conflict_policy = ?3, index_everything = ?4,
                clean_seq_a = NULL, clean_seq_b = NULL WHERE id = ?1",
            params![id, mode, policy, index_everything],
        )?;
        Ok(())
    }

    pub fn conduit(&self, id: i64) -> Result<Option<ConduitRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, location_a, location_b, mode, conflict_policy, index_everything, generation,
                        retention, schedule, parallel, bandwidth_limit, paused
                 FROM conduits WHERE id = ?1",
                [id],
                conduit_from_row,
            )
            .optional()?)
    }

    /// Stores the continuous-sync settings of a conduit.
    pub fn update_conduit_schedule(
        &self,
        id: i64,
        schedule: &str,
        parallel: u32,
        bandwidth_limit: u64,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE conduits SET schedule = ?2, parallel = ?3, bandwidth_limit = ?4 WHERE id = ?1",
            params![id, schedule, parallel as i64, bandwidth_limit as i64],
        )?;
        Ok(())
    }

    /// Stores how many copies a conduit runs at once and its bandwidth limit.
    pub fn set_conduit_transfer(&self, id: i64, parallel: u32, bandwidth_limit: u64) -> Result<()> {
        self.conn.execute(
            "UPDATE conduits SET parallel = ?2, bandwidth_limit = ?3 WHERE id = ?1",
            params![id, parallel as i64, bandwidth_limit as i64],
        )?;
        Ok(())
    }

    /// Pauses or resumes a conduit; false if there is no such conduit.
    pub fn set_conduit_paused(&self, id: i64, paused: bool) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE conduits SET paused = ?2 WHERE id = ?1",
            params![id, paused],
        )?;
        Ok(n > 0)
    }

    /// Removes a conduit with its run history and conflict records. Its locations, their
    /// entries and version stores stay. False if there is no such conduit.
    pub fn remove_conduit(&mut self, id: i64) -> Result<bool> {
        let tx = self.write_batch()?;
        tx.execute("DELETE FROM conflicts WHERE conduit_id = ?1", [id])?;
        tx.execute(
            "DELETE FROM generation_actions WHERE generation_id IN
                (SELECT id FROM generations WHERE conduit_id = ?1)",
            [id],
        )?;
        tx.execute(
            "UPDATE generations SET resumes = NULL WHERE resumes IN
                (SELECT id FROM generations WHERE conduit_id = ?1)",
            [id],
        )?;
        tx.execute("DELETE FROM generations WHERE conduit_id = ?1", [id])?;
        let n = tx.execute("DELETE FROM conduits WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(n > 0)
    }

    // ---- generations ----

    /// Starts a generation of a conduit; returns its row ID. `trigger` says what started
    /// it; a generation of the same conduit left `running` by a process that died is
    /// marked `interrupted`. When the conduit's latest generation did not finish (left
    /// running, or stopped at a safe point by a signal or a pause), this one records
    /// that it resumes it.
    pub fn begin_generation(&self, conduit: i64, trigger: &str) -> Result<i64> {
        let resumes: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM generations WHERE conduit_id = ?1
                   AND id = (SELECT max(id) FROM generations WHERE conduit_id = ?1)
                   AND status IN ('running', 'interrupted')",
                [conduit],
                |r| r.get(0),
            )
            .optional()?;
        self.conn.execute(
            "UPDATE generations SET status = 'interrupted', completed_at = ?2
             WHERE conduit_id = ?1 AND status = 'running'",
            params![conduit, unix_now()],
        )?;
        let number: i64 = self.conn.query_row(
            "UPDATE conduits SET generation = generation + 1 WHERE id = ?1 RETURNING generation",
            [conduit],
            |r| r.get(0),
        )?;
        self.conn.execute(
            "INSERT INTO generations (conduit_id, number, started_at, status, trigger, resumes)
             VALUES (?1, ?2, ?3, 'running', ?4, ?5)",
            params![conduit, number, unix_now(), trigger, resumes],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Conduits whose latest generation did not finish: left `running` by a process
    /// that died mid-run, or `interrupted` (stopped at a safe point by a signal or a
    /// pause) and not run since.
    pub fn conduits_with_interrupted_runs(&self) -> Result<Vec<i64>> {
        let mut st = self.conn.prepare(
            "SELECT conduit_id FROM generations g
             WHERE status IN ('running', 'interrupted')
               AND id = (SELECT max(id) FROM generations WHERE conduit_id = g.conduit_id)
             ORDER BY conduit_id",
        )?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Persists a running generation's counters so far (after each durable batch).
    pub fn record_generation_progress(&self, id: i64, s: &GenerationStats) -> Result<()> {
        self.conn.execute(
            "UPDATE generations SET files_copied = ?2, files_deleted = ?3, files_renamed = ?4,
                dirs_created = ?5, bytes_transferred = ?6, dirs_renamed = ?7
             WHERE id = ?1 AND status = 'running'",
            params![
                id,
                s.files_copied as i64,
                s.files_deleted as i64,
                s.files_renamed as i64,
                s.dirs_created as i64,
                s.bytes_transferred as i64,
                s.dirs_renamed as i64
            ],
        )?;
        Ok(())
    }

    pub fn finish_generation(&self, id: i64, status: &str, s: &GenerationStats) -> Result<()> {
        self.conn.execute(
            "UPDATE generations SET completed_at = ?2, status = ?3, files_copied = ?4,
                files_deleted = ?5, files_renamed = ?6, dirs_created = ?7, conflicts = ?8,
                bytes_transferred = ?9, errors = ?10, conflicts_resolved = ?11, files_archived = ?12,
                bytes_freed = ?13, dirs_renamed = ?14 WHERE id = ?1",
            params![
                id,
                unix_now(),
                status,
                s.files_copied as i64,
                s.files_deleted as i64,
                s.files_renamed as i64,
                s.dirs_created as i64,
                s.conflicts as i64,
                s.bytes_transferred as i64,
                s.errors as i64,
                s.conflicts_resolved as i64,
                s.files_archived as i64,
                s.bytes_freed as i64,
                s.dirs_renamed as i64
            ],
        )?;
        Ok(())
    }

    /// Generations, newest first.
    pub fn generations(&self, limit: usize) -> Result<Vec<GenerationRow>> {
        let mut st = self.conn.prepare(&format!(
            "{GENERATION_COLUMNS} FROM generations ORDER BY id DESC LIMIT ?1"
        ))?;
        let rows = st.query_map([limit as i64], generation_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One generation by its ID.
    pub fn generation(&self, id: i64) -> Result<Option<GenerationRow>> {
        Ok(self
            .conn
            .query_row(
                &format!("{GENERATION_COLUMNS} FROM generations WHERE id = ?1"),
                [id],
                generation_from_row,
            )
            .optional()?)
    }

    /// Keeps per-file actions of generation `id`: appended after those already kept,
    /// up to [`MAX_ACTIONS_PER_GENERATION`]; the rest are only counted.
    pub fn record_generation_actions(&mut self, id: i64, items: &[Item]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let tx = self.write_batch()?;
        let kept: i64 = tx.query_row(
            "SELECT count(*) FROM generation_actions WHERE generation_id = ?1",
            [id],
            |r| r.get(0),
        )?;
        let room = (MAX_ACTIONS_PER_GENERATION as usize).saturating_sub(kept as usize);
        {
            let mut st = tx.prepare(
                "INSERT INTO generation_actions
                    (generation_id, seq, action, side, path, to_path, kind, size, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (seq, it) in (kept..).zip(items.iter().take(room)) {
                st.execute(params![
                    id,
                    seq,
                    it.action.as_str(),
                    it.side.map(|s| s.letter()),
                    it.path.as_str(),
                    it.to.as_ref().map(|t| t.as_str()),
                    it.kind.map(|k| k.as_str()),
                    it.size.map(|n| n as i64),
                    it.detail,
                ])?;
            }
        }
        let omitted = items.len().saturating_sub(room);
        if omitted > 0 {
            tx.execute(
                "UPDATE generations SET actions_omitted = actions_omitted + ?2 WHERE id = ?1",
                params![id, omitted as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The per-file actions kept for generation `id`, in the order they were done.
    pub fn generation_actions(&self, id: i64) -> Result<Vec<Item>> {
        let mut st = self.conn.prepare(
            "SELECT action, side, path, to_path, kind, size, detail FROM generation_actions
             WHERE generation_id = ?1 ORDER BY seq",
        )?;
        let mut rows = st.query([id])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let action: String = r.get(0)?;
            let side: Option<String> = r.get(1)?;
            let path: String = r.get(2)?;
            let to: Option<String> = r.get(3)?;
            let kind: Option<String> = r.get(4)?;
            let bad = |what: &str| Error::Corrupt(format!("generation {id}: action {what}"));
            out.push(Item {
                action: ItemAction::parse(&action).ok_or_else(|| bad(&action))?,
                side: match side.as_deref() {
                    None => None,
                    Some("a") => Some(Side::A),
                    Some("b") => Some(Side::B),
                    Some(other) => return Err(bad(other)),
                },
                path: RelPath::new(&path)?,
                to: to.as_deref().map(RelPath::new).transpose()?,
                kind: match kind.as_deref() {
                    None => None,
                    Some(k) => Some(EntryKind::parse(k).ok_or_else(|| bad(k))?),
                },
                size: r.get::<_, Option<i64>>(5)?.map(|n| n as u64),
                detail: r.get(6)?,
            });
        }
        Ok(out)
    }

    /// Drops the per-file actions of all but the newest [`ACTION_HISTORY_GENERATIONS`]
    /// generations of a conduit (their counters stay).
    pub fn prune_generation_actions(&mut self, conduit: i64) -> Result<()> {
        let tx = self.write_batch()?;
        let old = "SELECT id FROM generations WHERE conduit_id = ?1 AND actions_pruned = 0
                   ORDER BY id DESC LIMIT -1 OFFSET ?2";
        tx.execute(
            &format!("DELETE FROM generation_actions WHERE generation_id IN ({old})"),
            params![conduit, ACTION_HISTORY_GENERATIONS as i64],
        )?;
        tx.execute(
            &format!("UPDATE generations SET actions_pruned = 1 WHERE id IN ({old})"),
            params![conduit, ACTION_HISTORY_GENERATIONS as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Files and symlinks changed (or deleted) on a location since sequence `after`
    /// (what a conduit that converged there has not synced yet), and the bytes of the
    /// live files among them.
    pub fn changed_since(&self, location: i64, after: u64) -> Result<(u64, u64)> {
        let (n, bytes): (i64, i64) = self.conn.query_row(
            "SELECT count(*), coalesce(sum(CASE WHEN deleted = 0 AND kind = 'file' THEN size END), 0)
             FROM entries WHERE location_id = ?1 AND sequence > ?2 AND kind != 'dir'",
            params![location, after as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((n as u64, bytes as u64))
    }
}

const GENERATION_COLUMNS: &str =
    "SELECT id, conduit_id, number, started_at, completed_at, status, files_copied,
            files_deleted, files_renamed, dirs_created, conflicts, bytes_transferred, errors,
            conflicts_resolved, files_archived, bytes_freed, trigger, resumes, dirs_renamed,
            actions_omitted, actions_pruned";

fn generation_from_row(r: &Row<'_>) -> rusqlite::Result<GenerationRow> {
    Ok(GenerationRow {
        id: r.get(0)?,
        conduit_id: r.get(1)?,
        number: r.get(2)?,
        started_at: r.get(3)?,
        completed_at: r.get(4)?,
        status: r.get(5)?,
        trigger: r.get(16)?,
        resumes: r.get(17)?,
        stats: GenerationStats {
            files_copied: r.get::<_, i64>(6)? as u64,
            files_deleted: r.get::<_, i64>(7)? as u64,
            files_renamed: r.get::<_, i64>(8)? as u64,
            dirs_renamed: r.get::<_, i64>(18)? as u64,
            dirs_created: r.get::<_, i64>(9)? as u64,
            conflicts: r.get::<_, i64>(10)? as u64,
            bytes_transferred: r.get::<_, i64>(11)? as u64,
            errors: r.get::<_, i64>(12)? as u64,
            conflicts_resolved: r.get::<_, i64>(13)? as u64,
            files_archived: r.get::<_, i64>(14)? as u64,
            bytes_freed: r.get::<_, i64>(15)? as u64,
        },
        actions_omitted: r.get::<_, i64>(19)? as u64,
        actions_pruned: r.get(20)?,
    })
}

impl Index {
    // ---- conflicts ----

    #[allow(clippy::too_many_arguments)]
    pub fn insert_conflict(
        &self,
        conduit: i64,
        generation: i64,
        path: &RelPath,
        a: Option<&Entry>,
        b: Option<&Entry>,
        policy: &str,
        winner: Option<&str>,
        loser_kept_at: Option<&str>,
        status: &str,
    ) -> Result<()> {
        let live = |e: Option<&Entry>| e.filter(|e| e.is_live()).cloned();
        let (a, b) = (live(a), live(b));
        self.conn.execute(
            "INSERT INTO conflicts (conduit_id, generation_id, path, a_kind, a_size, a_mtime_ns,
                b_kind, b_size, b_mtime_ns, policy, winner, loser_kept_at, status, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                conduit,
                generation,
                path.as_str(),
                a.as_ref().map(|e| e.kind.as_str()),
                a.as_ref().map(|e| e.stat.size as i64),
                a.as_ref().map(|e| e.stat.mtime_ns),
                b.as_ref().map(|e| e.kind.as_str()),
                b.as_ref().map(|e| e.stat.size as i64),
                b.as_ref().map(|e| e.stat.mtime_ns),
                policy,
                winner,
                loser_kept_at,
                status,
                unix_now()
            ],
        )?;
        Ok(())
    }

    /// Conflicts, newest first: all of them, or only open ones.
    pub fn conflicts(&self, only_open: bool) -> Result<Vec<ConflictRow>> {
        self.query_conflicts(
            "WHERE (?1 = 0 OR c.status = 'open') ORDER BY c.id DESC",
            params![only_open],
        )
    }

    /// Open conflicts, and those settled (by policy or by the user) at or after `since`,
    /// newest first. Superseded rows (an open conflict recorded again by a later run) are
    /// left out.
    pub fn recent_conflicts(&self, since: i64) -> Result<Vec<ConflictRow>> {
        self.query_conflicts(
            "WHERE c.status = 'open'
                OR (c.status = 'settled' AND coalesce(c.settled_at, c.created_at) >= ?1)
             ORDER BY c.id DESC",
            params![since],
        )
    }

    /// Open conflicts at `path` of a conduit.
    pub fn open_conflicts_at(&self, conduit: i64, path: &RelPath) -> Result<Vec<ConflictRow>> {
        self.query_conflicts(
            "WHERE c.conduit_id = ?1 AND c.path = ?2 AND c.status = 'open' ORDER BY c.id DESC",
            params![conduit, path.as_str()],
        )
    }

    fn query_conflicts(&self, tail: &str, args: impl rusqlite::Params) -> Result<Vec<ConflictRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT c.id, c.conduit_id, c.path, c.a_kind, c.a_size, c.a_mtime_ns, c.b_kind,
                    c.b_size, c.b_mtime_ns, c.policy, c.winner, c.loser_kept_at, c.status,
                    c.created_at, c.resolution, c.settled_at, la.root, lb.root
             FROM conflicts c JOIN conduits d ON d.id = c.conduit_id
             JOIN locations la ON la.id = d.location_a JOIN locations lb ON lb.id = d.location_b
             {tail}"
        ))?;
        let rows = st.query_map(args, |r| {
            Ok(ConflictRow {
                id: r.get(0)?,
                conduit_id: r.get(1)?,
                path: r.get(2)?,
                a_kind: r.get(3)?,
                a_size: r.get(4)?,
                a_mtime_ns: r.get(5)?,
                b_kind: r.get(6)?,
                b_size: r.get(7)?,
                b_mtime_ns: r.get(8)?,
                policy: r.get(9)?,
                winner: r.get(10)?,
                loser_kept_at: r.get(11)?,
                status: r.get(12)?,
                created_at: r.get(13)?,
                resolution: r.get(14)?,
                settled_at: r.get(15)?,
                a_root: r.get(16)?,
                b_root: r.get(17)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records the user's decision on an open conflict.
    pub fn settle_conflict(
        &self,
        id: i64,
        resolution: &str,
        winner: Option<&str>,
        loser_kept_at: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE conflicts SET status = 'settled', resolution = ?2, winner = ?3,
                loser_kept_at = ?4, settled_at = ?5 WHERE id = ?1",
            params![id, resolution, winner, loser_kept_at, unix_now()],
        )?;
        Ok(())
    }

    /// Marks open conflicts of a conduit as superseded before a run records fresh ones.
    pub fn close_open_conflicts(&self, conduit: i64, status: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE conflicts SET status = ?2 WHERE conduit_id = ?1 AND status = 'open'",
            params![conduit, status],
        )?;
        Ok(())
    }

    // ---- versions ----

    #[allow(clippy::too_many_arguments)]
    pub fn insert_version(
        &self,
        location: i64,
        path: &RelPath,
        stored_path: &str,
        size: u64,
        hash: Option<&Hash>,
        mtime_ns: i64,
        reason: &str,
    ) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO versions (location_id, path, stored_path, size, hash, mtime_ns, created_at, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                location,
                path.as_str(),
                stored_path,
                size as i64,
                hash.map(|h| &h.0[..]),
                mtime_ns,
                unix_now(),
                reason
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Versions of one path of a location, newest first.
    pub fn versions_of(&self, location: i64, path: &RelPath) -> Result<Vec<VersionRow>> {
        self.query_versions(
            "WHERE location_id = ?1 AND path = ?2 ORDER BY id DESC",
            params![location, path.as_str()],
        )
    }

    /// Every version kept in a location, newest first.
    pub fn versions_in(&self, location: i64) -> Result<Vec<VersionRow>> {
        self.query_versions("WHERE location_id = ?1 ORDER BY id DESC", params![location])
    }

    pub fn version(&self, id: i64) -> Result<Option<VersionRow>> {
        Ok(self
            .query_versions("WHERE id = ?1", params![id])?
            .into_iter()
            .next())
    }

    /// Forgets a version record (its stored file is removed by the caller first).
    pub fn delete_version(&self, id: i64) -> Result<()> {
        self.conn
            .execute("DELETE FROM versions WHERE id = ?1", params![id])?;
        Ok(())
    }

    fn query_versions(&self, tail: &str, args: impl rusqlite::Params) -> Result<Vec<VersionRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT id, location_id, path, stored_path, size, mtime_ns, created_at, reason, hash
             FROM versions {tail}"
        ))?;
        let mut rows = st.query(args)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let hash: Option<Vec<u8>> = r.get(8)?;
            out.push(VersionRow {
                id: r.get(0)?,
                location_id: r.get(1)?,
                path: r.get(2)?,
                stored_path: r.get(3)?,
                size: r.get::<_, i64>(4)? as u64,
                mtime_ns: r.get(5)?,
                created_at: r.get(6)?,
                reason: r.get(7)?,
                hash: hash.as_deref().and_then(Hash::from_slice),
            });
        }
        Ok(out)
    }

    // ---- retention settings ----

    pub fn set_conduit_retention(&self, conduit: i64, spec: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE conduits SET retention = ?2 WHERE id = ?1",
            params![conduit, spec],
        )?;
        Ok(())
    }

    pub fn set_location_retention(&self, location: i64, spec: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE locations SET retention = ?2 WHERE id = ?1",
            params![location, spec],
        )?;
        Ok(())
    }

    /// The retention a location uses: its own setting, else that of its first conduit
    /// that has one, else `None` (the default).
    pub fn retention_for_location(&self, location: i64) -> Result<Option<String>> {
        let own: Option<String> = self.conn.query_row(
            "SELECT retention FROM locations WHERE id = ?1",
            [location],
            |r| r.get(0),
        )?;
        if own.is_some() {
            return Ok(own);
        }
        Ok(self
            .conn
            .query_row(
                "SELECT retention FROM conduits WHERE (location_a = ?1 OR location_b = ?1)
                 AND retention IS NOT NULL ORDER BY id LIMIT 1",
                [location],
                |r| r.get(0),
            )
            .optional()?)
    }
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().ok_or_else(|| Error::InvalidPath {
        path: p.to_string_lossy().into_owned(),
        reason: "location root is not valid UTF-8",
    })
}

fn location_from_row(r: &Row<'_>) -> rusqlite::Result<LocationRow> {
    Ok(LocationRow {
        id: r.get(0)?,
        uuid: r.get(1)?,
        root: PathBuf::from(r.get::<_, String>(2)?),
        replica_id: r.get::<_, i64>(3)? as u64,
    })
}

fn conduit_from_row(r: &Row<'_>) -> rusqlite::Result<ConduitRow> {
    Ok(ConduitRow {
        id: r.get(0)?,
        location_a: r.get(1)?,
        location_b: r.get(2)?,
        mode: r.get(3)?,
        conflict_policy: r.get(4)?,
        index_everything: r.get(5)?,
        generation: r.get(6)?,
        retention: r.get(7)?,
        schedule: r.get(8)?,
        parallel: r.get::<_, i64>(9)? as u32,
        bandwidth_limit: r.get::<_, i64>(10)? as u64,
        paused: r.get(11)?,
    })
}

/// The stat columns (2 to 6: size, mtime, ctime, inode, mode) every entry query selects.
fn stat_from_row(r: &Row<'_>) -> rusqlite::Result<StatInfo> {
    Ok(StatInfo {
        size: r.get::<_, i64>(2)? as u64,
        mtime_ns: r.get(3)?,
        ctime_ns: r.get(4)?,
        inode: r.get::<_, i64>(5)? as u64,
        mode: r.get(6)?,
    })
}

fn entry_from_row(r: &Row<'_>) -> Result<Entry> {
    let path: String = r.get(0)?;
    let kind: String = r.get(1)?;
    let hash: Option<Vec<u8>> = r.get(7)?;
    let chunks: Option<Vec<u8>> = r.get(8)?;
    let version: Vec<u8> = r.get(10)?;
    Ok(Entry {
        path: RelPath::new(&path)?,
        kind: EntryKind::parse(&kind)
            .ok_or_else(|| Error::Corrupt(format!("entry {path:?} has kind {kind:?}")))?,
        stat: stat_from_row(r)?,
        hash: match hash {
            Some(h) => Some(
                Hash::from_slice(&h)
                    .ok_or_else(|| Error::Corrupt(format!("entry {path:?} has a bad hash")))?,
            ),
            None => None,
        },
        chunks: match chunks {
            Some(c) => decode_chunks(&c)
                .ok_or_else(|| Error::Corrupt(format!("entry {path:?} has a bad chunk list")))?,
            None => Vec::new(),
        },
        link_target: r.get(9)?,
        version: VersionVector::from_bytes(&version)?,
        deleted: r.get(11)?,
        sequence: r.get::<_, i64>(12)? as u64,
        racy: r.get(13)?,
    })
}

/// See [`Index::write_batch`].
enum WriteBatch<'a> {
    Tx(rusqlite::Transaction<'a>),
    Nested(rusqlite::Savepoint<'a>),
}

impl WriteBatch<'_> {
    fn commit(self) -> rusqlite::Result<()> {
        match self {
            WriteBatch::Tx(t) => t.commit(),
            WriteBatch::Nested(s) => s.commit(),
        }
    }
}

impl std::ops::Deref for WriteBatch<'_> {
    type Target = rusqlite::Connection;
    fn deref(&self) -> &rusqlite::Connection {
        match self {
            WriteBatch::Tx(t) => t,
            WriteBatch::Nested(s) => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_and_roundtrips_entries() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("index.db");
        let mut idx = Index::open(&db).unwrap();
        assert_eq!(idx.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let loc = idx.insert_location("u1", Path::new("/x"), 7).unwrap();
        assert_eq!(idx.reserve_sequence(loc.id, 3).unwrap(), 1);
        assert_eq!(idx.reserve_sequence(loc.id, 1).unwrap(), 4);
        let e = Entry {
            path: RelPath::new("a/b").unwrap(),
            kind: EntryKind::File,
            stat: StatInfo {
                size: 5,
                mtime_ns: 1,
                ctime_ns: 2,
                inode: 3,
                mode: 0o644,
            },
            hash: Some(Hash::of(b"hello")),
            chunks: vec![],
            link_target: None,
            version: VersionVector::new().bumped(7, 1),
            deleted: false,
            sequence: 1,
            racy: true,
        };
        idx.put_entries(loc.id, std::slice::from_ref(&e)).unwrap();
        drop(idx);
        let idx = Index::open(&db).unwrap();
        assert_eq!(idx.entries(loc.id).unwrap(), vec![e.clone()]);
        assert_eq!(
            idx.find_file_by_hash(loc.id, &Hash::of(b"hello")).unwrap(),
            Some(e.path.clone())
        );
        assert_eq!(
            idx.find_file_by_hash(loc.id, &Hash::of(b"x")).unwrap(),
            None
        );
    }

    /// Every way of reading a conduit sees the same row (the column lists agree).
    #[test]
    fn conduit_reads_agree() {
        let dir = tempfile::tempdir().unwrap();
        let idx = Index::open(&dir.path().join("index.db")).unwrap();
        let a = idx.insert_location("ua", Path::new("/a"), 1).unwrap();
        let b = idx.insert_location("ub", Path::new("/b"), 2).unwrap();
        let c = idx
            .insert_conduit(a.id, b.id, "mirror", "keep-both", true)
            .unwrap();
        idx.set_conduit_retention(c.id, Some("simple:3")).unwrap();
        idx.update_conduit_schedule(c.id, "every:10m", 4, 1 << 20)
            .unwrap();
        let by_id = idx.conduit(c.id).unwrap().unwrap();
        assert_eq!(by_id.retention.as_deref(), Some("simple:3"));
        assert_eq!(by_id.schedule, "every:10m");
        assert_eq!((by_id.parallel, by_id.bandwidth_limit), (4, 1 << 20));
        assert_eq!(idx.conduit_between(a.id, b.id).unwrap().unwrap(), by_id);
        assert_eq!(idx.conduits().unwrap(), vec![by_id]);
    }

    /// Writes inside `discarding` (batched ones included) are seen there and gone after,
    /// whether it ends well or with an error; nested calls share the transaction.
    #[test]
    fn discarding_rolls_back_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = Index::open(&dir.path().join("index.db")).unwrap();
        let kept = idx.insert_location("keep", Path::new("/keep"), 1).unwrap();
        let gone = RelPath::new("gone").unwrap();
        let e = Entry {
            path: gone.clone(),
            kind: EntryKind::Dir,
            stat: StatInfo::default(),
            hash: None,
            chunks: vec![],
            link_target: None,
            version: VersionVector::new(),
            deleted: false,
            sequence: 0,
            racy: false,
        };
        idx.put_entries(kept.id, std::slice::from_ref(&e)).unwrap();
        let before = (idx.locations().unwrap(), idx.entries(kept.id).unwrap());

        let seen = idx
            .discarding(|idx| {
                let loc = idx.insert_location("tmp", Path::new("/tmp"), 2)?;
                idx.put_entries(loc.id, std::slice::from_ref(&e))?;
                idx.forget_entries(kept.id, std::slice::from_ref(&gone))?;
                idx.reserve_sequence(kept.id, 5)?;
                idx.discarding(|idx| idx.insert_location("nested", Path::new("/n"), 3))?;
                assert!(idx.is_discarding());
                Ok((idx.locations()?.len(), idx.entries(loc.id)?.len()))
            })
            .unwrap();
        assert_eq!(seen, (3, 1));
        assert!(!idx.is_discarding());
        assert_eq!(
            (idx.locations().unwrap(), idx.entries(kept.id).unwrap()),
            before
        );
        assert_eq!(idx.location_sequence(kept.id).unwrap(), 0);

        let failed: Result<()> = idx.discarding(|idx| {
            idx.insert_location("tmp", Path::new("/tmp"), 2)?;
            Err(Error::Other("stop".into()))
        });
        assert!(failed.is_err());
        assert_eq!(idx.locations().unwrap(), before.0);
        // Ordinary writes commit again afterwards.
        idx.insert_location("after", Path::new("/after"), 4)
            .unwrap();
        assert_eq!(idx.locations().unwrap().len(), 2);
    }

    fn item(path: &str) -> Item {
        Item {
            action: ItemAction::Copy,
            side: Some(Side::B),
            path: RelPath::new(path).unwrap(),
            to: None,
            kind: Some(EntryKind::File),
            size: Some(1),
            detail: None,
        }
    }

    #[test]
    fn generation_actions_are_bounded_pruned_and_removed_with_their_conduit() {
        let mut idx = Index::open_in_memory().unwrap();
        let (a, b) = (
            idx.insert_location("ua", Path::new("/a"), 1).unwrap(),
            idx.insert_location("ub", Path::new("/b"), 2).unwrap(),
        );
        let c = idx
            .insert_conduit(a.id, b.id, "bidirectional", "newest", false)
            .unwrap();
        let g = idx.begin_generation(c.id, "cli").unwrap();
        let many: Vec<Item> = (0..MAX_ACTIONS_PER_GENERATION + 7)
            .map(|i| item(&format!("f{i}")))
            .collect();
        // Recorded in two batches, as the executor does after each durable batch.
        idx.record_generation_actions(g, &many[..10]).unwrap();
        idx.record_generation_actions(g, &many[10..]).unwrap();
        let kept = idx.generation_actions(g).unwrap();
        assert_eq!(kept.len() as u64, MAX_ACTIONS_PER_GENERATION);
        assert_eq!(kept[..3], many[..3]);
        assert_eq!(
            kept.last(),
            many.get(MAX_ACTIONS_PER_GENERATION as usize - 1)
        );
        let row = idx.generation(g).unwrap().unwrap();
        assert_eq!(row.actions_omitted, 7);
        assert!(!row.actions_pruned);

        let mut gens = vec![g];
        for i in 0..ACTION_HISTORY_GENERATIONS {
            let g = idx.begin_generation(c.id, "cli").unwrap();
            idx.record_generation_actions(g, &[item(&format!("run{i}"))])
                .unwrap();
            gens.push(g);
        }
        idx.prune_generation_actions(c.id).unwrap();
        assert!(idx.generation_actions(gens[0]).unwrap().is_empty());
        assert!(idx.generation(gens[0]).unwrap().unwrap().actions_pruned);
        assert_eq!(idx.generation_actions(gens[1]).unwrap().len(), 1);
        assert!(!idx.generation(gens[1]).unwrap().unwrap().actions_pruned);

        assert!(idx.remove_conduit(c.id).unwrap());
        let left: i64 = idx
            .conn
            .query_row("SELECT count(*) FROM generation_actions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }
}
