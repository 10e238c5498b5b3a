//! The index: one SQLite database per library holding locations, entries, conduits,
//! generations, conflicts and versions. Every sync decision is a query over it.

/// `as_str`, `parse` and `Display` of an enum that rows store by name
/// (`stored_names!(RunStatus { Running => "running", … })`).
macro_rules! stored_names {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The stored and shown name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }

            /// The value named `s`, if ferry knows it.
            pub fn parse(s: &str) -> Option<$ty> {
                Some(match s {
                    $($name => $ty::$variant,)+
                    _ => return None,
                })
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

mod conduits;
mod conflicts;
mod entries;
mod history;
mod locations;
mod schema;
mod selective;
mod shares;
mod sql_types;
mod versions;

pub use conduits::ConduitRow;
pub use conflicts::{ConflictRow, ConflictStatus, Resolution};
pub use entries::StatRow;
pub use history::{
    GenerationRow, GenerationStats, RunStatus, ACTION_HISTORY_GENERATIONS,
    MAX_ACTIONS_PER_GENERATION, PROBLEMS_KEPT,
};
pub use locations::LocationRow;
pub use selective::SelectiveSettings;
pub use shares::{ShareMember, ShareOffer, ShareRow};
pub use versions::VersionRow;

use schema::MIGRATIONS;

use crate::error::{Error, Result};
use crate::model::chunk::CHUNKER_ID;
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;

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
        // Savepoints' sub-journals (every write batch is one) and sorts stay in memory:
        // in temp files they cost several writes per file synced (measured: 150,000
        // `pwrite`s to /var/tmp for 20,000 files), and they are bounded by a batch.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
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
    pub(crate) fn discarding<T>(&mut self, f: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
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
    pub(crate) fn is_discarding(&self) -> bool {
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

    /// The schema version the index is at (its number of migrations).
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }
}

pub(super) fn path_str(p: &Path) -> Result<&str> {
    p.to_str().ok_or_else(|| Error::InvalidPath {
        path: p.to_string_lossy().into_owned(),
        reason: "location root is not valid UTF-8",
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
    /// The rows under a path are found by searches of the primary key, never by reading
    /// every row of the location (it runs once per path a run wrote: a scan per call
    /// made the daemon quadratic after a big copy).
    #[test]
    fn rows_under_a_path_are_searched_not_scanned() {
        let idx = Index::open_in_memory().unwrap();
        let mut st = idx
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", entries::STAT_ROWS_UNDER))
            .unwrap();
        let details: Vec<String> = st
            .query_map(rusqlite::params![1, "a", "a/", "a0"], |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .map(|d| d.unwrap())
            .collect();
        let searches: Vec<&String> = details.iter().filter(|d| d.contains("entries")).collect();
        assert_eq!(searches.len(), 2, "{details:?}");
        for d in searches {
            assert!(
                d.contains("path=?") || d.contains("path>?"),
                "reads every row of the location: {details:?}"
            );
        }
    }

    use super::*;
    use crate::conduit::Schedule;
    use crate::model::chunk::Hash;
    use crate::model::entry::{Entry, EntryKind, StatInfo};
    use crate::model::rel_path::RelPath;
    use crate::model::version_vector::VersionVector;
    use crate::plan::itemize::{Item, ItemAction};
    use crate::plan::{ConflictPolicy, Side, SyncMode};

    #[test]
    fn migrates_and_roundtrips_entries() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("index.db");
        let mut idx = Index::open(&db).unwrap();
        assert_eq!(idx.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let loc = idx.insert_location("u1", Path::new("/x"), 7).unwrap();
        assert_eq!(idx.reserve_sequence(loc.id, 3).unwrap(), 1);
        assert_eq!(idx.reserve_sequence(loc.id, 1).unwrap(), 4);
        let e = {
            let mut e = Entry::at(
                RelPath::new("a/b").unwrap(),
                EntryKind::File,
                StatInfo {
                    size: 5,
                    mtime_ns: 1,
                    ctime_ns: 2,
                    inode: 3,
                    mode: 0o644,
                },
            );
            e.state.hash = Some(Hash::of(b"hello"));
            e.state.version = VersionVector::new().bumped(7, 1);
            e.cache.sequence = 1;
            e.cache.racy = true;
            e
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

    /// Two writers number rows of one location while a reader follows them by sequence
    /// number, as the index exchange and a hub log do: moving its cursor to the highest
    /// number it saw, the reader still meets every row, since numbers are taken and rows
    /// stored in one transaction (no lower number is stored after a higher one is seen).
    #[test]
    fn a_reader_following_sequence_numbers_meets_every_row_of_two_writers() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        const BATCHES: usize = 200;
        const PER: usize = 3;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("index.db");
        let loc = Index::open(&db)
            .unwrap()
            .insert_location("u", Path::new("/x"), 7)
            .unwrap()
            .id;
        let row = |name: String| {
            let stat = StatInfo {
                size: 1,
                mtime_ns: 1,
                ctime_ns: 1,
                inode: 1,
                mode: 0o644,
            };
            let mut e = Entry::at(RelPath::new(&name).unwrap(), EntryKind::File, stat);
            e.state.hash = Some(Hash::of(name.as_bytes()));
            e
        };
        let finished = AtomicUsize::new(0);
        let seen = std::thread::scope(|s| {
            for w in 0..2 {
                let (db, row, finished) = (&db, &row, &finished);
                s.spawn(move || {
                    let mut idx = Index::open(db).unwrap();
                    for b in 0..BATCHES {
                        let mut rows: Vec<Entry> =
                            (0..PER).map(|i| row(format!("w{w}/b{b:03}/{i}"))).collect();
                        idx.put_entries_numbered(
                            loc,
                            &mut rows,
                            |_| true,
                            |e, seq| e.cache.sequence = seq,
                        )
                        .unwrap();
                    }
                    finished.fetch_add(1, Ordering::SeqCst);
                });
            }
            let reader = s.spawn(|| {
                let idx = Index::open(&db).unwrap();
                let (mut cursor, mut seen) = (0, std::collections::HashSet::new());
                loop {
                    let done = finished.load(Ordering::SeqCst) == 2;
                    let page = idx.entries_after(loc, cursor, 50).unwrap();
                    for e in &page {
                        seen.insert(e.path.clone());
                        cursor = cursor.max(e.cache.sequence);
                    }
                    if page.is_empty() && done {
                        return seen;
                    }
                }
            });
            reader.join().unwrap()
        });
        assert_eq!(seen.len(), 2 * BATCHES * PER);
    }

    /// Every way of reading a conduit sees the same row (the column lists agree).
    #[test]
    fn conduit_reads_agree() {
        let dir = tempfile::tempdir().unwrap();
        let idx = Index::open(&dir.path().join("index.db")).unwrap();
        let a = idx.insert_location("ua", Path::new("/a"), 1).unwrap();
        let b = idx.insert_location("ub", Path::new("/b"), 2).unwrap();
        let c = idx
            .insert_conduit(a.id, b.id, SyncMode::Mirror, ConflictPolicy::KeepBoth, true)
            .unwrap();
        idx.set_conduit_retention(c.id, Some("simple:3")).unwrap();
        idx.update_conduit_schedule(
            c.id,
            Schedule::Every(std::time::Duration::from_secs(600)),
            4,
            1 << 20,
        )
        .unwrap();
        let by_id = idx.conduit(c.id).unwrap().unwrap();
        assert_eq!(by_id.retention.as_deref(), Some("simple:3"));
        assert_eq!(by_id.schedule.to_string(), "every:10m");
        assert_eq!((by_id.parallel, by_id.bandwidth_limit), (4, 1 << 20));
        assert_eq!(idx.conduit_between(a.id, b.id).unwrap().unwrap(), by_id);
        assert_eq!(idx.conduits().unwrap(), vec![by_id]);
    }

    /// An index in memory with one mirror conduit under `policy`, one run of it, and the
    /// path `f`.
    fn one_run(policy: ConflictPolicy) -> (Index, ConduitRow, i64, RelPath) {
        let idx = Index::open_in_memory().unwrap();
        let a = idx.insert_location("ua", Path::new("/a"), 1).unwrap();
        let b = idx.insert_location("ub", Path::new("/b"), 2).unwrap();
        let c = (idx.insert_conduit(a.id, b.id, SyncMode::Mirror, policy, false)).unwrap();
        let g = idx.begin_generation(c.id, "cli").unwrap();
        (idx, c, g, RelPath::new("f").unwrap())
    }

    /// A schedule or conflict status this ferry does not know makes the row unreadable
    /// (corrupt), never a default; the stored names read back as they were written.
    #[test]
    fn unknown_schedule_or_conflict_status_is_refused() {
        let (idx, c, g, path) = one_run(ConflictPolicy::Manual);
        idx.insert_conflict(
            c.id,
            g,
            &path,
            None,
            None,
            ConflictPolicy::Manual,
            None,
            None,
            ConflictStatus::Open,
        )
        .unwrap();
        let stored = |sql: &str| -> String { idx.conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(stored("SELECT schedule FROM conduits"), "manual");
        assert_eq!(stored("SELECT status FROM conflicts"), "open");
        assert_eq!(stored("SELECT policy FROM conflicts"), "manual");
        assert_eq!(idx.conflicts(true).unwrap()[0].status, ConflictStatus::Open);

        idx.conn
            .execute("UPDATE conduits SET schedule = 'hourly'", [])
            .unwrap();
        assert!(idx.conduit(c.id).is_err());
        assert!(idx.conduits().is_err());
        idx.conn
            .execute("UPDATE conflicts SET status = 'pending'", [])
            .unwrap();
        assert!(idx.conflicts(false).is_err());
    }

    /// A conflict's winner, resolution and kinds are stored as the same text as before
    /// they were typed (`b`, `both`, `file`), read back as enums, and a name this ferry
    /// does not know makes the row corrupt.
    #[test]
    fn conflict_winner_resolution_and_kinds_are_typed() {
        let (idx, c, g, path) = one_run(ConflictPolicy::Newest);
        let stat = StatInfo {
            size: 3,
            ..StatInfo::default()
        };
        let file = Entry::at(path.clone(), EntryKind::File, stat);
        idx.insert_conflict(
            c.id,
            g,
            &path,
            Some(&file),
            None,
            ConflictPolicy::Newest,
            Some(Side::B),
            None,
            ConflictStatus::Settled,
        )
        .unwrap();
        let stored =
            |sql: &str| -> Option<String> { idx.conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(stored("SELECT winner FROM conflicts").as_deref(), Some("b"));
        assert_eq!(
            stored("SELECT a_kind FROM conflicts").as_deref(),
            Some("file")
        );
        assert_eq!(stored("SELECT b_kind FROM conflicts"), None);
        let row = &idx.conflicts(false).unwrap()[0];
        assert_eq!(
            (row.winner, row.a_kind, row.b_kind),
            (Some(Side::B), Some(EntryKind::File), None)
        );
        assert_eq!(row.resolution, None);
        let json = serde_json::to_value(row).unwrap();
        assert_eq!(
            (json["winner"].as_str(), json["a_kind"].as_str()),
            (Some("b"), Some("file"))
        );

        idx.settle_conflict(row.id, Resolution::Both, Some("f.conflict"))
            .unwrap();
        assert_eq!(
            stored("SELECT resolution FROM conflicts").as_deref(),
            Some("both")
        );
        assert_eq!(stored("SELECT winner FROM conflicts"), None);
        let row = &idx.conflicts(false).unwrap()[0];
        assert_eq!((row.resolution, row.winner), (Some(Resolution::Both), None));
        assert_eq!(serde_json::to_value(row).unwrap()["resolution"], "both");

        for (column, unknown) in [("winner", "c"), ("resolution", "keep"), ("a_kind", "fifo")] {
            let was = stored(&format!("SELECT {column} FROM conflicts"));
            idx.conn
                .execute(&format!("UPDATE conflicts SET {column} = ?1"), [unknown])
                .unwrap();
            assert!(idx.conflicts(false).is_err(), "{column} = {unknown}");
            idx.conn
                .execute(&format!("UPDATE conflicts SET {column} = ?1"), [was])
                .unwrap();
            assert!(idx.conflicts(false).is_ok());
        }
    }

    /// Writes inside `discarding` (batched ones included) are seen there and gone after,
    /// whether it ends well or with an error; nested calls share the transaction.
    #[test]
    fn discarding_rolls_back_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = Index::open(&dir.path().join("index.db")).unwrap();
        let kept = idx.insert_location("keep", Path::new("/keep"), 1).unwrap();
        let gone = RelPath::new("gone").unwrap();
        let e = Entry::at(gone.clone(), EntryKind::Dir, StatInfo::default());
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
            .insert_conduit(
                a.id,
                b.id,
                SyncMode::Bidirectional,
                ConflictPolicy::Newest,
                false,
            )
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
        // Problems: the first PROBLEMS_KEPT, in order, typed on the way back.
        let problems: Vec<crate::Problem> = (0..PROBLEMS_KEPT + 3)
            .map(|i| crate::Problem {
                side: Some(crate::Side::B),
                path: Some(format!("p{i}")),
                kind: if i % 2 == 0 {
                    crate::ProblemKind::PermissionDenied
                } else {
                    crate::ProblemKind::Changed
                },
                detail: format!("detail {i}"),
            })
            .collect();
        idx.record_generation_problems(g, &problems).unwrap();
        assert_eq!(
            idx.generation_problems(g).unwrap(),
            problems[..PROBLEMS_KEPT].to_vec()
        );
        // A corrupt row is an error, never a default.
        idx.conn
            .execute(
                "UPDATE generation_problems SET problem = '{\"kind\":\"bogus\"}' WHERE seq = 0",
                [],
            )
            .unwrap();
        assert!(idx.generation_problems(g).is_err());
        idx.record_generation_problems(g, &problems[..1]).unwrap();
        assert_eq!(idx.generation_problems(g).unwrap(), problems[..1].to_vec());

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
        idx.record_generation_problems(gens[1], &problems[..2])
            .unwrap();
        idx.prune_generation_actions(c.id).unwrap();
        assert!(idx.generation_actions(gens[0]).unwrap().is_empty());
        assert!(idx.generation_problems(gens[0]).unwrap().is_empty());
        assert!(idx.generation(gens[0]).unwrap().unwrap().actions_pruned);
        assert_eq!(idx.generation_actions(gens[1]).unwrap().len(), 1);
        assert!(!idx.generation(gens[1]).unwrap().unwrap().actions_pruned);

        assert!(idx.remove_conduit(c.id).unwrap());
        let left: i64 = idx
            .conn
            .query_row(
                "SELECT (SELECT count(*) FROM generation_actions)
                      + (SELECT count(*) FROM generation_problems)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
    }
}
