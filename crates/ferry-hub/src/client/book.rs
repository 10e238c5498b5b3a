//! A device's record of its hubs (`$FERRY_HOME/hubs.db`): the hubs it knows (ID and
//! address), which hub each share goes through, and which objects each content was cut
//! into (so a content is read back from the hub, and not cut and uploaded twice). Its
//! age identity, which the share keys are wrapped to, is `$FERRY_HOME/hub-age.key`.

use crate::protocol::ContentObjects;
use crate::DeviceIdentity;
use prost::Message;
use rusqlite::{params, Connection, OptionalExtension};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS hubs (
    id TEXT PRIMARY KEY,
    addr TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS share_hubs (
    share TEXT PRIMARY KEY,
    hub TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS contents (
    share TEXT NOT NULL,
    content BLOB NOT NULL,
    objects BLOB NOT NULL,
    PRIMARY KEY (share, content)
);
CREATE TABLE IF NOT EXISTS compactions (
    share TEXT PRIMARY KEY,
    upto INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS removals (
    share TEXT NOT NULL,
    device TEXT NOT NULL,
    PRIMARY KEY (share, device)
);
";

const AGE_KEY_FILE: &str = "hub-age.key";

#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("hubs.db: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: readable by others or not a regular file; it must be 0600")]
    Exposed(std::path::PathBuf),
    #[error("{0}")]
    Crypto(#[from] crate::CryptoError),
    #[error("a stored object list does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// A hub this device knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHub {
    pub id: String,
    /// Where it listens: one address, or several (nodes of one hub) separated by commas.
    pub addr: String,
}

impl KnownHub {
    /// Its addresses, in the order they were added.
    pub fn addrs(&self) -> Vec<&str> {
        (self.addr.split(','))
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect()
    }
}

pub struct HubBook {
    conn: Connection,
}

impl HubBook {
    pub fn open(home: &Path) -> Result<HubBook, BookError> {
        std::fs::create_dir_all(home).map_err(|source| BookError::Io {
            path: home.to_path_buf(),
            source,
        })?;
        let conn = Connection::open(home.join("hubs.db"))?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(HubBook { conn })
    }

    /// Adds a hub, or one more address of a hub (another node of it).
    pub fn add_hub(&self, id: &str, addr: &str) -> Result<(), BookError> {
        let known = self.hubs()?.into_iter().find(|h| h.id == id);
        let addr = match known {
            Some(h) if h.addrs().contains(&addr) => return Ok(()),
            Some(h) => format!("{},{addr}", h.addr),
            None => addr.to_string(),
        };
        self.conn.execute(
            "INSERT INTO hubs (id, addr) VALUES (?1, ?2)
             ON CONFLICT (id) DO UPDATE SET addr = excluded.addr",
            params![id, addr],
        )?;
        Ok(())
    }

    pub fn hubs(&self) -> Result<Vec<KnownHub>, BookError> {
        let mut st = self.conn.prepare("SELECT id, addr FROM hubs ORDER BY id")?;
        let rows = st.query_map([], |r| {
            Ok(KnownHub {
                id: r.get(0)?,
                addr: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn set_share_hub(&self, share: &str, hub: &str) -> Result<(), BookError> {
        self.conn.execute(
            "INSERT INTO share_hubs (share, hub) VALUES (?1, ?2)
             ON CONFLICT (share) DO UPDATE SET hub = excluded.hub",
            params![share, hub],
        )?;
        Ok(())
    }

    pub fn share_hub(&self, share: &str) -> Result<Option<String>, BookError> {
        Ok(self
            .conn
            .query_row(
                "SELECT hub FROM share_hubs WHERE share = ?1",
                params![share],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The shares that go through `hub`.
    pub fn shares_of(&self, hub: &str) -> Result<Vec<String>, BookError> {
        let mut st = self
            .conn
            .prepare("SELECT share FROM share_hubs WHERE hub = ?1 ORDER BY share")?;
        let rows = st.query_map(params![hub], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that `device` was removed from `share` on this device: the hub client
    /// tells the hub and starts a new key epoch at its next sync.
    pub fn add_removal(&self, share: &str, device: &str) -> Result<(), BookError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO removals (share, device) VALUES (?1, ?2)",
            params![share, device],
        )?;
        Ok(())
    }

    /// Removals of `share`'s members the hub has not been told of yet.
    pub fn removals(&self, share: &str) -> Result<Vec<String>, BookError> {
        let mut st = self
            .conn
            .prepare("SELECT device FROM removals WHERE share = ?1 ORDER BY device")?;
        let rows = st.query_map(params![share], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn removal_done(&self, share: &str, device: &str) -> Result<(), BookError> {
        self.conn.execute(
            "DELETE FROM removals WHERE share = ?1 AND device = ?2",
            params![share, device],
        )?;
        Ok(())
    }

    /// The head this device last compacted its log in `share` at (none: never).
    pub fn compacted(&self, share: &str) -> Result<Option<u64>, BookError> {
        let upto: Option<i64> = self
            .conn
            .query_row(
                "SELECT upto FROM compactions WHERE share = ?1",
                params![share],
                |r| r.get(0),
            )
            .optional()?;
        Ok(upto.and_then(|u| u64::try_from(u).ok()))
    }

    pub fn set_compacted(&self, share: &str, upto: u64) -> Result<(), BookError> {
        self.conn.execute(
            "INSERT INTO compactions (share, upto) VALUES (?1, ?2)
             ON CONFLICT (share) DO UPDATE SET upto = excluded.upto",
            params![share, i64::try_from(upto).unwrap_or(i64::MAX)],
        )?;
        Ok(())
    }

    pub fn put_objects(&self, share: &str, list: &ContentObjects) -> Result<(), BookError> {
        self.conn.execute(
            "INSERT INTO contents (share, content, objects) VALUES (?1, ?2, ?3)
             ON CONFLICT (share, content) DO UPDATE SET objects = excluded.objects",
            params![share, list.content, list.encode_to_vec()],
        )?;
        Ok(())
    }

    pub fn objects(
        &self,
        share: &str,
        content: &[u8],
    ) -> Result<Option<ContentObjects>, BookError> {
        let raw: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT objects FROM contents WHERE share = ?1 AND content = ?2",
                params![share, content],
                |r| r.get(0),
            )
            .optional()?;
        Ok(raw
            .map(|r| ContentObjects::decode(r.as_slice()))
            .transpose()?)
    }
}

/// This device's age identity for hub shares, created (0600) on first use.
pub fn age_identity(home: &Path) -> Result<DeviceIdentity, BookError> {
    let path = home.join(AGE_KEY_FILE);
    let io = |source| BookError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::symlink_metadata(&path) {
        Ok(meta) => {
            if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
                return Err(BookError::Exposed(path));
            }
            let text = std::fs::read_to_string(&path).map_err(io)?;
            Ok(text.parse()?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(home).map_err(io)?;
            let id = DeviceIdentity::generate();
            let tmp = home.join(format!("{AGE_KEY_FILE}.{}.tmp", std::process::id()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?;
            f.write_all(id.to_secret_string().as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            // Two processes starting at once: the first link wins, both read it.
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => Ok(id),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => age_identity(home),
                Err(e) => Err(io(e)),
            }
        }
        Err(e) => Err(io(e)),
    }
}
