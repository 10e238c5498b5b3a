//! Index entries: what the index knows about one path of one location.

use crate::model::chunk::{Chunk, Hash};
use crate::model::rel_path::RelPath;
use crate::model::version_vector::VersionVector;
use std::os::unix::fs::MetadataExt;

/// What kind of thing a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
        }
    }

    pub fn parse(s: &str) -> Option<EntryKind> {
        match s {
            "file" => Some(EntryKind::File),
            "dir" => Some(EntryKind::Dir),
            "symlink" => Some(EntryKind::Symlink),
            _ => None,
        }
    }
}

/// The stat fields a scan compares to notice change without reading content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatInfo {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
}

impl StatInfo {
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

/// One indexed path of a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: RelPath,
    pub kind: EntryKind,
    pub stat: StatInfo,
    /// BLAKE3 of the content (file bytes, or the link target for symlinks); `None` for dirs.
    pub hash: Option<Hash>,
    /// Chunks of a file larger than one chunk; empty means "one chunk = the whole file".
    pub chunks: Vec<Chunk>,
    /// Symlink target, as stored in the link.
    pub link_target: Option<String>,
    pub version: VersionVector,
    /// The path was deleted; the entry remembers the deletion's version.
    pub deleted: bool,
    /// Local sequence number of the last change to this row.
    pub sequence: u64,
    /// The mtime was too close to the scan to trust; the next scan hashes again.
    pub racy: bool,
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
            kind,
            stat,
            hash: None,
            chunks: Vec::new(),
            link_target: None,
            version: VersionVector::new(),
            deleted: false,
            sequence: 0,
            racy: false,
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
        Entry {
            path: path.clone(),
            kind: source.kind,
            stat,
            hash: source.hash,
            chunks: source.chunks.clone(),
            link_target: source.link_target.clone(),
            version: version.clone(),
            deleted: false,
            sequence: 0,
            racy: false,
        }
    }

    /// This entry deleted, at `version`.
    pub fn tombstone(&self, version: &VersionVector) -> Entry {
        Entry {
            deleted: true,
            version: version.clone(),
            racy: false,
            ..self.clone()
        }
    }

    pub fn is_live(&self) -> bool {
        !self.deleted
    }

    /// Same user-visible content: kind, bytes or link target, permission bits.
    /// Two replicas with the same content need no transfer whatever their history.
    pub fn same_content(&self, other: &Entry) -> bool {
        if self.deleted || other.deleted {
            return self.deleted && other.deleted;
        }
        self.kind == other.kind
            && match self.kind {
                EntryKind::File => {
                    self.hash == other.hash
                        && self.stat.size == other.stat.size
                        && self.stat.mode == other.stat.mode
                }
                EntryKind::Symlink => self.link_target == other.link_target,
                EntryKind::Dir => self.stat.mode == other.stat.mode,
            }
    }
}
