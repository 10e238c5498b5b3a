//! Index entries: what a replica knows about one path.
//!
//! An entry has two parts. Its [`FileState`] is what replicas agree on and exchange:
//! kind, size, mtime, mode, content hash and chunks, link target, version vector and
//! presence (live, deleted, or content held elsewhere). Its [`StatCache`] is what only
//! this replica's disk means: inode, ctime, whether the mtime was too fresh to trust,
//! and the local change sequence. A peer never sees the cache; a scan compares it with
//! the disk to notice change without reading content.

use crate::model::chunk::{Chunk, Hash};
use crate::model::rel_path::RelPath;
use crate::model::version_vector::VersionVector;
use std::os::unix::fs::MetadataExt;

/// What kind of thing a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
}

impl EntryKind {
    /// The stored and shown name (`file`, `dir`, `symlink`).
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
        }
    }

    /// The kind named `s`, if ferry knows it.
    pub fn parse(s: &str) -> Option<EntryKind> {
        match s {
            "file" => Some(EntryKind::File),
            "dir" => Some(EntryKind::Dir),
            "symlink" => Some(EntryKind::Symlink),
            _ => None,
        }
    }
}

/// Whether a path's content is on this replica.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// The path exists here with this content.
    #[default]
    Live,
    /// The path was deleted; the entry remembers the deletion's version.
    Tombstone,
    /// The path exists (files on demand) but its content is kept on another replica;
    /// never taken for a deletion or an edit (safety rule 7).
    Dehydrated,
}

/// The stat fields a scan compares to notice change without reading content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatInfo {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Status-change time, ns since the epoch.
    pub ctime_ns: i64,
    /// Inode number.
    pub inode: u64,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
}

impl StatInfo {
    /// The fields of an `lstat` result.
    pub fn from_metadata(m: &std::fs::Metadata) -> StatInfo {
        StatInfo {
            size: m.len(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            inode: m.ino(),
            mode: m.mode() & 0o7777,
        }
    }
}

/// Kind of a metadata record, or `None` for sockets, fifos and devices (never synced).
pub fn kind_of(m: &std::fs::Metadata) -> Option<EntryKind> {
    let t = m.file_type();
    if t.is_symlink() {
        Some(EntryKind::Symlink)
    } else if t.is_dir() {
        Some(EntryKind::Dir)
    } else if t.is_file() {
        Some(EntryKind::File)
    } else {
        None
    }
}

/// What replicas agree on about one path: the part of an entry that crosses the wire.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileState {
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Bytes of a file; 0 for directories, the target's length for symlinks.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// BLAKE3 of the content (file bytes, or the link target for symlinks); `None` for
    /// directories and for files not hashed yet.
    pub hash: Option<Hash>,
    /// Chunks of a file larger than one chunk; empty means "one chunk = the whole file".
    pub chunks: Vec<Chunk>,
    /// Symlink target, as stored in the link.
    pub link_target: Option<String>,
    /// Which replica changed the path how often: decides who is newer.
    pub version: VersionVector,
    /// Live, deleted (tombstone) or dehydrated.
    pub presence: Presence,
}

/// What only this replica's disk means about a path: compared with a fresh stat to
/// notice change, never sent to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatCache {
    pub inode: u64,
    pub ctime_ns: i64,
    /// The mtime was too close to the scan to trust; the next scan hashes again.
    pub racy: bool,
    /// Local sequence number of the last change to this row.
    pub sequence: u64,
}

/// One indexed path of a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path, relative to the replica's root.
    pub path: RelPath,
    /// What replicas agree on.
    pub state: FileState,
    /// What only this disk means (inode, ctime, racy, sequence).
    pub cache: StatCache,
}

impl Entry {
    /// An entry for what is on disk now, with no history yet (empty version vector,
    /// no content hash, not in the index).
    pub fn on_disk(path: RelPath, kind: EntryKind, meta: &std::fs::Metadata) -> Entry {
        Entry::at(path, kind, StatInfo::from_metadata(meta))
    }

    /// An entry for what a stat found, with no history yet.
    pub fn at(path: RelPath, kind: EntryKind, stat: StatInfo) -> Entry {
        Entry {
            path,
            state: FileState {
                kind,
                size: stat.size,
                mtime_ns: stat.mtime_ns,
                mode: stat.mode,
                hash: None,
                chunks: Vec::new(),
                link_target: None,
                version: VersionVector::new(),
                presence: Presence::Live,
            },
            cache: StatCache {
                inode: stat.inode,
                ctime_ns: stat.ctime_ns,
                racy: false,
                sequence: 0,
            },
        }
    }

    /// What a path holds once `source`'s content landed there with `stat`, at
    /// `version`.
    pub fn landed(
        path: &RelPath,
        source: &Entry,
        stat: StatInfo,
        version: &VersionVector,
    ) -> Entry {
        let mut e = Entry::at(path.clone(), source.state.kind, stat);
        e.state.hash = source.state.hash;
        e.state.chunks = source.state.chunks.clone();
        e.state.link_target = source.state.link_target.clone();
        e.state.version = version.clone();
        e
    }

    /// The same entry at another version (the disk already agrees; only history moves).
    pub fn with_version(&self, version: &VersionVector) -> Entry {
        let mut e = self.clone();
        e.state.version = version.clone();
        e
    }

    /// This entry deleted, at `version`.
    pub fn tombstone(&self, version: &VersionVector) -> Entry {
        let mut e = self.clone();
        e.state.presence = Presence::Tombstone;
        e.state.version = version.clone();
        e.cache.racy = false;
        e
    }

    /// The stat the index last saw (what the disk must still show for the entry to hold).
    pub fn stat(&self) -> StatInfo {
        StatInfo {
            size: self.state.size,
            mtime_ns: self.state.mtime_ns,
            ctime_ns: self.cache.ctime_ns,
            inode: self.cache.inode,
            mode: self.state.mode,
        }
    }

    /// Takes a new stat of the same content (size, times, inode, mode).
    pub(crate) fn set_stat(&mut self, stat: StatInfo) {
        self.state.size = stat.size;
        self.state.mtime_ns = stat.mtime_ns;
        self.state.mode = stat.mode;
        self.cache.inode = stat.inode;
        self.cache.ctime_ns = stat.ctime_ns;
    }

    /// The path exists on this replica (with or without its content here).
    pub fn is_live(&self) -> bool {
        self.state.presence != Presence::Tombstone
    }

    /// The entry remembers a deletion.
    pub fn is_tombstone(&self) -> bool {
        self.state.presence == Presence::Tombstone
    }

    /// Same user-visible content: kind, bytes or link target, permission bits.
    /// Two replicas with the same content need no transfer whatever their history.
    pub fn same_content(&self, other: &Entry) -> bool {
        self.state.same_content(&other.state)
    }
}

impl FileState {
    /// See [`Entry::same_content`].
    pub fn same_content(&self, other: &FileState) -> bool {
        let gone = |s: &FileState| s.presence == Presence::Tombstone;
        if gone(self) || gone(other) {
            return gone(self) && gone(other);
        }
        self.kind == other.kind
            && match self.kind {
                EntryKind::File => {
                    self.hash == other.hash && self.size == other.size && self.mode == other.mode
                }
                EntryKind::Symlink => self.link_target == other.link_target,
                EntryKind::Dir => self.mode == other.mode,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_state_round_trips_through_json() {
        let mut e = Entry::at(
            RelPath::new("docs/a.txt").unwrap(),
            EntryKind::File,
            StatInfo {
                size: 5,
                mtime_ns: 7,
                ctime_ns: 8,
                inode: 9,
                mode: 0o644,
            },
        );
        e.state.hash = Some(Hash::of(b"hello"));
        e.state.version = VersionVector::new().bumped(3, 1);
        let json = serde_json::to_string(&e.state).unwrap();
        assert!(
            !json.contains("inode"),
            "the stat cache stays local: {json}"
        );
        let back: FileState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e.state);
    }

    #[test]
    fn a_tombstone_is_not_live_and_matches_only_tombstones() {
        let e = Entry::at(
            RelPath::new("a").unwrap(),
            EntryKind::File,
            StatInfo::default(),
        );
        let t = e.tombstone(&VersionVector::new().bumped(1, 1));
        assert!(!t.is_live() && t.is_tombstone());
        assert!(!t.same_content(&e));
        assert!(t.same_content(&t.clone()));
        let mut d = e.clone();
        d.state.presence = Presence::Dehydrated;
        assert!(d.is_live(), "a dehydrated file still exists");
    }
}
