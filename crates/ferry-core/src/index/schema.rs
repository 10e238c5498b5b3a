//! Schema migrations of the index database.

/// Schema migrations; entry N brings the schema from version N to N+1. Append only.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 8: folders shared with other devices. A peer's copy of a shared folder is a
    // location with `peer` set (its device ID) and no folder on this disk: its entries
    // are the ones that device sent.
    r#"
ALTER TABLE locations ADD COLUMN peer TEXT;
CREATE TABLE shares (
    id TEXT PRIMARY KEY,
    location_id INTEGER NOT NULL REFERENCES locations(id),
    mode TEXT NOT NULL,
    conflict_policy TEXT NOT NULL,
    offered_by TEXT,
    created_at INTEGER NOT NULL
);
CREATE TABLE share_members (
    share_id TEXT NOT NULL REFERENCES shares(id),
    device TEXT NOT NULL,
    remote_location INTEGER REFERENCES locations(id),
    conduit_id INTEGER REFERENCES conduits(id),
    received_seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (share_id, device)
) WITHOUT ROWID;
CREATE TABLE share_offers (
    share_id TEXT NOT NULL,
    device TEXT NOT NULL,
    folder_name TEXT NOT NULL,
    folder_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    conflict_policy TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (share_id, device)
) WITHOUT ROWID;
"#,
    // 9: the problems of each run (at most PROBLEMS_KEPT per run), so a run's page
    // shows them after the daemon restarts; pruned with the run's actions.
    r#"
CREATE TABLE generation_problems (
    generation_id INTEGER NOT NULL REFERENCES generations(id),
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    problem TEXT NOT NULL,
    PRIMARY KEY (generation_id, seq)
) WITHOUT ROWID;
"#,
    // 10: an offer the user declined stays (so the offering device's next share list
    // does not bring it back) with when it was declined.
    r#"
ALTER TABLE share_offers ADD COLUMN declined_at INTEGER;
"#,
    // 11: files on demand (selective mode). A dehydrated entry exists but its content
    // is on the conduit's secondary replica; pins keep paths (and everything under a
    // pinned folder) local; accesses record reads through the mount for eviction;
    // selective conduits' quota and free-space floor; hydrations under way.
    r#"
ALTER TABLE entries ADD COLUMN dehydrated INTEGER NOT NULL DEFAULT 0;
CREATE TABLE pins (
    location_id INTEGER NOT NULL REFERENCES locations(id),
    path TEXT NOT NULL,
    PRIMARY KEY (location_id, path)
) WITHOUT ROWID;
CREATE TABLE accesses (
    location_id INTEGER NOT NULL REFERENCES locations(id),
    path TEXT NOT NULL,
    accessed_ns INTEGER NOT NULL,
    PRIMARY KEY (location_id, path)
) WITHOUT ROWID;
CREATE TABLE selective (
    conduit_id INTEGER PRIMARY KEY REFERENCES conduits(id),
    local_quota INTEGER,
    min_free_percent INTEGER
);
CREATE TABLE hydrations (
    location_id INTEGER NOT NULL REFERENCES locations(id),
    path TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    PRIMARY KEY (location_id, path)
) WITHOUT ROWID;
"#,
    // 12: a share's bandwidth limit (bytes per second, 0: none): its member conduits
    // start with it (issue 12).
    r#"
ALTER TABLE shares ADD COLUMN bandwidth_limit INTEGER NOT NULL DEFAULT 0;
"#,
    // 13: a share's bandwidth schedule (`10M 09:00-18:00, 50M 18:00-23:00`), as text
    // `BandwidthLimit` reads; NULL: the one rate of `bandwidth_limit` (issue 12).
    r#"
ALTER TABLE shares ADD COLUMN bandwidth_schedule TEXT;
"#,
];
